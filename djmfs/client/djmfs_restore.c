/*
 * The recovery layer of libdjmfs, file half: what a reconnect does to
 * the open file handles, called only by the reconnect thread
 * (djmfs_reconnect.c, which draws the client's layers).  A writer's
 * unpublished bytes in reserved units are read back before the server
 * can forget the reservation, every handle is opened again on the new
 * connection, the server's state is compared with ours to learn whether
 * a PUBLISH or object call lost with the connection was applied, and the
 * salvaged bytes are written to new units before the queue runs again.
 * It calls down into the handle layer (djmfs_file.h) and the connection;
 * neither calls it: a loss reaches it as state (every handle stale by
 * generation, operations parked, djmfs_file.h invariants 8 and 9).
 *
 *   loss      (no call)      the generation moves on: every handle
 *                            stale, its queue waits
 *   salvage   file_salvage   a quiet writer reads back its unpublished
 *                            bytes past its last published unit (they
 *                            lie in reserved units the server forgets)
 *   restore   file_restore   OPEN again (writers retry -EBUSY), judge:
 *                            SAME (nothing lost was applied), APPLIED
 *                            (the parked PUBLISH or object call was),
 *                            else lost; salvaged bytes to new units;
 *                            ready_gen set, the queue runs again
 *   give up   djmfs__files_lose        every handle lost
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* Reconnecting: stale handles, salvage, restore                        */
/* ------------------------------------------------------------------ */

/* Under f->mu: no step runs and none waits for a completion. */
static void wait_quiet(struct djmfs_file *f)
{
	while (f->driving || (f->head && f->head->waiting))
		pthread_cond_wait(&f->idle, &f->mu);
}

/* The first handle @want picks, with its busy count taken (invariant 7),
 * or NULL. */
