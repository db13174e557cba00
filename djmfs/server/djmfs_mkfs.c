/*
 * Formatting a DJMFS volume (djmfs_mkfs): settling its size (a block
 * device's own, or a regular file grown or kept), refusing to format over
 * a volume unless forced, laying out the regions (djmfs_volume.c),
 * allocating the metadata areas of a volume file, then writing an empty
 * journal area, an empty checkpoint in slot 0 (djmfs_journal.c), each in
 * both copies, and, last, the superblock copies, so a volume whose
 * formatting was cut short never opens.  Format 1 (one copy of
 * everything) is still made on request, for tests of the upgrade.
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define MIB (UINT64_C(1) << 20)
#define MIN_AUS 16

/* ------------------------------------------------------------------ */
/* mkfs                                                                 */
/* ------------------------------------------------------------------ */

/* Settles the volume size: a block device offers its own, and a regular
 * file asked for size 0 keeps its current length. */
static int mkfs_size(int fd, const char *path, uint64_t *size,
		     const struct djmfs_log *log)
{
	uint64_t have = 0;
	int is_blk, err;

	err = djmfs__vol_fd_size(fd, &have, &is_blk);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: %s", path,
			   err == -ENOTBLK ? "neither a regular file nor a "
			   "block device" : strerror(-err));
		return err == -ENOTBLK ? -EINVAL : err;
	}
	if (*size == 0)
		*size = have;
	if (*size == 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: no size given",
			   path);
		return -EINVAL;
	}
	if (is_blk && *size > have) {
		djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: %" PRIu64 " bytes "
			   "asked, the device has %" PRIu64, path, *size, have);
		return -ENOSPC;
	}
	return 0;
}

/* A regular file shorter than the volume is extended (sparse). */
static int mkfs_grow(int fd, const char *path, uint64_t size,
		     const struct djmfs_log *log)
{
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size >= size)
		return 0;
	if (ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		djmfs__log(log, DJMFS_LOG_ERROR, "ftruncate(%s, %" PRIu64
			   "): %s", path, size, strerror(-err));
		return err;
	}
	return 0;
}

/* -EEXIST when @fd already holds a DJMFS superblock (magic and CRC good),
 * so a mistyped path does not wipe a volume. */
static int mkfs_check_existing(int fd, const char *path,
			       const struct djmfs_log *log)
{
	static const uint64_t at[] = { 0, DJMFS_SB_COPY1_OFF };
	uint8_t buf[DJMFS_SB_SIZE];
	int err, found = 0;

	for (unsigned i = 0; i < 2 && !found; i++) {
		err = djmfs__pread_full(fd, buf, sizeof(buf), at[i]);
		if (err == -ENODATA)
			return 0;
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_ERROR, "pread(%s, superblock)"
				   ": %s", path, strerror(-err));
			return err;
		}
		found = djmfs__sb_raw_valid(buf, sizeof(buf));
	}
	if (!found)
		return 0;
	djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: already holds a DJMFS "
		   "volume; use --force to overwrite it", path);
	return -EEXIST;
}

static int mkfs_identity(struct djmfs__sb *sb)
{
	struct timespec ts;
	size_t got = 0;

	while (got < sizeof(sb->uuid)) {
		ssize_t r = getrandom(sb->uuid + got,
				      sizeof(sb->uuid) - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	/* RFC 4122 version 4 (random) marking, for tools that print it. */
	sb->uuid[6] = (uint8_t)((sb->uuid[6] & 0x0f) | 0x40);
	sb->uuid[8] = (uint8_t)((sb->uuid[8] & 0x3f) | 0x80);
	clock_gettime(CLOCK_REALTIME, &ts);
	sb->created_ns = (uint64_t)ts.tv_sec * 1000000000u +
			 (uint64_t)ts.tv_nsec;
	return 0;
}

/* Zeroes @n bytes at @off in each copy of the metadata. */
static int mkfs_zero(int fd, const struct djmfs__sb *sb, const uint8_t *zero,
		     size_t n, uint64_t off)
{
	int err = djmfs__pwrite_full(fd, zero, n, off);

	if (err == 0 && sb->mirror_off)
		err = djmfs__pwrite_full(fd, zero, n, sb->mirror_off + off);
	return err;
}

/*
 * Metadata areas first, superblock copies last, after a sync: until one
 * lands, the path is not a valid volume, so a crash mid-mkfs never leaves
 * a volume whose journal or checkpoint is garbage.  Old journal bytes
 * beyond the zeroed first MiB cannot replay: their CRCs use the old
 * uuid's seed.  A format 1 volume gets 64 KiB zeroed, where an older
 * format 2 superblock copy would otherwise outrank its own.
 */
static int mkfs_write(int fd, const struct djmfs__sb *sb)
{
	struct djmfs__vol v = { .fd = fd, .sb = *sb };
	size_t zlen = sb->journal_len < MIB ? sb->journal_len : MIB;
	uint8_t *zero;
	int err;

	zero = calloc(1, zlen);
	if (!zero)
		return -ENOMEM;
	err = mkfs_zero(fd, sb, zero, zlen, sb->journal_off);
	if (err == 0)
		err = mkfs_zero(fd, sb, zero, DJMFS_BLOCK, sb->ckpt_off[1]);
	if (err == 0 && sb->version == 1)
		err = djmfs__pwrite_full(fd, zero, DJMFS_BLOCK,
					 DJMFS_SB_COPY1_OFF);
	free(zero);
	v.seed = djmfs__sb_seed(sb);
	if (err == 0)
		err = djmfs__ckpt_store(&v, 0, 1, 0, NULL, 0);
	for (unsigned i = djmfs__sb_ncopies(sb); i-- > 0 && err == 0;)
		err = djmfs__sb_write_copy(fd, sb, i);
	if (err == 0)
		err = djmfs__datasync(fd);
	return err;
}

/*
 * Allocates both metadata areas of a volume file now, even a sparse one:
 * a full host file system must never fail a journal or checkpoint write
 * later.  The data area stays sparse.  A file system that cannot
 * allocate ahead (no fallocate) is only slower to fill.
 */
static int mkfs_alloc_meta(int fd, const char *path,
			   const struct djmfs__sb *sb,
			   const struct djmfs_log *log)
{
	uint64_t len = djmfs__sb_mirror_len(sb), at[2] = { 0, sb->mirror_off };
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	for (unsigned i = 0; i < (sb->mirror_off ? 2u : 1u); i++) {
		err = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)at[i],
				(off_t)len) < 0 ? -errno : 0;
		if (err == -EOPNOTSUPP)
			return 0;
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: fallocate(%"
				   PRIu64 " bytes of metadata at %" PRIu64
				   "): %s", path, len, at[i], strerror(-err));
			return err;
		}
	}
	return 0;
}

