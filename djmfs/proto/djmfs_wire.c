/*
 * Protocol frames between libdjmfs and djmfsd: the 16-byte header and the
 * body of every operation, request and response (doc/djmfs-protocol.md is
 * the reference).  Each op has its four codecs in one static table indexed
 * by op, so adding an op is one row and no dispatch code.  Decoders never
 * trust a number from the wire: a count is checked against the bytes left
 * before anything is sized from it, every string against the array it
 * lands in, and a frame must be consumed exactly.  Encoders refuse
 * anything the decoder would refuse, so a frame we send always decodes.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "djmfs_proto.h"
#include "djmfs_codec.h"

/* Smallest wire size of one LIST entry (empty name), to bound a count. */
#define LIST_ENTRY_MIN (2 + 8 + 8 + 8 + 4 + 8)
/* Smallest wire size of one snapshot object (empty name, no payload). */
#define SNAP_OBJ_MIN (4 + 4 + 2 + 8 + 8 + 4 + 8 + 4 + 4 + 4 + 4 * 4 + 4)
/* Smallest wire size of one PUBLISH object, without and with sums. */
#define PUB_OBJ_MIN (4 + 8 + 4 + 1)
#define PUB_CK_MIN (4 + 4 + 4)
#define KNOWN_WIRE 12
/* Statuses are 0 or -errno; anything else is not a status. */
#define STATUS_MIN (-4095)

typedef int (*enc_fn)(struct djmfs__buf *b, const struct djmfs__msg *m);
typedef void (*dec_fn)(struct djmfs__cur *c, struct djmfs__msg *m);

static void bad(struct djmfs__cur *c)
{
	c->err = -EBADMSG;
}

/* Checks @n elements of @size bytes fit in what is left, then takes them. */
static const uint8_t *get_view(struct djmfs__cur *c, uint32_t n, size_t size)
{
	if ((uint64_t)n * size > djmfs__cur_left(c)) {
		bad(c);
		return NULL;
	}
	return djmfs__get_bytes(c, (size_t)n * size);
}

/* 0/1 flags are strict so that a decoded frame re-encodes byte for byte. */
static uint8_t get_bool(struct djmfs__cur *c)
{
	uint8_t v = djmfs__get_u8(c);

	if (v > 1)
		bad(c);
	return v;
}

/* A string the encoder may send: NUL-terminated within its array. */
static int check_str(const char *s, size_t arrsz, int allow_empty)
{
	size_t n = strnlen(s, arrsz);

	if (n == arrsz || (n == 0 && !allow_empty))
		return -EINVAL;
	return 0;
}

/* -EINVAL unless @s fits its array member; the size comes from the member
 * itself, so limits live in one place. */
#define STR_BAD(s, empty) check_str((s), sizeof(s), (empty))

static int check_view(uint32_t n, size_t size)
{
	return (uint64_t)n * size > DJMFS_FRAME_MAX ? -EMSGSIZE : 0;
}

/* ---------------------------------------------------------------- */
/* Shared bodies: PUBLISH, KNOWN, SNAP                               */
/* ---------------------------------------------------------------- */

static void dec_pub_obj(struct djmfs__cur *c, struct djmfs__pub_obj *o,
			int has_ck)
{
	o->obj_id = djmfs__get_u32(c);
	o->size = djmfs__get_u64(c);
	o->ext.n = djmfs__get_u32(c);
	o->ext.p = get_view(c, o->ext.n, DJMFS_EXT_WIRE);
	if (has_ck) {
		o->ck_first = djmfs__get_u32(c);
		o->ck.n = djmfs__get_u32(c);
		o->ck.p = get_view(c, o->ck.n, DJMFS_CK_WIRE);
		o->last_ck = djmfs__get_u32(c);
	}
	o->has_meta = get_bool(c);
	if (!o->has_meta || c->err)
		return;
	o->meta_len = djmfs__get_u32(c);
	if (o->meta_len > DJMFS_META_MAX || o->size != o->meta_len) {
		bad(c);
		return;
	}
	o->meta = get_view(c, o->meta_len, 1);
}

int djmfs__dec_publish(struct djmfs__cur *c, struct djmfs__publish *p,
		       int has_ck)
{
	size_t min = PUB_OBJ_MIN + (has_ck ? PUB_CK_MIN : 0);

	p->has_ck = has_ck ? 1 : 0;
	p->base_version = djmfs__get_u64(c);
	p->n_objs = djmfs__get_u32(c);
	if (p->n_objs > DJMFS_MAX_OBJS ||
	    (uint64_t)p->n_objs * min > djmfs__cur_left(c))
		bad(c);
	for (uint32_t i = 0; i < p->n_objs && !c->err; i++)
		dec_pub_obj(c, &p->objs[i], has_ck);
	if (c->err)
		c->err = -EBADMSG;
	return c->err;
}

