#!/usr/bin/env bash
# The cluster form: one external djmfsd on a volume file (TCP on
# loopback) and two streamd processes pointed at it with --djmfs and
# --volume, as two hosts sharing a SAN volume would be.  An encoder
# records through streamd A; streamd B lists the recording as live,
# refuses a second publisher of the same name with 409 (the DJMFS write
# lock, not A's local registry), serves time-shifted playback of it while
# it grows, and after the push its data.ts matches what was sent, byte
# for byte, through either daemon; so do live followers on B, which B's
# interval cache serves from what A's writer published.  The volume has a shared secret:
# djmfsd asks every client to prove it, and a streamd without it is
# refused at start with a clear message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
find_djmfs_tools || {
	echo "SKIP: djmfs and djmfsd are not built" >&2
	exit 77
}
make_workdir cluster

vol=$work/shared.img
secret=$work/volume.secret
"$DJMFS" mkfs "$vol" --size 1G >/dev/null || fail "djmfs mkfs"
"$DJMFS" secret "$secret" >/dev/null || fail "djmfs secret"
"$DJMFSD" --volume "$vol" --tcp 127.0.0.1:0 --lease-ms 3000 \
	--secret-file "$secret" \
	>"$work/djmfsd.log" 2>&1 &
djmfsd_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*listening on tcp:127.0.0.1:0 port \([0-9]*\).*/\1/p' \
		"$work/djmfsd.log" | head -n 1) || true
	[ -n "$port" ] && break
	kill -0 "$djmfsd_pid" 2>/dev/null || fail "djmfsd exited"
	sleep 0.1
done
[ -n "$port" ] || fail "djmfsd did not say its port"
pass "djmfsd serves $vol on 127.0.0.1:$port"

# start_node NAME [FLAG...]: a streamd in the cluster form, proving the
# volume's secret; sets NODE_URL.
start_node() {
	local name=$1 u=
	shift
	mkdir -p "$work/$name"
	(cd "$work/$name" && exec "$STREAMD" --djmfs "127.0.0.1:$port" \
		--volume "$vol" --listen 127.0.0.1:0 \
		--djmfs-secret-file "$secret" "$@" \
		--error-log "$work/$name.log" >"$work/$name.out" 2>&1) &
	for _ in $(seq 150); do
		u=$(sed -n 's|.*listening on \(http://[^/ ]*\)/.*|\1|p' \
			"$work/$name.log" 2>/dev/null | head -n 1) || true
		[ -n "$u" ] && break
		sleep 0.1
	done
	[ -n "$u" ] || fail "streamd $name did not start"
	NODE_URL=$u
}

# Without the secret, streamd cannot connect and says why.
mkdir -p "$work/nosecret"
rc=0
(cd "$work/nosecret" && exec "$STREAMD" --djmfs "127.0.0.1:$port" \
	--volume "$vol" --listen 127.0.0.1:0 \
	--error-log "$work/nosecret.log" >"$work/nosecret.out" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "streamd without the volume secret started"
grep -q "djmfs_connect.*Permission denied" "$work/nosecret.log" ||
	fail "streamd without the secret does not say why: $(tail -n 3 "$work/nosecret.log")"
pass "a streamd without the volume's secret is refused (exit $rc): $(grep -m1 'djmfs_connect' "$work/nosecret.log" | sed 's/.*ERROR: //')"

start_node a
url_a=$NODE_URL
start_node b
url_b=$NODE_URL
pass "two streamd nodes: $url_a and $url_b"
[ ! -e "$work/a/streamd-data" ] || fail "node a made an embedded data directory"

URL=$url_a
start_push cam 14
sleep 8
URL=$url_b
curl -fsS -o "$work/list.json" "$url_b/streams" || fail "GET /streams on node b"
[ "$(stream_field "$work/list.json" cam live)" = true ] ||
	fail "node b does not list cam as live: $(cat "$work/list.json")"
pass "node b lists the recording node a is making, live"

# Live followers on node b, a second apart: node b's cache fills from its
# own reads of what node a's writer publishes, and the ones behind take
# it from there; each must get exactly the pushed bytes, to the end.
followers=()
for ((i = 0; i < 4; i++)); do
	curl -sS --max-time 40 -D "$work/bf$i.head" -o "$work/bf$i.ts" \
		"$url_b/streams/cam.ts?start=-$((i + 1))" 2>"$work/bf$i.err" &
	followers+=($!)
done

make_pattern "$work/other.ts" 4
code=$(curl -s -o "$work/409.json" -w '%{http_code}' -X PUT \
	--data-binary @"$work/other.ts" "$url_b/record/cam") || code="curl $?"
[ "$code" = 409 ] || fail "second publisher through node b got $code, not 409"
pass "a second publisher of cam through node b gets 409"

curl -fsS -o "$work/shift.ts" "$url_b/streams/cam.ts?start=-5&duration=2" ||
	fail "time-shifted playback through node b"
errs=$(ffmpeg -nostdin -v error -i "$work/shift.ts" -f null - 2>&1) || true
[ -s "$work/shift.ts" ] && [ -z "$errs" ] ||
	fail "node b's time-shifted output does not decode: $errs"
pass "node b plays cam 5 s behind live ($(wc -c <"$work/shift.ts") bytes, decodes)"

wait_rc "$push_pid" 60
[ "$rc" -eq 0 ] || fail "the push ended with status $rc"
sleep 1
sum=$(md5sum <"$work/cam.ts" | cut -d' ' -f1)
for u in "$url_a" "$url_b"; do
	got=$(curl -fsS "$u/streams/cam/data.ts" | md5sum | cut -d' ' -f1)
	[ "$got" = "$sum" ] || fail "data.ts through $u differs from what was pushed"
done
pass "data.ts through both nodes equals the $(wc -c <"$work/cam.ts") bytes pushed (md5 $sum)"

total=$(wc -c <"$work/cam.ts")
for ((i = 0; i < ${#followers[@]}; i++)); do
	wait_rc "${followers[$i]}" 30
	[ "$rc" -eq 0 ] || fail "live follower $i on node b: status $rc: $(cat "$work/bf$i.err")"
	off=$(tr -d '\r' <"$work/bf$i.head" | sed -n 's/^X-Streamd-Offset: //ip')
	len=$(wc -c <"$work/bf$i.ts")
	[ -n "$off" ] || fail "live follower $i: no X-Streamd-Offset"
	[ $((off + len)) -eq "$total" ] ||
		fail "live follower $i got bytes $off to $((off + len)) of $total: not to the end"
	tail -c +$((off + 1)) "$work/cam.ts" | cmp -s - "$work/bf$i.ts" ||
		fail "live follower $i on node b got other bytes than pushed from $off"
done
curl -fsS -o "$work/b.metrics" "$url_b/metrics" || fail "GET /metrics on node b"
hits=$(metric_in "$work/b.metrics" streamd_cache_hits_total)
check "${hits:-0} > 0" || fail "node b's followers took nothing from its cache"
pass "node b's 4 live followers of node a's recording got exactly the pushed bytes to the end, $hits cache hits"
