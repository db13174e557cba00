/*
 * The on-volume format below the namespace: where the superblock copies,
 * the journal, the two checkpoint slots, the data area and the second
 * copy of the metadata (format 2) lie, how the superblock is encoded and
 * checked, and opening a volume for the server or fsck, which rewrites a
 * damaged or stale superblock copy from the one it trusts (formatting is
 * djmfs_mkfs.c's, upgrading format 1 djmfs_upgrade.c's).  A regular file or a block device
 * may be a volume; everything here goes through an ordinary buffered
 * descriptor (the clients' data path uses its own O_DIRECT one).  The
 * superblock is validated strictly, because every later offset the server
 * and the clients use is derived from it.
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define MIB (UINT64_C(1) << 20)
#define MIN_AUS 16
#define JOURNAL_MAX (64 * MIB)
#define CKPT_MAX (128 * MIB)
#define SB_CRC_AT_V1 112 /* bytes covered by a version 1 CRC */
#define SB_CRC_AT_V2 252 /* and by a version 2 one */
#define CSUM_SHIFT 16	 /* 64 KiB data checksum blocks */

/* ------------------------------------------------------------------ */
/* Positioned I/O                                                       */
/* ------------------------------------------------------------------ */

int djmfs__pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t r = pwrite(fd, q, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* no progress and no reason: give up */
		q += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int djmfs__datasync(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Layout and superblock                                                */
/* ------------------------------------------------------------------ */

static uint64_t clamp64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

uint64_t djmfs__sb_mirror_len(const struct djmfs__sb *sb)
{
	return sb->ckpt_off[1] + sb->ckpt_len;
}

int djmfs__sb_layout_format(struct djmfs__sb *sb, uint64_t size,
			    uint32_t au_size, unsigned version)
{
	uint64_t meta_end, align, units_end;

	if (au_size == 0)
		au_size = (uint32_t)MIB;
	if (!djmfs__au_size_ok(au_size) || version < 1 ||
	    version > DJMFS_SB_VERSION)
		return -EINVAL;
	memset(sb, 0, sizeof(*sb));
	sb->version = version;
	sb->au_size = au_size;
	sb->block_size = DJMFS_BLOCK;
	sb->vol_size = size;
	/* Both metadata areas scale with the volume, in whole MiB, so every
	 * region stays 1 MiB aligned. */
	sb->journal_off = MIB;
	sb->journal_len = clamp64(size / 64, MIB, JOURNAL_MAX) / MIB * MIB;
	sb->ckpt_len = clamp64(size / 64, MIB, CKPT_MAX) / MIB * MIB;
	sb->ckpt_off[0] = sb->journal_off + sb->journal_len;
	sb->ckpt_off[1] = sb->ckpt_off[0] + sb->ckpt_len;
	meta_end = sb->ckpt_off[1] + sb->ckpt_len;
	align = au_size > MIB ? au_size : MIB;
	sb->data_off = align_up(meta_end, align);
	units_end = size;
	if (version >= 2) {
		/* Copy B at the far end: damage to one end of the volume (a
		 * bad run of sectors, a partition table) spares the other. */
		units_end = size / MIB * MIB;
		units_end = units_end >= meta_end ? units_end - meta_end : 0;
		sb->mirror_off = units_end;
		sb->features = DJMFS_FEAT_META_MIRROR;
		sb->sb_gen = 1;
		sb->csum_shift = CSUM_SHIFT;
	}
	if (units_end < sb->data_off ||
	    (units_end - sb->data_off) / au_size < MIN_AUS)
		return -ENOSPC;
	sb->n_aus = (units_end - sb->data_off) / au_size;
	djmfs__sb_derive(sb);
	return 0;
}

int djmfs__sb_layout(struct djmfs__sb *sb, uint64_t size, uint32_t au_size)
{
	return djmfs__sb_layout_format(sb, size, au_size, DJMFS_SB_VERSION);
}

void djmfs__sb_encode(const struct djmfs__sb *sb, uint8_t out[DJMFS_SB_SIZE])
{
	size_t crc_at = sb->version == 1 ? SB_CRC_AT_V1 : SB_CRC_AT_V2;

	memset(out, 0, DJMFS_SB_SIZE);
	memcpy(out, DJMFS_SB_MAGIC, 8);
	djmfs__st_le32(out + 8, sb->version);
	djmfs__st_le32(out + 12, DJMFS_SB_SIZE);
	memcpy(out + 16, sb->uuid, 16);
	djmfs__st_le32(out + 32, sb->au_size);
	djmfs__st_le32(out + 36, sb->block_size);
	djmfs__st_le64(out + 40, sb->vol_size);
	djmfs__st_le64(out + 48, sb->journal_off);
	djmfs__st_le64(out + 56, sb->journal_len);
	djmfs__st_le64(out + 64, sb->ckpt_off[0]);
	djmfs__st_le64(out + 72, sb->ckpt_off[1]);
	djmfs__st_le64(out + 80, sb->ckpt_len);
	djmfs__st_le64(out + 88, sb->data_off);
	djmfs__st_le64(out + 96, sb->n_aus);
	djmfs__st_le64(out + 104, sb->created_ns);
	if (sb->version >= 2) {
		djmfs__st_le64(out + 112, sb->mirror_off);
		djmfs__st_le32(out + 120, sb->features);
		djmfs__st_le32(out + 124, sb->copy);
		djmfs__st_le64(out + 128, sb->sb_gen);
		djmfs__st_le32(out + 136, sb->csum_shift);
		djmfs__st_le64(out + 144, sb->upgraded_ns);
	}
	djmfs__st_le32(out + crc_at, djmfs__crc32c(0, out, crc_at));
}

int djmfs__sb_write_copy(int fd, const struct djmfs__sb *sb, unsigned copy)
{
	struct djmfs__sb c = *sb;
	uint8_t raw[DJMFS_SB_SIZE];
	uint64_t off = djmfs__sb_copy_off(sb, copy);

	if (copy >= DJMFS_SB_COPIES || (copy > 0 && sb->version < 2) ||
	    (copy == 2 && !off))
		return -EINVAL;
	c.copy = copy;
	djmfs__sb_encode(&c, raw);
	return djmfs__pwrite_full(fd, raw, sizeof(raw), off);
}

unsigned djmfs__sb_ncopies(const struct djmfs__sb *sb)
{
	return sb->version < 2 ? 1 : sb->mirror_off ? 3 : 2;
}

/* ------------------------------------------------------------------ */
/* Opening a volume                                                     */
/* ------------------------------------------------------------------ */

/* Bytes a regular file or block device holds.  Returns 0, -ENOTBLK (some
 * other kind of file), or -errno. */
int djmfs__vol_fd_size(int fd, uint64_t *size, int *is_blk)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*is_blk = S_ISBLK(st.st_mode);
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (!*is_blk)
		return -ENOTBLK;
	if (ioctl(fd, BLKGETSIZE64, size) < 0)
		return -errno;
	return 0;
}

int djmfs__vol_lock(int fd, const char *path, const struct djmfs_log *log)
{
	int err;

	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (err == -EBUSY)
			djmfs__log(log, DJMFS_LOG_ERROR, "%s: volume in use by "
				   "another server or fsck", path);
		else
			djmfs__log(log, DJMFS_LOG_ERROR, "flock(%s): %s", path,
				   strerror(-err));
		return err;
	}
	return 0;
}

