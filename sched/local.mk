# libiosched, its shipped disk profiles, and its tools.  The library is
# built once as a convenience archive that tests and tools link (they reach
# private symbols), and installed as a shared library exporting only the
# public iosched_* API.

IOSCHED_SOURCES = \
	sched/iosched.h \
	sched/iosched-int.h \
	sched/iosched.c \
	sched/iosched_log.c \
	sched/iosched_stats.c \
	sched/iosched_policy.c \
	sched/iosched_tree.c \
	sched/iosched_tree.h \
	sched/iosched_fifo.c \
	sched/iosched_edf.c \
	sched/iosched_scan.c \
	sched/iosched_scan_edf.c \
	sched/iosched_glmd.c \
	sched/iosched_mh.c \
	sched/iosched_model.c \
	sched/iosched_profile.c \
	sched/iosched_sim.c \
	sched/iosched_uring.c

IOSCHED_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/common \
	-DIOSCHED_PROFILE_DIR_DEFAULT='"$(pkgdatadir)/profiles"'

noinst_LTLIBRARIES += sched/libiosched-core.la
sched_libiosched_core_la_SOURCES = $(IOSCHED_SOURCES)
sched_libiosched_core_la_CPPFLAGS = $(IOSCHED_CPPFLAGS)
sched_libiosched_core_la_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS)
sched_libiosched_core_la_LIBADD = $(URING_LIBS) $(LIBM)

lib_LTLIBRARIES += sched/libiosched.la
sched_libiosched_la_SOURCES = $(IOSCHED_SOURCES)
sched_libiosched_la_CPPFLAGS = $(IOSCHED_CPPFLAGS)
sched_libiosched_la_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS)
sched_libiosched_la_LIBADD = $(URING_LIBS) $(LIBM)
sched_libiosched_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols-regex '^iosched_[a-z]'

include_HEADERS += sched/iosched.h

IOSCHED_PROFILES = \
	sched/profiles/hdd-7200.profile \
	sched/profiles/ssd-sata.profile \
	sched/profiles/nvme.profile
profiledir = $(pkgdatadir)/profiles
dist_profile_DATA = $(IOSCHED_PROFILES)

# The same profiles compiled in (iosched-int.h), made from the files.
nodist_sched_libiosched_core_la_SOURCES = sched/iosched_builtin.c
nodist_sched_libiosched_la_SOURCES = sched/iosched_builtin.c
BUILT_SOURCES += sched/iosched_builtin.c
CLEANFILES += sched/iosched_builtin.c
EXTRA_DIST += sched/tools/embed-profiles.awk
sched/iosched_builtin.c: $(IOSCHED_PROFILES) sched/tools/embed-profiles.awk
	$(AM_V_GEN)$(MKDIR_P) sched && \
	$(AWK) -f $(srcdir)/sched/tools/embed-profiles.awk \
		$(IOSCHED_PROFILES:%=$(srcdir)/%) >$@.tmp && mv $@.tmp $@

bin_PROGRAMS += iosched-bench iosched-calibrate

# The load engines, shared with the test suite.
BENCH_ENGINE_SOURCES = \
	sched/bench/bench.h \
	sched/bench/bench_load.c \
	sched/bench/bench_psync.c \
	sched/bench/bench_micro.c

iosched_bench_SOURCES = sched/bench/iosched-bench.c $(BENCH_ENGINE_SOURCES)
iosched_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/sched/bench \
	$(TOOLS_CPPFLAGS)
iosched_bench_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS) $(JANSSON_CFLAGS)
iosched_bench_LDADD = sched/libiosched-core.la $(TOOLS_LIBS) $(URING_LIBS) \
	$(LIBM)

iosched_calibrate_SOURCES = sched/tools/iosched-calibrate.c
iosched_calibrate_CPPFLAGS = $(AM_CPPFLAGS) $(TOOLS_CPPFLAGS)
iosched_calibrate_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS)
iosched_calibrate_LDADD = sched/libiosched-core.la $(TOOLS_LIBS) $(URING_LIBS) \
	$(LIBM)
