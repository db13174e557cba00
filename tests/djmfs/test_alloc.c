/*
 * Tests of the free-unit allocator: exact accounting across take and put,
 * contiguous answers where the free space allows them, several runs when
 * it is fragmented, running out and recovering, deferred frees released
 * only when due, the prefetcher keeping units ready, double claims and
 * double frees refused, and a long take/put mix racing the prefetcher
 * that never loses or duplicates a unit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_store.h"

static unsigned nerrors;

static void log_hook(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	(void)arg;
	(void)msg;
	if (lvl == DJMFS_LOG_ERROR)
		nerrors++;
}

static const struct djmfs_log test_log = { log_hook, NULL };

static void setup(void)
{
	nerrors = 0;
}

TestSuite(alloc, .init = setup, .timeout = 60);

static struct djmfs__alloc *make(uint64_t n, uint32_t prefetch)
{
	struct djmfs__alloc *a;

	cr_assert_eq(djmfs__alloc_new(&a, n, prefetch, &test_log), 0);
	return a;
}

static struct djmfs__alloc_info info(const struct djmfs__alloc *a)
{
	struct djmfs__alloc_info i;

	djmfs__alloc_get(a, &i);
	return i;
}

static uint64_t sum(const struct djmfs__run *r, int n)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += r[i].count;
	return s;
}

/* Polls @a for up to a second until @pred holds. */
static int wait_for(const struct djmfs__alloc *a,
		    int (*pred)(const struct djmfs__alloc_info *i))
{
	struct timespec ms = { 0, 1000000 };

	for (int k = 0; k < 1000; k++) {
		struct djmfs__alloc_info i = info(a);

		if (pred(&i))
			return 1;
		nanosleep(&ms, NULL);
	}
	return 0;
}

static int refilled(const struct djmfs__alloc_info *i)
{
	return i->cached >= 128 && i->refills >= 2;
}

static int primed(const struct djmfs__alloc_info *i)
{
	return i->cached == 256;
}

Test(alloc, take_and_put_keep_the_free_count_exact)
{
	struct djmfs__alloc *a = make(1000, 0);
	struct djmfs__run r[4], s[4];
	int n, m;

	cr_assert_eq(info(a).free, 1000);
	n = djmfs__alloc_take(a, 10, r, 4);
	cr_assert_gt(n, 0);
	cr_assert_eq(sum(r, n), 10);
	m = djmfs__alloc_take(a, 25, s, 4);
	cr_assert_eq(sum(s, m), 25);
	cr_assert_eq(info(a).free, 965);
	for (int i = 0; i < n; i++)
		djmfs__alloc_put(a, r[i].first, r[i].count);
	cr_assert_eq(info(a).free, 975);
	for (int i = 0; i < m; i++)
		djmfs__alloc_put(a, s[i].first, s[i].count);
	cr_assert_eq(info(a).free, 1000);
	cr_assert_eq(info(a).total, 1000);
	cr_assert_eq(nerrors, 0);
	djmfs__alloc_free(a);
}

Test(alloc, prefers_one_contiguous_run)
{
	struct djmfs__alloc *a = make(1000, 0);
	struct djmfs__run r[8];

	/* short holes first, a long free stretch after unit 200 */
	for (uint64_t u = 0; u < 200; u += 2)
		cr_assert_eq(djmfs__alloc_mark_used(a, u, 1), 0);
	cr_assert_eq(djmfs__alloc_take(a, 50, r, 8), 1);
	cr_assert_eq(r[0].count, 50);
	cr_assert_geq(r[0].first, 199);
	djmfs__alloc_free(a);
}

Test(alloc, joins_prefetched_runs_into_one)
{
	struct djmfs__alloc *a = make(4096, 256);
	struct djmfs__run r[8];

	cr_assert_eq(djmfs__alloc_start(a), 0);
	cr_assert(wait_for(a, primed));
	/* the cache holds 64-unit runs; 200 units come back as one */
	cr_assert_eq(djmfs__alloc_take(a, 200, r, 8), 1);
	cr_assert_eq(r[0].count, 200);
	cr_assert_eq(info(a).stalls, 0);
	djmfs__alloc_free(a);
}

