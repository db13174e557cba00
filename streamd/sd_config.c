/*
 * Configuration of streamd: one static table of directives names every
 * setting once, with its argument name, type, place in struct sd_config,
 * default (as the text a user would write) and help line.  The same table
 * serves the config file, the command-line flags (sd_config_set() also
 * takes the flags' dashed spelling, "read-size"), --help, the defaults,
 * and the admin endpoint's JSON, whose keys are the directives that live in
 * struct sd_knobs.  Values are parsed strictly: a string that does not fit
 * its field, a number with junk after it, or one beyond its field is an
 * error, never truncated or wrapped.  Rules that tie several knobs
 * together live in sd_knobs_check(), run after a file is loaded and on
 * every JSON update (which works on a copy, so a rejected update changes
 * nothing).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "iosched.h"
#include "streamd-int.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)
#define MS 1000000ull

_Static_assert(sizeof(unsigned) == sizeof(uint32_t),
	       "unsigned fields are stored as 32-bit integers");

enum ctype {
	CT_STR,		/* char[] of the field's size, NUL included */
	CT_ONEOF,	/* CT_STR restricted to a comma-separated list */
	CT_UINT,	/* plain decimal integer */
	CT_BYTES,	/* decimal integer, optional K/M/G/T(iB) suffix */
	CT_SECONDS,	/* decimal seconds, optional "ms", "s", "m", "h" or
			   "d"; stored in ns */
	CT_PERCENT,	/* double in [0, 100], optional '%' */
	CT_FRACTION,	/* double in [0, 1] */
	CT_BITS,	/* bits/s: decimal, optional k/M/G/T (powers of 1000) */
	CT_BYTES_AUTO,	/* CT_BYTES, or "auto": SD_CACHE_SIZE_AUTO */
};

struct directive {
	const char *key;
	const char *arg;	 /* argument name for --help */
	enum ctype type;
	size_t off, size;	 /* the field in struct sd_config */
	const char *def;	 /* default, as config text */
	uint64_t min, max;	 /* integer types, stored units; max 0: width */
	const char *(*choices)(void); /* CT_ONEOF */
	const char *help;
};

#define FIELD(f)                                                              \
	.off = offsetof(struct sd_config, f),                                 \
	.size = sizeof(((struct sd_config *)0)->f)

static const char *log_levels(void)
{
	return "error,warn,info,debug";
}

static const char *no_yes(void)
{
	return "no,yes";
}

static const char *on_off(void)
{
	return "on,off";
}

