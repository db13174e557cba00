#!/usr/bin/env bash
# Crash test of streamd: the daemon is killed with SIGKILL while an
# encoder records (the embedded DJMFS server dies with it), twice, at
# different moments, and restarted on the same data directory each time.
# The encoder is a pre-made MPEG-TS file sent in real time (curl
# --limit-rate), so what was sent is known exactly.  After each restart
# the recording is finished, holds at least every byte /streams reported
# published before the kill, and its data.ts is byte for byte a prefix of
# what was sent (after the bytes of the earlier connections); playback
# from the start decodes (clean up to its last second) and the HLS
# playlist has ENDLIST and plays.  A new push to the same name continues the one recording with a
# gap per restart and appends exactly its bytes.  Offline at the end, the
# volume passes djmfs fsck and no index entry points past the data.
#
# Environment: STREAMD, DJMFS, DJMFSD (default: the build tree's),
# IOSCHED_PROFILE_DIR.  Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015,SC2119 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
make_workdir crash
curl_pid=

# slow_push NAME FILE SECONDS: sends FILE to /record/NAME in the
# background, paced to last about SECONDS; sets curl_pid.
slow_push() {
	local rate=$(($(size_of "$2") / $3))
	curl -sS -o "$work/slow-$1.out" -X PUT --data-binary "@$2" \
		-H 'Content-Type: video/mp2t' -H 'Transfer-Encoding: chunked' \
		-H 'Expect:' --limit-rate "$rate" "$URL/record/$1" \
		2>>"$work/curl.err" &
	curl_pid=$!
}

# published NAME: the bytes /streams/NAME reports (acknowledged publishes).
published() {
	http "/streams/$1" "$work/detail.json"
	expect_code 200 "GET /streams/$1"
	json_get "$work/detail.json" .bytes
}

# kill_at NAME SECONDS: while the push runs, reads the published bytes
# every 0.5 s until SECONDS after the recording went live, then kills
# streamd with SIGKILL right after a last reading; sets seen (the last
# figure) and reads (how many).
kill_at() {
	local t0 b
	t0=$(now)
	wait_live "$1" true 10
	seen=0
	reads=0
	while check "$(now) - $t0 < $2"; do
		sleep 0.5
		b=$(published "$1")
		check "$b >= $seen" || fail "/streams/$1 bytes went back: $b < $seen"
		seen=$b
		reads=$((reads + 1))
	done
	kill -KILL "$streamd_pid"
	{ wait_rc "$streamd_pid" 10; } 2>/dev/null # not bash's "Killed" notice
	streamd_pid=
	wait_rc "$curl_pid" 15
	[ "$rc" -ne 124 ] || fail "the encoder did not notice the daemon died"
	curl_pid=
	[ "$seen" -gt 0 ] || fail "nothing was published in $2 s"
}

# expect_recovered NAME SENT GAPS: after a restart, NAME is finished,
# holds at least $seen bytes, its data.ts is a prefix of SENT longer than
# $old (the bytes of the earlier connections), it has GAPS gaps, and it
# plays from the start (progressive and HLS) without an error.
expect_recovered() {
	local name=$1 sent=$2 got dur
	is_live "$name" false || fail "$name is listed live after the restart"
	got=$(published "$name")
	check "$got >= $seen" || fail "$name has $got bytes, $seen were published before the kill"
	[ "$(json_get "$work/detail.json" '.gaps#')" = "$3" ] ||
		fail "$name has $(json_get "$work/detail.json" '.gaps#') gaps, expected $3"
	http "/streams/$name/data.ts" "$work/data.ts"
	expect_code 200 "GET /streams/$name/data.ts"
	[ "$(size_of "$work/data.ts")" = "$got" ] ||
		fail "data.ts has $(size_of "$work/data.ts") bytes, /streams says $got"
	[ "$got" -gt "$old" ] && [ "$got" -le "$(size_of "$sent")" ] &&
		cmp -s -n "$got" "$work/data.ts" "$sent" ||
		fail "data.ts ($got bytes) is not the old $old bytes and a prefix of what was sent"
	pass "after SIGKILL and restart: $name finished, $got bytes >= $seen published before (over $reads readings), a prefix of what was sent, $3 gap(s)"
	http "/streams/$name.ts?start=0" "$work/play.ts"
	expect_code 200 "GET /streams/$name.ts?start=0"
	# Publishes end where a frame begins, but a full write or a stalled
	# encoder's last bytes may still end inside one (an audio frame, say),
	# and a kill right then leaves it cut: all but the last second must
	# decode clean.
	dur=$(media_duration "$work/play.ts")
	decode_secs=$(calc "$dur - 1") \
	decode_ignore='non monotonically increasing dts' \
		expect_decodes "$work/play.ts" "$name.ts?start=0 after the crash"
	http "/streams/$name/index.m3u8" "$work/play.m3u8"
	expect_code 200 "GET /streams/$name/index.m3u8"
	grep -q '^#EXT-X-ENDLIST' "$work/play.m3u8" ||
		fail "the playlist after the crash has no ENDLIST: $(cat "$work/play.m3u8")"
	ffmpeg -nostdin -v error -i "$URL/streams/$name/index.m3u8" -c copy \
		-f mpegts -y "$work/hls.ts" 2>"$work/hls-play.err" ||
		fail "ffmpeg cannot play the playlist: $(head -n 3 "$work/hls-play.err")"
	[ ! -s "$work/hls-play.err" ] ||
		fail "ffmpeg playing the playlist: $(head -n 3 "$work/hls-play.err")"
	pass "$name.ts?start=0 ($(size_of "$work/play.ts") bytes, $dur s) decodes clean up to its last second; the playlist has ENDLIST, $(grep -c '^#EXTINF' "$work/play.m3u8") segments, and plays"
}

