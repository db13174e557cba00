/*
 * Tests of the disk service-time model (iosched_model.c): byte-to-cylinder
 * mapping, the seek curve (settle-only short seeks, triangular and
 * trapezoidal velocity profiles), rotational latency, zoned media rates,
 * sequential continuation and the solid-state formula.  Each expectation
 * is worked out by hand in the comment beside it, so a change to the
 * maths shows up as a specific wrong number rather than a vague drift.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "iosched-int.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "/work/main/sched/profiles"
#endif

#define KIB 1024u
#define MIB (1024u * 1024u)

/* hdd-7200: capacity 500107862016 bytes over 120000 cylinders, i.e.
 * 4167565.5168 bytes per cylinder; a third of it is 166702620672. */
#define HDD_CAP 500107862016ull
#define HDD_CYL_40000 166702620672ull

static struct iosched_model *shipped(const char *name)
{
	char path[512];
	struct iosched_model *m = NULL;
	int ret;

	snprintf(path, sizeof(path), "%s/%s.profile", IOSCHED_TEST_PROFILE_DIR,
		 name);
	ret = iosched_model_load(&m, path, NULL);
	cr_assert_eq(ret, 0, "loading %s: %d", path, ret);
	return m;
}

/*
 * A disk with round numbers: 101 cylinders of 1 MiB each, 6000 rpm (a
 * 10 ms revolution), media rate 100 MB/s at cylinder 0 falling to 50 MB/s
 * at cylinder 100, a 1000 MB/s bus, no overhead.
 */
static struct iosched_model *round_disk(void)
{
	static const char text[] =
		"type = hdd\n"
		"capacity_bytes = 105906176\n" /* 101 MiB */
		"cylinders = 101\n"
		"rpm = 6000\n"
		"media_outer_MBps = 100\n"
		"media_inner_MBps = 50\n"
		"bus_MBps = 1000\n"
		"overhead_us = 0\n"
		"settle_us = 1000\n"
		"short_seek_tracks = 2\n"
		"seek_accel = 1\n"
		"seek_vmax = 10\n";
	struct iosched_model *m = NULL;

	cr_assert_eq(iosched_model_parse(&m, text, sizeof(text) - 1,
					 "round.profile", NULL), 0);
	return m;
}

Test(model, maps_offsets_to_cylinders_proportionally)
{
	struct iosched_model *m = shipped("hdd-7200");

	cr_assert_eq(iosched_model_cylinder(m, 0), 0);
	/* 4167565 < 4167565.5168 bytes per cylinder: still cylinder 0. */
	cr_assert_eq(iosched_model_cylinder(m, 4167565), 0);
	cr_assert_eq(iosched_model_cylinder(m, 4167566), 1);
	/* 166702620672 * 120000 / 500107862016 = 40000 exactly. */
	cr_assert_eq(iosched_model_cylinder(m, HDD_CYL_40000), 40000);
	cr_assert_eq(iosched_model_cylinder(m, HDD_CYL_40000 - 1), 39999);
	cr_assert_eq(iosched_model_cylinder(m, HDD_CAP - 1), 119999);
	iosched_model_free(m);
}

Test(model, clamps_offsets_past_the_end_to_the_last_cylinder)
{
	struct iosched_model *m = shipped("hdd-7200");

	cr_assert_eq(iosched_model_cylinder(m, HDD_CAP), 119999);
	/* UINT64_MAX * 120000 overflows 64 bits; 128-bit maths must not. */
	cr_assert_eq(iosched_model_cylinder(m, UINT64_MAX), 119999);
	iosched_model_free(m);
}

Test(model, seek_of_zero_cylinders_is_free)
{
	struct iosched_model *m = shipped("hdd-7200");

	cr_assert_eq(iosched_model_seek_ns(m, 777, 777), 0);
	iosched_model_free(m);
}

