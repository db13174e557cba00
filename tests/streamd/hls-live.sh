#!/usr/bin/env bash
# Live HLS test of streamd with real clients, over a 95 s push:
#   - two watchers (hlswatch.py) reload the live playlist and the
#     start=-30 one every 0.5 s as players do, read every new segment,
#     and hold all they see to RFC 8216: a constant target duration that
#     bounds every EXTINF, segments that never change, a head that only
#     moves forward, 3 target durations after a sliding playlist's first
#     segment, and each new segment listed within a target duration (+1 s)
#     of its end; then the same segments in the finished VOD playlist;
#   - ffprobe -live_start_index 0 on index.m3u8?start=-30 and on
#     ?start=<ISO time of live - 30 s> starts within one GOP of live - 30 s:
#     its first video frame's pts against the pts the recording had then
#     (from /streams/cam1 "last_keyframe" {"time","pts"});
#   - both carry EXT-X-START on their first segment; the live one does not.
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
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
make_workdir hls-live
SECS=95
BEHIND=30
WINDOW=10 # hls_live_window's default
watch=$(dirname "$0")/hlswatch.py

start_streamd
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10
pl=$URL/streams/cam1/index.m3u8
python3 "$watch" "$pl" $((SECS + 20)) >"$work/watch-live.json" \
	2>"$work/watch-live.err" &
watch_live=$!
sleep "$(calc "$BEHIND + 8 - ($(now) - $t0)")"
python3 "$watch" "$pl?start=-$BEHIND" $((SECS + 20)) \
	--delayed $((BEHIND - WINDOW - GOP)) >"$work/watch-behind.json" \
	2>"$work/watch-behind.err" &
watch_behind=$!

# first_video_pts URL: the pts (s) of the first video frame ffprobe
# decodes from the playlist's first segment.
first_video_pts() {
	ffprobe -v error -live_start_index 0 -select_streams v:0 \
		-show_entries frame=pts_time -read_intervals '%+#1' \
		-of csv=p=0 "$1" | sed -n 1p
}

# expect_shift WHAT QUERY T: the playlist with QUERY, asked for at wall
# time T (the live edge then), starts within one GOP of T - BEHIND.
expect_shift() {
	local what=$1 query=$2 t=$3 got want delta
	http "/streams/cam1/index.m3u8?$query" "$work/shift.m3u8"
	expect_code 200 "GET index.m3u8?$query"
	grep -qx '#EXT-X-START:TIME-OFFSET=0,PRECISE=YES' "$work/shift.m3u8" ||
		fail "$what: no EXT-X-START on its first segment"
	got=$(first_video_pts "$URL/streams/cam1/index.m3u8?$query")
	[ -n "$got" ] || fail "$what: ffprobe found no video frame"
	want=$(calc "$lk_pts + ($t - $BEHIND - $lk_time)")
	delta=$(calc "$got - $want")
	# the keyframe at or before the wanted time: up to a GOP earlier,
	# and 0.3 s for the clocks of this script and of the request
	check "$delta <= 0.3 && $delta >= -($GOP + 0.3)" ||
		fail "$what: first video pts $got, wanted within a GOP before $want"
	pass "$what: ffprobe -live_start_index 0 starts at pts $(printf %.3f "$got"), live - $BEHIND s was pts $(printf %.3f "$want") ($(printf %+.3f "$delta") s, within one GOP)"
}

http /streams/cam1 "$work/cam1.json"
lk_time=$(epoch_of "$(json_get "$work/cam1.json" .last_keyframe.time)")
lk_pts=$(pts_seconds "$(json_get "$work/cam1.json" .last_keyframe.pts)")
expect_shift "start=-$BEHIND" "start=-$BEHIND" "$(now)"
t=$(now)
iso=$(iso_of "$(calc "$t - $BEHIND")")
expect_shift "start=$iso" "start=$iso" "$(calc "$t")"

http /streams/cam1/index.m3u8 "$work/live.m3u8"
! grep -q '^#EXT-X-START' "$work/live.m3u8" || fail "the live playlist has EXT-X-START"
! grep -q '^#EXT-X-PLAYLIST-TYPE' "$work/live.m3u8" || fail "the live playlist has a type"
pass "the live playlist slides ($(grep -c '^#EXTINF' "$work/live.m3u8") segments, no type, no EXT-X-START)"

wait_rc "$push_pid" $((SECS + 30))
[ "$rc" = 0 ] || fail "the push failed ($rc)"
# json_field FILE KEY: a scalar of the watchers' one-line JSON.
json_field() { json_get "$1" ".$2"; }
for w in live behind; do
	pid=watch_$w
	wait_rc "${!pid}" 60
	f=$work/watch-$w.json
	[ "$rc" = 0 ] || fail "$w watcher: $(cat "$f" "$work/watch-$w.err")"
	[ "$(json_field "$f" finished)" = true ] ||
		fail "$w watcher never saw the playlist end: $(cat "$f")"
	[ "$(json_field "$f" type)" = VOD ] || fail "$w: finished playlist not VOD: $(cat "$f")"
	msg="$w playlist: $(json_field "$f" reloads) reloads, $(json_field "$f" segments) segments read and unchanged through to the VOD playlist, target $(json_field "$f" target) s throughout, >= $(json_field "$f" min_after_first_s) s after the first segment"
	# start=-N lists up to live - N + the window: no "listed after
	# its end" figure of its own
	[ $w = behind ] || msg="$msg, listed $(json_field "$f" listing_delay_p50_s) s (p50) and at most $(json_field "$f" listing_delay_max_s) s after they ended"
	pass "$msg"
done
stop_streamd
