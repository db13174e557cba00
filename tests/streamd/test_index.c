/*
 * Tests for sd_index.c: the 32-byte entry codec (its CRC-32C against an
 * independent bitwise implementation and the standard check value, round
 * trips, every single-bit corruption), building and loading an index,
 * seeking around keyframes and gaps (clean END + SEGMENT, and a crash
 * without END), the nearest keyframe for durations, gaps, media segments
 * with their discontinuities and durations (pts, pts wrap, wall time,
 * the estimated last one), and a property test over random indexes.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define MS(x) ((int64_t)(x) * 1000000)
#define S(x) ((int64_t)(x) * SD_NS)
#define B S(1795251600) /* 2026-11-21T09:00:00Z */
#define KEY SD_IDX_KEY
#define SEG SD_IDX_SEGMENT
#define END SD_IDX_END
#define NOPTS SD_PTS_NONE

/* wall in ms after B, offset, pts, flags */
#define E(ms, off, pts, fl) { B + MS(ms), (off), (pts), (fl) }

static void build(struct sd_index *ix, const struct sd_idx_entry *e, size_t n)
{
	sd_index_init(ix);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(sd_index_append(ix, &e[i]), 0);
}

/*
 * Two connections with a clean gap between them:
 *   0 SEG|KEY 100.0 s @0     pts 10 s
 *   1 KEY     102.0 s @1000  pts 12 s
 *   2 KEY     104.0 s @2000  pts 14 s
 *   3 END     105.0 s @2500
 *   4 SEG     110.0 s @2500  pts 5000 ticks (a new encoder clock)
 *   5 KEY     110.5 s @2600  pts +0.5 s
 *   6 KEY     112.0 s @3000  pts +2.0 s
 */
static const struct sd_idx_entry two_conns[] = {
	E(100000, 0, 900000, SEG | KEY),
	E(102000, 1000, 1080000, KEY),
	E(104000, 2000, 1260000, KEY),
	E(105000, 2500, NOPTS, END),
	E(110000, 2500, 5000, SEG),
	E(110500, 2600, 50000, KEY),
	E(112000, 3000, 185000, KEY),
};
#define N_TWO (sizeof(two_conns) / sizeof(two_conns[0]))

/* The first connection died after entry 1 (no END). */
static const struct sd_idx_entry crashed[] = {
	E(100000, 0, 900000, SEG | KEY),
	E(102000, 1000, 1080000, KEY),
	E(110000, 3000, 7000, SEG | KEY),
	E(112000, 4000, 187000, KEY),
};
#define N_CRASHED (sizeof(crashed) / sizeof(crashed[0]))

/* ------------------------------------------------------------------ */
/* Codec                                                               */
/* ------------------------------------------------------------------ */

