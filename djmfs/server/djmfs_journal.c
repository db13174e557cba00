/*
 * Durability of the server's metadata: the two checkpoint slots, the
 * journal of records that follow the newest checkpoint, replaying that
 * journal at boot, and the group-commit writer that makes appended
 * records durable.  The loop thread appends and is never blocked by the
 * disk: a writer thread takes every record queued since its last round,
 * writes them with one pwrite per run of records and one fdatasync, then
 * publishes the highest durable seq and wakes the loop through an
 * eventfd.  A checkpoint rotates the journal: the image goes to the slot
 * not holding the current checkpoint, under generation epoch + 1, and the
 * records after it start again at the journal's first byte.
 *
 * Invariants:
 *  1. The queue holds segments in append order.  A segment's records are
 *     contiguous bytes of one epoch starting at its `off`; a checkpoint
 *     closes the segment it is attached to, so nothing is ever added to a
 *     segment after its checkpoint.
 *  2. The loop thread alone owns epoch, off, next_seq and enc; the writer
 *     alone owns slot.  The queue and `stopping` are under `lock`;
 *     durable, failed and the statistics are atomics.
 *  3. A checkpoint is written only after the records before it are
 *     durable, and records of its new epoch only after it is durable, so
 *     at every instant one slot plus the journal it heads describes all
 *     acknowledged state (a torn slot fails its CRC and the other wins).
 *  4. durable only grows, and only after an fdatasync that covered those
 *     records returned success.  After the first I/O error nothing more
 *     is written and durable never moves again (a later fdatasync may
 *     "succeed" over lost pages, so an error is final).
 *
 * Life of an item:
 *   record:     journal_append (queued) -> writer_round: pwrite (written)
 *               -> batch_commit: fdatasync, durable, eventfd (durable)
 *   checkpoint: journal_checkpoint (queued, loop moves to epoch + 1)
 *               -> batch_commit of the records before it
 *               -> ckpt_write: ckpt_store into the other slot (current)
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_volio.h"

#define CKPT_MAGIC "DJMFSCKP"
#define CKPT_VERSION 1
#define CKPT_HDR 64
#define CKPT_CRC_AT 60
#define REPLAY_CHUNK (1u << 20)

/* ------------------------------------------------------------------ */
/* Checkpoint slots                                                     */
/* ------------------------------------------------------------------ */

struct slot_hdr {
	uint64_t gen;
	uint64_t last_seq;
	uint64_t img_len;
	uint32_t img_crc;
};

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

static void slot_hdr_encode(uint8_t h[CKPT_HDR], uint32_t seed,
			    const struct slot_hdr *s)
{
	memset(h, 0, CKPT_HDR);
	memcpy(h, CKPT_MAGIC, 8);
	put_le32(h + 8, CKPT_VERSION);
	put_le64(h + 16, s->gen);
	put_le64(h + 24, s->last_seq);
	put_le64(h + 32, s->img_len);
	put_le32(h + 40, s->img_crc);
	put_le32(h + CKPT_CRC_AT, djmfs__crc32c(seed, h, CKPT_CRC_AT));
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

/* ------------------------------------------------------------------ */
/* Replay                                                               */
/* ------------------------------------------------------------------ */

/* A sliding window over the journal area: p[pos, fill) are unread bytes
 * starting at journal offset base + pos. */
struct rwin {
	uint8_t *p;
	size_t cap, pos, fill;
	uint64_t base;
};

/* Makes room for @need bytes from pos and reads as many as fit.
 * Returns bytes added (0: the area is exhausted) or -errno. */
static ssize_t rwin_refill(struct rwin *w, const struct djmfs__vol *v,
			   size_t need)
{
	uint64_t left;
	size_t n;
	int err;

	memmove(w->p, w->p + w->pos, w->fill - w->pos);
	w->base += w->pos;
	w->fill -= w->pos;
	w->pos = 0;
	if (need > w->cap) {
		uint8_t *q = realloc(w->p, need);

		if (!q)
			return -ENOMEM;
		w->p = q;
		w->cap = need;
	}
	left = v->sb.journal_len - (w->base + w->fill);
	n = w->cap - w->fill < left ? w->cap - w->fill : (size_t)left;
	err = djmfs__pread_full(v->fd, w->p + w->fill, n,
				v->sb.journal_off + w->base + w->fill);
	if (err < 0)
		return err;
	w->fill += n;
	return (ssize_t)n;
}

/* Bytes the record at pos needs, from its header when we have one. */
static size_t rwin_need(const struct rwin *w)
{
	size_t avail = w->fill - w->pos;
	uint32_t len;

	if (avail < DJMFS_JREC_HDR)
		return DJMFS_JREC_HDR;
	len = djmfs__le32(w->p + w->pos);
	return len > DJMFS_JREC_MAX ? 0 : DJMFS_JREC_HDR + (size_t)len;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return 0;
	}
	return 1;
}

