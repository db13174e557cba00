/*
 * Private header of the DJMFS server's store, shared by the server's
 * files, the offline checker and their tests: journal records, the
 * volume as the server opens it, checkpoints and the group-commit
 * journal, the copy-on-write namespace, the metadata state and free
 * allocation units.  The client never includes it (tools/archcheck.sh
 * checks).  Modules, one file each:
 *   djmfs_jrec.c     journal records: encode and decode
 *   djmfs_volume.c   superblock layout and writing, opening a volume
 *   djmfs_mkfs.c     formatting a volume
 *   djmfs_journal.c  group-commit journal writer, replay, checkpoint slots
 *   djmfs_tree.c     copy-on-write namespace: roots, files, objects, maps
 *   djmfs_meta.c, djmfs_meta_sets.c, djmfs_meta_img.c
 *                    metadata state: applying records, reservations,
 *                    consistency checks, checkpoint images
 *   djmfs_alloc.c    free allocation units, prefetcher, deferred frees
 *   djmfs_fsck.c     offline check and repair
 * The server's loop and its layers are in djmfs_srv.h.
 */
#ifndef DJMFS_STORE_H
#define DJMFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "djmfs_proto.h"

/* ------------------------------------------------------------------ */
/* Journal records                                                     */
/* ------------------------------------------------------------------ */

/*
 * Record: a 32-byte header, then `len` payload bytes.
 *   u32 len | u32 crc | u64 epoch | u64 seq | u16 type | u16 0 | u32 0
 * crc is CRC-32C, seeded with the volume uuid's CRC, over everything
 * after the crc field (header rest and payload), so records of an older
 * format of the same area never pass.  Payloads:
 *   FILE_CREATE  u64 ino | u64 time_ns | str name
 *   FILE_UNLINK  u64 ino | u64 time_ns
 *   OBJ_CREATE   u64 ino | u64 time_ns | u32 obj_id | u32 attrs | str name
 *   OBJ_DELETE   u64 ino | u64 time_ns | u32 obj_id
 *   OBJ_SETATTR  u64 ino | u64 time_ns | u32 obj_id | u32 attrs
 *   PUBLISH      u64 ino | u64 time_ns | PUBLISH body without sums
 *                (the first format; replayed, never written now)
 *   PUBLISH_CK   u64 ino | u64 time_ns | PUBLISH body (djmfs_proto.h)
 *   RESERVE      u64 ino | u64 time_ns | u32 n | n * RUN
 *   RELEASE      u64 ino | u64 time_ns | u32 n | n * RUN
 *   QUARANTINE   u64 ino | u64 time_ns | str why
 *   TRIM         u64 ino | u64 time_ns | u32 obj_id | u64 start
 */
#define DJMFS_JREC_HDR 32
#define DJMFS_JREC_MAX (DJMFS_FRAME_MAX + 4096)

enum djmfs__jtype {
	DJMFS_J_FILE_CREATE = 1,
	DJMFS_J_FILE_UNLINK,
	DJMFS_J_OBJ_CREATE,
	DJMFS_J_OBJ_DELETE,
	DJMFS_J_OBJ_SETATTR,
	DJMFS_J_PUBLISH,
	DJMFS_J_RESERVE,
	DJMFS_J_RELEASE,
	DJMFS_J_QUARANTINE,
	/* On the volume only: decoding gives type PUBLISH with
	 * publish.has_ck set, and encoding such a record writes this. */
	DJMFS_J_PUBLISH_CK,
	DJMFS_J_TRIM,
	DJMFS_J_MAX
};

struct djmfs__jrec {
	uint64_t epoch;
	uint64_t seq;
	uint16_t type;
	uint64_t ino;
	uint64_t time_ns; /* CLOCK_REALTIME */
	union {
		struct {
			char name[DJMFS_NAME_MAX + 1];
		} create;
		struct {
			uint32_t obj_id;
			uint32_t attrs;
			char name[DJMFS_OBJ_NAME_MAX + 1]; /* OBJ_CREATE */
		} obj; /* OBJ_CREATE, OBJ_DELETE, OBJ_SETATTR */
		struct djmfs__publish publish;
		struct djmfs__runv runs; /* RESERVE, RELEASE */
		struct {
			char why[128];
		} quarantine;
		struct {
			uint32_t obj_id;
			uint64_t start;
		} trim;
	} u;
};

