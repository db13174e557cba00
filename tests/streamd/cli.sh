#!/usr/bin/env bash
# The daemon's command line and configuration: --version and --help;
# usage errors exit 2 with a message naming the problem (unknown flag,
# missing value, out-of-range knob, B not below A, a bad config line with
# its PATH:LINE); a config file's settings apply and flags override them
# (seen through GET /admin/config); and `streamd` with no arguments, run
# in an empty directory, makes ./streamd-data/volume.img, listens on
# 127.0.0.1:8080 and prints how to record and watch (skipped when
# something else holds port 8080).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
command -v curl >/dev/null 2>&1 || {
	echo "SKIP: curl is not installed" >&2
	exit 77
}
make_workdir cli

out=$("$STREAMD" --version)
case $out in
"streamd "[0-9]*) pass "--version: $out" ;;
*) fail "--version printed '$out'" ;;
esac

"$STREAMD" --help >"$work/help.txt"
for f in --config --listen --data-dir --djmfs --volume --volume-size \
	--publish-token --admin-token --access-log --error-log --A --B \
	--period --read-size --buffer-size --deadline --policy --depth \
	--profile --admission --admission-ceiling --max-bandwidth; do
	grep -q -- "$f " "$work/help.txt" || fail "--help does not list $f"
done
pass "--help lists every flag ($(wc -l <"$work/help.txt") lines)"

# usage_error WHAT PATTERN ARGS...: exit 2 and a message matching PATTERN.
usage_error() {
	local what=$1 pattern=$2 rc=0
	shift 2
	"$STREAMD" "$@" >"$work/usage.out" 2>"$work/usage.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "$what: exit $rc, not 2"
	grep -q -- "$pattern" "$work/usage.err" ||
		fail "$what: no message matching '$pattern': $(cat "$work/usage.err")"
}
usage_error "an unknown flag" "no_such" --no-such 1
usage_error "a flag without its value" "needs a value" --read-size
usage_error "A above 100" "out of range" --A 200
usage_error "B not below A" "below A" --A 50 --B 60
usage_error "a read size that is not a multiple of 4096" "read_size" \
	--read-size 1000
usage_error "an unknown policy" "not one of" --policy best
printf 'read_size = 131072\nno_such_key = 1\n' >"$work/bad.conf"
usage_error "a bad config line" "bad.conf:2" --config "$work/bad.conf"
usage_error "a missing config file" "missing.conf" \
	--config "$work/missing.conf"
pass "usage errors exit 2 and name the problem (8 cases)"

# A config file, and a flag that overrides one of its settings.
cat >"$work/streamd.conf" <<EOF
# settings for the cli test
read_size = 131072
buffer_size = 2MiB
A = 70       # percent
B = 20
period = 200ms
policy = scan-edf
EOF
start_streamd --config "$work/streamd.conf" --A 75
cfg=$(curl -fsS "$URL/admin/config")
for kv in '"read_size":131072' '"buffer_size":2097152' '"A":75' '"B":20' \
	'"period":0.2' '"policy":"scan-edf"'; do
	case $cfg in
	*"$kv"*) ;;
	*) fail "config file plus --A 75: $kv missing from $cfg" ;;
	esac
done
pass "the config file applies and --A 75 overrides its A = 70: $cfg"
stop_streamd

# The embedded default: no arguments at all.
if curl -s -o /dev/null --max-time 2 http://127.0.0.1:8080/ 2>/dev/null; then
	note "port 8080 is in use here: the no-argument run is not tried"
	exit 0
fi
mkdir "$work/empty"
(cd "$work/empty" && exec "$STREAMD" >"$work/default.out" 2>"$work/default.err") &
pid=$!
up=0
for _ in $(seq 100); do
	if curl -fs -o /dev/null http://127.0.0.1:8080/streams; then
		up=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
[ "$up" = 1 ] || fail "streamd with no arguments does not answer on 127.0.0.1:8080"
[ -f "$work/empty/streamd-data/volume.img" ] ||
	fail "no ./streamd-data/volume.img"
grep -q "record/" "$work/default.out" && grep -q "streams/" "$work/default.out" ||
	fail "the banner does not say how to record and watch: $(cat "$work/default.out")"
kill -TERM "$pid"
wait_rc "$pid" 10
[ "$rc" -eq 0 ] || fail "the no-argument streamd stopped with status $rc"
pass "no arguments: ./streamd-data/volume.img ($(du -k "$work/empty/streamd-data/volume.img" | cut -f1) KiB on disk), 127.0.0.1:8080, a banner on how to record and watch"
