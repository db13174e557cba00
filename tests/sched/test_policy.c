/*
 * Tests for the fifo, edf, scan and scan-edf queueing policies, driven
 * through their operation tables the way the scheduler core drives them:
 * a hand-built context whose head follows each popped request.  The
 * behaviour every policy shares is checked on mh too (test_mh.c has the
 * rest), which is why the context carries a model.  Small
 * queues check exact orders; 5,000-request runs check each policy's
 * invariant on the popped sequence and, with inserts and pops interleaved,
 * compare every pop against a brute-force reference.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"
#include "iosched_tree.h"

#define NRAND 5000

static const struct iosched__policy_ops *const all_policies[] = {
	&iosched__policy_fifo,
	&iosched__policy_edf,
	&iosched__policy_scan,
	&iosched__policy_scan_edf,
	&iosched__policy_mh,
};

#define NPOLICIES (sizeof(all_policies) / sizeof(all_policies[0]))

/* A small solid-state profile: mh prices requests with it. */
static const char rig_profile[] = "type = ssd\n"
				  "capacity_bytes = 1G\n"
				  "depth = 1\n"
				  "parallelism = 1\n"
				  "overhead_us = 10\n"
				  "read_latency_us = 90\n"
				  "write_latency_us = 90\n"
				  "read_MBps = 100\n"
				  "write_MBps = 100\n";

static struct iosched_model *rig_model;

static void setup(void)
{
	cr_assert_eq(iosched_model_parse(&rig_model, rig_profile,
					 strlen(rig_profile), "test_policy",
					 NULL),
		     0);
}

static void teardown(void)
{
	iosched_model_free(rig_model);
}

TestSuite(policy, .init = setup, .fini = teardown);

struct rig {
	struct iosched_knobs knobs;
	struct iosched__ctx ctx;
	const struct iosched__policy_ops *ops;
	void *st;
};

static void rig_init(struct rig *g, const struct iosched__policy_ops *ops,
		     uint64_t head, uint64_t window_ns)
{
	memset(g, 0, sizeof(*g));
	g->knobs.depth = 1;
	g->knobs.best_effort_ns = IOSCHED__NS_PER_S;
	g->knobs.scan_edf_window_ns = window_ns;
	g->ctx.model = rig_model;
	g->ctx.knobs = &g->knobs;
	g->ctx.head = head;
	g->ctx.lanes = 1;
	g->ops = ops;
	cr_assert_eq(ops->create(&g->st), 0, "%s: create failed", ops->name);
	cr_assert_not_null(g->st);
}

static void rig_fini(struct rig *g)
{
	g->ops->destroy(g->st);
	g->st = NULL;
}

static void req_init(struct iosched_req *r, uint64_t seq, uint64_t offset,
		     uint32_t len, uint64_t deadline_ns)
{
	memset(r, 0, sizeof(*r));
	r->offset = offset;
	r->len = len;
	r->deadline_ns = deadline_ns;
	r->in.seq = seq;
	r->in.deadline_ns = deadline_ns;
}

static void put(struct rig *g, struct iosched_req *r)
{
	cr_assert_eq(g->ops->insert(g->st, r, &g->ctx), 0, "%s: insert failed",
		     g->ops->name);
}

/* Pops one request and moves the head to its end, as dispatch() does. */
static struct iosched_req *take(struct rig *g)
{
	struct iosched_req *r = g->ops->pop(g->st, &g->ctx);

	if (r)
		g->ctx.head = r->offset + r->len;
	return r;
}

/* Pops everything and checks the offsets come out as @want. */
static void expect_offsets(struct rig *g, const uint64_t *want, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct iosched_req *r = take(g);

		cr_assert_not_null(r, "%s: queue empty at pop %zu", g->ops->name,
				   i);
		cr_assert_eq(r->offset, want[i],
			     "%s: pop %zu got offset %llu, want %llu",
			     g->ops->name, i, (unsigned long long)r->offset,
			     (unsigned long long)want[i]);
	}
	cr_assert_null(take(g), "%s: queue not empty after %zu pops",
		       g->ops->name, n);
}

/* ------------------------------------------------------------------ */
/* Common behaviour                                                    */
/* ------------------------------------------------------------------ */

Test(policy, names_are_the_ones_users_type)
{
	cr_assert_str_eq(iosched__policy_fifo.name, "fifo");
	cr_assert_str_eq(iosched__policy_edf.name, "edf");
	cr_assert_str_eq(iosched__policy_scan.name, "scan");
	cr_assert_str_eq(iosched__policy_scan_edf.name, "scan-edf");
	cr_assert_str_eq(iosched__policy_mh.name, "mh");
}

