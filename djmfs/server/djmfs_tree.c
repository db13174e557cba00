/*
 * The copy-on-write namespace of the DJMFS server: a persistent AVL tree
 * keyed by file name (strcmp order) whose nodes point at immutable file
 * records, which point at immutable object versions, which share one
 * append-only extent store per DATA object.  A change never writes into
 * anything a root can reach: it copies the O(log n) nodes on the path
 * from the top to the changed name and makes a new root (path copying,
 * after the Jungle tree database), so every root ever handed out stays a
 * consistent snapshot for as long as someone holds a reference to it.
 *
 * Invariants (besides the three in djmfs_store.h):
 *  1. Every node's height is 1 + the larger of its children's, and the
 *     two children's heights differ by at most one, so a root of n files
 *     is at most ~1.44 log2(n) deep.
 *  2. Names in a node's left subtree sort before its own, those in its
 *     right subtree after; no name appears twice.
 *  3. A node owns one reference on each child and on its file; a root
 *     owns one on its top node; a file owns one on each object version;
 *     an object version owns one on its extent store.
 *  4. An extent store's entry i never changes once entry i + 1 exists;
 *     only the newest entry's length may grow.  A version may append in
 *     place only while it is the store's tip (it sees every entry, with
 *     the newest at full length); any other version first takes a
 *     private copy of the prefix it sees.
 *  5. Indices are absolute: a store holds entries [base, n) and sums
 *     [ck_base, n_ck), and a version sees entries [ext_first, n_ext) and
 *     sums [ck_first, n_ck) with base <= ext_first and ck_base <=
 *     ck_first.  A trim only raises a version's firsts; a private copy
 *     (branch, compaction) starts its store at the version's firsts, so
 *     entry i is entry i in every store that holds it.
 *
 * Functions that build trees take ownership of their node and file
 * arguments and return a node owning them, or NULL after releasing them
 * when an allocation failed (recorded in the build context), so a failed
 * update frees its partial copies and leaves the old root untouched.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_tree.h"

/* ------------------------------------------------------------------ */
/* Record cache                                                         */
/* ------------------------------------------------------------------ */

/*
 * Each commit frees the records an older root no longer needs and the
 * next pass allocates as many again: bursts of dozens of blocks of three
 * sizes, far past what malloc's per-thread cache keeps, so most took its
 * slow path (a tenth of the server's time at 2,000 pairs).  A deeper
 * per-thread cache of exactly these blocks keeps them on the thread that
 * reuses them.  Blocks are plain malloc'd memory: any of them may also be
 * given back with free(), and a thread's cache is freed when it exits.
 */
enum { POOL_NODE, POOL_FILE, POOL_OBJ, POOL_KINDS };

/* Blocks kept per size.  Not under AddressSanitizer, so that a record
 * used after its release is still reported rather than recycled. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0u
#else
#define POOL_MAX 8192u
#endif

struct pool_block {
	struct pool_block *next;
};

struct pool {
	struct pool_block *head[POOL_KINDS];
	unsigned n[POOL_KINDS];
	int registered;
};

static __thread struct pool pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_drain(void *arg)
{
	struct pool *p = arg;
	struct pool_block *b;

	for (int k = 0; k < POOL_KINDS; k++) {
		while ((b = p->head[k])) {
			p->head[k] = b->next;
			free(b);
		}
		p->n[k] = 0;
	}
}

static void pool_key_init(void)
{
	/* Without a key the cache is only never used: see pool_put. */
	if (pthread_key_create(&pool_key, pool_drain) != 0)
		pool_key = (pthread_key_t)-1;
}

static void *pool_get(int kind, size_t size)
{
	struct pool_block *b = pool.head[kind];

	if (!b)
		return malloc(size);
	pool.head[kind] = b->next;
	pool.n[kind]--;
	return b;
}

static void pool_put(int kind, void *p)
{
	struct pool_block *b = p;

	if (!pool.registered) {
		pthread_once(&pool_once, pool_key_init);
		pool.registered = pool_key != (pthread_key_t)-1 &&
				  pthread_setspecific(pool_key, &pool) == 0 ? 1
									    : -1;
	}
	if (pool.registered < 0 || pool.n[kind] + 1 > POOL_MAX) {
		free(p);
		return;
	}
	b->next = pool.head[kind];
	pool.head[kind] = b;
	pool.n[kind]++;
}

/* ------------------------------------------------------------------ */
/* Extent store                                                        */
/* ------------------------------------------------------------------ */

/* Chunk k holds XS_BASE << k entries, so the chunk table never grows and
 * no entry ever moves; 30 chunks hold more than 2^32 entries. */