/*
 * Decodes the record at @p (@avail bytes readable).  @seed is the uuid
 * CRC.  Returns 0 and sets *used, -ENODATA (fewer bytes than the header or
 * its len need: the end of the log or a torn write), or -EBADMSG (CRC
 * mismatch, unknown type, malformed payload).  Views point into @p.
 */
int djmfs__jrec_decode(const uint8_t *p, size_t avail, uint32_t seed,
		       struct djmfs__jrec *r, size_t *used);
/* Appends the record (epoch and seq as given).  Returns 0, -EINVAL, or
 * -ENOMEM. */
int djmfs__jrec_encode(struct djmfs__buf *b, uint32_t seed,
		       const struct djmfs__jrec *r);
const char *djmfs__jtype_name(unsigned type);

/* Computes a layout of format @version (1, or 2: with copy B of the
 * metadata at the end) for @size bytes and @au_size (0: 1 MiB).  Returns
 * 0, -EINVAL (unit not a power of two in [64 KiB, 64 MiB], unknown
 * version), or -ENOSPC (fewer than 16 data units would remain). */
int djmfs__sb_layout_format(struct djmfs__sb *sb, uint64_t size,
			    uint32_t au_size, unsigned version);
/* The layout mkfs writes: the current format. */
int djmfs__sb_layout(struct djmfs__sb *sb, uint64_t size, uint32_t au_size);
/* Bytes of copy B (and of the front's metadata area it mirrors, from the
 * volume's start to the end of slot 1). */
uint64_t djmfs__sb_mirror_len(const struct djmfs__sb *sb);
/* Encodes @sb as its `copy` field says. */
void djmfs__sb_encode(const struct djmfs__sb *sb, uint8_t out[DJMFS_SB_SIZE]);
/* Writes superblock copy @copy of @sb (no sync).  Returns 0, -EINVAL (the
 * format has no such copy), or -errno. */
int djmfs__sb_write_copy(int fd, const struct djmfs__sb *sb, unsigned copy);
/* How many superblock copies the format of @sb keeps (1 or 3). */
unsigned djmfs__sb_ncopies(const struct djmfs__sb *sb);

#define DJMFS__VOL_EXCL 0x1u   /* flock(LOCK_EX|LOCK_NB): -EBUSY if held */
#define DJMFS__VOL_RDONLY 0x2u

/* What loading found in each copy of a checkpoint slot (the values of
 * the public enum djmfs_copy_state). */
enum djmfs__copy_state {
	DJMFS__COPY_NONE = 0, /* no such copy (format 1 has no copy B) */
	DJMFS__COPY_OK,
	DJMFS__COPY_BLANK,    /* never written (both copies) */
	DJMFS__COPY_BAD,      /* unreadable, bad CRC, or stale */
	DJMFS__COPY_REPAIRED, /* was bad, rewritten from the other copy */
};

/* An open volume, for metadata I/O (buffered descriptor). */
struct djmfs__vol {
	int fd;
	int rdonly; /* opened DJMFS__VOL_RDONLY: repairs are only logged */
	char *path;
	struct djmfs__sb sb;
	uint32_t seed;
	uint64_t data_end; /* data_off + n_aus * au_size */
	/* What opening and loading found, for the boot figures and fsck. */
	struct djmfs__sb_copy sb_copies[DJMFS_SB_COPIES];
	uint64_t repaired_sb;	/* superblock copies rewritten */
	uint64_t repaired_ckpt; /* checkpoint copies rewritten */
	uint64_t repaired_jrec; /* journal records rewritten in one copy */
	uint64_t bad_jrec;	/* ... found bad in one copy (rewritten
				   unless read-only) */
	uint64_t lagged_jrec;	/* ... missing from copy B at the tail: a
				   crash between the copies' writes, mended
				   as bad ones are but no damage */
	uint64_t ckpt_gen[2];	/* per slot, 0: no valid header */
	enum djmfs__copy_state ckpt_copy[2][2]; /* [slot][copy A, B] */
};

/*
 * Opens and locks (DJMFS__VOL_EXCL) a volume and picks its superblock
 * (djmfs__sb_read_copies); unless DJMFS__VOL_RDONLY, rewrites the copies
 * that do not match it, each logged at WARN.  Returns 0, -EBUSY, -EUCLEAN
 * (not a volume, no valid superblock copy, truncated), or -errno.
 */
