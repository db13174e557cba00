/*
 * The client's connection to djmfsd: connecting (address forms, HELLO,
 * the volume's identity check), the RPC layer every other client module
 * uses, the heartbeat that keeps the session's lease alive, and the
 * calls that need no file handle (unlink, stat, list, df, stats).
 *
 * RPCs are pipelined on one socket.  A call gets a request id and a slot
 * in a table of pending calls, then its frame is appended to a send
 * queue; whichever thread finds no flusher at work becomes the flusher
 * and writes the queue out (so frames from many threads leave in one
 * write).  A receive thread reads frames in bulk, decodes them and
 * completes the matching call: an asynchronous callback, or a waiter's
 * condition variable for the blocking form.
 *
 * Invariants:
 *  1. A call is in the pending table from its insertion until exactly
 *     one of: its reply arrives, the receive thread fails it (connection
 *     lost), or its own send fails before anyone could have seen it.
 *     Whoever removes it calls its hook; nobody else does.
 *  2. Once c->dead is set (under c->lock) no call enters the table, and
 *     the receive thread, which alone empties the table on failure, is
 *     on its way out.
 *  3. Bytes of one frame are written contiguously: frames are appended
 *     whole to sendq under send_lock, and only the single flusher
 *     (flushing == 1) writes to the socket.
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
#define RX_INITIAL (64u << 10)
#define LIST_PAGE 256

struct djmfs__call {
	uint32_t id;
	uint16_t op;
	djmfs__reply_fn fn;
	void *arg;
	struct djmfs__call *next;
};

uint64_t djmfs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Pending calls                                                        */
/* ------------------------------------------------------------------ */

static struct djmfs__call **bucket(struct djmfs_client *c, uint32_t id)
{
	return &c->calls[id % DJMFS__CALL_BUCKETS];
}

/* Under c->lock.  Returns the call removed, or NULL. */
static struct djmfs__call *call_take(struct djmfs_client *c, uint32_t id)
{
	struct djmfs__call **pp = bucket(c, id);

	for (; *pp; pp = &(*pp)->next) {
		struct djmfs__call *k = *pp;

		if (k->id == id) {
			*pp = k->next;
			c->npending--;
			return k;
		}
	}
	return NULL;
}

static void call_finish(struct djmfs__call *k, int status,
			const struct djmfs__msg *m)
{
	if (k->fn)
		k->fn(k->arg, status, status == 0 ? m : NULL);
	free(k);
}

/* Receive thread, on its way out: fails every pending call. */
static void fail_all(struct djmfs_client *c)
{
	struct djmfs__call *list = NULL;
	int err;

	pthread_mutex_lock(&c->lock);
	c->dead = 1;
	err = c->dead_err ? c->dead_err : -ENOTCONN;
	for (unsigned i = 0; i < DJMFS__CALL_BUCKETS; i++) {
		while (c->calls[i]) {
			struct djmfs__call *k = c->calls[i];

			c->calls[i] = k->next;
			k->next = list;
			list = k;
		}
	}
	pthread_mutex_unlock(&c->lock);
	while (list) {
		struct djmfs__call *k = list;

		list = k->next;
		call_finish(k, err, NULL);
	}
}

