/*
 * The one path every mutation of the metadata server takes: make room in
 * the journal if the record could not fit (a checkpoint first), apply the
 * record to the working metadata (a refusal changes nothing and is the
 * caller's answer), then append it to the journal; a record the journal
 * refuses after the metadata took it marks the server broken, refusing
 * every further change (with -EROFS when the journal's writer found the
 * host file system under the volume full).  Also here: queueing checkpoints, and giving a
 * writer's reservations back through the journal.  When an answer may go
 * out (once the record is durable) is djmfs_conn.c's business.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_srv.h"

int djmfs__srv_checkpoint(struct djmfs_server *s)
{
	uint64_t seq = djmfs__meta_seq(s->meta);
	struct djmfs__buf img;
	int err;

	djmfs__buf_init(&img);
	err = djmfs__meta_serialize(s->meta, &img);
	if (err == 0)
		err = djmfs__journal_checkpoint(s->jnl, &img, seq);
	djmfs__buf_free(&img);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__journal_checkpoint at seq %llu: %s",
			   (unsigned long long)seq, strerror(-err));
		return err;
	}
	s->last_ckpt_seq = seq;
	s->ckpts++;
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG, "checkpoint queued at seq %llu",
		   (unsigned long long)seq);
	return 0;
}

/* Most records are far smaller than a quarter of the journal; only big
 * ones are encoded ahead to learn their exact size. */
static size_t jrec_bound(const struct djmfs__jrec *r)
{
	size_t n = DJMFS_JREC_HDR + 512;
	uint32_t i;

	if (r->type == DJMFS_J_RESERVE || r->type == DJMFS_J_RELEASE)
		n += (size_t)r->u.runs.n * DJMFS_RUN_WIRE;
	if (r->type == DJMFS_J_PUBLISH)
		for (i = 0; i < r->u.publish.n_objs; i++)
			n += 32 + (size_t)r->u.publish.objs[i].ext.n *
					  DJMFS_EXT_WIRE +
			     r->u.publish.objs[i].meta_len;
	return n;
}

/*
 * The journal checkpoints only at the last record it accepted, so a
 * record the metadata already holds but the journal refuses could never
 * be made durable.  Hence room is made before applying: after every
 * append the journal is at most three-quarters full (the trigger below),
 * so only a record over a quarter of it may need a checkpoint first.
 */
static int make_room(struct djmfs_server *s, const struct djmfs__jrec *r)
{
	uint64_t jlen = s->vol->sb.journal_len;
	struct djmfs__buf b;
	size_t len;
	int err;

	if (jrec_bound(r) <= jlen / 4)
		return 0;
	djmfs__buf_init(&b);
	err = djmfs__jrec_encode(&b, s->vol->seed, r);
	len = b.len;
	djmfs__buf_free(&b);
	if (err < 0)
		return err;
	if (len > jlen)
		return -EFBIG;
	if (len > jlen / 4 && djmfs__meta_seq(s->meta) > s->last_ckpt_seq)
		return djmfs__srv_checkpoint(s);
	return 0;
}

/*
 * Memory now holds a record the volume never will: refuse every further
 * change.  When the journal's writer failed for want of room on the host
 * file system, the server is read-only until it restarts, and says so
 * (-EROFS), so a client tells it from a volume out of units.  Returns
 * what the record's caller gets.
 */
static int mark_broken(struct djmfs_server *s, const struct djmfs__jrec *r,
			int err)
{
	int wrote = djmfs__journal_failed(s->jnl);

	s->broken = wrote == -ENOSPC || wrote == -EDQUOT ? -EROFS : err;
	djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "djmfs__journal_append %s seq "
		   "%llu: %s; refusing further mutations%s",
		   djmfs__jtype_name(r->type), (unsigned long long)r->seq,
		   strerror(-err), s->broken == -EROFS ? " (read-only: host "
		   "file system full, until the server restarts)" : "");
	return s->broken;
}

int djmfs__srv_mutate(struct djmfs_server *s, struct djmfs__jrec *r)
{
	uint64_t t0;
	int err;

	if (s->broken)
		return s->broken;
	if (s->read_only)
		return s->read_only;
	if (!s->jnl)
		return -ESHUTDOWN;
	r->seq = djmfs__meta_seq(s->meta) + 1;
	r->time_ns = djmfs__real_ns();
	err = make_room(s, r);
	if (err < 0)
		return err;
	t0 = djmfs__mono_ns();
	s->cur_ino = r->ino;
	err = djmfs__meta_apply(s->meta, r);
	if (err == 0) {
		err = djmfs__journal_append(s->jnl, r);
		if (err < 0)
			err = mark_broken(s, r, err);
	}
	s->lock_busy_ns += djmfs__mono_ns() - t0;
	if (err < 0)
		return err;
	s->appended_seq = r->seq;
	s->mutations++;
	if (djmfs__journal_want_checkpoint(s->jnl))
		djmfs__srv_checkpoint(s);
	return 0;
}

struct rel_ctx {
	uint64_t ino;
	struct djmfs__buf *b;
	uint32_t n;
	uint64_t units;
};

static int rel_collect(void *arg, uint64_t ino, struct djmfs__run run)
{
	struct rel_ctx *x = arg;

	if (ino == x->ino) {
		djmfs__put_run(x->b, run.first, run.count);
		x->n++;
		x->units += run.count;
	}
	return 0;
}

int64_t djmfs__commit_release(struct djmfs_server *s, uint64_t ino)
{
	struct djmfs__buf b;
	struct rel_ctx x = { ino, &b, 0, 0 };
	struct djmfs__jrec r;
	int err;

	djmfs__buf_init(&b);
	err = djmfs__meta_walk_reserved(s->meta, rel_collect, &x);
	if (err == 0)
		err = b.err;
	if (err == 0 && x.n) {
		memset(&r, 0, sizeof(r));
		r.type = DJMFS_J_RELEASE;
		r.ino = ino;
		r.u.runs.p = b.p;
		r.u.runs.n = x.n;
		err = djmfs__srv_mutate(s, &r);
	}
	djmfs__buf_free(&b);
	return err < 0 ? err : (int64_t)x.units;
}
