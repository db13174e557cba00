/*
 * Tests of the journal on a real temporary volume: records appended from
 * the test thread (standing in for the server's loop) become durable and
 * are announced on an eventfd, replay returns them in order, commits are
 * grouped, checkpoints rotate the journal into a new epoch without old
 * records leaking into it, damaged tails and slots are survived, a full
 * epoch refuses appends, and stop() drains what is queued.
 */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define MIB (UINT64_C(1) << 20)

static char dir[64];
static char path[128];
static char logbuf[8192];
static struct djmfs__vol *vol;
static int efd = -1;

static void log_hook(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)arg;
	(void)lvl;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static const struct djmfs_log test_log = { log_hook, NULL };

/* A 256 MiB volume has a 4 MiB journal; a 64 MiB one, 1 MiB. */
static void make_volume(uint64_t size)
{
	cr_assert_eq(djmfs_mkfs(path, size, 0, 0, NULL), 0);
	cr_assert_eq(djmfs__vol_open(&vol, path, DJMFS__VOL_EXCL, NULL), 0);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/djmfs-journal.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vol", dir);
	logbuf[0] = 0;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(efd, 0);
	make_volume(256 * MIB);
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
	djmfs__vol_close(vol);
	vol = NULL;
	if (efd >= 0)
		close(efd);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(journal, .init = setup, .fini = teardown);

static struct djmfs__journal *start(uint64_t epoch, unsigned slot,
				    uint64_t next_seq)
{
	struct djmfs__journal_opts o = {
		.vol = vol, .epoch = epoch, .ckpt_slot = slot,
		.next_seq = next_seq, .notify_fd = efd, .log = &test_log,
	};
	struct djmfs__journal *j;

	cr_assert_eq(djmfs__journal_start(&j, &o), 0);
	return j;
}

/* Every record of these tests has the same encoded size, so record k of
 * any epoch starts at the same offset. */
static void make_rec(struct djmfs__jrec *r, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->type = DJMFS_J_FILE_CREATE;
	r->seq = seq;
	r->ino = seq + 1000;
	r->time_ns = seq * 7;
	snprintf(r->u.create.name, sizeof(r->u.create.name), "file-%08llu",
		 (unsigned long long)seq);
}

static size_t rec_size(void)
{
	struct djmfs__jrec r;
	struct djmfs__buf b;
	size_t n;

	make_rec(&r, 1);
	djmfs__buf_init(&b);
	cr_assert_eq(djmfs__jrec_encode(&b, 0, &r), 0);
	n = b.len;
	djmfs__buf_free(&b);
	return n;
}

static void append_range(struct djmfs__journal *j, uint64_t from,
			 uint64_t to)
{
	struct djmfs__jrec r;

	for (uint64_t s = from; s <= to; s++) {
		make_rec(&r, s);
		cr_assert_eq(djmfs__journal_append(j, &r), 0, "seq %llu",
			     (unsigned long long)s);
	}
}

/* Waits on the eventfd as the loop would, up to 5 s in all. */
static void wait_durable(struct djmfs__journal *j, uint64_t seq)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t n;

	for (int round = 0; djmfs__journal_durable(j) < seq; round++) {
		cr_assert_lt(round, 500, "durable stuck at %llu",
			     (unsigned long long)djmfs__journal_durable(j));
		if (poll(&p, 1, 10) == 1)
			cr_assert_eq(read(efd, &n, sizeof(n)), sizeof(n));
	}
	cr_assert_eq(djmfs__journal_durable(j), seq);
}

struct seen {
	uint64_t n;
	uint64_t seq[40000];
	int refuse_seq; /* the callback refuses this one */
};

static int collect(void *arg, const struct djmfs__jrec *r)
{
	struct seen *s = arg;
	char want[DJMFS_NAME_MAX + 1];

	snprintf(want, sizeof(want), "file-%08llu", (unsigned long long)r->seq);
	if (r->type != DJMFS_J_FILE_CREATE || r->ino != r->seq + 1000 ||
	    strcmp(r->u.create.name, want) != 0)
		return -EBADMSG;
	if ((int)r->seq == s->refuse_seq)
		return -EEXIST;
	if (s->n < sizeof(s->seq) / sizeof(s->seq[0]))
		s->seq[s->n] = r->seq;
	s->n++;
	return 0;
}

static struct seen *replay(uint64_t epoch, uint64_t after,
			   struct djmfs__replay_info *info)
{
	struct seen *s = calloc(1, sizeof(*s));

	cr_assert_not_null(s);
	cr_assert_eq(djmfs__journal_replay(vol, epoch, after, 0, collect, s, info,
					   &test_log), 0);
	return s;
}

static void expect_seqs(const struct seen *s, uint64_t from, uint64_t to)
{
	cr_assert_eq(s->n, to - from + 1, "replayed %llu",
		     (unsigned long long)s->n);
	for (uint64_t i = 0; i < s->n; i++)
		cr_assert_eq(s->seq[i], from + i);
}

