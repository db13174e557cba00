/*
 * streamd-soak: the soak test users run against a running streamd before
 * going live.  K recorders upload live MPEG-TS (the builtin deterministic
 * generator, soak_ts.c, or ffmpeg) at the set bitrate; after a warm-up
 * that builds history, M viewers watch time-shifted through every player
 * route (progressive .ts with and without a duration, data.ts ranges,
 * HLS) at real-time rate with random seeks, and every byte they receive
 * is compared with what was sent at that offset.  Every interval the run
 * samples /metrics and the watched daemons, writes a CSV row and prints a
 * status line; at the end it stops the recorders cleanly, compares each
 * recording's md5 with what was sent, names every violation and prints
 * one JSON object.  A request answered 503 with Retry-After (admission
 * control) is a refusal, counted apart from errors: a viewer comes back
 * after the advised time, a refused recording is a violation unless
 * --allow-recorder-refusal.  With --offer PCT the viewers are not given
 * but learnt: as the warm-up ends the run asks streamd how many viewers
 * of its recordings fit (soak_limit.c) and offers PCT % of that, so that
 * an overload means the same on every node; an overload that nobody was
 * refused in did not test admission, and is a violation.  This file
 * parses the flags and runs the phases; the rest is in soak_rec.c,
 * soak_view.c, soak_limit.c and soak_report.c (soak.h).
 *
 * Exit status: 0 no violation, 1 a violation (or the run could not be
 * made), 2 bad usage (and --offer against a streamd whose
 * /admin/capacity cannot be read or has admission off).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soak.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define EXIT_VIOLATION 1
#define EXIT_USAGE 2
#define TICK_S 0.010		/* pacing granularity of the loop */
#define PUBLISHED_EVERY_S 2.0	/* how often /streams is asked */
#define FINISH_TIMEOUT_S 30.0
#define ERRORS_LOGGED 10
#define WARMUP_MIN_S 4.0	/* two keyframes and their publication */
#define VIEWERS_DEFAULT 20
#define VIEWERS_UNSET UINT_MAX	/* above the flag's range: not given */

volatile sig_atomic_t soak_interrupted;

/* ------------------------------------------------------------------ */
/* Flags                                                               */
/* ------------------------------------------------------------------ */

enum flag_kind { FK_UINT, FK_NUMBER, FK_TIME, FK_RATE, FK_STR, FK_PID,
		 FK_SET, FK_HELP, FK_VERSION };

struct flag {
	const char *name;
	enum flag_kind kind;
	size_t off;
	double lo, hi;
	const char *arg, *help;
};