static struct djmfs_file *grab(struct djmfs_client *c,
			       int (*want)(const struct djmfs_file *))
{
	struct djmfs_file *f;

	pthread_mutex_lock(&c->lock);
	for (f = c->files; f; f = f->next) {
		int yes;

		pthread_mutex_lock(&f->mu);
		yes = want(f);
		if (yes)
			f->busy++;
		pthread_mutex_unlock(&f->mu);
		if (yes)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return f;
}

/* Drops grab()'s count, running whatever the handle may run now. */
static void release(struct djmfs_file *f)
{
	pthread_mutex_lock(&f->mu);
	djmfs__drive_locked(f, 0);
}

static int is_stale(const struct djmfs_file *f)
{
	return djmfs__file_stale(f);
}

int djmfs__files_any_stale(struct djmfs_client *c)
{
	int n = 0;

	for (struct djmfs_file *f = c->files; f && !n; f = f->next) {
		pthread_mutex_lock(&f->mu);
		n = is_stale(f);
		pthread_mutex_unlock(&f->mu);
	}
	return n;
}

/* Device requests made and waited for on this thread (the reconnect
 * thread's read-back and rewrite). */
struct sync_io {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t pending;
	int err;
};

static void sync_io_done(struct djmfs__ioreq *r, int res)
{
	struct sync_io *w = r->user;

	pthread_mutex_lock(&w->mu);
	if (res < 0 && w->err == 0)
		w->err = res;
	if (--w->pending == 0)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Moves pieces @s between the volume and @buf (which holds object bytes
 * from @base on), split at DJMFS_IO_MAX.  Returns 0 or -errno. */
static int io_wait(struct djmfs_client *c, enum iosched_op rw,
		   const struct seg *s, uint32_t n, uint8_t *buf,
		   uint64_t base)
{
	struct sync_io w = { PTHREAD_MUTEX_INITIALIZER,
			     PTHREAD_COND_INITIALIZER, 1, 0 };
	struct djmfs__ioreq *r = NULL;
	uint32_t nr = 0;

	for (uint32_t i = 0; i < n; i++)
		nr += (uint32_t)((s[i].len + DJMFS_IO_MAX - 1) / DJMFS_IO_MAX);
	if (nr && !(r = calloc(nr, sizeof(*r))))
		return -ENOMEM;
	nr = 0;
	for (uint32_t i = 0; i < n; i++) {
		for (uint64_t at = 0; at < s[i].len; at += DJMFS_IO_MAX) {
			uint64_t left = s[i].len - at;

			r[nr] = (struct djmfs__ioreq){
				.op = rw, .off = s[i].phys + at,
				.len = (uint32_t)(left < DJMFS_IO_MAX ?
						  left : DJMFS_IO_MAX),
				.buf = buf + (s[i].logical - base) + at,
				.done = sync_io_done, .user = &w };
			pthread_mutex_lock(&w.mu);
			w.pending++;
			pthread_mutex_unlock(&w.mu);
			djmfs__io_submit(c->io, &r[nr++]);
		}
	}
	pthread_mutex_lock(&w.mu);
	if (--w.pending > 0)
		while (w.pending > 0)
			pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	free(r);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return w.err;
}

/* Object bytes a DATA object may keep where they are after a reconnect:
 * its published map and the rest of the unit holding that map's end
 * (the server lets the next extent continue there, invariant 5). */
static uint64_t keep_bytes(const struct djmfs_client *c, const struct cobj *o)
{
	struct djmfs_extent e;
	uint64_t pub = o->first_at, end, au = c->au_size;

	if (o->img_n_ext <= o->ext_first)
		return o->first_at;
	for (uint32_t i = o->ext_first; i < o->img_n_ext; i++)
		pub += djmfs__img_ext(o, i).len;
	e = djmfs__img_ext(o, o->img_n_ext - 1);
	end = e.offset + e.len;
	return pub + (au - (end - c->data_off) % au) % au;
}

/* Do the bytes read back match the sums staged when they were written?
 * Every cblock they hold whole is summed again; one that differs means
 * the device gave back other bytes, which must not be moved and
 * published under sums they fail. */
static int salvage_sums_ok(const struct cobj *o, const uint8_t *buf,
			   uint64_t lo, uint64_t hi)
{
	const uint64_t cb = DJMFS_CK_BLOCK;
	uint64_t part = (uint64_t)o->n_ck * cb;

	if (o->ck_flags & DJMFS_OBJ_CK_GAP)
		return 1;
	if (hi > o->size)
		hi = o->size;
	for (uint64_t k = (lo + cb - 1) / cb; (k + 1) * cb <= hi; k++)
		if (k >= o->ck_first &&
		    djmfs__crc32c(0, buf + (k * cb - lo), cb) !=
			    djmfs__ck_get(o, (uint32_t)k))
			return 0;
	if (o->size % cb && part >= lo && part < hi &&
	    djmfs__crc32c(0, buf + (part - lo), o->size - part) != o->run_ck)
		return 0;
	return 1;
}

/* Reads back object @o's bytes past keep_bytes (under f->mu, quiet). */
static int salvage_obj(struct djmfs_file *f, struct cobj *o)
{
	uint64_t lo = keep_bytes(f->c, o), hi = djmfs__map_bytes(o);
	struct seg *s = NULL;
	uint32_t n = 0;
	uint8_t *buf = NULL;
	int err;

	if (!(o->attrs & DJMFS_ATTR_DATA) || o->salv || hi <= lo)
		return 0;
	err = djmfs__map_range(o, 0, lo, hi, &s, &n);
	if (err >= 0 && posix_memalign((void **)&buf, BLK, hi - lo))
		err = -ENOMEM;
	if (err >= 0) {
		/* Quiet and stale: nothing changes the map meanwhile. */
		pthread_mutex_unlock(&f->mu);
		err = io_wait(f->c, IOSCHED_READ, s, n, buf, lo);
		pthread_mutex_lock(&f->mu);
	}
	free(s);
	if (err >= 0 && !salvage_sums_ok(o, buf, lo, hi))
		err = -EIO;
	if (err < 0) {
		free(buf);
		return err;
	}
	o->salv = buf;
	o->salv_off = lo;
	o->salv_len = hi - lo;
	return 0;
}

static void file_salvage(struct djmfs_file *f)
{
	int err = 0;

	pthread_mutex_lock(&f->mu);
	wait_quiet(f);
	for (uint32_t i = 0; err == 0 && i < f->n_objs &&
			     (f->oflags & DJMFS_O_WRITE); i++)
		err = salvage_obj(f, f->objs[i]);
	f->salvaged = 1;
	f->salv_err = err;
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs: %s: reading "
			   "back unpublished data to move it: %s", f->name,
			   strerror(-err));
}

static int needs_salvage(const struct djmfs_file *f)
{
	return is_stale(f) && !f->salvaged;
}

void djmfs__files_salvage(struct djmfs_client *c)
{
	struct djmfs_file *f;

	while ((f = grab(c, needs_salvage))) {
		file_salvage(f);
		release(f);
	}
}

/* ---- judging a writer's reopened file ---- */

enum verdict { V_CONFLICT, V_SAME, V_APPLIED };

/* One side of a map comparison: the extents as one run of bytes. */
struct mapcur {
	const struct cobj *o; /* ours, or NULL: the server's v */
	int img;
	struct djmfs__extv v;
	uint32_t i, n;
	struct djmfs_extent e; /* what is left of the current extent */
};

static int mapcur_fill(struct mapcur *m)
{
	while (m->e.len == 0) {
		if (m->i == m->n)
			return 0;
		m->e = !m->o ? djmfs__extv_at(m->v, m->i)
		     : m->img ? djmfs__img_ext(m->o, m->i) : m->o->ext[m->i];
		m->i++;
	}
	return 1;
}

/* Do our map (image or staged) and the server's cover the same bytes of
 * the volume in the same order, however they are cut into extents?  A
 * trimmed map is compared from where the server's begins (first_at). */
static int same_map(const struct cobj *o, int img,
		    const struct djmfs__snap_obj *so)
{
	struct mapcur a = { o, img, { NULL, 0 }, o->ext_first,
			    img ? o->img_n_ext : o->n_ext, { 0, 0 } };
	struct mapcur b = { NULL, 0, so->ext, 0, so->ext.n, { 0, 0 } };
	uint64_t skip;

	if (so->ext_base != so->ext_first || so->first_at < o->first_at)
		return 0;
	for (skip = so->first_at - o->first_at; skip;) {
		uint64_t n;

		if (!mapcur_fill(&a))
			return 0;
		n = a.e.len < skip ? a.e.len : skip;
		a.e.offset += n;
		a.e.len -= n;
		skip -= n;
	}
	for (;;) {
		int ha = mapcur_fill(&a), hb = mapcur_fill(&b);
		uint64_t n;

		if (!ha || !hb)
			return ha == hb;
		if (a.e.offset != b.e.offset)
			return 0;
		n = a.e.len < b.e.len ? a.e.len : b.e.len;
		a.e.offset += n;
		a.e.len -= n;
		b.e.offset += n;
		b.e.len -= n;
	}
}

static int same_obj(const struct cobj *o, uint32_t attrs, int img,
		    const struct djmfs__snap_obj *so)
{
	const uint8_t *meta = img || !o->meta_dirty ? o->img_meta : o->meta;
	uint64_t size = img ? o->img_size : o->size;

	if (so->id != o->id || so->attrs != attrs || so->size != size)
		return 0;
	if (o->attrs & DJMFS_ATTR_META)
		return !size || (meta && so->meta_len == size &&
				 memcmp(meta, so->meta, size) == 0);
	return same_map(o, img, so);
}

/* Our objects in order, less @skip, against the server's first ones
 * (@set gets @attrs).  Returns how many matched, or -1 on a mismatch. */
static int same_objs(const struct djmfs_file *f, int img,
		     const struct djmfs__snap *s, uint32_t skip, uint32_t set,
		     uint32_t attrs)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < f->n_objs; i++) {
		const struct cobj *o = f->objs[i];

		if (o->id == skip)
			continue;
		if (k >= s->n_objs ||
		    !same_obj(o, o->id == set ? attrs : o->attrs, img,
			      &s->objs[k]))
			return -1;
		k++;
	}
	return (int)k;
}

