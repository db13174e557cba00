/*
 * Tests of the metadata server (djmfs_server.c, djmfs_session.c,
 * djmfs_ops.c): a real server on a temporary volume, run in a thread with
 * a 300 ms lease, spoken to in raw protocol frames over its Unix socket.
 * They cover every operation, durability before acknowledgement, the
 * single-writer lock and its lease after a client dies, LOCK_SNAP holds,
 * hostile peers, a CHALLENGE to a server without a shared secret, a full
 * volume, and booting again after a clean stop and after a crash (a trim
 * too).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_srv.h"
#include "djmfs_volio.h"

#define LEASE_MS 300
#define SNAP_MAX_MS 500
#define VOL_SIZE (64ull << 20)

/* ------------------------------------------------------------------ */
/* The server under test                                                */
/* ------------------------------------------------------------------ */

static struct {
	char dir[64];
	char vol[128];
	char sock[128];
	struct djmfs_server *s;
	pthread_t th;
	int running;
} T;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];
static size_t log_len;

static void log_fn(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg, (void)lvl;
	pthread_mutex_lock(&log_mu);
	if (log_len + n + 2 < sizeof(log_text)) {
		memcpy(log_text + log_len, msg, n);
		log_len += n;
		log_text[log_len++] = '\n';
		log_text[log_len] = '\0';
	}
	pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *needle)
{
	int found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

static void srv_opts(struct djmfs_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->volume = T.vol;
	o->unix_path = T.sock;
	o->lease_ms = LEASE_MS;
	o->snap_lock_max_ms = SNAP_MAX_MS;
	o->prefetch_aus = 8;
	o->log.fn = log_fn;
}

static void *srv_thread(void *arg)
{
	(void)arg;
	djmfs_server_run(T.s);
	return NULL;
}

static void srv_start(void)
{
	struct djmfs_server_opts o;

	srv_opts(&o);
	cr_assert_eq(djmfs_server_new(&T.s, &o), 0, "djmfs_server_new");
	cr_assert_eq(pthread_create(&T.th, NULL, srv_thread, NULL), 0);
	T.running = 1;
}

static void srv_stop(void)
{
	if (!T.running)
		return;
	djmfs_server_stop(T.s);
	pthread_join(T.th, NULL);
	djmfs_server_free(T.s);
	T.s = NULL;
	T.running = 0;
}

static void setup(void)
{
	strcpy(T.dir, "/tmp/djmfs-srv-XXXXXX");
	cr_assert(mkdtemp(T.dir));
	snprintf(T.vol, sizeof(T.vol), "%s/vol", T.dir);
	snprintf(T.sock, sizeof(T.sock), "%s/sock", T.dir);
	cr_assert_eq(djmfs_mkfs(T.vol, VOL_SIZE, 0, 0, NULL), 0);
	log_len = 0;
	log_text[0] = '\0';
	srv_start();
}

static void teardown(void)
{
	srv_stop();
	unlink(T.vol);
	unlink(T.sock);
	rmdir(T.dir);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 30);

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* A raw protocol client                                                */
/* ------------------------------------------------------------------ */

struct tc {
	int fd;
	uint32_t id;
	uint8_t *frame; /* the last answer; m's views point into it */
	struct djmfs__msg q, m;
	uint64_t data_off;
	uint32_t au_size;
	uint64_t n_aus;
};

static int sock_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 3, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t w;

	while (n) {
		w = send(fd, b, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

/* Reads exactly @n bytes: 0, or -1 at end of stream / timeout. */
static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	ssize_t r;

	while (n) {
		r = recv(fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static struct djmfs__msg *req(struct tc *c, unsigned op)
{
	memset(&c->q, 0, sizeof(c->q));
	c->q.h.op = (uint16_t)op;
	c->q.h.kind = DJMFS_REQ;
	return &c->q;
}

/* Encodes one request (or several, with @more) into one send. */
static void tc_send(struct tc *c)
{
	struct djmfs__buf b;

	c->q.h.id = ++c->id;
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__msg_encode(&b, &c->q), 0);
	write_all(c->fd, b.p, b.len);
	djmfs__buf_free(&b);
}

static int tc_recv(struct tc *c)
{
	uint8_t h[DJMFS_HDR_SIZE];
	uint32_t len;

	if (read_all(c->fd, h, sizeof(h)) < 0)
		return -1;
	len = djmfs__le32(h);
	free(c->frame);
	c->frame = malloc(DJMFS_HDR_SIZE + len + 1);
	memcpy(c->frame, h, sizeof(h));
	if (read_all(c->fd, c->frame + DJMFS_HDR_SIZE, len) < 0)
		return -1;
	cr_assert_eq(djmfs__msg_decode(c->frame, DJMFS_HDR_SIZE + len, &c->m),
		     0);
	cr_assert_eq(c->m.h.kind, DJMFS_RESP);
	return 0;
}

/* Sends c->q and returns the answer's status. */
static int rpc(struct tc *c)
{
	uint32_t id;

	tc_send(c);
	id = c->q.h.id;
	cr_assert_eq(tc_recv(c), 0, "no answer to %s",
		     djmfs__op_name(c->q.h.op));
	cr_assert_eq(c->m.h.id, id);
	cr_assert_eq(c->m.h.op, c->q.h.op);
	return c->m.status;
}

/* 1 when the server closed the connection within the receive timeout. */
static int closed_by_server(struct tc *c)
{
	uint8_t b[256];
	ssize_t r;

	while ((r = recv(c->fd, b, sizeof(b), 0)) > 0)
		;
	return r == 0;
}

static void tc_hello(struct tc *c, const char *name)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_HELLO);

	q->u.hello_req.proto = DJMFS_PROTO_VERSION;
	snprintf(q->u.hello_req.name, sizeof(q->u.hello_req.name), "%s", name);
	cr_assert_eq(rpc(c), 0, "HELLO");
	cr_assert_gt(c->m.u.hello_resp.session, 0);
	cr_assert_eq(c->m.u.hello_resp.lease_ms, LEASE_MS);
	cr_assert_eq(c->m.u.hello_resp.volume[0], '/', "volume path absolute");
	c->data_off = c->m.u.hello_resp.data_off;
	c->au_size = c->m.u.hello_resp.au_size;
	c->n_aus = c->m.u.hello_resp.n_aus;
}

static void tc_open(struct tc *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->fd = sock_connect(T.sock);
	if (name)
		tc_hello(c, name);
}

static void tc_close(struct tc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->frame);
	c->frame = NULL;
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

static int op_open(struct tc *c, const char *name, unsigned flags,
		   uint32_t *h)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_OPEN);
	int rc;

	q->u.open_req.flags = flags;
	snprintf(q->u.open_req.name, sizeof(q->u.open_req.name), "%s", name);
	rc = rpc(c);
	if (rc == 0 && h)
		*h = c->m.u.open_resp.handle;
	return rc;
}

static int op_handle(struct tc *c, unsigned op, uint32_t h)
{
	req(c, op)->u.handle_req.handle = h;
	return rpc(c);
}

