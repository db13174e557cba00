/*
 * Durability of the server's metadata: the journal of records that
 * follow the newest checkpoint and the group-commit writer that makes
 * appended records durable (in both copies of a format 2 volume; the
 * checkpoint slots are djmfs_ckpt.c's, replay djmfs_replay.c's).  The
 * loop thread appends and is never blocked by the disk: a writer thread
 * takes every record queued since its last round,
 * writes them with one pwrite per run of records and one fdatasync, then
 * publishes the highest durable seq and wakes the loop through an
 * eventfd.  A checkpoint rotates the journal: the image goes to the slot
 * not holding the current checkpoint, under generation epoch + 1, and the
 * records after it start again at the journal's first byte.  A write
 * error wakes the loop too, which gives up the answers it held.
 *
 * Invariants:
 *  1. The queue holds segments in append order.  A segment's records are
 *     contiguous bytes of one epoch starting at its `off`; a checkpoint
 *     closes the segment it is attached to, so nothing is ever added to a
 *     segment after its checkpoint.
 *  2. The loop thread alone owns epoch, off, next_seq and enc; the writer
 *     alone owns slot.  The queue and `stopping` are under `lock`;
 *     durable, failed and the statistics are atomics.
 *  3. A checkpoint is written only after the records before it are
 *     durable, and records of its new epoch only after it is durable, so
 *     at every instant one slot plus the journal it heads describes all
 *     acknowledged state (a torn slot fails its CRC and the other wins).
 *  4. durable only grows, and only after an fdatasync that covered those
 *     records returned success.  After the first I/O error nothing more
 *     is written and durable never moves again (a later fdatasync may
 *     "succeed" over lost pages, so an error is final).
 *
 * Life of an item:
 *   record:     journal_append (queued) -> writer_round: pwrite (written)
 *               -> batch_commit: fdatasync, durable, eventfd (durable)
 *   checkpoint: journal_checkpoint (queued, loop moves to epoch + 1)
 *               -> batch_commit of the records before it
 *               -> ckpt_write: ckpt_store into the other slot (current)
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_volio.h"


/* ------------------------------------------------------------------ */
/* Group-commit writer                                                  */
/* ------------------------------------------------------------------ */

#define SEG_INITIAL (64u << 10)	/* first capacity of a record segment */
#define SEG_KEEP_MAX (4u << 20)	/* larger segments are not kept */
#define PREP_CHUNK (1u << 20)	/* journal bytes zero-filled ahead at once */

struct jseg {
	struct jseg *next;
	struct djmfs__buf recs; /* encoded records, contiguous */
	uint64_t epoch;
	uint64_t off;		/* epoch offset of recs.p[0] */
	uint64_t nrec;
	uint64_t last_seq;	/* of the last record in recs */
	int has_ckpt;		/* a checkpoint follows the records */
	struct djmfs__buf img;
	uint64_t ckpt_seq;
};

struct djmfs__journal {
	struct djmfs__vol *vol;
	struct djmfs_log log;
	int notify_fd;
	uint32_t seed;
	pthread_t thread;

	/* Loop thread. */
	uint64_t epoch;
	uint64_t off;
	uint64_t next_seq;
	struct djmfs__buf enc;

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct jseg *head, *tail;
	struct jseg *spare; /* a written segment kept for its buffer */
	int stopping;

	/* Writer thread. */
	unsigned slot;
	uint64_t window_ns;
	uint64_t last_round_ns; /* start of the previous round */
	uint64_t last_round_recs; /* records the previous round wrote */
	int prefill;		/* the volume is a (sparse) regular file */
	uint64_t prepared;	/* journal bytes [0, prepared) hold blocks */
	uint8_t *zeros;		/* PREP_CHUNK zero bytes, once needed */

