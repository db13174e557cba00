/*
 * Free allocation units of the data area, the prefetcher that keeps some of
 * them ready, and the deferred frees of deleted data.  The server's loop
 * thread must never scan a large bitmap or wait on a long lock hold to hand
 * a writer its reservation, so a prefetcher thread (the seed paper's
 * free-block prefetcher) moves free runs from the bitmap into a small cache
 * ahead of need, and djmfs__alloc_take() only pops from that cache.  Only
 * when the cache is dry does take() scan the bitmap itself, and that is
 * counted as a stall.  Units of deleted objects may still be read through
 * older snapshots, so they come back through a time-ordered deferred list
 * that djmfs__alloc_tick() drains.
 *
 * Two bitmaps carry the state of every unit:
 *
 *   state        used  out   where else
 *   free          0     0    -
 *   cached        1     0    one run of cache[]
 *   handed out    1     1    -               (take, mark_used)
 *   deferred      1     0    one entry of the deferred heap
 *
 * Transitions: free -> cached (prefetcher), cached -> handed out (take),
 * free -> handed out (take on a stall, mark_used), handed out -> free
 * (put), handed out -> deferred (defer), deferred -> free (tick).
 *
 * Invariants (all under mu):
 *  1. A unit is in exactly one of {bitmap free, cache, handed out,
 *     deferred}: bm_free + cached + deferred + handed out == n_aus.
 *  2. bm_free counts the zero bits of used[] below n_aus; bits of the last
 *     word past n_aus are set, so scans never find them.
 *  3. cached == the sum of cache[].count <= prefetch; every cached run
 *     holds a unit, so n_cache <= cache_cap and the cache never grows.
 *  4. Only units whose out bit is set may be put or deferred; anything
 *     else is a double free, logged and ignored, never applied.
 *  5. The prefetcher claims a run in the same lock hold in which it finds
 *     it, and holds the lock for at most SCAN_CHUNK units of scanning.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_store.h"

#define RUN_CAP 64		/* longest run the prefetcher caches */
#define SCAN_CHUNK (64u * 1024u) /* units scanned per prefetcher lock hold */
#define TAKE_TOPK 64		/* longest runs a stall keeps track of */

struct deferred {
	uint64_t until_ns;
	uint64_t first;
	uint64_t n;
};

struct djmfs__alloc {
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the prefetcher waits here */
	struct djmfs_log log;
	uint64_t n_aus;
	uint64_t n_words;
	uint64_t *used;
	uint64_t *out;
	uint64_t bm_free;
	uint64_t cursor; /* where the next scan starts (rotates) */

	struct djmfs__run *cache;
	uint32_t n_cache;
	uint32_t cache_cap;
	uint64_t cached;
	uint32_t prefetch;

	struct deferred *heap; /* min-heap on until_ns */
	size_t n_heap;
	size_t cap_heap;
	uint64_t deferred;

	uint64_t stalls;
	uint64_t refills;

	pthread_t thread;
	int started;
	int stop;
	int pf_blocked; /* last round found nothing; wait for freed units */
};

/* ------------------------------------------------------------------ */
/* Bitmaps                                                              */
/* ------------------------------------------------------------------ */

static int bit_get(const uint64_t *w, uint64_t i)
{
	return (int)(w[i >> 6] >> (i & 63) & 1);
}

static void bit_set(uint64_t *w, uint64_t i)
{
	w[i >> 6] |= 1ull << (i & 63);
}

static void bit_clr(uint64_t *w, uint64_t i)
{
	w[i >> 6] &= ~(1ull << (i & 63));
}

/* First unit at or after @from whose used bit is 0, or n_aus. */
static uint64_t next_free(const struct djmfs__alloc *a, uint64_t from)
{
	uint64_t i, x;

	if (from >= a->n_aus)
		return a->n_aus;
	i = from >> 6;
	x = ~a->used[i] & (~0ull << (from & 63));
	while (!x) {
		if (++i >= a->n_words)
			return a->n_aus;
		x = ~a->used[i];
	}
	i = i * 64 + (uint64_t)__builtin_ctzll(x);
	return i < a->n_aus ? i : a->n_aus;
}

