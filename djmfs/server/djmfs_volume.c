/*
 * The on-volume format below the namespace: where the superblock, the
 * journal, the two checkpoint slots and the data area lie, how the
 * superblock is encoded and checked, and opening a volume for the server
 * or fsck (formatting one is djmfs_mkfs.c's).  A regular file or a block device
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
#define SB_CRC_AT 112 /* bytes covered by the superblock CRC */

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

int djmfs__sb_layout(struct djmfs__sb *sb, uint64_t size, uint32_t au_size)
{
	uint64_t meta_end, align;

	if (au_size == 0)
		au_size = (uint32_t)MIB;
	if (!djmfs__au_size_ok(au_size))
		return -EINVAL;
	memset(sb, 0, sizeof(*sb));
	sb->version = DJMFS_SB_VERSION;
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
	if (size < sb->data_off ||
	    (size - sb->data_off) / au_size < MIN_AUS)
		return -ENOSPC;
	sb->n_aus = (size - sb->data_off) / au_size;
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

void djmfs__sb_encode(const struct djmfs__sb *sb, uint8_t out[DJMFS_SB_SIZE])
{
	memset(out, 0, DJMFS_SB_SIZE);
	memcpy(out, DJMFS_SB_MAGIC, 8);
	put_le32(out + 8, sb->version);
	put_le32(out + 12, DJMFS_SB_SIZE);
	memcpy(out + 16, sb->uuid, 16);
	put_le32(out + 32, sb->au_size);
	put_le32(out + 36, sb->block_size);
	put_le64(out + 40, sb->vol_size);
	put_le64(out + 48, sb->journal_off);
	put_le64(out + 56, sb->journal_len);
	put_le64(out + 64, sb->ckpt_off[0]);
	put_le64(out + 72, sb->ckpt_off[1]);
	put_le64(out + 80, sb->ckpt_len);
	put_le64(out + 88, sb->data_off);
	put_le64(out + 96, sb->n_aus);
	put_le64(out + 104, sb->created_ns);
	put_le32(out + SB_CRC_AT, djmfs__crc32c(0, out, SB_CRC_AT));
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

static int vol_check(struct djmfs__vol *v, const struct djmfs_log *log)
{
	uint64_t have = 0;
	int is_blk, err;

	err = djmfs__sb_read_fd(v->fd, &v->sb);
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
	return 0;
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
	v->seed = djmfs__sb_seed(&v->sb);
	v->data_end = djmfs__au_off(&v->sb, v->sb.n_aus);
	*out = v;
	return 0;
fail:
	djmfs__vol_close(v);
	return err;
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
