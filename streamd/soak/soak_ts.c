/*
 * The deterministic MPEG-TS generator (layout in soak_ts.h).  Everything
 * a packet depends on besides its index is computed once by
 * soak_ts_init(): the PAT and PMT sections, a silent AAC frame, and the
 * head of every video access unit (access unit delimiter, SPS and PPS
 * for an IDR, the slice, the filler NAL's header) for both IDR ids and
 * the 16 frame numbers.  A packet is then its header, its adaptation
 * field, at most one PES header and a slice of one of those templates,
 * over pseudo-random filler bytes, so producing or checking one costs a
 * few hundred nanoseconds whatever its offset.
 *
 * The H.264 is built bit by bit from the syntax of ITU-T H.264 (7.3):
 * Constrained Baseline, CAVLC, pic_order_cnt_type 2, 20x15 macroblocks.
 * An IDR codes every macroblock as I_16x16 with DC prediction and no
 * residual (a flat grey picture); a P frame skips every macroblock.  The
 * audio frame is an ADTS header over one single-channel element with no
 * spectral bands (ISO/IEC 14496-3 4.4.2), which decodes to silence.
 */
#include <errno.h>
#include <string.h>

#include "soak_ts.h"

#define PKT SOAK_TS_PACKET
#define FRAME_90K (90000 / SOAK_TS_FPS)
#define AUDIO_90K 1920		/* 1024 samples at 48 kHz */
#define MB_W 20
#define MB_H 15
#define LOG2_MAX_FRAME_NUM 4
#define PES_VIDEO_HEAD 19	/* start code .. DTS */
#define AF_PLAIN 11		/* length, flags, private data length, 8 */
#define AF_PCR 17		/* the same with a PCR */
#define TS_MASK33 ((UINT64_C(1) << 33) - 1)

/* ------------------------------------------------------------------ */
/* Bit writing and NAL units                                           */
/* ------------------------------------------------------------------ */

struct bits {
	uint8_t b[SOAK_TS_TMPL_MAX];
	size_t n;		/* bits written */
};

static void put(struct bits *w, uint32_t v, unsigned n)
{
	while (n--) {
		size_t i = w->n >> 3;

		if (i >= sizeof(w->b))
			return;
		if ((w->n & 7) == 0)
			w->b[i] = 0;
		w->b[i] |= (uint8_t)(((v >> n) & 1) << (7 - (w->n & 7)));
		w->n++;
	}
}

/* Exp-Golomb ue(v) and se(v). */
static void ue(struct bits *w, uint32_t v)
{
	unsigned len = 0;

	for (uint32_t x = v + 1; x > 1; x >>= 1)
		len++;
	put(w, 0, len);
	put(w, v + 1, len + 1);
}

static void se(struct bits *w, int32_t v)
{
	ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * v));
}

/* rbsp_trailing_bits: a one, then zeros to the byte boundary. */
static void trailing(struct bits *w)
{
	put(w, 1, 1);
	while (w->n & 7)
		put(w, 0, 1);
}

/* Appends a NAL unit (start code, header, the RBSP with emulation
 * prevention) to @t. */
static void nal(struct soak_ts_tmpl *t, uint8_t header, const struct bits *w)
{
	static const uint8_t start[4] = { 0, 0, 0, 1 };
	unsigned zeros = 0;

	if (t->len + 5 + w->n / 8 * 3 / 2 > sizeof(t->b))
		return;
	memcpy(t->b + t->len, start, 4);
	t->b[t->len + 4] = header;
	t->len += 5;
	for (size_t i = 0; i < w->n / 8; i++) {
		if (zeros >= 2 && w->b[i] <= 3) {
			t->b[t->len++] = 3;
			zeros = 0;
		}
		zeros = w->b[i] ? 0 : zeros + 1;
		t->b[t->len++] = w->b[i];
	}
}

