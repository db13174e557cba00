/*
 * The DJMFS superblock as both sides read it: the client checks the
 * volume it opens for data against the server's answer, the server and
 * fsck open the volume through it.  Decoding checks magic, CRC and every
 * region's geometry once, because every later offset either side uses
 * is derived from the superblock.  Both formats are read: version 1 (one
 * copy at offset 0) and version 2 (three copies: 0, 64 KiB and the start
 * of the metadata's copy B), and the copy to trust is picked here, so a
 * damaged copy 0 costs neither side the volume.  Writing one (mkfs,
 * upgrade, repair) is the server's (djmfs_volume.c).  Stateless; layout
 * in djmfs_proto.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_proto.h"

#define AU_MIN (64u << 10)
#define AU_MAX (64u << 20)
#define SB_CRC_AT_V1 112 /* bytes covered by a version 1 CRC */
#define SB_CRC_AT_V2 252 /* and by a version 2 one */
#define SB_COPY_AT 124	 /* the u32 `copy` field of version 2 */
#define MIB (UINT64_C(1) << 20)
#define SCAN_MAX (512 * MIB) /* how far back copy 2 is looked for */

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

/* Bytes the CRC of a superblock of @version covers; 0: unknown version. */
static size_t sb_crc_at(uint32_t version)
{
	return version == 1 ? SB_CRC_AT_V1 : version == 2 ? SB_CRC_AT_V2 : 0;
}

int djmfs__sb_raw_valid(const uint8_t *p, size_t n)
{
	size_t at;

	if (n < DJMFS_SB_SIZE || memcmp(p, DJMFS_SB_MAGIC, 8) != 0)
		return 0;
	at = sb_crc_at(djmfs__le32(p + 8));
	return at && djmfs__le32(p + at) == djmfs__crc32c(0, p, at);
}

/* [off, off + len) ends at or before @limit, without overflow. */
static int region_before(uint64_t off, uint64_t len, uint64_t limit)
{
	return len <= limit && off <= limit - len;
}

/* The data units end at or before @limit. */
static int units_before(const struct djmfs__sb *sb, uint64_t limit)
{
	return sb->data_off <= limit &&
	       sb->n_aus <= (limit - sb->data_off) / sb->au_size;
}

/* Version 2 adds copy B: 1 MiB aligned, after the data units, inside the
 * volume, announced by its feature bit. */
static int sb_mirror_ok(const struct djmfs__sb *sb)
{
	uint64_t span = sb->ckpt_off[1] + sb->ckpt_len; /* front area */

	if (sb->copy >= DJMFS_SB_COPIES)
		return 0;
	if (!sb->mirror_off)
		return !(sb->features & DJMFS_FEAT_META_MIRROR) && sb->copy < 2 &&
		       units_before(sb, sb->vol_size);
	return (sb->features & DJMFS_FEAT_META_MIRROR) &&
	       sb->mirror_off % MIB == 0 && units_before(sb, sb->mirror_off) &&
	       region_before(sb->mirror_off, span, sb->vol_size);
}

/* Every offset later code trusts, checked once here; a crafted or
 * damaged-but-CRC-valid superblock must not send I/O outside the volume. */
static int sb_geometry_ok(const struct djmfs__sb *sb)
{
	const uint64_t blk = DJMFS_BLOCK;
	const int ok[] = {
		djmfs__au_size_ok(sb->au_size),
		sb->block_size == DJMFS_BLOCK,
		sb->journal_off >= (sb->version == 1 ? DJMFS_SB_SIZE
				    : DJMFS_SB_COPY1_OFF + DJMFS_SB_SIZE),
		sb->journal_len >= blk && sb->ckpt_len >= blk,
		(sb->journal_off | sb->journal_len | sb->ckpt_off[0] |
		 sb->ckpt_off[1] | sb->ckpt_len | sb->data_off) % blk == 0,
		region_before(sb->journal_off, sb->journal_len,
			      sb->ckpt_off[0]),
		region_before(sb->ckpt_off[0], sb->ckpt_len, sb->ckpt_off[1]),
		region_before(sb->ckpt_off[1], sb->ckpt_len, sb->data_off),
		sb->data_off <= sb->vol_size,
		sb->n_aus >= 1,
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!ok[i])
			return 0;
	}
	if (sb->version == 1) /* its units fill the volume exactly */
		return sb->n_aus == (sb->vol_size - sb->data_off) / sb->au_size;
	return sb_mirror_ok(sb);
}

void djmfs__sb_derive(struct djmfs__sb *sb)
{
	sb->mj_off = sb->mckpt_off[0] = sb->mckpt_off[1] = 0;
	if (!sb->mirror_off)
		return;
	/* Copy B repeats the front's relative offsets. */
	sb->mj_off = sb->mirror_off + sb->journal_off;
	sb->mckpt_off[0] = sb->mirror_off + sb->ckpt_off[0];
	sb->mckpt_off[1] = sb->mirror_off + sb->ckpt_off[1];
}

int djmfs__sb_decode(const uint8_t *p, size_t n, struct djmfs__sb *sb)
{
	if (!djmfs__sb_raw_valid(p, n))
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
	if (sb->version >= 2) {
		sb->mirror_off = djmfs__le64(p + 112);
		sb->features = djmfs__le32(p + 120);
		sb->copy = djmfs__le32(p + SB_COPY_AT);
		sb->sb_gen = djmfs__le64(p + 128);
		sb->csum_shift = djmfs__le32(p + 136);
		sb->upgraded_ns = djmfs__le64(p + 144);
	}
	if (djmfs__le32(p + 12) != DJMFS_SB_SIZE || !sb_geometry_ok(sb))
		return -EINVAL;
	djmfs__sb_derive(sb);
	return 0;
}

