#!/bin/bash
# Managing recordings over HTTP, as an operator does with curl: holds
# (protected ranges) and deletion, behind the admin token.  A finished
# recording gets holds by seconds from its start, by ISO-8601 and by
# seconds behind its end; GET lists them with the bytes each keeps
# (matching the keyframe offsets of /streams/NAME) and the recording's
# detail shows them; bad bodies, unknown ids, a missing token and a hold
# on no recording get clear errors.  The holds survive a restart of
# streamd (they live in DJMFS, not in memory).  A recording being
# recorded is refused DELETE with 409 while its upload goes on
# untouched; ?force=1 ends the upload, deletes it and its holds; a
# finished one is deleted with 204 and is gone from /streams, its name
# free for a new recording.
#
# Environment: STREAMD (default: the build tree's).
# Exit status: 0 pass, 1 fail, 77 skipped.

set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients curl ffmpeg
make_workdir manage

TOKEN=adm-secret
AUTH=(-H "Authorization: Bearer $TOKEN")
start_streamd --admin-token "$TOKEN"

push_pattern cam1 8 || fail "pushing cam1: $(cat "$work/push-cam1.err")"
pass "cam1: 8 s recorded"

# --- Holds ----------------------------------------------------------------
http /streams/cam1/holds "$work/h.json"
expect_code 401 "GET holds without the token"
http /streams/cam1/holds "$work/h.json" "${AUTH[@]}"
expect_code 200 "GET holds"
[ "$(json_get "$work/h.json" .holds#)" = 0 ] || fail "holds of a new recording: $(cat "$work/h.json")"
[ "$(json_get "$work/h.json" .held_bytes)" = 0 ] || fail "held_bytes is not 0"

post_hold() {
	http /streams/cam1/holds "$work/post.json" "${AUTH[@]}" -X POST \
		-H 'Content-Type: application/json' --data-binary "$1"
}
post_hold '{"start": 0, "end": 3, "label": "first 3 s"}'
expect_code 201 "POST a hold by seconds"
id1=$(json_get "$work/post.json" .id)
[ "$id1" = 1 ] || fail "the first hold's id is $id1"
[ "$(json_get "$work/post.json" .label)" = "first 3 s" ] || fail "label: $(cat "$work/post.json")"
[ "$(json_get "$work/post.json" .offset)" = 0 ] || fail "a hold from 0 starts at offset $(json_get "$work/post.json" .offset)"
bytes1=$(json_get "$work/post.json" .bytes)
check "$bytes1 > 0" || fail "hold 1 keeps $bytes1 bytes"

http /streams/cam1 "$work/detail.json"
expect_code 200 "GET /streams/cam1"
start=$(json_get "$work/detail.json" .start)
start_s=$(epoch_of "$start")
iso_a=$(iso_of "$(calc "$start_s + 4")")
iso_b=$(iso_of "$(calc "$start_s + 6")")
post_hold "{\"start\": \"$iso_a\", \"end\": \"$iso_b\", \"label\": \"iso\"}"
expect_code 201 "POST a hold by ISO-8601"
id2=$(json_get "$work/post.json" .id)
off2=$(json_get "$work/post.json" .offset)
# 4 s into a 2 s GOP: the keyframe at 4 s; its offset is an index entry's.
check "$off2 > 0 && $off2 < $(size_of "$work/cam1.ts")" ||
	fail "hold 2 starts at offset $off2"
post_hold '{"start": "-2", "end": "-1"}'
expect_code 201 "POST a hold behind the end"
id3=$(json_get "$work/post.json" .id)
[ "$id3" = 3 ] || fail "ids: $id1 $id2 $id3"
pass "3 holds: by seconds ($bytes1 bytes), ISO-8601 (from offset $off2), behind the end"

for body in '' 'junk' '{"start": 5}' '{"start": 5, "end": 2}' \
	'{"start": "yesterday", "end": 3}' '{"start": 1, "end": 2, "label": 7}' \
	'{"start": -5, "end": 2}'; do
	post_hold "$body"
	expect_code 400 "POST hold body '$body'"
	grep -q '"error"' "$work/post.json" || fail "400 without an error: $body"
done
http /streams/nosuch/holds "$work/post.json" "${AUTH[@]}" -X POST \
	--data-binary '{"start": 0, "end": 1}'
expect_code 404 "a hold on no recording"
http "/streams/cam1/holds/$id1" "$work/x.json" "${AUTH[@]}" -X POST \
	--data-binary '{}'
expect_code 405 "POST to one hold"
pass "bad bodies 400, no recording 404, POST to a hold 405"

