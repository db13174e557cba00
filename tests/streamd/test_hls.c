/*
 * Tests for sd_hls.c: the exact playlist of a small finished recording
 * with a gap, the playlist types, a start in the middle and in a gap,
 * windows over a finished and a live recording, a sliding live window
 * that moves as the recording grows, play tokens on segment URIs, and
 * -ENOENT when no complete segment is in range.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define MS(x) ((int64_t)(x) * 1000000)
#define S(x) ((int64_t)(x) * SD_NS)
#define B S(1795251600) /* 2026-11-21T09:00:00Z */
#define KEY SD_IDX_KEY
#define SEG SD_IDX_SEGMENT
#define END SD_IDX_END
#define NOPTS SD_PTS_NONE
#define E(ms, off, pts, fl) { B + MS(ms), (off), (pts), (fl) }

/* Two connections with a gap (as in test_index.c): segments 0, 1, 2,
 * then after the gap 4 (a discontinuity), 5 and 6. */
static const struct sd_idx_entry two_conns[] = {
	E(100000, 0, 900000, SEG | KEY),
	E(102000, 1000, 1080000, KEY),
	E(104000, 2000, 1260000, KEY),
	E(105000, 2500, NOPTS, END),
	E(110000, 2500, 5000, SEG),
	E(110500, 2600, 50000, KEY),
	E(112000, 3000, 185000, KEY),
};
#define N_TWO (sizeof(two_conns) / sizeof(two_conns[0]))
#define DATA_SIZE 3600
#define START_NS (B + S(100))

static struct sd_index ix;

static void load_two(void)
{
	sd_index_init(&ix);
	for (size_t i = 0; i < N_TWO; i++)
		cr_assert_eq(sd_index_append(&ix, &two_conns[i]), 0);
}

static void drop(void)
{
	sd_index_free(&ix);
}

TestSuite(hls, .init = load_two, .fini = drop);

static char *playlist(uint64_t size, int finished, int64_t live_ns,
		      struct sd_hls_req req)
{
	char *text = NULL;
	int err;

	if (req.uri == NULL)
		req.uri = "data.ts";
	err = sd_hls_playlist(&ix, size, finished, START_NS, live_ns, &req,
			      &text);
	cr_assert_eq(err, 0, "sd_hls_playlist: %d", err);
	cr_assert_not_null(text);
	return text;
}

