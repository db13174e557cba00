/*
 * Tests of the volume format: the layout chosen for a size, the
 * superblock codec and its CRC, mkfs on a temporary file (sparse, refusing
 * to overwrite a volume without force, cleaning up when it cannot fit),
 * and opening a volume (exclusive lock, truncation, O_DIRECT reads).
 */
#define _GNU_SOURCE /* O_DIRECT, nftw */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define MIB (UINT64_C(1) << 20)

static char dir[64];
static char path[128];
static char logbuf[4096];

static void log_hook(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)arg;
	(void)lvl;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static const struct djmfs_log test_log = { log_hook, NULL };

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/djmfs-volume.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vol", dir);
	logbuf[0] = 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void teardown(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(volume, .init = setup, .fini = teardown);

struct layout_case {
	uint64_t size;
	uint32_t au;
	unsigned version;
	uint64_t journal_len, ckpt_len, data_off, n_aus, mirror_off;
};

Test(volume, layout_scales_metadata_with_the_volume)
{
	static const struct layout_case cases[] = {
		{ 20 * MIB, 0, 1, MIB, MIB, 4 * MIB, 16, 0 },
		{ 24 * MIB, 0, 2, MIB, MIB, 4 * MIB, 16, 20 * MIB },
		{ 100000000, 64 << 10, 1, MIB, MIB, 4 * MIB,
		  (100000000 - 4 * MIB) / (64 << 10), 0 },
		/* Copy B starts where it ends at the last whole MiB. */
		{ 100000000, 64 << 10, 2, MIB, MIB, 4 * MIB, 87 * 16,
		  91 * MIB },
		{ 1024 * MIB, MIB, 1, 16 * MIB, 16 * MIB, 49 * MIB, 975, 0 },
		{ 1024 * MIB, MIB, 2, 16 * MIB, 16 * MIB, 49 * MIB, 926,
		  975 * MIB },
		{ 100 * 1024 * MIB, MIB, 1, 64 * MIB, 128 * MIB, 321 * MIB,
		  102400 - 321, 0 },
		{ 100 * 1024 * MIB, MIB, 2, 64 * MIB, 128 * MIB, 321 * MIB,
		  102400 - 642, (102400 - 321) * MIB },
		{ 100 * 1024 * MIB, 64 << 20, 1, 64 * MIB, 128 * MIB,
		  384 * MIB, (102400 - 384) / 64, 0 },
		{ 100 * 1024 * MIB, 64 << 20, 2, 64 * MIB, 128 * MIB,
		  384 * MIB, (102400 - 321 - 384) / 64, (102400 - 321) * MIB },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct layout_case *c = &cases[i];
		struct djmfs__sb sb;

		cr_assert_eq(djmfs__sb_layout_format(&sb, c->size, c->au,
						     c->version), 0,
			     "case %zu", i);
		cr_expect_eq(sb.version, c->version, "case %zu", i);
		cr_expect_eq(sb.mirror_off, c->mirror_off, "case %zu", i);
		cr_expect_eq(sb.mj_off, c->mirror_off ? c->mirror_off + MIB : 0,
			     "case %zu", i);
		cr_expect_eq(sb.mckpt_off[1], c->mirror_off ?
			     c->mirror_off + sb.ckpt_off[1] : 0, "case %zu", i);
		cr_expect_eq(sb.features, c->version == 2 ?
			     DJMFS_FEAT_META_MIRROR : 0u, "case %zu", i);
		cr_expect_eq(sb.journal_off, MIB);
		cr_expect_eq(sb.journal_len, c->journal_len, "case %zu", i);
		cr_expect_eq(sb.ckpt_len, c->ckpt_len, "case %zu", i);
		cr_expect_eq(sb.ckpt_off[0], MIB + c->journal_len);
		cr_expect_eq(sb.ckpt_off[1], sb.ckpt_off[0] + c->ckpt_len);
		cr_expect_eq(sb.data_off, c->data_off, "case %zu", i);
		cr_expect_eq(sb.n_aus, c->n_aus, "case %zu", i);
		cr_expect_eq(sb.au_size, c->au ? c->au : MIB);
		cr_expect_eq(sb.block_size, DJMFS_BLOCK);
		cr_expect_eq(sb.vol_size, c->size);
	}
}

Test(volume, layout_refuses_units_that_are_not_powers_of_two_in_range)
{
	static const uint32_t bad[] = { 32 << 10, 3 << 20, 128u << 20, 4096,
					(64 << 10) + 1 };
	struct djmfs__sb sb;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(djmfs__sb_layout(&sb, 1024 * MIB, bad[i]),
			     -EINVAL);
	cr_expect_eq(djmfs__sb_layout(&sb, 1024 * MIB, 64 << 10), 0);
	cr_expect_eq(djmfs__sb_layout(&sb, 4096 * MIB, 64 << 20), 0);
}

Test(volume, layout_needs_sixteen_data_units)
{
	struct djmfs__sb sb;

	cr_expect_eq(djmfs__sb_layout(&sb, 0, 0), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout(&sb, MIB, 0), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout_format(&sb, 20 * MIB - 1, 0, 1),
		     -ENOSPC);
	cr_expect_eq(djmfs__sb_layout_format(&sb, 20 * MIB, 0, 1), 0);
	/* Copy B takes as much again as the front's metadata. */
	cr_expect_eq(djmfs__sb_layout(&sb, 24 * MIB - 1, 0), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout(&sb, 24 * MIB, 0), 0);
	/* Large units push the data area out and take more room. */
	cr_expect_eq(djmfs__sb_layout_format(&sb, 64 * MIB, 4 << 20, 1),
		     -ENOSPC);
	cr_expect_eq(djmfs__sb_layout_format(&sb, 68 * MIB, 4 << 20, 1), 0);
	cr_expect_eq(djmfs__sb_layout(&sb, 72 * MIB - 1, 4 << 20), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout(&sb, 72 * MIB, 4 << 20), 0);
}

static void sample_sb(struct djmfs__sb *sb)
{
	cr_assert_eq(djmfs__sb_layout(sb, 1024 * MIB, 0), 0);
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (uint8_t)(i * 17 + 3);
	sb->created_ns = UINT64_C(1700000000123456789);
}

Test(volume, superblock_round_trips)
{
	struct djmfs__sb sb, back;
	uint8_t raw[DJMFS_SB_SIZE];

	sample_sb(&sb);
	djmfs__sb_encode(&sb, raw);
	cr_assert_eq(memcmp(raw, DJMFS_SB_MAGIC, 8), 0);
	cr_assert_eq(djmfs__sb_decode(raw, sizeof(raw), &back), 0);
	cr_expect_eq(memcmp(&sb, &back, sizeof(sb)), 0);
	cr_expect_eq(djmfs__sb_seed(&sb), djmfs__crc32c(0, sb.uuid, 16));
}

Test(volume, superblock_of_format_1_round_trips_without_copy_b)
{
	struct djmfs__sb sb, back;
	uint8_t raw[DJMFS_SB_SIZE];

	cr_assert_eq(djmfs__sb_layout_format(&sb, 1024 * MIB, 0, 1), 0);
	sb.created_ns = 42;
	djmfs__sb_encode(&sb, raw);
	/* The format 1 CRC sits at 112 and nothing follows it. */
	cr_expect_eq(djmfs__le32(raw + 112), djmfs__crc32c(0, raw, 112));
	for (size_t i = 116; i < 256; i++)
		cr_assert_eq(raw[i], 0, "byte %zu", i);
	cr_assert_eq(djmfs__sb_decode(raw, sizeof(raw), &back), 0);
	cr_expect_eq(memcmp(&sb, &back, sizeof(sb)), 0);
	cr_expect_eq(back.version, 1);
	cr_expect_eq(back.mirror_off, 0);
	cr_expect_eq(back.mj_off, 0);
	cr_expect_eq(back.mckpt_off[0], 0);
	cr_expect_eq(back.mckpt_off[1], 0);
	cr_expect_eq(djmfs__sb_ncopies(&back), 1);
}

Test(volume, every_corrupted_field_byte_fails_the_crc)
{
	struct djmfs__sb sb, back;
	uint8_t raw[DJMFS_SB_SIZE];

	sample_sb(&sb);
	djmfs__sb_encode(&sb, raw);
	/* Fields and CRC span bytes 0..255; flip each bit of each. */
	for (size_t i = 0; i < 256; i++) {
		for (int bit = 0; bit < 8; bit++) {
			raw[i] ^= (uint8_t)(1u << bit);
			cr_assert_neq(djmfs__sb_decode(raw, sizeof(raw), &back),
				      0, "byte %zu bit %d", i, bit);
			raw[i] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert_eq(djmfs__sb_decode(raw, sizeof(raw), &back), 0);
	cr_expect_eq(djmfs__sb_decode(raw, 100, &back), -EUCLEAN);
}

static int decode_modified(void (*edit)(struct djmfs__sb *))
{
	struct djmfs__sb sb, back;
	uint8_t raw[DJMFS_SB_SIZE];

	sample_sb(&sb);
	edit(&sb);
	djmfs__sb_encode(&sb, raw); /* a valid CRC over a bad geometry */
	return djmfs__sb_decode(raw, sizeof(raw), &back);
}

static void overlap_journal(struct djmfs__sb *sb) { sb->journal_len += MIB; }
static void overlap_slots(struct djmfs__sb *sb) { sb->ckpt_off[1] -= 4096; }
static void data_past_end(struct djmfs__sb *sb) { sb->data_off += 2048 * MIB; }
static void wrong_n_aus(struct djmfs__sb *sb) { sb->n_aus++; }
static void odd_unit(struct djmfs__sb *sb) { sb->au_size = 3 << 20; }
static void tiny_unit(struct djmfs__sb *sb) { sb->au_size = 4096; }
static void unaligned(struct djmfs__sb *sb) { sb->ckpt_off[0] += 512; }
static void wrapping(struct djmfs__sb *sb) { sb->journal_len = -4096ull; }
static void other_block(struct djmfs__sb *sb) { sb->block_size = 512; }

Test(volume, decode_refuses_inconsistent_geometry)
{
	void (*edits[])(struct djmfs__sb *) = {
		overlap_journal, overlap_slots, data_past_end, wrong_n_aus,
		odd_unit, tiny_unit, unaligned, wrapping, other_block,
	};

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++)
		cr_expect_eq(decode_modified(edits[i]), -EINVAL, "edit %zu", i);
}

Test(volume, mkfs_makes_a_sparse_volume_with_an_empty_checkpoint)
{
	struct djmfs__vol *v;
	struct djmfs__ckpt ck;
	struct djmfs__sb want;
	struct stat st;

	umask(022);
	cr_assert_eq(djmfs_mkfs(path, 1024 * MIB, 0, 0, &test_log), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq((uint64_t)st.st_size, 1024 * MIB);
	cr_expect_eq(st.st_mode & 0777, 0644);
	/* Both metadata copies (49 MiB each) are allocated, the data area
	 * is not. */
	cr_expect_geq((uint64_t)st.st_blocks * 512, 98 * MIB, "%lld blocks",
		      (long long)st.st_blocks);
	cr_expect_lt((uint64_t)st.st_blocks * 512, 100 * MIB, "%lld blocks",
		     (long long)st.st_blocks);
	cr_expect_not_null(strstr(logbuf, "926 units"), "%s", logbuf);
	cr_expect_not_null(strstr(logbuf, "second copy of the metadata (49 "
				  "MiB) at 1022361600"), "%s", logbuf);

	cr_assert_eq(djmfs__vol_open(&v, path, DJMFS__VOL_EXCL, &test_log), 0);
	cr_assert_eq(djmfs__sb_layout(&want, 1024 * MIB, 0), 0);
	cr_expect_eq(v->sb.data_off, want.data_off);
	cr_expect_eq(v->sb.n_aus, want.n_aus);
	cr_expect_gt(v->sb.created_ns, 0);
	cr_expect_eq(v->seed, djmfs__sb_seed(&v->sb));
	cr_expect_eq(v->data_end, want.data_off + want.n_aus * MIB);
	cr_expect_str_eq(v->path, path);

	cr_assert_eq(djmfs__ckpt_load(v, &ck, NULL), 0);
	cr_expect_eq(ck.gen, 1);
	cr_expect_eq(ck.last_seq, 0);
	cr_expect_eq(ck.slot, 0);
	cr_expect_eq(ck.img_len, 0);
	free(ck.img);
	djmfs__vol_close(v);
}

Test(volume, mkfs_refuses_an_existing_volume_unless_forced)
{
	struct djmfs__vol *v;
	uint8_t uuid[16];

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_assert_eq(djmfs__vol_open(&v, path, 0, NULL), 0);
	memcpy(uuid, v->sb.uuid, 16);
	djmfs__vol_close(v);

	cr_expect_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, &test_log), -EEXIST);
	cr_expect_not_null(strstr(logbuf, "--force"), "%s", logbuf);

	cr_assert_eq(djmfs_mkfs(path, 128 * MIB, 256 << 10, 1, NULL), 0);
	cr_assert_eq(djmfs__vol_open(&v, path, 0, NULL), 0);
	cr_expect_neq(memcmp(uuid, v->sb.uuid, 16), 0);
	cr_expect_eq(v->sb.au_size, 256 << 10);
	cr_expect_eq(v->sb.vol_size, 128 * MIB);
	djmfs__vol_close(v);
}

Test(volume, mkfs_grows_a_short_file_and_keeps_a_given_length)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "not a volume", 12), 12);
	close(fd);
	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq((uint64_t)st.st_size, 64 * MIB);

	/* Size 0: the regular file keeps its length. */
	cr_assert_eq(djmfs_mkfs(path, 0, 0, 1, NULL), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq((uint64_t)st.st_size, 64 * MIB);
}

