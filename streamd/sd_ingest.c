/*
 * The in-flight demuxer of encoder uploads.  The HTTP thread copies an
 * upload's bytes into a bounded ring (sd_ingest_push never blocks); an
 * ingest thread takes them out and passes them on (on_bytes, with
 * on_idle while an upload stalls, so the writer can publish what it
 * holds).  Each upload is parsed once.  libavformat probes its head
 * through a custom, non-seekable AVIOContext whose read callback blocks
 * until bytes arrive: the bytes are held back while the probe runs
 * (avformat may rewind within its own buffer, never into ours) and handed
 * over in one piece after a successful probe, with the codecs on_ready
 * reports and the stream keyframes come from.  After that an MPEG-TS
 * upload is read only by its TS scan (sd_ts.c), which finds the
 * keyframes, their PTS and the offset where playback of each may start
 * (the PAT before it) in the pass that also finds the recorder's frame
 * boundaries; the scan is shared with the recorder the bytes go to, so
 * each byte is scanned once, by whichever side sees it first, and the
 * ingest reports the keys it found once it has passed their bytes on.
 * Other containers keep libavformat as their one parser: the read
 * callback passes bytes on as avformat reads them, and each demuxed
 * packet (av_read_frame) may be a keyframe at its position.  Bytes leave
 * the ring straight for where they go (the held copy, or the space
 * on_space offers: the recorder's write block), so on the way there a
 * byte is copied twice, into the ring and out of it (a probed byte once
 * more, out of the held copy); libdjmfs writes the recorder's blocks to
 * the volume from where they lie (sd_rec.c), so that is every copy
 * between the socket and the disk.
 *
 * Invariants:
 *  1. Every byte pushed leaves the ring exactly once, in order, through
 *     ingest_take(); after a successful probe each such byte is passed to
 *     on_bytes exactly once, in the order taken.  Before that, none is.
 *  2. During the probe at most probe_cap = probe_size + SD_PROBE_SLACK
 *     bytes are taken; the held copy is bounded by the same.
 *  3. `stopped` (under mu) is set once the outcome can no longer use more
 *     bytes (probe failure, callback error, thread end); from then on the
 *     ring is emptied and push takes nothing.
 *  4. on_wake is called without mu held: once per push that took less
 *     than offered (when a quarter of the ring is free again), and once
 *     when the state becomes DONE.
 *  5. Reported key offsets never decrease and never exceed the bytes
 *     already passed to on_bytes.
 *  6. on_idle runs only once RUNNING, only while the thread waits for
 *     bytes, at most once per SD_IDLE_NS, without mu held.
 *
 * States (sd_ingest_state):
 *   PROBING --ingest_probe() ok, before on_ready--> RUNNING
 *   PROBING --probe failure / callback error-----> DONE (ingest_main)
 *   RUNNING --upload drained / callback error----> DONE (ingest_main)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/mathematics.h>

#include "streamd-int.h"

#define SD_INGEST_PROBE_DEFAULT (1024 * 1024)
#define SD_INGEST_RING_DEFAULT (4 * 1024 * 1024)
#define SD_IO_BUF 32768		   /* AVIO buffer */
#define SD_PROBE_SLACK (64 * 1024) /* bytes the probe may take past probe_size */
#define SD_ANALYZE_US (5 * AV_TIME_BASE)
#define SD_IDLE_NS 100000000L /* on_idle while waiting for bytes */

struct sd_ingest {
	struct sd_ingest_cbs cbs;
	struct sd_logger log;
	uint64_t probe_size;
	pthread_t thread;

	pthread_mutex_t mu; /* guards the block below */
	pthread_cond_t cv;
	uint8_t *ring;
	size_t cap, head, len;
	int finished;	/* end of upload */
	int stopped;	/* invariant 3 */
	int want_wake;	/* a push took less than offered */
	enum sd_ingest_state state;
	int result;
	uint64_t bytes_in;
	struct timespec idle_at; /* CLOCK_MONOTONIC: next on_idle */

	int abort;	/* read with __atomic: avformat's interrupt callback */
	uint64_t packets, keyframes; /* __atomic; MPEG-TS packets: PES */

