/*
 * Tests for the mh (Moore-Hodgson) policy, driven through its operation
 * table with a hand-built context whose clock moves on by each popped
 * request's cost, as a device that keeps to the model would.  The model is
 * a one-lane solid-state profile, so a request's cost depends on its
 * length and never on its position: the setting in which Moore-Hodgson is
 * optimal, which lets small random cases be checked against every order.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

#define START_NS (1000 * IOSCHED__NS_PER_S)
#define BRUTE_MAX 8
#define NSEEDS 300

static const char profile[] = "type = ssd\n"
			      "name = one-lane\n"
			      "capacity_bytes = 1G\n"
			      "depth = 1\n"
			      "parallelism = 1\n"
			      "overhead_us = 10\n"
			      "read_latency_us = 90\n"
			      "write_latency_us = 90\n"
			      "read_MBps = 100\n"
			      "write_MBps = 100\n";

static struct iosched_model *model;

static void setup(void)
{
	cr_assert_eq(iosched_model_parse(&model, profile, strlen(profile),
					 "test_mh", NULL),
		     0);
}

static void teardown(void)
{
	iosched_model_free(model);
}

TestSuite(mh, .init = setup, .fini = teardown, .timeout = 120);

struct rig {
	struct iosched_knobs knobs;
	struct iosched__ctx ctx;
	const struct iosched__policy_ops *ops;
	void *st;
};

static void rig_init(struct rig *g, const struct iosched__policy_ops *ops)
{
	memset(g, 0, sizeof(*g));
	iosched_default_knobs(&g->knobs);
	g->knobs.depth = 1;
	g->ctx.model = model;
	g->ctx.knobs = &g->knobs;
	g->ctx.now_ns = g->ctx.start_ns = START_NS;
	g->ctx.lanes = 1;
	g->ops = ops;
	cr_assert_eq(ops->create(&g->st), 0, "%s: create failed", ops->name);
}

static void rig_fini(struct rig *g)
{
	g->ops->destroy(g->st);
}

/* What the device takes for @r: this profile has no geometry. */
static uint64_t cost(const struct iosched_req *r)
{
	return iosched_model_service_ns(model, 0, r->op, r->offset, r->len);
}

static void put(struct rig *g, struct iosched_req *r)
{
	cr_assert_eq(g->ops->insert(g->st, r, &g->ctx), 0, "%s: insert failed",
		     g->ops->name);
}

/* Pops one request, then lets the clock run on by its cost. */
static struct iosched_req *take(struct rig *g, bool *late)
{
	struct iosched_req *r = g->ops->pop(g->st, &g->ctx);

	if (!r)
		return NULL;
	g->ctx.now_ns = g->ctx.start_ns += cost(r);
	g->ctx.head = r->offset + r->len;
	*late = g->ctx.start_ns > r->in.deadline_ns;
	return r;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * @n requests of 4 to 64 KiB with deadlines spread over @tight of the time
 * they take together, so that, below 1, some must be late.  Submission
 * order (seq) is the index; the caller picks the insertion order.
 */
static void make_jobs(struct iosched_req *r, size_t n, double tight,
		      uint64_t *rng)
{
	uint64_t total = 0, span;
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].op = IOSCHED_READ;
		r[i].offset = (rnd(rng) % 4096) * 4096;
		r[i].len = (uint32_t)(1 + rnd(rng) % 16) * 4096;
		r[i].in.seq = i + 1;
		total += cost(&r[i]);
	}
	span = (uint64_t)(tight * (double)total) + 1;
	for (i = 0; i < n; i++) {
		/* A few share a deadline, so ties are exercised too. */
		r[i].in.deadline_ns = START_NS + rnd(rng) % span;
		if (i > 0 && rnd(rng) % 4 == 0)
			r[i].in.deadline_ns = r[i - 1].in.deadline_ns;
		r[i].deadline_ns = r[i].in.deadline_ns;
	}
}

/* Inserts @r[0..n) in a random order, or in deadline order when @sorted
 * (every insert is then a step of the walk, none a replay). */
