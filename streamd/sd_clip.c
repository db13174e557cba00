/*
 * Clips: a range of a recording as an MP4 file that any browser or phone
 * plays and that can be downloaded and kept.  The recording's MPEG-TS is
 * remuxed, not transcoded: its packets are copied into the MP4 as they
 * are, so a clip of an hour costs a read of that hour and a few seconds
 * of CPU, and keeps the encoder's quality; transcoding would cost a core
 * for about the clip's length and lose quality.  The range already
 * starts on a keyframe (sd_route_play.c resolves it as for .ts), so the
 * first packet of the clip decodes by itself.
 *
 * The moov atom (the index of every sample) goes first ("faststart"), so
 * a player starts while the file still downloads; libavformat writes it
 * last and then moves the samples behind it, which needs an output it
 * can seek and read back.  The clip so goes into an unlinked temporary
 * file (sd_clip_tmpfile), which libavformat opens by its /proc/self/fd
 * name (its file protocol, for both the writes and the read-back of the
 * move), and the HTTP side sends it from there with sendfile.  Nothing
 * is left behind on disk whatever happens to the process.
 *
 * AAC comes in a TS with ADTS headers on every frame, which MP4 does not
 * take; the mp4 muxer inserts the aac_adtstoasc filter by itself when it
 * sees one (libavformat's automatic bitstream filters, on by default;
 * checked with libavformat 59, Debian 12's), so packets go in as read.
 *
 * Timestamps: the first is made 0 (avoid_negative_ts make_zero), and a
 * timestamp that goes backwards (an encoder's reconnection within the
 * range starts a new clock) is moved up to continue the stream, since
 * an MP4 track's decode times must increase.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavformat/avformat.h>

#include "streamd-int.h"

/* The output stream of each input stream, and what keeps its decode
 * times increasing. */
struct track {
	int out;		/* -1: dropped */
	int64_t shift;		/* added to every timestamp, output units */
	int64_t last_dts;
	int seen;
};

int sd_clip_filename(const char *name, int64_t start_ns, int64_t dur_ns,
		     char *buf, size_t len)
{
	time_t t = (time_t)(start_ns / SD_NS - (start_ns % SD_NS < 0));
	int64_t secs = (dur_ns + SD_NS / 2) / SD_NS;
	struct tm tm;
	char when[24];
	int n;

	if (!gmtime_r(&t, &tm) ||
	    strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm) == 0)
		return -EINVAL;
	n = snprintf(buf, len, "%s-%s-%" PRId64 "s.mp4", name, when,
		     secs < 1 ? (int64_t)1 : secs);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

/* O_TMPFILE in @dir; -errno when the directory or its file system does
 * not allow it. */
