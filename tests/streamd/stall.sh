#!/usr/bin/env bash
# Stalled and vanishing encoders, against streamd with --idle-timeout 4.
# A stalled encoder (a raw HTTP client that sends part of a file in
# chunks, then keeps the connection open and sends nothing): every byte
# it sent is published within two publish intervals while it stays live,
# the time-shifted start plays, a live viewer waits without an error,
# another upload and another player go on meanwhile; the idle timeout
# closes the upload, the error log names the recording and the cause, the
# recording holds exactly what was sent, and a reconnect continues it.
# An encoder that vanishes mid-chunk (the client resets its connection
# and dies of SIGKILL): every byte received is kept, it plays, the log
# says so, and a reconnect continues the recording.
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
need_python3
make_workdir stall
IDLE=4

# raw_push NAME FILE BYTES MODE: a raw HTTP/1.1 client in the background
# (sets raw_pid) that PUTs the first BYTES of FILE to /record/NAME in
# 8 KiB chunks over about 2 s, writes $work/NAME.sent once they are out,
# then: MODE stall, keeps the connection open, silent, for 3 idle
# timeouts; MODE reset, announces one more chunk, sends half of it, waits
# 1.5 s and dies of SIGKILL with SO_LINGER 0 (the kernel resets the
# connection).  BYTES is what the server got either way.
raw_push() {
	python3 - "${URL#http://}" "$1" "$2" "$3" "$4" "$((3 * IDLE))" "$work/$1.sent" \
		>>"$work/raw-$1.out" 2>&1 <<'EOF' &
import os, signal, socket, struct, sys, time
addr, name, path, nbytes, mode, quiet, marker = sys.argv[1:]
host, port = addr.rsplit(":", 1)
data = open(path, "rb").read()
nbytes = int(nbytes)
s = socket.create_connection((host, int(port)))
s.sendall(("PUT /record/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: video/mp2t\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % (name, addr)).encode())
step = 8192
last = nbytes - step // 2 if mode == "reset" else nbytes
for at in range(0, last, step):
    piece = data[at:min(at + step, last)]
    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    time.sleep(2.0 * len(piece) / nbytes)
if mode == "reset":
    s.sendall(b"%x\r\n" % step + data[last:nbytes])
open(marker, "w").write("%d\n" % nbytes)
if mode == "reset":
    time.sleep(1.5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    os.kill(os.getpid(), signal.SIGKILL)
s.settimeout(float(quiet))
try:
    got = s.recv(4096)
    print("server closed the connection" if not got else got.decode(errors="replace"))
except (socket.timeout, OSError) as e:
    print("no answer: %s" % e)
EOF
	raw_pid=$!
}

published() {
	http "/streams/$1" "$work/detail.json"
	[ "$code" = 200 ] && json_get "$work/detail.json" .bytes
}

# expect_continues NAME KEPT: a whole push of small.ts to NAME appends it
# after the KEPT file's bytes: one recording, 2 connections, 1 gap.
expect_continues() {
	push_body "$1" "$work/small.ts"
	[ "$code" = 200 ] || fail "the reconnect of $1: HTTP $code: $(cat "$work/push-body.out")"
	wait_live "$1" false 10
	cat "$2" "$work/small.ts" >"$work/$1-want.ts"
	http "/streams/$1/data.ts" "$work/$1-data.ts"
	expect_code 200 "GET /streams/$1/data.ts after the reconnect"
	expect_same_bytes "$work/$1-data.ts" "$work/$1-want.ts" "$1 after the reconnect"
	http "/streams/$1" "$work/detail.json"
	[ "$(json_get "$work/detail.json" .connections)" = 2 ] &&
		[ "$(json_get "$work/detail.json" '.gaps#')" = 1 ] ||
		fail "$1 after the reconnect: $(cat "$work/detail.json")"
	pass "a reconnect continues $1: 2 connections, 1 gap, data.ts = $(size_of "$2") + $(size_of "$work/small.ts") bytes exactly"
}

make_pattern "$work/p.ts" 10
make_pattern "$work/small.ts" 2
start_streamd --idle-timeout $IDLE
pass "streamd listens on $URL (idle timeout $IDLE s, publish interval 0.5 s)"

# --- A stalled encoder. -------------------------------------------------
n=$(($(size_of "$work/p.ts") * 6 / 10 + 77))
head -c "$n" "$work/p.ts" >"$work/stall-sent.ts"
raw_push stall1 "$work/p.ts" "$n" stall
wait_live stall1 true 10
has_key() { http /streams/stall1 "$work/k.json" && [ "$(json_get "$work/k.json" .keyframes)" -gt 0 ]; }
wait_for 10 "stall1's first keyframe" has_key
curl -sS --max-time 30 -o "$work/viewer.ts" "$URL/streams/stall1.ts" \
	2>"$work/viewer.err" &
viewer_pid=$!
wait_for 10 "the stalling encoder to send its $n bytes" test -s "$work/stall1.sent"
t0=$(now)
all_published() { [ "$(published stall1)" = "$n" ]; }
wait_for 3 "stall1's $n bytes to be published" all_published
waited=$(r3 "$(now) - $t0")
is_live stall1 true || fail "stall1 is not live $waited s into the stall"
pass "stalled encoder: all $n bytes it sent published $waited s into the stall, still live"

http '/streams/stall1.ts?start=0&duration=2' "$work/stall-head.ts"
expect_code 200 "GET stall1.ts?start=0&duration=2 during the stall"
expect_decodes "$work/stall-head.ts" "stall1's first 2 s during the stall"
push_body other "$work/small.ts"
[ "$code" = 200 ] || fail "another upload during the stall: HTTP $code"
http /streams/other/data.ts "$work/other.ts"
expect_code 200 "GET /streams/other/data.ts during the stall"
expect_same_bytes "$work/other.ts" "$work/small.ts" "another upload during the stall"
is_live stall1 true || fail "stall1 ended before its idle timeout"
pass "during the stall: its first 2 s play, another upload records and plays back exactly"

wait_live stall1 false $((IDLE + 5))
closed=$(r3 "$(now) - $t0")
check "$closed >= $IDLE - 1" || fail "stall1 ended $closed s into a stall, before the $IDLE s idle timeout"
grep -q "record stall1: no bytes from the encoder for .* (idle timeout" "$work/streamd.log" ||
	fail "the error log does not say stall1 stopped for the idle timeout"
pass "the idle timeout ended the upload $closed s into the stall; log: $(grep -o 'record stall1: no bytes[^;]*' "$work/streamd.log" | head -n 1)"
http /streams/stall1/data.ts "$work/stall-data.ts"
expect_code 200 "GET /streams/stall1/data.ts"
expect_same_bytes "$work/stall-data.ts" "$work/stall-sent.ts" "stall1 after the idle timeout"
pass "stall1 holds exactly the $n bytes sent"
wait_rc "$viewer_pid" 10
[ "$rc" -eq 0 ] || fail "the live viewer of stall1 ended with curl status $rc: $(cat "$work/viewer.err")"
v=$(size_of "$work/viewer.ts")
[ "$v" -gt 0 ] && cmp -s "$work/viewer.ts" <(tail -c "$v" "$work/stall-data.ts") ||
	fail "the live viewer got $v bytes that are not the end of the recording"
pass "the live viewer waited through the stall and ended cleanly with the last $v bytes"
expect_continues stall1 "$work/stall-sent.ts"
wait_rc "$raw_pid" 15
[ "$rc" -ne 124 ] || fail "the stalled client still runs"

# --- An encoder that resets its connection mid-chunk. ----------------------
m=$(($(size_of "$work/p.ts") * 4 / 10 + 1000))
head -c "$m" "$work/p.ts" >"$work/rst-sent.ts"
raw_push rst1 "$work/p.ts" "$m" reset
{ wait_rc "$raw_pid" 20; } 2>/dev/null # not bash's "Killed" notice
[ "$rc" -eq 137 ] || fail "the resetting client ended with status $rc, not SIGKILL: $(cat "$work/raw-rst1.out")"
wait_live rst1 false 10
grep -q "record rst1: the encoder's connection ended mid-upload" "$work/streamd.log" ||
	fail "the error log does not say rst1's connection broke"
http /streams/rst1/data.ts "$work/rst-data.ts"
expect_code 200 "GET /streams/rst1/data.ts"
expect_same_bytes "$work/rst-data.ts" "$work/rst-sent.ts" "rst1 after the reset"
pass "a reset mid-chunk: rst1 finished with every one of the $m bytes received; logged"
http '/streams/rst1.ts?start=0&duration=2' "$work/rst-head.ts"
expect_code 200 "GET rst1.ts?start=0&duration=2"
expect_decodes "$work/rst-head.ts" "rst1's first 2 s"
pass "rst1 plays ($(size_of "$work/rst-head.ts") bytes for its first 2 s)"
expect_continues rst1 "$work/rst-sent.ts"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all stall checks passed"
