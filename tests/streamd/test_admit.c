/*
 * Tests for sd_admit.c, the admission arithmetic, on a simulated device
 * (a profile parsed from text) and a clock the tests move: viewers are
 * admitted up to the ceiling and then refused with the binding resource
 * named; recorders are reserved first, never displaced, and refused only
 * when their writes alone do not fit; released tickets free capacity
 * after their grace, and the same client takes its own over within it;
 * measured lateness shrinks the disk; a lower disk share frees the disk;
 * the ceiling and max_bandwidth at their edges; CPU learnt from injected
 * samples; the per-viewer costs predict how many viewers settle.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "iosched.h"
#include "streamd-int.h"

/* sd_admit.c's prior CPU cost per byte served, until one is learnt. */
#define PRIOR 0.6

#define MBIT 1000000ull
#define S SD_NS

/* A device slow enough for the disk to bind first: 10 ms per read,
 * one at a time. */
static const char slow_ssd[] =
	"type = ssd\nname = slow\ncapacity_bytes = 1G\ndepth = 1\n"
	"parallelism = 1\noverhead_us = 0\nread_latency_us = 10000\n"
	"write_latency_us = 10000\nread_MBps = 1000\nwrite_MBps = 1000\n";

static struct iosched_model *model(const char *text)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(iosched_model_parse(&m, text, strlen(text), "test", NULL),
		     0);
	return m;
}

static struct sd_admit_limits limits(void)
{
	struct sd_admit_limits l = {
		.on = 1,
		.ceiling = 0.85,
		.read_size = 65536,
		.write_size = 65536,
		.buffer_size = 1 << 20,
		.deadline_ns = 300000000,
		.cpus = 64,
		.mem_budget = 1ull << 40,
	};
	return l;
}

static struct sd_admit *a;

static void fini(void)
{
	sd_admit_free(a);
	a = NULL;
}

static void make(const struct sd_admit_limits *l, const char *profile)
{
	cr_assert_eq(sd_admit_new(&a, l, profile ? model(profile) : NULL), 0);
}

/* Device seconds per second a reader (or writer) of @bps costs. */
static double disk_per(const struct sd_admit_limits *l, uint64_t bps)
{
	struct iosched_model *m = model(slow_ssd);
	double svc = (double)iosched_model_service_ns(m, 0, IOSCHED_READ, 0,
						      l->read_size);

	iosched_model_free(m);
	return (double)bps / 8 / l->read_size * svc / 1e9;
}

/* Admits viewers of @bps from distinct clients until one is refused;
 * returns how many got in, the refusal in @why. */
static unsigned fill(uint64_t bps, uint64_t now, struct sd_admit_refusal *why,
		     struct sd_admit_ticket **keep, unsigned max)
{
	unsigned n = 0;
	char client[32];
	struct sd_admit_ticket *t;

	for (;;) {
		snprintf(client, sizeof(client), "10.0.0.%u", n);
		if (sd_admit_viewer(a, client, "cam", bps, now, &t, why) < 0)
			return n;
		if (keep && n < max)
			keep[n] = t;
		n++;
		cr_assert_lt(n, 100000, "never refused");
	}
}

TestSuite(admit, .fini = fini);

Test(admit, admits_up_to_the_ceiling_then_names_the_disk)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	double per = disk_per(&l, 8 * MBIT);
	unsigned want = (unsigned)floor(0.85 / per), n;

	make(&l, slow_ssd);
	n = fill(8 * MBIT, S, &why, NULL, 0);
	cr_expect_eq(n, want, "admitted %u, the model allows %u", n, want);
	cr_expect_eq(why.res, SD_ADMIT_DISK);
	cr_expect_str_eq(sd_admit_res_names[why.res], "disk");
	cr_expect_geq(why.retry_after_s, 1);
	cr_expect(why.promised + why.demand > 0.85 * why.capacity);
	cr_expect(why.promised <= 0.85 * why.capacity);
	sd_admit_stats(a, S, &st);
	cr_expect_eq(st.viewers, want);
	cr_expect_eq(st.admitted_total, want);
	cr_expect_eq(st.refused[SD_ADMIT_DISK], 1);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].promised, want * per, 1e-9);
}

