/*
 * Tests for the interval cache (sd_cache.c), with no daemon and no disk:
 * a "recording" is a byte pattern that is a function of its offset, so
 * any byte served can be checked without a copy.  They check that
 * readers racing a writer that appends and publishes never get a byte
 * beyond the size they were allowed nor a wrong one; that a cache at its
 * budget keeps the interval of the near follower and not the far one's,
 * where least-recently-used would keep neither; that a referenced block
 * outlives its eviction; the default budget's arithmetic; and that a
 * cache with no budget keeps nothing.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define BLK SD_CACHE_BLOCK
#define INO 7
#define ID 2

static uint8_t pat(uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ULL;

	return (uint8_t)(x >> 56 ^ off);
}

static void fill(uint8_t *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(off + i);
}

static int same(const uint8_t *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Concurrent append and publish                                       */
/* ------------------------------------------------------------------ */

#define RACE_SIZE (24 * MIB)
#define RACE_READERS 4

struct race {
	struct sd_cache *c;
	_Atomic uint64_t published; /* what readers may take */
	atomic_int stop;
	atomic_uint_fast64_t hit_bytes, beyond, wrong;
};

/* Appends in odd sizes (so blocks grow by pieces), putting each piece in
 * a little ahead of publishing it, as a put that raced past a reader's
 * snapshot would be. */
static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint8_t *buf = malloc(200 * KIB);
	struct sd_cache_cons *w;
	uint64_t off = 0;
	unsigned seed = 1;

	cr_assert_eq(sd_cache_join(r->c, INO, ID, 0, 1, &w), 0);
	while (off < RACE_SIZE) {
		size_t n = 1 + rand_r(&seed) % (150 * KIB);

		fill(buf, off, n);
		sd_cache_move(w, off + n);
		cr_assert_eq(sd_cache_put(r->c, INO, ID, off, buf, n), 0);
		/* A put must not be needed past what it put: clobber the
		 * source to catch a cache that kept a pointer to it. */
		memset(buf, 0xa5, n);
		atomic_store(&r->published, off);
		off += n;
		atomic_store(&r->published, off);
	}
	sd_cache_leave(w);
	free(buf);
	atomic_store(&r->stop, 1);
	return NULL;
}

/* A reader that follows the published size, as a session bounded by its
 * snapshot does, at a position that trails it by a varying amount. */
static void *race_reader(void *arg)
{
	struct race *r = arg;
	uint8_t *buf = malloc(BLK);
	struct sd_cache_cons *k;
	unsigned seed = (unsigned)(uintptr_t)&k;
	uint64_t pos = 0;

	cr_assert_eq(sd_cache_join(r->c, INO, ID, 0, 0, &k), 0);
	while (!atomic_load(&r->stop)) {
		uint64_t allowed = atomic_load(&r->published);
		size_t want, got;

		if (pos >= allowed) {
			/* Caught up: sometimes jump back, as a new viewer
			 * behind live would. */
			if (rand_r(&seed) % 8 == 0 && allowed > 4 * MIB)
				pos = allowed - rand_r(&seed) % (4 * MIB);
			continue;
		}
		want = (size_t)(allowed - pos < BLK ? allowed - pos : BLK);
		memset(buf, 0x5a, BLK);
		got = sd_cache_read(k, pos, buf, want);
		if (got > want)
			atomic_fetch_add(&r->beyond, 1);
		else if (got && !same(buf, pos, got))
			atomic_fetch_add(&r->wrong, 1);
		atomic_fetch_add(&r->hit_bytes, got);
		pos += got ? got : want; /* a miss "reads the disk" */
		sd_cache_move(k, pos);
	}
	sd_cache_leave(k);
	free(buf);
	return NULL;
}

Test(sd_cache, never_serves_beyond_the_allowed_size_nor_a_stale_byte)
{
	struct race r = { 0 };
	pthread_t w, rd[RACE_READERS];
	struct sd_cache_stats st;

	/* A small budget, so evictions race the readers too. */
	cr_assert_eq(sd_cache_new(&r.c, 2 * MIB, NULL), 0);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_create(&rd[i], NULL, race_reader, &r);
	pthread_create(&w, NULL, race_writer, &r);
	pthread_join(w, NULL);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_join(rd[i], NULL);
	sd_cache_stats(r.c, &st);
	cr_expect_eq(atomic_load(&r.beyond), 0, "bytes beyond the size allowed");
	cr_expect_eq(atomic_load(&r.wrong), 0, "stale or wrong bytes served");
	cr_expect_gt(atomic_load(&r.hit_bytes), 0, "the readers never hit");
	cr_expect_gt(st.evictions, 0, "the budget never bound");
	cr_expect_leq(st.bytes, 2 * MIB + BLK);
	sd_cache_free(r.c);
}

