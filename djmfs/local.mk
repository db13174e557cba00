# DJMFS in three parts and two installed libraries.  The protocol part
# (frames, codec, CRC, the secret handshake, buffers, logging, the
# superblock as both sides read it) is stateless and goes into both;
# libdjmfs is the client library (djmfs.h), libdjmfs-server the metadata
# server, mkfs, fsck and shared-secret files (djmfs_server.h).  The
# protocol and server parts are also convenience archives: the installed
# libraries are built from them, and the unit tests that reach a part's
# private symbols link that part's archive (no test reaches into the
# client's, so it has none).  The tools and the integration tests link the installed
# libraries, so the exported boundary is what they exercise.  Each
# library exports exactly the names listed in its .sym file
# (tools/archcheck.sh checks the lists against the headers).
#
# Each part lives in its own directory (djmfs/proto, djmfs/server,
# djmfs/client); the public headers, the programs and bench/ stay in
# djmfs/.  A part's files see their own directory, the protocol part's
# and the public headers, never the other side's: a server file that
# includes a client header, or the reverse, does not compile.

DJMFS_PROTO_SOURCES = \
	djmfs/djmfs.h \
	djmfs/djmfs_server.h \
	djmfs/proto/djmfs_proto.h \
	djmfs/proto/djmfs_codec.h \
	djmfs/proto/djmfs_log.c \
	djmfs/proto/djmfs_crc.c \
	djmfs/proto/djmfs_buf.c \
	djmfs/proto/djmfs_wire.c \
	djmfs/proto/djmfs_auth.c \
	djmfs/proto/djmfs_sb.c

DJMFS_SERVER_SOURCES = \
	djmfs/server/djmfs_store.h \
	djmfs/server/djmfs_jrec.c \
	djmfs/server/djmfs_volio.h \
	djmfs/server/djmfs_volume.c \
	djmfs/server/djmfs_mkfs.c \
	djmfs/server/djmfs_upgrade.c \
	djmfs/server/djmfs_journal.c \
	djmfs/server/djmfs_ckpt.c \
	djmfs/server/djmfs_replay.c \
	djmfs/server/djmfs_tree.h \
	djmfs/server/djmfs_tree.c \
	djmfs/server/djmfs_meta.h \
	djmfs/server/djmfs_meta.c \
	djmfs/server/djmfs_meta_sets.c \
	djmfs/server/djmfs_meta_img.c \
	djmfs/server/djmfs_alloc.c \
	djmfs/server/djmfs_fsck.c \
	djmfs/server/djmfs_srv.h \
	djmfs/server/djmfs_server.c \
	djmfs/server/djmfs_boot.c \
	djmfs/server/djmfs_gate.c \
	djmfs/server/djmfs_ops.c \
	djmfs/server/djmfs_conn.c \
	djmfs/server/djmfs_session.c \
	djmfs/server/djmfs_commit.c

DJMFS_CLIENT_SOURCES = \
	djmfs/client/djmfs_clnt.h \
	djmfs/client/djmfs_rpc.c \
	djmfs/client/djmfs_client.c \
	djmfs/client/djmfs_io.c \
	djmfs/client/djmfs_file.h \
	djmfs/client/djmfs_image.c \
	djmfs/client/djmfs_fifo.c \
	djmfs/client/djmfs_write.c \
	djmfs/client/djmfs_read.c \
	djmfs/client/djmfs_snap.c \
	djmfs/client/djmfs_obj.c \
	djmfs/client/djmfs_file.c \
	djmfs/client/djmfs_restore.c \
	djmfs/client/djmfs_reconnect.c

# The programs see the public headers only.  The client's iosched.h
# comes from AM_CPPFLAGS (sched/).
DJMFS_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/djmfs -I$(top_srcdir)/common
DJMFS_PROTO_CPPFLAGS = $(DJMFS_CPPFLAGS) -I$(top_srcdir)/djmfs/proto
DJMFS_SERVER_CPPFLAGS = $(DJMFS_PROTO_CPPFLAGS) -I$(top_srcdir)/djmfs/server
DJMFS_CLIENT_CPPFLAGS = $(DJMFS_PROTO_CPPFLAGS) -I$(top_srcdir)/djmfs/client

