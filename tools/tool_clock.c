/*
 * CLOCK_MONOTONIC for the tools: one reading, two units, and a sleep to
 * an absolute time that survives signals (clock_nanosleep restarts on
 * EINTR rather than returning early, so a paced loop never runs ahead).
 */
#include "tool_clock.h"

#include <errno.h>
#include <time.h>

uint64_t tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * TOOL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

double tool_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tool_sleep_until_ns(uint64_t t_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t_ns / TOOL_NS_PER_S),
		.tv_nsec = (long)(t_ns % TOOL_NS_PER_S),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}