/* ------------------------------------------------------------------ */
/* Eviction by interval                                                */
/* ------------------------------------------------------------------ */

struct follower {
	struct sd_cache_cons *k;
	uint64_t lag;	/* blocks behind the writer */
	uint64_t reads, hits;
};

/* The follower's next block, as a session reads it: from the cache, or
 * else "from the disk" and then put in for whoever is behind. */
static void follow(struct sd_cache *c, struct follower *f, uint64_t blk,
		   uint8_t *buf)
{
	uint64_t off = blk * BLK;
	size_t got;

	/* A viewer joins when it starts, where it starts. */
	if (!f->k)
		cr_assert_eq(sd_cache_join(c, INO, ID, off, 0, &f->k), 0);
	got = sd_cache_read(f->k, off, buf, BLK);

	f->reads++;
	if (got == BLK) {
		cr_assert(same(buf, off, BLK), "wrong bytes at %llu",
			  (unsigned long long)off);
		f->hits++;
		sd_cache_move(f->k, off + BLK);
		return;
	}
	cr_assert_eq(got, 0, "a block written whole was held in part");
	fill(buf, off, BLK);
	sd_cache_move(f->k, off + BLK);
	cr_assert_eq(sd_cache_put(c, INO, ID, off, buf, BLK), 0);
}

/*
 * A writer and two viewers of its recording: one 3 MiB behind it, one
 * 20 MiB behind; 4 MiB of cache.  The near interval (3 MiB) fits and is
 * kept whole; the far one (17 MiB, from the far viewer to the near one)
 * cannot, so its blocks go first.  Least-recently-used would not tell
 * them apart: with the far viewer's disk reads put in as well, a block
 * lives about 2 MiB of writing, and the near viewer would miss too.
 */
Test(sd_cache, keeps_the_near_interval_not_the_far_one)
{
	struct follower near = { .lag = 3 * MIB / BLK },
			far = { .lag = 20 * MIB / BLK };
	uint8_t *buf = malloc(BLK);
	struct sd_cache_cons *w;
	struct sd_cache_stats st;
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 4 * MIB, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 1, &w), 0);
	for (uint64_t k = 0; k < 1280; k++) { /* 80 MiB */
		fill(buf, k * BLK, BLK);
		sd_cache_move(w, (k + 1) * BLK);
		cr_assert_eq(sd_cache_put(c, INO, ID, k * BLK, buf, BLK), 0);
		if (k >= near.lag)
			follow(c, &near, k - near.lag, buf);
		if (k >= far.lag)
			follow(c, &far, k - far.lag, buf);
		sd_cache_stats(c, &st);
		cr_assert_leq(st.bytes, 4 * MIB, "over budget: %llu",
			      (unsigned long long)st.bytes);
	}
	cr_expect_eq(near.hits, near.reads, "near viewer: %llu of %llu hits",
		     (unsigned long long)near.hits,
		     (unsigned long long)near.reads);
	cr_expect_leq(far.hits * 100, far.reads, "far viewer: %llu of %llu hits",
		      (unsigned long long)far.hits,
		      (unsigned long long)far.reads);
	cr_expect(sd_cache_hit_share(near.k) > 0.99);
	cr_expect(sd_cache_hit_share(far.k) < 0.01);
	sd_cache_leave(near.k);
	sd_cache_leave(far.k);
	sd_cache_leave(w);
	sd_cache_free(c);
	free(buf);
}

/* A recording written here keeps, with room to spare, only what its
 * follower still has to read and a short tail behind it: the memory
 * does not grow with the recording until the budget. */
