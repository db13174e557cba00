/*
 * Player sessions and the pump that keeps their input buffers filled, as
 * the paper on GLMD describes it: every session has an input buffer with
 * two thresholds, A (full) and B (empty), in percent of its size.  One
 * pump thread wakes every period and visits each session: a session
 * above A skips the period; otherwise it reads read_size bytes of its
 * recording's "data" object through libdjmfs (and so through libiosched)
 * with a deadline one period (or deadline_ns) after the issue.  When a
 * read completes, a session still below B reads again at once, so a
 * buffer that runs low catches up within the period instead of waiting
 * for the next one; so does a session whose player drains it below B
 * (the check runs on the way out of the buffer as well as on the way
 * in, so a player's start-up burst does not leave it empty until the
 * next period).  A session that has read everything its snapshot
 * holds fetches the newest snapshot, at most once per period, to follow
 * a live recording; it ends at the end of its range, or once the
 * recording is finished (no writer holds it) and fully read.
 *
 * Each session has at most one operation (a read or a snapshot sync) in
 * flight.  The input buffer is not a private copy of the stream but a
 * queue of segments (invariant 7): references to the interval cache's
 * blocks, shared by every session that holds them, and the session's own
 * read buffers.  Its fill level, which A and B judge, is the bytes it
 * queues, against buffer_size.  A read lands in an aligned buffer of its
 * own (the device writes the bytes in place, no copy on the way in) that
 * joins the queue when it completes; a drained one is kept for the next
 * read.  The player's sd_session_read copies out of the segments into
 * the HTTP library's buffer: the one copy a byte makes in streamd.
 *
 * With the pump's interval cache (sd_cache.c), a read first takes what
 * the cache holds of its bytes: a hit queues a reference to the block
 * (no copy; the block outlives its eviction while referenced) and
 * completes at once, without the scheduler; a miss goes to the disk as
 * above, and what it brings is put into the cache for the sessions
 * behind this one.  So a thousand players a few seconds behind one
 * recording hold the same few megabytes, not a megabyte each.  The
 * session's place among the consumers of its recording (its pos) is what
 * the cache keeps blocks for.  Only bytes below readable_end are ever
 * taken, so a hit never shows more than the session's own snapshot.
 *
 * Opens and closes off the caller's thread.  A session's djmfs_open and
 * djmfs_close are round trips to the DJMFS server (milliseconds under a
 * crowd); the HTTP side must not wait for them.  The pump so owns a few
 * opener threads: sd_session_open_async queues an open (bounded: a full
 * queue says -EAGAIN at once, for a 503); an opener sends its OPEN
 * without waiting (djmfs_open_async), and when the server's answer
 * comes back (on the library's thread, which only hands it over) an
 * opener finishes the session and answers through the caller's done
 * callback.  The server answers in passes, a batching window apart
 * under load, so an opener that waited for each answer would open one
 * player per window: with every OPEN sent at once, a crowd shares the
 * next pass.  With no connection up (or lost under the OPEN), the
 * blocking sd_session_open waits for the next and sends again.
 * sd_session_close does everything but freeing on its caller's thread
 * and leaves that to an opener; the file's CLOSE goes without waiting
 * either (djmfs_close_async), counted in p->closing.
 * sd_pump_stop_opens answers what is queued with -ESHUTDOWN and waits
 * out the opens in progress; sd_pump_free lets the openers free every
 * queued session, joins them, and waits for the CLOSEs' answers.
 *
 * Starting before the open.  Even off the caller's thread, a crowd's
 * OPENs queue at the server: 3,200 players arriving at once waited
 * 230 ms (p50) for theirs, most of their time to a first byte, while
 * the bytes most of them wanted (a few seconds behind live) sat in the
 * cache.  sd_session_start therefore starts a session at once when the
 * cache holds its first block, on what the caller's own snapshot (the
 * catalog's) says of the recording: its ino and "data" object, which
 * name the cache's blocks, and the size that snapshot published, which
 * bounds what the session may take (invariant 8 with img_disk 0).
 * With no handle it takes only cached bytes and never reads or syncs
 * (plan); its OPEN goes to the openers as any, and the answer attaches
 * the handle and image (session_attach), after which it is an opened
 * session.  An answer naming another file (the recording made again
 * under its name) or none is the session's error, seen by its player
 * once the buffer is drained; a player whose first block is not cached
 * waits for its open as before, so nothing is promised on bytes the
 * disk alone has.  An open (struct sd_open) goes:
 *   queued --sd_session_open_async----------------> on p->oq (or -EAGAIN,
 *          -ESHUTDOWN: never queued, done never runs)
 *   on p->oq --opener_main, once due--------------> running (opens_running)
 *   running --open_run: OPEN sent------------------> in flight
 *   running --open_run: no connection: blocking
 *          open, done(arg, err, s)----------------> freed
 *   in flight --opened (library thread)------------> on p->rq
 *   on p->rq --open_ready: done(arg, err, s)------> freed
 *   on p->oq --sd_pump_stop_opens: done(-ESHUTDOWN)-> freed
 * and one of a started session (sd_session_start: the session runs,
 * opening set; no done):
 *   queued --sd_session_start------------------------> on p->oq (or
 *          -EAGAIN, -ESHUTDOWN: the session closed, never queued)
 *   on p->oq --open_run: OPEN sent--------------------> in flight
 *   in flight --opened, then open_ready: attach-------> freed
 *   on p->oq, or running with no connection: blocking
 *          open, attach--------------------------------> freed
 *   on p->oq --sd_pump_stop_opens: attach(-ESHUTDOWN)-> freed
 * and a closing session: off the pump list (sd_session_close) --> on
 * p->cq --opener_main: session_free (CLOSE sent)--> freed; or, closed
 * while opening, its attach frees it.
 *
 * Locks and their invariants:
 *  1. Lock order: p->mu (session list, pending knobs, counts) before
 *     s->mu (one session's state).  p->lmu (the knobs in effect, the
 *     period count, closed sessions' sums, lateness) is a leaf: nothing
 *     is taken while it is held.  So are the cache's lock, taken under
 *     s->mu to take, put and move, p->omu (the openers' queues) and
 *     p->bmu (the pool of read buffers).
 *  2. No libdjmfs call is made while holding any of these locks
 *     (submissions, djmfs_open, djmfs_file_info and djmfs_close all run
 *     unlocked), so completions may take our locks freely and the
 *     library never waits on us.  Nor does a done callback run under
 *     one.
 *  3. s->io != IO_NONE means exactly one operation of the session is
 *     being submitted or is in flight; it is set under s->mu by plan()
 *     and cleared under s->mu by the completion (or by a failed
 *     submission).  Only the thread that set it submits, so submissions
 *     on one handle never race.
 *  4. wake() (optional: NULL means none) is called with none of our
 *     locks held, only after the session left the "waiting" state (set
 *     when sd_session_read returned 0, or by sd_session_wake_at_tick)
 *     under s->mu, so it runs at most once per empty episode or held
 *     period, on a library or the pump thread, never on
 *     the caller of sd_session_read or sd_session_close.  The HTTP side
 *     may therefore hold its own lock around sd_session_read while wake
 *     takes that same lock.
 *  5. A session stays allocated while s->io != IO_NONE or s->waking > 0.
 *     sd_session_close sets s->closing (after which plan() starts nothing
 *     and no new wake is decided), then waits on s->cv for both to reach
 *     zero (as sd_session_settle does, without closing): no wake runs
 *     after close returns, so the caller may free wake_arg.  Hence close
 *     must not be called while holding a lock that wake() takes.  What
 *     close leaves to an opener (djmfs_close, the frees) touches neither
 *     wake nor wake_arg.
 *  6. A session is on the pump list from open until after its last
 *     operation finished, and its counters move to the closed sums under
 *     p->mu, so sd_pump_stats never loses or double counts a session.
 *  7. The segments hold, in order, the "data" bytes [pos - len, pos):
 *     len is the sum of their counts and never passes cap (read_len
 *     bounds every read and hit by cap - len).  A read in flight owns
 *     s->io_buf, whose segment room was made when it was planned; only
 *     its completion queues it and moves len and pos, under s->mu, so
 *     the player never sees bytes still on their way.  A cache hit
 *     queues a block reference and moves len and pos together, as a
 *     completion does.  Segment bytes never change: a block's bytes
 *     below its valid length are fixed (sd_cache.c invariant 1), and a
 *     read buffer is the session's alone until drained.
 *  8. img_size >= img_disk, the size in the handle's image; it runs
 *     ahead only by a size this node's writer of the recording had
 *     published (sd_cache_published: the writer moves there once its
 *     publish completed), learnt while the session was live.  A disk
 *     read never goes past img_disk: a session that needs bytes beyond
 *     it that the cache does not hold syncs first.
 *  9. Every open sd_session_open_async queued gets exactly one done:
 *     from the opener that took it off p->oq or p->rq, or from
 *     sd_pump_stop_opens; none is queued once opens_stopped is set.
 *     opens_running counts those taken off p->oq and not answered (in
 *     flight or on p->rq included), and sd_pump_stop_opens returns only
 *     once it is zero.  A started session's open gets exactly one
 *     session_attach instead, from the same places, counted the same.
 * 10. A session started early (sd_session_start) has s->opening set
 *     from before its open is queued until its attach has settled;
 *     meanwhile s->f is NULL and plan() starts no read or sync on it.
 *     sd_session_close of such a session only sets close_at_open (both
 *     flags under p->omu), and the attach, which holds the session
 *     alive until it clears opening, then frees it: whichever of the
 *     two comes second frees, exactly once.
 *
 * A session's operation slot (s->io):
 *   NONE --plan(): bytes in the cache (hit)------> NONE, plan() goes on
 *          (cache_take: the block queued at once, no submission)
 *   NONE --plan(): bytes in the image fit--------> READ  (settle submits;
 *          plan runs at each period, after each completion, and when
 *          the player's sd_session_read leaves the buffer below B)
 *   NONE --plan(): image read, local writer ahead-> NONE, plan() goes on
 *          (learn_size: img_size from the cache, no RPC; with a local
 *          writer and nothing new, no sync either: the next visit looks)
 *   NONE --plan(): image read, writer, new period-> SYNC  (settle submits)
 *   NONE --plan(): bytes past img_disk uncached---> SYNC  (once a period)
 *   READ --read_done(): its buffer queued---------> NONE, then plan()
 *          (and into the cache, past the session's own pos)
 *   SYNC --sync_done(): new size and writer flag--> NONE, then plan()
 *   any  --failed submission or completion--------> NONE, s->err set
 * plan() sets s->done (terminal) once pos reaches the range end, or the
 * image is read and no writer holds the file.  A growing image's last
 * partial block counts as read (readable_end): it comes with the next
 * snapshot, in an aligned read.
 *
 * A player the HTTP side holds back on purpose (a paced response that
 * ran its burst ahead of real time) does not drain the buffer, so no
 * read wakes it; sd_session_wake_at_tick asks the pump to wake it at
 * its next period instead, so the hold costs one wake per period and no
 * timer of its own.  The buffer keeps filling up to A meanwhile: the A/B
 * rules govern the disk whatever the pace of the body.
 *
 * The periods run on CLOCK_MONOTONIC, a timed wait each.  A pump given a
 * clock of its own (sd_pump_opts.now: a test's fake one) has no timer:
 * its thread waits until sd_pump_clock_moved says the clock moved, makes
 * the visits then due, and answers the call, so a test counts periods
 * without sleeping.  Read deadlines stay on sd_now() either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "streamd-int.h"

#define SD_LATE_KEEP 4096 /* late reads kept for the p99 */
#define SD_POOL_MAX 1024  /* drained read buffers the pump keeps */

