/*
 * streamd-bench: load test of streamd, the recording and time-shift
 * server.  K recorders each PUT a constant-bitrate MPEG-TS stream
 * (chunked, paced by the wall clock) to /record/bench-<i>; after a warm-up
 * that builds history, M viewers GET /streams/bench-<j % K>.ts?start=-S
 * (S random per viewer, or --shift) and read at the stream's rate through
 * a token bucket.  Over the measured window the bench samples streamd's
 * /metrics before and after and prints one JSON object: underflows,
 * deadline misses, bytes out, streamd's CPU and RSS, and what the clients
 * saw (stalls, short viewers, errors).  --sweep repeats the window with a
 * growing viewer count (doubling, then bisection) and reports the largest
 * count without underflows.  Unless --url names a running streamd, the
 * bench starts its own on a free port in a temporary directory.  Every
 * connection lives in one epoll loop on one thread with a minimal
 * HTTP/1.1 client, so thousands of viewers fit in one process.  The
 * payload is generated once by ffmpeg, long enough for the whole run.
 *
 * Exit status: 0 success, 1 the run failed or saw errors (the JSON is
 * still printed when a measurement was made), 2 bad usage.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "tool_clock.h"
#include "tool_json.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "streamd-bench"
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define MIB (UINT64_C(1) << 20)
#define TICK_S 0.010		/* pacing granularity of the loop */
#define BURST_S 2.0		/* a viewer's bucket: 2 s of data */
#define STALL_S 1.0		/* a hungry viewer without a byte this long */
#define SHORT_FRACTION 0.9	/* a viewer below this share of real time */
#define CHUNK_MAX 65536		/* recorder chunk payload */
#define QUANTUM_MAX 16384	/* viewer read size when paced */
#define ERRORS_LOGGED 10
#define PROGRESS_S 5.0
#define SETTLE_S 2.0		/* between sweep steps: sessions end */
#define START_TIMEOUT_S 60.0
#define STOP_TIMEOUT_S 15.0
#define FINISH_TIMEOUT_S 15.0
#define IO_TIMEOUT_S 10		/* the blocking /metrics requests */
#define PAYLOAD_MAX_S 600.0	/* longer runs loop the file */
#define SWEEP_STEPS_EST 16.0	/* for the volume size of a sweep */
#define MAX_STREAMD_ARGS 64
#define STREAMD_FDS_SPARE 256	/* descriptors beyond the connections:
				   volume, logs, epoll, io_uring, ... */

/* ------------------------------------------------------------------ */
/* Configuration and its flag table                                    */
/* ------------------------------------------------------------------ */

struct cfg {
	unsigned recorders, viewers, max_viewers, seed, pid;
	double duration, warmup, shift, history, bitrate;
	const char *url, *streamd;
	const char *streamd_args[MAX_STREAMD_ARGS];
	unsigned n_streamd_args;
	bool sweep, keep, stall_log;
};

enum flag_kind { FK_UINT, FK_SECONDS, FK_RATE, FK_STR, FK_LIST, FK_SET,
		 FK_HELP, FK_VERSION };

struct flag {
	const char *name;
	enum flag_kind kind;
	size_t off;
	double lo, hi;
	const char *arg, *help;
};

#define CO(f) offsetof(struct cfg, f)
static const struct flag flags[] = {
	{ "recorders", FK_UINT, CO(recorders), 1, 10000, "K",
	  "recording clients, one stream each (default 2)" },
	{ "viewers", FK_UINT, CO(viewers), 1, 1000000, "M",
	  "time-shift viewers (default 20; a sweep's first step)" },
	{ "duration", FK_SECONDS, CO(duration), 0.5, 1e6, "S",
	  "measured seconds (default 30)" },
	{ "bitrate", FK_RATE, CO(bitrate), 200e3, 1e9, "BPS",
	  "bits/s per stream, k/M suffixes (default 2M)" },
	{ "warmup", FK_SECONDS, CO(warmup), 0, 1e6, "S",
	  "recording before the viewers start (default 10)" },
	{ "shift", FK_SECONDS, CO(shift), 0.001, 1e6, "S",
	  "every viewer starts S s behind live (default: random\n"
	  "                     whole seconds in [1, warmup-1] per viewer)" },
	{ "history", FK_SECONDS, CO(history), 1, 1e7, "S",
	  "viewers start at random whole seconds in [1, S]\n"
	  "                     behind live, S clipped to what is recorded" },
	{ "seed", FK_UINT, CO(seed), 0, UINT_MAX, "N",
	  "seed of the random shifts (default 1)" },
	{ "sweep", FK_SET, CO(sweep), 0, 0, NULL,
	  "find the most viewers without underflows" },
	{ "max-viewers", FK_UINT, CO(max_viewers), 1, 1000000, "N",
	  "upper bound of a sweep (default 4096)" },
	{ "url", FK_STR, CO(url), 0, 0, "URL",
	  "use the streamd at http://HOST:PORT (default: start one)" },
	{ "pid", FK_UINT, CO(pid), 1, INT_MAX, "PID",
	  "with --url: streamd's pid, for cpu_pct and rss_mb" },
	{ "streamd", FK_STR, CO(streamd), 0, 0, "PATH",
	  "streamd to start (default $STREAMD, else from PATH)" },
	{ "streamd-arg", FK_LIST, CO(streamd_args), 0, 0, "X",
	  "pass X to that streamd (repeatable)" },
	{ "keep", FK_SET, CO(keep), 0, 0, NULL,
	  "keep the temporary directory (payload, data, log)" },
	{ "stall-log", FK_SET, CO(stall_log), 0, 0, NULL,
	  "describe each viewer stall on stderr (the first 200)" },
	{ "help", FK_HELP, 0, 0, 0, NULL, "this text" },
	{ "version", FK_VERSION, 0, 0, 0, NULL, "the version" },
};

static void usage(FILE *to)
{
	char lhs[64];

	fprintf(to, "usage: " PROG " [options]\n"
		"K recorders push MPEG-TS to streamd, M viewers watch it\n"
		"time-shifted; prints one JSON object with streamd's\n"
		"figures.\n");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		snprintf(lhs, sizeof(lhs), "--%s%s%s", flags[i].name,
			 flags[i].arg ? " " : "",
			 flags[i].arg ? flags[i].arg : "");
		fprintf(to, "  %-18s %s\n", lhs, flags[i].help);
	}
	fprintf(to, "Exit: 0 ok, 1 the run failed or saw errors, "
		"2 bad usage.\n");
}

static bool flag_set(struct cfg *cfg, const struct flag *f, const char *v)
{
	char *p = (char *)cfg + f->off;
	double d;

	switch (f->kind) {
	case FK_STR:
		*(const char **)p = v;
		return true;
	case FK_LIST:
		if (cfg->n_streamd_args >= MAX_STREAMD_ARGS)
			return false;
		cfg->streamd_args[cfg->n_streamd_args++] = v;
		return true;
	default:
		break;
	}
	if (!lg_parse_number(v, f->kind == FK_RATE, &d) || d < f->lo || d > f->hi)
		return false;
	if (f->kind == FK_UINT) {
		if (d != floor(d))
			return false;
		*(unsigned *)p = (unsigned)d;
	} else {
		*(double *)p = d;
	}
	return true;
}

static const struct flag *flag_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strlen(flags[i].name) == len &&
		    !strncmp(flags[i].name, name, len))
			return &flags[i];
	return NULL;
}

