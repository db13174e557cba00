/*
 * The two indexes of the DJMFS metadata state (djmfs_meta.c): unit run
 * sets, which hold each file's reservation as sorted, disjoint,
 * non-adjacent runs (invariant 3 in djmfs_meta.c), and the inode table,
 * an open-addressing hash from inode to name, reservation and working
 * file record (invariants 2 and 6).  Both are plain containers: the
 * state decides what goes in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_meta.h"

#define INOS_MIN 64u

/* ------------------------------------------------------------------ */
/* Unit run sets                                                       */
/* ------------------------------------------------------------------ */


void djmfs__rset_free(struct djmfs__rset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

static int rset_grow(struct djmfs__rset *s, uint32_t want)
{
	uint32_t cap = s->cap ? s->cap : 4;
	struct djmfs__urun *r;

	if (want <= s->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

int djmfs__rset_copy(struct djmfs__rset *dst, const struct djmfs__rset *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->n)
		return 0;
	if (rset_grow(dst, src->n))
		return -ENOMEM;
	memcpy(dst->r, src->r, src->n * sizeof(*src->r));
	dst->n = src->n;
	return 0;
}

/* Index of the first run starting after @u. */
static uint32_t rset_upper(const struct djmfs__rset *s, uint64_t u)
{
	uint32_t lo = 0, hi = s->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].first <= u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void rset_insert_at(struct djmfs__rset *s, uint32_t i, uint64_t first,
			   uint64_t count)
{
	memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
	s->r[i].first = first;
	s->r[i].count = count;
	s->n++;
}

static void rset_remove_at(struct djmfs__rset *s, uint32_t i)
{
	memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(s->r[0]));
	s->n--;
}

/* Adds [first, first + count).  Returns 0, -EINVAL (overlaps a run), or
 * -ENOMEM. */
int djmfs__rset_add(struct djmfs__rset *s, uint64_t first, uint64_t count)
{
	uint32_t i = rset_upper(s, first);
	struct djmfs__urun *prev = i ? &s->r[i - 1] : NULL;
	struct djmfs__urun *next = i < s->n ? &s->r[i] : NULL;
	int join_prev, join_next;

	if ((prev && prev->first + prev->count > first) ||
	    (next && first + count > next->first))
		return -EINVAL;
	join_prev = prev && prev->first + prev->count == first;
	join_next = next && first + count == next->first;
	if (join_prev && join_next) {
		prev->count += count + next->count;
		rset_remove_at(s, i);
	} else if (join_prev) {
		prev->count += count;
	} else if (join_next) {
		next->first = first;
		next->count += count;
	} else {
		if (rset_grow(s, s->n + 1))
			return -ENOMEM;
		rset_insert_at(s, i, first, count);
	}
	return 0;
}

/* Takes [first, first + count) out; it must lie inside one run.  Returns
 * 0, -ENOENT (not all of it is in the set), or -ENOMEM. */
int djmfs__rset_take(struct djmfs__rset *s, uint64_t first, uint64_t count)
{
	uint32_t i = rset_upper(s, first);
	struct djmfs__urun *r;
	uint64_t end = first + count, rend;

	if (!i)
		return -ENOENT;
	r = &s->r[i - 1];
	rend = r->first + r->count;
	if (first >= rend || end > rend)
		return -ENOENT;
	if (first == r->first && end == rend) {
		rset_remove_at(s, i - 1);
	} else if (first == r->first) {
		r->first = end;
		r->count -= count;
	} else if (end == rend) {
		r->count -= count;
	} else {
		if (rset_grow(s, s->n + 1))
			return -ENOMEM;
		r = &s->r[i - 1];
		r->count = first - r->first;
		rset_insert_at(s, i, end, rend - end);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Inode table: ino -> name and reservation, open addressing           */
/* ------------------------------------------------------------------ */


static size_t im_home(const struct djmfs__imap *im, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (im->cap - 1);
}

struct djmfs__ient *djmfs__im_find(const struct djmfs__imap *im, uint64_t ino)
{
	size_t i;

	if (!im->cap || !ino)
		return NULL;
	for (i = im_home(im, ino); im->slot[i].ino; i = (i + 1) & (im->cap - 1))
		if (im->slot[i].ino == ino)
			return &im->slot[i];
	return NULL;
}

/* Places @e (ino not present; room guaranteed). */
struct djmfs__ient *djmfs__im_place(struct djmfs__imap *im, const struct djmfs__ient *e)
{
	size_t i = im_home(im, e->ino);

	while (im->slot[i].ino)
		i = (i + 1) & (im->cap - 1);
	im->slot[i] = *e;
	im->n++;
	return &im->slot[i];
}

/* Makes room for one more entry (load at most one half). */
int djmfs__im_reserve(struct djmfs__imap *im)
{
	struct djmfs__imap big;
	size_t i;

	if ((im->n + 1) * 2 <= im->cap)
		return 0;
	big.cap = im->cap ? im->cap * 2 : INOS_MIN;
	big.n = 0;
	big.slot = calloc(big.cap, sizeof(*big.slot));
	if (!big.slot)
		return -ENOMEM;
	for (i = 0; i < im->cap; i++)
		if (im->slot[i].ino)
			djmfs__im_place(&big, &im->slot[i]);
	free(im->slot);
	*im = big;
	return 0;
}

/* Frees @e's contents and closes the gap (backward-shift deletion). */
void djmfs__im_remove(struct djmfs__imap *im, struct djmfs__ient *e)
{
	size_t mask = im->cap - 1, i = (size_t)(e - im->slot), j = i;

	free(e->name);
	djmfs__rset_free(&e->res);
	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (!im->slot[j].ino)
			break;
		k = im_home(im, im->slot[j].ino);
		/* Move j back to i unless its home is cyclically in (i, j]. */
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			im->slot[i] = im->slot[j];
			i = j;
		}
	}
	memset(&im->slot[i], 0, sizeof(im->slot[i]));
	im->n--;
}

void djmfs__im_clear(struct djmfs__imap *im)
{
	size_t i;

	for (i = 0; i < im->cap; i++) {
		free(im->slot[i].name);
		djmfs__rset_free(&im->slot[i].res);
	}
	free(im->slot);
	memset(im, 0, sizeof(*im));
}
