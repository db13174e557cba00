#!/usr/bin/env bash
# A full host file system under the volume file: streamd's embedded
# volume (96 MiB, sparse) lies in a 40 MiB tmpfs, so the host fills long
# before the volume's own units run out.  Uploads of the same file under
# new names go on until one fails: it must get 507 (not 500) saying the
# host file system is full, the error log must say so and name the
# recording, and every earlier recording must play back byte for byte.
# Restarted on the still-full host, streamd must start read-only (a WARN
# line, a metric), refuse a recording with 507 and still play back the
# earlier ones.  With room made on the host (a filler file put there
# first is deleted), a restart records again.  Needs root (the tmpfs):
# skips with 77 otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: mounting a tmpfs needs root" >&2
	exit 77
fi
need_streamd
need_clients
make_workdir hostfull
host=$work/host
mkdir "$host"
if ! mount -t tmpfs -o size=40m tmpfs "$host" 2>"$work/mount.err"; then
	echo "SKIP: cannot mount a tmpfs: $(cat "$work/mount.err")" >&2
	exit 77
fi
# The daemon first (it holds the volume file open), then the tmpfs, then
# lib.sh's cleanup removes the scratch directory.
trap 'stop_jobs 10; umount "$host" 2>/dev/null || umount -l "$host"; cleanup' EXIT
data_dir=$host/data
# Room for more than one upload once it is deleted.
head -c $((12 << 20)) /dev/zero >"$host/filler"

ffmpeg -nostdin -hide_banner -v error -f lavfi \
	-i testsrc=size=640x360:rate=25 -t 20 -c:v libx264 -preset ultrafast \
	-b:v 8M -g 50 -f mpegts -y "$work/big.ts" || fail "making big.ts"
size=$(wc -c <"$work/big.ts")
sum=$(md5sum <"$work/big.ts" | cut -d' ' -f1)

# upload NAME: the status of a chunked PUT of big.ts in $code (000: no
# answer), the body in $work/NAME.json.  A refusal may come before the
# body is sent: the status counts, not how curl's sending ended.
upload() {
	code=$(curl -s -o "$work/$1.json" -w '%{http_code}' -T "$work/big.ts" \
		-H 'Transfer-Encoding: chunked' "$URL/record/$1") || true
	[ -n "$code" ] || code=000
}

# plays_back N: recordings rec1 .. recN-1 play back byte for byte.
plays_back() {
	local j got
	for ((j = 1; j < $1; j++)); do
		got=$(curl -fsS "$URL/streams/rec$j/data.ts" | md5sum | cut -d' ' -f1)
		[ "$got" = "$sum" ] || fail "rec$j no longer plays back what was recorded"
	done
}

# metric NAME: its value in /metrics.
metric() {
	curl -fsS "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

start_streamd --volume-size 96MiB
full=
for i in $(seq 1 60); do
	upload "rec$i"
	if [ "$code" != 200 ]; then
		full=$i
		break
	fi
done
[ -n "$full" ] || fail "60 uploads of $size bytes fitted in a 40 MiB tmpfs"
[ "$code" = 507 ] || fail "the upload that met a full host got $code: $(cat "$work/rec$full.json")"
grep -q "volume full (host file system full)" "$work/rec$full.json" ||
	fail "the 507 does not say the host is full: $(cat "$work/rec$full.json")"
pass "upload $full of $size bytes: 507 $(cat "$work/rec$full.json")"
grep -q "record rec$full: stopped: No space left on device; volume full (host file system full)" \
	"$work/streamd.log" ||
	fail "the error log does not say rec$full stopped for a full host"
pass "the error log names the recording and the full host"
check "$(metric streamd_sched_nospace_total) > 0" 2>/dev/null ||
	fail "/metrics counts no write the host refused"
[ "$(metric streamd_read_only)" = 0 ] || fail "read-only before any restart"

curl -fsS -o "$work/part.ts" "$URL/streams/rec$full/data.ts" 2>/dev/null ||
	: >"$work/part.ts"
part=$(wc -c <"$work/part.ts")
cmp -s -n "$part" "$work/part.ts" "$work/big.ts" ||
	fail "rec$full's $part published bytes are not a prefix of what was sent"
plays_back "$full"
pass "the $((full - 1)) earlier recordings play back byte for byte; rec$full kept a prefix of $part bytes"
stop_streamd

# Still full: streamd starts read-only.
start_streamd --volume-size 96MiB
grep -q "streamd runs read-only" "$work/streamd.log" ||
	fail "streamd on a full host does not say it runs read-only"
grep -q "host file system full (.*): serving read-only" "$work/streamd.log" ||
	fail "the DJMFS server on a full host does not say it serves read-only"
pass "restarted on the full host: $(grep -o 'the host file system under.*' "$work/streamd.log" | tail -n 1)"
[ "$(metric streamd_read_only)" = 1 ] || fail "/metrics does not show read-only"
pass "/metrics: streamd_read_only 1"
upload again
[ "$code" = 507 ] || fail "recording on a read-only streamd got $code: $(cat "$work/again.json")"
grep -q "volume full (read-only: host file system full)" "$work/again.json" ||
	fail "the read-only 507 does not say why: $(cat "$work/again.json")"
pass "recording while read-only: 507 $(cat "$work/again.json")"
plays_back "$full"
pass "the $((full - 1)) earlier recordings play back byte for byte while read-only"
stop_streamd

# Room again: a restart records.
rm -f "$host/filler"
start_streamd --volume-size 96MiB
[ "$(metric streamd_read_only)" = 0 ] || fail "still read-only with room on the host"
upload after
[ "$code" = 200 ] || fail "recording with room again got $code: $(cat "$work/after.json")"
got=$(curl -fsS "$URL/streams/after/data.ts" | md5sum | cut -d' ' -f1)
[ "$got" = "$sum" ] || fail "the recording made with room again does not play back"
plays_back "$full"
pass "with room on the host again, a recording works and the earlier ones still play back"
stop_streamd
