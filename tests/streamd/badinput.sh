#!/usr/bin/env bash
# Bad-input test of streamd's publishing side.  While ffmpeg records
# cam1: bad names (a space, 129 characters, "..") are 400; 2 MB of random
# bytes and a text body are 415 and leave no stream behind; a second
# publisher on cam1 is 409 while the first goes on; and cam1 comes out
# byte for byte what its encoder sent.  An encoder that reconnects under
# the same name continues the same recording: one recording, a ~3 s gap,
# the bytes of both pushes back to back, and a playback across the gap
# that decodes.  With --publish-token: no token and a wrong one (query or
# Bearer) are 401, the right one records, and the refusals leave the
# recording being made intact.
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
make_workdir badinput

# expect_intact NAME PUSHED: once NAME is finished, its data.ts is PUSHED.
expect_intact() {
	wait_live "$1" false 10
	http "/streams/$1/data.ts" "$work/$1-data.ts"
	expect_code 200 "GET /streams/$1/data.ts"
	expect_same_bytes "$work/$1-data.ts" "$2" "$1 data.ts after the refusals"
}

# expect_unlisted NAME: /streams does not list NAME.
expect_unlisted() {
	streams_list "$work/streams.json"
	[ -z "$(stream_field "$work/streams.json" "$1" name)" ] ||
		fail "/streams lists '$1' after it was refused"
}

make_pattern "$work/small.ts" 2
head -c 2000000 /dev/urandom >"$work/garbage.bin"
for i in $(seq 4000); do echo "line $i: this is text, not a stream"; done \
	>"$work/text.txt"
start_streamd
pass "streamd listens on $URL"

start_push cam1 12
pid1=$push_pid
wait_live cam1 true 10
pass "cam1 recording"

long=$(printf 'a%.0s' $(seq 129))
for name in 'bad%20name' "$long" '..' '.'; do
	push_body "$name" "$work/small.ts"
	expect_code 400 "publishing to /record/${name:0:20}..."
done
pass "bad names (a space, 129 characters, '..', '.') -> 400"
push_body "${long:0:128}" "$work/small.ts"
[ "$code" = 200 ] || [ "$code" = 201 ] || fail "a 128-character name: HTTP $code"
pass "a 128-character name is fine ($code)"

push_body junk "$work/garbage.bin"
expect_code 415 "2 MB of random bytes"
expect_unlisted junk
pass "2 MB of random bytes -> 415, no stream left behind"
push_body prose "$work/text.txt"
expect_code 415 "a text body"
expect_unlisted prose
pass "a text body -> 415, no stream left behind"

push_body cam1 "$work/small.ts"
expect_code 409 "a second publisher on cam1"
kill -0 "$pid1" 2>/dev/null || fail "the first cam1 encoder stopped after the 409"
is_live cam1 true || fail "cam1 is no longer live after the 409"
pass "a second publisher on cam1 -> 409, the first goes on"

wait_rc "$pid1" 30
[ "$rc" -eq 0 ] || fail "the cam1 push ended with status $rc"
expect_intact cam1 "$work/cam1.ts"
pass "cam1 is intact after the refusals ($(size_of "$work/cam1.ts") bytes)"

# --- The same encoder name reconnects. --------------------------------
push_file=$work/recon-a.ts push_pattern recon 6 || fail "first recon push"
wait_live recon false 10
sleep 3
push_file=$work/recon-b.ts push_pattern recon 6 || fail "second recon push"
wait_live recon false 10
cat "$work/recon-a.ts" "$work/recon-b.ts" >"$work/recon-ab.ts"
expect_intact recon "$work/recon-ab.ts"
streams_list "$work/streams.json"
[ "$(json_flat <"$work/streams.json" | grep -c $'^\[[0-9]*\]\.name\trecon$')" = 1 ] ||
	fail "/streams does not list recon exactly once"
http /streams/recon "$work/recon.json"
expect_code 200 "GET /streams/recon"
gaps=$(json_get "$work/recon.json" '.gaps#')
[ "$gaps" = 1 ] || fail "recon has '$gaps' gaps, expected 1: $(cat "$work/recon.json")"
gd=$(json_get "$work/recon.json" '.gaps[0].duration')
near "$gd" 3 1.5 || fail "the gap lasts $gd s, expected ~3"
go=$(json_get "$work/recon.json" '.gaps[0].offset')
[ "$go" = "$(size_of "$work/recon-a.ts")" ] ||
	fail "the gap is at offset $go, the first push was $(size_of "$work/recon-a.ts") bytes"
d=$(stream_field "$work/streams.json" recon duration)
pass "a reconnect continues recon: one recording, a $(r3 "$gd") s gap at byte $go, duration $(r3 "$d") s"
# From the keyframe at 2 s of the first push (100 frames to its end)
# to the keyframe nearest 12 s, ~2 s into the second: ~150 frames.
http '/streams/recon.ts?start=3&duration=9' "$work/across.ts"
expect_code 200 "GET recon.ts across the gap"
# The second connection's timestamps start again from where its encoder
# began: the null muxer's "non monotonically increasing dts" there is
# the encoder's doing, not a decode error.
decode_ignore='non monotonically increasing dts' \
	expect_decodes "$work/across.ts" "playback across the gap"
frames=$(ffprobe -v error -select_streams v:0 -count_packets \
	-show_entries stream=nb_read_packets -of csv=p=0 "$work/across.ts" | sed -n 1p)
[ "$frames" -gt 125 ] ||
	fail "playback across the gap has $frames video frames: it stops at the gap"
pass "playback across the gap decodes: $frames video frames, $(size_of "$work/across.ts") bytes"

stop_streamd
pass "streamd stops cleanly on SIGTERM"

# --- Publishing with a token. -------------------------------------------
start_streamd --publish-token s3cret
pass "streamd restarted with --publish-token"
push_query='?token=s3cret' start_push cam3 8
pid3=$push_pid
wait_live cam3 true 10
pass "?token=s3cret is accepted: cam3 recording"
push_body cam3 "$work/small.ts"
expect_code 401 "publishing without a token"
push_body 'cam3?token=nope' "$work/small.ts"
expect_code 401 "publishing with a wrong ?token="
push_body cam3 "$work/small.ts" -H 'Authorization: Bearer nope'
expect_code 401 "publishing with a wrong Bearer token"
push_body other "$work/small.ts"
expect_code 401 "publishing a new name without a token"
expect_unlisted other
pass "no token, a wrong ?token= or Bearer -> 401, nothing created"
push_body bearer "$work/small.ts" -H 'Authorization: Bearer s3cret'
[ "$code" = 200 ] || [ "$code" = 201 ] || fail "Bearer s3cret: HTTP $code"
expect_intact bearer "$work/small.ts"
pass "Authorization: Bearer s3cret is accepted ($code) and records"
wait_rc "$pid3" 20
[ "$rc" -eq 0 ] || fail "the cam3 push ended with status $rc"
expect_intact cam3 "$work/cam3.ts"
pass "cam3 is intact after the 401s"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all badinput checks passed"
