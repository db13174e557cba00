/*
 * Tests of the offline checker on real volume files: each test formats a
 * volume, writes a journal of records the way a server would (a crash
 * leaves exactly that behind), and runs djmfs_fsck() on it.  Covered: a
 * fresh and a healthy volume are clean, two files mapping one unit are
 * both reported, orphaned reservations are counted and dropped by repair,
 * repair quarantines so that a second check is clean, a journal record
 * that cannot be applied is a problem that repair retires, trimmed
 * objects leave their units free and a corrupted start is caught, and a
 * volume a server holds, or a file that is no volume, is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_server.h"
#include "djmfs_volio.h"

#define VOL_SIZE (64ull << 20)
#define KIB 1024u

static char dir[64];
static char vol[128];
static char logged[4096]; /* error lines of the last fsck, joined */

static void log_hook(void *arg, enum djmfs_log_level lvl, const char *msg)
{
	(void)arg;
	if (lvl <= DJMFS_LOG_WARN) {
		strncat(logged, msg, sizeof(logged) - strlen(logged) - 2);
		strcat(logged, "\n");
	}
}

static const struct djmfs_log test_log = { log_hook, NULL };

static void setup(void)
{
	strcpy(dir, "/tmp/djmfs-fsck-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(vol, sizeof(vol), "%s/vol", dir);
	cr_assert_eq(djmfs_mkfs(vol, VOL_SIZE, 0, 0, NULL), 0);
	logged[0] = 0;
}

static void teardown(void)
{
	unlink(vol);
	rmdir(dir);
}

TestSuite(fsck, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ */
/* Writing a journal as a server would                                  */
/* ------------------------------------------------------------------ */

/* Each record is first applied to a shadow state (so the test only writes
 * what a server would have accepted) and then journaled. */
struct writer {
	struct djmfs__vol *v;
	struct djmfs__meta *m;
	struct djmfs__journal *j;
	struct djmfs__buf pub; /* extent bytes the PUBLISH views point to */
	int efd;
	uint64_t gen;	       /* the checkpoint the journal follows */
	unsigned slot;
};

static void writer_open(struct writer *w)
{
	struct djmfs__ckpt ck;
	struct djmfs__meta_opts mo = { 0 };
	struct djmfs__journal_opts jo = { 0 };

	memset(w, 0, sizeof(*w));
	djmfs__buf_init(&w->pub);
	cr_assert_eq(djmfs__vol_open(&w->v, vol, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(djmfs__ckpt_load(w->v, &ck, NULL), 0);
	mo.data_off = w->v->sb.data_off;
	mo.n_aus = w->v->sb.n_aus;
	mo.au_size = w->v->sb.au_size;
	cr_assert_eq(djmfs__meta_new(&w->m, &mo), 0);
	cr_assert_eq(djmfs__meta_load(w->m, ck.img, ck.img_len,
				      ck.last_seq), 0);
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(w->efd, 0);
	jo.vol = w->v;
	jo.epoch = ck.gen;
	jo.ckpt_slot = ck.slot;
	w->gen = ck.gen;
	w->slot = ck.slot;
	jo.next_seq = ck.last_seq + 1;
	jo.notify_fd = w->efd;
	cr_assert_eq(djmfs__journal_start(&w->j, &jo), 0);
	free(ck.img);
}

/* Makes everything durable and lets go of the volume, like a crash right
 * after the last acknowledgement. */
static void writer_close(struct writer *w)
{
	djmfs__journal_stop(w->j);
	djmfs__meta_free(w->m);
	djmfs__vol_close(w->v);
	djmfs__buf_free(&w->pub);
	close(w->efd);
}

static void add(struct writer *w, struct djmfs__jrec *r, uint16_t type,
		uint64_t ino)
{
	int err;

	r->type = type;
	r->ino = ino;
	r->time_ns = 1000;
	r->seq = djmfs__meta_seq(w->m) + 1;
	err = djmfs__meta_apply(w->m, r);
	cr_assert_eq(err, 0, "apply %s: %d", djmfs__jtype_name(type), err);
	cr_assert_eq(djmfs__journal_append(w->j, r), 0);
}

/* A file with one DATA object; returns its ino. */
static uint64_t new_file(struct writer *w, const char *name)
{
	struct djmfs__jrec r;
	uint64_t ino = djmfs__meta_next_ino(w->m);

	memset(&r, 0, sizeof(r));
	strcpy(r.u.create.name, name);
	add(w, &r, DJMFS_J_FILE_CREATE, ino);
	memset(&r, 0, sizeof(r));
	r.u.obj.obj_id = 1;
	r.u.obj.attrs = DJMFS_ATTR_DATA;
	strcpy(r.u.obj.name, "data");
	add(w, &r, DJMFS_J_OBJ_CREATE, ino);
	return ino;
}

static void reserve(struct writer *w, uint64_t ino, uint64_t first,
		    uint32_t count)
{
	struct djmfs__jrec r;
	struct djmfs__buf b;

	djmfs__buf_init(&b);
	djmfs__put_run(&b, first, count);
	cr_assert_eq(b.err, 0);
	memset(&r, 0, sizeof(r));
	r.u.runs.p = b.p;
	r.u.runs.n = 1;
	add(w, &r, DJMFS_J_RESERVE, ino);
	djmfs__buf_free(&b);
}

/* Publishes @len bytes of object 1 at the start of unit @au. */
static void publish(struct writer *w, uint64_t ino, uint64_t au,
		    uint64_t len)
{
	struct djmfs__jrec r;
	const struct djmfs__file *f;
	struct djmfs__pub_obj *o;

	f = djmfs__root_find(djmfs__meta_working(w->m),
			     djmfs__meta_name(w->m, ino));
	cr_assert_not_null(f);
	djmfs__buf_reset(&w->pub);
	djmfs__put_ext(&w->pub, djmfs__au_off(&w->v->sb, au), len);
	cr_assert_eq(w->pub.err, 0);
	memset(&r, 0, sizeof(r));
	r.u.publish.base_version = f->version;
	r.u.publish.n_objs = 1;
	o = &r.u.publish.objs[0];
	o->obj_id = 1;
	o->size = len;
	o->ext.p = w->pub.p;
	o->ext.n = 1;
	add(w, &r, DJMFS_J_PUBLISH, ino);
}

static int fsck(int repair, struct djmfs_fsck_report *rep)
{
	logged[0] = 0;
	memset(rep, 0xa5, sizeof(*rep)); /* every field must be filled */
	return djmfs_fsck(vol, repair, rep, &test_log);
}

static uint64_t volume_aus(void)
{
	struct djmfs__vol *v;
	uint64_t n;

	cr_assert_eq(djmfs__vol_open(&v, vol, DJMFS__VOL_RDONLY, NULL), 0);
	n = v->sb.n_aus;
	djmfs__vol_close(v);
	return n;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

Test(fsck, fresh_volume_is_clean)
{
	struct djmfs_fsck_report rep;

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.files, 0);
	cr_assert_eq(rep.bad_files, 0);
	cr_assert_eq(rep.quarantined, 0);
	cr_assert_eq(rep.records_replayed, 0);
	cr_assert_eq(rep.used_aus, 0);
	cr_assert_eq(rep.orphan_aus, 0);
	cr_assert_eq(rep.free_aus, volume_aus());
	cr_assert_eq(rep.repaired, 0);
}

Test(fsck, healthy_files_after_a_crash_are_clean)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a, b;

	writer_open(&w);
	a = new_file(&w, "a");
	reserve(&w, a, 2, 2);
	publish(&w, a, 2, 64 * KIB);
	b = new_file(&w, "b");
	reserve(&w, b, 5, 1);
	publish(&w, b, 5, 8 * KIB);
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.files, 2);
	cr_assert_eq(rep.bad_files, 0);
	cr_assert_eq(rep.records_replayed, 8);
	cr_assert_eq(rep.used_aus, 2);
	/* unit 3 was reserved by a but never written */
	cr_assert_eq(rep.orphan_aus, 1);
	cr_assert_eq(rep.free_aus, volume_aus() - 3);
	cr_assert_eq(rep.repaired, 0);
}

Test(fsck, reports_both_files_mapping_one_unit)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a, b;

	writer_open(&w);
	a = new_file(&w, "alpha");
	reserve(&w, a, 7, 1);
	publish(&w, a, 7, 16 * KIB);
	b = new_file(&w, "beta");
	reserve(&w, b, 7, 1);
	publish(&w, b, 7, 4 * KIB);
	new_file(&w, "gamma");
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.files, 3);
	cr_assert_eq(rep.bad_files, 2);
	cr_assert_eq(rep.used_aus, 1);
	cr_assert_eq(rep.repaired, 0);
	cr_assert_not_null(strstr(logged, "alpha"), "%s", logged);
	cr_assert_not_null(strstr(logged, "beta"), "%s", logged);
	cr_assert_null(strstr(logged, "gamma"), "%s", logged);
}

