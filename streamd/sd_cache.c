/*
 * The interval cache: bytes of recordings' "data" objects kept in memory
 * while a viewer is expected to need them, so a viewer a few seconds
 * behind another (or behind this node's own recorder) is served from
 * memory instead of reading its own copy from the disk.  Memory is kept
 * in fixed SD_CACHE_BLOCK blocks, aligned to SD_CACHE_BLOCK of the object
 * and DJMFS_IO_ALIGN in memory, named by (ino, object id, block index):
 * DJMFS never reuses an ino on a volume and DATA objects only grow (a
 * byte below a published size never changes), so that name designates
 * the same bytes for good and nothing in here is ever invalidated.  A
 * block holds its first "valid" bytes; at the growing end of a recording
 * it is extended as more arrive, never rewritten.  Whoever puts bytes in
 * vouches that they are published (a completed read of a snapshot, or a
 * recorder's write whose publish completed); whoever takes them bounds
 * the take by what its own snapshot may show.
 *
 * Which blocks stay: interval caching (Dan & Sitaram).  The cache knows
 * the consumers of each object: every player session's next byte, and
 * the end of this node's writer.  Two consecutive consumers form an
 * interval; a block between them will be read by the follower (the one
 * behind), and keeping every block of the interval costs its size in
 * memory and saves the follower's whole stream from the disk.  So blocks
 * are ranked by the size of the interval they lie in: blocks no session
 * is behind (everyone has passed them, or nobody reads the object) go
 * first, then those of the largest intervals; ties go least recently
 * used first.  With a budget this keeps the smallest intervals whole,
 * which maximises the viewers served from memory; a larger interval that
 * does not fit keeps nothing for long (its newest blocks come and go)
 * instead of a fragment that would push a smaller interval out.
 * Intervals are measured in bytes: viewers of one recording move at its
 * rate.  Behind the last follower of a recording this node writes only a
 * tail of SD_CACHE_BEHIND stays (for viewers that start just behind the
 * others); the rest is dropped as the writer moves on, so memory does
 * not grow with the recording until the budget.
 *
 * Costs.  Lookups, puts and moves are a hash probe or O(1).  Consumers
 * of an object are sorted by position when a block's interval is needed
 * (a new block, an eviction pass), then it is two binary searches.
 * Eviction runs only when a put takes the cache over its budget, and
 * then ranks every block once and frees down to SD_CACHE_LOW of the
 * budget, so its cost is spread over the puts that filled that slack.
 *
 * Invariants (all under c->mu, a leaf lock: nothing is called while it
 * is held, so it may be taken under any lock of the daemon):
 *  1. A block is in the hash ("indexed") until evicted; bytes [0, valid)
 *     never change once there (they are extended only, under c->mu).
 *  2. A block's memory is freed only once it is evicted AND its refs are
 *     zero; c->bytes counts every block not yet freed (SD_CACHE_BLOCK
 *     each, whatever its valid length), so a referenced block evicted
 *     still counts until its last holder lets it go.
 *  3. o->cons holds the object's consumers, each knowing its place
 *     (at); unless o->dirty it is sorted by pos.  A move only sets
 *     dirty (hundreds of sessions a few seconds apart would otherwise
 *     pass each other on every read), and whoever needs the order sorts
 *     first (cons_sort).  An object lives while it has blocks or
 *     consumers.
 *
 *   call              effect
 *   sd_cache_put      bytes extend or create blocks; a writer's new head
 *                     block drops what every session passed (trim_behind);
 *                     over budget: evict
 *   sd_cache_take     a reference to bytes of one block (a hit), or
 *                     counts a miss
 *   sd_cache_read     the same, copied out
 *   sd_cache_get      a reference to one block (sd_cache_block_put)
 *   sd_cache_join     a consumer at a position (session, writer)
 *   sd_cache_move     it moved (the order is restored when needed)
 *   sd_cache_leave    it left; its object may go
 *   sd_cache_published  the local writer's end (its published size)
 *   sd_cache_held_share what share of a range's blocks is held (a new
 *                     reader's expected hits, for admission)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

/* Eviction frees down to this share (in 1/64) of the budget. */
#define SD_CACHE_LOW 60
/* Bytes a recording this node writes keeps behind its last follower. */
#define SD_CACHE_BEHIND (8ull << 20)
/* A consumer's hit share is over about this many recent bytes. */
#define SD_CACHE_RECENT (16ull << 20)

