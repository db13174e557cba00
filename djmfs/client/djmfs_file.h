/*
 * Private interfaces of libdjmfs's file handles, shared by the files of
 * the handle layer (djmfs_image.c, djmfs_fifo.c, djmfs_write.c,
 * djmfs_read.c, djmfs_snap.c, djmfs_obj.c, djmfs_file.c) and by the
 * handle half of the recovery layer (djmfs_restore.c), which is above
 * them: nothing declared here calls into the recovery layer.  A handle
 * holds the image it reads (the objects of one published snapshot with
 * their maps and META bytes) and, for a writer, the staged appends not
 * yet published.
 *
 * Every operation on a handle is an entry in the handle's FIFO and runs
 * as a small state machine, one operation at a time, so operations
 * complete in submission order.  A step either goes on at once or starts
 * one asynchronous action (an RPC or device requests) and returns; the
 * action's completion, on the receive or the I/O thread, wakes the
 * operation and drives the FIFO on.  Nothing here ever waits, except the
 * blocking API calls, which queue an operation and wait for its
 * callback on the caller's thread.
 *
 *   state        step           next
 *   W_START      w_start        DONE (META) | W_TAIL | W_RESERVE
 *                               (an in-place append: never W_TAIL)
 *   W_TAIL       w_tail         W_RESERVE  (after reading the tail block)
 *   W_RESERVE    w_reserve      W_RESERVE  (after a RESERVE) | W_IO
 *   W_IO         w_io           W_COMMIT   (after the device writes)
 *   W_COMMIT     w_commit       PUBLISH (SYNC object) | DONE
 *   PUBLISH      p_publish      PUBLISHED  (after PUBLISH) | DONE
 *   PUBLISHED    p_published    DONE
 *   READ         r_read         R_VERIFY   (after the device reads) | DONE
 *   R_VERIFY     r_verify       R_VERIFY   (after re-reading a cblock
 *                               that failed its sum) | R_RESYNC (it
 *                               failed again, on an unfrozen reader's
 *                               image, the first time) | DONE
 *   R_RESYNC     r_resync       DONE       (after SYNC_SNAP: -ENODATA
 *                               when the failed bytes are now trimmed)
 *   SNAP         s_snap         DONE       (after SYNC_SNAP / LOCK_SNAP)
 *   UNLOCK       s_unlock       DONE       (after UNLOCK_SNAP)
 *   OBJ          o_obj          DONE       (after CREATE/DELETE/SET_ATTR/
 *                               TRIM)
 *
 * Invariants:
 *  1. Only the operation at the head of the FIFO runs; while its
 *     asynchronous action is outstanding op->waiting is 1, and exactly
 *     one completion clears it (under f->mu) and drives the FIFO.
 *  2. One thread drives a handle at a time (f->driving); a completion
 *     arriving meanwhile leaves the work to that thread, which re-checks
 *     the head before it stops.
 *  3. A DATA object's staged map extends its image's map: the image sees
 *     the first img_n_ext extents, the last clamped to img_last_len, so
 *     staged appends never change what reads see before a publish.
 *  4. Extents cover whole blocks; bytes at or past an object's staged
 *     size, up to its map end, are the writer's to rewrite (whatever
 *     they hold: reads never go past the size), and the object's last
 *     partial block is kept in o->tail while tail_ok, so a rewrite keeps
 *     the bytes below the size unchanged.  An in-place append brings
 *     that block in its own buffer and leaves tail_ok 0: the next
 *     ordinary append reads the block back (W_TAIL) first.
 *  5. The writer owns the rest of the allocation unit holding a DATA
 *     object's map end, and the reservation's units in f->res; units are
 *     taken from the front of f->res only when the data written there is
 *     committed to the staged map.
 *  6. A user's asynchronous callback runs on a library thread: an
 *     operation that would finish on the submitting thread is first
 *     bounced through the I/O thread.
 *  7. f->busy counts the threads inside the driver (or on their way in
 *     with an operation just woken) and the reconnect thread while it
 *     works on the handle; djmfs_close frees the handle only once it is
 *     0, after the last operation has completed.
 *  8. f->handle is the server's handle on connection generation f->gen.
 *     While the handle is stale (djmfs__file_stale: f->ready_gen is not
 *     the connection's generation, which a loss bumps; the restore sets
 *     ready_gen once it is done) the driver starts no step but the
 *     offline ones (W_COMMIT, PUBLISHED: they only finish work already
 *     on the volume or already acknowledged), so the handle's staged map
 *     and reservation change only under the reconnect thread's restore.
 *  9. An RPC lost with its connection (-ENOTCONN, the client not dead)
 *     does not fail its operation: the operation goes back to the step
 *     that sent it (op->redo) and is parked; the restore decides from
 *     the server's state whether that step's effect is there already.
 *     A handle the restore could not bring back (f->lost_err) fails
 *     every operation that has not finished.
 *
 * 10. o->ext_at[i] for ext_first <= i < o->n_at equals first_at plus the
 *     sum of the lengths of extents ext_first .. i-1.  Whatever changes
 *     extent j (its offset or length), appends after it or drops it
 *     calls djmfs__ext_changed(o, j) first, which forgets the offsets
 *     past j; offsets up to j stay, as they depend only on the extents
 *     before.  An image's extents below img_n_ext - 1 are the staged
 *     map's (invariant 3), so one set of offsets serves both views.
 * 11. A trimmed object (djmfs_trim, or an image from the server with a
 *     start) keeps the server's absolute indices: its map is extents
 *     ext_first .. n_ext - 1, the first beginning at object offset
 *     first_at <= start, and its sums are those of cblocks ck_first on;
 *     extents below ext_first are never read.  Sums, 16 per MiB, are
 *     what a long recording's image is mostly made of: ck[0] is cblock
 *     ck_off's, with ck_off <= ck_first, and a snapshot that moves
 *     ck_first moves the kept sums down to it (ck_off = ck_first).  No read returns bytes
 *     below start (-ENODATA): their units may already hold another
 *     file's data.
 *
 * The handle layer never calls up into recovery: it only records what a
 * restore needs (stale by generation, parked operations, lost_err) and
 * djmfs_restore.c, above it, reads and clears that state.
 */
