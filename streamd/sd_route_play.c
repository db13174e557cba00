/*
 * The players' routes: the list of recordings and one recording's detail
 * (JSON), time-shifted MPEG-TS (/streams/<name>.ts?start=&duration=),
 * byte ranges of the raw data (/streams/<name>/data.ts with Range), and
 * HLS playlists whose byte-range segments point into data.ts.  Every body
 * byte comes from a player session (sd_session.c): its input buffer is
 * refilled by the pump through DJMFS and the scheduler with deadlines,
 * and the connection is suspended while the buffer is empty.
 *
 * A .ts response is paced by the recording's own clock: at a time t
 * after it began it may have sent the bytes up to media time t + burst
 * past its first keyframe, read off the keyframe index (linear between
 * two entries; a gap between an encoder's connections takes no time, so
 * a player crossing one gets the next connection at once instead of
 * waiting the gap out).  A player so gets burst seconds at once, which
 * is what buffering players wait for before they start (GStreamer's
 * queue2 wants 2 s, VLC's cache 1 s), and then the stream's rate, as
 * it would from a live source, instead of the whole backlog at network
 * speed and then nothing.  Once the target passes the newest entry the
 * response is at the live edge (or the end of a finished recording),
 * where there is nothing left to hold back, and pacing ends for good.
 * burst 0 (the knob, or ?burst=0 on the request) turns it off: the body
 * goes as fast as the client reads, for tools that fetch a range.  A
 * live .ts still begins at the newest keyframe, so its burst is only what
 * lies between that keyframe and the edge: measured, playbin started
 * 1 s sooner from live - 3 s (queue2 waits for its rate estimate to
 * settle more than for bytes), not worth 3 s more delay behind live.
 * data.ts ranges are never paced: players that use them pace themselves.
 * While pacing holds the body back the connection is suspended and the
 * pump wakes it at its next period (sd_session_wake_at_tick); the
 * session's input buffer meanwhile fills by its own A/B rules.
 *
 * A HEAD answers the headers a GET would get (Content-Length when the
 * length is known) without opening a session, so it reads no disk.  A
 * GET's session is opened by the pump's openers while its connection is
 * suspended, and closed by them after play_cleanup, so no MHD thread
 * waits for a DJMFS round trip (the transitions are above play_opened).
 * A GET whose first bytes are in the interval cache does not wait for
 * its open at all: its session starts on them (sd_session_start) and the
 * reply goes at once, the open following on an opener.
 *
 * A .ts request with a duration whose end keyframe is not recorded yet
 * starts following the live edge; its end is fixed once the index holds a
 * keyframe at or past the wanted end (play_fix_end), so the response stops
 * on the keyframe nearest to start + duration, as for older material.
 * Until then the body sends nothing past the newest keyframe after its
 * start (the hold): that keyframe may yet turn out to be the end, and a
 * body already past its end could only stop wherever its session's bytes
 * happened to end, mid-frame.  At the hold it looks for the end again
 * whenever it is woken (a read, or the pump's next period) rather than
 * every FIX_END_EVERY_NS: the player waits for the next keyframe to be
 * indexed (about a GOP), not for bytes, and the response still ends as
 * soon as its end keyframe is known.
 *
 * With play_secret set, every route of one stream needs that stream's
 * play token (?expires=&sig=, sd_token.c), checked before the catalog is
 * consulted so that an unsigned request cannot learn which names exist;
 * the HLS playlist passes its token on to its segment URIs, and the list
 * of every stream needs the admin token instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "sd_daemon.h"

#define FIX_END_EVERY_NS (300 * 1000000LL)
#define SHARE_EVERY_NS (1000 * 1000000LL)
/* A paced body is held until it may send at least this much (or what is
 * left of it), so that a body just behind its target is not handed a
 * few bytes per call: with seconds of burst buffered by the player, a
 * wait of a period or two costs nothing. */
#define PACE_MIN_BYTES (4 * 1024)
#define BURST_MAX_NS (600 * SD_NS) /* sd_config.c's limit for the knob */

/* Statuses of the play token check, by sd_token_verify()'s result. */
static const struct {
	int err;
	unsigned status;
} token_status[] = {
	{ -ENOKEY, 401 },
	{ -EINVAL, 403 },
	{ -EKEYREJECTED, 403 },
	{ -EKEYEXPIRED, 403 },
};

/* sd_http.h: 1, or 0 with 400, 401 or 403 queued. */
int sd_play_allowed(struct sd_req *r, enum MHD_Result *ret)
{
	const char *secret = r->d->cfg.play_secret;
	unsigned status = 500;
	int err;

	if (!secret[0])
		return 1;
	if (!sd_name_valid(r->name)) {
		*ret = sd_reply_error(r, 400, "bad stream name");
		return 0;
	}
	err = sd_token_verify(secret, r->name, sd_req_arg(r, "expires"),
			      sd_req_arg(r, "sig"), sd_wall_now() / SD_NS);
	if (err == 0)
		return 1;
	for (size_t i = 0; i < sizeof(token_status) / sizeof(token_status[0]);
	     i++)
		if (token_status[i].err == err)
			status = token_status[i].status;
	*ret = sd_reply_error(r, status, "%s", sd_token_reason(err));
	return 0;
}

/* sd_http.h: the recording the URL names, or an error reply queued. */
int sd_play_stream(struct sd_req *r, struct sd_stream **out,
		   enum MHD_Result *ret)
{
	int err;

	if (!sd_name_valid(r->name)) {
		*ret = sd_reply_error(r, 400, "bad stream name");
		return -EINVAL;
	}
	err = sd_catalog_get(r->d->cat, r->name, out);
	if (err == 0)
		return 0;
	if (err == -ENOENT || err == -EUCLEAN)
		*ret = sd_reply_error(r, 404, "no recording called %s", r->name);
	else
		*ret = sd_reply_error(r, 500, "sd_catalog_get(%s): %s", r->name,
				      strerror(-err));
	return err;
}