/* First unit in [from, limit) whose used bit is 1, or @limit. */
static uint64_t next_used(const struct djmfs__alloc *a, uint64_t from,
			  uint64_t limit)
{
	uint64_t i, x;

	if (from >= limit)
		return limit;
	i = from >> 6;
	x = a->used[i] & (~0ull << (from & 63));
	while (!x) {
		if (++i >= a->n_words || i * 64 >= limit)
			return limit;
		x = a->used[i];
	}
	i = i * 64 + (uint64_t)__builtin_ctzll(x);
	return i < limit ? i : limit;
}

/* Start of the free run that @u ends or lies in (@u when u-1 is used), so
 * a scan from a cursor inside a run sees the whole run. */
static uint64_t run_start(const struct djmfs__alloc *a, uint64_t u)
{
	uint64_t i, x;

	if (!u)
		return 0;
	i = (u - 1) >> 6;
	x = a->used[i] & (~0ull >> (63 - ((u - 1) & 63)));
	while (!x) {
		if (!i)
			return 0;
		x = a->used[--i];
	}
	return i * 64 + 64 - (uint64_t)__builtin_clzll(x);
}

/* free -> used (cached or handed out); the range is known free. */
static void claim(struct djmfs__alloc *a, uint64_t first, uint64_t n)
{
	for (uint64_t u = first; u < first + n; u++)
		bit_set(a->used, u);
	a->bm_free -= n;
	a->cursor = first + n < a->n_aus ? first + n : 0;
}

static void mark_out(struct djmfs__alloc *a, struct djmfs__run r)
{
	for (uint64_t u = r.first; u < r.first + r.count; u++)
		bit_set(a->out, u);
}

static void release(struct djmfs__alloc *a, uint64_t first, uint64_t n)
{
	for (uint64_t u = first; u < first + n; u++)
		bit_clr(a->used, u);
	a->bm_free += n;
	a->pf_blocked = 0;
}

/* Wakes the prefetcher when the cache fell below half and it can act. */
static void poke(struct djmfs__alloc *a)
{
	if (a->started && a->cached * 2 < a->prefetch && a->bm_free > 0)
		pthread_cond_signal(&a->wake);
}

/* ------------------------------------------------------------------ */
/* Building the answer of take()                                        */
/* ------------------------------------------------------------------ */

struct take_out {
	struct djmfs__run *runs;
	unsigned max;
	unsigned n;
	uint64_t left; /* units still wanted */
};

/* Adds @r to the answer, extending a run it touches.  Returns 0, or -1
 * when it neither touches one nor fits (the caller keeps the units). */
static int out_add(struct take_out *o, struct djmfs__run r)
{
	for (unsigned i = 0; i < o->n; i++) {
		struct djmfs__run *x = &o->runs[i];

		if (x->first + x->count == r.first &&
		    (uint64_t)x->count + r.count <= UINT32_MAX) {
			x->count += r.count;
			goto added;
		}
		if (r.first + r.count == x->first &&
		    (uint64_t)x->count + r.count <= UINT32_MAX) {
			x->first = r.first;
			x->count += r.count;
			goto added;
		}
	}
	if (o->n == o->max)
		return -1;
	o->runs[o->n++] = r;
added:
	o->left -= r.count;
	return 0;
}

static int run_cmp(const void *x, const void *y)
{
	const struct djmfs__run *p = x, *q = y;

	return p->first < q->first ? -1 : p->first > q->first;
}

