/*
 * The private contract between streamd-soak's files: the run's
 * configuration and state, the recorders (soak_rec.c), the viewers
 * (soak_view.c), the admission limit (soak_limit.c) and the sampling,
 * reporting and verdict (soak_report.c); streamd-soak.c parses the flags
 * and runs the phases.  Everything runs
 * on one thread in one epoll loop (loadgen.h), so nothing here locks.
 *
 * Invariants of a run:
 *  1. Every body byte a viewer receives is compared with the bytes its
 *     recorder sent at the same data offset before it is counted as
 *     verified; a difference is a mismatch and ends that session.
 *  2. A recorder's md5 covers exactly the bytes framed into chunks, in
 *     order (builtin: soak_ts at offsets 0..sent; ffmpeg: the temp file).
 *  3. Only soak_violation() decides the verdict; each violation is named
 *     once on stderr and once in the JSON.
 */
#ifndef STREAMD_SOAK_H
#define STREAMD_SOAK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "loadgen.h"
#include "soak_ts.h"
#include "tool_clock.h"

#define PROG "streamd-soak"
#define SOAK_MAX_WATCH 16
#define SOAK_MAX_VIOLATIONS 64
#define SOAK_NAME_MAX 64

struct soak_cfg {
	const char *url, *metrics_url, *csv, *plot, *encoder;
	const char *publish_token, *admin_token, *name_prefix;
	unsigned recorders, viewers, seed;
	double bitrate, duration, warmup, interval;
	double offer;		/* percent of the admission limit; 0: none */
	double rss_growth_max, fd_growth_max;
	bool allow_recorder_refusal;
	pid_t watch[SOAK_MAX_WATCH];
	unsigned n_watch;
};

enum soak_kind { SK_RECORDER, SK_VIEWER };

/* A recorder: one chunked PUT fed by the generator or by ffmpeg. */
struct soak_rec {
	struct lg_conn lc;	/* first: epoll data points at the struct */
	enum soak_kind kind;
	unsigned idx;
	char name[SOAK_NAME_MAX];
	struct soak_ts ts;	/* builtin source */
	pid_t ffmpeg;		/* ffmpeg source: the encoder, */
	int pipe_fd;		/* its stdout (non-blocking), */
	int file_fd;		/* and everything it gave (for checks) */
	bool pipe_eof, draining;	/* draining: SIGINT sent at the end */
	double t_start;
	uint64_t sent;		/* payload bytes framed */
	/* What streamd has published of it, from /streams (refreshed every
	 * PUBLISHED_EVERY_S): viewers ask for positions within this, since
	 * under load the published edge trails what was sent by seconds. */
	uint64_t pub_bytes;
	double pub_s;		/* its duration in seconds */
	bool finishing, answered;
	/* Answered 503 with Retry-After: admission control turned the
	 * recording away; it is dropped from the run (no viewers, no md5
	 * check), and a violation unless --allow-recorder-refusal. */
	bool refused;
	EVP_MD_CTX *md5;	/* of the bytes framed (invariant 2) */
	char md5_sent[33], md5_got[33];
	uint64_t got;		/* bytes of data.ts fetched at the end */
	bool md5_ok;
};

enum soak_mode { VM_TS, VM_TS_DURATION, VM_RANGE, VM_HLS, VM_COUNT };

struct soak_seg {
	uint64_t off, len;
};

/* A viewer: one request at a time, re-planned after each (see
 * soak_view.c for its states). */
struct soak_viewer {
	struct lg_conn lc;	/* first, as in soak_rec */
	enum soak_kind kind;
	unsigned idx, stream;
	enum soak_mode mode;
	int phase;		/* soak_view.c's enum view_phase */
	struct lg_bucket bucket;
	uint64_t off;		/* data offset of the next body byte */
	bool placed;		/* off is known */
	uint64_t body, want;	/* body bytes so far; expected (or MAX) */
	uint8_t first[SOAK_TS_PACKET];	/* a .ts body's first packet */
	size_t first_len;
	double t_seek, t_wake, pos_s;
	double t_retry;		/* refused: nothing is asked before this */
	/* HLS: the playlist text, its segments, where reading goes on. */
	char *pl;
	size_t pl_len, pl_cap;
	struct soak_seg *segs;
	size_t nseg, seg_i, seg_cap;
	uint64_t next_off;
	double t_play0, pos0_s;
};

