/*
 * The periodic-stream load of iosched-bench, run through libiosched: N
 * streams, each reading (or writing) one request every period from its
 * own sequential region, deadline one period after issue.  The same loop
 * drives the simulator (virtual clock, deterministic for a seed) and
 * io_uring on a real file or device; only the back end differs.  The test
 * suite links this file, so the tests measure the tool's workload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
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

struct stream {
	uint64_t next_ns;
	uint64_t base, region, pos;
};

/* A request and its buffer; free ones are chained through req.user. */
struct slot {
	struct iosched_req req;
	struct slot *next_free;
	struct load *load;
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
	struct iosched *s;
	struct stream *st;
	uint32_t *heap; /* stream indices, min-heap on next_ns */
	unsigned nheap;
	struct slot *free_slots;
	struct slot *slots;
	unsigned nslots;
	unsigned char *arena;
	size_t arena_len;
	uint64_t outstanding;
	uint64_t rng;
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

static void slot_done(struct iosched_req *req, int res)
{
	struct slot *sl = (struct slot *)req;

	(void)res;
	sl->next_free = sl->load->free_slots;
	sl->load->free_slots = sl;
	sl->load->outstanding--;
}

/* Makes @sl a free slot of @l whose buffer is @buf (NULL on the simulator). */
static void slot_add(struct load *l, struct slot *sl, unsigned char *buf)
{
	sl->load = l;
	sl->req.buf = buf;
	sl->next_free = l->free_slots;
	l->free_slots = sl;
}

/*
 * One buffer per slot, in one arena so io_uring can register it: twice
 * the streams plus room for the dispatch depth covers a run that keeps
 * up; one that falls behind grows more with slots_grow().
 */
static int slots_init(struct load *l, bool real)
{
	unsigned n = l->cfg->streams * 2 + 256, i;

	l->slots = calloc(n, sizeof(*l->slots));
	if (!l->slots)
		return -ENOMEM;
	l->nslots = n;
	l->real = real;
	if (real) {
		l->arena_len = (size_t)n * l->cfg->size;
		if (posix_memalign((void **)&l->arena, BENCH_ALIGN,
				   l->arena_len))
			return -ENOMEM;
		memset(l->arena, 0xa5, l->arena_len);
	}
	for (i = 0; i < n; i++)
		slot_add(l, &l->slots[i],
			 l->arena ? l->arena + (size_t)i * l->cfg->size : NULL);
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

static void streams_init(struct load *l, uint64_t dev_size, uint64_t t0)
{
	const struct bench_cfg *c = l->cfg;
	uint64_t region = dev_size / c->streams / c->size * c->size;
	uint64_t period = (uint64_t)(c->period_s * 1e9);
	unsigned i;

	for (i = 0; i < c->streams; i++) {
		struct stream *s = &l->st[i];

		s->base = (uint64_t)i * region;
		s->region = region;
		s->pos = 0;
		s->next_ns = t0 + rnd(&l->rng) % (period ? period : 1);
		l->heap[i] = i;
	}
	l->nheap = c->streams;
	for (i = l->nheap / 2 + 1; i-- > 0;)
		heap_down(l, i);
}

/* An overloaded run keeps more requests outstanding than planned: grow. */
static int slots_grow(struct load *l)
{
	unsigned n = l->cfg->streams + 64, i;
	struct slot_block *b = calloc(1, sizeof(*b) + n * sizeof(b->slots[0]));

	if (!b)
		return -ENOMEM;
	if (l->real && posix_memalign((void **)&b->bufs, BENCH_ALIGN,
				      (size_t)n * l->cfg->size)) {
		free(b);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		slot_add(l, &b->slots[i],
			 b->bufs ? b->bufs + (size_t)i * l->cfg->size : NULL);
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
	free(l->arena);
}

static int issue(struct load *l, int fd, uint32_t idx, uint64_t now)
{
	const struct bench_cfg *c = l->cfg;
	struct stream *st = &l->st[idx];
	struct slot *sl;
	int rc;

	if (!l->free_slots && (rc = slots_grow(l)) < 0)
		return rc;
	sl = l->free_slots;
	l->free_slots = sl->next_free;
	sl->req.op = c->write ? IOSCHED_WRITE : IOSCHED_READ;
	sl->req.fd = fd;
	sl->req.offset = st->base + st->pos;
	sl->req.len = c->size;
	sl->req.deadline_ns = now + (uint64_t)(c->period_s * 1e9);
	sl->req.stream = idx;
	sl->req.done = slot_done;
	st->pos += c->size;
	if (st->pos + c->size > st->region)
		st->pos = 0;
	rc = iosched_submit(l->s, &sl->req);
	if (rc < 0) {
		sl->next_free = l->free_slots;
		l->free_slots = sl;
		return rc;
	}
	l->outstanding++;
	return 0;
}

/* The arrival loop: run the scheduler up to each arrival, then issue. */
static int drive(struct load *l, int fd, uint64_t t0)
{
	const struct bench_cfg *c = l->cfg;
	uint64_t end = t0 + (uint64_t)(c->duration_s * 1e9);
	uint64_t period = (uint64_t)(c->period_s * 1e9);
	int rc;

	while (l->st[l->heap[0]].next_ns < end) {
		uint32_t idx = l->heap[0];
		uint64_t due = l->st[idx].next_ns;

		rc = iosched_run(l->s, due);
		if (rc < 0)
			return rc;
		rc = issue(l, fd, idx, due);
		if (rc < 0) {
			iosched__log(&c->log, IOSCHED_LOG_ERROR,
				     "bench: submit failed: %s",
				     strerror(-rc));
			return rc;
		}
		l->st[idx].next_ns = due + period;
		heap_down(l, 0);
	}
	rc = iosched_drain(l->s);
	return rc < 0 ? rc : 0;
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
	rc = bench_open_device(c->device, c->write, fd, size);
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
	memset(out, 0, sizeof(*out));
	out->requests = st.requests;
	out->misses = st.misses;
	out->errors = st.errors;
	out->bytes = st.bytes;
	out->miss_rate = st.deadline_requests ?
				 (double)st.misses / (double)st.deadline_requests :
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
	{
		struct iosched_knobs k;

		iosched_get_knobs(l->s, &k);
		out->depth = k.depth;
	}
}

int bench_run(const struct bench_cfg *c, struct bench_result *out)
{
	struct iosched_model *m = NULL;
	struct iosched_backend *be = NULL;
	struct iosched_knobs k;
	struct iosched_config cfg = { .policy = c->policy, .log = c->log };
	struct load l = { .cfg = c, .rng = c->seed ^ 0x5bd1e995u };
	uint64_t size = 0, t0;
	double cpu0;
	int fd = -1, rc;

	if (c->engine == BENCH_ENGINE_PSYNC)
		return bench_run_psync(c, out);
	if (c->streams == 0 || c->size == 0 || c->period_s <= 0)
		return -EINVAL;
	rc = make_backend(c, &m, &be, &fd, &size);
	if (rc < 0)
		goto out;
	if (size / c->streams < c->size) {
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
	l.st = calloc(c->streams, sizeof(*l.st));
	l.heap = calloc(c->streams, sizeof(*l.heap));
	rc = -ENOMEM;
	if (!l.st || !l.heap || slots_init(&l, fd >= 0) < 0)
		goto out;
	if (fd >= 0)
		slots_register(&l);
	cpu0 = cpu_seconds();
	t0 = iosched_now(l.s);
	streams_init(&l, size, t0);
	rc = drive(&l, fd, t0);
	if (rc == 0)
		fill_result(&l, (iosched_now(l.s) - t0) / 1e9,
			    cpu_seconds() - cpu0, out);
out:
	iosched_free(l.s);
	iosched_model_free(m);
	free(l.st);
	free(l.heap);
	slots_free(&l);
	if (fd >= 0)
		close(fd);
	return rc;
}
