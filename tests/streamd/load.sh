#!/usr/bin/env bash
# Load test of streamd: two encoders push 20 s each at once (cam1, cam2)
# and, in the middle, 20 players start at once: 12 time-shifted .ts
# requests (duration=5, both streams) with curl and 8 HLS players with
# ffmpeg (start= playlists, both streams).  Every player must succeed
# and its output decode without an error at a sane size; both recordings
# must be byte for byte what was pushed; /metrics must count >= 20
# player sessions.  Then, with nothing else playing, one viewer at a time
# must get its first body byte within 150 ms (a .ts start, a seek, a
# data.ts range mid-block), timed by a small python3 client.
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
make_workdir load
SECS=20
TS_PLAYERS=12
HLS_PLAYERS=8

start_streamd
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
pid1=$push_pid
start_push cam2 $SECS
pid2=$push_pid
wait_live cam1 true 10
wait_live cam2 true 10
pass "two encoders pushing at once"
sleep "$(calc "11 - ($(now) - $t0)")"
streams_list "$work/streams.json"
rate1=$(stream_field "$work/streams.json" cam1 bitrate)
[ -n "$rate1" ] && check "$rate1 > 0" || fail "no bitrate for cam1"

# --- 20 players at once. ----------------------------------------------
pids=()
for ((i = 0; i < TS_PLAYERS; i++)); do
	cam=cam$((i % 2 + 1))
	curl -sS --fail --max-time 40 -o "$work/p$i.ts" \
		"$URL/streams/$cam.ts?start=-$((7 + i % 3))&duration=5" \
		2>"$work/p$i.curl" &
	pids+=($!)
done
for ((j = 0; j < HLS_PLAYERS; j++, i++)); do
	cam=cam$((j % 2 + 1))
	# A start= playlist of a live recording has no ENDLIST: ffmpeg
	# reads it as live; -live_start_index 0 starts at its first segment
	# and -t ends the player after 5 s of media.
	ffmpeg -nostdin -v error -live_start_index 0 \
		-i "$URL/streams/$cam/index.m3u8?start=$((1 + j))" -map 0 \
		-c copy -t 5 -f mpegts "$work/p$i.ts" 2>"$work/p$i.ffmpeg" &
	pids+=($!)
done
pass "$TS_PLAYERS .ts players and $HLS_PLAYERS HLS players started"

# While they play: each player is a session with its own counters (a
# live follower stays open long enough to be seen; the duration=5
# players may already be done).
curl -sS --max-time 4 -o "$work/follower.ts" "$URL/streams/cam1.ts" \
	2>/dev/null &
sleep 1
curl -fsS -o "$work/sessions.json" "$URL/admin/sessions" ||
	fail "GET /admin/sessions"
open=$(grep -c '"stream"' "$work/sessions.json" || true)
[ "$open" -ge 1 ] || fail "/admin/sessions lists no session while 20 play"
grep -q '"underflows"' "$work/sessions.json" ||
	fail "/admin/sessions has no per-session underflow count"
pass "/admin/sessions lists $open open sessions with reads, misses, underflows, bytes"

