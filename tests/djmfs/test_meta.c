/*
 * Tests of the metadata state (djmfs_meta.c): every journal record type
 * applied and refused (a refusal must leave the state byte-for-byte as it
 * was), working versus durable roots, the life of reserved units through
 * RESERVE, PUBLISH and RELEASE, the exact unit ranges handed to on_free,
 * checkpoint images that round-trip and that are refused when damaged,
 * trims that free only whole units below the start and replay the same,
 * snapshot records that outlive many publishes, and a workload big enough
 * to show that a publish costs no more than a path copy.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_tree.h"

#define AU (1ull << 20)
#define DOFF (16ull << 20)
#define NAUS 64u
#define AT(unit, byte) (DOFF + (uint64_t)(unit) * AU + (byte))

#define DATA DJMFS_ATTR_DATA
#define META DJMFS_ATTR_META
#define SYNC DJMFS_ATTR_SYNC

struct freed {
	uint64_t first, n;
	enum djmfs__free_kind kind;
};

static struct djmfs__meta *M;
static struct freed freed[256];
static unsigned nfreed;

static void on_free(void *arg, uint64_t first, uint64_t n,
		    enum djmfs__free_kind kind)
{
	(void)arg;
	cr_assert_lt(nfreed, 256);
	freed[nfreed++] = (struct freed){ first, n, kind };
}

static struct djmfs__meta *mk_meta(uint64_t n_aus)
{
	struct djmfs__meta_opts o = {
		.data_off = DOFF, .n_aus = n_aus, .au_size = AU,
		.on_free = on_free,
	};
	struct djmfs__meta *m;

	cr_assert_eq(djmfs__meta_new(&m, &o), 0);
	return m;
}

static void setup(void)
{
	M = mk_meta(NAUS);
	nfreed = 0;
}

static void teardown(void)
{
	djmfs__meta_free(M);
	M = NULL;
}

TestSuite(meta, .init = setup, .fini = teardown);

/* ---- record builders ---- */

static int apply(struct djmfs__jrec *r)
{
	r->seq = djmfs__meta_seq(M) + 1;
	return djmfs__meta_apply(M, r);
}

static int file_create(uint64_t ino, const char *name)
{
	struct djmfs__jrec r = { .type = DJMFS_J_FILE_CREATE, .ino = ino,
				 .time_ns = 111 };

	snprintf(r.u.create.name, sizeof(r.u.create.name), "%s", name);
	return apply(&r);
}

static int obj_op(uint16_t type, uint64_t ino, uint32_t id, uint32_t attrs,
		  const char *name)
{
	struct djmfs__jrec r = { .type = type, .ino = ino, .time_ns = 222 };

	r.u.obj.obj_id = id;
	r.u.obj.attrs = attrs;
	snprintf(r.u.obj.name, sizeof(r.u.obj.name), "%s", name ? name : "");
	return apply(&r);
}

static int simple(uint16_t type, uint64_t ino)
{
	struct djmfs__jrec r = { .type = type, .ino = ino, .time_ns = 333 };

	if (type == DJMFS_J_QUARANTINE)
		strcpy(r.u.quarantine.why, "test");
	return apply(&r);
}

/* RESERVE or RELEASE of @n runs given as first, count pairs. */
static int runs(uint16_t type, uint64_t ino, unsigned n, ...)
{
	struct djmfs__jrec r = { .type = type, .ino = ino, .time_ns = 444 };
	struct djmfs__buf b;
	va_list ap;
	unsigned i;
	int err;

	djmfs__buf_init(&b);
	va_start(ap, n);
	for (i = 0; i < n; i++) {
		uint64_t first = va_arg(ap, uint64_t);

		djmfs__put_run(&b, first, va_arg(ap, uint32_t));
	}
	va_end(ap);
	r.u.runs.p = b.p;
	r.u.runs.n = n;
	err = apply(&r);
	djmfs__buf_free(&b);
	return err;
}

#define RESERVE(ino, first, count) \
	runs(DJMFS_J_RESERVE, ino, 1, (uint64_t)(first), (uint32_t)(count))
#define RELEASE(ino, first, count) \
	runs(DJMFS_J_RELEASE, ino, 1, (uint64_t)(first), (uint32_t)(count))

struct po {
	uint32_t id;
	uint64_t size;
	unsigned n;
	struct djmfs_extent e[4];
	const char *meta; /* non-NULL: has_meta */
	uint32_t meta_len;
};

static int publish_t(uint64_t ino, uint64_t base, uint64_t time_ns,
		     unsigned n, const struct po *p)
{
	struct djmfs__jrec r = { .type = DJMFS_J_PUBLISH, .ino = ino,
				 .time_ns = time_ns };
	struct djmfs__buf b[DJMFS_MAX_OBJS];
	unsigned i, k;
	int err;

	r.u.publish.base_version = base;
	r.u.publish.n_objs = n;
	for (i = 0; i < n; i++) {
		struct djmfs__pub_obj *o = &r.u.publish.objs[i];

		djmfs__buf_init(&b[i]);
		for (k = 0; k < p[i].n; k++)
			djmfs__put_ext(&b[i], p[i].e[k].offset, p[i].e[k].len);
		o->obj_id = p[i].id;
		o->size = p[i].size;
		o->ext.p = b[i].p;
		o->ext.n = p[i].n;
		o->has_meta = p[i].meta != NULL;
		o->meta = (const uint8_t *)p[i].meta;
		o->meta_len = p[i].meta_len;
	}
	err = apply(&r);
	for (i = 0; i < n; i++)
		djmfs__buf_free(&b[i]);
	return err;
}

static int publish(uint64_t ino, uint64_t base, unsigned n, const struct po *p)
{
	return publish_t(ino, base, 555, n, p);
}

/* One DATA object, one extent. */
static int pub1(uint64_t ino, uint64_t base, uint32_t id, uint64_t size,
		uint64_t off, uint64_t len)
{
	struct po p = { id, size, len ? 1 : 0, { { off, len } }, NULL, 0 };

	return publish(ino, base, 1, &p);
}

static const struct djmfs__file *wfile(const char *name)
{
	return djmfs__root_find(djmfs__meta_working(M), name);
}

/* ---- "changes nothing" ---- */

struct state {
	struct djmfs__buf img;
	uint64_t seq, reserved, next_ino;
	struct djmfs__root *working;
};

static void grab(struct state *s)
{
	djmfs__buf_init(&s->img);
	cr_assert_eq(djmfs__meta_serialize(M, &s->img), 0);
	s->seq = djmfs__meta_seq(M);
	s->reserved = djmfs__meta_reserved_aus(M);
	s->next_ino = djmfs__meta_next_ino(M);
	s->working = djmfs__meta_working(M);
}

/* Applies nothing itself: asserts @err is @want and the state as before. */
static void refused(int err, int want, const struct state *before,
		    const char *what)
{
	struct state now;

	cr_assert_eq(err, want, "%s: got %d (%s), want %d", what, err,
		     strerror(-err), want);
	grab(&now);
	cr_assert_eq(now.seq, before->seq, "%s: seq moved", what);
	cr_assert_eq(now.reserved, before->reserved, "%s", what);
	cr_assert_eq(now.next_ino, before->next_ino, "%s", what);
	cr_assert_eq(now.working, before->working, "%s: new root", what);
	cr_assert_eq(now.img.len, before->img.len, "%s: image", what);
	cr_assert_eq(memcmp(now.img.p, before->img.p, now.img.len), 0,
		     "%s: image", what);
	cr_assert_eq(nfreed, 0, "%s: units freed", what);
	djmfs__buf_free(&now.img);
}

/* ---- files and objects ---- */

Test(meta, file_create_sets_times_and_takes_the_next_ino)
{
	const struct djmfs__file *f;
	struct state s;

	cr_assert_eq(djmfs__meta_next_ino(M), 1);
	cr_assert_eq(file_create(1, "movie"), 0);
	f = wfile("movie");
	cr_assert_not_null(f);
	cr_assert_eq(f->ino, 1);
	cr_assert_eq(f->version, 0);
	cr_assert_eq(f->ctime_ns, 111);
	cr_assert_eq(f->mtime_ns, 111);
	cr_assert_eq(f->n_objs, 0);
	cr_assert_eq(djmfs__meta_next_ino(M), 2);
	cr_assert_eq(djmfs__meta_seq(M), 1);
	cr_assert_str_eq(djmfs__meta_name(M, 1), "movie");
	cr_assert_null(djmfs__meta_name(M, 2));

	grab(&s);
	refused(file_create(5, "other"), -EINVAL, &s, "ino not next");
	refused(file_create(2, "movie"), -EEXIST, &s, "name taken");
	refused(file_create(2, ""), -EINVAL, &s, "empty name");
	djmfs__buf_free(&s.img);
}

