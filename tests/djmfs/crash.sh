#!/usr/bin/env bash
# Crash test of djmfsd: a writer appends to a SYNCHRONOUS object as fast
# as it can (djmfs-pattern write prints "acked VERSION SIZE" for every
# publish the server acknowledged), and the server is killed with SIGKILL
# in the middle of the burst.  Acknowledged means durable, so: the offline
# fsck finds the volume clean, the restarted server shows the file at
# least as large as the last acknowledged size, every byte of it holds
# the pattern, and a new writer can go on appending to it.  The writer
# runs with --no-reconnect, so it sees the server die (restart.sh covers
# the client that waits for the server to come back instead).  It also
# trims the object to its last MiB every few appends, as a recording's
# retention does, so the kill lands among trims too: the restarted
# server's start is the last acknowledged trim's or a later one (the
# map is the old or the new one, never between), and every byte from
# there on checks out.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir crash-test
ACKS_BEFORE_KILL=40

"$DJMFS" -q mkfs "$vol" --size 512M || fail "mkfs"
start_server --log-level info
pass "djmfsd up on a fresh 512 MiB volume"

# --- A burst of acknowledged publishes, then SIGKILL. ------------------
start_writer burst --no-reconnect --count 1000000 --size 64K \
	--trim-every 4 --keep 1M
wait_acks $ACKS_BEFORE_KILL
kill_server
# Lines the writer prints after the kill are replies the server sent
# before it died: acknowledged all the same.
wait_rc "$writer_pid" 10
[ "$rc" -ne 124 ] || fail "the writer did not notice the server died"
[ "$rc" -ne 0 ] || fail "the writer finished although its server died"
last=$(last_acked "$work/acks")
last_trim=$(awk '$1 == "trimmed" { s = $2 } END { print s + 0 }' "$work/acks")
[ "$last_trim" -gt 0 ] || fail "no trim was acknowledged before the kill"
pass "server killed after $(count_acks "$work/acks") acks; last acknowledged size $last, start $last_trim"

# --- The volume is consistent without a server. ----------------------
rc=0
"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "fsck after the crash: exit $rc: $(cat "$work/fsck.out")"
pass "fsck finds the crashed volume clean"

# --- Restart: nothing acknowledged was lost. -------------------------
# The killed server's socket file is still there: the new one must
# notice that nothing answers on it and take its place.
start_server --log-level info
pass "djmfsd restarts on the crashed volume"
"$DJMFS_PATTERN" check burst --min-size "$last" >"$work/check" 2>&1 ||
	fail "check after restart: $(cat "$work/check")"
size=$(awk '$1 == "ok" { print $3 }' "$work/check")
start=$(awk '$1 == "ok" { print $4 }' "$work/check")
[ -n "$size" ] && [ "$size" -ge "$last" ] ||
	fail "published size '$size' < acknowledged $last"
[ -n "$start" ] && [ "$start" -ge "$last_trim" ] && [ "$start" -le "$size" ] ||
	fail "start '$start' below the acknowledged $last_trim (or past $size)"
pass "published size $size >= acknowledged $last, start $start >= $last_trim, content checks out"

"$DJMFS" stat burst >"$work/stat" 2>&1 || fail "stat: $(cat "$work/stat")"
grep -q '^flags: none$' "$work/stat" ||
	fail "the dead writer's lock or a quarantine survived: $(cat "$work/stat")"
"$DJMFS_PATTERN" write burst --count 8 --size 64K >"$work/acks2" 2>&1 ||
	fail "appending after restart: $(cat "$work/acks2")"
"$DJMFS_PATTERN" check burst --min-size $((size + 8 * 65536)) \
	>"$work/check" 2>&1 || fail "check after appending: $(cat "$work/check")"
pass "a new writer appends after the restart: $(cat "$work/check")"
"$DJMFS" trim burst data $((size + 4 * 65536)) >"$work/trim" 2>&1 ||
	fail "trim after restart: $(cat "$work/trim")"
"$DJMFS_PATTERN" check burst >"$work/check" 2>&1 ||
	fail "check after trimming: $(cat "$work/check")"
[ "$(awk '$1 == "ok" { print $4 }' "$work/check")" -eq $((size + 4 * 65536)) ] ||
	fail "start after trimming: $(cat "$work/check")"
stop_server
rc=0
"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "fsck after the trims: exit $rc: $(cat "$work/fsck.out")"
pass "a trim after the restart: $(cat "$work/check"); fsck clean after a clean stop"
echo "all crash checks passed"
