/*
 * The writer's data path: staging appends and rewrites of a handle's
 * objects (the steps W_START to W_COMMIT: the tail block, reserving
 * units, the device writes, committing to the staged map), publishing
 * the staged state (PUBLISH, PUBLISHED), and the write calls of the API.
 * Invariants 3 to 5 of djmfs_file.h are kept here.  An append reaches
 * the volume from the caller's buffer when that buffer is whole blocks
 * already: an aligned append of whole blocks, or an in-place one, whose
 * caller puts the object's partial last block in front of its bytes
 * (djmfs_write_inplace_async).  Any other is assembled, with one copy,
 * in a buffer of ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

static enum step_ret w_meta(struct fop *op, struct cobj *o)
{
	uint64_t end = op->off + op->len;

	if (op->off > o->size)
		return djmfs__op_failed(op, -EINVAL);
	if (end > DJMFS_META_MAX)
		return djmfs__op_failed(op, -EFBIG);
	pthread_mutex_lock(&op->f->mu);
	if (!o->meta && (o->meta = malloc(DJMFS_META_MAX)) && o->img_meta)
		memcpy(o->meta, o->img_meta, o->img_size);
	if (o->meta) {
		memcpy(o->meta + op->off, op->wbuf, op->len);
		if (end > o->size)
			o->size = end;
		o->meta_dirty = 1;
	}
	pthread_mutex_unlock(&op->f->mu);
	if (!o->meta)
		return djmfs__op_failed(op, -ENOMEM);
	op->res = (ssize_t)op->len;
	op->state = ST_DONE;
	return STEP_GO;
}

enum step_ret djmfs__w_start(struct fop *op)
{
	struct cobj *o;

	pthread_mutex_lock(&op->f->mu);
	o = djmfs__obj_find(op->f, op->obj_id);
	pthread_mutex_unlock(&op->f->mu);
	if (!o)
		return djmfs__op_failed(op, -ENOENT);
	if (o->attrs & DJMFS_ATTR_META)
		return w_meta(op, o);
	/* An earlier append queued before this one failed: this one would
	 * land short of where it was submitted, leaving the object's bytes
	 * out of order.  Appends fail as a chain, like linked io_uring
	 * requests. */
	if (op->off != o->size)
		return djmfs__op_failed(op, -ECANCELED);
	op->res = (ssize_t)op->len;
	if (op->len == 0)
		op->state = ST_DONE;
	else if (o->size % BLK && !o->tail_ok && !op->inplace)
		op->state = ST_W_TAIL;
	else
		op->state = ST_W_RESERVE;
	return STEP_GO;
}

/* Reads the object's last partial block into o->tail (invariant 4). */
enum step_ret djmfs__w_tail(struct fop *op)
{
	struct cobj *o = djmfs__obj_find(op->f, op->obj_id);
	struct seg *s = NULL;
	uint32_t n = 0;
	int err;

	if (!o->tail && posix_memalign((void **)&o->tail, BLK, BLK))
		return djmfs__op_failed(op, -ENOMEM);
	err = djmfs__map_range(o, 0, blk_down(o->size), blk_down(o->size) + BLK, &s,
			&n);
	if (err == 0 || (err > 0 && (n != 1 || s[0].len != BLK)))
		err = -EUCLEAN; /* the size is past the map */
	if (err > 0)
		err = djmfs__add_io(op, IOSCHED_READ, s[0].phys, BLK, o->tail);
	free(s);
	if (err < 0)
		return djmfs__op_failed(op, err);
	op->tail_read = 1;
	op->state = ST_W_RESERVE;
	return djmfs__io_start(op);
}

/* Bytes past the map end the object owns in its last unit. */
static uint64_t own_rest(const struct djmfs_client *c, const struct cobj *o)
{
	uint64_t end, au = c->au_size;

	if (o->n_ext == 0)
		return 0;
	end = o->ext[o->n_ext - 1].offset + o->ext[o->n_ext - 1].len;
	return (au - (end - c->data_off) % au) % au;
}

static void reserve_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;
	struct djmfs_file *f = op->f;
	uint32_t n = status == 0 ? m->u.reserve_resp.n : 0;

	if (status == 0 && n == 0)
		status = -ENOSPC;
	pthread_mutex_lock(&f->mu);
	if (status == 0 && f->n_res + n > f->res_cap) {
		uint32_t cap = (f->n_res + n) * 2;
		struct djmfs__run *v = realloc(f->res, cap * sizeof(*v));

		if (v) {
			f->res = v;
			f->res_cap = cap;
		} else {
			status = -ENOMEM;
		}
	}
	for (uint32_t i = 0; status == 0 && i < n; i++)
		f->res[f->n_res++] = djmfs__runv_at(m->u.reserve_resp, i);
	pthread_mutex_unlock(&f->mu);
	djmfs__op_wake(op, status);
}