Test(meta, seq_and_type_must_be_right)
{
	struct djmfs__jrec r = { .type = DJMFS_J_FILE_CREATE, .ino = 1 };
	struct state s;

	strcpy(r.u.create.name, "x");
	grab(&s);
	r.seq = 2;
	refused(djmfs__meta_apply(M, &r), -EINVAL, &s, "seq skips");
	r.seq = 1;
	r.type = 99;
	refused(djmfs__meta_apply(M, &r), -EINVAL, &s, "unknown type");
	djmfs__buf_free(&s.img);
}

Test(meta, obj_create_appends_and_bumps_the_version)
{
	const struct djmfs__file *f;
	struct state s;
	char name[8];
	uint32_t i;

	cr_assert_eq(file_create(1, "f"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 1, META, "header"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 2, DATA | SYNC, "data"), 0);
	f = wfile("f");
	cr_assert_eq(f->version, 2);
	cr_assert_eq(f->n_objs, 2);
	cr_assert_eq(f->next_obj_id, 3);
	cr_assert_str_eq(f->objs[0]->name, "header");
	cr_assert_eq(f->objs[1]->attrs, DATA | SYNC);
	cr_assert_eq(f->mtime_ns, 111);

	grab(&s);
	refused(obj_op(DJMFS_J_OBJ_CREATE, 9, 3, DATA, "x"), -ENOENT, &s,
		"no file");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, META | DATA, "x"), -EINVAL,
		&s, "META|DATA");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, META | SYNC, "x"), -EINVAL,
		&s, "SYNC META");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, 0, "x"), -EINVAL, &s,
		"no kind");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 7, DATA, "x"), -EINVAL, &s,
		"id not next");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, DATA, "data"), -EEXIST, &s,
		"name taken");
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, DATA | SYNC, "x"), -EEXIST,
		&s, "second SYNC");
	djmfs__buf_free(&s.img);

	for (i = 3; i <= DJMFS_MAX_OBJS; i++) {
		snprintf(name, sizeof(name), "o%u", i);
		cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, i, DATA, name), 0);
	}
	grab(&s);
	refused(obj_op(DJMFS_J_OBJ_CREATE, 1, DJMFS_MAX_OBJS + 1, DATA, "x"),
		-ENOSPC, &s, "full");
	djmfs__buf_free(&s.img);
}

Test(meta, setattr_changes_only_sync)
{
	const struct djmfs__file *f;
	struct state s;

	cr_assert_eq(file_create(1, "f"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 1, DATA, "a"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 2, DATA, "b"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, META, "m"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_SETATTR, 1, 2, DATA | SYNC, NULL), 0);
	f = wfile("f");
	cr_assert_eq(f->objs[1]->attrs, DATA | SYNC);
	cr_assert_eq(f->version, 4);

	grab(&s);
	refused(obj_op(DJMFS_J_OBJ_SETATTR, 1, 1, DATA | SYNC, NULL), -EEXIST,
		&s, "second SYNC");
	refused(obj_op(DJMFS_J_OBJ_SETATTR, 1, 1, META, NULL), -EINVAL, &s,
		"DATA to META");
	refused(obj_op(DJMFS_J_OBJ_SETATTR, 1, 3, META | SYNC, NULL), -EINVAL,
		&s, "SYNC on META");
	refused(obj_op(DJMFS_J_OBJ_SETATTR, 1, 9, DATA, NULL), -ENOENT, &s,
		"no object");
	djmfs__buf_free(&s.img);

	cr_assert_eq(obj_op(DJMFS_J_OBJ_SETATTR, 1, 2, DATA, NULL), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_SETATTR, 1, 1, DATA | SYNC, NULL), 0);
	cr_assert_eq(wfile("f")->objs[0]->attrs, DATA | SYNC);
	cr_assert_eq(wfile("f")->version, 6);
}

Test(meta, quarantine_sets_the_flag_only)
{
	cr_assert_eq(file_create(1, "f"), 0);
	cr_assert_eq(simple(DJMFS_J_QUARANTINE, 1), 0);
	cr_assert_eq(wfile("f")->flags, DJMFS_FILE_QUARANTINED);
	cr_assert_eq(wfile("f")->version, 0);
	cr_assert_eq(simple(DJMFS_J_QUARANTINE, 2), -ENOENT);
}

/* ---- reservations and publishing ---- */

/* File 1 "f": DATA|SYNC object 1, META object 2, DATA object 3. */
static void std_file(void)
{
	cr_assert_eq(file_create(1, "f"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 1, DATA | SYNC, "data"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 2, META, "hdr"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 3, DATA, "idx"), 0);
}

struct rlist {
	struct djmfs__run r[16];
	uint64_t ino[16];
	unsigned n;
};

static int rlist_fn(void *arg, uint64_t ino, struct djmfs__run run)
{
	struct rlist *l = arg;

	l->ino[l->n] = ino;
	l->r[l->n++] = run;
	return 0;
}

Test(meta, reserve_publish_release_moves_units)
{
	const struct djmfs__obj *o;
	struct rlist l = { .n = 0 };

	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	cr_assert_eq(RESERVE(1, 10, 2), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 6);

	/* 1.5 units from unit 0: units 0 and 1 become the object's. */
	cr_assert_eq(pub1(1, 3, 1, 1000000, AT(0, 0), AU + AU / 2), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 4);
	/* Continues in its end unit (1) into unit 2: merged extent. */
	cr_assert_eq(pub1(1, 4, 1, 2 * AU, AT(1, AU / 2), AU + AU / 2), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 3);
	/* A new extent in reserved unit 10. */
	cr_assert_eq(pub1(1, 5, 1, 3 * AU, AT(10, 0), AU), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 2);

	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->n_ext, 2);
	cr_assert_eq(djmfs__obj_extent(o, 0).offset, AT(0, 0));
	cr_assert_eq(djmfs__obj_extent(o, 0).len, 3 * AU);
	cr_assert_eq(djmfs__obj_extent(o, 1).offset, AT(10, 0));
	cr_assert_eq(o->size, 3 * AU);
	cr_assert_eq(wfile("f")->version, 6);
	cr_assert_eq(wfile("f")->mtime_ns, 555);

	cr_assert_eq(djmfs__meta_walk_reserved(M, rlist_fn, &l), 0);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(l.ino[0], 1);
	cr_assert_eq(l.r[0].first + l.r[1].first, 3 + 11);
	cr_assert_eq(l.r[0].count + l.r[1].count, 2);

	cr_assert_eq(runs(DJMFS_J_RELEASE, 1, 2, (uint64_t)3, (uint32_t)1,
			  (uint64_t)11, (uint32_t)1), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 0);
	cr_assert_eq(nfreed, 2);
	cr_assert_eq(freed[0].first, 3);
	cr_assert_eq(freed[0].n, 1);
	cr_assert_eq(freed[0].kind, DJMFS_FREE_NOW);
	cr_assert_eq(freed[1].first, 11);
	cr_assert_eq(freed[1].kind, DJMFS_FREE_NOW);
}

Test(meta, reserve_and_release_refuse_bad_runs)
{
	struct state s;

	std_file();
	cr_assert_eq(RESERVE(1, 4, 4), 0);
	grab(&s);
	refused(RESERVE(1, NAUS - 1, 2), -EINVAL, &s, "past the end");
	refused(RESERVE(1, 0, 0), -EINVAL, &s, "empty run");
	refused(RESERVE(1, 6, 4), -EINVAL, &s, "overlaps");
	refused(runs(DJMFS_J_RESERVE, 1, 2, (uint64_t)20, (uint32_t)2,
		     (uint64_t)21, (uint32_t)1), -EINVAL, &s, "self overlap");
	refused(RESERVE(7, 20, 1), -ENOENT, &s, "no file");
	refused(RELEASE(1, 3, 2), -EINVAL, &s, "not all reserved");
	refused(runs(DJMFS_J_RELEASE, 1, 2, (uint64_t)4, (uint32_t)1,
		     (uint64_t)4, (uint32_t)1), -EINVAL, &s, "twice");
	djmfs__buf_free(&s.img);
	/* Part of a run splits it. */
	cr_assert_eq(RELEASE(1, 5, 2), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 2);
	cr_assert_eq(RELEASE(1, 4, 1), 0);
	cr_assert_eq(RELEASE(1, 7, 1), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 0);
}

