/*
 * Tests for sd_time.c: every form a start position, a duration and an
 * ISO-8601 date-time may take, the inputs they refuse, the calendar
 * against the C library's timegm() over random instants, the formatter's
 * round trip through the parser, and resolving each kind of start.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "streamd-int.h"

#define S(x) ((int64_t)(x) * SD_NS)
#define TEN_YEARS_S 315576000LL

static struct sd_start start_of(const char *s)
{
	struct sd_start st = { .kind = 99, .ns = 12345 };

	cr_assert_eq(sd_time_parse_start(s, &st), 0, "parse_start(\"%s\")", s);
	return st;
}

static int64_t iso(const char *s)
{
	int64_t ns = 0;

	cr_assert_eq(sd_time_parse_iso8601(s, &ns), 0, "iso(\"%s\")", s);
	return ns;
}

Test(time, wall_clock_is_the_realtime_clock)
{
	int64_t now = sd_wall_now();
	time_t t = time(NULL);

	cr_assert_lt(llabs(now / SD_NS - (int64_t)t), 2);
}

Test(time, empty_or_missing_start_means_none)
{
	cr_assert_eq(start_of(NULL).kind, SD_START_NONE);
	cr_assert_eq(start_of("").kind, SD_START_NONE);
}

Test(time, negative_seconds_are_behind_live)
{
	struct sd_start st = start_of("-30");

	cr_assert_eq(st.kind, SD_START_BEHIND_LIVE);
	cr_assert_eq(st.ns, -S(30));
	st = start_of("-2.5");
	cr_assert_eq(st.kind, SD_START_BEHIND_LIVE);
	cr_assert_eq(st.ns, -2500000000LL);
	st = start_of("-0");
	cr_assert_eq(st.kind, SD_START_BEHIND_LIVE);
	cr_assert_eq(st.ns, 0);
	st = start_of("-0.000000001");
	cr_assert_eq(st.ns, -1);
}

Test(time, plain_seconds_count_from_the_start)
{
	struct sd_start st = start_of("120");

	cr_assert_eq(st.kind, SD_START_FROM_BEGIN);
	cr_assert_eq(st.ns, S(120));
	st = start_of("0");
	cr_assert_eq(st.kind, SD_START_FROM_BEGIN);
	cr_assert_eq(st.ns, 0);
	cr_assert_eq(start_of("12.5").ns, 12500000000LL);
	cr_assert_eq(start_of("0.1").ns, 100000000LL);
	cr_assert_eq(start_of("007").ns, S(7));
	cr_assert_eq(start_of("1.123456789").ns, 1123456789LL);
	cr_assert_eq(start_of("315576000").ns, S(TEN_YEARS_S));
	cr_assert_eq(start_of("-315576000").ns, -S(TEN_YEARS_S));
}

Test(time, iso_start_is_a_wall_time)
{
	struct sd_start st = start_of("2026-11-21T10:00:00.250+01:00");

	cr_assert_eq(st.kind, SD_START_WALL);
	cr_assert_eq(st.ns, S(1795251600) + 250000000);
}

Test(time, refuses_anything_else_as_a_start)
{
	static const char *bad[] = {
		"-", "+5", "+0", "--5", "1e3", "1E3", "-1e3", "nan", "NaN",
		"inf", "-inf", "infinity", "0x10", "5x", " 5", "5 ", "-5 ",
		"5.", ".5", "-.5", "1.2.3", "1.0000000001", "315576000.5",
		"315576001", "-315576001", "99999999999999999999999",
		"now", "2026-11-21", "2026-11-21T10", "T10:00:00",
		"2026-11-21T10:00:00Zjunk", "5\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sd_start st = { .kind = 99 };

		cr_assert_eq(sd_time_parse_start(bad[i], &st), -EINVAL,
			     "accepted \"%s\"", bad[i]);
	}
}

Test(time, iso_accepts_separators_fractions_and_offsets)
{
	int64_t base = S(1795251600); /* 2026-11-21T09:00:00Z */

	cr_assert_eq(iso("2026-11-21T09:00:00Z"), base);
	cr_assert_eq(iso("2026-11-21T09:00:00z"), base);
	cr_assert_eq(iso("2026-11-21t09:00:00Z"), base);
	cr_assert_eq(iso("2026-11-21 09:00:00Z"), base);
	cr_assert_eq(iso("2026-11-21T09:00:00"), base);
	cr_assert_eq(iso("2026-11-21T09:00Z"), base);
	cr_assert_eq(iso("2026-11-21T10:00:00+01:00"), base);
	cr_assert_eq(iso("2026-11-21T10:00:00+0100"), base);
	cr_assert_eq(iso("2026-11-21T03:30:00-05:30"), base);
	cr_assert_eq(iso("2026-11-21T09:00:00+00:00"), base);
	cr_assert_eq(iso("2026-11-21T09:00:00-0000"), base);
	cr_assert_eq(iso("2026-11-21T09:00:00.5Z"), base + 500000000);
	cr_assert_eq(iso("2026-11-21T09:00:00.000000001Z"), base + 1);
	cr_assert_eq(iso("2026-11-21T09:00:00.123456789Z"), base + 123456789);
	cr_assert_eq(iso("2026-11-22T08:59:00+23:59"), base);
}