http /streams/cam1/holds "$work/h.json" "${AUTH[@]}"
expect_code 200 "GET holds"
[ "$(json_get "$work/h.json" .holds#)" = 3 ] || fail "3 holds expected: $(cat "$work/h.json")"
held=$(json_get "$work/h.json" .held_bytes)
check "$held >= $bytes1" || fail "held_bytes $held < hold 1's $bytes1"
# Sorted by start: the hold from 0 comes first.
[ "$(json_get "$work/h.json" '.holds[0].id')" = "$id1" ] || fail "holds not sorted by start"
http /streams/cam1 "$work/detail.json"
[ "$(json_get "$work/detail.json" .holds#)" = 3 ] || fail "the detail shows $(json_get "$work/detail.json" .holds#) holds"
[ "$(json_get "$work/detail.json" .held_bytes)" = "$held" ] || fail "the detail's held_bytes differs"
pass "GET lists 3 holds keeping $held bytes; /streams/cam1 shows them"

http "/streams/cam1/holds/$id2" "$work/x.json" -X DELETE
expect_code 401 "DELETE a hold without the token"
http "/streams/cam1/holds/$id2" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 204 "DELETE hold $id2"
http "/streams/cam1/holds/$id2" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 404 "DELETE hold $id2 again"
http "/streams/cam1/holds/abc" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 404 "DELETE hold abc"
http /streams/cam1/holds "$work/h.json" "${AUTH[@]}" -X DELETE
expect_code 405 "DELETE on the list of holds"
pass "hold $id2 removed (204), then 404; bad ids 404"

# The holds are in DJMFS: a restarted streamd sees them, and ids go on.
stop_streamd
start_streamd --admin-token "$TOKEN"
http /streams/cam1/holds "$work/h.json" "${AUTH[@]}"
[ "$(json_get "$work/h.json" .holds#)" = 2 ] || fail "after a restart: $(cat "$work/h.json")"
post_hold '{"start": 1, "end": 2}'
expect_code 201 "POST after the restart"
[ "$(json_get "$work/post.json" .id)" = 4 ] || fail "an id was reused: $(json_get "$work/post.json" .id)"
pass "after a restart: the 2 holds are there, the next id is 4"

# --- Delete -------------------------------------------------------------
start_push live1 30
wait_live live1 true 20
http /streams/live1 "$work/x.json" -X DELETE
expect_code 401 "DELETE without the token"
http /streams/live1 "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 409 "DELETE of a live recording"
grep -q 'force=1' "$work/x.json" || fail "the 409 does not say how to force it"
sleep 1
kill -0 "$push_pid" 2>/dev/null || fail "the 409 stopped the upload"
http /streams/live1 "$work/d1.json"
b1=$(json_get "$work/d1.json" .bytes)
sleep 2
http /streams/live1 "$work/d2.json"
check "$(json_get "$work/d2.json" .bytes) > $b1" || fail "live1 stopped growing after the 409"
pass "a live recording: 409, and its upload goes on"

http /streams/live1/holds "$work/post.json" "${AUTH[@]}" -X POST \
	--data-binary '{"start": 0, "end": 1}'
expect_code 201 "a hold on the live recording"
http "/streams/live1?force=2" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 400 "force=2"
http "/streams/live1?force=1" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 204 "DELETE ?force=1"
# ffmpeg's tee goes on with its file when the HTTP side fails: the
# sign is that side's error.
wait_for 10 "the encoder's connection closed" \
	grep -q 'Slave muxer #1 failed' "$work/push-live1.err"
kill "$push_pid" 2>/dev/null || true
wait "$push_pid" 2>/dev/null || true
http /streams/live1 "$work/x.json"
expect_code 404 "live1 after the forced delete"
streams_list "$work/list.json"
[ -z "$(stream_field "$work/list.json" live1 name)" ] || fail "live1 still listed"
http /streams/live1/holds "$work/h.json" "${AUTH[@]}"
expect_code 404 "live1's holds after the delete"
pass "?force=1: the upload ended, live1 and its holds are gone"

http /streams/cam1 "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 204 "DELETE cam1"
http /streams/cam1 "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 404 "DELETE cam1 again"
http /streams/cam1.ts "$work/x.ts"
expect_code 404 "playing cam1 after the delete"
http "/streams/bad~name" "$work/x.json" "${AUTH[@]}" -X DELETE
expect_code 400 "DELETE of a bad name"
push_pattern cam1 3 || fail "recording cam1 again: $(cat "$work/push-cam1.err")"
http /streams/cam1 "$work/detail.json"
expect_code 200 "the new cam1"
http /streams/cam1/holds "$work/h.json" "${AUTH[@]}"
[ "$(json_get "$work/h.json" .holds#)" = 0 ] || fail "the new cam1 inherited holds"
pass "cam1 deleted (204, then 404), the name recorded anew without its holds"