#ifndef DJMFS_FILE_H
#define DJMFS_FILE_H

#include "djmfs_clnt.h"

/* Under f->mu (any lock may be held: it reads the connection's
 * generation lock-free): is the handle waiting for a restore
 * (invariant 8)? */
int djmfs__file_stale(const struct djmfs_file *f);

#define ALL_OBJS UINT32_MAX

#define BLK ((uint64_t)DJMFS_BLOCK)

static inline uint64_t blk_down(uint64_t v)
{
	return v & ~(BLK - 1);
}

static inline uint64_t blk_up(uint64_t v)
{
	return (v + BLK - 1) & ~(BLK - 1);
}

/* One object as the handle holds it. */
struct cobj {
	uint32_t id;
	uint32_t attrs;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	/* The image (what reads see). */
	uint64_t img_size;
	uint32_t img_n_ext;
	uint64_t img_last_len;
	uint8_t *img_meta;
	/* Staged state (a writer's; a reader's equals its image). */
	uint64_t size;
	/* DATA, writer: the end of the writes submitted so far, so the
	 * pointer can come back to an object whose writes are in flight. */
	uint64_t sub_end;
	uint32_t n_ext, ext_cap;
	struct djmfs_extent *ext;
	/* ext_at[i] is the object offset where extent i begins, known for
	 * i < n_at and worked out lazily past that (ext_cap entries), so a
	 * lookup is a binary search rather than a walk of the whole map
	 * (invariant 10).  map_steps counts the extents lookups examined,
	 * so the tests can hold them to their bound without a clock. */
	uint64_t *ext_at;
	uint32_t n_at;
	uint64_t map_steps;
	uint8_t *meta; /* writer: DJMFS_META_MAX bytes, or NULL */
	int meta_dirty;
	uint8_t *tail; /* writer: the block holding size, if partial */
	int tail_ok;
	/* DATA sums (djmfs_proto.h): ck[k] is complete cblock k's; the
	 * image sees the first img_n_ck and img_last_ck for the rest of
	 * img_size, the staged state n_ck and run_ck (the CRC of bytes
	 * [n_ck * CK_BLOCK, size), chained as appends commit).  With
	 * DJMFS_OBJ_CK_GAP in ck_flags the sums stopped at n_ck. */
	uint32_t *ck;	 /* ck[k - ck_off] is cblock k's (invariant 11) */
	uint32_t ck_cap; /* entries, from ck_off */
	uint32_t ck_off;
	uint32_t img_n_ck, img_last_ck, img_ck_flags;
	uint32_t n_ck, run_ck, ck_flags;
	/* Reconnecting: unpublished bytes [salv_off, salv_off + salv_len)
	 * read back from the volume, to be rewritten to new units. */
	uint8_t *salv;
	uint64_t salv_off, salv_len;
	/* Trimmed (invariant 11), the image's and the staged state's
	 * alike: a trim is not staged, it is applied when acknowledged. */
	uint64_t start, first_at;
	uint32_t ext_first, ck_first;
};

