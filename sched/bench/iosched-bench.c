/*
 * iosched-bench: runs a periodic-stream workload (N streams, one request
 * each per period, deadline one period after arrival) through a libiosched
 * policy on the simulator or a real device, or through a psync thread
 * pool as the baseline, and prints what happened as one JSON object on
 * the last line of stdout.  --sweep searches for the largest stream count
 * that misses no deadline; --micro times the policy's insert and pop on
 * their own.  Richer loads mix periods and sizes, add recorders that
 * write, best-effort background readers, viewers sharing a recording, and
 * streamd's refilled input buffers with seeks, so that the policies can
 * be told apart.  This file only parses arguments, picks the mode and
 * writes the JSON (and the --trace lines); the engines are in
 * bench_load.c, bench_psync.c and bench_micro.c.
 *
 * Exit status: 0 success, 1 the run failed, 2 bad usage.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "tool_json.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "iosched-bench"
#define EXIT_USAGE 2

#define DEF_DEVICE "sim:hdd-7200"
#define DEF_POLICY "glmd"
#define DEF_STREAMS 16u
#define DEF_SWEEP_START 8u
#define DEF_SIZE 65536u
#define DEF_PERIOD_S 0.3
#define DEF_DURATION_SIM_S 30.0
#define DEF_DURATION_REAL_S 10.0
#define DEF_SEED 1u
#define DEF_MICRO_DEPTH 1000u
#define DEF_THREADS 64u
#define DEF_REAL_PROFILE "nvme"
#define DEF_MICRO_PROFILE "hdd-7200"
#define SWEEP_MAX_TRIALS 128
#define MAX_BACKGROUND 4096u

struct args {
	struct bench_cfg cfg;
	bool sweep, micro, quiet, write, help, version;
	int verbose;
	/* 0 / NULL: not given, the default depends on the mode or device. */
	unsigned streams;
	double duration_s;
	const char *policy;
	const char *trace_path;
	bool buffer_given, thresholds_given;
};

/* ------------------------------------------------------------------ */
/* Options: one table gives getopt_long, --help and the setters.       */
/* ------------------------------------------------------------------ */

struct opt;
typedef int (*opt_set_fn)(struct args *a, const struct opt *o,
			  const char *val);

struct opt {
	const char *name;
	char short_name; /* 0: long only */
	const char *arg; /* NULL: a flag */
	opt_set_fn set;
	size_t off;	 /* into struct args */
	const char *help;
};

static void *field(struct args *a, const struct opt *o)
{
	return (char *)a + o->off;
}

static int bad_value(const struct opt *o, const char *val, const char *why)
{
	fprintf(stderr, "%s: --%s %s: %s\n", PROG, o->name, val, why);
	return -EINVAL;
}

/* A whole decimal number; strtoull alone would accept "-1" and " 7". */
static int parse_u64(const struct opt *o, const char *val, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*val < '0' || *val > '9')
		return bad_value(o, val, "not a non-negative integer");
	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno || *end)
		return bad_value(o, val, errno ? strerror(errno) :
						 "not a non-negative integer");
	*out = v;
	return 0;
}

static int set_uint(struct args *a, const struct opt *o, const char *val)
{
	uint64_t v;

	if (parse_u64(o, val, &v) < 0)
		return -EINVAL;
	if (v == 0 || v > UINT32_MAX)
		return bad_value(o, val, "must be between 1 and 4294967295");
	*(unsigned *)field(a, o) = (unsigned)v;
	return 0;
}

static int set_size(struct args *a, const struct opt *o, const char *val)
{
	uint64_t v;

	if (parse_u64(o, val, &v) < 0)
		return -EINVAL;
	if (v == 0 || v % 512 || v > (1u << 30))
		return bad_value(o, val,
				 "must be a positive multiple of 512, at most 1 GiB");
	*(uint32_t *)field(a, o) = (uint32_t)v;
	return 0;
}

static int set_seed(struct args *a, const struct opt *o, const char *val)
{
	return parse_u64(o, val, (uint64_t *)field(a, o));
}

static int set_seconds(struct args *a, const struct opt *o, const char *val)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end || !isfinite(v) || v <= 0 || v > 1e6)
		return bad_value(o, val, "not a positive number of seconds");
	*(double *)field(a, o) = v;
	return 0;
}

/* A finite number from @lo to @hi, in full; @what says what was wanted. */
static int parse_num(const struct opt *o, const char *val, double lo,
		     double hi, bool lo_open, const char *what, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end || !isfinite(v) || v > hi ||
	    (lo_open ? v <= lo : v < lo) || isspace((unsigned char)*val))
		return bad_value(o, val, what);
	*out = v;
	return 0;
}

static int set_fraction(struct args *a, const struct opt *o, const char *val)
{
	return parse_num(o, val, 0, 1, false, "not a fraction from 0 to 1",
			 (double *)field(a, o));
}

