/*
 * The stream loads of iosched-bench, run through libiosched.  The plain
 * load is N streams, each reading (or writing) one request every period
 * from its own sequential region, deadline one period after issue.  On
 * top of it: per-stream periods and sizes, a fraction of recorders that
 * append, best-effort background readers, groups of viewers sharing one
 * region, and streamd's input buffers (--refill) with seeks.  The same
 * loop drives the simulator (virtual clock, deterministic for a seed) and
 * io_uring on a real file or device; only the back end differs.  The test
 * suite links this file, so the tests measure the tool's workload.
 *
 * Timed events (a periodic stream's arrival, a refill stream's period
 * visit or seek) come from a min-heap in drive(); what follows a
 * completion (the next background read, the next read of a refill burst)
 * is submitted from the completion callback, at the completion's time.
 *
 * A refill stream mirrors a streamd session (streamd/sd_session.c) with a
 * player that takes size/period bytes per second, smoothly:
 *  1. At most one read is in flight (st->busy).
 *  2. The level only changes in level_at() (the player drains it while
 *     playing) and when a read of the current generation completes.
 *  3. The player plays from the moment a burst first brings the level to
 *     B, until the buffer runs dry (one underflow) or a seek; then it waits
 *     for B again, as a buffering player does.
 *  4. A read's deadline is a fixed time after its issue, as streamd's
 *     (deadline knob, default the period) is: X * period with
 *     --deadline-factor X, not the moment the buffer would run dry.
 * Transitions:
 *   period visit (refill_tick): idle and level <= A  -> read
 *   completion (refill_done):   level < B            -> read again at once
 *   seek (refill_seek):         level 0, not playing, generation + 1;
 *                               idle -> read (the burst starts), busy ->
 *                               the stale read's bytes are dropped on
 *                               completion, which then starts the burst
 * streamd also applies the B rule when its player takes bytes; this
 * player drains smoothly, so the bench applies it at the period visits
 * and completions only.
 *
 * On a real device a periodic stream that falls far behind sheds its
 * arrivals (shed_limit()): each is counted as a miss and in `shed`
 * instead of taking another buffer, so a sweep past the device's limit
 * stays within memory.  It sheds only when a miss is already certain, so
 * where a run has no miss nothing changes.  The simulator holds no
 * buffers and never sheds, so its figures stay comparable across
 * versions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "iosched-int.h"

#define BENCH_ALIGN 4096u
#define BENCH_REG_CHUNK (256u << 20) /* bytes per registered buffer */

enum stream_kind {
	SK_PERIODIC = 0, /* one request per period */
	SK_REFILL,	 /* streamd's input buffer */
	SK_BACKGROUND,	 /* back-to-back best-effort reads */
};

struct stream {
	uint64_t next_ns;	/* heap key: the next timed event */
	uint64_t tick_ns;	/* refill: next period visit */
	uint64_t seek_ns;	/* refill: next seek; UINT64_MAX: never */
	uint64_t base, region, pos;
	uint64_t period_ns;
	uint64_t deadline_ns;	/* relative to issue; 0: best effort */
	uint32_t size;
	enum stream_kind kind;
	enum iosched_op op;
	double level;		/* refill: bytes buffered at level_ns */
	uint64_t level_ns;
	double rate;		/* refill: bytes per ns the player takes */
	bool playing;		/* invariant 3 */
	bool busy;		/* invariant 1 */
	uint32_t gen;		/* bumped by a seek */
	uint64_t rng;		/* seeks: the stream's own draws */
	uint32_t inflight;	/* periodic: requests issued, not completed */
};

/* A request and its buffer; free ones are chained through next_free. */
struct slot {
	struct iosched_req req;
	struct slot *next_free;
	struct load *load;
	uint32_t gen;		/* the stream's generation at issue */
};

/* Slots beyond the registered arena come in blocks, freed at the end. */
struct slot_block {
	struct slot_block *next;
	unsigned char *bufs;
	struct slot slots[];
};

