/*
 * Admission control: the node's capacity model and its arithmetic.  A
 * new player session or publisher asks for a ticket; it gets one only if,
 * on every resource, what is already promised plus what it needs stays
 * within admission_ceiling of what the node can deliver on time.  This
 * file is pure: it reads no clock, file or device.  The daemon
 * (sd_capacity.c) hands it the disk model, the knobs, the time and
 * periodic measurements (sd_admit_observe); the unit tests hand it a
 * simulated device and clock.
 *
 * Resources, each with a capacity, what is promised and what is measured:
 *
 *  disk     Device seconds per second.  A viewer of B bits/s needs
 *           B/8/read_size reads a second, each costing the model's service
 *           time for a read_size read at a random place (head at 0, offset
 *           a third of the device in: the mean random seek of a disk;
 *           nothing for a solid-state device), spread over the model's
 *           parallelism; a recorder the same for write_size writes.  The
 *           capacity is 1 s/s times a correction factor learnt from what
 *           is measured (below).  A viewer's disk demand is scaled by its
 *           ticket's share (sd_admit_set_disk_share, 1 by default): a
 *           viewer served from memory costs the disk nothing.  A
 *           newcomer's share is what the caller expects of it
 *           (sd_admit_viewer_share: the daemon asks the cache what it
 *           holds where the viewer starts), its start's reads included,
 *           until its measured share replaces it.
 *  cpu      Cores.  A viewer needs B/8 bytes/s times the measured CPU time
 *           per byte served; a recorder the measured CPU per recording.
 *           Both come from this process's CPU time against the bytes
 *           served: per byte over a window of at least CPU_MIN_BYTES,
 *           less what the recorders cost; per recording over windows in
 *           which nothing was served; each smoothed over CPU_TAU_NS and
 *           starting from a prior (PRIOR_*) until measured.
 *           The capacity is the online CPUs less what other processes
 *           were measured using (smoothed), but never less than
 *           CPU_FLOOR cores: with runnable threads streamd gets at least
 *           a fair share from the kernel's scheduler, and counting on none
 *           would refuse every viewer on a busy build box.  Niced time is
 *           not counted as others' use: it yields to us.
 *  network  Bits/s: the viewers' and recorders' bitrates against
 *           max_bandwidth; not modelled (never refuses) while that is 0.
 *  memory   Bytes: a viewer holds buffer_size plus its connection's
 *           overhead (CONN_OVERHEAD plus the two reads of send buffer the
 *           player route gives its socket); a recorder its ingest ring,
 *           probe and writes in flight.  The budget is set by the daemon
 *           (half of MemAvailable at startup, see sd_capacity.c).
 *
 * The measured correction of the disk.  The model is calibrated, but the
 * device it describes may be shared or slower than its profile; what
 * shows it is how late our reads and writes are.  Two signals, each
 * turned into a factor in [DISK_FLOOR, 1]:
 *  - q, the scheduler's p99 device latency over the read deadline: up to
 *    q = 0.5 there is room (factor 1); from 0.5 to 1 the factor falls
 *    linearly to DISK_FLOOR: a p99 at the deadline means the device has
 *    no margin left for what it already has.  The scheduler's p99 covers
 *    its whole life, so it moves slowly;
 *  - m, the fraction of deadline requests (the scheduler's and the
 *    pump's reads, whichever is worse) that completed late since the last
 *    observation, once at least LATE_MIN_SAMPLES completed: up to 0.1 %
 *    the factor is 1, falling linearly to DISK_FLOOR at 1 % late.  This
 *    is the fast signal.
 * The capacity follows the smaller factor at once when it falls and
 * recovers towards it with a time constant of DISK_RECOVER_NS, so a
 * spike of lateness closes the door quickly and a quiet minute reopens
 * it.  The floor keeps a node with a noisy device admitting a tenth of
 * its model rather than nobody.  Recorders are judged against the
 * uncorrected model: lateness caused by viewers must not refuse writes.
 *
 * A viewer's start.  A new .ts player gets burst seconds of media as
 * fast as it reads them, and its input buffer fills from empty; an HLS
 * or data.ts player fetches each range at once.  Counting only the
 * steady bitrate would let a flash crowd in whose first seconds the disk
 * cannot serve: so for start_ns after it is admitted a viewer also
 * counts its burst, burst x its rate / start_ns bytes/s, on the disk,
 * the CPU and the network, and its buffer's fill, buffer_size / start_ns,
 * on the disk alone: the fill is reads, or references to the cache's
 * blocks, and its bytes cost CPU and network only when they are sent,
 * which the burst and the steady rate count.  A node that a crowd fills
 * then admits fewer at once, and more as the first ones settle
 * (Retry-After says when).  A ticket taken over within its grace gets no new start: the
 * next segment of a player already running is its steady pace.
 *
 * Recorders come first.  Their writes are reserved: counted on every
 * resource before any viewer, so a viewer is admitted only if it fits
 * beside them.  A new recorder is refused only if the recorders' writes
 * alone would not fit under the ceiling on the disk or the network;
 * admitted viewers are never pushed out, so a recorder may take the node
 * past its ceiling, and new viewers are then refused until it is back.
 *
 * Tickets.  Admitting returns a ticket that the session releases when it
 * closes.  A viewer's released ticket is held for GRACE_NS keyed by
 * (client address, stream): HLS and data.ts players fetch many short
 * ranges, one session each, and a new request of the same client on the
 * same stream takes a held ticket over without a new check, so an
 * admitted HLS viewer is not refused between segments.  10 s covers the
 * pause between two segments of the common target durations (2 to 6 s,
 * and hls.js waits at most a target duration) and a seek's reconnection,
 * while a viewer that really left gives its capacity back soon.
 *
 * Invariants (all under a->mu):
 *  1. Every ticket is on exactly one list: a->live (admitted, its session
 *     open) or a->held (released viewer, within its grace), and the
 *     sums in a->sum are those of the tickets on both lists.
 *  2. a->held is in order of expiry (the grace is the same for all), so
 *     reaping looks at its head only.
 *  3. A ticket taken over moves from held back to live unchanged (same
 *     demand), so takeover never changes a sum.
 *  4. a->starting holds the live viewers admitted less than start_ns ago,
 *     oldest first; sum.start_Bps is their surcharges' sum (burst and
 *     fill), sum.start_send_Bps that of their bursts.  A ticket
 *     leaves it when its start ends or when it is released.
 *
 * Transitions of a ticket:
 *   (new) --sd_admit_viewer / sd_admit_recorder (fits)--> live
 *   held  --sd_admit_viewer (same client and stream)----> live
 *   live  --sd_admit_release (viewer)-------------------> held
 *   live  --sd_admit_release (recorder)-----------------> freed
 *   held  --grace over (reap, on any call)--------------> freed
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iosched.h"
#include "streamd-int.h"

#define GRACE_NS (10 * SD_NS)
#define CPU_FLOOR 0.5		  /* cores always counted on */
#define CPU_TAU_NS (10 * SD_NS)	  /* smoothing of CPU measurements */
#define CPU_MIN_BYTES (16u << 20) /* bytes served before a cost per byte
				     is learnt from a window */
