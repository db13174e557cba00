#!/bin/sh
# Integration test of iosched-bench: runs the tool the way a user would
# (a simulated disk, a sweep, the policy micro-benchmark, io_uring and
# psync on a real temporary file) and checks that the last line of stdout
# is one JSON object with the documented fields and sane values, and that
# bad usage fails with a message.  The real-file parts are skipped where
# the file system refuses O_DIRECT or the kernel refuses io_uring.
#
# Environment: IOSCHED_BENCH (default ./iosched-bench), IOSCHED_PROFILE_DIR
# (default: the source tree's sched/profiles).
# Exit status: 0 pass, 1 fail, 77 skipped.

set -u

BENCH=${IOSCHED_BENCH:-./iosched-bench}
failures=0
work=
data=

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$work" ]; then rm -rf "$work"; fi
	if [ -n "$data" ]; then rm -f "$data"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

if [ ! -x "$BENCH" ]; then
	echo "SKIP: $BENCH not built (set IOSCHED_BENCH)" >&2
	exit 77
fi

# Built in: with no profile directory at all (a fresh build tree), the
# shipped profiles are still known.
for p in hdd-7200 ssd-sata nvme; do
	if env -u IOSCHED_PROFILE_DIR "$BENCH" --device "sim:$p" --policy edf \
		--streams 4 --duration 2 --quiet >/dev/null 2>"${TMPDIR:-/tmp}/iosched-bench-builtin.$$"; then
		pass "sim:$p runs with no IOSCHED_PROFILE_DIR (built-in profile)"
	else
		fail "sim:$p with no IOSCHED_PROFILE_DIR: $(cat "${TMPDIR:-/tmp}/iosched-bench-builtin.$$")"
	fi
	rm -f "${TMPDIR:-/tmp}/iosched-bench-builtin.$$"
done

if [ -z "${IOSCHED_PROFILE_DIR:-}" ]; then
	for d in "${srcdir:-.}/sched/profiles" \
		"$(dirname "$0")/../../sched/profiles"; do
		if [ -f "$d/hdd-7200.profile" ]; then
			IOSCHED_PROFILE_DIR=$d
			export IOSCHED_PROFILE_DIR
			break
		fi
	done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/iosched-bench-test.XXXXXX") || exit 1
out=$work/out
err=$work/err

if command -v python3 >/dev/null 2>&1; then
	have_python=yes
else
	have_python=no
fi

# is_json FILE FIELD...: the last line of FILE is one JSON object holding
# every FIELD.
is_json() {
	f=$1
	shift
	if [ "$have_python" = yes ]; then
		python3 - "$f" "$@" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
try:
    obj = json.loads(lines[-1]) if lines else None
except ValueError as e:
    sys.exit("last line is not JSON: %s" % e)
if not isinstance(obj, dict):
    sys.exit("last line is not a JSON object")
missing = [k for k in sys.argv[2:] if k not in obj]
if missing:
    sys.exit("missing fields: " + ", ".join(missing))
EOF
		return
	fi
	last=$(tail -n 1 "$f")
	case $last in
	'{'*'}') ;;
	*) echo "last line is not a JSON object" >&2; return 1 ;;
	esac
	for k in "$@"; do
		case $last in
		*"\"$k\":"*) ;;
		*) echo "missing field: $k" >&2; return 1 ;;
		esac
	done
}

# jget FILE FIELD: the value of a top-level scalar FIELD on the last line
# (without python, arrays are cut out first so that their members' fields
# don't shadow the top-level ones).
jget() {
	if [ "$have_python" = yes ]; then
		python3 -c '
import json, sys
v = json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]]
print(v if not isinstance(v, bool) else str(v).lower())' "$1" "$2"
		return
	fi
	tail -n 1 "$1" | sed 's/\[[^]]*\]//g' |
		sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# run NAME ARGS...: runs the tool, stdout to $out, stderr to $err.
run() {
	name=$1
	shift
	"$BENCH" "$@" >"$out" 2>"$err"
	rc=$?
	if [ $rc -ne 0 ]; then
		fail "$name: exit $rc: $(cat "$err")"
		return 1
	fi
	return 0
}

RUN_FIELDS="policy engine backend device streams size period_s duration_s
	requests misses miss_rate lateness_p50_us lateness_p99_us
	lateness_max_us throughput_MBps cpu_s latency_p50_us latency_p99_us
	latency_max_us errors seed depth queue_depth_max"

