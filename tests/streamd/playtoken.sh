#!/usr/bin/env bash
# Signed play URLs: streamd started with --play-secret and --admin-token
# records an 8 s pattern, then every playback route of the stream answers
# 401 without a token and 403 for a tampered signature, an expired token,
# another stream's token or a malformed one; /admin/sign mints a token
# only for the admin token, and its .ts URL plays and decodes; a URL
# minted with the openssl one-liner of doc/streamd.md is accepted; the
# HLS playlist carries the token on every segment URI so ffmpeg plays the
# signed playlist end to end; the list of streams needs the admin token;
# and neither the signatures nor the secret reach the logs.
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
command -v openssl >/dev/null 2>&1 || {
	echo "SKIP: openssl is not installed" >&2
	exit 77
}
make_workdir playtoken
SECS=8
SECRET=play-secret-$$-$RANDOM
ADMIN=admin-token-$$-$RANDOM
BEARER=(-H "Authorization: Bearer $ADMIN")

# mint NAME EXPIRES: the signature, as an operator's back end makes it.
mint() {
	printf '%s\n%s' "$1" "$2" | openssl dgst -sha256 -hmac "$SECRET" |
		sed 's/^.*= *//'
}

# expect_refused PATH CODE WORD WHAT: PATH answers CODE with a JSON error
# that contains WORD.
expect_refused() {
	http "$1" "$work/refused.json"
	expect_code "$2" "$4"
	grep -qi -- "$3" "$work/refused.json" ||
		fail "$4: the error does not say '$3': $(cat "$work/refused.json")"
}

# finished NAME: the admin's list shows NAME no longer live.
finished() {
	http /streams "$work/poll.json" "${BEARER[@]}"
	[ "$code" = 200 ] &&
		[ "$(stream_field "$work/poll.json" "$1" live)" = false ]
}

make_pattern "$work/src.ts" 4
start_streamd --play-secret "$SECRET" --admin-token "$ADMIN"
pass "streamd listens on $URL with a play secret and an admin token"
# cam1 in real time, so its index has wall times to seek by.
push_pattern cam1 $SECS || fail "ffmpeg push of cam1 failed"
wait_for 10 "cam1 to close" finished cam1
push_body cam2 "$work/src.ts"
expect_code 200 "PUT /record/cam2"
pass "recorded cam1 ($SECS s in real time, $(size_of "$work/cam1.ts") bytes) and cam2"

# --- The list names every stream: the admin token. ----------------------
expect_refused /streams 401 "admin token" "GET /streams without a token"
http /streams "$work/list.json" "${BEARER[@]}"
expect_code 200 "GET /streams with the admin token"
[ -n "$(stream_field "$work/list.json" cam1 name)" ] || fail "the list lacks cam1"
pass "/streams: 401 without the admin token, 200 with it"

# --- No token: 401 on every route, saying what is needed. -------------
for p in /streams/cam1 /streams/cam1.ts /streams/cam1/data.ts \
	/streams/cam1/index.m3u8 /streams/nosuch.ts; do
	expect_refused "$p" 401 "expires=" "GET $p without a token"
done
pass "no token: 401 on the detail, .ts, data.ts and index.m3u8 (and an unknown name), naming ?expires=&sig="

# --- Minting: /admin/sign. ---------------------------------------------
http '/admin/sign?stream=cam1&ttl=300' "$work/sign.json"
expect_code 401 "GET /admin/sign without the admin token"
http '/admin/sign?stream=cam1&ttl=300' "$work/sign.json" "${BEARER[@]}"
expect_code 200 "GET /admin/sign"
query=$(json_get "$work/sign.json" .query)
exp=$(json_get "$work/sign.json" .expires)
sig=$(json_get "$work/sign.json" .sig)
ts_url=$(json_get "$work/sign.json" .urls.ts)
hls_url=$(json_get "$work/sign.json" .urls.hls)
[ "$query" = "expires=$exp&sig=$sig" ] || fail "/admin/sign query '$query'"
t=$(date +%s)
[ "$exp" -ge $((t + 290)) ] && [ "$exp" -le $((t + 310)) ] ||
	fail "/admin/sign ttl=300 gave expires $exp at $t"
[ "$sig" = "$(mint cam1 "$exp")" ] || fail "/admin/sign's sig differs from openssl's"
[ "$ts_url" = "/streams/cam1.ts?$query" ] || fail "urls.ts '$ts_url'"
for a in 'stream=..' 'stream=cam1&ttl=0' 'stream=cam1&ttl=-5' 'ttl=60' \
	'stream=cam1&ttl=99999999999999999999'; do
	http "/admin/sign?$a" "$work/bad-sign.json" "${BEARER[@]}"
	expect_code 400 "GET /admin/sign?$a"
