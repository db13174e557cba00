#!/usr/bin/env bash
# HTTP abuse test of streamd, limits set small: max_connections 1000,
# max_connections_per_ip 600, header_timeout 3 s, idle_timeout 4 s,
# max_header_size 16 KiB, the admin routes on their own address.  While
# a legitimate client on 127.0.0.1 records (ffmpeg in real time), plays
# live (curl) and polls /streams on a kept-alive connection:
#  (g) /metrics and /admin/config answer on the admin address and are 404
#      on the main one (and /streams is 404 on the admin one);
#  (e) path tricks (".." and "." segments, escaped dots, slashes and
#      backslashes, NULs escaped or raw) are 400, from every route;
#  (d) invalid Range values give 200 or 416 as RFC 9110 says, never 500;
#  (c) a 20 KiB head gets streamd's 431, a 64 KiB one libmicrohttpd's 431;
#  (b) a head trickled a byte every 0.5 s is cut at header_timeout;
#      a slow encoder and a player waiting longer than idle_timeout for
#      its next byte are both left alone;
#  (a) 1100 idle connections from 127.0.0.2, then 1100 from 127.0.0.3:
#      600 held per address, the excess refused at once, the total held
#      at max_connections, and every one closed at header_timeout;
#  (f) a viewer that never reads is cut at idle_timeout with streamd's
#      RSS bounded.
# At the end the recording is byte for byte what the encoder sent, the
# live viewer ended cleanly with a stream that decodes, and the poller
# saw no error.  The helper clients are tests/streamd/abuse.py.
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Needs python3 and 2400 descriptors (ulimit -n is raised to that).
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015,SC2119 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

MAX_CONN=1000
PER_IP=600
HEAD_S=3
IDLE_S=4
FLOOD=1100
NOFILE=4096
ABUSE=$(dirname "$0")/abuse.py

need_streamd
need_clients
need_python3
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge "$NOFILE" ] || NOFILE=$hard
ulimit -n "$NOFILE" 2>/dev/null || true
if [ "$(ulimit -n)" -lt 2400 ]; then
	echo "SKIP: ulimit -n reaches only $(ulimit -n); 2400 needed" >&2
	exit 77
fi
make_workdir abuse

abuse() { python3 "$ABUSE" "$@"; }

# metric NAME: its value in the admin listener's /metrics.
metric() {
	curl -sS --max-time 10 "$ADMIN/metrics" 2>>"$work/curl.err" |
		awk -v n="$1" '$1 == n { print $2 }'
}
refused() { metric "streamd_http_refused_total{reason=\"$1\"}"; }

# growth_log PID FILE: "SECONDS BYTES" of FILE every 0.2 s while PID runs.
growth_log() {
	while kill -0 "$1" 2>/dev/null; do
		if [ -f "$2" ]; then echo "$(now) $(size_of "$2")"; fi
		sleep 0.2
	done
}

# The main and the admin address from the error log.
find_urls() {
	ADMIN=$(sed -n 's|.*admin listening on \(http://[^/ ]*\)/.*|\1|p' \
		"$work/streamd.log" | tail -n 1)
	URL=$(grep -v 'admin listening on' "$work/streamd.log" |
		sed -n 's|.*listening on \(http://[^/ ]*\)/.*|\1|p' | tail -n 1)
	[ -n "$ADMIN" ] && [ -n "$URL" ]
}

# has_keyframe NAME: /streams/NAME lists a keyframe (a live play can start).
has_keyframe() {
	http "/streams/$1" "$work/detail.json"
	[ "$code" = 200 ] && [ "$(json_get "$work/detail.json" .keyframes)" -ge 1 ]
}

# A bulk recording (5 MB, constant 10 Mb/s) uploaded at full speed, read
# back by the Range checks and by the viewer that never reads.
ffmpeg -nostdin -hide_banner -v error -f lavfi -i testsrc=size=640x480:rate=25 \
	-c:v libx264 -preset ultrafast -b:v 10M -maxrate 10M -bufsize 10M \
	-x264-params nal-hrd=cbr -g 50 -pix_fmt yuv420p -t 4 -y \
	-f mpegts "$work/bulk.ts" 2>>"$work/ffmpeg.err" || fail "making bulk.ts"
make_pattern "$work/small.ts" 4
start_streamd --max-connections "$MAX_CONN" \
	--max-connections-per-ip "$PER_IP" --header-timeout "$HEAD_S" \
	--idle-timeout "$IDLE_S" --max-header-size 16KiB \
	--admin-listen 127.0.0.1:0
