/*
 * Tests of libdjmfs's reconnect (djmfs_client.c, djmfs_file.c): a real
 * server in this process on a temporary volume, stopped and started again
 * on the same volume and socket under live clients, and, for answers lost
 * on the way, a proxy between client and server that cuts the connection
 * at a chosen frame (a request before the server sees it, or an answer
 * after the server applied it).  They check that writers go on where they
 * were, that nothing acknowledged or applied is lost or applied twice,
 * that unpublished data in reserved units is moved to new units, that
 * readers resume, that calls made during the outage wait (or stay queued)
 * and that calls fail with -ENOTCONN once the window is over.  Tests that
 * move data skip when the machine has no io_uring.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"
#include "server_env.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define AU (64 * KIB)
#define LEASE_MS 300
#define WINDOW_MS 10000

/* Wire constants (doc/djmfs-protocol.md): the header and two ops. */
#define HDR 16
#define OP_CREATE_OBJ 5
#define OP_PUBLISH 9

static struct server_env env;

static void setup(void)
{
	const struct server_env_opts o = {
		.tag = "djmfs-reconnect",
		.vol_size = 64 * MIB,
		.au_size = AU,
		.lease_ms = LEASE_MS,
	};

	server_env_start(&env, &o);
}

static void teardown(void)
{
	server_env_stop(&env);
	server_env_remove(&env);
}

/* Starts a server again on env's volume and socket (after a stop), as a
 * restarted djmfsd would: the journal and checkpoints are all it has. */
static void restart_server(void)
{
	struct djmfs_server_opts so = { 0 };

	server_env_stop(&env);
	so.volume = env.vol;
	so.unix_path = env.sock;
	so.lease_ms = LEASE_MS;
	so.log = server_env_log;
	cr_assert_eq(djmfs_server_new(&env.srv, &so), 0);
	cr_assert_eq(pthread_create(&env.th, NULL, server_env_serve, env.srv),
		     0);
	env.running = 1;
}

static struct djmfs_client *client_at(const char *server, uint32_t window_ms)
{
	struct djmfs_client_opts o = server_env_client_opts(&env, 0);
	struct djmfs_client *c = NULL;
	int err;

	o.server = server;
	o.reconnect_ms = window_ms;
	err = djmfs_connect(&c, &o);
	if (err == -ENOSYS)
		cr_skip_test("io_uring is not available");
	cr_assert_eq(err, 0, "djmfs_connect: %s", strerror(-err));
	return c;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

/* A writer on a new file with one DATA object (SYNC when @sync). */
static struct djmfs_file *new_file(struct djmfs_client *c, const char *name,
				   int sync, uint32_t *id)
{
	struct djmfs_file *w = NULL;

	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ | DJMFS_O_WRITE |
					      DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
				      (sync ? DJMFS_ATTR_SYNC : 0u), id), 0);
	return w;
}

/* Checks @name's published "data" holds exactly @want (@n bytes),
 * through a client of its own straight to the server. */
static void expect_content(const char *name, const uint8_t *want, size_t n)
{
	struct djmfs_client *c = client_at(env.server, WINDOW_MS);
	struct djmfs_file *r = NULL;
	struct djmfs_file_info fi;
	uint8_t *got = malloc(n + 1);

	cr_assert_not_null(got);
	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_file_info(r, &fi), 0);
	cr_assert_eq(fi.size, n, "published %llu bytes, expected %zu",
		     (unsigned long long)fi.size, n);
	cr_assert_eq(djmfs_pread(r, got, n + 1, 0), (ssize_t)n);
	cr_assert(memcmp(got, want, n) == 0, "content differs");
	cr_assert_eq(djmfs_close(r), 0);
	djmfs_disconnect(c);
	free(got);
}

/* ------------------------------------------------------------------ */
/* A proxy that cuts the connection at a chosen frame                   */
/* ------------------------------------------------------------------ */

struct proxy {
	char path[100];	  /* clients connect here */
	char addr[110];	  /* "unix:<path>" */
	int lfd;
	pthread_t th;
	pthread_mutex_t mu;
	int stop;
	int cut_op;	  /* cut at the next frame of this op (0: none) */
	int cut_answer;	  /* 1: at its answer, 0: at its request */
	int cuts;	  /* connections cut so far */
};

