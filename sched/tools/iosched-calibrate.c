/*
 * iosched-calibrate: measures a file or block device with O_DIRECT reads
 * and writes a libiosched disk-model profile (iosched-profile(5)) for it.
 * Four timed phases -- random 4 KiB reads at queue depth 1, pairs of reads
 * a set distance apart, sequential 1 MiB reads near both ends, and random
 * 64 KiB reads at queue depths 1 to 64 through io_uring -- tell whether the
 * device behaves like a disk (the cost of a read grows with the distance
 * from the previous one) or like solid state, and the parameters of that
 * model are then fitted to the same figures.
 * The raw figures go into the profile as comments, so the evidence travels
 * with the numbers.  The tool only ever reads the device.  It writes the
 * profile and fits the seek curve through libiosched's own key table and
 * curve (iosched_profile.c, iosched_model.c), so a profile it writes is
 * one the library reads as meant.
 */
#define _GNU_SOURCE 1

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "iosched-int.h"
#include "tool_clock.h"
#include "tool_io.h"

#ifdef PACKAGE_VERSION
#define CAL_VERSION PACKAGE_VERSION
#else
#define CAL_VERSION "unknown"
#endif

#define CAL_PROG "iosched-calibrate"

#define CAL_MiB (1024ull * 1024)
#define CAL_MIN_SIZE (64 * CAL_MiB)
#define CAL_ALIGN 4096u		/* offsets, lengths and buffers */
#define CAL_SMALL_LEN 4096u	/* latency and seek probes */
#define CAL_SEQ_LEN (1u << 20)	/* sequential-rate reads */
#define CAL_QD_LEN (64u << 10)	/* queue-depth reads */
#define CAL_QD_MAX 64u
#define CAL_NQD 7
#define CAL_QD32 5		/* index of queue depth 32 in cal_qds */
#define CAL_NDIST 12		/* non-zero seek distances */
#define CAL_LAT_MAX 100000	/* random-read samples kept */
#define CAL_ROUNDS_MAX 10000	/* seek rounds kept */
#define CAL_NPHASES 4
#define CAL_MAX_NOTES 16

/*
 * Reads alone cannot tell the time the link spends moving data from the
 * time the media does, so the bus is taken at the SATA-3 line rate
 * (6 Gb/s with 8b/10b coding).
 */
#define CAL_BUS_MBPS 600.0
/*
 * Per-command cost in the kernel and the controller.  It cannot be told
 * apart from the device's own latency by timing reads, so a typical
 * figure for one syscall, submission and interrupt is used and the fitted
 * latencies are reduced by it, which keeps the model's total equal to the
 * measured time.
 */
#define CAL_OVERHEAD_US 5.0
#define CAL_SHORT_SEEK_TRACKS 4u
#define CAL_DEFAULT_RPM 7200.0
#define CAL_FLAT_RATIO 1.5	/* far/near seek time of solid state, at most */
#define CAL_QD_GAIN 2.0		/* QD32/QD1 IOPS gain expected of solid state */
/* Beyond any track of a real disk, so the rotational wait is uniform. */
#define CAL_RPM_MIN_DIST (16 * CAL_MiB)

static const unsigned cal_qds[CAL_NQD] = { 1, 2, 4, 8, 16, 32, 64 };
static const double cal_std_rpm[] = { 4200, 5400, 5900, 7200, 10000, 15000 };

struct cal_opts {
	const char *path;
	const char *output; /* NULL: stdout */
	const char *name;
	uint64_t size;	    /* 0: the whole file or device */
	double duration_s;
	bool quiet;
};

struct cal_dev {
	const char *path;
	int fd;
	bool is_blk;
	uint64_t full_size; /* of the file or device */
	uint64_t size;	    /* bytes measured: a multiple of 1 MiB */
	void *buf;	    /* CAL_QD_MAX slots of CAL_QD_LEN, 4096-aligned */
	uint64_t rng;
};

/* Times in microseconds. */
struct cal_samples {
	double *v;
	size_t n, cap;
	bool sorted;
};

struct cal_meas {
	struct cal_samples lat4k;
	unsigned ndist;
	uint64_t dist[CAL_NDIST + 1];
	struct cal_samples seek[CAL_NDIST + 1];
	double seq_outer_MBps, seq_inner_MBps;
	bool have_qd;
	char qd_skip[160]; /* why queue-depth scaling was not measured */
	double iops[CAL_NQD];
};

struct cal_progress {
	bool quiet, live; /* live: rewrite one line with a percentage */
	unsigned phase;
	const char *label;
	int pct;
	uint64_t start_ns, end_ns;
};

/* The profile as written (libiosched renders @v with its key table) and
 * the reasons given in its comments. */
struct cal_profile {
	bool ssd;
	struct iosched__profile_text v;
	char why[256];
	unsigned nnotes;
	char notes[CAL_MAX_NOTES][256];
};

/* ---------------------------------------------------------------- */
/* Messages                                                         */
/* ---------------------------------------------------------------- */

/*
 * Set while a live progress line waits for its newline, so that an error
 * or warning starts on a line of its own.
 */
static bool cal_line_open;

