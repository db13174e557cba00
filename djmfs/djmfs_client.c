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
 * A lost connection is not the end (unless reconnect_ms says so): the
 * receive thread fails the calls in flight, marks every file handle
 * stale and wakes the reconnect thread, which reads back writers'
 * unpublished data, reconnects with backoff, says HELLO again, has
 * djmfs_file.c restore the handles, and opens the gate again.  Calls
 * that need the server wait meanwhile (see djmfs.h, djmfs_connect).
 *
 * Invariants:
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
 *     File handles are marked stale in the same critical section that
 *     leaves UP or RESTORING, so a handle never starts a step that needs
 *     the server on a connection it was not restored on.
 *  5. The reconnect window is measured from the loss that ended UP;
 *     losses while restoring do not extend it.
 *
 * Connection states (c->state):
 *   UP         --loss, reconnecting on: conn_lost----------> DOWN (logged)
 *   UP         --loss, reconnecting off: conn_lost/conn_fail-> DEAD (logged)
 *   DOWN       --connected again: install (reconnect thread)-> RESTORING
 *   RESTORING  --loss: conn_lost--------------------------> DOWN
 *   RESTORING  --HELLO ok, every file restored: go_up------> UP (logged)
 *   DOWN/RESTORING --window over, or fatal: give_up-------> DEAD (logged)
 *   any        --djmfs_disconnect: client_teardown---------> DEAD
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
#define RECONNECT_DEFAULT_MS 30000u
#define BACKOFF_FIRST_NS 10000000u  /* after the immediate first retry */
#define BACKOFF_MAX_NS 500000000u

enum { UP = DJMFS__CONN_UP, DOWN = DJMFS__CONN_DOWN,
       RESTORING = DJMFS__CONN_RESTORING, DEAD = DJMFS__CONN_DEAD };

/* Set on the reconnect thread: its blocking calls never wait for UP. */
static __thread const struct djmfs_client *recon_self;

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

/* Under c->lock: what a refused call fails with. */
static int refusal(const struct djmfs_client *c)
{
	return c->state == DEAD && c->dead_err ? c->dead_err : -ENOTCONN;
}

static void set_state(struct djmfs_client *c, int st)
{
	__atomic_store_n(&c->state, st, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&c->state_cv);
}