Test(journal, appended_records_become_durable_and_replay_in_order)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__replay_info info;
	struct djmfs__journal_stats st;
	struct seen *s;

	append_range(j, 1, 300);
	wait_durable(j, 300);
	djmfs__journal_get_stats(j, &st);
	cr_expect_eq(st.records, 300);
	cr_expect_eq(st.bytes, 300 * rec_size());
	cr_expect_geq(st.batches, 1);
	djmfs__journal_stop(j);

	s = replay(1, 0, &info);
	expect_seqs(s, 1, 300);
	cr_expect_eq(info.records, 300);
	cr_expect_eq(info.skipped, 0);
	cr_expect_eq(info.last_seq, 300);
	cr_expect_eq(info.end_off, 300 * rec_size());
	cr_expect_str_eq(info.stop, "end of log");
	cr_expect_not_null(strstr(logbuf, "300 records applied"), "%s", logbuf);
	free(s);
}

Test(journal, group_commit_batches_many_appends_into_few_syncs)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__journal_stats st;
	struct djmfs__replay_info info;
	struct seen *s;

	append_range(j, 1, 10000);
	wait_durable(j, 10000);
	djmfs__journal_get_stats(j, &st);
	djmfs__journal_stop(j);
	cr_expect_eq(st.records, 10000);
	cr_expect_lt(st.batches, 10000);
	cr_expect_gt(st.sync_ns, 0);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 10000);
	free(s);
}

static void queue_checkpoint(struct djmfs__journal *j, const char *state,
			     uint64_t seq)
{
	struct djmfs__buf img;

	djmfs__buf_init(&img);
	djmfs__put_bytes(&img, state, strlen(state));
	cr_assert_eq(djmfs__journal_checkpoint(j, &img, seq), 0);
	cr_expect_null(img.p);
	cr_expect_eq(img.len, 0);
}

Test(journal, checkpoint_rolls_the_journal_into_a_new_epoch)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__journal_stats st;
	struct djmfs__replay_info info;
	struct djmfs__ckpt ck;
	struct seen *s;

	append_range(j, 1, 50);
	queue_checkpoint(j, "state after 50", 50);
	append_range(j, 51, 80);
	wait_durable(j, 80);
	djmfs__journal_get_stats(j, &st);
	cr_expect_eq(st.checkpoints, 1);
	djmfs__journal_stop(j);

	cr_assert_eq(djmfs__ckpt_load(vol, &ck, NULL), 0);
	cr_expect_eq(ck.gen, 2);
	cr_expect_eq(ck.last_seq, 50);
	cr_expect_eq(ck.slot, 1);
	cr_assert_eq(ck.img_len, strlen("state after 50"));
	cr_expect_eq(memcmp(ck.img, "state after 50", ck.img_len), 0);
	free(ck.img);

	/* The new epoch holds only the after-records; where they end, the
	 * old epoch's record 31 still lies, and must not be taken. */
	s = replay(2, 50, &info);
	expect_seqs(s, 51, 80);
	cr_expect_eq(info.end_off, 30 * rec_size());
	cr_expect_not_null(strstr(info.stop, "older epoch 1"), "%s", info.stop);
	free(s);

	/* The old epoch is gone from the journal's start. */
	s = replay(1, 0, &info);
	cr_expect_eq(s->n, 0);
	cr_expect_not_null(strstr(info.stop, "newer epoch 2"), "%s", info.stop);
	free(s);
}

Test(journal, second_checkpoint_goes_back_to_the_first_slot)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__replay_info info;
	struct djmfs__ckpt ck;
	struct seen *s;

	append_range(j, 1, 5);
	queue_checkpoint(j, "A", 5);
	queue_checkpoint(j, "B", 5); /* nothing in between: still fine */
	append_range(j, 6, 9);
	djmfs__journal_stop(j); /* drains without waiting */

	cr_assert_eq(djmfs__ckpt_load(vol, &ck, NULL), 0);
	cr_expect_eq(ck.gen, 3);
	cr_expect_eq(ck.slot, 0);
	cr_expect_eq(ck.last_seq, 5);
	cr_expect_eq(memcmp(ck.img, "B", 1), 0);
	free(ck.img);
	s = replay(3, 5, &info);
	expect_seqs(s, 6, 9);
	free(s);
}

static void poke(uint64_t off, uint8_t xor_mask, size_t zero_len)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	cr_assert_geq(fd, 0);
	if (zero_len) {
		uint8_t *z = calloc(1, zero_len);

		cr_assert_eq(djmfs__pwrite_full(fd, z, zero_len, off), 0);
		free(z);
	} else {
		cr_assert_eq(djmfs__pread_full(fd, &b, 1, off), 0);
		b ^= xor_mask;
		cr_assert_eq(djmfs__pwrite_full(fd, &b, 1, off), 0);
	}
	close(fd);
}

/* Damages journal offset @off in every copy: what one copy alone cannot
 * repair. */
