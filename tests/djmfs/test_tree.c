/*
 * Tests of the copy-on-write namespace (djmfs_tree.c): that every root
 * handed out stays the snapshot it was, that the AVL tree stays balanced
 * and ordered under long random update sequences, that extent stores let
 * older object versions keep their own map while newer ones append or
 * trim (indices absolute, a mostly dropped store compacted), and that the
 * open-time consistency check catches each kind of bad map.
 * Memory is checked by building with -fsanitize=address (leaks).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_tree.h"

#define DOFF (1ull << 20)		  /* data area start */
#define DEND (DOFF + 64ull * (1 << 20)) /* data area end */

static struct djmfs__file *mkfile(uint64_t ino, const char *name,
				  uint64_t version)
{
	struct djmfs__file *f;

	cr_assert_eq(djmfs__file_new(&f, ino, name, 1000), 0);
	f->version = version;
	return f;
}

static struct djmfs__root *put(struct djmfs__root *r, struct djmfs__file *f)
{
	struct djmfs__root *n;

	cr_assert_eq(djmfs__root_put(r, f, &n), 0);
	return n;
}

static struct djmfs__obj *mkobj(uint32_t id, uint32_t attrs)
{
	struct djmfs__obj *o;

	cr_assert_eq(djmfs__obj_new(&o, id, attrs, "o"), 0);
	return o;
}

Test(tree, held_roots_keep_old_file_versions)
{
	struct djmfs__root *r0, *r1, *r2, *r3, *r4, *none;

	cr_assert_eq(djmfs__root_new(&r0), 0);
	r1 = put(r0, mkfile(1, "a", 0));
	r2 = put(r1, mkfile(2, "b", 0));
	r3 = put(r2, mkfile(1, "a", 7)); /* replaces a */
	cr_assert_eq(djmfs__root_del(r3, "b", &r4), 0);
	cr_assert_eq(djmfs__root_del(r4, "b", &none), -ENOENT);
	cr_assert_null(none);
	djmfs__root_unref(r0);

	cr_assert_eq(djmfs__root_nfiles(r1), 1);
	cr_assert_eq(djmfs__root_nfiles(r2), 2);
	cr_assert_eq(djmfs__root_nfiles(r3), 2);
	cr_assert_eq(djmfs__root_nfiles(r4), 1);
	cr_assert_eq(djmfs__root_find(r1, "a")->version, 0);
	cr_assert_null(djmfs__root_find(r1, "b"));
	cr_assert_eq(djmfs__root_find(r2, "a")->version, 0);
	cr_assert_eq(djmfs__root_find(r3, "a")->version, 7);
	cr_assert_not_null(djmfs__root_find(r3, "b"));
	cr_assert_null(djmfs__root_find(r4, "b"));
	cr_assert_eq(djmfs__root_find(r4, "a")->version, 7);

	djmfs__root_unref(r1);
	djmfs__root_unref(r2);
	djmfs__root_unref(r3);
	djmfs__root_unref(r4);
}

struct collect {
	char names[64][16];
	unsigned n;
	unsigned stop_at; /* 0: never */
};

