#!/bin/bash
# How fast GET /streams answers with many recordings and long histories:
# starts an embedded streamd on a scratch directory, records N short
# recordings (a 2 s MPEG-TS pushed with curl, 8 at a time) and one long
# one (LONG_KEYS keyframes, pushed as fast as it goes), then times
# GET /streams once cold (a fresh streamd: every recording's header and
# index read for the first time) and REPEAT times warm, and the long
# recording's detail.  Prints one JSON object.
#
# Usage: streamd/bench/list-bench.sh [N [LONG_KEYS [REPEAT]]]
# (defaults 2000, 20000, 10).  Environment: STREAMD (default: the build
# tree's streamd/streamd).  Needs ffmpeg and curl.

set -euo pipefail

n=${1:-2000}
long_keys=${2:-20000}
repeat=${3:-10}
streamd=${STREAMD:-./streamd/streamd}
work=$(mktemp -d "${TMPDIR:-/tmp}/list-bench.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# start N: streamd, logging to $work/streamd.N.log; sets pid and url.
start() {
	"$streamd" --data-dir "$work/data" --listen 127.0.0.1:0 \
		--volume-size 8GiB --max-connections 4096 \
		--error-log "$work/streamd.$1.log" >"$work/out" 2>&1 &
	pid=$!
	url=
	for _ in $(seq 1200); do # a minute: a volume of thousands of files replays first
		url=$(grep -so 'listening on http://[0-9.:]*' \
			"$work/streamd.$1.log" | sed 's/listening on //') || true
		[ -n "$url" ] && break
		sleep 0.05
	done
	[ -n "$url" ] || { echo "streamd did not start" >&2; exit 1; }
}

ms() { curl -sS -o "$work/body" -w '%{time_total}' "$url$1" |
	awk '{ printf "%.1f", $1 * 1000 }'; }

ffmpeg -nostdin -v error -f lavfi -i testsrc=size=160x120:rate=25 -t 2 \
	-c:v libx264 -preset ultrafast -g 25 -f mpegts "$work/short.ts"
ffmpeg -nostdin -v error -f lavfi -i testsrc=size=64x48:rate=25 \
	-frames:v "$long_keys" -c:v libx264 -preset ultrafast -g 1 \
	-f mpegts "$work/long.ts"

start 1
seq "$n" | xargs -P 8 -I{} curl -sS -o /dev/null -X PUT \
	--data-binary "@$work/short.ts" "$url/record/r{}"
curl -sS -o /dev/null -X PUT --data-binary "@$work/long.ts" "$url/record/long"
kill "$pid"
wait "$pid" 2>/dev/null || true
start 2

cold=$(ms /streams)
listed=$(grep -c '"name"' "$work/body" || true)
warm=()
for _ in $(seq "$repeat"); do
	warm+=("$(ms /streams)")
done
detail=$(ms /streams/long)
keys=$(grep -o '"keyframes": *[0-9]*' "$work/body" | grep -o '[0-9]*$')
printf '%s\n' "${warm[@]}" | sort -n >"$work/warm"
p50=$(awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' "$work/warm")
max=$(tail -n 1 "$work/warm")
printf '{"recordings":%s,"listed":%s,"long_keyframes":%s,' \
	"$((n + 1))" "$listed" "${keys:-0}"
printf '"list_cold_ms":%s,"list_warm_p50_ms":%s,"list_warm_max_ms":%s,' \
	"$cold" "$p50" "$max"
printf '"detail_long_ms":%s}\n' "$detail"
