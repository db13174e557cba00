/*
 * The protocol operations of the metadata server, one handler each behind
 * a static table, and the one path every mutation takes: apply the record
 * to the working metadata (a refusal is answered at once), append it to
 * the journal, and hold the answer back until the journal says the record
 * is durable.  Reads (SYNC_SNAP, LOCK_SNAP, opening for read, STAT, LIST,
 * DF, STATS) look only at the durable root, so a reader never sees what
 * could still be lost, and they are answered at once.  The mutation
 * path itself is djmfs_commit.c's; answers go out through djmfs_conn.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "djmfs_srv.h"

enum { OPF_SESSION = 0x1, OPF_MUTATION = 0x2 };

struct reply {
	struct djmfs__msg m;
	uint64_t wait_seq; /* answer once this seq is durable (0: now) */
	/* Bytes the answer's views point into: the server's buffer, emptied
	 * for each frame and kept, so answers do not allocate. */
	struct djmfs__buf scratch;
};

typedef int (*op_fn)(struct djmfs_server *s, struct djmfs__conn *c,
		     const struct djmfs__msg *req, struct reply *rep);

struct op_desc {
	const char *name;
	op_fn fn;
	unsigned flags;
};

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

/* First extent index to send: the client's count, less one (that last
 * extent may have grown since), and never below the map's first (a trim
 * dropped those; indices are absolute). */
static uint32_t ext_base(const struct djmfs__known *k, uint32_t id,
			 uint32_t first, uint32_t total)
{
	uint32_t i, b = 0;

	for (i = 0; k && i < k->n; i++) {
		if (k->o[i].id != id)
			continue;
		b = k->o[i].n_ext < total ? k->o[i].n_ext : total;
		b = b ? b - 1 : 0;
		break;
	}
	return b > first ? b : first;
}

/* First sum to send: the client's count (complete cblocks' sums never
 * change once published), never below the first one kept. */
static uint32_t ck_base(const struct djmfs__known *k, uint32_t id,
			uint32_t first, uint32_t total)
{
	uint32_t b = 0;

	for (uint32_t i = 0; k && i < k->n; i++) {
		if (k->o[i].id == id) {
			b = k->o[i].n_ck < total ? k->o[i].n_ck : total;
			break;
		}
	}
	return b > first ? b : first;
}

static void snap_head(struct djmfs__snap *sn, const struct djmfs__file *f,
		      uint32_t flags)
{
	sn->ino = f->ino;
	memcpy(sn->name, f->name, sizeof(sn->name));
	sn->version = f->version;
	sn->flags = f->flags | flags;
	sn->ctime_ns = f->ctime_ns;
	sn->mtime_ns = f->mtime_ns;
	sn->unchanged = 0;
	sn->n_objs = 0;
}

/* Fills @sn from @f: extents from each object's base (per @k; NULL: all)
 * and META bytes, or for @stat neither.  Views point into rep->scratch
 * and @f, which must outlive the encoding of the answer. */