/* 0, 1 (--help/--version done: exit 0), or -EINVAL (message printed). */
static int parse_args(struct cfg *cfg, int argc, char **argv)
{
	const char *a = NULL;

	for (int i = 1; i < argc; i++) {
		const char *eq, *v = NULL;
		const struct flag *f;

		a = argv[i];
		if (strncmp(a, "--", 2) != 0)
			goto bad_arg;
		eq = strchr(a + 2, '=');
		f = flag_find(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
		if (!f)
			goto bad_arg;
		if (f->kind == FK_HELP || f->kind == FK_VERSION) {
			if (f->kind == FK_HELP)
				usage(stdout);
			else
				printf(PROG " " PACKAGE_VERSION "\n");
			return 1;
		}
		if (f->kind == FK_SET) {
			if (eq)
				goto bad_arg;
			*(bool *)((char *)cfg + f->off) = true;
			continue;
		}
		v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!v) {
			fprintf(stderr, PROG ": --%s needs a value\n", f->name);
			return -EINVAL;
		}
		if (!flag_set(cfg, f, v)) {
			fprintf(stderr, PROG ": bad value for --%s: %s\n",
				f->name, v);
			return -EINVAL;
		}
	}
	if (cfg->url && (cfg->streamd || cfg->n_streamd_args)) {
		fprintf(stderr, PROG ": --streamd and --streamd-arg start a "
			"streamd: not with --url\n");
		return -EINVAL;
	}
	if (!isnan(cfg->shift) && !isnan(cfg->history)) {
		fprintf(stderr, PROG ": --shift and --history both say where "
			"viewers start: one of them\n");
		return -EINVAL;
	}
	if (cfg->pid && !cfg->url) {
		fprintf(stderr, PROG ": --pid goes with --url\n");
		return -EINVAL;
	}
	return 0;
bad_arg:
	fprintf(stderr, PROG ": unknown argument %s\n", a);
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/*
 * Connection invariants (beyond loadgen.h's):
 *  1. A done connection is never touched by the loop again (close() took
 *     it out of epoll, and no connection is created while a batch of
 *     events is handled).
 *  2. A recorder frames a new chunk only when out is empty, so chunks are
 *     never interleaved, and appends the terminating chunk only after the
 *     last one.
 *  3. A viewer reads body bytes only while its bucket holds a quantum;
 *     tokens never exceed the 2 s burst.
 * Transitions: LG_CONNECTING -(conn_open or on_event: connected)->
 * LG_OPEN -(conn_close: rec_read after the answer, viewers_stop; or
 * conn_fail)-> LG_DONE.  In LG_OPEN a viewer first reads the head
 * (conn_head), then the body (viewer_read); a recorder streams chunks
 * (rec_tick) until rec_finish, then reads the answer (rec_read).
 */
enum conn_kind { CK_RECORDER, CK_VIEWER };

struct conn {
	struct lg_conn lc;	/* first: the epoll data points here */
	enum conn_kind kind;
	unsigned idx, stream;
	bool finishing, stalled;
	bool admitted;		/* viewer: answered 200 */
	bool refused;		/* viewer: answered 503 with Retry-After */
	struct lg_bucket bucket;
	double t_start, t_hungry, shift;
	double t_first;		/* viewer: its first body byte; 0: none */
	uint64_t sent;		/* recorder: payload bytes framed */
	uint64_t body;		/* viewer: payload bytes received */
	uint64_t stalls;
};

/* The /metrics lines the bench reads, summed over label sets. */
enum { M_UNDERFLOWS, M_MISSES, M_BYTES_OUT, M_BYTES_IN, M_SCHED_REQ,
       M_LATENESS_MAX, M_CACHE_HITS, M_CACHE_MISSES, M_CACHE_HIT_BYTES,
       M_DISK_READ, M_COUNT };
static const char *const metric_names[M_COUNT] = {
	"streamd_underflows_total", "streamd_sched_deadline_misses_total",
	"streamd_bytes_out_total", "streamd_bytes_in_total",
	"streamd_sched_requests_total", "streamd_sched_lateness_max_seconds",
	"streamd_cache_hits_total", "streamd_cache_misses_total",
	"streamd_cache_hit_bytes_total", "streamd_disk_read_bytes_total",
};

#define REASONS_MAX 8		/* admission refusal reasons kept */
#define REASON_METRIC "streamd_admission_refused_total"

struct metrics {
	bool ok, has[M_COUNT];
	double v[M_COUNT];
	/* REASON_METRIC by its reason label (disk, cpu, ...); nreasons < 0
	 * when streamd does not export it. */
	int nreasons;
	char reason[REASONS_MAX][16];
	double refused[REASONS_MAX];
};

#define RESULT_THREADS 12	/* thread names kept in a result */

/* The figures of one measured window (NAN: unknown, printed null). */
struct result {
	unsigned viewers;
	double duration_s, underflows, misses, bytes_out, bytes_in;
	double sched_requests, lateness_max_ms, cpu_pct, rss_mb;
	uint64_t viewer_bytes, stalls, short_viewers, errors;
	/* Admission, as the viewers saw it, and what each admitted viewer
	 * waited for its first body byte (ms). */
	uint64_t admitted, refused;
	double ttfb_p50_ms, ttfb_p99_ms, ttfb_max_ms;
	/* Where the viewers started: the effective --history bound (NAN
	 * without it) and the shifts asked for. */
	double history_eff, shift_min, shift_max;
	/* What the bytes cost: device reads (and where that figure came
	 * from: "metrics", "proc_io", NULL unknown), the cache's share. */
	double disk_read_bytes, cache_hit_ratio;
	const char *disk_read_source, *cache_ratio_source;
	double io0, io1;	/* /proc/PID/io read_bytes around the window */
	/* streamd's refusals over the window by reason; nreasons < 0 when
	 * it does not count them. */
	int nreasons;
	char reason[REASONS_MAX][16];
	double reason_refused[REASONS_MAX];
	/* streamd's threads over the window, by name (several threads may
	 * share one: MHD's workers), busiest first; the busiest single
	 * thread tells whether one thread, not the node, is the limit. */
	struct thread_use {
		char name[16];
		unsigned count;
		double pct, max_pct;
	} threads[RESULT_THREADS];
	unsigned nthreads;
	char hot_name[16];
	double hot_pct;
};

struct bench {
	struct cfg cfg;
	double last_tick;	/* --stall-log: the loop's previous tick */
	unsigned stalls_said;	/* --stall-log: lines printed */
	double rate;		/* bytes per second per stream */
	int ep;
	char dir[PATH_MAX];
	struct lg_target target;
	struct lg_loop loop;
	pid_t streamd;		/* ours, else 0 */
	pid_t watch;		/* for cpu_pct/rss_mb, else 0 */
	const char *payload;
	size_t payload_len;
	struct conn *rec, *view;
	unsigned nview;
	uint64_t rng;
	uint64_t errors;
	double t_rec0;		/* when the recorders started */
	double history_eff;	/* the step's --history bound, whole seconds */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Counts an error; the first few are told on stderr. */
static void bench_error(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (++b->errors > ERRORS_LOGGED) {
		if (b->errors == ERRORS_LOGGED + 1)
			fprintf(stderr, PROG ": more errors: not shown\n");
		return;
	}
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *conn_name(const struct conn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s %u (bench-%u)",
		 c->kind == CK_RECORDER ? "recorder" : "viewer", c->idx,
		 c->stream);
	return buf;
}

static void conn_fail(struct bench *b, struct conn *c, const char *what,
		      int err)
{
	char name[64];

	if (c->lc.state == LG_DONE)
		return;
	bench_error(b, "%s: %s%s%s", conn_name(c, name, sizeof(name)), what,
		    err ? ": " : "", err ? strerror(err) : "");
	lg_conn_close(&c->lc);
}

/* Sends what is queued; 0, or -1 after conn_fail. */
static int conn_flush(struct bench *b, struct conn *c)
{
	int r = lg_conn_flush(&c->lc);

	if (r < 0) {
		conn_fail(b, c, "send", -r);
		return -1;
	}
	return 0;
}

/* Opens a non-blocking connection with @request queued; 0 or -errno. */
static int conn_open(struct bench *b, struct conn *c, const char *request,
		     size_t cap)
{
	const char *what = "";
	int r;

	c->t_start = c->t_hungry = tool_now_s();
	c->bucket.t = c->t_start;
	r = lg_conn_open(&c->lc, b->ep, &b->target, c, request, cap, &what);
	if (r < 0) {
		c->lc.state = LG_OPEN;	/* so that conn_fail tells it */
		conn_fail(b, c, what, -r);
	}
	return r;
}

/* Reads into the head buffer until the head is whole.  Returns 1 with
 * the head parsed, 0 for more later, -1 after conn_fail. */
static int conn_head(struct bench *b, struct conn *c)
{
	int r = lg_conn_head(&c->lc);

	if (r >= 0)
		return r;
	if (r == -EPIPE)
		conn_fail(b, c, "connection closed before the response", 0);
	else if (r == -EPROTO)
		conn_fail(b, c, "not an HTTP response", 0);
	else
		conn_fail(b, c, "recv", -r);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Recorders: chunked PUT paced by the wall clock                      */
/* ------------------------------------------------------------------ */

static int rec_start(struct bench *b, struct conn *c, unsigned i)
{
	char req[512];

	*c = (struct conn){ .lc.fd = -1, .kind = CK_RECORDER, .idx = i,
			    .stream = i };
	snprintf(req, sizeof(req),
		 "PUT /record/bench-%u HTTP/1.1\r\nHost: %s\r\n"
		 "User-Agent: " PROG "\r\nContent-Type: video/mp2t\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n", i, b->target.hostport);
	return conn_open(b, c, req, CHUNK_MAX + 512);
}

/* Frames chunks until the bytes sent catch up with rate * elapsed time
 * (the payload loops) or the socket is full. */
static void rec_tick(struct bench *b, struct conn *c, double now)
{
	uint64_t due = (uint64_t)(b->rate * (now - c->t_start));
	struct lg_conn *lc = &c->lc;

	if (lc->state != LG_OPEN || c->finishing || conn_flush(b, c) < 0)
		return;
	while (lc->out_len == 0 && due > c->sent) {
		size_t pos = (size_t)(c->sent % b->payload_len);
		size_t n = b->payload_len - pos;

		if (n > CHUNK_MAX)
			n = CHUNK_MAX;
		if (n > due - c->sent)
			n = (size_t)(due - c->sent);
		lc->out_len = lg_chunk_frame(lc->out, b->payload + pos, n);
		c->sent += n;
		if (conn_flush(b, c) < 0)
			return;
	}
}

/* Ends the upload: the terminating chunk, then the answer is awaited. */
static void rec_finish(struct bench *b, struct conn *c)
{
	if (c->lc.state != LG_OPEN || c->finishing)
		return;
	c->finishing = true;
	lg_conn_queue(&c->lc, "0\r\n\r\n", 5);
	conn_flush(b, c);
}

/* The server answered: fine only after the terminating chunk, with 2xx. */
static void rec_read(struct bench *b, struct conn *c)
{
	char what[96];

	if (conn_head(b, c) <= 0)
		return;
	if (!c->finishing || c->lc.h.status / 100 != 2) {
		snprintf(what, sizeof(what), "streamd answered %d%s",
			 c->lc.h.status, c->finishing ? "" :
			 " before the end of the stream");
		conn_fail(b, c, what, 0);
		return;
	}
	lg_conn_close(&c->lc);
}

static bool recorders_done(void *arg)
{
	struct bench *b = arg;

	for (unsigned i = 0; i < b->cfg.recorders; i++)
		if (b->rec[i].lc.state != LG_DONE)
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Viewers: time-shifted GET read through a token bucket               */
/* ------------------------------------------------------------------ */

static char rx_buf[256 * 1024];	/* viewer bodies are counted, not kept */

static double quantum(const struct bench *b)
{
	return b->rate * 0.1 < QUANTUM_MAX ? b->rate * 0.1 : QUANTUM_MAX;
}

/* Whole seconds in [1, warmup - 1], or in [1, history_eff] with
 * --history, from a xorshift64* generator. */
static double next_shift(struct bench *b)
{
	uint64_t x = b->rng, span;

	if (!isnan(b->cfg.shift))
		return b->cfg.shift;
	x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
	b->rng = x;
	if (!isnan(b->cfg.history))
		span = (uint64_t)b->history_eff;
	else
		span = b->cfg.warmup >= 2 ? (uint64_t)floor(b->cfg.warmup) - 1
					  : 1;
	return (double)(1 + (x * UINT64_C(2685821657736338717)) % span);
}

/*
 * The --history bound for viewers starting now: S, clipped to the
 * seconds recorded so far less one (the newest second is not published
 * yet, as with the default [1, warmup - 1]); at least 1.  Surveillance
 * playback asks within the last hour, but a bench with a shorter
 * warm-up has less: asking beyond the recording's start would measure
 * streamd's clipping, not its reading, so the bound is what exists and
 * the JSON says which it was (history_s_effective).
 */
static double history_bound(const struct bench *b)
{
	double recorded = floor(tool_now_s() - b->t_rec0) - 1;
	double s = floor(b->cfg.history);

	if (recorded < s)
		s = recorded;
	return s < 1 ? 1 : s;
}

static int viewer_start(struct bench *b, struct conn *c, unsigned j)
{
	char req[512];

	*c = (struct conn){ .lc.fd = -1, .kind = CK_VIEWER, .idx = j,
			    .stream = j % b->cfg.recorders };
	lg_bucket_init(&c->bucket, b->rate, b->rate * BURST_S, tool_now_s());
	c->shift = next_shift(b);
	snprintf(req, sizeof(req),
		 "GET /streams/bench-%u.ts?start=-%g HTTP/1.1\r\nHost: %s\r\n"
		 "User-Agent: " PROG "\r\nConnection: close\r\n\r\n",
		 c->stream, c->shift, b->target.hostport);
	return conn_open(b, c, req, strlen(req) + 1);
}

/* Counts @n raw body bytes in @buf. */
static void viewer_account(struct bench *b, struct conn *c, char *buf,
			   size_t n, double now)
{
	struct lg_conn *lc = &c->lc;
	size_t payload = lc->h.chunked ? lg_chunk_feed(&lc->dec, buf, n, false)
				       : n;

	c->bucket.tokens -= (double)n;
	c->body += payload;
	/* Only body bytes feed a player: a head, or chunk framing alone,
	 * does not end a stall, so a slow start counts as one. */
	if (payload) {
		if (!c->t_first)
			c->t_first = now;
		c->t_hungry = now;
		c->stalled = false;
	}
	if (lc->dec.st == LG_CD_BAD)
		conn_fail(b, c, "bad chunked encoding", 0);
	else if (lc->dec.st == LG_CD_DONE)
		conn_fail(b, c, "the stream ended", 0);
}

/* Reads what the bucket allows (the head at any time). */
static void viewer_read(struct bench *b, struct conn *c, double now)
{
	struct lg_conn *lc = &c->lc;

	if (!lc->have_head) {
		char what[64];

		if (conn_head(b, c) <= 0)
			return;
		if (lc->h.status == 503 && lc->h.retry_after >= 0) {
			/* Refused by admission control: the server keeping
			 * its promise, not an error.  The viewer does not
			 * come back within the window (the offered load stays
			 * what --viewers says), and what it waited for is not
			 * a stall. */
			c->refused = true;
			c->stalls = 0;
			lg_conn_close(lc);
			return;
		}
		if (lc->h.status != 200) {
			snprintf(what, sizeof(what), "streamd answered %d",
				 lc->h.status);
			conn_fail(b, c, what, 0);
			return;
		}
		c->admitted = true;
		viewer_account(b, c, lc->head + lc->h.len,
			       lc->head_len - lc->h.len, now);
	}
	while (lc->state == LG_OPEN && lc->readable &&
	       c->bucket.tokens >= quantum(b)) {
		size_t want = c->bucket.tokens < (double)sizeof(rx_buf) ?
			      (size_t)c->bucket.tokens : sizeof(rx_buf);
		ssize_t n = recv(lc->fd, rx_buf, want, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			lc->readable = false;
		} else if (n <= 0) {
			conn_fail(b, c, n ? "recv" : "the stream ended",
				  n ? errno : 0);
		} else {
			viewer_account(b, c, rx_buf, (size_t)n, now);
		}
	}
}

/* With --stall-log: one line per stall, which viewer and where it was,
 * so a run tells start-up stalls from live followers' and paced ones;
 * and how far its recording's upload is behind its schedule (what the
 * bench could not send yet because the server had not read it), so a
 * live follower's stall tells a slow upload from a slow delivery. */
static void stall_say(struct bench *b, const struct conn *c, double now)
{
	const struct conn *rec = &b->rec[c->stream];
	double due, behind;

	if (!b->cfg.stall_log || b->stalls_said >= 200)
		return;
	b->stalls_said++;
	due = b->rate * (now - rec->t_start);
	behind = due > (double)rec->sent ? due - (double)rec->sent : 0;
	fprintf(stderr, PROG ": stall: viewer %u (bench-%u, start=-%g) hungry "
		"since %.3f s after its connect, now %.3f s; first byte %s%.3f "
		"s; %" PRIu64 " body bytes; upload %.2f s behind\n", c->idx,
		c->stream, c->shift, c->t_hungry - c->t_start,
		now - c->t_start, c->t_first ? "at " : "never, ",
		c->t_first ? c->t_first - c->t_start : 0.0, c->body,
		(behind + (double)rec->lc.out_len - (double)rec->lc.out_off) /
			b->rate);
}

/* Refills the bucket, reads, and notices a hungry viewer that gets
 * nothing (a stall, counted once per episode). */
static void viewer_tick(struct bench *b, struct conn *c, double now)
{
	if (c->lc.state == LG_DONE)
		return;
	lg_bucket_refill(&c->bucket, now);
	if (c->lc.state == LG_OPEN && c->lc.readable)
		viewer_read(b, c, now);
	if (c->lc.state == LG_DONE)
		return;
	if (c->bucket.tokens < quantum(b))
		c->t_hungry = now;
	else if (now - c->t_hungry > STALL_S && !c->stalled) {
		c->stalls++, c->stalled = true;
		stall_say(b, c, now);
	}
}

/* ------------------------------------------------------------------ */
/* The event loop                                                      */
/* ------------------------------------------------------------------ */

static void on_event(void *arg, void *ptr, uint32_t events, double now)
{
	struct bench *b = arg;
	struct conn *c = ptr;
	int r;

	if (c->lc.state == LG_CONNECTING && (r = lg_conn_connected(&c->lc))) {
		conn_fail(b, c, "connect", -r);
		return;
	}
	if ((events & EPOLLOUT) && conn_flush(b, c) < 0)
		return;
	if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	c->lc.readable = true;
	if (c->kind == CK_RECORDER)
		rec_read(b, c);
	else
		viewer_read(b, c, now);
}

static void tick(void *arg, double now)
{
	struct bench *b = arg;

	/* A late tick delays the recorders' sends as well as the viewers'
	 * reads: the live edge then stops, which the viewers near it see as
	 * stalls that are the bench's own. */
	if (b->cfg.stall_log && b->last_tick && now - b->last_tick > 0.25)
		fprintf(stderr, PROG ": stall: the bench's loop ticked %.3f s "
			"after its last tick\n", now - b->last_tick);
	b->last_tick = now;

	for (unsigned i = 0; i < b->cfg.recorders; i++)
		rec_tick(b, &b->rec[i], now);
	for (unsigned j = 0; j < b->nview; j++)
		viewer_tick(b, &b->view[j], now);
}

/* Runs until @until, or earlier when @done says so; -EINTR on a signal. */
static int loop_run(struct bench *b, double until, bool (*done)(void *))
{
	return lg_loop_run(&b->loop, until, done);
}

/* ------------------------------------------------------------------ */
/* /metrics                                                            */
/* ------------------------------------------------------------------ */

/* The REASON_METRIC lines of @text into @m, by reason (a line
 * without one counts as "unknown"). */
static void reasons_parse(const char *text, struct metrics *m)
{
	const size_t l = strlen(REASON_METRIC);

	m->nreasons = -1;
	for (const char *p = text; p && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *eol = strchr(p, '\n'), *r, *close;
		char name[16] = "unknown";
		int i;

		if (!eol)
			eol = p + strlen(p);
		if (strncmp(p, REASON_METRIC, l) != 0 ||
		    (p[l] != ' ' && p[l] != '{'))
			continue;
		close = p[l] == '{' ? memchr(p + l, '}', (size_t)(eol - p - l))
				    : p + l;
		if (!close)
			continue;
		r = memmem(p + l, (size_t)(close - p - l), "reason=\"", 8);
		if (r) {
			size_t n = strcspn(r + 8, "\"\n");

			snprintf(name, sizeof(name), "%.*s", (int)n, r + 8);
		}
		if (m->nreasons < 0)
			m->nreasons = 0;
		for (i = 0; i < m->nreasons && strcmp(m->reason[i], name); i++)
			;
		if (i == m->nreasons) {
			if (i == REASONS_MAX)
				continue;
			memcpy(m->reason[i], name, sizeof(name));
			m->refused[i] = 0;
			m->nreasons++;
		}
		m->refused[i] += strtod(close + 1, NULL);
	}
}

static void metrics_read(struct bench *b, struct metrics *m)
{
	char *text = NULL, err[512];

	memset(m, 0, sizeof(*m));
	if (lg_http_get(&b->target, "/metrics", NULL, IO_TIMEOUT_S, &text, err,
			sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		bench_error(b, "could not read /metrics");
		return;
	}
	lg_metrics_parse(text, metric_names, M_COUNT, m->v, m->has);
	reasons_parse(text, m);
	m->ok = true;
	free(text);
}

/* A counter's growth between two samples; NAN when either lacks it. */
static double metric_delta(const struct metrics *a, const struct metrics *z,
			   int i)
{
	return a->has[i] && z->has[i] ? z->v[i] - a->v[i] : NAN;
}

/* ------------------------------------------------------------------ */
/* Set-up: the server's address, the payload, our own streamd          */
/* ------------------------------------------------------------------ */

/* "http://HOST:PORT[/...]" into b->target; 0 or -EINVAL. */
static int url_parse(struct bench *b, const char *url)
{
	char err[512];
	int r = lg_target_parse(&b->target, url, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, PROG ": %s\n", err);
	return r;
}

/* Forks @argv with stdin from /dev/null and stdout/stderr to @log (NULL:
 * stderr); it dies with us, in its own process group with @log (see
 * lg_spawn).  The pid, or -errno. */
static pid_t spawn(char *const argv[], const char *log)
{
	int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			    0644) : 2;
	pid_t pid;

	if (fd < 0)
		return -errno;
	pid = lg_spawn(argv, fd, fd, log != NULL, PROG);
	if (log)
		close(fd);
	return pid;
}

/* Seconds of payload: the whole run, so that timestamps stay monotonic
 * (a sweep's steps are estimated; past PAYLOAD_MAX_S the file loops). */
static double payload_seconds(const struct cfg *cfg)
{
	double s = cfg->warmup + cfg->duration * (cfg->sweep ? 8 : 1) + 5 +
		   FINISH_TIMEOUT_S;

	return s < PAYLOAD_MAX_S ? ceil(s) : PAYLOAD_MAX_S;
}

/* ffmpeg makes a CBR MPEG-TS file at the bitrate (muxrate), mapped. */
static int payload_make(struct bench *b)
{
	char file[PATH_MAX + 16], t[32], vb[32], mux[32];
	double bps = b->cfg.bitrate, video = bps * 0.9 - 128e3;
	char *argv[] = {
		"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", t, "-c:v", "libx264", "-preset", "veryfast",
		"-b:v", vb, "-maxrate", vb, "-bufsize", vb, "-g", "50",
		"-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-b:a", "96k",
		"-f", "mpegts", "-muxrate", mux, file, NULL };
	struct stat st;
	int status = 0, fd;
	pid_t pid;
	void *map;

	if (!lg_have_program("ffmpeg")) {
		fprintf(stderr, PROG ": ffmpeg not found in PATH: it makes "
			"the MPEG-TS payload\n");
		return -ENOENT;
	}
	snprintf(file, sizeof(file), "%s/payload.ts", b->dir);
	snprintf(t, sizeof(t), "%.0f", payload_seconds(&b->cfg));
	snprintf(vb, sizeof(vb), "%.0f", video > 50e3 ? video : 50e3);
	snprintf(mux, sizeof(mux), "%.0f", bps);
	fprintf(stderr, PROG ": ffmpeg: %s s of MPEG-TS at %s bit/s\n", t, mux);
	pid = spawn(argv, NULL);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    stat(file, &st) < 0 || st.st_size < 188 * 100) {
		fprintf(stderr, PROG ": ffmpeg failed to make %s\n", file);
		return -EIO;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	map = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ,
					  MAP_PRIVATE, fd, 0);
	if (fd >= 0)
		close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap %s: %s\n", file, strerror(errno));
		return -EIO;
	}
	b->payload = map;
	b->payload_len = (size_t)st.st_size;
	return 0;
}

/* Bytes the recordings of a whole run need, with slack: at least 1 GiB. */
static uint64_t volume_size(const struct cfg *cfg)
{
	double steps = cfg->sweep ? SWEEP_STEPS_EST : 1;
	double secs = cfg->warmup + (cfg->duration + SETTLE_S) * steps;
	double bytes = cfg->recorders * cfg->bitrate / 8 * secs * 1.5 +
		       256.0 * MIB;
	uint64_t v = (uint64_t)ceil(bytes / MIB) * MIB;

	return v < 1024 * MIB ? 1024 * MIB : v;
}

/* The address in streamd's "listening on http://HOST:PORT/" line of
 * @log (the contract), or in its banner on stdout (@out: "... serving on
 * http://HOST:PORT/", still there when --log-level hides the line): 1
 * found (b->target set), 0 not yet, -EPROTO. */
static int log_listening(struct bench *b, const char *log, const char *out)
{
	static const char *const keys[] = { "listening on http://",
					    "serving on http://" };
	char buf[65536], url[300];
	const char *p = NULL;

	for (unsigned i = 0; i < 2 && !p; i++) {
		int fd = open(i ? out : log, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if ((p = strstr(buf, keys[i])))
			p += strlen(keys[i]);
	}
	if (!p)
		return 0;
	snprintf(url, sizeof(url), "http://%.*s", (int)strcspn(p, "/ \n"), p);
	return url_parse(b, url) == 0 ? 1 : -EPROTO;
}

static void print_tail(const char *path)
{
	char buf[2048];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size = fd < 0 ? 0 : lseek(fd, 0, SEEK_END);
	ssize_t n;

	if (fd < 0)
		return;
	size -= (off_t)sizeof(buf) - 1;
	lseek(fd, size > 0 ? size : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0)
		fprintf(stderr, "--- %s (tail) ---\n%.*s", path, (int)n, buf);
}

/* streamd's command line into @argv; the strings live in @s. */
struct streamd_cmd {
	char data[PATH_MAX + 8], log[PATH_MAX + 16], out[PATH_MAX + 16];
	char vol[32], maxconn[32];
	char *argv[16 + MAX_STREAMD_ARGS];
};

/*
 * Open files for @need descriptors in process @pid (0: the bench): the
 * soft limit goes to the hard one (further when privileged).  When it
 * stays short, connections past it fail with EMFILE, and a run meant to
 * meet streamd's admission control would meet the descriptor limit
 * instead: that is told, not hidden.
 */
static void nofile_ensure(pid_t pid, const char *who, unsigned long need)
{
	long got = lg_nofile_raise(pid, need);

	if (got < 0)
		fprintf(stderr, PROG ": %s: open-file limit: %s\n", who,
			strerror((int)-got));
	else if ((unsigned long)got < need)
		fprintf(stderr, PROG ": %s: open-file limit %ld, below the "
			"%lu this run needs: connections past it will fail\n",
			who, got, need);
}

/* Connections the run may hold at once: every recorder and viewer of
 * the largest step, and room for /metrics and stragglers. */
static unsigned conns_needed(const struct cfg *cfg)
{
	return cfg->recorders + (cfg->sweep ? cfg->max_viewers :
				 cfg->viewers) + 64;
}

static void streamd_argv(const struct bench *b, const char *bin,
			 struct streamd_cmd *s)
{
	const struct cfg *cfg = &b->cfg;
	unsigned n = 0, conns = conns_needed(cfg);

	snprintf(s->data, sizeof(s->data), "%s/data", b->dir);
	snprintf(s->log, sizeof(s->log), "%s/streamd.log", b->dir);
	snprintf(s->out, sizeof(s->out), "%s/streamd.out", b->dir);
	snprintf(s->vol, sizeof(s->vol), "%" PRIu64, volume_size(cfg));
	snprintf(s->maxconn, sizeof(s->maxconn), "%u", conns);
	s->argv[n++] = (char *)bin;
	s->argv[n++] = "--listen", s->argv[n++] = "127.0.0.1:0";
	s->argv[n++] = "--data-dir", s->argv[n++] = s->data;
	s->argv[n++] = "--volume-size", s->argv[n++] = s->vol;
	s->argv[n++] = "--error-log", s->argv[n++] = s->log;
	if (conns > 1024)	/* streamd's default max_connections */
		s->argv[n++] = "--max-connections", s->argv[n++] = s->maxconn;
	for (unsigned i = 0; i < cfg->n_streamd_args; i++)
		s->argv[n++] = (char *)cfg->streamd_args[i];
	s->argv[n] = NULL;
}

/* Starts streamd on a free port with its data in b->dir; waits for its
 * "listening on" line.  0 or -errno (message printed). */
static int streamd_start(struct bench *b)
{
	const char *bin = b->cfg.streamd ? b->cfg.streamd : getenv("STREAMD");
	double give_up = tool_now_s() + START_TIMEOUT_S;
	struct streamd_cmd s;
	int r = 0;

	bin = bin && *bin ? bin : "streamd";
	if (!lg_have_program(bin)) {
		fprintf(stderr, PROG ": %s not found (--streamd, $STREAMD or "
			"PATH)\n", bin);
		return -ENOENT;
	}
	streamd_argv(b, bin, &s);
	if (mkdir(s.data, 0755) < 0)
		return -errno;
	fprintf(stderr, PROG ": starting %s (volume %s bytes)\n", bin, s.vol);
	b->streamd = spawn(s.argv, s.out);
	if (b->streamd < 0) {
		r = b->streamd;
		b->streamd = 0;
		fprintf(stderr, PROG ": fork: %s\n", strerror(-r));
		return r;
	}
	while (!interrupted && (r = log_listening(b, s.log, s.out)) == 0) {
		int status;

		if (waitpid(b->streamd, &status, WNOHANG) == b->streamd) {
			b->streamd = 0;
			fprintf(stderr, PROG ": streamd exited (status %d) "
				"before listening\n", WIFEXITED(status) ?
				WEXITSTATUS(status) : 128 + WTERMSIG(status));
			r = -ECHILD;
		} else if (tool_now_s() > give_up) {
			fprintf(stderr, PROG ": streamd did not say "
				"\"listening on\" in %.0f s\n",
				START_TIMEOUT_S);
			r = -ETIMEDOUT;
		} else {
			lg_sleep(0.05);
		}
		if (r < 0)
			break;
	}
	if (r <= 0) {
		print_tail(s.log);
		print_tail(s.out);
		return r < 0 ? r : -EINTR;
	}
	b->watch = b->streamd;
	/* It inherited ours (raised in main); prlimit says what it has. */
	nofile_ensure(b->streamd, "streamd", conns_needed(&b->cfg) +
		      STREAMD_FDS_SPARE);
	fprintf(stderr, PROG ": streamd (pid %d) listening on http://%s/\n",
		(int)b->streamd, b->target.hostport);
	return 0;
}

/* SIGTERM, then SIGKILL if it lingers; a bad exit is reported. */
static void streamd_stop(struct bench *b)
{
	double give_up = tool_now_s() + STOP_TIMEOUT_S;
	int status = 0;
	pid_t r;

	if (b->streamd <= 0)
		return;
	kill(b->streamd, SIGTERM);
	while ((r = waitpid(b->streamd, &status, WNOHANG)) == 0 &&
	       tool_now_s() < give_up)
		lg_sleep(0.05);
	if (r == 0) {
		fprintf(stderr, PROG ": streamd ignored SIGTERM: killed\n");
		kill(b->streamd, SIGKILL);
		waitpid(b->streamd, &status, 0);
	} else if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, PROG ": streamd exited with status %d\n",
			WIFEXITED(status) ? WEXITSTATUS(status) :
			128 + WTERMSIG(status));
	}
	b->streamd = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Measuring                                                           */
/* ------------------------------------------------------------------ */

#define MAX_STEPS 64

static uint64_t recorders_sent(const struct bench *b)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < b->cfg.recorders; i++)
		n += b->rec[i].sent;
	return n;
}

