/*
 * libdjmfs: the client of DJMFS, the SAN file system built for streams.
 *
 * A DJMFS file is an ordered list of objects.  The metadata server
 * (djmfsd) holds the namespace, every object's map and the locks; clients
 * ask it for metadata only and do the data I/O themselves, straight to the
 * shared volume, through libiosched with deadlines.  One writer per file,
 * any number of readers.  A writer decides when readers may see its work:
 * a write to the file's SYNCHRONOUS object publishes a snapshot (META
 * objects: their bytes and size; DATA objects: their map and size).
 * Readers see only published snapshots: SYNC_SNAP fetches the latest,
 * LOCK_SNAP freezes the image a handle sees until UNLOCK_SNAP (or its
 * timeout), while the writer goes on appending.
 *
 * Conventions: functions return 0 (or a byte count) on success and -errno
 * on failure; constructors fill an out-parameter.  The library never
 * prints and never exits: diagnostics go through the caller's log hook.
 * Errors a caller should expect: -ENOENT (no such file or object), -EEXIST,
 * -EBUSY (another writer holds the file), -EUCLEAN (the file failed its
 * consistency check and is quarantined), -ENOSPC (volume or metadata
 * full, or the host file system under a volume file full: the I/O
 * statistics' nospace tells which), -EROFS (the server runs read-only:
 * its host file system was full when it started; every call that would
 * write is refused until it restarts), -ENOTCONN (the server connection or the session's lease is lost),
 * -EPROTO (the server speaks another protocol version), -EBADF (a read
 * handle asked to write, or the reverse), -EINVAL (bad argument; a log
 * line says which).
 *
 * Thread-safety: a client handle may be used from any number of threads at
 * once; calls on different files proceed in parallel and share one
 * connection (requests are pipelined).  A file handle is used by one
 * thread at a time (blocking calls and submissions of asynchronous ones
 * must not race on the same handle).  Completion callbacks run on one of
 * the library's threads: they must not block, and may submit further
 * asynchronous calls but must not make blocking ones.
 */
#ifndef DJMFS_H
#define DJMFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Logging (shared with the server API in djmfs_server.h)              */
/* ------------------------------------------------------------------ */

enum djmfs_log_level {
	DJMFS_LOG_ERROR = 0,
	DJMFS_LOG_WARN = 1,
	DJMFS_LOG_INFO = 2,
	DJMFS_LOG_DEBUG = 3,
};

/* Receives one complete line (no trailing newline), valid during the call.
 * May be called from any of the library's threads. */
typedef void (*djmfs_log_fn)(void *arg, enum djmfs_log_level level,
			     const char *msg);

struct djmfs_log {
	djmfs_log_fn fn; /* NULL: diagnostics are dropped */
	void *arg;
};

/* ------------------------------------------------------------------ */
/* Limits and attributes                                               */
/* ------------------------------------------------------------------ */

#define DJMFS_NAME_MAX 255	 /* bytes in a file name */
#define DJMFS_OBJ_NAME_MAX 31	 /* bytes in an object name */
#define DJMFS_MAX_OBJS 16	 /* objects per file */
#define DJMFS_META_MAX 65536	 /* bytes in a META object */
/* A DATA object's bytes carry a CRC-32C (djmfs_crc32c) per this many
 * bytes of the object, written with each publish; reads check them. */
#define DJMFS_CSUM_BLOCK 65536

/* Object attributes.  Exactly one of META or DATA; SYNCHRONOUS only with
 * DATA, and on at most one object per file. */
#define DJMFS_ATTR_META 0x1u
#define DJMFS_ATTR_DATA 0x2u
#define DJMFS_ATTR_SYNC 0x4u

/* djmfs_open() flags. */
#define DJMFS_O_READ 0x1u   /* read published snapshots */
#define DJMFS_O_WRITE 0x2u  /* take the file's single write lock */
#define DJMFS_O_CREATE 0x4u /* create it if missing (needs WRITE) */
#define DJMFS_O_EXCL 0x8u   /* with CREATE: fail with -EEXIST if present */

