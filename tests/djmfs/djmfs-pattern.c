/*
 * djmfs-pattern: a test tool that writes and verifies self-describing
 * byte streams in DJMFS files, so that shell tests (concurrency, snapshot
 * locks, crashes, a full volume) can tell a correct image from a torn one
 * without keeping a copy of what was written.  Every 8-byte word at
 * offset x of the file's "data" object holds, little-endian,
 * x ^ 0x9E3779B97F4A7C15 ^ fnv1a64(NAME), so any byte's expected value is
 * a function of its offset alone (the files hold one object, so object
 * and file offsets agree).  Subcommands:
 *
 *   write NAME --count N --size S [--period-ms P] [--trim-every K
 *       --keep B]   append, one line "acked VERSION SIZE" per
 *       acknowledged publish; every K appends, trim the object to its
 *       last B bytes, one line "trimmed START" per acknowledged trim
 *   check NAME [--min-size N]                 "ok VERSION SIZE START"
 *       (the bytes from the object's start on are checked)
 *   read NAME --seconds T [--lock-ms L]             loop over snapshots;
 *       "reads R versions V max_size S torn N"
 *   lockcheck NAME --seconds T                      a frozen image holds,
 *       then moves on: "frozen V S then V2 S2"
 *
 * Global options (anywhere): --server ADDR, --volume PATH, --no-reconnect
 * (a lost server fails calls at once instead of being waited for).  Exit status:
 * 0 success, 1 failure (an error prints "error ENAME" on stdout), 2 bad
 * usage, 3 the volume is full (ENOSPC).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs.h"

#define PROG "djmfs-pattern"
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOSPC 3

#define PAT_SEED UINT64_C(0x9E3779B97F4A7C15)
#define PAT_OBJ "data"
#define CHUNK (1u << 20)	/* bytes per read call */
#define HEAD_BYTES 65536u	/* large images: first bytes checked ... */
#define TAIL_BYTES (1u << 20)	/* ... and the newest ones */
#define OPEN_WAIT_NS UINT64_C(10000000000) /* a reader waits for the file */
#define PACE_NS 1000000		/* between a reader's snapshots */

struct opts {
	const char *server;
	const char *volume;
	const char *cmd;
	const char *name;
	uint64_t count;
	uint64_t size;
	uint64_t period_ms;
	uint64_t min_size;
	uint64_t lock_ms;
	uint64_t trim_every;
	uint64_t keep;
	double seconds;
	int no_reconnect; /* --no-reconnect: a lost server fails calls */
};

struct ctx {
	struct opts o;
	struct djmfs_client *c;
	uint64_t hash;
	uint8_t *buf; /* CHUNK bytes, or --size for write */
	uint8_t *want;
};

/* What a snapshot shows of the pattern object. */
struct image {
	uint64_t version;
	uint64_t size;
	uint32_t id; /* UINT32_MAX: no such object yet */
	uint64_t start; /* bytes below it were trimmed */
};

/* ------------------------------------------------------------------ */
/* The pattern                                                         */
/* ------------------------------------------------------------------ */

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001b3);
	return h;
}

/* Expected bytes [off, off + len). */
static void pat_fill(uint64_t hash, uint8_t *p, size_t len, uint64_t off)
{
	size_t i = 0;

	while (i < len) {
		uint64_t x = (off + i) & ~UINT64_C(7);
		uint64_t w = htole64(x ^ PAT_SEED ^ hash);
		size_t skip = (off + i) & 7;
		size_t n = 8 - skip;

		if (n > len - i)
			n = len - i;
		memcpy(p + i, (uint8_t *)&w + skip, n);
		i += n;
	}
}

/* Returns the offset of the first wrong byte, or UINT64_MAX. */
static uint64_t pat_verify(struct ctx *x, const uint8_t *p, size_t len,
			   uint64_t off)
{
	pat_fill(x->hash, x->want, len, off);
	if (memcmp(p, x->want, len) == 0)
		return UINT64_MAX;
	for (size_t i = 0; i < len; i++)
		if (p[i] != x->want[i])
			return off + i;
	return UINT64_MAX;
}