static unsigned recorders_alive(const struct bench *b)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->cfg.recorders; i++)
		n += b->rec[i].lc.state != LG_DONE;
	return n;
}

/* Runs the loop until @until with a progress line every PROGRESS_S. */
static int loop_progress(struct bench *b, const char *what, double t0,
			 double until)
{
	int r = 0;

	for (double t = t0 + PROGRESS_S; r == 0 && tool_now_s() < until;
	     t += PROGRESS_S) {
		uint64_t bytes = 0, stalls = 0, refused = 0;

		r = loop_run(b, t < until ? t : until, NULL);
		for (unsigned j = 0; j < b->nview; j++)
			bytes += b->view[j].body, stalls += b->view[j].stalls,
			refused += b->view[j].refused;
		fprintf(stderr, PROG ": %s %.0f/%.0f s: %u recorders, %u "
			"viewers, %.1f MB viewed, %" PRIu64 " stalls, %" PRIu64
			" errors, %" PRIu64 " refused\n", what,
			tool_now_s() - t0, until - t0, recorders_alive(b),
			b->nview, (double)bytes / 1e6, stalls, b->errors,
			refused);
	}
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank @p-th percentile of sorted @v (n > 0). */
static double percentile(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100 * (double)n);

	return v[k ? k - 1 : 0];
}