/* File flags in struct djmfs_file_info. */
#define DJMFS_FILE_QUARANTINED 0x1u /* failed its consistency check */
#define DJMFS_FILE_WRITE_LOCKED 0x2u /* a writer holds it (stat, list) */
#define DJMFS_FILE_SNAP_LOCKED 0x4u  /* this handle's image is frozen */

struct djmfs_extent {
	uint64_t offset; /* byte offset on the volume */
	uint64_t len;	 /* bytes */
};

struct djmfs_obj_info {
	uint32_t id;	/* stable within the file, never reused */
	uint32_t attrs; /* DJMFS_ATTR_* */
	char name[DJMFS_OBJ_NAME_MAX + 1];
	uint64_t size;	     /* bytes, in the snapshot */
	uint32_t n_extents;  /* DATA: extents in the snapshot's map */
	/* DATA: bytes below it were trimmed (djmfs_trim) and are gone;
	 * offsets of the rest do not change.  0 when never trimmed. */
	uint64_t start;
};

/* One published image of a file (a snapshot), or a file's stat. */
struct djmfs_file_info {
	char name[DJMFS_NAME_MAX + 1];
	uint64_t ino;
	uint64_t version; /* publish count; grows by one per snapshot */
	uint32_t flags;	  /* DJMFS_FILE_* */
	uint32_t n_objs;
	uint64_t size;	  /* sum of the objects' sizes */
	uint64_t ctime_ns; /* CLOCK_REALTIME */
	uint64_t mtime_ns; /* time of the last publish */
	struct djmfs_obj_info objs[DJMFS_MAX_OBJS]; /* in file order */
};

/* ------------------------------------------------------------------ */
/* Connection                                                          */
/* ------------------------------------------------------------------ */

struct djmfs_client;
struct djmfs_file;

/* Client flag: skip all data I/O (writes and reads of DATA objects
 * complete at once without touching the volume) while every metadata
 * operation still happens.  For benchmarking the server as if storage
 * were infinitely fast. */
#define DJMFS_CLIENT_NO_DATA_IO 0x1u

#define DJMFS_CLIENT_NO_BATCH UINT32_MAX

struct djmfs_client_opts {
	/* "unix:/path", "tcp:host:port", "host:port", or a path containing
	 * '/' (a Unix socket).  NULL: $DJMFS_SERVER, else
	 * "unix:/run/djmfs/djmfsd.sock". */
	const char *server;
	/* The shared volume as this host sees it.  NULL: the path the
	 * server announces.  Its superblock uuid must match the server's. */
	const char *volume;
	const char *name;	/* shown in the server's log; NULL: "pid N" */
	uint32_t lease_ms;	/* 0: the server's default */
	/* Data I/O through libiosched. */
	const char *policy;	/* NULL: "glmd" */
	const char *profile;	/* model profile name or path; NULL: "ssd-sata" */
	unsigned depth;		/* dispatch depth; 0: the profile's */
	uint32_t reserve_aus;	/* allocation units asked for per
				   reservation; 0: 16 */
	/* Send coalescing (like Nagle's rule, for RPCs): while other calls
	 * are waiting for replies, a request made within this many
	 * microseconds of the last write leaves with the next one instead
	 * of in a write (and a server wake-up) of its own.  A call made when
	 * nothing else is in flight always leaves at once.  0: 1000;
	 * DJMFS_CLIENT_NO_BATCH: off. */
	uint32_t batch_us;
	unsigned flags;		/* DJMFS_CLIENT_* */
	struct djmfs_log log;
	/* The volume's shared secret (copied), proven to the server at
	 * HELLO with HMAC-SHA256 over both sides' nonces, after the server
	 * has proven it back.  NULL: none.  -EACCES when the server asks for
	 * a secret we lack, or cannot prove ours (another secret, or none). */
	const void *secret;
	size_t secret_len;
	/* After the connection to the server is lost (djmfsd restarted,
	 * or the connection dropped), how long to keep reconnecting to the
	 * same address and restoring the open files before failing calls
	 * with -ENOTCONN.  0: 30 s; DJMFS_CLIENT_NO_RECONNECT: never (a lost
	 * connection fails every call at once).  See djmfs_connect. */
	uint32_t reconnect_ms;
	/* Testing only: every data I/O takes this much longer, and one in
	 * inject_eio_every (0: none) fails with -EIO (libiosched's back-end
	 * fault injection). */
	uint64_t inject_latency_ns;
	unsigned inject_eio_every;
};

