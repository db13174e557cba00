/*
 * Tests of the protocol codecs (djmfs_wire.c, djmfs_buf.c, djmfs_crc.c):
 * every op round-trips in both directions byte for byte, error responses
 * carry only their status, and every malformed frame we can think of --
 * truncations, lying counts, bad strings, trailing bytes, random noise --
 * is refused with -EBADMSG (or -EPROTO for another version) without
 * touching memory outside the frame (run under ASan to see that).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_proto.h"

/* ---------------------------------------------------------------- */
/* Sample messages                                                   */
/* ---------------------------------------------------------------- */

/* Backing bytes for the views in sample messages; built once. */
static struct djmfs__buf ext_bytes, run_bytes, list_bytes, ck_bytes;
static uint8_t meta_bytes[300];

static void samples_init(void)
{
	struct djmfs__list_entry e;

	djmfs__buf_init(&ext_bytes);
	djmfs__buf_init(&run_bytes);
	djmfs__buf_init(&list_bytes);
	djmfs__buf_init(&ck_bytes);
	for (unsigned i = 0; i < 40; i++)
		djmfs__put_u32(&ck_bytes, 0x01000193u * (i + 7));
	for (unsigned i = 0; i < 6; i++)
		djmfs__put_ext(&ext_bytes, 1048576ull * (i + 3), 65536 * (i + 1));
	for (unsigned i = 0; i < 3; i++)
		djmfs__put_run(&run_bytes, 100 + 7 * i, i + 1);
	for (unsigned i = 0; i < 3; i++) {
		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "cam%u/rec", i);
		e.ino = 10 + i;
		e.size = 1000 * i;
		e.version = 5 + i;
		e.flags = i & 1;
		e.mtime_ns = 123456789ull * i;
		djmfs__put_list_entry(&list_bytes, &e);
	}
	for (unsigned i = 0; i < sizeof(meta_bytes); i++)
		meta_bytes[i] = (uint8_t)(i * 7 + 1);
	cr_assert_eq(ext_bytes.err + run_bytes.err + list_bytes.err +
		     ck_bytes.err, 0);
}

static void samples_fini(void)
{
	djmfs__buf_free(&ext_bytes);
	djmfs__buf_free(&run_bytes);
	djmfs__buf_free(&list_bytes);
	djmfs__buf_free(&ck_bytes);
}

static void set_cks(struct djmfs__ckv *v, uint32_t n)
{
	v->p = ck_bytes.p;
	v->n = n;
}

/* Fields are set one by one: a struct assignment may carry garbage
 * padding into messages that the tests compare with memcmp. */
static void set_exts(struct djmfs__extv *v, uint32_t n)
{
	v->p = ext_bytes.p;
	v->n = n;
}

static void fill_snap(struct djmfs__snap *s, int stat)
{
	s->ino = 42;
	strcpy(s->name, "studio/cam1");
	s->version = 9;
	s->flags = DJMFS_FILE_WRITE_LOCKED;
	s->ctime_ns = 1700000000000000000ull;
	s->mtime_ns = 1700000000500000000ull;
	s->n_objs = 3;
	for (unsigned i = 0; i < 3; i++) {
		struct djmfs__snap_obj *o = &s->objs[i];

		o->id = i + 1;
		snprintf(o->name, sizeof(o->name), "obj%u", i);
		o->attrs = i == 0 ? DJMFS_ATTR_META : DJMFS_ATTR_DATA;
		o->size = i == 0 ? 100 : 65536 * (i + 2);
		o->ext_total = i == 0 ? 0 : 6;
		o->ext_base = i == 0 ? 0 : (stat ? 6 : 6 - 2 * i);
		set_exts(&o->ext, i == 0 || stat ? 0 : 2 * i);
		if (i == 2) { /* trimmed: its map from extent 2 */
			o->start = 2 * 65536 + 5;
			o->ext_first = 2;
			o->first_at = 65536;
		}
		if (i > 0) {
			o->ck_flags = i == 2 ? DJMFS_OBJ_CK_GAP : 0;
			o->ck_base = stat ? i + 2 : i;
			set_cks(&o->ck, stat ? 0 : 2);
			o->last_ck = 0xfeed0000u + i;
		}
		if (i == 0 && !stat) {
			o->meta = meta_bytes;
			o->meta_len = 100;
		}
	}
}

static void fill_publish(struct djmfs__publish *p)
{
	p->base_version = 8;
	p->n_objs = 2;
	p->objs[0].obj_id = 1;
	p->objs[0].size = 300;
	p->objs[0].has_meta = 1;
	p->objs[0].meta = meta_bytes;
	p->objs[0].meta_len = 300;
	p->objs[1].obj_id = 2;
	p->objs[1].size = 5 * 65536 + 10;
	set_exts(&p->objs[1].ext, 4);
	p->has_ck = 1; /* what every wire PUBLISH decodes with */
	p->objs[1].ck_first = 1;
	set_cks(&p->objs[1].ck, 4);
	p->objs[1].last_ck = 0x12345678u;
}

/* A HELLO that carries a proof of the shared secret. */
static void req_hello(struct djmfs__msg *m)
{
	m->u.hello_req.proto = DJMFS_PROTO_VERSION;
	m->u.hello_req.lease_ms = 5000;
	strcpy(m->u.hello_req.name, "recorder-1");
	m->u.hello_req.has_proof = 1;
	for (unsigned i = 0; i < DJMFS_AUTH_PROOF; i++)
		m->u.hello_req.proof[i] = (uint8_t)(0x30 + i);
}

static void req_challenge(struct djmfs__msg *m)
{
	m->u.challenge_req.proto = DJMFS_PROTO_VERSION;
	for (unsigned i = 0; i < DJMFS_AUTH_NONCE; i++)
		m->u.challenge_req.nonce[i] = (uint8_t)(0xC0 + i);
	strcpy(m->u.challenge_req.name, "recorder-1");
}

static void resp_challenge(struct djmfs__msg *m)
{
	for (unsigned i = 0; i < DJMFS_AUTH_NONCE; i++)
		m->u.challenge_resp.nonce[i] = (uint8_t)(0x10 + i);
	for (unsigned i = 0; i < DJMFS_AUTH_PROOF; i++)
		m->u.challenge_resp.proof[i] = (uint8_t)(0x80 + i);
}