/* Why a record at pos did not decode. */
static void replay_why_bad(const struct rwin *w, int rc, char *why,
			   size_t len)
{
	size_t avail = w->fill - w->pos;
	size_t hdr = avail < DJMFS_JREC_HDR ? avail : DJMFS_JREC_HDR;

	if (avail == 0)
		snprintf(why, len, "end of journal area");
	else if (all_zero(w->p + w->pos, hdr))
		snprintf(why, len, "end of log");
	else if (rwin_need(w) == 0)
		snprintf(why, len, "bad record length at %" PRIu64,
			 w->base + w->pos);
	else if (rc == -ENODATA)
		snprintf(why, len, "torn record at %" PRIu64,
			 w->base + w->pos);
	else
		snprintf(why, len, "bad record (CRC or format) at %" PRIu64,
			 w->base + w->pos);
}

/* Decodes the next record, reading more of the area as needed.
 * Returns 0, 1 (stop; @why says why), or -errno. */
static int replay_next(struct rwin *w, const struct djmfs__vol *v,
		       struct djmfs__jrec *r, size_t *used, char *why,
		       size_t whylen)
{
	for (;;) {
		size_t need;
		ssize_t got;
		int rc;

		rc = djmfs__jrec_decode(w->p + w->pos, w->fill - w->pos,
					v->seed, r, used);
		if (rc == 0)
			return 0;
		need = rwin_need(w);
		/* Only a record cut off by the window is worth reading on
		 * for; a zeroed header is complete and ends the log. */
		if (rc != -ENODATA || need == 0 || need <= w->fill - w->pos) {
			replay_why_bad(w, rc, why, whylen);
			return 1;
		}
		if (need < REPLAY_CHUNK)
			need = REPLAY_CHUNK;
		got = rwin_refill(w, v, need);
		if (got < 0)
			return (int)got;
		if (got == 0) {
			replay_why_bad(w, rc, why, whylen);
			return 1;
		}
	}
}

/* Accepts a decoded record, or says why replay stops at it. */
static int replay_take(const struct djmfs__jrec *r, uint64_t epoch,
		       uint64_t expect, char *why, size_t whylen,
		       const struct djmfs_log *log)
{
	if (r->epoch < epoch) {
		snprintf(why, whylen, "record of older epoch %" PRIu64,
			 r->epoch);
		return 1;
	}
	if (r->epoch > epoch) {
		/* Possible only if the newest checkpoint was lost: the
		 * search after the stop says what its records hold. */
		djmfs__log(log, DJMFS_LOG_WARN, "journal holds epoch %" PRIu64
			   ", newer than the checkpoint's %" PRIu64,
			   r->epoch, epoch);
		snprintf(why, whylen, "record of newer epoch %" PRIu64,
			 r->epoch);
		return 1;
	}
	if (r->seq != expect) {
		snprintf(why, whylen, "seq %" PRIu64 " where %" PRIu64
			 " was expected", r->seq, expect);
		return 1;
	}
	return 0;
}

const char *djmfs__jend_name(enum djmfs__jend e)
{
	switch (e) {
	case DJMFS__JEND_LOG:
		return "end of log";
	case DJMFS__JEND_TORN:
		return "torn tail";
	case DJMFS__JEND_DAMAGED:
		return "damaged";
	case DJMFS__JEND_STALE_CKPT:
		return "stale checkpoint";
	}
	return "?";
}

/*
 * The search beyond the point where replay stopped.  Records are
 * unaligned and a damaged length hides where the next one starts, so
 * every byte offset is a possible start; a cheap test of the epoch and
 * seq fields comes before the CRC, so the cost is one compare per byte
 * of the area.  A valid record found is followed by the next one at its
 * end, as replay does.
 */
struct jscan {
	struct djmfs__vol *v;
	uint64_t area;	 /* volume offset of the journal copy searched */
	uint64_t epoch;	 /* the checkpoint's */
	uint64_t next;	 /* the lowest seq a record found may have */
	unsigned flags;
	djmfs__replay_fn fn;
	void *arg;
	struct djmfs__replay_info *info;
	const struct djmfs_log *log;
	struct djmfs__jrec *r;
	uint8_t *win;	 /* journal bytes [wbase, wbase + wlen) */
	size_t wcap, wlen;
	uint64_t wbase;
	uint8_t *big;	 /* a record reaching past the window */
	size_t bigcap;
};

/* Whether the header at @p could start a record the search wants. */
static int jscan_plausible(const struct jscan *sc, const uint8_t *p)
{
	uint64_t ep = djmfs__le64(p + 8), seq = djmfs__le64(p + 16);

	return ep >= sc->epoch && ep < DJMFS__GEN_MAX && seq >= sc->next &&
	       seq - sc->next < (UINT64_C(1) << 40) &&
	       djmfs__le32(p) <= DJMFS_JREC_MAX;
}

