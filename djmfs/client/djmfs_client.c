/*
 * The client's connection to djmfsd, its life: connecting (address
 * forms, the shared-secret proof, HELLO, the volume's identity check),
 * the state transitions the reconnect thread makes through (connect
 * again, RESTORING -> UP, giving up), ending it, and the calls that need
 * no file handle (unlink, stat, list, df, stats, the I/O knobs).  The
 * RPC layer under it (pending calls, sending, the receive thread that
 * notices a loss, the heartbeat) is djmfs_rpc.c.  This layer knows
 * nothing of file handles or of restoring them: it records a loss in its
 * state (DOWN, a new generation, settled) and the recovery layer above
 * (djmfs_reconnect.c) waits for that and drives the rest.  Calls that
 * need the server wait meanwhile (see djmfs.h, djmfs_connect).
 *
 * Invariants (of this file and djmfs_rpc.c):
 *  1. A call is in the pending table from its insertion until exactly
 *     one of: its reply arrives, the receive thread fails it (connection
 *     lost), or its own send fails before anyone could have seen it.
 *     Whoever removes it calls its hook; nobody else does.
 *  2. A call enters the table only for the current generation and while
 *     the state is UP or RESTORING (both under c->lock).  A loss leaves
 *     that state and bumps the generation first, then the receive thread
 *     empties the table: every call of a lost connection fails, and none
 *     of the next one is touched.
 *  3. Bytes of one frame are written contiguously: frames are appended
 *     whole to sendq under send_lock, and only the single flusher
 *     (flushing == 1) writes to the socket.  A frame is queued only for
 *     the generation of c->sock (send_gen), and a socket is closed only
 *     with no flusher at work, so no frame reaches a connection it was
 *     not made for (a handle number of an old session never reaches a
 *     new one).
 *  4. Only the reconnect thread installs a socket (DOWN -> RESTORING) and
 *     only the receive thread retires one (conn_lost); DEAD is final.
 *     The generation is bumped in the same critical section that leaves
 *     UP or RESTORING, and a file handle is stale while its ready
 *     generation differs (djmfs_file.h), so a handle never starts a step
 *     that needs the server on a connection it was not restored on.
 *  5. The reconnect window is measured from the loss that ended UP;
 *     losses while restoring do not extend it.
 *
 * Connection states (c->state):
 *   UP         --loss, reconnecting on: conn_lost----------> DOWN (logged)
 *   UP         --loss, reconnecting off: conn_lost/conn_fail-> DEAD (logged)
 *   DOWN       --connected again: djmfs__conn_redial-------> RESTORING
 *   RESTORING  --loss: conn_lost--------------------------> DOWN
 *   RESTORING  --HELLO ok, every file restored:
 *                 djmfs__conn_go_up_locked----------------> UP (logged)
 *   DOWN/RESTORING --window over, or fatal:
 *                 djmfs__conn_give_up---------------------> DEAD (logged)
 *   any        --djmfs_disconnect: djmfs__conn_stop--------> DEAD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_clnt.h"

#define DEFAULT_SERVER "unix:/run/djmfs/djmfsd.sock"
#define LIST_PAGE 256

enum { UP = DJMFS__CONN_UP, DOWN = DJMFS__CONN_DOWN,
       RESTORING = DJMFS__CONN_RESTORING, DEAD = DJMFS__CONN_DEAD };

/* ------------------------------------------------------------------ */
/* Connecting                                                           */
/* ------------------------------------------------------------------ */