Test(alloc, takes_as_many_runs_as_needed_when_fragmented)
{
	struct djmfs__alloc *a = make(128, 0);
	struct djmfs__run r[8];
	int n;

	/* every fourth unit used: free runs of three */
	for (uint64_t u = 0; u < 128; u += 4)
		djmfs__alloc_mark_used(a, u, 1);
	n = djmfs__alloc_take(a, 10, r, 8);
	cr_assert_eq(n, 4);
	cr_assert_eq(sum(r, n), 10);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			cr_assert(r[i].first + r[i].count <= r[j].first ||
				  r[j].first + r[j].count <= r[i].first);
	/* capped by max_runs: up to want, never more runs than asked */
	n = djmfs__alloc_take(a, 10, r, 2);
	cr_assert_eq(n, 2);
	cr_assert_eq(sum(r, n), 6);
	cr_assert_eq(info(a).free, 96 - 16);
	djmfs__alloc_free(a);
}

Test(alloc, runs_out_with_enospc_and_recovers_after_put)
{
	struct djmfs__alloc *a = make(16, 0);
	struct djmfs__run r[4];

	cr_assert_eq(djmfs__alloc_take(a, 16, r, 4), 1);
	cr_assert_eq(r[0].count, 16);
	cr_assert_eq(djmfs__alloc_take(a, 1, r + 1, 3), -ENOSPC);
	djmfs__alloc_put(a, 4, 4);
	cr_assert_eq(djmfs__alloc_take(a, 8, r + 1, 3), 1);
	cr_assert_eq(r[1].first, 4);
	cr_assert_eq(r[1].count, 4);
	cr_assert_eq(djmfs__alloc_take(a, 0, r, 4), -EINVAL);
	djmfs__alloc_free(a);
}

Test(alloc, deferred_units_come_back_only_when_due)
{
	struct djmfs__alloc *a = make(64, 0);
	struct djmfs__run r[2];

	cr_assert_eq(djmfs__alloc_take(a, 30, r, 2), 1);
	djmfs__alloc_defer(a, r[0].first, 10, 2000);
	djmfs__alloc_defer(a, r[0].first + 10, 20, 1000);
	cr_assert_eq(info(a).deferred, 30);
	cr_assert_eq(info(a).free, 34);
	djmfs__alloc_tick(a, 999);
	cr_assert_eq(info(a).free, 34);
	djmfs__alloc_tick(a, 1000);
	cr_assert_eq(info(a).free, 54);
	cr_assert_eq(info(a).deferred, 10);
	djmfs__alloc_tick(a, 1999);
	cr_assert_eq(info(a).deferred, 10);
	djmfs__alloc_tick(a, 5000);
	cr_assert_eq(info(a).free, 64);
	cr_assert_eq(info(a).deferred, 0);
	djmfs__alloc_free(a);
}

Test(alloc, prefetcher_refills_the_cache)
{
	struct djmfs__alloc *a = make(4096, 256);
	struct djmfs__run r[4];

	cr_assert_eq(info(a).cached, 0);
	cr_assert_eq(djmfs__alloc_start(a), 0);
	cr_assert_eq(djmfs__alloc_start(a), -EALREADY);
	cr_assert(wait_for(a, primed));
	for (int k = 0; k < 3; k++)
		cr_assert_gt(djmfs__alloc_take(a, 50, r, 4), 0);
	cr_assert_eq(info(a).stalls, 0);
	cr_assert(wait_for(a, refilled));
	cr_assert_eq(info(a).free, 4096 - 150);
	djmfs__alloc_free(a);
}

