#!/usr/bin/env bash
# streamd in the cluster form (an external djmfsd on TCP loopback, streamd
# pointed at it with --djmfs and --volume) while djmfsd is killed with
# SIGKILL in the middle of a recording and started again on the same
# address and volume.  libdjmfs inside streamd reconnects by itself: the
# encoder's push goes on without reconnecting (one PUT from start to
# end), and afterwards the recording's data.ts has the md5 of what was
# pushed, its published size is at least what /streams/NAME showed
# before the kill, streamd logged the loss and the restore, a player
# started after the restart plays, and the offline fsck of the volume is
# clean once both daemons stopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
find_djmfs_tools || {
	echo "SKIP: djmfs and djmfsd are not built" >&2
	exit 77
}
make_workdir djmfs-restart
PUSH_SECONDS=16

vol=$work/shared.img
"$DJMFS" mkfs "$vol" --size 1G >/dev/null || fail "djmfs mkfs"

# start_djmfsd ADDR: djmfsd on $vol at tcp ADDR (port 0: any), its log
# appended to $work/djmfsd.log; sets djmfsd_pid and port.
start_djmfsd() {
	local lines
	touch "$work/djmfsd.log"
	lines=$(wc -l <"$work/djmfsd.log")
	"$DJMFSD" --volume "$vol" --tcp "$1" --lease-ms 3000 \
		>>"$work/djmfsd.log" 2>&1 &
	djmfsd_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(tail -n +"$((lines + 1))" "$work/djmfsd.log" |
			sed -n 's/.*listening on tcp:[0-9.]*:[0-9]* port \([0-9]*\).*/\1/p' |
			head -n 1) || true
		[ -n "$port" ] && return 0
		kill -0 "$djmfsd_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

start_djmfsd 127.0.0.1:0 || fail "djmfsd did not start"
pass "djmfsd serves $vol on 127.0.0.1:$port"

mkdir -p "$work/node"
(cd "$work/node" && exec "$STREAMD" --djmfs "127.0.0.1:$port" \
	--volume "$vol" --listen 127.0.0.1:0 \
	--error-log "$work/streamd.log" >"$work/streamd.out" 2>&1) &
streamd_pid=$!
URL=
for _ in $(seq 150); do
	URL=$(sed -n 's|.*listening on \(http://[^/ ]*\)/.*|\1|p' \
		"$work/streamd.log" 2>/dev/null | head -n 1) || true
	[ -n "$URL" ] && break
	sleep 0.1
done
[ -n "$URL" ] || fail "streamd did not start"
pass "streamd in the cluster form on $URL"

# --- Recording; SIGKILL of djmfsd in the middle. ---------------------
start_push cam $PUSH_SECONDS
sleep 5
http /streams/cam "$work/before.json"
expect_code 200 "GET /streams/cam before the kill"
acked=$(json_get "$work/before.json" .bytes)
[ -n "$acked" ] && [ "$acked" -gt 0 ] || fail "nothing published before the kill"
kill -9 "$djmfsd_pid"
wait "$djmfsd_pid" 2>/dev/null || true
pass "djmfsd killed mid-recording, $acked bytes published before"
sleep 0.5
ok=
for _ in $(seq 20); do
	if start_djmfsd "127.0.0.1:$port"; then
		ok=1
		break
	fi
	sleep 0.2 # the port may take a moment to be free again
done
[ -n "$ok" ] || fail "djmfsd did not restart on 127.0.0.1:$port"
pass "djmfsd restarted on the same address and volume"

wait_for 15 "streamd to restore its recording" \
	grep -q 'restored after' "$work/streamd.log"
restored=$(grep -o 'restored after .*' "$work/streamd.log" | head -n 1)
grep -q 'lost:.*reconnecting' "$work/streamd.log" ||
	fail "streamd did not log the loss"
pass "streamd's libdjmfs: $restored"

# --- A player started after the restart plays. ------------------------
sleep 3
curl -fsS -o "$work/after.ts" "$URL/streams/cam.ts?start=-4&duration=2" ||
	fail "playback after the restart"
expect_decodes "$work/after.ts" "playback started after the restart"
pass "a player started after the restart plays ($(size_of "$work/after.ts") bytes, decodes)"

# --- The push ends as if nothing happened. ----------------------------
wait_rc "$push_pid" 40
[ "$rc" -eq 0 ] || fail "the push ended with status $rc: $(cat "$work/push-cam.err")"
pass "the encoder's push went on to its end without reconnecting"
sleep 1
http /streams/cam "$work/after.json"
expect_code 200 "GET /streams/cam after the push"
bytes=$(json_get "$work/after.json" .bytes)
[ "$bytes" -ge "$acked" ] || fail "published $bytes < $acked acknowledged before the kill"
curl -fsS -o "$work/data.ts" "$URL/streams/cam/data.ts" || fail "GET data.ts"
expect_same_bytes "$work/data.ts" "$work/cam.ts" "data.ts after the restart"
pass "data.ts ($bytes bytes >= $acked) equals the $(size_of "$work/cam.ts") bytes pushed (md5 $(md5_of "$work/cam.ts"))"

# --- Offline consistency. ----------------------------------------------
kill -TERM "$streamd_pid"
wait_rc "$streamd_pid" 20
[ "$rc" -eq 0 ] || fail "streamd stopped with status $rc"
streamd_pid=
kill -TERM "$djmfsd_pid"
wait_rc "$djmfsd_pid" 10
[ "$rc" -eq 0 ] || fail "djmfsd stopped with status $rc"
rc=0
"$DJMFS" fsck "$vol" >"$work/fsck.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "fsck: exit $rc: $(cat "$work/fsck.out")"
pass "fsck finds the volume clean"
