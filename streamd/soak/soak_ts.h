/*
 * soak_ts: the deterministic, random-access MPEG-TS generator of
 * streamd-soak.  A recording is an endless constant-bitrate transport
 * stream whose byte at any offset is a pure function of (seed, stream,
 * bitrate, offset), so a recorder sends it and a viewer checks any range
 * it receives without either keeping what was sent.
 *
 * What it looks like to a demuxer: a PAT and a PMT (program 1, PMT PID
 * 0x1000) before every keyframe; an H.264 video PID 0x100 (Constrained
 * Baseline, 320x240, 25 fps, an IDR every SOAK_TS_GOP frames, P frames of
 * skipped macroblocks, so it decodes to a grey picture) carrying the PCR
 * at the start of every frame, with PTS and DTS; an AAC (ADTS, 48 kHz,
 * mono, silent frames) audio PID 0x101.  The video fills the bitrate
 * with filler-data NAL units of pseudo-random bytes.  Every packet's
 * adaptation field carries 8 bytes of private data: a 16-bit tag of
 * (seed, stream) and the 48-bit packet index, so the first packet of any
 * response tells where in which recording it comes from.
 *
 * Layout: frame f owns packets [A(f), A(f+1)) with A(f) = floor(f * B /
 * (188 * 8 * 25)); in it come the PAT and PMT (keyframes only), one audio
 * packet, then the frame's video PES in the remaining packets.
 */
#ifndef STREAMD_SOAK_TS_H
#define STREAMD_SOAK_TS_H

#include <stddef.h>
#include <stdint.h>

#define SOAK_TS_PACKET 188
#define SOAK_TS_FPS 25
#define SOAK_TS_GOP 50		/* frames: an IDR every 2 s */
#define SOAK_TS_PID_PMT 0x1000
#define SOAK_TS_PID_VIDEO 0x100
#define SOAK_TS_PID_AUDIO 0x101
#define SOAK_TS_PTS0 63000	/* 90 kHz: the first DTS, 0.7 s after PCR 0 */
#define SOAK_TS_TMPL_MAX 512
#define SOAK_TS_BITRATE_MIN 300000

struct soak_ts_tmpl {
	uint8_t b[SOAK_TS_TMPL_MAX];
	size_t len;
};

/* Immutable once soak_ts_init() filled it; any number of readers. */
struct soak_ts {
	uint64_t seed;
	unsigned stream;
	uint64_t bitrate;	/* bits per second */
	uint64_t key;		/* of the filler bytes */
	uint16_t tag;
	uint8_t pat[184], pmt[184];	/* payloads, after the AF */
	uint8_t adts[11];		/* one silent AAC frame */
	struct soak_ts_tmpl idr[2];	/* by idr_pic_id */
	struct soak_ts_tmpl p[16];	/* by frame_num */
};

/* Fills @g for recording @stream of run @seed at @bitrate bits/s; 0, or
 * -EINVAL when the bitrate is below SOAK_TS_BITRATE_MIN or absurd. */
int soak_ts_init(struct soak_ts *g, uint64_t seed, unsigned stream,
		 uint64_t bitrate);

/* Packet @index (188 bytes) into @out. */
void soak_ts_packet(const struct soak_ts *g, uint64_t index, uint8_t *out);

/* The @len bytes at byte @offset into @buf. */
void soak_ts_read(const struct soak_ts *g, uint64_t offset, void *buf,
		  size_t len);

/* Compares @buf with the bytes at @offset: the position of the first
 * byte that differs, or @len when all agree. */
size_t soak_ts_verify(const struct soak_ts *g, uint64_t offset,
		      const void *buf, size_t len);

/* The packet index a packet of @g carries: 0 with *index, -EXDEV when it
 * is a packet of another recording or run (another tag), -EINVAL when it
 * carries no index (not one of ours). */
int soak_ts_locate(const struct soak_ts *g, const uint8_t *pkt,
		   uint64_t *index);

/* The byte offset of the PAT that opens frame @frame's packets, and the
 * frame a byte offset belongs to. */
uint64_t soak_ts_frame_offset(const struct soak_ts *g, uint64_t frame);
uint64_t soak_ts_frame_of(const struct soak_ts *g, uint64_t offset);

#endif
