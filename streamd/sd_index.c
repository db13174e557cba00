/*
 * The keyframe index of a recording: the codec of its 32-byte on-disk
 * entries, an in-memory copy that only grows, and the questions players
 * ask of it — where does playback of a wall time begin (seek), which
 * keyframe ends a duration (key_near), where are the gaps between encoder
 * connections, and which byte ranges make the HLS media segments.
 *
 * Entries are in data order and their wall times do not decrease in
 * practice, so the lookups binary-search on wall time and then step to
 * the neighbouring KEY entries (a few steps: END and SEGMENT entries are
 * rare).  Wall times that do go backwards (a clock step on the recording
 * host) give a less precise answer, never a crash or a non-KEY result.
 *
 * A gap always lies between a SEGMENT entry at position p > 0 and the
 * entry just before it: that entry is the END of the previous connection,
 * or, when that connection died without one, its last entry.  An END's
 * offset is taken to be the end of its connection's bytes (one past the
 * last), which is where the next SEGMENT begins: so the segment before
 * it ends exactly there and no byte falls between connections.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define SD_IDX_FLAGS (SD_IDX_KEY | SD_IDX_SEGMENT | SD_IDX_END)

/* 33-bit MPEG pts: the counter wraps at 2^33 ticks of 90 kHz (26.5 h). */
#define SD_PTS_WRAP (1LL << 33)
#define SD_PTS_HZ 90000
/* A pts difference longer than this between two neighbouring entries is
 * not believed (a discontinuity in the encoder's clock): wall time is
 * used instead. */
#define SD_PTS_PLAUSIBLE (3600LL * SD_PTS_HZ)
/* The last segment of a finished recording has no entry after it: its
 * duration is estimated from the bitrate of a nearby earlier segment,
 * looking back at most this many entries, else it is SD_LAST_GUESS_NS. */
#define SD_RATE_LOOKBACK 64
#define SD_LAST_GUESS_NS SD_NS
#define SD_LAST_MAX_NS (3600 * SD_NS)

/* ------------------------------------------------------------------ */
/* CRC-32C and the entry codec                                         */
/* ------------------------------------------------------------------ */

/* The entry's check is DJMFS's CRC-32C, so one implementation (with its
 * SSE4.2 path) serves the file system and the index. */
