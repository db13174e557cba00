#!/bin/bash
# Integration test of streamd-bench: one short run the way a user starts
# it (the bench generates its payload with ffmpeg and starts its own
# streamd on a free port), checking that the last line of stdout is one
# JSON object with every documented field and the values a light load
# must give (no underflows, bytes served), with the capacity fields
# (admitted, refused, time to first byte, device reads per byte out, CPU
# per Gbit/s); a run with --history, whose viewers must start within the
# recorded span the JSON reports; then, against tests/streamd/full503.py
# (a stand-in for a full streamd), that a 503 with Retry-After is a
# refusal and not an error, that a sweep stops at the admission limit and
# reports it, that a slow first byte is a stall, and that a 503 without
# Retry-After is an error; then that bad usage fails with a message and
# no result, and that --help lists every option.
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
fake_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	for p in "$bench_pid" "$fake_pid"; do
		[ -n "$p" ] || continue
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
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

# bench ARGS...: runs streamd-bench (its temporary directory, payload and
# volume, under $work) for 180 s at the most; $rc its status, $json the
# last line of its stdout, its stderr in $work/bench.err.
bench() {
	TMPDIR=$work "$STREAMD_BENCH" "$@" >"$work/out" 2>"$work/bench.err" &
	bench_pid=$!
	rc=0
	for _ in $(seq 1800); do # ffmpeg, start, the load
		kill -0 "$bench_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$bench_pid" 2>/dev/null; then
		fail "streamd-bench $* still runs after 180 s"
	fi
	wait "$bench_pid" || rc=$?
	bench_pid=
	json=$(tail -n 1 "$work/out")
}

# is_json: $json is one JSON object.
is_json() {
	case $json in
	"{"*"}") ;;
	*) fail "the last line is not a JSON object: $json" ;;
	esac
}

# fake ARGS...: starts full503.py with ARGS; $fake_url its address.
fake() {
	rm -f "$work/port"
	python3 "$(dirname "$0")/full503.py" --port-file "$work/port" "$@" \
		2>"$work/fake.err" &
	fake_pid=$!
	for _ in $(seq 100); do
		[ -s "$work/port" ] && break
		sleep 0.1
	done
	[ -s "$work/port" ] || fail "full503.py did not start"
	fake_url=http://127.0.0.1:$(cat "$work/port")
}

fake_stop() {
	kill "$fake_pid" 2>/dev/null || true
	wait "$fake_pid" 2>/dev/null || true
	fake_pid=
}

# --- A short run ---------------------------------------------------------
bench --recorders 1 --viewers 4 --duration 5 --warmup 4
[ "$rc" -eq 0 ] || fail "streamd-bench exited with $rc"
is_json
for k in recorders viewers duration_s underflows deadline_misses bytes_out \
	cpu_pct rss_mb bitrate_bps bytes_in viewer_bytes viewer_stalls \
	viewer_bytes_short errors admitted refused refused_reasons \
	cache_hit_ratio disk_read_bytes disk_read_bytes_source \
	disk_bytes_per_byte_out ttfb_p50_ms ttfb_p99_ms ttfb_max_ms cpu_pct_per_gbps history_s \
	history_s_effective shift_min_s shift_max_s; do
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

# The capacity figures.  main's streamd has no cache and no device-read
# metric: the reads come from /proc/PID/io, and the viewers, 1 to 3 s
# behind live, read history from the O_DIRECT volume.
[ "$(field admitted)" = 4 ] || fail "admitted is $(field admitted)"
[ "$(field refused)" = 0 ] || fail "refused is $(field refused)"
for k in ttfb_p50_ms ttfb_p99_ms ttfb_max_ms cpu_pct_per_gbps \
	disk_bytes_per_byte_out; do
	is_number "$(field $k)" 0 || fail "$k is $(field $k)"