static int connect_unix(const char *path, int *fd_out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

/* "host:port" or "[v6]:port". */
static int connect_tcp(const char *hostport, int *fd_out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	size_t hl;
	int err = -ECONNREFUSED;

	if (!colon || colon == hostport || !colon[1])
		return -EINVAL;
	hl = (size_t)(colon - hostport);
	if (hostport[0] == '[' && hl >= 2 && hostport[hl - 1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				ai->ai_protocol);

		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			*fd_out = fd;
			err = 0;
			break;
		}
		err = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return err;
}

/* The address forms of struct djmfs_client_opts.server. */
static int connect_addr(const char *addr, int *fd_out)
{
	if (strncmp(addr, "unix:", 5) == 0)
		return connect_unix(addr + 5, fd_out);
	if (strncmp(addr, "tcp:", 4) == 0)
		return connect_tcp(addr + 4, fd_out);
	if (strchr(addr, '/'))
		return connect_unix(addr, fd_out);
	return connect_tcp(addr, fd_out);
}

/* The server's answer to CHALLENGE, copied out on the receive thread. */
struct challenge {
	uint8_t nonce[DJMFS_AUTH_NONCE];
	uint8_t proof[DJMFS_AUTH_PROOF];
};

static void challenge_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct challenge *ch = arg;

	if (status < 0)
		return;
	memcpy(ch->nonce, m->u.challenge_resp.nonce, sizeof(ch->nonce));
	memcpy(ch->proof, m->u.challenge_resp.proof, sizeof(ch->proof));
}

/*
 * With a shared secret: CHALLENGE, check the server's proof, then put
 * ours in @hello.  A server that cannot prove the secret (another
 * secret, an impostor, or a server with no secret at all) is refused
 * with -EACCES before it sees anything of ours but a nonce.
 */
static int prove_secret(struct djmfs_client *c, struct djmfs__msg *hello)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_CHALLENGE };
	const char *name = hello->u.hello_req.name;
	uint8_t *cn = req.u.challenge_req.nonce;
	struct challenge ch;
	int err;

	req.u.challenge_req.proto = DJMFS_PROTO_VERSION;
	snprintf(req.u.challenge_req.name, sizeof(req.u.challenge_req.name),
		 "%s", name);
	err = djmfs__auth_nonce(cn, DJMFS_AUTH_NONCE);
	if (err == 0)
		err = djmfs__rpc(c, &req, challenge_reply, &ch);
	if (err == -EOPNOTSUPP) {
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: %s has no shared "
			   "secret but we have one: refusing it (a server "
			   "without the secret proves nothing)", c->server);
		return -EACCES;
	}
	if (err < 0) {
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: CHALLENGE to %s: "
			   "%s", c->server, strerror(-err));
		return err;
	}
	err = djmfs__auth_verify(c->opts.secret, c->opts.secret_len,
				 DJMFS_AUTH_SERVER, DJMFS_PROTO_VERSION, name,
				 cn, ch.nonce, ch.proof);
	if (err == 0)
		err = djmfs__auth_proof(c->opts.secret, c->opts.secret_len,
					DJMFS_AUTH_CLIENT, DJMFS_PROTO_VERSION,
					name, cn, ch.nonce,
					hello->u.hello_req.proof);
	if (err == -EACCES)
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: %s did not prove "
			   "the volume's shared secret (the secrets differ, or "
			   "it is not the real server): refusing it",
			   c->server);
	else if (err < 0)
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: proving the "
			   "shared secret to %s: %s", c->server,
			   strerror(-err));
	hello->u.hello_req.has_proof = err == 0;
	return err;
}

static void hello_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct djmfs_client *c = arg;

	if (status < 0)
		return;
	c->session = m->u.hello_resp.session;
	c->lease_ms = m->u.hello_resp.lease_ms;
	c->au_size = m->u.hello_resp.au_size;
	c->data_off = m->u.hello_resp.data_off;
	c->n_aus = m->u.hello_resp.n_aus;
	memcpy(c->uuid, m->u.hello_resp.uuid, sizeof(c->uuid));
	if (!c->volume)
		c->volume = strdup(m->u.hello_resp.volume);
}

