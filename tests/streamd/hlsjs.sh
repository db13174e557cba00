#!/usr/bin/env bash
# Browser test of streamd: hls.js 1.7.4 in headless Chromium, on a page
# served from another origin (a second port), plays a live stream 30 s
# behind live through index.m3u8?start=-30.  That needs streamd's CORS
# (cors_origins naming the page's origin) for the playlist and the byte
# ranges of data.ts, and EXT-X-PROGRAM-DATE-TIME for hls.js to tell the
# wall time of the frame on screen.  Checks: after ~10 s of playback the
# frame is 30 s +- one GOP (plus the tolerance below) behind the wall
# clock, and currentTime moved at least 8 s in those 10 s; then a streamd
# started without cors_origins serves the same playlist to curl, but the
# browser keeps it from the page, which gets hls.js's manifestLoadError.
#
# Needs node, Chromium (/usr/bin/chromium, or CHROMIUM) and the npm
# packages of tests/streamd/web (npm ci there: .ci/prepare does it);
# skipped (77) without them.
# Environment: STREAMD (default: the build tree's), CHROMIUM,
# IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

web=$(cd "$(dirname "$0")/web" && pwd)
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

# need_browser: node, Chromium and the web/ packages, else skip (77).
need_browser() {
	command -v node >/dev/null 2>&1 ||
		{ echo "SKIP: node is not installed" >&2; exit 77; }
	[ -x "$CHROMIUM" ] ||
		{ echo "SKIP: no Chromium at $CHROMIUM (set CHROMIUM)" >&2; exit 77; }
	command -v python3 >/dev/null 2>&1 ||
		{ echo "SKIP: python3 (the page server) is not installed" >&2; exit 77; }
	[ -f "$web/node_modules/puppeteer-core/package.json" ] &&
		[ -f "$web/node_modules/hls.js/dist/hls.min.js" ] || {
		echo "SKIP: $web/node_modules is missing (npm ci there)" >&2
		exit 77
	}
}

need_streamd
need_clients
need_browser
make_workdir hlsjs

BEHIND=30 # ?start=-30
WATCH=10  # seconds of playback before the page reports
# The frame on screen trails the wall clock by BEHIND, give or take:
#  - one GOP ($GOP s): a player may start at the keyframe that begins the
#    segment holding live - 30 s, up to a GOP before it;
#  - TOL s more: the first playlist, the first segment and its append to
#    MSE take some tenths of a second on the loopback before the first
#    frame shows, time the wall clock runs on while the playhead waits;
#    and a recording's live edge trails the encoder by up to
#    publish_interval (0.5 s), the wait before received bytes are written.
TOL=1
PUSH_SECS=90

# page PLAYLIST_URL OUT: the test page on it, the report (JSON) in OUT.
page() {
	local src
	src=$(printf '%s' "$1" | sed 's/%/%25/g; s/?/%3F/g; s/&/%26/g; s/=/%3D/g')
	node "$web/hlsjs.mjs" "$PAGE/hlsjs.html?src=$src&watch=$WATCH" 60 \
		>"$2" 2>>"$work/browser.err" || fail "no report from the page (browser.err)"
}

# report FILE KEY: a value of the page's report.
report() { json_get "$1" ".$2"; }

# The page's own origin: the page and hls.min.js from a scratch copy, on
# an ephemeral port of the loopback (-u: its "Serving HTTP" line at once).
mkdir -p "$work/page"
cp "$web/hlsjs.html" "$web/node_modules/hls.js/dist/hls.min.js" "$work/page/"
(cd "$work/page" && exec python3 -u -m http.server 0 --bind 127.0.0.1 \
	>"$work/page.out" 2>"$work/page.err") &
page_port=
for _ in $(seq 100); do
	page_port=$(sed -n 's/.* port \([0-9][0-9]*\) .*/\1/p' "$work/page.out")
	[ -z "$page_port" ] || break
	sleep 0.1
done
[ -n "$page_port" ] || fail "the page server did not start"
PAGE=http://127.0.0.1:$page_port