/* Receive thread, after a loss: fails every pending call with @err. */
static void fail_all(struct djmfs_client *c, int err)
{
	struct djmfs__call *list = NULL;

	pthread_mutex_lock(&c->lock);
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
	int log_now = 0;

	pthread_mutex_lock(&c->lock);
	if ((c->state == UP || c->state == RESTORING) && !c->fail_why[0]) {
		snprintf(c->fail_why, sizeof(c->fail_why), "%s: %s", why,
			 strerror(err < 0 ? -err : EIO));
		if (!c->recon_started) {
			/* No reconnecting: dead at once, so new calls fail
			 * fast.  Another protocol version is worth telling
			 * apart; every other failure is a lost connection. */
			c->dead_err = err == -EPROTO ? -EPROTO : -ENOTCONN;
			set_state(c, DEAD);
			log_now = 1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (log_now)
		djmfs__log(&c->log, DJMFS_LOG_ERROR,
			   "djmfs: connection to %s lost: %s: %s", c->server,
			   why, strerror(err < 0 ? -err : EIO));
	/* Wakes the receive thread, which fails the pending calls. */
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
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

/* Called with send_lock held and flushing set; returns with both.  The
 * socket cannot be closed under it (invariant 3). */
static void flush_queue(struct djmfs_client *c)
{
	while (c->sendq.len > 0) {
		struct djmfs__buf t = c->sending;
		int fd = c->sock, err;

		c->sending = c->sendq;
		c->sendq = t;
		djmfs__buf_reset(&c->sendq);
		c->last_flush_ns = djmfs_now();
		c->flush_at_ns = 0;
		pthread_mutex_unlock(&c->send_lock);
		err = write_all(fd, c->sending.p, c->sending.len);
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

/* Called with send_lock held: writes the queue out as the flusher. */
static void flush_now(struct djmfs_client *c)
{
	c->flushing = 1;
	flush_queue(c);
	c->flushing = 0;
	pthread_cond_broadcast(&c->send_cv);
}

/* Queues one frame and, unless another thread is flushing or the frame
 * may wait for the coalescing window (the heartbeat thread then writes
 * it out on time), writes the queue out.  A frame for generation @gen
 * when c->sock is another's is dropped: its call fails with that
 * connection (invariant 2).  Returns 0 or the encoder's -errno (nothing
 * queued). */
static int send_msg(struct djmfs_client *c, const struct djmfs__msg *m,
		    uint64_t gen)
{
	int wake = 0;
	size_t mark;
	int err = 0;

	pthread_mutex_lock(&c->send_lock);
	if (gen != c->send_gen)
		goto out;
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
		flush_now(c);
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
		flush_now(c);
		at = 0;
	} else if (at && c->flushing) {
		at = 0; /* the flusher at work takes the frames */
		c->flush_at_ns = 0;
	}
	pthread_mutex_unlock(&c->send_lock);
	return at;
}

uint64_t djmfs__conn_gen(struct djmfs_client *c)
{
	uint64_t gen;

	pthread_mutex_lock(&c->lock);
	gen = c->gen;
	pthread_mutex_unlock(&c->lock);
	return gen;
}

int djmfs__conn_dead(struct djmfs_client *c)
{
	return __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == DEAD;
}

uint64_t djmfs__conn_deadline(struct djmfs_client *c)
{
	uint64_t at;

	pthread_mutex_lock(&c->lock);
	at = c->state == UP ? 0 : c->deadline_ns;
	pthread_mutex_unlock(&c->lock);
	return at;
}

static void abs_time(struct timespec *ts, uint64_t at_ns)
{
	ts->tv_sec = (time_t)(at_ns / 1000000000u);
	ts->tv_nsec = (long)(at_ns % 1000000000u);
}

void djmfs__conn_nap(struct djmfs_client *c, uint64_t ns)
{
	struct timespec ts;

	abs_time(&ts, djmfs_now() + ns);
	pthread_mutex_lock(&c->lock);
	if (c->state != DEAD)
		pthread_cond_timedwait(&c->state_cv, &c->lock, &ts);
	pthread_mutex_unlock(&c->lock);
}

int djmfs__conn_wait_up(struct djmfs_client *c, uint64_t *gen)
{
	int err;

	pthread_mutex_lock(&c->lock);
	while (c->state == DOWN || c->state == RESTORING)
		pthread_cond_wait(&c->state_cv, &c->lock);
	err = c->state == DEAD ? refusal(c) : 0;
	*gen = c->gen;
	pthread_mutex_unlock(&c->lock);
	return err;
}

int djmfs__rpc_async(struct djmfs_client *c, struct djmfs__msg *req,
		     djmfs__reply_fn fn, void *arg)
{
	return djmfs__rpc_async_on(c, djmfs__conn_gen(c), req, fn, arg);
}

int djmfs__rpc_async_on(struct djmfs_client *c, uint64_t gen,
			struct djmfs__msg *req, djmfs__reply_fn fn, void *arg)
{
	struct djmfs__call *k = calloc(1, sizeof(*k));
	int err = 0;

	if (!k)
		return -ENOMEM;
	k->op = req->h.op;
	k->fn = fn;
	k->arg = arg;
	pthread_mutex_lock(&c->lock);
	if (gen != c->gen || (c->state != UP && c->state != RESTORING)) {
		err = refusal(c);
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
	err = send_msg(c, req, gen);
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

int djmfs__rpc_on(struct djmfs_client *c, uint64_t gen,
		  struct djmfs__msg *req, djmfs__reply_fn fn, void *arg)
{
	struct waiter w = {
		.mu = PTHREAD_MUTEX_INITIALIZER,
		.cv = PTHREAD_COND_INITIALIZER,
		.fn = fn,
		.arg = arg,
	};
	int err = djmfs__rpc_async_on(c, gen, req, waiter_reply, &w);

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

/* Calls that may be sent again when their answer was lost: reads, and
 * UNLINK (a second one finding nothing means the first one did it). */
static const uint8_t repeatable[] = {
	[DJMFS_OP_PING] = 1, [DJMFS_OP_LIST] = 1, [DJMFS_OP_STAT] = 1,
	[DJMFS_OP_DF] = 1,   [DJMFS_OP_STATS] = 1, [DJMFS_OP_UNLINK] = 1,
};

int djmfs__rpc(struct djmfs_client *c, struct djmfs__msg *req,
	       djmfs__reply_fn fn, void *arg)
{
	int recon = recon_self == c, again, lost = 0, err;
	uint64_t gen = 0;

	do {
		if (recon)
			gen = djmfs__conn_gen(c), err = 0;
		else
			err = djmfs__conn_wait_up(c, &gen);
		if (err == 0)
			err = djmfs__rpc_on(c, gen, req, fn, arg);
		again = err == -ENOTCONN && !recon &&
			req->h.op < sizeof(repeatable) && repeatable[req->h.op] &&
			!djmfs__conn_dead(c);
		lost |= again;
	} while (again);
	if (lost && req->h.op == DJMFS_OP_UNLINK && err == -ENOENT)
		err = 0;
	return err;
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

/* Closes the socket once no flusher writes to it (invariant 3). */
static void retire_socket(struct djmfs_client *c)
{
	int fd;

	pthread_mutex_lock(&c->send_lock);
	c->send_gen = 0;
	djmfs__buf_reset(&c->sendq);
	c->flush_at_ns = 0;
	while (c->flushing)
		pthread_cond_wait(&c->send_cv, &c->send_lock);
	pthread_mutex_unlock(&c->send_lock);
	pthread_mutex_lock(&c->lock);
	pthread_mutex_lock(&c->send_lock);
	fd = c->sock;
	c->sock = -1;
	pthread_mutex_unlock(&c->send_lock);
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
}

/*
 * Receive thread, when its connection failed with @err (@why): retires
 * the socket, moves to DOWN (reconnecting: files stale, the window
 * starts if this ends UP) or DEAD, fails every pending call, and only
 * then lets the reconnect thread see DOWN (settled).
 */
static void conn_lost(struct djmfs_client *c, int err, const char *why)
{
	char line[256] = "";
	int status;

	retire_socket(c);
	pthread_mutex_lock(&c->lock);
	if (c->fail_why[0])
		why = c->fail_why;
	if ((c->state == UP || c->state == RESTORING) && c->recon_started) {
		if (c->state == UP) {
			c->down_ns = djmfs_now();
			c->deadline_ns = c->down_ns + c->reconnect_ns;
			c->cstats.outages++;
			snprintf(line, sizeof(line), "djmfs: connection to %s "
				 "lost: %s%s%s; reconnecting for up to %llu ms",
				 c->server, why, why == c->fail_why ? "" : ": ",
				 why == c->fail_why ? "" : strerror(-err),
				 (unsigned long long)(c->reconnect_ns / 1000000u));
		}
		c->gen++;
		c->settled = 0;
		set_state(c, DOWN);
		djmfs__files_mark_stale(c);
	} else if (c->state == UP || c->state == RESTORING) {
		c->dead_err = err == -EPROTO ? -EPROTO : -ENOTCONN;
		set_state(c, DEAD);
		snprintf(line, sizeof(line), "djmfs: connection to %s lost: "
			 "%s%s%s", c->server, why,
			 why == c->fail_why ? "" : ": ",
			 why == c->fail_why ? "" : strerror(-err));
	}
	c->fail_why[0] = '\0';
	status = c->state == DEAD ? refusal(c) : -ENOTCONN;
	pthread_mutex_unlock(&c->lock);
	if (line[0])
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "%s", line);
	fail_all(c, status);
	pthread_mutex_lock(&c->lock);
	c->settled = 1;
	pthread_cond_broadcast(&c->state_cv);
	pthread_mutex_unlock(&c->lock);
}

/* Reads frames from @fd until it fails; returns the -errno and why. */
static int rx_conn(struct djmfs_client *c, int fd, struct djmfs__msg *m,
		   uint8_t **bufp, size_t *capp, const char **why)
{
	size_t have = 0, need = 0;

	for (;;) {
		ssize_t r, used;

		if (need > *capp) {
			uint8_t *nb = realloc(*bufp, need);

			if (!nb) {
				*why = "out of memory";
				return -ENOMEM;
			}
			*bufp = nb;
			*capp = need;
		}
		r = read(fd, *bufp + have, *capp - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = r < 0 ? "read" : "server closed the connection";
			return r < 0 ? -errno : -ECONNRESET;
		}
		have += (size_t)r;
		used = parse_frames(c, m, *bufp, have, &need);
		if (used < 0) {
			*why = "bad frame from the server";
			return (int)used;
		}
		memmove(*bufp, *bufp + used, have - (size_t)used);
		have -= (size_t)used;
	}
}

/* Reads every connection the client has, one after the other, until the
 * client is DEAD and the last socket retired. */
static void *rx_main(void *arg)
{
	struct djmfs_client *c = arg;
	struct djmfs__msg *m = malloc(sizeof(*m));
	size_t cap = RX_INITIAL;
	uint8_t *buf = malloc(cap);

	pthread_setname_np(pthread_self(), "djmfs-rx");
	pthread_mutex_lock(&c->lock);
	for (;;) {
		const char *why = "out of memory";
		int fd, err = -ENOMEM;

		while (c->state == DOWN)
			pthread_cond_wait(&c->state_cv, &c->lock);
		fd = c->sock;
		if (fd < 0)
			break; /* DEAD, nothing left to read */
		pthread_mutex_unlock(&c->lock);
		if (m && buf)
			err = rx_conn(c, fd, m, &buf, &cap, &why);
		else
			djmfs__conn_fail(c, err, why);
		conn_lost(c, err, why);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
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

	pthread_setname_np(pthread_self(), "djmfs-hb");
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

/* Waits until the receive thread has failed the lost connection's calls
 * (DOWN and settled).  Returns 0, or -ECANCELED once DEAD. */
static int wait_settled(struct djmfs_client *c)
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
		set_state(c, RESTORING);
		err = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* RESTORING -> UP once no handle waits for a restore.  Returns 1 (UP),
 * 0 (a handle opened meanwhile still needs one) or -ENOTCONN. */
static int go_up(struct djmfs_client *c, uint64_t gen,
		 const struct djmfs__restore_tally *t, unsigned tries)
{
	uint64_t ms = 0;
	int ret;

	pthread_mutex_lock(&c->lock);
	if (gen != c->gen || c->state != RESTORING) {
		ret = -ENOTCONN;
	} else if (djmfs__files_any_stale(c)) {
		ret = 0;
	} else {
		ms = (djmfs_now() - c->down_ns) / 1000000u;
		c->cstats.reconnects++;
		c->cstats.outage_ns += djmfs_now() - c->down_ns;
		c->cstats.confirmed += t->confirmed;
		c->cstats.resent += t->resent;
		c->cstats.rewritten_bytes += t->rewritten;
		set_state(c, UP);
		ret = 1;
	}
	pthread_mutex_unlock(&c->lock);
	if (ret == 1)
		djmfs__log(&c->log, DJMFS_LOG_WARN, "djmfs: connection to %s "
			   "restored after %llu ms (%u tries): %u files "
			   "reopened (%u lost), %u publishes found applied, %u "
			   "operations re-sent, %llu unpublished bytes "
			   "rewritten", c->server, (unsigned long long)ms,
			   tries, t->files, t->lost, t->confirmed, t->resent,
			   (unsigned long long)t->rewritten);
	return ret;
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

/* One try: connect, HELLO, restore the files.  A failure after the
 * connect drops that connection again. */
static int try_once(struct djmfs_client *c, struct djmfs__restore_tally *t,
		    unsigned tries)
{
	uint8_t uuid[16];
	uint32_t au = c->au_size;
	uint64_t gen = 0, data_off = c->data_off, n_aus = c->n_aus;
	int fd = -1, err = wait_settled(c);

	if (err == 0) {
		djmfs__files_salvage(c);
		err = connect_addr(c->server, &fd);
	}
	if (err < 0)
		return err;
	err = install(c, fd, &gen);
	if (err < 0) {
		close(fd);
		return err;
	}
	memcpy(uuid, c->uuid, sizeof(uuid));
	err = hello(c);
	if (err == 0)
		err = same_volume(c, uuid, au, data_off, n_aus);
	while (err == 0) {
		err = djmfs__files_restore(c, gen, t);
		if (err == 0)
			err = go_up(c, gen, t, tries);
		if (err == 1)
			return 0;
	}
	djmfs__conn_fail(c, err, "restoring the session");
	return err;
}

static void give_up(struct djmfs_client *c, int err)
{
	uint64_t ms;

	pthread_mutex_lock(&c->lock);
	ms = (djmfs_now() - c->down_ns) / 1000000u;
	if (c->state != DEAD) {
		c->dead_err = -ENOTCONN;
		c->cstats.outage_ns += djmfs_now() - c->down_ns;
		set_state(c, DEAD);
	}
	pthread_mutex_unlock(&c->lock);
	djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs: reconnecting to %s: gave "
		   "up after %llu ms: %s; calls fail with ENOTCONN", c->server,
		   (unsigned long long)ms, strerror(-err));
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
	djmfs__files_lose(c, -ENOTCONN);
}

/* Errors no retry can mend. */
static int fatal(int err)
{
	return err == -EXDEV || err == -EPROTO || err == -EACCES ||
	       err == -ECANCELED;
}

/* One outage: tries at once, then with a growing pause, until the
 * session and files are back or the window is over. */
static void reconnect(struct djmfs_client *c)
{
	struct djmfs__restore_tally t = { 0 };
	uint64_t pause = 0, deadline = djmfs__conn_deadline(c);
	unsigned tries = 0;
	int err;

	for (;;) {
		uint64_t now;

		err = try_once(c, &t, ++tries);
		if (err == 0 || fatal(err) || djmfs__conn_dead(c))
			break;
		now = djmfs_now();
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		/* The last pause ends with the window: one more try then. */
		if (pause)
			djmfs__conn_nap(c, pause < deadline - now ?
					pause : deadline - now);
		pause = pause ? pause * 2 : BACKOFF_FIRST_NS;
		if (pause > BACKOFF_MAX_NS)
			pause = BACKOFF_MAX_NS;
	}
	if (err < 0 && err != -ECANCELED && !djmfs__conn_dead(c))
		give_up(c, err);
}

/* The reconnect thread: sleeps until an outage, handles it. */
static void *recon_main(void *arg)
{
	struct djmfs_client *c = arg;

	pthread_setname_np(pthread_self(), "djmfs-recon");
	recon_self = c;
	while (wait_settled(c) == 0)
		reconnect(c);
	return NULL;
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
	/* Ending on purpose: dead before the shutdown, so the receive
	 * thread's exit is not logged as a loss, and no reconnecting. */
	pthread_mutex_lock(&c->lock);
	if (c->state != DEAD) {
		c->dead_err = -ENOTCONN;
		set_state(c, DEAD);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
	if (c->rx_started)
		pthread_join(c->rx_thread, NULL);
	if (c->recon_started)
		pthread_join(c->recon_thread, NULL);
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

/* Reconnecting is on unless the options say never. */
static int recon_start(struct djmfs_client *c)
{
	uint32_t ms = c->opts.reconnect_ms;
	int err;

	if (ms == DJMFS_CLIENT_NO_RECONNECT)
		return 0;
	c->reconnect_ns = (uint64_t)(ms ? ms : RECONNECT_DEFAULT_MS) *
			  1000000u;
	err = pthread_create(&c->recon_thread, NULL, recon_main, c);
	if (err)
		return -err;
	pthread_mutex_lock(&c->lock);
	c->recon_started = 1;
	pthread_mutex_unlock(&c->lock);
	return 0;
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
	if (err == 0)
		err = recon_start(c);
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