Test(model, seek_is_settle_only_up_to_four_tracks)
{
	struct iosched_model *m = shipped("hdd-7200");
	uint64_t d;

	/* short_seek_tracks = 4, settle_us = 800. */
	for (d = 1; d <= 4; d++) {
		cr_assert_eq(iosched_model_seek_ns(m, 100, 100 + d), 800000);
		cr_assert_eq(iosched_model_seek_ns(m, 100 + d, 100), 800000);
	}
	/* 5 tracks leaves the settle-only band:
	 * 2 * sqrt(5 / 2703) ms = 0.0860185 ms; + 0.8 ms = 886018.52 ns. */
	cr_assert_eq(iosched_model_seek_ns(m, 100, 105), 886019);
	iosched_model_free(m);
}

Test(model, short_of_full_speed_seeks_are_triangular)
{
	struct iosched_model *m = shipped("hdd-7200");

	/* vmax^2 / accel = 10000^2 / 2703 = 36995.93 cylinders: below it the
	 * arm never coasts.
	 * d = 10000: 2 * sqrt(10000 / 2703) = 3.8468652 ms; + 0.8 ms
	 *   = 4646865.24 ns. */
	cr_assert_eq(iosched_model_seek_ns(m, 0, 10000), 4646865);
	/* d = 36995: 2 * sqrt(36995 / 2703) = 7.3990930 ms; + 0.8 ms
	 *   = 8199093.04 ns. */
	cr_assert_eq(iosched_model_seek_ns(m, 0, 36995), 8199093);
	iosched_model_free(m);
}

Test(model, long_seeks_coast_at_top_speed)
{
	struct iosched_model *m = shipped("hdd-7200");

	/* d = 36996: 2 * 10000 / 2703 = 7.3991861 ms ramping, plus
	 * (36996 - 36995.9304) / 10000 = 0.0000070 ms coasting; + 0.8 ms
	 *   = 8199193.04 ns.  (Continuous with the triangle: one more
	 *   cylinder at vmax costs 0.1 us.) */
	cr_assert_eq(iosched_model_seek_ns(m, 0, 36996), 8199193);
	/* Average seek, a third of the stroke, d = 40000:
	 * 7.3991861 + (40000 - 36995.9304) / 10000 = 7.6995930 ms; + 0.8 ms
	 *   = 8499593.04 ns. */
	cr_assert_eq(iosched_model_seek_ns(m, 0, 40000), 8499593);
	/* Full stroke, d = 119999:
	 * 7.3991861 + (119999 - 36995.9304) / 10000 = 15.6994930 ms; + 0.8
	 *   = 16499493.04 ns. */
	cr_assert_eq(iosched_model_seek_ns(m, 119999, 0), 16499493);
	iosched_model_free(m);
}

Test(model, reads_64k_within_the_head_cylinder_without_seeking)
{
	struct iosched_model *m = shipped("hdd-7200");

	/* Head at byte 1 MiB (cylinder 0), read 64 KiB at byte 0 (cylinder 0,
	 * not where the head stopped):
	 *   seek             0 (same cylinder)
	 *   rotation         60e9 / 7200 / 2          = 4166666.667 ns
	 *   media at cyl 0   65536 B / 78e6 B/s       =  840205.128 ns
	 *   bus              65536 B / 150e6 B/s      =  436906.667 ns
	 *   overhead         200 us                   =  200000     ns
	 *   total                                     = 5643778.462 ns */
	cr_assert_eq(iosched_model_service_ns(m, MIB, IOSCHED_READ, 0, 64 * KIB),
		     5643778);
	iosched_model_free(m);
}