/* Decodes the record at journal offset @off, whose header is in the
 * window.  Returns 0 (*used set), 1 (not a record), or -errno. */
static int jscan_decode(struct jscan *sc, uint64_t off, size_t *used)
{
	const struct djmfs__sb *sb = &sc->v->sb;
	size_t at = (size_t)(off - sc->wbase);
	size_t need = DJMFS_JREC_HDR + djmfs__le32(sc->win + at);
	int err;

	if (off + need > sb->journal_len)
		return 1;
	if (at + need <= sc->wlen)
		return djmfs__jrec_decode(sc->win + at, need, sc->v->seed,
					  sc->r, used) == 0 ? 0 : 1;
	if (need > sc->bigcap) {
		uint8_t *q = realloc(sc->big, need);

		if (!q)
			return -ENOMEM;
		sc->big = q;
		sc->bigcap = need;
	}
	err = djmfs__pread_full(sc->v->fd, sc->big, need, sc->area + off);
	if (err < 0)
		return err;
	return djmfs__jrec_decode(sc->big, need, sc->v->seed, sc->r,
				  used) == 0 ? 0 : 1;
}

static void jscan_note_ino(struct djmfs__replay_info *info,
			   const struct djmfs__jrec *r)
{
	unsigned i;

	for (i = 0; i < info->n_lost_inos; i++)
		if (info->lost_inos[i] == r->ino)
			break;
	if (i == info->n_lost_inos) {
		if (i == DJMFS__REPLAY_LOST_INOS) {
			info->lost_inos_more++;
			return;
		}
		info->lost_inos[info->n_lost_inos++] = r->ino;
	}
	/* The state cannot name a file these records create. */
	if (r->type == DJMFS_J_FILE_CREATE)
		snprintf(info->lost_names[i], sizeof(info->lost_names[i]),
			 "%.63s", r->u.create.name);
}

/* A valid record found beyond the stop: noted, and with SALVAGE applied
 * (the callback skips the seqs between). */
static void jscan_take(struct jscan *sc, uint64_t off, size_t used)
{
	struct djmfs__replay_info *info = sc->info;
	const struct djmfs__jrec *r = sc->r;
	int err;

	if (info->lost_records++ == 0)
		info->lost_first = r->seq;
	info->lost_last = r->seq;
	info->lost_end_off = off + used;
	if (r->epoch > info->max_epoch)
		info->max_epoch = r->epoch;
	if (r->type == DJMFS_J_PUBLISH)
		info->lost_publishes++;
	if (r->ino)
		jscan_note_ino(info, r);
	sc->next = r->seq + 1;
	if (!(sc->flags & DJMFS__REPLAY_SALVAGE))
		return;
	if (r->seq > info->last_seq + 1 && info->gap_first == 0) {
		info->gap_first = info->last_seq + 1;
		info->gap_last = r->seq - 1;
	}
	err = sc->fn(sc->arg, r);
	if (err < 0) {
		djmfs__log(sc->log, DJMFS_LOG_WARN, "salvage: %s seq %" PRIu64
			   " refused: %s", djmfs__jtype_name(r->type), r->seq,
			   strerror(-err));
		info->skipped++;
	} else {
		info->records++;
	}
	info->last_seq = r->seq;
}

/* Searches journal offsets [from, end of area). */
static int jscan_run(struct jscan *sc, uint64_t from)
{
	uint64_t len = sc->v->sb.journal_len, off = from;
	size_t used;
	int err;

	while (off + DJMFS_JREC_HDR <= len) {
		const uint8_t *p;

		if (off + DJMFS_JREC_HDR > sc->wbase + sc->wlen) {
			uint64_t left = len - off;

			sc->wbase = off;
			sc->wlen = left < sc->wcap ? (size_t)left : sc->wcap;
			err = djmfs__pread_full(sc->v->fd, sc->win, sc->wlen,
						sc->area + off);
			if (err < 0)
				return err;
		}
		p = sc->win + (off - sc->wbase);
		if (!jscan_plausible(sc, p)) {
			off++;
			continue;
		}
		err = jscan_decode(sc, off, &used);
		if (err < 0)
			return err;
		if (err > 0) {
			off++;
			continue;
		}
		jscan_take(sc, off, used);
		off += used;
	}
	return 0;
}

/* Decides how the journal ended from what the search found. */
static void replay_verdict(struct djmfs__replay_info *info, uint64_t epoch,
			   int cut)
{
	if (info->lost_records == 0)
		info->end = cut ? DJMFS__JEND_TORN : DJMFS__JEND_LOG;
	else if (info->max_epoch > epoch)
		info->end = DJMFS__JEND_STALE_CKPT;
	else
		info->end = DJMFS__JEND_DAMAGED;
}