/* Bit by bit, straight from the definition: the oracle. */
static uint32_t crc32c_ref(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t crc = 0xffffffffu;

	while (n--) {
		crc ^= *b++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return crc ^ 0xffffffffu;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

Test(index, check_field_is_crc32c_of_the_first_28_bytes)
{
	struct sd_idx_entry e = { B, 123456789, 900000, SEG | KEY };
	uint8_t buf[SD_IDX_SIZE];

	cr_assert_eq(crc32c_ref("123456789", 9), 0xE3069283u);
	sd_idx_encode(&e, buf);
	cr_assert_eq(le(buf, 8), (uint64_t)B);
	cr_assert_eq(le(buf + 8, 8), 123456789u);
	cr_assert_eq(le(buf + 16, 8), 900000u);
	cr_assert_eq(le(buf + 24, 4), SEG | KEY);
	cr_assert_eq(le(buf + 28, 4), crc32c_ref(buf, 28));
}

Test(index, entries_survive_encode_and_decode)
{
	unsigned seed = 1;

	for (int i = 0; i < 10000; i++) {
		struct sd_idx_entry e, d;
		uint8_t buf[SD_IDX_SIZE];

		e.wall_ns = (int64_t)((uint64_t)rand_r(&seed) << 33 ^
				      (uint64_t)rand_r(&seed));
		e.offset = (uint64_t)rand_r(&seed) << 32 ^ rand_r(&seed);
		e.pts = i % 3 == 0 ? NOPTS : -(int64_t)rand_r(&seed) + i;
		e.flags = (uint32_t)i & 7;
		sd_idx_encode(&e, buf);
		cr_assert_eq(le(buf + 28, 4), crc32c_ref(buf, 28));
		cr_assert_eq(sd_idx_decode(buf, &d), 0);
		cr_assert_eq(d.wall_ns, e.wall_ns);
		cr_assert_eq(d.offset, e.offset);
		cr_assert_eq(d.pts, e.pts);
		cr_assert_eq(d.flags, e.flags);
	}
}

Test(index, every_flipped_bit_is_refused)
{
	struct sd_idx_entry e = { B, 4096, 12345, KEY }, d;
	uint8_t buf[SD_IDX_SIZE];

	sd_idx_encode(&e, buf);
	for (int bit = 0; bit < SD_IDX_SIZE * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(sd_idx_decode(buf, &d), -EBADMSG, "bit %d", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(sd_idx_decode(buf, &d), 0);
}

Test(index, unknown_flags_are_refused_even_with_a_good_check)
{
	struct sd_idx_entry e = { B, 0, 0, KEY | 0x8 }, d;
	uint8_t buf[SD_IDX_SIZE];

	sd_idx_encode(&e, buf);
	cr_assert_eq(sd_idx_decode(buf, &d), -EBADMSG);
	e.flags = 0x80000000u;
	sd_idx_encode(&e, buf);
	cr_assert_eq(sd_idx_decode(buf, &d), -EBADMSG);
}

/* ------------------------------------------------------------------ */
/* Building and loading                                                */
/* ------------------------------------------------------------------ */

Test(index, append_keeps_data_order)
{
	struct sd_index ix;
	struct sd_idx_entry a = { B, 100, 0, KEY }, b = a;

	sd_index_init(&ix);
	cr_assert_eq(sd_index_append(&ix, &a), 0);
	cr_assert_eq(sd_index_append(&ix, &a), 0); /* same offset is fine */
	b.offset = 99;
	cr_assert_eq(sd_index_append(&ix, &b), -EINVAL);
	cr_assert_eq(ix.n, 2);
	for (int i = 0; i < 1000; i++) {
		b.offset = 100 + (uint64_t)i;
		cr_assert_eq(sd_index_append(&ix, &b), 0);
	}
	cr_assert_eq(ix.n, 1002);
	cr_assert_eq(ix.e[1001].offset, 1099);
	sd_index_free(&ix);
	cr_assert_eq(ix.n, 0);
	cr_assert_null(ix.e);
	cr_assert_eq(sd_index_append(&ix, &b), 0); /* reusable */
	sd_index_free(&ix);
	sd_index_free(&ix);
}

static uint8_t *encode_all(const struct sd_idx_entry *e, size_t n)
{
	uint8_t *buf = malloc(n * SD_IDX_SIZE);

	cr_assert_not_null(buf);
	for (size_t i = 0; i < n; i++)
		sd_idx_encode(&e[i], buf + i * SD_IDX_SIZE);
	return buf;
}

Test(index, load_appends_whole_buffers_only)
{
	uint8_t *buf = encode_all(two_conns, N_TWO);
	struct sd_index ix;

	sd_index_init(&ix);
	cr_assert_eq(sd_index_load(&ix, buf, 3 * SD_IDX_SIZE), 3);
	cr_assert_eq(sd_index_load(&ix, buf + 3 * SD_IDX_SIZE,
				   (N_TWO - 3) * SD_IDX_SIZE),
		     (int)(N_TWO - 3));
	cr_assert_eq(ix.n, N_TWO);
	for (size_t i = 0; i < N_TWO; i++) {
		/* field by field: the struct has padding */
		cr_assert_eq(ix.e[i].wall_ns, two_conns[i].wall_ns);
		cr_assert_eq(ix.e[i].offset, two_conns[i].offset);
		cr_assert_eq(ix.e[i].pts, two_conns[i].pts);
		cr_assert_eq(ix.e[i].flags, two_conns[i].flags);
	}
	cr_assert_eq(sd_index_load(&ix, buf, 0), 0);

	/* a partial entry, a corrupt one, one going backwards: nothing kept */
	cr_assert_eq(sd_index_load(&ix, buf, SD_IDX_SIZE + 1), -EINVAL);
	cr_assert_eq(sd_index_load(&ix, buf, 3 * SD_IDX_SIZE), -EINVAL);
	cr_assert_eq(ix.n, N_TWO);
	sd_index_free(&ix);
	buf[SD_IDX_SIZE + 5] ^= 1;
	cr_assert_eq(sd_index_load(&ix, buf, N_TWO * SD_IDX_SIZE), -EBADMSG);
	cr_assert_eq(ix.n, 0);
	buf[SD_IDX_SIZE + 5] ^= 1;

	struct sd_idx_entry back[2] = { E(0, 500, 0, KEY), E(1, 400, 0, KEY) };
	uint8_t *b2 = encode_all(back, 2);

	cr_assert_eq(sd_index_load(&ix, b2, 2 * SD_IDX_SIZE), -EINVAL);
	cr_assert_eq(ix.n, 0);
	sd_index_free(&ix);
	free(b2);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Seeking                                                             */
/* ------------------------------------------------------------------ */

Test(index, seeks_to_the_keyframe_at_or_before)
{
	struct sd_index ix;

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_seek(&ix, B + MS(100000)), 0);
	cr_assert_eq(sd_index_seek(&ix, B + MS(101999)), 0);
	cr_assert_eq(sd_index_seek(&ix, B + MS(102000)), 1);
	cr_assert_eq(sd_index_seek(&ix, B + MS(103999)), 1);
	cr_assert_eq(sd_index_seek(&ix, B + MS(104500)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(111000)), 5);
	cr_assert_eq(sd_index_seek(&ix, B + MS(112000)), 6);
	cr_assert_eq(sd_index_seek(&ix, B + S(100000)), 6); /* after all */
	sd_index_free(&ix);
}

Test(index, seek_before_the_first_key_gives_the_first)
{
	static const struct sd_idx_entry e[] = {
		E(100000, 0, NOPTS, SEG), E(101000, 500, NOPTS, KEY),
		E(103000, 900, NOPTS, KEY),
	};
	struct sd_index ix;

	build(&ix, e, 3);
	cr_assert_eq(sd_index_seek(&ix, B), 1);
	cr_assert_eq(sd_index_seek(&ix, B + MS(100500)), 1);
	cr_assert_eq(sd_index_seek(&ix, INT64_MIN), 1);
	sd_index_free(&ix);
}

Test(index, seek_inside_a_gap_gives_the_first_key_after_it)
{
	struct sd_index ix;

	build(&ix, two_conns, N_TWO);
	/* at the END's wall time the old connection still plays */
	cr_assert_eq(sd_index_seek(&ix, B + MS(105000)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(105001)), 5);
	cr_assert_eq(sd_index_seek(&ix, B + MS(107000)), 5);
	cr_assert_eq(sd_index_seek(&ix, B + MS(110000)), 5);
	/* the new connection began, its first keyframe is still ahead */
	cr_assert_eq(sd_index_seek(&ix, B + MS(110200)), 5);
	sd_index_free(&ix);
}

Test(index, seek_after_a_crash_treats_the_last_entry_as_the_end)
{
	struct sd_index ix;

	build(&ix, crashed, N_CRASHED);
	cr_assert_eq(sd_index_seek(&ix, B + MS(102000)), 1);
	cr_assert_eq(sd_index_seek(&ix, B + MS(102001)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(109999)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(110000)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(113000)), 3);
	sd_index_free(&ix);
}

Test(index, seek_without_keys_finds_nothing)
{
	static const struct sd_idx_entry e[] = {
		E(100000, 0, NOPTS, SEG), E(101000, 500, NOPTS, END),
	};
	struct sd_index ix;

	sd_index_init(&ix);
	cr_assert_eq(sd_index_seek(&ix, B), -ENOENT);
	build(&ix, e, 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(100500)), -ENOENT);
	sd_index_free(&ix);
}

Test(index, seek_among_equal_times_takes_the_last)
{
	static const struct sd_idx_entry e[] = {
		E(100000, 0, NOPTS, SEG | KEY), E(100000, 10, NOPTS, KEY),
		E(100000, 20, NOPTS, KEY), E(101000, 30, NOPTS, KEY),
	};
	struct sd_index ix;

	build(&ix, e, 4);
	cr_assert_eq(sd_index_seek(&ix, B + MS(100000)), 2);
	cr_assert_eq(sd_index_seek(&ix, B + MS(100999)), 2);
	sd_index_free(&ix);
}

/* A seek in a new connection whose last gap has no keyframe after it
 * stays on the newest keyframe: nothing later can play yet. */
Test(index, seek_past_a_gap_with_no_key_after_it_stays_on_the_last)
{
	static const struct sd_idx_entry e[] = {
		E(100000, 0, NOPTS, SEG | KEY), E(101000, 100, NOPTS, END),
		E(105000, 100, NOPTS, SEG),
	};
	struct sd_index ix;

	build(&ix, e, 3);
	cr_assert_eq(sd_index_seek(&ix, B + MS(106000)), 0);
	sd_index_free(&ix);
}

Test(index, key_near_prefers_the_nearest_and_the_later_on_ties)
{
	struct sd_index ix;

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_key_near(&ix, 0, B + MS(103000)), 2);
	cr_assert_eq(sd_index_key_near(&ix, 0, B + MS(102999)), 1);
	cr_assert_eq(sd_index_key_near(&ix, 0, B + MS(103001)), 2);
	cr_assert_eq(sd_index_key_near(&ix, 0, B), 1); /* only after from */
	cr_assert_eq(sd_index_key_near(&ix, 1, B + MS(102000)), 2);
	cr_assert_eq(sd_index_key_near(&ix, 2, B + MS(106000)), 5);
	cr_assert_eq(sd_index_key_near(&ix, 0, B + S(99999)), 6);
	cr_assert_eq(sd_index_key_near(&ix, 5, B + MS(111250)), 6);
	cr_assert_eq(sd_index_key_near(&ix, 6, B + MS(113000)), -ENOENT);
	cr_assert_eq(sd_index_key_near(&ix, 100, B), -ENOENT);
	cr_assert_eq(sd_index_key_near(&ix, 0, INT64_MIN), 1);
	cr_assert_eq(sd_index_key_near(&ix, 0, INT64_MAX), 6);
	sd_index_free(&ix);
}

/* ------------------------------------------------------------------ */
/* Gaps                                                                */
/* ------------------------------------------------------------------ */

Test(index, gaps_lie_between_end_and_the_next_segment)
{
	struct sd_index ix;
	struct sd_gap g[4];

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_gaps(&ix, g, 4), 1);
	cr_assert_eq(g[0].start_ns, B + MS(105000));
	cr_assert_eq(g[0].end_ns, B + MS(110000));
	cr_assert_eq(g[0].offset, 2500);
	cr_assert_eq(sd_index_gaps(&ix, NULL, 0), 1);
	sd_index_free(&ix);
	sd_index_init(&ix);
	cr_assert_eq(sd_index_gaps(&ix, g, 4), 0);
}

Test(index, a_crash_gap_starts_at_the_last_entry)
{
	struct sd_index ix;
	struct sd_gap g[1];

	build(&ix, crashed, N_CRASHED);
	cr_assert_eq(sd_index_gaps(&ix, g, 1), 1);
	cr_assert_eq(g[0].start_ns, B + MS(102000));
	cr_assert_eq(g[0].end_ns, B + MS(110000));
	cr_assert_eq(g[0].offset, 3000);
	sd_index_free(&ix);
}

Test(index, gaps_are_counted_beyond_max)
{
	struct sd_index ix;
	struct sd_gap g[2];

	sd_index_init(&ix);
	for (int i = 0; i < 5; i++) {
		struct sd_idx_entry a = E(i * 10000, i * 100, NOPTS, SEG | KEY);
		struct sd_idx_entry z = E(i * 10000 + 5000, i * 100 + 100,
					  NOPTS, END);

		cr_assert_eq(sd_index_append(&ix, &a), 0);
		cr_assert_eq(sd_index_append(&ix, &z), 0);
	}
	cr_assert_eq(sd_index_gaps(&ix, g, 2), 4);
	cr_assert_eq(g[1].start_ns, B + MS(15000));
	cr_assert_eq(g[1].end_ns, B + MS(20000));
	sd_index_free(&ix);
}

/* ------------------------------------------------------------------ */
/* Segments                                                            */
/* ------------------------------------------------------------------ */

struct seglog {
	struct sd_segment s[64];
	size_t n;
	int stop_at; /* return non-zero at this call (1-based), 0: never */
};

static int collect(void *arg, const struct sd_segment *s)
{
	struct seglog *l = arg;

	cr_assert_lt(l->n, 64);
	l->s[l->n++] = *s;
	return (int)l->n == l->stop_at ? 7 : 0;
}

static void expect_seg(const struct sd_segment *s, size_t seq, uint64_t off,
		       uint64_t len, int64_t wall_ms, int64_t dur_ms, int disc)
{
	cr_assert_eq(s->seq, seq);
	cr_assert_eq(s->offset, off, "seq %zu offset", seq);
	cr_assert_eq(s->len, len, "seq %zu len", seq);
	cr_assert_eq(s->wall_ns, B + MS(wall_ms), "seq %zu wall", seq);
	cr_assert_eq(s->duration_ns, MS(dur_ms), "seq %zu duration %lld", seq,
		     (long long)s->duration_ns);
	cr_assert_eq(s->discontinuity, disc, "seq %zu discontinuity", seq);
}

Test(index, segments_of_a_finished_recording)
{
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_segments(&ix, 0, INT64_MAX, 3600, 1, collect,
				       &l),
		     0);
	cr_assert_eq(l.n, 6);
	expect_seg(&l.s[0], 0, 0, 1000, 100000, 2000, 0);    /* pts */
	expect_seg(&l.s[1], 1, 1000, 1000, 102000, 2000, 0); /* pts */
	expect_seg(&l.s[2], 2, 2000, 500, 104000, 1000, 0);  /* END: wall */
	expect_seg(&l.s[3], 4, 2500, 100, 110000, 500, 1);   /* pts */
	expect_seg(&l.s[4], 5, 2600, 400, 110500, 1500, 0);
	/* the last: 600 bytes at the previous segment's 400 B / 1.5 s */
	expect_seg(&l.s[5], 6, 3000, 600, 112000, 2250, 0);
	sd_index_free(&ix);
}

