/*
 * Reading a whole input file into memory, for the streamd suites that
 * feed recorded uploads to a module in chunks of their choosing.  Any
 * failure fails the test that asked.  Include after criterion.h.
 */
#ifndef SD_TEST_FILE_H
#define SD_TEST_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* @path's bytes, malloc'ed (never NULL, even when empty); *@len their
 * count. */
static inline uint8_t *sd_test_load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0, "%s", path);
	n = ftell(f);
	cr_assert_geq(n, 0, "%s", path);
	rewind(f);
	buf = malloc(n ? (size_t)n : 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "%s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

#endif
