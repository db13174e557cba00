/*
 * Tests of the journal record codec (djmfs_jrec.c): every record type
 * round-trips byte for byte, the CRC is tied to the volume's seed and
 * catches any single flipped bit, and replay can tell the end of the log
 * (a zeroed or short area: -ENODATA) from damage (-EBADMSG).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_store.h"

#define SEED 0x5EED1234u

static struct djmfs__buf run_bytes, ext_bytes, ck_bytes;
static uint8_t meta_bytes[64];

static void samples_init(void)
{
	djmfs__buf_init(&run_bytes);
	djmfs__buf_init(&ext_bytes);
	djmfs__buf_init(&ck_bytes);
	for (unsigned i = 0; i < 48; i++)
		djmfs__put_u32(&ck_bytes, 0x9e3779b9u * (i + 1));
	for (unsigned i = 0; i < 4; i++)
		djmfs__put_run(&run_bytes, 1000 + 10 * i, 2 * i + 1);
	for (unsigned i = 0; i < 3; i++)
		djmfs__put_ext(&ext_bytes, (64ull + i) << 20, 1 << 20);
	for (unsigned i = 0; i < sizeof(meta_bytes); i++)
		meta_bytes[i] = (uint8_t)(255 - i);
	cr_assert_eq(run_bytes.err + ext_bytes.err, 0);
}

static void samples_fini(void)
{
	djmfs__buf_free(&run_bytes);
	djmfs__buf_free(&ext_bytes);
	djmfs__buf_free(&ck_bytes);
}

/* The type a record of volume type @t decodes as: a PUBLISH with sums
 * is a PUBLISH whose has_ck is set. */
static unsigned rec_type(unsigned t)
{
	return t == DJMFS_J_PUBLISH_CK ? DJMFS_J_PUBLISH : t;
}

/* One representative record of volume type @type (zeroed first, so
 * padding is 0): PUBLISH_CK is a PUBLISH with sums. */
static void sample(struct djmfs__jrec *r, unsigned type)
{
	memset(r, 0, sizeof(*r));
	r->epoch = 3;
	r->seq = 100 + type;
	r->type = (uint16_t)rec_type(type);
	r->ino = 17;
	r->time_ns = 1700000000123456789ull;
	if (type == DJMFS_J_FILE_CREATE)
		strcpy(r->u.create.name, "studio/cam2");
	if (type >= DJMFS_J_OBJ_CREATE && type <= DJMFS_J_OBJ_SETATTR) {
		r->u.obj.obj_id = 5;
		if (type != DJMFS_J_OBJ_DELETE)
			r->u.obj.attrs = DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC;
		if (type == DJMFS_J_OBJ_CREATE)
			strcpy(r->u.obj.name, "video");
	}
	if (rec_type(type) == DJMFS_J_PUBLISH) {
		struct djmfs__publish *p = &r->u.publish;

		p->base_version = 41;
		p->n_objs = 2;
		p->objs[0].obj_id = 1;
		p->objs[0].size = sizeof(meta_bytes);
		p->objs[0].has_meta = 1;
		p->objs[0].meta = meta_bytes;
		p->objs[0].meta_len = sizeof(meta_bytes);
		p->objs[1].obj_id = 2;
		p->objs[1].size = 3 << 20;
		p->objs[1].ext.p = ext_bytes.p;
		p->objs[1].ext.n = 3;
		if (type == DJMFS_J_PUBLISH_CK) {
			p->has_ck = 1;
			p->objs[1].size += 1000;
			p->objs[1].ck_first = 0;
			p->objs[1].ck.p = ck_bytes.p;
			p->objs[1].ck.n = 48;
			p->objs[1].last_ck = 0xabcdef01u;
		}
	}
	if (type == DJMFS_J_RESERVE || type == DJMFS_J_RELEASE) {
		r->u.runs.p = run_bytes.p;
		r->u.runs.n = 4;
	}
	if (type == DJMFS_J_QUARANTINE)
		strcpy(r->u.quarantine.why, "extent 3 overlaps file 9");
	if (type == DJMFS_J_TRIM) {
		r->u.trim.obj_id = 5;
		r->u.trim.start = (7ull << 32) + 12345;
	}
}

