/*
 * Tests for the Range header parser (sd_range.c): absolute, open and
 * suffix ranges with their clipping, what is ignored (so the whole body
 * goes out with 200) and what is unsatisfiable (416), per RFC 9110.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "streamd-int.h"

static int parse(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
	*a = *b = 12345;
	return sd_range_parse(h, size, a, b);
}

Test(range, takes_absolute_open_and_suffix_ranges)
{
	uint64_t a, b;

	cr_assert_eq(parse("bytes=0-0", 1000, &a, &b), 1);
	cr_assert(a == 0 && b == 0);
	cr_assert_eq(parse("bytes=100-1099", 5000, &a, &b), 1);
	cr_assert(a == 100 && b == 1099);
	cr_assert_eq(parse("bytes=1000-", 5000, &a, &b), 1);
	cr_assert(a == 1000 && b == 4999);
	cr_assert_eq(parse("bytes=-500", 5000, &a, &b), 1);
	cr_assert(a == 4500 && b == 4999);
	cr_assert_eq(parse("bytes= 7-8", 10, &a, &b), 1);
	cr_assert(a == 7 && b == 8);
	/* The unit is case-insensitive (RFC 9110, 14.1). */
	cr_assert_eq(parse("Bytes=1-2", 10, &a, &b), 1);
	cr_assert(a == 1 && b == 2);
}

Test(range, clips_to_the_size)
{
	uint64_t a, b;

	cr_assert_eq(parse("bytes=990-5000", 1000, &a, &b), 1);
	cr_assert(a == 990 && b == 999);
	cr_assert_eq(parse("bytes=-5000", 1000, &a, &b), 1);
	cr_assert(a == 0 && b == 999);
	cr_assert_eq(parse("bytes=0-18446744073709551615", 10, &a, &b), 1);
	cr_assert(a == 0 && b == 9);
}

Test(range, ignores_what_it_may_ignore)
{
	static const char *const bad[] = {
		"bytes=abc", "bytes=5-2", "bytes=--1", "items=0-10",
		"bytes=0-1,5-6", "bytes=", "bytes=1", "bytes=-", "bytes=1-2x",
		"bytes=-5x", "bytes=1 -2",
	};
	uint64_t a, b;

	cr_assert_eq(parse(NULL, 100, &a, &b), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i], 100, &a, &b), 0, "%s", bad[i]);
}

Test(range, refuses_what_cannot_be_satisfied)
{
	uint64_t a, b;

	cr_assert_eq(parse("bytes=100-", 100, &a, &b), -1);
	cr_assert_eq(parse("bytes=200-300", 100, &a, &b), -1);
	cr_assert_eq(parse("bytes=-0", 100, &a, &b), -1);
	cr_assert_eq(parse("bytes=0-", 0, &a, &b), -1);
	cr_assert_eq(parse("bytes=-10", 0, &a, &b), -1);
	/* Nothing is written on a refusal. */
	cr_assert(a == 12345 && b == 12345);
}
