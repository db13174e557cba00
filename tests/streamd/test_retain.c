/*
 * Tests for sd_retain_plan.c, where retention cuts a recording: the time
 * rule keeps at least the retention and less than a GOP more, the byte
 * rule at most its bytes, both always on a keyframe and never past the
 * last one; a hold stops every rule at the keyframe its range needs and
 * says what it cost; the cut never moves back; the volume reserve takes
 * whole-unit steps from the recording whose oldest kept moment is the
 * oldest, skips what holds pin, and stops when nothing more can go.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define S(x) ((int64_t)(x) * SD_NS)
#define T0 S(1795251600) /* 2026-11-21T09:00:00Z */
#define MB (1u << 20)

/* A recording of @secs seconds: a keyframe every @gop s of @gop * @bps
 * bytes, with a non-key entry between keyframes; its first entry at
 * @off0 and wall time @t0. */
static void make(struct sd_index *ix, int secs, int gop, uint64_t bps,
		 uint64_t off0, int64_t t0)
{
	sd_index_init(ix);
	for (int s = 0; s < secs; s += gop) {
		struct sd_idx_entry k = { t0 + S(s), off0 + (uint64_t)s * bps,
					  SD_PTS_NONE, SD_IDX_KEY };
		struct sd_idx_entry m = { t0 + S(s) + S(gop) / 2,
					  k.offset + (uint64_t)gop * bps / 2,
					  SD_PTS_NONE, 0 };

		cr_assert_eq(sd_index_append(ix, &k), 0);
		cr_assert_eq(sd_index_append(ix, &m), 0);
	}
}

static struct sd_retain_rec rec_of(const struct sd_index *ix, uint64_t start,
				   uint64_t size)
{
	struct sd_retain_rec r = { .ix = ix, .data_start = start,
				   .data_size = size, .hold_from = INT64_MAX };
	return r;
}

Test(retain, time_keeps_the_retention_and_less_than_a_gop_more)
{
	struct sd_index ix;
	/* 300 s, GOP 2 s, 500 kB/s: the 5-minute push of the issue. */
	make(&ix, 300, 2, 500000, 0, T0);
	struct sd_retain_rec r = rec_of(&ix, 0, 300 * 500000ull);

	r.rules.retention_ns = S(120);
	sd_retain_rules(&r, T0 + S(300));
	int64_t kept_from = ix.e[r.cut_entry].wall_ns;
	cr_assert(ix.e[r.cut_entry].flags & SD_IDX_KEY);
	cr_assert_eq(ix.e[r.cut_entry].offset, r.cut);
	cr_assert_geq(T0 + S(300) - kept_from, S(120));
	cr_assert_lt(T0 + S(300) - kept_from, S(122));
	cr_assert_eq(r.cut, 180 * 500000ull);
	cr_assert_not(r.pinned);
	sd_index_free(&ix);
}

Test(retain, bytes_keep_at_most_the_limit_on_a_keyframe)
{
	struct sd_index ix;
	make(&ix, 100, 2, 1000, 0, T0);
	struct sd_retain_rec r = rec_of(&ix, 0, 100000);

	r.rules.retention_bytes = 25000; /* 12.5 GOPs */
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_leq(r.data_size - r.cut, 25000);
	cr_assert_gt(r.data_size - r.cut, 25000 - 2000);
	cr_assert(ix.e[r.cut_entry].flags & SD_IDX_KEY);
	sd_index_free(&ix);
}

Test(retain, the_furthest_rule_wins_and_the_last_gop_stays)
{
	struct sd_index ix;
	make(&ix, 100, 2, 1000, 0, T0);
	struct sd_retain_rec r = rec_of(&ix, 0, 100000);

	r.rules.retention_ns = S(50);
	r.rules.retention_bytes = 10000;
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 90000);
	/* Everything is older than the retention: only the last GOP. */
	r.rules.retention_bytes = 0;
	r.rules.retention_ns = S(1);
	sd_retain_rules(&r, T0 + S(1000));
	cr_assert_eq(r.cut, 98000);
	sd_index_free(&ix);
}