static void assert_same_rec(const struct djmfs__jrec *a,
			    const struct djmfs__jrec *b)
{
	static struct djmfs__jrec x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	if (x.type == DJMFS_J_PUBLISH) {
		for (unsigned i = 0; i < DJMFS_MAX_OBJS; i++) {
			struct djmfs__pub_obj *o = &x.u.publish.objs[i];
			struct djmfs__pub_obj *q = &y.u.publish.objs[i];

			cr_assert_eq(o->ext.n, q->ext.n);
			cr_assert_eq(o->ck.n, q->ck.n);
			cr_assert_eq(o->meta_len, q->meta_len);
			if (o->ext.n)
				cr_assert_eq(memcmp(o->ext.p, q->ext.p,
						    o->ext.n * DJMFS_EXT_WIRE), 0);
			if (o->ck.n)
				cr_assert_eq(memcmp(o->ck.p, q->ck.p,
						    o->ck.n * DJMFS_CK_WIRE), 0);
			o->ck.p = q->ck.p = NULL;
			if (o->meta_len)
				cr_assert_eq(memcmp(o->meta, q->meta,
						    o->meta_len), 0);
			o->ext.p = q->ext.p = NULL;
			o->meta = q->meta = NULL;
		}
	}
	if (x.type == DJMFS_J_RESERVE || x.type == DJMFS_J_RELEASE) {
		cr_assert_eq(x.u.runs.n, y.u.runs.n);
		cr_assert_eq(memcmp(x.u.runs.p, y.u.runs.p,
				    x.u.runs.n * DJMFS_RUN_WIRE), 0);
		x.u.runs.p = y.u.runs.p = NULL;
	}
	cr_assert_eq(memcmp(&x, &y, sizeof(x)), 0, "%s fields differ",
		     djmfs__jtype_name(x.type));
}

static void encode(const struct djmfs__jrec *r, uint32_t seed,
		   struct djmfs__buf *b)
{
	djmfs__buf_init(b);
	cr_assert_eq(djmfs__jrec_encode(b, seed, r), 0, "encode %s",
		     djmfs__jtype_name(r->type));
}

/* Decodes from a copy of exactly @n bytes, so ASan sees any over-read. */
static int decode_exact(const uint8_t *p, size_t n, uint32_t seed,
			size_t *used)
{
	static struct djmfs__jrec r;
	uint8_t *copy = malloc(n ? n : 1);
	size_t u = 0;
	int ret;

	cr_assert_not_null(copy);
	memcpy(copy, p, n);
	ret = djmfs__jrec_decode(copy, n, seed, &r, &u);
	free(copy);
	if (used)
		*used = u;
	return ret;
}

/* Recomputes the CRC after a test has edited a record on purpose. */
static void reseal(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t crc = djmfs__crc32c(seed, p + 8, n - 8);

	for (unsigned i = 0; i < 4; i++)
		p[4 + i] = (uint8_t)(crc >> (8 * i));
}

TestSuite(jrec, .init = samples_init, .fini = samples_fini);

Test(jrec, every_type_round_trips)
{
	static struct djmfs__jrec r, d;
	struct djmfs__buf a, b;
	size_t used;

	for (unsigned t = 1; t < DJMFS_J_MAX; t++) {
		sample(&r, t);
		encode(&r, SEED, &a);
		cr_assert_eq(djmfs__le32(a.p), a.len - DJMFS_JREC_HDR);
		used = 0;
		cr_assert_eq(djmfs__jrec_decode(a.p, a.len, SEED, &d, &used), 0,
			     "decode %s", djmfs__jtype_name(t));
		cr_assert_eq(used, a.len);
		assert_same_rec(&r, &d);
		encode(&d, SEED, &b);
		cr_assert_eq(a.len, b.len);
		cr_assert_eq(memcmp(a.p, b.p, a.len), 0);
		djmfs__buf_free(&a);
		djmfs__buf_free(&b);
	}
}

Test(jrec, a_publish_with_sums_has_its_own_type_and_the_first_format_stays)
{
	static struct djmfs__jrec r, d;
	struct djmfs__buf a, b;
	size_t used;

	/* With sums: written as PUBLISH_CK, read back as a PUBLISH. */
	sample(&r, DJMFS_J_PUBLISH_CK);
	encode(&r, SEED, &a);
	cr_assert_eq(djmfs__le32(a.p + 24) & 0xffff, DJMFS_J_PUBLISH_CK);
	cr_assert_eq(decode_exact(a.p, a.len, SEED, &used), 0);
	cr_assert_eq(djmfs__jrec_decode(a.p, a.len, SEED, &d, &used), 0);
	cr_assert_eq(d.type, DJMFS_J_PUBLISH);
	cr_assert_eq(d.u.publish.has_ck, 1);
	cr_assert_eq(d.u.publish.objs[1].ck.n, 48);
	cr_assert_eq(djmfs__ckv_at(d.u.publish.objs[1].ck, 47),
		     0x9e3779b9u * 48);
	cr_assert_eq(d.u.publish.objs[1].last_ck, 0xabcdef01u);
	/* The first format (as written before sums): type PUBLISH, the
	 * objects end with has_meta; it still decodes, without sums. */
	sample(&r, DJMFS_J_PUBLISH);
	encode(&r, SEED, &b);
	cr_assert_eq(djmfs__le32(b.p + 24) & 0xffff, DJMFS_J_PUBLISH);
	cr_assert_eq(b.len, a.len - 2 * 12 - 48 * 4);
	cr_assert_eq(djmfs__jrec_decode(b.p, b.len, SEED, &d, &used), 0);
	cr_assert_eq(d.type, DJMFS_J_PUBLISH);
	cr_assert_eq(d.u.publish.has_ck, 0);
	cr_assert_eq(d.u.publish.objs[1].size, 3 << 20);
	/* A record cannot ask for the volume type itself. */
	r.type = DJMFS_J_PUBLISH_CK;
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	djmfs__buf_free(&a);
	djmfs__buf_free(&b);
}