static void resp_hello(struct djmfs__msg *m)
{
	m->u.hello_resp.session = 77;
	m->u.hello_resp.lease_ms = 5000;
	m->u.hello_resp.au_size = 1 << 20;
	m->u.hello_resp.data_off = 64 << 20;
	m->u.hello_resp.n_aus = 1000;
	for (unsigned i = 0; i < 16; i++)
		m->u.hello_resp.uuid[i] = (uint8_t)(0xA0 + i);
	strcpy(m->u.hello_resp.volume, "/dev/sdb");
}

static void resp_ping(struct djmfs__msg *m)
{
	m->u.ping_resp.now_ns = 987654321;
}

static void req_open(struct djmfs__msg *m)
{
	m->u.open_req.flags = DJMFS_O_READ;
	strcpy(m->u.open_req.name, "studio/cam1");
}

static void resp_open(struct djmfs__msg *m)
{
	m->u.open_resp.handle = 3;
	fill_snap(&m->u.open_resp.snap, 0);
}

static void req_handle(struct djmfs__msg *m)
{
	m->u.handle_req.handle = 3;
}

static void req_create_obj(struct djmfs__msg *m)
{
	m->u.create_obj_req.handle = 3;
	m->u.create_obj_req.attrs = DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC;
	strcpy(m->u.create_obj_req.name, "video");
}

static void resp_obj(struct djmfs__msg *m)
{
	m->u.obj_resp.obj_id = 4;
	m->u.obj_resp.version = 11;
}

static void req_delete_obj(struct djmfs__msg *m)
{
	m->u.obj_req.handle = 3;
	m->u.obj_req.obj_id = 4;
}

static void req_set_attr(struct djmfs__msg *m)
{
	req_delete_obj(m);
	m->u.obj_req.attrs = DJMFS_ATTR_DATA;
}

static void req_reserve(struct djmfs__msg *m)
{
	m->u.reserve_req.handle = 3;
	m->u.reserve_req.n_aus = 16;
}

static void resp_reserve(struct djmfs__msg *m)
{
	m->u.reserve_resp.p = run_bytes.p;
	m->u.reserve_resp.n = 3;
}

static void req_publish(struct djmfs__msg *m)
{
	m->u.publish_req.handle = 3;
	fill_publish(&m->u.publish_req.pub);
}

static void resp_publish(struct djmfs__msg *m)
{
	m->u.publish_resp.version = 9;
}

static void req_sync_snap(struct djmfs__msg *m)
{
	m->u.snap_req.handle = 3;
	m->u.snap_req.known.version = 7;
	m->u.snap_req.known.n = 2;
	m->u.snap_req.known.o[0].id = 1;
	m->u.snap_req.known.o[1].id = 2;
	m->u.snap_req.known.o[1].n_ext = 4;
	m->u.snap_req.known.o[1].n_ck = 33;
}

static void req_lock_snap(struct djmfs__msg *m)
{
	req_sync_snap(m);
	m->u.snap_req.timeout_ms = 2500;
}

static void resp_snap(struct djmfs__msg *m)
{
	fill_snap(&m->u.snap_resp, 0);
}

static void resp_stat(struct djmfs__msg *m)
{
	fill_snap(&m->u.snap_resp, 1);
}

static void req_name(struct djmfs__msg *m)
{
	strcpy(m->u.name_req.name, "studio/cam1");
}

static void req_list(struct djmfs__msg *m)
{
	strcpy(m->u.list_req.prefix, "cam");
	strcpy(m->u.list_req.after, "cam0/rec");
	m->u.list_req.max = 100;
}

static void resp_list(struct djmfs__msg *m)
{
	m->u.list_resp.n = 3;
	m->u.list_resp.more = 1;
	m->u.list_resp.p = list_bytes.p;
	m->u.list_resp.plen = list_bytes.len;
}

static void resp_df(struct djmfs__msg *m)
{
	m->u.df_resp.au_size = 1 << 20;
	m->u.df_resp.total_aus = 1000;
	m->u.df_resp.free_aus = 800;
	m->u.df_resp.reserved_aus = 50;
	m->u.df_resp.deferred_aus = 10;
	m->u.df_resp.files = 7;
	m->u.df_resp.quarantined = 1;
}

static void resp_stats(struct djmfs__msg *m)
{
	uint64_t *f = (uint64_t *)&m->u.stats_resp;

	for (unsigned i = 0; i < 15; i++)
		f[i] = 1000 + i;
}

static void req_trim(struct djmfs__msg *m)
{
	m->u.trim_req.handle = 3;
	m->u.trim_req.obj_id = 4;
	m->u.trim_req.start = (5ull << 32) + 7;
}

static void resp_trim(struct djmfs__msg *m)
{
	m->u.trim_resp.start = (5ull << 32) + 7;
	m->u.trim_resp.version = 12;
}

typedef void (*fill_fn)(struct djmfs__msg *m);

/* [op] = {request filler, response filler}; NULL: empty body. */
static const fill_fn fillers[DJMFS_OP_MAX][2] = {
	[DJMFS_OP_HELLO] = {req_hello, resp_hello},
	[DJMFS_OP_PING] = {NULL, resp_ping},
	[DJMFS_OP_OPEN] = {req_open, resp_open},
	[DJMFS_OP_CLOSE] = {req_handle, NULL},
	[DJMFS_OP_CREATE_OBJ] = {req_create_obj, resp_obj},
	[DJMFS_OP_DELETE_OBJ] = {req_delete_obj, resp_obj},
	[DJMFS_OP_SET_ATTR] = {req_set_attr, resp_obj},
	[DJMFS_OP_RESERVE] = {req_reserve, resp_reserve},
	[DJMFS_OP_PUBLISH] = {req_publish, resp_publish},
	[DJMFS_OP_SYNC_SNAP] = {req_sync_snap, resp_snap},
	[DJMFS_OP_LOCK_SNAP] = {req_lock_snap, resp_snap},
	[DJMFS_OP_UNLOCK_SNAP] = {req_handle, NULL},
	[DJMFS_OP_UNLINK] = {req_name, NULL},
	[DJMFS_OP_LIST] = {req_list, resp_list},
	[DJMFS_OP_STAT] = {req_name, resp_stat},
	[DJMFS_OP_DF] = {NULL, resp_df},
	[DJMFS_OP_STATS] = {NULL, resp_stats},
	[DJMFS_OP_CHALLENGE] = {req_challenge, resp_challenge},
	[DJMFS_OP_TRIM] = {req_trim, resp_trim},
};

