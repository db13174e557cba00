/*
 * Journal records: the byte form of every metadata mutation the server
 * makes durable, and the decoder replay and fsck trust to tell a record
 * from the end of the log, a torn write, or stale bytes of an older epoch.
 * A record is a 32-byte header and a typed payload (layouts in
 * djmfs_store.h); its CRC-32C is seeded with the volume's uuid CRC and
 * covers everything after the crc field, so a record only passes on the
 * volume, and in the exact bytes, it was written for.  Each type's
 * payload codec is a row in a static table; the PUBLISH payload shares its
 * body codec with the wire (djmfs_codec.h).
 */
#include <errno.h>
#include <string.h>

#include "djmfs_store.h"
#include "djmfs_codec.h"

/* Offset of the bytes the CRC covers: everything after the crc field. */
#define JREC_CRC_FROM 8

typedef int (*jenc_fn)(struct djmfs__buf *b, const struct djmfs__jrec *r);
typedef void (*jdec_fn)(struct djmfs__cur *c, struct djmfs__jrec *r);

/* A string the encoder may write: NUL-terminated within its array. */
static int str_ok(const char *s, size_t arrsz, int allow_empty)
{
	size_t n = strnlen(s, arrsz);

	return n < arrsz && (n > 0 || allow_empty);
}

static int enc_file_create(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	if (!str_ok(r->u.create.name, sizeof(r->u.create.name), 0))
		return -EINVAL;
	djmfs__put_str(b, r->u.create.name);
	return 0;
}

static void dec_file_create(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	djmfs__get_str(c, r->u.create.name, sizeof(r->u.create.name), 0);
}

static int enc_obj_id(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	djmfs__put_u32(b, r->u.obj.obj_id);
	return 0;
}

static void dec_obj_id(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	r->u.obj.obj_id = djmfs__get_u32(c);
}

static int enc_obj_setattr(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	djmfs__put_u32(b, r->u.obj.obj_id);
	djmfs__put_u32(b, r->u.obj.attrs);
	return 0;
}

static void dec_obj_setattr(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	r->u.obj.obj_id = djmfs__get_u32(c);
	r->u.obj.attrs = djmfs__get_u32(c);
}

static int enc_obj_create(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	if (!str_ok(r->u.obj.name, sizeof(r->u.obj.name), 0))
		return -EINVAL;
	enc_obj_setattr(b, r);
	djmfs__put_str(b, r->u.obj.name);
	return 0;
}

static void dec_obj_create(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	dec_obj_setattr(c, r);
	djmfs__get_str(c, r->u.obj.name, sizeof(r->u.obj.name), 0);
}

static int enc_publish(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	const struct djmfs__publish *p = &r->u.publish;

	/* A publish too big for a frame could never have been requested. */
	return djmfs__enc_publish(b, p, p->has_ck) ? -EINVAL : 0;
}

/* A PUBLISH of the first format: no sums (its objects' sums stop). */
static void dec_publish(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	djmfs__dec_publish(c, &r->u.publish, 0);
}

static void dec_publish_ck(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	djmfs__dec_publish(c, &r->u.publish, 1);
}

static int enc_runs(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	size_t n = (size_t)r->u.runs.n * DJMFS_RUN_WIRE;

	if (n > DJMFS_JREC_MAX)
		return -EINVAL;
	djmfs__put_u32(b, r->u.runs.n);
	djmfs__put_bytes(b, r->u.runs.p, n);
	return 0;
}

static void dec_runs(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	r->u.runs.n = djmfs__get_u32(c);
	if ((uint64_t)r->u.runs.n * DJMFS_RUN_WIRE > djmfs__cur_left(c)) {
		c->err = -EBADMSG;
		return;
	}
	r->u.runs.p = djmfs__get_bytes(c, (size_t)r->u.runs.n * DJMFS_RUN_WIRE);
}

static int enc_quarantine(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	if (!str_ok(r->u.quarantine.why, sizeof(r->u.quarantine.why), 1))
		return -EINVAL;
	djmfs__put_str(b, r->u.quarantine.why);
	return 0;
}

static void dec_quarantine(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	djmfs__get_str(c, r->u.quarantine.why, sizeof(r->u.quarantine.why), 1);
}

static int enc_trim(struct djmfs__buf *b, const struct djmfs__jrec *r)
{
	djmfs__put_u32(b, r->u.trim.obj_id);
	djmfs__put_u64(b, r->u.trim.start);
	return 0;
}

static void dec_trim(struct djmfs__cur *c, struct djmfs__jrec *r)
{
	r->u.trim.obj_id = djmfs__get_u32(c);
	r->u.trim.start = djmfs__get_u64(c);
}

/* Every payload starts with u64 ino | u64 time_ns; these codecs do the
 * rest.  NULL: nothing follows. */
struct jtype_codec {
	const char *name;
	jenc_fn enc;
	jdec_fn dec;
};

