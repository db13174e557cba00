#!/bin/sh
# Integration test for iosched-calibrate: runs the real tool with a short
# budget on a 256 MiB file of real data and checks that it succeeds, that
# the profile it writes has exactly the keys its type needs, all positive,
# and that it rejects bad input with the documented exit statuses.  Skips
# (exit 77) when the temporary directory's file system lacks O_DIRECT.
# The tool is $IOSCHED_CALIBRATE, or ./iosched-calibrate.

set -u

tool=${IOSCHED_CALIBRATE:-./iosched-calibrate}
dir=

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	if [ -n "$dir" ]; then
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "$tool" ] || fail "$tool: not an executable (set IOSCHED_CALIBRATE)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/calibrate.XXXXXX") || fail "mktemp -d"
img=$dir/cal.img
out=$dir/out.profile

# Written blocks, not holes or unwritten extents: only those are read from
# the media.  Their content does not matter, so zeros will do.
dd if=/dev/zero of="$img" bs=1M count=256 2>/dev/null || fail "dd: making $img"

if ! dd if="$img" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then
	echo "SKIP: O_DIRECT is not supported in ${TMPDIR:-/tmp}" >&2
	exit 77
fi

# --- usage and input errors -------------------------------------------

"$tool" >/dev/null 2>&1
[ $? -eq 2 ] || fail "no PATH should exit 2"
"$tool" --duration nope "$img" >/dev/null 2>&1
[ $? -eq 2 ] || fail "a bad --duration should exit 2"
"$tool" -q "$dir/missing.img" >/dev/null 2>&1
[ $? -eq 1 ] || fail "a missing PATH should exit 1"
dd if=/dev/zero of="$dir/small.img" bs=1M count=1 2>/dev/null
"$tool" -q "$dir/small.img" >/dev/null 2>&1
[ $? -eq 1 ] || fail "a 1 MiB PATH should exit 1"

# --- a real run -------------------------------------------------------

"$tool" -q --duration 2 --name calibrate-test -o "$out" "$img" ||
	fail "$tool exited with status $? on $img"
[ -s "$out" ] || fail "no profile written to $out"
leftovers=$(find "$dir" -name 'out.profile.*' | wc -l)
[ "$leftovers" -eq 0 ] || fail "temporary files left beside $out"

# "key = value" lines, comments and blank lines aside.
values() {
	sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$out"
}

value_of() {
	values | awk -F '=' -v k="$1" '
		{ key = $1; gsub(/[[:space:]]/, "", key) }
		key == k { v = $2; sub(/^[[:space:]]+/, "", v); sub(/[[:space:]]+$/, "", v); print v }'
}

type=$(value_of type)
common="name capacity_bytes depth overhead_us"
case $type in
hdd)	keys="cylinders rpm media_outer_MBps media_inner_MBps bus_MBps settle_us short_seek_tracks seek_accel seek_vmax" ;;
ssd)	keys="read_latency_us write_latency_us read_MBps write_MBps parallelism" ;;
*)	fail "type is '$type', not hdd or ssd" ;;
esac

[ "$(value_of name)" = calibrate-test ] || fail "name is not the one given"
[ "$(value_of capacity_bytes)" = $((256 * 1024 * 1024)) ] ||
	fail "capacity_bytes is not the file's size"

for key in $common $keys; do
	n=$(value_of "$key" | wc -l)
	[ "$n" -eq 1 ] || fail "$key appears $n times in the $type profile"
	[ "$key" = name ] && continue
	v=$(value_of "$key")
	echo "$v" | awk '!/^[0-9]+(\.[0-9]+)?$/ || $1 + 0 <= 0 { exit 1 }' ||
		fail "$key = '$v' is not a positive number"
done

if [ "$type" = hdd ]; then
	awk -v i="$(value_of media_inner_MBps)" -v o="$(value_of media_outer_MBps)" \
		'BEGIN { exit !(i + 0 <= o + 0) }' ||
		fail "media_inner_MBps exceeds media_outer_MBps"
fi

expected=$((1 + $(echo "$common" | wc -w) + $(echo "$keys" | wc -w)))
got=$(values | wc -l)
[ "$got" -eq "$expected" ] ||
	fail "$got keys in the $type profile, expected $expected"

echo "PASS: $type profile with $got keys"
exit 0
