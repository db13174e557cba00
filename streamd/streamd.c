/*
 * streamd: the recording and time-shift daemon.  This file alone parses
 * arguments, sets up and tears down: configuration (defaults, then the
 * file, then flags), logs (and the one place streamd's logger meets
 * libdjmfs's log hook), the DJMFS side (embedded: a volume file in the
 * data directory and the DJMFS server on a thread of this process;
 * cluster: an external djmfsd), the catalog, the pump, the media workers
 * and the thumbnail cache, and the HTTP front end.  Signals are taken by sigwait on the main thread: SIGHUP reopens
 * the logs, SIGTERM and SIGINT stop cleanly (recordings in progress drain
 * and close before the process exits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "config.h"
#include "djmfs_server.h"
#include "sd_daemon.h"

#define PROG "streamd"
#define STOP_GRACE_NS (10 * SD_NS)

#ifndef SD_PROFILE_DIR_INSTALLED
#define SD_PROFILE_DIR_INSTALLED ""
#endif
#ifndef SD_PROFILE_DIR_SOURCE
#define SD_PROFILE_DIR_SOURCE ""
#endif

struct embedded {
	struct djmfs_server *srv;
	pthread_t th;
	int running;
	char sock[PATH_MAX];
	void *secret;	   /* djmfs_secret_file's bytes, or NULL */
	size_t secret_len;
};

/* libdjmfs's diagnostics go on to the daemon's logger: the one place
 * streamd's log hook becomes libdjmfs's (the level enums share their
 * values, as libdjmfs's and libiosched's do). */
static void from_djmfs(void *arg, enum djmfs_log_level level, const char *msg)
{
	const struct sd_logger *to = arg;

	to->fn(to->arg, (enum sd_log_level)level, msg);
}

_Static_assert((int)SD_LOG_ERROR == (int)DJMFS_LOG_ERROR &&
	       (int)SD_LOG_WARN == (int)DJMFS_LOG_WARN &&
	       (int)SD_LOG_INFO == (int)DJMFS_LOG_INFO &&
	       (int)SD_LOG_DEBUG == (int)DJMFS_LOG_DEBUG,
	       "from_djmfs casts one level enum to the other");

/* The hook every libdjmfs call of the daemon gets; it borrows d->logger,
 * which outlives the client and the embedded server. */
static struct djmfs_log djmfs_hook(struct sd_daemon *d)
{
	struct djmfs_log h = { .fn = d->logger.fn ? from_djmfs : NULL,
			       .arg = &d->logger };

	return h;
}

/* The volume's shared secret, when configured: the embedded server then
 * asks every client for it, and streamd proves it to either server. */
static int secret_load(struct sd_daemon *d, struct embedded *e)
{
	const char *path = d->cfg.djmfs_secret_file;
	struct djmfs_log log = djmfs_hook(d);
	int err;

	if (!*path)
		return 0;
	err = djmfs_secret_load(path, &e->secret, &e->secret_len, &log);
	if (err < 0)
		sd_log_error(d->log, SD_LOG_ERROR, "djmfs_secret_file %s: "
			     "%s%s", path, strerror(-err), err == -EPERM ?
			     " (group or others may read it: chmod 600 it)" : "");
	return err;
}

/* libavformat logs through one process-wide hook; this is the only
 * global the daemon keeps, set once before any demuxer runs. */
static struct sd_log *av_target;

/* Demuxer complaints (damaged input, probe notes) go to the error log:
 * errors at INFO (they concern one upload, not the server), warnings at
 * DEBUG; chatter is dropped. */
static void av_to_log(void *avcl, int level, const char *fmt, va_list ap)
{
	static __thread int prefix = 1;
	char line[512];
	size_t n;

	if (level > AV_LOG_WARNING || !av_target)
		return;
	av_log_format_line2(avcl, level, fmt, ap, line, sizeof(line), &prefix);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n)
		sd_log_error(av_target, level <= AV_LOG_ERROR ? SD_LOG_INFO :
			     SD_LOG_DEBUG, "libavformat: %s", line);
}