enum { IO_NONE = 0, IO_READ, IO_SYNC };

/* The knobs the pump and the completions work with. */
struct tune {
	double a_pct, b_pct;
	uint64_t period_ns;
	uint32_t read_size;
	uint64_t deadline_ns;
};

struct sd_pump {
	struct djmfs_client *c;
	struct sd_cache *cache;		/* borrowed, or NULL */
	struct sd_logger log;
	pthread_t th;
	int started;
	uint64_t (*now)(void);		/* a clock of its own, or NULL */
	uint64_t now0;			/* now() at the start */

	pthread_mutex_t mu;		/* invariant 1 */
	pthread_cond_t cv;		/* stop; the clock moved, and caught up */
	uint64_t moves, moves_seen;	/* sd_pump_clock_moved calls, and
					   those every due visit followed */
	struct sd_knobs knobs;		/* newest; buffer_size for new sessions */
	int knobs_dirty;
	int stop;
	struct sd_session *head;
	uint64_t n_sessions, sessions_total;

	/* The pump thread's own visit list (only it touches these). */
	struct visit *visit;
	size_t visit_cap;

	/* The openers (see "Opens and closes off the caller's thread"). */
	pthread_mutex_t omu;		/* leaf, like lmu */
	pthread_cond_t ocv;		/* work queued (CLOCK_MONOTONIC) */
	pthread_cond_t odone;		/* an open was answered */
	pthread_t opener[SD_OPENERS_MAX];
	unsigned n_openers;		/* started */
	struct sd_open *oq_head, *oq_tail; /* opens queued, oldest first */
	size_t oq_len, oq_max;
	unsigned opens_running;		/* taken off oq, not answered yet */
	struct sd_open *rq;		/* sent opens the server answered */
	unsigned closing;		/* CLOSEs sent, not answered yet */
	int opens_stopped;		/* sd_pump_stop_opens: no new open */
	int openers_stop;		/* sd_pump_free: finish closes, exit */
	struct sd_session *cq;		/* sessions whose file is to close */
	uint64_t open_delay_ns;		/* testing only (sd_pump_opts) */

	pthread_mutex_t bmu;		/* leaf: the pool */
	uint8_t *pool;			/* drained read buffers, linked
					   through their first bytes */
	size_t pool_n, pool_size;

	pthread_mutex_t lmu;		/* leaf */
	struct tune tune;		/* in effect */
	uint64_t tick;			/* periods so far */
	struct sd_session_stats closed;
	uint64_t late[SD_LATE_KEEP];
	size_t late_n, late_pos;
	uint64_t late_max;
};

struct sd_session {
	struct sd_pump *p;
	struct sd_session *prev, *next; /* pump list, under p->mu */
	struct djmfs_file *f;
	uint32_t data_id;
	uint64_t ino;			/* with data_id: the cache's name */
	struct sd_cache_cons *cons;	/* in p->cache at pos, or NULL */
	void (*wake)(void *arg);
	void *wake_arg;
	char name[SD_NAME_MAX + 1];

	pthread_mutex_t mu;
	pthread_cond_t cv;		/* io and waking reach zero */
	int settling;			/* sd_session_settle callers */
	struct seg *seg;		/* the buffer: invariant 7 */
	size_t nseg, seg_cap, seg_head;	/* nseg segments from seg_head */
	size_t cap, len;		/* buffer_size; bytes buffered */
	uint8_t *io_buf;		/* the read in flight lands here */
	size_t io_buf_size;
	uint8_t *spare;			/* a drained read buffer, for reuse */
	size_t spare_size;
	size_t own_mem;			/* read buffers allocated, all sizes */
	uint64_t pos;			/* next "data" byte to read */
	uint64_t end;			/* range end or SD_END_LIVE */
	uint64_t img_size;		/* "data" size the session may read:
					   the handle's image, or more that
					   the local writer published
					   (invariant 8) */
	uint64_t img_disk;		/* "data" size in the handle's image */
	int live;			/* the image shows a writer */
	int grew;			/* the last sync found it longer */
	int io;				/* IO_*: invariant 3 */
	uint64_t io_deadline;
	uint64_t sync_tick;		/* period of the last sync */
	int done;			/* no more bytes will come */
	int err;			/* first failure, or 0 */
	int started;			/* a read completed */
	int owed;			/* empty episode not judged yet */
	uint64_t empty_since;		/* when it began (sd_now) */
	int waiting;			/* read returned 0, no wake yet */
	int empty;			/* in an empty episode (counted once) */
	int waking;			/* wake calls in progress */
	int tick_wake;			/* wake at the next period (held) */
	int closing;
	/* Started before its OPEN was answered (sd_session_start): f stays
	 * NULL until the opener attaches the answer, under s->mu.  Both
	 * flags under p->omu: whoever comes second of the answer and
	 * sd_session_close hands the session to the closes (invariant 10). */
	int opening;
	int close_at_open;		/* closed while opening */
	struct sd_session *cq_next;	/* p->cq, under p->omu */
	struct sd_session_stats st;
};

/*
 * A piece of the input buffer: bytes of a cache block the session holds
 * a reference to (shared with every other holder), or of a read buffer
 * of the session's own.
 */