static void poke_j(uint64_t off, uint8_t xor_mask, size_t zero_len)
{
	poke(vol->sb.journal_off + off, xor_mask, zero_len);
	if (vol->sb.mj_off)
		poke(vol->sb.mj_off + off, xor_mask, zero_len);
}

static void write_twenty(void)
{
	struct djmfs__journal *j = start(1, 0, 1);

	append_range(j, 1, 20);
	wait_durable(j, 20);
	djmfs__journal_stop(j);
}

Test(journal, flipped_bit_stops_replay_with_earlier_records_intact)
{
	struct djmfs__replay_info info;
	struct seen *s;

	write_twenty();
	poke_j(14 * rec_size() + 40, 0x10, 0);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 14);
	cr_expect_not_null(strstr(info.stop, "bad record"), "%s", info.stop);
	cr_expect_eq(info.end_off, 14 * rec_size());
	/* Records 16..20 were written after 15 was: 15 was damaged later,
	 * not torn by a crash. */
	cr_expect_eq(info.end, DJMFS__JEND_DAMAGED);
	cr_expect_eq(info.lost_records, 5);
	cr_expect_eq(info.lost_first, 16);
	cr_expect_eq(info.lost_last, 20);
	cr_expect_eq(info.lost_end_off, 20 * rec_size());
	cr_expect_eq(info.n_lost_inos, 5);
	free(s);
}

Test(journal, bad_first_record_is_damage_not_an_empty_log)
{
	struct djmfs__replay_info info;
	struct seen *s;

	write_twenty();
	poke_j(5, 0x01, 0); /* the CRC of record 1 */
	s = replay(1, 0, &info);
	cr_expect_eq(s->n, 0);
	cr_expect_eq(info.end, DJMFS__JEND_DAMAGED);
	cr_expect_eq(info.end_off, 0);
	cr_expect_eq(info.lost_records, 19);
	cr_expect_eq(info.lost_first, 2);
	cr_expect_eq(info.lost_last, 20);
	free(s);
}

Test(journal, zeroed_sector_mid_log_is_damage)
{
	struct djmfs__replay_info info;
	struct seen *s;
	size_t n = rec_size();

	write_twenty();
	/* A whole header zeroed reads like the end of the log; what lies
	 * after it says otherwise. */
	poke_j(9 * n, 0, DJMFS_JREC_HDR);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 9);
	cr_expect_not_null(strstr(info.stop, "end of log"), "%s", info.stop);
	cr_expect_eq(info.end, DJMFS__JEND_DAMAGED);
	cr_expect_eq(info.lost_first, 11);
	cr_expect_eq(info.lost_last, 20);
	free(s);
}

Test(journal, clean_end_and_torn_tail_are_told_apart)
{
	struct djmfs__replay_info info;
	struct seen *s;
	size_t n = rec_size();

	write_twenty();
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(info.end, DJMFS__JEND_LOG);
	cr_expect_eq(info.lost_records, 0);
	free(s);
	poke_j(19 * n + 40, 0x04, 0);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 19);
	cr_expect_eq(info.end, DJMFS__JEND_TORN);
	cr_expect_eq(info.lost_records, 0);
	free(s);
}

Test(journal, salvage_applies_what_lies_beyond_the_damage)
{
	struct djmfs__replay_info info;
	struct seen *s = calloc(1, sizeof(*s));

	write_twenty();
	poke_j(14 * rec_size() + 40, 0x10, 0);
	cr_assert_eq(djmfs__journal_replay(vol, 1, 0, DJMFS__REPLAY_SALVAGE,
					   collect, s, &info, &test_log), 0);
	cr_expect_eq(info.end, DJMFS__JEND_DAMAGED);
	cr_expect_eq(s->n, 19);
	cr_expect_eq(s->seq[13], 14);
	cr_expect_eq(s->seq[14], 16);
	cr_expect_eq(info.records, 19);
	cr_expect_eq(info.last_seq, 20);
	cr_expect_eq(info.gap_first, 15);
	cr_expect_eq(info.gap_last, 15);
	free(s);
}

Test(journal, records_of_a_newer_epoch_prove_the_checkpoint_stale)
{
	struct djmfs__journal *j = start(2, 1, 11);
	struct djmfs__replay_info info;
	struct seen *s;

	append_range(j, 11, 15);
	wait_durable(j, 15);
	djmfs__journal_stop(j);
	/* Replay as if checkpoint 2 were lost and 1 (after seq 4) loaded. */
	s = replay(1, 4, &info);
	cr_expect_eq(s->n, 0);
	cr_expect_eq(info.end, DJMFS__JEND_STALE_CKPT);
	cr_expect_eq(info.max_epoch, 2);
	cr_expect_eq(info.lost_first, 11);
	cr_expect_eq(info.lost_last, 15);
	free(s);
}

