/*
 * The media routes: a range of a recording as a downloadable MP4
 * (GET /streams/<name>.mp4?start=&duration=) and one picture of it as a
 * JPEG (GET /streams/<name>/thumb.jpg?t=&width=).  A name, a time and a
 * range are taken exactly as the .ts route takes them (sd_route_play.c's
 * sd_play_* helpers): the same start grammar, the same play token, the
 * same keyframe at or before the start and keyframe nearest its end.
 *
 * Both are work no HTTP thread may do: a clip reads its whole range and
 * remuxes it (sd_clip.c), a thumbnail decodes a keyframe (sd_thumb.c).
 * The route queues a job on the media workers (sd_work.c) and suspends
 * its connection without a response; the job reads the recording
 * through a player session of its own (sd_session.c: the pump, the
 * interval cache and the scheduler's deadlines, as for every player),
 * waiting on a condition for the session's wakes, and its end wakes the
 * connection, whose next access call answers.  For one request:
 *
 *   (none) --route: checks pass, job queued--------------> QUEUED
 *          (refused at once: 400, 404, 416, 503 when admission or the
 *          queue is full; no job)
 *   QUEUED --job_finish: result in, done = 1, sd_req_wake--> DONE
 *   QUEUED --job_cleanup: the connection ended first------> ABANDONED
 *          (cancel set: the job's next read gives up.  MHD ends a
 *          suspended connection only as it stops, since it does not
 *          poll one: a client that leaves earlier is found out when
 *          the answer is sent)
 *   ABANDONED --job_finish: frees the job (and its file)
 *   DONE --job_resume -> job_answer: 200, or the error
 *   DONE --job_cleanup: frees the job
 *
 * j->omu orders job_finish against job_cleanup: whichever comes second
 * frees, and job_finish wakes the request only while holding it, so it
 * never wakes a request that cleanup let go (sd_http.h, invariant 4).
 * The session is closed on the worker before the job finishes, so no
 * session wake reaches a freed job.  Only the request's MHD thread reads
 * the result, after it saw done.
 *
 * A clip's range ends on a keyframe that is recorded: with a duration
 * whose end is still to come (or none, on a live recording) it ends at
 * the newest keyframe, rather than waiting as a .ts body would, since
 * nothing of an MP4 can be sent before its end is known.  Its length
 * is capped by clip_max_duration.  A thumbnail's keyframe is looked up
 * in the thumbnail cache first, on the HTTP thread (a memory lookup);
 * only a miss takes a worker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sd_daemon.h"

/* How long a job waits for its session's wake before it looks at the
 * daemon's stop again. */
#define JOB_WAIT_NS (200 * 1000000LL)

enum job_kind { JOB_CLIP, JOB_THUMB };

struct job {
	struct sd_req *r;
	struct sd_daemon *d;
	enum job_kind kind;
	char name[SD_NAME_MAX + 1];
	uint64_t start, end;	/* data bytes the job reads */
	struct sd_admit_ticket *ticket;

	/* The source: a session read on the worker, which waits on wcv for
	 * the session's wake (woken) or a cancel. */
	struct sd_session *sess;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	int woken;
	atomic_int cancel;	/* the request went away */
	uint64_t got;		/* bytes read */

	/* The result, read by the request's thread once done. */
	int err;
	int64_t t_run, t_end;	/* sd_now() on the worker */
	int fd;			/* the clip (-1: none or handed to MHD) */
	struct sd_clip_stats cst;
	char filename[SD_NAME_MAX + 48];
	char when[40], off[32];
	unsigned width;		/* thumbnail: asked for; 0: own */
	struct sd_thumb_key key;
	struct sd_thumb th;

	pthread_mutex_t omu;	/* done, abandoned: see top */
	atomic_int done;
	int abandoned;
};

static int stopping(struct sd_daemon *d)
{
	int s;

	pthread_mutex_lock(&d->mu);
	s = d->stopping;
	pthread_mutex_unlock(&d->mu);
	return s;
}

static double ms_since(int64_t a, int64_t b)
{
	return (double)(b - a) / 1e6;
}

static struct job *job_new(struct sd_req *r, enum job_kind kind)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->r = r;
	j->d = r->d;
	j->kind = kind;
	j->fd = -1;
	snprintf(j->name, sizeof(j->name), "%s", r->name);
	pthread_mutex_init(&j->wmu, NULL);
	pthread_cond_init(&j->wcv, NULL);
	pthread_mutex_init(&j->omu, NULL);
	return j;
}

