/*
 * Private header of the djmfs tool (djmfs-cli.c): the printers kept in
 * files of their own.  Nothing else includes it.
 */
#ifndef DJMFS_CLI_H
#define DJMFS_CLI_H

#include "djmfs_server.h"

/* Prints the report of a check of @vol to standard output: the copies of
 * the metadata, the counts, then "VOL: clean" when @clean, else "VOL:
 * problems found" and what became of them (@repair: --repair was given). */
void djmfs__cli_fsck_report(const char *vol, int clean, int repair,
			    const struct djmfs_fsck_report *rep);

#endif /* DJMFS_CLI_H */
