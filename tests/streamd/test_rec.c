/*
 * Tests for the recording writer (sd_rec.c) and the read-side catalog
 * (sd_catalog.c) against a real DJMFS server started in this process on
 * a temporary volume: what a recording holds byte for byte, its index
 * entries and header, the single publisher, a recording continued by a
 * second connection, publishing a trickle of bytes, a full volume (its
 * failure also reported when its callback comes late), files
 * that are not recordings, readers racing a writer, and data pieces that
 * reach the volume with no copy in libdjmfs.  Tests that move
 * data skip when the machine has no io_uring.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "streamd-int.h"
#include "../djmfs/server_env.h"
#include "sd_test_log.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define AU (64 * KIB)
#define PTS0 1000000LL
#define MAX_KEYS 64

static struct server_env env;

/* A server on a new volume of @vol_size bytes. */
static void env_start(uint64_t vol_size)
{
	const struct server_env_opts o = {
		.tag = "sd-rec",
		.vol_size = vol_size,
		.au_size = AU,
	};

	server_env_start(&env, &o);
}

static void env_stop(void)
{
	server_env_stop(&env);
	server_env_remove(&env);
}

static void setup(void)
{
	env_start(64 * MIB);
}

/* A connected client, or a skipped test when data I/O is impossible. */
static struct djmfs_client *client(void)
{
	return server_env_connect(&env, 0);
}

static struct sd_catalog *catalog(struct djmfs_client *c)
{
	struct sd_catalog *cat = NULL;

	/* 1 ns: every get fetches the newest snapshot. */
	cr_assert_eq(sd_catalog_new(&cat, c, 1, &sd_test_log), 0);
	return cat;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd(&seed) >> 24);
}

/* The clock publish_ns runs on in the tests that time publishes: they
 * move it past publish_ns instead of sleeping through it. */
static uint64_t fake_ns = SD_NS;

static uint64_t fake_now(void)
{
	return fake_ns;
}

#define PUBLISH_NS (50 * 1000 * 1000)

/* Lets a little more than publish_ns pass on the fake clock. */
static void publish_ns_passes(void)
{
	fake_ns += PUBLISH_NS + 10 * 1000 * 1000;
}

static const struct sd_rec_opts rec_opts = {
	.log = { sd_test_log_line, NULL },
};

#define CODECS "[{\"type\":\"video\",\"codec\":\"h264\",\"width\":1280}]"

/* Keyframes a connection reported: offset (in the connection) and pts. */
struct keys {
	size_t n;
	uint64_t off[MAX_KEYS];
	int64_t pts[MAX_KEYS];
};

/*
 * Sends @len bytes of @src in random pieces of up to 50 KB, with a
 * keyframe at the first byte and one about every 200 KiB after it (each
 * reported once its bytes were sent, as the demuxer does), one second of
 * pts apart.
 */
static void send_stream(struct sd_rec *r, const uint8_t *src, size_t len,
			uint64_t seed, struct keys *k)
{
	uint64_t next = 0, pos = 0, s = seed | 1;

	k->n = 0;
	while (pos < len || next <= pos) {
		if (next <= pos && next < len && k->n < MAX_KEYS) {
			k->off[k->n] = next;
			k->pts[k->n] = PTS0 + (int64_t)k->n * 90000;
			cr_assert_eq(sd_rec_key(r, next, k->pts[k->n]), 0);
			k->n++;
			next += 200 * KIB + rnd(&s) % (16 * KIB);
			continue;
		}
		if (pos == len)
			break;
		size_t n = 1 + rnd(&s) % 50000;

		n = n < len - pos ? n : len - pos;
		cr_assert_eq(sd_rec_data(r, src + pos, n), 0);
		pos += n;
	}
}

/* Reads the whole "data" object of @name as the newest snapshot has it. */
static size_t read_data(struct djmfs_client *c, const char *name,
			uint8_t *buf, size_t max)
{
	struct djmfs_file *f = NULL;
	uint32_t id;
	ssize_t n;

	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ, &f), 0);
	cr_assert_eq(djmfs_find_obj(f, "data", &id), 0);
	n = djmfs_pread_obj(f, id, buf, max, 0);
	cr_assert_geq(n, 0);
	cr_assert_eq(djmfs_close(f), 0);
	return (size_t)n;
}

/* The header object of @name, parsed. */
static json_t *read_header(struct djmfs_client *c, const char *name,
			   size_t *size)
{
	struct djmfs_file *f = NULL;
	char buf[8192];
	uint32_t id;
	ssize_t n;
	json_t *h;

	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ, &f), 0);
	cr_assert_eq(djmfs_find_obj(f, "header", &id), 0);
	n = djmfs_pread_obj(f, id, buf, sizeof(buf), 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(djmfs_close(f), 0);
	*size = (size_t)n;
	cr_assert_eq(buf[n - 1], ' ', "the header is padded with spaces");
	h = json_loadb(buf, (size_t)n, 0, NULL);
	cr_assert_not_null(h);
	return h;
}

static json_int_t jint(json_t *h, const char *key)
{
	json_t *v = json_object_get(h, key);

	cr_assert(json_is_integer(v), "header field %s", key);
	return json_integer_value(v);
}

TestSuite(rec, .init = setup, .fini = env_stop, .timeout = 60);