Test(admit, network_binds_when_max_bandwidth_is_the_smallest)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_refusal why;
	unsigned n;

	l.max_bandwidth = 10 * MBIT;
	make(&l, NULL); /* no disk model: only the others count */
	/* 0.85 * 10 Mbit/s holds four 2 Mbit/s viewers, not five. */
	n = fill(2 * MBIT, S, &why, NULL, 0);
	cr_expect_eq(n, 4);
	cr_expect_eq(why.res, SD_ADMIT_NET);
	cr_expect_str_eq(sd_admit_res_names[why.res], "network");
}

/* What /admin/capacity tells a load tool (streamd-soak --offer): the
 * viewers that settle, wave after wave of starts, are the number the
 * per-viewer costs give. */
Test(admit, the_viewer_cost_predicts_how_many_settle)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	struct sd_admit_cost cost;
	/* The burst is sent; the buffer's fill is read, not sent. */
	double room, sur = 250000.0 * 5 / 5; /* bytes/s */
	unsigned want, n = 0, wave;
	uint64_t t = S;

	l.max_bandwidth = 30 * MBIT;
	l.start_ns = 5 * S;
	l.burst_ns = 5 * S;
	make(&l, NULL);
	sd_admit_viewer_cost(a, 2 * MBIT, &cost);
	cr_expect_float_eq(cost.steady[SD_ADMIT_NET], 2e6, 1e-6);
	cr_expect_float_eq(cost.start[SD_ADMIT_NET], sur * 8, 1e-3);
	cr_expect_float_eq(cost.steady[SD_ADMIT_CPU], 250000 * PRIOR * 1e-9,
			   1e-12);
	cr_expect_float_eq(cost.steady[SD_ADMIT_MEM],
			   (1 << 20) + (64 << 10) + 2 * 65536.0, 1e-6);
	cr_expect_eq(cost.start[SD_ADMIT_MEM], 0);
	cr_expect_eq(cost.steady[SD_ADMIT_DISK], 0); /* no model */
	sd_admit_stats(a, t, &st);
	room = st.ceiling * st.res[SD_ADMIT_NET].capacity -
	       st.res[SD_ADMIT_NET].promised - cost.start[SD_ADMIT_NET];
	want = (unsigned)floor(room / cost.steady[SD_ADMIT_NET]);
	do {
		wave = fill(2 * MBIT, t, &why, NULL, 0);
		n += wave;
		t += l.start_ns;
	} while (wave > 0);
	cr_expect_eq(n, want, "%u settled, the costs say %u", n, want);
	cr_expect_eq(want, 11);
	cr_expect_eq(why.res, SD_ADMIT_NET);
}

Test(admit, max_bandwidth_zero_is_not_modelled)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_stats st;
	struct sd_admit_ticket *t;

	make(&l, NULL);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(sd_admit_viewer(a, "c", "cam", 100 * MBIT, S, &t,
					     NULL), 0);
	sd_admit_stats(a, S, &st);
	cr_expect_not(st.res[SD_ADMIT_NET].modelled);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 1000 * 100e6, 1);
}

Test(admit, ceiling_edges)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_refusal why;

	/* Exactly at the ceiling fits; a bit over does not. */
	l.max_bandwidth = 10 * MBIT;
	l.ceiling = 0.5;
	make(&l, NULL);
	cr_expect_eq(sd_admit_viewer(a, "a", "cam", 5 * MBIT, S, &t, &why), 0);
	cr_expect_eq(sd_admit_viewer(a, "b", "cam", 1, S, &t, &why), -EBUSY);
	cr_expect_eq(why.res, SD_ADMIT_NET);
	sd_admit_free(a);
	/* Ceiling 1: the whole capacity. */
	l.ceiling = 1;
	make(&l, NULL);
	cr_expect_eq(sd_admit_viewer(a, "a", "cam", 10 * MBIT, S, &t, &why),
		     0);
	cr_expect_eq(sd_admit_viewer(a, "b", "cam", 1, S, &t, &why), -EBUSY);
	sd_admit_free(a);
	/* Ceiling 0: nobody (a node being drained). */
	l.ceiling = 0;
	make(&l, slow_ssd);
	cr_expect_eq(sd_admit_viewer(a, "a", "cam", 1, S, &t, &why), -EBUSY);
	cr_expect_eq(sd_admit_recorder(a, "cam", 1, S, &t, &why), -EBUSY);
}

