/*
 * The metadata state of the DJMFS server: the namespace as of the last
 * applied journal record (the working root), the namespace as of the last
 * record known durable (the durable root, what readers are shown), the
 * roots in between, the inode table and the reservations of allocation
 * units handed to writers (their indexes are in djmfs_meta_sets.c, the
 * checkpoint image of the state in djmfs_meta_img.c).  Every mutation
 * arrives as a journal record and is applied all or nothing: a record is
 * validated in full before any state changes, so the server can apply a
 * record first and journal it only if it was accepted, and replay
 * reaches the same state.
 *
 * Invariants:
 *  1. working is the state after record seq; durable is the state after
 *     record durable_seq <= seq; the ring holds, oldest first, (s, root)
 *     for every candidate state s after durable's -- every applied record,
 *     or in batched mode every sealed one -- so mark_durable(x) makes the
 *     newest entry with s <= x durable.  In batched mode, from the first
 *     change after a seal (which path-copies a new root) until the next
 *     seal, nothing else references the working root, which is what lets
 *     commit_file edit it in place.
 *  2. Every file in working has one inode entry (ino -> name), and no
 *     other entry exists; every ino < next_ino.
 *  3. A file's reservation is a sorted set of disjoint, non-adjacent unit
 *     runs inside [0, n_aus); reserved counts the units of all of them.
 *     A unit leaves a reservation when a PUBLISH maps it, or when RELEASE,
 *     FILE_UNLINK or drop_reservations gives it back.
 *  4. A DATA object owns the units the live parts of its extents touch
 *     (djmfs__obj_live: the bytes at or past its start); the unit
 *     holding its map's end is owned whole, so the next extent may
 *     continue in it.  No unit is owned by two objects, because a new
 *     extent may only touch that end unit or units it takes out of the
 *     file's reservation, and a trim lets go only of units no live byte
 *     is in.
 *  5. A refused record changes nothing, seq included.
 *  6. Every inode entry's wf is the record the working root holds under
 *     its name: whatever puts a file into working (commit_file, loading
 *     a checkpoint) sets it in the same step.
 *
 * Transitions (djmfs__meta_apply, by record type):
 *   FILE_CREATE  ap_file_create  inode table + root
 *   FILE_UNLINK  ap_file_unlink  root, inode table; units out (on_free)
 *   OBJ_CREATE / OBJ_DELETE / OBJ_SETATTR   ap_obj_*   root
 *   PUBLISH      ap_publish      root + reservation (units mapped)
 *   RESERVE / RELEASE            ap_reserve / ap_release   reservation
 *   QUARANTINE   ap_quarantine   root
 *   TRIM         ap_trim         root; units below the start out
 *                                (on_free, deferred)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_meta.h"

#define RING_MIN 16u

/* ------------------------------------------------------------------ */
/* The state                                                           */
/* ------------------------------------------------------------------ */

static void ring_clear(struct djmfs__meta *m)
{
	while (m->ring_n) {
		djmfs__root_unref(m->ring[m->ring_head].root);
		m->ring_head = (m->ring_head + 1) % m->ring_cap;
		m->ring_n--;
	}
	m->ring_head = 0;
}

static int ring_reserve(struct djmfs__meta *m)
{
	uint32_t cap = m->ring_cap ? m->ring_cap * 2 : RING_MIN, i;
	struct djmfs__mstate *r;

	if (m->ring_n < m->ring_cap)
		return 0;
	r = malloc(cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < m->ring_n; i++)
		r[i] = m->ring[(m->ring_head + i) % m->ring_cap];
	free(m->ring);
	m->ring = r;
	m->ring_cap = cap;
	m->ring_head = 0;
	return 0;
}

/* Forgets everything: the namespace becomes @empty (an empty root whose
 * reference this takes), after record 0.  Cannot fail. */
void djmfs__meta_reset(struct djmfs__meta *m, struct djmfs__root *empty)
{
	ring_clear(m);
	djmfs__root_unref(m->working);
	djmfs__root_unref(m->durable);
	m->working = empty;
	m->durable = djmfs__root_ref(empty);
	djmfs__im_clear(&m->inos);
	m->seq = m->durable_seq = m->sealed_seq = 0;
	m->next_ino = 1;
	m->reserved = 0;
}

