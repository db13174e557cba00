# Shared set-up of the streamd shell integration tests (record.sh,
# timeshift.sh, hls.sh, range.sh, load.sh, badinput.sh, admin.sh), sourced
# by each as `. "$(dirname "$0")/lib.sh"` (and by tests/djmfs/torture.sh,
# which records its volumes through streamd).  They start the real daemon in
# its embedded mode (a fresh data directory with its own DJMFS volume, an
# ephemeral port on 127.0.0.1) and talk to it with real clients: ffmpeg
# pushes and plays, ffprobe checks what came back, curl does the rest.
# It finds the daemon ($STREAMD, else the build tree), skips with 77 when
# the daemon or a client is missing, makes a scratch directory that an
# EXIT trap removes after stopping every background job, and has helpers
# for HTTP, JSON, md5 and tolerant number checks.  The helpers every
# component shares (the device profiles, pass, fail, wait_pid, wait_rc,
# stop_jobs) come from tests/lib-common.sh, which it sources.  Messages:
# "ok: ..." on stdout for each check passed, "FAIL: ..." (plus the tails
# of the logs in the scratch directory) on stderr before exit 1,
# "SKIP: ..." before 77.
#
# How a push works (push_pattern): ffmpeg encodes a test pattern in real
# time (-re) and its tee muxer sends the same packets to two mpegts
# muxers, one writing a local file and one doing a chunked HTTP PUT to
# /record/NAME.  Both muxers get identical packets and options, so they
# emit identical bytes: the local file is exactly what the daemon was
# sent, and a recording's data.ts must have the same md5.
#
# Globals: work (scratch directory), data_dir, URL (http://HOST:PORT of
# the running daemon), streamd_pid, push_pid (start_push's ffmpeg), code
# (the status of the last http call), rc (wait_rc's result).
# Bash only; meant for `set -euo pipefail` scripts.
# shellcheck shell=bash disable=SC2034 # globals the scripts read

# shellcheck source=SCRIPTDIR/../lib-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib-common.sh"

fail_tail_lines=15 # lib-common.sh's fail: the last 15 lines of each log
streamd_pid=
push_pid=
URL=
GOP=2 # seconds: every push uses -g 50 at 25 fps

# --- Programs -------------------------------------------------------

# need_streamd: sets and exports STREAMD (environment, else the build
# tree seen from its top or from the program's own directory); skips
# (77) when it is not built.
need_streamd() {
	local c
	if [ -z "${STREAMD:-}" ]; then
		for c in ./streamd/streamd ./streamd \
			"$tests_top_srcdir/build/streamd/streamd"; do
			if [ -f "$c" ] && [ -x "$c" ]; then
				STREAMD=$c
				break
			fi
		done
	fi
	export STREAMD=${STREAMD:-./streamd/streamd}
	if [ ! -f "$STREAMD" ] || [ ! -x "$STREAMD" ]; then
		echo "SKIP: $STREAMD not built (set STREAMD)" >&2
		exit 77
	fi
	# The daemon runs in the scratch directory: make the path absolute.
	STREAMD=$(cd "$(dirname "$STREAMD")" && pwd)/$(basename "$STREAMD")
}

# find_djmfs_tools: sets DJMFS and DJMFSD (environment, else the build
# tree) for offline checks of a stopped daemon's volume; returns 1 when
# they are not built (the caller skips those checks, not the test).
find_djmfs_tools() {
	local v c
	for v in DJMFS DJMFSD; do
		[ -n "${!v:-}" ] && continue
		for c in "./djmfs/${v,,}" "$tests_top_srcdir/build/djmfs/${v,,}"; do
			if [ -f "$c" ] && [ -x "$c" ]; then
				printf -v "$v" '%s' "$c"
				break
			fi
		done
	done
	[ -x "${DJMFS:-/nonexistent}" ] && [ -x "${DJMFSD:-/nonexistent}" ]
}

# need_clients: ffmpeg (with libx264 and the lavfi test sources), ffprobe
# and curl, else skip (77).
# need_python3: skips the test (77) when python3 is missing, as the raw
# HTTP clients and stream checks of several tests are written in it.
need_python3() {
	if ! command -v python3 >/dev/null 2>&1; then
		echo "SKIP: python3 is not installed" >&2
		exit 77
	fi
}

