/*
 * The log hook streamd's modules get under test: the streamd-side twin of
 * server_env_log (tests/djmfs/server_env.h), quiet unless DJMFS_TEST_LOG
 * or SD_TEST_LOG is set, so that the server's lines and the daemon's
 * modules' lines come out in one stream.  Include after server_env.h.
 */
#ifndef SD_TEST_LOG_H
#define SD_TEST_LOG_H

#include "streamd-int.h"

static inline void sd_test_log_line(void *arg, enum sd_log_level lvl,
				    const char *msg)
{
	server_env_log_line(arg, (enum djmfs_log_level)lvl, msg);
}

static const struct sd_logger sd_test_log = { sd_test_log_line, NULL };

#endif
