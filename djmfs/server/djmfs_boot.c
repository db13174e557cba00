/*
 * How the metadata server comes up from its volume, before its loop
 * runs: open the volume (rewriting a bad superblock copy), upgrade a
 * format 1 volume to format 2 unless told otherwise, load the newest
 * checkpoint (rewriting a bad copy of a slot), replay the journal
 * after it, rebuild free space from what the maps hold (reservations of
 * the dead server's sessions come back), then write a fresh checkpoint
 * into the other slot and start the journal's new epoch.  When the host
 * file system under a volume file has no room (it is full before the
 * boot writes, or the checkpoint's write gets ENOSPC or EDQUOT), the
 * server comes up read-only instead: it serves what it loaded and
 * writes nothing until it restarts.  Everything the boot learns is kept
 * in the server's boot figures for the tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "djmfs_srv.h"

const struct djmfs__boot_info *
djmfs__server_boot_info(const struct djmfs_server *s)
{
	return &s->boot;
}

/* ------------------------------------------------------------------ */
/* Boot                                                                 */
/* ------------------------------------------------------------------ */

static int replay_one(void *arg, const struct djmfs__jrec *r)
{
	struct djmfs_server *s = arg;
	int err;

	/* Only a salvage hands over a record past a gap: the seqs no copy
	 * holds are skipped so the record can apply if it still fits. */
	while (djmfs__meta_seq(s->meta) + 1 < r->seq) {
		djmfs__meta_skip(s->meta, djmfs__meta_seq(s->meta) + 1);
		s->boot.salvaged = 1;
	}
	if (s->boot.salvaged && r->type == DJMFS_J_FILE_CREATE)
		djmfs__meta_skip_inos(s->meta, r->ino);
	s->cur_ino = r->ino;
	err = djmfs__meta_apply(s->meta, r);
	if (err < 0) /* logged and counted by the replay */
		djmfs__meta_skip(s->meta, r->seq);
	return err;
}

/* What the records found beyond a damaged one touch: their count and
 * seqs, the files by name where the state knows them. */
static void lost_summary(const struct djmfs_server *s,
			 const struct djmfs__replay_info *ri, char *out,
			 size_t n)
{
	size_t len;

	len = (size_t)snprintf(out, n, "%" PRIu64 " records (seq %" PRIu64
			       "..%" PRIu64 ", %" PRIu64 " publishes) of %"
			       PRIu64 " files:", ri->lost_records,
			       ri->lost_first, ri->lost_last,
			       ri->lost_publishes,
			       ri->n_lost_inos + ri->lost_inos_more);
	for (unsigned i = 0; i < ri->n_lost_inos && len < n; i++) {
		const char *name = djmfs__meta_name(s->meta, ri->lost_inos[i]);

		if (!name && ri->lost_names[i][0])
			name = ri->lost_names[i];
		if (name)
			len += (size_t)snprintf(out + len, n - len, " %s",
						name);
		else
			len += (size_t)snprintf(out + len, n - len,
						" ino %" PRIu64,
						ri->lost_inos[i]);
	}
	if (ri->lost_inos_more && len < n)
		snprintf(out + len, n - len, " and %" PRIu64 " more",
			 ri->lost_inos_more);
}

/*
 * The journal proves that what replay could read is not everything that
 * was acknowledged: a damaged record with valid ones after it, or a
 * checkpoint older than the journal's epoch.  Serving on, and the
 * checkpoint boot_commit() would write, would drop those records for
 * good, so the server refuses, naming what it would lose, unless the
 * operator chose to salvage (the records after the gap were applied).
 */