need_clients() {
	local p
	for p in ffmpeg ffprobe curl; do
		if ! command -v "$p" >/dev/null 2>&1; then
			echo "SKIP: $p is not installed" >&2
			exit 77
		fi
	done
	# Not "ffmpeg | grep -q": grep quitting early fails the pipe.
	case $(ffmpeg -hide_banner -encoders 2>/dev/null) in
	*' libx264 '*) ;;
	*)
		echo "SKIP: ffmpeg has no libx264 encoder" >&2
		exit 77
		;;
	esac
}

# --- Scratch directory and cleanup -----------------------------------

# make_workdir NAME: a fresh scratch directory in $work (TMPDIR or /tmp),
# removed on exit once the background jobs are stopped.
make_workdir() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/streamd-$1.XXXXXX")
	data_dir=$work/data
	trap cleanup EXIT
	trap 'exit 1' HUP INT TERM
}

# cleanup: the EXIT trap.  SIGTERM first, so that the daemon can close
# its recordings; SIGKILL whatever is left after 10 s.  STREAMD_KEEP=1
# keeps the scratch directory for a post-mortem.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	stop_jobs 10
	if [ -n "${work:-}" ]; then
		if [ "${STREAMD_KEEP:-0}" = 1 ]; then
			echo "scratch directory kept: $work" >&2
		else
			rm -rf "$work"
		fi
	fi
}

note() { echo "note: $*"; }

# wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s for up to SECONDS;
# fails when it never succeeds or when the daemon dies meanwhile.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		if "$@"; then return 0; fi
		if [ -n "$streamd_pid" ] && ! kill -0 "$streamd_pid" 2>/dev/null; then
			fail "streamd died while waiting for $what"
		fi
		sleep 0.1
	done
	fail "timed out after ${secs}s waiting for $what"
}

# --- The daemon ------------------------------------------------------