static int set_factor(struct args *a, const struct opt *o, const char *val)
{
	return parse_num(o, val, 0, 1e6, true, "not a positive number",
			 (double *)field(a, o));
}

static int set_u32_or_0(struct args *a, const struct opt *o, const char *val)
{
	uint64_t v;

	if (parse_u64(o, val, &v) < 0)
		return -EINVAL;
	if (v > MAX_BACKGROUND)
		return bad_value(o, val, "must be from 0 to 4096");
	*(unsigned *)field(a, o) = (unsigned)v;
	return 0;
}

/*
 * Splits a comma-separated list and hands each item to @one; an empty
 * list or item ("", "1,", ",1", "1,,2") is refused.
 */
static int parse_list(const struct opt *o, const char *val, unsigned max,
		      int (*one)(const struct opt *o, const char *item,
				 unsigned i, void *out),
		      void *out, unsigned *n)
{
	char item[64];
	const char *p = val;
	unsigned i = 0;

	for (;;) {
		size_t len = strcspn(p, ",");

		if (len == 0)
			return bad_value(o, *val ? val : "''",
					 "an empty list or item");
		if (len >= sizeof(item))
			return bad_value(o, val, "an item is too long");
		if (i == max)
			return bad_value(o, val, "more than 64 items");
		memcpy(item, p, len);
		item[len] = 0;
		if (one(o, item, i++, out) < 0)
			return -EINVAL;
		if (!p[len])
			break;
		p += len + 1;
	}
	*n = i;
	return 0;
}

static int one_period(const struct opt *o, const char *item, unsigned i,
		      void *out)
{
	return parse_num(o, item, 0, 1e6, true,
			 "not a positive number of seconds",
			 &((double *)out)[i]);
}

static int one_size(const struct opt *o, const char *item, unsigned i,
		    void *out)
{
	uint64_t v;

	if (parse_u64(o, item, &v) < 0)
		return -EINVAL;
	if (v == 0 || v % 512 || v > (1u << 30))
		return bad_value(o, item,
				 "must be a positive multiple of 512, at most 1 GiB");
	((uint32_t *)out)[i] = (uint32_t)v;
	return 0;
}

/* --periods: also the plain --period's field, set to the first. */
static int set_periods(struct args *a, const struct opt *o, const char *val)
{
	struct bench_cfg *c = &a->cfg;

	if (parse_list(o, val, BENCH_LIST_MAX, one_period, c->periods,
		       &c->nperiods) < 0)
		return -EINVAL;
	c->period_s = c->periods[0];
	return 0;
}

static int set_sizes(struct args *a, const struct opt *o, const char *val)
{
	struct bench_cfg *c = &a->cfg;

	if (parse_list(o, val, BENCH_LIST_MAX, one_size, c->sizes,
		       &c->nsizes) < 0)
		return -EINVAL;
	c->size = c->sizes[0];
	return 0;
}

/* --period and --size: the one-element lists. */
static int set_period(struct args *a, const struct opt *o, const char *val)
{
	a->cfg.nperiods = 0;
	return set_seconds(a, o, val);
}

static int set_one_size(struct args *a, const struct opt *o, const char *val)
{
	a->cfg.nsizes = 0;
	return set_size(a, o, val);
}

static int set_buffer(struct args *a, const struct opt *o, const char *val)
{
	uint64_t v;

	if (parse_u64(o, val, &v) < 0)
		return -EINVAL;
	if (v == 0 || v % 4096 || v > (256u << 20))
		return bad_value(o, val, "must be a positive multiple of "
					 "4096, at most 256 MiB");
	a->cfg.buffer_size = (uint32_t)v;
	a->buffer_given = true;
	return 0;
}

static int one_pct(const struct opt *o, const char *item, unsigned i,
		   void *out)
{
	return parse_num(o, item, 0, 100, true,
			 "not a percentage above 0, at most 100",
			 &((double *)out)[i]);
}

static int set_thresholds(struct args *a, const struct opt *o,
			  const char *val)
{
	double v[2];
	unsigned n;

	if (parse_list(o, val, 2, one_pct, v, &n) < 0)
		return -EINVAL;
	if (n != 2 || v[1] >= v[0])
		return bad_value(o, val, "wants A,B with B below A");
	a->cfg.a_pct = v[0];
	a->cfg.b_pct = v[1];
	a->thresholds_given = true;
	return 0;
}

static int set_str(struct args *a, const struct opt *o, const char *val)
{
	if (!*val)
		return bad_value(o, "''", "empty");
	*(const char **)field(a, o) = val;
	return 0;
}

static int set_flag(struct args *a, const struct opt *o, const char *val)
{
	(void)val;
	*(bool *)field(a, o) = true;
	return 0;
}

