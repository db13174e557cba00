/*
 * The two checkpoint slots of a volume: storing a metadata image under a
 * generation (image first, header last, both copies of a format 2 volume
 * with one sync), and loading the newest slot whose header and image
 * pass, taking each from whichever copy is good and rewriting the bad
 * one.  Generations stay below 2^63 and a new one is above every one
 * seen, so a journal epoch (the generation it follows) is never reused.
 * djmfs_journal.c writes the checkpoints the running server takes;
 * replay (djmfs_replay.c) decides whether the loaded one is the newest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_volio.h"

#define CKPT_MAGIC "DJMFSCKP"
#define CKPT_VERSION 1
#define CKPT_HDR 64
#define CKPT_CRC_AT 60

/* ------------------------------------------------------------------ */
/* Checkpoint slots                                                     */
/* ------------------------------------------------------------------ */

struct slot_hdr {
	uint64_t gen;
	uint64_t last_seq;
	uint64_t img_len;
	uint32_t img_crc;
};

static void slot_hdr_encode(uint8_t h[CKPT_HDR], uint32_t seed,
			    const struct slot_hdr *s)
{
	memset(h, 0, CKPT_HDR);
	memcpy(h, CKPT_MAGIC, 8);
	djmfs__st_le32(h + 8, CKPT_VERSION);
	djmfs__st_le64(h + 16, s->gen);
	djmfs__st_le64(h + 24, s->last_seq);
	djmfs__st_le64(h + 32, s->img_len);
	djmfs__st_le32(h + 40, s->img_crc);
	djmfs__st_le32(h + CKPT_CRC_AT, djmfs__crc32c(seed, h, CKPT_CRC_AT));
}

/* Returns 0, -ENODATA (all zero: never written), or -EUCLEAN. */
static int slot_hdr_decode(const uint8_t h[CKPT_HDR], uint32_t seed,
			   uint64_t ckpt_len, struct slot_hdr *s)
{
	static const uint8_t zero[CKPT_HDR];

	if (memcmp(h, zero, CKPT_HDR) == 0)
		return -ENODATA;
	if (memcmp(h, CKPT_MAGIC, 8) != 0 ||
	    djmfs__le32(h + CKPT_CRC_AT) !=
		    djmfs__crc32c(seed, h, CKPT_CRC_AT) ||
	    djmfs__le32(h + 8) != CKPT_VERSION)
		return -EUCLEAN;
	s->gen = djmfs__le64(h + 16);
	s->last_seq = djmfs__le64(h + 24);
	s->img_len = djmfs__le64(h + 32);
	s->img_crc = djmfs__le32(h + 40);
	/* A CRC-valid header can still hold an impossible generation (a
	 * bad writer, or an edit): trusting it would make it the newest
	 * and its successor overflow. */
	if (s->img_len > ckpt_len - CKPT_HDR || s->gen == 0 ||
	    s->gen >= DJMFS__GEN_MAX)
		return -EUCLEAN;
	return 0;
}

int djmfs__next_gen(const uint64_t *seen, size_t n, uint64_t *out)
{
	uint64_t max = 0;

	for (size_t i = 0; i < n; i++)
		if (seen[i] > max)
			max = seen[i];
	if (max + 1 >= DJMFS__GEN_MAX)
		return -EOVERFLOW;
	*out = max + 1;
	return 0;
}

size_t djmfs__ckpt_room(const struct djmfs__vol *v)
{
	return (size_t)(v->sb.ckpt_len - CKPT_HDR);
}

/* Where copy @copy (0: A, 1: B) of @slot lies; 0 when there is none. */
static uint64_t slot_off(const struct djmfs__vol *v, unsigned slot,
			 unsigned copy)
{
	return copy == 0 ? v->sb.ckpt_off[slot] : v->sb.mckpt_off[slot];
}

static unsigned slot_ncopies(const struct djmfs__vol *v)
{
	return v->sb.mirror_off ? 2 : 1;
}

