/*
 * Managing recordings over HTTP, behind the admin token: protected
 * ranges and deletion.
 *
 *   POST   /streams/NAME/holds      {"start", "end", "label"} -> 201
 *   GET    /streams/NAME/holds      the holds, with the bytes each keeps
 *   DELETE /streams/NAME/holds/ID   204, or 404
 *   DELETE /streams/NAME[?force=1]  204; 409 while it is being recorded
 *                                   (force ends this node's upload first)
 *
 * A hold's start and end take the same forms as the play routes' start
 * (seconds from the start, seconds behind live, ISO-8601; a JSON number
 * is seconds from the start) and are stored as wall-clock times, so a
 * hold keeps meaning the same moments however much retention trims in
 * front of it.  The bytes a hold keeps are those from the keyframe that
 * begins its start (the first one playback of it needs) to the first
 * index entry after its end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_daemon.h"

#define HOLD_BODY_MAX 4096
/* How long a forced delete waits for this node's upload to close. */
#define DELETE_WAIT_S 10

static int admin_ok(struct sd_req *r, enum MHD_Result *ret)
{
	if (sd_req_token_ok(r, r->d->cfg.admin_token))
		return 1;
	*ret = sd_reply_error(r, 401, "managing recordings needs the admin "
			      "token");
	return 0;
}

static json_t *iso_json(int64_t ns)
{
	char buf[40];

	sd_time_format_iso8601(ns, buf, sizeof(buf));
	return json_string(buf);
}

/* Data offsets [*a, *b) a hold over [start, end] keeps; the stream is
 * read-locked.  Nothing recorded in it: *a == *b. */
static void hold_span(const struct sd_stream *s, int64_t start, int64_t end,
		      uint64_t *a, uint64_t *b)
{
	const struct sd_index *ix = &s->index;
	ssize_t k = sd_index_seek(ix, start);
	size_t i;

	*a = *b = 0;
	if (k < 0 || end < s->start_ns)
		return;
	*a = ix->e[k].offset;
	for (i = (size_t)k; i < ix->n && ix->e[i].wall_ns <= end; i++)
		;
	*b = i < ix->n ? ix->e[i].offset : s->data_size;
	if (*b < *a)
		*b = *a;
}

static json_t *hold_json(const struct sd_stream *s, const struct sd_hold *h)
{
	uint64_t a, b;

	hold_span(s, h->start_ns, h->end_ns, &a, &b);
	return json_pack("{s:I, s:o, s:o, s:s, s:o, s:I, s:I}", "id",
			 (json_int_t)h->id, "start", iso_json(h->start_ns),
			 "end", iso_json(h->end_ns), "label", h->label,
			 "created", iso_json(h->created_ns), "offset",
			 (json_int_t)a, "bytes", (json_int_t)(b - a));
}

/* The holds of @s with their cost: "held_bytes" counts each byte once,
 * however many holds cover it. */
static json_t *holds_json(const struct sd_stream *s, const struct sd_holds *hs)
{
	json_t *o = json_object(), *a = json_array();
	uint64_t held = 0, reach = 0;

	for (size_t i = 0; o && a && i < hs->n; i++) {
		uint64_t x, y;

		json_array_append_new(a, hold_json(s, &hs->h[i]));
		/* Sorted by start, so spans come in order of their starts. */
		hold_span(s, hs->h[i].start_ns, hs->h[i].end_ns, &x, &y);
		if (x < reach)
			x = reach;
		if (y > x)
			held += y - x;
		if (y > reach)
			reach = y;
	}
	if (!o || !a) {
		json_decref(o);
		json_decref(a);
		return NULL;
	}
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "holds", a);
	json_object_set_new(o, "held_bytes", json_integer((json_int_t)held));
	return o;
}

json_t *sd_holds_json(struct sd_daemon *d, struct sd_stream *s)
{
	struct sd_holds hs;
	json_t *o;
	int err = sd_holds_load(d->client, s->name, &hs);

	if (err < 0)
		return NULL;
	sd_stream_rdlock(s);
	o = holds_json(s, &hs);
	sd_stream_unlock(s);
	sd_holds_free(&hs);
	return o;
}

/* A time of the hold body: a JSON number (seconds from the start) or a
 * string in any form the play routes take. */