struct cobj;

struct sd_cache_block {
	struct sd_cache_block *hnext;
	struct cobj *o;
	uint64_t idx;
	uint8_t *data;
	uint32_t valid;
	uint32_t refs;
	int indexed;
	uint64_t stamp; /* last put or take, for ties */
};

struct cobj {
	struct cobj *hnext;
	uint64_t ino;
	uint32_t id;
	struct sd_cache_cons **cons; /* sorted by pos unless dirty:
					invariant 3 */
	size_t ncons, capcons;
	int dirty;
	struct sd_cache_cons *writer; /* this node's writer, or NULL */
	size_t nblocks;
	uint64_t head_idx;	/* the newest block a put reached */
	uint64_t trim_from;	/* blocks below it were trimmed (behind) */
};

struct sd_cache_cons {
	struct sd_cache *c;
	struct cobj *o;
	uint64_t pos;
	size_t at;
	int writer;
	uint64_t hit_bytes, miss_bytes; /* recent: halved past RECENT */
};

struct rank {
	struct sd_cache_block *b;
	int passed;	/* no session behind it */
	uint64_t size;	/* its interval */
	uint64_t stamp;
};

struct sd_cache {
	pthread_mutex_t mu;
	struct sd_logger log;
	uint64_t budget;
	uint64_t bytes;		/* invariant 2 */
	uint64_t stamp;
	struct sd_cache_block **bh;
	size_t nbh, nblocks;
	struct cobj **oh;
	size_t noh;
	struct rank *rk;
	size_t rk_cap;
	struct sd_cache_stats st;
	struct sd_cache_block *spare;	/* released blocks, by hnext */
	size_t nspare;
};

/* Released blocks kept for the next put.  A cache at its budget frees
 * one block for each it takes; handing those back to malloc left holes
 * in the heap that the daemon's small, long-lived allocations then
 * pinned, and the resident size grew by megabytes a minute with nothing
 * leaked.  A few spares absorb the churn. */
#define SD_CACHE_SPARES 32

#define clog_(c, lvl, ...) sd__log(&(c)->log, lvl, __VA_ARGS__)

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static size_t obj_hash(const struct sd_cache *c, uint64_t ino, uint32_t id)
{
	return (size_t)(mix(ino * 31 + id) & (c->noh - 1));
}

static size_t blk_hash(size_t n, uint64_t ino, uint32_t id, uint64_t idx)
{
	return (size_t)(mix(mix(ino * 31 + id) + idx) & (n - 1));
}

/* ------------------------------------------------------------------ */
/* Objects and their consumers                                         */
/* ------------------------------------------------------------------ */

static struct cobj *obj_find(struct sd_cache *c, uint64_t ino, uint32_t id)
{
	struct cobj *o = c->oh[obj_hash(c, ino, id)];

	while (o && (o->ino != ino || o->id != id))
		o = o->hnext;
	return o;
}

static struct cobj *obj_get(struct sd_cache *c, uint64_t ino, uint32_t id)
{
	struct cobj *o = obj_find(c, ino, id);
	size_t h;

	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->ino = ino;
	o->id = id;
	h = obj_hash(c, ino, id);
	o->hnext = c->oh[h];
	c->oh[h] = o;
	return o;
}

/* Invariant 3: an object with no blocks and no consumers goes. */
static void obj_maybe_free(struct sd_cache *c, struct cobj *o)
{
	struct cobj **pp = &c->oh[obj_hash(c, o->ino, o->id)];

	if (o->nblocks || o->ncons)
		return;
	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	free(o->cons);
	free(o);
}

