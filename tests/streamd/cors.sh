#!/usr/bin/env bash
# Cross-origin (CORS) test of streamd: with cors_origins listing a page's
# origin, a browser's preflight (OPTIONS with Origin and
# Access-Control-Request-*) on a stream's playlist answers 204 with the
# origin echoed, the methods the path allows, the request headers a player
# sends (Range, Authorization) and a max age; the playlist, a byte range
# of data.ts and an error answer all carry Access-Control-Allow-Origin and
# expose Content-Range; an origin not listed gets no CORS header at all,
# so a browser refuses it.  PUT /admin/config changes the list at run
# time ("*", then none), a malformed list is refused with 400, and a
# daemon started without cors_origins sends no CORS header while OPTIONS
# still answers 204 with Allow (RFC 9110, 9.3.7) and an unknown path 404.
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
make_workdir cors

PAGE=http://127.0.0.1:8000       # a listed origin
OTHER=https://player.example     # listed too
STRANGER=http://evil.example:8080 # never listed

# has FILE.h NAME WANT WHAT: header NAME contains WANT (case-insensitive).
has() {
	local v
	v=$(header "$1" "$2")
	case ${v,,} in
	*"${3,,}"*) ;;
	*) fail "$4: $2 is '$v', expected it to contain '$3'" ;;
	esac
}

# lacks FILE.h NAME WHAT: no header NAME.
lacks() {
	! tr -d '\r' <"$1" | grep -qi "^$2:" ||
		fail "$3: has $(tr -d '\r' <"$1" | grep -i "^$2:")"
}

# preflight PATH ORIGIN METHOD OUT: a browser's OPTIONS before METHOD.
preflight() {
	http "$1" "$4" -X OPTIONS -H "Origin: $2" \
		-H "Access-Control-Request-Method: $3" \
		-H 'Access-Control-Request-Headers: range'
}

# put_config BODY: PUT BODY to /admin/config.
put_config() {
	http /admin/config "$work/put.out" -X PUT \
		-H 'Content-Type: application/json' --data-binary "$1"
}

# playlist_ready: index.m3u8 answers 200 (a first segment is complete).
playlist_ready() {
	http /streams/cam1/index.m3u8 "$work/ready.m3u8"
	[ "$code" = 200 ]
}

start_streamd --cors-origins "$PAGE,$OTHER"
pass "streamd listens on $URL with cors_origins $PAGE,$OTHER"
start_push cam1 12
wait_live cam1 true 10
wait_for 15 "a first HLS segment" playlist_ready

# --- Preflight from a listed origin. -------------------------------------
pl=/streams/cam1/index.m3u8
preflight $pl $PAGE GET "$work/pre.out"
expect_code 204 "preflight of $pl from $PAGE"
[ "$(header "$work/pre.out.h" Access-Control-Allow-Origin)" = $PAGE ] ||
	fail "preflight: Access-Control-Allow-Origin '$(header "$work/pre.out.h" \
		Access-Control-Allow-Origin)', expected $PAGE"
has "$work/pre.out.h" Vary Origin "preflight"
has "$work/pre.out.h" Access-Control-Allow-Methods GET "preflight"
has "$work/pre.out.h" Access-Control-Allow-Headers Range "preflight"
has "$work/pre.out.h" Access-Control-Allow-Headers Authorization "preflight"
[ "$(header "$work/pre.out.h" Access-Control-Max-Age)" = 600 ] ||
	fail "preflight: Access-Control-Max-Age '$(header "$work/pre.out.h" \
		Access-Control-Max-Age)', expected 600"
[ "$(header "$work/pre.out.h" Allow)" = "GET, HEAD, OPTIONS" ] ||
	fail "preflight: Allow '$(header "$work/pre.out.h" Allow)'"
pass "preflight of $pl: 204, origin $PAGE echoed, methods" \
	"'$(header "$work/pre.out.h" Access-Control-Allow-Methods)', headers" \
	"'$(header "$work/pre.out.h" Access-Control-Allow-Headers)', max age" \
	"$(header "$work/pre.out.h" Access-Control-Max-Age) s"