/*
 * A start argument (sd_http.h).  A '+' written unescaped in a query string
 * arrives as a space (form encoding), which would turn "…T10:00:00+01:00"
 * into "…T10:00:00 01:00"; a space past the time of day can only have
 * been that '+', so it is put back.
 */
int sd_play_parse_start(struct sd_req *r, const char *key,
			struct sd_start *out)
{
	const char *arg = sd_req_arg(r, key);
	char buf[64];
	size_t n = arg ? strlen(arg) : 0;

	if (n <= 19 || n >= sizeof(buf))
		return sd_time_parse_start(arg, out);
	memcpy(buf, arg, n + 1);
	for (size_t i = 19; i < n; i++)
		if (buf[i] == ' ')
			buf[i] = '+';
	return sd_time_parse_start(buf, out);
}

static int64_t live_edge(const struct sd_stream *s)
{
	return s->live ? sd_wall_now() : s->end_ns;
}

static double secs(int64_t ns)
{
	return (double)ns / 1e9;
}

static json_t *iso(int64_t ns)
{
	char buf[40];

	sd_time_format_iso8601(ns, buf, sizeof(buf));
	return json_string(buf);
}

/* ------------------------------------------------------------------ */
/* GET /streams and /streams/<name>                                    */
/* ------------------------------------------------------------------ */

/* The fields /streams and the detail share; the stream is read-locked. */
static json_t *stream_summary(const struct sd_stream *s)
{
	int64_t end = live_edge(s);
	int64_t span = end > s->start_ns ? end - s->start_ns : 0;
	/* While recording, over the time so far (the catalog's figure only
	 * counts up to the newest keyframe). */
	uint64_t kept = s->data_size - s->data_start;
	uint64_t bitrate = s->live && span > 0 ?
		(uint64_t)((double)kept * 8e9 / (double)span) : s->bitrate;

	return json_pack("{s:s, s:b, s:o, s:f, s:I, s:I, s:I}", "name",
			 s->name, "live", s->live, "start", iso(s->start_ns),
			 "duration", secs(span),
			 "bytes", (json_int_t)kept,
			 "bitrate", (json_int_t)bitrate,
			 "start_offset", (json_int_t)s->data_start);
}

static int list_one(void *arg, struct sd_stream *s)
{
	json_t *o;

	sd_stream_rdlock(s);
	o = stream_summary(s);
	sd_stream_unlock(s);
	return o ? json_array_append_new(arg, o) : -ENOMEM;
}

enum MHD_Result sd_route_list(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	json_t *a = json_array();
	int err;

	(void)upload;
	(void)upload_size;
	if (r->d->cfg.play_secret[0] &&
	    !sd_req_token_ok(r, r->d->cfg.admin_token)) {
		json_decref(a);
		return sd_reply_error(r, 401, "with play URLs signed, the list of "
				      "streams needs the admin token");
	}
	err = a ? sd_catalog_list(r->d->cat, list_one, a) : -ENOMEM;
	if (err < 0) {
		json_decref(a);
		return sd_reply_error(r, 500, "sd_catalog_list: %s",
				      strerror(-err));
	}
	return sd_reply_json(r, a);
}

static json_t *gaps_json(const struct sd_index *ix)
{
	size_t n = sd_index_gaps(ix, NULL, 0);
	struct sd_gap *g = n ? calloc(n, sizeof(*g)) : NULL;
	json_t *a = json_array();

	if (n && g)
		sd_index_gaps(ix, g, n);
	for (size_t i = 0; g && a && i < n; i++)
		json_array_append_new(a, json_pack(
			"{s:o, s:o, s:f, s:I}", "start", iso(g[i].start_ns),
			"end", iso(g[i].end_ns),
			"duration", secs(g[i].end_ns - g[i].start_ns),
			"offset", (json_int_t)g[i].offset));
	free(g);
	return a;
}

/* Keyframe count, the first pts and the newest keyframe. */
static void key_facts(const struct sd_index *ix, json_t *o)
{
	const struct sd_idx_entry *last = NULL;
	json_int_t keys = 0;
	int64_t first_pts = SD_PTS_NONE;

	for (size_t i = 0; i < ix->n; i++) {
		if (first_pts == SD_PTS_NONE && ix->e[i].pts != SD_PTS_NONE)
			first_pts = ix->e[i].pts;
		if (ix->e[i].flags & SD_IDX_KEY) {
			keys++;
			last = &ix->e[i];
		}
	}
	json_object_set_new(o, "keyframes", json_integer(keys));
	json_object_set_new(o, "first_pts", first_pts == SD_PTS_NONE ?
			    json_null() : json_real((double)first_pts / 90000));
	json_object_set_new(o, "last_keyframe", !last ? json_null() :
		json_pack("{s:o, s:o, s:I}", "time", iso(last->wall_ns),
			  "pts", last->pts == SD_PTS_NONE ? json_null() :
			  json_real((double)last->pts / 90000),
			  "offset", (json_int_t)last->offset));
}

enum MHD_Result sd_route_detail(struct sd_req *r, const char *upload,
				size_t *upload_size)
{
	struct sd_stream *s;
	enum MHD_Result ret = MHD_NO;
	json_t *o, *codecs;

	(void)upload;
	(void)upload_size;
	if (!sd_play_allowed(r, &ret) || sd_play_stream(r, &s, &ret) < 0)
		return ret;
	sd_stream_rdlock(s);
	o = stream_summary(s);
	codecs = s->codecs ? json_loads(s->codecs, 0, NULL) : NULL;
	if (o) {
		json_object_set_new(o, "end", iso(live_edge(s)));
		json_object_set_new(o, "created", iso(s->created_ns));
		json_object_set_new(o, "format", json_string(s->format));
		json_object_set_new(o, "codecs", codecs ? codecs : json_null());
		json_object_set_new(o, "connections",
				    json_integer(s->connections));
		json_object_set_new(o, "version", json_integer(
					    (json_int_t)s->version));
		key_facts(&s->index, o);
		json_object_set_new(o, "gaps", gaps_json(&s->index));
	} else {
		json_decref(codecs);
	}
	sd_stream_unlock(s);
	if (o) {
		/* Read outside the stream's lock: it asks the DJMFS server. */
		json_t *h = sd_holds_json(r->d, s);

		json_object_set_new(o, "holds", h ? json_incref(
			json_object_get(h, "holds")) : json_null());
		json_object_set_new(o, "held_bytes", h ? json_incref(
			json_object_get(h, "held_bytes")) : json_null());
		json_decref(h);
	}
	sd_stream_put(s);
	return sd_reply_json(r, o);
}

