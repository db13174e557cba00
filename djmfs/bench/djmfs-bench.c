/*
 * djmfs-bench: the seed paper's experiment on DJMFS.  N reader/writer
 * pairs share one file each; every period (256 ms) each writer appends
 * --size bytes (64 KiB) to its file's SYNCHRONOUS DATA object, which
 * publishes a snapshot, and one period later its reader does SYNC_SNAP
 * and reads the newest --size bytes.  Each I/O's deadline is one period
 * after its issue; a miss is an I/O not complete by then.  Writers run in
 * one child process and readers in another (the paper's separate
 * machines), each child with ONE client connection driving all its pairs
 * through the asynchronous API from a timer loop, phases staggered
 * evenly over the period.  The parent measures the server with
 * djmfs_server_stats over the measured interval (after --warmup) and
 * prints one JSON object last on stdout: server CPU per pair, the pairs
 * whose load would fill one core, deadline-miss rate, lock-busy rate,
 * metadata ops/s.  --metadata-only makes both clients skip data I/O while
 * every metadata operation still happens ("storage infinitely fast"), so
 * the server's own limit can be projected.  Without --server the bench
 * formats a volume and runs its own djmfsd on a Unix socket in a
 * temporary directory.  With --secret-file every client proves the
 * volume's shared secret, and a djmfsd started here demands it.
 *
 * Processes: parent (arguments, server, measuring, JSON) -- pipes -->
 * writer child, reader child.  Children report READY after setting up
 * their files, PROGRESS once a second, FINAL with their counts.
 *
 * Exit status: 0 success, 1 the run failed (when only some I/Os failed,
 * the JSON is printed all the same), 2 bad usage.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"
#include "bench_server.h"
#include "tool_clock.h"
#include "tool_json.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "djmfs-bench"
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define MIB (UINT64_C(1) << 20)
#define MAX_SIZE (64 * MIB)
#define MAX_PAIRS 1000000u
#define VOLUME_CAP (UINT64_C(1) << 40)	/* 1 TiB, sparse */
#define VOLUME_BASE (256 * MIB)
#define AU_SLACK (17 * MIB)	/* per file: a reservation + a partial unit */
#define SETUP_THREADS 16u
#define SETUP_TIMEOUT_NS (600 * NS_PER_S)
#define START_DELAY_NS (100 * NS_PER_MS)
#define DRAIN_GRACE_NS (5 * NS_PER_S)
#define SERVER_WAIT_NS (10 * NS_PER_S)
#define HIST_BUCKETS 496	/* 8 per power of two up to 2^63 */
#define LOG_ERRORS_MAX 5	/* per child: failed I/Os logged */
#define PROGRESS_NS (250 * NS_PER_MS) /* children's reports */

struct cfg {
	unsigned pairs;
	uint64_t period_ns;
	uint64_t size;
	double duration_s;
	double warmup_s;
	bool metadata_only;
	const char *volume;
	const char *server;
	const char *argv0;
	const char *secret_file; /* NULL: no shared secret */
	void *secret;		 /* its bytes, loaded before any fork */
	size_t secret_len;
};

/* ------------------------------------------------------------------ */
/* Parent <-> child messages (each well under PIPE_BUF: atomic)        */
/* ------------------------------------------------------------------ */

enum ctl_kind { CTL_SETUP = 1, CTL_START = 2 };

struct ctl_msg {
	uint32_t kind;
	uint64_t t0;	  /* writers' first issue */
	uint64_t m_start; /* measured interval [m_start, m_end) */
	uint64_t m_end;
};

enum rep_kind { REP_READY = 1, REP_PROGRESS, REP_FINAL, REP_FAILED };

/* Counts of the I/Os issued in the measured interval (REP_FINAL), or of
 * all so far (REP_PROGRESS). */
struct counts {
	uint64_t issued, done, misses, errors, overruns, bytes, undrained;
	uint64_t lat_p99_ns, lat_max_ns;
};

struct rep_msg {
	uint32_t kind;
	int32_t err;
	struct counts n;
};

/* ------------------------------------------------------------------ */
/* A child: one client driving all the pairs of one side               */
/* ------------------------------------------------------------------ */

enum role { ROLE_WRITER, ROLE_READER };
static const char *const role_name[] = { "writers", "readers" };

/*
 * Invariants of a pair:
 *  1. At most one operation is in flight (busy); a tick that finds the
 *     previous one still busy is an overrun, counted as issued and missed
 *     (that operation is already a period old, so it missed anyway).
 *  2. issue_ns and measured are written by the timer thread before busy
 *     is set and read by callbacks before busy is cleared.
 *  3. The file handle is touched by the timer thread only while not busy,
 *     and by callbacks only while busy.
 */
struct pair {
	struct child *ch;
	struct djmfs_file *f;
	uint8_t *buf; /* reader: its own buffer */
	uint64_t issue_ns;
	bool measured;
	atomic_bool busy;
};

