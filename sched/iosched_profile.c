/*
 * Disk profiles: finding a profile file by name or path, and parsing its
 * "key = value" text into a struct iosched_model.  The accepted keys are a
 * static table (name, value parser, which device types accept it, which
 * require it, offsetof into the model), so adding a key is one row.  Any
 * defect stops the parse with -EINVAL and exactly one log line of the form
 * "origin:line: ..." naming the key or the offending text, so a user can
 * fix a profile from the message alone.  The same table writes a profile
 * (iosched__profile_write, for iosched-calibrate), so what is written is
 * what is read.  The format is described for users
 * in iosched-profile(5); the maths that consumes the result is in
 * iosched_model.c.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iosched-int.h"

#ifndef IOSCHED_PROFILE_DIR_DEFAULT
#define IOSCHED_PROFILE_DIR_DEFAULT "/usr/local/share/streamd/profiles"
#endif

#define PROFILE_MAX_BYTES (64u * 1024u)
#define PROFILE_SUFFIX ".profile"
#define PROFILE_VALUE_MAX 128

#define TYPE_BIT(t) (1u << (t))
#define HDD TYPE_BIT(IOSCHED__MODEL_HDD)
#define SSD TYPE_BIT(IOSCHED__MODEL_SSD)
#define ANY (HDD | SSD)

/* A value parser stores into @field and returns NULL, or returns why the
 * value was rejected (completing "key = 'value': <reason>"). */
typedef const char *(*value_fn)(const char *val, void *field);

/* How iosched__profile_write() renders a key's value. */
enum profile_put {
	PUT_TYPE,  /* enum iosched__model_type, by name */
	PUT_NAME,  /* const char * */
	PUT_U64,   /* uint64_t */
	PUT_UINT,  /* unsigned */
	PUT_WHOLE, /* double, as a whole number of at least 1 */
	PUT_REAL,  /* double, about six significant digits */
};

struct profile_key {
	const char *name;
	value_fn parse;
	unsigned types;	   /* device types that accept the key */
	unsigned required; /* device types that must have it */
	size_t off;	   /* into struct iosched_model */
	enum profile_put put;
	size_t text_off;   /* into struct iosched__profile_text */
};

struct profile_parse {
	struct iosched_model *m;
	const char *origin;
	const struct iosched_log *log;
	unsigned line;	     /* current (or, after the text, last) line */
	unsigned *seen;	     /* per key: line that set it, 0 = unset */
};

/* ------------------------------------------------------------------ */
/* Value parsers                                                       */
/* ------------------------------------------------------------------ */

static const char *const type_names[] = {
	[IOSCHED__MODEL_HDD] = "hdd",
	[IOSCHED__MODEL_SSD] = "ssd",
};

/* strtoull() alone would take signs, spaces and "0x"; profiles only have
 * plain decimal digits. */
static const char *parse_digits(const char **val, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)**val))
		return "not a whole number";
	errno = 0;
	*out = strtoull(*val, &end, 10);
	if (errno == ERANGE)
		return "out of range";
	*val = end;
	return NULL;
}

static const char *parse_unsigned(const char *val, uint64_t max,
				  uint64_t min, uint64_t *out)
{
	const char *why = parse_digits(&val, out);

	if (why)
		return why;
	if (*val)
		return "not a whole number";
	if (*out < min)
		return "must be positive";
	return *out > max ? "out of range" : NULL;
}

/* Plain decimal (optionally with exponent): no hex, inf or nan. */
static const char *parse_real(const char *val, double *out)
{
	char *end;

	if (!*val || val[strspn(val, "0123456789.eE+-")])
		return "not a number";
	errno = 0;
	*out = strtod(val, &end);
	if (*end || end == val)
		return "not a number";
	if (errno == ERANGE || !isfinite(*out))
		return "out of range";
	return NULL;
}

static const char *val_type(const char *val, void *field)
{
	size_t i;

	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (!strcmp(val, type_names[i])) {
			*(enum iosched__model_type *)field = i;
			return NULL;
		}
	}
	return "not a device type (hdd or ssd)";
}

