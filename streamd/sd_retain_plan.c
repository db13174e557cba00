/*
 * Where retention cuts a recording: the arithmetic of the retention
 * thread (sd_retain.c) on its own, without DJMFS or a clock, so the unit
 * tests can try every rule on an index they make up.
 *
 * A cut is a data offset the recording will start at; it is always the
 * offset of a keyframe entry of the index, so what remains begins where a
 * player can begin, and it never moves backwards.  The rules, each on its
 * own, give the furthest cut that still keeps what it promises:
 *  - retention (time): the newest keyframe at or before now - retention,
 *    so at least `retention` of time is kept and less than one GOP more;
 *  - retention_bytes: the first keyframe at or after data_size -
 *    retention_bytes, so at most that many bytes are kept;
 *  - the volume reserve (sd_retain_reserve): whole keyframe steps of the
 *    recordings whose oldest kept moment is the oldest of all, until the
 *    units they free make up what the volume lacks.
 * The furthest of the rules wins, and then two limits hold it back:
 *  1. a hold: never past the keyframe at or before the earliest hold's
 *     start (the bytes a player needs to begin the held range);
 *  2. the newest keyframe: a recording always keeps its last GOP, so a
 *     live one never starts beyond what players are reading now.
 * pinned_bytes says what the first limit kept that a rule would have
 * dropped: the cost of the holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

/* Position of the last keyframe entry, or -1. */
static ssize_t last_key(const struct sd_index *ix)
{
	for (size_t i = ix->n; i-- > 0;)
		if (ix->e[i].flags & SD_IDX_KEY)
			return (ssize_t)i;
	return -1;
}

/* The first keyframe entry at or after data offset @off, or -1. */
static ssize_t key_at_or_after(const struct sd_index *ix, uint64_t off)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->e[mid].offset < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ix->n; lo++)
		if (ix->e[lo].flags & SD_IDX_KEY)
			return (ssize_t)lo;
	return -1;
}

/* The newest keyframe entry whose wall time is at or before @t, or -1.
 * Wall times never decrease along the index (sd_rec.c, invariant 4). */
static ssize_t key_at_or_before(const struct sd_index *ix, int64_t t)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->e[mid].wall_ns <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo-- > 0)
		if (ix->e[lo].flags & SD_IDX_KEY)
			return (ssize_t)lo;
	return -1;
}

/* The furthest cut the limits allow, as an entry position (-1: none). */
static ssize_t limit_of(const struct sd_retain_rec *r)
{
	ssize_t lim = last_key(r->ix);

	if (r->hold_from != INT64_MAX) {
		ssize_t h = key_at_or_before(r->ix, r->hold_from);

		/* A hold that begins before the first keyframe kept pins
		 * the recording where it is. */
		if (h < 0)
			h = key_at_or_after(r->ix, r->data_start);
		if (h < lim)
			lim = h;
	}
	return lim;
}

static void cut_to(struct sd_retain_rec *r, ssize_t want, ssize_t lim)
{
	if (want < 0)
		return;
	if (want > lim) {
		uint64_t over = r->ix->e[want].offset;

		r->pinned = r->hold_from != INT64_MAX;
		if (lim < 0)
			return;
		want = lim;
		if (r->pinned && over > r->ix->e[lim].offset &&
		    over - r->ix->e[lim].offset > r->pinned_bytes)
			r->pinned_bytes = over - r->ix->e[lim].offset;
	}
	if (r->ix->e[want].offset > r->cut) {
		r->cut = r->ix->e[want].offset;
		r->cut_entry = (size_t)want;
	}
}

void sd_retain_rules(struct sd_retain_rec *r, int64_t now_ns)
{
	ssize_t lim = limit_of(r);

	r->cut = r->data_start;
	r->cut_entry = 0;
	r->pinned = 0;
	r->pinned_bytes = 0;
	if (r->ix->n == 0)
		return;
	if (r->rules.retention_ns > 0)
		cut_to(r, key_at_or_before(r->ix, now_ns - r->rules.retention_ns),
		       lim);
	if (r->rules.retention_bytes > 0 &&
	    r->data_size - r->data_start > r->rules.retention_bytes)
		cut_to(r, key_at_or_after(r->ix, r->data_size -
					  r->rules.retention_bytes), lim);
}

uint64_t sd_retain_units(const struct sd_retain_rec *r, uint64_t unit)
{
	return unit ? r->cut / unit - r->data_start / unit : 0;
}

/* The wall time of the first moment @r keeps after its planned cut. */
static int64_t oldest_kept(const struct sd_retain_rec *r)
{
	return r->ix->n ? r->ix->e[r->cut_entry].wall_ns : INT64_MAX;
}

uint64_t sd_retain_reserve(struct sd_retain_rec *recs, size_t n,
			   uint64_t need_units, uint64_t unit)
{
	uint64_t planned = 0;

	if (unit == 0)
		return 0;
	while (planned < need_units) {
		struct sd_retain_rec *o = NULL;
		ssize_t lim = -1, next;
		uint64_t before, target;

		/* The recording whose oldest kept moment is the oldest, among
		 * those a step can still cut. */
		for (size_t i = 0; i < n; i++) {
			struct sd_retain_rec *r = &recs[i];
			ssize_t l = r->ix->n ? limit_of(r) : -1;

			if (l < 0 || (size_t)l <= r->cut_entry ||
			    r->ix->e[l].offset <= r->cut)
				continue;
			if (!o || oldest_kept(r) < oldest_kept(o)) {
				o = r;
				lim = l;
			}
		}
		if (!o)
			break;
		/* One step: the first keyframe that frees one more unit. */
		before = sd_retain_units(o, unit);
		target = (o->cut / unit + 1) * unit;
		next = key_at_or_after(o->ix, target);
		if (next < 0 || next > lim)
			next = lim;
		o->cut = o->ix->e[next].offset;
		o->cut_entry = (size_t)next;
		o->by_reserve = 1;
		planned += sd_retain_units(o, unit) - before;
	}
	return planned;
}