#define XS_BASE 8u
#define XS_CHUNKS 30

struct xent {
	uint64_t off;
	uint64_t len;
	uint64_t before; /* bytes mapped by the entries before this one */
};

struct djmfs__xstore {
	uint32_t refs;
	uint32_t base; /* index of the first entry held (invariant 5) */
	uint64_t base_at; /* object offset where entry base begins */
	uint32_t n; /* entries appended so far, by any version */
	struct xent *chunk[XS_CHUNKS];
	/* Complete cblocks' sums, append-only like the entries (a version
	 * sees the first n_ck), chunked the same way. */
	uint32_t ck_base;
	uint32_t n_ck;
	uint32_t *ck_chunk[XS_CHUNKS];
};

static unsigned xs_chunk_of(uint32_t i, uint64_t *start)
{
	uint64_t q = (uint64_t)i / XS_BASE + 1;
	unsigned k = 63u - (unsigned)__builtin_clzll(q);

	*start = (uint64_t)XS_BASE * ((1ull << k) - 1);
	return k;
}

static struct xent *xs_at(const struct djmfs__xstore *xs, uint32_t i)
{
	uint64_t start;
	unsigned k = xs_chunk_of(i - xs->base, &start);

	return &xs->chunk[k][i - xs->base - start];
}

static struct djmfs__xstore *xs_new(void)
{
	struct djmfs__xstore *xs = calloc(1, sizeof(*xs));

	if (xs)
		xs->refs = 1;
	return xs;
}

static void xs_unref(struct djmfs__xstore *xs)
{
	unsigned k;

	if (!xs || --xs->refs > 0)
		return;
	for (k = 0; k < XS_CHUNKS; k++) {
		free(xs->chunk[k]);
		free(xs->ck_chunk[k]);
	}
	free(xs);
}

static uint32_t *xs_ck_at(const struct djmfs__xstore *xs, uint32_t i)
{
	uint64_t start;
	unsigned k = xs_chunk_of(i - xs->ck_base, &start);

	return &xs->ck_chunk[k][i - xs->ck_base - start];
}

static int xs_ck_push(struct djmfs__xstore *xs, uint32_t crc)
{
	uint64_t start;
	unsigned k;

	if (xs->n_ck == UINT32_MAX)
		return -EFBIG;
	k = xs_chunk_of(xs->n_ck - xs->ck_base, &start);
	if (!xs->ck_chunk[k]) {
		xs->ck_chunk[k] = calloc((size_t)XS_BASE << k,
					 sizeof(uint32_t));
		if (!xs->ck_chunk[k])
			return -ENOMEM;
	}
	xs->ck_chunk[k][xs->n_ck - xs->ck_base - start] = crc;
	xs->n_ck++;
	return 0;
}