#define DJMFS_CLIENT_NO_RECONNECT UINT32_MAX

/*
 * Connects, opens a session (the lease is renewed by heartbeats from a
 * library thread), and opens the volume for direct I/O.  @opts is copied.
 * Returns 0, -ECONNREFUSED/-ENOENT (no server there), -EPROTO, -EXDEV (the
 * volume is not the server's), or -errno.
 *
 * Reconnecting (unless opts.reconnect_ms is DJMFS_CLIENT_NO_RECONNECT):
 * when the connection is lost, the library logs one line, reconnects to
 * the same address (first at once, then backing off to 500 ms between
 * tries), says HELLO again, checks the volume is the same, and restores
 * every open file on the new session, then logs one line with the outage
 * time and what it re-sent.  Readers reopen on the latest snapshot (a
 * LOCK_SNAP freeze is taken again there for the rest of its timeout).  A
 * writer retakes its write lock (waiting out the old session's lease if
 * the server did not restart), and reconciles its unpublished work with
 * what the server has durably: a PUBLISH or object call whose answer was
 * lost is found applied or not from the file's state, so nothing is
 * applied twice or lost; data written but not yet published that lay in
 * reserved units (which a restarted server forgets) is read back as the
 * connection goes and rewritten to new units.  Meanwhile calls that need
 * the server wait (blocking) or stay queued (asynchronous, in order);
 * reads and writes queued on a handle wait too.  If the window
 * (reconnect_ms) ends first, or the server turns out to be another
 * volume's or to refuse us, everything fails with -ENOTCONN as without
 * reconnecting.  djmfs_disconnect during an outage waits for it (at most
 * the window) so writers' pending work is published.  djmfs_conn_stats
 * counts outages and reconnects.  Known limits: an O_EXCL create whose
 * answer was lost may report -EEXIST for the file it created; a reader's
 * frozen image moves to the latest snapshot; between a restarted server
 * coming up and the read-back, another writer could be handed (and
 * overwrite) the units of our unpublished data -- the read-back starts
 * the moment the loss is seen, before any reconnect, to keep that window
 * small.
 */
int djmfs_connect(struct djmfs_client **out,
		  const struct djmfs_client_opts *opts);

/* Closes every file still open (publishing writers' pending work), ends
 * the session and frees the handle.  NULL is a no-op. */
void djmfs_disconnect(struct djmfs_client *c);

/* CLOCK_MONOTONIC in ns: the clock deadlines are given on. */
uint64_t djmfs_now(void);

/* CRC-32C (Castagnoli), the checksum of DJMFS's own records, for clients
 * that check theirs the same way: continues @crc over @n bytes (start
 * with 0).  djmfs_crc32c(0, "123456789", 9) is 0xe3069283. */
uint32_t djmfs_crc32c(uint32_t crc, const void *p, size_t n);