static const char *sb_copy_why(const struct djmfs__sb_copy *c,
			       char *buf, size_t n)
{
	if (c->err == 0)
		snprintf(buf, n, "stale: format %" PRIu32 ", generation %"
			 PRIu64, c->version, c->sb_gen);
	else if (c->err == -EUCLEAN)
		snprintf(buf, n, "CRC");
	else if (c->err == -EINVAL)
		snprintf(buf, n, "geometry");
	else if (c->err == -ENODATA)
		snprintf(buf, n, "missing");
	else
		snprintf(buf, n, "read error: %s", strerror(-c->err));
	return buf;
}

/*
 * Every copy the chosen superblock's format has must hold its bytes: a
 * copy that does not is rewritten from it at once (one sync for all),
 * so a latent bad sector is overwritten while the other copies still
 * hold.  A read-only open only says so.
 */
static int vol_sb_repair(struct djmfs__vol *v, const struct djmfs_log *log)
{
	unsigned n = djmfs__sb_ncopies(&v->sb), fixed = 0;
	char why[96];
	int err = 0;

	for (unsigned i = 0; i < n && err == 0; i++) {
		if (v->sb_copies[i].same)
			continue;
		sb_copy_why(&v->sb_copies[i], why, sizeof(why));
		if (v->rdonly) {
			djmfs__log(log, DJMFS_LOG_WARN, "%s: superblock copy %u "
				   "bad (%s): not rewritten (read-only)",
				   v->path, i, why);
			continue;
		}
		err = djmfs__sb_write_copy(v->fd, &v->sb, i);
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_ERROR, "pwrite(%s, superblock "
				   "copy %u): %s", v->path, i, strerror(-err));
			break;
		}
		djmfs__log(log, DJMFS_LOG_WARN, "%s: superblock copy %u bad "
			   "(%s): rewritten from copy %" PRIu32, v->path, i,
			   why, v->sb.copy);
		v->sb_copies[i].repaired = 1;
		fixed++;
	}
	if (err == 0 && fixed)
		err = djmfs__datasync(v->fd);
	if (err < 0)
		return err;
	v->repaired_sb += fixed;
	return 0;
}

