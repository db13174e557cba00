#!/usr/bin/env bash
# Administration test of streamd: GET /admin/config gives the run-time
# knobs as JSON; a valid PUT changes them, an invalid one (B above A, an
# unknown key, not JSON) is 400 and changes nothing; with --admin-token
# the endpoint wants "Authorization: Bearer TOKEN".  /metrics is
# Prometheus text with every metric the daemon documents.  SIGHUP reopens
# the logs after a rotation.  SIGTERM while an encoder pushes stops the
# daemon cleanly (status 0 within 10 s) and, restarted on the same data
# directory, the recording is there, finished, and holds a prefix of what
# the encoder sent that lacks at most the last second before the signal.
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
make_workdir admin
KNOBS="A B period read_size buffer_size deadline policy depth profile
admission admission_ceiling max_bandwidth clip_max_duration retention
retention_bytes volume_reserve"
METRICS="streamd_recordings streamd_recordings_total streamd_sessions
streamd_sessions_total streamd_bytes_in_total streamd_bytes_out_total
streamd_session_reads_total streamd_session_read_misses_total
streamd_underflows_total streamd_record_writes_total
streamd_record_write_misses_total streamd_sched_requests_total
streamd_sched_deadline_misses_total streamd_sched_latency_p99_seconds
streamd_sched_lateness_max_seconds streamd_http_requests_total
streamd_djmfs_metadata_repairs_total streamd_admitted_total
streamd_admission_refused_total streamd_retention_trims_total
streamd_trimmed_bytes_total streamd_trimmed_units_total streamd_held_bytes
streamd_volume_bytes streamd_volume_free_bytes"

# put_config BODY [CURL OPTION...]: PUT BODY to /admin/config.
put_config() {
	local body=$1
	shift
	http /admin/config "$work/put.out" -X PUT \
		-H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# expect_knobs A B WHAT: GET /admin/config shows A and B.
expect_knobs() {
	http /admin/config "$work/knobs.json"
	expect_code 200 "GET /admin/config"
	[ "$(json_get "$work/knobs.json" .A)" = "$1" ] &&
		[ "$(json_get "$work/knobs.json" .B)" = "$2" ] ||
		fail "$3: /admin/config is $(cat "$work/knobs.json"), expected A $1 B $2"
}

start_streamd
pass "streamd listens on $URL"

# --- Knobs. ------------------------------------------------------------
http /admin/config "$work/knobs.json"
expect_code 200 "GET /admin/config"
for k in $KNOBS; do
	[ -n "$(json_get "$work/knobs.json" ".$k")" ] ||
		fail "/admin/config lacks '$k': $(cat "$work/knobs.json")"
done
near "$(json_get "$work/knobs.json" .period)" 0.3 0.0001 &&
	[ "$(json_get "$work/knobs.json" .read_size)" = 65536 ] ||
	fail "default knobs are not period 0.3 / read_size 65536: $(cat "$work/knobs.json")"
pass "GET /admin/config: $(tr -d '\n' <"$work/knobs.json")"

put_config '{"A":70,"B":20}'
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "PUT {A:70,B:20}: HTTP $code: $(cat "$work/put.out")"
expect_knobs 70 20 "after a valid PUT"
pass "PUT {\"A\":70,\"B\":20} -> $code, and GET shows them"

for body in '{"A":10,"B":20}' '{"A":70,"B":20,"nope":1}' 'not json' \
	'{"A":"high"}' '{"read_size":1000}' ''; do
	put_config "$body"
	expect_code 400 "PUT '$body'"
	expect_knobs 70 20 "after the refused PUT '$body'"
done
pass "invalid PUTs (B above A, unknown key, not JSON, wrong type, bad size, empty) -> 400, nothing changes"

# --- Metrics. ----------------------------------------------------------
http /metrics "$work/metrics.txt"
expect_code 200 "GET /metrics"
bad=$(grep -Ev '^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+]?([0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|NaN|Inf)( -?[0-9]+)?|)$' \
	"$work/metrics.txt" | head -n 3) || true
[ -z "$bad" ] || fail "/metrics has lines that are not Prometheus text: $bad"
for m in $METRICS; do
	grep -Eq "^$m(\{[^}]*\})? " "$work/metrics.txt" || fail "/metrics lacks $m"
done
for region in journal checkpoint superblock; do
	grep -Eq "^streamd_djmfs_metadata_repairs_total\{region=\"$region\"\} 0\$" \
		"$work/metrics.txt" ||
		fail "/metrics has no streamd_djmfs_metadata_repairs_total{region=\"$region\"} 0"
done
grep -Eq '^streamd_http_requests_total\{code="200"\} [0-9]+' "$work/metrics.txt" ||
	fail "/metrics has no streamd_http_requests_total{code=\"200\"}"
grep -Eq '^streamd_http_requests_total\{code="400"\} [1-9]' "$work/metrics.txt" ||
	fail "/metrics has not counted the 400s"
ctype=$(header "$work/metrics.txt.h" Content-Type)
case $ctype in text/plain*) ;; *) fail "/metrics Content-Type '$ctype'" ;; esac
pass "/metrics: $(grep -vc '^#' "$work/metrics.txt") samples, all $(echo "$METRICS" | wc -w) names, $ctype"

