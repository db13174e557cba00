/*
 * Tests for the in-flight demuxer of uploads (sd_ingest.c).  Streams are
 * made at test time with the ffmpeg tool in a mkdtemp directory (H.264 +
 * AAC in MPEG-TS with a 2 s GOP, audio only, FLV) and pushed from a
 * separate thread in random chunk sizes into a ring smaller than the
 * upload, waiting for on_wake whenever a push comes back short.  Checked:
 * the passed-on bytes are the upload byte for byte; keyframes every 2 s
 * at PAT packets with increasing offsets and pts; the codec description;
 * that garbage, text and empty uploads are refused without passing a
 * byte on, within the probe bound, and that pushes are refused after;
 * that a callback's error stops the ingest; on_idle while an upload
 * stalls; and that uploads cut in the
 * middle of a TS packet or with junk inside keep every byte.  Tests that
 * need ffmpeg skip when it (or libx264) is not installed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "streamd-int.h"
#include "sd_test_file.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define MAX_KEYS 64

static char dir[64];

/* What the callbacks saw, and how they should misbehave. */
struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *out;
	size_t outn, outcap;
	int ready, bytes_before_ready, bytes_calls, bytes_after_err;
	char format[32];
	char *codecs;
	uint64_t key_off[MAX_KEYS];
	int64_t key_pts[MAX_KEYS];
	int nkeys;
	int woken;
	char warn[1024];
	/* failure injection */
	size_t fail_bytes_after; /* on_bytes fails once this many arrived */
	int fail_key;		 /* on_key fails on this key (1-based) */
	int fail_ready;
	int fail_idle;		 /* on_idle fails on this call (1-based) */
	int idles;		 /* under mu */
	int failed;
};

struct pusher {
	struct sd_ingest *in;
	struct rec *r;
	const uint8_t *buf;
	size_t len;
	unsigned seed;
	size_t accepted;
	int saw_done;	  /* stopped because the ingest was DONE */
	int missed_wakes; /* waits for on_wake that timed out */
};

static void setup(void)
{
	av_log_set_level(AV_LOG_QUIET);
	strcpy(dir, "/tmp/sd-ingest-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(ingest, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */
/* ------------------------------------------------------------------ */

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
}

static void rec_fini(struct rec *r)
{
	free(r->out);
	free(r->codecs);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

static void on_log(void *arg, enum sd_log_level lvl, const char *msg)
{
	struct rec *r = arg;

	if (getenv("SD_TEST_LOG"))
		fprintf(stderr, "[%d] %s\n", (int)lvl, msg);
	if (lvl <= SD_LOG_WARN) {
		pthread_mutex_lock(&r->mu);
		snprintf(r->warn, sizeof(r->warn), "%s", msg);
		pthread_mutex_unlock(&r->mu);
	}
}

static int on_ready(void *arg, const char *format, const char *codecs)
{
	struct rec *r = arg;

	r->ready++;
	snprintf(r->format, sizeof(r->format), "%s", format);
	r->codecs = strdup(codecs);
	return r->fail_ready ? -EPERM : 0;
}

static int on_bytes(void *arg, const void *buf, size_t len)
{
	struct rec *r = arg;

	if (!r->ready)
		r->bytes_before_ready++;
	if (r->failed)
		r->bytes_after_err++;
	r->bytes_calls++;
	if (r->outn + len > r->outcap) {
		r->outcap = (r->outn + len) * 2;
		r->out = realloc(r->out, r->outcap);
		cr_assert_not_null(r->out);
	}
	memcpy(r->out + r->outn, buf, len);
	r->outn += len;
	if (r->fail_bytes_after && r->outn >= r->fail_bytes_after) {
		r->failed = 1;
		return -EIO;
	}
	return 0;
}

static int on_key(void *arg, uint64_t offset, int64_t pts)
{
	struct rec *r = arg;

	cr_assert_lt(r->nkeys, MAX_KEYS);
	cr_assert_leq(offset, r->outn, "a key beyond the bytes passed on");
	r->key_off[r->nkeys] = offset;
	r->key_pts[r->nkeys] = pts;
	r->nkeys++;
	if (r->fail_key == r->nkeys) {
		r->failed = 1;
		return -ENOSPC;
	}
	return 0;
}

static int on_idle(void *arg)
{
	struct rec *r = arg;

	cr_assert_eq(r->ready, 1, "on_idle before on_ready");
	pthread_mutex_lock(&r->mu);
	r->idles++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->fail_idle && r->idles >= r->fail_idle) {
		r->failed = 1;
		return -ETIMEDOUT;
	}
	return 0;
}

static void on_wake(void *arg)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	r->woken = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static struct sd_ingest *start(struct rec *r, uint64_t probe_size,
			       size_t ring_size)
{
	struct sd_ingest_opts o = { .probe_size = probe_size,
				    .ring_size = ring_size,
				    .log = { on_log, r } };
	struct sd_ingest_cbs cb = { .arg = r, .on_ready = on_ready,
				    .on_bytes = on_bytes, .on_key = on_key,
				    .on_idle = on_idle, .on_wake = on_wake };
	struct sd_ingest *in = NULL;

	cr_assert_eq(sd_ingest_new(&in, &o, &cb), 0);
	return in;
}

/* ------------------------------------------------------------------ */
/* The uploading side                                                  */
/* ------------------------------------------------------------------ */

/* Mostly large chunks, with runs of tiny ones. */
static size_t chunk_size(unsigned *seed)
{
	unsigned x = (unsigned)rand_r(seed);

	if (x % 4 == 0)
		return 1 + (size_t)rand_r(seed) % 200;
	return 1 + (size_t)rand_r(seed) % (64 * KIB);
}

/* Waits for on_wake (returns 0), or gives up after 10 s (-ETIMEDOUT). */
static int wait_wake(struct rec *r)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&r->mu);
	while (!r->woken && !err)
		err = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	pthread_mutex_unlock(&r->mu);
	return -err;
}