static void sps(struct soak_ts_tmpl *t)
{
	struct bits w = { .n = 0 };

	put(&w, 66, 8);			/* profile_idc: Baseline */
	put(&w, 0xC0, 8);		/* constraint_set0/1: Constrained */
	put(&w, 30, 8);			/* level_idc 3.0 */
	ue(&w, 0);			/* seq_parameter_set_id */
	ue(&w, LOG2_MAX_FRAME_NUM - 4);
	ue(&w, 2);			/* pic_order_cnt_type */
	ue(&w, 1);			/* max_num_ref_frames */
	put(&w, 0, 1);			/* gaps_in_frame_num_allowed */
	ue(&w, MB_W - 1);
	ue(&w, MB_H - 1);
	put(&w, 1, 1);			/* frame_mbs_only_flag */
	put(&w, 1, 1);			/* direct_8x8_inference_flag */
	put(&w, 0, 1);			/* frame_cropping_flag */
	put(&w, 1, 1);			/* vui_parameters_present_flag */
	put(&w, 0, 4);			/* aspect, overscan, signal, chroma loc */
	put(&w, 1, 1);			/* timing_info_present_flag */
	put(&w, 1, 32);			/* num_units_in_tick */
	put(&w, 2 * SOAK_TS_FPS, 32);	/* time_scale */
	put(&w, 1, 1);			/* fixed_frame_rate_flag */
	put(&w, 0, 4);			/* hrd x2, pic_struct, restriction */
	trailing(&w);
	nal(t, 0x67, &w);
}

static void pps(struct soak_ts_tmpl *t)
{
	struct bits w = { .n = 0 };

	ue(&w, 0);			/* pic_parameter_set_id */
	ue(&w, 0);			/* seq_parameter_set_id */
	put(&w, 0, 2);			/* CAVLC; no bottom-field POC */
	ue(&w, 0);			/* num_slice_groups_minus1 */
	ue(&w, 0);			/* num_ref_idx_l0_default_minus1 */
	ue(&w, 0);			/* num_ref_idx_l1_default_minus1 */
	put(&w, 0, 3);			/* weighted_pred, weighted_bipred */
	se(&w, 0);			/* pic_init_qp_minus26 */
	se(&w, 0);			/* pic_init_qs_minus26 */
	se(&w, 0);			/* chroma_qp_index_offset */
	put(&w, 1, 1);			/* deblocking_filter_control_present */
	put(&w, 0, 2);			/* constrained_intra, redundant_pic_cnt */
	trailing(&w);
	nal(t, 0x68, &w);
}

/* A whole-picture slice: an IDR of grey I_16x16 macroblocks (idr_pic_id
 * @id), or a P slice with frame_num @id whose macroblocks are skipped. */
static void slice(struct soak_ts_tmpl *t, int idr, unsigned id)
{
	struct bits w = { .n = 0 };

	ue(&w, 0);			/* first_mb_in_slice */
	ue(&w, idr ? 7 : 5);		/* slice_type: all I / all P */
	ue(&w, 0);			/* pic_parameter_set_id */
	put(&w, idr ? 0 : id, LOG2_MAX_FRAME_NUM);	/* frame_num */
	if (idr) {
		ue(&w, id);		/* idr_pic_id */
		put(&w, 0, 2);		/* no_output_of_prior, long_term */
	} else {
		put(&w, 0, 1);		/* num_ref_idx_active_override */
		put(&w, 0, 1);		/* ref_pic_list_modification_l0 */
		put(&w, 0, 1);		/* adaptive_ref_pic_marking_mode */
	}
	se(&w, 0);			/* slice_qp_delta */
	ue(&w, 1);			/* disable_deblocking_filter_idc */
	if (!idr) {
		ue(&w, MB_W * MB_H);	/* mb_skip_run: all of them */
	} else {
		for (unsigned i = 0; i < MB_W * MB_H; i++) {
			ue(&w, 3);	/* mb_type I_16x16_2_0_0: DC */
			ue(&w, 0);	/* intra_chroma_pred_mode: DC */
			se(&w, 0);	/* mb_qp_delta */
			put(&w, 1, 1);	/* coeff_token: no DC coefficients */
		}
	}
	trailing(&w);
	nal(t, idr ? 0x65 : 0x41, &w);
}