# start_streamd [STREAMD OPTION...]: starts streamd on $data_dir (created
# on the first start, reused afterwards), on an ephemeral port, logging
# to $work/streamd.log and $work/access.log; returns once the log says
# "listening on http://HOST:PORT/", with URL exported.  Skips (77) when
# the daemon says the machine lacks io_uring or direct I/O.
start_streamd() {
	local from
	mkdir -p "$data_dir"
	touch "$work/streamd.log"
	from=$(($(wc -c <"$work/streamd.log") + 1))
	(cd "$work" && exec "$STREAMD" --data-dir "$data_dir" \
		--listen 127.0.0.1:0 --volume-size 1GiB \
		--error-log "$work/streamd.log" --access-log "$work/access.log" \
		"$@" >>"$work/streamd.out" 2>>"$work/streamd.err") &
	streamd_pid=$!
	URL=
	for _ in $(seq 150); do
		# Not the admin listener's line (admin_listen).
		URL=$(tail -c +"$from" "$work/streamd.log" |
			sed -n '/admin listening on/d
				s|.*listening on \(http://[^/ ]*\)/.*|\1|p;T;q')
		[ -z "$URL" ] || break
		if ! kill -0 "$streamd_pid" 2>/dev/null; then
			wait_rc "$streamd_pid" 1
			streamd_pid=
			skip_if_no_direct_io "$from"
			fail "streamd exited with status $rc before listening"
		fi
		sleep 0.1
	done
	[ -n "$URL" ] || fail "streamd did not say where it listens within 15 s"
	export URL
}

# skip_if_no_direct_io FROM: exits 77 when the error log (from byte FROM)
# says the volume could not be used for want of io_uring or O_DIRECT.
skip_if_no_direct_io() {
	local why
	why=$(tail -c +"$1" "$work/streamd.log" 2>/dev/null |
		grep -E 'ENOSYS|EOPNOTSUPP|io_uring|not implemented|not supported' |
		head -n 1) || true
	if [ -n "$why" ]; then
		echo "SKIP: no io_uring/direct I/O here: $why" >&2
		exit 77
	fi
}

# stop_streamd: SIGTERM; streamd must end with status 0 within 10 s.
stop_streamd() {
	kill -TERM "$streamd_pid"
	wait_rc "$streamd_pid" 10
	[ "$rc" -ne 124 ] || fail "streamd still runs 10 s after SIGTERM"
	[ "$rc" -eq 0 ] || fail "streamd stopped with status $rc"
	streamd_pid=
}

# --- HTTP ------------------------------------------------------------

# http PATH OUT [CURL OPTION...]: GET (or whatever the options say) of
# $URL$PATH, the body in OUT, the status in $code (000: no answer).
# Response headers go to OUT.h.
http() {
	local path=$1 out=$2
	shift 2
	code=$(curl -sS --path-as-is --max-time 30 -o "$out" -D "$out.h" \
		-w '%{http_code}' "$@" "$URL$path" 2>>"$work/curl.err") || true
	[ -n "$code" ] || code=000
}

# expect_code WANT WHAT: fails unless the last http call answered WANT.
expect_code() {
	[ "$code" = "$1" ] || fail "$2: HTTP $code, expected $1"
}

# header FILE.h NAME: the value of response header NAME (last one).
header() {
	tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN { n = tolower(n) }
		{ i = index($0, ":") }
		i && tolower(substr($0, 1, i - 1)) == n {
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v }
		END { print last }'
}

# push_body NAME FILE [CURL OPTION...]: uploads FILE to /record/NAME with
# curl (chunked PUT, no 100-continue wait); the status in $code.  For
# bodies that are not a live encoder's: refusals, junk.  (Not -T: with a
# URL ending in "/" or ".." curl appends the file's name to it.)
push_body() {
	local name=$1 file=$2
	shift 2
	http "/record/$name" "$work/push-body.out" -X PUT --data-binary "@$file" \
		-H 'Content-Type: video/mp2t' -H 'Transfer-Encoding: chunked' \
		-H 'Expect:' "$@"
}

# --- Encoders --------------------------------------------------------

# The pattern every push sends: 320x240 testsrc at 25 fps in H.264 with a
# 2 s closed GOP, a sine in AAC, in MPEG-TS.  pattern_args [-re]: the
# inputs (read in real time with -re) and the codec options.
pattern_args() {
	echo "$@" -f lavfi -i testsrc=size=320x240:rate=25 "$@" -f lavfi -i sine \
		-c:v libx264 -preset veryfast -g 50 -keyint_min 50 \
		-sc_threshold 0 -pix_fmt yuv420p -c:a aac -map 0:v -map 1:a
}

# push_pattern NAME SECONDS [FFMPEG OUTPUT OPTION...]: pushes SECONDS of
# the pattern in real time to /record/NAME$push_query, keeping the same
# bytes in $push_file (default $work/NAME.ts), with the MPEG-TS muxer
# options $push_mux (e.g. muxrate=4000000); ffmpeg's errors go to
# $work/push-NAME.err.  Returns ffmpeg's status.
push_pattern() {
	local name=$1 secs=$2 file=${push_file:-$work/$1.ts}
	local mux=${push_mux:+:$push_mux}
	shift 2
	# shellcheck disable=SC2046 # pattern_args is meant to split
	ffmpeg -nostdin -hide_banner -v error $(pattern_args -re) -t "$secs" "$@" \
		-f tee "[f=mpegts$mux]$file|[f=mpegts$mux:method=PUT]$URL/record/$name${push_query:-}" \
		2>>"$work/push-$name.err"
}

# start_push NAME SECONDS [OPTION...]: push_pattern in the background;
# sets push_pid.
start_push() {
	push_pattern "$@" &
	push_pid=$!
}

# need_soak: sets STREAMD_SOAK to the built streamd-soak (unless set),
# or skips the test.
need_soak() {
	local c
	if [ -z "${STREAMD_SOAK:-}" ]; then
		for c in ./streamd/streamd-soak "$(dirname "$STREAMD")/streamd-soak"; do
			if [ -f "$c" ] && [ -x "$c" ]; then
				STREAMD_SOAK=$c
				break
			fi
		done
	fi
	if [ ! -x "${STREAMD_SOAK:-/nonexistent}" ]; then
		echo "SKIP: streamd-soak not built (set STREAMD_SOAK)" >&2
		exit 77
	fi
}

# soak_bad_usage ARGS: streamd-soak with ARGS (split on blanks) must end
# with status 2 and a message, and print no result.
soak_bad_usage() {
	local rc=0
	# shellcheck disable=SC2086 # split on purpose
	"$STREAMD_SOAK" $1 >"$work/usage.out" 2>"$work/usage.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "'$1': exit $rc, expected 2"
	[ -s "$work/usage.err" ] || fail "'$1': no message"
	[ ! -s "$work/usage.out" ] || fail "'$1': printed a result"
}

# soak_seconds T: a soak duration (60s, 30m, 24h or seconds) in seconds.
soak_seconds() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

# metric_in FILE NAME: the value of an unlabelled Prometheus metric in a
# saved /metrics answer (nothing when absent).
metric_in() { awk -v m="$2" '$1 == m { print $2 }' "$1"; }

# make_pattern FILE SECONDS: the pattern as a file, as fast as possible.
make_pattern() {
	# shellcheck disable=SC2046
	ffmpeg -nostdin -hide_banner -v error $(pattern_args) -t "$2" -y \
		-f mpegts "$1" 2>>"$work/ffmpeg.err" || fail "making $1"
}

# --- JSON ------------------------------------------------------------

# json_flat: reads one JSON text, prints one "PATH<TAB>VALUE" line per
# scalar (PATH like .a.b, [0].name, .gaps[1].start; strings unquoted
# with the common escapes undone) and "PATH#<TAB>N" for each array's
# length.  Plain POSIX awk: no jq or python needed.
json_flat() {
	awk '
	function ws() { while (p <= n && index(" \t\r\n", substr(s, p, 1))) p++ }
	function str(   c, o) {
		o = ""; p++
		while (p <= n) {
			c = substr(s, p, 1)
			if (c == "\"") { p++; return o }
			if (c == "\\") {
				p++; c = substr(s, p, 1)
				if (c == "n") c = "\n"; else if (c == "t") c = "\t"
				else if (c == "u") { c = "\\u" substr(s, p + 1, 4); p += 4 }
			}
			o = o c; p++
		}
		return o
	}
	function val(path,   c, k, i, v) {
		ws(); c = substr(s, p, 1)
		if (c == "{") {
			p++; ws()
			if (substr(s, p, 1) == "}") { p++; return }
			while (p <= n) {
				ws(); k = str(); ws(); p++ # the colon
				val(path "." k); ws(); c = substr(s, p++, 1)
				if (c != ",") return
			}
		} else if (c == "[") {
			p++; ws(); i = 0
			if (substr(s, p, 1) == "]") { p++; print path "#\t0"; return }
			while (p <= n) {
				val(path "[" i "]"); i++; ws(); c = substr(s, p++, 1)
				if (c != ",") break
			}
			print path "#\t" i
		} else if (c == "\"") {
			print path "\t" str()
		} else {
			v = ""
			while (p <= n && !index(",}] \t\r\n", substr(s, p, 1)))
				v = v substr(s, p++, 1)
			print path "\t" v
		}
	}
	{ s = s $0 "\n" }
	END { n = length(s); p = 1; val("") }'
}

# json_get FILE PATH: the value at PATH (json_flat's notation) in FILE, or
# nothing.
json_get() {
	json_flat <"$1" | awk -F '\t' -v k="$2" '$1 == k { print $2; exit }'
}

# stream_field LIST.json NAME FIELD: FIELD of recording NAME in a
# /streams answer, or nothing when NAME is not listed.
stream_field() {
	json_flat <"$1" | awk -F '\t' -v name="$2" -v f="$3" '
		match($1, /^\[[0-9]+\]\./) {
			i = substr($1, 1, RLENGTH - 1); k = substr($1, RLENGTH + 1)
			vals[i, k] = $2; if (k == "name") idx[$2] = i }
		END { if (name in idx) print vals[idx[name], f] }'
}

# streams_list OUT: GET /streams into OUT, checking it answers 200.
streams_list() {
	http /streams "$1"
	expect_code 200 "GET /streams"
}

# is_live NAME WANT: /streams shows NAME with live WANT (true/false).
is_live() {
	http /streams "$work/live-poll.json"
	[ "$code" = 200 ] &&
		[ "$(stream_field "$work/live-poll.json" "$1" live)" = "$2" ]
}

# wait_live NAME WANT SECONDS
wait_live() {
	wait_for "$3" "$1 live=$2" is_live "$1" "$2"
}

# --- Files, numbers, times --------------------------------------------

md5_of() { md5sum <"$1" | cut -d ' ' -f 1; }
size_of() { wc -c <"$1" | tr -d ' '; }

# expect_same_bytes GOT WANT WHAT: md5 (and size) of two files agree.
expect_same_bytes() {
	local g w
	g=$(md5_of "$1")
	w=$(md5_of "$2")
	[ "$g" = "$w" ] ||
		fail "$3: md5 $g ($(size_of "$1") bytes) != $w ($(size_of "$2") bytes)"
}

# calc EXPR: EXPR evaluated by awk (floating point).
calc() { awk "BEGIN { printf \"%.6f\n\", $1 }"; }

# r3 EXPR: EXPR rounded to 3 decimals, for messages.
r3() { awk "BEGIN { printf \"%.3f\n\", $1 }"; }

# check EXPR: awk's truth of EXPR.
check() { awk "BEGIN { exit !($1) }"; }

# near A B TOL: |A - B| <= TOL.
near() { check "($1) - ($2) <= ($3) && ($2) - ($1) <= ($3)"; }

# now: wall clock, seconds with ns.
now() { date +%s.%N; }

# epoch_of TIME: seconds since the epoch of an ISO-8601 date-time or a
# number of seconds (numbers above 1e15 are taken as ns).
epoch_of() {
	case $1 in
	*T*) date -u -d "$1" +%s.%N ;;
	*) awk -v t="$1" 'BEGIN { printf "%.6f\n", t > 1e15 ? t / 1e9 : t }' ;;
	esac
}