/* ------------------------------------------------------------------ */
/* Errors and helpers                                                  */
/* ------------------------------------------------------------------ */

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "EUNKNOWN";
}

/* Reports a failed call: "error ENAME" on stdout for scripts, the
 * details on stderr.  Returns the exit status. */
static int fail(const struct ctx *x, const char *call, int err)
{
	printf("error %s\n", errname(-err));
	fflush(stdout);
	fprintf(stderr, PROG ": %s %s: %s (%s)\n", call,
		x->o.name ? x->o.name : "", strerror(-err), errname(-err));
	return err == -ENOSPC ? EXIT_NOSPC : EXIT_FAIL;
}

static void sleep_until(uint64_t t_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t_ns / 1000000000u),
		.tv_nsec = (long)(t_ns % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void image_of(const struct djmfs_file_info *fi, struct image *im)
{
	im->version = fi->version;
	im->size = 0;
	im->id = UINT32_MAX;
	im->start = 0;
	for (uint32_t i = 0; i < fi->n_objs && i < DJMFS_MAX_OBJS; i++) {
		if (strcmp(fi->objs[i].name, PAT_OBJ) == 0) {
			im->size = fi->objs[i].size;
			im->id = fi->objs[i].id;
			im->start = fi->objs[i].start;
		}
	}
}

/* Reads and verifies [off, off + len) of the image.  Returns 0, 1 when a
 * byte is wrong or the image is short (*bad says where), or -errno. */
static int check_range(struct ctx *x, struct djmfs_file *f, uint32_t id,
		       uint64_t off, uint64_t len, uint64_t *bad)
{
	while (len > 0) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t r = djmfs_pread_obj(f, id, x->buf, n, off);

		if (r < 0)
			return (int)r;
		if ((size_t)r != n) {
			*bad = off + (uint64_t)r;
			return 1;
		}
		*bad = pat_verify(x, x->buf, n, off);
		if (*bad != UINT64_MAX)
			return 1;
		off += n;
		len -= n;
	}
	return 0;
}

/* Whole image (from its start) when small; else its first HEAD_BYTES and
 * last TAIL_BYTES. */
static int check_image(struct ctx *x, struct djmfs_file *f,
		       const struct image *im, int whole, uint64_t *bad)
{
	uint64_t len = im->size - im->start;
	int r;

	if (len == 0)
		return 0;
	if (whole || len <= HEAD_BYTES + TAIL_BYTES)
		return check_range(x, f, im->id, im->start, len, bad);
	r = check_range(x, f, im->id, im->start, HEAD_BYTES, bad);
	if (r != 0)
		return r;
	return check_range(x, f, im->id, im->size - TAIL_BYTES, TAIL_BYTES,
			   bad);
}

/* Opens @name for reading, waiting up to OPEN_WAIT_NS for it to exist. */
static int open_reader(struct ctx *x, struct djmfs_file **f)
{
	uint64_t give_up = djmfs_now() + OPEN_WAIT_NS;
	int r;

	while ((r = djmfs_open(x->c, x->o.name, DJMFS_O_READ, f)) == -ENOENT &&
	       djmfs_now() < give_up)
		sleep_until(djmfs_now() + 10 * 1000000u);
	return r;
}

/* ------------------------------------------------------------------ */
/* Subcommands                                                         */
/* ------------------------------------------------------------------ */

/* Creates or reopens the file and its SYNCHRONOUS "data" object, with
 * the object pointer at its end.  Returns the object id or -errno. */
