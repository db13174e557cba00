/*
 * djmfs-bench's own djmfsd (bench_server.c): a formatted volume and a
 * djmfsd listening on a Unix socket in a temporary directory, for a run
 * without --server.
 */
#ifndef DJMFS_BENCH_SERVER_H
#define DJMFS_BENCH_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "djmfs.h"

struct bench_server {
	char dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	char addr[PATH_MAX + 32];
	char volume[PATH_MAX + 16];
	bool temp_volume;
	pid_t pid;
};

/*
 * Formats @volume (NULL: a sparse file in the temporary directory) at
 * @size bytes, preallocated unless @metadata_only, and starts djmfsd on
 * it (demanding @secret_file's secret if not NULL).  An existing volume
 * is used as it is, with a warning if its file system has less than half
 * of @data_bytes free.  On success s->addr is the address to connect to.
 * Returns 0 or -errno (printed); bench_server_stop cleans up either way.
 */
int bench_server_start(struct bench_server *s, const char *argv0,
		       const char *volume, uint64_t size, uint64_t data_bytes,
		       bool metadata_only, const char *secret_file);
/* Stops djmfsd (SIGTERM, then SIGKILL after 10 s) and removes the
 * socket, a temporary volume and the directory. */
void bench_server_stop(struct bench_server *s);

/* A libdjmfs log hook that prints warnings and errors to stderr. */
void bench_log_plain(void *arg, enum djmfs_log_level level, const char *msg);

#endif /* DJMFS_BENCH_SERVER_H */