struct acc {
	atomic_uint_fast64_t issued, done, misses, errors, overruns, bytes;
	atomic_uint_fast64_t lat_max;
	atomic_uint_fast64_t hist[HIST_BUCKETS];
};

struct child {
	const struct cfg *cfg;
	enum role role;
	int ctl_fd, rep_fd;
	struct djmfs_client *c;
	struct pair *pairs;
	uint8_t *wbuf; /* writers: one read-only buffer for every write */
	uint64_t t0, m_start, m_end;
	struct acc meas; /* measured interval only */
	struct acc all;	 /* everything, for progress */
	atomic_uint_fast64_t in_flight;
	atomic_int log_budget;
};

/* Deadlines go to libdjmfs, so times are read on its clock; it is
 * CLOCK_MONOTONIC in nanoseconds, the clock tool_sleep_until_ns sleeps
 * on. */
static uint64_t now_ns(void)
{
	return djmfs_now();
}

static void log_stderr(void *arg, enum djmfs_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	if (level <= DJMFS_LOG_WARN)
		fprintf(stderr, PROG "[%s]: %s: %s\n", (const char *)arg,
			names[level & 3], msg);
}

/* ------------------------------------------------------------------ */
/* Latency histogram: 8 buckets per power of two                       */
/* ------------------------------------------------------------------ */

static unsigned hist_bucket(uint64_t v)
{
	unsigned msb;

	if (v < 8)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return 8u + (msb - 3u) * 8u + (unsigned)((v >> (msb - 3u)) & 7u);
}

/* Largest value of bucket @b. */
static uint64_t hist_upper(unsigned b)
{
	unsigned msb, sub;

	if (b < 8)
		return b;
	msb = (b - 8u) / 8u + 3u;
	sub = (b - 8u) % 8u;
	return ((UINT64_C(8) + sub) << (msb - 3u)) + (UINT64_C(1) << (msb - 3u)) - 1;
}

static uint64_t hist_quantile(struct acc *a, double q)
{
	uint64_t total = 0, seen = 0, want;

	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		total += atomic_load(&a->hist[b]);
	if (total == 0)
		return 0;
	want = (uint64_t)((double)total * q);
	if (want >= total)
		want = total - 1;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += atomic_load(&a->hist[b]);
		if (seen > want)
			return hist_upper(b);
	}
	return 0;
}

static void acc_counts(struct acc *a, struct counts *n)
{
	n->issued = atomic_load(&a->issued);
	n->done = atomic_load(&a->done);
	n->misses = atomic_load(&a->misses);
	n->errors = atomic_load(&a->errors);
	n->overruns = atomic_load(&a->overruns);
	n->bytes = atomic_load(&a->bytes);
	n->lat_max_ns = atomic_load(&a->lat_max);
	n->lat_p99_ns = hist_quantile(a, 0.99);
	if (n->lat_p99_ns > n->lat_max_ns) /* buckets are 1/8 octave wide */
		n->lat_p99_ns = n->lat_max_ns;
}

/* ------------------------------------------------------------------ */
/* The I/O state machines (callbacks run on library threads)           */
/* ------------------------------------------------------------------ */

static void acc_done(struct acc *a, int64_t res, uint64_t bytes, uint64_t lat,
		     bool miss)
{
	uint64_t max = atomic_load(&a->lat_max);

	atomic_fetch_add(&a->done, 1);
	if (miss)
		atomic_fetch_add(&a->misses, 1);
	if (res < 0)
		atomic_fetch_add(&a->errors, 1);
	atomic_fetch_add(&a->bytes, bytes);
	atomic_fetch_add(&a->hist[hist_bucket(lat)], 1);
	while (lat > max && !atomic_compare_exchange_weak(&a->lat_max, &max, lat))
		;
}

/* Ends the pair's operation: an error or a late completion is a miss. */
static void pair_finish(struct pair *p, int64_t res, uint64_t bytes)
{
	struct child *ch = p->ch;
	uint64_t lat = now_ns() - p->issue_ns;
	bool miss = res < 0 || lat > ch->cfg->period_ns;

	if (res < 0 && atomic_fetch_sub(&ch->log_budget, 1) > 0)
		fprintf(stderr, PROG "[%s]: I/O of pair %zu failed: %s\n",
			role_name[ch->role], (size_t)(p - ch->pairs),
			strerror((int)-res));
	if (p->measured)
		acc_done(&ch->meas, res, bytes, lat, miss);
	acc_done(&ch->all, res, bytes, lat, miss);
	atomic_fetch_sub(&ch->in_flight, 1);
	atomic_store_explicit(&p->busy, false, memory_order_release);
}

static void write_done(void *user, ssize_t res)
{
	struct pair *p = user;

	if (res >= 0 && (uint64_t)res != p->ch->cfg->size)
		res = -EIO;
	pair_finish(p, res, res > 0 ? (uint64_t)res : 0);
}

