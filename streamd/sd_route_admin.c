/*
 * The operator's routes: the run-time knobs (GET/PUT /admin/config, JSON,
 * behind admin_token when one is set), the Prometheus metrics (GET
 * /metrics, admission's among them) and a plain-text home page that says how to record and watch.
 * A knob change reaches the pump (buffers, period, read size) and the
 * DJMFS client's scheduler (policy, dispatch depth, model profile) under
 * one lock, so concurrent PUTs cannot interleave halves of two changes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "sd_daemon.h"

#define ADMIN_BODY_MAX 65536

/* ------------------------------------------------------------------ */
/* Knobs                                                               */
/* ------------------------------------------------------------------ */

int sd_apply_knobs(struct sd_daemon *d, const struct sd_knobs *k)
{
	struct sd_knobs *cur = &d->knobs;
	int err = 0;

	pthread_mutex_lock(&d->knobs_mu);
	if (strcmp(k->policy, cur->policy) != 0 ||
	    strcmp(k->profile, cur->profile) != 0 || k->depth != cur->depth)
		err = djmfs_set_io(d->client,
				   strcmp(k->policy, cur->policy) ? k->policy
								  : NULL,
				   strcmp(k->profile, cur->profile) ? k->profile
								    : NULL,
				   k->depth != cur->depth ? k->depth : 0);
	if (err == 0) {
		sd_pump_set_knobs(d->pump, k);
		sd_capacity_knobs(d, k);
		*cur = *k;
	}
	pthread_mutex_unlock(&d->knobs_mu);
	if (err == 0)
		sd_log_error(d->log, SD_LOG_INFO, "knobs: A %.1f%% B %.1f%% "
			     "period %.3f s read %u buffer %u policy %s depth %u "
			     "profile %s burst %.3f s cors_origins '%s' "
			     "admission %s ceiling %.2f max_bandwidth %" PRIu64
			     " clip_max_duration %.0f s",
			     k->a_pct, k->b_pct, (double)k->period_ns / 1e9,
			     k->read_size, k->buffer_size, k->policy, k->depth,
			     k->profile, (double)k->burst_ns / 1e9,
			     k->cors_origins, k->admission,
			     k->admission_ceiling, k->max_bandwidth,
			     (double)k->clip_max_duration_ns / 1e9);
	return err;
}

static enum MHD_Result config_get(struct sd_req *r)
{
	struct sd_knobs k;
	char *text;
	enum MHD_Result ret;

	pthread_mutex_lock(&r->d->knobs_mu);
	k = r->d->knobs;
	pthread_mutex_unlock(&r->d->knobs_mu);
	text = sd_knobs_to_json(&k);
	if (!text)
		return MHD_NO;
	ret = sd_reply_text(r, 200, "application/json", text, strlen(text));
	free(text);
	return ret;
}

static enum MHD_Result config_put(struct sd_req *r, struct sd_body *b)
{
	struct sd_knobs cur, next;
	char err[256];
	int rc;

	if (b->too_big)
		return sd_reply_error(r, 413, "body over %d bytes",
				      ADMIN_BODY_MAX);
	pthread_mutex_lock(&r->d->knobs_mu);
	cur = r->d->knobs;
	pthread_mutex_unlock(&r->d->knobs_mu);
	if (sd_knobs_from_json(&cur, b->p ? b->p : "", b->len, &next, err,
			       sizeof(err)) < 0)
		return sd_reply_error(r, 400, "%s", err);
	rc = sd_apply_knobs(r->d, &next);
	if (rc < 0)
		return sd_reply_error(r, 400, "scheduler refused the change: "
				      "%s", strerror(-rc));
	return config_get(r);
}

enum MHD_Result sd_route_config(struct sd_req *r, const char *upload,
				size_t *upload_size)
{
	struct sd_body *b;
	int done;

	if (r->calls == 1) {
		if (!sd_req_token_ok(r, r->d->cfg.admin_token))
			return sd_reply_error(r, 401, "the admin endpoint needs "
					      "the admin token");
		if (strcmp(r->method, "PUT") != 0)
			return config_get(r);
	}
	if (r->status) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (!(b = sd_req_body(r, upload, upload_size, ADMIN_BODY_MAX, &done)))
		return MHD_NO;
	return done ? config_put(r, b) : MHD_YES;
}

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

struct text {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL,
			      t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || t->oom)
			return;
		if (t->p && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 8192;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(t->p, cap);
		if (!p) {
			t->oom = 1;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
}

static void metric(struct text *t, const char *name, const char *type,
		   const char *help, double v)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
	    type, name, v);
}

/* Clips and thumbnails (sd_route_clip.c).  The thumbnails' cost is a
 * summary of the decoded ones (a cache hit costs a lookup): the seconds
 * a media worker spent from opening the session to the JPEG. */
