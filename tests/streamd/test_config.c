/*
 * Tests for sd_config.c: the defaults the contract promises and that they
 * pass sd_knobs_check; every value type parsed strictly (suffixes, junk,
 * overflow, strings that do not fit); the config file's syntax (quoting,
 * comments, whitespace) and its PATH:LINE errors; the cross-field rules;
 * the admin JSON's exact shape, its round trip, and rejected updates that
 * leave the output untouched; and the key list --help prints.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamd-int.h"

#define MS 1000000ull

static const char *const all_keys[] = {
	"listen",	 "data_dir",	   "djmfs",	     "volume",
	"volume_size",	 "access_log",	   "error_log",	     "log_level",
	"publish_token", "admin_token",	   "max_connections", "probe_size",
	"publish_interval", "write_size",  "write_deadline", "idle_timeout",
	"max_connections_per_ip", "header_timeout", "max_header_size",
	"admin_listen",	 "play_secret",	   "djmfs_secret_file", "djmfs_salvage",
	"hls_live_window", "cache_size", "inject_latency",
	"inject_open_latency", "inject_eio",
	"A",		 "B",		   "period",	     "read_size",
	"buffer_size",	 "deadline",	   "policy",	     "depth",
	"profile",	 "burst",	   "cors_origins",   "admission",
	"admission_ceiling", "max_bandwidth", "retention", "retention_bytes",
	"volume_reserve", "retention_overrides", "clip_max_duration",
};
#define N_KEYS (sizeof(all_keys) / sizeof(all_keys[0]))

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/streamd-config-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

/* Writes @text to a file in tmpdir; returns its path (static buffer). */
static const char *write_conf(const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/streamd.conf", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static struct sd_config cfg;
static char err[512];

static int set(const char *key, const char *value)
{
	err[0] = '\0';
	return sd_config_set(&cfg, key, value, err, sizeof(err));
}

static void init(void)
{
	sd_config_defaults(&cfg);
}

TestSuite(config, .init = init);

Test(config, defaults_match_the_contract_and_pass_the_check)
{
	const struct sd_knobs *k = &cfg.knobs;

	cr_expect_str_eq(cfg.listen, "127.0.0.1:8080");
	cr_expect_str_eq(cfg.data_dir, "./streamd-data");
	cr_expect_str_eq(cfg.djmfs, "");
	cr_expect_str_eq(cfg.volume, "");
	cr_expect_eq(cfg.volume_size, 8ull << 30);
	cr_expect_str_eq(cfg.access_log, "");
	cr_expect_str_eq(cfg.error_log, "-");
	cr_expect_str_eq(cfg.log_level, "info");
	cr_expect_str_eq(cfg.publish_token, "");
	cr_expect_str_eq(cfg.admin_token, "");
	cr_expect_eq(cfg.max_connections, 1024);
	cr_expect_eq(cfg.probe_size, 1u << 20);
	cr_expect_eq(cfg.publish_ns, 500 * MS);
	cr_expect_eq(cfg.write_size, 65536);
	cr_expect_eq(cfg.write_deadline_ns, 1000 * MS);
	cr_expect_eq(cfg.idle_timeout_ns, 60 * SD_NS);
	cr_expect_eq(k->a_pct, 80);
	cr_expect_eq(k->b_pct, 30);
	cr_expect_eq(k->period_ns, 300 * MS);
	cr_expect_eq(k->read_size, 65536);
	cr_expect_eq(k->buffer_size, 1u << 20);
	cr_expect_eq(k->deadline_ns, 0);
	cr_expect_str_eq(k->policy, "edf");
	cr_expect_eq(k->depth, 0);
	cr_expect_str_eq(k->profile, "ssd-sata");
	cr_expect_str_eq(k->admission, "on");
	cr_expect_eq(k->admission_ceiling, 0.85);
	cr_expect_eq(k->max_bandwidth, 0);
	cr_expect_eq(sd_knobs_check(k, err, sizeof(err)), 0, "%s", err);
}

Test(config, parses_every_type)
{
	cr_assert_eq(set("listen", "[::1]:0"), 0, "%s", err);
	cr_expect_str_eq(cfg.listen, "[::1]:0");
	cr_assert_eq(set("log_level", "debug"), 0, "%s", err);
	cr_expect_str_eq(cfg.log_level, "debug");
	cr_assert_eq(set("policy", "edf"), 0, "%s", err);
	cr_expect_str_eq(cfg.knobs.policy, "edf");
	cr_assert_eq(set("max_connections", "17"), 0, "%s", err);
	cr_expect_eq(cfg.max_connections, 17);
	cr_assert_eq(set("depth", "0"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.depth, 0);
	cr_assert_eq(set("read_size", "131072"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.read_size, 131072);
	cr_assert_eq(set("A", "75.5"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.a_pct, 75.5);
	cr_assert_eq(set("B", "20%"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.b_pct, 20);
	cr_assert_eq(set("access_log", ""), 0, "%s", err);
	cr_expect_str_eq(cfg.access_log, "");
}

Test(config, admission_knobs_take_fractions_and_bit_rates)
{
	cr_assert_eq(set("admission", "off"), 0, "%s", err);
	cr_expect_str_eq(cfg.knobs.admission, "off");
	cr_expect_eq(set("admission", "maybe"), -EINVAL);
	cr_assert_eq(set("admission_ceiling", "0.5"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.admission_ceiling, 0.5);
	cr_assert_eq(set("admission_ceiling", "0"), 0, "%s", err);
	cr_assert_eq(set("admission_ceiling", "1"), 0, "%s", err);
	cr_expect_eq(set("admission_ceiling", "1.01"), -EINVAL);
	cr_expect_eq(set("admission_ceiling", "85%"), -EINVAL);
	cr_expect_eq(set("admission_ceiling", "-0.1"), -EINVAL);
	cr_assert_eq(set("max_bandwidth", "2M"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.max_bandwidth, 2000000);
	cr_assert_eq(set("max-bandwidth", "1.5G"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.max_bandwidth, 1500000000);
	cr_assert_eq(set("max_bandwidth", "750k"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.max_bandwidth, 750000);
	cr_assert_eq(set("max_bandwidth", "123"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.max_bandwidth, 123);
	cr_expect_eq(set("max_bandwidth", "2MiB"), -EINVAL);
	cr_expect_eq(set("max_bandwidth", "1.5"), -EINVAL, "no half bits");
	cr_expect_eq(set("max_bandwidth", "20000000000T"), -EINVAL);
	cr_expect_eq(set("max_bandwidth", "M"), -EINVAL);
}

Test(config, retention_takes_days_hours_minutes_and_overrides)
{
	struct sd_retain_rules r;

	cr_assert_eq(set("retention", "7d"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.retention_ns, 7ull * 86400 * SD_NS);
	cr_assert_eq(set("retention", "36h"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.retention_ns, 36ull * 3600 * SD_NS);
	cr_assert_eq(set("retention", "2.5m"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.retention_ns, 150ull * SD_NS);
	cr_expect_eq(set("retention", "2w"), -EINVAL);
	cr_assert_eq(set("retention_bytes", "10G"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.retention_bytes, 10ull << 30);
	cr_assert_eq(set("volume_reserve", "10"), 0, "%s", err);
	cr_expect_eq(set("volume_reserve", "60"), 0, "the check comes after");
	cr_expect_neq(sd_knobs_check(&cfg.knobs, err, sizeof(err)), 0);
	cr_expect(strstr(err, "volume_reserve"), "%s", err);
	cr_assert_eq(set("volume_reserve", "5%"), 0, "%s", err);
	cr_assert_eq(set("retention_overrides",
			 "cam1 retention=2m; cam2 retention=1d "
			 "retention_bytes=1G\ncam3 retention_bytes=0"), 0, "%s",
		     err);
	cr_assert_eq(sd_knobs_check(&cfg.knobs, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(sd_retention_rules(&cfg.knobs, "cam1", &r, NULL, 0), 0);
	cr_expect_eq(r.retention_ns, 120 * SD_NS);
	cr_expect_eq(r.retention_bytes, 10ull << 30, "the key's, not overridden");
	cr_assert_eq(sd_retention_rules(&cfg.knobs, "cam2", &r, NULL, 0), 0);
	cr_expect_eq(r.retention_ns, 86400 * SD_NS);
	cr_expect_eq(r.retention_bytes, 1ull << 30);
	cr_assert_eq(sd_retention_rules(&cfg.knobs, "cam3", &r, NULL, 0), 0);
	cr_expect_eq(r.retention_ns, 150 * SD_NS);
	cr_expect_eq(r.retention_bytes, 0);
	cr_assert_eq(sd_retention_rules(&cfg.knobs, "other", &r, NULL, 0), 0);
	cr_expect_eq(r.retention_ns, 150 * SD_NS);
	const char *bad[] = { "cam1", "cam1 retention", "cam1 retention=x",
			      "cam1 keep=2m", "../x retention=1m",
			      "cam1 retention=1m;cam2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(set("retention_overrides", bad[i]), 0);
		cr_expect_neq(sd_knobs_check(&cfg.knobs, err, sizeof(err)), 0,
			      "%s accepted", bad[i]);
		cr_expect(strstr(err, "retention_overrides"), "%s", err);
	}
}

Test(config, sizes_take_binary_suffixes)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {
		{ "16777216", 16 << 20 }, { "64M", 64 << 20 },
		{ "64MiB", 64 << 20 }, { "30M", 30 << 20 },
		{ "30MiB", 30 << 20 }, { "2G", 2ull << 30 },
		{ "2GiB", 2ull << 30 }, { "1T", 1ull << 40 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(set("volume_size", cases[i].text), 0, "%s: %s",
			     cases[i].text, err);
		cr_expect_eq(cfg.volume_size, cases[i].bytes, "%s",
			     cases[i].text);
	}
	cr_assert_eq(set("buffer_size", "2MiB"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.buffer_size, 2u << 20);
	cr_assert_eq(set("write_size", "48K"), 0, "%s", err);
	cr_expect_eq(cfg.write_size, 48 << 10);
	cr_assert_eq(set("write_size", "128KiB"), 0, "%s", err);
	cr_expect_eq(cfg.write_size, 128 << 10);
}

Test(config, durations_are_exact_seconds_or_milliseconds)
{
	static const struct {
		const char *text;
		uint64_t ns;
	} cases[] = {
		{ "0.3", 300 * MS },	 { "0.3s", 300 * MS },
		{ "300ms", 300 * MS },	 { "2", 2 * SD_NS },
		{ "1.5ms", 1500000 },	 { "0.123456789", 123456789 },
		{ "0", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(set("deadline", cases[i].text), 0, "%s: %s",
			     cases[i].text, err);
		cr_expect_eq(cfg.knobs.deadline_ns, cases[i].ns, "%s",
			     cases[i].text);
	}
	cr_assert_eq(set("publish_interval", "250ms"), 0, "%s", err);
	cr_expect_eq(cfg.publish_ns, 250 * MS);
}

/* Each key gets junk; the field keeps its value and the message names
 * the key. */
Test(config, rejects_junk_in_every_type)
{
	static const struct {
		const char *key, *value;
	} cases[] = {
		{ "max_connections", "12x" },
		{ "max_connections", "" },
		{ "max_connections", " 12" },
		{ "max_connections", "-1" },
		{ "max_connections", "+5" },
		{ "max_connections", "0x10" },
		{ "max_connections", "0" },	      /* below its minimum */
		{ "max_connections", "4294967296" }, /* beyond unsigned */
		{ "depth", "1.5" },
		{ "volume_size", "8 GiB" },
		{ "volume_size", "8GB" },
		{ "volume_size", "8k" },
		{ "volume_size", "G" },
		{ "volume_size", "99999999999999999999" },
		{ "volume_size", "17179869184T" },   /* overflows 64 bits */
		{ "read_size", "4G" },		      /* beyond 32 bits */
		{ "period", "1." },
		{ "period", "0.1234567891" },	      /* would be rounded */
		{ "period", ".5" },
		{ "period", "-1" },
		{ "period", "1min" },
		{ "period", "1e3" },
		{ "period", "0.3 s" },
		{ "period", "99999999999999999999" },
		{ "idle_timeout", "0" },	      /* below its minimum */
		{ "A", "101" },
		{ "A", "-5" },
		{ "A", "nan" },
		{ "A", "inf" },
		{ "A", "1e999" },
		{ "A", "0x10" },
		{ "A", " 50" },
		{ "A", ".5" },
		{ "A", "50%%" },
		{ "log_level", "verbose" },
		{ "log_level", "" },
		{ "policy", "lifo" },
		{ "policy", "glm" },
		{ "policy", "fifo,edf" },
	};
	struct sd_config before;
	size_t i;

	before = cfg;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect_eq(set(cases[i].key, cases[i].value), -EINVAL,
			     "%s = '%s' accepted", cases[i].key,
			     cases[i].value);
		cr_expect_not_null(strstr(err, cases[i].key), "%s: %s",
				   cases[i].key, err);
		cr_expect_eq(memcmp(&before, &cfg, sizeof(cfg)), 0,
			     "%s = '%s' changed the config", cases[i].key,
			     cases[i].value);
	}
}

Test(config, strings_that_do_not_fit_are_errors_not_truncated)
{
	char v[200];

	memset(v, 'a', sizeof(v));
	v[127] = '\0'; /* 127 bytes: fits listen[128] */
	cr_assert_eq(set("listen", v), 0, "%s", err);
	cr_expect_str_eq(cfg.listen, v);
	v[127] = 'a';
	v[128] = '\0';
	cr_expect_eq(set("listen", v), -EINVAL);
	cr_expect_not_null(strstr(err, "listen"), "%s", err);
	cr_expect_eq(strlen(cfg.listen), 127);
	memset(v, 'p', 16);
	v[16] = '\0';
	cr_expect_eq(set("policy", v), -EINVAL);
	cr_expect_str_eq(cfg.knobs.policy, "edf");
}

Test(config, unknown_keys_are_enoent)
{
	cr_expect_eq(set("listne", "x"), -ENOENT);
	cr_expect_str_eq(err, "unknown key 'listne'");
	cr_expect_eq(set("a", "50"), -ENOENT);
	cr_expect_eq(set("", "x"), -ENOENT);
	cr_expect_eq(set("a_very_long_key_that_is_not_in_the_table", "1"),
		     -ENOENT);
}

Test(config, flag_spelling_with_dashes_names_the_same_key)
{
	cr_assert_eq(set("read-size", "128K"), 0, "%s", err);
	cr_expect_eq(cfg.knobs.read_size, 128 << 10);
	cr_assert_eq(set("data-dir", "/srv/streamd"), 0, "%s", err);
	cr_expect_str_eq(cfg.data_dir, "/srv/streamd");
}

Test(config, file_takes_quotes_comments_and_spacing)
{
	const char *path;
	int rc;

	make_tmpdir();
	path = write_conf("# streamd configuration\n"
			  "\n"
			  "   listen=0.0.0.0:9000   \n"
			  "data_dir = \"/srv/my streams\"  # quoted: spaces\n"
			  "publish_token = \"a#b \\\"c\\\" \\\\\"\n"
			  "\tread_size\t=\t128KiB # a comment\r\n"
			  "buffer_size = 4M\n"
			  "error_log = /var/log/streamd error.log\n"
			  "admin_token = \"\"\n"
			  "period = 250ms\n"
			  "policy = scan-edf");
	rc = sd_config_load(&cfg, path, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_expect_str_eq(cfg.listen, "0.0.0.0:9000");
	cr_expect_str_eq(cfg.data_dir, "/srv/my streams");
	cr_expect_str_eq(cfg.publish_token, "a#b \"c\" \\");
	cr_expect_eq(cfg.knobs.read_size, 128 << 10);
	cr_expect_eq(cfg.knobs.buffer_size, 4 << 20);
	cr_expect_str_eq(cfg.error_log, "/var/log/streamd error.log");
	cr_expect_str_eq(cfg.admin_token, "");
	cr_expect_eq(cfg.knobs.period_ns, 250 * MS);
	cr_expect_str_eq(cfg.knobs.policy, "scan-edf");
	remove_tmpdir();
}

Test(config, file_errors_carry_path_and_line)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ "listen = x\n\nfoo = 1\n", "3: unknown key 'foo'" },
		{ "# ok\nlisten x\n", "2: expected 'key = value'" },
		{ "= 5\n", "1: expected 'key = value'" },
		{ "read-size = 64K\n", "1: unknown key 'read-size'" },
		{ "a b = 5\n", "1: expected 'key = value'" },
		{ "listen = \"x\n", "1: unterminated quoted value" },
		{ "listen = \"x\" y\n", "1: junk after the closing quote" },
		{ "\n\n\n\nA = lots\n", "5: A: 'lots' is not" },
		{ "listen = \"x\"\"\n", "1: junk after the closing quote" },
	};
	char want[256];
	const char *path;
	size_t i;

	make_tmpdir();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sd_config_defaults(&cfg);
		path = write_conf(cases[i].text);
		snprintf(want, sizeof(want), "%s:%s", path, cases[i].why);
		cr_expect_eq(sd_config_load(&cfg, path, err, sizeof(err)),
			     -EINVAL, "case %zu", i);
		cr_expect_eq(strncmp(err, want, strlen(want)), 0,
			     "got '%s', want '%s...'", err, want);
	}
	remove_tmpdir();
}

Test(config, file_with_a_nul_byte_is_rejected)
{
	char path[128];
	FILE *f;

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fwrite("depth = 1\nlisten = a\0b\n", 1, 24, f);
	fclose(f);
	cr_expect_eq(sd_config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, ":2: "), "%s", err);
	remove_tmpdir();
}

Test(config, missing_file_is_enoent)
{
	cr_expect_eq(sd_config_load(&cfg, "/nonexistent/streamd.conf", err,
				    sizeof(err)),
		     -ENOENT);
	cr_expect_not_null(strstr(err, "/nonexistent/streamd.conf"), "%s",
			   err);
}

Test(config, file_is_checked_as_a_whole_after_loading)
{
	const char *path;

	make_tmpdir();
	path = write_conf("A = 50\nB = 60\n");
	cr_expect_eq(sd_config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, path), "%s", err);
	cr_expect_not_null(strstr(err, "B (60)"), "%s", err);
	remove_tmpdir();
}

static void break_a(struct sd_knobs *k) { k->a_pct = 101; }
static void break_a_zero(struct sd_knobs *k) { k->a_pct = 0; k->b_pct = 0; }
static void break_b_zero(struct sd_knobs *k) { k->b_pct = 0; }
static void break_b_eq_a(struct sd_knobs *k) { k->b_pct = k->a_pct; }
static void break_period_short(struct sd_knobs *k) { k->period_ns = 9 * MS; }
static void break_period_long(struct sd_knobs *k)
{
	k->period_ns = 10 * SD_NS + 1;
}
static void break_deadline(struct sd_knobs *k) { k->deadline_ns = 1; }
static void break_deadline_long(struct sd_knobs *k)
{
	k->deadline_ns = 61 * SD_NS;
}
static void break_read_small(struct sd_knobs *k) { k->read_size = 0; }
static void break_read_odd(struct sd_knobs *k) { k->read_size = 65537; }
static void break_read_big(struct sd_knobs *k)
{
	k->read_size = (16u << 20) + 4096;
	k->buffer_size = 64u << 20;
}
static void break_buf_small(struct sd_knobs *k)
{
	k->buffer_size = k->read_size;
}
static void break_buf_odd(struct sd_knobs *k) { k->buffer_size += 512; }
static void break_buf_big(struct sd_knobs *k)
{
	k->buffer_size = (256u << 20) + 4096;
}
static void break_depth(struct sd_knobs *k) { k->depth = 257; }
static void break_profile(struct sd_knobs *k) { k->profile[0] = '\0'; }
static void break_policy(struct sd_knobs *k) { strcpy(k->policy, "lifo"); }

Test(config, knobs_check_enforces_each_rule)
{
	static void (*const breaks[])(struct sd_knobs *) = {
		break_a,	  break_a_zero,	       break_b_zero,
		break_b_eq_a,	  break_period_short,  break_period_long,
		break_deadline,	  break_deadline_long, break_read_small,
		break_read_odd,	  break_read_big,      break_buf_small,
		break_buf_odd,	  break_buf_big,       break_depth,
		break_profile,	  break_policy,
	};
	struct sd_knobs k;
	size_t i;

	for (i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		k = cfg.knobs;
		breaks[i](&k);
		err[0] = '\0';
		cr_expect_eq(sd_knobs_check(&k, err, sizeof(err)), -EINVAL,
			     "rule %zu not enforced", i);
		cr_expect_neq(err[0], '\0', "rule %zu: no message", i);
	}
	k = cfg.knobs;
	k.read_size = 4096;
	k.buffer_size = 8192;
	k.depth = 256;
	k.deadline_ns = 60 * SD_NS;
	k.period_ns = 10 * MS;
	k.b_pct = 99.5;
	k.a_pct = 100;
	cr_expect_eq(sd_knobs_check(&k, err, sizeof(err)), 0, "%s", err);
}

/* Sets cors_origins to @v and runs the check; the message in err. */
static int cors_check(const char *v)
{
	struct sd_knobs k = cfg.knobs;

	snprintf(k.cors_origins, sizeof(k.cors_origins), "%s", v);
	err[0] = '\0';
	return sd_knobs_check(&k, err, sizeof(err));
}

Test(config, cors_origins_takes_none_any_or_a_list_of_origins)
{
	static const char *const good[] = {
		"",
		"*",
		"http://127.0.0.1:8000",
		"https://a.example",
		"http://127.0.0.1:8000,https://a.example",
		"http://a.example:8080, https://b.example , http://[::1]:9000",
		"HTTPS://Player.Example:8443",
		"http://localhost:1,http://localhost:65535",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect_eq(cors_check(good[i]), 0, "'%s': %s", good[i], err);
}

Test(config, cors_origins_refuses_what_is_not_an_origin)
{
	static const struct {
		const char *value;
		const char *says; /* in the message */
	} bad[] = {
		{ "a.example", "scheme" },
		{ "ftp://a.example", "scheme" },
		{ "//a.example", "scheme" },
		{ "http://", "no host" },
		{ "http://:8000", "no host" },
		{ "http://a.example/", "trailing /" },
		{ "https://a.example/player", "no path" },
		{ "http://a.example:0", "port" },
		{ "http://a.example:65536", "port" },
		{ "http://a.example:08000", "port" },
		{ "http://a.example:", "port" },
		{ "http://a.example:80", "default port" },
		{ "https://a.example:443", "default port" },
		{ "http://user@a.example", "only scheme://host[:port]" },
		{ "http://a.example?x=1", "only scheme://host[:port]" },
		{ "http://a b.example", "only scheme://host[:port]" },
		{ "http://[::1", "IPv6" },
		{ "http://a.example,", "empty item" },
		{ ",http://a.example", "empty item" },
		{ "http://a.example,,https://b.example", "empty item" },
		{ "http://a.example,*", "stands alone" },
		{ "**", "scheme" },
		{ "null", "scheme" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(cors_check(bad[i].value), -EINVAL, "'%s' passed",
			     bad[i].value);
		cr_expect_not_null(strstr(err, "cors_origins"), "'%s': %s",
				   bad[i].value, err);
		cr_expect_not_null(strstr(err, bad[i].says), "'%s': %s",
				   bad[i].value, err);
	}
}

Test(config, cors_origins_is_checked_in_files_and_json)
{
	const char *json = "{\"cors_origins\":\"http://a:99999\"}";
	struct sd_knobs out;
	const char *path;

	cr_expect_eq(sd_config_set(&cfg, "cors_origins", "http://a.example/",
				   err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(sd_knobs_check(&cfg.knobs, err, sizeof(err)), -EINVAL);
	cr_expect_eq(sd_knobs_from_json(&cfg.knobs, json, strlen(json), &out,
					err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "port"), "%s", err);
	make_tmpdir();
	path = write_conf("cors_origins = https://a.example/x\n");
	cr_expect_eq(sd_config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "cors_origins"), "%s", err);
	remove_tmpdir();
}

Test(config, knobs_json_has_exactly_the_admin_keys)
{
	char *txt = sd_knobs_to_json(&cfg.knobs);

	cr_assert_not_null(txt);
	cr_expect_str_eq(txt, "{\"A\":80,\"B\":30,\"period\":0.3,"
			      "\"read_size\":65536,\"buffer_size\":1048576,"
			      "\"deadline\":0.0,\"policy\":\"edf\","
			      "\"depth\":0,\"profile\":\"ssd-sata\","
			      "\"burst\":5.0,\"cors_origins\":\"\","
			      "\"admission\":\"on\","
			      "\"admission_ceiling\":0.85,"
			      "\"max_bandwidth\":0,\"retention\":0.0,"
			      "\"retention_bytes\":0,\"volume_reserve\":5,"
			      "\"retention_overrides\":\"\","
			      "\"clip_max_duration\":3600.0}");
	free(txt);
}

static void expect_knobs_eq(const struct sd_knobs *a, const struct sd_knobs *b)
{
	cr_expect_eq(a->a_pct, b->a_pct);
	cr_expect_eq(a->b_pct, b->b_pct);
	cr_expect_eq(a->period_ns, b->period_ns);
	cr_expect_eq(a->read_size, b->read_size);
	cr_expect_eq(a->buffer_size, b->buffer_size);
	cr_expect_eq(a->deadline_ns, b->deadline_ns);
	cr_expect_str_eq(a->policy, b->policy);
	cr_expect_eq(a->depth, b->depth);
	cr_expect_str_eq(a->profile, b->profile);
	cr_expect_eq(a->burst_ns, b->burst_ns);
	cr_expect_str_eq(a->cors_origins, b->cors_origins);
	cr_expect_str_eq(a->admission, b->admission);
	cr_expect_eq(a->admission_ceiling, b->admission_ceiling);
	cr_expect_eq(a->max_bandwidth, b->max_bandwidth);
	cr_expect_eq(a->retention_ns, b->retention_ns);
	cr_expect_eq(a->retention_bytes, b->retention_bytes);
	cr_expect_eq(a->volume_reserve, b->volume_reserve);
	cr_expect_str_eq(a->retention_overrides, b->retention_overrides);
}

Test(config, knobs_json_round_trips)
{
	struct sd_knobs k = cfg.knobs, out;
	char *txt;

	k.a_pct = 87.5;
	k.b_pct = 12;
	k.period_ns = 123456789;
	k.read_size = 128 << 10;
	k.buffer_size = 3 << 20;
	k.deadline_ns = 59999999999ull;
	strcpy(k.policy, "scan-edf");
	k.depth = 32;
	strcpy(k.profile, "/etc/streamd/my disk.profile");
	txt = sd_knobs_to_json(&k);
	cr_assert_not_null(txt);
	cr_assert_eq(sd_knobs_from_json(&cfg.knobs, txt, strlen(txt), &out, err,
					sizeof(err)),
		     0, "%s: %s", txt, err);
	expect_knobs_eq(&out, &k);
	free(txt);
}

Test(config, knobs_json_applies_only_the_keys_given)
{
	struct sd_knobs want = cfg.knobs, out;
	const char *json = " {\"A\": 90, \"period\": 1, \"policy\": \"edf\"} ";

	cr_assert_eq(sd_knobs_from_json(&cfg.knobs, json, strlen(json), &out,
					err, sizeof(err)),
		     0, "%s", err);
	want.a_pct = 90;
	want.period_ns = SD_NS;
	strcpy(want.policy, "edf");
	expect_knobs_eq(&out, &want);
	/* a length shorter than the text: only that much is JSON */
	cr_expect_eq(sd_knobs_from_json(&cfg.knobs, "{}garbage", 2, &out, err,
					sizeof(err)),
		     0, "%s", err);
}

Test(config, knobs_json_rejections_leave_the_output_untouched)
{
	static const struct {
		const char *json, *named;
	} cases[] = {
		{ "{\"C\":1}", "'C'" },
		{ "{\"listen\":\"0.0.0.0:80\"}", "listen" },
		{ "{\"A\":\"80\"}", "A" },
		{ "{\"A\":null}", "A" },
		{ "{\"period\":\"0.3\"}", "period" },
		{ "{\"period\":-1}", "period" },
		{ "{\"read_size\":65536.5}", "read_size" },
		{ "{\"read_size\":-4096}", "read_size" },
		{ "{\"read_size\":8589934592}", "read_size" },
		{ "{\"depth\":true}", "depth" },
		{ "{\"policy\":5}", "policy" },
		{ "{\"policy\":\"lifo\"}", "policy" },
		{ "{\"profile\":\"\"}", "profile" },
		{ "{\"B\":80}", "B (80)" },
		{ "{\"A\":20}", "B (30)" },
		{ "{\"A\":101}", "A" },
		{ "{\"buffer_size\":65536}", "buffer_size" },
		{ "{\"A\":80,\"A\":90}", "" },
		{ "[1,2]", "object" },
		{ "\"A\"", "object" },
		{ "3", "object" },
		{ "{\"A\":80", "JSON" },
		{ "", "JSON" },
		{ "{\"depth\":1}x", "JSON" },
	};
	struct sd_knobs out, sentinel;
	size_t i;

	memset(&sentinel, 0xab, sizeof(sentinel));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = sentinel;
		err[0] = '\0';
		cr_expect_eq(sd_knobs_from_json(&cfg.knobs, cases[i].json,
						strlen(cases[i].json), &out,
						err, sizeof(err)),
			     -EINVAL, "%s accepted", cases[i].json);
		cr_expect_eq(memcmp(&out, &sentinel, sizeof(out)), 0,
			     "%s changed the output", cases[i].json);
		cr_expect_not_null(strstr(err, cases[i].named),
				   "%s: '%s' does not name '%s'", cases[i].json,
				   err, cases[i].named);
	}
}

struct seen {
	unsigned count[N_KEYS];
	unsigned unknown;
};

static void count_key(void *arg, const char *key, const char *arg_name,
		      const char *help)
{
	struct seen *s = arg;
	size_t i;

	cr_expect(arg_name && *arg_name, "%s: no argument name", key);
	cr_expect(help && *help, "%s: no help", key);
	for (i = 0; i < N_KEYS; i++) {
		if (!strcmp(all_keys[i], key)) {
			s->count[i]++;
			return;
		}
	}
	s->unknown++;
}

Test(config, key_list_names_every_key_once)
{
	struct seen s = { 0 };
	size_t i;

	sd_config_keys(count_key, &s);
	cr_expect_eq(s.unknown, 0);
	for (i = 0; i < N_KEYS; i++) {
		cr_expect_eq(s.count[i], 1, "%s listed %u times", all_keys[i],
			     s.count[i]);
		/* and every listed key is settable by that name */
		cr_expect_neq(set(all_keys[i], ""), -ENOENT, "%s", all_keys[i]);
	}
}
