/*
 * The report of `djmfs fsck` as the djmfs tool prints it on standard
 * output: what the check found in each copy of the volume's metadata
 * (superblock copies, both copies of each checkpoint slot), then its
 * "key: value" lines and its verdict.  djmfs-cli.c runs the check and
 * picks the exit status; see djmfs(1).
 */
#include <stdio.h>

#include "djmfs_server.h"
#include "djmfs-cli.h"

static const char *copy_word(int state)
{
	static const char *const w[] = {
		[DJMFS_COPY_NONE] = "none", [DJMFS_COPY_OK] = "ok",
		[DJMFS_COPY_BLANK] = "blank", [DJMFS_COPY_BAD] = "bad",
		[DJMFS_COPY_REPAIRED] = "bad, repaired",
	};

	return state >= 0 && state <= DJMFS_COPY_REPAIRED ? w[state] : "?";
}

/* What fsck found in each copy of the superblock and the slots. */
static void print_copies(const struct djmfs_fsck_report *r)
{
	if (!r->format)
		return; /* the volume did not open */
	printf("superblock:");
	for (unsigned i = 0; i < 3; i++) {
		if (r->sb_copy[i] != DJMFS_COPY_NONE)
			printf("%s copy %u %s", i ? "," : "", i,
			       copy_word(r->sb_copy[i]));
	}
	if (r->format >= 2)
		printf(" (format %u, generation %llu)\n", r->format,
		       (unsigned long long)r->sb_gen);
	else
		printf(" (format %u)\n", r->format);
	for (unsigned i = 0; i < 2; i++) {
		printf("checkpoint slot %u:", i);
		if (r->ckpt_gen[i])
			printf(" gen %llu%s,", (unsigned long long)r->ckpt_gen[i],
			       (int)i == r->ckpt_newest ? " (newest)" : "");
		for (unsigned c = 0; c < 2; c++) {
			if (r->ckpt_copy[i][c] != DJMFS_COPY_NONE)
				printf("%s copy %c %s", c ? "," : "", "AB"[c],
				       copy_word(r->ckpt_copy[i][c]));
		}
		printf("\n");
	}
}

void djmfs__cli_fsck_report(const char *vol, int clean, int repair,
			    const struct djmfs_fsck_report *rep)
{
	print_copies(rep);
	printf("files: %llu\nbad files: %llu\nquarantined before: %llu\n"
	       "journal records replayed: %llu\nused units: %llu\n"
	       "orphan units: %llu\nfree units: %llu\n",
	       (unsigned long long)rep->files,
	       (unsigned long long)rep->bad_files,
	       (unsigned long long)rep->quarantined,
	       (unsigned long long)rep->records_replayed,
	       (unsigned long long)rep->used_aus,
	       (unsigned long long)rep->orphan_aus,
	       (unsigned long long)rep->free_aus);
	if (clean)
		printf("%s: clean\n", vol);
	else
		printf("%s: problems found%s\n", vol,
		       rep->repaired ? " and repaired" :
		       repair	     ? ", not repaired" :
				       "; run with --repair to fix them");
}