int djmfs__vol_open(struct djmfs__vol **out, const char *path,
		    unsigned flags, const struct djmfs_log *log);
/* Upgrades the open, writable format 1 volume @v to format 2 in place
 * (djmfs_upgrade.c); @v then describes format 2.  0 on format 2
 * already.  Returns 0, -EROFS, -ENOSPC (no room for copy B: nothing
 * written), or -errno, each logged. */
int djmfs__vol_upgrade(struct djmfs__vol *v, const struct djmfs_log *log);
/* Replaces the open volume's superblock (upgrade) and what derives from
 * it. */
void djmfs__vol_set_sb(struct djmfs__vol *v, const struct djmfs__sb *sb);
void djmfs__vol_close(struct djmfs__vol *v);

/* ------------------------------------------------------------------ */
/* Checkpoints and journal                                             */
/* ------------------------------------------------------------------ */

/*
 * Checkpoint slot: a 64-byte header, then the image.
 *   "DJMFSCKP" | u32 version | u32 0 | u64 gen | u64 last_seq |
 *   u64 img_len | u32 img_crc | u32 0 | 12 bytes 0 | u32 hdr_crc
 * The journal's epoch is the generation of the checkpoint it follows.
 */
struct djmfs__ckpt {
	uint64_t gen;
	uint64_t last_seq;
	unsigned slot;
	uint8_t *img; /* malloc'd; the caller frees */
	size_t img_len;
	/* The highest generation any slot header claims, the loaded one's
	 * or a newer one whose image failed: a new checkpoint goes above it,
	 * so a generation (and the journal epoch it names) is never used
	 * twice. */
	uint64_t max_gen;
	unsigned bad_slots; /* bit i: slot i was written once and fails */
};

/* Generations and epochs stay below this: a header claiming more is
 * damage, and the next generation after it would overflow. */
#define DJMFS__GEN_MAX (UINT64_C(1) << 63)

/* The generation after everything in @seen: 1 + max.  Returns 0, or
 * -EOVERFLOW when that reaches DJMFS__GEN_MAX (nothing may be written). */
int djmfs__next_gen(const uint64_t *seen, size_t n, uint64_t *out);

/* Loads the newest valid slot; a skipped slot is logged at WARN level and
 * the lack of any valid one at ERROR level.  Returns 0, -EUCLEAN (neither
 * valid), -ENOMEM, or the read error when a slot could not be read. */
int djmfs__ckpt_load(struct djmfs__vol *v, struct djmfs__ckpt *out,
		     const struct djmfs_log *log);
/* Writes a slot and fdatasyncs.  Returns 0, -ENOSPC (image larger than
 * the slot, see djmfs__ckpt_room; or the host file system under a volume
 * file has no room), or -errno. */
int djmfs__ckpt_store(struct djmfs__vol *v, unsigned slot, uint64_t gen,
		      uint64_t last_seq, const uint8_t *img, size_t n);
/* Bytes of image a checkpoint slot holds. */
size_t djmfs__ckpt_room(const struct djmfs__vol *v);

/*
 * Where a replay ended.  Only the last group commit can be cut by a
 * crash, so a bad record is a torn tail unless valid records of the
 * checkpoint's epoch (or a newer one) follow it: those were written
 * after it, so it had been written whole and was damaged since.
 */
enum djmfs__jend {
	DJMFS__JEND_LOG,	/* a never-written header or the area's end */
	DJMFS__JEND_TORN,	/* a cut or bad last record, nothing after */
	DJMFS__JEND_DAMAGED,	/* valid records of the epoch lie beyond */
	DJMFS__JEND_STALE_CKPT, /* records of a newer epoch: the checkpoint
				   replay started from is not the newest */
};

/* djmfs__journal_replay() flags. */
#define DJMFS__REPLAY_SALVAGE 0x1u /* apply the records found beyond a
				      damaged one, skipping the gap */

#define DJMFS__REPLAY_LOST_INOS 8