/* Orders the answer and joins runs that ended up adjacent. */
static void out_merge(struct take_out *o)
{
	unsigned n = 0;

	qsort(o->runs, o->n, sizeof(*o->runs), run_cmp);
	for (unsigned i = 0; i < o->n; i++) {
		struct djmfs__run *last = n ? &o->runs[n - 1] : NULL;

		if (last && last->first + last->count == o->runs[i].first &&
		    (uint64_t)last->count + o->runs[i].count <= UINT32_MAX)
			last->count += o->runs[i].count;
		else
			o->runs[n++] = o->runs[i];
	}
	o->n = n;
}

/* ------------------------------------------------------------------ */
/* The cache                                                            */
/* ------------------------------------------------------------------ */

/*
 * Index of the cached run to take from next: one that continues the run
 * just added to the answer (so the answer stays contiguous), else the
 * smallest holding all of @want, else the largest.
 */
static uint32_t cache_pick(const struct djmfs__alloc *a, uint64_t want,
			   uint64_t tail)
{
	uint32_t fit = UINT32_MAX, big = 0;

	for (uint32_t i = 0; i < a->n_cache; i++) {
		uint32_t c = a->cache[i].count;

		if (a->cache[i].first == tail)
			return i;
		if (c >= want && (fit == UINT32_MAX || c < a->cache[fit].count))
			fit = i;
		if (c > a->cache[big].count)
			big = i;
	}
	return fit != UINT32_MAX ? fit : big;
}

/* Cached -> handed out, as many units as the answer still wants. */
static void take_from_cache(struct djmfs__alloc *a, struct take_out *o)
{
	uint64_t tail = UINT64_MAX;

	while (o->left && a->n_cache) {
		uint32_t i = cache_pick(a, o->left, tail);
		struct djmfs__run *c = &a->cache[i];
		struct djmfs__run r = { c->first, c->count };

		if (r.count > o->left)
			r.count = (uint32_t)o->left;
		if (out_add(o, r) < 0)
			break;
		mark_out(a, r);
		tail = r.first + r.count;
		a->cached -= r.count;
		c->first += r.count;
		c->count -= r.count;
		if (!c->count)
			*c = a->cache[--a->n_cache];
	}
}

/* ------------------------------------------------------------------ */
/* Stall: take() scans the bitmap itself                                */
/* ------------------------------------------------------------------ */

struct topk {
	struct djmfs__run r[TAKE_TOPK];
	unsigned n;
	unsigned k;
};

static void topk_add(struct topk *t, uint64_t first, uint64_t len)
{
	unsigned min = 0;
	struct djmfs__run r = { first, len > UINT32_MAX ? UINT32_MAX
							 : (uint32_t)len };

	if (t->n < t->k) {
		t->r[t->n++] = r;
		return;
	}
	for (unsigned i = 1; i < t->n; i++)
		if (t->r[i].count < t->r[min].count)
			min = i;
	if (r.count > t->r[min].count)
		t->r[min] = r;
}

static int count_desc(const void *x, const void *y)
{
	const struct djmfs__run *p = x, *q = y;

	return p->count > q->count ? -1 : p->count < q->count;
}

/*
 * Free runs from the cursor round to it again.  The first one that holds
 * all that is wanted is taken alone; otherwise the longest ones are, so
 * the answer uses as few runs as the bitmap allows.
 */
static void take_from_bitmap(struct djmfs__alloc *a, struct take_out *o)
{
	struct topk t = { .n = 0 };
	uint64_t start = run_start(a, a->cursor), pos = start, wrapped = 0;

	t.k = o->max - o->n < TAKE_TOPK ? o->max - o->n : TAKE_TOPK;
	if (!t.k || !a->bm_free)
		return;
	for (;;) {
		uint64_t end = wrapped ? start : a->n_aus;
		uint64_t s = next_free(a, pos), e;

		if (s >= end) {
			if (wrapped || !start)
				break;
			wrapped = 1;
			pos = 0;
			continue;
		}
		/* the second lap stops at the cursor, so no run is seen twice */
		e = next_used(a, s, end);
		if (e - s >= o->left) {
			t.n = 0;
			topk_add(&t, s, o->left);
			break;
		}
		topk_add(&t, s, e - s);
		pos = e;
	}
	qsort(t.r, t.n, sizeof(t.r[0]), count_desc);
	for (unsigned i = 0; i < t.n && o->left; i++) {
		struct djmfs__run r = t.r[i];

		if (r.count > o->left)
			r.count = (uint32_t)o->left;
		if (out_add(o, r) < 0)
			break;
		claim(a, r.first, r.count);
		mark_out(a, r);
	}
}