# --- A short run on the simulated disk: light load, no miss. ---------
if run sim --device sim:hdd-7200 --policy glmd --streams 10 --duration 5; then
	# shellcheck disable=SC2086
	if ! is_json "$out" $RUN_FIELDS; then
		fail "sim: bad JSON: $(tail -n 1 "$out")"
	elif [ "$(jget "$out" misses)" != 0 ]; then
		fail "sim: $(jget "$out" misses) misses at 10 streams"
	elif [ "$(jget "$out" requests)" -le 0 ]; then
		fail "sim: no requests"
	elif [ "$(jget "$out" engine)" != uring ] ||
		[ "$(jget "$out" backend)" != sim ]; then
		fail "sim: engine/backend $(jget "$out" engine)/$(jget "$out" backend)"
	else
		pass "sim run"
	fi
fi

# --- No --device: the simulated 7,200-rpm disk at the profile's depth. -
if run default --streams 4 --duration 2 --quiet; then
	if [ "$(jget "$out" device)" != sim:hdd-7200 ] ||
		[ "$(jget "$out" depth)" != 1 ]; then
		fail "default: device $(jget "$out" device) depth $(jget "$out" depth)"
	else
		pass "default device"
	fi
fi

# --- Sweep: the boundary is above zero on the simulated disk. ---------
if run sweep --device sim:hdd-7200 --sweep --duration 3 --quiet; then
	# shellcheck disable=SC2086
	if ! is_json "$out" $RUN_FIELDS max_streams_zero_miss sweep_trials; then
		fail "sweep: bad JSON: $(tail -n 1 "$out")"
	elif [ "$(jget "$out" max_streams_zero_miss)" -le 0 ]; then
		fail "sweep: max_streams_zero_miss is $(jget "$out" max_streams_zero_miss)"
	elif [ "$(jget "$out" misses)" != 0 ]; then
		fail "sweep: the reported run has misses"
	else
		pass "sweep (max_streams_zero_miss $(jget "$out" max_streams_zero_miss))"
	fi
fi

# --- Micro-benchmark of the policy alone. ----------------------------
if run micro --micro --depth 1000 --policy glmd; then
	if ! is_json "$out" policy depth insert_ns_mean insert_ns_p99 \
		dispatch_ns_mean iterations; then
		fail "micro: bad JSON: $(tail -n 1 "$out")"
	elif [ "$(jget "$out" depth)" != 1000 ] ||
		[ "$(jget "$out" policy)" != glmd ] ||
		[ "$(jget "$out" iterations)" -le 0 ]; then
		fail "micro: unexpected figures: $(tail -n 1 "$out")"
	else
		pass "micro (insert $(jget "$out" insert_ns_mean) ns)"
	fi
fi

# --- Real I/O on a temporary file: io_uring, then psync. -------------
data=$(mktemp "${TMPDIR:-/tmp}/iosched-bench-data.XXXXXX") || exit 1
direct=no
if dd if=/dev/urandom of="$data" bs=1048576 count=64 2>/dev/null &&
	dd if="$data" of=/dev/null bs=65536 count=1 iflag=direct 2>/dev/null; then
	direct=yes
fi

# real_run NAME ENGINE DEPTH ARGS...: a 2-second run of 4 streams with
# errors 0 that reports the dispatch depth (psync: threads) it used.
real_run() {
	name=$1 engine=$2 want_depth=$3
	shift 3
	"$BENCH" --device "$data" --engine "$engine" --streams 4 --duration 2 \
		--quiet "$@" >"$out" 2>"$err"
	rc=$?
	if [ $rc -ne 0 ] && grep -q 'io_uring unavailable' "$err"; then
		echo "skip: $name: io_uring is not available here"
		return
	fi
	if [ $rc -ne 0 ]; then
		fail "$name: exit $rc: $(cat "$err")"
	elif ! is_json "$out" requests errors misses throughput_MBps; then
		fail "$name: bad JSON: $(tail -n 1 "$out")"
	elif [ "$(jget "$out" requests)" -le 0 ] ||
		[ "$(jget "$out" errors)" != 0 ]; then
		fail "$name: requests $(jget "$out" requests) errors $(jget "$out" errors)"
	elif [ "$(jget "$out" depth)" != "$want_depth" ]; then
		fail "$name: depth $(jget "$out" depth), asked for $want_depth"
	else
		pass "$name ($(jget "$out" requests) requests)"
	fi
}

if [ $direct = yes ]; then
	# 300 is beyond a default-sized ring: the run must still use it.
	real_run uring uring 300 --depth 300
	real_run psync psync 8 --threads 8
