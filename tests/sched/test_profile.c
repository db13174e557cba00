/*
 * Tests of the profile parser and loader (iosched_profile.c): what a
 * well-formed profile fills in (units, defaults, derived values), that
 * every kind of defect is refused with -EINVAL and exactly one log line
 * naming the place and the key, and how a profile name is looked up
 * ($IOSCHED_PROFILE_DIR, paths, the 64 KiB limit).  Files are written to
 * a fresh directory under the temporary directory and removed afterwards.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iosched-int.h"

#ifndef IOSCHED_TEST_PROFILE_DIR
#define IOSCHED_TEST_PROFILE_DIR "/work/main/sched/profiles"
#endif

#ifndef IOSCHED_PROFILE_DIR_DEFAULT
#define IOSCHED_PROFILE_DIR_DEFAULT "/usr/local/share/streamd/profiles"
#endif

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

struct capture {
	unsigned lines;
	enum iosched_log_level level;
	char last[512];
};

static void capture_fn(void *arg, enum iosched_log_level level,
		       const char *msg)
{
	struct capture *c = arg;

	c->lines++;
	c->level = level;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static struct capture cap;
static const struct iosched_log cap_log = { capture_fn, &cap };

static int parse(struct iosched_model **m, const char *text)
{
	memset(&cap, 0, sizeof(cap));
	return iosched_model_parse(m, text, strlen(text), "t.profile",
				   &cap_log);
}

/* Each rejected profile: -EINVAL, no model, one error line that contains
 * every one of the given fragments (place, key, value). */
static void expect_invalid(const char *text, const char *where,
			   const char *what)
{
	struct iosched_model *m = (struct iosched_model *)&cap;
	int ret = parse(&m, text);

	cr_assert_eq(ret, -EINVAL, "accepted:\n%s", text);
	cr_assert_null(m);
	cr_assert_eq(cap.lines, 1, "%u log lines for:\n%s", cap.lines, text);
	cr_assert_eq(cap.level, IOSCHED_LOG_ERROR);
	cr_assert(strstr(cap.last, where), "'%s' lacks '%s'", cap.last, where);
	cr_assert(strstr(cap.last, what), "'%s' lacks '%s'", cap.last, what);
}

/* Every key of each type, one per line, in this order. */
static const char *const hdd_lines[] = {
	"type = hdd",
	"capacity_bytes = 1000000",
	"overhead_us = 100",
	"cylinders = 1000",
	"rpm = 10000",
	"media_outer_MBps = 80",
	"media_inner_MBps = 40",
	"bus_MBps = 300",
	"settle_us = 500",
	"short_seek_tracks = 3",
	"seek_accel = 20",
	"seek_vmax = 200",
};

static const char *const ssd_lines[] = {
	"type = ssd",
	"capacity_bytes = 1000000",
	"overhead_us = 7",
	"read_latency_us = 50",
	"write_latency_us = 30",
	"read_MBps = 500",
	"write_MBps = 400",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The lines of @base except number @skip (0 = none; 1-based), then
 * @extra. */
static char *join(const char *const *base, size_t n, size_t skip,
		  const char *extra)
{
	static char buf[4096];
	size_t i, off = 0;

	for (i = 0; i < n; i++)
		if (i + 1 != skip)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off,
						"%s\n", base[i]);
	snprintf(buf + off, sizeof(buf) - off, "%s", extra ? extra : "");
	return buf;
}

static char *hdd_with(const char *extra)
{
	return join(hdd_lines, NELEM(hdd_lines), 0, extra);
}

static char *ssd_with(const char *extra)
{
	return join(ssd_lines, NELEM(ssd_lines), 0, extra);
}

/* A scratch directory, removed with its files by rm_tmpdir(). */
static char tmpdir[256];

static void mk_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/iosched-profile-XXXXXX",
		 base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void write_file(const char *name, const char *text, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* A whole file, malloc'd (caller frees); NULL when it cannot be read. */
static char *read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = f ? malloc(64 * 1024) : NULL;

	*len = 0;
	if (buf)
		*len = fread(buf, 1, 64 * 1024, f);
	if (f)
		fclose(f);
	return buf;
}