static void media_metrics(struct text *t, struct sd_daemon *d)
{
	struct sd_thumb_cache_stats ts;

	sd_thumb_cache_stats(d->thumbs, &ts);
	metric(t, "streamd_clips_served_total", "counter",
	       "MP4 clips answered (200).",
	       (double)atomic_load(&d->clips_served));
	metric(t, "streamd_clip_bytes_total", "counter",
	       "Bytes of the MP4 clips answered.",
	       (double)atomic_load(&d->clip_bytes));
	metric(t, "streamd_thumbnails_served_total", "counter",
	       "JPEG thumbnails answered (200), cache hits included.",
	       (double)atomic_load(&d->thumbs_served));
	metric(t, "streamd_thumbnail_cache_hits_total", "counter",
	       "Thumbnails the thumbnail cache answered without a decode.",
	       (double)ts.hits);
	metric(t, "streamd_thumbnail_cache_entries", "gauge",
	       "Thumbnails the thumbnail cache holds.", (double)ts.entries);
	put(t, "# HELP streamd_thumbnail_seconds Time a media worker took to "
	    "make a thumbnail (read, decode, scale, encode).\n"
	    "# TYPE streamd_thumbnail_seconds summary\n"
	    "streamd_thumbnail_seconds_sum %.9f\n"
	    "streamd_thumbnail_seconds_count %" PRIu64 "\n",
	    (double)atomic_load(&d->thumb_ns) / 1e9,
	    (uint64_t)atomic_load(&d->thumbs_made));
}

static void admission_metrics(struct text *t, struct sd_daemon *d)
{
	struct sd_admit_stats st;

	sd_capacity_sample(d);
	sd_admit_stats(d->admit, sd_now(), &st);
	metric(t, "streamd_admitted_total", "counter",
	       "Player sessions and publishers admitted (a grace takeover "
	       "included).", (double)st.admitted_total);
	put(t, "# HELP streamd_admission_refused_total Player sessions and "
	    "publishers refused with 503, by the resource that would not "
	    "hold.\n# TYPE streamd_admission_refused_total counter\n");
	for (int i = 0; i < SD_ADMIT_N; i++)
		put(t, "streamd_admission_refused_total{reason=\"%s\"} %" PRIu64
		    "\n", sd_admit_res_names[i], st.refused[i]);
}

static void retention_metrics(struct text *t, struct sd_daemon *d)
{
	struct sd_retain_stats st;

	sd_retain_stats(d, &st);
	metric(t, "streamd_retention_trims_total", "counter",
	       "Recording heads trimmed by retention.", (double)st.trims);
	metric(t, "streamd_trimmed_bytes_total", "counter",
	       "Recorded bytes retention trimmed.", (double)st.trimmed_bytes);
	metric(t, "streamd_trimmed_units_total", "counter",
	       "Volume allocation units retention's trims freed.",
	       (double)st.trimmed_units);
	metric(t, "streamd_retention_errors_total", "counter",
	       "Trims that failed (retried next pass).", (double)st.errors);
	metric(t, "streamd_held_bytes", "gauge",
	       "Bytes holds keep that the retention rules would have "
	       "trimmed, as of the last pass.", (double)st.pinned_bytes);
	metric(t, "streamd_volume_bytes", "gauge", "The volume's size.",
	       (double)st.volume_bytes);
	metric(t, "streamd_volume_free_bytes", "gauge",
	       "Free bytes of the volume (units readers still hold "
	       "included), as of the last retention pass.",
	       (double)st.free_bytes);
	metric(t, "streamd_volume_reserve_units", "gauge",
	       "Free units retention keeps: volume_reserve plus what the "
	       "recorders write before trimmed units come back.",
	       (double)st.reserve_units);
	metric(t, "streamd_volume_reserve_short_units", "gauge",
	       "Units volume_reserve lacked after every cut retention could "
	       "make (holds, last GOPs).", (double)st.reserve_short_units);
}

static void http_metrics(struct text *t, struct sd_daemon *d)
{
	put(t, "# HELP streamd_http_requests_total HTTP responses by status."
	    "\n# TYPE streamd_http_requests_total counter\n");
	for (unsigned i = 0; i < SD_HTTP_CODES; i++)
		put(t, "streamd_http_requests_total{code=\"%u\"} %" PRIu64 "\n",
		    sd_http_codes[i],
		    (uint64_t)atomic_load(&d->http_count[i]));
	put(t, "streamd_http_requests_total{code=\"other\"} %" PRIu64 "\n",
	    (uint64_t)atomic_load(&d->http_other));
	metric(t, "streamd_http_connections", "gauge",
	       "HTTP connections open now (main and admin listeners).",
	       (double)atomic_load(&d->http_open));
	put(t, "# HELP streamd_http_refused_total HTTP connections refused at "
	    "accept or closed by a limit, by reason.\n"
	    "# TYPE streamd_http_refused_total counter\n");
	for (unsigned i = 0; i < SD_REFUSED_N; i++)
		put(t, "streamd_http_refused_total{reason=\"%s\"} %" PRIu64 "\n",
		    sd_http_refusal_names[i],
		    (uint64_t)atomic_load(&d->http_refused[i]));
}

