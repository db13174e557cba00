/*
 * The scheduler core: takes requests from callers, keeps them in the
 * chosen policy's queue, releases them to the back end no more than
 * `depth` at a time, and turns back-end completions into statistics and
 * caller callbacks.  Policies and back ends are swapped behind their
 * operation tables; this file knows neither io_uring nor the disk model's
 * formulas.
 *
 * Request lifecycle (the functions that make each transition):
 *
 *   caller --iosched_submit--> QUEUED --dispatch()--> IN FLIGHT
 *   IN FLIGHT --on_complete()--> DONE (callback runs; request is the
 *   caller's again)
 *
 * Invariants:
 *  1. s->queued is the number of requests inside the policy; s->inflight
 *     the number handed to the back end and not yet completed.
 *  2. s->inflight <= knobs.depth, except transiently after the depth knob
 *     was lowered (nothing new is dispatched until it holds again).
 *  3. A request's callback runs exactly once, and only for requests that
 *     iosched_submit() accepted.
 *  4. Back-end completions never dispatch directly: dispatch happens from
 *     the run loop and from submit outside a reap, so a callback that
 *     resubmits cannot recurse into the back end.
 *  5. iosched_wake() is the one entry another thread may call while the
 *     driving thread works: it reads only s->be and its operation table,
 *     which are fixed from iosched_new() to iosched_free().  A run ends
 *     after the wait that consumed a wake (be->woken), so a wake ends at
 *     most one run, and a wake that arrives between runs ends the next.
 *  6. s->inflight_cost is the sum of est_service_ns over the requests in
 *     flight, and s->est_free is at least now + what of it is left, so a
 *     policy's plan starts after the work the device already holds.
 *  7. Every s->corr factor lies in [IOSCHED__CORR_MIN, IOSCHED__CORR_MAX].
 *
 * On-line correction: each completion whose device time can be told
 * (on a one-lane device, from the later of its dispatch and the previous
 * completion; with lanes, only a request that had the device to itself,
 * since lanes share one channel) is compared with the profile's cost,
 * and the ratio feeds a smoothed factor per operation and size class.
 * A profile that is 2x off converges within a few dozen requests; the
 * factor moves by at most 1/16 of a sample's difference, so a single
 * stall or cache hit shifts the plan by a few percent only.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iosched-int.h"

#define DEFAULT_BEST_EFFORT_NS (2 * IOSCHED__NS_PER_S)
#define DEFAULT_SCAN_EDF_WINDOW_NS (50 * IOSCHED__NS_PER_MS)
#define DEFAULT_GLMD_RUNS 4
#define DEFAULT_GLMD_EXACT_MAX 32
#define DEFAULT_GLMD_MARGIN_NS 0
#define CORR_GAIN (1.0 / 16)

struct iosched {
	struct iosched_backend *be;
	const struct iosched__policy_ops *pol;
	void *pstate;
	const struct iosched_model *model;
	struct iosched_knobs knobs;
	struct iosched_log log;
	struct iosched__stats st;
	size_t queued;
	unsigned inflight;
	uint64_t seq;
	uint64_t head;	    /* end of the last dispatched request */
	uint64_t est_free;  /* when the device should be free, estimated */
	uint64_t inflight_cost;
	uint64_t last_complete;
	uint64_t busy_since;
	struct iosched__corr corr;
	bool reaping;
};

void iosched_default_knobs(struct iosched_knobs *out)
{
	memset(out, 0, sizeof(*out));
	out->depth = 0; /* 0: the model's recommended depth */
	out->best_effort_ns = DEFAULT_BEST_EFFORT_NS;
	out->scan_edf_window_ns = DEFAULT_SCAN_EDF_WINDOW_NS;
	out->glmd_runs = DEFAULT_GLMD_RUNS;
	out->glmd_exact_max = DEFAULT_GLMD_EXACT_MAX;
	out->glmd_margin_ns = DEFAULT_GLMD_MARGIN_NS;
	out->model_learn = 1;
	out->glmd_replan = 1;
}

