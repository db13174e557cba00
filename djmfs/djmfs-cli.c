/*
 * djmfs: the command-line tool of DJMFS.  It formats, checks and upgrades
 * volumes offline (mkfs, fsck, upgrade, through the server library) and,
 * as a client of a running djmfsd, lists, inspects, imports, exports,
 * trims and removes files, shows free space and the server's counters,
 * and shows or freezes a file's snapshot.  It also makes shared-secret files (secret)
 * and proves the volume's secret to the server (--secret-file).  With its
 * fsck report printer (djmfs-cli-report.c), this is the only DJMFS program
 * code that parses arguments, prints and exits;
 * everything it does goes through the public APIs of djmfs.h and
 * djmfs_server.h.  One table describes the subcommands and one the
 * options they take, so getopt, --help and the checks all come from the
 * same place.  See djmfs(1).
 *
 * Exit status: 0 success, 1 a runtime error (fsck: problems found), 2 bad
 * usage (fsck: could not check).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"
#include "djmfs-cli.h"
#include "tool_io.h"
#include "tool_json.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "djmfs"
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define PIECE (1u << 20) /* bytes per read or write of cat and put */
#define SNAP_LOCK_MARGIN_MS 1000u

struct global {
	const char *server;
	const char *volume;
	const char *secret_file; /* NULL: $DJMFS_SECRET_FILE, else none */
	int quiet;
	int verbose;
};

/* Everything a subcommand may be given; each takes a subset. */
struct cmd_args {
	uint64_t size;	  /* 0: not given */
	uint64_t au_size; /* 0: the library's default */
	const char *object;
	double lock_secs; /* snap --lock; 0: not given */
	int force, prealloc, long_fmt, extents, lock, sync, human, repair, help;
	int no_change;
	int format;	  /* mkfs --format; 0: the current one */
	char **pos;
	int npos;
};

struct ctx {
	const struct global *g;
	const struct cmd *cmd;
	struct cmd_args a;
	struct djmfs_log log;
	struct djmfs_client *c; /* NULL for the offline commands */
	void *secret;		/* the client borrows it until disconnect */
	size_t secret_len;
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "?";
}

/* "djmfs: stat foo: No such file or directory (ENOENT)"; @err < 0. */
static int fail(const char *cmd, const char *what, int err)
{
	fprintf(stderr, "%s: %s%s%s: %s (%s)\n", PROG, cmd, what ? " " : "",
		what ? what : "", strerror(-err), errno_name(-err));
	return EXIT_RUNTIME;
}

static int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s: %s%s%s\nTry '%s %s%s--help'.\n", PROG,
		cmd ? cmd : "", cmd ? ": " : "", msg, PROG, cmd ? cmd : "",
		cmd ? " " : "");
	return EXIT_USAGE;
}

static const char *const level_names[] = {
	[DJMFS_LOG_ERROR] = "error", [DJMFS_LOG_WARN] = "warning",
	[DJMFS_LOG_INFO] = "info",   [DJMFS_LOG_DEBUG] = "debug",
};

