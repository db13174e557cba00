/*
 * File handles of libdjmfs: opening (OPEN once the connection is up,
 * linking the handle into the client), flushing and closing, and the
 * table of FIFO steps each handle runs with.  This is the top of the
 * handle layer: it names the steps of djmfs_write.c, djmfs_read.c,
 * djmfs_snap.c and djmfs_obj.c, which the driver in djmfs_fifo.c reaches
 * only through f->steps.  The handle's design, state table and
 * invariants are in djmfs_file.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* The steps of the FIFO (djmfs_fifo.c runs them through f->steps). */
static const step_fn steps[ST_MAX] = {
	[ST_W_START] = djmfs__w_start,
	[ST_W_TAIL] = djmfs__w_tail,
	[ST_W_RESERVE] = djmfs__w_reserve,
	[ST_W_IO] = djmfs__w_io,
	[ST_W_COMMIT] = djmfs__w_commit,
	[ST_PUBLISH] = djmfs__p_publish,
	[ST_PUBLISHED] = djmfs__p_published,
	[ST_READ] = djmfs__r_read,
	[ST_R_VERIFY] = djmfs__r_verify,
	[ST_R_RESYNC] = djmfs__r_resync,
	[ST_SNAP] = djmfs__s_snap,
	[ST_UNLOCK] = djmfs__s_unlock,
	[ST_OBJ] = djmfs__o_obj,
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
	oc->err = djmfs__apply_snap(oc->f, &m->u.open_resp.snap);
	pthread_mutex_unlock(&oc->f->mu);
}