static void rm_tmpdir(void)
{
	static const char *const names[] = { "hdd-7200.profile", "big.profile",
					     "edge.profile", "mydisk.profile",
					     "x.profile" };
	char path[512];
	size_t i;

	for (i = 0; i < NELEM(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

/* ------------------------------------------------------------------ */
/* Well-formed profiles                                                */
/* ------------------------------------------------------------------ */

Test(profile, fills_an_hdd_model_in_model_units)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, hdd_with(NULL)), 0, "%s", cap.last);
	cr_assert_eq(cap.lines, 0);
	cr_assert_eq(m->type, IOSCHED__MODEL_HDD);
	cr_assert_eq(m->capacity_bytes, 1000000);
	cr_assert_eq(m->overhead_ns, 100000);
	cr_assert_eq(m->cylinders, 1000);
	cr_assert_float_eq(m->rpm, 10000.0, 1e-9);
	cr_assert_float_eq(m->media_outer_Bps, 80e6, 1e-3);
	cr_assert_float_eq(m->media_inner_Bps, 40e6, 1e-3);
	cr_assert_float_eq(m->bus_Bps, 300e6, 1e-3);
	cr_assert_eq(m->settle_ns, 500000);
	cr_assert_eq(m->short_seek_tracks, 3);
	cr_assert_float_eq(m->seek_accel, 20.0, 1e-12);
	cr_assert_float_eq(m->seek_vmax, 200.0, 1e-12);
	/* 60e9 / 10000 rpm = 6 ms. */
	cr_assert_eq(m->revolution_ns, 6000000);
	iosched_model_free(m);
}

Test(profile, fills_an_ssd_model_in_model_units)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, ssd_with("parallelism = 4\n")), 0, "%s",
		     cap.last);
	cr_assert_eq(m->type, IOSCHED__MODEL_SSD);
	cr_assert_eq(m->overhead_ns, 7000);
	cr_assert_eq(m->read_latency_ns, 50000);
	cr_assert_eq(m->write_latency_ns, 30000);
	cr_assert_float_eq(m->read_Bps, 500e6, 1e-3);
	cr_assert_float_eq(m->write_Bps, 400e6, 1e-3);
	cr_assert_eq(iosched_model_parallelism(m), 4);
	iosched_model_free(m);
}

Test(profile, defaults_depth_parallelism_and_name_by_type)
{
	struct iosched_model *h = NULL, *s = NULL;

	cr_assert_eq(parse(&h, hdd_with(NULL)), 0);
	cr_assert_eq(parse(&s, ssd_with(NULL)), 0);
	cr_assert_eq(iosched_model_depth(h), 1);
	cr_assert_eq(iosched_model_parallelism(h), 1);
	cr_assert_eq(iosched_model_depth(s), 32);
	cr_assert_eq(iosched_model_parallelism(s), 1);
	/* origin "t.profile" without its suffix */
	cr_assert_str_eq(iosched_model_name(h), "t");
	iosched_model_free(s);
	iosched_model_free(h);
}

Test(profile, takes_depth_and_name_when_given)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, hdd_with("depth = 3\nname = Disk 7 (spare)\n")),
		     0, "%s", cap.last);
	cr_assert_eq(iosched_model_depth(m), 3);
	cr_assert_str_eq(iosched_model_name(m), "Disk 7 (spare)");
	iosched_model_free(m);
}

Test(profile, names_from_the_origin_basename)
{
	struct iosched_model *m = NULL;
	const char *t = ssd_with(NULL);

	cr_assert_eq(iosched_model_parse(&m, t, strlen(t),
					 "/a/b.profile/disk-9.profile", NULL),
		     0);
	cr_assert_str_eq(iosched_model_name(m), "disk-9");
	iosched_model_free(m);
	cr_assert_eq(iosched_model_parse(&m, t, strlen(t), "inline", NULL), 0);
	cr_assert_str_eq(iosched_model_name(m), "inline");
	iosched_model_free(m);
}

Test(profile, ignores_comments_blank_lines_and_spacing)
{
	static const char text[] =
		"# leading comment\n"
		"\n"
		"   \t\n"
		"  type\t=   ssd   # trailing comment\r\n"
		"capacity_bytes=1000000\r\n"
		"overhead_us =7\n"
		"    # indented comment\n"
		"read_latency_us= 50\n"
		"write_latency_us\t=\t30\n"
		"read_MBps = 500\n"
		"write_MBps = 400"; /* no final newline */
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, text), 0, "%s", cap.last);
	cr_assert_eq(cap.lines, 0);
	cr_assert_eq(m->overhead_ns, 7000);
	cr_assert_float_eq(m->write_Bps, 400e6, 1e-3);
	iosched_model_free(m);
}

