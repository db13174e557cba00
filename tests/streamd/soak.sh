#!/bin/bash
# The make-check soak of streamd: an embedded streamd with publish_token
# and admin_token set, and streamd-soak run against it the way a user
# runs it before going live (2 recorders of the builtin generator, 20
# viewers over every player route, 10 s of warm-up and 60 s of viewing,
# streamd's own pid watched too, a CSV and an SVG plot).  It checks that
# the soak exits 0 with one JSON object whose verdict is ok, that no
# viewer saw a byte other than the one sent and both recordings have the
# md5 of what was sent, that the CSV has a row per interval and the plot
# exists; and that bad usage fails with status 2 before doing anything.
# Before it, three short runs against tests/streamd/full503.py (a
# stand-in for a streamd that is full): viewers answered 503 with
# Retry-After are refusals, not errors (JSON, status line, CSV), and come
# back no sooner than advised; a recording refused is a violation unless
# --allow-recorder-refusal, which drops it from the run; a 503 without
# Retry-After is an HTTP error.
#
# Environment: STREAMD, STREAMD_SOAK (defaults: the build tree's);
# STREAMD_SOAK_DURATION (default 60s: 30m, 24h, ... for a longer soak) and
# STREAMD_SOAK_VIEWERS (default 20).
# Exit status: 0 pass, 1 fail, 77 skipped (gnuplot missing, programs not
# built, no io_uring/direct I/O).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_soak
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "SKIP: gnuplot is not installed (streamd-soak --plot needs it)" >&2
	exit 77
fi

make_workdir soak

# --- Bad usage: status 2, a message, no run -----------------------------
for args in "--encoder bogus" "--duration 1x" "--plot x.pdf" "--viewers -1" \
	"--bogus" "--url ftp://x" "--allow-recorder-refusal=1"; do
	soak_bad_usage "$args"
done
pass "bad usage refused with status 2"

# --- Refusals, against a stand-in for a full streamd -----------------------
# soak_fake NAME FAKE-ARGS -- SOAK-ARGS: streamd-soak against full503.py
# started with FAKE-ARGS; $rc, and $work/NAME.json (the JSON) and
# $work/NAME.err.
soak_fake() {
	local name=$1 fake_args=() fake_pid
	shift
	while [ "$1" != -- ]; do
		fake_args+=("$1")
		shift
	done
	shift
	rm -f "$work/port"
	python3 "$(dirname "$0")/full503.py" --port-file "$work/port" \
		"${fake_args[@]}" 2>"$work/$name.fake.err" &
	fake_pid=$!
	wait_for 10 "full503.py's port" test -s "$work/port"
	TMPDIR=$work "$STREAMD_SOAK" --url "http://127.0.0.1:$(cat "$work/port")" \
		--interval 1s "$@" >"$work/$name.out" 2>"$work/$name.err" &
	local pid=$!
	wait_rc "$pid" 60
	[ "$rc" -ne 124 ] || fail "$name: streamd-soak still runs after 60 s"
	kill "$fake_pid" 2>/dev/null || true
	wait "$fake_pid" 2>/dev/null || true
	tail -n 1 "$work/$name.out" >"$work/$name.json"
}
fget() { json_get "$work/$1.json" "$2"; }

if command -v python3 >/dev/null 2>&1; then
	# Every viewer request is refused with Retry-After: 2, and so is
	# the recording soak-1: allowed, it leaves the run.  8 viewers for
	# 6 s ask at most 6 / 2 + 1 times each.
	soak_fake full --refuse-suffix 1 --retry-after 2 -- --recorders 2 \
		--viewers 8 --duration 6s --warmup 4s --allow-recorder-refusal \
		--csv "$work/full.csv"
	[ "$rc" -eq 0 ] || fail "refusals: exit $rc: $(fget full .violations[0])"
	[ "$(fget full .ok)" = true ] || fail "refusals: ok is $(fget full .ok)"
	[ "$(fget full .http_errors)" = 0 ] ||
		fail "refusals: http_errors is $(fget full .http_errors)"
	refused=$(fget full .refused)
	check "$refused >= 8 && $refused <= 32" ||
		fail "refused is $refused: expected 8 to 32 (Retry-After 2 s honoured)"
	[ "$(fget full .recorders_refused)" = 1 ] ||
		fail "recorders_refused is $(fget full .recorders_refused)"
	[ "$(fget full '.recordings[1].refused')" = true ] ||
		fail "recording 1 is not marked refused"
	[ "$(fget full '.recordings[0].md5_ok')" = true ] ||
		fail "recording 0's md5 differs"
	grep -q "^\\[ *[0-9]*s\\] rec 1 view 8 .* refused [1-9]" "$work/full.err" ||
		fail "no status line with refusals"
	head -n 1 "$work/full.csv" | grep -q ',refused$' ||
		fail "the CSV has no refused column"
	check "$(tail -n 1 "$work/full.csv" | awk -F, '{ print $NF }') == $refused" ||
		fail "the CSV's last refused is not $refused"
	pass "503 + Retry-After: $refused refusals of 8 viewers in 6 s," \
		"0 errors, verdict ok; a refused recorder left the run"

	# A refused recording without --allow-recorder-refusal: a violation.
	soak_fake rec --refuse-suffix 1 -- --recorders 2 --viewers 0 \
		--duration 1s --warmup 4s
	[ "$rc" -eq 1 ] || fail "recorder refused: exit $rc, expected 1"
	grep -q 'refused.*recorders come first' "$work/rec.err" ||
		fail "recorder refused: no violation named"
	[ "$(fget rec .ok)" = false ] || fail "recorder refused: ok is $(fget rec .ok)"
	pass "a refused recording is a violation without --allow-recorder-refusal"

	# A 503 without Retry-After is an HTTP error.
	soak_fake bare --no-retry-after -- --recorders 1 --viewers 4 \
		--duration 3s --warmup 4s
	[ "$rc" -eq 1 ] || fail "503 without Retry-After: exit $rc, expected 1"
	[ "$(fget bare .refused)" = 0 ] || fail "bare 503: refused is $(fget bare .refused)"
	check "$(fget bare .http_errors) >= 4" ||
		fail "bare 503: http_errors is $(fget bare .http_errors)"
	pass "503 without Retry-After: $(fget bare .http_errors) HTTP errors, exit 1"
