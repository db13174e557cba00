#!/usr/bin/env bash
# Clips and thumbnails of streamd against the real daemon, with ffmpeg,
# ffprobe and curl.  After a 24 s push (640x360 H.264 with a 2 s GOP and
# AAC, in MPEG-TS):
#  - a 10 s .mp4 clip is an MP4 (ffprobe's format mov,mp4,...) of
#    10 s +- a GOP with its H.264 and AAC streams, its moov box comes
#    before its mdat box (the top-level boxes' offsets), it decodes
#    without a single error line, and Content-Disposition names it
#    cam1-<UTC start>-10s.mp4;
#  - the same range as .ts holds the same video frames: the same count of
#    video packets and the same pts, relative to the first;
#  - an unknown stream is 404, a duration over clip_max_duration (the
#    flag, then the knob changed through /admin/config) 400, a bad start
#    or duration 400, all with a JSON error; a client that leaves while
#    its clip is made costs nothing afterwards;
#  - a thumbnail is a JPEG (ffprobe: mjpeg) of the stream's 640x360, and
#    320x180 with width=320; the same one asked again is a cache hit
#    (streamd_thumbnail_cache_hits_total); a width out of 16..4096 is
#    400; the cost per thumbnail (streamd_thumbnail_seconds sum / count)
#    is printed as "thumbnail cost N ms", and the 10 s clip's remux time
#    (from the daemon's log) as "clip remux N ms";
#  - the clip and thumbnail counters of /metrics grew by what was served.
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
command -v python3 >/dev/null 2>&1 || {
	echo "SKIP: python3 is not installed (it reads the MP4's boxes)" >&2
	exit 77
}
make_workdir clips
SECS=24

start_streamd --log-level debug --clip-max-duration 600
pass "streamd listens on $URL"
http /metrics "$work/m0"
expect_code 200 "GET /metrics"
for m in streamd_clips_served_total streamd_clip_bytes_total \
	streamd_thumbnails_served_total streamd_thumbnail_cache_hits_total \
	streamd_thumbnail_seconds_sum streamd_thumbnail_seconds_count; do
	v=$(metric_in "$work/m0" "$m")
	[ -n "$v" ] && check "$v == 0" ||
		fail "$m is '$(metric_in "$work/m0" "$m")' before any clip"
done
pass "the clip and thumbnail metrics start at 0"

push_pattern cam1 $SECS -s 640x360 ||
	fail "ffmpeg push failed: $(cat "$work/push-cam1.err")"
wait_live cam1 false 10
pass "pushed $SECS s of 640x360 H.264 + AAC"

# json_error FILE WHAT: FILE is a JSON error body.
json_error() {
	[ -n "$(json_get "$1" .error)" ] || fail "$2: no JSON error: $(cat "$1")"
}

# --- A 10 s clip ------------------------------------------------------
clip=$work/clip.mp4
http "/streams/cam1.mp4?start=4&duration=10" "$clip"
expect_code 200 "GET cam1.mp4?start=4&duration=10"
[ "$(header "$clip.h" Content-Type)" = video/mp4 ] ||
	fail "Content-Type $(header "$clip.h" Content-Type)"
[ "$(header "$clip.h" Content-Length)" = "$(size_of "$clip")" ] ||
	fail "Content-Length $(header "$clip.h" Content-Length) for $(size_of "$clip") bytes"
start=$(header "$clip.h" X-Streamd-Start)
want="attachment; filename=\"cam1-$(date -u -d "$start" +%Y%m%dT%H%M%SZ)-10s.mp4\""
[ "$(header "$clip.h" Content-Disposition)" = "$want" ] ||
	fail "Content-Disposition '$(header "$clip.h" Content-Disposition)', expected '$want'"
pass "200 video/mp4, $(size_of "$clip") bytes, $want"

fmt=$(ffprobe -v error -show_entries format=format_name -of csv=p=0 "$clip")
case $fmt in *mp4*) ;; *) fail "ffprobe says format '$fmt'" ;; esac
dur=$(media_duration "$clip")
near "$dur" 10 "$GOP" || fail "the clip lasts $dur s, not 10 +- $GOP"
codecs=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$clip" |
	tr '\n' ' ')
[ "$codecs" = "h264 aac " ] || fail "streams: $codecs"
pass "ffprobe: $fmt, $dur s, streams $codecs"

