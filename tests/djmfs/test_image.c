/*
 * Tests of a handle's image map (djmfs_image.c): that finding where
 * object bytes lie on the volume costs O(log n) extents however long the
 * map, as a recording's map only grows, and that the offsets it keeps
 * stay right when a snapshot delta replaces the map's tail, a writer
 * lengthens or appends extents, or a restore cuts the staged map, and
 * that a trimmed map keeps its absolute indices and offsets.  Work
 * is counted in extents examined (o->map_steps), not timed, so the
 * bounds hold on a loaded machine and under the sanitizers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_file.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define BIG 100000u

/* Extent i of the test maps: scattered units, lengths that vary. */
static struct djmfs_extent ext_i(uint32_t i, uint32_t salt)
{
	struct djmfs_extent e = { (2ull * i + 1 + salt) * MIB,
				  64 * KIB * (1 + (i + salt) % 7) };
	return e;
}

/* Applies a snapshot of one DATA object (id 1) whose map is @total
 * extents, sending those from @base on (ext_i with @salt), trimmed to
 * extents @first on (@start bytes past where extent @first begins). */
static void apply_t(struct djmfs_file *f, uint32_t total, uint32_t base,
		    uint32_t salt, uint32_t first, uint64_t start,
		    uint64_t *size)
{
	struct djmfs__snap *s = calloc(1, sizeof(*s));
	struct djmfs__buf b;
	uint64_t sz = 0;

	cr_assert_not_null(s);
	djmfs__buf_init(&b);
	for (uint32_t i = 0; i < total; i++) {
		struct djmfs_extent e = ext_i(i, i < base ? 0 : salt);

		if (i >= base)
			djmfs__put_ext(&b, e.offset, e.len);
		if (i == first)
			s->objs[0].first_at = sz;
		sz += e.len;
	}
	s->objs[0].ext_first = first;
	s->objs[0].start = s->objs[0].first_at + start;
	cr_assert_eq(b.err, 0);
	s->version = 1;
	s->n_objs = 1;
	s->objs[0].id = 1;
	s->objs[0].attrs = DJMFS_ATTR_DATA;
	s->objs[0].size = sz;
	s->objs[0].ext_total = total;
	s->objs[0].ext_base = base;
	s->objs[0].ext = (struct djmfs__extv){ b.p, total - base };
	cr_assert_eq(djmfs__apply_snap(f, s), 0);
	djmfs__buf_free(&b);
	free(s);
	*size = sz;
}

static void apply(struct djmfs_file *f, uint32_t total, uint32_t base,
		  uint32_t salt, uint64_t *size)
{
	apply_t(f, total, base, salt, 0, 0, size);
}

static struct djmfs_file *mkfile(void)
{
	struct djmfs_file *f = calloc(1, sizeof(*f));

	cr_assert_not_null(f);
	return f;
}

static void freefile(struct djmfs_file *f)
{
	for (uint32_t i = 0; i < f->n_objs; i++)
		djmfs__cobj_free(f->objs[i]);
	free(f);
}

/* Checks djmfs__map_range(@o, img, lo, hi) against a walk of the map the
 * test keeps itself; returns the extents the lookup examined. */
static uint64_t check_range(struct cobj *o, uint64_t lo, uint64_t hi)
{
	uint64_t steps0 = o->map_steps, pos = o->first_at, want_at = lo;
	struct seg *s = NULL;
	uint32_t n = 0, k = 0;

	cr_assert_geq(djmfs__map_range(o, 1, lo, hi, &s, &n), 0);
	for (uint32_t i = o->ext_first; i < o->img_n_ext && pos < hi; i++) {
		struct djmfs_extent e = djmfs__img_ext(o, i);
		uint64_t a = lo > pos ? lo : pos;
		uint64_t b = hi < pos + e.len ? hi : pos + e.len;

		if (a < b) {
			cr_assert_lt(k, n, "piece %u missing at %llu", k,
				     (unsigned long long)a);
			cr_assert_eq(s[k].logical, a);
			cr_assert_eq(s[k].len, b - a);
			cr_assert_eq(s[k].phys, e.offset + (a - pos));
			want_at = b;
			k++;
		}
		pos += e.len;
	}
	cr_assert_eq(k, n, "%u pieces, want %u", n, k);
	cr_assert(n == 0 || want_at == s[n - 1].logical + s[n - 1].len);
	free(s);
	return o->map_steps - steps0;
}

static uint32_t log2_up(uint32_t n)
{
	uint32_t l = 0;

	while ((1ull << l) < n)
		l++;
	return l;
}

Test(image, lookup_in_a_long_map_is_logarithmic)
{
	struct djmfs_file *f = mkfile();
	uint64_t size, worst = 0;
	struct cobj *o;

	apply(f, BIG, 0, 0, &size);
	o = f->objs[0];
	/* The first lookup learns every offset once. */
	cr_assert_leq(check_range(o, 0, 64 * KIB), BIG + log2_up(BIG) + 3);
	srand(7);
	for (int r = 0; r < 2000; r++) {
		uint64_t lo = ((uint64_t)rand() * RAND_MAX + rand()) % size;
		uint64_t hi = lo + 64 * KIB < size ? lo + 64 * KIB : size;
		uint64_t steps = check_range(o, lo, hi);

		worst = steps > worst ? steps : worst;
	}
	/* A binary search and the (at most two) pieces: a walk from the
	 * map's start would examine ~50,000 on average. */
	cr_assert_leq(worst, log2_up(BIG) + 3, "a lookup examined %llu "
		      "extents of %u", (unsigned long long)worst, BIG);
	/* The last bytes and the first: as cheap as the middle. */
	cr_assert_leq(check_range(o, size - 4096, size), log2_up(BIG) + 3);
	cr_assert_leq(check_range(o, 0, 4096), log2_up(BIG) + 3);
	freefile(f);
}

