/*
 * The image a file handle reads: its objects (struct cobj) with their
 * maps and META bytes, the map arithmetic every step uses (extents as
 * the image sees them, byte ranges to volume pieces), and applying a
 * snapshot from the server in two passes so a failure changes nothing.
 * The rest of the handle layer is built on these; see djmfs_file.h for
 * the handle's design and invariants.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* Objects and the image                                                */
/* ------------------------------------------------------------------ */

void djmfs__cobj_free(struct cobj *o)
{
	if (!o)
		return;
	free(o->salv);
	free(o->ck);
	free(o->img_meta);
	free(o->ext);
	free(o->ext_at);
	free(o->meta);
	free(o->tail);
	free(o);
}

/* Under f->mu. */
struct cobj *djmfs__obj_find(struct djmfs_file *f, uint32_t id)
{
	for (uint32_t i = 0; i < f->n_objs; i++)
		if (f->objs[i]->id == id)
			return f->objs[i];
	return NULL;
}

int djmfs__ext_reserve(struct cobj *o, uint32_t n)
{
	struct djmfs_extent *e;
	uint64_t *at;
	uint32_t cap = o->ext_cap ? o->ext_cap : 4;

	if (n <= o->ext_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	e = realloc(o->ext, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	o->ext = e;
	/* Both arrays hold at least ext_cap entries; a failure here leaves
	 * ext_cap as it was, so the next call grows ext_at again. */
	at = realloc(o->ext_at, cap * sizeof(*at));
	if (!at)
		return -ENOMEM;
	o->ext_at = at;
	o->ext_cap = cap;
	return 0;
}

/* Invariant 10: extent @j changes, so the offsets past it are unknown. */
void djmfs__ext_changed(struct cobj *o, uint32_t j)
{
	if (o->n_at > j + 1)
		o->n_at = j + 1;
}

/* Works out ext_at up to extent @n (<= n_ext): amortised O(1) per
 * extent, as only those appended or changed since are summed again. */
static void ext_at_upto(struct cobj *o, uint32_t n)
{
	uint32_t i = o->n_at > o->ext_first ? o->n_at : o->ext_first;

	for (; i < n; i++) {
		o->ext_at[i] = i > o->ext_first ?
			o->ext_at[i - 1] + o->ext[i - 1].len : o->first_at;
		o->map_steps++;
	}
	if (n > o->n_at)
		o->n_at = n;
}

int djmfs__ck_reserve(struct cobj *o, uint32_t n)
{
	uint32_t *v, cap = o->ck_cap ? o->ck_cap : 16;

	if (n <= o->ck_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	v = realloc(o->ck, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	o->ck = v;
	o->ck_cap = cap;
	return 0;
}

/* Extent i as the image sees it. */
struct djmfs_extent djmfs__img_ext(const struct cobj *o, uint32_t i)
{
	struct djmfs_extent e = o->ext[i];

	if (i + 1 == o->img_n_ext && e.len > o->img_last_len)
		e.len = o->img_last_len;
	return e;
}

uint64_t djmfs__map_bytes(struct cobj *o)
{
	uint32_t n = o->n_ext;

	if (n <= o->ext_first)
		return o->first_at;
	ext_at_upto(o, n);
	return o->ext_at[n - 1] + o->ext[n - 1].len;
}

/* The last of the extents ext_first .. @n - 1 that begins at or before
 * @lo (ext_first when none does): a binary search over ext_at, known up
 * to @n. */
static uint32_t ext_find(struct cobj *o, uint32_t n, uint64_t lo)
{
	uint32_t a = o->ext_first, b = n; /* the answer is in [a, b) */

	while (b - a > 1) {
		uint32_t m = a + (b - a) / 2;

		o->map_steps++;
		if (o->ext_at[m] <= lo)
			a = m;
		else
			b = m;
	}
	return a;
}

/* Pieces of object bytes [lo, hi) through the first @n extents (image
 * view when @img).  Returns the pieces found (fewer if the map is
 * short), or -ENOMEM.  O(log n) plus the pieces, however long the map:
 * a read of a long recording costs what a read of a short one does. */
int djmfs__map_range(struct cobj *o, int img, uint64_t lo,
		     uint64_t hi, struct seg **out, uint32_t *n_out)
{
	uint32_t n = img ? o->img_n_ext : o->n_ext, cnt = 0, i = n;
	uint64_t pos = 0;
	struct seg *v = NULL;

	if (n > o->ext_first) {
		ext_at_upto(o, n);
		i = ext_find(o, n, lo);
		pos = o->ext_at[i];
	}
	for (; i < n && pos < hi; i++) {
		struct djmfs_extent e = img ? djmfs__img_ext(o, i) : o->ext[i];
		uint64_t a = lo > pos ? lo : pos;
		uint64_t b = hi < pos + e.len ? hi : pos + e.len;

		if (a < b) {
			struct seg *nv = realloc(v, (cnt + 1) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			v[cnt++] = (struct seg){ e.offset + (a - pos), b - a, a };
		}
		pos += e.len;
		o->map_steps++;
	}
	*out = v;
	*n_out = cnt;
	return (int)cnt;
}

void djmfs__fill_info(struct djmfs_file *f, struct djmfs_file_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->name, f->name, sizeof(out->name));
	out->ino = f->ino;
	out->version = f->version;
	out->flags = f->sflags & ~(uint32_t)DJMFS_FILE_SNAP_LOCKED;
	if (f->snap_locked)
		out->flags |= DJMFS_FILE_SNAP_LOCKED;
	if (f->oflags & DJMFS_O_WRITE)
		out->flags |= DJMFS_FILE_WRITE_LOCKED;
	out->ctime_ns = f->ctime_ns;
	out->mtime_ns = f->mtime_ns;
	out->n_objs = f->n_objs;
	for (uint32_t i = 0; i < f->n_objs; i++) {
		const struct cobj *o = f->objs[i];
		struct djmfs_obj_info *oi = &out->objs[i];

		oi->id = o->id;
		oi->attrs = o->attrs;
		memcpy(oi->name, o->name, sizeof(oi->name));
		oi->size = o->img_size;
		oi->n_extents = o->img_n_ext - o->ext_first;
		oi->start = o->start;
		out->size += o->img_size;
	}
}

/* The first sum @o keeps after @so (@fresh: @o is new): the server's
 * first (where a map sent afresh starts), raised to the start's cblock
 * (never past the sums the image has). */
static uint32_t snap_ck_first(const struct cobj *o,
			      const struct djmfs__snap_obj *so, int fresh)
{
	uint32_t ck = (uint32_t)(so->start >> DJMFS_CK_SHIFT);
	uint32_t n_ck = so->ck_base + so->ck.n;
	uint32_t first = fresh ? 0 : o->ck_first;

	if (so->ck_base > (fresh ? 0 : o->img_n_ck))
		first = so->ck_base;
	if (ck > n_ck)
		ck = n_ck;
	return ck > first ? ck : first;
}

/* Pass 1 of applying a snapshot: everything that can fail.  nw[i] is the
 * object for snapshot object i (an old one, or fresh), meta[i] its new
 * META bytes. */
static int snap_prepare(struct djmfs_file *f, const struct djmfs__snap *s,
			struct cobj **nw, uint8_t **meta, int *fresh)
{
	for (uint32_t i = 0; i < s->n_objs; i++) {
		const struct djmfs__snap_obj *so = &s->objs[i];
		struct cobj *o = djmfs__obj_find(f, so->id);

		fresh[i] = !o;
		if (!o && !(o = calloc(1, sizeof(*o))))
			return -ENOMEM;
		nw[i] = o;
		/* A delta against what we lack, unless it starts the map
		 * (or the sums) afresh at the first the server keeps. */
		if ((so->ext_base > (fresh[i] ? 0 : o->img_n_ext) &&
		     so->ext_base != so->ext_first) ||
		    (so->ck_base > (fresh[i] ? 0 : o->img_n_ck) &&
		     so->ck_base > so->start >> DJMFS_CK_SHIFT) ||
		    (!fresh[i] && so->start < o->start) ||
		    (uint64_t)so->ck_base + so->ck.n > UINT32_MAX ||
		    snap_ck_first(o, so, fresh[i]) > so->ck_base + so->ck.n)
			return -EBADMSG;
		if (djmfs__ext_reserve(o, so->ext_total) < 0 ||
		    djmfs__ck_reserve(o, so->ck_base + so->ck.n -
					 snap_ck_first(o, so, fresh[i])) < 0)
			return -ENOMEM;
		/* META bytes come whole, or not at all when unchanged. */
		if ((so->attrs & DJMFS_ATTR_META) && so->size > 0 &&
		    (so->meta_len ? so->meta_len != so->size
				  : fresh[i] || o->img_size != so->size ||
					    !o->img_meta))
			return -EBADMSG;
		if (so->meta_len > 0 && !(meta[i] = malloc(so->meta_len)))
			return -ENOMEM;
		if (so->meta_len > 0)
			memcpy(meta[i], so->meta, so->meta_len);
	}
	return 0;
}

/* Pass 2's trims: the firsts @o keeps after @so (invariant 11).  The
 * sums it keeps move down to ck[0]; those below the new first, and all it
 * held before a gap, go. */
static void snap_firsts(struct cobj *o, const struct djmfs__snap_obj *so)
{
	uint32_t ck = snap_ck_first(o, so, 0);

	/* Offsets known past the new first extent stay right (invariant
	 * 10); a map sent afresh from it has none yet. */
	if (so->ext_base > o->img_n_ext)
		o->n_at = 0;
	o->ext_first = so->ext_first;
	o->first_at = so->first_at;
	if (so->ck_base <= o->img_n_ck && ck > o->ck_off &&
	    so->ck_base > ck)
		memmove(o->ck, o->ck + (ck - o->ck_off),
			(size_t)(so->ck_base - ck) * sizeof(*o->ck));
	o->ck_first = o->ck_off = ck;
	o->start = so->start;
}

/* Pass 2: cannot fail. */
static void snap_commit_obj(struct cobj *o, const struct djmfs__snap_obj *so,
			    uint8_t *meta)
{
	o->id = so->id;
	o->attrs = so->attrs;
	memcpy(o->name, so->name, sizeof(o->name));
	snap_firsts(o, so);
	djmfs__ext_changed(o, so->ext_base);
	for (uint32_t k = 0; k < so->ext.n; k++)
		o->ext[so->ext_base + k] = djmfs__extv_at(so->ext, k);
	for (uint32_t k = 0; k < so->ck.n; k++)
		if (so->ck_base + k >= o->ck_off)
			o->ck[so->ck_base + k - o->ck_off] =
				djmfs__ckv_at(so->ck, k);
	o->n_ck = o->img_n_ck = so->ck_base + so->ck.n;
	o->run_ck = o->img_last_ck = so->last_ck;
	o->ck_flags = o->img_ck_flags = so->ck_flags;
	o->n_ext = o->img_n_ext = so->ext_total;
	o->img_last_len = o->n_ext ? o->ext[o->n_ext - 1].len : 0;
	o->size = o->img_size = so->size;
	if (meta || so->size == 0) {
		free(o->img_meta);
		o->img_meta = meta;
	}
}

/*
 * Moves the handle's image to @s (under f->mu): a delta replaces each
 * object's extents from ext_base on; objects missing from @s are gone.
 * All or nothing.  Returns 0, -EBADMSG (a delta that does not fit what
 * the handle holds) or -ENOMEM.
 */
int djmfs__apply_snap(struct djmfs_file *f, const struct djmfs__snap *s)
{
	struct cobj *nw[DJMFS_MAX_OBJS] = { 0 };
	uint8_t *meta[DJMFS_MAX_OBJS] = { 0 };
	int fresh[DJMFS_MAX_OBJS] = { 0 };
	int err = 0;

	if (!s->unchanged) {
		err = snap_prepare(f, s, nw, meta, fresh);
		for (uint32_t i = 0; err < 0 && i < s->n_objs; i++) {
			free(meta[i]);
			if (fresh[i])
				djmfs__cobj_free(nw[i]);
		}
		if (err < 0)
			return err;
		for (uint32_t i = 0; i < s->n_objs; i++)
			snap_commit_obj(nw[i], &s->objs[i], meta[i]);
		for (uint32_t i = 0; i < f->n_objs; i++) {
			int kept = 0;

			for (uint32_t k = 0; k < s->n_objs; k++)
				kept |= nw[k] == f->objs[i];
			if (!kept)
				djmfs__cobj_free(f->objs[i]);
		}
		memcpy(f->objs, nw, sizeof(nw));
		f->n_objs = s->n_objs;
	}
	memcpy(f->name, s->name, sizeof(f->name));
	f->ino = s->ino;
	f->version = s->version;
	f->sflags = s->flags;
	f->ctime_ns = s->ctime_ns;
	f->mtime_ns = s->mtime_ns;
	return 0;
}

void djmfs__fill_known(struct djmfs_file *f, struct djmfs__known *k)
{
	k->version = f->version;
	k->n = f->n_objs;
	for (uint32_t i = 0; i < f->n_objs; i++) {
		k->o[i].id = f->objs[i]->id;
		k->o[i].n_ext = f->objs[i]->img_n_ext;
		k->o[i].n_ck = f->objs[i]->img_n_ck;
	}
}

