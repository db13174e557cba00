/*
 * The policy micro-benchmark of iosched-bench: what one insert and one pop
 * cost a policy when its queue holds @depth requests, with no device and
 * no scheduler core around it.  The queue is filled untimed, then held at
 * its depth by popping one request and inserting a fresh one per
 * iteration; only the policy call sits between the two clock reads, and
 * what the reads themselves cost (the fastest of a thousand back-to-back
 * pairs) is taken off each sample.  A
 * hand-built context plays the scheduler: each pop advances the estimated
 * clock by the model's cost of the popped request from the current head,
 * the way the core's dispatch() does, so deadlines fall due as they would
 * on a device that keeps up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "iosched-int.h"
#include "tool_clock.h"

#define MICRO_LEN 65536u
#define MICRO_ALIGN 4096u
#define MICRO_ITER_MIN 20000u
#define MICRO_ITER_MAX 200000u
#define MICRO_COST_SAMPLES 1024u
#define MICRO_BUDGET_NS (8 * IOSCHED__NS_PER_S) /* timed phase, at most */
#define MICRO_HIST_BITS 5
#define MICRO_CLOCK_SAMPLES 1000u

struct micro {
	const struct iosched__policy_ops *ops;
	void *state;
	struct iosched_model *model;
	struct iosched_knobs knobs;
	struct iosched__ctx ctx;
	struct iosched_req *reqs;
	size_t nreqs, used;
	uint64_t rng;
	uint64_t seq;
	uint64_t span_ns; /* deadlines fall in [now, now + span) */
	uint64_t clock_ns; /* cost of the timing itself */
	struct iosched__hist *ins, *pop;
	double ins_sum, pop_sum;
};

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The least time two clock reads in a row take: the floor of a sample. */
static uint64_t clock_cost(void)
{
	uint64_t best = UINT64_MAX;
	unsigned i;

	for (i = 0; i < MICRO_CLOCK_SAMPLES; i++) {
		uint64_t t0 = tool_now_ns(), t1 = tool_now_ns();

		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best;
}

/* A call's time without the clock's own cost. */
static uint64_t net(const struct micro *m, uint64_t t0, uint64_t t1)
{
	return t1 - t0 > m->clock_ns ? t1 - t0 - m->clock_ns : 0;
}

/* A 4096-aligned offset at which a MICRO_LEN request fits the device. */
static uint64_t rnd_offset(struct micro *m)
{
	uint64_t slots = (iosched_model_capacity(m->model) - MICRO_LEN) /
			 MICRO_ALIGN + 1;

	return rnd(&m->rng) % slots * MICRO_ALIGN;
}

/* The queue's view of a random read: the model's cost between two random
 * places, averaged, and shared among the device's lanes. */
static uint64_t mean_cost(struct micro *m)
{
	struct iosched_req r = { .op = IOSCHED_READ, .len = MICRO_LEN };
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < MICRO_COST_SAMPLES; i++) {
		uint64_t head = rnd_offset(m);

		r.offset = rnd_offset(m);
		sum += iosched__cost_ns(&m->ctx, head, &r);
	}
	return sum / MICRO_COST_SAMPLES;
}

/* Next unused request, made up as iosched_submit() would hand it over. */
static struct iosched_req *fresh(struct micro *m)
{
	struct iosched_req *r = &m->reqs[m->used++];

	memset(r, 0, sizeof(*r));
	r->op = IOSCHED_READ;
	r->offset = rnd_offset(m);
	r->len = MICRO_LEN;
	r->deadline_ns = m->ctx.now_ns + rnd(&m->rng) % m->span_ns;
	r->stream = (uint32_t)m->used;
	r->in.submit_ns = m->ctx.now_ns;
	r->in.seq = ++m->seq;
	r->in.deadline_ns = r->deadline_ns;
	return r;
}

static int timed_insert(struct micro *m)
{
	struct iosched_req *r = fresh(m);
	uint64_t t0, t1;
	int rc;

	t0 = tool_now_ns();
	rc = m->ops->insert(m->state, r, &m->ctx);
	t1 = tool_now_ns();
	iosched__hist_add(m->ins, net(m, t0, t1));
	m->ins_sum += (double)net(m, t0, t1);
	return rc;
}