static void file_free(struct djmfs_file *f)
{
	for (uint32_t i = 0; i < f->n_objs; i++)
		djmfs__cobj_free(f->objs[i]);
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
	f->gen = f->ready_gen = gen;
	/* Otherwise stale, from ready_gen (invariant 8). */
	if (gen != c->gen && c->state == DJMFS__CONN_DEAD)
		f->lost_err = -ENOTCONN;
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
	oc.f->steps = steps;
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

/*
 * The asynchronous open of a reader: one OPEN on the connection as it is
 * now, answered on the receive thread.  Unlike djmfs_open it neither
 * waits for a connection that is down nor sends the OPEN again when the
 * connection goes: the caller learns -ENOTCONN and may open the blocking
 * way, which does both.  So a crowd of players starting at once puts all
 * its OPENs in one of the server's passes instead of one per pass per
 * waiting thread.
 */
struct open_async {
	struct open_ctx oc;
	djmfs_open_fn done;
	void *user;
};

static void open_async_reply(void *arg, int status, const struct djmfs__msg *m)
{
	struct open_async *oa = arg;
	struct djmfs_file *f = oa->oc.f;
	struct djmfs_client *c = f->c;
	int err;

	open_reply(&oa->oc, status, m);
	err = status < 0 ? status : oa->oc.err;
	if (err == 0) {
		file_link(c, f, oa->oc.gen);
		oa->done(oa->user, 0, f);
		free(oa);
		return;
	}
	if (oa->oc.granted) {
		/* Granted but unusable: given back without waiting (this
		 * is the receive thread, which the answer would need). */
		struct djmfs__msg cl = { .h.op = DJMFS_OP_CLOSE };

		cl.u.handle_req.handle = f->handle;
		djmfs__rpc_async_on(c, oa->oc.gen, &cl, NULL, NULL);
	}
	file_free(f);
	oa->done(oa->user, err, NULL);
	free(oa);
}

int djmfs_open_async(struct djmfs_client *c, const char *name,
		     unsigned flags, djmfs_open_fn done, void *user)
{
	struct djmfs__msg *req = NULL;
	struct open_async *oa = NULL;
	int err;

	if (!c || !name || !name[0] || !done ||
	    strlen(name) > DJMFS_NAME_MAX || flags != DJMFS_O_READ) {
		djmfs__log(c ? &c->log : NULL, DJMFS_LOG_ERROR,
			   "djmfs_open_async: bad name or flags 0x%x (a "
			   "reader's only)", flags);
		return -EINVAL;
	}
	oa = calloc(1, sizeof(*oa));
	req = calloc(1, sizeof(*req));
	err = -ENOMEM;
	if (!oa || !req || !(oa->oc.f = calloc(1, sizeof(*oa->oc.f))))
		goto err;
	oa->done = done;
	oa->user = user;
	oa->oc.f->c = c;
	oa->oc.f->oflags = flags;
	oa->oc.f->steps = steps;
	pthread_mutex_init(&oa->oc.f->mu, NULL);
	pthread_cond_init(&oa->oc.f->idle, NULL);
	req->h.op = DJMFS_OP_OPEN;
	req->u.open_req.flags = flags;
	strcpy(req->u.open_req.name, name);
	oa->oc.gen = djmfs__conn_gen(c);
	err = djmfs__rpc_async_on(c, oa->oc.gen, req, open_async_reply, oa);
	if (err < 0)
		goto err;
	free(req); /* encoded when sent */
	return 0;
err:
	if (oa && oa->oc.f)
		file_free(oa->oc.f);
	free(oa);
	free(req);
	return err;
}

int djmfs_flush(struct djmfs_file *f)
{
	if (!f)
		return -EINVAL;
	return (int)djmfs__op_run(djmfs__op_new(f, ST_PUBLISH, NULL, NULL));
}

/*
 * The part of a close before its CLOSE: takes @f out of the client's
 * list, so no restore starts on it; one under way ends first (its busy
 * count), and f->gen is then final.  Returns the generation the CLOSE
 * goes on and fills @req with the handle.
 */
static uint64_t close_prepare(struct djmfs_file *f, struct djmfs__msg *req)
{
	struct djmfs_client *c = f->c;
	uint64_t gen;

	pthread_mutex_lock(&c->lock);
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&f->mu);
	while (f->busy)
		pthread_cond_wait(&f->idle, &f->mu);
	gen = f->gen;
	req->u.handle_req.handle = f->handle;
	pthread_mutex_unlock(&f->mu);
	return gen;
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
	gen = close_prepare(f, &req);
	err2 = djmfs__rpc_on(c, gen, &req, NULL, NULL);
	/* A handle of a lost connection went with its session. */
	if (err2 == -ENOTCONN && !djmfs__conn_dead(c))
		err2 = 0;
	file_free(f);
	return err < 0 ? err : err2;
}

struct close_async {
	struct djmfs_file *f;
	djmfs_done_fn done;
	void *user;
};

static void close_async_reply(void *arg, int status,
			      const struct djmfs__msg *m)
{
	struct close_async *ca = arg;
	struct djmfs_client *c = ca->f->c;

	(void)m;
	/* A handle of a lost connection went with its session. */
	if (status == -ENOTCONN && !djmfs__conn_dead(c))
		status = 0;
	file_free(ca->f);
	if (ca->done)
		ca->done(ca->user, status);
	free(ca);
}

int djmfs_close_async(struct djmfs_file *f, djmfs_done_fn done, void *user)
{
	struct djmfs__msg req = { .h.op = DJMFS_OP_CLOSE };
	struct close_async *ca;
	struct djmfs_client *c;
	uint64_t gen;
	int err;

	if (!f)
		return 0;
	if (f->oflags & DJMFS_O_WRITE)
		return -EINVAL; /* its close publishes: djmfs_close */
	c = f->c;
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return djmfs_close(f);
	/* A reader's flush publishes nothing: it only waits for what is
	 * still queued on the handle. */
	djmfs_flush(f);
	gen = close_prepare(f, &req);
	ca->f = f;
	ca->done = done;
	ca->user = user;
	err = djmfs__rpc_async_on(c, gen, &req, close_async_reply, ca);
	if (err == 0)
		return 0;
	free(ca);
	file_free(f);
	return err == -ENOTCONN && !djmfs__conn_dead(c) ? 0 : err;
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
