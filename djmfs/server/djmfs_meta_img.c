/*
 * The checkpoint image of the DJMFS metadata state (djmfs_meta.c): the
 * working namespace and every reservation written as one self-checking
 * byte string, and read back into a state that then holds exactly that
 * (the state after the checkpoint's last record).  The journal stores
 * the bytes; this file only knows their layout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_meta.h"

/* ------------------------------------------------------------------ */
/* Checkpoint image                                                    */
/* ------------------------------------------------------------------ */

/*
 * Image, little-endian:
 *   u32 magic "DJMI" | u32 version | u64 next_ino | u64 n_files |
 *   n_files * FILE (in name order) | u32 n_resv | n_resv * RESV
 * FILE: u64 ino | str name | u64 version | u32 flags | u64 ctime_ns |
 *   u64 mtime_ns | u32 next_obj_id | u32 n_objs | n_objs * OBJ
 * OBJ: u32 id | u32 attrs | str name | u64 size | u64 start |
 *   u32 ext_first | u64 first_at | u32 ck_first | u32 n_ext |
 *   (n_ext - ext_first) * { u64 offset | u64 len } | u32 meta_len |
 *   meta bytes | u32 ck_flags | u32 n_ck | (n_ck - ck_first) * u32 |
 *   u32 last_ck
 * RESV (files in name order): u64 ino | u32 n | n * { u64 first |
 *   u64 count }
 * Indices are absolute (a trimmed object's map begins at extent
 * ext_first, at object offset first_at; its sums at cblock ck_first).
 * Version 2 had no trim fields (start, ext_first, first_at, ck_first all
 * 0); version 1 no sums either (OBJ ends with the meta bytes).  Both
 * still load, version 1's DATA objects holding bytes marked
 * DJMFS_OBJ_CK_GAP (unverified).
 */
#define IMG_MAGIC 0x494d4a44u /* "DJMI" little-endian */
#define IMG_VERSION 3u
#define IMG_VERSION_NOTRIM 2u
#define IMG_VERSION_NOCK 1u
#define IMG_FILE_MIN 47u /* smallest FILE: a one-byte name, no objects */
#define IMG_RUN 16u

struct swalk {
	const struct djmfs__meta *m;
	struct djmfs__buf *b;
	uint32_t n_resv;
};

static int put_file(void *arg, const struct djmfs__file *f)
{
	struct djmfs__buf *b = ((struct swalk *)arg)->b;
	uint32_t i, j;

	djmfs__put_u64(b, f->ino);
	djmfs__put_str(b, f->name);
	djmfs__put_u64(b, f->version);
	djmfs__put_u32(b, f->flags);
	djmfs__put_u64(b, f->ctime_ns);
	djmfs__put_u64(b, f->mtime_ns);
	djmfs__put_u32(b, f->next_obj_id);
	djmfs__put_u32(b, f->n_objs);
	for (i = 0; i < f->n_objs; i++) {
		const struct djmfs__obj *o = f->objs[i];

		djmfs__put_u32(b, o->id);
		djmfs__put_u32(b, o->attrs);
		djmfs__put_str(b, o->name);
		djmfs__put_u64(b, o->size);
		djmfs__put_u64(b, o->start);
		djmfs__put_u32(b, o->ext_first);
		djmfs__put_u64(b, djmfs__obj_first_at(o));
		djmfs__put_u32(b, o->ck_first);
		djmfs__put_u32(b, o->n_ext);
		for (j = o->ext_first; j < o->n_ext; j++) {
			struct djmfs_extent e = djmfs__obj_extent(o, j);

			djmfs__put_u64(b, e.offset);
			djmfs__put_u64(b, e.len);
		}
		djmfs__put_u32(b, o->meta_len);
		if (o->meta_len)
			djmfs__put_bytes(b, o->meta, o->meta_len);
		djmfs__put_u32(b, o->ck_flags);
		djmfs__put_u32(b, o->n_ck);
		for (j = o->ck_first; j < o->n_ck; j++)
			djmfs__put_u32(b, djmfs__obj_ck(o, j));
		djmfs__put_u32(b, o->last_ck);
	}
	return b->err;
}