struct load {
	const struct bench_cfg *cfg;
	struct slot_block *extra;
	bool real;
	int fd;
	struct iosched *s;
	struct stream *st;	/* cfg->streams, then the background ones */
	unsigned nst;
	uint32_t *heap; /* stream indices, min-heap on next_ns */
	unsigned nheap;
	struct slot *free_slots;
	struct slot *slots;
	unsigned nslots;
	struct slot *bg_slots;	/* one per background stream */
	uint32_t slot_size;	/* bytes of a slot's buffer */
	unsigned char *arena;
	size_t arena_len;
	uint64_t outstanding;
	uint64_t rng;
	uint64_t t0;
	bool stopped;		/* past the duration: nothing new is issued */
	int err;		/* a failure inside a completion */
	uint32_t cap;		/* refill buffer bytes */
	double a_bytes, b_bytes;
	struct bench_result cnt; /* the load's own counts */
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int bench_open_device(const char *path, bool write, int *fd, uint64_t *size)
{
	struct stat sb;
	int f;

	f = open(path, (write ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	if (f < 0)
		return -errno;
	if (fstat(f, &sb) < 0)
		goto err;
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(f, BLKGETSIZE64, size) < 0)
			goto err;
	} else {
		*size = (uint64_t)sb.st_size;
	}
	*fd = f;
	return 0;
err:
	{
		int e = -errno;

		close(f);
		return e;
	}
}

static bool heap_less(const struct load *l, uint32_t a, uint32_t b)
{
	return l->st[a].next_ns < l->st[b].next_ns ||
	       (l->st[a].next_ns == l->st[b].next_ns && a < b);
}

static void heap_down(struct load *l, unsigned i)
{
	for (;;) {
		unsigned c = 2 * i + 1;
		uint32_t t;

		if (c >= l->nheap)
			return;
		if (c + 1 < l->nheap && heap_less(l, l->heap[c + 1], l->heap[c]))
			c++;
		if (!heap_less(l, l->heap[c], l->heap[i]))
			return;
		t = l->heap[c];
		l->heap[c] = l->heap[i];
		l->heap[i] = t;
		i = c;
	}
}

/* ------------------------------------------------------------------ */
/* Slots                                                               */
/* ------------------------------------------------------------------ */

static void slot_done(struct iosched_req *req, int res);

/* Makes @sl a free slot of @l whose buffer is @buf (NULL on the simulator). */
static void slot_add(struct load *l, struct slot *sl, unsigned char *buf)
{
	sl->load = l;
	sl->req.buf = buf;
	sl->next_free = l->free_slots;
	l->free_slots = sl;
}

static void slot_put(struct load *l, struct slot *sl)
{
	sl->next_free = l->free_slots;
	l->free_slots = sl;
}

/*
 * One buffer per slot, in one arena so io_uring can register it: twice
 * the streams plus room for the dispatch depth covers a run that keeps
 * up; one that falls behind grows more with slots_grow().  Background
 * streams have one outstanding read each, so one slot each, at the
 * arena's end (their 1 MiB is more than a stream slot holds).
 */
static int slots_init(struct load *l, bool real)
{
	const struct bench_cfg *c = l->cfg;
	unsigned n = c->streams * 2 + 256, i;
	size_t bg_off = (size_t)n * l->slot_size;

	l->slots = calloc(n, sizeof(*l->slots));
	l->bg_slots = calloc(c->background + 1, sizeof(*l->bg_slots));
	if (!l->slots || !l->bg_slots)
		return -ENOMEM;
	l->nslots = n;
	l->real = real;
	if (real) {
		l->arena_len = bg_off + (size_t)c->background * BENCH_BG_SIZE;
		if (posix_memalign((void **)&l->arena, BENCH_ALIGN,
				   l->arena_len))
			return -ENOMEM;
		memset(l->arena, 0xa5, l->arena_len);
	}
	for (i = 0; i < n; i++)
		slot_add(l, &l->slots[i],
			 l->arena ? l->arena + (size_t)i * l->slot_size : NULL);
	for (i = 0; i < c->background; i++) {
		l->bg_slots[i].load = l;
		l->bg_slots[i].req.buf =
			l->arena ? l->arena + bg_off + (size_t)i * BENCH_BG_SIZE :
				   NULL;
	}
	return 0;
}

/* Registers the arena in pieces the kernel accepts; a failure only
 * costs the fixed-buffer fast path. */
static void slots_register(struct load *l)
{
	unsigned n = (unsigned)((l->arena_len + BENCH_REG_CHUNK - 1) /
				BENCH_REG_CHUNK), i;
	void **bufs = calloc(n, sizeof(*bufs));
	size_t *lens = calloc(n, sizeof(*lens));

	if (bufs && lens) {
		for (i = 0; i < n; i++) {
			size_t off = (size_t)i * BENCH_REG_CHUNK;

			bufs[i] = l->arena + off;
			lens[i] = l->arena_len - off < BENCH_REG_CHUNK ?
					  l->arena_len - off :
					  BENCH_REG_CHUNK;
		}
		if (iosched_register_buffers(l->s, bufs, lens, n) < 0)
			iosched__log(&l->cfg->log, IOSCHED_LOG_WARN,
				     "bench: buffers not registered; "
				     "using plain reads");
	}
	free(bufs);
	free(lens);
}

/* An overloaded run keeps more requests outstanding than planned: grow. */
static int slots_grow(struct load *l)
{
	unsigned n = l->cfg->streams + 64, i;
	struct slot_block *b = calloc(1, sizeof(*b) + n * sizeof(b->slots[0]));

	if (!b)
		return -ENOMEM;
	if (l->real && posix_memalign((void **)&b->bufs, BENCH_ALIGN,
				      (size_t)n * l->slot_size)) {
		free(b);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		slot_add(l, &b->slots[i],
			 b->bufs ? b->bufs + (size_t)i * l->slot_size : NULL);
	b->next = l->extra;
	l->extra = b;
	return 0;
}

static void slots_free(struct load *l)
{
	while (l->extra) {
		struct slot_block *b = l->extra;

		l->extra = b->next;
		free(b->bufs);
		free(b);
	}
	free(l->slots);
	free(l->bg_slots);
	free(l->arena);
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */
/* ------------------------------------------------------------------ */

static double stream_period_s(const struct bench_cfg *c, unsigned i)
{
	return c->nperiods ? c->periods[i % c->nperiods] : c->period_s;
}

static uint32_t stream_size(const struct bench_cfg *c, unsigned i)
{
	return c->nsizes ? c->sizes[i % c->nsizes] : c->size;
}

uint32_t bench_max_size(const struct bench_cfg *c)
{
	uint32_t m = c->size;
	unsigned i;

	for (i = 0; i < c->nsizes; i++)
		if (c->sizes[i] > m)
			m = c->sizes[i];
	return m;
}

/*
 * Stream @i writes when floor((i + 1) F) passes an integer: floor(N F)
 * writers spread evenly, the same ones for every run.  The epsilon keeps
 * 0.29 * 100 from landing just below 29.
 */
static bool is_writer(const struct bench_cfg *c, unsigned i)
{
	double f = c->writers;

	if (f <= 0)
		return c->write;
	return floor((i + 1) * f + 1e-9) > floor(i * f + 1e-9);
}

static unsigned share_of(const struct bench_cfg *c)
{
	return c->share > 1 ? c->share : 1;
}

/* A group member's spacing: BENCH_SHARE_GAP_S of its data, in whole
 * requests so that members read the very offsets the first one read. */
static uint64_t share_gap(const struct bench_cfg *c, unsigned i)
{
	double reqs = floor(BENCH_SHARE_GAP_S / stream_period_s(c, i) + 0.5);

	return (uint64_t)(reqs < 1 ? 1 : reqs) * stream_size(c, i);
}

/*
 * Where stream @i starts in its region.  Member j of a group is j gaps
 * behind the first, which starts far enough in for all to fit: they read
 * the same offsets j * BENCH_SHARE_GAP_S apart.
 */
static uint64_t start_pos(const struct bench_cfg *c, unsigned i,
			  uint64_t region)
{
	unsigned k = share_of(c), g0 = i / k * k, j;
	uint64_t lead = 0, pos, size = stream_size(c, i), span;

	if (k == 1)
		return 0;
	for (j = g0; j < g0 + k && j < c->streams; j++)
		if ((j - g0) * share_gap(c, j) > lead)
			lead = (j - g0) * share_gap(c, j);
	pos = lead - (i - g0) * share_gap(c, i);
	pos -= pos % size;
	span = region / size * size;
	return pos + size > region ? pos % span : pos;
}

/* An exponential interval of mean --seek-every, from the stream's draws. */
static uint64_t seek_interval(const struct bench_cfg *c, struct stream *st)
{
	double u = ((rnd(&st->rng) >> 11) + 1) * (1.0 / 9007199254740992.0);

	return (uint64_t)(-log(u) * c->seek_every_s * 1e9) + 1;
}

static uint64_t heap_key(const struct stream *st)
{
	if (st->kind != SK_REFILL)
		return st->next_ns;
	return st->tick_ns < st->seek_ns ? st->tick_ns : st->seek_ns;
}

/*
 * Lays the regions out (one per group of --share streams, then one per
 * background stream) and gives each stream its parameters and phase.
 * The plain load's phases come from l->rng in stream order, as they
 * always have, so its runs are unchanged.
 */
static int streams_init(struct load *l, uint64_t dev_size, uint64_t t0)
{
	const struct bench_cfg *c = l->cfg;
	unsigned k = share_of(c), groups = (c->streams + k - 1) / k, i;
	uint64_t region = dev_size / (groups + c->background);
	uint64_t need = c->background ? BENCH_BG_SIZE : 0;

	region = region / l->slot_size * l->slot_size;
	if (region < l->slot_size || region < need) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "bench: %llu bytes is too small for %u streams",
			     (unsigned long long)dev_size,
			     c->streams + c->background);
		return -EINVAL;
	}
	for (i = 0; i < c->streams; i++) {
		struct stream *st = &l->st[i];
		double period = stream_period_s(c, i);
		double factor = c->deadline_factor > 0 ? c->deadline_factor : 1;

		st->size = stream_size(c, i);
		st->period_ns = (uint64_t)(period * 1e9);
		st->op = is_writer(c, i) ? IOSCHED_WRITE : IOSCHED_READ;
		st->kind = c->refill && st->op == IOSCHED_READ ? SK_REFILL :
								 SK_PERIODIC;
		if (st->op == IOSCHED_WRITE)
			st->deadline_ns = c->write_deadline_s > 0 ?
				(uint64_t)(c->write_deadline_s * 1e9) :
				st->period_ns;
		else
			st->deadline_ns = (uint64_t)(factor * period * 1e9);
		st->base = (uint64_t)(i / k) * region;
		st->region = region;
		st->pos = start_pos(c, i, region);
		st->next_ns = t0 + rnd(&l->rng) % (st->period_ns ?
						   st->period_ns : 1);
		st->rng = c->seed ^ (0x2545F4914F6CDD1Dull * (i + 1));
		st->tick_ns = st->next_ns;
		st->seek_ns = c->seek_every_s > 0 ?
				      t0 + seek_interval(c, st) : UINT64_MAX;
		st->rate = (double)st->size / (double)st->period_ns;
		st->level_ns = t0;
		st->next_ns = heap_key(st);
		l->heap[i] = i;
	}
	for (i = c->streams; i < l->nst; i++) {
		struct stream *st = &l->st[i];

		st->kind = SK_BACKGROUND;
		st->op = IOSCHED_READ;
		st->size = BENCH_BG_SIZE;
		st->base = (uint64_t)(groups + i - c->streams) * region;
		st->region = region;
	}
	l->nheap = c->streams;
	for (i = l->nheap / 2 + 1; i-- > 0;)
		heap_down(l, i);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Issue and completion                                                */
/* ------------------------------------------------------------------ */

/* Submits @len bytes at the stream's position and moves it on. */
static int submit(struct load *l, uint32_t idx, struct slot *sl,
		  uint32_t len, uint64_t now)
{
	struct stream *st = &l->st[idx];
	int rc;

	sl->req.op = st->op;
	sl->req.fd = l->fd;
	sl->req.offset = st->base + st->pos;
	sl->req.len = len;
	sl->req.deadline_ns = st->deadline_ns ? now + st->deadline_ns : 0;
	sl->req.stream = idx;
	sl->req.done = slot_done;
	sl->gen = st->gen;
	st->pos += len;
	if (st->pos + st->size > st->region)
		st->pos = 0;
	rc = iosched_submit(l->s, &sl->req);
	if (rc < 0)
		return rc;
	l->outstanding++;
	if (st->kind == SK_REFILL)
		st->busy = true;
	else if (st->kind == SK_PERIODIC)
		st->inflight++;
	return 0;
}

static int issue(struct load *l, uint32_t idx, uint32_t len, uint64_t now)
{
	struct slot *sl;
	int rc;

	if (l->st[idx].kind == SK_BACKGROUND) {
		sl = &l->bg_slots[idx - l->cfg->streams];
		return submit(l, idx, sl, len, now);
	}
	if (!l->free_slots && (rc = slots_grow(l)) < 0)
		return rc;
	sl = l->free_slots;
	l->free_slots = sl->next_free;
	rc = submit(l, idx, sl, len, now);
	if (rc < 0)
		slot_put(l, sl);
	return rc;
}

/* Invariant 2: the player drains the buffer up to @now. */
static void level_at(struct load *l, struct stream *st, uint64_t now)
{
	double left;

	if (now <= st->level_ns)
		return;
	if (st->playing) {
		left = st->level - st->rate * (double)(now - st->level_ns);
		if (left <= 0) {
			left = 0;
			st->playing = false;
			l->cnt.underflows++;
		}
		st->level = left;
	}
	st->level_ns = now;
}

/* One read into the buffer: streamd's read_size, or less if the buffer
 * has no room for it (rounded down to the alignment O_DIRECT needs). */
static int refill_read(struct load *l, uint32_t idx, uint64_t now)
{
	struct stream *st = &l->st[idx];
	double room = (double)l->cap - st->level;
	uint32_t len = st->size;

	if (room < len)
		len = room < BENCH_ALIGN ? 0 :
			(uint32_t)room / BENCH_ALIGN * BENCH_ALIGN;
	return len ? issue(l, idx, len, now) : 0;
}

static void refill_done(struct load *l, uint32_t idx, const struct slot *sl,
			int res, uint64_t now)
{
	struct stream *st = &l->st[idx];
	int rc;

	st->busy = false;
	if (l->stopped)
		return;
	level_at(l, st, now);
	if (res > 0 && sl->gen == st->gen) {
		st->level += res;
		if (!st->playing && st->level >= l->b_bytes)
			st->playing = true;
	}
	if (st->level < l->b_bytes) {
		rc = refill_read(l, idx, now);
		if (rc < 0 && !l->err)
			l->err = rc;
	}
}

/* Counts what the library cannot tell apart, and traces. */
static void account(struct load *l, const struct slot *sl, int res)
{
	const struct iosched_req *r = &sl->req;
	bool late = r->deadline_ns && r->in.complete_ns > r->deadline_ns;
	bool bg = l->st[r->stream].kind == SK_BACKGROUND;

	if (bg) {
		l->cnt.background_requests++;
	} else if (r->op == IOSCHED_WRITE) {
		l->cnt.writes++;
		l->cnt.write_misses += late;
	} else {
		l->cnt.reads++;
		l->cnt.read_misses += late;
	}
	if (l->cfg->trace) {
		struct bench_trace t = {
			.stream = r->stream,
			.background = bg,
			.op = r->op,
			.offset = r->offset,
			.len = r->len,
			.submit_ns = r->in.submit_ns - l->t0,
			.deadline_ns = r->deadline_ns ? r->deadline_ns - l->t0 : 0,
			.complete_ns = r->in.complete_ns - l->t0,
			.res = res,
		};

		l->cfg->trace(l->cfg->trace_arg, &t);
	}
}

static void slot_done(struct iosched_req *req, int res)
{
	struct slot *sl = (struct slot *)req;
	struct load *l = sl->load;
	uint32_t idx = req->stream;
	uint64_t now = req->in.complete_ns;
	int rc = 0;

	account(l, sl, res);
	l->outstanding--;
	switch (l->st[idx].kind) {
	case SK_BACKGROUND:
		if (!l->stopped)
			rc = issue(l, idx, BENCH_BG_SIZE, now);
		break;
	case SK_REFILL:
		slot_put(l, sl);
		refill_done(l, idx, sl, res, now);
		break;
	default:
		l->st[idx].inflight--;
		slot_put(l, sl);
	}
	if (rc < 0 && !l->err)
		l->err = rc;
}

/* ------------------------------------------------------------------ */
/* Timed events                                                        */
/* ------------------------------------------------------------------ */

/* Empties the buffer and jumps to a random point of the region. */
static int refill_seek(struct load *l, uint32_t idx, uint64_t now)
{
	struct stream *st = &l->st[idx];

	st->seek_ns += seek_interval(l->cfg, st);
	st->level = 0;
	st->playing = false;
	st->gen++;
	st->pos = rnd(&st->rng) % (st->region / st->size) * st->size;
	l->cnt.seeks++;
	return st->busy ? 0 : refill_read(l, idx, now);
}

static int refill_tick(struct load *l, uint32_t idx, uint64_t now)
{
	struct stream *st = &l->st[idx];
	int rc = 0;

	level_at(l, st, now);
	if (now >= st->seek_ns)
		rc = refill_seek(l, idx, now);
	if (rc == 0 && now >= st->tick_ns) {
		st->tick_ns += st->period_ns;
		if (!st->busy && st->level <= l->a_bytes)
			rc = refill_read(l, idx, now);
	}
	st->next_ns = heap_key(st);
	return rc;
}

/*
 * Requests a periodic stream may have outstanding before it sheds.  It
 * issues one per period, so with k outstanding the oldest went out at
 * least k - 1 periods ago; once k - 1 periods exceed its deadline that
 * one is late whatever happens next: k = floor(deadline / period) + 2.
 * One more keeps the bound clear of the boundary.
 */
static uint32_t shed_limit(const struct stream *st)
{
	return (uint32_t)(st->deadline_ns / st->period_ns) + 3;
}

static int event(struct load *l, uint32_t idx, uint64_t due)
{
	struct stream *st = &l->st[idx];
	int rc = 0;

	if (st->kind == SK_REFILL)
		return refill_tick(l, idx, due);
	if (l->real && st->inflight >= shed_limit(st)) {
		l->cnt.shed++;
		if (st->op == IOSCHED_WRITE)
			l->cnt.write_misses++;
		else
			l->cnt.read_misses++;
	} else {
		rc = issue(l, idx, st->size, due);
	}
	st->next_ns = due + st->period_ns;
	return rc;
}

/*
 * After the duration: completions still arriving issue nothing, and each
 * buffer is judged up to the end.  Loads with nothing issued from
 * completions simply drain, as the plain load always has.
 */
static int stop(struct load *l, uint64_t end)
{
	unsigned i;
	int rc;

	if (l->cfg->background || l->cfg->refill) {
		rc = iosched_run(l->s, end);
		if (rc < 0)
			return rc;
	}
	for (i = 0; i < l->cfg->streams; i++)
		if (l->st[i].kind == SK_REFILL)
			level_at(l, &l->st[i], end);
	l->stopped = true;
	return 0;
}

/* The arrival loop: run the scheduler up to each event, then act on it. */
static int drive(struct load *l, uint64_t t0)
{
	const struct bench_cfg *c = l->cfg;
	uint64_t end = t0 + (uint64_t)(c->duration_s * 1e9);
	unsigned i;
	int rc = 0;

	for (i = c->streams; i < l->nst && rc == 0; i++)
		rc = issue(l, i, BENCH_BG_SIZE, t0);
	while (rc == 0 && l->st[l->heap[0]].next_ns < end) {
		uint32_t idx = l->heap[0];
		uint64_t due = l->st[idx].next_ns;

		rc = iosched_run(l->s, due);
		if (rc < 0)
			return rc;
		rc = l->err ? l->err : event(l, idx, due);
		heap_down(l, 0);
	}
	if (rc < 0) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "bench: submit failed: %s", strerror(-rc));
		return rc;
	}
	rc = stop(l, end);
	if (rc == 0)
		rc = iosched_drain(l->s);
	return rc < 0 ? rc : l->err;
}

