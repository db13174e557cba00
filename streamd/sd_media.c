/*
 * Reading a recording's MPEG-TS with libavformat, for the clips
 * (sd_clip.c) and the thumbnails (sd_thumb.c): the bytes come from a
 * caller's source (a player session read on a media worker, or a file
 * in the tests) through a custom AVIOContext, so libavformat never
 * opens anything itself and the recording is read the way every player
 * reads it.  The demuxer is mpegts, named rather than probed: every
 * recording served by time is a TS.  Errors come back as -errno, with
 * the source's own error (-ECANCELED when the request went away)
 * passed through libavformat unchanged.
 */
#include <errno.h>

#include <libavformat/avformat.h>
#include <libavutil/mem.h>

#include "streamd-int.h"

#define MEDIA_IO_BUF (64 * 1024)

/* libavformat's read callback: an errno goes through as AVERROR(errno),
 * which is the same negative number. */
static int media_read(void *opaque, uint8_t *buf, int size)
{
	const struct sd_media_src *src = opaque;
	ssize_t n = src->read(src->arg, buf, (size_t)size);

	if (n == 0)
		return AVERROR_EOF;
	return (int)n;
}

int sd__av_errno(int averr)
{
	if (averr >= 0)
		return 0;
	if (averr == AVERROR_EOF)
		return -ENODATA;
	if (averr == AVERROR_INVALIDDATA || averr == AVERROR_DECODER_NOT_FOUND ||
	    averr == AVERROR_DEMUXER_NOT_FOUND ||
	    averr == AVERROR_STREAM_NOT_FOUND ||
	    averr == AVERROR_MUXER_NOT_FOUND ||
	    averr == AVERROR_ENCODER_NOT_FOUND || averr == AVERROR_PATCHWELCOME)
		return -EPROTO;
	if (averr > -4096) /* an errno */
		return averr;
	return -EIO;
}

int sd__media_open(const struct sd_media_src *src, int64_t probesize,
		   int64_t analyze_us, struct sd__media_in *in)
{
	const AVInputFormat *ts = av_find_input_format("mpegts");
	AVFormatContext *fc = avformat_alloc_context();
	uint8_t *buf = av_malloc(MEDIA_IO_BUF);
	int r = AVERROR(ENOMEM);

	in->fc = NULL;
	in->pb = NULL;
	if (!fc || !buf || !ts)
		goto fail;
	in->pb = avio_alloc_context(buf, MEDIA_IO_BUF, 0, (void *)src,
				    media_read, NULL, NULL);
	if (!in->pb)
		goto fail;
	buf = NULL; /* the context's now */
	fc->pb = in->pb;
	fc->flags |= AVFMT_FLAG_CUSTOM_IO;
	if (probesize > 0)
		fc->probesize = probesize;
	if (analyze_us > 0)
		fc->max_analyze_duration = analyze_us;
	r = avformat_open_input(&fc, NULL, ts, NULL);
	if (r < 0) /* fc is freed, the custom context is not */
		goto fail;
	r = avformat_find_stream_info(fc, NULL);
	if (r < 0)
		goto fail;
	in->fc = fc;
	return 0;
fail:
	av_free(buf);
	avformat_close_input(&fc);
	sd__media_close(in);
	return r == AVERROR(ENOMEM) ? -ENOMEM : sd__av_errno(r);
}

void sd__media_close(struct sd__media_in *in)
{
	if (in->fc)
		avformat_close_input(&in->fc);
	if (in->pb) {
		av_freep(&in->pb->buffer);
		avio_context_free(&in->pb);
	}
}
