/*
 * Little-endian byte codecs shared by the protocol, the journal and the
 * checkpoint images: a growable output buffer and a bounds-checked input
 * cursor.  Both carry a sticky error so that an encoder or decoder can
 * string dozens of puts/gets together and test one field at the end: once
 * a buffer has failed to grow every later put is dropped, and once a
 * cursor has run past its end (or met a malformed string) every later get
 * returns zero.  Nothing here reads or writes outside [p, p + len).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_proto.h"

#define BUF_MIN_CAP 256

void djmfs__buf_init(struct djmfs__buf *b)
{
	memset(b, 0, sizeof(*b));
}

void djmfs__buf_free(struct djmfs__buf *b)
{
	free(b->p);
	djmfs__buf_init(b);
}

void djmfs__buf_reset(struct djmfs__buf *b)
{
	b->len = 0;
	b->err = 0;
}

int djmfs__buf_reserve(struct djmfs__buf *b, size_t more)
{
	size_t need, cap;
	uint8_t *p;

	if (b->err)
		return b->err;
	if (more > SIZE_MAX - b->len)
		goto nomem;
	need = b->len + more;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : BUF_MIN_CAP;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p)
		goto nomem;
	b->p = p;
	b->cap = cap;
	return 0;
nomem:
	b->err = -ENOMEM;
	return b->err;
}

/* Reserves @n bytes and returns where they go, or NULL once failed. */
static uint8_t *buf_claim(struct djmfs__buf *b, size_t n)
{
	uint8_t *at;

	if (djmfs__buf_reserve(b, n))
		return NULL;
	at = b->p + b->len;
	b->len += n;
	return at;
}

static void store_le(uint8_t *at, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		at[i] = (uint8_t)(v >> (8 * i));
}

static void put_le(struct djmfs__buf *b, uint64_t v, unsigned n)
{
	uint8_t *at = buf_claim(b, n);

	if (at)
		store_le(at, v, n);
}

void djmfs__put_u8(struct djmfs__buf *b, uint8_t v)
{
	put_le(b, v, 1);
}

void djmfs__put_u16(struct djmfs__buf *b, uint16_t v)
{
	put_le(b, v, 2);
}

void djmfs__put_u32(struct djmfs__buf *b, uint32_t v)
{
	put_le(b, v, 4);
}

void djmfs__put_u64(struct djmfs__buf *b, uint64_t v)
{
	put_le(b, v, 8);
}

void djmfs__put_bytes(struct djmfs__buf *b, const void *p, size_t n)
{
	uint8_t *at;

	if (n == 0)
		return;
	at = buf_claim(b, n);
	if (at)
		memcpy(at, p, n);
}

void djmfs__put_str(struct djmfs__buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	/* A string the u16 length cannot describe is a caller bug; failing
	 * the whole buffer keeps a truncated frame from ever going out. */
	if (n > UINT16_MAX) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	djmfs__put_u16(b, (uint16_t)n);
	djmfs__put_bytes(b, s, n);
}

void djmfs__patch_u32(struct djmfs__buf *b, size_t at, uint32_t v)
{
	if (b->err)
		return;
	if (at > b->len || b->len - at < 4) {
		b->err = -EINVAL;
		return;
	}
	store_le(b->p + at, v, 4);
}

void djmfs__put_ext(struct djmfs__buf *b, uint64_t off, uint64_t len)
{
	djmfs__put_u64(b, off);
	djmfs__put_u64(b, len);
}

void djmfs__put_run(struct djmfs__buf *b, uint64_t first, uint32_t count)
{
	djmfs__put_u64(b, first);
	djmfs__put_u32(b, count);
}

void djmfs__cur_init(struct djmfs__cur *c, const void *p, size_t n)
{
	/* A NULL input is an empty one; pointing at a real byte keeps a
	 * zero-length get_bytes from doing arithmetic on NULL. */
	static const uint8_t none[1];

	c->p = p ? p : none;
	c->len = p ? n : 0;
	c->pos = 0;
	c->err = 0;
}

size_t djmfs__cur_left(const struct djmfs__cur *c)
{
	return c->err ? 0 : c->len - c->pos;
}

const uint8_t *djmfs__get_bytes(struct djmfs__cur *c, size_t n)
{
	const uint8_t *at;

	if (c->err || n > c->len - c->pos) {
		c->err = -EBADMSG;
		return NULL;
	}
	at = c->p + c->pos;
	c->pos += n;
	return at;
}

static uint64_t get_le(struct djmfs__cur *c, unsigned n)
{
	const uint8_t *at = djmfs__get_bytes(c, n);
	uint64_t v = 0;

	if (!at)
		return 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)at[i] << (8 * i);
	return v;
}

uint8_t djmfs__get_u8(struct djmfs__cur *c)
{
	return (uint8_t)get_le(c, 1);
}

uint16_t djmfs__get_u16(struct djmfs__cur *c)
{
	return (uint16_t)get_le(c, 2);
}

uint32_t djmfs__get_u32(struct djmfs__cur *c)
{
	return (uint32_t)get_le(c, 4);
}

uint64_t djmfs__get_u64(struct djmfs__cur *c)
{
	return get_le(c, 8);
}

void djmfs__get_str(struct djmfs__cur *c, char *dst, size_t dstsz,
		    int allow_empty)
{
	uint16_t n = djmfs__get_u16(c);
	const uint8_t *s;

	if (dstsz)
		dst[0] = '\0';
	if (c->err)
		return;
	if (dstsz == 0 || n > dstsz - 1 || (n == 0 && !allow_empty)) {
		c->err = -EBADMSG;
		return;
	}
	s = djmfs__get_bytes(c, n);
	if (!s)
		return;
	if (n && memchr(s, '\0', n)) {
		c->err = -EBADMSG;
		return;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}
