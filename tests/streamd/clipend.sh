#!/usr/bin/env bash
# Clips whose end is still to be recorded: while a push runs, players ask
# for .ts clips that start just behind the live edge and end in the
# future (start=-1&duration=3 or 4, burst=0 so that each body follows the
# live edge as fast as the recording grows; 4 KiB session reads).  Each
# clip must decode without an error and end exactly on a keyframe of the
# recording, as sd_route_play.c promises for a duration: the end is the
# keyframe nearest start + duration, fixed once the index holds one at or
# past it.  A body that ran past that keyframe before the end was fixed
# would stop wherever its session's bytes happened to end (a publish, a
# block of the volume): longer than asked, and mid-frame.  The keyframes'
# offsets are the X-Streamd-Offset answers to HEAD requests for every
# start second of the finished recording.
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
make_workdir clipend
SECS=16
ROUNDS=4

# Small reads: every 4 KiB the session hands over wakes the body, so a
# body that sends without looking for its end first is caught at once
# (with 64 KiB reads one wake per period often hides it).
start_streamd --read-size 4KiB --buffer-size 64KiB
pass "streamd listens on $URL"
t0=$(now)
start_push cam1 $SECS
wait_live cam1 true 10

# --- Clips ending in the future, two per round, rounds 1.5 s apart. ---
pids=()
n=0
for ((k = 0; k < ROUNDS; k++)); do
	sleep_until "$(calc "4 + 1.5 * $k")"
	for dur in 3 4; do
		curl -sS --fail --max-time 30 -D "$work/c$n.h" -o "$work/c$n.ts" \
			"$URL/streams/cam1.ts?start=-1&duration=$dur&burst=0" \
			2>"$work/c$n.curl" &
		pids+=($!)
		n=$((n + 1))
	done
done
for ((i = 0; i < n; i++)); do
	wait_rc "${pids[$i]}" 40
	[ "$rc" -eq 0 ] || fail "clip $i: curl status $rc: $(head -n 3 "$work/c$i.curl")"
done
pass "$n clips ending in the future answered"

wait_rc "$push_pid" 30
[ "$rc" -eq 0 ] || fail "the push ended with status $rc"
wait_live cam1 false 10

# --- Where the recording's keyframes are. ----------------------------
: >"$work/keys"
for ((s = 0; s <= SECS; s++)); do
	http "/streams/cam1.ts?start=$s" "$work/key.out" -I
	expect_code 200 "HEAD /streams/cam1.ts?start=$s"
	header "$work/key.out.h" X-Streamd-Offset >>"$work/keys"
done
sort -un -o "$work/keys" "$work/keys"
[ "$(wc -l <"$work/keys")" -ge $((SECS / GOP - 1)) ] ||
	fail "only $(wc -l <"$work/keys") keyframe offsets: $(tr '\n' ' ' <"$work/keys")"
pass "keyframes at $(tr '\n' ' ' <"$work/keys")"

# --- Every clip ends on one and decodes. -----------------------------
bad=
for ((i = 0; i < n; i++)); do
	off=$(header "$work/c$i.h" X-Streamd-Offset)
	end=$((off + $(size_of "$work/c$i.ts")))
	grep -qx "$end" "$work/keys" ||
		bad="$bad clip $i [$off, $end) ends $((end % 4096)) past a 4 KiB block, not on a keyframe;"
done
[ -z "$bad" ] || fail "clips that ran past their end:$bad"
for ((i = 0; i < n; i++)); do
	expect_decodes "$work/c$i.ts" "clip $i"
done
pass "all $n clips end on a keyframe and decode cleanly"

stop_streamd
pass "streamd stops cleanly on SIGTERM"
echo "all clip end checks passed"
