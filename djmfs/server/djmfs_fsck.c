/*
 * The offline checker behind `djmfs fsck`: with the volume locked against
 * any server, it rebuilds the metadata exactly as a booting server would
 * (newest checkpoint, then the journal of its epoch), checks every file's
 * maps against the data area, finds units two files claim, and counts the
 * units in use, free, and orphaned (reservations of sessions that died
 * with their server).  On a volume that keeps two copies of its
 * metadata, a bad copy is rewritten from the good one as the volume is
 * opened and loaded (not with -n): an exact repair, reported as
 * corrected.  Repair never rewrites a file's maps: it quarantines
 * the bad files (so opens refuse them and their units stay claimed), drops
 * the reservations, and writes the result as a new checkpoint in the other
 * slot with the next generation, which retires the old journal.
 *
 * What counts as a problem (-EUCLEAN): a file failing its consistency
 * check, a unit mapped by two files (both are bad, unless already
 * quarantined), a journal record that replay could not apply, and a
 * journal that proves acknowledged records would be lost: valid records
 * beyond a damaged one, or records of an epoch newer than the checkpoint
 * (whose image is unreadable).  Repair salvages those: the records
 * beyond the damage apply where they still fit, the rest are dropped and
 * counted, so the report never says clean after a loss.  A bad copy of
 * the superblock, of a checkpoint slot or of a journal record is
 * rewritten from its good copy as the volume is opened and loaded (not
 * with -n, which only reports it).  Orphaned reservations and a torn
 * last group commit are normal leftovers of a crash that the next boot
 * deals with anyway; they are reported and, with repair, orphans are
 * dropped, but neither is a problem by itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djmfs_store.h"
#include "djmfs_server.h"

#define NO_OWNER UINT64_MAX

struct bad_file {
	uint64_t ino;
	char why[128]; /* the first problem found, for the QUARANTINE record */
};

struct fsck {
	const struct djmfs_log *log;
	struct djmfs__vol *v;
	struct djmfs__ckpt ck;
	struct djmfs__meta *m;
	struct djmfs_fsck_report rep;
	uint64_t skipped;   /* journal records replay refused */
	struct djmfs__replay_info ri;
	int damaged;	    /* the journal proves records would be lost */
	int past_gap;	    /* salvage: records before this one are lost */
	uint64_t *owner;    /* per unit: the ino mapping it, or NO_OWNER */
	struct bad_file *bad; /* files to quarantine, no duplicates */
	size_t n_bad;
	size_t cap_bad;
	int err;	    /* first allocation failure inside a walk */
};

static const struct djmfs__file *file_by_ino(const struct fsck *c,
					     uint64_t ino)
{
	const char *name = djmfs__meta_name(c->m, ino);

	return name ? djmfs__root_find(djmfs__meta_working(c->m), name)
		    : NULL;
}

static const char *name_of(const struct fsck *c, uint64_t ino)
{
	const char *name = djmfs__meta_name(c->m, ino);

	return name ? name : "?";
}

static int is_quarantined(const struct fsck *c, uint64_t ino)
{
	const struct djmfs__file *f = file_by_ino(c, ino);

	return f && (f->flags & DJMFS_FILE_QUARANTINED);
}

/* Adds @ino to the files to quarantine (once; never an already
 * quarantined one).  Returns 1 when newly added. */
