/*
 * Private header of the metadata state, shared by its three files only:
 * djmfs_meta.c (the state, its roots and the application of journal
 * records; the invariants are there), djmfs_meta_sets.c (the two
 * indexes it keeps: unit run sets for reservations and the inode table)
 * and djmfs_meta_img.c (the checkpoint image of the state).  Everyone
 * else sees the state only through the djmfs__meta_* calls of
 * djmfs_srv_int.h.
 */
#ifndef DJMFS_META_H
#define DJMFS_META_H

#include <stddef.h>
#include <stdint.h>

#include "djmfs_tree.h"

struct djmfs__urun {
	uint64_t first;
	uint64_t count;
};

/* Sorted, disjoint, non-adjacent runs (invariant 3). */
struct djmfs__rset {
	struct djmfs__urun *r;
	uint32_t n;
	uint32_t cap;
};

struct djmfs__ient {
	uint64_t ino; /* 0: empty slot */
	char *name;
	struct djmfs__rset res;
	/* The file record the working root holds for ino (invariant 6), so
	 * a record finds its file without a descent by name; the root owns
	 * it, this pointer is no reference. */
	const struct djmfs__file *wf;
};

struct djmfs__imap {
	struct djmfs__ient *slot;
	size_t cap; /* power of two */
	size_t n;
};

struct djmfs__mstate {
	uint64_t seq;
	struct djmfs__root *root;
};

struct djmfs__meta {
	struct djmfs__meta_opts o;
	uint64_t data_end;
	struct djmfs__root *working;
	struct djmfs__root *durable;
	struct djmfs__mstate *ring; /* invariant 1 */
	uint32_t ring_cap, ring_head, ring_n;
	uint64_t seq;
	uint64_t durable_seq; /* the durable root's state */
	uint64_t sealed_seq;  /* batched: the newest sealed state */
	uint64_t next_ino;
	uint64_t reserved;
	struct djmfs__imap inos;
	const char *why; /* reason for the last refusal, for the log */
};


/* ---- djmfs_meta_sets.c ---- */

void djmfs__rset_free(struct djmfs__rset *s);
/* Makes @dst a copy of @src.  Returns 0 or -ENOMEM. */
int djmfs__rset_copy(struct djmfs__rset *dst, const struct djmfs__rset *src);
/* Adds [first, first + count).  Returns 0, -EINVAL (overlaps a run), or
 * -ENOMEM. */
int djmfs__rset_add(struct djmfs__rset *s, uint64_t first, uint64_t count);
/* Takes [first, first + count) out; it must lie inside one run.  Returns
 * 0, -ENOENT (not all of it is in the set), or -ENOMEM. */
int djmfs__rset_take(struct djmfs__rset *s, uint64_t first, uint64_t count);

/* The entry of @ino, or NULL. */
struct djmfs__ient *djmfs__im_find(const struct djmfs__imap *im, uint64_t ino);
/* Places @e (ino not present; room guaranteed). */
struct djmfs__ient *djmfs__im_place(struct djmfs__imap *im,
				    const struct djmfs__ient *e);
/* Makes room for one more entry (load at most one half).  Returns 0 or
 * -ENOMEM. */
int djmfs__im_reserve(struct djmfs__imap *im);
/* Frees @e's contents and closes the gap (backward-shift deletion). */
void djmfs__im_remove(struct djmfs__imap *im, struct djmfs__ient *e);
/* Frees every entry's contents; the table stays usable. */
void djmfs__im_clear(struct djmfs__imap *im);

/* ---- djmfs_meta.c ---- */

/* Forgets everything: the namespace becomes @empty (an empty root whose
 * reference this takes), after record 0.  Cannot fail. */
void djmfs__meta_reset(struct djmfs__meta *m, struct djmfs__root *empty);

#endif /* DJMFS_META_H */
