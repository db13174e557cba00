# Shared by the libFuzzer drivers (tests/djmfs/fuzz.sh, tests/fuzz/fuzz.sh),
# sourced as `. "$srcdir/tests/fuzz/lib.sh"`: fuzz_setup makes the scratch
# directory (kept after a finding so its input can be replayed) and skips
# (77) without clang or libFuzzer; fuzz_run runs one built target on its
# corpus for a time, prints its tail and its number of runs, and names the
# crash inputs on a finding.  Plain POSIX sh.

CLANG=${CLANG:-clang}
FUZZ_SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"

# fuzz_setup NAME: sets work (scratch directory) and keep, or exits 77.
fuzz_setup() {
	if ! command -v "$CLANG" >/dev/null 2>&1; then
		echo "fuzz.sh: $CLANG not found; skipping"
		exit 77
	fi
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1-fuzz.XXXXXX") || exit 1
	keep=0
	trap fuzz_cleanup EXIT
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
}

# shellcheck disable=SC2317  # reached through the trap
fuzz_cleanup() {
	[ "$keep" = 0 ] && rm -rf "$work"
}

# fuzz_run NAME BIN CORPUS ARTIFACTS SECONDS [LIBFUZZER OPTION...]: sets
# fuzz_runs (executions) and returns libFuzzer's status (1 on a finding).
fuzz_run() {
	fr_name=$1 fr_bin=$2 fr_corpus=$3 fr_art=$4 fr_secs=$5
	shift 5
	echo "fuzz.sh: $fr_name for ${fr_secs}s"
	# libFuzzer's own failure code is 77, which a test harness would
	# read as "skipped": ask for 1 instead.
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	"$fr_bin" -max_total_time="$fr_secs" -error_exitcode=1 \
		-timeout_exitcode=1 -rss_limit_mb=2048 \
		-artifact_prefix="$fr_art/" -print_final_stats=1 "$@" \
		"$fr_corpus" >"$work/$fr_name.log" 2>&1
	fr_rc=$?
	fuzz_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
		"$work/$fr_name.log" | tail -n 1)
	fuzz_runs=${fuzz_runs:-0}
	echo "fuzz.sh: $fr_name: $fuzz_runs runs, exit $fr_rc"
	if [ "$fr_rc" -ne 0 ]; then
		keep=1
		tail -n 30 "$work/$fr_name.log"
		echo "fuzz.sh: $fr_name FAILED; log: $work/$fr_name.log"
		for f in "$fr_art"/*; do
			[ -e "$f" ] && echo "fuzz.sh: crash input: $f (replay: $fr_bin $f)"
		done
	fi
	return "$fr_rc"
}
