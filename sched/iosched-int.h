/*
 * Private interfaces of libiosched, shared by its source files only: the
 * parsed model, the back-end and policy operation tables, the latency
 * histogram, and the logging helper.  Nothing outside sched/ (tests
 * excepted) includes this header.
 */
#ifndef IOSCHED_INT_H
#define IOSCHED_INT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "iosched.h"

#define IOSCHED__NS_PER_S 1000000000ull
#define IOSCHED__NS_PER_MS 1000000ull
#define IOSCHED__NS_PER_US 1000ull

/* ---------------------------------------------------------------- */
/* Logging                                                          */
/* ---------------------------------------------------------------- */

void iosched__log(const struct iosched_log *log, enum iosched_log_level lvl,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- */
/* Model                                                            */
/* ---------------------------------------------------------------- */

enum iosched__model_type {
	IOSCHED__MODEL_HDD = 0,
	IOSCHED__MODEL_SSD = 1,
};

/*
 * A parsed profile.  Rates are bytes per second, times nanoseconds.  The
 * seek curve follows the disk model of the GLMD paper: distances of 1 to
 * short_seek_tracks cylinders cost only the settle time; longer seeks
 * accelerate at seek_accel (cylinders/ms^2) up to seek_vmax (cylinders/ms),
 * coast, decelerate symmetrically, then settle.
 */
struct iosched_model {
	enum iosched__model_type type;
	char name[64];
	uint64_t capacity_bytes;
	unsigned depth;	      /* recommended dispatch depth */
	unsigned parallelism; /* requests served at once (1 for a disk) */
	uint64_t overhead_ns; /* command overhead */

	/* hdd */
	uint64_t cylinders;
	double rpm;
	double media_outer_Bps; /* cylinder 0 */
	double media_inner_Bps; /* last cylinder */
	double bus_Bps;
	uint64_t settle_ns;
	unsigned short_seek_tracks;
	double seek_accel;	 /* cylinders per ms^2 */
	double seek_vmax;	 /* cylinders per ms */
	uint64_t revolution_ns;	 /* derived: 60e9 / rpm */

	/* ssd */
	uint64_t read_latency_ns;
	uint64_t write_latency_ns;
	double read_Bps;
	double write_Bps;
};

/*
 * Arm travel beyond settling over @d cylinders, in ms: none up to
 * @short_tracks, then accelerating at @accel (cylinders/ms^2) over half
 * the way and braking over the other half, or, past vmax^2/accel
 * cylinders, coasting at @vmax in between.  One formula, made in two
 * precisions: the model's seek time (iosched_model.c) in long double, so
 * its rounding to whole nanoseconds is exact; iosched-calibrate's fit of
 * measured seeks in double, the precision its grid search is tied to.
 */
#define IOSCHED__SEEK_TRAVEL(name, T, sqrtfn)                            \
	static inline T name(T d, unsigned short_tracks, T accel, T vmax) \
	{                                                                 \
		T ramp = vmax * vmax / accel;                             \
                                                                          \
		if (d <= short_tracks)                                    \
			return 0;                                         \
		if (d < ramp)                                             \
			return 2 * sqrtfn(d / accel);                     \
		return 2 * vmax / accel + (d - ramp) / vmax;              \
	}
IOSCHED__SEEK_TRAVEL(iosched__seek_travel_ms, double, sqrt)
IOSCHED__SEEK_TRAVEL(iosched__seek_travel_msl, long double, sqrtl)
#undef IOSCHED__SEEK_TRAVEL

/*
 * A profile's keys in the units of the file (microseconds, MB/s), as a
 * writer has them before any parse: iosched__profile_write() renders it
 * with the same key table iosched_model_parse() reads.
 */
struct iosched__profile_text {
	enum iosched__model_type type;
	const char *name;
	uint64_t capacity_bytes;
	unsigned depth;
	double overhead_us;

	/* hdd */
	uint64_t cylinders;
	double rpm;
	double media_outer_MBps;
	double media_inner_MBps;
	double bus_MBps;
	double settle_us;
	unsigned short_seek_tracks;
	double seek_accel;
	double seek_vmax;

	/* ssd */
	double read_latency_us;
	double write_latency_us;
	double read_MBps;
	double write_MBps;
	unsigned parallelism;
};

/*
 * Writes @t's "key = value" lines to @f: type and name, then every key
 * of @t->type in the key table's order.  Counts are written exactly,
 * times and the rotation speed as whole numbers (at least 1: a profile
 * written from measurements has no zero time), rates and seek parameters
 * to about six significant digits with no trailing zeros.  Returns 0, or
 * -EIO if @f is in error afterwards.
 */
int iosched__profile_write(FILE *f, const struct iosched__profile_text *t);

/*
 * Service time with the rotational wait drawn from @rot_fraction in
 * [0, 1) of a revolution instead of the expected half: the simulator's
 * "real" disk.  iosched_model_service_ns() is this with 0.5.
 */
uint64_t iosched__model_service_sample_ns(const struct iosched_model *m,
					  uint64_t head, enum iosched_op op,
					  uint64_t offset, uint32_t len,
					  double rot_fraction);

/*
 * The part of a solid-state request's service time spent moving data at
 * the profile's bandwidth (0 for a disk).  The profile's bandwidth is the
 * whole device's: lanes overlap their latencies, but their transfers share
 * it, so the device never moves more than read_MBps / write_MBps.
 */
uint64_t iosched__model_transfer_ns(const struct iosched_model *m,
				    enum iosched_op op, uint32_t len);

/* ---------------------------------------------------------------- */
/* Back ends                                                        */
/* ---------------------------------------------------------------- */

/*
 * A back end carries out dispatched requests.  The scheduler calls
 * validate() from iosched_submit(), start() when the policy releases a
 * request, and wait() to collect completions, each of which it receives
 * through the complete() hook it installed with the back end.
 */
struct iosched_backend_ops {
	const char *name;
	/* 0 or -EINVAL (with a log line) for a request this device can't take. */
	int (*validate)(struct iosched_backend *be,
			const struct iosched_req *req);
	/* Hands one request to the device; 0 or -errno.  On error the core
	 * completes the request with that error. */
	int (*start)(struct iosched_backend *be, struct iosched_req *req);
	/* Pushes started requests to the device if it batches them. */
	int (*flush)(struct iosched_backend *be);
	/* Collects completions, calling be->complete for each, until at least
	 * one arrived, a wake() was consumed (be->woken set), or the clock
	 * reaches @until_ns (UINT64_MAX: until one arrives or a wake; 0:
	 * don't block).  Returns completions or -errno. */
	int (*wait)(struct iosched_backend *be, uint64_t until_ns);
	/* Any thread: makes a wait() blocked now or next return promptly.
	 * NULL for a back end that never blocks in real time.  0 or -errno. */
	int (*wake)(struct iosched_backend *be);
	uint64_t (*now)(const struct iosched_backend *be);
	/* Largest depth the back end supports. */
	unsigned (*max_depth)(const struct iosched_backend *be);
	int (*register_buffers)(struct iosched_backend *be, void *const *bufs,
				const size_t *lens, unsigned n);
	int (*inject)(struct iosched_backend *be, uint64_t latency_ns,
		      unsigned eio_every);
	void (*destroy)(struct iosched_backend *be);
};

struct iosched_backend {
	const struct iosched_backend_ops *ops;
	/* Installed by the scheduler: called once per finished request with
	 * the result (bytes or -errno) and the completion time. */
	void (*complete)(void *owner, struct iosched_req *req, int res,
			 uint64_t now_ns);
	void *owner;
	struct iosched_log log;
	/* Set by wait() when it consumed a wake; the core clears it before
	 * each wait().  Only the driving thread touches it. */
	bool woken;
};

/* ---------------------------------------------------------------- */
/* Policies                                                         */
/* ---------------------------------------------------------------- */

/*
 * What the device really does, learnt on line (iosched.c): the ratio of
 * each completion's observed service time to the model's, smoothed per
 * operation and size class, bounded so that one wild sample (a stalled
 * device, a cache hit) cannot throw the plan far off.  1.0 means the
 * profile is right.
 */
#define IOSCHED__CORR_CLASSES 10 /* 4 KiB, 8 KiB, ... 1 MiB, larger */
#define IOSCHED__CORR_MIN 0.125
#define IOSCHED__CORR_MAX 8.0

struct iosched__corr {
	double f[2][IOSCHED__CORR_CLASSES];
	uint64_t samples[2][IOSCHED__CORR_CLASSES];
};

static inline unsigned iosched__corr_class(uint32_t len)
{
	unsigned c = 0;

	for (len = (len - 1) >> 12; len && c + 1 < IOSCHED__CORR_CLASSES;
	     len >>= 1)
		c++;
	return c;
}

/* What a policy may know when it places or picks a request. */
struct iosched__ctx {
	const struct iosched_model *model;
	const struct iosched_knobs *knobs;
	const struct iosched__corr *corr; /* NULL: take the model as is */
	uint64_t now_ns;
	uint64_t head;	   /* byte where the last dispatched request ends */
	uint64_t start_ns; /* estimated time the next dispatch can start,
			      the requests in flight included */
	unsigned lanes;	   /* requests the device serves at once */
};

/* Set by a policy on a request it placed away from its natural slot (a
 * GLMD rescue); the core counts them and whether they kept the deadline. */
#define IOSCHED__F_RESCUED 0x1u

/*
 * A policy owns the queue between submit and dispatch.  insert() takes a
 * request (0, or -ENOMEM and the request is not queued); pop() removes and
 * returns the one to dispatch next, or NULL when empty.  Requests carry
 * their effective deadline in req->in.deadline_ns and their submission
 * order in req->in.seq.
 */
struct iosched__policy_ops {
	const char *name;
	int (*create)(void **state);
	void (*destroy)(void *state);
	int (*insert)(void *state, struct iosched_req *req,
		      const struct iosched__ctx *ctx);
	struct iosched_req *(*pop)(void *state,
				   const struct iosched__ctx *ctx);
};

extern const struct iosched__policy_ops iosched__policy_fifo;
extern const struct iosched__policy_ops iosched__policy_edf;
extern const struct iosched__policy_ops iosched__policy_scan;
extern const struct iosched__policy_ops iosched__policy_scan_edf;
extern const struct iosched__policy_ops iosched__policy_glmd;
extern const struct iosched__policy_ops iosched__policy_mh;

/* NULL when unknown. */
const struct iosched__policy_ops *iosched__policy_find(const char *name);

/* Moves the queue to @ops, which need not be in the table (tests run an
 * oracle policy this way).  Returns 0 or -ENOMEM. */
struct iosched;
int iosched__use_policy(struct iosched *s, const struct iosched__policy_ops *ops);

/* Per-request model cost as a queue sees it: the device time divided among
 * the lanes that serve requests at once, but never less than the transfer,
 * which the lanes share. */
static inline uint64_t iosched__cost_from_ns(const struct iosched__ctx *ctx,
					    uint64_t t,
					    const struct iosched_req *r);

static inline uint64_t iosched__cost_ns(const struct iosched__ctx *ctx,
				       uint64_t head,
				       const struct iosched_req *r)
{
	return iosched__cost_from_ns(ctx,
				     iosched_model_service_ns(ctx->model, head,
							      r->op, r->offset,
							      r->len),
				     r);
}

/* The same, from the profile's device time @t already computed. */
static inline uint64_t iosched__cost_from_ns(const struct iosched__ctx *ctx,
					    uint64_t t,
					    const struct iosched_req *r)
{
	uint64_t x;

	if (ctx->corr)
		t = (uint64_t)((double)t *
			       ctx->corr->f[r->op == IOSCHED_WRITE]
					   [iosched__corr_class(r->len)]);
	if (ctx->lanes <= 1)
		return t;
	/* The factor is learnt from requests that had the device to
	 * themselves (iosched.c, learn()): it measures latency, not the
	 * channel the lanes share, so the transfer bound stays the
	 * profile's.  Scaling it too made a device with a slow single read
	 * but a fast channel look saturated at a fraction of its load. */
	x = iosched__model_transfer_ns(ctx->model, r->op, r->len);
	return t / ctx->lanes > x ? t / ctx->lanes : x;
}

/* Whether where a request lies changes what it costs: false for a
 * solid-state device, where only deadlines can order the queue. */
static inline bool iosched__positional(const struct iosched__ctx *ctx)
{
	return !iosched_model_is_ssd(ctx->model);
}

/* ---------------------------------------------------------------- */
/* Histograms and statistics (iosched_stats.c)                      */
/* ---------------------------------------------------------------- */

/*
 * Log-linear histogram of nanosecond values: 2^bits buckets per octave
 * (bits 5: ~3 % resolution for the totals; bits 3: ~12 % for per-stream
 * figures, which exist by the thousand).  Values up to ~2^43 ns (2.4 h);
 * larger ones land in the last bucket but still set max.
 */
struct iosched__hist {
	uint64_t count;
	uint64_t max;
	unsigned bits;
	unsigned nb;
	uint32_t b[];
};

struct iosched__hist *iosched__hist_new(unsigned bits);
void iosched__hist_reset(struct iosched__hist *h);
void iosched__hist_add(struct iosched__hist *h, uint64_t v);
/* Value at quantile @q in [0,1]: the upper edge of its bucket, capped by
 * the maximum seen.  0 for an empty histogram. */
uint64_t iosched__hist_quantile(const struct iosched__hist *h, double q);

/* Counters for the totals or for one stream. */
struct iosched__counters {
	uint64_t requests, errors, deadline_requests, misses, bytes;
	struct iosched__hist *lateness;
	struct iosched__hist *latency;
};

struct iosched__stats {
	struct iosched__counters total;
	/* Open-addressed table: stream id -> index into streams[]. */
	uint32_t *ids;
	uint32_t *slots; /* UINT32_MAX = empty */
	struct iosched__counters *streams;
	size_t nstreams, cap;
	uint64_t queue_depth_max;
	uint64_t busy_ns;
	uint64_t rescues, rescues_kept;
	/* |observed - planned| / planned service time, in 1/100 of a
	 * percent, one value per completion the model learnt from. */
	struct iosched__hist *model_err;
};

int iosched__stats_init(struct iosched__stats *st);
void iosched__stats_fini(struct iosched__stats *st);
void iosched__stats_reset(struct iosched__stats *st);
/* Accounts one completed request (the request's in.* times are set).
 * Returns 0 or -ENOMEM (the totals are still counted). */
int iosched__stats_complete(struct iosched__stats *st,
			    const struct iosched_req *req, int res,
			    uint64_t now_ns);
void iosched__counters_export(const struct iosched__counters *c,
			      struct iosched_stats *out);

/* The correction the scheduler applies to the model for @op and @len
 * (1.0: none learnt); for tests and diagnostics. */
double iosched__corr_factor(const struct iosched *s, enum iosched_op op,
			    uint32_t len);
const struct iosched__counters *
iosched__stats_stream(const struct iosched__stats *st, uint32_t stream);

/* The shipped profiles, compiled in (sched/iosched_builtin.c, made from
 * sched/profiles by sched/tools/embed-profiles.awk): a profile name and its
 * text; the list ends with a NULL name.  A file of the same name in a
 * profile directory is found first (iosched_profile.c). */
struct iosched__builtin_profile {
	const char *name;
	const char *text;
};
extern const struct iosched__builtin_profile iosched__builtin_profiles[];

#endif /* IOSCHED_INT_H */
