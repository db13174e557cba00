/*
 * Whole writes for the tools: a profile, a dump or a copy to stdout must
 * reach the descriptor entirely or fail with a reason, whatever short
 * writes and signals happen on the way.
 */
#ifndef TOOL_IO_H
#define TOOL_IO_H

#include <stddef.h>

/* Writes all @n bytes of @p to @fd, retrying short writes and EINTR.
 * Returns 0, or -errno of the write that failed. */
int tool_write_all(int fd, const void *p, size_t n);

#endif