static int set_count(struct args *a, const struct opt *o, const char *val)
{
	(void)val;
	(*(int *)field(a, o))++;
	return 0;
}

static const struct {
	const char *name;
	enum bench_engine engine;
} engines[] = {
	{ "uring", BENCH_ENGINE_URING },
	{ "psync", BENCH_ENGINE_PSYNC },
};

static int set_engine(struct args *a, const struct opt *o, const char *val)
{
	size_t i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		if (strcmp(engines[i].name, val) == 0) {
			*(enum bench_engine *)field(a, o) = engines[i].engine;
			return 0;
		}
	}
	return bad_value(o, val, "unknown engine (known: uring, psync)");
}

static const char *engine_name(enum bench_engine e)
{
	size_t i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (engines[i].engine == e)
			return engines[i].name;
	return "unknown";
}

#define A(f) offsetof(struct args, f)

static const struct opt opts[] = {
	{ "device", 'd', "sim:PROFILE|PATH", set_str, A(cfg.device),
	  "simulated disk, file or device ("
	  DEF_DEVICE ")" },
	{ "policy", 'p', "NAME", set_str, A(policy),
	  "queueing policy (default " DEF_POLICY ")" },
	{ "engine", 'e', "uring|psync", set_engine, A(cfg.engine),
	  "libiosched, or a pread pool (default uring)" },
	{ "streams", 'n', "N", set_uint, A(streams),
	  "streams (default 16; --sweep starts at 8)" },
	{ "size", 's', "BYTES", set_one_size, A(cfg.size),
	  "bytes per request, n*512 (default 65536)" },
	{ "sizes", 0, "LIST", set_sizes, 0,
	  "bytes per request, streams round-robin" },
	{ "period", 0, "SECONDS", set_period, A(cfg.period_s),
	  "a stream's period and deadline (default 0.3)" },
	{ "periods", 0, "LIST", set_periods, 0,
	  "periods in seconds, streams round-robin" },
	{ "writers", 0, "F", set_fraction, A(cfg.writers),
	  "fraction of streams that append (default 0)" },
	{ "write-deadline", 0, "SECONDS", set_seconds, A(cfg.write_deadline_s),
	  "a write's deadline after issue (its period)" },
	{ "deadline-factor", 0, "X", set_factor, A(cfg.deadline_factor),
	  "read deadline = issue + X * period (1)" },
	{ "background", 0, "N", set_u32_or_0, A(cfg.background),
	  "extra best-effort 1 MiB sequential readers" },
	{ "share", 0, "K", set_uint, A(cfg.share),
	  "K streams read one region 2 s apart (1)" },
	{ "refill", 0, NULL, set_flag, A(cfg.refill),
	  "streamd's A/B input buffers (bursts, seeks)" },
	{ "seek-every", 0, "SECONDS", set_seconds, A(cfg.seek_every_s),
	  "--refill: mean time between random seeks" },
	{ "buffer", 0, "BYTES", set_buffer, 0,
	  "--refill: input buffer size (1048576)" },
	{ "thresholds", 0, "A,B", set_thresholds, 0,
	  "--refill: percent full / low (80,30)" },
	{ "trace", 0, "FILE", set_str, A(trace_path),
	  "one line per completed request to FILE" },
	{ "duration", 't', "SECONDS", set_seconds, A(duration_s),
	  "run length (default 30 on sim:, else 10)" },
	{ "seed", 0, "N", set_seed, A(cfg.seed),
	  "seed of phases and simulator (default 1)" },
	{ "depth", 0, "N", set_uint, A(cfg.depth),
	  "dispatch depth; --micro: queue depth (1000)" },
	{ "profile", 0, "NAME|PATH", set_str, A(cfg.profile),
	  "model of PATH (nvme); --micro: hdd-7200" },
	{ "threads", 0, "N", set_uint, A(cfg.threads),
	  "psync pool size (default 64)" },
	{ "write", 0, NULL, set_flag, A(write),
	  "write, not read: DESTROYS the data on PATH" },
	{ "sweep", 0, NULL, set_flag, A(sweep),
	  "find the most streams that miss no deadline" },
	{ "micro", 0, NULL, set_flag, A(micro),
	  "time the policy's insert and pop alone" },
	{ "quiet", 'q', NULL, set_flag, A(quiet),
	  "no progress lines or warnings on stderr" },
	{ "verbose", 'v', NULL, set_count, A(verbose),
	  "library info lines on stderr (-vv: debug)" },
	{ "help", 'h', NULL, set_flag, A(help), "this text" },
	{ "version", 0, NULL, set_flag, A(version), "the version" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s [--device sim:PROFILE|PATH] [options]\n"
		   "       %s --micro [--policy NAME] [--depth N] "
		   "[--profile NAME|PATH]\n\n",
		PROG, PROG);
	for (i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char lhs[64];

		snprintf(lhs, sizeof(lhs), "%c%c%c --%s%s%s",
			 o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ',
			 o->short_name ? ',' : ' ', o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-34s %s\n", lhs, o->help);
	}
	fprintf(f, "\npolicies: %s\n"
		   "The JSON result is the last line of stdout; see "
		   "iosched-bench(1).\n",
		iosched_policies());
}

/* Parses argv into @a; returns 0 or -EINVAL (a message was printed). */
static int parse_args(struct args *a, int argc, char **argv)
{
	struct option lo[NOPTS + 1];
	char so[3 * NOPTS + 2], *sp = so;
	size_t i;
	int c;

	memset(lo, 0, sizeof(lo));
	*sp++ = ':'; /* report a missing argument as ':' */
	for (i = 0; i < NOPTS; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].arg ? required_argument : no_argument;
		lo[i].val = opts[i].short_name ? opts[i].short_name :
						 (int)(256 + i);
		if (opts[i].short_name) {
			*sp++ = opts[i].short_name;
			if (opts[i].arg)
				*sp++ = ':';
		}
	}
	*sp = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		for (i = 0; i < NOPTS && lo[i].val != c; i++)
			;
		if (i == NOPTS) {
			if (optopt > 0 && optopt < 256)
				fprintf(stderr, "%s: %s option '-%c'\n", PROG,
					c == ':' ? "missing value for" :
						   "unknown",
					optopt);
			else
				fprintf(stderr, "%s: %s option '%s'\n", PROG,
					c == ':' ? "missing value for" :
						   "unknown",
					argv[optind - 1]);
			return -EINVAL;
		}
		if (opts[i].set(a, &opts[i], optarg) < 0)
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", PROG,
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Validation and defaults                                             */
/* ------------------------------------------------------------------ */

static bool is_sim(const char *device)
{
	return device && strncmp(device, "sim:", 4) == 0;
}

static bool policy_known(const char *name)
{
	const char *list = iosched_policies(), *p = list;
	size_t n = strlen(name);

	while (*p) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "%s: %s\n", PROG, msg);
	return -EINVAL;
}