static void cal_vmsg(const char *what, const char *fmt, va_list ap)
{
	if (cal_line_open)
		fputc('\n', stderr);
	cal_line_open = false;
	fprintf(stderr, "%s: %s", CAL_PROG, what);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void __attribute__((format(printf, 1, 2))) cal_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cal_vmsg("", fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 1, 2))) cal_warnf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cal_vmsg("warning: ", fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
cal_note(struct cal_profile *pf, const char *fmt, ...)
{
	va_list ap;

	if (pf->nnotes == CAL_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(pf->notes[pf->nnotes++], sizeof pf->notes[0], fmt, ap);
	va_end(ap);
}

/* Keeps profile values positive (the parser rejects 0), saying so. */
static double cal_floor(struct cal_profile *pf, const char *key, double v,
			double lo)
{
	if (v >= lo)
		return v;
	cal_note(pf, "%s clamped to %g: the measurements gave %.3g", key, lo, v);
	return lo;
}

/* ---------------------------------------------------------------- */
/* Time, randomness, reads, samples                                 */
/* ---------------------------------------------------------------- */

/* xorshift64*: quality is ample for picking offsets. */
static uint64_t cal_rand(struct cal_dev *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545F4914F6CDD1Dull;
}

/* A random 4096-aligned offset in [0, limit]. */
static uint64_t cal_rand_off(struct cal_dev *d, uint64_t limit)
{
	return cal_rand(d) % (limit / CAL_ALIGN + 1) * CAL_ALIGN;
}

/* 0, or -errno when the read failed or came back short. */
static int cal_check_read(const struct cal_dev *d, const char *call,
			  ssize_t res, size_t len, uint64_t off)
{
	if (res == (ssize_t)len)
		return 0;
	if (res < 0) {
		cal_errorf("%s(%s, %zu bytes at %" PRIu64 "): %s", call,
			   d->path, len, off, strerror((int)-res));
		return (int)res;
	}
	cal_errorf("%s(%s, %zu bytes at %" PRIu64 "): short read of %zd bytes",
		   call, d->path, len, off, res);
	return -EIO;
}

static int cal_read(struct cal_dev *d, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(d->fd, d->buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return cal_check_read(d, "pread", n < 0 ? -errno : n, len, off);
}

static int cal_timed_read(struct cal_dev *d, size_t len, uint64_t off,
			  double *us)
{
	uint64_t t0 = tool_now_ns();
	int rc = cal_read(d, len, off);

	*us = (double)(tool_now_ns() - t0) / 1e3;
	return rc;
}

static int cal_samples_init(struct cal_samples *s, size_t cap)
{
	s->v = calloc(cap, sizeof *s->v);
	s->cap = s->v ? cap : 0;
	return s->v ? 0 : -ENOMEM;
}

/* false when full */
static bool cal_samples_add(struct cal_samples *s, double v)
{
	if (s->n == s->cap)
		return false;
	s->v[s->n++] = v;
	s->sorted = false;
	return true;
}

static int cal_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Linearly interpolated quantile; 0 for no samples. */
static double cal_quantile(struct cal_samples *s, double q)
{
	double pos, frac;
	size_t i;

	if (s->n == 0)
		return 0;
	if (!s->sorted)
		qsort(s->v, s->n, sizeof *s->v, cal_cmp_double);
	s->sorted = true;
	pos = q * (double)(s->n - 1);
	i = (size_t)pos;
	frac = pos - (double)i;
	if (i + 1 >= s->n)
		return s->v[s->n - 1];
	return s->v[i] + (s->v[i + 1] - s->v[i]) * frac;
}

static double cal_median(struct cal_samples *s)
{
	return cal_quantile(s, 0.5);
}

/* ---------------------------------------------------------------- */
/* Progress                                                         */
/* ---------------------------------------------------------------- */

static void cal_progress_begin(struct cal_progress *p, unsigned phase,
			       const char *label, uint64_t budget_ns)
{
	p->phase = phase;
	p->label = label;
	p->pct = -1;
	p->start_ns = tool_now_ns();
	p->end_ns = p->start_ns + budget_ns;
	if (!p->quiet && !p->live)
		fprintf(stderr, "[%u/%u] %s\n", phase, CAL_NPHASES, label);
}

static void cal_progress_tick(struct cal_progress *p, uint64_t now)
{
	uint64_t span = p->end_ns - p->start_ns;
	int pct = now >= p->end_ns || span == 0 ?
		99 : (int)((now - p->start_ns) * 100 / span);

	if (!p->live || pct == p->pct)
		return;
	p->pct = pct;
	fprintf(stderr, "\r[%u/%u] %s %d%%", p->phase, CAL_NPHASES, p->label,
		pct);
	fflush(stderr);
	cal_line_open = true;
}

static void cal_progress_end(struct cal_progress *p)
{
	if (!p->live || !cal_line_open)
		return;
	fprintf(stderr, "\r[%u/%u] %s 100%%\n", p->phase, CAL_NPHASES,
		p->label);
	cal_line_open = false;
}

/*
 * Whether a phase goes on: until @until, but never before @min units of
 * work are done, so that a short budget still yields figures.
 */
static bool cal_more(struct cal_progress *p, uint64_t until, size_t done,
		     size_t min)
{
	uint64_t now = tool_now_ns();

	cal_progress_tick(p, now);
	return done < min || now < until;
}

/* ---------------------------------------------------------------- */
/* Measurement phases                                               */
/* ---------------------------------------------------------------- */

static int cal_phase_random(struct cal_dev *d, struct cal_progress *p,
			    struct cal_meas *m)
{
	double us;
	int rc;

	do {
		rc = cal_timed_read(d, CAL_SMALL_LEN,
				    cal_rand_off(d, d->size - CAL_SMALL_LEN),
				    &us);
		if (rc < 0)
			return rc;
	} while (cal_samples_add(&m->lat4k, us) &&
		 cal_more(p, p->end_ns, m->lat4k.n, 16));
	return 0;
}

/* 0, then CAL_NDIST distances log-spaced from 4 KiB to the whole size. */
static void cal_pick_distances(const struct cal_dev *d, struct cal_meas *m)
{
	uint64_t maxd = d->size - CAL_SMALL_LEN;
	double ratio = pow((double)(maxd / CAL_ALIGN), 1.0 / (CAL_NDIST - 1));

	m->dist[0] = 0;
	m->ndist = 1;
	for (unsigned i = 0; i < CAL_NDIST; i++) {
		uint64_t dd = (uint64_t)llround(pow(ratio, i)) * CAL_ALIGN;

		if (i == CAL_NDIST - 1 || dd > maxd)
			dd = maxd;
		if (dd > m->dist[m->ndist - 1])
			m->dist[m->ndist++] = dd;
	}
}

/*
 * Rounds of one pair per distance: an untimed read at a random x puts the
 * head there, then the read at x + d is timed.  Taking the distances in
 * turn spreads any drift in the device over all of them alike.
 */
static int cal_phase_seek(struct cal_dev *d, struct cal_progress *p,
			  struct cal_meas *m)
{
	size_t rounds = 0;
	double us = 0;
	int rc;

	cal_pick_distances(d, m);
	do {
		for (unsigned i = 0; i < m->ndist; i++) {
			uint64_t x = cal_rand_off(d, d->size - m->dist[i] -
						  CAL_SMALL_LEN);

			rc = cal_read(d, CAL_SMALL_LEN, x);
			if (rc == 0)
				rc = cal_timed_read(d, CAL_SMALL_LEN,
						    x + m->dist[i], &us);
			if (rc < 0)
				return rc;
			cal_samples_add(&m->seek[i], us);
		}
		rounds++;
	} while (rounds < CAL_ROUNDS_MAX && cal_more(p, p->end_ns, rounds, 3));
	return 0;
}

/*
 * Rate of 1 MiB reads at QD1 through [start, start + len), wrapping to
 * start when the region is used up.  A first, untimed read positions the
 * head so the figure holds no seek.
 */
static int cal_seq_rate(struct cal_dev *d, struct cal_progress *p,
			uint64_t start, uint64_t len, uint64_t until,
			double *MBps)
{
	uint64_t off = start + CAL_SEQ_LEN, bytes = 0, t0;
	size_t n = 0;
	int rc = cal_read(d, CAL_SEQ_LEN, start);

	t0 = tool_now_ns();
	while (rc == 0) {
		if (off + CAL_SEQ_LEN > start + len)
			off = start;
		rc = cal_read(d, CAL_SEQ_LEN, off);
		off += CAL_SEQ_LEN;
		bytes += CAL_SEQ_LEN;
		if (!cal_more(p, until, ++n, 4))
			break;
	}
	/* bytes per microsecond is MB/s */
	*MBps = (double)bytes / ((double)(tool_now_ns() - t0) / 1e3);
	return rc;
}

static int cal_phase_seq(struct cal_dev *d, struct cal_progress *p,
			 struct cal_meas *m)
{
	uint64_t region = d->size / 4 / CAL_MiB * CAL_MiB;
	uint64_t half = p->start_ns + (p->end_ns - p->start_ns) / 2;
	int rc;

	rc = cal_seq_rate(d, p, 0, region, half, &m->seq_outer_MBps);
	if (rc == 0)
		rc = cal_seq_rate(d, p, d->size - region, region, p->end_ns,
				  &m->seq_inner_MBps);
	return rc;
}

/* Starts a read into buffer @slot at a random offset, stored in *off. */
static int cal_queue_read(struct io_uring *ring, struct cal_dev *d,
			  unsigned slot, uint64_t *off)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int rc;

	if (!sqe) {
		cal_errorf("io_uring_get_sqe: submission queue full");
		return -EBUSY;
	}
	*off = cal_rand_off(d, d->size - CAL_QD_LEN);
	io_uring_prep_read(sqe, d->fd, (char *)d->buf + (size_t)slot * CAL_QD_LEN,
			   CAL_QD_LEN, *off);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)slot);
	rc = io_uring_submit(ring);
	if (rc < 0)
		cal_errorf("io_uring_submit: %s", strerror(-rc));
	return rc < 0 ? rc : 0;
}