/* The sum of complete cblock @k of @o (ck_first <= k < n_ck). */
static inline uint32_t djmfs__ck_get(const struct cobj *o, uint32_t k)
{
	return o->ck[k - o->ck_off];
}

enum step_state {
	ST_DONE,
	ST_W_START,
	ST_W_TAIL,
	ST_W_RESERVE,
	ST_W_IO,
	ST_W_COMMIT,
	ST_PUBLISH,
	ST_PUBLISHED,
	ST_READ,
	ST_R_VERIFY,
	ST_R_RESYNC,
	ST_SNAP,
	ST_UNLOCK,
	ST_OBJ,
	ST_MAX
};

enum step_ret { STEP_GO, STEP_WAIT };

/* A piece of a range: logical (object) offset -> volume offset. */
struct seg {
	uint64_t phys;
	uint64_t len;
	uint64_t logical;
};

struct fop {
	struct djmfs_file *f;
	int state;
	int waiting;
	int bounced;	/* finished once through the I/O thread */
	int redo;	/* the step to run again if its RPC is lost */
	int parked;	/* its RPC was lost: waiting for the restore */
	int inline_ok;	/* blocking caller: may finish on its thread */
	int err;
	ssize_t res;
	djmfs_done_fn done;
	void *user;
	/* Arguments. */
	uint16_t rpc_op;
	const void *wbuf;
	void *rbuf;
	size_t len;
	uint64_t off;
	uint32_t obj_id;
	uint64_t deadline_ns;
	uint32_t attrs;
	uint32_t timeout_ms;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	uint32_t *id_out;
	struct djmfs_file_info *info_out;
	/* Device requests of the current step. */
	struct djmfs__ioreq *reqs;
	uint32_t n_reqs, reqs_cap, pending;
	struct djmfs__ioreq bounce;
	/* A write's plan, from W_IO to W_COMMIT. */
	uint8_t *abuf;	     /* assembled blocks, or the caller's buffer */
	int abuf_owned;
	uint64_t w_start;    /* first block's object offset */
	struct seg *nsegs;   /* new map pieces */
	uint32_t n_nsegs;
	uint32_t units_used; /* taken from the front of f->res */
	int tail_read;
	int is_append;	     /* a write at the object pointer */
	int inplace;	     /* wbuf begins with the object's partial last
				block and is readable to the block after
				len: it is abuf, with no copy */
	uint64_t pub_version;
	/* A read's checks, from READ to R_VERIFY (djmfs_read.c). */
	struct vrange *vr;
	uint32_t n_vr, vr_cap;
	int reread;	     /* R_VERIFY: the failed cblocks were read again */
	int resynced;	     /* R_RESYNC ran: a failure now is final */
	uint64_t *start_out; /* TRIM: the object's start after it */
	/* Frees what a step's module hung on the op (NULL: nothing); run
	 * by djmfs__op_free, so the FIFO needs to know no step's state. */
	void (*cleanup)(struct fop *op);
	struct fop *next;
};


typedef enum step_ret (*step_fn)(struct fop *op);

