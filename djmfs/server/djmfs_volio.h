/*
 * Volume-side helpers that djmfs_store.h does not carry: whole-buffer
 * positioned I/O shared by the volume code (superblock, mkfs) and the
 * journal (records, checkpoint slots), which hides EINTR and short
 * transfers so callers see either every byte moved or one -errno
 * (defined in djmfs_volume.c), and the checks mkfs (djmfs_mkfs.c)
 * shares with opening a volume.  Private to the server side of DJMFS.
 */
#ifndef DJMFS_VOLIO_H
#define DJMFS_VOLIO_H

#include <stddef.h>
#include <stdint.h>

#include "djmfs_store.h"

/* Reads @n bytes at @off.  Returns 0, -ENODATA (end of file first), or
 * -errno. */
int djmfs__pread_full(int fd, void *p, size_t n, uint64_t off);
/* Writes @n bytes at @off.  Returns 0 or -errno. */
int djmfs__pwrite_full(int fd, const void *p, size_t n, uint64_t off);
/* fdatasync() retried on EINTR.  Returns 0 or -errno. */
int djmfs__datasync(int fd);

/* Nonzero when @p (@n bytes) has a superblock's magic and CRC: it was
 * written as one, whether or not its geometry holds. */
int djmfs__sb_raw_valid(const uint8_t *p, size_t n);
/* Nonzero when @au is a power of two in [64 KiB, 64 MiB]. */
int djmfs__au_size_ok(uint64_t au);
/* Bytes a regular file or block device holds.  Returns 0, -ENOTBLK (some
 * other kind of file), or -errno. */
int djmfs__vol_fd_size(int fd, uint64_t *size, int *is_blk);
/* flock(LOCK_EX|LOCK_NB), logged.  Returns 0, -EBUSY (held by another
 * server or fsck), or -errno. */
int djmfs__vol_lock(int fd, const char *path, const struct djmfs_log *log);

#endif /* DJMFS_VOLIO_H */
