#!/usr/bin/env bash
# Recording test of streamd: ffmpeg pushes a 30 s test pattern (H.264 +
# AAC, 2 s GOP) in real time to /record/cam1 while keeping the same bytes
# in a local file.  While it runs /streams shows cam1 live; afterwards
# the recording is finished, its data object (GET data.ts: the DJMFS CLI
# cannot open the embedded volume while streamd holds it, so HTTP is the
# way in) is byte for byte what was pushed, /streams gives its duration
# and size, and /streams/cam1 its keyframes (one per GOP) and codecs.
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
make_workdir record
SECS=30

start_streamd
pass "streamd listens on $URL"

t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10
pass "cam1 is listed live $(r3 "$(now) - $t0") s after the push began"

wait_rc "$push_pid" $((SECS + 20))
[ "$rc" -eq 0 ] || fail "ffmpeg push ended with status $rc"
pushed=$work/cam1.ts
size=$(size_of "$pushed")
pass "pushed $SECS s, $size bytes in $(r3 "$(now) - $t0") s"
wait_live cam1 false 10
pass "cam1 is no longer live once the encoder is gone"

http /streams/cam1/data.ts "$work/data.ts"
expect_code 200 "GET /streams/cam1/data.ts"
expect_same_bytes "$work/data.ts" "$pushed" "data.ts against the pushed bytes"
pass "data.ts is byte for byte what was pushed ($size bytes, md5 $(md5_of "$pushed"))"

streams_list "$work/streams.json"
dur=$(stream_field "$work/streams.json" cam1 duration)
bytes=$(stream_field "$work/streams.json" cam1 bytes)
start=$(stream_field "$work/streams.json" cam1 start)
[ -n "$dur" ] || fail "/streams lacks cam1: $(cat "$work/streams.json")"
near "$dur" $SECS 3 || fail "/streams duration $dur, expected $SECS +- 3"
[ "$bytes" = "$size" ] || fail "/streams bytes $bytes, pushed $size"
epoch_of "$start" >/dev/null 2>&1 || fail "/streams start '$start' is not ISO-8601"
near "$(epoch_of "$start")" "$t0" 5 ||
	fail "/streams start $start is not when the push began ($(iso_of "$t0"))"
pass "/streams: cam1 live=false start=$start duration=$(r3 "$dur") bytes=$bytes"

http /streams/cam1 "$work/cam1.json"
expect_code 200 "GET /streams/cam1"
keys=$(json_get "$work/cam1.json" '.keyframes#')
[ -n "$keys" ] || keys=$(json_get "$work/cam1.json" .keyframes)
[ -n "$keys" ] && near "$keys" $((SECS / GOP)) 1 ||
	fail "/streams/cam1 keyframes '$keys', expected $((SECS / GOP)) +- 1"
[ "$(json_get "$work/cam1.json" .live)" = false ] || fail "/streams/cam1 says live"
codecs=$(json_flat <"$work/cam1.json" | awk -F '\t' '$1 ~ /^\.codecs\[[0-9]+\]\.codec$/ { print $2 }' |
	sort | paste -sd " " -)
[ "$codecs" = "aac h264" ] || fail "/streams/cam1 codecs '$codecs', expected aac and h264"
gaps=$(json_get "$work/cam1.json" '.gaps#')
[ "${gaps:-0}" = 0 ] || fail "/streams/cam1 shows $gaps gaps in a single push"
pass "/streams/cam1: $keys keyframes, codecs $codecs, no gaps"

http /streams/nosuch "$work/nosuch.json"
expect_code 404 "GET /streams/nosuch"
pass "an unknown stream is 404"

grep -q '"PUT /record/cam1 HTTP/1.1" 20[01] ' "$work/access.log" ||
	fail "the access log has no PUT /record/cam1 line with 200/201"
pass "the access log has the push: $(grep -c . "$work/access.log") lines"

stop_streamd
pass "streamd stops cleanly on SIGTERM"

# --- Offline, with the DJMFS tools: the volume streamd left behind. ------
if find_djmfs_tools; then
	vol=$data_dir/volume.img
	"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 ||
		fail "djmfs fsck of streamd's volume: $(cat "$work/fsck.out")"
	pass "djmfs fsck finds streamd's volume clean"
	export DJMFS_SERVER="unix:$work/djmfsd.sock"
	"$DJMFSD" --volume "$vol" --listen "$work/djmfsd.sock" >>"$work/djmfsd.log" 2>&1 &
	djmfsd_pid=$!
	djmfs_up() { [ -S "$work/djmfsd.sock" ] && "$DJMFS" -q stats >/dev/null 2>&1; }
	wait_for 10 "djmfsd on streamd's volume" djmfs_up
	"$DJMFS" -q --volume "$vol" stat cam1 >"$work/stat.out" 2>&1 ||
		fail "djmfs stat cam1: $(cat "$work/stat.out")"
	for o in header data index; do
		grep -qw "$o" "$work/stat.out" || fail "cam1 has no '$o' object: $(cat "$work/stat.out")"
	done
	"$DJMFS" -q --volume "$vol" cat cam1 -o data >"$work/cat.ts" 2>"$work/cat.err" ||
		fail "djmfs cat cam1: $(cat "$work/cat.err")"
	expect_same_bytes "$work/cat.ts" "$pushed" "djmfs cat cam1 -o data"
	kill -TERM "$djmfsd_pid"
	wait_rc "$djmfsd_pid" 10
	[ "$rc" -eq 0 ] || fail "djmfsd stopped with status $rc"
	pass "through djmfsd: cam1 has header, data and index; its data is the pushed bytes"
else
	note "djmfs/djmfsd not built: the offline checks of the volume are skipped"
fi
echo "all record checks passed"