static void corr_init(struct iosched__corr *c)
{
	unsigned op, k;

	for (op = 0; op < 2; op++)
		for (k = 0; k < IOSCHED__CORR_CLASSES; k++) {
			c->f[op][k] = 1.0;
			c->samples[op][k] = 0;
		}
}

double iosched__corr_factor(const struct iosched *s, enum iosched_op op,
			    uint32_t len)
{
	return s->corr.f[op == IOSCHED_WRITE][iosched__corr_class(len)];
}

static void make_ctx(const struct iosched *s, struct iosched__ctx *ctx)
{
	ctx->model = s->model;
	ctx->knobs = &s->knobs;
	ctx->corr = s->knobs.model_learn ? &s->corr : NULL;
	ctx->now_ns = s->be->ops->now(s->be);
	ctx->head = s->head;
	ctx->start_ns = s->est_free > ctx->now_ns ? s->est_free : ctx->now_ns;
	ctx->lanes = iosched_model_parallelism(s->model);
	if (ctx->lanes > s->knobs.depth)
		ctx->lanes = s->knobs.depth;
	if (ctx->lanes == 0)
		ctx->lanes = 1;
}

static void busy_enter(struct iosched *s, uint64_t now)
{
	if (s->inflight++ == 0)
		s->busy_since = now;
}

static void busy_leave(struct iosched *s, uint64_t now)
{
	if (--s->inflight == 0) {
		s->st.busy_ns += now - s->busy_since;
		s->est_free = now;
	}
}

static void finish(struct iosched *s, struct iosched_req *req, int res,
		   uint64_t now)
{
	req->in.complete_ns = now;
	if (res < 0)
		iosched__log(&s->log, IOSCHED_LOG_WARN,
			     "iosched: %s fd %d offset %llu len %u failed: %s",
			     req->op == IOSCHED_WRITE ? "write" : "read",
			     req->fd, (unsigned long long)req->offset,
			     req->len, strerror(-res));
	if (iosched__stats_complete(&s->st, req, res, now) < 0)
		iosched__log(&s->log, IOSCHED_LOG_WARN,
			     "iosched: no memory for stream %u statistics",
			     req->stream);
	req->done(req, res);
}

/*
 * Learns from one completion (see the header).  The error is measured
 * against what the planner used, so it shows how well the plan held.
 */
static void learn(struct iosched *s, const struct iosched_req *req, int res,
		  uint64_t now)
{
	unsigned lanes = iosched_model_parallelism(s->model);
	unsigned op = req->op == IOSCHED_WRITE, k = iosched__corr_class(req->len);
	uint64_t start = req->in.dispatch_ns, obs;
	double *f = &s->corr.f[op][k], plan, ratio, err;

	if (res < 0 || req->in.model_ns == 0)
		return;
	if (lanes > s->knobs.depth)
		lanes = s->knobs.depth;
	if (lanes <= 1) {
		if (s->last_complete > start)
			start = s->last_complete;
	} else if (req->in.busy_at_dispatch > 0) {
		/* Lanes overlap latencies but share one channel: only a
		 * request that had the device to itself shows its own time. */
		return;
	}
	if (now <= start)
		return;
	obs = now - start;
	plan = (double)req->in.model_ns * (s->knobs.model_learn ? *f : 1.0);
	err = plan > 0 ? fabs((double)obs - plan) / plan * 1e4 : 0;
	iosched__hist_add(s->st.model_err, err < 1e15 ? (uint64_t)err : 0);
	if (!s->knobs.model_learn)
		return;
	ratio = (double)obs / (double)req->in.model_ns;
	*f += CORR_GAIN * (ratio - *f);
	if (*f < IOSCHED__CORR_MIN)
		*f = IOSCHED__CORR_MIN;
	if (*f > IOSCHED__CORR_MAX)
		*f = IOSCHED__CORR_MAX;
	s->corr.samples[op][k]++;
}