#define DISK_FLOOR 0.1
#define DISK_RECOVER_NS (30 * SD_NS)
#define LATE_MIN_SAMPLES 100
#define OBSERVE_MIN_NS (SD_NS / 2) /* shorter windows are merged */
#define RETRY_MAX_S 300
/* Priors, used until something is measured. */
#define PRIOR_NS_PER_BYTE 0.6	/* 7.5 % of a core per Gbit/s: streamd-bench
				   measured 5.8 to 7.6 at 800 to 3,200
				   viewers with the buffers holding the
				   cache's blocks and the opens off the HTTP
				   threads (27 when each player copied its
				   own); learnt within seconds anyway */
#define PRIOR_CPU_PER_REC 0.02	/* cores per recording: the ingest thread
				   and its TS scan at a few Mbit/s */
#define CONN_OVERHEAD (64u << 10) /* MHD's connection pool and request
				     head, the session and its bookkeeping */
#define REC_MEMORY ((4u << 20) + (1u << 20)) /* ingest ring + probe */
#define REC_INFLIGHT 4		/* sd_rec's writes in flight */

const char *const sd_admit_res_names[SD_ADMIT_N] = {
	[SD_ADMIT_DISK] = "disk",
	[SD_ADMIT_CPU] = "cpu",
	[SD_ADMIT_NET] = "network",
	[SD_ADMIT_MEM] = "memory",
};

