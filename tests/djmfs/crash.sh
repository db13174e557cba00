#!/usr/bin/env bash
# Crash test of djmfsd: a writer appends to a SYNCHRONOUS object as fast
# as it can (djmfs-pattern write prints "acked VERSION SIZE" for every
# publish the server acknowledged), and the server is killed with SIGKILL
# in the middle of the burst.  Acknowledged means durable, so: the offline
# fsck finds the volume clean, the restarted server shows the file at
# least as large as the last acknowledged size, every byte of it holds
# the pattern, and a new writer can go on appending to it.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN (default: from the current
# directory, djmfs/djmfs, djmfs/djmfsd, tests/djmfs/djmfs-pattern or the
# same names without the directory), IOSCHED_PROFILE_DIR (default: the
# source tree's sched/profiles).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail

pick() { # pick CANDIDATE...: the first that is an executable file
	for c in "$@"; do
		if [ -f "$c" ] && [ -x "$c" ]; then
			echo "$c"
			return
		fi
	done
	echo "$1"
}
DJMFS=${DJMFS:-$(pick ./djmfs/djmfs ./djmfs)}
DJMFSD=${DJMFSD:-$(pick ./djmfs/djmfsd ./djmfsd)}
DJMFS_PATTERN=${DJMFS_PATTERN:-$(pick ./tests/djmfs/djmfs-pattern \
	./djmfs-pattern)}
for b in "$DJMFS" "$DJMFSD" "$DJMFS_PATTERN"; do
	if [ ! -f "$b" ] || [ ! -x "$b" ]; then
		echo "SKIP: $b not built (set DJMFS, DJMFSD, DJMFS_PATTERN)" >&2
		exit 77
	fi
done

# The clients' I/O scheduler needs its device profile (ssd-sata) before
# the profiles are installed: use the source tree's.
if [ -z "${IOSCHED_PROFILE_DIR:-}" ]; then
	for d in "${srcdir:-.}/sched/profiles" \
		"$(dirname "$0")/../../sched/profiles"; do
		if [ -f "$d/ssd-sata.profile" ]; then
			export IOSCHED_PROFILE_DIR=$d
			break
		fi
	done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-crash-test.XXXXXX")
server_pid=
writer_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	for p in $writer_pid $server_pid; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

vol=$work/vol
sock=$work/djmfsd.sock
export DJMFS_SERVER="unix:$sock"
ACKS_BEFORE_KILL=40

fail() {
	echo "FAIL: $*" >&2
	if [ -s "$work/djmfsd.log" ]; then
		echo "--- djmfsd log (tail) ---" >&2
		tail -n 20 "$work/djmfsd.log" >&2
	fi
	exit 1
}
pass() { echo "ok: $*"; }

# wait_pid PID SECONDS: waits for PID to end; its exit status, or 124.
wait_pid() {
	local pid=$1 i=0 rc=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le $(($2 * 20)) ] || return 124
		sleep 0.05
	done
	wait "$pid" || rc=$?
	return "$rc"
}

start_server() {
	"$DJMFSD" --volume "$vol" --listen "$sock" >>"$work/djmfsd.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 200); do
		kill -0 "$server_pid" 2>/dev/null ||
			fail "djmfsd exited at start"
		if [ -S "$sock" ] && "$DJMFS" -q stats >/dev/null 2>&1; then
			return
		fi
		sleep 0.05
	done
	fail "djmfsd did not answer on $sock within 10 s"
}

acks() { grep -c '^acked ' "$work/acks" || true; }

"$DJMFS" -q mkfs "$vol" --size 512M || fail "mkfs"
start_server
pass "djmfsd up on a fresh 512 MiB volume"

# --- A burst of acknowledged publishes, then SIGKILL. ------------------
: >"$work/acks" # before the job starts: polled at once
"$DJMFS_PATTERN" write burst --count 1000000 --size 64K \
	>"$work/acks" 2>"$work/writer.err" &
writer_pid=$!
for _ in $(seq 200); do
	[ "$(acks)" -lt $ACKS_BEFORE_KILL ] || break
	kill -0 "$writer_pid" 2>/dev/null ||
		fail "writer ended early: $(cat "$work/writer.err")"
	sleep 0.05
done
[ "$(acks)" -ge $ACKS_BEFORE_KILL ] ||
	fail "only $(acks) acks in 10 s: $(cat "$work/writer.err")"
{ kill -9 "$server_pid" && wait "$server_pid"; } 2>/dev/null || true
server_pid=
# Lines the writer prints after the kill are replies the server sent
# before it died: acknowledged all the same.
rc=0
wait_pid "$writer_pid" 10 || rc=$?
writer_pid=
[ "$rc" -ne 124 ] || fail "the writer did not notice the server died"
[ "$rc" -ne 0 ] || fail "the writer finished although its server died"
last=$(awk '$1 == "acked" && NF == 3 { s = $3 } END { print s + 0 }' \
	"$work/acks")
pass "server killed after $(acks) acks; last acknowledged size $last"

# --- The volume is consistent without a server. ----------------------
rc=0
"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "fsck after the crash: exit $rc: $(cat "$work/fsck.out")"
pass "fsck finds the crashed volume clean"

# --- Restart: nothing acknowledged was lost. -------------------------
# The killed server's socket file is still there: the new one must
# notice that nothing answers on it and take its place.
start_server
pass "djmfsd restarts on the crashed volume"
"$DJMFS_PATTERN" check burst --min-size "$last" >"$work/check" 2>&1 ||
	fail "check after restart: $(cat "$work/check")"
size=$(awk '$1 == "ok" { print $3 }' "$work/check")
[ -n "$size" ] && [ "$size" -ge "$last" ] ||
	fail "published size '$size' < acknowledged $last"
pass "published size $size >= acknowledged $last, content checks out"

"$DJMFS" stat burst >"$work/stat" 2>&1 || fail "stat: $(cat "$work/stat")"
grep -q '^flags: none$' "$work/stat" ||
	fail "the dead writer's lock or a quarantine survived: $(cat "$work/stat")"
"$DJMFS_PATTERN" write burst --count 8 --size 64K >"$work/acks2" 2>&1 ||
	fail "appending after restart: $(cat "$work/acks2")"
"$DJMFS_PATTERN" check burst --min-size $((size + 8 * 65536)) \
	>"$work/check" 2>&1 || fail "check after appending: $(cat "$work/check")"
pass "a new writer appends after the restart: $(cat "$work/check")"
echo "all crash checks passed"