/* Library diagnostics: errors always, warnings unless -q, more with -v. */
static void log_line(void *arg, enum djmfs_log_level level, const char *msg)
{
	const struct global *g = arg;
	int show = level == DJMFS_LOG_ERROR ||
		   (level == DJMFS_LOG_WARN && !g->quiet) ||
		   (level == DJMFS_LOG_INFO && g->verbose >= 1) ||
		   (level == DJMFS_LOG_DEBUG && g->verbose >= 2);

	if (show)
		fprintf(stderr, "%s: %s: %s\n", PROG,
			(unsigned)level < 4 ? level_names[level] : "log", msg);
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */
/* ------------------------------------------------------------------ */

static const struct {
	uint32_t bit;
	const char *name;
	char letter;
} file_flags[] = {
	{ DJMFS_FILE_WRITE_LOCKED, "write-locked", 'w' },
	{ DJMFS_FILE_QUARANTINED, "quarantined", 'Q' },
};

#define N_FILE_FLAGS (sizeof(file_flags) / sizeof(file_flags[0]))

/* "w-": one column per flag, for ls.  (SNAP_LOCKED describes a handle,
 * never a listing.) */
static const char *flags_short(uint32_t flags, char buf[N_FILE_FLAGS + 1])
{
	size_t i;

	for (i = 0; i < N_FILE_FLAGS; i++)
		buf[i] = flags & file_flags[i].bit ? file_flags[i].letter : '-';
	buf[i] = 0;
	return buf;
}

/* "write-locked,quarantined", or "none". */
static const char *flags_long(uint32_t flags, char *buf, size_t n)
{
	size_t i, len = 0;

	buf[0] = 0;
	for (i = 0; i < N_FILE_FLAGS; i++)
		if (flags & file_flags[i].bit)
			len += (size_t)snprintf(buf + len, n - len, "%s%s",
						len ? "," : "",
						file_flags[i].name);
	return len ? buf : "none";
}

static const char *attrs_str(uint32_t attrs)
{
	if (attrs & DJMFS_ATTR_META)
		return "META";
	if (attrs & DJMFS_ATTR_SYNC)
		return "DATA+SYNC";
	return "DATA";
}



/* ------------------------------------------------------------------ */
/* Option values                                                       */
/* ------------------------------------------------------------------ */

/* "64M", "1G", "65536": K/M/G/T are powers of 1024; "KiB"/"KB" too. */
static int parse_bytes(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGT";
	unsigned long long v;
	const char *p;
	char *end;
	unsigned shift = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end && (p = strchr(suffixes, end[0] & ~0x20))) {
		shift = 10 * (unsigned)(p - suffixes + 1);
		end++;
		if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
			end += strlen(end);
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

struct opt;
typedef int (*opt_set_fn)(struct cmd_args *a, const struct opt *o,
			  const char *val);

struct opt {
	const char *name;
	char short_name; /* 0: long only */
	const char *arg; /* NULL: a flag */
	opt_set_fn set;
	size_t off; /* into struct cmd_args */
	const char *help;
};

static void *field(struct cmd_args *a, const struct opt *o)
{
	return (char *)a + o->off;
}

static int bad_value(const struct opt *o, const char *val, const char *why)
{
	fprintf(stderr, "%s: --%s %s: %s\n", PROG, o->name, val, why);
	return -EINVAL;
}

static int set_flag(struct cmd_args *a, const struct opt *o, const char *val)
{
	(void)val;
	*(int *)field(a, o) = 1;
	return 0;
}

static int set_unflag(struct cmd_args *a, const struct opt *o,
		      const char *val)
{
	(void)val;
	*(int *)field(a, o) = 0;
	return 0;
}

static int set_bytes(struct cmd_args *a, const struct opt *o, const char *val)
{
	uint64_t v;

	if (parse_bytes(val, &v) < 0 || v == 0)
		return bad_value(o, val, "not a positive size (suffixes: "
					 "K, M, G, T)");
	*(uint64_t *)field(a, o) = v;
	return 0;
}

static int set_str(struct cmd_args *a, const struct opt *o, const char *val)
{
	if (!*val)
		return bad_value(o, "''", "empty");
	*(const char **)field(a, o) = val;
	return 0;
}

static int set_secs(struct cmd_args *a, const struct opt *o, const char *val)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end || !isfinite(v) || v <= 0 ||
	    v > 4000000)
		return bad_value(o, val, "not a positive number of seconds");
	*(double *)field(a, o) = v;
	return 0;
}

static int set_format(struct cmd_args *a, const struct opt *o,
		      const char *val)
{
	if (strcmp(val, "1") != 0 && strcmp(val, "2") != 0)
		return bad_value(o, val, "not a volume format (1 or 2)");
	*(int *)field(a, o) = val[0] - '0';
	return 0;
}

enum opt_id {
	OPT_SIZE, OPT_AU_SIZE, OPT_FORCE, OPT_PREALLOC, OPT_FORMAT, OPT_LONG,
	OPT_EXTENTS,
	OPT_OBJECT,
	OPT_LOCK, OPT_LOCK_FOR, OPT_SYNC, OPT_NO_SYNC, OPT_HUMAN, OPT_REPAIR,
	OPT_NO_CHANGE, OPT_REPLACE, OPT_HELP, OPT_COUNT
};

#define A(f) offsetof(struct cmd_args, f)

/* Indexed by enum opt_id.  Two commands may give one name two meanings
 * (cat --lock, snap --lock SECONDS) as long as no command takes both. */
static const struct opt opts[OPT_COUNT] = {
	[OPT_FORMAT] = { "format", 0, "N", set_format, A(format),
		"volume format (default 2; 1, the previous one, for tests)" },
	[OPT_SIZE] = { "size", 's', "SIZE", set_bytes, A(size),
		"volume size (K, M, G, T: powers of 1024)" },
	[OPT_AU_SIZE] = { "au-size", 0, "SIZE", set_bytes, A(au_size),
		"allocation unit, 64K to 64M (default 1M)" },
	[OPT_FORCE] = { "force", 'f', NULL, set_flag, A(force),
		"overwrite an existing DJMFS volume" },
	[OPT_PREALLOC] = { "preallocate", 0, NULL, set_flag, A(prealloc),
		"allocate the whole file now (not sparse)" },
	[OPT_LONG] = { "long", 'l', NULL, set_flag, A(long_fmt),
		"also the inode number and modification time" },
	[OPT_EXTENTS] = { "extents", 'e', NULL, set_flag, A(extents),
		"list every object's extents" },
	[OPT_OBJECT] = { "object", 'o', "OBJ", set_str, A(object),
		"one object (put: its name, default 'data')" },
	[OPT_LOCK] = { "lock", 'L', NULL, set_flag, A(lock),
		"freeze the snapshot (LOCK_SNAP) while reading" },
	[OPT_LOCK_FOR] = { "lock", 'L', "SECONDS", set_secs, A(lock_secs),
		"freeze the snapshot for SECONDS or until ^C" },
	[OPT_SYNC] = { "sync", 0, NULL, set_flag, A(sync),
		"SYNCHRONOUS: each 1 MiB publishes (default)" },
	[OPT_NO_SYNC] = { "no-sync", 0, NULL, set_unflag, A(sync),
		"plain DATA object: one publish at the end" },
	[OPT_HUMAN] = { "human-readable", 'h', NULL, set_flag, A(human),
		"sizes as 1K, 2.5M, 3G" },
	[OPT_REPAIR] = { "repair", 'r', NULL, set_flag, A(repair),
		"quarantine bad files, salvage past damage, free orphans" },
	[OPT_NO_CHANGE] = { "no-change", 'n', NULL, set_flag, A(no_change),
		"write nothing, not even a copy mended from the other" },
	[OPT_REPLACE] = { "force", 'f', NULL, set_flag, A(force),
		"replace an existing secret file" },
	[OPT_HELP] = { "help", 0, NULL, set_flag, A(help), "this text" },
};

