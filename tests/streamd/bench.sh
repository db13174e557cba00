#!/bin/bash
# Integration test of streamd-bench: one short run the way a user starts
# it (the bench generates its payload with ffmpeg and starts its own
# streamd on a free port), checking that the last line of stdout is one
# JSON object with every documented field and the values a light load
# must give (no underflows, bytes served); then that bad usage fails with
# a message and no result, and that --help lists every option.
#
# Environment: STREAMD, STREAMD_BENCH (defaults: the build tree's
# programs, seen from its top or from the programs' directory);
# STREAMD_BENCH_STRICT=1 also requires zero underflows (a performance
# figure of the machine and the daemon, so off by default: this tests the
# tool).
# Exit status: 0 pass, 1 fail, 77 skipped (no ffmpeg, programs not built).

set -euo pipefail

fail() {
	echo "FAIL: $*" >&2
	for f in "${work:-/nonexistent}"/*.err "${work:-/nonexistent}"/*/streamd.log; do
		[ -s "$f" ] || continue
		echo "--- $f (tail) ---" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}
pass() { echo "ok: $*"; }
skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# pick CANDIDATE...: the first executable file, else the first.
pick() {
	for c in "$@"; do
		if [ -f "$c" ] && [ -x "$c" ]; then
			echo "$c"
			return
		fi
	done
	echo "$1"
}

STREAMD=${STREAMD:-$(pick ./streamd/streamd ./streamd)}
STREAMD_BENCH=${STREAMD_BENCH:-$(pick ./streamd/streamd-bench ./streamd-bench)}
export STREAMD
for p in "$STREAMD" "$STREAMD_BENCH"; do
	if [ ! -f "$p" ] || [ ! -x "$p" ]; then
		skip "$p not built (set STREAMD, STREAMD_BENCH)"
	fi
done
command -v ffmpeg >/dev/null 2>&1 || skip "ffmpeg is needed for the payload"

work=$(mktemp -d "${TMPDIR:-/tmp}/streamd-bench-test.XXXXXX")
bench_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$bench_pid" ]; then
		kill "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# field NAME: the value of "NAME" in $json (a number, null, ...).
field() {
	printf '%s\n' "$json" | sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p"
}

# is_number VALUE [MIN]: VALUE is a decimal number, at least MIN if given.
is_number() {
	printf '%s\n' "$1" | grep -Eq '^-?[0-9]+(\.[0-9]+)?$' || return 1
	[ -z "${2:-}" ] || awk -v v="$1" -v m="$2" 'BEGIN { exit !(v >= m) }'
}

# --- A short run ---------------------------------------------------------
# The bench's temporary directory (payload, volume) goes under $work.
TMPDIR=$work "$STREAMD_BENCH" --recorders 1 --viewers 4 --duration 5 \
	--warmup 4 >"$work/out" 2>"$work/bench.err" &
bench_pid=$!
rc=0
for _ in $(seq 1800); do # 180 s at the most: ffmpeg, start, 9 s of load
	kill -0 "$bench_pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$bench_pid" 2>/dev/null; then
	fail "streamd-bench still runs after 180 s"
fi
wait "$bench_pid" || rc=$?
bench_pid=
[ "$rc" -eq 0 ] || fail "streamd-bench exited with $rc"
json=$(tail -n 1 "$work/out")
case $json in
"{"*"}") ;;
*) fail "the last line is not a JSON object: $json" ;;
esac
for k in recorders viewers duration_s underflows deadline_misses bytes_out \
	cpu_pct rss_mb bitrate_bps bytes_in viewer_bytes viewer_stalls \
	viewer_bytes_short errors; do
	printf '%s\n' "$json" | grep -q "\"$k\": " || fail "no field $k in $json"
done
pass "every field is there"

[ "$(field recorders)" = 1 ] || fail "recorders is $(field recorders)"
[ "$(field viewers)" = 4 ] || fail "viewers is $(field viewers)"
if ! is_number "$(field duration_s)" 4.5 || is_number "$(field duration_s)" 8; then
	fail "duration_s is $(field duration_s), expected about 5"
fi
is_number "$(field underflows)" 0 || fail "underflows is $(field underflows)"
if [ "${STREAMD_BENCH_STRICT:-0}" = 1 ] && [ "$(field underflows)" != 0 ]; then
	fail "underflows is $(field underflows), expected 0"
fi
is_number "$(field deadline_misses)" 0 || fail "deadline_misses is $(field deadline_misses)"
is_number "$(field bytes_out)" 1 || fail "bytes_out is $(field bytes_out)"
is_number "$(field viewer_bytes)" 1 || fail "viewer_bytes is $(field viewer_bytes)"
# 1 recorder at 2 Mbit/s for 5 s is 1.25 MB: half of it at least.
is_number "$(field bytes_in)" 625000 || fail "bytes_in is $(field bytes_in)"
is_number "$(field cpu_pct)" 0 || fail "cpu_pct is $(field cpu_pct)"
is_number "$(field rss_mb)" 0.1 || fail "rss_mb is $(field rss_mb)"
[ "$(field errors)" = 0 ] || fail "errors is $(field errors)"
grep -q 'measure' "$work/bench.err" || fail "no progress on stderr"
ls -d "$work"/streamd-bench.* >/dev/null 2>&1 && fail "the bench left its directory"
pass "4 viewers: bytes_out $(field bytes_out), cpu $(field cpu_pct)%," \
	"rss $(field rss_mb) MiB, $(field underflows) underflows," \
	"$(field viewer_stalls) stalls"

# --- Bad usage: a message, exit 2, no result ------------------------------
for args in "--viewers 0" "--bitrate 2X" "--duration -1" "--bogus" \
	"--pid 1" "--url ftp://x"; do
	# shellcheck disable=SC2086 # split on purpose
	if "$STREAMD_BENCH" $args >"$work/out" 2>"$work/usage.err"; then rc=0; else rc=$?; fi
	[ "$rc" -eq 2 ] || fail "'$args': exit $rc, expected 2"
	[ -s "$work/usage.err" ] || fail "'$args': no message"
	[ ! -s "$work/out" ] || fail "'$args': printed a result"
done
pass "bad usage refused"

"$STREAMD_BENCH" --help >"$work/out" || fail "--help failed"
for f in recorders viewers duration bitrate warmup shift seed sweep \
	max-viewers url pid streamd streamd-arg keep help version; do
	grep -q -- "--$f\b" "$work/out" || fail "--help lacks --$f"
done
pass "--help lists every option"
exit 0