/* The connection's history since djmfs_connect (see reconnect_ms). */
struct djmfs_conn_stats {
	uint64_t outages;	  /* times the connection was lost */
	uint64_t reconnects;	  /* outages that ended restored */
	uint64_t outage_ns;	  /* time spent reconnecting, in total */
	uint64_t confirmed;	  /* lost publishes found already applied */
	uint64_t resent;	  /* operations sent again after a reconnect */
	uint64_t rewritten_bytes; /* unpublished data moved to new units */
	uint64_t connected;	  /* 1 while the connection is up */
};
/* Fills @out (zeroes for a NULL @c). */
void djmfs_conn_stats(struct djmfs_client *c, struct djmfs_conn_stats *out);

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/*
 * Opens @name.  A reader's handle starts on the latest snapshot.  A
 * writer's takes the single write lock (-EBUSY if another session holds
 * it, including a dead one until its lease runs out).  A file whose maps
 * fail the server's check is quarantined: -EUCLEAN.
 */
int djmfs_open(struct djmfs_client *c, const char *name, unsigned flags,
	       struct djmfs_file **out);

/* Writer: publishes pending work (as djmfs_flush) and releases the lock
 * and unused reservations.  Frees @f in every case; returns 0 or the
 * -errno of the final publish.  NULL is a no-op returning 0. */
int djmfs_close(struct djmfs_file *f);

/*
 * A reader's open and close without waiting for the server's answer, for
 * callers that must not block (an event loop starting many players).
 * djmfs_open_async takes DJMFS_O_READ only and sends one OPEN on the
 * connection as it is now: 0 means @done will be called exactly once, on
 * a library thread, with 0 and the handle or a -errno and NULL; any other
 * return is the failure at once and @done is never called.  It neither
 * waits for a connection that is down nor sends again when one is lost
 * (-ENOTCONN either way): djmfs_open does both, and the caller may fall
 * back to it.  djmfs_close_async closes a reader's handle (-EINVAL for a
 * writer's, whose close publishes): 0 means the CLOSE is on its way and
 * @done (optional) will be called once, on a library thread, after @f
 * was freed; anything else means it completed at once (@f freed, @done
 * not called).  Either way @f must not be used after the call.
 */
typedef void (*djmfs_open_fn)(void *user, int err, struct djmfs_file *f);
int djmfs_open_async(struct djmfs_client *c, const char *name,
		     unsigned flags, djmfs_open_fn done, void *user);
int djmfs_close_async(struct djmfs_file *f, void (*done)(void *user,
							  ssize_t res),
		      void *user);

int djmfs_unlink(struct djmfs_client *c, const char *name);

/* Latest published state of @name, without opening it. */
int djmfs_stat(struct djmfs_client *c, const char *name,
	       struct djmfs_file_info *out);

/* Calls @fn for every file whose name starts with @prefix (NULL: all), in
 * name order; a non-zero return from @fn stops the walk and is returned.
 * Only name, ino, version, flags, size and mtime_ns are filled. */
typedef int (*djmfs_list_fn)(void *arg, const struct djmfs_file_info *fi);
int djmfs_list(struct djmfs_client *c, const char *prefix, djmfs_list_fn fn,
	       void *arg);

struct djmfs_df {
	uint32_t au_size;	 /* bytes per allocation unit */
	uint64_t total_aus;
	uint64_t free_aus;	 /* includes the prefetched ones */
	uint64_t reserved_aus;	 /* handed to writers, not yet mapped */
	uint64_t deferred_aus;	 /* freed, waiting for readers to let go */
	uint64_t files;
	uint64_t quarantined;
};
int djmfs_df(struct djmfs_client *c, struct djmfs_df *out);