/* ------------------------------------------------------------------ */
/* Subcommands                                                         */
/* ------------------------------------------------------------------ */

enum conn { CONN_NONE, CONN_META, CONN_DATA };

struct cmd {
	const char *name;
	const char *args; /* synopsis of the operands */
	const char *summary;
	unsigned opts;	  /* 1u << enum opt_id */
	int min_pos, max_pos; /* max_pos -1: no limit */
	enum conn conn;	  /* CONN_META: no data I/O needed */
	int (*run)(struct ctx *x);
};

#define TAKES(id) (1u << (id))

static int cmd_mkfs(struct ctx *x)
{
	const char *path = x->a.pos[0];
	char sz[32], au[32];
	struct stat st;
	int r;

	if (!x->a.size && (stat(path, &st) < 0 || !S_ISBLK(st.st_mode)))
		return usage_error("mkfs", "--size is needed unless PATH is "
					   "a block device");
	if (x->a.au_size > UINT32_MAX)
		return usage_error("mkfs", "--au-size is at most 64M");
	r = djmfs_mkfs(path, x->a.size, (uint32_t)x->a.au_size,
		       (x->a.force ? DJMFS_MKFS_FORCE : 0) |
			       (x->a.prealloc ? DJMFS_MKFS_PREALLOCATE : 0) |
			       (x->a.format == 1 ? DJMFS_MKFS_FORMAT1 : 0),
		       &x->log);
	if (r < 0) /* the library has logged why (EEXIST: use --force) */
		return fail("mkfs", path, r);
	if (!x->g->quiet)
		printf("formatted %s: size %s, allocation unit %s\n", path,
		       x->a.size ? djmfs__cli_size_str(x->a.size, 1, sz, sizeof(sz)) :
				   "of the device",
		       djmfs__cli_size_str(x->a.au_size ? x->a.au_size : 1u << 20, 1,
				au, sizeof(au)));
	return 0;
}

static int ls_one(void *arg, const struct djmfs_file_info *fi)
{
	const struct ctx *x = arg;
	char fl[N_FILE_FLAGS + 1], t[64], sz[32];

	djmfs__cli_size_str(fi->size, x->a.human, sz, sizeof(sz));
	if (x->a.long_fmt)
		printf("%8llu %14s %10llu %s %s %s\n",
		       (unsigned long long)fi->ino, sz,
		       (unsigned long long)fi->version,
		       flags_short(fi->flags, fl),
		       djmfs__cli_time_str(fi->mtime_ns, 0, t, sizeof(t)), fi->name);
	else
		printf("%14s %10llu %s %s\n", sz,
		       (unsigned long long)fi->version,
		       flags_short(fi->flags, fl), fi->name);
	return ferror(stdout) ? -EIO : 0;
}

static int cmd_ls(struct ctx *x)
{
	const char *prefix = x->a.npos ? x->a.pos[0] : NULL;
	int r = djmfs_list(x->c, prefix, ls_one, x);

	return r < 0 ? fail("ls", prefix, r) : 0;
}