/* ------------------------------------------------------------------ */
/* The prefetcher                                                       */
/* ------------------------------------------------------------------ */

/*
 * One bounded step of a refill round: scans at most SCAN_CHUNK units from
 * the cursor for a free run of at least @minlen and caches it.  Returns
 * the units the cursor moved over (the caller ends a pass after n_aus).
 */
static uint64_t prefetch_step(struct djmfs__alloc *a, uint64_t minlen,
			      uint64_t *added)
{
	uint64_t from = a->cursor, pos = from;
	uint64_t end = from + SCAN_CHUNK < a->n_aus ? from + SCAN_CHUNK
						     : a->n_aus;
	uint64_t need = a->prefetch - a->cached;
	uint64_t cap = need < RUN_CAP ? need : RUN_CAP;

	if (minlen > cap)
		minlen = cap;
	for (;;) {
		uint64_t s = next_free(a, pos), e;

		if (s >= end) {
			a->cursor = end < a->n_aus ? end : 0;
			return end - from;
		}
		e = next_used(a, s, s + cap < a->n_aus ? s + cap : a->n_aus);
		if (e - s >= minlen) {
			a->cache[a->n_cache].first = s;
			a->cache[a->n_cache].count = (uint32_t)(e - s);
			a->n_cache++;
			a->cached += e - s;
			*added += e - s;
			claim(a, s, e - s);
			return e - from;
		}
		pos = e;
	}
}

/* A refill round: a pass preferring long runs, then one taking any. */
static void prefetch_round(struct djmfs__alloc *a)
{
	uint64_t added = 0;

	a->refills++;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t moved = 0;

		while (!a->stop && a->cached < a->prefetch && a->bm_free &&
		       moved < a->n_aus) {
			moved += prefetch_step(a, pass ? 1 : RUN_CAP, &added);
			/* let take() in between the bounded steps */
			pthread_mutex_unlock(&a->mu);
			pthread_mutex_lock(&a->mu);
		}
	}
	if (!added)
		a->pf_blocked = 1;
}