Test(time, iso_knows_the_calendar)
{
	cr_assert_eq(iso("1970-01-01T00:00:00Z"), 0);
	cr_assert_eq(iso("1969-12-31T23:59:59Z"), -S(1));
	cr_assert_eq(iso("2000-01-01T00:00:00Z"), S(946684800));
	cr_assert_eq(iso("2024-02-29T12:34:56Z"), S(1709210096));
	cr_assert_eq(iso("2000-02-29T00:00:00Z"), S(951782400));
	cr_assert_eq(iso("2026-12-31T23:59:59Z"), S(1798761599));
	cr_assert_eq(iso("2262-04-11T23:47:16Z"), S(9223372036LL));
}

Test(time, iso_refuses_impossible_dates_and_bad_text)
{
	static const char *bad[] = {
		"2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
		"2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z", "2026-01-01T24:00:00Z",
		"2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z",
		"2026-01-01T10:00:00+24:00", "2026-01-01T10:00:00+01:60",
		"2026-01-01T10:00:00+01", "2026-01-01T10:00:00+1:00",
		"2026-01-01T10:00:00.Z", "2026-01-01T10:00:00.1234567890Z",
		"2026-01-01T10:00:00ZZ", "2026-01-01T10:00:00 Z",
		"2026-01-01X10:00:00Z", "2026-1-01T10:00:00Z",
		"26-01-01T10:00:00Z", "2026-01-01T1:00:00Z",
		"2026-01-01T10:00:0Z", "2026-01-01", "", "Z",
		"2263-01-01T00:00:00Z", "1677-01-01T00:00:00Z",
		"0000-01-01T00:00:00Z", "2026-01-01T10:00:00+01:00junk",
	};
	int64_t ns;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sd_time_parse_iso8601(bad[i], &ns), -EINVAL,
			     "accepted \"%s\"", bad[i]);
	cr_assert_eq(sd_time_parse_iso8601(NULL, &ns), -EINVAL);
}

Test(time, iso_agrees_with_timegm)
{
	unsigned seed = 42;

	for (int i = 0; i < 20000; i++) {
		/* 1900 .. 2199: both sides of the epoch and of 2000 */
		int64_t secs = (int64_t)(rand_r(&seed) % 9467) * 1000000 +
			       rand_r(&seed) % 1000000 - 2208988800LL;
		time_t tt = (time_t)secs;
		struct tm tm;
		char text[64];

		gmtime_r(&tt, &tm);
		strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cr_assert_eq(iso(text), S(secs), "%s", text);
		cr_assert_eq((int64_t)timegm(&tm), secs);
	}
}