int djmfs__meta_new(struct djmfs__meta **out, const struct djmfs__meta_opts *o)
{
	struct djmfs__meta *m;
	struct djmfs__root *empty;

	*out = NULL;
	if (!o->au_size || o->n_aus > (UINT64_MAX - o->data_off) / o->au_size)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m || djmfs__root_new(&empty)) {
		free(m);
		return -ENOMEM;
	}
	m->o = *o;
	m->data_end = o->data_off + o->n_aus * o->au_size;
	djmfs__meta_reset(m, empty);
	*out = m;
	return 0;
}

void djmfs__meta_free(struct djmfs__meta *m)
{
	if (!m)
		return;
	ring_clear(m);
	free(m->ring);
	djmfs__root_unref(m->working);
	djmfs__root_unref(m->durable);
	djmfs__im_clear(&m->inos);
	free(m);
}

uint64_t djmfs__meta_seq(const struct djmfs__meta *m)
{
	return m->seq;
}

uint64_t djmfs__meta_next_ino(const struct djmfs__meta *m)
{
	return m->next_ino;
}

const char *djmfs__meta_name(const struct djmfs__meta *m, uint64_t ino)
{
	const struct djmfs__ient *e = djmfs__im_find(&m->inos, ino);

	return e ? e->name : NULL;
}

struct djmfs__root *djmfs__meta_working(const struct djmfs__meta *m)
{
	return m->working;
}

struct djmfs__root *djmfs__meta_durable(const struct djmfs__meta *m)
{
	return m->durable;
}

uint64_t djmfs__meta_durable_seq(const struct djmfs__meta *m)
{
	return m->durable_seq;
}

void djmfs__meta_mark_durable(struct djmfs__meta *m, uint64_t seq)
{
	while (m->ring_n && m->ring[m->ring_head].seq <= seq) {
		djmfs__root_unref(m->durable);
		m->durable = m->ring[m->ring_head].root;
		m->durable_seq = m->ring[m->ring_head].seq;
		m->ring_head = (m->ring_head + 1) % m->ring_cap;
		m->ring_n--;
	}
}

/* ------------------------------------------------------------------ */
/* Units of extents                                                    */
/* ------------------------------------------------------------------ */

/* Units [*u0, *u1] that the part of an extent inside the data area
 * touches; 0 when no part is inside. */
static int ext_units(const struct djmfs__meta *m, uint64_t off, uint64_t len,
		     uint64_t *u0, uint64_t *u1)
{
	uint64_t lo = off > m->o.data_off ? off : m->o.data_off;
	uint64_t hi = len > m->data_end - off || off > m->data_end ?
			      m->data_end : off + len;

	if (lo >= hi)
		return 0;
	*u0 = (lo - m->o.data_off) / m->o.au_size;
	*u1 = (hi - 1 - m->o.data_off) / m->o.au_size;
	return 1;
}

static int urun_cmp(const void *a, const void *b)
{
	const struct djmfs__urun *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * Every unit the live parts of the extents of @f's objects touch (all of
 * them, or only index @only >= 0), each once, as sorted runs in *out
 * (caller frees).  Sorting makes even a damaged map report no unit
 * twice.  Returns the number of runs or -ENOMEM.
 */
static int64_t file_units(const struct djmfs__meta *m,
			  const struct djmfs__file *f, int only,
			  struct djmfs__urun **out)
{
	uint64_t total = 0, n = 0, k = 0, u0, u1;
	struct djmfs__urun *r;
	uint32_t i, j;

	*out = NULL;
	for (i = 0; i < f->n_objs; i++)
		if (only < 0 || (int)i == only)
			total += f->objs[i]->n_ext - f->objs[i]->ext_first;
	if (!total)
		return 0;
	r = malloc(total * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < f->n_objs; i++) {
		const struct djmfs__obj *o = f->objs[i];

		for (j = o->ext_first;
		     (only < 0 || (int)i == only) && j < o->n_ext; j++) {
			struct djmfs_extent e = djmfs__obj_live(o, j);

			if (e.len && ext_units(m, e.offset, e.len, &u0, &u1))
				r[n++] = (struct djmfs__urun){ u0, u1 - u0 + 1 };
		}
	}
	if (n > 1)
		qsort(r, n, sizeof(*r), urun_cmp);
	for (i = 0; i < n; i++) {
		if (k && r[i].first <= r[k - 1].first + r[k - 1].count) {
			uint64_t end = r[i].first + r[i].count;

			if (end > r[k - 1].first + r[k - 1].count)
				r[k - 1].count = end - r[k - 1].first;
		} else {
			r[k++] = r[i];
		}
	}
	*out = r;
	return (int64_t)k;
}

/* Runs of @a (sorted, disjoint) not in @b (likewise), in place into @a.
 * Returns how many are left. */