static void usage_key(void *arg, const char *key, const char *arg_name,
		      const char *help)
{
	char flag[64];
	size_t i;

	(void)arg;
	snprintf(flag, sizeof(flag), "--%s", key);
	for (i = 2; flag[i]; i++)
		if (flag[i] == '_')
			flag[i] = '-';
	printf("  %-18s %-8s %s\n", flag, arg_name, help);
}

static void usage(void)
{
	printf("Usage: " PROG " [--config FILE] [--KEY VALUE ...]\n\n"
	       "Records live MPEG-TS pushed by encoders over HTTP into DJMFS "
	       "and serves\nit back time-shifted (progressive and HLS).  With "
	       "no arguments it runs\nthe embedded default: ./streamd-data/ "
	       "with a volume file, the DJMFS server\nin this process, HTTP "
	       "on 127.0.0.1:8080.\n\n"
	       "  --config FILE      read settings from FILE (streamd.conf(5)); "
	       "flags win\n"
	       "  --help             this text\n"
	       "  --version          the version\n\n"
	       "Every configuration key is also a flag (--KEY VALUE or "
	       "--KEY=VALUE):\n");
	sd_config_keys(usage_key, NULL);
}

/* Config: defaults, then --config FILE, then the other flags in order. */
static int parse_args(int argc, char **argv, struct sd_config *cfg)
{
	char err[512], key[64];
	int i;

	sd_config_defaults(cfg);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage();
			exit(0);
		}
		if (strcmp(a, "--version") == 0) {
			printf(PROG " " PACKAGE_VERSION "\n");
			exit(0);
		}
		if (strncmp(a, "--config", 8) == 0 &&
		    (a[8] == '\0' || a[8] == '=')) {
			const char *path = a[8] ? a + 9 : argv[++i];

			if (!path) {
				fprintf(stderr, PROG ": --config needs a file\n");
				return -EINVAL;
			}
			if (sd_config_load(cfg, path, err, sizeof(err)) < 0) {
				fprintf(stderr, PROG ": %s\n", err);
				return -EINVAL;
			}
		}
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		size_t kl;

		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, PROG ": unexpected argument '%s' (see "
				"--help)\n", a);
			return -EINVAL;
		}
		eq = strchr(a, '=');
		kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (kl == 0 || kl >= sizeof(key)) {
			fprintf(stderr, PROG ": bad flag '%s'\n", a);
			return -EINVAL;
		}
		memcpy(key, a + 2, kl);
		key[kl] = '\0';
		for (size_t j = 0; j < kl; j++)
			if (key[j] == '-')
				key[j] = '_';
		val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (strcmp(key, "config") == 0)
			continue;
		if (!val) {
			fprintf(stderr, PROG ": %s needs a value\n", a);
			return -EINVAL;
		}
		if (sd_config_set(cfg, key, val, err, sizeof(err)) < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return -EINVAL;
		}
	}
	if (sd_knobs_check(&cfg->knobs, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* Uninstalled runs find the shipped scheduler profiles in the source tree
 * unless the user points elsewhere. */
static void profile_dir_fallback(void)
{
	if (getenv("IOSCHED_PROFILE_DIR"))
		return;
	if (*SD_PROFILE_DIR_INSTALLED &&
	    access(SD_PROFILE_DIR_INSTALLED, R_OK) == 0)
		return;
	if (*SD_PROFILE_DIR_SOURCE && access(SD_PROFILE_DIR_SOURCE, R_OK) == 0)
		setenv("IOSCHED_PROFILE_DIR", SD_PROFILE_DIR_SOURCE, 1);
}

static void *serve(void *arg)
{
	djmfs_server_run(arg);
	return NULL;
}

/* The embedded DJMFS server: a volume file in the data directory (made on
 * first start), served on a Unix socket beside it. */
static int embedded_start(struct sd_daemon *d, struct embedded *e)
{
	struct sd_config *cfg = &d->cfg;
	struct djmfs_server_opts so = { .log = djmfs_hook(d) };
	struct stat st;
	int err;

	if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
		err = -errno;
		sd_log_error(d->log, SD_LOG_ERROR, "mkdir(%s): %s",
			     cfg->data_dir, strerror(-err));
		return err;
	}
	if (strlen(cfg->data_dir) + sizeof("/djmfsd.sock") > sizeof(e->sock) ||
	    strlen(cfg->data_dir) + sizeof("/volume.img") > sizeof(cfg->volume)) {
		sd_log_error(d->log, SD_LOG_ERROR, "data_dir %s: path too "
			     "long", cfg->data_dir);
		return -ENAMETOOLONG;
	}
	if (!*cfg->volume)
		snprintf(cfg->volume, sizeof(cfg->volume), "%.*s/volume.img",
			 (int)(sizeof(cfg->volume) - sizeof("/volume.img")),
			 cfg->data_dir);
	snprintf(e->sock, sizeof(e->sock), "%.*s/djmfsd.sock",
		 (int)(sizeof(e->sock) - sizeof("/djmfsd.sock")), cfg->data_dir);
	if (stat(cfg->volume, &st) < 0) {
		sd_log_error(d->log, SD_LOG_INFO, "creating the volume %s "
			     "(%llu bytes, sparse)", cfg->volume,
			     (unsigned long long)cfg->volume_size);
		err = djmfs_mkfs(cfg->volume, cfg->volume_size, 0, 0, &so.log);
		if (err < 0) {
			sd_log_error(d->log, SD_LOG_ERROR, "djmfs_mkfs(%s): "
				     "%s", cfg->volume, strerror(-err));
			return err;
		}
	}
	unlink(e->sock); /* a stale socket of a dead run */
	so.volume = cfg->volume;
	so.unix_path = e->sock;
	so.secret = e->secret;
	so.secret_len = e->secret_len;
	if (!strcmp(cfg->djmfs_salvage, "yes"))
		so.flags |= DJMFS_SERVER_SALVAGE;
	err = djmfs_server_new(&e->srv, &so);
	if (err < 0) {
		sd_log_error(d->log, SD_LOG_ERROR, "djmfs_server_new(%s): %s%s",
			     cfg->volume, strerror(-err), err == -EBUSY ?
			     " (is another streamd using this data directory?)"
			     : err == -EUCLEAN ? " (the volume's metadata is "
			     "damaged: see the lines above; djmfs_salvage = "
			     "yes or `djmfs fsck --repair` goes on with what is "
			     "intact)" : "");
		return err;
	}
	err = -pthread_create(&e->th, NULL, serve, e->srv);
	if (err < 0) {
		djmfs_server_free(e->srv);
		return err;
	}
	e->running = 1;
	/* Playback of what is kept beats refusing to start. */
	if (djmfs_server_read_only(e->srv)) {
		atomic_store(&d->read_only, 1);
		sd_log_error(d->log, SD_LOG_WARN, "the host file system under "
			     "%s is full: streamd runs read-only: playback "
			     "works, recording does not (507) until streamd "
			     "restarts with room on the host", cfg->volume);
	}
	return 0;
}

static void embedded_stop(struct embedded *e)
{
	if (!e->running)
		return;
	djmfs_server_stop(e->srv);
	pthread_join(e->th, NULL);
	djmfs_server_free(e->srv);
	unlink(e->sock);
	e->running = 0;
}

static int connect_djmfs(struct sd_daemon *d, const struct embedded *e)
{
	char server[PATH_MAX + 8];
	struct djmfs_client_opts o = {
		.name = PROG,
		.policy = d->cfg.knobs.policy,
		.profile = d->cfg.knobs.profile,
		.depth = d->cfg.knobs.depth,
		.log = djmfs_hook(d),
		.inject_latency_ns = d->cfg.inject_latency_ns,
		.inject_eio_every = d->cfg.inject_eio_every,
		.secret = e->secret,
		.secret_len = e->secret_len,
		/* Units a recorder holds ahead are not free for anyone
		 * else: 4 (8 s of a 4 Mbit/s camera) rather than 16 keep
		 * the room volume_reserve counts on really free. */
		.reserve_aus = SD_RESERVE_AUS,
	};
	int err;

	if (e->running) {
		snprintf(server, sizeof(server), "unix:%s", e->sock);
		o.server = server;
	} else {
		o.server = d->cfg.djmfs;
		o.volume = *d->cfg.volume ? d->cfg.volume : NULL;
	}
	err = djmfs_connect(&d->client, &o);
	if (err < 0)
		sd_log_error(d->log, SD_LOG_ERROR, "djmfs_connect(%s): %s%s",
			     o.server, strerror(-err), err != -EACCES ? "" :
			     e->secret ? " (the server did not prove the volume's "
			     "secret: another secret, or none)" : " (the server "
			     "asks for the volume's secret: djmfs_secret_file)");
	return err;
}

/* "http://HOST:PORT" for the address bound. */
static void base_url(const struct sd_daemon *d, char *out, size_t len)
{
	char host[128];
	const char *colon = strrchr(d->cfg.listen, ':');
	size_t hl = colon ? (size_t)(colon - d->cfg.listen) : 0;

	if (hl >= sizeof(host))
		hl = sizeof(host) - 1;
	memcpy(host, d->cfg.listen, hl);
	host[hl] = '\0';
	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	snprintf(out, len, "http://%s:%u", host, d->port);
}

static void banner(const struct sd_daemon *d, int embedded)
{
	char url[200];

	base_url(d, url, sizeof(url));
	sd_log_error(d->log, SD_LOG_INFO, "listening on %s/ (%s, volume "
		     "%s)", url, embedded ? "embedded DJMFS server" :
		     d->cfg.djmfs, d->cfg.volume);
	printf(PROG " " PACKAGE_VERSION " is recording and serving on %s/\n\n"
	       "Record a test pattern:\n"
	       "  ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=25 -f lavfi "
	       "-i sine \\\n    -c:v libx264 -g 50 -pix_fmt yuv420p -c:a aac "
	       "-f mpegts -method PUT %s/record/cam1\n"
	       "Watch live, 30 s behind, or over HLS:\n"
	       "  ffplay '%s/streams/cam1.ts'\n"
	       "  ffplay '%s/streams/cam1.ts?start=-30'\n"
	       "  vlc %s/streams/cam1/index.m3u8\n"
	       "List recordings: curl %s/streams   Metrics: %s/metrics\n",
	       url, url, url, url, url, url, url);
	fflush(stdout);
}

/* Blocks until SIGTERM or SIGINT, reopening the logs on SIGHUP. */
static void wait_for_stop(struct sd_daemon *d, const sigset_t *set)
{
	int sig = 0;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		if (sd_log_reopen(d->log) < 0)
			sd_log_error(d->log, SD_LOG_ERROR, "SIGHUP: cannot "
				     "reopen the logs; keeping the old ones");
		else
			sd_log_error(d->log, SD_LOG_INFO, "SIGHUP: logs "
				     "reopened");
	}
	sd_log_error(d->log, SD_LOG_INFO, "%s: stopping; recordings in "
		     "progress are being closed", strsignal(sig));
}

