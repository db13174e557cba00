/*
 * djmfs-bench's own djmfsd: formats a volume (the one given, or a sparse
 * file in a temporary directory), starts the djmfsd found next to the
 * bench (or $DJMFSD) on a Unix socket there, waits until it listens, and
 * stops it and removes what it made at the end.  Kept apart from the
 * benchmark so the measuring program holds only the experiment.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"
#include "bench_server.h"
#include "tool_clock.h"

#define PROG "djmfs-bench"
#define NS_PER_MS UINT64_C(1000000)
#define SERVER_WAIT_NS (UINT64_C(10) * 1000000000)

/* djmfsd: $DJMFSD, else next to this program (or one level up, when a
 * libtool wrapper runs us from .libs/). */
static int find_djmfsd(const char *argv0, char *out, size_t len)
{
	static const char *const rel[] = { "djmfsd", "../djmfsd" };
	const char *env = getenv("DJMFSD");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	if (strchr(argv0, '/')) {
		int dir = (int)(strrchr(argv0, '/') - argv0);

		if ((size_t)snprintf(out, len, "%.*s/djmfsd", dir, argv0) < len &&
		    access(out, X_OK) == 0)
			return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	for (size_t k = 0; k < sizeof(rel) / sizeof(rel[0]); k++)
		if ((size_t)snprintf(out, len, "%s/%s", self, rel[k]) < len &&
		    access(out, X_OK) == 0)
			return 0;
	return -ENOENT;
}

static bool socket_ready(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int spawn_djmfsd(struct bench_server *s, const char *bin,
			const char *secret_file)
{
	uint64_t give_up = tool_now_ns() + SERVER_WAIT_NS;
	int status;

	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(STDERR_FILENO, STDOUT_FILENO); /* stdout is for the JSON */
		if (secret_file)
			execl(bin, "djmfsd", "--volume", s->volume, "--listen",
			      s->sock, "--log-level", "warn", "--secret-file",
			      secret_file, (char *)NULL);
		else
			execl(bin, "djmfsd", "--volume", s->volume, "--listen",
			      s->sock, "--log-level", "warn", (char *)NULL);
		fprintf(stderr, PROG ": exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	while (!socket_ready(s->sock)) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			fprintf(stderr, PROG ": djmfsd exited (status %d) before "
				"listening\n", status);
			return -ECHILD;
		}
		if (tool_now_ns() > give_up) {
			fprintf(stderr, PROG ": djmfsd did not listen on %s "
				"within 10 s\n", s->sock);
			return -ETIMEDOUT;
		}
		tool_sleep_until_ns(tool_now_ns() + 20 * NS_PER_MS);
	}
	return 0;
}

void bench_log_plain(void *arg, enum djmfs_log_level level, const char *msg)
{
	(void)arg;
	if (level <= DJMFS_LOG_WARN)
		fprintf(stderr, PROG ": %s\n", msg);
}

int bench_server_start(struct bench_server *s, const char *argv0,
		       const char *volume, uint64_t size, uint64_t data_bytes,
		       bool metadata_only, const char *secret_file)
{
	const struct djmfs_log log = { bench_log_plain, NULL };
	const char *tmp = getenv("TMPDIR");
	char bin[PATH_MAX];
	struct statvfs sv;
	int r;

	r = find_djmfsd(argv0, bin, sizeof(bin));
	if (r < 0) {
		fprintf(stderr, PROG ": djmfsd not found (set DJMFSD or use "
			"--server): %s\n", strerror(-r));
		return r;
	}
	snprintf(s->dir, sizeof(s->dir), "%s/djmfs-bench.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->dir)) {
		r = -errno;
		fprintf(stderr, PROG ": mkdtemp %s: %s\n", s->dir, strerror(-r));
		s->dir[0] = '\0';
		return r;
	}
	snprintf(s->sock, sizeof(s->sock), "%s/djmfsd.sock", s->dir);
	if (strlen(s->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, PROG ": socket path %s is too long (TMPDIR)\n",
			s->sock);
		return -ENAMETOOLONG;
	}
	snprintf(s->addr, sizeof(s->addr), "unix:%s", s->sock);
	s->temp_volume = !volume;
	snprintf(s->volume, sizeof(s->volume), "%s",
		 volume ? volume : s->dir);
	if (s->temp_volume)
		strcat(s->volume, "/volume");
	/* A data run gets its volume allocated up front, as fio lays out
	 * its file: otherwise the first write to every block also pays for
	 * the host file system's allocation. */
	r = djmfs_mkfs(s->volume, size, 0,
		       (s->temp_volume ? DJMFS_MKFS_FORCE : 0) |
			       (metadata_only ? 0 : DJMFS_MKFS_PREALLOCATE),
		       &log);
	if (r == -EEXIST) {
		fprintf(stderr, PROG ": %s already holds a DJMFS volume: "
			"using it as it is\n", s->volume);
	} else if (r < 0) {
		fprintf(stderr, PROG ": djmfs_mkfs %s: %s\n", s->volume,
			strerror(-r));
		return r;
	}
	if (!metadata_only && r == -EEXIST && statvfs(s->dir, &sv) == 0 &&
	    (double)sv.f_bavail * (double)sv.f_frsize <
		    (double)data_bytes * 0.5)
		fprintf(stderr, PROG ": warning: the run may write more than "
			"the %s free bytes\n", s->dir);
	return spawn_djmfsd(s, bin, secret_file);
}

void bench_server_stop(struct bench_server *s)
{
	uint64_t give_up = tool_now_ns() + SERVER_WAIT_NS;
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		while (waitpid(s->pid, &status, WNOHANG) == 0) {
			if (tool_now_ns() > give_up) {
				fprintf(stderr, PROG ": djmfsd ignored SIGTERM; "
					"killing it\n");
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &status, 0);
				break;
			}
			tool_sleep_until_ns(tool_now_ns() + 10 * NS_PER_MS);
		}
		s->pid = 0;
	}
	if (s->dir[0]) {
		unlink(s->sock);
		if (s->temp_volume)
			unlink(s->volume);
		rmdir(s->dir);
		s->dir[0] = '\0';
	}
}