static int cons_cmp(const void *x, const void *y)
{
	const struct sd_cache_cons *a = *(struct sd_cache_cons *const *)x;
	const struct sd_cache_cons *b = *(struct sd_cache_cons *const *)y;

	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Invariant 3: the order, when a move or a join spoilt it. */
static void cons_sort(struct cobj *o)
{
	if (!o->dirty)
		return;
	qsort(o->cons, o->ncons, sizeof(*o->cons), cons_cmp);
	for (size_t i = 0; i < o->ncons; i++)
		o->cons[i]->at = i;
	o->dirty = 0;
}

/* The first consumer whose pos is above @pos (o->ncons if none). */
static size_t cons_above(const struct cobj *o, uint64_t pos)
{
	size_t lo = 0, hi = o->ncons;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->cons[mid]->pos <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int sd_cache_join(struct sd_cache *c, uint64_t ino, uint32_t id,
		  uint64_t pos, int writer, struct sd_cache_cons **out)
{
	struct sd_cache_cons *k;
	struct cobj *o;

	if (!c || !out)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->c = c;
	k->pos = pos;
	k->writer = !!writer;
	pthread_mutex_lock(&c->mu);
	o = obj_get(c, ino, id);
	if (o && o->ncons == o->capcons) {
		size_t cap = o->capcons ? 2 * o->capcons : 8;
		struct sd_cache_cons **v = realloc(o->cons, cap * sizeof(*v));

		if (v) {
			o->cons = v;
			o->capcons = cap;
		}
	}
	if (!o || o->ncons == o->capcons) {
		if (o)
			obj_maybe_free(c, o);
		pthread_mutex_unlock(&c->mu);
		free(k);
		return -ENOMEM;
	}
	k->o = o;
	k->at = o->ncons;
	if (k->writer)
		o->writer = k;
	o->cons[o->ncons++] = k;
	o->dirty = 1;
	pthread_mutex_unlock(&c->mu);
	*out = k;
	return 0;
}

void sd_cache_move(struct sd_cache_cons *k, uint64_t pos)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->c->mu);
	if (k->pos != pos) {
		k->pos = pos;
		k->o->dirty = 1;
	}
	pthread_mutex_unlock(&k->c->mu);
}

void sd_cache_leave(struct sd_cache_cons *k)
{
	struct sd_cache *c;
	struct cobj *o;

	if (!k)
		return;
	c = k->c;
	o = k->o;
	pthread_mutex_lock(&c->mu);
	/* The last one takes its place: the order may go (invariant 3). */
	o->cons[k->at] = o->cons[o->ncons - 1];
	o->cons[k->at]->at = k->at;
	o->ncons--;
	o->dirty = 1;
	if (o->writer == k)
		o->writer = NULL;
	obj_maybe_free(c, o);
	pthread_mutex_unlock(&c->mu);
	free(k);
}

int sd_cache_published(struct sd_cache_cons *k, uint64_t *end)
{
	int have;

	if (!k || !end)
		return 0;
	pthread_mutex_lock(&k->c->mu);
	have = k->o->writer != NULL;
	if (have)
		*end = k->o->writer->pos;
	pthread_mutex_unlock(&k->c->mu);
	return have;
}

double sd_cache_hit_share(struct sd_cache_cons *k)
{
	double share;
	uint64_t all;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->c->mu);
	all = k->hit_bytes + k->miss_bytes;
	share = all ? (double)k->hit_bytes / (double)all : 0;
	pthread_mutex_unlock(&k->c->mu);
	return share;
}

/* Under c->mu. */
static void cons_count(struct sd_cache_cons *k, uint64_t hit, uint64_t miss)
{
	k->hit_bytes += hit;
	k->miss_bytes += miss;
	if (k->hit_bytes + k->miss_bytes > SD_CACHE_RECENT) {
		k->hit_bytes /= 2;
		k->miss_bytes /= 2;
	}
}

/* ------------------------------------------------------------------ */
/* Blocks                                                              */
/* ------------------------------------------------------------------ */

static struct sd_cache_block *blk_find(struct sd_cache *c,
				       const struct cobj *o, uint64_t idx)
{
	struct sd_cache_block *b = c->bh[blk_hash(c->nbh, o->ino, o->id, idx)];

	while (b && (b->o != o || b->idx != idx))
		b = b->hnext;
	return b;
}

static void blk_link(struct sd_cache_block **bh, size_t n,
		     struct sd_cache_block *b)
{
	size_t h = blk_hash(n, b->o->ino, b->o->id, b->idx);

	b->hnext = bh[h];
	bh[h] = b;
}

/* Doubles the table once it holds twice as many blocks as buckets; a
 * failed allocation only leaves the chains longer. */
static void blk_grow(struct sd_cache *c)
{
	size_t n = c->nbh * 2;
	struct sd_cache_block **bh;

	if (c->nblocks < 2 * c->nbh)
		return;
	bh = calloc(n, sizeof(*bh));
	if (!bh)
		return;
	for (size_t i = 0; i < c->nbh; i++) {
		while (c->bh[i]) {
			struct sd_cache_block *b = c->bh[i];

			c->bh[i] = b->hnext;
			blk_link(bh, n, b);
		}
	}
	free(c->bh);
	c->bh = bh;
	c->nbh = n;
}