/*
 * Keeps @qd random 64 KiB reads in flight until @until and stores the
 * completion rate.  On an error the reads still in flight are left to the
 * ring's teardown, which waits for them; the buffers outlive the ring.
 */
static int cal_qd_run(struct io_uring *ring, struct cal_dev *d,
		      struct cal_progress *p, unsigned qd, uint64_t until,
		      double *iops)
{
	uint64_t t0 = tool_now_ns(), t_end = t0, off[CAL_QD_MAX];
	unsigned inflight = 0;
	size_t done = 0;
	bool stopping = false;
	int rc = 0;

	for (unsigned i = 0; i < qd && rc == 0; i++, inflight++)
		rc = cal_queue_read(ring, d, i, &off[i]);
	while (rc == 0 && inflight > 0) {
		struct io_uring_cqe *cqe;
		unsigned slot;
		int res;

		rc = io_uring_wait_cqe(ring, &cqe);
		if (rc == -EINTR) {
			rc = 0;
			continue;
		}
		if (rc < 0) {
			cal_errorf("io_uring_wait_cqe: %s", strerror(-rc));
			break;
		}
		res = cqe->res;
		slot = (unsigned)(uintptr_t)io_uring_cqe_get_data(cqe);
		io_uring_cqe_seen(ring, cqe);
		inflight--;
		rc = cal_check_read(d, "io_uring read", res, CAL_QD_LEN,
				    off[slot]);
		if (rc < 0 || stopping)
			continue;
		if (!cal_more(p, until, ++done, 2 * (size_t)qd)) {
			stopping = true;
			t_end = tool_now_ns();
			continue;
		}
		rc = cal_queue_read(ring, d, slot, &off[slot]);
		inflight += rc == 0;
	}
	*iops = (double)done / ((double)(t_end - t0) / 1e9);
	return rc;
}

static int cal_phase_qd(struct cal_dev *d, struct cal_progress *p,
			struct cal_meas *m)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(CAL_QD_MAX, &ring, 0);

	if (rc < 0) {
		snprintf(m->qd_skip, sizeof m->qd_skip,
			 "io_uring_queue_init: %s", strerror(-rc));
		cal_warnf("%s; queue-depth scaling not measured", m->qd_skip);
		return 0;
	}
	for (unsigned i = 0; i < CAL_NQD && rc >= 0; i++) {
		/* An earlier depth may have overrun its share; the rest
		 * split what is left. */
		uint64_t now = tool_now_ns();
		uint64_t left = p->end_ns > now ? p->end_ns - now : 0;

		rc = cal_qd_run(&ring, d, p, cal_qds[i],
				now + left / (CAL_NQD - i), &m->iops[i]);
	}
	io_uring_queue_exit(&ring);
	m->have_qd = rc >= 0;
	return rc;
}

typedef int (*cal_phase_fn)(struct cal_dev *d, struct cal_progress *p,
			    struct cal_meas *m);

/*
 * The seek phase gets the largest share: it samples thirteen distances
 * with two reads each, and its figures decide both the device type and
 * the disk's seek curve.
 */
static const struct cal_phase {
	const char *label;
	double share; /* of the time budget */
	cal_phase_fn run;
} cal_phases[CAL_NPHASES] = {
	{ "random 4 KiB reads", 0.15, cal_phase_random },
	{ "seek distances", 0.40, cal_phase_seek },
	{ "sequential 1 MiB reads", 0.15, cal_phase_seq },
	{ "queue-depth scaling", 0.30, cal_phase_qd },
};

static int cal_measure(struct cal_dev *d, const struct cal_opts *o,
		       struct cal_meas *m)
{
	struct cal_progress p = {
		.quiet = o->quiet,
		.live = !o->quiet && isatty(STDERR_FILENO),
	};
	double budget_ns = o->duration_s * 1e9;
	int rc = 0;