static void sample(struct djmfs__msg *m, unsigned op, unsigned kind)
{
	memset(m, 0, sizeof(*m));
	m->h.op = (uint16_t)op;
	m->h.kind = (uint8_t)kind;
	m->h.id = 0x1000 + op * 2 + kind;
	if (fillers[op][kind])
		fillers[op][kind](m);
}

/* Encodes @m into a fresh buffer the caller frees. */
static void encode(const struct djmfs__msg *m, struct djmfs__buf *b)
{
	djmfs__buf_init(b);
	cr_assert_eq(djmfs__msg_encode(b, m), 0, "encode %s kind %u",
		     djmfs__op_name(m->h.op), m->h.kind);
}

/* ---------------------------------------------------------------- */
/* Field comparison: views compared by content, then by the rest     */
/* ---------------------------------------------------------------- */

static void same_bytes(const void *a, const void *b, size_t n)
{
	if (n)
		cr_assert_eq(memcmp(a, b, n), 0);
}

static void strip_snap(struct djmfs__snap *x, struct djmfs__snap *y)
{
	for (unsigned i = 0; i < DJMFS_MAX_OBJS; i++) {
		struct djmfs__snap_obj *a = &x->objs[i], *b = &y->objs[i];

		cr_assert_eq(a->ext.n, b->ext.n);
		same_bytes(a->ext.p, b->ext.p, a->ext.n * DJMFS_EXT_WIRE);
		cr_assert_eq(a->ck.n, b->ck.n);
		same_bytes(a->ck.p, b->ck.p, a->ck.n * DJMFS_CK_WIRE);
		cr_assert_eq(a->meta_len, b->meta_len);
		same_bytes(a->meta, b->meta, a->meta_len);
		a->ext.p = b->ext.p = NULL;
		a->ck.p = b->ck.p = NULL;
		a->meta = b->meta = NULL;
	}
}

static void strip_publish(struct djmfs__publish *x, struct djmfs__publish *y)
{
	for (unsigned i = 0; i < DJMFS_MAX_OBJS; i++) {
		struct djmfs__pub_obj *a = &x->objs[i], *b = &y->objs[i];

		cr_assert_eq(a->ext.n, b->ext.n);
		same_bytes(a->ext.p, b->ext.p, a->ext.n * DJMFS_EXT_WIRE);
		cr_assert_eq(a->ck.n, b->ck.n);
		same_bytes(a->ck.p, b->ck.p, a->ck.n * DJMFS_CK_WIRE);
		cr_assert_eq(a->meta_len, b->meta_len);
		same_bytes(a->meta, b->meta, a->meta_len);
		a->ext.p = b->ext.p = NULL;
		a->ck.p = b->ck.p = NULL;
		a->meta = b->meta = NULL;
	}
}

/* Works on copies made with memcpy, which keeps the (zeroed) padding. */
static void assert_same_msg(const struct djmfs__msg *a,
			    const struct djmfs__msg *b)
{
	static struct djmfs__msg x, y;
	unsigned op = a->h.op;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	int resp = x.h.kind == DJMFS_RESP;

	cr_assert_eq(x.h.op, y.h.op);
	cr_assert_eq(x.h.kind, y.h.kind);
	cr_assert_eq(x.h.id, y.h.id);
	cr_assert_eq(x.status, y.status);
	if (op == DJMFS_OP_OPEN && resp)
		strip_snap(&x.u.open_resp.snap, &y.u.open_resp.snap);
	if ((op == DJMFS_OP_SYNC_SNAP || op == DJMFS_OP_LOCK_SNAP ||
	     op == DJMFS_OP_STAT) && resp)
		strip_snap(&x.u.snap_resp, &y.u.snap_resp);
	if (op == DJMFS_OP_PUBLISH && !resp)
		strip_publish(&x.u.publish_req.pub, &y.u.publish_req.pub);
	if (op == DJMFS_OP_RESERVE && resp) {
		cr_assert_eq(x.u.reserve_resp.n, y.u.reserve_resp.n);
		same_bytes(x.u.reserve_resp.p, y.u.reserve_resp.p,
			   x.u.reserve_resp.n * DJMFS_RUN_WIRE);
		x.u.reserve_resp.p = y.u.reserve_resp.p = NULL;
	}
	if (op == DJMFS_OP_LIST && resp) {
		cr_assert_eq(x.u.list_resp.plen, y.u.list_resp.plen);
		same_bytes(x.u.list_resp.p, y.u.list_resp.p, x.u.list_resp.plen);
		x.u.list_resp.p = y.u.list_resp.p = NULL;
	}
	cr_assert_eq(memcmp(&x.u, &y.u, sizeof(x.u)), 0, "%s kind %u fields",
		     djmfs__op_name(op), x.h.kind);
}

/* Encode, decode, compare fields, re-encode, compare bytes. */
static void round_trip(const struct djmfs__msg *m)
{
	static struct djmfs__msg d;
	struct djmfs__buf a, b;

	encode(m, &a);
	cr_assert_eq(a.len, DJMFS_HDR_SIZE + djmfs__le32(a.p));
	cr_assert_eq(djmfs__msg_decode(a.p, a.len, &d), 0, "decode %s",
		     djmfs__op_name(m->h.op));
	cr_assert_eq(d.h.len, a.len - DJMFS_HDR_SIZE);
	assert_same_msg(m, &d);
	encode(&d, &b);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.p, b.p, a.len), 0, "re-encode %s differs",
		     djmfs__op_name(m->h.op));
	djmfs__buf_free(&a);
	djmfs__buf_free(&b);
}

TestSuite(wire, .init = samples_init, .fini = samples_fini);