static struct proxy px;

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	int fd;

	if (n >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, n + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One direction of a pair: bytes read, forwarded a whole frame at a
 * time.  Returns 0, or -1 when the pair must go (closed, or cut). */
static int pump(int from, int to, uint8_t *buf, size_t *have, int answers)
{
	ssize_t r = read(from, buf + *have, 65536 - *have);

	if (r <= 0)
		return -1;
	*have += (size_t)r;
	while (*have >= HDR) {
		uint32_t len = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 |
			       (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
		int op = buf[8] | buf[9] << 8, cut;

		cr_assert_leq(len, 65536 - HDR, "test frames stay small");
		if (*have < HDR + len)
			break;
		pthread_mutex_lock(&px.mu);
		cut = px.cut_op == op && px.cut_answer == answers;
		if (cut) {
			px.cut_op = 0;
			px.cuts++;
		}
		pthread_mutex_unlock(&px.mu);
		if (cut)
			return -1;
		if (write(to, buf, HDR + len) != (ssize_t)(HDR + len))
			return -1;
		memmove(buf, buf + HDR + len, *have - HDR - len);
		*have -= HDR + len;
	}
	return 0;
}

static void *proxy_main(void *arg)
{
	static uint8_t up[65536], down[65536];
	size_t nup = 0, ndown = 0;
	int cfd = -1, sfd = -1;

	(void)arg;
	for (;;) {
		struct pollfd p[3] = { { px.lfd, POLLIN, 0 },
				       { cfd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int stop, bad = 0;

		poll(p, 3, 50);
		pthread_mutex_lock(&px.mu);
		stop = px.stop;
		pthread_mutex_unlock(&px.mu);
		if (stop)
			break;
		if (p[0].revents & POLLIN) {
			int nc = accept4(px.lfd, NULL, NULL, SOCK_CLOEXEC);
			int ns = nc >= 0 ? unix_connect(env.sock) : -1;

			if (ns < 0) {
				if (nc >= 0)
					close(nc);
			} else {
				if (cfd >= 0)
					close(cfd), close(sfd);
				cfd = nc, sfd = ns, nup = ndown = 0;
			}
			continue;
		}
		if (cfd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			bad |= pump(cfd, sfd, up, &nup, 0);
		if (cfd >= 0 && !bad &&
		    (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
			bad |= pump(sfd, cfd, down, &ndown, 1);
		if (bad) {
			close(cfd);
			close(sfd);
			cfd = sfd = -1;
		}
	}
	if (cfd >= 0)
		close(cfd), close(sfd);
	return NULL;
}

static void proxy_start(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(&px, 0, sizeof(px));
	pthread_mutex_init(&px.mu, NULL);
	snprintf(px.path, sizeof(px.path), "%s/proxy", env.dir);
	snprintf(px.addr, sizeof(px.addr), "unix:%s", px.path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", px.path);
	px.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(px.lfd, 0);
	cr_assert_eq(bind(px.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(px.lfd, 8), 0);
	cr_assert_eq(pthread_create(&px.th, NULL, proxy_main, NULL), 0);
}

static void proxy_cut(int op, int at_answer)
{
	pthread_mutex_lock(&px.mu);
	px.cut_op = op;
	px.cut_answer = at_answer;
	pthread_mutex_unlock(&px.mu);
}

static void proxy_stop(void)
{
	pthread_mutex_lock(&px.mu);
	px.stop = 1;
	pthread_mutex_unlock(&px.mu);
	pthread_join(px.th, NULL);
	close(px.lfd);
	unlink(px.path);
}

static int proxy_cuts(void)
{
	int n;

	pthread_mutex_lock(&px.mu);
	n = px.cuts;
	pthread_mutex_unlock(&px.mu);
	return n;
}

TestSuite(reconnect, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ */
/* Restarts                                                             */
/* ------------------------------------------------------------------ */

Test(reconnect, a_writer_goes_on_after_the_server_restarts)
{
	struct djmfs_client *c = client_at(env.server, WINDOW_MS);
	struct djmfs_conn_stats cs;
	struct djmfs_file *w;
	uint8_t buf[6 * 10000];
	uint32_t id;

	fill(buf, sizeof(buf), 1);
	w = new_file(c, "rec", 1, &id);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(djmfs_write(w, buf + i * 10000, 10000), 10000);
	restart_server();
	for (int i = 3; i < 6; i++)
		cr_assert_eq(djmfs_write(w, buf + i * 10000, 10000), 10000);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.outages, 1);
	cr_assert_eq(cs.reconnects, 1);
	cr_assert_eq(cs.connected, 1);
	cr_assert_eq(djmfs_close(w), 0);
	expect_content("rec", buf, sizeof(buf));
	djmfs_disconnect(c);
}

Test(reconnect, unpublished_data_in_reserved_units_is_rewritten)
{
	struct djmfs_client *c = client_at(env.server, WINDOW_MS);
	struct djmfs_conn_stats cs;
	struct djmfs_file *w;
	size_t n = 5 * AU + 1234, pub = 3000;
	uint8_t *buf = malloc(n);
	uint32_t id;

	cr_assert_not_null(buf);
	fill(buf, n, 7);
	w = new_file(c, "staged", 0, &id);
	cr_assert_eq(djmfs_write(w, buf, pub), (ssize_t)pub);
	cr_assert_eq(djmfs_flush(w), 0);
	/* Past the published unit: these bytes lie in reserved units,
	 * which the restarted server no longer knows as ours. */
	cr_assert_eq(djmfs_write(w, buf + pub, n - pub), (ssize_t)(n - pub));
	restart_server();
	cr_assert_eq(djmfs_flush(w), 0);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.reconnects, 1);
	cr_assert_geq(cs.rewritten_bytes, n - AU);
	cr_assert_eq(djmfs_close(w), 0);
	expect_content("staged", buf, n);
	djmfs_disconnect(c);
	free(buf);
}

Test(reconnect, a_reader_resumes_on_the_latest_snapshot)
{
	struct djmfs_client *c = client_at(env.server, WINDOW_MS);
	struct djmfs_file *w, *r = NULL;
	struct djmfs_file_info fi;
	uint8_t buf[8192], got[8192];
	uint32_t id;

	fill(buf, sizeof(buf), 3);
	w = new_file(c, "live", 1, &id);
	cr_assert_eq(djmfs_write(w, buf, 4096), 4096);
	cr_assert_eq(djmfs_open(c, "live", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_lock_snap(r, 0, &fi), 0);
	restart_server();
	/* Waits for the reader's restore: frozen again, on what is the
	 * latest snapshot then (nothing newer was published). */
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 4096);
	cr_assert(fi.flags & DJMFS_FILE_SNAP_LOCKED);
	cr_assert_eq(djmfs_write(w, buf + 4096, 4096), 4096);
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 4096);
	cr_assert_eq(djmfs_unlock_snap(r), 0);
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 8192);
	cr_assert_eq(djmfs_pread(r, got, sizeof(got), 0), 8192);
	cr_assert(memcmp(got, buf, sizeof(buf)) == 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

struct async_done {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;
	ssize_t res;
};

static void on_done(void *user, ssize_t res)
{
	struct async_done *d = user;

	pthread_mutex_lock(&d->mu);
	d->n++;
	d->res = res;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

Test(reconnect, an_async_write_made_during_the_outage_waits_for_it)
{
	struct djmfs_client *c = client_at(env.server, WINDOW_MS);
	struct async_done d = { PTHREAD_MUTEX_INITIALIZER,
				PTHREAD_COND_INITIALIZER, 0, 0 };
	struct djmfs_file_info fi;
	struct djmfs_file *w;
	uint8_t buf[4096];
	uint32_t id;

	fill(buf, sizeof(buf), 5);
	w = new_file(c, "queued", 1, &id);
	cr_assert_eq(djmfs_write(w, buf, 1000), 1000);
	server_env_stop(&env);
	cr_assert_eq(djmfs_write_async(w, buf + 1000, 3096, 0, on_done, &d),
		     0);
	restart_server();
	/* A blocking call during or after the outage: it waits, then
	 * works. */
	cr_assert_eq(djmfs_stat(c, "queued", &fi), 0);
	pthread_mutex_lock(&d.mu);
	while (d.n == 0)
		pthread_cond_wait(&d.cv, &d.mu);
	pthread_mutex_unlock(&d.mu);
	cr_assert_eq(d.n, 1);
	cr_assert_eq(d.res, 3096);
	cr_assert_eq(djmfs_close(w), 0);
	expect_content("queued", buf, sizeof(buf));
	djmfs_disconnect(c);
}

Test(reconnect, calls_fail_with_enotconn_once_the_window_is_over)
{
	struct djmfs_client *c = client_at(env.server, 300);
	struct djmfs_conn_stats cs;
	struct djmfs_file_info fi;
	struct djmfs_file *w;
	uint32_t id;

	w = new_file(c, "gone", 1, &id);
	cr_assert_eq(djmfs_write(w, "abc", 3), 3);
	server_env_stop(&env);
	cr_assert_eq(djmfs_stat(c, "gone", &fi), -ENOTCONN);
	cr_assert_eq(djmfs_write(w, "def", 3), -ENOTCONN);
	cr_assert_eq(djmfs_close(w), -ENOTCONN);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.outages, 1);
	cr_assert_eq(cs.reconnects, 0);
	cr_assert_eq(cs.connected, 0);
	djmfs_disconnect(c);
}

Test(reconnect, no_reconnect_fails_at_once_as_before)
{
	struct djmfs_client *c = client_at(env.server,
					   DJMFS_CLIENT_NO_RECONNECT);
	struct djmfs_conn_stats cs;
	struct djmfs_file_info fi;

	server_env_stop(&env);
	cr_assert_eq(djmfs_stat(c, "x", &fi), -ENOTCONN);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.outages, 0);
	djmfs_disconnect(c);
}

/* ------------------------------------------------------------------ */
/* Answers lost on the way                                              */
/* ------------------------------------------------------------------ */

Test(reconnect, a_publish_whose_answer_was_lost_is_not_applied_twice)
{
	struct djmfs_client *c;
	struct djmfs_conn_stats cs;
	struct djmfs_file_info fi;
	struct djmfs_file *w;
	uint8_t buf[3 * 5000];
	uint64_t v0;
	uint32_t id;

	proxy_start();
	c = client_at(px.addr, WINDOW_MS);
	fill(buf, sizeof(buf), 11);
	w = new_file(c, "once", 1, &id);
	cr_assert_eq(djmfs_write(w, buf, 5000), 5000);
	cr_assert_eq(djmfs_file_info(w, &fi), 0);
	v0 = fi.version;
	/* The server applies the next publish; its answer never comes. */
	proxy_cut(OP_PUBLISH, 1);
	cr_assert_eq(djmfs_write(w, buf + 5000, 5000), 5000);
	cr_assert_eq(proxy_cuts(), 1);
	cr_assert_eq(djmfs_write(w, buf + 10000, 5000), 5000);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.reconnects, 1);
	cr_assert_eq(cs.confirmed, 1);
	cr_assert_eq(djmfs_file_info(w, &fi), 0);
	/* One publish per write: none twice. */
	cr_assert_eq(fi.version, v0 + 2);
	cr_assert_eq(djmfs_close(w), 0);
	expect_content("once", buf, sizeof(buf));
	djmfs_disconnect(c);
	proxy_stop();
}

Test(reconnect, a_publish_the_server_never_saw_is_sent_again)
{
	struct djmfs_client *c;
	struct djmfs_conn_stats cs;
	struct djmfs_file *w;
	uint8_t buf[3 * 5000];
	uint32_t id;

	proxy_start();
	c = client_at(px.addr, WINDOW_MS);
	fill(buf, sizeof(buf), 13);
	w = new_file(c, "again", 1, &id);
	cr_assert_eq(djmfs_write(w, buf, 5000), 5000);
	proxy_cut(OP_PUBLISH, 0);
	/* The old session keeps the lock for its lease: the reopen waits
	 * it out (-EBUSY, retried). */
	cr_assert_eq(djmfs_write(w, buf + 5000, 5000), 5000);
	cr_assert_eq(proxy_cuts(), 1);
	cr_assert_eq(djmfs_write(w, buf + 10000, 5000), 5000);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.reconnects, 1);
	cr_assert_eq(cs.confirmed, 0);
	cr_assert_geq(cs.resent, 1);
	cr_assert_eq(djmfs_close(w), 0);
	expect_content("again", buf, sizeof(buf));
	djmfs_disconnect(c);
	proxy_stop();
}

Test(reconnect, an_object_created_before_its_answer_was_lost_exists_once)
{
	struct djmfs_client *c;
	struct djmfs_conn_stats cs;
	struct djmfs_file_info fi;
	struct djmfs_file *w = NULL;
	uint32_t id = 0, id2 = 0;

	proxy_start();
	c = client_at(px.addr, WINDOW_MS);
	cr_assert_eq(djmfs_open(c, "objs", DJMFS_O_READ | DJMFS_O_WRITE |
					      DJMFS_O_CREATE, &w), 0);
	proxy_cut(OP_CREATE_OBJ, 1);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
				      DJMFS_ATTR_SYNC, &id), 0);
	cr_assert_eq(proxy_cuts(), 1);
	cr_assert_eq(djmfs_create_obj(w, "index", DJMFS_ATTR_DATA, &id2), 0);
	cr_assert_eq(djmfs_write(w, "hello", 5), 5);
	djmfs_conn_stats(c, &cs);
	cr_assert_eq(cs.confirmed, 1);
	cr_assert_eq(djmfs_close(w), 0);
	cr_assert_eq(djmfs_stat(c, "objs", &fi), 0);
	cr_assert_eq(fi.n_objs, 2);
	cr_assert_str_eq(fi.objs[0].name, "data");
	cr_assert_str_eq(fi.objs[1].name, "index");
	cr_assert_eq(fi.size, 5);
	djmfs_disconnect(c);
	proxy_stop();
}
