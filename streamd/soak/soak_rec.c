/*
 * streamd-soak's recorders: each uploads one live recording with a
 * chunked PUT /record/<prefix>N, paced by the wall clock.  The builtin
 * source is the soak_ts generator (by time t a recorder has sent exactly
 * rate * t bytes, and the bytes at any offset can be produced again to
 * check them); the ffmpeg source is an encoder paced by -re whose output
 * is forwarded as it comes and kept in a temporary file for the checks.
 * Each recorder keeps the md5 of what it sent; at the end the run fetches
 * every recording's data.ts and compares.
 *
 * States: connecting -> streaming (soak_rec_tick frames chunks) ->
 * finishing (no more data: the terminating chunk once out is empty) ->
 * answered (2xx after the terminating chunk) or failed (any other answer,
 * or the connection lost: an HTTP error); from any of them, refused (503
 * with Retry-After: rec_refused, the recording leaves the run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "soak.h"

#define CHUNK_MAX 65536		/* payload per chunk */
#define IO_TIMEOUT_S 30		/* the blocking fetches */
#define DRAIN_S 10.0		/* ffmpeg's last bytes after SIGINT */
#define SETTLE_S 10.0		/* the catalog catches up after the end */

static char io_buf[CHUNK_MAX];

static void rec_fail(struct soak *s, struct soak_rec *r, const char *what,
		     int err)
{
	if (r->lc.state == LG_DONE)
		return;
	soak_http_error(s, r->name, "recorder: %s%s%s", what,
			err ? ": " : "", err ? strerror(err) : "");
	lg_conn_close(&r->lc);
}

/* ------------------------------------------------------------------ */
/* Sources                                                             */
/* ------------------------------------------------------------------ */

/* ffmpeg encodes a test pattern in real time into a pipe; what it gives
 * is also kept in DIR/NAME.ts.  0 or -errno (message printed). */
static int ffmpeg_start(struct soak *s, struct soak_rec *r)
{
	char file[4200], log[4200], vb[32], mux[32];
	double bps = s->cfg.bitrate, video = bps * 0.85 - 96e3;
	char *argv[] = {
		"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-b:v", vb, "-maxrate", vb, "-bufsize", vb, "-g", "50",
		"-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-f", "mpegts", "-muxrate", mux,
		"pipe:1", NULL };
	int p[2] = { -1, -1 }, lfd;

	snprintf(file, sizeof(file), "%s/%s.ts", s->dir, r->name);
	snprintf(log, sizeof(log), "%s/%s.ffmpeg.log", s->dir, r->name);
	snprintf(vb, sizeof(vb), "%.0f", video > 50e3 ? video : 50e3);
	snprintf(mux, sizeof(mux), "%.0f", bps);
	r->file_fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r->file_fd < 0 || lfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", file, strerror(errno));
		goto fail;
	}
	r->ffmpeg = lg_spawn(argv, p[1], lfd, true, PROG);
	if (r->ffmpeg < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(-r->ffmpeg));
		r->ffmpeg = 0;
		goto fail;
	}
	close(p[1]);
	close(lfd);
	r->pipe_fd = p[0];
	fcntl(r->pipe_fd, F_SETFL, O_NONBLOCK);
	return 0;
fail:
	if (lfd >= 0)
		close(lfd);
	if (p[0] >= 0)
		close(p[0]), close(p[1]);
	return -EIO;
}

/* What is due now into io_buf: the generator up to rate * elapsed, or
 * what ffmpeg has written.  The byte count (0: nothing yet). */