Test(wire, crc32c_gives_the_castagnoli_check_value)
{
	cr_assert_eq(djmfs__crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(djmfs__crc32c(djmfs__crc32c(0, "1234", 4), "56789", 5),
		     0xE3069283u);
	cr_assert_eq(djmfs__crc32c(0, "", 0), 0);
}

Test(wire, every_request_round_trips)
{
	struct djmfs__msg m;

	for (unsigned op = 1; op < DJMFS_OP_MAX; op++) {
		sample(&m, op, DJMFS_REQ);
		round_trip(&m);
	}
}

Test(wire, every_response_round_trips)
{
	struct djmfs__msg m;

	for (unsigned op = 1; op < DJMFS_OP_MAX; op++) {
		sample(&m, op, DJMFS_RESP);
		round_trip(&m);
	}
}

Test(wire, hello_without_a_proof_round_trips_and_truncations_fail)
{
	struct djmfs__msg m, d;
	struct djmfs__buf b;

	sample(&m, DJMFS_OP_HELLO, DJMFS_REQ);
	m.u.hello_req.has_proof = 0;
	memset(m.u.hello_req.proof, 0, sizeof(m.u.hello_req.proof));
	round_trip(&m);
	encode(&m, &b);
	/* u32 proto, u32 lease, str name, u8 has_proof: nothing more. */
	cr_assert_eq(b.len, DJMFS_HDR_SIZE + 4 + 4 + 2 + strlen("recorder-1") +
				    1);
	for (size_t n = DJMFS_HDR_SIZE; n < b.len; n++) {
		djmfs__patch_u32(&b, 0, (uint32_t)(n - DJMFS_HDR_SIZE));
		cr_assert_eq(djmfs__msg_decode(b.p, n, &d), -EBADMSG);
	}
	djmfs__buf_free(&b);
}

Test(wire, hello_with_a_proof_flag_other_than_0_or_1_is_refused)
{
	struct djmfs__msg m;
	struct djmfs__buf b;
	size_t at = DJMFS_HDR_SIZE + 4 + 4 + 2 + strlen("recorder-1");

	sample(&m, DJMFS_OP_HELLO, DJMFS_REQ);
	encode(&m, &b);
	cr_assert_eq(b.p[at], 1);
	b.p[at] = 2;
	cr_assert_eq(djmfs__msg_decode(b.p, b.len, &m), -EBADMSG);
	djmfs__buf_free(&b);
	/* The encoder refuses it too, leaving nothing behind. */
	sample(&m, DJMFS_OP_HELLO, DJMFS_REQ);
	m.u.hello_req.has_proof = 2;
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	cr_assert_eq(b.len, 0);
	djmfs__buf_free(&b);
}

Test(wire, challenge_carries_nonces_and_proof_in_fixed_sizes)
{
	struct djmfs__msg m, d;
	struct djmfs__buf b;

	sample(&m, DJMFS_OP_CHALLENGE, DJMFS_REQ);
	encode(&m, &b);
	cr_assert_eq(b.len, DJMFS_HDR_SIZE + 4 + DJMFS_AUTH_NONCE + 2 +
				    strlen("recorder-1"));
	cr_assert_eq(djmfs__msg_decode(b.p, b.len, &d), 0);
	cr_assert_eq(memcmp(d.u.challenge_req.nonce, m.u.challenge_req.nonce,
			    DJMFS_AUTH_NONCE), 0);
	djmfs__buf_free(&b);
	sample(&m, DJMFS_OP_CHALLENGE, DJMFS_RESP);
	encode(&m, &b);
	cr_assert_eq(b.len, DJMFS_HDR_SIZE + 4 + DJMFS_AUTH_NONCE +
				    DJMFS_AUTH_PROOF);
	cr_assert_eq(djmfs__msg_decode(b.p, b.len, &d), 0);
	cr_assert_eq(memcmp(d.u.challenge_resp.proof,
			    m.u.challenge_resp.proof, DJMFS_AUTH_PROOF), 0);
	djmfs__buf_free(&b);
	/* A name over the client-name limit is refused both ways. */
	sample(&m, DJMFS_OP_CHALLENGE, DJMFS_REQ);
	memset(m.u.challenge_req.name, 'n', sizeof(m.u.challenge_req.name));
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	djmfs__buf_free(&b);
}

Test(wire, unchanged_snapshot_round_trips)
{
	struct djmfs__msg m;

	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	memset(m.u.snap_resp.objs, 0, sizeof(m.u.snap_resp.objs));
	m.u.snap_resp.n_objs = 0;
	m.u.snap_resp.unchanged = 1;
	round_trip(&m);
}

Test(wire, error_response_carries_only_the_status)
{
	struct djmfs__msg m, d;
	struct djmfs__buf b;

	for (unsigned op = 1; op < DJMFS_OP_MAX; op++) {
		sample(&m, op, DJMFS_RESP);
		m.status = -ENOENT;
		encode(&m, &b);
		cr_assert_eq(b.len, DJMFS_HDR_SIZE + 4);
		cr_assert_eq(djmfs__msg_decode(b.p, b.len, &d), 0);
		cr_assert_eq(d.status, -ENOENT);
		cr_assert_eq(d.h.op, op);
		cr_assert_eq(d.h.id, m.h.id);
		djmfs__buf_free(&b);
	}
}

Test(wire, op_names_cover_every_op)
{
	cr_assert_str_eq(djmfs__op_name(DJMFS_OP_PUBLISH), "PUBLISH");
	cr_assert_str_eq(djmfs__op_name(DJMFS_OP_HELLO), "HELLO");
	cr_assert_str_eq(djmfs__op_name(DJMFS_OP_CHALLENGE), "CHALLENGE");
	cr_assert_str_eq(djmfs__op_name(0), "?");
	cr_assert_str_eq(djmfs__op_name(DJMFS_OP_MAX), "?");
	for (unsigned op = 1; op < DJMFS_OP_MAX; op++)
		cr_assert_str_neq(djmfs__op_name(op), "?");
}

Test(wire, list_entries_iterate_in_order)
{
	struct djmfs__msg m, d;
	struct djmfs__list_entry e;
	struct djmfs__buf b;
	struct djmfs__cur c;
	unsigned i = 0;
	int r;

	sample(&m, DJMFS_OP_LIST, DJMFS_RESP);
	encode(&m, &b);
	cr_assert_eq(djmfs__msg_decode(b.p, b.len, &d), 0);
	cr_assert_eq(d.u.list_resp.more, 1);
	djmfs__cur_init(&c, d.u.list_resp.p, d.u.list_resp.plen);
	while ((r = djmfs__list_next(&c, &e)) == 1) {
		char want[32];

		snprintf(want, sizeof(want), "cam%u/rec", i);
		cr_assert_str_eq(e.name, want);
		cr_assert_eq(e.ino, 10 + i);
		cr_assert_eq(e.mtime_ns, 123456789ull * i);
		i++;
	}
	cr_assert_eq(r, 0);
	cr_assert_eq(i, 3);
	djmfs__buf_free(&b);
}

/* ---------------------------------------------------------------- */
/* Rejections                                                        */
/* ---------------------------------------------------------------- */

/* Decodes a copy of exactly @n bytes, so ASan sees any over-read. */
static int decode_exact(const uint8_t *p, size_t n)
{
	static struct djmfs__msg d;
	uint8_t *copy = malloc(n ? n : 1);
	int r;

	cr_assert_not_null(copy);
	memcpy(copy, p, n);
	r = djmfs__msg_decode(copy, n, &d);
	free(copy);
	return r;
}

static void set_len(struct djmfs__buf *b, uint32_t len)
{
	djmfs__patch_u32(b, 0, len);
}

Test(wire, every_truncation_is_refused)
{
	struct djmfs__msg m;
	struct djmfs__buf b;

	for (unsigned op = 1; op < DJMFS_OP_MAX; op++) {
		for (unsigned kind = 0; kind < 2; kind++) {
			sample(&m, op, kind);
			encode(&m, &b);
			/* Cut short with the header still claiming the whole
			 * payload, then with a header that agrees. */
			for (size_t n = 0; n < b.len; n++)
				cr_assert_eq(decode_exact(b.p, n), -EBADMSG);
			for (size_t n = DJMFS_HDR_SIZE; n < b.len; n++) {
				if (op == DJMFS_OP_STATS && kind == 1 &&
				    n == b.len - 3 * 8)
					continue; /* the previous release's */
				set_len(&b, (uint32_t)(n - DJMFS_HDR_SIZE));
				cr_assert_eq(decode_exact(b.p, n), -EBADMSG,
					     "%s kind %u cut at %zu",
					     djmfs__op_name(op), kind, n);
			}
			djmfs__buf_free(&b);
		}
	}
}

Test(wire, a_stats_reply_without_the_repair_counters_reads_them_as_zero)
{
	struct djmfs__msg m, back;
	struct djmfs__buf b;
	size_t n;

	sample(&m, DJMFS_OP_STATS, 1);
	encode(&m, &b);
	n = b.len - 3 * 8; /* the three counters left off */
	set_len(&b, (uint32_t)(n - DJMFS_HDR_SIZE));
	memset(&back, 0xa5, sizeof(back));
	cr_assert_eq(djmfs__msg_decode(b.p, n, &back), 0);
	cr_expect_eq(back.u.stats_resp.alloc_stalls, 1011);
	cr_expect_eq(back.u.stats_resp.meta_repairs_journal, 0);
	cr_expect_eq(back.u.stats_resp.meta_repairs_checkpoint, 0);
	cr_expect_eq(back.u.stats_resp.meta_repairs_superblock, 0);
	djmfs__buf_free(&b);
}

Test(wire, trailing_bytes_are_refused)
{
	struct djmfs__msg m;
	struct djmfs__buf b;

	for (unsigned op = 1; op < DJMFS_OP_MAX; op++) {
		for (unsigned kind = 0; kind < 2; kind++) {
			sample(&m, op, kind);
			encode(&m, &b);
			djmfs__put_u8(&b, 0);
			set_len(&b, (uint32_t)(b.len - DJMFS_HDR_SIZE));
			cr_assert_eq(decode_exact(b.p, b.len), -EBADMSG);
			djmfs__buf_free(&b);
		}
	}
}

Test(wire, bad_headers_are_refused)
{
	struct djmfs__msg m;
	struct djmfs__hdr h;
	struct djmfs__buf b;
	struct {
		size_t at;
		uint8_t val;
		int want;
	} cases[] = {
		{4, 0x00, -EBADMSG},		     /* magic */
		{6, DJMFS_PROTO_VERSION + 1, -EPROTO}, /* version */
		{7, 2, -EBADMSG},		     /* kind */
		{8, 0, -EBADMSG},		     /* op 0 */
		{8, DJMFS_OP_MAX, -EBADMSG},	     /* op past the end */
		{10, 1, -EBADMSG},		     /* flags */
		{11, 0x80, -EBADMSG},		     /* flags, high byte */
	};

	sample(&m, DJMFS_OP_OPEN, DJMFS_REQ);
	encode(&m, &b);
	cr_assert_eq(djmfs__hdr_decode(b.p, b.len, &h), 0);
	cr_assert_eq(h.len, b.len - DJMFS_HDR_SIZE);
	cr_assert_eq(h.op, DJMFS_OP_OPEN);
	cr_assert_eq(h.id, m.h.id);
	cr_assert_eq(djmfs__hdr_decode(b.p, DJMFS_HDR_SIZE - 1, &h), -EBADMSG);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t old = b.p[cases[i].at];

		b.p[cases[i].at] = cases[i].val;
		cr_assert_eq(djmfs__hdr_decode(b.p, b.len, &h), cases[i].want,
			     "case %zu", i);
		cr_assert_eq(decode_exact(b.p, b.len), cases[i].want);
		b.p[cases[i].at] = old;
	}
	set_len(&b, DJMFS_FRAME_MAX + 1);
	cr_assert_eq(djmfs__hdr_decode(b.p, b.len, &h), -EBADMSG);
	set_len(&b, DJMFS_FRAME_MAX);
	cr_assert_eq(djmfs__hdr_decode(b.p, b.len, &h), 0);
	cr_assert_eq(decode_exact(b.p, b.len), -EBADMSG); /* len != n */
	djmfs__buf_free(&b);
}