Test(sd_cache, a_writer_drops_what_every_follower_has_passed)
{
	uint8_t *buf = malloc(BLK), *got = malloc(BLK);
	struct sd_cache_cons *w, *k;
	struct sd_cache_stats st;
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 256 * MIB, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 1, &w), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &k), 0);
	for (uint64_t n = 0; n < 640; n++) { /* 40 MiB, follower 8 MiB back */
		fill(buf, n * BLK, BLK);
		sd_cache_move(w, (n + 1) * BLK);
		cr_assert_eq(sd_cache_put(c, INO, ID, n * BLK, buf, BLK), 0);
		if (n >= 128) {
			uint64_t at = (n - 128) * BLK;

			cr_assert_eq(sd_cache_read(k, at, got, BLK), BLK,
				     "the follower missed block %llu",
				     (unsigned long long)(n - 128));
			sd_cache_move(k, at + BLK);
		}
	}
	sd_cache_stats(c, &st);
	/* 8 MiB ahead of the follower, 8 MiB behind, a block or two of
	 * slack; far from the 40 MiB written. */
	cr_expect_leq(st.bytes, 17 * MIB, "held %llu bytes",
		      (unsigned long long)st.bytes);
	cr_expect_geq(st.bytes, 15 * MIB);
	cr_expect_eq(sd_cache_read(k, 10 * BLK, got, BLK), 0,
		     "a block far behind the follower is still there");
	sd_cache_leave(k);
	sd_cache_leave(w);
	sd_cache_free(c);
	free(buf);
	free(got);
}

/* The same viewers with a budget that fits both intervals: both hit. */
Test(sd_cache, keeps_both_intervals_when_they_fit)
{
	struct follower near = { .lag = 3 * MIB / BLK },
			far = { .lag = 20 * MIB / BLK };
	uint8_t *buf = malloc(BLK);
	struct sd_cache_cons *w;
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 24 * MIB, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 1, &w), 0);
	/* Both are there from the start (waiting at 0), so nothing behind
	 * them is dropped before they begin: a viewer arriving 20 MiB
	 * behind a writer with nobody watching would find only the tail. */
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &near.k), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &far.k), 0);
	for (uint64_t k = 0; k < 1280; k++) {
		fill(buf, k * BLK, BLK);
		sd_cache_move(w, (k + 1) * BLK);
		cr_assert_eq(sd_cache_put(c, INO, ID, k * BLK, buf, BLK), 0);
		if (k >= near.lag)
			follow(c, &near, k - near.lag, buf);
		if (k >= far.lag)
			follow(c, &far, k - far.lag, buf);
	}
	cr_expect_eq(near.hits, near.reads);
	cr_expect_eq(far.hits, far.reads);
	sd_cache_leave(near.k);
	sd_cache_leave(far.k);
	sd_cache_leave(w);
	sd_cache_free(c);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* References                                                          */
/* ------------------------------------------------------------------ */

Test(sd_cache, referenced_block_survives_eviction)
{
	uint8_t *buf = malloc(BLK);
	const uint8_t *data, *d2;
	struct sd_cache_block *b;
	struct sd_cache_cons *k;
	struct sd_cache_stats st;
	struct sd_cache *c;
	size_t valid, v2;

	cr_assert_eq(sd_cache_new(&c, 4 * BLK, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &k), 0);
	fill(buf, 0, BLK);
	cr_assert_eq(sd_cache_put(c, INO, ID, 0, buf, BLK), 0);
	b = sd_cache_get(c, INO, ID, 100, &data, &valid);
	cr_assert_not_null(b);
	cr_assert_eq(valid, BLK);
	cr_assert_eq((uintptr_t)data % DJMFS_IO_ALIGN, 0);
	/* The viewer passes block 0: it goes first once the cache fills. */
	sd_cache_move(k, BLK);
	for (uint64_t i = 1; i < 12; i++) {
		fill(buf, i * BLK, BLK);
		cr_assert_eq(sd_cache_put(c, INO, ID, i * BLK, buf, BLK), 0);
	}
	cr_expect_null(sd_cache_get(c, INO, ID, 0, &d2, &v2),
		       "block 0 was not evicted");
	cr_expect(same(data, 0, BLK), "an evicted block in use changed");
	sd_cache_stats(c, &st);
	cr_expect_gt(st.evictions, 0);
	cr_expect_leq(st.bytes, 5 * BLK, "held: %llu",
		      (unsigned long long)st.bytes);
	sd_cache_block_put(c, b);
	sd_cache_stats(c, &st);
	cr_expect_leq(st.bytes, 4 * BLK, "not freed after the last put");
	sd_cache_leave(k);
	sd_cache_free(c);
	free(buf);
}

/* What a new reader may expect to find: the share of its range's
 * blocks the cache holds, whatever their offsets within the blocks. */
