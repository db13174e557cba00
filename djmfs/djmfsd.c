/*
 * djmfsd, the DJMFS metadata and lock server: parses the command line,
 * reads the volume's shared secret (--secret-file), turns the library's
 * log lines into timestamped stderr lines, maps SIGINT and SIGTERM onto
 * djmfs_server_stop() and runs the server until then.  Everything else
 * is the library (djmfs_server.h), which streamd embeds the same way.
 * Exit codes: 0 clean stop, 1 runtime failure (a secret file refused
 * included), 2 usage error.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "djmfs_server.h"

#define DEFAULT_SOCKET "/run/djmfs/djmfsd.sock"

static struct djmfs_server *the_server;

static const char *const level_names[] = {
	[DJMFS_LOG_ERROR] = "error",
	[DJMFS_LOG_WARN] = "warn",
	[DJMFS_LOG_INFO] = "info",
	[DJMFS_LOG_DEBUG] = "debug",
};

static const char *const level_tags[] = {
	[DJMFS_LOG_ERROR] = "ERROR",
	[DJMFS_LOG_WARN] = "WARN",
	[DJMFS_LOG_INFO] = "INFO",
	[DJMFS_LOG_DEBUG] = "DEBUG",
};

static void log_line(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	enum djmfs_log_level max = *(enum djmfs_log_level *)arg;
	struct timeval tv;
	struct tm tm;
	char when[40], zone[8];

	if (lvl > max)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	fprintf(stderr, "%s.%03ld%s djmfsd: %s: %s\n", when,
		(long)(tv.tv_usec / 1000), zone, level_tags[lvl], msg);
}

static void on_signal(int sig)
{
	(void)sig;
	djmfs_server_stop(the_server);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: djmfsd --volume PATH [--listen UNIX_PATH] "
		"[--tcp HOST:PORT]\n"
		"              [--lease-ms N] [--snap-lock-max-ms N] "
		"[--prefetch N]\n"
		"              [--batch-us N] [--secret-file PATH] [--salvage]\n"
		"              [--no-upgrade | --keep-format]\n"
		"              [--log-level error|warn|info|debug]\n"
		"       djmfsd --help | --version\n"
		"\n"
		"The DJMFS metadata and lock server.  Listens on %s\n"
		"unless only --tcp is given.  With --secret-file, clients must\n"
		"prove they know the secret in PATH (mode 0600; 'djmfs secret'\n"
		"makes one).  A format 1 volume is upgraded to format 2 (a\n"
		"second copy of the metadata) at start; --no-upgrade refuses\n"
		"to start on it instead, --keep-format serves it as it is.\n"
		"SIGINT or SIGTERM stops it cleanly.\n"
		"\n"
		"A volume whose metadata is damaged so that serving would lose\n"
		"acknowledged records is refused (exit 1, the log says what\n"
		"would be lost).  --salvage goes on with what is intact and\n"
		"makes that loss permanent, as 'djmfs fsck --repair' does.\n",
		DEFAULT_SOCKET);
}

/* A u32 option value, or -1. */
static long long parse_u32(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!*s || *s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	return (long long)v;
}

static int parse_level(const char *s, enum djmfs_log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum djmfs_log_level)i;
			return 0;
		}
	}
	return -1;
}

enum {
	OPT_LEASE = 256, OPT_SNAP, OPT_PREFETCH, OPT_BATCH, OPT_LEVEL,
	OPT_SECRET, OPT_VERSION, OPT_SALVAGE, OPT_NO_UPGRADE, OPT_KEEP_FORMAT
};