/* Builds a frame by hand: header for (op, kind), then @body. */
static void hand_frame(struct djmfs__buf *b, unsigned op, unsigned kind,
		       const struct djmfs__buf *body)
{
	djmfs__buf_init(b);
	djmfs__put_u32(b, (uint32_t)body->len);
	djmfs__put_u16(b, DJMFS_FRAME_MAGIC);
	djmfs__put_u8(b, DJMFS_PROTO_VERSION);
	djmfs__put_u8(b, (uint8_t)kind);
	djmfs__put_u16(b, (uint16_t)op);
	djmfs__put_u16(b, 0);
	djmfs__put_u32(b, 1);
	djmfs__put_bytes(b, body->p, body->len);
	cr_assert_eq(b->err, 0);
}

static int decode_body(unsigned op, unsigned kind, struct djmfs__buf *body)
{
	struct djmfs__buf f;
	int r;

	hand_frame(&f, op, kind, body);
	r = decode_exact(f.p, f.len);
	djmfs__buf_free(&f);
	djmfs__buf_reset(body);
	return r;
}

Test(wire, counts_larger_than_the_bytes_are_refused)
{
	struct djmfs__buf body;

	djmfs__buf_init(&body);
	/* RESERVE response: n runs, only one present. */
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0x10000000);
	djmfs__put_run(&body, 1, 1);
	cr_assert_eq(decode_body(DJMFS_OP_RESERVE, DJMFS_RESP, &body), -EBADMSG);
	/* PUBLISH: an object claiming 2^32-1 extents. */
	djmfs__put_u32(&body, 3);
	djmfs__put_u64(&body, 1);
	djmfs__put_u32(&body, 1);
	djmfs__put_u32(&body, 1);
	djmfs__put_u64(&body, 0);
	djmfs__put_u32(&body, UINT32_MAX);
	djmfs__put_ext(&body, 0, 4096);
	djmfs__put_u8(&body, 0);
	cr_assert_eq(decode_body(DJMFS_OP_PUBLISH, DJMFS_REQ, &body), -EBADMSG);
	/* PUBLISH: more objects than a file may have. */
	djmfs__put_u32(&body, 3);
	djmfs__put_u64(&body, 1);
	djmfs__put_u32(&body, DJMFS_MAX_OBJS + 1);
	for (unsigned i = 0; i < DJMFS_MAX_OBJS + 1; i++) {
		djmfs__put_u32(&body, i);
		djmfs__put_u64(&body, 0);
		djmfs__put_u32(&body, 0);
		djmfs__put_u8(&body, 0);
	}
	cr_assert_eq(decode_body(DJMFS_OP_PUBLISH, DJMFS_REQ, &body), -EBADMSG);
	/* PUBLISH: an object claiming more sums than the bytes hold. */
	djmfs__put_u32(&body, 3);
	djmfs__put_u64(&body, 1);
	djmfs__put_u32(&body, 1);
	djmfs__put_u32(&body, 2);
	djmfs__put_u64(&body, 1 << 20);
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0x40000000);
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0);
	djmfs__put_u8(&body, 0);
	cr_assert_eq(decode_body(DJMFS_OP_PUBLISH, DJMFS_REQ, &body), -EBADMSG);
	/* SYNC_SNAP: KNOWN over the object limit. */
	djmfs__put_u32(&body, 3);
	djmfs__put_u64(&body, 1);
	djmfs__put_u32(&body, DJMFS_MAX_OBJS + 1);
	for (unsigned i = 0; i < DJMFS_MAX_OBJS + 1; i++)
		djmfs__put_u64(&body, i);
	cr_assert_eq(decode_body(DJMFS_OP_SYNC_SNAP, DJMFS_REQ, &body), -EBADMSG);
	/* LIST response: 1000 entries announced, none sent. */
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 1000);
	djmfs__put_u8(&body, 0);
	cr_assert_eq(decode_body(DJMFS_OP_LIST, DJMFS_RESP, &body), -EBADMSG);
	djmfs__buf_free(&body);
}