static void job_free(struct job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j->th.jpeg);
	sd_capacity_release(j->d, j->ticket);
	pthread_cond_destroy(&j->wcv);
	pthread_mutex_destroy(&j->wmu);
	pthread_mutex_destroy(&j->omu);
	free(j);
}

/* ------------------------------------------------------------------ */
/* On the worker                                                       */
/* ------------------------------------------------------------------ */

/* The session's wake: data came, or it ended (a library or pump thread;
 * must not block). */
static void job_wake(void *arg)
{
	struct job *j = arg;

	pthread_mutex_lock(&j->wmu);
	j->woken = 1;
	pthread_cond_signal(&j->wcv);
	pthread_mutex_unlock(&j->wmu);
}

/* The media source: the session's bytes, waiting for them as a player's
 * connection would, until the range ends; -ECANCELED once the request
 * went away or the daemon stops. */
static ssize_t job_read(void *arg, void *buf, size_t max)
{
	struct job *j = arg;
	struct timespec ts;

	for (;;) {
		ssize_t n;

		if (atomic_load(&j->cancel) || stopping(j->d))
			return -ECANCELED;
		n = sd_session_read(j->sess, buf, max);
		if (n > 0) {
			j->got += (uint64_t)n;
			return n;
		}
		if (n == SD_SESSION_EOF)
			return 0;
		if (n < 0)
			return n;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += JOB_WAIT_NS;
		ts.tv_sec += ts.tv_nsec / SD_NS;
		ts.tv_nsec %= SD_NS;
		pthread_mutex_lock(&j->wmu);
		while (!j->woken && !atomic_load(&j->cancel))
			if (pthread_cond_timedwait(&j->wcv, &j->wmu, &ts))
				break;
		j->woken = 0;
		pthread_mutex_unlock(&j->wmu);
	}
}

static int clip_make(struct job *j, const struct sd_media_src *src)
{
	int err;

	j->fd = sd_clip_tmpfile(j->d->cfg.data_dir);
	if (j->fd < 0) {
		err = j->fd;
		sd_log_error(j->d->log, SD_LOG_ERROR, "clip %s: temporary "
			     "file: %s", j->name, strerror(-err));
		return err;
	}
	err = sd_clip_remux(src, j->fd, &j->d->logger, &j->cst);
	if (err < 0) {
		close(j->fd);
		j->fd = -1;
	}
	return err;
}

static int thumb_make(struct job *j, const struct sd_media_src *src)
{
	int err = sd_thumb_make(src, j->width, SD_THUMB_MAX_PACKETS,
				&j->d->logger, &j->th);
	int64_t ns = (int64_t)sd_now() - j->t_run;

	if (err < 0)
		return err;
	/* Losing the copy only costs the next request a decode. */
	sd_thumb_cache_put(j->d->thumbs, &j->key, j->th.jpeg, j->th.len);
	atomic_fetch_add(&j->d->thumbs_made, 1);
	atomic_fetch_add(&j->d->thumb_ns, (uint64_t)ns);
	sd_log_error(j->d->log, SD_LOG_DEBUG, "thumbnail %s at offset %" PRIu64
		     ": %ux%u, %zu bytes of JPEG from %u video packets, %" PRIu64
		     " bytes read, in %.1f ms", j->name, j->start, j->th.width,
		     j->th.height, j->th.len, j->th.packets, j->got,
		     (double)ns / 1e6);
	return 0;
}

/* Under j->omu: the result is in (see top). */
static void job_finish(struct job *j)
{
	int abandoned;

	pthread_mutex_lock(&j->omu);
	abandoned = j->abandoned;
	if (!abandoned) {
		atomic_store(&j->done, 1);
		sd_req_wake(j->r);
	}
	pthread_mutex_unlock(&j->omu);
	if (abandoned)
		job_free(j);
}

/* A media worker's job (sd_work_fn). */
static void job_run(void *arg, int err)
{
	struct job *j = arg;
	struct sd_media_src src = { job_read, j };
	struct sd_session_opts so = {
		.name = j->name, .start = j->start, .end = j->end,
		.wake = job_wake, .wake_arg = j,
	};

	j->t_run = (int64_t)sd_now();
	if (err == 0 && (atomic_load(&j->cancel) || stopping(j->d)))
		err = -ECANCELED;
	if (err == 0)
		err = sd_session_open(j->d->pump, &so, &j->sess);
	if (err == 0)
		err = j->kind == JOB_CLIP ? clip_make(j, &src) :
					    thumb_make(j, &src);
	/* No session wake after this (sd_session.c, invariant 5). */
	sd_session_close(j->sess);
	j->sess = NULL;
	j->err = err;
	j->t_end = (int64_t)sd_now();
	job_finish(j);
}