/* Writes one copy of a slot: image, then header, so a crash in between
 * leaves a header whose image CRC fails.  No sync. */
static int slot_write(struct djmfs__vol *v, uint64_t off,
		      const uint8_t h[CKPT_HDR], const uint8_t *img, size_t n)
{
	int err = djmfs__pwrite_full(v->fd, img, n, off + CKPT_HDR);

	return err ? err : djmfs__pwrite_full(v->fd, h, CKPT_HDR, off);
}

int djmfs__ckpt_store(struct djmfs__vol *v, unsigned slot, uint64_t gen,
		      uint64_t last_seq, const uint8_t *img, size_t n)
{
	struct slot_hdr s = { gen, last_seq, n, 0 };
	uint8_t h[CKPT_HDR];
	int err = 0;

	if (slot > 1)
		return -EINVAL;
	if (n > v->sb.ckpt_len - CKPT_HDR)
		return -ENOSPC;
	s.img_crc = djmfs__crc32c(v->seed, img, n);
	slot_hdr_encode(h, v->seed, &s);
	/* Both copies, then one sync for all four writes: a crash leaves
	 * at most this slot bad, and the other slot whole in both copies. */
	for (unsigned c = 0; c < slot_ncopies(v) && err == 0; c++)
		err = slot_write(v, slot_off(v, slot, c), h, img, n);
	if (err == 0)
		err = djmfs__datasync(v->fd);
	return err;
}

/* Returns 0, -ENODATA (blank), -EUCLEAN, or -errno. */
static int slot_read_hdr(struct djmfs__vol *v, uint64_t off,
			 uint8_t h[CKPT_HDR], struct slot_hdr *s)
{
	int err;

	err = djmfs__pread_full(v->fd, h, CKPT_HDR, off);
	if (err == -ENODATA)
		return -EUCLEAN;
	if (err < 0)
		return err;
	return slot_hdr_decode(h, v->seed, v->sb.ckpt_len, s);
}

/* Reads the image a header announces from the copy at @off.  Returns 0,
 * -EUCLEAN (image CRC), -ENOMEM, or -errno. */
static int slot_read_img(struct djmfs__vol *v, uint64_t off,
			 const struct slot_hdr *s, uint8_t **img)
{
	uint8_t *p = NULL;
	int err = 0;

	*img = NULL;
	if (s->img_len > 0) {
		p = malloc(s->img_len);
		if (!p)
			return -ENOMEM;
		err = djmfs__pread_full(v->fd, p, s->img_len, off + CKPT_HDR);
		if (err == -ENODATA)
			err = -EUCLEAN;
	}
	if (err == 0 && djmfs__crc32c(v->seed, p, s->img_len) != s->img_crc)
		err = -EUCLEAN;
	if (err < 0)
		free(p);
	else
		*img = p;
	return err;
}

static const char *slot_err_text(int err)
{
	return err == -EUCLEAN ? "torn or corrupt" : strerror(-err);
}

/* Why a copy is bad, for the repair line. */
static void copy_why(int err, char *buf, size_t n)
{
	if (err == -EUCLEAN)
		snprintf(buf, n, "CRC");
	else if (err == -ENODATA)
		snprintf(buf, n, "blank");
	else
		snprintf(buf, n, "read error: %s", strerror(-err));
}

/* Both copies of one slot as loading found them. */
struct slot_look {
	uint8_t raw[2][CKPT_HDR];
	struct slot_hdr hdr[2];
	int hrc[2];	/* header: 0, -ENODATA blank, -EUCLEAN, -errno */
	int irc[2];	/* image under the chosen header */
	int good;	/* the copy whose header is chosen, or -1 */
	uint8_t *img;	/* the chosen header's image, malloc'd */
};

