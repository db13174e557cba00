#!/usr/bin/env bash
# VLC test of streamd: during a 100 s push, cvlc (dummy interface, video
# and audio outputs) plays the live HLS playlist, the live progressive
# .ts and the start=-30 playlist for 20 s each and must play all of it:
# VLC must still be playing when it is stopped after 20 s, have shown a
# picture, and its -vv log must not say "EOF reached".  It is stopped
# from outside (SIGTERM after 20 s, --run-time only as a backstop):
# VLC's --run-time counts media time from the first segment a playlist
# lists, and on a live playlist, where playback begins near its end, it
# stops early and logs "EOF reached" itself.  The same HLS URLs then run
# with --run-time 20 as users type it, and that stop must be the
# run-time's (see expect_runtime_stop).  On a finished recording,
# HEAD of data.ts carries Content-Length and Accept-Ranges without
# opening a player session, and VLC seeks into data.ts with --start-time
# 10 through Range requests.
#
# VLC 3's own TS demuxer cannot seek by time over HTTP whatever the
# server sends: it maps a time to a byte only on streams its access calls
# fast-seekable (local files; its HTTP access never says so), and only
# after it has seen a PCR, while --start-time comes before the first one.
# When it says so ("failed or not possible"), the test notes it and
# requires the seek of VLC's libavformat demuxer (--demux avformat),
# which bisects the file with Range requests, to succeed instead.
#
# VLC refuses to run as root: as root, the players run as nobody (setpriv)
# with a writable HOME in the scratch directory.
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped (no cvlc, or root without
# setpriv).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
command -v cvlc >/dev/null 2>&1 || {
	echo "SKIP: cvlc (VLC) is not installed" >&2
	exit 77
}
as_user=()
if [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null 2>&1 || {
		echo "SKIP: VLC refuses root and setpriv is missing" >&2
		exit 77
	}
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
make_workdir vlc
# nobody must reach its HOME and write there.
chmod 755 "$work"
mkdir -m 777 "$work/vlc"
SECS=130 # the push
RUN=20   # seconds each player runs

# vlc LOG OPTION... URL: cvlc -vv with no interface, no outputs and no
# media library, stopped after $RUN s (SIGTERM) unless it ends first; its
# output timed in LOG (each line prefixed with the seconds since it
# started).  Sets ran (seconds it ran) and stopped (1 when it still ran
# at $RUN s and was stopped).  A line "$STOP_MARK" goes into the log just
# before the stop: what VLC logs after it (an "EOF reached" as its HTTP
# input closes) is the stop's doing, and the line's place in the pipe
# says so even when the timestamps, taken as the log is read, lag.
STOP_MARK="test: stopping VLC"
vlc() {
	local log=$1 t0 st mark
	shift
	t0=$(now)
	{
		(sleep "$(calc "$RUN - 0.2")" >/dev/null 2>&1
		 echo "$STOP_MARK") &
		mark=$!
		timeout "$RUN" "${as_user[@]}" env HOME="$work/vlc" \
			cvlc -vv -I dummy --no-media-library --vout dummy \
			--aout dummy --play-and-exit "$@" 2>&1 && st=0 || st=$?
		kill "$mark" 2>/dev/null || true
		wait "$mark" 2>/dev/null || true
		echo "vlc: exit status $st"
	} | timed >"$log"
	ran=$(r3 "$(now) - $t0")
	stopped=0
	! grep -q 'vlc: exit status 124$' "$log" || stopped=1
}

# expect_plays_through PATH WHAT: VLC plays $URL/PATH for $RUN s: shows a
# picture, still plays when stopped, and never reaches an end.
expect_plays_through() {
	local log=$work/vlc-$2.log eof first
	vlc "$log" --run-time $((RUN + 20)) "$URL$1"
	eof=$(awk -v mark="$STOP_MARK" '$0 ~ mark { exit }
		/main input debug: EOF reached/ { print $1; exit }' "$log")
	first=$(awk '/Received first picture/ { print $1; exit }' "$log")
	[ -z "$eof" ] ||
		fail "VLC on $1 reached EOF after $eof s of $RUN: $(grep -E 'error|warning' "$log" | tail -n 5)"
	[ "$stopped" = 1 ] ||
		fail "VLC on $1 ended by itself after $ran s of $RUN: $(grep -E 'error|EOF' "$log" | tail -n 5)"
	[ -n "$first" ] || fail "VLC on $1 showed no picture in $RUN s"
	pass "VLC on $1: first picture after $first s, still playing when stopped at $ran s, no EOF"
}

# expect_runtime_stop PATH WHAT: the command exactly as users type it,
# cvlc ... --play-and-exit --run-time 20.  VLC counts run-time as media
# time from the first segment the playlist lists, and a live playlist
# begins two segments in (VLC's live start), so it stops itself when that
# count reaches 20 s and logs "EOF reached", as every run-time stop does.
# That EOF must be the run-time's: VLC's clock (its adaptive demuxer's
# cached.i_time) has reached 20 s, after a picture, with no error; a
# playlist that ran dry would end with the clock short of 20 s.
expect_runtime_stop() {
	local log=$work/vlc-rt-$2.log first eof clock begin
	RUN=40 vlc "$log" --run-time 20 "$URL$1"
	[ "$stopped" = 0 ] || fail "VLC --run-time 20 on $1 still ran after 40 s"
	first=$(awk '/Received first picture/ { print $1; exit }' "$log")
	eof=$(awk '/main input debug: EOF reached/ { print $1; exit }' "$log")
	clock=$(sed -n 's/.*cached\.i_time (\([0-9]*\)).*/\1/p' "$log" | tail -n 1)
	begin=$(sed -n 's/.*rap start (pl \([0-9]*\)\/.*/\1/p' "$log" | tail -n 1)
	[ -n "$first" ] || fail "VLC --run-time 20 on $1 showed no picture"
	[ -n "$clock" ] && [ -n "$begin" ] ||
		fail "VLC --run-time 20 on $1: no clock in its log"
	check "$clock >= 19500000" ||
		fail "VLC --run-time 20 on $1 ended at its clock's $(calc "$clock / 1e6") s, short of 20 s: $(grep -E 'error|EOF' "$log" | tail -n 5)"
	! grep -q 'main input error' "$log" ||
		fail "VLC --run-time 20 on $1: $(grep -m1 'main input error' "$log")"
	pass "VLC --run-time 20 on $1: first picture after $first s, played from its clock's $(calc "$begin / 1e6" | sed 's/0*$//') s to $(calc "$clock / 1e6" | sed 's/0*$//') s, then its run-time stop (EOF at $eof s, exit after $ran s)"
}

start_streamd
pass "streamd listens on $URL"

# --- A finished recording: HEAD and seeking in data.ts. -----------------
make_pattern "$work/fin-src.ts" 24
push_body fin "$work/fin-src.ts"
case $code in 200 | 201 | 204) ;; *) fail "uploading fin: HTTP $code" ;; esac
wait_live fin false 10
http /streams/fin "$work/fin.json"
bytes=$(json_get "$work/fin.json" .bytes)
sessions() {
	http /metrics "$work/metrics.txt"
	awk '$1 == "streamd_sessions_total" { print $2 }' "$work/metrics.txt"
}
before=$(sessions)
http /streams/fin/data.ts "$work/head" -I
expect_code 200 "HEAD data.ts"
[ "$(header "$work/head.h" Content-Length)" = "$bytes" ] ||
	fail "HEAD data.ts: Content-Length '$(header "$work/head.h" Content-Length)', the recording has $bytes bytes"
[ "$(header "$work/head.h" Accept-Ranges)" = bytes ] ||
	fail "HEAD data.ts: Accept-Ranges '$(header "$work/head.h" Accept-Ranges)'"
http '/streams/fin.ts?start=0' "$work/head-ts" -I
expect_code 200 "HEAD fin.ts?start=0"
[ "$(header "$work/head-ts.h" Content-Length)" = "$bytes" ] ||
	fail "HEAD fin.ts?start=0: Content-Length '$(header "$work/head-ts.h" Content-Length)', wanted $bytes"
after=$(sessions)
[ "$after" = "$before" ] ||
	fail "HEAD requests opened $((after - before)) player sessions"
pass "HEAD data.ts and fin.ts?start=0: Content-Length $bytes, Accept-Ranges bytes on data.ts, no session opened ($before before, $after after)"

RUN=8 vlc "$work/vlc-seek.log" --start-time 10 --run-time 5 "$URL/streams/fin/data.ts"
if grep -q 'failed or not possible' "$work/vlc-seek.log"; then
	note "VLC's TS demuxer cannot seek data.ts by time over HTTP (no fast seek): $(grep -m1 'failed or not possible' "$work/vlc-seek.log" | cut -d ' ' -f 2-)"
	RUN=8 vlc "$work/vlc-seek-avf.log" --demux avformat --start-time 10 \
		--run-time 5 "$URL/streams/fin/data.ts"
	! grep -q 'failed or not possible' "$work/vlc-seek-avf.log" ||
		fail "VLC (--demux avformat) could not seek data.ts: $(grep -m1 'failed or not possible' "$work/vlc-seek-avf.log")"
	grep -q 'DEMUX_SET_TIME' "$work/vlc-seek-avf.log" ||
		fail "VLC (--demux avformat) never seeked data.ts"
	how="--demux avformat"
else
	how="its TS demuxer"
fi
ranges=$(grep -c '"GET /streams/fin/data.ts HTTP/1.1" 206' "$work/access.log" || true)
[ "$ranges" -ge 2 ] || fail "VLC seeking data.ts made $ranges Range requests, wanted >= 2"
pass "VLC ($how) seeks data.ts to --start-time 10 with $ranges Range requests"

# --- Live: HLS, .ts, then HLS 30 s behind. ------------------------------
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10
sleep_until 12
expect_plays_through /streams/cam1/index.m3u8 hls-live
expect_plays_through /streams/cam1.ts ts-live
sleep_until 34
expect_plays_through '/streams/cam1/index.m3u8?start=-30' hls-shifted
expect_runtime_stop /streams/cam1/index.m3u8 hls-live
expect_runtime_stop '/streams/cam1/index.m3u8?start=-30' hls-shifted

# The push is not needed any more: its ffmpeg (the child of the
# background job) stops, then the daemon.
kill $(pgrep -P "$push_pid") 2>/dev/null || true
wait_rc "$push_pid" 15
stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all vlc checks passed"