Test(volume, mkfs_too_small_is_enospc_and_leaves_no_file)
{
	cr_expect_eq(djmfs_mkfs(path, 8 * MIB, 0, 0, &test_log), -ENOSPC);
	cr_expect_eq(access(path, F_OK), -1);
	cr_expect_not_null(strstr(logbuf, "too small"), "%s", logbuf);
	cr_expect_eq(djmfs_mkfs(path, 64 * MIB, 12345, 0, NULL), -EINVAL);
	cr_expect_eq(access(path, F_OK), -1);
	cr_expect_eq(djmfs_mkfs(path, 0, 0, 0, NULL), -EINVAL);
	cr_expect_eq(access(path, F_OK), -1);
}

Test(volume, exclusive_open_twice_is_busy)
{
	struct djmfs__vol *a, *b;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_assert_eq(djmfs__vol_open(&a, path, DJMFS__VOL_EXCL, NULL), 0);
	cr_expect_eq(djmfs__vol_open(&b, path, DJMFS__VOL_EXCL, &test_log),
		     -EBUSY);
	cr_expect_null(b);
	cr_expect_not_null(strstr(logbuf, "in use by another server or fsck"));
	cr_expect_eq(djmfs_mkfs(path, 64 * MIB, 0, 1, NULL), -EBUSY);
	/* Not exclusive (a client's metadata look): allowed. */
	cr_assert_eq(djmfs__vol_open(&b, path, DJMFS__VOL_RDONLY, NULL), 0);
	djmfs__vol_close(b);
	djmfs__vol_close(a);
	cr_assert_eq(djmfs__vol_open(&b, path, DJMFS__VOL_EXCL, NULL), 0);
	djmfs__vol_close(b);
}