static int check_publish(const struct djmfs__publish *p)
{
	int err;

	if (p->n_objs > DJMFS_MAX_OBJS)
		return -EINVAL;
	for (uint32_t i = 0; i < p->n_objs; i++) {
		const struct djmfs__pub_obj *o = &p->objs[i];

		if (o->has_meta > 1 ||
		    (o->has_meta && (o->meta_len > DJMFS_META_MAX ||
				     o->size != o->meta_len)))
			return -EINVAL;
		err = check_view(o->ext.n, DJMFS_EXT_WIRE);
		if (!err)
			err = check_view(o->ck.n, DJMFS_CK_WIRE);
		if (err)
			return err;
	}
	return 0;
}

int djmfs__enc_publish(struct djmfs__buf *b, const struct djmfs__publish *p,
		       int has_ck)
{
	int err = check_publish(p);

	if (err)
		return err;
	djmfs__put_u64(b, p->base_version);
	djmfs__put_u32(b, p->n_objs);
	for (uint32_t i = 0; i < p->n_objs; i++) {
		const struct djmfs__pub_obj *o = &p->objs[i];

		djmfs__put_u32(b, o->obj_id);
		djmfs__put_u64(b, o->size);
		djmfs__put_u32(b, o->ext.n);
		djmfs__put_bytes(b, o->ext.p,
				 (size_t)o->ext.n * DJMFS_EXT_WIRE);
		if (has_ck) {
			djmfs__put_u32(b, o->ck_first);
			djmfs__put_u32(b, o->ck.n);
			djmfs__put_bytes(b, o->ck.p,
					 (size_t)o->ck.n * DJMFS_CK_WIRE);
			djmfs__put_u32(b, o->last_ck);
		}
		djmfs__put_u8(b, o->has_meta);
		if (!o->has_meta)
			continue;
		djmfs__put_u32(b, o->meta_len);
		djmfs__put_bytes(b, o->meta, o->meta_len);
	}
	return 0;
}

static void dec_known(struct djmfs__cur *c, struct djmfs__known *k)
{
	k->version = djmfs__get_u64(c);
	k->n = djmfs__get_u32(c);
	if (k->n > DJMFS_MAX_OBJS ||
	    (uint64_t)k->n * KNOWN_WIRE > djmfs__cur_left(c)) {
		bad(c);
		return;
	}
	for (uint32_t i = 0; i < k->n; i++) {
		k->o[i].id = djmfs__get_u32(c);
		k->o[i].n_ext = djmfs__get_u32(c);
		k->o[i].n_ck = djmfs__get_u32(c);
	}
}

static int enc_known(struct djmfs__buf *b, const struct djmfs__known *k)
{
	if (k->n > DJMFS_MAX_OBJS)
		return -EINVAL;
	djmfs__put_u64(b, k->version);
	djmfs__put_u32(b, k->n);
	for (uint32_t i = 0; i < k->n; i++) {
		djmfs__put_u32(b, k->o[i].id);
		djmfs__put_u32(b, k->o[i].n_ext);
		djmfs__put_u32(b, k->o[i].n_ck);
	}
	return 0;
}

/*
 * The delta rule of a snapshot object: a full snapshot sends the extents
 * from ext_base to the end (ext_base + n_sent == ext_total); a STAT sends
 * none and no META bytes.
 */
static int snap_obj_ok(const struct djmfs__snap_obj *o, int stat)
{
	if (o->meta_len > DJMFS_META_MAX || (o->ck_flags & ~DJMFS_OBJ_CK_GAP))
		return 0;
	/* A trimmed map: its start within the size, its first extent no
	 * further than the map's end and beginning at or below the start. */
	if (o->start > o->size || o->ext_first > o->ext_total ||
	    o->first_at > o->start)
		return 0;
	if (stat)
		return o->ext.n == 0 && o->ck.n == 0 && o->meta_len == 0;
	return (uint64_t)o->ext_base + o->ext.n == o->ext_total &&
	       o->ext_first <= o->ext_base;
}

static void dec_snap_obj(struct djmfs__cur *c, struct djmfs__snap_obj *o,
			 int stat)
{
	o->id = djmfs__get_u32(c);
	o->attrs = djmfs__get_u32(c);
	djmfs__get_str(c, o->name, sizeof(o->name), 0);
	o->size = djmfs__get_u64(c);
	o->start = djmfs__get_u64(c);
	o->ext_first = djmfs__get_u32(c);
	o->first_at = djmfs__get_u64(c);
	o->ext_total = djmfs__get_u32(c);
	o->ext_base = djmfs__get_u32(c);
	o->ext.n = djmfs__get_u32(c);
	o->ext.p = get_view(c, o->ext.n, DJMFS_EXT_WIRE);
	o->ck_flags = djmfs__get_u32(c);
	o->ck_base = djmfs__get_u32(c);
	o->ck.n = djmfs__get_u32(c);
	o->ck.p = get_view(c, o->ck.n, DJMFS_CK_WIRE);
	o->last_ck = djmfs__get_u32(c);
	o->meta_len = djmfs__get_u32(c);
	if (c->err || !snap_obj_ok(o, stat)) {
		bad(c);
		return;
	}
	o->meta = get_view(c, o->meta_len, 1);
}

