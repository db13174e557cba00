/*
 * Building blocks of the copy-on-write namespace, for the metadata state
 * (djmfs_meta.c) and the tests: how a new root, file record or object
 * version is made from an old one.  Readers only need what djmfs_store.h
 * declares; this header is for the code that makes new versions.
 *
 * Ownership: a record returned by a constructor holds one reference and
 * is private (mutable) until it is handed to a root with
 * djmfs__root_put(), which takes that reference; from then on it is
 * immutable (invariant 1 in djmfs_store.h).
 */
#ifndef DJMFS_TREE_H
#define DJMFS_TREE_H

#include <stdint.h>

#include "djmfs_store.h"

/* ---- roots ---- */

/* An empty namespace.  Returns 0 or -ENOMEM. */
int djmfs__root_new(struct djmfs__root **out);
/*
 * A new root holding @r's files plus @f (replacing the file of the same
 * name, if any).  Takes ownership of @f's reference, also on failure; @r
 * is borrowed and unchanged.  Copies O(log n) tree nodes.  Returns 0 or
 * -ENOMEM.
 */
int djmfs__root_put(const struct djmfs__root *r, struct djmfs__file *f,
		    struct djmfs__root **out);
/* A new root holding @r's files minus @name.  Returns 0, -ENOENT, or
 * -ENOMEM. */
int djmfs__root_del(const struct djmfs__root *r, const char *name,
		    struct djmfs__root **out);
/* A balanced root from @n files sorted by strictly increasing name (a
 * checkpoint being loaded).  Takes ownership of every reference in
 * @files, also on failure.  Returns 0, -EINVAL (not sorted), or -ENOMEM. */
int djmfs__root_build(struct djmfs__file **files, uint64_t n,
		      struct djmfs__root **out);
/* Self-check for the tests: returns the tree height (0 when empty), or
 * -EUCLEAN when balance, name order, cached heights or the file count are
 * wrong. */
int djmfs__root_check(const struct djmfs__root *r);

/* ---- files ---- */

/* A new file record (version 0, ctime = mtime = @time_ns, no objects,
 * next_obj_id 1).  Returns 0, -EINVAL (name empty or too long), or
 * -ENOMEM. */
int djmfs__file_new(struct djmfs__file **out, uint64_t ino, const char *name,
		    uint64_t time_ns);
/* A private copy of @f sharing its object versions.  Returns 0 or
 * -ENOMEM. */
int djmfs__file_dup(const struct djmfs__file *f, struct djmfs__file **out);
/* Index of object @id in @f's list, or -ENOENT. */
int djmfs__file_obj_index(const struct djmfs__file *f, uint32_t id);
/* Private file @f: puts @o at index @i (< n_objs), dropping the version
 * that was there; takes ownership of @o. */
void djmfs__file_set_obj(struct djmfs__file *f, uint32_t i,
			 struct djmfs__obj *o);
/* Private file @f: removes the object at index @i, keeping the order. */
void djmfs__file_remove_obj(struct djmfs__file *f, uint32_t i);

/* ---- objects ---- */

/* Nonzero when @attrs is exactly META or DATA, with SYNC only on DATA and
 * no unknown bits. */
int djmfs__attrs_valid(uint32_t attrs);

/* A new empty object version.  Returns 0 or -ENOMEM. */
int djmfs__obj_new(struct djmfs__obj **out, uint32_t id, uint32_t attrs,
		   const char *name);
/* A private next version of @o: same map (sharing the extent store) and
 * a copy of its META bytes.  Returns 0 or -ENOMEM. */
int djmfs__obj_dup(const struct djmfs__obj *o, struct djmfs__obj **out);
const struct djmfs__obj *djmfs__obj_ref(const struct djmfs__obj *o);
void djmfs__obj_unref(const struct djmfs__obj *o); /* NULL ok */
/*
 * Private version @o: appends one extent (@len > 0) to its map; one that
 * starts where the map ends lengthens the last extent instead.  Amortised
 * O(1); versions already published keep what they see.  Does not change
 * size.  Returns 0 or -ENOMEM (then @o's map is unchanged).
 */
int djmfs__obj_append(struct djmfs__obj *o, uint64_t off, uint64_t len);
/* Private version @o: appends the sum of its next complete cblock
 * (invariant 2: versions already published keep seeing their n_ck).
 * Returns 0 or -ENOMEM (then nothing changed). */
int djmfs__obj_ck_append(struct djmfs__obj *o, uint32_t crc);
/*
 * Private version @o of a DATA object: bytes below @start (<= size, the
 * caller checks) are gone.  Raises start, and ext_first to the first
 * extent holding a byte at or past it (never past the last extent, which
 * holds the map's end), and ck_first to start's cblock (never past
 * n_ck); indices stay absolute.  When the dropped prefix outweighs what
 * the shared store still holds, @o gets a compacted store of its own.  A
 * @start at or below the current one changes nothing.  Returns 0 or
 * -ENOMEM (then @o is unchanged).
 */
int djmfs__obj_trim(struct djmfs__obj *o, uint64_t start);
/* A new, empty object version (a checkpoint being loaded) whose map and
 * sums will go on from absolute indices @ext_first (which begins at
 * object offset @first_at) and @ck_first, trimmed at @start.  Returns 0,
 * -EINVAL (not empty) or -ENOMEM. */
int djmfs__obj_load_firsts(struct djmfs__obj *o, uint64_t start,
			   uint32_t ext_first, uint64_t first_at,
			   uint32_t ck_first);
/* Private version @o: replaces the META content with a copy of @n bytes
 * and sets size = @n.  Returns 0 or -ENOMEM. */
int djmfs__obj_set_meta(struct djmfs__obj *o, const uint8_t *p, uint32_t n);
/* Total bytes the version's map covers.  O(1). */
uint64_t djmfs__obj_maplen(const struct djmfs__obj *o);
/* End (offset + len) of the version's last extent, or 0 with no map. */
uint64_t djmfs__obj_map_end(const struct djmfs__obj *o);

/*
 * Replaces the file with @f's name by @f (owned) inside @r itself, when
 * the caller holds the only reference to @r (a working tree no reader
 * can see yet).  Nodes only @r reaches are changed in place; a node it
 * shares with older roots is copied once and from then on is @r's own.
 * Older roots never change.  Returns 0 (@f taken), -EBUSY (@r is
 * shared), -ENOENT (no such name) or -ENOMEM; on error @f stays the
 * caller's and @r holds the same files as before.
 */
int djmfs__root_replace_owned(struct djmfs__root *r, struct djmfs__file *f);

#endif /* DJMFS_TREE_H */