static int op_create_obj(struct tc *c, uint32_t h, const char *name,
			 uint32_t attrs, uint32_t *id)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_CREATE_OBJ);
	int rc;

	q->u.create_obj_req.handle = h;
	q->u.create_obj_req.attrs = attrs;
	snprintf(q->u.create_obj_req.name, sizeof(q->u.create_obj_req.name),
		 "%s", name);
	rc = rpc(c);
	if (rc == 0 && id)
		*id = c->m.u.obj_resp.obj_id;
	return rc;
}

static int op_obj(struct tc *c, unsigned op, uint32_t h, uint32_t id,
		  uint32_t attrs)
{
	struct djmfs__msg *q = req(c, op);

	q->u.obj_req.handle = h;
	q->u.obj_req.obj_id = id;
	q->u.obj_req.attrs = attrs;
	return rpc(c);
}

/* Reserves and returns the first run. */
static int op_reserve(struct tc *c, uint32_t h, uint32_t n,
		      struct djmfs__run *first, uint64_t *units)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_RESERVE);
	uint32_t i;
	int rc;

	q->u.reserve_req.handle = h;
	q->u.reserve_req.n_aus = n;
	rc = rpc(c);
	if (rc == 0) {
		cr_assert_gt(c->m.u.reserve_resp.n, 0);
		if (first)
			*first = djmfs__runv_at(c->m.u.reserve_resp, 0);
		if (units)
			for (*units = 0, i = 0; i < c->m.u.reserve_resp.n; i++)
				*units += djmfs__runv_at(c->m.u.reserve_resp,
							 i).count;
	}
	return rc;
}

struct pubspec {
	uint32_t id;
	uint64_t size;
	uint64_t off, len; /* one extent, when len */
	const char *meta;  /* META content, when set */
};

static int op_publish(struct tc *c, uint32_t h, uint64_t base,
		      const struct pubspec *ps, unsigned n, uint64_t *version)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_PUBLISH);
	struct djmfs__publish *p = &q->u.publish_req.pub;
	struct djmfs__buf b;
	unsigned i;
	int rc;

	djmfs__buf_init(&b);
	for (i = 0; i < n; i++)
		djmfs__put_ext(&b, ps[i].off, ps[i].len);
	q->u.publish_req.handle = h;
	p->base_version = base;
	p->n_objs = n;
	for (i = 0; i < n; i++) {
		p->objs[i].obj_id = ps[i].id;
		p->objs[i].size = ps[i].size;
		if (ps[i].len) {
			p->objs[i].ext.p = b.p + (size_t)i * DJMFS_EXT_WIRE;
			p->objs[i].ext.n = 1;
		}
		if (ps[i].meta) {
			p->objs[i].has_meta = 1;
			p->objs[i].meta = (const uint8_t *)ps[i].meta;
			p->objs[i].meta_len = (uint32_t)strlen(ps[i].meta);
			p->objs[i].size = p->objs[i].meta_len;
		}
	}
	rc = rpc(c);
	djmfs__buf_free(&b);
	if (rc == 0 && version)
		*version = c->m.u.publish_resp.version;
	return rc;
}

static int op_snap(struct tc *c, unsigned op, uint32_t h, uint32_t timeout,
		   uint64_t known_version, uint32_t known_id,
		   uint32_t known_n_ext)
{
	struct djmfs__msg *q = req(c, op);

	q->u.snap_req.handle = h;
	q->u.snap_req.timeout_ms = timeout;
	q->u.snap_req.known.version = known_version;
	if (known_n_ext) {
		q->u.snap_req.known.n = 1;
		q->u.snap_req.known.o[0].id = known_id;
		q->u.snap_req.known.o[0].n_ext = known_n_ext;
	}
	return rpc(c);
}

static int op_name(struct tc *c, unsigned op, const char *name)
{
	struct djmfs__msg *q = req(c, op);

	snprintf(q->u.name_req.name, sizeof(q->u.name_req.name), "%s", name);
	return rpc(c);
}

static const struct djmfs__snap_obj *snap_obj(const struct djmfs__snap *sn,
					      uint32_t id)
{
	uint32_t i;

	for (i = 0; i < sn->n_objs; i++)
		if (sn->objs[i].id == id)
			return &sn->objs[i];
	cr_assert_fail("object %u missing from the snapshot", id);
	return NULL;
}

/* A writer's file with a META "hdr" and a DATA|SYNC "data" object, at
 * version 2. */
static void make_file(struct tc *c, const char *name, uint32_t *h,
		      uint32_t *meta_id, uint32_t *data_id)
{
	cr_assert_eq(op_open(c, name,
			     DJMFS_O_READ | DJMFS_O_WRITE | DJMFS_O_CREATE,
			     h),
		     0);
	cr_assert_eq(op_create_obj(c, *h, "hdr", DJMFS_ATTR_META, meta_id), 0);
	cr_assert_eq(op_create_obj(c, *h, "data",
				   DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC, data_id),
		     0);
	cr_assert_eq(c->m.u.obj_resp.version, 2);
}

/* Reserves and publishes @len bytes of "data" plus the META text; returns
 * the new version. */