/* ------------------------------------------------------------------ */
/* Session-fed bodies                                                  */
/* ------------------------------------------------------------------ */

struct play {
	struct sd_req *r;
	struct sd_session *sess;
	uint64_t start;		/* first data byte */
	uint64_t sent;
	uint64_t limit;		/* bytes to send; UINT64_MAX: until EOF */
	/* A duration whose end is still in the future (see top): the body
	 * does not pass hold (a data offset) while end_open. */
	int end_open;
	uint64_t hold;
	size_t key;		/* index position playback began at */
	int64_t end_wall;
	int64_t next_fix;
	/* Pacing (see top).  The media clock has reached index entry cur at
	 * cur_media (ns past the first keyframe); the target lies in the span
	 * [a, b] when span is set. */
	int paced;
	int64_t t0;		/* sd_now() as the response began */
	int64_t ahead;		/* burst, ns */
	size_t cur;
	int64_t cur_media;
	int span;
	int64_t a_media, b_media;
	uint64_t a_off, b_off;
	uint64_t allow;		/* data offset the body may reach now */
	uint64_t bitrate;	/* the recording's, bits/s; 0: unknown */
	uint64_t ino;		/* the recording's file and "data" object, */
	uint32_t data_id;	/* the cache's name of its bytes (ino 0: none) */
	uint64_t known_size;	/* "data" size and writer in the catalog's */
	int known_live;		/* snapshot (sd_session_start) */
	struct sd_admit_ticket *ticket; /* admission's, released at close */
	int64_t share_at;	/* sd_now() of the last disk share told */
	/* Where the request's time to its first body byte went (sd_now()
	 * ns; logged at DEBUG with the first byte): the catalog looked up,
	 * the session opened (queue and round trip), the body first asked
	 * for. */
	int64_t t_cat, t_open, t_ask;

	/* The open, made by one of the pump's openers while the connection
	 * is suspended (see "Opening off the HTTP thread" above play_reply).
	 * opened is set once, by play_opened, after sess and open_err;
	 * abandoned (the request ended first) hands pl to play_opened. */
	struct sd_daemon *d;
	pthread_mutex_t omu;	/* opened, abandoned */
	atomic_int opened;
	int abandoned;
	int open_err;
	/* The reply that waits for the open. */
	unsigned status;
	const char *type, *ranges;
	const char *hname[2];	/* static names */
	char hval[2][96];
};

static void play_free(struct play *pl)
{
	pthread_mutex_destroy(&pl->omu);
	free(pl);
}

static void play_cleanup(struct sd_req *r)
{
	struct play *pl;
	struct sd_session_stats st;

	/* Detached under d->mu: /admin/sessions walks the requests. */
	pthread_mutex_lock(&r->d->mu);
	pl = r->priv;
	r->priv = NULL;
	pthread_mutex_unlock(&r->d->mu);
	if (!pl)
		return;
	pthread_mutex_lock(&pl->omu);
	if (!atomic_load(&pl->opened)) {
		/* The connection ended with its open in flight: play_opened
		 * closes what it opens and frees pl (sd_http.h, 4). */
		pl->abandoned = 1;
		pthread_mutex_unlock(&pl->omu);
		return;
	}
	pthread_mutex_unlock(&pl->omu);
	if (pl->sess) {
		sd_session_stats(pl->sess, &st);
		/* no wake after this (sd_http.h, 4) */
		sd_session_close(pl->sess);
		sd_log_error(r->d->log, SD_LOG_INFO, "play %s: %llu bytes, "
			     "%llu reads, %llu late, %llu underflows", r->url,
			     (unsigned long long)st.bytes,
			     (unsigned long long)st.reads,
			     (unsigned long long)st.misses,
			     (unsigned long long)st.underflows);
	}
	sd_capacity_release(r->d, pl->ticket);
	play_free(pl);
}

/* Newest KEY entry, or -1. */
static ssize_t last_key(const struct sd_index *ix)
{
	for (size_t i = ix->n; i-- > 0;)
		if (ix->e[i].flags & SD_IDX_KEY)
			return (ssize_t)i;
	return -1;
}

/*
 * Where a duration ends: the keyframe nearest start + duration once one
 * at or past it exists, else the end of a finished recording.  Returns 1
 * and *end (data offset) when known, 0 while it is still to come.
 */
static int duration_end(const struct sd_stream *s, size_t key,
			int64_t end_wall, uint64_t *end)
{
	const struct sd_index *ix = &s->index;
	ssize_t lk = last_key(ix), j;

	if (lk > (ssize_t)key && ix->e[lk].wall_ns >= end_wall) {
		j = sd_index_key_near(ix, key, end_wall);
		if (j >= 0) {
			*end = ix->e[j].offset;
			return 1;
		}
	}
	if (!s->live) {
		*end = s->data_size;
		return 1;
	}
	return 0;
}

/*
 * While the end is open (every keyframe after @key lies before the
 * wanted end): how far the body may go.  The end will be the keyframe
 * nearest the wanted end among those after @key; of those before it a
 * newer one is always nearer, so the newest keyframe indexed can still
 * be the end and none before it can (keys enter the index in offset
 * order).  With none after @key yet the body waits at its start.
 */
static uint64_t open_end_hold(const struct sd_index *ix, size_t key)
{
	ssize_t lk = last_key(ix);

	return ix->e[lk > (ssize_t)key ? (size_t)lk : key].offset;
}

/* Fixes the end once it is known, else moves the hold; at most once per
 * FIX_END_EVERY_NS unless @now_anyway (a body waiting at the hold). */
