/*
 * The daemon's two logs: the error log, where every module's diagnostics
 * end up (through the struct sd_logger hook) as timestamped, levelled
 * lines, and the access log, one line per HTTP request in the combined
 * log format plus its duration.  Each line is formatted in full first and
 * leaves in a single write(2) on a file opened O_APPEND, so lines from
 * concurrent threads (and from other processes appending to the same
 * file) never interleave.  SIGHUP after a rotation calls sd_log_reopen(),
 * which swaps in freshly opened files only when both could be opened.
 *
 * Invariants:
 *  1. efd is always valid (a file we opened, or stderr); afd is a file we
 *     opened, stdout, or -1 (access log off).
 *  2. e_own / a_own say whether efd / afd were opened here: only those
 *     are ever closed.
 *  3. efd, afd and their ownership flags change only under mu, and every
 *     write takes mu, so no line ever goes to a descriptor being closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"
#include "streamd-int.h"

/* Longest line either log writes, newline included: longer ones are cut
 * (a log line is for reading, not for carrying data). */
#define SD_LOG_LINE_MAX 4096

struct sd_log {
	pthread_mutex_t mu;
	enum sd_log_level level;
	char *error_path;  /* "-": stderr */
	char *access_path; /* "": off; "-": stdout */
	int efd, afd;
	int e_own, a_own;
};

static const char *const level_tags[] = {
	[SD_LOG_ERROR] = "ERROR",
	[SD_LOG_WARN] = "WARN",
	[SD_LOG_INFO] = "INFO",
	[SD_LOG_DEBUG] = "DEBUG",
};

static const char *const months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* A bounded line being built: appends past the end are dropped, one byte
 * is always kept back for the newline. */
struct line {
	char buf[SD_LOG_LINE_MAX];
	size_t len;
};

static void line_printf(struct line *ln, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void line_printf(struct line *ln, const char *fmt, ...)
{
	size_t room = sizeof(ln->buf) - 1 - ln->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ln->buf + ln->len, room + 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		ln->len += (size_t)n < room ? (size_t)n : room;
}

/* Appends @s with the bytes that would break the line or the quoting
 * escaped as \xHH (and '"', '\' as \" and \\), as nginx does; NULL or ""
 * gives "-".  @space: escape ' ' too, for a field that must stay one word
 * (the URL in the request line: the HTTP layer hands it over decoded). */
static void line_escaped(struct line *ln, const char *s, int space)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t room;

	if (!s || !*s) {
		line_printf(ln, "-");
		return;
	}
	for (; *p; p++) {
		room = sizeof(ln->buf) - 1 - ln->len;
		if (*p == '"' || *p == '\\') {
			if (room < 2)
				return;
			ln->buf[ln->len++] = '\\';
			ln->buf[ln->len++] = (char)*p;
		} else if (*p < 0x20 || *p >= 0x7f || (space && *p == ' ')) {
			if (room < 4)
				return;
			ln->buf[ln->len++] = '\\';
			ln->buf[ln->len++] = 'x';
			ln->buf[ln->len++] = hex[*p >> 4];
			ln->buf[ln->len++] = hex[*p & 15];
		} else {
			if (room < 1)
				return;
			ln->buf[ln->len++] = (char)*p;
		}
	}
}

/* Opens @path for appending: -1 and no descriptor for "" (off), the
 * standard stream @std for "-", else a new descriptor (*own set). */
static int open_one(const char *path, int std, int *fd, int *own)
{
	*own = 0;
	if (!*path) {
		*fd = -1;
		return 0;
	}
	if (!strcmp(path, "-")) {
		*fd = std;
		return 0;
	}
	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*fd < 0)
		return -errno;
	*own = 1;
	return 0;
}

static void close_one(int fd, int own)
{
	if (own && fd >= 0)
		close(fd);
}

/* Opens both files of @l's paths into the out-parameters; on failure
 * closes what it opened and returns -errno. */
static int open_both(const struct sd_log *l, int *efd, int *e_own, int *afd,
		     int *a_own)
{
	int err;

	err = open_one(l->error_path, STDERR_FILENO, efd, e_own);
	if (err)
		return err;
	err = open_one(l->access_path, STDOUT_FILENO, afd, a_own);
	if (err) {
		close_one(*efd, *e_own);
		*efd = -1;
	}
	return err;
}

int sd_log_open(struct sd_log **out, const char *error_path,
		const char *access_path, enum sd_log_level level)
{
	struct sd_log *l;
	int err = -ENOMEM;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* NULL or "" for the error log: stderr, there is no "off" for it. */
	l->error_path = strdup(error_path && *error_path ? error_path : "-");
	l->access_path = strdup(access_path ? access_path : "");
	if (!l->error_path || !l->access_path)
		goto err;
	l->level = level;
	l->efd = l->afd = -1;
	err = open_both(l, &l->efd, &l->e_own, &l->afd, &l->a_own);
	if (err)
		goto err;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
err:
	free(l->error_path);
	free(l->access_path);
	free(l);
	return err;
}