struct djmfs__replay_info {
	uint64_t records;  /* applied */
	uint64_t skipped;  /* decoded but refused by the callback */
	uint64_t last_seq;
	uint64_t end_off;  /* bytes of the epoch that hold records */
	char stop[96];	   /* why replay stopped ("end of log", "bad CRC"...) */
	enum djmfs__jend end;
	uint64_t max_epoch; /* the newest epoch any valid record names */
	/* Valid records found beyond the stop (DAMAGED, STALE_CKPT): what
	 * going on without them would lose.  With SALVAGE they were applied
	 * (records, skipped count them too) and the gap was skipped. */
	uint64_t lost_records;
	uint64_t lost_first, lost_last;	/* their seqs */
	uint64_t lost_end_off;		/* journal offset after the last */
	uint64_t lost_publishes;
	uint64_t lost_inos[DJMFS__REPLAY_LOST_INOS]; /* files they touch */
	char lost_names[DJMFS__REPLAY_LOST_INOS][64]; /* "" unless created
							 by those records */
	unsigned n_lost_inos;			     /* (first ones) */
	uint64_t lost_inos_more;		     /* not listed */
	uint64_t gap_first, gap_last; /* seqs no copy holds (SALVAGE) */
};

typedef int (*djmfs__replay_fn)(void *arg, const struct djmfs__jrec *r);

/* Reads the journal from its start: records of @epoch with seq
 * after_seq+1, +2, ... go to @fn until a record fails to decode, has
 * another epoch or an unexpected seq.  Then the rest of the area is
 * searched for valid records of this epoch or a newer one, which decide
 * info->end (see enum djmfs__jend) and are described in @info.  With
 * DJMFS__REPLAY_SALVAGE they go to @fn too, in seq order, and the seqs
 * missing between are skipped.  A callback error is logged and counted
 * in skipped.  Returns 0 or -errno (I/O). */
int djmfs__journal_replay(struct djmfs__vol *v, uint64_t epoch,
			  uint64_t after_seq, unsigned flags,
			  djmfs__replay_fn fn, void *arg,
			  struct djmfs__replay_info *info,
			  const struct djmfs_log *log);

/* "end of log", "torn tail", "damaged", "stale checkpoint". */
const char *djmfs__jend_name(enum djmfs__jend e);

struct djmfs__journal;

struct djmfs__journal_opts {
	struct djmfs__vol *vol; /* borrowed */
	uint64_t epoch;		/* generation of the current checkpoint */
	unsigned ckpt_slot;	/* the slot holding it */
	uint64_t next_seq;	/* first seq to be appended */
	int notify_fd;		/* eventfd written after each durable batch */
	uint64_t window_ns;	/* at least this long between two syncs'
				   starts, so one sync covers more records */
	const struct djmfs_log *log;
};

struct djmfs__journal_stats {
	uint64_t records;
	uint64_t batches;
	uint64_t bytes;
	uint64_t checkpoints;
	uint64_t sync_ns; /* time spent in fdatasync */
};

/* Starts the writer thread (journal starts empty at offset 0 of @epoch). */
int djmfs__journal_start(struct djmfs__journal **out,
			 const struct djmfs__journal_opts *o);
/*
 * Loop thread: encodes @r (its seq must follow the previous one; epoch is
 * filled in) and queues it for the next group commit.  Returns 0, or
 * -ENOSPC when the epoch's area cannot hold it (a checkpoint is needed
 * first).
 */
int djmfs__journal_append(struct djmfs__journal *j, struct djmfs__jrec *r);
/* The -errno of the writer's first failed write or sync (sticky), or 0;
 * any thread. */
int djmfs__journal_failed(const struct djmfs__journal *j);
/* Loop thread: nonzero when the epoch is three-quarters full. */
int djmfs__journal_want_checkpoint(const struct djmfs__journal *j);
/*
 * Loop thread: queues a checkpoint image (ownership of @img's memory
 * passes to the journal; @img is left empty) of the state after @seq, the
 * last record appended.  In order: the records before it are made
 * durable, the image is written to the other slot and made durable, then
 * later records start a new epoch at the journal's start.
 */
int djmfs__journal_checkpoint(struct djmfs__journal *j,
			      struct djmfs__buf *img, uint64_t seq);
/* Highest seq known durable (any thread). */
uint64_t djmfs__journal_durable(const struct djmfs__journal *j);
void djmfs__journal_get_stats(const struct djmfs__journal *j,
			      struct djmfs__journal_stats *out);