Test(policy, every_policy_pops_null_when_empty)
{
	struct iosched_req r;
	struct rig g;
	size_t i;

	for (i = 0; i < NPOLICIES; i++) {
		rig_init(&g, all_policies[i], 0, 100);
		cr_assert_null(take(&g), "%s", g.ops->name);
		req_init(&r, 1, 4096, 512, 10);
		put(&g, &r);
		cr_assert_eq(take(&g), &r, "%s", g.ops->name);
		cr_assert_null(take(&g), "%s", g.ops->name);
		rig_fini(&g);
	}
}

Test(policy, destroy_with_requests_queued_leaves_them_alone)
{
	struct iosched_req r[3], snap[3];
	struct rig g;
	size_t i, k;

	for (i = 0; i < NPOLICIES; i++) {
		rig_init(&g, all_policies[i], 0, 100);
		for (k = 0; k < 3; k++) {
			req_init(&r[k], k + 1, 1000 * (3 - k), 512, 50 + k);
			put(&g, &r[k]);
		}
		memcpy(snap, r, sizeof(r));
		rig_fini(&g);
		cr_assert_eq(memcmp(snap, r, sizeof(r)), 0, "%s", g.ops->name);
	}
}

/* ------------------------------------------------------------------ */
/* fifo and edf                                                        */
/* ------------------------------------------------------------------ */

Test(policy, fifo_serves_in_submission_order_not_insertion_order)
{
	static const uint64_t seqs[] = { 3, 1, 4, 2, 5 };
	struct iosched_req r[5];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_fifo, 0, 0);
	for (i = 0; i < 5; i++) {
		/* Offsets and deadlines that would reorder any other policy. */
		req_init(&r[i], seqs[i], 8192 - 1024 * i, 512, 100 - i);
		put(&g, &r[i]);
	}
	for (i = 1; i <= 5; i++)
		cr_assert_eq(take(&g)->in.seq, i);
	cr_assert_null(take(&g));
	rig_fini(&g);
}

Test(policy, edf_serves_earliest_deadline_first_and_ties_by_seq)
{
	static const uint64_t dl[] = { 30, 10, 20, 10, 30 };
	static const size_t want[] = { 1, 3, 2, 0, 4 };
	struct iosched_req r[5];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_edf, 0, 0);
	/* Insert the later of the tied pairs first to show seq decides. */
	for (i = 5; i-- > 0;) {
		req_init(&r[i], i + 1, 512 * (i + 1), 512, dl[i]);
		put(&g, &r[i]);
	}
	for (i = 0; i < 5; i++)
		cr_assert_eq(take(&g), &r[want[i]], "pop %zu", i);
	cr_assert_null(take(&g));
	rig_fini(&g);
}

/* ------------------------------------------------------------------ */
/* scan                                                                */
/* ------------------------------------------------------------------ */

Test(policy, scan_sweeps_up_from_the_head_then_wraps_to_the_lowest_offset)
{
	static const uint64_t off[] = { 500, 100, 900, 300, 700 };
	static const uint64_t want[] = { 500, 700, 900, 100, 300 };
	struct iosched_req r[5];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_scan, 400, 0);
	for (i = 0; i < 5; i++) {
		req_init(&r[i], i + 1, off[i], 10, 1000 - i);
		put(&g, &r[i]);
	}
	expect_offsets(&g, want, 5);
	rig_fini(&g);
}

Test(policy, scan_request_exactly_at_the_head_is_served_first)
{
	static const uint64_t want[] = { 400, 410, 100 };
	struct iosched_req r[3];
	struct rig g;

	rig_init(&g, &iosched__policy_scan, 400, 0);
	req_init(&r[0], 1, 100, 10, 0);
	req_init(&r[1], 2, 410, 10, 0);
	req_init(&r[2], 3, 400, 10, 0);
	put(&g, &r[0]);
	put(&g, &r[1]);
	put(&g, &r[2]);
	expect_offsets(&g, want, 3);
	rig_fini(&g);
}

