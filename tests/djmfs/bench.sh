#!/bin/bash
# Integration test of djmfs-bench: short runs the way a user starts it
# (the bench formats a temporary volume and runs its own djmfsd), once
# with data I/O and once --metadata-only, checking that the last line of
# stdout is one JSON object with every documented field and sane values;
# then that bad usage fails with a message and no result.
#
# Environment: DJMFS_BENCH, DJMFSD, IOSCHED_PROFILE_DIR (defaults:
# the build tree's programs and the source tree's profiles, see lib.sh).
# Exit status: 0 pass, 1 fail, 77 skipped.

set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS_BENCH DJMFSD
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 is needed to read the JSON" >&2
	exit 77
fi
make_workdir bench-test

# check_json FILE PAIRS DURATION METADATA_ONLY: the last line holds every
# field, with values a short, light run must give.
check_json() {
	python3 - "$@" <<'PY'
import json, sys
path, pairs, duration, md_only = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lines = open(path).read().splitlines()
try:
    j = json.loads(lines[-1])
except (IndexError, ValueError) as e:
    sys.exit("last line is not JSON: %s" % e)
need = ["pairs", "duration_s", "server_cpu_pct", "server_cpu_pct_per_pair",
        "projected_max_pairs", "deadline_miss_rate", "lock_busy_pct",
        "metadata_ops_per_s"]
missing = [k for k in need if k not in j]
if missing:
    sys.exit("missing fields: " + ", ".join(missing))
def bad(msg):
    sys.exit("%s in %s" % (msg, lines[-1]))
if j["pairs"] != pairs:
    bad("pairs is %r" % j["pairs"])
if not duration * 0.8 <= j["duration_s"] <= duration * 1.5:
    bad("duration_s is %r" % j["duration_s"])
cpu = j["server_cpu_pct"]
if not 0 <= cpu <= 100 * 64:
    bad("server_cpu_pct is %r" % cpu)
if abs(j["server_cpu_pct_per_pair"] * pairs - cpu) > 0.01 + cpu * 1e-3:
    bad("server_cpu_pct_per_pair is not server_cpu_pct / pairs")
p = j["projected_max_pairs"]
if p is not None and (not isinstance(p, int) or p < 1):
    bad("projected_max_pairs is %r" % p)
if p is None and cpu > 0:
    bad("projected_max_pairs missing although the server used CPU")
if not 0 <= j["deadline_miss_rate"] <= 1:
    bad("deadline_miss_rate is %r" % j["deadline_miss_rate"])
if not 0 <= j["lock_busy_pct"] <= 100:
    bad("lock_busy_pct is %r" % j["lock_busy_pct"])
# Per pair and period: a PUBLISH and a SYNC_SNAP at least.
want_ops = pairs * 2 / (j.get("period_ms", 256) / 1000.0)
if j["metadata_ops_per_s"] < want_ops * 0.5:
    bad("metadata_ops_per_s %r, expected about %.0f or more" %
        (j["metadata_ops_per_s"], want_ops))
periods = duration * 1000.0 / j.get("period_ms", 256)
for k in ("writes", "reads"):
    if k in j and not pairs * (periods - 2) <= j[k] <= pairs * (periods + 2):
        bad("%s is %r, expected about %.0f" % (k, j[k], pairs * periods))
if j.get("errors", 0) != 0:
    bad("%r I/O errors" % j["errors"])
if str(j.get("metadata_only", md_only == "true")).lower() != md_only:
    bad("metadata_only is %r" % j.get("metadata_only"))
print("pairs %d cpu %.2f%% projected %s misses %.4f lock_busy %.2f%% ops/s %.0f" %
      (pairs, cpu, p, j["deadline_miss_rate"], j["lock_busy_pct"],
       j["metadata_ops_per_s"]))
PY
}

# run_bench NAME METADATA_ONLY ARGS...
run_bench() {
	name=$1 md_only=$2
	shift 2
	"$DJMFS_BENCH" --pairs 8 --duration 3 --warmup 1 "$@" \
		>"$work/out" 2>"$work/bench.err" &
	wait_rc $! 120
	if [ "$rc" -ne 0 ] && [ "$md_only" = false ] &&
		grep -q -e 'Function not implemented' -e 'Operation not supported' "$work/bench.err"; then
		echo "skip: $name: no direct I/O here"
		return
	fi
	[ "$rc" -eq 0 ] || fail "$name: exit $rc"
	summary=$(check_json "$work/out" 8 3 "$md_only" 2>&1) ||
		fail "$name: $summary"
	grep -q 'measure' "$work/bench.err" || fail "$name: no progress on stderr"
	pass "$name: $summary"
}

run_bench "with data I/O" false
run_bench "metadata only" true --metadata-only

# --- Bad usage: a message, exit 2, no result. --------------------------
for args in "--pairs 0" "--size 0" "--period-ms x" "--bogus" "--duration -1"; do
	# shellcheck disable=SC2086 # split on purpose
	if "$DJMFS_BENCH" $args >"$work/out" 2>"$work/bench.err"; then rc=0; else rc=$?; fi
	[ "$rc" -eq 2 ] || fail "'$args': exit $rc, expected 2"
	[ -s "$work/bench.err" ] || fail "'$args': no message"
	[ ! -s "$work/out" ] || fail "'$args': printed a result"
done
pass "bad usage refused"
"$DJMFS_BENCH" --help >"$work/out" || fail "--help failed"
grep -q -- '--metadata-only' "$work/out" || fail "--help lacks --metadata-only"
pass "--help"
exit 0
