#!/usr/bin/env bash
# Upgrade test of DJMFS volumes from format 1 (one copy of the metadata)
# to format 2: a format 1 volume (made by `djmfs mkfs --format 1`, the
# previous format's code path) gets files put and a stream recorded by a
# djmfsd told to keep its format, which is then killed, so records wait
# in the journal.  On copies of that volume:
#   - djmfsd --no-upgrade refuses it and leaves every byte alone;
#   - `djmfs upgrade` grows the file by copy B's size and a rerun says it
#     is done; the first start of a plain djmfsd upgrades it, logged;
#   - an upgrade killed after each of its steps (the test hook
#     DJMFS_UPGRADE_STOP_AFTER) leaves either the format 1 volume, clean
#     and serving, or format 2, and a rerun completes it;
# and every time, every published byte reads back and fsck finds the
# volume clean.  The upgraded volume then takes a trim that a restart
# keeps (its checkpoint image is of the current version).
#
# Environment: DJMFS, DJMFSD, DJMFS_PATTERN, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD DJMFS_PATTERN
make_workdir upgrade-test
MiB=1048576
COUNT=40

# --- A format 1 volume with a recording, left by a crash. ------------
"$DJMFS" -q mkfs "$vol" --size 64M --format 1 || fail "mkfs --format 1"
start_server --keep-format --log-level info
need_direct_io
head -c 3000007 /dev/urandom >"$work/a.bin"
head -c 5000 /dev/urandom >"$work/b.bin"
"$DJMFS" -q put "$work/a.bin" rec/a || fail "put a"
"$DJMFS" -q put "$work/b.bin" rec/b || fail "put b"
start_writer stream --count $COUNT --size 64K --period-ms 1
wait_rc "$writer_pid" 30
[ "$rc" -eq 0 ] || fail "the writer ended with $rc: $(cat "$work/writer.err")"
kill_server
orig=$work/orig
cp --sparse=always "$vol" "$orig"
pass "format 1 volume: two files put and $COUNT appends recorded, djmfsd killed"

# format_of FILE: the format fsck -n (which writes nothing) reports for
# FILE, whatever else it finds.
format_of() {
	{ "$DJMFS" fsck -n "$1" 2>/dev/null || true; } |
		sed -n 's/^superblock:.*(format \([0-9]*\).*/\1/p'
}

# fsck_clean FILE FORMAT: fsck exits 0 and reports FORMAT.
fsck_clean() {
	rc=0
	"$DJMFS" fsck "$1" >"$work/fsck.out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || fail "fsck $1: exit $rc: $(cat "$work/fsck.out")"
	grep -q "^superblock:.*(format $2" "$work/fsck.out" ||
		fail "fsck $1: not format $2: $(cat "$work/fsck.out")"
}

# serves_all FILE [DJMFSD OPTION...]: djmfsd on FILE serves every byte
# recorded above, then stops cleanly.
serves_all() {
	vol=$1
	shift
	start_server "$@"
	"$DJMFS" cat rec/a >"$work/a.out" || fail "cat rec/a from $vol"
	cmp -s "$work/a.bin" "$work/a.out" || fail "rec/a differs on $vol"
	"$DJMFS" cat rec/b >"$work/b.out" || fail "cat rec/b from $vol"
	cmp -s "$work/b.bin" "$work/b.out" || fail "rec/b differs on $vol"
	"$DJMFS_PATTERN" check stream --min-size $((COUNT * 65536)) \
		>"$work/check" 2>&1 || fail "check stream on $vol: $(cat "$work/check")"
	stop_server
}

fsck_clean "$orig" 1

# --- --no-upgrade refuses and writes nothing. ------------------------
cp --sparse=always "$orig" "$work/refused"
rc=0
"$DJMFSD" --volume "$work/refused" --listen "$work/refused.sock" \
	--no-upgrade >"$work/refused.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "djmfsd --no-upgrade served a format 1 volume"
grep -q 'volume format 1: run djmfs upgrade' "$work/refused.log" ||
	fail "djmfsd --no-upgrade: $(cat "$work/refused.log")"
