/*
 * The psync engine of iosched-bench: the baseline that libiosched is
 * measured against.  The same periodic-stream load as bench_load.c, but
 * with no scheduler in the way: the main thread releases each request at
 * its arrival time into one FIFO, and a pool of threads takes them in
 * arrival order and does a blocking pread (or pwrite) each, so the only
 * reordering is whatever the kernel and the device do.  Figures are
 * counted by the workers under the queue's mutex, in the library's own
 * histograms, so the JSON means the same thing for every engine.
 *
 * Invariants:
 *  1. Every request is in exactly one of: the FIFO (head..tail), a
 *     worker's hands, or the free list; all three are guarded by mu.
 *  2. A worker leaves only when stop is set and the FIFO is empty, so
 *     every issued request is counted before the threads are joined.
 *  3. Deadlines and completions are on CLOCK_MONOTONIC; a request's
 *     arrival is its scheduled time, not the time the main thread woke.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "iosched-int.h"
#include "tool_clock.h"

#define PSYNC_ALIGN 4096u
#define PSYNC_THREADS_DEFAULT 64u
#define PSYNC_BLOCK 256u /* requests allocated at a time */
#define PSYNC_HIST_BITS 5

struct preq {
	struct preq *next;
	uint64_t arrival_ns;
	uint64_t deadline_ns;
	uint64_t offset;
};

/* Requests come in blocks so that the free list can recycle them. */
struct preq_block {
	struct preq_block *next;
	struct preq r[PSYNC_BLOCK];
};

struct pstream {
	uint64_t next_ns;
	uint64_t base, pos;
};

struct pool {
	const struct bench_cfg *cfg;
	int fd;
	uint64_t region;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct preq *head, *tail, *free;
	struct preq_block *blocks;
	uint64_t queued, queued_max;
	bool stop;
	/* Figures, under mu. */
	uint64_t requests, misses, errors, bytes;
	struct iosched__hist *lateness, *latency;
};