static int hello(struct djmfs_client *c)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_HELLO };
	int err;

	req.u.hello_req.proto = DJMFS_PROTO_VERSION;
	req.u.hello_req.lease_ms = c->opts.lease_ms;
	if (c->name)
		snprintf(req.u.hello_req.name, sizeof(req.u.hello_req.name),
			 "%s", c->name);
	else
		snprintf(req.u.hello_req.name, sizeof(req.u.hello_req.name),
			 "pid %ld", (long)getpid());
	if (c->opts.secret) {
		err = prove_secret(c, &req);
		if (err < 0)
			return err;
	}
	err = djmfs__rpc(c, &req, hello_reply, c);
	explicit_bzero(req.u.hello_req.proof, sizeof(req.u.hello_req.proof));
	if (err == -EACCES)
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: %s refused us: %s",
			   c->server, c->opts.secret ?
			   "it does not accept our proof of the shared secret" :
			   "it requires the volume's shared secret, and none "
			   "was given");
	else if (err < 0)
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: HELLO to %s: %s",
			   c->server, strerror(-err));
	else if (!c->volume)
		err = -ENOMEM;
	return err;
}

/* Opens the volume for direct I/O and checks it is the server's. */
static int open_volume(struct djmfs_client *c)
{
	struct djmfs__sb sb;
	int err;

	c->vol_fd = open(c->volume, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (c->vol_fd < 0 && (errno == EACCES || errno == EROFS))
		c->vol_fd = open(c->volume, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (c->vol_fd < 0 && errno == EINVAL) {
		/* A file system without O_DIRECT (tmpfs): still usable. */
		djmfs__log(&c->log, DJMFS_LOG_WARN, "djmfs: %s: no O_DIRECT, "
			   "using buffered I/O", c->volume);
		c->vol_fd = open(c->volume, O_RDWR | O_CLOEXEC);
	}
	if (c->vol_fd < 0) {
		err = -errno;
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: open(%s): %s",
			   c->volume, strerror(errno));
		return err;
	}
	err = djmfs__sb_read_fd(c->vol_fd, &sb);
	if (err < 0) {
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: reading the "
			   "superblock of %s: %s", c->volume, strerror(-err));
		return err;
	}
	if (memcmp(sb.uuid, c->uuid, sizeof(sb.uuid)) != 0) {
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: %s is not the "
			   "server's volume (uuid differs)", c->volume);
		return -EXDEV;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reconnecting                                                         */
/* ------------------------------------------------------------------ */

int djmfs__conn_wait_settled(struct djmfs_client *c)
{
	int err;

	pthread_mutex_lock(&c->lock);
	while (c->state != DEAD && !(c->state == DOWN && c->settled))
		pthread_cond_wait(&c->state_cv, &c->lock);
	err = c->state == DEAD ? -ECANCELED : 0;
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* DOWN -> RESTORING with @fd as the new connection (invariant 4). */
static int install(struct djmfs_client *c, int fd, uint64_t *gen)
{
	int err = -ECANCELED;

	pthread_mutex_lock(&c->lock);
	if (c->state == DOWN) {
		pthread_mutex_lock(&c->send_lock);
		c->sock = fd;
		c->send_gen = c->gen;
		djmfs__buf_reset(&c->sendq);
		pthread_mutex_unlock(&c->send_lock);
		*gen = c->gen;
		djmfs__conn_set_state(c, RESTORING);
		err = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* A server that is not the one we lost (another volume) is no use. */
static int same_volume(struct djmfs_client *c, const uint8_t *uuid,
		       uint32_t au, uint64_t data_off, uint64_t n_aus)
{
	if (memcmp(uuid, c->uuid, sizeof(c->uuid)) == 0 &&
	    au == c->au_size && data_off == c->data_off && n_aus == c->n_aus)
		return 0;
	djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: %s now serves another "
		   "volume (uuid or geometry differs)", c->server);
	return -EXDEV;
}

int djmfs__conn_redial(struct djmfs_client *c, uint64_t *gen)
{
	uint8_t uuid[16];
	uint32_t au = c->au_size;
	uint64_t data_off = c->data_off, n_aus = c->n_aus;
	int fd = -1, err = connect_addr(c->server, &fd);

	if (err < 0)
		return err;
	err = install(c, fd, gen);
	if (err < 0) {
		close(fd);
		return err;
	}
	memcpy(uuid, c->uuid, sizeof(uuid));
	err = hello(c);
	if (err == 0)
		err = same_volume(c, uuid, au, data_off, n_aus);
	if (err < 0)
		djmfs__conn_fail(c, err, "restoring the session");
	return err;
}

int djmfs__conn_go_up_locked(struct djmfs_client *c, uint64_t gen,
			     int ready, uint64_t *ms)
{
	if (gen != c->gen || c->state != RESTORING)
		return -ENOTCONN;
	if (!ready)
		return 0;
	*ms = (djmfs_now() - c->down_ns) / 1000000u;
	c->cstats.reconnects++;
	c->cstats.outage_ns += djmfs_now() - c->down_ns;
	djmfs__conn_set_state(c, UP);
	return 1;
}

void djmfs__conn_give_up(struct djmfs_client *c, int err)
{
	uint64_t ms;

	pthread_mutex_lock(&c->lock);
	ms = (djmfs_now() - c->down_ns) / 1000000u;
	if (c->state != DEAD) {
		c->dead_err = -ENOTCONN;
		c->cstats.outage_ns += djmfs_now() - c->down_ns;
		djmfs__conn_set_state(c, DEAD);
	}
	pthread_mutex_unlock(&c->lock);
	djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: reconnecting to %s: gave "
		   "up after %llu ms: %s; calls fail with ENOTCONN", c->server,
		   (unsigned long long)ms, strerror(-err));
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
}

void djmfs_conn_stats(struct djmfs_client *c, struct djmfs_conn_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	*out = c->cstats;
	out->connected = c->state == UP;
	if (c->state == DOWN || c->state == RESTORING)
		out->outage_ns += djmfs_now() - c->down_ns;
	pthread_mutex_unlock(&c->lock);
}

static int copy_opts(struct djmfs_client *c, const struct djmfs_client_opts *o)
{
	const char *server = o->server ? o->server : getenv("DJMFS_SERVER");
	char **dst[] = { &c->volume, &c->name, &c->policy, &c->profile };
	const char *src[] = { o->volume, o->name, o->policy, o->profile };

	c->opts = *o;
	c->opts.secret = NULL; /* copied below */
	c->log = o->log;
	if (o->batch_us == DJMFS_CLIENT_NO_BATCH)
		c->batch_ns = 0;
	else
		c->batch_ns = (uint64_t)(o->batch_us ? o->batch_us : 1000u) *
			      1000u;
	c->server = strdup(server ? server : DEFAULT_SERVER);
	if (!c->server)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++) {
		if (src[i] && !(*dst[i] = strdup(src[i])))
			return -ENOMEM;
	}
	/* Our own copy: a reconnect proves the secret again long after
	 * djmfs_connect() returned and the caller may have freed it. */
	if (o->secret && o->secret_len) {
		void *copy = malloc(o->secret_len);

		if (!copy)
			return -ENOMEM;
		memcpy(copy, o->secret, o->secret_len);
		c->opts.secret = copy;
	}
	return 0;
}

static int client_alloc(struct djmfs_client **out)
{
	struct djmfs_client *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int err;

	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->vol_fd = -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = pthread_cond_init(&c->state_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err) {
		free(c);
		return -err;
	}
	pthread_cond_init(&c->send_cv, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->hb_lock, NULL);
	djmfs__buf_init(&c->sendq);
	djmfs__buf_init(&c->sending);
	c->gen = c->send_gen = 1;
	*out = c;
	return 0;
}

void djmfs__conn_stop(struct djmfs_client *c)
{
	djmfs__hb_stop(c);
	/* Ending on purpose: dead before the shutdown, so the receive
	 * thread's exit is not logged as a loss, and no reconnecting. */
	pthread_mutex_lock(&c->lock);
	if (c->state != DEAD) {
		c->dead_err = -ENOTCONN;
		djmfs__conn_set_state(c, DEAD);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
	if (c->rx_started)
		pthread_join(c->rx_thread, NULL);
}

/* Frees everything djmfs__conn_open may have set up (files already
 * gone, every thread joined). */
void djmfs__conn_free(struct djmfs_client *c)
{
	djmfs__io_free(c->io);
	if (c->sock >= 0)
		close(c->sock);
	if (c->vol_fd >= 0)
		close(c->vol_fd);
	djmfs__buf_free(&c->sendq);
	djmfs__buf_free(&c->sending);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->hb_lock);
	pthread_cond_destroy(&c->state_cv);
	pthread_cond_destroy(&c->send_cv);
	free(c->server);
	free(c->volume);
	free(c->name);
	free(c->policy);
	free(c->profile);
	if (c->opts.secret) {
		explicit_bzero((void *)c->opts.secret, c->opts.secret_len);
		free((void *)c->opts.secret);
	}
	free(c);
}

int djmfs__conn_open(struct djmfs_client **out,
		     const struct djmfs_client_opts *opts)
{
	struct djmfs_client_opts none = { 0 };
	struct djmfs_client *c = NULL;
	int err;

	err = client_alloc(&c);
	if (err == 0)
		err = copy_opts(c, opts ? opts : &none);
	if (err < 0)
		goto err;
	c->opts.volume = c->volume;
	c->opts.name = c->name;
	c->opts.policy = c->policy;
	c->opts.profile = c->profile;
	err = connect_addr(c->server, &c->sock);
	if (err < 0) {
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: connect(%s): %s",
			   c->server, strerror(-err));
		goto err;
	}
	err = djmfs__rx_start(c);
	if (err == 0)
		err = hello(c);
	if (err == 0)
		err = open_volume(c);
	if (err == 0)
		err = djmfs__io_new(&c->io, c->vol_fd, &c->opts, &c->log);
	if (err == 0)
		err = djmfs__hb_start(c);
	if (err < 0)
		goto err;
	*out = c;
	return 0;
err:
	if (c) {
		djmfs__conn_stop(c);
		djmfs__conn_free(c);
	}
	return err;
}