Test(profile, reads_only_len_bytes_of_the_text)
{
	size_t len = strlen(ssd_with(NULL));
	const char *t = ssd_with("bogus line past the end\n");
	struct iosched_model *m = NULL;

	cr_assert_eq(iosched_model_parse(&m, t, len, "t", NULL), 0);
	iosched_model_free(m);
}

Test(profile, accepts_binary_size_suffixes_for_capacity)
{
	static const struct {
		const char *v;
		uint64_t bytes;
	} cases[] = {
		{ "512", 512 },
		{ "4K", 4096 },
		{ "3M", 3ull << 20 },
		{ "512G", 512ull << 30 },
		{ "1T", 1ull << 40 },
		{ "2t", 2ull << 40 },
	};
	static const char *const base[] = {
		"type = ssd", "overhead_us = 7", "read_latency_us = 50",
		"write_latency_us = 30", "read_MBps = 500", "write_MBps = 400",
	};
	char extra[64];
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct iosched_model *m = NULL;

		snprintf(extra, sizeof(extra), "capacity_bytes = %s\n",
			 cases[i].v);
		cr_assert_eq(parse(&m, join(base, NELEM(base), 0, extra)), 0,
			     "%s: %s", cases[i].v, cap.last);
		cr_assert_eq(iosched_model_capacity(m), cases[i].bytes, "%s",
			     cases[i].v);
		iosched_model_free(m);
	}
}

Test(profile, accepts_fractional_and_zero_microseconds)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, join(hdd_lines, NELEM(hdd_lines), 3,
				    "overhead_us = 0\n")),
		     0, "%s", cap.last);
	cr_assert_eq(m->overhead_ns, 0);
	iosched_model_free(m);
	cr_assert_eq(parse(&m, join(hdd_lines, NELEM(hdd_lines), 3,
				    "overhead_us = 12.5\n")),
		     0, "%s", cap.last);
	cr_assert_eq(m->overhead_ns, 12500);
	iosched_model_free(m);
	cr_assert_eq(parse(&m, join(hdd_lines, NELEM(hdd_lines), 3,
				    "overhead_us = 1e3\n")),
		     0, "%s", cap.last);
	cr_assert_eq(m->overhead_ns, 1000000);
	iosched_model_free(m);
}

Test(profile, accepts_equal_inner_and_outer_media_rates)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(parse(&m, join(hdd_lines, NELEM(hdd_lines), 7,
				    "media_inner_MBps = 80\n")),
		     0, "%s", cap.last);
	iosched_model_free(m);
}

/* ------------------------------------------------------------------ */
/* Rejected profiles                                                   */
/* ------------------------------------------------------------------ */

Test(profile, rejects_an_unknown_key)
{
	/* 12 hdd lines, so the extra one is line 13. */
	expect_invalid(hdd_with("spindles = 2\n"), "t.profile:13:",
		       "unknown key 'spindles'");
	/* keys are case-sensitive */
	expect_invalid(hdd_with("RPM = 7200\n"), "t.profile:13:", "'RPM'");
}

Test(profile, rejects_a_duplicate_key)
{
	expect_invalid(hdd_with("rpm = 5400\n"), "t.profile:13:",
		       "duplicate key 'rpm' (first set on line 5)");
}

Test(profile, rejects_a_line_without_an_equals_sign)
{
	expect_invalid(hdd_with("rpm 7200\n"), "t.profile:13:", "'rpm 7200'");
	expect_invalid("type = hdd\njust words\n", "t.profile:2:",
		       "just words");
}

Test(profile, rejects_values_that_are_not_entirely_numbers)
{
	static const char *const bad[] = {
		"cylinders = 12abc",  "cylinders = 1.5",  "cylinders = -5",
		"cylinders = +5",     "cylinders = 0x10", "cylinders = 1 000",
		"cylinders =",	      "rpm = 72OO",	  "rpm = nan",
		"rpm = inf",	      "rpm = 0x1p4",	  "rpm = 7200rpm",
		"rpm = 1e999",	      "settle_us = fast", "depth = two",
		"capacity_bytes = 1Q", "capacity_bytes = 1KB",
		"capacity_bytes = K", "cylinders = 99999999999999999999",
		"capacity_bytes = 17179869184T",
	};
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		const char *key_end = strchr(bad[i], ' ');
		char key[32];
		size_t skip;
		char text[4096];

		snprintf(key, sizeof(key), "%.*s",
			 (int)(key_end - bad[i]), bad[i]);
		/* Replace the key's own line, if the base has it. */
		for (skip = 1; skip <= NELEM(hdd_lines); skip++)
			if (!strncmp(hdd_lines[skip - 1], key, strlen(key)) &&
			    hdd_lines[skip - 1][strlen(key)] == ' ')
				break;
		snprintf(text, sizeof(text), "%s",
			 join(hdd_lines, NELEM(hdd_lines), skip, bad[i]));
		expect_invalid(text, "t.profile:", key);
	}
}

