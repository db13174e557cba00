/*
 * Retention: the thread that keeps a volume recorded around the clock
 * from filling up.  Every pass (RETAIN_PASS_NS) it looks at every
 * recording the catalog knows, plans where each may start now
 * (sd_retain_plan.c: retention, retention_bytes, the per-recording
 * overrides, the holds, and volume_reserve across all of them, oldest
 * moment first), and trims the heads of "data" and "index" in DJMFS to
 * that keyframe.  DJMFS frees the units below at once, or when the last
 * reader holding a snapshot of them lets go; offsets of what remains do
 * not change, so the catalog only drops the index entries below the new
 * start and every route sees it with its next refresh (touched here, so
 * at once).
 *
 * Who trims.  A trim needs the file's write lock.  A recording this
 * process records goes through its recorder (sd_recorder_retain, under
 * the recording's own lock, between two of its writes); one nobody
 * records is opened for writing for the moment of the trim (an encoder
 * arriving then waits for it, sd_rec_open); one another node records is
 * left to that node's retention.
 *
 * Only a cut that frees at least one whole unit is made: smaller ones
 * would free nothing and cost a journal record each.  A recording that
 * a hold pins keeps everything from the hold's keyframe on, and what
 * that costs (pinned_bytes) is a metric.
 *
 * Invariants:
 *  1. rt->mu guards stop and the gauges; the pass runs without it.
 *  2. A pass holds d->holds_mu from reading a recording's holds to the
 *     end of its trim, and the holds routes take it around a change, so
 *     a hold added in this process is never trimmed under.
 *  3. Streams are read-locked only while a plan reads their index; no
 *     DJMFS call is made under a stream's lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_daemon.h"

#define RETAIN_PASS_NS (2 * SD_NS)
/* Units a trim frees come back only once no reader within its lease can
 * still read them: the DJMFS server's default lease. */
#define RETAIN_DEFER_S 10

struct sd_retain {
	struct sd_daemon *d;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct sd_retain_stats st; /* under mu */
	/* The recorders' write rate, bytes/s, from bytes_in (pass only). */
	uint64_t in0;
	uint64_t in0_ns;
	double rate;
};

/* One recording of a pass. */
struct item {
	char name[SD_NAME_MAX + 1];
	struct sd_stream *s;
	struct sd_retain_rec rec;
	int held;		/* its holds were read (hold_from is right) */
	uint64_t held_bytes;
};

/* Reads @it's holds: its earliest start and the bytes they keep. */
static void read_holds(struct sd_daemon *d, struct item *it)
{
	struct sd_holds hs;
	int err = sd_holds_load(d->client, it->name, &hs);

	it->held = 1;
	if (err < 0) {
		/* Unknown holds: keep everything rather than guess. */
		sd_log_error(d->log, SD_LOG_WARN, "retention: %s: reading its "
			     "holds: %s; not trimmed this pass", it->name,
			     strerror(-err));
		it->rec.hold_from = INT64_MIN;
		return;
	}
	it->rec.hold_from = sd_holds_first_start(&hs);
	sd_holds_free(&hs);
}

/* Time is kept back from the recording's live edge: now while it is
 * recorded, its end once finished (a camera that went quiet keeps its
 * last hours; the reserve trims it if the room is needed). */
static void plan_rules(struct item *it, int64_t now)
{
	sd_stream_rdlock(it->s);
	if (!it->s->live)
		now = it->s->end_ns;
	it->rec.ix = &it->s->index;
	it->rec.data_start = it->s->data_start;
	it->rec.data_size = it->s->data_size;
	sd_retain_rules(&it->rec, now);
	sd_stream_unlock(it->s);
}

/* The trim of one item: through its recorder if this process records
 * it, else with the write lock for the moment of it. */
static int trim_one(struct sd_daemon *d, struct item *it, uint64_t idx_start)
{
	struct djmfs_file *f;
	struct djmfs_file_info fi;
	uint32_t data_id = 0, idx_id = 0;
	int err = sd_recorder_retain(d->recorder, it->name, it->rec.cut,
				     idx_start);

	if (err != -ENOENT)
		return err;
	err = djmfs_open(d->client, it->name, DJMFS_O_READ | DJMFS_O_WRITE,
			 &f);
	if (err < 0)
		return err;
	err = djmfs_file_info(f, &fi);
	for (uint32_t i = 0; err == 0 && i < fi.n_objs; i++) {
		if (!strcmp(fi.objs[i].name, "data"))
			data_id = fi.objs[i].id;
		else if (!strcmp(fi.objs[i].name, "index"))
			idx_id = fi.objs[i].id;
	}
	if (err == 0 && (!data_id || !idx_id))
		err = -EUCLEAN;
	if (err == 0)
		err = djmfs_trim(f, data_id, it->rec.cut, NULL);
	if (err == 0)
		err = djmfs_trim(f, idx_id, idx_start, NULL);
	djmfs_close(f);
	return err;
}

