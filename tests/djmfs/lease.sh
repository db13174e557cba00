#!/usr/bin/env bash
# Lease test of djmfsd: a writer holding a file's write lock is killed
# with SIGKILL, so it neither closes the file nor ends its session.  Until
# its lease runs out (djmfsd --lease-ms 1500 here) another writer's open
# must fail with EBUSY; after that it must succeed, and what the dead
# writer had published must still be there.  A dead writer can neither
# keep a file forever nor have its lock taken while it may still be alive.
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

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-lease-test.XXXXXX")
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
LEASE_MS=1500

fail() {
	echo "FAIL: $*" >&2
	if [ -s "$work/djmfsd.log" ]; then
		echo "--- djmfsd log (tail) ---" >&2
		tail -n 20 "$work/djmfsd.log" >&2
	fi
	exit 1
}
pass() { echo "ok: $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

"$DJMFS" -q mkfs "$vol" --size 128M || fail "mkfs"
"$DJMFSD" --volume "$vol" --listen "$sock" --lease-ms $LEASE_MS \
	>"$work/djmfsd.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
	kill -0 "$server_pid" 2>/dev/null || fail "djmfsd exited at start"
	if [ -S "$sock" ] && "$DJMFS" -q stats >/dev/null 2>&1; then
		break
	fi
	sleep 0.05
done
"$DJMFS" -q stats >/dev/null 2>&1 || fail "djmfsd did not answer in 10 s"
pass "djmfsd up with --lease-ms $LEASE_MS"

# --- A writer that holds the file, then dies without a word. ---------
: >"$work/acks" # before the job starts: polled at once
"$DJMFS_PATTERN" write held --count 1000000 --size 4K --period-ms 20 \
	>"$work/acks" 2>"$work/writer.err" &
writer_pid=$!
for _ in $(seq 200); do
	[ "$(grep -c '^acked ' "$work/acks" || true)" -lt 3 ] || break
	sleep 0.05
done
grep -q '^acked ' "$work/acks" ||
	fail "the first writer got no ack: $(cat "$work/writer.err")"
"$DJMFS" stat held >"$work/stat" 2>&1 || fail "stat: $(cat "$work/stat")"
grep -q '^flags: .*write-locked' "$work/stat" ||
	fail "stat does not show the write lock: $(cat "$work/stat")"
{ kill -9 "$writer_pid" && wait "$writer_pid"; } 2>/dev/null || true
writer_pid=
killed=$(now_ms)
last=$(awk '$1 == "acked" && NF == 3 { s = $3 } END { print s + 0 }' \
	"$work/acks")
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