/* Tries the images of both copies under copy @h's header. */
static int slot_try(struct djmfs__vol *v, unsigned slot, struct slot_look *l,
		    unsigned h)
{
	unsigned n = slot_ncopies(v);
	int have = 0;

	for (unsigned c = 0; c < n; c++) {
		uint8_t *img = NULL;

		l->irc[c] = slot_read_img(v, slot_off(v, slot, c), &l->hdr[h],
					  &img);
		if (l->irc[c] == -ENOMEM) {
			free(l->img);
			l->img = NULL;
			return -ENOMEM;
		}
		if (l->irc[c] == 0 && !have) {
			l->img = img; /* NULL for an empty image */
			have = 1;
		} else {
			free(img);
		}
	}
	if (have)
		l->good = (int)h;
	return 0;
}

/* Header A else header B; under it, image A else image B. */
static int slot_look(struct djmfs__vol *v, unsigned slot, struct slot_look *l)
{
	unsigned n = slot_ncopies(v);
	int err;

	memset(l, 0, sizeof(*l));
	l->good = -1;
	for (unsigned c = 0; c < n; c++)
		l->hrc[c] = slot_read_hdr(v, slot_off(v, slot, c), l->raw[c],
					  &l->hdr[c]);
	for (unsigned h = 0; h < n && l->good < 0; h++) {
		if (l->hrc[h] != 0 ||
		    (h == 1 && l->hrc[0] == 0 &&
		     memcmp(l->raw[0], l->raw[1], CKPT_HDR) == 0))
			continue; /* already tried as copy A's */
		err = slot_try(v, slot, l, h);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Rewrites the copies of a slot that do not hold the chosen header and
 * its image, each logged; counts them. */
static int slot_mend(struct djmfs__vol *v, unsigned slot, struct slot_look *l,
		     const struct djmfs_log *log)
{
	const struct slot_hdr *g = &l->hdr[l->good];
	unsigned n = slot_ncopies(v), fixed = 0;
	int err = 0;

	for (unsigned c = 0; c < n; c++) {
		int hdr_ok = l->hrc[c] == 0 &&
			     memcmp(l->raw[c], l->raw[l->good], CKPT_HDR) == 0;
		char why[96];

		v->ckpt_copy[slot][c] = DJMFS__COPY_OK;
		if (hdr_ok && l->irc[c] == 0)
			continue;
		v->ckpt_copy[slot][c] = DJMFS__COPY_BAD;
		if (!hdr_ok && l->hrc[c] == 0)
			snprintf(why, sizeof(why), "stale, gen %" PRIu64,
				 l->hdr[c].gen);
		else
			copy_why(hdr_ok ? l->irc[c] : l->hrc[c], why,
				 sizeof(why));
		if (v->rdonly) {
			djmfs__log(log, DJMFS_LOG_WARN, "%s: checkpoint slot %u "
				   "(gen %" PRIu64 ") copy %c %s bad (%s): not "
				   "rewritten (read-only)", v->path, slot,
				   g->gen, "AB"[c], hdr_ok ? "image" : "header",
				   why);
			continue;
		}
		err = slot_write(v, slot_off(v, slot, c), l->raw[l->good],
				 l->img, g->img_len);
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_ERROR, "pwrite(%s, checkpoint "
				   "slot %u copy %c): %s", v->path, slot,
				   "AB"[c], strerror(-err));
			return err;
		}
		djmfs__log(log, DJMFS_LOG_WARN, "%s: checkpoint slot %u (gen %"
			   PRIu64 ") copy %c %s bad (%s): rewritten from copy "
			   "%c", v->path, slot, g->gen, "AB"[c],
			   hdr_ok ? "image" : "header", why, "AB"[c ^ 1]);
		v->ckpt_copy[slot][c] = DJMFS__COPY_REPAIRED;
		fixed++;
	}
	v->repaired_ckpt += fixed;
	return 0;
}

/* The first error of a slot worth reporting when nothing loads: a read
 * error is not proof of damage. */
static int slot_ioerr(const struct slot_look *l, unsigned n)
{
	for (unsigned c = 0; c < n; c++) {
		if (l->hrc[c] < 0 && l->hrc[c] != -ENODATA &&
		    l->hrc[c] != -EUCLEAN)
			return l->hrc[c];
		if (l->irc[c] < 0 && l->irc[c] != -EUCLEAN)
			return l->irc[c];
	}
	return 0;
}

