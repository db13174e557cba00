/*
 * Tests of the simulated device: service times follow the model, a run is
 * the same for the same seed, sequential requests skip seek and rotation,
 * solid-state lanes serve requests at once, requests outside the device
 * are refused, and injected latency and errors show up where expected.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "iosched-int.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "sched/profiles"
#endif

static struct iosched_model *hdd, *nvme;

static void setup(void)
{
	setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1);
	cr_assert_eq(iosched_model_load(&hdd, "hdd-7200", NULL), 0);
	cr_assert_eq(iosched_model_load(&nvme, "nvme", NULL), 0);
}

static void teardown(void)
{
	iosched_model_free(hdd);
	iosched_model_free(nvme);
}

TestSuite(sim, .init = setup, .fini = teardown, .timeout = 60);

struct done_log {
	unsigned n;
	int res[64];
	uint64_t at[64];
	struct iosched *s;
};

static struct done_log dl;

static void on_done(struct iosched_req *r, int res)
{
	dl.res[dl.n] = res;
	dl.at[dl.n] = iosched_now(dl.s);
	dl.n++;
	(void)r;
}

static struct iosched *make(const struct iosched_model *m, uint64_t seed,
			    unsigned depth)
{
	struct iosched_backend *be;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = "fifo", .model = m,
				      .knobs = &k };
	struct iosched *s;

	iosched_default_knobs(&k);
	k.depth = depth;
	cr_assert_eq(iosched_backend_sim_new(&be, m, 1000, seed, NULL), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), 0);
	memset(&dl, 0, sizeof(dl));
	dl.s = s;
	return s;
}

static void req(struct iosched_req *r, uint64_t off, uint32_t len)
{
	memset(r, 0, sizeof(*r));
	r->op = IOSCHED_READ;
	r->offset = off;
	r->len = len;
	r->done = on_done;
}

Test(sim, serves_a_request_within_the_model_time_range)
{
	struct iosched *s = make(hdd, 5, 1);
	uint64_t off = 200ull << 30;
	uint64_t lo = iosched__model_service_sample_ns(hdd, 0, IOSCHED_READ,
						       off, 65536, 0.0);
	uint64_t hi = iosched__model_service_sample_ns(hdd, 0, IOSCHED_READ,
						       off, 65536, 1.0);
	struct iosched_req r;

	req(&r, off, 65536);
	cr_assert_eq(iosched_submit(s, &r), 0);
	cr_assert_eq(iosched_drain(s), 1);
	cr_assert_eq(dl.res[0], 65536);
	cr_assert_geq(dl.at[0] - 1000, lo);
	cr_assert_lt(dl.at[0] - 1000, hi);
	iosched_free(s);
}

Test(sim, sequential_continuation_skips_seek_and_rotation)
{
	struct iosched *s = make(hdd, 5, 1);
	struct iosched_req a, b;
	uint64_t off = 10ull << 30;

	req(&a, off, 65536);
	req(&b, off + 65536, 65536);
	cr_assert_eq(iosched_submit(s, &a), 0);
	cr_assert_eq(iosched_submit(s, &b), 0);
	cr_assert_eq(iosched_drain(s), 2);
	cr_assert_eq(dl.at[1] - dl.at[0],
		     iosched_model_service_ns(hdd, off + 65536, IOSCHED_READ,
					      off + 65536, 65536));
	iosched_free(s);
}

Test(sim, a_run_is_the_same_for_the_same_seed)
{
	struct bench_cfg c = {
		.policy = "glmd", .device = "sim:hdd-7200", .streams = 30,
		.size = 65536, .period_s = 0.3, .duration_s = 20, .seed = 11,
	};
	struct bench_result a, b, d;

	cr_assert_eq(bench_run(&c, &a), 0);
	cr_assert_eq(bench_run(&c, &b), 0);
	cr_assert_eq(a.requests, b.requests);
	cr_assert_eq(a.misses, b.misses);
	cr_assert_eq(a.latency_p50_us, b.latency_p50_us);
	cr_assert_eq(a.latency_max_us, b.latency_max_us);
	cr_assert_eq(a.lateness_max_us, b.lateness_max_us);
	cr_assert_eq(a.queue_depth_max, b.queue_depth_max);
	c.seed = 12;
	cr_assert_eq(bench_run(&c, &d), 0);
	cr_assert(d.latency_max_us != a.latency_max_us ||
		  d.latency_p99_us != a.latency_p99_us,
		  "another seed must draw other rotational positions");
}

Test(sim, solid_state_lanes_overlap_latency_but_share_the_transfer)
{
	struct iosched *s = make(nvme, 1, 32);
	struct iosched_req r[8];
	uint64_t svc = iosched_model_service_ns(nvme, 0, IOSCHED_READ, 1 << 30,
						65536);
	uint64_t x = iosched__model_transfer_ns(nvme, IOSCHED_READ, 65536);
	unsigned i;

	cr_assert_gt(x, 0);
	for (i = 0; i < 8; i++) {
		req(&r[i], (uint64_t)(i + 1) << 30, 65536);
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
	}
	cr_assert_eq(iosched_drain(s), 8);
	/* All start at 1000 on their own lanes; the k-th transfer waits for
	 * the k before it on the shared channel. */
	for (i = 0; i < 8; i++)
		cr_assert_eq(dl.at[i], 1000 + (svc - x) + (i + 1) * x,
			     "request %u done at %llu", i,
			     (unsigned long long)dl.at[i]);
	iosched_free(s);
}