struct seg {
	struct sd_cache_block *blk;	/* or NULL: own is ours */
	uint8_t *own;
	size_t own_size;
	const uint8_t *p;		/* the next byte */
	size_t n;			/* bytes left */
};

/* An open queued for the openers. */
struct sd_open {
	struct sd_open *next;
	struct sd_session_opts o;
	char name[SD_NAME_MAX + 1];
	sd_session_open_fn done;	/* NULL: a started session's open
					   (sd_session_start), attached instead */
	void *arg;
	uint64_t due;			/* sd_now() it may start at */
	struct sd_session *s;		/* sent: its session, file to come;
					   or, started, the session already
					   running (sd_session_start) */
	struct djmfs_file *f;		/* answered: the file, or NULL */
	int err;			/* answered: djmfs_open_async's */
};

/* What a session does next, decided under s->mu, done without it. */
struct act {
	int io;
	uint64_t off;
	size_t len;
	uint64_t deadline;
	uint8_t *buf;
	int wake;
};

struct visit {
	struct sd_session *s;
	struct act a;
};

#define plog sd__log

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void tune_from(struct tune *t, const struct sd_knobs *k)
{
	t->a_pct = k->a_pct;
	t->b_pct = k->b_pct;
	t->period_ns = k->period_ns;
	t->read_size = k->read_size;
	t->deadline_ns = k->deadline_ns;
}

static void tune_get(struct sd_pump *p, struct tune *t, uint64_t *tick)
{
	pthread_mutex_lock(&p->lmu);
	*t = p->tune;
	*tick = p->tick;
	pthread_mutex_unlock(&p->lmu);
}

/* The fields the pump itself relies on; the rest is sd_knobs_check's. */
static int knobs_ok(const struct sd_knobs *k, const struct sd_logger *log)
{
	if (k && k->period_ns > 0 && k->read_size > 0 && k->buffer_size > 0)
		return 0;
	plog(log, SD_LOG_ERROR, "sd_pump: knobs: period, read_size and "
	     "buffer_size must be positive: %s", strerror(EINVAL));
	return -EINVAL;
}

static void note_late(struct sd_pump *p, uint64_t late)
{
	pthread_mutex_lock(&p->lmu);
	p->late[p->late_pos] = late;
	p->late_pos = (p->late_pos + 1) % SD_LATE_KEEP;
	if (p->late_n < SD_LATE_KEEP)
		p->late_n++;
	if (late > p->late_max)
		p->late_max = late;
	pthread_mutex_unlock(&p->lmu);
}

static void stats_add(struct sd_session_stats *sum,
		      const struct sd_session_stats *s)
{
	sum->reads += s->reads;
	sum->misses += s->misses;
	sum->underflows += s->underflows;
	sum->bytes += s->bytes;
	sum->hits += s->hits;
	sum->hit_bytes += s->hit_bytes;
	sum->disk_bytes += s->disk_bytes;
	sum->syncs += s->syncs;
}

/* ------------------------------------------------------------------ */
/* The buffer                                                          */
/* ------------------------------------------------------------------ */

/*
 * The pump's pool of drained read buffers, shared by its sessions.  Read
 * buffers are small (read_size) and come and go with every read on every
 * thread that plans one; left to malloc, each thread's arena would keep
 * its own free ones and the daemon's memory would creep up with the
 * sessions' churn.  The pool keeps up to SD_POOL_MAX of the current size.
 */
static uint8_t *pool_get(struct sd_pump *p, size_t size)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&p->bmu);
	if (p->pool && p->pool_size == size) {
		b = p->pool;
		memcpy(&p->pool, b, sizeof(p->pool));
		p->pool_n--;
	}
	pthread_mutex_unlock(&p->bmu);
	return b;
}

static void pool_put(struct sd_pump *p, uint8_t *b, size_t size)
{
	if (!b)
		return;
	pthread_mutex_lock(&p->bmu);
	if (!p->pool)
		p->pool_size = size;
	if (size == p->pool_size && p->pool_n < SD_POOL_MAX) {
		memcpy(b, &p->pool, sizeof(p->pool));
		p->pool = b;
		p->pool_n++;
		b = NULL;
	}
	pthread_mutex_unlock(&p->bmu);
	free(b);
}

/* Under s->mu: keeps a drained read buffer for the next read, or gives
 * it to the pool. */
static void buf_drop(struct sd_session *s, uint8_t *b, size_t size)
{
	if (!s->spare) {
		s->spare = b;
		s->spare_size = size;
	} else {
		pool_put(s->p, b, size);
		s->own_mem -= size;
	}
}

/* Under s->mu: an aligned buffer of *@size >= @len bytes (at least
 * @want: a whole read, so it serves the next one too), or NULL. */
static uint8_t *buf_get(struct sd_session *s, size_t len, size_t want,
			size_t *size)
{
	uint8_t *b = NULL;

	if (s->spare && s->spare_size >= len) {
		b = s->spare;
		*size = s->spare_size;
		s->spare = NULL;
		return b;
	}
	*size = len > want ? len : want;
	*size = (*size + DJMFS_IO_ALIGN - 1) / DJMFS_IO_ALIGN * DJMFS_IO_ALIGN;
	b = pool_get(s->p, *size);
	if (!b && posix_memalign((void **)&b, DJMFS_IO_ALIGN, *size))
		return NULL;
	s->own_mem += *size;
	return b;
}

/* Under s->mu: room for one more segment (0), or -ENOMEM. */
static int seg_room(struct sd_session *s)
{
	struct seg *v;
	size_t cap;

	if (s->nseg < s->seg_cap)
		return 0;
	cap = s->seg_cap ? s->seg_cap * 2 : 16;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->nseg; i++)
		v[i] = s->seg[(s->seg_head + i) % s->seg_cap];
	free(s->seg);
	s->seg = v;
	s->seg_cap = cap;
	s->seg_head = 0;
	return 0;
}

/* Under s->mu, with seg_room done: appends bytes to the buffer. */
static void seg_push(struct sd_session *s, struct sd_cache_block *blk,
		     uint8_t *own, size_t own_size, const uint8_t *p, size_t n)
{
	s->seg[(s->seg_head + s->nseg) % s->seg_cap] =
		(struct seg){ blk, own, own_size, p, n };
	s->nseg++;
	s->len += n;
}

/* Under s->mu: lets the oldest segment go. */
static void seg_pop(struct sd_session *s)
{
	struct seg *g = &s->seg[s->seg_head];

	if (g->blk)
		sd_cache_block_put(s->p->cache, g->blk);
	else
		buf_drop(s, g->own, g->own_size);
	s->seg_head = (s->seg_head + 1) % s->seg_cap;
	s->nseg--;
}

/* Under s->mu: copies up to @max buffered bytes out (the only copy a
 * byte makes between the cache, or the disk, and the socket). */
static size_t ring_get(struct sd_session *s, uint8_t *dst, size_t max)
{
	size_t done = 0;

	while (done < max && s->nseg > 0) {
		struct seg *g = &s->seg[s->seg_head];
		size_t n = min_u64(max - done, g->n);

		memcpy(dst + done, g->p, n);
		g->p += n;
		g->n -= n;
		done += n;
		if (g->n == 0)
			seg_pop(s);
	}
	s->len -= done;
	return done;
}

/* ------------------------------------------------------------------ */
/* Deciding and issuing                                                */
/* ------------------------------------------------------------------ */

/* Under s->mu: leaves "waiting" and reserves a wake (invariant 4). */
static int take_waiting(struct sd_session *s)
{
	int was = s->waiting;

	s->waiting = 0;
	if (!was || s->closing || !s->wake)
		return 0;
	s->waking++;
	return 1;
}

/*
 * Under s->mu: where the bytes the session may read now end.  A growing
 * image mostly ends mid-block; that last partial block waits for the
 * next snapshot to complete it, so the session's reads stay aligned
 * instead of costing one short read for the odd bytes and another to
 * realign after them.  The wait is at most a period and a block of the
 * stream (16 ms at 2 Mbit/s).  The end of a range, of a finished
 * recording, or of an image the last sync found no longer (a writer
 * that paused) is read at once.
 */
static uint64_t readable_end(const struct sd_session *s)
{
	uint64_t whole = s->img_size - s->img_size % DJMFS_IO_ALIGN;

	if (!s->live || !s->grew || s->end <= s->img_size)
		return min_u64(s->end, s->img_size);
	return whole > s->pos ? whole : s->pos;
}

