/*
 * File handles of libdjmfs: the image a handle reads (the objects of one
 * published snapshot with their maps and META bytes), snapshot moves
 * (SYNC_SNAP, LOCK_SNAP with deltas), object calls, reads, and the
 * writer's staging and publishing of appended data.
 *
 * Every operation on a handle is an entry in the handle's FIFO and runs
 * as a small state machine, one operation at a time, so operations
 * complete in submission order.  A step either goes on at once or starts
 * one asynchronous action (an RPC or device requests) and returns; the
 * action's completion, on the receive or the I/O thread, wakes the
 * operation and drives the FIFO on.  Nothing here ever waits, except the
 * blocking API calls, which queue an operation and wait for its
 * callback on the caller's thread.
 *
 *   state        step           next
 *   W_START      w_start        DONE (META) | W_TAIL | W_RESERVE
 *   W_TAIL       w_tail         W_RESERVE  (after reading the tail block)
 *   W_RESERVE    w_reserve      W_RESERVE  (after a RESERVE) | W_IO
 *   W_IO         w_io           W_COMMIT   (after the device writes)
 *   W_COMMIT     w_commit       PUBLISH (SYNC object) | DONE
 *   PUBLISH      p_publish      PUBLISHED  (after PUBLISH) | DONE
 *   PUBLISHED    p_published    DONE
 *   READ         r_read         DONE       (after the device reads)
 *   SNAP         s_snap         DONE       (after SYNC_SNAP / LOCK_SNAP)
 *   UNLOCK       s_unlock       DONE       (after UNLOCK_SNAP)
 *   OBJ          o_obj          DONE       (after CREATE/DELETE/SET_ATTR)
 *
 * Invariants:
 *  1. Only the operation at the head of the FIFO runs; while its
 *     asynchronous action is outstanding op->waiting is 1, and exactly
 *     one completion clears it (under f->mu) and drives the FIFO.
 *  2. One thread drives a handle at a time (f->driving); a completion
 *     arriving meanwhile leaves the work to that thread, which re-checks
 *     the head before it stops.
 *  3. A DATA object's staged map extends its image's map: the image sees
 *     the first img_n_ext extents, the last clamped to img_last_len, so
 *     staged appends never change what reads see before a publish.
 *  4. Extents cover whole blocks; bytes at or past an object's staged
 *     size, up to its map end, are the writer's to rewrite, and the
 *     object's last partial block is kept in o->tail so a rewrite keeps
 *     the bytes below the size unchanged.
 *  5. The writer owns the rest of the allocation unit holding a DATA
 *     object's map end, and the reservation's units in f->res; units are
 *     taken from the front of f->res only when the data written there is
 *     committed to the staged map.
 *  6. A user's asynchronous callback runs on a library thread: an
 *     operation that would finish on the submitting thread is first
 *     bounced through the I/O thread.
 *  7. f->busy counts the threads inside the driver (or on their way in
 *     with an operation just woken) and the reconnect thread while it
 *     works on the handle; djmfs_close frees the handle only once it is
 *     0, after the last operation has completed.
 *  8. f->handle is the server's handle on connection generation f->gen.
 *     While f->stale (the connection went; set with the loss, cleared by
 *     the restore) the driver starts no step but the offline ones
 *     (W_COMMIT, PUBLISHED: they only finish work already on the volume
 *     or already acknowledged), so the handle's staged map and
 *     reservation change only under the reconnect thread's restore.
 *  9. An RPC lost with its connection (-ENOTCONN, the client not dead)
 *     does not fail its operation: the operation goes back to the step
 *     that sent it (op->redo) and is parked; the restore decides from
 *     the server's state whether that step's effect is there already.
 *     A handle the restore could not bring back (f->lost_err) fails
 *     every operation that has not finished.
 *
 * Reconnecting (djmfs__files_*, called by djmfs_client.c):
 *   loss      djmfs__files_mark_stale  every handle stale
 *   salvage   file_salvage   a quiet writer reads back its unpublished
 *                            bytes past its last published unit (they
 *                            lie in reserved units the server forgets)
 *   restore   file_restore   OPEN again (writers retry -EBUSY), judge:
 *                            SAME (nothing lost was applied), APPLIED
 *                            (the parked PUBLISH or object call was),
 *                            else lost; salvaged bytes to new units;
 *                            stale cleared, the queue runs again
 *   give up   djmfs__files_lose        every handle lost
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_clnt.h"

#define ALL_OBJS UINT32_MAX
#define BLK ((uint64_t)DJMFS_BLOCK)

static uint64_t blk_down(uint64_t v)
{
	return v & ~(BLK - 1);
}

static uint64_t blk_up(uint64_t v)
{
	return (v + BLK - 1) & ~(BLK - 1);
}

/* One object as the handle holds it. */
struct cobj {
	uint32_t id;
	uint32_t attrs;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	/* The image (what reads see). */
	uint64_t img_size;
	uint32_t img_n_ext;
	uint64_t img_last_len;
	uint8_t *img_meta;
	/* Staged state (a writer's; a reader's equals its image). */
	uint64_t size;
	/* DATA, writer: the end of the writes submitted so far, so the
	 * pointer can come back to an object whose writes are in flight. */
	uint64_t sub_end;
	uint32_t n_ext, ext_cap;
	struct djmfs_extent *ext;
	uint8_t *meta; /* writer: DJMFS_META_MAX bytes, or NULL */
	int meta_dirty;
	uint8_t *tail; /* writer: the block holding size, if partial */
	int tail_ok;
	/* Reconnecting: unpublished bytes [salv_off, salv_off + salv_len)
	 * read back from the volume, to be rewritten to new units. */
	uint8_t *salv;
	uint64_t salv_off, salv_len;
};

enum step_state {
	ST_DONE,
	ST_W_START,
	ST_W_TAIL,
	ST_W_RESERVE,
	ST_W_IO,
	ST_W_COMMIT,
	ST_PUBLISH,
	ST_PUBLISHED,
	ST_READ,
	ST_SNAP,
	ST_UNLOCK,
	ST_OBJ,
	ST_MAX
};

enum step_ret { STEP_GO, STEP_WAIT };

