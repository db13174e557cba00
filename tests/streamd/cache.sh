#!/usr/bin/env bash
# Interval cache test of streamd: an encoder pushes 16 s of the pattern
# (cam1) while players a few seconds behind live fetch it: every second,
# three data.ts ranges that start 1 to 3 s of the stream behind the live
# edge, and four live .ts followers started 2 s behind.  What the
# recorder has just written must serve them from memory: the cache's
# hits grow, and the bytes read from the disk stay far below those
# served.  Every data.ts answer must be byte for byte the pushed bytes at
# its offset.  Then streamd restarts with cache_size = 0 on the same
# volume: the same ranges come from the disk, still byte for byte, and
# the cache counts no hit.
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
make_workdir cache
SECS=16

# range_player N A: data.ts from byte A to the live edge into rN.ts,
# with A in rN.at.
range_player() {
	echo "$2" >"$work/r$1.at"
	curl -sS --fail --max-time 20 -o "$work/r$1.ts" \
		-H "Range: bytes=$2-" "$URL/streams/cam1/data.ts" \
		2>"$work/r$1.curl"
}

# same_as_pushed N: rN.ts is the pushed file's bytes at its offset.
same_as_pushed() {
	local at len
	at=$(cat "$work/r$1.at")
	len=$(size_of "$work/r$1.ts")
	[ "$len" -gt 0 ] || fail "range player $1 got nothing"
	cmp -s -n "$len" -i "0:$at" "$work/r$1.ts" "$work/cam1.ts" ||
		fail "range player $1: bytes from $at ($len) differ from the push"
}

start_streamd
grep -q 'cache_size: [0-9.]* MiB' "$work/streamd.log" ||
	fail "no cache_size line in the error log"
pass "streamd listens on $URL; $(grep -o 'cache_size: .*' "$work/streamd.log" | head -n 1)"

start_push cam1 $SECS
push=$push_pid
wait_live cam1 true 10
sleep 3
streams_list "$work/streams.json"
rate=$(stream_field "$work/streams.json" cam1 bitrate)
[ -n "$rate" ] && check "$rate > 0" || fail "no bitrate for cam1"
bps=$(awk -v r="$rate" 'BEGIN { printf "%d\n", r / 8 }')

followers=()
for ((i = 0; i < 4; i++)); do
	curl -sS --max-time 9 -o "$work/f$i.ts" \
		"$URL/streams/cam1.ts?start=-2" 2>/dev/null &
	followers+=($!)
done
# Admission counts only what reaches the disk: followers the recorder's
# blocks serve are promised (almost) no disk.
sleep 3
http /admin/capacity "$work/capacity.json"
expect_code 200 "GET /admin/capacity"
share=$(json_get "$work/capacity.json" .disk.viewers_disk_share)
[ -n "$share" ] && check "$share < 0.5" ||
	fail "live followers served from the cache still promise the disk: share $share"
pass "admission: the followers' disk share is $share"
players=()
n=0
for ((t = 0; t < 8; t++)); do
	streams_list "$work/streams.json"
	size=$(stream_field "$work/streams.json" cam1 bytes)
	for behind in 1 2 3; do
		at=$((size - behind * bps))
		[ "$at" -gt 0 ] || at=0
		range_player $n $at &
		players+=($!)
		n=$((n + 1))
	done
	sleep 1
done
pass "$n data.ts players and ${#followers[@]} live followers started behind live"

for ((i = 0; i < ${#players[@]}; i++)); do
	wait_rc "${players[$i]}" 30
	[ "$rc" -eq 0 ] || fail "range player $i: status $rc: $(head -n 2 "$work/r$i.curl")"
done
for pid in "${followers[@]}"; do wait_rc "$pid" 20; done
wait_rc "$push" 30
[ "$rc" -eq 0 ] || fail "the push ended with status $rc"
wait_live cam1 false 10
for ((i = 0; i < n; i++)); do same_as_pushed $i; done
pass "every data.ts answer is the pushed bytes at its offset"
for ((i = 0; i < ${#followers[@]}; i++)); do
	[ -s "$work/f$i.ts" ] || fail "live follower $i got nothing"
done

http /metrics "$work/metrics.txt"
expect_code 200 "GET /metrics"
hits=$(metric_in "$work/metrics.txt" streamd_cache_hits_total)
hitb=$(metric_in "$work/metrics.txt" streamd_cache_hit_bytes_total)
disk=$(metric_in "$work/metrics.txt" streamd_disk_read_bytes_total)
out=$(metric_in "$work/metrics.txt" streamd_bytes_out_total)
held=$(metric_in "$work/metrics.txt" streamd_cache_bytes)
[ -n "$hits" ] && [ -n "$disk" ] && [ -n "$held" ] ||
	fail "no streamd_cache_hits_total, streamd_disk_read_bytes_total or streamd_cache_bytes"
check "$hits > 0 && $hitb > 0" || fail "streamd_cache_hits_total $hits: no hit"
check "$held > 0" || fail "streamd_cache_bytes $held with a recording just written"
check "$disk * 10 < $out" ||
	fail "read $disk bytes from the disk for $out served: the cache did not serve them"
pass "cache: $hits hits ($hitb bytes), $disk bytes from the disk for $out served"
stop_streamd

# --- No cache: the same bytes, all from the disk. --------------------
start_streamd --cache-size 0
grep -q 'cache_size: 0' "$work/streamd.log" || fail "no 'cache_size: 0' line"
pids=()
for ((i = 0; i < 6; i++)); do
	range_player $i "$(cat "$work/r$i.at")" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait_rc "$pid" 30
	[ "$rc" -eq 0 ] || fail "a range player failed without the cache"
done
for ((i = 0; i < 6; i++)); do same_as_pushed $i; done
http /metrics "$work/metrics0.txt"
hits=$(metric_in "$work/metrics0.txt" streamd_cache_hits_total)
disk=$(metric_in "$work/metrics0.txt" streamd_disk_read_bytes_total)
check "$hits == 0" || fail "cache_size = 0, yet $hits hits"
check "$disk > 0" || fail "cache_size = 0 and nothing read from the disk"
pass "cache_size = 0: 0 hits, $disk bytes from the disk, the same bytes"
stop_streamd