static int make_backend(const struct bench_cfg *c, struct iosched_model **m,
			struct iosched_backend **be, int *fd, uint64_t *size)
{
	bool sim = strncmp(c->device, "sim:", 4) == 0;
	const char *prof = sim ? c->device + 4 : (c->profile ? c->profile : "nvme");
	int rc;

	rc = iosched_model_load(m, prof, &c->log);
	if (rc < 0)
		return rc;
	if (sim) {
		*size = iosched_model_capacity(*m);
		return iosched_backend_sim_new(be, *m, 0, c->seed, &c->log);
	}
	rc = bench_open_device(c->device, c->write || c->writers > 0, fd, size);
	if (rc < 0) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "bench: open %s: %s", c->device, strerror(-rc));
		return rc;
	}
	/* The ring bounds the dispatch depth: make room for the one asked. */
	return iosched_backend_uring_new(be, c->depth > 256 ? c->depth : 256,
					 BENCH_ALIGN, &c->log);
}

static void fill_result(const struct load *l, double elapsed, double cpu,
			struct bench_result *out)
{
	struct iosched_stats st;

	iosched_stats_get(l->s, &st);
	*out = l->cnt;
	out->requests = st.requests;
	out->misses = st.misses + l->cnt.shed;
	out->errors = st.errors;
	out->bytes = st.bytes;
	out->miss_rate = st.deadline_requests + l->cnt.shed ?
				 (double)out->misses /
					 (double)(st.deadline_requests + l->cnt.shed) :
				 0;
	out->lateness_p50_us = st.lateness_p50_ns / 1e3;
	out->lateness_p99_us = st.lateness_p99_ns / 1e3;
	out->lateness_max_us = st.lateness_max_ns / 1e3;
	out->latency_p50_us = st.latency_p50_ns / 1e3;
	out->latency_p99_us = st.latency_p99_ns / 1e3;
	out->latency_max_us = st.latency_max_ns / 1e3;
	out->elapsed_s = elapsed;
	out->throughput_MBps = elapsed > 0 ? st.bytes / elapsed / 1e6 : 0;
	out->cpu_s = cpu;
	out->queue_depth_max = st.queue_depth_max;
	out->glmd_rescues = st.glmd_rescues;
	out->glmd_rescues_kept = st.glmd_rescues_kept;
	out->model_error_p50_pct = st.model_error_p50_pct;
	out->model_error_p99_pct = st.model_error_p99_pct;
	{
		struct iosched_knobs k;

		iosched_get_knobs(l->s, &k);
		out->depth = k.depth;
	}
}

