/*
 * The recorder: one encoder upload on its way to a recording, in one
 * direction.  The HTTP route hands it the body bytes (sd_pub_push, into
 * the ingest's ring); the recorder owns the ingest's callbacks, so on the
 * ingest thread it opens the DJMFS recording once the probe has
 * recognised a stream, appends every byte, indexes the keyframes and,
 * when the upload ends, closes the recording, then wakes the connection
 * so the encoder gets its answer (a 200 means every byte is durable).
 * The recorder owns the upload's TS scan too, shared by the ingest (key
 * offsets) and the writer (frame boundaries), so each byte is scanned
 * once.  An upload whose connection ends first (the encoder reset it, or
 * went quiet until the idle timeout closed it) keeps every byte that
 * arrived: the recording closes as after a clean end, with a log line
 * that names it and the cause (pub_cut_off).  A recording that runs out
 * of room ends with -ENOSPC, and the recorder tells which room: the host
 * file system under the volume file (the DJMFS client counted a device
 * write the host refused since the recording opened), the volume's own
 * units, or a volume served read-only (-EROFS from the server, reported
 * as -ENOSPC too, so the encoder gets the one answer, 507).
 *
 * The recorder (struct sd_recorder) keeps every publisher of this
 * process, so a name has one publisher at a time, and the counters of the
 * recordings it has closed, which the metrics route reports.
 *
 * States of a publisher (struct sd_pub), with the function that moves it:
 *   registered  --pub_ready (probe ok)------->  recording
 *   registered  --ingest DONE (probe failed)->  done (415)
 *   recording   --pub_wake (ingest DONE)----->  done (rec closed)
 *   done        --sd_pub_free---------------->  freed
 * Invariants:
 *  1. pub->rec is opened and closed on the ingest thread only; other
 *     threads read its statistics under pub->mu.
 *  2. A publisher stays on rc->pubs (and in rc->publishing) from
 *     registration until its recording is closed, so a clean stop can
 *     wait for every recording to close (rc->cv tells it one did).
 *  3. No byte goes to the ring after sd_ingest_finish (pub->finished).
 *  4. The scan outlives the ingest and the writer that borrow it.
 *  5. Once rc->stopping is set (sd_recorder_stop_all) no publisher
 *     registers (-ESHUTDOWN), and the uploads registered before end as
 *     if their encoders had finished, none taken for a cut-off.
 *  6. rc->writes and rc->write_misses count closed recordings only: a
 *     recording's counters are added, under pub->mu, in the step that
 *     clears pub->rec, so sd_recorder_stats never counts one twice.
 *  7. Lock order: rc->mu before pub->mu.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_daemon.h"

struct sd_recorder {
	struct sd_daemon *d;	/* borrowed: config, logs, client, catalog */

	pthread_mutex_t mu;	/* pubs, publishing, stopping */
	pthread_cond_t cv;	/* a recording ended (invariant 2) */
	struct sd_pub *pubs;	/* publishers now */
	unsigned publishing;	/* length of pubs */
	int stopping;		/* invariant 5 */

	atomic_uint_fast64_t recordings_total;
	atomic_uint_fast64_t writes, write_misses; /* invariant 6 */
};

struct sd_pub {
	struct sd_recorder *rc;
	struct sd_daemon *d;	/* rc->d */
	void (*wake)(void *);	/* the connection may go on */
	void *wake_arg;
	char name[SD_NAME_MAX + 1];
	int64_t wall0;		/* when the upload began */
	uint64_t rx_ns;		/* sd_now() of the last body bytes */
	struct sd_ingest *in;
	struct sd_ts *ts;	/* invariant 4 */

	pthread_mutex_t mu;	/* rec, stats, finished, closed, result */
	struct sd_rec *rec;
	struct sd_rec_stats stats; /* final, once closed */
	int finished;
	int closed;		/* done: the recording (if any) is closed */
	int result;
	const char *full;	/* SD_FULL_*: why result is -ENOSPC */
	uint64_t nospace0;	/* the client's nospace count at open */
	int listed;		/* on rc->pubs */
	int evicted;		/* ended by a forced delete (under mu) */
	struct sd_pub *next;
};