static int64_t writer_open(struct ctx *x, struct djmfs_file **f,
			   uint64_t *size)
{
	struct djmfs_file_info fi;
	struct image im;
	uint32_t id;
	int r;

	r = djmfs_open(x->c, x->o.name, DJMFS_O_WRITE | DJMFS_O_CREATE, f);
	if (r < 0)
		return r;
	r = djmfs_find_obj(*f, PAT_OBJ, &id);
	if (r == -ENOENT)
		r = djmfs_create_obj(*f, PAT_OBJ,
				     DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC, &id);
	if (r < 0)
		return r;
	r = djmfs_file_info(*f, &fi);
	if (r < 0)
		return r;
	image_of(&fi, &im);
	*size = im.id == id ? im.size : 0;
	r = djmfs_set_objptr(*f, id, *size);
	return r < 0 ? r : (int64_t)id;
}

static int cmd_write(struct ctx *x)
{
	struct djmfs_file *f = NULL;
	struct djmfs_file_info fi;
	struct image im;
	uint64_t off = 0, next = djmfs_now();
	const char *call = "open";
	int64_t id;
	int r = 0;

	if (x->o.size == 0 || x->o.size > SIZE_MAX / 2) {
		fprintf(stderr, PROG ": write needs --size > 0\n");
		return EXIT_USAGE;
	}
	x->buf = malloc(x->o.size);
	if (!x->buf) {
		r = -ENOMEM;
		goto out;
	}
	id = writer_open(x, &f, &off);
	if (id < 0) {
		r = (int)id;
		goto out;
	}
	call = "write";
	for (uint64_t k = 0; k < x->o.count; k++) {
		ssize_t n;

		pat_fill(x->hash, x->buf, x->o.size, off);
		n = djmfs_write(f, x->buf, x->o.size);
		if (n < 0 || (uint64_t)n != x->o.size) {
			r = n < 0 ? (int)n : -EIO;
			goto out;
		}
		off += x->o.size;
		r = djmfs_file_info(f, &fi);
		if (r < 0)
			goto out;
		image_of(&fi, &im);
		printf("acked %" PRIu64 " %" PRIu64 "\n", im.version, off);
		fflush(stdout);
		if (x->o.trim_every && (k + 1) % x->o.trim_every == 0 &&
		    off > x->o.keep) {
			uint64_t start = 0;

			call = "trim";
			r = djmfs_trim(f, (uint32_t)id, off - x->o.keep, &start);
			if (r < 0)
				goto out;
			printf("trimmed %" PRIu64 "\n", start);
			fflush(stdout);
			call = "write";
		}
		if (x->o.period_ms) {
			next += x->o.period_ms * 1000000u;
			sleep_until(next);
		}
	}
	call = "close";
	r = djmfs_close(f);
	f = NULL;
out:
	if (f)
		djmfs_close(f);
	return r < 0 ? fail(x, call, r) : 0;
}

static int cmd_check(struct ctx *x)
{
	struct djmfs_file *f = NULL;
	struct djmfs_file_info fi;
	struct image im;
	uint64_t bad = 0;
	const char *call = "open";
	int r, rc = 0;

	r = djmfs_open(x->c, x->o.name, DJMFS_O_READ, &f);
	if (r < 0)
		goto out;
	call = "sync_snap";
	r = djmfs_sync_snap(f, &fi);
	if (r < 0)
		goto out;
	image_of(&fi, &im);
	if (im.size < x->o.min_size) {
		printf("SHORT %" PRIu64 " < %" PRIu64 "\n", im.size,
		       x->o.min_size);
		rc = EXIT_FAIL;
		goto out;
	}
	call = "read";
	r = check_image(x, f, &im, 1, &bad);
	if (r == 1) {
		printf("BAD at %" PRIu64 "\n", bad);
		rc = EXIT_FAIL;
	} else if (r == 0) {
		printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", im.version,
		       im.size, im.start);
	}
out:
	djmfs_close(f);
	return r < 0 ? fail(x, call, r) : rc;
}

/* One reader pass: a snapshot (locked for @lock_ms when non-zero), the
 * ordering checks against the previous one, the bytes.  Returns 0, 1 for
 * a torn or out-of-order image, or -errno. */