static uint32_t crc32c(const void *p, size_t n)
{
	return djmfs_crc32c(0, p, n);
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void sd_idx_encode(const struct sd_idx_entry *e, uint8_t out[SD_IDX_SIZE])
{
	put_le(out, (uint64_t)e->wall_ns, 8);
	put_le(out + 8, e->offset, 8);
	put_le(out + 16, (uint64_t)e->pts, 8);
	put_le(out + 24, e->flags, 4);
	put_le(out + 28, crc32c(out, 28), 4);
}

int sd_idx_decode(const uint8_t in[SD_IDX_SIZE], struct sd_idx_entry *e)
{
	uint32_t flags = (uint32_t)get_le(in + 24, 4);

	if ((uint32_t)get_le(in + 28, 4) != crc32c(in, 28) ||
	    (flags & ~SD_IDX_FLAGS) != 0)
		return -EBADMSG;
	e->wall_ns = (int64_t)get_le(in, 8);
	e->offset = get_le(in + 8, 8);
	e->pts = (int64_t)get_le(in + 16, 8);
	e->flags = flags;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The in-memory index                                                 */
/* ------------------------------------------------------------------ */

static void note_segment(struct sd_index *ix, size_t j);

void sd_index_init(struct sd_index *ix)
{
	ix->e = NULL;
	ix->n = ix->cap = 0;
	ix->longest_ns = 0;
	ix->nsegs = 0;
}

void sd_index_free(struct sd_index *ix)
{
	free(ix->e);
	sd_index_init(ix);
}

/* Makes room for @more entries beyond n.  0 or -ENOMEM. */
static int reserve(struct sd_index *ix, size_t more)
{
	size_t cap = ix->cap ? ix->cap : 64;
	struct sd_idx_entry *e;

	if (more > SIZE_MAX / sizeof(*e) - ix->n)
		return -ENOMEM;
	if (ix->n + more <= ix->cap)
		return 0;
	while (cap < ix->n + more)
		cap = cap > SIZE_MAX / sizeof(*e) / 2 ? ix->n + more : cap * 2;
	e = realloc(ix->e, cap * sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	ix->e = e;
	ix->cap = cap;
	return 0;
}

int sd_index_append(struct sd_index *ix, const struct sd_idx_entry *e)
{
	int err;

	if (ix->n > 0 && e->offset < ix->e[ix->n - 1].offset)
		return -EINVAL;
	err = reserve(ix, 1);
	if (err < 0)
		return err;
	ix->e[ix->n++] = *e;
	note_segment(ix, ix->n - 1);
	return 0;
}

int sd_index_load(struct sd_index *ix, const uint8_t *buf, size_t len)
{
	size_t count = len / SD_IDX_SIZE;
	uint64_t last;
	int err;

	if (len % SD_IDX_SIZE != 0 || count > INT_MAX)
		return -EINVAL;
	err = reserve(ix, count);
	if (err < 0)
		return err;
	/* decode into the spare capacity; n moves only once all is good */
	last = ix->n > 0 ? ix->e[ix->n - 1].offset : 0;
	for (size_t i = 0; i < count; i++) {
		struct sd_idx_entry *e = &ix->e[ix->n + i];

		if (sd_idx_decode(buf + i * SD_IDX_SIZE, e) < 0)
			return -EBADMSG;
		if (e->offset < last)
			return -EINVAL;
		last = e->offset;
	}
	for (size_t i = 0; i < count; i++)
		note_segment(ix, ix->n++);
	return (int)count;
}

size_t sd_index_drop_below(struct sd_index *ix, uint64_t offset)
{
	size_t k = 0;

	while (k < ix->n && ix->e[k].offset < offset)
		k++;
	/* The segments dropped stay counted in nsegs: media sequence
	 * numbers count back from it, so those of the segments kept do not
	 * change under a playlist being followed. */
	if (k) {
		memmove(ix->e, ix->e + k, (ix->n - k) * sizeof(*ix->e));
		ix->n -= k;
	}
	return k;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */
/* ------------------------------------------------------------------ */

static int is_key(const struct sd_index *ix, size_t i)
{
	return (ix->e[i].flags & SD_IDX_KEY) != 0;
}

static int is_segment(const struct sd_index *ix, size_t i)
{
	return (ix->e[i].flags & SD_IDX_SEGMENT) != 0;
}

/* The first position in [lo, n) whose wall time is after @t (n if none),
 * for wall times that do not decrease. */
static size_t upper_bound(const struct sd_index *ix, size_t lo, int64_t t)
{
	size_t hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->e[mid].wall_ns <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The last KEY at a position in [lo, hi), or -1. */
static ssize_t key_before(const struct sd_index *ix, size_t lo, size_t hi)
{
	while (hi > lo)
		if (is_key(ix, --hi))
			return (ssize_t)hi;
	return -1;
}

/* The first KEY at a position in [lo, n), or -1. */
static ssize_t key_from(const struct sd_index *ix, size_t lo)
{
	for (; lo < ix->n; lo++)
		if (is_key(ix, lo))
			return (ssize_t)lo;
	return -1;
}

ssize_t sd_index_seek(const struct sd_index *ix, int64_t t)
{
	ssize_t k = key_before(ix, 0, upper_bound(ix, 0, t)), nk;

	if (k < 0) {
		nk = key_from(ix, 0);
		return nk < 0 ? -ENOENT : nk;
	}
	nk = key_from(ix, (size_t)k + 1);
	if (nk < 0)
		return k; /* nothing to skip to: the newest keyframe */
	/* a connection boundary between the two keys: once @t is past the
	 * end of k's connection, the next connection's first key plays */
	for (ssize_t s = k + 1; s <= nk; s++)
		if (is_segment(ix, (size_t)s))
			return t > ix->e[s - 1].wall_ns ? nk : k;
	return k;
}

int sd_index_seek_final(const struct sd_index *ix, int64_t t, size_t k)
{
	if (k >= ix->n)
		return 0;
	if (key_from(ix, k + 1) >= 0 || ix->e[k].wall_ns > t)
		return 1; /* a later key settles it, or k is the first key */
	/* k is the newest key, at or before t.  A key still to come wins
	 * if it may land at or before t, or if a connection that began
	 * after k started after t's place in the previous one. */
	if (ix->e[ix->n - 1].wall_ns <= t)
		return 0;
	for (size_t s = k + 1; s < ix->n; s++)
		if (is_segment(ix, s) && t > ix->e[s - 1].wall_ns)
			return 0;
	return 1;
}

static uint64_t absdiff(int64_t a, int64_t b)
{
	return a >= b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

ssize_t sd_index_key_near(const struct sd_index *ix, size_t from, int64_t t)
{
	size_t lo = from + 1, u;
	ssize_t a, b;

	if (from >= ix->n || lo >= ix->n)
		return -ENOENT;
	u = upper_bound(ix, lo, t);
	a = key_before(ix, lo, u);
	b = key_from(ix, u);
	if (a < 0 || b < 0)
		return a < 0 && b < 0 ? -ENOENT : (a < 0 ? b : a);
	return absdiff(ix->e[b].wall_ns, t) <= absdiff(ix->e[a].wall_ns, t)
		       ? b
		       : a;
}

size_t sd_index_gaps(const struct sd_index *ix, struct sd_gap *out,
		     size_t max)
{
	size_t count = 0;

	for (size_t i = 1; i < ix->n; i++) {
		if (!is_segment(ix, i))
			continue;
		if (count < max)
			out[count] = (struct sd_gap){
				.start_ns = ix->e[i - 1].wall_ns,
				.end_ns = ix->e[i].wall_ns,
				.offset = ix->e[i].offset,
			};
		count++;
	}
	return count;
}

/* ------------------------------------------------------------------ */
/* Media segments                                                      */
/* ------------------------------------------------------------------ */

/*
 * Time from entry @i to entry @i + 1.  The 90 kHz pts is exact where the
 * wall times of keyframes are derived, so it is preferred while both
 * entries belong to one connection (the second is not a SEGMENT: pts
 * restart with each encoder) and the difference is plausible, allowing
 * for one wrap of the 33-bit counter.  Never negative.
 */
static int64_t step_duration(const struct sd_index *ix, size_t i)
{
	const struct sd_idx_entry *a = &ix->e[i], *b = &ix->e[i + 1];
	int64_t d;

	if (!(b->flags & SD_IDX_SEGMENT) && a->pts != SD_PTS_NONE &&
	    b->pts != SD_PTS_NONE &&
	    !__builtin_sub_overflow(b->pts, a->pts, &d)) {
		if (d < 0 && d > -SD_PTS_WRAP)
			d += SD_PTS_WRAP;
		if (d > 0 && d < SD_PTS_PLAUSIBLE)
			return d * (SD_NS / 10000) / (SD_PTS_HZ / 10000);
	}
	if (__builtin_sub_overflow(b->wall_ns, a->wall_ns, &d) || d < 0)
		return 0;
	/* Keyframes an hour apart only come from a damaged index; the cap
	 * keeps playlist arithmetic (sums, rounding) far from overflow. */
	return d < SD_LAST_MAX_NS ? d : SD_LAST_MAX_NS;
}

/*
 * The last segment of a finished recording (from entry @i to the end of
 * the data, @len bytes) has no entry after it, so no time of its own:
 * it gets the bitrate of the nearest earlier segment that has bytes and
 * a duration within one connection, else SD_LAST_GUESS_NS.
 */
static int64_t last_duration(const struct sd_index *ix, size_t i,
			     uint64_t len)
{
	size_t stop = i > SD_RATE_LOOKBACK ? i - SD_RATE_LOOKBACK : 0;

	for (size_t j = i; j > stop; j--) {
		uint64_t bytes = ix->e[j].offset - ix->e[j - 1].offset;
		int64_t d;

		if (is_segment(ix, j) || bytes == 0)
			continue;
		d = step_duration(ix, j - 1);
		if (d > 0) {
			double est = (double)d * (double)len / (double)bytes;

			/* A tiny earlier segment and a long tail can make the
			 * estimate absurd (or overflow): keep it to an hour. */
			return est < (double)SD_LAST_MAX_NS ? (int64_t)est
							     : SD_LAST_MAX_NS;
		}
	}
	return SD_LAST_GUESS_NS;
}

/*
 * The duration of the segment from entry @i (a KEY or SEGMENT) to entry
 * @i + 1, @len bytes.  When the next entry begins another connection and
 * no END closed this one (its encoder vanished, or streamd was killed),
 * the wall times span the gap as well, so the segment keeps the estimate
 * it was listed with while it was the last of a finished recording: a
 * segment once listed never changes, even when the recording resumes.
 */
static int64_t seg_duration(const struct sd_index *ix, size_t i, uint64_t len)
{
	if (ix->e[i + 1].flags & SD_IDX_SEGMENT)
		return last_duration(ix, i, len);
	return step_duration(ix, i);
}

/* Entry @j has just been added: the segment that began at @j - 1, if
 * any, is complete now and may be the longest. */
static void note_segment(struct sd_index *ix, size_t j)
{
	const struct sd_idx_entry *a;
	int64_t d;

	if (j == 0)
		return;
	a = &ix->e[j - 1];
	if (!(a->flags & (SD_IDX_KEY | SD_IDX_SEGMENT)) ||
	    ix->e[j].offset <= a->offset)
		return;
	d = seg_duration(ix, j - 1, ix->e[j].offset - a->offset);
	if (d > ix->longest_ns)
		ix->longest_ns = d;
	ix->nsegs++;
}

/* Does a non-empty segment begin at @i (< n - 1)? */
static int starts_segment(const struct sd_index *ix, size_t i)
{
	return (ix->e[i].flags & (SD_IDX_KEY | SD_IDX_SEGMENT)) &&
	       ix->e[i + 1].offset > ix->e[i].offset;
}

/* The media sequence number of the first segment at or after @from:
 * counted back from the newest, so a sliding window costs only its own
 * length. */
static uint64_t msn_at(const struct sd_index *ix, size_t from)
{
	uint64_t later = 0;

	for (size_t i = from; i + 1 < ix->n; i++)
		later += starts_segment(ix, i);
	return ix->nsegs - later;
}

int sd_index_segments(const struct sd_index *ix, size_t from,
		      int64_t until_ns, uint64_t data_size, int finished,
		      int (*fn)(void *arg, const struct sd_segment *s),
		      void *arg)
{
	int pending_disc = 0, rc;
	uint64_t msn = from < ix->n ? msn_at(ix, from) : ix->nsegs;

	for (size_t i = from; i < ix->n; i++) {
		const struct sd_idx_entry *e = &ix->e[i];
		struct sd_segment s;
		uint64_t end;

		if (i > 0 && (e->flags & SD_IDX_SEGMENT))
			pending_disc = 1;
		if (!(e->flags & (SD_IDX_KEY | SD_IDX_SEGMENT)))
			continue;
		if (e->wall_ns >= until_ns)
			break;
		if (i + 1 == ix->n && !finished)
			break; /* still being written */
		end = i + 1 < ix->n ? ix->e[i + 1].offset : data_size;
		if (end <= e->offset)
			continue; /* empty: a discontinuity moves on */
		s = (struct sd_segment){
			.seq = i,
			.msn = msn++,
			.offset = e->offset,
			.len = end - e->offset,
			.wall_ns = e->wall_ns,
			.discontinuity = pending_disc,
		};
		s.duration_ns = i + 1 < ix->n ? seg_duration(ix, i, s.len)
					      : last_duration(ix, i, s.len);
		pending_disc = 0;
		rc = fn(arg, &s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