/* A slot no copy of which loads, logged as today's single copy was. */
static void slot_skipped(struct djmfs__vol *v, unsigned slot,
			 const struct slot_look *l, const struct djmfs_log *log)
{
	unsigned n = slot_ncopies(v);
	int h = l->hrc[0] == 0 ? 0 : n > 1 && l->hrc[1] == 0 ? 1 : -1;

	for (unsigned c = 0; c < n; c++)
		v->ckpt_copy[slot][c] = h < 0 && l->hrc[c] == -ENODATA
					? DJMFS__COPY_BLANK : DJMFS__COPY_BAD;
	if (h >= 0) {
		v->ckpt_gen[slot] = l->hdr[h].gen;
		djmfs__log(log, DJMFS_LOG_WARN, "%s: checkpoint slot %u (gen %"
			   PRIu64 ") image %s, skipped", v->path, slot,
			   l->hdr[h].gen, slot_err_text(l->irc[0] < 0
				? l->irc[0] : l->irc[n - 1]));
		return;
	}
	for (unsigned c = 0; c < n; c++) {
		if (l->hrc[c] != -ENODATA) {
			djmfs__log(log, DJMFS_LOG_WARN, "%s: checkpoint "
				   "slot %u header %s, skipped", v->path, slot,
				   slot_err_text(l->hrc[c]));
			return;
		}
	}
}

int djmfs__ckpt_load(struct djmfs__vol *v, struct djmfs__ckpt *out,
		     const struct djmfs_log *log)
{
	struct slot_look l;
	uint64_t fixed = v->repaired_ckpt;
	int err = 0, ioerr = 0, found = 0;

	memset(out, 0, sizeof(*out));
	memset(v->ckpt_copy, 0, sizeof(v->ckpt_copy));
	for (unsigned i = 0; i < 2 && err == 0; i++) {
		v->ckpt_gen[i] = 0;
		err = slot_look(v, i, &l);
		if (err < 0)
			break;
		if (l.good < 0) {
			slot_skipped(v, i, &l, log);
			if (!ioerr)
				ioerr = slot_ioerr(&l, slot_ncopies(v));
			continue;
		}
		v->ckpt_gen[i] = l.hdr[l.good].gen;
		err = slot_mend(v, i, &l, log);
		if (err == 0 && (!found || l.hdr[l.good].gen > out->gen)) {
			free(out->img);
			out->img = l.img;
			l.img = NULL;
			out->gen = l.hdr[l.good].gen;
			out->last_seq = l.hdr[l.good].last_seq;
			out->slot = i;
			out->img_len = l.hdr[l.good].img_len;
			found = 1;
		}
		free(l.img);
	}
	if (err == 0 && v->repaired_ckpt != fixed)
		err = djmfs__datasync(v->fd);
	if (err < 0) {
		free(out->img);
		memset(out, 0, sizeof(*out));
		return err;
	}
	for (unsigned i = 0; i < 2; i++) {
		int any_bad = 0, any_ok = 0;

		if (v->ckpt_gen[i] > out->max_gen)
			out->max_gen = v->ckpt_gen[i];
		for (unsigned c = 0; c < slot_ncopies(v); c++) {
			any_bad |= v->ckpt_copy[i][c] == DJMFS__COPY_BAD;
			any_ok |= v->ckpt_copy[i][c] == DJMFS__COPY_OK ||
				  v->ckpt_copy[i][c] == DJMFS__COPY_REPAIRED;
		}
		if (any_bad && !any_ok)
			out->bad_slots |= 1u << i;
	}
	if (found)
		return 0;
	djmfs__log(log, DJMFS_LOG_ERROR, "%s: no valid checkpoint in either "
		   "slot", v->path);
	return ioerr ? ioerr : -EUCLEAN;
}