void djmfs__conn_fail(struct djmfs_client *c, int err, const char *why)
{
	int first;

	pthread_mutex_lock(&c->lock);
	first = !c->dead;
	if (first) {
		c->dead = 1;
		/* Another protocol version is worth telling apart; every
		 * other failure is a lost connection to the caller. */
		c->dead_err = err == -EPROTO ? -EPROTO : -ENOTCONN;
	}
	pthread_mutex_unlock(&c->lock);
	if (!first)
		return;
	djmfs__log(&c->log, DJMFS_LOG_ERROR,
		   "djmfs: connection to %s lost: %s: %s", c->server, why,
		   strerror(err < 0 ? -err : EIO));
	/* Wakes the receive thread, which fails the pending calls. */
	shutdown(c->sock, SHUT_RDWR);
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Called with send_lock held and flushing set; returns with both. */
static void flush_queue(struct djmfs_client *c)
{
	while (c->sendq.len > 0) {
		struct djmfs__buf t = c->sending;
		int err;

		c->sending = c->sendq;
		c->sendq = t;
		djmfs__buf_reset(&c->sendq);
		c->last_flush_ns = djmfs_now();
		c->flush_at_ns = 0;
		pthread_mutex_unlock(&c->send_lock);
		err = write_all(c->sock, c->sending.p, c->sending.len);
		djmfs__buf_reset(&c->sending);
		if (err < 0)
			djmfs__conn_fail(c, err, "send");
		pthread_mutex_lock(&c->send_lock);
		if (err < 0)
			djmfs__buf_reset(&c->sendq);
	}
}

/*
 * Whether a frame queued now may wait for the window's end: only while
 * other calls are in flight (their replies prove the server is busy and
 * a lone caller never waits) and a write happened within the window.
 * Called with send_lock held.
 */
static int may_defer(struct djmfs_client *c, uint64_t now)
{
	return c->batch_ns &&
	       __atomic_load_n(&c->npending, __ATOMIC_RELAXED) > 1 &&
	       now < c->last_flush_ns + c->batch_ns;
}

/* Queues one frame and, unless another thread is flushing or the frame
 * may wait for the coalescing window (the heartbeat thread then writes
 * it out on time), writes the queue out.  Returns 0 or the encoder's
 * -errno (nothing queued). */
static int send_msg(struct djmfs_client *c, const struct djmfs__msg *m)
{
	int wake = 0;
	size_t mark;
	int err;

	pthread_mutex_lock(&c->send_lock);
	mark = c->sendq.len;
	err = djmfs__msg_encode(&c->sendq, m);
	if (err == 0 && c->sendq.err)
		err = c->sendq.err;
	if (err < 0) {
		c->sendq.len = mark;
		c->sendq.err = 0;
		goto out;
	}
	c->last_send_ns = djmfs_now();
	if (c->flushing) {
		/* The flusher at work takes this frame too. */
	} else if (may_defer(c, c->last_send_ns)) {
		if (!c->flush_at_ns) {
			c->flush_at_ns = c->last_flush_ns + c->batch_ns;
			wake = 1;
		}
	} else {
		c->flushing = 1;
		flush_queue(c);
		c->flushing = 0;
	}
out:
	pthread_mutex_unlock(&c->send_lock);
	if (wake) {
		/* Not under send_lock: the heartbeat thread takes hb_lock
		 * first. */
		pthread_mutex_lock(&c->hb_lock);
		pthread_cond_signal(&c->hb_cond);
		pthread_mutex_unlock(&c->hb_lock);
	}
	return err;
}

/* Heartbeat thread: writes out frames deferred by send_msg once their
 * window has passed.  Returns when the next deferred flush is due (0:
 * none). */
static uint64_t flush_due(struct djmfs_client *c)
{
	uint64_t at;

	pthread_mutex_lock(&c->send_lock);
	at = c->flush_at_ns;
	if (at && djmfs_now() >= at && !c->flushing) {
		c->flushing = 1;
		flush_queue(c);
		c->flushing = 0;
		at = 0;
	} else if (at && c->flushing) {
		at = 0; /* the flusher at work takes the frames */
		c->flush_at_ns = 0;
	}
	pthread_mutex_unlock(&c->send_lock);
	return at;
}

int djmfs__rpc_async(struct djmfs_client *c, struct djmfs__msg *req,
		     djmfs__reply_fn fn, void *arg)
{
	struct djmfs__call *k = calloc(1, sizeof(*k));
	int err = 0;

	if (!k)
		return -ENOMEM;
	k->op = req->h.op;
	k->fn = fn;
	k->arg = arg;
	pthread_mutex_lock(&c->lock);
	if (c->dead) {
		err = c->dead_err ? c->dead_err : -ENOTCONN;
		pthread_mutex_unlock(&c->lock);
		goto err;
	}
	if (++c->next_id == 0)
		c->next_id = 1;
	k->id = c->next_id;
	k->next = *bucket(c, k->id);
	*bucket(c, k->id) = k;
	c->npending++;
	pthread_mutex_unlock(&c->lock);

	req->h.id = k->id;
	req->h.kind = DJMFS_REQ;
	err = send_msg(c, req);
	if (err == 0)
		return 0;
	djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: encoding %s: %s",
		   djmfs__op_name(req->h.op), strerror(-err));
	/* Still pending means nobody else completes it (invariant 1). */
	pthread_mutex_lock(&c->lock);
	k = call_take(c, req->h.id);
	pthread_mutex_unlock(&c->lock);
	if (!k)
		return 0;
err:
	free(k);
	return err;
}

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int status;
	djmfs__reply_fn fn;
	void *arg;
};