/*
 * Units the recorders may take before trimmed ones come back: what they
 * write in a lease and two passes at their measured rate, and what each
 * holds reserved ahead.  On top of volume_reserve, so the share an
 * operator set is what stays free while cameras write.
 */
static uint64_t headroom(struct sd_retain *rt, uint64_t unit)
{
	struct sd_recorder_stats rs;
	uint64_t in = atomic_load(&rt->d->bytes_in), now = sd_now();
	double secs = RETAIN_DEFER_S + 2.0 * RETAIN_PASS_NS / SD_NS;

	if (rt->in0_ns && now > rt->in0_ns) {
		double r = (double)(in - rt->in0) * SD_NS /
			   (double)(now - rt->in0_ns);

		/* Up at once, down slowly: a pause must not shrink it. */
		rt->rate = r > rt->rate ? r : 0.9 * rt->rate + 0.1 * r;
	}
	rt->in0 = in;
	rt->in0_ns = now;
	sd_recorder_stats(rt->d->recorder, &rs);
	return (uint64_t)(rt->rate * secs / (double)unit + 0.999) +
	       (uint64_t)rs.publishing * SD_RESERVE_AUS;
}

static void pass(struct sd_retain *rt)
{
	struct sd_daemon *d = rt->d;
	char **names = NULL;
	size_t nn = 0;
	struct djmfs_df df;
	struct sd_knobs k;
	struct item *items = NULL;
	struct sd_retain_rec *recs = NULL;
	struct sd_retain_stats st = { 0 };
	uint64_t need = 0, unit, reserve_units;
	int64_t now = sd_wall_now();
	size_t n = 0;
	int err;

	pthread_mutex_lock(&d->knobs_mu);
	k = d->knobs;
	pthread_mutex_unlock(&d->knobs_mu);
	if ((err = djmfs_df(d->client, &df)) < 0 ||
	    (err = sd_catalog_names(d->cat, &names, &nn)) < 0) {
		sd_log_error(d->log, SD_LOG_WARN, "retention: %s",
			     strerror(-err));
		goto out;
	}
	unit = df.au_size;
	reserve_units = (uint64_t)((double)df.total_aus * k.volume_reserve /
				   100.0 + 0.999);
	if (k.volume_reserve > 0)
		reserve_units += headroom(rt, unit);
	st.reserve_units = reserve_units;
	/* Deferred units come back once their readers let go (the headroom
	 * covers the writes meanwhile): counting them as lost would trim
	 * again every pass while they wait. */
	if (df.free_aus + df.deferred_aus < reserve_units)
		need = reserve_units - df.free_aus - df.deferred_aus;
	if (nn && !(items = calloc(nn, sizeof(*items))))
		goto out;
	for (size_t i = 0; i < nn; i++) {
		struct item *it = &items[n];

		if (sd_catalog_get(d->cat, names[i], &it->s) < 0)
			continue;
		snprintf(it->name, sizeof(it->name), "%s", names[i]);
		it->rec.hold_from = INT64_MAX;
		sd_retention_rules(&k, it->name, &it->rec.rules, NULL, 0);
		n++;
	}
	pthread_mutex_lock(&d->holds_mu);
	/* Holds are read only where something may go: by a rule, or by the
	 * reserve (then every recording's). */
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];

		plan_rules(it, now);
		if (need || it->rec.cut > it->rec.data_start) {
			read_holds(d, it);
			plan_rules(it, now);
		}
	}
	if (need && n) {
		if (!(recs = calloc(n, sizeof(*recs))))
			goto unlock;
		for (size_t i = 0; i < n; i++)
			sd_stream_rdlock(items[i].s);
		for (size_t i = 0; i < n; i++) {
			recs[i] = items[i].rec;
			recs[i].ix = &items[i].s->index;
		}
		st.reserve_short_units = need - sd_retain_reserve(recs, n, need,
								  unit);
		for (size_t i = 0; i < n; i++) {
			items[i].rec.cut = recs[i].cut;
			items[i].rec.cut_entry = recs[i].cut_entry;
			items[i].rec.by_reserve = recs[i].by_reserve;
		}
		for (size_t i = 0; i < n; i++)
			sd_stream_unlock(items[i].s);
	}
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		uint64_t units = sd_retain_units(&it->rec, unit), idx_start;

		st.pinned_bytes += it->rec.pinned_bytes;
		if (units == 0)
			continue;
		sd_stream_rdlock(it->s);
		idx_start = (it->s->idx_base + it->rec.cut_entry) * SD_IDX_SIZE;
		sd_stream_unlock(it->s);
		err = trim_one(d, it, idx_start);
		if (err == -EBUSY)
			continue; /* another node records it: its turn */
		if (err < 0) {
			sd_log_error(d->log, SD_LOG_WARN, "retention: trimming "
				     "%s to %llu: %s", it->name,
				     (unsigned long long)it->rec.cut,
				     strerror(-err));
			st.errors++;
			continue;
		}
		sd_catalog_touch(d->cat, it->name);
		st.trims++;
		st.trimmed_bytes += it->rec.cut - it->rec.data_start;
		st.trimmed_units += units;
		sd_log_error(d->log, SD_LOG_INFO, "retention: %s now starts at "
			     "%llu (%llu bytes, %llu units trimmed%s%s)",
			     it->name, (unsigned long long)it->rec.cut,
			     (unsigned long long)(it->rec.cut -
						  it->rec.data_start),
			     (unsigned long long)units,
			     it->rec.by_reserve ? "; volume_reserve" : "",
			     it->rec.pinned ? "; a hold stopped it" : "");
	}