/* What bench_run needs of the richer fields; the tool checks the same
 * with friendlier messages. */
static bool cfg_ok(const struct bench_cfg *c)
{
	double a = c->a_pct > 0 ? c->a_pct : BENCH_REFILL_A;
	double b = c->b_pct > 0 ? c->b_pct : BENCH_REFILL_B;
	unsigned i;

	if (c->streams == 0 || c->size == 0 || c->period_s <= 0 ||
	    c->nperiods > BENCH_LIST_MAX || c->nsizes > BENCH_LIST_MAX)
		return false;
	for (i = 0; i < c->nperiods; i++)
		if (!(c->periods[i] > 0))
			return false;
	for (i = 0; i < c->nsizes; i++)
		if (c->sizes[i] == 0 || c->sizes[i] % 512)
			return false;
	if (!(c->writers >= 0 && c->writers <= 1) || c->write_deadline_s < 0 ||
	    c->deadline_factor < 0 || c->seek_every_s < 0)
		return false;
	return !c->refill || (b < a && a <= 100 &&
			      (uint64_t)(c->buffer_size ? c->buffer_size :
					 BENCH_REFILL_BUFFER) >=
				      2 * (uint64_t)bench_max_size(c));
}

static int load_init(struct load *l)
{
	const struct bench_cfg *c = l->cfg;

	l->nst = c->streams + c->background;
	l->slot_size = bench_max_size(c);
	l->cap = c->buffer_size ? c->buffer_size : BENCH_REFILL_BUFFER;
	l->a_bytes = l->cap * (c->a_pct > 0 ? c->a_pct : BENCH_REFILL_A) / 100;
	l->b_bytes = l->cap * (c->b_pct > 0 ? c->b_pct : BENCH_REFILL_B) / 100;
	l->st = calloc(l->nst, sizeof(*l->st));
	l->heap = calloc(c->streams, sizeof(*l->heap));
	if (!l->st || !l->heap || slots_init(l, l->fd >= 0) < 0)
		return -ENOMEM;
	return 0;
}