/* A piece of a range: logical (object) offset -> volume offset. */
struct seg {
	uint64_t phys;
	uint64_t len;
	uint64_t logical;
};

struct fop {
	struct djmfs_file *f;
	int state;
	int waiting;
	int bounced;	/* finished once through the I/O thread */
	int redo;	/* the step to run again if its RPC is lost */
	int parked;	/* its RPC was lost: waiting for the restore */
	int inline_ok;	/* blocking caller: may finish on its thread */
	int err;
	ssize_t res;
	djmfs_done_fn done;
	void *user;
	/* Arguments. */
	uint16_t rpc_op;
	const void *wbuf;
	void *rbuf;
	size_t len;
	uint64_t off;
	uint32_t obj_id;
	uint64_t deadline_ns;
	uint32_t attrs;
	uint32_t timeout_ms;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	uint32_t *id_out;
	struct djmfs_file_info *info_out;
	/* Device requests of the current step. */
	struct djmfs__ioreq *reqs;
	uint32_t n_reqs, reqs_cap, pending;
	struct djmfs__ioreq bounce;
	/* A write's plan, from W_IO to W_COMMIT. */
	uint8_t *abuf;	     /* assembled blocks, or the caller's buffer */
	int abuf_owned;
	uint64_t w_start;    /* first block's object offset */
	struct seg *nsegs;   /* new map pieces */
	uint32_t n_nsegs;
	uint32_t units_used; /* taken from the front of f->res */
	int tail_read;
	int is_append;	     /* a write at the object pointer */
	uint64_t pub_version;
	struct fop *next;
};

struct djmfs_file {
	struct djmfs_client *c;
	struct djmfs_file *next, **pprev; /* c->files, under c->lock */
	uint32_t handle;
	unsigned oflags;
	pthread_mutex_t mu;
	/* Image, under mu. */
	char name[DJMFS_NAME_MAX + 1];
	uint64_t ino, version, ctime_ns, mtime_ns;
	uint32_t sflags;
	uint32_t n_objs;
	struct cobj *objs[DJMFS_MAX_OBJS];
	int snap_locked;
	uint64_t lock_until_ns; /* 0: until unlocked */
	/* Writer state: the submitting thread (ptr) and the running op. */
	int ptr_set;
	uint32_t ptr_id;
	uint64_t ptr_off;
	struct djmfs__run *res;
	uint32_t n_res, res_cap;
	/* The FIFO, under mu. */
	struct fop *head, *tail;
	int driving;
	unsigned busy;	  /* threads inside drive_locked() or about to be */
	pthread_cond_t idle; /* the driver stopped (busy may be 0) */
	/* Reconnecting, under mu (invariants 8, 9). */
	uint64_t gen;	  /* connection generation of handle */
	int stale;	  /* waiting for a restore */
	int salvaged;	  /* this outage's read-back is done */
	int salv_err;	  /* ... and failed with this */
	int lost_err;	  /* could not be restored: ops fail with it */
};

typedef enum step_ret (*step_fn)(struct fop *op);

static void drive_locked(struct djmfs_file *f, int submitter);

/* ------------------------------------------------------------------ */
/* Objects and the image                                                */
/* ------------------------------------------------------------------ */

static void cobj_free(struct cobj *o)
{
	if (!o)
		return;
	free(o->salv);
	free(o->img_meta);
	free(o->ext);
	free(o->meta);
	free(o->tail);
	free(o);
}

/* Under f->mu. */
static struct cobj *obj_find(struct djmfs_file *f, uint32_t id)
{
	for (uint32_t i = 0; i < f->n_objs; i++)
		if (f->objs[i]->id == id)
			return f->objs[i];
	return NULL;
}

static int ext_reserve(struct cobj *o, uint32_t n)
{
	struct djmfs_extent *e;
	uint32_t cap = o->ext_cap ? o->ext_cap : 4;

	if (n <= o->ext_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	e = realloc(o->ext, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	o->ext = e;
	o->ext_cap = cap;
	return 0;
}

/* Extent i as the image sees it. */
static struct djmfs_extent img_ext(const struct cobj *o, uint32_t i)
{
	struct djmfs_extent e = o->ext[i];

	if (i + 1 == o->img_n_ext && e.len > o->img_last_len)
		e.len = o->img_last_len;
	return e;
}

static uint64_t map_bytes(const struct cobj *o)
{
	uint64_t t = 0;

	for (uint32_t i = 0; i < o->n_ext; i++)
		t += o->ext[i].len;
	return t;
}

/* Pieces of object bytes [lo, hi) through the first @n extents (image
 * view when @img).  Returns the pieces found (fewer if the map is
 * short), or -ENOMEM. */
static int map_range(const struct cobj *o, int img, uint64_t lo,
		     uint64_t hi, struct seg **out, uint32_t *n_out)
{
	uint32_t n = img ? o->img_n_ext : o->n_ext, cnt = 0;
	uint64_t pos = 0;
	struct seg *v = NULL;

	for (uint32_t i = 0; i < n && pos < hi; i++) {
		struct djmfs_extent e = img ? img_ext(o, i) : o->ext[i];
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
	}
	*out = v;
	*n_out = cnt;
	return (int)cnt;
}

static void fill_info(struct djmfs_file *f, struct djmfs_file_info *out)
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
		oi->n_extents = o->img_n_ext;
		out->size += o->img_size;
	}
}

/* Pass 1 of applying a snapshot: everything that can fail.  nw[i] is the
 * object for snapshot object i (an old one, or fresh), meta[i] its new
 * META bytes. */