static void *push_all(void *arg)
{
	struct pusher *p = arg;
	size_t pos = 0;

	while (pos < p->len) {
		size_t k = chunk_size(&p->seed), took;

		if (k > p->len - pos)
			k = p->len - pos;
		pthread_mutex_lock(&p->r->mu);
		p->r->woken = 0;
		pthread_mutex_unlock(&p->r->mu);
		took = sd_ingest_push(p->in, p->buf + pos, k);
		pos += took;
		if (took == k)
			continue;
		if (sd_ingest_state(p->in, NULL) == SD_INGEST_DONE) {
			p->saw_done = 1;
			break;
		}
		if (wait_wake(p->r) < 0)
			p->missed_wakes++;
	}
	p->accepted = pos;
	return NULL;
}

/* Pushes @buf from another thread; finishes the upload unless @no_finish. */
static void upload(struct pusher *p, struct sd_ingest *in, struct rec *r,
		   const uint8_t *buf, size_t len, unsigned seed)
{
	pthread_t th;

	*p = (struct pusher){ .in = in, .r = r, .buf = buf, .len = len,
			      .seed = seed };
	cr_assert_eq(pthread_create(&th, NULL, push_all, p), 0);
	pthread_join(th, NULL);
	cr_expect_eq(p->missed_wakes, 0, "on_wake never came");
	sd_ingest_finish(in);
}

/* ------------------------------------------------------------------ */
/* Inputs                                                              */
/* ------------------------------------------------------------------ */

static int have_ffmpeg(void)
{
	return system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264") == 0;
}

/* Runs ffmpeg with @args writing @file in the test directory, or skips the
 * test when ffmpeg with libx264 is not there. */
static uint8_t *make_input(const char *args, const char *file, size_t *len)
{
	char cmd[1024], path[128];

	if (!have_ffmpeg())
		cr_skip_test("ffmpeg with libx264 is not installed");
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(cmd, sizeof(cmd),
		 "ffmpeg -nostdin -hide_banner -loglevel error -y %s '%s'",
		 args, path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	return sd_test_load(path, len);
}

/* H.264 + AAC in MPEG-TS, 6 s with a keyframe every 2 s.  @noise makes
 * it bigger than the rings the tests use. */
static uint8_t *make_ts(int noise, size_t *len)
{
	char args[512];

	snprintf(args, sizeof(args),
		 "-f lavfi -i testsrc=size=320x240:rate=25 "
		 "-f lavfi -i sine=frequency=1000:sample_rate=48000 -t 6 %s "
		 "-c:v libx264 -preset ultrafast -g 50 -sc_threshold 0 "
		 "-pix_fmt yuv420p -c:a aac -f mpegts",
		 noise ? "-vf noise=alls=12:allf=t" : "");
	return make_input(args, "in.ts", len);
}

static uint8_t *garbage(size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len ? len : 1);

	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(rand_r(&seed) >> 7);
	return buf;
}

