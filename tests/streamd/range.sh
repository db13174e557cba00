#!/usr/bin/env bash
# Range test of streamd's GET /streams/<name>/data.ts (RFC 9110): after a
# short push, single ranges (first byte, a middle slice, a suffix, an
# open end) answer 206 with the exact bytes of the pushed file (dd slices)
# and the right Content-Range; a range starting at the size answers 416
# with "Content-Range: bytes */SIZE"; a syntactically invalid Range is
# ignored (as RFC 9110 14.2 says) and the whole body comes with 200.
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
make_workdir range

start_streamd
pass "streamd listens on $URL"
push_pattern cam1 6 || fail "ffmpeg push failed: $(cat "$work/push-cam1.err")"
wait_live cam1 false 10
pushed=$work/cam1.ts
size=$(size_of "$pushed")
[ "$size" -gt 2000 ] || fail "pushed only $size bytes"
pass "pushed 6 s: $size bytes"

# The same bytes as a chunked POST (the other publishing method) record
# byte for byte too.
code=$(curl -s -o "$work/post.json" -w '%{http_code}' -X POST \
	-H 'Transfer-Encoding: chunked' --data-binary @"$pushed" \
	"$URL/record/viapost") || code="curl $?"
[ "$code" = 200 ] || fail "chunked POST got $code: $(cat "$work/post.json")"
[ "$(curl -fsS "$URL/streams/viapost/data.ts" | md5sum)" = \
	"$(md5sum <"$pushed")" ] || fail "the POSTed recording differs"
pass "a chunked POST of the same $size bytes records them byte for byte"

# slice FIRST COUNT OUT: COUNT bytes of the pushed file from FIRST.
slice() {
	dd if="$pushed" of="$3" bs=1 skip="$1" count="$2" status=none
}

# expect_range SPEC FIRST LAST: Range SPEC answers 206, Content-Range
# bytes FIRST-LAST/SIZE, and those bytes.
n=0
expect_range() {
	local out=$work/range$n.out
	n=$((n + 1))
	http /streams/cam1/data.ts "$out" -H "Range: $1"
	expect_code 206 "Range: $1"
	cr=$(header "$out.h" Content-Range)
	[ "$cr" = "bytes $2-$3/$size" ] ||
		fail "Range: $1: Content-Range '$cr', expected 'bytes $2-$3/$size'"
	cl=$(header "$out.h" Content-Length)
	[ -z "$cl" ] || [ "$cl" = $(($3 - $2 + 1)) ] ||
		fail "Range: $1: Content-Length $cl for $(($3 - $2 + 1)) bytes"
	slice "$2" $(($3 - $2 + 1)) "$out.want"
	expect_same_bytes "$out" "$out.want" "Range: $1"
	pass "Range: $1 -> 206, $cr, the right $(($3 - $2 + 1)) bytes"
}

http /streams/cam1/data.ts "$work/full.ts"
expect_code 200 "GET data.ts without Range"
expect_same_bytes "$work/full.ts" "$pushed" "data.ts"
ar=$(header "$work/full.ts.h" Accept-Ranges)
[ "$ar" = bytes ] || note "no 'Accept-Ranges: bytes' on data.ts (got '$ar')"
pass "no Range -> 200, all $size bytes"

expect_range bytes=0-0 0 0
expect_range bytes=100-1099 100 1099
expect_range bytes=-500 $((size - 500)) $((size - 1))
expect_range bytes=1000- 1000 $((size - 1))
expect_range "bytes=$((size - 10))-$((size + 5000))" $((size - 10)) $((size - 1))

for spec in "bytes=$size-" "bytes=$((size + 100))-$((size + 200))"; do
	http /streams/cam1/data.ts "$work/416.out" -H "Range: $spec"
	expect_code 416 "Range: $spec (past the end)"
	cr=$(header "$work/416.out.h" Content-Range)
	[ "$cr" = "bytes */$size" ] ||
		fail "Range: $spec: 416 with Content-Range '$cr', expected 'bytes */$size'"
	pass "Range: $spec -> 416, $cr"
done

for spec in bytes=abc bytes=5-2 'bytes=--1' items=0-10; do
	http /streams/cam1/data.ts "$work/bad.out" -H "Range: $spec"
	expect_code 200 "Range: $spec (invalid: to be ignored)"
	expect_same_bytes "$work/bad.out" "$pushed" "Range: $spec"
	pass "Range: $spec -> ignored: 200 and all $size bytes"
done

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all range checks passed"
