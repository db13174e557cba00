# streamd, the recording and time-shift daemon, and streamd-bench.  The
# daemon's modules are built once as a convenience library so the unit
# tests link the same objects the daemon runs.  Like the djmfs tools, the
# programs are built inside streamd/ (a top-level "streamd" binary would
# collide with the object directory); install drops the directory.

STREAMD_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/djmfs -I$(top_srcdir)/streamd \
	-I$(top_srcdir)/common
STREAMD_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(AV_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
# libdjmfs-server too: streamd can run the metadata server in-process;
# libiosched for the policy names its configuration checks.
STREAMD_LIBS = streamd/libstreamd-core.la djmfs/libdjmfs.la \
	djmfs/libdjmfs-server.la sched/libiosched.la \
	$(MHD_LIBS) $(AV_LIBS) $(JANSSON_LIBS) $(URING_LIBS) $(CRYPTO_LIBS) $(LIBM)

noinst_LTLIBRARIES += streamd/libstreamd-core.la
streamd_libstreamd_core_la_SOURCES = \
	streamd/streamd-int.h \
	streamd/sd_time.c \
	streamd/sd_name.c \
	streamd/sd_index.c \
	streamd/sd_retain_plan.c \
	streamd/sd_hls.c \
	streamd/sd_range.c \
	streamd/sd_config.c \
	streamd/sd_log.c \
	streamd/sd_ts.c \
	streamd/sd_ingest.c \
	streamd/sd_rec.c \
	streamd/sd_recorder.c \
	streamd/sd_catalog.c \
	streamd/sd_cache.c \
	streamd/sd_session.c \
	streamd/sd_admit.c \
	streamd/sd_daemon.h \
	streamd/sd_http.h \
	streamd/sd_http.c \
	streamd/sd_route_record.c \
	streamd/sd_route_play.c \
	streamd/sd_work.c \
	streamd/sd_media.c \
	streamd/sd_clip.c \
	streamd/sd_thumb.c \
	streamd/sd_thumb_cache.c \
	streamd/sd_route_clip.c \
	streamd/sd_route_admin.c \
	streamd/sd_capacity.c \
	streamd/sd_token.c \
	streamd/sd_route_sign.c \
	streamd/sd_holds.c \
	streamd/sd_route_manage.c \
	streamd/sd_retain.c
streamd_libstreamd_core_la_CPPFLAGS = $(STREAMD_CPPFLAGS)
streamd_libstreamd_core_la_CFLAGS = $(STREAMD_CFLAGS)

bin_PROGRAMS += streamd/streamd streamd/streamd-bench streamd/streamd-soak

streamd_streamd_SOURCES = streamd/streamd.c
# An uninstalled daemon finds the scheduler profiles in the source tree
# when the installed directory is absent (see profile_dir_fallback).
streamd_streamd_CPPFLAGS = $(STREAMD_CPPFLAGS) \
	-DSD_PROFILE_DIR_INSTALLED='"$(pkgdatadir)/profiles"' \
	-DSD_PROFILE_DIR_SOURCE='"$(abs_top_srcdir)/sched/profiles"'
streamd_streamd_CFLAGS = $(STREAMD_CFLAGS)
streamd_streamd_LDADD = $(STREAMD_LIBS)

# The HTTP load engine both load tools drive streamd with.
noinst_LTLIBRARIES += streamd/bench/libloadgen.la
streamd_bench_libloadgen_la_SOURCES = streamd/bench/loadgen.h \
	streamd/bench/loadgen.c
streamd_bench_libloadgen_la_CPPFLAGS = $(AM_CPPFLAGS) $(TOOLS_CPPFLAGS)
LOADGEN_LIBS = streamd/bench/libloadgen.la $(TOOLS_LIBS) $(LIBM)

streamd_streamd_bench_SOURCES = streamd/bench/streamd-bench.c
streamd_streamd_bench_CPPFLAGS = $(STREAMD_CPPFLAGS) $(TOOLS_CPPFLAGS)
streamd_streamd_bench_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
streamd_streamd_bench_LDADD = $(LOADGEN_LIBS)

streamd_streamd_soak_SOURCES = streamd/soak/streamd-soak.c streamd/soak/soak.h \
	streamd/soak/soak_rec.c streamd/soak/soak_view.c \
	streamd/soak/soak_report.c streamd/soak/soak_limit.c \
	streamd/soak/soak_ts.h streamd/soak/soak_ts.c
streamd_streamd_soak_CPPFLAGS = $(STREAMD_CPPFLAGS) -I$(top_srcdir)/streamd/bench \
	$(TOOLS_CPPFLAGS)
streamd_streamd_soak_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
streamd_streamd_soak_LDADD = $(LOADGEN_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS) $(LIBM)
EXTRA_DIST += streamd/bench/list-bench.sh
