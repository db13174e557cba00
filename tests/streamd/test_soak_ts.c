/*
 * Unit tests of soak_ts, streamd-soak's deterministic MPEG-TS generator:
 * libavformat reads what it makes as MPEG-TS with the promised PIDs and
 * codecs, a keyframe opens every GOP, PCR and timestamps only grow, every
 * packet says where it belongs, and any byte range produced on its own is
 * the same as the bytes of a sequential run (which is what lets viewers
 * check any offset without keeping what was sent).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavformat/avformat.h>

#include "soak_ts.h"

#define SECONDS 10
#define BITRATE 2000000

/* SECONDS of stream 3 of seed 7, made packet by packet. */
static uint8_t *make(struct soak_ts *g, size_t *len)
{
	size_t n = (size_t)SECONDS * BITRATE / 8 / SOAK_TS_PACKET;
	uint8_t *buf = malloc(n * SOAK_TS_PACKET);

	cr_assert_not_null(buf);
	cr_assert_eq(soak_ts_init(g, 7, 3, BITRATE), 0);
	for (size_t k = 0; k < n; k++)
		soak_ts_packet(g, k, buf + k * SOAK_TS_PACKET);
	*len = n * SOAK_TS_PACKET;
	return buf;
}

struct mem {
	const uint8_t *p;
	size_t len, pos;
};

static int mem_read(void *opaque, uint8_t *buf, int size)
{
	struct mem *m = opaque;
	size_t n = m->len - m->pos < (size_t)size ? m->len - m->pos : (size_t)size;

	if (!n)
		return AVERROR_EOF;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (int)n;
}

/* libavformat on @m, streams found; the caller closes. */
static AVFormatContext *open_mem(struct mem *m)
{
	AVFormatContext *fmt = avformat_alloc_context();
	uint8_t *io = av_malloc(32768);

	cr_assert(fmt && io);
	fmt->pb = avio_alloc_context(io, 32768, 0, m, mem_read, NULL, NULL);
	cr_assert_not_null(fmt->pb);
	cr_assert_geq(avformat_open_input(&fmt, NULL, NULL, NULL), 0);
	cr_assert_geq(avformat_find_stream_info(fmt, NULL), 0);
	return fmt;
}

static void close_mem(AVFormatContext *fmt)
{
	AVIOContext *pb = fmt->pb;

	avformat_close_input(&fmt);
	av_freep(&pb->buffer);
	avio_context_free(&pb);
}

Test(soak_ts, is_mpegts_with_h264_and_aac_on_the_promised_pids)
{
	struct soak_ts g;
	struct mem m = { 0 };
	AVFormatContext *fmt;

	m.p = make(&g, &m.len);
	fmt = open_mem(&m);
	cr_assert_str_eq(fmt->iformat->name, "mpegts");
	cr_assert_eq(fmt->nb_streams, 2);
	for (unsigned i = 0; i < 2; i++) {
		const AVStream *st = fmt->streams[i];

		if (st->id == SOAK_TS_PID_VIDEO) {
			cr_expect_eq(st->codecpar->codec_id, AV_CODEC_ID_H264);
			cr_expect_eq(st->codecpar->width, 320);
			cr_expect_eq(st->codecpar->height, 240);
		} else {
			cr_expect_eq(st->id, SOAK_TS_PID_AUDIO);
			cr_expect_eq(st->codecpar->codec_id, AV_CODEC_ID_AAC);
			cr_expect_eq(st->codecpar->sample_rate, 48000);
		}
	}
	close_mem(fmt);
	free((void *)m.p);
}

Test(soak_ts, opens_every_gop_with_a_keyframe_and_timestamps_grow)
{
	struct soak_ts g;
	struct mem m = { 0 };
	AVFormatContext *fmt;
	AVPacket *pkt = av_packet_alloc();
	int64_t last_dts[2] = { INT64_MIN, INT64_MIN }, last_key = -1;
	unsigned keys = 0, frames = 0;

	m.p = make(&g, &m.len);
	fmt = open_mem(&m);
	while (av_read_frame(fmt, pkt) >= 0) {
		int s = fmt->streams[pkt->stream_index]->id == SOAK_TS_PID_VIDEO;

		cr_assert_gt(pkt->dts, last_dts[s], "dts goes back on %s",
			     s ? "video" : "audio");
		last_dts[s] = pkt->dts;
		if (s && (pkt->flags & AV_PKT_FLAG_KEY)) {
			cr_expect_eq(frames % SOAK_TS_GOP, 0, "key at frame %u",
				     frames);
			if (last_key >= 0)
				cr_expect_eq(pkt->pts - last_key,
					     SOAK_TS_GOP * 90000 / SOAK_TS_FPS);
			last_key = pkt->pts;
			keys++;
		}
		frames += s;
		av_packet_unref(pkt);
	}
	cr_expect_eq(keys, SECONDS * SOAK_TS_FPS / SOAK_TS_GOP);
	cr_expect_geq(frames, SECONDS * SOAK_TS_FPS - 1);
	av_packet_free(&pkt);
	close_mem(fmt);
	free((void *)m.p);
}

