/*
 * PUT/POST /record/<name>: an encoder's upload becomes a recording.  This
 * route only checks the request (name, token, admission), hands the stream to the
 * recorder (sd_recorder.c: one publisher per name in this process, which
 * takes the bytes in one direction to the recording), moves body bytes to
 * it, suspending the connection while it has no room, and answers once
 * the recorder has closed the recording, so a 200 means every byte is
 * durable.  The recorder wakes the connection through sd_req_wake; it
 * never calls back into this file.
 *
 * Invariant: no byte goes to the recorder after sd_pub_finish.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_daemon.h"

/* After a refusal, how much of the rest of the body is read and dropped
 * (and for how long) waiting for its end, so the client can be told why
 * (see sd_route_record): a file sent at network speed gets its answer, a
 * live encoder streaming on is cut off within seconds. */
#define DROP_MAX (64u << 20)
#define DROP_NS (5 * SD_NS)

/* The request's side of an upload (HTTP thread only). */
struct rec_req {
	struct sd_pub *pub;
	uint64_t dropped;	/* body bytes dropped after the end, and */
	int64_t dropped_since;	/* since when */
	struct sd_admit_ticket *ticket; /* admission's, released at the end */
	uint64_t pushed;	/* body bytes taken, for the measured rate */
	int64_t rate_next;
};

static void record_cleanup(struct sd_req *r)
{
	struct rec_req *q = r->priv;

	if (!q)
		return;
	sd_pub_free(q->pub); /* joins the ingest: no wake comes after */
	sd_capacity_release(r->d, q->ticket);
	free(q);
	r->priv = NULL;
}

static enum MHD_Result record_start(struct sd_req *r)
{
	struct sd_daemon *d = r->d;
	struct rec_req *q;
	enum MHD_Result ret = MHD_NO;
	int err;

	if (!sd_name_valid(r->name))
		return sd_reply_error(r, 400, "bad stream name: use 1 to %d "
				      "of [A-Za-z0-9._-]", SD_NAME_MAX);
	if (!sd_req_token_ok(r, d->cfg.publish_token))
		return sd_reply_error(r, 401, "publishing needs the publish "
				      "token");
	/* Nothing can be written: say so before the body comes. */
	if (atomic_load(&d->read_only)) {
		sd_log_error(d->log, SD_LOG_ERROR, "record %s: refused: %s",
			     r->name, SD_FULL_READ_ONLY);
		return sd_reply_error(r, 507, "%s: %s not recorded; what was "
				      "recorded plays back", SD_FULL_READ_ONLY,
				      r->name);
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return MHD_NO;
	/* The recorder rule (sd_admit.c): refused only when the writes of
	 * every recording would not fit. */
	if (!sd_capacity_publish(r, &q->ticket, &ret)) {
		free(q);
		return ret;
	}
	err = sd_pub_start(d->recorder, r->name,
			   (void (*)(void *))sd_req_wake, r, &q->pub);
	if (!q->pub) {
		sd_capacity_release(d, q->ticket);
		free(q);
		if (err == -EBUSY)
			return sd_reply_error(r, 409, "%s is being recorded by "
					      "another publisher", r->name);
		if (err == -ESHUTDOWN)
			return sd_reply_error(r, 503, "shutting down");
		return MHD_NO;
	}
	r->priv = q;
	r->cleanup = record_cleanup;
	if (err < 0)
		return sd_reply_error(r, 500, "sd_ingest_new: %s",
				      strerror(-err));
	return MHD_YES;
}

static enum MHD_Result record_answer(struct sd_req *r, int result,
				     const struct sd_rec_stats *st)
{
	const char *name = sd_pub_name(((struct rec_req *)r->priv)->pub);
	char body[512];

	switch (result) {
	case 0:
		snprintf(body, sizeof(body), "{\"name\":\"%s\",\"bytes\":%llu,"
			 "\"keyframes\":%llu,\"writes\":%llu}\n", name,
			 (unsigned long long)st->bytes,
			 (unsigned long long)st->keyframes,
			 (unsigned long long)st->writes);
		return sd_reply_text(r, 200, "application/json", body,
				     strlen(body));
	case -EPROTONOSUPPORT:
		return sd_reply_error(r, 415, "not a recognisable media "
				      "stream (probed %llu bytes)",
				      (unsigned long long)r->d->cfg.probe_size);
	case -EBUSY:
		return sd_reply_error(r, 409, "%s is being recorded by another "
				      "publisher", name);
	case -EUCLEAN:
		return sd_reply_error(r, 409, "%s exists and is not a usable "
				      "recording", name);
	case -ENOSPC:
		return sd_reply_error(r, 507, "%s: %s stopped; what was "
				      "recorded is kept",
				      sd_pub_full(((struct rec_req *)r->priv)->pub),
				      name);
	default:
		return sd_reply_error(r, 500, "recording failed: %s",
				      strerror(-result));
	}
}

enum MHD_Result sd_route_record(struct sd_req *r, const char *upload,
				size_t *upload_size)
{
	struct rec_req *q = r->priv;
	struct sd_pub *p = q ? q->pub : NULL;
	struct sd_rec_stats st;
	int closed, result;

	if (r->calls == 1)
		return record_start(r);
	if (!p || r->status) { /* answered already: drop the rest */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->d->stopping)
		sd_pub_finish(p);
	closed = sd_pub_closed(p, &result, &st);
	if (closed && *upload_size == 0)
		return record_answer(r, result, &st);
	if (closed && sd_pub_evicted(p)) {
		/* DELETE ?force=1: the recording is going, and the encoder
		 * is told so the only way left mid-body. */
		sd_log_error(r->d->log, SD_LOG_INFO, "record %s: deleted by "
			     "an admin; closing the encoder's connection",
			     sd_pub_name(p));
		return MHD_NO;
	}
	if (closed) {
		/* libmicrohttpd takes a response only once the body is in, so
		 * an upload refused midway (409 from another host, 415, 507)
		 * is read and dropped to its end, within bounds. */
		if (!q->dropped_since)
			q->dropped_since = sd_wall_now();
		q->dropped += *upload_size;
		*upload_size = 0;
		if (q->dropped <= DROP_MAX &&
		    sd_wall_now() - q->dropped_since <= DROP_NS)
			return MHD_YES;
		sd_log_error(r->d->log, SD_LOG_INFO, "record %s: %s; closing "
			     "the connection after dropping %llu bytes",
			     sd_pub_name(p),
			     strerror(result ? -result : ESHUTDOWN),
			     (unsigned long long)q->dropped);
		return MHD_NO;
	}
	if (*upload_size > 0 && !sd_pub_finished(p)) {
		size_t took = sd_pub_push(p, upload, *upload_size);

		*upload_size -= took;
		q->pushed += took;
		sd_capacity_upload_rate(r->d, q->ticket, q->pushed, r->t0,
					&q->rate_next);
		if (*upload_size > 0)
			sd_req_suspend(r);
		return MHD_YES;
	}
	*upload_size = 0; /* after a stop, the rest is not recorded */
	sd_pub_finish(p);
	sd_req_suspend(r); /* until the recorder is done (sd_req_wake) */
	return MHD_YES;
}