Test(sim, solid_state_device_never_beats_its_profile_bandwidth)
{
	struct bench_cfg c = {
		.policy = "glmd", .device = "sim:nvme", .streams = 2000,
		.size = 1 << 20, .period_s = 0.3, .duration_s = 3, .seed = 2,
	};
	struct bench_result res;

	/* 2,000 streams of 1 MiB per 0.3 s ask for ~7 GB/s; nvme's
	 * profile reads 3,400 MB/s, and that is all it may deliver. */
	cr_assert_eq(bench_run(&c, &res), 0);
	cr_assert_leq(res.throughput_MBps, 3400.0 * 1.001, "%.1f MB/s",
		      res.throughput_MBps);
	cr_assert_geq(res.throughput_MBps, 3400.0 * 0.95, "%.1f MB/s",
		      res.throughput_MBps);
	cr_assert_gt(res.misses, 0);
}

Test(sim, refuses_requests_outside_the_device_or_misaligned)
{
	struct iosched *s = make(hdd, 1, 1);
	struct iosched_req r;

	req(&r, iosched_model_capacity(hdd), 65536);
	cr_assert_eq(iosched_submit(s, &r), -EINVAL);
	req(&r, 100, 65536);
	cr_assert_eq(iosched_submit(s, &r), -EINVAL);
	req(&r, 0, 1000);
	cr_assert_eq(iosched_submit(s, &r), -EINVAL);
	cr_assert_eq(iosched_drain(s), 0);
	cr_assert_eq(dl.n, 0, "a refused request never calls back");
	iosched_free(s);
}

Test(sim, injected_latency_and_errors_are_reported)
{
	struct iosched_backend *be;
	struct iosched_config cfg = { .policy = "fifo", .model = hdd };
	struct iosched_stats st;
	struct iosched_req r[6];
	struct iosched *s;
	unsigned i;

	cr_assert_eq(iosched_backend_sim_new(&be, hdd, 0, 1, NULL), 0);
	cr_assert_eq(iosched_backend_inject(be, 50 * IOSCHED__NS_PER_MS, 3), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), 0);
	memset(&dl, 0, sizeof(dl));
	dl.s = s;
	for (i = 0; i < 6; i++) {
		req(&r[i], (uint64_t)i << 20, 65536);
		cr_assert_eq(iosched_submit(s, &r[i]), 0);
	}
	cr_assert_eq(iosched_drain(s), 6);
	cr_assert_eq(dl.res[2], -EIO);
	cr_assert_eq(dl.res[5], -EIO);
	cr_assert_eq(dl.res[0], 65536);
	cr_assert_geq(dl.at[0], 50 * IOSCHED__NS_PER_MS);
	iosched_stats_get(s, &st);
	cr_assert_eq(st.errors, 2);
	cr_assert_eq(st.requests, 6);
	iosched_free(s);
}