/* The head of an access unit, up to the filler NAL's payload. */
static void access_unit(struct soak_ts_tmpl *t, int idr, unsigned id)
{
	static const uint8_t aud[6] = { 0, 0, 0, 1, 0x09, 0xF0 };
	static const uint8_t filler[4] = { 0, 0, 1, 0x0C };

	t->len = 0;
	memcpy(t->b, aud, sizeof(aud));
	t->len = sizeof(aud);
	if (idr) {
		sps(t);
		pps(t);
	}
	slice(t, idr, id);
	memcpy(t->b + t->len, filler, sizeof(filler));
	t->len += sizeof(filler);
}

/* ------------------------------------------------------------------ */
/* PSI and audio                                                       */
/* ------------------------------------------------------------------ */

static uint32_t crc32_mpeg(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFF;

	while (n--) {
		crc ^= (uint32_t)*p++ << 24;
		for (int i = 0; i < 8; i++)
			crc = crc & 0x80000000 ? (crc << 1) ^ 0x04C11DB7 :
						 crc << 1;
	}
	return crc;
}

/* A section payload (pointer field, @sec of @n bytes, its CRC, 0xFF
 * stuffing) filling @out's @cap bytes. */
static void section(uint8_t *out, size_t cap, uint8_t *sec, size_t n)
{
	uint32_t crc;

	sec[1] = (uint8_t)(0xB0 | ((n + 4 - 3) >> 8));
	sec[2] = (uint8_t)(n + 4 - 3);
	crc = crc32_mpeg(sec, n);
	memset(out, 0xFF, cap);
	out[0] = 0;
	memcpy(out + 1, sec, n);
	for (int i = 0; i < 4; i++)
		out[1 + n + i] = (uint8_t)(crc >> (24 - 8 * i));
}

static void psi(struct soak_ts *g)
{
	uint8_t pat[] = { 0x00, 0, 0, 0x00, 0x01, 0xC1, 0, 0, 0x00, 0x01,
			  0xE0 | SOAK_TS_PID_PMT >> 8, SOAK_TS_PID_PMT & 0xFF };
	uint8_t pmt[] = { 0x02, 0, 0, 0x00, 0x01, 0xC1, 0, 0,
			  0xE0 | SOAK_TS_PID_VIDEO >> 8, SOAK_TS_PID_VIDEO & 0xFF,
			  0xF0, 0x00,
			  0x1B, 0xE0 | SOAK_TS_PID_VIDEO >> 8,
			  SOAK_TS_PID_VIDEO & 0xFF, 0xF0, 0x00,
			  0x0F, 0xE0 | SOAK_TS_PID_AUDIO >> 8,
			  SOAK_TS_PID_AUDIO & 0xFF, 0xF0, 0x00 };

	section(g->pat, PKT - 4 - AF_PLAIN, pat, sizeof(pat));
	section(g->pmt, PKT - 4 - AF_PLAIN, pmt, sizeof(pmt));
}

/* ADTS (MPEG-4, no CRC, AAC LC, 48 kHz, one channel, 11 bytes), then a
 * raw block: SCE, global_gain 100, long window with max_sfb 0, no
 * pulse/TNS/gain control, END. */
static void adts(struct soak_ts *g)
{
	struct bits w = { .n = 0 };

	put(&w, 0xFFF, 12);		/* syncword */
	put(&w, 0, 1);			/* MPEG-4 */
	put(&w, 0, 2);			/* layer */
	put(&w, 1, 1);			/* protection_absent */
	put(&w, 1, 2);			/* profile: LC */
	put(&w, 3, 4);			/* sampling_frequency_index: 48 kHz */
	put(&w, 0, 1);			/* private */
	put(&w, 1, 3);			/* channel_configuration */
	put(&w, 0, 4);			/* original, home, copyright x2 */
	put(&w, sizeof(g->adts), 13);	/* frame_length */
	put(&w, 0x7FF, 11);		/* buffer fullness: VBR */
	put(&w, 0, 2);			/* one raw data block */
	put(&w, 0, 3);			/* ID_SCE */
	put(&w, 0, 4);			/* element_instance_tag */
	put(&w, 100, 8);		/* global_gain */
	put(&w, 0, 4);			/* reserved, ONLY_LONG, sine window */
	put(&w, 0, 6);			/* max_sfb */
	put(&w, 0, 1);			/* predictor_data_present */
	put(&w, 0, 3);			/* pulse, tns, gain control */
	put(&w, 7, 3);			/* ID_END */
	memcpy(g->adts, w.b, sizeof(g->adts));
}

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

