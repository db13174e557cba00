/*
 * Tests of the scheduler's on-line model correction: on a simulated
 * device whose real speed is half or twice what its profile says, the
 * factor the planner applies converges to the device's, the error it
 * reports falls as it does, the correction stays within its bounds, and
 * with the model_learn knob off nothing is learnt.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

/* hdd-7200 with every time multiplied by @k: rates divided by k, the
 * seek's acceleration by k^2 and top speed by k (a triangle or trapezoid
 * profile then takes k times as long), rpm divided by k. */
static struct iosched_model *hdd_scaled(double k)
{
	char text[1024];
	struct iosched_model *m;

	snprintf(text, sizeof(text),
		 "type = hdd\nname = scaled\ncapacity_bytes = 500107862016\n"
		 "depth = 1\ncylinders = 120000\nrpm = %.6f\n"
		 "media_outer_MBps = %.6f\nmedia_inner_MBps = %.6f\n"
		 "bus_MBps = %.6f\noverhead_us = %.6f\nsettle_us = %.6f\n"
		 "short_seek_tracks = 4\nseek_accel = %.6f\n"
		 "seek_vmax = %.6f\n",
		 7200 / k, 78 / k, 40 / k, 150 / k, 200 * k, 800 * k,
		 2703 / (k * k), 10000 / k);
	cr_assert_eq(iosched_model_parse(&m, text, strlen(text), "scaled",
					 NULL), 0);
	return m;
}

static unsigned completed;

static void on_done(struct iosched_req *r, int res)
{
	(void)r;
	cr_assert_eq(res, 65536);
	completed++;
}

/*
 * Plans with @profile while the simulator runs @real: @n random 64 KiB
 * reads, one at a time.  Returns the factor learnt and fills the stats.
 */
static double run(const struct iosched_model *profile,
		  const struct iosched_model *real, unsigned n, bool learn,
		  struct iosched_stats *st)
{
	struct iosched_backend *be;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = "glmd", .model = profile,
				      .knobs = &k };
	struct iosched *s;
	struct iosched_req r;
	uint64_t rng = 11, cap = iosched_model_capacity(profile);
	double f;
	unsigned i;

	iosched_default_knobs(&k);
	k.model_learn = learn;
	cr_assert_eq(iosched_backend_sim_new(&be, real, 0, 5, NULL), 0);
	cr_assert_eq(iosched_new(&s, &cfg, be), 0);
	completed = 0;
	for (i = 0; i < n; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		memset(&r, 0, sizeof(r));
		r.op = IOSCHED_READ;
		r.offset = (rng >> 16) % (cap / 65536) * 65536;
		r.len = 65536;
		r.done = on_done;
		cr_assert_eq(iosched_submit(s, &r), 0);
		cr_assert_geq(iosched_drain(s), 1);
	}
	cr_assert_eq(completed, n);
	iosched_stats_get(s, st);
	f = iosched__corr_factor(s, IOSCHED_READ, 65536);
	iosched_free(s);
	return f;
}

static void converges(double k)
{
	struct iosched_model *profile = hdd_scaled(1.0), *real = hdd_scaled(k);
	struct iosched_stats early, late;
	double f;

	run(profile, real, 20, true, &early);
	f = run(profile, real, 400, true, &late);
	cr_log_info("device %.2fx the profile: factor %.3f, error p50 %.1f %% "
		    "after 20, %.1f %% after 400", k, f,
		    early.model_error_p50_pct, late.model_error_p50_pct);
	/* Rotation is drawn uniformly, so single requests stray by up to half
	 * a revolution; the smoothed mean must land within 15 %. */
	cr_assert(f > k * 0.85 && f < k * 1.15, "factor %.3f for a device "
		  "%.2fx its profile", f, k);
	cr_assert_lt(late.model_error_p50_pct, early.model_error_p50_pct);
	cr_assert_eq(late.model_samples, 400);
	iosched_model_free(profile);
	iosched_model_free(real);
}

Test(learn, converges_on_a_device_twice_as_slow_as_its_profile)
{
	converges(2.0);
}

Test(learn, converges_on_a_device_twice_as_fast_as_its_profile)
{
	converges(0.5);
}

Test(learn, a_right_profile_stays_near_one)
{
	converges(1.0);
}

Test(learn, nothing_is_learnt_with_the_knob_off)
{
	struct iosched_model *profile = hdd_scaled(1.0), *real = hdd_scaled(2.0);
	struct iosched_stats st;
	double f = run(profile, real, 100, false, &st);

	cr_assert_eq(f, 1.0);
	/* The error is still measured, against the profile as written. */
	cr_assert_gt(st.model_error_p50_pct, 50.0);
	iosched_model_free(profile);
	iosched_model_free(real);
}

Test(learn, the_factor_stays_within_its_bounds)
{
	struct iosched_model *profile = hdd_scaled(1.0), *real = hdd_scaled(30.0);
	struct iosched_stats st;
	double f = run(profile, real, 300, true, &st);

	cr_assert_eq(f, IOSCHED__CORR_MAX);
	iosched_model_free(profile);
	iosched_model_free(real);
}