done
awk -v a="$(field ttfb_p50_ms)" -v b="$(field ttfb_p99_ms)" \
	-v c="$(field ttfb_max_ms)" 'BEGIN { exit !(a <= b && b <= c && c < 5000) }' ||
	fail "ttfb p50 $(field ttfb_p50_ms) p99 $(field ttfb_p99_ms) max $(field ttfb_max_ms)"
# Viewers this close to live are served from the interval cache: the
# disk may well read nothing (the --history run below, without the
# cache, must read).
is_number "$(field disk_read_bytes)" 0 || fail "disk_read_bytes is $(field disk_read_bytes)"
is_number "$(field cache_hit_ratio)" 0 || fail "cache_hit_ratio is $(field cache_hit_ratio)"
case $(field disk_read_bytes_source) in
'"metrics"' | '"proc_io"') ;;
*) fail "disk_read_bytes_source is $(field disk_read_bytes_source)" ;;
esac
[ "$(field history_s)" = null ] || fail "history_s is $(field history_s)"
[ "$(field refused_reasons)" != null ] ||
	fail "refused_reasons is null though streamd counts refusals by reason"
[ "$(field history_s_effective)" = null ] ||
	fail "history_s_effective is $(field history_s_effective)"
is_number "$(field shift_min_s)" 1 || fail "shift_min_s is $(field shift_min_s)"
is_number "$(field shift_max_s)" 4 && fail "shift_max_s is $(field shift_max_s): beyond warmup - 1"
pass "capacity: ttfb p99 $(field ttfb_p99_ms) ms, disk $(field disk_read_bytes)" \
	"bytes ($(field disk_bytes_per_byte_out) per byte out, from" \
	"$(field disk_read_bytes_source)), cpu $(field cpu_pct_per_gbps) %/Gbit/s," \
	"cache_hit_ratio $(field cache_hit_ratio)"

# --- --history: viewers start within the recorded span ------------------
# 8 s recorded: the bound is clipped to 7 (6 if the step started late),
# and 16 viewers drawn from it go beyond the 3 s the default would allow.
# Without the cache, so what the viewers read comes from the disk.
bench --recorders 1 --viewers 16 --duration 3 --warmup 8 --history 3600 \
	--streamd-arg --cache-size --streamd-arg 0
[ "$rc" -eq 0 ] || fail "streamd-bench --history exited with $rc"
is_json
awk -v h="$(field history_s)" 'BEGIN { exit !(h == 3600) }' ||
	fail "history_s is $(field history_s)"
eff=$(field history_s_effective)
case $eff in
6 | 7) ;;
*) fail "history_s_effective is $eff, expected 7 (8 s recorded)" ;;
esac
is_number "$(field shift_min_s)" 1 || fail "shift_min_s is $(field shift_min_s)"
is_number "$(field shift_max_s)" 4 || fail "shift_max_s is $(field shift_max_s)"
is_number "$(field shift_max_s)" $((eff + 1)) &&
	fail "shift_max_s $(field shift_max_s) beyond history_s_effective $eff"
[ "$(field admitted)" = 16 ] || fail "admitted is $(field admitted)"
is_number "$(field disk_read_bytes)" 1 || fail "disk_read_bytes is $(field disk_read_bytes)"
pass "--history 3600 after 8 s: bound $eff s, viewers $(field shift_min_s)" \
	"to $(field shift_max_s) s behind live"

# --- Refusals, against a stand-in for a full streamd ---------------------
# It admits 3 playback sessions at a time and answers the rest 503 with
# Retry-After; an admitted viewer gets its head after 0.8 s and its first
# body byte 0.8 s later, a refused one its 503 after 1.3 s.  A sweep from
# 2 viewers: 2 admitted, then 4 offered, 3 admitted and 1 refused, where
# it stops.  Each admitted viewer stalled once at its start (no gap
# between head and body reached a second, but the start took 1.6 s); the
# refused one did not, though it waited longer.
command -v python3 >/dev/null 2>&1 || skip "python3 is needed for full503.py"
fake --admit 3 --retry-after 5 --head-delay 0.8 --first-byte-delay 0.8 \
	--refuse-delay 1.3