/*
 * Under s->mu: a read of the next bytes, or 0 when none fits now: it
 * fits in the room left below cap (invariant 7).  Reads keep to
 * DJMFS_CSUM_BLOCK boundaries: libdjmfs checks a whole checksum block
 * at a time, so a read that covers only part of one is widened to the
 * whole block in a bounce buffer of the library's and copied, which
 * doubles the device bytes of every 64 KiB read that straddles two
 * blocks.  An unaligned pos (a start mid-block, the end of an earlier
 * image) therefore reads only up to the next checksum block, and every
 * later read is whole blocks; a read stops at a block boundary unless
 * that would leave nothing, and then at a DJMFS_IO_ALIGN one, so the few
 * unaligned bytes at the end of what is readable go in a read of their
 * own.  A growing image's last partial block is still read as soon as it
 * is published (readable_end): a player at the live edge must not wait
 * for a block to fill.
 */
static size_t read_len(struct sd_session *s, const struct tune *t)
{
	const uint64_t ck = DJMFS_CSUM_BLOCK, blk = DJMFS_IO_ALIGN;
	uint64_t limit = readable_end(s), head_gap, end;
	size_t n;

	if (s->pos >= limit)
		return 0;
	n = min_u64(min_u64(t->read_size, s->cap - s->len), limit - s->pos);
	head_gap = s->pos % ck;
	if (head_gap && n > ck - head_gap)
		n = (size_t)(ck - head_gap);
	if (s->pos % blk)
		return n; /* through the bounce anyway: realign */
	end = s->pos + n;
	if (end % ck && end - end % ck > s->pos)
		n = (size_t)(end - end % ck - s->pos);
	else if (end % blk && end - end % blk > s->pos)
		n = (size_t)(end - end % blk - s->pos);
	return n;
}

/*
 * Under s->mu: an empty episode becomes an underflow once the player has
 * waited longer than a read's deadline (one period by default) for bytes
 * the recording already held.  A player that drains a fresh read into
 * its socket in a burst and finds the buffer empty for the millisecond
 * the next read takes has not underflowed; one the disk keeps waiting
 * past a deadline has.  Counted once per episode.
 */
static void judge(struct sd_session *s, const struct tune *t, uint64_t now)
{
	uint64_t limit = t->deadline_ns ? t->deadline_ns : t->period_ns;

	/* @now may be sampled before the lock was taken, so an episode the
	 * player began meanwhile can start after it: not a wait at all. */
	if (s->owed && now > s->empty_since && now - s->empty_since > limit) {
		s->st.underflows++;
		s->owed = 0;
		plog(&s->p->log, SD_LOG_DEBUG, "sd_session(%s): underflow: "
		     "empty %.3f s at %llu of %llu, %s in flight, %llu reads",
		     s->name, (double)(now - s->empty_since) / 1e9,
		     (unsigned long long)s->pos,
		     (unsigned long long)s->img_size,
		     s->io == IO_READ ? "a read" : s->io == IO_NONE ? "nothing"
		     : "a sync", (unsigned long long)s->st.reads);
	}
}

/*
 * Under s->mu: the @n bytes a read would fetch next, as far as the cache
 * holds them (from one block), queued as a reference to that block
 * (invariant 7).  They lie below readable_end, so within the session's
 * own snapshot (read_len bounds @n), and the cache holds only published
 * bytes, which never change: the same bytes the read would bring.  A hit
 * completes at once, as a read does (invariant 7 kept: pos and len move
 * by the same count), and is counted apart from reads; 0 is a miss.
 */
static size_t cache_take(struct sd_session *s, const struct tune *t,
			 size_t n, struct act *a)
{
	struct sd_cache_block *b;
	const uint8_t *p;
	size_t got;

	if (!s->cons || seg_room(s) < 0)
		return 0;
	b = sd_cache_take(s->cons, s->pos, n, &p, &got);
	if (!b)
		return 0;
	seg_push(s, b, NULL, 0, p, got);
	s->pos += got;
	sd_cache_move(s->cons, s->pos);
	s->started = 1;
	judge(s, t, sd_now());
	s->owed = 0;
	s->st.hits++;
	s->st.hit_bytes += got;
	a->wake |= take_waiting(s);
	return got;
}

/*
 * Under s->mu: a live recording whose writer is on this node publishes
 * through the cache too (sd_cache_published): a session that has read
 * all it knows takes the writer's newest published end from there
 * instead of asking the DJMFS server for a snapshot each period, which
 * at thousands of sessions near live is the server's whole load.  1 when
 * it learnt a larger size, -1 when the writer has published nothing new
 * (the next period looks again; no sync), 0 when no writer of it is
 * here (or the session saw none): ask the server.
 */
static int learn_size(struct sd_session *s)
{
	uint64_t end;

	if (!s->live || !sd_cache_published(s->cons, &end))
		return 0;
	if (end <= s->img_size)
		return -1;
	s->img_size = end;
	s->grew = 1;
	return 1;
}

/*
 * Under s->mu: what the session does now.  @periodic: a period's visit
 * (skip above A) rather than a completion (go on only below B).  Marks
 * s->io for the operation it picks; the caller submits it unlocked.
 */
static void plan(struct sd_session *s, const struct tune *t, uint64_t tick,
		 int periodic, struct act *a)
{
	double fill;
	int learned;
	size_t n;

again:
	fill = (double)s->len * 100.0 / (double)s->cap;
	if (s->closing || s->err || s->done || s->io != IO_NONE)
		return;
	if (s->pos >= s->end || (s->pos >= s->img_size && !s->live)) {
		s->done = 1;
		a->wake |= take_waiting(s);
		return;
	}
	if (periodic ? fill > t->a_pct : fill >= t->b_pct)
		return;
	n = read_len(s, t);
	if (n > 0 && cache_take(s, t, n, a) > 0) {
		/* Done at once: go on as after a completed read. */
		periodic = 0;
		goto again;
	}
	if (n > 0 && s->pos >= s->img_disk) {
		/* Published (invariant 8), yet not in the cache: the disk
		 * has it, once the handle's image does (a sync a period at
		 * most, as at the live edge).  A session still opening has
		 * no handle: its OPEN's answer brings the image. */
		if (s->f && s->sync_tick != tick) {
			s->sync_tick = tick;
			s->io = a->io = IO_SYNC;
		}
	} else if (n > 0) {
		size_t len = (size_t)min_u64(n, s->img_disk - s->pos), size;
		uint8_t *buf = NULL;

		/* Out of memory: the next visit tries again. */
		if (seg_room(s) < 0 ||
		    !(buf = buf_get(s, len, t->read_size, &size)))
			return;
		s->io_buf = buf;
		s->io_buf_size = size;
		s->io = a->io = IO_READ;
		a->off = s->pos;
		a->len = len;
		a->buf = buf;
		a->deadline = sd_now() +
			      (t->deadline_ns ? t->deadline_ns : t->period_ns);
		s->io_deadline = a->deadline;
	} else if (s->pos >= readable_end(s) && (learned = learn_size(s))) {
		if (learned > 0)
			goto again;
	} else if (s->pos >= readable_end(s) && s->f &&
		   s->sync_tick != tick) {
		s->sync_tick = tick;
		s->io = a->io = IO_SYNC;
	}
}

static void read_done(void *user, ssize_t res);
static void sync_done(void *user, ssize_t res);

static int submit(struct sd_session *s, const struct act *a)
{
	if (a->io == IO_READ)
		return djmfs_pread_obj_async(s->f, s->data_id, a->buf, a->len,
					     a->off, a->deadline, read_done, s);
	return djmfs_sync_snap_async(s->f, sync_done, s);
}

/*
 * No locks held: submits what plan() chose and calls wake.  After a
 * successful submission with no wake, @s is not touched again (it may be
 * freed as soon as the operation completes: invariant 5).
 */