/* Server-side counters, for benchmarks and monitoring. */
struct djmfs_server_stats {
	uint64_t uptime_ns;
	uint64_t cpu_user_ns;	  /* the server process's CPU time */
	uint64_t cpu_sys_ns;
	uint64_t ops;		  /* requests handled */
	uint64_t mutations;	  /* journaled operations */
	uint64_t lock_busy_ns;	  /* time the metadata commit section was held */
	uint64_t journal_records;
	uint64_t journal_batches; /* group commits (fdatasync calls) */
	uint64_t journal_bytes;
	uint64_t checkpoints;
	uint64_t sessions;	  /* live now */
	uint64_t alloc_stalls;	  /* allocations the prefetcher had not covered */
	/* Copies of the metadata rewritten from a good copy since the
	 * server booted (format 2 volumes keep two).  0 from a server of
	 * the previous release. */
	uint64_t meta_repairs_journal;
	uint64_t meta_repairs_checkpoint;
	uint64_t meta_repairs_superblock;
};
int djmfs_server_stats(struct djmfs_client *c, struct djmfs_server_stats *out);

/* ------------------------------------------------------------------ */
/* Objects                                                             */
/* ------------------------------------------------------------------ */

/* Writer: appends a new empty object at the end of the file.  Takes effect
 * at once (journaled).  Returns 0 and its id, -EEXIST (name taken, or a
 * second SYNCHRONOUS object), -ENOSPC (DJMFS_MAX_OBJS reached). */
int djmfs_create_obj(struct djmfs_file *f, const char *name, unsigned attrs,
		     uint32_t *id_out);
/* Writer: removes an object; its space is freed once no locked snapshot
 * can still read it. */
int djmfs_delete_obj(struct djmfs_file *f, uint32_t id);
/*
 * Writer: drops the bytes of DATA object @id below object offset @start
 * (retention of a recording): the object's start becomes @start and the
 * offsets of what remains do not change.  A new version of the file,
 * durable when this returns, like a publish.  The allocation units that
 * held only bytes below @start are freed once no locked snapshot (and no
 * reader within its lease) can still read them; a unit that still holds
 * a byte at or past @start stays.  Reads below an image's start fail
 * with -ENODATA.  A @start at or below the current start changes nothing
 * and is not an error.  Appends and publishes may go on meanwhile.
 * Returns 0 and the object's start after the call in *new_start (may be
 * NULL), -EINVAL (@start past the published size, a META object),
 * -ENOENT (no such object), -EBADF (not a writer), or -errno.
 */
int djmfs_trim(struct djmfs_file *f, uint32_t id, uint64_t start,
	       uint64_t *new_start);
/* Id of the object called @name in the handle's current image. */
int djmfs_find_obj(struct djmfs_file *f, const char *name, uint32_t *id_out);
int djmfs_get_attr(struct djmfs_file *f, uint32_t id, unsigned *attrs_out);
/* Writer: only SYNC may change (set or cleared). */
int djmfs_set_attr(struct djmfs_file *f, uint32_t id, unsigned attrs);

/*
 * Writer: the object pointer says where djmfs_write() puts bytes.  A META
 * object accepts any offset up to its size; a DATA object is append-only,
 * so its pointer is always its end (@offset must equal its size).
 */
int djmfs_set_objptr(struct djmfs_file *f, uint32_t id, uint64_t offset);
int djmfs_get_objptr(struct djmfs_file *f, uint32_t *id_out,
		     uint64_t *offset_out);

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

/*
 * Writer: writes @len bytes at the object pointer, growing the object
 * (never into the next object) and advancing the pointer.  A write to the
 * SYNCHRONOUS object publishes a snapshot of the whole file once the data
 * is on the volume; it returns when the server has made the snapshot
 * durable.  Other writes become visible with the next publish.  Returns
 * @len or -errno (-ENOSPC: the volume is full, or the host file system
 * under it; -EROFS: the server is read-only; what was published before
 * stays intact).
 */
ssize_t djmfs_write(struct djmfs_file *f, const void *buf, size_t len);

/* Writer: publishes pending work now (for files without a SYNCHRONOUS
 * object, or before a pause). */
int djmfs_flush(struct djmfs_file *f);

/* Reads from the handle's current image: by file offset (the objects
 * laid end to end in file order) or within one object.  Returns the bytes
 * read (short at the end of the image) or -errno: -ENODATA when the range
 * reaches below a trimmed object's start (in this image, or, for a reader
 * that is not frozen, in the latest snapshot, which a read failing its
 * checksums moves to once before it reports -EIO). */