Test(policy, scan_arrivals_join_the_sweep_only_ahead_of_the_head)
{
	static const uint64_t want[] = { 700, 900, 100, 200, 450 };
	struct iosched_req r[6];
	struct rig g;

	rig_init(&g, &iosched__policy_scan, 400, 0);
	req_init(&r[0], 1, 500, 10, 0);
	req_init(&r[1], 2, 900, 10, 0);
	req_init(&r[2], 3, 100, 10, 0);
	put(&g, &r[0]);
	put(&g, &r[1]);
	put(&g, &r[2]);
	cr_assert_eq(take(&g), &r[0]); /* head now 510 */
	req_init(&r[3], 4, 700, 10, 0); /* ahead: this sweep */
	req_init(&r[4], 5, 450, 10, 0); /* behind, though above 400 */
	req_init(&r[5], 6, 200, 10, 0); /* behind */
	put(&g, &r[3]);
	put(&g, &r[4]);
	put(&g, &r[5]);
	expect_offsets(&g, want, 5);
	rig_fini(&g);
}

Test(policy, scan_ties_on_offset_go_by_seq)
{
	struct iosched_req r[3];
	struct rig g;

	rig_init(&g, &iosched__policy_scan, 100, 0);
	req_init(&r[0], 7, 100, 0, 0);
	req_init(&r[1], 3, 100, 0, 0);
	req_init(&r[2], 5, 100, 0, 0);
	put(&g, &r[0]);
	put(&g, &r[1]);
	put(&g, &r[2]);
	cr_assert_eq(take(&g), &r[1]);
	cr_assert_eq(take(&g), &r[2]);
	cr_assert_eq(take(&g), &r[0]);
	rig_fini(&g);
}

Test(policy, scan_follows_the_head_wherever_it_moves)
{
	struct iosched_req r[4];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_scan, 0, 0);
	for (i = 0; i < 4; i++) {
		req_init(&r[i], i + 1, 100 * (i + 1), 10, 0);
		put(&g, &r[i]);
	}
	g.ctx.head = 250;
	cr_assert_eq(g.ops->pop(g.st, &g.ctx), &r[2]);
	g.ctx.head = 0; /* moved back by someone else */
	cr_assert_eq(g.ops->pop(g.st, &g.ctx), &r[0]);
	g.ctx.head = 350;
	cr_assert_eq(g.ops->pop(g.st, &g.ctx), &r[3]);
	g.ctx.head = 500;
	cr_assert_eq(g.ops->pop(g.st, &g.ctx), &r[1]);
	rig_fini(&g);
}

Test(policy, scan_drained_with_a_fixed_head_lists_the_sweep_then_the_wrap)
{
	static const size_t want[] = { 2, 3, 0, 1 };
	struct iosched_req r[4];
	struct rig g;
	size_t i;

	/* What iosched__use_policy() does when it moves a queue. */
	rig_init(&g, &iosched__policy_scan, 250, 0);
	for (i = 0; i < 4; i++) {
		req_init(&r[i], i + 1, 100 * (i + 1), 10, 0);
		put(&g, &r[i]);
	}
	for (i = 0; i < 4; i++)
		cr_assert_eq(g.ops->pop(g.st, &g.ctx), &r[want[i]]);
	cr_assert_null(g.ops->pop(g.st, &g.ctx));
	rig_fini(&g);
}

/* ------------------------------------------------------------------ */
/* scan-edf                                                            */
/* ------------------------------------------------------------------ */

Test(policy, scan_edf_serves_batches_in_deadline_order_each_in_clook_order)
{
	/* Window 100: batches [0,100), [100,200), [200,300). */
	static const uint64_t off[] = { 500, 100, 300, 900, 200, 700, 50 };
	static const uint64_t dl[] = { 150, 120, 180, 50, 20, 250, 210 };
	static const uint64_t want[] = { 900, 200, 300, 500, 100, 700, 50 };
	struct iosched_req r[7];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_scan_edf, 400, 100);
	for (i = 0; i < 7; i++) {
		req_init(&r[i], i + 1, off[i], 10, dl[i]);
		put(&g, &r[i]);
	}
	expect_offsets(&g, want, 7);
	rig_fini(&g);
}

Test(policy, scan_edf_window_zero_is_edf_with_ties_swept_from_the_head)
{
	static const uint64_t off[] = { 500, 100, 700, 200, 400 };
	static const uint64_t dl[] = { 30, 10, 10, 30, 20 };
	static const uint64_t want[] = { 700, 100, 400, 500, 200 };
	struct iosched_req r[5];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_scan_edf, 300, 0);
	for (i = 0; i < 5; i++) {
		req_init(&r[i], i + 1, off[i], 10, dl[i]);
		put(&g, &r[i]);
	}
	expect_offsets(&g, want, 5);
	rig_fini(&g);
}

