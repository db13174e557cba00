/*
 * The FIFO of a file handle and its driver: operations queue in
 * submission order, only the head runs, one step at a time, and every
 * asynchronous action (an RPC on the handle's connection generation, or
 * device requests through the I/O thread) wakes the head and drives the
 * queue on when it completes (djmfs_file.h, invariants 1, 2, 6, 7).  The
 * steps themselves live with their concern (djmfs_write.c, djmfs_read.c,
 * djmfs_snap.c, djmfs_obj.c) and are reached through the handle's step
 * table, so this file names none of them.  A stale handle runs only the
 * offline steps (invariant 8); an RPC lost with its connection parks its
 * operation for the recovery layer (invariant 9).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* The FIFO and its driver                                              */
/* ------------------------------------------------------------------ */

/* Under f->mu, as an action ends with @err: an RPC lost with its
 * connection parks the operation on the step that sent it (invariant
 * 9).  Returns 1 when it did. */
static int op_park(struct fop *op, int err)
{
	int redo = op->redo;

	op->redo = 0;
	if (err != -ENOTCONN || !redo || djmfs__conn_dead(op->f->c))
		return 0;
	op->state = redo;
	op->parked = 1;
	return 1;
}

/* The action's completion (any thread). */
void djmfs__op_wake(struct fop *op, int err)
{
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (err < 0 && !op_park(op, err) && op->err == 0)
		op->err = err;
	op->redo = 0;
	op->waiting = 0;
	f->busy++;
	djmfs__drive_locked(f, 0);
}

/* An action that failed to start: its completion never comes. */
enum step_ret djmfs__op_failed(struct fop *op, int err)
{
	pthread_mutex_lock(&op->f->mu);
	op->waiting = 0;
	if (!op_park(op, err) && op->err == 0)
		op->err = err;
	pthread_mutex_unlock(&op->f->mu);
	return STEP_GO;
}

/* Sends @req for @op on its handle's connection; @redo is the step that
 * sent it (to run again if the RPC is lost). */
enum step_ret djmfs__op_rpc(struct fop *op, struct djmfs__msg *req,
			    djmfs__reply_fn fn, int redo)
{
	struct djmfs_file *f = op->f;
	uint64_t gen;
	int err;

	pthread_mutex_lock(&f->mu);
	op->waiting = 1;
	op->redo = redo;
	gen = f->gen;
	pthread_mutex_unlock(&f->mu);
	err = djmfs__rpc_async_on(f->c, gen, req, fn, op);
	return err < 0 ? djmfs__op_failed(op, err) : STEP_WAIT;
}

void djmfs__op_free(struct fop *op)
{
	if (op->abuf_owned)
		free(op->abuf);
	free(op->nsegs);
	free(op->reqs);
	if (op->cleanup)
		op->cleanup(op);
	free(op);
}

static void piece_done(struct djmfs__ioreq *r, int res)
{
	struct fop *op = r->user;
	struct djmfs_file *f = op->f;
	int last;

	pthread_mutex_lock(&f->mu);
	if (res < 0 && op->err == 0)
		op->err = res;
	last = --op->pending == 0;
	if (!last) {
		pthread_mutex_unlock(&f->mu);
		return;
	}
	op->waiting = 0;
	f->busy++;
	djmfs__drive_locked(f, 0);
}

static void bounce_done(struct djmfs__ioreq *r, int res)
{
	(void)res;
	djmfs__op_wake(r->user, 0);
}

/* A loss bumps the connection's generation in the critical section
 * that leaves UP or RESTORING, so every handle is stale from that moment
 * without the connection layer knowing of handles; the restore that
 * brings it back sets ready_gen last. */
int djmfs__file_stale(const struct djmfs_file *f)
{
	return !f->lost_err && f->ready_gen != djmfs__conn_gen(f->c);
}

/* Steps a stale handle may still run (invariant 8). */
static const uint8_t offline_ok[ST_MAX] = {
	[ST_W_COMMIT] = 1,
	[ST_PUBLISHED] = 1,
	[ST_R_VERIFY] = 1, /* the sums were taken with the plan */
};

/* Under f->mu, with the head op finished: pops and completes it, or
 * first bounces it to the I/O thread (invariant 6).  Returns with mu. */
/* Under f->mu: after the last of a chain of failed appends, the object
 * pointer and the submitted end come back to the staged size, so the
 * writer's next append continues the object where it really ends. */
static void append_failed(struct djmfs_file *f, const struct fop *op)
{
	struct cobj *o = djmfs__obj_find(f, op->obj_id);

	if (!o || !(o->attrs & DJMFS_ATTR_DATA) ||
	    op->off + op->len != o->sub_end)
		return;
	if (f->ptr_set && f->ptr_id == op->obj_id && f->ptr_off == o->sub_end)
		f->ptr_off = o->size;
	o->sub_end = o->size;
}