static int put_resv(void *arg, const struct djmfs__file *f)
{
	struct swalk *w = arg;
	const struct djmfs__ient *e = djmfs__im_find(&w->m->inos, f->ino);
	uint32_t k;

	if (!e || !e->res.n)
		return 0;
	djmfs__put_u64(w->b, f->ino);
	djmfs__put_u32(w->b, e->res.n);
	for (k = 0; k < e->res.n; k++) {
		djmfs__put_u64(w->b, e->res.r[k].first);
		djmfs__put_u64(w->b, e->res.r[k].count);
	}
	w->n_resv++;
	return w->b->err;
}

int djmfs__meta_serialize(const struct djmfs__meta *m, struct djmfs__buf *out)
{
	struct swalk w = { m, out, 0 };
	size_t at;

	djmfs__put_u32(out, IMG_MAGIC);
	djmfs__put_u32(out, IMG_VERSION);
	djmfs__put_u64(out, m->next_ino);
	djmfs__put_u64(out, djmfs__root_nfiles(m->working));
	djmfs__root_walk(m->working, NULL, put_file, &w);
	at = out->len;
	djmfs__put_u32(out, 0);
	djmfs__root_walk(m->working, NULL, put_resv, &w);
	if (!out->err)
		djmfs__patch_u32(out, at, w.n_resv);
	return out->err;
}

/* Reads an OBJ's sums into @o (size set, sums starting at its
 * ck_first).  Without them (@version 1) a DATA object's bytes are
 * unverified.  Returns 0, -EBADMSG or -ENOMEM. */
static int get_sums(struct djmfs__cur *c, struct djmfs__obj *o,
		    uint32_t version)
{
	uint64_t whole = o->size >> DJMFS_CK_SHIFT;
	uint32_t n, k, first = o->ck_first;
	int err = 0;

	if (version == IMG_VERSION_NOCK) {
		if ((o->attrs & DJMFS_ATTR_DATA) && o->size)
			o->ck_flags = DJMFS_OBJ_CK_GAP;
		return 0;
	}
	o->ck_flags = djmfs__get_u32(c);
	n = djmfs__get_u32(c);
	if (c->err || (o->ck_flags & ~DJMFS_OBJ_CK_GAP) || n > whole ||
	    first > n ||
	    ((o->attrs & DJMFS_ATTR_DATA) &&
	     !(o->ck_flags & DJMFS_OBJ_CK_GAP) && n != whole) ||
	    ((o->attrs & DJMFS_ATTR_META) && (n || o->ck_flags)) ||
	    (uint64_t)(n - first) * DJMFS_CK_WIRE > djmfs__cur_left(c))
		return -EBADMSG;
	for (k = first; !err && k < n; k++)
		err = djmfs__obj_ck_append(o, djmfs__get_u32(c));
	o->last_ck = djmfs__get_u32(c);
	if (!err && (c->err || ((o->attrs & DJMFS_ATTR_META) && o->last_ck)))
		err = -EBADMSG;
	return err;
}

/* Reads one OBJ into a new object version.  Returns 0, -EBADMSG or
 * -ENOMEM. */