/*
 * Copy B of the journal during replay.  Copy A is read through the
 * replay window; B is read in chunks of its own as replay moves on, so
 * that every record A gives is compared with B's bytes (a memcmp, no
 * second decode) and a record A cannot give is taken from B.  The bad
 * copy's bytes are rewritten from the good one at once (one sync at the
 * end), so a latent bad sector is rewritten even though the next epoch
 * would overwrite it later.
 */
struct bwin {
	uint8_t *p;
	size_t cap, len;
	uint64_t base;
	int err;	/* the last read error of copy B */
	int rewrote;	/* bytes were rewritten: sync before returning */
};

/* Copy B's bytes [off, off + n), or NULL (beyond the area, a read
 * error in b->err, or out of memory). */
static const uint8_t *bwin_at(struct bwin *b, const struct djmfs__vol *v,
			      uint64_t off, size_t n)
{
	uint64_t len = v->sb.journal_len;
	size_t want;
	int err;

	if (off >= b->base && off + n <= b->base + b->len)
		return b->p + (off - b->base);
	if (off + n > len)
		return NULL;
	want = n > REPLAY_CHUNK ? n : REPLAY_CHUNK;
	if (want > len - off)
		want = (size_t)(len - off);
	if (want > b->cap) {
		uint8_t *q = realloc(b->p, want);

		if (!q)
			return NULL;
		b->p = q;
		b->cap = want;
	}
	b->len = 0;
	err = djmfs__pread_full(v->fd, b->p, want, v->sb.mj_off + off);
	if (err < 0) {
		b->err = err;
		return NULL;
	}
	b->base = off;
	b->len = want;
	return b->p;
}

/* Rewrites journal copy @bad (0: A, 1: B) at @off with @good, and says
 * so at WARN; read-only volumes only log. */
static void jcopy_mend(struct djmfs__vol *v, struct bwin *b, unsigned bad,
		       uint64_t off, const uint8_t *good, size_t n,
		       const struct djmfs__jrec *r, const char *why,
		       const struct djmfs_log *log)
{
	uint64_t at = (bad ? v->sb.mj_off : v->sb.journal_off) + off;
	int err = 0;

	v->bad_jrec++;
	if (!v->rdonly) {
		err = djmfs__pwrite_full(v->fd, good, n, at);
		if (err == 0) {
			v->repaired_jrec++;
			b->rewrote = 1;
		}
	}
	djmfs__log(log, DJMFS_LOG_WARN, "%s: journal copy %c: record seq %"
		   PRIu64 " (%s, %zu bytes) at offset %" PRIu64 " of epoch %"
		   PRIu64 " bad (%s): %s%s", v->path, "AB"[bad], r->seq,
		   djmfs__jtype_name(r->type), n, off, r->epoch, why,
		   v->rdonly ? "not rewritten (read-only)" :
		   err ? "rewriting it failed: " : "rewritten from copy ",
		   v->rdonly ? "" : err ? strerror(-err) : bad ? "A" : "B");
}

/* Copy A gave the record at @off (@a, @n bytes): copy B must hold the
 * same bytes. */
static void jcopy_check(struct djmfs__vol *v, struct bwin *b, uint64_t off,
			const uint8_t *a, size_t n, const struct djmfs__jrec *r,
			const struct djmfs_log *log)
{
	const uint8_t *q = bwin_at(b, v, off, n);

	if (q && memcmp(q, a, n) == 0)
		return;
	jcopy_mend(v, b, 1, off, a, n, r,
		   q ? "differs from copy A" : b->err ? strerror(-b->err)
						      : "unreadable", log);
}

/* Copy A could not give the record of @epoch and @expect at @off: takes
 * it from copy B if B has it.  Returns 1 (taken, *used set), 0. */
static int jcopy_take(struct djmfs__vol *v, struct bwin *b, uint64_t off,
		      struct djmfs__jrec *r, size_t *used, uint64_t epoch,
		      uint64_t expect, const char *why,
		      const struct djmfs_log *log)
{
	const uint8_t *q = bwin_at(b, v, off, DJMFS_JREC_HDR);
	uint32_t len;

	if (!q)
		return 0;
	len = djmfs__le32(q);
	if (len > DJMFS_JREC_MAX ||
	    !(q = bwin_at(b, v, off, DJMFS_JREC_HDR + (size_t)len)) ||
	    djmfs__jrec_decode(q, DJMFS_JREC_HDR + (size_t)len, v->seed, r,
			       used) != 0 ||
	    r->epoch != epoch || r->seq != expect)
		return 0;
	jcopy_mend(v, b, 0, off, q, *used, r, why, log);
	return 1;
}