failed=0
for ((i = 0; i < ${#pids[@]}; i++)); do
	wait_rc "${pids[$i]}" 60
	if [ "$rc" -ne 0 ]; then
		echo "player $i: status $rc: $(cat "$work/p$i".curl "$work/p$i".ffmpeg 2>/dev/null | head -n 3)" >&2
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ] || fail "$failed of ${#pids[@]} players failed"
elapsed=$(calc "$(now) - $t0")
pass "every player finished ($(r3 "$elapsed") s after the pushes began)"

min=$(awk -v r="$rate1" 'BEGIN { printf "%d\n", 5 * r / 8 * 0.4 }')
max=$(awk -v r="$rate1" 'BEGIN { printf "%d\n", 9 * r / 8 * 2 }')
for ((i = 0; i < ${#pids[@]}; i++)); do
	f=$work/p$i.ts
	[ ! -s "$work/p$i.ffmpeg" ] || fail "player $i: $(head -n 3 "$work/p$i.ffmpeg")"
	expect_decodes "$f" "player $i"
	s=$(size_of "$f")
	check "$s >= $min && $s <= $max" ||
		fail "player $i got $s bytes, expected $min..$max for ~5 s"
	d=$(media_duration "$f")
	near "$d" 5 "$GOP + 1" || fail "player $i got $d s, expected 5 +- $((GOP + 1))"
done
pass "all ${#pids[@]} outputs decode cleanly, each ~5 s and $min..$max bytes"

for cam in cam1 cam2; do
	if [ $cam = cam1 ]; then wait_rc "$pid1" 30; else wait_rc "$pid2" 30; fi
	[ "$rc" -eq 0 ] || fail "the $cam push ended with status $rc"
	wait_live "$cam" false 10
	http "/streams/$cam/data.ts" "$work/$cam-data.ts"
	expect_code 200 "GET /streams/$cam/data.ts"
	expect_same_bytes "$work/$cam-data.ts" "$work/$cam.ts" "$cam data.ts"
done
pass "both recordings are byte for byte what was pushed"

http /metrics "$work/metrics.txt"
expect_code 200 "GET /metrics"
total=$(awk '$1 == "streamd_sessions_total" { print $2 }' "$work/metrics.txt")
[ -n "$total" ] && check "$total >= 20" ||
	fail "streamd_sessions_total '$total', expected >= 20"
recs=$(awk '$1 == "streamd_recordings_total" { print $2 }' "$work/metrics.txt")
[ -n "$recs" ] && check "$recs >= 2" || fail "streamd_recordings_total '$recs', expected >= 2"
pass "/metrics: streamd_sessions_total $total, streamd_recordings_total $recs"

# --- Time to first byte on an idle daemon. ----------------------------
# One viewer at a time, nothing else playing: its first body byte must
# come at once (from the read its session's open submits with an urgent
# deadline), not after a pump period or a read's usual deadline.  Three
# starts: a time-shifted .ts, another point of it (a seek), and a byte
# range of data.ts mid-block.
if command -v python3 >/dev/null 2>&1; then
	hostport=${URL#http://}
	for path in "/streams/cam1.ts?start=2" "/streams/cam2.ts?start=9" \
		"/streams/cam1/data.ts#Range: bytes=100001-"; do
		ms=$(python3 - "$hostport" "$path" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
path, _, extra = sys.argv[2].partition("#")
req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n" % (
    path, sys.argv[1], extra + "\r\n" if extra else "")
s = socket.create_connection((host, int(port)), timeout=10)
t0 = time.monotonic()
s.sendall(req.encode())
buf = b""
while b"\r\n\r\n" not in buf:
    b = s.recv(65536)
    if not b:
        sys.exit("no head")
    buf += b
head, _, body = buf.partition(b"\r\n\r\n")
if not head.split(b" ")[1].startswith(b"2"):
    sys.exit("status " + head.split(b"\r\n")[0].decode())
chunked = b"chunked" in head.lower()


def first_byte_in(body):
    # a chunked body's first byte comes after its size line
    if not chunked:
        return len(body) >= 1
    eol = body.find(b"\r\n")
    return eol >= 0 and len(body) >= eol + 3


while not first_byte_in(body):
    b = s.recv(65536)
    if not b:
        sys.exit("no body")
    body += b
print("%.1f" % ((time.monotonic() - t0) * 1000))
PY
		) || fail "first byte of $path: $ms"
		check "$ms <= 150" ||
			fail "one viewer on an idle daemon: first body byte of $path after $ms ms (want <= 150)"
		note "first body byte of $path after $ms ms"
	done
	pass "one viewer on an idle daemon gets its first body byte within 150 ms"
else
	note "no python3: time to first byte not checked"
fi

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all load checks passed"
