/*
 * The DJMFS metadata and lock server as a library, so that djmfsd and an
 * embedding daemon (streamd's single-host default) run the same code.
 *
 * Booting opens the volume exclusively (an advisory lock keeps a second
 * server and an offline fsck away), loads the newest checkpoint, replays
 * the journal, reclaims allocation units that no map holds, writes a fresh
 * checkpoint and logs what it found.  Then it serves clients on a Unix
 * socket and/or TCP until stopped.  When the host file system under a
 * volume file has no room at boot, the server comes up read-only (a WARN
 * line says so): it serves reads, snapshots and stat of what the volume
 * holds, writes nothing, and refuses with -EROFS whatever would write,
 * until it is restarted.
 *
 * Thread-safety: djmfs_server_run() drives the server on the calling
 * thread; djmfs_server_stop() may be called from any thread or a signal
 * handler.  Everything else belongs to the thread that created the handle.
 */
#ifndef DJMFS_SERVER_H
#define DJMFS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "djmfs.h"

#ifdef __cplusplus
extern "C" {
#endif

struct djmfs_server;

#define DJMFS_SERVER_NO_BATCH UINT32_MAX

struct djmfs_server_opts {
	const char *volume;	   /* required: file or block device */
	const char *unix_path;	   /* Unix socket to listen on, or NULL */
	const char *tcp_addr;	   /* "host:port" to listen on, or NULL */
	uint32_t lease_ms;	   /* 0: 10000 */
	uint32_t snap_lock_max_ms; /* cap on LOCK_SNAP timeouts; 0: 60000 */
	uint32_t prefetch_aus;	   /* free units kept ready; 0: 1024 */
	uint32_t reserve_max_aus;  /* cap on one reservation; 0: 256 */
	/* Batching window in microseconds: under load (a pass or a journal
	 * round that found two requests or more), the loop handles
	 * everything that arrived within one window in a single pass, and
	 * the journal syncs at most once per window.  Trades up to about two
	 * windows of latency for far fewer wake-ups and fdatasyncs; a lone
	 * client calling one request after another never waits.  0: 10000;
	 * DJMFS_SERVER_NO_BATCH turns it off. */
	uint32_t batch_us;
	struct djmfs_log log;
	/* The volume's shared secret (copied), 1 to DJMFS_SECRET_MAX bytes.
	 * Set: every client must prove it knows it before any operation (a
	 * CHALLENGE, then a HELLO with its proof), and the server proves it
	 * back; anything else is answered -EACCES, logged with the peer and
	 * counted, and the connection closed.  NULL: clients are not asked
	 * (protect the socket by its directory's permissions instead). */
	const void *secret;
	size_t secret_len;
	unsigned flags;		   /* DJMFS_SERVER_* below */
	/* A format 1 volume (one copy of the metadata): DJMFS_UPGRADE_AUTO
	 * (0) upgrades it at a writable start, logged at WARN, when no data
	 * has to move (else it is served as it is, logged);
	 * DJMFS_UPGRADE_REFUSE refuses to start (-EPROTO, "run djmfs
	 * upgrade"); DJMFS_UPGRADE_KEEP serves it as format 1, readable by
	 * the previous release. */
	unsigned upgrade;
};

/* Boot past metadata damage instead of refusing: the journal records
 * after a damaged one (or after a checkpoint that is not the newest)
 * are applied where they still fit, and what could not be is logged at
 * ERROR.  The new checkpoint then makes that loss permanent: the
 * operator's explicit choice, as `djmfs fsck --repair` offline. */
#define DJMFS_SERVER_SALVAGE 0x1u

#define DJMFS_UPGRADE_AUTO 0u
#define DJMFS_UPGRADE_REFUSE 1u
#define DJMFS_UPGRADE_KEEP 2u

/*
 * Boots the server (see above) and binds its sockets.  At least one of
 * unix_path and tcp_addr must be set.  @opts is copied.  Returns 0,
 * -EBUSY (another process holds the volume), -EUCLEAN (not a DJMFS volume,
 * a damaged superblock, or metadata damage that would lose acknowledged
 * records: see DJMFS_SERVER_SALVAGE; a log line says why), -EADDRINUSE, or -errno.
 */
int djmfs_server_new(struct djmfs_server **out,
		     const struct djmfs_server_opts *opts);

/* Serves until djmfs_server_stop().  Returns 0 or -errno. */
int djmfs_server_run(struct djmfs_server *s);

/* Async-signal-safe; makes djmfs_server_run() return after it has made
 * every acknowledged mutation durable. */
void djmfs_server_stop(struct djmfs_server *s);

/* TCP port actually bound (useful with port 0), or 0. */
uint16_t djmfs_server_tcp_port(const struct djmfs_server *s);

/* 1 when the server booted read-only (its host file system was full),
 * else 0.  Fixed once djmfs_server_new() returned; any thread. */
int djmfs_server_read_only(const struct djmfs_server *s);

/* Shared-secret handshakes since djmfs_server_new(); any thread. */
struct djmfs_server_auth_stats {
	uint64_t accepted; /* clients that proved the secret */
	uint64_t refused;  /* connections closed for a missing or wrong
			      proof, or an operation before it */
};
void djmfs_server_auth_stats(const struct djmfs_server *s,
			     struct djmfs_server_auth_stats *out);

/* Flushes the journal, writes a checkpoint and frees.  NULL is a no-op. */
void djmfs_server_free(struct djmfs_server *s);

/* djmfs_mkfs() flags. */
#define DJMFS_MKFS_FORCE 0x1u /* overwrite an existing DJMFS volume */
/* Regular files: have the file system allocate the whole volume now
 * (fallocate), so first writes into the data area do not allocate blocks
 * (and journal the file system's metadata) while streams are recording. */
#define DJMFS_MKFS_PREALLOCATE 0x2u
/* Tests of the upgrade: the previous volume format (1), whose metadata
 * has one copy. */
#define DJMFS_MKFS_FORMAT1 0x4u

/*
 * Formats @path as a DJMFS volume of @size bytes (a regular file is
 * created sparse unless DJMFS_MKFS_PREALLOCATE, or grown to @size; a
 * block device keeps its own size when @size is 0).  @au_size: bytes per
 * allocation unit, a power of two from 64 KiB to 64 MiB (0: 1 MiB).
 * Refuses a path that already holds a DJMFS volume unless
 * DJMFS_MKFS_FORCE.  Returns 0, -EEXIST, -EINVAL, -ENOSPC (too small for
 * the metadata areas, or no room to preallocate), -EOPNOTSUPP (the file
 * system cannot preallocate), or -errno.
 */
int djmfs_mkfs(const char *path, uint64_t size, uint32_t au_size,
	       unsigned flags, const struct djmfs_log *log);

/*
 * Upgrades the format 1 volume @path (offline: -EBUSY while a server or
 * fsck holds it) to format 2: a second copy of the metadata past the
 * volume's end, in a regular file grown for it or the slack of a block
 * device.  Crash-safe at every step (a rerun finishes it).  Returns 0
 * (upgraded, logged at WARN), 1 (already format 2), -ENOSPC (the host
 * file system or the device has no room for the copy; nothing written),
 * -EUCLEAN (not a volume), or -errno.
 */
int djmfs_upgrade(const char *path, const struct djmfs_log *log);

/* What an offline check found in one copy of the metadata. */
enum djmfs_copy_state {
	DJMFS_COPY_NONE = 0, /* the format has no such copy */
	DJMFS_COPY_OK,
	DJMFS_COPY_BLANK,    /* never written */
	DJMFS_COPY_BAD,	     /* unreadable, bad CRC or stale; not rewritten */
	DJMFS_COPY_REPAIRED, /* was bad, rewritten from a good copy */
};

/* Result of an offline check. */
struct djmfs_fsck_report {
	uint64_t files;
	uint64_t bad_files;	/* maps outside the volume, overlapping, or
				   shorter than the size */
	uint64_t quarantined;	/* already marked before this check */
	uint64_t records_replayed;
	uint64_t used_aus;
	uint64_t orphan_aus;	/* reserved in the journal but mapped by none */
	uint64_t free_aus;
	int repaired;		/* --repair wrote a new checkpoint */
	unsigned format;	/* volume format version (1 or 2) */
	uint64_t sb_gen;	/* superblock generation (format 2) */
	int sb_copy[3];		/* enum djmfs_copy_state per superblock copy */
	uint64_t ckpt_gen[2];	/* per checkpoint slot; 0: none valid */
	int ckpt_newest;	/* the slot the check loaded; -1: none */
	int ckpt_copy[2][2];	/* enum djmfs_copy_state, [slot][copy A, B] */
	/* Metadata copies found bad and rewritten from the good copy (not
	 * with -n), and found bad but left. */
	uint64_t repaired_sb, repaired_ckpt, repaired_jrec;
	uint64_t bad_copies;
	/* How the journal ended. */
	unsigned bad_slots;	/* slots no copy of which loads */
	int journal_end;	/* DJMFS_FSCK_JOURNAL_* */
	uint64_t journal_end_off;	/* where replay stopped */
	uint64_t journal_newer_epoch;	/* STALE: the journal's epoch */
	uint64_t lost_records;	/* valid records beyond the damage */
	uint64_t lost_first, lost_last;
	uint64_t dropped_records; /* with repair: seqs given up (the gap,
				     and salvaged records that were refused) */
	int verdict;		/* DJMFS_FSCK_CLEAN, _CORRECTED, _ERRORS */
};

/* How the journal ended (report.journal_end). */
#define DJMFS_FSCK_JOURNAL_END 0	/* nothing after the last record */
#define DJMFS_FSCK_JOURNAL_TORN 1	/* the last group commit was cut */
#define DJMFS_FSCK_JOURNAL_DAMAGED 2	/* valid records follow a bad one */
#define DJMFS_FSCK_JOURNAL_STALE 3	/* the checkpoint is not the newest */

/* report.verdict, valued as e2fsck's exit codes. */
#define DJMFS_FSCK_CLEAN 0	/* nothing found (a torn tail and orphans
				   are a crash's normal leftovers) */
#define DJMFS_FSCK_CORRECTED 1	/* found and repaired */
#define DJMFS_FSCK_ERRORS 4	/* found and left as it was */

/* djmfs_fsck() flags. */
#define DJMFS_FSCK_REPAIR 0x1u	/* quarantine bad files, salvage past
				   damage, write a new checkpoint */
#define DJMFS_FSCK_NO_CHANGE 0x2u /* open read-only: a bad copy of the
				     metadata is reported, not mended */

/*
 * Offline check of a volume no server has open (-EBUSY otherwise): reads
 * the checkpoint, replays the journal and searches the rest of it for
 * records a damaged one hides, checks every file's maps against the
 * volume and each other.  A bad copy of the metadata (superblock,
 * checkpoint slot, journal record) is rewritten from its good copy
 * unless DJMFS_FSCK_NO_CHANGE: an exact repair, reported as corrected
 * (0 is returned, @rep->verdict says DJMFS_FSCK_CORRECTED).  With DJMFS_FSCK_REPAIR, bad files are
 * quarantined, damage is salvaged (the records beyond it applied where
 * they fit, the rest dropped and counted) and a new checkpoint is
 * written (the orphans go back to free space).  Each problem is logged.
 * Returns 0 when clean, -EUCLEAN when problems were found (and, with
 * repair, fixed: @rep->repaired, @rep->verdict), or -errno.
 */
int djmfs_fsck(const char *volume, unsigned flags,
	       struct djmfs_fsck_report *rep, const struct djmfs_log *log);

/* ------------------------------------------------------------------ */
/* Shared-secret files                                                 */
/* ------------------------------------------------------------------ */

#define DJMFS_SECRET_MIN 16	 /* bytes in a secret file, at least */
#define DJMFS_SECRET_MAX 4096	 /* and at most */
#define DJMFS_SECRET_NEW 32	 /* bytes djmfs_secret_create() writes */

/* djmfs_secret_create() flags. */
#define DJMFS_SECRET_FORCE 0x1u /* replace an existing file */

/*
 * Reads the shared secret in @path: its bytes as they are (binary or
 * text; a trailing newline is part of the secret).  Like ssh with a
 * private key, refuses a file that group or others may access, so that a
 * secret left readable is noticed at once.  Fills *out (free it with
 * djmfs_secret_free) and *len.  Returns 0, -EPERM (group or others have
 * access: chmod 600), -EINVAL (not a regular file, or not
 * DJMFS_SECRET_MIN to DJMFS_SECRET_MAX bytes), or -errno; each failure is
 * logged with the path and the reason.
 */
int djmfs_secret_load(const char *path, void **out, size_t *len,
		      const struct djmfs_log *log);

/* Wipes and frees a secret from djmfs_secret_load().  NULL is a no-op. */
void djmfs_secret_free(void *secret, size_t len);

/*
 * Writes a new secret, DJMFS_SECRET_NEW random bytes from getrandom(2),
 * to @path with mode 0600, durably.  Refuses an existing @path unless
 * DJMFS_SECRET_FORCE.  Returns 0, -EEXIST, or -errno (logged); a file
 * that could not be written whole is removed.
 */
int djmfs_secret_create(const char *path, unsigned flags,
			const struct djmfs_log *log);

#ifdef __cplusplus
}
#endif

#endif /* DJMFS_SERVER_H */
