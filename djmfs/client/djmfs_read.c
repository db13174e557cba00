/*
 * Reading a handle's image: the READ step plans device reads of the
 * image's extents (never of staged appends, invariant 3 of djmfs_file.h),
 * the R_VERIFY step checks what came back against the image's data
 * checksums, and the read calls of the API queue it, blocking or
 * asynchronous.  A range of a DATA object is widened to whole cblocks
 * (DJMFS_CK_BLOCK bytes of the object) wherever one has a sum, read into
 * a bounce buffer unless the caller's buffer covers exactly those
 * cblocks, and each cblock is summed after the I/O.  A cblock whose sum
 * fails is read once more from the device (the volume is opened
 * O_DIRECT, so not from a cache); failing again, the read fails with
 * -EIO, logged once per cblock, and none of its bytes reach the caller.
 * The expected sums are copied when the read is planned, so a snapshot
 * moving on meanwhile cannot change what a read is checked against.
 *
 * A trimmed object (djmfs_trim) has no bytes below its start: a read
 * that reaches below it fails with -ENODATA.  The cblock holding the
 * start, when the start is inside it, is read unverified from the start
 * on, as the bytes its sum covers below the start may sit in units that
 * were freed and reused.  A reader that is not frozen may hold an image
 * older than a trim, whose units were reused since: its read then fails
 * its sums, and before -EIO the handle moves to the latest snapshot once
 * (R_RESYNC); if the failed bytes are now below the start, the read
 * fails with -ENODATA instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

#define CKB ((uint64_t)DJMFS_CK_BLOCK)

/* What a cblock of a planned read is. */
enum { CK_NONE, CK_CHECK, CK_OK, CK_RETRY, CK_BAD };

/* One object range of a read whose cblocks are checked. */
struct vrange {
	uint32_t obj_id;
	uint64_t lo, hi;      /* object bytes read, widened to cblocks */
	uint8_t *buf;	      /* holds [lo, hi): the caller's, or a bounce */
	int bounce;
	uint8_t *dst;	      /* bounce: the caller's bytes [dst_lo, +dst_len) */
	uint64_t dst_lo, dst_len;
	struct seg *segs;     /* where [lo, hi) lies on the volume */
	uint32_t n_segs;
	uint32_t n_ck;	      /* cblocks from lo / CKB */
	uint32_t *want;	      /* their sums */
	uint8_t *st;	      /* CK_* per cblock */
};

static void vr_free(struct fop *op)
{
	for (uint32_t i = 0; i < op->n_vr; i++) {
		struct vrange *v = &op->vr[i];

		if (v->bounce)
			free(v->buf);
		free(v->segs);
		free(v->want);
		free(v->st);
	}
	free(op->vr);
	op->vr = NULL;
	op->n_vr = op->vr_cap = 0;
}

static void stat_add(struct fop *op, uint64_t *field, uint64_t n)
{
	(void)op;
	__atomic_fetch_add(field, n, __ATOMIC_RELAXED);
}

/* The sum cblock @k of @o's image is checked against: 1 and *want, or
 * 0 when it has none (an object whose sums stopped). */
static int img_sum(const struct cobj *o, uint64_t k, uint32_t *want)
{
	if (k < o->ck_first || k * CKB < o->start)
		return 0; /* trimmed, or partly so: see the head comment */
	if (k < o->img_n_ck) {
		*want = djmfs__ck_get(o, (uint32_t)k);
		return 1;
	}
	if ((o->img_ck_flags & DJMFS_OBJ_CK_GAP) || k != o->img_n_ck ||
	    o->img_size % CKB == 0 || k != o->img_size / CKB)
		return 0;
	*want = o->img_last_ck;
	return 1;
}

/* Plans device reads of @o's image bytes [lo, hi) into @buf; returns
 * the pieces (caller frees) or NULL with *err. */