/* Prints every extent of object @id of the image @f holds. */
static int print_extents(struct djmfs_file *f, uint32_t id)
{
	struct djmfs_extent *ext = NULL;
	int n, r, i;

	n = djmfs_obj_extents(f, id, NULL, 0);
	if (n <= 0)
		return n;
	ext = calloc((size_t)n, sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	r = djmfs_obj_extents(f, id, ext, (size_t)n);
	for (i = 0; r > 0 && i < n && i < r; i++)
		printf("  extent %d: offset %llu length %llu\n", i,
		       (unsigned long long)ext[i].offset,
		       (unsigned long long)ext[i].len);
	free(ext);
	return r < 0 ? r : 0;
}

/* The objects of @fi; with @f, each one's extents as well. */
static int print_objects(const struct djmfs_file_info *fi,
			 struct djmfs_file *f)
{
	uint32_t i;
	int r;

	printf("objects: %u\n", fi->n_objs);
	for (i = 0; i < fi->n_objs && i < DJMFS_MAX_OBJS; i++) {
		const struct djmfs_obj_info *o = &fi->objs[i];

		printf("object %u: %s %s size %llu extents %u start %llu\n",
		       o->id, o->name, attrs_str(o->attrs),
		       (unsigned long long)o->size, o->n_extents,
		       (unsigned long long)o->start);
		if (f && (o->attrs & DJMFS_ATTR_DATA) &&
		    (r = print_extents(f, o->id)) < 0)
			return r;
	}
	return 0;
}

static void print_file(const struct djmfs_file_info *fi)
{
	char fl[128], t1[64], t2[64];

	printf("name: %s\nino: %llu\nversion: %llu\nsize: %llu\n"
	       "flags: %s\nctime: %s\nmtime: %s\n",
	       fi->name, (unsigned long long)fi->ino,
	       (unsigned long long)fi->version,
	       (unsigned long long)fi->size,
	       flags_long(fi->flags, fl, sizeof(fl)),
	       djmfs__cli_time_str(fi->ctime_ns, 1, t1, sizeof(t1)),
	       djmfs__cli_time_str(fi->mtime_ns, 1, t2, sizeof(t2)));
}

static int cmd_stat(struct ctx *x)
{
	const char *name = x->a.pos[0];
	struct djmfs_file_info fi;
	struct djmfs_file *f = NULL;
	int r;

	/* Extents live in an open handle's image; plain stat works on a
	 * quarantined file too, which cannot be opened. */
	if (x->a.extents) {
		r = djmfs_open(x->c, name, DJMFS_O_READ, &f);
		if (r == 0)
			r = djmfs_file_info(f, &fi);
	} else {
		r = djmfs_stat(x->c, name, &fi);
	}
	if (r == 0) {
		print_file(&fi);
		r = print_objects(&fi, f);
	}
	djmfs_close(f);
	return r < 0 ? fail("stat", name, r) : 0;
}

/* Copies @total bytes of the image (one object, or the whole file when
 * @obj is NULL) to stdout.  Returns 0, or -errno with *where set. */
static int copy_out(struct djmfs_file *f, const uint32_t *obj,
		    uint64_t total, const char **where)
{
	char *buf = aligned_alloc(4096, PIECE);
	uint64_t off = 0;
	ssize_t n;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (off < total && r == 0) {
		size_t want = total - off < PIECE ? total - off : PIECE;

		n = obj ? djmfs_pread_obj(f, *obj, buf, want, off) :
			  djmfs_pread(f, buf, want, off);
		if (n <= 0) {
			/* A snapshot cannot end before its own size. */
			r = n < 0 ? (int)n : -EIO;
			continue;
		}
		r = tool_write_all(STDOUT_FILENO, buf, (size_t)n);
		if (r < 0)
			*where = "standard output";
		off += (uint64_t)n;
	}
	free(buf);
	return r;
}

/* Size of object @name in @fi, and its id; -ENOENT if it has none. */
static int find_obj(const struct djmfs_file_info *fi, const char *name,
		    uint32_t *id, uint64_t *size)
{
	uint32_t i;

	for (i = 0; i < fi->n_objs && i < DJMFS_MAX_OBJS; i++) {
		if (strcmp(fi->objs[i].name, name) == 0) {
			*id = fi->objs[i].id;
			*size = fi->objs[i].size;
			return 0;
		}
	}
	return -ENOENT;
}

static int cmd_cat(struct ctx *x)
{
	const char *name = x->a.pos[0], *where = name;
	struct djmfs_file_info fi;
	struct djmfs_file *f = NULL;
	uint64_t total;
	uint32_t id;
	int r;

	r = djmfs_open(x->c, name, DJMFS_O_READ, &f);
	if (r < 0)
		goto out;
	/* One snapshot for the whole output: the handle stays on it. */
	r = x->a.lock ? djmfs_lock_snap(f, 0, &fi) : djmfs_sync_snap(f, &fi);
	if (r < 0)
		goto out;
	total = fi.size;
	if (x->a.object) {
		r = find_obj(&fi, x->a.object, &id, &total);
		if (r < 0) {
			where = x->a.object;
			goto out;
		}
	}
	r = copy_out(f, x->a.object ? &id : NULL, total, &where);
	if (x->a.lock) {
		int u = djmfs_unlock_snap(f);

		r = r < 0 ? r : u;
	}
out:
	djmfs_close(f);
	return r < 0 ? fail("cat", where, r) : 0;
}

/* Fills @buf from @fd up to @n bytes; short only at end of file. */
static ssize_t read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Writes everything from @fd to object @id of @f in PIECE pieces. */
static int copy_in(struct djmfs_file *f, int fd, uint64_t *done,
		   const char **where, const char *local)
{
	char *buf = aligned_alloc(4096, PIECE);
	ssize_t n, w;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = read_full(fd, buf, PIECE);
		if (n <= 0) {
			if (n < 0)
				*where = local;
			r = (int)n;
			break;
		}
		w = djmfs_write(f, buf, (size_t)n);
		if (w < 0) {
			r = (int)w;
			break;
		}
		*done += (uint64_t)n;
	}
	free(buf);
	return r;
}