static int collect_fn(void *arg, const struct djmfs__file *f)
{
	struct collect *c = arg;

	snprintf(c->names[c->n], sizeof(c->names[0]), "%.15s", f->name);
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

Test(tree, walk_goes_in_name_order_from_after)
{
	static const char *names[] = { "m", "c", "x", "a", "e", "q", "z", "b" };
	static const char *sorted = "abcemqxz";
	struct djmfs__root *r, *n;
	struct collect c = { .n = 0 };
	unsigned i;

	cr_assert_eq(djmfs__root_new(&r), 0);
	for (i = 0; i < 8; i++) {
		n = put(r, mkfile(i + 1, names[i], 0));
		djmfs__root_unref(r);
		r = n;
	}
	cr_assert_eq(djmfs__root_walk(r, "", collect_fn, &c), 0);
	cr_assert_eq(c.n, 8);
	for (i = 0; i < 8; i++)
		cr_assert_eq(c.names[i][0], sorted[i]);

	memset(&c, 0, sizeof(c));
	cr_assert_eq(djmfs__root_walk(r, "d", collect_fn, &c), 0);
	cr_assert_eq(c.n, 5);
	cr_assert_str_eq(c.names[0], "e");

	memset(&c, 0, sizeof(c));
	cr_assert_eq(djmfs__root_walk(r, "e", collect_fn, &c), 0);
	cr_assert_eq(c.n, 4);
	cr_assert_str_eq(c.names[0], "m");

	memset(&c, 0, sizeof(c));
	c.stop_at = 3;
	cr_assert_eq(djmfs__root_walk(r, NULL, collect_fn, &c), 42);
	cr_assert_eq(c.n, 3);

	memset(&c, 0, sizeof(c));
	cr_assert_eq(djmfs__root_walk(r, "zz", collect_fn, &c), 0);
	cr_assert_eq(c.n, 0);
	djmfs__root_unref(r);
}

#define UNIVERSE 6000

struct order {
	const unsigned char *present;
	long last;
	uint64_t n;
};

static int order_fn(void *arg, const struct djmfs__file *f)
{
	struct order *o = arg;
	long k = strtol(f->name + 1, NULL, 10);

	cr_assert_gt(k, o->last);
	cr_assert(o->present[k]);
	cr_assert_eq(f->ino, (uint64_t)k + 1);
	o->last = k;
	o->n++;
	return 0;
}

Test(tree, random_updates_keep_balance_and_order)
{
	static unsigned char present[UNIVERSE];
	struct djmfs__root *r, *n;
	uint64_t rng = 0x9e3779b97f4a7c15ull, count = 0;
	char name[16];
	int i, height;

	memset(present, 0, sizeof(present));
	cr_assert_eq(djmfs__root_new(&r), 0);
	for (i = 0; i < 20000; i++) {
		unsigned k;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		k = (unsigned)(rng % UNIVERSE);
		snprintf(name, sizeof(name), "f%05u", k);
		/* Inserts win 2:1 so the tree grows while it churns. */
		if (!present[k] || (rng >> 32) % 3) {
			n = put(r, mkfile(k + 1, name, (uint64_t)i));
			count += !present[k];
			present[k] = 1;
		} else {
			cr_assert_eq(djmfs__root_del(r, name, &n), 0);
			present[k] = 0;
			count--;
		}
		djmfs__root_unref(r);
		r = n;
		if (i % 2000 == 0) {
			cr_assert_geq(djmfs__root_check(r), 0);
			cr_assert_eq(djmfs__root_nfiles(r), count);
		}
	}
	height = djmfs__root_check(r);
	cr_assert_geq(height, 0);
	cr_assert_eq(djmfs__root_nfiles(r), count);
	/* AVL: height < 1.4405 log2(n + 2) - 0.3277 */
	cr_assert_lt(height, 1.4405 * log2((double)count + 2));

	struct order o = { present, -1, 0 };
	cr_assert_eq(djmfs__root_walk(r, NULL, order_fn, &o), 0);
	cr_assert_eq(o.n, count);
	djmfs__root_unref(r);
}

Test(tree, sorted_build_is_balanced_and_rejects_disorder)
{
	struct djmfs__file *files[1000];
	struct djmfs__root *r;
	char name[16];
	unsigned i;

	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "n%04u", i);
		files[i] = mkfile(i + 1, name, 0);
	}
	cr_assert_eq(djmfs__root_build(files, 1000, &r), 0);
	cr_assert_eq(djmfs__root_check(r), 10);
	cr_assert_eq(djmfs__root_nfiles(r), 1000);
	cr_assert_eq(djmfs__root_find(r, "n0500")->ino, 501);
	djmfs__root_unref(r);

	files[0] = mkfile(1, "b", 0);
	files[1] = mkfile(2, "a", 0);
	cr_assert_eq(djmfs__root_build(files, 2, &r), -EINVAL);
	cr_assert_null(r);
	cr_assert_eq(djmfs__root_build(files, 0, &r), 0);
	cr_assert_eq(djmfs__root_nfiles(r), 0);
	djmfs__root_unref(r);
}

