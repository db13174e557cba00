/*
 * Tests for the pure parts of clips and thumbnails: the download name of
 * a clip (sd_clip.c), the size a thumbnail gets (sd_thumb.c), the
 * thumbnail cache's recency order and both halves of its budget
 * (sd_thumb_cache.c), and the media workers' promise that every job
 * queued runs exactly once, on a worker or with -ESHUTDOWN when the pool
 * stops first (sd_work.c).  The remux and the decode themselves run
 * against the real daemon in clips.sh.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "streamd-int.h"

/* 2026-12-07T09:30:15.750Z */
#define T0 (1796635815LL * SD_NS + 750000000LL)

Test(clip, names_a_clip_by_its_utc_start_and_whole_seconds)
{
	char buf[SD_NAME_MAX + 48];

	cr_assert_eq(sd_clip_filename("cam1", T0, 10 * SD_NS, buf,
				      sizeof(buf)), 29);
	cr_expect_str_eq(buf, "cam1-20261207T093015Z-10s.mp4");
	sd_clip_filename("cam1", T0, 9600 * 1000000LL, buf, sizeof(buf));
	cr_expect_str_eq(buf, "cam1-20261207T093015Z-10s.mp4", "rounded");
	sd_clip_filename("cam1", T0, 200 * 1000000LL, buf, sizeof(buf));
	cr_expect_str_eq(buf, "cam1-20261207T093015Z-1s.mp4", "at least 1");
}

Test(clip, refuses_a_buffer_too_small_for_the_name)
{
	char buf[20];

	cr_expect_eq(sd_clip_filename("cam1", T0, SD_NS, buf, sizeof(buf)),
		     -ENAMETOOLONG);
}

Test(thumb, keeps_the_aspect_with_an_even_height)
{
	unsigned w, h;

	sd_thumb_size(640, 360, 320, &w, &h);
	cr_expect(w == 320 && h == 180, "%ux%u", w, h);
	sd_thumb_size(1280, 720, 100, &w, &h);
	cr_expect(w == 100 && h == 56, "56.25 rounds to 56: %ux%u", w, h);
	sd_thumb_size(320, 240, 16, &w, &h);
	cr_expect(w == 16 && h == 12, "%ux%u", w, h);
	sd_thumb_size(4000, 10, 16, &w, &h);
	cr_expect(w == 16 && h == 2, "never under 2: %ux%u", w, h);
	sd_thumb_size(641, 361, 0, &w, &h);
	cr_expect(w == 641 && h == 361, "no width: the picture's own size");
}

static struct sd_thumb_key key(uint64_t off, unsigned width)
{
	struct sd_thumb_key k = { .ino = 7, .data_id = 2, .offset = off,
				  .width = width };

	return k;
}

/* 1 when the cache holds @off at @width (counts a hit or a miss). */
static int holds(struct sd_thumb_cache *c, uint64_t off, unsigned width)
{
	struct sd_thumb_key k = key(off, width);
	uint8_t *p = NULL;
	size_t n = 0;
	int hit = sd_thumb_cache_get(c, &k, &p, &n);

	free(p);
	return hit;
}

Test(thumb_cache, gives_back_a_copy_of_what_was_put)
{
	struct sd_thumb_cache *c;
	struct sd_thumb_key k = key(188, 320);
	const uint8_t jpeg[] = { 0xff, 0xd8, 1, 2, 3, 0xff, 0xd9 };
	struct sd_thumb_cache_stats st;
	uint8_t *p;
	size_t n;

	cr_assert_eq(sd_thumb_cache_new(&c, 4, 1024), 0);
	cr_expect_eq(sd_thumb_cache_get(c, &k, &p, &n), 0);
	cr_assert_eq(sd_thumb_cache_put(c, &k, jpeg, sizeof(jpeg)), 0);
	cr_assert_eq(sd_thumb_cache_get(c, &k, &p, &n), 1);
	cr_expect_eq(n, sizeof(jpeg));
	cr_expect_eq(memcmp(p, jpeg, n), 0);
	free(p);
	cr_expect_eq(holds(c, 188, 0), 0, "another width is another key");
	sd_thumb_cache_stats(c, &st);
	cr_expect_eq(st.hits, 1);
	cr_expect_eq(st.misses, 2);
	cr_expect_eq(st.entries, 1);
	cr_expect_eq(st.bytes, sizeof(jpeg));
	sd_thumb_cache_free(c);
}

