/*
 * The daemon's context: what main (streamd.c) sets up and every part of
 * the running daemon shares — the configuration as started, the logs,
 * the DJMFS client, the catalog, the pump and the recorder, the media
 * workers and the thumbnail cache, admission control, the HTTP
 * listeners, the knobs in use, the live requests, and the HTTP counters
 * the metrics route reports.  What each of those parts owns (the
 * recorder's publishers and recording counters, the pump's sessions)
 * stays behind its own handle.  The HTTP layer (sd_http.h) only points
 * to it.
 */
#ifndef SD_DAEMON_H
#define SD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>

#include "sd_http.h"
#include "streamd-int.h"

struct sd_daemon {
	struct sd_config cfg;	   /* as started */
	struct sd_log *log;
	struct sd_logger logger;   /* to the error log */
	struct djmfs_client *client;
	struct sd_catalog *cat;
	struct sd_cache *cache;	   /* the interval cache, or NULL (off) */
	struct sd_pump *pump;
	struct sd_recorder *recorder;
	struct MHD_Daemon *mhd;
	uint16_t port;		   /* bound */
	struct MHD_Daemon *admin_mhd; /* admin_listen's, or NULL */
	uint16_t admin_port;	   /* bound, or 0 */
	struct sd_http_guard *guard; /* owned by sd_http.c */

	pthread_mutex_t knobs_mu;  /* serialises knob changes */
	struct sd_knobs knobs;	   /* in use (under knobs_mu) */

	/* 1 once the volume is known read-only: the embedded server booted
	 * so (its host file system was full), or the DJMFS server refused a
	 * write with -EROFS.  Never cleared: the server stays read-only
	 * until it restarts. */
	atomic_int read_only;

	pthread_mutex_t mu;	   /* reqs, stopping */
	struct sd_req *reqs;	   /* every live request */
	int stopping;

	atomic_uint_fast64_t bytes_in, bytes_out;
	atomic_uint_fast64_t http_count[SD_HTTP_CODES];
	atomic_uint_fast64_t http_other;
	atomic_uint_fast64_t http_open; /* connections now, both listeners */
	/* Connections of the main listener accepted whose first request
	 * head MHD has not read yet, and when the last was accepted
	 * (sd_now): while some wait, bodies go in slices (sd_http_slice). */
	atomic_uint_fast64_t http_fresh;
	atomic_int_fast64_t http_fresh_at;
	atomic_uint_fast64_t http_refused[SD_REFUSED_N];

	/* Clips and thumbnails (sd_route_clip.c): the media workers, the
	 * thumbnails made, and their counters for /metrics. */
	struct sd_work *work;
	struct sd_thumb_cache *thumbs;
	atomic_uint_fast64_t clips_served, clip_bytes;
	atomic_uint_fast64_t thumbs_served;
	atomic_uint_fast64_t thumbs_made, thumb_ns; /* decoded: count, time */

	/* Admission control (sd_capacity.c). */
	struct sd_admit *admit;
	char admit_profile[256];   /* the model's profile (under knobs_mu) */
	uint64_t mem_budget;	   /* bytes, set at startup */
	atomic_uint_fast64_t admit_sampled; /* sd_now() of the last sample */

	/* Retention (sd_retain.c) and the holds it honours. */
	struct sd_retain *retain;
	pthread_mutex_t holds_mu;  /* a retention pass, a change of holds */
};

/*
 * The recorder (sd_recorder.c): every encoder upload of this process on
 * its way to its recording.  sd_recorder_new borrows @d (its
 * configuration, logs, DJMFS client and catalog, and its bytes_in
 * counter), which must outlive it; 0 or -errno, *out NULL on failure.
 * sd_recorder_free takes a recorder with no publisher left (NULL: no-op).
 */
struct sd_recorder;

int sd_recorder_new(struct sd_recorder **out, struct sd_daemon *d);
void sd_recorder_free(struct sd_recorder *rc);