Test(policy, scan_edf_earlier_batch_arriving_mid_sweep_goes_next)
{
	static const uint64_t off[] = { 100, 300, 600, 800 };
	static const uint64_t want[] = { 700, 800, 600 };
	struct iosched_req r[5];
	struct rig g;
	size_t i;

	rig_init(&g, &iosched__policy_scan_edf, 0, 100);
	for (i = 0; i < 4; i++) {
		req_init(&r[i], i + 1, off[i], 10, 150 + i);
		put(&g, &r[i]);
	}
	cr_assert_eq(take(&g), &r[0]);
	cr_assert_eq(take(&g), &r[1]); /* head 310 */
	req_init(&r[4], 5, 700, 10, 90);
	put(&g, &r[4]);
	/* The urgent request first; its batch then resumes from the head
	 * that request left (710), so 600 now waits for the wrap. */
	expect_offsets(&g, want, 3);
	rig_fini(&g);
}

Test(policy, scan_edf_window_change_keeps_batches_in_deadline_order)
{
	static const uint64_t want[] = { 500, 900, 100 };
	struct iosched_req r[3];
	struct rig g;

	rig_init(&g, &iosched__policy_scan_edf, 0, 100);
	req_init(&r[0], 1, 900, 10, 950);
	req_init(&r[1], 2, 100, 10, 960);
	put(&g, &r[0]);
	put(&g, &r[1]);
	g.knobs.scan_edf_window_ns = 10;
	req_init(&r[2], 3, 500, 10, 500);
	put(&g, &r[2]);
	/* Batch [500,510) under the new window precedes [900,1000) under the
	 * old one; the older batch keeps its members together. */
	expect_offsets(&g, want, 3);
	rig_fini(&g);
}