Test(volume, truncated_volume_is_unclean)
{
	struct djmfs__vol *v;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_assert_eq(truncate(path, 32 * MIB), 0);
	cr_expect_eq(djmfs__vol_open(&v, path, 0, &test_log), -EUCLEAN);
	cr_expect_null(v);
	cr_expect_not_null(strstr(logbuf, "truncated"), "%s", logbuf);
}

Test(volume, open_refuses_a_file_that_is_not_a_volume)
{
	struct djmfs__vol *v;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_assert_eq(truncate(path, 0), 0);
	cr_assert_eq(truncate(path, 64 * MIB), 0);
	cr_expect_eq(djmfs__vol_open(&v, path, 0, &test_log), -EUCLEAN);
	cr_expect_not_null(strstr(logbuf, "not a DJMFS volume"), "%s", logbuf);
	cr_expect_eq(djmfs__vol_open(&v, "/nonexistent/djmfs", 0, NULL),
		     -ENOENT);
}

Test(volume, superblock_reads_through_o_direct)
{
	struct djmfs__sb sb;
	struct djmfs__vol *v;
	int fd;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0 && errno == EINVAL)
		cr_skip_test("O_DIRECT not supported on %s", dir);
	cr_assert_geq(fd, 0);
	cr_assert_eq(djmfs__sb_read_fd(fd, &sb), 0);
	close(fd);
	cr_assert_eq(djmfs__vol_open(&v, path, 0, NULL), 0);
	cr_expect_eq(memcmp(&sb, &v->sb, sizeof(sb)), 0);
	djmfs__vol_close(v);
}