static uint64_t write_some(struct tc *c, uint32_t h, uint32_t meta_id,
			   uint32_t data_id, uint64_t base, const char *text)
{
	struct djmfs__run run;
	struct pubspec ps[2] = {
		{ meta_id, 0, 0, 0, text },
		{ data_id, 8192, 0, 8192, NULL },
	};
	uint64_t v = 0;

	cr_assert_eq(op_reserve(c, h, 4, &run, NULL), 0);
	ps[1].off = c->data_off + run.first * c->au_size;
	cr_assert_eq(op_publish(c, h, base, ps, 2, &v), 0);
	cr_assert_eq(v, base + 1);
	return v;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

Test(server, answers_file_object_and_space_operations)
{
	struct tc a;
	struct djmfs__run run;
	uint32_t h = 0, mid = 0, did = 0, x = 0;
	uint64_t v = 0, units = 0;

	tc_open(&a, "all-ops");
	req(&a, DJMFS_OP_HELLO)->u.hello_req.proto = DJMFS_PROTO_VERSION;
	cr_assert_eq(rpc(&a), -EISCONN);
	req(&a, DJMFS_OP_PING);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_gt(a.m.u.ping_resp.now_ns, 0);

	cr_assert_eq(op_open(&a, "f1", DJMFS_O_READ, NULL), -ENOENT);
	cr_assert_eq(op_open(&a, "f1", DJMFS_O_READ | DJMFS_O_CREATE, NULL),
		     -EINVAL);
	cr_assert_eq(op_open(&a, "f1", DJMFS_O_WRITE | DJMFS_O_CREATE, &h), 0);
	cr_assert_eq(a.m.u.open_resp.snap.version, 0);
	cr_assert(a.m.u.open_resp.snap.flags & DJMFS_FILE_WRITE_LOCKED);
	cr_assert_eq(op_open(&a, "f1", DJMFS_O_WRITE | DJMFS_O_CREATE |
				       DJMFS_O_EXCL, NULL), -EEXIST);
	cr_assert_eq(op_create_obj(&a, h, "hdr", DJMFS_ATTR_META, &mid), 0);
	cr_assert_eq(op_create_obj(&a, h, "data",
				   DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC, &did), 0);
	cr_assert_eq(op_create_obj(&a, h, "data2",
				   DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC, &x),
		     -EEXIST);
	cr_assert_eq(op_create_obj(&a, h, "hdr", DJMFS_ATTR_DATA, &x), -EEXIST);
	cr_assert_eq(op_obj(&a, DJMFS_OP_SET_ATTR, h, did, DJMFS_ATTR_DATA), 0);
	cr_assert_eq(op_obj(&a, DJMFS_OP_SET_ATTR, h, did,
			    DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC), 0);
	cr_assert_eq(a.m.u.obj_resp.version, 4);
	cr_assert_eq(op_obj(&a, DJMFS_OP_SET_ATTR, h, mid, DJMFS_ATTR_DATA),
		     -EINVAL);

	cr_assert_eq(op_reserve(&a, h, 4, &run, &units), 0);
	cr_assert_eq(units, 4);
	{
		struct pubspec ps[2] = {
			{ mid, 0, 0, 0, "hello" },
			{ did, 8192, a.data_off + run.first * a.au_size, 8192,
			  NULL },
		};
		cr_assert_eq(op_publish(&a, h, 3, ps, 2, &v), -ESTALE);
		cr_assert_eq(op_publish(&a, h, 4, ps, 2, &v), 0);
		cr_assert_eq(v, 5);
	}
	req(&a, DJMFS_OP_DF);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.df_resp.total_aus, a.n_aus);
	cr_assert_eq(a.m.u.df_resp.reserved_aus, 3); /* one unit mapped */
	cr_assert_eq(a.m.u.df_resp.free_aus, a.n_aus - 4);
	cr_assert_eq(a.m.u.df_resp.files, 1);
	cr_assert_eq(a.m.u.df_resp.au_size, a.au_size);

	cr_assert_eq(op_obj(&a, DJMFS_OP_DELETE_OBJ, h, mid, 0), 0);
	cr_assert_eq(a.m.u.obj_resp.version, 6);
	cr_assert_eq(op_obj(&a, DJMFS_OP_DELETE_OBJ, h, mid, 0), -ENOENT);
	cr_assert_eq(op_name(&a, DJMFS_OP_UNLINK, "f1"), -EBUSY);
	cr_assert_eq(op_handle(&a, DJMFS_OP_CLOSE, h), 0);
	cr_assert_eq(op_handle(&a, DJMFS_OP_CLOSE, h), -EBADF);
	cr_assert_eq(op_name(&a, DJMFS_OP_UNLINK, "f1"), 0);
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "f1"), -ENOENT);

	/* The reservation came back at once, the data unit after a lease. */
	req(&a, DJMFS_OP_DF);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.df_resp.reserved_aus, 0);
	cr_assert_eq(a.m.u.df_resp.deferred_aus, 1);
	cr_assert_eq(a.m.u.df_resp.free_aus, a.n_aus - 1);
	cr_assert_eq(a.m.u.df_resp.files, 0);
	tc_close(&a);
}

Test(server, sends_full_snapshots_then_deltas)
{
	const struct djmfs__snap *sn;
	const struct djmfs__snap_obj *o;
	uint32_t h = 0, mid = 0, did = 0;
	struct tc a;
	uint64_t v = 0;

	tc_open(&a, "snaps");
	sn = &a.m.u.snap_resp;
	make_file(&a, "f1", &h, &mid, &did);
	v = write_some(&a, h, mid, did, 2, "hello");

	cr_assert_eq(op_snap(&a, DJMFS_OP_SYNC_SNAP, h, 0, 0, 0, 0), 0);
	cr_assert_eq(sn->version, v);
	cr_assert_eq(sn->n_objs, 2);
	o = snap_obj(sn, did);
	cr_assert_eq(o->ext_total, 1);
	cr_assert_eq(o->ext.n, 1);
	cr_assert_eq(djmfs__extv_at(o->ext, 0).len, 8192);
	o = snap_obj(sn, mid);
	cr_assert_eq(o->meta_len, 5);
	cr_assert_eq(memcmp(o->meta, "hello", 5), 0);
	cr_assert_eq(op_snap(&a, DJMFS_OP_SYNC_SNAP, h, 0, v, did, 1), 0);
	cr_assert_eq(sn->unchanged, 1);
	cr_assert_eq(sn->n_objs, 0);
	cr_assert_eq(op_snap(&a, DJMFS_OP_SYNC_SNAP, h, 0, v - 1, did, 1), 0);
	cr_assert_eq(sn->unchanged, 0);
	o = snap_obj(sn, did);
	cr_assert_eq(o->ext_base, 0); /* the last extent is sent again */
	cr_assert_eq(o->ext.n, 1);

	/* Freezing is a change of lock state even at the same version. */
	cr_assert_eq(op_snap(&a, DJMFS_OP_LOCK_SNAP, h, 200, v, did, 1), 0);
	cr_assert_eq(sn->unchanged, 0);
	cr_assert(sn->flags & DJMFS_FILE_SNAP_LOCKED);
	cr_assert_eq(op_handle(&a, DJMFS_OP_UNLOCK_SNAP, h), 0);
	cr_assert_eq(op_handle(&a, DJMFS_OP_UNLOCK_SNAP, 999), -EBADF);

	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "f1"), 0);
	cr_assert_eq(sn->version, v);
	cr_assert(sn->flags & DJMFS_FILE_WRITE_LOCKED);
	o = snap_obj(sn, mid);
	cr_assert_eq(o->size, 5);
	cr_assert_eq(o->meta_len, 0);
	cr_assert_eq(snap_obj(sn, did)->ext.n, 0);
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "nope"), -ENOENT);
	tc_close(&a);
}

Test(server, reports_counters_in_stats)
{
	uint32_t h = 0, mid = 0, did = 0;
	struct tc a;

	tc_open(&a, "stats");
	make_file(&a, "f1", &h, &mid, &did);
	write_some(&a, h, mid, did, 2, "x");
	req(&a, DJMFS_OP_STATS);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.stats_resp.ops, 7);
	cr_assert_eq(a.m.u.stats_resp.mutations, 5);
	cr_assert_geq(a.m.u.stats_resp.journal_records, 5);
	cr_assert_geq(a.m.u.stats_resp.journal_batches, 1);
	cr_assert_gt(a.m.u.stats_resp.journal_bytes, 0);
	cr_assert_eq(a.m.u.stats_resp.sessions, 1);
	cr_assert_gt(a.m.u.stats_resp.lock_busy_ns, 0);
	cr_assert_gt(a.m.u.stats_resp.uptime_ns, 0);
	cr_assert_eq(a.m.u.stats_resp.meta_repairs_journal, 0);
	cr_assert_eq(a.m.u.stats_resp.meta_repairs_checkpoint, 0);
	cr_assert_eq(a.m.u.stats_resp.meta_repairs_superblock, 0);
	tc_close(&a);
}