# The top-level boxes as "type@offset", in file order.
boxes=$(python3 - "$clip" <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
off, out = 0, []
while off + 8 <= len(data):
    size, typ = struct.unpack('>I4s', data[off:off + 8])
    if size == 1:
        size = struct.unpack('>Q', data[off + 8:off + 16])[0]
    elif size == 0:
        size = len(data) - off
    out.append('%s@%d' % (typ.decode('latin-1'), off))
    if size < 8:
        break
    off += size
print(' '.join(out))
EOF
)
moov=$(echo "$boxes" | tr ' ' '\n' | sed -n 's/^moov@//p')
mdat=$(echo "$boxes" | tr ' ' '\n' | sed -n 's/^mdat@//p')
[ -n "$moov" ] && [ -n "$mdat" ] && [ "$moov" -lt "$mdat" ] ||
	fail "moov is not before mdat: $boxes"
pass "faststart: $boxes"

errs=$(ffmpeg -nostdin -v error -i "$clip" -f null - 2>&1)
[ -z "$errs" ] || fail "ffmpeg decoding the clip says: $(echo "$errs" | head -n 5)"
pass "the clip decodes without an error"

remux_ms=$(sed -n 's|.*clip /streams/cam1.mp4: .* in \([0-9.]*\) ms$|\1|p' \
	"$work/streamd.log" | tail -n 1)
[ -n "$remux_ms" ] || fail "no clip line in the log"
echo "clip remux $remux_ms ms (10 s, $(size_of "$clip") bytes)"

# --- The same range as .ts has the same frames -------------------------
ts=$work/clip.ts
http "/streams/cam1.ts?start=4&duration=10&burst=0" "$ts"
expect_code 200 "GET cam1.ts?start=4&duration=10"
[ "$(header "$ts.h" X-Streamd-Offset)" = "$(header "$clip.h" X-Streamd-Offset)" ] ||
	fail ".ts starts at $(header "$ts.h" X-Streamd-Offset), .mp4 at $(header "$clip.h" X-Streamd-Offset)"
# rel_pts FILE: the video packets' pts in ms, relative to the first.
rel_pts() {
	ffprobe -v error -select_streams v:0 -show_entries packet=pts_time \
		-of csv=p=0 "$1" |
		awk -F , '$1 == "" { next }
			!n++ { f = $1 } { printf "%d\n", ($1 - f) * 1000 + 0.5 }'
}
rel_pts "$ts" >"$work/ts.pts"
rel_pts "$clip" >"$work/mp4.pts"
nts=$(wc -l <"$work/ts.pts")
nmp4=$(wc -l <"$work/mp4.pts")
[ "$nts" -gt 200 ] || fail "only $nts video packets in the .ts"
[ "$nts" = "$nmp4" ] || fail "$nts video packets in the .ts, $nmp4 in the .mp4"
cmp -s "$work/ts.pts" "$work/mp4.pts" ||
	fail "the pts differ: $(diff "$work/ts.pts" "$work/mp4.pts" | head -n 6 | tr '\n' ' ')"
pass "the .ts and the .mp4 of that range hold the same $nts video frames, same pts"

# --- Errors -------------------------------------------------------------
http "/streams/nosuch.mp4?start=0&duration=5" "$work/e1"
expect_code 404 "an unknown stream"
json_error "$work/e1" "404"
http "/streams/cam1.mp4?start=0&duration=601" "$work/e2"
expect_code 400 "a duration over --clip-max-duration 600"
json_error "$work/e2" "400"
http "/streams/cam1.mp4?start=yesterday&duration=5" "$work/e3"
expect_code 400 "a bad start"
json_error "$work/e3" "400"
http "/streams/cam1.mp4?start=0&duration=-5" "$work/e4"
expect_code 400 "a bad duration"
pass "404 unknown stream; 400 over clip_max_duration, bad start, bad duration: $(cat "$work/e2")"

http /admin/config "$work/put.out" -X PUT -H 'Content-Type: application/json' \
	--data-binary '{"clip_max_duration":5}'
expect_code 200 "PUT clip_max_duration 5"
check "$(json_get "$work/put.out" .clip_max_duration) == 5" ||
	fail "/admin/config after the PUT: $(cat "$work/put.out")"
http "/streams/cam1.mp4?start=4&duration=10" "$work/e5"
expect_code 400 "10 s over the knob's 5 s"
http "/streams/cam1.mp4?start=4&duration=4" "$work/short.mp4"
expect_code 200 "4 s under the knob's 5 s"
http "/streams/cam1.mp4?start=4" "$work/e6"
expect_code 400 "no duration: to the end, 20 s, over 5 s"
http /admin/config "$work/put.out" -X PUT -H 'Content-Type: application/json' \
	--data-binary '{"clip_max_duration":600}'
expect_code 200 "PUT clip_max_duration 600"
pass "/admin/config's clip_max_duration caps clips at run time"
http /metrics "$work/mc"