static int xs_push(struct djmfs__xstore *xs, uint64_t off, uint64_t len,
		   uint64_t before)
{
	uint64_t start;
	unsigned k;
	struct xent *e;

	if (xs->n == UINT32_MAX)
		return -EFBIG;
	k = xs_chunk_of(xs->n - xs->base, &start);
	if (!xs->chunk[k]) {
		xs->chunk[k] = calloc((size_t)XS_BASE << k,
				      sizeof(struct xent));
		if (!xs->chunk[k])
			return -ENOMEM;
	}
	e = &xs->chunk[k][xs->n - xs->base - start];
	e->off = off;
	e->len = len;
	e->before = before;
	xs->n++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */
/* ------------------------------------------------------------------ */

int djmfs__obj_new(struct djmfs__obj **out, uint32_t id, uint32_t attrs,
		   const char *name)
{
	struct djmfs__obj *o;

	*out = NULL;
	if (strlen(name) > DJMFS_OBJ_NAME_MAX)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->refs = 1;
	o->id = id;
	o->attrs = attrs;
	strcpy(o->name, name);
	*out = o;
	return 0;
}

int djmfs__obj_dup(const struct djmfs__obj *o, struct djmfs__obj **out)
{
	struct djmfs__obj *n = pool_get(POOL_OBJ, sizeof(*n));

	*out = NULL;
	if (!n)
		return -ENOMEM;
	*n = *o;
	n->refs = 1;
	n->meta = NULL;
	if (o->meta_len) {
		n->meta = malloc(o->meta_len);
		if (!n->meta) {
			pool_put(POOL_OBJ, n);
			return -ENOMEM;
		}
		memcpy(n->meta, o->meta, o->meta_len);
	}
	if (n->xs)
		n->xs->refs++;
	*out = n;
	return 0;
}

const struct djmfs__obj *djmfs__obj_ref(const struct djmfs__obj *o)
{
	((struct djmfs__obj *)o)->refs++;
	return o;
}

void djmfs__obj_unref(const struct djmfs__obj *co)
{
	struct djmfs__obj *o = (struct djmfs__obj *)co;

	if (!o || --o->refs > 0)
		return;
	xs_unref(o->xs);
	free(o->meta);
	pool_put(POOL_OBJ, o);
}

struct djmfs_extent djmfs__obj_extent(const struct djmfs__obj *o, uint32_t i)
{
	const struct xent *e = xs_at(o->xs, i);
	struct djmfs_extent x = { e->off, e->len };

	if (i == o->n_ext - 1)
		x.len = o->last_len;
	return x;
}

uint64_t djmfs__obj_maplen(const struct djmfs__obj *o)
{
	if (o->n_ext <= o->ext_first)
		return o->xs ? o->xs->base_at : 0;
	return xs_at(o->xs, o->n_ext - 1)->before + o->last_len;
}

uint64_t djmfs__obj_map_end(const struct djmfs__obj *o)
{
	if (o->n_ext <= o->ext_first)
		return 0;
	return xs_at(o->xs, o->n_ext - 1)->off + o->last_len;
}

int djmfs__obj_load_firsts(struct djmfs__obj *o, uint64_t start,
			   uint32_t ext_first, uint64_t first_at,
			   uint32_t ck_first)
{
	if (o->xs || o->n_ext || o->n_ck)
		return -EINVAL;
	if (!ext_first && !first_at && !ck_first) {
		o->start = start;
		return 0;
	}
	o->xs = xs_new();
	if (!o->xs)
		return -ENOMEM;
	o->xs->base = o->xs->n = o->ext_first = o->n_ext = ext_first;
	o->xs->base_at = first_at;
	o->xs->ck_base = o->xs->n_ck = o->ck_first = o->n_ck = ck_first;
	o->start = start;
	return 0;
}

/* Invariant 4: may @o write into its store in place? */
static int obj_is_tip(const struct djmfs__obj *o)
{
	if (o->xs->n != o->n_ext || o->xs->n_ck != o->n_ck)
		return 0;
	return o->n_ext <= o->ext_first ||
	       xs_at(o->xs, o->n_ext - 1)->len == o->last_len;
}

/* Gives @o a private store holding exactly what it sees, from its
 * firsts on (invariant 5): a branch, or the compaction of a trim. */
static int obj_branch(struct djmfs__obj *o)
{
	struct djmfs__xstore *xs = NULL;
	uint32_t i;
	int err = 0;

	if (o->n_ext > o->ext_first || o->n_ck > o->ck_first) {
		xs = xs_new();
		if (!xs)
			return -ENOMEM;
		xs->base = xs->n = o->ext_first;
		xs->base_at = djmfs__obj_first_at(o);
		xs->ck_base = xs->n_ck = o->ck_first;
	}
	for (i = o->ext_first; i < o->n_ext && !err; i++) {
		const struct xent *e = xs_at(o->xs, i);
		uint64_t len = i == o->n_ext - 1 ? o->last_len : e->len;

		err = xs_push(xs, e->off, len, e->before);
	}
	for (i = o->ck_first; i < o->n_ck && !err; i++)
		err = xs_ck_push(xs, *xs_ck_at(o->xs, i));
	if (err) {
		xs_unref(xs);
		return err;
	}
	xs_unref(o->xs);
	o->xs = xs;
	return 0;
}

/* Makes @o's version the tip of a store it may append to: a branch of
 * the shared one when an older version is not at its tip, a new one when
 * it has none.  Extents and sums share the store, so both appends start
 * here. */
static int obj_own_store(struct djmfs__obj *o)
{
	if (o->xs && !obj_is_tip(o))
		return obj_branch(o);
	if (!o->xs) {
		o->xs = xs_new();
		if (!o->xs)
			return -ENOMEM;
		/* A version with nothing to copy goes on at its own
		 * indices. */
		o->xs->base = o->xs->n = o->n_ext;
		o->xs->ck_base = o->xs->n_ck = o->n_ck;
	}
	return 0;
}

int djmfs__obj_append(struct djmfs__obj *o, uint64_t off, uint64_t len)
{
	int err;

	err = obj_own_store(o);
	if (err)
		return err;
	if (o->n_ext > o->ext_first && djmfs__obj_map_end(o) == off) {
		/* Older versions clamp this entry to their own last_len. */
		o->last_len += len;
		xs_at(o->xs, o->n_ext - 1)->len = o->last_len;
		return 0;
	}
	err = xs_push(o->xs, off, len, djmfs__obj_maplen(o));
	if (err)
		return err;
	o->n_ext++;
	o->last_len = len;
	return 0;
}

int djmfs__obj_ck_append(struct djmfs__obj *o, uint32_t crc)
{
	int err;

	err = obj_own_store(o);
	if (err)
		return err;
	err = xs_ck_push(o->xs, crc);
	if (err)
		return err;
	o->n_ck++;
	return 0;
}

/* Dropped entries and sums worth a compacted store: more than the
 * store still holds from the version's firsts on, and not a handful. */
#define TRIM_COMPACT_MIN 64u

static int trim_wants_compaction(const struct djmfs__obj *o)
{
	uint64_t dropped, kept;

	if (!o->xs)
		return 0;
	dropped = (uint64_t)(o->ext_first - o->xs->base) +
		  (o->ck_first - o->xs->ck_base);
	kept = (uint64_t)(o->xs->n - o->ext_first) +
	       (o->xs->n_ck - o->ck_first);
	return dropped >= TRIM_COMPACT_MIN && dropped > kept;
}

int djmfs__obj_trim(struct djmfs__obj *o, uint64_t start)
{
	uint32_t a = o->ext_first, b = o->n_ext ? o->n_ext - 1 : o->ext_first;
	uint32_t ck = (uint32_t)(start >> DJMFS_CK_SHIFT);
	struct djmfs__obj was = *o; /* a failed compaction changes nothing */
	int err;

	if (start <= o->start)
		return 0;
	/* The first extent holding a byte at or past @start; the last one
	 * stays in any case, as it holds the map's end. */
	while (a < b) {
		uint32_t mid = a + (b - a) / 2;

		if (xs_at(o->xs, mid)->before +
			    djmfs__obj_extent(o, mid).len > start)
			b = mid;
		else
			a = mid + 1;
	}
	if (ck > o->n_ck)
		ck = o->n_ck; /* sums that stopped (CK_GAP) */
	if (ck < o->ck_first)
		ck = o->ck_first;
	o->start = start;
	o->ext_first = a;
	o->ck_first = ck;
	if (!trim_wants_compaction(o))
		return 0;
	err = obj_branch(o);
	if (err)
		*o = was;
	return err;
}

struct djmfs_extent djmfs__obj_live(const struct djmfs__obj *o, uint32_t i)
{
	struct djmfs_extent x = djmfs__obj_extent(o, i);
	uint64_t before = xs_at(o->xs, i)->before, skip = 0;

	if (o->start > before)
		skip = o->start - before < x.len ? o->start - before : x.len;
	/* The unit holding the map's end is owned whole (djmfs_meta.c,
	 * invariant 4): its last byte stays live however far the start. */
	if (i == o->n_ext - 1 && x.len && skip == x.len)
		skip = x.len - 1;
	x.offset += skip;
	x.len -= skip;
	return x;
}

uint64_t djmfs__obj_first_at(const struct djmfs__obj *o)
{
	if (o->n_ext <= o->ext_first)
		return o->xs ? o->xs->base_at : 0;
	return xs_at(o->xs, o->ext_first)->before;
}

uint32_t djmfs__obj_ck(const struct djmfs__obj *o, uint32_t i)
{
	return *xs_ck_at(o->xs, i);
}

int djmfs__obj_set_meta(struct djmfs__obj *o, const uint8_t *p, uint32_t n)
{
	uint8_t *m = NULL;

	if (n) {
		m = malloc(n);
		if (!m)
			return -ENOMEM;
		memcpy(m, p, n);
	}
	free(o->meta);
	o->meta = m;
	o->meta_len = n;
	o->size = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

int djmfs__file_new(struct djmfs__file **out, uint64_t ino, const char *name,
		    uint64_t time_ns)
{
	struct djmfs__file *f;
	size_t len = strlen(name);

	*out = NULL;
	if (!len || len > DJMFS_NAME_MAX)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->refs = 1;
	f->ino = ino;
	memcpy(f->name, name, len + 1);
	f->ctime_ns = time_ns;
	f->mtime_ns = time_ns;
	f->next_obj_id = 1;
	*out = f;
	return 0;
}

int djmfs__file_dup(const struct djmfs__file *f, struct djmfs__file **out)
{
	struct djmfs__file *n = pool_get(POOL_FILE, sizeof(*n));
	uint32_t i;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	*n = *f;
	n->refs = 1;
	for (i = 0; i < n->n_objs; i++)
		djmfs__obj_ref(n->objs[i]);
	*out = n;
	return 0;
}

const struct djmfs__file *djmfs__file_ref(const struct djmfs__file *f)
{
	((struct djmfs__file *)f)->refs++;
	return f;
}

void djmfs__file_unref(const struct djmfs__file *cf)
{
	struct djmfs__file *f = (struct djmfs__file *)cf;
	uint32_t i;

	if (!f || --f->refs > 0)
		return;
	for (i = 0; i < f->n_objs; i++)
		djmfs__obj_unref(f->objs[i]);
	pool_put(POOL_FILE, f);
}

int djmfs__file_obj_index(const struct djmfs__file *f, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < f->n_objs; i++)
		if (f->objs[i]->id == id)
			return (int)i;
	return -ENOENT;
}

const struct djmfs__obj *djmfs__file_obj(const struct djmfs__file *f,
					 uint32_t id)
{
	int i = djmfs__file_obj_index(f, id);

	return i < 0 ? NULL : f->objs[i];
}

void djmfs__file_set_obj(struct djmfs__file *f, uint32_t i,
			 struct djmfs__obj *o)
{
	djmfs__obj_unref(f->objs[i]);
	f->objs[i] = o;
}

void djmfs__file_remove_obj(struct djmfs__file *f, uint32_t i)
{
	djmfs__obj_unref(f->objs[i]);
	memmove(&f->objs[i], &f->objs[i + 1],
		(f->n_objs - i - 1) * sizeof(f->objs[0]));
	f->n_objs--;
	f->objs[f->n_objs] = NULL;
}

/* ------------------------------------------------------------------ */
/* Consistency check                                                   */
/* ------------------------------------------------------------------ */

struct cext {
	uint64_t off;
	uint64_t len;
	uint32_t id;
};

static int bad(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

int djmfs__attrs_valid(uint32_t a)
{
	uint32_t kind = a & (DJMFS_ATTR_META | DJMFS_ATTR_DATA);

	if (a & ~(DJMFS_ATTR_META | DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC))
		return 0;
	if (kind != DJMFS_ATTR_META && kind != DJMFS_ATTR_DATA)
		return 0;
	return !(a & DJMFS_ATTR_SYNC) || kind == DJMFS_ATTR_DATA;
}

/* Checks one object alone; appends the live parts of its extents (what
 * it still owns after a trim) to @all. */
static int check_obj(const struct djmfs__obj *o, uint64_t data_off,
		     uint64_t data_end, struct cext *all, size_t *n,
		     char *why, size_t whylen)
{
	uint32_t i;

	if (!djmfs__attrs_valid(o->attrs))
		return bad(why, whylen, "object %" PRIu32 ": bad attributes 0x%"
			   PRIx32, o->id, o->attrs);
	if (o->attrs & DJMFS_ATTR_META) {
		if (o->n_ext || o->size != o->meta_len ||
		    o->meta_len > DJMFS_META_MAX || o->start)
			return bad(why, whylen, "object %" PRIu32
				   ": META size %" PRIu64 " with %" PRIu32
				   " bytes, %" PRIu32 " extents, start %"
				   PRIu64, o->id, o->size, o->meta_len,
				   o->n_ext, o->start);
		return 0;
	}
	if (o->start > o->size || o->ext_first > o->n_ext ||
	    (o->n_ext && o->ext_first == o->n_ext) || o->ck_first > o->n_ck)
		return bad(why, whylen, "object %" PRIu32 ": start %" PRIu64
			   " past size %" PRIu64 ", or first extent %" PRIu32
			   " of %" PRIu32, o->id, o->start, o->size,
			   o->ext_first, o->n_ext);
	if (o->n_ext > o->ext_first && djmfs__obj_first_at(o) > o->start)
		return bad(why, whylen, "object %" PRIu32 ": map begins at %"
			   PRIu64 ", past its start %" PRIu64, o->id,
			   djmfs__obj_first_at(o), o->start);
	for (i = o->ext_first; i < o->n_ext; i++) {
		struct djmfs_extent e = djmfs__obj_extent(o, i);

		if (e.offset % DJMFS_BLOCK)
			return bad(why, whylen, "object %" PRIu32 " extent %"
				   PRIu32 ": offset %" PRIu64 " misaligned",
				   o->id, i, e.offset);
		if (e.offset < data_off || e.offset > data_end ||
		    e.len > data_end - e.offset)
			return bad(why, whylen, "object %" PRIu32 " extent %"
				   PRIu32 ": [%" PRIu64 ", +%" PRIu64
				   ") outside the data area", o->id, i,
				   e.offset, e.len);
		e = djmfs__obj_live(o, i);
		if (!e.len)
			continue;
		all[*n].off = e.offset;
		all[*n].len = e.len;
		all[*n].id = o->id;
		(*n)++;
	}
	if (o->size > djmfs__obj_maplen(o))
		return bad(why, whylen, "object %" PRIu32 ": size %" PRIu64
			   " beyond its %" PRIu64 " mapped bytes", o->id,
			   o->size, djmfs__obj_maplen(o));
	return 0;
}

static int cext_cmp(const void *a, const void *b)
{
	const struct cext *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

int djmfs__file_check(const struct djmfs__file *f, uint64_t data_off,
		      uint64_t data_end, char *why, size_t whylen)
{
	struct cext *all = NULL;
	size_t total = 0, n = 0, i;
	unsigned nsync = 0;
	int err = 0;

	for (i = 0; i < f->n_objs; i++) {
		total += f->objs[i]->n_ext;
		nsync += !!(f->objs[i]->attrs & DJMFS_ATTR_SYNC);
	}
	if (nsync > 1)
		return bad(why, whylen, "%u SYNC objects", nsync);
	if (total) {
		all = malloc(total * sizeof(*all));
		if (!all)
			return -ENOMEM;
	}
	for (i = 0; i < f->n_objs && !err; i++)
		err = check_obj(f->objs[i], data_off, data_end, all, &n, why,
				whylen);
	if (err)
		goto out;
	if (n > 1)
		qsort(all, n, sizeof(*all), cext_cmp);
	for (i = 1; i < n; i++) {
		if (all[i - 1].off + all[i - 1].len > all[i].off) {
			err = bad(why, whylen, "object %" PRIu32 " at %" PRIu64
				  " overlaps object %" PRIu32 " at %" PRIu64,
				  all[i].id, all[i].off, all[i - 1].id,
				  all[i - 1].off);
			break;
		}
	}
out:
	free(all);
	return err;
}

/* ------------------------------------------------------------------ */
/* The persistent AVL tree                                             */
/* ------------------------------------------------------------------ */

/* The first KEY_INLINE bytes of the name live in the node, so a
 * descent compares without touching every file record on its way (one
 * cache miss per level instead of two); longer names fall back to the
 * record's full name only when those bytes tie. */
#define KEY_INLINE 23

struct tnode {
	uint32_t refs;
	uint8_t height;
	uint8_t key_full; /* key holds the whole name */
	char key[KEY_INLINE + 1];
	struct tnode *l;
	struct tnode *r;
	const struct djmfs__file *f;
};

/* strcmp(name, t's name), exactly. */
static int node_cmp(const char *name, const struct tnode *t)
{
	int c;

	if (t->key_full)
		return strcmp(name, t->key);
	c = strncmp(name, t->key, KEY_INLINE);
	return c ? c : strcmp(name, t->f->name);
}

static void node_key(struct tnode *n)
{
	size_t len = strlen(n->f->name);

	n->key_full = len <= KEY_INLINE;
	memcpy(n->key, n->f->name, n->key_full ? len + 1 : KEY_INLINE);
	n->key[KEY_INLINE] = '\0';
}

struct djmfs__root {
	uint32_t refs;
	uint64_t nfiles;
	struct tnode *top;
};

struct tctx {
	int err;
	int replaced;
};

static int h(const struct tnode *n)
{
	return n ? n->height : 0;
}

static struct tnode *node_ref(struct tnode *n)
{
	if (n)
		n->refs++;
	return n;
}

static void node_unref(struct tnode *n)
{
	if (!n || --n->refs > 0)
		return;
	node_unref(n->l);
	node_unref(n->r);
	djmfs__file_unref(n->f);
	pool_put(POOL_NODE, n);
}

/* Owns @l, @f and @r. */
static struct tnode *mk(struct tctx *c, struct tnode *l,
			const struct djmfs__file *f, struct tnode *r)
{
	struct tnode *n = NULL;

	if (!c->err) {
		n = pool_get(POOL_NODE, sizeof(*n));
		if (!n)
			c->err = -ENOMEM;
	}
	if (!n) {
		node_unref(l);
		node_unref(r);
		djmfs__file_unref(f);
		return NULL;
	}
	n->refs = 1;
	n->l = l;
	n->r = r;
	n->f = f;
	n->height = (uint8_t)(1 + (h(l) > h(r) ? h(l) : h(r)));
	node_key(n);
	return n;
}

/* mk() that restores the AVL balance when @l and @r differ in height by
 * two (one insertion or removal below).  Owns @l, @f and @r. */
static struct tnode *bal(struct tctx *c, struct tnode *l,
			 const struct djmfs__file *f, struct tnode *r)
{
	struct tnode *res, *x;

	if (h(l) > h(r) + 1) {
		if (h(l->l) >= h(l->r)) {
			res = mk(c, node_ref(l->l), djmfs__file_ref(l->f),
				 mk(c, node_ref(l->r), f, r));
		} else {
			x = l->r;
			res = mk(c, mk(c, node_ref(l->l), djmfs__file_ref(l->f),
				       node_ref(x->l)),
				 djmfs__file_ref(x->f),
				 mk(c, node_ref(x->r), f, r));
		}
		node_unref(l);
		return res;
	}
	if (h(r) > h(l) + 1) {
		if (h(r->r) >= h(r->l)) {
			res = mk(c, mk(c, l, f, node_ref(r->l)),
				 djmfs__file_ref(r->f), node_ref(r->r));
		} else {
			x = r->l;
			res = mk(c, mk(c, l, f, node_ref(x->l)),
				 djmfs__file_ref(x->f),
				 mk(c, node_ref(x->r), djmfs__file_ref(r->f),
				    node_ref(r->r)));
		}
		node_unref(r);
		return res;
	}
	return mk(c, l, f, r);
}

/* @t borrowed, @f owned. */
static struct tnode *t_put(struct tctx *c, struct tnode *t,
			   const struct djmfs__file *f)
{
	int cmp;

	if (!t)
		return mk(c, NULL, f, NULL);
	cmp = node_cmp(f->name, t);
	if (cmp == 0) {
		c->replaced = 1;
		return mk(c, node_ref(t->l), f, node_ref(t->r));
	}
	if (cmp < 0)
		return bal(c, t_put(c, t->l, f), djmfs__file_ref(t->f),
			   node_ref(t->r));
	return bal(c, node_ref(t->l), djmfs__file_ref(t->f), t_put(c, t->r, f));
}

/* @t (not empty) borrowed; the tree without its first name, whose file
 * goes to *min with a new reference. */
static struct tnode *t_pop_min(struct tctx *c, struct tnode *t,
			       const struct djmfs__file **min)
{
	if (!t->l) {
		*min = djmfs__file_ref(t->f);
		return node_ref(t->r);
	}
	return bal(c, t_pop_min(c, t->l, min), djmfs__file_ref(t->f),
		   node_ref(t->r));
}

/* @t borrowed; @name must be present. */
static struct tnode *t_del(struct tctx *c, struct tnode *t, const char *name)
{
	const struct djmfs__file *min = NULL;
	struct tnode *r;
	int cmp = node_cmp(name, t);

	if (cmp < 0)
		return bal(c, t_del(c, t->l, name), djmfs__file_ref(t->f),
			   node_ref(t->r));
	if (cmp > 0)
		return bal(c, node_ref(t->l), djmfs__file_ref(t->f),
			   t_del(c, t->r, name));
	if (!t->l || !t->r)
		return node_ref(t->l ? t->l : t->r);
	/* The successor takes the removed node's place. */
	r = t_pop_min(c, t->r, &min);
	return bal(c, node_ref(t->l), min, r);
}

static int root_alloc(struct djmfs__root **out, struct tnode *top,
		      uint64_t nfiles)
{
	struct djmfs__root *r = malloc(sizeof(*r));

	*out = NULL;
	if (!r) {
		node_unref(top);
		return -ENOMEM;
	}
	r->refs = 1;
	r->top = top;
	r->nfiles = nfiles;
	*out = r;
	return 0;
}

int djmfs__root_new(struct djmfs__root **out)
{
	return root_alloc(out, NULL, 0);
}

struct djmfs__root *djmfs__root_ref(struct djmfs__root *r)
{
	r->refs++;
	return r;
}

void djmfs__root_unref(struct djmfs__root *r)
{
	if (!r || --r->refs > 0)
		return;
	node_unref(r->top);
	free(r);
}

uint64_t djmfs__root_nfiles(const struct djmfs__root *r)
{
	return r->nfiles;
}

const struct djmfs__file *djmfs__root_find(const struct djmfs__root *r,
					   const char *name)
{
	const struct tnode *t = r->top;

	while (t) {
		int cmp = node_cmp(name, t);

		if (!cmp)
			return t->f;
		t = cmp < 0 ? t->l : t->r;
	}
	return NULL;
}

int djmfs__root_put(const struct djmfs__root *r, struct djmfs__file *f,
		    struct djmfs__root **out)
{
	struct tctx c = { 0, 0 };
	struct tnode *top = t_put(&c, r->top, f);

	*out = NULL;
	if (c.err) {
		node_unref(top);
		return c.err;
	}
	return root_alloc(out, top, r->nfiles + !c.replaced);
}

int djmfs__root_replace_owned(struct djmfs__root *r, struct djmfs__file *f)
{
	struct tnode **slot = &r->top, *t;
	int cmp;

	if (r->refs != 1)
		return -EBUSY;
	while ((t = *slot)) {
		if (t->refs > 1) {
			/* Shared with an older root: this root gets its own
			 * copy, the others keep the original. */
			struct tnode *n = pool_get(POOL_NODE, sizeof(*n));

			if (!n)
				return -ENOMEM;
			*n = *t;
			n->refs = 1;
			node_ref(n->l);
			node_ref(n->r);
			djmfs__file_ref(n->f);
			t->refs--;
			*slot = t = n;
		}
		cmp = node_cmp(f->name, t);
		if (cmp == 0) {
			djmfs__file_unref(t->f);
			t->f = f;
			return 0;
		}
		slot = cmp < 0 ? &t->l : &t->r;
	}
	return -ENOENT;
}

int djmfs__root_del(const struct djmfs__root *r, const char *name,
		    struct djmfs__root **out)
{
	struct tctx c = { 0, 0 };
	struct tnode *top;

	*out = NULL;
	if (!djmfs__root_find(r, name))
		return -ENOENT;
	top = t_del(&c, r->top, name);
	if (c.err) {
		node_unref(top);
		return c.err;
	}
	return root_alloc(out, top, r->nfiles - 1);
}

static struct tnode *t_build(struct tctx *c, struct djmfs__file **files,
			     uint64_t lo, uint64_t hi)
{
	uint64_t mid = lo + (hi - lo) / 2;
	struct tnode *l, *r;

	if (lo >= hi)
		return NULL;
	l = t_build(c, files, lo, mid);
	r = t_build(c, files, mid + 1, hi);
	return mk(c, l, files[mid], r);
}

int djmfs__root_build(struct djmfs__file **files, uint64_t n,
		      struct djmfs__root **out)
{
	struct tctx c = { 0, 0 };
	struct tnode *top;
	uint64_t i;

	*out = NULL;
	for (i = 1; i < n; i++) {
		if (strcmp(files[i - 1]->name, files[i]->name) >= 0) {
			for (i = 0; i < n; i++)
				djmfs__file_unref(files[i]);
			return -EINVAL;
		}
	}
	top = t_build(&c, files, 0, n);
	if (c.err) {
		node_unref(top);
		return c.err;
	}
	return root_alloc(out, top, n);
}

static int t_walk(const struct tnode *t, const char *after,
		  int (*fn)(void *arg, const struct djmfs__file *f), void *arg)
{
	int ret;

	while (t) {
		if (after && strcmp(t->f->name, after) <= 0) {
			t = t->r;
			continue;
		}
		ret = t_walk(t->l, after, fn, arg);
		if (!ret)
			ret = fn(arg, t->f);
		if (ret)
			return ret;
		/* Everything right of a reported node is after @after. */
		after = NULL;
		t = t->r;
	}
	return 0;
}

int djmfs__root_walk(const struct djmfs__root *r, const char *after,
		     int (*fn)(void *arg, const struct djmfs__file *f),
		     void *arg)
{
	if (after && !*after)
		after = NULL;
	return t_walk(r->top, after, fn, arg);
}

/* Height of @t, or -1 when it breaks invariants 1 or 2 within (lo, hi). */
static int t_check(const struct tnode *t, const char *lo, const char *hi,
		   uint64_t *count)
{
	int hl, hr;

	if (!t)
		return 0;
	if ((lo && strcmp(t->f->name, lo) <= 0) ||
	    (hi && strcmp(t->f->name, hi) >= 0))
		return -1;
	hl = t_check(t->l, lo, t->f->name, count);
	hr = t_check(t->r, t->f->name, hi, count);
	if (hl < 0 || hr < 0 || hl - hr > 1 || hr - hl > 1)
		return -1;
	if (t->height != 1 + (hl > hr ? hl : hr))
		return -1;
	(*count)++;
	return t->height;
}

int djmfs__root_check(const struct djmfs__root *r)
{
	uint64_t count = 0;
	int height = t_check(r->top, NULL, NULL, &count);

	if (height < 0 || count != r->nfiles)
		return -EUCLEAN;
	return height;
}
