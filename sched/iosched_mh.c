/*
 * The mh policy, a reference point for the deadline policies: Moore and
 * Hodgson's rule for the fewest late jobs on one server, applied to the
 * queue.  Walk the requests in deadline order adding up their costs from
 * the schedule start (ctx->start_ns); whenever the one just placed would
 * finish late, move the longest placed so far to the late set.  What stays
 * is a largest set of requests that can all meet their deadlines, and mh
 * serves it in deadline order, then the late set in deadline order.
 *
 * Costs ignore positions, as the rule assumes: a request costs what
 * iosched__cost_ns() gives it when the head starts a third of the device
 * away.  On a solid-state profile the head plays no part, so this is the
 * request's own cost shared among the lanes.  On a disk it is the expected
 * cost of a random access: a third of the stroke is the mean distance
 * between two uniform random positions, so the seek is the profile's
 * average seek, plus half a revolution, plus the request's own transfer at
 * its zone's rate.  A request's cost is fixed at insert (kept in
 * in.est_service_ns) and never re-evaluated.
 *
 * The walk is incremental.  A request whose (deadline, seq) sorts after
 * every request placed since the last rebuild is one more step of the walk
 * and is placed at once, in O(log n): streams submit in deadline order, so
 * that is the common case even in overload.  Any other insert leaves the
 * plan stale, and the next pop replays the walk over the whole queue
 * (O(n log n)); inserts between two pops share one replay.  Between
 * replays the plan is timed by its own costs: a step tests the current
 * start plus the on-time set's total, and a device that runs slower than
 * the model is noticed at the next replay, not before.
 *
 * State:  on-time set  ->  on[] (deadline order) + heap[] (longest first)
 *         late set     ->  a treap keyed by deadline (iosched_tree.h)
 * A request in the on-time set keeps its heap index in in.slot and its
 * position in on[] in in.key; the late set's treap uses in.prev, in.next,
 * in.slot and in.key as iosched_tree.h says.
 *
 * Invariants:
 *  1. Every queued request is in exactly one of on[] and the late treap.
 *  2. on[head..tail) lists the on-time set in (deadline, seq) order, with
 *     NULL where a request left for the late set; on[] and heap[] hold the
 *     same requests, and sum is the total of their costs.
 *  3. heap[] is a max-heap on (cost, deadline, seq), and heap[i]->in.slot
 *     == i; for r in on[], on[r->in.key - base] == r.
 *  4. Unless stale is set, the two sets are what the walk gives over the
 *     queue in (deadline, seq) order, each step timed against the start
 *     the scheduler reported when the step was taken; last is the greatest
 *     (deadline, seq) stepped over since the last replay.
 *
 * Transitions: mh_insert() steps the walk (or sets stale and parks the
 * request in the late treap); mh_pop() replays the walk if stale, then
 * takes the front of on[], or the late treap's first when on[] is empty.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"
#include "iosched_tree.h"

#define MH_MIN_CAP 64

struct mh {
	struct iosched_req **on;   /* on-time set, deadline order, holes */
	size_t head, tail, on_cap; /* live slice of on[] */
	uint64_t base;		   /* position of on[0] */
	struct iosched_req **heap; /* on-time set, longest first */
	size_t nheap, heap_cap;
	uint64_t sum;		   /* cost of the on-time set */
	struct iosched__tree *late;
	bool stale;
	bool have_last;
	uint64_t last_d, last_seq;
	struct iosched_req **scratch; /* replay's buffer */
	size_t scratch_cap;
};

