#!/bin/sh
# Fuzzes the DJMFS decoders that read untrusted bytes -- protocol frames
# (fuzz_frame.c) and journal records (fuzz_jrec.c) -- with libFuzzer under
# AddressSanitizer and UBSan, FUZZ_SECONDS (or DJMFS_FUZZ_SECONDS; default
# 30) per target.  Each target is built into a scratch directory with
# clang, its corpus seeded from tests/fuzz/corpus/{frame,jrec} (valid
# frames and records the same file writes when built as a seed generator).  Exits 0 when nothing was found, 77 (skip) when clang or
# libFuzzer is missing, and 1 on a finding, naming the input that crashed;
# the scratch directory is then kept so the input can be replayed
# (run the printed binary with the input as its argument).
#
# Standalone:  srcdir=/work/main tests/djmfs/fuzz.sh
# Under automake's test harness srcdir is set and the cwd is the builddir.

set -u

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
FUZZ_SECONDS=${FUZZ_SECONDS:-${DJMFS_FUZZ_SECONDS:-30}}

# Automake's srcdir is the top of the tree when this runs from the top
# Makefile; accept tests/djmfs too, in case a harness passes that.
if [ ! -f "$srcdir/djmfs/proto/djmfs_wire.c" ] && [ -f "$srcdir/../../djmfs/proto/djmfs_wire.c" ]; then
	srcdir=$srcdir/../..
fi
if [ ! -f "$srcdir/djmfs/proto/djmfs_wire.c" ]; then
	echo "fuzz.sh: cannot find djmfs/proto/djmfs_wire.c under srcdir=$srcdir" >&2
	exit 1
fi

. "$srcdir/tests/fuzz/lib.sh"
fuzz_setup djmfs

# The frame target is the protocol part's, the journal-record target
# the server's: each sees its part's headers, the protocol part's and
# the public ones, as the libraries are built.
CFLAGS="-std=gnu11 -g -O1 -I$srcdir/djmfs -I$srcdir/djmfs/proto -I$srcdir/sched"
P=$srcdir/djmfs/proto
codec_srcs="$P/djmfs_buf.c $P/djmfs_crc.c $P/djmfs_wire.c"

status=0
for target in frame jrec; do
	case $target in
	frame) srcs=$codec_srcs inc= ;;
	jrec)
		srcs="$codec_srcs $srcdir/djmfs/server/djmfs_jrec.c"
		inc=-I$srcdir/djmfs/server ;;
	esac
	src=$srcdir/tests/djmfs/fuzz_$target.c
	bin=$work/fuzz_$target
	corpus=$work/corpus_$target
	art=$work/artifacts_$target
	mkdir -p "$corpus" "$art"

	# The seed corpus is checked in under tests/fuzz/corpus/; the same
	# file built with -DDJMFS_FUZZ_SEED_MAIN writes it afresh after a
	# protocol change (run it with the directory as its argument).
	cp "$srcdir/tests/fuzz/corpus/$target/"* "$corpus/" || {
		echo "fuzz.sh: no seed corpus in tests/fuzz/corpus/$target" >&2
		status=1
		continue
	}
	# shellcheck disable=SC2086
	if ! "$CLANG" $CFLAGS $inc $FUZZ_SAN "$src" $srcs -o "$bin"; then
		echo "fuzz.sh: building fuzz_$target failed" >&2
		status=1
		continue
	fi

	fuzz_run "fuzz_$target" "$bin" "$corpus" "$art" "$FUZZ_SECONDS" \
		-timeout=10 || status=1
done
exit $status