static void dec_snap(struct djmfs__cur *c, struct djmfs__snap *s, int stat)
{
	s->ino = djmfs__get_u64(c);
	djmfs__get_str(c, s->name, sizeof(s->name), 0);
	s->version = djmfs__get_u64(c);
	s->flags = djmfs__get_u32(c);
	s->ctime_ns = djmfs__get_u64(c);
	s->mtime_ns = djmfs__get_u64(c);
	s->unchanged = get_bool(c);
	s->n_objs = djmfs__get_u32(c);
	if (s->n_objs > DJMFS_MAX_OBJS || (s->unchanged && s->n_objs) ||
	    (uint64_t)s->n_objs * SNAP_OBJ_MIN > djmfs__cur_left(c))
		bad(c);
	for (uint32_t i = 0; i < s->n_objs && !c->err; i++)
		dec_snap_obj(c, &s->objs[i], stat);
}

static int check_snap(const struct djmfs__snap *s, int stat)
{
	int err;

	if (STR_BAD(s->name, 0) || s->unchanged > 1 ||
	    s->n_objs > DJMFS_MAX_OBJS || (s->unchanged && s->n_objs))
		return -EINVAL;
	for (uint32_t i = 0; i < s->n_objs; i++) {
		const struct djmfs__snap_obj *o = &s->objs[i];

		if (STR_BAD(o->name, 0) || !snap_obj_ok(o, stat))
			return -EINVAL;
		err = check_view(o->ext.n, DJMFS_EXT_WIRE);
		if (!err)
			err = check_view(o->ck.n, DJMFS_CK_WIRE);
		if (err)
			return err;
	}
	return 0;
}

static int enc_snap(struct djmfs__buf *b, const struct djmfs__snap *s,
		    int stat)
{
	int err = check_snap(s, stat);

	if (err)
		return err;
	djmfs__put_u64(b, s->ino);
	djmfs__put_str(b, s->name);
	djmfs__put_u64(b, s->version);
	djmfs__put_u32(b, s->flags);
	djmfs__put_u64(b, s->ctime_ns);
	djmfs__put_u64(b, s->mtime_ns);
	djmfs__put_u8(b, s->unchanged);
	djmfs__put_u32(b, s->n_objs);
	for (uint32_t i = 0; i < s->n_objs; i++) {
		const struct djmfs__snap_obj *o = &s->objs[i];

		djmfs__put_u32(b, o->id);
		djmfs__put_u32(b, o->attrs);
		djmfs__put_str(b, o->name);
		djmfs__put_u64(b, o->size);
		djmfs__put_u64(b, o->start);
		djmfs__put_u32(b, o->ext_first);
		djmfs__put_u64(b, o->first_at);
		djmfs__put_u32(b, o->ext_total);
		djmfs__put_u32(b, o->ext_base);
		djmfs__put_u32(b, o->ext.n);
		djmfs__put_bytes(b, o->ext.p,
				 (size_t)o->ext.n * DJMFS_EXT_WIRE);
		djmfs__put_u32(b, o->ck_flags);
		djmfs__put_u32(b, o->ck_base);
		djmfs__put_u32(b, o->ck.n);
		djmfs__put_bytes(b, o->ck.p, (size_t)o->ck.n * DJMFS_CK_WIRE);
		djmfs__put_u32(b, o->last_ck);
		djmfs__put_u32(b, o->meta_len);
		djmfs__put_bytes(b, o->meta, o->meta_len);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* LIST entries                                                      */
/* ---------------------------------------------------------------- */

static void dec_list_entry(struct djmfs__cur *c, struct djmfs__list_entry *e)
{
	djmfs__get_str(c, e->name, sizeof(e->name), 0);
	e->ino = djmfs__get_u64(c);
	e->size = djmfs__get_u64(c);
	e->version = djmfs__get_u64(c);
	e->flags = djmfs__get_u32(c);
	e->mtime_ns = djmfs__get_u64(c);
}

int djmfs__list_next(struct djmfs__cur *c, struct djmfs__list_entry *e)
{
	if (c->err)
		return -EBADMSG;
	if (djmfs__cur_left(c) == 0)
		return 0;
	dec_list_entry(c, e);
	return c->err ? -EBADMSG : 1;
}

void djmfs__put_list_entry(struct djmfs__buf *b,
			   const struct djmfs__list_entry *e)
{
	/* An unterminated or empty name would make the frame undecodable;
	 * fail the buffer rather than send it. */
	if (STR_BAD(e->name, 0)) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	djmfs__put_str(b, e->name);
	djmfs__put_u64(b, e->ino);
	djmfs__put_u64(b, e->size);
	djmfs__put_u64(b, e->version);
	djmfs__put_u32(b, e->flags);
	djmfs__put_u64(b, e->mtime_ns);
}

/* ---------------------------------------------------------------- */
/* Per-op bodies                                                     */
/* ---------------------------------------------------------------- */

/* Fixed-size byte fields (nonces, proofs) land in arrays. */
static void get_array(struct djmfs__cur *c, uint8_t *dst, size_t n)
{
	const uint8_t *p = djmfs__get_bytes(c, n);

	if (p)
		memcpy(dst, p, n);
}

static int enc_hello_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	const typeof(m->u.hello_req) *r = &m->u.hello_req;

	if (STR_BAD(r->name, 1) || r->has_proof > 1)
		return -EINVAL;
	djmfs__put_u32(b, r->proto);
	djmfs__put_u32(b, r->lease_ms);
	djmfs__put_str(b, r->name);
	djmfs__put_u8(b, r->has_proof);
	if (r->has_proof)
		djmfs__put_bytes(b, r->proof, sizeof(r->proof));
	return 0;
}

static void dec_hello_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	typeof(m->u.hello_req) *r = &m->u.hello_req;

	r->proto = djmfs__get_u32(c);
	r->lease_ms = djmfs__get_u32(c);
	djmfs__get_str(c, r->name, sizeof(r->name), 1);
	r->has_proof = get_bool(c);
	if (r->has_proof && !c->err)
		get_array(c, r->proof, sizeof(r->proof));
}

