/*
 * The thumbnail cache: JPEGs already made, by (recording, keyframe
 * offset, width), so that a player scrubbing along a timeline, which asks
 * for the same few dozen keyframes over and over, pays for each decode
 * once.  A thumbnail costs tens of milliseconds of a media worker's CPU
 * and is a few kilobytes, so keeping a few hundred is cheap.  The budget
 * is both a count and bytes; past either, the least recently used go.
 * Nothing is ever stale: a key names a keyframe of a DATA object, whose
 * published bytes never change, under an ino DJMFS never reuses.
 *
 * A list in recency order, searched linearly: a few hundred entries
 * compare in a microsecond or two, far below the decode a hit saves,
 * and a list needs no rehashing nor a second structure to keep in step.
 *
 * Invariants (c->mu, a leaf lock, guards everything):
 *  1. The list runs from the most recently used (head) to the least
 *     (tail); a get that hits and a put move their entry to the head.
 *  2. c->n and c->bytes are the entries and their JPEG bytes; after a
 *     put returns, n <= max_entries and bytes <= max_bytes.
 *  3. No two entries have the same key.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

struct entry {
	struct entry *prev, *next;
	struct sd_thumb_key k;
	uint8_t *jpeg;
	size_t len;
};

struct sd_thumb_cache {
	pthread_mutex_t mu;
	struct entry *head, *tail; /* invariant 1 */
	size_t n, bytes;	   /* invariant 2 */
	size_t max_entries, max_bytes;
	uint64_t hits, misses, evictions;
};

static int key_eq(const struct sd_thumb_key *a, const struct sd_thumb_key *b)
{
	return a->ino == b->ino && a->data_id == b->data_id &&
	       a->offset == b->offset && a->width == b->width;
}

static void unlink_entry(struct sd_thumb_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_head(struct sd_thumb_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void drop(struct sd_thumb_cache *c, struct entry *e)
{
	unlink_entry(c, e);
	c->n--;
	c->bytes -= e->len;
	free(e->jpeg);
	free(e);
}

static struct entry *find(struct sd_thumb_cache *c,
			  const struct sd_thumb_key *k)
{
	for (struct entry *e = c->head; e; e = e->next)
		if (key_eq(&e->k, k))
			return e;
	return NULL;
}

int sd_thumb_cache_new(struct sd_thumb_cache **out, size_t max_entries,
		       size_t max_bytes)
{
	struct sd_thumb_cache *c;

	if (!out)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	c->max_entries = max_entries;
	c->max_bytes = max_bytes;
	*out = c;
	return 0;
}

void sd_thumb_cache_free(struct sd_thumb_cache *c)
{
	if (!c)
		return;
	while (c->head)
		drop(c, c->head);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int sd_thumb_cache_get(struct sd_thumb_cache *c,
		       const struct sd_thumb_key *k, uint8_t **jpeg,
		       size_t *len)
{
	struct entry *e;
	uint8_t *copy = NULL;

	if (!c || !k || !jpeg || !len)
		return 0;
	pthread_mutex_lock(&c->mu);
	e = find(c, k);
	if (e)
		copy = malloc(e->len);
	if (copy) {
		memcpy(copy, e->jpeg, e->len);
		*len = e->len;
		unlink_entry(c, e);
		push_head(c, e);
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->mu);
	*jpeg = copy;
	return copy != NULL;
}

int sd_thumb_cache_put(struct sd_thumb_cache *c,
		       const struct sd_thumb_key *k, const uint8_t *jpeg,
		       size_t len)
{
	struct entry *e, *old;

	if (!c || !k || (!jpeg && len))
		return -EINVAL;
	if (len > c->max_bytes || c->max_entries == 0)
		return 0; /* would evict everything and still not fit */
	e = calloc(1, sizeof(*e));
	if (e)
		e->jpeg = malloc(len ? len : 1);
	if (!e || !e->jpeg) {
		free(e);
		return -ENOMEM;
	}
	memcpy(e->jpeg, jpeg, len);
	e->len = len;
	e->k = *k;
	pthread_mutex_lock(&c->mu);
	old = find(c, k);
	if (old)
		drop(c, old); /* invariant 3 */
	push_head(c, e);
	c->n++;
	c->bytes += len;
	while (c->n > c->max_entries || c->bytes > c->max_bytes) {
		drop(c, c->tail); /* never e: it fits alone */
		c->evictions++;
	}
	pthread_mutex_unlock(&c->mu);
	return 0;
}

void sd_thumb_cache_stats(struct sd_thumb_cache *c,
			  struct sd_thumb_cache_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	out->entries = c->n;
	out->bytes = c->bytes;
	out->hits = c->hits;
	out->misses = c->misses;
	out->evictions = c->evictions;
	pthread_mutex_unlock(&c->mu);
}
