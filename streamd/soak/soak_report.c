/*
 * What streamd-soak sees and says: one sample per interval (streamd's
 * /metrics, the watched daemons' RSS and descriptors from /proc, the
 * clients' counters), written as a CSV row and told as one status line
 * on stderr; at the end the verdict (every violation named), the plot
 * (gnuplot draws the CSV) and the JSON object on stdout.  Under --offer
 * over 100 % a run that refused nobody is a violation: it did not test
 * admission.
 *
 * Baselines: counters (underflows, deadline misses) are compared with
 * the sample taken when the viewers start, at the end of the warm-up.
 * Memory and descriptors settle for a while after the viewers arrive, so
 * their baseline is the median of the first three samples at least
 * SETTLE after that (SETTLE: a quarter of the run, at most 30 s), and
 * their end is the median of the last three taken under load (before the
 * viewers leave): one slow sample does not make a trend.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "soak.h"
#include "tool_json.h"

#define IO_TIMEOUT_S 10
#define SETTLE_MAX_S 30.0
#define MEDIAN_OF 3

static const char *const metric_names[SM_COUNT] = {
	"streamd_underflows_total", "streamd_session_read_misses_total",
	"streamd_sched_deadline_misses_total",
	"streamd_record_write_misses_total",
	"streamd_sched_latency_p99_seconds",
	"streamd_session_lateness_p99_seconds", "streamd_bytes_in_total",
	"streamd_bytes_out_total", "process_resident_memory_bytes",
	"process_open_fds", "process_cpu_seconds_total",
};

/* ------------------------------------------------------------------ */
/* Samples                                                             */
/* ------------------------------------------------------------------ */

static int metrics_get(struct soak *s, struct soak_sample *m)
{
	char *text = NULL, err[512];
	int r = lg_http_get(&s->metrics_target, "/metrics", s->auth_admin,
			    IO_TIMEOUT_S, &text, err, sizeof(err));

	if (r < 0) {
		if (++s->logged <= 3)
			fprintf(stderr, PROG ": %s\n", err);
		return r;
	}
	lg_metrics_parse(text, metric_names, SM_COUNT, m->v, m->has);
	free(text);
	return 0;
}

static double val(const struct soak_sample *m, int i)
{
	return m && m->ok && m->has[i] ? m->v[i] : NAN;
}

/* A counter's growth per second between two samples. */
static double per_s(const struct soak_sample *a, const struct soak_sample *z,
		    int i)
{
	/* Over less than half a second a rate says more about when the
	 * samples were taken than about the load. */
	return a && z->t - a->t >= 0.5 ?
	       (val(z, i) - val(a, i)) / (z->t - a->t) : NAN;
}

static void csv_header(struct soak *s)
{
	fprintf(s->csv, "t_s,recorders,viewers,in_mbps,out_mbps,"
		"verified_bytes,mismatches,http_errors,underflows,"
		"read_misses,deadline_misses,write_misses,"
		"sched_latency_p99_ms,lateness_p99_ms,rss_mb,fds,cpu_pct,"
		"refused");
	for (unsigned i = 0; i < s->cfg.n_watch; i++)
		fprintf(s->csv, ",pid%d_rss_mb,pid%d_fds", (int)s->cfg.watch[i],
			(int)s->cfg.watch[i]);
	fputc('\n', s->csv);
	fflush(s->csv);
}