Test(journal, impossible_generations_are_refused_and_never_reached)
{
	struct djmfs__journal *j = start(1, 0, 1);
	uint64_t seen[] = { 3, DJMFS__GEN_MAX - 2 }, gen = 0;
	struct djmfs__ckpt ck;
	uint8_t h[64];
	uint32_t crc;
	int fd;

	append_range(j, 1, 3);
	queue_checkpoint(j, "gen two", 3);
	djmfs__journal_stop(j);
	/* Slot 1 (gen 2) edited to 2^64 - 1 with its CRC fixed, in every
	 * copy (one copy alone is mended from the other). */
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	for (int c = 0; c < 2; c++) {
		uint64_t at = c ? vol->sb.mckpt_off[1] : vol->sb.ckpt_off[1];

		if (!at)
			continue;
		cr_assert_eq(djmfs__pread_full(fd, h, sizeof(h), at), 0);
		memset(h + 16, 0xff, 8);
		crc = djmfs__crc32c(vol->seed, h, 60);
		for (int i = 0; i < 4; i++)
			h[60 + i] = (uint8_t)(crc >> (8 * i));
		cr_assert_eq(djmfs__pwrite_full(fd, h, sizeof(h), at), 0);
	}
	close(fd);
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 1);
	cr_expect_eq(ck.max_gen, 1);
	cr_expect_eq(ck.bad_slots, 2u);
	free(ck.img);
	cr_expect_not_null(strstr(logbuf, "slot 1 header torn or corrupt"),
			   "%s", logbuf);

	cr_expect_eq(djmfs__next_gen(seen, 2, &gen), 0);
	cr_expect_eq(gen, DJMFS__GEN_MAX - 1);
	seen[1]++;
	cr_expect_eq(djmfs__next_gen(seen, 2, &gen), -EOVERFLOW);
}

Test(journal, torn_last_record_stops_replay_there)
{
	struct djmfs__replay_info info;
	size_t n = rec_size();
	struct seen *s;

	write_twenty();
	poke_j(19 * n + n / 2, 0, n - n / 2);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 19);
	cr_expect_eq(info.last_seq, 19);
	free(s);
}

Test(journal, replay_ignores_records_out_of_sequence)
{
	struct djmfs__replay_info info;
	struct seen *s;

	write_twenty();
	/* After a checkpoint at seq 12 of the same epoch (never written by
	 * the writer, but replay must not trust it either). */
	s = replay(1, 12, &info);
	cr_expect_eq(s->n, 0);
	cr_expect_not_null(strstr(info.stop, "seq 1 where 13"), "%s",
			   info.stop);
	free(s);
}

Test(journal, refused_records_are_counted_and_replay_goes_on)
{
	struct djmfs__replay_info info;
	struct seen *s = calloc(1, sizeof(*s));

	write_twenty();
	s->refuse_seq = 7;
	cr_assert_eq(djmfs__journal_replay(vol, 1, 0, 0, collect, s, &info,
					   &test_log), 0);
	cr_expect_eq(info.records, 19);
	cr_expect_eq(info.skipped, 1);
	cr_expect_eq(info.last_seq, 20);
	cr_expect_not_null(strstr(logbuf, "seq 7 refused"), "%s", logbuf);
	free(s);
}

Test(journal, full_epoch_refuses_appends_until_a_checkpoint)
{
	struct djmfs__replay_info info;
	struct djmfs__journal *j;
	struct djmfs__jrec r;
	uint64_t seq = 1;
	int want = 0, err;
	struct seen *s;

	djmfs__vol_close(vol);
	unlink(path);
	make_volume(64 * MIB);
	cr_assert_eq(vol->sb.journal_len, MIB);
	j = start(1, 0, 1);
	for (;; seq++) {
		make_rec(&r, seq);
		err = djmfs__journal_append(j, &r);
		if (err)
			break;
		want |= djmfs__journal_want_checkpoint(j);
		if (!want)
			cr_assert_leq(seq * rec_size(), 3 * MIB / 4);
	}
	cr_expect_eq(err, -ENOSPC);
	cr_expect(want);
	cr_expect_eq(seq - 1, MIB / rec_size());
	/* The refused record did not take its seq: it goes first after
	 * the checkpoint. */
	queue_checkpoint(j, "full", seq - 1);
	cr_expect_not(djmfs__journal_want_checkpoint(j));
	cr_assert_eq(djmfs__journal_append(j, &r), 0);
	wait_durable(j, seq);
	djmfs__journal_stop(j);
	s = replay(2, seq - 1, &info);
	expect_seqs(s, seq, seq);
	free(s);
}