Test(rec, records_exact_bytes_keyframes_and_liveness)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	size_t len = 3 * MIB;
	uint8_t *src = malloc(len), *dst = malloc(len + 1);
	int64_t wall0 = sd_wall_now();
	struct sd_rec *r = NULL;
	struct sd_rec_stats st;
	struct sd_stream *s;
	struct keys k;
	size_t n;

	fill(src, len, 1);
	cr_assert_eq(sd_rec_open(c, "cam1", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", CODECS, wall0), 0);
	send_stream(r, src, len, 7, &k);
	cr_assert_geq(k.n, 14);

	cr_assert_eq(sd_catalog_get(cat, "cam1", &s), 0);
	sd_stream_rdlock(s);
	cr_assert_eq(s->live, 1);
	cr_assert_eq(s->start_ns, wall0);
	cr_assert_leq(s->data_size, len);
	for (size_t i = 0; i < s->index.n; i++)
		cr_assert_leq(s->index.e[i].offset, s->data_size);
	sd_stream_unlock(s);
	sd_stream_put(s);

	sd_rec_stats(r, &st);
	cr_assert_eq(st.bytes, len);
	cr_assert_eq(st.keyframes, k.n);
	cr_assert_eq(sd_rec_close(r, wall0 + 20 * SD_NS, NULL), 0);

	cr_assert_eq(sd_catalog_get(cat, "cam1", &s), 0);
	sd_stream_rdlock(s);
	cr_assert_eq(s->live, 0);
	cr_assert_eq(s->data_size, len);
	cr_assert_eq(s->connections, 1);
	cr_assert_str_eq(s->format, "mpegts");
	cr_assert_eq(s->index.n, k.n + 1);
	cr_assert_eq(s->index.e[0].flags, SD_IDX_KEY | SD_IDX_SEGMENT);
	for (size_t i = 0; i < k.n; i++) {
		cr_assert_eq(s->index.e[i].offset, k.off[i]);
		cr_assert_eq(s->index.e[i].pts, k.pts[i]);
		cr_assert_eq(s->index.e[i].wall_ns, wall0 + (int64_t)i * SD_NS);
		if (i > 0)
			cr_assert_eq(s->index.e[i].flags, SD_IDX_KEY);
	}
	cr_assert_eq(s->index.e[k.n].flags, SD_IDX_END);
	cr_assert_eq(s->index.e[k.n].offset, len);
	cr_assert_eq(s->index.e[k.n].wall_ns, wall0 + 20 * SD_NS);
	cr_assert_eq(s->end_ns, wall0 + 20 * SD_NS);
	cr_assert_eq(s->bitrate, len * 8 / 20);
	sd_stream_unlock(s);
	sd_stream_put(s);

	n = read_data(c, "cam1", dst, len + 1);
	cr_assert_eq(n, len);
	cr_assert_eq(memcmp(src, dst, len), 0);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
	free(dst);
}

Test(rec, refuses_a_second_publisher_while_the_first_records)
{
	struct djmfs_client *c = client();
	struct sd_rec *r = NULL, *r2 = NULL;

	cr_assert_eq(sd_rec_open(c, "cam1", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_open(c, "cam1", &rec_opts, &r2), -EBUSY);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	cr_assert_eq(sd_rec_open(c, "cam1", &rec_opts, &r2), 0);
	cr_assert_eq(sd_rec_close(r2, sd_wall_now(), NULL), 0);
	cr_assert_eq(sd_rec_close(NULL, 0, NULL), 0);
	djmfs_disconnect(c);
}

Test(rec, reopening_continues_the_recording_after_a_gap)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	size_t a = 300 * KIB, b = 500 * KIB, size;
	uint8_t *src = malloc(a + b), *dst = malloc(a + b + 1);
	int64_t w1 = sd_wall_now(), end1 = w1 + 3 * SD_NS, w2 = w1 + 8 * SD_NS;
	struct sd_rec *r = NULL;
	struct sd_stream *s;
	struct sd_gap gap[2];
	struct keys k;
	char iso[40];
	json_t *h;

	fill(src, a + b, 2);
	cr_assert_eq(sd_rec_open(c, "cam2", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", w1), 0);
	send_stream(r, src, a, 3, &k);
	cr_assert_eq(sd_rec_close(r, end1, NULL), 0);

	cr_assert_eq(sd_rec_open(c, "cam2", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", CODECS, w2), 0);
	send_stream(r, src + a, b, 4, &k);
	cr_assert_eq(sd_rec_close(r, w2 + 4 * SD_NS, NULL), 0);

	cr_assert_eq(sd_catalog_get(cat, "cam2", &s), 0);
	sd_stream_rdlock(s);
	cr_assert_eq(s->data_size, a + b);
	cr_assert_eq(s->connections, 2);
	cr_assert_eq(s->start_ns, w1, "the start time is kept");
	cr_assert_eq(s->end_ns, w2 + 4 * SD_NS);
	cr_assert_str_eq(s->codecs, CODECS);
	cr_assert_eq(sd_index_gaps(&s->index, gap, 2), 1);
	cr_assert_eq(gap[0].start_ns, end1);
	cr_assert_eq(gap[0].end_ns, w2);
	cr_assert_eq(gap[0].offset, a);
	for (size_t i = 1; i < s->index.n; i++) {
		cr_assert_geq(s->index.e[i].wall_ns, s->index.e[i - 1].wall_ns);
		cr_assert_geq(s->index.e[i].offset, s->index.e[i - 1].offset);
	}
	sd_stream_unlock(s);
	sd_stream_put(s);
	cr_assert_eq(read_data(c, "cam2", dst, a + b + 1), a + b);
	cr_assert_eq(memcmp(src, dst, a + b), 0);

	h = read_header(c, "cam2", &size);
	cr_assert_eq(size, 4096);
	cr_assert_eq(jint(h, "version"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(h, "name")), "cam2");
	sd_time_format_iso8601(w1, iso, sizeof(iso));
	cr_assert_str_eq(json_string_value(json_object_get(h, "start")), iso);
	cr_assert_eq(jint(h, "start_ns"), w1);
	cr_assert_str_eq(json_string_value(json_object_get(h, "format")),
			 "mpegts");
	cr_assert(json_is_array(json_object_get(h, "codecs")));
	cr_assert_eq(jint(h, "connections"), 2);
	cr_assert_eq(jint(h, "bitrate"), (json_int_t)((a + b) * 8 / 12));
	json_decref(h);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
	free(dst);
}

/* The catalog's data_size for @name, once it reaches @want (or 2 s). */
static uint64_t published_size(struct sd_catalog *cat, const char *name,
			       uint64_t want)
{
	uint64_t got = 0;

	for (int i = 0; i < 200 && got < want; i++) {
		struct sd_stream *s;

		if (i > 0)
			usleep(10000);
		cr_assert_eq(sd_catalog_get(cat, name, &s), 0);
		sd_stream_rdlock(s);
		got = s->data_size;
		sd_stream_unlock(s);
		sd_stream_put(s);
	}
	return got;
}

Test(rec, publishes_a_trickle_within_publish_ns)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	struct sd_rec_opts o = rec_opts;
	struct sd_rec *r = NULL;
	struct sd_rec_stats st;
	uint8_t buf[100];
	uint64_t total = 0;

	o.publish_ns = PUBLISH_NS;
	o.now = fake_now;
	memset(buf, 0x47, sizeof(buf));
	cr_assert_eq(sd_rec_open(c, "trickle", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(sd_rec_data(r, buf, sizeof(buf)), 0);
		total += sizeof(buf);
		publish_ns_passes();
		cr_assert_eq(sd_rec_tick(r), 0);
		cr_assert_eq(published_size(cat, "trickle", total), total);
	}
	/* The callback may trail the publish a reader already sees. */
	for (int i = 0; i < 200; i++) {
		sd_rec_stats(r, &st);
		if (st.writes == 5)
			break;
		usleep(10000);
	}
	cr_assert_eq(st.writes, 5);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
}

/* After a recording of @src failed for a full volume: what its catalog
 * entry says is published (not live, some data, every index entry within
 * it) reads back as the first bytes of @src. */
static void keeps_what_was_published(struct djmfs_client *c,
				     struct sd_catalog *cat, const char *name,
				     const uint8_t *src, size_t len)
{
	uint8_t *dst = malloc(len);
	struct sd_stream *s;
	size_t n;

	cr_assert_not_null(dst);
	cr_assert_eq(sd_catalog_get(cat, name, &s), 0);
	sd_stream_rdlock(s);
	cr_assert_gt(s->data_size, 0);
	cr_assert_eq(s->live, 0);
	cr_assert_gt(s->index.n, 0);
	for (size_t i = 0; i < s->index.n; i++)
		cr_assert_leq(s->index.e[i].offset, s->data_size);
	n = s->data_size;
	sd_stream_unlock(s);
	sd_stream_put(s);
	cr_assert_eq(read_data(c, name, dst, len), n);
	cr_assert_eq(memcmp(src, dst, n), 0);
	free(dst);
}

Test(rec, full_volume_fails_with_enospc_and_keeps_what_was_published)
{
	struct djmfs_client *c;
	struct sd_catalog *cat;
	size_t len = 8 * MIB, pos = 0;
	uint8_t *src = malloc(len);
	struct sd_rec *r = NULL;
	int err = 0;

	env_stop();
	env_start(9 * MIB); /* 16 units of 64 KiB, two metadata copies */
	c = client();
	cat = catalog(c);
	fill(src, len, 5);
	cr_assert_eq(sd_rec_open(c, "full", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	while (pos < len && err == 0) {
		if (pos % (100 * KIB) == 0)
			cr_assert_eq(sd_rec_key(r, pos, PTS0 + (int64_t)pos),
				     0);
		err = sd_rec_data(r, src + pos, 10 * KIB);
		pos += 10 * KIB;
	}
	cr_assert_eq(err, -ENOSPC);
	cr_assert_eq(sd_rec_data(r, src, 1), -ENOSPC, "the error sticks");
	cr_assert_eq(sd_rec_key(r, pos, 0), -ENOSPC);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), -ENOSPC);

	keeps_what_was_published(c, cat, "full", src, len);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
}

Test(rec, name_valid_accepts_stream_names_only)
{
	char long_name[SD_NAME_MAX + 2];

	cr_assert(sd_name_valid("cam1"));
	cr_assert(sd_name_valid("Cam-1_b.v2"));
	cr_assert(sd_name_valid("..."));
	memset(long_name, 'a', SD_NAME_MAX);
	long_name[SD_NAME_MAX] = 0;
	cr_assert(sd_name_valid(long_name));
	long_name[SD_NAME_MAX] = 'a';
	long_name[SD_NAME_MAX + 1] = 0;
	cr_assert_not(sd_name_valid(long_name), "129 characters");
	cr_assert_not(sd_name_valid(""));
	cr_assert_not(sd_name_valid(NULL));
	cr_assert_not(sd_name_valid("."));
	cr_assert_not(sd_name_valid(".."));
	cr_assert_not(sd_name_valid("a/b"));
	cr_assert_not(sd_name_valid("/"));
	cr_assert_not(sd_name_valid("a b"));
	cr_assert_not(sd_name_valid("cam1\n"));
	cr_assert_not(sd_name_valid("caf\xc3\xa9"));
}

static int collect(void *arg, struct sd_stream *s)
{
	char *names = arg;

	strcat(names, s->name);
	strcat(names, ",");
	return 0;
}

Test(rec, skips_files_that_are_not_recordings)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	struct djmfs_file *f = NULL;
	struct sd_rec *r = NULL;
	struct sd_stream *s;
	char names[256] = "";
	uint32_t id;

	cr_assert_eq(djmfs_open(c, "blob", DJMFS_O_READ | DJMFS_O_WRITE |
					       DJMFS_O_CREATE, &f), 0);
	cr_assert_eq(djmfs_create_obj(f, "payload", DJMFS_ATTR_DATA |
						     DJMFS_ATTR_SYNC, &id), 0);
	cr_assert_eq(djmfs_write(f, "hello", 5), 5);
	cr_assert_eq(djmfs_close(f), 0);
	cr_assert_eq(sd_rec_open(c, "blob", &rec_opts, &r), -EUCLEAN);
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "cam-b" : "cam-a";

		cr_assert_eq(sd_rec_open(c, name, &rec_opts, &r), 0);
		cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()),
			     0);
		cr_assert_eq(sd_rec_data(r, "x", 1), 0);
		cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	}
	/* A publisher that has not begun yet shows nothing. */
	cr_assert_eq(sd_rec_open(c, "cam-c", &rec_opts, &r), 0);
	cr_assert_eq(sd_catalog_list(cat, collect, names), 0);
	cr_assert_str_eq(names, "cam-a,cam-b,");
	cr_assert_eq(sd_catalog_get(cat, "cam-c", &s), -ENOENT);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	cr_assert_eq(sd_catalog_get(cat, "blob", &s), -EUCLEAN);
	cr_assert_eq(sd_catalog_get(cat, "nothing", &s), -ENOENT);
	cr_assert_eq(sd_catalog_get(cat, "../x", &s), -ENOENT);
	cr_assert_eq(djmfs_unlink(c, "cam-a"), 0);
	cr_assert_eq(sd_catalog_get(cat, "cam-a", &s), -ENOENT,
		     "a removed recording leaves the catalog");
	sd_catalog_free(cat);
	djmfs_disconnect(c);
}

struct reader {
	struct sd_catalog *cat;
	volatile int *stop;
	int gets;
	int bad;
};

/* Checks what every reader may rely on while a writer records. */
static void *read_loop(void *arg)
{
	struct reader *rd = arg;

	while (!*rd->stop) {
		struct sd_stream *s;

		if (sd_catalog_get(rd->cat, "race", &s) < 0)
			continue;
		sd_stream_rdlock(s);
		for (size_t i = 0; i < s->index.n; i++)
			rd->bad += s->index.e[i].offset > s->data_size ||
				   (i > 0 && s->index.e[i].wall_ns <
						     s->index.e[i - 1].wall_ns);
		rd->bad += s->end_ns < s->start_ns;
		sd_stream_unlock(s);
		sd_stream_put(s);
		rd->gets++;
	}
	return NULL;
}

Test(rec, readers_see_consistent_streams_while_a_writer_records)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	size_t len = 2 * MIB;
	uint8_t *src = malloc(len);
	volatile int stop = 0;
	struct reader rd[4];
	pthread_t th[4];
	struct sd_rec *r = NULL;
	struct keys k;

	fill(src, len, 9);
	cr_assert_eq(sd_rec_open(c, "race", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	for (int i = 0; i < 4; i++) {
		rd[i] = (struct reader){ cat, &stop, 0, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, read_loop, &rd[i]),
			     0);
	}
	send_stream(r, src, len, 11, &k);
	cr_assert_eq(sd_rec_close(r, sd_wall_now() + 30 * SD_NS, NULL), 0);
	stop = 1;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(rd[i].bad, 0);
		cr_assert_gt(rd[i].gets, 0);
	}
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
}

