/*
 * Shared declarations of iosched-bench: the workload description, the
 * figures a run produces, and the engines that run it (the scheduler on
 * the simulator or io_uring, the psync thread pool, the policy
 * micro-benchmark).  The load engine is also linked by the test suite, so
 * tests and the tool measure the same workload.
 */
#ifndef IOSCHED_BENCH_H
#define IOSCHED_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "iosched.h"

struct iosched__policy_ops;

#define BENCH_LIST_MAX 64		/* entries of --periods and --sizes */
#define BENCH_BG_SIZE (1u << 20)	/* bytes per background read */
#define BENCH_SHARE_GAP_S 2.0		/* a shared group's spacing, seconds */
#define BENCH_REFILL_BUFFER (1u << 20)	/* streamd's buffer_size default */
#define BENCH_REFILL_A 80.0		/* streamd's A and B, percent */
#define BENCH_REFILL_B 30.0

/* One completed request, as the trace hook sees it; times are ns since
 * the start of the run. */
struct bench_trace {
	uint32_t stream;	/* background streams follow the others */
	bool background;
	enum iosched_op op;
	uint64_t offset;
	uint32_t len;
	uint64_t submit_ns;
	uint64_t deadline_ns;	/* 0: best effort */
	uint64_t complete_ns;
	int res;
};

typedef void (*bench_trace_fn)(void *arg, const struct bench_trace *t);

enum bench_engine {
	BENCH_ENGINE_URING = 0, /* libiosched; io_uring, or the simulator for sim: */
	BENCH_ENGINE_PSYNC = 1, /* thread pool doing blocking pread */
};

struct bench_cfg {
	const char *policy;	/* libiosched policy name */
	const char *device;	/* "sim:PROFILE" or a path */
	const char *profile;	/* model for a real device; NULL: "nvme" */
	enum bench_engine engine;
	unsigned streams;
	uint32_t size;		/* bytes per request */
	double period_s;
	double duration_s;
	uint64_t seed;
	unsigned depth;		/* dispatch depth; 0: the profile's */
	unsigned threads;	/* psync pool size; 0: 64 */
	bool write;		/* writes instead of reads (real devices: never by default) */

	/*
	 * The richer workloads; all zero is the plain one above.  Lists are
	 * taken round-robin by stream index; an empty list means the single
	 * @size / @period_s.
	 */
	double periods[BENCH_LIST_MAX];
	unsigned nperiods;
	uint32_t sizes[BENCH_LIST_MAX];
	unsigned nsizes;
	double writers;		/* fraction of streams that append (0..1) */
	double write_deadline_s; /* after issue; 0: the writer's period */
	double deadline_factor;	/* read deadline = issue + this * period; 0: 1 */
	unsigned background;	/* extra best-effort sequential readers */
	unsigned share;		/* streams per shared region; 0 or 1: none */
	bool refill;		/* streamd's A/B input buffers */
	uint32_t buffer_size;	/* refill: bytes; 0: BENCH_REFILL_BUFFER */
	double a_pct, b_pct;	/* refill thresholds; 0: streamd's */
	double seek_every_s;	/* refill: mean time between seeks; 0: never */
	bench_trace_fn trace;	/* NULL: none; called on each completion */
	void *trace_arg;
	/* Test hook: run this policy instead of looking up @policy. */
	const struct iosched__policy_ops *policy_ops;
	struct iosched_log log;
};

struct bench_result {
	uint64_t requests;
	uint64_t misses;
	uint64_t errors;
	uint64_t bytes;
	double miss_rate;
	double lateness_p50_us, lateness_p99_us, lateness_max_us;
	double latency_p50_us, latency_p99_us, latency_max_us;
	double throughput_MBps;
	double cpu_s;
	double elapsed_s;	/* wall (psync/uring) or virtual (sim) seconds */
	uint64_t queue_depth_max;
	unsigned depth;		/* dispatch depth used (psync: threads) */
	/* Counted by the load itself (the uring engine only). */
	uint64_t reads, writes;	/* completed, background excluded */
	uint64_t read_misses;	/* completed after their caller deadline */
	uint64_t write_misses;
	uint64_t background_requests;
	uint64_t underflows;	/* refill: buffers that ran dry while playing */
	uint64_t seeks;
	uint64_t shed;		/* real device: arrivals dropped, each a miss */
	/* The scheduler's own account (iosched_stats). */
	uint64_t glmd_rescues, glmd_rescues_kept;
	double model_error_p50_pct, model_error_p99_pct;
};

/*
 * Runs one workload: @streams streams, each issuing one @size-byte request
 * every @period at its own sequential region of the device, with a random
 * phase, deadline = issue time + period; or the richer mix the other
 * fields of @cfg describe (bench_load.c tells how).  Returns 0 and fills
 * @out, or -errno (a log line says why).
 */
int bench_run(const struct bench_cfg *cfg, struct bench_result *out);

/* The largest request of the load (the --sizes list, else --size). */
uint32_t bench_max_size(const struct bench_cfg *c);

/* The psync engine; same contract (called by bench_run for that engine). */
int bench_run_psync(const struct bench_cfg *cfg, struct bench_result *out);

struct bench_micro_result {
	double insert_ns_mean;
	double insert_ns_p99;
	double dispatch_ns_mean;
	uint64_t iterations;
};

/*
 * Measures the policy's own cost: a queue held at @depth requests on the
 * model @profile, timing each insert and each pop.  Returns 0 or -errno.
 */
int bench_micro(const char *policy, const char *profile, unsigned depth,
		uint64_t seed, struct bench_micro_result *out);

/* Opens a real device or file for the run (O_DIRECT) and reports its size. */
int bench_open_device(const char *path, bool write, int *fd, uint64_t *size);

#endif /* IOSCHED_BENCH_H */