	/* Atomics. */
	uint64_t durable;
	int failed; /* -errno of the first I/O error */
	struct djmfs__journal_stats stats;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stat_add(uint64_t *field, uint64_t n)
{
	__atomic_add_fetch(field, n, __ATOMIC_RELAXED);
}

static void seg_free(struct jseg *s)
{
	if (!s)
		return;
	djmfs__buf_free(&s->recs);
	djmfs__buf_free(&s->img);
	free(s);
}

/* Keeps one written record segment for the next round, so a steady load
 * reuses one buffer instead of growing a new one by reallocs each round. */
static void seg_recycle(struct djmfs__journal *j, struct jseg *s)
{
	if (s->has_ckpt || s->recs.cap > SEG_KEEP_MAX) {
		seg_free(s);
		return;
	}
	pthread_mutex_lock(&j->lock);
	if (!j->spare) {
		djmfs__buf_reset(&s->recs);
		s->nrec = 0;
		s->next = NULL;
		j->spare = s;
		s = NULL;
	}
	pthread_mutex_unlock(&j->lock);
	seg_free(s);
}

/* Under lock: the open segment at the tail, or a new one that starts at
 * the loop's current position. */
static struct jseg *seg_open(struct djmfs__journal *j)
{
	struct jseg *s = j->tail;