/* Open descriptors: entries of /proc/self/fd, less the one reading it. */
static long open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;
}

/*
 * The process metrics Prometheus client libraries export under these
 * standard names, so a soak run or a dashboard sees RSS, descriptors and
 * CPU grow (or not) without access to the host.
 */
static void process_metrics(struct text *t)
{
	long page = sysconf(_SC_PAGESIZE), fds = open_fds();
	unsigned long long size = 0, resident = 0;
	struct rusage ru;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%llu %llu", &size, &resident) != 2)
			size = resident = 0;
		fclose(f);
	}
	if (resident)
		metric(t, "process_resident_memory_bytes", "gauge",
		       "Resident memory size in bytes.",
		       (double)resident * (double)page);
	if (size)
		metric(t, "process_virtual_memory_bytes", "gauge",
		       "Virtual memory size in bytes.",
		       (double)size * (double)page);
	if (fds >= 0)
		metric(t, "process_open_fds", "gauge",
		       "Number of open file descriptors.", (double)fds);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		metric(t, "process_cpu_seconds_total", "counter",
		       "User and system CPU time spent in seconds.",
		       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			       (double)(ru.ru_utime.tv_usec +
					ru.ru_stime.tv_usec) / 1e6);
}

/* Copies of the DJMFS metadata the server rewrote from a good copy,
 * asked of the server (nothing when it does not answer). */
static void djmfs_repair_metrics(struct text *t, struct sd_daemon *d)
{
	struct djmfs_server_stats st;

	if (djmfs_server_stats(d->client, &st) < 0)
		return;
	put(t, "# HELP streamd_djmfs_metadata_repairs_total Copies of the "
	    "DJMFS metadata rewritten from the other copy.\n"
	    "# TYPE streamd_djmfs_metadata_repairs_total counter\n");
	put(t, "streamd_djmfs_metadata_repairs_total{region=\"journal\"} %"
	    PRIu64 "\n", st.meta_repairs_journal);
	put(t, "streamd_djmfs_metadata_repairs_total{region=\"checkpoint\"} %"
	    PRIu64 "\n", st.meta_repairs_checkpoint);
	put(t, "streamd_djmfs_metadata_repairs_total{region=\"superblock\"} %"
	    PRIu64 "\n", st.meta_repairs_superblock);
}

