#!/bin/sh
# Fuzzes streamd's parsers of untrusted input with libFuzzer under
# AddressSanitizer and UBSan: fuzz_parse (start, duration and ISO-8601
# times, Range, the knobs JSON, config files, model profiles),
# fuzz_index (the keyframe index as read from the volume, seeks,
# segments, HLS playlists) and fuzz_ingest (uploads through the ring and
# libavformat), STREAMD_FUZZ_SECONDS (default 20) each.  Each target
# starts from the seed corpus under tests/fuzz/corpus/TARGET, copied to a
# scratch directory so the source tree stays untouched.  Prints each
# target's executions and a total; exits 0 when nothing was found, 77
# (skip) without clang and libFuzzer, 1 on a finding, naming the input
# (the scratch directory is then kept so it can be replayed).
#
# Standalone:  srcdir=/path/to/tree tests/fuzz/fuzz.sh
set -u

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
SECONDS_EACH=${STREAMD_FUZZ_SECONDS:-20}

if [ ! -f "$srcdir/streamd/sd_time.c" ]; then
	echo "fuzz.sh: cannot find streamd/sd_time.c under srcdir=$srcdir" >&2
	exit 1
fi
. "$srcdir/tests/fuzz/lib.sh"
fuzz_setup streamd

S=$srcdir/streamd
CFLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$S -I$srcdir/djmfs -I$srcdir/sched -I$srcdir/common"
# The compiled-in profiles are made at build time (sched/local.mk): make
# them here as well, and leave out a copy an in-tree build left behind.
awk -f "$srcdir/sched/tools/embed-profiles.awk" "$srcdir"/sched/profiles/*.profile \
	>"$work/iosched_builtin.c" || exit 1
sched_srcs="$(ls "$srcdir"/sched/iosched*.c | grep -v '/iosched_builtin\.c$') $work/iosched_builtin.c"
# shellcheck disable=SC2086
JANSSON=$(pkg-config --cflags --libs jansson)
AV=$(pkg-config --cflags --libs libavformat libavcodec libavutil)
CRYPTO=$(pkg-config --cflags --libs libcrypto)

status=0
total=0
for target in parse index ingest; do
	case $target in
	parse)
		srcs="$S/sd_time.c $S/sd_range.c $S/sd_config.c $S/sd_name.c"
		srcs="$srcs $S/sd_token.c $sched_srcs"
		libs="$JANSSON $CRYPTO -luring -lm -lpthread" ;;
	index)
		srcs="$S/sd_index.c $S/sd_hls.c $S/sd_time.c $srcdir/djmfs/proto/djmfs_crc.c"
		libs="-lm" ;;
	ingest)
		srcs="$S/sd_ingest.c $S/sd_ts.c $S/sd_log.c"
		libs="$AV -lpthread" ;;
	esac
	bin=$work/fuzz_$target
	corpus=$work/corpus_$target
	art=$work/artifacts_$target
	mkdir -p "$corpus" "$art"
	cp "$srcdir/tests/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null
	# shellcheck disable=SC2086  # word splitting of flag lists is wanted
	if ! "$CLANG" $CFLAGS $FUZZ_SAN "$srcdir/tests/fuzz/fuzz_$target.c" $srcs \
		$libs -o "$bin" >"$work/build_$target.log" 2>&1; then
		echo "fuzz.sh: building fuzz_$target failed:" >&2
		tail -n 20 "$work/build_$target.log" >&2
		status=1
		continue
	fi
	# Leaks inside libavformat's own caches would show as findings too:
	# there are none today; keep it that way.
	fuzz_run "fuzz_$target" "$bin" "$corpus" "$art" "$SECONDS_EACH" \
		-timeout=20 -max_len=262144 || status=1
	total=$((total + fuzz_runs))
done
echo "fuzz.sh: $total runs in all"
exit $status