Test(index, segments_while_recording_leave_out_the_last)
{
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_segments(&ix, 0, INT64_MAX, 3600, 0, collect,
				       &l),
		     0);
	cr_assert_eq(l.n, 5);
	cr_assert_eq(l.s[4].seq, 5);
	sd_index_free(&ix);
}

Test(index, segments_from_a_position_and_until_a_time)
{
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, two_conns, N_TWO);
	sd_index_segments(&ix, 4, INT64_MAX, 3600, 1, collect, &l);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(l.s[0].seq, 4);
	cr_assert_eq(l.s[0].discontinuity, 1);
	l.n = 0;
	sd_index_segments(&ix, 5, INT64_MAX, 3600, 1, collect, &l);
	cr_assert_eq(l.s[0].seq, 5);
	cr_assert_eq(l.s[0].discontinuity, 0);
	l.n = 0;
	sd_index_segments(&ix, 0, B + MS(110000), 3600, 1, collect, &l);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(l.s[2].seq, 2);
	l.n = 0;
	sd_index_segments(&ix, 99, INT64_MAX, 3600, 1, collect, &l);
	cr_assert_eq(l.n, 0);
	sd_index_free(&ix);
}

Test(index, segments_stop_on_a_callback_result)
{
	struct sd_index ix;
	struct seglog l = { .n = 0, .stop_at = 2 };

	build(&ix, two_conns, N_TWO);
	cr_assert_eq(sd_index_segments(&ix, 0, INT64_MAX, 3600, 1, collect,
				       &l),
		     7);
	cr_assert_eq(l.n, 2);
	sd_index_free(&ix);
}

