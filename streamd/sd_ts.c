/*
 * The one scan of an MPEG-TS upload's bytes.  Each byte is looked at once,
 * in place where its 188-byte packet lies whole in what was fed (only a
 * packet split between two feeds is gathered, in the one packet buffer
 * below), and the scan finds what both users of the stream need: for the
 * ingest, the keyframes of the stream the probe chose, with their PTS and
 * the offset where playback of each may start (the PAT packet before it,
 * or the packet holding it), so libavformat only probes the upload's
 * head; for the recorder, the packets where a PES begins, the frame
 * boundaries a publish may end at.  Either user may be the one that feeds
 * a byte: sd_ts_feed skips what the scan has seen already, so a scan
 * shared by the ingest and the recorder reads every byte once, whoever
 * comes first.
 *
 * A keyframe is told from the key stream's PES payload the way
 * libavformat's parsers flag one, from the first picture of the access
 * unit: H.264, an IDR slice, a slice after a recovery point SEI, or an I
 * slice where the SPS allows one reference frame and the PPS one
 * reference (so the parameter sets are read too); HEVC, an IRAP slice
 * (NAL types 16..23); MPEG-1/2 video, an I picture; other video, the
 * random_access_indicator.  The rest of a PES is not looked at.
 * Encoders put one access unit in each PES, so the PES's first packet
 * and PTS are the keyframe's.  In an audio-only
 * upload every 2 s of audio is a key: ADTS frames are walked within their
 * PES, each frame's PTS following the PES's by the frame durations.  PTS
 * are unwrapped once around the first timestamp of the upload, as
 * libavformat does (60 s before it is the point below which a PTS counts
 * as having wrapped).
 *
 * Invariants:
 *  1. off is the number of bytes seen; bytes are seen once, in order.
 *  2. pats and syncs are sorted; an entry is below off.  A PAT counts once
 *     the next packet's sync byte confirms it was a whole packet.
 *  3. Frames are reported only from packets at multiples of 188 from the
 *     first byte, before the first packet found out of step (lost_at is
 *     that packet's end, or SD_TS_NONE): an upload out of step gives the
 *     recorder no boundary it could trust.
 *  4. frame, when not SD_TS_NONE, is the newest boundary not yet taken.
 *  5. Keys are queued in data order; their offsets never decrease and
 *     never exceed off.  A PES of the key stream gives at most one video
 *     key, found while its bytes are fed, so a key's offset is known
 *     before any later PES of the key stream begins (which trims pats
 *     and syncs up to it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define TS_SIZE 188
#define TS_SYNC 0x47
#define TS_WRAP (INT64_C(1) << 33)
#define TS_WRAP_BACK (60 * 90000) /* libavformat's wrap reference */
#define PES_HDR_KEEP 19		   /* start code .. DTS */
#define ADTS_HDR 7
#define NAL_KEEP 256		   /* an SPS up to max_num_ref_frames */
#define H264_SPS_IDS 32
#define H264_PPS_IDS 256

/* A sorted list of offsets, trimmed from the front as keyframes pass. */
struct ts_offs {
	uint64_t *v;
	size_t n, cap;
};

/* What follows a start code in the key stream (es_byte). */
enum es_state {
	ES_CODE,	/* looking for a start code */
	ES_NAL,		/* the byte after one */
	ES_SEI,		/* an H.264 SEI's payload type */
	ES_PIC,		/* MPEG-2: temporal_reference's first byte */
	ES_PIC_TYPE,	/* MPEG-2: the byte holding picture_coding_type */
};

/* The PES of the key stream being read. */
struct ts_es {
	unsigned pid;		/* SD_TS_NO_PID: no key stream */
	enum sd_ts_codec codec;
	int in;			/* a PES with a header we can read */
	uint64_t at;		/* its first packet */
	uint8_t hdr[PES_HDR_KEEP];
	unsigned hdr_got;	/* header bytes seen */
	unsigned hdr_len;	/* its length, 0 until known */
	int rai;		/* its first packet's random_access_indicator */
	int64_t pts;		/* 90 kHz, unwrapped, or SD_PTS_NONE */
	int done;		/* it gave its key, or can give none */
	enum es_state st;
	unsigned zeros;		/* zero bytes just before (at most 2) */
	unsigned sei_type;
	int recovery;		/* an H.264 recovery point SEI came */
	uint8_t nal[NAL_KEEP];	/* an H.264 NAL's first bytes, unescaped */
	unsigned nal_len, nal_want; /* gathering while nal_len < nal_want */
	unsigned nal_type, nal_zeros;
	uint8_t adts[ADTS_HDR];	/* an ADTS header being gathered */
	unsigned adts_got;
	size_t adts_skip;	/* bytes to the next ADTS header */
	int64_t adts_pts;	/* the next frame's, after the PES's first */
	int adts_frames;	/* frames of the PES so far */
};