/* Knobs come last and in the admin JSON's order; to_json walks them. */
static const struct directive directives[] = {
	{ "listen", "HOST:PORT", CT_STR, FIELD(listen), "127.0.0.1:8080",
	  .help = "HTTP address to listen on; port 0 picks a free port" },
	{ "data_dir", "DIR", CT_STR, FIELD(data_dir), "./streamd-data",
	  .help = "directory of the embedded volume, created if missing" },
	{ "djmfs", "ADDRESS", CT_STR, FIELD(djmfs), "",
	  .help = "DJMFS server (HOST:PORT, tcp:HOST:PORT, unix:PATH); "
		  "empty: run one in-process" },
	{ "volume", "PATH", CT_STR, FIELD(volume), "",
	  .help = "the DJMFS volume; empty: DIR/volume.img when embedded, "
		  "the server's path otherwise" },
	{ "volume_size", "BYTES", CT_BYTES, FIELD(volume_size), "8GiB",
	  .min = 16 * MIB, .help = "size of the embedded volume when created" },
	{ "access_log", "PATH", CT_STR, FIELD(access_log), "",
	  .help = "access log; empty: none, -: standard output" },
	{ "error_log", "PATH", CT_STR, FIELD(error_log), "-",
	  .help = "error log; -: standard error" },
	{ "log_level", "LEVEL", CT_ONEOF, FIELD(log_level), "info",
	  .choices = log_levels,
	  .help = "least important error-log lines written" },
	{ "publish_token", "TOKEN", CT_STR, FIELD(publish_token), "",
	  .help = "token encoders must present; empty: publishing is open" },
	{ "admin_token", "TOKEN", CT_STR, FIELD(admin_token), "",
	  .help = "token /admin requires (Bearer); empty: open" },
	{ "max_connections", "N", CT_UINT, FIELD(max_connections), "1024",
	  .min = 1, .help = "HTTP connections served at once" },
	{ "probe_size", "BYTES", CT_BYTES, FIELD(probe_size), "1MiB",
	  .min = 4 * KIB, .max = 64 * MIB,
	  .help = "bytes of an upload examined to recognise the stream" },
	{ "publish_interval", "SECONDS", CT_SECONDS, FIELD(publish_ns), "0.5",
	  .min = MS, .max = 60 * SD_NS,
	  .help = "longest time before received bytes are published" },
	{ "write_size", "BYTES", CT_BYTES, FIELD(write_size), "64KiB",
	  .min = 4 * KIB, .max = 16 * MIB,
	  .help = "bytes per recording write" },
	{ "write_deadline", "SECONDS", CT_SECONDS, FIELD(write_deadline_ns),
	  "1", .min = MS, .max = 60 * SD_NS,
	  .help = "deadline of a recording write after it is issued" },
	{ "idle_timeout", "SECONDS", CT_SECONDS, FIELD(idle_timeout_ns), "60",
	  .min = MS, .max = 86400 * SD_NS,
	  .help = "idle HTTP connections are closed after this long" },
	{ "max_connections_per_ip", "N", CT_UINT,
	  FIELD(max_connections_per_ip), "0",
	  .help = "HTTP connections from one address at once; 0: no cap" },
	{ "header_timeout", "SECONDS", CT_SECONDS, FIELD(header_timeout_ns),
	  "10", .min = MS, .max = 3600 * SD_NS,
	  .help = "a request's head must arrive within this (slow clients "
		  "are closed)" },
	{ "max_header_size", "BYTES", CT_BYTES, FIELD(max_header_size),
	  "16KiB", .min = 1 * KIB, .max = 1 * MIB,
	  .help = "largest request head (line and headers); larger gets 431" },
	{ "admin_listen", "HOST:PORT", CT_STR, FIELD(admin_listen), "",
	  .help = "serve /admin and /metrics here only; empty: on listen" },
	{ "play_secret", "SECRET", CT_STR, FIELD(play_secret), "",
	  .help = "key of signed play URLs (expires, sig); empty: playback "
		  "is open" },
	{ "djmfs_secret_file", "PATH", CT_STR, FIELD(djmfs_secret_file), "",
	  .help = "file holding the volume's shared secret (mode 600), "
		  "proven to the DJMFS server; empty: none" },
	{ "djmfs_salvage", "no|yes", CT_ONEOF, FIELD(djmfs_salvage), "no",
	  .choices = no_yes,
	  .help = "embedded volume: start past metadata damage, losing the "
		  "records the log names (default: refuse to start)" },
	{ "hls_live_window", "SECONDS", CT_SECONDS, FIELD(hls_live_window_ns),
	  "10", .min = SD_NS, .max = 86400 * SD_NS,
	  .help = "a live HLS playlist without window= lists the newest this "
		  "much (at least 5 target durations); start=-N lists this "
		  "much from N seconds ago" },
	/* auto: 1/8 of MemAvailable at startup, 64 MiB to 4 GiB (see
	 * sd_cache_auto_size): viewers near live need only seconds of each
	 * recording, and the rest of memory stays the page cache's and the
	 * sessions' buffers'. */
	{ "cache_size", "BYTES|auto", CT_BYTES_AUTO, FIELD(cache_size),
	  "auto", .max = UINT64_MAX - 1,
	  .help = "memory of the interval cache that serves viewers behind "
		  "another viewer or a recorder; auto: 1/8 of the memory "
		  "available at startup (64 MiB to 4 GiB); 0: no cache" },
	{ "inject_latency", "SECONDS", CT_SECONDS, FIELD(inject_latency_ns),
	  "0", .max = 60 * SD_NS,
	  .help = "testing only: delay every disk I/O by this much" },
	{ "inject_open_latency", "SECONDS", CT_SECONDS,
	  FIELD(inject_open_latency_ns), "0", .max = 60 * SD_NS,
	  .help = "testing only: answer every player session's DJMFS open "
		  "this much later, as a slow server would" },
	{ "inject_eio", "N", CT_UINT, FIELD(inject_eio_every), "0",
	  .help = "testing only: fail one disk I/O in N with EIO; 0: none" },
	{ "A", "PERCENT", CT_PERCENT, FIELD(knobs.a_pct), "80",
	  .help = "input buffer fill level above which a session skips" },
	{ "B", "PERCENT", CT_PERCENT, FIELD(knobs.b_pct), "30",
	  .help = "fill level below which a session reads again at once" },
	{ "period", "SECONDS", CT_SECONDS, FIELD(knobs.period_ns), "0.3",
	  .help = "pump period: every session is visited this often" },
	{ "read_size", "BYTES", CT_BYTES, FIELD(knobs.read_size), "64KiB",
	  .help = "bytes per session read" },
	{ "buffer_size", "BYTES", CT_BYTES, FIELD(knobs.buffer_size), "1MiB",
	  .help = "bytes of each session's input buffer" },
	{ "deadline", "SECONDS", CT_SECONDS, FIELD(knobs.deadline_ns), "0",
	  .help = "read deadline after issue; 0: the period" },
	/* edf, not libiosched's glmd: on the ssd-sata profile glmd keeps
	 * deadline order too, but gives up reads it forecasts late, and
	 * near capacity (2,200 viewers) that starved viewers edf's short
	 * misses did not (doc/streamd.md, "Measured"). */
	{ "policy", "POLICY", CT_ONEOF, FIELD(knobs.policy), "edf",
	  .choices = iosched_policies, .help = "I/O scheduling policy" },
	{ "depth", "N", CT_UINT, FIELD(knobs.depth), "0",
	  .help = "requests dispatched to the disk at once; 0: the profile's" },
	{ "profile", "NAME|PATH", CT_STR, FIELD(knobs.profile), "ssd-sata",
	  .help = "disk model profile the scheduler consults" },
	/* 5 s: GStreamer's playbin starts once its queue2 holds 2 s
	 * (buffer-duration), VLC once it has its 1 s network-caching, and
	 * the position of a media time inside a 2 s GOP is interpolated,
	 * so 2 s plus a GOP plus the pump's period is the least that fills
	 * both at once; measured with playbin on start=-30, 2 s started in
	 * 3.5 s and 5 or 10 s in 2.7 s (the rest is queue2 waiting for its
	 * rate estimate to settle), so more than 5 s buys nothing but
	 * memory in the player.  0 turns pacing off. */
	{ "burst", "SECONDS", CT_SECONDS, FIELD(knobs.burst_ns), "5",
	  .max = 600 * SD_NS,
	  .help = "a .ts response may run this far ahead of real time: a "
		  "burst at its start, then the stream's rate; 0: no pacing" },
	{ "cors_origins", "ORIGINS", CT_STR, FIELD(knobs.cors_origins), "",
	  .help = "origins whose pages may fetch streams (comma-separated, "
		  "or *); empty: none" },
	{ "admission", "on|off", CT_ONEOF, FIELD(knobs.admission), "on",
	  .choices = on_off,
	  .help = "admit a new player or publisher only if every deadline "
		  "already promised still holds; off: admit everyone" },
	/* 0.85: the scheduler's model and the measurements are estimates;
	 * the margin absorbs their error and the bursts of players that
	 * start or seek. */
	{ "admission_ceiling", "FRACTION", CT_FRACTION,
	  FIELD(knobs.admission_ceiling), "0.85",
	  .help = "share (0 to 1) of each resource (disk, cpu, network, "
		  "memory) admission may promise; 0 refuses every new "
		  "session" },
	{ "max_bandwidth", "BITS/S", CT_BITS, FIELD(knobs.max_bandwidth), "0",
	  .help = "network capacity for admission, bits/s (k, M, G "
		  "suffixes); 0: not modelled" },
	{ "retention", "DURATION", CT_SECONDS, FIELD(knobs.retention_ns), "0",
	  .help = "keep at most this much time of each recording (e.g. 36h, "
		  "7d); older data is trimmed a keyframe at a time; 0: "
		  "forever" },
	{ "retention_bytes", "BYTES", CT_BYTES, FIELD(knobs.retention_bytes),
	  "0", .help = "keep at most this many bytes of each recording; 0: "
		       "no limit" },
	/* 5 %: room for a few seconds of every recorder's writes between two
	 * retention passes, on any volume worth running 24/7. */
	{ "volume_reserve", "PERCENT", CT_PERCENT, FIELD(knobs.volume_reserve),
	  "5", .help = "keep this share of the volume free: below it the "
		       "oldest data of all recordings is trimmed first" },
	{ "retention_overrides", "RULES", CT_STR,
	  FIELD(knobs.retention_overrides), "",
	  .help = "per-recording rules, '; '-separated: NAME retention=D "
		  "retention_bytes=B (either or both; 0: none)" },
	/* An hour: a clip is remuxed into a temporary file before its first
	 * byte leaves (faststart puts the moov atom first), so its length
	 * bounds the disk and the worker time one request may take. */
	{ "clip_max_duration", "SECONDS", CT_SECONDS,
	  FIELD(knobs.clip_max_duration_ns), "3600", .min = SD_NS,
	  .max = 86400 * SD_NS,
	  .help = "longest .mp4 clip a request may ask for; longer gets "
		  "400" },
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int is_knob(const struct directive *d)
{
	return d->off >= offsetof(struct sd_config, knobs) &&
	       d->off < offsetof(struct sd_config, knobs) +
				sizeof(struct sd_knobs);
}

/* ------------------------------------------------------------------ */
/* Scanning numbers                                                    */
/* ------------------------------------------------------------------ */

/* Leading decimal digits of *s into *v; advances *s past them.  Returns
 * how many there were, or -ERANGE when they overflow 64 bits. */
static int scan_digits(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*v = x;
	x = (uint64_t)(p - *s);
	*s = p;
	return (int)x;
}

static int scan_uint(const char *s, uint64_t *v)
{
	int n = scan_digits(&s, v);

	if (n < 0)
		return n;
	return n == 0 || *s ? -EINVAL : 0;
}

static const struct {
	const char *suffix;
	uint64_t mul;
} byte_suffixes[] = {
	{ "", 1 },	   { "K", KIB }, { "KiB", KIB }, { "M", MIB },
	{ "MiB", MIB }, { "G", GIB }, { "GiB", GIB }, { "T", TIB },
	{ "TiB", TIB },
};

static int scan_bytes(const char *s, uint64_t *v)
{
	uint64_t x;
	size_t i;
	int n = scan_digits(&s, &x);

	if (n <= 0)
		return n < 0 ? n : -EINVAL;
	for (i = 0; i < sizeof(byte_suffixes) / sizeof(byte_suffixes[0]); i++) {
		if (strcmp(s, byte_suffixes[i].suffix))
			continue;
		if (x > UINT64_MAX / byte_suffixes[i].mul)
			return -ERANGE;
		*v = x * byte_suffixes[i].mul;
		return 0;
	}
	return -EINVAL;
}

/* Fixed point, not strtod: "0.3" must be exactly 300000000 ns.  More
 * than nine decimals would be rounded away: an error. */
static int scan_seconds(const char *s, uint64_t *ns)
{
	uint64_t ip, frac = 0, scale = SD_NS / 10, unit = SD_NS;
	int n = scan_digits(&s, &ip);

	if (n <= 0)
		return n < 0 ? n : -EINVAL;
	if (*s == '.') {
		if (*++s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++, scale /= 10) {
			if (!scale)
				return -EINVAL;
			frac += (uint64_t)(*s - '0') * scale;
		}
	}
	if (!strcmp(s, "ms"))
		unit = MS;
	else if (!strcmp(s, "m"))
		unit = 60 * SD_NS;
	else if (!strcmp(s, "h"))
		unit = 3600 * SD_NS;
	else if (!strcmp(s, "d"))
		unit = 86400 * SD_NS;
	else if (*s && strcmp(s, "s"))
		return -EINVAL;
	/* frac < 1e9: times a minute, hour or day's whole seconds, or a
	 * millisecond's ns over 1e9, it stays far inside 64 bits. */
	frac = unit >= SD_NS ? frac * (unit / SD_NS) : frac * unit / SD_NS;
	if (ip > (UINT64_MAX - frac) / unit)
		return -ERANGE;
	*ns = ip * unit + frac;
	return 0;
}

static const struct {
	const char *suffix;
	uint64_t mul;
} bit_suffixes[] = {
	{ "", 1 }, { "k", 1000 }, { "K", 1000 }, { "M", 1000000 },
	{ "G", 1000000000 }, { "T", 1000000000000ull },
};

/* Bits per second: "500000", "2M", "1.5G" (powers of 1000, as network
 * rates are quoted); a fraction finer than one bit/s is an error. */
static int scan_bits(const char *s, uint64_t *v)
{
	uint64_t ip, frac = 0, scale = 1;
	int n = scan_digits(&s, &ip), k = 0;
	size_t i;

	if (n <= 0)
		return n < 0 ? n : -EINVAL;
	if (*s == '.') {
		if (*++s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++, k++) {
			if (k >= 6)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*s - '0');
			scale *= 10;
		}
	}
	for (i = 0; i < sizeof(bit_suffixes) / sizeof(bit_suffixes[0]); i++) {
		uint64_t mul = bit_suffixes[i].mul;

		if (strcmp(s, bit_suffixes[i].suffix))
			continue;
		if (ip > UINT64_MAX / mul || (frac * mul) % scale)
			return frac * mul % scale ? -EINVAL : -ERANGE;
		*v = ip * mul + frac * mul / scale;
		return 0;
	}
	return -EINVAL;
}

