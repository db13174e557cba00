/*
 * The client's data path: one thread (the I/O thread, "djmfs-io") owns a
 * libiosched handle on the volume (io_uring back end, O_DIRECT) and
 * carries out every device request of the client, in the order the
 * scheduler's policy picks from their deadlines, and runs the requests'
 * callbacks as their completions come out of the ring.  Other threads
 * hand requests over through a locked inbox.  The thread submits them,
 * then, while anything is queued or in flight, blocks in iosched_run()
 * with no deadline: it wakes only for a completion or for iosched_wake()
 * from a thread that queued work, never on a timer.  Idle, it sleeps on
 * a condition variable.  Requests whose buffer, offset or length are not
 * block-aligned go through an aligned bounce buffer.  A write the kernel
 * took only part of is finished with pwrite on this thread, and a host
 * file system with no room for the volume file's holes comes back as
 * -ENOSPC (EDQUOT too), never folded into -EIO.  In NO_DATA_IO mode
 * there is no scheduler: the thread completes each request at once, so
 * callbacks still run on a library thread.
 *
 * Invariants:
 *  1. The scheduler, its statistics and every request between
 *     iosched_submit and its callback belong to the I/O thread alone.
 *  2. A request is in exactly one place: the inbox (under mu), the
 *     scheduler, or handed back through its callback, which runs
 *     exactly once, on the I/O thread.
 *  3. Waking the I/O thread: it sets in_ring under mu after taking the
 *     inbox and before it submits and blocks in the scheduler, and
 *     clears it under mu when back, before it looks at the inbox again.
 *     Whoever else hands it work (inbox, ctl, stop) decides under mu:
 *     with in_ring set, the first of them in that episode sets rung and
 *     calls iosched_wake() (after unlocking; the eventfd keeps the wake
 *     even if the thread has not blocked yet), the rest need nothing;
 *     with in_ring clear, a signal on cv, which the thread only waits on
 *     after finding the inbox empty under mu.  No wake is lost either
 *     way; a late one only ends a later run early.
 *  4. A callback's own submissions (on the I/O thread) need no wake: a
 *     run that delivered completions returns, and the thread takes the
 *     inbox next; a callback that ran before the run (an immediate
 *     completion) sets self_queued, and the thread skips the run.
 *  5. The thread exits only when stop is set, the inbox is empty and the
 *     scheduler has nothing queued or in flight, so nothing submitted is
 *     ever abandoned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_clnt.h"

#define RING_ENTRIES 256u

struct djmfs__io {
	int fd;
	int no_io;
	const struct djmfs_log *log;
	struct iosched_log ilog; /* forwards to log */
	struct iosched_model *model;
	struct iosched *s;
	pthread_t thread;
	int self_queued; /* I/O thread only: invariant 4 */

	pthread_mutex_t mu; /* everything below */
	pthread_cond_t cv;  /* the I/O thread, idle (invariant 3) */
	struct djmfs__ioreq *in_head, *in_tail; /* the inbox */
	int in_ring, rung; /* invariant 3 */
	int stop;
	struct djmfs_io_stats stats;

	/* A knob change handed to the I/O thread (under mu): set by
	 * djmfs__io_set, applied and answered by the thread. */
	struct {
		int pending, done, res;
		const char *policy;
		struct iosched_model *model; /* new one, or NULL */
		unsigned depth;
	} ctl;
	pthread_cond_t ctl_cv;
	struct djmfs_io_knobs knobs; /* under mu: what is in use */
};

/* What djmfs.h promises callers is what the device needs. */
_Static_assert(DJMFS_IO_ALIGN == DJMFS_BLOCK, "DJMFS_IO_ALIGN");

static int aligned(uint64_t v)
{
	return (v & (DJMFS_BLOCK - 1)) == 0;
}

/* The I/O thread: set in it, so djmfs__io_submit can tell a callback's
 * submission (invariant 4). */
static __thread struct djmfs__io *on_iothread;

/* Under mu: hands the I/O thread new work (invariant 3).  Returns 1 when
 * the caller must call iosched_wake() once it has unlocked. */
static int kick_locked(struct djmfs__io *io)
{
	if (!io->in_ring) {
		pthread_cond_signal(&io->cv);
		return 0;
	}
	if (io->rung)
		return 0;
	io->rung = 1;
	return 1;
}

static void kick(struct djmfs__io *io, int wake)
{
	int err = wake ? iosched_wake(io->s) : 0;

	if (err < 0)
		djmfs__log(io->log, DJMFS_LOG_ERROR, "djmfs: iosched_wake: %s",
			   strerror(-err));
}

static void count_error(struct djmfs__io *io)
{
	pthread_mutex_lock(&io->mu);
	io->stats.errors++;
	pthread_mutex_unlock(&io->mu);
}