static int tmpfile_in(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int sd_clip_tmpfile(const char *dir)
{
	const char *tmp = getenv("TMPDIR");
	char path[1024];
	int fd = -ENOENT;

	if (dir && *dir)
		fd = tmpfile_in(dir);
	if (fd >= 0)
		return fd;
	if (!tmp || !*tmp)
		tmp = "/tmp";
	fd = tmpfile_in(tmp);
	if (fd >= 0)
		return fd;
	/* A file system without O_TMPFILE: a named file, gone at once. */
	if (snprintf(path, sizeof(path), "%s/streamd-clip-XXXXXX", tmp) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* Output streams for the video and audio streams of @ic, copied as they
 * are; the others are dropped.  Returns how many, or -errno. */
static int add_streams(AVFormatContext *ic, AVFormatContext *oc,
		       struct track *tr)
{
	int n = 0;

	for (unsigned i = 0; i < ic->nb_streams; i++) {
		const AVStream *is = ic->streams[i];
		enum AVMediaType type = is->codecpar->codec_type;
		AVStream *os;

		tr[i].out = -1;
		if (type != AVMEDIA_TYPE_VIDEO && type != AVMEDIA_TYPE_AUDIO)
			continue;
		if (is->codecpar->codec_id == AV_CODEC_ID_NONE)
			continue; /* found no parameters within the probe */
		os = avformat_new_stream(oc, NULL);
		if (!os)
			return -ENOMEM;
		if (avcodec_parameters_copy(os->codecpar, is->codecpar) < 0)
			return -ENOMEM;
		/* The TS's stream tags mean nothing in MP4. */
		os->codecpar->codec_tag = 0;
		/* A hint: the muxer keeps 90 kHz for video, so pts stay
		 * exact; audio gets its sample rate. */
		os->time_base = is->time_base;
		tr[i].out = os->index;
		n++;
	}
	return n;
}

/* Moves @pkt's timestamps (output units) so the track's decode times
 * increase (see top). */
static void keep_order(struct track *t, AVPacket *pkt)
{
	if (pkt->dts == AV_NOPTS_VALUE)
		pkt->dts = pkt->pts;
	if (pkt->pts == AV_NOPTS_VALUE)
		pkt->pts = pkt->dts;
	pkt->dts += t->shift;
	pkt->pts += t->shift;
	if (t->seen && pkt->dts <= t->last_dts) {
		int64_t d = t->last_dts + 1 - pkt->dts;

		t->shift += d;
		pkt->dts += d;
		pkt->pts += d;
	}
	t->last_dts = pkt->dts;
	t->seen = 1;
}

/* Every packet of @ic into @oc.  0 or -errno. */
static int copy_packets(AVFormatContext *ic, AVFormatContext *oc,
			struct track *tr, struct sd_clip_stats *st)
{
	AVPacket *pkt = av_packet_alloc();
	int r = 0;

	if (!pkt)
		return -ENOMEM;
	for (;;) {
		const AVStream *is, *os;
		struct track *t;

		r = av_read_frame(ic, pkt);
		if (r == AVERROR_EOF) {
			r = 0;
			break;
		}
		if (r < 0)
			break;
		if ((unsigned)pkt->stream_index >= ic->nb_streams ||
		    tr[pkt->stream_index].out < 0 ||
		    (pkt->pts == AV_NOPTS_VALUE && pkt->dts == AV_NOPTS_VALUE)) {
			av_packet_unref(pkt);
			continue;
		}
		t = &tr[pkt->stream_index];
		is = ic->streams[pkt->stream_index];
		os = oc->streams[t->out];
		av_packet_rescale_ts(pkt, is->time_base, os->time_base);
		keep_order(t, pkt);
		pkt->stream_index = t->out;
		pkt->pos = -1;
		if (os->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
			st->video_packets++;
		st->packets++;
		/* Takes the packet's data, whatever it returns. */
		r = av_interleaved_write_frame(oc, pkt);
		if (r < 0)
			break;
	}
	av_packet_free(&pkt);
	return r < 0 ? sd__av_errno(r) : 0;
}

/* The muxer, writing to @fd by its /proc/self/fd name (see top). */
static int open_output(AVFormatContext **out, int fd)
{
	AVFormatContext *oc = NULL;
	char url[64];
	int r;

	snprintf(url, sizeof(url), "/proc/self/fd/%d", fd);
	r = avformat_alloc_output_context2(&oc, NULL, "mp4", url);
	if (r < 0)
		return sd__av_errno(r);
	r = avio_open(&oc->pb, url, AVIO_FLAG_WRITE);
	if (r < 0) {
		avformat_free_context(oc);
		return sd__av_errno(r);
	}
	oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_MAKE_ZERO;
	*out = oc;
	return 0;
}

int sd_clip_remux(const struct sd_media_src *src, int fd,
		  const struct sd_logger *log, struct sd_clip_stats *st)
{
	struct sd__media_in in = { 0 };
	AVFormatContext *oc = NULL;
	AVDictionary *opts = NULL;
	struct track *tr = NULL;
	const char *call = "sd__media_open";
	struct stat sb;
	int err, r;

	memset(st, 0, sizeof(*st));
	err = sd__media_open(src, 0, 0, &in);
	if (err < 0)
		goto out;
	call = "open_output";
	tr = calloc(in.fc->nb_streams ? in.fc->nb_streams : 1, sizeof(*tr));
	err = tr ? open_output(&oc, fd) : -ENOMEM;
	if (err < 0)
		goto out;
	call = "add_streams";
	err = add_streams(in.fc, oc, tr);
	if (err == 0)
		err = -EPROTO;
	if (err < 0)
		goto out;
	st->streams = (unsigned)err;
	call = "avformat_write_header";
	av_dict_set(&opts, "movflags", "+faststart", 0);
	r = avformat_write_header(oc, &opts);
	err = sd__av_errno(r);
	if (err < 0)
		goto out;
	call = "copy_packets";
	err = copy_packets(in.fc, oc, tr, st);
	if (err == 0 && st->packets == 0)
		err = -ENODATA;
	if (err < 0)
		goto out;
	call = "av_write_trailer";
	err = sd__av_errno(av_write_trailer(oc));
	if (err == 0 && avio_closep(&oc->pb) < 0)
		err = -EIO;
	if (err == 0 && fstat(fd, &sb) == 0)
		st->out_bytes = (uint64_t)sb.st_size;
out:
	if (err < 0 && err != -ECANCELED)
		sd__log(log, SD_LOG_WARN, "clip remux: %s: %s", call,
			strerror(-err));
	av_dict_free(&opts);
	if (oc) {
		avio_closep(&oc->pb);
		avformat_free_context(oc);
	}
	sd__media_close(&in);
	free(tr);
	return err;
}