Test(jrec, a_trim_is_type_11_with_its_object_and_start)
{
	static struct djmfs__jrec r, d;
	struct djmfs__buf a;
	size_t used;

	sample(&r, DJMFS_J_TRIM);
	encode(&r, SEED, &a);
	cr_assert_eq(DJMFS_J_TRIM, 11);
	cr_assert_eq(djmfs__le32(a.p + 24) & 0xffff, 11);
	/* ino, time, then u32 obj_id and u64 start. */
	cr_assert_eq(a.len, DJMFS_JREC_HDR + 16 + 4 + 8);
	cr_assert_eq(djmfs__le32(a.p + DJMFS_JREC_HDR + 16), 5);
	cr_assert_eq(djmfs__le64(a.p + DJMFS_JREC_HDR + 20),
		     (7ull << 32) + 12345);
	cr_assert_eq(djmfs__jrec_decode(a.p, a.len, SEED, &d, &used), 0);
	cr_assert_eq(d.type, DJMFS_J_TRIM);
	cr_assert_eq(d.u.trim.obj_id, 5);
	cr_assert_eq(d.u.trim.start, (7ull << 32) + 12345);
	cr_assert_str_eq(djmfs__jtype_name(DJMFS_J_TRIM), "TRIM");
	/* Short by one byte of its start: malformed. */
	djmfs__patch_u32(&a, 0, (uint32_t)(a.len - 1 - DJMFS_JREC_HDR));
	a.len--;
	reseal(a.p, a.len, SEED);
	cr_assert_eq(decode_exact(a.p, a.len, SEED, NULL), -EBADMSG);
	djmfs__buf_free(&a);
}

Test(jrec, type_names_cover_every_type)
{
	cr_assert_str_eq(djmfs__jtype_name(DJMFS_J_PUBLISH), "PUBLISH");
	cr_assert_str_eq(djmfs__jtype_name(0), "?");
	cr_assert_str_eq(djmfs__jtype_name(DJMFS_J_MAX), "?");
	for (unsigned t = 1; t < DJMFS_J_MAX; t++)
		cr_assert_str_neq(djmfs__jtype_name(t), "?");
}

Test(jrec, another_seed_fails_the_crc)
{
	static struct djmfs__jrec r;
	struct djmfs__buf b;

	for (unsigned t = 1; t < DJMFS_J_MAX; t++) {
		sample(&r, t);
		encode(&r, SEED, &b);
		cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), 0);
		cr_assert_eq(decode_exact(b.p, b.len, SEED ^ 1, NULL), -EBADMSG);
		cr_assert_eq(decode_exact(b.p, b.len, 0, NULL), -EBADMSG);
		djmfs__buf_free(&b);
	}
}

/*
 * Every single-bit flip is caught.  The record sits at the start of an
 * area large enough for any length a flip in its len field can produce,
 * so such a flip is judged by the CRC rather than reported as a short
 * read.
 */