Test(fsck, counts_orphaned_reservations_and_repair_drops_them)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a;

	writer_open(&w);
	a = new_file(&w, "rec");
	reserve(&w, a, 10, 4);
	reserve(&w, a, 20, 2);
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.orphan_aus, 6);
	cr_assert_eq(rep.free_aus, volume_aus() - 6);
	cr_assert_eq(rep.repaired, 0);

	cr_assert_eq(fsck(1, &rep), 0, "%s", logged);
	cr_assert_eq(rep.orphan_aus, 6);
	cr_assert_eq(rep.repaired, 1);

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.orphan_aus, 0);
	cr_assert_eq(rep.records_replayed, 0); /* the journal was retired */
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(rep.free_aus, volume_aus());
}

Test(fsck, repair_quarantines_and_a_second_check_is_clean)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a, b, c;

	writer_open(&w);
	a = new_file(&w, "alpha");
	reserve(&w, a, 3, 2);
	publish(&w, a, 3, 1024 * KIB + 4 * KIB);
	b = new_file(&w, "beta");
	reserve(&w, b, 4, 1);
	publish(&w, b, 4, 4 * KIB);
	c = new_file(&w, "gamma");
	reserve(&w, c, 9, 1);
	publish(&w, c, 9, 4 * KIB);
	writer_close(&w);

	cr_assert_eq(fsck(1, &rep), -EUCLEAN);
	cr_assert_eq(rep.bad_files, 2);
	cr_assert_eq(rep.quarantined, 0);
	cr_assert_eq(rep.repaired, 1);

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.files, 3);
	cr_assert_eq(rep.bad_files, 0);
	cr_assert_eq(rep.quarantined, 2);
	cr_assert_eq(rep.used_aus, 3);
	cr_assert_eq(rep.records_replayed, 0);
	cr_assert_eq(rep.repaired, 0);
}