# --- SIGHUP reopens the logs. --------------------------------------------
mv "$work/access.log" "$work/access.log.1"
kill -HUP "$streamd_pid"
has_new_line() {
	http /streams/after-hup "$work/hup.out"
	grep -q 'GET /streams/after-hup ' "$work/access.log" 2>/dev/null
}
wait_for 5 "a line in the reopened access.log" has_new_line
! grep -q 'after-hup' "$work/access.log.1" || fail "the rotated access.log still gets lines"
kill -0 "$streamd_pid" || fail "streamd died of SIGHUP"
pass "SIGHUP: a new access.log gets the next requests, the rotated one none"

# --- SIGTERM while an encoder pushes, then a restart. ---------------------
t0=$(now)
# Constant 1 Mb/s, so that one second of stream is far more than what
# ffmpeg's buffers may hold back from the local copy.
start_push cam1 20 -b:v 1000k -minrate 1000k -maxrate 1000k -bufsize 500k \
	-x264-params nal-hrd=cbr
wait_live cam1 true 10
sleep "$(calc "7 - ($(now) - $t0)")"
streams_list "$work/streams.json"
rate=$(stream_field "$work/streams.json" cam1 bitrate)
[ -n "$rate" ] && check "$rate > 0" || fail "no bitrate for cam1 while live"
sent=$(size_of "$work/cam1.ts")
tk=$(now)
kill -TERM "$streamd_pid"
wait_rc "$streamd_pid" 10
[ "$rc" -ne 124 ] || fail "streamd still runs 10 s after SIGTERM with an encoder pushing"
[ "$rc" -eq 0 ] || fail "streamd stopped with status $rc (SIGTERM while recording)"
streamd_pid=
pass "SIGTERM with an encoder pushing: exit 0 in $(r3 "$(now) - $tk") s ($sent bytes pushed by then)"
wait_rc "$push_pid" 15
[ "$rc" -ne 124 ] || { kill "$push_pid"; fail "the encoder did not notice the daemon went away"; }
pass "the encoder saw the connection end (ffmpeg status $rc)"

start_streamd
pass "streamd restarted on the same data directory"
streams_list "$work/streams.json"
[ "$(stream_field "$work/streams.json" cam1 live)" = false ] ||
	fail "after the restart cam1 is not listed as finished: $(cat "$work/streams.json")"
http /streams/cam1/data.ts "$work/data.ts"
expect_code 200 "GET /streams/cam1/data.ts after the restart"
got=$(size_of "$work/data.ts")
cmp -s -n "$got" "$work/data.ts" "$work/cam1.ts" && [ "$got" -le "$(size_of "$work/cam1.ts")" ] ||
	fail "data.ts ($got bytes) is not a prefix of what was pushed"
floor=$(calc "$sent - $rate / 8")
check "$got >= $floor" ||
	fail "data.ts has $got bytes; $sent were sent at SIGTERM, a second is $(calc "$rate / 8")"
[ "$(stream_field "$work/streams.json" cam1 bytes)" = "$got" ] ||
	fail "/streams says $(stream_field "$work/streams.json" cam1 bytes) bytes, data.ts has $got"
pass "the recording survived: $got bytes, a prefix of the pushed file, >= $sent - 1 s"
stop_streamd

# --- An admin token. -------------------------------------------------------
start_streamd --admin-token t
http /admin/config "$work/knobs.json"
expect_code 401 "GET /admin/config without the admin token"
http /admin/config "$work/knobs.json" -H 'Authorization: Bearer wrong'
expect_code 401 "GET /admin/config with a wrong token"
put_config '{"A":60}'
expect_code 401 "PUT /admin/config without the admin token"
http /admin/config "$work/knobs.json" -H 'Authorization: Bearer t'
expect_code 200 "GET /admin/config with Bearer t"
[ "$(json_get "$work/knobs.json" .A)" != 60 ] || fail "a PUT without the token changed A"
put_config '{"A":60,"B":25}' -H 'Authorization: Bearer t'
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "PUT with Bearer t: HTTP $code"
http /admin/config "$work/knobs.json" -H 'Authorization: Bearer t'
[ "$(json_get "$work/knobs.json" .A)" = 60 ] && [ "$(json_get "$work/knobs.json" .B)" = 25 ] ||
	fail "PUT with Bearer t did not change A and B: $(cat "$work/knobs.json")"
pass "--admin-token t: none or wrong -> 401, Bearer t -> 200 and PUT works"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all admin checks passed"