Test(jrec, any_flipped_bit_is_caught)
{
	static struct djmfs__jrec r;
	size_t area_len = DJMFS_JREC_HDR + DJMFS_JREC_MAX;
	uint8_t *area = calloc(1, area_len);
	struct djmfs__buf b;
	size_t used;

	cr_assert_not_null(area);
	for (unsigned t = 1; t < DJMFS_J_MAX; t++) {
		sample(&r, t);
		encode(&r, SEED, &b);
		memcpy(area, b.p, b.len);
		for (size_t bit = 0; bit < b.len * 8; bit++) {
			area[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			cr_assert_eq(djmfs__jrec_decode(area, area_len, SEED, &r,
							&used),
				     -EBADMSG, "%s bit %zu", djmfs__jtype_name(t),
				     bit);
			area[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		memset(area, 0, b.len);
		djmfs__buf_free(&b);
	}
	free(area);
}

Test(jrec, truncation_reads_as_no_data)
{
	static struct djmfs__jrec r;
	struct djmfs__buf b;

	for (unsigned t = 1; t < DJMFS_J_MAX; t++) {
		sample(&r, t);
		encode(&r, SEED, &b);
		for (size_t n = 0; n < b.len; n++)
			cr_assert_eq(decode_exact(b.p, n, SEED, NULL), -ENODATA,
				     "%s cut at %zu", djmfs__jtype_name(t), n);
		djmfs__buf_free(&b);
	}
}

Test(jrec, zeroed_area_reads_as_no_data)
{
	uint8_t zero[4096] = {0};

	cr_assert_eq(decode_exact(zero, sizeof(zero), SEED, NULL), -ENODATA);
	cr_assert_eq(decode_exact(zero, DJMFS_JREC_HDR, SEED, NULL), -ENODATA);
}

Test(jrec, records_decode_in_sequence)
{
	static struct djmfs__jrec r;
	struct djmfs__buf b;
	size_t ends[DJMFS_J_MAX];
	size_t off = 0, used;
	unsigned t;

	djmfs__buf_init(&b);
	for (t = 1; t < DJMFS_J_MAX; t++) {
		sample(&r, t);
		cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), 0);
		ends[t] = b.len;
	}
	/* Followed by a zeroed tail, as in a journal area. */
	for (unsigned i = 0; i < 512; i++)
		djmfs__put_u8(&b, 0);
	for (t = 1; t < DJMFS_J_MAX; t++) {
		cr_assert_eq(djmfs__jrec_decode(b.p + off, b.len - off, SEED, &r,
						&used),
			     0);
		cr_assert_eq(r.type, rec_type(t));
		cr_assert_eq(r.seq, 100 + t);
		cr_assert_eq(off + used, ends[t]);
		off += used;
	}
	cr_assert_eq(djmfs__jrec_decode(b.p + off, b.len - off, SEED, &r,
					&used),
		     -ENODATA);
	djmfs__buf_free(&b);
}

Test(jrec, well_sealed_but_malformed_records_are_refused)
{
	static struct djmfs__jrec r;
	struct djmfs__buf b;

	/* Unknown type. */
	sample(&r, DJMFS_J_FILE_UNLINK);
	encode(&r, SEED, &b);
	b.p[24] = DJMFS_J_MAX;
	reseal(b.p, b.len, SEED);
	cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), -EBADMSG);
	/* Reserved header fields not zero. */
	b.p[24] = DJMFS_J_FILE_UNLINK;
	b.p[28] = 1;
	reseal(b.p, b.len, SEED);
	cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), -EBADMSG);
	b.p[28] = 0;
	reseal(b.p, b.len, SEED);
	cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), 0);
	/* A trailing payload byte. */
	djmfs__put_u8(&b, 0);
	djmfs__patch_u32(&b, 0, (uint32_t)(b.len - DJMFS_JREC_HDR));
	reseal(b.p, b.len, SEED);
	cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), -EBADMSG);
	djmfs__buf_free(&b);
	/* A run count larger than the payload. */
	sample(&r, DJMFS_J_RESERVE);
	encode(&r, SEED, &b);
	djmfs__patch_u32(&b, DJMFS_JREC_HDR + 16, 0x40000000);
	reseal(b.p, b.len, SEED);
	cr_assert_eq(decode_exact(b.p, b.len, SEED, NULL), -EBADMSG);
	djmfs__buf_free(&b);
}

Test(jrec, impossible_length_is_damage_not_a_short_read)
{
	uint8_t hdr[DJMFS_JREC_HDR] = {0};

	hdr[0] = 0xff;
	hdr[1] = 0xff;
	hdr[2] = 0xff;
	hdr[3] = 0xff;
	cr_assert_eq(decode_exact(hdr, sizeof(hdr), SEED, NULL), -EBADMSG);
}

Test(jrec, encoder_refuses_bad_records_and_keeps_the_buffer)
{
	static struct djmfs__jrec r;
	struct djmfs__buf b;

	djmfs__buf_init(&b);
	djmfs__put_u32(&b, 0xfeedface);
	sample(&r, DJMFS_J_FILE_CREATE);
	r.u.create.name[0] = '\0';
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	memset(r.u.create.name, 'x', sizeof(r.u.create.name));
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	sample(&r, DJMFS_J_MAX);
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	sample(&r, DJMFS_J_PUBLISH);
	r.u.publish.n_objs = DJMFS_MAX_OBJS + 1;
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	sample(&r, DJMFS_J_OBJ_CREATE);
	memset(r.u.obj.name, 'o', sizeof(r.u.obj.name));
	cr_assert_eq(djmfs__jrec_encode(&b, SEED, &r), -EINVAL);
	cr_assert_eq(b.len, 4);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(djmfs__le32(b.p), 0xfeedface);
	djmfs__buf_free(&b);
}
