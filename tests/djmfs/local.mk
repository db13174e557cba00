# Criterion suites for libdjmfs (one program per module), the pattern tool
# the integration tests drive, the damage tool of the metadata torture
# test, and the shell tests that start the real daemons.  fuzz.sh builds
# the libFuzzer targets with clang and runs each for a bounded time
# (DJMFS_FUZZ_SECONDS); torture.sh damages the metadata of recorded
# volumes (TORTURE_CASES cases).

# Each suite sees the headers of the part it tests: the server's
# internals (djmfs/server, djmfs/proto), the protocol part's, or the
# public headers only.
DJMFS_TEST_DEFS = -DIOSCHED_TEST_PROFILE_DIR='"$(abs_top_srcdir)/sched/profiles"'
DJMFS_TEST_CPPFLAGS = $(DJMFS_SERVER_CPPFLAGS) $(DJMFS_TEST_DEFS)
DJMFS_PROTO_TEST_CPPFLAGS = $(DJMFS_PROTO_CPPFLAGS) $(DJMFS_TEST_DEFS)
DJMFS_PUBLIC_TEST_CPPFLAGS = $(DJMFS_CPPFLAGS) $(DJMFS_TEST_DEFS)
DJMFS_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
# Suites of a part's internals link that part's archive; the client
# suites, which start a server and talk to it, link the installed
# libraries like any program.
DJMFS_TEST_LDADD = djmfs/libdjmfs-server-core.la $(CRITERION_LIBS) $(CRYPTO_LIBS) $(LIBM)
DJMFS_PROTO_TEST_LDADD = djmfs/libdjmfs-proto.la $(CRITERION_LIBS) $(CRYPTO_LIBS)
DJMFS_PUBLIC_TEST_LDADD = $(DJMFS_TOOL_LDADD) $(CRITERION_LIBS) $(LIBM)

DJMFS_UNIT_TESTS = \
	tests/djmfs/test_wire \
	tests/djmfs/test_jrec \
	tests/djmfs/test_volume \
	tests/djmfs/test_journal \
	tests/djmfs/test_tree \
	tests/djmfs/test_meta \
	tests/djmfs/test_alloc \
	tests/djmfs/test_fsck \
	tests/djmfs/test_server \
	tests/djmfs/test_client \
	tests/djmfs/test_image \
	tests/djmfs/test_auth \
	tests/djmfs/test_reconnect

DJMFS_SHELL_TESTS = \
	tests/djmfs/cli.sh \
	tests/djmfs/concurrent.sh \
	tests/djmfs/locksnap.sh \
	tests/djmfs/crash.sh \
	tests/djmfs/restart.sh \
	tests/djmfs/lease.sh \
	tests/djmfs/enospc.sh \
	tests/djmfs/upgrade.sh \
	tests/djmfs/auth.sh \
	tests/djmfs/bench.sh \
	tests/djmfs/fuzz.sh \
	tests/djmfs/arch.sh \
	tests/djmfs/torture.sh

check_PROGRAMS += $(DJMFS_UNIT_TESTS) tests/djmfs/djmfs-pattern \
	tests/djmfs/djmfs-flip
TESTS += $(DJMFS_UNIT_TESTS) $(DJMFS_SHELL_TESTS)
EXTRA_DIST += $(DJMFS_SHELL_TESTS) tests/djmfs/lib.sh tests/djmfs/fuzz_frame.c \
	tests/djmfs/fuzz_jrec.c tests/djmfs/server_env.h tests/lib-common.sh

tests_djmfs_djmfs_pattern_SOURCES = tests/djmfs/djmfs-pattern.c
tests_djmfs_djmfs_pattern_CPPFLAGS = $(DJMFS_CPPFLAGS)
tests_djmfs_djmfs_pattern_LDADD = $(DJMFS_CLIENT_LDADD)

# The torture test's damage tool reads the superblock like the server.
tests_djmfs_djmfs_flip_SOURCES = tests/djmfs/djmfs-flip.c
tests_djmfs_djmfs_flip_CPPFLAGS = $(DJMFS_PROTO_CPPFLAGS)
tests_djmfs_djmfs_flip_LDADD = djmfs/libdjmfs-proto.la $(CRYPTO_LIBS)

tests_djmfs_test_wire_SOURCES = tests/djmfs/test_wire.c
tests_djmfs_test_wire_CPPFLAGS = $(DJMFS_PROTO_TEST_CPPFLAGS)
tests_djmfs_test_wire_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_wire_LDADD = $(DJMFS_PROTO_TEST_LDADD)

tests_djmfs_test_jrec_SOURCES = tests/djmfs/test_jrec.c
tests_djmfs_test_jrec_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_jrec_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_jrec_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_volume_SOURCES = tests/djmfs/test_volume.c
tests_djmfs_test_volume_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_volume_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_volume_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_journal_SOURCES = tests/djmfs/test_journal.c
tests_djmfs_test_journal_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_journal_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_journal_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_tree_SOURCES = tests/djmfs/test_tree.c
tests_djmfs_test_tree_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_tree_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_tree_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_meta_SOURCES = tests/djmfs/test_meta.c
tests_djmfs_test_meta_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_meta_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_meta_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_alloc_SOURCES = tests/djmfs/test_alloc.c
tests_djmfs_test_alloc_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_alloc_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_alloc_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_fsck_SOURCES = tests/djmfs/test_fsck.c
tests_djmfs_test_fsck_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_fsck_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_fsck_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_server_SOURCES = tests/djmfs/test_server.c
tests_djmfs_test_server_CPPFLAGS = $(DJMFS_TEST_CPPFLAGS)
tests_djmfs_test_server_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_server_LDADD = $(DJMFS_TEST_LDADD)

tests_djmfs_test_client_SOURCES = tests/djmfs/test_client.c
tests_djmfs_test_client_CPPFLAGS = $(DJMFS_PUBLIC_TEST_CPPFLAGS)
tests_djmfs_test_client_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_client_LDADD = $(DJMFS_PUBLIC_TEST_LDADD)

# The image map is the client's own arithmetic: its source is built into
# the suite, with the client's private headers.
tests_djmfs_test_image_SOURCES = tests/djmfs/test_image.c \
	djmfs/client/djmfs_image.c
tests_djmfs_test_image_CPPFLAGS = $(DJMFS_CLIENT_CPPFLAGS) $(DJMFS_TEST_DEFS)
tests_djmfs_test_image_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_image_LDADD = djmfs/libdjmfs-proto.la $(CRITERION_LIBS) \
	$(CRYPTO_LIBS)

tests_djmfs_test_auth_SOURCES = tests/djmfs/test_auth.c
tests_djmfs_test_auth_CPPFLAGS = $(DJMFS_PROTO_TEST_CPPFLAGS)
tests_djmfs_test_auth_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_auth_LDADD = djmfs/libdjmfs-proto.la $(DJMFS_PUBLIC_TEST_LDADD) \
	$(CRYPTO_LIBS)

tests_djmfs_test_reconnect_SOURCES = tests/djmfs/test_reconnect.c
tests_djmfs_test_reconnect_CPPFLAGS = $(DJMFS_PUBLIC_TEST_CPPFLAGS)
tests_djmfs_test_reconnect_CFLAGS = $(DJMFS_TEST_CFLAGS)
tests_djmfs_test_reconnect_LDADD = $(DJMFS_PUBLIC_TEST_LDADD)
