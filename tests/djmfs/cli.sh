#!/usr/bin/env bash
# Integration test of the djmfs tool against a real djmfsd: formats a
# temporary volume, starts the server on a Unix socket, then drives every
# subcommand the way a user would -- put (a file and stdin), ls, stat,
# cat (byte-identical to the input), snap and snap --lock (ended by ^C),
# df, stats, trim (stat shows the start, cat of trimmed bytes fails), rm
# -- and, once the server is stopped, fsck (clean).  It also
# checks --help of every subcommand and that bad usage exits 2 while
# runtime errors exit 1 with a "djmfs: CMD ARG: text (ENAME)" line.
#
# Environment: DJMFS, DJMFSD, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD
make_workdir cli-test
out=$work/out
err=$work/err

# run NAME ARGS...: the tool must succeed; stdout in $out, stderr in $err.
run() {
	local name=$1 rc=0
	shift
	"$DJMFS" "$@" >"$out" 2>"$err" || rc=$?
	[ "$rc" -eq 0 ] || fail "$name: exit $rc: $(cat "$err")"
}

# expect_exit CODE NAME ARGS...: the tool must exit CODE with a message.
expect_exit() {
	local code=$1 name=$2 rc=0
	shift 2
	"$DJMFS" "$@" >"$out" 2>"$err" || rc=$?
	[ "$rc" -eq "$code" ] || fail "$name: exit $rc, expected $code"
	[ -s "$err" ] || fail "$name: exit $rc without a message"
	pass "$name exits $code"
}

# --- Help and usage errors (no server needed). -----------------------
run "--help" --help
cp "$out" "$work/help"
grep -q '^usage: djmfs' "$work/help" || fail "--help: no usage line"
for c in mkfs ls stat cat put rm trim df fsck snap stats; do
	grep -q "^  $c " "$work/help" || fail "--help does not list $c"
	run "$c --help" "$c" --help
	grep -q "^usage: djmfs .*$c" "$out" || fail "$c --help: no usage"
done
pass "--help of djmfs and of every subcommand"

expect_exit 2 "no command"
expect_exit 2 "unknown command" frobnicate
expect_exit 2 "unknown option" ls --bogus
expect_exit 2 "unknown global option" --bogus ls
expect_exit 2 "missing operand" stat
expect_exit 2 "extra operand" stat a b
expect_exit 2 "put with one operand" put onlyone
expect_exit 2 "bad size" mkfs "$vol" --size 12Q
expect_exit 2 "mkfs without --size" mkfs "$vol"
expect_exit 2 "snap --lock without seconds" snap x --lock
expect_exit 2 "option of another command" cat x --repair

# --- mkfs. -----------------------------------------------------------
run mkfs mkfs "$vol" --size 256M --au-size 1M
[ "$(stat -c %s "$vol")" -eq $((256 << 20)) ] || fail "mkfs: wrong size"
pass "mkfs of a 256 MiB volume"
expect_exit 1 "mkfs over a volume" mkfs "$vol" --size 256M
grep -q '(EEXIST)' "$err" || fail "mkfs over a volume: $(cat "$err")"
run "mkfs --force" -q mkfs "$vol" --size 256M --au-size 1M --force
[ ! -s "$out" ] || fail "-q mkfs printed: $(cat "$out")"
pass "mkfs --force (quiet)"

# --- A server, and files in it. --------------------------------------
start_server --log-level info
pass "djmfsd answers on $sock"

movie_size=$((3 * 1048576 + 12345))
head -c $movie_size /dev/urandom >"$work/in.bin"
head -c 100000 /dev/urandom >"$work/small.bin"
run put put "$work/in.bin" movie
pass "put of a 3 MiB file"
expect_exit 1 "put over an existing file" put "$work/in.bin" movie
grep -q '^djmfs: put movie: File exists (EEXIST)$' "$err" ||
	fail "put over an existing file: $(cat "$err")"
"$DJMFS" put - small --no-sync --object body <"$work/small.bin" >"$out" ||
	fail "put from stdin"
pass "put from stdin into object 'body' (not SYNCHRONOUS)"

run ls ls
grep -q ' movie$' "$out" && grep -q ' small$' "$out" ||
	fail "ls: $(cat "$out")"
[ "$(wc -l <"$out")" -eq 2 ] || fail "ls: $(cat "$out")"
awk -v n=$movie_size '$4 == "movie" && $1 == n {f=1} END {exit !f}' "$out" ||
	fail "ls: movie's size: $(cat "$out")"
run "ls PREFIX" ls mo
[ "$(wc -l <"$out")" -eq 1 ] && grep -q ' movie$' "$out" ||
	fail "ls mo: $(cat "$out")"
run "ls -l" ls -l
awk 'NF != 7 {bad=1} END {exit bad}' "$out" || fail "ls -l: $(cat "$out")"
pass "ls, ls PREFIX, ls -l"

run stat stat movie
grep -q "^size: $movie_size\$" "$out" || fail "stat: $(cat "$out")"
grep -q "^object [0-9]*: data DATA+SYNC size $movie_size extents [1-9]" \
	"$out" ||
	fail "stat: objects: $(cat "$out")"