	for (unsigned i = 0; i < CAL_NPHASES && rc == 0; i++) {
		cal_progress_begin(&p, i + 1, cal_phases[i].label,
				   (uint64_t)(budget_ns * cal_phases[i].share));
		rc = cal_phases[i].run(d, &p, m);
		if (rc == 0)
			cal_progress_end(&p);
	}
	return rc;
}

/* ---------------------------------------------------------------- */
/* Classification and fitting                                       */
/* ---------------------------------------------------------------- */

/*
 * The seek curve decides: a rotating disk pays for distance (its nearest
 * non-zero distance is even served from read-ahead), so a flat curve means
 * solid state, or a device that behaves like it.  Queueing gains are
 * reported but do not overrule it: a disk with command queueing can gain
 * 2x at depth 32, while a single-lane or bandwidth-bound solid-state
 * device gains little, and the disk model would charge such a device half
 * a revolution per request.  The solid-state model with its measured
 * parallelism describes it instead.
 */
static void cal_classify(struct cal_meas *m, struct cal_profile *pf)
{
	double near = cal_median(&m->seek[1]);
	double far = cal_median(&m->seek[m->ndist - 1]);
	double ratio = far / fmax(near, 1e-3);
	double seq = fmax(m->seq_outer_MBps, m->seq_inner_MBps);
	double qd1 = m->iops[0] * CAL_QD_LEN / 1e6, gain;
	int n;

	pf->ssd = ratio <= CAL_FLAT_RATIO;
	n = snprintf(pf->why, sizeof pf->why,
		     "farthest/nearest non-zero seek time %.2f (%s %.1f)",
		     ratio, pf->ssd ? "<=" : ">", CAL_FLAT_RATIO);
	if (!m->have_qd) {
		snprintf(pf->why + n, sizeof pf->why - (size_t)n,
			 "; queue-depth scaling not measured");
		return;
	}
	gain = m->iops[CAL_QD32] / m->iops[0];
	snprintf(pf->why + n, sizeof pf->why - (size_t)n,
		 ", QD32/QD1 IOPS %.2f (%s %.1f), QD1 64 KiB reads at %.0f%% of the sequential rate",
		 gain, gain > CAL_QD_GAIN ? ">" : "<=", CAL_QD_GAIN,
		 100 * qd1 / seq);
	if (pf->ssd && gain <= CAL_QD_GAIN)
		cal_note(pf, "flat seek curve but queueing gains only %.2fx: a single-lane or bandwidth-bound device, modelled as solid state",
			 gain);
}

/* The smallest queue depth whose IOPS reach 90 % of the best. */
static unsigned cal_parallelism(const struct cal_meas *m)
{
	double best = 0;
	unsigned i;

	if (!m->have_qd)
		return 1;
	for (i = 0; i < CAL_NQD; i++)
		best = fmax(best, m->iops[i]);
	for (i = 0; i < CAL_NQD && m->iops[i] < 0.9 * best; i++)
		;
	return i < CAL_NQD ? cal_qds[i] : CAL_QD_MAX;
}

/*
 * The model charges overhead + latency + len / rate.  Solving that for
 * the 4 KiB median and the time of one 1 MiB sequential read gives a
 * latency and rate under which the model reproduces both figures.
 */
static void cal_derive_ssd(struct cal_meas *m, struct cal_profile *pf)
{
	double med = cal_median(&m->lat4k);
	double seq = fmax(m->seq_outer_MBps, m->seq_inner_MBps);
	double t_seq = CAL_SEQ_LEN / seq; /* MB/s is bytes per us */
	double rate = seq, lat;

	if (t_seq > med)
		rate = (CAL_SEQ_LEN - CAL_SMALL_LEN) / (t_seq - med);
	else
		cal_note(pf, "a 1 MiB read (%.1f us) was not slower than a 4 KiB one (%.1f us): read_MBps is the plain sequential rate",
			 t_seq, med);
	lat = med - pf->v.overhead_us - CAL_SMALL_LEN / rate;
	pf->v.read_latency_us = cal_floor(pf, "read_latency_us", lat, 1);
	pf->v.write_latency_us = pf->v.read_latency_us;
	pf->v.read_MBps = cal_floor(pf, "read_MBps", rate, 0.1);
	pf->v.write_MBps = pf->v.read_MBps;
	pf->v.parallelism = cal_parallelism(m);
	pf->v.depth = pf->v.parallelism * 2 > 128 ? 128 : pf->v.parallelism * 2;
	cal_note(pf, "read_latency_us and read_MBps solve overhead + latency + len / rate for the 4 KiB median (%.1f us) and one 1 MiB sequential read (%.1f us)",
		 med, t_seq);
	cal_note(pf, "write_latency_us and write_MBps copy the read figures: this tool never writes to the device");
	cal_note(pf, "parallelism: smallest queue depth reaching 90%% of the best IOPS%s; depth = 2 x parallelism, at most 128",
		 m->have_qd ? "" : " (not measured, so 1)");
}

/*
 * Centre of a disk's time distribution: after a seek the rotational wait
 * is uniform over a revolution, and for a uniform spread the midpoint of
 * p10 and p90 has a fifth of the variance of the median.  Used for the
 * disk fit, where a median of a few dozen reads would be off by hundreds
 * of microseconds.
 */
static double cal_center(struct cal_samples *s)
{
	return (cal_quantile(s, 0.1) + cal_quantile(s, 0.9)) / 2;
}

/*
 * The rotational wait after a long seek is uniform over one revolution,
 * so p10 to p90 of those times spans 80 % of a revolution.  Each long
 * distance's times are centred on their own midpoint and pooled, which
 * leaves the rotation (and a little seek jitter) and gives a steady
 * estimate from a few dozen reads per distance.
 */
