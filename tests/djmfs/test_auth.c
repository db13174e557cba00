/*
 * Tests of the shared-secret handshake: the proofs and secret files
 * (djmfs_auth.c), the server's gate (djmfs_server.c) and the client's
 * HELLO (djmfs_client.c).  A real server with a secret runs in a thread
 * on a temporary volume; real clients (djmfs_connect without data I/O)
 * show what users see, and raw protocol frames do what a real client
 * never would: replay a proof, skip it, or send operations before it.  A
 * fake server in a thread shows that a client refuses a server that
 * cannot prove the secret, before telling it anything.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "djmfs_proto.h"
#include "djmfs_server.h"

#define VOL_SIZE (64ull << 20)

static const char good_secret[] = "0123456789abcdef-the-right-one!";
static const char bad_secret[] = "0123456789abcdef-the-wrong-one!";

/* ------------------------------------------------------------------ */
/* The server under test, and everyone's log                            */
/* ------------------------------------------------------------------ */

static struct {
	char dir[64];
	char vol[128];
	char sock[100]; /* fits sun_path */
	char server[160]; /* "unix:<sock>" */
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

	(void)arg;
	if (getenv("DJMFS_TEST_LOG"))
		fprintf(stderr, "[%d] %s\n", (int)lvl, msg);
	pthread_mutex_lock(&log_mu);
	if (log_len + n + 2 < sizeof(log_text)) {
		memcpy(log_text + log_len, msg, n);
		log_len += n;
		log_text[log_len++] = '\n';
		log_text[log_len] = '\0';
	}
	pthread_mutex_unlock(&log_mu);
}

static const struct djmfs_log test_log = { log_fn, NULL };

