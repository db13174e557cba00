#!/usr/bin/env bash
# Restart test of djmfsd under a live writer: djmfs-pattern appends to a
# SYNCHRONOUS object at a steady pace (one "acked VERSION SIZE" line per
# acknowledged publish), djmfsd is killed with SIGKILL in the middle and
# started again on the same volume and socket.  libdjmfs reconnects on
# its own (its default window is 30 s): the writer goes on and finishes
# every append without an error, each acknowledged size is one append
# more than the last (nothing acknowledged was lost, nothing applied
# twice), the final image is exactly COUNT x SIZE bytes of the pattern,
# the writer logged the loss and the restore, and the offline fsck finds
# the volume clean.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir restart-test
COUNT=1500
SIZE=64K
SIZE_BYTES=65536
ACKS_BEFORE_KILL=60

"$DJMFS" -q mkfs "$vol" --size 256M || fail "mkfs"
start_server --log-level info
need_direct_io
pass "djmfsd up on a fresh 256 MiB volume"

# --- Appends back to back (1 ms apart); SIGKILL in the middle. -------
start_writer stream --count $COUNT --size $SIZE --period-ms 1
wait_acks $ACKS_BEFORE_KILL
kill_server
before=$(last_acked "$work/acks")
pass "djmfsd killed after $(count_acks "$work/acks") acks ($before bytes acknowledged)"
sleep 0.3
start_server --log-level info
pass "djmfsd restarted on the same volume and socket"

# --- The writer goes on by itself and finishes. ----------------------
wait_rc "$writer_pid" 50
[ "$rc" -eq 0 ] || fail "the writer ended with status $rc: $(cat "$work/writer.err")"
acks=$(count_acks "$work/acks")
[ "$acks" -eq $COUNT ] || fail "$acks acks, expected $COUNT"
awk -v s=$SIZE_BYTES '$1 == "acked" { n++; if ($3 != n * s) { print "ack " n ": size " $3; bad = 1 } }
	END { exit bad }' "$work/acks" >"$work/acks.bad" ||
	fail "acknowledged sizes out of step: $(head -3 "$work/acks.bad")"
pass "the writer finished: $acks acks, each exactly one append ($SIZE) more"
grep -q 'lost:.*reconnecting for up to' "$work/writer.err" ||
	fail "the writer did not log the loss: $(cat "$work/writer.err")"
restored=$(grep -o 'restored after .*' "$work/writer.err" | head -n 1)
[ -n "$restored" ] || fail "the writer did not log the restore: $(cat "$work/writer.err")"
pass "the writer logged the outage: $restored"

# --- Content and consistency. ----------------------------------------
want=$((COUNT * SIZE_BYTES))
"$DJMFS_PATTERN" check stream --min-size $want >"$work/check" 2>&1 ||
	fail "check: $(cat "$work/check")"
size=$(awk '$1 == "ok" { print $3 }' "$work/check")
[ "$size" = "$want" ] || fail "published size $size, expected $want"
pass "published size $size = $COUNT x $SIZE >= acknowledged-before-kill $before, content checks out"
stop_server
rc=0
"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "fsck: exit $rc: $(cat "$work/fsck.out")"
pass "fsck finds the volume clean"
echo "all restart checks passed"