/* The position-independent cost the header describes. */
static uint64_t mh_cost(const struct iosched__ctx *ctx,
			const struct iosched_req *r)
{
	uint64_t third = iosched_model_capacity(ctx->model) / 3;
	uint64_t head = r->offset >= third ? r->offset - third :
					     r->offset + third;

	return iosched__cost_ns(ctx, head, r);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

/* Deadline order, submission order between equal deadlines. */
static int cmp_due(const struct iosched_req *a, const struct iosched_req *b)
{
	int c = cmp_u64(a->in.deadline_ns, b->in.deadline_ns);

	return c ? c : cmp_u64(a->in.seq, b->in.seq);
}

/* Heap order: the longer first; of two equally long, the later deadline,
 * so a tie drops the request the walk placed last rather than an earlier
 * one (either keeps the count optimal). */
static bool heap_before(const struct iosched_req *a,
			const struct iosched_req *b)
{
	int c = cmp_u64(a->in.est_service_ns, b->in.est_service_ns);

	return c ? c > 0 : cmp_due(a, b) > 0;
}

static void heap_set(struct mh *m, size_t i, struct iosched_req *r)
{
	m->heap[i] = r;
	r->in.slot = (uint32_t)i;
}

static void sift_up(struct mh *m, size_t i)
{
	struct iosched_req *r = m->heap[i];

	while (i > 0 && heap_before(r, m->heap[(i - 1) / 2])) {
		heap_set(m, i, m->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(m, i, r);
}

static void sift_down(struct mh *m, size_t i)
{
	struct iosched_req *r = m->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= m->nheap)
			break;
		if (c + 1 < m->nheap && heap_before(m->heap[c + 1], m->heap[c]))
			c++;
		if (!heap_before(m->heap[c], r))
			break;
		heap_set(m, i, m->heap[c]);
		i = c;
	}
	heap_set(m, i, r);
}

static void heap_remove(struct mh *m, struct iosched_req *r)
{
	size_t i = r->in.slot;
	struct iosched_req *last = m->heap[--m->nheap];

	if (i == m->nheap)
		return;
	heap_set(m, i, last);
	sift_up(m, i);
	sift_down(m, last->in.slot);
}

/* Room for one more entry at the tail of on[] and in heap[]: slides the
 * live slice down over popped entries first, grows only when that frees
 * too little.  Sliding keeps positions (in.key), since base moves too. */
static int reserve(struct mh *m)
{
	size_t live = m->tail - m->head;

	if (m->tail == m->on_cap && m->head > m->on_cap / 2) {
		memmove(m->on, m->on + m->head, live * sizeof(*m->on));
		m->base += m->head;
		m->head = 0;
		m->tail = live;
	}
	if (m->tail == m->on_cap) {
		size_t cap = m->on_cap ? 2 * m->on_cap : MH_MIN_CAP;
		struct iosched_req **on = realloc(m->on, cap * sizeof(*on));

		if (!on)
			return -ENOMEM;
		m->on = on;
		m->on_cap = cap;
	}
	if (m->nheap == m->heap_cap) {
		size_t cap = m->heap_cap ? 2 * m->heap_cap : MH_MIN_CAP;
		struct iosched_req **h = realloc(m->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		m->heap = h;
		m->heap_cap = cap;
	}
	return 0;
}

static void to_late(struct mh *m, struct iosched_req *r)
{
	r->in.key = r->in.deadline_ns;
	iosched__tree_insert(m->late, r);
}

/*
 * One step of the walk: @r joins the on-time set at its end; if it would
 * finish late, the longest member leaves for the late set.  The caller has
 * reserved room.
 */
static void step(struct mh *m, struct iosched_req *r, uint64_t start)
{
	struct iosched_req *x;

	r->in.key = m->base + m->tail;
	m->on[m->tail++] = r;
	m->heap[m->nheap++] = r;
	sift_up(m, m->nheap - 1);
	m->sum += r->in.est_service_ns;
	m->have_last = true;
	m->last_d = r->in.deadline_ns;
	m->last_seq = r->in.seq;
	if (start + m->sum <= r->in.deadline_ns)
		return;
	x = m->heap[0];
	heap_remove(m, x);
	m->on[x->in.key - m->base] = NULL;
	m->sum -= x->in.est_service_ns;
	to_late(m, x);
}

/* Grows the replay buffer to hold two copies of the queue. */
static int reserve_scratch(struct mh *m, size_t n)
{
	struct iosched_req **b;

	if (2 * n <= m->scratch_cap)
		return 0;
	b = realloc(m->scratch, 2 * n * sizeof(*b));
	if (!b)
		return -ENOMEM;
	m->scratch = b;
	m->scratch_cap = 2 * n;
	return 0;
}

/*
 * Replays the walk over the whole queue from @start.  Both sets are
 * already in deadline order, so merging them is linear; the walk costs
 * O(log n) per request for the heap.  On -ENOMEM the plan stays stale and
 * the pop falls back to the sets as they stand, which still hold every
 * request.
 */
static int replay(struct mh *m, uint64_t start)
{
	size_t n = m->nheap + m->late->n, nl, no = 0, i, j, k;
	struct iosched_req **all, **lt, **ot;

	if (reserve_scratch(m, n) < 0)
		return -ENOMEM;
	all = m->scratch;
	lt = all + n;
	nl = iosched__tree_drain(m->late, lt);
	ot = lt + nl;
	for (i = m->head; i < m->tail; i++)
		if (m->on[i])
			ot[no++] = m->on[i];
	for (i = j = k = 0; i < nl || j < no;)
		all[k++] = j == no || (i < nl && cmp_due(lt[i], ot[j]) < 0) ?
				   lt[i++] :
				   ot[j++];
	m->head = m->tail = 0;
	m->base = 0;
	m->nheap = 0;
	m->sum = 0;
	m->have_last = false;
	for (i = 0; i < k; i++) {
		if (reserve(m) < 0) {
			/* Keep every request: the rest go late, unplanned. */
			for (; i < k; i++)
				to_late(m, all[i]);
			return -ENOMEM;
		}
		step(m, all[i], start);
	}
	m->stale = false;
	return 0;
}

static int mh_create(void **state)
{
	struct mh *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	rc = iosched__tree_new(&m->late, IOSCHED__TREE_BY_KEY);
	if (rc < 0) {
		free(m);
		return rc;
	}
	*state = m;
	return 0;
}

static void mh_destroy(void *state)
{
	struct mh *m = state;

	if (!m)
		return;
	iosched__tree_free(m->late);
	free(m->on);
	free(m->heap);
	free(m->scratch);
	free(m);
}

static int mh_insert(void *state, struct iosched_req *req,
		     const struct iosched__ctx *ctx)
{
	struct mh *m = state;
	int rc;

	req->in.est_service_ns = mh_cost(ctx, req);
	if (m->stale || (m->have_last &&
			 (req->in.deadline_ns < m->last_d ||
			  (req->in.deadline_ns == m->last_d &&
			   req->in.seq < m->last_seq)))) {
		m->stale = true;
		to_late(m, req);
		return 0;
	}
	rc = reserve(m);
	if (rc < 0)
		return rc;
	step(m, req, ctx->start_ns);
	return 0;
}

static struct iosched_req *mh_pop(void *state, const struct iosched__ctx *ctx)
{
	struct mh *m = state;
	struct iosched_req *r;

	if (m->stale)
		replay(m, ctx->start_ns);
	while (m->head < m->tail && !m->on[m->head])
		m->head++;
	if (m->head < m->tail) {
		r = m->on[m->head++];
		heap_remove(m, r);
		m->sum -= r->in.est_service_ns;
	} else {
		r = iosched__tree_pop_first(m->late);
	}
	if (m->nheap == 0 && m->late->n == 0) {
		/* Empty: whatever comes next starts a fresh walk. */
		m->head = m->tail = 0;
		m->base = 0;
		m->have_last = false;
		m->stale = false;
	}
	return r;
}

const struct iosched__policy_ops iosched__policy_mh = {
	.name = "mh",
	.create = mh_create,
	.destroy = mh_destroy,
	.insert = mh_insert,
	.pop = mh_pop,
};