static int log_has(const char *needle)
{
	int found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

static void *srv_thread(void *arg)
{
	djmfs_server_run(arg);
	return NULL;
}

/* Starts the server, with @secret when not NULL. */
static void srv_start(const char *secret)
{
	struct djmfs_server_opts o;

	memset(&o, 0, sizeof(o));
	o.volume = T.vol;
	o.unix_path = T.sock;
	o.log = test_log;
	o.batch_us = DJMFS_SERVER_NO_BATCH;
	if (secret) {
		o.secret = secret;
		o.secret_len = strlen(secret);
	}
	cr_assert_eq(djmfs_server_new(&T.s, &o), 0, "djmfs_server_new");
	cr_assert_eq(pthread_create(&T.th, NULL, srv_thread, T.s), 0);
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
	strcpy(T.dir, "/tmp/djmfs-auth-XXXXXX");
	cr_assert(mkdtemp(T.dir));
	snprintf(T.vol, sizeof(T.vol), "%s/vol", T.dir);
	snprintf(T.sock, sizeof(T.sock), "%s/sock", T.dir);
	snprintf(T.server, sizeof(T.server), "unix:%s", T.sock);
	cr_assert_eq(djmfs_mkfs(T.vol, VOL_SIZE, 0, 0, NULL), 0);
	log_len = 0;
	log_text[0] = '\0';
	srv_start(good_secret);
}

static void teardown(void)
{
	char p[160];

	srv_stop();
	unlink(T.vol);
	unlink(T.sock);
	snprintf(p, sizeof(p), "%s/fake", T.dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/secret", T.dir);
	unlink(p);
	rmdir(T.dir);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 30);

static struct djmfs_server_auth_stats auth_stats(void)
{
	struct djmfs_server_auth_stats st;

	djmfs_server_auth_stats(T.s, &st);
	return st;
}

/* djmfs_connect to @server with @secret (NULL: none), metadata only. */
static int client_connect(const char *server, const char *secret,
			  struct djmfs_client **out)
{
	struct djmfs_client_opts o = { 0 };

	o.server = server;
	o.name = "test client";
	o.flags = DJMFS_CLIENT_NO_DATA_IO;
	o.reconnect_ms = DJMFS_CLIENT_NO_RECONNECT;
	o.log = test_log;
	if (secret) {
		o.secret = secret;
		o.secret_len = strlen(secret);
	}
	*out = NULL;
	return djmfs_connect(out, &o);
}

/* ------------------------------------------------------------------ */
/* A raw protocol client                                                */
/* ------------------------------------------------------------------ */

struct raw {
	int fd;
	uint32_t id;
	uint8_t *frame; /* the last answer; m's views point into it */
	struct djmfs__msg m;
	uint8_t cn[DJMFS_AUTH_NONCE], sn[DJMFS_AUTH_NONCE];
};

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 3, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect %s: %s", path, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_bytes(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Exactly @n bytes: 0, or -1 at the end of the stream or a timeout. */
static int recv_bytes(int fd, uint8_t *p, size_t n)
{
	ssize_t r;

	while (n) {
		r = recv(fd, p, n, 0);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One whole frame from @fd into a malloc'd buffer (*out), decoded into
 * @m.  Returns 0, or -1 when the stream ended first. */
static int recv_frame(int fd, uint8_t **out, struct djmfs__msg *m)
{
	uint8_t h[DJMFS_HDR_SIZE];
	uint32_t len;

	if (recv_bytes(fd, h, sizeof(h)) < 0)
		return -1;
	len = djmfs__le32(h);
	cr_assert_leq(len, 1u << 20);
	free(*out);
	*out = malloc(DJMFS_HDR_SIZE + len + 1);
	cr_assert_not_null(*out);
	memcpy(*out, h, sizeof(h));
	if (recv_bytes(fd, *out + DJMFS_HDR_SIZE, len) < 0)
		return -1;
	cr_assert_eq(djmfs__msg_decode(*out, DJMFS_HDR_SIZE + len, m), 0);
	return 0;
}

static void raw_open(struct raw *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = unix_connect(T.sock);
}

static void raw_close(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->frame);
	r->frame = NULL;
}

/* Encodes @q as our next request into @b (initialised here). */
static void raw_encode(struct raw *r, struct djmfs__msg *q,
		       struct djmfs__buf *b)
{
	q->h.kind = DJMFS_REQ;
	q->h.id = ++r->id;
	djmfs__buf_init(b);
	cr_assert_eq(djmfs__msg_encode(b, q), 0);
}

/* Sends @len frame bytes and returns the status of the answer to @op. */
static int raw_send_frame(struct raw *r, const uint8_t *p, size_t len,
			  unsigned op)
{
	send_bytes(r->fd, p, len);
	cr_assert_eq(recv_frame(r->fd, &r->frame, &r->m), 0,
		     "no answer to %s", djmfs__op_name(op));
	cr_assert_eq(r->m.h.kind, DJMFS_RESP);
	cr_assert_eq(r->m.h.op, op);
	return r->m.status;
}

static int raw_rpc(struct raw *r, struct djmfs__msg *q)
{
	struct djmfs__buf b;
	int status;

	raw_encode(r, q, &b);
	status = raw_send_frame(r, b.p, b.len, q->h.op);
	djmfs__buf_free(&b);
	return status;
}

/* 1 when the server closed the connection (within the timeout). */
static int raw_closed_by_server(struct raw *r)
{
	uint8_t b[256];
	ssize_t n;

	while ((n = recv(r->fd, b, sizeof(b), 0)) > 0)
		;
	return n == 0;
}

/* CHALLENGE with a fresh nonce; keeps both nonces.  Returns the status
 * and, on success, checks the server's proof against @secret. */
static int raw_challenge(struct raw *r, const char *name, const char *secret)
{
	struct djmfs__msg q = { .h.op = DJMFS_OP_CHALLENGE };
	int status;

	q.u.challenge_req.proto = DJMFS_PROTO_VERSION;
	snprintf(q.u.challenge_req.name, sizeof(q.u.challenge_req.name), "%s",
		 name);
	cr_assert_eq(djmfs__auth_nonce(r->cn, sizeof(r->cn)), 0);
	memcpy(q.u.challenge_req.nonce, r->cn, sizeof(r->cn));
	status = raw_rpc(r, &q);
	if (status)
		return status;
	memcpy(r->sn, r->m.u.challenge_resp.nonce, sizeof(r->sn));
	cr_assert_eq(djmfs__auth_verify(secret, strlen(secret),
					DJMFS_AUTH_SERVER,
					DJMFS_PROTO_VERSION, name, r->cn,
					r->sn, r->m.u.challenge_resp.proof),
		     0, "the server's proof");
	return 0;
}

/* A HELLO frame (into @b) proving @secret for this connection's nonces;
 * @secret NULL: a HELLO without a proof. */
static void raw_hello_frame(struct raw *r, const char *name,
			    const char *secret, struct djmfs__buf *b)
{
	struct djmfs__msg q = { .h.op = DJMFS_OP_HELLO };

	q.u.hello_req.proto = DJMFS_PROTO_VERSION;
	snprintf(q.u.hello_req.name, sizeof(q.u.hello_req.name), "%s", name);
	if (secret) {
		q.u.hello_req.has_proof = 1;
		cr_assert_eq(djmfs__auth_proof(secret, strlen(secret),
					       DJMFS_AUTH_CLIENT,
					       DJMFS_PROTO_VERSION, name,
					       r->cn, r->sn,
					       q.u.hello_req.proof),
			     0);
	}
	raw_encode(r, &q, b);
}

static int raw_hello(struct raw *r, const char *name, const char *secret)
{
	struct djmfs__buf b;
	int status;

	raw_hello_frame(r, name, secret, &b);
	status = raw_send_frame(r, b.p, b.len, DJMFS_OP_HELLO);
	djmfs__buf_free(&b);
	return status;
}

static int raw_op(struct raw *r, unsigned op)
{
	struct djmfs__msg q = { .h.op = (uint16_t)op };

	if (op == DJMFS_OP_STAT)
		strcpy(q.u.name_req.name, "x");
	return raw_rpc(r, &q);
}

/* ------------------------------------------------------------------ */
/* Proofs and secret files                                              */
/* ------------------------------------------------------------------ */

Test(auth, proofs_depend_on_every_input_and_verify_only_the_same)
{
	uint8_t cn[DJMFS_AUTH_NONCE], sn[DJMFS_AUTH_NONCE];
	uint8_t p0[DJMFS_AUTH_PROOF], p1[DJMFS_AUTH_PROOF];
	size_t k = strlen(good_secret);

	memset(cn, 1, sizeof(cn));
	memset(sn, 2, sizeof(sn));
	cr_assert_eq(djmfs__auth_proof(good_secret, k, DJMFS_AUTH_CLIENT, 2,
				       "a", cn, sn, p0), 0);
	cr_assert_eq(djmfs__auth_verify(good_secret, k, DJMFS_AUTH_CLIENT, 2,
					"a", cn, sn, p0), 0);
	/* Each change is a different proof: side, proto, name, nonces,
	 * secret. */
	cr_assert_eq(djmfs__auth_verify(good_secret, k, DJMFS_AUTH_SERVER, 2,
					"a", cn, sn, p0), -EACCES);
	cr_assert_eq(djmfs__auth_verify(good_secret, k, DJMFS_AUTH_CLIENT, 3,
					"a", cn, sn, p0), -EACCES);
	cr_assert_eq(djmfs__auth_verify(good_secret, k, DJMFS_AUTH_CLIENT, 2,
					"b", cn, sn, p0), -EACCES);
	cr_assert_eq(djmfs__auth_verify(good_secret, k, DJMFS_AUTH_CLIENT, 2,
					"a", sn, cn, p0), -EACCES);
	cr_assert_eq(djmfs__auth_verify(bad_secret, k, DJMFS_AUTH_CLIENT, 2,
					"a", cn, sn, p0), -EACCES);
	/* Deterministic, and not the secret itself. */
	cr_assert_eq(djmfs__auth_proof(good_secret, k, DJMFS_AUTH_CLIENT, 2,
				       "a", cn, sn, p1), 0);
	cr_assert_eq(memcmp(p0, p1, sizeof(p0)), 0);
	cr_assert_neq(memcmp(p0, good_secret, sizeof(p0)), 0);
	cr_assert_eq(djmfs__auth_proof(good_secret, 0, DJMFS_AUTH_CLIENT, 2,
				       "a", cn, sn, p1), -EINVAL);
	cr_assert_eq(djmfs__auth_proof(NULL, 8, DJMFS_AUTH_CLIENT, 2, "a",
				       cn, sn, p1), -EINVAL);
}

Test(auth, nonces_are_fresh)
{
	uint8_t a[DJMFS_AUTH_NONCE], b[DJMFS_AUTH_NONCE];

	cr_assert_eq(djmfs__auth_nonce(a, sizeof(a)), 0);
	cr_assert_eq(djmfs__auth_nonce(b, sizeof(b)), 0);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
}

static void write_file(const char *path, const void *p, size_t n,
		       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(auth, secret_files_must_be_private_regular_and_sized)
{
	char path[160];
	uint8_t big[DJMFS_SECRET_MAX + 1];
	void *sec = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/secret", T.dir);
	write_file(path, good_secret, strlen(good_secret), 0600);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), 0);
	cr_assert_eq(len, strlen(good_secret));
	cr_assert_eq(memcmp(sec, good_secret, len), 0);
	djmfs_secret_free(sec, len);
	djmfs_secret_free(NULL, 0);

	/* Like ssh: any access by group or others is refused. */
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), -EPERM);
	cr_assert(log_has("group or others may access it (mode 0644)"));
	cr_assert_eq(chmod(path, 0620), 0);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), -EPERM);
	cr_assert_eq(chmod(path, 0400), 0);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), 0);
	djmfs_secret_free(sec, len);

	write_file(path, "short", 5, 0600);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), -EINVAL);
	memset(big, 'x', sizeof(big));
	write_file(path, big, sizeof(big), 0600);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), -EINVAL);
	cr_assert_eq(djmfs_secret_load(T.dir, &sec, &len, &test_log), -EINVAL);
	unlink(path);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), -ENOENT);
}

