#!/usr/bin/env bash
# Quick start, step one: installs what is missing, builds, and runs the main
# job.  Until the streaming daemon lands, the main job is a scheduler
# comparison on the simulated 7,200-rpm disk (every policy at the same
# load, one JSON line each, then GLMD's zero-miss capacity), then a short
# run of the DJMFS reader/writer pair experiment with data I/O on a volume
# file in the build directory.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
build=$("$top/.ci/prepare" "$@")
export IOSCHED_PROFILE_DIR="$top/sched/profiles"
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