struct worker {
	struct pool *pool;
	pthread_t tid;
	void *buf;
};

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* splitmix64: small, seedable, and good enough for phases. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* One whole transfer; a short one that makes no progress is an error. */
static int do_io(const struct pool *p, void *buf, uint64_t offset)
{
	uint32_t len = p->cfg->size, done = 0;

	while (done < len) {
		ssize_t n = p->cfg->write ?
				    pwrite(p->fd, (char *)buf + done, len - done,
					   (off_t)(offset + done)) :
				    pread(p->fd, (char *)buf + done, len - done,
					  (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (uint32_t)n;
	}
	return (int)done;
}

/* Counts one finished request; called with mu held. */
static void account(struct pool *p, const struct preq *r, int res,
		    uint64_t now)
{
	uint64_t late = now > r->deadline_ns ? now - r->deadline_ns : 0;

	p->requests++;
	if (res < 0) {
		if (p->errors++ == 0)
			iosched__log(&p->cfg->log, IOSCHED_LOG_ERROR,
				     "psync: %s at offset %llu: %s",
				     p->cfg->write ? "pwrite" : "pread",
				     (unsigned long long)r->offset,
				     strerror(-res));
	} else {
		p->bytes += (uint64_t)res;
	}
	if (late)
		p->misses++;
	iosched__hist_add(p->lateness, late);
	iosched__hist_add(p->latency, now - r->arrival_ns);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct preq *r;
		int res;

		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		r = p->head;
		if (!r)
			break;
		p->head = r->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		res = do_io(p, w->buf, r->offset);
		pthread_mutex_lock(&p->mu);
		account(p, r, res, tool_now_ns());
		r->next = p->free;
		p->free = r;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* A free request, growing the pool by a block if needed; mu held. */
static struct preq *preq_get(struct pool *p)
{
	struct preq *r;
	unsigned i;

	if (!p->free) {
		struct preq_block *b = malloc(sizeof(*b));

		if (!b)
			return NULL;
		b->next = p->blocks;
		p->blocks = b;
		for (i = 0; i < PSYNC_BLOCK; i++) {
			b->r[i].next = p->free;
			p->free = &b->r[i];
		}
	}
	r = p->free;
	p->free = r->next;
	return r;
}

/* Queues stream @st's next request, arriving at @due. */
static int enqueue(struct pool *p, struct pstream *st, uint64_t due,
		   uint64_t period)
{
	struct preq *r;

	pthread_mutex_lock(&p->mu);
	r = preq_get(p);
	if (!r) {
		pthread_mutex_unlock(&p->mu);
		return -ENOMEM;
	}
	r->next = NULL;
	r->arrival_ns = due;
	r->deadline_ns = due + period;
	r->offset = st->base + st->pos;
	if (p->tail)
		p->tail->next = r;
	else
		p->head = r;
	p->tail = r;
	if (++p->queued > p->queued_max)
		p->queued_max = p->queued;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	st->pos += p->cfg->size;
	if (st->pos + p->cfg->size > p->region)
		st->pos = 0;
	return 0;
}

static bool heap_less(const struct pstream *st, uint32_t a, uint32_t b)
{
	return st[a].next_ns < st[b].next_ns ||
	       (st[a].next_ns == st[b].next_ns && a < b);
}

/* Restores the min-heap on next_ns below position @i. */
static void sift_down(const struct pstream *st, uint32_t *heap, unsigned n,
		      unsigned i)
{
	for (;;) {
		unsigned c = 2 * i + 1;
		uint32_t t;

		if (c >= n)
			return;
		if (c + 1 < n && heap_less(st, heap[c + 1], heap[c]))
			c++;
		if (!heap_less(st, heap[c], heap[i]))
			return;
		t = heap[c];
		heap[c] = heap[i];
		heap[i] = t;
		i = c;
	}
}

/*
 * The arrival loop: each stream's first request at a random phase in
 * [0, period), then one every period, until the duration is over.
 */
static int generate(struct pool *p, uint64_t t0)
{
	const struct bench_cfg *c = p->cfg;
	uint64_t period = (uint64_t)(c->period_s * 1e9);
	uint64_t end = t0 + (uint64_t)(c->duration_s * 1e9);
	uint64_t seed = c->seed ^ 0x7073796e63ull; /* "psync" */
	struct pstream *st = calloc(c->streams, sizeof(*st));
	uint32_t *heap = calloc(c->streams, sizeof(*heap));
	unsigned i;
	int rc = -ENOMEM;

	if (!st || !heap)
		goto out;
	if (period == 0)
		period = 1;
	for (i = 0; i < c->streams; i++) {
		st[i].base = (uint64_t)i * p->region;
		st[i].next_ns = t0 + rnd(&seed) % period;
		heap[i] = i;
	}
	for (i = c->streams / 2 + 1; i-- > 0;)
		sift_down(st, heap, c->streams, i);
	rc = 0;
	while (st[heap[0]].next_ns < end) {
		struct pstream *s = &st[heap[0]];
		uint64_t due = s->next_ns;

		tool_sleep_until_ns(due);
		rc = enqueue(p, s, due, period);
		if (rc < 0)
			break;
		s->next_ns = due + period;
		sift_down(st, heap, c->streams, 0);
	}
out:
	free(st);
	free(heap);
	return rc;
}

/* Starts the workers; on failure the ones already running are stopped. */
static int workers_start(struct pool *p, struct worker *w, unsigned n,
			 unsigned *started)
{
	unsigned i;
	int rc;

	for (i = 0; i < n; i++) {
		w[i].pool = p;
		if (posix_memalign(&w[i].buf, PSYNC_ALIGN, p->cfg->size))
			return -ENOMEM;
		memset(w[i].buf, 0xa5, p->cfg->size);
		rc = pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
		if (rc) {
			iosched__log(&p->cfg->log, IOSCHED_LOG_ERROR,
				     "psync: pthread_create: %s", strerror(rc));
			return -rc;
		}
		(*started)++;
	}
	return 0;
}

static void workers_stop(struct pool *p, struct worker *w, unsigned started)
{
	unsigned i;

	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
}

static void fill_result(const struct pool *p, double elapsed, double cpu,
			struct bench_result *out)
{
	memset(out, 0, sizeof(*out));
	out->requests = p->requests;
	out->misses = p->misses;
	out->errors = p->errors;
	out->bytes = p->bytes;
	out->miss_rate = p->requests ? (double)p->misses / p->requests : 0;
	out->lateness_p50_us = iosched__hist_quantile(p->lateness, 0.5) / 1e3;
	out->lateness_p99_us = iosched__hist_quantile(p->lateness, 0.99) / 1e3;
	out->lateness_max_us = p->lateness->max / 1e3;
	out->latency_p50_us = iosched__hist_quantile(p->latency, 0.5) / 1e3;
	out->latency_p99_us = iosched__hist_quantile(p->latency, 0.99) / 1e3;
	out->latency_max_us = p->latency->max / 1e3;
	out->elapsed_s = elapsed;
	out->throughput_MBps = elapsed > 0 ? p->bytes / elapsed / 1e6 : 0;
	out->cpu_s = cpu;
	out->queue_depth_max = p->queued_max;
	out->depth = p->cfg->threads ? p->cfg->threads : PSYNC_THREADS_DEFAULT;
}

/* Opens the device and carves it into one region per stream. */
static int pool_open(struct pool *p)
{
	const struct bench_cfg *c = p->cfg;
	uint64_t size = 0;
	int rc;

	if (strncmp(c->device, "sim:", 4) == 0) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "psync: %s is simulated; psync needs a real "
			     "device or file", c->device);
		return -EINVAL;
	}
	rc = bench_open_device(c->device, c->write, &p->fd, &size);
	if (rc < 0) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR, "psync: open %s: %s",
			     c->device, strerror(-rc));
		return rc;
	}
	p->region = size / c->streams / c->size * c->size;
	if (p->region < c->size) {
		iosched__log(&c->log, IOSCHED_LOG_ERROR,
			     "psync: %llu bytes is too small for %u streams "
			     "of %u-byte requests", (unsigned long long)size,
			     c->streams, c->size);
		return -EINVAL;
	}
	return 0;
}

