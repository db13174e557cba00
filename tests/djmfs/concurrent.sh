#!/bin/bash
# Integration test of concurrent access with real processes: one writer
# appends 64 KiB to a SYNCHRONOUS object every 20 ms for about 4 s while
# three reader processes loop over snapshots; every reader must see only
# whole, ordered images (torn 0) and several versions, and the final
# image must check out byte for byte.  The bytes follow djmfs-pattern's
# offset-derived pattern, so a torn or stale read shows up as a bad byte.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.

set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir concurrent
"$DJMFS" -q mkfs "$vol" --size 512M --au-size 64K || fail "mkfs"
start_server --log-level warn
pass "djmfsd up on $sock"
need_direct_io

start_writer stream --count 200 --size 64K --period-ms 20
wait_acks 1
pass "writer acknowledged its first append"

readers=()
for i in 1 2 3; do
	"$DJMFS_PATTERN" read stream --seconds 3 \
		>"$work/reader$i.out" 2>"$work/reader$i.err" &
	readers+=("$!")
done

for i in 1 2 3; do
	wait_rc "${readers[$((i - 1))]}" 30
	line=$(tail -n 1 "$work/reader$i.out" 2>/dev/null || true)
	[ "$rc" -eq 0 ] || fail "reader $i exited $rc: $line"
	read -r w1 reads w2 versions w3 max_size w4 torn <<<"$line" ||
		fail "reader $i printed '$line'"
	[ "$w1 $w2 $w3 $w4" = "reads versions max_size torn" ] ||
		fail "reader $i printed '$line'"
	[ "$torn" -eq 0 ] || fail "reader $i saw $torn torn images"
	[ "$versions" -ge 3 ] || fail "reader $i saw only $versions versions"
	[ "$max_size" -gt 0 ] || fail "reader $i saw an empty file"
	pass "reader $i: $reads reads, $versions versions, up to $max_size bytes, none torn"
done

wait_rc "$writer_pid" 30
[ "$rc" -eq 0 ] || fail "writer exited $rc: $(tail -n 1 "$work/acks")"
acks=$(count_acks "$work/acks")
[ "$acks" -eq 200 ] || fail "writer acknowledged $acks of 200 appends"
last_size=$(tail -n 1 "$work/acks" | cut -d' ' -f3)
[ "$last_size" -eq $((200 * 65536)) ] || fail "writer's last size is $last_size"
pass "writer: 200 appends acknowledged, $last_size bytes"

out=$("$DJMFS_PATTERN" check stream --min-size "$last_size" 2>"$work/check.err") ||
	fail "check: $out"
case $out in
"ok "*" $last_size 0") pass "check: $out" ;;
*) fail "check printed '$out'" ;;
esac
exit 0