Test(model, charges_seek_rotation_and_zoned_rate_for_a_distant_read)
{
	struct iosched_model *m = shipped("hdd-7200");

	/* Head at byte 0 (cylinder 0), read 64 KiB at cylinder 40000:
	 *   seek (d = 40000, above)                   = 8499593.045 ns
	 *   rotation                                  = 4166666.667 ns
	 *   media rate at cyl 40000:
	 *     78e6 - 38e6 * 40000 / 119999 = 65333227.78 B/s
	 *     65536 / 65333227.78 s                   = 1003103.661 ns
	 *   bus                                       =  436906.667 ns
	 *   overhead                                  =  200000     ns
	 *   total                                     = 14306270.04 ns */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ,
					      HDD_CYL_40000, 64 * KIB),
		     14306270);
	/* Writes cost the same on a disk. */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_WRITE,
					      HDD_CYL_40000, 64 * KIB),
		     14306270);
	iosched_model_free(m);
}

Test(model, sequential_continuation_skips_seek_and_rotation)
{
	struct iosched_model *m = shipped("hdd-7200");

	/* The previous request ended at the byte this one starts at:
	 *   media 1003103.661 + bus 436906.667 + overhead 200000
	 *   = 1640010.328 ns */
	cr_assert_eq(iosched_model_service_ns(m, HDD_CYL_40000, IOSCHED_READ,
					      HDD_CYL_40000, 64 * KIB),
		     1640010);
	/* One sector off is no longer a continuation: the same cylinder, so
	 * no seek, but half a revolution (4166666.667 ns) more. */
	cr_assert_eq(iosched_model_service_ns(m, HDD_CYL_40000 + 512,
					      IOSCHED_READ, HDD_CYL_40000,
					      64 * KIB),
		     5806677);
	iosched_model_free(m);
}

Test(model, media_rate_falls_linearly_from_outer_to_inner_cylinder)
{
	struct iosched_model *m = round_disk();

	/* Sequential reads of 1.5 MB (no seek, no rotation), bus
	 * 1.5e6 / 1000e6 s = 1.5 ms, overhead 0:
	 *   cyl 0:   100 MB/s -> 15 ms media, 16.5 ms total
	 *   cyl 50:  100 - 50 * 50/100 = 75 MB/s -> 20 ms, 21.5 ms total
	 *   cyl 100: 50 MB/s -> 30 ms media, 31.5 ms total */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ, 0, 1500000),
		     16500000);
	cr_assert_eq(iosched_model_service_ns(m, 50ull * MIB, IOSCHED_READ,
					      50ull * MIB, 1500000),
		     21500000);
	cr_assert_eq(iosched_model_service_ns(m, 100ull * MIB, IOSCHED_READ,
					      100ull * MIB, 1500000),
		     31500000);
	iosched_model_free(m);
}

Test(model, derives_the_revolution_time_from_rpm)
{
	struct iosched_model *m = round_disk();
	struct iosched_model *h = shipped("hdd-7200");

	/* 60e9 / 6000 = 10 ms; 60e9 / 7200 = 8333333.33 ns. */
	cr_assert_eq(m->revolution_ns, 10000000);
	cr_assert_eq(h->revolution_ns, 8333333);
	iosched_model_free(h);
	iosched_model_free(m);
}

Test(model, sampled_rotation_uses_the_given_fraction_of_a_revolution)
{
	struct iosched_model *m = round_disk();
	uint64_t base;

	/* Head at cylinder 0, 1 MB read at cylinder 1 (d = 1 <= 2 tracks:
	 * settle only, 1 ms).  Media at cyl 1: 100 - 50 * 1/100 = 99.5 MB/s
	 * -> 1e6 / 99.5e6 s = 10050251.256 ns; bus 1 ms.
	 *   base = 1000000 + 10050251.256 + 1000000 = 12050251.256 ns */
	base = 12050251;
	cr_assert_eq(iosched__model_service_sample_ns(m, 0, IOSCHED_READ, MIB,
						      1000000, 0.0),
		     base);
	/* + 0.25 * 10 ms = 14550251.256 ns. */
	cr_assert_eq(iosched__model_service_sample_ns(m, 0, IOSCHED_READ, MIB,
						      1000000, 0.25),
		     14550251);
	/* The expected cost is the sample at half a revolution: + 5 ms. */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ, MIB, 1000000),
		     17050251);
	cr_assert_eq(iosched__model_service_sample_ns(m, 0, IOSCHED_READ, MIB,
						      1000000, 0.5),
		     17050251);
	iosched_model_free(m);
}