Test(time, formats_utc_with_milliseconds)
{
	char buf[32];

	cr_assert_eq(sd_time_format_iso8601(0, buf, sizeof(buf)), 24);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	sd_time_format_iso8601(S(1795251600) + 250999999, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2026-11-21T09:00:00.250Z");
	sd_time_format_iso8601(-1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
	sd_time_format_iso8601(S(951782400) - 1000000, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2000-02-28T23:59:59.999Z");
	sd_time_format_iso8601(INT64_MAX, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2262-04-11T23:47:16.854Z");
	sd_time_format_iso8601(INT64_MIN, buf, sizeof(buf));
	cr_assert_str_eq(buf, "1677-09-21T00:12:43.145Z");
	/* like snprintf: the full length, truncated text */
	cr_assert_eq(sd_time_format_iso8601(0, buf, 5), 24);
	cr_assert_str_eq(buf, "1970");
}

Test(time, format_then_parse_gives_the_millisecond_back)
{
	unsigned seed = 7;

	for (int i = 0; i < 20000; i++) {
		int64_t ns = (int64_t)(((uint64_t)rand_r(&seed) << 42) ^
				       ((uint64_t)rand_r(&seed) << 21) ^
				       (uint64_t)rand_r(&seed));
		int64_t ms;
		char buf[32];

		ns %= S(4000000000LL); /* 1843 .. 2096 */
		ms = ns / 1000000 - (ns % 1000000 < 0);
		sd_time_format_iso8601(ns, buf, sizeof(buf));
		cr_assert_eq(iso(buf), ms * 1000000, "%lld -> %s",
			     (long long)ns, buf);
	}
}

Test(time, durations_are_positive_plain_seconds)
{
	int64_t ns = 0;

	cr_assert_eq(sd_time_parse_duration("5", &ns), 0);
	cr_assert_eq(ns, S(5));
	cr_assert_eq(sd_time_parse_duration("2.5", &ns), 0);
	cr_assert_eq(ns, 2500000000LL);
	cr_assert_eq(sd_time_parse_duration("0.001", &ns), 0);
	cr_assert_eq(ns, 1000000);
	cr_assert_eq(sd_time_parse_duration("315576000", &ns), 0);
	cr_assert_eq(ns, S(TEN_YEARS_S));

	static const char *bad[] = {
		"0", "0.0", "-5", "+5", "", "1e3", "nan", "inf", "5s", " 5",
		"315576000.000000001", "2026-11-21T10:00:00Z", "5.",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sd_time_parse_duration(bad[i], &ns), -EINVAL,
			     "accepted \"%s\"", bad[i]);
	cr_assert_eq(sd_time_parse_duration(NULL, &ns), -EINVAL);
}

Test(time, resolves_each_kind_of_start)
{
	int64_t start = S(1000), live = S(5000);
	struct sd_start none = { SD_START_NONE, 0 };
	struct sd_start behind = { SD_START_BEHIND_LIVE, -S(30) };
	struct sd_start begin = { SD_START_FROM_BEGIN, S(120) };
	struct sd_start wall = { SD_START_WALL, S(1234) };
	struct sd_start far = { SD_START_FROM_BEGIN, S(TEN_YEARS_S) };

	cr_assert_eq(sd_time_resolve(&none, start, live), live);
	cr_assert_eq(sd_time_resolve(&behind, start, live), S(4970));
	cr_assert_eq(sd_time_resolve(&begin, start, live), S(1120));
	cr_assert_eq(sd_time_resolve(&wall, start, live), S(1234));
	/* held at the end of the range rather than wrapping */
	cr_assert_eq(sd_time_resolve(&far, INT64_MAX - 5, live), INT64_MAX);
	behind.ns = -S(TEN_YEARS_S);
	cr_assert_eq(sd_time_resolve(&behind, start, INT64_MIN + 5),
		     INT64_MIN);
}
