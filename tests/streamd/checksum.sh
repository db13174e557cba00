#!/usr/bin/env bash
# Data checksums end to end: a recording is uploaded, one byte in the
# middle of its data is flipped in the volume file while streamd is
# stopped, and a player's GET of the recording's data.ts must not get
# that byte: the response ends short, before the damaged 64 KiB block,
# with every byte it did send intact; the error log names the block and
# /metrics counts the failed block and its retry.  An untouched
# recording plays back byte for byte and moves no counter.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
need_python3
make_workdir checksum

# metric NAME: its value in /metrics.
metric() {
	curl -fsS "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

make_pattern "$work/rec.ts" 20
size=$(size_of "$work/rec.ts")
[ "$size" -gt $((256 << 10)) ] || fail "the pattern is only $size bytes"

start_streamd --volume-size 256MiB
push_body rec "$work/rec.ts"
expect_code 200 "uploading rec"
push_body good "$work/rec.ts"
expect_code 200 "uploading good"
http /streams/rec/data.ts "$work/before.ts"
expect_code 200 "playing rec"
cmp -s "$work/before.ts" "$work/rec.ts" || fail "rec does not play back what was sent"
[ "$(metric streamd_djmfs_read_checksum_errors_total)" = 0 ] ||
	fail "checksum errors before any damage"
pass "rec ($size bytes) plays back byte for byte, no checksum error"
stop_streamd

# The byte: in the middle of the recording, found in the volume file by
# the 64 bytes around it (both recordings hold them: the first copy is
# rec's, uploaded first into the lower units of an empty volume).
at=$((size / 2))
vol=$(find "$data_dir" -type f -size +100M | head -n 1)
[ -n "$vol" ] || fail "no volume file under $data_dir"
voff=$(python3 - "$vol" "$work/rec.ts" "$at" <<'PY'
import os, sys
vol, ts, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
needle = open(ts, 'rb').read()[at - 32:at + 32]
data = open(vol, 'rb').read()
hits = []
i = data.find(needle)
while i >= 0:
    hits.append(i)
    i = data.find(needle, i + 1)
if len(hits) != 2:
    sys.exit("the 64 bytes around offset %d are %d times in the volume" % (at, len(hits)))
off = min(hits) + 32
fd = os.open(vol, os.O_RDWR)
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0xff]), off)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
print(off)
PY
) || fail "flipping the byte: $voff"
pass "flipped the byte at volume offset $voff (offset $at of rec)"

start_streamd --volume-size 256MiB
http /streams/rec/data.ts "$work/after.ts"
got=$(size_of "$work/after.ts")
[ "$got" -lt "$size" ] || fail "rec played back whole ($got bytes) over a flipped byte"
[ "$got" -le "$at" ] || fail "rec played back $got bytes, past the flipped byte at $at"
cmp -s -n "$got" "$work/after.ts" "$work/rec.ts" ||
	fail "the $got bytes rec played back are not what was sent"
pass "the player got $got of $size bytes (HTTP $code), all intact, and not the flipped byte"
grep -q "checksum mismatch.*read again: bad" "$work/streamd.log" ||
	fail "the error log does not report the bad block"
pass "error log: $(grep -o 'file .*read again: bad' "$work/streamd.log" | head -n 1)"
errors=$(metric streamd_djmfs_read_checksum_errors_total)
retries=$(metric streamd_djmfs_read_checksum_retries_total)
check "$errors >= 1" || fail "/metrics counts $errors checksum errors"
check "$retries >= 1" || fail "/metrics counts $retries checksum retries"
pass "/metrics: streamd_djmfs_read_checksum_errors_total $errors, retries $retries"

http /streams/good/data.ts "$work/good.ts"
expect_code 200 "playing good"
cmp -s "$work/good.ts" "$work/rec.ts" || fail "good does not play back what was sent"
[ "$(metric streamd_djmfs_read_checksum_errors_total)" = "$errors" ] ||
	fail "an intact recording moved the error count"
pass "the untouched recording still plays back byte for byte"
stop_streamd