static int hold_time(json_t *v, const struct sd_stream *s, int64_t live,
		     int64_t *out)
{
	struct sd_start st;

	if (json_is_number(v)) {
		double sec = json_number_value(v);

		if (!(sec >= 0 && sec <= 10.0 * 366 * 86400))
			return -EINVAL;
		st.kind = SD_START_FROM_BEGIN;
		st.ns = (int64_t)(sec * 1e9);
	} else if (!json_is_string(v) ||
		   sd_time_parse_start(json_string_value(v), &st) < 0 ||
		   st.kind == SD_START_NONE) {
		return -EINVAL;
	}
	*out = sd_time_resolve(&st, s->start_ns, live);
	return 0;
}

static enum MHD_Result holds_post(struct sd_req *r, struct sd_stream *s,
				  struct sd_body *b)
{
	json_t *body, *vs, *ve, *vl, *o;
	struct sd_hold h = { 0 };
	int64_t live;
	int err;

	if (b->too_big)
		return sd_reply_error(r, 413, "body over %d bytes",
				      HOLD_BODY_MAX);
	body = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		return sd_reply_error(r, 400, "the body must be a JSON object "
				      "with \"start\" and \"end\"");
	}
	vs = json_object_get(body, "start");
	ve = json_object_get(body, "end");
	vl = json_object_get(body, "label");
	sd_stream_rdlock(s);
	live = s->live ? sd_wall_now() : s->end_ns;
	err = hold_time(vs, s, live, &h.start_ns) < 0 ? -1 :
	      hold_time(ve, s, live, &h.end_ns) < 0 ? -2 : 0;
	sd_stream_unlock(s);
	if (err == 0 && vl && (!json_is_string(vl) ||
			       strlen(json_string_value(vl)) >
				       SD_HOLD_LABEL_MAX))
		err = -3;
	if (err == 0)
		snprintf(h.label, sizeof(h.label), "%s",
			 vl ? json_string_value(vl) : "");
	json_decref(body);
	if (err == -1 || err == -2)
		return sd_reply_error(r, 400, "\"%s\": seconds from the start, "
				      "\"-S\" behind live, or an ISO-8601 time",
				      err == -1 ? "start" : "end");
	if (err == -3)
		return sd_reply_error(r, 400, "\"label\": a string of at most "
				      "%d bytes", SD_HOLD_LABEL_MAX);
	if (h.end_ns <= h.start_ns)
		return sd_reply_error(r, 400, "the end must come after the "
				      "start");
	sd_stream_rdlock(s);
	err = h.end_ns < s->start_ns ? -ERANGE : 0;
	sd_stream_unlock(s);
	if (err)
		return sd_reply_error(r, 409, "the range ends before what %s "
				      "still holds: retention trimmed it",
				      r->name);
	h.created_ns = sd_wall_now();
	/* Not under a retention pass (sd_retain.c, invariant 2). */
	pthread_mutex_lock(&r->d->holds_mu);
	err = sd_holds_add(r->d->client, r->name, &h);
	pthread_mutex_unlock(&r->d->holds_mu);
	if (err == -ENOSPC)
		return sd_reply_error(r, 409, "%s has %d holds already",
				      r->name, SD_HOLDS_MAX);
	if (err < 0)
		return sd_reply_error(r, 500, "storing the hold: %s",
				      strerror(-err));
	sd_log_error(r->d->log, SD_LOG_INFO, "%s: hold %u added (%s)", r->name,
		     h.id, h.label);
	sd_stream_rdlock(s);
	o = hold_json(s, &h);
	sd_stream_unlock(s);
	return sd_reply_json_status(r, 201, o);
}

static enum MHD_Result holds_delete(struct sd_req *r, const char *tail)
{
	char *end;
	unsigned long id;
	int err;

	errno = 0;
	id = strtoul(tail, &end, 10);
	if (errno || *end || id == 0 || id > UINT32_MAX || tail[0] == '+' ||
	    tail[0] == '-')
		return sd_reply_error(r, 404, "no hold %s on %s", tail, r->name);
	pthread_mutex_lock(&r->d->holds_mu);
	err = sd_holds_remove(r->d->client, r->name, (uint32_t)id);
	pthread_mutex_unlock(&r->d->holds_mu);
	if (err == -ENOENT)
		return sd_reply_error(r, 404, "no hold %lu on %s", id, r->name);
	if (err < 0)
		return sd_reply_error(r, 500, "removing the hold: %s",
				      strerror(-err));
	sd_log_error(r->d->log, SD_LOG_INFO, "%s: hold %lu removed", r->name,
		     id);
	return sd_reply_text(r, 204, "application/json", "", 0);
}

