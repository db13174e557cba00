/*
 * Time for streamd: the monotonic clock every duration and deadline is
 * measured on, the wall clock every recording is stamped with, and
 * the text forms players use to name a moment of a recording — seconds
 * behind live ("-30"), seconds from the start ("120", "12.5"), or an
 * ISO-8601 date-time.  Everything is parsed by hand into integer
 * nanoseconds: no floating point (so "0.1" is exactly 100 ms and NaN or
 * inf cannot sneak in), no locale, no timezone database, and calendar
 * arithmetic of our own (days from a civil date and back), so a query
 * string always means the same instant on every host.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "streamd-int.h"

/* Longest magnitude a relative time or a duration may have: 10 years of
 * 365.25 days.  Far beyond any recording, and it keeps every sum with a
 * wall time well inside int64_t. */
#define SD_TIME_MAX_S (10LL * 36525 * 864)
#define SD_TIME_MAX_NS (SD_TIME_MAX_S * SD_NS)

int64_t sd_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * SD_NS + ts.tv_nsec;
}

uint64_t sd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Reads exactly @n digits at *p into *v and advances.  0 or -EINVAL.
 */
static int take_digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return -EINVAL;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

/*
 * Reads ".ddd" (1 to 9 digits) at *p as nanoseconds, if there is a '.'.
 * More than 9 digits would be below a nanosecond: refused rather than
 * silently rounded, so the parsed value is always exact.
 */
static int take_fraction(const char **p, int64_t *ns)
{
	const char *s = *p;
	int64_t v = 0;
	int n = 0;

	*ns = 0;
	if (*s != '.')
		return 0;
	for (s++; is_digit(*s); s++, n++) {
		if (n == 9)
			return -EINVAL;
		v = v * 10 + (*s - '0');
	}
	if (n == 0)
		return -EINVAL;
	for (int i = n; i < 9; i++)
		v *= 10;
	*p = s;
	*ns = v;
	return 0;
}

/*
 * Plain decimal seconds without a sign: digits, optionally '.' and 1 to 9
 * digits.  No exponent, no hex, no spaces: a query parameter either is a
 * number of seconds or it is refused.  0 or -EINVAL (also above
 * SD_TIME_MAX_S).
 */
static int parse_seconds(const char *s, int64_t *ns_out)
{
	int64_t sec = 0, frac;

	if (!is_digit(*s))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		sec = sec * 10 + (*s - '0');
		if (sec > SD_TIME_MAX_S)
			return -EINVAL;
	}
	if (take_fraction(&s, &frac) < 0 || *s != '\0')
		return -EINVAL;
	if (sec * SD_NS + frac > SD_TIME_MAX_NS)
		return -EINVAL;
	*ns_out = sec * SD_NS + frac;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Calendar                                                            */
/* ------------------------------------------------------------------ */

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31 };

	return mdays[m - 1] + (m == 2 && is_leap(y));
}

/*
 * Days from 1970-01-01 to y-m-d (proleptic Gregorian).  The year is
 * taken to start on 1 March so that the leap day is the last day of a
 * year; whole 400-year cycles (146097 days) keep the divisions exact for
 * years before the epoch.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t cycle, yc, doy;

	if (m <= 2)
		y--;
	cycle = (y >= 0 ? y : y - 399) / 400;
	yc = y - cycle * 400;			    /* [0, 399] */
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* from 1 Mar */
	/* 1970-03-01 is day 719468 after 0000-03-01 */
	return cycle * 146097 + yc * 365 + yc / 4 - yc / 100 + doy - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t cycle = (z >= 0 ? z : z - 146096) / 146097;
	int64_t dc = z - cycle * 146097;	/* [0, 146096] */
	int64_t yc = (dc - dc / 1460 + dc / 36524 - dc / 146096) / 365;
	int64_t doy = dc - (365 * yc + yc / 4 - yc / 100);
	int64_t mp = (5 * doy + 2) / 153;	/* 0 = March */

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yc + cycle * 400 + (*m <= 2);
}

/* ------------------------------------------------------------------ */
/* ISO-8601                                                            */
/* ------------------------------------------------------------------ */

struct sd_civil {
	int y, mo, d, h, mi, s;
	int64_t frac_ns;
	int off_min; /* east of UTC */
};

/* "YYYY-MM-DD" then 'T', 't' or ' ' then "HH:MM[:SS[.f]]". */
static int take_date_time(const char **p, struct sd_civil *c)
{
	const char *s = *p;

	if (take_digits(&s, 4, &c->y) < 0 || *s++ != '-' ||
	    take_digits(&s, 2, &c->mo) < 0 || *s++ != '-' ||
	    take_digits(&s, 2, &c->d) < 0)
		return -EINVAL;
	if (*s != 'T' && *s != 't' && *s != ' ')
		return -EINVAL;
	s++;
	if (take_digits(&s, 2, &c->h) < 0 || *s++ != ':' ||
	    take_digits(&s, 2, &c->mi) < 0)
		return -EINVAL;
	c->s = 0;
	c->frac_ns = 0;
	if (*s == ':') {
		s++;
		if (take_digits(&s, 2, &c->s) < 0 ||
		    take_fraction(&s, &c->frac_ns) < 0)
			return -EINVAL;
	}
	*p = s;
	return 0;
}

