/*
 * The one place libiosched turns a diagnostic into text: it formats a line
 * and hands it to the caller's log hook, so the library itself never
 * writes to a stream or a file.  The body is the project's one log-call
 * formatter (common/lg.h); lines are cut at 511 bytes.
 */
#include <stdarg.h>
#include <stdio.h>

#include "iosched-int.h"
#include "lg.h"

LG_DEFINE_LOG(iosched__log, struct iosched_log, enum iosched_log_level, 512)