Test(auth, new_secrets_are_random_private_and_not_overwritten)
{
	char path[160];
	uint8_t first[DJMFS_SECRET_NEW];
	struct stat st;
	void *sec = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/secret", T.dir);
	cr_assert_eq(djmfs_secret_create(path, 0, &test_log), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(st.st_size, DJMFS_SECRET_NEW);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), 0);
	memcpy(first, sec, sizeof(first));
	djmfs_secret_free(sec, len);

	cr_assert_eq(djmfs_secret_create(path, 0, &test_log), -EEXIST);
	/* FORCE replaces it, and a loosened mode is tightened again. */
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(djmfs_secret_create(path, DJMFS_SECRET_FORCE, &test_log),
		     0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(djmfs_secret_load(path, &sec, &len, &test_log), 0);
	cr_assert_eq(len, DJMFS_SECRET_NEW);
	cr_assert_neq(memcmp(first, sec, sizeof(first)), 0);
	djmfs_secret_free(sec, len);
}

/* ------------------------------------------------------------------ */
/* Real clients                                                         */
/* ------------------------------------------------------------------ */

Test(auth, right_secret_is_accepted_both_ways)
{
	struct djmfs_client *c;
	struct djmfs_df df;

	cr_assert_eq(client_connect(T.server, good_secret, &c), 0);
	cr_assert_eq(djmfs_df(c, &df), 0);
	cr_assert_gt(df.total_aus, 0);
	djmfs_disconnect(c);
	cr_assert_eq(auth_stats().accepted, 1);
	cr_assert_eq(auth_stats().refused, 0);
}