/* Flips one byte of the volume file. */
static void flip_at(uint64_t off)
{
	struct djmfs__vol *v;
	uint8_t b;

	cr_assert_eq(djmfs__vol_open(&v, T.vol, 0, NULL), 0);
	cr_assert_eq(djmfs__pread_full(v->fd, &b, 1, off), 0);
	b ^= 0x20;
	cr_assert_eq(djmfs__pwrite_full(v->fd, &b, 1, off), 0);
	djmfs__vol_close(v);
}

Test(server, boot_rewrites_a_bad_copy_of_the_metadata_and_counts_it)
{
	const struct djmfs__boot_info *bi;
	struct djmfs__vol *v;
	struct djmfs__ckpt ck;
	struct tc a;
	char want[256];

	srv_stop();
	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_RDONLY, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(v, &ck, NULL), 0);
	free(ck.img);
	flip_at(v->sb.mckpt_off[ck.slot] + 64 + 1); /* copy B's image */
	djmfs__vol_close(v);
	flip_at(40); /* superblock copy 0 */

	srv_start();
	bi = djmfs__server_boot_info(T.s);
	cr_assert_eq(bi->repaired_sb, 1);
	cr_assert_eq(bi->repaired_ckpt, 1);
	cr_assert(log_has("superblock copy 0 bad (CRC): rewritten from "
			  "copy 1"), "%s", log_text);
	snprintf(want, sizeof(want), "checkpoint slot %u (gen %llu) copy B "
		 "image bad (CRC): rewritten from copy A", ck.slot,
		 (unsigned long long)ck.gen);
	cr_assert(log_has(want), "%s", log_text);
	tc_open(&a, "stats");
	req(&a, DJMFS_OP_STATS);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.stats_resp.meta_repairs_checkpoint, 1);
	cr_assert_eq(a.m.u.stats_resp.meta_repairs_superblock, 1);
	tc_close(&a);

	/* Repaired exactly: the next boot finds nothing. */
	srv_stop();
	srv_start();
	bi = djmfs__server_boot_info(T.s);
	cr_assert_eq(bi->repaired_sb, 0);
	cr_assert_eq(bi->repaired_ckpt, 0);
}

Test(server, lists_names_by_prefix_in_pages)
{
	static const char *const names[] = { "a1", "a2", "a3", "b1", "ab" };
	struct djmfs__list_entry e;
	struct djmfs__cur cur;
	struct djmfs__msg *q;
	struct tc a;
	uint32_t h = 0;
	size_t i;

	tc_open(&a, "lister");
	for (i = 0; i < 5; i++) {
		cr_assert_eq(op_open(&a, names[i],
				     DJMFS_O_WRITE | DJMFS_O_CREATE, &h), 0);
		cr_assert_eq(op_handle(&a, DJMFS_OP_CLOSE, h), 0);
	}
	q = req(&a, DJMFS_OP_LIST);
	strcpy(q->u.list_req.prefix, "a");
	q->u.list_req.max = 2;
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.list_resp.n, 2);
	cr_assert_eq(a.m.u.list_resp.more, 1);
	djmfs__cur_init(&cur, a.m.u.list_resp.p, a.m.u.list_resp.plen);
	cr_assert_eq(djmfs__list_next(&cur, &e), 1);
	cr_assert_str_eq(e.name, "a1");
	cr_assert_eq(djmfs__list_next(&cur, &e), 1);
	cr_assert_str_eq(e.name, "a2");

	q = req(&a, DJMFS_OP_LIST);
	strcpy(q->u.list_req.prefix, "a");
	strcpy(q->u.list_req.after, "a2");
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.list_resp.n, 2);
	cr_assert_eq(a.m.u.list_resp.more, 0);
	djmfs__cur_init(&cur, a.m.u.list_resp.p, a.m.u.list_resp.plen);
	cr_assert_eq(djmfs__list_next(&cur, &e), 1);
	cr_assert_str_eq(e.name, "a3");
	cr_assert_eq(djmfs__list_next(&cur, &e), 1);
	cr_assert_str_eq(e.name, "ab");
	cr_assert_eq(djmfs__list_next(&cur, &e), 0);
	tc_close(&a);
}

Test(server, publish_is_seen_by_others_only_after_its_ack)
{
	struct tc a, b;
	uint32_t ha = 0, hr = 0, hb = 0, mid = 0, did = 0;
	struct djmfs__run run;
	struct djmfs__buf two;
	uint64_t v0 = 0;

	tc_open(&a, "writer");
	tc_open(&b, "reader");
	make_file(&a, "rec", &ha, &mid, &did);
	v0 = write_some(&a, ha, mid, did, 2, "v3");
	cr_assert_eq(op_open(&a, "rec", DJMFS_O_READ, &hr), 0);
	cr_assert_eq(op_open(&b, "rec", DJMFS_O_READ, &hb), 0);
	cr_assert_eq(b.m.u.open_resp.snap.version, v0);
	cr_assert_eq(op_reserve(&a, ha, 1, &run, NULL), 0);

	/* PUBLISH and a SYNC_SNAP in one send: the server handles both
	 * before the publish can be durable, so the snapshot is the old
	 * one and is answered first. */
	djmfs__buf_init(&two);
	{
		struct djmfs__msg *q = req(&a, DJMFS_OP_PUBLISH);
		struct djmfs__buf ext;

		djmfs__buf_init(&ext);
		djmfs__put_ext(&ext, a.data_off + run.first * a.au_size, 4096);
		q->u.publish_req.handle = ha;
		q->u.publish_req.pub.base_version = v0;
		q->u.publish_req.pub.n_objs = 1;
		q->u.publish_req.pub.objs[0].obj_id = did;
		q->u.publish_req.pub.objs[0].size = 8192 + 4096;
		q->u.publish_req.pub.objs[0].ext.p = ext.p;
		q->u.publish_req.pub.objs[0].ext.n = 1;
		q->h.id = 100;
		cr_assert_eq(djmfs__msg_encode(&two, q), 0);
		djmfs__buf_free(&ext);
		q = req(&a, DJMFS_OP_SYNC_SNAP);
		q->u.snap_req.handle = hr;
		q->h.id = 101;
		cr_assert_eq(djmfs__msg_encode(&two, q), 0);
	}
	write_all(a.fd, two.p, two.len);
	djmfs__buf_free(&two);
	cr_assert_eq(tc_recv(&a), 0);
	cr_assert_eq(a.m.h.id, 101, "the snapshot is answered first");
	cr_assert_eq(a.m.u.snap_resp.version, v0);
	cr_assert_eq(tc_recv(&a), 0);
	cr_assert_eq(a.m.h.id, 100);
	cr_assert_eq(a.m.status, 0);
	cr_assert_eq(a.m.u.publish_resp.version, v0 + 1);

	/* Acknowledged: every other reader sees it now. */
	cr_assert_eq(op_snap(&b, DJMFS_OP_SYNC_SNAP, hb, 0, v0, did, 1), 0);
	cr_assert_eq(b.m.u.snap_resp.version, v0 + 1);
	cr_assert_eq(snap_obj(&b.m.u.snap_resp, did)->ext_total, 2);
	cr_assert_eq(snap_obj(&b.m.u.snap_resp, did)->size, 8192 + 4096);
	tc_close(&a);
	tc_close(&b);
}