/* Pops one and plays the device: the clock moves on by its cost. */
static int timed_pop(struct micro *m)
{
	struct iosched_req *r;
	uint64_t t0, t1, cost;

	t0 = tool_now_ns();
	r = m->ops->pop(m->state, &m->ctx);
	t1 = tool_now_ns();
	if (!r)
		return -EPROTO; /* the queue was not empty */
	iosched__hist_add(m->pop, net(m, t0, t1));
	m->pop_sum += (double)net(m, t0, t1);
	cost = iosched__cost_ns(&m->ctx, m->ctx.head, r);
	m->ctx.now_ns += cost;
	m->ctx.start_ns = m->ctx.now_ns;
	m->ctx.head = r->offset + r->len;
	return 0;
}

static int micro_init(struct micro *m, const char *policy,
		      const char *profile, unsigned depth, uint64_t iters)
{
	int rc;

	m->ops = iosched__policy_find(policy);
	if (!m->ops || depth == 0)
		return -EINVAL;
	rc = iosched_model_load(&m->model, profile ? profile : "hdd-7200",
				NULL);
	if (rc < 0)
		return rc;
	if (iosched_model_capacity(m->model) < MICRO_LEN)
		return -EINVAL;
	iosched_default_knobs(&m->knobs);
	m->knobs.depth = iosched_model_depth(m->model);
	m->ctx.model = m->model;
	m->ctx.knobs = &m->knobs;
	m->ctx.lanes = iosched_model_parallelism(m->model);
	if (m->ctx.lanes == 0)
		m->ctx.lanes = 1;
	/* A clock far from zero, as a real one is. */
	m->ctx.now_ns = m->ctx.start_ns = 1000 * IOSCHED__NS_PER_S;
	m->span_ns = (uint64_t)(1.5 * depth * (double)mean_cost(m));
	if (m->span_ns == 0)
		m->span_ns = 1;
	m->nreqs = depth + iters;
	m->reqs = calloc(m->nreqs, sizeof(*m->reqs));
	m->ins = iosched__hist_new(MICRO_HIST_BITS);
	m->pop = iosched__hist_new(MICRO_HIST_BITS);
	if (!m->reqs || !m->ins || !m->pop)
		return -ENOMEM;
	return m->ops->create(&m->state);
}

static void micro_fini(struct micro *m)
{
	if (m->state)
		m->ops->destroy(m->state);
	iosched_model_free(m->model);
	free(m->reqs);
	free(m->ins);
	free(m->pop);
}

int bench_micro(const char *policy, const char *profile, unsigned depth,
		uint64_t seed, struct bench_micro_result *out)
{
	struct micro m = { .rng = seed };
	uint64_t iters = 4ull * depth, t_end, i;
	unsigned d;
	int rc;

	if (iters < MICRO_ITER_MIN)
		iters = MICRO_ITER_MIN;
	if (iters > MICRO_ITER_MAX)
		iters = MICRO_ITER_MAX;
	rc = micro_init(&m, policy, profile, depth, iters);
	if (rc < 0)
		goto out;
	for (d = 0; d < depth; d++) {
		rc = m.ops->insert(m.state, fresh(&m), &m.ctx);
		if (rc < 0)
			goto out;
	}
	m.clock_ns = clock_cost();
	/* Slow policies at large depths stop early rather than run for
	 * minutes; the figures are per operation either way. */
	t_end = tool_now_ns() + MICRO_BUDGET_NS;
	for (i = 0; i < iters; i++) {
		if ((i & 1023) == 1023 && tool_now_ns() > t_end)
			break;
		rc = timed_pop(&m);
		if (rc == 0)
			rc = timed_insert(&m);
		if (rc < 0)
			goto out;
	}
	memset(out, 0, sizeof(*out));
	out->iterations = i;
	out->insert_ns_mean = i ? m.ins_sum / (double)i : 0;
	out->insert_ns_p99 = (double)iosched__hist_quantile(m.ins, 0.99);
	out->dispatch_ns_mean = i ? m.pop_sum / (double)i : 0;
out:
	micro_fini(&m);
	return rc;
}