/* Was the parked object call @op applied?  Sets *id for CREATE_OBJ. */
static int obj_done(const struct djmfs_file *f, const struct fop *op,
		    const struct djmfs__snap *s, uint32_t *id)
{
	const struct djmfs__snap_obj *last;
	int k;

	if (op->rpc_op == DJMFS_OP_CREATE_OBJ) {
		k = same_objs(f, 1, s, ALL_OBJS, ALL_OBJS, 0);
		if (k < 0 || (uint32_t)k + 1 != s->n_objs)
			return 0;
		last = &s->objs[k];
		*id = last->id;
		return last->attrs == op->attrs && last->size == 0 &&
		       strcmp(last->name, op->name) == 0;
	}
	if (op->rpc_op == DJMFS_OP_TRIM) {
		*id = op->obj_id;
		for (uint32_t i = 0; i < s->n_objs; i++)
			if (s->objs[i].id == op->obj_id &&
			    s->objs[i].start < op->off)
				return 0;
		return same_objs(f, 1, s, ALL_OBJS, ALL_OBJS, 0) ==
		       (int)s->n_objs;
	}
	if (op->rpc_op == DJMFS_OP_DELETE_OBJ) {
		*id = op->obj_id;
		return !djmfs__obj_find((struct djmfs_file *)f, op->obj_id) ? 0 :
		       same_objs(f, 1, s, op->obj_id, ALL_OBJS, 0) ==
			       (int)s->n_objs;
	}
	*id = op->obj_id;
	return same_objs(f, 1, s, ALL_OBJS, op->obj_id, op->attrs) ==
	       (int)s->n_objs;
}