done
pass "/admin/sign: 401 without the admin token; expires now+300 ($exp), the same sig as openssl dgst; 400 for a bad stream or ttl"

# (without start, .ts begins at the live edge: the last keyframe)
http "$ts_url&start=0" "$work/signed.ts"
expect_code 200 "GET the minted .ts URL from the start"
expect_decodes "$work/signed.ts" "the signed .ts"
d=$(media_duration "$work/signed.ts")
near "$d" $SECS 1.5 || fail "the signed .ts lasts $d s, recorded $SECS"
http "/streams/cam1?$query" "$work/detail.json"
expect_code 200 "GET the detail with the token"
http "/streams/cam1/data.ts?$query" "$work/range.ts" -r 0-187
expect_code 206 "GET a range of data.ts with the token"
pass "the minted token: .ts 200 ($d s, decodes), detail 200, data.ts range 206"

# --- Refusals: 403 with the reason. ------------------------------------
bad=${sig:0:63}$(if [ "${sig:63:1}" = 0 ]; then echo 1; else echo 0; fi)
expect_refused "/streams/cam1.ts?expires=$exp&sig=$bad" 403 signature \
	"a signature with its last digit changed"
expect_refused "/streams/cam1.ts?expires=$((exp + 1))&sig=$sig" 403 signature \
	"the expiry moved by a second"
expect_refused "/streams/cam2.ts?$query" 403 signature "cam1's token on cam2"
expect_refused "/streams/cam2/index.m3u8?$query" 403 signature \
	"cam1's token on cam2's playlist"
old=$(($(date +%s) - 10))
expect_refused "/streams/cam1.ts?expires=$old&sig=$(mint cam1 $old)" 403 expired \
	"a token that expired 10 s ago"
expect_refused "/streams/cam1.ts?expires=$exp&sig=xyz" 403 malformed \
	"a signature that is not hex"
expect_refused "/streams/cam1.ts?expires=99999999999999999999&sig=$sig" 403 \
	malformed "an expiry past int64"
pass "403: tampered sig, moved expiry, another stream's token (.ts and playlist), expired 10 s ago, non-hex sig, overflowing expires"

# --- An operator's back end mints with openssl. ------------------------
e2=$(($(date +%s) + 120))
s2=$(mint cam1 "$e2")
http "/streams/cam1.ts?start=2&duration=4&expires=$e2&sig=$s2" "$work/openssl.ts"
expect_code 200 "a URL minted with openssl"
expect_decodes "$work/openssl.ts" "the openssl-minted .ts"
pass "a URL minted with printf | openssl dgst -sha256 -hmac plays: $(media_duration "$work/openssl.ts") s, decodes"

# --- HLS: the playlist hands its token to every segment. ---------------
http "$hls_url" "$work/signed.m3u8"
expect_code 200 "GET the signed playlist"
n=$(grep -c '^#EXTINF:' "$work/signed.m3u8" || true)
[ "$n" -gt 0 ] || fail "the signed playlist lists no segment"
[ "$(grep -cxF "data.ts?$query" "$work/signed.m3u8" || true)" = "$n" ] ||
	fail "not every segment URI is data.ts?$query: $(grep -v '^#' "$work/signed.m3u8" | head -n 2)"
ffmpeg -nostdin -v error -i "$URL$hls_url" -map 0 -c copy -f mpegts \
	"$work/hls.ts" 2>"$work/hls-play.err" ||
	fail "ffmpeg could not play the signed playlist: $(head -n 5 "$work/hls-play.err")"
[ ! -s "$work/hls-play.err" ] || fail "playing the signed playlist: $(head -n 5 "$work/hls-play.err")"
expect_decodes "$work/hls.ts" "the signed playlist played through ffmpeg"
d=$(media_duration "$work/hls.ts")
near "$d" $SECS 1.5 || fail "the signed playlist played $d s, recorded $SECS"
pass "signed HLS: $n segment URIs carry the token; ffmpeg plays it end to end ($d s, decodes)"

# --- Nothing secret in the logs. ----------------------------------------
stop_streamd
pass "streamd stops cleanly on SIGTERM"
[ -s "$work/access.log" ] || fail "no access log"
lines=$(wc -l <"$work/access.log")
! grep -q 'sig=' "$work/access.log" || fail "the access log records sig=: $(grep -m1 'sig=' "$work/access.log")"
for f in "$work/access.log" "$work/streamd.log" "$work/streamd.out" "$work/streamd.err"; do
	[ -f "$f" ] || continue
	! grep -qF -e "$sig" -e "$s2" "$f" || fail "$(basename "$f") holds a signature"
	! grep -qF -e "$SECRET" "$f" || fail "$(basename "$f") holds the play secret"
done
pass "the access log ($lines lines) has no sig=, and neither log holds a signature or the secret"
echo "all playtoken checks passed"