Test(fsck, a_journal_record_that_cannot_apply_is_a_problem)
{
	struct djmfs_fsck_report rep;
	struct djmfs__jrec r;
	struct writer w;

	writer_open(&w);
	new_file(&w, "ok");
	/* journaled without the shadow state's consent: a wrong inode */
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_FILE_CREATE;
	r.ino = djmfs__meta_next_ino(w.m) + 5;
	r.seq = djmfs__meta_seq(w.m) + 1;
	strcpy(r.u.create.name, "bogus");
	cr_assert_eq(djmfs__journal_append(w.j, &r), 0);
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.records_replayed, 2);
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(rep.bad_files, 0);
	cr_assert_eq(fsck(1, &rep), -EUCLEAN);
	cr_assert_eq(rep.repaired, 1);
	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.files, 1);
}

Test(fsck, refuses_a_volume_a_server_holds)
{
	struct djmfs_fsck_report rep;
	struct djmfs__vol *v;

	cr_assert_eq(djmfs__vol_open(&v, vol, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_eq(fsck(0, &rep), -EBUSY);
	cr_assert_eq(fsck(1, &rep), -EBUSY);
	cr_assert_eq(rep.repaired, 0);
	djmfs__vol_close(v);
	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
}

Test(fsck, refuses_a_file_that_is_not_a_volume)
{
	struct djmfs_fsck_report rep;
	FILE *f = fopen(vol, "r+");

	cr_assert_not_null(f);
	/* Over every superblock copy's magic. */
	for (unsigned i = 0; i < 3; i++) {
		fseek(f, i == 0 ? 0 : i == 1 ? 64 << 10 : 60 << 20, SEEK_SET);
		fputs("not a volume", f);
	}
	fclose(f);
	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.files, 0);
}

/* Flips one bit of the journal area. */
static void flip_journal(uint64_t off)
{
	struct djmfs__vol *v;
	uint8_t b;

	cr_assert_eq(djmfs__vol_open(&v, vol, DJMFS__VOL_EXCL, NULL), 0);
	for (int c = 0; c < 2; c++) { /* both copies: beyond repair */
		uint64_t at = (c ? v->sb.mj_off : v->sb.journal_off) + off;

		if (c && !v->sb.mj_off)
			break;
		cr_assert_eq(djmfs__pread_full(v->fd, &b, 1, at), 0);
		b ^= 0x08;
		cr_assert_eq(djmfs__pwrite_full(v->fd, &b, 1, at), 0);
	}
	djmfs__vol_close(v);
}

Test(fsck, damage_before_valid_records_is_never_clean)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a, b;

	writer_open(&w);
	a = new_file(&w, "a");
	reserve(&w, a, 2, 2);
	publish(&w, a, 2, 64 * KIB);
	b = new_file(&w, "b");
	reserve(&w, b, 5, 1);
	publish(&w, b, 5, 8 * KIB);
	writer_close(&w);

	/* The first record (creating "a"): before, this read as an empty
	 * journal and fsck said clean with no file at all. */
	flip_journal(40);
	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_ERRORS);
	cr_assert_eq(rep.journal_end, DJMFS_FSCK_JOURNAL_DAMAGED);
	cr_assert_eq(rep.journal_end_off, 0);
	cr_assert_eq(rep.lost_records, 7);
	cr_assert_eq(rep.repaired, 0);
	cr_assert_not_null(strstr(logged, "damaged: 7 valid records"), "%s",
			   logged);

	/* --repair salvages: b is intact, a's records are refused, and the
	 * report counts what was dropped. */
	cr_assert_eq(fsck(1, &rep), -EUCLEAN);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_CORRECTED);
	cr_assert_eq(rep.repaired, 1);
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(rep.dropped_records, 1 + 3);
	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_CLEAN);
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(rep.used_aus, 1);
}