static int get_obj(struct djmfs__cur *c, struct djmfs__obj **out,
		   uint32_t version)
{
	char name[DJMFS_OBJ_NAME_MAX + 1];
	struct djmfs__obj *o = NULL;
	uint32_t id = djmfs__get_u32(c), attrs = djmfs__get_u32(c), n, k;
	uint32_t ext_first = 0, ck_first = 0;
	uint64_t size, start = 0, first_at = 0;
	const uint8_t *p;
	int err;

	djmfs__get_str(c, name, sizeof(name), 0);
	size = djmfs__get_u64(c);
	if (version >= IMG_VERSION) {
		start = djmfs__get_u64(c);
		ext_first = djmfs__get_u32(c);
		first_at = djmfs__get_u64(c);
		ck_first = djmfs__get_u32(c);
	}
	n = djmfs__get_u32(c);
	if (c->err || !djmfs__attrs_valid(attrs) ||
	    (n && (attrs & DJMFS_ATTR_META)) || start > size ||
	    ext_first > n || (n && ext_first == n) || first_at > start ||
	    ck_first > start >> DJMFS_CK_SHIFT ||
	    ((attrs & DJMFS_ATTR_META) && start) ||
	    (uint64_t)(n - ext_first) * DJMFS_EXT_WIRE > djmfs__cur_left(c))
		return -EBADMSG;
	err = djmfs__obj_new(&o, id, attrs, name);
	if (!err)
		err = djmfs__obj_load_firsts(o, start, ext_first, first_at,
					     ck_first);
	for (k = ext_first; !err && k < n; k++) {
		uint64_t off = djmfs__get_u64(c), len = djmfs__get_u64(c);

		err = len ? djmfs__obj_append(o, off, len) : -EBADMSG;
	}
	n = djmfs__get_u32(c);
	p = djmfs__get_bytes(c, n);
	if (!err && (attrs & DJMFS_ATTR_META) && size != n)
		err = -EBADMSG;
	if (!err && !(attrs & DJMFS_ATTR_META) &&
	    (n || size > djmfs__obj_maplen(o)))
		err = -EBADMSG;
	if (!err && (c->err || n > DJMFS_META_MAX))
		err = -EBADMSG;
	if (!err)
		err = djmfs__obj_set_meta(o, p, n);
	if (!err) {
		o->size = size;
		err = get_sums(c, o, version);
	}
	if (err) {
		djmfs__obj_unref(o);
		return err;
	}
	*out = o;
	return 0;
}

