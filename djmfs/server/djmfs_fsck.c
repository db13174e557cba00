/*
 * The offline checker behind `djmfs fsck`: with the volume locked against
 * any server, it rebuilds the metadata exactly as a booting server would
 * (newest checkpoint, then the journal of its epoch), checks every file's
 * maps against the data area, finds units two files claim, and counts the
 * units in use, free, and orphaned (reservations of sessions that died
 * with their server).  Repair never rewrites a file's maps: it quarantines
 * the bad files (so opens refuse them and their units stay claimed), drops
 * the reservations, and writes the result as a new checkpoint in the other
 * slot with the next generation, which retires the old journal.
 *
 * What counts as a problem (-EUCLEAN): a file failing its consistency
 * check, a unit mapped by two files (both are bad, unless already
 * quarantined), a journal record that replay could not apply, a bad copy
 * of the superblock or of a checkpoint slot (rewritten from a good copy
 * when the volume is opened for --repair, else only reported).  Orphaned
 * reservations are a normal leftover of a crash that the next boot
 * reclaims anyway; they are reported and, with repair, dropped, but are
 * not a problem by themselves.
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
	uint64_t bad_copies; /* of the superblock or a slot, found bad */
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
	int err = djmfs__meta_apply(arg, r);

	if (err < 0) /* counted as a problem; the records after it apply */
		djmfs__meta_skip(arg, r->seq);
	return err;
}

static int copy_state(struct fsck *c, int same, int repaired)
{
	if (repaired || !same)
		c->bad_copies++;
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
	c->rep.repaired_sb = v->repaired_sb;
	c->rep.repaired_ckpt = v->repaired_ckpt;
	c->rep.ckpt_newest = loaded > 0 ? (int)c->ck.slot : -1;
	if (loaded < 0) { /* only opened */
		for (unsigned i = 0; i < djmfs__sb_ncopies(&v->sb); i++)
			c->rep.sb_copy[i] = copy_state(c,
				v->sb_copies[i].same,
				v->sb_copies[i].repaired);
		return;
	}
	for (unsigned i = 0; i < 2; i++) {
		c->rep.ckpt_gen[i] = v->ckpt_gen[i];
		for (unsigned k = 0; k < 2; k++) {
			int st = (int)v->ckpt_copy[i][k];

			c->rep.ckpt_copy[i][k] = st;
			if (st == DJMFS_COPY_BAD || st == DJMFS_COPY_REPAIRED)
				c->bad_copies++;
		}
	}
}

static int fsck_load(struct fsck *c, const char *volume, int repair)
{
	unsigned flags = DJMFS__VOL_EXCL | (repair ? 0 : DJMFS__VOL_RDONLY);
	struct djmfs__meta_opts mo = { 0 };
	struct djmfs__replay_info ri = { 0 };
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
	err = djmfs__journal_replay(c->v, c->ck.gen, c->ck.last_seq,
				    replay_one, c->m, &ri, c->log);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: "
			   "djmfs__journal_replay: %s", volume,
			   strerror(-err));
		return err;
	}
	c->rep.records_replayed = ri.records;
	c->skipped = ri.skipped;
	if (ri.skipped)
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: %s: %llu journal "
			   "records could not be applied", volume,
			   (unsigned long long)ri.skipped);
	djmfs__log(c->log, DJMFS_LOG_INFO, "fsck: %s: checkpoint %llu, %llu "
		   "records replayed (%s)", volume,
		   (unsigned long long)c->ck.gen,
		   (unsigned long long)ri.records, ri.stop);
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
	struct djmfs__buf img;
	unsigned slot = c->ck.slot ^ 1;
	int err = 0;

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
	err = djmfs__ckpt_store(c->v, slot, c->ck.gen + 1,
				djmfs__meta_seq(c->m), img.p, img.len);
	if (err < 0) {
		djmfs__log(c->log, DJMFS_LOG_ERROR, "fsck: djmfs__ckpt_store"
			   "(slot %u): %s", slot, strerror(-err));
		goto out;
	}
	c->rep.repaired = 1;
	djmfs__log(c->log, DJMFS_LOG_INFO, "fsck: %s: checkpoint %llu written "
		   "to slot %u", c->v->path, (unsigned long long)c->ck.gen + 1,
		   slot);
out:
	djmfs__buf_free(&img);
	return err;
}

/* ------------------------------------------------------------------ */
/* Entry point                                                          */
/* ------------------------------------------------------------------ */

static int fsck_run(struct fsck *c, const char *volume, int repair)
{
	int problems, err;

	err = fsck_load(c, volume, repair);
	if (!err)
		err = fsck_check(c);
	if (!err)
		err = c->err;
	if (err < 0)
		return err;
	problems = c->n_bad > 0 || c->skipped > 0 || c->bad_copies > 0;
	if (repair && (problems || c->rep.orphan_aus)) {
		err = fsck_repair(c);
		if (err < 0)
			return err;
	}
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

int djmfs_fsck(const char *volume, int repair, struct djmfs_fsck_report *rep,
	       const struct djmfs_log *log)
{
	struct fsck c;
	int err;

	memset(&c, 0, sizeof(c));
	c.log = log;
	if (!volume) {
		err = -EINVAL;
		goto out;
	}
	err = fsck_run(&c, volume, repair);
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