static int snap_fill(struct reply *rep, struct djmfs__snap *sn,
		     const struct djmfs__file *f, const struct djmfs__known *k,
		     int stat, uint32_t flags)
{
	size_t at[DJMFS_MAX_OBJS], ck_at[DJMFS_MAX_OBJS];
	uint32_t i, j;

	snap_head(sn, f, flags);
	sn->n_objs = f->n_objs;
	for (i = 0; i < f->n_objs; i++) {
		const struct djmfs__obj *o = f->objs[i];
		struct djmfs__snap_obj *so = &sn->objs[i];

		so->id = o->id;
		so->attrs = o->attrs;
		memcpy(so->name, o->name, sizeof(so->name));
		so->size = o->size;
		so->start = o->start;
		so->ext_first = o->ext_first;
		so->first_at = djmfs__obj_first_at(o);
		so->ext_total = o->n_ext;
		so->ext_base = stat ? o->n_ext
				    : ext_base(k, o->id, o->ext_first, o->n_ext);
		so->ext.n = o->n_ext - so->ext_base;
		so->meta = NULL;
		so->meta_len = 0;
		at[i] = rep->scratch.len;
		for (j = so->ext_base; j < o->n_ext; j++) {
			struct djmfs_extent e = djmfs__obj_extent(o, j);

			djmfs__put_ext(&rep->scratch, e.offset, e.len);
		}
		so->ck_flags = o->ck_flags;
		so->ck_base = stat ? o->n_ck
				   : ck_base(k, o->id, o->ck_first, o->n_ck);
		so->ck.n = o->n_ck - so->ck_base;
		so->last_ck = o->last_ck;
		ck_at[i] = rep->scratch.len;
		for (j = so->ck_base; j < o->n_ck; j++)
			djmfs__put_u32(&rep->scratch, djmfs__obj_ck(o, j));
		if (!stat && (o->attrs & DJMFS_ATTR_META)) {
			so->meta = o->meta;
			so->meta_len = o->meta_len;
		}
	}
	if (rep->scratch.err)
		return rep->scratch.err;
	/* Only now: the scratch buffer may have moved while growing. */
	for (i = 0; i < f->n_objs; i++) {
		sn->objs[i].ext.p = rep->scratch.p ? rep->scratch.p + at[i] :
						     NULL;
		sn->objs[i].ck.p = rep->scratch.p ? rep->scratch.p + ck_at[i] :
						    NULL;
	}
	return 0;
}

static uint32_t lock_flags(const struct djmfs_server *s, uint64_t ino)
{
	return djmfs__lock_owner(s, ino) ? DJMFS_FILE_WRITE_LOCKED : 0;
}

/* The durable version of the file @h has open (a reader's view). */
static const struct djmfs__file *durable_file(const struct djmfs_server *s,
					      const struct djmfs__handle *h)
{
	const struct djmfs__file *f =
		djmfs__root_find(djmfs__meta_durable(s->meta), h->name);

	return f && f->ino == h->ino ? f : NULL;
}

static const struct djmfs__file *working_file(const struct djmfs_server *s,
					      const struct djmfs__handle *h)
{
	const struct djmfs__file *f =
		djmfs__root_find(djmfs__meta_working(s->meta), h->name);

	return f && f->ino == h->ino ? f : NULL;
}

/* ------------------------------------------------------------------ */
/* Session and files                                                    */
/* ------------------------------------------------------------------ */

static int op_hello(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__sb *sb = &s->vol->sb;
	struct djmfs__session *ss;
	int err;

	if (c->sess)
		return -EISCONN;
	if (req->u.hello_req.proto != DJMFS_PROTO_VERSION) {
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "%s: HELLO with protocol %u, we speak %u", c->peer,
			   req->u.hello_req.proto, DJMFS_PROTO_VERSION);
		c->closing = 1;
		return -EPROTO;
	}
	err = djmfs__sess_new(s, c, req->u.hello_req.name,
			      djmfs__lease_clamp(s, req->u.hello_req.lease_ms),
			      &ss);
	if (err < 0)
		return err;
	rep->m.u.hello_resp.session = ss->id;
	rep->m.u.hello_resp.lease_ms = ss->lease_ms;
	rep->m.u.hello_resp.au_size = sb->au_size;
	rep->m.u.hello_resp.data_off = sb->data_off;
	rep->m.u.hello_resp.n_aus = sb->n_aus;
	memcpy(rep->m.u.hello_resp.uuid, sb->uuid, 16);
	snprintf(rep->m.u.hello_resp.volume,
		 sizeof(rep->m.u.hello_resp.volume), "%s", s->volume_abs);
	djmfs__log(&s->o.log, DJMFS_LOG_INFO,
		   "session %llu (%s) opened from %s, lease %u ms",
		   (unsigned long long)ss->id, ss->name, c->peer, ss->lease_ms);
	return 0;
}

static int op_ping(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep)
{
	(void)s, (void)c, (void)req;
	rep->m.u.ping_resp.now_ns = djmfs__real_ns();
	return 0;
}

/* A quarantined file stays shut; one failing its check is quarantined
 * now (journaled).  @f may be freed by that: nothing reads it after. */
