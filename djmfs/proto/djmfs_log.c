/*
 * The one place DJMFS turns a diagnostic into text: it formats a line and
 * hands it to the caller's log hook, so neither the client library nor the
 * server library ever writes to a stream of its own.  The body is the
 * project's one log-call formatter (common/lg.h); lines are cut at 767
 * bytes.
 */
#include <stdarg.h>
#include <stdio.h>

#include "djmfs_proto.h"
#include "lg.h"

LG_DEFINE_LOG(djmfs__log, struct djmfs_log, enum djmfs_log_level, 768)
