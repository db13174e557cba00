/*
 * The one place DJMFS turns a diagnostic into text: it formats a line and
 * hands it to the caller's log hook, so neither the client library nor the
 * server library ever writes to a stream of its own.
 */
#include <stdarg.h>
#include <stdio.h>

#include "djmfs_proto.h"

void djmfs__log(const struct djmfs_log *log, enum djmfs_log_level lvl,
		const char *fmt, ...)
{
	char line[768];
	va_list ap;

	if (!log || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->arg, lvl, line);
}
