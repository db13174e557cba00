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
#
# Environment: STREAMD, STREAMD_SOAK (defaults: the build tree's);
# STREAMD_SOAK_DURATION (default 60s: 30m, 24h, ... for a longer soak) and
# STREAMD_SOAK_VIEWERS (default 20).
# Exit status: 0 pass, 1 fail, 77 skipped (gnuplot missing, programs not
# built, no io_uring/direct I/O).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
if [ -z "${STREAMD_SOAK:-}" ]; then
	for c in ./streamd/streamd-soak "$(dirname "$STREAMD")/streamd-soak"; do
		if [ -f "$c" ] && [ -x "$c" ]; then
			STREAMD_SOAK=$c
			break
		fi
	done
fi
if [ ! -x "${STREAMD_SOAK:-/nonexistent}" ]; then
	echo "SKIP: streamd-soak not built (set STREAMD_SOAK)" >&2
	exit 77
fi
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "SKIP: gnuplot is not installed (streamd-soak --plot needs it)" >&2
	exit 77
fi

make_workdir soak

# --- Bad usage: status 2, a message, no run -----------------------------
for args in "--encoder bogus" "--duration 1x" "--plot x.pdf" "--viewers -1" \
	"--bogus" "--url ftp://x"; do
	# shellcheck disable=SC2086 # split on purpose
	if "$STREAMD_SOAK" $args >"$work/usage.out" 2>"$work/usage.err"; then
		rc=0
	else
		rc=$?
	fi
	[ "$rc" -eq 2 ] || fail "'$args': exit $rc, expected 2"
	[ -s "$work/usage.err" ] || fail "'$args': no message"
	[ ! -s "$work/usage.out" ] || fail "'$args': printed a result"
done
pass "bad usage refused with status 2"

# --- The soak -------------------------------------------------------------
duration=${STREAMD_SOAK_DURATION:-60s}
viewers=${STREAMD_SOAK_VIEWERS:-20}
case $duration in
*h) secs=$((${duration%h} * 3600)) ;;
*m) secs=$((${duration%m} * 60)) ;;
*s) secs=${duration%s} ;;
*) secs=$duration ;;
esac
# Deadlines of 1 s (reads) and 2 s (writes) rather than 0.3 s and 1 s:
# make check runs other tests beside this one on the same two cores, and
# a read that waits for a CPU is not a disk falling behind.  A miss past
# these is still a violation.
# Under AddressSanitizer a freed block sits in a quarantine (256 MB by
# default) before its memory is reused, so RSS climbs for minutes with no
# leak at all and the RSS-growth check would judge the quarantine.  A
# small one fills during warm-up; the plain build ignores the variable.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
start_streamd --publish-token soak-pub --admin-token soak-adm \
	--max-connections $((viewers + 256)) --deadline 1 --write-deadline 2
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
pass "verdict ok, 0 mismatches, 0 HTTP errors"

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