Test(meta, publish_refusals_change_nothing)
{
	struct po big = { 2, DJMFS_META_MAX + 1, 0, { { 0, 0 } }, NULL,
			  DJMFS_META_MAX + 1 };
	struct po meta_ext = { 2, 3, 1, { { AT(2, 0), 4096 } }, "abc", 3 };
	struct po meta_size = { 2, 4, 0, { { 0, 0 } }, "abc", 3 };
	struct po data_bytes = { 1, 0, 0, { { 0, 0 } }, "abc", 3 };
	struct po two[2] = {
		{ 1, 8192, 1, { { AT(2, 0), 8192 } }, NULL, 0 },
		{ 3, 4096, 1, { { AT(2, 8192), 4096 } }, NULL, 0 },
	};
	struct po empty = { 1, 8192, 1, { { AT(1, 0), 0 } }, NULL, 0 };
	static char huge[DJMFS_META_MAX + 1];
	struct state s;

	big.meta = huge;
	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	cr_assert_eq(pub1(1, 3, 1, 8192, AT(0, 0), 8192), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 3);
	grab(&s);
	refused(pub1(1, 3, 1, 8192, AT(0, 8192), 4096), -ESTALE, &s, "stale");
	refused(pub1(1, 5, 1, 8192, AT(0, 8192), 4096), -ESTALE, &s, "ahead");
	refused(pub1(2, 0, 1, 0, AT(1, 0), 4096), -ENOENT, &s, "no file");
	refused(pub1(1, 4, 9, 0, AT(1, 0), 4096), -ENOENT, &s, "no object");
	refused(pub1(1, 4, 1, 8192, AT(1, 100), 4096), -EINVAL, &s,
		"misaligned");
	refused(pub1(1, 4, 1, 8192, DOFF - 4096, 4096), -EINVAL, &s,
		"before the data area");
	refused(pub1(1, 4, 1, 8192, AT(NAUS - 1, AU - 4096), 8192), -EINVAL,
		&s, "past the data area");
	refused(publish(1, 4, 1, &empty), -EINVAL, &s, "empty extent");
	refused(pub1(1, 4, 1, 4096, 0, 0), -EINVAL, &s, "shrinks");
	refused(pub1(1, 4, 1, 8193, 0, 0), -EINVAL, &s, "beyond the map");
	refused(pub1(1, 4, 1, 12288, AT(8, 0), 4096), -EPERM, &s,
		"unit not reserved");
	refused(pub1(1, 4, 1, 8192, AT(0, 4096), 4096), -EPERM, &s,
		"before the map end");
	refused(pub1(1, 4, 1, 8192, AT(3, 0), AU + 4096), -EPERM, &s,
		"runs past the reservation");
	refused(pub1(1, 4, 3, 4096, AT(0, 65536), 4096), -EPERM, &s,
		"in another object's end unit");
	refused(publish(1, 4, 2, two), -EPERM, &s, "two objects, one unit");
	refused(publish(1, 4, 1, &big), -EFBIG, &s, "META too big");
	refused(publish(1, 4, 1, &meta_ext), -EINVAL, &s, "META extents");
	refused(publish(1, 4, 1, &meta_size), -EINVAL, &s, "META size");
	refused(publish(1, 4, 1, &data_bytes), -EINVAL, &s, "DATA bytes");
	djmfs__buf_free(&s.img);

	/* And the same file still takes a good publish. */
	cr_assert_eq(pub1(1, 4, 1, 12288, AT(0, 8192), 4096), 0);
	cr_assert_eq(wfile("f")->version, 5);
}

Test(meta, publish_carries_meta_bytes_and_several_objects)
{
	struct po p[3] = {
		{ 2, 5, 0, { { 0, 0 } }, "hello", 5 },
		{ 1, 4096, 1, { { AT(0, 0), 4096 } }, NULL, 0 },
		{ 3, 100, 1, { { AT(1, 0), 4096 } }, NULL, 0 },
	};
	const struct djmfs__file *f;

	std_file();
	cr_assert_eq(RESERVE(1, 0, 2), 0);
	cr_assert_eq(publish_t(1, 3, 999, 3, p), 0);
	f = wfile("f");
	cr_assert_eq(f->version, 4);
	cr_assert_eq(f->mtime_ns, 999);
	cr_assert_eq(djmfs__file_obj(f, 2)->size, 5);
	cr_assert_eq(memcmp(djmfs__file_obj(f, 2)->meta, "hello", 5), 0);
	cr_assert_eq(djmfs__file_obj(f, 1)->size, 4096);
	cr_assert_eq(djmfs__file_obj(f, 3)->size, 100);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 0);
	/* An empty publish still makes a version. */
	cr_assert_eq(publish(1, 4, 0, NULL), 0);
	cr_assert_eq(wfile("f")->version, 5);
}

Test(meta, durable_root_follows_mark_durable)
{
	struct djmfs__root *d0 = djmfs__meta_durable(M);

	cr_assert_eq(file_create(1, "a"), 0); /* seq 1 */
	cr_assert_eq(file_create(2, "b"), 0); /* seq 2 */
	cr_assert_eq(file_create(3, "c"), 0); /* seq 3 */
	cr_assert_eq(djmfs__meta_durable(M), d0);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 0);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_working(M)), 3);

	djmfs__meta_mark_durable(M, 1);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 1);
	cr_assert_not_null(djmfs__root_find(djmfs__meta_durable(M), "a"));
	djmfs__meta_mark_durable(M, 1); /* again: no change */
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 1);
	djmfs__meta_mark_durable(M, 100);
	cr_assert_eq(djmfs__meta_durable(M), djmfs__meta_working(M));

	/* Records that leave the root as it was still move durable. */
	cr_assert_eq(RESERVE(1, 0, 1), 0);
	cr_assert_eq(file_create(4, "d"), 0);
	djmfs__meta_mark_durable(M, 4);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 3);
	djmfs__meta_mark_durable(M, 5);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 4);
}

Test(meta, many_pending_records_grow_the_ring)
{
	char name[16];
	unsigned i;

	for (i = 1; i <= 300; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		cr_assert_eq(file_create(i, name), 0);
	}
	djmfs__meta_mark_durable(M, 150);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 150);
	djmfs__meta_mark_durable(M, 300);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 300);
}

/* ---- units leaving the metadata ---- */

static void expect_freed(unsigned i, uint64_t first, uint64_t n,
			 enum djmfs__free_kind kind)
{
	cr_assert_gt(nfreed, i);
	cr_assert_eq(freed[i].first, first, "[%u] first %lu", i,
		     (unsigned long)freed[i].first);
	cr_assert_eq(freed[i].n, n, "[%u] n %lu", i,
		     (unsigned long)freed[i].n);
	cr_assert_eq(freed[i].kind, kind);
}

/* Object 1 on units 0..2 (one merged extent ending inside unit 2) and
 * unit 5; object 3 on unit 6; units 7 and 9 still reserved. */
static void mapped_file(void)
{
	std_file();
	cr_assert_eq(RESERVE(1, 0, 3), 0);
	cr_assert_eq(runs(DJMFS_J_RESERVE, 1, 3, (uint64_t)5, (uint32_t)3,
			  (uint64_t)9, (uint32_t)1, (uint64_t)30, (uint32_t)0),
		     -EINVAL); /* the empty third run refuses them all */
	cr_assert_eq(runs(DJMFS_J_RESERVE, 1, 2, (uint64_t)5, (uint32_t)3,
			  (uint64_t)9, (uint32_t)1), 0);
	cr_assert_eq(pub1(1, 3, 1, 4096, AT(0, 0), AU + 4096), 0);
	cr_assert_eq(pub1(1, 4, 1, 8192, AT(1, 4096), AU), 0);
	cr_assert_eq(pub1(1, 5, 1, 8192, AT(5, 0), 4096), 0);
	cr_assert_eq(pub1(1, 6, 3, 10, AT(6, 0), 4096), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 2);
	nfreed = 0;
}

