/*
 * GLMD, greedy least-missed-deadlines: for a new request, try insertion
 * points in the service queue and keep the one that leaves the fewest
 * requests past their deadlines, then the least total service time; the
 * model's service times make requests on the head's path (SCAN order)
 * cheapest, so the queue sweeps the disk while deadlines hold.
 *
 * The textbook form rebuilds and re-times the whole queue for each of the
 * n+1 positions: O(n^2) per insertion.  Here the queue is an unrolled list
 * of chunks (up to GLMD_B = 64 entries each) holding each request's estimated
 * completion time; inserting at position i delays everything behind it by
 * the same delta, so a chunk-wide lazy shift keeps times exact, and the
 * number of requests pushed past their deadline is a count of slacks in
 * [0, delta) — answered per chunk from its slack range and, when needed, a
 * lazily sorted copy of its slacks.
 *
 * Candidate positions: with up to `glmd_exact_max` requests queued every
 * position is tried, and the choice is the textbook's (the test suite
 * checks this against an O(n^2) oracle).  Beyond that only the positions
 * that can win are tried: the tail, the head, the latest position at which
 * the request still meets its deadline, and the SCAN slot of the request in
 * each of the first `glmd_runs` ascending sweeps of the queue.  The suite
 * checks that this pruning stays within 2 % of the oracle's misses over a
 * simulation sweep.
 *
 * Beside the paper's rule (doc/sched.md, "What GLMD does", gives the
 * measurements behind each):
 *  - a request waiting past its fence (deadline + the time it was given)
 *    is passed by no new arrival, so no sweep goes on forever ahead of it;
 *  - requests without a caller deadline wait in their own queue (g->be)
 *    for idle time, or until their best-effort time is up;
 *  - at each dispatch one queued request now expected late, which could
 *    still keep its deadline, is placed again (a re-plan), passing only
 *    requests given longer to finish and pushing none of them late;
 *  - on a device where position costs nothing the queue is deadline order
 *    (g->edf), and a request that cannot keep its deadline even if served
 *    at once steps aside (g->lost) for those that still can.
 *
 * Invariants:
 *  1. Absolute estimated completion of entry e in chunk ch is
 *     e.c + ch->lazy + g->shift; it is non-decreasing along the queue.
 *  2. e.svc is the entry's cost given the entry before it (or the head).
 *  3. raw_min/raw_max bound (e.d - e.c) over the chunk; sorted[] holds those
 *     values in order unless dirty is set.
 *  4. No chunk is empty; the sum of chunk sizes is g->n.
 *  5. No entry stands after a new arrival that came while the entry was
 *     past its fence (late_floor).
 *  6. At most one of {chunk queue, g->edf + g->lost} holds requests: the
 *     mode follows the model when the queue empties, not before.
 *  7. f_min and span_min bound e.f and e.span over the chunk.
 *  8. Outside replan_late, g->replanning is false.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"
#include "iosched_tree.h"

#define GLMD_B 64
#define GLMD_MAX_RUNS 16
#define GLMD_SORT_AFTER 4
#define GLMD_REPLAN_CHUNKS 2
/* Bits of in.flags the core leaves to the policy: how often the entry
 * was placed again; past GLMD_REPLAN_MAX it is not re-planned again. */
#define GLMD_F_REPLAN_SHIFT 8
#define GLMD_F_REPLAN_MASK (0x3u << GLMD_F_REPLAN_SHIFT)
#define GLMD_REPLAN_MAX 3u
#define GLMD_REPLAN_REVS 1
#define GLMD_UNIT_MAX (INT64_C(1) << 40) /* ~18 min: misses come first */

struct glmd_ent {
	struct iosched_req *req;
	uint64_t off, end;
	int64_t c;   /* completion, before the chunk's lazy and global shift */
	int64_t d;   /* deadline */
	int64_t f;   /* fence: past it, no later arrival may pass the entry */
	int64_t span; /* deadline - submission: the time it was given */
	int64_t svc; /* cost given the predecessor */
};

struct glmd_chunk {
	unsigned n;
	unsigned desc; /* positions whose offset is below their predecessor's */
	bool dirty;
	unsigned dirty_queries; /* linear counts since the last change */
	int64_t lazy;
	int64_t raw_min, raw_max;
	int64_t f_min; /* earliest fence in the chunk */
	int64_t span_min; /* shortest time given to any entry to finish */
	struct glmd_ent e[GLMD_B];
	int64_t sorted[GLMD_B];
};

/* A position: before entry k of chunk ci (k == n only in the last chunk). */
struct glmd_pos {
	size_t ci;
	unsigned k;
};