wait_for 5 "both listen lines" find_urls
export URL
HOST=${URL#http://}
AHOST=${ADMIN#http://}
pass "streamd listens on $URL, its admin routes on $ADMIN"

t0=$(now)
push_body bulk "$work/bulk.ts"
[ "$code" = 200 ] || [ "$code" = 201 ] || fail "bulk upload: HTTP $code"
pass "a $(size_of "$work/bulk.ts")-byte upload at full speed: $(r3 \
	"$(size_of "$work/bulk.ts") / ($(now) - $t0) / 1e6") MB/s"

start_push cam1 30
wait_live cam1 true 10
wait_for 10 "cam1's first keyframe" has_keyframe cam1
curl -fsS --max-time 60 -o "$work/viewer.ts" "$URL/streams/cam1.ts" \
	2>"$work/viewer.err" &
viewer_pid=$!
abuse poll "$URL" 24 "$work/poll.json" &
poll_pid=$!
abuse trickle "$HOST" slow "$work/small.ts" 0.5 24 >"$work/trickle.json" &
trickle_pid=$!
wait_live slow true 10
wait_for 10 "slow's first keyframe" has_keyframe slow
curl -fsS --max-time 60 -o "$work/slow.ts" "$URL/streams/slow.ts" \
	2>"$work/slow.err" &
slow_pid=$!
growth_log "$slow_pid" "$work/slow.ts" >"$work/slow.growth" &

# --- (g) the admin address -----------------------------------------------
for p in /metrics /admin/config /admin/sessions; do
	code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN$p") || true
	[ "$code" = 200 ] || fail "$p on the admin address: HTTP $code"
	http "$p" "$work/main-admin.out"
	expect_code 404 "$p on the main address"
done
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ADMIN/streams") || true
[ "$code" = 404 ] || fail "/streams on the admin address: HTTP $code"
pass "(g) /metrics, /admin/config, /admin/sessions: 200 on $AHOST, 404 on" \
	"$HOST; /streams 404 on $AHOST"

# --- (e) path tricks --------------------------------------------------------
n=0
while read -r target; do
	got=$(abuse status "$HOST" "$target")
	[ "$got" = 400 ] || fail "GET $target: HTTP $got, expected 400"
	n=$((n + 1))
done <<'EOF'
/streams/..
/streams/.
/streams/../cam1.ts
/streams/./cam1.ts
/streams/cam1/../../etc/passwd
/../etc/passwd
/streams/%2e%2e
/streams/%2E%2E/data.ts
/streams/%2e%2e.ts
/streams/..%2fcam1.ts
/streams/cam1%2fdata.ts
/streams/cam1%2Fdata.ts
/streams/%2e
/streams/...ts
/streams/a%5c..%5cb
/streams/a\\..\\b
/streams/%252e%252e
/streams/cam1%00.ts
/streams/cam1\x00.ts
/streams/cam1.ts\x00/../../x
/streams\x00/../admin/config
/streams/cam1.ts?start=-5%00
/record/..
/record/%2e%2e
/streams/cam1/%2e%2e/data.ts
EOF
for target in /streams/cam1 /streams/cam1/index.m3u8; do
	got=$(abuse status "$HOST" "$target")
	[ "$got" = 200 ] || fail "GET $target: HTTP $got, expected 200"
done
got=$(abuse status "$HOST" /streams/nosuch)
[ "$got" = 404 ] || fail "GET /streams/nosuch: HTTP $got, expected 404"
pass "(e) $n path tricks -> 400 (the same names plain: 200, unknown: 404)"

# --- (d) invalid Range values ---------------------------------------------
n=0
while read -r want range; do
	http /streams/bulk/data.ts "$work/range.out" -H "Range: $range"
	[ "$code" = "$want" ] || fail "Range: $range: HTTP $code, expected $want"
	n=$((n + 1))
done <<'EOF'
200 bytes=abc
200 bytes=5-1
416 bytes=-0
200 items=0-1
416 bytes=99999999999999999999999-
206 bytes=0-99999999999999999999999
206 bytes=-99999999999999999999999
416 bytes=18446744073709551615-
200 bytes=0-1,5-9
200 bytes=
200 bytes=--5
200 bytes= 1-x
EOF
pass "(d) $n Range values: 200 (ignored) or 416 (unsatisfiable) or 206 as" \
	"RFC 9110 says, none 500"

# --- (c) heads too large --------------------------------------------------
hs0=$(refused header_size)
got=$(abuse bighead "$HOST" 8192)
[ "$got" = 200 ] || fail "an 8 KiB head: HTTP $got, expected 200"
got=$(abuse bighead "$HOST" 20480)
[ "$got" = 431 ] || fail "a 20 KiB head: HTTP $got, expected 431"
got=$(abuse bighead "$HOST" 65536)
[ "$got" = 431 ] || fail "a 64 KiB head: HTTP $got, expected 431"
hs=$(($(refused header_size) - hs0))
[ "$hs" = 2 ] || fail "header_size refusals counted $hs, expected 2"
pass "(c) heads of 8 KiB: 200; 20 KiB and 64 KiB: 431 (counted: $hs)"

# --- (b) slow heads, a slow encoder, a waiting player ------------------------
ht0=$(refused header_timeout)
abuse slowloris "$HOST" 0.5 >"$work/slowloris.json"
cut=$(json_get "$work/slowloris.json" .closed_after_s)
check "$cut >= $HEAD_S - 0.1 && $cut <= $HEAD_S + 1.5" ||
	fail "a head trickled a byte per 0.5 s was cut after $cut s"
[ "$(json_get "$work/slowloris.json" .answer_bytes)" = 0 ] ||
	fail "the slow head got an answer"
[ "$(($(refused header_timeout) - ht0))" -ge 1 ] ||
	fail "the cut slow head is not counted"
pass "(b) a head trickled a byte per 0.5 s is cut after $cut s" \
	"(header_timeout $HEAD_S s, idle_timeout $IDLE_S s)"
wait_rc "$trickle_pid" 20
[ "$rc" = 0 ] || fail "the trickling encoder failed ($rc)"
st=$(json_get "$work/trickle.json" .status)
[ "$st" = 200 ] || [ "$st" = 201 ] || fail "the trickling encoder got $st"
wait_rc "$slow_pid" 10
[ "$rc" = 0 ] || fail "the slow stream's viewer: curl status $rc"
# The longest time the slow viewer's capture did not grow.
stall=$(awk '$2 != last { last = $2; since = $1; next }
	$1 - since > m { m = $1 - since } END { printf "%.3f\n", m }' \
	"$work/slow.growth")
check "$stall >= $IDLE_S" ||
	fail "the slow viewer waited at most $stall s: not a real test"
pass "(b) an encoder sending a byte per 0.5 s for 12 s: $st after" \
	"$(json_get "$work/trickle.json" .seconds) s; its viewer waited $stall s" \
	"for a byte (> idle_timeout) and got all $(size_of "$work/slow.ts") bytes"

# --- (a) thousands of idle connections -------------------------------------
pi0=$(refused per_ip)
li0=$(refused limit)
abuse flood "$HOST" 127.0.0.2 "$FLOOD" "$work/flood2.json" &
flood2_pid=$!
wait_for 15 "127.0.0.2's connections" test -s "$work/flood2.json.held"
held2=$(json_get "$work/flood2.json.held" .held)
ref2=$(json_get "$work/flood2.json.held" .refused)
[ "$held2" = "$PER_IP" ] ||
	fail "127.0.0.2 holds $held2 connections; the cap is $PER_IP"
t1=$(now)
http /streams "$work/during.json"
expect_code 200 "/streams on a new connection while 127.0.0.2 is capped"
pass "(a) 127.0.0.2: $FLOOD connections, $held2 held, $ref2 refused at" \
	"once; a new /streams from 127.0.0.1 meanwhile: $(r3 "$(now) - $t1") s"
abuse flood "$HOST" 127.0.0.3 "$FLOOD" "$work/flood3.json" &
flood3_pid=$!
wait_for 15 "127.0.0.3's connections" test -s "$work/flood3.json.held"
held3=$(json_get "$work/flood3.json.held" .held)
ref3=$(json_get "$work/flood3.json.held" .refused)
open=$(metric streamd_http_connections)
[ $((held2 + held3)) -le "$MAX_CONN" ] ||
	fail "$held2 + $held3 connections held, above max_connections $MAX_CONN"
[ "$open" -le $((MAX_CONN + 1)) ] ||
	fail "streamd has $open connections open; max_connections is $MAX_CONN"
[ "$held3" -ge $((MAX_CONN - PER_IP - 10)) ] ||
	fail "127.0.0.3 got only $held3 connections below the global cap"
pi=$(($(refused per_ip) - pi0))
li=$(($(refused limit) - li0))
[ "$pi" = "$ref2" ] || fail "per_ip refusals counted $pi, 127.0.0.2 saw $ref2"
[ "$li" -ge "$ref3" ] || fail "limit refusals counted $li, 127.0.0.3 saw $ref3"
pass "(a) 127.0.0.3: $FLOOD connections, $held3 held, $ref3 refused at" \
	"once; streamd has $open open (max_connections $MAX_CONN, and the" \
	"admin /metrics one); counted per_ip $pi, limit $li"
wait_rc "$flood2_pid" 40
wait_rc "$flood3_pid" 40
for f in 2 3; do
	j=$work/flood$f.json
	[ "$(json_get "$j" .unclosed)" = 0 ] ||
		fail "127.0.0.$f: $(json_get "$j" .unclosed) connections never closed"
	first=$(json_get "$j" .first_close_s)
	last=$(json_get "$j" .last_close_s)
	check "$first >= $HEAD_S - 0.1 && $last <= $HEAD_S + 1.5" ||
		fail "127.0.0.$f's idle connections closed after $first..$last s"
	pass "(a) 127.0.0.$f: the $(json_get "$j" .held) held connections" \
		"closed after $first..$last s (header_timeout $HEAD_S s)"
done
open=$(metric streamd_http_connections)
[ "$open" -le 10 ] || fail "$open connections still open after the flood"
http /streams "$work/after.json"
expect_code 200 "/streams after the flood"
pass "(a) afterwards $open connections open, header_timeout closes counted" \
	"$(($(refused header_timeout) - ht0))"

# --- (f) a viewer that never reads ----------------------------------------
# has_stalled: /admin/sessions has a session playing bulk; its bytes sent
# so far in $sent.
has_stalled() {
	curl -sS --max-time 5 "$ADMIN/admin/sessions" 2>>"$work/curl.err" |
		json_flat >"$work/sessions.flat"
	sent=$(awk -F '\t' '$1 ~ /\.stream$/ && $2 == "bulk" {
		i = substr($1, 1, index($1, "]")) } $1 == i ".sent" { print $2 }' \
		"$work/sessions.flat")
	[ -n "$sent" ]
}
rss() { metric process_resident_memory_bytes | awk '{ printf "%d\n", $1 }'; }
it0=$(refused idle_timeout)
rss0=$(rss)
rss_max=$rss0
abuse stall "$HOST" /streams/bulk/data.ts 20 &
stall_pid=$!
t1=$(now)
wait_for 5 "the stalled viewer's session" has_stalled
while has_stalled; do
	r=$(rss)
	[ "$r" -le "$rss_max" ] || rss_max=$r
	last_sent=$sent
	check "$(now) - $t1 < $IDLE_S + 8" ||
		fail "a viewer that never reads still served after" \
			"$(r3 "$(now) - $t1") s"
	sleep 0.25
done
gone=$(r3 "$(now) - $t1")
kill "$stall_pid" 2>/dev/null || true
wait "$stall_pid" 2>/dev/null || true
check "$gone >= $IDLE_S - 0.1" ||
	fail "the stalled viewer was cut after $gone s"
[ "$(($(refused idle_timeout) - it0))" -ge 1 ] ||
	fail "the stalled viewer's close is not counted as idle_timeout"
grow=$(((rss_max - rss0) / 1048576))
[ "$grow" -le 32 ] ||
	fail "streamd's RSS grew by $grow MiB for one stalled viewer"
[ "$last_sent" -lt "$(size_of "$work/bulk.ts")" ] ||
	fail "the viewer that never reads was sent all of bulk: no stall"
pass "(f) a viewer that never reads stalls at $last_sent bytes of" \
	"$(size_of "$work/bulk.ts") and is cut after $gone s (idle_timeout" \
	"$IDLE_S s); RSS $((rss0 / 1048576)) MiB, at most +$grow MiB meanwhile"

# --- the legitimate client ------------------------------------------------
wait_rc "$push_pid" 40
[ "$rc" = 0 ] || fail "the encoder (ffmpeg) failed with status $rc"
wait_rc "$viewer_pid" 15
[ "$rc" = 0 ] ||
	fail "the live viewer: curl status $rc: $(cat "$work/viewer.err")"
expect_decodes "$work/viewer.ts" "the live viewer's capture"
wait_rc "$poll_pid" 15
[ "$(json_get "$work/poll.json" .errors)" = 0 ] ||
	fail "the /streams poller saw $(json_get "$work/poll.json" .errors) errors"
lat=$(json_get "$work/poll.json" .max_latency_s)
check "$lat < 1" || fail "a /streams reply took $lat s"
wait_live cam1 false 10
http /streams/cam1/data.ts "$work/cam1-data.ts"
expect_code 200 "GET /streams/cam1/data.ts"
expect_same_bytes "$work/cam1-data.ts" "$work/cam1.ts" "cam1 after the abuse"
pass "the legitimate client: cam1 recorded byte for byte" \
	"($(size_of "$work/cam1.ts") bytes), the live viewer got" \
	"$(size_of "$work/viewer.ts") bytes that decode, $(json_get \
	"$work/poll.json" .requests) /streams polls without error, slowest $lat s"
stop_streamd
pass "streamd stops cleanly"
echo "all abuse checks passed"