Test(volume, positioned_io_reports_end_of_file)
{
	uint8_t buf[64] = { 1, 2, 3 };
	int fd;

	fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_expect_eq(djmfs__pwrite_full(fd, buf, sizeof(buf), 100), 0);
	cr_expect_eq(djmfs__pread_full(fd, buf, sizeof(buf), 100), 0);
	cr_expect_eq(buf[2], 3);
	cr_expect_eq(djmfs__pread_full(fd, buf, sizeof(buf), 150), -ENODATA);
	cr_expect_eq(djmfs__datasync(fd), 0);
	close(fd);
}

/* --preallocate: the file's blocks exist before any write, and the
 * volume is as valid as a sparse one. */
Test(volume, mkfs_preallocate_allocates_the_whole_file)
{
	struct djmfs__vol *v;
	struct stat st;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, DJMFS_MKFS_PREALLOCATE,
				&test_log), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_geq((uint64_t)st.st_blocks * 512, 64 * MIB);
	cr_assert_eq(djmfs__vol_open(&v, path, DJMFS__VOL_EXCL, NULL), 0);
	cr_expect_eq(v->sb.vol_size, 64 * MIB);
	djmfs__vol_close(v);
}

/* ------------------------------------------------------------------ */
/* Superblock copies                                                    */
/* ------------------------------------------------------------------ */