int djmfs__journal_replay(struct djmfs__vol *v, uint64_t epoch,
			  uint64_t after_seq, unsigned flags,
			  djmfs__replay_fn fn, void *arg,
			  struct djmfs__replay_info *info,
			  const struct djmfs_log *log)
{
	struct rwin w = { 0 };
	struct bwin bw = { 0 };
	struct jscan sc = { 0 };
	struct djmfs__jrec *r;
	size_t used;
	int err = 0, cut = 0;

	memset(info, 0, sizeof(*info));
	info->last_seq = after_seq;
	info->max_epoch = epoch;
	w.cap = v->sb.journal_len < REPLAY_CHUNK ? v->sb.journal_len
						 : REPLAY_CHUNK;
	w.p = malloc(w.cap);
	r = malloc(sizeof(*r)); /* large (a PUBLISH holds every object) */
	if (!w.p || !r) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		uint64_t off = w.base + w.pos;
		int stop, from_b = 0;

		stop = replay_next(&w, v, r, &used, info->stop,
				   sizeof(info->stop));
		if (stop == 0)
			stop = replay_take(r, epoch, info->last_seq + 1,
					   info->stop, sizeof(info->stop), log);
		if (stop == 0 && v->sb.mj_off) {
			jcopy_check(v, &bw, off, w.p + w.pos, used, r, log);
		} else if (stop != 0) {
			if (!v->sb.mj_off ||
			    !jcopy_take(v, &bw, off, r, &used, epoch,
					info->last_seq + 1, stop < 0 ?
					strerror(-stop) : info->stop, log)) {
				err = stop < 0 ? stop : 0;
				break;
			}
			from_b = 1;
		}
		err = fn(arg, r);
		if (err < 0) {
			djmfs__log(log, DJMFS_LOG_WARN, "replay of %s seq %"
				   PRIu64 " refused: %s",
				   djmfs__jtype_name(r->type), r->seq,
				   strerror(-err));
			info->skipped++;
		} else {
			info->records++;
		}
		err = 0;
		info->last_seq = r->seq;
		if (from_b) {
			/* Copy A resumes after the record B gave. */
			w.base = off + used;
			w.pos = w.fill = 0;
		} else {
			w.pos += used;
		}
		info->end_off = w.base + w.pos;
	}
	if (err < 0)
		goto io;
	/* A record that is there but does not decode (cut, bad CRC or
	 * length): the tail was torn, unless the search finds more. */
	cut = strncmp(info->stop, "end of", 6) != 0 &&
	      strncmp(info->stop, "record of older", 15) != 0;
	sc = (struct jscan){ .v = v, .area = v->sb.journal_off, .epoch = epoch,
			     .next = info->last_seq + 1, .flags = flags,
			     .fn = fn, .arg = arg, .info = info, .log = log,
			     .r = r, .win = w.p, .wcap = w.cap };
	w.p = NULL; /* the search owns the buffer now */
	err = jscan_run(&sc, info->end_off);
	/* Both copies ended at the same record; what lies beyond it in
	 * either proves damage. */
	if (err == 0 && info->lost_records == 0 && v->sb.mj_off) {
		sc.area = v->sb.mj_off;
		sc.wbase = sc.wlen = 0;
		err = jscan_run(&sc, info->end_off);
	}
	if (err == 0 && bw.rewrote)
		err = djmfs__datasync(v->fd);
	if (err < 0)
		goto io;
	replay_verdict(info, epoch, cut);
	djmfs__log(log, info->end <= DJMFS__JEND_TORN ? DJMFS_LOG_INFO
						       : DJMFS_LOG_WARN,
		   "journal replay of epoch %" PRIu64 ": %" PRIu64 " records "
		   "applied, %" PRIu64 " refused, last seq %" PRIu64 ", %"
		   PRIu64 " bytes; stopped at %s (%s%s)", epoch, info->records,
		   info->skipped, info->last_seq, info->end_off, info->stop,
		   djmfs__jend_name(info->end),
		   info->lost_records ? ": valid records lie beyond" : "");
	goto out;
io:
	djmfs__log(log, DJMFS_LOG_ERROR, "pread(%s, journal): %s", v->path,
		   strerror(-err));
out:
	free(w.p);
	free(bw.p);
	free(sc.win);
	free(sc.big);
	free(r);
	return err;
}

/* ------------------------------------------------------------------ */
/* Group-commit writer                                                  */
/* ------------------------------------------------------------------ */

#define SEG_INITIAL (64u << 10)	/* first capacity of a record segment */
#define SEG_KEEP_MAX (4u << 20)	/* larger segments are not kept */
#define PREP_CHUNK (1u << 20)	/* journal bytes zero-filled ahead at once */

struct jseg {
	struct jseg *next;
	struct djmfs__buf recs; /* encoded records, contiguous */
	uint64_t epoch;
	uint64_t off;		/* epoch offset of recs.p[0] */
	uint64_t nrec;
	uint64_t last_seq;	/* of the last record in recs */
	int has_ckpt;		/* a checkpoint follows the records */
	struct djmfs__buf img;
	uint64_t ckpt_seq;
};