/* Under f->mu: the server's state @s of a writer's file against ours.
 * SAME: it has our image (whatever was lost was not applied); APPLIED:
 * it has the parked head's effect too (its answer was lost). */
static enum verdict judge(const struct djmfs_file *f,
			  const struct djmfs__snap *s, uint32_t *id)
{
	const struct fop *op = f->head && f->head->parked ? f->head : NULL;

	if (s->version == f->version &&
	    same_objs(f, 1, s, ALL_OBJS, ALL_OBJS, 0) == (int)s->n_objs)
		return V_SAME;
	if (!op || s->version != f->version + 1)
		return V_CONFLICT;
	if (op->state == ST_PUBLISH &&
	    same_objs(f, 0, s, ALL_OBJS, ALL_OBJS, 0) == (int)s->n_objs)
		return V_APPLIED;
	if (op->state == ST_OBJ && obj_done(f, op, s, id))
		return V_APPLIED;
	return V_CONFLICT;
}

/* ---- restoring one handle ---- */

struct reopen {
	struct djmfs_file *f;
	int granted;
	uint32_t handle;
	uint64_t version;
	uint32_t id;
	enum verdict v;
	int err;
};

static void reopen_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct reopen *ro = arg;
	struct djmfs_file *f = ro->f;

	if (status < 0)
		return;
	pthread_mutex_lock(&f->mu);
	ro->granted = 1;
	ro->handle = m->u.open_resp.handle;
	ro->version = m->u.open_resp.snap.version;
	if (f->oflags & DJMFS_O_WRITE)
		ro->v = judge(f, &m->u.open_resp.snap, &ro->id);
	else
		ro->err = djmfs__apply_snap(f, &m->u.open_resp.snap);
	pthread_mutex_unlock(&f->mu);
}

/* OPEN on @gen; a writer retries -EBUSY (our old session may hold the
 * lock until its lease ends) within the reconnect window. */
static int reopen(struct djmfs_file *f, uint64_t gen, struct reopen *ro)
{
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	uint64_t pause = 10000000u;
	int err;

	if (!req)
		return -ENOMEM;
	req->h.op = DJMFS_OP_OPEN;
	req->u.open_req.flags = f->oflags & (DJMFS_O_READ | DJMFS_O_WRITE);
	memcpy(req->u.open_req.name, f->name, sizeof(f->name));
	for (;;) {
		err = djmfs__rpc_on(f->c, gen, req, reopen_reply, ro);
		if (err != -EBUSY ||
		    djmfs_now() + pause >= djmfs__conn_deadline(f->c))
			break;
		djmfs__conn_nap(f->c, pause);
		pause = pause * 2 > 500000000u ? 500000000u : pause * 2;
	}
	free(req);
	return err < 0 ? err : ro->err;
}