struct djmfs_file {
	struct djmfs_client *c;
	struct djmfs_file *next, **pprev; /* c->files, under c->lock */
	uint32_t handle;
	unsigned oflags;
	const step_fn *steps; /* the FIFO's steps, by state (djmfs_file.c) */
	pthread_mutex_t mu;
	/* Image, under mu. */
	char name[DJMFS_NAME_MAX + 1];
	uint64_t ino, version, ctime_ns, mtime_ns;
	uint32_t sflags;
	uint32_t n_objs;
	struct cobj *objs[DJMFS_MAX_OBJS];
	int snap_locked;
	uint64_t lock_until_ns; /* 0: until unlocked */
	/* Writer state: the submitting thread (ptr) and the running op. */
	int ptr_set;
	uint32_t ptr_id;
	uint64_t ptr_off;
	struct djmfs__run *res;
	uint32_t n_res, res_cap;
	/* The FIFO, under mu. */
	struct fop *head, *tail;
	int driving;
	unsigned busy;	  /* threads inside drive_locked() or about to be */
	pthread_cond_t idle; /* the driver stopped (busy may be 0) */
	/* Reconnecting, under mu (invariants 8, 9). */
	uint64_t gen;	  /* connection generation of handle */
	uint64_t ready_gen; /* the generation the queue runs on: gen, once
			       a restore on gen has finished */
	int salvaged;	  /* this outage's read-back is done */
	int salv_err;	  /* ... and failed with this */
	int lost_err;	  /* could not be restored: ops fail with it */
};

/* djmfs_image.c */
void djmfs__cobj_free(struct cobj *o);
struct cobj *djmfs__obj_find(struct djmfs_file *f, uint32_t id);
int djmfs__ext_reserve(struct cobj *o, uint32_t n);
void djmfs__ext_changed(struct cobj *o, uint32_t j);
int djmfs__ck_reserve(struct cobj *o, uint32_t n);
struct djmfs_extent djmfs__img_ext(const struct cobj *o, uint32_t i);
uint64_t djmfs__map_bytes(struct cobj *o);
int djmfs__map_range(struct cobj *o, int img, uint64_t lo,
		     uint64_t hi, struct seg **out, uint32_t *n_out);
void djmfs__fill_info(struct djmfs_file *f, struct djmfs_file_info *out);
int djmfs__apply_snap(struct djmfs_file *f, const struct djmfs__snap *s);
void djmfs__fill_known(struct djmfs_file *f, struct djmfs__known *k);

/* djmfs_fifo.c */
void djmfs__op_wake(struct fop *op, int err);
enum step_ret djmfs__op_failed(struct fop *op, int err);
enum step_ret djmfs__op_rpc(struct fop *op, struct djmfs__msg *req,
			    djmfs__reply_fn fn, int redo);
void djmfs__op_free(struct fop *op);
void djmfs__drive_locked(struct djmfs_file *f, int submitter);
struct fop *djmfs__op_new(struct djmfs_file *f, int state, djmfs_done_fn done,
			  void *user);
void djmfs__op_queue(struct fop *op);
ssize_t djmfs__op_run(struct fop *op);
int djmfs__add_io(struct fop *op, enum iosched_op rw, uint64_t phys,
		  uint64_t len, uint8_t *buf);
enum step_ret djmfs__io_start(struct fop *op);

/* djmfs_write.c */
enum step_ret djmfs__w_start(struct fop *op);
enum step_ret djmfs__w_tail(struct fop *op);
enum step_ret djmfs__w_reserve(struct fop *op);
enum step_ret djmfs__w_io(struct fop *op);
enum step_ret djmfs__w_commit(struct fop *op);
enum step_ret djmfs__p_publish(struct fop *op);
enum step_ret djmfs__p_published(struct fop *op);

/* djmfs_read.c */
enum step_ret djmfs__r_read(struct fop *op);
enum step_ret djmfs__r_verify(struct fop *op);
enum step_ret djmfs__r_resync(struct fop *op);

/* djmfs_snap.c */
int djmfs__frozen(const struct djmfs_file *f);
enum step_ret djmfs__s_snap(struct fop *op);
enum step_ret djmfs__s_unlock(struct fop *op);

/* djmfs_obj.c */
int djmfs__obj_apply(struct fop *op, uint32_t id);
enum step_ret djmfs__o_obj(struct fop *op);
int djmfs__writer_ok(struct djmfs_file *f, const char *call);

#endif /* DJMFS_FILE_H */