Test(tree, releasing_every_root_drops_every_reference)
{
	struct djmfs__file *f = mkfile(1, "kept", 0);
	struct djmfs__root *r0, *r1, *r2, *r3;
	const struct djmfs__file *held;

	cr_assert_eq(djmfs__root_new(&r0), 0);
	r1 = put(r0, f);
	held = djmfs__file_ref(djmfs__root_find(r1, "kept"));
	r2 = put(r1, mkfile(2, "other", 0));
	r3 = put(r2, mkfile(1, "kept", 1));
	cr_assert_eq(held->refs, 3); /* ours, r1's node, r2's node */
	djmfs__root_unref(r0);
	djmfs__root_unref(r1);
	cr_assert_eq(held->refs, 2);
	djmfs__root_unref(r3);
	djmfs__root_unref(r2);
	cr_assert_eq(held->refs, 1);
	djmfs__file_unref(held);
	djmfs__root_unref(NULL);
	djmfs__file_unref(NULL);
	djmfs__obj_unref(NULL);
}

Test(tree, older_object_versions_keep_their_own_map)
{
	struct djmfs__obj *v1 = mkobj(1, DJMFS_ATTR_DATA), *v2, *v3;
	struct djmfs_extent e;
	unsigned i;

	cr_assert_eq(djmfs__obj_append(v1, DOFF, 8192), 0);
	cr_assert_eq(djmfs__obj_dup(v1, &v2), 0);
	/* Continues the last extent in place, then a new extent. */
	cr_assert_eq(djmfs__obj_append(v2, DOFF + 8192, 4096), 0);
	cr_assert_eq(djmfs__obj_append(v2, DOFF + 65536, 4096), 0);
	cr_assert_eq(djmfs__obj_dup(v2, &v3), 0);
	for (i = 0; i < 1000; i++) { /* crosses many chunks of the store */
		uint64_t off = DOFF + 131072 + (uint64_t)i * 8192;

		cr_assert_eq(djmfs__obj_append(v3, off, 4096), 0);
	}

	cr_assert_eq(v1->n_ext, 1);
	e = djmfs__obj_extent(v1, 0);
	cr_assert_eq(e.offset, DOFF);
	cr_assert_eq(e.len, 8192);
	cr_assert_eq(djmfs__obj_maplen(v1), 8192);

	cr_assert_eq(v2->n_ext, 2);
	cr_assert_eq(djmfs__obj_extent(v2, 0).len, 12288);
	cr_assert_eq(djmfs__obj_extent(v2, 1).offset, DOFF + 65536);
	cr_assert_eq(djmfs__obj_maplen(v2), 16384);
	cr_assert_eq(djmfs__obj_map_end(v2), DOFF + 65536 + 4096);

	cr_assert_eq(v3->n_ext, 1002);
	cr_assert_eq(djmfs__obj_extent(v3, 1001).offset,
		     DOFF + 131072 + 999ull * 8192);
	cr_assert_eq(djmfs__obj_maplen(v3), 16384 + 1000ull * 4096);
	for (i = 2; i < 1002; i++)
		cr_assert_eq(djmfs__obj_extent(v3, i).len, 4096);

	djmfs__obj_unref(v2);
	cr_assert_eq(djmfs__obj_extent(v1, 0).len, 8192);
	djmfs__obj_unref(v3);
	djmfs__obj_unref(v1);
}

