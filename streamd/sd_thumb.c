/*
 * Thumbnails: one picture of a recording at a time, as a JPEG, for a
 * player's timeline or a list of recordings.  The picture is the
 * keyframe at or before the time asked (sd_route_clip.c finds its
 * offset in the index), decoded by libavcodec from the TS bytes that
 * start there: a keyframe decodes by itself, so the first frame out of
 * the decoder is it, after a few packets at most (a decoder that
 * reorders frames holds the first back until it has seen enough).  It
 * is scaled by libswscale to the width asked, keeping the aspect, and
 * encoded by the mjpeg encoder.
 *
 * The cost is bounded: the caller's source gives at most
 * SD_THUMB_MAX_BYTES, and the decoder is fed at most @max_packets video
 * packets; a stream that yields no picture within that (a damaged
 * keyframe) fails instead of decoding on.  Frame threads are off: they
 * would hold the first picture back by a frame per thread, and the
 * media workers are few and run thumbnails side by side already.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>

#include "streamd-int.h"

/* What is probed before decoding: the keyframe's parameter sets come
 * with it, so a little suffices. */
#define THUMB_PROBE_BYTES (512 * 1024)
#define THUMB_ANALYZE_US 500000
/* mjpeg's quantiser scale: 2 (best) to 31; 4 is indistinguishable from
 * the source at thumbnail sizes and a third of 2's bytes. */
#define THUMB_QSCALE 4

void sd_thumb_size(unsigned sw, unsigned sh, unsigned want, unsigned *w,
		   unsigned *h)
{
	uint64_t hh;

	if (want == 0 || sw == 0) {
		*w = sw;
		*h = sh;
		return;
	}
	/* The nearest even height to sh * want / sw. */
	hh = ((uint64_t)sh * want + sw) / (2 * (uint64_t)sw) * 2;
	*w = want;
	*h = hh < 2 ? 2 : hh > UINT32_MAX ? UINT32_MAX : (unsigned)hh;
}

/* The first picture of video stream @vs.  0 with @frame filled, or
 * -errno. */
static int decode_first(AVFormatContext *fc, int vs, unsigned max_packets,
			AVFrame *frame, unsigned *packets)
{
	const AVCodecParameters *par = fc->streams[vs]->codecpar;
	const AVCodec *dec = avcodec_find_decoder(par->codec_id);
	AVCodecContext *ctx = dec ? avcodec_alloc_context3(dec) : NULL;
	AVPacket *pkt = av_packet_alloc();
	int r = dec ? AVERROR(ENOMEM) : AVERROR_DECODER_NOT_FOUND;
	int flushed = 0;

	if (!ctx || !pkt)
		goto out;
	r = avcodec_parameters_to_context(ctx, par);
	if (r < 0)
		goto out;
	ctx->thread_count = 1;
	r = avcodec_open2(ctx, dec, NULL);
	if (r < 0)
		goto out;
	for (;;) {
		r = avcodec_receive_frame(ctx, frame);
		if (r == 0 || r == AVERROR_EOF || flushed)
			break;
		if (r != AVERROR(EAGAIN))
			goto out;
		r = *packets < max_packets ? av_read_frame(fc, pkt) :
					     AVERROR_EOF;
		if (r == 0 && pkt->stream_index != vs) {
			av_packet_unref(pkt);
			continue;
		}
		if (r == 0) {
			(*packets)++;
			r = avcodec_send_packet(ctx, pkt);
			av_packet_unref(pkt);
			/* A damaged packet: the next may still decode. */
			if (r == AVERROR_INVALIDDATA)
				r = 0;
		} else if (r == AVERROR_EOF) {
			flushed = 1;
			r = avcodec_send_packet(ctx, NULL);
		}
		if (r < 0)
			goto out;
	}
	if (r == AVERROR_EOF || (r == AVERROR(EAGAIN) && flushed))
		r = AVERROR_EOF;
out:
	av_packet_free(&pkt);
	avcodec_free_context(&ctx);
	return r;
}

/* @in scaled to @w x @h in full-range 4:2:0 (what YUVJ420P means) in a
 * new frame *@out.  0 or an AVERROR. */