/* ------------------------------------------------------------------ */
/* Calls without a file handle                                          */
/* ------------------------------------------------------------------ */

static int name_req(struct djmfs__msg *req, unsigned op, const char *name)
{
	req->h.op = (uint16_t)op;
	if (!name || !name[0] || strlen(name) > DJMFS_NAME_MAX)
		return -EINVAL;
	strcpy(req->u.name_req.name, name);
	return 0;
}

int djmfs_unlink(struct djmfs_client *c, const char *name)
{
	struct djmfs__msg req;
	int err = name_req(&req, DJMFS_OP_UNLINK, name);

	return err < 0 ? err : djmfs__rpc(c, &req, NULL, NULL);
}

static void stat_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct djmfs_file_info *fi = arg;
	const struct djmfs__snap *s;

	if (status < 0)
		return;
	s = &m->u.snap_resp;
	memset(fi, 0, sizeof(*fi));
	snprintf(fi->name, sizeof(fi->name), "%s", s->name);
	fi->ino = s->ino;
	fi->version = s->version;
	fi->flags = s->flags;
	fi->ctime_ns = s->ctime_ns;
	fi->mtime_ns = s->mtime_ns;
	fi->n_objs = s->n_objs;
	for (uint32_t i = 0; i < s->n_objs; i++) {
		struct djmfs_obj_info *o = &fi->objs[i];

		o->id = s->objs[i].id;
		o->attrs = s->objs[i].attrs;
		memcpy(o->name, s->objs[i].name, sizeof(o->name));
		o->size = s->objs[i].size;
		o->n_extents = s->objs[i].ext_total - s->objs[i].ext_first;
		o->start = s->objs[i].start;
		fi->size += o->size;
	}
}