static struct seg *plan_io(struct fop *op, struct cobj *o, uint8_t *buf,
			   uint64_t lo, uint64_t hi, uint32_t *n, int *err)
{
	struct seg *s = NULL;
	uint64_t got = 0;

	*err = djmfs__map_range(o, 1, lo, hi, &s, n);
	for (uint32_t i = 0; *err >= 0 && i < *n; i++) {
		*err = djmfs__add_io(op, IOSCHED_READ, s[i].phys, s[i].len,
				     buf + (s[i].logical - lo));
		got += s[i].len;
	}
	if (*err >= 0 && got != hi - lo)
		*err = -EUCLEAN; /* the size is past the map */
	if (*err < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* A checked range: [off, off + len) of @o widened to cblocks. */
static int plan_checked(struct fop *op, struct cobj *o, uint8_t *buf,
			uint64_t off, uint64_t len)
{
	uint64_t lo = off / CKB * CKB, hi = (off + len + CKB - 1) / CKB * CKB;
	struct vrange *v;
	int err = 0;

	if (hi > o->img_size)
		hi = o->img_size;
	op->cleanup = vr_free;
	if (op->n_vr == op->vr_cap) {
		uint32_t cap = op->vr_cap ? op->vr_cap * 2 : 2;
		struct vrange *nv = realloc(op->vr, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		op->vr = nv;
		op->vr_cap = cap;
	}
	v = &op->vr[op->n_vr];
	memset(v, 0, sizeof(*v));
	v->obj_id = o->id;
	v->lo = lo;
	v->hi = hi;
	v->n_ck = (uint32_t)((hi - lo + CKB - 1) / CKB);
	v->want = calloc(v->n_ck, sizeof(*v->want));
	v->st = calloc(v->n_ck, 1);
	if (lo == off && hi == off + len) {
		v->buf = buf;
	} else if (posix_memalign((void **)&v->buf, BLK, hi - lo) == 0) {
		v->bounce = 1;
		v->dst = buf;
		v->dst_lo = off;
		v->dst_len = len;
	}
	if (!v->want || !v->st || !v->buf)
		err = -ENOMEM;
	op->n_vr++; /* freed with the op from here on */
	for (uint32_t i = 0; err == 0 && i < v->n_ck; i++)
		v->st[i] = img_sum(o, lo / CKB + i, &v->want[i]) ? CK_CHECK
								 : CK_NONE;
	if (err == 0)
		v->segs = plan_io(op, o, v->buf, lo, hi, &v->n_segs, &err);
	return err;
}

/* The first cblock boundary at or past @v. */
static uint64_t blk_cb_up(uint64_t v)
{
	return (v + CKB - 1) / CKB * CKB;
}

/* Plans the read of image bytes [off, off+len) of @o into @buf. */
static int read_obj(struct fop *op, struct cobj *o, uint8_t *buf,
		    uint64_t off, uint64_t len)
{
	uint32_t n = 0, cnt = 0, want;
	struct seg *s;
	int err = 0, any = 0;

	if (o->attrs & DJMFS_ATTR_META) {
		if (len)
			memcpy(buf, o->img_meta + off, len);
		return 0;
	}
	if (len && off < o->start)
		return -ENODATA;
	if (o->start % CKB && off < blk_cb_up(o->start)) {
		/* The start's own cblock: unverified (head comment). */
		uint64_t n = blk_cb_up(o->start) - off;

		if (n > len)
			n = len;
		stat_add(op, &op->f->c->csum.csum_unverified_bytes, n);
		s = plan_io(op, o, buf, off, off + n, &cnt, &err);
		free(s);
		if (err < 0)
			return err;
		buf += n;
		off += n;
		len -= n;
	}
	if (!len)
		return 0;
	/* Without data I/O (DJMFS_CLIENT_NO_DATA_IO) there is nothing to
	 * check. */
	for (uint64_t k = off / CKB; len && k * CKB < off + len && !any &&
				     !(op->f->c->opts.flags &
				       DJMFS_CLIENT_NO_DATA_IO); k++)
		any = img_sum(o, k, &want);
	if (any)
		return plan_checked(op, o, buf, off, len);
	/* Nothing here has a sum: read it as it is. */
	stat_add(op, &op->f->c->csum.csum_unverified_bytes, len);
	s = plan_io(op, o, buf, off, off + len, &n, &err);
	free(s);
	return err < 0 ? err : 0;
}

enum step_ret djmfs__r_read(struct fop *op)
{
	struct djmfs_file *f = op->f;
	uint64_t pos = 0, done = 0;
	int err = 0;

	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; err == 0 && i < f->n_objs && done < op->len; i++) {
		struct cobj *o = f->objs[i];
		uint64_t lo = op->off + done, a, b;

		if (op->obj_id != ALL_OBJS && o->id != op->obj_id)
			continue;
		if (op->obj_id != ALL_OBJS)
			pos = 0;
		a = lo > pos ? lo - pos : 0;
		b = o->img_size;
		if (lo >= pos && a < b) {
			if (b - a > op->len - done)
				b = a + (op->len - done);
			err = read_obj(op, o, (uint8_t *)op->rbuf + done, a,
				       b - a);
			done += b - a;
		}
		pos += o->img_size;
		if (op->obj_id != ALL_OBJS)
			break;
	}
	if (op->obj_id != ALL_OBJS && !djmfs__obj_find(f, op->obj_id))
		err = -ENOENT;
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		return djmfs__op_failed(op, err);
	op->res = (ssize_t)done;
	op->state = op->n_vr ? ST_R_VERIFY : ST_DONE;
	return djmfs__io_start(op);
}

/* Volume offset of object byte @at of @v. */
static uint64_t vol_off(const struct vrange *v, uint64_t at)
{
	for (uint32_t i = 0; i < v->n_segs; i++)
		if (at >= v->segs[i].logical &&
		    at < v->segs[i].logical + v->segs[i].len)
			return v->segs[i].phys + (at - v->segs[i].logical);
	return 0;
}

/* Queues the device reads of cblock @i of @v again. */
static int reread(struct fop *op, struct vrange *v, uint32_t i)
{
	uint64_t a = v->lo + i * CKB, b = a + CKB < v->hi ? a + CKB : v->hi;
	int err = 0;

	for (uint32_t k = 0; err == 0 && k < v->n_segs; k++) {
		const struct seg *s = &v->segs[k];
		uint64_t x = a > s->logical ? a : s->logical;
		uint64_t y = b < s->logical + s->len ? b : s->logical + s->len;

		if (x < y)
			err = djmfs__add_io(op, IOSCHED_READ,
					    s->phys + (x - s->logical), y - x,
					    v->buf + (x - v->lo));
	}
	return err;
}

/* Checks cblock @i of @v (state CHECK or, after a re-read, RETRY). */
static int check_one(struct fop *op, struct vrange *v, uint32_t i)
{
	struct djmfs_client_stats *cs = &op->f->c->csum;
	uint64_t a = v->lo + i * CKB, b = a + CKB < v->hi ? a + CKB : v->hi;
	uint32_t got = djmfs__crc32c(0, v->buf + (a - v->lo), b - a);
	int retry = v->st[i] == CK_RETRY;

	if (got == v->want[i]) {
		v->st[i] = CK_OK;
		stat_add(op, &cs->csum_verified_bytes, b - a);
		if (retry) {
			stat_add(op, &cs->csum_retry_ok, 1);
			djmfs__log(&op->f->c->log, DJMFS_LOG_WARN, "djmfs: file "
				   "%s object %u block %llu (volume offset "
				   "%llu): checksum mismatch, read again: good",
				   op->f->name, v->obj_id,
				   (unsigned long long)(a / CKB),
				   (unsigned long long)vol_off(v, a));
		}
		return 0;
	}
	if (!retry) {
		stat_add(op, &cs->csum_mismatches, 1);
		v->st[i] = CK_RETRY;
		return 1;
	}
	v->st[i] = CK_BAD;
	stat_add(op, &cs->csum_errors, 1);
	djmfs__log(&op->f->c->log, DJMFS_LOG_ERROR, "djmfs: file %s object %u "
		   "block %llu (volume offset %llu): checksum mismatch "
		   "(%08x, want %08x), read again: bad", op->f->name,
		   v->obj_id, (unsigned long long)(a / CKB),
		   (unsigned long long)vol_off(v, a), got, v->want[i]);
	/* Bytes read into the caller's buffer do not stay there. */
	if (!v->bounce)
		memset(v->buf + (a - v->lo), 0, b - a);
	return -EIO;
}

enum step_ret djmfs__r_verify(struct fop *op)
{
	int err = 0, again = 0, r;

	op->n_reqs = 0;
	for (uint32_t j = 0; j < op->n_vr; j++) {
		struct vrange *v = &op->vr[j];

		for (uint32_t i = 0; i < v->n_ck; i++) {
			uint64_t a = v->lo + i * CKB;

			if (v->st[i] == CK_NONE && !op->reread)
				stat_add(op, &op->f->c->csum.csum_unverified_bytes,
					 (a + CKB < v->hi ? a + CKB : v->hi) - a);
			if (v->st[i] != (op->reread ? CK_RETRY : CK_CHECK))
				continue;
			r = check_one(op, v, i);
			if (r < 0 && err == 0)
				err = r;
			if (r > 0) {
				again = 1;
				r = reread(op, v, i);
				if (r < 0 && err == 0)
					err = r;
			}
		}
	}
	if (err == 0 && again) {
		op->reread = 1;
		return djmfs__io_start(op);
	}
	if (err == -EIO && !op->resynced &&
	    !(op->f->oflags & DJMFS_O_WRITE)) {
		op->state = ST_R_RESYNC;
		return STEP_GO;
	}
	if (err < 0)
		return djmfs__op_failed(op, err);
	for (uint32_t j = 0; j < op->n_vr; j++) {
		struct vrange *v = &op->vr[j];

		if (v->bounce)
			memcpy(v->dst, v->buf + (v->dst_lo - v->lo), v->dst_len);
	}
	op->state = ST_DONE;
	return STEP_GO;
}

/* Under f->mu: do the cblocks of @op that failed their sums lie, in part,
 * below their object's start as the handle now sees it? */
static int failed_trimmed(struct fop *op)
{
	for (uint32_t j = 0; j < op->n_vr; j++) {
		const struct vrange *v = &op->vr[j];
		const struct cobj *o = djmfs__obj_find(op->f, v->obj_id);

		for (uint32_t i = 0; i < v->n_ck; i++)
			if (v->st[i] == CK_BAD &&
			    (!o || v->lo + i * CKB < o->start))
				return 1;
	}
	return 0;
}

static void resync_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (status == 0)
		status = djmfs__apply_snap(f, &m->u.snap_resp);
	status = status == 0 && failed_trimmed(op) ? -ENODATA : -EIO;
	pthread_mutex_unlock(&f->mu);
	djmfs__op_wake(op, status);
}

/* The read failed its sums on an image that may be older than a trim:
 * the latest snapshot tells (a frozen image stays, and fails -EIO). */
enum step_ret djmfs__r_resync(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	enum step_ret ret;
	int frozen;

	op->resynced = 1;
	op->state = ST_DONE;
	if (!req)
		return djmfs__op_failed(op, -EIO);
	pthread_mutex_lock(&f->mu);
	frozen = djmfs__frozen(f);
	djmfs__fill_known(f, &req->u.snap_req.known);
	pthread_mutex_unlock(&f->mu);
	if (frozen) {
		free(req);
		return djmfs__op_failed(op, -EIO);
	}
	req->h.op = DJMFS_OP_SYNC_SNAP;
	req->u.snap_req.handle = f->handle;
	ret = djmfs__op_rpc(op, req, resync_reply, ST_R_RESYNC);
	free(req);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Read API                                                             */
static int read_op(struct djmfs_file *f, uint32_t id, void *buf, size_t len,
		   uint64_t offset, uint64_t deadline_ns, struct fop **out)
{
	struct fop *op;

	if (!f || (!buf && len) || len > SSIZE_MAX)
		return -EINVAL;
	if (!(f->oflags & DJMFS_O_READ)) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs_pread(%s): not "
			   "opened for reading", f->name);
		return -EBADF;
	}
	op = djmfs__op_new(f, ST_READ, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->obj_id = id;
	op->rbuf = buf;
	op->len = len;
	op->off = offset;
	op->deadline_ns = deadline_ns;
	*out = op;
	return 0;
}

ssize_t djmfs_pread(struct djmfs_file *f, void *buf, size_t len,
		    uint64_t offset)
{
	struct fop *op = NULL;
	int err = read_op(f, ALL_OBJS, buf, len, offset, 0, &op);

	return err < 0 ? err : djmfs__op_run(op);
}

ssize_t djmfs_pread_obj(struct djmfs_file *f, uint32_t id, void *buf,
			size_t len, uint64_t offset)
{
	struct fop *op = NULL;
	int err = id == ALL_OBJS ? -ENOENT
				 : read_op(f, id, buf, len, offset, 0, &op);

	return err < 0 ? err : djmfs__op_run(op);
}

/* An asynchronous read of object @id (ALL_OBJS: by file offset). */
static int read_async(struct djmfs_file *f, uint32_t id, void *buf,
		      size_t len, uint64_t offset, uint64_t deadline_ns,
		      djmfs_done_fn done, void *user)
{
	struct fop *op = NULL;
	int err = done ? read_op(f, id, buf, len, offset, deadline_ns, &op)
		       : -EINVAL;

	if (err < 0)
		return err;
	op->done = done;
	op->user = user;
	djmfs__op_queue(op);
	return 0;
}

int djmfs_pread_obj_async(struct djmfs_file *f, uint32_t id, void *buf,
			  size_t len, uint64_t offset, uint64_t deadline_ns,
			  djmfs_done_fn done, void *user)
{
	if (id == ALL_OBJS)
		return -ENOENT;
	return read_async(f, id, buf, len, offset, deadline_ns, done, user);
}

int djmfs_pread_async(struct djmfs_file *f, void *buf, size_t len,
		      uint64_t offset, uint64_t deadline_ns,
		      djmfs_done_fn done, void *user)
{
	return read_async(f, ALL_OBJS, buf, len, offset, deadline_ns, done,
			  user);
}

