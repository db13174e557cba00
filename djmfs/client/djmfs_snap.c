/*
 * Snapshot moves of a file handle: SYNC_SNAP (move the image to the
 * latest published snapshot), LOCK_SNAP (freeze it, with the deltas
 * applied) and UNLOCK_SNAP, as FIFO steps and API calls, and the calls
 * that describe the image (djmfs_file_info, djmfs_obj_extents,
 * djmfs_obj_checksums).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

/* Under f->mu: is the image djmfs__frozen (LOCK_SNAP not yet timed out)? */
int djmfs__frozen(const struct djmfs_file *f)
{
	return f->snap_locked &&
	       (f->lock_until_ns == 0 || djmfs_now() < f->lock_until_ns);
}

static void snap_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (status == 0)
		status = djmfs__apply_snap(f, &m->u.snap_resp);
	if (status == 0 && op->rpc_op == DJMFS_OP_LOCK_SNAP) {
		f->snap_locked = 1;
		f->lock_until_ns = op->timeout_ms ?
			djmfs_now() + op->timeout_ms * 1000000ull : 0;
	}
	if (status == 0 && op->info_out)
		djmfs__fill_info(f, op->info_out);
	pthread_mutex_unlock(&f->mu);
	djmfs__op_wake(op, status);
}

enum step_ret djmfs__s_snap(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	enum step_ret ret;
	int local;

	if (!req)
		return djmfs__op_failed(op, -ENOMEM);
	op->state = ST_DONE;
	pthread_mutex_lock(&f->mu);
	/* A writer's image is its own last publish; a djmfs__frozen one stays. */
	local = op->rpc_op == DJMFS_OP_SYNC_SNAP &&
		((f->oflags & DJMFS_O_WRITE) || djmfs__frozen(f));
	if (local && op->info_out)
		djmfs__fill_info(f, op->info_out);
	if (!djmfs__frozen(f))
		f->snap_locked = 0;
	djmfs__fill_known(f, &req->u.snap_req.known);
	pthread_mutex_unlock(&f->mu);
	if (local) {
		free(req);
		return STEP_GO;
	}
	req->h.op = op->rpc_op;
	req->u.snap_req.handle = f->handle;
	req->u.snap_req.timeout_ms = op->timeout_ms;
	ret = djmfs__op_rpc(op, req, snap_reply, ST_SNAP);
	free(req);
	return ret;
}

static void unlock_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;

	(void)m;
	if (status == 0) {
		pthread_mutex_lock(&op->f->mu);
		op->f->snap_locked = 0;
		pthread_mutex_unlock(&op->f->mu);
	}
	djmfs__op_wake(op, status);
}

enum step_ret djmfs__s_unlock(struct fop *op)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_UNLOCK_SNAP };

	op->state = ST_DONE;
	req.u.handle_req.handle = op->f->handle;
	return djmfs__op_rpc(op, &req, unlock_reply, ST_UNLOCK);
}

/* ------------------------------------------------------------------ */
/* Snapshot API                                                         */
/* ------------------------------------------------------------------ */

static struct fop *snap_op(struct djmfs_file *f, uint16_t rpc_op,
			   uint32_t timeout_ms, struct djmfs_file_info *out)
{
	struct fop *op = djmfs__op_new(f, ST_SNAP, NULL, NULL);

	if (op) {
		op->rpc_op = rpc_op;
		op->timeout_ms = timeout_ms;
		op->info_out = out;
	}
	return op;
}

int djmfs_sync_snap(struct djmfs_file *f, struct djmfs_file_info *out)
{
	if (!f)
		return -EINVAL;
	return (int)djmfs__op_run(snap_op(f, DJMFS_OP_SYNC_SNAP, 0, out));
}

int djmfs_sync_snap_async(struct djmfs_file *f, djmfs_done_fn done,
			  void *user)
{
	struct fop *op;

	if (!f || !done)
		return -EINVAL;
	op = snap_op(f, DJMFS_OP_SYNC_SNAP, 0, NULL);
	if (!op)
		return -ENOMEM;
	op->done = done;
	op->user = user;
	djmfs__op_queue(op);
	return 0;
}

/* A writer's image changes only by its own publishes: nothing to freeze. */
static int reader_only(struct djmfs_file *f, const char *call)
{
	if (!f)
		return -EINVAL;
	if (!(f->oflags & DJMFS_O_WRITE))
		return 0;
	djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "%s(%s): a writer's handle "
		   "has no snapshot to freeze", call, f->name);
	return -EBADF;
}

int djmfs_lock_snap(struct djmfs_file *f, uint32_t timeout_ms,
		    struct djmfs_file_info *out)
{
	int err = reader_only(f, "djmfs_lock_snap");

	if (err < 0)
		return err;
	return (int)djmfs__op_run(snap_op(f, DJMFS_OP_LOCK_SNAP, timeout_ms, out));
}

int djmfs_unlock_snap(struct djmfs_file *f)
{
	int err = reader_only(f, "djmfs_unlock_snap");

	if (err < 0)
		return err;
	return (int)djmfs__op_run(djmfs__op_new(f, ST_UNLOCK, NULL, NULL));
}

/* ------------------------------------------------------------------ */
/* Image API                                                            */
/* ------------------------------------------------------------------ */

int djmfs_file_info(struct djmfs_file *f, struct djmfs_file_info *out)
{
	if (!f || !out)
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	if (!djmfs__frozen(f))
		f->snap_locked = 0;
	djmfs__fill_info(f, out);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

int djmfs_obj_extents(struct djmfs_file *f, uint32_t id,
		      struct djmfs_extent *out, size_t max)
{
	struct cobj *o;
	int n = -ENOENT;

	if (!f || (!out && max))
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	o = djmfs__obj_find(f, id);
	if (o) {
		/* A trimmed map from its first extent on. */
		n = (int)(o->img_n_ext - o->ext_first);
		for (uint32_t i = 0; i < (uint32_t)n && i < max; i++)
			out[i] = djmfs__img_ext(o, o->ext_first + i);
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}


int djmfs_obj_checksums(struct djmfs_file *f, uint32_t id, uint32_t *out,
			size_t max, uint32_t *last)
{
	struct cobj *o;
	int n = -ENOENT;

	if (!f || (!out && max))
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	o = djmfs__obj_find(f, id);
	if (o && (o->attrs & DJMFS_ATTR_META))
		n = -EINVAL;
	else if (o) {
		/* Indices stay the cblocks': a trimmed one's is 0. */
		n = (int)o->img_n_ck;
		for (uint32_t i = 0; i < o->img_n_ck && i < max; i++)
			out[i] = i < o->ck_first ? 0 : djmfs__ck_get(o, i);
		if (last)
			*last = o->img_ck_flags & DJMFS_OBJ_CK_GAP ?
				0 : o->img_last_ck;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}