static int snap_prepare(struct djmfs_file *f, const struct djmfs__snap *s,
			struct cobj **nw, uint8_t **meta, int *fresh)
{
	for (uint32_t i = 0; i < s->n_objs; i++) {
		const struct djmfs__snap_obj *so = &s->objs[i];
		struct cobj *o = obj_find(f, so->id);

		fresh[i] = !o;
		if (!o && !(o = calloc(1, sizeof(*o))))
			return -ENOMEM;
		nw[i] = o;
		if (so->ext_base > (fresh[i] ? 0 : o->img_n_ext))
			return -EBADMSG; /* a delta against what we lack */
		if (ext_reserve(o, so->ext_total) < 0)
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

/* Pass 2: cannot fail. */
static void snap_commit_obj(struct cobj *o, const struct djmfs__snap_obj *so,
			    uint8_t *meta)
{
	o->id = so->id;
	o->attrs = so->attrs;
	memcpy(o->name, so->name, sizeof(o->name));
	for (uint32_t k = 0; k < so->ext.n; k++)
		o->ext[so->ext_base + k] = djmfs__extv_at(so->ext, k);
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
static int apply_snap(struct djmfs_file *f, const struct djmfs__snap *s)
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
				cobj_free(nw[i]);
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
				cobj_free(f->objs[i]);
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

static void fill_known(struct djmfs_file *f, struct djmfs__known *k)
{
	k->version = f->version;
	k->n = f->n_objs;
	for (uint32_t i = 0; i < f->n_objs; i++) {
		k->o[i].id = f->objs[i]->id;
		k->o[i].n_ext = f->objs[i]->img_n_ext;
	}
}

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
static void op_wake(struct fop *op, int err)
{
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (err < 0 && !op_park(op, err) && op->err == 0)
		op->err = err;
	op->redo = 0;
	op->waiting = 0;
	f->busy++;
	drive_locked(f, 0);
}

/* An action that failed to start: its completion never comes. */
static enum step_ret op_failed(struct fop *op, int err)
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
static enum step_ret op_rpc(struct fop *op, struct djmfs__msg *req,
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
	return err < 0 ? op_failed(op, err) : STEP_WAIT;
}

static void op_free(struct fop *op)
{
	if (op->abuf_owned)
		free(op->abuf);
	free(op->nsegs);
	free(op->reqs);
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
	drive_locked(f, 0);
}

static void bounce_done(struct djmfs__ioreq *r, int res)
{
	(void)res;
	op_wake(r->user, 0);
}

static const step_fn steps[ST_MAX];

/* Steps a stale handle may still run (invariant 8). */
static const uint8_t offline_ok[ST_MAX] = {
	[ST_W_COMMIT] = 1,
	[ST_PUBLISHED] = 1,
};

/* Under f->mu, with the head op finished: pops and completes it, or
 * first bounces it to the I/O thread (invariant 6).  Returns with mu. */
/* Under f->mu: after the last of a chain of failed appends, the object
 * pointer and the submitted end come back to the staged size, so the
 * writer's next append continues the object where it really ends. */
static void append_failed(struct djmfs_file *f, const struct fop *op)
{
	struct cobj *o = obj_find(f, op->obj_id);

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
	op_free(op);
	pthread_mutex_lock(&f->mu);
}

/*
 * Runs the FIFO until its head waits or it is empty.  Called with f->mu
 * held and f->busy counted for the caller; drops both.  The count keeps
 * djmfs_close from freeing the handle under a completion thread that has
 * woken an operation but not yet left this function.
 */
static void drive_locked(struct djmfs_file *f, int submitter)
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
		if (f->stale && !offline_ok[op->state])
			break;
		pthread_mutex_unlock(&f->mu);
		steps[op->state](op);
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

static struct fop *op_new(struct djmfs_file *f, int state, djmfs_done_fn done,
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

static void op_queue(struct fop *op)
{
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (f->tail)
		f->tail->next = op;
	else
		f->head = op;
	f->tail = op;
	f->busy++;
	drive_locked(f, 1);
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
static ssize_t op_run(struct fop *op)
{
	struct bwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0, 0 };

	if (!op)
		return -ENOMEM;
	op->done = bwait_done;
	op->user = &w;
	op->inline_ok = 1;
	op_queue(op);
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
static int add_io(struct fop *op, enum iosched_op rw, uint64_t phys,
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

/* Starts the requests built by add_io; GO when there are none. */
static enum step_ret io_start(struct fop *op)
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

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

static enum step_ret w_meta(struct fop *op, struct cobj *o)
{
	uint64_t end = op->off + op->len;

	if (op->off > o->size)
		return op_failed(op, -EINVAL);
	if (end > DJMFS_META_MAX)
		return op_failed(op, -EFBIG);
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
		return op_failed(op, -ENOMEM);
	op->res = (ssize_t)op->len;
	op->state = ST_DONE;
	return STEP_GO;
}

static enum step_ret w_start(struct fop *op)
{
	struct cobj *o;

	pthread_mutex_lock(&op->f->mu);
	o = obj_find(op->f, op->obj_id);
	pthread_mutex_unlock(&op->f->mu);
	if (!o)
		return op_failed(op, -ENOENT);
	if (o->attrs & DJMFS_ATTR_META)
		return w_meta(op, o);
	/* An earlier append queued before this one failed: this one would
	 * land short of where it was submitted, leaving the object's bytes
	 * out of order.  Appends fail as a chain, like linked io_uring
	 * requests. */
	if (op->off != o->size)
		return op_failed(op, -ECANCELED);
	op->res = (ssize_t)op->len;
	if (op->len == 0)
		op->state = ST_DONE;
	else if (o->size % BLK && !o->tail_ok)
		op->state = ST_W_TAIL;
	else
		op->state = ST_W_RESERVE;
	return STEP_GO;
}

/* Reads the object's last partial block into o->tail (invariant 4). */
static enum step_ret w_tail(struct fop *op)
{
	struct cobj *o = obj_find(op->f, op->obj_id);
	struct seg *s = NULL;
	uint32_t n = 0;
	int err;

	if (!o->tail && posix_memalign((void **)&o->tail, BLK, BLK))
		return op_failed(op, -ENOMEM);
	err = map_range(o, 0, blk_down(o->size), blk_down(o->size) + BLK, &s,
			&n);
	if (err == 0 || (err > 0 && (n != 1 || s[0].len != BLK)))
		err = -EUCLEAN; /* the size is past the map */
	if (err > 0)
		err = add_io(op, IOSCHED_READ, s[0].phys, BLK, o->tail);
	free(s);
	if (err < 0)
		return op_failed(op, err);
	op->tail_read = 1;
	op->state = ST_W_RESERVE;
	return io_start(op);
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
	op_wake(op, status);
}

/* Makes sure the reservation covers the write (loops through RESERVE). */
static enum step_ret w_reserve(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs_client *c = f->c;
	struct cobj *o = obj_find(f, op->obj_id);
	uint64_t dev_end = blk_up(o->size + op->len), map_end = map_bytes(o);
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
	return op_rpc(op, &req, reserve_reply, ST_W_RESERVE);
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

/* The blocks to write: the kept tail, the caller's bytes, zeroes. */
static int assemble(struct fop *op, struct cobj *o, uint64_t dev_end)
{
	uint64_t head = o->size - op->w_start;

	if (head == 0 && op->len % BLK == 0 &&
	    ((uintptr_t)op->wbuf & (BLK - 1)) == 0) {
		op->abuf = (uint8_t *)op->wbuf;
		return 0;
	}
	if (posix_memalign((void **)&op->abuf, BLK, dev_end - op->w_start))
		return -ENOMEM;
	op->abuf_owned = 1;
	if (head)
		memcpy(op->abuf, o->tail, head);
	memcpy(op->abuf + head, op->wbuf, op->len);
	memset(op->abuf + head + op->len, 0,
	       dev_end - op->w_start - head - op->len);
	return 0;
}

static enum step_ret w_io(struct fop *op)
{
	struct cobj *o = obj_find(op->f, op->obj_id);
	uint64_t dev_end = blk_up(o->size + op->len), map_end = map_bytes(o);
	uint64_t old_end = map_end < dev_end ? map_end : dev_end;
	struct seg *s = NULL;
	uint32_t n = 0;
	int err;

	op->w_start = blk_down(o->size);
	err = assemble(op, o, dev_end);
	if (err == 0 && op->w_start < old_end)
		err = map_range(o, 0, op->w_start, old_end, &s, &n);
	for (uint32_t i = 0; err >= 0 && i < n; i++)
		err = add_io(op, IOSCHED_WRITE, s[i].phys, s[i].len,
			     op->abuf + (s[i].logical - op->w_start));
	free(s);
	if (err >= 0)
		err = plan_new(op, o, map_end, dev_end);
	for (uint32_t i = 0; err >= 0 && i < op->n_nsegs; i++)
		err = add_io(op, IOSCHED_WRITE, op->nsegs[i].phys,
			     op->nsegs[i].len,
			     op->abuf + (op->nsegs[i].logical - op->w_start));
	if (err < 0)
		return op_failed(op, err);
	op->state = ST_W_COMMIT;
	return io_start(op);
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

static enum step_ret w_commit(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct cobj *o = obj_find(f, op->obj_id);
	uint64_t end = o->size + op->len;
	int err = 0;

	pthread_mutex_lock(&f->mu);
	if (ext_reserve(o, o->n_ext + op->n_nsegs) < 0)
		err = -ENOMEM;
	if (end % BLK && !o->tail &&
	    posix_memalign((void **)&o->tail, BLK, BLK))
		err = -ENOMEM;
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
		if (end % BLK)
			memcpy(o->tail, op->abuf + (blk_down(end) - op->w_start),
			       end % BLK);
		o->tail_ok = 1;
		o->size = end;
	}
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		return op_failed(op, err);
	op->state = (o->attrs & DJMFS_ATTR_SYNC) ? ST_PUBLISH : ST_DONE;
	return STEP_GO;
}

/* ------------------------------------------------------------------ */
/* Publishing                                                           */
/* ------------------------------------------------------------------ */

/* Appends object @o's staged change to @pub (extents into @xb); returns
 * 1 when it has one. */
static int pub_obj(const struct cobj *o, struct djmfs__pub_obj *po,
		   struct djmfs__buf *xb, uint32_t *x_first)
{
	uint32_t before = (uint32_t)(xb->len / DJMFS_EXT_WIRE);
	uint32_t i = o->img_n_ext;

	memset(po, 0, sizeof(*po));
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
	return po->ext.n > 0 || o->size != o->img_size;
}

static void publish_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;

	if (status == 0)
		op->pub_version = m->u.publish_resp.version;
	op_wake(op, status);
}

/* Sends every object's staged change (none: done). */
static enum step_ret p_publish(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	struct djmfs__buf xb;
	uint32_t first[DJMFS_MAX_OBJS], n = 0;
	enum step_ret ret;
	int err = 0;

	if (!req)
		return op_failed(op, -ENOMEM);
	djmfs__buf_init(&xb);
	req->h.op = DJMFS_OP_PUBLISH;
	req->u.publish_req.handle = f->handle;
	pthread_mutex_lock(&f->mu);
	req->u.publish_req.pub.base_version = f->version;
	for (uint32_t i = 0; i < f->n_objs; i++)
		n += (uint32_t)pub_obj(f->objs[i],
				       &req->u.publish_req.pub.objs[n], &xb,
				       &first[n]);
	pthread_mutex_unlock(&f->mu);
	req->u.publish_req.pub.n_objs = n;
	for (uint32_t i = 0; i < n; i++)
		req->u.publish_req.pub.objs[i].ext.p =
			xb.p ? xb.p + (size_t)first[i] * DJMFS_EXT_WIRE : NULL;
	op->state = n ? ST_PUBLISHED : ST_DONE;
	if (xb.err)
		err = xb.err;
	ret = err < 0 ? op_failed(op, err) : STEP_GO;
	if (err == 0 && n)
		ret = op_rpc(op, req, publish_reply, ST_PUBLISH);
	djmfs__buf_free(&xb);
	free(req);
	return ret;
}

/* The publish is durable: the image becomes the staged state. */
static enum step_ret p_published(struct fop *op)
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
	}
	f->version = op->pub_version;
	f->mtime_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	pthread_mutex_unlock(&f->mu);
	op->state = ST_DONE;
	return STEP_GO;
}

/* ------------------------------------------------------------------ */
/* Reading                                                              */
/* ------------------------------------------------------------------ */

/* Plans the read of image bytes [off, off+len) of @o into @buf. */
static int read_obj(struct fop *op, struct cobj *o, uint8_t *buf,
		    uint64_t off, uint64_t len)
{
	struct seg *s = NULL;
	uint32_t n = 0;
	uint64_t got = 0;
	int err = 0;

	if (o->attrs & DJMFS_ATTR_META) {
		if (len)
			memcpy(buf, o->img_meta + off, len);
		return 0;
	}
	err = map_range(o, 1, off, off + len, &s, &n);
	for (uint32_t i = 0; err >= 0 && i < n; i++) {
		err = add_io(op, IOSCHED_READ, s[i].phys, s[i].len,
			     buf + (s[i].logical - off));
		got += s[i].len;
	}
	free(s);
	if (err >= 0 && got != len)
		err = -EUCLEAN; /* the size is past the map */
	return err < 0 ? err : 0;
}

static enum step_ret r_read(struct fop *op)
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
	if (op->obj_id != ALL_OBJS && !obj_find(f, op->obj_id))
		err = -ENOENT;
	pthread_mutex_unlock(&f->mu);
	if (err < 0)
		return op_failed(op, err);
	op->res = (ssize_t)done;
	op->state = ST_DONE;
	return io_start(op);
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

/* Under f->mu: is the image frozen (LOCK_SNAP not yet timed out)? */
static int frozen(const struct djmfs_file *f)
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
		status = apply_snap(f, &m->u.snap_resp);
	if (status == 0 && op->rpc_op == DJMFS_OP_LOCK_SNAP) {
		f->snap_locked = 1;
		f->lock_until_ns = op->timeout_ms ?
			djmfs_now() + op->timeout_ms * 1000000ull : 0;
	}
	if (status == 0 && op->info_out)
		fill_info(f, op->info_out);
	pthread_mutex_unlock(&f->mu);
	op_wake(op, status);
}

static enum step_ret s_snap(struct fop *op)
{
	struct djmfs_file *f = op->f;
	struct djmfs__msg *req = calloc(1, sizeof(*req));
	enum step_ret ret;
	int local;

	if (!req)
		return op_failed(op, -ENOMEM);
	op->state = ST_DONE;
	pthread_mutex_lock(&f->mu);
	/* A writer's image is its own last publish; a frozen one stays. */
	local = op->rpc_op == DJMFS_OP_SYNC_SNAP &&
		((f->oflags & DJMFS_O_WRITE) || frozen(f));
	if (local && op->info_out)
		fill_info(f, op->info_out);
	if (!frozen(f))
		f->snap_locked = 0;
	fill_known(f, &req->u.snap_req.known);
	pthread_mutex_unlock(&f->mu);
	if (local) {
		free(req);
		return STEP_GO;
	}
	req->h.op = op->rpc_op;
	req->u.snap_req.handle = f->handle;
	req->u.snap_req.timeout_ms = op->timeout_ms;
	ret = op_rpc(op, req, snap_reply, ST_SNAP);
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
	op_wake(op, status);
}

static enum step_ret s_unlock(struct fop *op)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_UNLOCK_SNAP };

	op->state = ST_DONE;
	req.u.handle_req.handle = op->f->handle;
	return op_rpc(op, &req, unlock_reply, ST_UNLOCK);
}

/* ------------------------------------------------------------------ */
/* Object calls                                                         */
/* ------------------------------------------------------------------ */

/* Under f->mu: applies a CREATE_OBJ / DELETE_OBJ / SET_ATTR reply. */
static int obj_apply(struct fop *op, uint32_t id)
{
	struct djmfs_file *f = op->f;
	struct cobj *o;

	if (op->rpc_op == DJMFS_OP_CREATE_OBJ) {
		if (f->n_objs == DJMFS_MAX_OBJS || !(o = calloc(1, sizeof(*o))))
			return -ENOMEM;
		o->id = id;
		o->attrs = op->attrs;
		memcpy(o->name, op->name, sizeof(o->name));
		f->objs[f->n_objs++] = o;
		f->ptr_set = 1; /* writes go to the new object */
		f->ptr_id = id;
		f->ptr_off = 0;
		if (op->id_out)
			*op->id_out = id;
		return 0;
	}
	for (uint32_t i = 0; i < f->n_objs; i++) {
		if (f->objs[i]->id != id)
			continue;
		if (op->rpc_op == DJMFS_OP_SET_ATTR) {
			f->objs[i]->attrs = op->attrs;
			return 0;
		}
		cobj_free(f->objs[i]);
		memmove(&f->objs[i], &f->objs[i + 1],
			(--f->n_objs - i) * sizeof(f->objs[0]));
		if (f->ptr_set && f->ptr_id == id)
			f->ptr_set = 0;
		return 0;
	}
	return -ENOENT;
}

static void obj_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct fop *op = arg;
	struct djmfs_file *f = op->f;

