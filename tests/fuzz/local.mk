# libFuzzer targets for streamd's parsers of untrusted input, run by
# fuzz.sh for STREAMD_FUZZ_SECONDS each, from the seed corpus below.

TESTS += tests/fuzz/fuzz.sh
EXTRA_DIST += tests/fuzz/fuzz.sh tests/fuzz/lib.sh \
	tests/fuzz/fuzz_parse.c \
	tests/fuzz/fuzz_index.c \
	tests/fuzz/fuzz_ingest.c \
	tests/fuzz/corpus/frame/frame-00 \
	tests/fuzz/corpus/frame/frame-01 \
	tests/fuzz/corpus/frame/frame-02 \
	tests/fuzz/corpus/frame/frame-03 \
	tests/fuzz/corpus/frame/frame-04 \
	tests/fuzz/corpus/frame/frame-05 \
	tests/fuzz/corpus/frame/frame-06 \
	tests/fuzz/corpus/frame/frame-07 \
	tests/fuzz/corpus/frame/frame-08 \
	tests/fuzz/corpus/frame/frame-09 \
	tests/fuzz/corpus/frame/frame-10 \
	tests/fuzz/corpus/frame/frame-11 \
	tests/fuzz/corpus/frame/frame-12 \
	tests/fuzz/corpus/frame/frame-13 \
	tests/fuzz/corpus/frame/frame-14 \
	tests/fuzz/corpus/frame/frame-15 \
	tests/fuzz/corpus/frame/frame-16 \
	tests/fuzz/corpus/frame/frame-17 \
	tests/fuzz/corpus/frame/frame-18 \
	tests/fuzz/corpus/frame/frame-19 \
	tests/fuzz/corpus/frame/frame-20 \
	tests/fuzz/corpus/frame/frame-21 \
	tests/fuzz/corpus/frame/frame-22 \
	tests/fuzz/corpus/jrec/jrec-01 \
	tests/fuzz/corpus/jrec/jrec-02 \
	tests/fuzz/corpus/jrec/jrec-03 \
	tests/fuzz/corpus/jrec/jrec-04 \
	tests/fuzz/corpus/jrec/jrec-05 \
	tests/fuzz/corpus/jrec/jrec-06 \
	tests/fuzz/corpus/jrec/jrec-07 \
	tests/fuzz/corpus/jrec/jrec-08 \
	tests/fuzz/corpus/jrec/jrec-09 \
	tests/fuzz/corpus/jrec/jrec-10 \
	tests/fuzz/corpus/jrec/jrec-11 \
	tests/fuzz/corpus/jrec/jrec-12 \
	tests/fuzz/corpus/index/crash \
	tests/fuzz/corpus/index/gap \
	tests/fuzz/corpus/index/one \
	tests/fuzz/corpus/ingest/cut.ts \
	tests/fuzz/corpus/ingest/h264-aac.ts \
	tests/fuzz/corpus/parse/conf \
	tests/fuzz/corpus/parse/key \
	tests/fuzz/corpus/parse/knobs \
	tests/fuzz/corpus/parse/knobs-bad \
	tests/fuzz/corpus/parse/profile-hdd \
	tests/fuzz/corpus/parse/profile-ssd \
	tests/fuzz/corpus/parse/range-abs \
	tests/fuzz/corpus/parse/range-open \
	tests/fuzz/corpus/parse/range-suffix \
	tests/fuzz/corpus/parse/start-behind \
	tests/fuzz/corpus/parse/start-from \
	tests/fuzz/corpus/parse/start-iso \
	tests/fuzz/corpus/parse/start-iso-z \
	tests/fuzz/corpus/parse/token \
	tests/fuzz/corpus/parse/token-redact