struct sd_admit_ticket {
	int recorder;
	uint64_t bps;		/* bits/s */
	double share;		/* of its reads that reach the disk */
	uint64_t mem;		/* bytes */
	char client[64];
	char stream[SD_NAME_MAX + 1];
	uint64_t expires;	/* held: end of grace */
	struct sd_admit_ticket *prev, *next;
	/* Within its start: on a->starting until @start_end. */
	double start_Bps, start_send_Bps;
	uint64_t start_end;
	int starting;
	struct sd_admit_ticket *sprev, *snext;
};

struct list {
	struct sd_admit_ticket *head, *tail;
	unsigned n;
};

/* Sums over the tickets (invariant 1); bytes/s are bits/s / 8. */
struct sums {
	double start_Bps;	/* starting viewers' surcharge */
	double start_send_Bps;	/* the part of it that is sent */
	double view_disk_Bps;	/* viewers' bytes/s times their share */
	double view_Bps;	/* viewers' bytes/s */
	double rec_Bps;		/* recorders' bytes/s */
	double view_mem, rec_mem;
};

struct sd_admit {
	pthread_mutex_t mu;
	struct sd_admit_limits lim;
	struct iosched_model *model; /* owned */
	double svc_read_ns, svc_write_ns; /* per read_size / write_size */
	double par;

	struct list live, held;
	struct sd_admit_ticket *s_head, *s_tail; /* starting, oldest first */
	unsigned n_starting;
	struct sums sum;
	unsigned viewers, recorders; /* live + held viewers; recorders */

	/* Measured. */
	int have_sample;
	struct sd_admit_sample last;
	struct sd_admit_sample cpu_base; /* where the per-byte window began */
	double ns_per_byte;	/* CPU per byte served */
	double cpu_per_rec;	/* cores per recording */
	double cpu_other;	/* cores other processes use, smoothed */
	double cpu_self;	/* cores streamd used, last window */
	double disk_factor;	/* the measured correction */
	double disk_q, disk_late; /* its signals, last window */
	double disk_used;	/* device s/s of the last window, by the model */
	double net_bps;		/* bits/s in and out, last window */
	uint64_t rss;
	double leave_rate;	/* viewer tickets freed per second, smoothed */
	uint64_t leave_count, leave_since;

	uint64_t admitted_total, takeovers_total;
	uint64_t refused[SD_ADMIT_N];
};

/* ------------------------------------------------------------------ */
/* Lists                                                               */
/* ------------------------------------------------------------------ */