Test(journal, append_refuses_a_seq_out_of_order)
{
	struct djmfs__journal *j = start(1, 0, 10);
	struct djmfs__buf img;
	struct djmfs__jrec r;

	make_rec(&r, 11);
	cr_expect_eq(djmfs__journal_append(j, &r), -EINVAL);
	make_rec(&r, 10);
	cr_expect_eq(djmfs__journal_append(j, &r), 0);
	cr_expect_eq(r.epoch, 1);
	/* A checkpoint must follow the last appended record. */
	djmfs__buf_init(&img);
	djmfs__put_bytes(&img, "x", 1);
	cr_expect_eq(djmfs__journal_checkpoint(j, &img, 9), -EINVAL);
	cr_expect_null(img.p); /* taken and freed even on error */
	cr_expect_eq(djmfs__journal_durable(j) >= 9, 1);
	djmfs__journal_stop(j);
}

/* Flips a byte at @rel into @slot, in both copies of the metadata. */
static void poke_slot(unsigned slot, uint64_t rel, uint8_t xor_mask)
{
	poke(vol->sb.ckpt_off[slot] + rel, xor_mask, 0);
	poke(vol->sb.mckpt_off[slot] + rel, xor_mask, 0);
}

Test(journal, one_bad_copy_of_a_record_is_rewritten_from_the_other)
{
	struct djmfs__replay_info info;
	size_t n = rec_size();
	uint8_t a[256], b[256];
	struct seen *s;
	int fd;

	cr_assert_neq(vol->sb.mj_off, 0, "format 2 keeps two copies");
	write_twenty();
	/* Copy A: a flip in record 1 and a zeroed record 10; copy B: a
	 * flip in the last record, which alone would read as a torn tail. */
	poke(vol->sb.journal_off + 40, 0x02, 0);
	poke(vol->sb.journal_off + 9 * n, 0, n);
	poke(vol->sb.mj_off + 19 * n + 40, 0x80, 0);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(info.end, DJMFS__JEND_LOG);
	cr_expect_eq(vol->bad_jrec, 3);
	cr_expect_eq(vol->repaired_jrec, 3);
	cr_expect_not_null(strstr(logbuf, "journal copy A: record seq 1 "
				  "(FILE_CREATE"), "%s", logbuf);
	cr_expect_not_null(strstr(logbuf, "rewritten from copy B"), "%s",
			   logbuf);
	cr_expect_not_null(strstr(logbuf, "journal copy B: record seq 20 "),
			   "%s", logbuf);
	free(s);
	/* The copies are whole again, byte for byte. */
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	for (size_t k = 0; k < 20; k++) {
		cr_assert_eq(djmfs__pread_full(fd, a, n,
					       vol->sb.journal_off + k * n), 0);
		cr_assert_eq(djmfs__pread_full(fd, b, n, vol->sb.mj_off + k * n),
			     0);
		cr_assert_eq(memcmp(a, b, n), 0, "record %zu", k + 1);
	}
	close(fd);
	logbuf[0] = 0;
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(vol->bad_jrec, 3, "nothing more to mend");
	free(s);
}

/* A writer killed between its pwrite of copy A and that of copy B
 * leaves B without the round's records (prepared zeros, or part of the
 * last one): mended, but no damage.  The same gap with a later record
 * present in B is damage. */
Test(journal, a_copy_b_behind_at_the_tail_is_a_crash_not_damage)
{
	struct djmfs__replay_info info;
	size_t n = rec_size();
	struct seen *s;

	cr_assert_neq(vol->sb.mj_off, 0, "format 2 keeps two copies");
	write_twenty();
	/* Record 19 never reached B; record 20 only its header and part of
	 * its body (a short write stopped by the signal). */
	poke(vol->sb.mj_off + 18 * n, 0, n);
	poke(vol->sb.mj_off + 19 * n + DJMFS_JREC_HDR + 4, 0,
	     n - DJMFS_JREC_HDR - 4);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(info.end, DJMFS__JEND_LOG);
	cr_expect_eq(vol->bad_jrec, 0, "%s", logbuf);
	cr_expect_eq(vol->repaired_jrec, 0);
	cr_expect_eq(vol->lagged_jrec, 2);
	cr_expect_not_null(strstr(logbuf, "lacked the last 2 records (from "
				  "seq 19)"), "%s", logbuf);
	free(s);
	/* Mended: a second load finds both copies whole. */
	logbuf[0] = 0;
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(vol->lagged_jrec, 2, "nothing more to mend");
	cr_expect_eq(vol->bad_jrec, 0);
	free(s);
}

Test(journal, a_record_missing_from_copy_b_before_others_is_damage)
{
	struct djmfs__replay_info info;
	size_t n = rec_size();
	struct seen *s;

	write_twenty();
	poke(vol->sb.mj_off + 4 * n, 0, 2 * n);
	s = replay(1, 0, &info);
	expect_seqs(s, 1, 20);
	cr_expect_eq(vol->bad_jrec, 2, "%s", logbuf);
	cr_expect_eq(vol->repaired_jrec, 2);
	cr_expect_eq(vol->lagged_jrec, 0);
	cr_expect_not_null(strstr(logbuf, "lacked 2 records from seq 5 with "
				  "later ones present"), "%s", logbuf);
	free(s);
}