/* strtod would also take spaces, signs, hex, "inf" and "nan". */
static int scan_percent(const char *s, double *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	if (s[strspn(s, "0123456789.eE+-%")])
		return -EINVAL;
	*v = strtod(s, &end);
	if (end == s)
		return -EINVAL;
	if (*end == '%')
		end++;
	if (*end)
		return -EINVAL;
	return isfinite(*v) && *v >= 0 && *v <= 100 ? 0 : -ERANGE;
}

/* ------------------------------------------------------------------ */
/* Storing values                                                      */
/* ------------------------------------------------------------------ */

static uint64_t get_int(const struct directive *d, const void *field)
{
	uint32_t x32;
	uint64_t x64;

	if (d->size == sizeof(uint32_t)) {
		memcpy(&x32, field, sizeof(x32));
		return x32;
	}
	memcpy(&x64, field, sizeof(x64));
	return x64;
}

/* A bound as the user would write it, for messages. */
static void fmt_bound(const struct directive *d, uint64_t v, char *buf,
		      size_t len)
{
	if (d->type == CT_SECONDS)
		snprintf(buf, len, "%gs", (double)v / SD_NS);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

static int put_int(const struct directive *d, void *field, uint64_t v,
		   char *err, size_t errlen)
{
	uint64_t max = d->max ? d->max
			      : d->size == sizeof(uint32_t) ? UINT32_MAX
							    : UINT64_MAX;
	char lo[32], hi[32], val[32];
	uint32_t x32 = (uint32_t)v;

	if (v < d->min || v > max) {
		fmt_bound(d, d->min, lo, sizeof(lo));
		fmt_bound(d, max, hi, sizeof(hi));
		fmt_bound(d, v, val, sizeof(val));
		return fail(err, errlen, "%s: %s is out of range (%s to %s)",
			    d->key, val, lo, hi);
	}
	if (d->size == sizeof(uint32_t))
		memcpy(field, &x32, sizeof(x32));
	else
		memcpy(field, &v, sizeof(v));
	return 0;
}

/* Whether @s is one of the names in the comma-separated @list. */
static int in_list(const char *list, const char *s)
{
	size_t len = strlen(s), n;

	while (*list) {
		n = strcspn(list, ",");
		if (n == len && len && !strncmp(list, s, len))
			return 1;
		list += n + (list[n] == ',');
	}
	return 0;
}

static int set_str(const struct directive *d, void *field, const char *s,
		   char *err, size_t errlen)
{
	size_t len = strlen(s);

	if (len >= d->size)
		return fail(err, errlen,
			    "%s: value too long (%zu bytes, at most %zu)",
			    d->key, len, d->size - 1);
	if (d->choices && !in_list(d->choices(), s))
		return fail(err, errlen, "%s: '%.64s' is not one of %s",
			    d->key, s, d->choices());
	memcpy(field, s, len + 1);
	return 0;
}

static const char *const expected[] = {
	[CT_UINT] = "a decimal integer",
	[CT_BYTES] = "a size in bytes (digits, optional K, M, G, T, KiB, "
		     "MiB, GiB, TiB)",
	[CT_SECONDS] = "a duration (decimal seconds, optional ms, s, m, h "
		       "or d)",
	[CT_PERCENT] = "a percentage from 0 to 100",
	[CT_FRACTION] = "a fraction from 0 to 1",
	[CT_BITS] = "bits per second (digits, optional decimals and k, M, "
		    "G, T)",
	[CT_BYTES_AUTO] = "a size in bytes (digits, optional K, M, G, T, "
			  "KiB, MiB, GiB, TiB) or auto",
};

static int bad_value(const struct directive *d, const char *s, int rc,
		     char *err, size_t errlen)
{
	if (rc == -ERANGE)
		return fail(err, errlen, "%s: '%.64s' is out of range", d->key,
			    s);
	return fail(err, errlen, "%s: '%.64s' is not %s", d->key, s,
		    expected[d->type]);
}

static int set_scanned(const struct directive *d, void *field, const char *s,
		       char *err, size_t errlen)
{
	static int (*const scan[])(const char *, uint64_t *) = {
		[CT_UINT] = scan_uint,
		[CT_BYTES] = scan_bytes,
		[CT_SECONDS] = scan_seconds,
		[CT_BITS] = scan_bits,
	};
	uint64_t v;
	int rc = scan[d->type](s, &v);

	if (rc)
		return bad_value(d, s, rc, err, errlen);
	return put_int(d, field, v, err, errlen);
}

static int set_bytes_auto(const struct directive *d, void *field,
			  const char *s, char *err, size_t errlen)
{
	uint64_t v = SD_CACHE_SIZE_AUTO;
	int rc;

	if (strcmp(s, "auto") != 0) {
		rc = scan_bytes(s, &v);
		if (rc)
			return bad_value(d, s, rc, err, errlen);
		return put_int(d, field, v, err, errlen);
	}
	memcpy(field, &v, sizeof(v));
	return 0;
}

static int set_percent(const struct directive *d, void *field, const char *s,
		       char *err, size_t errlen)
{
	double v;
	int rc = scan_percent(s, &v);

	if (rc == 0 && d->type == CT_FRACTION && (strchr(s, '%') || v > 1))
		rc = strchr(s, '%') ? -EINVAL : -ERANGE;

	if (rc)
		return bad_value(d, s, rc, err, errlen);
	memcpy(field, &v, sizeof(v));
	return 0;
}

/* ------------------------------------------------------------------ */
/* JSON values                                                         */
/* ------------------------------------------------------------------ */

static json_t *str_to_json(const struct directive *d, const void *field)
{
	(void)d;
	return json_string(field);
}

static json_t *int_to_json(const struct directive *d, const void *field)
{
	return json_integer((json_int_t)get_int(d, field));
}

static json_t *seconds_to_json(const struct directive *d, const void *field)
{
	return json_real((double)get_int(d, field) / SD_NS);
}

/* Whole percentages print as integers: {"A":80}, as the admin API shows. */
static json_t *percent_to_json(const struct directive *d, const void *field)
{
	double v;

	(void)d;
	memcpy(&v, field, sizeof(v));
	if (v == floor(v) && fabs(v) < 1e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *fraction_to_json(const struct directive *d, const void *field)
{
	double v;

	(void)d;
	memcpy(&v, field, sizeof(v));
	return json_real(v);
}

static int str_from_json(const struct directive *d, void *field, json_t *v,
			 char *err, size_t errlen)
{
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, errlen, "%s: expected a string", d->key);
	return set_str(d, field, json_string_value(v), err, errlen);
}

static int int_from_json(const struct directive *d, void *field, json_t *v,
			 char *err, size_t errlen)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return fail(err, errlen, "%s: expected an integer >= 0",
			    d->key);
	return put_int(d, field, (uint64_t)json_integer_value(v), err, errlen);
}

static int seconds_from_json(const struct directive *d, void *field,
			     json_t *v, char *err, size_t errlen)
{
	double s = json_is_number(v) ? json_number_value(v) : -1;

	if (!isfinite(s) || s < 0)
		return fail(err, errlen, "%s: expected a number of seconds",
			    d->key);
	if (s >= 1.8e10) /* beyond UINT64_MAX ns */
		return fail(err, errlen, "%s: %g is out of range", d->key, s);
	return put_int(d, field, (uint64_t)llround(s * 1e9), err, errlen);
}

static int percent_from_json(const struct directive *d, void *field,
			     json_t *v, char *err, size_t errlen)
{
	double p, max = d->type == CT_FRACTION ? 1 : 100;

	if (!json_is_number(v))
		return fail(err, errlen, "%s: expected a number", d->key);
	p = json_number_value(v);
	if (!isfinite(p) || p < 0 || p > max)
		return fail(err, errlen, "%s: %g is not %s", d->key, p,
			    expected[d->type]);
	memcpy(field, &p, sizeof(p));
	return 0;
}

/* What each type does with text and with JSON. */
static const struct {
	int (*set)(const struct directive *d, void *field, const char *s,
		   char *err, size_t errlen);
	json_t *(*to_json)(const struct directive *d, const void *field);
	int (*from_json)(const struct directive *d, void *field, json_t *v,
			 char *err, size_t errlen);
} types[] = {
	[CT_STR] = { set_str, str_to_json, str_from_json },
	[CT_ONEOF] = { set_str, str_to_json, str_from_json },
	[CT_UINT] = { set_scanned, int_to_json, int_from_json },
	[CT_BYTES] = { set_scanned, int_to_json, int_from_json },
	[CT_SECONDS] = { set_scanned, seconds_to_json, seconds_from_json },
	[CT_PERCENT] = { set_percent, percent_to_json, percent_from_json },
	[CT_FRACTION] = { set_percent, fraction_to_json, percent_from_json },
	[CT_BITS] = { set_scanned, int_to_json, int_from_json },
	/* not a knob: never in the JSON */
	[CT_BYTES_AUTO] = { set_bytes_auto, int_to_json, int_from_json },
};

/* ------------------------------------------------------------------ */
/* Keys, defaults, flags                                               */
/* ------------------------------------------------------------------ */

static const struct directive *lookup(const char *key)
{
	size_t i;

	for (i = 0; i < N_DIRECTIVES; i++)
		if (!strcmp(directives[i].key, key))
			return &directives[i];
	return NULL;
}

void sd_config_defaults(struct sd_config *cfg)
{
	const struct directive *d;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	for (d = directives; d < directives + N_DIRECTIVES; d++) {
		rc = types[d->type].set(d, (char *)cfg + d->off, d->def, NULL,
					0);
		assert(rc == 0); /* the table's own defaults parse */
		(void)rc;
	}
}

static int set_key(struct sd_config *cfg, const struct directive *d,
		   const char *key, const char *value, char *err, size_t errlen)
{
	if (!d) {
		fail(err, errlen, "unknown key '%.64s'", key ? key : "");
		return -ENOENT;
	}
	if (!value)
		return fail(err, errlen, "%s: missing value", d->key);
	return types[d->type].set(d, (char *)cfg + d->off, value, err, errlen);
}

/* Flags spell keys with dashes ("--read-size"), the table with '_'; both
 * are taken here.  The config file takes only the table's spelling. */
int sd_config_set(struct sd_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen)
{
	const struct directive *d = NULL;
	char name[32];
	size_t i, len = key ? strlen(key) : 0;

	if (key && len < sizeof(name)) {
		for (i = 0; i <= len; i++)
			name[i] = key[i] == '-' ? '_' : key[i];
		d = lookup(name);
	}
	return set_key(cfg, d, key, value, err, errlen);
}

void sd_config_keys(void (*fn)(void *arg, const char *key, const char *arg_name,
			       const char *help),
		    void *arg)
{
	const struct directive *d;
	char help[512];

	for (d = directives; d < directives + N_DIRECTIVES; d++) {
		snprintf(help, sizeof(help), "%s%s%s%s%s%s", d->help,
			 d->choices ? "; one of " : "",
			 d->choices ? d->choices() : "",
			 *d->def ? " (default " : "", d->def,
			 *d->def ? ")" : "");
		fn(arg, d->key, d->arg, help);
	}
}

/* ------------------------------------------------------------------ */
/* The config file                                                     */
/* ------------------------------------------------------------------ */

/* A double-quoted value starting at @p, unescaped in place (\" and \\). */
static int unquote(char *p, char **val, char *msg, size_t len)
{
	char *r = p + 1, *w = p + 1;

	*val = w;
	for (; *r != '"'; r++) {
		if (!*r || *r == '\n')
			return fail(msg, len, "unterminated quoted value");
		if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	*w = '\0';
	r++;
	r += strspn(r, " \t\r\n");
	if (*r && *r != '#')
		return fail(msg, len, "junk after the closing quote");
	return 1;
}

/* Splits "key = value # comment" in place.  Returns 1 (a setting), 0 (a
 * blank or comment line) or -EINVAL. */
static int split_line(char *p, char **key, char **val, char *msg, size_t len)
{
	char *end;

	p += strspn(p, " \t\r\n");
	if (!*p || *p == '#')
		return 0;
	*key = p;
	p += strcspn(p, " \t\r\n=#\"");
	end = p;
	p += strspn(p, " \t");
	if (*p != '=' || end == *key)
		return fail(msg, len, "expected 'key = value'");
	*end = '\0';
	p++;
	p += strspn(p, " \t");
	if (*p == '"')
		return unquote(p, val, msg, len);
	*val = p;
	p += strcspn(p, "#");
	while (p > *val && strchr(" \t\r\n", p[-1]))
		p--;
	*p = '\0';
	return 1;
}

static int load_line(struct sd_config *cfg, char *line, size_t n, char *msg,
		     size_t len)
{
	char *key = NULL, *val = NULL;
	int rc;

	if (strlen(line) != n)
		return fail(msg, len, "NUL byte in line");
	rc = split_line(line, &key, &val, msg, len);
	if (rc <= 0)
		return rc;
	return set_key(cfg, lookup(key), key, val, msg, len) ? -EINVAL : 0;
}

int sd_config_load(struct sd_config *cfg, const char *path, char *err,
		   size_t errlen)
{
	char *line = NULL, msg[512];
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fail(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		rc = load_line(cfg, line, (size_t)n, msg, sizeof(msg));
		if (rc) {
			fail(err, errlen, "%s:%u: %s", path, lineno, msg);
			goto out;
		}
	}
	if (ferror(f)) {
		rc = errno ? -errno : -EIO;
		fail(err, errlen, "%s: read: %s", path, strerror(-rc));
		goto out;
	}
	rc = sd_knobs_check(&cfg->knobs, msg, sizeof(msg));
	if (rc)
		fail(err, errlen, "%s: %s", path, msg);
out:
	free(line);
	fclose(f);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Knobs                                                               */
/* ------------------------------------------------------------------ */

/*
 * One item of cors_origins, @n bytes at @o: an origin as a browser sends
 * it in an Origin header (RFC 6454), scheme://host[:port] with the scheme
 * http or https, a host name, IPv4 or [IPv6] address, and a port only
 * when it is not the scheme's default (a browser leaves that one out, so
 * an item with it would never match).  NULL, or why not.
 */
static const char *origin_wrong(const char *o, size_t n)
{
	static const struct {
		const char *prefix;
		unsigned long port;
	} schemes[] = { { "http://", 80 }, { "https://", 443 } };
	const char *p = NULL, *end = o + n, *host;
	unsigned long dflt = 0, port = 0;
	size_t i;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t pl = strlen(schemes[i].prefix);

		if (n >= pl && strncasecmp(o, schemes[i].prefix, pl) == 0) {
			p = o + pl;
			dflt = schemes[i].port;
		}
	}
	if (!p)
		return "the scheme must be http:// or https://";
	host = p;
	if (*p == '[') {
		while (++p < end && *p && strchr("0123456789abcdefABCDEF:.", *p))
			;
		if (p >= end || *p != ']' || p == host + 1)
			return "a bracketed IPv6 address must close with ]";
		p++;
	} else {
		while (p < end && *p && strchr("abcdefghijklmnopqrstuvwxyz"
					      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					      "0123456789.-", *p))
			p++;
		if (p == host)
			return "no host";
	}
	if (p < end && *p == ':') {
		const char *digits = ++p;

		while (p < end && *p >= '0' && *p <= '9' && port <= 65535)
			port = port * 10 + (unsigned long)(*p++ - '0');
		if (p == digits || *digits == '0' || port > 65535)
			return "the port must be a number from 1 to 65535";
		if (port == dflt)
			return "leave out the scheme's default port: browsers "
			       "do";
	}
	if (p < end && *p == '/')
		return "no path, not even a trailing /";
	if (p < end)
		return "only scheme://host[:port] (no user, path, query, "
		       "space or other character)";
	return NULL;
}

/* cors_origins: "", "*", or origins separated by commas (spaces around
 * them allowed), each as origin_wrong() wants it. */
static int cors_origins_check(const char *list, char *err, size_t errlen)
{
	const char *p = list;

	if (!memchr(list, '\0', sizeof(((struct sd_knobs *)0)->cors_origins)))
		return fail(err, errlen, "cors_origins is too long");
	if (!*list || strcmp(list, "*") == 0)
		return 0;
	for (;;) {
		size_t n, m;
		const char *why;

		p += strspn(p, " \t");
		n = strcspn(p, ",");
		for (m = n; m && (p[m - 1] == ' ' || p[m - 1] == '\t'); m--)
			;
		why = m == 0 ? "an empty item" :
		      m == 1 && *p == '*' ? "* stands alone, not in a list" :
		      origin_wrong(p, m);
		if (why)
			return fail(err, errlen, "cors_origins: '%.*s' is not "
				    "an origin (scheme://host[:port]): %s",
				    (int)(m > 128 ? 128 : m), p, why);
		p += n;
		if (!*p)
			return 0;
		p++; /* the comma */
	}
}

int sd_knobs_check(const struct sd_knobs *k, char *err, size_t errlen)
{
	if (!(k->a_pct > 0 && k->a_pct <= 100))
		return fail(err, errlen,
			    "A (%g) must be above 0 and at most 100", k->a_pct);
	if (!(k->b_pct > 0 && k->b_pct < k->a_pct))
		return fail(err, errlen,
			    "B (%g) must be above 0 and below A (%g)", k->b_pct,
			    k->a_pct);
	if (k->period_ns < 10 * MS || k->period_ns > 10 * SD_NS)
		return fail(err, errlen,
			    "period (%gs) must be from 0.01s to 10s",
			    (double)k->period_ns / SD_NS);
	if (k->deadline_ns &&
	    (k->deadline_ns < MS || k->deadline_ns > 60 * SD_NS))
		return fail(err, errlen,
			    "deadline (%gs) must be 0 or from 0.001s to 60s",
			    (double)k->deadline_ns / SD_NS);
	if (k->read_size % 4096 || k->read_size < 4096 ||
	    k->read_size > 16 * MIB)
		return fail(err, errlen,
			    "read_size (%" PRIu32 ") must be a multiple of "
			    "4096 from 4096 to 16MiB", k->read_size);
	if (k->buffer_size % 4096 || k->buffer_size > 256 * MIB ||
	    k->buffer_size < 2 * (uint64_t)k->read_size)
		return fail(err, errlen,
			    "buffer_size (%" PRIu32 ") must be a multiple of "
			    "4096, at least twice read_size (%" PRIu32
			    ") and at most 256MiB",
			    k->buffer_size, k->read_size);
	if (k->depth > 256)
		return fail(err, errlen, "depth (%u) must be at most 256",
			    k->depth);
	if (!memchr(k->policy, '\0', sizeof(k->policy)) ||
	    !in_list(iosched_policies(), k->policy))
		return fail(err, errlen, "policy must be one of %s",
			    iosched_policies());
	if (!memchr(k->profile, '\0', sizeof(k->profile)) || !k->profile[0])
		return fail(err, errlen,
			    "profile must be a non-empty name or path");
	if (!memchr(k->admission, '\0', sizeof(k->admission)) ||
	    !in_list(on_off(), k->admission))
		return fail(err, errlen, "admission must be on or off");
	if (!(k->admission_ceiling >= 0 && k->admission_ceiling <= 1))
		return fail(err, errlen,
			    "admission_ceiling (%g) must be from 0 to 1",
			    k->admission_ceiling);
	if (!(k->volume_reserve >= 0 && k->volume_reserve <= 50))
		return fail(err, errlen,
			    "volume_reserve (%g) must be from 0 to 50",
			    k->volume_reserve);
	if (!memchr(k->retention_overrides, '\0',
		    sizeof(k->retention_overrides)) ||
	    sd_retention_rules(k, NULL, NULL, err, errlen) < 0)
		return -EINVAL;
	return cors_origins_check(k->cors_origins, err, errlen);
}

/*
 * Walks retention_overrides: "NAME key=value ...", items separated by ';'
 * or newlines.  With @name NULL it only checks the whole text (an error
 * in @err); otherwise *@out gets the knobs' rules with @name's overrides
 * on top.
 */
int sd_retention_rules(const struct sd_knobs *k, const char *name,
		       struct sd_retain_rules *out, char *err, size_t errlen)
{
	const char *p = k->retention_overrides;

	if (out) {
		out->retention_ns = (int64_t)k->retention_ns;
		out->retention_bytes = k->retention_bytes;
	}
	while (*p) {
		char item[512], *save = NULL, *w, who[SD_NAME_MAX + 1];
		size_t n = strcspn(p, ";\n");
		int words = 0, mine;

		if (n >= sizeof(item))
			return fail(err, errlen, "retention_overrides: an "
				    "item is over %zu bytes", sizeof(item) - 1);
		memcpy(item, p, n);
		item[n] = '\0';
		p += n + (p[n] != '\0');
		w = strtok_r(item, " \t\r", &save);
		if (!w)
			continue;
		if (!sd_name_valid(w))
			return fail(err, errlen, "retention_overrides: '%.64s' "
				    "is not a recording name", w);
		snprintf(who, sizeof(who), "%s", w);
		mine = name && !strcmp(who, name);
		while ((w = strtok_r(NULL, " \t\r", &save))) {
			char *eq = strchr(w, '=');
			uint64_t v;

			if (eq)
				*eq++ = '\0';
			if (eq && !strcmp(w, "retention") &&
			    scan_seconds(eq, &v) == 0 && v <= (uint64_t)INT64_MAX) {
				if (mine && out)
					out->retention_ns = (int64_t)v;
			} else if (eq && !strcmp(w, "retention_bytes") &&
				   scan_bytes(eq, &v) == 0) {
				if (mine && out)
					out->retention_bytes = v;
			} else {
				return fail(err, errlen, "retention_overrides: "
					    "%s: '%.64s%s%.64s' is not "
					    "retention=DURATION or "
					    "retention_bytes=BYTES", who, w,
					    eq ? "=" : "", eq ? eq : "");
			}
			words++;
		}
		if (!words)
			return fail(err, errlen, "retention_overrides: %s names "
				    "no rule", who);
	}
	return 0;
}

static void *knob_field(const struct sd_knobs *k, const struct directive *d)
{
	return (char *)k + (d->off - offsetof(struct sd_config, knobs));
}

/* Jansson allocates with malloc (nobody installs other functions), so the
 * caller frees the text with free(). */
char *sd_knobs_to_json(const struct sd_knobs *k)
{
	const struct directive *d;
	json_t *o = json_object(), *v;
	char *txt = NULL;

	if (!o)
		return NULL;
	for (d = directives; d < directives + N_DIRECTIVES; d++) {
		if (!is_knob(d))
			continue;
		v = types[d->type].to_json(d, knob_field(k, d));
		if (json_object_set_new(o, d->key, v)) /* takes v, even NULL */
			goto out;
	}
	/* 12 digits: nanoseconds up to 999 s survive a round trip. */
	txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
out:
	json_decref(o);
	return txt;
}

static int knob_from_json(struct sd_knobs *k, const char *key, json_t *v,
			  char *err, size_t errlen)
{
	const struct directive *d = lookup(key);

	if (!d)
		return fail(err, errlen, "unknown key '%.64s'", key);
	if (!is_knob(d))
		return fail(err, errlen, "%s cannot be changed at run time",
			    d->key);
	return types[d->type].from_json(d, knob_field(k, d), v, err, errlen);
}

int sd_knobs_from_json(const struct sd_knobs *cur, const char *json,
		       size_t len, struct sd_knobs *out, char *err,
		       size_t errlen)
{
	struct sd_knobs k = *cur;
	json_error_t je;
	json_t *root, *v;
	const char *key;
	int rc = 0;

	if (!json)
		return fail(err, errlen, "no JSON given");
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &je);
	if (!root)
		return fail(err, errlen, "not JSON: %s (line %d, column %d)",
			    je.text, je.line, je.column);
	if (!json_is_object(root)) {
		rc = fail(err, errlen, "expected a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		rc = knob_from_json(&k, key, v, err, errlen);
		if (rc)
			goto out;
	}
	rc = sd_knobs_check(&k, err, errlen);
	if (!rc)
		*out = k;
out:
	json_decref(root);
	return rc;
}