static enum sd_log_level level_of(const char *name)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (unsigned i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return (enum sd_log_level)i;
	return SD_LOG_INFO;
}

/* The interval cache's budget, said in the log: operators size memory
 * by it.  cache_size = 0 runs with no cache at all. */
static int cache_start(struct sd_daemon *d)
{
	uint64_t budget = d->cfg.cache_size, avail = 0;
	int err;

	if (budget == SD_CACHE_SIZE_AUTO) {
		avail = sd_cache_mem_available();
		budget = sd_cache_auto_size(avail);
	}
	if (budget == 0) {
		sd_log_error(d->log, SD_LOG_INFO, "cache_size: 0: no interval "
			     "cache; every session reads the disk");
		return 0;
	}
	err = sd_cache_new(&d->cache, budget, &d->logger);
	if (err < 0) {
		sd_log_error(d->log, SD_LOG_ERROR, "sd_cache_new: %s",
			     strerror(-err));
		return err;
	}
	if (avail)
		sd_log_error(d->log, SD_LOG_INFO, "cache_size: %.1f MiB (auto: "
			     "1/8 of %.1f MiB available, 64 MiB to 4 GiB)",
			     (double)budget / (1 << 20),
			     (double)avail / (1 << 20));
	else
		sd_log_error(d->log, SD_LOG_INFO, "cache_size: %.1f MiB%s",
			     (double)budget / (1 << 20),
			     d->cfg.cache_size == SD_CACHE_SIZE_AUTO ?
			     " (auto: memory available unknown)" : "");
	return 0;
}