Test(image, a_delta_recomputes_only_the_tail)
{
	struct djmfs_file *f = mkfile();
	uint64_t size, steps;
	struct cobj *o;

	apply(f, BIG, 0, 0, &size);
	o = f->objs[0];
	check_range(o, 0, 4096);
	/* The next snapshot sends the last extent again (it grew) and ten
	 * new ones, all of other lengths and places (salt 3). */
	apply(f, BIG + 10, BIG - 1, 3, &size);
	cr_assert_eq(o, f->objs[0]);
	steps = check_range(o, size - 300 * KIB, size);
	cr_assert_leq(steps, 11 + log2_up(BIG + 10) + 6,
		      "%llu extents examined after a delta of 11",
		      (unsigned long long)steps);
	for (uint64_t at = size - 2 * MIB; at < size; at += 60 * KIB)
		check_range(o, at, at + 80 * KIB < size ? at + 80 * KIB : size);
	/* A delta from the middle (whatever the server sends, offsets past
	 * its base are forgotten and answers stay right). */
	apply(f, BIG / 2 + 5, BIG / 4, 5, &size);
	for (int r = 0; r < 2000; r++) {
		uint64_t lo = (uint64_t)r * (size / 2000);

		check_range(o, lo, lo + 100 * KIB < size ? lo + 100 * KIB : size);
	}
	check_range(o, size - 8192, size);
	freefile(f);
}

Test(image, appends_keep_map_bytes_constant)
{
	struct cobj *o = calloc(1, sizeof(*o));
	uint64_t total = 0, steps0;

	cr_assert_not_null(o);
	/* A writer's staged map, as W_COMMIT grows it: every other append
	 * lengthens the last extent, the rest start a new one. */
	for (uint32_t i = 0; i < 2 * BIG; i++) {
		uint64_t len = 4 * KIB * (1 + i % 3);

		if (i % 2 && o->n_ext) {
			djmfs__ext_changed(o, o->n_ext - 1);
			o->ext[o->n_ext - 1].len += len;
		} else {
			cr_assert_eq(djmfs__ext_reserve(o, o->n_ext + 1), 0);
			if (o->n_ext)
				djmfs__ext_changed(o, o->n_ext - 1);
			o->ext[o->n_ext++] = (struct djmfs_extent){
				(3ull * i + 1) * MIB, len };
		}
		total += len;
		steps0 = o->map_steps;
		cr_assert_eq(djmfs__map_bytes(o), total);
		cr_assert_leq(o->map_steps - steps0, 1);
	}
	/* A restore cutting the staged map (djmfs_restore.c's truncation):
	 * the offsets before the cut stay, the rest are worked out again. */
	djmfs__ext_changed(o, 10);
	o->ext[10].len = 4 * KIB;
	o->n_ext = 11;
	total = 0;
	for (uint32_t i = 0; i < 11; i++)
		total += o->ext[i].len;
	cr_assert_eq(djmfs__map_bytes(o), total);
	djmfs__cobj_free(o);
}

Test(image, a_trimmed_map_keeps_its_offsets_and_indices)
{
	struct djmfs_file *f = mkfile(), *g = mkfile();
	uint64_t size, size2;
	struct cobj *o;

	apply(f, BIG, 0, 0, &size);
	o = f->objs[0];
	check_range(o, size / 2, size / 2 + 4096);
	/* Trimmed past extent 4000: a delta of the last extent, with the
	 * firsts moved; offsets stay the same object offsets. */
	apply_t(f, BIG, BIG - 1, 0, 4000, 1000, &size2);
	cr_assert_eq(size2, size);
	cr_assert_eq(o, f->objs[0]);
	cr_assert_eq(o->ext_first, 4000);
	cr_assert_eq(o->start, o->first_at + 1000);
	cr_assert_eq(djmfs__map_bytes(o), size);
	check_range(o, o->start, o->start + 300 * KIB);
	check_range(o, size - 4096, size);
	/* A handle that never knew the object gets the map from its first
	 * extent on, and finds every byte where the first one does. */
	apply_t(g, BIG, 4000, 0, 4000, 1000, &size2);
	cr_assert_eq(g->objs[0]->ext_first, 4000);
	cr_assert_eq(g->objs[0]->first_at, o->first_at);
	cr_assert_eq(djmfs__map_bytes(g->objs[0]), size);
	for (int r = 0; r < 200; r++) {
		uint64_t lo = o->start + (uint64_t)r * ((size - o->start) / 200);
		uint64_t hi = lo + 100 * KIB < size ? lo + 100 * KIB : size;

		check_range(g->objs[0], lo, hi);
	}
	/* A snapshot that goes back below the start is refused whole. */
	{
		struct djmfs__snap s = { 0 };

		s.version = 9;
		s.n_objs = 1;
		s.objs[0].id = 1;
		s.objs[0].attrs = DJMFS_ATTR_DATA;
		cr_assert_eq(djmfs__apply_snap(g, &s), -EBADMSG);
		cr_assert_eq(g->objs[0]->ext_first, 4000);
	}
	freefile(f);
	freefile(g);
}