struct ts_key {
	uint64_t off;
	int64_t pts;
};

/* H.264 parameter sets, for libavformat's rule that an I slice is a key
 * when its SPS allows one reference frame and its PPS one reference
 * (-1: not seen). */
struct ts_h264 {
	int16_t sps_refs[H264_SPS_IDS];	/* max_num_ref_frames */
	int16_t pps_refs[H264_PPS_IDS];	/* num_ref_idx_l0_default_active */
	uint8_t pps_sps[H264_PPS_IDS];
};

struct sd_ts {
	int keys;	    /* keep PATs and sync points (for key offsets) */
	uint64_t off;	    /* invariant 1 */
	uint64_t pkt_start; /* start of the packet being read */
	int synced;	    /* 0: hunting for a sync byte */
	unsigned got;	    /* bytes of the current packet seen */
	uint8_t pkt[TS_SIZE]; /* a packet split between feeds */
	int pat_pending;    /* last packet was a PAT, awaiting the next sync */
	struct ts_offs pats;  /* confirmed PAT packet starts */
	struct ts_offs syncs; /* packet starts where (re)synchronisation began */
	uint64_t lost_at;   /* invariant 3 */
	int pes;	    /* a PES has begun */
	int video;	    /* a video PES has begun */
	uint64_t frame;	    /* invariant 4 */
	uint64_t pes_count; /* PES begun, every stream */

	/* Keys (invariant 5). */
	int pat_seen;	    /* libavformat reads no PES before the tables */
	struct ts_es es;
	struct ts_h264 h264;
	int64_t wrap_ref;   /* SD_PTS_NONE until the first timestamp */
	int wrap_add;	    /* below wrap_ref: + 2^33; else at or above: - */
	int have_key;
	uint64_t last_key;
	int64_t last_pts;
	struct ts_key *kq;
	size_t kq_head, kq_n, kq_cap;
};

/* ------------------------------------------------------------------ */
/* Offsets                                                             */
/* ------------------------------------------------------------------ */