/* Makes sure the reservation covers the write (loops through RESERVE). */
enum step_ret djmfs__w_reserve(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs_client *c = f->c;
	struct cobj *o = djmfs__obj_find(f, op->obj_id);
	uint64_t dev_end = blk_up(o->size + op->len), map_end = djmfs__map_bytes(o);
	uint64_t have = own_rest(c, o), need, units;
	uint32_t ask;
	struct djmfs__msg req = { .h.op = DJMFS_OP_RESERVE };

	if (op->tail_read)
		o->tail_ok = 1;
	op->tail_read = 0;
	for (uint32_t i = 0; i < f->n_res; i++)
		have += (uint64_t)f->res[i].count * c->au_size;
	need = dev_end > map_end ? dev_end - map_end : 0;
	if (need <= have) {
		op->state = ST_W_IO;
		return STEP_GO;
	}
	units = (need - have + c->au_size - 1) / c->au_size;
	ask = c->opts.reserve_aus ? c->opts.reserve_aus : 16;
	req.u.reserve_req.handle = f->handle;
	req.u.reserve_req.n_aus = units > ask ? (uint32_t)units : ask;
	return djmfs__op_rpc(op, &req, reserve_reply, ST_W_RESERVE);
}

static int seg_push(struct fop *op, uint64_t phys, uint64_t len,
		    uint64_t logical)
{
	struct seg *v;

	if (op->n_nsegs && op->nsegs[op->n_nsegs - 1].phys +
				   op->nsegs[op->n_nsegs - 1].len == phys) {
		op->nsegs[op->n_nsegs - 1].len += len;
		return 0;
	}
	v = realloc(op->nsegs, (op->n_nsegs + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	op->nsegs = v;
	op->nsegs[op->n_nsegs++] = (struct seg){ phys, len, logical };
	return 0;
}

/* New map pieces for object bytes [map_end, dev_end): the rest of the
 * last unit, then reserved units from the front (invariant 5). */
static int plan_new(struct fop *op, struct cobj *o, uint64_t map_end,
		    uint64_t dev_end)
{
	struct djmfs_file *f = op->f;
	struct djmfs_client *c = f->c;
	uint64_t need = dev_end > map_end ? dev_end - map_end : 0;
	uint64_t rest = own_rest(c, o), at = map_end, take;
	int err = 0;

	if (need && rest) {
		const struct djmfs_extent *l = &o->ext[o->n_ext - 1];

		take = need < rest ? need : rest;
		err = seg_push(op, l->offset + l->len, take, at);
		at += take;
		need -= take;
	}
	for (uint32_t i = 0; err == 0 && need && i < f->n_res; i++) {
		uint64_t run = (uint64_t)f->res[i].count * c->au_size;

		take = need < run ? need : run;
		err = seg_push(op, c->data_off + f->res[i].first * c->au_size,
			       take, at);
		op->units_used += (uint32_t)((take + c->au_size - 1) /
					     c->au_size);
		at += take;
		need -= take;
	}
	return err < 0 ? err : need ? -ENOSPC : 0;
}

/* The blocks to write: the kept tail, the caller's bytes, zeroes; or
 * the caller's buffer itself when it holds them already. */
static int assemble(struct fop *op, struct cobj *o, uint64_t dev_end)
{
	uint64_t head = o->size - op->w_start;

	if (op->inplace || (head == 0 && op->len % BLK == 0 &&
			    ((uintptr_t)op->wbuf & (BLK - 1)) == 0)) {
		op->abuf = (uint8_t *)op->wbuf;
		return 0;
	}
	if (posix_memalign((void **)&op->abuf, BLK, dev_end - op->w_start))
		return -ENOMEM;
	op->abuf_owned = 1;
	__atomic_fetch_add(&op->f->c->copied_bytes, head + op->len,
			   __ATOMIC_RELAXED);
	if (head)
		memcpy(op->abuf, o->tail, head);
	memcpy(op->abuf + head, op->wbuf, op->len);
	memset(op->abuf + head + op->len, 0,
	       dev_end - op->w_start - head - op->len);
	return 0;
}

enum step_ret djmfs__w_io(struct fop *op)
{
	struct cobj *o = djmfs__obj_find(op->f, op->obj_id);
	uint64_t dev_end = blk_up(o->size + op->len), map_end = djmfs__map_bytes(o);
	uint64_t old_end = map_end < dev_end ? map_end : dev_end;
	struct seg *s = NULL;
	uint32_t n = 0;
	int err;

	op->w_start = blk_down(o->size);
	err = assemble(op, o, dev_end);
	if (err == 0 && op->w_start < old_end)
		err = djmfs__map_range(o, 0, op->w_start, old_end, &s, &n);
	for (uint32_t i = 0; err >= 0 && i < n; i++)
		err = djmfs__add_io(op, IOSCHED_WRITE, s[i].phys, s[i].len,
			     op->abuf + (s[i].logical - op->w_start));
	free(s);
	if (err >= 0)
		err = plan_new(op, o, map_end, dev_end);
	for (uint32_t i = 0; err >= 0 && i < op->n_nsegs; i++)
		err = djmfs__add_io(op, IOSCHED_WRITE, op->nsegs[i].phys,
			     op->nsegs[i].len,
			     op->abuf + (op->nsegs[i].logical - op->w_start));
	if (err < 0)
		return djmfs__op_failed(op, err);
	op->state = ST_W_COMMIT;
	return djmfs__io_start(op);
}

/* Takes @units from the front of the reservation. */
static void res_consume(struct djmfs_file *f, uint32_t units)
{
	while (units > 0 && f->n_res > 0) {
		uint32_t t = units < f->res[0].count ? units : f->res[0].count;

		f->res[0].first += t;
		f->res[0].count -= t;
		units -= t;
		if (f->res[0].count == 0)
			memmove(f->res, f->res + 1, --f->n_res * sizeof(*f->res));
	}
}

/* Chains @o's staged sums over the @n new bytes at @p that the device
 * write just stored (object bytes [o->size, o->size + n)): a failed
 * write never reaches here, so it changes no sum.  Room for the
 * completed cblocks' sums was reserved. */
static void ck_extend(struct cobj *o, const uint8_t *p, uint64_t n)
{
	uint64_t at = o->size;

	if (o->ck_flags & DJMFS_OBJ_CK_GAP)
		return;
	while (n > 0) {
		uint64_t room = DJMFS_CK_BLOCK - at % DJMFS_CK_BLOCK;
		uint64_t take = n < room ? n : room;

		o->run_ck = djmfs__crc32c(o->run_ck, p, take);
		p += take;
		at += take;
		n -= take;
		if (at % DJMFS_CK_BLOCK == 0) {
			o->ck[o->n_ck++ - o->ck_off] = o->run_ck;
			o->run_ck = 0;
		}
	}
}

enum step_ret djmfs__w_commit(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct cobj *o = djmfs__obj_find(f, op->obj_id);
	uint64_t end = o->size + op->len;
	uint64_t done_ck = (end >> DJMFS_CK_SHIFT) - (o->size >> DJMFS_CK_SHIFT);
	int err = 0;

	pthread_mutex_lock(&f->mu);
	if (djmfs__ext_reserve(o, o->n_ext + op->n_nsegs) < 0 ||
	    (uint64_t)o->n_ck + done_ck > UINT32_MAX ||
	    djmfs__ck_reserve(o, o->n_ck - o->ck_off + (uint32_t)done_ck) < 0)
		err = -ENOMEM;
	if (end % BLK && !op->inplace && !o->tail &&
	    posix_memalign((void **)&o->tail, BLK, BLK))
		err = -ENOMEM;
	if (err == 0 && op->n_nsegs && o->n_ext)
		djmfs__ext_changed(o, o->n_ext - 1);
	for (uint32_t i = 0; err == 0 && i < op->n_nsegs; i++) {
		struct djmfs_extent *l = o->n_ext ? &o->ext[o->n_ext - 1] : NULL;

		if (l && l->offset + l->len == op->nsegs[i].phys)
			l->len += op->nsegs[i].len;
		else
			o->ext[o->n_ext++] = (struct djmfs_extent){
				op->nsegs[i].phys, op->nsegs[i].len };
	}
	if (err == 0) {
		res_consume(f, op->units_used);
		if (end % BLK && !op->inplace)
			memcpy(o->tail, op->abuf + (blk_down(end) - op->w_start),
			       end % BLK);
		ck_extend(o, op->abuf + (o->size - op->w_start), op->len);
		/* An in-place append copies nothing, not even the new last
		 * block: an ordinary append after it reads that back. */
		o->tail_ok = !op->inplace;
		o->size = end;
	}
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		return djmfs__op_failed(op, err);
	op->state = (o->attrs & DJMFS_ATTR_SYNC) ? ST_PUBLISH : ST_DONE;
	return STEP_GO;
}

/* ------------------------------------------------------------------ */
/* Publishing                                                           */
/* ------------------------------------------------------------------ */

/* Appends the sums of @o's cblocks completed since the image (into
 * @cb) to @po.  An object whose sums stopped sends zeroes the server
 * does not keep. */
static void pub_sums(const struct cobj *o, struct djmfs__pub_obj *po,
		     struct djmfs__buf *cb, size_t *c_first)
{
	uint32_t first = (uint32_t)(o->img_size >> DJMFS_CK_SHIFT);
	uint32_t last = (uint32_t)(o->size >> DJMFS_CK_SHIFT);
	int gap = (o->ck_flags & DJMFS_OBJ_CK_GAP) != 0;

	*c_first = cb->len;
	po->ck_first = first;
	po->ck.n = last - first;
	for (uint32_t k = first; k < last; k++)
		djmfs__put_u32(cb, gap ? 0 : djmfs__ck_get(o, k));
	po->last_ck = gap || o->size % DJMFS_CK_BLOCK == 0 ? 0 : o->run_ck;
}

/* Appends object @o's staged change to @pub (extents into @xb, sums
 * into @cb); returns 1 when it has one. */
static int pub_obj(const struct cobj *o, struct djmfs__pub_obj *po,
		   struct djmfs__buf *xb, uint32_t *x_first,
		   struct djmfs__buf *cb, size_t *c_first)
{
	uint32_t before = (uint32_t)(xb->len / DJMFS_EXT_WIRE);
	uint32_t i = o->img_n_ext;

	memset(po, 0, sizeof(*po));
	*c_first = cb->len;
	po->obj_id = o->id;
	po->size = o->size;
	if (o->attrs & DJMFS_ATTR_META) {
		if (!o->meta_dirty)
			return 0;
		po->has_meta = 1;
		po->meta = o->meta;
		po->meta_len = (uint32_t)o->size;
		return 1;
	}
	if (i > 0 && o->ext[i - 1].len > o->img_last_len)
		djmfs__put_ext(xb, o->ext[i - 1].offset + o->img_last_len,
			       o->ext[i - 1].len - o->img_last_len);
	for (; i < o->n_ext; i++)
		djmfs__put_ext(xb, o->ext[i].offset, o->ext[i].len);
	*x_first = before;
	po->ext.n = (uint32_t)(xb->len / DJMFS_EXT_WIRE) - before;
	if (po->ext.n == 0 && o->size == o->img_size)
		return 0;
	pub_sums(o, po, cb, c_first);
	return 1;
}

static void publish_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;

	if (status == 0)
		op->pub_version = m->u.publish_resp.version;
	djmfs__op_wake(op, status);
}

/* Sends every object's staged change (none: done). */
enum step_ret djmfs__p_publish(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	struct djmfs__buf xb, cb;
	uint32_t first[DJMFS_MAX_OBJS], n = 0;
	size_t cfirst[DJMFS_MAX_OBJS];
	enum step_ret ret;
	int err = 0;

	if (!req)
		return djmfs__op_failed(op, -ENOMEM);
	djmfs__buf_init(&xb);
	djmfs__buf_init(&cb);
	req->h.op = DJMFS_OP_PUBLISH;
	req->u.publish_req.handle = f->handle;
	pthread_mutex_lock(&f->mu);
	req->u.publish_req.pub.base_version = f->version;
	for (uint32_t i = 0; i < f->n_objs; i++)
		n += (uint32_t)pub_obj(f->objs[i],
				       &req->u.publish_req.pub.objs[n], &xb,
				       &first[n], &cb, &cfirst[n]);
	pthread_mutex_unlock(&f->mu);
	req->u.publish_req.pub.n_objs = n;
	req->u.publish_req.pub.has_ck = 1;
	for (uint32_t i = 0; i < n; i++) {
		struct djmfs__pub_obj *po = &req->u.publish_req.pub.objs[i];

		po->ext.p = xb.p ? xb.p + (size_t)first[i] * DJMFS_EXT_WIRE
				 : NULL;
		po->ck.p = cb.p ? cb.p + cfirst[i] : NULL;
	}
	op->state = n ? ST_PUBLISHED : ST_DONE;
	if (xb.err || cb.err)
		err = xb.err ? xb.err : cb.err;
	ret = err < 0 ? djmfs__op_failed(op, err) : STEP_GO;
	if (err == 0 && n)
		ret = djmfs__op_rpc(op, req, publish_reply, ST_PUBLISH);
	djmfs__buf_free(&xb);
	djmfs__buf_free(&cb);
	free(req);
	return ret;
}

/* The publish is durable: the image becomes the staged state. */
enum step_ret djmfs__p_published(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; i < f->n_objs; i++) {
		struct cobj *o = f->objs[i];

		if (o->meta_dirty) {
			uint8_t *m = malloc(o->size ? o->size : 1);

			if (m) { /* else the image keeps the old bytes */
				memcpy(m, o->meta, o->size);
				free(o->img_meta);
				o->img_meta = m;
				o->meta_dirty = 0;
			}
		}
		if (o->meta_dirty)
			continue;
		o->img_size = o->size;
		o->img_n_ext = o->n_ext;
		o->img_last_len = o->n_ext ? o->ext[o->n_ext - 1].len : 0;
		o->img_n_ck = o->n_ck;
		o->img_last_ck = o->run_ck;
		o->img_ck_flags = o->ck_flags;
	}
	f->version = op->pub_version;
	f->mtime_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	pthread_mutex_unlock(&f->mu);
	op->state = ST_DONE;
	return STEP_GO;
}

