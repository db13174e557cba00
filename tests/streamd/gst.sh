#!/usr/bin/env bash
# GStreamer test of streamd's progressive .ts: during a 100 s push,
# playbin (souphttpsrc, queue2 buffering, tsdemux, decoders, fake sinks
# that render on the clock) plays the live /streams/NAME.ts and the
# time-shifted NAME.ts?start=-30 for 15 s each and must render at least
# 10 s of video (250 frames at 25 fps) in that time, without falling
# back to buffering once playing.  The pacing behind it is checked with
# curl too: start=-30 hands over about burst seconds at once and then
# the stream's rate, and ?burst=0 the whole backlog at once.
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped (no gst-launch-1.0 or playbin).
# shellcheck disable=SC2015 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
for p in gst-launch-1.0 gst-inspect-1.0; do
	command -v "$p" >/dev/null 2>&1 || {
		echo "SKIP: $p is not installed" >&2
		exit 77
	}
done
for e in playbin fakesink souphttpsrc tsdemux h264parse avdec_h264; do
	gst-inspect-1.0 "$e" >/dev/null 2>&1 || {
		echo "SKIP: no GStreamer element $e" >&2
		exit 77
	}
done
make_workdir gst
SECS=100    # the push
PLAY=15     # seconds each player runs
MIN=250     # frames it must render meanwhile: 10 s at 25 fps
BURST=5     # streamd's default burst

# play_gst PATH LOG: playbin on $URL/PATH for $PLAY s, video into a fakesink
# called vs that syncs on the clock and says "chain" per frame rendered,
# audio into a syncing fakesink; the output, timed, in LOG.  Sets frames
# (rendered), playing (seconds to the first PLAYING, or -1) and rebuffers
# (times it went back to PAUSED for buffering after playing).
play_gst() {
	local path=$1 log=$2
	{ timeout "$PLAY" gst-launch-1.0 -v playbin "uri=$URL$path" \
		video-sink="fakesink name=vs sync=true silent=false" \
		audio-sink="fakesink sync=true" 2>&1 || true; } | timed >"$log"
	frames=$(grep -c 'vs: last-message = chain' "$log" || true)
	playing=$(awk '/Setting pipeline to PLAYING/ { print $1; exit }' "$log")
	playing=${playing:--1}
	rebuffers=$(awk '/Setting pipeline to PLAYING/ { p = 1 }
		p && /Setting pipeline to PAUSED/ { n++ } END { print n + 0 }' "$log")
}

# expect_plays PATH WHAT: play_gst, then at least $MIN frames, no rebuffer.
expect_plays() {
	local log=$work/gst-$2.log
	play_gst "$1" "$log"
	[ "$playing" != -1 ] || fail "playbin on $1 never reached PLAYING: $(grep -E 'ERROR|WARN|buffering' "$log" | tail -n 5)"
	[ "$frames" -ge "$MIN" ] ||
		fail "playbin on $1 rendered $frames frames in $PLAY s (wanted >= $MIN; PLAYING after $playing s, $rebuffers rebuffers)"
	[ "$rebuffers" -eq 0 ] ||
		fail "playbin on $1 went back to buffering $rebuffers times ($frames frames)"
	pass "playbin on $1: $frames frames rendered in $PLAY s, PLAYING after $playing s, $rebuffers rebuffers"
}

start_streamd
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10

# --- Live, from the newest keyframe. -----------------------------------
sleep 3
expect_plays /streams/cam1.ts live

# --- 30 s behind live (so 30 s must be recorded first). ---------------
sleep_until 34
expect_plays '/streams/cam1.ts?start=-30' shifted

# --- The pacing itself. -------------------------------------------------
# What start=-30 hands over in 4 s: the burst and 4 s of stream, not the
# 30 s behind it; with burst=0, the backlog at once.
streams_list "$work/streams.json"
bitrate=$(stream_field "$work/streams.json" cam1 bitrate)
[ -n "$bitrate" ] && check "$bitrate > 0" || fail "/streams gives cam1 no bitrate"
curl -sS --max-time 4 -o "$work/paced.ts" "$URL/streams/cam1.ts?start=-30" \
	2>"$work/paced.err" || true
got=$(calc "$(size_of "$work/paced.ts") * 8 / $bitrate")
check "$got >= $BURST + 4 - 3 && $got <= $BURST + 4 + 3" ||
	fail "start=-30 sent $got s of stream in 4 s, wanted ~$((BURST + 4)) (burst $BURST s + 4 s)"
pass "start=-30 paced: $(r3 "$got") s of stream in 4 s (burst $BURST s + 4 s)"
curl -sS --max-time 2 -o "$work/unpaced.ts" "$URL/streams/cam1.ts?start=-30&burst=0" \
	2>"$work/unpaced.err" || true
got=$(calc "$(size_of "$work/unpaced.ts") * 8 / $bitrate")
check "$got >= 25" || fail "start=-30&burst=0 sent $got s of stream in 2 s, wanted the ~30 s backlog"
pass "start=-30&burst=0 unpaced: $(r3 "$got") s of stream in 2 s"

# The push is not needed any more: its ffmpeg (the child of the
# background job) stops, then the daemon.
kill $(pgrep -P "$push_pid") 2>/dev/null || true
wait_rc "$push_pid" 15
stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all gst checks passed"