/*
 * Sums what the viewers saw at @t_end and closes them.  A refused viewer
 * is neither short nor stalled: it was told to go.  An admitted viewer
 * that has no body byte yet counts with the time it has waited, so a
 * viewer starved for the whole window weighs on ttfb_p99_ms instead of
 * vanishing from it.
 */
static void viewers_stop(struct bench *b, struct result *res, double t_end)
{
	double enough = SHORT_FRACTION * b->rate * res->duration_s;
	double *ttfb = calloc(b->nview ? b->nview : 1, sizeof(*ttfb));
	size_t nt = 0;

	res->shift_min = res->shift_max = NAN;
	for (unsigned j = 0; j < b->nview; j++) {
		struct conn *c = &b->view[j];

		res->viewer_bytes += c->body;
		res->stalls += c->stalls;
		res->short_viewers += !c->refused && (double)c->body < enough;
		res->admitted += c->admitted;
		res->refused += c->refused;
		if (c->admitted && ttfb)
			ttfb[nt++] = ((c->t_first ? c->t_first : t_end) -
				      c->t_start) * 1e3;
		if (isnan(res->shift_min) || c->shift < res->shift_min)
			res->shift_min = c->shift;
		if (isnan(res->shift_max) || c->shift > res->shift_max)
			res->shift_max = c->shift;
		lg_conn_close(&c->lc);
		free(c->lc.out);
	}
	res->ttfb_p50_ms = res->ttfb_p99_ms = res->ttfb_max_ms = NAN;
	if (nt) {
		qsort(ttfb, nt, sizeof(*ttfb), cmp_double);
		res->ttfb_p50_ms = percentile(ttfb, nt, 50);
		res->ttfb_p99_ms = percentile(ttfb, nt, 99);
		res->ttfb_max_ms = ttfb[nt - 1];
	}
	free(ttfb);
	free(b->view);
	b->view = NULL;
	b->nview = 0;
}

