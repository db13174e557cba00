# What the shell integration tests of every component share, sourced by
# each component's lib.sh (tests/djmfs/lib.sh, tests/streamd/lib.sh) as
# `. "$(dirname "${BASH_SOURCE[0]}")/../lib-common.sh"`, which finds it
# beside them in the source tree wherever the test runs from.  It points
# libiosched at the source tree's device profiles and holds the parts of
# a test's life that do not depend on the component: reporting a check
# (pass, fail), waiting for a child with a time limit (wait_pid, wait_rc)
# and stopping every background job at the end (stop_jobs).  Each lib.sh
# keeps what is its own: the programs, the scratch directory, the daemon.
#
# Globals it sets: tests_top_srcdir (the top of the source tree), rc
# (wait_rc's result).  It reads work (the scratch directory, for fail's
# logs) and fail_tail_lines (how many lines of each log fail shows; 20
# unless the lib.sh sets it).  Bash only; meant for `set -euo pipefail`
# scripts.
# shellcheck shell=bash

# The top of the source tree: this file is tests/lib-common.sh in it.
tests_top_srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The I/O scheduler in the programs under test needs its device profile
# (ssd-sata) before the profiles are installed: use the source tree's.
if [ -z "${IOSCHED_PROFILE_DIR:-}" ] &&
	[ -f "$tests_top_srcdir/sched/profiles/ssd-sata.profile" ]; then
	export IOSCHED_PROFILE_DIR=$tests_top_srcdir/sched/profiles
fi

# fail MESSAGE: says why on stderr, with the tails of the logs and error
# files in $work, and exits 1.
fail() {
	local f
	echo "FAIL: $*" >&2
	for f in "${work:-/nonexistent}"/*.log "${work:-/nonexistent}"/*.err; do
		[ -s "$f" ] || continue
		echo "--- $(basename "$f") (tail) ---" >&2
		tail -n "${fail_tail_lines:-20}" "$f" >&2
	done
	exit 1
}

pass() { echo "ok: $*"; }

# wait_pid PID SECONDS: waits for the child PID to end; its exit status,
# or 124 if it still runs after SECONDS.
wait_pid() {
	local pid=$1 i=0 status=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le $(($2 * 20)) ] || return 124
		sleep 0.05
	done
	wait "$pid" || status=$?
	return "$status"
}

# wait_rc PID SECONDS: wait_pid, its result in rc without tripping set -e
# (not in a $(...) subshell: only this shell can wait for its children).
wait_rc() {
	rc=0
	wait_pid "$1" "$2" || rc=$?
}

# stop_jobs SECONDS: SIGTERM to every background job of this shell, so
# that each can stop what it started, then SIGKILL to any that still runs
# SECONDS later; reaps them all.  For the EXIT trap.
stop_jobs() {
	local p pids
	pids=$(jobs -p)
	for p in $pids; do
		kill "$p" 2>/dev/null || true
	done
	for p in $pids; do
		wait_rc "$p" "$1"
		if [ "$rc" -eq 124 ]; then
			kill -9 "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
}