static const struct option long_opts[] = {
	{ "volume", required_argument, NULL, 'v' },
	{ "listen", required_argument, NULL, 'l' },
	{ "tcp", required_argument, NULL, 't' },
	{ "lease-ms", required_argument, NULL, OPT_LEASE },
	{ "snap-lock-max-ms", required_argument, NULL, OPT_SNAP },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "batch-us", required_argument, NULL, OPT_BATCH },
	{ "log-level", required_argument, NULL, OPT_LEVEL },
	{ "secret-file", required_argument, NULL, OPT_SECRET },
	{ "salvage", no_argument, NULL, OPT_SALVAGE },
	{ "no-upgrade", no_argument, NULL, OPT_NO_UPGRADE },
	{ "keep-format", no_argument, NULL, OPT_KEEP_FORMAT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* Fills @o (and *secret_file) from argv.  Returns 0, 1 (--help/--version
 * done) or 2. */
static int parse_args(int argc, char **argv, struct djmfs_server_opts *o,
		      enum djmfs_log_level *level, const char **secret_file)
{
	long long v;
	int c;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		v = 0;
		if (c == OPT_LEASE || c == OPT_SNAP || c == OPT_PREFETCH ||
		    c == OPT_BATCH) {
			v = parse_u32(optarg);
			if (v < 0) {
				fprintf(stderr, "djmfsd: bad number '%s'\n",
					optarg);
				return 2;
			}
		}
		switch (c) {
		case 'v': o->volume = optarg; break;
		case 'l': o->unix_path = optarg; break;
		case 't': o->tcp_addr = optarg; break;
		case OPT_SECRET: *secret_file = optarg; break;
		case OPT_SALVAGE: o->flags |= DJMFS_SERVER_SALVAGE; break;
		case OPT_NO_UPGRADE: o->upgrade = DJMFS_UPGRADE_REFUSE; break;
		case OPT_KEEP_FORMAT: o->upgrade = DJMFS_UPGRADE_KEEP; break;
		case OPT_LEASE: o->lease_ms = (uint32_t)v; break;
		case OPT_SNAP: o->snap_lock_max_ms = (uint32_t)v; break;
		case OPT_PREFETCH: o->prefetch_aus = (uint32_t)v; break;
		case OPT_BATCH:
			/* 0 on the command line means no batching. */
			o->batch_us = v ? (uint32_t)v : DJMFS_SERVER_NO_BATCH;
			break;
		case OPT_LEVEL:
			if (parse_level(optarg, level) < 0) {
				fprintf(stderr, "djmfsd: bad log level '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 1;
		case OPT_VERSION: printf("djmfsd %s\n", PACKAGE_VERSION); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !o->volume) {
		fprintf(stderr, "djmfsd: %s\n", optind < argc ?
			"unexpected argument" : "--volume is required");
		usage(stderr);
		return 2;
	}
	if (!o->unix_path && !o->tcp_addr)
		o->unix_path = DEFAULT_SOCKET;
	return 0;
}

int main(int argc, char **argv)
{
	static enum djmfs_log_level level = DJMFS_LOG_INFO;
	struct djmfs_server_opts o;
	const char *secret_file = NULL;
	void *secret = NULL;
	size_t secret_len = 0;
	struct sigaction sa;
	int rc, err;

	memset(&o, 0, sizeof(o));
	rc = parse_args(argc, argv, &o, &level, &secret_file);
	if (rc)
		return rc == 1 ? 0 : 2;
	o.log.fn = log_line;
	o.log.arg = &level;
	if (secret_file) {
		/* The library has logged why (mode, size, missing). */
		err = djmfs_secret_load(secret_file, &secret, &secret_len,
					&o.log);
		if (err < 0) {
			fprintf(stderr, "djmfsd: cannot use the secret file "
				"%s: %s\n", secret_file, strerror(-err));
			return 1;
		}
		o.secret = secret;
		o.secret_len = secret_len;
	}
	signal(SIGPIPE, SIG_IGN);
	err = djmfs_server_new(&the_server, &o);
	/* The server keeps its own copy. */
	djmfs_secret_free(secret, secret_len);
	if (err < 0) {
		fprintf(stderr, "djmfsd: cannot start on %s: %s\n", o.volume,
			strerror(-err));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = djmfs_server_run(the_server);
	djmfs_server_free(the_server);
	if (err < 0) {
		fprintf(stderr, "djmfsd: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
