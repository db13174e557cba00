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
CLANG=${CLANG:-clang}

if [ ! -f "$srcdir/streamd/sd_time.c" ]; then
	echo "fuzz.sh: cannot find streamd/sd_time.c under srcdir=$srcdir" >&2
	exit 1
fi
if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz.sh: $CLANG not found; skipping"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/streamd-fuzz.XXXXXX") || exit 1
keep=0
# shellcheck disable=SC2317  # reached through the trap
cleanup() {
	[ "$keep" = 0 ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	'{ (void)d; (void)n; return 0; }' >"$work/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$work/probe.c" \
	-o "$work/probe" >"$work/probe.log" 2>&1; then
	echo "fuzz.sh: $CLANG cannot link with -fsanitize=fuzzer; skipping"
	exit 77
fi

S=$srcdir/streamd
CFLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$S -I$srcdir/djmfs -I$srcdir/sched"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
sched_srcs=$(ls "$srcdir"/sched/iosched*.c)
# shellcheck disable=SC2086
JANSSON=$(pkg-config --cflags --libs jansson)
AV=$(pkg-config --cflags --libs libavformat libavcodec libavutil)

status=0
total=0
for target in parse index ingest; do
	case $target in
	parse)
		srcs="$S/sd_time.c $S/sd_range.c $S/sd_config.c $sched_srcs"
		libs="$JANSSON -luring -lm -lpthread" ;;
	index)
		srcs="$S/sd_index.c $S/sd_hls.c $S/sd_time.c $srcdir/djmfs/djmfs_crc.c"
		libs="-lm" ;;
	ingest)
		srcs="$S/sd_ingest.c $S/sd_log.c"
		libs="$AV -lpthread" ;;
	esac
	bin=$work/fuzz_$target
	corpus=$work/corpus_$target
	art=$work/artifacts_$target
	mkdir -p "$corpus" "$art"
	cp "$srcdir/tests/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null
	# shellcheck disable=SC2086  # word splitting of flag lists is wanted
	if ! "$CLANG" $CFLAGS $SAN "$srcdir/tests/fuzz/fuzz_$target.c" $srcs \
		$libs -o "$bin" >"$work/build_$target.log" 2>&1; then
		echo "fuzz.sh: building fuzz_$target failed:" >&2
		tail -n 20 "$work/build_$target.log" >&2
		status=1
		continue
	fi
	echo "fuzz.sh: fuzz_$target for ${SECONDS_EACH}s"
	# libFuzzer's own failure code is 77, which the harness would read
	# as "skipped": ask for 1.  Leaks inside libavformat's own caches
	# are not ours to find here; everything else is checked.
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=20 \
		-error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=2048 \
		-max_len=262144 -artifact_prefix="$art/" -print_final_stats=1 \
		"$corpus" >"$work/fuzz_$target.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
		"$work/fuzz_$target.log" | tail -n 1)
	echo "fuzz.sh: fuzz_$target: ${runs:-0} runs, exit $rc"
	total=$((total + ${runs:-0}))
	if [ "$rc" -ne 0 ]; then
		keep=1
		status=1
		tail -n 30 "$work/fuzz_$target.log"
		echo "fuzz.sh: fuzz_$target FAILED; log: $work/fuzz_$target.log"
		for f in "$art"/*; do
			[ -e "$f" ] && echo "fuzz.sh: crash input: $f (replay: $bin $f)"
		done
	fi
done
echo "fuzz.sh: $total runs in all"
exit $status