/*
 * An upload on its way to its recording.
 * sd_pub_start registers a publisher of @name and starts its ingest;
 * -EBUSY (this process records @name), -ESHUTDOWN or -ENOMEM leave *out
 * NULL; any other -errno (the ingest could not start) leaves *out set, to
 * be freed all the same.  @wake(@wake_arg) runs on the ingest thread and
 * must not block: the recorder has room again, or is closed.
 * sd_pub_push takes what it can of @buf (copied) and returns the count;
 * sd_pub_finish ends the upload (once; nothing may be pushed after);
 * sd_pub_closed says whether the recording is closed, with its result
 * (0 or -errno) and final counters; sd_pub_full says, for a closed
 * recording whose result is -ENOSPC, which room ran out (one of the
 * SD_FULL_ texts below; NULL for any other result); sd_pub_free ends the
 * upload if the connection went first (logged), waits for the ingest
 * and frees.
 */
int sd_pub_start(struct sd_recorder *rc, const char *name,
		 void (*wake)(void *), void *wake_arg, struct sd_pub **out);
size_t sd_pub_push(struct sd_pub *p, const void *buf, size_t len);
void sd_pub_finish(struct sd_pub *p);
int sd_pub_finished(struct sd_pub *p);
int sd_pub_closed(struct sd_pub *p, int *result, struct sd_rec_stats *st);
const char *sd_pub_full(struct sd_pub *p);

/* Why a recording found no room, as the 507 and the error log say it:
 * the host file system under the volume file, the volume's own
 * allocation units, or a volume served read-only because its host was
 * full when the server started. */
#define SD_FULL_HOST "volume full (host file system full)"
#define SD_FULL_UNITS "volume full (no free allocation unit on the volume)"
#define SD_FULL_READ_ONLY "volume full (read-only: host file system full)"
const char *sd_pub_name(const struct sd_pub *p);
/* 1 once a forced DELETE ended the upload (sd_recorder_end). */
int sd_pub_evicted(struct sd_pub *p);
void sd_pub_free(struct sd_pub *p);

/* Recording metrics. */
struct sd_recorder_stats {
	unsigned publishing;	   /* encoders publishing now */
	uint64_t recordings_total; /* publishers accepted */
	uint64_t writes, write_misses; /* closed recordings plus those now */
};

void sd_recorder_stats(struct sd_recorder *rc, struct sd_recorder_stats *st);
/* Refuses every publisher from now on (-ESHUTDOWN) and ends every upload
 * in progress as if its encoder had finished (a clean stop); the ingest
 * threads then close the recordings. */
void sd_recorder_stop_all(struct sd_recorder *rc);
/* 1 when this process records @name now.  sd_recorder_end ends that
 * upload as sd_recorder_stop_all would (what arrived is kept, the
 * connection is dropped) and waits up to @wait_s for its recording to
 * close: 0, -ENOENT (not recorded here), -ETIMEDOUT. */
int sd_recorder_live(struct sd_recorder *rc, const char *name);
/* sd_rec_retain on this process's recording of @name: 0, -ENOENT (not
 * recorded here), -errno. */
int sd_recorder_retain(struct sd_recorder *rc, const char *name,
		       uint64_t data_start, uint64_t idx_start);
int sd_recorder_end(struct sd_recorder *rc, const char *name,
		    unsigned wait_s);
/* Waits until every recording is closed or CLOCK_REALTIME reaches
 * @until; returns how many are still closing. */
unsigned sd_recorder_wait(struct sd_recorder *rc,
			  const struct timespec *until);
/*
 * Admission control (sd_capacity.c), over sd_admit.c's model.
 * sd_capacity_start builds it from d->knobs (after the pump and the
 * DJMFS client; logs the capacities), 0 or -errno; sd_capacity_stop frees
 * it; sd_capacity_knobs applies changed knobs (reloading the disk
 * profile when it changed; called with knobs_mu held).
 * sd_capacity_play / sd_capacity_publish: 1 and *@t (a ticket, NULL
 * when admission is not set up) when the session may start, else 0 with
 * the 503 (or 500) queued in *@ret.  @bps: the recording's bitrate, 0
 * when unknown; @share: what of a player's bytes is expected from the
 * disk (the rest from the cache).  sd_capacity_release gives a ticket back (NULL: no-op).
 * sd_capacity_upload_rate tells the model an upload's measured rate
 * (@bytes since @since), at most once a second (*@next).
 * sd_capacity_sample takes a measurement unless one is recent.
 */