Test(meta, obj_delete_frees_its_units_deferred_once)
{
	mapped_file();
	cr_assert_eq(obj_op(DJMFS_J_OBJ_DELETE, 1, 1, 0, NULL), 0);
	cr_assert_eq(nfreed, 2);
	expect_freed(0, 0, 3, DJMFS_FREE_DEFERRED);
	expect_freed(1, 5, 1, DJMFS_FREE_DEFERRED);
	cr_assert_eq(wfile("f")->n_objs, 2);
	cr_assert_eq(wfile("f")->version, 8);
	cr_assert_null(djmfs__file_obj(wfile("f"), 1));
	cr_assert_eq(djmfs__meta_reserved_aus(M), 2);

	nfreed = 0;
	cr_assert_eq(obj_op(DJMFS_J_OBJ_DELETE, 1, 1, 0, NULL), -ENOENT);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_DELETE, 1, 2, 0, NULL), 0); /* META */
	cr_assert_eq(nfreed, 0);
}

Test(meta, unlink_frees_reservations_now_and_data_deferred)
{
	mapped_file();
	cr_assert_eq(simple(DJMFS_J_FILE_UNLINK, 1), 0);
	cr_assert_eq(nfreed, 4);
	expect_freed(0, 7, 1, DJMFS_FREE_NOW);
	expect_freed(1, 9, 1, DJMFS_FREE_NOW);
	expect_freed(2, 0, 3, DJMFS_FREE_DEFERRED);
	expect_freed(3, 5, 2, DJMFS_FREE_DEFERRED); /* units 5 and 6 */
	cr_assert_null(wfile("f"));
	cr_assert_null(djmfs__meta_name(M, 1));
	cr_assert_eq(djmfs__meta_reserved_aus(M), 0);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_working(M)), 0);
	cr_assert_eq(simple(DJMFS_J_FILE_UNLINK, 1), -ENOENT);
	/* The name is free again, under a new inode. */
	cr_assert_eq(file_create(2, "f"), 0);
	cr_assert_str_eq(djmfs__meta_name(M, 2), "f");
}

struct mlist {
	uint64_t ino[16], first[16], n[16];
	unsigned count;
};

static int mlist_fn(void *arg, uint64_t ino, uint64_t first, uint64_t n)
{
	struct mlist *l = arg;

	l->ino[l->count] = ino;
	l->first[l->count] = first;
	l->n[l->count++] = n;
	return 0;
}

Test(meta, walk_mapped_reports_each_objects_unit_ranges)
{
	struct mlist l = { .count = 0 };

	mapped_file();
	cr_assert_eq(djmfs__meta_walk_mapped(M, mlist_fn, &l), 0);
	cr_assert_eq(l.count, 3);
	cr_assert_eq(l.first[0], 0);
	cr_assert_eq(l.n[0], 3);
	cr_assert_eq(l.first[1], 5);
	cr_assert_eq(l.n[1], 1);
	cr_assert_eq(l.first[2], 6);
	cr_assert_eq(l.n[2], 1);
	cr_assert_eq(l.ino[2], 1);
}

Test(meta, drop_reservations_forgets_them_without_frees)
{
	mapped_file();
	cr_assert_eq(djmfs__meta_drop_reservations(M), 2);
	cr_assert_eq(djmfs__meta_reserved_aus(M), 0);
	cr_assert_eq(nfreed, 0);
	cr_assert_eq(RELEASE(1, 7, 1), -EINVAL);
}

/* ---- checkpoint images ---- */

static void rich_state(void)
{
	struct po m = { 2, 11, 0, { { 0, 0 } }, "hello world", 11 };

	mapped_file();
	cr_assert_eq(publish(1, 7, 1, &m), 0);
	cr_assert_eq(file_create(2, "a-second"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 2, 1, META, "only"), 0);
	cr_assert_eq(RESERVE(2, 40, 3), 0);
	cr_assert_eq(file_create(3, "zz-gone"), 0);
	cr_assert_eq(simple(DJMFS_J_FILE_UNLINK, 3), 0);
	cr_assert_eq(file_create(4, "q"), 0);
	cr_assert_eq(simple(DJMFS_J_QUARANTINE, 4), 0);
}

Test(meta, serialize_load_serialize_gives_the_same_bytes)
{
	struct djmfs__buf a, b;
	struct djmfs__meta *m2 = mk_meta(NAUS);
	const struct djmfs__file *f;

	rich_state();
	djmfs__buf_init(&a);
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__meta_serialize(M, &a), 0);
	cr_assert_eq(djmfs__meta_load(m2, a.p, a.len, 77), 0);
	cr_assert_eq(djmfs__meta_serialize(m2, &b), 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.p, b.p, a.len), 0);

	cr_assert_eq(djmfs__meta_seq(m2), 77);
	cr_assert_eq(djmfs__meta_next_ino(m2), 5);
	cr_assert_eq(djmfs__meta_reserved_aus(m2), 5);
	cr_assert_str_eq(djmfs__meta_name(m2, 2), "a-second");
	cr_assert_null(djmfs__meta_name(m2, 3));
	cr_assert_eq(djmfs__meta_durable(m2), djmfs__meta_working(m2));
	f = djmfs__root_find(djmfs__meta_working(m2), "f");
	cr_assert_eq(f->version, 8);
	cr_assert_eq(djmfs__file_obj(f, 1)->n_ext, 2);
	cr_assert_eq(memcmp(djmfs__file_obj(f, 2)->meta, "hello world", 11), 0);
	cr_assert_eq(djmfs__root_find(djmfs__meta_working(m2), "q")->flags,
		     DJMFS_FILE_QUARANTINED);
	/* The loaded state goes on where the old one was. */
	struct djmfs__meta *keep = M;
	M = m2;
	cr_assert_eq(pub1(1, 8, 1, 12288, AT(5, 4096), 4096), 0);
	cr_assert_eq(djmfs__meta_seq(m2), 78);
	M = keep;

	/* An empty image is an empty volume. */
	cr_assert_eq(djmfs__meta_load(m2, NULL, 0, 5), 0);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_working(m2)), 0);
	cr_assert_eq(djmfs__meta_next_ino(m2), 1);
	cr_assert_eq(djmfs__meta_seq(m2), 5);
	djmfs__buf_free(&a);
	djmfs__buf_free(&b);
	djmfs__meta_free(m2);
}

static void expect_empty(struct djmfs__meta *m)
{
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_working(m)), 0);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(m)), 0);
	cr_assert_eq(djmfs__meta_reserved_aus(m), 0);
	cr_assert_eq(djmfs__meta_next_ino(m), 1);
	cr_assert_null(djmfs__meta_name(m, 1));
}

Test(meta, load_rejects_truncated_and_garbled_images)
{
	struct djmfs__meta *m2 = mk_meta(NAUS);
	struct djmfs__buf a;
	uint8_t *copy;
	size_t k;
	int err;

	rich_state();
	djmfs__buf_init(&a);
	cr_assert_eq(djmfs__meta_serialize(M, &a), 0);
	for (k = 1; k < a.len; k++) {
		cr_assert_eq(djmfs__meta_load(m2, a.p, k, 1), -EBADMSG,
			     "%zu of %zu bytes", k, a.len);
		expect_empty(m2);
	}
	copy = malloc(a.len + 1);
	memcpy(copy, a.p, a.len);
	copy[a.len] = 0;
	cr_assert_eq(djmfs__meta_load(m2, copy, a.len + 1, 1), -EBADMSG,
		     "trailing byte");
	expect_empty(m2);
	copy[0] ^= 1;
	cr_assert_eq(djmfs__meta_load(m2, copy, a.len, 1), -EBADMSG, "magic");
	copy[0] ^= 1;
	copy[4] = 4;
	cr_assert_eq(djmfs__meta_load(m2, copy, a.len, 1), -EBADMSG, "version");
	copy[4] = 3;
	memset(copy + 16, 0xff, 8); /* n_files */
	cr_assert_eq(djmfs__meta_load(m2, copy, a.len, 1), -EBADMSG, "files");
	expect_empty(m2);

	/* Every single-byte change is either refused whole or loaded. */
	for (k = 0; k < a.len; k++) {
		memcpy(copy, a.p, a.len);
		copy[k] ^= 0x5a;
		err = djmfs__meta_load(m2, copy, a.len, 1);
		cr_assert(err == 0 || err == -EBADMSG, "byte %zu: %d", k, err);
		if (err)
			expect_empty(m2);
	}
	free(copy);
	djmfs__buf_free(&a);
	djmfs__meta_free(m2);
}

