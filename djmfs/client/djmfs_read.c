/*
 * Reading a handle's image: the READ step plans device reads of the
 * image's extents (never of staged appends, invariant 3 of djmfs_file.h)
 * and the read calls of the API queue it, blocking or asynchronous.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

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
	err = djmfs__map_range(o, 1, off, off + len, &s, &n);
	for (uint32_t i = 0; err >= 0 && i < n; i++) {
		err = djmfs__add_io(op, IOSCHED_READ, s[i].phys, s[i].len,
			     buf + (s[i].logical - off));
		got += s[i].len;
	}
	free(s);
	if (err >= 0 && got != len)
		err = -EUCLEAN; /* the size is past the map */
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
	op->state = ST_DONE;
	return djmfs__io_start(op);
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

