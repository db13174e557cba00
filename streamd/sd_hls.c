/*
 * HLS media playlists (RFC 8216, version 4) over a recording's keyframe
 * index: every media segment is a byte range of the one "data" object,
 * from a keyframe (or the start of an encoder connection) to the next
 * index entry, so browsers and set-top players fetch exactly the bytes
 * the encoder sent with ordinary Range requests.  Gaps between encoder
 * connections become EXT-X-DISCONTINUITY, each followed by
 * EXT-X-PROGRAM-DATE-TIME so players keep wall-clock time across them.
 *
 * The shapes, by what the request gives and whether the recording is
 * still growing (W is the live window: window=, else hls_live_window,
 * and never under 5 target durations):
 *
 *   live, no start        sliding: the newest W (RFC 8216 6.2.2 asks at
 *                         least 3 target durations after the oldest)
 *   live, start=-N        delayed live: from the segment holding live - N
 *                         to live - N + W, sliding as time passes; what
 *                         the live playlist was N seconds ago, so every
 *                         player, even one that ignores EXT-X-START (VLC
 *                         3, ffmpeg), plays N seconds behind
 *   live, fixed start     EVENT: from the segment holding the start,
 *   (offset, ISO time)    growing to the live edge
 *   start and window=     the segments starting within [first, first + W];
 *                         once an entry lies beyond, ENDLIST
 *   finished              VOD from the first segment (or the start's),
 *                         with ENDLIST
 *
 * Why short live playlists: a player that ignores EXT-X-START begins a
 * few segments before the end and counts time from the first segment
 * listed (VLC 3 does both, so its --run-time and --stop-time measure
 * from there), and a day of 2 s segments would make every reload of an
 * EVENT playlist megabytes long.  DVR windows are asked for (window=).
 *
 * With a start, EXT-X-START:TIME-OFFSET=0,PRECISE=YES lands players that
 * honour it (hls.js, Safari) on the first segment, the requested one.
 *
 * Rules every playlist keeps (tests/streamd/test_hls.c checks them over
 * many indexes and reloads):
 *   1. A listed segment (its sequence number, byte range, duration and
 *      discontinuity number) never changes in any later playlist.
 *   2. Only complete segments are listed: never the one still written.
 *   3. EXT-X-TARGETDURATION bounds every EXTINF, and comes from the
 *      longest segment of the whole recording, so reloads keep it.  It
 *      grows only when an encoder sends a longer GOP than any before;
 *      then the live window (5 target durations at least) widens once.
 *   4. EXT-X-MEDIA-SEQUENCE counts the segments before the first one
 *      (players number a segment by it plus its place in the list, so a
 *      segment keeps its number in every playlist), and
 *      EXT-X-DISCONTINUITY-SEQUENCE counts the connections before it.
 *   5. EVENT playlists only grow; VOD ones never change.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

/* ------------------------------------------------------------------ */
/* A growing text buffer                                               */
/* ------------------------------------------------------------------ */

struct sd_text {
	char *p;
	size_t len, cap;
	int err; /* sticky -ENOMEM: the writer checks once at the end */
};

static void text_add(struct sd_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void text_add(struct sd_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->err)
		return;
	for (;;) {
		size_t room = t->cap - t->len;
		char *p;

		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->err = -EINVAL;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		room = t->cap ? t->cap * 2 : 4096;
		while (room < t->len + (size_t)n + 1)
			room *= 2;
		p = realloc(t->p, room);
		if (p == NULL) {
			t->err = -ENOMEM;
			return;
		}
		t->p = p;
		t->cap = room;
	}
}

/* ------------------------------------------------------------------ */
/* Choosing the segments                                               */
/* ------------------------------------------------------------------ */

struct sd_seglist {
	struct sd_segment *s;
	size_t n, cap;
};

static int seglist_add(void *arg, const struct sd_segment *s)
{
	struct sd_seglist *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct sd_segment *p = realloc(l->s, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		l->s = p;
		l->cap = cap;
	}
	l->s[l->n++] = *s;
	return 0;
}

struct sd_hls_range {
	size_t first;	  /* index position of the first segment */
	int64_t until_ns; /* segments start before this */
	int closes;	  /* a fixed window: ENDLIST once it cannot grow */
	const char *type; /* EXT-X-PLAYLIST-TYPE, or NULL */
	int64_t t;	  /* the wall time the first segment was sought for */
};

/* The target duration in seconds: the longest segment of the recording
 * (the last one of a finished recording counts too), rounded up. */
