/*
 * libFuzzer target for the text parsers streamd applies to what clients
 * and operators send: the start and duration query arguments and ISO-8601
 * times (sd_time.c), the Range header (sd_range.c), the admin endpoint's
 * knobs JSON and the config file's key/value lines (sd_config.c), and
 * libiosched's model profiles (iosched_model_parse).  The first input
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
	switch (data[0] % 6) {
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