static uint64_t urun_minus(struct djmfs__urun *a, uint64_t na,
			   const struct djmfs__urun *b, uint64_t nb)
{
	struct djmfs__urun *out;
	uint64_t i, j = 0, n = 0, cap = na + nb;

	out = malloc((cap ? cap : 1) * sizeof(*out));
	if (!out)
		return 0; /* units stay counted as owned: a leak, not a loss */
	for (i = 0; i < na; i++) {
		uint64_t lo = a[i].first, hi = a[i].first + a[i].count;

		while (j < nb && b[j].first + b[j].count <= lo)
			j++;
		for (uint64_t k = j; k < nb && b[k].first < hi; k++) {
			if (b[k].first > lo)
				out[n++] = (struct djmfs__urun){
					lo, b[k].first - lo };
			if (b[k].first + b[k].count > lo)
				lo = b[k].first + b[k].count;
		}
		if (lo < hi)
			out[n++] = (struct djmfs__urun){ lo, hi - lo };
	}
	memcpy(a, out, n * sizeof(*out));
	free(out);
	return n;
}

static void report(const struct djmfs__meta *m, const struct djmfs__urun *r,
		   uint64_t n, enum djmfs__free_kind kind)
{
	uint64_t i;

	for (i = 0; m->o.on_free && i < n; i++)
		m->o.on_free(m->o.arg, r[i].first, r[i].count, kind);
}

/* ------------------------------------------------------------------ */
/* Applying records                                                    */
/* ------------------------------------------------------------------ */

static int no(struct djmfs__meta *m, int err, const char *why)
{
	m->why = why;
	return err;
}

/* The live file @ino in the working state, with its inode entry. */
static int lookup(struct djmfs__meta *m, uint64_t ino, struct djmfs__ient **e,
		  const struct djmfs__file **f)
{
	*e = djmfs__im_find(&m->inos, ino);
	*f = *e ? (*e)->wf : NULL;
	if (!*f)
		return no(m, -ENOENT, "no such inode");
	return 0;
}

/* Puts @nf (owned) into the working root: in place while the working
 * root is private (batched mode, after the first change since a seal),
 * else into a path-copied new root; @e (NULL: none yet) follows it. */
static int commit_file(struct djmfs__meta *m, struct djmfs__ient *e,
		       struct djmfs__file *nf)
{
	struct djmfs__root *nr;
	int err;

	if (m->o.batched && djmfs__root_replace_owned(m->working, nf) == 0)
		goto out;
	err = djmfs__root_put(m->working, nf, &nr);

	if (err)
		return no(m, err, "root_put");
	djmfs__root_unref(m->working);
	m->working = nr;
out:
	if (e)
		e->wf = nf;
	return 0;
}

static int ap_file_create(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	struct djmfs__file *f = NULL;
	struct djmfs__ient e = { r->ino, NULL, { NULL, 0, 0 }, NULL };
	int err;

	if (r->ino != m->next_ino)
		return no(m, -EINVAL, "ino is not the next one");
	if (djmfs__root_find(m->working, r->u.create.name))
		return no(m, -EEXIST, "name taken");
	err = djmfs__file_new(&f, r->ino, r->u.create.name, r->time_ns);
	if (err)
		return no(m, err, "bad name");
	e.name = strdup(r->u.create.name);
	if (!e.name || djmfs__im_reserve(&m->inos)) {
		err = no(m, -ENOMEM, "inode table");
		goto err;
	}
	e.wf = f;
	err = commit_file(m, NULL, f);
	f = NULL;
	if (err)
		goto err;
	djmfs__im_place(&m->inos, &e);
	m->next_ino++;
	return 0;
err:
	djmfs__file_unref(f);
	free(e.name);
	return err;
}

static int ap_file_unlink(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__root *nr;
	struct djmfs__urun *units;
	struct djmfs__ient *e;
	int64_t n;
	int err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	n = file_units(m, f, -1, &units);
	if (n < 0)
		return no(m, (int)n, "unit list");
	err = djmfs__root_del(m->working, f->name, &nr);
	if (err) {
		free(units);
		return no(m, err, "root_del");
	}
	djmfs__root_unref(m->working); /* f may be gone from here on */
	m->working = nr;
	for (uint32_t i = 0; i < e->res.n; i++)
		m->reserved -= e->res.r[i].count;
	report(m, e->res.r, e->res.n, DJMFS_FREE_NOW);
	report(m, units, (uint64_t)n, DJMFS_FREE_DEFERRED);
	djmfs__im_remove(&m->inos, e);
	free(units);
	return 0;
}