#define CO(f) offsetof(struct soak_cfg, f)
static const struct flag flags[] = {
	{ "url", FK_STR, CO(url), 0, 0, "URL",
	  "the streamd (default http://127.0.0.1:8080)" },
	{ "recorders", FK_UINT, CO(recorders), 1, 10000, "K",
	  "recorders, one recording each (default 2)" },
	{ "viewers", FK_UINT, CO(viewers), 0, 1000000, "M",
	  "viewers (default 20)" },
	{ "offer", FK_NUMBER, CO(offer), 1, 10000, "PCT",
	  "instead of --viewers: PCT % of the viewers streamd\n"
	  "                       says fit after the warm-up (/admin/capacity;\n"
	  "                       over 100, nobody refused is a violation)" },
	{ "bitrate", FK_RATE, CO(bitrate), SOAK_TS_BITRATE_MIN, 1e9, "BPS",
	  "bits/s per stream, k/M suffixes (default 2M)" },
	{ "duration", FK_TIME, CO(duration), 1, 1e8, "T",
	  "viewing time after the warm-up: 60s, 30m, 24h or\n"
	  "                       seconds (default 60s)" },
	{ "warmup", FK_TIME, CO(warmup), WARMUP_MIN_S, 1e8, "T",
	  "recording before the viewers start (default 20s)" },
	{ "interval", FK_TIME, CO(interval), 0.5, 86400, "T",
	  "a status line and a CSV row every T (default 10s)" },
	{ "csv", FK_STR, CO(csv), 0, 0, "FILE", "the time series as CSV" },
	{ "plot", FK_STR, CO(plot), 0, 0, "FILE",
	  "gnuplot draws it into FILE.png or FILE.svg" },
	{ "encoder", FK_STR, CO(encoder), 0, 0, "E",
	  "builtin (default) or ffmpeg" },
	{ "publish-token", FK_STR, CO(publish_token), 0, 0, "T",
	  "streamd's publish_token, for the uploads" },
	{ "admin-token", FK_STR, CO(admin_token), 0, 0, "T",
	  "streamd's admin_token, for /metrics and\n"
	  "                       /admin/capacity" },
	{ "metrics-url", FK_STR, CO(metrics_url), 0, 0, "URL",
	  "/metrics and /admin/capacity are there\n"
	  "                       (admin_listen; default --url)" },
	{ "watch-pid", FK_PID, CO(watch), 1, INT_MAX, "PID",
	  "sample this daemon's RSS and fds too (repeatable)" },
	{ "seed", FK_UINT, CO(seed), 0, UINT_MAX, "N",
	  "of the streams and the viewers' choices (default 1)" },
	{ "name-prefix", FK_STR, CO(name_prefix), 0, 0, "P",
	  "recordings are P0, P1, ... (default soak-)" },
	{ "rss-growth-max", FK_NUMBER, CO(rss_growth_max), 0, 1e6, "PCT",
	  "RSS growth after warm-up allowed (default 20)" },
	{ "fd-growth-max", FK_NUMBER, CO(fd_growth_max), 0, 1e9, "N",
	  "open fds growth after warm-up allowed (default 64)" },
	{ "allow-recorder-refusal", FK_SET, CO(allow_recorder_refusal), 0, 0,
	  NULL, "a recording refused with 503 leaves the run\n"
	  "                       instead of failing it" },
	{ "help", FK_HELP, 0, 0, 0, NULL, "this text" },
	{ "version", FK_VERSION, 0, 0, 0, NULL, "the version" },
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static void usage(FILE *to)
{
	char lhs[64];

	fprintf(to, "usage: " PROG " [options]\n"
		"K recorders and M verifying viewers soak a running streamd;\n"
		"prints one JSON object with the verdict.\n");
	for (size_t i = 0; i < NFLAGS; i++) {
		snprintf(lhs, sizeof(lhs), "--%s%s%s", flags[i].name,
			 flags[i].arg ? " " : "",
			 flags[i].arg ? flags[i].arg : "");
		fprintf(to, "  %-20s %s\n", lhs, flags[i].help);
	}
	fprintf(to, "Exit: 0 ok, 1 a violation, 2 bad usage (or --offer and "
		"no admission\nlimit to read).\n");
}

/* "90", "90s", "30m", "24h", "2d": seconds. */
static bool parse_time(const char *v, double *out)
{
	static const struct { char c; double mul; } unit[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || !isfinite(d))
		return false;
	for (size_t i = 0; *end && i < sizeof(unit) / sizeof(unit[0]); i++)
		if (*end == unit[i].c) {
			d *= unit[i].mul, end++;
			break;
		}
	*out = d;
	return *end == '\0';
}

static bool flag_set(struct soak_cfg *cfg, const struct flag *f,
		     const char *v)
{
	char *p = (char *)cfg + f->off;
	bool ok;
	double d;

	if (f->kind == FK_STR) {
		*(const char **)p = v;
		return *v != '\0';
	}
	ok = f->kind == FK_TIME ? parse_time(v, &d) :
	     lg_parse_number(v, f->kind == FK_RATE, &d);
	if (!ok || d < f->lo || d > f->hi)
		return false;
	if (f->kind == FK_UINT || f->kind == FK_PID) {
		if (d != floor(d))
			return false;
		if (f->kind == FK_UINT)
			*(unsigned *)p = (unsigned)d;
		else if (cfg->n_watch < SOAK_MAX_WATCH)
			cfg->watch[cfg->n_watch++] = (pid_t)d;
		else
			return false;
	} else {
		*(double *)p = d;
	}
	return true;
}

static const struct flag *flag_find(const char *name, size_t len)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strlen(flags[i].name) == len &&
		    !strncmp(flags[i].name, name, len))
			return &flags[i];
	return NULL;
}