grep -q '^version: [1-9]' "$out" || fail "stat: version: $(cat "$out")"
run "stat small" stat small
grep -q '^object [0-9]*: body DATA size 100000 ' "$out" ||
	fail "stat small: $(cat "$out")"
run "stat --extents" stat movie --extents
grep -q '^  extent 0: offset [0-9]* length [1-9]' "$out" ||
	fail "stat --extents: $(cat "$out")"
pass "stat, stat --extents"
expect_exit 1 "stat of a missing file" stat nosuch
grep -q '^djmfs: stat nosuch: No such file or directory (ENOENT)$' "$err" ||
	fail "stat nosuch: $(cat "$err")"

"$DJMFS" cat movie >"$work/out.bin" || fail "cat movie"
cmp "$work/in.bin" "$work/out.bin" || fail "cat: bytes differ"
"$DJMFS" cat movie --lock >"$work/out.bin" || fail "cat --lock"
cmp "$work/in.bin" "$work/out.bin" || fail "cat --lock: bytes differ"
"$DJMFS" cat small --object body >"$work/out.bin" || fail "cat --object"
cmp "$work/small.bin" "$work/out.bin" || fail "cat --object: bytes differ"
pass "cat, cat --lock, cat --object are byte-identical to the input"
expect_exit 1 "cat of a missing object" cat small --object nosuch

run snap snap movie
grep -q '^version: [1-9]' "$out" && grep -q "^size: $movie_size\$" "$out" ||
	fail "snap: $(cat "$out")"
run "snap --lock" snap movie --lock 0.2
grep -q '^locked movie version [1-9]' "$out" &&
	grep -q '^unlocked movie version' "$out" ||
	fail "snap --lock: $(cat "$out")"
pass "snap, snap --lock 0.2"

: >"$work/snap.out" # before the job starts: polled at once
"$DJMFS" snap movie --lock 60 >"$work/snap.out" 2>"$err" &
snap_pid=$!
wait_for "snap --lock 60 to lock" grep -q '^locked' "$work/snap.out"
kill -INT "$snap_pid"
wait_rc "$snap_pid" 5
[ "$rc" -eq 0 ] || fail "snap --lock after SIGINT: status $rc"
grep -q '^unlocked' "$work/snap.out" || fail "snap --lock: no unlock"
pass "snap --lock ends early on SIGINT and unlocks"

run df df
[ "$(wc -l <"$out")" -eq 2 ] || fail "df: $(cat "$out")"
# Size is the data area: the volume less its metadata areas.
awk 'NR == 2 && $1 > 200 * 1048576 && $1 <= 256 * 1048576 && $6 == 2 \
	{ok=1} END {exit !ok}' "$out" ||
	fail "df: $(cat "$out")"
run "df -h" df -h
grep -q 'M' "$out" || fail "df -h: $(cat "$out")"
pass "df, df -h"

run stats stats
for k in uptime_ns cpu_user_ns cpu_sys_ns ops mutations lock_busy_ns \
	journal_records journal_batches journal_bytes checkpoints sessions \
	alloc_stalls; do
	grep -q "\"$k\":[0-9]" "$out" || fail "stats: no $k: $(cat "$out")"
done
if command -v python3 >/dev/null 2>&1; then
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out" ||
		fail "stats: not JSON"
fi
pass "stats prints the server's counters as JSON"

# --- Trimming: the movie's first 2 MiB go; the rest reads the same. ----
run trim trim movie data 2M
grep -q '^trim movie: object data starts at 2097152$' "$out" ||
	fail "trim: $(cat "$out")"
run "stat after trim" stat movie
grep -q "^object [0-9]*: data DATA+SYNC size $movie_size extents [1-9][0-9]* start 2097152\$" \
	"$out" || fail "stat after trim: $(cat "$out")"
run "trim lower" trim movie data 1M
grep -q 'starts at 2097152$' "$out" || fail "trim lower: $(cat "$out")"
expect_exit 1 "trim past the size" trim movie data 1G
grep -q '(EINVAL)$' "$err" || fail "trim past the size: $(cat "$err")"
expect_exit 1 "trim of a missing object" trim movie nosuch 1
expect_exit 2 "trim with a bad offset" trim movie data lots
expect_exit 1 "cat of trimmed bytes" cat movie
grep -q '(ENODATA)$' "$err" || fail "cat of trimmed bytes: $(cat "$err")"
pass "trim, stat shows the start, lower starts change nothing, trimmed bytes are ENODATA"

run rm rm small movie
run "ls after rm" ls
[ ! -s "$out" ] || fail "ls after rm: $(cat "$out")"
expect_exit 1 "rm of a missing file" rm movie
pass "rm"

expect_exit 8 "fsck of a volume the server holds" fsck "$vol"
stop_server

# --- Offline check. --------------------------------------------------
run fsck fsck "$vol"
grep -q 'clean' "$out" || fail "fsck: $(cat "$out")"
pass "fsck after a clean stop"
expect_exit 8 "fsck of a missing volume" fsck "$work/nosuch"
expect_exit 1 "a server that is not there" stat x
echo "all djmfs CLI checks passed"
