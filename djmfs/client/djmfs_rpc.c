/*
 * The client's RPC layer over its connection to djmfsd: the table of
 * pending calls, the send queue and its flusher, the receive thread that
 * completes calls and notices a lost connection (conn_lost: DOWN or
 * DEAD, a new generation, the calls in flight failed), and the heartbeat
 * that keeps the session's lease alive and flushes deferred frames.
 * Everything else in the client is built on it; it calls nothing above.
 *
 * RPCs are pipelined on one socket.  A call gets a request id and a slot
 * in a table of pending calls, then its frame is appended to a send
 * queue; whichever thread finds no flusher at work becomes the flusher
 * and writes the queue out (so frames from many threads leave in one
 * write).  A receive thread reads frames in bulk, decodes them and
 * completes the matching call: an asynchronous callback, or a waiter's
 * condition variable for the blocking form.  The invariants and the
 * connection's states are in djmfs_client.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_clnt.h"

#define RX_INITIAL (64u << 10)

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

void djmfs__conn_set_state(struct djmfs_client *c, int st)
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
			djmfs__conn_set_state(c, DEAD);
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
	return __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
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
		/* Every handle is stale from here on (djmfs_file.h). */
		__atomic_store_n(&c->gen, c->gen + 1, __ATOMIC_RELEASE);
		c->settled = 0;
		djmfs__conn_set_state(c, DOWN);
	} else if (c->state == UP || c->state == RESTORING) {
		c->dead_err = err == -EPROTO ? -EPROTO : -ENOTCONN;
		djmfs__conn_set_state(c, DEAD);
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

int djmfs__hb_start(struct djmfs_client *c)
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

void djmfs__conn_recon_thread(const struct djmfs_client *c)
{
	recon_self = c;
}

void djmfs__hb_stop(struct djmfs_client *c)
{
	if (!c->hb_started)
		return;
	pthread_mutex_lock(&c->hb_lock);
	c->hb_stop = 1;
	pthread_cond_signal(&c->hb_cond);
	pthread_mutex_unlock(&c->hb_lock);
	pthread_join(c->hb_thread, NULL);
	pthread_cond_destroy(&c->hb_cond);
}

int djmfs__rx_start(struct djmfs_client *c)
{
	int err = pthread_create(&c->rx_thread, NULL, rx_main, c);

	if (err)
		return -err;
	c->rx_started = 1;
	return 0;
}