static double cal_infer_rpm(struct cal_meas *m, struct cal_profile *pf)
{
	struct cal_samples pool = { 0 };
	double rev = NAN, rpm = NAN, best = INFINITY;
	size_t total = 0;
	unsigned i, std = 0;

	for (i = 1; i < m->ndist; i++)
		total += m->dist[i] >= CAL_RPM_MIN_DIST ? m->seek[i].n : 0;
	if (total >= 40 && cal_samples_init(&pool, total) == 0) {
		for (i = 1; i < m->ndist; i++) {
			double c = cal_center(&m->seek[i]);

			if (m->dist[i] < CAL_RPM_MIN_DIST)
				continue;
			for (size_t k = 0; k < m->seek[i].n; k++)
				cal_samples_add(&pool, m->seek[i].v[k] - c);
		}
		rev = (cal_quantile(&pool, 0.9) - cal_quantile(&pool, 0.1)) / 0.8;
		rpm = 60e6 / rev;
		free(pool.v);
	}
	if (!(rpm >= 3000 && rpm <= 20000)) {
		cal_note(pf, "rpm: not inferable from the spread of long-seek times (%s); 7200 assumed",
			 isnan(rpm) ? "too few samples" : "implausible value");
		return CAL_DEFAULT_RPM;
	}
	for (i = 0; i < sizeof cal_std_rpm / sizeof cal_std_rpm[0]; i++) {
		if (fabs(rpm - cal_std_rpm[i]) < best) {
			best = fabs(rpm - cal_std_rpm[i]);
			std = i;
		}
	}
	if (best > 0.15 * cal_std_rpm[std]) {
		cal_note(pf, "rpm: a revolution of %.0f us from the spread of long-seek times", rev);
		return round(rpm);
	}
	cal_note(pf, "rpm: a revolution of %.0f us from the spread of long-seek times (%.0f rpm), taken as the standard %.0f",
		 rev, rpm, cal_std_rpm[std]);
	return cal_std_rpm[std];
}

/* The media rate under which overhead + media + bus time of a 1 MiB read
 * equals the measured time. */
static double cal_media_MBps(struct cal_profile *pf, double raw,
			     const char *zone)
{
	double t = CAL_SEQ_LEN / raw;
	double media = t - pf->v.overhead_us - CAL_SEQ_LEN / pf->v.bus_MBps;

	if (media > 0)
		return CAL_SEQ_LEN / media;
	cal_note(pf, "media_%s_MBps: 1 MiB reads (%.1f us) beat bus and overhead alone, so the measured rate is used",
		 zone, t);
	return cal_floor(pf, "media rate", raw, 0.1);
}

/*
 * The seek curve as measured: for each distance that leaves the track
 * (shorter ones stay on it and are served from the drive's read-ahead),
 * the distance in cylinders and the time the model puts in settling and
 * seeking, in ms: the p10/p90 midpoint less half a revolution, the 4 KiB
 * transfer and the overhead.
 */
struct cal_pts {
	double x[CAL_NDIST + 1], y[CAL_NDIST + 1];
	unsigned n;
	unsigned nlong; /* beyond short_seek_tracks */
};

static void cal_seek_points(struct cal_meas *m, double track,
			    double fixed_us, struct cal_pts *p)
{
	p->n = p->nlong = 0;
	for (unsigned i = 1; i < m->ndist; i++) {
		double dc = (double)m->dist[i] / track;

		if (dc < 1)
			continue;
		p->x[p->n] = dc;
		p->y[p->n++] = (cal_center(&m->seek[i]) - fixed_us) / 1e3;
		p->nlong += dc > CAL_SHORT_SEEK_TRACKS;
	}
}

/* Seek time beyond settling, in ms: the model's own curve
 * (iosched_model.c), so the fit finds what the model will compute. */
static double cal_curve_ms(double d, double a, double v)
{
	return iosched__seek_travel_ms(d, CAL_SHORT_SEEK_TRACKS, a, v);
}

/*
 * Squared error in ms of settle + curve, with the settle time that
 * minimises it for this @a and @v (the mean residual, at least 1 us) put
 * in *settle.  The noise in each point (mostly the rotational wait) is
 * alike at every distance, so every point weighs the same.
 */
static double cal_fit_err(const struct cal_pts *p, double a, double v,
			  double *settle)
{
	double c[CAL_NDIST + 1], sum = 0, e = 0;

	for (unsigned i = 0; i < p->n; i++) {
		c[i] = cal_curve_ms(p->x[i], a, v);
		sum += p->y[i] - c[i];
	}
	*settle = fmax(sum / p->n, 1e-3);
	for (unsigned i = 0; i < p->n; i++)
		e += (*settle + c[i] - p->y[i]) * (*settle + c[i] - p->y[i]);
	return e;
}

/* Least squares by grid search in log10(a), log10(v), refined twice. */
static void cal_fit_grid(const struct cal_pts *p, double *a, double *v,
			 double *settle)
{
	double la = 2, lv = 2.5, span = 6, step = 0.05, s;

	for (int pass = 0; pass < 3; pass++, span = step * 1.5, step /= 10) {
		double best = INFINITY, ba = la, bv = lv;
		int k = (int)(span / step);

		for (int i = -k; i <= k; i++) {
			for (int j = -k; j <= k; j++) {
				double ta = la + i * step, tv = lv + j * step;
				double e = cal_fit_err(p, pow(10, ta),
						       pow(10, tv), &s);

				if (e < best) {
					best = e;
					ba = ta;
					bv = tv;
				}
			}
		}
		la = ba;
		lv = bv;
	}
	*a = pow(10, la);
	*v = pow(10, lv);
	cal_fit_err(p, *a, *v, settle);
}

/*
 * Fewer than two distances beyond short seeks: settle is the mean of the
 * short ones (or the nearest point), and the curve passes through the one
 * long point, accelerating all the way, or else is set for a 12 ms full
 * stroke.
 */
static void cal_fit_fallback(const struct cal_pts *p, struct cal_profile *pf,
			     double *a, double *v, double *settle)
{
	double cyl = (double)pf->v.cylinders, sum = 0, t = 0, x = 0;
	unsigned ns = 0;

	for (unsigned i = 0; i < p->n; i++) {
		if (p->x[i] <= CAL_SHORT_SEEK_TRACKS) {
			sum += p->y[i];
			ns++;
		}
	}
	*settle = ns ? sum / ns : p->n ? p->y[0] : 0;
	for (unsigned i = 0; i < p->n; i++) {
		if (p->x[i] > CAL_SHORT_SEEK_TRACKS) {
			x = p->x[i];
			t = p->y[i] - *settle;
		}
	}
	if (t > 0) {
		*a = 4 * x / (t * t);
		*v = sqrt(*a * cyl);
		cal_note(pf, "settle_us, seek_accel, seek_vmax: %u short-seek distances give settle; the curve accelerates through the one longer distance",
			 ns);
		return;
	}
	*v = cyl / 11;
	*a = *v;
	cal_note(pf, "settle_us, seek_accel, seek_vmax: %u short-seek distances give settle; no longer seek measured above it, so the curve is set for a 12 ms full stroke",
		 ns);
}