Test(tree, appending_to_a_stale_version_copies_its_map)
{
	struct djmfs__obj *v1 = mkobj(1, DJMFS_ATTR_DATA), *a, *b;

	cr_assert_eq(djmfs__obj_append(v1, DOFF, 4096), 0);
	cr_assert_eq(djmfs__obj_dup(v1, &a), 0);
	cr_assert_eq(djmfs__obj_dup(v1, &b), 0);
	cr_assert_eq(djmfs__obj_append(a, DOFF + 4096, 4096), 0); /* tip */
	cr_assert_eq(djmfs__obj_append(b, DOFF + 4096, 8192), 0); /* branch */
	cr_assert_eq(djmfs__obj_append(b, DOFF + 1048576, 4096), 0);
	cr_assert_neq(a->xs, b->xs);

	cr_assert_eq(a->n_ext, 1);
	cr_assert_eq(djmfs__obj_extent(a, 0).len, 8192);
	cr_assert_eq(b->n_ext, 2);
	cr_assert_eq(djmfs__obj_extent(b, 0).len, 12288);
	cr_assert_eq(djmfs__obj_maplen(b), 16384);
	cr_assert_eq(djmfs__obj_extent(v1, 0).len, 4096);
	djmfs__obj_unref(a);
	djmfs__obj_unref(b);
	djmfs__obj_unref(v1);
}

Test(tree, meta_content_is_copied_per_version)
{
	struct djmfs__obj *v1 = mkobj(1, DJMFS_ATTR_META), *v2;

	cr_assert_eq(djmfs__obj_set_meta(v1, (const uint8_t *)"hello", 5), 0);
	cr_assert_eq(djmfs__obj_dup(v1, &v2), 0);
	cr_assert_eq(djmfs__obj_set_meta(v2, (const uint8_t *)"bye", 3), 0);
	cr_assert_eq(v1->size, 5);
	cr_assert_eq(memcmp(v1->meta, "hello", 5), 0);
	cr_assert_eq(v2->size, 3);
	cr_assert_eq(memcmp(v2->meta, "bye", 3), 0);
	djmfs__obj_unref(v1);
	djmfs__obj_unref(v2);
}

/* A file with one SYNC DATA object of one extent and one META object. */
static struct djmfs__file *good_file(void)
{
	struct djmfs__file *f = mkfile(1, "f", 0);
	struct djmfs__obj *d = mkobj(1, DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC);
	struct djmfs__obj *m = mkobj(2, DJMFS_ATTR_META);

	cr_assert_eq(djmfs__obj_append(d, DOFF, 65536), 0);
	d->size = 60000;
	cr_assert_eq(djmfs__obj_set_meta(m, (const uint8_t *)"hdr", 3), 0);
	f->objs[0] = d;
	f->objs[1] = m;
	f->n_objs = 2;
	f->next_obj_id = 3;
	return f;
}

static void expect_bad(struct djmfs__file *f, const char *word)
{
	char why[128] = "";

	cr_assert_eq(djmfs__file_check(f, DOFF, DEND, why, sizeof(why)),
		     -EUCLEAN);
	cr_assert_not_null(strstr(why, word), "why: %s", why);
	djmfs__file_unref(f);
}

static void add_data(struct djmfs__file *f, uint64_t off, uint64_t len,
		     uint32_t attrs)
{
	struct djmfs__obj *o = mkobj(f->next_obj_id++, attrs);

	cr_assert_eq(djmfs__obj_append(o, off, len), 0);
	f->objs[f->n_objs++] = o;
}

Test(tree, file_check_accepts_a_good_file)
{
	struct djmfs__file *f = good_file();
	char why[64] = "";

	add_data(f, DOFF + 65536, 4096, DJMFS_ATTR_DATA); /* adjacent: fine */
	cr_assert_eq(djmfs__file_check(f, DOFF, DEND, why, sizeof(why)), 0,
		     "%s", why);
	djmfs__file_unref(f);
}

