/*
 * The daemon's context: what main (streamd.c) sets up and every part of
 * the running daemon shares — the configuration as started, the logs,
 * the DJMFS client, the catalog and the pump, the HTTP listeners, the
 * knobs in use, the live requests and publishers, and the counters the
 * metrics route reports.  The HTTP layer (sd_http.h) only points to it.
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
	struct sd_pump *pump;
	struct MHD_Daemon *mhd;
	uint16_t port;		   /* bound */
	struct MHD_Daemon *admin_mhd; /* admin_listen's, or NULL */
	uint16_t admin_port;	   /* bound, or 0 */
	struct sd_http_guard *guard; /* owned by sd_http.c */

	pthread_mutex_t knobs_mu;  /* serialises knob changes */
	struct sd_knobs knobs;	   /* in use (under knobs_mu) */

	pthread_mutex_t mu;	   /* the lists below, stopping */
	pthread_cond_t cv;	   /* a recording ended */
	struct sd_req *reqs;	   /* every live request */
	struct sd_pub *pubs;	   /* publishers now (sd_recorder.c) */
	unsigned publishing;	   /* length of pubs */
	int stopping;

	atomic_uint_fast64_t bytes_in, bytes_out;
	atomic_uint_fast64_t recordings_total;
	atomic_uint_fast64_t rec_writes, rec_write_misses; /* closed recs */
	atomic_uint_fast64_t http_count[SD_HTTP_CODES];
	atomic_uint_fast64_t http_other;
	atomic_uint_fast64_t http_open; /* connections now, both listeners */
	atomic_uint_fast64_t http_refused[SD_REFUSED_N];
};

/*
 * The recorder (sd_recorder.c): an upload on its way to its recording.
 * sd_pub_start registers a publisher of @name and starts its ingest;
 * -EBUSY (this process records @name), -ESHUTDOWN or -ENOMEM leave *out
 * NULL; any other -errno (the ingest could not start) leaves *out set, to
 * be freed all the same.  @wake(@wake_arg) runs on the ingest thread and
 * must not block: the recorder has room again, or is closed.
 * sd_pub_push takes what it can of @buf (copied) and returns the count;
 * sd_pub_finish ends the upload (once; nothing may be pushed after);
 * sd_pub_closed says whether the recording is closed, with its result
 * (0 or -errno) and final counters; sd_pub_free ends the upload if the
 * connection went first (logged), waits for the ingest and frees.
 */
int sd_pub_start(struct sd_daemon *d, const char *name, void (*wake)(void *),
		 void *wake_arg, struct sd_pub **out);
size_t sd_pub_push(struct sd_pub *p, const void *buf, size_t len);
void sd_pub_finish(struct sd_pub *p);
int sd_pub_finished(struct sd_pub *p);
int sd_pub_closed(struct sd_pub *p, int *result, struct sd_rec_stats *st);
const char *sd_pub_name(const struct sd_pub *p);
void sd_pub_free(struct sd_pub *p);

/* Recording metrics: closed recordings plus the publishers now
 * (sd_recorder.c). */
void sd_record_totals(struct sd_daemon *d, uint64_t *writes,
		      uint64_t *misses);
/* Ends every upload in progress as if its encoder had finished (a clean
 * stop); the ingest threads then close the recordings. */
void sd_record_stop_all(struct sd_daemon *d);
/* Knobs in use and a change of them (sd_route_admin.c). */
int sd_apply_knobs(struct sd_daemon *d, const struct sd_knobs *k);

#endif /* SD_DAEMON_H */
