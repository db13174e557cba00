/*
 * The one monotonic clock of the command-line tools and benchmarks
 * (iosched-bench, iosched-calibrate, djmfs-bench, streamd-bench,
 * streamd-soak): CLOCK_MONOTONIC read as nanoseconds or seconds, and an
 * absolute sleep on the same clock.  The libraries keep their own clocks
 * (iosched_now, djmfs_now) behind their public APIs; the tools only need
 * wall-independent time to pace loads and measure spans.
 */
#ifndef TOOL_CLOCK_H
#define TOOL_CLOCK_H

#include <stdint.h>

#define TOOL_NS_PER_S 1000000000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tool_now_ns(void);

/* CLOCK_MONOTONIC in seconds. */
double tool_now_s(void);

/* Sleeps until tool_now_ns() reaches @t_ns; returns at once if it has. */
void tool_sleep_until_ns(uint64_t t_ns);

#endif
