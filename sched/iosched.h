/*
 * libiosched: a userspace, deadline-aware block I/O scheduler.
 *
 * Callers hand the scheduler read and write requests that carry a deadline;
 * a policy (fifo, edf, scan, scan-edf, glmd or mh) decides the order in which
 * they reach the device, and a back end (io_uring with O_DIRECT, or a
 * discrete-event simulated disk) carries them out.  The policy keeps the
 * device queue short (the dispatch depth) so that the order is the
 * policy's, not the device's.  A disk service-time model, loaded from a
 * profile, tells the policies what each request will cost.
 *
 * Conventions: functions return 0 (or a count) on success and -errno on
 * failure; constructors fill an out-parameter.  The library never prints
 * and never exits: diagnostics go through the caller's log hook.
 *
 * Thread-safety: a scheduler handle and everything attached to it is
 * driven by one thread at a time; the one exception is iosched_wake(),
 * which any thread may call to interrupt that thread's wait.  Models are immutable once loaded and
 * may be shared by any number of threads and handles.
 */
#ifndef IOSCHED_H
#define IOSCHED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

enum iosched_log_level {
	IOSCHED_LOG_ERROR = 0,
	IOSCHED_LOG_WARN = 1,
	IOSCHED_LOG_INFO = 2,
	IOSCHED_LOG_DEBUG = 3,
};

/* Receives one complete line (no trailing newline).  The message buffer is
 * only valid during the call. */
typedef void (*iosched_log_fn)(void *arg, enum iosched_log_level level,
			       const char *msg);

struct iosched_log {
	iosched_log_fn fn; /* NULL: diagnostics are dropped */
	void *arg;
};

/* ------------------------------------------------------------------ */
/* Disk service-time model                                             */
/* ------------------------------------------------------------------ */

enum iosched_op {
	IOSCHED_READ = 0,
	IOSCHED_WRITE = 1,
};

struct iosched_model;

/*
 * Loads a profile.  @name_or_path is either a path (it contains a '/' or
 * ends in ".profile") or the name of a shipped profile ("hdd-7200",
 * "ssd-sata", "nvme"), looked up in $IOSCHED_PROFILE_DIR and then in the
 * installed profile directory.  Returns 0 and fills *out (caller frees with
 * iosched_model_free), -ENOENT when no such profile exists (a log line
 * names the places searched), -EINVAL when the file is malformed or over
 * 64 KiB (a log line names the file, line and key), -ENOMEM, or the errno
 * of opening or reading the file (-EACCES, -EISDIR, ...).
 */
int iosched_model_load(struct iosched_model **out, const char *name_or_path,
		       const struct iosched_log *log);

/*
 * Parses profile text ("key = value" lines, '#' comments).  @origin names
 * the text in log lines.  Same returns as iosched_model_load.
 */
int iosched_model_parse(struct iosched_model **out, const char *text,
			size_t len, const char *origin,
			const struct iosched_log *log);

/* NULL is a no-op. */
void iosched_model_free(struct iosched_model *m);

/*
 * Expected service time, in ns, of a request of @len bytes at byte
 * @offset when the previous request left the device at byte @head (the end
 * of the previous request).  For a disk: seek + half a revolution + media
 * transfer + bus transfer + command overhead, with seek and rotation
 * skipped when @offset == @head (a sequential continuation).  For a
 * solid-state device: command overhead + latency + len / bandwidth.
 */
uint64_t iosched_model_service_ns(const struct iosched_model *m,
				  uint64_t head, enum iosched_op op,
				  uint64_t offset, uint32_t len);

/* Seek time in ns between two cylinders (0 for a solid-state device). */
uint64_t iosched_model_seek_ns(const struct iosched_model *m,
			       uint64_t from_cyl, uint64_t to_cyl);

/* Cylinder holding byte @offset (0 for a solid-state device). */
uint64_t iosched_model_cylinder(const struct iosched_model *m,
				uint64_t offset);

const char *iosched_model_name(const struct iosched_model *m);
int iosched_model_is_ssd(const struct iosched_model *m);
uint64_t iosched_model_capacity(const struct iosched_model *m);
/* Requests the device serves at once (1 for a disk). */
unsigned iosched_model_parallelism(const struct iosched_model *m);
/* The dispatch depth the profile recommends. */
unsigned iosched_model_depth(const struct iosched_model *m);

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

struct iosched_req;

/*
 * Completion: @res is the byte count transferred, or -errno.  Called from
 * iosched_run()/iosched_poll()/iosched_drain() on the driving thread.  The
 * request belongs to the caller again when the callback runs; it may be
 * freed or resubmitted from inside the callback.
 */
typedef void (*iosched_done_fn)(struct iosched_req *req, int res);