preflight /record/cam2 $OTHER PUT "$work/pre-rec.out"
expect_code 204 "preflight of /record/cam2"
[ "$(header "$work/pre-rec.out.h" Access-Control-Allow-Methods)" = \
	"PUT, POST, OPTIONS" ] ||
	fail "preflight of /record/cam2: methods '$(header "$work/pre-rec.out.h" \
		Access-Control-Allow-Methods)'"
preflight /admin/config $OTHER PUT "$work/pre-adm.out"
expect_code 204 "preflight of /admin/config"
[ "$(header "$work/pre-adm.out.h" Allow)" = "GET, HEAD, PUT, OPTIONS" ] ||
	fail "preflight of /admin/config: Allow '$(header "$work/pre-adm.out.h" Allow)'"
pass "preflights: /record/ allows '$(header "$work/pre-rec.out.h" \
	Access-Control-Allow-Methods)', /admin/config '$(header \
	"$work/pre-adm.out.h" Access-Control-Allow-Methods)'"

# --- Requests from a listed origin. --------------------------------------
http $pl "$work/pl.m3u8" -H "Origin: $PAGE"
expect_code 200 "GET $pl from $PAGE"
[ "$(header "$work/pl.m3u8.h" Access-Control-Allow-Origin)" = $PAGE ] ||
	fail "GET $pl: no Access-Control-Allow-Origin $PAGE"
has "$work/pl.m3u8.h" Vary Origin "GET $pl"
for h in Content-Range Accept-Ranges Content-Length X-Streamd-Start \
	X-Streamd-Offset; do
	has "$work/pl.m3u8.h" Access-Control-Expose-Headers $h "GET $pl"
done
pass "GET $pl from $PAGE: 200, $(grep -c '^#EXTINF' "$work/pl.m3u8") segments," \
	"exposes '$(header "$work/pl.m3u8.h" Access-Control-Expose-Headers)'"

http /streams/cam1/data.ts "$work/range.ts" -H "Origin: $OTHER" \
	-H 'Range: bytes=0-1879'
expect_code 206 "Range GET of data.ts from $OTHER"
[ "$(header "$work/range.ts.h" Access-Control-Allow-Origin)" = $OTHER ] ||
	fail "Range GET of data.ts: no Access-Control-Allow-Origin $OTHER"
cr=$(header "$work/range.ts.h" Content-Range)
case $cr in
"bytes 0-1879/"[0-9]*) ;;
*) fail "Range GET of data.ts: Content-Range '$cr'" ;;
esac
has "$work/range.ts.h" Access-Control-Expose-Headers Content-Range "Range GET"
[ "$(size_of "$work/range.ts")" = 1880 ] ||
	fail "Range GET of data.ts: $(size_of "$work/range.ts") bytes, expected 1880"
pass "Range GET of data.ts from $OTHER: 206, '$cr' exposed, 1880 bytes"

http /streams/nosuch/index.m3u8 "$work/404.out" -H "Origin: $PAGE"
expect_code 404 "GET of a missing stream"
[ "$(header "$work/404.out.h" Access-Control-Allow-Origin)" = $PAGE ] ||
	fail "a 404 lacks Access-Control-Allow-Origin: a page could not read it"
http $pl "$work/405.out" -X DELETE -H "Origin: $PAGE"
expect_code 405 "DELETE $pl"
[ "$(header "$work/405.out.h" Allow)" = "GET, HEAD, OPTIONS" ] ||
	fail "405: Allow '$(header "$work/405.out.h" Allow)'"
pass "errors carry CORS too: 404 with the origin, 405 with Allow" \
	"'$(header "$work/405.out.h" Allow)'"

# --- An origin not listed. -----------------------------------------------
http $pl "$work/stranger.m3u8" -H "Origin: $STRANGER"
expect_code 200 "GET $pl from $STRANGER"
lacks "$work/stranger.m3u8.h" Access-Control-Allow-Origin "GET from $STRANGER"
lacks "$work/stranger.m3u8.h" Access-Control-Expose-Headers "GET from $STRANGER"
has "$work/stranger.m3u8.h" Vary Origin "GET from $STRANGER"
preflight $pl $STRANGER GET "$work/pre-stranger.out"
expect_code 204 "preflight from $STRANGER"
lacks "$work/pre-stranger.out.h" Access-Control-Allow-Origin "preflight from $STRANGER"
lacks "$work/pre-stranger.out.h" Access-Control-Allow-Methods "preflight from $STRANGER"
has "$work/pre-stranger.out.h" Allow GET "preflight from $STRANGER"
http $pl "$work/noorigin.m3u8"
lacks "$work/noorigin.m3u8.h" Access-Control-Allow-Origin "GET without Origin"
pass "origin $STRANGER (not listed): no Access-Control-* header on GET or" \
	"preflight (204, Allow '$(header "$work/pre-stranger.out.h" Allow)')"