static int read_once(struct ctx *x, struct djmfs_file *f, struct image *last)
{
	struct djmfs_file_info fi;
	struct image im, again;
	uint64_t bad = 0;
	int r, torn = 0;

	r = x->o.lock_ms ? djmfs_lock_snap(f, (uint32_t)x->o.lock_ms, &fi)
			 : djmfs_sync_snap(f, &fi);
	if (r < 0)
		return r;
	image_of(&fi, &im);
	if (im.version < last->version || im.size < last->size ||
	    (im.version == last->version && im.size != last->size)) {
		fprintf(stderr, PROG ": went back: version %" PRIu64
			" size %" PRIu64 " after %" PRIu64 " %" PRIu64 "\n",
			im.version, im.size, last->version, last->size);
		torn = 1;
	}
	r = check_image(x, f, &im, 0, &bad);
	if (r == 1) {
		fprintf(stderr, PROG ": BAD at %" PRIu64 " in version %" PRIu64
			" size %" PRIu64 "\n", bad, im.version, im.size);
		torn = 1;
	}
	if (r >= 0 && x->o.lock_ms) {
		r = djmfs_sync_snap(f, &fi);
		image_of(&fi, &again);
		if (r == 0 && (again.version != im.version ||
			       again.size != im.size)) {
			fprintf(stderr, PROG ": locked image moved\n");
			torn = 1;
		}
		if (r == 0)
			r = djmfs_unlock_snap(f);
	}
	*last = im;
	return r < 0 ? r : torn;
}

static int cmd_read(struct ctx *x)
{
	struct djmfs_file *f = NULL;
	struct image last = { 0, 0, UINT32_MAX, 0 };
	uint64_t end, reads = 0, versions = 0, torn = 0, seen = UINT64_MAX;
	const char *call = "open";
	int r;

	r = open_reader(x, &f);
	if (r < 0)
		goto out;
	call = "read";
	end = djmfs_now() + (uint64_t)(x->o.seconds * 1e9);
	while (djmfs_now() < end) {
		r = read_once(x, f, &last);
		if (r < 0)
			goto out;
		torn += (uint64_t)r;
		reads++;
		if (last.version != seen)
			versions++;
		seen = last.version;
		sleep_until(djmfs_now() + PACE_NS);
	}
	r = 0;
	printf("reads %" PRIu64 " versions %" PRIu64 " max_size %" PRIu64
	       " torn %" PRIu64 "\n", reads, versions, last.size, torn);
out:
	djmfs_close(f);
	if (r < 0)
		return fail(x, call, r);
	return torn ? EXIT_FAIL : 0;
}

/* While frozen: every SYNC_SNAP shows the locked image and its bytes
 * verify; counts how far the latest published version got meanwhile. */
static int lock_hold(struct ctx *x, struct djmfs_file *f,
		     const struct image *frozen, uint64_t *latest)
{
	struct djmfs_file_info fi, st;
	struct image im;
	uint64_t bad = 0, end = djmfs_now() + (uint64_t)(x->o.seconds * 1e9);
	int r;

	while (djmfs_now() < end) {
		r = djmfs_sync_snap(f, &fi);
		if (r < 0)
			return r;
		image_of(&fi, &im);
		if (im.version != frozen->version || im.size != frozen->size) {
			fprintf(stderr, PROG ": frozen image moved to %" PRIu64
				" %" PRIu64 "\n", im.version, im.size);
			return 1;
		}
		r = check_image(x, f, &im, 0, &bad);
		if (r != 0) {
			if (r == 1)
				fprintf(stderr, PROG ": BAD at %" PRIu64 "\n",
					bad);
			return r;
		}
		r = djmfs_stat(x->c, x->o.name, &st);
		if (r < 0)
			return r;
		if (st.version > *latest)
			*latest = st.version;
		sleep_until(djmfs_now() + 10 * PACE_NS);
	}
	return 0;
}