/* ---- snapshots and scale ---- */

Test(meta, a_held_file_version_stays_readable_after_many_publishes)
{
	const struct djmfs__file *snap;
	const struct djmfs__obj *o;
	uint64_t v, size = 8192;
	unsigned i;

	std_file();
	cr_assert_eq(RESERVE(1, 0, 60), 0);
	cr_assert_eq(pub1(1, 3, 1, size, AT(0, 0), 8192), 0);
	snap = djmfs__file_ref(wfile("f"));
	djmfs__meta_mark_durable(M, djmfs__meta_seq(M));
	v = snap->version;

	for (i = 0; i < 500; i++) {
		const struct djmfs__obj *cur = djmfs__file_obj(wfile("f"), 1);
		uint64_t end = djmfs__obj_map_end(cur);
		/* Mostly continue the extent; every 10th jumps a unit. */
		uint64_t off = i % 10 == 9 ? AT(1 + i / 10, 0) : end;

		size += 4096;
		cr_assert_eq(pub1(1, v + i, 1, size, off, 4096), 0, "%u", i);
		if (i % 50 == 0)
			djmfs__meta_mark_durable(M, djmfs__meta_seq(M));
	}
	djmfs__meta_mark_durable(M, djmfs__meta_seq(M));
	o = djmfs__file_obj(snap, 1);
	cr_assert_eq(snap->version, v);
	cr_assert_eq(o->size, 8192);
	cr_assert_eq(o->n_ext, 1);
	cr_assert_eq(djmfs__obj_extent(o, 0).offset, AT(0, 0));
	cr_assert_eq(djmfs__obj_extent(o, 0).len, 8192);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->size, size);
	cr_assert_eq(o->n_ext, 1 + 50);
	cr_assert_eq(djmfs__obj_maplen(o), size);
	djmfs__file_unref(snap);
}

Test(meta, thousand_files_by_hundred_publishes_run_fast)
{
	struct djmfs__meta *keep = M;
	struct timespec t0, t1;
	char name[32];
	unsigned f, p;
	double secs;

	M = mk_meta(2048);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (f = 1; f <= 1000; f++) {
		snprintf(name, sizeof(name), "stream-%04u", f);
		cr_assert_eq(file_create(f, name), 0);
		cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, f, 1, DATA | SYNC, "d"),
			     0);
		cr_assert_eq(RESERVE(f, f, 1), 0);
	}
	for (p = 0; p < 100; p++) {
		for (f = 1; f <= 1000; f++) {
			uint64_t off = AT(f, (uint64_t)p * 8192);

			cr_assert_eq(pub1(f, 1 + p, 1, (p + 1) * 8192ull, off,
					  8192), 0);
		}
		djmfs__meta_mark_durable(M, djmfs__meta_seq(M));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_eq(djmfs__meta_seq(M), 3000 + 100000);
	cr_assert_eq(djmfs__file_obj(wfile("stream-0500"), 1)->n_ext, 1);
	cr_assert_eq(djmfs__file_obj(wfile("stream-0500"), 1)->size, 819200);
	cr_assert_lt(secs, 5.0, "%.2f s", secs); /* ~0.1 s unsanitised */
	djmfs__meta_free(M);
	M = keep;
}

/* ---- random records against a model of unit ownership ---- */

struct model {
	uint8_t is_free[NAUS]; /* the allocator's view: 1 = free */
	uint8_t seen[NAUS];    /* per check: owners found */
	uint64_t rng;
};

static uint64_t rnd(struct model *md, uint64_t n)
{
	md->rng ^= md->rng << 13;
	md->rng ^= md->rng >> 7;
	md->rng ^= md->rng << 17;
	return md->rng % n;
}

/* Units handed to on_free go back to the free pool at once. */
static void model_collect(struct model *md)
{
	unsigned i;
	uint64_t u;

	for (i = 0; i < nfreed; i++)
		for (u = freed[i].first; u < freed[i].first + freed[i].n; u++) {
			cr_assert(!md->is_free[u], "unit %lu freed twice",
				  (unsigned long)u);
			md->is_free[u] = 1;
		}
	nfreed = 0;
}

static int seen_mapped(void *arg, uint64_t ino, uint64_t first, uint64_t n)
{
	struct model *md = arg;
	uint64_t u;

	(void)ino;
	for (u = first; u < first + n; u++)
		md->seen[u]++;
	return 0;
}

static int seen_reserved(void *arg, uint64_t ino, struct djmfs__run run)
{
	return seen_mapped(arg, ino, run.first, run.count);
}

static int check_one(void *arg, const struct djmfs__file *f)
{
	char why[128];

	(void)arg;
	cr_assert_eq(djmfs__file_check(f, DOFF, AT(NAUS, 0), why, sizeof(why)),
		     0, "%s: %s", f->name, why);
	return 0;
}

/* Every unit is exactly one of: free, mapped by one object, reserved. */
static void model_check(struct model *md)
{
	unsigned u;

	memset(md->seen, 0, sizeof(md->seen));
	djmfs__meta_walk_mapped(M, seen_mapped, md);
	djmfs__meta_walk_reserved(M, seen_reserved, md);
	for (u = 0; u < NAUS; u++)
		cr_assert_eq(md->seen[u] + md->is_free[u], 1, "unit %u", u);
	djmfs__root_walk(djmfs__meta_working(M), NULL, check_one, NULL);
}

static int model_take(struct model *md)
{
	unsigned u, start = (unsigned)rnd(md, NAUS);

	for (u = 0; u < NAUS; u++)
		if (md->is_free[(start + u) % NAUS])
			return (int)((start + u) % NAUS);
	return -1;
}

struct nth {
	uint64_t k;
	const struct djmfs__file *f;
};

static int nth_fn(void *arg, const struct djmfs__file *f)
{
	struct nth *n = arg;

	n->f = f;
	return n->k-- == 0;
}

/* A live file, at random (NULL when there is none). */
static const struct djmfs__file *any_file(struct model *md)
{
	struct djmfs__root *r = djmfs__meta_working(M);
	struct nth n = { 0, NULL };

	if (djmfs__root_nfiles(r))
		n.k = rnd(md, djmfs__root_nfiles(r));
	djmfs__root_walk(r, NULL, nth_fn, &n);
	return n.f;
}

struct pick {
	uint64_t ino;
	int unit; /* the last reserved unit of ino seen, or -1 */
	unsigned skip;
};

static int pick_fn(void *arg, uint64_t ino, struct djmfs__run run)
{
	struct pick *p = arg;

	if (ino == p->ino) {
		p->unit = (int)(run.first + p->skip % run.count);
		if (p->skip-- == 0)
			return 1;
	}
	return 0;
}

/* A unit reserved for @ino, or (rarely, and when there is none) any. */
static int some_unit(struct model *md, uint64_t ino)
{
	struct pick p = { ino, -1, (unsigned)rnd(md, 4) };

	djmfs__meta_walk_reserved(M, pick_fn, &p);
	return p.unit >= 0 && rnd(md, 8) ? p.unit : (int)rnd(md, NAUS);
}

/* A PUBLISH of one DATA object: continue in its end unit, or start in a
 * unit the file has reserved (or, now and then, one it has not). */
static void random_publish(struct model *md, const struct djmfs__file *f)
{
	uint32_t i, at = (uint32_t)rnd(md, f->n_objs);
	const struct djmfs__obj *o = f->objs[at];
	uint64_t end, off, len, room;
	int u = some_unit(md, f->ino);

	for (i = 0; !(o->attrs & DATA) && i < f->n_objs; i++)
		o = f->objs[(at + i) % f->n_objs];
	if (!(o->attrs & DATA))
		return;
	end = djmfs__obj_map_end(o);
	room = end ? AU - (end - DOFF) % AU : 0;
	if (end && room < AU && rnd(md, 3)) {
		off = end;
		len = (1 + rnd(md, room / 4096)) * 4096;
	} else {
		off = AT(u, rnd(md, 4) * 4096);
		len = (1 + rnd(md, (rnd(md, 4) ? 1 : 2) * AU / 4096)) * 4096;
		if (off + len > AT(NAUS, 0))
			len = AT(NAUS, 0) - off;
	}
	pub1(f->ino, f->version, o->id,
	     o->size + rnd(md, djmfs__obj_maplen(o) + len - o->size + 1),
	     off, len);
}

