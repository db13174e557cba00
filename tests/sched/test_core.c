/*
 * Tests of the scheduler core through its public API on the simulated
 * device: request validation and the callback contract, resubmission from
 * inside a callback, best-effort requests, run-time policy and knob
 * changes, per-stream statistics, and the log hook.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "sched/profiles"
#endif

static struct iosched_model *hdd;
static char last_log[512];
static unsigned nlogs;

static void log_hook(void *arg, enum iosched_log_level lvl, const char *msg)
{
	(void)arg;
	(void)lvl;
	snprintf(last_log, sizeof(last_log), "%s", msg);
	nlogs++;
}

static const struct iosched_log test_log = { log_hook, NULL };

static void setup(void)
{
	setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1);
	cr_assert_eq(iosched_model_load(&hdd, "hdd-7200", NULL), 0);
	nlogs = 0;
	last_log[0] = 0;
}

static void teardown(void)
{
	iosched_model_free(hdd);
}

TestSuite(core, .init = setup, .fini = teardown, .timeout = 60);

static struct iosched *make(const char *policy)
{
	struct iosched_backend *be;
	struct iosched_config cfg = { .policy = policy, .model = hdd,
				      .log = test_log };
	struct iosched *s;

	cr_assert_eq(iosched_backend_sim_new(&be, hdd, 0, 1, &test_log), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), 0);
	return s;
}

static unsigned ndone;
static int last_res;

static void count_done(struct iosched_req *r, int res)
{
	(void)r;
	ndone++;
	last_res = res;
}

static void req(struct iosched_req *r, uint64_t off, uint64_t deadline,
		uint32_t stream)
{
	memset(r, 0, sizeof(*r));
	r->op = IOSCHED_READ;
	r->offset = off;
	r->len = 65536;
	r->deadline_ns = deadline;
	r->stream = stream;
	r->done = count_done;
}

Test(core, rejects_unknown_policy_with_a_log_line)
{
	struct iosched_backend *be;
	struct iosched_config cfg = { .policy = "elevator", .model = hdd,
				      .log = test_log };
	struct iosched *s;

	cr_assert_eq(iosched_backend_sim_new(&be, hdd, 0, 1, NULL), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), -EINVAL);
	cr_assert_null(s);
	cr_assert(strstr(last_log, "elevator") != NULL, "log: %s", last_log);
}

Test(core, refused_request_never_calls_back)
{
	struct iosched *s = make("glmd");
	struct iosched_req r;

	ndone = 0;
	req(&r, 0, 0, 1);
	r.done = NULL;
	cr_assert_eq(iosched_submit(s, &r), -EINVAL);
	req(&r, 0, 0, 1);
	r.len = 0;
	cr_assert_eq(iosched_submit(s, &r), -EINVAL);
	cr_assert_eq(iosched_drain(s), 0);
	cr_assert_eq(ndone, 0);
	cr_assert_gt(nlogs, 0);
	iosched_free(s);
}

struct chain {
	struct iosched_req r;
	struct iosched *s;
	unsigned left;
};

static void chain_done(struct iosched_req *r, int res)
{
	struct chain *c = (struct chain *)r;

	cr_assert_eq(res, 65536);
	if (--c->left) {
		r->offset += 65536;
		cr_assert_eq(iosched_submit(c->s, r), 0);
	}
}

Test(core, callback_may_resubmit_its_request)
{
	struct chain c;

	c.s = make("edf");
	c.left = 100;
	req(&c.r, 0, 0, 1);
	c.r.done = chain_done;
	cr_assert_eq(iosched_submit(c.s, &c.r), 0);
	cr_assert_eq(iosched_drain(c.s), 100);
	cr_assert_eq(c.left, 0);
	iosched_free(c.s);
}

Test(core, best_effort_requests_are_never_misses)
{
	struct iosched *s = make("glmd");
	struct iosched_req r[50];
	struct iosched_stats st;
	unsigned i;

	for (i = 0; i < 50; i++) {
		req(&r[i], (uint64_t)i * (7ull << 30), 0, 1);
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
	}
	cr_assert_eq(iosched_drain(s), 50);
	iosched_stats_get(s, &st);
	cr_assert_eq(st.requests, 50);
	cr_assert_eq(st.deadline_requests, 0);
	cr_assert_eq(st.misses, 0);
	iosched_free(s);
}

Test(core, policy_change_keeps_every_queued_request)
{
	struct iosched *s = make("fifo");
	static struct iosched_req r[300];
	unsigned i;
	const char *seq[] = { "edf", "scan", "mh", "scan-edf", "glmd" };

	ndone = 0;
	for (i = 0; i < 300; i++) {
		req(&r[i], (uint64_t)((i * 7919) % 300) << 30,
			(uint64_t)(i + 1) * IOSCHED__NS_PER_S, i % 7);
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
		if (i % 60 == 59) {
			cr_assert_eq(iosched_set_policy(s, seq[i / 60]), 0);
			cr_assert_str_eq(iosched_policy(s), seq[i / 60]);
		}
	}
	cr_assert_eq(iosched_set_policy(s, "nope"), -EINVAL);
	cr_assert_eq(iosched_drain(s), 300);
	cr_assert_eq(ndone, 300);
	cr_assert_eq(iosched_queued(s), 0);
	cr_assert_eq(iosched_inflight(s), 0);
	iosched_free(s);
}

Test(core, knobs_are_checked_and_take_effect)
{
	struct iosched *s = make("glmd");
	struct iosched_knobs k;
	struct iosched_req r[10];
	unsigned i;

	iosched_get_knobs(s, &k);
	cr_assert_eq(k.depth, iosched_model_depth(hdd));
	k.depth = 0;
	cr_assert_eq(iosched_set_knobs(s, &k), -EINVAL);
	k.depth = 4;
	cr_assert_eq(iosched_set_knobs(s, &k), 0);
	for (i = 0; i < 10; i++) {
		req(&r[i], (uint64_t)i << 30, 0, 1);
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
	}
	cr_assert_eq(iosched_inflight(s), 4);
	cr_assert_eq(iosched_queued(s), 6);
	cr_assert_eq(iosched_drain(s), 10);
	iosched_free(s);
}

Test(core, counts_misses_and_lateness_per_stream)
{
	struct iosched *s = make("edf");
	struct iosched_req r[4];
	struct iosched_stats st, a, b;

	/* Stream 1: due at once, so late; stream 2: a whole second. */
	req(&r[0], 0, 1, 1);
	req(&r[1], 100ull << 30, 1, 1);
	req(&r[2], 200ull << 30, IOSCHED__NS_PER_S, 2);
	req(&r[3], 300ull << 30, IOSCHED__NS_PER_S, 2);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
	cr_assert_eq(iosched_drain(s), 4);
	iosched_stats_get(s, &st);
	cr_assert_eq(st.requests, 4);
	cr_assert_eq(st.misses, 2);
	cr_assert_eq(st.bytes, 4 * 65536);
	cr_assert_gt(st.lateness_max_ns, 0);
	cr_assert_gt(st.busy_ns, 0);
	cr_assert_leq(st.busy_ns, iosched_now(s));
	cr_assert_eq(st.queue_depth_max, 3);
	cr_assert_eq(iosched_stream_stats(s, 1, &a), 0);
	cr_assert_eq(iosched_stream_stats(s, 2, &b), 0);
	cr_assert_eq(a.misses, 2);
	cr_assert_eq(b.misses, 0);
	cr_assert_eq(b.lateness_max_ns, 0);
	cr_assert_eq(iosched_stream_stats(s, 3, &a), -ENOENT);
	iosched_stats_reset(s);
	iosched_stats_get(s, &st);
	cr_assert_eq(st.requests, 0);
	iosched_free(s);
}