static void put_all(struct rig *g, struct iosched_req *r, size_t n,
		    bool sorted, uint64_t *rng)
{
	size_t idx[64], i, j, t;

	cr_assert_leq(n, 64);
	for (i = 0; i < n; i++)
		idx[i] = i;
	for (i = 0; i < n; i++) {
		for (j = i + 1; j < n; j++) {
			const struct iosched_req *a = &r[idx[i]], *b = &r[idx[j]];
			bool swap = sorted ?
					    a->in.deadline_ns > b->in.deadline_ns ||
						    (a->in.deadline_ns ==
							     b->in.deadline_ns &&
						     a->in.seq > b->in.seq) :
					    rnd(rng) % 2;

			if (swap) {
				t = idx[i];
				idx[i] = idx[j];
				idx[j] = t;
			}
		}
	}
	for (i = 0; i < n; i++)
		put(g, &r[idx[i]]);
}

/* Pops everything; returns how many finished after their deadline. */
static unsigned drain_late(struct rig *g, size_t n)
{
	unsigned late = 0;
	size_t i;
	bool l;

	for (i = 0; i < n; i++) {
		cr_assert_not_null(take(g, &l), "%s: empty after %zu of %zu",
				   g->ops->name, i, n);
		late += l;
	}
	cr_assert_null(take(g, &l), "%s: more than %zu queued", g->ops->name,
		       n);
	return late;
}

static unsigned late_under(const struct iosched__policy_ops *ops,
			   struct iosched_req *r, size_t n, bool sorted,
			   uint64_t *rng)
{
	struct rig g;
	unsigned late;

	rig_init(&g, ops);
	put_all(&g, r, n, sorted, rng);
	late = drain_late(&g, n);
	rig_fini(&g);
	return late;
}

/* Fewest late requests over every order of r[0..n) that @used leaves. */
static unsigned brute(const struct iosched_req *r, size_t n, unsigned used,
		      uint64_t t, unsigned late, unsigned best)
{
	size_t i;

	if (late >= best)
		return best;
	if (used == (1u << n) - 1)
		return late;
	for (i = 0; i < n; i++) {
		uint64_t end = t + cost(&r[i]);

		if (used & (1u << i))
			continue;
		best = brute(r, n, used | 1u << i, end,
			     late + (end > r[i].in.deadline_ns), best);
	}
	return best;
}

Test(mh, late_count_is_the_fewest_any_order_achieves)
{
	struct iosched_req r[BRUTE_MAX];
	uint64_t rng = 1;
	unsigned seed, some_late = 0;

	for (seed = 0; seed < NSEEDS; seed++) {
		size_t n = 1 + seed % BRUTE_MAX;
		unsigned best, got;
		int sorted;

		make_jobs(r, n, 0.3 + (seed % 7) * 0.1, &rng);
		best = brute(r, n, 0, START_NS, 0, UINT32_MAX);
		some_late += best > 0;
		for (sorted = 0; sorted < 2; sorted++) {
			got = late_under(&iosched__policy_mh, r, n, sorted,
					 &rng);
			cr_assert_eq(got, best,
				     "seed %u, n %zu, %s: mh %u late, best %u",
				     seed, n, sorted ? "sorted" : "shuffled",
				     got, best);
		}
	}
	cr_assert_gt(some_late, NSEEDS / 4, "the cases must force misses");
}

Test(mh, never_more_late_than_edf)
{
	struct iosched_req r[64];
	uint64_t rng = 7;
	unsigned seed, fewer = 0;

	for (seed = 0; seed < NSEEDS; seed++) {
		size_t n = 2 + seed % 63;
		unsigned m, e;

		make_jobs(r, n, 0.2 + (seed % 9) * 0.1, &rng);
		m = late_under(&iosched__policy_mh, r, n, false, &rng);
		e = late_under(&iosched__policy_edf, r, n, false, &rng);
		cr_assert_leq(m, e, "seed %u, n %zu: mh %u late, edf %u", seed,
			      n, m, e);
		fewer += m < e;
	}
	/* Overloaded EDF lets misses cascade; mh must actually do better. */
	cr_assert_gt(fewer, 0);
}

