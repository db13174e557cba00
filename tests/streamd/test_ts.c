/*
 * Tests for the scan of MPEG-TS uploads (sd_ts.c): the keyframes it finds
 * are the ones libavformat's demuxer and parsers flag.  Streams are made
 * at test time with the ffmpeg tool (H.264 with and without B-frames and
 * with open GOPs, I slices at scene cuts, MPEG-2 video, HEVC when libx265 is there, timestamps
 * that wrap past 2^33, audio only) and with GStreamer's mpegtsmux when it
 * is installed.  The expected keys come from av_read_frame over the same
 * file: each key packet's PTS, and as its offset the PAT packet before it
 * (when one came after the previous key) or the packet itself, the rule
 * the ingest applied to what libavformat reported.  The scan is fed in
 * chunks of 1, 187, 189 and random sizes, so packets, PES headers and
 * start codes are split every way; the ingest is fed the same files and
 * must report the same keys.  Tests skip when a tool is missing.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/mathematics.h>

#include "streamd-int.h"
#include "sd_test_file.h"

#define MAX_KEYS 256
#define TS 188

static char dir[64];

struct keys {
	uint64_t off[MAX_KEYS];
	int64_t pts[MAX_KEYS];
	int n;
};

static void setup(void)
{
	av_log_set_level(AV_LOG_QUIET);
	strcpy(dir, "/tmp/sd-ts-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(ts, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Inputs                                                              */
/* ------------------------------------------------------------------ */

/* Runs @cmd, a format with one %s for the output path, after checking
 * @need (a shell test); skips the test when that fails. */
static void make(const char *need, const char *why, const char *cmd,
		 char *path, size_t plen)
{
	char line[2048];

	if (system(need) != 0)
		cr_skip_test("%s", why);
	snprintf(path, plen, "%s/in.ts", dir);
	snprintf(line, sizeof(line), cmd, path);
	cr_assert_eq(system(line), 0, "%s", line);
}

#define FFMPEG "ffmpeg -nostdin -hide_banner -loglevel error -y "
#define HAVE_X264 "ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264"
#define SRC "-f lavfi -i testsrc=size=320x240:rate=25 " \
	    "-f lavfi -i sine=frequency=1000:sample_rate=48000 -t 9 "

static void make_ffmpeg(const char *codec, char *path, size_t plen)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), FFMPEG SRC "%s -c:a aac -f mpegts '%%s'",
		 codec);
	make(HAVE_X264, "ffmpeg with libx264 is not installed", cmd, path,
	     plen);
}

/* ------------------------------------------------------------------ */
/* What libavformat finds                                              */
/* ------------------------------------------------------------------ */

/* The last PAT packet at or before @pos in @buf, or SD_TS_NONE. */
static uint64_t pat_before(const uint8_t *buf, uint64_t pos)
{
	for (uint64_t p = pos - pos % TS + TS; p >= TS; p -= TS) {
		const uint8_t *k = buf + p - TS;

		if (k[0] == 0x47 && !k[2] && !(k[1] & 0x1f) && (k[1] & 0x40))
			return p - TS;
	}
	return SD_TS_NONE;
}

/* The keys the ingest made of libavformat's packets: its key stream
 * (the first video stream, else the first audio one) into *@pid and
 * *@codec, and the keys into @k. */
static void avformat_keys(const char *path, const uint8_t *buf,
			  unsigned *pid, enum sd_ts_codec *codec,
			  struct keys *k)
{
	AVFormatContext *fmt = NULL;
	AVPacket *pkt = av_packet_alloc();
	int key = -1, audio = 0;
	int64_t last_pts = SD_PTS_NONE;

	cr_assert_eq(avformat_open_input(&fmt, path, NULL, NULL), 0);
	cr_assert_geq(avformat_find_stream_info(fmt, NULL), 0);
	for (unsigned i = 0; i < fmt->nb_streams && key < 0; i++)
		if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
			key = (int)i;
	for (unsigned i = 0; i < fmt->nb_streams && key < 0; i++)
		if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
			key = (int)i, audio = 1;
	cr_assert_geq(key, 0);
	*pid = (unsigned)fmt->streams[key]->id;
	*codec = sd_ingest_ts_codec(fmt->streams[key]);
	k->n = 0;
	while (av_read_frame(fmt, pkt) >= 0) {
		const AVStream *st = fmt->streams[pkt->stream_index];
		int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
		int64_t pts = t == AV_NOPTS_VALUE ? SD_PTS_NONE :
			av_rescale_q(t, st->time_base, (AVRational){ 1, 90000 });
		uint64_t off;

		if (pkt->stream_index == key &&
		    (audio ? sd_audio_key(k->n > 0, last_pts, pts)
			   : (pkt->flags & AV_PKT_FLAG_KEY))) {
			/* an audio frame within a PES has no position */
			off = pkt->pos < 0 ? SD_TS_NONE :
					     pat_before(buf, (uint64_t)pkt->pos);
			if (pkt->pos >= 0 && (off == SD_TS_NONE ||
					      (k->n && k->off[k->n - 1] != SD_TS_NONE &&
					       off <= k->off[k->n - 1])))
				off = (uint64_t)pkt->pos - (uint64_t)pkt->pos % TS;
			if (k->n && off != SD_TS_NONE &&
			    k->off[k->n - 1] != SD_TS_NONE &&
			    off < k->off[k->n - 1])
				off = k->off[k->n - 1];
			cr_assert_lt(k->n, MAX_KEYS);
			k->off[k->n] = off;
			k->pts[k->n++] = pts;
			last_pts = pts;
		}
		av_packet_unref(pkt);
	}
	av_packet_free(&pkt);
	avformat_close_input(&fmt);
}