enum MHD_Result sd_route_metrics(struct sd_req *r, const char *upload,
				 size_t *upload_size)
{
	struct sd_daemon *d = r->d;
	struct sd_pump_stats ps;
	struct djmfs_io_stats io;
	struct djmfs_client_stats cs;
	struct sd_recorder_stats rs;
	struct sd_cache_stats cst;
	struct text t = { 0 };
	enum MHD_Result ret;

	(void)upload;
	(void)upload_size;
	sd_pump_stats(d->pump, &ps);
	djmfs_io_stats(d->client, &io);
	djmfs_client_stats(d->client, &cs);
	sd_recorder_stats(d->recorder, &rs);
	sd_cache_stats(d->cache, &cst);
	metric(&t, "streamd_recordings", "gauge", "Encoders publishing now.",
	       rs.publishing);
	metric(&t, "streamd_recordings_total", "counter",
	       "Publish requests accepted.", (double)rs.recordings_total);
	metric(&t, "streamd_sessions", "gauge", "Player sessions open now.",
	       (double)ps.sessions);
	metric(&t, "streamd_sessions_total", "counter",
	       "Player sessions opened.", (double)ps.sessions_total);
	metric(&t, "streamd_buffer_bytes", "gauge",
	       "Bytes queued in the players' input buffers.",
	       (double)ps.buffered_bytes);
	metric(&t, "streamd_buffer_private_bytes", "gauge",
	       "Memory of the players' own read buffers; the rest of what "
	       "they queue is the cache's blocks, shared.",
	       (double)ps.private_bytes);
	metric(&t, "streamd_bytes_in_total", "counter",
	       "Bytes received from encoders.",
	       (double)atomic_load(&d->bytes_in));
	metric(&t, "streamd_bytes_out_total", "counter",
	       "Body bytes sent to players.",
	       (double)atomic_load(&d->bytes_out));
	metric(&t, "streamd_session_reads_total", "counter",
	       "Input-buffer reads completed.", (double)ps.sum.reads);
	metric(&t, "streamd_session_read_misses_total", "counter",
	       "Input-buffer reads completed after their deadline.",
	       (double)ps.sum.misses);
	metric(&t, "streamd_underflows_total", "counter",
	       "Times a player found its buffer empty while the recording "
	       "held more.", (double)ps.sum.underflows);
	metric(&t, "streamd_session_lateness_max_seconds", "gauge",
	       "Largest lateness of a late input-buffer read.",
	       (double)ps.lateness_max_ns / 1e9);
	metric(&t, "streamd_session_lateness_p99_seconds", "gauge",
	       "99th percentile lateness over recent late reads.",
	       (double)ps.lateness_p99_ns / 1e9);
	metric(&t, "streamd_cache_hits_total", "counter",
	       "Session reads the interval cache served from memory (reads, "
	       "each up to read_size; bytes: streamd_cache_hit_bytes_total).",
	       (double)cst.hits);
	metric(&t, "streamd_cache_hit_bytes_total", "counter",
	       "Bytes the interval cache served to sessions.",
	       (double)cst.hit_bytes);
	metric(&t, "streamd_cache_misses_total", "counter",
	       "Session reads the interval cache did not hold, which went "
	       "to the disk (reads; bytes: streamd_disk_read_bytes_total).",
	       (double)cst.misses);
	metric(&t, "streamd_cache_bytes", "gauge",
	       "Memory the interval cache holds (whole 64 KiB blocks).",
	       (double)cst.bytes);
	metric(&t, "streamd_cache_budget_bytes", "gauge",
	       "The interval cache's budget (cache_size); 0: no cache.",
	       (double)cst.budget);
	metric(&t, "streamd_disk_read_bytes_total", "counter",
	       "Bytes session reads brought from the disk through libdjmfs.",
	       (double)ps.sum.disk_bytes);
	metric(&t, "streamd_record_writes_total", "counter",
	       "Recording writes completed (each publishes).",
	       (double)rs.writes);
	metric(&t, "streamd_record_write_misses_total", "counter",
	       "Recording writes completed after their deadline.",
	       (double)rs.write_misses);
	metric(&t, "streamd_sched_requests_total", "counter",
	       "Device requests the scheduler completed.",
	       (double)io.requests);
	metric(&t, "streamd_sched_deadline_misses_total", "counter",
	       "Device requests completed after their deadline.",
	       (double)io.misses);
	metric(&t, "streamd_sched_latency_p99_seconds", "gauge",
	       "99th percentile device request latency.",
	       (double)io.latency_p99_ns / 1e9);
	metric(&t, "streamd_sched_lateness_max_seconds", "gauge",
	       "Largest lateness of a device request.",
	       (double)io.lateness_max_ns / 1e9);
	metric(&t, "streamd_sched_errors_total", "counter",
	       "Device requests that failed (EIO, ...).", (double)io.errors);
	metric(&t, "streamd_sched_nospace_total", "counter",
	       "Device writes the host file system refused for want of "
	       "room.", (double)io.nospace);
	metric(&t, "streamd_djmfs_read_checksum_errors_total", "counter",
	       "64 KiB blocks of recordings whose checksum failed twice: the "
	       "read failed, its bytes were not served.",
	       (double)cs.csum_errors);
	metric(&t, "streamd_djmfs_read_checksum_retries_total", "counter",
	       "64 KiB blocks of recordings read again after a checksum "
	       "mismatch.", (double)cs.csum_mismatches);
	metric(&t, "streamd_read_only", "gauge",
	       "1: the volume is read-only (its host file system was full "
	       "when the DJMFS server started); recording gets 507.",
	       (double)atomic_load(&d->read_only));
	media_metrics(&t, d);
	admission_metrics(&t, d);
	retention_metrics(&t, d);
	djmfs_repair_metrics(&t, d);
	http_metrics(&t, d);
	process_metrics(&t);
	if (t.oom) {
		free(t.p);
		return MHD_NO;
	}
	ret = sd_reply_text(r, 200, "text/plain; version=0.0.4", t.p, t.len);
	free(t.p);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Home                                                                */
/* ------------------------------------------------------------------ */

enum MHD_Result sd_route_home(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	char page[2048];
	const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_HOST);

	(void)upload;
	(void)upload_size;
	if (!host)
		host = r->d->cfg.listen;
	snprintf(page, sizeof(page),
		 PACKAGE_NAME " " PACKAGE_VERSION "\n\n"
		 "Record:  ffmpeg -re -i INPUT -c:v libx264 -g 50 -c:a aac "
		 "-f mpegts -method PUT http://%s/record/NAME\n"
		 "List:    curl http://%s/streams\n"
		 "Watch:   ffplay 'http://%s/streams/NAME.ts?start=-30'\n"
		 "HLS:     http://%s/streams/NAME/index.m3u8\n"
		 "Metrics: http://%s/metrics\n",
		 host, host, host, host, host);
	return sd_reply_text(r, 200, "text/plain; charset=utf-8", page,
			     strlen(page));
}