Test(alloc, counts_double_claims_at_boot)
{
	struct djmfs__alloc *a = make(100, 0);

	cr_assert_eq(djmfs__alloc_mark_used(a, 0, 10), 0);
	cr_assert_eq(djmfs__alloc_mark_used(a, 5, 10), 5);
	cr_assert_eq(info(a).free, 85);
	cr_assert_eq(djmfs__alloc_mark_used(a, 95, 10), 0);
	cr_assert_eq(nerrors, 1); /* past the end: logged, not applied */
	cr_assert_eq(info(a).free, 85);
	/* boot claims are handed out: they can be put back */
	djmfs__alloc_put(a, 0, 15);
	cr_assert_eq(info(a).free, 100);
	djmfs__alloc_free(a);
}

Test(alloc, double_put_is_logged_and_ignored)
{
	struct djmfs__alloc *a = make(100, 0);
	struct djmfs__run r[1];

	cr_assert_eq(djmfs__alloc_take(a, 4, r, 1), 1);
	djmfs__alloc_put(a, r[0].first, 4);
	cr_assert_eq(nerrors, 0);
	djmfs__alloc_put(a, r[0].first, 4);
	cr_assert_eq(nerrors, 1);
	djmfs__alloc_defer(a, 50, 2, 0);
	cr_assert_eq(nerrors, 2);
	cr_assert_eq(info(a).free, 100);
	cr_assert_eq(info(a).deferred, 0);
	cr_assert_eq(djmfs__alloc_take(a, 100, r, 1), 1);
	cr_assert_eq(r[0].count, 100);
	djmfs__alloc_free(a);
}

/* A cheap deterministic generator, so a failure replays. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

struct held {
	struct djmfs__run r[4096];
	unsigned n;
	uint64_t units;
	uint8_t mine[8192]; /* units this thread holds: none twice */
};

static void hold(struct held *h, int n)
{
	for (int k = 0; k < n; k++) {
		struct djmfs__run r = h->r[h->n++];

		cr_assert_leq(r.first + r.count, sizeof(h->mine));
		for (uint64_t u = r.first; u < r.first + r.count; u++) {
			cr_assert_eq(h->mine[u], 0, "unit %lu handed out twice",
				     (unsigned long)u);
			h->mine[u] = 1;
		}
		h->units += r.count;
	}
}

static void give_one(struct djmfs__alloc *a, struct held *h, uint64_t *seed,
		     uint64_t now)
{
	unsigned i = rnd(seed) % h->n;
	struct djmfs__run r = h->r[i];

	h->r[i] = h->r[--h->n];
	h->units -= r.count;
	memset(h->mine + r.first, 0, r.count);
	if (rnd(seed) % 4 == 0)
		djmfs__alloc_defer(a, r.first, r.count, now + rnd(seed) % 50);
	else
		djmfs__alloc_put(a, r.first, r.count);
}

Test(alloc, stress_with_the_prefetcher_keeps_every_unit_accounted)
{
	struct djmfs__alloc *a = make(8192, 512);
	static struct held h;
	uint64_t seed = 42, now = 0;
	struct djmfs__alloc_info i;

	memset(&h, 0, sizeof(h));
	cr_assert_eq(djmfs__alloc_start(a), 0);
	for (int op = 0; op < 100000; op++, now++) {
		if (h.n < 1000 && (h.n == 0 || rnd(&seed) % 2)) {
			int n = djmfs__alloc_take(a, 1 + rnd(&seed) % 64,
						  h.r + h.n, 4);

			if (n > 0)
				hold(&h, n);
		} else {
			give_one(a, &h, &seed, now);
		}
		if (op % 64 == 0)
			djmfs__alloc_tick(a, now);
		i = info(a);
		cr_assert_eq(i.free + i.deferred + h.units, i.total,
			     "op %d: free %lu deferred %lu held %lu", op,
			     (unsigned long)i.free, (unsigned long)i.deferred,
			     (unsigned long)h.units);
	}
	while (h.n)
		give_one(a, &h, &seed, now);
	djmfs__alloc_tick(a, UINT64_MAX);
	i = info(a);
	cr_assert_eq(i.free, 8192);
	cr_assert_eq(i.deferred, 0);
	cr_assert_eq(nerrors, 0);
	cr_assert_gt(i.refills, 0);
	djmfs__alloc_free(a);
}
