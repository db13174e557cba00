#!/bin/bash
# The make-check soak of admission control: streamd-soak offers 120 % of
# the admission limit that streamd itself reports (--offer 120) and the
# verdict must still be ok.  An embedded streamd with its network pinned
# by --max-bandwidth, so that the limit is some twenty viewers of
# 2 Mbit/s whatever else the machine runs (disk, CPU and memory admit
# far more here); 2 recorders of the builtin generator, a 20 s warm-up,
# then the viewers for 60 s.  It checks that the soak found the limit on
# the network and offered ceil(1.2 x limit) viewers, that some were
# refused (and streamd counted those refusals on the network), that the
# admitted ones had no underflow or deadline miss and every byte they got
# was the one sent, that both recordings came back whole and streamd's
# RSS stayed flat; and, before it, that --offer with --viewers is bad
# usage and that an /admin/capacity the soak may not read is told at
# once with status 2.
#
# Environment: STREAMD, STREAMD_SOAK (defaults: the build tree's);
# STREAMD_SOAK_DURATION (default 60s: 30m for the long form).
# Exit status: 0 pass, 1 fail, 77 skipped (programs not built, no
# io_uring/direct I/O).

set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_soak

make_workdir soak-admit

# --- Bad usage: status 2, a message, no run -----------------------------
for args in "--offer 120 --viewers 10" "--offer 0" "--offer x"; do
	soak_bad_usage "$args"
done
pass "--offer with --viewers, or not a percent: status 2"

duration=${STREAMD_SOAK_DURATION:-60s}
secs=$(soak_seconds "$duration")
# As in soak.sh: deadlines that a CPU shared with the other tests does not
# miss on its own; a smaller ASan quarantine; a cache that fills during
# the warm-up.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
# 0.85 x 70 Mbit/s, less the two recorders' 4 and the last viewer's start
# (its burst: its rate again; the buffer's fill is read, not sent), holds about 23 viewers as streamd
# prices them after the warm-up.  A live recording's bitrate is measured
# up to its newest keyframe, some 10 % over the 2 Mbit/s sent at 20 s and
# 25 % at 10 s, so the price falls and a few more get in as the
# recordings age: after 20 s, 120 % of the limit stays above that.
max_bw=70M
start_streamd --publish-token soak-pub --admin-token soak-adm \
	--max-connections 512 --deadline 1 --write-deadline 2 \
	--cache-size 8M --max-bandwidth "$max_bw"

# --- /admin/capacity that may not be read: told before any recording ----
t0=$(now)
if TMPDIR=$work "$STREAMD_SOAK" --url "$URL" --offer 120 \
	--publish-token soak-pub --admin-token wrong \
	>"$work/denied.out" 2>"$work/denied.err"; then
	rc=0
else
	rc=$?
fi
[ "$rc" -eq 2 ] || fail "--offer with a wrong admin token: exit $rc, expected 2"
grep -q '/admin/capacity' "$work/denied.err" ||
	fail "--offer with a wrong admin token: no message naming /admin/capacity"
[ ! -s "$work/denied.out" ] || fail "--offer with a wrong admin token printed a result"
check "$(now) - $t0 < 5" || fail "the unreadable limit was told only after a warm-up"
pass "--offer and an /admin/capacity that answers 401: status 2 at once"

# --- The soak at 120 % -----------------------------------------------------
TMPDIR=$work "$STREAMD_SOAK" --url "$URL" --recorders 2 --offer 120 \
	--duration "$duration" --warmup 20s --interval 5s --seed 5 \
	--publish-token soak-pub --admin-token soak-adm \
	--watch-pid "$streamd_pid" --csv "$work/soak.csv" \
	>"$work/soak.json" 2>"$work/soak.err" &
soak_pid=$!
wait_rc "$soak_pid" $((secs + 60))
[ "$rc" -ne 124 ] || fail "streamd-soak still runs after $((secs + 60)) s"
if [ "$rc" -ne 0 ]; then
	grep 'violation' "$work/soak.err" >&2 || true
	fail "streamd-soak exited with $rc"
