#!/usr/bin/env bash
# Quick start, step two: installs what is missing, builds, and runs the
# whole test suite (`make check`).  With --sanitizers it does the same in a
# separate AddressSanitizer + UndefinedBehaviorSanitizer build.  Ends with
# one line counting every Criterion test and shell test that ran.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
build=$("$top/.ci/prepare" "$@")
cd "$build"

status=0
make -j"$(nproc)" check || status=$?

passed=0 failed=0 skipped=0
for trs in $(find tests -name '*.trs'); do
	log="${trs%.trs}.log"
	result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	synth=$(grep -a 'Synthesis: Tested:' "$log" 2>/dev/null | tail -n 1 || true)
	if [ -n "$synth" ]; then
		# Criterion: count its individual tests.
		p=$(echo "$synth" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
		f=$(echo "$synth" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
		c=$(echo "$synth" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
		passed=$((passed + p)) failed=$((failed + f + c))
		[ "$result" = PASS ] || [ $((f + c)) -gt 0 ] || failed=$((failed + 1))
	else
		case "$result" in
		PASS) passed=$((passed + 1)) ;;
		SKIP) skipped=$((skipped + 1)) ;;
		*) failed=$((failed + 1)) ;;
		esac
	fi
	if [ "$result" != PASS ] && [ "$result" != SKIP ]; then
		echo "==== $log"
		tail -n 60 "$log"
	fi
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