static const struct jtype_codec jtypes[DJMFS_J_MAX] = {
	[DJMFS_J_FILE_CREATE] = {"FILE_CREATE", enc_file_create,
				 dec_file_create},
	[DJMFS_J_FILE_UNLINK] = {"FILE_UNLINK", NULL, NULL},
	[DJMFS_J_OBJ_CREATE] = {"OBJ_CREATE", enc_obj_create, dec_obj_create},
	[DJMFS_J_OBJ_DELETE] = {"OBJ_DELETE", enc_obj_id, dec_obj_id},
	[DJMFS_J_OBJ_SETATTR] = {"OBJ_SETATTR", enc_obj_setattr,
				 dec_obj_setattr},
	[DJMFS_J_PUBLISH] = {"PUBLISH", enc_publish, dec_publish},
	[DJMFS_J_RESERVE] = {"RESERVE", enc_runs, dec_runs},
	[DJMFS_J_RELEASE] = {"RELEASE", enc_runs, dec_runs},
	[DJMFS_J_QUARANTINE] = {"QUARANTINE", enc_quarantine, dec_quarantine},
	[DJMFS_J_PUBLISH_CK] = {"PUBLISH", enc_publish, dec_publish_ck},
	[DJMFS_J_TRIM] = {"TRIM", enc_trim, dec_trim},
};

/* The type a record is written with: a PUBLISH with sums has its own, so
 * records of the first format (type PUBLISH, no sums) stay readable. */
static uint16_t disk_type(const struct djmfs__jrec *r)
{
	if (r->type == DJMFS_J_PUBLISH && r->u.publish.has_ck)
		return DJMFS_J_PUBLISH_CK;
	return r->type;
}

static const struct jtype_codec *jcodec_of(unsigned type)
{
	if (type >= DJMFS_J_MAX || !jtypes[type].name)
		return NULL;
	return &jtypes[type];
}

const char *djmfs__jtype_name(unsigned type)
{
	const struct jtype_codec *jc = jcodec_of(type);

	return jc ? jc->name : "?";
}

/* Checks the header fields after the CRC, then decodes the payload. */
static int jrec_body(const uint8_t *p, uint32_t len, struct djmfs__jrec *r)
{
	const struct jtype_codec *jc;
	struct djmfs__cur c;

	djmfs__cur_init(&c, p + JREC_CRC_FROM, DJMFS_JREC_HDR - JREC_CRC_FROM);
	r->epoch = djmfs__get_u64(&c);
	r->seq = djmfs__get_u64(&c);
	r->type = djmfs__get_u16(&c);
	if (djmfs__get_u16(&c) != 0 || djmfs__get_u32(&c) != 0)
		return -EBADMSG;
	jc = jcodec_of(r->type);
	if (!jc)
		return -EBADMSG;
	djmfs__cur_init(&c, p + DJMFS_JREC_HDR, len);
	r->ino = djmfs__get_u64(&c);
	r->time_ns = djmfs__get_u64(&c);
	if (jc->dec && !c.err)
		jc->dec(&c, r);
	if (c.err || djmfs__cur_left(&c) != 0)
		return -EBADMSG;
	/* Callers see one PUBLISH; has_ck tells the formats apart. */
	if (r->type == DJMFS_J_PUBLISH_CK)
		r->type = DJMFS_J_PUBLISH;
	return 0;
}

int djmfs__jrec_decode(const uint8_t *p, size_t avail, uint32_t seed,
		       struct djmfs__jrec *r, size_t *used)
{
	uint32_t len, crc;
	int err;

	memset(r, 0, sizeof(*r));
	if (avail < DJMFS_JREC_HDR)
		return -ENODATA;
	len = djmfs__le32(p);
	crc = djmfs__le32(p + 4);
	/* A never-written (zeroed) area is the end of the log, not damage. */
	if (len == 0 && crc == 0)
		return -ENODATA;
	if (len > DJMFS_JREC_MAX)
		return -EBADMSG;
	if (avail - DJMFS_JREC_HDR < len)
		return -ENODATA;
	if (djmfs__crc32c(seed, p + JREC_CRC_FROM,
			  DJMFS_JREC_HDR - JREC_CRC_FROM + (size_t)len) != crc)
		return -EBADMSG;
	err = jrec_body(p, len, r);
	if (err)
		return err;
	*used = DJMFS_JREC_HDR + (size_t)len;
	return 0;
}

int djmfs__jrec_encode(struct djmfs__buf *b, uint32_t seed,
		       const struct djmfs__jrec *r)
{
	const struct jtype_codec *jc = jcodec_of(r->type);
	uint16_t type = disk_type(r);
	size_t start = b->len;
	size_t len;
	uint32_t crc;
	int err = 0;

	if (b->err)
		return b->err;
	if (!jc || r->type == DJMFS_J_PUBLISH_CK)
		return -EINVAL;
	djmfs__put_u32(b, 0); /* len and crc, patched below */
	djmfs__put_u32(b, 0);
	djmfs__put_u64(b, r->epoch);
	djmfs__put_u64(b, r->seq);
	djmfs__put_u16(b, type);
	djmfs__put_u16(b, 0);
	djmfs__put_u32(b, 0);
	djmfs__put_u64(b, r->ino);
	djmfs__put_u64(b, r->time_ns);
	if (jc->enc)
		err = jc->enc(b, r);
	if (!err)
		err = b->err;
	if (err)
		goto fail;
	len = b->len - start - DJMFS_JREC_HDR;
	if (len > DJMFS_JREC_MAX) {
		err = -EINVAL;
		goto fail;
	}
	djmfs__patch_u32(b, start, (uint32_t)len);
	crc = djmfs__crc32c(seed, b->p + start + JREC_CRC_FROM,
			    DJMFS_JREC_HDR - JREC_CRC_FROM + len);
	djmfs__patch_u32(b, start + 4, crc);
	return 0;
fail:
	/* Nothing of a refused record stays; what precedes it is intact. */
	b->len = start;
	b->err = 0;
	return err;
}