static void settle(struct sd_session *s, struct act *a)
{
	int err = a->io != IO_NONE ? submit(s, a) : 0;

	if (err < 0) {
		pthread_mutex_lock(&s->mu);
		plog(&s->p->log, SD_LOG_ERROR, "sd_session(%s): %s: %s",
		     s->name, a->io == IO_READ ? "djmfs_pread_obj_async"
					       : "djmfs_sync_snap_async",
		     strerror(-err));
		s->io = IO_NONE;
		if (s->io_buf) {
			buf_drop(s, s->io_buf, s->io_buf_size);
			s->io_buf = NULL;
		}
		if (!s->err)
			s->err = err;
		if (!a->wake)
			a->wake = take_waiting(s);
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	if (!a->wake)
		return;
	s->wake(s->wake_arg);
	pthread_mutex_lock(&s->mu);
	s->waking--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Under s->mu: records a failure of the operation that just completed. */
static void fail(struct sd_session *s, const char *call, int err,
		 struct act *a)
{
	plog(&s->p->log, SD_LOG_ERROR, "sd_session(%s): %s: %s", s->name,
	     call, strerror(-err));
	if (!s->err)
		s->err = err;
	a->wake |= take_waiting(s);
}

static void read_done(void *user, ssize_t res)
{
	struct sd_session *s = user;
	struct sd_pump *p = s->p;
	uint64_t now = sd_now(), tick, late = 0;
	struct act a = { 0 };
	struct tune t;

	tune_get(p, &t, &tick);
	pthread_mutex_lock(&s->mu);
	s->io = IO_NONE;
	if (res > 0) {
		const uint8_t *got = s->io_buf;

		/* Its segment's room was made when the read was planned. */
		seg_push(s, NULL, s->io_buf, s->io_buf_size, got, (size_t)res);
		s->io_buf = NULL;
		s->pos += (uint64_t)res;
		s->st.disk_bytes += (uint64_t)res;
		/* Past them first, so they rank for the sessions behind. */
		sd_cache_move(s->cons, s->pos);
		if (s->cons)
			sd_cache_put(p->cache, s->ino, s->data_id,
				     s->pos - (uint64_t)res, got, (size_t)res);
		s->started = 1;
		judge(s, &t, now);
		s->owed = 0; /* the wait is over */
		s->st.reads++;
		if (now > s->io_deadline) {
			late = now - s->io_deadline;
			s->st.misses++;
		}
		a.wake = take_waiting(s);
	} else {
		buf_drop(s, s->io_buf, s->io_buf_size);
		s->io_buf = NULL;
		fail(s, "djmfs_pread_obj_async", res < 0 ? (int)res : -EIO,
		     &a);
	}
	plan(s, &t, tick, 0, &a);
	if (s->closing || s->settling)
		pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (late)
		note_late(p, late);
	settle(s, &a);
}

/* Object @id's size in image @fi, or -ENOENT. */
static int size_in(const struct djmfs_file_info *fi, uint32_t id,
		   uint64_t *size)
{
	for (uint32_t i = 0; i < fi->n_objs && i < DJMFS_MAX_OBJS; i++) {
		if (fi->objs[i].id == id) {
			*size = fi->objs[i].size;
			return 0;
		}
	}
	return -ENOENT;
}

/* "data"'s size in the handle's image and whether a writer holds it. */
static int image_of(struct sd_session *s, uint64_t *size, int *live)
{
	struct djmfs_file_info fi;
	int err = djmfs_file_info(s->f, &fi);

	if (err < 0)
		return err;
	*live = !!(fi.flags & DJMFS_FILE_WRITE_LOCKED);
	s->ino = fi.ino;
	return size_in(&fi, s->data_id, size);
}

static void sync_done(void *user, ssize_t res)
{
	struct sd_session *s = user;
	uint64_t size = 0, tick;
	struct act a = { 0 };
	struct tune t;
	int live = 0, err = res < 0 ? (int)res : image_of(s, &size, &live);

	tune_get(s->p, &t, &tick);
	pthread_mutex_lock(&s->mu);
	s->io = IO_NONE;
	s->st.syncs++;
	if (err < 0) {
		fail(s, res < 0 ? "djmfs_sync_snap_async" : "djmfs_file_info",
		     err, &a);
	} else {
		s->grew = size > s->img_size;
		if (s->grew)
			s->img_size = size;
		s->img_disk = size;
		s->live = live;
	}
	/* The sync belongs to a period's visit: go on with it. */
	plan(s, &t, tick, 1, &a);
	if (s->closing || s->settling)
		pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	settle(s, &a);
}

/* ------------------------------------------------------------------ */
/* The pump thread                                                     */
/* ------------------------------------------------------------------ */

static void ts_add(struct timespec *ts, uint64_t ns)
{
	uint64_t t = (uint64_t)ts->tv_nsec + ns % SD_NS;

	ts->tv_sec += (time_t)(ns / SD_NS + t / SD_NS);
	ts->tv_nsec = (long)(t % SD_NS);
}

/* Under p->mu (pump thread): room to visit every session this period. */
static size_t visit_room(struct sd_pump *p)
{
	struct visit *v;

	if (p->visit_cap >= p->n_sessions)
		return p->visit_cap;
	v = realloc(p->visit, p->n_sessions * sizeof(*v));
	if (!v) {
		plog(&p->log, SD_LOG_ERROR, "sd_pump: visit list of %llu "
		     "sessions: %s", (unsigned long long)p->n_sessions,
		     strerror(ENOMEM));
		return p->visit_cap;
	}
	p->visit = v;
	p->visit_cap = p->n_sessions;
	return p->visit_cap;
}

/* Under p->mu, which it drops while submitting: one period's visit. */
static void pump_tick(struct sd_pump *p)
{
	size_t room = visit_room(p), n = 0;
	uint64_t tick;
	struct tune t;

	pthread_mutex_lock(&p->lmu);
	if (p->knobs_dirty)
		tune_from(&p->tune, &p->knobs);
	p->knobs_dirty = 0;
	tick = ++p->tick;
	t = p->tune;
	pthread_mutex_unlock(&p->lmu);
	for (struct sd_session *s = p->head; s && n < room; s = s->next) {
		struct act a = { 0 };

		pthread_mutex_lock(&s->mu);
		judge(s, &t, sd_now());
		if (s->tick_wake) {
			s->tick_wake = 0;
			a.wake = take_waiting(s);
		}
		plan(s, &t, tick, 1, &a);
		pthread_mutex_unlock(&s->mu);
		if (a.io != IO_NONE || a.wake)
			p->visit[n++] = (struct visit){ s, a };
	}
	/* The marks plan() left keep every visited session alive. */
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < n; i++)
		settle(p->visit[i].s, &p->visit[i].a);
	pthread_mutex_lock(&p->mu);
}

static uint64_t period_now(struct sd_pump *p)
{
	uint64_t ns;

	pthread_mutex_lock(&p->lmu);
	ns = p->knobs_dirty ? p->knobs.period_ns : p->tune.period_ns;
	pthread_mutex_unlock(&p->lmu);
	return ns;
}

/* Under p->mu: the periods on CLOCK_MONOTONIC (sd_now's), a timed wait
 * each. */
static void pump_run_timed(struct sd_pump *p)
{
	struct timespec next, now;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!p->stop) {
		uint64_t period = period_now(p);

		ts_add(&next, period);
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* Fell behind by a whole period: start counting afresh. */
		if ((now.tv_sec - next.tv_sec) * SD_NS +
			    (now.tv_nsec - next.tv_nsec) > (int64_t)period)
			next = now;
		while (!p->stop &&
		       pthread_cond_timedwait(&p->cv, &p->mu, &next) == 0)
			;
		if (!p->stop)
			pump_tick(p);
	}
}

/* Under p->mu: the periods on the pump's own clock, which moves only
 * when sd_pump_clock_moved says so: each such call is answered once
 * every visit due by then has been made. */
static void pump_run_clocked(struct sd_pump *p)
{
	uint64_t next = p->now0;

	while (!p->stop) {
		uint64_t period = period_now(p), moves;

		next += period;
		/* Fell behind by a whole period: start counting afresh. */
		if (p->now() > next + period)
			next = p->now();
		for (;;) {
			moves = p->moves;
			if (p->stop || p->now() >= next)
				break;
			p->moves_seen = moves;
			pthread_cond_broadcast(&p->cv);
			pthread_cond_wait(&p->cv, &p->mu);
		}
		if (!p->stop)
			pump_tick(p);
	}
}

static void *pump_main(void *arg)
{
	struct sd_pump *p = arg;

	pthread_setname_np(pthread_self(), "sd-pump");
	pthread_mutex_lock(&p->mu);
	if (p->now)
		pump_run_clocked(p);
	else
		pump_run_timed(p);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The pump                                                            */
/* ------------------------------------------------------------------ */

static void *opener_main(void *arg);

static int pump_sync_init(struct sd_pump *p)
{
	pthread_condattr_t ca;
	int err;

	err = pthread_condattr_init(&ca);
	if (err)
		return -err;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&p->cv, &ca);
	if (!err) {
		err = pthread_cond_init(&p->ocv, &ca);
		if (err)
			pthread_cond_destroy(&p->cv);
	}
	pthread_condattr_destroy(&ca);
	if (err)
		return -err;
	pthread_cond_init(&p->odone, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->lmu, NULL);
	pthread_mutex_init(&p->omu, NULL);
	pthread_mutex_init(&p->bmu, NULL);
	return 0;
}

