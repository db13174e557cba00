#!/usr/bin/env bash
# Admission control of streamd with the real daemon: with max_bandwidth
# set to hold three players of a recording at its measured bitrate, three
# curl players get 200 and bytes (counted with their start-up surcharge
# until it ends), and a fourth gets 503 at once (no
# session opened, so no disk read) with Retry-After and the JSON reason
# "network"; /admin/capacity shows what is promised and the metric counts
# the refusal, and prices one more viewer (?stream=, ?bitrate=) at what
# the refusal charged; a HEAD still answers.  Once the players close, their
# reservations are held for the grace: the same client takes one over,
# another client is refused until the grace has passed, then admitted.  A
# publisher whose writes alone do not fit is refused the same way, and
# with admission off everyone is admitted.
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
make_workdir admission
GRACE=10 # sd_admit.c's GRACE_NS
START=5 # sd_capacity.c's START_NS
BURST=5 # the burst knob's default

put_config() {
	http /admin/config "$work/put.out" -X PUT \
		-H 'Content-Type: application/json' --data-binary "$1"
	expect_code 200 "PUT /admin/config $1"
}

metric_value() {
	http /metrics "$work/metrics.txt"
	awk -v m="$1" '$1 == m { print $2; exit }' "$work/metrics.txt"
}

capacity() {
	http /admin/capacity "$work/capacity.json"
	expect_code 200 "GET /admin/capacity"
}

viewers_are() {
	capacity
	[ "$(json_get "$work/capacity.json" .viewers)" = "$1" ]
}

# Without the interval cache, so the players' reads are promised to the
# disk (cache.sh shows a cached viewer promised none).
start_streamd --cache-size 0
# 12 s at a constant 2 Mbit/s: more than the socket buffers of three slow
# players hold, so their responses stay open while the test runs.
# shellcheck disable=SC2046 # pattern_args is meant to split
ffmpeg -nostdin -hide_banner -v error $(pattern_args) -t 12 -b:v 2M \
	-minrate 2M -maxrate 2M -bufsize 500k -x264-params nal-hrd=cbr -y \
	-f mpegts "$work/cam1.src.ts" 2>>"$work/ffmpeg.err" || fail "making cam1"
push_body cam1 "$work/cam1.src.ts"
expect_code 200 "pushing the recording"
streams_list "$work/streams.json"
rate=$(stream_field "$work/streams.json" cam1 bitrate)
check "$rate > 0" || fail "cam1 has no bitrate: $(cat "$work/streams.json")"
# A new viewer counts, for its first START s, its burst on top of its
# rate on the network (its buffer's first fill is read, not sent: it
# counts on the disk alone; sd_admit.c): once three players have settled,
# 0.85 of max_bandwidth holds them but not a fourth's start.
start=$(awk -v r="$rate" -v s="$START" -v b="$BURST" \
	'BEGIN { printf "%d\n", (r * b) / s }')
bw=$(awk -v r="$rate" -v x="$start" 'BEGIN { printf "%d\n", (3 * r + (r + x) / 2) / 0.85 }')
pass "cam1 recorded at $rate bit/s; a start adds $start bit/s; max_bandwidth will be $bw bit/s"

# --- Three players get in. ---------------------------------------------
pids=()
for i in 1 2 3; do
	curl -sS --limit-rate 4k --max-time 60 -o "$work/p$i.ts" \
		-w '%{http_code}' "$URL/streams/cam1.ts?start=0" \
		>"$work/p$i.code" 2>"$work/p$i.err" &
	pids+=($!)
done
wait_for 10 "three admitted viewers" viewers_are 3
wait_for 10 "bytes at every player" \
	bash -c "[ -s '$work/p1.ts' ] && [ -s '$work/p2.ts' ] && [ -s '$work/p3.ts' ]"
capacity
[ "$(json_get "$work/capacity.json" .viewers_starting)" = 3 ] ||
	fail "three new players are not starting: $(cat "$work/capacity.json")"
starting=$(json_get "$work/capacity.json" .network.promised)
check "$starting > 3 * $rate + 2 * $start" ||
	fail "network promised $starting while starting, expected 3 x ($rate + $start)"
wait_for $((START + 5)) "the players' starts to end" \
	bash -c "curl -s '$URL/admin/capacity' | grep -q '\"viewers_starting\": 0'"