Test(journal, newest_corrupt_slot_falls_back_to_the_older)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__ckpt ck;
	int err;

	append_range(j, 1, 3);
	queue_checkpoint(j, "gen two", 3);
	djmfs__journal_stop(j);

	/* A torn image in slot 1 (gen 2), both copies: slot 0 (gen 1)
	 * wins. */
	poke_slot(1, 64 + 2, 0x01);
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 1);
	cr_expect_eq(ck.slot, 0);
	cr_expect_eq(ck.img_len, 0);
	free(ck.img);
	cr_expect_not_null(strstr(logbuf, "slot 1 (gen 2) image torn"), "%s",
			   logbuf);
	cr_expect_eq(vol->repaired_ckpt, 0);

	/* A bad header is skipped the same way. */
	poke_slot(1, 64 + 2, 0x01);
	poke_slot(1, 20, 0x80);
	logbuf[0] = 0;
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 1);
	free(ck.img);
	cr_expect_not_null(strstr(logbuf, "slot 1 header torn"), "%s", logbuf);

	/* Neither valid. */
	poke_slot(0, 0, 0xff);
	err = djmfs__ckpt_load(vol, &ck, &test_log);
	cr_expect_eq(err, -EUCLEAN, "%d", err);
	cr_expect_null(ck.img);
}

Test(journal, checkpoint_image_must_fit_its_slot)
{
	struct djmfs__journal *j = start(1, 0, 1);
	size_t big = vol->sb.ckpt_len;
	uint8_t *p = calloc(1, big);
	struct djmfs__buf img;

	cr_assert_not_null(p);
	cr_expect_eq(djmfs__ckpt_store(vol, 1, 5, 0, p, big - 63), -ENOSPC);
	cr_expect_eq(djmfs__ckpt_store(vol, 2, 5, 0, p, 1), -EINVAL);
	cr_expect_eq(djmfs__ckpt_store(vol, 1, 5, 0, p, big - 64), 0);
	djmfs__buf_init(&img);
	djmfs__put_bytes(&img, p, big);
	cr_expect_eq(djmfs__journal_checkpoint(j, &img, 0), -ENOSPC);
	free(p);
	djmfs__journal_stop(j);
}

Test(journal, stop_makes_queued_records_durable)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__replay_info info;
	struct djmfs__ckpt ck;
	struct seen *s;

	append_range(j, 1, 2000);
	queue_checkpoint(j, "mid", 2000);
	append_range(j, 2001, 2500);
	djmfs__journal_stop(j);

	cr_assert_eq(djmfs__ckpt_load(vol, &ck, NULL), 0);
	cr_expect_eq(ck.gen, 2);
	cr_expect_eq(ck.last_seq, 2000);
	free(ck.img);
	s = replay(2, 2000, &info);
	expect_seqs(s, 2001, 2500);
	free(s);
}

struct mixed {
	uint64_t small, publish, last_seq;
	int bad;
};

static int count_mixed(void *arg, const struct djmfs__jrec *r)
{
	struct mixed *m = arg;
	struct djmfs_extent e;

	m->last_seq = r->seq;
	if (r->type == DJMFS_J_FILE_CREATE) {
		m->small++;
		return 0;
	}
	if (r->type != DJMFS_J_PUBLISH || r->u.publish.n_objs != 1 ||
	    r->u.publish.objs[0].ext.n != 100000) {
		m->bad++;
		return -EBADMSG;
	}
	e = djmfs__extv_at(r->u.publish.objs[0].ext, 99999);
	if (e.offset != 99999 * UINT64_C(4096) || e.len != 4096)
		m->bad++;
	m->publish++;
	return 0;
}

Test(journal, replay_reads_past_its_window_and_grows_it_for_big_records)
{
	struct djmfs__journal *j = start(1, 0, 1);
	struct djmfs__replay_info info;
	struct mixed m = { 0 };
	struct djmfs__buf ext;
	struct djmfs__jrec *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	djmfs__buf_init(&ext);
	for (uint64_t i = 0; i < 100000; i++)
		djmfs__put_ext(&ext, i * 4096, 4096);
	cr_assert_eq(ext.err, 0);
	append_range(j, 1, 30000);
	r->type = DJMFS_J_PUBLISH;
	r->seq = 30001;
	r->u.publish.n_objs = 1;
	r->u.publish.objs[0].obj_id = 1;
	r->u.publish.objs[0].size = 100000 * UINT64_C(4096);
	r->u.publish.objs[0].ext.p = ext.p;
	r->u.publish.objs[0].ext.n = 100000;
	cr_assert_eq(djmfs__journal_append(j, r), 0);
	append_range(j, 30002, 30002);
	wait_durable(j, 30002);
	djmfs__journal_stop(j);
	djmfs__buf_free(&ext);
	free(r);

	cr_assert_eq(djmfs__journal_replay(vol, 1, 0, 0, count_mixed, &m, &info,
					   &test_log), 0);
	cr_expect_eq(m.bad, 0);
	cr_expect_eq(m.small, 30001);
	cr_expect_eq(m.publish, 1);
	cr_expect_eq(info.last_seq, 30002);
	cr_expect_gt(info.end_off, 3 * MIB);
	cr_expect_str_eq(info.stop, "end of log");
}