unlock:
	pthread_mutex_unlock(&d->holds_mu);
out:
	for (size_t i = 0; i < n; i++)
		sd_stream_put(items[i].s);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(items);
	free(recs);
	pthread_mutex_lock(&rt->mu);
	rt->st.passes++;
	rt->st.trims += st.trims;
	rt->st.trimmed_bytes += st.trimmed_bytes;
	rt->st.trimmed_units += st.trimmed_units;
	rt->st.errors += st.errors;
	rt->st.pinned_bytes = st.pinned_bytes;
	rt->st.reserve_short_units = st.reserve_short_units;
	rt->st.reserve_units = st.reserve_units;
	if (err == 0 || df.au_size) {
		rt->st.volume_bytes = df.total_aus * df.au_size;
		rt->st.free_bytes = (df.free_aus + df.deferred_aus) *
				    df.au_size;
	}
	pthread_mutex_unlock(&rt->mu);
}

static void *retain_main(void *arg)
{
	struct sd_retain *rt = arg;
	struct timespec until;

	pthread_mutex_lock(&rt->mu);
	while (!rt->stop) {
		pthread_mutex_unlock(&rt->mu);
		pass(rt);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += RETAIN_PASS_NS / SD_NS;
		pthread_mutex_lock(&rt->mu);
		while (!rt->stop && pthread_cond_timedwait(&rt->cv, &rt->mu,
							   &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&rt->mu);
	return NULL;
}

int sd_retain_start(struct sd_daemon *d)
{
	struct sd_retain *rt = calloc(1, sizeof(*rt));
	pthread_condattr_t ca;
	int err;

	if (!rt)
		return -ENOMEM;
	rt->d = d;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->cv, &ca);
	pthread_condattr_destroy(&ca);
	err = -pthread_create(&rt->th, NULL, retain_main, rt);
	if (err < 0) {
		pthread_cond_destroy(&rt->cv);
		pthread_mutex_destroy(&rt->mu);
		free(rt);
		return err;
	}
	d->retain = rt;
	return 0;
}

void sd_retain_stop(struct sd_daemon *d)
{
	struct sd_retain *rt = d->retain;

	if (!rt)
		return;
	pthread_mutex_lock(&rt->mu);
	rt->stop = 1;
	pthread_cond_broadcast(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
	pthread_join(rt->th, NULL);
	pthread_cond_destroy(&rt->cv);
	pthread_mutex_destroy(&rt->mu);
	free(rt);
	d->retain = NULL;
}

void sd_retain_stats(struct sd_daemon *d, struct sd_retain_stats *out)
{
	struct sd_retain *rt = d->retain;

	memset(out, 0, sizeof(*out));
	if (!rt)
		return;
	pthread_mutex_lock(&rt->mu);
	*out = rt->st;
	pthread_mutex_unlock(&rt->mu);
}