int bench_run(const struct bench_cfg *c, struct bench_result *out)
{
	struct iosched_model *m = NULL;
	struct iosched_backend *be = NULL;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = c->policy, .log = c->log };
	struct load l = { .cfg = c, .rng = c->seed ^ 0x5bd1e995u, .fd = -1 };
	uint64_t size = 0;
	double cpu0;
	int rc;

	if (c->engine == BENCH_ENGINE_PSYNC)
		return bench_run_psync(c, out);
	if (!cfg_ok(c))
		return -EINVAL;
	rc = make_backend(c, &m, &be, &l.fd, &size);
	if (rc < 0)
		goto out;
	if (size / c->streams < bench_max_size(c)) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "bench: %llu bytes is too small for %u streams",
			     (unsigned long long)size, c->streams);
		iosched_backend_free(be);
		rc = -EINVAL;
		goto out;
	}
	iosched_default_knobs(&k);
	k.depth = c->depth;
	cfg.model = m;
	cfg.knobs = &k;
	rc = iosched_new(&l.s, &cfg, be);
	if (rc < 0)
		goto out;
	if (c->policy_ops && (rc = iosched__use_policy(l.s, c->policy_ops)) < 0)
		goto out;
	rc = load_init(&l);
	if (rc < 0)
		goto out;
	if (l.fd >= 0)
		slots_register(&l);
	cpu0 = cpu_seconds();
	l.t0 = iosched_now(l.s);
	rc = streams_init(&l, size, l.t0);
	if (rc == 0)
		rc = drive(&l, l.t0);
	if (rc == 0)
		fill_result(&l, (iosched_now(l.s) - l.t0) / 1e9,
			    cpu_seconds() - cpu0, out);
out:
	iosched_free(l.s);
	iosched_model_free(m);
	free(l.st);
	free(l.heap);
	slots_free(&l);
	if (l.fd >= 0)
		close(l.fd);
	return rc;
}