struct djmfs__journal {
	struct djmfs__vol *vol;
	struct djmfs_log log;
	int notify_fd;
	uint32_t seed;
	pthread_t thread;

	/* Loop thread. */
	uint64_t epoch;
	uint64_t off;
	uint64_t next_seq;
	struct djmfs__buf enc;

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct jseg *head, *tail;
	struct jseg *spare; /* a written segment kept for its buffer */
	int stopping;

	/* Writer thread. */
	unsigned slot;
	uint64_t window_ns;
	uint64_t last_round_ns; /* start of the previous round */
	uint64_t last_round_recs; /* records the previous round wrote */
	int prefill;		/* the volume is a (sparse) regular file */
	uint64_t prepared;	/* journal bytes [0, prepared) hold blocks */
	uint8_t *zeros;		/* PREP_CHUNK zero bytes, once needed */

	/* Atomics. */
	uint64_t durable;
	int failed; /* -errno of the first I/O error */
	struct djmfs__journal_stats stats;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stat_add(uint64_t *field, uint64_t n)
{
	__atomic_add_fetch(field, n, __ATOMIC_RELAXED);
}

static void seg_free(struct jseg *s)
{
	if (!s)
		return;
	djmfs__buf_free(&s->recs);
	djmfs__buf_free(&s->img);
	free(s);
}

/* Keeps one written record segment for the next round, so a steady load
 * reuses one buffer instead of growing a new one by reallocs each round. */
static void seg_recycle(struct djmfs__journal *j, struct jseg *s)
{
	if (s->has_ckpt || s->recs.cap > SEG_KEEP_MAX) {
		seg_free(s);
		return;
	}
	pthread_mutex_lock(&j->lock);
	if (!j->spare) {
		djmfs__buf_reset(&s->recs);
		s->nrec = 0;
		s->next = NULL;
		j->spare = s;
		s = NULL;
	}
	pthread_mutex_unlock(&j->lock);
	seg_free(s);
}

/* Under lock: the open segment at the tail, or a new one that starts at
 * the loop's current position. */
static struct jseg *seg_open(struct djmfs__journal *j)
{
	struct jseg *s = j->tail;