static void play_fix_end(struct play *pl, int now_anyway)
{
	struct sd_stream *s;
	uint64_t end;
	int64_t now = (int64_t)sd_now();

	if (now < pl->next_fix && !now_anyway)
		return;
	pl->next_fix = now + FIX_END_EVERY_NS;
	if (sd_catalog_get(pl->r->d->cat, pl->r->name, &s) < 0) {
		/* As for pacing (pace_update): a body held for good would
		 * never hear the session report the failure. */
		pl->paced = 0;
		pl->allow = UINT64_MAX;
		pl->hold = UINT64_MAX;
		return;
	}
	sd_stream_rdlock(s);
	if (duration_end(s, pl->key, pl->end_wall, &end)) {
		pl->end_open = 0;
		pl->limit = end > pl->start ? end - pl->start : 0;
	} else if (pl->key < s->index.n) {
		pl->hold = open_end_hold(&s->index, pl->key);
	}
	sd_stream_unlock(s);
	sd_stream_put(s);
}

/* How much of @max the end lets the body send now: up to a known end,
 * up to the hold while the end is open (see top); 0 at the hold. */
static size_t end_room(struct play *pl, size_t max)
{
	uint64_t at = pl->start + pl->sent;

	if (pl->end_open && pl->hold <= at)
		play_fix_end(pl, 1);
	if (pl->end_open) {
		if (pl->hold <= at)
			return 0;
		return pl->hold - at < max ? (size_t)(pl->hold - at) : max;
	}
	if (pl->limit != UINT64_MAX && max > pl->limit - pl->sent)
		max = (size_t)(pl->limit - pl->sent);
	return max;
}

/* ------------------------------------------------------------------ */
/* Pacing                                                              */
/* ------------------------------------------------------------------ */

/* Media time from entry @i to the next: their wall times' difference,
 * except where a connection ends (an END entry, or the next one opens a
 * new connection): what lies between is a gap, or after a crash a last
 * GOP of unknown length, and takes none. */
static int64_t span_ns(const struct sd_index *ix, size_t i)
{
	int64_t d = ix->e[i + 1].wall_ns - ix->e[i].wall_ns;

	if ((ix->e[i].flags & SD_IDX_END) ||
	    (ix->e[i + 1].flags & SD_IDX_SEGMENT) || d < 0)
		return 0;
	return d;
}

/* The data offset of media time @target inside the span [a, b]. */
static uint64_t span_offset(const struct play *pl, int64_t target)
{
	double f = (double)(target - pl->a_media) /
		   (double)(pl->b_media - pl->a_media);

	return pl->a_off + (uint64_t)(f * (double)(pl->b_off - pl->a_off));
}

/*
 * Moves pl->allow to where media time (now - t0) + burst lies.  Inside
 * the span it knows, that is arithmetic; past it, the index is walked
 * on from the entry reached so far (the stream read-locked briefly).
 * Past the newest entry, pacing ends (see top).  So does it when the
 * recording cannot be had: a held body would never read the session
 * again, and the session is what reports the failure to the player.
 */
static void pace_update(struct play *pl, int64_t now)
{
	int64_t target = now - pl->t0 + pl->ahead;
	const struct sd_index *ix;
	struct sd_stream *s;

	if (pl->span && target < pl->b_media) {
		pl->allow = span_offset(pl, target);
		return;
	}
	if (sd_catalog_get(pl->r->d->cat, pl->r->name, &s) < 0) {
		pl->paced = 0;
		pl->allow = UINT64_MAX;
		return;
	}
	sd_stream_rdlock(s);
	ix = &s->index;
	pl->span = 0;
	for (; pl->cur + 1 < ix->n; pl->cur++) {
		int64_t d = span_ns(ix, pl->cur);

		if (pl->cur_media + d > target) {
			pl->span = 1;
			pl->a_media = pl->cur_media;
			pl->b_media = pl->cur_media + d;
			pl->a_off = ix->e[pl->cur].offset;
			pl->b_off = ix->e[pl->cur + 1].offset;
			break;
		}
		pl->cur_media += d;
	}
	sd_stream_unlock(s);
	sd_stream_put(s);
	if (pl->span) {
		pl->allow = span_offset(pl, target);
	} else {
		pl->paced = 0;
		pl->allow = UINT64_MAX;
	}
}

/* How much of @max the body may send now; 0 while pacing holds it. */
static size_t pace_room(struct play *pl, size_t max)
{
	uint64_t at = pl->start + pl->sent;
	uint64_t want = PACE_MIN_BYTES;

	if (!pl->paced)
		return max;
	if (pl->limit != UINT64_MAX && pl->limit - pl->sent < want)
		want = pl->limit - pl->sent;
	if (pl->allow < at + want)
		pace_update(pl, (int64_t)sd_now());
	if (!pl->paced)
		return max;
	if (pl->allow < at + want)
		return 0;
	return pl->allow - at < max ? (size_t)(pl->allow - at) : max;
}

/*
 * The request's burst: ?burst=SECONDS (0, or what the duration parser
 * takes, up to 600) or the knob.  Returns ns, or -1 for a bad argument.
 */
static int64_t req_burst(struct sd_req *r)
{
	const char *arg = sd_req_arg(r, "burst");
	int64_t ns;

	if (!arg) {
		pthread_mutex_lock(&r->d->knobs_mu);
		ns = (int64_t)r->d->knobs.burst_ns;
		pthread_mutex_unlock(&r->d->knobs_mu);
		return ns;
	}
	if (strcmp(arg, "0") == 0)
		return 0;
	if (sd_time_parse_duration(arg, &ns) < 0 || ns > BURST_MAX_NS)
		return -1;
	return ns;
}

/*
 * Admission counts only what reaches the disk: a viewer the interval
 * cache serves costs the device nothing.  Its promise starts at what the
 * cache holds where it starts (expected_disk_share) and follows the share
 * of its recent bytes that came from the disk, told at most once a
 * SHARE_EVERY_NS (a lock each, on the reader's path).
 */
