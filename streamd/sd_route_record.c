/*
 * PUT/POST /record/<name>: an encoder's upload becomes a recording.  The
 * HTTP thread only checks the request (name, token, one publisher per
 * name in this process) and moves body bytes into the ingest's ring,
 * suspending the connection while the ring is full; the ingest thread
 * demuxes, and through the callbacks below opens the DJMFS recording
 * once the probe has recognised a stream, appends every byte, indexes the
 * keyframes and, when the upload ends, closes the recording.  Only then
 * does the encoder get its answer, so a 200 means every byte is durable.
 * An upload whose connection ends first (the encoder reset it, or went
 * quiet until the idle timeout closed it) keeps every byte that arrived:
 * the recording closes as after a clean end, with a log line that names
 * it and the cause (pub_cut_off).
 *
 * States of a publisher (struct sd_pub), with the function that moves it:
 *   registered  --pub_ready (probe ok)------->  recording
 *   registered  --ingest DONE (probe failed)->  done (415)
 *   recording   --pub_wake (ingest DONE)----->  done (rec closed)
 *   done        --record_cleanup------------->  freed
 * Invariants:
 *  1. pub->rec is opened and closed on the ingest thread only; other
 *     threads read its statistics under pub->mu.
 *  2. A publisher stays on d->pubs (and in d->publishing) from
 *     registration until its recording is closed, so a clean stop can
 *     wait for every recording to close.
 *  3. No byte goes to the ring after sd_ingest_finish (pub->finished).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sd_daemon.h"

/* After a refusal, how much of the rest of the body is read and dropped
 * (and for how long) waiting for its end, so the client can be told why
 * (see sd_route_record): a file sent at network speed gets its answer, a
 * live encoder streaming on is cut off within seconds. */
#define DROP_MAX (64u << 20)
#define DROP_NS (5 * SD_NS)

struct sd_pub {
	struct sd_daemon *d;
	struct sd_req *r;
	char name[SD_NAME_MAX + 1];
	int64_t wall0;		/* when the upload began */
	uint64_t rx_ns;		/* sd_now() of the last body bytes */
	struct sd_ingest *in;

	pthread_mutex_t mu;	/* rec, stats, finished, closed, result */
	struct sd_rec *rec;
	struct sd_rec_stats stats; /* final, once closed */
	int finished;
	int closed;		/* done: the recording (if any) is closed */
	int result;
	int listed;		/* on d->pubs */
	uint64_t dropped;	/* body bytes dropped after the end, and */
	int64_t dropped_since;	/* since when (HTTP thread only) */
	struct sd_pub *next;
};

static struct sd_logger pub_log(struct sd_pub *p)
{
	return p->d->logger;
}

/* ------------------------------------------------------------------ */
/* Ingest callbacks (ingest thread)                                    */
/* ------------------------------------------------------------------ */

static int pub_ready(void *arg, const char *format, const char *codecs)
{
	struct sd_pub *p = arg;
	struct sd_daemon *d = p->d;
	struct sd_rec_opts o = {
		.write_size = d->cfg.write_size,
		.publish_ns = d->cfg.publish_ns,
		.deadline_ns = d->cfg.write_deadline_ns,
		.log = pub_log(p),
	};
	struct sd_rec *rec = NULL;
	int err = sd_rec_open(d->client, p->name, &o, &rec);

	if (err == 0)
		err = sd_rec_begin(rec, format, codecs, p->wall0);
	if (err < 0) {
		sd_log_error(d->log, err == -EBUSY ? SD_LOG_INFO :
			     SD_LOG_ERROR, "record %s: sd_rec_open: %s",
			     p->name, strerror(-err));
		sd_rec_close(rec, sd_wall_now(), NULL);
		return err;
	}
	pthread_mutex_lock(&p->mu);
	p->rec = rec;
	pthread_mutex_unlock(&p->mu);
	sd_catalog_touch(d->cat, p->name);
	sd_log_error(d->log, SD_LOG_INFO, "record %s: %s %s", p->name,
		     format, codecs);
	return 0;
}

static int pub_bytes(void *arg, const void *buf, size_t len)
{
	struct sd_pub *p = arg;
	int err = sd_rec_data(p->rec, buf, len);

	return err < 0 ? err : sd_rec_tick(p->rec);
}

static int pub_key(void *arg, uint64_t offset, int64_t pts)
{
	struct sd_pub *p = arg;

	return sd_rec_key(p->rec, offset, pts);
}

static int pub_idle(void *arg)
{
	struct sd_pub *p = arg;

	return p->rec ? sd_rec_tick(p->rec) : 0;
}

/* The ingest finished: close the recording here, on the ingest thread,
 * so the HTTP threads never wait for the final publish. */