Test(auth, wrong_secret_is_refused_before_the_client_proves_anything)
{
	struct djmfs_client *c;

	cr_assert_eq(client_connect(T.server, bad_secret, &c), -EACCES);
	cr_assert_null(c);
	cr_assert(log_has("did not prove the volume's shared secret"));
	/* The client stopped after CHALLENGE: no HELLO reached the server. */
	cr_assert_eq(auth_stats().accepted, 0);
	cr_assert(!log_has("session 1 "));
}

Test(auth, client_without_a_secret_is_refused_and_counted)
{
	struct djmfs_client *c;

	cr_assert_eq(client_connect(T.server, NULL, &c), -EACCES);
	cr_assert(log_has("requires the volume's shared secret, and none was "
			  "given"));
	cr_assert(log_has("HELLO without a proof"));
	cr_assert(log_has("(test client): refused"), "the peer is named");
	cr_assert_eq(auth_stats().refused, 1);
	cr_assert_eq(auth_stats().accepted, 0);
}

Test(auth, client_with_a_secret_refuses_a_server_without_one)
{
	struct djmfs_client *c;

	srv_stop();
	srv_start(NULL);
	cr_assert_eq(client_connect(T.server, good_secret, &c), -EACCES);
	cr_assert(log_has("has no shared secret but we have one"));
	/* Without a secret on either side, clients are served as before. */
	cr_assert_eq(client_connect(T.server, NULL, &c), 0);
	djmfs_disconnect(c);
	cr_assert_eq(auth_stats().refused, 0);
}