static int cmd_put(struct ctx *x)
{
	const char *local = x->a.pos[0], *name = x->a.pos[1];
	const char *obj = x->a.object ? x->a.object : "data", *where = name;
	unsigned attrs = DJMFS_ATTR_DATA | (x->a.sync ? DJMFS_ATTR_SYNC : 0);
	struct djmfs_file *f = NULL;
	int fd = STDIN_FILENO, r, c, created;
	uint64_t done = 0;
	uint32_t id;

	if (strcmp(local, "-") != 0 &&
	    (fd = open(local, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		where = local;
		goto out;
	}
	r = djmfs_open(x->c, name, DJMFS_O_WRITE | DJMFS_O_CREATE |
				   DJMFS_O_EXCL, &f);
	if (r == 0 && (r = djmfs_create_obj(f, obj, attrs, &id)) < 0)
		where = obj;
	if (r == 0)
		r = djmfs_set_objptr(f, id, 0);
	if (r == 0)
		r = copy_in(f, fd, &done, &where, local);
out:
	created = f != NULL;
	c = djmfs_close(f);
	r = r < 0 ? r : c;
	if (fd > STDIN_FILENO)
		close(fd);
	if (r < 0) {
		fail("put", where, r);
		/* An empty file from a put that never wrote is only in the
		 * way of the next try; a partial one keeps what it
		 * published. */
		if (created && !done)
			djmfs_unlink(x->c, name);
		else if (done)
			fprintf(stderr, "%s: put %s: %llu bytes were written "
					"before the error\n", PROG, name,
				(unsigned long long)done);
		return EXIT_RUNTIME;
	}
	if (!x->g->quiet)
		printf("put %s: %llu bytes in object %s\n", name,
		       (unsigned long long)done, obj);
	return 0;
}

/* A writer's handle only for the TRIM: the close publishes nothing. */
static int cmd_trim(struct ctx *x)
{
	const char *name = x->a.pos[0], *obj = x->a.pos[1], *where = name;
	struct djmfs_file *f = NULL;
	uint64_t start, now = 0;
	uint32_t id;
	int r, c;

	if (parse_bytes(x->a.pos[2], &start) < 0)
		return usage_error("trim", "OFFSET must be a byte count");
	r = djmfs_open(x->c, name, DJMFS_O_WRITE, &f);
	if (r == 0 && ((r = djmfs_find_obj(f, obj, &id)) < 0 ||
		       (r = djmfs_trim(f, id, start, &now)) < 0))
		where = obj;
	c = djmfs_close(f);
	r = r < 0 ? r : c;
	if (r < 0)
		return fail("trim", where, r);
	if (!x->g->quiet)
		printf("trim %s: object %s starts at %llu\n", name, obj,
		       (unsigned long long)now);
	return 0;
}

static int cmd_rm(struct ctx *x)
{
	int i, r, status = 0;

	for (i = 0; i < x->a.npos; i++) {
		r = djmfs_unlink(x->c, x->a.pos[i]);
		if (r < 0)
			status = fail("rm", x->a.pos[i], r);
	}
	return status;
}

static int cmd_df(struct ctx *x)
{
	struct djmfs_df d;
	uint64_t au, held;
	char s[6][32];
	int r, h = x->a.human, w = h ? 8 : 14;

	r = djmfs_df(x->c, &d);
	if (r < 0)
		return fail("df", NULL, r);
	au = d.au_size;
	held = d.free_aus + d.reserved_aus + d.deferred_aus;
	printf("%*s %*s %*s %*s %*s %8s %11s %6s\n", w, "Size", w, "Used", w,
	       "Avail", w, "Reserved", w, "Deferred", "Files", "Quarantined",
	       "Unit");
	printf("%*s %*s %*s %*s %*s %8llu %11llu %6s\n", w,
	       djmfs__cli_size_str(d.total_aus * au, h, s[0], sizeof(s[0])), w,
	       djmfs__cli_size_str(held < d.total_aus ? (d.total_aus - held) * au : 0, h,
			s[1], sizeof(s[1])), w,
	       djmfs__cli_size_str(d.free_aus * au, h, s[2], sizeof(s[2])), w,
	       djmfs__cli_size_str(d.reserved_aus * au, h, s[3], sizeof(s[3])), w,
	       djmfs__cli_size_str(d.deferred_aus * au, h, s[4], sizeof(s[4])),
	       (unsigned long long)d.files,
	       (unsigned long long)d.quarantined,
	       djmfs__cli_size_str(au, 1, s[5], sizeof(s[5])));
	return 0;
}

/* Exit 0 clean, 1 problems (fixed or not), 2 the check could not run. */
static int cmd_fsck(struct ctx *x)
{
	const char *vol = x->a.pos[0];
	struct djmfs_fsck_report rep;
	int r;

	memset(&rep, 0, sizeof(rep));
	if (x->a.repair && x->a.no_change) {
		fprintf(stderr, "%s: fsck: --repair and -n exclude each "
			"other\n", PROG);
		return DJMFS_CLI_FSCK_FAILED;
	}
	r = djmfs_fsck(vol, (x->a.repair ? DJMFS_FSCK_REPAIR : 0) |
			       (x->a.no_change ? DJMFS_FSCK_NO_CHANGE : 0),
		       &rep, &x->log);
	if (r < 0 && r != -EUCLEAN) {
		fail("fsck", vol, r);
		return DJMFS_CLI_FSCK_FAILED;
	}
	return djmfs__cli_fsck_report(vol, r, x->a.repair, &rep);
}

/* Exit 0 upgraded or already format 2, 1 not upgraded. */
static int cmd_upgrade(struct ctx *x)
{
	const char *vol = x->a.pos[0];
	int r = djmfs_upgrade(vol, &x->log);

	if (r < 0) /* the library has logged why */
		return fail("upgrade", vol, r);
	if (!x->g->quiet)
		printf(r == 1 ? "%s: already format 2\n"
			      : "%s: upgraded to format 2\n", vol);
	return 0;
}

static int cmd_secret(struct ctx *x)
{
	const char *path = x->a.pos[0];
	int r = djmfs_secret_create(path, x->a.force ? DJMFS_SECRET_FORCE : 0,
				    &x->log);

	if (r == -EEXIST)
		fprintf(stderr, "%s: secret: %s exists; --force replaces it "
			"(every server and client must then get the new "
			"one)\n", PROG, path);
	if (r < 0)
		return fail("secret", path, r);
	if (!x->g->quiet)
		printf("wrote a new %d-byte secret to %s (mode 0600): give it "
		       "to djmfsd and every client with --secret-file\n",
		       DJMFS_SECRET_NEW, path);
	return 0;
}

/* Holds the frozen image for @secs or until SIGINT/SIGTERM, which main
 * blocked in every thread before the library started its own. */
static void hold(double secs)
{
	uint64_t end = djmfs_now() + (uint64_t)(secs * 1e9);
	struct timespec ts;
	sigset_t set;
	uint64_t now;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	while ((now = djmfs_now()) < end) {
		ts.tv_sec = (time_t)((end - now) / 1000000000u);
		ts.tv_nsec = (long)((end - now) % 1000000000u);
		if (sigtimedwait(&set, NULL, &ts) >= 0 || errno != EINTR)
			return;
	}
}

static int cmd_snap(struct ctx *x)
{
	const char *name = x->a.pos[0];
	struct djmfs_file_info fi;
	struct djmfs_file *f = NULL;
	double ms = ceil(x->a.lock_secs * 1000) + SNAP_LOCK_MARGIN_MS;
	int r;

	r = djmfs_open(x->c, name, DJMFS_O_READ, &f);
	if (r < 0)
		goto out;
	if (!x->a.lock_secs) {
		r = djmfs_sync_snap(f, &fi);
		if (r == 0) {
			printf("name: %s\nversion: %llu\nsize: %llu\n", fi.name,
			       (unsigned long long)fi.version,
			       (unsigned long long)fi.size);
			r = print_objects(&fi, NULL);
		}
		goto out;
	}
	/* The margin keeps the server from dropping the lock just before
	 * we let go of it ourselves; the server may cap it lower. */
	r = djmfs_lock_snap(f, ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms,
			    &fi);
	if (r < 0)
		goto out;
	printf("locked %s version %llu\n", name,
	       (unsigned long long)fi.version);
	fflush(stdout);
	hold(x->a.lock_secs);
	r = djmfs_unlock_snap(f);
	if (r == 0)
		printf("unlocked %s version %llu\n", name,
		       (unsigned long long)fi.version);
out:
	djmfs_close(f);
	return r < 0 ? fail("snap", name, r) : 0;
}

/* The counters "stats" prints, in order, by their JSON names. */
static const struct {
	const char *name;
	size_t off;
} stats_fields[] = {
#define STAT(f) { #f, offsetof(struct djmfs_server_stats, f) }
	STAT(uptime_ns),       STAT(cpu_user_ns),     STAT(cpu_sys_ns),
	STAT(ops),	       STAT(mutations),	      STAT(lock_busy_ns),
	STAT(journal_records), STAT(journal_batches), STAT(journal_bytes),
	STAT(checkpoints),     STAT(sessions),	      STAT(alloc_stalls),
	STAT(meta_repairs_journal), STAT(meta_repairs_checkpoint),
	STAT(meta_repairs_superblock),
#undef STAT
};

static int cmd_stats(struct ctx *x)
{
	struct djmfs_server_stats s;
	int r = djmfs_server_stats(x->c, &s);
	json_t *o;

	if (r < 0)
		return fail("stats", NULL, r);
	o = json_object();
	r = o ? 0 : -ENOMEM;
	for (size_t i = 0; i < sizeof(stats_fields) / sizeof(stats_fields[0]);
	     i++) {
		uint64_t v;

		memcpy(&v, (const char *)&s + stats_fields[i].off, sizeof(v));
		r |= tool_json_u64(o, stats_fields[i].name, v);
	}
	if (r == 0)
		r = tool_json_print(stdout, o, JSON_COMPACT);
	json_decref(o);
	return r < 0 ? fail("stats", NULL, r) : 0;
}

static const struct cmd cmds[] = {
	{ "mkfs", "PATH", "format a file or block device as a volume",
	  TAKES(OPT_SIZE) | TAKES(OPT_AU_SIZE) | TAKES(OPT_FORCE) |
		  TAKES(OPT_PREALLOC) | TAKES(OPT_FORMAT), 1, 1,
	  CONN_NONE, cmd_mkfs },
	{ "ls", "[PREFIX]", "list files: size, version, flags, name",
	  TAKES(OPT_LONG) | TAKES(OPT_HUMAN), 0, 1, CONN_META, cmd_ls },
	{ "stat", "NAME", "show a file, its objects and flags",
	  TAKES(OPT_EXTENTS), 1, 1, CONN_META, cmd_stat },
	{ "cat", "NAME", "write one snapshot of a file to stdout",
	  TAKES(OPT_OBJECT) | TAKES(OPT_LOCK), 1, 1, CONN_DATA, cmd_cat },
	{ "put", "LOCAL|- NAME", "import a local file or stdin as a new file",
	  TAKES(OPT_OBJECT) | TAKES(OPT_SYNC) | TAKES(OPT_NO_SYNC), 2, 2,
	  CONN_DATA, cmd_put },
	{ "rm", "NAME...", "remove files", 0, 1, -1, CONN_META, cmd_rm },
	{ "trim", "NAME OBJECT OFFSET", "drop a DATA object's bytes below "
	  "OFFSET", 0, 3, 3, CONN_META, cmd_trim },
	{ "df", "", "show the volume's space", TAKES(OPT_HUMAN), 0, 0,
	  CONN_META, cmd_df },
	{ "fsck", "VOLUME", "check a volume no server has open",
	  TAKES(OPT_REPAIR) | TAKES(OPT_NO_CHANGE), 1, 1, CONN_NONE,
	  cmd_fsck },
	{ "upgrade", "VOLUME", "give a format 1 volume a second copy of its "
	  "metadata (format 2)", 0, 1, 1, CONN_NONE, cmd_upgrade },
	{ "snap", "NAME", "show the latest snapshot, or freeze it",
	  TAKES(OPT_LOCK_FOR), 1, 1, CONN_META, cmd_snap },
	{ "stats", "", "the server's counters as JSON", 0, 0, 0, CONN_META,
	  cmd_stats },
	{ "secret", "PATH", "make a shared-secret file (32 random bytes)",
	  TAKES(OPT_REPLACE), 1, 1, CONN_NONE, cmd_secret },
};

#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

/* ------------------------------------------------------------------ */
/* Usage                                                               */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s [--server ADDR] [--volume PATH] "
		   "[--secret-file PATH] [-q] [-v]\n"
		   "             COMMAND [ARGS]\n       %s COMMAND --help\n\n"
		   "global options:\n"
		   "  --server ADDR   djmfsd to talk to: unix:PATH, "
		   "tcp:HOST:PORT, HOST:PORT\n"
		   "                  (default $DJMFS_SERVER, else "
		   "unix:/run/djmfs/djmfsd.sock)\n"
		   "  --volume PATH   the shared volume as this host sees it\n"
		   "  --secret-file PATH\n"
		   "                  prove the volume's shared secret to the "
		   "server, which\n"
		   "                  must prove it back (default "
		   "$DJMFS_SECRET_FILE)\n"
		   "  -q, --quiet     no library warnings, no progress lines\n"
		   "  -v, --verbose   library info lines (-vv: debug)\n"
		   "  -h, --help      this text\n"
		   "      --version   the version\n\ncommands:\n",
		PROG, PROG);
	for (i = 0; i < N_CMDS; i++)
		fprintf(f, "  %-6s %-14s %s\n", cmds[i].name, cmds[i].args,
			cmds[i].summary);
	fprintf(f, "\nSee djmfs(1).\n");
}