static void pump_sync_destroy(struct sd_pump *p)
{
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->ocv);
	pthread_cond_destroy(&p->odone);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->lmu);
	pthread_mutex_destroy(&p->omu);
	pthread_mutex_destroy(&p->bmu);
}

/* Starts @n openers; 0, or -errno with those started left running (the
 * caller frees the pump). */
static int openers_start(struct sd_pump *p, unsigned n)
{
	int err;

	for (; p->n_openers < n; p->n_openers++) {
		err = -pthread_create(&p->opener[p->n_openers], NULL,
				      opener_main, p);
		if (err < 0) {
			plog(&p->log, SD_LOG_ERROR, "sd_pump_new: "
			     "pthread_create(opener): %s", strerror(-err));
			return err;
		}
	}
	return 0;
}

int sd_pump_new(struct sd_pump **out, struct djmfs_client *c,
		const struct sd_knobs *k, const struct sd_logger *log,
		const struct sd_pump_opts *o)
{
	struct sd_logger nolog = { 0 };
	struct sd_pump *p = NULL;
	int err;

	if (!out || !c)
		return -EINVAL;
	err = knobs_ok(k, log);
	if (err < 0)
		return err;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->c = c;
	p->cache = o ? o->cache : NULL;
	p->log = log ? *log : nolog;
	p->knobs = *k;
	tune_from(&p->tune, k);
	p->oq_max = o && o->open_queue ? o->open_queue : SD_OPEN_QUEUE;
	p->open_delay_ns = o ? o->open_delay_ns : 0;
	if (o && o->now) {
		p->now = o->now;
		p->now0 = o->now(); /* before any move the caller makes */
	}
	err = pump_sync_init(p);
	if (err < 0)
		goto fail;
	err = -pthread_create(&p->th, NULL, pump_main, p);
	if (err < 0) {
		plog(&p->log, SD_LOG_ERROR, "sd_pump_new: pthread_create: "
		     "%s", strerror(-err));
		pump_sync_destroy(p);
		goto fail;
	}
	p->started = 1;
	err = openers_start(p, o && o->openers ? (o->openers < SD_OPENERS_MAX ?
				 o->openers : SD_OPENERS_MAX) : SD_OPENERS);
	if (err < 0) {
		sd_pump_free(p);
		return err;
	}
	*out = p;
	return 0;
fail:
	free(p);
	return err;
}

void sd_pump_free(struct sd_pump *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	if (p->head)
		plog(&p->log, SD_LOG_ERROR, "sd_pump_free: %llu sessions "
		     "still open", (unsigned long long)p->n_sessions);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->started)
		pthread_join(p->th, NULL);
	sd_pump_stop_opens(p);
	pthread_mutex_lock(&p->omu);
	p->openers_stop = 1;
	pthread_cond_broadcast(&p->ocv);
	pthread_mutex_unlock(&p->omu);
	for (unsigned i = 0; i < p->n_openers; i++)
		pthread_join(p->opener[i], NULL);
	/* The CLOSEs sent are answered (or failed, should the connection
	 * go) by the library, whose callback takes omu. */
	pthread_mutex_lock(&p->omu);
	while (p->closing > 0)
		pthread_cond_wait(&p->odone, &p->omu);
	pthread_mutex_unlock(&p->omu);
	pump_sync_destroy(p);
	while (p->pool) {
		uint8_t *b = p->pool;

		memcpy(&p->pool, b, sizeof(p->pool));
		free(b);
	}
	free(p->visit);
	free(p);
}