Test(core, histogram_quantiles_are_within_a_bucket)
{
	struct iosched__hist *h = iosched__hist_new(5);
	uint64_t i, q;

	for (i = 1; i <= 100000; i++)
		iosched__hist_add(h, i * 1000);
	q = iosched__hist_quantile(h, 0.5);
	cr_assert(q >= 50000000 && q <= 50000000 * 1.04, "p50 %llu",
		  (unsigned long long)q);
	q = iosched__hist_quantile(h, 0.99);
	cr_assert(q >= 99000000 && q <= 99000000 * 1.04, "p99 %llu",
		  (unsigned long long)q);
	cr_assert_eq(iosched__hist_quantile(h, 1.0), 100000000);
	free(h);
}

Test(core, depth_beyond_the_back_end_is_clamped_with_a_log_line)
{
	struct iosched_backend *be;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = "glmd", .model = hdd,
				      .knobs = &k, .log = test_log };
	struct iosched *s;

	iosched_default_knobs(&k);
	k.depth = 1000000;
	cr_assert_eq(iosched_backend_sim_new(&be, hdd, 0, 1, NULL), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), 0);
	iosched_get_knobs(s, &k);
	cr_assert_eq(k.depth, 65536);
	cr_assert(strstr(last_log, "1000000") && strstr(last_log, "65536"),
		  "log: %s", last_log);
	iosched_free(s);
}