fi
json=$(tail -n 1 "$work/soak.json")
case $json in
"{"*"}") ;;
*) fail "the last line of stdout is not a JSON object: $json" ;;
esac
printf '%s\n' "$json" >"$work/last.json"
get() { json_get "$work/last.json" "$1"; }
[ "$(get .ok)" = true ] || fail "ok is $(get .ok): $(get .violations)"
[ "$(get .violations#)" = 0 ] || fail "violations listed: $json"
pass "streamd-soak --offer 120 exited 0 after warm-up 20 s + $duration"

limit=$(get .admission_limit)
offered=$(get .offered)
[ "$(get .admission_limit_resource)" = network ] ||
	fail "the limit was set by $(get .admission_limit_resource), not the network"
check "$limit >= 10 && $limit <= 40" ||
	fail "admission_limit is $limit: 70 Mbit/s holds about 24 viewers"
[ "$(get .offer_pct)" = 120 ] || fail "offer_pct is $(get .offer_pct)"
[ "$offered" = "$(awk -v l="$limit" 'BEGIN { n = 1.2 * l; c = int(n);
	if (c < n - 1e-9) c++; print c }')" ] ||
	fail "offered $offered viewers for a limit of $limit, not ceil(1.2 x $limit)"
[ "$(get .viewers)" = "$offered" ] || fail "viewers is $(get .viewers), offered $offered"
grep -q "admission limit $limit viewers .*network.*offering 120 %, $offered viewers" \
	"$work/soak.err" || fail "no line telling the limit on stderr"
pass "admission limit $limit viewers (network): $offered offered"

refused=$(get .refused)
check "$refused > 0" || fail "nobody was refused at 120 %"
[ "$(get .recorders_refused)" = 0 ] || fail "recorders_refused is $(get .recorders_refused)"
[ "$(get .http_errors)" = 0 ] || fail "http_errors is $(get .http_errors)"
if command -v curl >/dev/null 2>&1; then
	curl -sS -H 'Authorization: Bearer soak-adm' "$URL/metrics" >"$work/metrics.txt"
	net=$(awk '$1 == "streamd_admission_refused_total{reason=\"network\"}" { print $2 }' \
		"$work/metrics.txt")
	check "${net:-0} >= $refused" ||
		fail "streamd counted ${net:-none} refusals on the network, the soak $refused"
fi
pass "$refused requests refused with Retry-After, 0 HTTP errors"

[ "$(get .underflows)" = 0 ] || fail "underflows: $(get .underflows)"
[ "$(get .deadline_misses)" = 0 ] || fail "deadline_misses: $(get .deadline_misses)"
[ "$(get .mismatches)" = 0 ] || fail "mismatches is $(get .mismatches)"
verified=$(get .verified_bytes)
# The admitted viewers at 2 Mbit/s for the run: a third of that at least.
check "$verified >= $limit * 250000 * $secs / 3" ||
	fail "verified_bytes is only $verified for $limit admitted viewers"
pass "admitted viewers: 0 underflows, 0 deadline misses, $verified bytes" \
	"verified in $(get .viewer_sessions) sessions, 0 mismatches"

for i in 0 1; do
	[ "$(get ".recordings[$i].md5_ok")" = true ] ||
		fail "recording $i: md5 $(get ".recordings[$i].md5") != sent $(get ".recordings[$i].md5_sent")"
done
[ "$(get .watched#)" = 1 ] || fail "the watched pid is not in the JSON"
check "$(get .rss_growth_pct) <= 20" || fail "streamd RSS grew $(get .rss_growth_pct) %"
pass "both recordings whole; streamd rss $(get .rss_start_mb) -> $(get .rss_end_mb) MB" \
	"($(get .rss_growth_pct) %)"

stop_streamd
pass "streamd stopped cleanly"
