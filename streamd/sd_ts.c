/*
 * The one scan of an MPEG-TS upload's bytes.  Each byte is looked at once,
 * in place where its 188-byte packet lies whole in what was fed (only a
 * packet split between two feeds is gathered, in the one packet buffer
 * below), and the scan keeps what both users of the stream need: for the
 * ingest, the PAT packets and the points where the scan (re)synchronised,
 * so a keyframe can be given the offset where playback may start; for the
 * recorder, the packets where a PES begins, the frame boundaries a publish
 * may end at.  Either user may be the one that feeds a byte: sd_ts_feed
 * skips what the scan has seen already, so a scan shared by the ingest and
 * the recorder reads every byte once, whoever comes first.
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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define TS_SIZE 188
#define TS_SYNC 0x47

/* A sorted list of offsets, trimmed from the front as keyframes pass. */
struct ts_offs {
	uint64_t *v;
	size_t n, cap;
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
/* The scan                                                            */
/* ------------------------------------------------------------------ */

/* Invariant 3: the first packet out of step at @pos ends the frames. */
static void ts_lose(struct sd_ts *t, uint64_t pos)
{
	if (t->lost_at == SD_TS_NONE)
		t->lost_at = pos + TS_SIZE;
}

/* A whole packet at pkt_start: a PAT that starts a section is noted (and
 * confirmed by the next sync byte); a PES that begins in it marks a frame
 * boundary at its first byte.  Encoders write one PES after another (only
 * tables come between), so everything before a video PES is whole
 * frames; an upload without video cuts at audio PES. */
static void ts_packet(struct sd_ts *t, const uint8_t *k)
{
	unsigned pid = ((k[1] & 0x1fu) << 8) | k[2];
	unsigned afc = (k[3] >> 4) & 3u, at = 4, sid;
	int video;

	t->pat_pending = pid == 0 && (k[1] & 0x40);
	if (t->lost_at != SD_TS_NONE)
		return;
	if (!(k[1] & 0x40) || !(afc & 1u))
		return; /* no unit starts here */
	if (afc & 2u)
		at += 1u + k[4];
	if (at + 4 > TS_SIZE || k[at] || k[at + 1] || k[at + 2] != 1)
		return; /* a table, or no PES start code */
	sid = k[at + 3];
	video = (sid & 0xf0u) == 0xe0u;
	if (!video && (sid & 0xe0u) != 0xc0u && sid != 0xbdu)
		return; /* padding and other streams */
	t->pes = 1;
	t->video |= video;
	if (video || !t->video)
		t->frame = t->pkt_start;
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
				ts_packet(t, whole ? p + (t->pkt_start - base)
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

uint64_t sd_ts_key_start(struct sd_ts *t, uint64_t pos, int have_key,
			 uint64_t last_key)
{
	ssize_t i = offs_find(&t->pats, pos);
	uint64_t off;

	if (i >= 0 && (!have_key || t->pats.v[i] > last_key))
		off = t->pats.v[i];
	else
		off = ts_packet_start(t, pos);
	offs_drop(&t->pats, (size_t)(i + 1));
	return off;
}

void sd_ts_trim(struct sd_ts *t, uint64_t pos)
{
	ssize_t i = offs_find(&t->pats, pos);

	if (i > 0)
		offs_drop(&t->pats, (size_t)i);
	i = offs_find(&t->syncs, pos);
	if (i > 0)
		offs_drop(&t->syncs, (size_t)i);
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
	*out = t;
	return 0;
}

void sd_ts_free(struct sd_ts *t)
{
	if (!t)
		return;
	free(t->pats.v);
	free(t->syncs.v);
	free(t);
}
