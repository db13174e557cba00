# Criterion suites for streamd's modules (one program per module) and the
# shell tests that start the real daemon and talk to it with ffmpeg,
# ffprobe and curl.

STREAMD_TEST_CPPFLAGS = $(STREAMD_CPPFLAGS) \
	-DIOSCHED_TEST_PROFILE_DIR='"$(abs_top_srcdir)/sched/profiles"'
STREAMD_TEST_CFLAGS = $(STREAMD_CFLAGS) $(CRITERION_CFLAGS)
STREAMD_TEST_LDADD = $(STREAMD_LIBS) $(CRITERION_LIBS)

STREAMD_UNIT_TESTS = \
	tests/streamd/test_time \
	tests/streamd/test_index \
	tests/streamd/test_retain \
	tests/streamd/test_hls \
	tests/streamd/test_range \
	tests/streamd/test_config \
	tests/streamd/test_log \
	tests/streamd/test_ingest \
	tests/streamd/test_ts \
	tests/streamd/test_rec \
	tests/streamd/test_session \
	tests/streamd/test_admit \
	tests/streamd/test_cache \
	tests/streamd/test_token \
	tests/streamd/test_clip \
	tests/streamd/test_soak_ts \
	tests/streamd/test_loadgen

STREAMD_SHELL_TESTS = \
	tests/streamd/cli.sh \
	tests/streamd/record.sh \
	tests/streamd/timeshift.sh \
	tests/streamd/clipend.sh \
	tests/streamd/clips.sh \
	tests/streamd/hls.sh \
	tests/streamd/hls-live.sh \
	tests/streamd/range.sh \
	tests/streamd/opens.sh \
	tests/streamd/slices.sh \
	tests/streamd/manage.sh \
	tests/streamd/retention.sh \
	tests/streamd/badinput.sh \
	tests/streamd/admin.sh \
	tests/streamd/admission.sh \
	tests/streamd/load.sh \
	tests/streamd/cache.sh \
	tests/streamd/cluster.sh \
	tests/streamd/djmfs-restart.sh \
	tests/streamd/volfull.sh \
	tests/streamd/hostfull.sh \
	tests/streamd/checksum.sh \
	tests/streamd/device.sh \
	tests/streamd/crash.sh \
	tests/streamd/stall.sh \
	tests/streamd/soak.sh \
	tests/streamd/soak-admit.sh \
	tests/streamd/abuse.sh \
	tests/streamd/playtoken.sh \
	tests/streamd/bench.sh \
	tests/streamd/cors.sh \
	tests/streamd/hlsjs.sh \
	tests/streamd/gst.sh \
	tests/streamd/vlc.sh

check_PROGRAMS += $(STREAMD_UNIT_TESTS)
TESTS += $(STREAMD_UNIT_TESTS) $(STREAMD_SHELL_TESTS)
EXTRA_DIST += $(STREAMD_SHELL_TESTS) tests/streamd/lib.sh tests/streamd/abuse.py \
	tests/streamd/sd_test_log.h tests/streamd/sd_test_file.h \
	tests/streamd/hlswatch.py tests/streamd/full503.py
# hlsjs.sh's page and driver; its node_modules (npm ci) is never shipped.
EXTRA_DIST += tests/streamd/web/package.json \
	tests/streamd/web/package-lock.json \
	tests/streamd/web/hlsjs.html \
	tests/streamd/web/hlsjs.mjs

tests_streamd_test_time_SOURCES = tests/streamd/test_time.c
tests_streamd_test_time_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_time_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_time_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_retain_SOURCES = tests/streamd/test_retain.c
tests_streamd_test_retain_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_retain_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_retain_LDADD = $(STREAMD_TEST_LDADD)
tests_streamd_test_index_SOURCES = tests/streamd/test_index.c
tests_streamd_test_index_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_index_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_index_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_hls_SOURCES = tests/streamd/test_hls.c
tests_streamd_test_hls_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_hls_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_hls_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_range_SOURCES = tests/streamd/test_range.c
tests_streamd_test_range_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_range_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_range_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_config_SOURCES = tests/streamd/test_config.c
tests_streamd_test_config_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_config_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_config_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_log_SOURCES = tests/streamd/test_log.c
tests_streamd_test_log_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_log_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_log_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_ingest_SOURCES = tests/streamd/test_ingest.c
tests_streamd_test_ingest_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_ingest_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_ingest_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_ts_SOURCES = tests/streamd/test_ts.c
tests_streamd_test_ts_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_ts_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_ts_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_rec_SOURCES = tests/streamd/test_rec.c
tests_streamd_test_rec_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_rec_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_rec_LDADD = $(STREAMD_TEST_LDADD)
# A full volume's failure delivered late (test_rec.c wraps both calls).
tests_streamd_test_rec_LDFLAGS = -Wl,--wrap=djmfs_write_async \
	-Wl,--wrap=djmfs_write_inplace_async

tests_streamd_test_admit_SOURCES = tests/streamd/test_admit.c
tests_streamd_test_admit_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_admit_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_admit_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_cache_SOURCES = tests/streamd/test_cache.c
tests_streamd_test_cache_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_cache_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_cache_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_session_SOURCES = tests/streamd/test_session.c
tests_streamd_test_session_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_session_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_session_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_clip_SOURCES = tests/streamd/test_clip.c
tests_streamd_test_clip_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_clip_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_clip_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_token_SOURCES = tests/streamd/test_token.c
tests_streamd_test_token_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS)
tests_streamd_test_token_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_token_LDADD = $(STREAMD_TEST_LDADD)

tests_streamd_test_soak_ts_SOURCES = tests/streamd/test_soak_ts.c \
	streamd/soak/soak_ts.c streamd/soak/soak_ts.h
tests_streamd_test_soak_ts_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS) -I$(top_srcdir)/streamd/soak
tests_streamd_test_soak_ts_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_soak_ts_LDADD = $(AV_LIBS) $(CRITERION_LIBS)

tests_streamd_test_loadgen_SOURCES = tests/streamd/test_loadgen.c
tests_streamd_test_loadgen_CPPFLAGS = $(STREAMD_TEST_CPPFLAGS) \
	$(TOOLS_CPPFLAGS) -I$(top_srcdir)/streamd/bench
tests_streamd_test_loadgen_CFLAGS = $(STREAMD_TEST_CFLAGS)
tests_streamd_test_loadgen_LDADD = $(LOADGEN_LIBS) $(CRITERION_LIBS)
