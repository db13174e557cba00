#!/bin/bash
# Integration test of concurrent access with real processes: one writer
# appends 64 KiB to a SYNCHRONOUS object every 20 ms for about 4 s while
# three reader processes loop over snapshots; every reader must see only
# whole, ordered images (torn 0) and several versions, and the final
# image must check out byte for byte.  The bytes follow djmfs-pattern's
# offset-derived pattern, so a torn or stale read shows up as a bad byte.
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

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-concurrent.XXXXXX")
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

"$DJMFS_PATTERN" write stream --count 200 --size 64K --period-ms 20 \
	>"$work/writer.out" 2>"$work/writer.err" &
writer=$!
pids+=("$writer")
wait_for "the first acknowledged write" grep -q '^acked' "$work/writer.out"
echo "ok: writer acknowledged its first append"

readers=()
for i in 1 2 3; do
	"$DJMFS_PATTERN" read stream --seconds 3 \
		>"$work/reader$i.out" 2>"$work/reader$i.err" &
	readers+=("$!")
	pids+=("$!")
done

for i in 1 2 3; do
	status "${readers[$((i - 1))]}"
	line=$(tail -n 1 "$work/reader$i.out" 2>/dev/null || true)
	[ "$rc" -eq 0 ] || fail "reader $i exited $rc: $line"
	read -r w1 reads w2 versions w3 max_size w4 torn <<<"$line" ||
		fail "reader $i printed '$line'"
	[ "$w1 $w2 $w3 $w4" = "reads versions max_size torn" ] ||
		fail "reader $i printed '$line'"
	[ "$torn" -eq 0 ] || fail "reader $i saw $torn torn images"
	[ "$versions" -ge 3 ] || fail "reader $i saw only $versions versions"
	[ "$max_size" -gt 0 ] || fail "reader $i saw an empty file"
	echo "ok: reader $i: $reads reads, $versions versions, up to $max_size bytes, none torn"
done

status "$writer"
[ "$rc" -eq 0 ] || fail "writer exited $rc: $(tail -n 1 "$work/writer.out")"
acks=$(grep -c '^acked' "$work/writer.out")
[ "$acks" -eq 200 ] || fail "writer acknowledged $acks of 200 appends"
last_size=$(tail -n 1 "$work/writer.out" | cut -d' ' -f3)
[ "$last_size" -eq $((200 * 65536)) ] || fail "writer's last size is $last_size"
echo "ok: writer: 200 appends acknowledged, $last_size bytes"

out=$("$DJMFS_PATTERN" check stream --min-size "$last_size" 2>"$work/check.err") ||
	fail "check: $out"
case $out in
"ok "*" $last_size") echo "ok: check: $out" ;;
*) fail "check printed '$out'" ;;
esac
exit 0
