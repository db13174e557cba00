#!/bin/bash
# Integration test of LOCK_SNAP with real processes: while a writer
# appends 64 KiB every 20 ms, a reader locks a snapshot and, for 1.5 s,
# every SYNC_SNAP must keep showing that frozen image (same version and
# size, bytes intact) although newer versions are published; after
# UNLOCK_SNAP the next SYNC_SNAP must move forward.  A second reader that
# locks, reads and unlocks in a loop must never see its image move or tear.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.

set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir locksnap
"$DJMFS" -q mkfs "$vol" --size 512M --au-size 64K || fail "mkfs"
start_server --log-level warn
pass "djmfsd up on $sock"
need_direct_io

start_writer stream --count 150 --size 64K --period-ms 20
wait_acks 1
pass "writer acknowledged its first append"

"$DJMFS_PATTERN" read stream --seconds 1.5 --lock-ms 500 \
	>"$work/looper.out" 2>"$work/looper.err" &
looper=$!

out=$("$DJMFS_PATTERN" lockcheck stream --seconds 1.5 2>"$work/lockcheck.err") ||
	fail "lockcheck: $out"
read -r w1 v1 s1 w2 v2 s2 <<<"$out" || fail "lockcheck printed '$out'"
[ "$w1 $w2" = "frozen then" ] || fail "lockcheck printed '$out'"
if [ "$v2" -le "$v1" ] || [ "$s2" -le "$s1" ]; then
	fail "after UNLOCK_SNAP the image did not move forward: $out"
fi
pass "lockcheck: $out"

wait_rc "$looper" 30
line=$(tail -n 1 "$work/looper.out" 2>/dev/null || true)
[ "$rc" -eq 0 ] || fail "lock/read/unlock loop exited $rc: $line"
case $line in
"reads "*" torn 0") pass "lock/read/unlock loop: $line" ;;
*) fail "lock/read/unlock loop printed '$line'" ;;
esac

wait_rc "$writer_pid" 30
[ "$rc" -eq 0 ] || fail "writer exited $rc: $(tail -n 1 "$work/acks")"
last_size=$(tail -n 1 "$work/acks" | cut -d' ' -f3)
out=$("$DJMFS_PATTERN" check stream --min-size "$last_size" 2>"$work/check.err") ||
	fail "check: $out"
pass "check after the writer finished: $out"
exit 0