/*
 * The share of a new viewer's bytes expected from the disk: that of the
 * blocks of its start (its burst and its buffer's first fill) the cache
 * does not hold now.  A flash crowd just behind live finds the recorder's
 * blocks and promises the disk (almost) nothing; a viewer that seeks into
 * an old hour finds nothing and promises its whole rate.  The measured
 * share replaces the guess within a second of its first bytes.
 */
static double expected_disk_share(struct sd_req *r, const struct play *pl)
{
	struct sd_daemon *d = r->d;
	uint64_t len;

	if (!d->cache || !pl->ino)
		return 1;
	pthread_mutex_lock(&d->knobs_mu);
	len = d->knobs.buffer_size;
	pthread_mutex_unlock(&d->knobs_mu);
	if (pl->ahead > 0) /* in double: bitrate x ns passes 2^64 */
		len += (uint64_t)((double)pl->bitrate / 8 *
				  ((double)pl->ahead / SD_NS));
	if (pl->limit != UINT64_MAX && pl->limit < len)
		len = pl->limit;
	return 1.0 - sd_cache_held_share(d->cache, pl->ino, pl->data_id,
					 pl->start, len ? len : 1);
}

static void tell_disk_share(struct play *pl)
{
	struct sd_daemon *d = pl->r->d;
	int64_t now;

	if (!pl->ticket || !d->admit)
		return;
	now = (int64_t)sd_now();
	if (now - pl->share_at < SHARE_EVERY_NS)
		return;
	pl->share_at = now;
	sd_admit_set_disk_share(d->admit, pl->ticket,
				1.0 - sd_session_cache_share(pl->sess));
}

static double ms_between(int64_t a, int64_t b)
{
	return a && b ? (double)(b - a) / 1e6 : -1;
}

/*
 * The stages of a request's wait for its first body byte, at DEBUG: the
 * whole from the request line and from the connection's accept, or the
 * end of its previous response on a kept-alive connection (what the
 * connection waited in MHD before its request was read), then from
 * the request line to the catalog's answer, to the session's open (the
 * djmfs_open round trip and the first read's submission), to MHD's first
 * call for the body (the head sent), to the first read's bytes.
 */
static void first_byte_log(const struct play *pl)
{
	struct sd_req *r = pl->r;
	int64_t now = (int64_t)sd_now();

	sd_log_error(r->d->log, SD_LOG_DEBUG, "play %s: first byte after "
		     "%.1f ms (%.1f ms after the accept or the previous "
		     "response): catalog %.1f, open "
		     "%.1f, head %.1f, read %.1f", r->url,
		     ms_between(r->t0, now), ms_between(r->t_conn, now),
		     ms_between(r->t0, pl->t_cat),
		     ms_between(pl->t_cat, pl->t_open),
		     ms_between(pl->t_open, pl->t_ask),
		     ms_between(pl->t_ask, now));
}

static ssize_t play_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct play *pl = cls;
	struct sd_req *r = pl->r;

	(void)pos;
	if (r->d->stopping)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (!pl->t_ask)
		pl->t_ask = (int64_t)sd_now();
	if (pl->end_open)
		play_fix_end(pl, 0);
	if (pl->limit != UINT64_MAX && pl->sent >= pl->limit)
		return MHD_CONTENT_READER_END_OF_STREAM;
	for (;;) {
		size_t want = sd_http_slice(r->d, max);
		size_t room = pace_room(pl, end_room(pl, want));
		ssize_t n;

		if (!pl->end_open && pl->limit != UINT64_MAX &&
		    pl->sent >= pl->limit)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (room == 0) {
			/* Ahead of its time or at the hold: the next period
			 * wakes it. */
			sd_session_wake_at_tick(pl->sess);
			if (sd_req_suspend(r))
				return 0;
			continue;
		}
		n = sd_session_read(pl->sess, buf, room);

		if (n > 0) {
			tell_disk_share(pl);
			if (pl->sent == 0)
				first_byte_log(pl);
			pl->sent += (uint64_t)n;
			r->bytes += (uint64_t)n;
			atomic_fetch_add(&r->d->bytes_out, (uint64_t)n);
			return n;
		}
		if (n == SD_SESSION_EOF)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n < 0) {
			sd_log_error(r->d->log, SD_LOG_WARN, "%s: session "
				     "read: %s", r->url, strerror((int)-n));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (sd_req_suspend(r))
			return 0;
	}
}

/*
 * A player's socket gets a fixed send buffer of two reads.  Left to
 * autotuning, the kernel would soak up megabytes per connection (loopback
 * and fast links), so the input buffer would sit empty while the player
 * still had seconds queued: its fill level, which the pump steers by, and
 * its underflow count would say nothing about the player.
 */
static void cap_send_buffer(struct sd_req *r)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int size;

	pthread_mutex_lock(&r->d->knobs_mu);
	size = (int)r->d->knobs.read_size * 2;
	pthread_mutex_unlock(&r->d->knobs_mu);
	if (ci && setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size,
			     sizeof(size)) < 0)
		sd_log_error(r->d->log, SD_LOG_DEBUG, "setsockopt(SO_SNDBUF):"
			     " %s", strerror(errno));
}

/* A HEAD's body, which MHD never asks for. */
static ssize_t head_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_OF_STREAM;
}

/* Content-Type, Cache-Control, Accept-Ranges and @hdr (name/value
 * pairs, NULL-terminated) on @resp, then the reply. */
static enum MHD_Result play_respond(struct sd_req *r,
				    struct MHD_Response *resp,
				    unsigned status, const char *type,
				    const char *ranges,
				    const char *const *hdr)
{
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-cache");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, ranges);
	for (; hdr && hdr[0]; hdr += 2)
		MHD_add_response_header(resp, hdr[0], hdr[1]);
	return sd_reply(r, status, resp);
}