	/* Ingest thread only. */
	AVFormatContext *fmt;
	AVIOContext *pb;
	int probing;
	size_t probe_cap;
	uint8_t *hold;
	size_t hold_len, hold_cap;
	int overrun;	 /* the probe hit probe_cap */
	uint64_t taken;	 /* bytes taken from the ring */
	uint64_t passed; /* bytes passed to on_bytes */
	int cb_err;	 /* first callback error */
	int is_ts;
	int key_stream, key_audio;
	int have_key;
	uint64_t last_key_off;
	int64_t last_key_pts;
	struct sd_ts *ts;	/* the scan of the bytes passed on (MPEG-TS) */
	struct sd_ts *ts_own;	/* when no one shares one */
};

#define ingest_log(in, level, ...) sd__log(&(in)->log, level, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Key offsets                                                         */
/* ------------------------------------------------------------------ */

/* Where playback of a keyframe at @pos may begin (invariant 5): @pos,
 * the scan's key offset or the demuxed packet's position (-1: unknown,
 * the bytes passed so far). */
static uint64_t key_offset(struct sd_ingest *in, int64_t pos)
{
	uint64_t off = pos >= 0 ? (uint64_t)pos : in->passed;

	if (off > in->passed)
		off = in->passed;
	if (in->have_key && off < in->last_key_off)
		off = in->last_key_off;
	return off;
}