/* ------------------------------------------------------------------ */
/* What the scan finds                                                 */
/* ------------------------------------------------------------------ */

/* Feeds @buf to a scan in chunks of @chunk bytes (0: random sizes). */
static void scan_keys(const uint8_t *buf, size_t len, unsigned pid,
		      enum sd_ts_codec codec, size_t chunk, struct keys *k)
{
	struct sd_ts *t;
	unsigned seed = 5;
	uint64_t off;
	int64_t pts;

	cr_assert_eq(sd_ts_new(&t, 1), 0);
	sd_ts_key_stream(t, pid, codec);
	k->n = 0;
	for (size_t at = 0; at < len;) {
		size_t n = chunk ? chunk : 1 + (size_t)rand_r(&seed) % 5000;

		if (n > len - at)
			n = len - at;
		cr_assert_eq(sd_ts_feed(t, at, buf + at, n), 0);
		at += n;
		while (sd_ts_take_key(t, &off, &pts)) {
			cr_assert_lt(k->n, MAX_KEYS);
			cr_assert_leq(off, at, "a key beyond the bytes fed");
			k->off[k->n] = off;
			k->pts[k->n++] = pts;
		}
	}
	sd_ts_free(t);
}

static void expect_same(const struct keys *want, const struct keys *got,
			const char *how)
{
	cr_assert_eq(got->n, want->n, "%s: %d keys, libavformat %d", how,
		     got->n, want->n);
	for (int i = 0; i < want->n; i++) {
		if (i)
			cr_assert_geq(got->off[i], got->off[i - 1]);
		if (want->off[i] != SD_TS_NONE)
			cr_assert_eq(got->off[i], want->off[i],
			     "%s: key %d at %llu, libavformat %llu", how, i,
			     (unsigned long long)got->off[i],
			     (unsigned long long)want->off[i]);
		cr_assert_eq(got->pts[i], want->pts[i],
			     "%s: key %d pts %lld, libavformat %lld", how, i,
			     (long long)got->pts[i], (long long)want->pts[i]);
	}
}

/* ------------------------------------------------------------------ */
/* The ingest                                                          */
/* ------------------------------------------------------------------ */

static int on_bytes(void *arg, const void *buf, size_t len)
{
	(void)arg, (void)buf, (void)len;
	return 0;
}

static int on_key(void *arg, uint64_t offset, int64_t pts)
{
	struct keys *k = arg;

	cr_assert_lt(k->n, MAX_KEYS);
	k->off[k->n] = offset;
	k->pts[k->n++] = pts;
	return 0;
}

/* The whole upload fits the ring: pushed in pieces of @chunk. */
static void ingest_keys(const uint8_t *buf, size_t len, size_t chunk,
			struct keys *k)
{
	struct sd_ingest_opts o = { .probe_size = 64 * 1024,
				    .ring_size = len + 1 };
	struct sd_ingest_cbs cb = { .arg = k, .on_bytes = on_bytes,
				    .on_key = on_key };
	struct sd_ingest *in;

	k->n = 0;
	cr_assert_eq(sd_ingest_new(&in, &o, &cb), 0);
	for (size_t at = 0; at < len;) {
		size_t n = chunk < len - at ? chunk : len - at;

		cr_assert_eq(sd_ingest_push(in, buf + at, n), n);
		at += n;
	}
	sd_ingest_finish(in);
	cr_assert_eq(sd_ingest_free(in), 0);
}

/* The scan in every chunking, and the ingest, against libavformat. */
static void check(const char *path, int min_keys)
{
	static const size_t chunks[] = { 1, 187, 189, 0, 65536 };
	struct keys want, got;
	enum sd_ts_codec codec;
	unsigned pid;
	size_t len;
	uint8_t *buf = sd_test_load(path, &len);
	char how[32];

	avformat_keys(path, buf, &pid, &codec, &want);
	cr_assert_geq(want.n, min_keys, "libavformat found %d keys", want.n);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		snprintf(how, sizeof(how), "scan by %zu", chunks[i]);
		scan_keys(buf, len, pid, codec, chunks[i], &got);
		expect_same(&want, &got, how);
	}
	ingest_keys(buf, len, 4093, &got);
	expect_same(&want, &got, "ingest");
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Encoders                                                            */
/* ------------------------------------------------------------------ */