static void *prefetcher(void *arg)
{
	struct djmfs__alloc *a = arg;

	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		if (a->pf_blocked || a->bm_free == 0 ||
		    a->cached * 2 >= a->prefetch) {
			pthread_cond_wait(&a->wake, &a->mu);
			continue;
		}
		prefetch_round(a);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Deferred frees                                                       */
/* ------------------------------------------------------------------ */

static void heap_swap(struct deferred *h, size_t i, size_t j)
{
	struct deferred t = h[i];

	h[i] = h[j];
	h[j] = t;
}

static int heap_push(struct djmfs__alloc *a, struct deferred d)
{
	size_t i;

	if (a->n_heap == a->cap_heap) {
		size_t cap = a->cap_heap ? a->cap_heap * 2 : 64;
		struct deferred *h = realloc(a->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		a->heap = h;
		a->cap_heap = cap;
	}
	i = a->n_heap++;
	a->heap[i] = d;
	while (i && a->heap[(i - 1) / 2].until_ns > a->heap[i].until_ns) {
		heap_swap(a->heap, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	return 0;
}

static struct deferred heap_pop(struct djmfs__alloc *a)
{
	struct deferred top = a->heap[0];
	size_t i = 0;

	a->heap[0] = a->heap[--a->n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < a->n_heap && a->heap[l].until_ns < a->heap[m].until_ns)
			m = l;
		if (r < a->n_heap && a->heap[r].until_ns < a->heap[m].until_ns)
			m = r;
		if (m == i)
			break;
		heap_swap(a->heap, i, m);
		i = m;
	}
	return top;
}

/* ------------------------------------------------------------------ */
/* Giving units back                                                    */
/* ------------------------------------------------------------------ */

/* What happens to a run of handed-out units leaving a caller's hands. */
typedef void (*give_fn)(struct djmfs__alloc *a, uint64_t first, uint64_t n,
			uint64_t until_ns);

static void give_free(struct djmfs__alloc *a, uint64_t first, uint64_t n,
		      uint64_t until_ns)
{
	(void)until_ns;
	release(a, first, n);
}

static void give_deferred(struct djmfs__alloc *a, uint64_t first, uint64_t n,
			  uint64_t until_ns)
{
	struct deferred d = { until_ns, first, n };
	int err = heap_push(a, d);

	if (err < 0) {
		/* better reusable early than lost: readers are rare */
		djmfs__log(&a->log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_defer: units %llu+%llu freed at once: "
			   "%s", (unsigned long long)first,
			   (unsigned long long)n, strerror(-err));
		release(a, first, n);
		return;
	}
	a->deferred += n;
}

/*
 * Hands every maximal sub-run of [first, first+n) that is handed out to
 * @fn, clearing its out bits; units not handed out (invariant 4) or past
 * the volume are logged once and left alone.
 */
static void give_back(struct djmfs__alloc *a, const char *call,
		      uint64_t first, uint64_t n, give_fn fn, uint64_t until)
{
	uint64_t end, bad = 0, u, s;

	if (first >= a->n_aus || n > a->n_aus - first) {
		djmfs__log(&a->log, DJMFS_LOG_ERROR,
			   "%s: units %llu+%llu outside the %llu units: %s",
			   call, (unsigned long long)first,
			   (unsigned long long)n,
			   (unsigned long long)a->n_aus, strerror(EINVAL));
		return;
	}
	end = first + n;
	for (u = first; u < end;) {
		if (!bit_get(a->out, u)) {
			bad++;
			u++;
			continue;
		}
		for (s = u; u < end && bit_get(a->out, u); u++)
			bit_clr(a->out, u);
		fn(a, s, u - s, until);
	}
	if (bad)
		djmfs__log(&a->log, DJMFS_LOG_ERROR,
			   "%s: %llu of units %llu+%llu were not handed out "
			   "(double free); ignored", call,
			   (unsigned long long)bad, (unsigned long long)first,
			   (unsigned long long)n);
}

/* ------------------------------------------------------------------ */
/* API                                                                  */
/* ------------------------------------------------------------------ */

int djmfs__alloc_new(struct djmfs__alloc **out, uint64_t n_aus,
		     uint32_t prefetch, const struct djmfs_log *log)
{
	struct djmfs__alloc *a;
	int err = -ENOMEM;

	*out = NULL;
	if (!n_aus || n_aus > UINT64_MAX - 64)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (log)
		a->log = *log;
	a->n_aus = n_aus;
	a->n_words = (n_aus + 63) / 64;
	a->bm_free = n_aus;
	a->prefetch = prefetch;
	a->cache_cap = prefetch ? prefetch : 1;
	a->used = calloc(a->n_words, sizeof(uint64_t));
	a->out = calloc(a->n_words, sizeof(uint64_t));
	a->cache = calloc(a->cache_cap, sizeof(*a->cache));
	if (!a->used || !a->out || !a->cache)
		goto err;
	if (n_aus & 63)
		a->used[a->n_words - 1] = ~0ull << (n_aus & 63);
	err = pthread_mutex_init(&a->mu, NULL);
	if (err) {
		err = -err;
		goto err;
	}
	err = pthread_cond_init(&a->wake, NULL);
	if (err) {
		pthread_mutex_destroy(&a->mu);
		err = -err;
		goto err;
	}
	*out = a;
	return 0;
err:
	djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__alloc_new: %s",
		   strerror(-err));
	free(a->used);
	free(a->out);
	free(a->cache);
	free(a);
	return err;
}

void djmfs__alloc_free(struct djmfs__alloc *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->mu);
	if (a->started)
		pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->mu);
	free(a->used);
	free(a->out);
	free(a->cache);
	free(a->heap);
	free(a);
}

