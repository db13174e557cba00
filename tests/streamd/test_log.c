/*
 * Tests for the daemon's logs (sd_log.c) on files in a mkdtemp
 * directory: the level filter, the shape of error and access lines, the
 * escaping that keeps an access line parseable, reopening after a
 * rotation, a failed reopen that keeps the old files, and whole lines
 * from many threads writing at once.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "streamd-int.h"

static char dir[64];
static char elog[128], alog[128];

static void setup(void)
{
	strcpy(dir, "/tmp/sd-log-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(elog, sizeof(elog), "%s/error.log", dir);
	snprintf(alog, sizeof(alog), "%s/access.log", dir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(log, .init = setup, .fini = teardown);

/* The whole file in a malloc'd buffer ("" if missing). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static int matches(const char *re, const char *s)
{
	regex_t r;
	int ok;

	cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE), 0);
	ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

Test(log, drops_lines_above_the_level)
{
	struct sd_log *l;
	struct sd_logger h;
	char *s;

	cr_assert_eq(sd_log_open(&l, elog, "", SD_LOG_WARN), 0);
	sd_log_error(l, SD_LOG_ERROR, "an error %d", 1);
	sd_log_error(l, SD_LOG_WARN, "a warning");
	sd_log_error(l, SD_LOG_INFO, "some info");
	sd_log_error(l, SD_LOG_DEBUG, "debug noise");
	h = sd_log_hook(l);
	cr_assert_not_null(h.fn);
	h.fn(h.arg, SD_LOG_WARN, "hooked warning");
	h.fn(h.arg, SD_LOG_INFO, "hooked info");
	sd_log_close(l);

	s = slurp(elog);
	cr_expect_eq(count_lines(s), 3, "got:\n%s", s);
	cr_expect_not_null(strstr(s, "ERROR: an error 1\n"));
	cr_expect_not_null(strstr(s, "WARN: a warning\n"));
	cr_expect_not_null(strstr(s, "WARN: hooked warning\n"));
	cr_expect_null(strstr(s, "info"));
	cr_expect_null(strstr(s, "debug"));
	free(s);
}

Test(log, writes_error_lines_with_utc_milliseconds_pid_and_level)
{
	struct sd_log *l;
	char re[160], *s;

	cr_assert_eq(sd_log_open(&l, elog, "", SD_LOG_DEBUG), 0);
	sd_log_error(l, SD_LOG_INFO, "listening on http://%s/", "127.0.0.1:1");
	sd_log_error(l, SD_LOG_DEBUG, "two\nlines");
	sd_log_close(l);

	s = slurp(elog);
	snprintf(re, sizeof(re),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
		 "\\.[0-9]{3}Z streamd\\[%ld\\] INFO: "
		 "listening on http://127\\.0\\.0\\.1:1/$",
		 (long)getpid());
	cr_expect(matches(re, s), "got:\n%s", s);
	cr_expect(matches(" DEBUG: two lines$", s), "got:\n%s", s);
	cr_expect_eq(count_lines(s), 2, "got:\n%s", s);
	free(s);
}

Test(log, writes_access_lines_in_combined_format_with_duration)
{
	struct sd_log *l;
	char *s;

	cr_assert_eq(sd_log_open(&l, elog, alog, SD_LOG_ERROR), 0);
	sd_log_access(l, "127.0.0.1", "GET", "/streams/cam1.ts?start=-30",
		      "HTTP/1.1", 200, 123456, NULL, "curl/7.88.1", 42);
	sd_log_access(l, "::1", "PUT", "/record/\"x\" y", "HTTP/1.1", 400, 0,
		      "http://r/", "", 0);
	sd_log_close(l);

	s = slurp(alog);
	cr_expect_eq(count_lines(s), 2, "got:\n%s", s);
	cr_expect(matches("^127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/"
			  "[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} \\+0000\\] "
			  "\"GET /streams/cam1\\.ts\\?start=-30 HTTP/1\\.1\" "
			  "200 123456 \"-\" \"curl/7\\.88\\.1\" 42$", s),
		  "got:\n%s", s);
	/* A quote in the URL must not end the quoted request field, nor a
	 * space split the URL. */
	cr_expect(matches("^::1 - - \\[[^]]*\\] \"PUT /record/\\\\\"x\\\\\"\\\\x20y "
			  "HTTP/1\\.1\" 400 0 \"http://r/\" \"-\" 0$", s),
		  "got:\n%s", s);
	free(s);
	s = slurp(elog);
	cr_expect_str_empty(s, "access lines leaked into the error log");
	free(s);
}