/* Back-end hook: one request finished at @now. */
static void on_complete(void *owner, struct iosched_req *req, int res,
			uint64_t now)
{
	struct iosched *s = owner;

	learn(s, req, res, now);
	s->last_complete = now;
	s->inflight_cost -= req->in.est_service_ns < s->inflight_cost ?
				    req->in.est_service_ns :
				    s->inflight_cost;
	busy_leave(s, now);
	/* Re-anchor the estimate on what the device really did. */
	if (s->inflight)
		s->est_free = now + s->inflight_cost;
	if ((req->in.flags & IOSCHED__F_RESCUED) && req->deadline_ns &&
	    now <= req->deadline_ns && res >= 0)
		s->st.rescues_kept++;
	finish(s, req, res, now);
}

/* Releases requests to the back end while the depth allows. */
static void dispatch(struct iosched *s)
{
	struct iosched__ctx ctx;
	bool started = false;

	while (s->inflight < s->knobs.depth && s->queued > 0) {
		struct iosched_req *r;
		int rc;

		make_ctx(s, &ctx);
		r = s->pol->pop(s->pstate, &ctx);
		if (!r)
			break;
		s->queued--;
		if (r->in.flags & IOSCHED__F_RESCUED)
			s->st.rescues++;
		r->in.dispatch_ns = ctx.now_ns;
		r->in.busy_at_dispatch = s->inflight;
		r->in.model_ns = iosched_model_service_ns(s->model, s->head,
							  r->op, r->offset,
							  r->len);
		r->in.est_service_ns = iosched__cost_from_ns(&ctx,
							     r->in.model_ns, r);
		s->est_free = ctx.start_ns + r->in.est_service_ns;
		s->inflight_cost += r->in.est_service_ns;
		s->head = r->offset + r->len;
		busy_enter(s, ctx.now_ns);
		rc = s->be->ops->start(s->be, r);
		if (rc < 0) {
			s->inflight_cost -= r->in.est_service_ns;
			busy_leave(s, ctx.now_ns);
			finish(s, r, rc, ctx.now_ns);
			continue;
		}
		started = true;
	}
	if (started && s->be->ops->flush)
		s->be->ops->flush(s->be);
}

static int check_knobs(const struct iosched *s, const struct iosched_knobs *k)
{
	unsigned max = s->be->ops->max_depth(s->be);

	if (k->depth == 0 || k->depth > max) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: depth %u out of range 1..%u", k->depth,
			     max);
		return -EINVAL;
	}
	if (k->best_effort_ns == 0) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: best_effort_ns must be positive");
		return -EINVAL;
	}
	return 0;
}

int iosched_new(struct iosched **out, const struct iosched_config *cfg,
		struct iosched_backend *be)
{
	const char *pname = cfg->policy ? cfg->policy : "glmd";
	struct iosched *s;
	struct iosched_knobs k;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		iosched_backend_free(be);
		return -ENOMEM;
	}
	s->be = be;
	s->log = cfg->log;
	s->model = cfg->model;
	be->complete = on_complete;
	be->owner = s;
	rc = iosched__stats_init(&s->st);
	if (rc < 0)
		goto err;
	rc = -EINVAL;
	s->pol = iosched__policy_find(pname);
	if (!s->pol) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: unknown policy '%s' (known: %s)", pname,
			     iosched_policies());
		goto err;
	}
	if (!s->model) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: no disk model given");
		goto err;
	}
	if (cfg->knobs)
		k = *cfg->knobs;
	else
		iosched_default_knobs(&k);
	if (k.depth == 0)
		k.depth = iosched_model_depth(s->model);
	if (k.depth > be->ops->max_depth(be)) {
		iosched__log(&s->log, IOSCHED_LOG_WARN,
			     "iosched: depth %u exceeds what the %s back end "
			     "takes; using %u", k.depth, be->ops->name,
			     be->ops->max_depth(be));
		k.depth = be->ops->max_depth(be);
	}
	rc = check_knobs(s, &k);
	if (rc < 0)
		goto err;
	s->knobs = k;
	rc = s->pol->create(&s->pstate);
	if (rc < 0)
		goto err;
	s->est_free = be->ops->now(be);
	corr_init(&s->corr);
	*out = s;
	return 0;