/* A META payload over DJMFS_META_MAX in a PUBLISH. */
Test(wire, oversized_meta_is_refused)
{
	struct djmfs__buf body;

	djmfs__buf_init(&body);
	djmfs__put_u32(&body, 3);
	djmfs__put_u64(&body, 1);
	djmfs__put_u32(&body, 1);
	djmfs__put_u32(&body, 1);
	djmfs__put_u64(&body, DJMFS_META_MAX + 1);
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0); /* no sums */
	djmfs__put_u32(&body, 0);
	djmfs__put_u32(&body, 0);
	djmfs__put_u8(&body, 1);
	djmfs__put_u32(&body, DJMFS_META_MAX + 1);
	for (unsigned i = 0; i < DJMFS_META_MAX + 1; i++)
		djmfs__put_u8(&body, 'x');
	cr_assert_eq(decode_body(DJMFS_OP_PUBLISH, DJMFS_REQ, &body), -EBADMSG);
	djmfs__buf_free(&body);
}

static void name_body(struct djmfs__buf *body, const void *s, size_t n)
{
	djmfs__put_u16(body, (uint16_t)n);
	djmfs__put_bytes(body, s, n);
}

Test(wire, bad_strings_are_refused)
{
	char longname[DJMFS_NAME_MAX + 2];
	struct djmfs__buf body;

	memset(longname, 'a', sizeof(longname));
	djmfs__buf_init(&body);
	name_body(&body, longname, DJMFS_NAME_MAX);
	cr_assert_eq(decode_body(DJMFS_OP_UNLINK, DJMFS_REQ, &body), 0);
	name_body(&body, longname, DJMFS_NAME_MAX + 1);
	cr_assert_eq(decode_body(DJMFS_OP_UNLINK, DJMFS_REQ, &body), -EBADMSG);
	name_body(&body, "ab\0cd", 5);
	cr_assert_eq(decode_body(DJMFS_OP_UNLINK, DJMFS_REQ, &body), -EBADMSG);
	name_body(&body, "", 0);
	cr_assert_eq(decode_body(DJMFS_OP_STAT, DJMFS_REQ, &body), -EBADMSG);
	/* Object names have their own, shorter limit. */
	djmfs__put_u32(&body, 3);
	djmfs__put_u32(&body, DJMFS_ATTR_DATA);
	name_body(&body, longname, DJMFS_OBJ_NAME_MAX + 1);
	cr_assert_eq(decode_body(DJMFS_OP_CREATE_OBJ, DJMFS_REQ, &body),
		     -EBADMSG);
	djmfs__put_u32(&body, 3);
	djmfs__put_u32(&body, DJMFS_ATTR_DATA);
	name_body(&body, "", 0);
	cr_assert_eq(decode_body(DJMFS_OP_CREATE_OBJ, DJMFS_REQ, &body),
		     -EBADMSG);
	/* CHALLENGE: a client name one over its limit. */
	djmfs__put_u32(&body, DJMFS_PROTO_VERSION);
	for (unsigned i = 0; i < DJMFS_AUTH_NONCE; i++)
		djmfs__put_u8(&body, (uint8_t)i);
	name_body(&body, longname, DJMFS_CLIENT_NAME_MAX + 1);
	cr_assert_eq(decode_body(DJMFS_OP_CHALLENGE, DJMFS_REQ, &body),
		     -EBADMSG);
	/* LIST's prefix and cursor may be empty. */
	name_body(&body, "", 0);
	name_body(&body, "", 0);
	djmfs__put_u32(&body, 10);
	cr_assert_eq(decode_body(DJMFS_OP_LIST, DJMFS_REQ, &body), 0);
	djmfs__buf_free(&body);
}