Test(profile, names_the_value_it_rejects)
{
	expect_invalid(join(hdd_lines, NELEM(hdd_lines), 5, "rpm = 72OO\n"),
		       "t.profile:12:", "rpm = '72OO'");
}

Test(profile, rejects_non_positive_values_where_positive_is_needed)
{
	static const char *const bad[] = {
		"capacity_bytes = 0", "cylinders = 0",	     "rpm = 0",
		"rpm = -7200",	      "media_outer_MBps = 0", "bus_MBps = -1",
		"seek_accel = 0",     "seek_vmax = -3",	     "depth = 0",
		"overhead_us = -1",   "settle_us = -0.5",
	};
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		char key[32], text[4096];
		size_t skip;

		snprintf(key, sizeof(key), "%.*s",
			 (int)(strchr(bad[i], ' ') - bad[i]), bad[i]);
		for (skip = 1; skip <= NELEM(hdd_lines); skip++)
			if (!strncmp(hdd_lines[skip - 1], key, strlen(key)) &&
			    hdd_lines[skip - 1][strlen(key)] == ' ')
				break;
		snprintf(text, sizeof(text), "%s",
			 join(hdd_lines, NELEM(hdd_lines), skip, bad[i]));
		expect_invalid(text, key, "must ");
	}
	expect_invalid(ssd_with("parallelism = 0\n"), "t.profile:8:",
		       "parallelism = '0': must be positive");
}

Test(profile, rejects_inner_media_rate_above_outer)
{
	/* media_inner_MBps is line 7; replaced, it moves to the end (12). */
	expect_invalid(join(hdd_lines, NELEM(hdd_lines), 7,
			    "media_inner_MBps = 90\n"),
		       "t.profile:12:", "media_inner_MBps = 90 exceeds");
}

Test(profile, rejects_disk_keys_in_an_ssd_profile)
{
	expect_invalid(ssd_with("rpm = 7200\n"), "t.profile:8:",
		       "key 'rpm' does not apply to type ssd");
}

Test(profile, rejects_ssd_keys_in_a_disk_profile)
{
	expect_invalid(hdd_with("read_MBps = 100\n"), "t.profile:13:",
		       "key 'read_MBps' does not apply to type hdd");
	expect_invalid(hdd_with("parallelism = 2\n"), "t.profile:13:",
		       "'parallelism'");
}

Test(profile, rejects_a_disk_profile_missing_any_required_key)
{
	size_t skip;

	for (skip = 2; skip <= NELEM(hdd_lines); skip++) {
		char key[32];

		snprintf(key, sizeof(key), "'%.*s'",
			 (int)strcspn(hdd_lines[skip - 1], " "),
			 hdd_lines[skip - 1]);
		/* Reported where the text ends: 11 lines remain. */
		expect_invalid(join(hdd_lines, NELEM(hdd_lines), skip, NULL),
			       "t.profile:11: missing required key", key);
	}
}

Test(profile, rejects_an_ssd_profile_missing_any_required_key)
{
	size_t skip;

	for (skip = 2; skip <= NELEM(ssd_lines); skip++) {
		char key[32];

		snprintf(key, sizeof(key), "'%.*s' for type ssd",
			 (int)strcspn(ssd_lines[skip - 1], " "),
			 ssd_lines[skip - 1]);
		expect_invalid(join(ssd_lines, NELEM(ssd_lines), skip, NULL),
			       "missing required key", key);
	}
}

Test(profile, rejects_a_profile_without_a_type)
{
	expect_invalid(join(hdd_lines, NELEM(hdd_lines), 1, NULL),
		       "t.profile:", "missing required key 'type'");
	expect_invalid("", "t.profile:", "'type'");
	expect_invalid("type = tape\n", "t.profile:1:", "type = 'tape'");
}

