#!/usr/bin/env bash
# Full-volume test of DJMFS: a small volume (64 MiB in 64 KiB units) is
# filled by one writer until a write fails with ENOSPC.  Then everything
# published before is intact (the writer's file up to its last
# acknowledged size, and a file put there before), the server still
# serves, df shows about nothing free and another put fails with ENOSPC;
# once the big file is removed and the deferral of freed space has passed
# (a short lease and snapshot-lock cap keep it short), df shows the space
# again and a new put works.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir enospc-test
MiB=1048576

# avail: free bytes as df reports them (its third column).
avail() {
	"$DJMFS" df >"$work/df" 2>&1 || fail "df: $(cat "$work/df")"
	awk 'NR == 2 { print $3 }' "$work/df"
}

"$DJMFS" -q mkfs "$vol" --size 64M --au-size 64K || fail "mkfs"
# Freed space waits a lease (a reader may still read the snapshot it last
# fetched) or a frozen snapshot's hold: keep both short.
start_server --lease-ms 1500 --snap-lock-max-ms 1000 --prefetch 64
pass "djmfsd up on a 64 MiB volume of 64 KiB units"

head -c $((512 * 1024 + 7)) /dev/urandom >"$work/keep.bin"
"$DJMFS" -q put "$work/keep.bin" keep || fail "put keep"
pass "a file put before the volume fills"

# --- Fill it. --------------------------------------------------------
start_writer fill --count 100000 --size 256K
wait_rc "$writer_pid" 120
[ "$rc" -ne 124 ] || fail "the writer did not fill 64 MiB in 120 s"
[ "$rc" -eq 3 ] && grep -q '^error ENOSPC$' "$work/acks" ||
	fail "the writer ended with $rc, not ENOSPC: $(tail -n 1 "$work/acks") \
$(cat "$work/writer.err")"
last=$(last_acked "$work/acks")
[ "$last" -ge $((40 * MiB)) ] ||
	fail "ENOSPC after only $last bytes of a 64 MiB volume"
pass "the writer got ENOSPC after $last acknowledged bytes"

# --- What was published is intact; the server still serves. ----------
"$DJMFS_PATTERN" check fill --min-size "$last" >"$work/check" 2>&1 ||
	fail "check fill: $(cat "$work/check")"
pass "the full file checks out: $(cat "$work/check")"
"$DJMFS" cat keep >"$work/out.bin" || fail "cat keep"
cmp "$work/keep.bin" "$work/out.bin" || fail "keep: bytes differ"
"$DJMFS" ls >"$work/ls" 2>&1 || fail "ls: $(cat "$work/ls")"
[ "$(wc -l <"$work/ls")" -eq 2 ] || fail "ls: $(cat "$work/ls")"
pass "the earlier file is intact and the server still lists files"

bytes_free=$(avail)
[ "$bytes_free" -le $((2 * MiB)) ] ||
	fail "df shows $bytes_free bytes free on a full volume: $(cat "$work/df")"
pass "df shows $bytes_free bytes free"
head -c $((8 * MiB)) /dev/urandom >"$work/big.bin"
rc=0
"$DJMFS" put "$work/big.bin" big >"$work/put" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q '(ENOSPC)' "$work/put" ||
	fail "put on a full volume: exit $rc: $(cat "$work/put")"
pass "another put fails with ENOSPC"

# --- Removing frees the space once the deferral has passed. ----------
"$DJMFS" rm fill || fail "rm fill"
"$DJMFS" rm big 2>/dev/null || true # what the failed put left, if any
for _ in $(seq 300); do
	[ "$(avail)" -lt $((32 * MiB)) ] || break
	sleep 0.05
done
bytes_free=$(avail)
[ "$bytes_free" -ge $((32 * MiB)) ] ||
	fail "15 s after rm only $bytes_free bytes are free: $(cat "$work/df")"
pass "rm gave the space back ($bytes_free bytes free)"
"$DJMFS" -q put "$work/big.bin" big || fail "put after rm"
"$DJMFS" cat big >"$work/out.bin" || fail "cat big"
cmp "$work/big.bin" "$work/out.bin" || fail "big: bytes differ"
"$DJMFS" cat keep >"$work/out.bin" || fail "cat keep"
cmp "$work/keep.bin" "$work/out.bin" || fail "keep: bytes differ"
pass "a new 8 MiB put works and reads back; the old file is still intact"
echo "all ENOSPC checks passed"