/* "", "Z", "z", "+HH:MM", "-HH:MM", "+HHMM" or "-HHMM", then the end. */
static int take_offset(const char *s, int *off_min)
{
	int sign, h, m;

	*off_min = 0;
	if (*s == '\0')
		return 0;
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return 0;
	if (*s != '+' && *s != '-')
		return -EINVAL;
	sign = *s++ == '-' ? -1 : 1;
	if (take_digits(&s, 2, &h) < 0)
		return -EINVAL;
	if (*s == ':')
		s++;
	if (take_digits(&s, 2, &m) < 0 || *s != '\0' || h > 23 || m > 59)
		return -EINVAL;
	*off_min = sign * (h * 60 + m);
	return 0;
}

static int civil_valid(const struct sd_civil *c)
{
	return c->mo >= 1 && c->mo <= 12 && c->d >= 1 &&
	       c->d <= days_in_month(c->y, c->mo) && c->h <= 23 &&
	       c->mi <= 59 && c->s <= 59;
}

int sd_time_parse_iso8601(const char *s, int64_t *ns_out)
{
	struct sd_civil c;
	int64_t secs, ns;

	if (s == NULL || take_date_time(&s, &c) < 0 ||
	    take_offset(s, &c.off_min) < 0 || !civil_valid(&c))
		return -EINVAL;
	secs = days_from_civil(c.y, c.mo, c.d) * 86400 + c.h * 3600 +
	       c.mi * 60 + c.s - (int64_t)c.off_min * 60;
	/* years 0000..9999 fit in seconds; nanoseconds only 1677..2262 */
	if (__builtin_mul_overflow(secs, SD_NS, &ns) ||
	    __builtin_add_overflow(ns, c.frac_ns, &ns))
		return -EINVAL;
	*ns_out = ns;
	return 0;
}

int sd_time_format_iso8601(int64_t ns, char *buf, size_t len)
{
	/* floor division, so instants before 1970 print their real date */
	int64_t secs = ns / SD_NS, rem = ns % SD_NS, days, sod, y;
	int m, d;

	if (rem < 0) {
		rem += SD_NS;
		secs--;
	}
	days = secs / 86400;
	sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	return snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
			(long long)y, m, d, (int)(sod / 3600),
			(int)(sod / 60 % 60), (int)(sod % 60),
			(int)(rem / 1000000));
}

/* ------------------------------------------------------------------ */
/* Start positions and durations                                      */
/* ------------------------------------------------------------------ */

/* Digits and at most one '.': a plain number, not a date. */
static int looks_numeric(const char *s)
{
	for (; *s; s++)
		if (!is_digit(*s) && *s != '.')
			return 0;
	return 1;
}

int sd_time_parse_start(const char *s, struct sd_start *out)
{
	int64_t ns;

	if (s == NULL || *s == '\0') {
		*out = (struct sd_start){ SD_START_NONE, 0 };
		return 0;
	}
	if (*s == '-') {
		if (parse_seconds(s + 1, &ns) < 0)
			return -EINVAL;
		*out = (struct sd_start){ SD_START_BEHIND_LIVE, -ns };
		return 0;
	}
	if (looks_numeric(s)) {
		if (parse_seconds(s, &ns) < 0)
			return -EINVAL;
		*out = (struct sd_start){ SD_START_FROM_BEGIN, ns };
		return 0;
	}
	if (sd_time_parse_iso8601(s, &ns) < 0)
		return -EINVAL;
	*out = (struct sd_start){ SD_START_WALL, ns };
	return 0;
}

int sd_time_parse_duration(const char *s, int64_t *ns_out)
{
	int64_t ns;

	if (s == NULL || parse_seconds(s, &ns) < 0 || ns == 0)
		return -EINVAL;
	*ns_out = ns;
	return 0;
}

/* a + b, held at the ends of int64_t instead of wrapping. */
static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int64_t sd_time_resolve(const struct sd_start *s, int64_t start_ns,
			int64_t live_ns)
{
	switch (s->kind) {
	case SD_START_BEHIND_LIVE:
		return add_sat(live_ns, s->ns);
	case SD_START_FROM_BEGIN:
		return add_sat(start_ns, s->ns);
	case SD_START_WALL:
		return s->ns;
	case SD_START_NONE:
	default:
		return live_ns;
	}
}