Test(server, second_writer_gets_ebusy_until_the_dead_writers_lease_ends)
{
	struct tc a, b;
	uint32_t ha = 0, hb = 0, mid = 0, did = 0;
	uint64_t t0, waited;
	int rc;

	tc_open(&a, "first");
	tc_open(&b, "second");
	make_file(&a, "busy", &ha, &mid, &did);
	write_some(&a, ha, mid, did, 2, "x");
	cr_assert_eq(op_open(&b, "busy", DJMFS_O_WRITE, &hb), -EBUSY);
	cr_assert_eq(op_open(&b, "busy", DJMFS_O_READ, &hb), 0);
	cr_assert(b.m.u.open_resp.snap.flags & DJMFS_FILE_WRITE_LOCKED);

	/* The first client dies: its lock outlives the connection. */
	tc_close(&a);
	t0 = now_ms();
	cr_assert_eq(op_open(&b, "busy", DJMFS_O_WRITE, &hb), -EBUSY);
	do {
		sleep_ms(25);
		rc = op_open(&b, "busy", DJMFS_O_WRITE, &hb);
		waited = now_ms() - t0;
	} while (rc == -EBUSY && waited < 3000);
	cr_assert_eq(rc, 0);
	cr_assert_geq(waited, LEASE_MS - 120, "lock freed after %llu ms",
		      (unsigned long long)waited);
	cr_assert(log_has("(first) expired: released 1 files, 3 units"));
	/* The dead writer's reservation went back to free space. */
	req(&b, DJMFS_OP_DF);
	cr_assert_eq(rpc(&b), 0);
	cr_assert_eq(b.m.u.df_resp.reserved_aus, 0);
	cr_assert_eq(b.m.u.df_resp.free_aus, b.n_aus - 1);
	tc_close(&b);
}

Test(server, closes_a_silent_connection_after_its_lease)
{
	struct tc a, b;
	int i;

	tc_open(&a, "silent");
	tc_open(&b, "chatty");
	for (i = 0; i < 8; i++) {
		sleep_ms(100);
		req(&b, DJMFS_OP_PING);
		cr_assert_eq(rpc(&b), 0);
	}
	cr_assert(closed_by_server(&a));
	cr_assert(log_has("(silent) expired"));
	tc_close(&a);
	tc_close(&b);
}

/* A peer that breaks the protocol loses its connection; @good, which said
 * HELLO before, is still served. */
static void check_cut_off(struct tc *bad, struct tc *good)
{
	cr_assert(closed_by_server(bad));
	req(good, DJMFS_OP_PING);
	cr_assert_eq(rpc(good), 0);
	tc_close(bad);
}

Test(server, drops_a_peer_that_sends_a_bad_header_or_garbage)
{
	static const uint8_t garbage[32] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	uint8_t hdr[DJMFS_HDR_SIZE];
	struct djmfs__buf b;
	struct tc good, bad;

	tc_open(&good, "good");

	tc_open(&bad, "oversized");
	djmfs__buf_init(&b);
	req(&bad, DJMFS_OP_PING);
	cr_assert_eq(djmfs__msg_encode(&b, &bad.q), 0);
	memcpy(hdr, b.p, sizeof(hdr));
	djmfs__buf_free(&b);
	hdr[0] = 0xff, hdr[1] = 0xff, hdr[2] = 0xff, hdr[3] = 0x7f;
	write_all(bad.fd, hdr, sizeof(hdr));
	check_cut_off(&bad, &good);

	tc_open(&bad, "garbage");
	write_all(bad.fd, garbage, sizeof(garbage));
	check_cut_off(&bad, &good);
	cr_assert(log_has("bad frame header"));

	/* A well-framed PING whose body has a trailing byte. */
	tc_open(&bad, "trailing");
	djmfs__buf_init(&b);
	req(&bad, DJMFS_OP_PING);
	cr_assert_eq(djmfs__msg_encode(&b, &bad.q), 0);
	djmfs__put_u8(&b, 0);
	djmfs__patch_u32(&b, 0, (uint32_t)(b.len - DJMFS_HDR_SIZE));
	write_all(bad.fd, b.p, b.len);
	djmfs__buf_free(&b);
	check_cut_off(&bad, &good);
	tc_close(&good);
}

Test(server, survives_a_truncated_frame_then_close)
{
	struct djmfs__buf b;
	struct tc good, bad;

	tc_open(&good, "good");
	tc_open(&bad, "truncated");
	djmfs__buf_init(&b);
	req(&bad, DJMFS_OP_STAT);
	strcpy(bad.q.u.name_req.name, "some-long-file-name");
	cr_assert_eq(djmfs__msg_encode(&b, &bad.q), 0);
	write_all(bad.fd, b.p, b.len - 5);
	djmfs__buf_free(&b);
	tc_close(&bad);
	sleep_ms(20);
	req(&good, DJMFS_OP_PING);
	cr_assert_eq(rpc(&good), 0);
	tc_close(&good);
}

Test(server, answers_eproto_to_a_frame_before_hello_then_closes)
{
	struct tc good, bad;
	struct djmfs__msg *q;

	tc_open(&good, "good");
	tc_open(&bad, NULL);
	cr_assert_eq(op_name(&bad, DJMFS_OP_STAT, "x"), -EPROTO);
	check_cut_off(&bad, &good);

	tc_open(&bad, NULL);
	q = req(&bad, DJMFS_OP_HELLO);
	q->u.hello_req.proto = DJMFS_PROTO_VERSION + 1;
	cr_assert_eq(rpc(&bad), -EPROTO);
	check_cut_off(&bad, &good);
	tc_close(&good);
}

/* Without a shared secret (test_auth.c has the server with one), a
 * CHALLENGE is declined and the connection may go on to HELLO. */
Test(server, declines_challenge_without_a_secret_and_keeps_serving)
{
	struct djmfs__msg *q;
	struct tc c;

	tc_open(&c, NULL);
	q = req(&c, DJMFS_OP_CHALLENGE);
	q->u.challenge_req.proto = DJMFS_PROTO_VERSION;
	strcpy(q->u.challenge_req.name, "curious");
	cr_assert_eq(rpc(&c), -EOPNOTSUPP);
	tc_hello(&c, "curious");
	req(&c, DJMFS_OP_PING);
	cr_assert_eq(rpc(&c), 0);
	tc_close(&c);
	cr_assert(log_has("CHALLENGE, but this server has no shared secret"));
}