# recorded NAME SECS: /streams says NAME holds at least SECS seconds.
recorded() {
	local d
	http /streams "$work/streams.json"
	[ "$code" = 200 ] || return 1
	d=$(stream_field "$work/streams.json" "$1" duration)
	[ -n "$d" ] && check "$d >= $2"
}

# --- hls.js plays 30 s behind live. --------------------------------------
start_streamd --cors-origins "$PAGE"
pass "streamd listens on $URL, page on $PAGE (cors_origins)"
start_push cam1 $PUSH_SECS
wait_live cam1 true 10
wait_for 60 "35 s of cam1 recorded" recorded cam1 $((BEHIND + 5))
src="$URL/streams/cam1/index.m3u8?start=-$BEHIND"
page "$src" "$work/play.json"
[ "$(report "$work/play.json" ok)" = true ] ||
	fail "hls.js did not play $src: $(cat "$work/play.json")"
behind=$(report "$work/play.json" behind)
advanced=$(report "$work/play.json" advanced)
watched=$(report "$work/play.json" watched)
[ -n "$behind" ] && [ "$behind" != null ] ||
	fail "hls.js gave no playingDate (EXT-X-PROGRAM-DATE-TIME?): $(cat "$work/play.json")"
check "$advanced >= $WATCH - 2" ||
	fail "currentTime moved $(r3 "$advanced") s in $(r3 "$watched") s of playback" \
		"(stalls: $(report "$work/play.json" stalls))"
pass "hls.js $(report "$work/play.json" hlsVersion) plays: currentTime +$(r3 "$advanced") s" \
	"in $(r3 "$watched") s, $(report "$work/play.json" stalls) stall(s)"
near "$behind" $BEHIND "$GOP + $TOL" ||
	fail "hls.js plays ?start=-$BEHIND at $(r3 "$behind") s behind live," \
		"expected $BEHIND +- $(calc "$GOP + $TOL") s" \
		"(at its first frame $(r3 "$(report "$work/play.json" behindAtStart)") s;" \
		"hls.latency $(r3 "$(report "$work/play.json" latency)") s)"
pass "hls.js plays ?start=-$BEHIND at $(r3 "$behind") s behind live" \
	"(first frame $(r3 "$(report "$work/play.json" behindAtStart)") s;" \
	"expected $BEHIND +- $(calc "$GOP + $TOL" | sed 's/0*$//;s/\.$//') s)"

# --- Without cors_origins the browser refuses. ---------------------------
# The encoder is stopped early (its tee would go on writing the local
# copy after losing streamd): SIGTERM makes ffmpeg end the upload cleanly.
for p in $(ps -o pid= --ppid "$push_pid"); do
	kill -TERM "$p" 2>/dev/null || true
done
wait_rc "$push_pid" 10
[ "$rc" -ne 124 ] || fail "the encoder did not stop on SIGTERM"
push_pid=
wait_live cam1 false 10
stop_streamd
start_streamd
src="$URL/streams/cam1/index.m3u8?start=-$BEHIND"
http "/streams/cam1/index.m3u8?start=-$BEHIND" "$work/nocors.m3u8" -H "Origin: $PAGE"
expect_code 200 "the playlist from curl, without cors_origins"
[ -z "$(header "$work/nocors.m3u8.h" Access-Control-Allow-Origin)" ] ||
	fail "without cors_origins the playlist has Access-Control-Allow-Origin"
from=$(($(wc -c <"$work/browser.err") + 1))
page "$src" "$work/refused.json"
[ "$(report "$work/refused.json" ok)" = false ] ||
	fail "hls.js played without cors_origins: $(cat "$work/refused.json")"
details=$(report "$work/refused.json" error.details)
[ "$details" = manifestLoadError ] ||
	fail "without cors_origins hls.js says '$details', expected manifestLoadError:" \
		"$(cat "$work/refused.json")"
tail -c +"$from" "$work/browser.err" | grep -q 'blocked by CORS policy' ||
	fail "Chromium did not say it blocked the playlist for CORS (browser.err)"
pass "without cors_origins: curl gets the playlist (200), Chromium blocks it" \
	"for CORS and hls.js says $details (fatal, code $(report "$work/refused.json" error.code))"
stop_streamd