/* ------------------------------------------------------------------ */
/* Raw frames                                                           */
/* ------------------------------------------------------------------ */

Test(auth, wrong_proof_is_refused_by_the_server_and_closed)
{
	struct raw r, ok;

	raw_open(&ok);
	cr_assert_eq(raw_challenge(&ok, "good", good_secret), 0);
	cr_assert_eq(raw_hello(&ok, "good", good_secret), 0);

	raw_open(&r);
	cr_assert_eq(raw_challenge(&r, "liar", good_secret), 0);
	cr_assert_eq(raw_hello(&r, "liar", bad_secret), -EACCES);
	cr_assert(raw_closed_by_server(&r));
	cr_assert(log_has("(liar): refused: wrong proof of the shared secret"));
	cr_assert(log_has("conn "), "the peer is named");
	raw_close(&r);

	/* A proof bound to another name does not pass either. */
	raw_open(&r);
	cr_assert_eq(raw_challenge(&r, "alice", good_secret), 0);
	{
		struct djmfs__buf b;

		raw_hello_frame(&r, "alice", good_secret, &b);
		/* Same length, so only the name in the frame changes. */
		memcpy(b.p + DJMFS_HDR_SIZE + 4 + 4 + 2, "bobby", 5);
		cr_assert_eq(raw_send_frame(&r, b.p, b.len, DJMFS_OP_HELLO),
			     -EACCES);
		djmfs__buf_free(&b);
	}
	raw_close(&r);

	cr_assert_eq(raw_op(&ok, DJMFS_OP_PING), 0, "others are still served");
	raw_close(&ok);
	cr_assert_eq(auth_stats().refused, 2);
	cr_assert_eq(auth_stats().accepted, 1);
}

Test(auth, replayed_proof_is_refused)
{
	struct raw a, b, c;
	struct djmfs__buf hello;

	raw_open(&a);
	cr_assert_eq(raw_challenge(&a, "victim", good_secret), 0);
	raw_hello_frame(&a, "victim", good_secret, &hello);
	cr_assert_eq(raw_send_frame(&a, hello.p, hello.len, DJMFS_OP_HELLO),
		     0);

	/* The same bytes on a connection with its own server nonce. */
	raw_open(&b);
	cr_assert_eq(raw_challenge(&b, "victim", good_secret), 0);
	cr_assert_eq(raw_send_frame(&b, hello.p, hello.len, DJMFS_OP_HELLO),
		     -EACCES);
	cr_assert(raw_closed_by_server(&b));

	/* And without a CHALLENGE at all. */
	raw_open(&c);
	cr_assert_eq(raw_send_frame(&c, hello.p, hello.len, DJMFS_OP_HELLO),
		     -EACCES);
	cr_assert(raw_closed_by_server(&c));
	cr_assert(log_has("HELLO with a proof but no CHALLENGE"));

	djmfs__buf_free(&hello);
	raw_close(&a);
	raw_close(&b);
	raw_close(&c);
	cr_assert_eq(auth_stats().accepted, 1);
	cr_assert_eq(auth_stats().refused, 2);
}

Test(auth, operations_before_the_proof_are_refused_and_closed)
{
	static const unsigned ops[] = { DJMFS_OP_STAT, DJMFS_OP_PING,
					DJMFS_OP_DF };
	struct raw r;
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		raw_open(&r);
		/* Half of them after a CHALLENGE, half without. */
		if (i & 1)
			cr_assert_eq(raw_challenge(&r, "eager", good_secret),
				     0);
		cr_assert_eq(raw_op(&r, ops[i]), -EACCES, "%s",
			     djmfs__op_name(ops[i]));
		cr_assert(raw_closed_by_server(&r));
		raw_close(&r);
	}
	cr_assert(log_has("STAT before proving the shared secret"));
	cr_assert(log_has("PING before proving the shared secret"));

	/* One CHALLENGE per connection. */
	raw_open(&r);
	cr_assert_eq(raw_challenge(&r, "twice", good_secret), 0);
	cr_assert_eq(raw_challenge(&r, "twice", good_secret), -EACCES);
	cr_assert(raw_closed_by_server(&r));
	raw_close(&r);
	cr_assert_eq(auth_stats().refused, 4);
	cr_assert_eq(auth_stats().accepted, 0);
}