	pthread_mutex_lock(&f->mu);
	if (status == 0) {
		f->version = m->u.obj_resp.version;
		status = obj_apply(op, m->u.obj_resp.obj_id);
	}
	pthread_mutex_unlock(&f->mu);
	op_wake(op, status);
}

static enum step_ret o_obj(struct fop *op)
{
	struct djmfs__msg req = { .h.op = op->rpc_op };

	op->state = ST_DONE;
	if (op->rpc_op == DJMFS_OP_CREATE_OBJ) {
		req.u.create_obj_req.handle = op->f->handle;
		req.u.create_obj_req.attrs = op->attrs;
		memcpy(req.u.create_obj_req.name, op->name, sizeof(op->name));
	} else {
		req.u.obj_req.handle = op->f->handle;
		req.u.obj_req.obj_id = op->obj_id;
		req.u.obj_req.attrs = op->attrs;
	}
	return op_rpc(op, &req, obj_reply, ST_OBJ);
}

static const step_fn steps[ST_MAX] = {
	[ST_W_START] = w_start,
	[ST_W_TAIL] = w_tail,
	[ST_W_RESERVE] = w_reserve,
	[ST_W_IO] = w_io,
	[ST_W_COMMIT] = w_commit,
	[ST_PUBLISH] = p_publish,
	[ST_PUBLISHED] = p_published,
	[ST_READ] = r_read,
	[ST_SNAP] = s_snap,
	[ST_UNLOCK] = s_unlock,
	[ST_OBJ] = o_obj,
};