static int mark_bad(struct fsck *c, uint64_t ino, const char *why)
{
	if (is_quarantined(c, ino))
		return 0;
	for (size_t i = 0; i < c->n_bad; i++)
		if (c->bad[i].ino == ino)
			return 0;
	if (c->n_bad == c->cap_bad) {
		size_t cap = c->cap_bad ? c->cap_bad * 2 : 16;
		struct bad_file *p = realloc(c->bad, cap * sizeof(*p));

		if (!p) {
			c->err = -ENOMEM;
			return 0;
		}
		c->bad = p;
		c->cap_bad = cap;
	}
	c->bad[c->n_bad].ino = ino;
	snprintf(c->bad[c->n_bad].why, sizeof(c->bad[0].why), "fsck: %s", why);
	c->n_bad++;
	c->rep.bad_files++;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Loading: checkpoint, then the journal of its epoch                   */
/* ------------------------------------------------------------------ */

static int replay_one(void *arg, const struct djmfs__jrec *r)
{
	struct fsck *c = arg;
	int err;

	/* Only a salvage hands over a record past a gap: the seqs (and
	 * inodes) the lost records used are skipped, never reused. */
	while (djmfs__meta_seq(c->m) + 1 < r->seq) {
		djmfs__meta_skip(c->m, djmfs__meta_seq(c->m) + 1);
		c->past_gap = 1;
	}
	if (c->past_gap && r->type == DJMFS_J_FILE_CREATE)
		djmfs__meta_skip_inos(c->m, r->ino);
	err = djmfs__meta_apply(c->m, r);
	if (err < 0) /* counted as a problem; the records after it apply */
		djmfs__meta_skip(c->m, r->seq);
	return err;
}

static int copy_state(int same, int repaired)
{
	return repaired ? DJMFS_COPY_REPAIRED : same ? DJMFS_COPY_OK
						     : DJMFS_COPY_BAD;
}

/* What opening the volume (@loaded < 0) or then loading the checkpoint
 * (@loaded 1: loaded, 0: failed) found per copy. */
static void note_copies(struct fsck *c, int loaded)
{
	const struct djmfs__vol *v = c->v;

	c->rep.format = v->sb.version;
	c->rep.sb_gen = v->sb.sb_gen;
	c->rep.ckpt_newest = loaded > 0 ? (int)c->ck.slot : -1;
	if (loaded < 0) { /* only opened */
		for (unsigned i = 0; i < djmfs__sb_ncopies(&v->sb); i++)
			c->rep.sb_copy[i] = copy_state(v->sb_copies[i].same,
						       v->sb_copies[i].repaired);
		return;
	}
	for (unsigned i = 0; i < 2; i++) {
		c->rep.ckpt_gen[i] = v->ckpt_gen[i];
		for (unsigned k = 0; k < 2; k++)
			c->rep.ckpt_copy[i][k] = (int)v->ckpt_copy[i][k];
	}
}

static int fsck_load(struct fsck *c, const char *volume, int repair,
		     int no_change)
{
	unsigned flags = DJMFS__VOL_EXCL | (no_change ? DJMFS__VOL_RDONLY : 0);
	struct djmfs__meta_opts mo = { 0 };
	struct djmfs__replay_info *ri = &c->ri;
	int err;

	err = djmfs__vol_open(&c->v, volume, flags, c->log);
	if (err < 0)
		return err; /* vol_open logged why */
	note_copies(c, -1);
	err = djmfs__ckpt_load(c->v, &c->ck, c->log);
	note_copies(c, err == 0);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: "
			   "djmfs__ckpt_load: %s", volume, strerror(-err));
		return err;
	}
	mo.data_off = c->v->sb.data_off;
	mo.n_aus = c->v->sb.n_aus;
	mo.au_size = c->v->sb.au_size;
	mo.log = c->log;
	err = djmfs__meta_new(&c->m, &mo);
	if (!err)
		err = djmfs__meta_load(c->m, c->ck.img, c->ck.img_len,
				       c->ck.last_seq);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: checkpoint "
			   "%llu (slot %u): %s", volume,
			   (unsigned long long)c->ck.gen, c->ck.slot,
			   strerror(-err));
		return err == -EBADMSG ? -EUCLEAN : err;
	}
	c->rep.bad_slots = (unsigned)__builtin_popcount(c->ck.bad_slots);
	err = djmfs__journal_replay(c->v, c->ck.gen, c->ck.last_seq,
				    repair ? DJMFS__REPLAY_SALVAGE : 0,
				    replay_one, c, ri, c->log);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: "
			   "djmfs__journal_replay: %s", volume,
			   strerror(-err));
		return err;
	}
	c->rep.records_replayed = ri->records;
	c->rep.journal_end = (int)ri->end;
	c->rep.journal_end_off = ri->end_off;
	c->rep.lost_records = ri->lost_records;
	c->rep.lost_first = ri->lost_first;
	c->rep.lost_last = ri->lost_last;
	if (ri->end == DJMFS__JEND_STALE_CKPT)
		c->rep.journal_newer_epoch = ri->max_epoch;
	c->skipped = ri->skipped;
	c->damaged = ri->end > DJMFS__JEND_TORN;
	if (c->damaged && repair)
		c->rep.dropped_records = ri->skipped +
			(ri->gap_first ? ri->gap_last - ri->gap_first + 1 : 0);
	if (c->damaged)
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: %s: %llu valid "
			   "records (seq %llu..%llu) lie beyond offset %llu of "
			   "the journal%s", volume, djmfs__jend_name(ri->end),
			   (unsigned long long)ri->lost_records,
			   (unsigned long long)ri->lost_first,
			   (unsigned long long)ri->lost_last,
			   (unsigned long long)ri->end_off,
			   repair ? "; salvaged" : "");
	if (ri->skipped)
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: %llu journal "
			   "records could not be applied", volume,
			   (unsigned long long)ri->skipped);
	djmfs__log(c->log, DJMFS_LOG_INFO, "fsck: %s: checkpoint %llu, %llu "
		   "records replayed (%s)", volume,
		   (unsigned long long)c->ck.gen,
		   (unsigned long long)ri->records, ri->stop);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checks                                                               */