Test(tree, file_check_catches_each_bad_map)
{
	struct djmfs__file *f;

	f = good_file();
	add_data(f, DOFF - 4096, 4096, DJMFS_ATTR_DATA);
	expect_bad(f, "outside");

	f = good_file();
	add_data(f, DEND - 4096, 8192, DJMFS_ATTR_DATA);
	expect_bad(f, "outside");

	f = good_file();
	add_data(f, DOFF + 70000, 4096, DJMFS_ATTR_DATA);
	expect_bad(f, "misaligned");

	f = good_file();
	add_data(f, DOFF + 61440, 8192, DJMFS_ATTR_DATA);
	expect_bad(f, "overlaps");

	f = good_file();
	((struct djmfs__obj *)f->objs[0])->size = 65537;
	expect_bad(f, "beyond");

	f = good_file();
	add_data(f, DOFF + 1048576, 4096, DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC);
	expect_bad(f, "SYNC");

	f = good_file();
	((struct djmfs__obj *)f->objs[1])->size = 99;
	expect_bad(f, "META");
}

Test(tree, owned_replace_edits_in_place_but_never_a_shared_root)
{
	struct djmfs__root *r0, *r1, *held;
	struct djmfs__file *f;
	char name[16];

	cr_assert_eq(djmfs__root_new(&r0), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		r1 = put(r0, mkfile((uint64_t)i + 1, name, 0));
		djmfs__root_unref(r0);
		r0 = r1;
	}
	/* Shared: refused, nothing changes. */
	held = djmfs__root_ref(r0);
	f = mkfile(8, "f007", 5);
	cr_assert_eq(djmfs__root_replace_owned(r0, f), -EBUSY);
	/* A private root made from the held one: edited in place, while
	 * the held root keeps version 0. */
	r1 = put(held, mkfile(51, "g", 0));
	djmfs__root_unref(r0);
	cr_assert_eq(djmfs__root_replace_owned(r1, f), 0);
	cr_assert_eq(djmfs__root_find(r1, "f007")->version, 5);
	cr_assert_eq(djmfs__root_find(held, "f007")->version, 0);
	f = mkfile(8, "f007", 6);
	cr_assert_eq(djmfs__root_replace_owned(r1, f), 0); /* again: owned */
	cr_assert_eq(djmfs__root_find(r1, "f007")->version, 6);
	cr_assert_eq(djmfs__root_find(held, "f007")->version, 0);
	f = mkfile(99, "nope", 0);
	cr_assert_eq(djmfs__root_replace_owned(r1, f), -ENOENT);
	djmfs__file_unref(f);
	cr_assert_eq(djmfs__root_nfiles(r1), 51);
	djmfs__root_unref(r1);
	djmfs__root_unref(held);
}

/* Names longer than the key kept in each node, differing only after it,
 * still sort and find exactly as strcmp says. */
Test(tree, long_names_with_a_common_prefix_keep_strcmp_order)
{
	const char *pre = "recordings/camera-entrance-2026-11-21/";
	struct djmfs__root *r, *n;
	char name[96];
	int i;

	cr_assert_eq(djmfs__root_new(&r), 0);
	for (i = 99; i >= 0; i -= 3) {
		snprintf(name, sizeof(name), "%s%02d", pre, i);
		n = put(r, mkfile((uint64_t)i + 1, name, 0));
		djmfs__root_unref(r);
		r = n;
	}
	n = put(r, mkfile(1000, "recordings/camera", 0)); /* a prefix */
	djmfs__root_unref(r);
	r = n;
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "%s%02d", pre, i);
		if (i % 3 == 0)
			cr_assert_not_null(djmfs__root_find(r, name), "%s", name);
		else
			cr_assert_null(djmfs__root_find(r, name), "%s", name);
	}
	cr_assert_not_null(djmfs__root_find(r, "recordings/camera"));
	cr_assert_null(djmfs__root_find(r, "recordings/camer"));
	cr_assert_gt(djmfs__root_check(r), 0);
	djmfs__root_unref(r);
}