Test(wire, inconsistent_snapshots_are_refused)
{
	struct djmfs__msg m;
	struct djmfs__buf b;

	/* unchanged with objects: the encoder refuses, the decoder too. */
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.unchanged = 1;
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	cr_assert_eq(b.len, 0);
	m.u.snap_resp.unchanged = 0;
	djmfs__buf_free(&b);
	encode(&m, &b);
	/* Flip unchanged on: it sits after ino, name, version, flags and
	 * the two times. */
	b.p[DJMFS_HDR_SIZE + 4 + 8 + 2 + strlen("studio/cam1") + 8 + 4 + 16] = 1;
	cr_assert_eq(decode_exact(b.p, b.len), -EBADMSG);
	djmfs__buf_free(&b);
	/* A delta that does not end at ext_total. */
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.objs[1].ext_base = 0;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	/* A STAT carrying extents, or sums. */
	sample(&m, DJMFS_OP_STAT, DJMFS_RESP);
	set_exts(&m.u.snap_resp.objs[1].ext, 1);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_STAT, DJMFS_RESP);
	set_cks(&m.u.snap_resp.objs[1].ck, 1);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	/* Sum flags other than the gap. */
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.objs[1].ck_flags = 0x2;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	/* A start past the size, a map whose first extent is not sent
	 * or begins past the start. */
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.objs[2].start = m.u.snap_resp.objs[2].size + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.objs[2].ext_first = 3;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_RESP);
	m.u.snap_resp.objs[2].first_at = m.u.snap_resp.objs[2].start + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_STAT, DJMFS_RESP);
	m.u.snap_resp.objs[2].ext_first = 7;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	djmfs__buf_free(&b);
}

Test(wire, bad_statuses_are_refused)
{
	struct djmfs__msg m;
	struct djmfs__buf b;

	sample(&m, DJMFS_OP_CLOSE, DJMFS_RESP);
	encode(&m, &b);
	djmfs__patch_u32(&b, DJMFS_HDR_SIZE, 5);
	cr_assert_eq(decode_exact(b.p, b.len), -EBADMSG);
	djmfs__patch_u32(&b, DJMFS_HDR_SIZE, (uint32_t)-5000);
	cr_assert_eq(decode_exact(b.p, b.len), -EBADMSG);
	djmfs__buf_reset(&b);
	m.status = 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	djmfs__buf_free(&b);
}

/* ---------------------------------------------------------------- */
/* Encoder limits                                                    */
/* ---------------------------------------------------------------- */

Test(wire, encoder_refuses_what_the_decoder_would)
{
	struct djmfs__msg m;
	struct djmfs__buf b;

	djmfs__buf_init(&b);
	djmfs__put_u32(&b, 0xdeadbeef); /* must survive every refusal */
	sample(&m, DJMFS_OP_OPEN, DJMFS_REQ);
	memset(m.u.open_req.name, 'n', sizeof(m.u.open_req.name));
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	m.u.open_req.name[0] = '\0';
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_PUBLISH, DJMFS_REQ);
	m.u.publish_req.pub.n_objs = DJMFS_MAX_OBJS + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_PUBLISH, DJMFS_REQ);
	m.u.publish_req.pub.objs[0].meta_len = DJMFS_META_MAX + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_SYNC_SNAP, DJMFS_REQ);
	m.u.snap_req.known.n = DJMFS_MAX_OBJS + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_OPEN, DJMFS_RESP);
	m.u.open_resp.snap.n_objs = DJMFS_MAX_OBJS + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, 0, DJMFS_REQ);
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	sample(&m, DJMFS_OP_PING, DJMFS_REQ);
	m.h.kind = 2;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EINVAL);
	cr_assert_eq(b.len, 4);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(djmfs__le32(b.p), 0xdeadbeef);
	djmfs__buf_free(&b);
}

Test(wire, oversized_payloads_are_refused_with_emsgsize)
{
	struct djmfs__msg m;
	struct djmfs__buf b, big;
	uint32_t n = DJMFS_FRAME_MAX / DJMFS_EXT_WIRE / 2 + 1;

	/* A count whose bytes cannot fit is refused before any copy. */
	djmfs__buf_init(&b);
	sample(&m, DJMFS_OP_RESERVE, DJMFS_RESP);
	m.u.reserve_resp.n = DJMFS_FRAME_MAX / DJMFS_RUN_WIRE + 1;
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EMSGSIZE);
	/* Two halves that fit alone but not together. */
	djmfs__buf_init(&big);
	cr_assert_eq(djmfs__buf_reserve(&big, (size_t)n * DJMFS_EXT_WIRE), 0);
	memset(big.p, 0, (size_t)n * DJMFS_EXT_WIRE);
	sample(&m, DJMFS_OP_PUBLISH, DJMFS_REQ);
	for (unsigned i = 0; i < 2; i++) {
		m.u.publish_req.pub.objs[i].ext.p = big.p;
		m.u.publish_req.pub.objs[i].ext.n = n;
	}
	cr_assert_eq(djmfs__msg_encode(&b, &m), -EMSGSIZE);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.err, 0);
	djmfs__buf_free(&big);
	djmfs__buf_free(&b);
}

