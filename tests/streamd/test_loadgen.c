/*
 * Unit tests of loadgen's response heads as the load tools read them:
 * Retry-After is what tells a refusal by admission control (503 with the
 * header) from an error (503 without it), so both of its forms (delta
 * seconds and an HTTP-date, one in the past being "now") must parse, and
 * anything else must read as absent; and the fields parsed beside it
 * stay as they were.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

static struct lg_head parse(const char *text)
{
	struct lg_head h;

	memset(&h, 0x5a, sizeof(h));
	cr_assert_eq(lg_head_parse(text, strlen(text), &h), 1, "%s", text);
	return h;
}

Test(head, retry_after_seconds)
{
	struct lg_head h = parse("HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: application/json\r\n"
				 "Retry-After: 7\r\nContent-Length: 40\r\n\r\n");

	cr_assert_eq(h.status, 503);
	cr_assert_float_eq(h.retry_after, 7.0, 1e-9);
	cr_assert_eq(h.content_length, 40);
	h = parse("HTTP/1.1 503 x\r\nretry-after:   0\r\n\r\n");
	cr_assert_float_eq(h.retry_after, 0.0, 1e-9);
}

Test(head, retry_after_absent_or_unreadable)
{
	static const char *const heads[] = {
		"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 x\r\nRetry-After: soon\r\n\r\n",
		"HTTP/1.1 503 x\r\nRetry-After: -5\r\n\r\n",
		"HTTP/1.1 503 x\r\nRetry-After:\r\n\r\n",
		"HTTP/1.1 503 x\r\nRetry-After: Sun, 06 Nov 1994 08:49:37\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		struct lg_head h = parse(heads[i]);

		cr_assert_lt(h.retry_after, 0, "%s", heads[i]);
	}
}

Test(head, retry_after_http_date)
{
	char text[256], date[64];
	time_t later = time(NULL) + 120;
	struct tm tm;
	struct lg_head h;

	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(text, sizeof(text), "HTTP/1.1 503 x\r\nRetry-After: %s\r\n"
		 "\r\n", date);
	h = parse(text);
	cr_assert(h.retry_after > 110 && h.retry_after <= 120, "%s: %g", date,
		  h.retry_after);
	h = parse("HTTP/1.1 503 x\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 "
		  "GMT\r\n\r\n");
	cr_assert_float_eq(h.retry_after, 0.0, 1e-9, "a past date is now");
}

Test(head, other_fields_unchanged)
{
	struct lg_head h = parse("HTTP/1.1 206 Partial Content\r\n"
				 "Content-Range: bytes 100-199/1000\r\n"
				 "X-Streamd-Offset: 4096\r\n"
				 "Content-Length: 100\r\n\r\n");

	cr_assert_eq(h.status, 206);
	cr_assert_eq(h.range_start, 100);
	cr_assert_eq(h.offset, 4096);
	cr_assert_eq(h.content_length, 100);
	cr_assert_not(h.chunked);
	cr_assert_lt(h.retry_after, 0);
}