	if (s && !s->has_ckpt)
		return s;
	if (j->spare) {
		s = j->spare;
		j->spare = NULL;
	} else {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		djmfs__buf_init(&s->recs);
		djmfs__buf_init(&s->img);
		/* A round's records usually fit, so appends rarely grow it. */
		djmfs__buf_reserve(&s->recs, SEG_INITIAL);
		s->recs.err = 0;
	}
	s->epoch = j->epoch;
	s->off = j->off;
	if (j->tail)
		j->tail->next = s;
	else
		j->head = s;
	j->tail = s;
	return s;
}

static void writer_fail(struct djmfs__journal *j, const char *what, int err)
{
	uint64_t one = 1;
	int none = 0;

	if (!__atomic_compare_exchange_n(&j->failed, &none, err, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	djmfs__log(&j->log, DJMFS_LOG_ERROR, "journal: %s(%s): %s; no "
		   "further mutation becomes durable", what, j->vol->path,
		   strerror(-err));
	/* The loop holds answers waiting for these records: wake it so it
	 * gives them up instead of waiting for a durable that never comes. */
	while (j->notify_fd >= 0 &&
	       write(j->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static int writer_failed(const struct djmfs__journal *j)
{
	return __atomic_load_n(&j->failed, __ATOMIC_ACQUIRE);
}

/* Records written since the last commit, not yet synced. */
struct pending {
	uint64_t nrec, bytes, last_seq;
};

static void batch_commit(struct djmfs__journal *j, struct pending *pd)
{
	const uint64_t one = 1;
	uint64_t t0;
	int err;

	if (pd->nrec == 0 || writer_failed(j))
		goto out;
	t0 = mono_ns();
	err = djmfs__datasync(j->vol->fd);
	stat_add(&j->stats.sync_ns, mono_ns() - t0);
	if (err < 0) {
		writer_fail(j, "fdatasync", err);
		goto out;
	}
	__atomic_store_n(&j->durable, pd->last_seq, __ATOMIC_RELEASE);
	stat_add(&j->stats.batches, 1);
	stat_add(&j->stats.records, pd->nrec);
	stat_add(&j->stats.bytes, pd->bytes);
	while (j->notify_fd >= 0 &&
	       write(j->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
out:
	memset(pd, 0, sizeof(*pd));
}

static void ckpt_write(struct djmfs__journal *j, struct jseg *s)
{
	unsigned other = j->slot ^ 1;
	int err;

	if (writer_failed(j))
		return;
	err = djmfs__ckpt_store(j->vol, other, s->epoch + 1, s->ckpt_seq,
				s->img.p, s->img.len);
	if (err < 0) {
		writer_fail(j, "checkpoint", err);
		return;
	}
	j->slot = other;
	stat_add(&j->stats.checkpoints, 1);
	djmfs__log(&j->log, DJMFS_LOG_INFO, "checkpoint gen %" PRIu64
		   " (after seq %" PRIu64 ", %zu bytes) in slot %u",
		   s->epoch + 1, s->ckpt_seq, s->img.len, other);
}

/*
 * On a volume that is a sparse regular file, a record written where the
 * file has no block yet makes the file system allocate one and write its
 * own metadata in the next fdatasync, every round.  Zero-filling the
 * journal a chunk ahead of the records makes that happen once per chunk.
 * Only bytes past everything this epoch wrote are zeroed (as a fresh
 * volume's are), so replay still ends where the records do.
 */
static int journal_prepare(struct djmfs__journal *j, uint64_t from,
			   uint64_t end)
{
	uint64_t jlen = j->vol->sb.journal_len, to;
	int err;

	if (!j->prefill || end <= j->prepared)
		return 0;
	if (from < j->prepared)
		from = j->prepared;
	to = end + PREP_CHUNK < jlen ? end + PREP_CHUNK : jlen;
	if (!j->zeros && !(j->zeros = calloc(1, PREP_CHUNK)))
		return 0; /* only slower */
	for (; from < to; from += PREP_CHUNK) {
		size_t n = to - from < PREP_CHUNK ? (size_t)(to - from)
						  : PREP_CHUNK;

		err = djmfs__pwrite_full(j->vol->fd, j->zeros, n,
					 j->vol->sb.journal_off + from);
		if (err == 0 && j->vol->sb.mj_off)
			err = djmfs__pwrite_full(j->vol->fd, j->zeros, n,
						 j->vol->sb.mj_off + from);
		if (err < 0)
			return err;
	}
	j->prepared = to;
	return 0;
}

/* Writes one batch taken from the queue, in order, and frees it. */
static void writer_round(struct djmfs__journal *j, struct jseg *s)
{
	struct pending pd = { 0 };
	struct jseg *next;
	int err;

	j->last_round_recs = 0;
	for (; s; s = next) {
		next = s->next;
		j->last_round_recs += s->nrec;
		if (s->recs.len > 0 && !writer_failed(j)) {
			uint64_t at = j->vol->sb.journal_off + s->off;

			err = journal_prepare(j, s->off, s->off + s->recs.len);
			if (err == 0)
				err = djmfs__pwrite_full(j->vol->fd, s->recs.p,
							 s->recs.len, at);
			/* Copy B: the same bytes at the same offset of the
			 * far area; the round's one fdatasync covers both. */
			if (err == 0 && j->vol->sb.mj_off)
				err = djmfs__pwrite_full(j->vol->fd, s->recs.p,
					s->recs.len,
					j->vol->sb.mj_off + s->off);
			if (err < 0)
				writer_fail(j, "pwrite", err);
			pd.nrec += s->nrec;
			pd.bytes += s->recs.len;
			pd.last_seq = s->last_seq;
		}
		if (s->has_ckpt) {
			batch_commit(j, &pd);
			ckpt_write(j, s);
		}
		seg_recycle(j, s);
	}
	batch_commit(j, &pd);
}

/*
 * Group commit with a window: when records arrive a few microseconds
 * apart, syncing as soon as one is queued makes nearly every record pay
 * for its own fdatasync.  Holding the next round until a window has
 * passed since the previous one started lets one sync cover every
 * record of the window.  Called and returns with the lock held.
 */
static void writer_window(struct djmfs__journal *j)
{
	uint64_t until = j->last_round_ns + j->window_ns;
	struct timespec ts = { (time_t)(until / 1000000000u),
			       (long)(until % 1000000000u) };

	/* A round of one record is a lone writer waiting on each sync:
	 * holding the next one back would only slow it down. */
	if (j->window_ns == 0 || j->stopping || j->last_round_recs < 2 ||
	    mono_ns() >= until)
		return;
	pthread_mutex_unlock(&j->lock);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
	pthread_mutex_lock(&j->lock);
}

static void *writer_main(void *arg)
{
	struct djmfs__journal *j = arg;
	struct jseg *batch;

	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->head && !j->stopping)
			pthread_cond_wait(&j->cond, &j->lock);
		writer_window(j);
		j->last_round_ns = mono_ns();
		batch = j->head;
		if (!batch)
			break; /* stopping, and everything is written */
		j->head = j->tail = NULL;
		pthread_mutex_unlock(&j->lock);
		writer_round(j, batch);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* The writer thread takes no signals: they belong to the loop thread. */
static int writer_spawn(struct djmfs__journal *j)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&j->thread, NULL, writer_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -err;
}

int djmfs__journal_start(struct djmfs__journal **out,
			 const struct djmfs__journal_opts *o)
{
	struct djmfs__journal *j;
	struct stat st;
	int err;

	*out = NULL;
	if (!o->vol || o->ckpt_slot > 1 || o->next_seq == 0 || o->epoch == 0)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->vol = o->vol;
	if (o->log)
		j->log = *o->log;
	j->notify_fd = o->notify_fd;
	j->window_ns = o->window_ns;
	j->prefill = fstat(o->vol->fd, &st) == 0 && S_ISREG(st.st_mode);
	j->seed = o->vol->seed;
	j->epoch = o->epoch;
	j->next_seq = o->next_seq;
	j->slot = o->ckpt_slot;
	j->durable = o->next_seq - 1;
	djmfs__buf_init(&j->enc);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	err = writer_spawn(j);
	if (err < 0) {
		djmfs__log(o->log, DJMFS_LOG_ERROR, "pthread_create(journal "
			   "writer): %s", strerror(-err));
		pthread_cond_destroy(&j->cond);
		pthread_mutex_destroy(&j->lock);
		free(j);
		return err;
	}
	*out = j;
	return 0;
}

/* Under lock: appends @n bytes to the open segment. */
static int queue_bytes(struct djmfs__journal *j, const uint8_t *p, size_t n,
		       uint64_t seq)
{
	struct jseg *s = seg_open(j);
	size_t before;

	if (!s)
		return -ENOMEM;
	before = s->recs.len;
	djmfs__put_bytes(&s->recs, p, n);
	if (s->recs.err) {
		/* Undo, so the segment stays usable for the next record. */
		s->recs.len = before;
		s->recs.err = 0;
		return -ENOMEM;
	}
	s->nrec++;
	s->last_seq = seq;
	return 0;
}

int djmfs__journal_failed(const struct djmfs__journal *j)
{
	return writer_failed(j);
}

int djmfs__journal_append(struct djmfs__journal *j, struct djmfs__jrec *r)
{
	int err;

	err = writer_failed(j);
	if (err)
		return err;
	if (r->seq != j->next_seq)
		return -EINVAL;
	r->epoch = j->epoch;
	/* Encode outside the lock: the writer may be taking a batch. */
	djmfs__buf_reset(&j->enc);
	err = djmfs__jrec_encode(&j->enc, j->seed, r);
	if (err < 0)
		return err;
	if (j->enc.len > j->vol->sb.journal_len - j->off)
		return -ENOSPC;
	pthread_mutex_lock(&j->lock);
	err = queue_bytes(j, j->enc.p, j->enc.len, r->seq);
	if (err == 0)
		pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (err < 0)
		return err;
	j->off += j->enc.len;
	j->next_seq++;
	return 0;
}

int djmfs__journal_want_checkpoint(const struct djmfs__journal *j)
{
	return j->off > j->vol->sb.journal_len / 4 * 3;
}

/* Takes @img whatever the outcome, so no caller path can leak it. */
int djmfs__journal_checkpoint(struct djmfs__journal *j,
			      struct djmfs__buf *img, uint64_t seq)
{
	struct djmfs__buf taken = *img;
	struct jseg *s;
	int err;

	djmfs__buf_init(img);
	err = writer_failed(j);
	if (err == 0 && taken.err)
		err = taken.err;
	if (err == 0 && seq + 1 != j->next_seq)
		err = -EINVAL;
	if (err == 0 && taken.len > djmfs__ckpt_room(j->vol))
		err = -ENOSPC;
	if (err < 0)
		goto fail;
	pthread_mutex_lock(&j->lock);
	s = seg_open(j);
	if (s) {
		s->has_ckpt = 1;
		s->img = taken;
		s->ckpt_seq = seq;
		pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&j->lock);
	if (!s) {
		err = -ENOMEM;
		goto fail;
	}
	j->epoch++;
	j->off = 0;
	return 0;
fail:
	djmfs__buf_free(&taken);
	return err;
}

uint64_t djmfs__journal_durable(const struct djmfs__journal *j)
{
	return __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE);
}

void djmfs__journal_get_stats(const struct djmfs__journal *j,
			      struct djmfs__journal_stats *out)
{
	const struct djmfs__journal_stats *s = &j->stats;

	out->records = __atomic_load_n(&s->records, __ATOMIC_RELAXED);
	out->batches = __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
	out->checkpoints = __atomic_load_n(&s->checkpoints, __ATOMIC_RELAXED);
	out->sync_ns = __atomic_load_n(&s->sync_ns, __ATOMIC_RELAXED);
}

void djmfs__journal_stop(struct djmfs__journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = 1;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	djmfs__buf_free(&j->enc);
	seg_free(j->spare);
	free(j->zeros);
	free(j);
}