static void csv_row(struct soak *s, const struct soak_sample *a,
		    const struct soak_sample *m)
{
	double f[] = {
		m->t, m->recs_live, m->viewers, per_s(a, m, SM_BYTES_IN) * 8e-6,
		per_s(a, m, SM_BYTES_OUT) * 8e-6, (double)m->verified,
		(double)m->mismatches, (double)m->errors,
		val(m, SM_UNDERFLOWS), val(m, SM_READ_MISSES),
		val(m, SM_DEADLINE_MISSES), val(m, SM_WRITE_MISSES),
		val(m, SM_SCHED_P99) * 1e3, val(m, SM_LATENESS_P99) * 1e3,
		val(m, SM_RSS) / 1048576.0, val(m, SM_FDS),
		per_s(a, m, SM_CPU) * 100, (double)m->refused,
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		fprintf(s->csv, "%s%.*f", i ? "," : "", f[i] == floor(f[i]) ?
			0 : 3, f[i]);
	for (unsigned i = 0; i < s->cfg.n_watch; i++)
		fprintf(s->csv, ",%.3f,%.0f", m->watch_rss[i], m->watch_fds[i]);
	fputc('\n', s->csv);
	fflush(s->csv);
}

/* "7.3 GB" */
static const char *bytes_text(double b, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB" };
	unsigned u = 0;

	while (b >= 1000 && u < 4)
		b /= 1000, u++;
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
	return buf;
}

static void status_line(const struct soak_sample *a,
			const struct soak_sample *m)
{
	char vb[32];

	fprintf(stderr, "[%6.0fs] rec %u view %u in %.1f Mbit/s out %.1f "
		"Mbit/s verified %s underflows %.0f misses %.0f p99 %.1f ms "
		"rss %.0f MB fds %.0f refused %" PRIu64 "%s\n", m->t,
		m->recs_live, m->viewers,
		per_s(a, m, SM_BYTES_IN) * 8e-6,
		per_s(a, m, SM_BYTES_OUT) * 8e-6,
		bytes_text((double)m->verified, vb, sizeof(vb)),
		val(m, SM_UNDERFLOWS), val(m, SM_DEADLINE_MISSES),
		val(m, SM_LATENESS_P99) * 1e3, val(m, SM_RSS) / 1048576.0,
		val(m, SM_FDS), m->refused, m->ok ? "" : " (no /metrics)");
}

void soak_sample_take(struct soak *s, double now)
{
	struct soak_sample *m, *prev = NULL;

	if (s->nsamples == s->cap_samples) {
		size_t cap = s->cap_samples ? 2 * s->cap_samples : 256;
		struct soak_sample *p = realloc(s->samples, cap * sizeof(*p));

		if (!p)
			return;
		s->samples = p, s->cap_samples = cap;
	}
	for (size_t i = s->nsamples; i-- > 0 && !prev;)
		prev = s->samples[i].ok ? &s->samples[i] : NULL;
	m = &s->samples[s->nsamples++];
	*m = (struct soak_sample){ .t = now - s->t0 };
	m->ok = metrics_get(s, m) == 0;
	for (unsigned i = 0; i < s->cfg.n_watch; i++) {
		long fds = lg_proc_fds(s->cfg.watch[i]);

		m->watch_rss[i] = lg_proc_rss_mb(s->cfg.watch[i]);
		m->watch_fds[i] = fds < 0 ? NAN : (double)fds;
	}
	m->verified = s->verified;
	m->mismatches = s->mismatches;
	m->errors = s->http_errors;
	m->refused = s->refused;
	m->recs_live = soak_recorders_live(s);
	m->viewers = s->nview;
	if (s->csv)
		csv_row(s, prev, m);
	status_line(prev, m);
}

/* ------------------------------------------------------------------ */
/* The verdict                                                         */
/* ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of up to MEDIAN_OF known values of @get among samples from
 * index @from on (@step +1) or back from @from (@step -1). */
static double median(const struct soak *s, size_t from, int step,
		     double (*get)(const struct soak_sample *, unsigned),
		     unsigned arg)
{
	double v[MEDIAN_OF];
	size_t n = 0;

	for (size_t i = from; i < s->nsamples && n < MEDIAN_OF; i += step) {
		double x = get(&s->samples[i], arg);

		if (!isnan(x))
			v[n++] = x;
		if (step < 0 && i == 0)
			break;
	}
	if (!n)
		return NAN;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

static double get_rss(const struct soak_sample *m, unsigned w)
{
	return w ? m->watch_rss[w - 1] : val(m, SM_RSS) / 1048576.0;
}

static double get_fds(const struct soak_sample *m, unsigned w)
{
	return w ? m->watch_fds[w - 1] : val(m, SM_FDS);
}

/* The first sample of the settled window (see the top). */
static size_t settled_sample(const struct soak *s)
{
	double settle = s->cfg.duration / 4 < SETTLE_MAX_S ?
			s->cfg.duration / 4 : SETTLE_MAX_S;
	double t = s->samples[s->warm_sample].t + settle;
	size_t i = s->warm_sample;

	while (i + 1 < s->nsamples && s->samples[i].t < t)
		i++;
	return i;
}

/* The last sample taken under load: those after the viewers left show
 * a daemon releasing their buffers, which would hide a leak. */
static size_t last_loaded_sample(const struct soak *s)
{
	size_t i = s->nsamples - 1;

	while (i > s->warm_sample && s->samples[i].viewers == 0)
		i--;
	return i;
}

/* Daemon @w's growth (0 streamd, else watched pid w - 1); violations. */
static void growth(struct soak *s, unsigned w, struct soak_growth *g)
{
	size_t base = settled_sample(s), end = last_loaded_sample(s);
	char who[48];

	g->rss0 = median(s, base, 1, get_rss, w);
	g->rss1 = median(s, end, -1, get_rss, w);
	g->fds0 = median(s, base, 1, get_fds, w);
	g->fds1 = median(s, end, -1, get_fds, w);
	g->pct = (g->rss1 - g->rss0) / g->rss0 * 100;
	if (w)
		snprintf(who, sizeof(who), "pid %d", (int)s->cfg.watch[w - 1]);
	else
		snprintf(who, sizeof(who), "streamd");
	if (g->pct > s->cfg.rss_growth_max)
		soak_violation(s, "%s RSS grew %.1f%% (%.1f -> %.1f MB) after "
			       "warm-up, more than --rss-growth-max %g", who,
			       g->pct, g->rss0, g->rss1, s->cfg.rss_growth_max);
	if (g->fds1 - g->fds0 > s->cfg.fd_growth_max)
		soak_violation(s, "%s open fds grew by %.0f (%.0f -> %.0f) "
			       "after warm-up, more than --fd-growth-max %g",
			       who, g->fds1 - g->fds0, g->fds0, g->fds1,
			       s->cfg.fd_growth_max);
}

/* The growth of a counter since the warm-up's end, over the samples. */
static double counter_growth(const struct soak *s, int i)
{
	double first = NAN, last = NAN;

	for (size_t k = s->warm_sample; k < s->nsamples; k++) {
		double x = val(&s->samples[k], i);

		if (isnan(first))
			first = x;
		if (!isnan(x))
			last = x;
	}
	return last - first;
}

void soak_verdict(struct soak *s)
{
	/* streamd counts underflows of sessions, and only an admitted
	 * viewer has one: a refusal never fails the verdict by itself. */
	static const struct { int metric; const char *what; } counters[] = {
		{ SM_UNDERFLOWS, "underflows among the admitted viewers" },
		{ SM_DEADLINE_MISSES, "scheduler deadline misses" },
	};
	unsigned bad = 0;

	if (!s->nsamples)
		return;
	for (size_t k = 0; k < s->nsamples; k++)
		bad += !s->samples[k].ok;
	if (bad)
		soak_violation(s, "/metrics could not be read %u times", bad);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		double d = counter_growth(s, counters[i].metric);

		if (d > 0)
			soak_violation(s, "%.0f %s after warm-up", d,
				       counters[i].what);
	}
	if (s->mismatches)
		soak_violation(s, "%" PRIu64 " responses differed from what "
			       "the recorder sent", s->mismatches);
	if (s->http_errors)
		soak_violation(s, "%" PRIu64 " HTTP errors or short responses",
			       s->http_errors);
	/* An overload in which nobody was turned away says nothing about
	 * admission: the limit was wrong, or the node admitted past it. */
	if (s->have_limit && s->cfg.offer > 100 && s->duration_s > 0 &&
	    s->refused == 0)
		soak_violation(s, "offered %g %% of the admission limit (%u "
			       "viewers for %u) and nobody was refused",
			       s->cfg.offer, s->cfg.viewers, s->limit);
	for (unsigned w = 0; w <= s->cfg.n_watch; w++)
		growth(s, w, &s->growth[w]);
}

/* ------------------------------------------------------------------ */
/* CSV, plot, JSON                                                     */
/* ------------------------------------------------------------------ */

int soak_report_open(struct soak *s)
{
	const char *path = s->cfg.csv;

	if (!path && s->cfg.plot) {
		snprintf(s->csv_path, sizeof(s->csv_path), "%s/soak.csv",
			 s->dir);
		path = s->csv_path;
	} else if (path) {
		snprintf(s->csv_path, sizeof(s->csv_path), "%s", path);
	}
	if (!path)
		return 0;
	s->csv = fopen(path, "we");
	if (!s->csv) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -errno;
	}
	csv_header(s);
	return 0;
}