static void pub_close(struct sd_pub *p, int result)
{
	struct sd_daemon *d = p->d;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->rec) {
		err = sd_rec_close(p->rec, sd_wall_now(), &p->stats);
		p->rec = NULL;
		atomic_fetch_add(&d->rec_writes, p->stats.writes);
		atomic_fetch_add(&d->rec_write_misses, p->stats.write_misses);
	}
	p->result = result < 0 ? result : err;
	p->closed = 1;
	pthread_mutex_unlock(&p->mu);
	/* Before the encoder hears the answer: a player it starts next
	 * must see the whole recording. */
	sd_catalog_touch(d->cat, p->name);
	if (p->result < 0 && p->result != -EPROTONOSUPPORT &&
	    p->result != -EBUSY)
		sd_log_error(d->log, SD_LOG_ERROR, "record %s: stopped: %s",
			     p->name, strerror(-p->result));
	else if (p->result == 0)
		sd_log_error(d->log, SD_LOG_INFO, "record %s: closed, %llu "
			     "bytes, %llu keyframes", p->name,
			     (unsigned long long)p->stats.bytes,
			     (unsigned long long)p->stats.keyframes);
	pthread_mutex_lock(&d->mu);
	for (struct sd_pub **pp = &d->pubs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			d->publishing--;
			p->listed = 0;
			break;
		}
	}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void pub_wake(void *arg)
{
	struct sd_pub *p = arg;
	int result = 0;

	if (sd_ingest_state(p->in, &result) == SD_INGEST_DONE && !p->closed)
		pub_close(p, result);
	sd_req_wake(p->r);
}

/* ------------------------------------------------------------------ */
/* HTTP side                                                           */
/* ------------------------------------------------------------------ */

/* The connection ended before the upload did: which recording, and why
 * as far as the timing tells (the idle timeout closes a connection that
 * was quiet for that long; anything sooner is the encoder's doing). */
static void pub_cut_off(struct sd_pub *p)
{
	struct sd_daemon *d = p->d;
	uint64_t quiet = sd_now() - p->rx_ns;
	struct sd_ingest_stats st;

	sd_ingest_stats(p->in, &st);
	if (quiet >= SD_NS && quiet + SD_NS >= d->cfg.idle_timeout_ns)
		sd_log_error(d->log, SD_LOG_WARN, "record %s: no bytes "
			     "from the encoder for %.1f s (idle timeout %.1f "
			     "s): the connection was closed; ending the "
			     "upload with the %llu bytes received", p->name,
			     (double)quiet / SD_NS,
			     (double)d->cfg.idle_timeout_ns / SD_NS,
			     (unsigned long long)st.bytes_in);
	else
		sd_log_error(d->log, SD_LOG_WARN, "record %s: the "
			     "encoder's connection ended mid-upload (reset, "
			     "or closed before the end of the body): ending "
			     "the upload with the %llu bytes received",
			     p->name, (unsigned long long)st.bytes_in);
}

static void record_cleanup(struct sd_req *r)
{
	struct sd_pub *p = r->priv;
	int cut_off;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	cut_off = p->in && !p->finished && !p->closed && !r->d->stopping;
	pthread_mutex_unlock(&p->mu);
	if (cut_off)
		pub_cut_off(p);
	if (p->in) {
		pthread_mutex_lock(&p->mu);
		p->finished = 1;
		pthread_mutex_unlock(&p->mu);
		sd_ingest_finish(p->in);
		sd_ingest_free(p->in); /* joins: pub_wake has run */
	}
	if (!p->closed)
		pub_close(p, 0);
	pthread_mutex_destroy(&p->mu);
	free(p);
	r->priv = NULL;
}

/* Registers @p under its name; -EBUSY if this process records it. */
static int pub_register(struct sd_daemon *d, struct sd_pub *p)
{
	int err = 0;

	pthread_mutex_lock(&d->mu);
	if (d->stopping)
		err = -ESHUTDOWN;
	for (struct sd_pub *q = d->pubs; q && err == 0; q = q->next)
		if (strcmp(q->name, p->name) == 0)
			err = -EBUSY;
	if (err == 0) {
		p->next = d->pubs;
		d->pubs = p;
		d->publishing++;
		p->listed = 1;
	}
	pthread_mutex_unlock(&d->mu);
	return err;
}

static enum MHD_Result record_start(struct sd_req *r)
{
	struct sd_daemon *d = r->d;
	struct sd_ingest_cbs cbs = {
		.on_ready = pub_ready, .on_bytes = pub_bytes,
		.on_key = pub_key, .on_wake = pub_wake, .on_idle = pub_idle,
	};
	struct sd_ingest_opts io = { .probe_size = d->cfg.probe_size,
				     .log = d->logger };
	struct sd_pub *p;
	int err;