static void cal_fit_seek(struct cal_meas *m, struct cal_profile *pf,
			 double track, double fixed_us)
{
	double cyl = (double)pf->v.cylinders, a, v, settle;
	struct cal_pts p;

	cal_seek_points(m, track, fixed_us, &p);
	if (p.nlong >= 2) {
		cal_fit_grid(&p, &a, &v, &settle);
		cal_note(pf, "settle_us, seek_accel, seek_vmax: least-squares fit of settle + seek curve to %u distances (p10/p90 midpoints less half a revolution, 4 KiB transfer and overhead)",
			 p.n);
	} else {
		cal_fit_fallback(&p, pf, &a, &v, &settle);
	}
	if (v * v / a > cyl) {
		v = sqrt(a * cyl);
		cal_note(pf, "seek_vmax: not reached within the device, so set to the speed a full stroke reaches (the curve is unchanged)");
	}
	pf->v.settle_us = cal_floor(pf, "settle_us", settle * 1e3, 1);
	pf->v.seek_accel = cal_floor(pf, "seek_accel", a, 1e-6);
	pf->v.seek_vmax = cal_floor(pf, "seek_vmax", v, 1e-6);
}

static void cal_derive_hdd(struct cal_meas *m, struct cal_profile *pf)
{
	double rev_us, track;

	pf->v.depth = 1;
	pf->v.bus_MBps = CAL_BUS_MBPS;
	pf->v.short_seek_tracks = CAL_SHORT_SEEK_TRACKS;
	pf->v.rpm = cal_infer_rpm(m, pf);
	pf->v.media_outer_MBps = cal_media_MBps(pf, m->seq_outer_MBps, "outer");
	pf->v.media_inner_MBps = cal_media_MBps(pf, m->seq_inner_MBps, "inner");
	if (pf->v.media_inner_MBps > pf->v.media_outer_MBps) {
		/* The model's rate falls from cylinder 0 inwards, and the
		 * parser refuses an inner rate above the outer one. */
		cal_note(pf, "media_inner_MBps: measured %.1f, above the outer rate, so set equal to it",
			 pf->v.media_inner_MBps);
		pf->v.media_inner_MBps = pf->v.media_outer_MBps;
	}
	rev_us = 60e6 / pf->v.rpm;
	track = pf->v.media_outer_MBps * rev_us;
	pf->v.cylinders = (uint64_t)fmax(1, ceil((double)pf->v.capacity_bytes / track));
	cal_note(pf, "cylinders: capacity / bytes per outer track (%.0f: media_outer_MBps x one revolution), which gives the model a consistent byte-to-cylinder map",
		 track);
	cal_note(pf, "bus_MBps: the SATA-3 line rate; reads cannot separate bus time from media time");
	cal_fit_seek(m, pf, track,
		     rev_us / 2 + CAL_SMALL_LEN / pf->v.media_outer_MBps +
		     CAL_SMALL_LEN / pf->v.bus_MBps + pf->v.overhead_us);
}

static void cal_derive(const struct cal_dev *d, struct cal_meas *m,
		       struct cal_profile *pf)
{
	pf->v.capacity_bytes = d->size;
	pf->v.overhead_us = CAL_OVERHEAD_US;
	cal_note(pf, "overhead_us: a typical per-command cost; reads cannot separate it from the device's own time, so the fitted times are net of it");
	cal_classify(m, pf);
	if (pf->ssd)
		cal_derive_ssd(m, pf);
	else
		cal_derive_hdd(m, pf);
}

/* ---------------------------------------------------------------- */
/* Rendering and output                                             */
/* ---------------------------------------------------------------- */

/* A path may hold anything; a newline in it would end the comment. */
static void cal_put_path(FILE *f, const char *path)
{
	for (const char *c = path; *c; c++)
		fputc(isprint((unsigned char)*c) ? *c : '?', f);
}

static void cal_put_evidence(FILE *f, struct cal_meas *m)
{
	struct cal_samples *l = &m->lat4k;

	fprintf(f, "# random 4 KiB reads, QD1: n=%zu min=%.1f p10=%.1f median=%.1f p90=%.1f max=%.1f\n",
		l->n, cal_quantile(l, 0), cal_quantile(l, 0.1), cal_median(l),
		cal_quantile(l, 0.9), cal_quantile(l, 1));
	fprintf(f, "# a 4 KiB read at x + d, just after one at x:\n");
	for (unsigned i = 0; i < m->ndist; i++) {
		struct cal_samples *s = &m->seek[i];

		fprintf(f, "#   d=%-13" PRIu64 " n=%-5zu p10=%-9.1f median=%-9.1f p90=%.1f\n",
			m->dist[i], s->n, cal_quantile(s, 0.1), cal_median(s),
			cal_quantile(s, 0.9));
	}
	fprintf(f, "# sequential 1 MiB reads, QD1: outer %.1f MB/s, inner %.1f MB/s\n",
		m->seq_outer_MBps, m->seq_inner_MBps);
	if (!m->have_qd) {
		fprintf(f, "# queue-depth scaling not measured: %s\n", m->qd_skip);
		return;
	}
	fprintf(f, "# random 64 KiB reads through io_uring:\n");
	for (unsigned i = 0; i < CAL_NQD; i++)
		fprintf(f, "#   QD%-3u %10.0f IOPS %9.1f MB/s\n", cal_qds[i],
			m->iops[i], m->iops[i] * CAL_QD_LEN / 1e6);
}

static void cal_put_header(FILE *f, const struct cal_dev *d,
			   const struct cal_opts *o)
{
	char date[64] = "unknown date";
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm))
		strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "# libiosched disk-model profile (iosched-profile(5))\n");
	fprintf(f, "# written by %s %s on %s\n", CAL_PROG, CAL_VERSION, date);
	fprintf(f, "# path: ");
	cal_put_path(f, d->path);
	fprintf(f, " (%s; %" PRIu64 " of %" PRIu64 " bytes measured in %g s)\n",
		d->is_blk ? "block device" : "regular file", d->size,
		d->full_size, o->duration_s);
	fprintf(f, "#\n# Raw measurements (O_DIRECT reads; times in microseconds):\n");
}