Test(index, an_empty_segment_passes_its_discontinuity_on)
{
	static const struct sd_idx_entry e[] = {
		E(0, 0, NOPTS, SEG | KEY),   E(1000, 100, NOPTS, END),
		E(5000, 100, NOPTS, SEG),    E(5000, 100, NOPTS, KEY),
		E(6000, 300, NOPTS, KEY),    E(7000, 300, NOPTS, KEY),
		E(8000, 400, NOPTS, KEY),
	};
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, e, 7);
	sd_index_segments(&ix, 0, INT64_MAX, 400, 1, collect, &l);
	cr_assert_eq(l.n, 3);
	expect_seg(&l.s[0], 0, 0, 100, 0, 1000, 0);
	expect_seg(&l.s[1], 3, 100, 200, 5000, 1000, 1);
	expect_seg(&l.s[2], 5, 300, 100, 7000, 1000, 0);
	sd_index_free(&ix);
}

Test(index, durations_survive_a_pts_wrap_and_distrust_jumps)
{
	const int64_t wrap = 1LL << 33;
	const struct sd_idx_entry e[] = {
		/* 1 s before the wrap to 1 s after: 2 s, whatever wall says */
		E(0, 0, wrap - 90000, SEG | KEY),
		E(3000, 100, 90000, KEY),
		/* a 2-hour jump in pts: wall time instead */
		E(5000, 200, 90000 + 2 * 3600 * 90000LL, KEY),
		/* pts going back: wall time */
		E(6500, 300, 1000, KEY),
		/* next connection: pts restart, wall across the gap */
		E(7000, 400, 1000, SEG | KEY),
		E(9000, 500, NOPTS, KEY),
		E(9400, 600, 5000, KEY),
	};
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, e, 7);
	sd_index_segments(&ix, 0, INT64_MAX, 650, 1, collect, &l);
	cr_assert_eq(l.n, 7);
	cr_assert_eq(l.s[0].duration_ns, S(2));
	cr_assert_eq(l.s[1].duration_ns, MS(2000));
	/* 90000 + 2 h -> 1000 is a wrap-sized step back: not plausible */
	cr_assert_eq(l.s[2].duration_ns, MS(1500));
	/* the next connection begins with no END before it: the bitrate
	 * of the segment before (100 B in 1.5 s), not the wall times,
	 * which would span the gap */
	cr_assert_eq(l.s[3].duration_ns, MS(1500));
	cr_assert_eq(l.s[4].duration_ns, MS(2000));
	cr_assert_eq(l.s[5].duration_ns, MS(400));
	cr_assert_eq(l.s[4].discontinuity, 1);
	/* the last: 50 bytes at 100 B / 0.4 s */
	cr_assert_eq(l.s[6].duration_ns, MS(200));
	sd_index_free(&ix);
}