struct runs {
	struct djmfs__run *r;
	uint32_t n, cap;
};

static void runs_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct runs *rs = arg;
	uint32_t n = status == 0 ? m->u.reserve_resp.n : 0;
	struct djmfs__run *v;

	if (n == 0 || !(v = realloc(rs->r, (rs->n + n) * sizeof(*v))))
		return;
	rs->r = v;
	for (uint32_t i = 0; i < n; i++)
		rs->r[rs->n++] = djmfs__runv_at(m->u.reserve_resp, i);
}

/* RESERVE on @gen until @rs holds @units units.  Returns 0 or -errno. */
static int reserve_units(struct djmfs_file *f, uint64_t gen, uint64_t units,
			 struct runs *rs)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_RESERVE };
	uint64_t have = 0;
	int err = 0;

	while (err == 0 && have < units) {
		uint32_t before = rs->n;

		req.u.reserve_req.handle = f->handle;
		req.u.reserve_req.n_aus = (uint32_t)(units - have);
		err = djmfs__rpc_on(f->c, gen, &req, runs_reply, rs);
		if (err == 0 && rs->n == before)
			err = -ENOSPC;
		for (uint32_t i = before; err == 0 && i < rs->n; i++)
			have += rs->r[i].count;
	}
	return err;
}

/* Cuts a staged map down to its first @at bytes. */
static void map_truncate(struct cobj *o, uint64_t at)
{
	uint64_t pos = o->first_at;
	uint32_t i = o->ext_first;

	while (i < o->n_ext && pos + o->ext[i].len <= at)
		pos += o->ext[i++].len;
	djmfs__ext_changed(o, i);
	if (i < o->n_ext && pos < at)
		o->ext[i++].len = at - pos;
	o->n_ext = i;
}

/* Writes object @o's salvaged bytes to units from the front of @rs and
 * makes them its staged map's tail.  Returns the bytes, or -errno. */
static int64_t relocate_obj(struct djmfs_file *f, struct cobj *o,
			    struct runs *rs, uint32_t *used_run,
			    uint64_t *used_units)
{
	struct djmfs_client *c = f->c;
	struct seg *s = NULL;
	uint32_t n = 0;
	uint64_t at = o->salv_off, left = o->salv_len;
	int err = 0;

	while (left && *used_run < rs->n && err == 0) {
		struct djmfs__run *r = &rs->r[*used_run];
		uint64_t room = (r->count - *used_units) * (uint64_t)c->au_size;
		uint64_t take = left < room ? left : room;
		uint64_t units = (take + c->au_size - 1) / c->au_size;
		struct seg *v = realloc(s, (n + 1) * sizeof(*v));

		if (!v) {
			err = -ENOMEM;
			break;
		}
		s = v;
		s[n++] = (struct seg){ c->data_off + (r->first + *used_units) *
					       (uint64_t)c->au_size,
				       take, at };
		at += take;
		left -= take;
		*used_units += units;
		if (*used_units == r->count) {
			(*used_run)++;
			*used_units = 0;
		}
	}
	if (err == 0 && left)
		err = -ENOSPC;
	if (err == 0)
		err = io_wait(c, IOSCHED_WRITE, s, n, o->salv, o->salv_off);
	pthread_mutex_lock(&f->mu);
	if (err == 0)
		err = djmfs__ext_reserve(o, o->n_ext + n);
	if (err == 0) {
		map_truncate(o, o->salv_off);
		if (n && o->n_ext)
			djmfs__ext_changed(o, o->n_ext - 1);
		for (uint32_t i = 0; i < n; i++) {
			struct djmfs_extent *l = o->n_ext ?
				&o->ext[o->n_ext - 1] : NULL;

			if (l && l->offset + l->len == s[i].phys)
				l->len += s[i].len;
			else
				o->ext[o->n_ext++] = (struct djmfs_extent){
					s[i].phys, s[i].len };
		}
	}
	pthread_mutex_unlock(&f->mu);
	free(s);
	return err < 0 ? err : (int64_t)o->salv_len;
}