void sd_log_close(struct sd_log *l)
{
	if (!l)
		return;
	close_one(l->efd, l->e_own);
	close_one(l->afd, l->a_own);
	pthread_mutex_destroy(&l->mu);
	free(l->error_path);
	free(l->access_path);
	free(l);
}

int sd_log_reopen(struct sd_log *l)
{
	int efd, afd, e_own, a_own, old_efd, old_afd, old_e_own, old_a_own;
	int err;

	err = open_both(l, &efd, &e_own, &afd, &a_own);
	if (err) {
		sd_log_error(l, SD_LOG_ERROR,
			     "sd_log_reopen: open: %s (keeping the old logs)",
			     strerror(-err));
		return err;
	}
	pthread_mutex_lock(&l->mu);
	old_efd = l->efd;
	old_e_own = l->e_own;
	old_afd = l->afd;
	old_a_own = l->a_own;
	l->efd = efd;
	l->e_own = e_own;
	l->afd = afd;
	l->a_own = a_own;
	pthread_mutex_unlock(&l->mu);
	/* Nobody writes to the old descriptors any more (invariant 3). */
	close_one(old_efd, old_e_own);
	close_one(old_afd, old_a_own);
	return 0;
}

/* Writes the finished line (newline added) to the error log (@access 0)
 * or the access log, in one write(2) under the lock.  A short write (a
 * full disk, a signal) is completed by further writes: better a line
 * split than a line lost. */
static void emit(struct sd_log *l, int access, struct line *ln)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	ln->buf[ln->len++] = '\n';
	pthread_mutex_lock(&l->mu);
	fd = access ? l->afd : l->efd;
	while (fd >= 0 && off < ln->len) {
		n = write(fd, ln->buf + off, ln->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* nowhere left to report it */
		off += (size_t)n;
	}
	pthread_mutex_unlock(&l->mu);
}

static void wall_now(struct timespec *ts, struct tm *tm)
{
	clock_gettime(CLOCK_REALTIME, ts);
	gmtime_r(&ts->tv_sec, tm);
}

/* The error-log line for @msg, control characters (a stray newline in a
 * message) turned into spaces so that one record stays one line. */
static void error_line(struct sd_log *l, enum sd_log_level level,
		       const char *msg)
{
	struct line ln = { .len = 0 };
	struct timespec ts;
	struct tm tm;
	size_t start, i;

	wall_now(&ts, &tm);
	line_printf(&ln, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ streamd[%ld] %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
		    (long)getpid(), level_tags[level]);
	start = ln.len;
	line_printf(&ln, "%s", msg);
	for (i = start; i < ln.len; i++)
		if ((unsigned char)ln.buf[i] < 0x20)
			ln.buf[i] = ' ';
	emit(l, 0, &ln);
}

static int level_known(enum sd_log_level level)
{
	return (unsigned)level < sizeof(level_tags) / sizeof(level_tags[0]);
}

static void hook_fn(void *arg, enum sd_log_level level, const char *msg)
{
	struct sd_log *l = arg;

	if (!level_known(level) || level > l->level)
		return;
	error_line(l, level, msg);
}

struct sd_logger sd_log_hook(struct sd_log *l)
{
	struct sd_logger h = { .fn = l ? hook_fn : NULL, .arg = l };

	return h;
}

void sd_log_error(struct sd_log *l, enum sd_log_level level,
		  const char *fmt, ...)
{
	char msg[SD_LOG_LINE_MAX];
	va_list ap;

	if (!l || !level_known(level) || level > l->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_line(l, level, msg);
}

void sd_log_access(struct sd_log *l, const char *host, const char *method,
		   const char *url, const char *version, unsigned status,
		   uint64_t bytes, const char *referer, const char *agent,
		   uint64_t duration_ms)
{
	struct line ln = { .len = 0 };
	struct timespec ts;
	struct tm tm;

	/* The path never changes, so it says "off" without the lock. */
	if (!l || !*l->access_path)
		return;
	wall_now(&ts, &tm);
	line_escaped(&ln, host, 0);
	line_printf(&ln, " - - [%02d/%s/%04d:%02d:%02d:%02d +0000] \"",
		    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
		    tm.tm_hour, tm.tm_min, tm.tm_sec);
	line_escaped(&ln, method, 0);
	line_printf(&ln, " ");
	line_escaped(&ln, url, 1);
	line_printf(&ln, " ");
	line_escaped(&ln, version, 0);
	line_printf(&ln, "\" %u %llu \"", status, (unsigned long long)bytes);
	line_escaped(&ln, referer, 0);
	line_printf(&ln, "\" \"");
	line_escaped(&ln, agent, 0);
	line_printf(&ln, "\" %llu", (unsigned long long)duration_ms);
	emit(l, 1, &ln);
}

/* How every module logs (streamd-int.h): the project's one log-call
 * formatter (common/lg.h), lines cut at 1023 bytes. */
LG_DEFINE_LOG(sd__log, struct sd_logger, enum sd_log_level, 1024)
