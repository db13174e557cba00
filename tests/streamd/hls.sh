#!/usr/bin/env bash
# HLS test of streamd: during a 24 s push the playlist index.m3u8 is a
# live RFC 8216 media playlist (#EXTM3U, byte ranges into data.ts,
# EXT-X-PROGRAM-DATE-TIME, no EXT-X-ENDLIST yet) and window=10 slides
# over the newest ~5 segments (2 s GOPs); once the push is over it ends
# with EXT-X-ENDLIST, ffmpeg plays it end to end without an error into a
# stream as long as the recording, and a start= playlist begins with the
# segment holding that time.
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
make_workdir hls
SECS=24

# segments FILE: how many media segments the playlist lists.
segments() { grep -c '^#EXTINF:' "$1" || true; }

# first_pdt FILE: the first EXT-X-PROGRAM-DATE-TIME, as epoch seconds.
first_pdt() {
	epoch_of "$(tr -d '\r' <"$1" |
		sed -n 's/^#EXT-X-PROGRAM-DATE-TIME:\(.*\)$/\1/p;T;q')"
}

# expect_playlist FILE WHAT: the tags every playlist here must have, and
# every segment a byte range into data.ts.
expect_playlist() {
	local f=$1 n
	[ "$(head -n 1 "$f" | tr -d '\r')" = "#EXTM3U" ] || fail "$2: no #EXTM3U first"
	grep -q '^#EXT-X-TARGETDURATION:[0-9]' "$f" || fail "$2: no EXT-X-TARGETDURATION"
	grep -q '^#EXT-X-PROGRAM-DATE-TIME:' "$f" || fail "$2: no EXT-X-PROGRAM-DATE-TIME"
	n=$(segments "$f")
	[ "$n" -gt 0 ] || fail "$2: no segment"
	[ "$(grep -c '^#EXT-X-BYTERANGE:[0-9]*@[0-9]*' "$f" || true)" = "$n" ] ||
		fail "$2: not one EXT-X-BYTERANGE per segment"
	[ "$(grep -v '^#' "$f" | grep -c 'data\.ts' || true)" = "$n" ] ||
		fail "$2: segment URIs are not data.ts"
}

start_streamd
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10
sleep "$(calc "14 - ($(now) - $t0)")"

# --- While live. -------------------------------------------------------
http /streams/cam1/index.m3u8 "$work/live.m3u8"
expect_code 200 "GET index.m3u8 while live"
expect_playlist "$work/live.m3u8" "live playlist"
! grep -q '^#EXT-X-ENDLIST' "$work/live.m3u8" || fail "live playlist has EXT-X-ENDLIST"
ctype=$(header "$work/live.m3u8.h" Content-Type)
case $ctype in
application/vnd.apple.mpegurl* | application/x-mpegurl* | audio/mpegurl*) ;;
*) fail "playlist Content-Type '$ctype'" ;;
esac
pass "live playlist: $(segments "$work/live.m3u8") segments, byte ranges, program date-time, no ENDLIST ($ctype)"

http '/streams/cam1/index.m3u8?window=10' "$work/window.m3u8"
expect_code 200 "GET index.m3u8?window=10"
expect_playlist "$work/window.m3u8" "window=10 playlist"
n=$(segments "$work/window.m3u8")
[ "$n" -ge 4 ] && [ "$n" -le 6 ] || fail "window=10 lists $n segments, expected ~5"
seq0=$(sed -n 's/^#EXT-X-MEDIA-SEQUENCE:\([0-9]*\).*/\1/p' "$work/window.m3u8")
[ -n "$seq0" ] && [ "$seq0" -gt 0 ] ||
	fail "window=10 playlist 14 s in has media sequence '$seq0', expected > 0"
! grep -q '^#EXT-X-ENDLIST' "$work/window.m3u8" || fail "window playlist has EXT-X-ENDLIST"
pass "window=10: $n segments from media sequence $seq0"

# --- After the end. ----------------------------------------------------
wait_rc "$push_pid" 30
[ "$rc" -eq 0 ] || fail "ffmpeg push ended with status $rc"
wait_live cam1 false 10
http /streams/cam1/index.m3u8 "$work/end.m3u8"
expect_code 200 "GET index.m3u8 after the end"
expect_playlist "$work/end.m3u8" "finished playlist"
grep -q '^#EXT-X-ENDLIST' "$work/end.m3u8" || fail "finished playlist lacks EXT-X-ENDLIST"
n=$(segments "$work/end.m3u8")
near "$n" $((SECS / GOP)) 1 || fail "finished playlist has $n segments, expected $((SECS / GOP))"
total=$(awk -F '[:,]' '/^#EXTINF:/ { s += $2 } END { print s + 0 }' "$work/end.m3u8")
near "$total" $SECS 2 || fail "finished playlist's EXTINFs add up to $total s"
pass "finished playlist: $n segments, $total s, EXT-X-ENDLIST"

ffmpeg -nostdin -v error -i "$URL/streams/cam1/index.m3u8" -map 0 -c copy \
	-f mpegts "$work/played.ts" 2>"$work/play.err" ||
	fail "ffmpeg could not play the playlist: $(head -n 5 "$work/play.err")"
[ ! -s "$work/play.err" ] || fail "playing the playlist: $(head -n 5 "$work/play.err")"
expect_decodes "$work/played.ts" "the playlist played through ffmpeg"
d=$(media_duration "$work/played.ts")
near "$d" $SECS 2 || fail "playing the playlist gave $d s, recorded $SECS"
pass "ffmpeg plays the playlist end to end with no error: $d s"

# --- A playlist from a start time. -------------------------------------
http /streams/cam1 "$work/cam1.json"
rec_start=$(epoch_of "$(json_get "$work/cam1.json" .start)")
http '/streams/cam1/index.m3u8?start=10' "$work/start.m3u8"
expect_code 200 "GET index.m3u8?start=10"
expect_playlist "$work/start.m3u8" "start=10 playlist"
grep -q '^#EXT-X-ENDLIST' "$work/start.m3u8" || fail "start=10 playlist lacks EXT-X-ENDLIST"
pdt=$(first_pdt "$work/start.m3u8")
want=$(calc "$rec_start + 10")
check "$pdt >= $want - $GOP - 0.5 && $pdt <= $want + 0.5" ||
	fail "start=10 playlist begins at $(iso_of "$pdt"), wanted the segment holding $(iso_of "$want")"
n=$(segments "$work/start.m3u8")
near "$n" $(((SECS - 10) / GOP)) 1.5 || fail "start=10 playlist has $n segments"
pass "start=10: first segment at $(iso_of "$pdt") (wanted <= $(iso_of "$want")), $n segments"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all hls checks passed"