/* ------------------------------------------------------------------ */
/* On the request's thread                                             */
/* ------------------------------------------------------------------ */

static void job_cleanup(struct sd_req *r)
{
	struct job *j;

	pthread_mutex_lock(&r->d->mu);
	j = r->priv;
	r->priv = NULL;
	pthread_mutex_unlock(&r->d->mu);
	if (!j)
		return;
	pthread_mutex_lock(&j->omu);
	if (!atomic_load(&j->done)) {
		/* The worker frees it when it finishes (see top). */
		j->abandoned = 1;
		atomic_store(&j->cancel, 1);
		pthread_mutex_lock(&j->wmu);
		pthread_cond_signal(&j->wcv);
		pthread_mutex_unlock(&j->wmu);
		pthread_mutex_unlock(&j->omu);
		return;
	}
	pthread_mutex_unlock(&j->omu);
	job_free(j);
}

/* A failed job's answer. */
static enum MHD_Result job_error(struct sd_req *r, struct job *j)
{
	const char *what = j->kind == JOB_CLIP ? "clip" : "thumbnail";

	switch (j->err) {
	case -ESHUTDOWN:
	case -ECANCELED:
		return sd_reply_error(r, 503, "the server is stopping");
	case -ENOENT:
		return sd_reply_error(r, 404, "no recording called %s",
				      j->name);
	case -ENODATA:
		return sd_reply_error(r, 500, "%s: no %s in the %" PRIu64
				      " bytes read from offset %" PRIu64, what,
				      j->kind == JOB_CLIP ? "packet" :
				      "picture", j->got, j->start);
	case -EPROTO:
		return sd_reply_error(r, 500, "%s: the recording has no %s "
				      "stream libav can read", what,
				      j->kind == JOB_CLIP ? "audio or video" :
				      "video");
	default:
		return sd_reply_error(r, 500, "%s: %s", what,
				      strerror(-j->err));
	}
}

static enum MHD_Result clip_answer(struct sd_req *r, struct job *j)
{
	struct sd_daemon *d = r->d;
	uint64_t size = j->cst.out_bytes;
	struct MHD_Response *resp;
	char disp[sizeof(j->filename) + 40];

	resp = MHD_create_response_from_fd(size, j->fd);
	if (!resp)
		return MHD_NO;
	j->fd = -1; /* MHD's now: closed with the response */
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"",
		 j->filename);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"video/mp4");
	MHD_add_response_header(resp, "Content-Disposition", disp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-cache");
	MHD_add_response_header(resp, "X-Streamd-Start", j->when);
	MHD_add_response_header(resp, "X-Streamd-Offset", j->off);
	r->bytes = size;
	atomic_fetch_add(&d->clips_served, 1);
	atomic_fetch_add(&d->clip_bytes, size);
	atomic_fetch_add(&d->bytes_out, size);
	sd_log_error(d->log, SD_LOG_INFO, "clip %s: %" PRIu64 " bytes of TS "
		     "into %" PRIu64 " bytes of MP4 (%u streams, %" PRIu64
		     " video packets) in %.1f ms", r->url, j->got, size,
		     j->cst.streams, j->cst.video_packets,
		     ms_since(j->t_run, j->t_end));
	return sd_reply(r, 200, resp);
}

static enum MHD_Result jpeg_reply(struct sd_req *r, uint8_t *jpeg, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, jpeg, MHD_RESPMEM_MUST_FREE);

	if (!resp) {
		free(jpeg);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"image/jpeg");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-cache");
	r->bytes = len;
	atomic_fetch_add(&r->d->thumbs_served, 1);
	atomic_fetch_add(&r->d->bytes_out, len);
	return sd_reply(r, 200, resp);
}

static enum MHD_Result job_answer(struct sd_req *r, struct job *j)
{
	uint8_t *jpeg;

	if (j->err < 0)
		return job_error(r, j);
	if (j->kind == JOB_CLIP)
		return clip_answer(r, j);
	jpeg = j->th.jpeg;
	j->th.jpeg = NULL; /* the response's now */
	return jpeg_reply(r, jpeg, j->th.len);
}

/* An access call of a request whose job was queued: answers once it is
 * done, else suspends (sd_http.h, 2). */
static enum MHD_Result job_resume(struct sd_req *r, size_t *upload_size)
{
	struct job *j = r->priv;