static int enc_challenge_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	const typeof(m->u.challenge_req) *r = &m->u.challenge_req;

	if (STR_BAD(r->name, 1))
		return -EINVAL;
	djmfs__put_u32(b, r->proto);
	djmfs__put_bytes(b, r->nonce, sizeof(r->nonce));
	djmfs__put_str(b, r->name);
	return 0;
}

static void dec_challenge_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	typeof(m->u.challenge_req) *r = &m->u.challenge_req;

	r->proto = djmfs__get_u32(c);
	get_array(c, r->nonce, sizeof(r->nonce));
	djmfs__get_str(c, r->name, sizeof(r->name), 1);
}

static int enc_challenge_resp(struct djmfs__buf *b,
			      const struct djmfs__msg *m)
{
	djmfs__put_bytes(b, m->u.challenge_resp.nonce,
			 sizeof(m->u.challenge_resp.nonce));
	djmfs__put_bytes(b, m->u.challenge_resp.proof,
			 sizeof(m->u.challenge_resp.proof));
	return 0;
}

static void dec_challenge_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	get_array(c, m->u.challenge_resp.nonce,
		  sizeof(m->u.challenge_resp.nonce));
	get_array(c, m->u.challenge_resp.proof,
		  sizeof(m->u.challenge_resp.proof));
}

static int enc_hello_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	const typeof(m->u.hello_resp) *r = &m->u.hello_resp;

	if (STR_BAD(r->volume, 1))
		return -EINVAL;
	djmfs__put_u64(b, r->session);
	djmfs__put_u32(b, r->lease_ms);
	djmfs__put_u32(b, r->au_size);
	djmfs__put_u64(b, r->data_off);
	djmfs__put_u64(b, r->n_aus);
	djmfs__put_bytes(b, r->uuid, sizeof(r->uuid));
	djmfs__put_str(b, r->volume);
	return 0;
}

static void dec_hello_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	typeof(m->u.hello_resp) *r = &m->u.hello_resp;

	r->session = djmfs__get_u64(c);
	r->lease_ms = djmfs__get_u32(c);
	r->au_size = djmfs__get_u32(c);
	r->data_off = djmfs__get_u64(c);
	r->n_aus = djmfs__get_u64(c);
	get_array(c, r->uuid, sizeof(r->uuid));
	djmfs__get_str(c, r->volume, sizeof(r->volume), 1);
}

static int enc_ping_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u64(b, m->u.ping_resp.now_ns);
	return 0;
}

static void dec_ping_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.ping_resp.now_ns = djmfs__get_u64(c);
}

static int enc_open_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	if (STR_BAD(m->u.open_req.name, 0))
		return -EINVAL;
	djmfs__put_u32(b, m->u.open_req.flags);
	djmfs__put_str(b, m->u.open_req.name);
	return 0;
}

static void dec_open_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.open_req.flags = djmfs__get_u32(c);
	djmfs__get_str(c, m->u.open_req.name, sizeof(m->u.open_req.name), 0);
}

static int enc_open_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.open_resp.handle);
	return enc_snap(b, &m->u.open_resp.snap, 0);
}