Test(fsck, one_bad_copy_is_mended_and_reported_corrected)
{
	struct djmfs_fsck_report rep;
	struct djmfs__vol *v;
	struct writer w;
	uint64_t a;
	uint8_t b;

	writer_open(&w);
	a = new_file(&w, "a");
	reserve(&w, a, 2, 1);
	publish(&w, a, 2, 8 * KIB);
	writer_close(&w);

	/* Copy B of the second record only. */
	cr_assert_eq(djmfs__vol_open(&v, vol, DJMFS__VOL_EXCL, NULL), 0);
	cr_assert_neq(v->sb.mj_off, 0);
	cr_assert_eq(djmfs__pread_full(v->fd, &b, 1, v->sb.mj_off + 200), 0);
	b ^= 0x40;
	cr_assert_eq(djmfs__pwrite_full(v->fd, &b, 1, v->sb.mj_off + 200), 0);
	djmfs__vol_close(v);

	/* -n: found and left, never clean. */
	logged[0] = 0;
	memset(&rep, 0, sizeof(rep));
	cr_assert_eq(djmfs_fsck(vol, DJMFS_FSCK_NO_CHANGE, &rep, &test_log),
		     -EUCLEAN);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_ERRORS);
	cr_assert_eq(rep.bad_copies, 1);
	cr_assert_eq(rep.files, 1);
	cr_assert_not_null(strstr(logged, "not rewritten (read-only)"), "%s",
			   logged);
	/* By default the copy is rewritten from the good one: corrected. */
	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_CORRECTED);
	cr_assert_eq(rep.repaired_jrec, 1);
	cr_assert_eq(rep.bad_copies, 0);
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.verdict, DJMFS_FSCK_CLEAN);
}