/* Whether any option beyond the plain periodic load was given. */
static bool rich_load(const struct args *a)
{
	const struct bench_cfg *c = &a->cfg;

	return c->nperiods > 1 || c->nsizes > 1 || c->writers > 0 ||
	       c->write_deadline_s > 0 || c->deadline_factor > 0 ||
	       c->background || c->share > 1 || c->refill || a->trace_path;
}

/* The workload options' own rules. */
static int finish_load(struct args *a)
{
	struct bench_cfg *c = &a->cfg;

	if (c->engine == BENCH_ENGINE_PSYNC && rich_load(a))
		return usage_error("--engine psync runs the plain periodic "
				   "load only (--period, --size, --write)");
	if (c->writers > 0 && !is_sim(c->device) && !a->write)
		return usage_error("--writers on a real device DESTROYS its "
				   "data: give --write as well to allow it");
	if (!c->refill && (c->seek_every_s > 0 || a->buffer_given ||
			   a->thresholds_given))
		return usage_error("--seek-every, --buffer and --thresholds "
				   "need --refill");
	if (c->refill && (uint64_t)(c->buffer_size ? c->buffer_size :
				    BENCH_REFILL_BUFFER) <
				 2 * (uint64_t)bench_max_size(c))
		return usage_error("--buffer must hold at least two of the "
				   "largest --sizes");
	if (a->trace_path && a->sweep)
		return usage_error("--trace and --sweep exclude each other");
	return 0;
}