/* Makes everything queued durable, stops the thread, frees.  NULL ok. */
void djmfs__journal_stop(struct djmfs__journal *j);

/* ------------------------------------------------------------------ */
/* Copy-on-write namespace                                              */
/* ------------------------------------------------------------------ */

/*
 * Invariants:
 *  1. A root, file or object record reachable from a published root is
 *     never modified again; a change builds new records along the path
 *     from the root (path copying) and a new root.
 *  2. A DATA object's map is append-only.  Versions of one object share
 *     one extent store; a version sees the first n_ext entries, its last
 *     one clamped to last_len, so later appends never change what an
 *     older version reads.  Its sums likewise: a version sees the first
 *     n_ck complete cblocks' sums of the shared store and keeps its own
 *     last_ck; without DJMFS_OBJ_CK_GAP, n_ck == size / DJMFS_CK_BLOCK
 *     and last_ck covers the rest of size.
 *  3. Reference counts are plain integers: every record is created,
 *     shared and freed on the server's loop thread only.
 *  4. Indices of extents and sums are absolute and survive a trim: a
 *     version sees extents [ext_first, n_ext) and sums [ck_first, n_ck);
 *     ext_first < n_ext whenever n_ext > 0 (the last extent, holding the
 *     map's end, is never dropped), the extent ext_first begins at an
 *     object offset <= start, and ck_first = min(start / CK_BLOCK, n_ck)
 *     or more.  An object owns only the units the live parts of its
 *     extents touch (djmfs__obj_live).
 */
struct djmfs__xstore; /* append-only extent store of one object */

struct djmfs__obj {
	uint32_t refs;
	uint32_t id;
	uint32_t attrs;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	uint64_t size;
	uint64_t start;	    /* DATA: bytes below it are trimmed (<= size) */
	struct djmfs__xstore *xs; /* DATA; NULL when empty */
	uint32_t ext_first; /* first extent of the map (invariant 4) */
	uint32_t n_ext;	    /* one past the last extent (absolute) */
	uint64_t last_len;
	uint32_t ck_first; /* first complete cblock's sum kept */
	uint32_t n_ck;	   /* complete cblocks' sums this version sees */
	uint32_t last_ck;  /* sum of the partial last cblock */
	uint32_t ck_flags; /* DJMFS_OBJ_CK_GAP */
	uint8_t *meta; /* META content, meta_len bytes (== size) */
	uint32_t meta_len;
};

struct djmfs__file {
	uint32_t refs;
	uint64_t ino;
	char name[DJMFS_NAME_MAX + 1];
	uint64_t version;
	uint32_t flags; /* DJMFS_FILE_QUARANTINED */
	uint64_t ctime_ns;
	uint64_t mtime_ns;
	uint32_t next_obj_id;
	uint32_t n_objs;
	struct djmfs__obj *objs[DJMFS_MAX_OBJS];
};

struct djmfs__root;

struct djmfs__root *djmfs__root_ref(struct djmfs__root *r);
void djmfs__root_unref(struct djmfs__root *r); /* NULL ok */
uint64_t djmfs__root_nfiles(const struct djmfs__root *r);
const struct djmfs__file *djmfs__root_find(const struct djmfs__root *r,
					   const char *name);
/* @fn for files with names after @after ("" or NULL: all) in name order;
 * stops on a non-zero return, which it returns. */
int djmfs__root_walk(const struct djmfs__root *r, const char *after,
		     int (*fn)(void *arg, const struct djmfs__file *f),
		     void *arg);

const struct djmfs__file *djmfs__file_ref(const struct djmfs__file *f);
void djmfs__file_unref(const struct djmfs__file *f); /* NULL ok */
const struct djmfs__obj *djmfs__file_obj(const struct djmfs__file *f,
					 uint32_t id);
/* Sum of complete cblock @i (ck_first <= i < n_ck). */
uint32_t djmfs__obj_ck(const struct djmfs__obj *o, uint32_t i);
/* Extent @i (ext_first <= i < n_ext) as this version sees it. */
struct djmfs_extent djmfs__obj_extent(const struct djmfs__obj *o, uint32_t i);
/* The live part of extent @i (ext_first <= i < n_ext): its bytes at or
 * past the object's start, and for the last extent at least its last
 * byte, so that the unit holding the map's end stays owned.  len 0 when
 * the extent lies wholly below the start. */