static const char *val_name(const char *val, void *field)
{
	size_t n = strlen(val), i;

	if (n == 0)
		return "empty";
	if (n >= sizeof(((struct iosched_model *)0)->name))
		return "longer than 63 characters";
	/* Names end up in logs and JSON reports; keep them plain. */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)val[i];

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return "contains a control character, quote or backslash";
	}
	memcpy(field, val, n + 1);
	return NULL;
}

/* Bytes with an optional binary suffix: K, M, G or T (powers of 1024). */
static const char *val_size(const char *val, void *field)
{
	static const char suffixes[] = "KMGT";
	const char *sfx;
	uint64_t v;
	const char *why = parse_digits(&val, &v);
	unsigned shift = 0;

	if (why)
		return why;
	if (*val) {
		sfx = strchr(suffixes, toupper((unsigned char)*val));
		if (!sfx || val[1])
			return "not a size (bytes, or a number with K, M, G or T)";
		shift = 10 * (unsigned)(sfx - suffixes + 1);
	}
	if (v == 0)
		return "must be positive";
	if (v > UINT64_MAX >> shift)
		return "out of range";
	*(uint64_t *)field = v << shift;
	return NULL;
}

static const char *val_count64(const char *val, void *field)
{
	return parse_unsigned(val, UINT64_MAX, 1, field);
}

static const char *parse_uint(const char *val, uint64_t min, void *field)
{
	uint64_t v;
	const char *why = parse_unsigned(val, UINT_MAX, min, &v);

	if (!why)
		*(unsigned *)field = (unsigned)v;
	return why;
}

static const char *val_count(const char *val, void *field)
{
	return parse_uint(val, 1, field);
}

static const char *val_count0(const char *val, void *field)
{
	return parse_uint(val, 0, field);
}

static const char *val_positive(const char *val, void *field)
{
	double v;
	const char *why = parse_real(val, &v);

	if (why)
		return why;
	if (!(v > 0.0))
		return "must be positive";
	*(double *)field = v;
	return NULL;
}

/* MB/s (10^6 bytes) in the file, bytes/s in the model. */
static const char *val_rate(const char *val, void *field)
{
	double *rate = field;
	const char *why = val_positive(val, rate);

	if (why)
		return why;
	*rate *= 1e6;
	return isfinite(*rate) ? NULL : "out of range";
}

