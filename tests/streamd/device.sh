#!/usr/bin/env bash
# A slow and a failing device, through the scheduler back end's test-only
# fault injection (--inject-latency, --inject-eio).  Slow: every disk I/O
# half a second late; recording and playback still return exact bytes, and
# the misses and lateness show in /metrics.  Failing: one disk I/O in 7
# ends in EIO; an upload whose write fails gets 500 naming the error, the
# log names the recording, the errors are counted, no request hangs, the
# daemon goes on serving and stops cleanly.  Restarted without faults on
# the same volume, every recording the failures cut short is a prefix of
# what was sent, and the volume checks clean.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
make_workdir device

ffmpeg -nostdin -hide_banner -v error -f lavfi \
	-i testsrc=size=320x240:rate=25 -f lavfi -i sine -t 8 \
	-c:v libx264 -preset ultrafast -b:v 600k -g 50 -c:a aac \
	-f mpegts -y "$work/in.ts" || fail "making in.ts"
size=$(size_of "$work/in.ts")

metric() {
	curl -fsS --max-time 10 "$URL/metrics" |
		awk -v n="$1" '$1 == n { print $2 }'
}

# --- A slow device --------------------------------------------------
# Without the interval cache: every player byte must come from the slow
# device for its reads to be late.
start_streamd --inject-latency 0.5 --cache-size 0
grep -q "fault injection on: 500000000 ns extra latency" "$work/streamd.log" ||
	fail "the log does not say that faults are being injected"
t0=$(now)
http /record/slow "$work/slow.json" -T "$work/in.ts" \
	-H 'Transfer-Encoding: chunked'
expect_code 200 "upload to a slow device"
http /streams/slow/data.ts "$work/slow.ts"
expect_code 200 "playback from a slow device"
expect_same_bytes "$work/slow.ts" "$work/in.ts" "data.ts from a slow device"
took=$(calc "$(now) - $t0")
rmiss=$(metric streamd_session_read_misses_total)
dmiss=$(metric streamd_sched_deadline_misses_total)
late=$(metric streamd_sched_lateness_max_seconds)
check "$rmiss > 0 && $dmiss > 0 && $late >= 0.2" ||
	fail "a device 0.5 s slow shows no misses: reads $rmiss, device $dmiss, lateness $late"
pass "slow device: $size bytes in and out exact in $took s; $rmiss read misses, $dmiss device misses, lateness up to $late s"
stop_streamd

# --- A failing device -----------------------------------------------
start_streamd --inject-eio 7
failed=0
for i in 1 2 3 4; do
	http "/record/bad$i" "$work/bad$i.json" -T "$work/in.ts" \
		-H 'Transfer-Encoding: chunked'
	case $code in
	200) ;;
	500)
		grep -q 'Input/output error' "$work/bad$i.json" ||
			fail "the 500 for bad$i does not say why: $(cat "$work/bad$i.json")"
		grep -q "record bad$i: stopped: Input/output error" "$work/streamd.log" ||
			fail "the error log does not name bad$i and the cause"
		failed=$((failed + 1)) ;;
	*) fail "upload bad$i to a failing device: HTTP $code" ;;
	esac
done
[ "$failed" -gt 0 ] || fail "no upload met an injected EIO"
pass "failing device: $failed of 4 uploads got 500 {\"error\":\"recording failed: Input/output error\"} and a log line naming them"
# Reads meet errors too: each ends (complete or cut short), none hangs.
ends=0
for i in 1 2 3 4; do
	rc=0
	curl -s --max-time 20 -o /dev/null "$URL/streams/bad$i/data.ts" || rc=$?
	[ "$rc" -ne 28 ] || fail "playback of bad$i hung on a failing device"
	ends=$((ends + 1))
done
errs=$(metric streamd_sched_errors_total)
check "$errs > 0" || fail "streamd_sched_errors_total is $errs after EIOs"
http /streams "$work/list.json"
expect_code 200 "the list with a failing device"
kill -0 "$streamd_pid" || fail "streamd died"
pass "all $ends playbacks ended without a hang; $errs device errors counted; streamd still serves"
stop_streamd

# --- Nothing accepted was lost --------------------------------------
start_streamd
for i in 1 2 3 4; do
	http "/streams/bad$i/data.ts" "$work/got$i.ts"
	[ "$code" = 200 ] || [ "$code" = 404 ] ||
		fail "bad$i after the faults: HTTP $code"
	[ "$code" = 200 ] || : >"$work/got$i.ts"
	n=$(size_of "$work/got$i.ts")
	cmp -s -n "$n" "$work/got$i.ts" "$work/in.ts" ||
		fail "bad$i's $n bytes are not a prefix of what was sent"
	note "bad$i kept $n of $size bytes"
done
pass "restarted without faults: every recording is a prefix of what was sent"
stop_streamd
if find_djmfs_tools; then
	"$DJMFS" fsck "$data_dir/volume.img" >"$work/fsck.out" 2>&1 ||
		fail "djmfs fsck after the faults: $(tail -n 3 "$work/fsck.out")"
	pass "djmfs fsck: $(tail -n 1 "$work/fsck.out")"
fi