/* What follows "/holds" in the path: "" or the id. */
static const char *holds_tail(const struct sd_req *r)
{
	const char *p = strstr(r->url + strlen("/streams/"), "/holds");

	p = p ? p + strlen("/holds") : "";
	return *p == '/' ? p + 1 : p;
}

enum MHD_Result sd_route_holds(struct sd_req *r, const char *upload,
			       size_t *upload_size)
{
	const char *tail = holds_tail(r);
	int post = strcmp(r->method, "POST") == 0, done;
	int del = strcmp(r->method, "DELETE") == 0;
	enum MHD_Result ret = MHD_NO;
	struct sd_stream *s = NULL;
	struct sd_body *b;
	json_t *o;

	if (r->status) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->calls == 1) {
		if (!admin_ok(r, &ret))
			return ret;
		if (!sd_name_valid(r->name))
			return sd_reply_error(r, 400, "bad stream name");
		if (*tail && !del)
			return sd_reply_error(r, 405, "a hold is removed with "
					      "DELETE; it cannot be changed");
		if (!*tail && del)
			return sd_reply_error(r, 405, "DELETE names one hold: "
					      "/streams/%s/holds/ID", r->name);
	}
	if (del)
		return holds_delete(r, tail);
	if (post) {
		if (!(b = sd_req_body(r, upload, upload_size, HOLD_BODY_MAX,
				      &done)))
			return MHD_NO;
		if (!done)
			return MHD_YES;
	}
	if (sd_play_stream(r, &s, &ret) < 0)
		return ret;
	if (post) {
		ret = holds_post(r, s, r->priv);
	} else {
		o = sd_holds_json(r->d, s);
		ret = o ? sd_reply_json(r, o) :
			  sd_reply_error(r, 500, "reading the holds of %s",
					 r->name);
	}
	sd_stream_put(s);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Delete                                                              */
/* ------------------------------------------------------------------ */

enum MHD_Result sd_route_delete(struct sd_req *r, const char *upload,
				size_t *upload_size)
{
	const char *force_arg = sd_req_arg(r, "force");
	int force = force_arg && strcmp(force_arg, "0") != 0;
	enum MHD_Result ret = MHD_NO;
	int err, ended = 0;

	(void)upload;
	if (r->status) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (!admin_ok(r, &ret))
		return ret;
	if (!sd_name_valid(r->name))
		return sd_reply_error(r, 400, "bad stream name");
	if (force_arg && strcmp(force_arg, "0") && strcmp(force_arg, "1"))
		return sd_reply_error(r, 400, "force is 0 or 1");
	if (sd_recorder_live(r->d->recorder, r->name)) {
		if (!force)
			return sd_reply_error(r, 409, "%s is being recorded; "
					      "DELETE ?force=1 ends the upload "
					      "and deletes it", r->name);
		err = sd_recorder_end(r->d->recorder, r->name, DELETE_WAIT_S);
		if (err < 0)
			return sd_reply_error(r, 500, "ending the upload of %s: "
					      "%s", r->name, strerror(-err));
		ended = 1;
	}
	err = djmfs_unlink(r->d->client, r->name);
	if (err == -EBUSY)
		return sd_reply_error(r, 409, "%s is being recorded by another "
				      "node", r->name);
	if (err == -ENOENT)
		return sd_reply_error(r, 404, "no recording called %s", r->name);
	if (err < 0)
		return sd_reply_error(r, 500, "deleting %s: %s", r->name,
				      strerror(-err));
	sd_catalog_touch(r->d->cat, r->name);
	err = sd_holds_drop(r->d->client, r->name);
	if (err < 0)
		sd_log_error(r->d->log, SD_LOG_WARN, "%s: deleted, but its "
			     "holds were not: %s", r->name, strerror(-err));
	sd_log_error(r->d->log, SD_LOG_INFO, "%s: deleted%s", r->name,
		     ended ? " (its upload ended first)" : "");
	return sd_reply_text(r, 204, "application/json", "", 0);
}