static int check_file(struct djmfs_server *s, const struct djmfs__file *f)
{
	const struct djmfs__file *w =
		djmfs__root_find(djmfs__meta_working(s->meta), f->name);
	struct djmfs__jrec r;
	int err;

	if ((f->flags | (w ? w->flags : 0)) & DJMFS_FILE_QUARANTINED)
		return -EUCLEAN;
	memset(&r, 0, sizeof(r));
	if (djmfs__file_check(f, s->vol->sb.data_off, s->vol->data_end,
			      r.u.quarantine.why,
			      sizeof(r.u.quarantine.why)) == 0)
		return 0;
	djmfs__log(&s->o.log, DJMFS_LOG_WARN,
		   "file %s (ino %llu) failed its consistency check: %s; "
		   "quarantined",
		   f->name, (unsigned long long)f->ino, r.u.quarantine.why);
	r.type = DJMFS_J_QUARANTINE;
	r.ino = f->ino;
	err = djmfs__srv_mutate(s, &r);
	if (err < 0)
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "quarantining ino %llu: %s",
			   (unsigned long long)r.ino, strerror(-err));
	return -EUCLEAN;
}

static int open_read(struct djmfs_server *s, struct djmfs__conn *c,
		     const char *name, struct reply *rep)
{
	const struct djmfs__file *f =
		djmfs__root_find(djmfs__meta_durable(s->meta), name);
	struct djmfs__handle *h;
	int err;

	if (!f)
		return -ENOENT;
	err = check_file(s, f);
	if (err < 0)
		return err;
	err = djmfs__handle_new(s, c->sess, f->ino, name, DJMFS_H_READ, &h);
	if (err < 0)
		return err;
	rep->m.u.open_resp.handle = h->id;
	err = snap_fill(rep, &rep->m.u.open_resp.snap, f, NULL, 0,
			lock_flags(s, f->ino));
	if (err < 0)
		djmfs__handle_close(s, h);
	return err;
}

/* A writer sees the working state (its own changes are not durable yet)
 * and is answered once that state is durable. */
static int open_write(struct djmfs_server *s, struct djmfs__conn *c,
		      const char *name, unsigned fl, struct reply *rep)
{
	const struct djmfs__file *f =
		djmfs__root_find(djmfs__meta_working(s->meta), name);
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	int err;

	if (f) {
		if (fl & DJMFS_O_EXCL)
			return -EEXIST;
		if (djmfs__lock_owner(s, f->ino))
			return -EBUSY;
		err = check_file(s, f);
		if (err < 0)
			return err;
	} else {
		if (!(fl & DJMFS_O_CREATE))
			return -ENOENT;
		memset(&r, 0, sizeof(r));
		r.type = DJMFS_J_FILE_CREATE;
		r.ino = djmfs__meta_next_ino(s->meta);
		snprintf(r.u.create.name, sizeof(r.u.create.name), "%s", name);
		err = djmfs__srv_mutate(s, &r);
		if (err < 0)
			return err;
		f = djmfs__root_find(djmfs__meta_working(s->meta), name);
		if (!f)
			return -EIO;
	}
	err = djmfs__handle_new(s, c->sess, f->ino, name,
				DJMFS_H_READ | DJMFS_H_WRITE, &h);
	if (err < 0)
		return err;
	rep->m.u.open_resp.handle = h->id;
	err = snap_fill(rep, &rep->m.u.open_resp.snap, f, NULL, 0,
			DJMFS_FILE_WRITE_LOCKED);
	if (err < 0) {
		djmfs__handle_close(s, h);
		return err;
	}
	rep->wait_seq = djmfs__meta_seq(s->meta);
	return 0;
}

static int op_open(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep)
{
	const unsigned all = DJMFS_O_READ | DJMFS_O_WRITE | DJMFS_O_CREATE |
			     DJMFS_O_EXCL;
	unsigned fl = req->u.open_req.flags;

	if ((fl & ~all) || !(fl & (DJMFS_O_READ | DJMFS_O_WRITE)) ||
	    ((fl & DJMFS_O_CREATE) && !(fl & DJMFS_O_WRITE)) ||
	    ((fl & DJMFS_O_EXCL) && !(fl & DJMFS_O_CREATE)))
		return -EINVAL;
	/* A writer's handle is the start of writing: refused up front. */
	if ((fl & DJMFS_O_WRITE) && s->read_only)
		return s->read_only;
	if (fl & DJMFS_O_WRITE)
		return open_write(s, c, req->u.open_req.name, fl, rep);
	return open_read(s, c, req->u.open_req.name, rep);
}