/* ES bytes of a frame's video PES: in its first packet, in the others. */
#define ES_FIRST (PKT - 4 - AF_PCR - PES_VIDEO_HEAD)
#define ES_NEXT (PKT - 4 - AF_PLAIN)

/* The fewest ES bytes a keyframe's video PES gets at @bitrate. */
static uint64_t frame_capacity(uint64_t bitrate)
{
	uint64_t n = bitrate / (PKT * 8 * SOAK_TS_FPS);

	return n < 4 ? 0 : ES_FIRST + (n - 4) * ES_NEXT;
}

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

int soak_ts_init(struct soak_ts *g, uint64_t seed, unsigned stream,
		 uint64_t bitrate)
{
	if (bitrate < SOAK_TS_BITRATE_MIN || bitrate > UINT64_C(100000000000))
		return -EINVAL;
	memset(g, 0, sizeof(*g));
	g->seed = seed;
	g->stream = stream;
	g->bitrate = bitrate;
	g->key = mix(mix(seed) ^ stream);
	g->tag = (uint16_t)(g->key >> 48);
	psi(g);
	adts(g);
	for (unsigned i = 0; i < 2; i++)
		access_unit(&g->idr[i], 1, i);
	for (unsigned i = 0; i < 16; i++)
		access_unit(&g->p[i], 0, i);
	/* The smallest keyframe slot must hold the IDR's access unit. */
	return frame_capacity(g->bitrate) >= g->idr[1].len + 1 ? 0 : -EINVAL;
}

/* A(f): the first packet of frame @f. */
static uint64_t frame_start(const struct soak_ts *g, uint64_t f)
{
	return (uint64_t)((unsigned __int128)f * g->bitrate /
			  (PKT * 8 * SOAK_TS_FPS));
}

static uint64_t frame_of_packet(const struct soak_ts *g, uint64_t k)
{
	uint64_t f = (uint64_t)((unsigned __int128)k * (PKT * 8 * SOAK_TS_FPS) /
				g->bitrate);

	while (f > 0 && frame_start(g, f) > k)
		f--;
	while (frame_start(g, f + 1) <= k)
		f++;
	return f;
}

uint64_t soak_ts_frame_offset(const struct soak_ts *g, uint64_t frame)
{
	return frame_start(g, frame) * PKT;
}

uint64_t soak_ts_frame_of(const struct soak_ts *g, uint64_t offset)
{
	return frame_of_packet(g, offset / PKT);
}

/* ------------------------------------------------------------------ */
/* Packets                                                             */
/* ------------------------------------------------------------------ */

static void ts_header(uint8_t *p, int pusi, unsigned pid, uint64_t cc)
{
	p[0] = 0x47;
	p[1] = (uint8_t)((pusi ? 0x40 : 0) | pid >> 8);
	p[2] = (uint8_t)(pid & 0xFF);
	p[3] = (uint8_t)(0x30 | (cc & 15));	/* adaptation field + payload */
}

/* The adaptation field after the header, @total bytes (stuffed with
 * 0xFF past the private data): the random access flag for a keyframe,
 * the PCR when @pcr27 is given, the tag and packet index @k. */