uint64_t djmfs__alloc_mark_used(struct djmfs__alloc *a, uint64_t first,
				uint64_t n)
{
	uint64_t dup = 0, end;

	if (first >= a->n_aus || n > a->n_aus - first) {
		djmfs__log(&a->log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_mark_used: units %llu+%llu outside "
			   "the %llu units: %s", (unsigned long long)first,
			   (unsigned long long)n,
			   (unsigned long long)a->n_aus, strerror(EINVAL));
		return 0;
	}
	end = first + n;
	pthread_mutex_lock(&a->mu);
	for (uint64_t u = first; u < end; u++) {
		if (bit_get(a->used, u)) {
			dup++;
			continue;
		}
		bit_set(a->used, u);
		bit_set(a->out, u);
		a->bm_free--;
	}
	pthread_mutex_unlock(&a->mu);
	return dup;
}

int djmfs__alloc_start(struct djmfs__alloc *a)
{
	int err = 0;

	pthread_mutex_lock(&a->mu);
	if (a->started) {
		err = -EALREADY;
		goto out;
	}
	if (!a->prefetch)
		goto out; /* nothing to keep ready: every take scans */
	err = -pthread_create(&a->thread, NULL, prefetcher, a);
	if (err < 0) {
		djmfs__log(&a->log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_start: pthread_create: %s",
			   strerror(-err));
		goto out;
	}
	a->started = 1;
	pthread_cond_signal(&a->wake);
out:
	pthread_mutex_unlock(&a->mu);
	return err;
}

int djmfs__alloc_take(struct djmfs__alloc *a, uint32_t want,
		      struct djmfs__run *runs, unsigned max_runs)
{
	struct take_out o = { runs, max_runs, 0, want };

	if (!want || !max_runs)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	take_from_cache(a, &o);
	if (o.left && o.n < o.max && a->bm_free) {
		a->stalls++;
		take_from_bitmap(a, &o);
	}
	poke(a);
	pthread_mutex_unlock(&a->mu);
	if (!o.n)
		return -ENOSPC;
	out_merge(&o);
	return (int)o.n;
}

void djmfs__alloc_put(struct djmfs__alloc *a, uint64_t first, uint64_t n)
{
	pthread_mutex_lock(&a->mu);
	give_back(a, "djmfs__alloc_put", first, n, give_free, 0);
	poke(a);
	pthread_mutex_unlock(&a->mu);
}

void djmfs__alloc_defer(struct djmfs__alloc *a, uint64_t first, uint64_t n,
			uint64_t until_ns)
{
	pthread_mutex_lock(&a->mu);
	give_back(a, "djmfs__alloc_defer", first, n, give_deferred, until_ns);
	pthread_mutex_unlock(&a->mu);
}

void djmfs__alloc_tick(struct djmfs__alloc *a, uint64_t now_ns)
{
	pthread_mutex_lock(&a->mu);
	while (a->n_heap && a->heap[0].until_ns <= now_ns) {
		struct deferred d = heap_pop(a);

		a->deferred -= d.n;
		release(a, d.first, d.n);
	}
	poke(a);
	pthread_mutex_unlock(&a->mu);
}

void djmfs__alloc_get(const struct djmfs__alloc *a,
		      struct djmfs__alloc_info *out)
{
	/* the lock is the only thing a const handle changes */
	pthread_mutex_t *mu = (pthread_mutex_t *)&a->mu;

	pthread_mutex_lock(mu);
	out->total = a->n_aus;
	out->free = a->bm_free + a->cached;
	out->cached = a->cached;
	out->deferred = a->deferred;
	out->stalls = a->stalls;
	out->refills = a->refills;
	pthread_mutex_unlock(mu);
}
