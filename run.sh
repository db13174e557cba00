#!/usr/bin/env bash
# Quick start, step one: installs what is missing, builds, and runs the main
# job: streamd on its embedded default (./streamd-data/ with a volume file,
# the DJMFS server in-process, HTTP on 127.0.0.1:8080) together with a demo
# encoder (an ffmpeg test pattern, H.264 + AAC, 2 s GOP, pushed live to
# /record/demo), so one can watch live and time-shifted at once.  Ctrl-C
# stops both; the recording stays in ./streamd-data/.
#
#   ./run.sh [--sanitizers]   the daemon and the demo encoder
#   ./run.sh --bench          the earlier experiments instead: the five
#                             scheduling policies on the simulated disk and a
#                             short DJMFS reader/writer run (JSON lines)
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
bench=0
prep=()
for a in "$@"; do
	case "$a" in
	--bench) bench=1 ;;
	*) prep+=("$a") ;;
	esac
done
build=$("$top/.ci/prepare" "${prep[@]}")
export IOSCHED_PROFILE_DIR="$top/sched/profiles"

if [ "$bench" = 1 ]; then
	for p in fifo edf scan scan-edf glmd; do
		"$build/iosched-bench" --device sim:hdd-7200 --policy "$p" \
			--streams 40 --duration 60 --quiet
	done
	"$build/iosched-bench" --device sim:hdd-7200 --policy glmd --sweep \
		--duration 60 --quiet
	rm -f "$build/run-volume.img"
	"$build/djmfs/djmfs-bench" --pairs 100 --duration 10 \
		--volume "$build/run-volume.img"
	rm -f "$build/run-volume.img"
	exit 0
fi

url=http://127.0.0.1:8080
cd "$top"
"$build/streamd/streamd" &
daemon=$!
encoder=
stop() {
	if [ -n "$encoder" ]; then
		pkill -P "$encoder" 2>/dev/null || true
		kill "$encoder" 2>/dev/null || true
	fi
	kill -TERM "$daemon" 2>/dev/null
	wait "$daemon" 2>/dev/null || true
}
trap stop EXIT INT TERM
for _ in $(seq 50); do
	curl -fs "$url/metrics" >/dev/null 2>&1 && break
	kill -0 "$daemon" 2>/dev/null || { echo "run.sh: streamd did not start" >&2; exit 1; }
	sleep 0.2
done

# The demo encoder reconnects if it is cut off; each reconnection continues
# the same recording (a gap in the index).
(
	while :; do
		ffmpeg -hide_banner -loglevel error -re \
			-f lavfi -i "testsrc=size=1280x720:rate=25" \
			-f lavfi -i "sine=frequency=440:sample_rate=48000" \
			-c:v libx264 -preset veryfast -tune zerolatency -g 50 \
			-keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p -b:v 1800k \
			-c:a aac -b:a 128k -f mpegts -method PUT "$url/record/demo" \
			|| sleep 1
	done
) &
encoder=$!
cat <<EOF

The demo encoder is recording to $url/record/demo.  Watch it:
  ffplay '$url/streams/demo.ts'                   live
  ffplay '$url/streams/demo.ts?start=-30'         30 s behind live (after 30 s)
  vlc $url/streams/demo/index.m3u8               HLS
  curl $url/streams/demo                         what is recorded (JSON)
  curl $url/metrics                              Prometheus metrics
Ctrl-C stops the daemon and the encoder.
EOF
wait "$daemon"