static void flip(uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(djmfs__pread_full(fd, &b, 1, off), 0);
	b ^= 0x10;
	cr_assert_eq(djmfs__pwrite_full(fd, &b, 1, off), 0);
	close(fd);
}

static void read_raw(uint64_t off, uint8_t raw[DJMFS_SB_SIZE])
{
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(djmfs__pread_full(fd, raw, DJMFS_SB_SIZE, off), 0);
	close(fd);
}

/* The three copies hold one superblock: same bytes but copy and CRC. */
static void expect_copies_agree(const struct djmfs__sb *sb)
{
	uint8_t raw[DJMFS_SB_COPIES][DJMFS_SB_SIZE];
	struct djmfs__sb back;

	for (unsigned i = 0; i < DJMFS_SB_COPIES; i++) {
		read_raw(djmfs__sb_copy_off(sb, i), raw[i]);
		cr_assert_eq(djmfs__sb_decode(raw[i], DJMFS_SB_SIZE, &back), 0,
			     "copy %u", i);
		cr_expect_eq(back.copy, i);
		cr_expect_eq(memcmp(raw[i], raw[0], 124), 0, "copy %u", i);
		cr_expect_eq(memcmp(raw[i] + 128, raw[0] + 128, 124), 0,
			     "copy %u", i);
	}
}

/* Opens writable; returns the copies rewritten. */
static uint64_t open_repairs(struct djmfs__sb *sb, unsigned flags)
{
	struct djmfs__vol *v;
	uint64_t n;

	cr_assert_eq(djmfs__vol_open(&v, path, flags, &test_log), 0, "%s",
		     logbuf);
	n = v->repaired_sb;
	*sb = v->sb;
	djmfs__vol_close(v);
	return n;
}

Test(volume, mkfs_writes_three_agreeing_superblock_copies)
{
	struct djmfs__sb sb;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	cr_expect_eq(open_repairs(&sb, 0), 0);
	cr_expect_eq(sb.version, 2);
	cr_expect_eq(sb.copy, 0);
	cr_expect_eq(sb.sb_gen, 1);
	cr_expect_eq(sb.csum_shift, 16);
	cr_expect_eq(sb.upgraded_ns, 0);
	cr_expect_eq(sb.mirror_off, 60 * MIB);
	cr_expect_eq(sb.mj_off, 61 * MIB);
	cr_expect_eq(sb.mckpt_off[0], 62 * MIB);
	cr_expect_eq(sb.mckpt_off[1], 63 * MIB);
	cr_expect_eq(sb.n_aus, 56);
	expect_copies_agree(&sb);
	cr_expect_str_eq(logbuf, "");
}