static struct sd_logger pub_log(struct sd_pub *p)
{
	return p->d->logger;
}

/* ------------------------------------------------------------------ */
/* Ingest callbacks (ingest thread)                                    */
/* ------------------------------------------------------------------ */

static int pub_ready(void *arg, const char *format, const char *codecs)
{
	struct sd_pub *p = arg;
	struct sd_daemon *d = p->d;
	struct sd_rec_opts o = {
		.write_size = d->cfg.write_size,
		.publish_ns = d->cfg.publish_ns,
		.deadline_ns = d->cfg.write_deadline_ns,
		.log = pub_log(p),
		.ts = p->ts,
		.cache = d->cache,
	};
	struct sd_rec *rec = NULL;
	struct djmfs_io_stats io;
	int err;

	djmfs_io_stats(d->client, &io);
	p->nospace0 = io.nospace;
	err = sd_rec_open(d->client, p->name, &o, &rec);

	if (err == 0)
		err = sd_rec_begin(rec, format, codecs, p->wall0);
	if (err < 0) {
		sd_log_error(d->log, err == -EBUSY ? SD_LOG_INFO :
			     SD_LOG_ERROR, "record %s: sd_rec_open: %s",
			     p->name, strerror(-err));
		sd_rec_close(rec, sd_wall_now(), NULL);
		return err;
	}
	pthread_mutex_lock(&p->mu);
	p->rec = rec;
	pthread_mutex_unlock(&p->mu);
	sd_catalog_touch(d->cat, p->name);
	sd_log_error(d->log, SD_LOG_INFO, "record %s: %s %s", p->name,
		     format, codecs);
	return 0;
}

static int pub_bytes(void *arg, const void *buf, size_t len)
{
	struct sd_pub *p = arg;
	int err = sd_rec_data(p->rec, buf, len);

	return err < 0 ? err : sd_rec_tick(p->rec);
}

static size_t pub_space(void *arg, void **buf)
{
	struct sd_pub *p = arg;

	return p->rec ? sd_rec_space(p->rec, buf) : 0;
}

static int pub_key(void *arg, uint64_t offset, int64_t pts)
{
	struct sd_pub *p = arg;

	return sd_rec_key(p->rec, offset, pts);
}

static int pub_idle(void *arg)
{
	struct sd_pub *p = arg;

	return p->rec ? sd_rec_tick(p->rec) : 0;
}

/* Which room a recording that ended with @result ran out of (NULL: it
 * did not), folding a read-only server's -EROFS into -ENOSPC. */
static const char *pub_full_why(struct sd_pub *p, int *result)
{
	struct djmfs_io_stats io;

	if (*result == -EROFS || *result == -EDQUOT) {
		if (*result == -EROFS)
			atomic_store(&p->d->read_only, 1);
		*result = -ENOSPC;
	}
	if (*result != -ENOSPC)
		return NULL;
	if (atomic_load(&p->d->read_only))
		return SD_FULL_READ_ONLY;
	djmfs_io_stats(p->d->client, &io);
	return io.nospace > p->nospace0 ? SD_FULL_HOST : SD_FULL_UNITS;
}

/* The ingest finished: close the recording here, on the ingest thread,
 * so the HTTP threads never wait for the final publish. */