int sd_capacity_start(struct sd_daemon *d);
void sd_capacity_stop(struct sd_daemon *d);
void sd_capacity_knobs(struct sd_daemon *d, const struct sd_knobs *k);
int sd_capacity_play(struct sd_req *r, uint64_t bps, double share,
		     struct sd_admit_ticket **t, enum MHD_Result *ret);
int sd_capacity_publish(struct sd_req *r, struct sd_admit_ticket **t,
			enum MHD_Result *ret);
void sd_capacity_release(struct sd_daemon *d, struct sd_admit_ticket *t);
/* A 503 for a refusal that is not the model's (the queue of session
 * opens is full): Retry-After @retry_s and the JSON body admission's
 * refusals have ("error" @msg, "status", "reason" @reason,
 * "retry_after"), without the model's figures. */
enum MHD_Result sd_capacity_busy(struct sd_req *r, const char *reason,
				 const char *msg, unsigned retry_s);
void sd_capacity_upload_rate(struct sd_daemon *d, struct sd_admit_ticket *t,
			     uint64_t bytes, int64_t since, int64_t *next);
void sd_capacity_sample(struct sd_daemon *d);

/*
 * Retention (sd_retain.c): a thread that trims the oldest data of the
 * recordings by the retention knobs, their overrides and holds, and
 * volume_reserve.  Its counters, for /metrics: trims made, bytes and
 * units trimmed, failures; and as of the last pass the bytes holds keep
 * beyond the rules, the volume's size and free bytes (deferred ones
 * included), the free units it aims at, and the units those still
 * lack after every cut it could make.
 */
/* Allocation units a recorder reserves at once (the DJMFS client's
 * reserve_aus). */
#define SD_RESERVE_AUS 4

struct sd_retain_stats {
	uint64_t passes, trims, trimmed_bytes, trimmed_units, errors;
	uint64_t pinned_bytes, volume_bytes, free_bytes, reserve_short_units;
	uint64_t reserve_units; /* the free units aimed at: the reserve and
				   the recorders' headroom */
};
int sd_retain_start(struct sd_daemon *d);
void sd_retain_stop(struct sd_daemon *d);
void sd_retain_stats(struct sd_daemon *d, struct sd_retain_stats *out);

/* Knobs in use and a change of them (sd_route_admin.c). */
int sd_apply_knobs(struct sd_daemon *d, const struct sd_knobs *k);

/*
 * Protected ranges of a recording (sd_holds.c), kept in DJMFS beside it
 * in the file NAME SD_HOLDS_SUFFIX.  sd_holds_load gives them sorted by
 * start (none: n 0); add gives the new hold its id; remove answers
 * -ENOENT for an unknown id; drop removes them all (the recording is
 * going); sd_holds_first_start is the earliest start, INT64_MAX with
 * none.  All block on the DJMFS server.
 */
#define SD_HOLDS_SUFFIX "~holds"
#define SD_HOLDS_MAX 256
#define SD_HOLD_LABEL_MAX 127

struct sd_hold {
	uint32_t id;
	int64_t start_ns, end_ns; /* wall clock, start <= end */
	int64_t created_ns;
	char label[SD_HOLD_LABEL_MAX + 1];
};

struct sd_holds {
	struct sd_hold *h;
	size_t n;
	uint32_t next_id;
};

int sd_holds_load(struct djmfs_client *c, const char *name,
		  struct sd_holds *out);
void sd_holds_free(struct sd_holds *hs);
int sd_holds_add(struct djmfs_client *c, const char *name, struct sd_hold *h);
int sd_holds_remove(struct djmfs_client *c, const char *name, uint32_t id);
int sd_holds_drop(struct djmfs_client *c, const char *name);
int64_t sd_holds_first_start(const struct sd_holds *hs);
/* {"name", "holds": [...], "held_bytes"} for @s (sd_route_manage.c);
 * NULL when they cannot be read. */
json_t *sd_holds_json(struct sd_daemon *d, struct sd_stream *s);

#endif /* SD_DAEMON_H */
