/*
 * Helpers over jansson for the tools' one-line JSON results: rounding a
 * figure to its meaningful decimals, null for what is unknown, keyed adds
 * that report failure as -ENOMEM, and the one place that decides how a
 * line is printed (insertion order, TOOL_JSON_DIGITS, newline, flush).
 */
#include "tool_json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *tool_json_real(double v, int decimals)
{
	double scale;

	if (decimals <= 0)
		return tool_json_whole(v);
	if (!isfinite(v))
		return json_null();
	scale = pow(10.0, decimals);
	/* A figure too large to scale is already past its decimals. */
	if (isfinite(v * scale))
		v = round(v * scale) / scale;
	if (v == 0)
		v = 0;		/* -0.0 prints as 0.0, as printf("%.*f") did */
	return json_real(v);
}

json_t *tool_json_whole(double v)
{
	if (!isfinite(v))
		return json_null();
	return json_integer((json_int_t)llround(v));
}

json_t *tool_json_string_or_null(const char *v)
{
	return v ? json_string(v) : json_null();
}

int tool_json_set(json_t *o, const char *key, json_t *v)
{
	if (!v)
		return -ENOMEM;
	return json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

int tool_json_u64(json_t *o, const char *key, uint64_t v)
{
	/* jansson's integers are signed; past them only a real is left. */
	if (v > (uint64_t)INT64_MAX)
		return tool_json_set(o, key, json_real((double)v));
	return tool_json_set(o, key, json_integer((json_int_t)v));
}

int tool_json_dbl(json_t *o, const char *key, double v, int decimals)
{
	return tool_json_set(o, key, tool_json_real(v, decimals));
}

int tool_json_bool(json_t *o, const char *key, int v)
{
	return tool_json_set(o, key, json_boolean(v));
}

int tool_json_str(json_t *o, const char *key, const char *v)
{
	json_t *s = json_string(v);
	char *copy;

	/* Not UTF-8 (a path, a name from elsewhere): JSON needs text, so
	 * the bytes past ASCII are shown as '?'. */
	if (!s && v && (copy = strdup(v))) {
		for (char *c = copy; *c; c++)
			if ((unsigned char)*c >= 0x80)
				*c = '?';
		s = json_string(copy);
		free(copy);
	}
	return tool_json_set(o, key, s);
}

int tool_json_print(FILE *f, const json_t *o, size_t flags)
{
	char *text = json_dumps(o, flags | JSON_PRESERVE_ORDER |
				       JSON_REAL_PRECISION(TOOL_JSON_DIGITS));
	int rc = 0;

	if (!text)
		return -ENOMEM;
	if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0)
		rc = -EIO;
	free(text);
	return rc;
}