/* Checks an OBJ_CREATE against @f. */
static int obj_create_check(struct djmfs__meta *m, const struct djmfs__file *f,
			    const struct djmfs__jrec *r)
{
	uint32_t i, a = r->u.obj.attrs;

	if (!djmfs__attrs_valid(a))
		return no(m, -EINVAL, "bad attributes");
	if (r->u.obj.obj_id != f->next_obj_id)
		return no(m, -EINVAL, "obj_id is not the next one");
	if (!r->u.obj.name[0])
		return no(m, -EINVAL, "empty object name");
	for (i = 0; i < f->n_objs; i++) {
		if (!strcmp(f->objs[i]->name, r->u.obj.name))
			return no(m, -EEXIST, "object name taken");
		if ((a & f->objs[i]->attrs) & DJMFS_ATTR_SYNC)
			return no(m, -EEXIST, "a SYNC object exists");
	}
	if (f->n_objs >= DJMFS_MAX_OBJS)
		return no(m, -ENOSPC, "too many objects");
	return 0;
}

static int ap_obj_create(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__file *nf = NULL;
	struct djmfs__obj *o = NULL;
	struct djmfs__ient *e;
	int err = lookup(m, r->ino, &e, &f);

	if (!err)
		err = obj_create_check(m, f, r);
	if (err)
		return err;
	if (djmfs__file_dup(f, &nf) || djmfs__obj_new(&o, r->u.obj.obj_id,
						      r->u.obj.attrs,
						      r->u.obj.name)) {
		djmfs__file_unref(nf);
		return no(m, -ENOMEM, "new object");
	}
	nf->objs[nf->n_objs++] = o;
	nf->next_obj_id++;
	nf->version++;
	return commit_file(m, e, nf);
}

static int ap_obj_delete(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__file *nf;
	struct djmfs__urun *units;
	struct djmfs__ient *e;
	int64_t n;
	int i, err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	i = djmfs__file_obj_index(f, r->u.obj.obj_id);
	if (i < 0)
		return no(m, -ENOENT, "no such object");
	n = file_units(m, f, i, &units);
	if (n < 0)
		return no(m, (int)n, "unit list");
	err = djmfs__file_dup(f, &nf);
	if (!err) {
		djmfs__file_remove_obj(nf, (uint32_t)i);
		nf->version++;
		err = commit_file(m, e, nf);
	}
	if (!err)
		report(m, units, (uint64_t)n, DJMFS_FREE_DEFERRED);
	free(units);
	return err ? no(m, err, "new file version") : 0;
}

static int ap_obj_setattr(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__file *nf = NULL;
	struct djmfs__obj *o = NULL;
	struct djmfs__ient *e;
	uint32_t a = r->u.obj.attrs, j;
	int i, err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	i = djmfs__file_obj_index(f, r->u.obj.obj_id);
	if (i < 0)
		return no(m, -ENOENT, "no such object");
	if (((a ^ f->objs[i]->attrs) & ~DJMFS_ATTR_SYNC) ||
	    !djmfs__attrs_valid(a))
		return no(m, -EINVAL, "only SYNC may change");
	for (j = 0; (a & DJMFS_ATTR_SYNC) && j < f->n_objs; j++)
		if ((int)j != i && (f->objs[j]->attrs & DJMFS_ATTR_SYNC))
			return no(m, -EEXIST, "a SYNC object exists");
	if (djmfs__file_dup(f, &nf) || djmfs__obj_dup(f->objs[i], &o)) {
		djmfs__file_unref(nf);
		return no(m, -ENOMEM, "new object version");
	}
	o->attrs = a;
	djmfs__file_set_obj(nf, (uint32_t)i, o);
	nf->version++;
	return commit_file(m, e, nf);
}

static int ap_quarantine(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__file *nf;
	struct djmfs__ient *e;
	int err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	if (djmfs__file_dup(f, &nf))
		return no(m, -ENOMEM, "new file version");
	nf->flags |= DJMFS_FILE_QUARANTINED;
	return commit_file(m, e, nf);
}

/* ---- TRIM ---- */

/* The new version of object @i with @start, and the units it lets go:
 * those the old version's live bytes touch and the new one's do not
 * (whole units only: one still holding a live byte stays). */