Test(volume, each_superblock_copy_damaged_alone_is_rewritten)
{
	static const char *want[] = {
		"superblock copy 0 bad (CRC): rewritten from copy 1",
		"superblock copy 1 bad (CRC): rewritten from copy 0",
		"superblock copy 2 bad (CRC): rewritten from copy 0",
	};
	struct djmfs__sb sb, got;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	open_repairs(&sb, 0);
	for (unsigned i = 0; i < DJMFS_SB_COPIES; i++) {
		logbuf[0] = 0;
		flip(djmfs__sb_copy_off(&sb, i) + 40); /* vol_size */
		cr_expect_eq(open_repairs(&got, DJMFS__VOL_EXCL), 1, "copy %u",
			     i);
		cr_expect_eq(got.vol_size, sb.vol_size);
		cr_expect_not_null(strstr(logbuf, want[i]), "%s", logbuf);
		expect_copies_agree(&sb);
		cr_expect_eq(open_repairs(&got, 0), 0, "copy %u again", i);
	}
}

Test(volume, front_copies_both_damaged_open_from_copy_2)
{
	struct djmfs__sb sb, got;
	uint8_t zero[DJMFS_SB_SIZE] = { 0 };
	int fd;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	open_repairs(&sb, 0);
	flip(60);
	flip(DJMFS_SB_COPY1_OFF + 60);
	cr_expect_eq(open_repairs(&got, 0), 2);
	cr_expect_eq(got.copy, 2);
	cr_expect_eq(got.mirror_off, sb.mirror_off);
	cr_expect_not_null(strstr(logbuf, "superblock copy 0 bad (CRC): "
				  "rewritten from copy 2"), "%s", logbuf);
	expect_copies_agree(&sb);

	/* Both front copies wiped: copy 2 is found from the end. */
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(djmfs__pwrite_full(fd, zero, sizeof(zero), 0), 0);
	cr_assert_eq(djmfs__pwrite_full(fd, zero, sizeof(zero),
					DJMFS_SB_COPY1_OFF), 0);
	close(fd);
	cr_expect_eq(open_repairs(&got, 0), 2);
	cr_expect_eq(got.copy, 2);
	expect_copies_agree(&sb);
}

Test(volume, a_read_only_open_reports_a_bad_copy_and_leaves_it)
{
	struct djmfs__sb sb;
	uint8_t raw[DJMFS_SB_SIZE];

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	flip(40);
	cr_expect_eq(open_repairs(&sb, DJMFS__VOL_RDONLY), 0);
	cr_expect_eq(sb.copy, 1);
	cr_expect_not_null(strstr(logbuf, "superblock copy 0 bad (CRC): not "
				  "rewritten (read-only)"), "%s", logbuf);
	read_raw(0, raw);
	cr_expect_eq(djmfs__sb_raw_valid(raw, sizeof(raw)), 0);
}

Test(volume, a_format_2_copy_1_outranks_a_format_1_copy_0)
{
	struct djmfs__sb sb, v1, got;
	int fd;

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, 0, NULL), 0);
	open_repairs(&sb, 0);
	/* An upgrade cut between its commit (copy 1) and copy 0. */
	cr_assert_eq(djmfs__sb_layout_format(&v1, 60 * MIB, 0, 1), 0);
	memcpy(v1.uuid, sb.uuid, sizeof(v1.uuid));
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(djmfs__sb_write_copy(fd, &v1, 0), 0);
	close(fd);
	cr_expect_eq(open_repairs(&got, 0), 1);
	cr_expect_eq(got.version, 2);
	cr_expect_eq(got.copy, 1);
	cr_expect_not_null(strstr(logbuf, "superblock copy 0 bad (stale: "
				  "format 1, generation 0): rewritten from "
				  "copy 1"), "%s", logbuf);
	expect_copies_agree(&sb);
}

Test(volume, a_format_1_volume_opens_with_one_copy)
{
	struct djmfs__sb sb;
	uint8_t raw[DJMFS_SB_SIZE];

	cr_assert_eq(djmfs_mkfs(path, 64 * MIB, 0, DJMFS_MKFS_FORMAT1,
				&test_log), 0);
	cr_expect_eq(open_repairs(&sb, 0), 0);
	cr_expect_eq(sb.version, 1);
	cr_expect_eq(sb.mirror_off, 0);
	cr_expect_eq(sb.n_aus, 60);
	read_raw(DJMFS_SB_COPY1_OFF, raw);
	cr_expect_eq(djmfs__sb_raw_valid(raw, sizeof(raw)), 0);
	cr_expect_null(strstr(logbuf, "second copy"), "%s", logbuf);
}