Test(server, lock_snap_holds_the_old_version_until_it_times_out)
{
	struct tc w, r;
	uint32_t hw = 0, hr = 0, mid = 0, did = 0;
	const struct djmfs__snap *sn = &r.m.u.snap_resp;
	uint64_t v1 = 0, v2 = 0, t0 = 0;

	tc_open(&w, "writer");
	tc_open(&r, "reader");
	make_file(&w, "frozen", &hw, &mid, &did);
	v1 = write_some(&w, hw, mid, did, 2, "one");
	cr_assert_eq(op_open(&r, "frozen", DJMFS_O_READ, &hr), 0);
	cr_assert_eq(op_snap(&r, DJMFS_OP_LOCK_SNAP, hr, 300, v1, did, 1), 0);
	cr_assert_eq(sn->version, v1);
	cr_assert(sn->flags & DJMFS_FILE_SNAP_LOCKED);
	t0 = now_ms();

	v2 = write_some(&w, hw, mid, did, v1, "two");
	cr_assert_eq(op_snap(&r, DJMFS_OP_SYNC_SNAP, hr, 0, 0, 0, 0), 0);
	cr_assert_eq(sn->version, v1, "the hold keeps the old image");
	cr_assert_eq(memcmp(snap_obj(sn, mid)->meta, "one", 3), 0);
	cr_assert(sn->flags & DJMFS_FILE_SNAP_LOCKED);

	/* Past the timeout (pinging to keep the lease) the hold is gone. */
	while (now_ms() - t0 < 450) {
		sleep_ms(50);
		req(&r, DJMFS_OP_PING);
		cr_assert_eq(rpc(&r), 0);
	}
	cr_assert_eq(op_snap(&r, DJMFS_OP_SYNC_SNAP, hr, 0, v1, did, 1), 0);
	cr_assert_eq(sn->version, v2);
	cr_assert_not(sn->flags & DJMFS_FILE_SNAP_LOCKED);
	cr_assert_eq(memcmp(snap_obj(sn, mid)->meta, "two", 3), 0);
	tc_close(&w);
	tc_close(&r);
}

Test(server, reserve_fails_with_enospc_on_a_full_volume)
{
	struct tc a;
	uint32_t h = 0;
	uint64_t got = 0, n = 0;
	int i, rc = 0;

	tc_open(&a, "hog");
	cr_assert_eq(op_open(&a, "big", DJMFS_O_WRITE | DJMFS_O_CREATE, &h), 0);
	for (i = 0; i < 1000 && rc == 0; i++) {
		rc = op_reserve(&a, h, 16, NULL, &n);
		if (rc == 0)
			got += n;
	}
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_eq(got, a.n_aus);
	req(&a, DJMFS_OP_DF);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.df_resp.free_aus, 0);
	cr_assert_eq(a.m.u.df_resp.reserved_aus, a.n_aus);
	/* Closing gives it all back. */
	cr_assert_eq(op_handle(&a, DJMFS_OP_CLOSE, h), 0);
	req(&a, DJMFS_OP_DF);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.df_resp.free_aus, a.n_aus);
	tc_close(&a);
}

/* Runs a server in a child process, so a test can kill it hard. */
static pid_t crashable_server(void)
{
	struct djmfs_server_opts o;
	struct djmfs_server *s;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		srv_opts(&o);
		o.log.fn = NULL;
		if (djmfs_server_new(&s, &o) < 0)
			_exit(1);
		djmfs_server_run(s);
		_exit(0);
	}
	return pid;
}

static void wait_for_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, i, ok = 0;

	strcpy(sa.sun_path, T.sock);
	for (i = 0; i < 200 && !ok; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (!ok)
			sleep_ms(10);
	}
	cr_assert(ok, "the child server never listened");
}

Test(server, boots_again_with_published_state_and_right_counters)
{
	const struct djmfs__boot_info *bi;
	uint32_t h = 0, mid = 0, did = 0;
	struct tc a;
	uint64_t v = 0;
	pid_t pid;

	/* A server that dies with acknowledged records in its journal and
	 * a reservation (4 units, 1 since mapped) in flight. */
	srv_stop();
	pid = crashable_server();
	wait_for_socket();
	tc_open(&a, "doomed");
	make_file(&a, "keep", &h, &mid, &did);
	v = write_some(&a, h, mid, did, 2, "kept");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tc_close(&a);

	srv_start();
	bi = djmfs__server_boot_info(T.s);
	/* mkfs wrote 1, the fixture's server 2, the child 3 */
	cr_assert_eq(bi->ckpt_gen, 3);
	cr_assert_eq(bi->records_replayed, 5);
	cr_assert_eq(bi->units_reclaimed, 3);
	cr_assert_eq(bi->files, 1);
	cr_assert_eq(bi->free_aus, a.n_aus - 1);
	cr_assert(log_has("5 records replayed, 3 units reclaimed"));

	tc_open(&a, "after");
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "keep"), 0);
	cr_assert_eq(a.m.u.snap_resp.version, v);
	cr_assert_eq(snap_obj(&a.m.u.snap_resp, did)->size, 8192);
	cr_assert_eq(snap_obj(&a.m.u.snap_resp, mid)->size, 4);

	/* A clean stop with a writer still open checkpoints what it did
	 * (its reservation too), leaving nothing to replay. */
	cr_assert_eq(op_open(&a, "keep", DJMFS_O_WRITE, &h), 0);
	v = write_some(&a, h, mid, did, v, "more");
	srv_stop();
	tc_close(&a);
	srv_start();
	bi = djmfs__server_boot_info(T.s);
	cr_assert_eq(bi->ckpt_gen, 5); /* 4 at boot, 5 at the stop */
	cr_assert_eq(bi->records_replayed, 0);
	cr_assert_eq(bi->units_reclaimed, 3);
	cr_assert_eq(bi->files, 1);
	tc_open(&a, "last");
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "keep"), 0);
	cr_assert_eq(a.m.u.snap_resp.version, v);
	tc_close(&a);
}

Test(server, refuses_a_second_server_on_the_same_volume)
{
	struct djmfs_server_opts o;
	struct djmfs_server *s2 = NULL;
	char other[160];

	srv_opts(&o);
	snprintf(other, sizeof(other), "%s/sock2", T.dir);
	o.unix_path = other;
	cr_assert_eq(djmfs_server_new(&s2, &o), -EBUSY);
}

Test(server, replaces_a_stale_socket_but_not_a_live_one)
{
	struct djmfs_server_opts o;
	struct djmfs_server *s2 = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct tc a;
	int fd;

	/* Live: the running server answers on T.sock. */
	srv_stop();
	srv_opts(&o);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, T.sock);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(djmfs_server_new(&s2, &o), -EADDRINUSE);
	close(fd); /* the file stays behind, nobody answers: stale */
	srv_start();
	tc_open(&a, "fresh");
	tc_close(&a);
}