Test(admit, off_admits_past_every_capacity)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_stats st;
	struct sd_admit_ticket *t;

	l.on = 0;
	l.max_bandwidth = 1 * MBIT;
	make(&l, slow_ssd);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(sd_admit_viewer(a, "c", "cam", 8 * MBIT, S, &t,
					     NULL), 0);
	sd_admit_stats(a, S, &st);
	cr_expect_eq(st.viewers, 50);
	cr_expect_gt(st.res[SD_ADMIT_NET].promised,
		     st.res[SD_ADMIT_NET].capacity);
	cr_expect_gt(st.res[SD_ADMIT_DISK].promised,
		     st.res[SD_ADMIT_DISK].capacity);
}

Test(admit, recorders_are_reserved_first_and_never_displaced)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *r1, *r2, *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	double per = disk_per(&l, 8 * MBIT);
	unsigned alone = (unsigned)floor(0.85 / per), n;

	make(&l, slow_ssd);
	cr_assert_eq(sd_admit_recorder(a, "r1", 8 * MBIT, S, &r1, &why), 0);
	/* One recorder's writes cost what one viewer's reads do here. */
	n = fill(8 * MBIT, S, &why, NULL, 0);
	cr_expect_eq(n, alone - 1, "with a recorder %u viewers, alone %u", n,
		     alone);
	cr_expect_eq(why.res, SD_ADMIT_DISK);
	/* The node is full of viewers; a second recorder still gets in:
	 * its writes and the first's fit. */
	cr_expect_eq(sd_admit_recorder(a, "r2", 8 * MBIT, S, &r2, &why), 0);
	sd_admit_stats(a, S, &st);
	cr_expect_eq(st.recorders, 2);
	cr_expect_eq(st.viewers, alone - 1, "no viewer was pushed out");
	cr_expect_gt(st.res[SD_ADMIT_DISK].promised,
		     0.85 * st.res[SD_ADMIT_DISK].capacity);
	/* ...and no viewer gets in past it. */
	cr_expect_eq(sd_admit_viewer(a, "new", "cam", 1000, S, &t, &why),
		     -EBUSY);
	sd_admit_release(a, r1, S);
	sd_admit_release(a, r2, S);
}

Test(admit, a_recorder_is_refused_only_when_writes_alone_do_not_fit)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_refusal why;
	double per = disk_per(&l, 8 * MBIT);
	unsigned fit = (unsigned)floor(0.85 / per), n = 0;
	char name[16];

	make(&l, slow_ssd);
	for (;;) {
		snprintf(name, sizeof(name), "r%u", n);
		if (sd_admit_recorder(a, name, 8 * MBIT, S, &t, &why) < 0)
			break;
		n++;
		cr_assert_lt(n, 1000);
	}
	cr_expect_eq(n, fit);
	cr_expect_eq(why.res, SD_ADMIT_DISK);
	/* Network, when modelled, binds recorders too. */
	sd_admit_free(a);
	l.max_bandwidth = 20 * MBIT;
	make(&l, NULL);
	cr_expect_eq(sd_admit_recorder(a, "a", 8 * MBIT, S, &t, &why), 0);
	cr_expect_eq(sd_admit_recorder(a, "b", 8 * MBIT, S, &t, &why), 0);
	cr_expect_eq(sd_admit_recorder(a, "c", 8 * MBIT, S, &t, &why), -EBUSY);
	cr_expect_eq(why.res, SD_ADMIT_NET);
}

Test(admit, recorders_ignore_memory_and_cpu_and_viewers_lateness)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_sample s = { .now_ns = S };

	l.mem_budget = 1 << 20; /* not even one viewer's buffer */
	make(&l, slow_ssd);
	cr_expect_eq(sd_admit_viewer(a, "c", "cam", 1000, S, &t, NULL),
		     -EBUSY);
	/* Lateness at the deadline shrinks the disk for viewers only. */
	sd_admit_observe(a, &s);
	s.now_ns = 2 * S;
	s.io_latency_p99_ns = l.deadline_ns;
	sd_admit_observe(a, &s);
	cr_expect_eq(sd_admit_recorder(a, "r", 8 * MBIT, 2 * S, &t, NULL), 0);
}