static void random_step(struct model *md)
{
	static const uint32_t kinds[] = { DATA, DATA | SYNC, META, DATA };
	const struct djmfs__file *f = any_file(md);
	uint64_t ino = f && rnd(md, 16) ? f->ino
					: 1 + rnd(md, djmfs__meta_next_ino(M));
	char name[16];
	int u;

	f = ino == (f ? f->ino : 0) ? f : NULL;
	switch (rnd(md, 12)) {
	case 0:
		snprintf(name, sizeof(name), "n%u", (unsigned)rnd(md, 16));
		file_create(djmfs__meta_next_ino(M), name);
		break;
	case 1:
		if (rnd(md, 3) == 0)
			simple(DJMFS_J_FILE_UNLINK, ino);
		break;
	case 2:
		snprintf(name, sizeof(name), "o%u", (unsigned)rnd(md, 20));
		if (f)
			obj_op(DJMFS_J_OBJ_CREATE, ino, f->next_obj_id,
			       kinds[rnd(md, 4)], name);
		break;
	case 3:
		if (f && f->n_objs && rnd(md, 3) == 0)
			obj_op(DJMFS_J_OBJ_DELETE, ino,
			       f->objs[rnd(md, f->n_objs)]->id, 0, NULL);
		break;
	case 4:
	case 5:
		u = model_take(md);
		if (u >= 0 && RESERVE(ino, u, 1) == 0)
			md->is_free[u] = 0;
		break;
	case 6:
		RELEASE(ino, some_unit(md, ino), 1);
		break;
	default:
		if (f && f->n_objs)
			random_publish(md, f);
		break;
	}
	model_collect(md);
}

Test(meta, random_records_keep_every_unit_owned_once)
{
	struct model md = { .rng = 0x2545f4914f6cdd1dull };
	struct djmfs__buf a, b;
	struct djmfs__meta *m2 = mk_meta(NAUS);
	unsigned i;

	memset(md.is_free, 1, sizeof(md.is_free));
	for (i = 0; i < 20000; i++) {
		random_step(&md);
		if (i % 50 == 0)
			model_check(&md);
		if (i % 1000 == 0)
			djmfs__meta_mark_durable(M, djmfs__meta_seq(M));
	}
	model_check(&md);

	djmfs__buf_init(&a);
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__meta_serialize(M, &a), 0);
	cr_assert_eq(djmfs__meta_load(m2, a.p, a.len, 1), 0);
	cr_assert_eq(djmfs__meta_serialize(m2, &b), 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.p, b.p, a.len), 0);
	djmfs__buf_free(&a);
	djmfs__buf_free(&b);
	djmfs__meta_free(m2);
}

/* Batched (the server): only sealed states become durable, and edits
 * between seals go into the private working tree in place without ever
 * changing what an older sealed root shows. */
Test(meta, batched_mode_makes_only_sealed_states_durable)
{
	struct djmfs__meta_opts o = {
		.data_off = DOFF, .n_aus = NAUS, .au_size = AU,
		.on_free = on_free, .batched = 1,
	};
	struct djmfs__root *sealed;
	struct djmfs__meta *m;

	djmfs__meta_free(M);
	cr_assert_eq(djmfs__meta_new(&m, &o), 0);
	M = m;
	cr_assert_eq(file_create(1, "a"), 0); /* seq 1 */
	cr_assert_eq(file_create(2, "b"), 0); /* seq 2 */
	djmfs__meta_seal(M);
	sealed = djmfs__root_ref(djmfs__meta_working(M));
	cr_assert_eq(file_create(3, "c"), 0); /* seq 3 */
	cr_assert_eq(pub1(1, 0, 0, 0, 0, 0), -ENOENT); /* no object 0 */
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 1, DJMFS_ATTR_DATA, "d"), 0);
	cr_assert_eq(obj_op(DJMFS_J_OBJ_CREATE, 1, 2, DJMFS_ATTR_META, "m"), 0);
	/* seq 5: in place in the private tree; the sealed root keeps v0. */
	cr_assert_eq(djmfs__root_find(sealed, "a")->version, 0);
	cr_assert_eq(djmfs__root_find(djmfs__meta_working(M), "a")->version,
		     2);

	djmfs__meta_mark_durable(M, 4); /* inside the unsealed range */
	cr_assert_eq(djmfs__meta_durable_seq(M), 2);
	cr_assert_eq(djmfs__meta_durable(M), sealed);
	djmfs__meta_seal(M);
	djmfs__meta_seal(M); /* nothing new: no second entry */
	djmfs__meta_mark_durable(M, 5);
	cr_assert_eq(djmfs__meta_durable_seq(M), 5);
	cr_assert_eq(djmfs__root_nfiles(djmfs__meta_durable(M)), 3);
	cr_assert_eq(djmfs__root_find(djmfs__meta_durable(M), "a")->n_objs, 2);
	cr_assert_eq(djmfs__root_nfiles(sealed), 2);
	djmfs__root_unref(sealed);
}

/* Replay of a journal holding a record this state refuses: skipping its
 * seq lets the records after it apply. */
Test(meta, skipping_a_refused_record_lets_later_ones_apply)
{
	cr_assert_eq(file_create(1, "a"), 0);			  /* seq 1 */
	cr_assert_eq(obj_op(DJMFS_J_OBJ_DELETE, 1, 9, 0, NULL), -ENOENT); /* 2 */
	cr_assert_eq(djmfs__meta_seq(M), 1);
	djmfs__meta_skip(M, 3);	/* not the next one: no effect */
	cr_assert_eq(djmfs__meta_seq(M), 1);
	djmfs__meta_skip(M, 2);
	cr_assert_eq(djmfs__meta_seq(M), 2);
	cr_assert_eq(file_create(2, "b"), 0); /* seq 3 */
	cr_assert_eq(djmfs__meta_seq(M), 3);
	cr_assert_not_null(wfile("b"));
}

/* ---- data checksums ---- */

#define CKB DJMFS_CK_BLOCK

/* A PUBLISH with sums of DATA object @id: @n sums from cblock
 * @ck_first (values first_val, first_val + 1, ...), then @last_ck. */
static int pubck(uint64_t ino, uint64_t base, uint32_t id, uint64_t size,
		 uint64_t off, uint64_t len, uint32_t ck_first, uint32_t n,
		 uint32_t first_val, uint32_t last_ck)
{
	struct djmfs__jrec r = { .type = DJMFS_J_PUBLISH, .ino = ino,
				 .time_ns = 666 };
	struct djmfs__pub_obj *o = &r.u.publish.objs[0];
	struct djmfs__buf x, c;
	int err;

	djmfs__buf_init(&x);
	djmfs__buf_init(&c);
	if (len)
		djmfs__put_ext(&x, off, len);
	for (uint32_t k = 0; k < n; k++)
		djmfs__put_u32(&c, first_val + k);
	r.u.publish.has_ck = 1;
	r.u.publish.base_version = base;
	r.u.publish.n_objs = 1;
	o->obj_id = id;
	o->size = size;
	o->ext.p = x.p;
	o->ext.n = len ? 1 : 0;
	o->ck_first = ck_first;
	o->ck.p = c.p;
	o->ck.n = n;
	o->last_ck = last_ck;
	err = apply(&r);
	djmfs__buf_free(&x);
	djmfs__buf_free(&c);
	return err;
}

