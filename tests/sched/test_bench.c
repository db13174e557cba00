/*
 * Tests of iosched-bench's load engine (bench_load.c) on the simulator:
 * the richer workloads do what the man page says, seen through the trace
 * hook (which streams write, what best-effort readers ask for, which
 * offsets a shared group reads, how a refilled buffer bursts and then
 * settles), their counts add up, and a run stays the same for a seed.
 * Everything runs on virtual time, so no assertion depends on the machine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "sched/profiles"
#endif

#define NS 1000000000ull

struct trace_log {
	struct bench_trace *t;
	size_t n, cap;
};

static struct trace_log tl;

static void record(void *arg, const struct bench_trace *t)
{
	struct trace_log *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->t = realloc(l->t, l->cap * sizeof(*l->t));
		cr_assert_not_null(l->t);
	}
	l->t[l->n++] = *t;
}

static void setup(void)
{
	setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1);
	memset(&tl, 0, sizeof(tl));
}

static void teardown(void)
{
	free(tl.t);
}

TestSuite(bench_load, .init = setup, .fini = teardown, .timeout = 60);

static struct bench_cfg base(const char *policy, unsigned streams,
			     double duration_s)
{
	struct bench_cfg c = {
		.policy = policy, .device = "sim:hdd-7200", .streams = streams,
		.size = 65536, .period_s = 0.3, .duration_s = duration_s,
		.seed = 7, .trace = record, .trace_arg = &tl,
	};

	return c;
}

static void run(const struct bench_cfg *c, struct bench_result *r)
{
	tl.n = 0;
	cr_assert_eq(bench_run(c, r), 0);
	cr_assert_eq(tl.n, r->requests, "every completion is traced");
}

Test(bench_load, writers_are_spread_evenly_and_their_misses_counted_apart)
{
	struct bench_cfg c = base("glmd", 8, 5);
	struct bench_result r;
	bool writes[8] = { false };
	size_t i;

	c.writers = 0.5;
	c.write_deadline_s = 1.0;
	run(&c, &r);
	for (i = 0; i < tl.n; i++) {
		if (tl.t[i].op != IOSCHED_WRITE)
			continue;
		writes[tl.t[i].stream] = true;
		cr_assert_eq(tl.t[i].deadline_ns - tl.t[i].submit_ns, NS,
			     "a write's deadline is --write-deadline");
	}
	for (i = 0; i < 8; i++)
		cr_assert_eq(writes[i], i % 2 == 1, "stream %zu", i);
	cr_assert_gt(r.writes, 0);
	cr_assert_gt(r.reads, 0);
	cr_assert_eq(r.reads + r.writes, r.requests);
	cr_assert_eq(r.read_misses + r.write_misses, r.misses);
}

Test(bench_load, read_deadline_scales_with_the_factor_and_the_period)
{
	struct bench_cfg c = base("edf", 4, 3);
	struct bench_result r;
	size_t i;

	c.periods[0] = 0.3;
	c.periods[1] = 0.6;
	c.nperiods = 2;
	c.sizes[0] = 65536;
	c.sizes[1] = 65536;
	c.sizes[2] = 131072;
	c.nsizes = 3;
	c.deadline_factor = 2;
	run(&c, &r);
	for (i = 0; i < tl.n; i++) {
		const struct bench_trace *t = &tl.t[i];
		uint64_t want = t->stream % 2 ? 1200000000ull : 600000000ull;

		cr_assert_eq(t->deadline_ns - t->submit_ns, want);
		cr_assert_eq(t->len, t->stream % 3 == 2 ? 131072u : 65536u);
	}
}

Test(bench_load, background_reads_are_best_effort_and_never_missed)
{
	struct bench_cfg c = base("edf", 4, 5);
	struct bench_result r;
	uint64_t prev_end = 0;
	size_t i, bg = 0;

	c.background = 1;
	run(&c, &r);
	for (i = 0; i < tl.n; i++) {
		const struct bench_trace *t = &tl.t[i];

		if (!t->background)
			continue;
		cr_assert_eq(t->stream, 4, "background streams follow");
		cr_assert_eq(t->deadline_ns, 0);
		cr_assert_eq(t->len, BENCH_BG_SIZE);
		if (bg++)
			cr_assert_eq(t->submit_ns, prev_end,
				     "one read, issued as the last completes");
		prev_end = t->complete_ns;
	}
	cr_assert_eq(bg, r.background_requests);
	cr_assert_gt(bg, 100, "1 MiB reads keep a 5 s run busy");
	cr_assert_eq(r.misses, 0, "4 streams are an idle load");
	cr_assert_eq(r.read_misses + r.write_misses, r.misses);
}

/* The offsets stream @s read, in the order it issued them. */
static size_t offsets(uint32_t s, uint64_t *out, size_t max)
{
	uint64_t last_submit = 0;
	size_t i, n = 0;

	for (i = 0; i < tl.n && n < max; i++) {
		if (tl.t[i].stream != s || tl.t[i].background)
			continue;
		cr_assert_geq(tl.t[i].submit_ns, last_submit);
		last_submit = tl.t[i].submit_ns;
		out[n++] = tl.t[i].offset;
	}
	return n;
}