static void read_done(void *user, ssize_t res)
{
	struct pair *p = user;

	pair_finish(p, res, res > 0 ? (uint64_t)res : 0);
}

/* SYNC_SNAP done: read the newest --size bytes of the new image. */
static void snap_done(void *user, ssize_t res)
{
	struct pair *p = user;
	const struct cfg *cfg = p->ch->cfg;
	struct djmfs_file_info fi;
	uint64_t len;
	int r;

	if (res < 0) {
		pair_finish(p, res, 0);
		return;
	}
	r = djmfs_file_info(p->f, &fi);
	if (r < 0 || fi.size == 0) {
		pair_finish(p, r, 0);
		return;
	}
	len = fi.size < cfg->size ? fi.size : cfg->size;
	r = djmfs_pread_async(p->f, p->buf, len, fi.size - len,
			      p->issue_ns + cfg->period_ns, read_done, p);
	if (r < 0)
		pair_finish(p, r, 0);
}

/* One tick of pair @p, scheduled for @t. */
static void pair_issue(struct child *ch, struct pair *p, uint64_t t)
{
	bool measured = t >= ch->m_start;
	int r;

	atomic_fetch_add(&ch->all.issued, 1);
	if (measured)
		atomic_fetch_add(&ch->meas.issued, 1);
	if (atomic_load_explicit(&p->busy, memory_order_acquire)) {
		atomic_fetch_add(&ch->all.overruns, 1);
		atomic_fetch_add(&ch->all.misses, 1);
		if (measured) {
			atomic_fetch_add(&ch->meas.overruns, 1);
			atomic_fetch_add(&ch->meas.misses, 1);
		}
		return;
	}
	p->issue_ns = t;
	p->measured = measured;
	atomic_fetch_add(&ch->in_flight, 1);
	atomic_store_explicit(&p->busy, true, memory_order_release);
	if (ch->role == ROLE_WRITER)
		r = djmfs_write_async(p->f, ch->wbuf, ch->cfg->size,
				      t + ch->cfg->period_ns, write_done, p);
	else
		r = djmfs_sync_snap_async(p->f, snap_done, p);
	if (r < 0)
		pair_finish(p, r, 0);
}

/* ------------------------------------------------------------------ */
/* Child: set-up, timer loop, drain                                    */
/* ------------------------------------------------------------------ */

static int send_rep(struct child *ch, uint32_t kind, int err, struct acc *a)
{
	struct rep_msg m = { .kind = kind, .err = err };

	if (a)
		acc_counts(a, &m.n);
	return write(ch->rep_fd, &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : -EPIPE;
}

static int recv_ctl(int fd, struct ctl_msg *m)
{
	ssize_t n;

	do
		n = read(fd, m, sizeof(*m));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*m) ? 0 : -EPIPE;
}

static void pair_name(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "bench-%06zu", i);
}

static int setup_writer(struct child *ch, size_t i)
{
	struct pair *p = &ch->pairs[i];
	char name[32];
	uint32_t id;
	int r;

	pair_name(name, sizeof(name), i);
	r = djmfs_unlink(ch->c, name);
	if (r < 0 && r != -ENOENT)
		return r;
	r = djmfs_open(ch->c, name, DJMFS_O_WRITE | DJMFS_O_CREATE, &p->f);
	if (r < 0)
		return r;
	r = djmfs_create_obj(p->f, "data", DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC,
			     &id);
	if (r < 0)
		return r;
	return djmfs_set_objptr(p->f, id, 0);
}

static int setup_reader(struct child *ch, size_t i)
{
	struct pair *p = &ch->pairs[i];
	char name[32];

	/* Aligned, so the library can read into it without bouncing. */
	if (posix_memalign((void **)&p->buf, 4096, ch->cfg->size) != 0)
		return -ENOMEM;
	pair_name(name, sizeof(name), i);
	return djmfs_open(ch->c, name, DJMFS_O_READ, &p->f);
}

static int close_pair(struct child *ch, size_t i)
{
	int r = djmfs_close(ch->pairs[i].f);

	ch->pairs[i].f = NULL;
	return r;
}

struct pool_job {
	struct child *ch;
	int (*fn)(struct child *ch, size_t i);
	atomic_size_t next;
	atomic_int err;
};

static void *pool_worker(void *arg)
{
	struct pool_job *job = arg;
	size_t i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->ch->cfg->pairs) {
		int r = job->fn(job->ch, i);
		int none = 0;

		if (r < 0)
			atomic_compare_exchange_strong(&job->err, &none, r);
	}
	return NULL;
}

/* Runs @fn on every pair from a few threads: the client pipelines the
 * calls, so thousands of files are set up in a few group commits. */