/* 0, 1 (--help/--version done: exit 0), or -EINVAL (message printed). */
static int parse_args(struct soak_cfg *cfg, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *v;
		const struct flag *f = NULL;

		if (!strncmp(a, "--", 2)) {
			eq = strchr(a + 2, '=');
			f = flag_find(a + 2, eq ? (size_t)(eq - a - 2) :
					      strlen(a + 2));
		}
		if (!f) {
			fprintf(stderr, PROG ": unknown argument %s\n", a);
			return -EINVAL;
		}
		if (f->kind == FK_HELP || f->kind == FK_VERSION) {
			if (f->kind == FK_HELP)
				usage(stdout);
			else
				printf(PROG " " PACKAGE_VERSION "\n");
			return 1;
		}
		if (f->kind == FK_SET) {
			if (eq) {
				fprintf(stderr, PROG ": --%s takes no value\n",
					f->name);
				return -EINVAL;
			}
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
	return 0;
}

/* What the flags cannot say alone; 0 or -EINVAL (message printed). */
static int check_args(struct soak *s)
{
	const struct soak_cfg *c = &s->cfg;
	const char *ext = c->plot ? strrchr(c->plot, '.') : NULL;
	char err[512];

	if (strcmp(c->encoder, "builtin") && strcmp(c->encoder, "ffmpeg"))
		snprintf(err, sizeof(err), "--encoder is builtin or ffmpeg");
	else if (c->offer > 0 && c->viewers != VIEWERS_UNSET)
		snprintf(err, sizeof(err), "--offer and --viewers exclude each "
			 "other: --offer sets the viewers");
	else if (c->plot && (!ext || (strcmp(ext, ".png") &&
				      strcmp(ext, ".svg"))))
		snprintf(err, sizeof(err), "--plot makes a .png or .svg file");
	else if (c->plot && !lg_have_program("gnuplot"))
		snprintf(err, sizeof(err), "--plot needs gnuplot, which is "
			 "not in PATH");
	else if (!strcmp(c->encoder, "ffmpeg") && !lg_have_program("ffmpeg"))
		snprintf(err, sizeof(err), "--encoder ffmpeg needs ffmpeg, "
			 "which is not in PATH");
	else if (strspn(c->name_prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHI"
			"JKLMNOPQRSTUVWXYZ0123456789._-") !=
		 strlen(c->name_prefix) || strlen(c->name_prefix) > 40)
		snprintf(err, sizeof(err), "--name-prefix: letters, digits, "
			 "'.', '_', '-', at most 40");
	else if (lg_target_parse(&s->target, c->url, err, sizeof(err)) == 0 &&
		 lg_target_parse(&s->metrics_target, c->metrics_url ?
				 c->metrics_url : c->url, err,
				 sizeof(err)) == 0)
		return 0;
	fprintf(stderr, PROG ": %s\n", err);
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* What every part shares (soak.h)                                     */
/* ------------------------------------------------------------------ */

void soak_violation(struct soak *s, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	fprintf(stderr, PROG ": violation: %s\n", msg ? msg : fmt);
	if (msg && s->nviolations < SOAK_MAX_VIOLATIONS)
		s->violations[s->nviolations++] = msg;
	else
		free(msg);
}

void soak_http_error(struct soak *s, const char *who, const char *fmt, ...)
{
	va_list ap;

	if (++s->http_errors > ERRORS_LOGGED) {
		if (s->http_errors == ERRORS_LOGGED + 1)
			fprintf(stderr, PROG ": more errors: not shown\n");
		return;
	}
	fprintf(stderr, PROG ": %s: ", who);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

uint64_t soak_rand(struct soak *s, uint64_t n)
{
	uint64_t x = s->rng;

	x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
	s->rng = x;
	return n ? (x * UINT64_C(2685821657736338717)) % n : 0;
}

/* ------------------------------------------------------------------ */
/* The loop's calls                                                    */
/* ------------------------------------------------------------------ */

_Static_assert(offsetof(struct soak_rec, kind) ==
	       offsetof(struct soak_viewer, kind),
	       "on_event tells recorders and viewers apart by kind");

static void on_event(void *arg, void *ptr, uint32_t events, double now)
{
	struct soak *s = arg;
	enum soak_kind kind = *(enum soak_kind *)((char *)ptr +
						  offsetof(struct soak_rec,
							   kind));
	struct soak_rec *r = ptr;
	int err = 0;

	if (kind == SK_VIEWER) {
		soak_view_event(s, ptr, now);
		return;
	}
	if (r->lc.state == LG_CONNECTING && (err = lg_conn_connected(&r->lc)))
		soak_http_error(s, r->name, "recorder: connect: %s",
				strerror(-err));
	if (err || r->lc.state == LG_DONE)
		lg_conn_close(&r->lc);
	else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		soak_rec_event(s, r);
	else if (events & EPOLLOUT)
		soak_rec_tick(s, r, now);
}

static void tick(void *arg, double now)
{
	struct soak *s = arg;

	for (unsigned i = 0; i < s->cfg.recorders; i++)
		soak_rec_tick(s, &s->rec[i], now);
	if (now >= s->next_published) {
		soak_recorders_published(s);
		s->next_published = now + PUBLISHED_EVERY_S;
	}
	for (unsigned j = 0; j < s->nview; j++)
		soak_view_tick(s, &s->view[j], now);
	if (now >= s->next_sample) {
		soak_sample_take(s, now);
		s->next_sample += s->cfg.interval;
		if (s->next_sample < now)
			s->next_sample = now + s->cfg.interval;
	}
}

/* ------------------------------------------------------------------ */
/* The run                                                             */
/* ------------------------------------------------------------------ */

static void on_signal(int sig)
{
	(void)sig;
	soak_interrupted = 1;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The temporary directory, epoll, the loop, the CSV; 0 or -errno. */
static int setup(struct soak *s)
{
	const char *tmp = getenv("TMPDIR");
	const struct soak_cfg *c = &s->cfg;

	if (c->publish_token)
		snprintf(s->auth_publish, sizeof(s->auth_publish),
			 "Authorization: Bearer %s\r\n", c->publish_token);
	if (c->admin_token)
		snprintf(s->auth_admin, sizeof(s->auth_admin),
			 "Authorization: Bearer %s\r\n", c->admin_token);
	snprintf(s->dir, sizeof(s->dir), "%s/" PROG ".XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->dir)) {
		fprintf(stderr, PROG ": mkdtemp %s: %s\n", s->dir,
			strerror(errno));
		s->dir[0] = '\0';
		return -EIO;
	}
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0)
		return -errno;
	s->loop = (struct lg_loop){ .ep = s->ep, .tick_s = TICK_S, .arg = s,
				    .on_event = on_event, .tick = tick,
				    .interrupted = &soak_interrupted };
	s->rng = (c->seed + 1) * UINT64_C(0x9E3779B97F4A7C15);
	s->rate = c->bitrate / 8;
	return soak_report_open(s);
}

/* --offer: the viewers are PCT % of the limit streamd gives now (at
 * least one, so that an offer over a full node still asks); 0, or -EPIPE
 * after a violation. */
static int offer_viewers(struct soak *s)
{
	char err[768];
	double n;

	if (soak_limit_read(s, err, sizeof(err)) < 0) {
		soak_violation(s, "no admission limit after the warm-up: %s",
			       err);
		return -EPIPE;
	}
	n = ceil(s->cfg.offer / 100 * s->limit - 1e-9);
	s->cfg.viewers = n >= 1 ? (unsigned)n : 1;
	fprintf(stderr, PROG ": admission limit %u viewers of %.0f bit/s (set "
		"by %s): offering %g %%, %u viewers\n", s->limit,
		s->limit_bitrate, s->limit_res, s->cfg.offer, s->cfg.viewers);
	return 0;
}

/* The first sample (streamd must answer), the recorders and the
 * warm-up, then the viewers for the duration.  0, -EINTR, or -errno;
 * s->rec set once the recorders started. */
static int run(struct soak *s)
{
	const struct soak_cfg *c = &s->cfg;
	double t_view;
	int r;

	s->t0 = tool_now_s();
	soak_sample_take(s, s->t0);
	if (!s->samples || !s->samples[0].ok) {
		fprintf(stderr, PROG ": cannot read /metrics of %s (a running "
			"streamd? --metrics-url, --admin-token?)\n",
			c->metrics_url ? c->metrics_url : c->url);
		return -EPROTO;
	}
	s->next_sample = s->t0 + c->interval;
	if ((r = soak_recorders_start(s)) < 0)
		return r;
	fprintf(stderr, PROG ": %u recorders at %.0f bit/s (%s), warm-up "
		"%.0f s\n", c->recorders, c->bitrate, c->encoder, c->warmup);
	r = lg_loop_run(&s->loop, s->t0 + c->warmup, NULL);
	if (r == 0 && !soak_recorders_live(s)) {
		soak_violation(s, "no recorder is streaming after the warm-up");
		return -EPIPE;
	}
	if (r == 0 && c->offer > 0)
		r = offer_viewers(s);
	if (r == 0)
		r = soak_viewers_start(s);
	if (r < 0)
		return r;
	/* The counters' baseline: a sample as the viewers start. */
	t_view = tool_now_s();
	s->warm_sample = s->nsamples;
	if (t_view - s->t0 - s->samples[s->nsamples - 1].t < 1.0) {
		s->warm_sample--;
	} else {
		soak_sample_take(s, t_view);
		s->next_sample = t_view + c->interval;
	}
	fprintf(stderr, PROG ": %u viewers for %.0f s\n", c->viewers,
		c->duration);
	r = lg_loop_run(&s->loop, t_view + c->duration, NULL);
	s->duration_s = tool_now_s() - t_view;
	return r;
}

/* Viewers off, recorders ended cleanly, the last sample, the recordings
 * checked, the verdict, the plot, the JSON.  The exit status. */
static int finish(struct soak *s, int r)
{
	int plot;

	soak_viewers_stop(s);
	if (!s->rec)
		return EXIT_VIOLATION;
	soak_interrupted = 0;	/* a second ^C cuts the waits short */
	soak_recorders_finish(s, FINISH_TIMEOUT_S);
	soak_sample_take(s, tool_now_s());
	soak_recordings_check(s);
	if (r == -EINTR)
		soak_violation(s, "interrupted after %.0f s", tool_now_s() - s->t0);
	else if (r < 0 && r != -EPIPE)
		soak_violation(s, "the run stopped: %s", strerror(-r));
	soak_verdict(s);
	plot = soak_plot(s);
	soak_print_json(s);
	return s->nviolations || plot < 0 ? EXIT_VIOLATION : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	static struct soak s = {
		.cfg = { .url = "http://127.0.0.1:8080", .recorders = 2,
			 .viewers = VIEWERS_UNSET, .bitrate = 2e6, .duration = 60,
			 .warmup = 20, .interval = 10, .encoder = "builtin",
			 .seed = 1, .name_prefix = "soak-",
			 .rss_growth_max = 20, .fd_growth_max = 64 },
		.ep = -1 };
	struct sigaction sa = { .sa_handler = on_signal };
	char err[768];
	int r, status;

	r = parse_args(&s.cfg, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : (usage(stderr), EXIT_USAGE);
	if (check_args(&s) < 0)
		return EXIT_USAGE;
	if (s.cfg.viewers == VIEWERS_UNSET)
		s.cfg.viewers = s.cfg.offer > 0 ? 0 : VIEWERS_DEFAULT;
	raise_nofile();
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = setup(&s);
	/* Before the warm-up: a wrong URL or token is told at once. */
	if (r == 0 && s.cfg.offer > 0 &&
	    soak_limit_probe(&s, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": --offer: %s\n", err);
		status = EXIT_USAGE;
	} else {
		if (r == 0)
			r = run(&s);
		status = finish(&s, r);
	}
	soak_recorders_free(&s);
	soak_report_close(&s);
	if (s.ep >= 0)
		close(s.ep);
	if (s.dir[0])
		nftw(s.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return status;
}