static int ap_trim(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__file *f;
	struct djmfs__file *nf = NULL;
	struct djmfs__obj *o = NULL;
	struct djmfs__urun *before = NULL, *after = NULL;
	struct djmfs__ient *e;
	int64_t nb, na = 0;
	int i, err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	i = djmfs__file_obj_index(f, r->u.trim.obj_id);
	if (i < 0)
		return no(m, -ENOENT, "no such object");
	if (f->objs[i]->attrs & DJMFS_ATTR_META)
		return no(m, -EINVAL, "trim of a META object");
	if (r->u.trim.start > f->objs[i]->size)
		return no(m, -EINVAL, "start past the published size");
	if (r->u.trim.start <= f->objs[i]->start)
		return no(m, -EINVAL, "start not past the current one");
	nb = file_units(m, f, i, &before);
	if (nb < 0)
		return no(m, (int)nb, "unit list");
	err = djmfs__file_dup(f, &nf);
	if (!err)
		err = djmfs__obj_dup(f->objs[i], &o);
	if (!err)
		err = djmfs__obj_trim(o, r->u.trim.start);
	if (!err) {
		djmfs__file_set_obj(nf, (uint32_t)i, o);
		o = NULL;
		na = file_units(m, nf, i, &after);
		err = na < 0 ? (int)na : 0;
	}
	if (!err) {
		nf->version++;
		err = commit_file(m, e, nf);
		nf = NULL;
	}
	if (!err) {
		nb = (int64_t)urun_minus(before, (uint64_t)nb, after,
					 (uint64_t)na);
		report(m, before, (uint64_t)nb, DJMFS_FREE_DEFERRED);
	}
	djmfs__obj_unref(o);
	djmfs__file_unref(nf);
	free(before);
	free(after);
	return err ? no(m, err, "new object version") : 0;
}

/* ---- PUBLISH ---- */

/* What one object would look like after the extents checked so far. */
struct psim {
	int seen;
	uint64_t end;	 /* end of the last extent; 0: no map */
	uint64_t maplen; /* bytes mapped */
	uint64_t size;
};

/* The file's reservation as a PUBLISH would leave it: copied only when
 * an extent takes a unit out of it, which most publishes (appending
 * inside the object's end unit) never do. */
struct pres {
	const struct djmfs__rset *orig;
	struct djmfs__rset copy;
	int copied;
};

static int pres_take(struct pres *p, uint64_t first, uint64_t count)
{
	if (!p->copied) {
		if (djmfs__rset_copy(&p->copy, p->orig))
			return -ENOMEM;
		p->copied = 1;
	}
	return djmfs__rset_take(&p->copy, first, count);
}

/* Checks one new extent of a DATA object and takes the units it needs
 * out of @res. */
static int pub_extent(struct djmfs__meta *m, struct psim *s, struct pres *res,
		      struct djmfs_extent x)
{
	uint64_t u0 = 0, u1 = 0, eu = 0;
	int has_end = s->end > m->o.data_off && s->end <= m->data_end;
	int err;

	if (!x.len || x.offset % DJMFS_BLOCK || x.offset < m->o.data_off ||
	    x.offset > m->data_end || x.len > m->data_end - x.offset)
		return no(m, -EINVAL, "extent empty, misaligned or outside");
	ext_units(m, x.offset, x.len, &u0, &u1);
	if (has_end)
		eu = (s->end - 1 - m->o.data_off) / m->o.au_size;
	if (has_end && u0 <= eu && eu <= u1) {
		/* The object's own end unit: only past the map end. */
		if (x.offset < s->end)
			return no(m, -EPERM, "extent overlaps the map end");
		u0 = eu + 1;
	}
	if (u0 <= u1) {
		err = pres_take(res, u0, u1 - u0 + 1);
		if (err)
			return no(m, err == -ENOENT ? -EPERM : err,
				  "extent outside the reservation");
	}
	s->end = x.offset + x.len;
	s->maplen += x.len;
	return 0;
}

