/*
 * The HTTP side of streamd: the per-request state, and the handshake that suspends a connection while
 * it has nothing to send (or no room to take an upload) and resumes it
 * from whichever thread produces the missing bytes.  sd_http.c owns the
 * libmicrohttpd daemons (the main listener and, with admin_listen, the
 * admin one), the route table and the connection limits;
 * sd_route_record.c, sd_route_play.c, sd_route_clip.c and
 * sd_route_admin.c hold the routes;
 * sd_recorder.c takes uploads to their recordings.
 *
 * Invariants of the suspend handshake (sd_req_wake / sd_req_suspend):
 *  1. r->suspended and r->wake_pending change only under r->mu.
 *  2. A connection is suspended only on its MHD thread, inside a callback
 *     (a content reader, or the access handler with no response queued:
 *     a player whose session is opening), and only when no wake arrived
 *     since the producer was last asked (wake_pending clear); otherwise
 *     the caller retries at once.
 *  3. A wake resumes a suspended connection exactly once; a wake that
 *     finds it running leaves wake_pending set, so no wake is ever lost.
 *     A resumed access handler finds its request where it left it
 *     (r->calls > 1) and answers, or suspends again if the wake was not
 *     its producer's (a clean stop's).
 *  4. The producer (session, ingest, a session's open on the pump's
 *     openers, or a clip's or thumbnail's job on the media workers) is
 *     stopped before the request is freed, or told to drop
 *     the request under a lock it wakes under, so no wake can reach a
 *     freed request.
 *  5. No connection stays suspended for an open or a media job once the
 *     daemon stops: sd_http_stop has the pump answer every queued open
 *     and the media workers every job before it wakes everyone and
 *     stops MHD.
 */
#ifndef SD_HTTP_H
#define SD_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "streamd-int.h"

struct sd_req;
struct sd_pub;

/* Statuses counted in streamd_http_requests_total{code=...}; the others
 * count as "other" (sd_http.c). */
#define SD_HTTP_CODES 18
extern const unsigned sd_http_codes[SD_HTTP_CODES];

/* Why a connection was refused at accept or closed by a limit; counted in
 * streamd_http_refused_total{reason=...} under sd_http_refusal_names. */
enum sd_http_refusal {
	SD_REFUSED_PER_IP,	   /* max_connections_per_ip reached */
	SD_REFUSED_LIMIT,	   /* max_connections reached */
	SD_REFUSED_HEADER_TIMEOUT, /* head not complete within header_timeout */
	SD_REFUSED_IDLE_TIMEOUT,   /* nothing moved for idle_timeout */
	SD_REFUSED_HEADER_SIZE,	   /* head over max_header_size: 431 (414) */
	SD_REFUSED_N
};
extern const char *const sd_http_refusal_names[SD_REFUSED_N];

/* Connection limits and head deadlines (sd_http.c). */
struct sd_http_guard;

/* The daemon's context (sd_daemon.h), which every request points to. */
struct sd_daemon;

/* Route handler: called for every MHD access callback of its request
 * (see MHD_AccessHandlerCallback); returns MHD_YES or MHD_NO. */
typedef enum MHD_Result (*sd_route_fn)(struct sd_req *r, const char *upload,
				       size_t *upload_size);

struct sd_req {
	struct sd_daemon *d;
	struct MHD_Connection *conn;
	char name[SD_NAME_MAX + 1]; /* the stream the URL names, if any */
	const char *method;	   /* MHD's, for the request; NULL until the
				      head is in */
	const char *version;	   /* "HTTP/1.1", MHD's likewise */
	char *url;		   /* path (decoded; the raw target until the
				      head is in) */
	int64_t t0;		   /* monotonic ns at the request line */
	int64_t t_conn;		   /* ... at the connection's accept, or
				      its previous request's end */
	unsigned status;	   /* queued response status */
	uint64_t bytes;		   /* body bytes sent */
	int calls;		   /* access callbacks the route has seen */
	int bad_path;		   /* the raw URL hides a path trick */
	size_t target_len;	   /* of the request target as received */
	sd_route_fn route;
	unsigned allow;		   /* methods the path allows (sd_http.c's
				      bits; 0: unknown path), for Allow */

	pthread_mutex_t mu;	   /* suspend handshake (invariant 1) */
	int suspended;
	int wake_pending;
	int gone;		   /* MHD is done with the connection */

	/* Route state, released by cleanup when the request ends. */
	void *priv;
	void (*cleanup)(struct sd_req *r);

	struct sd_req *next, *prev; /* d->reqs, under d->mu */
};

/* Any thread: resumes the connection or leaves a pending wake. */
void sd_req_wake(struct sd_req *r);
/* The request's MHD thread: suspends unless a wake is pending.  Returns
 * 1 when suspended, 0 when the caller should try its producer again. */
int sd_req_suspend(struct sd_req *r);

/* How much of @max a body's content reader should give MHD in one call
 * (see sd_http.c, "Slices while a crowd arrives"). */
size_t sd_http_slice(struct sd_daemon *d, size_t max);

/* Queues a response, records its status; takes ownership of @resp.
 * Every reply goes through here, which adds Server, Allow (on a 405 or an
 * OPTIONS) and the CORS headers cors_origins calls for. */
enum MHD_Result sd_reply(struct sd_req *r, unsigned status,
			 struct MHD_Response *resp);
/* A small body (copied) with a Content-Type. */
enum MHD_Result sd_reply_text(struct sd_req *r, unsigned status,
			      const char *type, const char *body, size_t len);
/* 200 with @o as indented JSON, keys in insertion order; takes @o (NULL:
 * 500, as when it cannot be printed). */