/* The record cache: a released file record's block comes back for the
 * next copy made on the same thread (not under AddressSanitizer, which
 * must keep reporting uses after release). */
Test(tree, released_records_are_reused_on_the_same_thread)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("the record cache is off under AddressSanitizer");
#else
	struct djmfs__file *a = mkfile(1, "a", 0), *b, *c;

	cr_assert_eq(djmfs__file_dup(a, &b), 0);
	djmfs__file_unref(b);
	cr_assert_eq(djmfs__file_dup(a, &c), 0);
	cr_expect_eq(c, b, "the released block was not reused");
	cr_assert_str_eq(c->name, "a");
	cr_assert_eq(c->refs, 1);
	djmfs__file_unref(c);
	djmfs__file_unref(a);
#endif
}

/* ---- trimming ---- */

#define MIB (1ull << 20)

/* A DATA object of @n extents of one MiB each, a MiB apart on the volume
 * (so none merge), with 16 sums per extent (k + 1000 for cblock k). */
static struct djmfs__obj *long_obj(uint32_t n)
{
	struct djmfs__obj *o = mkobj(1, DJMFS_ATTR_DATA);

	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(djmfs__obj_append(o, DOFF + 2 * i * MIB, MIB), 0);
		for (uint32_t k = 0; k < 16; k++)
			cr_assert_eq(djmfs__obj_ck_append(o, 1000 + i * 16 + k),
				     0);
	}
	o->size = (uint64_t)n * MIB;
	return o;
}

Test(tree, trim_drops_whole_extents_and_keeps_indices_absolute)
{
	struct djmfs__obj *v1 = long_obj(10), *v2;
	struct djmfs_extent e;

	cr_assert_eq(djmfs__obj_dup(v1, &v2), 0);
	cr_assert_eq(djmfs__obj_trim(v2, 3 * MIB + MIB / 2), 0);
	cr_assert_eq(v2->start, 3 * MIB + MIB / 2);
	cr_assert_eq(v2->ext_first, 3);
	cr_assert_eq(v2->n_ext, 10);
	cr_assert_eq(v2->ck_first, (3 * MIB + MIB / 2) >> DJMFS_CK_SHIFT);
	cr_assert_eq(djmfs__obj_first_at(v2), 3 * MIB);
	cr_assert_eq(djmfs__obj_maplen(v2), 10 * MIB);
	/* Extent 3 is still extent 3; its live part starts at the start. */
	e = djmfs__obj_extent(v2, 3);
	cr_assert_eq(e.offset, DOFF + 6 * MIB);
	e = djmfs__obj_live(v2, 3);
	cr_assert_eq(e.offset, DOFF + 6 * MIB + MIB / 2);
	cr_assert_eq(e.len, MIB / 2);
	cr_assert_eq(djmfs__obj_ck(v2, v2->ck_first), 1000 + v2->ck_first);
	/* The version before the trim keeps its whole map and sums. */
	cr_assert_eq(v1->start, 0);
	cr_assert_eq(v1->ext_first, 0);
	cr_assert_eq(djmfs__obj_extent(v1, 0).offset, DOFF);
	cr_assert_eq(djmfs__obj_ck(v1, 0), 1000);
	/* A start at or below the current one changes nothing. */
	cr_assert_eq(djmfs__obj_trim(v2, MIB), 0);
	cr_assert_eq(v2->start, 3 * MIB + MIB / 2);
	/* Appends go on at the next index; the old version does not see
	 * them. */
	cr_assert_eq(djmfs__obj_append(v2, DOFF + 40 * MIB, MIB), 0);
	cr_assert_eq(v2->n_ext, 11);
	cr_assert_eq(djmfs__obj_extent(v2, 10).offset, DOFF + 40 * MIB);
	cr_assert_eq(v1->n_ext, 10);
	djmfs__obj_unref(v1);
	djmfs__obj_unref(v2);
}

