#!/usr/bin/env bash
# Lease test of djmfsd: a writer holding a file's write lock is killed
# with SIGKILL, so it neither closes the file nor ends its session.  Until
# its lease runs out (djmfsd --lease-ms 1500 here) another writer's open
# must fail with EBUSY; after that it must succeed, and what the dead
# writer had published must still be there.  A dead writer can neither
# keep a file forever nor have its lock taken while it may still be alive.
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir lease-test
LEASE_MS=1500
now_ms() { echo $(($(date +%s%N) / 1000000)); }

"$DJMFS" -q mkfs "$vol" --size 128M || fail "mkfs"
start_server --lease-ms $LEASE_MS
pass "djmfsd up with --lease-ms $LEASE_MS"

# --- A writer that holds the file, then dies without a word. ---------
start_writer held --count 1000000 --size 4K --period-ms 20
for _ in $(seq 200); do
	[ "$(count_acks "$work/acks")" -lt 3 ] || break
	sleep 0.05
done
grep -q '^acked ' "$work/acks" ||
	fail "the first writer got no ack: $(cat "$work/writer.err")"
"$DJMFS" stat held >"$work/stat" 2>&1 || fail "stat: $(cat "$work/stat")"
grep -q '^flags: .*write-locked' "$work/stat" ||
	fail "stat does not show the write lock: $(cat "$work/stat")"
{ kill -9 "$writer_pid" && wait "$writer_pid"; } 2>/dev/null || true
killed=$(now_ms)
last=$(last_acked "$work/acks")
pass "writer killed holding the file (last acknowledged size $last)"

# --- Before the lease runs out: EBUSY. -------------------------------
rc=0
"$DJMFS_PATTERN" write held --count 1 --size 4K >"$work/w2" 2>&1 || rc=$?
elapsed=$(($(now_ms) - killed))
if [ "$elapsed" -ge $LEASE_MS ]; then
	echo "SKIP: this machine took ${elapsed} ms to try the second open" >&2
	exit 77
fi
[ "$rc" -ne 0 ] && grep -q '^error EBUSY$' "$work/w2" ||
	fail "second writer ${elapsed} ms after the kill: exit $rc: $(cat "$work/w2")"
pass "a second writer gets EBUSY ${elapsed} ms after the kill"

# --- After it: the open succeeds, within a bounded time. -------------
got=
for _ in $(seq 200); do
	rc=0
	"$DJMFS_PATTERN" write held --count 1 --size 4K >"$work/w2" 2>&1 ||
		rc=$?
	if [ "$rc" -eq 0 ]; then
		got=$(($(now_ms) - killed))
		break
	fi
	grep -q '^error EBUSY$' "$work/w2" ||
		fail "second writer: exit $rc: $(cat "$work/w2")"
	sleep 0.05
done
[ -n "$got" ] || fail "the file was still locked 10 s after the kill"
# The lease is counted from the dead writer's last renewal, which came
# at most one lease before the kill.
[ "$got" -le $((LEASE_MS * 4)) ] ||
	fail "the lock was freed only after $got ms (lease $LEASE_MS ms)"
pass "the second writer gets the file $got ms after the kill"

"$DJMFS_PATTERN" check held --min-size $((last + 4096)) >"$work/check" 2>&1 ||
	fail "check: $(cat "$work/check")"
pass "what both writers published is intact: $(cat "$work/check")"
echo "all lease checks passed"