/* Fields the scheduler owns while a request is queued or in flight. */
struct iosched_req_internal {
	uint64_t submit_ns;
	uint64_t dispatch_ns;
	uint64_t complete_ns;
	uint64_t deadline_ns;	  /* effective deadline (best effort gets one) */
	uint64_t est_service_ns;  /* the model's cost, as the policy saw it */
	uint64_t model_ns;	  /* the profile's own device time from the
				     head at dispatch (learning) */
	uint32_t busy_at_dispatch; /* requests in flight when it started */
	uint64_t seq;		  /* submission order, for stable ties */
	struct iosched_req *next; /* policy-private links */
	struct iosched_req *prev;
	uint64_t key;		  /* policy-private */
	uint32_t slot;		  /* policy-private */
	uint32_t flags;
};

struct iosched_req {
	/* Filled by the caller before iosched_submit(). */
	enum iosched_op op;
	int fd;
	uint64_t offset; /* device/file byte offset */
	uint32_t len;
	void *buf;
	uint64_t deadline_ns; /* scheduler clock, ns; 0 = best effort */
	uint32_t stream;      /* caller's stream id, for statistics */
	iosched_done_fn done;
	void *user;

	/* Private to the scheduler; zeroed by iosched_submit(). */
	struct iosched_req_internal in;
};

/* ------------------------------------------------------------------ */
/* Back ends                                                           */
/* ------------------------------------------------------------------ */

struct iosched_backend;

/*
 * io_uring back end.  Files are expected to be opened with O_DIRECT:
 * offsets, lengths and buffers must be multiples of @align (0 = 4096).
 * @entries sizes the ring (it bounds the dispatch depth).
 * Returns 0, -ENOSYS when io_uring is unavailable, or -errno.
 */
int iosched_backend_uring_new(struct iosched_backend **out, unsigned entries,
			      unsigned align, const struct iosched_log *log);

/*
 * Simulated device: a discrete-event disk driven by @model with a virtual
 * clock that starts at @start_ns.  Rotational position is drawn from a
 * generator seeded with @seed, so a run is deterministic for a seed.  The
 * back end borrows @model, which must outlive it.  Requests need a valid
 * offset range (within the model's capacity, 512-byte aligned); their fd
 * and buffer are not touched.
 */
int iosched_backend_sim_new(struct iosched_backend **out,
			    const struct iosched_model *model,
			    uint64_t start_ns, uint64_t seed,
			    const struct iosched_log *log);

/*
 * Test-only fault injection on a back end: every request gets @latency_ns
 * more service time, and one in @eio_every (0 = never) fails with -EIO.
 * Returns 0 or -ENOTSUP.
 */
int iosched_backend_inject(struct iosched_backend *be, uint64_t latency_ns,
			   unsigned eio_every);

/* NULL is a no-op.  Only for a back end never given to iosched_new(). */
void iosched_backend_free(struct iosched_backend *be);

/* ------------------------------------------------------------------ */
/* Scheduler                                                           */
/* ------------------------------------------------------------------ */

struct iosched;

/* Run-time knobs; see iosched_get_knobs()/iosched_set_knobs(). */
struct iosched_knobs {
	unsigned depth;		      /* max requests in flight at the device */
	uint64_t best_effort_ns;      /* deadline given to deadline-0 requests */
	uint64_t scan_edf_window_ns;  /* scan-edf: deadlines this close share a batch */
	unsigned glmd_runs;	      /* glmd: SCAN runs searched for a slot */
	unsigned glmd_exact_max;      /* glmd: queue length up to which every
					 position is tried */
	uint64_t glmd_margin_ns;      /* glmd: slack kept in reserve for the
					 model's error (rotation, jitter) */
	uint64_t glmd_miss_cost_ns;   /* glmd: service time one missed deadline
					 is worth; 0 = the request's own cost,
					 UINT64_MAX = misses always first */
	unsigned glmd_replan;	      /* glmd: 1 (default): at each dispatch, place
					 again one entry now expected late that
					 could still keep its deadline */
	unsigned model_learn;	      /* 1 (default): correct the model on line
					 from what completions take; 0: plan
					 with the profile as written */
};

struct iosched_config {
	const char *policy;		   /* NULL: "glmd" */
	const struct iosched_model *model; /* borrowed; must outlive the handle */
	const struct iosched_knobs *knobs; /* NULL: defaults */
	struct iosched_log log;
};

/*
 * Creates a scheduler.  Takes ownership of @be (also on failure).  A knob
 * depth of 0 means the profile's; one beyond what the back end takes is
 * lowered to its limit with a warning.  Returns 0, -EINVAL (unknown
 * policy, no model, bad knob: a log line says which), or -ENOMEM.
 */
int iosched_new(struct iosched **out, const struct iosched_config *cfg,
		struct iosched_backend *be);

/* Frees the handle and its back end.  Requests still queued or in flight
 * are abandoned without callbacks; on io_uring the kernel may still write
 * into the buffers of in-flight reads after this returns, so drain first
 * (iosched_drain) before freeing buffers.  NULL is a no-op. */
void iosched_free(struct iosched *s);