cmp -s "$orig" "$work/refused" || fail "djmfsd --no-upgrade changed the volume"
pass "djmfsd --no-upgrade refuses a format 1 volume and leaves it alone"

# --- djmfs upgrade. -------------------------------------------------
cp --sparse=always "$orig" "$work/cmd"
"$DJMFS" upgrade "$work/cmd" >"$work/upgrade.out" 2>&1 ||
	fail "djmfs upgrade: $(cat "$work/upgrade.out")"
grep -q 'volume format 1 upgraded to 2: second copy of the metadata (4 MiB) at offset 67108864 (file grown from 67108864 to 71303168 bytes)' \
	"$work/upgrade.out" || fail "djmfs upgrade said: $(cat "$work/upgrade.out")"
[ "$(stat -c %s "$work/cmd")" -eq $((68 * MiB)) ] ||
	fail "upgraded file is $(stat -c %s "$work/cmd") bytes"
fsck_clean "$work/cmd" 2
"$DJMFS" upgrade "$work/cmd" >"$work/upgrade.out" 2>&1 ||
	fail "djmfs upgrade again: $(cat "$work/upgrade.out")"
grep -q 'already format 2' "$work/upgrade.out" ||
	fail "djmfs upgrade again said: $(cat "$work/upgrade.out")"
serves_all "$work/cmd"
fsck_clean "$work/cmd" 2
pass "djmfs upgrade: file grown by 4 MiB, every byte reads back, fsck clean"

# --- A first start upgrades. -----------------------------------------
cp --sparse=always "$orig" "$work/first"
: >"$work/djmfsd.log"
serves_all "$work/first"
grep -q 'WARN: .*volume format 1 upgraded to 2' "$work/djmfsd.log" ||
	fail "first start: no upgrade line: $(cat "$work/djmfsd.log")"
fsck_clean "$work/first" 2
pass "a first start upgrades (logged at WARN), every byte reads back"

# --- Killed after each step, then run again. -------------------------
for step in 1 2 3 4; do
	v=$work/step$step
	cp --sparse=always "$orig" "$v"
	rc=0
	DJMFS_UPGRADE_STOP_AFTER=$step "$DJMFS" upgrade "$v" \
		>"$work/step.out" 2>&1 || rc=$?
	[ "$rc" -eq 137 ] || fail "upgrade stopped after step $step: exit $rc: $(cat "$work/step.out")"
	f=$(format_of "$v")
	if [ "$step" -lt 4 ]; then
		[ "$f" = 1 ] || fail "killed after step $step: format '$f', not 1"
		fsck_clean "$v" 1
		cp --sparse=always "$v" "$v.old"
		serves_all "$v.old" --keep-format
	else
		# Past the commit: copy 1 says format 2, copy 0 is stale.
		[ "$f" = 2 ] || fail "killed after step $step: format '$f', not 2"
	fi
	"$DJMFS" upgrade "$v" >"$work/step.out" 2>&1 ||
		fail "upgrade rerun after step $step: $(cat "$work/step.out")"
	[ "$step" -lt 4 ] || grep -q 'superblock copy 0 bad (stale: format 1, generation 0): rewritten from copy 1' \
		"$work/step.out" || fail "rerun after step 4: $(cat "$work/step.out")"
	fsck_clean "$v" 2
	serves_all "$v"
	fsck_clean "$v" 2
	pass "killed after step $step: format $f intact; a rerun completes it, every byte reads back"
done

# --- An upgraded volume takes trims, kept across a restart. ----------
vol=$work/cmd
start_server
"$DJMFS" -q trim stream data $((COUNT / 2 * 65536)) || fail "trim on $vol"
stop_server
start_server
"$DJMFS_PATTERN" check stream --min-size $((COUNT * 65536)) >"$work/check" 2>&1 ||
	fail "check after trim on $vol: $(cat "$work/check")"
[ "$(awk '$1 == "ok" { print $4 }' "$work/check")" -eq $((COUNT / 2 * 65536)) ] ||
	fail "start after a restart: $(cat "$work/check")"
stop_server
fsck_clean "$vol" 2
pass "an upgraded volume keeps a trim across a restart (checkpoint), fsck clean"
echo "all upgrade checks passed"