static int offs_push(struct ts_offs *o, uint64_t v)
{
	if (o->n == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 64;
		uint64_t *nv = realloc(o->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		o->v = nv;
		o->cap = ncap;
	}
	o->v[o->n++] = v;
	return 0;
}

/* Position of the last entry <= @at, or -1. */
static ssize_t offs_find(const struct ts_offs *o, uint64_t at)
{
	ssize_t i = (ssize_t)o->n - 1;

	while (i >= 0 && o->v[i] > at)
		i--;
	return i;
}

/* Drops the first @k entries. */
static void offs_drop(struct ts_offs *o, size_t k)
{
	if (k == 0) /* also: nothing allocated yet, v may be NULL */
		return;
	memmove(o->v, o->v + k, (o->n - k) * sizeof(*o->v));
	o->n -= k;
}

/* ------------------------------------------------------------------ */
/* Key offsets                                                         */
/* ------------------------------------------------------------------ */

/* The start of the TS packet holding byte @pos, as the scan saw it. */
static uint64_t ts_packet_start(struct sd_ts *t, uint64_t pos)
{
	ssize_t i = offs_find(&t->syncs, pos);

	if (i < 0)
		return pos;
	offs_drop(&t->syncs, (size_t)i);
	return pos - (pos - t->syncs.v[0]) % TS_SIZE;
}

/* Where playback of a keyframe whose PES starts at @pos may begin: the
 * last PAT packet at or before @pos if one came after the previous key
 * (any, before the first), else the start of the packet holding @pos.
 * Forgets the PAT packets up to the one it used. */
static uint64_t ts_key_start(struct sd_ts *t, uint64_t pos)
{
	ssize_t i = offs_find(&t->pats, pos);
	uint64_t off;

	if (i >= 0 && (!t->have_key || t->pats.v[i] > t->last_key))
		off = t->pats.v[i];
	else
		off = ts_packet_start(t, pos);
	offs_drop(&t->pats, (size_t)(i + 1));
	return off;
}

/* The key stream's PES come in data order: no later key uses a PAT or
 * sync point before the last one at or before @pos (invariant 5). */
static void ts_trim(struct sd_ts *t, uint64_t pos)
{
	ssize_t i = offs_find(&t->pats, pos);

	if (i > 0)
		offs_drop(&t->pats, (size_t)i);
	i = offs_find(&t->syncs, pos);
	if (i > 0)
		offs_drop(&t->syncs, (size_t)i);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */
/* ------------------------------------------------------------------ */

static int64_t ts33(const uint8_t *p)
{
	return (int64_t)(p[0] & 0x0e) << 29 | (int64_t)p[1] << 22 |
	       (int64_t)(p[2] & 0xfe) << 14 | (int64_t)p[3] << 7 | p[4] >> 1;
}

/* Whether a PES of stream @sid has the optional header with timestamps. */
static int pes_has_header(unsigned sid)
{
	switch (sid) {
	case 0xbc: case 0xbe: case 0xbf: case 0xf0: case 0xf1: case 0xf2:
	case 0xf8: case 0xff:
		return 0;
	}
	return 1;
}

/* The PTS and DTS in the first @n bytes of a PES header (SD_PTS_NONE
 * where absent or cut off). */
static void pes_times(const uint8_t *h, size_t n, int64_t *pts,
		      int64_t *dts)
{
	unsigned flags = n >= 9 && pes_has_header(h[3]) ? h[7] >> 6 : 0;

	*pts = *dts = SD_PTS_NONE;
	if ((flags & 2u) && n >= 14)
		*pts = ts33(h + 9);
	if (flags == 3u && n >= 19)
		*dts = ts33(h + 14);
}

/* The first timestamp of the upload sets where a PTS counts as wrapped,
 * as libavformat's does: 60 s before it, added to unless that is within
 * 60 s of the wrap itself. */
static void ts_wrap_note(struct sd_ts *t, int64_t pts, int64_t dts)
{
	int64_t first = dts != SD_PTS_NONE ? dts : pts;

	if (t->wrap_ref != SD_PTS_NONE || first == SD_PTS_NONE)
		return;
	t->wrap_ref = first - TS_WRAP_BACK;
	t->wrap_add = first < TS_WRAP - TS_WRAP_BACK;
}

static int64_t ts_unwrap(const struct sd_ts *t, int64_t v)
{
	if (v == SD_PTS_NONE || t->wrap_ref == SD_PTS_NONE)
		return v;
	if (t->wrap_add && v < t->wrap_ref)
		return v + TS_WRAP;
	if (!t->wrap_add && v >= t->wrap_ref)
		return v - TS_WRAP;
	return v;
}

/* A key in the PES being read, at @pts (invariant 5). */
static int es_key(struct sd_ts *t, int64_t pts)
{
	uint64_t off = ts_key_start(t, t->es.at);

	if (t->have_key && off < t->last_key)
		off = t->last_key;
	if (t->kq_n == t->kq_cap) {
		size_t ncap = t->kq_cap ? t->kq_cap * 2 : 8;
		struct ts_key *nq;

		if (t->kq_head) { /* room at the front first */
			memmove(t->kq, t->kq + t->kq_head,
				(t->kq_n - t->kq_head) * sizeof(*t->kq));
			t->kq_n -= t->kq_head;
			t->kq_head = 0;
		} else if (!(nq = realloc(t->kq, ncap * sizeof(*nq)))) {
			return -ENOMEM;
		} else {
			t->kq = nq;
			t->kq_cap = ncap;
		}
	}
	t->kq[t->kq_n++] = (struct ts_key){ off, pts };
	t->have_key = 1;
	t->last_key = off;
	t->last_pts = pts;
	return 0;
}

/* An audio frame at @pts: a key when sd_audio_key says so. */
static int es_audio_frame(struct sd_ts *t, int64_t pts)
{
	if (!sd_audio_key(t->have_key, t->last_pts, pts))
		return 0;
	return es_key(t, pts);
}

/* ------------------------------------------------------------------ */
/* H.264 parameter sets and slice headers                              */
/* ------------------------------------------------------------------ */

struct bitrd {
	const uint8_t *p;
	size_t bits, at;
	int bad;		/* read past the end */
};

static unsigned rd_bit(struct bitrd *b)
{
	unsigned v;

	if (b->at >= b->bits) {
		b->bad = 1;
		return 0;
	}
	v = (b->p[b->at >> 3] >> (7 - (b->at & 7))) & 1u;
	b->at++;
	return v;
}

static uint32_t rd_bits(struct bitrd *b, unsigned n)
{
	uint32_t v = 0;

	while (n--)
		v = v << 1 | rd_bit(b);
	return v;
}

/* Exp-Golomb ue(v) and se(v). */
static uint32_t rd_ue(struct bitrd *b)
{
	unsigned z = 0;

	while (!rd_bit(b) && !b->bad)
		if (++z > 31) {
			b->bad = 1;
			return 0;
		}
	return (uint32_t)((1ull << z) - 1 + rd_bits(b, z));
}

static int32_t rd_se(struct bitrd *b)
{
	uint32_t u = rd_ue(b);

	return u & 1u ? (int32_t)((u + 1) / 2) : -(int32_t)(u / 2);
}

static int h264_high_profile(unsigned profile)
{
	static const uint8_t high[] = { 100, 110, 122, 244, 44, 83, 86,
					118, 128, 138, 139, 134, 135 };

	return memchr(high, (int)profile, sizeof(high)) != NULL;
}

/* An SPS up to max_num_ref_frames (7.3.2.1.1). */
static void h264_sps(struct ts_h264 *h, struct bitrd *b)
{
	unsigned profile = rd_bits(b, 8), id, chroma = 1, lists, refs;

	rd_bits(b, 16); /* constraint flags, level */
	if ((id = rd_ue(b)) >= H264_SPS_IDS)
		return;
	if (h264_high_profile(profile)) {
		if ((chroma = rd_ue(b)) == 3)
			rd_bit(b);
		rd_ue(b);
		rd_ue(b);
		rd_bit(b);
		lists = rd_bit(b) ? (chroma != 3 ? 8 : 12) : 0;
		for (unsigned i = 0; i < lists && !b->bad; i++) {
			unsigned size = i < 6 ? 16 : 64;
			int last = 8, next = 8;

			if (!rd_bit(b))
				continue;
			for (unsigned j = 0; j < size && next && !b->bad; j++) {
				next = (last + rd_se(b) + 256) % 256;
				last = next ? next : last;
			}
		}
	}
	rd_ue(b); /* log2_max_frame_num_minus4 */
	switch (rd_ue(b)) { /* pic_order_cnt_type */
	case 0:
		rd_ue(b);
		break;
	case 1:
		rd_bit(b);
		rd_se(b);
		rd_se(b);
		for (uint32_t n = rd_ue(b), i = 0; i < n && !b->bad; i++)
			rd_se(b);
		break;
	}
	refs = rd_ue(b);
	if (!b->bad)
		h->sps_refs[id] = (int16_t)(refs > 32 ? 32 : refs);
}

/* A PPS up to num_ref_idx_l0_default_active_minus1 (7.3.2.2). */
static void h264_pps(struct ts_h264 *h, struct bitrd *b)
{
	uint32_t id = rd_ue(b), sps = rd_ue(b), refs;

	if (id >= H264_PPS_IDS || sps >= H264_SPS_IDS)
		return;
	rd_bit(b); /* entropy_coding_mode_flag */
	rd_bit(b); /* bottom_field_pic_order_in_frame_present_flag */
	if (rd_ue(b) != 0) { /* slice groups: not followed */
		h->pps_refs[id] = -1;
		return;
	}
	refs = rd_ue(b) + 1;
	if (b->bad)
		return;
	h->pps_refs[id] = (int16_t)(refs > 32 ? 32 : refs);
	h->pps_sps[id] = (uint8_t)sps;
}

/* Whether the first slice of an access unit makes it a key, as
 * libavformat's H.264 parser decides: an IDR, a recovery point SEI
 * before it, or an I slice with one reference frame allowed. */
static int h264_slice_key(const struct sd_ts *t, struct bitrd *b)
{
	const struct ts_h264 *h = &t->h264;
	uint32_t type, pps;

	if (t->es.nal_type == 5 || t->es.recovery)
		return 1;
	rd_ue(b); /* first_mb_in_slice */
	type = rd_ue(b);
	pps = rd_ue(b);
	if (b->bad || type % 5 != 2 || pps >= H264_PPS_IDS ||
	    h->pps_refs[pps] < 0 || h->sps_refs[h->pps_sps[pps]] < 0)
		return 0;
	return h->pps_refs[pps] <= 1 && h->sps_refs[h->pps_sps[pps]] <= 1;
}

static int es_video_key(struct sd_ts *t, int key);

/* The H.264 NAL being gathered is complete (or cut short by the next
 * start code, past what is read of it). */
static int h264_nal(struct sd_ts *t)
{
	struct ts_es *e = &t->es;
	struct bitrd b = { e->nal, (size_t)e->nal_len * 8, 0, 0 };

	e->nal_want = 0;
	switch (e->nal_type) {
	case 7:
		h264_sps(&t->h264, &b);
		return 0;
	case 8:
		h264_pps(&t->h264, &b);
		return 0;
	default:
		return es_video_key(t, h264_slice_key(t, &b));
	}
}

/* Copies the payload's next bytes into the NAL being gathered, dropping
 * emulation prevention bytes; the start codes are still looked for in
 * them (es_video), so a short NAL takes a few bytes of the next along,
 * which its parser does not read. */
static int h264_gather(struct sd_ts *t, const uint8_t *p, size_t n)
{
	struct ts_es *e = &t->es;

	for (size_t i = 0; i < n && e->nal_len < e->nal_want; i++) {
		if (e->nal_zeros >= 2 && p[i] == 3) {
			e->nal_zeros = 0;
			continue;
		}
		e->nal_zeros = p[i] ? 0 : e->nal_zeros + 1;
		e->nal[e->nal_len++] = p[i];
	}
	return e->nal_want && e->nal_len >= e->nal_want ? h264_nal(t) : 0;
}

/* The first picture of the video PES being read decides, as it does for
 * libavformat's parsers: @key or not, nothing more to look for. */
static int es_video_key(struct sd_ts *t, int key)
{
	t->es.done = 1;
	return key ? es_key(t, t->es.pts) : 0;
}

/* One byte after a start code (the state says what it is). */
static int es_byte(struct sd_ts *t, uint8_t b)
{
	struct ts_es *e = &t->es;
	enum es_state st = e->st;
	unsigned type;

	e->st = ES_CODE;
	switch (st) {
	case ES_NAL:
		if (e->codec == SD_TS_HEVC) { /* the first slice (VCL NAL) */
			type = (b >> 1) & 0x3fu;
			return type < 32 ?
				es_video_key(t, type >= 16 && type <= 23) : 0;
		}
		if (e->codec == SD_TS_MPEG2) {
			if (b == 0) /* picture_start_code */
				e->st = ES_PIC;
			return 0;
		}
		type = b & 0x1fu;
		if (type == 1 || type == 5 || type == 7 || type == 8) {
			/* the first slice's header, or a parameter set */
			e->nal_type = type;
			e->nal_len = e->nal_zeros = 0;
			e->nal_want = type == 7 ? NAL_KEEP : 32;
		} else if (type == 6) {
			e->sei_type = 0;
			e->st = ES_SEI;
		} else if (type == 9) { /* a new access unit */
			e->recovery = 0;
		}
		return 0;
	case ES_SEI: /* the first message's type: 0xff adds 255 and goes on */
		e->sei_type += b;
		if (b == 0xff)
			e->st = ES_SEI;
		else if (e->sei_type == 6) /* recovery point */
			e->recovery = 1;
		return 0;
	case ES_PIC:
		e->st = ES_PIC_TYPE;
		return 0;
	case ES_PIC_TYPE:
		return es_video_key(t, ((b >> 3) & 7u) == 1);
	case ES_CODE:
		break;
	}
	return 0;
}

/* Video payload: finds the start codes (00 00 01, one possibly split
 * between packets) and reads the bytes after them, up to the first
 * picture's (so the bulk of a PES is not looked at). */
static int es_video(struct sd_ts *t, const uint8_t *p, size_t n)
{
	struct ts_es *e = &t->es;
	size_t i = 0, j;
	int err = 0;

	if (e->nal_want)
		err = h264_gather(t, p, n);
	while (i < n && !e->done && !err) {
		const uint8_t *one;

		if (e->st != ES_CODE) {
			err = es_byte(t, p[i++]);
			if (!err && e->nal_want && !e->nal_len)
				err = h264_gather(t, p + i, n - i);
			continue;
		}
		if (!(one = memchr(p + i, 1, n - i)))
			break;
		j = (size_t)(one - p);
		if ((j >= 2 && !p[j - 1] && !p[j - 2]) ||
		    (j == 1 && !p[0] && e->zeros >= 1) ||
		    (j == 0 && e->zeros >= 2)) {
			if (e->nal_want) /* the NAL ends here */
				err = h264_nal(t);
			e->st = ES_NAL;
		}
		i = j + 1;
	}
	if (n >= 2)
		e->zeros = !p[n - 1] ? (!p[n - 2] ? 2 : 1) : 0;
	else if (n == 1)
		e->zeros = p[0] ? 0 : (e->zeros ? 2 : 1);
	return err;
}

/* @a * @b / @c rounded to the nearest, halves away from zero. */
static int64_t mul_div_near(int64_t a, int64_t b, int64_t c)
{
	return a < 0 ? -((-a * b + c / 2) / c) : (a * b + c / 2) / c;
}

/* @ts plus one frame of @num / @den s, as libavformat steps the PTS of
 * the frames after the first of a PES: on the grid of whole frames, so
 * no rounding error builds up. */
static int64_t pts_add_frame(int64_t ts, int64_t num, int64_t den)
{
	int64_t m = num * 90000, old;

	if (ts == SD_PTS_NONE)
		return ts;
	if (m % den == 0)
		return ts + m / den;
	if (m < den)
		return ts;
	old = mul_div_near(ts, den, m);
	return mul_div_near(old + 1, m, den) + ts - mul_div_near(old, m, den);
}

static const unsigned adts_rates[13] = {
	96000, 88200, 64000, 48000, 44100, 32000, 24000,
	22050, 16000, 12000, 11025, 8000,  7350,
};

/* ADTS payload: each frame's header gives its length and its duration,
 * so each frame's PTS (libavformat's parser splits a PES the same way).
 * A PES that does not start with an ADTS header counts as one frame. */
static int es_adts(struct sd_ts *t, const uint8_t *p, size_t n)
{
	struct ts_es *e = &t->es;
	const uint8_t *h = e->adts;
	unsigned len, sr;
	size_t k;
	int err = 0;

	while (n && !e->done && !err) {
		if (e->adts_skip) {
			k = e->adts_skip < n ? e->adts_skip : n;
			e->adts_skip -= k;
			p += k;
			n -= k;
			continue;
		}
		k = ADTS_HDR - e->adts_got < n ? ADTS_HDR - e->adts_got : n;
		memcpy(e->adts + e->adts_got, p, k);
		e->adts_got += (unsigned)k;
		p += k;
		n -= k;
		if (e->adts_got < ADTS_HDR)
			break;
		e->adts_got = 0;
		len = (h[3] & 3u) << 11 | (unsigned)h[4] << 3 | h[5] >> 5;
		sr = (h[2] >> 2) & 0xfu;
		if (h[0] != 0xff || (h[1] & 0xf6u) != 0xf0 || sr >= 13 ||
		    len < ADTS_HDR) {
			e->done = 1;
			return e->adts_frames ? 0 : es_audio_frame(t, e->pts);
		}
		if (!e->adts_frames++)
			e->adts_pts = e->pts;
		err = es_audio_frame(t, e->adts_pts);
		e->adts_pts = pts_add_frame(e->adts_pts,
					    1024 * ((h[6] & 3) + 1),
					    adts_rates[sr]);
		e->adts_skip = len - ADTS_HDR;
	}
	return err;
}

/* The key stream's PES header is complete: its PTS (or DTS), and what
 * the stream tells from the header alone. */
static int es_header(struct sd_ts *t)
{
	struct ts_es *e = &t->es;
	int64_t pts, dts;

	pes_times(e->hdr, e->hdr_got < PES_HDR_KEEP ? e->hdr_got :
		  PES_HDR_KEEP, &pts, &dts);
	ts_wrap_note(t, pts, dts);
	e->pts = ts_unwrap(t, pts != SD_PTS_NONE ? pts : dts);
	switch (e->codec) {
	case SD_TS_VIDEO:
		e->done = 1;
		return e->rai ? es_key(t, e->pts) : 0;
	case SD_TS_AUDIO:
		e->done = 1;
		return es_audio_frame(t, e->pts);
	default:
		return 0;
	}
}

/* A packet of the key stream, payload from @at: a PES begins (its header
 * may run on into the next packets), or one goes on. */
static int es_packet(struct sd_ts *t, const uint8_t *k, unsigned at,
		     int pusi)
{
	struct ts_es *e = &t->es;
	const uint8_t *p = k + at;
	size_t n = TS_SIZE - at;
	int err;

	if (pusi) {
		unsigned pid = e->pid;
		enum sd_ts_codec codec = e->codec;

		ts_trim(t, t->pkt_start);
		*e = (struct ts_es){
			.pid = pid, .codec = codec, .in = 1,
			.at = t->pkt_start, .pts = SD_PTS_NONE,
			.rai = (k[3] & 0x20) && k[4] && (k[5] & 0x40),
		};
	}
	if (!e->in || e->done)
		return 0;
	if (!e->hdr_len || e->hdr_got < e->hdr_len) {
		for (; n && (!e->hdr_len || e->hdr_got < e->hdr_len); p++, n--) {
			if (e->hdr_got < PES_HDR_KEEP)
				e->hdr[e->hdr_got] = *p;
			if (++e->hdr_got == 9)
				e->hdr_len = 9u + e->hdr[8];
		}
		if (e->hdr_got >= 4 && (e->hdr[0] || e->hdr[1] ||
					e->hdr[2] != 1 ||
					!pes_has_header(e->hdr[3]))) {
			e->in = 0;
			return 0;
		}
		if (!e->hdr_len || e->hdr_got < e->hdr_len)
			return 0;
		if ((err = es_header(t)) < 0 || e->done)
			return err;
	}
	switch (e->codec) {
	case SD_TS_H264:
	case SD_TS_HEVC:
	case SD_TS_MPEG2:
		return es_video(t, p, n);
	case SD_TS_AAC:
		return es_adts(t, p, n);
	default:
		return 0;
	}
}

/* ------------------------------------------------------------------ */
/* The scan                                                            */
/* ------------------------------------------------------------------ */

/* Invariant 3: the first packet out of step at @pos ends the frames. */
static void ts_lose(struct sd_ts *t, uint64_t pos)
{
	if (t->lost_at == SD_TS_NONE)
		t->lost_at = pos + TS_SIZE;
}

/* A whole packet at pkt_start: a PAT that starts a section is noted (and
 * confirmed by the next sync byte); the key stream's packets are read
 * for keys; a PES that begins in it marks a frame boundary at its first
 * byte.  Encoders write one PES after another (only tables come
 * between), so everything before a video PES is whole frames; an upload
 * without video cuts at audio PES. */
static int ts_packet(struct sd_ts *t, const uint8_t *k)
{
	unsigned pid = ((k[1] & 0x1fu) << 8) | k[2];
	unsigned afc = (k[3] >> 4) & 3u, at = 4, sid;
	int pusi = !!(k[1] & 0x40), start, video, err;

	t->pat_pending = pid == 0 && pusi;
	if (!(afc & 1u))
		return 0; /* no payload */
	if (afc & 2u)
		at += 1u + k[4];
	if (at >= TS_SIZE)
		return 0;
	start = pusi && at + 4 <= TS_SIZE && !k[at] && !k[at + 1] &&
		k[at + 2] == 1;
	if (start && t->wrap_ref == SD_PTS_NONE && t->pat_seen &&
	    t->es.pid != SD_TS_NO_PID) {
		int64_t pts, dts;

		pes_times(k + at, TS_SIZE - at, &pts, &dts);
		ts_wrap_note(t, pts, dts);
	}
	if (pid == t->es.pid && t->pat_seen &&
	    (err = es_packet(t, k, at, pusi)) < 0)
		return err;
	if (!start)
		return 0; /* no unit starts here, or a table */
	sid = k[at + 3];
	video = (sid & 0xf0u) == 0xe0u;
	if (!video && (sid & 0xe0u) != 0xc0u && sid != 0xbdu)
		return 0; /* padding and other streams */
	t->pes_count++;
	if (t->lost_at != SD_TS_NONE)
		return 0;
	t->pes = 1;
	t->video |= video;
	if (video || !t->video)
		t->frame = t->pkt_start;
	return 0;
}
/* The first byte of a packet, or of what should have been one. */
static int ts_begin(struct sd_ts *t, uint8_t b)
{
	int err = 0;

	if (b != TS_SYNC) {
		ts_lose(t, t->off);
		t->synced = 0;
		t->pat_pending = 0;
		return 0;
	}
	if (t->pat_pending && t->keys)
		err = offs_push(&t->pats, t->pkt_start);
	t->pat_seen |= t->pat_pending;
	t->pat_pending = 0;
	if (!t->synced) {
		ssize_t i = offs_find(&t->syncs, t->off);

		if (t->keys &&
		    (i < 0 || (t->off - t->syncs.v[i]) % TS_SIZE))
			err = err ? err : offs_push(&t->syncs, t->off);
		t->synced = 1;
	}
	t->pkt_start = t->off;
	t->pkt[0] = b;
	t->got = 1;
	return err;
}

int sd_ts_feed(struct sd_ts *t, uint64_t at, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint64_t base;
	size_t i = 0;
	int err = 0;

	if (at + n <= t->off)
		return 0;
	if (at < t->off) { /* invariant 1: seen already */
		p += t->off - at;
		n -= (size_t)(t->off - at);
	}
	base = t->off;
	while (i < n && !err) {
		if (!t->synced || t->got == TS_SIZE) {
			if (!t->synced) {
				const uint8_t *s = memchr(p + i, TS_SYNC, n - i);
				size_t skip = s ? (size_t)(s - (p + i)) : n - i;

				if (skip)
					ts_lose(t, t->off);
				t->off += skip;
				i += skip;
				if (i == n)
					break;
			}
			err = ts_begin(t, p[i]);
			if (!t->synced)
				continue; /* hunt from this very byte */
			t->off++;
			i++;
		} else {
			size_t k = TS_SIZE - t->got;
			int whole = t->pkt_start >= base; /* begun in this feed */

			if (k > n - i)
				k = n - i;
			if (!whole)
				memcpy(t->pkt + t->got, p + i, k);
			t->got += k;
			t->off += k;
			i += k;
			if (t->got == TS_SIZE)
				err = ts_packet(t, whole ? p + (t->pkt_start -
								base)
							 : t->pkt);
			else if (whole) /* the rest comes with the next feed */
				memcpy(t->pkt, p + (t->pkt_start - base),
				       t->got);
		}
	}
	return err;
}

uint64_t sd_ts_take_frame(struct sd_ts *t)
{
	uint64_t f = t->frame;

	t->frame = SD_TS_NONE;
	return f;
}

int sd_ts_frames(const struct sd_ts *t)
{
	return t->pes && (t->lost_at == SD_TS_NONE || t->off < t->lost_at);
}

void sd_ts_key_stream(struct sd_ts *t, unsigned pid, enum sd_ts_codec codec)
{
	t->es = (struct ts_es){ .pid = pid, .codec = codec };
	memset(&t->h264, 0xff, sizeof(t->h264));
}

int sd_ts_take_key(struct sd_ts *t, uint64_t *off, int64_t *pts)
{
	if (t->kq_head == t->kq_n)
		return 0;
	*off = t->kq[t->kq_head].off;
	*pts = t->kq[t->kq_head].pts;
	if (++t->kq_head == t->kq_n)
		t->kq_head = t->kq_n = 0;
	return 1;
}

uint64_t sd_ts_pes(const struct sd_ts *t)
{
	return t->pes_count;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int sd_ts_new(struct sd_ts **out, int keys)
{
	struct sd_ts *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->keys = keys;
	t->lost_at = SD_TS_NONE;
	t->frame = SD_TS_NONE;
	t->es.pid = SD_TS_NO_PID;
	t->wrap_ref = SD_PTS_NONE;
	t->last_pts = SD_PTS_NONE;
	*out = t;
	return 0;
}

void sd_ts_free(struct sd_ts *t)
{
	if (!t)
		return;
	free(t->pats.v);
	free(t->syncs.v);
	free(t->kq);
	free(t);
}
