/*
 * The Range header of a request for a recording's raw bytes (RFC 9110,
 * section 14): one "bytes=" range, absolute or a suffix, against the
 * published size.  Anything the server may ignore (another unit, several
 * ranges, bad syntax) is reported as such, so the caller answers 200 with
 * the whole body; only a well-formed range that starts past the end is
 * unsatisfiable (416).  Kept apart from the HTTP route so the parser can
 * be tested and fuzzed on its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "streamd-int.h"

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

int sd_range_parse(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
	char *end;
	unsigned long long x, y;

	if (!h || strncasecmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	h += 6;
	while (*h == ' ')
		h++;
	if (*h == '-') { /* suffix: the last N bytes */
		if (!digit(h[1]))
			return 0;
		y = strtoull(h + 1, &end, 10);
		if (*end != '\0')
			return 0;
		if (y == 0 || size == 0)
			return -1;
		*a = y >= size ? 0 : size - y;
		*b = size - 1;
		return 1;
	}
	if (!digit(*h))
		return 0;
	x = strtoull(h, &end, 10);
	if (*end != '-')
		return 0;
	h = end + 1;
	y = UINT64_MAX;
	if (*h) {
		if (!digit(*h))
			return 0;
		y = strtoull(h, &end, 10);
		if (*end != '\0' || y < x)
			return 0;
	}
	if (x >= size)
		return -1;
	*a = x;
	*b = y >= size ? size - 1 : y;
	return 1;
}