Test(profile, rejects_unusable_names)
{
	expect_invalid(hdd_with("name =\n"), "t.profile:13:", "name");
	expect_invalid(hdd_with("name = "
				"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
		       "t.profile:13:", "longer than 63");
	expect_invalid(hdd_with("name = a\"b\n"), "t.profile:13:", "quote");
}

Test(profile, rejects_nul_bytes_in_the_text)
{
	static const char text[] = "type = ssd\ncapacity_bytes = 1\0000\n";
	struct iosched_model *m = NULL;

	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_parse(&m, text, sizeof(text) - 1, "t",
					 &cap_log),
		     -EINVAL);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, "t:2: NUL"), "%s", cap.last);
}

Test(profile, logs_nothing_without_a_hook)
{
	struct iosched_model *m = NULL;
	const char *t = "bogus\n";

	cr_assert_eq(iosched_model_parse(&m, t, strlen(t), "t", NULL), -EINVAL);
	cr_assert_null(m);
}

/* ------------------------------------------------------------------ */
/* Loading and lookup                                                  */
/* ------------------------------------------------------------------ */

/* Every shipped profile loads by name, silently, from wherever the
 * environment now says (or, with none, from the copies built in). */
static void expect_shipped_by_name(void)
{
	static const char *const names[] = { "hdd-7200", "ssd-sata", "nvme" };

	for (size_t i = 0; i < NELEM(names); i++) {
		struct iosched_model *m = NULL;

		memset(&cap, 0, sizeof(cap));
		cr_assert_eq(iosched_model_load(&m, names[i], &cap_log), 0,
			     "%s: %s", names[i], cap.last);
		cr_assert_str_eq(iosched_model_name(m), names[i]);
		cr_assert_eq(cap.lines, 0);
		iosched_model_free(m);
	}
}

Test(profile, loads_every_shipped_profile_by_name)
{
	cr_assert_eq(setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1),
		     0);
	expect_shipped_by_name();
}

Test(profile, knows_the_shipped_profiles_with_no_directory_at_all)
{
	/* no $IOSCHED_PROFILE_DIR, and nothing installed (or the same
	 * files): the compiled-in copies answer */
	cr_assert_eq(unsetenv("IOSCHED_PROFILE_DIR"), 0);
	expect_shipped_by_name();
}

Test(profile, built_in_profiles_equal_the_shipped_files)
{
	size_t n = 0;

	for (const struct iosched__builtin_profile *b =
		     iosched__builtin_profiles;
	     b->name; b++, n++) {
		char path[512];
		char *text;
		size_t len;

		snprintf(path, sizeof(path), "%s/%s.profile",
			 IOSCHED_TEST_PROFILE_DIR, b->name);
		text = read_whole(path, &len);
		cr_assert_not_null(text, "%s", path);
		cr_assert_eq(len, strlen(b->text), "%s", b->name);
		cr_assert(memcmp(text, b->text, len) == 0, "%s", b->name);
		free(text);
	}
	cr_assert_eq(n, 3); /* hdd-7200, ssd-sata, nvme */
}

Test(profile, loads_shipped_profiles_by_path)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(iosched_model_load(&m,
					IOSCHED_TEST_PROFILE_DIR "/nvme.profile",
					NULL),
		     0);
	cr_assert_str_eq(iosched_model_name(m), "nvme");
	iosched_model_free(m);
}

Test(profile, prefers_the_profile_dir_from_the_environment,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	const char *t = ssd_with("name = shadow\n");
	struct iosched_model *m = NULL;

	write_file("hdd-7200.profile", t, strlen(t));
	cr_assert_eq(setenv("IOSCHED_PROFILE_DIR", tmpdir, 1), 0);
	cr_assert_eq(iosched_model_load(&m, "hdd-7200", NULL), 0);
	cr_assert_str_eq(iosched_model_name(m), "shadow");
	iosched_model_free(m);
}

Test(profile, reports_enoent_and_the_places_searched)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1),
		     0);
	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, "no-such-disk", &cap_log), -ENOENT);
	cr_assert_null(m);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, "'no-such-disk'"), "%s", cap.last);
	cr_assert(strstr(cap.last, IOSCHED_TEST_PROFILE_DIR
			 "/no-such-disk.profile"),
		  "%s", cap.last);
	cr_assert(strstr(cap.last, IOSCHED_PROFILE_DIR_DEFAULT
			 "/no-such-disk.profile"),
		  "%s", cap.last);
	cr_assert(strstr(cap.last, "built-in hdd-7200, ssd-sata, nvme"), "%s",
		  cap.last);
}