struct djmfs_extent djmfs__obj_live(const struct djmfs__obj *o, uint32_t i);
/* Object offset where extent ext_first begins (0 with no map). */
uint64_t djmfs__obj_first_at(const struct djmfs__obj *o);
/*
 * The open-time consistency check: every extent inside
 * [data_off, data_end) and aligned to DJMFS_BLOCK, no two extents of the
 * file overlapping, each DATA size <= its extents' total, META sizes
 * within DJMFS_META_MAX, at most one SYNC object.  Returns 0 or -EUCLEAN
 * with a reason in @why.
 */
int djmfs__file_check(const struct djmfs__file *f, uint64_t data_off,
		      uint64_t data_end, char *why, size_t whylen);

/* ------------------------------------------------------------------ */
/* Metadata state                                                      */
/* ------------------------------------------------------------------ */

struct djmfs__meta;

enum djmfs__free_kind {
	DJMFS_FREE_NOW,	     /* a reservation given back: reusable at once */
	DJMFS_FREE_DEFERRED, /* deleted data: readers may still hold it */
};

struct djmfs__meta_opts {
	uint64_t data_off;
	uint64_t n_aus;
	uint32_t au_size;
	const struct djmfs_log *log;
	/* Units leaving the metadata (deleted objects and files, released
	 * reservations).  May be NULL (replay, fsck). */
	void (*on_free)(void *arg, uint64_t first_au, uint64_t n_aus,
			enum djmfs__free_kind kind);
	void *arg;
	/* 0: every applied record is a candidate durable state.  1: only
	 * the states djmfs__meta_seal() marks are (the server seals once per
	 * loop pass, which is its commit: between seals the working tree is
	 * private, so records edit it in place instead of copying paths). */
	int batched;
};

int djmfs__meta_new(struct djmfs__meta **out, const struct djmfs__meta_opts *o);
void djmfs__meta_free(struct djmfs__meta *m); /* NULL ok */

/* Replaces the state with a checkpoint image (0 bytes: empty volume) that
 * holds the state after @last_seq.  Returns 0 or -EBADMSG. */
int djmfs__meta_load(struct djmfs__meta *m, const uint8_t *img, size_t n,
		     uint64_t last_seq);
/* Appends an image of the working state (files and reservations).
 * Returns 0, or the buffer's error (-ENOMEM) when it could not grow. */
int djmfs__meta_serialize(const struct djmfs__meta *m, struct djmfs__buf *out);

/*
 * Applies one record to the working state, all or nothing.  r->seq must
 * be djmfs__meta_seq() + 1.  Checks (each failure a distinct -errno and a
 * log line at debug level):
 *   FILE_CREATE: ino == next ino (-EINVAL), name free (-EEXIST).
 *   PUBLISH: every object exists (-ENOENT); DATA sizes never shrink and
 *     stay within the map (-EINVAL); with sums, ck_first is the old size's
 *     cblock, ck_n the cblocks the new size completes and last_ck 0 at a
 *     cblock boundary, and a META object has none (-EINVAL); a publish
 *     without sums (journal format 1) that grows a DATA object stops its
 *     sums (DJMFS_OBJ_CK_GAP); META within DJMFS_META_MAX (-EFBIG);
 *     every unit a new extent touches is in the file's reservation or is
 *     the unit holding the object's current end (-EPERM); version is
 *     old version + 1 and base_version == old version (-ESTALE).
 *   OBJ_CREATE: a second SYNC object (-EEXIST), too many objects
 *     (-ENOSPC), obj_id == next_obj_id (-EINVAL).
 *   RELEASE: the runs are in the file's reservation (-EINVAL).
 *   TRIM: the object exists (-ENOENT), is DATA, and start is above its
 *     current start and at most its size (-EINVAL).
 * Units leaving the metadata are reported through on_free.
 */
int djmfs__meta_apply(struct djmfs__meta *m, const struct djmfs__jrec *r);

uint64_t djmfs__meta_seq(const struct djmfs__meta *m);
/* Replay: a journaled record this state refused (a damaged journal or a
 * bug) still used its seq; moving past it (@seq == seq + 1) lets the
 * records after it apply instead of all failing as out of order. */