Test(index, a_lone_last_segment_gets_a_default_duration)
{
	static const struct sd_idx_entry e[] = { E(0, 0, 0, SEG | KEY) };
	struct sd_index ix;
	struct seglog l = { .n = 0 };

	build(&ix, e, 1);
	sd_index_segments(&ix, 0, INT64_MAX, 1000, 1, collect, &l);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(l.s[0].duration_ns, SD_NS);
	cr_assert_eq(l.s[0].len, 1000);
	l.n = 0;
	sd_index_segments(&ix, 0, INT64_MAX, 0, 1, collect, &l);
	cr_assert_eq(l.n, 0);
	sd_index_free(&ix);
}

/* ------------------------------------------------------------------ */
/* Property: seek over random recordings                               */
/* ------------------------------------------------------------------ */

/* Up to 4 connections of up to 6 keyframes, random gaps and ties, clean
 * END or crash. */
static void random_index(struct sd_index *ix, unsigned *seed)
{
	int conns = 1 + rand_r(seed) % 4;
	int64_t w = B;
	uint64_t off = 0;

	sd_index_init(ix);
	for (int c = 0; c < conns; c++) {
		struct sd_idx_entry e = { w, off, NOPTS, SEG };
		int keys = rand_r(seed) % 7;

		if (keys > 0 && rand_r(seed) % 2) {
			e.flags |= KEY;
			keys--;
		}
		cr_assert_eq(sd_index_append(ix, &e), 0);
		for (int k = 0; k < keys; k++) {
			w += MS(rand_r(seed) % 3 * 1000);
			off += (uint64_t)(rand_r(seed) % 3) * 100;
			e = (struct sd_idx_entry){ w, off, NOPTS, KEY };
			cr_assert_eq(sd_index_append(ix, &e), 0);
		}
		w += MS(rand_r(seed) % 3 * 1000);
		off += 100;
		if (rand_r(seed) % 4) {
			e = (struct sd_idx_entry){ w, off, NOPTS, END };
			cr_assert_eq(sd_index_append(ix, &e), 0);
		}
		w += MS(rand_r(seed) % 4 * 1000);
	}
}