Test(sd_cache, says_what_share_of_a_range_it_holds)
{
	uint8_t *buf = malloc(BLK);
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 64 * BLK, NULL), 0);
	for (uint64_t i = 4; i < 8; i++) {
		fill(buf, i * BLK, BLK);
		cr_assert_eq(sd_cache_put(c, INO, ID, i * BLK, buf, BLK), 0);
	}
	cr_expect_float_eq(sd_cache_held_share(c, INO, ID, 4 * BLK, 4 * BLK),
			   1.0, 1e-9);
	cr_expect_float_eq(sd_cache_held_share(c, INO, ID, 100, 2 * BLK),
			   0.0, 1e-9);
	/* Blocks 2 to 9, from mid-block: 4 of 8. */
	cr_expect_float_eq(sd_cache_held_share(c, INO, ID, 2 * BLK + 5,
					       8 * BLK - 10),
			   0.5, 1e-9);
	cr_expect_float_eq(sd_cache_held_share(c, INO + 1, ID, 4 * BLK, BLK),
			   0.0, 1e-9);
	cr_expect_float_eq(sd_cache_held_share(NULL, INO, ID, 4 * BLK, BLK),
			   0.0, 1e-9);
	sd_cache_free(c);
	free(buf);
}

/* A block at the growing end is extended, never rewritten; a piece that
 * does not continue it (a gap) is not taken. */
Test(sd_cache, blocks_grow_by_appends_only)
{
	uint8_t *buf = malloc(BLK), out[256];
	struct sd_cache_cons *k;
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 16 * BLK, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &k), 0);
	fill(buf, 0, 1000);
	cr_assert_eq(sd_cache_put(c, INO, ID, 0, buf, 1000), 0);
	/* A gap: bytes 2000.. do not continue 0..1000. */
	fill(buf, 2000, 100);
	cr_assert_eq(sd_cache_put(c, INO, ID, 2000, buf, 100), 0);
	cr_expect_eq(sd_cache_read(k, 990, out, sizeof(out)), 10);
	cr_expect(same(out, 990, 10));
	cr_expect_eq(sd_cache_read(k, 1000, out, sizeof(out)), 0);
	/* Overlapping what it holds with other bytes changes nothing
	 * below valid; the new tail is taken. */
	memset(buf, 0xee, 500);
	fill(buf + 500, 1000, 500);
	cr_assert_eq(sd_cache_put(c, INO, ID, 500, buf, 1000), 0);
	cr_expect_eq(sd_cache_read(k, 400, out, 200), 200);
	cr_expect(same(out, 400, 200));
	cr_expect_eq(sd_cache_read(k, 1400, out, 256), 100);
	cr_expect(same(out, 1400, 100));
	/* One block per read: the caller goes on at the next. */
	fill(buf, 1500, BLK);
	cr_assert_eq(sd_cache_put(c, INO, ID, 1500, buf, BLK), 0);
	cr_expect_eq(sd_cache_read(k, BLK - 10, out, 256), 10);
	cr_expect_eq(sd_cache_read(k, BLK, out, 256), 256);
	cr_expect(same(out, BLK, 256));
	sd_cache_leave(k);
	sd_cache_free(c);
	free(buf);
}

Test(sd_cache, no_budget_keeps_nothing)
{
	uint8_t *buf = malloc(BLK);
	struct sd_cache_cons *k;
	struct sd_cache_stats st;
	struct sd_cache *c;

	cr_assert_eq(sd_cache_new(&c, 0, NULL), 0);
	cr_assert_eq(sd_cache_join(c, INO, ID, 0, 0, &k), 0);
	fill(buf, 0, BLK);
	cr_assert_eq(sd_cache_put(c, INO, ID, 0, buf, BLK), 0);
	cr_expect_eq(sd_cache_read(k, 0, buf, BLK), 0);
	sd_cache_stats(c, &st);
	cr_expect_eq(st.bytes, 0);
	cr_expect_eq(st.hits, 0);
	sd_cache_leave(k);
	sd_cache_free(c);
	free(buf);
}

Test(sd_cache, auto_size_is_an_eighth_of_memory_within_bounds)
{
	cr_expect_eq(sd_cache_auto_size(0), SD_CACHE_AUTO_MIN);
	cr_expect_eq(sd_cache_auto_size(256 * MIB), SD_CACHE_AUTO_MIN);
	cr_expect_eq(sd_cache_auto_size(8192 * MIB), 1024 * MIB);
	cr_expect_eq(sd_cache_auto_size(1ull << 40), SD_CACHE_AUTO_MAX);
	cr_expect_eq(sd_cache_auto_size(1000 * MIB + 12345) % BLK, 0);
}