Test(journal, write_error_freezes_durable_and_fails_later_appends)
{
	struct djmfs__journal_opts o = {
		.epoch = 1, .ckpt_slot = 0, .next_seq = 1, .notify_fd = efd,
		.log = &test_log,
	};
	struct djmfs__journal *j;
	struct djmfs__vol *ro;
	struct djmfs__jrec r;
	int err = 0;

	/* pwrite on a read-only descriptor fails with EBADF. */
	cr_assert_eq(djmfs__vol_open(&ro, path, DJMFS__VOL_RDONLY, NULL), 0);
	o.vol = ro;
	cr_assert_eq(djmfs__journal_start(&j, &o), 0);
	for (uint64_t seq = 1; err == 0; seq++) {
		cr_assert_lt(seq, 500, "the failure never surfaced");
		make_rec(&r, seq);
		err = djmfs__journal_append(j, &r);
		poll(NULL, 0, 10);
	}
	cr_expect_eq(err, -EBADF);
	cr_expect_eq(djmfs__journal_durable(j), 0);
	cr_expect_not_null(strstr(logbuf, "pwrite"), "%s", logbuf);
	djmfs__journal_stop(j);
	djmfs__vol_close(ro);
}

Test(journal, records_survive_reopening_the_volume)
{
	struct djmfs__replay_info info;
	struct djmfs__ckpt ck;
	struct seen *s;

	write_twenty();
	djmfs__vol_close(vol);
	cr_assert_eq(djmfs__vol_open(&vol, path, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, NULL), 0);
	s = replay(ck.gen, ck.last_seq, &info);
	expect_seqs(s, 1, 20);
	free(ck.img);
	free(s);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Under load (records keep coming), a sync round waits for the window
 * after the previous one: 200 ms of appends every 100 us makes at most a
 * few rounds per 50 ms window, where syncing as records come would make
 * hundreds.  A slower machine only makes fewer rounds. */
Test(journal, window_spaces_syncs_apart_under_load)
{
	struct djmfs__journal_opts o = {
		.vol = vol, .epoch = 1, .ckpt_slot = 0, .next_seq = 1,
		.notify_fd = efd, .window_ns = 50000000u, .log = &test_log,
	};
	struct djmfs__journal_stats st;
	struct djmfs__journal *j;
	struct timespec gap = { 0, 100000 };
	uint64_t t0 = now_ns(), seq = 1;

	cr_assert_eq(djmfs__journal_start(&j, &o), 0);
	while (now_ns() - t0 < 200000000u) {
		append_range(j, seq, seq);
		seq++;
		nanosleep(&gap, NULL);
	}
	wait_durable(j, seq - 1);
	djmfs__journal_get_stats(j, &st);
	cr_expect_leq(st.batches, 12, "%llu rounds for %llu records",
		      (unsigned long long)st.batches,
		      (unsigned long long)st.records);
	djmfs__journal_stop(j);
}

/* A lone writer (one record per round) never waits for the window: two
 * records one after the other are durable long before a 2 s window. */
Test(journal, lone_writer_does_not_wait_for_the_window)
{
	struct djmfs__journal_opts o = {
		.vol = vol, .epoch = 1, .ckpt_slot = 0, .next_seq = 1,
		.notify_fd = efd, .window_ns = 2000000000u, .log = &test_log,
	};
	struct djmfs__journal *j;
	uint64_t t0;

	cr_assert_eq(djmfs__journal_start(&j, &o), 0);
	t0 = now_ns();
	append_range(j, 1, 1);
	wait_durable(j, 1);
	append_range(j, 2, 2);
	wait_durable(j, 2);
	cr_expect_lt(now_ns() - t0, 1000000000u);
	djmfs__journal_stop(j);
}

/* Both slots hold an image: gen 2 in slot 1, gen 3 in slot 0. */
static void two_checkpoints(void)
{
	struct djmfs__journal *j = start(1, 0, 1);

	append_range(j, 1, 3);
	queue_checkpoint(j, "state two", 3);
	append_range(j, 4, 5);
	queue_checkpoint(j, "state three", 5);
	djmfs__journal_stop(j);
}

/* Copies A and B of @slot hold the same header and image. */
static void expect_slot_copies_agree(unsigned slot, size_t n)
{
	uint8_t *a = malloc(n), *b = malloc(n);

	cr_assert_eq(djmfs__pread_full(vol->fd, a, n, vol->sb.ckpt_off[slot]),
		     0);
	cr_assert_eq(djmfs__pread_full(vol->fd, b, n,
				       vol->sb.mckpt_off[slot]), 0);
	cr_expect_eq(memcmp(a, b, n), 0, "slot %u", slot);
	free(a);
	free(b);
}

Test(journal, a_flip_in_either_copy_of_either_slot_is_repaired_from_the_other)
{
	static const char *img[2] = { "state three", "state two" };
	static const uint64_t gen[2] = { 3, 2 };
	struct djmfs__ckpt ck;
	char want[320];

	two_checkpoints();
	for (unsigned k = 0; k < 8; k++) {
		unsigned slot = k >> 2, copy = (k >> 1) & 1, image = k & 1;
		uint64_t base = copy ? vol->sb.mckpt_off[slot]
				     : vol->sb.ckpt_off[slot];

		logbuf[0] = 0;
		vol->repaired_ckpt = 0;
		poke(base + (image ? 64 + 3 : 30), 0x04, 0);
		cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0,
			     "case %u: %s", k, logbuf);
		cr_expect_eq(ck.gen, 3, "case %u", k);
		cr_expect_eq(ck.slot, 0, "case %u", k);
		cr_expect_eq(ck.img_len, strlen(img[0]));
		cr_expect_eq(memcmp(ck.img, img[0], ck.img_len), 0);
		free(ck.img);
		cr_expect_eq(vol->repaired_ckpt, 1, "case %u", k);
		cr_expect_eq(vol->ckpt_copy[slot][copy], DJMFS__COPY_REPAIRED);
		cr_expect_eq(vol->ckpt_copy[slot][copy ^ 1], DJMFS__COPY_OK);
		snprintf(want, sizeof(want), "%s: checkpoint slot %u (gen %llu) "
			 "copy %c %s bad (CRC): rewritten from copy %c", path,
			 slot, (unsigned long long)gen[slot], "AB"[copy],
			 image ? "image" : "header", "BA"[copy]);
		cr_expect_not_null(strstr(logbuf, want), "case %u: %s", k,
				   logbuf);
		expect_slot_copies_agree(slot, 64 + strlen(img[slot]));

		/* Exact: a second load finds nothing to repair. */
		vol->repaired_ckpt = 0;
		cr_assert_eq(djmfs__ckpt_load(vol, &ck, NULL), 0);
		free(ck.img);
		cr_expect_eq(vol->repaired_ckpt, 0, "case %u again", k);
	}
}