static int scale(const AVFrame *in, unsigned w, unsigned h, AVFrame **out)
{
	AVFrame *o = av_frame_alloc();
	struct SwsContext *sws;
	const int *coef = sws_getCoefficients(SWS_CS_DEFAULT);
	int r;

	if (!o)
		return AVERROR(ENOMEM);
	/* Plain YUV420P with a full output range rather than YUVJ420P,
	 * which libswscale warns about as deprecated: the same bytes. */
	sws = sws_getContext(in->width, in->height, in->format, (int)w, (int)h,
			     AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
	if (!sws) {
		av_frame_free(&o);
		return AVERROR(EINVAL);
	}
	sws_setColorspaceDetails(sws, coef,
				 in->color_range == AVCOL_RANGE_JPEG, coef, 1,
				 0, 1 << 16, 1 << 16);
	o->format = AV_PIX_FMT_YUVJ420P;
	o->width = (int)w;
	o->height = (int)h;
	o->color_range = AVCOL_RANGE_JPEG;
	r = av_frame_get_buffer(o, 0);
	if (r == 0)
		r = sws_scale(sws, (const uint8_t *const *)in->data,
			      in->linesize, 0, in->height, o->data,
			      o->linesize) > 0 ? 0 : AVERROR(EINVAL);
	sws_freeContext(sws);
	if (r < 0)
		av_frame_free(&o);
	*out = o;
	return r;
}

/* @pic as a JPEG into *@t.  0 or an AVERROR. */
static int encode(const AVFrame *pic, struct sd_thumb *t)
{
	const AVCodec *enc = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
	AVCodecContext *ec = enc ? avcodec_alloc_context3(enc) : NULL;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_clone(pic);
	int r = enc ? AVERROR(ENOMEM) : AVERROR_ENCODER_NOT_FOUND;

	if (!ec || !pkt || !f)
		goto out;
	ec->width = pic->width;
	ec->height = pic->height;
	ec->pix_fmt = AV_PIX_FMT_YUVJ420P;
	ec->color_range = AVCOL_RANGE_JPEG;
	ec->time_base = (AVRational){ 1, 25 };
	ec->flags |= AV_CODEC_FLAG_QSCALE;
	ec->global_quality = FF_QP2LAMBDA * THUMB_QSCALE;
	r = avcodec_open2(ec, enc, NULL);
	if (r < 0)
		goto out;
	f->quality = ec->global_quality;
	f->pts = 0;
	r = avcodec_send_frame(ec, f);
	if (r == 0)
		r = avcodec_receive_packet(ec, pkt);
	if (r < 0)
		goto out;
	t->jpeg = malloc((size_t)pkt->size);
	if (!t->jpeg) {
		r = AVERROR(ENOMEM);
		goto out;
	}
	memcpy(t->jpeg, pkt->data, (size_t)pkt->size);
	t->len = (size_t)pkt->size;
	t->width = (unsigned)pic->width;
	t->height = (unsigned)pic->height;
out:
	av_frame_free(&f);
	av_packet_free(&pkt);
	avcodec_free_context(&ec);
	return r;
}

int sd_thumb_make(const struct sd_media_src *src, unsigned width,
		  unsigned max_packets, const struct sd_logger *log,
		  struct sd_thumb *out)
{
	struct sd__media_in in = { 0 };
	AVFrame *frame = av_frame_alloc(), *pic = NULL;
	const char *call = "sd__media_open";
	unsigned w, h, packets = 0;
	int err, vs, r;

	memset(out, 0, sizeof(*out));
	if (!frame)
		return -ENOMEM;
	err = sd__media_open(src, THUMB_PROBE_BYTES, THUMB_ANALYZE_US, &in);
	if (err < 0)
		goto fail;
	call = "av_find_best_stream";
	vs = av_find_best_stream(in.fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	err = vs < 0 ? -EPROTO : 0;
	if (err < 0)
		goto fail;
	call = "decode";
	r = decode_first(in.fc, vs, max_packets ? max_packets :
			 SD_THUMB_MAX_PACKETS, frame, &packets);
	err = r == AVERROR_EOF ? -ENODATA : sd__av_errno(r);
	if (err == 0 && (frame->width <= 0 || frame->height <= 0))
		err = -EPROTO;
	if (err < 0)
		goto fail;
	sd_thumb_size((unsigned)frame->width, (unsigned)frame->height, width,
		      &w, &h);
	call = "scale";
	err = sd__av_errno(scale(frame, w, h, &pic));
	if (err < 0)
		goto fail;
	call = "encode";
	err = sd__av_errno(encode(pic, out));
	if (err < 0)
		goto fail;
	out->packets = packets;
	av_frame_free(&pic);
	av_frame_free(&frame);
	sd__media_close(&in);
	return 0;
fail:
	if (err != -ECANCELED)
		sd__log(log, SD_LOG_WARN, "thumbnail: %s: %s (%u video "
			"packets)", call, strerror(-err), packets);
	av_frame_free(&pic);
	av_frame_free(&frame);
	sd__media_close(&in);
	return err;
}
