/*
 * libFuzzer target for the text parsers streamd applies to what clients
 * and operators send: the start and duration query arguments and ISO-8601
 * times (sd_time.c), the Range header (sd_range.c), the admin endpoint's
 * knobs JSON and the config file's key/value lines (sd_config.c), and
 * libiosched's model profiles (iosched_model_parse), and the play-token
 * query arguments with the log redaction (sd_token.c).  The first input
 * byte picks the parser, the rest is its text.  Besides not crashing,
 * each accepted input must keep the parser's promises: a formatted time
 * parses back, a satisfiable range lies inside the size, knobs that were
 * accepted pass the cross-field check, and their JSON read back prints the
 * same.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iosched.h"
#include "streamd-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_time(const char *s)
{
	struct sd_start st;
	int64_t ns, back;
	char buf[64];

	if (sd_time_parse_start(s, &st) == 0)
		(void)sd_time_resolve(&st, 1000 * SD_NS, 2000 * SD_NS);
	if (sd_time_parse_duration(s, &ns) == 0 && ns <= 0)
		abort(); /* durations are positive */
	if (sd_time_parse_iso8601(s, &ns) != 0)
		return;
	if (sd_time_format_iso8601(ns, buf, sizeof(buf)) >= (int)sizeof(buf))
		abort();
	/* What the formatter writes (milliseconds, UTC) parses back to the
	 * same instant, give or take the truncated sub-millisecond part. */
	if (sd_time_parse_iso8601(buf, &back) != 0 || back > ns ||
	    ns - back >= 1000000)
		abort();
}

static void check_range(const char *s, uint64_t size)
{
	uint64_t a = 0, b = 0;
	int rc = sd_range_parse(s, size, &a, &b);

	if (rc == 1 && !(a <= b && b < size))
		abort();
}

static void check_knobs(const char *s, size_t len)
{
	struct sd_config cfg;
	struct sd_knobs k, again;
	char err[256], *json, *json2;

	sd_config_defaults(&cfg);
	if (sd_knobs_from_json(&cfg.knobs, s, len, &k, err, sizeof(err)) != 0)
		return;
	if (sd_knobs_check(&k, err, sizeof(err)) != 0)
		abort(); /* accepted knobs must pass the check */
	json = sd_knobs_to_json(&k);
	if (!json)
		return;
	/* What GET /admin/config shows, PUT back, shows the same again
	 * (reals print with 12 digits, so equal text, not equal bits). */
	if (sd_knobs_from_json(&cfg.knobs, json, strlen(json), &again, err,
			       sizeof(err)) != 0)
		abort();
	json2 = sd_knobs_to_json(&again);
	if (json2 && strcmp(json, json2) != 0)
		abort();
	free(json2);
	free(json);
}

/* A config file: the text goes through a memory file, as a path. */
static void check_config_file(const char *s, size_t len)
{
	struct sd_config cfg;
	char path[64], err[512];
	int fd = memfd_create("streamd.conf", 0);

	if (fd < 0)
		return;
	if (write(fd, s, len) == (ssize_t)len) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		sd_config_defaults(&cfg);
		if (sd_config_load(&cfg, path, err, sizeof(err)) == 0 &&
		    sd_knobs_check(&cfg.knobs, err, sizeof(err)) != 0)
			abort();
	}
	close(fd);
}

/*
 * "NAME\nEXPIRES\nSIG": a token that verifies must be the one sign
 * makes (its hex in either case); a canonical number prints back the same; a redacted line keeps
 * no sig= value and fits what it said it needs.
 */
static void check_token(char *s)
{
	char *name = s, *exp = strchr(s, '\n'), *sig = NULL, mine[80];
	char red[64];
	int64_t v;
	size_t need;

	need = sd_token_redact(s, red, sizeof(red));
	if (strlen(red) != (need < sizeof(red) ? need : sizeof(red) - 1))
		abort();
	/* In the query (after '?', before '#'), every sig= argument that
	 * has a value shows REDACTED instead (as much of it as fits). */
	for (const char *p = red, *q = NULL; *p; p++) {
		size_t left;

		if (*p == '?' && !q)
			q = p;
		if (*p == '#')
			q = NULL;
		if (!q || p == q || (p[-1] != '&' && p[-1] != '?' &&
				     p[-1] != ';') || strncmp(p, "sig=", 4))
			continue;
		left = strlen(p + 4);
		if (left && p[4] != '&' && p[4] != ';' && p[4] != '#' &&
		    strncmp(p + 4, "REDACTED", left < 8 ? left : 8) != 0)
			abort();
	}
	if (exp) {
		*exp++ = '\0';
		if ((sig = strchr(exp, '\n')))
			*sig++ = '\0';
	}
	if (sd_token_parse_seconds(exp ? exp : name, &v) == 0) {
		snprintf(mine, sizeof(mine), "%lld", (long long)v);
		if (strcmp(mine, exp ? exp : name) != 0)
			abort();
	}
	if (sd_token_verify("fuzz-secret", name, exp, sig, 1800000000) == 0 &&
	    (sd_token_parse_seconds(exp, &v) != 0 ||
	     sd_token_sign("fuzz-secret", name, v, mine) != 0 ||
	     strcasecmp(mine, sig) != 0)) /* hex in either case is taken */
		abort();
}

static void check_profile(const char *s, size_t len)
{
	struct iosched_model *m = NULL;

	if (iosched_model_parse(&m, s, len, "fuzz", NULL) == 0)
		iosched_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	uint64_t rsize = 0;

	if (size < 1 || size > 65536)
		return 0;
	s = malloc(size); /* the text after the selector, NUL-terminated */
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 7) {
	case 0: check_time(s); break;
	case 1:
		for (size_t i = 0; i < 8 && i + 1 < size; i++)
			rsize = rsize << 8 | data[1 + i];
		check_range(s, rsize % 100000);
		check_range(s, rsize);
		break;
	case 2: check_knobs(s, size - 1); break;
	case 3: check_config_file(s, size - 1); break;
	case 4: check_profile(s, size - 1); break;
	case 5: check_token(s); break;
	default: {
		struct sd_config cfg;
		char err[256];
		char *eq = strchr(s, '=');

		sd_config_defaults(&cfg);
		if (eq) {
			*eq = '\0';
			(void)sd_config_set(&cfg, s, eq + 1, err, sizeof(err));
		}
		break;
	}
	}
	free(s);
	return 0;
}