static void dec_open_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.open_resp.handle = djmfs__get_u32(c);
	dec_snap(c, &m->u.open_resp.snap, 0);
}

static int enc_handle_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.handle_req.handle);
	return 0;
}

static void dec_handle_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.handle_req.handle = djmfs__get_u32(c);
}

static int enc_create_obj_req(struct djmfs__buf *b,
			      const struct djmfs__msg *m)
{
	if (STR_BAD(m->u.create_obj_req.name, 0))
		return -EINVAL;
	djmfs__put_u32(b, m->u.create_obj_req.handle);
	djmfs__put_u32(b, m->u.create_obj_req.attrs);
	djmfs__put_str(b, m->u.create_obj_req.name);
	return 0;
}

static void dec_create_obj_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.create_obj_req.handle = djmfs__get_u32(c);
	m->u.create_obj_req.attrs = djmfs__get_u32(c);
	djmfs__get_str(c, m->u.create_obj_req.name,
		       sizeof(m->u.create_obj_req.name), 0);
}

static int enc_obj_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.obj_resp.obj_id);
	djmfs__put_u64(b, m->u.obj_resp.version);
	return 0;
}

static void dec_obj_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.obj_resp.obj_id = djmfs__get_u32(c);
	m->u.obj_resp.version = djmfs__get_u64(c);
}

static int enc_delete_obj_req(struct djmfs__buf *b,
			      const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.obj_req.handle);
	djmfs__put_u32(b, m->u.obj_req.obj_id);
	return 0;
}

static void dec_delete_obj_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.obj_req.handle = djmfs__get_u32(c);
	m->u.obj_req.obj_id = djmfs__get_u32(c);
}

static int enc_set_attr_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	enc_delete_obj_req(b, m);
	djmfs__put_u32(b, m->u.obj_req.attrs);
	return 0;
}

static void dec_set_attr_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	dec_delete_obj_req(c, m);
	m->u.obj_req.attrs = djmfs__get_u32(c);
}

static int enc_trim_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.trim_req.handle);
	djmfs__put_u32(b, m->u.trim_req.obj_id);
	djmfs__put_u64(b, m->u.trim_req.start);
	return 0;
}

static void dec_trim_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.trim_req.handle = djmfs__get_u32(c);
	m->u.trim_req.obj_id = djmfs__get_u32(c);
	m->u.trim_req.start = djmfs__get_u64(c);
}

static int enc_trim_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u64(b, m->u.trim_resp.start);
	djmfs__put_u64(b, m->u.trim_resp.version);
	return 0;
}

static void dec_trim_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.trim_resp.start = djmfs__get_u64(c);
	m->u.trim_resp.version = djmfs__get_u64(c);
}

static int enc_reserve_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.reserve_req.handle);
	djmfs__put_u32(b, m->u.reserve_req.n_aus);
	return 0;
}

static void dec_reserve_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.reserve_req.handle = djmfs__get_u32(c);
	m->u.reserve_req.n_aus = djmfs__get_u32(c);
}

static int enc_reserve_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	int err = check_view(m->u.reserve_resp.n, DJMFS_RUN_WIRE);

	if (err)
		return err;
	djmfs__put_u32(b, m->u.reserve_resp.n);
	djmfs__put_bytes(b, m->u.reserve_resp.p,
			 (size_t)m->u.reserve_resp.n * DJMFS_RUN_WIRE);
	return 0;
}

static void dec_reserve_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.reserve_resp.n = djmfs__get_u32(c);
	m->u.reserve_resp.p = get_view(c, m->u.reserve_resp.n, DJMFS_RUN_WIRE);
}

static int enc_publish_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.publish_req.handle);
	return djmfs__enc_publish(b, &m->u.publish_req.pub, 1);
}

static void dec_publish_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.publish_req.handle = djmfs__get_u32(c);
	djmfs__dec_publish(c, &m->u.publish_req.pub, 1);
}

static int enc_publish_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u64(b, m->u.publish_resp.version);
	return 0;
}

static void dec_publish_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.publish_resp.version = djmfs__get_u64(c);
}

static int enc_sync_snap_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.snap_req.handle);
	return enc_known(b, &m->u.snap_req.known);
}

static void dec_sync_snap_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.snap_req.handle = djmfs__get_u32(c);
	dec_known(c, &m->u.snap_req.known);
}

static int enc_lock_snap_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.snap_req.handle);
	djmfs__put_u32(b, m->u.snap_req.timeout_ms);
	return enc_known(b, &m->u.snap_req.known);
}

static void dec_lock_snap_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.snap_req.handle = djmfs__get_u32(c);
	m->u.snap_req.timeout_ms = djmfs__get_u32(c);
	dec_known(c, &m->u.snap_req.known);
}