err:
	iosched__stats_fini(&s->st);
	iosched_backend_free(be);
	free(s);
	return rc;
}

void iosched_free(struct iosched *s)
{
	if (!s)
		return;
	if (s->pol && s->pstate)
		s->pol->destroy(s->pstate);
	iosched_backend_free(s->be);
	iosched__stats_fini(&s->st);
	free(s);
}

void iosched_backend_free(struct iosched_backend *be)
{
	if (be)
		be->ops->destroy(be);
}

int iosched_backend_inject(struct iosched_backend *be, uint64_t latency_ns,
			   unsigned eio_every)
{
	if (!be->ops->inject)
		return -ENOTSUP;
	return be->ops->inject(be, latency_ns, eio_every);
}

int iosched_submit(struct iosched *s, struct iosched_req *req)
{
	struct iosched__ctx ctx;
	int rc;

	if (!req->done || req->len == 0 ||
	    (req->op != IOSCHED_READ && req->op != IOSCHED_WRITE)) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: rejected request (op %d, len %u, %s)",
			     (int)req->op, req->len,
			     req->done ? "callback set" : "no callback");
		return -EINVAL;
	}
	rc = s->be->ops->validate(s->be, req);
	if (rc < 0)
		return rc;
	make_ctx(s, &ctx);
	memset(&req->in, 0, sizeof(req->in));
	req->in.submit_ns = ctx.now_ns;
	req->in.seq = ++s->seq;
	req->in.deadline_ns = req->deadline_ns ?
				      req->deadline_ns :
				      ctx.now_ns + s->knobs.best_effort_ns;
	rc = s->pol->insert(s->pstate, req, &ctx);
	if (rc < 0) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: %s insert failed: %s", s->pol->name,
			     strerror(-rc));
		return rc;
	}
	if (++s->queued > s->st.queue_depth_max)
		s->st.queue_depth_max = s->queued;
	if (!s->reaping)
		dispatch(s);
	return 0;
}

uint64_t iosched_now(const struct iosched *s)
{
	return s->be->ops->now(s->be);
}

/* One back-end wait, with dispatch before and after. */
static int reap(struct iosched *s, uint64_t until)
{
	int n;

	dispatch(s);
	s->reaping = true;
	s->be->woken = false;
	n = s->be->ops->wait(s->be, until);
	s->reaping = false;
	dispatch(s);
	return n;
}

int iosched_run(struct iosched *s, uint64_t until_ns)
{
	int total = 0;

	for (;;) {
		int n = reap(s, until_ns);

		if (n < 0)
			return n;
		total += n;
		/* Return on time even while completions keep arriving.  With
		 * no deadline, one wait is the whole run: it returned because
		 * something happened (completions, a wake) or because nothing
		 * ever could. */
		if (s->be->woken || until_ns == UINT64_MAX ||
		    iosched_now(s) >= until_ns)
			return total;
	}
}

int iosched_wake(struct iosched *s)
{
	/* Touches only what never changes after iosched_new(), so any
	 * thread may call it. */
	if (!s->be->ops->wake)
		return 0;
	return s->be->ops->wake(s->be);
}

int iosched_poll(struct iosched *s)
{
	return reap(s, 0);
}

int iosched_drain(struct iosched *s)
{
	int total = 0;

	while (s->queued > 0 || s->inflight > 0) {
		int n = reap(s, UINT64_MAX);

		if (n < 0)
			return n;
		total += n;
	}
	return total;
}

size_t iosched_queued(const struct iosched *s)
{
	return s->queued;
}

unsigned iosched_inflight(const struct iosched *s)
{
	return s->inflight;
}

const char *iosched_policy(const struct iosched *s)
{
	return s->pol->name;
}