	if (upload_size)
		*upload_size = 0; /* a GET's body, if any, is dropped */
	if (!j)
		return MHD_NO;
	for (;;) {
		if (atomic_load(&j->done))
			return job_answer(r, j);
		if (sd_req_suspend(r))
			return MHD_YES;
	}
}

/* Queues @j on the media workers and waits for it suspended.  Takes
 * @j. */
static enum MHD_Result job_submit(struct sd_req *r, struct job *j)
{
	int err = sd_work_submit(r->d->work, job_run, j);

	if (err < 0) {
		job_free(j);
		if (err == -EAGAIN)
			return sd_capacity_busy(r, "media_queue", "refused: too "
						"many clips and thumbnails "
						"waiting for a media worker",
						1);
		if (err == -ESHUTDOWN)
			return sd_reply_error(r, 503, "the server is stopping");
		return sd_reply_error(r, 500, "sd_work_submit: %s",
				      strerror(-err));
	}
	/* From here job_cleanup owns j, whenever the request ends. */
	pthread_mutex_lock(&r->d->mu);
	r->priv = j;
	r->cleanup = job_cleanup;
	pthread_mutex_unlock(&r->d->mu);
	return job_resume(r, NULL);
}

/* ------------------------------------------------------------------ */
/* GET /streams/<name>.mp4?start=&duration=                            */
/* ------------------------------------------------------------------ */

/* The wall time at data offset @off, an entry's from @from on (the end
 * of the recording past the last). */
static int64_t wall_at(const struct sd_stream *s, size_t from, uint64_t off)
{
	const struct sd_index *ix = &s->index;

	for (size_t i = from; i < ix->n; i++)
		if (ix->e[i].offset >= off)
			return ix->e[i].wall_ns;
	return s->end_ns;
}

/* What a clip request asks for, resolved (stream read-locked). */
struct clip_plan {
	uint64_t start, end;
	int64_t begin_wall, span_ns;
	uint64_t bitrate, ino;
	uint32_t data_id;
};

static unsigned clip_resolve(const struct sd_stream *s,
			     const struct sd_start *st, int64_t dur,
			     struct clip_plan *cp, char *msg, size_t len)
{
	struct sd_play_range pr;
	unsigned status = sd_play_range(s, st, dur, &pr, msg, len);

	if (status != 200)
		return status;
	/* A range still to be recorded ends at the newest keyframe (top). */
	cp->end = pr.end == SD_END_LIVE ? pr.hold : pr.end;
	if (cp->end <= pr.start) {
		snprintf(msg, len, "the range has no complete group of "
			 "pictures recorded yet");
		return 416;
	}
	cp->start = pr.start;
	cp->begin_wall = pr.begin_wall;
	cp->span_ns = wall_at(s, pr.key, cp->end) - pr.begin_wall;
	cp->bitrate = s->bitrate;
	cp->ino = s->ino;
	cp->data_id = s->data_id;
	return 200;
}

/* The expected share of the clip's bytes from the disk, for admission:
 * what the interval cache does not hold of them now. */
static double clip_disk_share(struct sd_daemon *d, const struct clip_plan *cp)
{
	if (!d->cache || !cp->ino)
		return 1;
	return 1.0 - sd_cache_held_share(d->cache, cp->ino, cp->data_id,
					 cp->start, cp->end - cp->start);
}