/* ------------------------------------------------------------------ */
/* Crashes: what a dead writer leaves, and publishes on frame bounds   */
/* ------------------------------------------------------------------ */

/*
 * A recording as a writer that died leaves it: header, @len bytes of
 * @src, and the @n entries of @e, published, with no END (and, when an
 * entry points past the data, an index ahead of its data).
 */
static void make_dead_recording(struct djmfs_client *c, const char *name,
				const uint8_t *src, size_t len, int64_t start,
				const struct sd_idx_entry *e, size_t n)
{
	char hdr[256];
	uint8_t buf[16 * SD_IDX_SIZE];
	struct djmfs_file *f = NULL;
	uint32_t id[3];
	int hl;

	cr_assert_leq(n, 16);
	hl = snprintf(hdr, sizeof(hdr), "{\"version\":1,\"name\":\"%s\","
		      "\"start_ns\":%lld,\"format\":\"mpegts\",\"codecs\":[],"
		      "\"bitrate\":0,\"connections\":1}", name,
		      (long long)start);
	for (size_t i = 0; i < n; i++)
		sd_idx_encode(&e[i], buf + i * SD_IDX_SIZE);
	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ | DJMFS_O_WRITE |
					     DJMFS_O_CREATE, &f), 0);
	cr_assert_eq(djmfs_create_obj(f, "header", DJMFS_ATTR_META, &id[0]), 0);
	cr_assert_eq(djmfs_create_obj(f, "data", DJMFS_ATTR_DATA |
					       DJMFS_ATTR_SYNC, &id[1]), 0);
	cr_assert_eq(djmfs_create_obj(f, "index", DJMFS_ATTR_DATA, &id[2]), 0);
	cr_assert_eq(djmfs_set_objptr(f, id[0], 0), 0);
	cr_assert_eq(djmfs_write(f, hdr, (size_t)hl), hl);
	cr_assert_eq(djmfs_set_objptr(f, id[2], 0), 0);
	cr_assert_eq(djmfs_write(f, buf, n * SD_IDX_SIZE),
		     (ssize_t)(n * SD_IDX_SIZE));
	cr_assert_eq(djmfs_set_objptr(f, id[1], 0), 0);
	cr_assert_eq(djmfs_write(f, src, len), (ssize_t)len);
	cr_assert_eq(djmfs_close(f), 0);
}