void sd_pump_clock_moved(struct sd_pump *p)
{
	uint64_t target;

	if (!p || !p->now)
		return;
	pthread_mutex_lock(&p->mu);
	target = ++p->moves;
	pthread_cond_broadcast(&p->cv);
	while (!p->stop && p->moves_seen < target)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void sd_pump_set_knobs(struct sd_pump *p, const struct sd_knobs *k)
{
	if (!p || knobs_ok(k, &p->log) < 0)
		return;
	pthread_mutex_lock(&p->mu);
	pthread_mutex_lock(&p->lmu);
	p->knobs = *k;
	p->knobs_dirty = 1;
	pthread_mutex_unlock(&p->lmu);
	pthread_mutex_unlock(&p->mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Under p->lmu. */
static uint64_t late_p99(const struct sd_pump *p)
{
	uint64_t v[SD_LATE_KEEP];
	size_t k;

	if (!p->late_n)
		return 0;
	memcpy(v, p->late, p->late_n * sizeof(v[0]));
	qsort(v, p->late_n, sizeof(v[0]), cmp_u64);
	k = (p->late_n * 99 + 99) / 100; /* ceil(0.99 n) */
	return v[k - 1];
}

void sd_pump_stats(struct sd_pump *p, struct sd_pump_stats *out)
{
	if (!p || !out)
		return;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->mu);
	out->sessions = p->n_sessions;
	out->sessions_total = p->sessions_total;
	for (struct sd_session *s = p->head; s; s = s->next) {
		pthread_mutex_lock(&s->mu);
		stats_add(&out->sum, &s->st);
		out->buffered_bytes += s->len;
		out->private_bytes += s->own_mem;
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_lock(&p->lmu);
	stats_add(&out->sum, &p->closed);
	out->lateness_max_ns = p->late_max;
	out->lateness_p99_ns = late_p99(p);
	pthread_mutex_unlock(&p->lmu);
	pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/* Says why an open failed. */
static void open_failed(struct sd_session *s, int err)
{
	plog(&s->p->log, err == -ENOENT ? SD_LOG_DEBUG : SD_LOG_ERROR,
	     "sd_session_open(%s): djmfs_open: %s", s->name, strerror(-err));
}

static int session_learn(struct sd_session *s);

/* Opens the file and learns its "data" object; -EUCLEAN without one. */
static int session_file(struct sd_session *s, const char *name)
{
	int err = djmfs_open(s->p->c, name, DJMFS_O_READ, &s->f);

	if (err < 0) {
		open_failed(s, err);
		return err;
	}
	return session_learn(s);
}

/* The open file's "data" object and image (no round trip). */
static int session_learn(struct sd_session *s)
{
	const char *name = s->name;
	int err = djmfs_find_obj(s->f, "data", &s->data_id);

	if (err == 0)
		err = image_of(s, &s->img_size, &s->live);
	s->img_disk = s->img_size;
	if (err < 0) {
		plog(&s->p->log, SD_LOG_ERROR, "sd_session_open(%s): no "
		     "\"data\" object: not a recording: %s", name,
		     strerror(-err));
		err = err == -ENOENT ? -EUCLEAN : err;
	}
	return err;
}

static void closed(void *arg, ssize_t res);

/*
 * Frees @s.  Its file's CLOSE goes without waiting for the answer
 * (djmfs_close_async), counted in p->closing until it comes, so that
 * sd_pump_free outlasts every answer's callback.
 */
static void session_free(struct sd_session *s)
{
	struct sd_pump *p = s->p;

	sd_cache_leave(s->cons);
	if (s->f) {
		int err;

		pthread_mutex_lock(&p->omu);
		p->closing++;
		pthread_mutex_unlock(&p->omu);
		err = djmfs_close_async(s->f, closed, p);
		if (err != 0)
			closed(p, err);
		if (err < 0)
			plog(&p->log, SD_LOG_WARN, "sd_session(%s): "
			     "djmfs_close: %s", s->name, strerror(-err));
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	while (s->nseg > 0)
		seg_pop(s);
	free(s->seg);
	pool_put(s->p, s->io_buf, s->io_buf_size);
	pool_put(s->p, s->spare, s->spare_size);
	free(s);
}

static struct sd_session *session_alloc(struct sd_pump *p,
					const struct sd_session_opts *o)
{
	struct sd_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->p = p;
	snprintf(s->name, sizeof(s->name), "%s", o->name);
	s->wake = o->wake;
	s->wake_arg = o->wake_arg;
	s->pos = o->start;
	s->end = o->end;
	s->sync_tick = UINT64_MAX;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_lock(&p->mu);
	s->cap = p->knobs.buffer_size;
	pthread_mutex_unlock(&p->mu);
	return s;
}

static void session_start(struct sd_session *s);

int sd_session_open(struct sd_pump *p, const struct sd_session_opts *o,
		    struct sd_session **out)
{
	struct sd_session *s;
	int err;

	if (!p || !o || !o->name || !out || o->start > o->end)
		return -EINVAL;
	s = session_alloc(p, o);
	if (!s)
		return -ENOMEM;
	err = session_file(s, o->name);
	if (err < 0) {
		session_free(s);
		return err;
	}
	session_start(s);
	*out = s;
	return 0;
}

/* An open session joins the cache's consumers and the pump, and reads
 * at once. */
static void session_start(struct sd_session *s)
{
	struct sd_pump *p = s->p;
	struct act a = { 0 };
	uint64_t tick;
	struct tune t;

	/* Without a place among the consumers the session only reads the
	 * disk: the cache is an optimisation. */
	if (p->cache && sd_cache_join(p->cache, s->ino, s->data_id, s->pos, 0,
				      &s->cons) < 0)
		s->cons = NULL;
	pthread_mutex_lock(&p->mu);
	s->next = p->head;
	if (p->head)
		p->head->prev = s;
	p->head = s;
	p->n_sessions++;
	p->sessions_total++;
	pthread_mutex_unlock(&p->mu);
	/* The first read leaves now, not at the next period. */
	tune_get(p, &t, &tick);
	pthread_mutex_lock(&s->mu);
	plan(s, &t, tick, 1, &a);
	pthread_mutex_unlock(&s->mu);
	settle(s, &a);
}

ssize_t sd_session_read(struct sd_session *s, void *buf, size_t max)
{
	struct act a = { 0 };
	struct tune t;
	uint64_t tick;
	ssize_t n;

	if (!s || (!buf && max))
		return -EINVAL;
	tune_get(s->p, &t, &tick);
	pthread_mutex_lock(&s->mu);
	if (s->len > 0 && max > 0) {
		n = (ssize_t)ring_get(s, buf, max);
		s->st.bytes += (uint64_t)n;
		s->started = 1;
		s->waiting = 0;
		s->empty = 0;
		/* A player that drains the buffer below B (a burst at start,
		 * a client catching up) gets the next read now rather than
		 * at the next period: the B rule, applied on the way out as
		 * well as after each read. */
		plan(s, &t, tick, 0, &a);
	} else if (s->len > 0) {
		n = 0;
	} else if (s->err || s->done) {
		n = s->err ? s->err : SD_SESSION_EOF;
	} else {
		/* Empty while the session may read more: the disk, not
		 * the encoder, is behind (a held partial block is the
		 * encoder's).  Whether the player waited long enough for
		 * it to be an underflow is judged later. */
		if (!s->empty && s->started && s->pos < readable_end(s)) {
			s->owed = 1;
			s->empty_since = sd_now();
		}
		s->empty = 1;
		s->waiting = 1;
		n = 0;
	}
	pthread_mutex_unlock(&s->mu);
	if (a.io != IO_NONE) /* no wake here: waiting was just cleared */
		settle(s, &a);
	return n;
}

int sd_session_wake_at_tick(struct sd_session *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (!s->closing) {
		/* "waiting" as after an empty read: whichever comes first,
		 * the next period or a completed read, wakes it once. */
		s->waiting = 1;
		s->tick_wake = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void sd_session_settle(struct sd_session *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->settling++;
	while (s->io != IO_NONE || s->waking > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	s->settling--;
	pthread_mutex_unlock(&s->mu);
}

void sd_session_stats(struct sd_session *s, struct sd_session_stats *out)
{
	if (!s || !out)
		return;
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
}

double sd_session_cache_share(struct sd_session *s)
{
	double share;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	share = sd_cache_hit_share(s->cons);
	pthread_mutex_unlock(&s->mu);
	return share;
}

void sd_session_close(struct sd_session *s)
{
	struct sd_pump *p;

	if (!s)
		return;
	p = s->p;
	pthread_mutex_lock(&s->mu);
	s->closing = 1;
	s->waiting = 0;
	while (s->io != IO_NONE || s->waking > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&p->mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		p->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	p->n_sessions--;
	pthread_mutex_lock(&p->lmu);
	stats_add(&p->closed, &s->st);
	pthread_mutex_unlock(&p->lmu);
	pthread_mutex_unlock(&p->mu);
	/* The session leaves the cache's consumers now (nothing can move it
	 * any more); only the djmfs_close round trip waits for an opener. */
	sd_cache_leave(s->cons);
	s->cons = NULL;
	pthread_mutex_lock(&p->omu);
	if (s->opening) {
		/* Its OPEN is on its way: the answer frees it (invariant
		 * 10). */
		s->close_at_open = 1;
		pthread_mutex_unlock(&p->omu);
		return;
	}
	pthread_mutex_unlock(&p->omu);
	if (!s->f || !p->n_openers) {
		session_free(s);
		return;
	}
	pthread_mutex_lock(&p->omu);
	s->cq_next = p->cq;
	p->cq = s;
	pthread_cond_signal(&p->ocv);
	pthread_mutex_unlock(&p->omu);
}

/* ------------------------------------------------------------------ */
/* Opens and closes off the caller's thread                            */
/* ------------------------------------------------------------------ */

/*
 * An opener: the answer to the OPEN of a session started early
 * (sd_session_start), which has run on the cache meanwhile.  Its handle
 * and image join it, and it goes on as an opened session; or the OPEN's
 * failure becomes its error, which its player sees once the buffer is
 * drained.  The image must be of the file the caller's snapshot named:
 * a recording deleted and made again under its name is another file
 * (-ESTALE), whose bytes the cache's were not.  Then, of this and
 * sd_session_close, whichever comes second hands the session to the
 * closes (invariant 10).
 */
static void session_attach(struct sd_session *s, int err,
			   struct djmfs_file *f)
{
	struct sd_pump *p = s->p;
	struct djmfs_file_info fi;
	struct act a = { 0 };
	uint64_t size = 0, tick;
	uint32_t id = 0;
	struct tune t;
	int live = 0, gone;

	if (err == 0)
		err = djmfs_find_obj(f, "data", &id);
	if (err == 0)
		err = djmfs_file_info(f, &fi);
	if (err == 0)
		err = fi.ino != s->ino || id != s->data_id ? -ESTALE
							   : size_in(&fi, id,
								     &size);
	if (err == 0)
		live = !!(fi.flags & DJMFS_FILE_WRITE_LOCKED);
	tune_get(p, &t, &tick);
	pthread_mutex_lock(&s->mu);
	s->f = f; /* even failed: session_free closes it */
	if (err < 0) {
		plog(&p->log, err == -ESHUTDOWN ? SD_LOG_INFO : SD_LOG_WARN,
		     "sd_session(%s): started from the cache, its own open "
		     "then failed: %s", s->name, strerror(-err));
		if (!s->err)
			s->err = err;
		a.wake = take_waiting(s);
	} else {
		/* Invariant 8: what the caller's snapshot published is
		 * within this newer image. */
		s->img_disk = size;
		if (size > s->img_size) {
			s->img_size = size;
			s->grew = 1;
		}
		s->live = live;
		plan(s, &t, tick, 0, &a);
	}
	if (s->closing || s->settling)
		pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* The session outlives settle: only this call clears opening. */
	settle(s, &a);
	pthread_mutex_lock(&p->omu);
	s->opening = 0;
	gone = s->close_at_open;
	pthread_mutex_unlock(&p->omu);
	if (gone)
		session_free(s);
}

/* Receive thread: the server answered @op's OPEN; an opener finishes
 * it (open_ready), so that nothing of ours runs on the library's
 * thread. */
static void opened(void *arg, int err, struct djmfs_file *f)
{
	struct sd_open *op = arg;
	struct sd_pump *p = op->s->p;

	op->f = f;
	op->err = err;
	pthread_mutex_lock(&p->omu);
	op->next = p->rq;
	p->rq = op;
	pthread_cond_signal(&p->ocv);
	pthread_mutex_unlock(&p->omu);
}

static void open_answer(struct sd_open *op, int err, struct sd_session *s)
{
	op->done(op->arg, err, err < 0 ? NULL : s);
	free(op);
}

/* An opener: sends @op's OPEN without waiting (djmfs_open_async), so a
 * crowd's opens share the server's passes whatever the number of
 * openers.  1 when @op was answered here, 0 when the OPEN is on its way
 * (opened() brings it back).  With no connection up now, the blocking
 * open waits for one, as it always did. */
static int open_run(struct sd_pump *p, struct sd_open *op)
{
	struct sd_session *s = op->done ? session_alloc(p, &op->o) : op->s;
	struct djmfs_file *f = NULL;
	int err;

	if (!s) {
		open_answer(op, -ENOMEM, NULL);
		return 1;
	}
	op->s = s;
	err = djmfs_open_async(p->c, s->name, DJMFS_O_READ, opened, op);
	if (err == 0)
		return 0;
	if (!op->done) {
		free(op);
		err = djmfs_open(p->c, s->name, DJMFS_O_READ, &f);
		session_attach(s, err, f);
		return 1;
	}
	session_free(s);
	s = NULL;
	err = sd_session_open(p, &op->o, &s);
	open_answer(op, err, s);
	return 1;
}

/* An opener: what the server answered to @op's OPEN. */
static void open_ready(struct sd_pump *p, struct sd_open *op)
{
	struct sd_session *s = op->s;
	struct djmfs_file *f = op->f;
	int err = op->err;

	if (!op->done) {
		free(op);
		/* The connection went on the way: as below. */
		if (err == -ENOTCONN)
			err = djmfs_open(p->c, s->name, DJMFS_O_READ, &f);
		session_attach(s, err, f);
		return;
	}
	if (err == 0)
		s->f = f;
	if (err == -ENOTCONN) {
		/* The connection went on the way: the blocking open waits
		 * for the next one and sends again. */
		session_free(s);
		s = NULL;
		err = sd_session_open(p, &op->o, &s);
	} else if (err < 0) {
		open_failed(s, err);
		session_free(s);
	} else if ((err = session_learn(s)) < 0) {
		session_free(s);
	} else {
		session_start(s);
	}
	open_answer(op, err, s);
}

/* A CLOSE was answered (@arg: the pump). */
static void closed(void *arg, ssize_t res)
{
	struct sd_pump *p = arg;

	(void)res; /* a reader's CLOSE failing loses nothing */
	pthread_mutex_lock(&p->omu);
	if (--p->closing == 0)
		pthread_cond_broadcast(&p->odone);
	pthread_mutex_unlock(&p->omu);
}

/* Under p->omu: the oldest open if it is due, else NULL (and *@wait_ns
 * until it is, 0 with none queued). */
static struct sd_open *open_due(struct sd_pump *p, uint64_t *wait_ns)
{
	struct sd_open *op = p->oq_head;
	uint64_t now;

	*wait_ns = 0;
	if (!op)
		return NULL;
	now = sd_now();
	if (op->due > now) {
		*wait_ns = op->due - now;
		return NULL;
	}
	p->oq_head = op->next;
	if (!p->oq_head)
		p->oq_tail = NULL;
	p->oq_len--;
	return op;
}

/* An opener: closes first (they free memory and each has its session
 * already off the pump), then the oldest open once it is due. */
static void *opener_main(void *arg)
{
	struct sd_pump *p = arg;
	struct sd_session *s;
	struct sd_open *op;
	struct timespec ts;
	uint64_t wait_ns;

	pthread_setname_np(pthread_self(), "sd-opener");
	pthread_mutex_lock(&p->omu);
	for (;;) {
		if (p->cq) {
			s = p->cq;
			p->cq = s->cq_next;
			pthread_mutex_unlock(&p->omu);
			session_free(s);
			pthread_mutex_lock(&p->omu);
			continue;
		}
		if (p->rq) {
			op = p->rq;
			p->rq = op->next;
			pthread_mutex_unlock(&p->omu);
			open_ready(p, op);
			pthread_mutex_lock(&p->omu);
			if (--p->opens_running == 0)
				pthread_cond_broadcast(&p->odone);
			continue;
		}
		op = open_due(p, &wait_ns);
		if (op) {
			int answered;

			p->opens_running++;
			pthread_mutex_unlock(&p->omu);
			answered = open_run(p, op);
			pthread_mutex_lock(&p->omu);
			if (answered && --p->opens_running == 0)
				pthread_cond_broadcast(&p->odone);
			continue;
		}
		if (p->openers_stop && !p->oq_head)
			break;
		if (wait_ns) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts_add(&ts, wait_ns);
			pthread_cond_timedwait(&p->ocv, &p->omu, &ts);
		} else {
			pthread_cond_wait(&p->ocv, &p->omu);
		}
	}
	pthread_mutex_unlock(&p->omu);
	return NULL;
}

/* What both kinds of queued open require of @o. */
static int opts_ok(const struct sd_session_opts *o)
{
	return o && o->name && o->start <= o->end &&
	       strlen(o->name) <= SD_NAME_MAX;
}

/* An open of @o (name copied) for the openers, due once the testing
 * delay passed; NULL without memory. */
static struct sd_open *open_new(struct sd_pump *p,
				const struct sd_session_opts *o)
{
	struct sd_open *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->o = *o;
	memcpy(op->name, o->name, strlen(o->name) + 1);
	op->o.name = op->name;
	op->due = sd_now() + p->open_delay_ns;
	return op;
}

/* Queues @op for the openers: 0, or -ESHUTDOWN (opens stopped) or
 * -EAGAIN (the queue is full) with @op not queued. */
static int open_queue(struct sd_pump *p, struct sd_open *op)
{
	int err = 0;

	pthread_mutex_lock(&p->omu);
	if (p->opens_stopped) {
		err = -ESHUTDOWN;
	} else if (p->oq_len >= p->oq_max) {
		err = -EAGAIN;
	} else {
		if (p->oq_tail)
			p->oq_tail->next = op;
		else
			p->oq_head = op;
		p->oq_tail = op;
		p->oq_len++;
		pthread_cond_signal(&p->ocv);
	}
	pthread_mutex_unlock(&p->omu);
	return err;
}

int sd_session_open_async(struct sd_pump *p, const struct sd_session_opts *o,
			  sd_session_open_fn done, void *arg)
{
	struct sd_open *op;
	int err = 0;

	if (!p || !done || !opts_ok(o))
		return -EINVAL;
	op = open_new(p, o);
	if (!op)
		return -ENOMEM;
	op->done = done;
	op->arg = arg;
	err = open_queue(p, op);
	if (err < 0)
		free(op);
	return err;
}

int sd_session_start(struct sd_pump *p, const struct sd_session_opts *o,
		     struct sd_session **out)
{
	struct sd_session *s;
	struct sd_open *op;
	int err = 0;

	if (!p || !out || !opts_ok(o))
		return -EINVAL;
	if (!p->cache || !p->n_openers || !o->ino || o->start >= o->size ||
	    sd_cache_held_share(p->cache, o->ino, o->data_id, o->start,
				1) <= 0)
		return -ENOTSUP;
	op = open_new(p, o);
	s = op ? session_alloc(p, o) : NULL;
	if (!s) {
		free(op);
		return -ENOMEM;
	}
	/* The caller's snapshot stands for the session's own until the
	 * OPEN's answer: no handle, so nothing but the cache (plan). */
	s->ino = o->ino;
	s->data_id = o->data_id;
	s->img_size = o->size;
	s->img_disk = 0;
	s->live = o->live;
	s->opening = 1;
	op->s = s;
	/* Running before its OPEN is queued, so that the answer never
	 * finds it half started. */
	session_start(s);
	err = open_queue(p, op);
	if (err < 0) {
		free(op);
		/* No answer will come: the close frees it. */
		pthread_mutex_lock(&p->omu);
		s->opening = 0;
		pthread_mutex_unlock(&p->omu);
		sd_session_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void sd_pump_stop_opens(struct sd_pump *p)
{
	struct sd_open *op, *next;

	if (!p)
		return;
	pthread_mutex_lock(&p->omu);
	p->opens_stopped = 1;
	op = p->oq_head;
	p->oq_head = p->oq_tail = NULL;
	p->oq_len = 0;
	pthread_mutex_unlock(&p->omu);
	for (; op; op = next) {
		next = op->next;
		if (!op->done)
			session_attach(op->s, -ESHUTDOWN, NULL);
		else
			op->done(op->arg, -ESHUTDOWN, NULL);
		free(op);
	}
	pthread_mutex_lock(&p->omu);
	while (p->opens_running > 0)
		pthread_cond_wait(&p->odone, &p->omu);
	pthread_mutex_unlock(&p->omu);
}