Test(log, access_log_off_writes_nothing)
{
	struct sd_log *l;
	struct stat st;

	cr_assert_eq(sd_log_open(&l, elog, "", SD_LOG_ERROR), 0);
	sd_log_access(l, "h", "GET", "/", "HTTP/1.1", 200, 1, NULL, NULL, 1);
	sd_log_close(l);
	cr_expect_eq(stat(alog, &st), -1);
	cr_expect_eq(stat(elog, &st), 0);
	cr_expect_eq(st.st_size, 0);
}

Test(log, reopen_after_rename_writes_to_the_new_file)
{
	struct sd_log *l;
	char old_e[160], old_a[160], *s;

	snprintf(old_e, sizeof(old_e), "%s.1", elog);
	snprintf(old_a, sizeof(old_a), "%s.1", alog);
	cr_assert_eq(sd_log_open(&l, elog, alog, SD_LOG_INFO), 0);
	sd_log_error(l, SD_LOG_INFO, "before");
	sd_log_access(l, "h", "GET", "/before", "HTTP/1.1", 200, 1, NULL,
		      NULL, 1);
	cr_assert_eq(rename(elog, old_e), 0);
	cr_assert_eq(rename(alog, old_a), 0);
	sd_log_error(l, SD_LOG_INFO, "still old");
	cr_assert_eq(sd_log_reopen(l), 0);
	sd_log_error(l, SD_LOG_INFO, "after");
	sd_log_access(l, "h", "GET", "/after", "HTTP/1.1", 200, 1, NULL,
		      NULL, 1);
	sd_log_close(l);

	s = slurp(old_e);
	cr_expect(matches("INFO: before$", s) && matches("INFO: still old$", s)
		  && !strstr(s, "after"), "rotated error log:\n%s", s);
	free(s);
	s = slurp(elog);
	cr_expect(matches("INFO: after$", s) && count_lines(s) == 1,
		  "new error log:\n%s", s);
	free(s);
	s = slurp(old_a);
	cr_expect(strstr(s, "/before") && !strstr(s, "/after"),
		  "rotated access log:\n%s", s);
	free(s);
	s = slurp(alog);
	cr_expect(strstr(s, "/after") && count_lines(s) == 1,
		  "new access log:\n%s", s);
	free(s);
}