void soak_report_close(struct soak *s)
{
	if (s->csv)
		fclose(s->csv);
	s->csv = NULL;
	free(s->samples);
	s->samples = NULL;
	for (unsigned i = 0; i < s->nviolations; i++)
		free(s->violations[i]);
	s->nviolations = 0;
}

/* gnuplot's script: four panels over the CSV's columns (csv_header). */
static int plot_script(const struct soak *s, const char *gp)
{
	const char *out = s->cfg.plot, *ext = strrchr(out, '.');
	FILE *f = fopen(gp, "we");

	if (!f)
		return -errno;
	fprintf(f, "set datafile separator ','\n"
		"set terminal %s size 1000,1000\nset output '%s'\n"
		"set multiplot layout 4,1 title 'streamd-soak: %u recorders, "
		"%u viewers'\nset xlabel 'seconds'\nset grid\n"
		"set yrange [0:*]\nset key top left\n"
		"d = '%s'\n", ext && !strcmp(ext, ".svg") ? "svg dynamic" :
		"pngcairo", out, s->cfg.recorders, s->cfg.viewers,
		s->csv_path);
	fprintf(f, "set ylabel 'Mbit/s'\nplot d skip 1 using 1:4 with lines "
		"title 'in', d skip 1 using 1:5 with lines title 'out'\n"
		"set ylabel 'ms'\nplot d skip 1 using 1:14 with lines title "
		"'session lateness p99', d skip 1 using 1:13 with lines title "
		"'device latency p99'\n"
		"set ylabel 'count'\nplot d skip 1 using 1:9 with lines title "
		"'underflows', d skip 1 using 1:11 with lines title 'deadline "
		"misses', d skip 1 using 1:10 with lines title 'read misses', "
		"d skip 1 using 1:12 with lines title 'write misses'\n"
		"set ylabel 'MB'\nplot d skip 1 using 1:15 with lines title "
		"'streamd RSS'");
	for (unsigned i = 0; i < s->cfg.n_watch; i++)
		fprintf(f, ", d skip 1 using 1:%u with lines title 'pid %d "
			"RSS'", 19 + 2 * i, (int)s->cfg.watch[i]);
	fprintf(f, "\nunset multiplot\n");
	return fclose(f) == 0 ? 0 : -errno;
}