static int op_close(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs__handle *h =
		djmfs__handle_get(c->sess, req->u.handle_req.handle);
	int writer;
	int64_t units;

	if (!h)
		return -EBADF;
	writer = h->mode & DJMFS_H_WRITE;
	units = djmfs__handle_close(s, h);
	if (units < 0)
		return (int)units;
	/* A writer's close is answered after all it changed is durable. */
	if (writer)
		rep->wait_seq = djmfs__meta_seq(s->meta);
	return 0;
}

static int get_writer(const struct djmfs__conn *c, uint32_t id,
		      struct djmfs__handle **out)
{
	struct djmfs__handle *h = djmfs__handle_get(c->sess, id);

	if (!h || !(h->mode & DJMFS_H_WRITE))
		return -EBADF;
	*out = h;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Objects                                                              */
/* ------------------------------------------------------------------ */

static int attrs_ok(uint32_t a)
{
	uint32_t kind = a & (DJMFS_ATTR_META | DJMFS_ATTR_DATA);

	if (a & ~(DJMFS_ATTR_META | DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC))
		return 0;
	if (kind != DJMFS_ATTR_META && kind != DJMFS_ATTR_DATA)
		return 0;
	return !(a & DJMFS_ATTR_SYNC) || kind == DJMFS_ATTR_DATA;
}

/* Answers obj_id and the file's version once @r is durable. */
static int obj_mutate(struct djmfs_server *s, const struct djmfs__handle *h,
		      struct djmfs__jrec *r, struct reply *rep)
{
	const struct djmfs__file *f;
	int err = djmfs__srv_mutate(s, r);

	if (err < 0)
		return err;
	f = working_file(s, h);
	rep->m.u.obj_resp.obj_id = r->u.obj.obj_id;
	rep->m.u.obj_resp.version = f ? f->version : 0;
	rep->wait_seq = r->seq;
	return 0;
}

static int op_create_obj(struct djmfs_server *s, struct djmfs__conn *c,
			 const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f;
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	uint32_t i;
	int err = get_writer(c, req->u.create_obj_req.handle, &h);

	if (err < 0)
		return err;
	if (!attrs_ok(req->u.create_obj_req.attrs))
		return -EINVAL;
	f = working_file(s, h);
	if (!f)
		return -ENOENT;
	for (i = 0; i < f->n_objs; i++)
		if (!strcmp(f->objs[i]->name, req->u.create_obj_req.name))
			return -EEXIST;
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_OBJ_CREATE;
	r.ino = h->ino;
	r.u.obj.obj_id = f->next_obj_id;
	r.u.obj.attrs = req->u.create_obj_req.attrs;
	memcpy(r.u.obj.name, req->u.create_obj_req.name, sizeof(r.u.obj.name));
	return obj_mutate(s, h, &r, rep);
}

static int op_delete_obj(struct djmfs_server *s, struct djmfs__conn *c,
			 const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f;
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	int err = get_writer(c, req->u.obj_req.handle, &h);

	if (err < 0)
		return err;
	f = working_file(s, h);
	if (!f || !djmfs__file_obj(f, req->u.obj_req.obj_id))
		return -ENOENT;
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_OBJ_DELETE;
	r.ino = h->ino;
	r.u.obj.obj_id = req->u.obj_req.obj_id;
	return obj_mutate(s, h, &r, rep);
}

static int op_set_attr(struct djmfs_server *s, struct djmfs__conn *c,
		       const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f;
	const struct djmfs__obj *o;
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	uint32_t a = req->u.obj_req.attrs;
	int err = get_writer(c, req->u.obj_req.handle, &h);

	if (err < 0)
		return err;
	f = working_file(s, h);
	o = f ? djmfs__file_obj(f, req->u.obj_req.obj_id) : NULL;
	if (!o)
		return -ENOENT;
	/* Only SYNCHRONOUS may change. */
	if (((a ^ o->attrs) & ~DJMFS_ATTR_SYNC) || !attrs_ok(a))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_OBJ_SETATTR;
	r.ino = h->ino;
	r.u.obj.obj_id = o->id;
	r.u.obj.attrs = a;
	return obj_mutate(s, h, &r, rep);
}

/* ------------------------------------------------------------------ */
/* Space and publishing                                                 */
/* ------------------------------------------------------------------ */

static int op_reserve(struct djmfs_server *s, struct djmfs__conn *c,
		      const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs__run runs[DJMFS_SRV_RESERVE_RUNS];
	uint32_t want = req->u.reserve_req.n_aus;
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	int i, n, err = get_writer(c, req->u.reserve_req.handle, &h);

	if (err < 0)
		return err;
	if (want == 0)
		return -EINVAL;
	if (want > s->o.reserve_max_aus)
		want = s->o.reserve_max_aus;
	n = djmfs__alloc_take(s->alloc, want, runs, DJMFS_SRV_RESERVE_RUNS);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++)
		djmfs__put_run(&rep->scratch, runs[i].first, runs[i].count);
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_RESERVE;
	r.ino = h->ino;
	r.u.runs.p = rep->scratch.p;
	r.u.runs.n = (uint32_t)n;
	err = rep->scratch.err ? rep->scratch.err : djmfs__srv_mutate(s, &r);
	if (err < 0) {
		/* Refused: nobody holds them.  (Broken: the metadata
		 * may, so they stay out of reach.) */
		for (i = 0; i < n && !s->broken; i++)
			djmfs__alloc_put(s->alloc, runs[i].first,
					 runs[i].count);
		return err;
	}
	rep->m.u.reserve_resp = r.u.runs;
	rep->wait_seq = r.seq;
	return 0;
}

