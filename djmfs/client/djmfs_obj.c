/*
 * Object calls of a file handle: CREATE_OBJ, DELETE_OBJ, SET_ATTR and
 * TRIM as the OBJ step of the FIFO (the reply applied to the staged
 * state), and the object API (create, delete, trim, find, attributes,
 * the object pointer that appends follow).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_file.h"

/* ------------------------------------------------------------------ */
/* Object calls                                                         */
/* ------------------------------------------------------------------ */

/* Under f->mu: a TRIM's start on @o (image and staged state alike).
 * The map keeps its extents and sums: reads below the start are refused
 * (invariant 11), and the next snapshot from the server drops them. */
static void trim_apply(struct cobj *o, uint64_t start)
{
	if (start > o->start)
		o->start = start;
}

/* Under f->mu: applies a CREATE_OBJ / DELETE_OBJ / SET_ATTR / TRIM
 * reply (for TRIM, op->off is the start the server answered). */
int djmfs__obj_apply(struct fop *op, uint32_t id)
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
		if (op->rpc_op == DJMFS_OP_TRIM) {
			trim_apply(f->objs[i], op->off);
			if (op->start_out)
				*op->start_out = f->objs[i]->start;
			return 0;
		}
		djmfs__cobj_free(f->objs[i]);
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
	if (status == 0 && op->rpc_op == DJMFS_OP_TRIM) {
		f->version = m->u.trim_resp.version;
		op->off = m->u.trim_resp.start;
		status = djmfs__obj_apply(op, op->obj_id);
	} else if (status == 0) {
		f->version = m->u.obj_resp.version;
		status = djmfs__obj_apply(op, m->u.obj_resp.obj_id);
	}
	pthread_mutex_unlock(&f->mu);
	djmfs__op_wake(op, status);
}

enum step_ret djmfs__o_obj(struct fop *op)
{
	struct djmfs__msg req = { .h.op = op->rpc_op };

	op->state = ST_DONE;
	if (op->rpc_op == DJMFS_OP_CREATE_OBJ) {
		req.u.create_obj_req.handle = op->f->handle;
		req.u.create_obj_req.attrs = op->attrs;
		memcpy(req.u.create_obj_req.name, op->name, sizeof(op->name));
	} else if (op->rpc_op == DJMFS_OP_TRIM) {
		req.u.trim_req.handle = op->f->handle;
		req.u.trim_req.obj_id = op->obj_id;
		req.u.trim_req.start = op->off;
	} else {
		req.u.obj_req.handle = op->f->handle;
		req.u.obj_req.obj_id = op->obj_id;
		req.u.obj_req.attrs = op->attrs;
	}
	return djmfs__op_rpc(op, &req, obj_reply, ST_OBJ);
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

int djmfs__writer_ok(struct djmfs_file *f, const char *call)
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
	int err = djmfs__writer_ok(f, "djmfs_create_obj");

	if (err < 0)
		return err;
	if (!name || !name[0] || strlen(name) > DJMFS_OBJ_NAME_MAX ||
	    !attrs_ok(attrs)) {
		djmfs__log(&f->c->log, DJMFS_LOG_ERROR, "djmfs_create_obj(%s):"
			   " bad object name or attributes 0x%x", f->name,
			   attrs);
		return -EINVAL;
	}
	op = djmfs__op_new(f, ST_OBJ, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->rpc_op = DJMFS_OP_CREATE_OBJ;
	op->attrs = attrs;
	strcpy(op->name, name);
	op->id_out = id_out;
	return (int)djmfs__op_run(op);
}

static int obj_call(struct djmfs_file *f, uint16_t rpc_op, uint32_t id,
		    unsigned attrs)
{
	struct fop *op = djmfs__op_new(f, ST_OBJ, NULL, NULL);

	if (!op)
		return -ENOMEM;
	op->rpc_op = rpc_op;
	op->obj_id = id;
	op->attrs = attrs;
	return (int)djmfs__op_run(op);
}

int djmfs_delete_obj(struct djmfs_file *f, uint32_t id)
{
	int err = djmfs__writer_ok(f, "djmfs_delete_obj");

	return err < 0 ? err : obj_call(f, DJMFS_OP_DELETE_OBJ, id, 0);
}

int djmfs_trim(struct djmfs_file *f, uint32_t id, uint64_t start,
	       uint64_t *new_start)
{
	struct fop *op;
	int err = djmfs__writer_ok(f, "djmfs_trim");

	if (err < 0)
		return err;
	op = djmfs__op_new(f, ST_OBJ, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->rpc_op = DJMFS_OP_TRIM;
	op->obj_id = id;
	op->off = start;
	op->start_out = new_start;
	return (int)djmfs__op_run(op);
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
	o = djmfs__obj_find(f, id);
	if (o && attrs_out)
		*attrs_out = o->attrs;
	pthread_mutex_unlock(&f->mu);
	return o ? 0 : -ENOENT;
}

int djmfs_set_attr(struct djmfs_file *f, uint32_t id, unsigned attrs)
{
	unsigned cur;
	int err = djmfs__writer_ok(f, "djmfs_set_attr");

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
	int err = djmfs__writer_ok(f, "djmfs_set_objptr");

	if (err < 0)
		return err;
	pthread_mutex_lock(&f->mu);
	o = djmfs__obj_find(f, id);
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
	int err = djmfs__writer_ok(f, "djmfs_get_objptr");

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

