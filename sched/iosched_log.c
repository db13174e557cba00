/*
 * The one place libiosched turns a diagnostic into text: it formats a line
 * and hands it to the caller's log hook, so the library itself never
 * writes to a stream or a file.
 */
#include <stdarg.h>
#include <stdio.h>

#include "iosched-int.h"

void iosched__log(const struct iosched_log *log, enum iosched_log_level lvl,
		  const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!log || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->arg, lvl, line);
}
