/*
 * The simulated device: a discrete-event model of a disk (or a
 * solid-state device whose lanes overlap their latencies but share one
 * transfer channel at the profile's bandwidth) on a virtual clock.  Requests are
 * served in the order they are started, each taking the model's service
 * time with the rotational wait drawn from a seeded generator, so hours of
 * load run in seconds and a run is the same for the same seed.  The
 * scheduler's policies see only the model's expected times; the gap
 * between expectation and draw is what a real disk would add.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

#define SIM_SECTOR 512u
#define SIM_MAX_DEPTH 65536u

struct sim_event {
	uint64_t t;
	uint64_t seq;
	struct iosched_req *req;
	int res;
};

struct sim_backend {
	struct iosched_backend base;
	const struct iosched_model *model;
	uint64_t now;
	uint64_t rng;
	uint64_t head;	   /* byte after the last request the device took */
	uint64_t *lane_free; /* when each lane is next idle */
	uint64_t chan_free;  /* when the shared transfer channel is next idle */
	unsigned lanes;
	uint64_t seq;
	uint64_t started;
	uint64_t inject_latency_ns;
	unsigned inject_eio_every;
	struct sim_event *ev; /* min-heap on (t, seq) */
	size_t nev, cap;
};

static struct sim_backend *to_sim(struct iosched_backend *be)
{
	return (struct sim_backend *)be;
}