static int pub_obj_check(struct djmfs__meta *m, const struct djmfs__obj *o,
			 struct psim *s, struct pres *res,
			 const struct djmfs__pub_obj *p, int has_ck)
{
	uint32_t k;
	int err;

	if (!s->seen) {
		s->seen = 1;
		s->end = djmfs__obj_map_end(o);
		s->maplen = djmfs__obj_maplen(o);
		s->size = o->size;
	}
	if (o->attrs & DJMFS_ATTR_META) {
		if (!p->has_meta || p->ext.n)
			return no(m, -EINVAL, "META without bytes, or extents");
		if (p->ck_first || p->ck.n || p->last_ck)
			return no(m, -EINVAL, "checksums for a META object");
		if (p->meta_len > DJMFS_META_MAX)
			return no(m, -EFBIG, "META object too large");
		if (p->size != p->meta_len)
			return no(m, -EINVAL, "META size is not its length");
		return 0;
	}
	if (p->has_meta)
		return no(m, -EINVAL, "bytes for a DATA object");
	for (k = 0; k < p->ext.n; k++) {
		err = pub_extent(m, s, res, djmfs__extv_at(p->ext, k));
		if (err)
			return err;
	}
	if (p->size < s->size || p->size > s->maplen)
		return no(m, -EINVAL, "DATA size shrinks or exceeds its map");
	if (has_ck && (p->ck_first != s->size >> DJMFS_CK_SHIFT ||
		       (uint64_t)p->ck_first + p->ck.n !=
			       p->size >> DJMFS_CK_SHIFT ||
		       (p->size % DJMFS_CK_BLOCK == 0 && p->last_ck)))
		return no(m, -EINVAL, "checksums do not match the sizes");
	s->size = p->size;
	return 0;
}

/* New object version @o takes the publish's sums for @p (its size not
 * yet set).  An object whose sums stopped keeps them stopped: the bytes
 * before were never summed, so later sums could not be chained on. */
static int pub_sums(struct djmfs__obj *o, const struct djmfs__pub_obj *p,
		    int has_ck)
{
	int err = 0;

	if (!has_ck) {
		if (p->size != o->size)
			o->ck_flags |= DJMFS_OBJ_CK_GAP;
		return 0;
	}
	if (o->ck_flags & DJMFS_OBJ_CK_GAP)
		return 0;
	for (uint32_t k = 0; !err && k < p->ck.n; k++)
		err = djmfs__obj_ck_append(o, djmfs__ckv_at(p->ck, k));
	o->last_ck = p->last_ck;
	return err;
}

/* Builds the new file version; the checks have passed. */
static int pub_build(const struct djmfs__file *f, const struct djmfs__jrec *r,
		     struct djmfs__file **out)
{
	const struct djmfs__publish *pub = &r->u.publish;
	uint8_t fresh[DJMFS_MAX_OBJS] = { 0 };
	struct djmfs__file *nf;
	struct djmfs__obj *o;
	uint32_t k, x;
	int i, err = djmfs__file_dup(f, &nf);

	for (k = 0; !err && k < pub->n_objs; k++) {
		const struct djmfs__pub_obj *p = &pub->objs[k];

		i = djmfs__file_obj_index(nf, p->obj_id);
		if (!fresh[i]) {
			err = djmfs__obj_dup(nf->objs[i], &o);
			if (err)
				break;
			djmfs__file_set_obj(nf, (uint32_t)i, o);
			fresh[i] = 1;
		}
		o = nf->objs[i];
		if (p->has_meta)
			err = djmfs__obj_set_meta(o, p->meta, p->meta_len);
		for (x = 0; !err && x < p->ext.n; x++) {
			struct djmfs_extent e = djmfs__extv_at(p->ext, x);

			err = djmfs__obj_append(o, e.offset, e.len);
		}
		if (!err && !p->has_meta)
			err = pub_sums(o, p, pub->has_ck);
		o->size = p->size;
	}
	if (err) {
		djmfs__file_unref(nf);
		return err;
	}
	nf->version = pub->base_version + 1;
	nf->mtime_ns = r->time_ns;
	*out = nf;
	return 0;
}

static int ap_publish(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const struct djmfs__publish *pub = &r->u.publish;
	struct psim sim[DJMFS_MAX_OBJS];
	const struct djmfs__file *f;
	struct djmfs__file *nf;
	struct pres res = { NULL, { NULL, 0, 0 }, 0 };
	struct djmfs__ient *e;
	uint64_t taken = 0;
	uint32_t k;
	int i, err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	if (pub->base_version != f->version)
		return no(m, -ESTALE, "base version is not the current one");
	if (pub->n_objs > DJMFS_MAX_OBJS)
		return no(m, -EINVAL, "too many objects");
	res.orig = &e->res;
	memset(sim, 0, sizeof(sim));
	for (k = 0; !err && k < pub->n_objs; k++) {
		i = djmfs__file_obj_index(f, pub->objs[k].obj_id);
		err = i < 0 ? no(m, -ENOENT, "no such object")
			    : pub_obj_check(m, f->objs[i], &sim[i], &res,
					    &pub->objs[k], pub->has_ck);
	}
	if (!err) {
		err = pub_build(f, r, &nf);
		err = err ? no(m, err, "new file version")
			  : commit_file(m, e, nf);
	}
	if (err || !res.copied) {
		djmfs__rset_free(&res.copy);
		return err;
	}
	for (k = 0; k < e->res.n; k++)
		taken += e->res.r[k].count;
	for (k = 0; k < res.copy.n; k++)
		taken -= res.copy.r[k].count;
	m->reserved -= taken;
	djmfs__rset_free(&e->res);
	e->res = res.copy;
	return 0;
}

