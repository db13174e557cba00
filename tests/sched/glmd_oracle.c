/*
 * Textbook GLMD for the tests: the queue is a plain array, and every
 * insertion tries each position by timing the whole queue from the head,
 * as the GLMD paper describes it: the request takes its SCAN (C-LOOK)
 * slot unless it would miss its deadline there; then it moves to the first
 * position where it keeps its deadline with the lowest score (missed
 * deadlines weighed in service time, see iosched_glmd.c, plus the queue's
 * total service time), if that is lower than the slot's.  Slow on purpose: it is the reference the
 * production policy is checked against.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "glmd_oracle.h"

struct oracle {
	struct iosched_req **q;
	size_t n, cap;
};

static uint64_t due(const struct iosched__ctx *ctx, const struct iosched_req *r)
{
	uint64_t m = ctx->knobs ? ctx->knobs->glmd_margin_ns : 0;

	return r->in.deadline_ns > m ? r->in.deadline_ns - m : 0;
}

/* Past its fence (its deadline plus as long again as it was given), an
 * entry may not be passed by a new arrival. */
static bool fenced(const struct iosched__ctx *ctx, const struct iosched_req *q)
{
	uint64_t d = q->in.deadline_ns;
	uint64_t span = d > q->in.submit_ns ? d - q->in.submit_ns : 0;

	return d + span < ctx->now_ns;
}

/* The first position a new arrival may take: after the last fenced entry. */
static size_t floor_of(const struct oracle *o, const struct iosched__ctx *ctx)
{
	size_t i = o->n;

	while (i > 0 && !fenced(ctx, o->q[i - 1]))
		i--;
	return i;
}

/* The C-LOOK slot from @from on: in the head's sweep when r is ahead of
 * the head (the entry before @from, or the device's), else in the next
 * one; before the first entry beyond r, or at the sweep end. */
static size_t clook_slot(const struct oracle *o,
			 const struct iosched__ctx *ctx,
			 const struct iosched_req *r, size_t from)
{
	uint64_t prev = from ? o->q[from - 1]->offset + o->q[from - 1]->len :
			       ctx->head;
	unsigned run = 0, want = r->offset >= prev ? 0 : 1;
	size_t i;

	for (i = from; i < o->n; i++) {
		uint64_t off = o->q[i]->offset;

		if (off < prev) {
			if (run == want)
				return i;
			run++;
		}
		if (run == want && off > r->offset)
			return i;
		prev = off;
	}
	return o->n;
}

/* Times the queue @q (n entries) with @r placed before index @at. */
/* Total service time of the queue as it stands. */
static uint64_t queue_total(const struct oracle *o,
			    const struct iosched__ctx *ctx)
{
	uint64_t total = 0, head = ctx->head;
	size_t i;

	for (i = 0; i < o->n; i++) {
		total += iosched__cost_ns(ctx, head, o->q[i]);
		head = o->q[i]->offset + o->q[i]->len;
	}
	return total;
}

/* Whether a request at or after @at is already running late. */
static bool late_behind(const struct oracle *o, const struct iosched__ctx *ctx,
			size_t at)
{
	uint64_t t = ctx->start_ns, head = ctx->head;
	size_t i;

	for (i = 0; i < o->n; i++) {
		t += iosched__cost_ns(ctx, head, o->q[i]);
		head = o->q[i]->offset + o->q[i]->len;
		if (i >= at && t > due(ctx, o->q[i]))
			return true;
	}
	return false;
}

static void score(const struct oracle *o, const struct iosched__ctx *ctx,
		  struct iosched_req *r, size_t at, uint64_t *misses,
		  uint64_t *total, bool *r_late)
{
	uint64_t t = ctx->start_ns, head = ctx->head;
	size_t i;

	*misses = 0;
	*total = 0;
	for (i = 0; i <= o->n; i++) {
		struct iosched_req *x;
		uint64_t s;

		if (i == at)
			x = r;
		else
			x = o->q[i < at ? i : i - 1];
		s = iosched__cost_ns(ctx, head, x);
		t += s;
		*total += s;
		*misses += t > due(ctx, x);
		if (x == r)
			*r_late = t > due(ctx, x);
		head = x->offset + x->len;
		if (i == o->n)
			break;
	}
}

/* Service time one miss is worth: the knob, or r's cost at its slot. */
static uint64_t miss_unit(const struct oracle *o, const struct iosched__ctx *ctx,
			  const struct iosched_req *r, size_t slot)
{
	uint64_t k = ctx->knobs ? ctx->knobs->glmd_miss_cost_ns : 0;

	if (k >= (UINT64_C(1) << 40))
		return UINT64_C(1) << 40;
	if (k)
		return k;
	k = iosched__cost_ns(ctx, slot ? o->q[slot - 1]->offset +
					       o->q[slot - 1]->len :
					 ctx->head, r);
	return k ? k : 1;
}

static int oracle_insert(void *state, struct iosched_req *r,
			 const struct iosched__ctx *ctx)
{
	struct oracle *o = state;
	uint64_t best_k, m, t, unit, scan_k, base_t;
	size_t best, i, scan, floor;
	bool rmiss;

	if (o->n == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 64;
		struct iosched_req **q = realloc(o->q, ncap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		o->q = q;
		o->cap = ncap;
	}
	floor = floor_of(o, ctx);
	scan = clook_slot(o, ctx, r, floor);
	unit = miss_unit(o, ctx, r, scan);
	score(o, ctx, r, scan, &m, &t, &rmiss);
	scan_k = m * unit + t;
	best = scan;
	best_k = scan_k;
	/* Only a request that misses in SCAN order may move, and only to a
	 * position where it keeps its deadline, delays no request already
	 * running late, and scores lower. */
	base_t = queue_total(o, ctx);
	for (i = floor; rmiss && i <= o->n; i++) {
		bool late;

		score(o, ctx, r, i, &m, &t, &late);
		if (!late && t > base_t && late_behind(o, ctx, i))
			continue;
		if (!late && m * unit + t < best_k) {
			best_k = m * unit + t;
			best = i;
		}
	}
	memmove(&o->q[best + 1], &o->q[best], (o->n - best) * sizeof(o->q[0]));
	o->q[best] = r;
	o->n++;
	return 0;
}

static struct iosched_req *oracle_pop(void *state,
				      const struct iosched__ctx *ctx)
{
	struct oracle *o = state;
	struct iosched_req *r;

	(void)ctx;
	if (o->n == 0)
		return NULL;
	r = o->q[0];
	memmove(&o->q[0], &o->q[1], (o->n - 1) * sizeof(o->q[0]));
	o->n--;
	return r;
}

static int oracle_create(void **state)
{
	*state = calloc(1, sizeof(struct oracle));
	return *state ? 0 : -ENOMEM;
}

static void oracle_destroy(void *state)
{
	struct oracle *o = state;

	free(o->q);
	free(o);
}

const struct iosched__policy_ops glmd_oracle_policy = {
	.name = "glmd-oracle",
	.create = oracle_create,
	.destroy = oracle_destroy,
	.insert = oracle_insert,
	.pop = oracle_pop,
};