/* ------------------------------------------------------------------ */
/* Randomized: invariants over 5,000 requests                          */
/* ------------------------------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* 0..n-1 in a random order. */
static void shuffle(size_t *a, size_t n, uint64_t *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		a[i] = i;
	for (i = n; i > 1; i--) {
		size_t j = rnd(s) % i, t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

struct bulk {
	struct iosched_req *r;
	size_t *perm;
	uint64_t seed;
};

static void bulk_init(struct bulk *b, uint64_t seed)
{
	b->r = calloc(NRAND, sizeof(*b->r));
	b->perm = calloc(NRAND, sizeof(*b->perm));
	cr_assert(b->r && b->perm);
	b->seed = seed;
	shuffle(b->perm, NRAND, &b->seed);
}

static void bulk_fini(struct bulk *b)
{
	free(b->r);
	free(b->perm);
}

Test(policy, random_fifo_pops_every_request_in_seq_order)
{
	struct bulk b;
	struct rig g;
	size_t i;

	bulk_init(&b, 11);
	rig_init(&g, &iosched__policy_fifo, 0, 0);
	for (i = 0; i < NRAND; i++) {
		req_init(&b.r[i], b.perm[i] + 1, rnd(&b.seed) % (1u << 30),
			 512, rnd(&b.seed) % 1000);
		put(&g, &b.r[i]);
	}
	for (i = 0; i < NRAND; i++)
		cr_assert_eq(take(&g)->in.seq, i + 1);
	cr_assert_null(take(&g));
	rig_fini(&g);
	bulk_fini(&b);
}

Test(policy, random_edf_deadlines_never_decrease_and_ties_keep_seq_order)
{
	struct iosched_req *prev = NULL, *r;
	struct bulk b;
	struct rig g;
	size_t i;

	bulk_init(&b, 12);
	rig_init(&g, &iosched__policy_edf, 0, 0);
	for (i = 0; i < NRAND; i++) {
		/* 500 distinct deadlines: plenty of ties. */
		req_init(&b.r[i], b.perm[i] + 1, rnd(&b.seed) % (1u << 30),
			 512, rnd(&b.seed) % 500);
		put(&g, &b.r[i]);
	}
	for (i = 0; i < NRAND; i++, prev = r) {
		r = take(&g);
		cr_assert_not_null(r);
		if (!prev)
			continue;
		cr_assert_geq(r->in.deadline_ns, prev->in.deadline_ns);
		if (r->in.deadline_ns == prev->in.deadline_ns)
			cr_assert_gt(r->in.seq, prev->in.seq);
	}
	cr_assert_null(take(&g));
	rig_fini(&g);
	bulk_fini(&b);
}

/*
 * Pops @n requests and checks C-LOOK inside runs of equal batch keys: a
 * run is ascending in offset except for at most one wrap, everything
 * before the wrap lies at or past the head the run started from and
 * everything after it below.  With @window set, runs are batches whose
 * start (deadline rounded down to the window) never decreases.
 */
static void check_sweeps(struct rig *g, size_t n, uint64_t window)
{
	uint64_t batch = 0, start = g->ctx.head, prev_off = 0;
	unsigned wraps = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t head = g->ctx.head;
		struct iosched_req *r = take(g);
		uint64_t b;

		cr_assert_not_null(r, "%s: empty at pop %zu", g->ops->name, i);
		b = window ? r->in.deadline_ns / window * window : 0;
		cr_assert_geq(b, batch, "%s: batch went back", g->ops->name);
		if (i == 0 || b != batch) {
			batch = b;
			start = head;
			/* Nothing at or past the head: the run opens wrapped. */
			wraps = r->offset < start;
		} else if (r->offset < prev_off) {
			wraps++;
		}
		cr_assert_leq(wraps, 1, "%s: second wrap at pop %zu",
			      g->ops->name, i);
		if (wraps == 0)
			cr_assert_geq(r->offset, start);
		else
			cr_assert_lt(r->offset, start);
		prev_off = r->offset;
	}
	cr_assert_null(take(g));
}

Test(policy, random_scan_sweeps_up_from_the_head_and_wraps_once)
{
	struct bulk b;
	struct rig g;
	size_t i;

	bulk_init(&b, 13);
	/* Distinct, non-overlapping 4 KiB requests, head mid-way. */
	rig_init(&g, &iosched__policy_scan, (NRAND / 3) * 4096 + 100, 0);
	for (i = 0; i < NRAND; i++) {
		req_init(&b.r[i], i + 1, b.perm[i] * 4096, 4096,
			 rnd(&b.seed) % 1000);
		put(&g, &b.r[i]);
	}
	check_sweeps(&g, NRAND, 0);
	rig_fini(&g);
	bulk_fini(&b);
}

Test(policy, random_scan_edf_serves_batches_in_order_each_wrapping_once)
{
	const uint64_t window = 10000;
	struct bulk b;
	struct rig g;
	size_t i;

	bulk_init(&b, 14);
	rig_init(&g, &iosched__policy_scan_edf, (NRAND / 2) * 4096, window);
	for (i = 0; i < NRAND; i++) {
		/* About 100 batches of 50. */
		req_init(&b.r[i], i + 1, b.perm[i] * 4096, 4096,
			 rnd(&b.seed) % (100 * window));
		put(&g, &b.r[i]);
	}
	check_sweeps(&g, NRAND, window);
	rig_fini(&g);
	bulk_fini(&b);
}

/* Depth of the shared queue's tree, checking its heap order on the way
 * (white box: the ordering tests can't see a lost balance). */
static unsigned tree_depth(const struct iosched_req *t, uint32_t above)
{
	unsigned l, r;

	if (!t)
		return 0;
	cr_assert_leq(t->in.slot, above, "priority above its parent's");
	l = tree_depth(t->in.prev, t->in.slot);
	r = tree_depth(t->in.next, t->in.slot);
	return 1 + (l > r ? l : r);
}

Test(policy, queue_stays_shallow_when_offsets_arrive_sorted)
{
	const struct iosched__tree *h;
	struct bulk b;
	struct rig g;
	size_t i;

	bulk_init(&b, 15);
	rig_init(&g, &iosched__policy_scan, 0, 0);
	for (i = 0; i < NRAND; i++) {
		req_init(&b.r[i], i + 1, i * 4096, 4096, 0);
		put(&g, &b.r[i]);
	}
	h = g.st;
	cr_assert_eq(h->n, NRAND);
	/* log2(5000) is 12.3; a treap's expected depth is about 3x that. */
	cr_assert_lt(tree_depth(h->root, UINT32_MAX), 60);
	for (i = 0; i < NRAND / 2; i++)
		take(&g);
	cr_assert_eq(h->n, NRAND - NRAND / 2);
	cr_assert_lt(tree_depth(h->root, UINT32_MAX), 60);
	rig_fini(&g);
	bulk_fini(&b);
}

/* ------------------------------------------------------------------ */
/* Randomized: interleaved inserts and pops against a reference        */
/* ------------------------------------------------------------------ */

struct rank {
	uint64_t k[4];
};

/*
 * The policies' definitions, written as a sort key that is recomputed
 * for the current head on every pop: the request with the least key goes
 * next.
 */
static struct rank rank_of(const struct iosched__policy_ops *ops,
			   const struct iosched_req *r, uint64_t batch,
			   uint64_t head)
{
	struct rank k = { { 0, 0, 0, r->in.seq } };

	if (ops == &iosched__policy_edf) {
		k.k[0] = r->in.deadline_ns;
	} else if (ops == &iosched__policy_scan ||
		   ops == &iosched__policy_scan_edf) {
		k.k[0] = ops == &iosched__policy_scan ? 0 : batch;
		k.k[1] = r->offset < head; /* behind the head: next sweep */
		k.k[2] = r->offset;
	}
	return k;
}

static int rank_cmp(const struct rank *a, const struct rank *b)
{
	size_t i;

	for (i = 0; i < 4; i++)
		if (a->k[i] != b->k[i])
			return a->k[i] < b->k[i] ? -1 : 1;
	return 0;
}

struct ref {
	size_t *pending; /* indices into the request array */
	uint64_t *batch; /* per request: scan-edf batch at insert time */
	size_t n;
};

/* Removes and returns the index the reference would serve next. */
static size_t ref_pop(struct ref *f, const struct iosched__policy_ops *ops,
		      const struct iosched_req *r, uint64_t head)
{
	size_t i, best = 0, idx;
	struct rank bk = rank_of(ops, &r[f->pending[0]],
				 f->batch[f->pending[0]], head);

	for (i = 1; i < f->n; i++) {
		size_t j = f->pending[i];
		struct rank k = rank_of(ops, &r[j], f->batch[j], head);

		if (rank_cmp(&k, &bk) < 0) {
			bk = k;
			best = i;
		}
	}
	idx = f->pending[best];
	f->pending[best] = f->pending[--f->n];
	return idx;
}

static void run_against_reference(const struct iosched__policy_ops *ops,
				  uint64_t seed)
{
	static const uint64_t windows[] = { 0, 1000, 7000 };
	struct ref f = { 0 };
	struct bulk b;
	struct rig g;
	size_t next = 0, pops = 0;

	bulk_init(&b, seed);
	f.pending = calloc(NRAND, sizeof(*f.pending));
	f.batch = calloc(NRAND, sizeof(*f.batch));
	cr_assert(f.pending && f.batch);
	rig_init(&g, ops, 0, windows[1]);
	while (next < NRAND || f.n > 0) {
		uint64_t x = rnd(&b.seed);

		if (x % 40 == 0) /* the head moved for reasons of its own */
			g.ctx.head = rnd(&b.seed) % (1000 * 512);
		if (x % 97 == 0)
			g.knobs.scan_edf_window_ns = windows[x % 3];
		if (next < NRAND && (f.n == 0 || x % 100 < 55)) {
			struct iosched_req *r = &b.r[next];
			uint64_t d = rnd(&b.seed) % 20000;
			uint64_t w = g.knobs.scan_edf_window_ns;

			/* Overlapping, repeated offsets and tied deadlines. */
			req_init(r, b.perm[next] + 1,
				 (rnd(&b.seed) % 1000) * 512,
				 512 * (1 + rnd(&b.seed) % 8), d);
			f.batch[next] = w ? d - d % w : d;
			put(&g, r);
			f.pending[f.n++] = next++;
		} else {
			uint64_t head = g.ctx.head;
			size_t want = ref_pop(&f, ops, b.r, head);
			struct iosched_req *got = take(&g);

			cr_assert_eq(got, &b.r[want],
				     "%s: pop %zu (head %llu) got seq %llu, "
				     "want seq %llu",
				     ops->name, pops, (unsigned long long)head,
				     got ? (unsigned long long)got->in.seq : 0ull,
				     (unsigned long long)b.r[want].in.seq);
			pops++;
		}
	}
	cr_assert_eq(pops, NRAND);
	cr_assert_null(take(&g));
	rig_fini(&g);
	free(f.pending);
	free(f.batch);
	bulk_fini(&b);
}

Test(policy, random_fifo_interleaving_matches_the_reference)
{
	run_against_reference(&iosched__policy_fifo, 21);
}

Test(policy, random_edf_interleaving_matches_the_reference)
{
	run_against_reference(&iosched__policy_edf, 22);
}

Test(policy, random_scan_interleaving_matches_the_reference)
{
	run_against_reference(&iosched__policy_scan, 23);
}

Test(policy, random_scan_edf_interleaving_matches_the_reference)
{
	run_against_reference(&iosched__policy_scan_edf, 24);
}