Test(journal, a_read_only_load_reports_a_bad_copy_and_leaves_it)
{
	struct djmfs__vol *ro;
	struct djmfs__ckpt ck;
	uint8_t b;

	two_checkpoints();
	poke(vol->sb.mckpt_off[0] + 64, 0x01, 0);
	cr_assert_eq(djmfs__vol_open(&ro, path, DJMFS__VOL_RDONLY, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(ro, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 3);
	free(ck.img);
	cr_expect_eq(ro->repaired_ckpt, 0);
	cr_expect_eq(ro->ckpt_copy[0][1], DJMFS__COPY_BAD);
	cr_expect_not_null(strstr(logbuf, "slot 0 (gen 3) copy B image bad "
				  "(CRC): not rewritten (read-only)"), "%s",
			   logbuf);
	djmfs__vol_close(ro);
	cr_assert_eq(djmfs__pread_full(vol->fd, &b, 1,
				       vol->sb.mckpt_off[0] + 64), 0);
	cr_expect_eq(b, (uint8_t)('s' ^ 0x01));
}

Test(journal, a_blank_copy_of_a_written_slot_is_rewritten)
{
	struct djmfs__ckpt ck;

	two_checkpoints();
	poke(vol->sb.ckpt_off[1], 0, 64);
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	free(ck.img);
	cr_expect_eq(vol->repaired_ckpt, 1);
	cr_expect_not_null(strstr(logbuf, "slot 1 (gen 2) copy A header bad "
				  "(blank): rewritten from copy B"), "%s",
			   logbuf);
	expect_slot_copies_agree(1, 64 + strlen("state two"));
}

Test(journal, a_format_1_volume_keeps_one_copy_of_each_slot)
{
	struct djmfs__ckpt ck;

	djmfs__vol_close(vol);
	cr_assert_eq(djmfs_mkfs(path, 256 * MIB, 0,
				DJMFS_MKFS_FORCE | DJMFS_MKFS_FORMAT1, NULL), 0);
	cr_assert_eq(djmfs__vol_open(&vol, path, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(vol->sb.mckpt_off[0], 0);
	two_checkpoints();
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 3);
	free(ck.img);
	cr_expect_eq(vol->ckpt_copy[0][0], DJMFS__COPY_OK);
	cr_expect_eq(vol->ckpt_copy[0][1], DJMFS__COPY_NONE);
	/* One bad copy is all it has: the older slot is loaded instead. */
	poke(vol->sb.ckpt_off[0] + 64 + 1, 0x01, 0);
	cr_assert_eq(djmfs__ckpt_load(vol, &ck, &test_log), 0);
	cr_expect_eq(ck.gen, 2);
	free(ck.img);
	cr_expect_eq(vol->repaired_ckpt, 0);
}