else
	note "python3 missing: the refusal runs are skipped"
fi

# --- The soak -------------------------------------------------------------
duration=${STREAMD_SOAK_DURATION:-60s}
viewers=${STREAMD_SOAK_VIEWERS:-20}
secs=$(soak_seconds "$duration")
# Deadlines of 1 s (reads) and 2 s (writes) rather than 0.3 s and 1 s:
# make check runs other tests beside this one on the same two cores, and
# a read that waits for a CPU is not a disk falling behind.  A miss past
# these is still a violation.
# Under AddressSanitizer a freed block sits in a quarantine (256 MB by
# default) before its memory is reused, so RSS climbs for minutes with no
# leak at all and the RSS-growth check would judge the quarantine.  A
# small one fills during warm-up; the plain build ignores the variable.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
# The interval cache grows to its budget by design (viewers from random
# points put the blocks they read); a small budget fills during the
# warm-up, so growth after it is a leak, not the cache.
start_streamd --publish-token soak-pub --admin-token soak-adm \
	--max-connections $((viewers + 256)) --deadline 1 --write-deadline 2 \
	--cache-size 8M
TMPDIR=$work "$STREAMD_SOAK" --url "$URL" --recorders 2 --viewers "$viewers" \
	--duration "$duration" --warmup 10s --interval 5s --seed 3 \
	--publish-token soak-pub --admin-token soak-adm \
	--watch-pid "$streamd_pid" --csv "$work/soak.csv" \
	--plot "$work/soak.svg" >"$work/soak.json" 2>"$work/soak.err" &
soak_pid=$!
wait_rc "$soak_pid" $((secs + 90))
[ "$rc" -ne 124 ] || fail "streamd-soak still runs after $((secs + 90)) s"
if [ "$rc" -ne 0 ]; then
	grep 'violation' "$work/soak.err" >&2 || true
	fail "streamd-soak exited with $rc"
fi
pass "streamd-soak exited 0 after warm-up 10 s + $duration with $viewers viewers"

json=$(tail -n 1 "$work/soak.json")
case $json in
"{"*"}") ;;
*) fail "the last line of stdout is not a JSON object: $json" ;;
esac
printf '%s\n' "$json" >"$work/last.json"
get() { json_get "$work/last.json" "$1"; }
[ "$(get .ok)" = true ] || fail "ok is $(get .ok): $(get .violations)"
[ "$(get .violations#)" = 0 ] || fail "violations listed: $json"
[ "$(get .mismatches)" = 0 ] || fail "mismatches is $(get .mismatches)"
[ "$(get .http_errors)" = 0 ] || fail "http_errors is $(get .http_errors)"
# main's streamd admits everyone: a refusal here would be a bug of the
# soak, not the server keeping a promise.
[ "$(get .refused)" = 0 ] || fail "refused is $(get .refused)"
[ "$(get .recorders_refused)" = 0 ] || fail "recorders_refused is $(get .recorders_refused)"
pass "verdict ok, 0 mismatches, 0 HTTP errors, 0 refusals"

verified=$(get .verified_bytes)
# Viewers at 2 Mbit/s for the whole run: a third of that at least.
check "$verified >= $viewers * 250000 * $secs / 3" ||
	fail "verified_bytes is only $verified"
check "$(get .viewer_sessions) >= $viewers" ||
	fail "viewer_sessions is $(get .viewer_sessions)"
pass "verified $verified bytes in $(get .viewer_sessions) viewer sessions"

[ "$(get .recordings#)" = 2 ] || fail "recordings: $(get .recordings#)"
for i in 0 1; do
	[ "$(get ".recordings[$i].md5_ok")" = true ] ||
		fail "recording $i: md5 $(get ".recordings[$i].md5") != sent $(get ".recordings[$i].md5_sent")"
	check "$(get ".recordings[$i].bytes") > 15000000" ||
		fail "recording $i has only $(get ".recordings[$i].bytes") bytes"
done
pass "both recordings: md5 of data.ts = md5 of what was sent" \
	"($(get '.recordings[0].bytes'), $(get '.recordings[1].bytes') bytes)"

[ "$(get .watched#)" = 1 ] || fail "the watched pid is not in the JSON"
pass "streamd rss $(get .rss_start_mb) -> $(get .rss_end_mb) MB," \
	"fds $(get .fds_start) -> $(get .fds_end)"

rows=$(($(wc -l <"$work/soak.csv") - 1))
[ "$rows" -ge $((secs / 5 + 2)) ] ||
	fail "the CSV has $rows rows, expected one per 5 s"
head -n 1 "$work/soak.csv" | grep -q '^t_s,' || fail "the CSV has no header"
grep -q "^\\[ *[0-9]*s\\] rec 2 view $viewers " "$work/soak.err" ||
	fail "no status line on stderr"
[ -s "$work/soak.svg" ] && grep -q '<svg' "$work/soak.svg" ||
	fail "no SVG plot"
pass "CSV of $rows rows, status lines, SVG plot of $(size_of "$work/soak.svg") bytes"

stop_streamd
pass "streamd stopped cleanly"