Test(server, serves_tcp_on_an_ephemeral_port)
{
	struct djmfs_server_opts o;
	struct djmfs_server *s2;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct tc a;
	pthread_t th;
	uint16_t port;

	srv_stop();
	srv_opts(&o);
	o.unix_path = NULL;
	o.tcp_addr = "127.0.0.1:0";
	cr_assert_eq(djmfs_server_new(&s2, &o), 0);
	port = djmfs_server_tcp_port(s2);
	cr_assert_gt(port, 0);
	T.s = s2;
	cr_assert_eq(pthread_create(&th, NULL, srv_thread, NULL), 0);
	T.th = th;
	T.running = 1;
	memset(&a, 0, sizeof(a));
	a.fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(a.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	tc_hello(&a, "over tcp");
	req(&a, DJMFS_OP_PING);
	cr_assert_eq(rpc(&a), 0);
	tc_close(&a);
}

/* Shifts the extent at volume offset @off in the newest checkpoint by
 * 512 bytes (so it is misaligned), storing the image again with valid
 * CRCs: a damaged map that only the open-time check can catch. */
static void damage_checkpoint(uint64_t off)
{
	struct djmfs__vol *v;
	struct djmfs__ckpt ck;
	uint8_t pat[8];
	size_t i;

	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(v, &ck, NULL), 0);
	for (i = 0; i < 8; i++)
		pat[i] = (uint8_t)(off >> (8 * i));
	for (i = 0; i + 8 <= ck.img_len; i++)
		if (!memcmp(ck.img + i, pat, 8))
			break;
	cr_assert(i + 8 <= ck.img_len, "extent not found in the image");
	off += 512;
	for (size_t j = 0; j < 8; j++)
		ck.img[i + j] = (uint8_t)(off >> (8 * j));
	cr_assert_eq(djmfs__ckpt_store(v, ck.slot, ck.gen, ck.last_seq, ck.img,
				       ck.img_len),
		     0);
	free(ck.img);
	djmfs__vol_close(v);
}

Test(server, quarantines_a_file_whose_map_fails_its_check)
{
	uint32_t h = 0, mid = 0, did = 0;
	uint64_t off = 0;
	struct tc a;
	int i, rc;

	tc_open(&a, "writer");
	make_file(&a, "bad", &h, &mid, &did);
	write_some(&a, h, mid, did, 2, "x");
	cr_assert_eq(op_snap(&a, DJMFS_OP_SYNC_SNAP, h, 0, 0, 0, 0), 0);
	off = djmfs__extv_at(snap_obj(&a.m.u.snap_resp, did)->ext, 0).offset;
	cr_assert_eq(op_handle(&a, DJMFS_OP_CLOSE, h), 0);
	tc_close(&a);
	srv_stop();
	damage_checkpoint(off);
	srv_start();

	tc_open(&a, "reader");
	cr_assert_eq(op_open(&a, "bad", DJMFS_O_READ, NULL), -EUCLEAN);
	cr_assert(log_has("file bad (ino"));
	cr_assert(log_has("failed its consistency check"));
	cr_assert_eq(op_open(&a, "bad", DJMFS_O_WRITE, NULL), -EUCLEAN);
	/* The QUARANTINE record reaches readers once durable. */
	for (i = 0, rc = 0; i < 100 && !rc; i++) {
		cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "bad"), 0);
		rc = a.m.u.snap_resp.flags & DJMFS_FILE_QUARANTINED;
		if (!rc)
			sleep_ms(10);
	}
	cr_assert(rc);
	req(&a, DJMFS_OP_DF);
	cr_assert_eq(rpc(&a), 0);
	cr_assert_eq(a.m.u.df_resp.quarantined, 1);
	cr_assert_eq(op_open(&a, "bad", DJMFS_O_READ, NULL), -EUCLEAN);
	tc_close(&a);
}

/* Bytes of both checkpoint slots' headers, to prove a boot wrote none. */
static void read_slot_heads(uint8_t out[2][64])
{
	struct djmfs__vol *v;

	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_RDONLY, NULL), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(djmfs__pread_full(v->fd, out[i], 64,
					       v->sb.ckpt_off[i]), 0);
	djmfs__vol_close(v);
}

static void flip_journal_byte(uint64_t off)
{
	struct djmfs__vol *v;
	uint8_t b;

	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_EXCL, NULL), 0);
	for (int c = 0; c < 2; c++) { /* both copies: beyond repair */
		uint64_t at = (c ? v->sb.mj_off : v->sb.journal_off) + off;

		if (c && !v->sb.mj_off)
			break;
		cr_assert_eq(djmfs__pread_full(v->fd, &b, 1, at), 0);
		b ^= 0x20;
		cr_assert_eq(djmfs__pwrite_full(v->fd, &b, 1, at), 0);
	}
	djmfs__vol_close(v);
}

Test(server, refuses_a_damaged_journal_and_salvages_only_when_asked)
{
	const struct djmfs__boot_info *bi;
	uint32_t h = 0, mid = 0, did = 0, h2 = 0, mid2 = 0, did2 = 0;
	struct djmfs_server_opts o;
	struct djmfs_server *s = NULL;
	uint8_t before[2][64], after[2][64];
	struct tc a;
	uint64_t v2;
	pid_t pid;

	/* Two files written by a server that dies: its journal holds every
	 * record of both. */
	srv_stop();
	pid = crashable_server();
	wait_for_socket();
	tc_open(&a, "doomed");
	make_file(&a, "first", &h, &mid, &did);
	write_some(&a, h, mid, did, 2, "one");
	make_file(&a, "second", &h2, &mid2, &did2);
	v2 = write_some(&a, h2, mid2, did2, 2, "two");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tc_close(&a);

	/* One bit of the epoch's first record (creating "first"). */
	flip_journal_byte(40);
	read_slot_heads(before);
	srv_opts(&o);
	cr_assert_eq(djmfs_server_new(&s, &o), -EUCLEAN);
	cr_assert(log_has("not serving: journal damaged at offset 0"));
	cr_assert(log_has("going on would lose"));
	cr_assert(log_has("--salvage"));
	read_slot_heads(after);
	cr_assert_eq(memcmp(before, after, sizeof(before)), 0,
		     "a refused boot wrote a checkpoint");
	/* Refused again: nothing changed on the volume. */
	cr_assert_eq(djmfs_server_new(&s, &o), -EUCLEAN);

	/* The operator's choice: "second" is intact, "first" is lost. */
	o.flags = DJMFS_SERVER_SALVAGE;
	cr_assert_eq(djmfs_server_new(&T.s, &o), 0);
	cr_assert_eq(pthread_create(&T.th, NULL, srv_thread, NULL), 0);
	T.running = 1;
	bi = djmfs__server_boot_info(T.s);
	cr_assert_eq(bi->salvaged, 1);
	cr_assert_eq(bi->journal_end, DJMFS__JEND_DAMAGED);
	cr_assert(log_has("salvage: journal damaged"));
	tc_open(&a, "after");
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "second"), 0);
	cr_assert_eq(a.m.u.snap_resp.version, v2);
	cr_assert_eq(snap_obj(&a.m.u.snap_resp, did2)->size, 8192);
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "first"), -ENOENT);
	tc_close(&a);
	/* The salvage was made permanent: a plain boot now serves. */
	srv_stop();
	srv_start();
	tc_open(&a, "later");
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "second"), 0);
	tc_close(&a);
}