/* ------------------------------------------------------------------ */
/* Data API                                                             */
/* ------------------------------------------------------------------ */

/* Under f->mu: can an in-place append of @head bytes in front at the
 * object pointer go (djmfs_write_inplace_async)?  Returns the log
 * line's reason, or NULL. */
static const char *inplace_refused(struct djmfs_file *f, size_t head)
{
	struct cobj *o = djmfs__obj_find(f, f->ptr_id);

	if (!o || !(o->attrs & DJMFS_ATTR_DATA))
		return "not at a DATA object";
	if (head != f->ptr_off % BLK)
		return "the head is not the object's partial last block";
	return NULL;
}

/* A write op at the object pointer, which moves past it.  @head, for an
 * in-place append (@inplace), is the object's partial last block in
 * front of the bytes at @buf. */
static int write_op(struct djmfs_file *f, const void *buf, size_t len,
		    uint64_t deadline_ns, int inplace, size_t head,
		    struct fop **out)
{
	const char *call = inplace ? "djmfs_write_inplace_async"
				   : "djmfs_write";
	const char *why = "no object pointer set";
	struct fop *op;
	int err = djmfs__writer_ok(f, call);

	if (err < 0)
		return err;
	if ((!buf && len) || len > SSIZE_MAX)
		return -EINVAL;
	if (inplace && (!buf || ((uintptr_t)buf & (BLK - 1)))) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "%s(%s): the buffer "
			   "does not start on a %u-byte block", call, f->name,
			   (unsigned)BLK);
		return -EINVAL;
	}
	op = djmfs__op_new(f, ST_W_START, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->wbuf = buf;
	op->len = len;
	op->deadline_ns = deadline_ns;
	op->is_append = 1;
	op->inplace = inplace;
	pthread_mutex_lock(&f->mu);
	if (!f->ptr_set)
		err = -EINVAL;
	else if (inplace && (why = inplace_refused(f, head)))
		err = -EINVAL;
	op->obj_id = f->ptr_id;
	op->off = f->ptr_off;
	f->ptr_off += err == 0 ? len : 0;
	if (err == 0) {
		struct cobj *o = djmfs__obj_find(f, f->ptr_id);

		if (o && (o->attrs & DJMFS_ATTR_DATA))
			o->sub_end = f->ptr_off;
	}
	pthread_mutex_unlock(&f->mu);
	if (err < 0) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "%s(%s): %s", call,
			   f->name, why);
		djmfs__op_free(op);
		return err;
	}
	*out = op;
	return 0;
}

ssize_t djmfs_write(struct djmfs_file *f, const void *buf, size_t len)
{
	struct fop *op = NULL;
	int err = write_op(f, buf, len, 0, 0, 0, &op);

	return err < 0 ? err : djmfs__op_run(op);
}

static int queue_write(struct djmfs_file *f, const void *buf, size_t len,
		       uint64_t deadline_ns, int inplace, size_t head,
		       djmfs_done_fn done, void *user)
{
	struct fop *op = NULL;
	int err = done ? write_op(f, buf, len, deadline_ns, inplace, head,
				  &op)
		       : -EINVAL;

	if (err < 0)
		return err;
	op->done = done;
	op->user = user;
	djmfs__op_queue(op);
	return 0;
}

int djmfs_write_async(struct djmfs_file *f, const void *buf, size_t len,
		      uint64_t deadline_ns, djmfs_done_fn done, void *user)
{
	return queue_write(f, buf, len, deadline_ns, 0, 0, done, user);
}

int djmfs_write_inplace_async(struct djmfs_file *f, const void *blk,
			      size_t head, size_t len, uint64_t deadline_ns,
			      djmfs_done_fn done, void *user)
{
	return queue_write(f, blk, len, deadline_ns, 1, head, done, user);
}

