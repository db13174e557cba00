/*
 * The JSON output of the tools and benchmarks, built as jansson values and
 * printed one object per line.  Fields keep the order they are added in;
 * measured figures are rounded to the decimals that mean something for
 * them, so a line carries no noise digits; a figure that is unknown (NaN)
 * or not finite is null, since JSON has neither.
 */
#ifndef TOOL_JSON_H
#define TOOL_JSON_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Significant digits of a real when printed: more than any figure's
 * rounding keeps, fewer than the binary noise a double carries. */
#define TOOL_JSON_DIGITS 15

/* A new reference to @v rounded to @decimals places; null if @v is not
 * finite.  A figure with no decimals (@decimals <= 0) is a whole number
 * and becomes an integer, as its text always read.  Returns NULL only
 * when out of memory. */
json_t *tool_json_real(double v, int decimals);

/* A new reference to @v as an integer, rounded; null if @v is not
 * finite. */
json_t *tool_json_whole(double v);

/* A new reference to @v, or null when @v is NULL. */
json_t *tool_json_string_or_null(const char *v);

/* Sets @key of @o to @v, taking ownership of @v (as json_object_set_new).
 * Returns 0, or -ENOMEM when @v is NULL or the set failed; @v is released
 * either way. */
int tool_json_set(json_t *o, const char *key, json_t *v);

/* Adds to @o: @key as @v (u64; a real past INT64_MAX, which jansson's
 * integers cannot hold), as a rounded real, as a bool, as a string (bytes
 * that are not UTF-8 shown as '?').  Each returns 0 or -ENOMEM, so a
 * builder may OR the results of many calls and test once. */
int tool_json_u64(json_t *o, const char *key, uint64_t v);
int tool_json_dbl(json_t *o, const char *key, double v, int decimals);
int tool_json_bool(json_t *o, const char *key, int v);
int tool_json_str(json_t *o, const char *key, const char *v);

/* Prints @o (borrowed) to @f as one line, keys in insertion order, with
 * jansson's @flags added (JSON_COMPACT for "a":1,"b":2; none for
 * "a": 1, "b": 2), and flushes.  Returns 0, -ENOMEM or -EIO. */
int tool_json_print(FILE *f, const json_t *o, size_t flags);

#endif