/*
 * What the window's bytes cost the device.  streamd's own count of
 * device reads wins; without it, read_bytes of /proc/PID/io: the
 * embedded volume is read with O_DIRECT, so every byte there went to the
 * device, and a page-cache hit (none with O_DIRECT) is not counted.  The
 * cache's hit ratio is by bytes, hit bytes / (hit bytes + device reads),
 * the share of what players got that the disk did not have to read;
 * without the byte counters, by requests, hits / (hits + misses).
 */
static void cost_fill(struct result *res, const struct metrics *m0,
		      const struct metrics *m1)
{
	double hit_bytes = metric_delta(m0, m1, M_CACHE_HIT_BYTES);
	double hits = metric_delta(m0, m1, M_CACHE_HITS);
	double misses = metric_delta(m0, m1, M_CACHE_MISSES);

	res->disk_read_bytes = metric_delta(m0, m1, M_DISK_READ);
	res->disk_read_source = "metrics";
	if (isnan(res->disk_read_bytes)) {
		res->disk_read_bytes = res->io1 - res->io0;
		res->disk_read_source = "proc_io";
	}
	if (isnan(res->disk_read_bytes))
		res->disk_read_source = NULL;
	res->cache_hit_ratio = NAN;
	res->cache_ratio_source = NULL;
	if (!isnan(hit_bytes) && m1->has[M_DISK_READ] &&
	    hit_bytes + metric_delta(m0, m1, M_DISK_READ) > 0) {
		res->cache_hit_ratio = hit_bytes /
			(hit_bytes + metric_delta(m0, m1, M_DISK_READ));
		res->cache_ratio_source = "bytes";
	} else if (!isnan(hits) && !isnan(misses) && hits + misses > 0) {
		res->cache_hit_ratio = hits / (hits + misses);
		res->cache_ratio_source = "requests";
	}
}