else
	echo "skip: O_DIRECT is not supported on ${TMPDIR:-/tmp}"
fi

# --- Richer workloads (all on the simulator, so every figure is exact). -
SIM="--device sim:hdd-7200 --quiet"
trace=$work/trace

# field_is NAME FIELD OP VALUE: a numeric test on a JSON field of $out.
field_is() {
	v=$(jget "$out" "$2")
	if [ -z "$v" ] || ! [ "$v" "$3" "$4" ]; then
		fail "$1: $2 is '$v', wanted $3 $4"
		return 1
	fi
}

if run writers $SIM --streams 8 --writers 0.5 --write-deadline 1 \
	--duration 5 --trace "$trace"; then
	# Streams 1, 3, 5 and 7 write, and only they.
	wstreams=$(awk '$3 == "write" { print $1 }' "$trace" | sort -un | tr '\n' ' ')
	if ! is_json "$out" write_misses read_misses workload; then
		fail "writers: bad JSON: $(tail -n 1 "$out")"
	elif field_is writers writes -gt 0 && field_is writers reads -gt 0 &&
		field_is writers writer_streams -eq 4; then
		if [ "$wstreams" != "1 3 5 7 " ]; then
			fail "writers: writing streams are '$wstreams'"
		elif [ "$(jget "$out" op)" != mixed ]; then
			fail "writers: op $(jget "$out" op)"
		elif [ "$(awk '$3 == "write" && $7 - $6 != 1000000000' "$trace" | wc -l)" -ne 0 ]; then
			fail "writers: a write's deadline is not issue + 1 s"
		else
			pass "--writers 0.5 ($(jget "$out" writes) writes)"
		fi
	fi
fi

if run factor $SIM --streams 4 --periods 0.3,0.6 --sizes 65536,131072 \
	--deadline-factor 2 --duration 3 --trace "$trace"; then
	# Stream 1 has 0.6 s and 128 KiB, so its deadline is 1.2 s out.
	bad=$(awk '!/^#/ && (($1 % 2 == 1 && ($7 - $6 != 1200000000 || $5 != 131072)) ||
		($1 % 2 == 0 && ($7 - $6 != 600000000 || $5 != 65536)))' "$trace" | wc -l)
	if [ "$bad" -ne 0 ]; then
		fail "periods/sizes/deadline-factor: $bad requests off: $(head -n 3 "$trace")"
	else
		pass "--periods, --sizes and --deadline-factor"
	fi
fi

# An idle load keeps its zero misses with a background reader, whatever
# the policy (the JSON's misses are the deadline requests' only): glmd
# and scan once let a back-to-back reader at the head take the disk.
for pol in edf glmd; do
	run bg0 $SIM --policy $pol --streams 4 --duration 5 || continue
	m0=$(jget "$out" misses) r0=$(jget "$out" requests)
	run bg1 $SIM --policy $pol --streams 4 --duration 5 --background 1 \
		--trace "$trace" || continue
	nbg=$(awk '$2 == "bg" && $7 == 0' "$trace" | wc -l)
	if field_is background background_requests -gt 100 &&
		field_is background misses -eq "$m0" &&
		field_is background requests -gt "$r0"; then
		if [ "$nbg" -ne "$(jget "$out" background_requests)" ]; then
			fail "background: $nbg best-effort lines in the trace"
		else
			pass "--background 1 with $pol ($nbg best-effort reads, misses $m0)"
		fi
	fi
done

# --refill: the start-up bursts put more reads in the first second than
# one per period would, and a light load never runs dry.
if run refill $SIM --streams 8 --refill --duration 10 --trace "$trace"; then
	first=$(awk '!/^#/ && $6 < 1000000000' "$trace" | wc -l)
	if field_is refill underflows -eq 0 && field_is refill requests -gt 0; then
		if [ "$first" -le $((8 * 4)) ]; then
			fail "refill: only $first reads in the first second"
		else
			pass "--refill ($first reads in the first second, 0 underflows)"
		fi
	fi
fi
if run refill-heavy $SIM --policy fifo --streams 60 --refill --duration 10; then
	field_is refill-heavy underflows -gt 0 &&
		pass "--refill underflows under overload ($(jget "$out" underflows))"
fi
if run seeks $SIM --streams 8 --refill --seek-every 2 --duration 20; then
	field_is seeks seeks -gt 20 && pass "--seek-every ($(jget "$out" seeks) seeks)"
fi