/* Moves every salvaged byte of a writer to new units (the old ones left
 * the reservation with the old session).  Leftover units become the
 * handle's reservation.  Returns the bytes moved, or -errno. */
static int64_t relocate(struct djmfs_file *f, uint64_t gen)
{
	struct runs rs = { NULL, 0, 0 };
	uint64_t units = 0, used_units = 0, au = f->c->au_size;
	uint32_t used_run = 0;
	int64_t moved = 0, r = 0;
	int err = 0;

	for (uint32_t i = 0; i < f->n_objs; i++)
		units += (f->objs[i]->salv_len + au - 1) / au;
	if (units)
		err = reserve_units(f, gen, units, &rs);
	for (uint32_t i = 0; err == 0 && i < f->n_objs; i++) {
		struct cobj *o = f->objs[i];

		if (!o->salv)
			continue;
		r = relocate_obj(f, o, &rs, &used_run, &used_units);
		err = r < 0 ? (int)r : 0;
		moved += r > 0 ? r : 0;
		free(o->salv);
		o->salv = NULL;
		o->salv_len = 0;
	}
	pthread_mutex_lock(&f->mu);
	f->n_res = 0;
	if (used_run < rs.n) {
		rs.r[used_run].first += used_units;
		rs.r[used_run].count -= (uint32_t)used_units;
	}
	for (uint32_t i = used_run; err == 0 && i < rs.n; i++) {
		if (f->n_res == f->res_cap) {
			uint32_t cap = f->res_cap ? f->res_cap * 2 : 4;
			struct djmfs__run *v = realloc(f->res, cap * sizeof(*v));

			if (!v)
				break; /* the units stay unused until close */
			f->res = v;
			f->res_cap = cap;
		}
		if (rs.r[i].count)
			f->res[f->n_res++] = rs.r[i];
	}
	pthread_mutex_unlock(&f->mu);
	free(rs.r);
	return err < 0 ? err : moved;
}

static void drop_salvage(struct djmfs_file *f)
{
	for (uint32_t i = 0; i < f->n_objs; i++) {
		free(f->objs[i]->salv);
		f->objs[i]->salv = NULL;
		f->objs[i]->salv_len = 0;
	}
}

/* A writer, reopened on @gen: applies the verdict on its parked head,
 * then moves its salvaged data.  Returns 0 or -errno (-ESTALE: the file
 * is not in a state we can go on from). */
static int restore_writer(struct djmfs_file *f, uint64_t gen,
			  struct reopen *ro, struct djmfs__restore_tally *t)
{
	struct fop *op;
	int64_t moved = 0;
	int err = 0;

	pthread_mutex_lock(&f->mu);
	op = f->head && f->head->parked ? f->head : NULL;
	f->handle = ro->handle;
	f->gen = gen;
	f->n_res = 0; /* the old session's reservation is gone */
	if (ro->v == V_CONFLICT) {
		err = -ESTALE;
	} else if (ro->v == V_APPLIED && op->state == ST_PUBLISH) {
		/* Everything staged was in it: now mapped, nothing moves. */
		op->state = ST_PUBLISHED;
		op->pub_version = ro->version;
		op->parked = 0;
		drop_salvage(f);
		t->confirmed++;
	} else if (ro->v == V_APPLIED) {
		f->version = ro->version;
		err = djmfs__obj_apply(op, ro->id);
		op->state = ST_DONE;
		op->parked = 0;
		t->confirmed++;
	}
	if (err == 0 && f->salv_err)
		err = f->salv_err;
	pthread_mutex_unlock(&f->mu);
	if (err == 0)
		moved = relocate(f, gen);
	if (moved < 0)
		err = (int)moved;
	else
		t->rewritten += (uint64_t)moved;
	return err;
}