/* ------------------------------------------------------------------ */
/* Trims                                                                */
/* ------------------------------------------------------------------ */

static void trim(struct writer *w, uint64_t ino, uint64_t start)
{
	struct djmfs__jrec r;

	memset(&r, 0, sizeof(r));
	r.u.trim.obj_id = 1;
	r.u.trim.start = start;
	add(w, &r, DJMFS_J_TRIM, ino);
}

Test(fsck, trimmed_units_are_free_and_the_volume_clean)
{
	struct djmfs_fsck_report rep;
	struct writer w;
	uint64_t a;

	writer_open(&w);
	a = new_file(&w, "rec");
	reserve(&w, a, 2, 4);
	publish(&w, a, 2, 3 * 1024 * KIB + 4 * KIB); /* units 2..5 */
	trim(&w, a, 2 * 1024 * KIB + 8 * KIB);	      /* 2 and 3 go */
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), 0, "%s", logged);
	cr_assert_eq(rep.files, 1);
	cr_assert_eq(rep.bad_files, 0);
	cr_assert_eq(rep.records_replayed, 5);
	cr_assert_eq(rep.used_aus, 2);
	cr_assert_eq(rep.orphan_aus, 0);
	cr_assert_eq(rep.free_aus, volume_aus() - 2);
}

Test(fsck, a_corrupted_start_is_caught)
{
	struct djmfs_fsck_report rep;
	struct djmfs__buf img;
	struct djmfs__obj *o;
	struct writer w;
	uint64_t a, b;

	writer_open(&w);
	a = new_file(&w, "alpha");
	reserve(&w, a, 2, 2);
	publish(&w, a, 2, 1024 * KIB + 4 * KIB); /* units 2 and 3 */
	trim(&w, a, 1024 * KIB);		 /* 2 goes */
	b = new_file(&w, "beta");
	reserve(&w, b, 2, 1);
	publish(&w, b, 2, 4 * KIB);		 /* and is beta's now */
	/* A checkpoint of that state whose alpha starts at 0 again. */
	djmfs__journal_stop(w.j);
	w.j = NULL;
	o = (struct djmfs__obj *)djmfs__file_obj(
		djmfs__root_find(djmfs__meta_working(w.m), "alpha"), 1);
	o->start = 0;
	djmfs__buf_init(&img);
	cr_assert_eq(djmfs__meta_serialize(w.m, &img), 0);
	cr_assert_eq(djmfs__ckpt_store(w.v, 1 - w.slot, w.gen + 1,
				       djmfs__meta_seq(w.m), img.p, img.len),
		     0);
	djmfs__buf_free(&img);
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.bad_files, 2);
	cr_assert_not_null(strstr(logged, "alpha"), "%s", logged);
	cr_assert_not_null(strstr(logged, "beta"), "%s", logged);
}

Test(fsck, a_trim_past_the_size_in_the_journal_is_a_problem)
{
	struct djmfs_fsck_report rep;
	struct djmfs__jrec r;
	struct writer w;
	uint64_t a;

	writer_open(&w);
	a = new_file(&w, "rec");
	reserve(&w, a, 2, 1);
	publish(&w, a, 2, 4 * KIB);
	memset(&r, 0, sizeof(r));
	r.type = DJMFS_J_TRIM;
	r.ino = a;
	r.seq = djmfs__meta_seq(w.m) + 1;
	r.u.trim.obj_id = 1;
	r.u.trim.start = 8 * KIB;
	cr_assert_eq(djmfs__journal_append(w.j, &r), 0);
	writer_close(&w);

	cr_assert_eq(fsck(0, &rep), -EUCLEAN);
	cr_assert_eq(rep.records_replayed, 4);
	cr_assert_eq(rep.used_aus, 1);
}