bench --url "$fake_url" --recorders 1 --viewers 2 --duration 2.5 --warmup 2 \
	--sweep --max-viewers 64
fake_stop
[ "$rc" -eq 0 ] || fail "streamd-bench against 503s exited with $rc"
is_json
[ "$(field refused)" = 1 ] || fail "refused is $(field refused)"
[ "$(field admitted)" = 3 ] || fail "admitted is $(field admitted)"
[ "$(field errors)" = 0 ] || fail "errors is $(field errors): a refusal is no error"
printf '%s\n' "$json" | grep -q '"refused_reasons": {"disk": 1}' ||
	fail "refused_reasons is not {\"disk\": 1}: $json"
[ "$(field sweep_admission_limit)" = 3 ] ||
	fail "sweep_admission_limit is $(field sweep_admission_limit)"
[ "$(field sweep_max_viewers)" = 3 ] ||
	fail "sweep_max_viewers is $(field sweep_max_viewers)"
steps=$(printf '%s\n' "$json" | grep -o '"refused": [0-9]*' | wc -l)
[ "$steps" -eq 3 ] || fail "expected 2 sweep steps (and the top), saw $((steps - 1)): $json"
[ "$(field viewer_stalls)" = 3 ] ||
	fail "viewer_stalls is $(field viewer_stalls), expected 3 (start-up)"
is_number "$(field ttfb_p50_ms)" 1400 || fail "ttfb_p50_ms is $(field ttfb_p50_ms)"
[ "$(field disk_read_bytes)" = null ] || fail "disk_read_bytes is $(field disk_read_bytes)"
[ "$(field cache_hit_ratio)" = null ] || fail "cache_hit_ratio is $(field cache_hit_ratio)"
[ "$(field cpu_pct_per_gbps)" = null ] || fail "cpu_pct_per_gbps is $(field cpu_pct_per_gbps)"
grep -q 'admission limit' "$work/bench.err" || fail "no 'admission limit' step"
pass "503 + Retry-After: 3 admitted, 1 refused, sweep stopped at the" \
	"admission limit 3, 3 start-up stalls, ttfb p50 $(field ttfb_p50_ms) ms"

# A 503 without Retry-After is an error.
fake --admit 0 --no-retry-after
bench --url "$fake_url" --recorders 1 --viewers 3 --duration 2 --warmup 2
fake_stop
[ "$rc" -eq 1 ] || fail "503 without Retry-After: exit $rc, expected 1"
is_json
[ "$(field refused)" = 0 ] || fail "refused is $(field refused)"
is_number "$(field errors)" 3 || fail "errors is $(field errors)"
grep -q 'streamd answered 503' "$work/bench.err" || fail "the 503 is not told"
pass "503 without Retry-After: $(field errors) errors, exit 1"

# --- Bad usage: a message, exit 2, no result ------------------------------
for args in "--viewers 0" "--bitrate 2X" "--duration -1" "--bogus" \
	"--pid 1" "--url ftp://x" "--history 0" "--shift 2 --history 9"; do
	# shellcheck disable=SC2086 # split on purpose
	if "$STREAMD_BENCH" $args >"$work/out" 2>"$work/usage.err"; then rc=0; else rc=$?; fi
	[ "$rc" -eq 2 ] || fail "'$args': exit $rc, expected 2"
	[ -s "$work/usage.err" ] || fail "'$args': no message"
	[ ! -s "$work/out" ] || fail "'$args': printed a result"
done
pass "bad usage refused"

"$STREAMD_BENCH" --help >"$work/out" || fail "--help failed"
for f in recorders viewers duration bitrate warmup shift history seed sweep \
	max-viewers url pid streamd streamd-arg keep help version; do
	grep -q -- "--$f\b" "$work/out" || fail "--help lacks --$f"
done
pass "--help lists every option"
exit 0