enum MHD_Result sd_reply_json(struct sd_req *r, json_t *o);
/* The same with another status (201 for something created). */
enum MHD_Result sd_reply_json_status(struct sd_req *r, unsigned status,
				     json_t *o);
/* {"error":"..."} with @status; the message is also logged at INFO. */
enum MHD_Result sd_reply_error(struct sd_req *r, unsigned status,
			       const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Bearer token or ?token= against @want (constant time).  An empty @want
 * accepts everything.  Returns 1 or 0. */
int sd_req_token_ok(struct sd_req *r, const char *want);
/* Query argument or NULL. */
const char *sd_req_arg(struct sd_req *r, const char *key);

/*
 * A small request body gathered whole (a route's priv and cleanup hold
 * it): call with every access callback of the request.  The first call
 * only sets it up; each later one with bytes appends them (beyond @max
 * they are dropped and too_big is set); the call with none sets *@done.
 * p is NUL-terminated (NULL while empty).  Returns NULL when out of
 * memory (answer MHD_NO).
 */
struct sd_body {
	char *p;
	size_t len;
	int too_big;
};
struct sd_body *sd_req_body(struct sd_req *r, const char *upload,
			    size_t *upload_size, size_t max, int *done);
/* What the player routes share (sd_route_play.c), so that the clip
 * routes (sd_route_clip.c) take a name, a time and a range exactly as
 * the .ts route does. */

/* 1 when the request may play the stream it names (no play secret, or a
 * valid token for that name), else 0 with the reply queued in *@ret: 400
 * for a bad name, 401 without a token, 403 for a bad or expired one. */
int sd_play_allowed(struct sd_req *r, enum MHD_Result *ret);
/* 0 and a reference to the recording the URL names (sd_stream_put), or
 * -errno with the reply queued in *@ret (400 bad name, 404, 500). */
int sd_play_stream(struct sd_req *r, struct sd_stream **out,
		   enum MHD_Result *ret);
/* Query argument @key as a start position (sd_time_parse_start, with an
 * unescaped '+' of a UTC offset put back).  0 or -EINVAL. */
int sd_play_parse_start(struct sd_req *r, const char *key,
			struct sd_start *out);

/* A range of a recording by time, as the .ts route resolves it. */
struct sd_play_range {
	size_t key;		/* index position of its first keyframe */
	uint64_t start;		/* that keyframe's data offset */
	int64_t begin_wall;	/* and wall time */
	uint64_t end;		/* one past its last byte: the keyframe
				   nearest start + duration, or the end of
				   a finished recording; SD_END_LIVE while
				   that is still to be recorded */
	int end_open;		/* a duration whose end keyframe is to come */
	int64_t end_wall;	/* with a duration: begin_wall + it */
	uint64_t hold;		/* the newest keyframe after key (key's own
				   offset with none): how far a range that
				   must end on a keyframe can go now */
};
/* Resolves @st and @dur (0: none) against @s, read-locked: 200 and *@pr,
 * or 503 (no keyframe yet) / 416 (nothing recorded there) with a
 * message in @msg. */
unsigned sd_play_range(const struct sd_stream *s, const struct sd_start *st,
		       int64_t dur, struct sd_play_range *pr, char *msg,
		       size_t len);

/* Routes (sd_route_*.c). */
enum MHD_Result sd_route_record(struct sd_req *r, const char *upload,
				size_t *upload_size);
enum MHD_Result sd_route_list(struct sd_req *r, const char *upload,
			      size_t *upload_size);
enum MHD_Result sd_route_detail(struct sd_req *r, const char *upload,
				size_t *upload_size);
enum MHD_Result sd_route_holds(struct sd_req *r, const char *upload,
			       size_t *upload_size);
enum MHD_Result sd_route_delete(struct sd_req *r, const char *upload,
				size_t *upload_size);
enum MHD_Result sd_route_play(struct sd_req *r, const char *upload,
			      size_t *upload_size);
enum MHD_Result sd_route_data(struct sd_req *r, const char *upload,
			      size_t *upload_size);
enum MHD_Result sd_route_hls(struct sd_req *r, const char *upload,
			     size_t *upload_size);
enum MHD_Result sd_route_clip(struct sd_req *r, const char *upload,
			      size_t *upload_size);
enum MHD_Result sd_route_thumb(struct sd_req *r, const char *upload,
			       size_t *upload_size);
enum MHD_Result sd_route_config(struct sd_req *r, const char *upload,
				size_t *upload_size);
enum MHD_Result sd_route_capacity(struct sd_req *r, const char *upload,
				  size_t *upload_size);
enum MHD_Result sd_route_sessions(struct sd_req *r, const char *upload,
				  size_t *upload_size);
enum MHD_Result sd_route_sign(struct sd_req *r, const char *upload,
			      size_t *upload_size);
enum MHD_Result sd_route_metrics(struct sd_req *r, const char *upload,
				 size_t *upload_size);
enum MHD_Result sd_route_home(struct sd_req *r, const char *upload,
			      size_t *upload_size);

/*
 * Starts the HTTP daemon on d->cfg.listen (fills d->mhd, d->port) and,
 * when d->cfg.admin_listen is set, the admin one there (d->admin_mhd,
 * d->admin_port; the error log says "admin listening on http://...").
 * On failure nothing is left running.  0 or -errno.
 */
int sd_http_start(struct sd_daemon *d);
/*
 * Clean stop: new publishes are refused, every recording in progress
 * drains what it received and closes (waiting up to @grace_ns), players
 * are cut, then the HTTP daemons stop.
 */
void sd_http_stop(struct sd_daemon *d, uint64_t grace_ns);

#endif /* SD_HTTP_H */