Test(tree, trim_to_the_end_keeps_the_last_extent_and_its_end_unit)
{
	struct djmfs__obj *o = long_obj(4);
	struct djmfs_extent e;

	cr_assert_eq(djmfs__obj_trim(o, 4 * MIB), 0);
	cr_assert_eq(o->ext_first, 3);
	e = djmfs__obj_live(o, 3);
	cr_assert_eq(e.len, 1);
	cr_assert_eq(e.offset, DOFF + 7 * MIB - 1);
	cr_assert_eq(djmfs__obj_map_end(o), DOFF + 7 * MIB);
	/* The map goes on from its end. */
	cr_assert_eq(djmfs__obj_append(o, DOFF + 7 * MIB, 4096), 0);
	cr_assert_eq(o->n_ext, 4);
	cr_assert_eq(djmfs__obj_maplen(o), 4 * MIB + 4096);
	djmfs__obj_unref(o);
}

Test(tree, a_large_trim_compacts_the_store_with_indices_kept)
{
	struct djmfs__obj *v1 = long_obj(300), *v2, *v3;

	cr_assert_eq(djmfs__obj_dup(v1, &v2), 0);
	cr_assert_eq(djmfs__obj_trim(v2, 250 * MIB + 10), 0);
	/* A store of its own: the old version's is untouched. */
	cr_assert_neq(v2->xs, v1->xs);
	cr_assert_eq(v2->ext_first, 250);
	for (uint32_t i = 250; i < 300; i++) {
		cr_assert_eq(djmfs__obj_extent(v2, i).offset,
			     djmfs__obj_extent(v1, i).offset);
	}
	cr_assert_eq(djmfs__obj_first_at(v2), 250 * MIB);
	cr_assert_eq(djmfs__obj_maplen(v2), 300 * MIB);
	cr_assert_eq(djmfs__obj_ck(v2, 250 * 16), 1000 + 250 * 16);
	cr_assert_eq(djmfs__obj_ck(v2, 300 * 16 - 1), 1000 + 300 * 16 - 1);
	cr_assert_eq(djmfs__obj_ck(v1, 0), 1000);
	/* The compacted version is its store's tip: appends go in place,
	 * extents and sums both. */
	cr_assert_eq(djmfs__obj_append(v2, DOFF + 700 * MIB, MIB), 0);
	cr_assert_eq(djmfs__obj_ck_append(v2, 7), 0);
	cr_assert_eq(djmfs__obj_extent(v2, 300).offset, DOFF + 700 * MIB);
	cr_assert_eq(djmfs__obj_ck(v2, 300 * 16), 7);
	/* A later version branching from it keeps the indices too. */
	cr_assert_eq(djmfs__obj_dup(v2, &v3), 0);
	cr_assert_eq(djmfs__obj_trim(v3, 299 * MIB), 0);
	cr_assert_eq(v3->ext_first, 299);
	cr_assert_eq(djmfs__obj_extent(v3, 299).offset, DOFF + 598 * MIB);
	cr_assert_eq(djmfs__obj_extent(v3, 300).offset, DOFF + 700 * MIB);
	djmfs__obj_unref(v1);
	djmfs__obj_unref(v2);
	djmfs__obj_unref(v3);
}

Test(tree, file_check_catches_a_start_past_the_size)
{
	struct djmfs__file *f = good_file();
	struct djmfs__obj *o = (struct djmfs__obj *)f->objs[0];
	char why[128] = "";

	cr_assert_eq(djmfs__obj_trim(o, 4096), 0);
	cr_assert_eq(djmfs__file_check(f, DOFF, DEND, why, sizeof(why)), 0,
		     "%s", why);
	o->start = o->size + 1;
	expect_bad(f, "start");
}