int soak_plot(struct soak *s)
{
	char gp[4200], log[4200];
	char *argv[] = { "gnuplot", gp, NULL };
	int status = 0, fd, r;
	pid_t pid;

	if (!s->cfg.plot)
		return 0;
	if (s->csv)
		fflush(s->csv);
	snprintf(gp, sizeof(gp), "%s/plot.gp", s->dir);
	snprintf(log, sizeof(log), "%s/gnuplot.log", s->dir);
	if ((r = plot_script(s, gp)) < 0)
		goto fail;
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid = lg_spawn(argv, fd, fd, false, PROG);
	if (fd >= 0)
		close(fd);
	r = pid < 0 ? (int)pid : waitpid(pid, &status, 0) < 0 ? -errno : 0;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
		       access(s->cfg.plot, F_OK) < 0))
		r = -EIO;
	if (r == 0)
		return 0;
fail:
	fprintf(stderr, PROG ": gnuplot could not draw %s: %s (see %s)\n",
		s->cfg.plot, strerror(-r), log);
	return r;
}

/* null when unknown; whole numbers as integers; the rest to a
 * millionth, finer than any figure here means. */
static json_t *num(double x)
{
	if (isfinite(x) && x == floor(x) && fabs(x) < 9e15)
		return json_integer((json_int_t)x);
	return tool_json_real(x, 6);
}

/* Growth of a counter between the first and the last sample. */
static double run_delta(const struct soak *s, int i)
{
	double a = NAN, z = NAN;

	for (size_t k = 0; k < s->nsamples; k++) {
		double x = val(&s->samples[k], i);

		if (isnan(a))
			a = x;
		if (!isnan(x))
			z = x;
	}
	return z - a;
}