int djmfs_stat(struct djmfs_client *c, const char *name,
	       struct djmfs_file_info *out)
{
	struct djmfs__msg req;
	struct djmfs_file_info fi;
	int err = name_req(&req, DJMFS_OP_STAT, name);

	if (err == 0)
		err = djmfs__rpc(c, &req, stat_reply, &fi);
	if (err == 0 && out)
		*out = fi;
	return err;
}

/* One LIST page, copied out of the reply. */
struct list_page {
	struct djmfs_file_info *fi;
	uint32_t n;
	uint8_t more;
	int err;
};

static void list_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct list_page *pg = arg;
	struct djmfs__list_entry e;
	struct djmfs__cur cur;
	int r;

	if (status < 0)
		return;
	pg->more = m->u.list_resp.more;
	pg->fi = calloc(m->u.list_resp.n ? m->u.list_resp.n : 1,
			sizeof(*pg->fi));
	if (!pg->fi) {
		pg->err = -ENOMEM;
		return;
	}
	djmfs__cur_init(&cur, m->u.list_resp.p, m->u.list_resp.plen);
	while (pg->n < m->u.list_resp.n && (r = djmfs__list_next(&cur, &e)) > 0) {
		struct djmfs_file_info *fi = &pg->fi[pg->n++];

		memcpy(fi->name, e.name, sizeof(fi->name));
		fi->ino = e.ino;
		fi->version = e.version;
		fi->flags = e.flags;
		fi->size = e.size;
		fi->mtime_ns = e.mtime_ns;
	}
}