/* ------------------------------------------------------------------ */
/* Opening and closing                                                  */
/* ------------------------------------------------------------------ */

struct open_ctx {
	struct djmfs_file *f;
	uint64_t gen;
	int granted;
	int err;
};

static void open_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct open_ctx *oc = arg;

	if (status < 0)
		return;
	pthread_mutex_lock(&oc->f->mu);
	oc->granted = 1;
	oc->f->handle = m->u.open_resp.handle;
	oc->err = apply_snap(oc->f, &m->u.open_resp.snap);
	pthread_mutex_unlock(&oc->f->mu);
}

static void file_free(struct djmfs_file *f)
{
	for (uint32_t i = 0; i < f->n_objs; i++)
		cobj_free(f->objs[i]);
	free(f->res);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static int open_flags_ok(unsigned fl)
{
	return !(fl & ~0xfu) && (fl & (DJMFS_O_READ | DJMFS_O_WRITE)) &&
	       (!(fl & DJMFS_O_CREATE) || (fl & DJMFS_O_WRITE)) &&
	       (!(fl & DJMFS_O_EXCL) || (fl & DJMFS_O_CREATE));
}

/*
 * Sends the OPEN of @oc->f once the connection is UP.  An OPEN lost with
 * its connection is sent again; a writer's lock then may still be held
 * by our own lost session (the server did not restart), so -EBUSY is
 * retried until the reconnect window would have ended.
 */
static int open_send(struct djmfs_client *c, struct djmfs__msg *req,
		     struct open_ctx *oc)
{
	uint64_t until = 0, pause = 10000000u;
	int err;

	for (;;) {
		err = djmfs__conn_wait_up(c, &oc->gen);
		if (err == 0)
			err = djmfs__rpc_on(c, oc->gen, req, open_reply, oc);
		if (err == 0)
			err = oc->err;
		if (err == -ENOTCONN && !djmfs__conn_dead(c)) {
			if (!until)
				until = djmfs_now() + c->reconnect_ns;
			continue;
		}
		if (err != -EBUSY || !until || djmfs_now() >= until)
			return err;
		djmfs__conn_nap(c, pause);
		pause = pause * 2 > 500000000u ? 500000000u : pause * 2;
	}
}

/* Links a new handle into c->files; one whose connection went after
 * its OPEN is answered waits for the restore like the others. */
static void file_link(struct djmfs_client *c, struct djmfs_file *f,
		      uint64_t gen)
{
	pthread_mutex_lock(&c->lock);
	f->gen = gen;
	if (gen != c->gen) {
		if (c->state == DJMFS__CONN_DEAD)
			f->lost_err = -ENOTCONN;
		else
			f->stale = 1;
	}
	f->next = c->files;
	f->pprev = &c->files;
	if (c->files)
		c->files->pprev = &f->next;
	c->files = f;
	pthread_mutex_unlock(&c->lock);
}

int djmfs_open(struct djmfs_client *c, const char *name, unsigned flags,
	       struct djmfs_file **out)
{
	struct djmfs__msg *req = NULL;
	struct open_ctx oc = { 0 };
	int err = -EINVAL;

	if (!c || !out || !name || !name[0] ||
	    strlen(name) > DJMFS_NAME_MAX || !open_flags_ok(flags)) {
		djmfs__log(c ? &c->log : NULL, DJMFS_LOG_ERROR,
			   "djmfs_open: bad name or flags 0x%x", flags);
		return -EINVAL;
	}
	oc.f = calloc(1, sizeof(*oc.f));
	req = calloc(1, sizeof(*req));
	err = -ENOMEM;
	if (!oc.f || !req)
		goto err;
	oc.f->c = c;
	oc.f->oflags = flags;
	pthread_mutex_init(&oc.f->mu, NULL);
	pthread_cond_init(&oc.f->idle, NULL);
	req->h.op = DJMFS_OP_OPEN;
	req->u.open_req.flags = flags;
	strcpy(req->u.open_req.name, name);
	err = open_send(c, req, &oc);
	if (err < 0)
		goto err;
	file_link(c, oc.f, oc.gen);
	free(req);
	*out = oc.f;
	return 0;
err:
	/* A handle the server granted but we cannot use is given back. */
	if (oc.granted) {
		struct djmfs__msg cl = { .h.op = DJMFS_OP_CLOSE };

		cl.u.handle_req.handle = oc.f->handle;
		djmfs__rpc_on(c, oc.gen, &cl, NULL, NULL);
	}
	if (oc.f)
		file_free(oc.f);
	free(req);
	return err;
}

int djmfs_flush(struct djmfs_file *f)
{
	if (!f)
		return -EINVAL;
	return (int)op_run(op_new(f, ST_PUBLISH, NULL, NULL));
}

int djmfs_close(struct djmfs_file *f)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_CLOSE };
	struct djmfs_client *c;
	uint64_t gen;
	int err, err2;

	if (!f)
		return 0;
	c = f->c;
	/* Also waits for every asynchronous operation still queued (and
	 * for a restore, when the connection is being restored). */
	err = djmfs_flush(f);
	if (err < 0)
		djmfs__log(&c->log, DJMFS_LOG_ERROR, "djmfs_close(%s): final "
			   "publish: %s", f->name, strerror(-err));
	pthread_mutex_lock(&c->lock);
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
	pthread_mutex_unlock(&c->lock);
	/* Out of the list, so no restore starts on it; one under way
	 * ends first (its busy count), and f->gen is then final. */
	pthread_mutex_lock(&f->mu);
	while (f->busy)
		pthread_cond_wait(&f->idle, &f->mu);
	gen = f->gen;
	req.u.handle_req.handle = f->handle;
	pthread_mutex_unlock(&f->mu);
	err2 = djmfs__rpc_on(c, gen, &req, NULL, NULL);
	/* A handle of a lost connection went with its session. */
	if (err2 == -ENOTCONN && !djmfs__conn_dead(c))
		err2 = 0;
	file_free(f);
	return err < 0 ? err : err2;
}