	if (!sd_name_valid(r->name))
		return sd_reply_error(r, 400, "bad stream name: use 1 to %d "
				      "of [A-Za-z0-9._-]", SD_NAME_MAX);
	if (!sd_req_token_ok(r, d->cfg.publish_token))
		return sd_reply_error(r, 401, "publishing needs the publish "
				      "token");
	p = calloc(1, sizeof(*p));
	if (!p)
		return MHD_NO;
	p->d = d;
	p->r = r;
	snprintf(p->name, sizeof(p->name), "%s", r->name);
	p->wall0 = sd_wall_now();
	p->rx_ns = sd_now();
	pthread_mutex_init(&p->mu, NULL);
	err = pub_register(d, p);
	if (err < 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return err == -EBUSY ?
			sd_reply_error(r, 409, "%s is being recorded by another "
				       "publisher", r->name) :
			sd_reply_error(r, 503, "shutting down");
	}
	r->priv = p;
	r->cleanup = record_cleanup;
	cbs.arg = p;
	err = sd_ingest_new(&p->in, &io, &cbs);
	if (err < 0) {
		p->in = NULL;
		return sd_reply_error(r, 500, "sd_ingest_new: %s",
				      strerror(-err));
	}
	atomic_fetch_add(&d->recordings_total, 1);
	return MHD_YES;
}

static enum MHD_Result record_answer(struct sd_req *r, int result)
{
	struct sd_pub *p = r->priv;
	char body[512];

	switch (result) {
	case 0:
		snprintf(body, sizeof(body), "{\"name\":\"%s\",\"bytes\":%llu,"
			 "\"keyframes\":%llu,\"writes\":%llu}\n", p->name,
			 (unsigned long long)p->stats.bytes,
			 (unsigned long long)p->stats.keyframes,
			 (unsigned long long)p->stats.writes);
		return sd_reply_text(r, 200, "application/json", body,
				     strlen(body));
	case -EPROTONOSUPPORT:
		return sd_reply_error(r, 415, "not a recognisable media "
				      "stream (probed %llu bytes)",
				      (unsigned long long)r->d->cfg.probe_size);
	case -EBUSY:
		return sd_reply_error(r, 409, "%s is being recorded by another "
				      "publisher", p->name);
	case -EUCLEAN:
		return sd_reply_error(r, 409, "%s exists and is not a usable "
				      "recording", p->name);
	case -ENOSPC:
		return sd_reply_error(r, 507, "volume full: %s stopped; what "
				      "was recorded is kept", p->name);
	default:
		return sd_reply_error(r, 500, "recording failed: %s",
				      strerror(-result));
	}
}

/* Marks the upload finished (once) and tells the ingest. */
static void pub_finish(struct sd_pub *p)
{
	int first;

	pthread_mutex_lock(&p->mu);
	first = !p->finished;
	p->finished = 1;
	pthread_mutex_unlock(&p->mu);
	if (first)
		sd_ingest_finish(p->in);
}

enum MHD_Result sd_route_record(struct sd_req *r, const char *upload,
				size_t *upload_size)
{
	struct sd_pub *p = r->priv;
	int closed, result;

	if (r->calls == 1)
		return record_start(r);
	if (!p || r->status) { /* answered already: drop the rest */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->d->stopping)
		pub_finish(p);
	pthread_mutex_lock(&p->mu);
	closed = p->closed;
	result = p->result;
	pthread_mutex_unlock(&p->mu);
	if (closed && *upload_size == 0)
		return record_answer(r, result);
	if (closed) {
		/* libmicrohttpd takes a response only once the body is in, so
		 * an upload refused midway (409 from another host, 415, 507)
		 * is read and dropped to its end, within bounds. */
		if (!p->dropped_since)
			p->dropped_since = sd_wall_now();
		p->dropped += *upload_size;
		*upload_size = 0;
		if (p->dropped <= DROP_MAX &&
		    sd_wall_now() - p->dropped_since <= DROP_NS)
			return MHD_YES;
		sd_log_error(r->d->log, SD_LOG_INFO, "record %s: %s; closing "
			     "the connection after dropping %llu bytes",
			     p->name, strerror(-(result ? result : ESHUTDOWN)),
			     (unsigned long long)p->dropped);
		return MHD_NO;
	}
	if (*upload_size > 0 && !p->finished) {
		size_t n = sd_ingest_push(p->in, upload, *upload_size);

		p->rx_ns = sd_now();
		atomic_fetch_add(&r->d->bytes_in, n);
		*upload_size -= n;
		if (*upload_size > 0)
			sd_req_suspend(r);
		return MHD_YES;
	}
	*upload_size = 0; /* after a stop, the rest is not recorded */
	pub_finish(p);
	sd_req_suspend(r); /* until the ingest is done (pub_wake) */
	return MHD_YES;
}

void sd_record_stop_all(struct sd_daemon *d)
{
	pthread_mutex_lock(&d->mu);
	for (struct sd_pub *p = d->pubs; p; p = p->next)
		if (p->in)
			pub_finish(p);
	pthread_mutex_unlock(&d->mu);
}

void sd_record_totals(struct sd_daemon *d, uint64_t *writes,
		      uint64_t *misses)
{
	uint64_t w = atomic_load(&d->rec_writes);
	uint64_t m = atomic_load(&d->rec_write_misses);

	pthread_mutex_lock(&d->mu);
	for (struct sd_pub *p = d->pubs; p; p = p->next) {
		struct sd_rec_stats st;

		pthread_mutex_lock(&p->mu);
		if (p->rec) {
			sd_rec_stats(p->rec, &st);
			w += st.writes;
			m += st.write_misses;
		}
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&d->mu);
	*writes = w;
	*misses = m;
}