static void adaptation(const struct soak_ts *g, uint8_t *p, uint64_t k,
		       int key, const uint64_t *pcr27, size_t total)
{
	uint8_t *a = p + 4;
	size_t i = 2;

	a[0] = (uint8_t)(total - 1);
	a[1] = (uint8_t)(0x02 | (key ? 0x40 : 0) | (pcr27 ? 0x10 : 0));
	if (pcr27) {
		uint64_t base = (*pcr27 / 300) & TS_MASK33;
		unsigned ext = (unsigned)(*pcr27 % 300);

		a[i++] = (uint8_t)(base >> 25);
		a[i++] = (uint8_t)(base >> 17);
		a[i++] = (uint8_t)(base >> 9);
		a[i++] = (uint8_t)(base >> 1);
		a[i++] = (uint8_t)((base & 1) << 7 | 0x7E | ext >> 8);
		a[i++] = (uint8_t)ext;
	}
	a[i++] = 8;
	a[i++] = (uint8_t)(g->tag >> 8);
	a[i++] = (uint8_t)g->tag;
	for (int s = 40; s >= 0; s -= 8)
		a[i++] = (uint8_t)(k >> s);
	memset(a + i, 0xFF, total - i);
}

/* A PTS or DTS field with its 4-bit @prefix. */
static void timestamp(uint8_t *p, unsigned prefix, uint64_t ts)
{
	ts &= TS_MASK33;
	p[0] = (uint8_t)(prefix << 4 | ((ts >> 29) & 0x0E) | 1);
	p[1] = (uint8_t)(ts >> 22);
	p[2] = (uint8_t)(((ts >> 14) & 0xFE) | 1);
	p[3] = (uint8_t)(ts >> 7);
	p[4] = (uint8_t)(((ts << 1) & 0xFE) | 1);
}

/* Pseudo-random bytes, none zero (no start code can appear in them). */
static void filler(const struct soak_ts *g, uint64_t k, uint8_t *out)
{
	uint64_t s = g->key ^ (k * UINT64_C(0xD1B54A32D192ED03));

	for (size_t i = 0; i < PKT; i += 8) {
		uint64_t x = mix(s + i) | UINT64_C(0x0101010101010101);

		memcpy(out + i, &x, PKT - i < 8 ? PKT - i : 8);
	}
}

static void psi_packet(const struct soak_ts *g, uint8_t *out, uint64_t k,
		       uint64_t f, unsigned j)
{
	ts_header(out, 1, j == 0 ? 0 : SOAK_TS_PID_PMT, f / SOAK_TS_GOP);
	adaptation(g, out, k, 0, NULL, AF_PLAIN);
	memcpy(out + 4 + AF_PLAIN, j == 0 ? g->pat : g->pmt,
	       PKT - 4 - AF_PLAIN);
}

/* The audio frames whose time falls in frame @f, in one PES. */
static void audio_packet(const struct soak_ts *g, uint8_t *out, uint64_t k,
			 uint64_t f)
{
	uint64_t i0 = (f * FRAME_90K + AUDIO_90K - 1) / AUDIO_90K;
	uint64_t i1 = ((f + 1) * FRAME_90K + AUDIO_90K - 1) / AUDIO_90K;
	size_t na = (size_t)(i1 - i0), len = 8 + na * sizeof(g->adts);
	uint8_t *p = out + PKT - 6 - len;

	ts_header(out, 1, SOAK_TS_PID_AUDIO, f);
	adaptation(g, out, k, 0, NULL, PKT - 4 - 6 - len);
	memcpy(p, "\0\0\1\xC0", 4);
	p[4] = (uint8_t)(len >> 8);
	p[5] = (uint8_t)len;
	p[6] = 0x80;
	p[7] = 0x80;			/* PTS only */
	p[8] = 5;
	timestamp(p + 9, 2, SOAK_TS_PTS0 + i0 * AUDIO_90K);
	for (size_t i = 0; i < na; i++)
		memcpy(p + 14 + i * sizeof(g->adts), g->adts, sizeof(g->adts));
}

/* Video packet @vi of the @v that carry frame @f, which begins at packet
 * @a: the access unit's template, then filler up to its last byte, the
 * filler NAL's trailing bits. */