static int enc_snap_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	return enc_snap(b, &m->u.snap_resp, 0);
}

static void dec_snap_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	dec_snap(c, &m->u.snap_resp, 0);
}

static int enc_stat_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	return enc_snap(b, &m->u.snap_resp, 1);
}

static void dec_stat_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	dec_snap(c, &m->u.snap_resp, 1);
}

static int enc_name_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	if (STR_BAD(m->u.name_req.name, 0))
		return -EINVAL;
	djmfs__put_str(b, m->u.name_req.name);
	return 0;
}

static void dec_name_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	djmfs__get_str(c, m->u.name_req.name, sizeof(m->u.name_req.name), 0);
}

static int enc_list_req(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	if (STR_BAD(m->u.list_req.prefix, 1) || STR_BAD(m->u.list_req.after, 1))
		return -EINVAL;
	djmfs__put_str(b, m->u.list_req.prefix);
	djmfs__put_str(b, m->u.list_req.after);
	djmfs__put_u32(b, m->u.list_req.max);
	return 0;
}

static void dec_list_req(struct djmfs__cur *c, struct djmfs__msg *m)
{
	typeof(m->u.list_req) *r = &m->u.list_req;

	djmfs__get_str(c, r->prefix, sizeof(r->prefix), 1);
	djmfs__get_str(c, r->after, sizeof(r->after), 1);
	r->max = djmfs__get_u32(c);
}

/* The entries are checked here, once, so list_next() on them only fails
 * if the caller hands it something else. */
static int list_entries_ok(const uint8_t *p, size_t plen, uint32_t n)
{
	struct djmfs__cur c;
	struct djmfs__list_entry e;
	uint32_t seen = 0;
	int r;

	djmfs__cur_init(&c, p, plen);
	while ((r = djmfs__list_next(&c, &e)) == 1)
		seen++;
	return r == 0 && seen == n;
}

static int enc_list_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	const typeof(m->u.list_resp) *r = &m->u.list_resp;

	if (r->more > 1 || !list_entries_ok(r->p, r->plen, r->n))
		return -EINVAL;
	if (r->plen > DJMFS_FRAME_MAX)
		return -EMSGSIZE;
	djmfs__put_u32(b, r->n);
	djmfs__put_u8(b, r->more);
	djmfs__put_bytes(b, r->p, r->plen);
	return 0;
}

static void dec_list_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	typeof(m->u.list_resp) *r = &m->u.list_resp;
	struct djmfs__list_entry e;
	size_t start;

	r->n = djmfs__get_u32(c);
	r->more = get_bool(c);
	if ((uint64_t)r->n * LIST_ENTRY_MIN > djmfs__cur_left(c)) {
		bad(c);
		return;
	}
	start = c->pos;
	for (uint32_t i = 0; i < r->n && !c->err; i++)
		dec_list_entry(c, &e);
	if (c->err)
		return;
	r->p = c->p + start;
	r->plen = c->pos - start;
}

/* Field order of the DF and STATS bodies, as on the wire; offsets are
 * from the whole message so the compiler sees the real object bounds. */
static const size_t df_u64[] = {
	offsetof(struct djmfs__msg, u.df_resp.total_aus),
	offsetof(struct djmfs__msg, u.df_resp.free_aus),
	offsetof(struct djmfs__msg, u.df_resp.reserved_aus),
	offsetof(struct djmfs__msg, u.df_resp.deferred_aus),
	offsetof(struct djmfs__msg, u.df_resp.files),
	offsetof(struct djmfs__msg, u.df_resp.quarantined),
};

static const size_t stats_u64[] = {
	offsetof(struct djmfs__msg, u.stats_resp.uptime_ns),
	offsetof(struct djmfs__msg, u.stats_resp.cpu_user_ns),
	offsetof(struct djmfs__msg, u.stats_resp.cpu_sys_ns),
	offsetof(struct djmfs__msg, u.stats_resp.ops),
	offsetof(struct djmfs__msg, u.stats_resp.mutations),
	offsetof(struct djmfs__msg, u.stats_resp.lock_busy_ns),
	offsetof(struct djmfs__msg, u.stats_resp.journal_records),
	offsetof(struct djmfs__msg, u.stats_resp.journal_batches),
	offsetof(struct djmfs__msg, u.stats_resp.journal_bytes),
	offsetof(struct djmfs__msg, u.stats_resp.checkpoints),
	offsetof(struct djmfs__msg, u.stats_resp.sessions),
	offsetof(struct djmfs__msg, u.stats_resp.alloc_stalls),
};