Test(model, ssd_cost_is_overhead_latency_and_bandwidth)
{
	struct iosched_model *m = shipped("ssd-sata");

	/* Read 1 MiB: 10 us + 90 us + 1048576 / 540e6 s
	 *   = 100000 + 1941807.407 = 2041807.407 ns */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ, 0, MIB),
		     2041807);
	/* Write 1 MiB: 10 us + 60 us + 1048576 / 500e6 s
	 *   = 70000 + 2097152 = 2167152 ns */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_WRITE, 0, MIB),
		     2167152);
	iosched_model_free(m);
}

Test(model, ssd_rounds_to_the_nearest_nanosecond)
{
	struct iosched_model *m = shipped("nvme");

	/* Read 4 KiB: 5 + 80 us + 4096 / 3400e6 s = 85000 + 1204.706
	 *   = 86204.706 ns -> 86205 (rounded up) */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ, 0, 4 * KIB),
		     86205);
	/* Write 4 KiB: 5 + 20 us + 4096 / 3000e6 s = 25000 + 1365.333
	 *   = 26365.333 ns -> 26365 (rounded down) */
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_WRITE, 0, 4 * KIB),
		     26365);
	iosched_model_free(m);
}

Test(model, ssd_ignores_head_position_and_has_no_geometry)
{
	struct iosched_model *m = shipped("ssd-sata");
	uint64_t far = 400ull * 1024 * MIB;

	cr_assert_eq(iosched_model_service_ns(m, far, IOSCHED_READ, 0, MIB),
		     iosched_model_service_ns(m, 0, IOSCHED_READ, 0, MIB));
	cr_assert_eq(iosched_model_service_ns(m, 0, IOSCHED_READ, 0, MIB),
		     iosched_model_service_ns(m, MIB, IOSCHED_READ, MIB, MIB));
	cr_assert_eq(iosched__model_service_sample_ns(m, far, IOSCHED_READ, 0,
						      MIB, 0.9),
		     2041807);
	cr_assert_eq(iosched_model_seek_ns(m, 0, 100000), 0);
	cr_assert_eq(iosched_model_cylinder(m, far), 0);
	iosched_model_free(m);
}

Test(model, reports_what_the_profiles_declare)
{
	struct iosched_model *h = shipped("hdd-7200");
	struct iosched_model *s = shipped("ssd-sata");
	struct iosched_model *n = shipped("nvme");

	cr_assert_str_eq(iosched_model_name(h), "hdd-7200");
	cr_assert_not(iosched_model_is_ssd(h));
	cr_assert_eq(iosched_model_capacity(h), HDD_CAP);
	cr_assert_eq(iosched_model_parallelism(h), 1);
	cr_assert_eq(iosched_model_depth(h), 1);

	cr_assert_str_eq(iosched_model_name(s), "ssd-sata");
	cr_assert(iosched_model_is_ssd(s));
	cr_assert_eq(iosched_model_capacity(s), 512ull << 30);
	cr_assert_eq(iosched_model_parallelism(s), 8);
	cr_assert_eq(iosched_model_depth(s), 32);

	cr_assert_str_eq(iosched_model_name(n), "nvme");
	cr_assert(iosched_model_is_ssd(n));
	cr_assert_eq(iosched_model_capacity(n), 1ull << 40);
	cr_assert_eq(iosched_model_parallelism(n), 32);
	cr_assert_eq(iosched_model_depth(n), 64);

	iosched_model_free(n);
	iosched_model_free(s);
	iosched_model_free(h);
}

Test(model, free_of_null_is_a_no_op)
{
	iosched_model_free(NULL);
}
