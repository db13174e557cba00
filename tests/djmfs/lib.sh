# Shared set-up of the DJMFS shell integration tests (cli.sh, concurrent.sh,
# locksnap.sh, crash.sh, lease.sh, enospc.sh, bench.sh), sourced by each as
# `. "$(dirname "$0")/lib.sh"` -- $0 names the script wherever it lives, so
# this works from automake's harness (cwd the build tree, scripts in the
# source tree, VPATH and distcheck included) and by hand.  It finds the
# programs under test (environment, else the build tree), skips with 77
# when they are missing, makes a scratch directory that an EXIT trap
# removes after stopping every background job the script left running,
# and starts, polls and stops a djmfsd on a Unix socket in it.  The
# helpers every component shares (the device profiles, pass, fail,
# wait_pid, wait_rc, stop_jobs) come from tests/lib-common.sh, which it
# sources.  Messages: "ok: ..." on stdout for each check passed,
# "FAIL: ..." (plus the tails of the logs in the scratch directory) on
# stderr before exit 1, "SKIP: ..." before 77.
#
# Globals it sets: work (scratch directory), vol and sock (the volume and
# socket paths in it), server_pid (the running djmfsd, else empty),
# writer_pid (start_writer's job), rc (wait_rc's result).  Bash only;
# meant for `set -euo pipefail` scripts.
# shellcheck shell=bash

# shellcheck source=SCRIPTDIR/../lib-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib-common.sh"

server_pid=

# pick CANDIDATE...: the first that is an executable file, else the first.
pick() {
	local c
	for c in "$@"; do
		if [ -f "$c" ] && [ -x "$c" ]; then
			echo "$c"
			return
		fi
	done
	echo "$1"
}

# default_program VAR: where the build tree puts the program VAR names,
# seen from its top (automake's cwd) or from the program's own directory.
default_program() {
	case $1 in
	DJMFS) pick ./djmfs/djmfs ./djmfs ;;
	DJMFSD) pick ./djmfs/djmfsd ./djmfsd ;;
	DJMFS_BENCH) pick ./djmfs/djmfs-bench ./djmfs-bench ;;
	DJMFS_PATTERN) pick ./tests/djmfs/djmfs-pattern ./djmfs-pattern ;;
	*) echo "lib.sh: no default for $1" >&2 && return 1 ;;
	esac
}

# need_programs VAR...: sets and exports each VAR (DJMFS, DJMFSD,
# DJMFS_BENCH, DJMFS_PATTERN) to its program, from the environment or the
# build tree; skips the test (77) when one is not an executable file.
need_programs() {
	local v path list=$*
	for v in "$@"; do
		path=${!v:-}
		[ -n "$path" ] || path=$(default_program "$v")
		printf -v "$v" '%s' "$path"
		export "${v?}"
	done
	for v in "$@"; do
		path=${!v}
		if [ ! -f "$path" ] || [ ! -x "$path" ]; then
			echo "SKIP: $path not built (set ${list// /, })" >&2
			exit 77
		fi
	done
}

# make_workdir NAME: a fresh scratch directory in $work (TMPDIR or /tmp),
# removed on exit once the background jobs are stopped; sets vol and sock.
make_workdir() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-$1.XXXXXX")
	vol=$work/vol
	sock=$work/djmfsd.sock
	trap cleanup EXIT
	trap 'exit 1' HUP INT TERM
}

# cleanup: the EXIT trap.  SIGTERM first, so that djmfsd and djmfs-bench
# can stop what they started; SIGKILL whatever is left after 5 s.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	stop_jobs 5
	[ -z "${work:-}" ] || rm -rf "$work"
}

# wait_for WHAT CMD...: polls CMD every 0.05 s for up to 10 s; fails when
# it never succeeds or when the server started here dies meanwhile.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 200); do
		if "$@"; then return 0; fi
		if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
			fail "djmfsd died while waiting for $what"
		fi
		sleep 0.05
	done
	fail "timed out waiting for $what"
}

# server_answers: djmfsd's socket is there and it answers a STATS.
server_answers() {
	[ -S "$sock" ] && "$DJMFS" -q stats >/dev/null 2>&1
}

# start_server [DJMFSD OPTION...]: starts djmfsd on $vol, listening on
# $sock and logging to $work/djmfsd.log, exports DJMFS_SERVER for the
# clients and returns once it answers.  A stale socket file (a killed
# server's) is fine: djmfsd takes its place.
start_server() {
	export DJMFS_SERVER="unix:$sock"
	"$DJMFSD" --volume "$vol" --listen "$sock" "$@" \
		>>"$work/djmfsd.log" 2>&1 &
	server_pid=$!
	wait_for "djmfsd to answer on $sock" server_answers
}

# stop_server: SIGTERM; djmfsd must end with status 0 within 10 s.
stop_server() {
	kill -TERM "$server_pid"
	wait_rc "$server_pid" 10
	[ "$rc" -eq 0 ] || fail "djmfsd stopped with status $rc"
	server_pid=
}

# kill_server: SIGKILL, as a crash would; reaps it.
kill_server() {
	{ kill -9 "$server_pid" && wait "$server_pid"; } 2>/dev/null || true
	server_pid=
}

# need_direct_io: data I/O needs io_uring and O_DIRECT; skips (77) where
# the machine has neither, by writing a 4 KiB file "probe" through
# djmfs-pattern to the running server.
need_direct_io() {
	local probe
	if ! probe=$("$DJMFS_PATTERN" write probe --count 1 --size 4K 2>&1); then
		case $probe in
		*ENOSYS* | *EOPNOTSUPP* | *EPERM*)
			echo "SKIP: no direct I/O here: $probe" >&2
			exit 77
			;;
		esac
		fail "a first write failed: $probe"
	fi
}

# start_writer FILE OPTION...: djmfs-pattern write FILE OPTION... in the
# background, its "acked VERSION SIZE" lines in $work/acks and its errors
# in $work/writer.err; sets writer_pid.
start_writer() {
	local file=$1
	shift
	: >"$work/acks" # before the job starts: polled at once
	"$DJMFS_PATTERN" write "$file" "$@" >"$work/acks" 2>"$work/writer.err" &
	writer_pid=$!
}

# wait_acks N: waits until that writer has N acks (10 s at the most);
# fails if it ends first.
wait_acks() {
	acks_wanted=$1
	wait_for "$1 acks" writer_has_acks
}

writer_has_acks() {
	[ "$(count_acks "$work/acks")" -lt "$acks_wanted" ] || return 0
	kill -0 "$writer_pid" 2>/dev/null ||
		fail "writer ended early: $(cat "$work/writer.err")"
	return 1
}

# count_acks FILE: how many "acked VERSION SIZE" lines djmfs-pattern write
# has printed to FILE so far.
count_acks() { grep -c '^acked ' "$1" || true; }

# last_acked FILE: the size in the last of those lines (0 if none).
last_acked() {
	awk '$1 == "acked" && NF == 3 { s = $3 } END { print s + 0 }' "$1"
}