/* ------------------------------------------------------------------ */

static int check_file(void *arg, const struct djmfs__file *f)
{
	struct fsck *c = arg;
	char why[160] = "";

	c->rep.files++;
	if (f->flags & DJMFS_FILE_QUARANTINED) {
		c->rep.quarantined++;
		return 0;
	}
	if (djmfs__file_check(f, c->v->sb.data_off, c->v->data_end, why,
			      sizeof(why)) < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: file %s: %s",
			   f->name, why);
		mark_bad(c, f->ino, why);
	}
	return c->err;
}

/* Two files claim a unit: both are bad (the quarantined ones already are). */
static void overlap(struct fsck *c, uint64_t ino, uint64_t other,
		    uint64_t au, uint64_t count)
{
	char why[128];
	int a, b;

	snprintf(why, sizeof(why), "unit %llu also mapped by %s",
		 (unsigned long long)au, name_of(c, other));
	a = mark_bad(c, ino, why);
	snprintf(why, sizeof(why), "unit %llu also mapped by %s",
		 (unsigned long long)au, name_of(c, ino));
	b = mark_bad(c, other, why);

	djmfs__log(c->log, (a || b) ? DJMFS_LOG_ERROR : DJMFS_LOG_DEBUG,
		   "fsck: files %s and %s both map unit %llu (%llu shared "
		   "units in this extent)", name_of(c, other), name_of(c, ino),
		   (unsigned long long)au, (unsigned long long)count);
}

/* One mapped range: claims its units, noting units another file holds.
 * Ranges of one file may share a unit (objects meet mid-unit). */
static int claim_mapped(void *arg, uint64_t ino, uint64_t first,
			uint64_t n)
{
	struct fsck *c = arg;
	uint64_t n_aus = c->v->sb.n_aus, shared = 0, at = 0, other = 0;

	if (first >= n_aus)
		return 0; /* outside the volume: check_file said so */
	if (n > n_aus - first)
		n = n_aus - first;
	for (uint64_t u = first; u < first + n; u++) {
		if (c->owner[u] == NO_OWNER) {
			c->owner[u] = ino;
			c->rep.used_aus++;
		} else if (c->owner[u] != ino) {
			if (!shared++) {
				at = u;
				other = c->owner[u];
			}
		}
	}
	if (shared)
		overlap(c, ino, other, at, shared);
	return c->err;
}