static int boot_damage(struct djmfs_server *s, const struct djmfs__ckpt *ck,
		       const struct djmfs__replay_info *ri, int salvage)
{
	const struct djmfs_log *log = &s->o.log;
	char where[400], lost[400];

	if (ri->end == DJMFS__JEND_STALE_CKPT)
		snprintf(where, sizeof(where), "checkpoint generation %" PRIu64
			 " (slot %u) is not the newest: the journal holds "
			 "records of epoch %" PRIu64 " (the newest "
			 "checkpoint's image is unreadable)", ck->gen, ck->slot,
			 ri->max_epoch);
	else
		snprintf(where, sizeof(where), "journal damaged at offset %"
			 PRIu64 " (volume offset %" PRIu64 ", epoch %" PRIu64
			 ", expected seq %" PRIu64 ": %s), valid records "
			 "follow up to offset %" PRIu64, ri->end_off,
			 s->vol->sb.journal_off + ri->end_off, ck->gen,
			 salvage ? ri->gap_first : ri->last_seq + 1, ri->stop,
			 ri->lost_end_off);
	lost_summary(s, ri, lost, sizeof(lost));
	if (!salvage) {
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: not serving: %s; going "
			   "on would lose %s.  Run `djmfs fsck --repair %s` or "
			   "start with --salvage to keep what is intact",
			   s->volume, where, lost, s->volume);
		return -EUCLEAN;
	}
	s->boot.salvaged = 1;
	djmfs__log(log, DJMFS_LOG_ERROR, "%s: salvage: %s; applied %s%s; seqs "
		   "%" PRIu64 "..%" PRIu64 " are lost, %" PRIu64 " records "
		   "refused", s->volume, where, lost,
		   ri->gap_first ? "" : " (no gap)", ri->gap_first,
		   ri->gap_last, ri->skipped);
	return 0;
}

/*
 * A format 1 volume at a writable start is upgraded (djmfs_upgrade.c)
 * unless the options say otherwise.  A host with no room for copy B
 * (nothing was written) leaves it format 1, served as it is.
 */
static int boot_upgrade(struct djmfs_server *s)
{
	const struct djmfs_log *log = &s->o.log;
	int err;

	if (s->vol->sb.version >= 2 || s->o.upgrade == DJMFS_UPGRADE_KEEP)
		return 0;
	if (s->o.upgrade == DJMFS_UPGRADE_REFUSE) {
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: volume format 1: run "
			   "djmfs upgrade", s->volume);
		return -EPROTO;
	}
	err = djmfs__vol_upgrade(s->vol, log);
	if (err == -ENOSPC || err == -EDQUOT) {
		djmfs__log(log, DJMFS_LOG_WARN, "%s: serving format 1 (one copy "
			   "of the metadata) until djmfs upgrade succeeds",
			   s->volume);
		return 0;
	}
	if (err == 0)
		s->boot.upgraded = 1;
	return err;
}