static int pool_run(struct child *ch, int (*fn)(struct child *, size_t))
{
	struct pool_job job = { .ch = ch, .fn = fn };
	pthread_t tid[SETUP_THREADS];
	unsigned n = ch->cfg->pairs < SETUP_THREADS ? ch->cfg->pairs
						    : SETUP_THREADS;
	unsigned started = 0;

	for (; started < n; started++)
		if (pthread_create(&tid[started], NULL, pool_worker, &job) != 0)
			break;
	if (started == 0)
		pool_worker(&job);
	for (unsigned k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
	return atomic_load(&job.err);
}

/* The timer loop: pair i of cycle k is due at base + k*period +
 * i*period/pairs, so the load is spread evenly over the period. */
static void child_run(struct child *ch)
{
	const struct cfg *cfg = ch->cfg;
	uint64_t base = ch->t0 + (ch->role == ROLE_READER ? cfg->period_ns : 0);
	uint64_t next_progress = ch->t0 + PROGRESS_NS;

	for (uint64_t e = 0;; e++) {
		uint64_t i = e % cfg->pairs, k = e / cfg->pairs;
		uint64_t t = base + k * cfg->period_ns +
			     i * cfg->period_ns / cfg->pairs;

		if (t >= ch->m_end)
			break;
		if (t > now_ns())
			tool_sleep_until_ns(t);
		pair_issue(ch, &ch->pairs[i], t);
		if (t >= next_progress) {
			send_rep(ch, REP_PROGRESS, 0, &ch->all);
			next_progress += PROGRESS_NS;
		}
	}
}

/* Waits for the operations in flight; those still out after a period
 * and a grace time count as undrained misses.  Returns how many. */
static uint64_t child_drain(struct child *ch)
{
	uint64_t give_up = ch->m_end + ch->cfg->period_ns + DRAIN_GRACE_NS;
	uint64_t stuck = 0;

	while (atomic_load(&ch->in_flight) > 0 && now_ns() < give_up)
		tool_sleep_until_ns(now_ns() + NS_PER_MS);
	for (size_t i = 0; i < ch->cfg->pairs; i++)
		if (atomic_load(&ch->pairs[i].busy) && ch->pairs[i].measured)
			stuck++;
	return stuck;
}

static int child_setup(struct child *ch)
{
	const struct cfg *cfg = ch->cfg;
	struct djmfs_client_opts co = {
		.server = cfg->server,
		.volume = cfg->volume,
		.name = ch->role == ROLE_WRITER ? PROG " writers" : PROG " readers",
		.flags = cfg->metadata_only ? DJMFS_CLIENT_NO_DATA_IO : 0,
		.log = { log_stderr, (void *)role_name[ch->role] },
		.secret = cfg->secret,
		.secret_len = cfg->secret_len,
	};
	struct ctl_msg m;
	int r;

	ch->pairs = calloc(cfg->pairs, sizeof(*ch->pairs));
	if (!ch->pairs)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->pairs; i++)
		ch->pairs[i].ch = ch;
	if (ch->role == ROLE_WRITER) {
		if (posix_memalign((void **)&ch->wbuf, 4096, cfg->size) != 0)
			return -ENOMEM;
		memset(ch->wbuf, 0xa5, cfg->size);
	} else if (recv_ctl(ch->ctl_fd, &m) < 0 || m.kind != CTL_SETUP) {
		return -EPIPE; /* the parent gave up */
	}
	r = djmfs_connect(&ch->c, &co);
	if (r < 0) {
		fprintf(stderr, PROG "[%s]: djmfs_connect: %s\n",
			role_name[ch->role], strerror(-r));
		return r;
	}
	r = pool_run(ch, ch->role == ROLE_WRITER ? setup_writer : setup_reader);
	if (r < 0)
		fprintf(stderr, PROG "[%s]: setting up the files: %s\n",
			role_name[ch->role], strerror(-r));
	return r;
}