Test(meta, publish_keeps_sums_per_cblock_and_versions_see_their_own)
{
	const struct djmfs__file *f1;
	const struct djmfs__obj *o;

	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	/* 2.5 cblocks: two sums, the half one as last_ck. */
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB + CKB / 2, AT(0, 0), 3 * CKB, 0,
			   2, 100, 0xaaaa), 0);
	f1 = djmfs__file_ref(wfile("f"));
	/* To 4 cblocks exactly: ck_first 2, two more sums, no last. */
	cr_assert_eq(pubck(1, 4, 1, 4 * CKB, AT(0, 3 * CKB), CKB, 2, 2, 200,
			   0), 0);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->n_ck, 4);
	cr_assert_eq(djmfs__obj_ck(o, 1), 101);
	cr_assert_eq(djmfs__obj_ck(o, 2), 200);
	cr_assert_eq(djmfs__obj_ck(o, 3), 201);
	cr_assert_eq(o->last_ck, 0);
	cr_assert_eq(o->ck_flags, 0);
	/* The older version still sees two sums and its own last one. */
	o = djmfs__file_obj(f1, 1);
	cr_assert_eq(o->n_ck, 2);
	cr_assert_eq(o->last_ck, 0xaaaa);
	djmfs__file_unref(f1);
}

Test(meta, publish_refuses_sums_that_do_not_match_the_sizes)
{
	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	/* ck_first not the old size's cblock. */
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB, AT(0, 0), 2 * CKB, 1, 1, 1, 0),
		     -EINVAL);
	/* One sum short, one too many. */
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB, AT(0, 0), 2 * CKB, 0, 1, 1, 0),
		     -EINVAL);
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB, AT(0, 0), 2 * CKB, 0, 3, 1, 0),
		     -EINVAL);
	/* A last sum at a cblock boundary. */
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB, AT(0, 0), 2 * CKB, 0, 2, 1, 7),
		     -EINVAL);
	/* Sums for a META object. */
	{
		struct djmfs__jrec r = { .type = DJMFS_J_PUBLISH, .ino = 1 };
		struct djmfs__pub_obj *o = &r.u.publish.objs[0];

		r.u.publish.has_ck = 1;
		r.u.publish.base_version = 3;
		r.u.publish.n_objs = 1;
		o->obj_id = 2;
		o->size = 2;
		o->has_meta = 1;
		o->meta = (const uint8_t *)"hi";
		o->meta_len = 2;
		o->last_ck = 5;
		cr_assert_eq(apply(&r), -EINVAL);
		o->last_ck = 0;
		cr_assert_eq(apply(&r), 0);
	}
	cr_assert_eq(djmfs__meta_seq(M), 6);
	cr_assert_eq(pubck(1, 4, 1, 2 * CKB, AT(0, 0), 2 * CKB, 0, 2, 1, 0),
		     0);
}

Test(meta, a_publish_without_sums_stops_the_objects_sums)
{
	const struct djmfs__obj *o;

	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	cr_assert_eq(pubck(1, 3, 1, CKB + 10, AT(0, 0), 2 * CKB, 0, 1, 9, 3),
		     0);
	/* A record of the first format (no sums) grows it. */
	cr_assert_eq(pub1(1, 4, 1, 3 * CKB, AT(0, 2 * CKB), CKB), 0);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->ck_flags, DJMFS_OBJ_CK_GAP);
	cr_assert_eq(o->n_ck, 1);
	/* Later sums are checked against the sizes but not kept. */
	cr_assert_eq(pubck(1, 5, 1, 4 * CKB, AT(0, 3 * CKB), CKB, 3, 1, 50, 0),
		     0);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->n_ck, 1);
	cr_assert_eq(djmfs__obj_ck(o, 0), 9);
	/* A fresh object published without sums but with no bytes has
	 * none to lose. */
	cr_assert_eq(pub1(1, 6, 3, 0, 0, 0), 0);
	cr_assert_eq(djmfs__file_obj(wfile("f"), 3)->ck_flags, 0);
}

Test(meta, sums_survive_an_image_and_a_first_format_image_is_unverified)
{
	struct djmfs__meta *m2 = mk_meta(NAUS);
	struct djmfs__buf a, v1;
	const struct djmfs__obj *o;

	std_file();
	cr_assert_eq(RESERVE(1, 0, 4), 0);
	cr_assert_eq(pubck(1, 3, 1, 2 * CKB + 5, AT(0, 0), 3 * CKB, 0, 2, 70,
			   0x5555), 0);
	djmfs__buf_init(&a);
	cr_assert_eq(djmfs__meta_serialize(M, &a), 0);
	cr_assert_eq(djmfs__meta_load(m2, a.p, a.len, 9), 0);
	o = djmfs__file_obj(djmfs__root_find(djmfs__meta_working(m2), "f"), 1);
	cr_assert_eq(o->n_ck, 2);
	cr_assert_eq(djmfs__obj_ck(o, 1), 71);
	cr_assert_eq(o->last_ck, 0x5555);
	cr_assert_eq(o->ck_flags, 0);

	/* The same state as image version 1 wrote it: no sum fields. */
	djmfs__buf_init(&v1);
	djmfs__put_u32(&v1, 0x494d4a44u);
	djmfs__put_u32(&v1, 1);
	djmfs__put_u64(&v1, 2);
	djmfs__put_u64(&v1, 1);
	djmfs__put_u64(&v1, 1);
	djmfs__put_str(&v1, "f");
	djmfs__put_u64(&v1, 4);
	djmfs__put_u32(&v1, 0);
	djmfs__put_u64(&v1, 1);
	djmfs__put_u64(&v1, 2);
	djmfs__put_u32(&v1, 3);
	djmfs__put_u32(&v1, 2);
	djmfs__put_u32(&v1, 1); /* a DATA object with bytes */
	djmfs__put_u32(&v1, DATA);
	djmfs__put_str(&v1, "data");
	djmfs__put_u64(&v1, 5000);
	djmfs__put_u32(&v1, 1);
	djmfs__put_u64(&v1, AT(0, 0));
	djmfs__put_u64(&v1, 8192);
	djmfs__put_u32(&v1, 0);
	djmfs__put_u32(&v1, 2); /* an empty one */
	djmfs__put_u32(&v1, DATA);
	djmfs__put_str(&v1, "new");
	djmfs__put_u64(&v1, 0);
	djmfs__put_u32(&v1, 0);
	djmfs__put_u32(&v1, 0);
	djmfs__put_u32(&v1, 0); /* no reservations */
	cr_assert_eq(v1.err, 0);
	cr_assert_eq(djmfs__meta_load(m2, v1.p, v1.len, 3), 0);
	o = djmfs__file_obj(djmfs__root_find(djmfs__meta_working(m2), "f"), 1);
	cr_assert_eq(o->ck_flags, DJMFS_OBJ_CK_GAP);
	cr_assert_eq(o->n_ck, 0);
	cr_assert_eq(o->size, 5000);
	o = djmfs__file_obj(djmfs__root_find(djmfs__meta_working(m2), "f"), 2);
	cr_assert_eq(o->ck_flags, 0);
	/* Read as version 2 it is short of the sum fields. */
	v1.p[4] = 2;
	cr_assert_eq(djmfs__meta_load(m2, v1.p, v1.len, 3), -EBADMSG);
	djmfs__buf_free(&a);
	djmfs__buf_free(&v1);
	djmfs__meta_free(m2);
}

/* ---- TRIM ---- */

static int trim(uint64_t ino, uint32_t id, uint64_t start)
{
	struct djmfs__jrec r = { .type = DJMFS_J_TRIM, .ino = ino,
				 .time_ns = 777 };

	r.u.trim.obj_id = id;
	r.u.trim.start = start;
	return apply(&r);
}

/* Object 1 of "f": extent 0 on units 0..3 (3 MiB + 4 KiB), extent 1 on
 * unit 5 (1 MiB); 4 MiB + 4 KiB published, version 5; units 4, 6 and
 * 7 still reserved. */
static void recording(void)
{
	std_file();
	cr_assert_eq(RESERVE(1, 0, 8), 0);
	cr_assert_eq(pub1(1, 3, 1, 3 * AU + 100, AT(0, 0), 3 * AU + 4096), 0);
	cr_assert_eq(pub1(1, 4, 1, 4 * AU + 4096, AT(5, 0), AU), 0);
	nfreed = 0;
}

/* The records a trimmed recording is made of, applied to the current
 * state: the same on any state that starts empty (replay). */
static void trimmed_recording(void)
{
	recording();
	cr_assert_eq(trim(1, 1, AU + 10), 0);
	cr_assert_eq(trim(1, 1, 3 * AU + 4096 + 1), 0);
}