/* streamd's refusals in the window by reason (a reason first seen at
 * the end counts from 0). */
static void reasons_fill(struct result *res, const struct metrics *m0,
			 const struct metrics *m1)
{
	res->nreasons = m1->ok ? m1->nreasons : -1;
	for (int i = 0; i < res->nreasons; i++) {
		double before = 0;

		for (int j = 0; j < m0->nreasons; j++)
			if (!strcmp(m0->reason[j], m1->reason[i]))
				before = m0->refused[j];
		memcpy(res->reason[i], m1->reason[i], sizeof(res->reason[i]));
		res->reason_refused[i] = m1->refused[i] - before;
	}
}

static void result_fill(struct result *res, const struct metrics *m0,
			const struct metrics *m1, uint64_t sent)
{
	cost_fill(res, m0, m1);
	reasons_fill(res, m0, m1);
	res->underflows = metric_delta(m0, m1, M_UNDERFLOWS);
	res->misses = metric_delta(m0, m1, M_MISSES);
	res->bytes_out = metric_delta(m0, m1, M_BYTES_OUT);
	if (isnan(res->bytes_out))
		res->bytes_out = (double)res->viewer_bytes;
	res->bytes_in = metric_delta(m0, m1, M_BYTES_IN);
	if (isnan(res->bytes_in))
		res->bytes_in = (double)sent;
	res->sched_requests = metric_delta(m0, m1, M_SCHED_REQ);
	res->lateness_max_ms = m1->has[M_LATENESS_MAX] ?
			       m1->v[M_LATENESS_MAX] * 1e3 : NAN;
}

static int cmp_use(const void *a, const void *b)
{
	const struct thread_use *x = a, *y = b;

	return (x->pct < y->pct) - (x->pct > y->pct);
}

/*
 * Fills @res's thread figures from two samples @secs apart: each
 * thread's share of a core, summed by name, and the busiest one.  A
 * thread born in the window counts from 0; one that ended is not seen.
 */
static void threads_use(const struct lg_thread *t0, size_t n0,
			const struct lg_thread *t1, size_t n1, double secs,
			struct result *res)
{
	struct thread_use *u = calloc(n1 ? n1 : 1, sizeof(*u));
	size_t nu = 0, i, j;

	res->hot_pct = NAN;
	if (!u || secs <= 0)
		goto out;
	for (i = 0; i < n1; i++) {
		double before = 0, pct;

		for (j = 0; j < n0; j++)
			if (t0[j].tid == t1[i].tid) {
				before = t0[j].cpu_s;
				break;
			}
		pct = (t1[i].cpu_s - before) / secs * 100;
		if (isnan(res->hot_pct) || pct > res->hot_pct) {
			res->hot_pct = pct;
			memcpy(res->hot_name, t1[i].name, sizeof(res->hot_name));
		}
		for (j = 0; j < nu && strcmp(u[j].name, t1[i].name); j++)
			;
		if (j == nu)
			memcpy(u[nu++].name, t1[i].name, sizeof(u->name));
		u[j].count++;
		u[j].pct += pct;
		if (pct > u[j].max_pct)
			u[j].max_pct = pct;
	}
	qsort(u, nu, sizeof(*u), cmp_use);
	res->nthreads = nu < RESULT_THREADS ? (unsigned)nu : RESULT_THREADS;
	memcpy(res->threads, u, res->nthreads * sizeof(*u));
out:
	free(u);
}

