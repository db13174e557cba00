/*
 * Statistics of a scheduler: counts, misses and log-linear histograms of
 * lateness and latency, for the totals and for each stream.  Streams are
 * found through a small open-addressed table so that accounting a
 * completion costs O(1) even with thousands of streams.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

#define HIST_TOTAL_BITS 5
#define HIST_STREAM_BITS 3
#define HIST_OCTAVES 44

struct iosched__hist *iosched__hist_new(unsigned bits)
{
	unsigned nb = (1u << bits) * HIST_OCTAVES;
	struct iosched__hist *h;

	h = calloc(1, sizeof(*h) + nb * sizeof(h->b[0]));
	if (!h)
		return NULL;
	h->bits = bits;
	h->nb = nb;
	return h;
}

void iosched__hist_reset(struct iosched__hist *h)
{
	h->count = 0;
	h->max = 0;
	memset(h->b, 0, h->nb * sizeof(h->b[0]));
}

/* Values below 2^(bits+1) get a bucket each; above, a bucket covers
 * 1/2^bits of an octave. */
static unsigned hist_index(const struct iosched__hist *h, uint64_t v)
{
	unsigned sub = 1u << h->bits;
	unsigned msb, shift, idx;

	if (v < 2 * (uint64_t)sub)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - h->bits;
	idx = shift * sub + (unsigned)(v >> shift);
	return idx < h->nb ? idx : h->nb - 1;
}

static uint64_t hist_upper(const struct iosched__hist *h, unsigned idx)
{
	unsigned sub = 1u << h->bits;
	unsigned shift, mant;

	if (idx < 2 * sub)
		return idx;
	shift = idx / sub - 1;
	mant = idx % sub + sub;
	return (((uint64_t)mant + 1) << shift) - 1;
}