noinst_LTLIBRARIES += djmfs/libdjmfs-proto.la
djmfs_libdjmfs_proto_la_SOURCES = $(DJMFS_PROTO_SOURCES)
djmfs_libdjmfs_proto_la_CPPFLAGS = $(DJMFS_PROTO_CPPFLAGS)
djmfs_libdjmfs_proto_la_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
djmfs_libdjmfs_proto_la_LIBADD = $(CRYPTO_LIBS)

noinst_LTLIBRARIES += djmfs/libdjmfs-server-core.la
djmfs_libdjmfs_server_core_la_SOURCES = $(DJMFS_SERVER_SOURCES)
djmfs_libdjmfs_server_core_la_CPPFLAGS = $(DJMFS_SERVER_CPPFLAGS)
djmfs_libdjmfs_server_core_la_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
djmfs_libdjmfs_server_core_la_LIBADD = djmfs/libdjmfs-proto.la $(LIBM)

lib_LTLIBRARIES += djmfs/libdjmfs.la
djmfs_libdjmfs_la_SOURCES = $(DJMFS_CLIENT_SOURCES)
djmfs_libdjmfs_la_CPPFLAGS = $(DJMFS_CLIENT_CPPFLAGS)
djmfs_libdjmfs_la_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS)
djmfs_libdjmfs_la_LIBADD = djmfs/libdjmfs-proto.la sched/libiosched.la \
	$(URING_LIBS) $(CRYPTO_LIBS) $(LIBM)
djmfs_libdjmfs_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols $(top_srcdir)/djmfs/libdjmfs.sym
EXTRA_djmfs_libdjmfs_la_DEPENDENCIES = $(top_srcdir)/djmfs/libdjmfs.sym

lib_LTLIBRARIES += djmfs/libdjmfs-server.la
djmfs_libdjmfs_server_la_SOURCES =
djmfs_libdjmfs_server_la_LIBADD = djmfs/libdjmfs-server-core.la \
	$(CRYPTO_LIBS) $(LIBM)
djmfs_libdjmfs_server_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols $(top_srcdir)/djmfs/libdjmfs-server.sym
EXTRA_djmfs_libdjmfs_server_la_DEPENDENCIES = \
	$(top_srcdir)/djmfs/libdjmfs-server.sym

include_HEADERS += djmfs/djmfs.h djmfs/djmfs_server.h
EXTRA_DIST += djmfs/libdjmfs.sym djmfs/libdjmfs-server.sym

# The programs and the integration tests link the installed libraries.
DJMFS_CLIENT_LDADD = djmfs/libdjmfs.la
DJMFS_SERVER_LDADD = djmfs/libdjmfs-server.la
DJMFS_TOOL_LDADD = $(DJMFS_CLIENT_LDADD) $(DJMFS_SERVER_LDADD)

# The tools are built inside djmfs/ (a top-level "djmfs" binary would
# collide with the object directory of the same name); install drops the
# directory.
bin_PROGRAMS += djmfs/djmfsd djmfs/djmfs djmfs/djmfs-bench

djmfs_djmfsd_SOURCES = djmfs/djmfsd.c
djmfs_djmfsd_CPPFLAGS = $(DJMFS_CPPFLAGS)
djmfs_djmfsd_LDADD = $(DJMFS_SERVER_LDADD)

djmfs_djmfs_SOURCES = djmfs/djmfs-cli.c djmfs/djmfs-cli.h \
	djmfs/djmfs-cli-report.c
djmfs_djmfs_CPPFLAGS = $(DJMFS_CPPFLAGS) $(TOOLS_CPPFLAGS)
djmfs_djmfs_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
djmfs_djmfs_LDADD = $(DJMFS_TOOL_LDADD) $(TOOLS_LIBS)

djmfs_djmfs_bench_SOURCES = djmfs/bench/djmfs-bench.c \
	djmfs/bench/bench_server.h djmfs/bench/bench_server.c
djmfs_djmfs_bench_CPPFLAGS = $(DJMFS_CPPFLAGS) $(TOOLS_CPPFLAGS)
djmfs_djmfs_bench_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
djmfs_djmfs_bench_LDADD = $(DJMFS_TOOL_LDADD) $(TOOLS_LIBS)

# Side-by-side comparison of the data path with fio (run by hand).
EXTRA_DIST += djmfs/bench/data-vs-fio.sh