static void pub_close(struct sd_pub *p, int result)
{
	struct sd_recorder *rc = p->rc;
	struct sd_daemon *d = p->d;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->rec) {
		err = sd_rec_close(p->rec, sd_wall_now(), &p->stats);
		p->rec = NULL;
		atomic_fetch_add(&rc->writes, p->stats.writes);
		atomic_fetch_add(&rc->write_misses, p->stats.write_misses);
	}
	p->result = result < 0 ? result : err;
	p->full = pub_full_why(p, &p->result);
	p->closed = 1;
	pthread_mutex_unlock(&p->mu);
	/* Before the encoder hears the answer: a player it starts next
	 * must see the whole recording. */
	sd_catalog_touch(d->cat, p->name);
	if (p->result < 0 && p->full)
		sd_log_error(d->log, SD_LOG_ERROR, "record %s: stopped: %s; "
			     "%s", p->name, strerror(-p->result), p->full);
	else if (p->result < 0 && p->result != -EPROTONOSUPPORT &&
		 p->result != -EBUSY)
		sd_log_error(d->log, SD_LOG_ERROR, "record %s: stopped: %s",
			     p->name, strerror(-p->result));
	else if (p->result == 0)
		sd_log_error(d->log, SD_LOG_INFO, "record %s: closed, %llu "
			     "bytes, %llu keyframes", p->name,
			     (unsigned long long)p->stats.bytes,
			     (unsigned long long)p->stats.keyframes);
	pthread_mutex_lock(&rc->mu);
	for (struct sd_pub **pp = &rc->pubs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			rc->publishing--;
			p->listed = 0;
			break;
		}
	}
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
}

static void pub_wake(void *arg)
{
	struct sd_pub *p = arg;
	int result = 0;

	if (sd_ingest_state(p->in, &result) == SD_INGEST_DONE && !p->closed)
		pub_close(p, result);
	p->wake(p->wake_arg);
}

/* ------------------------------------------------------------------ */
/* The upload (HTTP threads)                                           */
/* ------------------------------------------------------------------ */

/* The connection ended before the upload did: which recording, and why
 * as far as the timing tells (the idle timeout closes a connection that
 * was quiet for that long; anything sooner is the encoder's doing). */
static void pub_cut_off(struct sd_pub *p)
{
	struct sd_daemon *d = p->d;
	uint64_t quiet = sd_now() - p->rx_ns;
	struct sd_ingest_stats st;

	sd_ingest_stats(p->in, &st);
	if (quiet >= SD_NS && quiet + SD_NS >= d->cfg.idle_timeout_ns)
		sd_log_error(d->log, SD_LOG_WARN, "record %s: no bytes "
			     "from the encoder for %.1f s (idle timeout %.1f "
			     "s): the connection was closed; ending the "
			     "upload with the %llu bytes received", p->name,
			     (double)quiet / SD_NS,
			     (double)d->cfg.idle_timeout_ns / SD_NS,
			     (unsigned long long)st.bytes_in);
	else
		sd_log_error(d->log, SD_LOG_WARN, "record %s: the "
			     "encoder's connection ended mid-upload (reset, "
			     "or closed before the end of the body): ending "
			     "the upload with the %llu bytes received",
			     p->name, (unsigned long long)st.bytes_in);
}

