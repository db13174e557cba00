/*
 * streamd-soak's viewers.  Viewer i watches in mode i % 4, spread over
 * the K recordings so that each sees every mode (recording (i / 4 + i) %
 * K):
 * progressive time-shifted MPEG-TS (.ts?start=-S), the same with a
 * duration (the response ends on the keyframe nearest S + D), byte ranges
 * of data.ts, or HLS (a playlist, then its EXT-X-BYTERANGE segments of
 * data.ts, refreshed while the recording grows).  Every viewer reads at
 * the stream's rate through a token bucket with a one-second start-up
 * burst, checks every body byte against what its recorder sent at that
 * offset (soak_rec_verify), and now and then seeks: it drops its request
 * on purpose and starts again at a new random position.
 *
 * States (phase), with the function that moves the viewer:
 *   VP_IDLE     --view_next at t_wake------------------> VP_BODY or
 *                                                         VP_PLAYLIST
 *   VP_PLAYLIST --playlist_done: segments---------------> VP_BODY
 *               --playlist_done: none new---------------> VP_IDLE (1 s)
 *   VP_BODY     --body_done (whole), view_seek (on
 *                 purpose), view_error, mismatch--------> VP_IDLE
 *   VP_BODY, VP_PLAYLIST --view_refused (503 with
 *                 Retry-After)--------------------------> VP_IDLE (until
 *                                                         t_retry)
 * Invariants:
 *  1. In VP_BODY with placed set, off is the data offset of the next
 *     body byte; no byte is counted as verified before it is compared.
 *  2. A connection closed by the viewer on purpose (seek, the run's end)
 *     is never counted as an error.
 *  3. An HLS viewer never reads a byte below next_off again: segments
 *     already read are skipped on a refresh.
 *  4. A refused request is neither an error nor a session, and the
 *     viewer asks nothing before t_retry (not even after a seek).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "soak.h"

#define BURST_S 1.0		/* start-up burst and bucket size */
#define QUANTUM_MAX 16384	/* read size when paced */
#define SEEK_MIN_S 5.0		/* a viewer seeks after 5..30 s */
#define SEEK_MAX_S 30.0
#define PUBLISH_MARGIN_S 1.0	/* ranges stay this far behind what
				   streamd last said it had published */
#define REFRESH_S 1.0		/* HLS: live edge reached, look again */
#define HLS_BACK_S 4.0		/* HLS refresh: from a bit before here */
#define HLS_WINDOW "30"
#define PLAYLIST_MAX (4u << 20)
#define RETRY_MAX_S 30.0	/* a refused viewer waits at most this */
#define RETRY_JITTER_S 0.5	/* and a random part of (this + half) */

enum view_phase { VP_IDLE, VP_PLAYLIST, VP_BODY };

static char rx_buf[256 * 1024];	/* bodies are checked, not kept */

static const char *const mode_names[VM_COUNT] = {
	"ts", "ts+duration", "range", "hls",
};

static void view_name(const struct soak *s, const struct soak_viewer *v,
		      char *buf, size_t len)
{
	snprintf(buf, len, "viewer %u (%s, %s)", v->idx,
		 mode_names[v->mode], s->rec[v->stream].name);
}

/* Ends the request; with @why (an HTTP error or short response) counted
 * (invariant 2: NULL for the viewer's own decisions).  Next in @delay. */
static void view_end(struct soak *s, struct soak_viewer *v, double now,
		     double delay, const char *why, int err)
{
	char name[128];

	if (why && v->lc.state != LG_DONE) {
		view_name(s, v, name, sizeof(name));
		soak_http_error(s, name, "%s%s%s", why, err ? ": " : "",
				err ? strerror(err) : "");
	}
	lg_conn_close(&v->lc);
	v->phase = VP_IDLE;
	v->t_wake = now + delay;
}

/* The seconds of recording @i streamd has published. */
static double history_s(const struct soak *s, unsigned i, double now)
{
	(void)now;
	return s->rec[i].pub_s;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void view_open(struct soak *s, struct soak_viewer *v, double now,
		      const char *path, const char *range, int phase)
{
	char req[1024];
	const char *what = "";
	int err;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		 "User-Agent: " PROG "\r\n%sConnection: close\r\n\r\n", path,
		 s->target.hostport, range);
	v->lc.have_head = v->lc.readable = false;
	v->lc.head_len = 0;
	v->lc.dec = (struct lg_chunk_dec){ .st = LG_CD_SIZE };
	v->body = v->first_len = 0;
	v->want = UINT64_MAX;
	v->phase = phase;
	s->sessions += phase == VP_BODY;
	err = lg_conn_open(&v->lc, s->ep, &s->target, v, req, sizeof(req),
			   &what);
	if (err < 0) {
		v->lc.state = LG_OPEN;	/* so that view_end counts it */
		view_end(s, v, now, 1.0, what, -err);
	}
}