/* Microseconds in the file, nanoseconds in the model; zero is allowed. */
static const char *val_us(const char *val, void *field)
{
	double v;
	const char *why = parse_real(val, &v);

	if (why)
		return why;
	if (v < 0.0)
		return "must not be negative";
	v = v * 1e3 + 0.5;
	if (v >= 18446744073709549568.0)
		return "out of range";
	*(uint64_t *)field = (uint64_t)v;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The key table                                                       */
/* ------------------------------------------------------------------ */

/* Indices into profile_keys[], for the checks that name a key. */
enum profile_key_id {
	K_TYPE,
	K_NAME,
	K_CAPACITY,
	K_DEPTH,
	K_OVERHEAD,
	K_CYLINDERS,
	K_RPM,
	K_MEDIA_OUTER,
	K_MEDIA_INNER,
	K_BUS,
	K_SETTLE,
	K_SHORT_SEEK,
	K_SEEK_ACCEL,
	K_SEEK_VMAX,
	K_READ_LATENCY,
	K_WRITE_LATENCY,
	K_READ_RATE,
	K_WRITE_RATE,
	K_PARALLELISM,
	NKEYS
};

/* @key is the key's name and its field in struct iosched__profile_text;
 * @f its field in struct iosched_model. */
#define KEY(id, key, fn, t, r, f, put) \
	[id] = { #key, fn, t, r, offsetof(struct iosched_model, f), put, \
		 offsetof(struct iosched__profile_text, key) }

static const struct profile_key profile_keys[NKEYS] = {
	KEY(K_TYPE, type, val_type, ANY, ANY, type, PUT_TYPE),
	KEY(K_NAME, name, val_name, ANY, 0, name, PUT_NAME),
	KEY(K_CAPACITY, capacity_bytes, val_size, ANY, ANY, capacity_bytes,
	    PUT_U64),
	KEY(K_DEPTH, depth, val_count, ANY, 0, depth, PUT_UINT),
	KEY(K_OVERHEAD, overhead_us, val_us, ANY, ANY, overhead_ns, PUT_WHOLE),
	KEY(K_CYLINDERS, cylinders, val_count64, HDD, HDD, cylinders, PUT_U64),
	KEY(K_RPM, rpm, val_positive, HDD, HDD, rpm, PUT_WHOLE),
	KEY(K_MEDIA_OUTER, media_outer_MBps, val_rate, HDD, HDD,
	    media_outer_Bps, PUT_REAL),
	KEY(K_MEDIA_INNER, media_inner_MBps, val_rate, HDD, HDD,
	    media_inner_Bps, PUT_REAL),
	KEY(K_BUS, bus_MBps, val_rate, HDD, HDD, bus_Bps, PUT_REAL),
	KEY(K_SETTLE, settle_us, val_us, HDD, HDD, settle_ns, PUT_WHOLE),
	KEY(K_SHORT_SEEK, short_seek_tracks, val_count0, HDD, HDD,
	    short_seek_tracks, PUT_UINT),
	KEY(K_SEEK_ACCEL, seek_accel, val_positive, HDD, HDD, seek_accel,
	    PUT_REAL),
	KEY(K_SEEK_VMAX, seek_vmax, val_positive, HDD, HDD, seek_vmax,
	    PUT_REAL),
	KEY(K_READ_LATENCY, read_latency_us, val_us, SSD, SSD,
	    read_latency_ns, PUT_WHOLE),
	KEY(K_WRITE_LATENCY, write_latency_us, val_us, SSD, SSD,
	    write_latency_ns, PUT_WHOLE),
	KEY(K_READ_RATE, read_MBps, val_rate, SSD, SSD, read_Bps, PUT_REAL),
	KEY(K_WRITE_RATE, write_MBps, val_rate, SSD, SSD, write_Bps, PUT_REAL),
	KEY(K_PARALLELISM, parallelism, val_count, SSD, 0, parallelism,
	    PUT_UINT),
};

/* Profile defaults per device type, applied to keys the text left out. */
static const struct {
	unsigned depth;
	unsigned parallelism;
} type_defaults[] = {
	[IOSCHED__MODEL_HDD] = { 1, 1 },
	[IOSCHED__MODEL_SSD] = { 32, 1 },
};

static size_t key_find(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strlen(profile_keys[i].name) == n &&
		    !memcmp(profile_keys[i].name, k, n))
			return i;
	return NKEYS;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* About six significant digits in plain decimal, without trailing zeros:
 * what the parser's plain-decimal reals read back. */
static void put_real(FILE *f, double v)
{
	char buf[64];
	int prec = 6 - (int)ceil(log10(v));
	char *end;

	prec = prec < 0 ? 0 : prec > 12 ? 12 : prec;
	snprintf(buf, sizeof buf, "%.*f", prec, v);
	if (strchr(buf, '.')) {
		end = buf + strlen(buf) - 1;
		while (*end == '0')
			*end-- = '\0';
		if (*end == '.')
			*end = '\0';
	}
	fputs(buf, f);
}

static void put_value(FILE *f, const struct profile_key *k,
		      const struct iosched__profile_text *t)
{
	const char *p = (const char *)t + k->text_off;

	switch (k->put) {
	case PUT_TYPE:
		fputs(type_names[*(const enum iosched__model_type *)p], f);
		break;
	case PUT_NAME:
		fputs(*(const char *const *)p, f);
		break;
	case PUT_U64:
		fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PUT_UINT:
		fprintf(f, "%u", *(const unsigned *)p);
		break;
	case PUT_WHOLE:
		fprintf(f, "%.0f", fmax(1, round(*(const double *)p)));
		break;
	case PUT_REAL:
		put_real(f, *(const double *)p);
		break;
	}
}

int iosched__profile_write(FILE *f, const struct iosched__profile_text *t)
{
	unsigned bit = TYPE_BIT(t->type);
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (!(profile_keys[i].types & bit))
			continue;
		fprintf(f, "%s = ", profile_keys[i].name);
		put_value(f, &profile_keys[i], t);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------------ */
/* Lines                                                               */
/* ------------------------------------------------------------------ */

static void trim(const char **b, const char **e)
{
	while (*b < *e && isspace((unsigned char)**b))
		(*b)++;
	while (*e > *b && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

#define perr(st, fmt, ...)                                                 \
	iosched__log((st)->log, IOSCHED_LOG_ERROR, "%s:%u: " fmt,          \
		     (st)->origin, (st)->line, __VA_ARGS__)

/* One "key = value" line (comment already cut).  0 or -EINVAL. */
static int parse_line(struct profile_parse *st, const char *b, const char *e)
{
	const char *eq, *kb = b, *ke, *vb, *ve = e, *why;
	char val[PROFILE_VALUE_MAX];
	size_t k;

	trim(&kb, &ve);
	if (kb == ve)
		return 0;
	eq = memchr(kb, '=', (size_t)(ve - kb));
	if (!eq) {
		perr(st, "expected 'key = value', got '%.*s'",
		     (int)(ve - kb > 64 ? 64 : ve - kb), kb);
		return -EINVAL;
	}
	ke = eq;
	vb = eq + 1;
	trim(&kb, &ke);
	trim(&vb, &ve);
	k = key_find(kb, (size_t)(ke - kb));
	if (k == NKEYS) {
		perr(st, "unknown key '%.*s'", (int)(ke - kb > 64 ? 64 : ke - kb),
		     kb);
		return -EINVAL;
	}
	if (st->seen[k]) {
		perr(st, "duplicate key '%s' (first set on line %u)",
		     profile_keys[k].name, st->seen[k]);
		return -EINVAL;
	}
	if ((size_t)(ve - vb) >= sizeof(val)) {
		perr(st, "%s = '%.*s...': value too long",
		     profile_keys[k].name, 32, vb);
		return -EINVAL;
	}
	memcpy(val, vb, (size_t)(ve - vb));
	val[ve - vb] = '\0';
	why = profile_keys[k].parse(val, (char *)st->m + profile_keys[k].off);
	if (why) {
		perr(st, "%s = '%s': %s", profile_keys[k].name, val, why);
		return -EINVAL;
	}
	st->seen[k] = st->line;
	return 0;
}

static int parse_text(struct profile_parse *st, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl, *hash;
	int ret;

	while (p < end) {
		st->line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (memchr(p, '\0', (size_t)(nl - p))) {
			perr(st, "%s", "NUL byte in profile text");
			return -EINVAL;
		}
		/* No value contains '#', so it always starts a comment. */
		hash = memchr(p, '#', (size_t)(nl - p));
		ret = parse_line(st, p, hash ? hash : nl);
		if (ret < 0)
			return ret;
		p = nl < end ? nl + 1 : end;
	}
	if (st->line == 0)
		st->line = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Whole-profile checks                                                */
/* ------------------------------------------------------------------ */

/* Keys of the other device type, then missing required keys. */
static int check_keys(struct profile_parse *st)
{
	unsigned bit = TYPE_BIT(st->m->type), eof = st->line;
	const char *tname = type_names[st->m->type];
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (st->seen[i] && !(profile_keys[i].types & bit)) {
			st->line = st->seen[i];
			perr(st, "key '%s' does not apply to type %s",
			     profile_keys[i].name, tname);
			return -EINVAL;
		}
	}
	st->line = eof;
	for (i = 0; i < NKEYS; i++) {
		if (!st->seen[i] && (profile_keys[i].required & bit)) {
			perr(st, "missing required key '%s' for type %s",
			     profile_keys[i].name, tname);
			return -EINVAL;
		}
	}
	return 0;
}

/* The name a profile gets without a "name" key: its file's basename
 * without ".profile". */
static void default_name(struct iosched_model *m, const char *origin)
{
	const char *base = strrchr(origin, '/');
	size_t n, sfx = strlen(PROFILE_SUFFIX);

	base = base ? base + 1 : origin;
	n = strlen(base);
	if (n > sfx && !strcmp(base + n - sfx, PROFILE_SUFFIX))
		n -= sfx;
	if (n >= sizeof(m->name))
		n = sizeof(m->name) - 1;
	if (n == 0) {
		base = "unnamed";
		n = strlen(base);
	}
	memcpy(m->name, base, n);
	m->name[n] = '\0';
}

static int finish(struct profile_parse *st)
{
	struct iosched_model *m = st->m;
	double rev_ns;
	int ret;

	if (!st->seen[K_TYPE]) {
		perr(st, "missing required key '%s'", "type");
		return -EINVAL;
	}
	ret = check_keys(st);
	if (ret < 0)
		return ret;
	if (m->type == IOSCHED__MODEL_HDD &&
	    m->media_inner_Bps > m->media_outer_Bps) {
		st->line = st->seen[K_MEDIA_INNER];
		perr(st, "media_inner_MBps = %g exceeds media_outer_MBps = %g",
		     m->media_inner_Bps / 1e6, m->media_outer_Bps / 1e6);
		return -EINVAL;
	}
	if (!st->seen[K_DEPTH])
		m->depth = type_defaults[m->type].depth;
	if (m->type == IOSCHED__MODEL_HDD || !st->seen[K_PARALLELISM])
		m->parallelism = type_defaults[m->type].parallelism;
	if (!st->seen[K_NAME])
		default_name(m, st->origin);
	if (m->type == IOSCHED__MODEL_HDD) {
		rev_ns = 60.0 * IOSCHED__NS_PER_S / m->rpm + 0.5;
		m->revolution_ns = rev_ns < 18446744073709549568.0
					   ? (uint64_t)rev_ns
					   : UINT64_MAX;
	}
	return 0;
}

int iosched_model_parse(struct iosched_model **out, const char *text,
			size_t len, const char *origin,
			const struct iosched_log *log)
{
	unsigned seen[NKEYS] = { 0 };
	struct profile_parse st = {
		.origin = origin ? origin : "<profile>",
		.log = log,
		.seen = seen,
	};
	int ret;

	*out = NULL;
	if (!text && len) {
		iosched__log(log, IOSCHED_LOG_ERROR, "%s: no text", st.origin);
		ret = -EINVAL;
		goto err;
	}
	st.m = calloc(1, sizeof(*st.m));
	if (!st.m) {
		iosched__log(log, IOSCHED_LOG_ERROR, "%s: calloc: %s",
			     st.origin, strerror(ENOMEM));
		ret = -ENOMEM;
		goto err;
	}
	ret = parse_text(&st, text, len);
	if (ret == 0)
		ret = finish(&st);
	if (ret < 0)
		goto err;
	*out = st.m;
	return 0;
err:
	free(st.m);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* Reads at most PROFILE_MAX_BYTES + 1 so an oversized (or endless) file is
 * caught without trusting st_size.  0 or -errno; the caller frees *buf. */
static int read_all(int fd, const char *path, char **buf, size_t *len,
		    const struct iosched_log *log)
{
	size_t cap = PROFILE_MAX_BYTES + 1;
	ssize_t n;

	*len = 0;
	*buf = malloc(cap);
	if (!*buf)
		return -ENOMEM;
	while (*len < cap) {
		n = read(fd, *buf + *len, cap - *len);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			iosched__log(log, IOSCHED_LOG_ERROR, "read %s: %s",
				     path, strerror(err));
			return -err;
		}
		*len += (size_t)n;
	}
	if (*len > PROFILE_MAX_BYTES) {
		iosched__log(log, IOSCHED_LOG_ERROR,
			     "%s: larger than %u bytes; not a profile", path,
			     PROFILE_MAX_BYTES);
		return -EINVAL;
	}
	return 0;
}

static int load_path(struct iosched_model **out, const char *path,
		     const struct iosched_log *log)
{
	char *buf = NULL;
	size_t len;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			iosched__log(log, IOSCHED_LOG_ERROR, "open %s: %s",
				     path, strerror(errno));
		return ret;
	}
	ret = read_all(fd, path, &buf, &len, log);
	if (ret == 0)
		ret = iosched_model_parse(out, buf, len, path, log);
	free(buf);
	close(fd);
	return ret;
}

static int path_join(char *dst, size_t cap, const char *dir, const char *name,
		     const struct iosched_log *log)
{
	int n = snprintf(dst, cap, "%s/%s%s", dir, name, PROFILE_SUFFIX);

	if (n < 0 || (size_t)n >= cap) {
		iosched__log(log, IOSCHED_LOG_ERROR,
			     "profile %s: path in %s too long", name, dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* "hdd-7200, ssd-sata, nvme": the compiled-in names, for messages. */
static const char *builtin_names(void)
{
	static char buf[256];
	const struct iosched__builtin_profile *b;
	size_t n = 0;

	if (buf[0])
		return buf;
	for (b = iosched__builtin_profiles; b->name && n < sizeof(buf); b++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s",
				      n ? ", " : "", b->name);
	return buf;
}

/* The compiled-in profile @name, parsed; -ENOENT when there is none. */
static int load_builtin(struct iosched_model **out, const char *name,
			const struct iosched_log *log)
{
	const struct iosched__builtin_profile *b;
	char origin[96];

	for (b = iosched__builtin_profiles; b->name; b++) {
		if (strcmp(b->name, name) != 0)
			continue;
		/* reads as the file it was made from, and names the model
		 * after it like a file would */
		snprintf(origin, sizeof(origin), "<built-in>/%s%s", name,
			 PROFILE_SUFFIX);
		return iosched_model_parse(out, b->text, strlen(b->text),
					   origin, log);
	}
	return -ENOENT;
}

/* $IOSCHED_PROFILE_DIR first, so tests and users can shadow the shipped
 * profiles; then the installed directory; then the profiles compiled in,
 * so that a tool run from its build tree, or a library used where nothing
 * was installed, still knows hdd-7200, ssd-sata and nvme. */
static int load_named(struct iosched_model **out, const char *name,
		      const struct iosched_log *log)
{
	const char *dirs[2] = { getenv("IOSCHED_PROFILE_DIR"),
				IOSCHED_PROFILE_DIR_DEFAULT };
	char path[2][PATH_MAX];
	unsigned tried = 0, i;
	int ret = -ENOENT;

	for (i = 0; i < 2 && ret == -ENOENT; i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		ret = path_join(path[tried], sizeof(path[tried]), dirs[i],
				name, log);
		if (ret == 0)
			ret = load_path(out, path[tried++], log);
	}
	if (ret == -ENOENT)
		ret = load_builtin(out, name, log);
	if (ret == -ENOENT)
		iosched__log(log, IOSCHED_LOG_ERROR,
			     "profile '%s' not found (searched %s%s%s, and "
			     "the built-in %s)", name,
			     tried ? path[0] : "nothing",
			     tried > 1 ? ", " : "", tried > 1 ? path[1] : "",
			     builtin_names());
	return ret;
}

int iosched_model_load(struct iosched_model **out, const char *name_or_path,
		       const struct iosched_log *log)
{
	size_t n, sfx = strlen(PROFILE_SUFFIX);
	int ret;

	*out = NULL;
	if (!name_or_path || !*name_or_path) {
		iosched__log(log, IOSCHED_LOG_ERROR, "profile: empty name");
		return -EINVAL;
	}
	n = strlen(name_or_path);
	if (strchr(name_or_path, '/') ||
	    (n >= sfx && !strcmp(name_or_path + n - sfx, PROFILE_SUFFIX))) {
		ret = load_path(out, name_or_path, log);
		if (ret == -ENOENT)
			iosched__log(log, IOSCHED_LOG_ERROR,
				     "profile %s: no such file", name_or_path);
		return ret;
	}
	return load_named(out, name_or_path, log);
}