void sd_pub_free(struct sd_pub *p)
{
	int cut_off, stopping;

	if (!p)
		return;
	pthread_mutex_lock(&p->rc->mu);
	stopping = p->rc->stopping;
	pthread_mutex_unlock(&p->rc->mu);
	pthread_mutex_lock(&p->mu);
	cut_off = p->in && !p->finished && !p->closed && !stopping;
	pthread_mutex_unlock(&p->mu);
	if (cut_off)
		pub_cut_off(p);
	if (p->in) {
		pthread_mutex_lock(&p->mu);
		p->finished = 1;
		pthread_mutex_unlock(&p->mu);
		sd_ingest_finish(p->in);
		sd_ingest_free(p->in); /* joins: pub_wake has run */
	}
	if (!p->closed)
		pub_close(p, 0);
	sd_ts_free(p->ts);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Registers @p under its name; -EBUSY if this process records it,
 * -ESHUTDOWN once the recorder stops (invariant 5). */
static int pub_register(struct sd_recorder *rc, struct sd_pub *p)
{
	int err = 0;

	pthread_mutex_lock(&rc->mu);
	if (rc->stopping)
		err = -ESHUTDOWN;
	for (struct sd_pub *q = rc->pubs; q && err == 0; q = q->next)
		if (strcmp(q->name, p->name) == 0)
			err = -EBUSY;
	if (err == 0) {
		p->next = rc->pubs;
		rc->pubs = p;
		rc->publishing++;
		p->listed = 1;
	}
	pthread_mutex_unlock(&rc->mu);
	return err;
}

int sd_pub_start(struct sd_recorder *rc, const char *name,
		 void (*wake)(void *), void *wake_arg, struct sd_pub **out)
{
	struct sd_daemon *d = rc->d;
	struct sd_ingest_cbs cbs = {
		.on_ready = pub_ready, .on_bytes = pub_bytes,
		.on_space = pub_space, .on_key = pub_key, .on_wake = pub_wake, .on_idle = pub_idle,
	};
	struct sd_ingest_opts io = { .probe_size = d->cfg.probe_size,
				     .log = d->logger };
	struct sd_pub *p = calloc(1, sizeof(*p));
	int err;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->rc = rc;
	p->d = d;
	p->wake = wake;
	p->wake_arg = wake_arg;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->wall0 = sd_wall_now();
	p->rx_ns = sd_now();
	pthread_mutex_init(&p->mu, NULL);
	err = pub_register(rc, p);
	if (err < 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return err;
	}
	*out = p;
	cbs.arg = p;
	err = sd_ts_new(&p->ts, 1);
	io.ts = p->ts;
	if (err == 0)
		err = sd_ingest_new(&p->in, &io, &cbs);
	if (err < 0) {
		p->in = NULL;
		return err;
	}
	atomic_fetch_add(&rc->recordings_total, 1);
	return 0;
}

size_t sd_pub_push(struct sd_pub *p, const void *buf, size_t len)
{
	size_t n = sd_ingest_push(p->in, buf, len);

	p->rx_ns = sd_now();
	atomic_fetch_add(&p->d->bytes_in, n);
	return n;
}

void sd_pub_finish(struct sd_pub *p)
{
	int first;

	pthread_mutex_lock(&p->mu);
	first = !p->finished;
	p->finished = 1;
	pthread_mutex_unlock(&p->mu);
	if (first)
		sd_ingest_finish(p->in);
}

int sd_pub_finished(struct sd_pub *p)
{
	int f;

	pthread_mutex_lock(&p->mu);
	f = p->finished;
	pthread_mutex_unlock(&p->mu);
	return f;
}

int sd_pub_closed(struct sd_pub *p, int *result, struct sd_rec_stats *st)
{
	int closed;

	pthread_mutex_lock(&p->mu);
	closed = p->closed;
	*result = p->result;
	if (st)
		*st = p->stats;
	pthread_mutex_unlock(&p->mu);
	return closed;
}

const char *sd_pub_full(struct sd_pub *p)
{
	const char *full;

	pthread_mutex_lock(&p->mu);
	full = p->closed ? p->full : NULL;
	pthread_mutex_unlock(&p->mu);
	return full;
}

int sd_pub_evicted(struct sd_pub *p)
{
	int e;

	pthread_mutex_lock(&p->mu);
	e = p->evicted;
	pthread_mutex_unlock(&p->mu);
	return e;
}

const char *sd_pub_name(const struct sd_pub *p)
{
	return p->name;
}

/* ------------------------------------------------------------------ */
/* Every publisher                                                     */
/* ------------------------------------------------------------------ */

int sd_recorder_new(struct sd_recorder **out, struct sd_daemon *d)
{
	struct sd_recorder *rc = calloc(1, sizeof(*rc));
	int err;

	*out = NULL;
	if (!rc)
		return -ENOMEM;
	rc->d = d;
	err = -pthread_mutex_init(&rc->mu, NULL);
	if (err < 0)
		goto err_free;
	err = -pthread_cond_init(&rc->cv, NULL);
	if (err < 0)
		goto err_mu;
	*out = rc;
	return 0;
err_mu:
	pthread_mutex_destroy(&rc->mu);
err_free:
	free(rc);
	return err;
}

void sd_recorder_free(struct sd_recorder *rc)
{
	if (!rc)
		return;
	assert(!rc->pubs);
	pthread_cond_destroy(&rc->cv);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

void sd_recorder_stop_all(struct sd_recorder *rc)
{
	pthread_mutex_lock(&rc->mu);
	rc->stopping = 1;
	for (struct sd_pub *p = rc->pubs; p; p = p->next)
		if (p->in)
			sd_pub_finish(p);
	pthread_mutex_unlock(&rc->mu);
}

static struct sd_pub *pub_find(struct sd_recorder *rc, const char *name)
{
	struct sd_pub *p = rc->pubs;

	while (p && strcmp(p->name, name) != 0)
		p = p->next;
	return p;
}

int sd_recorder_live(struct sd_recorder *rc, const char *name)
{
	int live;

	pthread_mutex_lock(&rc->mu);
	live = pub_find(rc, name) != NULL;
	pthread_mutex_unlock(&rc->mu);
	return live;
}

int sd_recorder_retain(struct sd_recorder *rc, const char *name,
		       uint64_t data_start, uint64_t idx_start)
{
	struct sd_pub *p;
	int err = -ENOENT;

	pthread_mutex_lock(&rc->mu);
	p = pub_find(rc, name);
	/* Listed, so not closed: holding p->mu keeps it so (pub_close
	 * needs it) and the list lock can go before the DJMFS calls. */
	if (p)
		pthread_mutex_lock(&p->mu);
	pthread_mutex_unlock(&rc->mu);
	if (!p)
		return -ENOENT;
	if (p->rec)
		err = sd_rec_retain(p->rec, data_start, idx_start);
	pthread_mutex_unlock(&p->mu);
	return err;
}

int sd_recorder_end(struct sd_recorder *rc, const char *name,
		    unsigned wait_s)
{
	struct timespec until;
	struct sd_pub *p;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_s;
	pthread_mutex_lock(&rc->mu);
	p = pub_find(rc, name);
	if (!p) {
		err = -ENOENT;
	} else {
		pthread_mutex_lock(&p->mu);
		p->evicted = 1;
		pthread_mutex_unlock(&p->mu);
		if (p->in)
			sd_pub_finish(p);
	}
	/* pub_close takes it off the list, then broadcasts (invariant 2). */
	while (err == 0 && pub_find(rc, name))
		if (pthread_cond_timedwait(&rc->cv, &rc->mu, &until) ==
		    ETIMEDOUT)
			err = -ETIMEDOUT;
	pthread_mutex_unlock(&rc->mu);
	return err;
}

unsigned sd_recorder_wait(struct sd_recorder *rc,
			  const struct timespec *until)
{
	unsigned left;

	pthread_mutex_lock(&rc->mu);
	while (rc->publishing > 0 &&
	       pthread_cond_timedwait(&rc->cv, &rc->mu, until) != ETIMEDOUT)
		;
	left = rc->publishing;
	pthread_mutex_unlock(&rc->mu);
	return left;
}

void sd_recorder_stats(struct sd_recorder *rc, struct sd_recorder_stats *st)
{
	uint64_t w = atomic_load(&rc->writes);
	uint64_t m = atomic_load(&rc->write_misses);

	pthread_mutex_lock(&rc->mu);
	for (struct sd_pub *p = rc->pubs; p; p = p->next) {
		struct sd_rec_stats rs;

		pthread_mutex_lock(&p->mu);
		if (p->rec) {
			sd_rec_stats(p->rec, &rs);
			w += rs.writes;
			m += rs.write_misses;
		}
		pthread_mutex_unlock(&p->mu);
	}
	st->publishing = rc->publishing;
	pthread_mutex_unlock(&rc->mu);
	st->recordings_total = atomic_load(&rc->recordings_total);
	st->writes = w;
	st->write_misses = m;
}