/* Reads one FILE.  Returns 0, -EBADMSG or -ENOMEM. */
static int get_file(struct djmfs__meta *m, struct djmfs__cur *c,
		    uint32_t version, struct djmfs__file **out)
{
	char name[DJMFS_NAME_MAX + 1];
	struct djmfs__file *f = NULL;
	uint64_t ino = djmfs__get_u64(c);
	uint32_t i, j, nsync = 0;
	int err;

	djmfs__get_str(c, name, sizeof(name), 0);
	if (c->err || !ino || ino >= m->next_ino || djmfs__im_find(&m->inos, ino))
		return -EBADMSG;
	err = djmfs__file_new(&f, ino, name, 0);
	if (err)
		return err;
	f->version = djmfs__get_u64(c);
	f->flags = djmfs__get_u32(c);
	f->ctime_ns = djmfs__get_u64(c);
	f->mtime_ns = djmfs__get_u64(c);
	f->next_obj_id = djmfs__get_u32(c);
	f->n_objs = djmfs__get_u32(c);
	if (c->err || f->n_objs > DJMFS_MAX_OBJS ||
	    (f->flags & ~DJMFS_FILE_QUARANTINED))
		err = -EBADMSG;
	for (i = 0; !err && i < f->n_objs; i++) {
		err = get_obj(c, &f->objs[i], version);
		for (j = 0; !err && j < i; j++)
			if (f->objs[j]->id == f->objs[i]->id ||
			    !strcmp(f->objs[j]->name, f->objs[i]->name))
				err = -EBADMSG;
		if (err)
			break;
		if (f->objs[i]->id >= f->next_obj_id ||
		    ((f->objs[i]->attrs & DJMFS_ATTR_SYNC) && nsync++))
			err = -EBADMSG;
	}
	if (err) {
		f->n_objs = DJMFS_MAX_OBJS; /* slots not loaded are NULL */
		djmfs__file_unref(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Reads n_files FILEs into a new root and the inode table. */
static int get_files(struct djmfs__meta *m, struct djmfs__cur *c,
		     uint32_t version, uint64_t n, struct djmfs__root **out)
{
	struct djmfs__file **files;
	uint64_t i, got = 0;
	int err = 0;

	if (n > djmfs__cur_left(c) / IMG_FILE_MIN)
		return -EBADMSG;
	files = malloc((n ? n : 1) * sizeof(*files));
	if (!files)
		return -ENOMEM;
	for (i = 0; !err && i < n; i++) {
		struct djmfs__ient e = { 0, NULL, { NULL, 0, 0 }, NULL };

		err = get_file(m, c, version, &files[i]);
		if (err)
			break;
		got++;
		if (i && strcmp(files[i - 1]->name, files[i]->name) >= 0)
			err = -EBADMSG;
		else if (!(e.name = strdup(files[i]->name)) ||
			 djmfs__im_reserve(&m->inos))
			err = -ENOMEM;
		if (!err) {
			e.ino = files[i]->ino;
			e.wf = files[i]; /* root_build keeps the records */
			djmfs__im_place(&m->inos, &e);
		} else {
			free(e.name);
		}
	}
	if (err) {
		for (i = 0; i < got; i++)
			djmfs__file_unref(files[i]);
	} else {
		err = djmfs__root_build(files, n, out);
	}
	free(files);
	return err;
}

static int get_resv(struct djmfs__meta *m, struct djmfs__cur *c)
{
	uint32_t n = djmfs__get_u32(c), i, k;
	int err = 0;

	for (i = 0; !err && !c->err && i < n; i++) {
		struct djmfs__ient *e = djmfs__im_find(&m->inos, djmfs__get_u64(c));
		uint32_t runs = djmfs__get_u32(c);

		if (c->err || !e || e->res.n || !runs ||
		    (uint64_t)runs * IMG_RUN > djmfs__cur_left(c))
			return -EBADMSG;
		for (k = 0; !err && k < runs; k++) {
			uint64_t first = djmfs__get_u64(c);
			uint64_t count = djmfs__get_u64(c);

			if (!count || first >= m->o.n_aus ||
			    count > m->o.n_aus - first)
				return -EBADMSG;
			err = djmfs__rset_add(&e->res, first, count);
			m->reserved += count;
		}
	}
	if (err == -EINVAL || c->err)
		return -EBADMSG;
	return err;
}

static int meta_parse(struct djmfs__meta *m, const uint8_t *img, size_t n)
{
	struct djmfs__root *r = NULL;
	struct djmfs__cur c;
	uint64_t nfiles;
	uint32_t version;
	int err;

	djmfs__cur_init(&c, img, n);
	if (djmfs__get_u32(&c) != IMG_MAGIC)
		return -EBADMSG;
	version = djmfs__get_u32(&c);
	if (version != IMG_VERSION && version != IMG_VERSION_NOTRIM &&
	    version != IMG_VERSION_NOCK)
		return -EBADMSG;
	m->next_ino = djmfs__get_u64(&c);
	nfiles = djmfs__get_u64(&c);
	if (c.err || !m->next_ino)
		return -EBADMSG;
	err = get_files(m, &c, version, nfiles, &r);
	if (err)
		return err;
	djmfs__root_unref(m->working);
	djmfs__root_unref(m->durable);
	m->working = r;
	m->durable = djmfs__root_ref(r);
	err = get_resv(m, &c);
	if (!err && (c.err || djmfs__cur_left(&c)))
		err = -EBADMSG;
	return err;
}

int djmfs__meta_load(struct djmfs__meta *m, const uint8_t *img, size_t n,
		     uint64_t last_seq)
{
	struct djmfs__root *empty;
	int err = djmfs__root_new(&empty);

	if (err)
		return err;
	/* One reference for the state, one kept for the failure path. */
	djmfs__meta_reset(m, djmfs__root_ref(empty));
	if (n)
		err = meta_parse(m, img, n);
	if (err) {
		djmfs__log(m->o.log, DJMFS_LOG_ERROR,
			   "meta_load: checkpoint image of %zu bytes: %s", n,
			   strerror(-err));
		djmfs__meta_reset(m, empty);
		return err;
	}
	djmfs__root_unref(empty);
	m->seq = m->durable_seq = m->sealed_seq = last_seq;
	return 0;
}