Test(admit, releasing_frees_capacity_after_the_grace)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *keep[64], *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	unsigned n;

	l.max_bandwidth = 10 * MBIT;
	make(&l, NULL);
	n = fill(2 * MBIT, S, &why, keep, 64);
	cr_assert_eq(n, 4);
	sd_admit_release(a, keep[0], 2 * S);
	/* Held: another client is still refused, and told to come back
	 * when the grace ends. */
	cr_expect_eq(sd_admit_viewer(a, "other", "cam", 2 * MBIT, 3 * S, &t,
				     &why), -EBUSY);
	cr_expect_eq(why.retry_after_s, 9);
	sd_admit_stats(a, 3 * S, &st);
	cr_expect_eq(st.held, 1);
	cr_expect_eq(st.viewers, 4);
	/* Grace over: freed. */
	cr_expect_eq(sd_admit_viewer(a, "other", "cam", 2 * MBIT, 12 * S, &t,
				     &why), 0);
	sd_admit_stats(a, 12 * S, &st);
	cr_expect_eq(st.held, 0);
	cr_expect_eq(st.viewers, 4);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 8e6, 1);
}

Test(admit, the_same_client_takes_its_held_ticket_over)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *keep[64], *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;

	l.max_bandwidth = 10 * MBIT;
	make(&l, NULL);
	cr_assert_eq(fill(2 * MBIT, S, &why, keep, 64), 4);
	/* Client 10.0.0.2's segment ended; its next one comes 5 s later on
	 * a full node and gets in, with no new reservation. */
	sd_admit_release(a, keep[2], 2 * S);
	cr_expect_eq(sd_admit_viewer(a, "10.0.0.2", "cam", 2 * MBIT, 7 * S,
				     &t, &why), 0);
	cr_expect_eq(t, keep[2]);
	sd_admit_stats(a, 7 * S, &st);
	cr_expect_eq(st.takeovers_total, 1);
	cr_expect_eq(st.held, 0);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 8e6, 1);
	/* Not on another stream, and not after the grace. */
	sd_admit_release(a, t, 8 * S);
	cr_expect_eq(sd_admit_viewer(a, "10.0.0.2", "other", 2 * MBIT, 9 * S,
				     &t, &why), -EBUSY);
	cr_expect_eq(sd_admit_viewer(a, "10.0.0.2", "cam", 2 * MBIT, 30 * S,
				     &t, &why), 0);
	sd_admit_stats(a, 30 * S, &st);
	cr_expect_eq(st.takeovers_total, 1, "after the grace: a new check");
}

Test(admit, recorders_are_freed_at_once)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_stats st;

	l.max_bandwidth = 10 * MBIT;
	make(&l, NULL);
	cr_assert_eq(sd_admit_recorder(a, "r", 8 * MBIT, S, &t, NULL), 0);
	sd_admit_release(a, t, S);
	sd_admit_stats(a, S, &st);
	cr_expect_eq(st.recorders, 0);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 0, 1e-9);
}

Test(admit, lateness_near_the_deadline_lowers_disk_capacity)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_sample s = { .now_ns = S };
	struct sd_admit_stats st;
	struct sd_admit_refusal why;
	unsigned before, after;

	make(&l, slow_ssd);
	before = fill(8 * MBIT, S, &why, NULL, 0);
	sd_admit_free(a);
	make(&l, slow_ssd);
	sd_admit_observe(a, &s);
	/* p99 latency at 90 % of the deadline: factor 1 - 0.8 * 0.9. */
	s.now_ns = 2 * S;
	s.io_latency_p99_ns = l.deadline_ns * 9 / 10;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 2 * S, &st);
	cr_expect_float_eq(st.disk_factor, 1 - 0.8 * 0.9, 1e-9);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].capacity, 0.28, 1e-9);
	after = fill(8 * MBIT, 2 * S, &why, NULL, 0);
	cr_expect_lt(after, before);
	cr_expect_eq(why.res, SD_ADMIT_DISK);
	/* 2 % of the window's reads late: the floor. */
	s.now_ns = 3 * S;
	s.io_latency_p99_ns = 0;
	s.io_deadline_requests = 1000;
	s.io_misses = 20;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 3 * S, &st);
	cr_expect_float_eq(st.disk_factor, 0.1, 1e-9);
	/* Quiet afterwards: it recovers, slowly (30 s time constant). */
	s.now_ns = 13 * S;
	s.io_deadline_requests = 2000;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 13 * S, &st);
	cr_expect_float_eq(st.disk_factor, 1 - 0.9 * exp(-10.0 / 30), 1e-9);
	/* Latency at half the deadline still leaves full capacity. */
	s.now_ns = 1000 * S;
	s.io_latency_p99_ns = l.deadline_ns / 2;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 1000 * S, &st);
	cr_expect_float_eq(st.disk_factor, 1, 1e-9);
}