static unsigned ts_pid(const uint8_t *pkt)
{
	return ((pkt[1] & 0x1fu) << 8) | pkt[2];
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */
/* ------------------------------------------------------------------ */

Test(ingest, passes_every_byte_in_upload_order_under_backpressure)
{
	struct rec r;
	struct pusher p;
	struct sd_ingest_stats st;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 256 * KIB);
	cr_assert_gt(len, 4 * 256 * KIB, "the input should overflow the ring");
	upload(&p, in, &r, in_buf, len, 42);
	sd_ingest_stats(in, &st);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(p.accepted, len);
	cr_assert_eq(st.bytes_in, len);
	cr_assert_gt(st.packets, 100);
	cr_assert_eq(r.ready, 1);
	cr_assert_eq(r.bytes_before_ready, 0);
	cr_assert_eq(r.outn, len);
	cr_assert(memcmp(r.out, in_buf, len) == 0, "bytes differ");
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, reports_a_keyframe_every_two_seconds_at_a_pat_packet)
{
	struct rec r;
	struct pusher p;
	struct sd_ingest_stats st;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 256 * KIB);
	upload(&p, in, &r, in_buf, len, 7);
	sd_ingest_stats(in, &st);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(r.nkeys, 3);
	cr_assert_eq(st.keyframes, 3);
	for (int i = 0; i < r.nkeys; i++) {
		const uint8_t *pkt = in_buf + r.key_off[i];

		cr_assert_eq(r.key_off[i] % 188, 0);
		cr_assert_lt(r.key_off[i] + 188, len);
		cr_assert_eq(pkt[0], 0x47);
		cr_assert_eq(ts_pid(pkt), 0, "key %d is not at a PAT", i);
		cr_assert(pkt[1] & 0x40, "PAT without payload_unit_start");
		cr_assert_neq(r.key_pts[i], SD_PTS_NONE);
		if (i == 0)
			continue;
		cr_assert_gt(r.key_off[i], r.key_off[i - 1]);
		cr_assert_eq(r.key_pts[i] - r.key_pts[i - 1], 180000);
	}
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, describes_h264_and_aac_in_mpegts)
{
	struct rec r;
	struct pusher p;
	size_t len;
	uint8_t *in_buf = make_ts(0, &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 0);
	upload(&p, in, &r, in_buf, len, 3);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(r.ready, 1);
	cr_assert_str_eq(r.format, "mpegts");
	cr_assert_not_null(r.codecs);
	cr_assert_not_null(strstr(r.codecs, "{\"type\":\"video\",\"codec\":\"h264\",\"width\":320,\"height\":240,\"fps\":25}"),
			   "%s", r.codecs);
	cr_assert_not_null(strstr(r.codecs, "{\"type\":\"audio\",\"codec\":\"aac\",\"sample_rate\":48000,\"channels\":1}"),
			   "%s", r.codecs);
	cr_assert_eq(r.codecs[0], '[');
	cr_assert_eq(r.codecs[strlen(r.codecs) - 1], ']');
	cr_assert_eq(r.outn, len);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, marks_every_two_seconds_of_an_audio_only_stream)
{
	struct rec r;
	struct pusher p;
	size_t len;
	uint8_t *in_buf = make_input(
		"-f lavfi -i sine=frequency=1000:sample_rate=48000 -t 6 "
		"-c:a aac -f mpegts", "audio.ts", &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 16 * KIB);
	upload(&p, in, &r, in_buf, len, 5);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_not_null(strstr(r.codecs, "\"aac\""));
	cr_assert_geq(r.nkeys, 3);
	for (int i = 1; i < 3; i++) {
		int64_t d = r.key_pts[i] - r.key_pts[i - 1];

		cr_assert_geq(d, 180000);
		cr_assert_lt(d, 180000 + 1920, "more than one AAC frame late");
		cr_assert_gt(r.key_off[i], r.key_off[i - 1]);
	}
	cr_assert_eq(r.outn, len);
	cr_assert(memcmp(r.out, in_buf, len) == 0);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, points_keys_of_other_formats_at_the_packet_position)
{
	struct rec r;
	struct pusher p;
	size_t len;
	uint8_t *in_buf = make_input(
		"-f lavfi -i testsrc=size=320x240:rate=25 -t 6 -c:v libx264 "
		"-preset ultrafast -g 50 -sc_threshold 0 -pix_fmt yuv420p "
		"-f flv", "in.flv", &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 0);
	upload(&p, in, &r, in_buf, len, 11);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_str_eq(r.format, "flv");
	cr_assert_eq(r.nkeys, 3);
	for (int i = 0; i < r.nkeys; i++) {
		cr_assert_eq(in_buf[r.key_off[i]], 9, "not an FLV video tag");
		if (i)
			cr_assert_gt(r.key_off[i], r.key_off[i - 1]);
	}
	cr_assert_eq(r.outn, len);
	cr_assert(memcmp(r.out, in_buf, len) == 0);
	free(in_buf);
	rec_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Not streams                                                         */
/* ------------------------------------------------------------------ */

static void expect_refused(const uint8_t *buf, size_t len)
{
	struct rec r;
	struct pusher p;
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 256 * KIB, 128 * KIB);
	upload(&p, in, &r, buf, len, 1);
	cr_assert_eq(sd_ingest_free(in), -EPROTONOSUPPORT);
	cr_assert_eq(r.ready, 0);
	cr_assert_eq(r.bytes_calls, 0);
	cr_assert_eq(r.nkeys, 0);
	cr_assert_not_null(strstr(r.warn, "avformat_"), "%s", r.warn);
	rec_fini(&r);
}

