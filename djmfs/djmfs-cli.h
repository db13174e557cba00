/*
 * Private header of the djmfs tool (djmfs-cli.c): the printers kept in
 * files of their own.  Nothing else includes it.
 */
#ifndef DJMFS_CLI_H
#define DJMFS_CLI_H

#include "djmfs_server.h"

/* @bytes as digits, or with @human as 1.5M, 3G (powers of 1024). */
const char *djmfs__cli_size_str(uint64_t bytes, int human, char *buf,
				size_t n);
/* @ns (CLOCK_REALTIME) as local "YYYY-MM-DD HH:MM:SS", with_ns adding
 * the nanoseconds. */
const char *djmfs__cli_time_str(uint64_t ns, int with_ns, char *buf,
				size_t n);

/* e2fsck's exit codes, which scripts and operators already read. */
#define DJMFS_CLI_FSCK_CORRECTED 1
#define DJMFS_CLI_FSCK_ERRORS 4
#define DJMFS_CLI_FSCK_FAILED 8

/* Prints the report of a check of @vol (@r: what djmfs_fsck returned,
 * 0 or -EUCLEAN) to standard output: the copies of the metadata, the
 * counts, how the journal ended, then the verdict; @repair: --repair was
 * given.  Returns the exit status: 0, DJMFS_CLI_FSCK_CORRECTED or
 * DJMFS_CLI_FSCK_ERRORS. */
int djmfs__cli_fsck_report(const char *vol, int r, int repair,
			   const struct djmfs_fsck_report *rep);

#endif /* DJMFS_CLI_H */