# --- Changed at run time. ------------------------------------------------
put_config '{"cors_origins":"*"}'
expect_code 200 "PUT cors_origins *"
[ "$(json_get "$work/put.out" .cors_origins)" = "*" ] ||
	fail "PUT cors_origins *: $(cat "$work/put.out")"
http $pl "$work/any.m3u8" -H "Origin: $STRANGER"
[ "$(header "$work/any.m3u8.h" Access-Control-Allow-Origin)" = "*" ] ||
	fail "with *: Access-Control-Allow-Origin '$(header "$work/any.m3u8.h" \
		Access-Control-Allow-Origin)'"
lacks "$work/any.m3u8.h" Vary "with *"
pass "PUT /admin/config cors_origins=*: $STRANGER now gets Access-Control-Allow-Origin: *"

put_config '{"cors_origins":"http://a.example/"}'
expect_code 400 "PUT a cors_origins with a path"
grep -q cors_origins "$work/put.out" || fail "400 says: $(cat "$work/put.out")"
bad=$(json_get "$work/put.out" .error)
put_config '{"cors_origins":"http://a.example:80"}'
expect_code 400 "PUT a cors_origins with the default port"
http /admin/config "$work/knobs.json"
[ "$(json_get "$work/knobs.json" .cors_origins)" = "*" ] ||
	fail "a refused PUT changed cors_origins: $(cat "$work/knobs.json")"
pass "a bad cors_origins is refused with 400 ($bad), the knob unchanged"

put_config '{"cors_origins":""}'
expect_code 200 "PUT cors_origins empty"
http $pl "$work/none.m3u8" -H "Origin: $PAGE"
lacks "$work/none.m3u8.h" Access-Control-Allow-Origin "with cors_origins empty"
pass "PUT /admin/config cors_origins='': $PAGE no longer gets CORS headers"

wait_rc "$push_pid" 30
[ "$rc" -eq 0 ] || fail "ffmpeg push ended with status $rc"
wait_live cam1 false 10
stop_streamd

# --- A daemon without cors_origins. --------------------------------------
start_streamd
http $pl "$work/off.m3u8" -H "Origin: $PAGE"
expect_code 200 "GET $pl without cors_origins"
lacks "$work/off.m3u8.h" Access-Control-Allow-Origin "without cors_origins"
lacks "$work/off.m3u8.h" Vary "without cors_origins"
preflight $pl $PAGE GET "$work/off-pre.out"
expect_code 204 "OPTIONS without cors_origins"
[ "$(header "$work/off-pre.out.h" Allow)" = "GET, HEAD, OPTIONS" ] ||
	fail "OPTIONS without cors_origins: Allow '$(header "$work/off-pre.out.h" Allow)'"
lacks "$work/off-pre.out.h" Access-Control-Allow-Origin "OPTIONS without cors_origins"
http /nosuch "$work/off-404.out" -X OPTIONS -H "Origin: $PAGE"
expect_code 404 "OPTIONS on an unknown path"
pass "without cors_origins: no CORS header, OPTIONS 204 with Allow" \
	"'$(header "$work/off-pre.out.h" Allow)', unknown path 404"

curl -sS "$URL/metrics" >"$work/metrics.txt"
n204=$(sed -n 's/^streamd_http_requests_total{code="204"} //p' "$work/metrics.txt")
[ "${n204:-0}" -ge 1 ] || fail "metrics count no 204: '$n204'"
grep -q '"OPTIONS /streams/cam1/index.m3u8 HTTP/1.1" 204' "$work/access.log" ||
	fail "the access log has no OPTIONS line: $(tail -n 3 "$work/access.log")"
pass "OPTIONS counted in metrics (code 204: $n204) and in the access log"
stop_streamd
