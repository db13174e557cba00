/*
 * The io_uring back end: carries dispatched requests out on a real file or
 * block device opened with O_DIRECT.  start() only prepares a submission
 * entry and flush() hands the whole batch to the kernel in one system
 * call, so a dispatch round costs one io_uring_submit however many
 * requests the policy released.  wait() reaps completions and blocks on
 * the ring, never past the caller's deadline.  Requests whose buffer lies
 * inside a registered buffer use the fixed-buffer opcodes, which skip
 * per-request page pinning.  For tests it can hold completions back and
 * fail chosen requests with -EIO without touching the device.
 *
 * Another thread ends a blocked wait() through an eventfd: the ring keeps
 * a poll armed on it (multishot where the kernel has it, else one-shot and
 * re-armed after each wake), so iosched_wake() is one write(2) and the
 * driving thread needs no timer to notice new work.  The poll's CQEs are
 * the back end's own: they set be->woken and never reach the core as
 * completions.
 *
 * Invariants:
 *  1. A started request is in exactly one place: prepared in the SQ, at
 *     the kernel, posted in the CQ (these three are counted by inflight),
 *     in the held FIFO, or already handed back through complete().
 *  2. While latency_ns > 0, the held FIFO has room for inflight + nheld
 *     entries, so moving a completion into it never allocates on the
 *     reaping path (start() and inject() reserve the room).
 *  3. Release times in the held FIFO never decrease from head to tail
 *     (held_push() clamps to the tail's), so only the head is checked.
 *  4. A CQE is marked seen, and a held entry copied out and popped, before
 *     complete() runs: the hook may call start() again, which may submit
 *     (when the SQ is full) or grow the FIFO.
 *  5. One wait() hands back at most one CQ's worth of device completions
 *     and only the held entries present when it began, so a hook that
 *     resubmits forever cannot keep wait() from returning.
 *  6. At most one poll on the eventfd is outstanding (wake_armed: prepared
 *     in the SQ or at the kernel); it is not counted in inflight, its
 *     user data is the back end itself, and block() sleeps with no
 *     deadline only while it is armed or requests are in flight.  The
 *     eventfd is drained when its CQE is seen, so a wake written after
 *     the drain posts a new CQE (a spare early return, never a lost one).
 *
 * Request life cycle:
 *
 *   validate ──> start ──(flush)──> kernel ──(CQE)──> reap_device
 *                  │                                   │        │
 *                  │ injected EIO                       │ latency│ none
 *                  v                                   v        v
 *                held FIFO <─────────────────────── held_push  complete()
 *                  │
 *                  └──(release time reached)── release_held ──> complete()
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "iosched-int.h"

#define URING_DEFAULT_ALIGN 4096u

/* A completion waiting for its injected latency to pass. */
struct uring_held {
	struct iosched_req *req;
	int res;
	uint64_t release_ns;
};

/* The address range of one registered buffer. */
struct uring_fixed {
	uintptr_t base;
	size_t len;
};

struct uring_backend {
	struct iosched_backend base;
	struct io_uring ring;
	unsigned align;
	unsigned inflight; /* in the SQ, at the kernel or in the CQ */

	struct uring_fixed *fixed; /* registered buffers, by index */
	unsigned nfixed;

	/* Wakes from other threads (invariant 6). */
	int efd;
	bool wake_armed;
	bool wake_multishot; /* cleared when the kernel refuses it */

	/* Fault injection (test only). */
	uint64_t latency_ns;
	unsigned eio_every;
	uint64_t started; /* since injection was last set */
	struct uring_held *held; /* circular FIFO */
	size_t held_head, nheld, held_cap;
};

typedef void (*uring_prep_fn)(struct io_uring_sqe *sqe, int fd, void *buf,
			      unsigned len, uint64_t offset, int fixed);

static void prep_read(struct io_uring_sqe *sqe, int fd, void *buf,
		      unsigned len, uint64_t offset, int fixed)
{
	if (fixed >= 0)
		io_uring_prep_read_fixed(sqe, fd, buf, len, offset, fixed);
	else
		io_uring_prep_read(sqe, fd, buf, len, offset);
}

