/*
 * Upgrading a format 1 volume to format 2 (djmfs upgrade, or a server's
 * first writable start): copy B of the metadata goes past the volume's
 * end, in a regular file grown for it or in a block device's slack, and
 * the superblock copies say so.  No data unit moves.  A block device
 * without slack is refused, naming what is missing; taking free units at
 * the data area's end is not done.
 *
 * The steps, each idempotent, so a crash anywhere leaves either the
 * format 1 volume (the upgrade runs again) or the complete format 2 one:
 *   1. load the newest checkpoint and replay its journal (no writes), and
 *      allocate copy B's range (growing a file); a full host refuses here,
 *      before anything is written
 *   2. a fresh checkpoint of that state, generation + 1, into the other
 *      slot of copy A, synced: the journal then holds nothing of the
 *      current epoch
 *   3. both slots of A copied to B byte for byte, B's journal area and
 *      A's first journal MiB zeroed, so both copies agree on all replay
 *      reads; synced
 *   4. superblock copies 2 and 1 at version 2; synced.  The commit point:
 *      copy 1 at version 2 outranks copy 0 at version 1, and everything it
 *      describes is durable
 *   5. superblock copy 0 at version 2; synced (cut before it, the next
 *      writable open rewrites copy 0 as a stale copy)
 * The test hook DJMFS_UPGRADE_STOP_AFTER=n kills the process with SIGKILL
 * once step n is done, standing in for a crash there.
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define MIB (UINT64_C(1) << 20)


/* Test hook: a crash once step @step is done. */
static void stop_after(unsigned step)
{
	const char *e = getenv("DJMFS_UPGRADE_STOP_AFTER");

	if (e && (unsigned)atoi(e) == step)
		raise(SIGKILL);
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The format 2 superblock of @v: copy B right after today's end, whole
 * MiB aligned; the volume grows to hold it. */
static void plan(const struct djmfs__vol *v, struct djmfs__sb *nsb)
{
	*nsb = v->sb;
	nsb->version = 2;
	nsb->mirror_off = (v->sb.vol_size + MIB - 1) / MIB * MIB;
	nsb->vol_size = nsb->mirror_off + djmfs__sb_mirror_len(&v->sb);
	nsb->features = DJMFS_FEAT_META_MIRROR;
	nsb->copy = 0;
	nsb->sb_gen = 2; /* format 1 counts as the first */
	nsb->csum_shift = 16;
	nsb->upgraded_ns = real_ns();
	djmfs__sb_derive(nsb);
}

/* Step 1's room: a file grows (allocated, so a full host says so now),
 * a device must already be long enough. */
static int make_room(struct djmfs__vol *v, const struct djmfs__sb *nsb,
		     uint64_t *had, const struct djmfs_log *log)
{
	uint64_t len = nsb->vol_size - nsb->mirror_off;
	int is_blk, err;

	err = djmfs__vol_fd_size(v->fd, had, &is_blk);
	if (err < 0)
		return err;
	if (is_blk) {
		if (*had >= nsb->vol_size)
			return 0;
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: upgrade needs %" PRIu64
			   " bytes past the volume's end at %" PRIu64 " for "
			   "the second copy of the metadata; the device has "
			   "%" PRIu64 " bytes.  Taking units of the data area "
			   "is not supported: grow the device", v->path,
			   nsb->vol_size - v->sb.vol_size, v->sb.vol_size,
			   *had);
		return -ENOSPC;
	}
	if (fallocate(v->fd, 0, (off_t)nsb->mirror_off, (off_t)len) == 0)
		return 0;
	err = -errno;
	if (err == -ENOSPC || err == -EDQUOT)
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: host file system full: "
			   "the second copy of the metadata needs %" PRIu64
			   " MiB; not upgraded", v->path, len / MIB);
	else if (err == -EOPNOTSUPP && ftruncate(v->fd,
			(off_t)(*had > nsb->vol_size ? *had : nsb->vol_size))
			== 0)
		return 0; /* no fallocate: a sparse file still works */
	else
		djmfs__log(log, DJMFS_LOG_ERROR, "fallocate(%s, %" PRIu64
			   " bytes at %" PRIu64 "): %s", v->path, len,
			   nsb->mirror_off, strerror(-err));
	return err;
}

static int replay_one(void *arg, const struct djmfs__jrec *r)
{
	int err = djmfs__meta_apply(arg, r);

	if (err < 0) /* logged by the replay, as a boot does */
		djmfs__meta_skip(arg, r->seq);
	return err;
}

/* Steps 1 and 2: the state as a boot would load it, written as a fresh
 * checkpoint into the other slot of copy A. */