Test(ingest, refuses_random_bytes)
{
	uint8_t *buf = garbage(2 * MIB, 99);

	expect_refused(buf, 2 * MIB);
	free(buf);
}

Test(ingest, refuses_a_text_file)
{
	size_t cap = 300 * KIB, len = 0;
	char *buf = malloc(cap);

	cr_assert_not_null(buf);
	for (int i = 0; len + 100 < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len,
					"%d: the quick brown fox jumps over the lazy dog, again.\n",
					i);
	expect_refused((uint8_t *)buf, len);
	free(buf);
}

Test(ingest, refuses_an_empty_upload)
{
	expect_refused(NULL, 0);
}

Test(ingest, refuses_an_upload_that_ends_before_the_probe_could_tell)
{
	uint8_t hdr[188] = { 0x47, 0x40, 0x00, 0x10 };

	expect_refused(hdr, 100);
}

Test(ingest, bounds_the_probe_and_refuses_pushes_after_failing)
{
	const uint64_t probe = 256 * KIB;
	const size_t ring = 256 * KIB, len = 10 * MIB;
	uint8_t *buf = garbage(len, 4);
	struct rec r;
	struct pusher p;
	struct sd_ingest *in;
	unsigned long long read_bytes = 0;
	const char *after;
	int result = 0;

	rec_init(&r);
	in = start(&r, probe, ring);
	upload(&p, in, &r, buf, len, 8);
	cr_assert(p.saw_done, "the ingest did not end before the upload did");
	cr_assert_leq(p.accepted, probe + 64 * KIB + ring);
	cr_assert_eq(sd_ingest_state(in, &result), SD_INGEST_DONE);
	cr_assert_eq(result, -EPROTONOSUPPORT);
	cr_assert_eq(sd_ingest_push(in, buf, 1000), 0);
	after = strstr(r.warn, "after ");
	cr_assert_not_null(after, "%s", r.warn);
	cr_assert_eq(sscanf(after, "after %llu bytes", &read_bytes), 1);
	cr_assert_leq(read_bytes, probe + 64 * KIB);
	cr_assert_eq(sd_ingest_free(in), -EPROTONOSUPPORT);
	cr_assert_eq(r.bytes_calls, 0);
	free(buf);
	rec_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Errors and damaged uploads                                          */
/* ------------------------------------------------------------------ */

/* Runs @in_buf through an ingest whose callbacks fail as @r says. */
static int run_failing(struct rec *r, const uint8_t *in_buf, size_t len)
{
	struct pusher p;
	struct sd_ingest *in = start(r, 0, 64 * KIB);
	int result = 0;

	upload(&p, in, r, in_buf, len, 21);
	cr_assert(p.saw_done, "pushes went on after the error");
	cr_assert_eq(sd_ingest_state(in, &result), SD_INGEST_DONE);
	cr_assert_eq(sd_ingest_push(in, in_buf, 100), 0);
	cr_assert_eq(sd_ingest_free(in), result);
	cr_assert_eq(r->bytes_after_err, 0);
	return result;
}

Test(ingest, stops_with_the_error_on_bytes_returns)
{
	struct rec r;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);

	rec_init(&r);
	r.fail_bytes_after = len / 2;
	cr_assert_eq(run_failing(&r, in_buf, len), -EIO);
	cr_assert_lt(r.outn, len);
	cr_assert(memcmp(r.out, in_buf, r.outn) == 0);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, stops_with_the_error_on_key_returns)
{
	struct rec r;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);

	rec_init(&r);
	r.fail_key = 2;
	cr_assert_eq(run_failing(&r, in_buf, len), -ENOSPC);
	cr_assert_eq(r.nkeys, 2);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, stops_with_the_error_on_ready_returns)
{
	struct rec r;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);

	rec_init(&r);
	r.fail_ready = 1;
	cr_assert_eq(run_failing(&r, in_buf, len), -EPERM);
	cr_assert_eq(r.bytes_calls, 0);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, keeps_every_byte_of_an_upload_cut_in_a_ts_packet)
{
	struct rec r;
	struct pusher p;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);
	size_t cut = 188 * (len / 188 / 2) + 97;
	struct sd_ingest *in;

	rec_init(&r);
	in = start(&r, 0, 256 * KIB);
	upload(&p, in, &r, in_buf, cut, 13);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(r.outn, cut);
	cr_assert(memcmp(r.out, in_buf, cut) == 0);
	cr_assert_geq(r.nkeys, 1);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, finds_pat_packets_again_after_junk_in_the_stream)
{
	struct rec r;
	struct pusher p;
	size_t len, at, junk = 61;
	uint8_t *ts = make_ts(1, &len);
	uint8_t *in_buf = malloc(len + junk);
	struct sd_ingest *in;

	/* junk between two packets just before the second GOP */
	cr_assert_not_null(in_buf);
	at = 188 * (len / 188 / 3);
	memcpy(in_buf, ts, at);
	memset(in_buf + at, 0x47, junk);
	memcpy(in_buf + at + junk, ts + at, len - at);
	len += junk;
	rec_init(&r);
	in = start(&r, 0, 256 * KIB);
	upload(&p, in, &r, in_buf, len, 17);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(r.outn, len);
	cr_assert(memcmp(r.out, in_buf, len) == 0);
	cr_assert_eq(r.nkeys, 3);
	for (int i = 0; i < r.nkeys; i++) {
		const uint8_t *pkt = in_buf + r.key_off[i];

		cr_assert_eq(pkt[0], 0x47);
		cr_assert_eq(ts_pid(pkt), 0, "key %d is not at a PAT", i);
		cr_assert_eq(r.key_off[i] % 188, r.key_off[i] > at ? junk : 0);
	}
	free(ts);
	free(in_buf);
	rec_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Stalled uploads                                                     */
/* ------------------------------------------------------------------ */

/* Waits until on_idle ran @n times; 0 or -ETIMEDOUT (after 10 s). */
static int wait_idles(struct rec *r, int n)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&r->mu);
	while (r->idles < n && !err)
		err = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	pthread_mutex_unlock(&r->mu);
	return -err;
}