Test(admit, a_lower_disk_share_frees_the_disk)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *keep[64], *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	unsigned n = 0;

	make(&l, slow_ssd);
	n = fill(8 * MBIT, S, &why, keep, 64);
	cr_assert_eq(why.res, SD_ADMIT_DISK);
	cr_assert_leq(n, 64);
	/* A cache now serves every admitted viewer from memory. */
	for (unsigned i = 0; i < n; i++)
		sd_admit_set_disk_share(a, keep[i], 0);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].promised, 0, 1e-12);
	cr_expect_eq(sd_admit_viewer(a, "new", "cam", 8 * MBIT, S, &t, &why),
		     0);
	/* Half: half the cost. */
	sd_admit_set_disk_share(a, keep[0], 0.5);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].promised,
			   1.5 * disk_per(&l, 8 * MBIT), 1e-9);
	/* Out of range is clamped. */
	sd_admit_set_disk_share(a, keep[1], 7);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].promised,
			   2.5 * disk_per(&l, 8 * MBIT), 1e-9);
}

Test(admit, memory_binds_on_buffers)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_refusal why;
	double per = (1 << 20) + (64 << 10) + 2 * 65536;

	l.mem_budget = 100ull << 20;
	make(&l, NULL);
	cr_expect_eq(fill(1000, S, &why, NULL, 0),
		     (unsigned)floor(0.85 * (100 << 20) / per));
	cr_expect_eq(why.res, SD_ADMIT_MEM);
	cr_expect_str_eq(sd_admit_res_names[why.res], "memory");
}

Test(admit, cpu_is_learnt_from_injected_samples)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_sample s = { .now_ns = S };
	struct sd_admit_stats st;
	struct sd_admit_refusal why;
	unsigned n;

	l.cpus = 2;
	make(&l, NULL);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.cpu_ns_per_byte, PRIOR, 1e-9, "the prior");
	sd_admit_observe(a, &s);
	/* 100 s: streamd spent 10 s of CPU serving 1e9 bytes (10 ns a
	 * byte), while the whole box was busy 110 s: others used one core. */
	s.now_ns = 101 * S;
	s.self_cpu_ns = 10 * S;
	s.sys_busy_ns = 110 * S;
	s.bytes_out = 1000000000;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 101 * S, &st);
	cr_expect_float_eq(st.cpu_ns_per_byte, PRIOR + (10 - PRIOR) *
			   (1 - exp(-10.0)), 1e-6);
	cr_expect_float_eq(st.cpu_other, 1 - exp(-10.0), 1e-6);
	cr_expect_float_eq(st.res[SD_ADMIT_CPU].measured, 0.1, 1e-9);
	cr_expect_float_eq(st.res[SD_ADMIT_CPU].capacity,
			   2 - (1 - exp(-10.0)), 1e-6);
	/* A 100 Mbit/s viewer costs 12.5e6 B/s * ~10 ns = 0.125 cores:
	 * 0.85 * ~1 core holds six. */
	n = fill(100 * MBIT, 101 * S, &why, NULL, 0);
	cr_expect_eq(why.res, SD_ADMIT_CPU);
	cr_expect_str_eq(sd_admit_res_names[why.res], "cpu");
	cr_expect_eq(n, 6);
	sd_admit_free(a);
	/* Others take every core: streamd still counts on the floor. */
	make(&l, NULL);
	s = (struct sd_admit_sample){ .now_ns = S };
	sd_admit_observe(a, &s);
	s.now_ns = 101 * S;
	s.sys_busy_ns = 200 * S;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 101 * S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_CPU].capacity, 0.5, 1e-9);
}