/* Body of a child process; returns its exit status. */
static int child_main(struct child *ch)
{
	struct ctl_msg m;
	uint64_t stuck;
	int r;

	atomic_store(&ch->log_budget, LOG_ERRORS_MAX);
	r = child_setup(ch);
	if (r < 0) {
		send_rep(ch, REP_FAILED, r, NULL);
		return EXIT_FAIL;
	}
	if (send_rep(ch, REP_READY, 0, NULL) < 0 ||
	    recv_ctl(ch->ctl_fd, &m) < 0 || m.kind != CTL_START)
		return EXIT_FAIL;
	ch->t0 = m.t0;
	ch->m_start = m.m_start;
	ch->m_end = m.m_end;
	child_run(ch);
	stuck = child_drain(ch);
	{
		struct rep_msg fin = { .kind = REP_FINAL };

		acc_counts(&ch->meas, &fin.n);
		fin.n.undrained = stuck;
		fin.n.misses += stuck;
		if (write(ch->rep_fd, &fin, sizeof(fin)) != (ssize_t)sizeof(fin))
			return EXIT_FAIL;
	}
	if (atomic_load(&ch->in_flight) > 0)
		return 0; /* callbacks may still come: leave it to exit */
	r = pool_run(ch, close_pair);
	if (r < 0)
		fprintf(stderr, PROG "[%s]: closing the files: %s\n",
			role_name[ch->role], strerror(-r));
	djmfs_disconnect(ch->c);
	for (size_t i = 0; i < ch->cfg->pairs; i++)
		free(ch->pairs[i].buf);
	free(ch->pairs);
	free(ch->wbuf);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Parent: the server                                                  */
/* ------------------------------------------------------------------ */

/* Apparent volume size: the data of the whole run plus a quarter, a
 * reservation's slack per file and room for the metadata, capped.  A
 * regular file is sparse: only what is written takes space. */
static uint64_t volume_size(const struct cfg *cfg)
{
	double periods = (cfg->warmup_s + cfg->duration_s) * 1e9 /
			 (double)cfg->period_ns + 4;
	double bytes = (double)cfg->pairs * ((double)cfg->size * periods * 1.25 +
					     (double)AU_SLACK) +
		       (double)VOLUME_BASE;

	return bytes > (double)VOLUME_CAP ? VOLUME_CAP : (uint64_t)bytes;
}

/* ------------------------------------------------------------------ */
/* Parent: children, measuring, the JSON                               */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct kid {
	pid_t pid;
	int ctl_fd;  /* parent writes */
	int rep_fd;  /* parent reads */
	struct rep_msg last; /* latest PROGRESS */
	struct rep_msg final;
	bool ready, done;
};

static int spawn_child(struct kid *k, const struct cfg *cfg, enum role role)
{
	int ctl[2], rep[2];

	if (pipe2(ctl, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		return -errno;
	}
	fflush(NULL);
	k->pid = fork();
	if (k->pid == 0) {
		struct child ch = { .cfg = cfg, .role = role,
				    .ctl_fd = ctl[0], .rep_fd = rep[1] };

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		close(ctl[1]);
		close(rep[0]);
		_exit(child_main(&ch));
	}
	close(ctl[0]);
	close(rep[1]);
	k->ctl_fd = ctl[1];
	k->rep_fd = rep[0];
	return k->pid < 0 ? -errno : 0;
}

static int send_ctl(struct kid *k, uint32_t kind, uint64_t t0, uint64_t ms,
		    uint64_t me)
{
	struct ctl_msg m = { kind, t0, ms, me };

	return write(k->ctl_fd, &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : -EPIPE;
}

/* Reads what the children sent until @until or until @want holds for
 * both.  Returns 0, or -EPIPE when a child failed or died. */
static int pump(struct kid kids[2], uint64_t until, bool (*want)(struct kid *))
{
	while (!(want(&kids[0]) && want(&kids[1]))) {
		/* A child that sent its figures may be gone: not polled. */
		struct pollfd pfd[2] = {
			{ kids[0].done ? -1 : kids[0].rep_fd, POLLIN, 0 },
			{ kids[1].done ? -1 : kids[1].rep_fd, POLLIN, 0 },
		};
		uint64_t t = now_ns();
		int ms = t >= until ? 0 : (int)((until - t) / NS_PER_MS) + 1;

		if (interrupted)
			return -EINTR;
		if (t >= until)
			return 0;
		if (poll(pfd, 2, ms) < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < 2; i++) {
			struct rep_msg m;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (read(kids[i].rep_fd, &m, sizeof(m)) != sizeof(m) ||
			    m.kind == REP_FAILED) {
				fprintf(stderr, PROG ": the %s' process failed\n",
					role_name[i]);
				return -EPIPE;
			}
			if (m.kind == REP_READY)
				kids[i].ready = true;
			else if (m.kind == REP_PROGRESS)
				kids[i].last = m;
			else if (m.kind == REP_FINAL) {
				kids[i].final = m;
				kids[i].done = true;
			}
		}
	}
	return 0;
}

static bool want_nothing(struct kid *k)
{
	(void)k;
	return false;
}

static bool want_ready(struct kid *k)
{
	return k->ready;
}

static bool want_final(struct kid *k)
{
	return k->done;
}

static void progress(struct djmfs_client *c, struct kid kids[2], double t,
		     const char *phase, struct djmfs_server_stats *prev)
{
	struct djmfs_server_stats st;
	double cpu = 0;

	if (djmfs_server_stats(c, &st) == 0) {
		if (prev->uptime_ns && st.uptime_ns > prev->uptime_ns)
			cpu = (double)(st.cpu_user_ns + st.cpu_sys_ns -
				       prev->cpu_user_ns - prev->cpu_sys_ns) *
			      100.0 / (double)(st.uptime_ns - prev->uptime_ns);
		*prev = st;
	}
	fprintf(stderr, PROG ": %-7s %5.1fs  writes %" PRIu64 "  reads %"
		PRIu64 "  misses %" PRIu64 "  server cpu %.1f%%\n", phase, t,
		kids[0].last.n.done, kids[1].last.n.done,
		kids[0].last.n.misses + kids[1].last.n.misses, cpu);
}

struct figures {
	struct djmfs_server_stats s0, s1;
};

/* Drives the run once both children are ready; fills @fig. */
static int measure(struct djmfs_client *c, struct kid kids[2],
		   const struct cfg *cfg, struct figures *fig)
{
	uint64_t t0 = now_ns() + START_DELAY_NS;
	uint64_t ms = t0 + (uint64_t)(cfg->warmup_s * 1e9);
	uint64_t me = ms + (uint64_t)(cfg->duration_s * 1e9);
	struct djmfs_server_stats prev = { 0 };
	uint64_t tick = t0 + NS_PER_S;
	int r;

	if (send_ctl(&kids[0], CTL_START, t0, ms, me) < 0 ||
	    send_ctl(&kids[1], CTL_START, t0, ms, me) < 0)
		return -EPIPE;
	for (int stage = 0; stage < 2; stage++) {
		uint64_t mark = stage == 0 ? ms : me;

		while (now_ns() < mark) {
			uint64_t until = tick < mark ? tick : mark;

			r = pump(kids, until, want_nothing);
			if (r < 0)
				return r;
			if (now_ns() >= tick) {
				progress(c, kids, (double)(now_ns() - t0) / 1e9,
					 now_ns() < ms ? "warmup" : "measure",
					 &prev);
				tick += NS_PER_S;
			}
		}
		r = djmfs_server_stats(c, stage == 0 ? &fig->s0 : &fig->s1);
		if (r < 0) {
			fprintf(stderr, PROG ": djmfs_server_stats: %s\n",
				strerror(-r));
			return r;
		}
	}
	fprintf(stderr, PROG ": draining\n");
	r = pump(kids, me + cfg->period_ns + DRAIN_GRACE_NS + 5 * NS_PER_S,
		 want_final);
	return r < 0 ? r : (kids[0].done && kids[1].done ? 0 : -ETIMEDOUT);
}

static int print_json(const struct cfg *cfg, struct kid kids[2],
		      const struct figures *fig)
{
	const struct djmfs_server_stats *a = &fig->s0, *b = &fig->s1;
	const struct counts *w = &kids[0].final.n, *r = &kids[1].final.n;
	double wall = (double)(b->uptime_ns - a->uptime_ns) / 1e9;
	double cpu_s = (double)(b->cpu_user_ns + b->cpu_sys_ns - a->cpu_user_ns -
				a->cpu_sys_ns) / 1e9;
	double cpu_pct = wall > 0 ? cpu_s / wall * 100.0 : 0;
	uint64_t issued = w->issued + r->issued;
	uint64_t misses = w->misses + r->misses;
	uint64_t lat_max = w->lat_max_ns > r->lat_max_ns ? w->lat_max_ns :
							    r->lat_max_ns;
	json_t *o = json_object();
	int e = 0;

	if (wall <= 0)
		wall = cfg->duration_s;
	e |= tool_json_u64(o, "pairs", cfg->pairs);
	e |= tool_json_dbl(o, "duration_s", wall, 3);
	e |= tool_json_dbl(o, "server_cpu_pct", cpu_pct, 3);
	e |= tool_json_dbl(o, "server_cpu_pct_per_pair",
			   cpu_pct / cfg->pairs, 6);
	/* The pairs whose load would fill one core; no CPU seen: unknown. */
	e |= tool_json_set(o, "projected_max_pairs",
			   cpu_pct > 0 ? json_integer((json_int_t)(
				   (double)cfg->pairs * 100.0 / cpu_pct)) :
					 json_null());
	e |= tool_json_dbl(o, "deadline_miss_rate",
			   issued ? (double)misses / (double)issued : 0.0, 6);
	e |= tool_json_dbl(o, "lock_busy_pct",
		(double)(b->lock_busy_ns - a->lock_busy_ns) / 1e7 / wall, 3);
	e |= tool_json_dbl(o, "metadata_ops_per_s",
			   (double)(b->ops - a->ops) / wall, 1);
	e |= tool_json_bool(o, "metadata_only", cfg->metadata_only);
	e |= tool_json_dbl(o, "period_ms", (double)cfg->period_ns / 1e6, 3);
	e |= tool_json_u64(o, "size", cfg->size);
	e |= tool_json_dbl(o, "warmup_s", cfg->warmup_s, 3);
	e |= tool_json_u64(o, "writes", w->issued);
	e |= tool_json_u64(o, "reads", r->issued);
	e |= tool_json_u64(o, "write_misses", w->misses);
	e |= tool_json_u64(o, "read_misses", r->misses);
	e |= tool_json_u64(o, "overruns", w->overruns + r->overruns);
	e |= tool_json_u64(o, "errors", w->errors + r->errors);
	e |= tool_json_u64(o, "undrained", w->undrained + r->undrained);
	e |= tool_json_dbl(o, "bytes_per_s",
			   (double)(w->bytes + r->bytes) / wall, 0);
	e |= tool_json_dbl(o, "write_latency_p99_ms",
			   (double)w->lat_p99_ns / 1e6, 3);
	e |= tool_json_dbl(o, "read_latency_p99_ms",
			   (double)r->lat_p99_ns / 1e6, 3);
	e |= tool_json_dbl(o, "latency_max_ms", (double)lat_max / 1e6, 3);
	e |= tool_json_dbl(o, "server_mutations_per_s",
			   (double)(b->mutations - a->mutations) / wall, 1);
	e |= tool_json_dbl(o, "journal_batches_per_s",
		(double)(b->journal_batches - a->journal_batches) / wall, 1);
	e |= tool_json_u64(o, "alloc_stalls",
			   b->alloc_stalls - a->alloc_stalls);
	e |= tool_json_dbl(o, "server_cpu_s", cpu_s, 3);
	if (e == 0)
		e = tool_json_print(stdout, o, JSON_COMPACT);
	json_decref(o);
	return e;
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */
/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: " PROG " [options]\n"
		"N reader/writer pairs, one file each: every period each writer\n"
		"appends --size bytes (publishing a snapshot) and, a period later,\n"
		"its reader reads the newest --size bytes.  Prints one JSON object.\n"
		"  --pairs N          reader/writer pairs (default 16)\n"
		"  --period-ms MS     period and deadline (default 256)\n"
		"  --size BYTES       bytes per I/O, K/M suffixes (default 65536)\n"
		"  --duration S       measured seconds (default 10)\n"
		"  --warmup S         seconds before measuring (default 2)\n"
		"  --metadata-only    no data I/O; every metadata op still happens\n"
		"  --volume PATH      the volume (without --server: formatted here)\n"
		"  --server ADDR      an existing djmfsd (else one is started;\n"
		"                     binary from $DJMFSD or next to this program)\n"
		"  --secret-file PATH the volume's shared secret (mode 0600), for\n"
		"                     the clients and a djmfsd started here\n"
		"  --help, --version\n"
		"Exit: 0 ok, 1 the run failed, 2 bad usage.\n");
}

static bool parse_double(const char *s, double lo, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !(d >= lo) || d > 1e7)
		return false;
	*out = d;
	return true;
}

static bool parse_u64(const char *s, bool suffix, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	if (suffix && (*end == 'K' || *end == 'k'))
		shift = 10, end++;
	else if (suffix && (*end == 'M' || *end == 'm'))
		shift = 20, end++;
	if (*end || v > (UINT64_MAX >> 21))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

enum { OPT_METADATA_ONLY = 256, OPT_WARMUP, OPT_SECRET, OPT_VERSION };

static int parse_args(struct cfg *cfg, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pairs", required_argument, NULL, 'n' },
		{ "period-ms", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "metadata-only", no_argument, NULL, OPT_METADATA_ONLY },
		{ "volume", required_argument, NULL, 'v' },
		{ "server", required_argument, NULL, 'S' },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	double period_ms = 256;
	int o;

	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;

		switch (o) {
		case 'n':
			ok = parse_u64(optarg, false, &v) && v >= 1 &&
			     v <= MAX_PAIRS;
			cfg->pairs = (unsigned)v;
			break;
		case 'p':
			ok = parse_double(optarg, 1, &period_ms);
			break;
		case 's':
			ok = parse_u64(optarg, true, &cfg->size) &&
			     cfg->size >= 1 && cfg->size <= MAX_SIZE;
			break;
		case 'd':
			ok = parse_double(optarg, 0.1, &cfg->duration_s);
			break;
		case OPT_WARMUP:
			ok = parse_double(optarg, 0, &cfg->warmup_s);
			break;
		case OPT_METADATA_ONLY:
			cfg->metadata_only = true;
			break;
		case 'v':
			cfg->volume = optarg;
			break;
		case 'S':
			cfg->server = optarg;
			break;
		case OPT_SECRET:
			cfg->secret_file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf(PROG " " PACKAGE_VERSION "\n");
			exit(0);
		default:
			return -EINVAL;
		}
		if (!ok) {
			fprintf(stderr, PROG ": bad value for %s: %s\n",
				argv[optind - 1], optarg);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	cfg->period_ns = (uint64_t)(period_ms * 1e6);
	return 0;
}

/* A client is one connection whatever the pair count, but be generous
 * with descriptors anyway: the server and libiosched may want some. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A child that sent its figures closes its files first: give it time. */
static void reap(pid_t pid, bool done)
{
	uint64_t give_up = now_ns() + SERVER_WAIT_NS;

	if (!done)
		kill(pid, SIGTERM);
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (now_ns() > give_up) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		tool_sleep_until_ns(now_ns() + 10 * NS_PER_MS);
	}
}

static void kill_kids(struct kid kids[2])
{
	for (int i = 0; i < 2; i++) {
		if (kids[i].pid > 0)
			reap(kids[i].pid, kids[i].done);
		kids[i].pid = 0;
		if (kids[i].ctl_fd >= 0)
			close(kids[i].ctl_fd);
		if (kids[i].rep_fd >= 0)
			close(kids[i].rep_fd);
		kids[i].ctl_fd = kids[i].rep_fd = -1;
	}
}

/* Spawns both children, waits for their files, runs and measures. */
static int run(struct cfg *cfg, struct kid kids[2], struct figures *fig)
{
	struct djmfs_client_opts co = { .server = cfg->server,
					.volume = cfg->volume,
					.name = PROG,
					.flags = DJMFS_CLIENT_NO_DATA_IO,
					.log = { bench_log_plain, NULL },
					.secret = cfg->secret,
					.secret_len = cfg->secret_len };
	struct djmfs_client *c = NULL;
	uint64_t give_up = now_ns() + SETUP_TIMEOUT_NS;
	int r;

	/* Both children fork before this process starts any thread. */
	r = spawn_child(&kids[0], cfg, ROLE_WRITER);
	if (r == 0)
		r = spawn_child(&kids[1], cfg, ROLE_READER);
	if (r < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(-r));
		return r;
	}
	r = djmfs_connect(&c, &co);
	if (r < 0) {
		fprintf(stderr, PROG ": djmfs_connect %s: %s\n",
			cfg->server ? cfg->server : "(default)", strerror(-r));
		return r;
	}
	fprintf(stderr, PROG ": setting up %u files\n", cfg->pairs);
	/* The reader opens the files only once the writer has made them:
	 * wait for the writer alone first. */
	kids[1].ready = true;
	r = pump(kids, give_up, want_ready);
	kids[1].ready = false;
	if (r == 0 && kids[0].ready)
		r = send_ctl(&kids[1], CTL_SETUP, 0, 0, 0);
	if (r == 0)
		r = pump(kids, give_up, want_ready);
	if (r == 0 && !(kids[0].ready && kids[1].ready))
		r = -ETIMEDOUT;
	if (r == 0) {
		fprintf(stderr, PROG ": %u pairs, %.0f ms period, %" PRIu64
			" bytes, %s\n", cfg->pairs, (double)cfg->period_ns / 1e6,
			cfg->size, cfg->metadata_only ? "metadata only" :
			"with data I/O");
		r = measure(c, kids, cfg, fig);
	}
	djmfs_disconnect(c);
	return r;
}

int main(int argc, char **argv)
{
	struct cfg cfg = { .pairs = 16, .period_ns = 256 * NS_PER_MS,
			   .size = 65536, .duration_s = 10, .warmup_s = 2,
			   .argv0 = argv[0] };
	struct bench_server srv = { .pid = 0 };
	struct kid kids[2] = { { .ctl_fd = -1, .rep_fd = -1 },
			       { .ctl_fd = -1, .rep_fd = -1 } };
	struct figures fig = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	const struct djmfs_log log = { bench_log_plain, NULL };
	int r, rc = 0;

	if (parse_args(&cfg, argc, argv) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* Before the children fork: they inherit the bytes. */
	if (cfg.secret_file &&
	    (r = djmfs_secret_load(cfg.secret_file, &cfg.secret,
				   &cfg.secret_len, &log)) < 0) {
		fprintf(stderr, PROG ": --secret-file %s: %s\n",
			cfg.secret_file, strerror(-r));
		return EXIT_FAIL;
	}
	raise_nofile();
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!cfg.server) {
		r = bench_server_start(&srv, cfg.argv0, cfg.volume,
				       volume_size(&cfg),
				       volume_size(&cfg) - VOLUME_BASE,
				       cfg.metadata_only, cfg.secret_file);
		if (r < 0)
			goto out;
		cfg.server = srv.addr;
	}
	r = run(&cfg, kids, &fig);
	if (r == -EINTR)
		fprintf(stderr, PROG ": interrupted\n");
	else if (r < 0)
		fprintf(stderr, PROG ": the run failed: %s\n", strerror(-r));
out:
	kill_kids(kids);
	bench_server_stop(&srv);
	djmfs_secret_free(cfg.secret, cfg.secret_len);
	if (r < 0)
		return EXIT_FAIL;
	if (print_json(&cfg, kids, &fig) < 0) {
		fprintf(stderr, PROG ": writing the result failed\n");
		rc = EXIT_FAIL;
	}
	if (kids[0].final.n.errors + kids[1].final.n.errors > 0) {
		fprintf(stderr, PROG ": %" PRIu64 " I/Os failed (see above)\n",
			kids[0].final.n.errors + kids[1].final.n.errors);
		rc = EXIT_FAIL;
	}
	return rc;
}