/* The bounce's bytes out, then the callback. */
static void finish(struct djmfs__ioreq *r, int res)
{
	if (r->bounce) {
		if (res >= 0 && r->op == IOSCHED_READ)
			memcpy(r->buf, (uint8_t *)r->bounce + r->skip, r->len);
		free(r->bounce);
		r->bounce = NULL;
	}
	if (res < 0)
		count_error(r->io);
	r->done(r, res);
}

/* A full host file system (a sparse volume file needs host blocks to
 * fill a hole) is ENOSPC whatever the quota says: the caller tells a
 * full disk from a failing one by it. */
static int host_errno(int err)
{
	return err == -EDQUOT ? -ENOSPC : err;
}

/*
 * The rest of a write the kernel took only part of.  A short write is
 * progress, not failure (the host file system had room for some of it),
 * so the rest is written at once, here on the I/O thread: it is rare,
 * and the retry is what learns the reason (ENOSPC, EDQUOT, EIO).
 * Returns the request's full length or -errno.
 */
static int finish_short_write(const struct iosched_req *ir, uint32_t done)
{
	const uint8_t *p = (const uint8_t *)ir->buf + done;
	uint64_t off = ir->offset + done;
	size_t left = ir->len - done;

	while (left > 0) {
		ssize_t n = pwrite(ir->fd, p, left, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return host_errno(-errno);
		if (n == 0)
			return -EIO; /* no progress and no reason */
		p += n;
		off += (uint64_t)n;
		left -= (size_t)n;
	}
	return (int)ir->len;
}

static void on_done(struct iosched_req *ir, int res)
{
	struct djmfs__ioreq *r = ir->user;

	if (res >= 0 && (uint32_t)res < ir->len && ir->op == IOSCHED_WRITE)
		res = finish_short_write(ir, (uint32_t)res);
	res = host_errno(res);
	if (res == -ENOSPC) {
		pthread_mutex_lock(&r->io->mu);
		r->io->stats.nospace++;
		pthread_mutex_unlock(&r->io->mu);
	}
	/* The device sees whole blocks; the caller asked for r->len. */
	if (res >= 0)
		res = (uint32_t)res >= ir->len ? (int)r->len : -EIO;
	finish(r, res);
}

/* Sets up the scheduler request, with a bounce buffer when needed.
 * Returns 0 or -errno. */
static int prepare(struct djmfs__io *io, struct djmfs__ioreq *r)
{
	struct iosched_req *ir = &r->ireq;
	uint64_t lo = r->off & ~(uint64_t)(DJMFS_BLOCK - 1);
	uint64_t hi = (r->off + r->len + DJMFS_BLOCK - 1) &
		      ~(uint64_t)(DJMFS_BLOCK - 1);

	memset(ir, 0, sizeof(*ir));
	ir->op = r->op;
	ir->fd = io->fd;
	ir->deadline_ns = r->deadline_ns;
	ir->done = on_done;
	ir->user = r;
	r->io = io;
	r->bounce = NULL;
	r->skip = (uint32_t)(r->off - lo);
	if (aligned((uintptr_t)r->buf) && aligned(r->off) && aligned(r->len)) {
		ir->offset = r->off;
		ir->len = r->len;
		ir->buf = r->buf;
		return 0;
	}
	if (r->op == IOSCHED_WRITE && (!aligned(r->off) || !aligned(r->len)))
		return -EINVAL; /* writes never read-modify-write */
	if (posix_memalign(&r->bounce, DJMFS_BLOCK, hi - lo))
		return -ENOMEM;
	if (r->op == IOSCHED_WRITE)
		memcpy(r->bounce, r->buf, r->len);
	ir->offset = lo;
	ir->len = (uint32_t)(hi - lo);
	ir->buf = r->bounce;
	return 0;
}

static void start(struct djmfs__io *io, struct djmfs__ioreq *r)
{
	int err;

	r->io = io;
	r->bounce = NULL;
	if (io->no_io || r->len == 0) {
		if (io->no_io && r->op == IOSCHED_READ && r->len)
			memset(r->buf, 0, r->len);
		r->done(r, (int)r->len);
		return;
	}
	err = prepare(io, r);
	if (err == 0)
		err = iosched_submit(io->s, &r->ireq);
	if (err < 0) {
		djmfs__log(io->log, DJMFS_LOG_ERROR, "djmfs: iosched_submit "
			   "(offset %llu, %u bytes): %s",
			   (unsigned long long)r->off, r->len, strerror(-err));
		finish(r, err);
	}
}

static int busy(const struct djmfs__io *io)
{
	return io->s && (iosched_queued(io->s) > 0 || iosched_inflight(io->s) > 0);
}

/* Under mu: the scheduler's figures as of @st, taken unlocked. */
static void store_stats(struct djmfs__io *io, const struct iosched_stats *st)
{
	io->stats.requests = st->requests;
	io->stats.deadline_requests = st->deadline_requests;
	io->stats.misses = st->misses;
	io->stats.bytes = st->bytes;
	io->stats.latency_p99_ns = st->latency_p99_ns;
	io->stats.lateness_max_ns = st->lateness_max_ns;
}

/* On the I/O thread, with mu held: applies a pending knob change to the
 * scheduler, which only this thread may touch (invariant 1).  Depth is
 * checked before anything changes, so a refused change leaves all three
 * as they were. */
static void apply_ctl(struct djmfs__io *io)
{
	struct iosched_knobs k, old;
	const char *old_policy;
	int err = 0;

	if (!io->ctl.pending)
		return;
	io->ctl.pending = 0;
	if (io->s) {
		iosched_get_knobs(io->s, &old);
		k = old;
		if (io->ctl.depth)
			k.depth = io->ctl.depth;
		old_policy = iosched_policy(io->s);
		err = iosched_set_knobs(io->s, &k);
		if (err == 0 && io->ctl.policy)
			err = iosched_set_policy(io->s, io->ctl.policy);
		if (err == 0 && io->ctl.model)
			err = iosched_set_model(io->s, io->ctl.model);
		if (err < 0) {
			iosched_set_policy(io->s, old_policy);
			iosched_set_knobs(io->s, &old);
		} else if (io->ctl.model) {
			iosched_model_free(io->model);
			io->model = io->ctl.model;
			io->ctl.model = NULL;
		}
		if (err == 0) {
			iosched_get_knobs(io->s, &k);
			io->knobs.depth = k.depth;
			snprintf(io->knobs.policy, sizeof(io->knobs.policy),
				 "%s", iosched_policy(io->s));
		}
	}
	io->ctl.res = err;
	io->ctl.done = 1;
	pthread_cond_broadcast(&io->ctl_cv);
}

static void *io_main(void *arg)
{
	struct djmfs__io *io = arg;

	pthread_setname_np(pthread_self(), "djmfs-io");
	on_iothread = io;
	pthread_mutex_lock(&io->mu);
	for (;;) {
		struct djmfs__ioreq *list = io->in_head;
		struct iosched_stats st = { 0 };
		int n = 0;

		apply_ctl(io);

		io->in_head = io->in_tail = NULL;
		if (!list && !busy(io)) {
			if (io->stop)
				break;
			pthread_cond_wait(&io->cv, &io->mu);
			continue;
		}
		/* From here on, work from other threads comes with
		 * iosched_wake() (invariant 3). */
		io->in_ring = io->s != NULL;
		io->rung = 0;
		pthread_mutex_unlock(&io->mu);
		io->self_queued = 0;
		while (list) {
			struct djmfs__ioreq *r = list;

			list = r->next;
			start(io, r);
		}
		/* A callback that ran in start() may have queued work the
		 * run would not see until something else woke it. */
		if (!io->self_queued && busy(io)) {
			n = iosched_run(io->s, UINT64_MAX);
			if (n < 0)
				djmfs__log(io->log, DJMFS_LOG_ERROR, "djmfs: "
					   "iosched_run: %s", strerror(-n));
			if (n > 0)
				iosched_stats_get(io->s, &st);
		}
		pthread_mutex_lock(&io->mu);
		io->in_ring = 0;
		if (n > 0)
			store_stats(io, &st);
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

int djmfs__io_submit(struct djmfs__io *io, struct djmfs__ioreq *r)
{
	int wake = 0;

	r->next = NULL;
	pthread_mutex_lock(&io->mu);
	if (io->in_tail)
		io->in_tail->next = r;
	else
		io->in_head = r;
	io->in_tail = r;
	if (on_iothread == io)
		io->self_queued = 1;
	else
		wake = kick_locked(io);
	pthread_mutex_unlock(&io->mu);
	kick(io, wake);
	return 0;
}

int djmfs__io_set(struct djmfs__io *io, const char *policy,
		  const char *profile, unsigned depth)
{
	struct iosched_model *m = NULL;
	int err = 0;

	if (profile) {
		err = iosched_model_load(&m, profile, &io->ilog);
		if (err < 0) {
			djmfs__log(io->log, DJMFS_LOG_ERROR, "djmfs_set_io: "
				   "iosched_model_load(%s): %s", profile,
				   strerror(-err));
			return err;
		}
	}
	pthread_mutex_lock(&io->mu);
	while (io->ctl.pending) /* one change at a time */
		pthread_cond_wait(&io->ctl_cv, &io->mu);
	io->ctl.pending = 1;
	io->ctl.done = 0;
	io->ctl.policy = policy;
	io->ctl.model = m;
	io->ctl.depth = depth;
	if (kick_locked(io)) {
		pthread_mutex_unlock(&io->mu);
		kick(io, 1);
		pthread_mutex_lock(&io->mu);
	}
	while (!io->ctl.done)
		pthread_cond_wait(&io->ctl_cv, &io->mu);
	err = io->ctl.res;
	m = io->ctl.model; /* still ours when it was not taken */
	io->ctl.model = NULL;
	if (err == 0 && profile)
		snprintf(io->knobs.profile, sizeof(io->knobs.profile), "%s",
			 profile);
	pthread_cond_broadcast(&io->ctl_cv);
	pthread_mutex_unlock(&io->mu);
	iosched_model_free(m);
	if (err < 0)
		djmfs__log(io->log, DJMFS_LOG_ERROR, "djmfs_set_io: %s",
			   strerror(-err));
	return err;
}

void djmfs__io_get(struct djmfs__io *io, struct djmfs_io_knobs *out)
{
	pthread_mutex_lock(&io->mu);
	*out = io->knobs;
	pthread_mutex_unlock(&io->mu);
}

void djmfs__io_get_stats(struct djmfs__io *io, struct djmfs_io_stats *out)
{
	pthread_mutex_lock(&io->mu);
	*out = io->stats;
	pthread_mutex_unlock(&io->mu);
}

/* libiosched's diagnostics go to the client's hook; the level enums of
 * both libraries share their values. */
static void forward_log(void *arg, enum iosched_log_level level,
			const char *msg)
{
	djmfs__log(arg, (enum djmfs_log_level)level, "%s", msg);
}

/* The scheduler on the volume, configured from the client options. */
static int sched_new(struct djmfs__io *io, const struct djmfs_client_opts *o,
		     const struct djmfs_log *log)
{
	struct iosched_backend *be = NULL;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = o->policy, .knobs = &k };
	const char *profile = o->profile ? o->profile : "ssd-sata";
	int err;

	io->ilog.fn = forward_log;
	io->ilog.arg = (void *)log;
	cfg.log = io->ilog;
	err = iosched_model_load(&io->model, profile, &io->ilog);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs: iosched_model_load(%s)"
			   ": %s", profile, strerror(-err));
		return err;
	}
	err = iosched_backend_uring_new(&be, RING_ENTRIES, DJMFS_BLOCK,
					&io->ilog);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs: iosched_backend_uring_"
			   "new: %s", strerror(-err));
		return err;
	}
	if (o->inject_latency_ns || o->inject_eio_every) {
		err = iosched_backend_inject(be, o->inject_latency_ns,
					     o->inject_eio_every);
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_ERROR, "djmfs: iosched_backend"
				   "_inject: %s", strerror(-err));
			iosched_backend_free(be);
			return err;
		}
	}
	iosched_default_knobs(&k);
	k.depth = o->depth;
	cfg.model = io->model;
	err = iosched_new(&io->s, &cfg, be);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs: iosched_new: %s",
			   strerror(-err));
		return err;
	}
	iosched_get_knobs(io->s, &k);
	io->knobs.depth = k.depth;
	snprintf(io->knobs.policy, sizeof(io->knobs.policy), "%s",
		 iosched_policy(io->s));
	snprintf(io->knobs.profile, sizeof(io->knobs.profile), "%s", profile);
	return 0;
}