static void cmd_usage(const struct cmd *c)
{
	unsigned i;

	printf("usage: %s [global options] %s%s%s%s\n\n%s.\n", PROG, c->name,
	       *c->args ? " " : "", c->args,
	       c->opts ? " [options]" : "", c->summary);
	printf("\noptions:\n");
	for (i = 0; i < OPT_COUNT; i++) {
		const struct opt *o = &opts[i];
		char lhs[64];

		if (!(c->opts & TAKES(i)) && i != OPT_HELP)
			continue;
		snprintf(lhs, sizeof(lhs), "%c%c%c --%s%s%s",
			 o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ',
			 o->short_name ? ',' : ' ', o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		printf("  %-26s %s\n", lhs, o->help);
	}
}

/* ------------------------------------------------------------------ */
/* Argument parsing                                                    */
/* ------------------------------------------------------------------ */

/* Parses a subcommand's options (argv[0] is its name) into x->a.
 * Returns 0 or EXIT_USAGE (a message was printed). */
static int parse_cmd(struct ctx *x, int argc, char **argv)
{
	struct option lo[OPT_COUNT + 1];
	char so[3 * OPT_COUNT + 2], *sp = so;
	unsigned n = 0, i;
	int c;

	memset(lo, 0, sizeof(lo));
	*sp++ = ':';
	for (i = 0; i < OPT_COUNT; i++) {
		if (!(x->cmd->opts & TAKES(i)) && i != OPT_HELP)
			continue;
		lo[n].name = opts[i].name;
		lo[n].has_arg = opts[i].arg ? required_argument : no_argument;
		lo[n++].val = (int)(256 + i);
		if (opts[i].short_name) {
			*sp++ = opts[i].short_name;
			if (opts[i].arg)
				*sp++ = ':';
		}
	}
	*sp = 0;
	optind = 0; /* GNU: start over (the global options came first) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		for (i = 0; i < OPT_COUNT; i++)
			if ((x->cmd->opts & TAKES(i) || i == OPT_HELP) &&
			    (c == (int)(256 + i) || c == opts[i].short_name))
				break;
		if (c == '?' || c == ':' || i == OPT_COUNT) {
			char msg[128];

			snprintf(msg, sizeof(msg), "%s option '%s'",
				 c == ':' ? "missing value for" : "unknown",
				 argv[optind - 1]);
			return usage_error(x->cmd->name, msg);
		}
		if (opts[i].set(&x->a, &opts[i], optarg) < 0)
			return EXIT_USAGE;
	}
	x->a.pos = argv + optind;
	x->a.npos = argc - optind;
	return 0;
}

#define GLOBAL_DONE (-0x100) /* parse_global handled --help or --version */

/* Global options, up to the subcommand.  Returns the subcommand's index
 * in argv, -EXIT_USAGE (a message was printed) or GLOBAL_DONE. */
static int parse_global(struct global *g, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ "volume", required_argument, NULL, 'V' },
		{ "secret-file", required_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	char msg[128];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:qvh", lo, NULL)) != -1) {
		switch (c) {
		case 's': g->server = optarg; break;
		case 'V': g->volume = optarg; break;
		case 'S': g->secret_file = optarg; break;
		case 'q': g->quiet = 1; break;
		case 'v': g->verbose++; break;
		case 'h': usage(stdout); return GLOBAL_DONE;
		case 'R': printf("%s %s\n", PROG, PACKAGE_VERSION);
			return GLOBAL_DONE;
		default:
			snprintf(msg, sizeof(msg), "%s option '%.64s'",
				 c == ':' ? "missing value for" : "unknown",
				 argv[optind - 1]);
			return -usage_error(NULL, msg);
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return -EXIT_USAGE;
	}
	return optind;
}

static const struct cmd *find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < N_CMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Checks the operand count; returns 0 or EXIT_USAGE. */
static int check_operands(const struct ctx *x)
{
	const struct cmd *c = x->cmd;
	char msg[128];

	if (x->a.npos >= c->min_pos &&
	    (c->max_pos < 0 || x->a.npos <= c->max_pos))
		return 0;
	snprintf(msg, sizeof(msg), "%s operand%s (usage: %s %s)",
		 x->a.npos < c->min_pos ? "missing" : "extra",
		 x->a.npos < c->min_pos ? "" : "s", c->name, c->args);
	return usage_error(c->name, msg);
}

/* The secret named by --secret-file or $DJMFS_SECRET_FILE, into x. */
static int load_secret(struct ctx *x)
{
	const char *path = x->g->secret_file;
	int r;

	if (!path)
		path = getenv("DJMFS_SECRET_FILE");
	if (!path || !*path)
		return 0;
	/* The library logs why a file is refused (mode, size). */
	r = djmfs_secret_load(path, &x->secret, &x->secret_len, &x->log);
	return r < 0 ? fail("--secret-file", path, r) : 0;
}

static int connect_client(struct ctx *x)
{
	struct djmfs_client_opts o;
	char name[64];
	int r;

	r = load_secret(x);
	if (r)
		return r;
	memset(&o, 0, sizeof(o));
	snprintf(name, sizeof(name), "djmfs %s (pid %ld)", x->cmd->name,
		 (long)getpid());
	o.server = x->g->server;
	o.volume = x->g->volume;
	o.name = name;
	o.log = x->log;
	o.secret = x->secret;
	o.secret_len = x->secret_len;
	if (x->cmd->conn == CONN_META)
		o.flags |= DJMFS_CLIENT_NO_DATA_IO;
	r = djmfs_connect(&x->c, &o);
	if (r < 0)
		return fail("connect",
			    o.server ? o.server :
			    getenv("DJMFS_SERVER") ? getenv("DJMFS_SERVER") :
						     "(default server)",
			    r);
	return 0;
}

int main(int argc, char **argv)
{
	struct global g = { 0 };
	struct ctx x;
	sigset_t sigs;
	int i, r;

	i = parse_global(&g, argc, argv);
	if (i < 0)
		return i == GLOBAL_DONE ? 0 : -i;
	memset(&x, 0, sizeof(x));
	x.g = &g;
	x.log.fn = log_line;
	x.log.arg = &g;
	x.a.sync = 1;
	x.cmd = find_cmd(argv[i]);
	if (!x.cmd) {
		char msg[128];

		snprintf(msg, sizeof(msg), "unknown command '%.64s'", argv[i]);
		return usage_error(NULL, msg);
	}
	r = parse_cmd(&x, argc - i, argv + i);
	if (r)
		return r;
	if (x.a.help) {
		cmd_usage(x.cmd);
		return 0;
	}
	r = check_operands(&x);
	if (r)
		return r;
	if (x.a.lock_secs) {
		/* Before the library's threads exist, so they inherit it. */
		sigemptyset(&sigs);
		sigaddset(&sigs, SIGINT);
		sigaddset(&sigs, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	}
	if (x.cmd->conn != CONN_NONE && (r = connect_client(&x))) {
		djmfs_secret_free(x.secret, x.secret_len);
		return r;
	}
	r = x.cmd->run(&x);
	djmfs_disconnect(x.c);
	djmfs_secret_free(x.secret, x.secret_len);
	if (fflush(stdout) == EOF || ferror(stdout))
		r = r ? r : fail("write", "standard output",
				 errno ? -errno : -EIO);
	return r;
}