/* Appended later: a server of the previous release does not send them. */
static const size_t stats_tail_u64[] = {
	offsetof(struct djmfs__msg, u.stats_resp.meta_repairs_journal),
	offsetof(struct djmfs__msg, u.stats_resp.meta_repairs_checkpoint),
	offsetof(struct djmfs__msg, u.stats_resp.meta_repairs_superblock),
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void put_u64_fields(struct djmfs__buf *b, const void *s,
			   const size_t *off, size_t n)
{
	const char *base = s;

	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		memcpy(&v, base + off[i], sizeof(v));
		djmfs__put_u64(b, v);
	}
}

static void get_u64_fields(struct djmfs__cur *c, void *s, const size_t *off,
			   size_t n)
{
	char *base = s;

	for (size_t i = 0; i < n; i++) {
		uint64_t v = djmfs__get_u64(c);

		memcpy(base + off[i], &v, sizeof(v));
	}
}

static int enc_df_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	djmfs__put_u32(b, m->u.df_resp.au_size);
	put_u64_fields(b, m, df_u64, N_OF(df_u64));
	return 0;
}

static void dec_df_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->u.df_resp.au_size = djmfs__get_u32(c);
	get_u64_fields(c, m, df_u64, N_OF(df_u64));
}

static int enc_stats_resp(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	put_u64_fields(b, m, stats_u64, N_OF(stats_u64));
	if (!m->stats_short)
		put_u64_fields(b, m, stats_tail_u64, N_OF(stats_tail_u64));
	return 0;
}

static void dec_stats_resp(struct djmfs__cur *c, struct djmfs__msg *m)
{
	struct djmfs_server_stats *st = &m->u.stats_resp;

	get_u64_fields(c, m, stats_u64, N_OF(stats_u64));
	st->meta_repairs_journal = st->meta_repairs_checkpoint =
		st->meta_repairs_superblock = 0;
	m->stats_short = djmfs__cur_left(c) == 0;
	if (!m->stats_short)
		get_u64_fields(c, m, stats_tail_u64, N_OF(stats_tail_u64));
}

/* ---------------------------------------------------------------- */
/* The op table and frames                                           */
/* ---------------------------------------------------------------- */

/* NULL codec: that direction has an empty body. */
struct op_codec {
	const char *name;
	enc_fn enc_req;
	dec_fn dec_req;
	enc_fn enc_resp;
	dec_fn dec_resp;
};

static const struct op_codec op_codecs[DJMFS_OP_MAX] = {
	[DJMFS_OP_HELLO] = {"HELLO", enc_hello_req, dec_hello_req,
			    enc_hello_resp, dec_hello_resp},
	[DJMFS_OP_PING] = {"PING", NULL, NULL, enc_ping_resp, dec_ping_resp},
	[DJMFS_OP_OPEN] = {"OPEN", enc_open_req, dec_open_req, enc_open_resp,
			   dec_open_resp},
	[DJMFS_OP_CLOSE] = {"CLOSE", enc_handle_req, dec_handle_req, NULL,
			    NULL},
	[DJMFS_OP_CREATE_OBJ] = {"CREATE_OBJ", enc_create_obj_req,
				 dec_create_obj_req, enc_obj_resp,
				 dec_obj_resp},
	[DJMFS_OP_DELETE_OBJ] = {"DELETE_OBJ", enc_delete_obj_req,
				 dec_delete_obj_req, enc_obj_resp,
				 dec_obj_resp},
	[DJMFS_OP_SET_ATTR] = {"SET_ATTR", enc_set_attr_req, dec_set_attr_req,
			       enc_obj_resp, dec_obj_resp},
	[DJMFS_OP_RESERVE] = {"RESERVE", enc_reserve_req, dec_reserve_req,
			      enc_reserve_resp, dec_reserve_resp},
	[DJMFS_OP_PUBLISH] = {"PUBLISH", enc_publish_req, dec_publish_req,
			      enc_publish_resp, dec_publish_resp},
	[DJMFS_OP_SYNC_SNAP] = {"SYNC_SNAP", enc_sync_snap_req,
				dec_sync_snap_req, enc_snap_resp,
				dec_snap_resp},
	[DJMFS_OP_LOCK_SNAP] = {"LOCK_SNAP", enc_lock_snap_req,
				dec_lock_snap_req, enc_snap_resp,
				dec_snap_resp},
	[DJMFS_OP_UNLOCK_SNAP] = {"UNLOCK_SNAP", enc_handle_req,
				  dec_handle_req, NULL, NULL},
	[DJMFS_OP_UNLINK] = {"UNLINK", enc_name_req, dec_name_req, NULL, NULL},
	[DJMFS_OP_LIST] = {"LIST", enc_list_req, dec_list_req, enc_list_resp,
			   dec_list_resp},
	[DJMFS_OP_STAT] = {"STAT", enc_name_req, dec_name_req, enc_stat_resp,
			   dec_stat_resp},
	[DJMFS_OP_DF] = {"DF", NULL, NULL, enc_df_resp, dec_df_resp},
	[DJMFS_OP_STATS] = {"STATS", NULL, NULL, enc_stats_resp,
			    dec_stats_resp},
	[DJMFS_OP_CHALLENGE] = {"CHALLENGE", enc_challenge_req,
				dec_challenge_req, enc_challenge_resp,
				dec_challenge_resp},
	[DJMFS_OP_TRIM] = {"TRIM", enc_trim_req, dec_trim_req, enc_trim_resp,
			   dec_trim_resp},
};

