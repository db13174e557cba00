#!/usr/bin/env bash
# A full volume: streamd on a 48 MiB embedded volume takes uploads of the
# same 30 s file under new names until one no longer fits.  That one must
# get 507 with a message, the error log must say which recording stopped
# and why, the part of it that was published must be a prefix of what was
# sent, and every earlier recording must still play back byte for byte.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
make_workdir volfull

ffmpeg -nostdin -hide_banner -v error -f lavfi \
	-i testsrc=size=640x360:rate=25 -t 30 -c:v libx264 -preset ultrafast \
	-b:v 8M -g 50 -f mpegts -y "$work/big.ts" || fail "making big.ts"
size=$(wc -c <"$work/big.ts")
start_streamd --volume-size 48MiB

full=
for i in $(seq 1 40); do
	code=$(curl -s -o "$work/r$i.json" -w '%{http_code}' -T "$work/big.ts" \
		-H 'Transfer-Encoding: chunked' "$URL/record/rec$i") || code="curl $?"
	if [ "$code" != 200 ]; then
		full=$i
		break
	fi
done
[ -n "$full" ] || fail "40 uploads of $size bytes fitted in a 48 MiB volume"
[ "$code" = 507 ] || fail "the upload that did not fit got $code: $(cat "$work/r$full.json")"
grep -q "volume full" "$work/r$full.json" ||
	fail "the 507 does not say why: $(cat "$work/r$full.json")"
pass "upload $full of $size bytes: 507 $(cat "$work/r$full.json")"
grep -q "record rec$full: stopped: No space left on device" "$work/streamd.log" ||
	fail "the error log does not say rec$full stopped for want of space"
pass "the error log names the recording and the cause"

# What was published of the refused recording is a prefix of the file.
curl -fsS -o "$work/part.ts" "$URL/streams/rec$full/data.ts" 2>/dev/null ||
	: >"$work/part.ts"
part=$(wc -c <"$work/part.ts")
cmp -s -n "$part" "$work/part.ts" "$work/big.ts" ||
	fail "rec$full's $part published bytes are not a prefix of what was sent"
pass "rec$full kept $part bytes, a prefix of what was sent"

sum=$(md5sum <"$work/big.ts" | cut -d' ' -f1)
for ((j = 1; j < full; j++)); do
	got=$(curl -fsS "$URL/streams/rec$j/data.ts" | md5sum | cut -d' ' -f1)
	[ "$got" = "$sum" ] || fail "rec$j no longer plays back what was recorded"
done
curl -fsS -o "$work/shift.ts" "$URL/streams/rec1.ts?start=5&duration=4" ||
	fail "time-shifted playback of rec1 on the full volume"
pass "the $((full - 1)) earlier recordings play back byte for byte, and time-shifted"
stop_streamd
