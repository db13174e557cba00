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

/* ------------------------------------------------------------------ */
/* CRC-32C and the entry codec                                         */
/* ------------------------------------------------------------------ */

/*
 * CRC-32C (Castagnoli, reflected 0x82F63B78, register and result
 * inverted): the same CRC djmfs uses, computed here because streamd may
 * not include djmfs' private header.  crc32c_table[n] is the register
 * after shifting byte n through it; generated from the polynomial.
 */
static const uint32_t crc32c_table[256] = {
	0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u,
	0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu,
	0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
	0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u,
	0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
	0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
	0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
	0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu,
	0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
	0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
	0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u,
	0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
	0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u,
	0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
	0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
	0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u,
	0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u,
	0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
	0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u,
	0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
	0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
	0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u,
	0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu, 0xc8ac71e8u,
	0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
	0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
	0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u,
	0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
	0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
	0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u,
	0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
	0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u,
	0x3cdb9bddu, 0xceb018deu, 0xdde0eb2au, 0x2f8b6829u,
	0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
	0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u,
	0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
	0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
	0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u,
	0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu,
	0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
	0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
	0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u,
	0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
	0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du,
	0xef087a76u, 0x1d63f975u, 0x0e330a81u, 0xfc588982u,
	0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
	0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u,
	0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u,
	0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
	0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
	0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
	0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
	0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u,
	0xd3d3e1abu, 0x21b862a8u, 0x32e8915cu, 0xc083125fu,
	0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
	0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
	0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
	0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
	0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u,
	0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u,
	0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
	0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u,
	0x34f4f86au, 0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu,
	0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
	0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

static uint32_t crc32c(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t crc = ~0u;

	while (n--)
		crc = crc32c_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
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

void sd_index_init(struct sd_index *ix)
{
	ix->e = NULL;
	ix->n = ix->cap = 0;
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
	ix->n += count;
	return (int)count;
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
	return d;
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
		if (d > 0)
			return (int64_t)((double)d * (double)len / (double)bytes);
	}
	return SD_LAST_GUESS_NS;
}

int sd_index_segments(const struct sd_index *ix, size_t from,
		      int64_t until_ns, uint64_t data_size, int finished,
		      int (*fn)(void *arg, const struct sd_segment *s),
		      void *arg)
{
	int pending_disc = 0, rc;

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
			.offset = e->offset,
			.len = end - e->offset,
			.wall_ns = e->wall_ns,
			.discontinuity = pending_disc,
		};
		s.duration_ns = i + 1 < ix->n ? step_duration(ix, i)
					      : last_duration(ix, i, s.len);
		pending_disc = 0;
		rc = fn(arg, &s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