enum MHD_Result sd_route_clip(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	struct sd_daemon *d = r->d;
	const char *dtext = sd_req_arg(r, "duration");
	enum MHD_Result ret = MHD_NO;
	struct clip_plan cp = { 0 };
	struct sd_stream *s;
	struct sd_start st;
	int64_t dur = 0, max;
	unsigned status;
	struct job *j;
	char msg[160];

	(void)upload;
	if (r->calls > 1) /* resumed: the job was queued */
		return job_resume(r, upload_size);
	if (!sd_play_allowed(r, &ret))
		return ret;
	if (sd_play_parse_start(r, "start", &st) < 0)
		return sd_reply_error(r, 400, "bad start: seconds behind live "
				      "(-30), seconds from the start (120) or "
				      "an ISO-8601 time");
	if (dtext && sd_time_parse_duration(dtext, &dur) < 0)
		return sd_reply_error(r, 400, "bad duration: seconds > 0");
	pthread_mutex_lock(&d->knobs_mu);
	max = (int64_t)d->knobs.clip_max_duration_ns;
	pthread_mutex_unlock(&d->knobs_mu);
	if (dur > max)
		return sd_reply_error(r, 400, "duration %.3f s is over "
				      "clip_max_duration (%.0f s)",
				      (double)dur / 1e9, (double)max / 1e9);
	if (sd_play_stream(r, &s, &ret) < 0)
		return ret;
	sd_stream_rdlock(s);
	status = clip_resolve(s, &st, dur, &cp, msg, sizeof(msg));
	sd_stream_unlock(s);
	sd_stream_put(s);
	if (status != 200)
		return sd_reply_error(r, status, "%s", msg);
	/* Without a duration the range runs to the end: capped as well. */
	if (dur == 0 && cp.span_ns > max)
		return sd_reply_error(r, 400, "the clip would last %.3f s, over "
				      "clip_max_duration (%.0f s): give a "
				      "duration", (double)cp.span_ns / 1e9,
				      (double)max / 1e9);
	j = job_new(r, JOB_CLIP);
	if (!j)
		return MHD_NO;
	if (!sd_capacity_play(r, cp.bitrate, clip_disk_share(d, &cp),
			      &j->ticket, &ret)) {
		job_free(j);
		return ret;
	}
	j->start = cp.start;
	j->end = cp.end;
	sd_time_format_iso8601(cp.begin_wall, j->when, sizeof(j->when));
	snprintf(j->off, sizeof(j->off), "%" PRIu64, cp.start);
	sd_clip_filename(j->name, cp.begin_wall, cp.span_ns, j->filename,
			 sizeof(j->filename));
	return job_submit(r, j);
}

/* ------------------------------------------------------------------ */
/* GET /streams/<name>/thumb.jpg?t=&width=                             */
/* ------------------------------------------------------------------ */

/* ?width=: 0 when absent, else SD_THUMB_MIN_WIDTH to SD_THUMB_MAX_WIDTH
 * in plain decimal; -1 for anything else. */
static long thumb_width(struct sd_req *r)
{
	const char *arg = sd_req_arg(r, "width");
	long w = 0;

	if (!arg)
		return 0;
	if (!*arg || strlen(arg) > 5)
		return -1;
	for (const char *p = arg; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		w = w * 10 + (*p - '0');
	}
	return w < SD_THUMB_MIN_WIDTH || w > SD_THUMB_MAX_WIDTH ? -1 : w;
}

enum MHD_Result sd_route_thumb(struct sd_req *r, const char *upload,
			       size_t *upload_size)
{
	struct sd_daemon *d = r->d;
	enum MHD_Result ret = MHD_NO;
	struct sd_play_range pr;
	struct sd_thumb_key key = { 0 };
	struct sd_stream *s;
	struct sd_start st;
	uint64_t end = 0;
	long width = thumb_width(r);
	unsigned status;
	uint8_t *jpeg;
	size_t len;
	struct job *j;
	char msg[160];

	(void)upload;
	if (r->calls > 1) /* resumed: the job was queued */
		return job_resume(r, upload_size);
	if (!sd_play_allowed(r, &ret))
		return ret;
	if (sd_play_parse_start(r, "t", &st) < 0)
		return sd_reply_error(r, 400, "bad t: seconds behind live "
				      "(-30), seconds from the start (120) or "
				      "an ISO-8601 time");
	if (width < 0)
		return sd_reply_error(r, 400, "bad width: pixels from %d to %d",
				      SD_THUMB_MIN_WIDTH, SD_THUMB_MAX_WIDTH);
	if (sd_play_stream(r, &s, &ret) < 0)
		return ret;
	sd_stream_rdlock(s);
	status = sd_play_range(s, &st, 0, &pr, msg, sizeof(msg));
	if (status == 200) {
		end = s->data_size;
		if (end > pr.start + SD_THUMB_MAX_BYTES)
			end = pr.start + SD_THUMB_MAX_BYTES;
		key.ino = s->ino;
		key.data_id = s->data_id;
		key.offset = pr.start;
		key.width = (unsigned)width;
	}
	sd_stream_unlock(s);
	sd_stream_put(s);
	if (status != 200)
		return sd_reply_error(r, status, "%s", msg);
	if (end <= pr.start)
		return sd_reply_error(r, 503, "the keyframe is not recorded "
				      "yet");
	if (sd_thumb_cache_get(d->thumbs, &key, &jpeg, &len))
		return jpeg_reply(r, jpeg, len);
	j = job_new(r, JOB_THUMB);
	if (!j)
		return MHD_NO;
	j->start = pr.start;
	j->end = end;
	j->width = (unsigned)width;
	j->key = key;
	return job_submit(r, j);
}