/* One measured window with @m fresh viewers. */
static int step(struct bench *b, unsigned m, struct result *res)
{
	struct metrics m0, m1;
	uint64_t err0 = b->errors, sent0 = recorders_sent(b);
	double cpu0, cpu1, t0, t1;
	struct lg_thread *th0 = NULL, *th1 = NULL;
	size_t nth0 = 0, nth1 = 0;
	int r = 0;

	*res = (struct result){ .viewers = m, .hot_pct = NAN };
	metrics_read(b, &m0);
	if (lg_proc_threads(b->watch, &th0, &nth0) < 0)
		nth0 = 0;
	cpu0 = lg_proc_cpu_s(b->watch);
	res->io0 = lg_proc_read_bytes(b->watch);
	t0 = tool_now_s();
	res->history_eff = NAN;
	if (!isnan(b->cfg.history))
		res->history_eff = b->history_eff = history_bound(b);
	b->view = calloc(m, sizeof(*b->view));
	if (!b->view)
		return -ENOMEM;
	for (b->nview = 0; b->nview < m; b->nview++)
		viewer_start(b, &b->view[b->nview], b->nview);
	r = loop_progress(b, "measure", t0, t0 + b->cfg.duration);
	t1 = tool_now_s();
	cpu1 = lg_proc_cpu_s(b->watch);
	res->io1 = lg_proc_read_bytes(b->watch);
	if (lg_proc_threads(b->watch, &th1, &nth1) == 0)
		threads_use(th0, nth0, th1, nth1, t1 - t0, res);
	free(th0);
	free(th1);
	metrics_read(b, &m1);
	res->duration_s = t1 - t0;
	res->cpu_pct = (cpu1 - cpu0) / (t1 - t0) * 100;
	res->rss_mb = lg_proc_rss_mb(b->watch);
	viewers_stop(b, res, t1);
	result_fill(res, &m0, &m1, recorders_sent(b) - sent0);
	res->errors = b->errors - err0;
	return r;
}

static bool step_ok(const struct result *r)
{
	return !(r->underflows > 0) && r->errors == 0;
}

/* The viewers a clean step served: all it offered, unless some were
 * refused (a viewer still waiting for its answer is not refused). */
static uint64_t served(const struct result *s)
{
	return s->refused ? s->admitted : s->viewers;
}

/*
 * Doubles the viewers until a step fails, then bisects to within 10 %;
 * @best is the clean step (no underflows, no errors) that admitted the
 * most viewers (NULL if none).  Refusals do not make a step fail: they
 * are the server keeping its promise.  Once a clean step has refusals
 * the sweep stops: streamd met its admission limit, and more offered
 * viewers would only be more refusals.  *@limit is the most viewers
 * admitted in a step with refusals, -1 when none was refused.
 */