Test(admit, cpu_per_byte_is_learnt_over_windows_long_enough)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_sample s = { .now_ns = S };
	struct sd_admit_stats st;

	make(&l, NULL);
	sd_admit_observe(a, &s);
	/* Ten one-second samples of 2 MB served at 20 ns a byte: no single
	 * one is enough to learn from, their sum is. */
	for (int i = 2; i <= 11; i++) {
		s.now_ns = (uint64_t)i * S;
		s.bytes_out += 2000000;
		s.self_cpu_ns += 40000000;
		s.sys_busy_ns += 40000000;
		sd_admit_observe(a, &s);
		sd_admit_stats(a, s.now_ns, &st);
		if (i < 10)
			cr_expect_float_eq(st.cpu_ns_per_byte, PRIOR, 1e-9,
					   "learnt from %d MB", 2 * (i - 1));
	}
	/* 18 MB over 9 s at i = 10: one window of 9 s. */
	cr_expect_gt(st.cpu_ns_per_byte, PRIOR);
	cr_expect_float_eq(st.cpu_ns_per_byte,
			   PRIOR + (20 - PRIOR) * (1 - exp(-0.9)), 1e-6);
}

Test(admit, cpu_per_recording_is_learnt_while_nothing_is_served)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_sample s = { .now_ns = S };
	struct sd_admit_ticket *r1, *r2;
	struct sd_admit_stats st;

	make(&l, NULL);
	cr_assert_eq(sd_admit_recorder(a, "a", MBIT, S, &r1, NULL), 0);
	cr_assert_eq(sd_admit_recorder(a, "b", MBIT, S, &r2, NULL), 0);
	sd_admit_observe(a, &s);
	s.now_ns = 101 * S;
	s.self_cpu_ns = 10 * S; /* 0.1 core for two recordings */
	s.sys_busy_ns = 10 * S;
	sd_admit_observe(a, &s);
	sd_admit_stats(a, 101 * S, &st);
	cr_expect_float_eq(st.cpu_per_recording,
			   0.02 + (0.05 - 0.02) * (1 - exp(-10.0)), 1e-6);
	cr_expect_float_eq(st.res[SD_ADMIT_CPU].promised,
			   2 * st.cpu_per_recording, 1e-9);
}

Test(admit, a_model_swap_reprices_every_promise)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_stats st;
	double before;

	make(&l, slow_ssd);
	cr_assert_eq(sd_admit_viewer(a, "c", "cam", 8 * MBIT, S, &t, NULL), 0);
	sd_admit_stats(a, S, &st);
	before = st.res[SD_ADMIT_DISK].promised;
	sd_admit_set_model(a, model(
		"type = ssd\nname = fast\ncapacity_bytes = 1G\ndepth = 8\n"
		"parallelism = 8\noverhead_us = 0\nread_latency_us = 100\n"
		"write_latency_us = 100\nread_MBps = 1000\n"
		"write_MBps = 1000\n"));
	sd_admit_stats(a, S, &st);
	cr_expect_lt(st.res[SD_ADMIT_DISK].promised, before / 50);
	cr_expect_eq(st.disk_parallelism, 8);
}