static int op_publish(struct djmfs_server *s, struct djmfs__conn *c,
		      const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	int err = get_writer(c, req->u.publish_req.handle, &h);

	if (err < 0)
		return err;
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_PUBLISH;
	r.ino = h->ino;
	/* Same views: the record points into the request frame. */
	r.u.publish = req->u.publish_req.pub;
	err = djmfs__srv_mutate(s, &r);
	if (err < 0)
		return err;
	/* meta_apply accepted it, so the new version is base + 1: no
	 * second walk down the tree. */
	rep->m.u.publish_resp.version = r.u.publish.base_version + 1;
	rep->wait_seq = r.seq;
	return 0;
}

/* A start at or below the object's current one changes nothing and is
 * answered at once with the current start; a higher one is a new
 * version, answered once its record is durable. */
static int op_trim(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f;
	const struct djmfs__obj *o;
	struct djmfs__handle *h;
	struct djmfs__jrec r;
	int err = get_writer(c, req->u.trim_req.handle, &h);

	if (err < 0)
		return err;
	f = working_file(s, h);
	o = f ? djmfs__file_obj(f, req->u.trim_req.obj_id) : NULL;
	if (!o)
		return -ENOENT;
	if (!(o->attrs & DJMFS_ATTR_DATA) || req->u.trim_req.start > o->size)
		return -EINVAL;
	if (req->u.trim_req.start <= o->start) {
		rep->m.u.trim_resp.start = o->start;
		rep->m.u.trim_resp.version = f->version;
		/* The state it answers from may not be durable yet. */
		rep->wait_seq = djmfs__meta_seq(s->meta);
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_TRIM;
	r.ino = h->ino;
	r.u.trim.obj_id = o->id;
	r.u.trim.start = req->u.trim_req.start;
	err = djmfs__srv_mutate(s, &r);
	if (err < 0)
		return err;
	f = working_file(s, h);
	rep->m.u.trim_resp.start = r.u.trim.start;
	rep->m.u.trim_resp.version = f ? f->version : 0;
	rep->wait_seq = r.seq;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                            */
/* ------------------------------------------------------------------ */

static int snap_op(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep, int lock)
{
	const struct djmfs__known *k = &req->u.snap_req.known;
	struct djmfs__handle *h =
		djmfs__handle_get(c->sess, req->u.snap_req.handle);
	const struct djmfs__file *f;
	uint64_t now = 0, ms;
	int changing;
	uint32_t fl;

	if (!h)
		return -EBADF;
	/* The clock only when a hold may end or start. */
	if (h->hold || lock)
		now = djmfs__mono_ns();
	if (h->hold && h->hold_until_ns <= now)
		djmfs__hold_drop(s, h);
	changing = lock && !h->hold;
	f = !lock && h->hold ? h->hold : durable_file(s, h);
	if (!f)
		return -ENOENT;
	if (lock) {
		ms = req->u.snap_req.timeout_ms;
		if (ms == 0 || ms > s->o.snap_lock_max_ms)
			ms = s->o.snap_lock_max_ms;
		djmfs__hold_set(s, h, f, now + ms * 1000000u);
	}
	fl = lock_flags(s, h->ino) | (h->hold ? DJMFS_FILE_SNAP_LOCKED : 0);
	if (k->version == f->version && !changing) {
		snap_head(&rep->m.u.snap_resp, f, fl);
		rep->m.u.snap_resp.unchanged = 1;
		return 0;
	}
	return snap_fill(rep, &rep->m.u.snap_resp, f, k, 0, fl);
}

static int op_sync_snap(struct djmfs_server *s, struct djmfs__conn *c,
			const struct djmfs__msg *req, struct reply *rep)
{
	return snap_op(s, c, req, rep, 0);
}

static int op_lock_snap(struct djmfs_server *s, struct djmfs__conn *c,
			const struct djmfs__msg *req, struct reply *rep)
{
	return snap_op(s, c, req, rep, 1);
}

static int op_unlock_snap(struct djmfs_server *s, struct djmfs__conn *c,
			  const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs__handle *h =
		djmfs__handle_get(c->sess, req->u.handle_req.handle);

	(void)rep;
	if (!h)
		return -EBADF;
	djmfs__hold_drop(s, h);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Namespace                                                            */
/* ------------------------------------------------------------------ */

static int op_unlink(struct djmfs_server *s, struct djmfs__conn *c,
		     const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f = djmfs__root_find(
		djmfs__meta_working(s->meta), req->u.name_req.name);
	struct djmfs__jrec r;
	int err;

	(void)c;
	if (!f)
		return -ENOENT;
	/* A writer, even a dead one inside its lease, may still be writing
	 * to the units this would free. */
	if (djmfs__lock_owner(s, f->ino))
		return -EBUSY;
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_FILE_UNLINK;
	r.ino = f->ino;
	err = djmfs__srv_mutate(s, &r);
	if (err < 0)
		return err;
	rep->wait_seq = r.seq;
	return 0;
}

static int op_stat(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep)
{
	const struct djmfs__file *f = djmfs__root_find(
		djmfs__meta_durable(s->meta), req->u.name_req.name);

	(void)c;
	if (!f)
		return -ENOENT;
	return snap_fill(rep, &rep->m.u.snap_resp, f, NULL, 1,
			 lock_flags(s, f->ino));
}

struct list_ctx {
	const struct djmfs_server *s;
	const char *prefix;
	size_t plen;
	uint32_t max, n;
	uint8_t more;
	struct djmfs__buf *b;
};

static int list_one(void *arg, const struct djmfs__file *f)
{
	struct list_ctx *x = arg;
	struct djmfs__list_entry e;
	uint32_t i;

	if (strncmp(f->name, x->prefix, x->plen) != 0)
		/* Sorted: before the prefix skip on, past it stop. */
		return strcmp(f->name, x->prefix) < 0 ? 0 : 1;
	if (x->n == x->max) {
		x->more = 1;
		return 1;
	}
	memcpy(e.name, f->name, sizeof(e.name));
	e.ino = f->ino;
	e.size = 0;
	for (i = 0; i < f->n_objs; i++)
		e.size += f->objs[i]->size;
	e.version = f->version;
	e.flags = f->flags | lock_flags(x->s, f->ino);
	e.mtime_ns = f->mtime_ns;
	djmfs__put_list_entry(x->b, &e);
	x->n++;
	return 0;
}

static int op_list(struct djmfs_server *s, struct djmfs__conn *c,
		   const struct djmfs__msg *req, struct reply *rep)
{
	char start[DJMFS_NAME_MAX + 1];
	struct list_ctx x = { s, req->u.list_req.prefix, 0,
			      req->u.list_req.max, 0, 0, &rep->scratch };
	int err;

	(void)c;
	x.plen = strlen(x.prefix);
	if (x.max == 0 || x.max > DJMFS_SRV_LIST_MAX)
		x.max = DJMFS_SRV_LIST_MAX;
	/* Names with the prefix all sort after the prefix less its last
	 * byte: start there unless the client is already further. */
	snprintf(start, sizeof(start), "%s", x.prefix);
	if (x.plen)
		start[x.plen - 1] = '\0';
	if (strcmp(req->u.list_req.after, start) > 0)
		memcpy(start, req->u.list_req.after, sizeof(start));
	err = djmfs__root_walk(djmfs__meta_durable(s->meta), start, list_one,
			       &x);
	if (err < 0)
		return err;
	if (rep->scratch.err)
		return rep->scratch.err;
	rep->m.u.list_resp.n = x.n;
	rep->m.u.list_resp.more = x.more;
	rep->m.u.list_resp.p = rep->scratch.p;
	rep->m.u.list_resp.plen = rep->scratch.len;
	return 0;
}

static int count_quarantined(void *arg, const struct djmfs__file *f)
{
	uint64_t *n = arg;

	*n += !!(f->flags & DJMFS_FILE_QUARANTINED);
	return 0;
}

static int op_df(struct djmfs_server *s, struct djmfs__conn *c,
		 const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs_df *d = &rep->m.u.df_resp;
	struct djmfs__root *root = djmfs__meta_durable(s->meta);
	struct djmfs__alloc_info ai;

	(void)c, (void)req;
	djmfs__alloc_get(s->alloc, &ai);
	d->au_size = s->vol->sb.au_size;
	d->total_aus = ai.total;
	d->free_aus = ai.free;
	d->reserved_aus = djmfs__meta_reserved_aus(s->meta);
	d->deferred_aus = ai.deferred;
	d->files = djmfs__root_nfiles(root);
	d->quarantined = 0;
	djmfs__root_walk(root, NULL, count_quarantined, &d->quarantined);
	return 0;
}

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

static int op_stats(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *req, struct reply *rep)
{
	struct djmfs_server_stats *st = &rep->m.u.stats_resp;
	struct djmfs__journal_stats js;
	struct djmfs__alloc_info ai;
	struct rusage ru;

	(void)c, (void)req;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		memset(&ru, 0, sizeof(ru));
	if (s->jnl)
		djmfs__journal_get_stats(s->jnl, &js);
	else
		memset(&js, 0, sizeof(js)); /* read-only: no journal */
	djmfs__alloc_get(s->alloc, &ai);
	st->uptime_ns = djmfs__mono_ns() - s->start_ns;
	st->cpu_user_ns = tv_ns(ru.ru_utime);
	st->cpu_sys_ns = tv_ns(ru.ru_stime);
	st->ops = s->ops;
	st->mutations = s->mutations;
	st->lock_busy_ns = s->lock_busy_ns;
	st->journal_records = js.records;
	st->journal_batches = js.batches;
	st->journal_bytes = js.bytes;
	st->checkpoints = js.checkpoints;
	st->sessions = s->n_sessions;
	st->alloc_stalls = ai.stalls;
	st->meta_repairs_journal = s->boot.repaired_jrec;
	st->meta_repairs_checkpoint = s->boot.repaired_ckpt;
	st->meta_repairs_superblock = s->boot.repaired_sb;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                             */
/* ------------------------------------------------------------------ */

static const struct op_desc op_table[DJMFS_OP_MAX] = {
	[DJMFS_OP_HELLO] = { "HELLO", op_hello, 0 },
	[DJMFS_OP_PING] = { "PING", op_ping, OPF_SESSION },
	[DJMFS_OP_OPEN] = { "OPEN", op_open, OPF_SESSION },
	[DJMFS_OP_CLOSE] = { "CLOSE", op_close, OPF_SESSION },
	[DJMFS_OP_CREATE_OBJ] = { "CREATE_OBJ", op_create_obj,
				  OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_DELETE_OBJ] = { "DELETE_OBJ", op_delete_obj,
				  OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_SET_ATTR] = { "SET_ATTR", op_set_attr,
				OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_RESERVE] = { "RESERVE", op_reserve,
			       OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_PUBLISH] = { "PUBLISH", op_publish,
			       OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_SYNC_SNAP] = { "SYNC_SNAP", op_sync_snap, OPF_SESSION },
	[DJMFS_OP_LOCK_SNAP] = { "LOCK_SNAP", op_lock_snap, OPF_SESSION },
	[DJMFS_OP_UNLOCK_SNAP] = { "UNLOCK_SNAP", op_unlock_snap,
				   OPF_SESSION },
	[DJMFS_OP_UNLINK] = { "UNLINK", op_unlink,
			      OPF_SESSION | OPF_MUTATION },
	[DJMFS_OP_LIST] = { "LIST", op_list, OPF_SESSION },
	[DJMFS_OP_STAT] = { "STAT", op_stat, OPF_SESSION },
	[DJMFS_OP_DF] = { "DF", op_df, OPF_SESSION },
	[DJMFS_OP_STATS] = { "STATS", op_stats, OPF_SESSION },
	[DJMFS_OP_TRIM] = { "TRIM", op_trim, OPF_SESSION | OPF_MUTATION },
};

/* Runs the handler of @req under the table's rules; returns its status. */
static int run_op(struct djmfs_server *s, struct djmfs__conn *c,
		  const struct op_desc *d, const struct djmfs__msg *req,
		  struct reply *rep)
{
	if ((d->flags & OPF_SESSION) && !c->sess) {
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "%s: %s before HELLO; closing", c->peer, d->name);
		c->closing = 1;
		return -EPROTO;
	}
	/* After a journal failure the server stays up read-only; one that
	 * booted read-only (host full) refuses the same way. */
	if ((d->flags & OPF_MUTATION) && s->broken)
		return s->broken;
	if ((d->flags & OPF_MUTATION) && s->read_only)
		return s->read_only;
	return d->fn(s, c, req, rep);
}

int djmfs__ops_dispatch(struct djmfs_server *s, struct djmfs__conn *c,
			const uint8_t *frame, size_t n)
{
	const struct op_desc *d;
	struct djmfs__msg req;
	struct reply rep;
	int err, rc;

	err = djmfs__msg_decode(frame, n, &req);
	if (err == 0 && req.h.kind != DJMFS_REQ)
		err = -EBADMSG;
	d = err == 0 ? &op_table[req.h.op] : NULL;
	if (d && !d->fn)
		err = -EBADMSG;
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "%s: undecodable %s frame: %s", c->peer,
			   n >= 10 ? djmfs__op_name(frame[8] | frame[9] << 8)
				   : "?",
			   strerror(-err));
		return err;
	}
	s->ops++;
	/* The time of the read that brought the frame: lease precision is a
	 * tick, so one clock call per read serves all its frames. */
	if (c->sess)
		djmfs__sess_touch(c->sess, s->rx_ns ? s->rx_ns :
						      djmfs__mono_ns());
	memset(&rep.m, 0, sizeof(rep.m));
	rep.m.h.op = req.h.op;
	rep.m.h.kind = DJMFS_RESP;
	rep.m.h.id = req.h.id;
	rep.wait_seq = 0;
	rep.scratch = s->scratch;
	djmfs__buf_reset(&rep.scratch);
	rc = run_op(s, c, d, &req, &rep);
	if (rc < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_DEBUG, "%s: %s: %s", c->peer,
			   d->name, strerror(-rc));
		rep.wait_seq = 0;
	}
	rep.m.status = rc;
	err = djmfs__srv_send(s, c, &rep.m, rep.wait_seq);
	if (err < 0 && rc == 0) {
		/* An answer that cannot be encoded (too big) is an error
		 * answer instead. */
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "%s: encoding the %s answer: %s", c->peer,
			   d->name, strerror(-err));
		rep.m.status = err;
		err = djmfs__srv_send(s, c, &rep.m, rep.wait_seq);
	}
	/* Kept for the next frame; a rare huge one is not. */
	if (rep.scratch.cap > (1u << 20))
		djmfs__buf_free(&rep.scratch);
	s->scratch = rep.scratch;
	return err;
}
