# libdjmfs (client, server, mkfs and fsck in one library), the djmfsd
# daemon, the djmfs tool and djmfs-bench.  Like libiosched, the library is
# built once as a convenience archive for the tools and tests (they reach
# private symbols) and once as the installed shared library, which exports
# only the public djmfs_* API.

DJMFS_SOURCES = \
	djmfs/djmfs.h \
	djmfs/djmfs_server.h \
	djmfs/djmfs_proto.h \
	djmfs/djmfs_store.h \
	djmfs/djmfs_codec.h \
	djmfs/djmfs_log.c \
	djmfs/djmfs_crc.c \
	djmfs/djmfs_buf.c \
	djmfs/djmfs_wire.c \
	djmfs/djmfs_auth.c \
	djmfs/djmfs_sb.c \
	djmfs/djmfs_jrec.c \
	djmfs/djmfs_volio.h \
	djmfs/djmfs_volume.c \
	djmfs/djmfs_mkfs.c \
	djmfs/djmfs_journal.c \
	djmfs/djmfs_tree.h \
	djmfs/djmfs_tree.c \
	djmfs/djmfs_meta.h \
	djmfs/djmfs_meta.c \
	djmfs/djmfs_meta_sets.c \
	djmfs/djmfs_meta_img.c \
	djmfs/djmfs_alloc.c \
	djmfs/djmfs_fsck.c \
	djmfs/djmfs_srv.h \
	djmfs/djmfs_server.c \
	djmfs/djmfs_boot.c \
	djmfs/djmfs_gate.c \
	djmfs/djmfs_ops.c \
	djmfs/djmfs_conn.c \
	djmfs/djmfs_session.c \
	djmfs/djmfs_commit.c \
	djmfs/djmfs_clnt.h \
	djmfs/djmfs_client.c \
	djmfs/djmfs_io.c \
	djmfs/djmfs_file.c

DJMFS_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/djmfs

noinst_LTLIBRARIES += djmfs/libdjmfs-core.la
djmfs_libdjmfs_core_la_SOURCES = $(DJMFS_SOURCES)
djmfs_libdjmfs_core_la_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_libdjmfs_core_la_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS) $(CRYPTO_CFLAGS)
djmfs_libdjmfs_core_la_LIBADD = sched/libiosched-core.la $(URING_LIBS) $(CRYPTO_LIBS) $(LIBM)

lib_LTLIBRARIES += djmfs/libdjmfs.la
djmfs_libdjmfs_la_SOURCES = $(DJMFS_SOURCES)
djmfs_libdjmfs_la_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_libdjmfs_la_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS) $(CRYPTO_CFLAGS)
djmfs_libdjmfs_la_LIBADD = sched/libiosched.la $(URING_LIBS) $(CRYPTO_LIBS) $(LIBM)
djmfs_libdjmfs_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols-regex '^djmfs_[a-z]'

include_HEADERS += djmfs/djmfs.h djmfs/djmfs_server.h

DJMFS_TOOL_LDADD = djmfs/libdjmfs-core.la $(URING_LIBS) $(CRYPTO_LIBS) $(LIBM)

# The tools are built inside djmfs/ (a top-level "djmfs" binary would
# collide with the object directory of the same name); install drops the
# directory.
bin_PROGRAMS += djmfs/djmfsd djmfs/djmfs djmfs/djmfs-bench

djmfs_djmfsd_SOURCES = djmfs/djmfsd.c
djmfs_djmfsd_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_djmfsd_LDADD = $(DJMFS_TOOL_LDADD)

djmfs_djmfs_SOURCES = djmfs/djmfs-cli.c
djmfs_djmfs_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_djmfs_LDADD = $(DJMFS_TOOL_LDADD)

djmfs_djmfs_bench_SOURCES = djmfs/bench/djmfs-bench.c
djmfs_djmfs_bench_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_djmfs_bench_LDADD = $(DJMFS_TOOL_LDADD)

# Side-by-side comparison of the data path with fio (run by hand).
EXTRA_DIST += djmfs/bench/data-vs-fio.sh