	if (s && !s->has_ckpt)
		return s;
	if (j->spare) {
		s = j->spare;
		j->spare = NULL;
	} else {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		djmfs__buf_init(&s->recs);
		djmfs__buf_init(&s->img);
		/* A round's records usually fit, so appends rarely grow it. */
		djmfs__buf_reserve(&s->recs, SEG_INITIAL);
		s->recs.err = 0;
	}
	s->epoch = j->epoch;
	s->off = j->off;
	if (j->tail)
		j->tail->next = s;
	else
		j->head = s;
	j->tail = s;
	return s;
}

static void writer_fail(struct djmfs__journal *j, const char *what, int err)
{
	uint64_t one = 1;
	int none = 0;

	if (!__atomic_compare_exchange_n(&j->failed, &none, err, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	djmfs__log(&j->log, DJMFS_LOG_ERROR, "journal: %s(%s): %s; no "
		   "further mutation becomes durable", what, j->vol->path,
		   strerror(-err));
	/* The loop holds answers waiting for these records: wake it so it
	 * gives them up instead of waiting for a durable that never comes. */
	while (j->notify_fd >= 0 &&
	       write(j->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static int writer_failed(const struct djmfs__journal *j)
{
	return __atomic_load_n(&j->failed, __ATOMIC_ACQUIRE);
}

/* Records written since the last commit, not yet synced. */
struct pending {
	uint64_t nrec, bytes, last_seq;
};

static void batch_commit(struct djmfs__journal *j, struct pending *pd)
{
	const uint64_t one = 1;
	uint64_t t0;
	int err;

	if (pd->nrec == 0 || writer_failed(j))
		goto out;
	t0 = mono_ns();
	err = djmfs__datasync(j->vol->fd);
	stat_add(&j->stats.sync_ns, mono_ns() - t0);
	if (err < 0) {
		writer_fail(j, "fdatasync", err);
		goto out;
	}
	__atomic_store_n(&j->durable, pd->last_seq, __ATOMIC_RELEASE);
	stat_add(&j->stats.batches, 1);
	stat_add(&j->stats.records, pd->nrec);
	stat_add(&j->stats.bytes, pd->bytes);
	while (j->notify_fd >= 0 &&
	       write(j->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
out:
	memset(pd, 0, sizeof(*pd));
}

static void ckpt_write(struct djmfs__journal *j, struct jseg *s)
{
	unsigned other = j->slot ^ 1;
	int err;

	if (writer_failed(j))
		return;
	err = djmfs__ckpt_store(j->vol, other, s->epoch + 1, s->ckpt_seq,
				s->img.p, s->img.len);
	if (err < 0) {
		writer_fail(j, "checkpoint", err);
		return;
	}
	j->slot = other;
	stat_add(&j->stats.checkpoints, 1);
	djmfs__log(&j->log, DJMFS_LOG_INFO, "checkpoint gen %" PRIu64
		   " (after seq %" PRIu64 ", %zu bytes) in slot %u",
		   s->epoch + 1, s->ckpt_seq, s->img.len, other);
}

/*
 * On a volume that is a sparse regular file, a record written where the
 * file has no block yet makes the file system allocate one and write its
 * own metadata in the next fdatasync, every round.  Zero-filling the
 * journal a chunk ahead of the records makes that happen once per chunk.
 * Only bytes past everything this epoch wrote are zeroed (as a fresh
 * volume's are), so replay still ends where the records do.
 */
static int journal_prepare(struct djmfs__journal *j, uint64_t from,
			   uint64_t end)
{
	uint64_t jlen = j->vol->sb.journal_len, to;
	int err;

	if (!j->prefill || end <= j->prepared)
		return 0;
	if (from < j->prepared)
		from = j->prepared;
	to = end + PREP_CHUNK < jlen ? end + PREP_CHUNK : jlen;
	if (!j->zeros && !(j->zeros = calloc(1, PREP_CHUNK)))
		return 0; /* only slower */
	for (; from < to; from += PREP_CHUNK) {
		size_t n = to - from < PREP_CHUNK ? (size_t)(to - from)
						  : PREP_CHUNK;

		err = djmfs__pwrite_full(j->vol->fd, j->zeros, n,
					 j->vol->sb.journal_off + from);
		if (err == 0 && j->vol->sb.mj_off)
			err = djmfs__pwrite_full(j->vol->fd, j->zeros, n,
						 j->vol->sb.mj_off + from);
		if (err < 0)
			return err;
	}
	j->prepared = to;
	return 0;
}

/* Writes one batch taken from the queue, in order, and frees it. */
static void writer_round(struct djmfs__journal *j, struct jseg *s)
{
	struct pending pd = { 0 };
	struct jseg *next;
	int err;

	j->last_round_recs = 0;
	for (; s; s = next) {
		next = s->next;
		j->last_round_recs += s->nrec;
		if (s->recs.len > 0 && !writer_failed(j)) {
			uint64_t at = j->vol->sb.journal_off + s->off;

			err = journal_prepare(j, s->off, s->off + s->recs.len);
			if (err == 0)
				err = djmfs__pwrite_full(j->vol->fd, s->recs.p,
							 s->recs.len, at);
			/* Copy B: the same bytes at the same offset of the
			 * far area; the round's one fdatasync covers both. */
			if (err == 0 && j->vol->sb.mj_off)
				err = djmfs__pwrite_full(j->vol->fd, s->recs.p,
					s->recs.len,
					j->vol->sb.mj_off + s->off);
			if (err < 0)
				writer_fail(j, "pwrite", err);
			pd.nrec += s->nrec;
			pd.bytes += s->recs.len;
			pd.last_seq = s->last_seq;
		}
		if (s->has_ckpt) {
			batch_commit(j, &pd);
			ckpt_write(j, s);
		}
		seg_recycle(j, s);
	}
	batch_commit(j, &pd);
}

/*
 * Group commit with a window: when records arrive a few microseconds
 * apart, syncing as soon as one is queued makes nearly every record pay
 * for its own fdatasync.  Holding the next round until a window has
 * passed since the previous one started lets one sync cover every
 * record of the window.  Called and returns with the lock held.
 */
static void writer_window(struct djmfs__journal *j)
{
	uint64_t until = j->last_round_ns + j->window_ns;
	struct timespec ts = { (time_t)(until / 1000000000u),
			       (long)(until % 1000000000u) };

	/* A round of one record is a lone writer waiting on each sync:
	 * holding the next one back would only slow it down. */
	if (j->window_ns == 0 || j->stopping || j->last_round_recs < 2 ||
	    mono_ns() >= until)
		return;
	pthread_mutex_unlock(&j->lock);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
	pthread_mutex_lock(&j->lock);
}

static void *writer_main(void *arg)
{
	struct djmfs__journal *j = arg;
	struct jseg *batch;

	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->head && !j->stopping)
			pthread_cond_wait(&j->cond, &j->lock);
		writer_window(j);
		j->last_round_ns = mono_ns();
		batch = j->head;
		if (!batch)
			break; /* stopping, and everything is written */
		j->head = j->tail = NULL;
		pthread_mutex_unlock(&j->lock);
		writer_round(j, batch);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* The writer thread takes no signals: they belong to the loop thread. */
static int writer_spawn(struct djmfs__journal *j)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&j->thread, NULL, writer_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -err;
}

int djmfs__journal_start(struct djmfs__journal **out,
			 const struct djmfs__journal_opts *o)
{
	struct djmfs__journal *j;
	struct stat st;
	int err;

	*out = NULL;
	if (!o->vol || o->ckpt_slot > 1 || o->next_seq == 0 || o->epoch == 0)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->vol = o->vol;
	if (o->log)
		j->log = *o->log;
	j->notify_fd = o->notify_fd;
	j->window_ns = o->window_ns;
	j->prefill = fstat(o->vol->fd, &st) == 0 && S_ISREG(st.st_mode);
	j->seed = o->vol->seed;
	j->epoch = o->epoch;
	j->next_seq = o->next_seq;
	j->slot = o->ckpt_slot;
	j->durable = o->next_seq - 1;
	djmfs__buf_init(&j->enc);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	err = writer_spawn(j);
	if (err < 0) {
		djmfs__log(o->log, DJMFS_LOG_ERROR, "pthread_create(journal "
			   "writer): %s", strerror(-err));
		pthread_cond_destroy(&j->cond);
		pthread_mutex_destroy(&j->lock);
		free(j);
		return err;
	}
	*out = j;
	return 0;
}

/* Under lock: appends @n bytes to the open segment. */
static int queue_bytes(struct djmfs__journal *j, const uint8_t *p, size_t n,
		       uint64_t seq)
{
	struct jseg *s = seg_open(j);
	size_t before;

	if (!s)
		return -ENOMEM;
	before = s->recs.len;
	djmfs__put_bytes(&s->recs, p, n);
	if (s->recs.err) {
		/* Undo, so the segment stays usable for the next record. */
		s->recs.len = before;
		s->recs.err = 0;
		return -ENOMEM;
	}
	s->nrec++;
	s->last_seq = seq;
	return 0;
}

int djmfs__journal_failed(const struct djmfs__journal *j)
{
	return writer_failed(j);
}

int djmfs__journal_append(struct djmfs__journal *j, struct djmfs__jrec *r)
{
	int err;

	err = writer_failed(j);
	if (err)
		return err;
	if (r->seq != j->next_seq)
		return -EINVAL;
	r->epoch = j->epoch;
	/* Encode outside the lock: the writer may be taking a batch. */
	djmfs__buf_reset(&j->enc);
	err = djmfs__jrec_encode(&j->enc, j->seed, r);
	if (err < 0)
		return err;
	if (j->enc.len > j->vol->sb.journal_len - j->off)
		return -ENOSPC;
	pthread_mutex_lock(&j->lock);
	err = queue_bytes(j, j->enc.p, j->enc.len, r->seq);
	if (err == 0)
		pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (err < 0)
		return err;
	j->off += j->enc.len;
	j->next_seq++;
	return 0;
}

int djmfs__journal_want_checkpoint(const struct djmfs__journal *j)
{
	return j->off > j->vol->sb.journal_len / 4 * 3;
}

/* Takes @img whatever the outcome, so no caller path can leak it. */
int djmfs__journal_checkpoint(struct djmfs__journal *j,
			      struct djmfs__buf *img, uint64_t seq)
{
	struct djmfs__buf taken = *img;
	struct jseg *s;
	int err;

	djmfs__buf_init(img);
	err = writer_failed(j);
	if (err == 0 && taken.err)
		err = taken.err;
	if (err == 0 && seq + 1 != j->next_seq)
		err = -EINVAL;
	if (err == 0 && taken.len > j->vol->sb.ckpt_len - CKPT_HDR)
		err = -ENOSPC;
	if (err < 0)
		goto fail;
	pthread_mutex_lock(&j->lock);
	s = seg_open(j);
	if (s) {
		s->has_ckpt = 1;
		s->img = taken;
		s->ckpt_seq = seq;
		pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&j->lock);
	if (!s) {
		err = -ENOMEM;
		goto fail;
	}
	j->epoch++;
	j->off = 0;
	return 0;
fail:
	djmfs__buf_free(&taken);
	return err;
}

uint64_t djmfs__journal_durable(const struct djmfs__journal *j)
{
	return __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE);
}

void djmfs__journal_get_stats(const struct djmfs__journal *j,
			      struct djmfs__journal_stats *out)
{
	const struct djmfs__journal_stats *s = &j->stats;

	out->records = __atomic_load_n(&s->records, __ATOMIC_RELAXED);
	out->batches = __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
	out->checkpoints = __atomic_load_n(&s->checkpoints, __ATOMIC_RELAXED);
	out->sync_ns = __atomic_load_n(&s->sync_ns, __ATOMIC_RELAXED);
}

void djmfs__journal_stop(struct djmfs__journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = 1;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	djmfs__buf_free(&j->enc);
	seg_free(j->spare);
	free(j->zeros);
	free(j);
}
