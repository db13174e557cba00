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

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-enospc-test.XXXXXX")
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
MiB=1048576

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

# avail: free bytes as df reports them (its third column).
avail() {
	"$DJMFS" df >"$work/df" 2>&1 || fail "df: $(cat "$work/df")"
	awk 'NR == 2 { print $3 }' "$work/df"
}

"$DJMFS" -q mkfs "$vol" --size 64M --au-size 64K || fail "mkfs"
# Freed space waits a lease (a reader may still read the snapshot it last
# fetched) or a frozen snapshot's hold: keep both short.
"$DJMFSD" --volume "$vol" --listen "$sock" --lease-ms 1500 \
	--snap-lock-max-ms 1000 --prefetch 64 >"$work/djmfsd.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
	kill -0 "$server_pid" 2>/dev/null || fail "djmfsd exited at start"
	if [ -S "$sock" ] && "$DJMFS" -q stats >/dev/null 2>&1; then
		break
	fi
	sleep 0.05
done
"$DJMFS" -q stats >/dev/null 2>&1 || fail "djmfsd did not answer in 10 s"
pass "djmfsd up on a 64 MiB volume of 64 KiB units"

head -c $((512 * 1024 + 7)) /dev/urandom >"$work/keep.bin"
"$DJMFS" -q put "$work/keep.bin" keep || fail "put keep"
pass "a file put before the volume fills"

# --- Fill it. --------------------------------------------------------
"$DJMFS_PATTERN" write fill --count 100000 --size 256K \
	>"$work/acks" 2>"$work/writer.err" &
writer_pid=$!
rc=0
wait_pid "$writer_pid" 120 || rc=$?
writer_pid=
[ "$rc" -ne 124 ] || fail "the writer did not fill 64 MiB in 120 s"
[ "$rc" -eq 3 ] && grep -q '^error ENOSPC$' "$work/acks" ||
	fail "the writer ended with $rc, not ENOSPC: $(tail -n 1 "$work/acks") \
$(cat "$work/writer.err")"
last=$(awk '$1 == "acked" && NF == 3 { s = $3 } END { print s + 0 }' \
	"$work/acks")
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
