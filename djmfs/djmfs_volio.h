/*
 * Volume-side helpers that djmfs-int.h does not carry: whole-buffer
 * positioned I/O shared by the volume code (superblock, mkfs) and the
 * journal (records, checkpoint slots), which hides EINTR and short
 * transfers so callers see either every byte moved or one -errno
 * (defined in djmfs_volume.c), and a checkpoint load that can log
 * (djmfs_journal.c).  Private to the server side of DJMFS.
 */
#ifndef DJMFS_VOLIO_H
#define DJMFS_VOLIO_H

#include <stddef.h>
#include <stdint.h>

#include "djmfs-int.h"

/* Reads @n bytes at @off.  Returns 0, -ENODATA (end of file first), or
 * -errno. */
int djmfs__pread_full(int fd, void *p, size_t n, uint64_t off);
/* Writes @n bytes at @off.  Returns 0 or -errno. */
int djmfs__pwrite_full(int fd, const void *p, size_t n, uint64_t off);
/* fdatasync() retried on EINTR.  Returns 0 or -errno. */
int djmfs__datasync(int fd);

#endif /* DJMFS_VOLIO_H */