/*
 * Opening off the HTTP thread.  A session's djmfs_open is a round trip
 * to the DJMFS server, milliseconds under a crowd; made on an MHD thread
 * it would hold up every connection that thread serves.  So play_reply
 * hands it to the pump's openers and suspends the connection without a
 * response; the opener's answer (play_opened) resumes it, and MHD's next
 * access call (play_resume) answers with the real status.  For one
 * request:
 *
 *   (none) --play_reply: admitted, open queued----------> QUEUED
 *          (not admitted, or the queue full: 503 at once; no pl)
 *   (none) --play_reply: admitted, its first block cached, the
 *          session started (sd_session_start)-----------> OPENED,
 *          answered at once by play_answer
 *   QUEUED --play_opened: sess or open_err, opened = 1---> OPENED,
 *          sd_req_wake (the request is resumed, or finds the wake
 *          pending as it tries to suspend)
 *   QUEUED --play_cleanup: the connection ended first----> ABANDONED
 *   ABANDONED --play_opened: closes sess, releases the ticket, frees pl
 *   OPENED --play_resume -> play_answer: 200/206 with the body, or
 *          404/500 (503 while stopping) with the ticket released
 *   OPENED --play_cleanup: closes sess (if any), releases, frees pl
 *
 * pl->omu orders play_opened against play_cleanup: whichever comes
 * second does the freeing, and play_opened wakes the request only while
 * holding it, so it never wakes a request that cleanup let go.  Only the
 * MHD thread of the request reads sess and open_err, after it saw
 * opened.
 */
static void play_opened(void *arg, int err, struct sd_session *s)
{
	struct play *pl = arg;
	int abandoned;

	pthread_mutex_lock(&pl->omu);
	abandoned = pl->abandoned;
	if (!abandoned) {
		pl->sess = s;
		pl->open_err = err;
		pl->t_open = (int64_t)sd_now();
		atomic_store(&pl->opened, 1);
		sd_req_wake(pl->r);
	}
	pthread_mutex_unlock(&pl->omu);
	if (abandoned) {
		sd_session_close(s);
		sd_capacity_release(pl->d, pl->ticket);
		play_free(pl);
	}
}

/* The open's answer is in: the reply that waited for it. */
static enum MHD_Result play_answer(struct sd_req *r, struct play *pl)
{
	const char *hdr[5] = { pl->hname[0], pl->hval[0], pl->hname[1],
			       pl->hval[1], NULL };
	uint64_t size = pl->limit == UINT64_MAX ? MHD_SIZE_UNKNOWN : pl->limit;
	int err = pl->open_err;

	if (!pl->hname[0])
		hdr[0] = NULL;
	else if (!pl->hname[1])
		hdr[2] = NULL;
	if (err < 0) {
		sd_capacity_release(r->d, pl->ticket);
		pl->ticket = NULL;
		if (err == -ESHUTDOWN)
			return sd_reply_error(r, 503, "the server is stopping");
		return sd_reply_error(r, err == -ENOENT ? 404 : 500,
				      "sd_session_open(%s): %s", r->name,
				      strerror(-err));
	}
	pl->t0 = (int64_t)sd_now();
	return play_respond(r, MHD_create_response_from_callback(
				    size, 64 * 1024, play_reader, pl, NULL),
			    pl->status, pl->type, pl->ranges, hdr);
}

/*
 * An access call of a request whose open was queued: answers once the
 * open is, else suspends (sd_http.h, 2).  A wake that is not the open's
 * (a clean stop's) finds it still queued and suspends again.
 */
static enum MHD_Result play_resume(struct sd_req *r, size_t *upload_size)
{
	struct play *pl = r->priv;

	if (upload_size)
		*upload_size = 0; /* a GET's body, if any, is dropped */
	if (!pl)
		return MHD_NO;
	for (;;) {
		if (atomic_load(&pl->opened))
			return play_answer(r, pl);
		if (sd_req_suspend(r))
			return MHD_YES;
	}
}

/* From here play_cleanup owns @pl, whenever the request ends (set under
 * d->mu: /admin/sessions walks the requests). */
static void play_own(struct sd_req *r, struct play *pl)
{
	pthread_mutex_lock(&r->d->mu);
	r->priv = pl;
	r->cleanup = play_cleanup;
	pthread_mutex_unlock(&r->d->mu);
}

/*
 * Starts a session over data bytes [start, end) (end SD_END_LIVE: follow)
 * and answers with it once it is open (see above); a HEAD gets the same
 * headers at once and no session (MHD sends Content-Length from the size
 * and no body).  A session is opened only once admission control admits
 * it (sd_capacity.c): a refusal is a 503 sent at once, before any disk
 * read or round trip, as is a full queue of opens; a HEAD needs no
 * admission.  @size is the body length when known.  @ranges: the
 * Accept-Ranges value.  Extra headers come from @hdr (name/value pairs,
 * NULL-terminated, at most two; names static, values copied).  Takes
 * @pl.
 */
static enum MHD_Result play_reply(struct sd_req *r, struct play *pl,
				  uint64_t end, unsigned status,
				  const char *type, const char *ranges,
				  const char *const *hdr)
{
	struct sd_session_opts so = {
		.name = r->name, .start = pl->start, .end = end,
		.wake = (void (*)(void *))sd_req_wake, .wake_arg = r,
	};
	uint64_t size = pl->limit == UINT64_MAX ? MHD_SIZE_UNKNOWN : pl->limit;
	enum MHD_Result refused = MHD_NO;
	int err;

	pl->r = r;
	pl->d = r->d;
	if (r->method && strcmp(r->method, MHD_HTTP_METHOD_HEAD) == 0) {
		free(pl);
		return play_respond(r, MHD_create_response_from_callback(
					    size, 4096, head_reader, NULL,
					    NULL),
				    status, type, ranges, hdr);
	}
	if (!sd_capacity_play(r, pl->bitrate, expected_disk_share(r, pl),
			      &pl->ticket, &refused)) {
		free(pl);
		return refused;
	}
	cap_send_buffer(r);
	if (!pl->t_cat)
		pl->t_cat = (int64_t)sd_now();
	pl->status = status;
	pl->type = type;
	pl->ranges = ranges;
	for (int i = 0; i < 2 && hdr && hdr[2 * i]; i++) {
		pl->hname[i] = hdr[2 * i];
		snprintf(pl->hval[i], sizeof(pl->hval[i]), "%s", hdr[2 * i + 1]);
	}
	pthread_mutex_init(&pl->omu, NULL);
	so.ino = pl->ino;
	so.data_id = pl->data_id;
	so.size = pl->known_size;
	so.live = pl->known_live;
	err = sd_session_start(r->d->pump, &so, &pl->sess);
	if (err == 0) {
		/* Its first bytes are in memory: the reply goes now, and
		 * the session's OPEN follows on an opener (the request goes
		 * straight to OPENED below). */
		atomic_store(&pl->opened, 1);
		pl->t_open = (int64_t)sd_now();
		play_own(r, pl);
		return play_answer(r, pl);
	}
	if (err == -ENOTSUP)
		err = sd_session_open_async(r->d->pump, &so, play_opened, pl);
	if (err < 0) {
		sd_capacity_release(r->d, pl->ticket);
		play_free(pl);
		if (err == -EAGAIN)
			return sd_capacity_busy(r, "open_queue", "playback "
						"refused: too many sessions "
						"waiting to open", 1);
		if (err == -ESHUTDOWN)
			return sd_reply_error(r, 503, "the server is stopping");
		return sd_reply_error(r, 500, "sd_session_open_async(%s): %s",
				      r->name, strerror(-err));
	}
	play_own(r, pl);
	return play_resume(r, NULL);
}