/* True when @t is past the end of the connection holding KEY @k while no
 * keyframe of that connection or a later one starts at or before @t. */
static int in_gap_after(const struct sd_index *ix, size_t k, int64_t t)
{
	for (size_t i = k + 1; i < ix->n; i++) {
		if (ix->e[i].flags & SEG)
			return t > ix->e[i - 1].wall_ns;
		if (ix->e[i].flags & KEY)
			return 0;
	}
	return 0;
}

Test(index, seek_property_over_random_indexes)
{
	unsigned seed = 2026;

	for (int round = 0; round < 10000; round++) {
		struct sd_index ix;
		ssize_t first = -1, r, k = -1;
		int64_t span, t;

		random_index(&ix, &seed);
		span = ix.e[ix.n - 1].wall_ns - B + S(4);
		t = B - S(2) + (int64_t)(rand_r(&seed) % (span / MS(250) + 1)) *
				       MS(250);
		for (size_t i = 0; i < ix.n; i++) {
			if (!(ix.e[i].flags & KEY))
				continue;
			if (first < 0)
				first = (ssize_t)i;
			if (ix.e[i].wall_ns <= t)
				k = (ssize_t)i; /* the last at or before t */
		}
		r = sd_index_seek(&ix, t);
		if (first < 0) {
			cr_assert_eq(r, -ENOENT);
			sd_index_free(&ix);
			continue;
		}
		cr_assert_geq(r, 0);
		cr_assert(ix.e[r].flags & KEY, "round %d: not a key", round);
		if (k < 0) {
			cr_assert_eq(r, first, "round %d: before the first",
				     round);
		} else if (ix.e[r].wall_ns > t) {
			/* only when t is in a gap after the right key */
			cr_assert(in_gap_after(&ix, (size_t)k, t),
				  "round %d: later key without a gap", round);
			cr_assert_gt(r, k);
			for (ssize_t i = k + 1; i < r; i++)
				cr_assert_not(ix.e[i].flags & KEY);
		} else {
			cr_assert_eq(r, k, "round %d: not the last key <= t",
				     round);
			/* ... and t not in a gap, unless no key follows */
			if (in_gap_after(&ix, (size_t)k, t))
				for (size_t i = (size_t)k + 1; i < ix.n; i++)
					cr_assert_not(ix.e[i].flags & KEY,
						      "round %d: gap", round);
		}
		sd_index_free(&ix);
	}
}