ssize_t djmfs_pread(struct djmfs_file *f, void *buf, size_t len,
		    uint64_t offset);
ssize_t djmfs_pread_obj(struct djmfs_file *f, uint32_t id, void *buf,
			size_t len, uint64_t offset);

/* Image of the handle (what reads see), with extents for one object:
 * fills up to @max extents and returns how many the object has. */
int djmfs_file_info(struct djmfs_file *f, struct djmfs_file_info *out);
int djmfs_obj_extents(struct djmfs_file *f, uint32_t id,
		      struct djmfs_extent *out, size_t max);
/* The image's checksums of DATA object @id: fills up to @max sums of its
 * complete DJMFS_CSUM_BLOCK-byte blocks (block k is object bytes
 * [k * DJMFS_CSUM_BLOCK, (k + 1) * DJMFS_CSUM_BLOCK)) and *last (may be
 * NULL) with the partial last block's (0 when the size is a multiple).
 * Returns how many complete blocks have sums: size / DJMFS_CSUM_BLOCK,
 * or fewer for an object written without sums by an older version
 * (then *last is 0 and the blocks past them are read unverified);
 * -ENOENT (no such object) or -EINVAL (a META object, bad arguments). */
int djmfs_obj_checksums(struct djmfs_file *f, uint32_t id, uint32_t *out,
			size_t max, uint32_t *last);

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

/* Moves the handle to the latest published snapshot (fetching only what
 * changed).  With a frozen image (LOCK_SNAP) it stays on that image.
 * @out may be NULL. */
int djmfs_sync_snap(struct djmfs_file *f, struct djmfs_file_info *out);

/* Moves to the latest snapshot and freezes it: the server keeps its data
 * readable and this handle sees it until djmfs_unlock_snap() or until
 * @timeout_ms passes (0: the server's maximum), so a dead reader cannot
 * pin a file forever. */
int djmfs_lock_snap(struct djmfs_file *f, uint32_t timeout_ms,
		    struct djmfs_file_info *out);
int djmfs_unlock_snap(struct djmfs_file *f);

/* ------------------------------------------------------------------ */
/* Asynchronous data I/O                                               */
/* ------------------------------------------------------------------ */

/* @res: bytes, or -errno.  Runs on a library thread. */
typedef void (*djmfs_done_fn)(void *user, ssize_t res);

/*
 * Submissions return 0 (the callback will run exactly once) or -errno
 * (it never will).  @deadline_ns is on djmfs_now()'s clock (0: best
 * effort); the data I/O is scheduled by it.  The buffer is borrowed until
 * the callback.  Operations on one handle complete in submission order;
 * a write's callback runs after its publish is durable, when it publishes.
 * Appends fail as a chain: when one fails, those already queued behind it
 * fail with -ECANCELED (they would land short of where they were
 * submitted), and the object pointer comes back to the object's end.
 */
int djmfs_write_async(struct djmfs_file *f, const void *buf, size_t len,
		      uint64_t deadline_ns, djmfs_done_fn done, void *user);
/*
 * An append the library writes to the volume straight from the caller's
 * memory.  djmfs_write_async copies an append into blocks of its own
 * (the object's partial last block, then the bytes) unless it starts on
 * a block and is whole blocks from an aligned buffer; here the caller
 * lays the blocks out instead.  @blk is a multiple of DJMFS_IO_ALIGN and
 * begins with the object's last @head bytes (its end, counting the
 * appends already submitted, modulo DJMFS_IO_ALIGN: the bytes of its
 * partial last block), followed by the @len new bytes; it is readable up
 * to the next multiple of DJMFS_IO_ALIGN after them.  What lies there
 * past the new bytes goes to the volume beyond the object's end, where
 * no read sees it.  Borrowed until the callback, which gets @len or
 * -errno; the head and the new bytes must not change before it.  Only
 * at a DATA object.  Returns as djmfs_write_async; -EINVAL (a log line
 * says which) when @blk is not aligned, @head is not the object's, or
 * the pointer is at a META object.
 */