/* Volume, newest checkpoint, then the journal after it. */
static int boot_load(struct djmfs_server *s)
{
	const struct djmfs_log *log = &s->o.log;
	int salvage = !!(s->o.flags & DJMFS_SERVER_SALVAGE);
	struct djmfs__ckpt ck = { 0 };
	struct djmfs__replay_info ri;
	struct djmfs__meta_opts mo;
	int err;

	err = djmfs__vol_open(&s->vol, s->volume, DJMFS__VOL_EXCL, log);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__vol_open %s: %s",
			   s->volume, strerror(-err));
		return err;
	}
	err = boot_upgrade(s);
	if (err < 0)
		return err;
	err = djmfs__ckpt_load(s->vol, &ck, log);
	s->boot.repaired_sb = s->vol->repaired_sb;
	s->boot.repaired_ckpt = s->vol->repaired_ckpt;
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__ckpt_load %s: %s",
			   s->volume, strerror(-err));
		return err;
	}
	djmfs__log(log, DJMFS_LOG_DEBUG,
		   "checkpoint generation %llu in slot %u: %zu bytes, seq %llu",
		   (unsigned long long)ck.gen, ck.slot, ck.img_len,
		   (unsigned long long)ck.last_seq);
	s->boot.ckpt_gen = ck.gen;
	s->boot_slot = ck.slot;
	mo = (struct djmfs__meta_opts){ s->vol->sb.data_off, s->vol->sb.n_aus,
					s->vol->sb.au_size, log,
					djmfs__sess_on_free, s, 1 };
	err = djmfs__meta_new(&s->meta, &mo);
	if (err == 0)
		err = djmfs__meta_load(s->meta, ck.img, ck.img_len, ck.last_seq);
	free(ck.img);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__meta_load: %s",
			   strerror(-err));
		return err;
	}
	s->boot.max_gen = ck.max_gen;
	err = djmfs__journal_replay(s->vol, ck.gen, ck.last_seq,
				    salvage ? DJMFS__REPLAY_SALVAGE : 0,
				    replay_one, s, &ri, log);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__journal_replay: %s",
			   strerror(-err));
		return err;
	}
	s->boot.records_replayed = ri.records;
	s->boot.records_skipped = ri.skipped;
	s->boot.repaired_jrec = s->vol->repaired_jrec;
	s->boot.journal_end = ri.end;
	s->boot.max_epoch = ri.max_epoch;
	if (ri.end > DJMFS__JEND_TORN) {
		err = boot_damage(s, &ck, &ri, salvage);
		if (err < 0)
			return err;
	}
	djmfs__log(log, DJMFS_LOG_DEBUG,
		   "journal replayed: %llu records, %llu skipped, up to seq "
		   "%llu (%s)",
		   (unsigned long long)ri.records,
		   (unsigned long long)ri.skipped,
		   (unsigned long long)djmfs__meta_seq(s->meta), ri.stop);
	return 0;
}

static int mark_mapped(void *arg, uint64_t ino, uint64_t first, uint64_t n)
{
	struct djmfs_server *s = arg;
	uint64_t twice = djmfs__alloc_mark_used(s->alloc, first, n);

	if (twice) {
		s->boot.double_claims += twice;
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "ino %llu maps units %llu+%llu, %llu of them "
			   "already claimed by another map",
			   (unsigned long long)ino, (unsigned long long)first,
			   (unsigned long long)n, (unsigned long long)twice);
	}
	return 0;
}

/* Free space is whatever no map holds: reservations of the dead
 * server's sessions come back here. */
static int boot_space(struct djmfs_server *s)
{
	int err;

	err = djmfs__alloc_new(&s->alloc, s->vol->sb.n_aus,
			       s->o.prefetch_aus, &s->o.log);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "djmfs__alloc_new: %s",
			   strerror(-err));
		return err;
	}
	err = djmfs__meta_walk_mapped(s->meta, mark_mapped, s);
	if (err < 0)
		return err;
	s->boot.units_reclaimed = djmfs__meta_drop_reservations(s->meta);
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG,
		   "free space rebuilt: %llu units reclaimed from reservations",
		   (unsigned long long)s->boot.units_reclaimed);
	return 0;
}

/*
 * Whether the host file system under a volume file is too full for a
 * recording: the file still has holes (a write into one needs a host
 * block) and less than one allocation unit is available.  A device, or
 * a file with every block allocated, never needs the host's room.
 * Fills @why with the figures when it is.
 */
static int host_full(const struct djmfs_server *s, char *why, size_t n)
{
	uint32_t au = s->vol->sb.au_size;
	struct statvfs sv;
	struct stat st;
	uint64_t avail;

	if (fstat(s->vol->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_blocks * 512u >= (uint64_t)st.st_size ||
	    fstatvfs(s->vol->fd, &sv) < 0)
		return 0;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail >= au)
		return 0;
	snprintf(why, n, "%" PRIu64 " bytes available for the volume file's "
		 "holes, less than one %" PRIu32 "-byte unit", avail, au);
	return 1;
}

