/*
 * libFuzzer target for the keyframe index as a reader finds it on the
 * volume (sd_index.c) and for everything built on it: seeking, the gaps,
 * the HLS segments and the playlist text (sd_hls.c).  The input is read
 * as index entries; random bytes almost never carry a valid CRC, so each
 * 32-byte entry's check field is re-sealed in a copy before loading,
 * which lets the fuzzer reach the flag checks and the searches.  The tail
 * of the input that is not a whole entry chooses the times to seek to.
 * Invariants: a seek lands on a KEY entry; segments lie inside the data
 * and come in order; a playlist, when there is one, starts with #EXTM3U.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs.h"
#include "streamd-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seg_check {
	uint64_t data_size;
	uint64_t last_end;
	size_t last_seq;
	int any;
};

static int on_segment(void *arg, const struct sd_segment *s)
{
	struct seg_check *c = arg;

	if (s->len == 0 || s->offset + s->len > c->data_size ||
	    s->offset < c->last_end || (c->any && s->seq <= c->last_seq) ||
	    s->duration_ns < 0)
		abort();
	c->last_end = s->offset + s->len;
	c->last_seq = s->seq;
	c->any = 1;
	return 0;
}

/* t + d without overflowing: times in a damaged index are anything. */
static int64_t sat_add(int64_t t, int64_t d)
{
	return t > INT64_MAX - d ? INT64_MAX : t + d;
}

static void check_seek(const struct sd_index *ix, int64_t t)
{
	ssize_t k = sd_index_seek(ix, t);

	if (k >= 0 && ((size_t)k >= ix->n || !(ix->e[k].flags & SD_IDX_KEY)))
		abort();
	if (k >= 0) {
		ssize_t j = sd_index_key_near(ix, (size_t)k,
					     sat_add(t, 5 * SD_NS));

		if (j >= 0 && ((size_t)j <= (size_t)k || (size_t)j >= ix->n ||
			       !(ix->e[j].flags & SD_IDX_KEY)))
			abort();
	}
}

static void check_hls(const struct sd_index *ix, uint64_t data_size,
		      int finished, int64_t window)
{
	struct sd_hls_req req = { .uri = "data.ts", .query = "token=x",
				  .window_ns = window };
	char *text = NULL;
	int64_t start = ix->n ? ix->e[0].wall_ns : 0;
	int64_t live = ix->n ? ix->e[ix->n - 1].wall_ns : 0;

	if (sd_hls_playlist(ix, data_size, finished, start, live, &req,
			    &text) == 0 &&
	    strncmp(text, "#EXTM3U\n", 8) != 0)
		abort();
	free(text);
	req.start.kind = SD_START_BEHIND_LIVE;
	req.start.ns = -3 * SD_NS;
	text = NULL;
	if (sd_hls_playlist(ix, data_size, finished, start, live, &req,
			    &text) == 0 &&
	    strncmp(text, "#EXTM3U\n", 8) != 0)
		abort();
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t whole = size / SD_IDX_SIZE * SD_IDX_SIZE;
	struct sd_index ix;
	struct seg_check c = { 0 };
	uint8_t *copy;
	struct sd_gap gaps[8];

	if (size > 64 * SD_IDX_SIZE + 64)
		return 0;
	copy = malloc(whole ? whole : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, whole);
	for (size_t i = 0; i < whole; i += SD_IDX_SIZE) {
		uint32_t crc = djmfs_crc32c(0, copy + i, 28);

		for (int b = 0; b < 4; b++)
			copy[i + 28 + b] = (uint8_t)(crc >> (8 * b));
	}
	sd_index_init(&ix);
	if (sd_index_load(&ix, copy, whole) >= 0) {
		uint64_t last = ix.n ? ix.e[ix.n - 1].offset : 0;
		uint64_t data_size = last > UINT64_MAX - 1000 ? last
							      : last + 1000;

		for (size_t i = whole; i + 8 <= size; i += 8) {
			int64_t t;

			memcpy(&t, data + i, 8);
			check_seek(&ix, t);
		}
		if (ix.n) {
			check_seek(&ix, ix.e[0].wall_ns);
			check_seek(&ix, sat_add(ix.e[ix.n / 2].wall_ns, 1));
		}
		(void)sd_index_gaps(&ix, gaps, 8);
		c.data_size = data_size;
		sd_index_segments(&ix, 0, INT64_MAX, data_size, 1, on_segment,
				  &c);
		memset(&c, 0, sizeof(c));
		c.data_size = data_size;
		sd_index_segments(&ix, 0, INT64_MAX, data_size, 0, on_segment,
				  &c);
		check_hls(&ix, data_size, 1, 0);
		check_hls(&ix, data_size, 0, 10 * SD_NS);
	}
	sd_index_free(&ix);
	free(copy);
	return 0;
}