int djmfs_write_inplace_async(struct djmfs_file *f, const void *blk,
			      size_t head, size_t len, uint64_t deadline_ns,
			      djmfs_done_fn done, void *user);
int djmfs_pread_async(struct djmfs_file *f, void *buf, size_t len,
		      uint64_t offset, uint64_t deadline_ns,
		      djmfs_done_fn done, void *user);
/* The same within one object (by object offset).  A read whose buffer
 * address, object offset and length are all multiples of DJMFS_IO_ALIGN
 * goes from the device into @buf with no copy; any other goes through a
 * bounce buffer of the library's and one copy. */
#define DJMFS_IO_ALIGN 4096
int djmfs_pread_obj_async(struct djmfs_file *f, uint32_t id, void *buf,
			  size_t len, uint64_t offset, uint64_t deadline_ns,
			  djmfs_done_fn done, void *user);
/* SYNC_SNAP without waiting; @res is 0 or -errno. */
int djmfs_sync_snap_async(struct djmfs_file *f, djmfs_done_fn done,
			  void *user);

/* The data path's scheduler, changeable at run time.  In djmfs_set_io()
 * a NULL string or a zero depth keeps the current value. */
struct djmfs_io_knobs {
	char policy[16];   /* libiosched policy name */
	char profile[256]; /* model profile name or path, as given */
	unsigned depth;	   /* dispatch depth in use */
};
/* Applies @policy, @profile and @depth together (all or none) once the
 * data path's thread reaches them; queued requests keep their order under
 * the new policy.  Returns 0, -EINVAL (unknown policy, bad depth: a log
 * line says which), -ENOENT (no such profile), or -errno. */
int djmfs_set_io(struct djmfs_client *c, const char *policy,
		 const char *profile, unsigned depth);
void djmfs_get_io(struct djmfs_client *c, struct djmfs_io_knobs *out);

/* Deadline statistics of this client's data I/O since connect. */
struct djmfs_io_stats {
	uint64_t requests;  /* completed device requests */
	uint64_t deadline_requests;
	uint64_t misses;    /* completed after their deadline */
	uint64_t bytes;
	uint64_t latency_p99_ns;
	uint64_t lateness_max_ns;
	uint64_t errors;    /* completed with an error (-EIO, ...) */
	/* Bytes of appends (the caller's, with the object's partial last
	 * block in front) copied into a block buffer of the library's on
	 * their way to the volume: an append that does not start on a block
	 * or comes from an unaligned buffer costs that copy. */
	uint64_t copied_bytes;
	/* Device writes the host refused for want of space (ENOSPC, or
	 * EDQUOT, reported as ENOSPC): the file system holding the volume
	 * file is full, not the volume's own units. */
	uint64_t nospace;
};
void djmfs_io_stats(struct djmfs_client *c, struct djmfs_io_stats *out);

/* Data checksums of this client's reads since connect.  A block whose
 * checksum fails is read once more from the device; if it fails again
 * the read fails with -EIO (logged at ERROR) and none of its bytes are
 * returned. */
struct djmfs_client_stats {
	uint64_t csum_verified_bytes;	/* read and checked */
	uint64_t csum_unverified_bytes; /* read from blocks without a sum */
	uint64_t csum_mismatches;	/* blocks that failed a check */
	uint64_t csum_retry_ok;		/* ... and passed when read again */
	uint64_t csum_errors;		/* ... and failed again: -EIO */
};
/* Fills @out (zeroes for a NULL @c). */
void djmfs_client_stats(struct djmfs_client *c,
			struct djmfs_client_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* DJMFS_H */