static void mkfs_log_geometry(const char *path, const struct djmfs__sb *sb,
			      const struct djmfs_log *log)
{
	djmfs__log(log, DJMFS_LOG_INFO, "mkfs %s: %" PRIu64 " bytes, %" PRIu64
		   " units of %" PRIu32 " KiB from %" PRIu64 ", journal %"
		   PRIu64 " MiB at %" PRIu64 ", checkpoint slots 2 x %" PRIu64
		   " MiB at %" PRIu64 " and %" PRIu64, path, sb->vol_size,
		   sb->n_aus, sb->au_size >> 10, sb->data_off,
		   sb->journal_len / MIB, sb->journal_off, sb->ckpt_len / MIB,
		   sb->ckpt_off[0], sb->ckpt_off[1]);
	if (sb->mirror_off)
		djmfs__log(log, DJMFS_LOG_INFO, "mkfs %s: format %" PRIu32
			   ", second copy of the metadata (%" PRIu64 " MiB) at %"
			   PRIu64, path, sb->version,
			   djmfs__sb_mirror_len(sb) / MIB, sb->mirror_off);
}

/* Allocates the whole file now (as unwritten extents: reads give zeros,
 * so the metadata areas written below stay as mkfs leaves them). */
static int mkfs_preallocate(int fd, const char *path, uint64_t size,
			    const struct djmfs_log *log)
{
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0; /* a device has its blocks already */
	/* fallocate, not posix_fallocate: a file system without it should
	 * say so, not be filled with zeros one block at a time. */
	err = fallocate(fd, 0, 0, (off_t)size) < 0 ? -errno : 0;
	if (err < 0)
		djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: fallocate(%" PRIu64
			   " bytes): %s", path, size, strerror(-err));
	return err;
}

int djmfs_mkfs(const char *path, uint64_t size, uint32_t au_size,
	       unsigned flags, const struct djmfs_log *log)
{
	int force = !!(flags & DJMFS_MKFS_FORCE);
	struct djmfs__sb sb;
	int fd, created = 0, err;

	if (!path || !*path)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		created = fd >= 0;
	}
	if (fd < 0) {
		err = -errno;
		djmfs__log(log, DJMFS_LOG_ERROR, "open(%s): %s", path,
			   strerror(-err));
		return err;
	}
	/* Never format under a running server or fsck, --force or not. */
	err = djmfs__vol_lock(fd, path, log);
	if (err == 0 && !created && !force)
		err = mkfs_check_existing(fd, path, log);
	if (err == 0 && au_size != 0 && !djmfs__au_size_ok(au_size)) {
		djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: unit size %" PRIu32
			   " is not a power of two from 64 KiB to 64 MiB",
			   path, au_size);
		err = -EINVAL;
	}
	if (err == 0)
		err = mkfs_size(fd, path, &size, log);
	if (err == 0) {
		err = djmfs__sb_layout_format(&sb, size, au_size,
					      (flags & DJMFS_MKFS_FORMAT1) ? 1
						      : DJMFS_SB_VERSION);
		if (err == -ENOSPC)
			djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: %" PRIu64
				   " bytes is too small for the metadata "
				   "areas and %d units", path, size, MIN_AUS);
	}
	if (err == 0)
		err = mkfs_grow(fd, path, size, log);
	if (err == 0 && (flags & DJMFS_MKFS_PREALLOCATE))
		err = mkfs_preallocate(fd, path, size, log);
	if (err == 0)
		err = mkfs_alloc_meta(fd, path, &sb, log);
	if (err == 0) {
		err = mkfs_identity(&sb);
		if (err < 0)
			djmfs__log(log, DJMFS_LOG_ERROR, "getrandom(uuid): %s",
				   strerror(-err));
	}
	if (err == 0) {
		err = mkfs_write(fd, &sb);
		if (err < 0)
			djmfs__log(log, DJMFS_LOG_ERROR, "mkfs %s: writing "
				   "metadata: %s", path, strerror(-err));
	}
	if (err == 0)
		mkfs_log_geometry(path, &sb, log);
	close(fd);
	if (err < 0 && created)
		unlink(path);
	return err;
}