Test(meta, trim_frees_only_whole_units_below_the_start_deferred)
{
	const struct djmfs__file *before;
	const struct djmfs__obj *o;
	struct mlist l = { .count = 0 };

	recording();
	before = djmfs__file_ref(wfile("f"));
	/* Unit 0 holds only trimmed bytes; unit 1 still a live one. */
	cr_assert_eq(trim(1, 1, AU + 10), 0);
	cr_assert_eq(nfreed, 1);
	expect_freed(0, 0, 1, DJMFS_FREE_DEFERRED);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->start, AU + 10);
	cr_assert_eq(o->ext_first, 0);
	cr_assert_eq(wfile("f")->version, 6);
	/* Past extent 0: it leaves the map, units 1..3 go. */
	nfreed = 0;
	cr_assert_eq(trim(1, 1, 3 * AU + 4096 + 1), 0);
	cr_assert_eq(nfreed, 1);
	expect_freed(0, 1, 3, DJMFS_FREE_DEFERRED);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->ext_first, 1);
	cr_assert_eq(o->n_ext, 2);
	cr_assert_eq(djmfs__obj_first_at(o), 3 * AU + 4096);
	cr_assert_eq(wfile("f")->version, 7);
	/* The version a reader may hold keeps its whole map. */
	cr_assert_eq(djmfs__file_obj(before, 1)->start, 0);
	cr_assert_eq(djmfs__file_obj(before, 1)->ext_first, 0);
	cr_assert_eq(djmfs__file_obj(before, 1)->n_ext, 2);
	djmfs__file_unref(before);
	/* Only unit 5 is mapped now; the walk (boot, fsck) says so. */
	cr_assert_eq(djmfs__meta_walk_mapped(M, mlist_fn, &l), 0);
	cr_assert_eq(l.count, 1);
	cr_assert_eq(l.first[0], 5);
	cr_assert_eq(l.n[0], 1);
	/* To the very end: the end unit stays, nothing is freed. */
	nfreed = 0;
	cr_assert_eq(trim(1, 1, 4 * AU + 4096), 0);
	cr_assert_eq(nfreed, 0);
	/* The map goes on from its end into a reserved unit. */
	cr_assert_eq(pub1(1, 8, 1, 4 * AU + 8192, AT(6, 0), 4096), 0);
	o = djmfs__file_obj(wfile("f"), 1);
	cr_assert_eq(o->n_ext, 2);
	cr_assert_eq(djmfs__obj_maplen(o), 4 * AU + 8192);
	cr_assert_eq(djmfs__file_check(wfile("f"), DOFF, DOFF + NAUS * AU,
				       NULL, 0), 0);
}

Test(meta, trim_refusals_change_nothing)
{
	struct state s;

	recording();
	cr_assert_eq(trim(1, 1, AU), 0);
	nfreed = 0;
	grab(&s);
	refused(trim(1, 1, AU), -EINVAL, &s, "same start");
	refused(trim(1, 1, 10), -EINVAL, &s, "lower start");
	refused(trim(1, 1, 4 * AU + 4097), -EINVAL, &s, "past the size");
	refused(trim(1, 2, 1), -EINVAL, &s, "META object");
	refused(trim(1, 9, 1), -ENOENT, &s, "no such object");
	refused(trim(5, 1, 1), -ENOENT, &s, "no such file");
	djmfs__buf_free(&s.img);
}

Test(meta, unlink_after_a_trim_frees_only_what_is_left)
{
	trimmed_recording();
	nfreed = 0;
	cr_assert_eq(simple(DJMFS_J_FILE_UNLINK, 1), 0);
	/* Reservation 4, 6, 7 now; unit 5 deferred; units 0..3 not again. */
	cr_assert_eq(nfreed, 3);
	expect_freed(0, 4, 1, DJMFS_FREE_NOW);
	expect_freed(1, 6, 2, DJMFS_FREE_NOW);
	expect_freed(2, 5, 1, DJMFS_FREE_DEFERRED);
}

Test(meta, a_trimmed_state_round_trips_an_image_and_replays_the_same)
{
	struct djmfs__buf a, b, c;
	struct djmfs__meta *m2 = mk_meta(NAUS), *m3 = mk_meta(NAUS);
	struct djmfs__meta *keep = M;
	const struct djmfs__obj *o;

	trimmed_recording();
	djmfs__buf_init(&a);
	djmfs__buf_init(&b);
	djmfs__buf_init(&c);
	cr_assert_eq(djmfs__meta_serialize(M, &a), 0);
	cr_assert_eq(djmfs__meta_load(m2, a.p, a.len, 9), 0);
	cr_assert_eq(djmfs__meta_serialize(m2, &b), 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.p, b.p, a.len), 0);
	o = djmfs__file_obj(djmfs__root_find(djmfs__meta_working(m2), "f"), 1);
	cr_assert_eq(o->start, 3 * AU + 4096 + 1);
	cr_assert_eq(o->ext_first, 1);
	cr_assert_eq(djmfs__obj_first_at(o), 3 * AU + 4096);
	cr_assert_eq(djmfs__obj_extent(o, 1).offset, AT(5, 0));
	/* Replay: the same records on an empty state give the same one. */
	M = m3;
	trimmed_recording();
	M = keep;
	cr_assert_eq(djmfs__meta_serialize(m3, &c), 0);
	cr_assert_eq(a.len, c.len);
	cr_assert_eq(memcmp(a.p, c.p, a.len), 0);
	/* The loaded state goes on: a publish and another trim. */
	M = m2;
	cr_assert_eq(pub1(1, 7, 1, 4 * AU + 8192, AT(6, 0), 4096), 0);
	cr_assert_eq(trim(1, 1, 4 * AU + 8192), 0);
	M = keep;
	djmfs__buf_free(&a);
	djmfs__buf_free(&b);
	djmfs__buf_free(&c);
	djmfs__meta_free(m2);
	djmfs__meta_free(m3);
}

Test(meta, an_image_of_the_format_before_trims_loads_untrimmed)
{
	struct djmfs__meta *m2 = mk_meta(NAUS);
	struct djmfs__buf v2;
	const struct djmfs__obj *o;

	/* Image version 2: sums, no start, ext_first, first_at, ck_first. */
	djmfs__buf_init(&v2);
	djmfs__put_u32(&v2, 0x494d4a44u);
	djmfs__put_u32(&v2, 2);
	djmfs__put_u64(&v2, 2);
	djmfs__put_u64(&v2, 1);
	djmfs__put_u64(&v2, 1);
	djmfs__put_str(&v2, "f");
	djmfs__put_u64(&v2, 4);
	djmfs__put_u32(&v2, 0);
	djmfs__put_u64(&v2, 1);
	djmfs__put_u64(&v2, 2);
	djmfs__put_u32(&v2, 2);
	djmfs__put_u32(&v2, 1);
	djmfs__put_u32(&v2, 1);
	djmfs__put_u32(&v2, DATA);
	djmfs__put_str(&v2, "data");
	djmfs__put_u64(&v2, CKB + 5);
	djmfs__put_u32(&v2, 1);
	djmfs__put_u64(&v2, AT(0, 0));
	djmfs__put_u64(&v2, 2 * CKB);
	djmfs__put_u32(&v2, 0);	 /* meta_len */
	djmfs__put_u32(&v2, 0);	 /* ck_flags */
	djmfs__put_u32(&v2, 1);	 /* n_ck */
	djmfs__put_u32(&v2, 42);
	djmfs__put_u32(&v2, 43); /* last_ck */
	djmfs__put_u32(&v2, 0);	 /* no reservations */
	cr_assert_eq(v2.err, 0);
	cr_assert_eq(djmfs__meta_load(m2, v2.p, v2.len, 3), 0);
	o = djmfs__file_obj(djmfs__root_find(djmfs__meta_working(m2), "f"), 1);
	cr_assert_eq(o->start, 0);
	cr_assert_eq(o->ext_first, 0);
	cr_assert_eq(o->ck_first, 0);
	cr_assert_eq(djmfs__obj_ck(o, 0), 42);
	cr_assert_eq(o->last_ck, 43);
	/* Read as the current version it is short of the trim fields. */
	v2.p[4] = 3;
	cr_assert_eq(djmfs__meta_load(m2, v2.p, v2.len, 3), -EBADMSG);
	djmfs__buf_free(&v2);
	djmfs__meta_free(m2);
}