void djmfs__meta_skip(struct djmfs__meta *m, uint64_t seq);
/* Salvage only: inodes below @ino were handed out by records that are
 * lost, so a FILE_CREATE of @ino may apply; they are never reused. */
void djmfs__meta_skip_inos(struct djmfs__meta *m, uint64_t ino);
uint64_t djmfs__meta_next_ino(const struct djmfs__meta *m);
/* Name of a live file by inode in the working state, or NULL. */
const char *djmfs__meta_name(const struct djmfs__meta *m, uint64_t ino);

/* Borrowed roots.  The working root has every applied record; the
 * durable one only those made durable (what readers are shown). */
struct djmfs__root *djmfs__meta_working(const struct djmfs__meta *m);
struct djmfs__root *djmfs__meta_durable(const struct djmfs__meta *m);
/* Moves the durable root to the newest candidate state (see batched)
 * with seq <= @seq. */
void djmfs__meta_mark_durable(struct djmfs__meta *m, uint64_t seq);
/* Seq of the durable root's state. */
uint64_t djmfs__meta_durable_seq(const struct djmfs__meta *m);
/* Batched mode: makes the working state a candidate durable state (a
 * no-op when nothing was applied since the last seal). */
void djmfs__meta_seal(struct djmfs__meta *m);

/* Reservations: runs handed to a file's writer, not yet mapped. */
int djmfs__meta_walk_reserved(const struct djmfs__meta *m,
			      int (*fn)(void *arg, uint64_t ino,
					struct djmfs__run run),
			      void *arg);
uint64_t djmfs__meta_reserved_aus(const struct djmfs__meta *m);
/* Boot: forgets every reservation (their sessions died with the old
 * server) without records; returns the units dropped. */
uint64_t djmfs__meta_drop_reservations(struct djmfs__meta *m);

/* Calls @fn for every unit range the working state maps (boot, fsck). */
int djmfs__meta_walk_mapped(const struct djmfs__meta *m,
			    int (*fn)(void *arg, uint64_t ino,
				      uint64_t first_au, uint64_t n_aus),
			    void *arg);

/* ------------------------------------------------------------------ */
/* Free allocation units                                                */
/* ------------------------------------------------------------------ */

struct djmfs__alloc;

struct djmfs__alloc_info {
	uint64_t total;
	uint64_t free;	   /* in the bitmap plus ready in the cache */
	uint64_t cached;   /* prefetched, ready to hand out */
	uint64_t deferred; /* waiting for their release time */
	uint64_t stalls;   /* takes the cache could not serve */
	uint64_t refills;  /* prefetcher rounds */
};

/* All units start free.  @prefetch: units the prefetcher keeps ready. */
int djmfs__alloc_new(struct djmfs__alloc **out, uint64_t n_aus,
		     uint32_t prefetch, const struct djmfs_log *log);
void djmfs__alloc_free(struct djmfs__alloc *a); /* stops the prefetcher */
/* Boot, before start: marks units in use.  Returns the units that were
 * already marked (a double claim the caller reports). */
uint64_t djmfs__alloc_mark_used(struct djmfs__alloc *a, uint64_t first,
				uint64_t n);
int djmfs__alloc_start(struct djmfs__alloc *a);
/*
 * Loop thread: hands out up to @want units as at most @max_runs runs,
 * contiguous where it can, from the prefetched cache (scanning the bitmap
 * itself only when the cache is dry, which counts as a stall).  Returns
 * the number of runs (>= 1), or -ENOSPC when no unit is free.
 */
int djmfs__alloc_take(struct djmfs__alloc *a, uint32_t want,
		      struct djmfs__run *runs, unsigned max_runs);
void djmfs__alloc_put(struct djmfs__alloc *a, uint64_t first, uint64_t n);
void djmfs__alloc_defer(struct djmfs__alloc *a, uint64_t first, uint64_t n,
			uint64_t until_ns);
/* Returns to free space the deferred runs due by @now_ns (monotonic). */
void djmfs__alloc_tick(struct djmfs__alloc *a, uint64_t now_ns);
void djmfs__alloc_get(const struct djmfs__alloc *a,
		      struct djmfs__alloc_info *out);

#endif /* DJMFS_STORE_H */