void djmfs__files_close_all(struct djmfs_client *c)
{
	for (;;) {
		struct djmfs_file *f;

		pthread_mutex_lock(&c->lock);
		f = c->files;
		pthread_mutex_unlock(&c->lock);
		if (!f)
			return;
		djmfs_close(f);
	}
}

/* ------------------------------------------------------------------ */
/* Object API                                                           */
/* ------------------------------------------------------------------ */

static int attrs_ok(unsigned attrs)
{
	unsigned kind = attrs & (DJMFS_ATTR_META | DJMFS_ATTR_DATA);

	return !(attrs & ~7u) &&
	       (kind == DJMFS_ATTR_META || kind == DJMFS_ATTR_DATA) &&
	       (!(attrs & DJMFS_ATTR_SYNC) || kind == DJMFS_ATTR_DATA);
}

static int writer_ok(struct djmfs_file *f, const char *call)
{
	if (!f)
		return -EINVAL;
	if (f->oflags & DJMFS_O_WRITE)
		return 0;
	djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "%s(%s): not opened for "
		   "writing", call, f->name);
	return -EBADF;
}

int djmfs_create_obj(struct djmfs_file *f, const char *name, unsigned attrs,
		     uint32_t *id_out)
{
	struct fop *op;
	int err = writer_ok(f, "djmfs_create_obj");

	if (err < 0)
		return err;
	if (!name || !name[0] || strlen(name) > DJMFS_OBJ_NAME_MAX ||
	    !attrs_ok(attrs)) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs_create_obj(%s):"
			   " bad object name or attributes 0x%x", f->name,
			   attrs);
		return -EINVAL;
	}
	op = op_new(f, ST_OBJ, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->rpc_op = DJMFS_OP_CREATE_OBJ;
	op->attrs = attrs;
	strcpy(op->name, name);
	op->id_out = id_out;
	return (int)op_run(op);
}