# --- Thumbnails ----------------------------------------------------------
# dims FILE: codec and size of its first video stream, "mjpeg 640x360".
dims() {
	ffprobe -v error -select_streams v:0 \
		-show_entries stream=codec_name,width,height -of csv=p=0 "$1" |
		awk -F , '{ print $1, $2 "x" $3 }'
}
http "/streams/cam1/thumb.jpg?t=6" "$work/t1.jpg"
expect_code 200 "thumb.jpg?t=6"
[ "$(header "$work/t1.jpg.h" Content-Type)" = image/jpeg ] ||
	fail "Content-Type $(header "$work/t1.jpg.h" Content-Type)"
[ "$(dims "$work/t1.jpg")" = "mjpeg 640x360" ] || fail "thumbnail: $(dims "$work/t1.jpg")"
http "/streams/cam1/thumb.jpg?t=6&width=320" "$work/t2.jpg"
expect_code 200 "thumb.jpg?t=6&width=320"
[ "$(dims "$work/t2.jpg")" = "mjpeg 320x180" ] || fail "width=320: $(dims "$work/t2.jpg")"
http "$(printf '/streams/cam1/thumb.jpg?t=%s' "$(date -u -d "$start + 9 seconds" +%Y-%m-%dT%H:%M:%SZ)")" \
	"$work/t3.jpg"
expect_code 200 "thumb.jpg with an ISO-8601 t"
[ "$(dims "$work/t3.jpg")" = "mjpeg 640x360" ] || fail "ISO t: $(dims "$work/t3.jpg")"
pass "thumbnails: mjpeg 640x360, 320x180 with width=320, by offset and by ISO time"

http /metrics "$work/m1"
http "/streams/cam1/thumb.jpg?t=6&width=320" "$work/t4.jpg"
expect_code 200 "the same thumbnail again"
http /metrics "$work/m2"
h1=$(metric_in "$work/m1" streamd_thumbnail_cache_hits_total)
h2=$(metric_in "$work/m2" streamd_thumbnail_cache_hits_total)
[ "$h2" = $((h1 + 1)) ] || fail "cache hits went from $h1 to $h2"
expect_same_bytes "$work/t4.jpg" "$work/t2.jpg" "the cached thumbnail"
pass "the same thumbnail asked again is a cache hit ($h1 -> $h2), the same bytes"

for w in 8 4097 abc; do
	http "/streams/cam1/thumb.jpg?t=6&width=$w" "$work/tw"
	expect_code 400 "width=$w"
	json_error "$work/tw" "width=$w"
done
http "/streams/cam1/thumb.jpg?t=never" "$work/tt"
expect_code 400 "t=never"
http "/streams/nosuch/thumb.jpg?t=1" "$work/tn"
expect_code 404 "a thumbnail of an unknown stream"
pass "400 for widths 8, 4097, abc and t=never; 404 for an unknown stream"

sum=$(metric_in "$work/m2" streamd_thumbnail_seconds_sum)
cnt=$(metric_in "$work/m2" streamd_thumbnail_seconds_count)
[ "$cnt" = 3 ] || fail "streamd_thumbnail_seconds_count $cnt after 3 decodes"
echo "thumbnail cost $(calc "$sum / $cnt * 1000" | awk '{ printf "%.1f", $1 }') ms" \
	"(mean of $cnt, streamd_thumbnail_seconds)"
grep -q 'thumbnail cam1 at offset .* in [0-9.]* ms' "$work/streamd.log" ||
	fail "no thumbnail cost at debug in the log"

# --- Metrics ------------------------------------------------------------
served=$(metric_in "$work/mc" streamd_clips_served_total)
bytes=$(metric_in "$work/mc" streamd_clip_bytes_total)
want_bytes=$(($(size_of "$clip") + $(size_of "$work/short.mp4")))
[ "$served" = 2 ] || fail "streamd_clips_served_total $served after 2 clips"
[ "$bytes" = "$want_bytes" ] || fail "streamd_clip_bytes_total $bytes, served $want_bytes"
thumbs=$(metric_in "$work/m2" streamd_thumbnails_served_total)
[ "$thumbs" = 4 ] || fail "streamd_thumbnails_served_total $thumbs after 4"
pass "metrics: $served clips of $bytes bytes, $thumbs thumbnails"

# A client that leaves while its clip is being made: the job runs to its
# end (a suspended connection is not polled), then the answer finds the
# connection gone; the daemon goes on serving.
curl -s --max-time 0.05 -o /dev/null "$URL/streams/cam1.mp4?start=0&duration=20" || true
http "/streams/cam1.mp4?start=2&duration=2" "$work/after.mp4"
expect_code 200 "a clip after one abandoned"
expect_decodes "$work/after.mp4" "the clip after one abandoned"
pass "a client that left mid-remux leaves the daemon serving"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all clip and thumbnail checks passed"
