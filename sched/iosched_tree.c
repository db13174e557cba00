/*
 * The treap behind the simple policies (see iosched_tree.h for why a tree
 * and not an array heap).  Every operation walks a single root-to-leaf
 * path with a pointer to the link it may rewrite, so nothing recurses and
 * a degenerate shape could cost time but never stack.
 *
 * Invariants:
 *  1. In-order traversal lists the requests in the tree's order; requests
 *     that compare equal keep their insertion order.
 *  2. No request has a higher priority (in.slot) than its parent.
 *  3. h->n is the number of requests reachable from h->root.
 */
#include <errno.h>
#include <stdlib.h>

#include "iosched_tree.h"

#define LEFT(r) ((r)->in.prev)
#define RIGHT(r) ((r)->in.next)
#define PRIO(r) ((r)->in.slot)

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

static int cmp(const struct iosched__tree *h, const struct iosched_req *a,
	       const struct iosched_req *b)
{
	int c = cmp_u64(a->in.key, b->in.key);

	if (c == 0 && h->order == IOSCHED__TREE_BY_KEY_OFFSET)
		c = cmp_u64(a->offset, b->offset);
	if (c == 0)
		c = cmp_u64(a->in.seq, b->in.seq);
	return c;
}

/* Priorities only shape the tree, so a fixed-seed xorshift is enough and
 * keeps runs reproducible; callers cannot steer it through their keys. */
static uint32_t next_prio(struct iosched__tree *h)
{
	uint64_t x = h->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	h->rng = x;
	return (uint32_t)(x >> 32);
}

int iosched__tree_new(struct iosched__tree **out,
		      enum iosched__tree_order order)
{
	struct iosched__tree *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->rng = 0x2545f4914f6cdd1dull;
	h->order = order;
	*out = h;
	return 0;
}

void iosched__tree_free(struct iosched__tree *h)
{
	free(h);
}

/* Splits subtree @t around @r into r's left (not after r) and right
 * (after r) children. */
static void split(const struct iosched__tree *h, struct iosched_req *t,
		  struct iosched_req *r)
{
	struct iosched_req **lo = &LEFT(r), **hi = &RIGHT(r);

	while (t) {
		if (cmp(h, t, r) <= 0) {
			*lo = t;
			lo = &RIGHT(t);
			t = RIGHT(t);
		} else {
			*hi = t;
			hi = &LEFT(t);
			t = LEFT(t);
		}
	}
	*lo = NULL;
	*hi = NULL;
}

/* Joins two subtrees where everything in @a comes before @b. */
static struct iosched_req *merge(struct iosched_req *a, struct iosched_req *b)
{
	struct iosched_req *root = NULL, **link = &root;

	while (a && b) {
		if (PRIO(a) >= PRIO(b)) {
			*link = a;
			link = &RIGHT(a);
			a = RIGHT(a);
		} else {
			*link = b;
			link = &LEFT(b);
			b = LEFT(b);
		}
	}
	*link = a ? a : b;
	return root;
}

void iosched__tree_insert(struct iosched__tree *h, struct iosched_req *r)
{
	struct iosched_req **link = &h->root;

	PRIO(r) = next_prio(h);
	while (*link && PRIO(*link) >= PRIO(r))
		link = cmp(h, r, *link) < 0 ? &LEFT(*link) : &RIGHT(*link);
	split(h, *link, r);
	*link = r;
	h->n++;
}

/* Unhooks the request at *link, whose subtree it roots. */
static struct iosched_req *take(struct iosched__tree *h,
				struct iosched_req **link)
{
	struct iosched_req *r = *link;

	*link = merge(LEFT(r), RIGHT(r));
	LEFT(r) = NULL;
	RIGHT(r) = NULL;
	h->n--;
	return r;
}

static struct iosched_req **first_link(struct iosched__tree *h)
{
	struct iosched_req **link = &h->root;

	while (*link && LEFT(*link))
		link = &LEFT(*link);
	return link;
}

struct iosched_req *iosched__tree_first(struct iosched__tree *h)
{
	return *first_link(h);
}

struct iosched_req *iosched__tree_pop_first(struct iosched__tree *h)
{
	struct iosched_req **link = first_link(h);

	return *link ? take(h, link) : NULL;
}

struct iosched_req *iosched__tree_pop_clook(struct iosched__tree *h,
					    uint64_t head)
{
	struct iosched_req **first = first_link(h), **link = &h->root;
	struct iosched_req **found = NULL;
	uint64_t key;

	if (!*first || h->order != IOSCHED__TREE_BY_KEY_OFFSET)
		return iosched__tree_pop_first(h);
	key = (*first)->in.key;
	/* Least request not before (key, head): the sweep's next stop. */
	while (*link) {
		struct iosched_req *t = *link;

		if (t->in.key > key || (t->in.key == key && t->offset >= head)) {
			found = link;
			link = &LEFT(t);
		} else {
			link = &RIGHT(t);
		}
	}
	if (!found || (*found)->in.key != key)
		found = first; /* nothing left ahead in this key: wrap */
	return take(h, found);
}

/* Rotates left children up onto the right spine as it walks it, so each
 * request is rotated at most once and the walk never needs to go back. */
size_t iosched__tree_drain(struct iosched__tree *h, struct iosched_req **out)
{
	struct iosched_req *t = h->root, *l;
	size_t k = 0;

	while (t) {
		if (LEFT(t)) {
			l = LEFT(t);
			LEFT(t) = RIGHT(l);
			RIGHT(l) = t;
			t = l;
		} else {
			out[k++] = t;
			l = RIGHT(t);
			RIGHT(t) = NULL;
			t = l;
		}
	}
	h->root = NULL;
	h->n = 0;
	return k;
}