struct glmd {
	struct glmd_chunk **ch;
	size_t nch, cap;
	size_t n;
	int64_t shift;
	/* Deadline order, for a device where position costs nothing, and
	 * the requests of that order that can no longer keep theirs. */
	struct iosched__tree *edf;
	struct iosched__tree *lost;
	/* Requests the caller gave no deadline (an export, a copy), oldest
	 * first: they take the disk only where no deadline needs it. */
	struct iosched__tree *be;
	/* A chunk kept in hand so that a re-plan, which takes a request out
	 * before it knows where it goes, can always put it back. */
	struct glmd_chunk *spare;
	/* Placing again an entry the plan now expects late: only a move
	 * that pushes no other entry late is taken (see replan_late). */
	bool replanning;
	struct glmd_pos replan_from; /* where the entry stood */
	int64_t replan_pass_span;    /* it may pass only spans this long */
};


struct glmd_choice {
	struct glmd_pos pos;
	int64_t dmiss;	/* change in the number of missed deadlines */
	int64_t delta;	/* change in total service time */
	int64_t s_r;	/* cost of the new request at this position */
	int64_t s_next; /* new cost of the entry after it */
	int64_t c_abs;	/* its estimated completion */
	int64_t key;	/* dmiss * unit + delta: lower is better */
	bool valid;
};

/* The deadline GLMD plans against: the caller's, less the reserve. */
static int64_t due(const struct iosched__ctx *ctx, const struct iosched_req *r)
{
	uint64_t m = ctx->knobs ? ctx->knobs->glmd_margin_ns : 0;

	return r->in.deadline_ns > m ? (int64_t)(r->in.deadline_ns - m) : 0;
}

/*
 * Slack a re-planning move must leave every entry it delays: what the
 * plan cannot see, chiefly rotational waits that run long, must not turn
 * a move that looked free into misses.
 */
static int64_t replan_reserve(const struct iosched__ctx *ctx)
{
	return (int64_t)(ctx->model->revolution_ns * GLMD_REPLAN_REVS);
}

/*
 * Whether an entry placed again at @p passes only entries that were given
 * at least twice its time to finish (replan_pass_span): a re-plan trades
 * a short deadline against long ones, where GLMD can win.  Passing
 * entries of its own kind (another stream's read of the same period)
 * only moves lateness from one to the other, and the two seeks the move
 * adds are paid by the next sweep: allowed, such moves on the uniform
 * load missed 2.2 times as often as SCAN at 32 streams on hdd-7200.
 */
static bool may_pass(const struct glmd *g, struct glmd_pos p)
{
	struct glmd_pos end = g->replan_from;
	size_t ci;
	unsigned k;

	for (ci = p.ci; ci < g->nch && ci <= end.ci; ci++) {
		const struct glmd_chunk *ch = g->ch[ci];
		unsigned from = ci == p.ci ? p.k : 0;
		unsigned to = ci == end.ci ? end.k : ch->n;

		if (from == 0 && to == ch->n) {
			if (ch->span_min < g->replan_pass_span)
				return false;
			continue;
		}
		for (k = from; k < to && k < ch->n; k++)
			if (ch->e[k].span < g->replan_pass_span)
				return false;
	}
	return true;
}

/* The deadline plus the time the request was given to meet it. */
static int64_t fence(const struct iosched_req *r)
{
	uint64_t d = r->in.deadline_ns, span;

	span = d > r->in.submit_ns ? d - r->in.submit_ns : 0;
	return d + span < (uint64_t)INT64_MAX ? (int64_t)(d + span) : INT64_MAX;
}

