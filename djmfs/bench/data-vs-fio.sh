#!/usr/bin/env bash
# Side-by-side run for the data path: measures what fio gets from this
# machine's storage for 64 KiB O_DIRECT I/O (random, half reads, half
# writes: the same mix as djmfs-bench's reader/writer pairs), then runs
# djmfs-bench with data I/O at the pair counts that ask for given shares
# of that bandwidth, and prints one JSON line per run with the ratio.
#
# Usage: djmfs/bench/data-vs-fio.sh DIR [PERCENT...]   (default 80 90 100)
#   DIR: where the fio file and the benchmark volume go (needs about
#        pairs x 64 KiB x duration / 0.256 s x 1.25 bytes of free space,
#        e.g. 15 GB at 1,700 pairs for 30 s).
# Env: DJMFS_BENCH (default: djmfs-bench next to this build), FIO_RUNTIME
#      (20), DURATION (30), FIO_SIZE (8G).
set -euo pipefail

dir=${1:?usage: data-vs-fio.sh DIR [PERCENT...]}
shift
percents=("$@")
[ ${#percents[@]} -gt 0 ] || percents=(80 90 100)
bench=${DJMFS_BENCH:-djmfs-bench}
duration=${DURATION:-30}
command -v fio >/dev/null || { echo "data-vs-fio: fio is not installed" >&2; exit 1; }
mkdir -p "$dir"

fio_json="$dir/fio.json"
fio --name=mix --filename="$dir/fio.dat" --size="${FIO_SIZE:-8G}" \
	--rw=randrw --rwmixread=50 --bs=64k --direct=1 --ioengine=io_uring \
	--iodepth=32 --runtime="${FIO_RUNTIME:-20}" --time_based \
	--group_reporting --output-format=json >"$fio_json"
rm -f "$dir/fio.dat"
fio_bw=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print(j["read"]["bw_bytes"] + j["write"]["bw_bytes"])' "$fio_json")
echo "{\"fio_bytes_per_s\":$fio_bw}"

# One pair moves 64 KiB written plus 64 KiB read every 256 ms.
pair_bw=$((2 * 65536 * 1000 / 256))
for pct in "${percents[@]}"; do
	pairs=$((fio_bw * pct / 100 / pair_bw))
	rm -f "$dir/bench.img"
	out=$("$bench" --pairs "$pairs" --duration "$duration" \
		--volume "$dir/bench.img" 2>"$dir/bench-$pct.log" | tail -n 1)
	rm -f "$dir/bench.img"
	python3 -c '
import json, sys
b = json.loads(sys.argv[1]); fio = int(sys.argv[2])
print(json.dumps({"target_pct": int(sys.argv[3]), "pairs": b["pairs"],
  "bytes_per_s": b["bytes_per_s"], "fio_bytes_per_s": fio,
  "share_of_fio": round(b["bytes_per_s"] / fio, 3),
  "deadline_miss_rate": b["deadline_miss_rate"],
  "write_latency_p99_ms": b["write_latency_p99_ms"],
  "read_latency_p99_ms": b["read_latency_p99_ms"]}))' "$out" "$fio_bw" "$pct"
done