void iosched__hist_add(struct iosched__hist *h, uint64_t v)
{
	h->b[hist_index(h, v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

uint64_t iosched__hist_quantile(const struct iosched__hist *h, double q)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h || h->count == 0)
		return 0;
	if (q <= 0)
		q = 0;
	if (q >= 1)
		return h->max;
	rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	for (i = 0; i < h->nb; i++) {
		seen += h->b[i];
		if (seen > rank) {
			uint64_t up = hist_upper(h, i);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}

static int counters_init(struct iosched__counters *c, unsigned bits)
{
	memset(c, 0, sizeof(*c));
	c->lateness = iosched__hist_new(bits);
	c->latency = iosched__hist_new(bits);
	if (!c->lateness || !c->latency) {
		free(c->lateness);
		free(c->latency);
		return -ENOMEM;
	}
	return 0;
}

static void counters_fini(struct iosched__counters *c)
{
	free(c->lateness);
	free(c->latency);
}

static void counters_reset(struct iosched__counters *c)
{
	c->requests = c->errors = c->deadline_requests = 0;
	c->misses = c->bytes = 0;
	iosched__hist_reset(c->lateness);
	iosched__hist_reset(c->latency);
}

int iosched__stats_init(struct iosched__stats *st)
{
	memset(st, 0, sizeof(*st));
	st->model_err = iosched__hist_new(HIST_TOTAL_BITS);
	if (!st->model_err)
		return -ENOMEM;
	if (counters_init(&st->total, HIST_TOTAL_BITS) < 0) {
		free(st->model_err);
		st->model_err = NULL;
		return -ENOMEM;
	}
	return 0;
}

void iosched__stats_fini(struct iosched__stats *st)
{
	size_t i;

	counters_fini(&st->total);
	free(st->model_err);
	for (i = 0; i < st->nstreams; i++)
		counters_fini(&st->streams[i]);
	free(st->streams);
	free(st->ids);
	free(st->slots);
	memset(st, 0, sizeof(*st));
}

void iosched__stats_reset(struct iosched__stats *st)
{
	size_t i;

	counters_reset(&st->total);
	for (i = 0; i < st->nstreams; i++)
		counters_reset(&st->streams[i]);
	st->queue_depth_max = 0;
	st->busy_ns = 0;
	st->rescues = st->rescues_kept = 0;
	iosched__hist_reset(st->model_err);
}

static size_t slot_of(const struct iosched__stats *st, uint32_t id)
{
	size_t mask = st->cap - 1;
	size_t i = ((uint64_t)id * 0x9E3779B97F4A7C15ull >> 32) & mask;

	while (st->slots[i] != UINT32_MAX && st->ids[i] != id)
		i = (i + 1) & mask;
	return i;
}

/* Doubles the table (kept at most half full so probes stay short). */
static int table_grow(struct iosched__stats *st)
{
	size_t ncap = st->cap ? st->cap * 2 : 64, i;
	uint32_t *ids = st->ids, *slots = st->slots;
	size_t ocap = st->cap;
	struct iosched__counters *ns;

	ns = realloc(st->streams, ncap / 2 * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	st->streams = ns;
	st->ids = malloc(ncap * sizeof(*st->ids));
	st->slots = malloc(ncap * sizeof(*st->slots));
	if (!st->ids || !st->slots) {
		free(st->ids);
		free(st->slots);
		st->ids = ids;
		st->slots = slots;
		return -ENOMEM;
	}
	memset(st->slots, 0xff, ncap * sizeof(*st->slots));
	st->cap = ncap;
	for (i = 0; i < ocap; i++) {
		if (slots[i] != UINT32_MAX) {
			size_t j = slot_of(st, ids[i]);
			st->ids[j] = ids[i];
			st->slots[j] = slots[i];
		}
	}
	free(ids);
	free(slots);
	return 0;
}

static struct iosched__counters *stream_get(struct iosched__stats *st,
					    uint32_t id)
{
	size_t i;

	if (st->cap) {
		i = slot_of(st, id);
		if (st->slots[i] != UINT32_MAX)
			return &st->streams[st->slots[i]];
	}
	if ((st->nstreams + 1) * 2 > st->cap && table_grow(st) < 0)
		return NULL;
	if (counters_init(&st->streams[st->nstreams], HIST_STREAM_BITS) < 0)
		return NULL;
	i = slot_of(st, id);
	st->ids[i] = id;
	st->slots[i] = (uint32_t)st->nstreams;
	return &st->streams[st->nstreams++];
}

const struct iosched__counters *
iosched__stats_stream(const struct iosched__stats *st, uint32_t stream)
{
	size_t i;

	if (!st->cap)
		return NULL;
	i = slot_of(st, stream);
	return st->slots[i] == UINT32_MAX ? NULL : &st->streams[st->slots[i]];
}

static void counters_add(struct iosched__counters *c,
			 const struct iosched_req *req, int res,
			 uint64_t now_ns)
{
	c->requests++;
	if (res < 0)
		c->errors++;
	else
		c->bytes += (uint64_t)res;
	iosched__hist_add(c->latency, now_ns - req->in.submit_ns);
	if (req->deadline_ns) {
		uint64_t late = now_ns > req->deadline_ns ?
					now_ns - req->deadline_ns : 0;
		c->deadline_requests++;
		if (late)
			c->misses++;
		iosched__hist_add(c->lateness, late);
	}
}

int iosched__stats_complete(struct iosched__stats *st,
			    const struct iosched_req *req, int res,
			    uint64_t now_ns)
{
	struct iosched__counters *c;

	counters_add(&st->total, req, res, now_ns);
	c = stream_get(st, req->stream);
	if (!c)
		return -ENOMEM;
	counters_add(c, req, res, now_ns);
	return 0;
}

void iosched__counters_export(const struct iosched__counters *c,
			      struct iosched_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->requests = c->requests;
	out->errors = c->errors;
	out->deadline_requests = c->deadline_requests;
	out->misses = c->misses;
	out->bytes = c->bytes;
	out->lateness_p50_ns = iosched__hist_quantile(c->lateness, 0.50);
	out->lateness_p99_ns = iosched__hist_quantile(c->lateness, 0.99);
	out->lateness_max_ns = c->lateness->max;
	out->latency_p50_ns = iosched__hist_quantile(c->latency, 0.50);
	out->latency_p99_ns = iosched__hist_quantile(c->latency, 0.99);
	out->latency_max_ns = c->latency->max;
}