/*
 * Moves the queue into a new policy.  The old policy yields its requests
 * in service order first, so a failure half-way leaves nothing lost: what
 * the new one could not take goes back to the old one.
 */
int iosched_set_policy(struct iosched *s, const char *name)
{
	const struct iosched__policy_ops *np = iosched__policy_find(name);

	if (!np) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: unknown policy '%s' (known: %s)",
			     name ? name : "(null)", iosched_policies());
		return -EINVAL;
	}
	return iosched__use_policy(s, np);
}

int iosched__use_policy(struct iosched *s, const struct iosched__policy_ops *np)
{
	struct iosched__ctx ctx;
	struct iosched_req **all = NULL;
	void *nstate = NULL;
	size_t i, n = 0;
	int rc = 0;

	if (np == s->pol)
		return 0;
	rc = np->create(&nstate);
	if (rc < 0)
		return rc;
	all = malloc((s->queued ? s->queued : 1) * sizeof(*all));
	if (!all) {
		np->destroy(nstate);
		return -ENOMEM;
	}
	make_ctx(s, &ctx);
	while (n < s->queued && (all[n] = s->pol->pop(s->pstate, &ctx)))
		n++;
	for (i = 0; i < n; i++) {
		rc = np->insert(nstate, all[i], &ctx);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		/* Give everything back to the old policy, in order. */
		np->destroy(nstate);
		for (i = 0; i < n; i++)
			s->pol->insert(s->pstate, all[i], &ctx);
		free(all);
		return rc;
	}
	s->pol->destroy(s->pstate);
	s->pol = np;
	s->pstate = nstate;
	free(all);
	iosched__log(&s->log, IOSCHED_LOG_INFO,
		     "iosched: policy now %s (%zu requests moved)", np->name,
		     n);
	return 0;
}

void iosched_get_knobs(const struct iosched *s, struct iosched_knobs *out)
{
	*out = s->knobs;
}

int iosched_set_knobs(struct iosched *s, const struct iosched_knobs *k)
{
	int rc = check_knobs(s, k);

	if (rc < 0)
		return rc;
	s->knobs = *k;
	if (!s->reaping)
		dispatch(s);
	return 0;
}

int iosched_set_model(struct iosched *s, const struct iosched_model *m)
{
	if (!m) {
		iosched__log(&s->log, IOSCHED_LOG_ERROR,
			     "iosched: no disk model given");
		return -EINVAL;
	}
	s->model = m;
	return 0;
}

int iosched_register_buffers(struct iosched *s, void *const *bufs,
			     const size_t *lens, unsigned n)
{
	if (!s->be->ops->register_buffers)
		return -ENOTSUP;
	return s->be->ops->register_buffers(s->be, bufs, lens, n);
}

void iosched_stats_get(const struct iosched *s, struct iosched_stats *out)
{
	iosched__counters_export(&s->st.total, out);
	out->busy_ns = s->st.busy_ns;
	if (s->inflight)
		out->busy_ns += iosched_now(s) - s->busy_since;
	out->queue_depth = s->queued;
	out->queue_depth_max = s->st.queue_depth_max;
	out->glmd_rescues = s->st.rescues;
	out->glmd_rescues_kept = s->st.rescues_kept;
	out->model_samples = s->st.model_err->count;
	out->model_error_p50_pct =
		iosched__hist_quantile(s->st.model_err, 0.50) / 100.0;
	out->model_error_p99_pct =
		iosched__hist_quantile(s->st.model_err, 0.99) / 100.0;
}

int iosched_stream_stats(const struct iosched *s, uint32_t stream,
			 struct iosched_stats *out)
{
	const struct iosched__counters *c =
		iosched__stats_stream(&s->st, stream);

	if (!c)
		return -ENOENT;
	iosched__counters_export(c, out);
	return 0;
}

void iosched_stats_reset(struct iosched *s)
{
	iosched__stats_reset(&s->st);
	if (s->inflight)
		s->busy_since = iosched_now(s);
}