/* ---------------------------------------------------------------- */
/* Noise                                                             */
/* ---------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic noise, no libc state. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

Test(wire, random_bytes_never_crash_the_decoder)
{
	uint64_t s = 0x9E3779B97F4A7C15ull;
	uint8_t frame[512];
	struct djmfs__hdr h;

	for (unsigned i = 0; i < 10000; i++) {
		size_t n = rng_next(&s) % sizeof(frame);

		for (size_t k = 0; k < n; k++)
			frame[k] = (uint8_t)rng_next(&s);
		/* Half the time give the noise a plausible header, so the
		 * body decoders see it too. */
		if (i & 1 && n >= DJMFS_HDR_SIZE) {
			uint32_t len = (uint32_t)(n - DJMFS_HDR_SIZE);

			memcpy(frame, &len, 4); /* little-endian host */
			frame[4] = 0xF5;
			frame[5] = 0xD7;
			frame[6] = DJMFS_PROTO_VERSION;
			frame[7] &= 1;
			frame[8] = (uint8_t)(1 + frame[8] % (DJMFS_OP_MAX - 1));
			frame[9] = 0;
			frame[10] = frame[11] = 0;
		}
		(void)djmfs__hdr_decode(frame, n, &h);
		int r = decode_exact(frame, n);

		cr_assert(r == 0 || r == -EBADMSG || r == -EPROTO);
	}
}

/* ---------------------------------------------------------------- */
/* Buffers                                                           */
/* ---------------------------------------------------------------- */

Test(wire, cursor_errors_are_sticky)
{
	const uint8_t in[3] = {1, 2, 3};
	struct djmfs__cur c;
	char s[4];

	djmfs__cur_init(&c, in, sizeof(in));
	cr_assert_eq(djmfs__get_u16(&c), 0x0201);
	cr_assert_eq(djmfs__get_u16(&c), 0);
	cr_assert_eq(c.err, -EBADMSG);
	cr_assert_eq(djmfs__get_u8(&c), 0);
	cr_assert_eq(djmfs__cur_left(&c), 0);
	cr_assert_null(djmfs__get_bytes(&c, 0));
	djmfs__cur_init(&c, "\x03\x00" "abc", 5);
	djmfs__get_str(&c, s, sizeof(s), 0);
	cr_assert_eq(c.err, 0);
	cr_assert_str_eq(s, "abc");
	djmfs__cur_init(&c, "\x04\x00" "abcd", 6);
	djmfs__get_str(&c, s, sizeof(s), 0);
	cr_assert_eq(c.err, -EBADMSG);
	cr_assert_str_eq(s, "");
}

Test(wire, buffer_grows_and_patches)
{
	struct djmfs__buf b;

	djmfs__buf_init(&b);
	for (unsigned i = 0; i < 10000; i++)
		djmfs__put_u32(&b, i);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(b.len, 40000);
	cr_assert_eq(djmfs__le32(b.p + 4 * 9999), 9999);
	djmfs__patch_u32(&b, 0, 0xabcdef01);
	cr_assert_eq(djmfs__le32(b.p), 0xabcdef01);
	djmfs__patch_u32(&b, b.len - 3, 1);
	cr_assert_eq(b.err, -EINVAL);
	djmfs__buf_reset(&b);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.err, 0);
	djmfs__put_u64(&b, 0x0102030405060708ull);
	cr_assert_eq(djmfs__le64(b.p), 0x0102030405060708ull);
	cr_assert_eq(b.p[0], 8);
	djmfs__buf_free(&b);
	cr_assert_null(b.p);
	djmfs__buf_free(&b);
}

/* The eight-bytes-a-step path and its byte tail agree with chaining the
 * same bytes in odd-sized pieces, at every alignment. */
Test(wire, crc32c_is_the_same_in_any_pieces)
{
	uint8_t buf[1031];
	uint32_t whole, parts;
	size_t at, step;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t start = 0; start < 9; start++) {
		whole = djmfs__crc32c(0, buf + start, sizeof(buf) - start);
		for (step = 1; step < 20; step += 3) {
			parts = 0;
			for (at = start; at < sizeof(buf); at += step) {
				size_t n = sizeof(buf) - at < step ?
						   sizeof(buf) - at : step;

				parts = djmfs__crc32c(parts, buf + at, n);
			}
			cr_assert_eq(parts, whole, "start %zu step %zu", start,
				     step);
		}
	}
	/* 32 bytes of zeros: the published CRC-32C test vector. */
	memset(buf, 0, 32);
	cr_assert_eq(djmfs__crc32c(0, buf, 32), 0x8A9136AAu);
}

/* One bit at a time, straight from the reflected polynomial: the
 * reference the fast paths are held to. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t c = ~crc;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
	}
	return ~c;
}

/* Long buffers take the three-lane path (whole rounds of three lanes,
 * then a tail); sizes around a round's edges and whole checksum blocks,
 * at odd alignments, chained from a non-zero value, all agree with the
 * bitwise reference. */
Test(wire, crc32c_long_buffers_match_the_bitwise_reference)
{
	static const size_t sizes[] = { 12287, 12288, 12289, 24576, 30001,
					65536, 131072 + 5 };
	size_t max = 131072 + 16;
	uint8_t *buf = malloc(max);
	uint64_t x = 88172645463325252ull;

	cr_assert_not_null(buf);
	for (size_t i = 0; i < max; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t start = 0; start < 3; start++) {
			uint32_t seed = (uint32_t)(i * 2654435761u);

			cr_assert_eq(djmfs__crc32c(seed, buf + start, sizes[i]),
				     crc32c_bitwise(seed, buf + start, sizes[i]),
				     "size %zu start %zu", sizes[i], start);
		}
	}
	free(buf);
}