/* Checks what getopt can't and fills in the mode-dependent defaults. */
static int finish_args(struct args *a)
{
	struct bench_cfg *c = &a->cfg;

	if (a->policy && !policy_known(a->policy)) {
		fprintf(stderr, "%s: unknown policy '%s' (known: %s)\n", PROG,
			a->policy, iosched_policies());
		return -EINVAL;
	}
	c->policy = a->policy ? a->policy : DEF_POLICY;
	if (a->sweep && a->micro)
		return usage_error("--sweep and --micro exclude each other");
	if (a->micro) {
		if (!c->depth)
			c->depth = DEF_MICRO_DEPTH;
		return 0;
	}
	if (!c->device)
		c->device = DEF_DEVICE;
	if (is_sim(c->device) && !c->device[4])
		return usage_error("--device sim: needs a profile name");
	if (is_sim(c->device) && c->engine == BENCH_ENGINE_PSYNC)
		return usage_error("--engine psync needs a real device, "
				   "not a sim: one");
	if (is_sim(c->device) && c->profile)
		return usage_error("--profile is for real devices; the "
				   "profile of sim:PROFILE is in its name");
	c->streams = a->streams ? a->streams :
		     a->sweep	? DEF_SWEEP_START :
				  DEF_STREAMS;
	c->duration_s = a->duration_s ? a->duration_s :
			is_sim(c->device) ? DEF_DURATION_SIM_S :
					    DEF_DURATION_REAL_S;
	c->write = a->write;
	if (finish_load(a) < 0)
		return -EINVAL;
	if (c->engine == BENCH_ENGINE_PSYNC && a->policy && !a->quiet)
		fprintf(stderr, "%s: --policy has no effect with --engine "
				"psync; the pool serves in arrival order\n",
			PROG);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

static const char *const level_names[] = {
	[IOSCHED_LOG_ERROR] = "error", [IOSCHED_LOG_WARN] = "warning",
	[IOSCHED_LOG_INFO] = "info",   [IOSCHED_LOG_DEBUG] = "debug",
};

/* Errors always; warnings unless --quiet; the rest with -v / -vv. */
static void log_line(void *arg, enum iosched_log_level level, const char *msg)
{
	const struct args *a = arg;
	bool show = level == IOSCHED_LOG_ERROR ||
		    (level == IOSCHED_LOG_WARN && !a->quiet) ||
		    (level == IOSCHED_LOG_INFO && a->verbose >= 1) ||
		    (level == IOSCHED_LOG_DEBUG && a->verbose >= 2);

	if (show)
		fprintf(stderr, "%s: %s: %s\n", PROG,
			(unsigned)level < 4 ? level_names[level] : "log", msg);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

/* Streams that write: floor(N F) with --writers, as bench_load.c picks. */
static unsigned writer_streams(const struct bench_cfg *c)
{
	if (c->writers > 0)
		return (unsigned)floor(c->streams * c->writers + 1e-9);
	return c->write ? c->streams : 0;
}

static const char *op_name(const struct bench_cfg *c)
{
	unsigned w = writer_streams(c);

	return w == 0 ? "read" : w == c->streams ? "write" : "mixed";
}

/* "workload": the richer load's options as the run used them. */
static int json_workload(json_t *o, const struct bench_cfg *c)
{
	json_t *w = json_object(), *periods = json_array();
	json_t *sizes = json_array();
	unsigned i;
	int e = 0;

	for (i = 0; i < (c->nperiods ? c->nperiods : 1); i++)
		if (json_array_append_new(periods, tool_json_real(
			    c->nperiods ? c->periods[i] : c->period_s, 6)))
			e = -ENOMEM;
	for (i = 0; i < (c->nsizes ? c->nsizes : 1); i++)
		if (json_array_append_new(sizes, json_integer(
			    c->nsizes ? c->sizes[i] : c->size)))
			e = -ENOMEM;
	e |= tool_json_set(w, "periods", periods);
	e |= tool_json_set(w, "sizes", sizes);
	e |= tool_json_dbl(w, "writers", c->writers, 6);
	e |= tool_json_set(w, "write_deadline_s", c->write_deadline_s > 0 ?
			   tool_json_real(c->write_deadline_s, 6) : json_null());
	e |= tool_json_dbl(w, "deadline_factor",
			   c->deadline_factor > 0 ? c->deadline_factor : 1, 6);
	e |= tool_json_u64(w, "background", c->background);
	e |= tool_json_u64(w, "share", c->share > 1 ? c->share : 1);
	e |= tool_json_bool(w, "refill", c->refill);
	e |= tool_json_dbl(w, "seek_every_s", c->seek_every_s, 6);
	e |= tool_json_u64(w, "buffer_size", c->buffer_size ? c->buffer_size :
						       BENCH_REFILL_BUFFER);
	e |= tool_json_dbl(w, "a_pct",
			   c->a_pct > 0 ? c->a_pct : BENCH_REFILL_A, 3);
	e |= tool_json_dbl(w, "b_pct",
			   c->b_pct > 0 ? c->b_pct : BENCH_REFILL_B, 3);
	return e | tool_json_set(o, "workload", w);
}

static const char *backend_name(const struct bench_cfg *c)
{
	if (c->engine == BENCH_ENGINE_PSYNC)
		return c->write ? "pwrite" : "pread";
	return is_sim(c->device) ? "sim" : "io_uring";
}

static const char *model_name(const struct bench_cfg *c)
{
	return is_sim(c->device) ? c->device + 4 :
	       c->profile	 ? c->profile :
				   DEF_REAL_PROFILE;
}

/* The fields of one run, with the dispatch depth the run really used. */
static int json_run(json_t *j, const struct bench_cfg *c,
		     const struct bench_result *r)
{
	bool psync = c->engine == BENCH_ENGINE_PSYNC;
	int e = 0;

	e |= tool_json_str(j, "policy", psync ? "fifo" : c->policy);
	e |= tool_json_str(j, "engine", engine_name(c->engine));
	e |= tool_json_str(j, "backend", backend_name(c));
	e |= tool_json_str(j, "device", c->device);
	if (!psync)
		e |= tool_json_str(j, "profile", model_name(c));
	e |= tool_json_str(j, "op", op_name(c));
	e |= tool_json_u64(j, "streams", c->streams);
	e |= tool_json_u64(j, "size", c->size);
	e |= tool_json_dbl(j, "period_s", c->period_s, 6);
	e |= tool_json_dbl(j, "duration_s", c->duration_s, 3);
	e |= tool_json_u64(j, "seed", c->seed);
	e |= tool_json_u64(j, "depth", r->depth);
	if (psync)
		e |= tool_json_u64(j, "threads", c->threads);
	e |= tool_json_u64(j, "requests", r->requests);
	e |= tool_json_u64(j, "misses", r->misses);
	e |= tool_json_u64(j, "errors", r->errors);
	e |= tool_json_dbl(j, "miss_rate", r->miss_rate, 6);
	e |= tool_json_dbl(j, "lateness_p50_us", r->lateness_p50_us, 3);
	e |= tool_json_dbl(j, "lateness_p99_us", r->lateness_p99_us, 3);
	e |= tool_json_dbl(j, "lateness_max_us", r->lateness_max_us, 3);
	e |= tool_json_dbl(j, "latency_p50_us", r->latency_p50_us, 3);
	e |= tool_json_dbl(j, "latency_p99_us", r->latency_p99_us, 3);
	e |= tool_json_dbl(j, "latency_max_us", r->latency_max_us, 3);
	e |= tool_json_u64(j, "bytes", r->bytes);
	e |= tool_json_dbl(j, "throughput_MBps", r->throughput_MBps, 3);
	e |= tool_json_dbl(j, "cpu_s", r->cpu_s, 3);
	e |= tool_json_dbl(j, "elapsed_s", r->elapsed_s, 3);
	e |= tool_json_u64(j, "queue_depth_max", r->queue_depth_max);
	/* psync runs the plain load, all reads or all writes. */
	e |= tool_json_u64(j, "writer_streams", writer_streams(c));
	e |= tool_json_u64(j, "reads",
			   psync ? (c->write ? 0 : r->requests) : r->reads);
	e |= tool_json_u64(j, "writes",
			   psync ? (c->write ? r->requests : 0) : r->writes);
	e |= tool_json_u64(j, "read_misses",
			   psync ? (c->write ? 0 : r->misses) : r->read_misses);
	e |= tool_json_u64(j, "write_misses",
			   psync ? (c->write ? r->misses : 0) : r->write_misses);
	e |= tool_json_u64(j, "background_requests",
			   r->background_requests);
	e |= tool_json_u64(j, "underflows", r->underflows);
	e |= tool_json_u64(j, "seeks", r->seeks);
	e |= tool_json_u64(j, "shed", r->shed);
	e |= tool_json_u64(j, "glmd_rescues", r->glmd_rescues);
	e |= tool_json_u64(j, "glmd_rescues_kept", r->glmd_rescues_kept);
	e |= tool_json_dbl(j, "model_error_p50_pct",
			   r->model_error_p50_pct, 2);
	e |= tool_json_dbl(j, "model_error_p99_pct",
			   r->model_error_p99_pct, 2);
	return e | json_workload(j, c);
}

/* Prints @o as one compact line and releases it; @e is what building it
 * returned (0 or -ENOMEM). */
static int json_emit(json_t *o, int e)
{
	if (e == 0)
		e = tool_json_print(stdout, o, JSON_COMPACT);
	json_decref(o);
	if (e < 0)
		fprintf(stderr, "%s: writing the JSON result: %s\n", PROG,
			strerror(-e));
	return e;
}

/* ------------------------------------------------------------------ */
/* Modes                                                               */
/* ------------------------------------------------------------------ */

/*
 * Checks the device and the model before any run, so that a bad name is
 * reported at once rather than after a long sweep, and learns the
 * device's size.
 */
static int probe(const struct bench_cfg *c, uint64_t *capacity)
{
	struct iosched_model *m = NULL;
	int fd = -1, rc = 0;

	if (c->engine != BENCH_ENGINE_PSYNC) {
		rc = iosched_model_load(&m, model_name(c), &c->log);
		if (rc < 0) {
			fprintf(stderr, "%s: profile '%s': %s\n", PROG,
				model_name(c),
				rc == -ENOENT ? "no such profile" :
						strerror(-rc));
			return rc;
		}
		*capacity = iosched_model_capacity(m);
		iosched_model_free(m);
	}
	if (!is_sim(c->device)) {
		rc = bench_open_device(c->device, c->write || c->writers > 0,
				       &fd, capacity);
		if (rc < 0)
			fprintf(stderr, "%s: %s: %s\n", PROG, c->device,
				strerror(-rc));
		else
			close(fd);
	}
	return rc;
}

static int run_one(const struct bench_cfg *c, struct bench_result *r)
{
	int rc = bench_run(c, r);

	if (rc < 0)
		fprintf(stderr, "%s: run on %s with %u streams failed: %s\n",
			PROG, c->device, c->streams, strerror(-rc));
	return rc;
}

static const char *const op_names[] = {
	[IOSCHED_READ] = "read", [IOSCHED_WRITE] = "write",
};

/* One --trace line per completed request, in completion order. */
static void trace_line(void *arg, const struct bench_trace *t)
{
	fprintf(arg, "%u %s %s %llu %u %llu %llu %llu %d\n", t->stream,
		t->background ? "bg" : "stream",
		(unsigned)t->op < 2 ? op_names[t->op] : "?",
		(unsigned long long)t->offset, t->len,
		(unsigned long long)t->submit_ns,
		(unsigned long long)t->deadline_ns,
		(unsigned long long)t->complete_ns, t->res);
}

static int trace_open(struct args *a, FILE **f)
{
	*f = NULL;
	if (!a->trace_path)
		return 0;
	*f = fopen(a->trace_path, "w");
	if (!*f) {
		fprintf(stderr, "%s: --trace %s: %s\n", PROG, a->trace_path,
			strerror(errno));
		return -errno;
	}
	fputs("# stream kind op offset len submit_ns deadline_ns "
	      "complete_ns res\n", *f);
	a->cfg.trace = trace_line;
	a->cfg.trace_arg = *f;
	return 0;
}

static int trace_close(struct args *a, FILE *f, int rc)
{
	if (f && (fclose(f) != 0) && rc == 0) {
		fprintf(stderr, "%s: --trace %s: %s\n", PROG, a->trace_path,
			strerror(errno));
		rc = -EIO;
	}
	return rc;
}

static int mode_run(struct args *a)
{
	json_t *j;
	struct bench_result r;
	uint64_t capacity;
	FILE *tf = NULL;
	int rc;

	rc = probe(&a->cfg, &capacity);
	if (rc == 0)
		rc = trace_open(a, &tf);
	if (rc == 0)
		rc = run_one(&a->cfg, &r);
	rc = trace_close(a, tf, rc);
	if (rc < 0)
		return rc;
	j = json_object();
	return json_emit(j, j ? json_run(j, &a->cfg, &r) : -ENOMEM);
}

struct sweep {
	struct { unsigned streams; uint64_t misses; } trial[SWEEP_MAX_TRIALS];
	unsigned ntrials;
	unsigned max;		   /* streams the device has room for */
	unsigned best;		   /* largest count with no miss; 0: none */
	unsigned first_bad;	   /* smallest count with a miss; 0: none yet */
	struct bench_result best_r; /* at best, or at first_bad if none */
};

/*
 * One trial at @n streams; records it and narrows the bounds.  On a real
 * device a run that misses is run once more and @n fails only if both
 * miss: this machine's storage stalls now and then, and one stall at a
 * small count would end the doubling far below the device's limit.  The
 * simulator is deterministic, so one run is the answer.
 */
static int sweep_trial(struct args *a, struct sweep *sw, unsigned n)
{
	struct bench_cfg c = a->cfg;
	struct bench_result r;
	int rc;

	unsigned tries = is_sim(a->cfg.device) ? 1 : 2, t;

	c.streams = n;
	for (t = 0; t < tries; t++) {
		if (sw->ntrials == SWEEP_MAX_TRIALS)
			return -E2BIG;
		rc = run_one(&c, &r);
		if (rc < 0)
			return rc;
		sw->trial[sw->ntrials].streams = n;
		sw->trial[sw->ntrials++].misses = r.misses;
		if (!a->quiet)
			fprintf(stderr,
				"%s: streams %u misses %llu miss_rate %.6f\n",
				PROG, n, (unsigned long long)r.misses,
				r.miss_rate);
		if (r.misses == 0)
			break;
	}
	if (r.misses == 0 && n > sw->best) {
		sw->best = n;
		sw->best_r = r;
	} else if (r.misses && (!sw->first_bad || n < sw->first_bad)) {
		sw->first_bad = n;
		if (!sw->best)
			sw->best_r = r;
	}
	return 0;
}

/*
 * Doubles the stream count from the start until a run misses, then
 * bisects between the last clean count and the first missing one.  The
 * search assumes misses grow with the load, which holds but for noise
 * near the boundary; the figure is the boundary this search found.
 */
static int sweep_search(struct args *a, struct sweep *sw)
{
	unsigned n = a->cfg.streams < sw->max ? a->cfg.streams : sw->max;
	int rc;

	for (;;) {
		rc = sweep_trial(a, sw, n);
		if (rc < 0 || sw->first_bad)
			break;
		if (n == sw->max)
			return 0; /* never missed: the device is the limit */
		n = n > sw->max / 2 ? sw->max : n * 2;
	}
	while (rc == 0 && sw->first_bad - sw->best > 1)
		rc = sweep_trial(a, sw,
				 sw->best + (sw->first_bad - sw->best) / 2);
	return rc;
}

static int mode_sweep(struct args *a)
{
	json_t *j = NULL, *trials;
	struct sweep *sw = calloc(1, sizeof(*sw));
	struct bench_cfg c = a->cfg;
	uint64_t capacity, max;
	unsigned i;
	int rc = -ENOMEM;

	if (!sw)
		goto out;
	rc = probe(&a->cfg, &capacity);
	if (rc < 0)
		goto out;
	max = capacity / bench_max_size(&a->cfg);
	sw->max = max > UINT32_MAX ? UINT32_MAX : (unsigned)max;
	rc = -EINVAL;
	if (sw->max == 0)
		fprintf(stderr, "%s: %s holds no %u-byte request\n", PROG,
			a->cfg.device, bench_max_size(&a->cfg));
	else
		rc = sweep_search(a, sw);
	if (rc < 0)
		goto out;
	c.streams = sw->best ? sw->best : sw->first_bad;
	j = json_object();
	trials = json_array();
	rc = j && trials ? json_run(j, &c, &sw->best_r) : -ENOMEM;
	rc |= tool_json_u64(j, "max_streams_zero_miss", sw->best);
	for (i = 0; i < sw->ntrials; i++)
		if (json_array_append_new(trials, json_pack("{s:I, s:I}",
			    "streams", (json_int_t)sw->trial[i].streams,
			    "misses", (json_int_t)sw->trial[i].misses)))
			rc = -ENOMEM;
	rc |= tool_json_set(j, "sweep_trials", trials);
	rc = json_emit(j, rc);
out:
	if (rc == -E2BIG)
		fprintf(stderr, "%s: sweep gave up after %d trials\n", PROG,
			SWEEP_MAX_TRIALS);
	free(sw);
	return rc;
}

static int mode_micro(struct args *a)
{
	const struct bench_cfg *c = &a->cfg;
	const char *profile = c->profile ? c->profile :
			      is_sim(c->device) ? c->device + 4 :
						  DEF_MICRO_PROFILE;
	struct bench_micro_result r;
	json_t *j;
	struct iosched_model *m;
	int rc;

	rc = iosched_model_load(&m, profile, &c->log);
	if (rc < 0) {
		fprintf(stderr, "%s: profile '%s': %s\n", PROG, profile,
			rc == -ENOENT ? "no such profile" : strerror(-rc));
		return rc;
	}
	iosched_model_free(m);
	rc = bench_micro(c->policy, profile, c->depth, c->seed, &r);
	if (rc < 0) {
		fprintf(stderr, "%s: micro-benchmark of %s failed: %s\n", PROG,
			c->policy, strerror(-rc));
		return rc;
	}
	j = json_object();
	rc = j ? 0 : -ENOMEM;
	rc |= tool_json_str(j, "policy", c->policy);
	rc |= tool_json_str(j, "profile", profile);
	rc |= tool_json_u64(j, "depth", c->depth);
	rc |= tool_json_u64(j, "seed", c->seed);
	rc |= tool_json_u64(j, "iterations", r.iterations);
	rc |= tool_json_dbl(j, "insert_ns_mean", r.insert_ns_mean, 1);
	rc |= tool_json_dbl(j, "insert_ns_p99", r.insert_ns_p99, 1);
	rc |= tool_json_dbl(j, "dispatch_ns_mean", r.dispatch_ns_mean, 1);
	return json_emit(j, rc);
}

int main(int argc, char **argv)
{
	struct args a = {
		.cfg = {
			.engine = BENCH_ENGINE_URING,
			.size = DEF_SIZE,
			.period_s = DEF_PERIOD_S,
			.seed = DEF_SEED,
			.threads = DEF_THREADS,
		},
	};
	int rc;

	a.cfg.log.fn = log_line;
	a.cfg.log.arg = &a;
	if (parse_args(&a, argc, argv) < 0)
		goto usage;
	if (a.help) {
		usage(stdout);
		return fflush(stdout) ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	if (a.version) {
		printf("%s %s\n", PROG, PACKAGE_VERSION);
		return fflush(stdout) ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	if (finish_args(&a) < 0)
		goto usage;
	rc = a.micro ? mode_micro(&a) : a.sweep ? mode_sweep(&a) : mode_run(&a);
	if (rc == 0 && (fflush(stdout) || ferror(stdout))) {
		fprintf(stderr, "%s: writing the result: %s\n", PROG,
			strerror(errno));
		rc = -EIO;
	}
	return rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
usage:
	fprintf(stderr, "%s: try '%s --help'\n", PROG, PROG);
	return EXIT_USAGE;
}