static void waiter_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct waiter *w = arg;

	if (w->fn)
		w->fn(w->arg, status, m);
	pthread_mutex_lock(&w->mu);
	w->status = status;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int djmfs__rpc(struct djmfs_client *c, struct djmfs__msg *req,
	       djmfs__reply_fn fn, void *arg)
{
	struct waiter w = {
		.mu = PTHREAD_MUTEX_INITIALIZER,
		.cv = PTHREAD_COND_INITIALIZER,
		.fn = fn,
		.arg = arg,
	};
	int err = djmfs__rpc_async(c, req, waiter_reply, &w);

	if (err < 0)
		return err;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return w.status;
}

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

static void dispatch(struct djmfs_client *c, const struct djmfs__msg *m)
{
	struct djmfs__call *k;

	if (m->h.kind != DJMFS_RESP) {
		djmfs__log(&c->log, DJMFS_LOG_WARN, "djmfs: ignoring a %s "
			   "request from the server", djmfs__op_name(m->h.op));
		return;
	}
	pthread_mutex_lock(&c->lock);
	k = call_take(c, m->h.id);
	pthread_mutex_unlock(&c->lock);
	if (!k) {
		djmfs__log(&c->log, DJMFS_LOG_WARN, "djmfs: reply %s to "
			   "unknown request %" PRIu32,
			   djmfs__op_name(m->h.op), m->h.id);
		return;
	}
	if (k->op != m->h.op)
		call_finish(k, -EBADMSG, NULL);
	else
		call_finish(k, m->status > 0 ? -EBADMSG : m->status, m);
}

/* Decodes and dispatches every whole frame in p[0..n).  Returns the bytes
 * used, or -errno for a frame that breaks the protocol.  *need is the
 * size of the incomplete frame at the end, if any. */
static ssize_t parse_frames(struct djmfs_client *c, struct djmfs__msg *m,
			    const uint8_t *p, size_t n, size_t *need)
{
	size_t used = 0;

	*need = 0;
	while (n - used >= DJMFS_HDR_SIZE) {
		struct djmfs__hdr h;
		size_t flen;
		int err = djmfs__hdr_decode(p + used, n - used, &h);

		if (err < 0)
			return err;
		flen = DJMFS_HDR_SIZE + (size_t)h.len;
		if (n - used < flen) {
			*need = flen;
			break;
		}
		err = djmfs__msg_decode(p + used, flen, m);
		if (err < 0)
			return err;
		dispatch(c, m);
		used += flen;
	}
	return (ssize_t)used;
}

