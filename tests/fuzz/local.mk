# libFuzzer targets for streamd's parsers of untrusted input, run by
# fuzz.sh for STREAMD_FUZZ_SECONDS each, from the seed corpus below.

TESTS += tests/fuzz/fuzz.sh
EXTRA_DIST += tests/fuzz/fuzz.sh tests/fuzz/lib.sh \
	tests/fuzz/fuzz_parse.c \
	tests/fuzz/fuzz_index.c \
	tests/fuzz/fuzz_ingest.c \
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
	tests/fuzz/corpus/parse/start-iso-z