static size_t source_take(struct soak *s, struct soak_rec *r, double now)
{
	ssize_t n;

	if (!r->ffmpeg) {
		uint64_t due = (uint64_t)(s->rate * (now - r->t_start));
		size_t len = due > r->sent ? (due - r->sent > CHUNK_MAX ?
			     CHUNK_MAX : (size_t)(due - r->sent)) : 0;

		soak_ts_read(&r->ts, r->sent, io_buf, len);
		return len;
	}
	if (r->pipe_eof)
		return 0;
	n = read(r->pipe_fd, io_buf, sizeof(io_buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		r->pipe_eof = true;
	if (n <= 0)
		return 0;
	if (pwrite(r->file_fd, io_buf, (size_t)n, (off_t)r->sent) != n) {
		soak_violation(s, "%s: keeping what ffmpeg sent: %s", r->name,
			       strerror(errno));
		r->pipe_eof = true;
		return 0;
	}
	return (size_t)n;
}

size_t soak_rec_verify(struct soak_rec *r, uint64_t off, const void *buf,
		       size_t len, bool *avail)
{
	static uint8_t want[CHUNK_MAX];
	size_t done = 0;

	*avail = off + len <= r->sent;
	if (!*avail)
		return 0;
	if (!r->ffmpeg)
		return soak_ts_verify(&r->ts, off, buf, len);
	while (done < len) {
		size_t n = len - done < sizeof(want) ? len - done : sizeof(want);
		ssize_t got = pread(r->file_fd, want, n, (off_t)(off + done));

		if (got != (ssize_t)n) {
			*avail = false;
			return done;
		}
		for (size_t i = 0; i < n; i++)
			if (want[i] != ((const uint8_t *)buf)[done + i])
				return done + i;
		done += n;
	}
	return len;
}

/* ------------------------------------------------------------------ */
/* The upload                                                          */
/* ------------------------------------------------------------------ */

void soak_rec_tick(struct soak *s, struct soak_rec *r, double now)
{
	struct lg_conn *lc = &r->lc;
	int err;

	if (lc->state != LG_OPEN)
		return;
	if ((err = lg_conn_flush(lc)) < 0) {
		rec_fail(s, r, "send", -err);
		return;
	}
	while (lc->out_len == 0 && !r->finishing) {
		size_t n = source_take(s, r, now);

		if (!n && r->ffmpeg && r->pipe_eof && !r->draining) {
			soak_violation(s, "%s: ffmpeg stopped before the end "
				       "(see its log)", r->name);
			r->finishing = true;	/* end the upload cleanly */
		}
		if (!n)
			break;
		lc->out_len = lg_chunk_frame(lc->out, io_buf, n);
		EVP_DigestUpdate(r->md5, io_buf, n);
		r->sent += n;
		if ((err = lg_conn_flush(lc)) < 0) {
			rec_fail(s, r, "send", -err);
			return;
		}
	}
	if (r->finishing && lc->out_len == 0 && !r->answered) {
		r->answered = true;	/* the terminator is queued: await */
		lg_conn_queue(lc, "0\r\n\r\n", 5);
		if ((err = lg_conn_flush(lc)) < 0)
			rec_fail(s, r, "send", -err);
	}
}

/*
 * Admission control turned the recording away.  Recorders come first: a
 * server that refuses a recording while it admits viewers breaks its
 * promise, so this is a violation unless the operator said the node may
 * be full of recordings (--allow-recorder-refusal), when it is counted
 * and the recording leaves the run (it is not retried: a recording that
 * starts late holds other bytes than the ones its md5 covers).
 */
static void rec_refused(struct soak *s, struct soak_rec *r)
{
	r->refused = true;
	s->recorders_refused++;
	lg_conn_close(&r->lc);
	if (!s->cfg.allow_recorder_refusal)
		soak_violation(s, "%s: the recording was refused (503, "
			       "Retry-After %.0f s): recorders come first",
			       r->name, r->lc.h.retry_after);
	else
		fprintf(stderr, PROG ": %s: the recording was refused (503, "
			"Retry-After %.0f s); --allow-recorder-refusal: it "
			"leaves the run\n", r->name, r->lc.h.retry_after);
}

/* The server answered: fine only after the terminating chunk, with 2xx. */
void soak_rec_event(struct soak *s, struct soak_rec *r)
{
	char what[96];
	int rc = lg_conn_head(&r->lc);

	if (rc == 0)
		return;
	if (rc < 0) {
		rec_fail(s, r, rc == -EPIPE ? "connection closed" :
			 rc == -EPROTO ? "not an HTTP response" : "recv",
			 rc == -EPIPE || rc == -EPROTO ? 0 : -rc);
		return;
	}
	if (r->lc.h.status == 503 && r->lc.h.retry_after >= 0) {
		rec_refused(s, r);
		return;
	}
	if (!r->answered || r->lc.h.status / 100 != 2) {
		snprintf(what, sizeof(what), "streamd answered %d%s",
			 r->lc.h.status, r->answered ? "" :
			 " before the end of the stream");
		rec_fail(s, r, what, 0);
		return;
	}
	lg_conn_close(&r->lc);
}

static int rec_open(struct soak *s, struct soak_rec *r)
{
	char req[1024];
	const char *what = "";
	int err;

	snprintf(req, sizeof(req),
		 "PUT /record/%s HTTP/1.1\r\nHost: %s\r\n"
		 "User-Agent: " PROG "\r\nContent-Type: video/mp2t\r\n%s"
		 "Transfer-Encoding: chunked\r\n\r\n", r->name,
		 s->target.hostport, s->auth_publish);
	r->t_start = tool_now_s();
	err = lg_conn_open(&r->lc, s->ep, &s->target, r, req,
			   lg_chunk_header_len(CHUNK_MAX) + CHUNK_MAX + 16,
			   &what);
	if (err < 0) {
		r->lc.state = LG_OPEN;	/* so that rec_fail tells it */
		rec_fail(s, r, what, -err);
	}
	return err;
}

/* A recording that exists already would hold other bytes before ours. */
static int name_free(struct soak *s, const char *name)
{
	char path[128], err[512];
	int status = 0, r;

	snprintf(path, sizeof(path), "/streams/%s", name);
	r = lg_http_fetch(&s->target, path, NULL, IO_TIMEOUT_S, NULL, NULL,
			  &status, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return r;
	}
	if (status != 404) {
		fprintf(stderr, PROG ": GET %s answered %d: a recording %s "
			"exists already (another --name-prefix?)\n", path,
			status, name);
		return -EEXIST;
	}
	return 0;
}

static int rec_init(struct soak *s, struct soak_rec *r, unsigned i)
{
	int err;

	*r = (struct soak_rec){ .lc.fd = -1, .kind = SK_RECORDER, .idx = i,
				.pipe_fd = -1, .file_fd = -1 };
	snprintf(r->name, sizeof(r->name), "%s%u", s->cfg.name_prefix, i);
	if ((err = name_free(s, r->name)) < 0)
		return err;
	r->md5 = EVP_MD_CTX_new();
	if (!r->md5 || !EVP_DigestInit_ex(r->md5, EVP_md5(), NULL))
		return -ENOMEM;
	if (!strcmp(s->cfg.encoder, "ffmpeg"))
		return ffmpeg_start(s, r);
	err = soak_ts_init(&r->ts, s->cfg.seed, i, (uint64_t)s->cfg.bitrate);
	if (err < 0)
		fprintf(stderr, PROG ": the generator refuses %.0f bit/s\n",
			s->cfg.bitrate);
	return err;
}

int soak_recorders_start(struct soak *s)
{
	int err = 0;

	s->rec = calloc(s->cfg.recorders, sizeof(*s->rec));
	if (!s->rec)
		return -ENOMEM;
	for (unsigned i = 0; i < s->cfg.recorders; i++)
		s->rec[i] = (struct soak_rec){ .lc.fd = -1, .pipe_fd = -1,
					       .file_fd = -1 };
	for (unsigned i = 0; i < s->cfg.recorders; i++)
		if ((err = rec_init(s, &s->rec[i], i)) < 0) {
			soak_recorders_free(s);
			return err;
		}
	for (unsigned i = 0; i < s->cfg.recorders; i++)
		rec_open(s, &s->rec[i]);
	return 0;
}

unsigned soak_recorders_live(const struct soak *s)
{
	unsigned n = 0;

	for (unsigned i = 0; s->rec && i < s->cfg.recorders; i++)
		n += s->rec[i].lc.state != LG_DONE;
	return n;
}

static bool pipes_drained(void *arg)
{
	struct soak *s = arg;

	for (unsigned i = 0; i < s->cfg.recorders; i++)
		if (s->rec[i].ffmpeg && !s->rec[i].pipe_eof &&
		    s->rec[i].lc.state != LG_DONE)
			return false;
	return true;
}

static bool all_answered(void *arg)
{
	return soak_recorders_live(arg) == 0;
}

static void md5_hex(EVP_MD_CTX *ctx, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_DigestFinal_ex(ctx, d, &len);
	for (unsigned i = 0; i < len && i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

void soak_recorders_finish(struct soak *s, double timeout_s)
{
	if (!s->rec)
		return;
	for (unsigned i = 0; i < s->cfg.recorders; i++) {
		s->rec[i].draining = true;
		if (s->rec[i].ffmpeg)
			kill(s->rec[i].ffmpeg, SIGINT);
	}
	lg_loop_run(&s->loop, tool_now_s() + DRAIN_S, pipes_drained);
	for (unsigned i = 0; i < s->cfg.recorders; i++)
		s->rec[i].finishing = true;
	lg_loop_run(&s->loop, tool_now_s() + timeout_s, all_answered);
	for (unsigned i = 0; i < s->cfg.recorders; i++) {
		struct soak_rec *r = &s->rec[i];

		rec_fail(s, r, "no answer to the end of the upload", 0);
		if (r->ffmpeg && waitpid(r->ffmpeg, NULL, 0) == r->ffmpeg)
			r->ffmpeg = -1;	/* gone; still an ffmpeg source */
		md5_hex(r->md5, r->md5_sent);
	}
}

/* ------------------------------------------------------------------ */
/* The recordings afterwards                                           */
/* ------------------------------------------------------------------ */

static int md5_sink(void *arg, const void *buf, size_t len)
{
	struct soak_rec *r = arg;

	EVP_DigestUpdate(r->md5, buf, len);
	r->got += len;
	return 0;
}

void soak_recorders_published(struct soak *s)
{
	char err[512], *text = NULL;
	json_t *list, *e;
	size_t k;
	int rc = lg_http_get(&s->target, "/streams", s->auth_admin,
			     IO_TIMEOUT_S, &text, err, sizeof(err));

	list = rc == 0 ? json_loads(text, 0, NULL) : NULL;
	free(text);
	json_array_foreach(list, k, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		json_t *b = json_object_get(e, "bytes");
		json_t *d = json_object_get(e, "duration");

		for (unsigned i = 0; name && i < s->cfg.recorders; i++) {
			struct soak_rec *r = &s->rec[i];

			if (strcmp(r->name, name) || !json_is_integer(b) ||
			    !json_is_number(d))
				continue;
			r->pub_bytes = (uint64_t)json_integer_value(b);
			r->pub_s = json_number_value(d);
		}
	}
	json_decref(list);
}

/* /streams/NAME's live flag and size; 0 or -errno. */
static int rec_state(struct soak *s, const struct soak_rec *r, bool *live,
		     uint64_t *bytes)
{
	char path[128], err[512], *text = NULL;
	json_t *o;
	int rc;

	snprintf(path, sizeof(path), "/streams/%s", r->name);
	rc = lg_http_get(&s->target, path, NULL, IO_TIMEOUT_S, &text, err,
			 sizeof(err));
	o = rc == 0 ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!json_is_boolean(json_object_get(o, "live")) ||
	    !json_is_integer(json_object_get(o, "bytes"))) {
		json_decref(o);
		return rc < 0 ? rc : -EPROTO;
	}
	*live = json_is_true(json_object_get(o, "live"));
	*bytes = (uint64_t)json_integer_value(json_object_get(o, "bytes"));
	json_decref(o);
	return 0;
}

/*
 * Waits until streamd lists the recording as finished with every byte
 * sent (the upload's answer may come before the catalog shows the last
 * write).  How long that took is told when it was not at once.
 */
static void rec_settle(struct soak *s, const struct soak_rec *r)
{
	double t0 = tool_now_s();
	uint64_t bytes = 0;
	bool live = true;
	int polls = 0;

	while (rec_state(s, r, &live, &bytes) == 0 &&
	       (live || bytes != r->sent) && tool_now_s() - t0 < SETTLE_S) {
		polls++;
		lg_sleep(0.05);
	}
	if (polls)
		fprintf(stderr, PROG ": note: %s: /streams showed it %s with "
			"%" PRIu64 " of %" PRIu64 " bytes %.2f s after the "
			"upload's answer\n", r->name, live ? "live" : "finished",
			bytes, r->sent, tool_now_s() - t0);
}

void soak_recordings_check(struct soak *s)
{
	for (unsigned i = 0; s->rec && i < s->cfg.recorders; i++) {
		struct soak_rec *r = &s->rec[i];
		char path[128], err[512];
		int status = 0, rc;

		if (r->refused)
			continue;	/* nothing of it was recorded */
		if (r->answered && r->lc.h.status / 100 == 2)
			rec_settle(s, r);

		snprintf(path, sizeof(path), "/streams/%s/data.ts", r->name);
		EVP_DigestInit_ex(r->md5, EVP_md5(), NULL);
		r->got = 0;
		rc = lg_http_fetch(&s->target, path, NULL, IO_TIMEOUT_S,
				   md5_sink, r, &status, err, sizeof(err));
		md5_hex(r->md5, r->md5_got);
		if (rc < 0 || status != 200) {
			soak_violation(s, "%s: fetching data.ts: %s", r->name,
				       rc < 0 ? err : "not 200");
			continue;
		}
		r->md5_ok = r->got == r->sent &&
			    !strcmp(r->md5_got, r->md5_sent);
		if (!r->md5_ok)
			soak_violation(s, "%s: data.ts has %" PRIu64 " bytes, "
				       "md5 %s; sent %" PRIu64 " bytes, md5 %s",
				       r->name, r->got, r->md5_got, r->sent,
				       r->md5_sent);
	}
}

void soak_recorders_free(struct soak *s)
{
	for (unsigned i = 0; s->rec && i < s->cfg.recorders; i++) {
		struct soak_rec *r = &s->rec[i];

		lg_conn_close(&r->lc);
		free(r->lc.out);
		EVP_MD_CTX_free(r->md5);
		if (r->ffmpeg > 0) {
			kill(r->ffmpeg, SIGKILL);
			waitpid(r->ffmpeg, NULL, 0);
		}
		if (r->pipe_fd >= 0)
			close(r->pipe_fd);
		if (r->file_fd >= 0)
			close(r->file_fd);
	}
	free(s->rec);
	s->rec = NULL;
}