static int obj_call(struct djmfs_file *f, uint16_t rpc_op, uint32_t id,
		    unsigned attrs)
{
	struct fop *op = op_new(f, ST_OBJ, NULL, NULL);

	if (!op)
		return -ENOMEM;
	op->rpc_op = rpc_op;
	op->obj_id = id;
	op->attrs = attrs;
	return (int)op_run(op);
}

int djmfs_delete_obj(struct djmfs_file *f, uint32_t id)
{
	int err = writer_ok(f, "djmfs_delete_obj");

	return err < 0 ? err : obj_call(f, DJMFS_OP_DELETE_OBJ, id, 0);
}

int djmfs_find_obj(struct djmfs_file *f, const char *name, uint32_t *id_out)
{
	int err = -ENOENT;

	if (!f || !name)
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; i < f->n_objs; i++) {
		if (strcmp(f->objs[i]->name, name) == 0) {
			if (id_out)
				*id_out = f->objs[i]->id;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return err;
}

int djmfs_get_attr(struct djmfs_file *f, uint32_t id, unsigned *attrs_out)
{
	struct cobj *o;

	if (!f)
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	o = obj_find(f, id);
	if (o && attrs_out)
		*attrs_out = o->attrs;
	pthread_mutex_unlock(&f->mu);
	return o ? 0 : -ENOENT;
}

int djmfs_set_attr(struct djmfs_file *f, uint32_t id, unsigned attrs)
{
	unsigned cur;
	int err = writer_ok(f, "djmfs_set_attr");

	if (err == 0)
		err = djmfs_get_attr(f, id, &cur);
	if (err < 0)
		return err;
	if ((cur & ~DJMFS_ATTR_SYNC) != (attrs & ~DJMFS_ATTR_SYNC) ||
	    !attrs_ok(attrs)) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs_set_attr(%s): "
			   "only SYNC may change (0x%x -> 0x%x)", f->name, cur,
			   attrs);
		return -EINVAL;
	}
	return obj_call(f, DJMFS_OP_SET_ATTR, id, attrs);
}

int djmfs_set_objptr(struct djmfs_file *f, uint32_t id, uint64_t offset)
{
	struct cobj *o;
	int err = writer_ok(f, "djmfs_set_objptr");

	if (err < 0)
		return err;
	pthread_mutex_lock(&f->mu);
	o = obj_find(f, id);
	if (!o)
		err = -ENOENT;
	else if ((o->attrs & DJMFS_ATTR_DATA)
			 ? offset != (o->sub_end > o->size ? o->sub_end
							    : o->size)
			 : offset > o->size)
		err = -EINVAL;
	if (err == 0) {
		f->ptr_set = 1;
		f->ptr_id = id;
		f->ptr_off = offset;
	}
	pthread_mutex_unlock(&f->mu);
	return err;
}

int djmfs_get_objptr(struct djmfs_file *f, uint32_t *id_out,
		     uint64_t *offset_out)
{
	int err = writer_ok(f, "djmfs_get_objptr");

	if (err < 0)
		return err;
	pthread_mutex_lock(&f->mu);
	if (!f->ptr_set)
		err = -ENOENT;
	if (err == 0 && id_out)
		*id_out = f->ptr_id;
	if (err == 0 && offset_out)
		*offset_out = f->ptr_off;
	pthread_mutex_unlock(&f->mu);
	return err;
}

/* ------------------------------------------------------------------ */
/* Data API                                                             */
/* ------------------------------------------------------------------ */

/* A write op at the object pointer, which moves past it. */
static int write_op(struct djmfs_file *f, const void *buf, size_t len,
		    uint64_t deadline_ns, struct fop **out)
{
	struct fop *op;
	int err = writer_ok(f, "djmfs_write");

	if (err < 0)
		return err;
	if ((!buf && len) || len > SSIZE_MAX)
		return -EINVAL;
	op = op_new(f, ST_W_START, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->wbuf = buf;
	op->len = len;
	op->deadline_ns = deadline_ns;
	op->is_append = 1;
	pthread_mutex_lock(&f->mu);
	if (!f->ptr_set)
		err = -EINVAL;
	op->obj_id = f->ptr_id;
	op->off = f->ptr_off;
	f->ptr_off += err == 0 ? len : 0;
	if (err == 0) {
		struct cobj *o = obj_find(f, f->ptr_id);

		if (o && (o->attrs & DJMFS_ATTR_DATA))
			o->sub_end = f->ptr_off;
	}
	pthread_mutex_unlock(&f->mu);
	if (err < 0) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs_write(%s): no "
			   "object pointer set", f->name);
		op_free(op);
		return err;
	}
	*out = op;
	return 0;
}