/* One /metrics and /proc sample. */
enum { SM_UNDERFLOWS, SM_READ_MISSES, SM_DEADLINE_MISSES, SM_WRITE_MISSES,
       SM_SCHED_P99, SM_LATENESS_P99, SM_BYTES_IN, SM_BYTES_OUT, SM_RSS,
       SM_FDS, SM_CPU, SM_COUNT };

struct soak_sample {
	double t;		/* seconds since the run began */
	bool ok;
	double v[SM_COUNT];
	bool has[SM_COUNT];
	double watch_rss[SOAK_MAX_WATCH], watch_fds[SOAK_MAX_WATCH];
	uint64_t verified, mismatches, errors, refused;
	unsigned recs_live, viewers;
};

/* A daemon's memory and descriptors: settled baseline and end. */
struct soak_growth {
	double rss0, rss1, pct, fds0, fds1;
};

struct soak {
	struct soak_cfg cfg;
	double rate;		/* bytes per second per stream */
	int ep;
	struct lg_target target, metrics_target;
	struct lg_loop loop;
	char dir[4096];		/* temporary files */
	char auth_publish[300], auth_admin[300];	/* header lines */
	struct soak_rec *rec;
	struct soak_viewer *view;
	unsigned nview;
	uint64_t rng;
	double t0;		/* tool_now_s() when the run began */
	double duration_s;	/* how long the viewers ran */
	bool viewing;
	/* Counters (invariant 1). */
	uint64_t verified, mismatches, http_errors, sessions;
	/* Requests answered 503 with Retry-After: viewers', recorders'. */
	uint64_t refused, recorders_refused;
	/* --offer: the viewers streamd said fit as the warm-up ended, the
	 * resource that set that, and the bitrate it priced. */
	bool have_limit;
	unsigned limit;
	char limit_res[16];
	double limit_bitrate;
	/* Samples: all of them, for the baselines and the verdict. */
	struct soak_sample *samples;
	size_t nsamples, cap_samples;
	size_t warm_sample;	/* the first sample after warm-up */
	FILE *csv;
	double next_sample;
	double next_published;
	/* The verdict (invariant 3): streamd, then each watched pid. */
	struct soak_growth growth[1 + SOAK_MAX_WATCH];
	char csv_path[4200];
	char *violations[SOAK_MAX_VIOLATIONS];
	unsigned nviolations;
	uint64_t logged;
};

extern volatile sig_atomic_t soak_interrupted;

/* Names a violation on stderr and keeps it for the JSON (printf-like). */
void soak_violation(struct soak *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An HTTP error or short response of a client: counted, the first few
 * told, and one violation for all of them. */
void soak_http_error(struct soak *s, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A random number in [0, n) from the run's generator (n > 0). */
uint64_t soak_rand(struct soak *s, uint64_t n);

/* soak_rec.c */
int soak_recorders_start(struct soak *s);
void soak_recorders_finish(struct soak *s, double timeout_s);
void soak_rec_tick(struct soak *s, struct soak_rec *r, double now);
void soak_rec_event(struct soak *s, struct soak_rec *r);
/* Refreshes every recording's pub_bytes and pub_s from GET /streams. */
void soak_recorders_published(struct soak *s);
/* The bytes recorder @r sent at @off: how many of @len agree with @buf
 * (len when all do); *avail false when the bytes were never sent. */
size_t soak_rec_verify(struct soak_rec *r, uint64_t off, const void *buf,
		       size_t len, bool *avail);
/* Fetches every recording's data.ts and compares its md5. */
void soak_recordings_check(struct soak *s);
void soak_recorders_free(struct soak *s);
unsigned soak_recorders_live(const struct soak *s);

/* soak_view.c */
int soak_viewers_start(struct soak *s);
void soak_viewers_stop(struct soak *s);
void soak_view_tick(struct soak *s, struct soak_viewer *v, double now);
void soak_view_event(struct soak *s, struct soak_viewer *v, double now);

/* soak_limit.c */
/* /admin/capacity answers, with admission on; 0, or -errno with why in
 * @err. */
int soak_limit_probe(struct soak *s, char *err, size_t len);
/* The viewers of the first recording not refused that fit now: 0 with
 * s->limit, limit_res and limit_bitrate set, or -errno with why in @err. */
int soak_limit_read(struct soak *s, char *err, size_t len);

/* soak_report.c */
int soak_report_open(struct soak *s);
void soak_sample_take(struct soak *s, double now);
void soak_verdict(struct soak *s);
int soak_plot(struct soak *s);
void soak_print_json(struct soak *s);
void soak_report_close(struct soak *s);

#endif