static const struct op_codec *codec_of(unsigned op)
{
	if (op >= DJMFS_OP_MAX || !op_codecs[op].name)
		return NULL;
	return &op_codecs[op];
}

const char *djmfs__op_name(unsigned op)
{
	const struct op_codec *oc = codec_of(op);

	return oc ? oc->name : "?";
}

int djmfs__hdr_decode(const uint8_t *p, size_t n, struct djmfs__hdr *h)
{
	struct djmfs__cur c;
	uint16_t magic, flags;
	uint8_t version;

	if (n < DJMFS_HDR_SIZE)
		return -EBADMSG;
	djmfs__cur_init(&c, p, DJMFS_HDR_SIZE);
	h->len = djmfs__get_u32(&c);
	magic = djmfs__get_u16(&c);
	version = djmfs__get_u8(&c);
	h->kind = djmfs__get_u8(&c);
	h->op = djmfs__get_u16(&c);
	flags = djmfs__get_u16(&c);
	h->id = djmfs__get_u32(&c);
	if (magic != DJMFS_FRAME_MAGIC)
		return -EBADMSG;
	/* Checked after the magic: only a DJMFS peer of another version
	 * deserves -EPROTO (an answer), not line noise. */
	if (version != DJMFS_PROTO_VERSION)
		return -EPROTO;
	if (h->kind > DJMFS_RESP || flags != 0 || !codec_of(h->op) ||
	    h->len > DJMFS_FRAME_MAX)
		return -EBADMSG;
	return 0;
}

static void dec_status(struct djmfs__cur *c, struct djmfs__msg *m)
{
	m->status = (int32_t)djmfs__get_u32(c);
	if (m->status > 0 || m->status < STATUS_MIN)
		bad(c);
}

int djmfs__msg_decode(const uint8_t *frame, size_t n, struct djmfs__msg *m)
{
	const struct op_codec *oc;
	struct djmfs__cur c;
	dec_fn dec;
	int err;

	memset(m, 0, sizeof(*m));
	err = djmfs__hdr_decode(frame, n, &m->h);
	if (err)
		return err;
	if (n - DJMFS_HDR_SIZE != m->h.len)
		return -EBADMSG;
	oc = codec_of(m->h.op);
	djmfs__cur_init(&c, frame + DJMFS_HDR_SIZE, m->h.len);
	dec = m->h.kind == DJMFS_REQ ? oc->dec_req : oc->dec_resp;
	if (m->h.kind == DJMFS_RESP)
		dec_status(&c, m);
	if (dec && !c.err && m->status == 0)
		dec(&c, m);
	if (c.err || djmfs__cur_left(&c) != 0)
		return -EBADMSG;
	return 0;
}

static int enc_body(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	const struct op_codec *oc = codec_of(m->h.op);
	enc_fn enc;

	if (!oc || m->h.kind > DJMFS_RESP)
		return -EINVAL;
	if (m->h.kind == DJMFS_REQ) {
		enc = oc->enc_req;
	} else {
		if (m->status > 0 || m->status < STATUS_MIN)
			return -EINVAL;
		djmfs__put_u32(b, (uint32_t)m->status);
		enc = m->status == 0 ? oc->enc_resp : NULL;
	}
	return enc ? enc(b, m) : 0;
}

int djmfs__msg_encode(struct djmfs__buf *b, const struct djmfs__msg *m)
{
	size_t start = b->len;
	size_t len;
	int err;

	if (b->err)
		return b->err;
	djmfs__put_u32(b, 0); /* len, patched below */
	djmfs__put_u16(b, DJMFS_FRAME_MAGIC);
	djmfs__put_u8(b, DJMFS_PROTO_VERSION);
	djmfs__put_u8(b, m->h.kind);
	djmfs__put_u16(b, m->h.op);
	djmfs__put_u16(b, 0);
	djmfs__put_u32(b, m->h.id);
	err = enc_body(b, m);
	if (!err)
		err = b->err;
	len = b->len - start - DJMFS_HDR_SIZE;
	if (!err && len > DJMFS_FRAME_MAX)
		err = -EMSGSIZE;
	if (err)
		goto fail;
	djmfs__patch_u32(b, start, (uint32_t)len);
	return 0;
fail:
	/* Nothing of a refused frame stays, and the buffer is usable again:
	 * what precedes @start is intact even after a failed realloc. */
	b->len = start;
	b->err = 0;
	return err;
}
