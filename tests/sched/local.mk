# Criterion suites for libiosched (one program per module) and the shell
# tests that drive its tools.

SCHED_TEST_CPPFLAGS = $(IOSCHED_CPPFLAGS) -I$(top_srcdir)/sched/bench \
	$(TOOLS_CPPFLAGS) \
	-DIOSCHED_TEST_PROFILE_DIR='"$(abs_top_srcdir)/sched/profiles"'
SCHED_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
SCHED_TEST_LDADD = sched/libiosched-core.la $(TOOLS_LIBS) $(CRITERION_LIBS) $(URING_LIBS) $(LIBM)

SCHED_TESTS = \
	tests/sched/test_model \
	tests/sched/test_profile \
	tests/sched/test_policy \
	tests/sched/test_glmd \
	tests/sched/test_mh \
	tests/sched/test_sim \
	tests/sched/test_core \
	tests/sched/test_uring \
	tests/sched/test_bench \
	tests/sched/test_learn

check_PROGRAMS += $(SCHED_TESTS)
TESTS += $(SCHED_TESTS) tests/sched/bench.sh tests/sched/calibrate.sh
EXTRA_DIST += tests/sched/bench.sh tests/sched/calibrate.sh

tests_sched_test_model_SOURCES = tests/sched/test_model.c
tests_sched_test_profile_SOURCES = tests/sched/test_profile.c
tests_sched_test_policy_SOURCES = tests/sched/test_policy.c
tests_sched_test_mh_SOURCES = tests/sched/test_mh.c
tests_sched_test_glmd_SOURCES = tests/sched/test_glmd.c tests/sched/glmd_oracle.c \
	tests/sched/glmd_oracle.h $(BENCH_ENGINE_SOURCES)
tests_sched_test_sim_SOURCES = tests/sched/test_sim.c $(BENCH_ENGINE_SOURCES)
tests_sched_test_core_SOURCES = tests/sched/test_core.c
tests_sched_test_uring_SOURCES = tests/sched/test_uring.c
tests_sched_test_bench_SOURCES = tests/sched/test_bench.c $(BENCH_ENGINE_SOURCES)
tests_sched_test_learn_SOURCES = tests/sched/test_learn.c

tests_sched_test_model_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_profile_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_policy_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_mh_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_glmd_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_sim_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_core_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_uring_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_bench_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)
tests_sched_test_learn_CPPFLAGS = $(SCHED_TEST_CPPFLAGS)

tests_sched_test_model_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_profile_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_policy_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_mh_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_glmd_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_sim_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_core_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_uring_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_bench_CFLAGS = $(SCHED_TEST_CFLAGS)
tests_sched_test_learn_CFLAGS = $(SCHED_TEST_CFLAGS)

tests_sched_test_model_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_profile_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_policy_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_mh_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_glmd_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_sim_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_core_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_uring_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_bench_LDADD = $(SCHED_TEST_LDADD)
tests_sched_test_learn_LDADD = $(SCHED_TEST_LDADD)