# --share 4: member j reads, 7 reads (2.1 s at 0.3 s) later, the offsets
# the first member read.
if run share $SIM --streams 8 --share 4 --duration 10 --trace "$trace"; then
	bad=$(grep -v '^#' "$trace" | sort -k1,1n -k6,6n | awk '
		{ n[$1]++; o[$1, n[$1]] = $4 }
		END {
			bad = 0; cmp = 0
			for (s = 0; s < 8; s++) {
				lead = s - s % 4; j = s % 4
				for (k = 1; k + 7 * j <= n[s] && k <= n[lead]; k++) {
					cmp++
					if (o[s, k + 7 * j] != o[lead, k]) bad++
				}
			}
			if (cmp < 100) bad = "too few (" cmp ")"
			print bad
		}')
	if [ "$bad" != 0 ]; then
		fail "share: $bad offsets differ within a group"
	else
		pass "--share 4 reads the same offsets within a group"
	fi
fi

# A sweep takes the whole workload; a run is the same for a seed.
if run sweep-rich $SIM --policy edf --sweep --refill --background 1 --writers 0.25 \
	--duration 3; then
	if ! is_json "$out" max_streams_zero_miss sweep_trials workload underflows; then
		fail "sweep-rich: bad JSON: $(tail -n 1 "$out")"
	else
		pass "sweep of a rich load (max_streams_zero_miss $(jget "$out" max_streams_zero_miss))"
	fi
fi
rich="--streams 24 --share 8 --refill --seek-every 5 --background 1 --writers 0.25 --duration 10 --seed 3"
# shellcheck disable=SC2086
if run det1 $SIM $rich && tail -n 1 "$out" | sed 's/"cpu_s":[^,]*,//' >"$work/a" &&
	run det2 $SIM $rich && tail -n 1 "$out" | sed 's/"cpu_s":[^,]*,//' >"$work/b"; then
	if cmp -s "$work/a" "$work/b"; then
		pass "a rich run is the same for a seed"
	else
		fail "two runs with --seed 3 differ: $(cat "$work/a" "$work/b")"
	fi
fi

# --- Bad usage fails with a message. ----------------------------------
# refused NAME ARGS...: a non-zero exit, a message on stderr, no JSON.
refused() {
	name=$1
	shift
	"$BENCH" "$@" >"$out" 2>"$err"
	rc=$?
	if [ $rc -eq 0 ]; then
		fail "$name: accepted"
	elif [ ! -s "$err" ]; then
		fail "$name: exit $rc without a message"
	elif [ -s "$out" ]; then
		fail "$name: printed a result anyway"
	else
		pass "$name refused (exit $rc)"
	fi
}

refused "bad --policy" --device sim:hdd-7200 --policy no-such-policy --duration 1
refused "bad sim: profile" --device sim:no-such-profile --duration 1
refused "missing device" --device "$work/no-such-device" --duration 1
refused "bad --size" --device sim:hdd-7200 --size 1000 --duration 1

# usage NAME ARGS...: refused as bad usage, exit status 2.
usage() {
	name=$1
	shift
	"$BENCH" "$@" >"$out" 2>"$err"
	rc=$?
	if [ $rc -ne 2 ]; then
		fail "$name: exit $rc, wanted 2: $(cat "$err")"
	elif [ ! -s "$err" ] || [ -s "$out" ]; then
		fail "$name: no message, or a result anyway"
	else
		pass "$name refused: $(head -n 1 "$err")"
	fi
}

usage "empty --periods" $SIM --periods ''
usage "empty item in --periods" $SIM --periods 0.3,,0.6
usage "negative period" $SIM --periods 0.3,-1
usage "junk period" $SIM --periods 0.3,fast
usage "empty --sizes" $SIM --sizes ''
usage "--sizes not n*512" $SIM --sizes 65536,1000
usage "junk size" $SIM --sizes 64k
usage "--writers above 1" $SIM --writers 1.5
usage "negative --writers" $SIM --writers -0.1
usage "junk --writers" $SIM --writers half
usage "negative --write-deadline" $SIM --write-deadline -1
usage "zero --deadline-factor" $SIM --deadline-factor 0
usage "negative --background" $SIM --background -1
usage "zero --share" $SIM --share 0
usage "--seek-every without --refill" $SIM --seek-every 5
usage "--buffer below two reads" $SIM --refill --buffer 65536
usage "--thresholds B above A" $SIM --refill --thresholds 30,80
usage "--writers on a real device without --write" \
	--device "$work/no-such-device" --writers 0.5
usage "psync with a rich load" --device "$work/no-such-device" \
	--engine psync --refill

if [ $failures -ne 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
exit 0
