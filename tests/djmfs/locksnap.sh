#!/bin/bash
# Integration test of LOCK_SNAP with real processes: while a writer
# appends 64 KiB every 20 ms, a reader locks a snapshot and, for 1.5 s,
# every SYNC_SNAP must keep showing that frozen image (same version and
# size, bytes intact) although newer versions are published; after
# UNLOCK_SNAP the next SYNC_SNAP must move forward.  A second reader that
# locks, reads and unlocks in a loop must never see its image move or tear.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN (default ./djmfs, ./djmfsd,
# ./djmfs-pattern).  Exit status: 0 pass, 1 fail, 77 skipped.

set -euo pipefail

DJMFS=${DJMFS:-./djmfs}
DJMFSD=${DJMFSD:-./djmfsd}
DJMFS_PATTERN=${DJMFS_PATTERN:-./djmfs-pattern}

for b in "$DJMFS" "$DJMFSD" "$DJMFS_PATTERN"; do
	if [ ! -x "$b" ]; then
		echo "SKIP: $b not built" >&2
		exit 77
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-locksnap.XXXXXX")
server_pid=
pids=()

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	for p in "${pids[@]}" $server_pid; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/*.err "$work"/djmfsd.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" >&2
	done
	exit 1
}

# wait_for WHAT CMD...: polls CMD every 0.1 s for up to 10 s.
wait_for() {
	what=$1
	shift
	for _ in $(seq 100); do
		if "$@"; then return 0; fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			fail "djmfsd died while waiting for $what"
		fi
		sleep 0.1
	done
	fail "timed out waiting for $what"
}

# status PID: sets rc to its exit status, without tripping set -e (not
# in a $(...) subshell: only this shell can wait for its children).
status() {
	if wait "$1"; then rc=0; else rc=$?; fi
}

"$DJMFS" mkfs "$work/vol" --size 512M --au-size 64K >"$work/mkfs.out" 2>"$work/mkfs.err" ||
	fail "mkfs"
"$DJMFSD" --volume "$work/vol" --listen "$work/sock" --log-level warn \
	2>"$work/djmfsd.log" &
server_pid=$!
wait_for "the server's socket" test -S "$work/sock"
export DJMFS_SERVER="unix:$work/sock"
echo "ok: djmfsd up on $work/sock"

# Data I/O needs io_uring and O_DIRECT: skip where the machine has neither.
if ! probe=$("$DJMFS_PATTERN" write probe --count 1 --size 4K 2>&1); then
	case $probe in
	*ENOSYS* | *EOPNOTSUPP* | *EPERM*)
		echo "SKIP: no direct I/O here: $probe" >&2
		exit 77
		;;
	esac
	fail "a first write failed: $probe"
fi

"$DJMFS_PATTERN" write stream --count 150 --size 64K --period-ms 20 \
	>"$work/writer.out" 2>"$work/writer.err" &
writer=$!
pids+=("$writer")
wait_for "the first acknowledged write" grep -q '^acked' "$work/writer.out"
echo "ok: writer acknowledged its first append"

"$DJMFS_PATTERN" read stream --seconds 1.5 --lock-ms 500 \
	>"$work/looper.out" 2>"$work/looper.err" &
looper=$!
pids+=("$looper")

out=$("$DJMFS_PATTERN" lockcheck stream --seconds 1.5 2>"$work/lockcheck.err") ||
	fail "lockcheck: $out"
read -r w1 v1 s1 w2 v2 s2 <<<"$out" || fail "lockcheck printed '$out'"
[ "$w1 $w2" = "frozen then" ] || fail "lockcheck printed '$out'"
if [ "$v2" -le "$v1" ] || [ "$s2" -le "$s1" ]; then
	fail "after UNLOCK_SNAP the image did not move forward: $out"
fi
echo "ok: lockcheck: $out"

status "$looper"
line=$(tail -n 1 "$work/looper.out" 2>/dev/null || true)
[ "$rc" -eq 0 ] || fail "lock/read/unlock loop exited $rc: $line"
case $line in
"reads "*" torn 0") echo "ok: lock/read/unlock loop: $line" ;;
*) fail "lock/read/unlock loop printed '$line'" ;;
esac

status "$writer"
[ "$rc" -eq 0 ] || fail "writer exited $rc: $(tail -n 1 "$work/writer.out")"
last_size=$(tail -n 1 "$work/writer.out" | cut -d' ' -f3)
out=$("$DJMFS_PATTERN" check stream --min-size "$last_size" 2>"$work/check.err") ||
	fail "check: $out"
echo "ok: check after the writer finished: $out"
exit 0