static int64_t target_s(const struct sd_index *ix, const struct sd_seglist *l)
{
	int64_t longest = ix->longest_ns;

	for (size_t i = 0; l && i < l->n; i++)
		if (l->s[i].duration_ns > longest)
			longest = l->s[i].duration_ns;
	/* EXTINF prints milliseconds, rounded: bound what is printed */
	longest = (longest + 500000) / 1000000;
	return longest < 1000 ? 1 : (longest + 999) / 1000;
}

/* The live window: the one asked for, else the default, and never less
 * than 5 target durations, so that with the newest segment still being
 * written the playlist still holds 3 target durations after its first
 * segment (RFC 8216 6.2.2). */
static int64_t live_window(const struct sd_index *ix,
			   const struct sd_hls_req *req)
{
	int64_t w = req->window_ns > 0 ? req->window_ns : req->live_window_ns;
	int64_t least = 5 * target_s(ix, NULL) * SD_NS;

	return w > least ? w : least;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Picks the first position, the end and the type (see the top).  0 or
 * -ENOENT. */
static int pick_range(const struct sd_index *ix, int finished,
		      int64_t start_ns, int64_t live_ns,
		      const struct sd_hls_req *req, struct sd_hls_range *r)
{
	enum sd_start_kind kind = req->start.kind;
	ssize_t pos = 0;
	int64_t t = INT64_MIN;

	r->until_ns = INT64_MAX;
	r->closes = 0;
	r->type = NULL;
	if (ix->n == 0)
		return -ENOENT;
	if (kind != SD_START_NONE)
		t = sd_time_resolve(&req->start, start_ns, live_ns);
	else if (!finished)
		t = add_sat(live_ns, -live_window(ix, req));
	r->t = t;
	if (t != INT64_MIN || kind != SD_START_NONE) {
		pos = sd_index_seek(ix, t);
		if (pos < 0)
			return -ENOENT;
	}
	r->first = (size_t)pos;
	if (finished)
		r->type = "VOD";
	if (req->window_ns > 0 && (finished || kind != SD_START_NONE)) {
		/* inclusive end; a window past the end of time: no limit */
		int64_t end = add_sat(ix->e[pos].wall_ns, req->window_ns);

		if (end < INT64_MAX)
			r->until_ns = end + 1;
		r->closes = 1;
		if (!finished && kind != SD_START_BEHIND_LIVE)
			r->type = "EVENT";
	} else if (!finished && kind == SD_START_BEHIND_LIVE) {
		r->until_ns = add_sat(t, live_window(ix, req));
	} else if (!finished && kind != SD_START_NONE) {
		r->type = "EVENT";
	}
	return 0;
}

/* EXT-X-DISCONTINUITY-SEQUENCE: the SEGMENT entries after the first
 * entry and before position @first.  Those from @first on are flagged by
 * sd_index_segments() (an empty one passes its flag to the next). */
static uint64_t discontinuities_before(const struct sd_index *ix,
				       size_t first)
{
	uint64_t n = 0;

	for (size_t i = 1; i < first && i < ix->n; i++)
		n += (ix->e[i].flags & SD_IDX_SEGMENT) != 0;
	return n;
}

/* A fixed window that some index entry already lies beyond will not
 * grow. */
static int window_closed(const struct sd_index *ix,
			 const struct sd_hls_range *r)
{
	return r->closes && r->until_ns != INT64_MAX && ix->n > 0 &&
	       ix->e[ix->n - 1].wall_ns >= r->until_ns;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* EXTINF's value: milliseconds, rounded. */
static int64_t extinf_ms(const struct sd_segment *s)
{
	return s->duration_ns / 1000000 + (s->duration_ns % 1000000 >= 500000);
}

static void write_header(struct sd_text *t, const struct sd_index *ix,
			 const struct sd_seglist *l, uint64_t disc_seq,
			 const char *type, int start)
{
	text_add(t, "#EXTM3U\n#EXT-X-VERSION:4\n");
	text_add(t, "#EXT-X-TARGETDURATION:%lld\n",
		 (long long)target_s(ix, l));
	text_add(t, "#EXT-X-MEDIA-SEQUENCE:%llu\n",
		 (unsigned long long)l->s[0].msn);
	text_add(t, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n",
		 (unsigned long long)disc_seq);
	if (type != NULL)
		text_add(t, "#EXT-X-PLAYLIST-TYPE:%s\n", type);
	/* every segment begins on a keyframe (or a connection's first
	 * byte), so the first one's start is a precise place to begin */
	if (start)
		text_add(t, "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n");
}

static void write_segment(struct sd_text *t, const struct sd_segment *s,
			  int first, const struct sd_hls_req *req)
{
	int64_t ms = extinf_ms(s);

	if (s->discontinuity)
		text_add(t, "#EXT-X-DISCONTINUITY\n");
	if (first || s->discontinuity) {
		char when[40];

		sd_time_format_iso8601(s->wall_ns, when, sizeof(when));
		text_add(t, "#EXT-X-PROGRAM-DATE-TIME:%s\n", when);
	}
	text_add(t, "#EXTINF:%lld.%03lld,\n", (long long)(ms / 1000),
		 (long long)(ms % 1000));
	text_add(t, "#EXT-X-BYTERANGE:%llu@%llu\n", (unsigned long long)s->len,
		 (unsigned long long)s->offset);
	if (req->query != NULL && req->query[0] != '\0')
		text_add(t, "%s?%s\n", req->uri, req->query);
	else
		text_add(t, "%s\n", req->uri);
}

/* The segment start (KEY or SEGMENT entry) before position @i > 0. */
static size_t prev_start(const struct sd_index *ix, size_t i)
{
	do
		i--;
	while (i > 0 && !(ix->e[i].flags & (SD_IDX_KEY | SD_IDX_SEGMENT)));
	return i;
}

static int list(const struct sd_index *ix, const struct sd_hls_range *r,
		uint64_t data_size, int finished, struct sd_seglist *l)
{
	l->n = 0;
	return sd_index_segments(ix, r->first, r->until_ns, data_size,
				 finished, seglist_add, l);
}

/* What a sliding playlist holds after its first segment, in the
 * milliseconds EXTINF prints. */
static int64_t after_first_ms(const struct sd_seglist *l)
{
	int64_t ms = 0;

	for (size_t i = 1; i < l->n; i++)
		ms += extinf_ms(&l->s[i]);
	return ms;
}

int sd_hls_playlist(const struct sd_index *ix, uint64_t data_size,
		    int finished, int64_t start_ns, int64_t live_ns,
		    const struct sd_hls_req *req, char **out)
{
	struct sd_seglist l = { 0 };
	struct sd_text t = { 0 };
	struct sd_hls_range r;
	int err, fell_back = 0;

	*out = NULL;
	err = pick_range(ix, finished, start_ns, live_ns, req, &r);
	if (err < 0)
		goto out;
	err = list(ix, &r, data_size, finished, &l);
	/* A start in the newest segment of a live recording, still growing:
	 * begin with the newest complete one instead, as a player asking
	 * for "now" wants the live edge, not an error. */
	while (err == 0 && l.n == 0 && !finished && r.first > 0) {
		r.first = prev_start(ix, r.first);
		err = list(ix, &r, data_size, finished, &l);
		fell_back = 1;
	}
	/* A fixed start is only fixed once the index reaches past it: the
	 * keyframe that begins it may be yet to come.  Until then the head
	 * may still move, so the playlist cannot promise EVENT. */
	if (r.type != NULL && strcmp(r.type, "EVENT") == 0 &&
	    (fell_back || !sd_index_seek_final(ix, r.t, r.first)))
		r.type = NULL;
	/* A sliding playlist holds 3 target durations after its first
	 * segment (RFC 8216 6.2.2); a window of wall time that spans a gap
	 * between connections holds less media, so it reaches further. */
	while (err == 0 && !finished && !r.closes && r.type == NULL &&
	       r.first > 0 && l.n > 0 &&
	       after_first_ms(&l) < 3000 * target_s(ix, &l)) {
		r.first = prev_start(ix, r.first);
		err = list(ix, &r, data_size, finished, &l);
	}
	if (err < 0)
		goto out;
	if (l.n == 0) {
		err = -ENOENT;
		goto out;
	}
	if (window_closed(ix, &r) && req->start.kind != SD_START_BEHIND_LIVE)
		r.type = "VOD"; /* a fixed window that can no longer change */
	write_header(&t, ix, &l, discontinuities_before(ix, r.first),
		     r.type, req->start.kind != SD_START_NONE);
	for (size_t i = 0; i < l.n; i++)
		write_segment(&t, &l.s[i], i == 0, req);
	if (finished || window_closed(ix, &r))
		text_add(&t, "#EXT-X-ENDLIST\n");
	err = t.err;
	if (err == 0) {
		*out = t.p;
		t.p = NULL;
	}
out:
	free(t.p);
	free(l.s);
	return err;
}
