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
	uint64_t journal_len, ckpt_len, data_off, n_aus;
};

Test(volume, layout_scales_metadata_with_the_volume)
{
	static const struct layout_case cases[] = {
		{ 20 * MIB, 0, MIB, MIB, 4 * MIB, 16 },
		{ 100000000, 64 << 10, MIB, MIB, 4 * MIB,
		  (100000000 - 4 * MIB) / (64 << 10) },
		{ 1024 * MIB, MIB, 16 * MIB, 16 * MIB, 49 * MIB, 975 },
		{ 100 * 1024 * MIB, MIB, 64 * MIB, 128 * MIB, 321 * MIB,
		  102400 - 321 },
		{ 100 * 1024 * MIB, 64 << 20, 64 * MIB, 128 * MIB, 384 * MIB,
		  (102400 - 384) / 64 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct layout_case *c = &cases[i];
		struct djmfs__sb sb;

		cr_assert_eq(djmfs__sb_layout(&sb, c->size, c->au), 0,
			     "case %zu", i);
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
	cr_expect_eq(djmfs__sb_layout(&sb, 20 * MIB - 1, 0), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout(&sb, 20 * MIB, 0), 0);
	/* Large units push the data area out and take more room. */
	cr_expect_eq(djmfs__sb_layout(&sb, 64 * MIB, 4 << 20), -ENOSPC);
	cr_expect_eq(djmfs__sb_layout(&sb, 68 * MIB, 4 << 20), 0);
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

Test(volume, every_corrupted_field_byte_fails_the_crc)
{
	struct djmfs__sb sb, back;
	uint8_t raw[DJMFS_SB_SIZE];

	sample_sb(&sb);
	djmfs__sb_encode(&sb, raw);
	/* Fields and CRC span bytes 0..115; flip each bit of each. */
	for (size_t i = 0; i < 116; i++) {
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
	cr_expect_lt((uint64_t)st.st_blocks * 512, 4 * MIB, "%lld blocks",
		     (long long)st.st_blocks);
	cr_expect_not_null(strstr(logbuf, "975 units"), "%s", logbuf);

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