static int64_t abs_c(const struct glmd *g, const struct glmd_chunk *ch,
		     unsigned k)
{
	return ch->e[k].c + ch->lazy + g->shift;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void chunk_refresh(struct glmd_chunk *ch)
{
	unsigned i;

	ch->dirty = true;
	ch->dirty_queries = 0;
	ch->desc = 0;
	ch->raw_min = INT64_MAX;
	ch->raw_max = INT64_MIN;
	ch->f_min = INT64_MAX;
	ch->span_min = INT64_MAX;
	for (i = 0; i < ch->n; i++) {
		int64_t raw = ch->e[i].d - ch->e[i].c;

		if (ch->e[i].span < ch->span_min)
			ch->span_min = ch->e[i].span;
		if (ch->e[i].f < ch->f_min)
			ch->f_min = ch->e[i].f;
		if (raw < ch->raw_min)
			ch->raw_min = raw;
		if (raw > ch->raw_max)
			ch->raw_max = raw;
		if (i > 0 && ch->e[i].off < ch->e[i - 1].off)
			ch->desc++;
	}
}

static void chunk_sort(struct glmd_chunk *ch)
{
	unsigned i;

	for (i = 0; i < ch->n; i++)
		ch->sorted[i] = ch->e[i].d - ch->e[i].c;
	qsort(ch->sorted, ch->n, sizeof(ch->sorted[0]), cmp_i64);
	ch->dirty = false;
}

/* First index in sorted[0..n) whose value is >= v. */
static unsigned lower_bound(const int64_t *a, unsigned n, int64_t v)
{
	unsigned lo = 0, hi = n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Entries of a whole chunk whose absolute slack lies in [lo, hi); lo ==
 * INT64_MIN means no lower bound (and must not be shifted: it would wrap). */
static int64_t chunk_count(const struct glmd *g, struct glmd_chunk *ch,
			   int64_t lo, int64_t hi)
{
	int64_t a = lo == INT64_MIN ? INT64_MIN : lo + ch->lazy + g->shift;
	int64_t b = hi + ch->lazy + g->shift;

	if (ch->raw_max < a || ch->raw_min >= b)
		return 0;
	if (ch->raw_min >= a && ch->raw_max < b)
		return ch->n;
	/* A chunk just changed is usually asked once or twice before it
	 * changes again: count directly, sort only if it keeps being asked. */
	if (ch->dirty && ch->dirty_queries++ < GLMD_SORT_AFTER) {
		int64_t cnt = 0;
		unsigned k;

		for (k = 0; k < ch->n; k++) {
			int64_t raw = ch->e[k].d - ch->e[k].c;

			cnt += raw >= a && raw < b;
		}
		return cnt;
	}
	if (ch->dirty)
		chunk_sort(ch);
	return lower_bound(ch->sorted, ch->n, b) -
	       lower_bound(ch->sorted, ch->n, a);
}

/*
 * Entries from @p on whose absolute slack lies in [lo, hi); stops early
 * once the count exceeds @limit (the caller can no longer win).
 */
static int64_t count_from(const struct glmd *g, struct glmd_pos p,
			  int64_t lo, int64_t hi, int64_t limit)
{
	int64_t cnt = 0;
	size_t ci = p.ci;
	unsigned k;

	if (ci < g->nch) {
		struct glmd_chunk *ch = g->ch[ci];

		for (k = p.k; k < ch->n; k++) {
			int64_t sl = ch->e[k].d - abs_c(g, ch, k);

			cnt += sl >= lo && sl < hi;
		}
	}
	for (ci++; ci < g->nch && cnt <= limit; ci++)
		cnt += chunk_count(g, g->ch[ci], lo, hi);
	return cnt;
}

/* The entry before @p and its chunk, or NULL at the queue's head. */
static const struct glmd_ent *ent_before(const struct glmd *g,
					 struct glmd_pos p,
					 const struct glmd_chunk **chp)
{
	if (p.k > 0) {
		*chp = g->ch[p.ci];
		return &g->ch[p.ci]->e[p.k - 1];
	}
	if (p.ci > 0) {
		*chp = g->ch[p.ci - 1];
		return &(*chp)->e[(*chp)->n - 1];
	}
	*chp = NULL;
	return NULL;
}

static const struct glmd_ent *ent_at(const struct glmd *g, struct glmd_pos p)
{
	if (p.ci >= g->nch)
		return NULL;
	if (p.k < g->ch[p.ci]->n)
		return &g->ch[p.ci]->e[p.k];
	if (p.ci + 1 < g->nch)
		return &g->ch[p.ci + 1]->e[0];
	return NULL;
}

/* Before-entry positions are canonical: (ci, n) only at the very end. */
static struct glmd_pos canon(const struct glmd *g, struct glmd_pos p)
{
	if (p.ci + 1 < g->nch && p.k >= g->ch[p.ci]->n) {
		p.ci++;
		p.k = 0;
	}
	return p;
}

static bool pos_less(struct glmd_pos a, struct glmd_pos b)
{
	return a.ci < b.ci || (a.ci == b.ci && a.k < b.k);
}

static struct glmd_pos tail_pos(const struct glmd *g)
{
	struct glmd_pos p = { 0, 0 };

	if (g->nch) {
		p.ci = g->nch - 1;
		p.k = g->ch[p.ci]->n;
	}
	return p;
}

/*
 * Scores inserting @r at @p (key = missed deadlines * @unit + added
 * service time) and keeps it in @best if its key is lower, or equal at an
 * earlier position.  The count of newly missed deadlines is bounded by what
 * could still beat @best.
 */
static void try_pos(const struct glmd *g, const struct iosched__ctx *ctx,
		    struct iosched_req *r, struct glmd_pos p, int64_t unit,
		    bool rescue_only, struct glmd_choice *best)
{
	const struct glmd_chunk *pch;
	const struct glmd_ent *prev = ent_before(g, p, &pch);
	const struct glmd_ent *next = ent_at(g, p);
	struct glmd_choice c = { .pos = p, .valid = true };
	int64_t prev_c, limit = INT64_MAX;

	prev_c = prev ? prev->c + pch->lazy + g->shift :
			(int64_t)ctx->start_ns;
	c.s_r = (int64_t)iosched__cost_ns(ctx, prev ? prev->end : ctx->head, r);
	c.c_abs = prev_c + c.s_r;
	c.dmiss = c.c_abs > due(ctx, r);
	if (rescue_only && c.dmiss)
		return;
	c.delta = c.s_r;
	if (next) {
		c.s_next = (int64_t)iosched__cost_ns(ctx, r->offset + r->len,
						     next->req);
		c.delta += c.s_next - next->svc;
	}
	/* A rescue may not delay requests already running late: the count
	 * calls that free, but they still need the disk, later and longer. */
	if (rescue_only && c.delta > 0 &&
	    count_from(g, p, INT64_MIN, 0, 0) > 0)
		return;
	if (c.delta > 0) {
		if (best->valid) {
			/* Later requests can only be pushed late here. */
			int64_t room = best->key - c.delta - c.dmiss * unit;

			if (room < 0)
				return;
			limit = room / unit;
		}
		c.dmiss += count_from(g, p, 0, c.delta, limit);
	} else if (c.delta < 0) {
		c.dmiss -= count_from(g, p, c.delta, 0, INT64_MAX);
	}
	if (rescue_only && g->replanning &&
	    (c.dmiss > 0 || !may_pass(g, p) ||
	     (c.delta > 0 &&
	      count_from(g, p, 0, c.delta + replan_reserve(ctx), 0) > 0)))
		return;
	c.key = c.dmiss * unit + c.delta;
	if (!best->valid || c.key < best->key ||
	    (c.key == best->key && pos_less(p, best->pos)))
		*best = c;
}

/* Latest position where @r could still finish by its deadline. */
static struct glmd_pos latest_feasible(const struct glmd *g,
				       const struct iosched__ctx *ctx,
				       const struct iosched_req *r)
{
	int64_t lb = (int64_t)iosched__cost_ns(ctx, r->offset, r);
	int64_t x = due(ctx, r) - lb;
	size_t lo = 0, hi = g->nch;
	struct glmd_pos p;
	struct glmd_chunk *ch;
	unsigned k;

	/* First chunk whose last completion is after x. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		ch = g->ch[mid];
		if (abs_c(g, ch, ch->n - 1) <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == g->nch)
		return tail_pos(g);
	ch = g->ch[lo];
	for (k = 0; k < ch->n && abs_c(g, ch, k) <= x; k++)
		;
	p.ci = lo;
	p.k = k;
	return canon(g, p);
}

/*
 * The SCAN slot of @r in each of the first @runs ascending sweeps: the
 * first entry of the sweep with a larger offset, or the sweep's end.
 * Whole chunks inside a sweep and below r's offset are skipped in O(1).
 */
static unsigned scan_slots(const struct glmd *g, const struct iosched_req *r,
			   unsigned runs, struct glmd_pos *out)
{
	uint64_t prev_off = 0, x = r->offset;
	bool have_prev = false, found = false;
	unsigned nout = 0;
	size_t ci;

	for (ci = 0; ci < g->nch && nout < runs; ci++) {
		const struct glmd_chunk *ch = g->ch[ci];
		bool continues = !have_prev || ch->e[0].off >= prev_off;
		unsigned k;

		if (ch->desc == 0 && continues &&
		    (found || ch->e[ch->n - 1].off <= x)) {
			/* Entirely inside the current sweep, nothing to mark. */
			prev_off = ch->e[ch->n - 1].off;
			have_prev = true;
			continue;
		}
		for (k = 0; k < ch->n && nout < runs; k++) {
			uint64_t off = ch->e[k].off;

			if (have_prev && off < prev_off) {
				/* A sweep ends before k: its slot is its end. */
				if (!found)
					out[nout++] = (struct glmd_pos){ ci, k };
				found = false;
			}
			if (!found && off > x && nout < runs) {
				out[nout++] = (struct glmd_pos){ ci, k };
				found = true;
			}
			prev_off = off;
			have_prev = true;
		}
	}
	if (!found && nout < runs)
		out[nout++] = tail_pos(g);
	return nout;
}

/*
 * The position just after the last entry past its fence, or the head of
 * the queue when none is.  No new request may be placed before it, so an
 * entry that has waited past its deadline by as long again as it was
 * given (its fence) is passed by no later arrival: the sweep it waits in
 * ends and it cannot starve (invariant 5).  Entries merely late, or only
 * expected to be, are not fenced: in overload nearly every entry is, and
 * fencing them turns the queue into arrival order and loses the sweep's
 * throughput when it is needed most (on hdd-7200 at 160 % load, fencing
 * at the deadline itself made glmd miss 2.6 times as often as scan).
 */
static struct glmd_pos late_floor(const struct glmd *g,
				  const struct iosched__ctx *ctx)
{
	int64_t now = (int64_t)ctx->now_ns;
	size_t ci = g->nch;

	while (ci-- > 0) {
		const struct glmd_chunk *ch = g->ch[ci];
		unsigned k;

		if (ch->f_min >= now)
			continue;
		for (k = ch->n; k-- > 0;)
			if (ch->e[k].f < now)
				return (struct glmd_pos){ ci, k + 1 };
	}
	return (struct glmd_pos){ 0, 0 };
}

/*
 * The C-LOOK slot of @r among the entries from @from on: in the sweep the
 * head is on when r lies ahead of it, else in the next sweep; before the
 * first entry of that sweep beyond r, or at the sweep's end.  The head
 * (the entry before @from, or the device's head) counts as the first
 * entry of the first sweep.
 */
static struct glmd_pos clook_slot(const struct glmd *g,
				  const struct iosched__ctx *ctx,
				  const struct iosched_req *r,
				  struct glmd_pos from)
{
	const struct glmd_chunk *pch;
	const struct glmd_ent *pe = ent_before(g, from, &pch);
	uint64_t x = r->offset, prev = pe ? pe->end : ctx->head;
	unsigned run = 0, want = x >= prev ? 0 : 1;
	size_t ci;

	for (ci = from.ci; ci < g->nch; ci++) {
		const struct glmd_chunk *ch = g->ch[ci];
		unsigned k = ci == from.ci ? from.k : 0;

		if (k == 0 && ch->desc == 0 && ch->e[0].off >= prev &&
		    (run < want || ch->e[ch->n - 1].off <= x)) {
			prev = ch->e[ch->n - 1].off;
			continue;
		}
		for (; k < ch->n; k++) {
			uint64_t off = ch->e[k].off;

			if (off < prev) {
				if (run == want)
					return (struct glmd_pos){ ci, k };
				run++;
			}
			if (run == want && off > x)
				return (struct glmd_pos){ ci, k };
			prev = off;
		}
	}
	return tail_pos(g);
}

/*
 * What one missed deadline is worth in service time.  Near capacity every
 * nanosecond of detour is paid later by some request's deadline, so by
 * default a miss is worth one request's own service at its SCAN slot: a
 * detour must save more misses than the requests' worth of disk time it
 * burns.  The knob can make misses absolute (the textbook's order).
 */
static int64_t miss_unit(const struct glmd *g, const struct iosched__ctx *ctx,
			 const struct iosched_req *r, struct glmd_pos sp)
{
	uint64_t k = ctx->knobs ? ctx->knobs->glmd_miss_cost_ns : 0;
	const struct glmd_chunk *pch;
	const struct glmd_ent *prev;

	if (k >= GLMD_UNIT_MAX)
		return GLMD_UNIT_MAX;
	if (k)
		return (int64_t)k;
	prev = ent_before(g, sp, &pch);
	k = iosched__cost_ns(ctx, prev ? prev->end : ctx->head, r);
	return k ? (int64_t)k : 1;
}

/*
 * Picks where @r goes.  The paper's rule: while deadlines hold, serve what
 * lies on the head's path in SCAN order.  So @r takes its C-LOOK slot
 * when the queue keeps every deadline there (its own and those it
 * delays); otherwise it moves to the position where it keeps its own
 * deadline with the lowest key (misses weighed against added service
 * time), if that key is lower than the slot's: a rescue, of @r or of the
 * requests it would have pushed late.  A request that misses everywhere
 * stays in SCAN order: parking it where it harms no one (the tail) only
 * lets it starve while newer requests pass it.  Nothing is placed before
 * the late floor.
 */
static void choose(struct glmd *g, const struct iosched__ctx *ctx,
		   struct iosched_req *r, struct glmd_choice *best)
{
	struct glmd_pos cand[GLMD_MAX_RUNS + 3], sp, floor;
	struct glmd_choice scan;
	unsigned nc = 0, i, runs;
	int64_t unit;

	floor = canon(g, late_floor(g, ctx));
	sp = canon(g, clook_slot(g, ctx, r, floor));
	unit = miss_unit(g, ctx, r, sp);
	memset(&scan, 0, sizeof(scan));
	try_pos(g, ctx, r, sp, unit, false, &scan);
	*best = scan;
	if (!scan.valid || scan.c_abs <= due(ctx, r))
		return; /* r keeps its deadline in SCAN order: nothing to rescue */
	{
		/* Where r could not keep its deadline even first in line,
		 * no move can: spare the search (it dominates in overload). */
		const struct glmd_chunk *pch;
		const struct glmd_ent *pe = ent_before(g, floor, &pch);
		int64_t t0 = pe ? pe->c + pch->lazy + g->shift :
				  (int64_t)ctx->start_ns;

		if (t0 + (int64_t)iosched__cost_ns(ctx, r->offset, r) >
		    due(ctx, r))
			return;
	}
	if (g->n <= (ctx->knobs ? ctx->knobs->glmd_exact_max : 32)) {
		size_t ci;
		unsigned k;

		for (ci = floor.ci; ci < g->nch; ci++)
			for (k = ci == floor.ci ? floor.k : 0;
			     k < g->ch[ci]->n; k++)
				try_pos(g, ctx, r, (struct glmd_pos){ ci, k },
					unit, true, best);
		try_pos(g, ctx, r, tail_pos(g), unit, true, best);
	} else {
		runs = ctx->knobs ? ctx->knobs->glmd_runs : 4;
		if (runs < 1)
			runs = 1;
		if (runs > GLMD_MAX_RUNS)
			runs = GLMD_MAX_RUNS;
		cand[nc++] = tail_pos(g);
		cand[nc++] = latest_feasible(g, ctx, r);
		nc += scan_slots(g, r, runs, cand + nc);
		cand[nc++] = floor;
		for (i = 0; i < nc; i++) {
			struct glmd_pos p = canon(g, cand[i]);

			if (!pos_less(p, floor))
				try_pos(g, ctx, r, p, unit, true, best);
		}
	}
	/* SCAN order stands unless another position scores lower. */
	if (best->key >= scan.key)
		*best = scan;
	else
		r->in.flags |= IOSCHED__F_RESCUED;
}

static struct glmd_chunk *chunk_new(struct glmd *g)
{
	struct glmd_chunk *c = g->spare;

	if (c) {
		g->spare = NULL;
		memset(c, 0, sizeof(*c));
		return c;
	}
	return calloc(1, sizeof(*c));
}

static int chunks_insert_at(struct glmd *g, size_t at, struct glmd_chunk *c)
{
	if (g->nch == g->cap) {
		size_t ncap = g->cap ? g->cap * 2 : 8;
		struct glmd_chunk **n = realloc(g->ch, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		g->ch = n;
		g->cap = ncap;
	}
	memmove(&g->ch[at + 1], &g->ch[at], (g->nch - at) * sizeof(g->ch[0]));
	g->ch[at] = c;
	g->nch++;
	return 0;
}

/* Makes room at @p, splitting a full chunk; @p is adjusted. */
static int make_room(struct glmd *g, struct glmd_pos *p)
{
	struct glmd_chunk *ch, *nc;
	unsigned half = GLMD_B / 2;

	if (g->nch == 0) {
		nc = chunk_new(g);
		if (!nc || chunks_insert_at(g, 0, nc) < 0) {
			free(nc);
			return -ENOMEM;
		}
		p->ci = 0;
		p->k = 0;
		return 0;
	}
	ch = g->ch[p->ci];
	if (ch->n < GLMD_B)
		return 0;
	nc = chunk_new(g);
	if (!nc || chunks_insert_at(g, p->ci + 1, nc) < 0) {
		free(nc);
		return -ENOMEM;
	}
	memcpy(nc->e, &ch->e[half], (ch->n - half) * sizeof(ch->e[0]));
	nc->n = ch->n - half;
	nc->lazy = ch->lazy;
	ch->n = half;
	chunk_refresh(ch);
	chunk_refresh(nc);
	if (p->k > half) {
		p->ci++;
		p->k -= half;
	}
	return 0;
}

static void rebase(struct glmd *g, const struct iosched__ctx *ctx)
{
	struct glmd_chunk *ch;
	int64_t est;

	if (g->n == 0)
		return;
	ch = g->ch[0];
	est = abs_c(g, ch, 0) - ch->e[0].svc;
	g->shift += (int64_t)ctx->start_ns - est;
}

static int place(struct glmd *g, const struct iosched__ctx *ctx,
		 struct iosched_req *r);

static int glmd_insert(void *state, struct iosched_req *r,
		       const struct iosched__ctx *ctx)
{
	struct glmd *g = state;

	/* Without positional cost every order costs the same, and deadline
	 * order misses no deadline that any order keeps (invariant 6). */
	if (g->edf->n > 0 || g->lost->n > 0 ||
	    (g->n == 0 && !iosched__positional(ctx))) {
		r->in.key = r->in.deadline_ns;
		iosched__tree_insert(g->edf, r);
		return 0;
	}
	if (r->deadline_ns == 0) {
		r->in.key = r->in.deadline_ns;
		iosched__tree_insert(g->be, r);
		return 0;
	}
	return place(g, ctx, r);
}

/* Puts @r where choose() says (invariants 1-4 kept).  0 or -ENOMEM. */
static int place(struct glmd *g, const struct iosched__ctx *ctx,
		 struct iosched_req *r)
{
	struct glmd_choice best;
	struct glmd_chunk *ch;
	struct glmd_pos p;
	struct glmd_ent *e;
	unsigned k;
	size_t ci;
	int rc;

	rebase(g, ctx);
	choose(g, ctx, r, &best);
	p = best.pos;
	rc = make_room(g, &p);
	if (rc < 0)
		return rc;
	ch = g->ch[p.ci];
	memmove(&ch->e[p.k + 1], &ch->e[p.k], (ch->n - p.k) * sizeof(ch->e[0]));
	ch->n++;
	e = &ch->e[p.k];
	e->req = r;
	e->off = r->offset;
	e->end = r->offset + r->len;
	e->d = due(ctx, r);
	e->f = fence(r);
	e->span = r->in.deadline_ns > r->in.submit_ns ?
			  (int64_t)(r->in.deadline_ns - r->in.submit_ns) : 0;
	e->svc = best.s_r;
	e->c = best.c_abs - ch->lazy - g->shift;
	r->in.est_service_ns = (uint64_t)best.s_r;
	for (k = p.k + 1; k < ch->n; k++)
		ch->e[k].c += best.delta;
	if (p.k + 1 < ch->n)
		ch->e[p.k + 1].svc = best.s_next;
	else if (p.ci + 1 < g->nch)
		g->ch[p.ci + 1]->e[0].svc = best.s_next;
	for (ci = p.ci + 1; ci < g->nch; ci++)
		g->ch[ci]->lazy += best.delta;
	chunk_refresh(ch);
	g->n++;
	return 0;
}

/* Drops chunk @ci, which has become empty, keeping it as the spare. */
static void chunk_drop(struct glmd *g, size_t ci)
{
	if (g->spare)
		free(g->ch[ci]);
	else
		g->spare = g->ch[ci];
	memmove(&g->ch[ci], &g->ch[ci + 1], (g->nch - ci - 1) * sizeof(g->ch[0]));
	g->nch--;
}

/*
 * Takes the entry at @p out of the queue; what followed it moves up by
 * the time it no longer waits (its own service, and the entry after it
 * now reached from its predecessor).
 */
static struct iosched_req *remove_at(struct glmd *g,
				     const struct iosched__ctx *ctx,
				     struct glmd_pos p)
{
	struct glmd_chunk *ch = g->ch[p.ci];
	const struct glmd_chunk *pch;
	const struct glmd_ent *prev = ent_before(g, p, &pch);
	struct glmd_ent *next = NULL;
	struct iosched_req *r = ch->e[p.k].req;
	int64_t delta = -ch->e[p.k].svc, nsvc;
	unsigned k;
	size_t ci;

	if (p.k + 1 < ch->n)
		next = &ch->e[p.k + 1];
	else if (p.ci + 1 < g->nch)
		next = &g->ch[p.ci + 1]->e[0];
	if (next) {
		nsvc = (int64_t)iosched__cost_ns(ctx, prev ? prev->end :
							     ctx->head,
						 next->req);
		delta += nsvc - next->svc;
		next->svc = nsvc;
	}
	memmove(&ch->e[p.k], &ch->e[p.k + 1],
		(ch->n - p.k - 1) * sizeof(ch->e[0]));
	ch->n--;
	for (k = p.k; k < ch->n; k++)
		ch->e[k].c += delta;
	for (ci = p.ci + 1; ci < g->nch; ci++)
		g->ch[ci]->lazy += delta;
	if (p.ci + 1 < g->nch)
		chunk_refresh(g->ch[p.ci + 1]);
	g->n--;
	if (ch->n == 0)
		chunk_drop(g, p.ci);
	else
		chunk_refresh(ch);
	return r;
}

/*
 * The paper's rule applied again as the plan meets the device: an entry
 * now expected to miss its deadline (rotational waits ran long, requests
 * arrived ahead of it) that could still keep it if served soon is taken
 * out and placed again, so GLMD's search may move it off its SCAN slot.
 * At insertion the plan rarely predicts a miss; the misses come later,
 * and this is where they can still be saved.  One entry per dispatch,
 * searched for in the first GLMD_REPLAN_CHUNKS chunks only, and each
 * entry at most GLMD_REPLAN_MAX times, so the cost per dispatch stays bounded in overload,
 * when most entries are late and none can be saved (placed again at every
 * dispatch, the same hopeless entry cost glmd 2.5-4 times edf's CPU per
 * request at 120 % on hdd-7200).
 */
static struct iosched_req *replan_late(struct glmd *g,
				       const struct iosched__ctx *ctx)
{
	size_t ci;
	unsigned k;
	int rc;

	if (!g->spare && !(g->spare = calloc(1, sizeof(*g->spare))))
		return NULL; /* no room to put it back: keep the plan */
	if (g->nch == g->cap)
		return NULL;
	for (ci = 0; ci < g->nch && ci < GLMD_REPLAN_CHUNKS; ci++) {
		struct glmd_chunk *ch = g->ch[ci];

		if (ch->raw_min >= ch->lazy + g->shift)
			continue; /* nothing in it is expected late */
		for (k = ci == 0 ? 1 : 0; k < ch->n; k++) {
			struct glmd_ent *e = &ch->e[k];
			unsigned tries = (e->req->in.flags & GLMD_F_REPLAN_MASK) >>
					 GLMD_F_REPLAN_SHIFT;
			struct iosched_req *r;

			if (e->d - abs_c(g, ch, k) >= 0 ||
			    tries >= GLMD_REPLAN_MAX)
				continue;
			if ((int64_t)ctx->start_ns +
				    (int64_t)iosched__cost_ns(ctx, ctx->head,
							      e->req) > e->d)
				continue; /* lost even if served first */
			g->replan_pass_span = e->span + 1;
			e->req->in.flags = (e->req->in.flags &
					    ~GLMD_F_REPLAN_MASK) |
					   (tries + 1) << GLMD_F_REPLAN_SHIFT;
			r = remove_at(g, ctx, (struct glmd_pos){ ci, k });
			g->replan_from = canon(g, (struct glmd_pos){ ci, k });
			/* Room is in hand (spare chunk, pointer slot), so
			 * this cannot fail; if it did, serving r at once
			 * is still a place for it. */
			g->replanning = true;
			rc = place(g, ctx, r);
			g->replanning = false;
			return rc < 0 ? r : NULL;
		}
	}
	return NULL;
}

/*
 * Whether the oldest best-effort request may go next: when no deadline
 * waits, or when it has waited its whole best-effort time (so it cannot
 * starve).  Letting it in ahead of deadlines whose slack looks ample
 * does not pay on a disk: the plan cannot see the variance of a sweep's
 * rotational waits, and a long transfer put ahead of the sweep spends
 * the slack that variance needed.  On hdd-7200 with one background
 * reader, admitting it when every deadline kept two revolutions of
 * slack carried 4 streams with no miss; 12 revolutions, 23; only when
 * idle or aged, 33.
 */
static bool be_goes_first(const struct glmd *g, const struct iosched__ctx *ctx,
			  const struct iosched_req *b)
{
	return g->n == 0 || b->in.deadline_ns <= ctx->now_ns;
}

/*
 * Deadline order on a device without positional cost, with the paper's
 * aim (fewest missed deadlines) kept in overload: a request that cannot
 * finish by its deadline even if served now steps aside for those that
 * still can, instead of making them late too (plain EDF's domino effect
 * in overload).  What stepped aside goes when nothing that can still
 * keep its deadline waits, or once past its fence, so it cannot starve.
 * Each request steps aside at most once: O(log n) per request.
 */
static struct iosched_req *pop_deadline_order(struct glmd *g,
					      const struct iosched__ctx *ctx)
{
	struct iosched_req *r, *e;
	int64_t t;

	r = iosched__tree_first(g->lost);
	if (r && fence(r) <= (int64_t)ctx->now_ns)
		return iosched__tree_pop_first(g->lost);
	while ((e = iosched__tree_first(g->edf))) {
		if (e->deadline_ns == 0 ||
		    (int64_t)(ctx->start_ns + iosched__cost_ns(ctx, ctx->head,
							       e)) <=
			    due(ctx, e))
			break;
		iosched__tree_insert(g->lost, iosched__tree_pop_first(g->edf));
	}
	r = iosched__tree_first(g->lost);
	if (!r)
		return e ? iosched__tree_pop_first(g->edf) : NULL;
	if (!e || e->deadline_ns == 0)
		return iosched__tree_pop_first(g->lost);
	/* A lost request also goes when, by the plan, it costs the first
	 * request still on time nothing: "lost" is a forecast, and on a
	 * device faster than its model a forecast lost read that waits for
	 * its fence misses for certain, by up to its whole period (seen in
	 * streamd, 330 ms late at 800 viewers). */
	t = (int64_t)(ctx->start_ns + iosched__cost_ns(ctx, ctx->head, r));
	t += (int64_t)iosched__cost_ns(ctx, r->offset + r->len, e);
	if (t <= due(ctx, e))
		return iosched__tree_pop_first(g->lost);
	return iosched__tree_pop_first(g->edf);
}

static struct iosched_req *glmd_pop(void *state,
				    const struct iosched__ctx *ctx)
{
	struct glmd *g = state;
	struct glmd_chunk *ch;
	struct iosched_req *r;

	if (g->edf->n > 0 || g->lost->n > 0)
		return pop_deadline_order(g, ctx);
	rebase(g, ctx);
	if (g->be->n > 0 &&
	    be_goes_first(g, ctx, iosched__tree_first(g->be)))
		return iosched__tree_pop_first(g->be);
	if (g->n == 0)
		return NULL;
	r = !ctx->knobs || ctx->knobs->glmd_replan ? replan_late(g, ctx) : NULL;
	if (r)
		return r;
	ch = g->ch[0];
	r = ch->e[0].req;
	memmove(&ch->e[0], &ch->e[1], (ch->n - 1) * sizeof(ch->e[0]));
	ch->n--;
	g->n--;
	if (ch->n == 0) {
		free(ch);
		memmove(&g->ch[0], &g->ch[1], (g->nch - 1) * sizeof(g->ch[0]));
		g->nch--;
	} else {
		chunk_refresh(ch);
	}
	return r;
}

static int glmd_create(void **state)
{
	struct glmd *g = calloc(1, sizeof(*g));

	if (!g || iosched__tree_new(&g->edf, IOSCHED__TREE_BY_KEY) < 0 ||
	    iosched__tree_new(&g->lost, IOSCHED__TREE_BY_KEY) < 0 ||
	    iosched__tree_new(&g->be, IOSCHED__TREE_BY_KEY) < 0) {
		if (g) {
			iosched__tree_free(g->edf);
			iosched__tree_free(g->lost);
		}
		free(g);
		return -ENOMEM;
	}
	*state = g;
	return 0;
}

static void glmd_destroy(void *state)
{
	struct glmd *g = state;
	size_t i;

	if (!g)
		return;
	for (i = 0; i < g->nch; i++)
		free(g->ch[i]);
	free(g->ch);
	iosched__tree_free(g->edf);
	iosched__tree_free(g->lost);
	iosched__tree_free(g->be);
	free(g->spare);
	free(g);
}

const struct iosched__policy_ops iosched__policy_glmd = {
	.name = "glmd",
	.create = glmd_create,
	.destroy = glmd_destroy,
	.insert = glmd_insert,
	.pop = glmd_pop,
};