/* ------------------------------------------------------------------ */
/* GET /streams/<name>.ts?start=&duration=                             */
/* ------------------------------------------------------------------ */

/* sd_http.h: where a start and a duration put a range of @s (stream
 * read-locked), or an HTTP status with a message. */
unsigned sd_play_range(const struct sd_stream *s, const struct sd_start *st,
		       int64_t dur, struct sd_play_range *pr, char *msg,
		       size_t len)
{
	const struct sd_index *ix = &s->index;
	int64_t t = sd_time_resolve(st, s->start_ns, live_edge(s));
	ssize_t k = sd_index_seek(ix, t);

	memset(pr, 0, sizeof(*pr));
	if (k < 0) {
		snprintf(msg, len, "%s has no keyframe yet", s->name);
		return 503;
	}
	pr->key = (size_t)k;
	pr->start = ix->e[k].offset;
	pr->begin_wall = ix->e[k].wall_ns;
	pr->end = s->live ? SD_END_LIVE : s->data_size;
	/* Live without a duration: the newest keyframe is as far as a
	 * range that must end on one can go now. */
	pr->hold = open_end_hold(ix, pr->key);
	if (dur > 0) {
		pr->end_wall = ix->e[k].wall_ns + dur;
		if (!duration_end(s, pr->key, pr->end_wall, &pr->end)) {
			pr->end_open = 1;
			pr->end = SD_END_LIVE;
		}
	}
	if (pr->end != SD_END_LIVE && pr->end <= pr->start) {
		snprintf(msg, len, "nothing recorded in that range");
		return 416;
	}
	return 200;
}

/* Resolves the request against the index (stream read-locked): fills pl
 * and *end, or returns an HTTP status with a message. */
static unsigned play_plan(const struct sd_stream *s, const struct sd_start *st,
			  int64_t dur, struct play *pl, uint64_t *end,
			  int64_t *begin_wall, char *msg, size_t len)
{
	struct sd_play_range pr;
	unsigned status = sd_play_range(s, st, dur, &pr, msg, len);

	if (status != 200)
		return status;
	pl->key = pr.key;
	pl->start = pr.start;
	pl->end_wall = pr.end_wall;
	pl->end_open = pr.end_open;
	pl->hold = pr.hold;
	*begin_wall = pr.begin_wall;
	*end = pr.end;
	/* A known length is a Content-Length. */
	pl->limit = pr.end == SD_END_LIVE ? UINT64_MAX : pr.end - pr.start;
	return 200;
}

enum MHD_Result sd_route_play(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	struct sd_stream *s;
	struct sd_start st;
	int64_t dur = 0, begin_wall = 0;
	enum MHD_Result ret = MHD_NO;
	const char *dtext = sd_req_arg(r, "duration");
	int64_t burst = req_burst(r);
	struct play *pl;
	uint64_t end;
	unsigned status;
	char msg[160], when[40], off[32];
	const char *hdr[5];

	(void)upload;
	(void)upload_size;
	if (r->calls > 1) /* resumed: the open was queued */
		return play_resume(r, upload_size);
	if (!sd_play_allowed(r, &ret))
		return ret;
	if (sd_play_parse_start(r, "start", &st) < 0)
		return sd_reply_error(r, 400, "bad start: seconds behind live "
				      "(-30), seconds from the start (120) or "
				      "an ISO-8601 time");
	if (dtext && sd_time_parse_duration(dtext, &dur) < 0)
		return sd_reply_error(r, 400, "bad duration: seconds > 0");
	if (burst < 0)
		return sd_reply_error(r, 400, "bad burst: seconds from 0 to 600");
	if (sd_play_stream(r, &s, &ret) < 0)
		return ret;
	pl = calloc(1, sizeof(*pl));
	if (!pl) {
		sd_stream_put(s);
		return MHD_NO;
	}
	pl->t_cat = (int64_t)sd_now();
	sd_stream_rdlock(s);
	status = play_plan(s, &st, dur, pl, &end, &begin_wall, msg,
			   sizeof(msg));
	pl->bitrate = s->bitrate;
	pl->ino = s->ino;
	pl->data_id = s->data_id;
	pl->known_size = s->data_size;
	pl->known_live = s->live;
	sd_stream_unlock(s);
	sd_stream_put(s);
	if (status != 200) {
		free(pl);
		return sd_reply_error(r, status, "%s", msg);
	}
	sd_time_format_iso8601(begin_wall, when, sizeof(when));
	snprintf(off, sizeof(off), "%" PRIu64, pl->start);
	hdr[0] = "X-Streamd-Start";
	hdr[1] = when;
	hdr[2] = "X-Streamd-Offset";
	hdr[3] = off;
	hdr[4] = NULL;
	/* The body starts at the keyframe playback begins at: the media
	 * clock of pacing does too. */
	pl->paced = burst > 0;
	pl->ahead = burst;
	pl->cur = pl->key;
	pl->allow = pl->start;
	/* Ranges of a .ts response are not served (data.ts has them). */
	return play_reply(r, pl, end, 200, "video/mp2t", "none", hdr);
}