# sleep_until SECONDS: sleeps until SECONDS after $t0 (the caller's start
# time, from now), not at all when that has passed.
sleep_until() {
	local s
	s=$(calc "$1 - ($(now) - $t0)")
	if check "$s > 0"; then sleep "$s"; fi
}

# timed: copies standard input to standard output, each line prefixed
# with the seconds since it started (players' logs, to tell when).
timed() {
	local t0=$EPOCHREALTIME l
	while IFS= read -r l; do
		printf '%.2f %s\n' "$(calc "$EPOCHREALTIME - $t0")" "$l"
	done
}

# iso_of SECONDS: "2026-11-21T10:00:00.250Z".
iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%3NZ; }

# pts_seconds PTS: a JSON pts as seconds (90 kHz ticks; a value with a
# decimal point is taken as seconds already).
pts_seconds() {
	case $1 in
	*.*) echo "$1" ;;
	*) calc "$1 / 90000" ;;
	esac
}

# --- Media checks ------------------------------------------------------

# decode_errors FILE: what ffprobe (every frame decoded) and ffmpeg
# (decoding into the null muxer) say at level error; empty when clean.
# Lines matching the regex $decode_ignore are dropped; $decode_secs, when
# set, limits both to the first that many seconds of FILE (a capture cut
# off mid-frame cannot decode its last frame).
decode_errors() {
	local lim=() iv=()
	if [ -n "${decode_secs:-}" ]; then
		lim=(-t "$decode_secs")
		iv=(-read_intervals "%+$decode_secs")
	fi
	{
		ffprobe -v error "${iv[@]}" -show_frames -of compact "$1" 2>&1 >/dev/null
		ffmpeg -nostdin -v error "${lim[@]}" -i "$1" -f null - 2>&1
	} | grep -Ev "${decode_ignore:-^\$}" || true
}

# expect_decodes FILE WHAT: FILE has a video stream and decodes without a
# single error line.
expect_decodes() {
	local errs
	[ -s "$1" ] || fail "$2: empty output"
	errs=$(decode_errors "$1")
	[ -z "$errs" ] || fail "$2: decode errors: $(echo "$errs" | head -n 5)"
	[ "$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name \
		-of csv=p=0 "$1" | sed -n 1p)" = h264 ] || fail "$2: no H.264 video in it"
}

# media_duration FILE: ffprobe's format duration, seconds.
media_duration() {
	ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"
}

# video_start FILE: the first video pts, seconds.  (A TS lists its
# streams twice, under the program and on their own: the first line.)
video_start() {
	ffprobe -v error -select_streams v:0 -show_entries stream=start_time \
		-of csv=p=0 "$1" | sed -n 1p
}