Test(index, wall_times_going_backwards_still_give_keys)
{
	unsigned seed = 9;

	for (int round = 0; round < 2000; round++) {
		struct sd_index ix;
		size_t n = 1 + (size_t)(rand_r(&seed) % 20);
		int keys = 0;

		sd_index_init(&ix);
		for (size_t i = 0; i < n; i++) {
			struct sd_idx_entry e = {
				B + MS(rand_r(&seed) % 20000), i * 10,
				rand_r(&seed) % 2 ? NOPTS : rand_r(&seed),
				(uint32_t)(rand_r(&seed) % 8),
			};

			keys += (e.flags & KEY) != 0;
			cr_assert_eq(sd_index_append(&ix, &e), 0);
		}
		for (int j = 0; j < 20; j++) {
			int64_t t = B + MS(rand_r(&seed) % 22000) - MS(1000);
			ssize_t r = sd_index_seek(&ix, t);
			ssize_t q = sd_index_key_near(&ix, 0, t);

			if (keys == 0) {
				cr_assert_eq(r, -ENOENT);
				continue;
			}
			cr_assert(r >= 0 && (ix.e[r].flags & KEY));
			cr_assert(q == -ENOENT || (q > 0 && (ix.e[q].flags & KEY)));
		}
		sd_index_free(&ix);
	}
}

Test(index, durations_from_a_damaged_index_stay_within_an_hour)
{
	/* Keyframes decades apart, with no pts, then a long tail at the
	 * first segment's "rate": found by fuzz_index, where the wall
	 * difference and the tail estimate overflowed. */
	static const struct sd_idx_entry e[] = {
		{ 0, 0, NOPTS, SEG | KEY },
		{ INT64_MAX - 1, 1, NOPTS, KEY },
	};
	struct sd_index ix;
	struct seglog l = { .n = 0 };
	struct sd_hls_req req = { .uri = "data.ts" };
	char *text = NULL;

	build(&ix, e, 2);
	cr_assert_eq(sd_index_segments(&ix, 0, INT64_MAX, UINT64_MAX / 2, 1,
				       collect, &l),
		     0);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(l.s[0].duration_ns, 3600 * SD_NS);
	cr_assert_eq(l.s[1].duration_ns, 3600 * SD_NS);
	cr_assert_eq(sd_hls_playlist(&ix, UINT64_MAX / 2, 1, 0, INT64_MAX - 1,
				     &req, &text),
		     0);
	cr_assert(strstr(text, "#EXT-X-TARGETDURATION:3600\n") != NULL, "%s",
		  text);
	free(text);
	sd_index_free(&ix);
}