/* The raw entries of @name's index object (at most @max). */
static size_t read_index(struct djmfs_client *c, const char *name,
			 struct sd_idx_entry *e, size_t max)
{
	uint8_t buf[64 * SD_IDX_SIZE];
	struct djmfs_file *f = NULL;
	uint32_t id;
	ssize_t n;

	cr_assert_leq(max, 64);
	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ, &f), 0);
	cr_assert_eq(djmfs_find_obj(f, "index", &id), 0);
	n = djmfs_pread_obj(f, id, buf, max * SD_IDX_SIZE, 0);
	cr_assert_geq(n, 0);
	cr_assert_eq(n % SD_IDX_SIZE, 0);
	cr_assert_eq(djmfs_close(f), 0);
	for (ssize_t i = 0; i < n / SD_IDX_SIZE; i++)
		cr_assert_eq(sd_idx_decode(buf + i * SD_IDX_SIZE, &e[i]), 0);
	return (size_t)n / SD_IDX_SIZE;
}

Test(rec, reopening_trims_an_index_published_ahead_of_its_data)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	size_t a = 100 * KIB, b = 50 * KIB;
	uint8_t *src = malloc(a + b), *dst = malloc(a + b + 1);
	int64_t w = sd_wall_now();
	const struct sd_idx_entry dead[] = {
		{ w, 0, PTS0, SD_IDX_SEGMENT | SD_IDX_KEY },
		{ w + SD_NS, 60 * KIB, PTS0 + 90000, SD_IDX_KEY },
		/* written before a data write that never landed */
		{ w + 2 * SD_NS, 120 * KIB, PTS0 + 180000, SD_IDX_KEY },
		{ w + 3 * SD_NS, 180 * KIB, PTS0 + 270000, SD_IDX_KEY },
	};
	struct sd_idx_entry got[16];
	struct sd_rec *r = NULL;
	struct sd_stream *s;
	size_t n;

	fill(src, a + b, 12);
	make_dead_recording(c, "ahead", src, a, w, dead, 4);
	cr_assert_eq(sd_rec_open(c, "ahead", &rec_opts, &r), 0);
	n = read_index(c, "ahead", got, 16);
	cr_assert_eq(n, 2, "the 2 entries beyond the %zu data bytes go", a);
	cr_assert_eq(got[1].offset, 60 * KIB);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", w + 10 * SD_NS), 0);
	cr_assert_eq(sd_rec_key(r, 0, PTS0), 0);
	cr_assert_eq(sd_rec_data(r, src + a, b), 0);
	cr_assert_eq(sd_rec_close(r, w + 12 * SD_NS, NULL), 0);

	n = read_index(c, "ahead", got, 16);
	cr_assert_eq(n, 5, "2 kept, the lost END, SEGMENT|KEY, END");
	for (size_t i = 0; i < n; i++)
		cr_assert_leq(got[i].offset, a + b);
	cr_assert_eq(got[2].flags, SD_IDX_END);
	cr_assert_eq(got[2].offset, a);
	cr_assert_eq(got[3].flags, SD_IDX_SEGMENT | SD_IDX_KEY);
	cr_assert_eq(got[3].offset, a);
	cr_assert_eq(sd_catalog_get(cat, "ahead", &s), 0);
	sd_stream_rdlock(s);
	cr_assert_eq(s->index.n, 5, "the catalog loads the whole index");
	cr_assert_eq(s->data_size, a + b);
	cr_assert_eq(s->connections, 2);
	sd_stream_unlock(s);
	sd_stream_put(s);
	cr_assert_eq(read_data(c, "ahead", dst, a + b + 1), a + b);
	cr_assert_eq(memcmp(src, dst, a + b), 0);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
	free(dst);
}

