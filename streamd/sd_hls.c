/*
 * HLS media playlists (RFC 8216, version 4) over a recording's keyframe
 * index: every media segment is a byte range of the one "data" object,
 * from a keyframe (or the start of an encoder connection) to the next
 * index entry, so browsers and set-top players fetch exactly the bytes
 * the encoder sent with ordinary Range requests.  Gaps between encoder
 * connections become EXT-X-DISCONTINUITY, each followed by
 * EXT-X-PROGRAM-DATE-TIME so players keep wall-clock time across them.
 *
 * Which segments are listed:
 *   start given         from the segment sd_index_seek() picks for it;
 *   no start, finished  from the first segment of the recording;
 *   no start, live      from the first segment, or with a window from
 *                       sd_index_seek(live - window): a sliding playlist.
 *   window, and a start or finished: only segments starting within
 *                       [first, first + window]; once a later entry
 *                       exists that window can no longer change, so it
 *                       ends with EXT-X-ENDLIST even while recording.
 * The playlist type is VOD for a whole finished recording, EVENT while
 * recording when the first segment cannot move (no window, and the start
 * is not relative to the moving live edge), and absent otherwise.
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
	int sliding;	  /* live, no start, window: the newest window */
};

/* Picks the first position and the end of the window.  0 or -ENOENT. */
static int pick_range(const struct sd_index *ix, int finished,
		      int64_t start_ns, int64_t live_ns,
		      const struct sd_hls_req *req, struct sd_hls_range *r)
{
	int given = req->start.kind != SD_START_NONE;
	ssize_t pos = 0;

	r->sliding = !given && !finished && req->window_ns > 0;
	r->until_ns = INT64_MAX;
	if (given || r->sliding) {
		int64_t t;

		if (given)
			t = sd_time_resolve(&req->start, start_ns, live_ns);
		else if (__builtin_sub_overflow(live_ns, req->window_ns, &t))
			t = INT64_MIN;
		pos = sd_index_seek(ix, t);
		if (pos < 0)
			return -ENOENT;
	}
	if (ix->n == 0)
		return -ENOENT;
	r->first = (size_t)pos;
	if (req->window_ns > 0 && !r->sliding) {
		int64_t end;

		/* inclusive end; a window past the end of time: no limit */
		if (!__builtin_add_overflow(ix->e[pos].wall_ns, req->window_ns,
					    &end) &&
		    end < INT64_MAX)
			r->until_ns = end + 1;
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

/* A window that some index entry already lies beyond will not grow. */
static int window_closed(const struct sd_index *ix,
			 const struct sd_hls_range *r)
{
	return r->until_ns != INT64_MAX && ix->n > 0 &&
	       ix->e[ix->n - 1].wall_ns >= r->until_ns;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static const char *playlist_type(int finished, const struct sd_hls_req *req)
{
	if (req->window_ns > 0)
		return NULL;
	if (finished)
		return "VOD";
	return req->start.kind == SD_START_BEHIND_LIVE ? NULL : "EVENT";
}

/* EXTINF's value: milliseconds, rounded. */
static int64_t extinf_ms(const struct sd_segment *s)
{
	return s->duration_ns / 1000000 + (s->duration_ns % 1000000 >= 500000);
}

static void write_header(struct sd_text *t, const struct sd_seglist *l,
			 uint64_t disc_seq, const char *type)
{
	int64_t longest = 1000;

	/* from the printed values, so every EXTINF is within the target */
	for (size_t i = 0; i < l->n; i++)
		if (extinf_ms(&l->s[i]) > longest)
			longest = extinf_ms(&l->s[i]);
	text_add(t, "#EXTM3U\n#EXT-X-VERSION:4\n");
	text_add(t, "#EXT-X-TARGETDURATION:%lld\n",
		 (long long)((longest + 999) / 1000));
	text_add(t, "#EXT-X-MEDIA-SEQUENCE:%zu\n", l->s[0].seq);
	text_add(t, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n",
		 (unsigned long long)disc_seq);
	if (type != NULL)
		text_add(t, "#EXT-X-PLAYLIST-TYPE:%s\n", type);
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

int sd_hls_playlist(const struct sd_index *ix, uint64_t data_size,
		    int finished, int64_t start_ns, int64_t live_ns,
		    const struct sd_hls_req *req, char **out)
{
	struct sd_seglist l = { 0 };
	struct sd_text t = { 0 };
	struct sd_hls_range r;
	int err;

	*out = NULL;
	err = pick_range(ix, finished, start_ns, live_ns, req, &r);
	if (err < 0)
		goto out;
	err = sd_index_segments(ix, r.first, r.until_ns, data_size, finished,
				seglist_add, &l);
	/* A start in the newest segment of a live recording, still growing:
	 * begin with the newest complete one instead, as a player asking
	 * for "now" wants the live edge, not an error. */
	while (err == 0 && l.n == 0 && !finished && r.first > 0) {
		do
			r.first--;
		while (r.first > 0 && !(ix->e[r.first].flags & SD_IDX_KEY));
		err = sd_index_segments(ix, r.first, r.until_ns, data_size,
					finished, seglist_add, &l);
	}
	if (err < 0)
		goto out;
	if (l.n == 0) {
		err = -ENOENT;
		goto out;
	}
	write_header(&t, &l, discontinuities_before(ix, r.first),
		     playlist_type(finished, req));
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