Test(admit, a_starting_viewer_counts_its_burst_until_its_start_ends)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *keep[8], *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;

	/* A 2 Mbit/s viewer with a 5 s burst spread over a 5 s start
	 * counts 4 Mbit/s while it starts (no buffer, to keep it round). */
	l.max_bandwidth = 10 * MBIT;
	l.burst_ns = 5 * S;
	l.start_ns = 5 * S;
	l.buffer_size = 0;
	make(&l, NULL);
	/* 0.85 * 10 Mbit/s holds four settled viewers, two starting. */
	cr_assert_eq(fill(2 * MBIT, S, &why, keep, 8), 2);
	cr_expect_eq(why.res, SD_ADMIT_NET);
	cr_expect_float_eq(why.demand, 4e6, 1);
	cr_expect_eq(why.retry_after_s, 5, "the first start ends in 5 s");
	sd_admit_stats(a, S, &st);
	cr_expect_eq(st.starting, 2);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 8e6, 1);
	/* Their starts over, one more gets in, starting. */
	cr_expect_eq(sd_admit_viewer(a, "x", "cam", 2 * MBIT, 6 * S, &t, &why),
		     0);
	sd_admit_stats(a, 6 * S, &st);
	cr_expect_eq(st.starting, 1);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 8e6, 1);
	/* A release within the start ends it at once: held, it counts its
	 * rate only. */
	sd_admit_release(a, t, 7 * S);
	sd_admit_stats(a, 7 * S, &st);
	cr_expect_eq(st.starting, 0);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 6e6, 1);
	/* A takeover gets no new start. */
	cr_expect_eq(sd_admit_viewer(a, "x", "cam", 2 * MBIT, 8 * S, &t, &why),
		     0);
	sd_admit_stats(a, 8 * S, &st);
	cr_expect_eq(st.starting, 0);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 6e6, 1);
	/* A newcomer's start does not fit beside three settled ones. */
	cr_expect_eq(sd_admit_viewer(a, "y", "cam", 2 * MBIT, 8 * S, &t, &why),
		     -EBUSY);
	cr_expect_float_eq(why.demand, 4e6, 1);
}

/* A newcomer the cache is expected to serve promises the disk only its
 * expected share, its start included, and the network its whole rate. */
Test(admit, a_viewer_expected_from_the_cache_promises_the_disk_its_share)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t, *u;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	double full;

	l.max_bandwidth = 100 * MBIT;
	l.burst_ns = 5 * S;
	l.start_ns = 5 * S;
	make(&l, slow_ssd);
	cr_assert_eq(sd_admit_viewer(a, "x", "cam", 2 * MBIT, S, &t, &why), 0);
	sd_admit_stats(a, S, &st);
	full = st.res[SD_ADMIT_DISK].promised;
	cr_assert_gt(full, 0);
	cr_assert_eq(sd_admit_viewer_share(a, "y", "cam", 2 * MBIT, 0.25, S,
					   &u, &why), 0);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_DISK].promised, full * 1.25,
			   full * 1e-6);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 2 * 4e6, 1);
	/* Its measured share replaces the guess (the start's stays). */
	sd_admit_set_disk_share(a, u, 1);
	sd_admit_stats(a, S, &st);
	cr_expect_gt(st.res[SD_ADMIT_DISK].promised, full * 1.25);
	sd_admit_release(a, t, S);
	sd_admit_release(a, u, S);
}

/* A buffer's fill is read, not sent: it counts on the disk during the
 * start, not on the network (nor the CPU, which the same sum prices). */
Test(admit, a_starting_viewer_counts_its_fill_on_the_disk_only)
{
	struct sd_admit_limits l = limits();
	struct sd_admit_ticket *t;
	struct sd_admit_refusal why;
	struct sd_admit_stats st;
	double with_fill;

	l.max_bandwidth = 100 * MBIT;
	l.burst_ns = 5 * S;
	l.start_ns = 5 * S;
	l.buffer_size = 5 << 20;
	make(&l, slow_ssd);
	cr_assert_eq(sd_admit_viewer(a, "x", "cam", 2 * MBIT, S, &t, &why), 0);
	sd_admit_stats(a, S, &st);
	/* 2 Mbit/s steady and 2 Mbit/s of burst: 4 Mbit/s sent. */
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 4e6, 1);
	with_fill = st.res[SD_ADMIT_DISK].promised;
	sd_admit_release(a, t, S);
	sd_admit_free(a);
	l.buffer_size = 0;
	make(&l, slow_ssd);
	cr_assert_eq(sd_admit_viewer(a, "x", "cam", 2 * MBIT, S, &t, &why), 0);
	sd_admit_stats(a, S, &st);
	cr_expect_float_eq(st.res[SD_ADMIT_NET].promised, 4e6, 1);
	cr_expect_gt(with_fill, st.res[SD_ADMIT_DISK].promised * 1.5,
		     "the fill (1 MiB/s) counts on the disk: %g vs %g",
		     with_fill, st.res[SD_ADMIT_DISK].promised);
	sd_admit_release(a, t, S);
}
