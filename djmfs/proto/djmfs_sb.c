/*
 * The DJMFS superblock as both sides read it: the client checks the
 * volume it opens for data against the server's answer, the server and
 * fsck open the volume through it.  Decoding checks magic, CRC and every
 * region's geometry once, because every later offset either side uses
 * is derived from the superblock.  Writing one (mkfs) is the server's
 * (djmfs_volume.c).  Stateless; layout in djmfs_proto.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_proto.h"

#define AU_MIN (64u << 10)
#define AU_MAX (64u << 20)
#define SB_CRC_AT 112 /* bytes covered by the superblock CRC */

int djmfs__pread_full(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *q = p;

	while (n > 0) {
		ssize_t r = pread(fd, q, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		q += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int djmfs__au_size_ok(uint64_t au)
{
	return au >= AU_MIN && au <= AU_MAX && (au & (au - 1)) == 0;
}

/* Magic and CRC: the bytes were written as a DJMFS superblock. */
int djmfs__sb_raw_valid(const uint8_t *p, size_t n)
{
	return n >= DJMFS_SB_SIZE && memcmp(p, DJMFS_SB_MAGIC, 8) == 0 &&
	       djmfs__le32(p + SB_CRC_AT) == djmfs__crc32c(0, p, SB_CRC_AT);
}

/* [off, off + len) ends at or before @limit, without overflow. */
static int region_before(uint64_t off, uint64_t len, uint64_t limit)
{
	return len <= limit && off <= limit - len;
}

/* Every offset later code trusts, checked once here; a crafted or
 * damaged-but-CRC-valid superblock must not send I/O outside the volume. */
static int sb_geometry_ok(const struct djmfs__sb *sb)
{
	const uint64_t blk = DJMFS_BLOCK;
	const int ok[] = {
		djmfs__au_size_ok(sb->au_size),
		sb->block_size == DJMFS_BLOCK,
		sb->journal_off >= DJMFS_SB_SIZE,
		sb->journal_len >= blk && sb->ckpt_len >= blk,
		(sb->journal_off | sb->journal_len | sb->ckpt_off[0] |
		 sb->ckpt_off[1] | sb->ckpt_len | sb->data_off) % blk == 0,
		region_before(sb->journal_off, sb->journal_len,
			      sb->ckpt_off[0]),
		region_before(sb->ckpt_off[0], sb->ckpt_len, sb->ckpt_off[1]),
		region_before(sb->ckpt_off[1], sb->ckpt_len, sb->data_off),
		sb->data_off <= sb->vol_size,
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!ok[i])
			return 0;
	}
	return sb->n_aus >= 1 &&
	       sb->n_aus == (sb->vol_size - sb->data_off) / sb->au_size;
}

int djmfs__sb_decode(const uint8_t *p, size_t n, struct djmfs__sb *sb)
{
	if (!djmfs__sb_raw_valid(p, n))
		return -EUCLEAN;
	if (djmfs__le32(p + 8) != DJMFS_SB_VERSION)
		return -EUCLEAN;
	memset(sb, 0, sizeof(*sb));
	sb->version = djmfs__le32(p + 8);
	memcpy(sb->uuid, p + 16, 16);
	sb->au_size = djmfs__le32(p + 32);
	sb->block_size = djmfs__le32(p + 36);
	sb->vol_size = djmfs__le64(p + 40);
	sb->journal_off = djmfs__le64(p + 48);
	sb->journal_len = djmfs__le64(p + 56);
	sb->ckpt_off[0] = djmfs__le64(p + 64);
	sb->ckpt_off[1] = djmfs__le64(p + 72);
	sb->ckpt_len = djmfs__le64(p + 80);
	sb->data_off = djmfs__le64(p + 88);
	sb->n_aus = djmfs__le64(p + 96);
	sb->created_ns = djmfs__le64(p + 104);
	if (djmfs__le32(p + 12) != DJMFS_SB_SIZE || !sb_geometry_ok(sb))
		return -EINVAL;
	return 0;
}

int djmfs__sb_read_fd(int fd, struct djmfs__sb *sb)
{
	void *buf = NULL;
	int err;

	/* 4 KiB alignment satisfies O_DIRECT on every common device. */
	err = posix_memalign(&buf, DJMFS_BLOCK, DJMFS_SB_SIZE);
	if (err)
		return -err;
	err = djmfs__pread_full(fd, buf, DJMFS_SB_SIZE, 0);
	if (err == -ENODATA)
		err = -EUCLEAN; /* shorter than a superblock: not a volume */
	if (err == 0)
		err = djmfs__sb_decode(buf, DJMFS_SB_SIZE, sb);
	free(buf);
	return err;
}

uint32_t djmfs__sb_seed(const struct djmfs__sb *sb)
{
	return djmfs__crc32c(0, sb->uuid, sizeof(sb->uuid));
}
