/*
 * A DJMFS server in the test's own process, for Criterion tests that
 * need a real server and real clients (tests/djmfs/test_client.c,
 * tests/streamd/test_rec.c, tests/streamd/test_session.c): it makes a
 * volume in a new mkdtemp directory under /tmp (or under a directory the
 * test names, such as a small file system of its own), serves it from a thread
 * on a Unix socket in that directory (and on 127.0.0.1:0 when asked),
 * and connects clients to it, skipping the test when the machine cannot
 * do data I/O.  Its log hook is quiet unless DJMFS_TEST_LOG or
 * SD_TEST_LOG is set.  Header only: every function is static inline, so
 * a test file uses what it needs and nothing else is linked.
 *
 * A test suite keeps one struct server_env, calls server_env_start() in
 * its .init, and server_env_stop() then server_env_remove() in its .fini;
 * a test may stop the server early, or remove and start it again with
 * other options.
 */
#ifndef DJMFS_TESTS_SERVER_ENV_H
#define DJMFS_TESTS_SERVER_ENV_H

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "sched/profiles"
#endif

/* One server and the files it lives in. */
struct server_env {
	char dir[64];	  /* the mkdtemp directory */
	char vol[128];	  /* <dir>/vol, the volume */
	char sock[128];	  /* <dir>/sock, the Unix socket */
	char server[160]; /* "unix:<sock>", the clients' address */
	struct djmfs_server *srv;
	pthread_t th; /* runs djmfs_server_run() */
	int running;  /* srv exists and th must be joined */
};

/* How server_env_start() makes the volume and the server. */
struct server_env_opts {
	const char *tag;   /* names the directory: /tmp/<tag>-XXXXXX */
	uint64_t vol_size; /* bytes */
	uint32_t au_size;  /* allocation unit, bytes */
	uint32_t lease_ms; /* 0: the server's default */
	bool tcp;	   /* also listen on 127.0.0.1:0 */
	const char *parent; /* where the directory goes; NULL: /tmp */
};

/* The log hook for the server, the clients and anything else under test:
 * quiet unless DJMFS_TEST_LOG or SD_TEST_LOG is set. */
static inline void server_env_log_line(void *arg, enum djmfs_log_level lvl,
				       const char *msg)
{
	(void)arg;
	if (getenv("DJMFS_TEST_LOG") || getenv("SD_TEST_LOG"))
		fprintf(stderr, "[%d] %s\n", (int)lvl, msg);
}

static const struct djmfs_log server_env_log = { server_env_log_line, NULL };

static inline void *server_env_serve(void *arg)
{
	djmfs_server_run(arg);
	return NULL;
}

/* Starts a server on @e's volume (made already) in a thread of this
 * process, as @o says.  Fails the test on any error. */
static inline void server_env_serve_again(struct server_env *e,
					  const struct server_env_opts *o)
{
	struct djmfs_server_opts so = { 0 };

	so.volume = e->vol;
	so.unix_path = e->sock;
	if (o->tcp)
		so.tcp_addr = "127.0.0.1:0";
	so.lease_ms = o->lease_ms;
	so.log = server_env_log;
	cr_assert_eq(djmfs_server_new(&e->srv, &so), 0);
	cr_assert_eq(pthread_create(&e->th, NULL, server_env_serve, e->srv),
		     0);
	e->running = 1;
}

/* Makes a volume as @o says in a new directory and starts a server on it
 * in a thread of this process.  Fails the test on any error. */
static inline void server_env_start(struct server_env *e,
				    const struct server_env_opts *o)
{
	int n;

	n = snprintf(e->dir, sizeof(e->dir), "%s/%s-XXXXXX",
		     o->parent ? o->parent : "/tmp", o->tag);
	cr_assert_lt((size_t)n, sizeof(e->dir), "tag too long: %s", o->tag);
	cr_assert_not_null(mkdtemp(e->dir));
	snprintf(e->vol, sizeof(e->vol), "%s/vol", e->dir);
	snprintf(e->sock, sizeof(e->sock), "%s/sock", e->dir);
	snprintf(e->server, sizeof(e->server), "unix:%s", e->sock);
	cr_assert_eq(djmfs_mkfs(e->vol, o->vol_size, o->au_size, 0,
				&server_env_log), 0);
	server_env_serve_again(e, o);
}

/* Stops and frees the server if it still runs; the files stay. */
static inline void server_env_stop(struct server_env *e)
{
	if (!e->running)
		return;
	djmfs_server_stop(e->srv);
	pthread_join(e->th, NULL);
	djmfs_server_free(e->srv);
	e->running = 0;
}

/* Removes the volume, the socket and the directory (after
 * server_env_stop()). */
static inline void server_env_remove(struct server_env *e)
{
	unlink(e->vol);
	unlink(e->sock);
	rmdir(e->dir);
}

/* Client options for this server with @flags (DJMFS_CLIENT_*) and the
 * test log; o.server borrows @e's storage. */
static inline struct djmfs_client_opts
server_env_client_opts(const struct server_env *e, unsigned flags)
{
	struct djmfs_client_opts o = { 0 };

	o.server = e->server;
	o.profile = IOSCHED_TEST_PROFILE_DIR "/ssd-sata.profile";
	o.flags = flags;
	o.log = server_env_log;
	return o;
}

/* A client connected with @flags; the caller disconnects it.  Skips the
 * test when data I/O is impossible here (-ENOSYS: no io_uring) and fails
 * it on any other error. */
static inline struct djmfs_client *server_env_connect(const struct server_env *e,
						      unsigned flags)
{
	struct djmfs_client_opts o = server_env_client_opts(e, flags);
	struct djmfs_client *c = NULL;
	int err = djmfs_connect(&c, &o);

	if (err == -ENOSYS)
		cr_skip_test("io_uring is not available");
	cr_assert_eq(err, 0, "djmfs_connect: %s", strerror(-err));
	return c;
}

#endif /* DJMFS_TESTS_SERVER_ENV_H */