Test(ts, finds_the_h264_keyframes_libavformat_finds)
{
	char path[128];

	make_ffmpeg("-c:v libx264 -preset ultrafast -g 25 -sc_threshold 0 "
		    "-pix_fmt yuv420p", path, sizeof(path));
	check(path, 9);
}

Test(ts, finds_h264_keyframes_among_b_frames_and_scene_cuts)
{
	char path[128];

	make_ffmpeg("-vf noise=alls=20:allf=t -c:v libx264 -preset fast "
		    "-bf 3 -g 40 -pix_fmt yuv420p", path, sizeof(path));
	check(path, 5);
}

/* Scene cuts close after an IDR make I slices that are not IDR; with one
 * reference frame libavformat takes them for keys too. */
Test(ts, takes_i_slices_with_one_reference_frame_for_keys)
{
	char path[128];

	make_ffmpeg("-vf negate=enable='lt(mod(t\\,0.8)\\,0.4)' "
		    "-c:v libx264 -preset fast -x264-params ref=1 -g 250 "
		    "-pix_fmt yuv420p", path, sizeof(path));
	check(path, 3);
}

Test(ts, finds_open_gop_h264_keyframes_by_their_recovery_point)
{
	char path[128];

	make_ffmpeg("-c:v libx264 -preset fast -g 30 -sc_threshold 0 "
		    "-x264-params open-gop=1 -pix_fmt yuv420p", path,
		    sizeof(path));
	check(path, 2);
}

Test(ts, finds_mpeg2_i_pictures)
{
	char path[128];

	make_ffmpeg("-c:v mpeg2video -g 12 -bf 2", path, sizeof(path));
	check(path, 18);
}

Test(ts, finds_hevc_irap_pictures)
{
	char path[128], cmd[1024];

	snprintf(cmd, sizeof(cmd), FFMPEG SRC "-c:v libx265 -preset "
		 "ultrafast -x265-params keyint=25:min-keyint=25:log-level=0 "
		 "-c:a aac -f mpegts '%%s'");
	make("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx265",
	     "ffmpeg with libx265 is not installed", cmd, path, sizeof(path));
	check(path, 9);
}

Test(ts, unwraps_timestamps_past_2_to_the_33_as_libavformat_does)
{
	char path[128];

	/* 2^33 ticks of 90 kHz are 95443.7 s: the PTS wrap mid-file */
	make_ffmpeg("-c:v libx264 -preset ultrafast -g 25 -sc_threshold 0 "
		    "-pix_fmt yuv420p -output_ts_offset 95440", path,
		    sizeof(path));
	check(path, 9);
}

Test(ts, marks_every_two_seconds_of_adts_audio)
{
	char path[128];

	make(HAVE_X264, "ffmpeg is not installed",
	     FFMPEG "-f lavfi -i sine=frequency=1000:sample_rate=44100 -t 9 "
		    "-c:a aac -f mpegts '%s'", path, sizeof(path));
	check(path, 4);
}

/* GStreamer's muxer lays out PES, PAT and PMT its own way: the H.264
 * of an ffmpeg-made file remuxed, and its own encoder's. */
Test(ts, finds_the_keyframes_of_gstreamer_mpegtsmux)
{
	char path[128], src[128], cmd[1024];

	make_ffmpeg("-an -c:v libx264 -preset ultrafast -g 25 "
		    "-sc_threshold 0 -pix_fmt yuv420p", src, sizeof(src));
	snprintf(src, sizeof(src), "%s/src.ts", dir);
	snprintf(cmd, sizeof(cmd), "mv '%s/in.ts' '%s'", dir, src);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "gst-launch-1.0 -q filesrc location='%s' ! tsdemux ! "
		 "h264parse ! mpegtsmux ! filesink location='%%s' "
		 ">/dev/null 2>&1", src);
	make("gst-inspect-1.0 tsdemux >/dev/null 2>&1 && "
	     "gst-inspect-1.0 mpegtsmux >/dev/null 2>&1",
	     "GStreamer with tsdemux and mpegtsmux is not installed", cmd,
	     path, sizeof(path));
	check(path, 9);
}

Test(ts, finds_the_keyframes_gstreamer_encodes_and_muxes)
{
	char path[128];

	make("gst-inspect-1.0 openh264enc >/dev/null 2>&1 && "
	     "gst-inspect-1.0 mpegtsmux >/dev/null 2>&1",
	     "GStreamer with openh264enc and mpegtsmux is not installed",
	     "gst-launch-1.0 -q videotestsrc num-buffers=225 ! "
	     "video/x-raw,width=320,height=240,framerate=25/1 ! "
	     "openh264enc gop-size=25 ! h264parse ! mpegtsmux ! "
	     "filesink location='%s' >/dev/null 2>&1", path, sizeof(path));
	check(path, 9);
}