static int sweep(struct bench *b, struct result *steps, unsigned *n,
		 const struct result **best, long *limit)
{
	unsigned lo = 0, hi = 0, v = b->cfg.viewers, max = b->cfg.max_viewers;
	int r = 0;

	if (v > max)
		v = max;
	while (r == 0 && *n < MAX_STEPS) {
		struct result *s = &steps[(*n)++];
		bool ok;

		r = step(b, v, s);
		ok = step_ok(s);
		fprintf(stderr, PROG ": sweep step %u: %u viewers (%" PRIu64
			" admitted, %" PRIu64 " refused): %.0f underflows, %.0f "
			"deadline misses, cpu %.1f%%, %" PRIu64 " errors: %s\n",
			*n, v, s->admitted, s->refused, s->underflows,
			s->misses, s->cpu_pct, s->errors,
			!ok ? "over" : s->refused ? "admission limit" : "ok");
		if (ok && (!*best || served(s) > served(*best)))
			*best = s;
		if (s->refused && (long)s->admitted > *limit)
			*limit = (long)s->admitted;
		if (ok && s->refused)
			break;
		if (ok)
			lo = v;
		else
			hi = v;
		if (!hi && v >= max)
			break;
		if (hi && hi - lo <= (hi / 10 > 1 ? hi / 10 : 1))
			break;
		v = hi ? lo + (hi - lo) / 2 : (v * 2 < max ? v * 2 : max);
		if (r == 0)
			r = loop_run(b, tool_now_s() + SETTLE_S, NULL);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Output and the run                                                  */
/* ------------------------------------------------------------------ */

struct field {
	const char *key;
	double v;		/* NAN: null */
	int prec;		/* decimals; 0: an integer */
};

/* Thread names are ours (prctl) or the libraries', plain ASCII; anything
 * else, and the characters JSON would escape, become '?' so a name reads
 * the same in every consumer. */
static json_t *thread_name(const char *s)
{
	char buf[64];
	size_t i;

	for (i = 0; s[i] && i < sizeof(buf) - 1; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' &&
				 s[i] != '\\' ? s[i] : '?';
	buf[i] = '\0';
	return json_string(buf);
}

static int add_fields(json_t *o, const struct field *f, size_t n)
{
	int e = 0;

	for (size_t i = 0; i < n; i++)
		e |= tool_json_dbl(o, f[i].key, f[i].v, f[i].prec);
	return e;
}

/* "hottest_thread" (its name, null if unknown) and "threads": an array
 * of {name, count, cpu_pct, max_pct}, busiest name first. */
static int add_threads(json_t *o, const struct result *r)
{
	json_t *list = json_array();
	int e;

	e = tool_json_set(o, "hottest_thread", isnan(r->hot_pct) ?
			  json_null() : thread_name(r->hot_name));
	for (unsigned i = 0; i < r->nthreads; i++) {
		const struct thread_use *u = &r->threads[i];
		json_t *t = json_object();

		e |= tool_json_set(t, "name", thread_name(u->name));
		e |= tool_json_u64(t, "count", u->count);
		e |= tool_json_dbl(t, "cpu_pct", u->pct, 2);
		e |= tool_json_dbl(t, "max_pct", u->max_pct, 2);
		e |= json_array_append_new(list, t) ? -ENOMEM : 0;
	}
	return e | tool_json_set(o, "threads", list);
}

/* "refused_reasons": streamd's refusals in the window by reason, an
 * object (null when streamd does not count them). */
static int add_reasons(json_t *o, const struct result *r)
{
	json_t *by;
	int e = 0;

	if (r->nreasons < 0)
		return tool_json_set(o, "refused_reasons", json_null());
	by = json_object();
	for (int i = 0; i < r->nreasons; i++)
		e |= tool_json_dbl(by, r->reason[i], r->reason_refused[i], 0);
	return e | tool_json_set(o, "refused_reasons", by);
}

/* One line of JSON: the fixed fields first, then the details. */
static int print_result(const struct bench *b, const struct result *r,
			uint64_t errors, const struct result *steps,
			unsigned n, const struct result *best, long limit)
{
	const struct cfg *cfg = &b->cfg;
	double gbps = r->bytes_out * 8 / r->duration_s / 1e9;
	const struct field f[] = {
		{ "recorders", cfg->recorders, 0 },
		{ "viewers", r->viewers, 0 },
		{ "duration_s", r->duration_s, 3 },
		{ "underflows", r->underflows, 0 },
		{ "deadline_misses", r->misses, 0 },
		{ "bytes_out", r->bytes_out, 0 },
		{ "cpu_pct", r->cpu_pct, 2 },
		{ "rss_mb", r->rss_mb, 1 },
		{ "bitrate_bps", cfg->bitrate, 0 },
		{ "warmup_s", cfg->warmup, 3 },
		{ "shift_s", cfg->shift, 3 },
		{ "seed", cfg->seed, 0 },
		{ "bytes_in", r->bytes_in, 0 },
		{ "viewer_bytes", (double)r->viewer_bytes, 0 },
		{ "viewer_stalls", (double)r->stalls, 0 },
		{ "viewer_bytes_short", (double)r->short_viewers, 0 },
		{ "sched_requests", r->sched_requests, 0 },
		{ "lateness_max_ms", r->lateness_max_ms, 3 },
		{ "errors", (double)errors, 0 },
		{ "hottest_thread_pct", r->hot_pct, 2 },
		{ "admitted", (double)r->admitted, 0 },
		{ "refused", (double)r->refused, 0 },
		{ "ttfb_p50_ms", r->ttfb_p50_ms, 3 },
		{ "ttfb_p99_ms", r->ttfb_p99_ms, 3 },
		{ "ttfb_max_ms", r->ttfb_max_ms, 3 },
		{ "cache_hit_ratio", r->cache_hit_ratio, 6 },
		{ "disk_read_bytes", r->disk_read_bytes, 0 },
		{ "disk_bytes_per_byte_out", r->bytes_out > 0 ?
		  r->disk_read_bytes / r->bytes_out : NAN, 6 },
		{ "cpu_pct_per_gbps", gbps > 0 ? r->cpu_pct / gbps : NAN, 3 },
		{ "history_s", cfg->history, 3 },
		{ "history_s_effective", r->history_eff, 0 },
		{ "shift_min_s", r->shift_min, 3 },
		{ "shift_max_s", r->shift_max, 3 },
	};
	json_t *o = json_object();
	int e;

	e = add_fields(o, f, sizeof(f) / sizeof(f[0]));
	e |= tool_json_set(o, "disk_read_bytes_source", r->disk_read_source ?
			   json_string(r->disk_read_source) : json_null());
	e |= tool_json_set(o, "cache_hit_ratio_source",
			   r->cache_ratio_source ?
			   json_string(r->cache_ratio_source) : json_null());
	e |= add_reasons(o, r);
	e |= add_threads(o, r);
	if (cfg->sweep) {
		json_t *list = json_array();

		e |= tool_json_u64(o, "sweep_max_viewers",
				       best ? served(best) : 0);
		e |= tool_json_dbl(o, "sweep_admission_limit",
				   limit >= 0 ? (double)limit : NAN, 0);
		for (unsigned i = 0; i < n; i++) {
			const struct field s[] = {
				{ "viewers", steps[i].viewers, 0 },
				{ "admitted", (double)steps[i].admitted, 0 },
				{ "refused", (double)steps[i].refused, 0 },
				{ "underflows", steps[i].underflows, 0 },
				{ "deadline_misses", steps[i].misses, 0 },
				{ "cpu_pct", steps[i].cpu_pct, 2 },
				{ "viewer_stalls", (double)steps[i].stalls, 0 },
				{ "errors", (double)steps[i].errors, 0 },
				{ "hottest_thread_pct", steps[i].hot_pct, 2 },
				{ "ttfb_p99_ms", steps[i].ttfb_p99_ms, 3 },
			};
			json_t *step = json_object();

			e |= add_fields(step, s, sizeof(s) / sizeof(s[0]));
			e |= json_array_append_new(list, step) ? -ENOMEM : 0;
		}
		e |= tool_json_set(o, "sweep", list);
	}
	if (e == 0)
		e = tool_json_print(stdout, o, 0);
	json_decref(o);
	return e;
}

/* Recorders start; after the warm-up at least one must be streaming. */
static int recorders_start(struct bench *b)
{
	double t0 = tool_now_s();
	int r;

	b->rec = calloc(b->cfg.recorders, sizeof(*b->rec));
	if (!b->rec)
		return -ENOMEM;
	b->t_rec0 = t0;
	for (unsigned i = 0; i < b->cfg.recorders; i++)
		rec_start(b, &b->rec[i], i);
	fprintf(stderr, PROG ": %u recorders at %.0f bit/s, warm-up %.0f s\n",
		b->cfg.recorders, b->cfg.bitrate, b->cfg.warmup);
	r = loop_progress(b, "warmup", t0, t0 + b->cfg.warmup);
	if (r == 0 && !recorders_alive(b)) {
		fprintf(stderr, PROG ": no recorder is streaming\n");
		r = -EPIPE;
	}
	return r;
}

/* Sends every recorder's last chunk and waits for streamd's answers,
 * after a first interrupt too (a second one cuts the wait short). */
static void recorders_finish(struct bench *b)
{
	if (!b->rec)
		return;
	interrupted = 0;
	for (unsigned i = 0; i < b->cfg.recorders; i++)
		rec_finish(b, &b->rec[i]);
	loop_run(b, tool_now_s() + FINISH_TIMEOUT_S, recorders_done);
	for (unsigned i = 0; i < b->cfg.recorders; i++) {
		if (b->rec[i].lc.state != LG_DONE)
			conn_fail(b, &b->rec[i], "no answer to the end of "
				  "the upload", 0);
		free(b->rec[i].lc.out);
	}
	free(b->rec);
	b->rec = NULL;
}

static int setup(struct bench *b)
{
	const char *tmp = getenv("TMPDIR");
	struct metrics m;
	int r;

	snprintf(b->dir, sizeof(b->dir), "%s/" PROG ".XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(b->dir)) {
		fprintf(stderr, PROG ": mkdtemp %s: %s\n", b->dir,
			strerror(errno));
		b->dir[0] = '\0';
		return -errno;
	}
	b->ep = epoll_create1(EPOLL_CLOEXEC);
	if (b->ep < 0)
		return -errno;
	b->loop = (struct lg_loop){ .ep = b->ep, .tick_s = TICK_S, .arg = b,
				    .on_event = on_event, .tick = tick,
				    .interrupted = &interrupted };
	r = payload_make(b);
	if (r == 0 && !b->cfg.url)
		r = streamd_start(b);
	if (r < 0)
		return r;
	metrics_read(b, &m);
	if (!m.ok)
		return -EPROTO;
	if (!m.has[M_UNDERFLOWS])
		fprintf(stderr, PROG ": /metrics lacks %s\n",
			metric_names[M_UNDERFLOWS]);
	b->errors = 0;
	return 0;
}

static void teardown(struct bench *b)
{
	recorders_finish(b);
	streamd_stop(b);
	if (b->payload)
		munmap((void *)b->payload, b->payload_len);
	if (b->ep >= 0)
		close(b->ep);
	if (b->dir[0] && b->cfg.keep)
		fprintf(stderr, PROG ": kept %s\n", b->dir);
	else if (b->dir[0])
		nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}


int main(int argc, char **argv)
{
	static struct bench b = {
		.cfg = { .recorders = 2, .viewers = 20, .max_viewers = 4096,
			 .seed = 1, .duration = 30, .warmup = 10,
			 .bitrate = 2e6 },
		.ep = -1 };
	static struct result steps[MAX_STEPS];
	const struct result *best = NULL;
	long limit = -1;
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned n = 0;
	uint64_t errors, step_errors = 0;
	int r;

	b.cfg.shift = b.cfg.history = NAN;
	r = parse_args(&b.cfg, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : (usage(stderr), EXIT_USAGE);
	if (b.cfg.url && url_parse(&b, b.cfg.url) < 0)
		return EXIT_USAGE;
	b.watch = (pid_t)b.cfg.pid;
	b.rate = b.cfg.bitrate / 8;
	b.rng = (b.cfg.seed + 1) * UINT64_C(0x9E3779B97F4A7C15);
	/* Our sockets, and streamd's too when it is our child. */
	nofile_ensure(0, PROG, conns_needed(&b.cfg) + STREAMD_FDS_SPARE);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = setup(&b);
	if (r == 0)
		r = recorders_start(&b);
	if (r == 0 && b.cfg.sweep) {
		r = sweep(&b, steps, &n, &best, &limit);
	} else if (r == 0) {
		r = step(&b, b.cfg.viewers, &steps[n++]);
		best = &steps[0];
	}
	for (unsigned i = 0; i < n; i++)
		step_errors += steps[i].errors;
	recorders_finish(&b);
	if (r == -EINTR)
		fprintf(stderr, PROG ": interrupted\n");
	if (r == 0 && n > 0) {
		const struct result *shown = best ? best : &steps[n - 1];

		/* Errors of the steps a sweep went past do not count. */
		errors = b.errors - step_errors + shown->errors;
		r = print_result(&b, shown, errors, steps, n, best, limit);
		if (r < 0)
			fprintf(stderr, PROG ": writing the result: %s\n",
				strerror(-r));
		else if (errors)
			r = -EIO;
	}
	teardown(&b);
	return r < 0 ? EXIT_FAIL : 0;
}