/*
 * Comes up read-only: what the boot loaded (the newest checkpoint and
 * the journal replayed after it) is on the volume already, so it is
 * durable as it stands and readers see it at once.  Nothing is written:
 * no checkpoint, no journal epoch.  A checkpoint that failed on the way
 * here aimed at the older slot and writes its header only after a whole
 * image, so the next boot finds the same checkpoint and journal.
 */
static int boot_read_only(struct djmfs_server *s, const char *why)
{
	uint64_t seq = djmfs__meta_seq(s->meta);
	int err;

	s->read_only = -EROFS;
	s->boot.read_only = 1;
	djmfs__meta_seal(s->meta);
	djmfs__meta_mark_durable(s->meta, seq);
	s->durable_seq = s->appended_seq = s->last_ckpt_seq = seq;
	s->jnl_durable = seq;
	djmfs__log(&s->o.log, DJMFS_LOG_WARN, "%s: host file system full "
		   "(%s): serving read-only: reads, snapshots and stat work; "
		   "nothing that writes (open for write, create, reserve, "
		   "publish, unlink) does until the server restarts with room "
		   "on the host", s->volume, why);
	err = djmfs__alloc_start(s->alloc);
	if (err < 0)
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_start: %s", strerror(-err));
	return err;
}

/* A fresh checkpoint in the other slot, then the journal's new epoch;
 * read-only when the host has no room for them. */
static int boot_commit(struct djmfs_server *s)
{
	const uint64_t seen[] = { s->boot.ckpt_gen, s->boot.max_gen,
				  s->boot.max_epoch };
	uint64_t seq = djmfs__meta_seq(s->meta), gen;
	unsigned slot = 1 - s->boot_slot;
	struct djmfs__journal_opts jo;
	struct djmfs__buf img;
	char why[160];
	int err;

	/* Above every generation a slot or the journal names, so an epoch
	 * whose records still lie in the journal is never started again. */
	err = djmfs__next_gen(seen, sizeof(seen) / sizeof(seen[0]), &gen);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "%s: checkpoint "
			   "generation %" PRIu64 " is the last one: %s",
			   s->volume, s->boot.max_gen, strerror(-err));
		return err;
	}
	if (host_full(s, why, sizeof(why)))
		return boot_read_only(s, why);
	djmfs__buf_init(&img);
	err = djmfs__meta_serialize(s->meta, &img);
	if (err == 0)
		err = djmfs__ckpt_store(s->vol, slot, gen, seq, img.p, img.len);
	if ((err == -ENOSPC || err == -EDQUOT) &&
	    img.len <= djmfs__ckpt_room(s->vol)) {
		djmfs__buf_free(&img);
		snprintf(why, sizeof(why), "writing the checkpoint to slot "
			 "%u: %s", slot, strerror(-err));
		return boot_read_only(s, why);
	}
	djmfs__buf_free(&img);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__ckpt_store slot %u: %s", slot,
			   strerror(-err));
		return err;
	}
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG,
		   "checkpoint generation %llu written to slot %u",
		   (unsigned long long)gen, slot);
	jo = (struct djmfs__journal_opts){ s->vol, gen, slot, seq + 1,
					   s->ev_jnl.fd,
					   (uint64_t)s->o.batch_us * 1000u,
					   &s->o.log };
	err = djmfs__journal_start(&s->jnl, &jo);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__journal_start: %s", strerror(-err));
		return err;
	}
	djmfs__meta_seal(s->meta);
	djmfs__meta_mark_durable(s->meta, seq);
	s->durable_seq = s->appended_seq = s->last_ckpt_seq = seq;
	s->jnl_durable = seq;
	err = djmfs__alloc_start(s->alloc);
	if (err < 0)
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_start: %s", strerror(-err));
	return err;
}

int djmfs__boot(struct djmfs_server *s)
{
	int err = boot_load(s);

	if (err == 0)
		err = boot_space(s);
	if (err == 0)
		err = boot_commit(s);
	return err;
}