/*
 * Queues @req (the scheduler borrows it until its callback runs).  Returns
 * 0, or -EINVAL for a bad request (zero length, misaligned for the back
 * end, outside the device, no callback), in which case the callback is
 * never called and a log line says why.
 */
int iosched_submit(struct iosched *s, struct iosched_req *req);

/* The scheduler's clock: CLOCK_MONOTONIC for io_uring, virtual for the
 * simulator.  Deadlines are on this clock. */
uint64_t iosched_now(const struct iosched *s);

/*
 * Dispatches and completes requests until the clock reaches @until_ns
 * (blocking on io_uring; advancing virtual time on the simulator), or
 * until a wait ends because of iosched_wake().  With @until_ns
 * UINT64_MAX there is no deadline: the run returns after the first wait
 * that delivered completions, after a wake (possibly with 0
 * completions), or at once with 0 when nothing could ever end the wait
 * (nothing in flight on the simulator).  On io_uring it never returns
 * otherwise: with nothing submitted it sleeps until a wake.  Returns the
 * number of completions, or -errno from the back end.
 */
int iosched_run(struct iosched *s, uint64_t until_ns);

/*
 * Any thread, at any time between iosched_new() and iosched_free():
 * makes the run or drain wait blocked now on @s return promptly, or, if
 * none is blocked, the next one (a wake is remembered until a wait
 * consumes it; several wakes before that count as one).  Used to hand the
 * driving thread new work without a timer.  A drain goes on draining
 * after a wake.  No-op on the simulator, whose waits never block in real
 * time.  Returns 0 or -errno.
 */
int iosched_wake(struct iosched *s);

/* Completes whatever is already done, without blocking or advancing the
 * virtual clock.  Returns the number of completions or -errno. */
int iosched_poll(struct iosched *s);

/* Runs until nothing is queued or in flight.  Returns completions or -errno. */
int iosched_drain(struct iosched *s);

/* Requests waiting in the policy queue / at the device. */
size_t iosched_queued(const struct iosched *s);
unsigned iosched_inflight(const struct iosched *s);

/* Policy at run time: queued requests move to the new policy in the order
 * the old one would have served them.  Returns 0 or -EINVAL. */
int iosched_set_policy(struct iosched *s, const char *name);
const char *iosched_policy(const struct iosched *s);

/* Comma-separated list of policy names, for help texts. */
const char *iosched_policies(void);

void iosched_get_knobs(const struct iosched *s, struct iosched_knobs *out);
/* Returns 0 or -EINVAL (depth 0, or larger than the back end allows). */
int iosched_set_knobs(struct iosched *s, const struct iosched_knobs *k);
void iosched_default_knobs(struct iosched_knobs *out);

/* Swaps the model the policies consult (borrowed).  Returns 0 or -EINVAL. */
int iosched_set_model(struct iosched *s, const struct iosched_model *m);

/*
 * Registers buffers with the back end so reads and writes into them skip
 * per-request page pinning (io_uring fixed buffers).  Returns 0, -ENOTSUP
 * for a back end without the notion, or -errno.
 */
int iosched_register_buffers(struct iosched *s, void *const *bufs,
			     const size_t *lens, unsigned n);

/* ------------------------------------------------------------------ */
/* Statistics                                                          */
/* ------------------------------------------------------------------ */

struct iosched_stats {
	uint64_t requests;	 /* completed */
	uint64_t errors;	 /* completed with a negative result */
	uint64_t deadline_requests; /* completed with a caller deadline */
	uint64_t misses;	 /* completed after their caller deadline */
	uint64_t bytes;
	uint64_t lateness_p50_ns; /* over requests with a deadline; early = 0 */
	uint64_t lateness_p99_ns;
	uint64_t lateness_max_ns;
	uint64_t latency_p50_ns; /* submit to completion */
	uint64_t latency_p99_ns;
	uint64_t latency_max_ns;
	uint64_t busy_ns;	 /* time with at least one request in flight */
	uint64_t queue_depth;	 /* now */
	uint64_t queue_depth_max;
	/* glmd: requests placed away from their SCAN slot to save a
	 * deadline, and how many of those then met it. */
	uint64_t glmd_rescues;
	uint64_t glmd_rescues_kept;
	/* How far completions strayed from the planner's estimate (the
	 * corrected model): |observed - planned| / planned, in percent, over
	 * the completions the model could be checked against. */
	double model_error_p50_pct;
	double model_error_p99_pct;
	uint64_t model_samples;
};

/* Totals since creation or the last reset. */
void iosched_stats_get(const struct iosched *s, struct iosched_stats *out);
/* One stream's figures; returns 0, or -ENOENT if the stream was never seen. */
int iosched_stream_stats(const struct iosched *s, uint32_t stream,
			 struct iosched_stats *out);
void iosched_stats_reset(struct iosched *s);

#ifdef __cplusplus
}
#endif

#endif /* IOSCHED_H */