static int cmd_lockcheck(struct ctx *x)
{
	struct djmfs_file *f = NULL;
	struct djmfs_file_info fi;
	struct image frozen, now;
	uint64_t latest = 0, bad = 0;
	uint32_t hold_ms = (uint32_t)(x->o.seconds * 1000) + 10000;
	const char *call = "open";
	int r, rc = EXIT_FAIL;

	r = open_reader(x, &f);
	if (r < 0)
		goto out;
	call = "lock_snap";
	r = djmfs_lock_snap(f, hold_ms, &fi);
	if (r < 0)
		goto out;
	image_of(&fi, &frozen);
	call = "read";
	r = lock_hold(x, f, &frozen, &latest);
	if (r != 0)
		goto out;
	call = "unlock_snap";
	r = djmfs_unlock_snap(f);
	if (r < 0)
		goto out;
	call = "sync_snap";
	r = djmfs_sync_snap(f, &fi);
	if (r < 0)
		goto out;
	image_of(&fi, &now);
	fprintf(stderr, PROG ": latest published while frozen: %" PRIu64 "\n",
		latest);
	printf("frozen %" PRIu64 " %" PRIu64 " then %" PRIu64 " %" PRIu64 "\n",
	       frozen.version, frozen.size, now.version, now.size);
	call = "read";
	r = check_image(x, f, &now, 0, &bad);
	if (r == 1)
		fprintf(stderr, PROG ": BAD at %" PRIu64 " after unlock\n", bad);
	else if (r == 0 && (now.version <= frozen.version ||
			    now.size <= frozen.size))
		fprintf(stderr, PROG ": did not move forward after unlock\n");
	else if (r == 0)
		rc = 0;
out:
	djmfs_close(f);
	return r < 0 ? fail(x, call, r) : rc;
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */
/* ------------------------------------------------------------------ */

enum opt_kind { OPT_STR, OPT_U64, OPT_SIZE, OPT_DBL };

static const struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;
} opt_table[] = {
	{ "--server", OPT_STR, offsetof(struct opts, server) },
	{ "--volume", OPT_STR, offsetof(struct opts, volume) },
	{ "--count", OPT_U64, offsetof(struct opts, count) },
	{ "--size", OPT_SIZE, offsetof(struct opts, size) },
	{ "--period-ms", OPT_U64, offsetof(struct opts, period_ms) },
	{ "--min-size", OPT_SIZE, offsetof(struct opts, min_size) },
	{ "--lock-ms", OPT_U64, offsetof(struct opts, lock_ms) },
	{ "--seconds", OPT_DBL, offsetof(struct opts, seconds) },
	{ "--trim-every", OPT_U64, offsetof(struct opts, trim_every) },
	{ "--keep", OPT_SIZE, offsetof(struct opts, keep) },
};

static const struct cmd_def {
	const char *name;
	int (*run)(struct ctx *x);
	int needs_seconds;
} cmd_table[] = {
	{ "write", cmd_write, 0 },
	{ "check", cmd_check, 0 },
	{ "read", cmd_read, 1 },
	{ "lockcheck", cmd_lockcheck, 1 },
};

static void usage(FILE *to)
{
	fprintf(to,
		"usage: " PROG " [--server ADDR] [--volume PATH] [--no-reconnect] COMMAND NAME ...\n"
		"  write NAME --count N --size S [--period-ms P] "
		"[--trim-every K --keep B]\n"
		"  check NAME [--min-size N]\n"
		"  read NAME --seconds T [--lock-ms L]\n"
		"  lockcheck NAME --seconds T\n"
		"Sizes take K, M or G (powers of 1024).  Exit: 0 ok, 1 failure,\n"
		"2 usage, 3 volume full.\n");
}