/* Reports a keyframe at @pos (see key_offset) with @pts. */
static int ingest_key(struct sd_ingest *in, int64_t pos, int64_t pts)
{
	uint64_t off = key_offset(in, pos);
	int err;

	if (in->cbs.on_key && (err = in->cbs.on_key(in->cbs.arg, off, pts)) < 0)
		return err;
	in->have_key = 1;
	in->last_key_off = off;
	in->last_key_pts = pts;
	__atomic_fetch_add(&in->keyframes, 1, __ATOMIC_RELAXED);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The ring                                                            */
/* ------------------------------------------------------------------ */

size_t sd_ingest_push(struct sd_ingest *in, const void *buf, size_t len)
{
	size_t took = 0;

	pthread_mutex_lock(&in->mu);
	if (!in->stopped && !in->finished) {
		const uint8_t *p = buf;

		while (took < len && in->len < in->cap) {
			size_t tail = (in->head + in->len) % in->cap;
			size_t k = in->cap - tail; /* up to the wrap */

			if (k > in->cap - in->len)
				k = in->cap - in->len;
			if (k > len - took)
				k = len - took;
			memcpy(in->ring + tail, p + took, k);
			in->len += k;
			took += k;
		}
		if (took < len)
			in->want_wake = 1;
		in->bytes_in += took;
		if (took)
			pthread_cond_signal(&in->cv);
	}
	pthread_mutex_unlock(&in->mu);
	return took;
}

static int ingest_fail(struct sd_ingest *in, int err);

static void idle_arm(struct sd_ingest *in)
{
	clock_gettime(CLOCK_MONOTONIC, &in->idle_at);
	in->idle_at.tv_nsec += SD_IDLE_NS;
	if (in->idle_at.tv_nsec >= 1000000000L) {
		in->idle_at.tv_sec++;
		in->idle_at.tv_nsec -= 1000000000L;
	}
}

/* Waits (mu held) until there are bytes, the upload ended, or the ingest
 * stopped, calling on_idle every SD_IDLE_NS of waiting once running.
 * Returns 0, or on_idle's error (the ingest is then stopped). */
static int ingest_wait(struct sd_ingest *in)
{
	int err;

	while (!in->len && !in->finished && !in->stopped) {
		if (!in->cbs.on_idle || in->state != SD_INGEST_RUNNING) {
			pthread_cond_wait(&in->cv, &in->mu);
			continue;
		}
		if (pthread_cond_timedwait(&in->cv, &in->mu, &in->idle_at) !=
		    ETIMEDOUT)
			continue;
		idle_arm(in);
		pthread_mutex_unlock(&in->mu);
		err = in->cbs.on_idle(in->cbs.arg);
		if (err < 0)
			ingest_fail(in, err);
		pthread_mutex_lock(&in->mu);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Takes up to @max bytes (invariant 1), blocking until there are some.
 * Returns the count, 0 at the end of the upload, -ECANCELED once
 * stopped. */
static ssize_t ingest_take(struct sd_ingest *in, uint8_t *buf, size_t max)
{
	ssize_t got = 0;
	int wake = 0;

	pthread_mutex_lock(&in->mu);
	if (ingest_wait(in) < 0) {
		pthread_mutex_unlock(&in->mu);
		return -ECANCELED;
	}
	if (in->stopped) {
		got = -ECANCELED;
		goto out;
	}
	while ((size_t)got < max && in->len) {
		size_t k = in->cap - in->head;

		if (k > in->len)
			k = in->len;
		if (k > max - (size_t)got)
			k = max - (size_t)got;
		memcpy(buf + got, in->ring + in->head, k);
		in->head = (in->head + k) % in->cap;
		in->len -= k;
		got += (ssize_t)k;
	}
	if (in->want_wake && in->cap - in->len >= in->cap / 4) {
		in->want_wake = 0;
		wake = 1;
	}
out:
	pthread_mutex_unlock(&in->mu);
	if (wake && in->cbs.on_wake)
		in->cbs.on_wake(in->cbs.arg);
	if (got > 0)
		in->taken += (uint64_t)got;
	return got;
}

/* Invariant 3: from now on no byte is wanted. */
static void ingest_stop(struct sd_ingest *in)
{
	pthread_mutex_lock(&in->mu);
	in->stopped = 1;
	in->head = in->len = 0;
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

static int ingest_fail(struct sd_ingest *in, int err)
{
	if (!in->cb_err)
		in->cb_err = err;
	__atomic_store_n(&in->abort, 1, __ATOMIC_RELEASE);
	ingest_stop(in);
	return err;
}

/* Reports the keyframes the TS scan found in the bytes passed on. */
static int ingest_ts_keys(struct sd_ingest *in)
{
	uint64_t off;
	int64_t pts;
	int err;

	__atomic_store_n(&in->packets, sd_ts_pes(in->ts), __ATOMIC_RELAXED);
	while (sd_ts_take_key(in->ts, &off, &pts))
		if ((err = ingest_key(in, (int64_t)off, pts)) < 0)
			return err;
	return 0;
}

/* Passes bytes on after the probe (invariant 1). */
static int ingest_pass(struct sd_ingest *in, const uint8_t *p, size_t n)
{
	int err = in->cbs.on_bytes ? in->cbs.on_bytes(in->cbs.arg, p, n) : 0;

	if (err < 0)
		return ingest_fail(in, err);
	if (!in->is_ts) {
		in->passed += n;
		return 0;
	}
	/* A scan shared with on_bytes' side has seen these bytes already. */
	if ((err = sd_ts_feed(in->ts, in->passed, p, n)) < 0)
		return ingest_fail(in, err);
	in->passed += n;
	if ((err = ingest_ts_keys(in)) < 0)
		return ingest_fail(in, err);
	return 0;
}

/* Room for @n more held bytes, at *@dst. */
static int ingest_hold_room(struct sd_ingest *in, size_t n, uint8_t **dst)
{
	if (in->hold_len + n > in->hold_cap) {
		size_t ncap = in->hold_cap ? in->hold_cap : 256 * 1024;
		uint8_t *nh;

		while (ncap < in->hold_len + n)
			ncap *= 2;
		nh = realloc(in->hold, ncap);
		if (!nh)
			return ingest_fail(in, -ENOMEM);
		in->hold = nh;
		in->hold_cap = ncap;
	}
	*dst = in->hold + in->hold_len;
	return 0;
}

/* Where the next bytes taken from the ring go, at most *@want of them:
 * while probing, the held copy; then the space on_space offers (the
 * recorder's write block), so a byte is copied once on its way there;
 * else NULL (the demuxer's buffer, passed on from there). */
static uint8_t *ingest_dest(struct sd_ingest *in, size_t *want)
{
	void *dst = NULL;
	size_t room;

	if (in->probing)
		return ingest_hold_room(in, *want, (uint8_t **)&dst) < 0 ?
			       NULL : dst;
	if (!in->cbs.on_space ||
	    !(room = in->cbs.on_space(in->cbs.arg, &dst)))
		return NULL;
	if (*want > room)
		*want = room;
	return dst;
}

/* avformat's read callback.  The bytes land where they are going
 * (ingest_dest) and the demuxer reads its own copy of them. */
static int ingest_read(void *opaque, uint8_t *buf, int size)
{
	struct sd_ingest *in = opaque;
	size_t want = size > 0 ? (size_t)size : 0;
	uint8_t *dst;
	ssize_t n;
	int err;

	if (in->probing) {
		if (in->taken >= in->probe_cap) {
			in->overrun = 1;
			return AVERROR_EOF;
		}
		if (want > in->probe_cap - in->taken)
			want = in->probe_cap - in->taken;
	}
	dst = ingest_dest(in, &want);
	if (in->cb_err)
		return AVERROR_EXIT;
	n = ingest_take(in, dst ? dst : buf, want);
	if (n == 0)
		return AVERROR_EOF;
	if (n < 0)
		return AVERROR_EXIT;
	if (dst)
		memcpy(buf, dst, (size_t)n); /* before on_bytes may send dst */
	if (in->probing) {
		in->hold_len += (size_t)n;
		return (int)n;
	}
	err = ingest_pass(in, dst ? dst : buf, (size_t)n);
	return err < 0 ? AVERROR_EXIT : (int)n;
}

static int ingest_interrupt(void *opaque)
{
	struct sd_ingest *in = opaque;

	return __atomic_load_n(&in->abort, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ */
/* The probe                                                           */
/* ------------------------------------------------------------------ */

struct sd_sbuf {
	char *s;
	size_t len, cap;
	int err;
};

static void sbuf_add(struct sd_sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sbuf_add(struct sd_sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->s ? b->s + b->len : NULL, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < b->cap - b->len) {
		b->len += (size_t)n;
		return;
	}
	size_t ncap = b->cap ? b->cap : 256;
	while (n >= 0 && ncap - b->len <= (size_t)n)
		ncap *= 2;
	char *ns = n < 0 ? NULL : realloc(b->s, ncap);
	if (!ns) {
		b->err = -ENOMEM;
		return;
	}
	b->s = ns;
	b->cap = ncap;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A JSON string literal. */
static void sbuf_str(struct sd_sbuf *b, const char *s)
{
	sbuf_add(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			sbuf_add(b, "\\%c", c);
		else if (c < 0x20)
			sbuf_add(b, "\\u%04x", c);
		else
			sbuf_add(b, "%c", c);
	}
	sbuf_add(b, "\"");
}

static void codec_json(struct sd_sbuf *b, const AVStream *st)
{
	const AVCodecParameters *cp = st->codecpar;
	const char *type = av_get_media_type_string(cp->codec_type);
	AVRational fr = st->avg_frame_rate.num && st->avg_frame_rate.den ?
				st->avg_frame_rate : st->r_frame_rate;

	sbuf_add(b, "{\"type\":");
	sbuf_str(b, type ? type : "unknown");
	sbuf_add(b, ",\"codec\":");
	sbuf_str(b, avcodec_get_name(cp->codec_id));
	if (cp->codec_type == AVMEDIA_TYPE_VIDEO) {
		sbuf_add(b, ",\"width\":%d,\"height\":%d", cp->width,
			 cp->height);
		if (fr.num > 0 && fr.den > 0)
			sbuf_add(b, ",\"fps\":%.6g", av_q2d(fr));
	} else if (cp->codec_type == AVMEDIA_TYPE_AUDIO) {
		sbuf_add(b, ",\"sample_rate\":%d,\"channels\":%d",
			 cp->sample_rate, cp->ch_layout.nb_channels);
	}
	sbuf_add(b, "}");
}

/* How the TS scan tells the keyframes of stream @st. */
enum sd_ts_codec sd_ingest_ts_codec(const struct AVStream *st)
{
	const AVCodecParameters *cp = st->codecpar;

	if (cp->codec_type == AVMEDIA_TYPE_AUDIO)
		return cp->codec_id == AV_CODEC_ID_AAC ? SD_TS_AAC
						       : SD_TS_AUDIO;
	switch (cp->codec_id) {
	case AV_CODEC_ID_H264:
		return SD_TS_H264;
	case AV_CODEC_ID_HEVC:
		return SD_TS_HEVC;
	case AV_CODEC_ID_MPEG1VIDEO:
	case AV_CODEC_ID_MPEG2VIDEO:
		return SD_TS_MPEG2;
	default:
		return SD_TS_VIDEO;
	}
}

/* Picks the stream keyframes come from; 0, or -EPROTONOSUPPORT when no
 * audio or video stream has a codec avformat knows. */
static int pick_key_stream(struct sd_ingest *in)
{
	int audio = -1;

	in->key_stream = -1;
	for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
		const AVStream *st = in->fmt->streams[i];
		enum AVMediaType t = st->codecpar->codec_type;

		if (st->codecpar->codec_id == AV_CODEC_ID_NONE)
			continue;
		if (t == AVMEDIA_TYPE_VIDEO &&
		    !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
			in->key_stream = (int)i;
			in->key_audio = 0;
			return 0;
		}
		if (t == AVMEDIA_TYPE_AUDIO && audio < 0)
			audio = (int)i;
	}
	in->key_stream = audio;
	in->key_audio = 1;
	return audio < 0 ? -EPROTONOSUPPORT : 0;
}

/* Opens the demuxer on our AVIO and finds the streams. */
static int ingest_open(struct sd_ingest *in)
{
	uint8_t *buf = av_malloc(SD_IO_BUF);
	int64_t ps = in->probe_size < INT_MAX ? (int64_t)in->probe_size : INT_MAX;
	const char *call = "avformat_open_input";
	int r;

	in->fmt = avformat_alloc_context();
	if (buf && in->fmt)
		in->pb = avio_alloc_context(buf, SD_IO_BUF, 0, in, ingest_read,
					    NULL, NULL);
	if (!in->pb) {
		av_free(buf);
		return -ENOMEM;
	}
	in->pb->seekable = 0;
	in->fmt->pb = in->pb;
	in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
	in->fmt->probesize = ps < 32 ? 32 : ps;
	in->fmt->format_probesize = (int)in->fmt->probesize;
	in->fmt->max_analyze_duration = SD_ANALYZE_US;
	in->fmt->interrupt_callback.callback = ingest_interrupt;
	in->fmt->interrupt_callback.opaque = in;
	r = avformat_open_input(&in->fmt, NULL, NULL, NULL);
	if (r >= 0) {
		call = "avformat_find_stream_info";
		r = avformat_find_stream_info(in->fmt, NULL);
	}
	if (r < 0 && !in->cb_err)
		ingest_log(in, SD_LOG_WARN,
			   "ingest: %s: %s (after %llu bytes): not a stream",
			   call, av_err2str(r), (unsigned long long)in->taken);
	return r < 0 ? -EPROTONOSUPPORT : 0;
}

/* Describes the streams: @format gets the demuxer's first name, *codecs
 * a malloc'd JSON array. */
static int describe(struct sd_ingest *in, char *format, size_t flen,
		    char **codecs)
{
	const char *name = in->fmt->iformat->name;
	size_t n = strcspn(name, ",");
	struct sd_sbuf b = { 0 };

	if (n >= flen)
		n = flen - 1;
	memcpy(format, name, n);
	format[n] = '\0';
	sbuf_add(&b, "[");
	for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
		if (i)
			sbuf_add(&b, ",");
		codec_json(&b, in->fmt->streams[i]);
	}
	sbuf_add(&b, "]");
	if (b.err) {
		free(b.s);
		return b.err;
	}
	*codecs = b.s;
	return 0;
}

/* Runs the probe and, if it recognises a stream, calls on_ready and hands
 * the held bytes over.  0, -EPROTONOSUPPORT, or an error. */
static int ingest_probe(struct sd_ingest *in)
{
	char format[32], *codecs = NULL;
	int err;

	in->probing = 1;
	err = ingest_open(in);
	in->probing = 0;
	if (in->cb_err)
		return in->cb_err;
	if (!err && (err = pick_key_stream(in)) < 0)
		ingest_log(in, SD_LOG_WARN,
			   "ingest: probe found no audio or video stream with a known codec (after %llu bytes): not a stream",
			   (unsigned long long)in->taken);
	if (err)
		return err;
	if ((err = describe(in, format, sizeof(format), &codecs)) < 0)
		return err;
	ingest_log(in, SD_LOG_INFO,
		   "ingest: probe found %s after %llu bytes%s: %s", format,
		   (unsigned long long)in->taken,
		   in->overrun ? " (probe bound reached)" : "", codecs);
	if (in->overrun)
		in->pb->eof_reached = 0; /* our EOF was the bound, not the end */
	in->is_ts = !strcmp(format, "mpegts");
	if (in->is_ts) { /* the scan reads the keys from the first byte on */
		const AVStream *st = in->fmt->streams[in->key_stream];

		sd_ts_key_stream(in->ts, (unsigned)st->id & 0x1fffu,
				 sd_ingest_ts_codec(st));
	}
	pthread_mutex_lock(&in->mu);
	in->state = SD_INGEST_RUNNING;
	idle_arm(in);
	pthread_mutex_unlock(&in->mu);
	if (in->cbs.on_ready &&
	    (err = in->cbs.on_ready(in->cbs.arg, format, codecs)) < 0)
		err = ingest_fail(in, err);
	free(codecs);
	if (!err && in->hold_len)
		err = ingest_pass(in, in->hold, in->hold_len);
	free(in->hold);
	in->hold = NULL;
	in->hold_len = in->hold_cap = 0;
	return err;
}

/* ------------------------------------------------------------------ */
/* Demuxing                                                            */
/* ------------------------------------------------------------------ */

static int64_t pts_90k(const AVStream *st, const AVPacket *pkt)
{
	int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;

	if (t == AV_NOPTS_VALUE)
		return SD_PTS_NONE;
	return av_rescale_q(t, st->time_base, (AVRational){ 1, 90000 });
}

/* Whether @pkt starts a point where playback may begin. */
static int is_key(struct sd_ingest *in, const AVPacket *pkt, int64_t pts)
{
	if (pkt->stream_index != in->key_stream)
		return 0;
	if (!in->key_audio)
		return !!(pkt->flags & AV_PKT_FLAG_KEY);
	return sd_audio_key(in->have_key, in->last_key_pts, pts);
}

static int ingest_packet(struct sd_ingest *in, const AVPacket *pkt)
{
	const AVStream *st = in->fmt->streams[pkt->stream_index];
	int64_t pts = pts_90k(st, pkt);
	int err;

	__atomic_fetch_add(&in->packets, 1, __ATOMIC_RELAXED);
	if (!is_key(in, pkt, pts))
		return 0;
	if ((err = ingest_key(in, pkt->pos, pts)) < 0)
		return ingest_fail(in, err);
	return 0;
}

/* Passes on whatever the demuxer left unread, up to the end. */
static int ingest_drain(struct sd_ingest *in)
{
	uint8_t buf[SD_IO_BUF], *dst;
	size_t want;
	ssize_t n;
	int err = 0;

	while (!err && !in->cb_err) {
		want = sizeof(buf);
		dst = ingest_dest(in, &want);
		if ((n = ingest_take(in, dst ? dst : buf, want)) <= 0)
			break;
		err = ingest_pass(in, dst ? dst : buf, (size_t)n);
	}
	return in->cb_err ? in->cb_err : err;
}

/* libavformat's part in an MPEG-TS upload ends with the probe. */
static void ingest_close(struct sd_ingest *in)
{
	if (in->fmt)
		avformat_close_input(&in->fmt);
	if (in->pb) {
		av_freep(&in->pb->buffer);
		avio_context_free(&in->pb);
	}
}

/* After the probe: an MPEG-TS upload's keys come from its scan as the
 * bytes are passed on; other containers are demuxed packet by packet. */
static int ingest_demux(struct sd_ingest *in)
{
	AVPacket *pkt;
	int r = 0;

	if (in->is_ts) {
		ingest_close(in);
		return ingest_drain(in);
	}
	if (!(pkt = av_packet_alloc()))
		return ingest_fail(in, -ENOMEM);
	while (!in->cb_err && (r = av_read_frame(in->fmt, pkt)) >= 0) {
		if ((unsigned)pkt->stream_index < in->fmt->nb_streams)
			ingest_packet(in, pkt);
		av_packet_unref(pkt);
	}
	av_packet_free(&pkt);
	if (in->cb_err)
		return in->cb_err;
	if (r != AVERROR_EOF)
		/* the bytes are still good: keep passing them on */
		ingest_log(in, SD_LOG_WARN,
			   "ingest: av_read_frame: %s (at byte %llu): no more keyframes from this upload",
			   av_err2str(r), (unsigned long long)in->taken);
	return ingest_drain(in);
}

static void *ingest_main(void *arg)
{
	struct sd_ingest *in = arg;
	int err = ingest_probe(in);

	pthread_setname_np(pthread_self(), "sd-ingest");
	if (!err)
		err = ingest_demux(in);
	ingest_stop(in);
	ingest_close(in);
	free(in->hold);
	in->hold = NULL;
	pthread_mutex_lock(&in->mu);
	in->result = err;
	in->state = SD_INGEST_DONE;
	pthread_mutex_unlock(&in->mu);
	if (in->cbs.on_wake)
		in->cbs.on_wake(in->cbs.arg);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int sd_ingest_new(struct sd_ingest **out, const struct sd_ingest_opts *opts,
		  const struct sd_ingest_cbs *cbs)
{
	struct sd_ingest *in = calloc(1, sizeof(*in));
	pthread_condattr_t ca;
	int err = -ENOMEM;

	if (!in)
		return -ENOMEM;
	in->cbs = *cbs;
	in->log = opts->log;
	in->probe_size = opts->probe_size ? opts->probe_size
					  : SD_INGEST_PROBE_DEFAULT;
	in->probe_cap = in->probe_size + SD_PROBE_SLACK;
	in->cap = opts->ring_size ? opts->ring_size : SD_INGEST_RING_DEFAULT;
	in->last_key_pts = SD_PTS_NONE;
	in->ts = opts->ts;
	if (!in->ts && (err = sd_ts_new(&in->ts_own, 1)) < 0)
		goto err;
	err = -ENOMEM;
	if (!in->ts)
		in->ts = in->ts_own;
	in->ring = malloc(in->cap);
	if (!in->ring)
		goto err;
	pthread_mutex_init(&in->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&in->cv, &ca);
	pthread_condattr_destroy(&ca);
	err = -pthread_create(&in->thread, NULL, ingest_main, in);
	if (err) {
		ingest_log(in, SD_LOG_ERROR, "ingest: pthread_create: %s",
			   strerror(-err));
		pthread_cond_destroy(&in->cv);
		pthread_mutex_destroy(&in->mu);
		goto err;
	}
	*out = in;
	return 0;
err:
	sd_ts_free(in->ts_own);
	free(in->ring);
	free(in);
	return err;
}

void sd_ingest_finish(struct sd_ingest *in)
{
	pthread_mutex_lock(&in->mu);
	in->finished = 1;
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

enum sd_ingest_state sd_ingest_state(struct sd_ingest *in, int *result)
{
	enum sd_ingest_state s;

	pthread_mutex_lock(&in->mu);
	s = in->state;
	if (result)
		*result = in->result;
	pthread_mutex_unlock(&in->mu);
	return s;
}

int sd_ingest_free(struct sd_ingest *in)
{
	int result;

	if (!in)
		return 0;
	sd_ingest_finish(in); /* freeing implies the upload is over */
	pthread_join(in->thread, NULL);
	result = in->result;
	pthread_cond_destroy(&in->cv);
	pthread_mutex_destroy(&in->mu);
	sd_ts_free(in->ts_own);
	free(in->ring);
	free(in);
	return result;
}

void sd_ingest_stats(struct sd_ingest *in, struct sd_ingest_stats *out)
{
	pthread_mutex_lock(&in->mu);
	out->bytes_in = in->bytes_in;
	pthread_mutex_unlock(&in->mu);
	out->packets = __atomic_load_n(&in->packets, __ATOMIC_RELAXED);
	out->keyframes = __atomic_load_n(&in->keyframes, __ATOMIC_RELAXED);
}
