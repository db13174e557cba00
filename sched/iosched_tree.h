/*
 * The ordered queue shared by the fifo, edf, scan and scan-edf policies
 * (and mh's late set): a
 * treap, i.e. a binary search tree over the requests that keeps heap order
 * on random priorities and so stays O(log n) deep in expectation whatever
 * order the keys arrive in.  A binary heap would do for fifo and edf, but
 * C-LOOK needs "the first request at or past the head" for a head that can
 * be anywhere by the time the policy is asked, which a search tree answers
 * directly.  The tree is threaded through the requests' policy-private
 * fields, so it never allocates and insertion cannot fail.
 *
 * Fields it uses while a request is queued: in.prev (left child), in.next
 * (right child), in.slot (priority).  The caller sets in.key before
 * insertion and leaves it, offset and in.seq alone until the request is
 * popped.  Requests are not owned: freeing the tree leaves them untouched.
 */
#ifndef IOSCHED_TREE_H
#define IOSCHED_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "iosched.h"

enum iosched__tree_order {
	IOSCHED__TREE_BY_KEY,	     /* in.key, then in.seq */
	IOSCHED__TREE_BY_KEY_OFFSET, /* in.key, then offset, then in.seq */
};

struct iosched__tree {
	struct iosched_req *root;
	size_t n;
	uint64_t rng; /* priority generator state, never 0 */
	enum iosched__tree_order order;
};

/* Allocates an empty tree into *out.  Returns 0 or -ENOMEM. */
int iosched__tree_new(struct iosched__tree **out,
		      enum iosched__tree_order order);

/* Frees the tree, not the requests still in it.  NULL is a no-op. */
void iosched__tree_free(struct iosched__tree *h);

/* Borrows @r until it is popped.  O(log n) expected; cannot fail. */
void iosched__tree_insert(struct iosched__tree *h, struct iosched_req *r);

/* The least request, left in place, or NULL when empty. */
struct iosched_req *iosched__tree_first(struct iosched__tree *h);

/* Removes and returns the least request, or NULL when empty. */
struct iosched_req *iosched__tree_pop_first(struct iosched__tree *h);

/*
 * C-LOOK step for an IOSCHED__TREE_BY_KEY_OFFSET heap: among the requests
 * sharing the least in.key, removes and returns the first one whose offset
 * is at or past @head, or the one with the lowest offset when none is.
 * NULL when empty.  On a BY_KEY heap this is iosched__tree_pop_first().
 */
struct iosched_req *iosched__tree_pop_clook(struct iosched__tree *h,
					    uint64_t head);

/*
 * Empties the tree, storing its requests in order into @out, which has
 * room for h->n.  O(n), with no stack.  Returns the number stored.
 */
size_t iosched__tree_drain(struct iosched__tree *h, struct iosched_req **out);

#endif /* IOSCHED_TREE_H */