Test(mh, serves_in_deadline_order_when_everything_fits)
{
	struct iosched_req r[64];
	uint64_t rng = 3;
	unsigned seed;

	for (seed = 0; seed < 100; seed++) {
		size_t n = 1 + seed % 64, i;
		uint64_t t = START_NS;
		struct rig g;
		bool late;

		/* Deadlines in seq order, each past the end of the EDD
		 * schedule up to it; some equal to the next one's. */
		make_jobs(r, n, 1.0, &rng);
		for (i = 0; i < n; i++) {
			t += cost(&r[i]) + rnd(&rng) % 50000;
			r[i].in.deadline_ns = t;
		}
		for (i = n - 1; i-- > 0;)
			if (rnd(&rng) % 3 == 0)
				r[i].in.deadline_ns = r[i + 1].in.deadline_ns;
		rig_init(&g, &iosched__policy_mh);
		put_all(&g, r, n, false, &rng);
		for (i = 0; i < n; i++) {
			struct iosched_req *c = take(&g, &late);

			cr_assert_eq(c, &r[i], "seed %u: pop %zu is seq %llu",
				     seed, i, (unsigned long long)c->in.seq);
			cr_assert_not(late, "seed %u: seq %llu late", seed,
				      (unsigned long long)c->in.seq);
		}
		rig_fini(&g);
	}
}

Test(mh, drops_the_long_request_that_would_make_two_short_ones_late)
{
	struct iosched_req r[3];
	uint64_t cl, cs;
	struct rig g;
	bool late;
	size_t i;

	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++) {
		r[i].op = IOSCHED_READ;
		r[i].offset = 4096 * i;
		r[i].len = i == 0 ? 65536 : 4096;
		r[i].in.seq = i + 1;
	}
	cl = cost(&r[0]);
	cs = cost(&r[1]);
	/* The long one alone fits, and so do both short ones, but not all
	 * three: EDF serves the long one first and misses twice. */
	r[0].in.deadline_ns = START_NS + cl;
	r[1].in.deadline_ns = START_NS + cl + 1;
	r[2].in.deadline_ns = START_NS + cl + 2;
	cr_assert_lt(2 * cs, cl);
	cr_assert_eq(late_under(&iosched__policy_edf, r, 3, true, NULL), 2);

	rig_init(&g, &iosched__policy_mh);
	for (i = 0; i < 3; i++)
		put(&g, &r[i]);
	cr_assert_eq(take(&g, &late), &r[1]);
	cr_assert_not(late);
	cr_assert_eq(take(&g, &late), &r[2]);
	cr_assert_not(late);
	cr_assert_eq(take(&g, &late), &r[0]);
	cr_assert(late);
	cr_assert_null(take(&g, &late));
	rig_fini(&g);
}

Test(mh, interleaved_inserts_and_pops_return_every_request_once)
{
	enum { N = 5000 };
	static struct iosched_req r[N];
	static unsigned char seen[N];
	uint64_t rng = 11;
	size_t in = 0, out = 0;
	struct rig g;
	bool late;

	rig_init(&g, &iosched__policy_mh);
	while (out < N) {
		/* Bursts of arrivals, mostly in deadline order as streams
		 * submit, some out of it, against a steady drain. */
		if (in < N && rnd(&rng) % 8 < 5) {
			struct iosched_req *x = &r[in];

			memset(x, 0, sizeof(*x));
			x->op = IOSCHED_READ;
			x->offset = (rnd(&rng) % 4096) * 4096;
			x->len = 65536;
			x->in.seq = ++in;
			x->in.deadline_ns = g.ctx.start_ns +
					    (rnd(&rng) % 4 ? 20 : rnd(&rng) % 20) *
						    IOSCHED__NS_PER_MS;
			put(&g, x);
		} else {
			struct iosched_req *x = take(&g, &late);

			if (!x) {
				cr_assert_eq(out, in, "empty with %zu queued",
					     in - out);
				continue;
			}
			cr_assert_eq(seen[x->in.seq - 1], 0, "seq %llu twice",
				     (unsigned long long)x->in.seq);
			seen[x->in.seq - 1] = 1;
			out++;
		}
	}
	cr_assert_null(take(&g, &late));
	rig_fini(&g);
}