/* A reserved unit no file maps is an orphan; count each unit once. */
static int count_orphans(void *arg, uint64_t ino, struct djmfs__run run)
{
	struct fsck *c = arg;
	uint64_t n_aus = c->v->sb.n_aus;

	(void)ino;
	for (uint64_t u = run.first; u < run.first + run.count && u < n_aus;
	     u++) {
		if (c->owner[u] != NO_OWNER)
			continue;
		c->owner[u] = NO_OWNER - 1; /* never an ino: just "seen" */
		c->rep.orphan_aus++;
	}
	return 0;
}

static int fsck_check(struct fsck *c)
{
	uint64_t n_aus = c->v->sb.n_aus;
	int err;

	err = djmfs__root_walk(djmfs__meta_working(c->m), NULL, check_file, c);
	if (err < 0)
		return err;
	c->owner = malloc(n_aus * sizeof(*c->owner));
	if (!c->owner)
		return -ENOMEM;
	memset(c->owner, 0xff, n_aus * sizeof(*c->owner));
	err = djmfs__meta_walk_mapped(c->m, claim_mapped, c);
	if (err < 0)
		return err;
	err = djmfs__meta_walk_reserved(c->m, count_orphans, c);
	if (err < 0)
		return err;
	c->rep.free_aus = n_aus - c->rep.used_aus - c->rep.orphan_aus;
	if (c->rep.orphan_aus)
		djmfs__log(c->log, DJMFS_LOG_INFO, "fsck: %llu units reserved "
			   "by sessions that died with the server (orphans)",
			   (unsigned long long)c->rep.orphan_aus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Repair                                                               */
/* ------------------------------------------------------------------ */

static int quarantine(struct fsck *c, const struct bad_file *b)
{
	struct djmfs__jrec r;
	struct timespec ts;
	int err;

	memset(&r, 0, sizeof(r));
	clock_gettime(CLOCK_REALTIME, &ts);
	r.epoch = c->ck.gen;
	r.seq = djmfs__meta_seq(c->m) + 1;
	r.type = DJMFS_J_QUARANTINE;
	r.ino = b->ino;
	r.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	memcpy(r.u.quarantine.why, b->why, sizeof(r.u.quarantine.why));
	err = djmfs__meta_apply(c->m, &r);
	if (err < 0)
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: quarantine of %s: "
			   "djmfs__meta_apply: %s", name_of(c, b->ino),
			   strerror(-err));
	else
		djmfs__log(c->log, DJMFS_LOG_WARN, "fsck: file %s quarantined "
			   "(%s)", name_of(c, b->ino), b->why);
	return err;
}

static int fsck_repair(struct fsck *c)
{
	const uint64_t seen[] = { c->ck.gen, c->ck.max_gen, c->ri.max_epoch };
	struct djmfs__buf img;
	unsigned slot = c->ck.slot ^ 1;
	uint64_t gen;
	int err;

	/* Above every generation anything names, so no epoch is reused. */
	err = djmfs__next_gen(seen, sizeof(seen) / sizeof(seen[0]), &gen);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: no generation "
			   "left after %llu", c->v->path,
			   (unsigned long long)c->ck.max_gen);
		return err;
	}
	djmfs__buf_init(&img);
	for (size_t i = 0; i < c->n_bad && !err; i++)
		err = quarantine(c, &c->bad[i]);
	if (err < 0)
		goto out;
	djmfs__meta_drop_reservations(c->m);
	err = djmfs__meta_serialize(c->m, &img);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: "
			   "djmfs__meta_serialize: %s", strerror(-err));
		goto out;
	}
	err = djmfs__ckpt_store(c->v, slot, gen, djmfs__meta_seq(c->m), img.p,
				img.len);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: djmfs__ckpt_store"
			   "(slot %u): %s", slot, strerror(-err));
		goto out;
	}
	c->rep.repaired = 1;
	djmfs__log(c->log, DJMFS_LOG_INFO, "fsck: %s: checkpoint %llu written "
		   "to slot %u", c->v->path, (unsigned long long)gen, slot);