static void finish_head(struct djmfs_file *f, struct fop *op, int submitter)
{
	ssize_t res = op->err < 0 ? op->err : op->res;

	if (op->err < 0 && op->is_append && !op->bounced)
		append_failed(f, op);

	if (submitter && !op->inline_ok && !op->bounced) {
		op->bounced = 1;
		op->waiting = 1;
		op->bounce = (struct djmfs__ioreq){ .done = bounce_done,
						    .user = op };
		pthread_mutex_unlock(&f->mu);
		djmfs__io_submit(f->c->io, &op->bounce);
		pthread_mutex_lock(&f->mu);
		return;
	}
	f->head = op->next;
	if (!f->head)
		f->tail = NULL;
	pthread_mutex_unlock(&f->mu);
	if (op->done)
		op->done(op->user, res);
	djmfs__op_free(op);
	pthread_mutex_lock(&f->mu);
}

/*
 * Runs the FIFO until its head waits or it is empty.  Called with f->mu
 * held and f->busy counted for the caller; drops both.  The count keeps
 * djmfs_close from freeing the handle under a completion thread that has
 * woken an operation but not yet left this function.
 */
void djmfs__drive_locked(struct djmfs_file *f, int submitter)
{
	if (f->driving)
		goto out;
	f->driving = 1;
	for (;;) {
		struct fop *op = f->head;

		if (!op || op->waiting)
			break;
		if (f->lost_err && op->err == 0 && op->state != ST_DONE)
			op->err = f->lost_err;
		if (op->err < 0 || op->state == ST_DONE) {
			finish_head(f, op, submitter);
			continue;
		}
		if (djmfs__file_stale(f) && !offline_ok[op->state])
			break;
		pthread_mutex_unlock(&f->mu);
		f->steps[op->state](op);
		pthread_mutex_lock(&f->mu);
	}
	f->driving = 0;
out:
	/* Also wakes a reconnect thread waiting for the handle to be
	 * quiet. */
	f->busy--;
	pthread_cond_broadcast(&f->idle);
	pthread_mutex_unlock(&f->mu);
}

struct fop *djmfs__op_new(struct djmfs_file *f, int state, djmfs_done_fn done,
			  void *user)
{
	struct fop *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->f = f;
	op->state = state;
	op->done = done;
	op->user = user;
	return op;
}

void djmfs__op_queue(struct fop *op)
{
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (f->tail)
		f->tail->next = op;
	else
		f->head = op;
	f->tail = op;
	f->busy++;
	djmfs__drive_locked(f, 1);
}

struct bwait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	ssize_t res;
};

static void bwait_done(void *user, ssize_t res)
{
	struct bwait *w = user;

	pthread_mutex_lock(&w->mu);
	w->res = res;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Queues @op (NULL: -ENOMEM) and waits for its result. */
ssize_t djmfs__op_run(struct fop *op)
{
	struct bwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0, 0 };

	if (!op)
		return -ENOMEM;
	op->done = bwait_done;
	op->user = &w;
	op->inline_ok = 1;
	djmfs__op_queue(op);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return w.res;
}

/* ------------------------------------------------------------------ */
/* Device requests of a step                                            */
/* ------------------------------------------------------------------ */

/* Adds requests for @len bytes at volume @phys <-> @buf, split at
 * DJMFS_IO_MAX. */
int djmfs__add_io(struct fop *op, enum iosched_op rw, uint64_t phys,
		  uint64_t len, uint8_t *buf)
{
	while (len > 0) {
		uint32_t n = len > DJMFS_IO_MAX ? DJMFS_IO_MAX : (uint32_t)len;

		if (op->n_reqs == op->reqs_cap) {
			uint32_t cap = op->reqs_cap ? op->reqs_cap * 2 : 4;
			struct djmfs__ioreq *v = realloc(op->reqs,
							 cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			op->reqs = v;
			op->reqs_cap = cap;
		}
		op->reqs[op->n_reqs++] = (struct djmfs__ioreq){
			.op = rw, .off = phys, .len = n, .buf = buf,
			.deadline_ns = op->deadline_ns, .done = piece_done,
			.user = op };
		phys += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Starts the requests built by djmfs__add_io; GO when there are none. */
enum step_ret djmfs__io_start(struct fop *op)
{
	struct djmfs__io *io = op->f->c->io;
	uint32_t n = op->n_reqs;

	if (n == 0)
		return STEP_GO;
	pthread_mutex_lock(&op->f->mu);
	op->pending = n;
	op->waiting = 1;
	pthread_mutex_unlock(&op->f->mu);
	for (uint32_t i = 0; i < n; i++)
		djmfs__io_submit(io, &op->reqs[i]);
	return STEP_WAIT;
}