/* Fills *text (caller frees) with the whole profile.  0 or -errno. */
static int cal_render(const struct cal_dev *d, const struct cal_opts *o,
		      struct cal_meas *m, const struct cal_profile *pf,
		      char **text, size_t *len)
{
	struct iosched__profile_text v;
	FILE *f = open_memstream(text, len);
	int err = errno;

	if (!f) {
		cal_errorf("open_memstream: %s", strerror(err));
		return -err;
	}
	cal_put_header(f, d, o);
	cal_put_evidence(f, m);
	fprintf(f, "#\n# Classified as %s: %s\n#\n", pf->ssd ? "ssd" : "hdd",
		pf->why);
	for (unsigned i = 0; i < pf->nnotes; i++)
		fprintf(f, "# %s\n", pf->notes[i]);
	fputc('\n', f);
	v = pf->v;
	v.type = pf->ssd ? IOSCHED__MODEL_SSD : IOSCHED__MODEL_HDD;
	v.name = o->name;
	iosched__profile_write(f, &v);
	if (fclose(f) != 0) {
		cal_errorf("writing the profile: %s", strerror(errno));
		return -ENOMEM;
	}
	return 0;
}

static int cal_write_all(int fd, const char *name, const char *text,
			 size_t len)
{
	int rc = tool_write_all(fd, text, len);

	if (rc < 0)
		cal_errorf("write(%s): %s", name, strerror(-rc));
	return rc;
}

/*
 * Writes the profile to stdout, or to @path through a temporary file in
 * the same directory and a rename, so a reader never sees half a profile.
 */
static int cal_write_output(const char *path, const char *text, size_t len)
{
	char *tmp = NULL;
	bool made = false;
	mode_t mask;
	int fd = -1, rc;

	if (!path)
		return cal_write_all(STDOUT_FILENO, "stdout", text, len);
	rc = asprintf(&tmp, "%s.XXXXXX", path) < 0 ? -ENOMEM : 0;
	if (rc < 0) {
		tmp = NULL;
		cal_errorf("asprintf: %s", strerror(ENOMEM));
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		cal_errorf("mkstemp(%s.XXXXXX): %s", path, strerror(-rc));
		goto out;
	}
	made = true;
	mask = umask(0);
	umask(mask);
	rc = cal_write_all(fd, tmp, text, len);
	if (rc == 0 && fchmod(fd, 0666 & ~mask) < 0) {
		rc = -errno;
		cal_errorf("fchmod(%s): %s", tmp, strerror(-rc));
	}
	if (rc == 0 && fsync(fd) < 0) {
		rc = -errno;
		cal_errorf("fsync(%s): %s", tmp, strerror(-rc));
	}
	if (close(fd) < 0 && rc == 0) {
		rc = -errno;
		cal_errorf("close(%s): %s", tmp, strerror(-rc));
	}
	fd = -1;
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -errno;
		cal_errorf("rename(%s, %s): %s", tmp, path, strerror(-rc));
	}
out:
	if (rc < 0 && made)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* ---------------------------------------------------------------- */
/* Device                                                           */
/* ---------------------------------------------------------------- */

static void cal_need_file_hint(void)
{
	fprintf(stderr,
		"%s: needs an existing file or block device of at least 64 MiB holding real data,\n"
		"  e.g.: fallocate -l 1G FILE && dd if=/dev/urandom of=FILE bs=1M count=1024 conv=notrunc\n"
		"  (reads of holes in a sparse file never reach the media)\n",
		CAL_PROG);
}

static bool cal_is_file_or_blk(const struct stat *st)
{
	return S_ISREG(st->st_mode) || S_ISBLK(st->st_mode);
}

/* open() fails with EINVAL both for O_DIRECT on a file system without it
 * and for O_DIRECT on a directory or a character device. */
static int cal_open_fd(struct cal_dev *d)
{
	struct stat st;
	int err;

	d->fd = open(d->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (d->fd >= 0)
		return 0;
	err = errno;
	if (err == EINVAL && stat(d->path, &st) == 0 && !cal_is_file_or_blk(&st)) {
		cal_errorf("%s: neither a regular file nor a block device",
			   d->path);
		return -EINVAL;
	}
	if (err == EINVAL) {
		cal_errorf("open(%s, O_DIRECT): %s: the file system does not support O_DIRECT",
			   d->path, strerror(err));
		return -err;
	}
	cal_errorf("open(%s): %s", d->path, strerror(err));
	if (err == ENOENT)
		cal_need_file_hint();
	return -err;
}

static int cal_device_size(struct cal_dev *d)
{
	struct stat st;
	int lbs, err;

	if (fstat(d->fd, &st) < 0) {
		err = errno;
		cal_errorf("fstat(%s): %s", d->path, strerror(err));
		return -err;
	}
	if (!cal_is_file_or_blk(&st)) {
		cal_errorf("%s: neither a regular file nor a block device",
			   d->path);
		return -EINVAL;
	}
	if (S_ISREG(st.st_mode)) {
		d->full_size = (uint64_t)st.st_size;
		return 0;
	}
	d->is_blk = true;
	if (ioctl(d->fd, BLKGETSIZE64, &d->full_size) < 0 ||
	    ioctl(d->fd, BLKSSZGET, &lbs) < 0) {
		err = errno;
		cal_errorf("ioctl(%s, BLKGETSIZE64/BLKSSZGET): %s", d->path,
			   strerror(err));
		return -err;
	}
	if (lbs > (int)CAL_ALIGN) {
		cal_errorf("%s: logical block size %d is larger than the 4096-byte reads this tool issues",
			   d->path, lbs);
		return -EINVAL;
	}
	return 0;
}

/* Holes, and on some file systems unwritten extents, are never read from
 * the media; the figures would describe the page-zeroing code instead. */
static void cal_check_holes(const struct cal_dev *d)
{
	off_t hole = lseek(d->fd, 0, SEEK_HOLE);

	if (hole < 0 || (uint64_t)hole >= d->size)
		return;
	cal_warnf("%s has a hole or unwritten range at byte %lld; reads there never reach the media.  Fill it first, e.g. dd if=/dev/urandom of=FILE bs=1M count=%" PRIu64 " conv=notrunc",
		  d->path, (long long)hole, (uint64_t)(d->size / CAL_MiB));
}

static int cal_open(struct cal_dev *d, const struct cal_opts *o)
{
	int rc;

	d->path = o->path;
	rc = cal_open_fd(d);
	if (rc == 0)
		rc = cal_device_size(d);
	if (rc < 0)
		goto err;
	if (o->size > d->full_size) {
		cal_errorf("--size %" PRIu64 " is larger than %s (%" PRIu64 " bytes)",
			   o->size, d->path, d->full_size);
		rc = -EINVAL;
		goto err;
	}
	d->size = (o->size ? o->size : d->full_size) / CAL_MiB * CAL_MiB;
	if (d->size < CAL_MIN_SIZE) {
		cal_errorf("%s: %" PRIu64 " bytes is too small", d->path,
			   d->full_size);
		cal_need_file_hint();
		rc = -EINVAL;
		goto err;
	}
	if (!d->is_blk)
		cal_check_holes(d);
	return 0;
err:
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	return rc;
}

/* ---------------------------------------------------------------- */
/* Command line                                                     */
/* ---------------------------------------------------------------- */

static void cal_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [options] PATH\n"
		"Measure a file or block device with O_DIRECT reads and write a\n"
		"libiosched disk-model profile for it.  PATH must exist, hold real\n"
		"data and be at least 64 MiB; it is only read.\n"
		"\n"
		"  -o, --output FILE     write the profile to FILE (default: stdout)\n"
		"      --name NAME       profile name (default: calibrated)\n"
		"      --size BYTES      measure only the first BYTES (suffix K, M, G, T)\n"
		"      --duration SECS   total time budget (default: 20)\n"
		"  -q, --quiet           no progress on stderr\n"
		"  -h, --help            show this help\n"
		"      --version         show the version\n",
		CAL_PROG);
}