int djmfs__io_new(struct djmfs__io **out, int fd,
		  const struct djmfs_client_opts *o,
		  const struct djmfs_log *log)
{
	struct djmfs__io *io = calloc(1, sizeof(*io));
	int err = 0;

	if (!io)
		return -ENOMEM;
	io->fd = fd;
	io->log = log;
	io->no_io = !!(o->flags & DJMFS_CLIENT_NO_DATA_IO);
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->cv, NULL);
	pthread_cond_init(&io->ctl_cv, NULL);
	if (!io->no_io)
		err = sched_new(io, o, log);
	if (err == 0)
		err = -pthread_create(&io->thread, NULL, io_main, io);
	if (err < 0)
		goto err;
	*out = io;
	return 0;
err:
	iosched_free(io->s);
	iosched_model_free(io->model);
	pthread_cond_destroy(&io->ctl_cv);
	pthread_cond_destroy(&io->cv);
	pthread_mutex_destroy(&io->mu);
	free(io);
	return err;
}

void djmfs__io_free(struct djmfs__io *io)
{
	int wake;

	if (!io)
		return;
	pthread_mutex_lock(&io->mu);
	io->stop = 1;
	wake = kick_locked(io);
	pthread_mutex_unlock(&io->mu);
	kick(io, wake);
	pthread_join(io->thread, NULL);
	iosched_free(io->s);
	iosched_model_free(io->model);
	pthread_cond_destroy(&io->ctl_cv);
	pthread_cond_destroy(&io->cv);
	pthread_mutex_destroy(&io->mu);
	free(io);
}