ssize_t djmfs_write(struct djmfs_file *f, const void *buf, size_t len)
{
	struct fop *op = NULL;
	int err = write_op(f, buf, len, 0, &op);

	return err < 0 ? err : op_run(op);
}

int djmfs_write_async(struct djmfs_file *f, const void *buf, size_t len,
		      uint64_t deadline_ns, djmfs_done_fn done, void *user)
{
	struct fop *op = NULL;
	int err = done ? write_op(f, buf, len, deadline_ns, &op) : -EINVAL;

	if (err < 0)
		return err;
	op->done = done;
	op->user = user;
	op_queue(op);
	return 0;
}

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
	op = op_new(f, ST_READ, NULL, NULL);
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

	return err < 0 ? err : op_run(op);
}

ssize_t djmfs_pread_obj(struct djmfs_file *f, uint32_t id, void *buf,
			size_t len, uint64_t offset)
{
	struct fop *op = NULL;
	int err = id == ALL_OBJS ? -ENOENT
				 : read_op(f, id, buf, len, offset, 0, &op);

	return err < 0 ? err : op_run(op);
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
	op_queue(op);
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

int djmfs_file_info(struct djmfs_file *f, struct djmfs_file_info *out)
{
	if (!f || !out)
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	if (!frozen(f))
		f->snap_locked = 0;
	fill_info(f, out);
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
	o = obj_find(f, id);
	if (o) {
		n = (int)o->img_n_ext;
		for (uint32_t i = 0; i < o->img_n_ext && i < max; i++)
			out[i] = img_ext(o, i);
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* ------------------------------------------------------------------ */
/* Snapshot API                                                         */
/* ------------------------------------------------------------------ */

static struct fop *snap_op(struct djmfs_file *f, uint16_t rpc_op,
			   uint32_t timeout_ms, struct djmfs_file_info *out)
{
	struct fop *op = op_new(f, ST_SNAP, NULL, NULL);

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
	return (int)op_run(snap_op(f, DJMFS_OP_SYNC_SNAP, 0, out));
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
	op_queue(op);
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
	return (int)op_run(snap_op(f, DJMFS_OP_LOCK_SNAP, timeout_ms, out));
}

int djmfs_unlock_snap(struct djmfs_file *f)
{
	int err = reader_only(f, "djmfs_unlock_snap");

	if (err < 0)
		return err;
	return (int)op_run(op_new(f, ST_UNLOCK, NULL, NULL));
}

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
	drive_locked(f, 0);
}

void djmfs__files_mark_stale(struct djmfs_client *c)
{
	for (struct djmfs_file *f = c->files; f; f = f->next) {
		pthread_mutex_lock(&f->mu);
		if (!f->lost_err)
			f->stale = 1;
		pthread_mutex_unlock(&f->mu);
	}
}

static int is_stale(const struct djmfs_file *f)
{
	return f->stale && !f->lost_err;
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
	uint64_t pub = 0, end, au = c->au_size;

	if (o->img_n_ext == 0)
		return 0;
	for (uint32_t i = 0; i < o->img_n_ext; i++)
		pub += img_ext(o, i).len;
	e = img_ext(o, o->img_n_ext - 1);
	end = e.offset + e.len;
	return pub + (au - (end - c->data_off) % au) % au;
}

/* Reads back object @o's bytes past keep_bytes (under f->mu, quiet). */
static int salvage_obj(struct djmfs_file *f, struct cobj *o)
{
	uint64_t lo = keep_bytes(f->c, o), hi = map_bytes(o);
	struct seg *s = NULL;
	uint32_t n = 0;
	uint8_t *buf = NULL;
	int err;

	if (!(o->attrs & DJMFS_ATTR_DATA) || o->salv || hi <= lo)
		return 0;
	err = map_range(o, 0, lo, hi, &s, &n);
	if (err >= 0 && posix_memalign((void **)&buf, BLK, hi - lo))
		err = -ENOMEM;
	if (err >= 0) {
		/* Quiet and stale: nothing changes the map meanwhile. */
		pthread_mutex_unlock(&f->mu);
		err = io_wait(f->c, IOSCHED_READ, s, n, buf, lo);
		pthread_mutex_lock(&f->mu);
	}
	free(s);
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
		     : m->img ? img_ext(m->o, m->i) : m->o->ext[m->i];
		m->i++;
	}
	return 1;
}

/* Do our map (image or staged) and the server's cover the same bytes of
 * the volume in the same order, however they are cut into extents? */
static int same_map(const struct cobj *o, int img,
		    const struct djmfs__snap_obj *so)
{
	struct mapcur a = { o, img, { NULL, 0 }, 0,
			    img ? o->img_n_ext : o->n_ext, { 0, 0 } };
	struct mapcur b = { NULL, 0, so->ext, 0, so->ext.n, { 0, 0 } };

	if (so->ext_base != 0)
		return 0;
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
	if (op->rpc_op == DJMFS_OP_DELETE_OBJ) {
		*id = op->obj_id;
		return !obj_find((struct djmfs_file *)f, op->obj_id) ? 0 :
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
		ro->err = apply_snap(f, &m->u.open_resp.snap);
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
	uint64_t pos = 0;
	uint32_t i = 0;

	while (i < o->n_ext && pos + o->ext[i].len <= at)
		pos += o->ext[i++].len;
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
		err = ext_reserve(o, o->n_ext + n);
	if (err == 0) {
		map_truncate(o, o->salv_off);
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
		err = obj_apply(op, ro->id);
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
	if (apply_snap(f, &m->u.snap_resp) == 0)
		f->snap_locked = 1;
	pthread_mutex_unlock(&f->mu);
}

/* A reader, reopened on @gen (its image moved to the latest snapshot):
 * a parked UNLOCK_SNAP has nothing left to unlock; a frozen image is
 * frozen again for what is left of its timeout. */
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
	relock = frozen(f);
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
	fill_known(f, &req->u.snap_req.known);
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
	f->stale = 0;
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
		f->stale = 0;
		drop_salvage(f);
		pthread_mutex_unlock(&f->mu);
		release(f);
	}
}