Test(bench_load, a_shared_group_reads_the_same_offsets_two_seconds_apart)
{
	struct bench_cfg c = base("glmd", 8, 10);
	struct bench_result r;
	uint64_t lead[64], o[64], gap = 7; /* round(2 s / 0.3 s) reads */
	size_t nl, n, j, k;

	c.share = 4;
	run(&c, &r);
	for (unsigned g = 0; g < 2; g++) {
		nl = offsets(4 * g, lead, 64);
		cr_assert_gt(nl, 30);
		for (j = 1; j < 4; j++) {
			n = offsets(4 * g + (uint32_t)j, o, 64);
			cr_assert_gt(n, j * gap + 10);
			for (k = 0; k + j * gap < n && k < nl; k++)
				cr_assert_eq(o[k + j * gap], lead[k],
					     "group %u member %zu read %zu", g,
					     j, k);
		}
	}
	offsets(0, lead, 64);
	offsets(4, o, 64);
	cr_assert_neq(lead[0], o[0], "two groups, two regions");
}

Test(bench_load, refill_bursts_to_B_then_reads_once_per_period)
{
	struct bench_cfg c = base("glmd", 4, 10);
	struct bench_result r;
	uint64_t got = 0, prev_complete = 0, first = 0;
	unsigned burst = 0;
	size_t i;

	c.refill = true;
	run(&c, &r);
	cr_assert_eq(r.underflows, 0, "4 streams are a light load");
	for (i = 0; i < tl.n; i++) {
		const struct bench_trace *t = &tl.t[i];

		if (t->stream != 0)
			continue;
		if (got < BENCH_REFILL_BUFFER * 30 / 100) {
			/* The burst: back to back, until the level reaches B. */
			if (burst++)
				cr_assert_eq(t->submit_ns, prev_complete);
			else
				first = t->submit_ns;
			got += t->len;
		} else {
			/* Then one read per period visit, on the stream's
			 * phase (the first visit started the burst). */
			cr_assert_eq((t->submit_ns - first) % 300000000ull, 0,
				     "read %zu at %llu", i,
				     (unsigned long long)t->submit_ns);
			cr_assert_gt(t->submit_ns, prev_complete);
		}
		cr_assert_eq(t->deadline_ns - t->submit_ns, 300000000ull);
		prev_complete = t->complete_ns;
	}
	cr_assert_eq(burst, 5, "five 64 KiB reads pass 30 %% of 1 MiB");
}

Test(bench_load, refill_underflows_when_the_disk_falls_behind)
{
	struct bench_cfg c = base("fifo", 60, 10);
	struct bench_result r;

	c.refill = true;
	c.trace = NULL;
	cr_assert_eq(bench_run(&c, &r), 0);
	cr_assert_gt(r.underflows, 0, "60 random streams overload fifo");
	cr_assert_gt(r.read_misses, 0);
}

Test(bench_load, a_refill_run_with_seeks_is_the_same_for_a_seed)
{
	struct bench_cfg c = base("glmd", 24, 20);
	struct bench_result a, b, d;

	c.trace = NULL;
	c.refill = true;
	c.share = 8;
	c.seek_every_s = 5;
	c.background = 1;
	cr_assert_eq(bench_run(&c, &a), 0);
	cr_assert_eq(bench_run(&c, &b), 0);
	cr_assert_gt(a.seeks, 24 * 20 / 5 / 2, "about one per 5 s each");
	cr_assert_eq(a.requests, b.requests);
	cr_assert_eq(a.misses, b.misses);
	cr_assert_eq(a.underflows, b.underflows);
	cr_assert_eq(a.seeks, b.seeks);
	cr_assert_eq(a.background_requests, b.background_requests);
	cr_assert_eq(a.latency_max_us, b.latency_max_us);
	c.seed = 8;
	cr_assert_eq(bench_run(&c, &d), 0);
	cr_assert(d.seeks != a.seeks || d.latency_max_us != a.latency_max_us);
}

Test(bench_load, bad_workloads_are_refused)
{
	struct bench_cfg c = base("glmd", 4, 1);
	struct bench_result r;

	c.trace = NULL;
	c.writers = 1.5;
	cr_assert_eq(bench_run(&c, &r), -EINVAL);
	c.writers = 0;
	c.sizes[0] = 1000;
	c.nsizes = 1;
	cr_assert_eq(bench_run(&c, &r), -EINVAL);
	c.nsizes = 0;
	c.refill = true;
	c.buffer_size = 65536; /* less than two reads */
	cr_assert_eq(bench_run(&c, &r), -EINVAL);
}