static int run(struct sd_daemon *d, const sigset_t *set)
{
	struct sd_pump_opts po = { 0 };
	struct embedded e = { 0 };
	int embedded = !*d->cfg.djmfs;
	int err = 0;

	err = secret_load(d, &e);
	if (err == 0 && embedded)
		err = embedded_start(d, &e);
	if (err == 0)
		err = connect_djmfs(d, &e);
	if (err == 0)
		err = sd_catalog_new(&d->cat, d->client, 0, &d->logger);
	if (err == 0)
		err = cache_start(d);
	po.cache = d->cache;
	po.open_delay_ns = d->cfg.inject_open_latency_ns;
	if (err == 0)
		err = sd_pump_new(&d->pump, d->client, &d->knobs, &d->logger,
				  &po);
	if (err == 0)
		err = sd_work_new(&d->work, SD_WORKERS, SD_WORK_QUEUE,
				  &d->logger);
	if (err == 0)
		err = sd_thumb_cache_new(&d->thumbs, SD_THUMB_CACHE_ENTRIES,
					 SD_THUMB_CACHE_BYTES);
	if (err == 0)
		err = sd_recorder_new(&d->recorder, d);
	if (err == 0)
		err = sd_capacity_start(d);
	if (err == 0)
		err = sd_retain_start(d);
	if (err == 0)
		err = sd_http_start(d);
	if (err == 0) {
		banner(d, embedded);
		wait_for_stop(d, set);
		sd_http_stop(d, STOP_GRACE_NS);
	}
	sd_retain_stop(d);
	sd_recorder_free(d->recorder);
	/* Before the pump: a job still running closes its session. */
	sd_work_free(d->work);
	sd_thumb_cache_free(d->thumbs);
	sd_capacity_stop(d);
	sd_pump_free(d->pump);
	sd_cache_free(d->cache);
	sd_catalog_free(d->cat);
	djmfs_disconnect(d->client);
	embedded_stop(&e);
	djmfs_secret_free(e.secret, e.secret_len);
	return err;
}