/* ------------------------------------------------------------------ */
/* GET /streams/<name>/data.ts with Range                              */
/* ------------------------------------------------------------------ */

enum MHD_Result sd_route_data(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	struct sd_stream *s;
	enum MHD_Result ret = MHD_NO;
	uint64_t size, a = 0, b = 0, bitrate, ino, first;
	uint32_t data_id;
	struct play *pl;
	int rc, live;
	char cr[96];
	const char *hdr[3] = { NULL, NULL, NULL };

	(void)upload;
	(void)upload_size;
	if (r->calls > 1) /* resumed: the open was queued */
		return play_resume(r, upload_size);
	if (!sd_play_allowed(r, &ret) || sd_play_stream(r, &s, &ret) < 0)
		return ret;
	sd_stream_rdlock(s);
	size = s->data_size;
	first = s->data_start;
	bitrate = s->bitrate;
	ino = s->ino;
	data_id = s->data_id;
	live = s->live;
	sd_stream_unlock(s);
	sd_stream_put(s);
	rc = sd_range_parse(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_RANGE),
			 size, &a, &b);
	/* Offsets stay those of the whole recording after retention
	 * trimmed its head: a range that starts in the trimmed part is
	 * unsatisfiable, and the whole file is what is left. */
	if (rc > 0 && a < first)
		rc = -ERANGE;
	if (rc < 0) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			0, NULL, MHD_RESPMEM_PERSISTENT);

		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		return sd_reply(r, 416, resp);
	}
	if (size == first)
		return sd_reply_text(r, 200, "video/mp2t", "", 0);
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return MHD_NO;
	if (rc == 0) {
		a = first;
		b = size - 1;
	} else {
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
			 a, b, size);
		hdr[0] = MHD_HTTP_HEADER_CONTENT_RANGE;
		hdr[1] = cr;
	}
	pl->start = a;
	pl->limit = b - a + 1;
	pl->bitrate = bitrate;
	pl->ino = ino;
	pl->data_id = data_id;
	pl->known_size = size;
	pl->known_live = live;
	return play_reply(r, pl, b + 1, rc ? 206 : 200, "video/mp2t", "bytes",
			  hdr);
}

/* ------------------------------------------------------------------ */
/* GET /streams/<name>/index.m3u8?start=&window=                       */
/* ------------------------------------------------------------------ */

enum MHD_Result sd_route_hls(struct sd_req *r, const char *upload,
			     size_t *upload_size)
{
	struct sd_hls_req hr = {
		.uri = "data.ts",
		.live_window_ns = (int64_t)r->d->cfg.hls_live_window_ns,
	};
	const char *wtext = sd_req_arg(r, "window");
	struct sd_stream *s;
	enum MHD_Result ret = MHD_NO;
	char *text = NULL, query[128];
	int err;

	(void)upload;
	(void)upload_size;
	if (!sd_play_allowed(r, &ret))
		return ret;
	if (r->d->cfg.play_secret[0]) {
		/* checked: digits and hex, nothing to escape */
		snprintf(query, sizeof(query), "expires=%s&sig=%s",
			 sd_req_arg(r, "expires"), sd_req_arg(r, "sig"));
		hr.query = query;
	}
	if (sd_play_parse_start(r, "start", &hr.start) < 0)
		return sd_reply_error(r, 400, "bad start: seconds behind live "
				      "(-30), seconds from the start (120) or "
				      "an ISO-8601 time");
	if (wtext && sd_time_parse_duration(wtext, &hr.window_ns) < 0)
		return sd_reply_error(r, 400, "bad window: seconds > 0");
	if (sd_play_stream(r, &s, &ret) < 0)
		return ret;
	sd_stream_rdlock(s);
	err = sd_hls_playlist(&s->index, s->data_size, !s->live, s->start_ns,
			      live_edge(s), &hr, &text);
	sd_stream_unlock(s);
	sd_stream_put(s);
	if (err == -ENOENT)
		return sd_reply_error(r, 503, "no complete segment yet");
	if (err < 0)
		return sd_reply_error(r, 500, "sd_hls_playlist: %s",
				      strerror(-err));
	ret = sd_reply_text(r, 200, "application/vnd.apple.mpegurl", text,
			    strlen(text));
	free(text);
	return ret;
}

/* ------------------------------------------------------------------ */
/* GET /admin/sessions                                                 */
/* ------------------------------------------------------------------ */

/* Every player session now, with its input buffer's counts. */
enum MHD_Result sd_route_sessions(struct sd_req *r, const char *upload,
				  size_t *upload_size)
{
	struct sd_daemon *d = r->d;
	int64_t now = (int64_t)sd_now();
	json_t *a = json_array();

	(void)upload;
	(void)upload_size;
	if (!sd_req_token_ok(r, d->cfg.admin_token)) {
		json_decref(a);
		return sd_reply_error(r, 401, "the admin endpoint needs the "
				      "admin token");
	}
	pthread_mutex_lock(&d->mu);
	for (struct sd_req *q = d->reqs; q && a; q = q->next) {
		struct play *pl = q->cleanup == play_cleanup ? q->priv : NULL;
		struct sd_session_stats st;

		/* A request still waiting for its open has no session; one
		 * whose open failed never will. */
		if (!pl || !atomic_load(&pl->opened) || !pl->sess)
			continue;
		sd_session_stats(pl->sess, &st);
		json_array_append_new(a, json_pack(
			"{s:s, s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I}",
			"stream", q->name, "url", q->url,
			"age", secs(now - q->t0),
			"start_offset", (json_int_t)pl->start,
			"sent", (json_int_t)pl->sent,
			"reads", (json_int_t)st.reads,
			"misses", (json_int_t)st.misses,
			"underflows", (json_int_t)st.underflows,
			"bytes", (json_int_t)st.bytes));
	}
	pthread_mutex_unlock(&d->mu);
	return sd_reply_json(r, a);
}