Test(log, failed_reopen_keeps_the_old_files)
{
	struct sd_log *l;
	char sub[128], e[160], a[160], *s;
	int err;

	if (geteuid() == 0)
		cr_log_info("running as root: using a removed directory");
	snprintf(sub, sizeof(sub), "%s/logs", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	snprintf(e, sizeof(e), "%s/error.log", sub);
	snprintf(a, sizeof(a), "%s/access.log", sub);
	cr_assert_eq(sd_log_open(&l, e, a, SD_LOG_INFO), 0);
	sd_log_error(l, SD_LOG_INFO, "one");
	/* Move the files out and remove their directory: reopening cannot
	 * create them again (even as root). */
	cr_assert_eq(rename(e, elog), 0);
	cr_assert_eq(rename(a, alog), 0);
	cr_assert_eq(rmdir(sub), 0);
	err = sd_log_reopen(l);
	cr_expect_eq(err, -ENOENT, "reopen returned %d", err);
	sd_log_error(l, SD_LOG_INFO, "two");
	sd_log_access(l, "h", "GET", "/two", "HTTP/1.1", 200, 1, NULL, NULL, 1);
	sd_log_close(l);

	s = slurp(elog);
	cr_expect(matches("INFO: one$", s) && matches("INFO: two$", s),
		  "old error log:\n%s", s);
	free(s);
	s = slurp(alog);
	cr_expect(strstr(s, "/two"), "old access log:\n%s", s);
	free(s);
}

Test(log, failed_access_reopen_keeps_the_error_log_too)
{
	struct sd_log *l;
	char sub[128], a[160], *s;

	snprintf(sub, sizeof(sub), "%s/acc", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	snprintf(a, sizeof(a), "%s/access.log", sub);
	cr_assert_eq(sd_log_open(&l, elog, a, SD_LOG_INFO), 0);
	cr_assert_eq(rename(elog, alog), 0); /* the error log, rotated */
	cr_assert_eq(unlink(a), 0);
	cr_assert_eq(rmdir(sub), 0);
	cr_expect_lt(sd_log_reopen(l), 0);
	sd_log_error(l, SD_LOG_INFO, "kept");
	sd_log_close(l);
	s = slurp(alog);
	cr_expect(matches("INFO: kept$", s), "rotated error log:\n%s", s);
	free(s);
	s = slurp(elog);
	cr_expect_str_empty(s, "a new error log was swapped in alone:\n%s", s);
	free(s);
}

Test(log, open_fails_with_errno_on_a_bad_path)
{
	struct sd_log *l = (struct sd_log *)1;
	char bad[160];

	snprintf(bad, sizeof(bad), "%s/no/such/dir/x.log", dir);
	cr_expect_eq(sd_log_open(&l, bad, "", SD_LOG_INFO), -ENOENT);
	cr_expect_null(l);
	cr_expect_eq(sd_log_open(&l, elog, bad, SD_LOG_INFO), -ENOENT);
	cr_expect_null(l);
	sd_log_close(NULL);
}

#define THREADS 8
#define LINES 1000

static void *spam(void *arg)
{
	struct sd_log *l = arg;
	char pad[200];
	int i;

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (i = 0; i < LINES; i++) {
		sd_log_error(l, SD_LOG_INFO, "t%p n%d %s end", arg, i, pad);
		sd_log_access(l, "127.0.0.1", "GET", "/x", "HTTP/1.1", 200,
			      (uint64_t)i, NULL, pad, 1);
	}
	return NULL;
}

Test(log, concurrent_threads_write_whole_lines)
{
	pthread_t th[THREADS];
	struct sd_log *l;
	char *s, *p, *nl;
	size_t whole = 0, access_whole = 0;
	int i;

	cr_assert_eq(sd_log_open(&l, elog, alog, SD_LOG_INFO), 0);
	for (i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, spam, l), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	sd_log_close(l);

	s = slurp(elog);
	for (p = s; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		whole += matches("^[0-9T:.-]+Z streamd\\[[0-9]+\\] INFO: t0x[0-9a-f]+ "
				 "n[0-9]+ x{199} end$", p);
	}
	cr_expect_eq(whole, THREADS * LINES);
	cr_expect_str_empty(p, "a partial last line");
	free(s);

	s = slurp(alog);
	for (p = s; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		access_whole += matches("^127\\.0\\.0\\.1 - - \\[[^]]+\\] "
					"\"GET /x HTTP/1\\.1\" 200 [0-9]+ \"-\" "
					"\"x{199}\" 1$", p);
	}
	cr_expect_eq(access_whole, THREADS * LINES);
	free(s);
}

Test(log, dash_means_stderr_for_errors_and_stdout_for_access)
{
	struct sd_log *l;
	int efd, afd, save_e, save_o;
	char *s;

	efd = open(elog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	afd = open(alog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(efd >= 0 && afd >= 0);
	save_e = dup(STDERR_FILENO);
	save_o = dup(STDOUT_FILENO);
	dup2(efd, STDERR_FILENO);
	dup2(afd, STDOUT_FILENO);
	cr_assert_eq(sd_log_open(&l, "-", "-", SD_LOG_INFO), 0);
	sd_log_error(l, SD_LOG_WARN, "to stderr");
	sd_log_access(l, "h", "GET", "/to-stdout", "HTTP/1.1", 200, 1, NULL,
		      NULL, 1);
	cr_expect_eq(sd_log_reopen(l), 0);
	sd_log_error(l, SD_LOG_WARN, "still stderr");
	sd_log_close(l);
	/* Closing the log leaves the standard streams open. */
	cr_expect_eq(write(STDERR_FILENO, "", 0), 0);
	dup2(save_e, STDERR_FILENO);
	dup2(save_o, STDOUT_FILENO);
	close(save_e);
	close(save_o);
	close(efd);
	close(afd);

	s = slurp(elog);
	cr_expect(matches("WARN: to stderr$", s) &&
		  matches("WARN: still stderr$", s), "stderr got:\n%s", s);
	free(s);
	s = slurp(alog);
	cr_expect(strstr(s, "\"GET /to-stdout HTTP/1.1\" 200 1"),
		  "stdout got:\n%s", s);
	free(s);
}