Test(soak_ts, carries_a_pcr_that_only_grows)
{
	struct soak_ts g;
	size_t len;
	uint8_t *buf = make(&g, &len);
	uint64_t last = 0;
	unsigned n = 0;

	for (size_t off = 0; off < len; off += SOAK_TS_PACKET) {
		const uint8_t *p = buf + off;
		uint64_t base;

		cr_assert_eq(p[0], 0x47);
		if (!(p[3] & 0x20) || p[4] < 7 || !(p[5] & 0x10))
			continue;
		base = (uint64_t)p[6] << 25 | (uint64_t)p[7] << 17 |
		       (uint64_t)p[8] << 9 | (uint64_t)p[9] << 1 | p[10] >> 7;
		cr_assert_gt(base * 300 + ((p[10] & 1u) << 8 | p[11]), last);
		last = base * 300 + ((p[10] & 1u) << 8 | p[11]);
		n++;
	}
	cr_expect_eq(n, SECONDS * SOAK_TS_FPS, "one PCR per frame");
	free(buf);
}

Test(soak_ts, gives_any_range_the_bytes_of_a_sequential_run)
{
	struct soak_ts g;
	size_t len;
	uint8_t *buf = make(&g, &len), part[5000];
	uint64_t rng = 12345;

	for (int i = 0; i < 2000; i++) {
		size_t n, off;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		n = 1 + (size_t)(rng >> 33) % sizeof(part);
		off = (size_t)(rng >> 7) % (len - n);
		soak_ts_read(&g, off, part, n);
		cr_assert_arr_eq(part, buf + off, n, "range %zu+%zu", off, n);
		cr_assert_eq(soak_ts_verify(&g, off, buf + off, n), n);
	}
	free(buf);
}

Test(soak_ts, finds_the_first_byte_that_differs)
{
	struct soak_ts g;
	size_t len;
	uint8_t *buf = make(&g, &len);

	buf[100000] ^= 0x10;
	cr_expect_eq(soak_ts_verify(&g, 99000, buf + 99000, 5000), 1000);
	cr_expect_eq(soak_ts_verify(&g, 0, buf, 99000), 99000);
	free(buf);
}

Test(soak_ts, tells_each_packets_index_and_refuses_other_streams)
{
	struct soak_ts g, other;
	size_t len;
	uint8_t *buf = make(&g, &len);
	uint64_t k;

	cr_assert_eq(soak_ts_init(&other, 7, 4, BITRATE), 0);
	for (size_t i = 0; i < len / SOAK_TS_PACKET; i += 97) {
		cr_assert_eq(soak_ts_locate(&g, buf + i * SOAK_TS_PACKET, &k), 0);
		cr_assert_eq(k, i);
		cr_assert_eq(soak_ts_locate(&other, buf + i * SOAK_TS_PACKET,
					    &k), -EXDEV);
	}
	buf[4] = 0;		/* no adaptation field to speak of */
	cr_expect_eq(soak_ts_locate(&g, buf, &k), -EINVAL);
	free(buf);
}

Test(soak_ts, starts_keyframe_slots_with_a_pat)
{
	struct soak_ts g;
	uint8_t p[SOAK_TS_PACKET];

	cr_assert_eq(soak_ts_init(&g, 1, 0, BITRATE), 0);
	for (uint64_t f = 0; f < 10 * SOAK_TS_GOP; f += SOAK_TS_GOP) {
		uint64_t off = soak_ts_frame_offset(&g, f);

		cr_assert_eq(soak_ts_frame_of(&g, off), f);
		soak_ts_read(&g, off, p, sizeof(p));
		cr_expect_eq(p[1] & 0x5F, 0x40, "PUSI on PID 0");
		cr_expect_eq(p[2], 0);
	}
}

Test(soak_ts, refuses_a_bitrate_too_low_for_a_keyframe)
{
	struct soak_ts g;

	cr_expect_eq(soak_ts_init(&g, 1, 0, 100000), -EINVAL);
	cr_expect_eq(soak_ts_init(&g, 1, 0, SOAK_TS_BITRATE_MIN), 0);
}