make_pattern "$work/p1.ts" 20
make_pattern "$work/p2.ts" 12
make_pattern "$work/p3.ts" 4
start_streamd
pass "streamd listens on $URL"

# --- 1: killed mid-GOP, 5.3 s into the first push. ------------------------
old=0
slow_push cam1 "$work/p1.ts" 20
kill_at cam1 5.3
pass "streamd killed with SIGKILL 5.3 s into the push ($seen bytes published)"
start_streamd
pass "streamd restarted on the same data directory"
expect_recovered cam1 "$work/p1.ts" 0
cp "$work/data.ts" "$work/after1.ts"

# --- 2: a reconnect, killed 3.1 s into it. ---------------------------------
old=$(size_of "$work/after1.ts")
cat "$work/after1.ts" "$work/p2.ts" >"$work/sent2.ts"
slow_push cam1 "$work/p2.ts" 12
kill_at cam1 3.1
pass "streamd killed with SIGKILL 3.1 s into the second push ($seen bytes published)"
start_streamd
pass "streamd restarted again"
expect_recovered cam1 "$work/sent2.ts" 1
cp "$work/data.ts" "$work/after2.ts"

# --- A whole push after the crashes appends exactly its bytes. -------------
push_body cam1 "$work/p3.ts"
[ "$code" = 200 ] || fail "the push after the crashes: HTTP $code: $(cat "$work/push-body.out")"
wait_live cam1 false 10
cat "$work/after2.ts" "$work/p3.ts" >"$work/want.ts"
http /streams/cam1/data.ts "$work/data.ts"
expect_code 200 "GET /streams/cam1/data.ts"
expect_same_bytes "$work/data.ts" "$work/want.ts" "data.ts after a third push"
streams_list "$work/streams.json"
[ "$(json_flat <"$work/streams.json" | grep -c $'^\[[0-9]*\]\.name\tcam1$')" = 1 ] ||
	fail "/streams does not list cam1 exactly once"
http /streams/cam1 "$work/cam1.json"
[ "$(json_get "$work/cam1.json" '.gaps#')" = 2 ] ||
	fail "cam1 has $(json_get "$work/cam1.json" '.gaps#') gaps after 3 connections"
[ "$(json_get "$work/cam1.json" .connections)" = 3 ] ||
	fail "cam1 counts $(json_get "$work/cam1.json" .connections) connections, expected 3"
pass "a third push continues cam1: one recording, 3 connections, 2 gaps, data.ts = old $(size_of "$work/after2.ts") + new $(size_of "$work/p3.ts") bytes exactly"
stop_streamd
pass "streamd stops cleanly on SIGTERM"

# --- Offline: fsck, and no index entry beyond the data. ---------------------
if find_djmfs_tools; then
	vol=$data_dir/volume.img
	"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 ||
		fail "djmfs fsck of the crashed volume: $(cat "$work/fsck.out")"
	pass "djmfs fsck finds the volume clean after two SIGKILLs"
	export DJMFS_SERVER="unix:$work/djmfsd.sock"
	"$DJMFSD" --volume "$vol" --listen "$work/djmfsd.sock" >>"$work/djmfsd.log" 2>&1 &
	djmfsd_pid=$!
	djmfs_up() { [ -S "$work/djmfsd.sock" ] && "$DJMFS" -q stats >/dev/null 2>&1; }
	wait_for 10 "djmfsd on streamd's volume" djmfs_up
	"$DJMFS" -q --volume "$vol" cat cam1 -o index >"$work/index.bin" 2>"$work/cat.err" ||
		fail "djmfs cat cam1 -o index: $(cat "$work/cat.err")"
	size=$(size_of "$work/want.ts")
	# Entries, as u32 words: wall (2), offset (2), pts (2), flags, check.
	bad=$(od -An -v -tu4 -w32 --endian=little "$work/index.bin" | awk -v size="$size" '
		{ off = $3 + $4 * 4294967296; flags = $7
		  if (off > size || off < prev) { print "entry " NR - 1 " at offset " off; exit }
		  prev = off; segs += int(flags / 2) % 2; n++ }
		END { if (segs != 3) print "SEGMENT entries: " segs " of " n " (expected 3)" }')
	[ -z "$bad" ] || fail "the index of cam1 ($size data bytes): $bad"
	pass "the index holds $(($(size_of "$work/index.bin") / 32)) entries, none beyond the $size data bytes, 3 connections"
	kill -TERM "$djmfsd_pid"
	wait_rc "$djmfsd_pid" 10
	[ "$rc" -eq 0 ] || fail "djmfsd stopped with status $rc"
else
	note "djmfs/djmfsd not built: the offline checks of the volume are skipped"
fi
echo "all crash checks passed"