static int fresh_checkpoint(struct djmfs__vol *v,
			    const struct djmfs_log *log)
{
	struct djmfs__meta_opts mo = { 0 };
	struct djmfs__replay_info ri;
	struct djmfs__meta *m = NULL;
	struct djmfs__ckpt ck;
	struct djmfs__buf img;
	uint64_t gen = 0;
	int err;

	djmfs__buf_init(&img);
	err = djmfs__ckpt_load(v, &ck, log);
	if (err < 0)
		return err;
	mo.data_off = v->sb.data_off;
	mo.n_aus = v->sb.n_aus;
	mo.au_size = v->sb.au_size;
	mo.log = log;
	err = djmfs__meta_new(&m, &mo);
	if (err == 0)
		err = djmfs__meta_load(m, ck.img, ck.img_len, ck.last_seq);
	if (err == 0)
		err = djmfs__journal_replay(v, ck.gen, ck.last_seq, 0,
					    replay_one, m, &ri, log);
	/* The checkpoint below retires the journal: never over damage that
	 * would lose acknowledged records (fsck says what and salvages). */
	if (err == 0 && ri.end > DJMFS__JEND_TORN) {
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: upgrade refused: the "
			   "journal is %s at offset %" PRIu64 " with %" PRIu64
			   " valid records beyond; run djmfs fsck", v->path,
			   djmfs__jend_name(ri.end), ri.end_off,
			   ri.lost_records);
		err = -EUCLEAN;
	}
	if (err == 0) {
		const uint64_t seen[] = { ck.gen, ck.max_gen, ri.max_epoch };

		err = djmfs__next_gen(seen, 3, &gen);
	}
	if (err == 0)
		err = djmfs__meta_serialize(m, &img);
	if (err == 0) {
		stop_after(1);
		err = djmfs__ckpt_store(v, ck.slot ^ 1, gen,
					djmfs__meta_seq(m), img.p, img.len);
	}
	if (err < 0)
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: upgrade: checkpoint %"
			   PRIu64 ": %s", v->path, ck.gen, strerror(-err));
	djmfs__buf_free(&img);
	djmfs__meta_free(m);
	free(ck.img);
	return err;
}

/* Copies @len bytes at @from to @to, or zeroes them (@from UINT64_MAX). */
static int copy_area(int fd, uint8_t *buf, uint64_t from, uint64_t to,
		     uint64_t len)
{
	int err = 0;

	if (from == UINT64_MAX)
		memset(buf, 0, MIB);
	for (uint64_t at = 0; at < len && err == 0; at += MIB) {
		size_t n = len - at < MIB ? (size_t)(len - at) : MIB;

		if (from != UINT64_MAX)
			err = djmfs__pread_full(fd, buf, n, from + at);
		if (err == 0)
			err = djmfs__pwrite_full(fd, buf, n, to + at);
	}
	return err;
}

/* Step 3: copy B made equal to what copy A holds for replay. */
static int fill_copy_b(struct djmfs__vol *v, const struct djmfs__sb *nsb)
{
	const struct djmfs__sb *sb = &v->sb;
	uint64_t zlen = sb->journal_len < MIB ? sb->journal_len : MIB;
	uint8_t *buf = malloc(MIB);
	int err;

	if (!buf)
		return -ENOMEM;
	err = copy_area(v->fd, buf, UINT64_MAX, sb->journal_off, zlen);
	if (err == 0)
		err = copy_area(v->fd, buf, UINT64_MAX, nsb->mj_off,
				sb->journal_len);
	for (unsigned i = 0; i < 2 && err == 0; i++)
		err = copy_area(v->fd, buf, sb->ckpt_off[i],
				nsb->mckpt_off[i], sb->ckpt_len);
	free(buf);
	return err ? err : djmfs__datasync(v->fd);
}

/* Steps 4 and 5: the commit (copies 2 and 1), then copy 0. */
static int write_superblocks(struct djmfs__vol *v,
			     const struct djmfs__sb *nsb)
{
	int err = djmfs__sb_write_copy(v->fd, nsb, 2);

	if (err == 0)
		err = djmfs__sb_write_copy(v->fd, nsb, 1);
	if (err == 0)
		err = djmfs__datasync(v->fd);
	if (err < 0)
		return err;
	stop_after(4);
	err = djmfs__sb_write_copy(v->fd, nsb, 0);
	return err ? err : djmfs__datasync(v->fd);
}

int djmfs__vol_upgrade(struct djmfs__vol *v, const struct djmfs_log *log)
{
	struct djmfs__sb nsb;
	uint64_t had = 0;
	int err;

	if (v->sb.version >= 2)
		return 0;
	if (v->rdonly)
		return -EROFS;
	plan(v, &nsb);
	err = make_room(v, &nsb, &had, log);
	if (err == 0)
		err = fresh_checkpoint(v, log);
	if (err < 0)
		return err;
	stop_after(2);
	err = fill_copy_b(v, &nsb);
	if (err == 0) {
		stop_after(3);
		err = write_superblocks(v, &nsb);
	}
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: upgrade: writing the "
			   "second copy: %s", v->path, strerror(-err));
		return err;
	}
	djmfs__log(log, DJMFS_LOG_WARN, "%s: volume format 1 upgraded to 2: "
		   "second copy of the metadata (%" PRIu64 " MiB) at offset %"
		   PRIu64 " (%s grown from %" PRIu64 " to %" PRIu64 " bytes)",
		   v->path, djmfs__sb_mirror_len(&nsb) / MIB, nsb.mirror_off,
		   had < nsb.vol_size ? "file" : "volume",
		   had < nsb.vol_size ? had : v->sb.vol_size, nsb.vol_size);
	djmfs__vol_set_sb(v, &nsb);
	return 0;
}

int djmfs_upgrade(const char *path, const struct djmfs_log *log)
{
	struct djmfs__vol *v;
	int err;

	if (!path || !*path)
		return -EINVAL;
	err = djmfs__vol_open(&v, path, DJMFS__VOL_EXCL, log);
	if (err < 0)
		return err;
	if (v->sb.version >= 2) {
		djmfs__log(log, DJMFS_LOG_INFO, "%s: already format %" PRIu32,
			   path, v->sb.version);
		err = 1;
	} else {
		err = djmfs__vol_upgrade(v, log);
	}
	djmfs__vol_close(v);
	return err;
}
