/*
 * Replay of the journal at boot and by fsck: the records of the loaded
 * checkpoint's epoch, in seq order, from copy A, each compared with copy
 * B's bytes (format 2) and taken from B where A cannot give it, the bad
 * copy rewritten at once.  Where both copies fail, the rest of the area
 * is searched for valid records of this epoch or a newer one: none means
 * the end of the log or a torn last group commit (a crash's normal
 * leftover); some mean damage, or a checkpoint that is not the newest,
 * which the caller refuses or, asked to salvage, goes past.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_store.h"
#include "djmfs_volio.h"

#define REPLAY_CHUNK (1u << 20)

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
	/* Records copy B lacks since the last one it held: a writer killed
	 * between its two pwrites leaves exactly that at the tail, which is
	 * no damage; a record B holds after them proves they were. */
	uint64_t lag, lag_mended, lag_seq;
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
 * so, at WARN unless @lagging (copy B merely behind A: counted in b->lag
 * until a later record proves it damage); read-only volumes only log. */
static void jcopy_mend(struct djmfs__vol *v, struct bwin *b, unsigned bad,
		       uint64_t off, const uint8_t *good, size_t n,
		       const struct djmfs__jrec *r, const char *why,
		       int lagging, const struct djmfs_log *log)
{
	uint64_t at = (bad ? v->sb.mj_off : v->sb.journal_off) + off;
	int err = 0, mended = 0;

	if (!v->rdonly) {
		err = djmfs__pwrite_full(v->fd, good, n, at);
		if (err == 0) {
			mended = 1;
			b->rewrote = 1;
		}
	}
	if (lagging) {
		if (!b->lag++)
			b->lag_seq = r->seq;
		b->lag_mended += mended;
	} else {
		v->bad_jrec++;
		v->repaired_jrec += mended;
	}
	djmfs__log(log, lagging ? DJMFS_LOG_INFO : DJMFS_LOG_WARN,
		   "%s: journal copy %c: record seq %" PRIu64 " (%s, %zu "
		   "bytes) at offset %" PRIu64 " of epoch %" PRIu64 " %s (%s): "
		   "%s%s", v->path, "AB"[bad], r->seq,
		   djmfs__jtype_name(r->type), n, off, r->epoch,
		   lagging ? "missing" : "bad", why,
		   v->rdonly ? "not rewritten (read-only)" :
		   err ? "rewriting it failed: " : "rewritten from copy ",
		   v->rdonly ? "" : err ? strerror(-err) : bad ? "A" : "B");
}

/* Copy B held a record again (or had to give one): the records it
 * lacked before were damage, not a tail it had yet to write. */
static void jcopy_lag_damage(struct djmfs__vol *v, struct bwin *b,
			     const struct djmfs_log *log)
{
	if (!b->lag)
		return;
	djmfs__log(log, DJMFS_LOG_WARN, "%s: journal copy B lacked %" PRIu64
		   " records from seq %" PRIu64 " with later ones present: "
		   "damage, not a crash between the copies' writes", v->path,
		   b->lag, b->lag_seq);
	v->bad_jrec += b->lag;
	v->repaired_jrec += b->lag_mended;
	b->lag = b->lag_mended = 0;
}

/* Whether copy B's bytes @q for copy A's record @r (@a, @n bytes) look
 * like a write that never happened or stopped part-way: after what they
 * share, B has only zeros (the journal's prepared, never written bytes),
 * or B holds another whole record there (an older epoch's, where the
 * area is not prepared).  A flipped bit in a written record is neither. */
static int jcopy_unwritten(const uint8_t *q, const uint8_t *a, size_t n,
			   const struct djmfs__vol *v,
			   const struct djmfs__jrec *r)
{
	struct djmfs__jrec *old;
	size_t k = 0, used;
	int other;

	while (k < n && q[k] == a[k])
		k++;
	while (k < n && !q[k])
		k++;
	if (k == n)
		return 1;
	old = malloc(sizeof(*old)); /* large, as in djmfs__journal_replay */
	if (!old)
		return 0;
	other = djmfs__jrec_decode(q, n, v->seed, old, &used) == 0 &&
		(old->epoch != r->epoch || old->seq != r->seq);
	free(old);
	return other;
}

/* Copy A gave the record at @off (@a, @n bytes): copy B must hold the
 * same bytes.  The writer puts a round into copy A and then into B, so a
 * writer killed in between leaves B without the last round's records:
 * those are mended as missing, and count as damage only if B holds a
 * later record. */
static void jcopy_check(struct djmfs__vol *v, struct bwin *b, uint64_t off,
			const uint8_t *a, size_t n, const struct djmfs__jrec *r,
			const struct djmfs_log *log)
{
	const uint8_t *q = bwin_at(b, v, off, n);

	if (q && memcmp(q, a, n) == 0) {
		jcopy_lag_damage(v, b, log);
		return;
	}
	if (q && jcopy_unwritten(q, a, n, v, r)) {
		jcopy_mend(v, b, 1, off, a, n, r, "not written", 1, log);
		return;
	}
	jcopy_lag_damage(v, b, log);
	jcopy_mend(v, b, 1, off, a, n, r,
		   q ? "differs from copy A" : b->err ? strerror(-b->err)
						      : "unreadable", 0, log);
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
	jcopy_lag_damage(v, b, log);
	jcopy_mend(v, b, 0, off, q, *used, r, why, 0, log);
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
	if (bw.lag) {
		djmfs__log(log, DJMFS_LOG_INFO, "%s: journal copy B lacked the "
			   "last %" PRIu64 " records (from seq %" PRIu64 "): "
			   "the writer stopped between its two copies", v->path,
			   bw.lag, bw.lag_seq);
		v->lagged_jrec += bw.lag;
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

