#!/usr/bin/env bash
# Quick start, step one: installs what is missing, builds, and runs the main
# job.  Until the streaming daemon lands, the main job is a scheduler
# comparison on the simulated 7,200-rpm disk: every policy at the same
# load, one JSON line each, then GLMD's zero-miss capacity.
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