static void prep_write(struct io_uring_sqe *sqe, int fd, void *buf,
		       unsigned len, uint64_t offset, int fixed)
{
	if (fixed >= 0)
		io_uring_prep_write_fixed(sqe, fd, buf, len, offset, fixed);
	else
		io_uring_prep_write(sqe, fd, buf, len, offset);
}

static const struct uring_op {
	const char *name;
	uring_prep_fn prep;
} uring_op_tab[] = {
	[IOSCHED_READ] = { "read", prep_read },
	[IOSCHED_WRITE] = { "write", prep_write },
};

#define URING_NOPS (sizeof(uring_op_tab) / sizeof(uring_op_tab[0]))

static struct uring_backend *to_uring(struct iosched_backend *be)
{
	return (struct uring_backend *)be;
}

static uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * IOSCHED__NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---------------------------------------------------------------- */
/* Held FIFO (fault injection)                                      */
/* ---------------------------------------------------------------- */

/* Grows the FIFO to hold at least @need entries; 0 or -ENOMEM. */
static int held_reserve(struct uring_backend *ub, size_t need)
{
	struct uring_held *n;
	size_t ncap, i;

	if (need <= ub->held_cap)
		return 0;
	ncap = ub->held_cap ? ub->held_cap : 16;
	while (ncap < need)
		ncap *= 2;
	n = malloc(ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (i = 0; i < ub->nheld; i++)
		n[i] = ub->held[(ub->held_head + i) % ub->held_cap];
	free(ub->held);
	ub->held = n;
	ub->held_head = 0;
	ub->held_cap = ncap;
	return 0;
}

/* The caller has reserved room (invariant 2). */
static void held_push(struct uring_backend *ub, struct iosched_req *req,
		      int res, uint64_t release_ns)
{
	struct uring_held *h;

	if (ub->nheld > 0) {
		const struct uring_held *tail =
			&ub->held[(ub->held_head + ub->nheld - 1) %
				  ub->held_cap];

		if (tail->release_ns > release_ns)
			release_ns = tail->release_ns;
	}
	h = &ub->held[(ub->held_head + ub->nheld) % ub->held_cap];
	h->req = req;
	h->res = res;
	h->release_ns = release_ns;
	ub->nheld++;
}

/* Hands back the held completions due by @now that were already held
 * when the call began (invariant 5). */
static int release_held(struct uring_backend *ub, uint64_t now)
{
	struct iosched_backend *be = &ub->base;
	size_t budget = ub->nheld;
	int n = 0;

	while (budget-- > 0 && ub->nheld > 0 &&
	       ub->held[ub->held_head].release_ns <= now) {
		struct uring_held h = ub->held[ub->held_head];

		ub->held_head = (ub->held_head + 1) % ub->held_cap;
		ub->nheld--;
		be->complete(be->owner, h.req, h.res, now);
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- */
/* Wakes                                                            */
/* ---------------------------------------------------------------- */

/* Prepares the poll on the eventfd; the next flush or block() submits it.
 * 0, or -EBUSY when the SQ stays full (wait() tries again). */
static int arm_wake(struct uring_backend *ub)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ub->ring);

	if (!sqe) {
		io_uring_submit(&ub->ring);
		sqe = io_uring_get_sqe(&ub->ring);
	}
	if (!sqe)
		return -EBUSY;
	if (ub->wake_multishot)
		io_uring_prep_poll_multishot(sqe, ub->efd, POLLIN);
	else
		io_uring_prep_poll_add(sqe, ub->efd, POLLIN);
	io_uring_sqe_set_data(sqe, ub);
	ub->wake_armed = true;
	return 0;
}

/* A CQE of the eventfd poll: a wake, or the poll ended (re-armed by
 * wait() before it blocks). */
static void wake_cqe(struct uring_backend *ub, int res, unsigned flags)
{
	uint64_t count;

	if (!(flags & IORING_CQE_F_MORE))
		ub->wake_armed = false;
	if (res == -EINVAL && ub->wake_multishot) {
		/* Kernels before 5.13 take only one-shot polls. */
		ub->wake_multishot = false;
		return;
	}
	if (res < 0) {
		iosched__log(&ub->base.log, IOSCHED_LOG_WARN,
			     "uring: poll on the wake eventfd: %s",
			     strerror(-res));
		return;
	}
	/* Drained so that a re-armed one-shot poll does not fire at once;
	 * EAGAIN means a previous CQE's drain took this wake's count. */
	if (read(ub->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		iosched__log(&ub->base.log, IOSCHED_LOG_WARN,
			     "uring: read(wake eventfd): %s", strerror(errno));
	ub->base.woken = true;
}

static int uring_wake(struct iosched_backend *be)
{
	struct uring_backend *ub = to_uring(be);
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated, so a wake is pending anyway. */
	if (write(ub->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Operations                                                       */
/* ---------------------------------------------------------------- */

static int uring_validate(struct iosched_backend *be,
			  const struct iosched_req *req)
{
	struct uring_backend *ub = to_uring(be);
	const struct {
		const char *what;
		uint64_t value;
	} field[] = {
		{ "offset", req->offset },
		{ "len", req->len },
		{ "buf", (uintptr_t)req->buf },
	};
	size_t i;

	if ((unsigned)req->op >= URING_NOPS || req->fd < 0 || !req->buf ||
	    req->len == 0) {
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "uring: bad request (op %d, fd %d, buf %p, len %u)",
			     (int)req->op, req->fd, req->buf, req->len);
		return -EINVAL;
	}
	for (i = 0; i < sizeof(field) / sizeof(field[0]); i++) {
		uint64_t off_by = field[i].value % ub->align;

		if (off_by == 0)
			continue;
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "uring: %s %#llx misaligned by %llu bytes (O_DIRECT needs multiples of %u)",
			     field[i].what, (unsigned long long)field[i].value,
			     (unsigned long long)off_by, ub->align);
		return -EINVAL;
	}
	return 0;
}

/* Index of the registered buffer holding all of [buf, buf + len), or -1. */
static int fixed_index(const struct uring_backend *ub, const void *buf,
		       uint32_t len)
{
	uintptr_t p = (uintptr_t)buf;
	unsigned i;

	for (i = 0; i < ub->nfixed; i++) {
		const struct uring_fixed *f = &ub->fixed[i];

		if (p >= f->base && p - f->base <= f->len &&
		    len <= f->len - (p - f->base))
			return (int)i;
	}
	return -1;
}

/* Pushes every prepared SQE to the kernel; 0 or -errno. */
static int uring_flush(struct iosched_backend *be)
{
	struct uring_backend *ub = to_uring(be);
	int rc = 0;

	/* The kernel may stop early (a bad SQE ends the batch), so repeat
	 * while it keeps taking entries. */
	while (io_uring_sq_ready(&ub->ring) > 0) {
		rc = io_uring_submit(&ub->ring);
		if (rc <= 0)
			break;
	}
	if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "uring: io_uring_submit: %s", strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* The injected failure never reaches the device; wait() returns it. */
static int start_injected_eio(struct uring_backend *ub,
			      struct iosched_req *req)
{
	if (held_reserve(ub, ub->inflight + ub->nheld + 1) < 0)
		return -ENOMEM;
	held_push(ub, req, -EIO, add_sat(clock_ns(), ub->latency_ns));
	ub->started++;
	return 0;
}

static int uring_start(struct iosched_backend *be, struct iosched_req *req)
{
	struct uring_backend *ub = to_uring(be);
	struct io_uring_sqe *sqe;

	if ((unsigned)req->op >= URING_NOPS)
		return -EINVAL;
	if (ub->eio_every && (ub->started + 1) % ub->eio_every == 0)
		return start_injected_eio(ub, req);
	if (ub->latency_ns &&
	    held_reserve(ub, ub->inflight + ub->nheld + 1) < 0)
		return -ENOMEM;
	sqe = io_uring_get_sqe(&ub->ring);
	if (!sqe) {
		uring_flush(be);
		sqe = io_uring_get_sqe(&ub->ring);
	}
	if (!sqe)
		return -EBUSY;
	uring_op_tab[req->op].prep(sqe, req->fd, req->buf, req->len,
				   req->offset,
				   fixed_index(ub, req->buf, req->len));
	io_uring_sqe_set_data(sqe, req);
	ub->inflight++;
	ub->started++;
	return 0;
}

/*
 * Hands back the completions the device has posted, at most one CQ's
 * worth (invariant 5), holding them in the FIFO when latency is injected.
 * Returns how many went to complete().
 */
static int reap_device(struct uring_backend *ub, uint64_t now)
{
	struct iosched_backend *be = &ub->base;
	unsigned budget = ub->ring.cq.ring_entries;
	struct io_uring_cqe *cqe;
	int n = 0;

	while (budget-- > 0 && io_uring_peek_cqe(&ub->ring, &cqe) == 0) {
		struct iosched_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		unsigned flags = cqe->flags;

		io_uring_cqe_seen(&ub->ring, cqe);
		if ((void *)req == (void *)ub) {
			wake_cqe(ub, res, flags);
			continue;
		}
		ub->inflight--;
		if (res < 0)
			iosched__log(&be->log, IOSCHED_LOG_WARN,
				     "uring: %s fd %d offset %llu len %u: %s",
				     uring_op_tab[req->op].name, req->fd,
				     (unsigned long long)req->offset, req->len,
				     strerror(-res));
		if (ub->latency_ns) {
			held_push(ub, req, res, add_sat(now, ub->latency_ns));
			continue;
		}
		be->complete(be->owner, req, res, now);
		n++;
	}
	return n;
}

/*
 * Blocks on the ring until a CQE arrives (a completion or a wake), the
 * next held completion is due, or the clock reaches @until.  Returns 1 to
 * look for completions again, 0 when wait() should give up (deadline
 * reached, or nothing could ever arrive: no request and no wake poll),
 * or -errno.
 */
static int block(struct uring_backend *ub, uint64_t until)
{
	struct io_uring_cqe *cqe;
	uint64_t now = clock_ns(), wake = until;
	int rc;

	if (now >= until)
		return 0;
	if (ub->nheld > 0 && ub->held[ub->held_head].release_ns < wake)
		wake = ub->held[ub->held_head].release_ns;
	if (wake <= now)
		return 1;
	if (!ub->wake_armed)
		arm_wake(ub);
	/* The re-armed poll must be at the kernel before we sleep. */
	if (io_uring_sq_ready(&ub->ring) > 0) {
		rc = uring_flush(&ub->base);
		if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
			return rc;
	}
	if (wake == UINT64_MAX) {
		if (ub->inflight == 0 && !ub->wake_armed)
			return 0;
		rc = io_uring_wait_cqe(&ub->ring, &cqe);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = (wake - now) / IOSCHED__NS_PER_S,
			.tv_nsec = (wake - now) % IOSCHED__NS_PER_S,
		};

		rc = io_uring_wait_cqe_timeout(&ub->ring, &cqe, &ts);
	}
	/* A signal is no reason to return: with no deadline, the caller
	 * would take the early return for a wake. */
	if (rc == 0 || rc == -ETIME || rc == -EINTR)
		return 1;
	iosched__log(&ub->base.log, IOSCHED_LOG_ERROR,
		     "uring: io_uring_wait_cqe: %s", strerror(-rc));
	return rc;
}

static int uring_wait(struct iosched_backend *be, uint64_t until)
{
	struct uring_backend *ub = to_uring(be);
	int n = 0, rc;

	rc = uring_flush(be);
	/* A busy or interrupted submit leaves the SQEs queued; reaping is
	 * what makes room, so carry on. */
	if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
		return rc;
	for (;;) {
		uint64_t now = clock_ns();

		n += reap_device(ub, now);
		n += release_held(ub, now);
		if (n > 0 || until == 0 || be->woken)
			return n;
		rc = block(ub, until);
		if (rc <= 0)
			return rc;
	}
}

static uint64_t uring_now(const struct iosched_backend *be)
{
	(void)be;
	return clock_ns();
}

static unsigned uring_max_depth(const struct iosched_backend *be)
{
	return ((const struct uring_backend *)be)->ring.sq.ring_entries;
}

/* Replaces the registered set; n == 0 just drops it. */
static int uring_register_buffers(struct iosched_backend *be,
				  void *const *bufs, const size_t *lens,
				  unsigned n)
{
	struct uring_backend *ub = to_uring(be);
	struct uring_fixed *ranges = NULL;
	struct iovec *iov = NULL;
	unsigned i;
	int rc = -ENOMEM;

	if (n > 0 && (!bufs || !lens)) {
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "uring: register_buffers: %u buffers but no array",
			     n);
		return -EINVAL;
	}
	/* Allocate first so that -ENOMEM leaves the old set in place. */
	if (n > 0) {
		ranges = calloc(n, sizeof(*ranges));
		iov = calloc(n, sizeof(*iov));
		if (!ranges || !iov)
			goto out;
	}
	for (i = 0; i < n; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = lens[i];
		ranges[i].base = (uintptr_t)bufs[i];
		ranges[i].len = lens[i];
	}
	if (ub->nfixed > 0) {
		io_uring_unregister_buffers(&ub->ring);
		free(ub->fixed);
		ub->fixed = NULL;
		ub->nfixed = 0;
	}
	rc = 0;
	if (n == 0)
		goto out;
	rc = io_uring_register_buffers(&ub->ring, iov, n);
	if (rc < 0) {
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "uring: io_uring_register_buffers(%u): %s", n,
			     strerror(-rc));
		goto out;
	}
	ub->fixed = ranges;
	ub->nfixed = n;
	ranges = NULL;
out:
	free(ranges);
	free(iov);
	return rc;
}

static int uring_inject(struct iosched_backend *be, uint64_t latency_ns,
			unsigned eio_every)
{
	struct uring_backend *ub = to_uring(be);

	/* Requests already in flight may land in the FIFO (invariant 2). */
	if (latency_ns && held_reserve(ub, ub->inflight + ub->nheld) < 0)
		return -ENOMEM;
	ub->latency_ns = latency_ns;
	ub->eio_every = eio_every;
	ub->started = 0;
	if (latency_ns || eio_every)
		iosched__log(&be->log, IOSCHED_LOG_WARN,
			     "uring: fault injection on: %llu ns extra latency, EIO every %u requests",
			     (unsigned long long)latency_ns, eio_every);
	return 0;
}

static void uring_destroy(struct iosched_backend *be)
{
	struct uring_backend *ub = to_uring(be);

	io_uring_queue_exit(&ub->ring);
	close(ub->efd);
	free(ub->fixed);
	free(ub->held);
	free(ub);
}

static const struct iosched_backend_ops uring_ops = {
	.name = "uring",
	.validate = uring_validate,
	.start = uring_start,
	.flush = uring_flush,
	.wait = uring_wait,
	.wake = uring_wake,
	.now = uring_now,
	.max_depth = uring_max_depth,
	.register_buffers = uring_register_buffers,
	.inject = uring_inject,
	.destroy = uring_destroy,
};

int iosched_backend_uring_new(struct iosched_backend **out, unsigned entries,
			      unsigned align, const struct iosched_log *log)
{
	struct uring_backend *ub;
	int rc;

	*out = NULL;
	if (align == 0)
		align = URING_DEFAULT_ALIGN;
	if (entries == 0 || (align & (align - 1)) != 0) {
		iosched__log(log, IOSCHED_LOG_ERROR,
			     "uring: need entries > 0 and a power-of-two alignment (got %u, %u)",
			     entries, align);
		return -EINVAL;
	}
	ub = calloc(1, sizeof(*ub));
	if (!ub)
		return -ENOMEM;
	ub->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ub->efd < 0) {
		rc = -errno;
		iosched__log(log, IOSCHED_LOG_ERROR, "uring: eventfd: %s",
			     strerror(-rc));
		free(ub);
		return rc;
	}
	rc = io_uring_queue_init(entries, &ub->ring, 0);
	if (rc < 0) {
		iosched__log(log, IOSCHED_LOG_ERROR,
			     "uring: io_uring_queue_init(%u): %s%s", entries,
			     strerror(-rc),
			     rc == -ENOSYS || rc == -EPERM ?
				     " (io_uring unavailable or disabled)" :
				     "");
		goto err;
	}
	ub->base.ops = &uring_ops;
	if (log)
		ub->base.log = *log;
	ub->align = align;
	ub->wake_multishot = true;
	arm_wake(ub);
	*out = &ub->base;
	return 0;
err:
	close(ub->efd);
	free(ub);
	return rc;
}
