/*
 * Tests for sd_hls.c: the exact playlist of a small finished recording
 * with a gap, the playlist types, a start in the middle and in a gap,
 * windows over a finished and a live recording, a sliding live window
 * that moves as the recording grows, play tokens on segment URIs, and
 * -ENOENT when no complete segment is in range; then the rules of every
 * playlist held over many simulated recordings and their reloads.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
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
	 * the key at 102 s; across the gap that leaves 3 s after it, and
	 * RFC 8216 asks for 3 target durations: from the first segment */
	char *text = playlist(DATA_SIZE, 0, B + S(113),
			      (struct sd_hls_req){ 0 });

	cr_assert_not(has(text, "#EXT-X-PLAYLIST-TYPE"));
	cr_assert_not(has(text, "#EXT-X-START"));
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:0\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 5);
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
	 * live, from 103 s to 103 s + the live window, and a sliding
	 * playlist, so across the gap it reaches back like the first */
	text = playlist(DATA_SIZE, 0, B + S(113),
			(struct sd_hls_req){ .start = { SD_START_BEHIND_LIVE,
							-S(10) } });
	cr_assert_not(has(text, "#EXT-X-PLAYLIST-TYPE"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:0\n"));
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

	/* entry 5; the segments at 0, 1, 2 and 4 come before it */
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:4\n"));
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
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:4\n"));
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

/* Two connections of 2 s keyframes: 0 s to 20 s (END at 21 s), a gap,
 * then 30 s to 50 s (or up to @upto_s); 1000 bytes a segment.  Segments: 0..9 at entries
 * 0..9, 10 (20 s to the END) at entry 10, then 11.. at entries 12... */
static void load_long_gap(int64_t upto_s)
{
	sd_index_free(&ix);
	for (int i = 0; i <= 10; i++) {
		struct sd_idx_entry e = { B + S(2 * i), (uint64_t)i * 1000,
					  (int64_t)i * 180000,
					  i == 0 ? SEG | KEY : KEY };

		cr_assert_eq(sd_index_append(&ix, &e), 0);
	}
	cr_assert_eq(sd_index_append(&ix, &(struct sd_idx_entry){
				     B + S(21), 10500, SD_PTS_NONE, END }), 0);
	for (int i = 0; i <= 10 && 30 + 2 * i <= upto_s; i++) {
		struct sd_idx_entry e = { B + S(30 + 2 * i),
					  10500 + (uint64_t)i * 1000,
					  (int64_t)i * 180000,
					  i == 0 ? SEG | KEY : KEY };

		cr_assert_eq(sd_index_append(&ix, &e), 0);
	}
}

Test(hls, sliding_window_counts_discontinuities_it_dropped)
{
	char *text;

	load_long_gap(50);
	/* live 51 s, window 10 s: from the key at 40 s, entry 17, the
	 * sixth segment of the second connection: 11 segments before it */
	text = playlist(21000, 0, B + S(51),
			(struct sd_hls_req){ .window_ns = S(10) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:16\n"), "%s", text);
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
	cr_assert_not(has(text, "#EXT-X-DISCONTINUITY\n"));
	cr_assert_eq(count(text, "#EXTINF:"), 5);
	free(text);
	/* live 35 s, window 10 s: from 25 s, in the gap: the key at 30 s
	 * alone holds too little, so the playlist reaches back across the
	 * gap until 3 target durations follow its first segment */
	load_long_gap(34);
	text = playlist(14500, 0, B + S(35),
			(struct sd_hls_req){ .window_ns = S(10) });
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:8\n"), "%s", text);
	cr_assert(has(text, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
	cr_assert(has(text, "#EXT-X-DISCONTINUITY\n"
			    "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T09:00:30.000Z\n"));
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
	 * with the one before it rather than having nothing to offer, and
	 * as a sliding playlist reaches back until 3 target durations
	 * follow its first segment. */
	load_long_gap(50);
	req.start = (struct sd_start){ SD_START_BEHIND_LIVE, 0 };
	cr_assert_eq(sd_hls_playlist(&ix, 21000, 0, START_NS, B + S(51),
				     &req, &text),
		     0);
	cr_assert(has(text, "#EXT-X-BYTERANGE:1000@19500\n"), "%s", text);
	cr_assert_not(has(text, "@20500"));
	cr_assert(has(text, "#EXT-X-MEDIA-SEQUENCE:17\n"), "%s", text);
	cr_assert_eq(count(text, "#EXTINF:"), 4);
	cr_assert_not(has(text, "#EXT-X-ENDLIST"));
	free(text);
}

/* ------------------------------------------------------------------ */
/* The playlist rules, over many recordings and reloads                */
/* ------------------------------------------------------------------ */

/*
 * A simulated recording grows in steps of 250 ms: encoders with their own
 * GOP (1 to 4 s) and bitrate push, keyframes are indexed as they come,
 * connections end cleanly (END) or vanish (no END), and after a gap a new
 * one begins (a SEGMENT entry, its first keyframe at once or a little
 * later).  At every step every kind of request below is asked, parsed,
 * and held to the rules at the top of sd_hls.c, both within the playlist
 * and against everything any earlier playlist said.
 */

struct pl_seg {
	uint64_t msn, off, len;
	int64_t extinf_ms, pdt_ns; /* pdt: only when printed, else -1 */
	uint64_t disc;		   /* discontinuity number */
};

struct parsed {
	int64_t target;
	uint64_t msn, dseq;
	const char *type;	   /* "EVENT", "VOD" or NULL */
	int start, endlist;
	struct pl_seg s[512];
	size_t n;
};

static int64_t parse_iso(const char *p)
{
	int64_t ns = -1;
	char buf[40];
	size_t n = strcspn(p, "\n");

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	cr_assert_eq(sd_time_parse_iso8601(buf, &ns), 0, "bad PDT %s", buf);
	return ns;
}

static void parse(const char *text, struct parsed *p)
{
	static const char *const types[] = { "EVENT", "VOD" };
	int64_t pdt = -1, ms = -1;
	unsigned long long a, b;
	int disc = 0;
	uint64_t discs = 0;

	memset(p, 0, sizeof(*p));
	cr_assert(strncmp(text, "#EXTM3U\n#EXT-X-VERSION:4\n", 25) == 0);
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (sscanf(l, "#EXT-X-TARGETDURATION:%llu", &a) == 1)
			p->target = (int64_t)a;
		else if (sscanf(l, "#EXT-X-MEDIA-SEQUENCE:%llu", &a) == 1)
			p->msn = a;
		else if (sscanf(l, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu",
				&a) == 1)
			p->dseq = a;
		else if (strncmp(l, "#EXT-X-PLAYLIST-TYPE:", 21) == 0) {
			for (size_t i = 0; i < 2; i++)
				if (strncmp(l + 21, types[i],
					    strlen(types[i])) == 0)
					p->type = types[i];
			cr_assert_not_null(p->type);
		} else if (strncmp(l, "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n",
				   39) == 0)
			p->start = 1;
		else if (strncmp(l, "#EXT-X-ENDLIST\n", 15) == 0)
			p->endlist = 1;
		else if (strncmp(l, "#EXT-X-DISCONTINUITY\n", 21) == 0)
			disc = 1;
		else if (strncmp(l, "#EXT-X-PROGRAM-DATE-TIME:", 25) == 0)
			pdt = parse_iso(l + 25);
		else if (sscanf(l, "#EXTINF:%llu.%llu,", &a, &b) == 2)
			ms = (int64_t)(a * 1000 + b);
		else if (sscanf(l, "#EXT-X-BYTERANGE:%llu@%llu", &a, &b) == 2) {
			struct pl_seg *s = &p->s[p->n];

			cr_assert_lt(p->n, 512);
			cr_assert_geq(ms, 0, "BYTERANGE without EXTINF");
			discs += (uint64_t)disc;
			*s = (struct pl_seg){ p->msn + p->n, b, a, ms, pdt,
					      p->dseq + discs };
			p->n++;
			ms = pdt = -1;
			disc = 0;
		}
		if (!strchr(l, '\n'))
			break;
	}
	cr_assert_gt(p->n, 0);
	cr_assert_geq(p->target, 1);
}

/* What every playlist said of each media sequence number. */
static struct pl_seg seen[8192];
static int seen_set[8192];

enum { K_LIVE, K_WINDOW, K_BEHIND, K_FROM, K_WALL, K_FIXED_WIN,
       K_BEHIND_WIN, K_N };

struct sim {
	uint64_t rng;
	int64_t now, conn_t0, next_key, gop, gap_end, pts0;
	uint64_t size, rate;	/* bytes, bytes a second */
	int connected, ever, first_key_late;
	struct parsed prev[K_N];
	int have_prev[K_N];
	int64_t prev_target[K_N];
};

static uint64_t rnd(struct sim *m, uint64_t n)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng % n;
}

static void sim_add(struct sim *m, uint32_t flags)
{
	struct sd_idx_entry e = {
		m->now, m->size,
		flags & END ? SD_PTS_NONE :
			(m->pts0 + (m->now - m->conn_t0) * 9 / 100000) &
				((1LL << 33) - 1),
		flags,
	};

	cr_assert_eq(sd_index_append(&ix, &e), 0);
}

static void sim_step(struct sim *m)
{
	m->now += MS(250);
	if (!m->connected) {
		if (m->now < m->gap_end)
			return;
		m->connected = 1;
		m->conn_t0 = m->now;
		m->gop = MS(1000 + 500 * (int64_t)rnd(m, 7));
		m->rate = 20000 + rnd(m, 100000);
		m->pts0 = (int64_t)rnd(m, 1LL << 33);
		m->first_key_late = (int)rnd(m, 2);
		sim_add(m, m->first_key_late ? SEG : SEG | KEY);
		m->next_key = m->now + (m->first_key_late ? MS(500) : m->gop);
		m->ever = 1;
		return;
	}
	m->size += m->rate / 4;
	if (m->now >= m->next_key) {
		sim_add(m, KEY);
		m->next_key += m->gop;
	}
	if (rnd(m, 160) == 0) { /* the encoder goes */
		if (rnd(m, 2))
			sim_add(m, END);
		m->connected = 0;
		m->gap_end = m->now + MS(1000 + 500 * (int64_t)rnd(m, 16));
	}
}

static struct sd_hls_req kind_req(int k, int64_t t0)
{
	switch (k) {
	case K_WINDOW:
		return (struct sd_hls_req){ .window_ns = S(30) };
	case K_BEHIND:
		return (struct sd_hls_req){
			.start = { SD_START_BEHIND_LIVE, -S(20) } };
	case K_FROM:
		return (struct sd_hls_req){
			.start = { SD_START_FROM_BEGIN, S(15) } };
	case K_WALL:
		return (struct sd_hls_req){ .start = { SD_START_WALL,
						       t0 + S(40) } };
	case K_FIXED_WIN:
		return (struct sd_hls_req){
			.start = { SD_START_FROM_BEGIN, S(10) },
			.window_ns = S(20) };
	case K_BEHIND_WIN:
		return (struct sd_hls_req){
			.start = { SD_START_BEHIND_LIVE, -S(30) },
			.window_ns = S(8) };
	default:
		return (struct sd_hls_req){ .live_window_ns = S(10) };
	}
}

/* Rules 1 to 4 for one playlist of the index as it stands. */
static void check_one(const struct parsed *p, int finished)
{
	uint64_t prev_end = 0;

	for (size_t i = 0; i < p->n; i++) {
		const struct pl_seg *s = &p->s[i];
		struct pl_seg *w;

		/* 3: the target bounds what is printed */
		cr_assert_leq(s->extinf_ms, p->target * 1000,
			      "EXTINF %lld ms over the target %lld s",
			      (long long)s->extinf_ms, (long long)p->target);
		cr_assert_gt(s->len, 0);
		/* segments in data order, back to back within a connection */
		cr_assert_geq(s->off, prev_end);
		prev_end = s->off + s->len;
		/* 2: nothing past the newest entry while recording */
		if (!finished)
			cr_assert_leq(s->off + s->len, ix.e[ix.n - 1].offset,
				      "a segment still being written is listed");
		/* 1: once said, the same in every playlist after */
		cr_assert_lt(s->msn, 8192);
		w = &seen[s->msn];
		if (!seen_set[s->msn]) {
			*w = *s;
			seen_set[s->msn] = 1;
			continue;
		}
		cr_assert_eq(w->off, s->off, "segment %llu moved",
			     (unsigned long long)s->msn);
		cr_assert_eq(w->len, s->len, "segment %llu changed length",
			     (unsigned long long)s->msn);
		cr_assert_eq(w->extinf_ms, s->extinf_ms,
			     "segment %llu changed duration: %lld then %lld",
			     (unsigned long long)s->msn,
			     (long long)w->extinf_ms, (long long)s->extinf_ms);
		cr_assert_eq(w->disc, s->disc,
			     "segment %llu changed discontinuity number",
			     (unsigned long long)s->msn);
		if (w->pdt_ns >= 0 && s->pdt_ns >= 0)
			cr_assert_eq(w->pdt_ns / 1000000, s->pdt_ns / 1000000);
	}
}

/* With HLS_DEBUG set, the index on standard error (ms from B, offset,
 * flags), to see why a rule broke. */
static void dump_index(void)
{
	if (!getenv("HLS_DEBUG"))
		return;
	for (size_t i = 0; i < ix.n; i++)
		fprintf(stderr, "%zu: %lld off %llu fl %u\n", i,
			(long long)(ix.e[i].wall_ns - B) / 1000000,
			(unsigned long long)ix.e[i].offset, ix.e[i].flags);
}

/* The rules between successive reloads of one URL. */
static void check_reload(struct sim *m, int k, const struct parsed *p,
			 int finished, int was_finished)
{
	const struct parsed *q = &m->prev[k];

	int same_target = p->target == m->prev_target[k];

	/* 3: reloads keep the target (it grows only with a longer GOP) */
	cr_assert_geq(p->target, m->prev_target[k]);
	m->prev_target[k] = p->target;
	if (!m->have_prev[k] || was_finished != finished)
		return; /* an encoder resumed a finished recording */
	if (!same_target)
		return; /* a longer GOP widened the minimum live window */
	/* a playlist with ENDLIST from a fixed window never changes */
	if (q->endlist && !finished && k == K_FIXED_WIN) {
		cr_assert(p->endlist);
		cr_assert_eq(p->n, q->n);
		cr_assert_eq(p->msn, q->msn);
	}
	if (q->endlist)
		return;
	/* sliding: the window only moves forward */
	if (p->msn < q->msn)
		dump_index();
	cr_assert_geq(p->msn, q->msn, "media sequence went back (kind %d): "
		      "%llu then %llu, now %lld", k,
		      (unsigned long long)q->msn, (unsigned long long)p->msn,
		      (long long)(m->now - B) / 1000000);
	cr_assert_geq(p->msn + p->n, q->msn + q->n, "segments vanished");
	/* 5: EVENT only grows */
	if (q->type && strcmp(q->type, "EVENT") == 0) {
		if (p->msn != q->msn)
			dump_index();
		cr_assert_eq(p->msn, q->msn, "an EVENT playlist (kind %d) "
			     "lost its head: %llu then %llu", k,
			     (unsigned long long)q->msn,
			     (unsigned long long)p->msn);
		cr_assert_geq(p->n, q->n);
	}
}

static void check_kind(struct sim *m, int k, int64_t t0, int finished,
		       int was_finished)
{
	struct sd_hls_req req = kind_req(k, t0);
	static struct parsed p;
	int64_t live = finished ? ix.e[ix.n - 1].wall_ns : m->now;
	char *text = NULL;
	int err;

	req.uri = "data.ts";
	err = sd_hls_playlist(&ix, m->size, finished, t0, live, &req, &text);
	if (err == -ENOENT)
		return;
	cr_assert_eq(err, 0);
	parse(text, &p);
	check_one(&p, finished);
	cr_assert_eq(p.start, req.start.kind != SD_START_NONE,
		     "EXT-X-START without a start, or none with one");
	if (finished)
		cr_assert(p.endlist && p.type && strcmp(p.type, "VOD") == 0);
	if (!finished && (k == K_LIVE || k == K_WINDOW || k == K_BEHIND)) {
		/* sliding: RFC 8216 6.2.2, 3 target durations after the
		 * first segment, unless it is the recording's first */
		cr_assert_null(p.type);
		cr_assert_not(p.endlist);
		int64_t after = 0;

		for (size_t i = 1; i < p.n; i++)
			after += p.s[i].extinf_ms;
		cr_assert(after >= 3000 * p.target || p.msn == 0,
			  "sliding playlist holds %lld ms after its first "
			  "segment, target %lld s:\n%s", (long long)after,
			  (long long)p.target, text);
	}
	if (!finished && k == K_LIVE)
		/* live: ends with the newest complete segment */
		cr_assert_eq(p.s[p.n - 1].off + p.s[p.n - 1].len,
			     ix.e[ix.n - 1].offset, "%s", text);
	if (!finished && k == K_BEHIND && p.s[0].pdt_ns >= 0) {
		/* delayed live begins at live - 20 s: on the keyframe
		 * before it, or the first one after a gap it falls in */
		int64_t t = m->now - S(20), bound = INT64_MAX;

		for (size_t i = 0; i < ix.n; i++)
			if ((ix.e[i].flags & KEY) && ix.e[i].wall_ns > t) {
				bound = ix.e[i].wall_ns;
				break;
			}
		cr_assert_leq(p.s[0].pdt_ns / 1000000, bound / 1000000,
			      "start=-20 at %lld begins at %lld:\n%s",
			      (long long)t, (long long)p.s[0].pdt_ns, text);
	}
	check_reload(m, k, &p, finished, was_finished);
	m->prev[k] = p;
	m->have_prev[k] = 1;
	free(text);
}

Test(hls, rules_hold_over_many_recordings_and_reloads)
{
	unsigned playlists = 0;

	for (uint64_t seed = 1; seed <= 16; seed++) {
		static struct sim m;
		int was_finished = 0;

		memset(&m, 0, sizeof(m));
		memset(seen_set, 0, sizeof(seen_set));
		m.rng = seed * 0x9e3779b97f4a7c15ULL;
		m.now = B;
		m.gap_end = B;
		sd_index_free(&ix);
		for (int step = 0; step < 1000; step++) {
			int finished;

			sim_step(&m);
			if (!m.ever || ix.n == 0)
				continue;
			finished = !m.connected;
			for (int k = 0; k < K_N; k++) {
				check_kind(&m, k, ix.e[0].wall_ns, finished,
					   was_finished);
				playlists++;
			}
			was_finished = finished;
		}
	}
	cr_log_info("%u playlists checked", playlists);
	cr_assert_gt(playlists, 50000);
}