static int count(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

static int has(const char *text, const char *line)
{
	return count(text, line) > 0;
}

Test(hls, finished_recording_gives_the_exact_vod_playlist)
{
	static const char want[] =
		"#EXTM3U\n"
		"#EXT-X-VERSION:4\n"
		"#EXT-X-TARGETDURATION:3\n"
		"#EXT-X-MEDIA-SEQUENCE:0\n"
		"#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
		"#EXT-X-PLAYLIST-TYPE:VOD\n"
		"#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:01:40.000Z\n"
		"#EXTINF:2.000,\n"
		"#EXT-X-BYTERANGE:1000@0\n"
		"data.ts\n"
		"#EXTINF:2.000,\n"
		"#EXT-X-BYTERANGE:1000@1000\n"
		"data.ts\n"
		"#EXTINF:1.000,\n"
		"#EXT-X-BYTERANGE:500@2000\n"
		"data.ts\n"
		"#EXT-X-DISCONTINUITY\n"
		"#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:01:50.000Z\n"
		"#EXTINF:0.500,\n"
		"#EXT-X-BYTERANGE:100@2500\n"
		"data.ts\n"
		"#EXTINF:1.500,\n"
		"#EXT-X-BYTERANGE:400@2600\n"
		"data.ts\n"
		"#EXTINF:2.250,\n"
		"#EXT-X-BYTERANGE:600@3000\n"
		"data.ts\n"
		"#EXT-X-ENDLIST\n";
	char *text = playlist(DATA_SIZE, 1, B + S(112), (struct sd_hls_req){ 0 });

	cr_assert_str_eq(text, want);
	free(text);
}

Test(hls, segment_uris_carry_the_query)
{
	char *text = playlist(DATA_SIZE, 1, B + S(112),
			      (struct sd_hls_req){ .uri = "../cam1/data.ts",
						   .query = "token=abc" });

	cr_assert_eq(count(text, "\n../cam1/data.ts?token=abc\n"), 6);
	free(text);
	text = playlist(DATA_SIZE, 1, B + S(112),
			(struct sd_hls_req){ .query = "" });
	cr_assert_eq(count(text, "\ndata.ts\n"), 6);
	cr_assert_not(has(text, "?"));
	free(text);
}

Test(hls, live_recording_slides_without_its_open_segment)
{
	/* no live window given: 5 target durations (10 s) back from 113 s,
	 * so from the key at 102 s */
	char *text = playlist(DATA_SIZE, 0, B + S(113),
			      (struct sd_hls_req){ 0 });

	cr_assert_not(has(text, "#EXT-X-PLAYLIST-TYPE"));
	cr_assert_not(has(text, "#EXT-X-START"));
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:1\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 4);
	cr_assert_not(has(text, "@3000\n"));
	cr_assert(has(text, "#EXT-X-TARGETDURATION:2\n"));
	free(text);

	/* a start fixed in the recording keeps the first segment: EVENT,
	 * and players are told to begin there */
	text = playlist(DATA_SIZE, 0, B + S(113),
			(struct sd_hls_req){ .start = { SD_START_FROM_BEGIN,
							S(3) } });
	cr_assert(has(text, "#EXT-X-PLAYLIST-TYPE:EVENT\n"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:1\n"));
	cr_assert(has(text, "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 4);
	free(text);

	/* one relative to the moving live edge does not: it is delayed
	 * live, from 103 s to 103 s + the live window */
	text = playlist(DATA_SIZE, 0, B + S(113),
			(struct sd_hls_req){ .start = { SD_START_BEHIND_LIVE,
							-S(10) } });
	cr_assert_not(has(text, "#EXT-X-PLAYLIST-TYPE"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:1\n"));
	cr_assert(has(text, "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n"));
	free(text);
}

Test(hls, behind_live_ends_the_live_window_after_its_start)
{
	char *text;

	sd_index_free(&ix);
	for (int i = 0; i < 60; i++) {
		struct sd_idx_entry e = {
			B + S(2 * i), (uint64_t)i * 1000, (int64_t)i * 180000,
			i == 0 ? SEG | KEY : KEY,
		};

		cr_assert_eq(sd_index_append(&ix, &e), 0);
	}
	/* live 119 s; start=-30: from the key at 88 s (44), segments that
	 * start before 89 s + 12 s: 44 to 50 */
	text = playlist(60500, 0, B + S(119),
			(struct sd_hls_req){
				.start = { SD_START_BEHIND_LIVE, -S(30) },
				.live_window_ns = S(12) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:44\n"), "%s", text);
	cr_assert_eq(count(text, "#EXTINF:"), 7);
	cr_assert(has(text, "@50000\n"));
	cr_assert_not(has(text, "@51000"));
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	free(text);
}

Test(hls, start_in_the_middle_begins_on_its_keyframe)
{
	char *text = playlist(DATA_SIZE, 1, B + S(112),
			      (struct sd_hls_req){ .start = { SD_START_FROM_BEGIN,
							      S(3) } });

	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:1\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
	cr_assert(has(text, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
	cr_assert(has(text, "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:01:42.000Z\n"
			    "#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@1000\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 5);
	cr_assert_eq(count(text, "#EXT-X-PROGRAM-DATE-TIME:"), 2);
	cr_assert(has(text, "#EXT-X-ENDLIST\n"));
	free(text);
}

Test(hls, start_in_a_gap_begins_after_it_and_counts_the_discontinuity)
{
	int64_t in_gap = B + S(107);
	char *text = playlist(DATA_SIZE, 1, B + S(112),
			      (struct sd_hls_req){ .start = { SD_START_WALL,
							      in_gap } });

	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:5\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
	cr_assert_not(has(text, "#EXT-X-DISCONTINUITY\n"));
	cr_assert(has(text, "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:01:50.500Z\n"
			    "#EXTINF:1.500,\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 2);
	free(text);
}

Test(hls, window_over_a_finished_recording_is_a_closed_slice)
{
	char *text = playlist(DATA_SIZE, 1, B + S(112),
			      (struct sd_hls_req){ .window_ns = S(2) });

	/* segments starting within [100 s, 102 s]: 0 and 1 */
	cr_assert_eq(count(text, "#EXTINF:"), 2);
	cr_assert(has(text, "@1000\n"));
	cr_assert_not(has(text, "@2000\n"));
	cr_assert(has(text, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
	cr_assert(has(text, "#EXT-X-ENDLIST\n"));
	free(text);

	/* a window past the end of time is no limit */
	text = playlist(DATA_SIZE, 1, B + S(112),
			(struct sd_hls_req){ .window_ns = INT64_MAX });
	cr_assert_eq(count(text, "#EXTINF:"), 6);
	free(text);
	text = playlist(DATA_SIZE, 0, B + S(113),
			(struct sd_hls_req){ .window_ns = INT64_MAX });
	cr_assert_eq(count(text, "#EXTINF:"), 5);
	free(text);
}

Test(hls, window_from_a_start_while_live_closes_once_passed)
{
	/* [100 s, 103 s] already lies behind the newest entry */
	char *text = playlist(DATA_SIZE, 0, B + S(113),
			      (struct sd_hls_req){
				      .start = { SD_START_FROM_BEGIN, 0 },
				      .window_ns = S(3) });

	cr_assert_eq(count(text, "#EXTINF:"), 2);
	cr_assert(has(text, "#EXT-X-ENDLIST\n"));
	cr_assert(has(text, "#EXT-X-PLAYLIST-TYPE:VOD\n"));
	free(text);

	/* [110.5 s, 120.5 s] is still being recorded */
	text = playlist(DATA_SIZE, 0, B + S(113),
			(struct sd_hls_req){
				.start = { SD_START_FROM_BEGIN, S(9) },
				.window_ns = S(10) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:5\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 1);
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	cr_assert(has(text, "#EXT-X-PLAYLIST-TYPE:EVENT\n"));
	free(text);
}

static void add_key(int i)
{
	struct sd_idx_entry e = {
		B + S(2 * i), (uint64_t)i * 1000, (int64_t)i * 180000,
		i == 0 ? SEG | KEY : KEY,
	};

	cr_assert_eq(sd_index_append(&ix, &e), 0);
}

Test(hls, live_window_slides_with_the_recording)
{
	char *text;

	sd_index_free(&ix);
	for (int i = 0; i < 30; i++)
		add_key(i);
	/* newest key at 58 s; live edge 59 s; window 10 s: from 49 s,
	 * so from the key at 48 s (24) to the last complete one (28) */
	text = playlist(30500, 0, B + S(59),
			(struct sd_hls_req){ .window_ns = S(10) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:24\n"));
	cr_assert(has(text, "#EXT-X-TARGETDURATION:2\n"));
	cr_assert_eq(count(text, "#EXTINF:2.000,\n"), 5);
	cr_assert(has(text, "#EXT-X-BYTERANGE:1000@28000\n"));
	cr_assert_not(has(text, "@29000"));
	cr_assert_not(has(text, "#EXT-X-PLAYLIST-TYPE"));
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	cr_assert(has(text, "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:00:48.000Z\n"));
	free(text);

	add_key(30);
	add_key(31);
	text = playlist(32500, 0, B + S(63),
			(struct sd_hls_req){ .window_ns = S(10) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:26\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 5);
	cr_assert(has(text, "#EXT-X-BYTERANGE:1000@30000\n"));
	free(text);
}

Test(hls, sliding_window_counts_discontinuities_it_dropped)
{
	/* live edge 117 s, window 10 s: from 107 s, in the gap: key 5 */
	char *text = playlist(DATA_SIZE, 0, B + S(117),
			      (struct sd_hls_req){ .window_ns = S(10) });

	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:5\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
	free(text);
	/* window 12 s: from 105 s: key 2, then the gap in the list */
	text = playlist(DATA_SIZE, 0, B + S(117),
			(struct sd_hls_req){ .window_ns = S(12) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:2\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY\n"
			    "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:01:50.000Z\n"));
	free(text);
}

Test(hls, nothing_complete_is_enoent)
{
	struct sd_hls_req req = { .uri = "data.ts" };
	char *text = (char *)"untouched";

	/* an empty index */
	sd_index_free(&ix);
	cr_assert_eq(sd_hls_playlist(&ix, 0, 0, START_NS, START_NS, &req,
				     &text),
		     -ENOENT);
	cr_assert_null(text);
	cr_assert_eq(sd_hls_playlist(&ix, 0, 1, START_NS, START_NS, &req,
				     &text),
		     -ENOENT);

	/* one entry still being written */
	add_key(0);
	cr_assert_eq(sd_hls_playlist(&ix, 500, 0, B, B + S(1), &req, &text),
		     -ENOENT);
	/* ... complete once finished */
	cr_assert_eq(sd_hls_playlist(&ix, 500, 1, B, B + S(1), &req, &text),
		     0);
	cr_assert(has(text, "#EXT-X-BYTERANGE:500@0\n"));
	free(text);

}

Test(hls, a_start_at_the_live_edge_gets_the_newest_complete_segment)
{
	struct sd_hls_req req = { .uri = "data.ts" };
	char *text = NULL;

	/* The live edge's segment is still growing: the playlist starts
	 * with the one before it rather than having nothing to offer. */
	req.start = (struct sd_start){ SD_START_BEHIND_LIVE, 0 };
	cr_assert_eq(sd_hls_playlist(&ix, DATA_SIZE, 0, START_NS, B + S(113),
				     &req, &text),
		     0);
	cr_assert_eq(count(text, "#EXTINF:"), 1, "%s", text);
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	free(text);
}
