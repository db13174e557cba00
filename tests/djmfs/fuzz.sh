#!/bin/sh
# Fuzzes the DJMFS decoders that read untrusted bytes -- protocol frames
# (fuzz_frame.c) and journal records (fuzz_jrec.c) -- with libFuzzer under
# AddressSanitizer and UBSan, FUZZ_SECONDS (or DJMFS_FUZZ_SECONDS; default
# 30) per target.  Each target is built into a scratch directory with
# clang, its corpus seeded with valid frames/records written by the same
# file built as a seed generator.  Exits 0 when nothing was found, 77 (skip) when clang or
# libFuzzer is missing, and 1 on a finding, naming the input that crashed;
# the scratch directory is then kept so the input can be replayed
# (run the printed binary with the input as its argument).
#
# Standalone:  srcdir=/work/main tests/djmfs/fuzz.sh
# Under automake's test harness srcdir is set and the cwd is the builddir.

set -u

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
FUZZ_SECONDS=${FUZZ_SECONDS:-${DJMFS_FUZZ_SECONDS:-30}}
CLANG=${CLANG:-clang}

# Automake's srcdir is the top of the tree when this runs from the top
# Makefile; accept tests/djmfs too, in case a harness passes that.
if [ ! -f "$srcdir/djmfs/djmfs_wire.c" ] && [ -f "$srcdir/../../djmfs/djmfs_wire.c" ]; then
	srcdir=$srcdir/../..
fi
if [ ! -f "$srcdir/djmfs/djmfs_wire.c" ]; then
	echo "fuzz.sh: cannot find djmfs/djmfs_wire.c under srcdir=$srcdir" >&2
	exit 1
fi

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz.sh: $CLANG not found; skipping"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/djmfs-fuzz.XXXXXX") || exit 1
keep=0
# shellcheck disable=SC2317  # reached through the trap
cleanup() {
	if [ "$keep" = 0 ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# libFuzzer ships in a separate package on some systems.
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	'{ (void)d; (void)n; return 0; }' >"$work/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$work/probe.c" \
	-o "$work/probe" >"$work/probe.log" 2>&1; then
	echo "fuzz.sh: $CLANG cannot link with -fsanitize=fuzzer; skipping"
	exit 77
fi

CFLAGS="-std=gnu11 -g -O1 -I$srcdir/djmfs -I$srcdir/sched"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
D=$srcdir/djmfs
codec_srcs="$D/djmfs_buf.c $D/djmfs_crc.c $D/djmfs_wire.c"

status=0
for target in frame jrec; do
	case $target in
	frame) srcs=$codec_srcs ;;
	jrec) srcs="$codec_srcs $D/djmfs_jrec.c" ;;
	esac
	src=$srcdir/tests/djmfs/fuzz_$target.c
	bin=$work/fuzz_$target
	corpus=$work/corpus_$target
	art=$work/artifacts_$target
	mkdir -p "$corpus" "$art"

	# shellcheck disable=SC2086  # word splitting of flag lists is wanted
	if ! "$CLANG" $CFLAGS -DDJMFS_FUZZ_SEED_MAIN "$src" $srcs \
		-o "$work/seed_$target" ||
		! "$work/seed_$target" "$corpus"; then
		echo "fuzz.sh: building the $target seeds failed" >&2
		status=1
		continue
	fi
	# shellcheck disable=SC2086
	if ! "$CLANG" $CFLAGS $SAN "$src" $srcs -o "$bin"; then
		echo "fuzz.sh: building fuzz_$target failed" >&2
		status=1
		continue
	fi

	echo "fuzz.sh: fuzz_$target for ${FUZZ_SECONDS}s"
	# libFuzzer's own default failure code is 77, which a test harness
	# would read as "skipped": ask for 1 instead.
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	"$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=2048 \
		-artifact_prefix="$art/" -print_final_stats=1 "$corpus" \
		>"$work/fuzz_$target.log" 2>&1
	rc=$?
	tail -n 20 "$work/fuzz_$target.log"
	if [ "$rc" -ne 0 ]; then
		keep=1
		status=1
		echo "fuzz.sh: fuzz_$target FAILED (exit $rc); log: $work/fuzz_$target.log"
		for f in "$art"/*; do
			[ -e "$f" ] && echo "fuzz.sh: crash input: $f (replay: $bin $f)"
		done
	fi
done
exit $status
