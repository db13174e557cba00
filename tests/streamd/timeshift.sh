#!/usr/bin/env bash
# Time-shift test of streamd: while a 40 s push runs, players ask for
# pieces of the recording by time, and each answer must be a stream that
# decodes without a single error and starts where it was asked to, within
# one GOP (2 s) plus 1 s of slack:
#   start=-10&duration=6   10 s behind the live edge, which is estimated
#                          from the request time, and mapped to media
#                          time through /streams/cam1 "last_keyframe"
#                          {"time","pts"};
#   start=<ISO-8601>       the recording's start + 5 s as a date-time;
#   duration=5             5 s long, +- one GOP (ffprobe's duration);
#   start=0&duration=4     from the very beginning;
#   no start, no duration  a live follow that keeps delivering for the
#                          6 s curl listens (--max-time 6).
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015,SC2119 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
make_workdir timeshift
# 40 s: the clips below are paced (burst, then real time), so the live
# follow at the end comes some seconds after they were asked for.
SECS=40
SLACK=$((GOP + 1))

start_streamd
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10
sleep "$(calc "20 - ($(now) - $t0)")"

# The wall time of media time T (seconds) in the recording, from the
# newest keyframe's pair of wall time and pts.
http /streams/cam1 "$work/cam1.json"
expect_code 200 "GET /streams/cam1"
kt=$(json_get "$work/cam1.json" .last_keyframe.time)
kp=$(json_get "$work/cam1.json" .last_keyframe.pts)
[ -n "$kt" ] && [ -n "$kp" ] ||
	fail "/streams/cam1 has no last_keyframe time/pts: $(cat "$work/cam1.json")"
kt=$(epoch_of "$kt")
kp=$(pts_seconds "$kp")
wall_of() { calc "$kt - ($kp - $1)"; }
rec_start=$(epoch_of "$(json_get "$work/cam1.json" .start)")
near "$kt" "$(now)" $SLACK ||
	fail "last_keyframe.time $(iso_of "$kt") is not near now $(iso_of "$(now)")"
pass "last keyframe: pts $(r3 "$kp") s at $(iso_of "$kt"); recording began $(iso_of "$rec_start")"

# fetch_ts QUERY OUT WHAT: GET /streams/cam1.ts?QUERY into OUT, 200, decodes.
fetch_ts() {
	http "/streams/cam1.ts?$1" "$2"
	expect_code 200 "GET /streams/cam1.ts?$1"
	expect_decodes "$2" "$3"
}

# expect_starts_at OUT WALL WHAT: OUT's first video frame is at most a
# GOP (plus slack) before WALL and no more than the slack after it; sets
# off to how far from WALL it is.
expect_starts_at() {
	local first
	first=$(wall_of "$(video_start "$1")")
	check "$first >= $2 - $SLACK && $first <= $2 + 1" ||
		fail "$3: starts at $(iso_of "$first"), wanted $(iso_of "$2") (GOP $GOP s)"
	off=$(calc "$first - $2")
}

# --- 10 s behind the live edge, 6 s long. ---------------------------
treq=$(now)
fetch_ts 'start=-10&duration=6' "$work/behind.ts" "start=-10&duration=6"
expect_starts_at "$work/behind.ts" "$(calc "$treq - 10")" "start=-10"
d=$(media_duration "$work/behind.ts")
near "$d" 6 $SLACK || fail "start=-10&duration=6 lasts $d s"
pass "start=-10&duration=6: decodes clean, starts $(r3 "$off") s from live-10, lasts $(r3 "$d") s"

# --- An absolute ISO-8601 start. -------------------------------------
want=$(calc "$rec_start + 5")
iso=$(iso_of "$want")
fetch_ts "start=$iso&duration=4" "$work/iso.ts" "start=$iso"
expect_starts_at "$work/iso.ts" "$want" "start=$iso"
pass "start=$iso (recording start + 5 s): decodes clean, starts $(r3 "$off") s from it"

# --- duration=5. -----------------------------------------------------
fetch_ts 'start=-16&duration=5' "$work/five.ts" "start=-16&duration=5"
d=$(media_duration "$work/five.ts")
near "$d" 5 "$GOP + 0.5" || fail "duration=5 gave $d s (+- one GOP)"
pass "start=-16&duration=5 lasts $(r3 "$d") s"

# --- From the beginning. ---------------------------------------------
fetch_ts 'start=0&duration=4' "$work/zero.ts" "start=0&duration=4"
expect_starts_at "$work/zero.ts" "$rec_start" "start=0"
d=$(media_duration "$work/zero.ts")
near "$d" 4 $SLACK || fail "start=0&duration=4 lasts $d s"
pass "start=0&duration=4: decodes clean, starts $(r3 "$off") s from the recording's start, lasts $(r3 "$d") s"

# --- A live follow: data keeps coming for the whole 6 s. -------------
streams_list "$work/streams.json"
bitrate=$(stream_field "$work/streams.json" cam1 bitrate)
[ -n "$bitrate" ] && check "$bitrate > 0" || fail "/streams gives cam1 no bitrate"
curl -sS --max-time 6 -o "$work/follow.ts" "$URL/streams/cam1.ts" \
	2>"$work/follow.err" &
follow=$!
sleep 3
mid=$(size_of "$work/follow.ts" 2>/dev/null || echo 0)
wait_rc "$follow" 10
[ "$rc" -eq 28 ] || fail "the live follow ended with curl status $rc before --max-time"
end=$(size_of "$work/follow.ts")
min=$(calc "4 * $bitrate / 8 * 0.5")
check "$end > $min" || fail "live follow got $end bytes in 6 s, wanted > $min"
check "$end - $mid > 2 * $bitrate / 8 * 0.5" ||
	fail "live follow stalled: $mid bytes at 3 s, $end at 6 s"
pass "live follow: $mid bytes after 3 s, $end after 6 s (bitrate $bitrate b/s)"
# curl cut the stream in the middle of a frame, which cannot decode: the
# first 4 s must.
decode_secs=4 expect_decodes "$work/follow.ts" "the live follow's first 4 s"
pass "the live follow decodes (its first 4 s; the rest was cut mid-frame)"

wait_rc "$push_pid" 30
[ "$rc" -eq 0 ] || fail "ffmpeg push ended with status $rc"
wait_live cam1 false 10
# Once finished, the live edge is the end: start=-10 is still 10 s before it.
http /streams/cam1 "$work/cam1-end.json"
end_kt=$(epoch_of "$(json_get "$work/cam1-end.json" .last_keyframe.time)")
fetch_ts 'start=-10&duration=4' "$work/after.ts" "start=-10 after the end"
pass "start=-10 on the finished recording decodes (last keyframe $(iso_of "$end_kt"))"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all timeshift checks passed"