/* ---- RESERVE, RELEASE ---- */

/* RESERVE adds a run, RELEASE takes one out; -errno and the reason. */
typedef int (*run_fn)(struct djmfs__meta *m, struct djmfs__rset *res,
		      struct djmfs__run x);

static int run_reserve(struct djmfs__meta *m, struct djmfs__rset *res,
		       struct djmfs__run x)
{
	int err;

	if (!x.count || x.first >= m->o.n_aus ||
	    x.count > m->o.n_aus - x.first)
		return no(m, -EINVAL, "run outside the data area");
	err = djmfs__rset_add(res, x.first, x.count);
	return err ? no(m, err, "run already reserved") : 0;
}

static int run_release(struct djmfs__meta *m, struct djmfs__rset *res,
		       struct djmfs__run x)
{
	int err = x.count ? djmfs__rset_take(res, x.first, x.count) : -ENOENT;

	return err ? no(m, err == -ENOENT ? -EINVAL : err, "run not reserved")
		   : 0;
}

/* Applies @fn to every run of @r on a copy of the file's reservation,
 * which replaces it only if every run passed.  Returns the units the
 * runs hold, or -errno. */
static int64_t apply_runs(struct djmfs__meta *m, const struct djmfs__jrec *r,
			  run_fn fn)
{
	const struct djmfs__file *f;
	struct djmfs__rset res;
	struct djmfs__ient *e;
	int64_t total = 0;
	uint32_t k;
	int err = lookup(m, r->ino, &e, &f);

	if (err)
		return err;
	if (djmfs__rset_copy(&res, &e->res))
		return no(m, -ENOMEM, "reservation copy");
	for (k = 0; !err && k < r->u.runs.n; k++) {
		struct djmfs__run x = djmfs__runv_at(r->u.runs, k);

		err = fn(m, &res, x);
		total += x.count;
	}
	if (err) {
		djmfs__rset_free(&res);
		return err;
	}
	djmfs__rset_free(&e->res);
	e->res = res;
	return total;
}

static int ap_reserve(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	int64_t n = apply_runs(m, r, run_reserve);

	if (n < 0)
		return (int)n;
	m->reserved += (uint64_t)n;
	return 0;
}

static int ap_release(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	int64_t n = apply_runs(m, r, run_release);
	uint32_t k;

	if (n < 0)
		return (int)n;
	m->reserved -= (uint64_t)n;
	for (k = 0; m->o.on_free && k < r->u.runs.n; k++) {
		struct djmfs__run x = djmfs__runv_at(r->u.runs, k);

		m->o.on_free(m->o.arg, x.first, x.count, DJMFS_FREE_NOW);
	}
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct djmfs__meta *m, const struct djmfs__jrec *r);
} ops[DJMFS_J_MAX] = {
	[DJMFS_J_FILE_CREATE] = { "FILE_CREATE", ap_file_create },
	[DJMFS_J_FILE_UNLINK] = { "FILE_UNLINK", ap_file_unlink },
	[DJMFS_J_OBJ_CREATE] = { "OBJ_CREATE", ap_obj_create },
	[DJMFS_J_OBJ_DELETE] = { "OBJ_DELETE", ap_obj_delete },
	[DJMFS_J_OBJ_SETATTR] = { "OBJ_SETATTR", ap_obj_setattr },
	[DJMFS_J_PUBLISH] = { "PUBLISH", ap_publish },
	[DJMFS_J_RESERVE] = { "RESERVE", ap_reserve },
	[DJMFS_J_RELEASE] = { "RELEASE", ap_release },
	[DJMFS_J_QUARANTINE] = { "QUARANTINE", ap_quarantine },
	[DJMFS_J_TRIM] = { "TRIM", ap_trim },
};