Test(profile, searches_only_the_installed_dir_without_the_environment)
{
	struct iosched_model *m = NULL;

	cr_assert_eq(unsetenv("IOSCHED_PROFILE_DIR"), 0);
	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, "no-such-disk", &cap_log), -ENOENT);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, IOSCHED_PROFILE_DIR_DEFAULT), "%s",
		  cap.last);
	cr_assert_null(strstr(cap.last, IOSCHED_TEST_PROFILE_DIR), "%s",
		       cap.last);
}

Test(profile, reports_enoent_for_a_missing_path)
{
	struct iosched_model *m = NULL;

	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, "/nonexistent/dir/x", &cap_log),
		     -ENOENT);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, "/nonexistent/dir/x"), "%s", cap.last);
}

Test(profile, treats_a_name_ending_in_profile_as_a_relative_path,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	const char *t = ssd_with(NULL);
	struct iosched_model *m = NULL;

	write_file("x.profile", t, strlen(t));
	/* Not found in the profile dir: only the cwd can satisfy it. */
	cr_assert_eq(setenv("IOSCHED_PROFILE_DIR", IOSCHED_TEST_PROFILE_DIR, 1),
		     0);
	cr_assert_eq(chdir(tmpdir), 0);
	cr_assert_eq(iosched_model_load(&m, "x.profile", NULL), 0);
	cr_assert_str_eq(iosched_model_name(m), "x");
	iosched_model_free(m);
}

Test(profile, names_a_loaded_profile_after_its_file,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	const char *t = hdd_with(NULL);
	char path[512];
	struct iosched_model *m = NULL;

	write_file("mydisk.profile", t, strlen(t));
	snprintf(path, sizeof(path), "%s/mydisk.profile", tmpdir);
	cr_assert_eq(iosched_model_load(&m, path, NULL), 0);
	cr_assert_str_eq(iosched_model_name(m), "mydisk");
	iosched_model_free(m);
}

Test(profile, names_the_file_and_line_of_a_loaded_defect,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	const char *t = hdd_with("rpm = 5400\n");
	char path[512], where[600];
	struct iosched_model *m = NULL;

	write_file("mydisk.profile", t, strlen(t));
	snprintf(path, sizeof(path), "%s/mydisk.profile", tmpdir);
	snprintf(where, sizeof(where), "%s:13: duplicate key 'rpm'", path);
	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, path, &cap_log), -EINVAL);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, where), "%s", cap.last);
}

/* A valid profile padded with a comment to exactly @size bytes. */
static char *padded(size_t size)
{
	const char *t = ssd_with(NULL);
	size_t n = strlen(t);
	char *buf = malloc(size);

	cr_assert_not_null(buf);
	memcpy(buf, t, n);
	buf[n] = '#';
	memset(buf + n + 1, 'x', size - n - 2);
	buf[size - 1] = '\n';
	return buf;
}

Test(profile, accepts_a_file_of_exactly_64_kib,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	char *buf = padded(64 * 1024);
	char path[512];
	struct iosched_model *m = NULL;

	write_file("edge.profile", buf, 64 * 1024);
	free(buf);
	snprintf(path, sizeof(path), "%s/edge.profile", tmpdir);
	cr_assert_eq(iosched_model_load(&m, path, NULL), 0);
	iosched_model_free(m);
}

Test(profile, rejects_a_file_over_64_kib,
     .init = mk_tmpdir, .fini = rm_tmpdir)
{
	char *buf = padded(64 * 1024 + 1);
	char path[512];
	struct iosched_model *m = NULL;

	write_file("big.profile", buf, 64 * 1024 + 1);
	free(buf);
	snprintf(path, sizeof(path), "%s/big.profile", tmpdir);
	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, path, &cap_log), -EINVAL);
	cr_assert_null(m);
	cr_assert_eq(cap.lines, 1);
	cr_assert(strstr(cap.last, "big.profile"), "%s", cap.last);
}

Test(profile, rejects_an_empty_name)
{
	struct iosched_model *m = NULL;

	memset(&cap, 0, sizeof(cap));
	cr_assert_eq(iosched_model_load(&m, "", &cap_log), -EINVAL);
	cr_assert_eq(cap.lines, 1);
}