Test(rec, reopening_after_a_dead_writer_ends_its_connection_before_the_gap)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	size_t a = 70 * KIB, b = 30 * KIB;
	uint8_t *src = malloc(a + b);
	int64_t w = sd_wall_now() - 60 * SD_NS, w2 = sd_wall_now() + 10 * SD_NS;
	const struct sd_idx_entry dead[] = {
		{ w, 0, PTS0, SD_IDX_SEGMENT | SD_IDX_KEY },
		{ w + SD_NS, 40 * KIB, PTS0 + 90000, SD_IDX_KEY },
	};
	struct sd_rec *r = NULL;
	struct sd_stream *s;
	struct sd_gap gap[2];

	fill(src, a + b, 13);
	make_dead_recording(c, "dead", src, a, w, dead, 2);
	cr_assert_eq(sd_rec_open(c, "dead", &rec_opts, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", w2), 0);
	cr_assert_eq(sd_rec_data(r, src + a, b), 0);
	cr_assert_eq(sd_rec_close(r, w2 + SD_NS, NULL), 0);

	cr_assert_eq(sd_catalog_get(cat, "dead", &s), 0);
	sd_stream_rdlock(s);
	cr_assert_eq(s->index.n, 5);
	cr_assert_eq(s->index.e[2].flags, SD_IDX_END);
	cr_assert_eq(s->index.e[2].offset, a);
	/* At the dead writer's last publish: after its last keyframe, not
	 * later than the new connection. */
	cr_assert_geq(s->index.e[2].wall_ns, w + SD_NS);
	cr_assert_leq(s->index.e[2].wall_ns, w2);
	cr_assert_eq(sd_index_gaps(&s->index, gap, 2), 1);
	cr_assert_eq(gap[0].start_ns, s->index.e[2].wall_ns);
	cr_assert_eq(gap[0].end_ns, w2);
	cr_assert_eq(gap[0].offset, a);
	sd_stream_unlock(s);
	sd_stream_put(s);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
}

/* @n TS packets from packet @first of a stream whose video frames are
 * @frame packets long (a video PES start every @frame packets, the
 * first of them after a PAT) with an audio PES in the packet before
 * each frame. */
static void ts_packets(uint8_t *p, size_t first, size_t n, size_t frame)
{
	for (size_t i = first; i < first + n; i++, p += 188) {
		size_t k = i % frame;

		memset(p, 0xff, 188);
		p[0] = 0x47;
		p[3] = 0x10; /* payload only */
		if (i == 0) { /* PAT: a table, no PES */
			p[1] = 0x40;
			p[4] = 0;
		} else if (k == 0) { /* a video PES begins */
			p[1] = 0x41;
			p[2] = 0x00;
			memcpy(p + 4, "\0\0\1\xe0", 4);
		} else if (k == frame - 1) { /* an audio PES */
			p[1] = 0x41;
			p[2] = 0x01;
			memcpy(p + 4, "\0\0\1\xc0", 4);
		} else { /* the frame goes on */
			p[1] = 0x01;
			p[2] = 0x00;
		}
	}
}

Test(rec, publishes_end_where_a_video_frame_begins)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	struct sd_rec_opts o = rec_opts;
	struct sd_rec *r = NULL;
	uint8_t ts[40 * 188];

	o.publish_ns = PUBLISH_NS;
	o.now = fake_now;
	/* packet 0 a PAT, video frames at packets 1 (PAT before it: not a
	 * frame), 8, 16, 24, ... */
	ts_packets(ts, 0, 40, 8);
	cr_assert_eq(sd_rec_open(c, "frames", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	/* Two frames and a half of the third, its last packet split. */
	cr_assert_eq(sd_rec_data(r, ts, 19 * 188 + 100), 0);
	publish_ns_passes();
	cr_assert_eq(sd_rec_tick(r), 0);
	cr_assert_eq(published_size(cat, "frames", 16 * 188), 16 * 188,
		     "up to the frame still arriving");
	publish_ns_passes();
	cr_assert_eq(sd_rec_tick(r), 0);
	cr_assert_eq(published_size(cat, "frames", 16 * 188), 16 * 188,
		     "no new frame began: nothing more");
	/* The stalled frame's bytes go once it has waited publish_ns. */
	publish_ns_passes();
	cr_assert_eq(sd_rec_tick(r), 0);
	cr_assert_eq(published_size(cat, "frames", 19 * 188 + 100),
		     19 * 188 + 100, "a stalled frame waits one publish_ns");
	cr_assert_eq(sd_rec_data(r, ts + 19 * 188 + 100, 21 * 188 - 100), 0);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	cr_assert_eq(published_size(cat, "frames", 40 * 188), 40 * 188);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
}

Test(rec, full_pieces_end_where_the_newest_video_frame_begins)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	struct sd_rec_opts o = rec_opts;
	struct sd_rec *r = NULL;
	uint8_t ts[30 * 188];

	o.publish_ns = 3600 * SD_NS; /* only full pieces leave */
	o.write_size = 4096;	     /* 21.8 packets */
	ts_packets(ts, 0, 30, 10);
	cr_assert_eq(sd_rec_open(c, "pieces", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	cr_assert_eq(sd_rec_data(r, ts, sizeof(ts)), 0);
	cr_assert_eq(published_size(cat, "pieces", 20 * 188), 20 * 188,
		     "the piece ends at the frame of packet 20");
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	cr_assert_eq(published_size(cat, "pieces", sizeof(ts)), sizeof(ts));
	sd_catalog_free(cat);
	djmfs_disconnect(c);
}

Test(rec, an_upload_out_of_ts_sync_publishes_every_byte)
{
	struct djmfs_client *c = client();
	struct sd_catalog *cat = catalog(c);
	struct sd_rec_opts o = rec_opts;
	struct sd_rec *r = NULL;
	uint8_t ts[20 * 188];

	o.publish_ns = PUBLISH_NS;
	o.now = fake_now;
	ts_packets(ts, 0, 20, 8);
	ts[12 * 188] = 0x00; /* packet 12 lost its sync byte */
	cr_assert_eq(sd_rec_open(c, "nosync", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	cr_assert_eq(sd_rec_data(r, ts, 18 * 188 + 7), 0);
	publish_ns_passes();
	cr_assert_eq(sd_rec_tick(r), 0);
	cr_assert_eq(published_size(cat, "nosync", 8 * 188), 8 * 188,
		     "the last frame seen in sync");
	publish_ns_passes();
	cr_assert_eq(sd_rec_tick(r), 0);
	cr_assert_eq(published_size(cat, "nosync", 18 * 188 + 7),
		     18 * 188 + 7, "then everything, with no frames to cut at");
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
}

/* Puts @len bytes of @src into the writer's ring in place, as the ingest
 * does (sd_rec_space, then sd_rec_data on those bytes), in random pieces
 * of up to 50 KB. */
static void send_in_place(struct sd_rec *r, const uint8_t *src, size_t len,
			  uint64_t seed)
{
	uint64_t s = seed | 1;
	size_t pos = 0, n, k;
	void *p;

	while (pos < len) {
		n = sd_rec_space(r, &p);
		cr_assert_gt(n, 0);
		k = 1 + rnd(&s) % 50000;
		n = n < k ? n : k;
		n = n < len - pos ? n : len - pos;
		memcpy(p, src + pos, n);
		cr_assert_eq(sd_rec_data(r, p, n), 0);
		pos += n;
	}
}

/* Bytes libdjmfs copied on their way to the volume so far. */
static uint64_t copied(struct djmfs_client *c)
{
	struct djmfs_io_stats st;

	djmfs_io_stats(c, &st);
	return st.copied_bytes;
}

Test(rec, data_leaves_the_ring_without_a_copy_in_libdjmfs)
{
	enum { PKTS = 11000, MORE = 6000 }; /* 2 MB, 1.1 MB: off blocks */
	struct djmfs_client *c = client();
	struct sd_rec_opts o = rec_opts;
	struct sd_rec *r = NULL;
	size_t len = (PKTS + MORE) * 188;
	uint8_t *ts = malloc(len), *back = malloc(len);
	uint64_t first, second;

	/* Frames of 37 packets: every piece ends off a device block. */
	ts_packets(ts, 0, PKTS + MORE, 37);
	o.publish_ns = 3600 * SD_NS; /* only full pieces, cut at frames */
	cr_assert_eq(sd_rec_open(c, "inplace", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	send_in_place(r, ts, PKTS * 188, 5);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	first = copied(c);
	/* Only the two index writes (SEGMENT, END) are assembled. */
	cr_assert_lt(first, 2 * (4096 + SD_IDX_SIZE),
		     "%llu of %zu bytes copied", (unsigned long long)first,
		     (size_t)PKTS * 188);

	/* A second connection: its first bytes go behind a partial block
	 * that is on the volume only, so they are copied until the
	 * connection has filled a block of its own. */
	cr_assert_eq(sd_rec_open(c, "inplace", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	send_in_place(r, ts + PKTS * 188, MORE * 188, 6);
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), 0);
	second = copied(c) - first;
	cr_assert_lt(second, 65536 + 4 * 4096, "%llu of %zu bytes copied",
		     (unsigned long long)second, (size_t)MORE * 188);
	cr_log_info("libdjmfs copied %llu of %zu bytes, then %llu of %zu",
		    (unsigned long long)first, (size_t)PKTS * 188,
		    (unsigned long long)second, (size_t)MORE * 188);

	cr_assert_eq(read_data(c, "inplace", back, len), len);
	cr_assert_eq(memcmp(back, ts, len), 0);
	free(ts);
	free(back);
	djmfs_disconnect(c);
}

/*
 * A full volume's failure, delivered late.  Every write this file's
 * recordings submit goes through the wrappers below (the test is linked
 * with --wrap for both write calls).  Armed, they submit one write at a
 * time, and hold back a failed write's callback, as a busy completion
 * thread would: libdjmfs has already taken the object's end back, so the
 * next in-place append is refused (EINVAL) while the recording has not
 * heard of the failure yet.  The recording must still report ENOSPC,
 * whether the held callback runs just before that refusal or only after
 * it.
 */
enum hold_mode { HOLD_OFF, HOLD_RELEASE_BEFORE, HOLD_RELEASE_AFTER };

struct hold_cb {
	djmfs_done_fn done;
	void *user;
	ssize_t res;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum hold_mode mode;
	unsigned submitted, completed; /* while armed */
	struct hold_cb held[16];
	unsigned nheld;
	unsigned refused_while_held; /* in-place appends */
} hold = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

int __real_djmfs_write_async(struct djmfs_file *f, const void *buf,
			     size_t len, uint64_t deadline_ns,
			     djmfs_done_fn done, void *user);
int __real_djmfs_write_inplace_async(struct djmfs_file *f, const void *blk,
				     size_t head, size_t len,
				     uint64_t deadline_ns, djmfs_done_fn done,
				     void *user);
int __wrap_djmfs_write_async(struct djmfs_file *f, const void *buf,
			     size_t len, uint64_t deadline_ns,
			     djmfs_done_fn done, void *user);
int __wrap_djmfs_write_inplace_async(struct djmfs_file *f, const void *blk,
				     size_t head, size_t len,
				     uint64_t deadline_ns, djmfs_done_fn done,
				     void *user);

static void hold_done(void *user, ssize_t res)
{
	struct hold_cb *cb = user, c = *cb;

	free(cb);
	pthread_mutex_lock(&hold.mu);
	hold.completed++;
	pthread_cond_broadcast(&hold.cv);
	if (res < 0 && hold.nheld < 16) {
		hold.held[hold.nheld++] = (struct hold_cb){ c.done, c.user,
							    res };
		pthread_mutex_unlock(&hold.mu);
		return;
	}
	pthread_mutex_unlock(&hold.mu);
	c.done(c.user, res);
}

/* Runs the held callbacks (without the lock: they take the writer's). */
static void hold_release(void)
{
	struct hold_cb cb[16];
	unsigned n;

	pthread_mutex_lock(&hold.mu);
	n = hold.nheld;
	memcpy(cb, hold.held, n * sizeof(*cb));
	hold.nheld = 0;
	pthread_mutex_unlock(&hold.mu);
	for (unsigned i = 0; i < n; i++)
		cb[i].done(cb[i].user, cb[i].res);
}

static void *hold_release_thread(void *arg)
{
	(void)arg;
	hold_release();
	return NULL;
}

/* Armed: waits for every earlier write's callback (held or not) and
 * returns how many are held; with @release, runs them first.  Returns
 * with the write counted as submitted, or -1 when not armed. */
static int hold_enter(int release)
{
	struct timespec until;
	int held;

	pthread_mutex_lock(&hold.mu);
	if (hold.mode == HOLD_OFF) {
		pthread_mutex_unlock(&hold.mu);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	while (hold.completed < hold.submitted)
		if (pthread_cond_timedwait(&hold.cv, &hold.mu, &until))
			break;
	held = (int)hold.nheld;
	hold.submitted++;
	pthread_mutex_unlock(&hold.mu);
	if (release)
		hold_release();
	return held;
}

/* A submit that was refused: no callback will come for it. */
static void hold_refused(int held, int inplace)
{
	pthread_mutex_lock(&hold.mu);
	hold.submitted--;
	hold.refused_while_held += inplace && held > 0;
	pthread_mutex_unlock(&hold.mu);
}

static struct hold_cb *hold_wrap(djmfs_done_fn done, void *user)
{
	struct hold_cb *cb = malloc(sizeof(*cb));

	cr_assert_not_null(cb);
	*cb = (struct hold_cb){ done, user, 0 };
	return cb;
}

int __wrap_djmfs_write_async(struct djmfs_file *f, const void *buf,
			     size_t len, uint64_t deadline_ns,
			     djmfs_done_fn done, void *user)
{
	int held = hold_enter(1), err;
	struct hold_cb *cb;

	if (held < 0)
		return __real_djmfs_write_async(f, buf, len, deadline_ns,
						done, user);
	cb = hold_wrap(done, user);
	err = __real_djmfs_write_async(f, buf, len, deadline_ns, hold_done,
				       cb);
	if (err < 0) {
		free(cb);
		hold_refused(held, 0);
	}
	return err;
}

int __wrap_djmfs_write_inplace_async(struct djmfs_file *f, const void *blk,
				     size_t head, size_t len,
				     uint64_t deadline_ns, djmfs_done_fn done,
				     void *user)
{
	int held = hold_enter(hold.mode == HOLD_RELEASE_BEFORE), err;
	struct hold_cb *cb;
	pthread_t t;

	if (held < 0)
		return __real_djmfs_write_inplace_async(f, blk, head, len,
							deadline_ns, done,
							user);
	cb = hold_wrap(done, user);
	err = __real_djmfs_write_inplace_async(f, blk, head, len, deadline_ns,
					       hold_done, cb);
	if (err < 0) {
		free(cb);
		hold_refused(held, 1);
		/* The callbacks come after the refusal, from another
		 * thread, as they would from libdjmfs's. */
		if (hold.mode == HOLD_RELEASE_AFTER) {
			cr_assert_eq(pthread_create(&t, NULL,
						    hold_release_thread, NULL),
				     0);
			pthread_detach(t);
		}
	}
	return err;
}

static void full_volume_late_failure(enum hold_mode mode)
{
	struct djmfs_client *c;
	struct sd_catalog *cat;
	struct sd_rec_opts o = rec_opts;
	size_t len = 8 * MIB, pos = 0;
	uint8_t *src = malloc(len);
	struct sd_rec *r = NULL;
	int err = 0;

	env_stop();
	env_start(9 * MIB);
	c = client();
	cat = catalog(c);
	fill(src, len, 7);
	/* Pieces off a device block, so the refused append's head differs
	 * from the object's; no keys after the first, so the pointer stays
	 * on "data" between appends. */
	o.write_size = 30000;
	o.max_inflight = 8;
	cr_assert_eq(sd_rec_open(c, "late", &o, &r), 0);
	cr_assert_eq(sd_rec_begin(r, "mpegts", "[]", sd_wall_now()), 0);
	cr_assert_eq(sd_rec_key(r, 0, PTS0), 0);
	pthread_mutex_lock(&hold.mu);
	hold.mode = mode;
	hold.submitted = hold.completed = 0;
	hold.refused_while_held = 0;
	pthread_mutex_unlock(&hold.mu);
	while (pos < len && err == 0) {
		err = sd_rec_data(r, src + pos, 10 * KIB);
		pos += 10 * KIB;
	}
	pthread_mutex_lock(&hold.mu);
	hold.mode = HOLD_OFF;
	pthread_mutex_unlock(&hold.mu);
	hold_release(); /* none, unless the race was not reached */
	cr_assert_eq(hold.refused_while_held, 1,
		     "an in-place append refused while a failure was held: "
		     "%u", hold.refused_while_held);
	cr_assert_eq(err, -ENOSPC, "the first failure, not the refusal: %s",
		     strerror(-err));
	cr_assert_eq(sd_rec_data(r, src, 1), -ENOSPC, "the error sticks");
	cr_assert_eq(sd_rec_close(r, sd_wall_now(), NULL), -ENOSPC);

	keeps_what_was_published(c, cat, "late", src, len);
	sd_catalog_free(cat);
	djmfs_disconnect(c);
	free(src);
}

Test(rec, a_late_enospc_is_reported_when_it_lands_before_the_refusal)
{
	full_volume_late_failure(HOLD_RELEASE_BEFORE);
}

Test(rec, a_late_enospc_is_reported_when_it_lands_after_the_refusal)
{
	full_volume_late_failure(HOLD_RELEASE_AFTER);
}