/* A byte range of data.ts at @off, @len bytes. */
static void open_range(struct soak *s, struct soak_viewer *v, double now,
		       uint64_t off, uint64_t len)
{
	char path[128], range[96];

	snprintf(path, sizeof(path), "/streams/%s/data.ts",
		 s->rec[v->stream].name);
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64
		 "\r\n", off, off + len - 1);
	view_open(s, v, now, path, range, VP_BODY);
	v->off = off;
	v->placed = true;
	v->want = len;
}

static void open_ts(struct soak *s, struct soak_viewer *v, double now)
{
	double hist = history_s(s, v->stream, now);
	uint64_t span = hist > 4 ? (uint64_t)(hist - 3) : 1;
	unsigned behind = 2 + (unsigned)soak_rand(s, span);
	char path[160];
	int n = snprintf(path, sizeof(path), "/streams/%s.ts?start=-%u",
			 s->rec[v->stream].name, behind);

	if (v->mode == VM_TS_DURATION)
		snprintf(path + n, sizeof(path) - (size_t)n, "&duration=%u",
			 2 + (unsigned)soak_rand(s, 9));
	view_open(s, v, now, path, "", VP_BODY);
	v->placed = false;
}

/* A random range well behind what the recorder has sent. */
static void open_random_range(struct soak *s, struct soak_viewer *v,
			      double now)
{
	const struct soak_rec *r = &s->rec[v->stream];
	double margin = s->rate * PUBLISH_MARGIN_S;
	uint64_t len = (uint64_t)(s->rate * (1 + (double)soak_rand(s, 8)));
	uint64_t avail = (double)r->pub_bytes > margin ?
			 r->pub_bytes - (uint64_t)margin : 0;

	if (avail < 2 * SOAK_TS_PACKET) {
		v->t_wake = now + 1;
		return;
	}
	if (len > avail / 2)
		len = avail / 2;
	open_range(s, v, now, soak_rand(s, avail - len), len);
}

/* The playlist from @pos_s seconds after the recording's start. */
static void open_playlist(struct soak *s, struct soak_viewer *v, double now,
			  double pos_s)
{
	char path[160];

	snprintf(path, sizeof(path), "/streams/%s/index.m3u8?start=%.0f"
		 "&window=" HLS_WINDOW, s->rec[v->stream].name,
		 pos_s > 0 ? floor(pos_s) : 0);
	view_open(s, v, now, path, "", VP_PLAYLIST);
	v->pl_len = 0;
}

/* What the viewer asks for next (VP_IDLE at t_wake). */
static void view_next(struct soak *s, struct soak_viewer *v, double now)
{
	if (v->mode == VM_TS || v->mode == VM_TS_DURATION) {
		open_ts(s, v, now);
	} else if (v->mode == VM_RANGE) {
		open_random_range(s, v, now);
	} else if (v->seg_i < v->nseg) {
		const struct soak_seg *g = &v->segs[v->seg_i++];

		open_range(s, v, now, g->off, g->len);
	} else {
		open_playlist(s, v, now, v->pos0_s + (now - v->t_play0) -
			      HLS_BACK_S);
	}
}

/* A seek: the current request is dropped on purpose and the viewer
 * starts again somewhere else. */
static void view_seek(struct soak *s, struct soak_viewer *v, double now)
{
	double hist = history_s(s, v->stream, now);

	view_end(s, v, now, 0, NULL, 0);
	v->t_seek = now + SEEK_MIN_S +
		    (double)soak_rand(s, (uint64_t)(SEEK_MAX_S - SEEK_MIN_S));
	v->nseg = v->seg_i = 0;
	v->next_off = 0;
	v->t_play0 = now;
	v->pos0_s = hist > 8 ? 2 + (double)soak_rand(s, (uint64_t)(hist - 6))
			     : 0;
}

/* ------------------------------------------------------------------ */
/* HLS playlists                                                       */
/* ------------------------------------------------------------------ */