static int cal_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned shift = 0;
	unsigned long long v;
	const char *u;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	if (*end && (u = strchr(units, toupper((unsigned char)*end))) != NULL) {
		shift = 10 * (unsigned)(u - units + 1);
		end++;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Profile names go into the model's 64-byte name field and a profile line. */
static bool cal_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._+-", *s))
			return false;
	return true;
}

static int __attribute__((format(printf, 1, 2)))
cal_bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", CAL_PROG);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry '%s --help'.\n", CAL_PROG);
	va_end(ap);
	return 2;
}

enum { CAL_OPT_NAME = 256, CAL_OPT_SIZE, CAL_OPT_DURATION, CAL_OPT_VERSION };

static const struct option cal_longopts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "name", required_argument, NULL, CAL_OPT_NAME },
	{ "size", required_argument, NULL, CAL_OPT_SIZE },
	{ "duration", required_argument, NULL, CAL_OPT_DURATION },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, CAL_OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* -1 to go on, else the exit status. */
static int cal_parse_args(int argc, char **argv, struct cal_opts *o)
{
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "o:qh", cal_longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o->output = strcmp(optarg, "-") ? optarg : NULL;
			break;
		case CAL_OPT_NAME:
			if (!cal_valid_name(optarg))
				return cal_bad_usage("--name '%s': use 1 to 63 letters, digits, '.', '_', '+' or '-'", optarg);
			o->name = optarg;
			break;
		case CAL_OPT_SIZE:
			if (cal_parse_size(optarg, &o->size) < 0)
				return cal_bad_usage("--size '%s': not a byte count", optarg);
			if (o->size < CAL_MIN_SIZE)
				return cal_bad_usage("--size '%s': at least 64 MiB are needed", optarg);
			break;
		case CAL_OPT_DURATION:
			o->duration_s = strtod(optarg, &end);
			if (end == optarg || *end || !(o->duration_s > 0) ||
			    o->duration_s > 86400)
				return cal_bad_usage("--duration '%s': seconds, more than 0 and at most 86400", optarg);
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			cal_usage(stdout);
			return 0;
		case CAL_OPT_VERSION:
			printf("%s %s\n", CAL_PROG, CAL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try '%s --help'.\n", CAL_PROG);
			return 2;
		}
	}
	if (argc - optind != 1)
		return cal_bad_usage("%s", argc - optind ? "only one PATH, please" : "missing PATH");
	o->path = argv[optind];
	return -1;
}

/* ---------------------------------------------------------------- */
/* Main                                                             */
/* ---------------------------------------------------------------- */

static int cal_meas_init(struct cal_meas *m)
{
	int rc = cal_samples_init(&m->lat4k, CAL_LAT_MAX);

	for (unsigned i = 0; i <= CAL_NDIST && rc == 0; i++)
		rc = cal_samples_init(&m->seek[i], CAL_ROUNDS_MAX);
	if (rc < 0)
		cal_errorf("calloc: %s", strerror(-rc));
	return rc;
}

static void cal_meas_fini(struct cal_meas *m)
{
	free(m->lat4k.v);
	for (unsigned i = 0; i <= CAL_NDIST; i++)
		free(m->seek[i].v);
}

int main(int argc, char **argv)
{
	struct cal_opts o = { .name = "calibrated", .duration_s = 20 };
	struct cal_dev d = { .fd = -1 };
	struct cal_meas m = { 0 };
	struct cal_profile pf = { 0 };
	char *text = NULL;
	size_t len = 0;
	int status = cal_parse_args(argc, argv, &o), rc;

	if (status >= 0)
		return status;
	status = 1;
	d.rng = tool_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	if (cal_open(&d, &o) < 0 || cal_meas_init(&m) < 0)
		goto out;
	rc = posix_memalign(&d.buf, CAL_ALIGN, (size_t)CAL_QD_MAX * CAL_QD_LEN);
	if (rc != 0) {
		d.buf = NULL;
		cal_errorf("posix_memalign: %s", strerror(rc));
		goto out;
	}
	if (cal_measure(&d, &o, &m) < 0)
		goto out;
	cal_derive(&d, &m, &pf);
	if (cal_render(&d, &o, &m, &pf, &text, &len) < 0 ||
	    cal_write_output(o.output, text, len) < 0)
		goto out;
	status = 0;
out:
	free(text);
	free(d.buf);
	cal_meas_fini(&m);
	if (d.fd >= 0)
		close(d.fd);
	return status;
}