Test(server, refuses_a_checkpoint_the_journal_proves_stale)
{
	uint32_t h = 0, mid = 0, did = 0;
	struct djmfs_server_opts o;
	struct djmfs_server *s = NULL;
	struct djmfs__vol *v;
	struct djmfs__ckpt ck;
	struct tc a;
	uint8_t b;
	pid_t pid;

	srv_stop();
	pid = crashable_server();
	wait_for_socket();
	tc_open(&a, "doomed");
	make_file(&a, "rec", &h, &mid, &did);
	write_some(&a, h, mid, did, 2, "x");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tc_close(&a);

	/* A bit of the newest checkpoint's image: the older slot loads,
	 * but the journal holds records of the newer epoch. */
	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(v, &ck, NULL), 0);
	cr_assert_gt(ck.img_len, 8);
	for (int c = 0; c < 2; c++) { /* in both copies */
		uint64_t at = c ? v->sb.mckpt_off[ck.slot]
				: v->sb.ckpt_off[ck.slot];

		if (!at)
			continue;
		cr_assert_eq(djmfs__pread_full(v->fd, &b, 1, at + 64 + 4), 0);
		b ^= 1;
		cr_assert_eq(djmfs__pwrite_full(v->fd, &b, 1, at + 64 + 4),
			     0);
	}
	free(ck.img);
	djmfs__vol_close(v);

	srv_opts(&o);
	cr_assert_eq(djmfs_server_new(&s, &o), -EUCLEAN);
	cr_assert(log_has("is not the newest: the journal holds records of "
			  "epoch 3"));
	/* What gen 3 held plus its epoch is lost to a salvage; refusing
	 * keeps the operator's choice. */
	o.flags = DJMFS_SERVER_SALVAGE;
	cr_assert_eq(djmfs_server_new(&T.s, &o), 0);
	T.running = 0;
	cr_assert_eq(djmfs__server_boot_info(T.s)->journal_end,
		     DJMFS__JEND_STALE_CKPT);
	/* Never a generation already used: 3's epoch lies in the journal. */
	cr_assert_eq(djmfs__server_boot_info(T.s)->max_epoch, 3);
	djmfs_server_free(T.s);
	T.s = NULL;
	cr_assert_eq(djmfs__vol_open(&v, T.vol, DJMFS__VOL_RDONLY, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(v, &ck, NULL), 0);
	cr_assert_eq(ck.gen, 4);
	free(ck.img);
	djmfs__vol_close(v);
}

static int op_trim(struct tc *c, uint32_t h, uint32_t id, uint64_t start)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_TRIM);

	q->u.trim_req.handle = h;
	q->u.trim_req.obj_id = id;
	q->u.trim_req.start = start;
	return rpc(c);
}

/* op_publish of one DATA object from size 0, with the sums its size
 * needs (their values are the writer's business, not checked here). */
static int op_publish_ck(struct tc *c, uint32_t h, uint64_t base,
			 const struct pubspec *ps, uint64_t *version)
{
	struct djmfs__msg *q = req(c, DJMFS_OP_PUBLISH);
	struct djmfs__pub_obj *o = &q->u.publish_req.pub.objs[0];
	struct djmfs__buf x, k;
	int rc;

	djmfs__buf_init(&x);
	djmfs__buf_init(&k);
	djmfs__put_ext(&x, ps->off, ps->len);
	for (uint64_t i = 0; i < ps->size >> DJMFS_CK_SHIFT; i++)
		djmfs__put_u32(&k, (uint32_t)i);
	q->u.publish_req.handle = h;
	q->u.publish_req.pub.base_version = base;
	q->u.publish_req.pub.n_objs = 1;
	o->obj_id = ps->id;
	o->size = ps->size;
	o->ext = (struct djmfs__extv){ x.p, 1 };
	o->ck = (struct djmfs__ckv){ k.p, (uint32_t)(ps->size >>
						      DJMFS_CK_SHIFT) };
	o->last_ck = ps->size % DJMFS_CK_BLOCK ? 7 : 0;
	rc = rpc(c);
	djmfs__buf_free(&x);
	djmfs__buf_free(&k);
	if (rc == 0 && version)
		*version = c->m.u.publish_resp.version;
	return rc;
}

Test(server, a_trim_survives_a_crash_and_a_clean_restart)
{
	const struct djmfs__boot_info *bi;
	const struct djmfs__snap_obj *so;
	uint32_t h = 0, rh = 0, mid = 0, did = 0;
	struct djmfs__run run;
	struct pubspec ps = { 0, 0, 0, 0, NULL };
	struct tc a;
	uint64_t v = 0, au;
	pid_t pid;

	srv_stop();
	pid = crashable_server();
	wait_for_socket();
	tc_open(&a, "doomed");
	au = a.au_size;
	make_file(&a, "rec", &h, &mid, &did);
	cr_assert_eq(op_reserve(&a, h, 4, &run, NULL), 0);
	cr_assert_geq(run.count, 3);
	ps.id = did;
	ps.size = 2 * au + 8192;
	ps.off = a.data_off + run.first * au;
	ps.len = 2 * au + 8192; /* units first .. first + 2 */
	cr_assert_eq(op_publish_ck(&a, h, 2, &ps, &v), 0);
	cr_assert_eq(op_trim(&a, h, did, au + 100), 0);
	cr_assert_eq(a.m.u.trim_resp.start, au + 100);
	cr_assert_eq(a.m.u.trim_resp.version, v + 1);
	/* Lower: the current start, the same version. */
	cr_assert_eq(op_trim(&a, h, did, 5), 0);
	cr_assert_eq(a.m.u.trim_resp.start, au + 100);
	cr_assert_eq(a.m.u.trim_resp.version, v + 1);
	cr_assert_eq(op_trim(&a, h, mid, 1), -EINVAL);
	cr_assert_eq(op_trim(&a, h, did, ps.size + 1), -EINVAL);
	cr_assert_eq(op_trim(&a, h, 99, 1), -ENOENT);
	cr_assert_eq(op_open(&a, "rec", DJMFS_O_READ, &rh), 0);
	cr_assert_eq(op_trim(&a, rh, did, au + 200), -EBADF);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tc_close(&a);

	/* Replayed: the start, and unit first no longer in use. */
	srv_start();
	bi = djmfs__server_boot_info(T.s);
	cr_assert_eq(bi->files, 1);
	cr_assert_eq(bi->free_aus, a.n_aus - 2);
	tc_open(&a, "after");
	cr_assert_eq(op_name(&a, DJMFS_OP_STAT, "rec"), 0);
	cr_assert_eq(a.m.u.snap_resp.version, v + 1);
	so = snap_obj(&a.m.u.snap_resp, did);
	cr_assert_eq(so->start, au + 100);
	cr_assert_eq(so->ext_first, 0);
	cr_assert_eq(so->first_at, 0);
	/* From a checkpoint after a clean stop, the same. */
	srv_stop();
	tc_close(&a);
	srv_start();
	tc_open(&a, "last");
	cr_assert_eq(op_open(&a, "rec", DJMFS_O_READ, &rh), 0);
	so = snap_obj(&a.m.u.open_resp.snap, did);
	cr_assert_eq(so->start, au + 100);
	cr_assert_eq(so->ext_base, 0);
	cr_assert_eq(so->ext.n, 1);
	cr_assert_eq(so->size, 2 * au + 8192);
	tc_close(&a);
}