Test(thumb_cache, drops_the_least_recently_used_past_its_count)
{
	struct sd_thumb_cache *c;
	uint8_t b[10] = { 0 };
	struct sd_thumb_cache_stats st;

	cr_assert_eq(sd_thumb_cache_new(&c, 3, 1 << 20), 0);
	for (uint64_t off = 1; off <= 3; off++) {
		struct sd_thumb_key k = key(off, 0);

		cr_assert_eq(sd_thumb_cache_put(c, &k, b, sizeof(b)), 0);
	}
	cr_assert(holds(c, 1, 0), "1 is now the most recently used");
	{
		struct sd_thumb_key k = key(4, 0);

		cr_assert_eq(sd_thumb_cache_put(c, &k, b, sizeof(b)), 0);
	}
	cr_expect(!holds(c, 2, 0), "2 was the least recently used");
	cr_expect(holds(c, 1, 0) && holds(c, 3, 0) && holds(c, 4, 0));
	sd_thumb_cache_stats(c, &st);
	cr_expect_eq(st.entries, 3);
	cr_expect_eq(st.evictions, 1);
	sd_thumb_cache_free(c);
}

Test(thumb_cache, keeps_within_its_bytes_and_skips_what_cannot_fit)
{
	struct sd_thumb_cache *c;
	uint8_t b[400] = { 0 };
	struct sd_thumb_cache_stats st;

	cr_assert_eq(sd_thumb_cache_new(&c, 100, 1000), 0);
	for (uint64_t off = 1; off <= 3; off++) {
		struct sd_thumb_key k = key(off, 0);

		cr_assert_eq(sd_thumb_cache_put(c, &k, b, sizeof(b)), 0);
	}
	sd_thumb_cache_stats(c, &st);
	cr_expect_eq(st.entries, 2, "1200 bytes do not fit in 1000");
	cr_expect_leq(st.bytes, 1000);
	cr_expect(!holds(c, 1, 0) && holds(c, 2, 0) && holds(c, 3, 0));
	{
		uint8_t big[1001] = { 0 };
		struct sd_thumb_key k = key(9, 0);

		cr_expect_eq(sd_thumb_cache_put(c, &k, big, sizeof(big)), 0);
	}
	cr_expect(!holds(c, 9, 0), "larger than the budget: not kept");
	cr_expect(holds(c, 2, 0) && holds(c, 3, 0), "and nothing evicted");
	sd_thumb_cache_free(c);
}

Test(thumb_cache, replaces_an_entry_of_the_same_key)
{
	struct sd_thumb_cache *c;
	struct sd_thumb_key k = key(5, 64);
	const uint8_t a[3] = { 1, 1, 1 }, b[5] = { 2, 2, 2, 2, 2 };
	struct sd_thumb_cache_stats st;
	uint8_t *p;
	size_t n;

	cr_assert_eq(sd_thumb_cache_new(&c, 8, 100), 0);
	sd_thumb_cache_put(c, &k, a, sizeof(a));
	sd_thumb_cache_put(c, &k, b, sizeof(b));
	sd_thumb_cache_stats(c, &st);
	cr_expect_eq(st.entries, 1);
	cr_expect_eq(st.bytes, sizeof(b));
	cr_assert_eq(sd_thumb_cache_get(c, &k, &p, &n), 1);
	cr_expect(n == sizeof(b) && p[0] == 2);
	free(p);
	sd_thumb_cache_free(c);
}

/* A job that counts its runs and, while it is told to, holds its worker
 * until released. */
struct counted {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hold, held;
	atomic_int ran, shutdown;
};

static void count_job(void *arg, int err)
{
	struct counted *c = arg;

	if (err == -ESHUTDOWN) {
		atomic_fetch_add(&c->shutdown, 1);
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->held++;
	pthread_cond_broadcast(&c->cv);
	while (c->hold)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_add(&c->ran, 1);
}

static void counted_init(struct counted *c, int hold)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->hold = hold;
}

Test(work, runs_every_job_once)
{
	struct sd_work *w;
	struct counted c;

	counted_init(&c, 0);
	cr_assert_eq(sd_work_new(&w, 2, 100, NULL), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(sd_work_submit(w, count_job, &c), 0);
	sd_work_free(w);
	cr_expect_eq(atomic_load(&c.ran) + atomic_load(&c.shutdown), 100);
}

Test(work, refuses_past_its_queue_and_answers_the_queued_at_stop)
{
	struct sd_work *w;
	struct counted c;

	counted_init(&c, 1);
	cr_assert_eq(sd_work_new(&w, 1, 2, NULL), 0);
	cr_assert_eq(sd_work_submit(w, count_job, &c), 0);
	pthread_mutex_lock(&c.mu);
	while (c.held < 1) /* the worker holds the first */
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	cr_assert_eq(sd_work_submit(w, count_job, &c), 0);
	cr_assert_eq(sd_work_submit(w, count_job, &c), 0);
	cr_expect_eq(sd_work_submit(w, count_job, &c), -EAGAIN, "full");
	pthread_mutex_lock(&c.mu);
	c.hold = 0;
	pthread_cond_broadcast(&c.cv);
	pthread_mutex_unlock(&c.mu);
	sd_work_stop(w);
	cr_expect_eq(sd_work_submit(w, count_job, &c), -ESHUTDOWN);
	cr_expect_eq(atomic_load(&c.ran) + atomic_load(&c.shutdown), 3,
		     "each of the three accepted ran once");
	cr_expect_geq(atomic_load(&c.ran), 1);
	sd_work_free(w);
}