/* splitmix64: small, fast, and good enough to place a sector on a track. */
static uint64_t sim_rand(struct sim_backend *sb)
{
	uint64_t z = (sb->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int ev_push(struct sim_backend *sb, struct sim_event e)
{
	size_t i;

	if (sb->nev == sb->cap) {
		size_t ncap = sb->cap ? sb->cap * 2 : 64;
		struct sim_event *n = realloc(sb->ev, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		sb->ev = n;
		sb->cap = ncap;
	}
	i = sb->nev++;
	while (i > 0 && ev_before(&e, &sb->ev[(i - 1) / 2])) {
		sb->ev[i] = sb->ev[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	sb->ev[i] = e;
	return 0;
}

static struct sim_event ev_pop(struct sim_backend *sb)
{
	struct sim_event top = sb->ev[0], last = sb->ev[--sb->nev];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= sb->nev)
			break;
		if (c + 1 < sb->nev && ev_before(&sb->ev[c + 1], &sb->ev[c]))
			c++;
		if (!ev_before(&sb->ev[c], &last))
			break;
		sb->ev[i] = sb->ev[c];
		i = c;
	}
	if (sb->nev)
		sb->ev[i] = last;
	return top;
}

static int sim_validate(struct iosched_backend *be,
			const struct iosched_req *req)
{
	struct sim_backend *sb = to_sim(be);
	uint64_t cap = iosched_model_capacity(sb->model);

	if (req->offset % SIM_SECTOR || req->len % SIM_SECTOR) {
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "sim: offset %llu / len %u not %u-byte aligned",
			     (unsigned long long)req->offset, req->len,
			     SIM_SECTOR);
		return -EINVAL;
	}
	if (req->offset >= cap || req->len > cap - req->offset) {
		iosched__log(&be->log, IOSCHED_LOG_ERROR,
			     "sim: offset %llu + len %u beyond device (%llu bytes)",
			     (unsigned long long)req->offset, req->len,
			     (unsigned long long)cap);
		return -EINVAL;
	}
	return 0;
}

/* The device takes requests in start order on the lane idle soonest. */
static int sim_start(struct iosched_backend *be, struct iosched_req *req)
{
	struct sim_backend *sb = to_sim(be);
	unsigned lane = 0, i;
	double rot;
	uint64_t begin, svc;
	struct sim_event e;

	for (i = 1; i < sb->lanes; i++)
		if (sb->lane_free[i] < sb->lane_free[lane])
			lane = i;
	begin = sb->lane_free[lane] > sb->now ? sb->lane_free[lane] : sb->now;
	rot = (double)(sim_rand(sb) >> 11) * (1.0 / 9007199254740992.0);
	svc = iosched__model_service_sample_ns(sb->model, sb->head, req->op,
					       req->offset, req->len, rot);
	svc += sb->inject_latency_ns;
	sb->head = req->offset + req->len;
	e.t = begin + svc;
	if (sb->lanes > 1) {
		/* Latencies overlap across lanes; transfers queue for the
		 * one channel that carries the device's bandwidth. */
		uint64_t x = iosched__model_transfer_ns(sb->model, req->op,
							req->len);
		uint64_t ready = e.t - x;

		e.t = (ready > sb->chan_free ? ready : sb->chan_free) + x;
	}
	e.seq = ++sb->seq;
	e.req = req;
	e.res = (int)req->len;
	sb->started++;
	if (sb->inject_eio_every && sb->started % sb->inject_eio_every == 0)
		e.res = -EIO;
	if (ev_push(sb, e) < 0)
		return -ENOMEM;
	sb->lane_free[lane] = e.t;
	if (sb->lanes > 1)
		sb->chan_free = e.t;
	return 0;
}

/*
 * Advances the clock to the next completion if it comes by @until, and
 * completes every request finishing at that same instant; otherwise moves
 * the clock to @until.  One instant per call lets the scheduler dispatch
 * between completions, as it would on a real device.
 */
static int sim_wait(struct iosched_backend *be, uint64_t until)
{
	struct sim_backend *sb = to_sim(be);
	uint64_t t;
	int n = 0;

	if (sb->nev == 0 || sb->ev[0].t > until) {
		if (until != UINT64_MAX && until > sb->now)
			sb->now = until;
		return 0;
	}
	t = sb->ev[0].t;
	if (t > sb->now)
		sb->now = t;
	while (sb->nev > 0 && sb->ev[0].t == t) {
		struct sim_event e = ev_pop(sb);

		be->complete(be->owner, e.req, e.res, sb->now);
		n++;
	}
	return n;
}

static uint64_t sim_now(const struct iosched_backend *be)
{
	return ((const struct sim_backend *)be)->now;
}

static unsigned sim_max_depth(const struct iosched_backend *be)
{
	(void)be;
	return SIM_MAX_DEPTH;
}

static int sim_inject(struct iosched_backend *be, uint64_t latency_ns,
		      unsigned eio_every)
{
	struct sim_backend *sb = to_sim(be);

	sb->inject_latency_ns = latency_ns;
	sb->inject_eio_every = eio_every;
	if (latency_ns || eio_every)
		iosched__log(&be->log, IOSCHED_LOG_WARN,
			     "sim: injecting %llu ns latency, EIO every %u",
			     (unsigned long long)latency_ns, eio_every);
	return 0;
}

static void sim_destroy(struct iosched_backend *be)
{
	struct sim_backend *sb = to_sim(be);

	free(sb->ev);
	free(sb->lane_free);
	free(sb);
}

static const struct iosched_backend_ops sim_ops = {
	.name = "sim",
	.validate = sim_validate,
	.start = sim_start,
	.flush = NULL,
	.wait = sim_wait,
	.now = sim_now,
	.max_depth = sim_max_depth,
	.register_buffers = NULL,
	.inject = sim_inject,
	.destroy = sim_destroy,
};

int iosched_backend_sim_new(struct iosched_backend **out,
			    const struct iosched_model *model,
			    uint64_t start_ns, uint64_t seed,
			    const struct iosched_log *log)
{
	struct sim_backend *sb;

	*out = NULL;
	if (!model) {
		iosched__log(log, IOSCHED_LOG_ERROR, "sim: no disk model");
		return -EINVAL;
	}
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	sb->lanes = iosched_model_parallelism(model);
	if (sb->lanes == 0)
		sb->lanes = 1;
	sb->lane_free = calloc(sb->lanes, sizeof(*sb->lane_free));
	if (!sb->lane_free) {
		free(sb);
		return -ENOMEM;
	}
	sb->base.ops = &sim_ops;
	if (log)
		sb->base.log = *log;
	sb->model = model;
	sb->now = start_ns;
	sb->rng = seed;
	*out = &sb->base;
	return 0;
}