static int seg_add(struct soak_viewer *v, uint64_t off, uint64_t len)
{
	if (v->nseg == v->seg_cap) {
		size_t cap = v->seg_cap ? 2 * v->seg_cap : 32;
		struct soak_seg *p = realloc(v->segs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->segs = p, v->seg_cap = cap;
	}
	v->segs[v->nseg++] = (struct soak_seg){ off, len };
	return 0;
}

/* The segments at or past next_off (invariant 3). */
static void playlist_done(struct soak *s, struct soak_viewer *v, double now)
{
	unsigned long long len, off;
	const char *p;

	v->nseg = v->seg_i = 0;
	for (p = v->pl; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 :
					     NULL) {
		if (sscanf(p, "#EXT-X-BYTERANGE:%llu@%llu", &len, &off) != 2 ||
		    off < v->next_off || !len)
			continue;
		if (seg_add(v, off, len) < 0)
			break;
	}
	lg_conn_close(&v->lc);
	if (!v->nseg && (!v->pl || !strstr(v->pl, "#EXTM3U"))) {
		view_end(s, v, now, 1.0, "not a playlist", 0);
		return;
	}
	v->phase = VP_IDLE;
	v->t_wake = v->nseg ? now : now + REFRESH_S;
}

static void playlist_bytes(struct soak *s, struct soak_viewer *v,
			   const char *buf, size_t n)
{
	if (v->pl_len + n + 1 > v->pl_cap) {
		size_t cap = v->pl_cap ? v->pl_cap : 8192;
		char *p;

		while (cap < v->pl_len + n + 1)
			cap *= 2;
		if (cap > PLAYLIST_MAX || !(p = realloc(v->pl, cap))) {
			view_end(s, v, tool_now_s(), 1.0, "playlist too big", 0);
			return;
		}
		v->pl = p, v->pl_cap = cap;
	}
	memcpy(v->pl + v->pl_len, buf, n);
	v->pl_len += n;
	v->body += n;
	v->pl[v->pl_len] = '\0';
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */
/* ------------------------------------------------------------------ */

/* A mismatch: told (the first few), counted, and the session ends. */
static void mismatch(struct soak *s, struct soak_viewer *v, double now,
		     uint64_t off, const char *what)
{
	char name[128];

	view_name(s, v, name, sizeof(name));
	if (++s->mismatches <= 10)
		fprintf(stderr, PROG ": mismatch: %s: %s at data offset %"
			PRIu64 "\n", name, what, off);
	view_end(s, v, now, 1.0, NULL, 0);
}

/* A .ts body's place: the index in its first packet (builtin), else the
 * X-Streamd-Offset header; both must agree when both exist.  Returns
 * false after mismatch(). */
static bool place(struct soak *s, struct soak_viewer *v, double now)
{
	struct soak_rec *r = &s->rec[v->stream];
	int64_t hdr = v->lc.h.offset;
	uint64_t k;

	if (r->ffmpeg) {
		if (hdr < 0) {
			view_end(s, v, now, 1.0, "no X-Streamd-Offset", 0);
			return false;
		}
		v->off = (uint64_t)hdr;
	} else if (soak_ts_locate(&r->ts, v->first, &k) < 0) {
		mismatch(s, v, now, hdr >= 0 ? (uint64_t)hdr : 0,
			 "the first packet is not one of this recording's");
		return false;
	} else {
		v->off = k * SOAK_TS_PACKET;
		if (hdr >= 0 && (uint64_t)hdr != v->off) {
			mismatch(s, v, now, v->off, "X-Streamd-Offset differs "
				 "from the first packet's index");
			return false;
		}
	}
	v->placed = true;
	return true;
}

/* Compares @n payload bytes with what was sent (invariant 1); false
 * after mismatch(). */
static bool check(struct soak *s, struct soak_viewer *v, double now,
		  const uint8_t *buf, size_t n)
{
	bool avail;
	size_t ok = soak_rec_verify(&s->rec[v->stream], v->off, buf, n, &avail);

	if (!avail) {
		mismatch(s, v, now, v->off, "bytes the recorder never sent");
		return false;
	}
	if (ok < n) {
		mismatch(s, v, now, v->off + ok, "a byte differs");
		return false;
	}
	v->off += n;
	s->verified += n;
	return true;
}

/* Payload bytes of a media body; false when the session ended. */
static bool body_bytes(struct soak *s, struct soak_viewer *v, double now,
		       const uint8_t *buf, size_t n)
{
	if (v->body + n > v->want) {
		view_end(s, v, now, 1.0, "more bytes than announced", 0);
		return false;
	}
	v->body += n;
	if (!v->placed) {
		size_t k = SOAK_TS_PACKET - v->first_len;

		k = k < n ? k : n;
		memcpy(v->first + v->first_len, buf, k);
		v->first_len += k;
		buf += k, n -= k;
		if (v->first_len < SOAK_TS_PACKET)
			return true;
		if (!place(s, v, now) ||
		    !check(s, v, now, v->first, SOAK_TS_PACKET))
			return false;
	}
	return n == 0 || check(s, v, now, buf, n);
}

/* The body is complete: the next request (HLS: the next segment). */
static void body_done(struct soak *s, struct soak_viewer *v, double now)
{
	if (v->mode == VM_HLS)
		v->next_off = v->off;
	view_end(s, v, now, 0, NULL, 0);
}

/* Raw bytes after the head: de-chunked, then to the playlist or the
 * media checks; notices the end of the body. */
static void view_bytes(struct soak *s, struct soak_viewer *v, double now,
		       char *buf, size_t n)
{
	struct lg_conn *lc = &v->lc;

	if (lc->h.chunked) {
		n = lg_chunk_feed(&lc->dec, buf, n, true);
		if (lc->dec.st == LG_CD_BAD) {
			view_end(s, v, now, 1.0, "bad chunked encoding", 0);
			return;
		}
	}
	if (v->phase == VP_PLAYLIST)
		playlist_bytes(s, v, buf, n);
	else if (!body_bytes(s, v, now, (const uint8_t *)buf, n))
		return;
	if (lc->state == LG_DONE)
		return;
	if ((lc->h.chunked && lc->dec.st == LG_CD_DONE) ||
	    (!lc->h.chunked && v->want != UINT64_MAX && v->body == v->want)) {
		if (v->phase == VP_PLAYLIST)
			playlist_done(s, v, now);
		else
			body_done(s, v, now);
	}
}

/* The connection ended (recv 0): whole only for a body delimited by the
 * close; a live .ts must never end while its recorder streams. */
static void view_eof(struct soak *s, struct soak_viewer *v, double now)
{
	if (!v->lc.h.chunked && v->lc.h.content_length < 0 &&
	    v->mode != VM_TS) {
		if (v->phase == VP_PLAYLIST)
			playlist_done(s, v, now);
		else
			body_done(s, v, now);
		return;
	}
	view_end(s, v, now, 1.0, v->mode == VM_TS && v->want == UINT64_MAX ?
		 "the live stream ended" : "short response", 0);
}

/*
 * Refused by admission control (503 with Retry-After): counted, never an
 * error, and not a session.  The viewer asks again once the advised time
 * has passed, capped at RETRY_MAX_S so that a server advising hours does
 * not take the soak's load away, plus a random part (up to half that
 * time and RETRY_JITTER_S more) so that viewers refused together do not
 * come back together.  An HLS segment refused is asked for again; the
 * other modes pick a new place, as a player that tries again would.
 */
static void view_refused(struct soak *s, struct soak_viewer *v, double now,
			 double after)
{
	double wait = after < RETRY_MAX_S ? after : RETRY_MAX_S;

	wait += (wait / 2 + RETRY_JITTER_S) *
		(double)soak_rand(s, 1000) / 1000.0;
	s->refused++;
	if (v->phase == VP_BODY) {
		s->sessions--;
		if (v->mode == VM_HLS && v->seg_i > 0)
			v->seg_i--;
	}
	view_end(s, v, now, wait, NULL, 0);
	v->t_retry = v->t_wake;
}

/* The head: the status the request calls for, and what it announces. */
static bool view_head(struct soak *s, struct soak_viewer *v, double now)
{
	struct lg_conn *lc = &v->lc;
	int want = v->phase == VP_BODY && (v->mode == VM_RANGE ||
					    v->mode == VM_HLS) ? 206 : 200;
	int r = lg_conn_head(lc);
	char what[96];

	if (r <= 0) {
		if (r < 0)
			view_end(s, v, now, 1.0, r == -EPIPE ? "connection "
				 "closed before the response" : r == -EPROTO ?
				 "not an HTTP response" : "recv",
				 r == -EPIPE || r == -EPROTO ? 0 : -r);
		return false;
	}
	if (lc->h.status == 503 && lc->h.retry_after >= 0) {
		view_refused(s, v, now, lc->h.retry_after);
		return false;
	}
	if (lc->h.status != want) {
		snprintf(what, sizeof(what), "streamd answered %d, not %d",
			 lc->h.status, want);
		view_end(s, v, now, 1.0, what, 0);
		return false;
	}
	if (want == 206 && lc->h.range_start != (int64_t)v->off) {
		view_end(s, v, now, 1.0, "Content-Range of another range", 0);
		return false;
	}
	if (!lc->h.chunked && lc->h.content_length >= 0) {
		/* A random range may reach past what is published yet (the
		 * newest frame waits for its end): streamd answers the part
		 * that exists, as RFC 9110 says; those bytes are checked. */
		if (v->mode == VM_RANGE && lc->h.content_length > 0 &&
		    (uint64_t)lc->h.content_length < v->want)
			v->want = (uint64_t)lc->h.content_length;
		if (v->want != UINT64_MAX &&
		    (uint64_t)lc->h.content_length != v->want) {
			view_end(s, v, now, 1.0, "Content-Length of another "
				 "size", 0);
			return false;
		}
		v->want = (uint64_t)lc->h.content_length;
	}
	view_bytes(s, v, now, lc->head + lc->h.len, lc->head_len - lc->h.len);
	return lc->state == LG_OPEN;
}

static double quantum(const struct soak *s)
{
	return s->rate * 0.1 < QUANTUM_MAX ? s->rate * 0.1 : QUANTUM_MAX;
}

/* Reads what the bucket allows (a playlist and the head at any time). */
static void view_read(struct soak *s, struct soak_viewer *v, double now)
{
	struct lg_conn *lc = &v->lc;

	if (!lc->have_head && !view_head(s, v, now))
		return;
	while (lc->state == LG_OPEN && lc->readable &&
	       (v->phase == VP_PLAYLIST || v->bucket.tokens >= quantum(s))) {
		size_t want = v->phase == VP_PLAYLIST ||
			      v->bucket.tokens > (double)sizeof(rx_buf) ?
			      sizeof(rx_buf) : (size_t)v->bucket.tokens;
		ssize_t n = recv(lc->fd, rx_buf, want, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			lc->readable = false;
		} else if (n < 0) {
			view_end(s, v, now, 1.0, "recv", errno);
		} else if (n == 0) {
			view_eof(s, v, now);
		} else {
			if (v->phase == VP_BODY)
				v->bucket.tokens -= (double)n;
			view_bytes(s, v, now, rx_buf, (size_t)n);
		}
	}
}

/* ------------------------------------------------------------------ */
/* The loop's calls                                                    */
/* ------------------------------------------------------------------ */

void soak_view_tick(struct soak *s, struct soak_viewer *v, double now)
{
	lg_bucket_refill(&v->bucket, now);
	if (now >= v->t_seek && v->mode != VM_TS_DURATION)
		view_seek(s, v, now);
	if (v->phase == VP_IDLE && now >= v->t_wake && now >= v->t_retry)
		view_next(s, v, now);
	if (v->lc.state == LG_OPEN && v->lc.readable)
		view_read(s, v, now);
}

void soak_view_event(struct soak *s, struct soak_viewer *v, double now)
{
	int r;

	if (v->lc.state == LG_DONE)
		return;
	if (v->lc.state == LG_CONNECTING && (r = lg_conn_connected(&v->lc))) {
		view_end(s, v, now, 1.0, "connect", -r);
		return;
	}
	if ((r = lg_conn_flush(&v->lc)) < 0) {
		view_end(s, v, now, 1.0, "send", -r);
		return;
	}
	v->lc.readable = true;
	view_read(s, v, now);
}

int soak_viewers_start(struct soak *s)
{
	double now = tool_now_s();

	s->view = calloc(s->cfg.viewers, sizeof(*s->view));
	if (!s->view)
		return -ENOMEM;
	for (unsigned i = 0; i < s->cfg.viewers; i++) {
		struct soak_viewer *v = &s->view[i];

		unsigned k = (i / VM_COUNT + i) % s->cfg.recorders;

		/* A recording streamd refused has nothing to watch: the
		 * next one that is recorded instead. */
		for (unsigned n = 0; n < s->cfg.recorders && s->rec[k].refused;
		     n++)
			k = (k + 1) % s->cfg.recorders;
		*v = (struct soak_viewer){ .lc.fd = -1, .kind = SK_VIEWER,
					   .idx = i, .stream = k,
					   .mode = (enum soak_mode)(i % VM_COUNT) };
		lg_bucket_init(&v->bucket, s->rate, s->rate * BURST_S, now);
		view_seek(s, v, now);
	}
	s->nview = s->cfg.viewers;
	s->viewing = true;
	return 0;
}

void soak_viewers_stop(struct soak *s)
{
	for (unsigned i = 0; s->view && i < s->nview; i++) {
		lg_conn_close(&s->view[i].lc);
		free(s->view[i].lc.out);
		free(s->view[i].pl);
		free(s->view[i].segs);
	}
	free(s->view);
	s->view = NULL;
	s->nview = 0;
	s->viewing = false;
}