uint64_t djmfs__sb_copy_off(const struct djmfs__sb *sb, unsigned copy)
{
	return copy == 0 ? 0 : copy == 1 ? DJMFS_SB_COPY1_OFF
					 : sb->mirror_off;
}

/* Reads and decodes the copy at @off into @raw/@sb; the copy field must
 * name @copy (a version 1 superblock exists only as copy 0). */
static int sb_read_one(int fd, uint8_t *raw, uint64_t off, unsigned copy,
		       struct djmfs__sb *sb, struct djmfs__sb_copy *st)
{
	int err = djmfs__pread_full(fd, raw, DJMFS_SB_SIZE, off);

	if (err == 0)
		err = djmfs__sb_decode(raw, DJMFS_SB_SIZE, sb);
	if (err == 0 && (sb->version == 1 ? copy != 0 : sb->copy != copy))
		err = -EUCLEAN;
	if (err == 0 && copy == 2 && sb->mirror_off != off)
		err = -EUCLEAN;
	st->off = off;
	st->err = err;
	st->version = err == 0 ? sb->version : 0;
	st->sb_gen = err == 0 ? sb->sb_gen : 0;
	return err;
}

/* Copy 2 of a volume whose front copies are both gone: the last valid
 * one found stepping back from the end in whole MiB. */
static int sb_scan_copy2(int fd, uint8_t *raw, struct djmfs__sb *sb,
			 struct djmfs__sb_copy *st)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint64_t top, off;

	if (end < 0)
		return -errno;
	top = (uint64_t)end / MIB * MIB;
	for (off = top; off >= MIB && top - off <= SCAN_MAX; off -= MIB) {
		if (sb_read_one(fd, raw, off - MIB, 2, sb, st) == 0)
			return 0;
	}
	st->off = 0;
	st->err = -ENODATA;
	return -EUCLEAN;
}

/* Whether copy bytes @a and @b say the same, apart from copy and CRC. */
static int sb_same(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, SB_COPY_AT) == 0 &&
	       memcmp(a + SB_COPY_AT + 4, b + SB_COPY_AT + 4,
		      SB_CRC_AT_V2 - SB_COPY_AT - 4) == 0;
}

/* Ranks the two front copies: version, then generation.  Copies of one
 * volume share its uuid: a copy 1 of another uuid is a leftover of an
 * older volume formatted over (by a format 1 mkfs, which leaves 64 KiB
 * alone), and copy 0 is the live one. */
static int sb_newer(const struct djmfs__sb_copy *a,
		    const struct djmfs__sb_copy *b,
		    const struct djmfs__sb *sa, const struct djmfs__sb *sbb)
{
	if (a->err != 0 || b->err != 0)
		return a->err == 0;
	if (memcmp(sa->uuid, sbb->uuid, sizeof(sa->uuid)) != 0)
		return 0;
	return a->version != b->version ? a->version > b->version
					: a->sb_gen > b->sb_gen;
}

static int sb_pick(int fd, uint8_t *raw[DJMFS_SB_COPIES],
		   struct djmfs__sb *sb, struct djmfs__sb_copy *st)
{
	struct djmfs__sb cand[DJMFS_SB_COPIES];
	unsigned best;
	int err;

	sb_read_one(fd, raw[0], 0, 0, &cand[0], &st[0]);
	sb_read_one(fd, raw[1], DJMFS_SB_COPY1_OFF, 1, &cand[1], &st[1]);
	best = sb_newer(&st[1], &st[0], &cand[1], &cand[0]) ? 1 : 0;
	if (st[best].err == 0) {
		*sb = cand[best];
		if (sb->mirror_off)
			sb_read_one(fd, raw[2], sb->mirror_off, 2, &cand[2],
				    &st[2]);
		else
			st[2].err = -ENODATA;
	} else {
		err = sb_scan_copy2(fd, raw[2], &cand[2], &st[2]);
		if (err < 0)
			return st[0].err == -EINVAL || st[1].err == -EINVAL
				       ? -EINVAL
			       : st[0].err != -EUCLEAN && st[0].err != -ENODATA
				       ? st[0].err : -EUCLEAN;
		best = 2;
		*sb = cand[2];
	}
	for (unsigned i = 0; i < DJMFS_SB_COPIES; i++)
		st[i].same = st[i].err == 0 &&
			     (i == best || (sb->version == 2 &&
					    sb_same(raw[i], raw[best])));
	return 0;
}

int djmfs__sb_read_copies(int fd, struct djmfs__sb *sb,
			  struct djmfs__sb_copy st[DJMFS_SB_COPIES])
{
	struct djmfs__sb_copy mine[DJMFS_SB_COPIES];
	uint8_t *raw[DJMFS_SB_COPIES];
	void *buf = NULL;
	int err;

	if (!st)
		st = mine;
	memset(st, 0, DJMFS_SB_COPIES * sizeof(*st));
	/* 4 KiB alignment satisfies O_DIRECT on every common device. */
	err = posix_memalign(&buf, DJMFS_BLOCK, DJMFS_SB_COPIES * DJMFS_SB_SIZE);
	if (err)
		return -err;
	for (unsigned i = 0; i < DJMFS_SB_COPIES; i++)
		raw[i] = (uint8_t *)buf + i * DJMFS_SB_SIZE;
	err = sb_pick(fd, raw, sb, st);
	free(buf);
	return err;
}

int djmfs__sb_read_fd(int fd, struct djmfs__sb *sb)
{
	return djmfs__sb_read_copies(fd, sb, NULL);
}

uint32_t djmfs__sb_seed(const struct djmfs__sb *sb)
{
	return djmfs__crc32c(0, sb->uuid, sizeof(sb->uuid));
}