static void relock_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct djmfs_file *f = arg;

	if (status < 0)
		return;
	pthread_mutex_lock(&f->mu);
	if (djmfs__apply_snap(f, &m->u.snap_resp) == 0)
		f->snap_locked = 1;
	pthread_mutex_unlock(&f->mu);
}

/* A reader, reopened on @gen (its image moved to the latest snapshot):
 * a parked UNLOCK_SNAP has nothing left to unlock; a djmfs__frozen image is
 * djmfs__frozen again for what is left of its timeout. */
static int restore_reader(struct djmfs_file *f, uint64_t gen,
			  struct reopen *ro)
{
	struct djmfs__msg *req;
	uint64_t now = djmfs_now(), left = 0;
	int relock, err;

	pthread_mutex_lock(&f->mu);
	f->handle = ro->handle;
	f->gen = gen;
	if (f->head && f->head->parked && f->head->state == ST_UNLOCK) {
		f->head->state = ST_DONE;
		f->head->parked = 0;
		f->snap_locked = 0;
	}
	relock = djmfs__frozen(f);
	if (relock && f->lock_until_ns)
		left = (f->lock_until_ns - now) / 1000000u + 1;
	f->snap_locked = 0;
	pthread_mutex_unlock(&f->mu);
	if (!relock)
		return 0;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->h.op = DJMFS_OP_LOCK_SNAP;
	req->u.snap_req.handle = ro->handle;
	req->u.snap_req.timeout_ms = (uint32_t)left;
	pthread_mutex_lock(&f->mu);
	djmfs__fill_known(f, &req->u.snap_req.known);
	pthread_mutex_unlock(&f->mu);
	err = djmfs__rpc_on(f->c, gen, req, relock_reply, f);
	free(req);
	return err;
}

/* Restores one stale handle on @gen.  Returns 0 (restored, or given up
 * on: f->lost_err) or -ENOTCONN (the connection went; still stale). */
static int file_restore(struct djmfs_file *f, uint64_t gen,
			struct djmfs__restore_tally *t)
{
	struct reopen ro = { .f = f, .v = V_CONFLICT };
	int err;

	pthread_mutex_lock(&f->mu);
	wait_quiet(f);
	pthread_mutex_unlock(&f->mu);
	err = reopen(f, gen, &ro);
	if (err == 0 && (f->oflags & DJMFS_O_WRITE))
		err = restore_writer(f, gen, &ro, t);
	else if (err == 0)
		err = restore_reader(f, gen, &ro);
	if (err == -ENOTCONN && !djmfs__conn_dead(f->c))
		return -ENOTCONN;
	pthread_mutex_lock(&f->mu);
	if (err < 0) {
		if (ro.granted) {
			f->handle = ro.handle; /* djmfs_close gives it back */
			f->gen = gen;
		}
		f->lost_err = -ENOTCONN;
		t->lost++;
	} else {
		t->files++;
		if (f->head && f->head->parked) {
			f->head->parked = 0;
			t->resent++;
		}
	}
	f->ready_gen = f->gen; /* no longer stale, unless lost meanwhile */
	f->salvaged = 0;
	f->salv_err = 0;
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs: restoring %s "
			   "after a reconnect: %s%s; its calls fail with "
			   "ENOTCONN", f->name, strerror(-err), err == -ESTALE ?
			   " (it changed on the server meanwhile)" : "");
	return 0;
}

int djmfs__files_restore(struct djmfs_client *c, uint64_t gen,
			 struct djmfs__restore_tally *t)
{
	struct djmfs_file *f;
	int err = 0;

	while (err == 0 && (f = grab(c, is_stale))) {
		err = file_restore(f, gen, t);
		release(f);
	}
	return err;
}

static int not_lost(const struct djmfs_file *f)
{
	return !f->lost_err;
}

void djmfs__files_lose(struct djmfs_client *c, int err)
{
	struct djmfs_file *f;

	while ((f = grab(c, not_lost))) {
		pthread_mutex_lock(&f->mu);
		f->lost_err = err;
		drop_salvage(f);
		pthread_mutex_unlock(&f->mu);
		release(f);
	}
}
