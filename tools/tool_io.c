/*
 * tool_write_all: the write loop every tool needs once, kept here so a
 * short write or an interrupted call is handled the same way everywhere.
 */
#include "tool_io.h"

#include <errno.h>
#include <unistd.h>

int tool_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