out:
	djmfs__buf_free(&img);
	return err;
}

/* ------------------------------------------------------------------ */
/* Entry point                                                          */
/* ------------------------------------------------------------------ */

/* What the load mended (or, read-only, found) in the metadata copies. */
static void fsck_copies(struct fsck *c)
{
	const struct djmfs__vol *v = c->v;

	c->rep.repaired_sb = v->repaired_sb;
	c->rep.repaired_ckpt = v->repaired_ckpt;
	c->rep.repaired_jrec = v->repaired_jrec;
	c->rep.bad_copies = v->bad_jrec - v->repaired_jrec;
	for (unsigned i = 0; i < 2; i++)
		for (unsigned k = 0; k < 2; k++)
			c->rep.bad_copies +=
				v->ckpt_copy[i][k] == DJMFS__COPY_BAD &&
				!(c->ck.bad_slots & (1u << i));
	for (unsigned k = 0; k < djmfs__sb_ncopies(&v->sb); k++)
		c->rep.bad_copies += v->rdonly && !v->sb_copies[k].same;
}

static int fsck_run(struct fsck *c, const char *volume, int repair,
		    int no_change)
{
	int problems, err, mended;

	err = fsck_load(c, volume, repair, no_change);
	if (c->v)
		fsck_copies(c);
	if (err == -EUCLEAN)
		c->rep.verdict = DJMFS_FSCK_ERRORS;
	if (!err)
		err = fsck_check(c);
	if (!err)
		err = c->err;
	if (err < 0)
		return err;
	problems = c->n_bad > 0 || c->skipped > 0 || c->damaged;
	if (repair && (problems || c->rep.orphan_aus)) {
		err = fsck_repair(c);
		if (err < 0)
			return err;
	}
	fsck_copies(c);
	mended = c->rep.repaired_sb + c->rep.repaired_ckpt +
		 c->rep.repaired_jrec > 0;
	c->rep.verdict = problems ? (c->rep.repaired ? DJMFS_FSCK_CORRECTED
						     : DJMFS_FSCK_ERRORS)
			 : c->rep.bad_copies ? DJMFS_FSCK_ERRORS
			 : mended ? DJMFS_FSCK_CORRECTED : DJMFS_FSCK_CLEAN;
	if (!problems && c->rep.bad_copies)
		problems = 1; /* -n found a bad copy it did not mend */
	djmfs__log(c->log, problems ? DJMFS_LOG_WARN : DJMFS_LOG_INFO,
		   "fsck: %s: %llu files (%llu bad, %llu quarantined), %llu "
		   "units used, %llu orphaned, %llu free", volume,
		   (unsigned long long)c->rep.files,
		   (unsigned long long)c->rep.bad_files,
		   (unsigned long long)c->rep.quarantined,
		   (unsigned long long)c->rep.used_aus,
		   (unsigned long long)c->rep.orphan_aus,
		   (unsigned long long)c->rep.free_aus);
	return problems ? -EUCLEAN : 0;
}

int djmfs_fsck(const char *volume, unsigned flags,
	       struct djmfs_fsck_report *rep, const struct djmfs_log *log)
{
	struct fsck c;
	int err;

	memset(&c, 0, sizeof(c));
	c.log = log;
	if (!volume) {
		err = -EINVAL;
		goto out;
	}
	err = fsck_run(&c, volume, !!(flags & DJMFS_FSCK_REPAIR),
		       !!(flags & DJMFS_FSCK_NO_CHANGE));
out:
	if (rep)
		*rep = c.rep;
	free(c.owner);
	free(c.bad);
	free(c.ck.img);
	djmfs__meta_free(c.m);
	djmfs__vol_close(c.v);
	return err;
}