/* A number with an optional K/M/G suffix (only for sizes). */
static int parse_num(const char *s, enum opt_kind kind, void *dst)
{
	char *end;

	errno = 0;
	if (kind == OPT_DBL) {
		double d = strtod(s, &end);

		if (errno || end == s || *end || d < 0)
			return -EINVAL;
		*(double *)dst = d;
		return 0;
	}
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;

	if (errno || end == s || *s == '-')
		return -EINVAL;
	if (kind == OPT_SIZE && *end) {
		const char *sfx = strchr("KMG", *end);

		if (!sfx || end[1])
			return -EINVAL;
		shift = 10u * (unsigned)(sfx - "KMG" + 1);
		end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*(uint64_t *)dst = (uint64_t)v << shift;
	return 0;
}

static int parse_opt(struct opts *o, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *val = strchr(arg, '=');
	size_t len = val ? (size_t)(val - arg) : strlen(arg);

	for (size_t k = 0; k < sizeof(opt_table) / sizeof(opt_table[0]); k++) {
		const struct opt_def *d = &opt_table[k];

		if (strlen(d->name) != len || strncmp(arg, d->name, len) != 0)
			continue;
		if (val)
			val++;
		else if (*i + 1 < argc)
			val = argv[++*i];
		else
			break;
		if (d->kind == OPT_STR) {
			*(const char **)((char *)o + d->off) = val;
			return 0;
		}
		if (parse_num(val, d->kind, (char *)o + d->off) == 0)
			return 0;
		fprintf(stderr, PROG ": bad value for %s: %s\n", d->name, val);
		return -EINVAL;
	}
	fprintf(stderr, PROG ": unknown or incomplete option %s\n", arg);
	return -EINVAL;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(argv[i], "--no-reconnect") == 0) {
			o->no_reconnect = 1;
		} else if (strncmp(argv[i], "--", 2) == 0) {
			if (parse_opt(o, argc, argv, &i) < 0)
				return -EINVAL;
		} else if (!o->cmd) {
			o->cmd = argv[i];
		} else if (!o->name) {
			o->name = argv[i];
		} else {
			fprintf(stderr, PROG ": unexpected argument %s\n",
				argv[i]);
			return -EINVAL;
		}
	}
	if (!o->cmd || !o->name) {
		fprintf(stderr, PROG ": a command and a file name are needed\n");
		return -EINVAL;
	}
	return 0;
}

static void log_to_stderr(void *arg, enum djmfs_log_level level,
			  const char *msg)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	(void)arg;
	if (level <= DJMFS_LOG_WARN)
		fprintf(stderr, PROG ": %s: %s\n", names[level & 3], msg);
}

int main(int argc, char **argv)
{
	struct ctx x = { 0 };
	struct djmfs_client_opts co = { 0 };
	const struct cmd_def *cmd = NULL;
	int r, rc;

	if (parse_args(&x.o, argc, argv) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof(cmd_table) / sizeof(cmd_table[0]); k++)
		if (strcmp(cmd_table[k].name, x.o.cmd) == 0)
			cmd = &cmd_table[k];
	if (!cmd || (cmd->needs_seconds && x.o.seconds <= 0)) {
		fprintf(stderr, PROG ": %s %s\n", cmd ? "needs --seconds" :
			"unknown command", x.o.cmd);
		return EXIT_USAGE;
	}
	x.hash = fnv1a64(x.o.name);
	x.want = malloc(x.o.size > CHUNK ? x.o.size : CHUNK);
	if (cmd->run != cmd_write)
		x.buf = malloc(CHUNK);
	if (!x.want || (cmd->run != cmd_write && !x.buf)) {
		rc = fail(&x, "malloc", -ENOMEM);
		goto out;
	}
	co.server = x.o.server;
	co.volume = x.o.volume;
	co.name = PROG;
	co.log.fn = log_to_stderr;
	if (x.o.no_reconnect)
		co.reconnect_ms = DJMFS_CLIENT_NO_RECONNECT;
	r = djmfs_connect(&x.c, &co);
	if (r < 0) {
		rc = fail(&x, "connect", r);
		goto out;
	}
	rc = cmd->run(&x);
out:
	djmfs_disconnect(x.c);
	free(x.buf);
	free(x.want);
	return rc;
}