static void pool_fini(struct pool *p)
{
	while (p->blocks) {
		struct preq_block *b = p->blocks;

		p->blocks = b->next;
		free(b);
	}
	free(p->lateness);
	free(p->latency);
	if (p->fd >= 0)
		close(p->fd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

int bench_run_psync(const struct bench_cfg *c, struct bench_result *out)
{
	struct pool p = { .cfg = c, .fd = -1 };
	unsigned nthreads = c->threads ? c->threads : PSYNC_THREADS_DEFAULT;
	unsigned started = 0, i;
	struct worker *w = NULL;
	uint64_t t0;
	double cpu0;
	int rc;

	if (!c->device || c->streams == 0 || c->size == 0 ||
	    c->size % 512 != 0 || !(c->period_s > 0) || !(c->duration_s > 0))
		return -EINVAL;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	rc = -ENOMEM;
	p.lateness = iosched__hist_new(PSYNC_HIST_BITS);
	p.latency = iosched__hist_new(PSYNC_HIST_BITS);
	w = calloc(nthreads, sizeof(*w));
	if (!p.lateness || !p.latency || !w)
		goto out;
	rc = pool_open(&p);
	if (rc < 0)
		goto out;
	cpu0 = cpu_seconds();
	rc = workers_start(&p, w, nthreads, &started);
	t0 = tool_now_ns();
	if (rc == 0)
		rc = generate(&p, t0);
	workers_stop(&p, w, started);
	if (rc == 0)
		fill_result(&p, (tool_now_ns() - t0) / 1e9, cpu_seconds() - cpu0,
			    out);
out:
	for (i = 0; w && i < nthreads; i++)
		free(w[i].buf);
	free(w);
	pool_fini(&p);
	return rc;
}