int djmfs__meta_apply(struct djmfs__meta *m, const struct djmfs__jrec *r)
{
	const char *name = r->type < DJMFS_J_MAX && ops[r->type].fn ?
				   ops[r->type].name : "?";
	int err;

	m->why = "";
	if (name[0] == '?')
		err = no(m, -EINVAL, "unknown record type");
	else if (r->seq != m->seq + 1)
		err = no(m, -EINVAL, "seq out of order");
	else
		err = ring_reserve(m) ? no(m, -ENOMEM, "ring")
				      : ops[r->type].fn(m, r);
	if (err) {
		djmfs__log(m->o.log, DJMFS_LOG_DEBUG,
			   "meta_apply: %s seq %" PRIu64 " ino %" PRIu64
			   " refused (%s): %s", name, r->seq, r->ino, m->why,
			   strerror(-err));
		return err;
	}
	m->seq = r->seq;
	if (!m->o.batched) {
		m->ring[(m->ring_head + m->ring_n) % m->ring_cap] =
			(struct djmfs__mstate){ r->seq, djmfs__root_ref(m->working) };
		m->ring_n++;
	}
	return 0;
}

void djmfs__meta_skip_inos(struct djmfs__meta *m, uint64_t ino)
{
	if (ino > m->next_ino)
		m->next_ino = ino;
}

void djmfs__meta_skip(struct djmfs__meta *m, uint64_t seq)
{
	if (seq == m->seq + 1)
		m->seq = seq;
}

void djmfs__meta_seal(struct djmfs__meta *m)
{
	if (m->sealed_seq == m->seq || ring_reserve(m))
		return; /* out of memory: the next seal covers this one */
	m->ring[(m->ring_head + m->ring_n) % m->ring_cap] =
		(struct djmfs__mstate){ m->seq, djmfs__root_ref(m->working) };
	m->ring_n++;
	m->sealed_seq = m->seq;
}

/* ------------------------------------------------------------------ */
/* Reservations and maps, walked                                       */
/* ------------------------------------------------------------------ */

int djmfs__meta_walk_reserved(const struct djmfs__meta *m,
			      int (*fn)(void *arg, uint64_t ino,
					struct djmfs__run run),
			      void *arg)
{
	size_t i;
	uint32_t k;
	int ret;

	for (i = 0; i < m->inos.cap; i++) {
		const struct djmfs__ient *e = &m->inos.slot[i];

		for (k = 0; e->ino && k < e->res.n; k++) {
			uint64_t first = e->res.r[k].first;
			uint64_t left = e->res.r[k].count;

			while (left) { /* runs travel with u32 counts */
				uint32_t c = left > UINT32_MAX ? UINT32_MAX
							       : (uint32_t)left;

				struct djmfs__run run = { first, c };

				ret = fn(arg, e->ino, run);
				if (ret)
					return ret;
				first += c;
				left -= c;
			}
		}
	}
	return 0;
}

uint64_t djmfs__meta_reserved_aus(const struct djmfs__meta *m)
{
	return m->reserved;
}

uint64_t djmfs__meta_drop_reservations(struct djmfs__meta *m)
{
	uint64_t dropped = m->reserved;
	size_t i;

	for (i = 0; i < m->inos.cap; i++)
		djmfs__rset_free(&m->inos.slot[i].res);
	m->reserved = 0;
	return dropped;
}

struct mwalk {
	const struct djmfs__meta *m;
	int (*fn)(void *arg, uint64_t ino, uint64_t first_au, uint64_t n_aus);
	void *arg;
};

/* One file: per object, consecutive extents sharing or abutting units
 * make one range. */
static int walk_mapped_file(void *arg, const struct djmfs__file *f)
{
	const struct mwalk *w = arg;
	uint64_t u0, u1, a = 0, b = 0;
	uint32_t i, j;
	int have, ret;

	for (i = 0; i < f->n_objs; i++) {
		const struct djmfs__obj *o = f->objs[i];

		have = 0;
		for (j = o->ext_first; j < o->n_ext; j++) {
			struct djmfs_extent e = djmfs__obj_live(o, j);

			if (!e.len || !ext_units(w->m, e.offset, e.len, &u0, &u1))
				continue;
			if (have && u0 >= a && u0 <= b + 1) {
				b = u1 > b ? u1 : b;
				continue;
			}
			if (have && (ret = w->fn(w->arg, f->ino, a, b - a + 1)))
				return ret;
			a = u0;
			b = u1;
			have = 1;
		}
		if (have && (ret = w->fn(w->arg, f->ino, a, b - a + 1)))
			return ret;
	}
	return 0;
}

int djmfs__meta_walk_mapped(const struct djmfs__meta *m,
			    int (*fn)(void *arg, uint64_t ino,
				      uint64_t first_au, uint64_t n_aus),
			    void *arg)
{
	struct mwalk w = { m, fn, arg };

	return djmfs__root_walk(m->working, NULL, walk_mapped_file, &w);
}