int djmfs_list(struct djmfs_client *c, const char *prefix, djmfs_list_fn fn,
	       void *arg)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_LIST };
	int err = 0;

	if (!fn || (prefix && strlen(prefix) > DJMFS_NAME_MAX))
		return -EINVAL;
	snprintf(req.u.list_req.prefix, sizeof(req.u.list_req.prefix), "%s",
		 prefix ? prefix : "");
	req.u.list_req.max = LIST_PAGE;
	for (;;) {
		struct list_page pg = { 0 };

		err = djmfs__rpc(c, &req, list_reply, &pg);
		if (err == 0)
			err = pg.err;
		for (uint32_t i = 0; err == 0 && i < pg.n; i++)
			err = fn(arg, &pg.fi[i]);
		if (err == 0 && pg.n > 0)
			memcpy(req.u.list_req.after, pg.fi[pg.n - 1].name,
			       sizeof(req.u.list_req.after));
		free(pg.fi);
		if (err != 0 || !pg.more || pg.n == 0)
			return err;
	}
}

static void df_reply(void *arg, int status, const struct djmfs__msg *m)
{
	if (status == 0)
		*(struct djmfs_df *)arg = m->u.df_resp;
}

int djmfs_df(struct djmfs_client *c, struct djmfs_df *out)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_DF };

	if (!out)
		return -EINVAL;
	return djmfs__rpc(c, &req, df_reply, out);
}

static void stats_reply(void *arg, int status, const struct djmfs__msg *m)
{
	if (status == 0)
		*(struct djmfs_server_stats *)arg = m->u.stats_resp;
}

int djmfs_server_stats(struct djmfs_client *c, struct djmfs_server_stats *out)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_STATS };

	if (!out)
		return -EINVAL;
	return djmfs__rpc(c, &req, stats_reply, out);
}

void djmfs_io_stats(struct djmfs_client *c, struct djmfs_io_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c && c->io)
		djmfs__io_get_stats(c->io, out);
	if (c)
		out->copied_bytes = __atomic_load_n(&c->copied_bytes,
						    __ATOMIC_RELAXED);
}

void djmfs_client_stats(struct djmfs_client *c,
			struct djmfs_client_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	out->csum_verified_bytes = __atomic_load_n(
		&c->csum.csum_verified_bytes, __ATOMIC_RELAXED);
	out->csum_unverified_bytes = __atomic_load_n(
		&c->csum.csum_unverified_bytes, __ATOMIC_RELAXED);
	out->csum_mismatches = __atomic_load_n(&c->csum.csum_mismatches,
					       __ATOMIC_RELAXED);
	out->csum_retry_ok = __atomic_load_n(&c->csum.csum_retry_ok,
					     __ATOMIC_RELAXED);
	out->csum_errors = __atomic_load_n(&c->csum.csum_errors,
					   __ATOMIC_RELAXED);
}

int djmfs_set_io(struct djmfs_client *c, const char *policy,
		 const char *profile, unsigned depth)
{
	if (!c || !c->io)
		return -EINVAL;
	return djmfs__io_set(c->io, policy, profile, depth);
}

void djmfs_get_io(struct djmfs_client *c, struct djmfs_io_knobs *out)
{
	memset(out, 0, sizeof(*out));
	if (c && c->io)
		djmfs__io_get(c->io, out);
}