static double lateness_max(const struct soak *s)
{
	double m = NAN;

	for (size_t k = s->warm_sample; k < s->nsamples; k++) {
		double x = val(&s->samples[k], SM_LATENESS_P99);

		if (!isnan(x) && (isnan(m) || x > m))
			m = x;
	}
	return m;
}

static json_t *growth_json(const struct soak_growth *g, json_t *o)
{
	json_object_set_new(o, "rss_start_mb", num(g->rss0));
	json_object_set_new(o, "rss_end_mb", num(g->rss1));
	json_object_set_new(o, "rss_growth_pct", num(g->pct));
	json_object_set_new(o, "fds_start", num(g->fds0));
	json_object_set_new(o, "fds_end", num(g->fds1));
	return o;
}

static json_t *details_json(const struct soak *s)
{
	json_t *rec = json_array(), *watch = json_array(), *viol = json_array();

	for (unsigned i = 0; s->rec && i < s->cfg.recorders; i++)
		json_array_append_new(rec, json_pack(
			"{s:s, s:I, s:I, s:s, s:s, s:b, s:b}", "name",
			s->rec[i].name, "bytes", (json_int_t)s->rec[i].got,
			"sent", (json_int_t)s->rec[i].sent, "md5",
			s->rec[i].md5_got, "md5_sent", s->rec[i].md5_sent,
			"md5_ok", s->rec[i].md5_ok, "refused",
			s->rec[i].refused));
	for (unsigned i = 0; i < s->cfg.n_watch; i++)
		json_array_append_new(watch, growth_json(
			&s->growth[1 + i], json_pack("{s:i}", "pid",
						     (int)s->cfg.watch[i])));
	for (unsigned i = 0; i < s->nviolations; i++)
		json_array_append_new(viol, json_string(s->violations[i]));
	return json_pack("{s:o, s:o, s:o, s:b}", "watched", watch,
			 "recordings", rec, "violations", viol, "ok",
			 s->nviolations == 0);
}

void soak_print_json(struct soak *s)
{
	const struct soak_cfg *c = &s->cfg;
	json_t *o = json_pack(
		"{s:i, s:i, s:f, s:I, s:s, s:i, s:f, s:o, s:o, s:I, s:I, s:I,"
		" s:I, s:o, s:o, s:o, s:o, s:o, s:i, s:I, s:I}",
		"recorders", c->recorders, "viewers", c->viewers,
		"duration_s", round(s->duration_s * 1e3) / 1e3,
		"bitrate", (json_int_t)c->bitrate, "encoder", c->encoder,
		"seed", c->seed, "warmup_s", c->warmup,
		"bytes_in", num(run_delta(s, SM_BYTES_IN)),
		"bytes_out", num(run_delta(s, SM_BYTES_OUT)),
		"verified_bytes", (json_int_t)s->verified,
		"mismatches", (json_int_t)s->mismatches,
		"viewer_sessions", (json_int_t)s->sessions,
		"http_errors", (json_int_t)s->http_errors,
		"underflows", num(counter_growth(s, SM_UNDERFLOWS)),
		"deadline_misses", num(counter_growth(s, SM_DEADLINE_MISSES)),
		"read_misses", num(counter_growth(s, SM_READ_MISSES)),
		"write_misses", num(counter_growth(s, SM_WRITE_MISSES)),
		"lateness_p99_max_s", num(lateness_max(s)),
		"samples", (int)s->nsamples,
		"refused", (json_int_t)s->refused,
		"recorders_refused", (json_int_t)s->recorders_refused);
	json_t *d = details_json(s);

	if (!o || !d) {
		json_decref(o);
		json_decref(d);
		return;
	}
	growth_json(&s->growth[0], o);
	json_object_set_new(o, "offer_pct", c->offer > 0 ? num(c->offer) :
					    json_null());
	json_object_set_new(o, "admission_limit", s->have_limit ?
			    json_integer(s->limit) : json_null());
	json_object_set_new(o, "admission_limit_resource", s->have_limit ?
			    json_string(s->limit_res) : json_null());
	json_object_set_new(o, "offered", json_integer(c->viewers));
	json_object_update(o, d);
	json_decref(d);
	if (tool_json_print(stdout, o, JSON_COMPACT) < 0)
		fprintf(stderr, PROG ": writing the JSON report failed\n");
	json_decref(o);
}