static void list_add(struct list *l, struct sd_admit_ticket *t)
{
	t->next = NULL;
	t->prev = l->tail;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

static void list_del(struct list *l, struct sd_admit_ticket *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		l->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		l->tail = t->prev;
	t->prev = t->next = NULL;
	l->n--;
}

static void sums_add(struct sums *s, const struct sd_admit_ticket *t,
		     double sign)
{
	double Bps = (double)t->bps / 8;

	if (t->recorder) {
		s->rec_Bps += sign * Bps;
		s->rec_mem += sign * (double)t->mem;
	} else {
		s->view_Bps += sign * Bps;
		s->view_disk_Bps += sign * Bps * t->share;
		s->view_mem += sign * (double)t->mem;
	}
}

static void start_del(struct sd_admit *a, struct sd_admit_ticket *t)
{
	if (!t->starting)
		return;
	if (t->sprev)
		t->sprev->snext = t->snext;
	else
		a->s_head = t->snext;
	if (t->snext)
		t->snext->sprev = t->sprev;
	else
		a->s_tail = t->sprev;
	t->sprev = t->snext = NULL;
	t->starting = 0;
	a->sum.start_Bps -= t->start_Bps;
	a->sum.start_send_Bps -= t->start_send_Bps;
	a->n_starting--;
}

static void start_add(struct sd_admit *a, struct sd_admit_ticket *t,
		      double Bps, double send_Bps, uint64_t end)
{
	t->start_Bps = Bps;
	t->start_send_Bps = send_Bps;
	t->start_end = end;
	t->starting = 1;
	t->snext = NULL;
	t->sprev = a->s_tail;
	if (a->s_tail)
		a->s_tail->snext = t;
	else
		a->s_head = t;
	a->s_tail = t;
	a->sum.start_Bps += Bps;
	a->sum.start_send_Bps += send_Bps;
	a->n_starting++;
}

/* The surcharge of a viewer of @bps during its start (see top): its
 * burst, sent, plus (@fill) its buffer's fill, read. */
static double start_surcharge(const struct sd_admit *a, uint64_t bps,
			      int fill)
{
	double secs = (double)a->lim.start_ns / 1e9;

	if (!a->lim.start_ns)
		return 0;
	return ((double)bps / 8 * (double)a->lim.burst_ns / 1e9 +
		(fill ? (double)a->lim.buffer_size : 0)) / secs;
}

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

/* Service times of one read and one write at a random place. */
static void model_costs(struct sd_admit *a)
{
	const struct iosched_model *m = a->model;
	uint64_t off = 0;

	if (!m) {
		a->svc_read_ns = a->svc_write_ns = 0;
		a->par = 1;
		return;
	}
	if (!iosched_model_is_ssd(m))
		off = iosched_model_capacity(m) / 3 / 512 * 512;
	a->svc_read_ns = (double)iosched_model_service_ns(
		m, 0, IOSCHED_READ, off, a->lim.read_size);
	a->svc_write_ns = (double)iosched_model_service_ns(
		m, 0, IOSCHED_WRITE, off, a->lim.write_size);
	a->par = iosched_model_parallelism(m) ? iosched_model_parallelism(m)
					      : 1;
}

/* Device seconds per second that @read_Bps of reads and @write_Bps of
 * writes cost. */
static double disk_cost(const struct sd_admit *a, double read_Bps,
			double write_Bps)
{
	double r = a->lim.read_size ? read_Bps / a->lim.read_size : 0;
	double w = a->lim.write_size ? write_Bps / a->lim.write_size : 0;

	return (r * a->svc_read_ns + w * a->svc_write_ns) / a->par / 1e9;
}

static double viewer_mem(const struct sd_admit *a)
{
	return (double)a->lim.buffer_size + CONN_OVERHEAD +
	       2.0 * a->lim.read_size;
}

static double recorder_mem(const struct sd_admit *a)
{
	return REC_MEMORY + (double)REC_INFLIGHT * a->lim.write_size;
}

static double cpu_capacity(const struct sd_admit *a)
{
	double c = (double)a->lim.cpus - a->cpu_other;

	return c > CPU_FLOOR ? c : CPU_FLOOR;
}

/* Capacity and promised of each resource; @disk_model: the disk's
 * capacity without the measured correction (the recorder rule). */
static void account(const struct sd_admit *a, double cap[SD_ADMIT_N],
		    double prom[SD_ADMIT_N], int disk_model)
{
	const struct sums *s = &a->sum;

	cap[SD_ADMIT_DISK] = a->model ? (disk_model ? 1.0 : a->disk_factor)
				      : INFINITY;
	prom[SD_ADMIT_DISK] = disk_cost(a, s->view_disk_Bps + s->start_Bps,
					s->rec_Bps);
	cap[SD_ADMIT_CPU] = cpu_capacity(a);
	prom[SD_ADMIT_CPU] = (s->view_Bps + s->start_send_Bps) *
			     a->ns_per_byte / 1e9 +
			     a->recorders * a->cpu_per_rec;
	cap[SD_ADMIT_NET] = a->lim.max_bandwidth ?
		(double)a->lim.max_bandwidth : INFINITY;
	prom[SD_ADMIT_NET] = (s->view_Bps + s->rec_Bps + s->start_send_Bps) *
			     8;
	cap[SD_ADMIT_MEM] = a->lim.mem_budget ? (double)a->lim.mem_budget
					      : INFINITY;
	prom[SD_ADMIT_MEM] = s->view_mem + s->rec_mem;
}

/* What a viewer sending @sent_Bps bytes/s and reading @read_Bps costs:
 * every resource but memory, which a viewer holds whatever its rate. */
static void viewer_rate_cost(const struct sd_admit *a, double sent_Bps,
			     double read_Bps, double need[SD_ADMIT_N])
{
	need[SD_ADMIT_DISK] = disk_cost(a, read_Bps, 0);
	need[SD_ADMIT_CPU] = sent_Bps * a->ns_per_byte / 1e9;
	need[SD_ADMIT_NET] = sent_Bps * 8;
	need[SD_ADMIT_MEM] = 0;
}

/* What a newcomer of @bps needs of each resource; a viewer reads
 * @share of its bytes from the disk. */
static void demand(const struct sd_admit *a, int recorder, uint64_t bps,
		   double share, double need[SD_ADMIT_N])
{
	double Bps = (double)bps / 8;

	if (recorder) {
		need[SD_ADMIT_DISK] = disk_cost(a, 0, Bps);
		need[SD_ADMIT_CPU] = a->cpu_per_rec;
		need[SD_ADMIT_MEM] = recorder_mem(a);
		need[SD_ADMIT_NET] = (double)bps;
	} else {
		viewer_rate_cost(a, Bps + start_surcharge(a, bps, 0),
				 (Bps + start_surcharge(a, bps, 1)) * share,
				 need);
		need[SD_ADMIT_MEM] = viewer_mem(a);
	}
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int sd_admit_new(struct sd_admit **out, const struct sd_admit_limits *lim,
		 struct iosched_model *model)
{
	struct sd_admit *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a) {
		iosched_model_free(model);
		return -ENOMEM;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->lim = *lim;
	a->model = model;
	a->ns_per_byte = PRIOR_NS_PER_BYTE;
	a->cpu_per_rec = PRIOR_CPU_PER_REC;
	a->disk_factor = 1;
	model_costs(a);
	*out = a;
	return 0;
}

static void free_list(struct list *l)
{
	while (l->head) {
		struct sd_admit_ticket *t = l->head;

		list_del(l, t);
		free(t);
	}
}

void sd_admit_free(struct sd_admit *a)
{
	if (!a)
		return;
	free_list(&a->live);
	free_list(&a->held);
	iosched_model_free(a->model);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void sd_admit_set_limits(struct sd_admit *a, const struct sd_admit_limits *l)
{
	pthread_mutex_lock(&a->mu);
	a->lim = *l;
	model_costs(a);
	/* Memory per ticket follows buffer_size for new tickets only: the
	 * sessions open keep the buffers they have. */
	pthread_mutex_unlock(&a->mu);
}

void sd_admit_set_model(struct sd_admit *a, struct iosched_model *m)
{
	struct iosched_model *old;

	pthread_mutex_lock(&a->mu);
	old = a->model;
	a->model = m;
	model_costs(a);
	pthread_mutex_unlock(&a->mu);
	iosched_model_free(old);
}

/* ------------------------------------------------------------------ */
/* Tickets                                                             */
/* ------------------------------------------------------------------ */

/* Frees held tickets whose grace is over (invariant 2) and ends the
 * starts that are over (invariant 4). */
static void reap(struct sd_admit *a, uint64_t now)
{
	while (a->s_head && a->s_head->start_end <= now)
		start_del(a, a->s_head);
	if (!a->s_head)
		a->sum.start_Bps = a->sum.start_send_Bps = 0; /* no rounding
								 left behind */
	while (a->held.head && a->held.head->expires <= now) {
		struct sd_admit_ticket *t = a->held.head;

		list_del(&a->held, t);
		sums_add(&a->sum, t, -1);
		a->viewers--;
		a->leave_count++;
		free(t);
	}
}

/* Seconds until enough promised load is expected to leave for @excess
 * of a resource to free: the first held reservation's expiry or the
 * first start's end, whichever comes first; else the measured rate at
 * which viewers leave. */
static unsigned retry_after(const struct sd_admit *a, uint64_t now,
			    double excess, double per_viewer)
{
	uint64_t soon = UINT64_MAX;
	double s;

	if (a->held.head)
		soon = a->held.head->expires;
	if (a->s_head && a->s_head->start_end < soon)
		soon = a->s_head->start_end;
	if (soon != UINT64_MAX)
		s = (double)(soon - now) / 1e9;
	else if (a->leave_rate > 0 && per_viewer > 0)
		s = ceil(excess / per_viewer) / a->leave_rate;
	else
		s = (double)GRACE_NS / 1e9;
	s = ceil(s);
	if (s < 1)
		s = 1;
	return s > RETRY_MAX_S ? RETRY_MAX_S : (unsigned)s;
}

/* Checks a newcomer against every resource (viewers) or the recorder
 * rule.  0, or -EBUSY with @why filled. */
static int check(struct sd_admit *a, int recorder, uint64_t bps,
		 double share, uint64_t now, struct sd_admit_refusal *why)
{
	double cap[SD_ADMIT_N], prom[SD_ADMIT_N], need[SD_ADMIT_N];
	double ceiling = a->lim.ceiling;

	account(a, cap, prom, recorder);
	demand(a, recorder, bps, share, need);
	if (recorder) {
		/* Recorders alone, writes only (see top). */
		prom[SD_ADMIT_DISK] = disk_cost(a, 0, a->sum.rec_Bps);
		prom[SD_ADMIT_NET] = a->sum.rec_Bps * 8;
	}
	for (int i = 0; i < SD_ADMIT_N; i++) {
		if (recorder && i != SD_ADMIT_DISK && i != SD_ADMIT_NET)
			continue;
		if (prom[i] + need[i] <= ceiling * cap[i])
			continue;
		why->res = (enum sd_admit_res)i;
		why->capacity = cap[i];
		why->promised = prom[i];
		why->demand = need[i];
		why->ceiling = ceiling;
		why->retry_after_s = retry_after(
			a, now, prom[i] + need[i] - ceiling * cap[i],
			need[i] > 0 ? need[i] : 1);
		return -EBUSY;
	}
	return 0;
}

static int admit(struct sd_admit *a, int recorder, const char *client,
		 const char *stream, uint64_t bps, double share, uint64_t now,
		 struct sd_admit_ticket **out, struct sd_admit_refusal *why)
{
	struct sd_admit_refusal ignored;
	struct sd_admit_ticket *t;
	int err;

	*out = NULL;
	if (!why)
		why = &ignored;
	pthread_mutex_lock(&a->mu);
	reap(a, now);
	if (!recorder && client && stream) {
		for (t = a->held.head; t; t = t->next) {
			if (strcmp(t->client, client) == 0 &&
			    strcmp(t->stream, stream) == 0)
				break;
		}
		if (t) { /* invariant 3 */
			list_del(&a->held, t);
			list_add(&a->live, t);
			a->admitted_total++;
			a->takeovers_total++;
			*out = t;
			pthread_mutex_unlock(&a->mu);
			return 0;
		}
	}
	share = share < 0 ? 0 : share > 1 ? 1 : share;
	err = a->lim.on ? check(a, recorder, bps, share, now, why) : 0;
	if (err < 0) {
		a->refused[why->res]++;
		pthread_mutex_unlock(&a->mu);
		return err;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		pthread_mutex_unlock(&a->mu);
		return -ENOMEM;
	}
	t->recorder = recorder;
	t->bps = bps;
	t->share = recorder ? 1 : share;
	t->mem = (uint64_t)(recorder ? recorder_mem(a) : viewer_mem(a));
	snprintf(t->client, sizeof(t->client), "%s", client ? client : "");
	snprintf(t->stream, sizeof(t->stream), "%s", stream ? stream : "");
	list_add(&a->live, t);
	sums_add(&a->sum, t, 1);
	if (recorder) {
		a->recorders++;
	} else {
		a->viewers++;
		if (a->lim.start_ns)
			start_add(a, t, start_surcharge(a, bps, 1) * share,
				  start_surcharge(a, bps, 0),
				  now + a->lim.start_ns);
	}
	a->admitted_total++;
	*out = t;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int sd_admit_viewer(struct sd_admit *a, const char *client,
		    const char *stream, uint64_t bps, uint64_t now,
		    struct sd_admit_ticket **out, struct sd_admit_refusal *why)
{
	return admit(a, 0, client, stream, bps, 1, now, out, why);
}

int sd_admit_viewer_share(struct sd_admit *a, const char *client,
			  const char *stream, uint64_t bps, double share,
			  uint64_t now, struct sd_admit_ticket **out,
			  struct sd_admit_refusal *why)
{
	return admit(a, 0, client, stream, bps, share, now, out, why);
}

int sd_admit_recorder(struct sd_admit *a, const char *stream, uint64_t bps,
		      uint64_t now, struct sd_admit_ticket **out,
		      struct sd_admit_refusal *why)
{
	return admit(a, 1, NULL, stream, bps, 1, now, out, why);
}

void sd_admit_release(struct sd_admit *a, struct sd_admit_ticket *t,
		      uint64_t now)
{
	if (!t)
		return;
	pthread_mutex_lock(&a->mu);
	list_del(&a->live, t);
	start_del(a, t);
	if (t->recorder) {
		sums_add(&a->sum, t, -1);
		a->recorders--;
		free(t);
	} else {
		t->expires = now + GRACE_NS;
		list_add(&a->held, t); /* invariant 2: same grace for all */
	}
	reap(a, now);
	pthread_mutex_unlock(&a->mu);
}

void sd_admit_set_disk_share(struct sd_admit *a, struct sd_admit_ticket *t,
			     double share)
{
	if (!t || t->recorder)
		return;
	share = share < 0 ? 0 : share > 1 ? 1 : share;
	pthread_mutex_lock(&a->mu);
	sums_add(&a->sum, t, -1);
	t->share = share;
	sums_add(&a->sum, t, 1);
	pthread_mutex_unlock(&a->mu);
}

void sd_admit_set_rate(struct sd_admit *a, struct sd_admit_ticket *t,
		       uint64_t bps)
{
	if (!t)
		return;
	pthread_mutex_lock(&a->mu);
	sums_add(&a->sum, t, -1);
	t->bps = bps;
	sums_add(&a->sum, t, 1);
	pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------------ */
/* Measurements                                                        */
/* ------------------------------------------------------------------ */

static double ewma(double old, double x, uint64_t dt, uint64_t tau)
{
	double w = 1 - exp(-(double)dt / (double)tau);

	return old + (x - old) * w;
}

static double delta(uint64_t now, uint64_t then)
{
	return now > then ? (double)(now - then) : 0;
}

/* Linear from 1 at @lo to DISK_FLOOR at @hi. */
static double falling(double x, double lo, double hi)
{
	double f;

	if (x <= lo)
		return 1;
	f = 1 - (x - lo) / (hi - lo) * (1 - DISK_FLOOR);
	return f > DISK_FLOOR ? f : DISK_FLOOR;
}

/* Others' CPU and ours over the last window; the cost per byte over a
 * window that stretches across samples until CPU_MIN_BYTES were served
 * (a few bytes against a process's fixed costs would say nothing). */
static void observe_cpu(struct sd_admit *a, const struct sd_admit_sample *s,
			uint64_t dt)
{
	const struct sd_admit_sample *p = &a->last, *b = &a->cpu_base;
	double self = delta(s->self_cpu_ns, p->self_cpu_ns) / (double)dt;
	double busy = delta(s->sys_busy_ns, p->sys_busy_ns) / (double)dt;
	double bytes = delta(s->bytes_out, p->bytes_out);
	double wbytes = delta(s->bytes_out, b->bytes_out);
	double other = busy - self;

	a->cpu_self = self;
	a->cpu_other = ewma(a->cpu_other, other > 0 ? other : 0, dt,
			    CPU_TAU_NS);
	if (wbytes >= CPU_MIN_BYTES) {
		uint64_t wdt = s->now_ns - b->now_ns;
		double rest = delta(s->self_cpu_ns, b->self_cpu_ns) -
			      a->recorders * a->cpu_per_rec * (double)wdt;

		if (rest < 0)
			rest = 0;
		a->ns_per_byte = ewma(a->ns_per_byte, rest / wbytes, wdt,
				      CPU_TAU_NS);
		a->cpu_base = *s;
	} else if (bytes == 0 && a->recorders > 0) {
		/* Nothing served: what streamd spent went to recording. */
		a->cpu_per_rec = ewma(a->cpu_per_rec, self / a->recorders, dt,
				      CPU_TAU_NS);
		a->cpu_base = *s;
	} else if (bytes == 0) {
		a->cpu_base = *s; /* idle time is no one's cost */
	}
}

static void observe_disk(struct sd_admit *a, const struct sd_admit_sample *s,
			 uint64_t dt)
{
	const struct sd_admit_sample *p = &a->last;
	double deadline = (double)a->lim.deadline_ns;
	double io_n = delta(s->io_deadline_requests, p->io_deadline_requests);
	double rd_n = delta(s->reads, p->reads);
	double req = delta(s->io_requests, p->io_requests);
	double late = 0, target;

	a->disk_q = deadline > 0 ? (double)s->io_latency_p99_ns / deadline : 0;
	if (io_n >= LATE_MIN_SAMPLES)
		late = delta(s->io_misses, p->io_misses) / io_n;
	if (rd_n >= LATE_MIN_SAMPLES) {
		double m = delta(s->read_misses, p->read_misses) / rd_n;

		late = m > late ? m : late;
	}
	a->disk_late = late;
	target = falling(a->disk_q, 0.5, 1.0);
	if (falling(late, 0.001, 0.01) < target)
		target = falling(late, 0.001, 0.01);
	if (target < a->disk_factor)
		a->disk_factor = target;
	else
		a->disk_factor = ewma(a->disk_factor, target, dt,
				      DISK_RECOVER_NS);
	/* What the device did, priced by the model as reads of the mean
	 * size seen. */
	a->disk_used = 0;
	if (req > 0 && a->model) {
		double len = delta(s->io_bytes, p->io_bytes) / req;
		double svc = (double)iosched_model_service_ns(
			a->model, 0, IOSCHED_READ, 0,
			(uint32_t)(len > 0 ? len : 4096));

		a->disk_used = req / ((double)dt / 1e9) * svc / a->par / 1e9;
	}
}

void sd_admit_observe(struct sd_admit *a, const struct sd_admit_sample *s)
{
	uint64_t dt;

	pthread_mutex_lock(&a->mu);
	reap(a, s->now_ns);
	a->rss = s->rss;
	if (!a->have_sample) {
		a->last = *s;
		a->cpu_base = *s;
		a->have_sample = 1;
		a->leave_since = s->now_ns;
		pthread_mutex_unlock(&a->mu);
		return;
	}
	dt = s->now_ns > a->last.now_ns ? s->now_ns - a->last.now_ns : 0;
	if (dt < OBSERVE_MIN_NS) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	observe_cpu(a, s, dt);
	observe_disk(a, s, dt);
	a->net_bps = (delta(s->bytes_out, a->last.bytes_out) +
		      delta(s->bytes_in, a->last.bytes_in)) * 8e9 / (double)dt;
	a->leave_rate = ewma(a->leave_rate, (double)a->leave_count * 1e9 /
			     delta(s->now_ns, a->leave_since), dt, CPU_TAU_NS);
	a->leave_count = 0;
	a->leave_since = s->now_ns;
	a->last = *s;
	pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------------ */
/* Reports                                                             */
/* ------------------------------------------------------------------ */

void sd_admit_viewer_cost(struct sd_admit *a, uint64_t bps,
			  struct sd_admit_cost *out)
{
	pthread_mutex_lock(&a->mu);
	viewer_rate_cost(a, (double)bps / 8, (double)bps / 8, out->steady);
	out->steady[SD_ADMIT_MEM] = viewer_mem(a);
	viewer_rate_cost(a, start_surcharge(a, bps, 0),
			 start_surcharge(a, bps, 1), out->start);
	pthread_mutex_unlock(&a->mu);
}

void sd_admit_stats(struct sd_admit *a, uint64_t now,
		    struct sd_admit_stats *out)
{
	double cap[SD_ADMIT_N], prom[SD_ADMIT_N];

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&a->mu);
	reap(a, now);
	account(a, cap, prom, 0);
	for (int i = 0; i < SD_ADMIT_N; i++) {
		out->res[i].modelled = isfinite(cap[i]);
		out->res[i].capacity = isfinite(cap[i]) ? cap[i] : 0;
		out->res[i].promised = prom[i];
		out->refused[i] = a->refused[i];
	}
	out->res[SD_ADMIT_DISK].measured = a->disk_used;
	out->res[SD_ADMIT_CPU].measured = a->cpu_self;
	out->res[SD_ADMIT_NET].measured = a->net_bps;
	out->res[SD_ADMIT_MEM].measured = (double)a->rss;
	out->ceiling = a->lim.ceiling;
	out->on = a->lim.on;
	out->viewers = a->viewers;
	out->starting = a->n_starting;
	out->held = a->held.n;
	out->recorders = a->recorders;
	out->admitted_total = a->admitted_total;
	out->takeovers_total = a->takeovers_total;
	out->disk_factor = a->disk_factor;
	out->view_disk_share = a->sum.view_Bps > 0 ?
				       a->sum.view_disk_Bps / a->sum.view_Bps
				       : 1;
	out->disk_latency_ratio = a->disk_q;
	out->disk_late_ratio = a->disk_late;
	out->disk_read_ns = a->svc_read_ns;
	out->disk_write_ns = a->svc_write_ns;
	out->disk_parallelism = (unsigned)a->par;
	out->cpu_ns_per_byte = a->ns_per_byte;
	out->cpu_per_recording = a->cpu_per_rec;
	out->cpu_other = a->cpu_other;
	out->cpus = a->lim.cpus;
	pthread_mutex_unlock(&a->mu);
}