static void blk_release(struct sd_cache *c, struct sd_cache_block *b)
{
	struct cobj *o = b->o;

	c->bytes -= SD_CACHE_BLOCK;
	o->nblocks--;
	obj_maybe_free(c, o);
	if (c->nspare < SD_CACHE_SPARES) {
		b->hnext = c->spare;
		c->spare = b;
		c->nspare++;
		return;
	}
	free(b->data);
	free(b);
}

/* Takes @b out of the hash; freed now or by its last holder. */
static void blk_evict(struct sd_cache *c, struct sd_cache_block *b)
{
	struct sd_cache_block **pp =
		&c->bh[blk_hash(c->nbh, b->o->ino, b->o->id, b->idx)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	b->indexed = 0;
	c->nblocks--;
	c->st.evictions++;
	if (!b->refs)
		blk_release(c, b);
}

static struct sd_cache_block *blk_new(struct sd_cache *c, struct cobj *o,
				      uint64_t idx)
{
	struct sd_cache_block *b = c->spare;
	uint8_t *data;

	if (b) {
		c->spare = b->hnext;
		c->nspare--;
		data = b->data;
		memset(b, 0, sizeof(*b));
		b->data = data;
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		if (posix_memalign((void **)&b->data, DJMFS_IO_ALIGN,
				   SD_CACHE_BLOCK)) {
			free(b);
			return NULL;
		}
	}
	b->o = o;
	b->idx = idx;
	b->indexed = 1;
	o->nblocks++;
	c->nblocks++;
	c->bytes += SD_CACHE_BLOCK;
	blk_link(c->bh, c->nbh, b);
	blk_grow(c);
	return b;
}

/* ------------------------------------------------------------------ */
/* Eviction                                                            */
/* ------------------------------------------------------------------ */

/* Under c->mu: where @b stands (see the top: the interval it lies in). */
static void rank_of(struct sd_cache_block *b, struct rank *r)
{
	struct cobj *o = b->o;
	uint64_t end = (b->idx + 1) * SD_CACHE_BLOCK, pred;
	size_t i, j;

	cons_sort(o);
	i = cons_above(o, end - 1);

	r->b = b;
	r->stamp = b->stamp;
	/* The follower: the session nearest behind the block's end (a
	 * writer leads, it follows nobody). */
	while (i > 0 && o->cons[i - 1]->writer)
		i--;
	if (i == 0) {
		r->passed = 1;
		r->size = 0;
		return;
	}
	pred = o->cons[i - 1]->pos;
	j = cons_above(o, pred);
	r->passed = 0;
	r->size = j < o->ncons ? o->cons[j]->pos - pred : end - pred;
}

/* Eviction order: passed blocks, then the largest intervals; the least
 * recently used first among equals. */
static int rank_cmp(const void *x, const void *y)
{
	const struct rank *a = x, *b = y;

	if (a->passed != b->passed)
		return a->passed ? -1 : 1;
	if (a->size != b->size)
		return a->size > b->size ? -1 : 1;
	return a->stamp < b->stamp ? -1 : a->stamp > b->stamp;
}

/* Under c->mu: over budget, frees down to SD_CACHE_LOW/64 of it. */
static void evict(struct sd_cache *c)
{
	uint64_t low = c->budget / 64 * SD_CACHE_LOW;
	size_t n = 0;

	if (c->bytes <= c->budget)
		return;
	if (c->rk_cap < c->nblocks) {
		struct rank *rk = realloc(c->rk, c->nblocks * sizeof(*rk));

		if (!rk) {
			clog_(c, SD_LOG_ERROR, "sd_cache: ranking %zu blocks: "
			      "%s", c->nblocks, strerror(ENOMEM));
			return;
		}
		c->rk = rk;
		c->rk_cap = c->nblocks;
	}
	for (size_t h = 0; h < c->nbh; h++)
		for (struct sd_cache_block *b = c->bh[h]; b; b = b->hnext)
			rank_of(b, &c->rk[n++]);
	qsort(c->rk, n, sizeof(*c->rk), rank_cmp);
	for (size_t i = 0; i < n && c->bytes > low; i++)
		blk_evict(c, c->rk[i].b);
}

/* ------------------------------------------------------------------ */
/* The cache                                                           */
/* ------------------------------------------------------------------ */

int sd_cache_new(struct sd_cache **out, uint64_t budget,
		 const struct sd_logger *log)
{
	struct sd_cache *c;

	if (!out)
		return -EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->budget = budget;
	c->nbh = 1024;
	c->noh = 256;
	c->bh = calloc(c->nbh, sizeof(*c->bh));
	c->oh = calloc(c->noh, sizeof(*c->oh));
	if (!c->bh || !c->oh) {
		free(c->bh);
		free(c->oh);
		free(c);
		return -ENOMEM;
	}
	if (log)
		c->log = *log;
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void sd_cache_free(struct sd_cache *c)
{
	if (!c)
		return;
	for (size_t h = 0; h < c->nbh; h++) {
		while (c->bh[h]) {
			struct sd_cache_block *b = c->bh[h];

			c->bh[h] = b->hnext;
			free(b->data);
			free(b);
		}
	}
	while (c->spare) {
		struct sd_cache_block *b = c->spare;

		c->spare = b->hnext;
		free(b->data);
		free(b);
	}
	for (size_t h = 0; h < c->noh; h++) {
		while (c->oh[h]) {
			struct cobj *o = c->oh[h];

			if (o->ncons)
				clog_(c, SD_LOG_ERROR, "sd_cache_free: %zu "
				      "consumers still joined", o->ncons);
			c->oh[h] = o->hnext;
			free(o->cons);
			free(o);
		}
	}
	pthread_mutex_destroy(&c->mu);
	free(c->bh);
	free(c->oh);
	free(c->rk);
	free(c);
}

/* Under c->mu: bytes [@off, @off + @len) into block @idx of @o, where
 * they continue what it holds (anything else is a gap: skipped). */
static void put_block(struct sd_cache *c, struct cobj *o, uint64_t idx,
		      uint32_t in, const uint8_t *buf, uint32_t len)
{
	struct sd_cache_block *b = blk_find(c, o, idx);
	uint32_t skip;

	if (!b) {
		struct sd_cache_block probe = { .o = o, .idx = idx };
		struct rank r;

		if (in != 0)
			return;
		/* A full cache takes no block nobody is behind: it would be
		 * the first to go. */
		rank_of(&probe, &r);
		if (r.passed && c->bytes + SD_CACHE_BLOCK > c->budget)
			return;
		b = blk_new(c, o, idx);
		if (!b)
			return;
	}
	b->stamp = ++c->stamp;
	if (in > b->valid || in + len <= b->valid)
		return;
	skip = b->valid - in; /* invariant 1: below valid stays as it is */
	memcpy(b->data + b->valid, buf + skip, len - skip);
	b->valid = in + len;
	c->st.put_bytes += len - skip;
}

/*
 * Under c->mu: a recording this node writes drops, as its head moves on,
 * the blocks every session has passed by more than SD_CACHE_BEHIND
 * bytes (all but that many behind the writer when nobody watches).
 * Interval caching keeps what lies between a follower and its leader;
 * bytes behind the last follower would be needed only by a viewer yet
 * to come, so they would sit there until the budget pushed them out and
 * the daemon's memory would grow by the recording's rate until then.
 * A short tail stays for viewers that start just behind the others.
 * Runs once per new head block, so its scan of the consumers is paid per
 * 64 KiB recorded, not per read.
 */
static void trim_behind(struct sd_cache *c, struct cobj *o)
{
	uint64_t lo = o->writer->pos, limit;
	int any = 0;

	for (size_t i = 0; i < o->ncons; i++) {
		const struct sd_cache_cons *k = o->cons[i];

		if (!k->writer && (!any || k->pos < lo)) {
			lo = k->pos;
			any = 1;
		}
	}
	if (lo < SD_CACHE_BEHIND)
		return;
	limit = (lo - SD_CACHE_BEHIND) / SD_CACHE_BLOCK;
	for (; o->trim_from < limit; o->trim_from++) {
		struct sd_cache_block *b = blk_find(c, o, o->trim_from);

		if (b)
			blk_evict(c, b);
	}
}

int sd_cache_put(struct sd_cache *c, uint64_t ino, uint32_t id, uint64_t off,
		 const void *buf, size_t len)
{
	const uint8_t *p = buf;
	struct cobj *o;

	if (!c || (!buf && len))
		return -EINVAL;
	if (!c->budget || !len)
		return 0;
	pthread_mutex_lock(&c->mu);
	o = obj_get(c, ino, id);
	if (!o) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	while (len > 0) {
		uint32_t in = (uint32_t)(off % SD_CACHE_BLOCK);
		uint32_t n = (uint32_t)(len < SD_CACHE_BLOCK - in ?
					len : SD_CACHE_BLOCK - in);

		put_block(c, o, off / SD_CACHE_BLOCK, in, p, n);
		off += n;
		p += n;
		len -= n;
	}
	if (o->writer && (off - 1) / SD_CACHE_BLOCK > o->head_idx) {
		o->head_idx = (off - 1) / SD_CACHE_BLOCK;
		trim_behind(c, o);
	}
	obj_maybe_free(c, o);
	evict(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

struct sd_cache_block *sd_cache_get(struct sd_cache *c, uint64_t ino,
				    uint32_t id, uint64_t off,
				    const uint8_t **data, size_t *valid)
{
	struct sd_cache_block *b = NULL;
	struct cobj *o;

	if (!c || !data || !valid)
		return NULL;
	pthread_mutex_lock(&c->mu);
	o = obj_find(c, ino, id);
	if (o)
		b = blk_find(c, o, off / SD_CACHE_BLOCK);
	if (b && b->valid > off % SD_CACHE_BLOCK) {
		b->refs++;
		b->stamp = ++c->stamp;
		*data = b->data;
		*valid = b->valid;
	} else {
		b = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	return b;
}

void sd_cache_block_put(struct sd_cache *c, struct sd_cache_block *b)
{
	if (!c || !b)
		return;
	pthread_mutex_lock(&c->mu);
	if (--b->refs == 0 && !b->indexed)
		blk_release(c, b); /* invariant 2 */
	pthread_mutex_unlock(&c->mu);
}

struct sd_cache_block *sd_cache_take(struct sd_cache_cons *k, uint64_t off,
				     size_t max, const uint8_t **p,
				     size_t *n)
{
	struct sd_cache *c;
	struct sd_cache_block *b;
	const uint8_t *data;
	size_t valid, in;

	if (!k || !max || !p || !n)
		return NULL;
	c = k->c;
	b = sd_cache_get(c, k->o->ino, k->o->id, off, &data, &valid);
	pthread_mutex_lock(&c->mu);
	if (!b) {
		c->st.misses++;
		c->st.miss_bytes += max;
		cons_count(k, 0, max);
	} else {
		in = (size_t)(off % SD_CACHE_BLOCK);
		*n = valid - in < max ? valid - in : max;
		*p = data + in;
		c->st.hits++;
		c->st.hit_bytes += *n;
		cons_count(k, *n, 0);
	}
	pthread_mutex_unlock(&c->mu);
	return b;
}

double sd_cache_held_share(struct sd_cache *c, uint64_t ino, uint32_t id,
			   uint64_t off, uint64_t len)
{
	uint64_t first = off / SD_CACHE_BLOCK, last, held = 0;
	struct cobj *o;

	if (!c || !len)
		return 0;
	last = (off + len - 1) / SD_CACHE_BLOCK;
	pthread_mutex_lock(&c->mu);
	o = obj_find(c, ino, id);
	for (uint64_t i = first; o && i <= last; i++)
		held += blk_find(c, o, i) != NULL;
	pthread_mutex_unlock(&c->mu);
	return (double)held / (double)(last - first + 1);
}

size_t sd_cache_read(struct sd_cache_cons *k, uint64_t off, void *dst,
		     size_t max)
{
	struct sd_cache_block *b;
	const uint8_t *p;
	size_t n;

	b = sd_cache_take(k, off, max, &p, &n);
	if (!b)
		return 0;
	/* Bytes below valid never change (invariant 1): copied unlocked,
	 * the block held by our reference. */
	memcpy(dst, p, n);
	sd_cache_block_put(k->c, b);
	return n;
}

void sd_cache_stats(struct sd_cache *c, struct sd_cache_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	out->budget = c->budget;
	out->bytes = c->bytes;
	out->blocks = c->nblocks;
	pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* The budget                                                          */
/* ------------------------------------------------------------------ */

uint64_t sd_cache_auto_size(uint64_t mem_available)
{
	uint64_t b = mem_available / 8;

	if (b < SD_CACHE_AUTO_MIN)
		b = SD_CACHE_AUTO_MIN;
	if (b > SD_CACHE_AUTO_MAX)
		b = SD_CACHE_AUTO_MAX;
	return b - b % SD_CACHE_BLOCK;
}

uint64_t sd_cache_mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}