Test(auth, proven_connection_is_served_like_any_other)
{
	struct raw r;

	raw_open(&r);
	cr_assert_eq(raw_challenge(&r, "fine", good_secret), 0);
	cr_assert_eq(raw_hello(&r, "fine", good_secret), 0);
	cr_assert_gt(r.m.u.hello_resp.session, 0);
	cr_assert_eq(raw_op(&r, DJMFS_OP_PING), 0);
	cr_assert_eq(raw_op(&r, DJMFS_OP_STAT), -ENOENT);
	/* After the proof a CHALLENGE is a protocol error, still refused. */
	cr_assert_eq(raw_challenge(&r, "fine", good_secret), -EACCES);
	raw_close(&r);
}

/* ------------------------------------------------------------------ */
/* A fake server                                                        */
/* ------------------------------------------------------------------ */

struct fake {
	int lfd;
	int answer_eopnotsupp; /* pretend to have no secret */
	int saw_challenge, saw_hello;
};

/* Serves one connection: answers CHALLENGE with a proof made with the
 * wrong secret (or -EOPNOTSUPP), and notes any HELLO. */
static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct djmfs__msg *m = calloc(2, sizeof(*m)), *rep = m + 1;
	uint8_t *frame = NULL;
	struct djmfs__buf b;
	int fd = accept(f->lfd, NULL, NULL);

	djmfs__buf_init(&b);
	while (fd >= 0 && m && recv_frame(fd, &frame, m) == 0) {
		if (m->h.op == DJMFS_OP_HELLO)
			f->saw_hello = 1;
		if (m->h.op != DJMFS_OP_CHALLENGE)
			break;
		f->saw_challenge = 1;
		memset(rep, 0, sizeof(*rep));
		rep->h = m->h;
		rep->h.kind = DJMFS_RESP;
		rep->status = f->answer_eopnotsupp ? -EOPNOTSUPP : 0;
		djmfs__auth_nonce(rep->u.challenge_resp.nonce, DJMFS_AUTH_NONCE);
		djmfs__auth_proof(bad_secret, strlen(bad_secret),
				  DJMFS_AUTH_SERVER, DJMFS_PROTO_VERSION,
				  m->u.challenge_req.name,
				  m->u.challenge_req.nonce,
				  rep->u.challenge_resp.nonce,
				  rep->u.challenge_resp.proof);
		djmfs__buf_reset(&b);
		if (djmfs__msg_encode(&b, rep) < 0 ||
		    send(fd, b.p, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
			break;
	}
	djmfs__buf_free(&b);
	free(frame);
	free(m);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void fake_run(struct fake *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char server[200];
	struct djmfs_client *c;
	pthread_t th;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake", T.dir);
	unlink(sa.sun_path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(f->lfd, 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
	cr_assert_eq(pthread_create(&th, NULL, fake_main, f), 0);
	snprintf(server, sizeof(server), "unix:%s", sa.sun_path);
	cr_assert_eq(client_connect(server, good_secret, &c), -EACCES);
	cr_assert_null(c);
	pthread_join(th, NULL);
	close(f->lfd);
}

Test(auth, client_refuses_a_fake_server_before_saying_hello)
{
	struct fake f = { 0 };

	fake_run(&f);
	cr_assert(f.saw_challenge);
	cr_assert(!f.saw_hello, "no proof of ours went to the fake server");
	cr_assert(log_has("did not prove the volume's shared secret"));
}

Test(auth, client_refuses_a_fake_server_that_claims_no_secret)
{
	struct fake f = { .answer_eopnotsupp = 1 };

	fake_run(&f);
	cr_assert(f.saw_challenge);
	cr_assert(!f.saw_hello);
	cr_assert(log_has("has no shared secret but we have one"));
}