static void video_packet(const struct soak_ts *g, uint8_t *out, uint64_t k,
			 uint64_t f, uint64_t a, unsigned vi, unsigned v)
{
	unsigned gi = (unsigned)(f % SOAK_TS_GOP);
	const struct soak_ts_tmpl *t = gi ? &g->p[gi & 15] :
					    &g->idr[(f / SOAK_TS_GOP) & 1];
	uint64_t before = a - f - 2 * ((f + SOAK_TS_GOP - 1) / SOAK_TS_GOP);
	size_t pos = 4 + AF_PLAIN, es = ES_FIRST + (size_t)(vi - 1) * ES_NEXT;

	filler(g, k, out);
	ts_header(out, vi == 0, SOAK_TS_PID_VIDEO, before + vi);
	if (vi == 0) {
		uint64_t pcr = (uint64_t)((unsigned __int128)k * PKT * 8 *
					  27000000 / g->bitrate);
		uint64_t dts = SOAK_TS_PTS0 + f * FRAME_90K;
		uint8_t *p = out + 4 + AF_PCR;

		adaptation(g, out, k, gi == 0, &pcr, AF_PCR);
		memcpy(p, "\0\0\1\xE0\0\0\x80\xC0\x0A", 9);
		timestamp(p + 9, 3, dts + FRAME_90K);
		timestamp(p + 14, 1, dts);
		pos = 4 + AF_PCR + PES_VIDEO_HEAD;
		es = 0;
	} else {
		adaptation(g, out, k, 0, NULL, AF_PLAIN);
	}
	if (es < t->len) {
		size_t n = t->len - es < PKT - pos ? t->len - es : PKT - pos;

		memcpy(out + pos, t->b + es, n);
	}
	if (vi + 1 == v)
		out[PKT - 1] = 0x80;	/* rbsp_trailing_bits */
}

void soak_ts_packet(const struct soak_ts *g, uint64_t k, uint8_t *out)
{
	uint64_t f = frame_of_packet(g, k), a = frame_start(g, f);
	unsigned n = (unsigned)(frame_start(g, f + 1) - a);
	unsigned j = (unsigned)(k - a), h = f % SOAK_TS_GOP ? 0 : 2;

	if (j < h)
		psi_packet(g, out, k, f, j);
	else if (j == h)
		audio_packet(g, out, k, f);
	else
		video_packet(g, out, k, f, a, j - h - 1, n - h - 1);
}

void soak_ts_read(const struct soak_ts *g, uint64_t off, void *buf,
		  size_t len)
{
	uint8_t pkt[PKT], *o = buf;

	while (len) {
		size_t in = (size_t)(off % PKT), n = PKT - in < len ? PKT - in :
								    len;

		soak_ts_packet(g, off / PKT, pkt);
		memcpy(o, pkt + in, n);
		o += n, off += n, len -= n;
	}
}

size_t soak_ts_verify(const struct soak_ts *g, uint64_t off, const void *buf,
		      size_t len)
{
	const uint8_t *b = buf;
	uint8_t pkt[PKT];
	size_t done = 0;

	while (done < len) {
		size_t in = (size_t)(off % PKT);
		size_t n = PKT - in < len - done ? PKT - in : len - done;

		soak_ts_packet(g, off / PKT, pkt);
		if (memcmp(pkt + in, b + done, n) != 0) {
			for (size_t i = 0; i < n; i++)
				if (pkt[in + i] != b[done + i])
					return done + i;
		}
		off += n, done += n;
	}
	return len;
}

int soak_ts_locate(const struct soak_ts *g, const uint8_t *pkt,
		   uint64_t *index)
{
	unsigned flags, len, pos;
	uint64_t k = 0;

	if (pkt[0] != 0x47 || !(pkt[3] & 0x20) || pkt[4] < 10)
		return -EINVAL;
	len = pkt[4];
	flags = pkt[5];
	if (!(flags & 0x02))
		return -EINVAL;
	pos = 6 + (flags & 0x10 ? 6 : 0) + (flags & 0x08 ? 6 : 0) +
	      (flags & 0x04 ? 1 : 0);
	if (pos + 9 > 5 + len || pkt[pos] != 8)
		return -EINVAL;
	if ((unsigned)(pkt[pos + 1] << 8 | pkt[pos + 2]) != g->tag)
		return -EXDEV;
	for (unsigned i = 0; i < 6; i++)
		k = k << 8 | pkt[pos + 3 + i];
	*index = k;
	return 0;
}