put_config "{\"max_bandwidth\":$bw}"
pass "three players admitted and receiving (starting: $starting bit/s promised)"

# --- The fourth is refused at once, naming the network. ----------------
sessions=$(metric_value streamd_sessions_total)
t=$(curl -sS -o "$work/p4.json" -D "$work/p4.h" -w '%{http_code} %{time_total}' \
	"$URL/streams/cam1.ts?start=0")
code=${t% *}
secs=${t#* }
[ "$code" = 503 ] || fail "a fourth player: HTTP $code, expected 503: $(cat "$work/p4.json")"
[ "$(json_get "$work/p4.json" .reason)" = network ] ||
	fail "the 503 names no network: $(cat "$work/p4.json")"
[ -n "$(json_get "$work/p4.json" .error)" ] || fail "the 503 has no error: $(cat "$work/p4.json")"
retry=$(header "$work/p4.h" Retry-After)
check "${retry:-0} >= 1" || fail "Retry-After is '$retry'"
check "$secs < 0.25" || fail "the refusal took $secs s"
[ "$(metric_value streamd_sessions_total)" = "$sessions" ] ||
	fail "the refused player opened a session (it would have read the disk)"
pass "a fourth player: 503 in $(r3 "$secs * 1000") ms, Retry-After $retry, reason network, no session"

http "/streams/cam1.ts?start=0" "$work/head.out" -I
expect_code 200 "a HEAD while full"
pass "a HEAD needs no admission"

capacity
promised=$(json_get "$work/capacity.json" .network.promised)
near "$promised" "3 * $rate" 1 ||
	fail "network promised $promised, expected 3 x $rate: $(cat "$work/capacity.json")"
near "$(json_get "$work/capacity.json" .network.capacity)" "$bw" 1 ||
	fail "network capacity is not max_bandwidth: $(cat "$work/capacity.json")"
for r in disk cpu network memory; do
	for f in capacity promised measured ceiling; do
		[ -n "$(json_get "$work/capacity.json" ".$r.$f")" ] ||
			fail "/admin/capacity lacks $r.$f: $(cat "$work/capacity.json")"
	done
done
check "$(json_get "$work/capacity.json" .disk.promised) > 0" ||
	fail "no disk promised for three viewers: $(cat "$work/capacity.json")"
[ "$(json_get "$work/capacity.json" .refused_total.network)" = 1 ] ||
	fail "/admin/capacity counts no network refusal: $(cat "$work/capacity.json")"
[ "$(metric_value 'streamd_admission_refused_total{reason="network"}')" = 1 ] ||
	fail "the metric does not count the refusal: $(grep admission "$work/metrics.txt")"
for r in disk cpu memory; do
	[ "$(metric_value "streamd_admission_refused_total{reason=\"$r\"}")" = 0 ] ||
		fail "streamd_admission_refused_total{reason=\"$r\"} missing or not 0"
done
[ "$(metric_value 'streamd_http_requests_total{code="503"}')" = 1 ] ||
	fail "the 503 is not counted under its own code: $(grep 'code=' "$work/metrics.txt")"
# The publisher of cam1 and the three players.
[ "$(metric_value streamd_admitted_total)" = 4 ] ||
	fail "streamd_admitted_total is $(metric_value streamd_admitted_total), not 4"
pass "/admin/capacity: network promised $promised of $bw bit/s; metrics count 4 admitted, 1 refused"

# --- What one more viewer would be charged. ------------------------------
http "/admin/capacity?stream=cam1" "$work/priced.json"
expect_code 200 "GET /admin/capacity?stream=cam1"
[ "$(json_get "$work/priced.json" .viewer_bitrate)" = "$rate" ] ||
	fail "?stream=cam1 prices $(json_get "$work/priced.json" .viewer_bitrate), not $rate"
near "$(json_get "$work/priced.json" .network.per_viewer)" "$rate" 1 ||
	fail "network.per_viewer is not cam1's rate: $(cat "$work/priced.json")"
near "$(json_get "$work/priced.json" .network.per_viewer_start)" "$start" 1 ||
	fail "network.per_viewer_start is not $start: $(cat "$work/priced.json")"
for r in disk cpu memory; do
	check "$(json_get "$work/priced.json" ".$r.per_viewer") > 0" ||
		fail "$r.per_viewer missing or 0: $(cat "$work/priced.json")"
done
# The fourth player above was refused: by these figures it did not fit.
check "$(json_get "$work/priced.json" .network.promised) + $rate + $start > 0.85 * $bw" ||
	fail "the costs say a fourth player fits: $(cat "$work/priced.json")"
http "/admin/capacity?bitrate=2000000" "$work/priced2.json"
expect_code 200 "GET /admin/capacity?bitrate=2000000"
near "$(json_get "$work/priced2.json" .network.per_viewer)" 2000000 1 ||
	fail "?bitrate=2000000: network.per_viewer $(json_get "$work/priced2.json" .network.per_viewer)"
http "/admin/capacity" "$work/priced3.json"
[ "$(json_get "$work/priced3.json" .viewer_bitrate)" = 4000000 ] ||
	fail "without a bitrate, a viewer is not priced at 4 Mbit/s"
http "/admin/capacity?bitrate=fast" "$work/bad.json"
expect_code 400 "?bitrate=fast"
http "/admin/capacity?stream=nope" "$work/bad.json"
expect_code 404 "?stream=nope"
pass "/admin/capacity prices one more viewer: $rate bit/s + $start during its start"

# --- Grace: held for the same client, freed for others after it. -------
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
wait_for 10 "the players' sessions to close" \
	bash -c "curl -s '$URL/admin/capacity' | grep -q '\"viewers_held\": 3'"
# (curl, killed, writes no status: the access log has the players' 200.)
[ "$(grep -c '"GET /streams/cam1.ts HTTP/1.1" 200 ' "$work/access.log")" -ge 3 ] ||
	fail "the access log has no three 200s for the players"
closed=$(now)
http "/streams/cam1.ts?start=0" "$work/other.json" --interface 127.0.0.2 --max-time 5
expect_code 503 "another client within the grace"
http "/streams/cam1/data.ts" "$work/same.ts" -r 0-99999 --max-time 5
expect_code 206 "the same client within the grace (a takeover)"
check "$(size_of "$work/same.ts") == 100000" || fail "the takeover got $(size_of "$work/same.ts") bytes"
capacity
[ "$(json_get "$work/capacity.json" .takeovers_total)" -ge 1 ] ||
	fail "no takeover counted: $(cat "$work/capacity.json")"
pass "within the grace: another client refused, the same one takes its reservation over"

wait_for $((GRACE + 5)) "the grace to pass" \
	bash -c "curl -s '$URL/admin/capacity' | grep -q '\"viewers\": 0'"
waited=$(calc "$(now) - $closed")
check "$waited >= $GRACE - 1.5" || fail "reservations freed after $waited s, before the grace"
http "/streams/cam1/data.ts" "$work/after.ts" --interface 127.0.0.2 -r 0-99999 --max-time 5
expect_code 206 "another client after the grace"
pass "after the grace ($(r3 "$waited") s) another client is admitted"

# --- Recorders: refused only when their writes do not fit. -------------
put_config '{"max_bandwidth":1000}'
# A short body: the refusal comes with the head, and a client still
# sending megabytes when the connection closes may see the reset before
# the answer.
head -c $((188 * 100)) "$work/cam1.src.ts" >"$work/short.ts"
push_body cam2 "$work/short.ts"
expect_code 503 "a publisher whose writes exceed max_bandwidth"
[ "$(json_get "$work/push-body.out" .reason)" = network ] ||
	fail "the publisher's 503 names no network: $(cat "$work/push-body.out")"
pass "a publisher whose writes alone do not fit: 503, reason network"

# --- admission = off admits everyone. ----------------------------------
put_config '{"admission":"off"}'
http "/streams/cam1/data.ts" "$work/off.ts" -r 0-99999 --interface 127.0.0.3 --max-time 5
expect_code 206 "a player with admission off"
push_body cam2 "$work/cam1.src.ts"
expect_code 200 "a publisher with admission off"
capacity
[ "$(json_get "$work/capacity.json" .admission)" = off ] ||
	fail "/admin/capacity does not say off: $(cat "$work/capacity.json")"
pass "admission off: a player and a publisher past max_bandwidth are admitted"

stop_streamd
pass "streamd stopped cleanly"