static void *rx_main(void *arg)
{
	struct djmfs_client *c = arg;
	struct djmfs__msg *m = malloc(sizeof(*m));
	size_t cap = RX_INITIAL, have = 0, need = 0;
	uint8_t *buf = malloc(cap);
	const char *why = "out of memory";
	int err = -ENOMEM;

	while (m && buf) {
		ssize_t r, used;

		if (need > cap) {
			uint8_t *nb = realloc(buf, need);

			if (!nb)
				break;
			buf = nb;
			cap = need;
		}
		r = read(c->sock, buf + have, cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -ECONNRESET;
			why = r < 0 ? "read" : "server closed the connection";
			break;
		}
		have += (size_t)r;
		used = parse_frames(c, m, buf, have, &need);
		if (used < 0) {
			err = (int)used;
			why = "bad frame from the server";
			break;
		}
		memmove(buf, buf + used, have - (size_t)used);
		have -= (size_t)used;
	}
	djmfs__conn_fail(c, err, why);
	fail_all(c);
	free(buf);
	free(m);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Heartbeat                                                            */
/* ------------------------------------------------------------------ */

static void *hb_main(void *arg)
{
	struct djmfs_client *c = arg;
	uint64_t period = (uint64_t)c->lease_ms * 1000000u / 3;

	if (period == 0)
		period = 1000000000u;
	pthread_mutex_lock(&c->hb_lock);
	while (!c->hb_stop) {
		uint64_t last, now = djmfs_now(), at = now + period, fl;
		struct timespec ts;

		pthread_mutex_unlock(&c->hb_lock);
		fl = flush_due(c);
		pthread_mutex_lock(&c->hb_lock);
		if (fl && fl < at)
			at = fl;
		ts.tv_sec = (time_t)(at / 1000000000u);
		ts.tv_nsec = (long)(at % 1000000000u);
		pthread_cond_timedwait(&c->hb_cond, &c->hb_lock, &ts);
		if (c->hb_stop)
			break;
		pthread_mutex_unlock(&c->hb_lock);
		fl = flush_due(c);
		pthread_mutex_lock(&c->hb_lock);
		if (fl)
			continue; /* not due yet: wait for it */
		pthread_mutex_lock(&c->send_lock);
		last = c->last_send_ns;
		pthread_mutex_unlock(&c->send_lock);
		if (djmfs_now() - last >= period) {
			struct djmfs__msg ping = { .h.op = DJMFS_OP_PING };

			pthread_mutex_unlock(&c->hb_lock);
			djmfs__rpc_async(c, &ping, NULL, NULL);
			pthread_mutex_lock(&c->hb_lock);
		}
	}
	pthread_mutex_unlock(&c->hb_lock);
	return NULL;
}

static int hb_start(struct djmfs_client *c)
{
	pthread_condattr_t ca;
	int err;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = pthread_cond_init(&c->hb_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		return -err;
	err = pthread_create(&c->hb_thread, NULL, hb_main, c);
	if (err) {
		pthread_cond_destroy(&c->hb_cond);
		return -err;
	}
	c->hb_started = 1;
	return 0;
}

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
	err = djmfs__rpc(c, &req, hello_reply, c);
	if (err < 0)
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

static int copy_opts(struct djmfs_client *c, const struct djmfs_client_opts *o)
{
	const char *server = o->server ? o->server : getenv("DJMFS_SERVER");
	char **dst[] = { &c->volume, &c->name, &c->policy, &c->profile };
	const char *src[] = { o->volume, o->name, o->policy, o->profile };

	c->opts = *o;
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
	return 0;
}

static int client_alloc(struct djmfs_client **out)
{
	struct djmfs_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->vol_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->hb_lock, NULL);
	djmfs__buf_init(&c->sendq);
	djmfs__buf_init(&c->sending);
	*out = c;
	return 0;
}

/* Frees everything djmfs_connect may have set up (files already gone). */
static void client_teardown(struct djmfs_client *c)
{
	if (c->hb_started) {
		pthread_mutex_lock(&c->hb_lock);
		c->hb_stop = 1;
		pthread_cond_signal(&c->hb_cond);
		pthread_mutex_unlock(&c->hb_lock);
		pthread_join(c->hb_thread, NULL);
		pthread_cond_destroy(&c->hb_cond);
	}
	if (c->rx_started) {
		/* Ending on purpose: dead before the shutdown, so the
		 * receive thread's exit is not logged as a loss. */
		pthread_mutex_lock(&c->lock);
		if (!c->dead) {
			c->dead = 1;
			c->dead_err = -ENOTCONN;
		}
		pthread_mutex_unlock(&c->lock);
		shutdown(c->sock, SHUT_RDWR);
		pthread_join(c->rx_thread, NULL);
	}
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
	free(c->server);
	free(c->volume);
	free(c->name);
	free(c->policy);
	free(c->profile);
	free(c);
}

int djmfs_connect(struct djmfs_client **out,
		  const struct djmfs_client_opts *opts)
{
	struct djmfs_client_opts none = { 0 };
	struct djmfs_client *c = NULL;
	int err;

	if (!out)
		return -EINVAL;
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
	err = -pthread_create(&c->rx_thread, NULL, rx_main, c);
	if (err < 0)
		goto err;
	c->rx_started = 1;
	err = hello(c);
	if (err == 0)
		err = open_volume(c);
	if (err == 0)
		err = djmfs__io_new(&c->io, c->vol_fd, &c->opts, &c->log);
	if (err == 0)
		err = hb_start(c);
	if (err < 0)
		goto err;
	*out = c;
	return 0;
err:
	if (c)
		client_teardown(c);
	return err;
}

void djmfs_disconnect(struct djmfs_client *c)
{
	if (!c)
		return;
	djmfs__files_close_all(c);
	client_teardown(c);
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
		o->n_extents = s->objs[i].ext_total;
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