Test(retain, a_hold_stops_every_rule_and_reports_its_cost)
{
	struct sd_index ix;
	make(&ix, 100, 2, 1000, 0, T0);
	struct sd_retain_rec r = rec_of(&ix, 0, 100000);

	r.rules.retention_ns = S(20);
	r.hold_from = T0 + S(31); /* inside the GOP that starts at 30 s */
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 30000);
	cr_assert(r.pinned);
	cr_assert_eq(r.pinned_bytes, 80000 - 30000);
	/* A hold before the first keyframe kept pins it where it is. */
	r.hold_from = T0 - S(10);
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 0);
	cr_assert(r.pinned);
	/* A hold after the rule's cut costs nothing. */
	r.hold_from = T0 + S(90);
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 80000);
	cr_assert_not(r.pinned);
	cr_assert_eq(r.pinned_bytes, 0);
	sd_index_free(&ix);
}

Test(retain, no_rule_no_cut_and_never_backwards)
{
	struct sd_index ix;
	make(&ix, 40, 2, 1000, 20000, T0 + S(20)); /* trimmed to 20 s */
	struct sd_retain_rec r = rec_of(&ix, 20000, 60000);

	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 20000);
	r.rules.retention_ns = S(1000); /* keeps more than there is */
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 20000);
	r.rules.retention_bytes = 1000000;
	sd_retain_rules(&r, T0 + S(100));
	cr_assert_eq(r.cut, 20000);
	sd_index_free(&ix);
}

Test(retain, the_reserve_cuts_the_oldest_moment_first_in_whole_units)
{
	struct sd_index a, b, c;
	/* a began at T0, b 50 s later, c (held from its start) first. */
	make(&a, 100, 2, MB / 4, 0, T0);
	make(&b, 100, 2, MB / 4, 0, T0 + S(50));
	make(&c, 100, 2, MB / 4, 0, T0 - S(50));
	struct sd_retain_rec v[3] = {
		rec_of(&a, 0, 25ull * MB), rec_of(&b, 0, 25ull * MB),
		rec_of(&c, 0, 25ull * MB),
	};
	v[2].hold_from = T0 - S(50);
	for (int i = 0; i < 3; i++)
		sd_retain_rules(&v[i], T0 + S(150));
	uint64_t got = sd_retain_reserve(v, 3, 10, MB);
	cr_assert_eq(got, 10);
	/* c is pinned; a's oldest moment stays the oldest until a reaches
	 * b's start (50 s = 12.5 MB): 10 units all come from a. */
	cr_assert_eq(v[2].cut, 0);
	cr_assert_eq(v[1].cut, 0);
	cr_assert_eq(sd_retain_units(&v[0], MB), 10);
	cr_assert(v[0].by_reserve);
	cr_assert(a.e[v[0].cut_entry].flags & SD_IDX_KEY);
	/* 20 more: a passes b's start, and they take turns. */
	got = sd_retain_reserve(v, 3, 20, MB);
	cr_assert_eq(got, 20);
	cr_assert_gt(v[1].cut, 0);
	int64_t ta = a.e[v[0].cut_entry].wall_ns, tb = b.e[v[1].cut_entry].wall_ns;
	cr_assert_lt(ta > tb ? ta - tb : tb - ta, S(6));
	/* Asking for everything: both end at their last GOP, c untouched. */
	sd_retain_reserve(v, 3, 1000, MB);
	cr_assert_eq(v[0].cut, a.e[a.n - 2].offset);
	cr_assert_eq(v[1].cut, b.e[b.n - 2].offset);
	cr_assert_eq(v[2].cut, 0);
	sd_index_free(&a);
	sd_index_free(&b);
	sd_index_free(&c);
}

Test(retain, dropping_index_entries_keeps_sequence_numbers)
{
	struct sd_index ix;
	make(&ix, 20, 2, 1000, 0, T0);
	uint64_t nsegs = ix.nsegs;
	size_t n = ix.n;

	cr_assert_eq(sd_index_drop_below(&ix, 6000), 6);
	cr_assert_eq(ix.n, n - 6);
	cr_assert_eq(ix.e[0].offset, 6000);
	cr_assert_eq(ix.nsegs, nsegs);
	cr_assert_eq(sd_index_drop_below(&ix, 6000), 0);
	sd_index_free(&ix);
}