int main(int argc, char **argv)
{
	struct sd_daemon d = { 0 };
	sigset_t set;
	int err;

	/* Player buffers are allocated on one thread (a read's planner) and
	 * freed on another (the player's); with an arena per thread, each
	 * of the dozen threads keeps free memory of its own and the
	 * resident size creeps up with the sessions' churn.  Two arenas
	 * are enough for our few allocating threads. */
	mallopt(M_ARENA_MAX, 2);
	if (parse_args(argc, argv, &d.cfg) < 0)
		return 2;
	profile_dir_fallback();
	err = sd_log_open(&d.log, d.cfg.error_log, d.cfg.access_log,
			  level_of(d.cfg.log_level));
	if (err < 0) {
		fprintf(stderr, PROG ": cannot open the logs (%s, %s): %s\n",
			d.cfg.error_log, d.cfg.access_log, strerror(-err));
		return 1;
	}
	d.logger = sd_log_hook(d.log);
	av_target = d.log;
	av_log_set_callback(av_to_log);
	d.knobs = d.cfg.knobs;
	pthread_mutex_init(&d.mu, NULL);
	pthread_mutex_init(&d.knobs_mu, NULL);
	pthread_mutex_init(&d.holds_mu, NULL);
	/* Every thread started from here on inherits the mask, so only
	 * sigwait sees these signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	err = run(&d, &set);
	sd_log_error(d.log, err < 0 ? SD_LOG_ERROR : SD_LOG_INFO,
		     "stopped%s%s", err < 0 ? ": " : "",
		     err < 0 ? strerror(-err) : "");
	sd_log_close(d.log);
	pthread_mutex_destroy(&d.knobs_mu);
	pthread_mutex_destroy(&d.holds_mu);
	pthread_mutex_destroy(&d.mu);
	return err < 0 ? 1 : 0;
}
