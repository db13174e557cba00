/*
 * The report of `djmfs fsck` as the djmfs tool prints it on standard
 * output: what the check found in each copy of the volume's metadata
 * (superblock copies, both copies of each checkpoint slot), then its
 * "key: value" lines, how the journal ended, and its verdict, whose
 * exit status (e2fsck's) it returns; see djmfs(1).  Also the size and
 * time printers the listing commands share.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "djmfs_server.h"
#include "djmfs-cli.h"

/* "1.5G"-style with -h, else the number of bytes. */
const char *djmfs__cli_size_str(uint64_t bytes, int human, char *buf, size_t n)
{
	static const char units[] = "BKMGTPE";
	double v = (double)bytes;
	unsigned u = 0;

	if (!human) {
		snprintf(buf, n, "%llu", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu", (unsigned long long)bytes);
	else if (v < 10 && v != floor(v))
		snprintf(buf, n, "%.1f%c", v, units[u]);
	else
		snprintf(buf, n, "%.0f%c", v, units[u]);
	return buf;
}

/* Local time; @with_ns adds the nanoseconds.  0 (never) prints "-". */
const char *djmfs__cli_time_str(uint64_t ns, int with_ns, char *buf, size_t n)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t len;

	if (!ns || !localtime_r(&t, &tm))
		return "-";
	len = strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	if (with_ns)
		snprintf(buf + len, n - len, ".%09llu",
			 (unsigned long long)(ns % 1000000000u));
	return buf;
}

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

static void journal_line(const struct djmfs_fsck_report *rep)
{
	uint64_t gen = rep->ckpt_newest >= 0 ? rep->ckpt_gen[rep->ckpt_newest]
					     : 0;

	switch (rep->journal_end) {
	case DJMFS_FSCK_JOURNAL_END:
		printf("journal end: end of log at offset %llu\n",
		       (unsigned long long)rep->journal_end_off);
		break;
	case DJMFS_FSCK_JOURNAL_TORN:
		printf("journal end: torn tail of the last group commit at "
		       "offset %llu (never acknowledged)\n",
		       (unsigned long long)rep->journal_end_off);
		break;
	case DJMFS_FSCK_JOURNAL_DAMAGED:
		printf("journal end: damaged at offset %llu: %llu valid "
		       "records (seq %llu..%llu) lie beyond it\n",
		       (unsigned long long)rep->journal_end_off,
		       (unsigned long long)rep->lost_records,
		       (unsigned long long)rep->lost_first,
		       (unsigned long long)rep->lost_last);
		break;
	case DJMFS_FSCK_JOURNAL_STALE:
		printf("journal end: checkpoint %llu is not the newest: the "
		       "journal holds %llu records of epoch %llu (seq "
		       "%llu..%llu)\n", (unsigned long long)gen,
		       (unsigned long long)rep->lost_records,
		       (unsigned long long)rep->journal_newer_epoch,
		       (unsigned long long)rep->lost_first,
		       (unsigned long long)rep->lost_last);
		break;
	}
}

int djmfs__cli_fsck_report(const char *vol, int r, int repair,
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
	if (rep->ckpt_newest >= 0)
		journal_line(rep);
	else
		printf("checkpoint: none readable in either slot\n");
	if (rep->repaired_sb || rep->repaired_ckpt || rep->repaired_jrec ||
	    rep->bad_copies)
		printf("metadata copies mended: %llu (superblock %llu, "
		       "checkpoint %llu, journal %llu); bad and left: %llu\n",
		       (unsigned long long)(rep->repaired_sb +
					    rep->repaired_ckpt +
					    rep->repaired_jrec),
		       (unsigned long long)rep->repaired_sb,
		       (unsigned long long)rep->repaired_ckpt,
		       (unsigned long long)rep->repaired_jrec,
		       (unsigned long long)rep->bad_copies);
	if (repair)
		printf("dropped records: %llu\n",
		       (unsigned long long)rep->dropped_records);
	if (r == 0 && rep->verdict == DJMFS_FSCK_CORRECTED) {
		printf("%s: corrected: damaged metadata copies rewritten from "
		       "their good copies\n", vol);
		return DJMFS_CLI_FSCK_CORRECTED;
	}
	if (r == 0) {
		printf("%s: clean\n", vol);
		return 0;
	}
	if (rep->verdict == DJMFS_FSCK_CORRECTED) {
		printf("%s: problems found and repaired%s\n", vol,
		       rep->dropped_records ? ", records dropped" : "");
		return DJMFS_CLI_FSCK_CORRECTED;
	}
	printf("%s: problems found%s\n", vol,
	       repair ? ", not repaired" :
	       rep->journal_end >= DJMFS_FSCK_JOURNAL_DAMAGED ?
	       "; run with --repair to salvage what is intact" :
	       "; run with --repair to fix them");
	return DJMFS_CLI_FSCK_ERRORS;
}