static int vol_check(struct djmfs__vol *v, const struct djmfs_log *log)
{
	uint64_t have = 0;
	int is_blk, err;

	err = djmfs__sb_read_copies(v->fd, &v->sb, v->sb_copies);
	if (err == -EUCLEAN)
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: not a DJMFS volume "
			   "(no superblock, or its CRC is wrong)", v->path);
	else if (err == -EINVAL)
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: superblock has an "
			   "inconsistent geometry", v->path);
	else if (err < 0)
		djmfs__log(log, DJMFS_LOG_ERROR, "pread(%s, superblock): %s",
			   v->path, strerror(-err));
	if (err == -EINVAL)
		return -EUCLEAN;
	if (err < 0)
		return err;
	err = djmfs__vol_fd_size(v->fd, &have, &is_blk);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "size of %s: %s", v->path,
			   strerror(-err));
		return err;
	}
	if (have < v->sb.vol_size) {
		djmfs__log(log, DJMFS_LOG_ERROR, "%s: volume truncated: %"
			   PRIu64 " bytes, superblock says %" PRIu64, v->path,
			   have, v->sb.vol_size);
		return -EUCLEAN;
	}
	return vol_sb_repair(v, log);
}

int djmfs__vol_open(struct djmfs__vol **out, const char *path,
		    unsigned flags, const struct djmfs_log *log)
{
	int mode = (flags & DJMFS__VOL_RDONLY) ? O_RDONLY : O_RDWR;
	struct djmfs__vol *v;
	int err;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->fd = -1;
	v->rdonly = !!(flags & DJMFS__VOL_RDONLY);
	v->path = strdup(path);
	if (!v->path) {
		err = -ENOMEM;
		goto fail;
	}
	v->fd = open(path, mode | O_CLOEXEC);
	if (v->fd < 0) {
		err = -errno;
		djmfs__log(log, DJMFS_LOG_ERROR, "open(%s): %s", path,
			   strerror(-err));
		goto fail;
	}
	if (flags & DJMFS__VOL_EXCL) {
		err = djmfs__vol_lock(v->fd, path, log);
		if (err < 0)
			goto fail;
	}
	err = vol_check(v, log);
	if (err < 0)
		goto fail;
	djmfs__vol_set_sb(v, &v->sb);
	*out = v;
	return 0;
fail:
	djmfs__vol_close(v);
	return err;
}

void djmfs__vol_set_sb(struct djmfs__vol *v, const struct djmfs__sb *sb)
{
	v->sb = *sb;
	v->seed = djmfs__sb_seed(&v->sb);
	v->data_end = djmfs__au_off(&v->sb, v->sb.n_aus);
}

void djmfs__vol_close(struct djmfs__vol *v)
{
	if (!v)
		return;
	if (v->fd >= 0)
		close(v->fd); /* also drops the flock */
	free(v->path);
	free(v);
}