/* Pushes the first @len bytes (all fit in the default ring) and lets the
 * upload stall without finishing. */
static struct sd_ingest *stall(struct rec *r, const uint8_t *buf, size_t len)
{
	struct sd_ingest *in = start(r, 0, 0);

	cr_assert_eq(sd_ingest_push(in, buf, len), len);
	return in;
}

Test(ingest, calls_on_idle_while_a_running_upload_stalls)
{
	struct rec r;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);
	struct sd_ingest *in;

	rec_init(&r);
	in = stall(&r, in_buf, 2 * MIB);
	cr_assert_eq(wait_idles(&r, 3), 0, "on_idle did not come");
	cr_assert_eq(sd_ingest_state(in, NULL), SD_INGEST_RUNNING);
	sd_ingest_finish(in);
	cr_assert_eq(sd_ingest_free(in), 0, "%s", r.warn);
	cr_assert_eq(r.outn, 2 * MIB);
	free(in_buf);
	rec_fini(&r);
}

Test(ingest, stops_with_the_error_on_idle_returns)
{
	struct rec r;
	size_t len;
	uint8_t *in_buf = make_ts(1, &len);
	struct sd_ingest *in;
	int result = 0;

	rec_init(&r);
	r.fail_idle = 2;
	in = stall(&r, in_buf, 2 * MIB);
	cr_assert_eq(wait_idles(&r, 2), 0, "on_idle did not come");
	while (sd_ingest_state(in, &result) != SD_INGEST_DONE)
		cr_assert_eq(wait_wake(&r), 0, "no on_wake at the end");
	cr_assert_eq(result, -ETIMEDOUT);
	cr_assert_eq(sd_ingest_push(in, in_buf, 100), 0);
	cr_assert_eq(sd_ingest_free(in), -ETIMEDOUT);
	free(in_buf);
	rec_fini(&r);
}
