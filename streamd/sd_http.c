/*
 * The HTTP front end of streamd on libmicrohttpd: binds the listen
 * address (and admin_listen, when set, for the admin routes alone),
 * dispatches each request through one static route table (method, path
 * shape, handler, admin mark), keeps every live request on a list so a
 * clean stop can wake and finish them, writes the access log when a
 * request ends, and provides the small reply and token helpers the routes
 * share; every reply goes through sd_reply, which adds the cross-origin
 * (CORS) headers cors_origins calls for, and an OPTIONS on any known path
 * is answered here (Allow, and a CORS preflight's headers).  MHD runs a
 * small pool of epoll threads; connections with nothing to send, or
 * whose player session is still opening, are suspended rather than
 * polled or waited for (see sd_http.h).  The connection guard
 * holds the limits MHD lacks or cannot count: connections per address and
 * in all, a deadline for a request's head, the size of a head, and URLs
 * that try to climb out of a name.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "sd_daemon.h"

#define SD_HTTP_THREADS 4
#define ADMIN_MAX_CONNECTIONS 64u
/* A connection's memory pool holds its request head; this much more is
 * left for the upload buffer and the reply headers (MHD's own default
 * pool size, so uploads read as much per call as before). */
#define POOL_EXTRA (32u * 1024u)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

const unsigned sd_http_codes[SD_HTTP_CODES] = {
	200, 201, 204, 206, 304, 400, 401, 403, 404,
	405, 409, 413, 415, 416, 431, 500, 503, 507,
};

const char *const sd_http_refusal_names[SD_REFUSED_N] = {
	[SD_REFUSED_PER_IP] = "per_ip",
	[SD_REFUSED_LIMIT] = "limit",
	[SD_REFUSED_HEADER_TIMEOUT] = "header_timeout",
	[SD_REFUSED_IDLE_TIMEOUT] = "idle_timeout",
	[SD_REFUSED_HEADER_SIZE] = "header_size",
};

/* One MHD daemon: the main listener or the admin one. */
struct listener {
	struct sd_daemon *d;
	struct sd_http_guard *g;
	struct MHD_Daemon *mhd;
	const char *spec;	/* HOST:PORT */
	const char *key;	/* its directive, for messages */
	int admin;		/* serves the admin routes (only) */
	unsigned max;		/* connections at once */
	unsigned open;		/* admitted now (guard invariant 3) */
	struct ip_hold *ips[256]; /* per-address counts, by hash */
};

/* ------------------------------------------------------------------ */
/* Route table                                                         */
/* ------------------------------------------------------------------ */

enum shape {
	EXACT,	     /* the path itself */
	NAME,	     /* prefix + name */
	NAME_SUFFIX, /* prefix + name + suffix */
	NAME_TAIL,   /* prefix + name + suffix, then nothing or "/" + one
			segment (the route reads it from r->url) */
};

#define M_GET 0x1u
#define M_HEAD 0x2u
#define M_PUT 0x4u
#define M_POST 0x8u
#define M_OPTIONS 0x10u
#define M_DELETE 0x20u
/* The methods a GET-only resource allows. */
#define M_READ (M_GET | M_HEAD | M_OPTIONS)

/* Where a route is served: with admin_listen set, ADMIN routes only on
 * the admin listener and MAIN ones only on the main listener; without
 * it, all on the main listener. */
#define MAIN 0
#define ADMIN 1

static const struct route {
	unsigned methods;
	enum shape shape;
	const char *prefix;
	const char *suffix;
	sd_route_fn fn;
	int admin;
} routes[] = {
	{ M_PUT | M_POST | M_OPTIONS, NAME, "/record/", NULL, sd_route_record,
	  MAIN },
	{ M_READ, EXACT, "/streams", NULL, sd_route_list, MAIN },
	{ M_READ, EXACT, "/streams/", NULL, sd_route_list, MAIN },
	{ M_READ, NAME_SUFFIX, "/streams/", "/data.ts", sd_route_data, MAIN },
	{ M_READ, NAME_SUFFIX, "/streams/", "/index.m3u8", sd_route_hls,
	  MAIN },
	{ M_READ, NAME_SUFFIX, "/streams/", "/thumb.jpg", sd_route_thumb,
	  MAIN },
	{ M_READ, NAME_SUFFIX, "/streams/", ".ts", sd_route_play, MAIN },
	{ M_READ | M_POST | M_DELETE, NAME_TAIL, "/streams/", "/holds",
	  sd_route_holds, MAIN },
	{ M_READ, NAME_SUFFIX, "/streams/", ".mp4", sd_route_clip, MAIN },
	{ M_READ, NAME, "/streams/", NULL, sd_route_detail, MAIN },
	{ M_DELETE, NAME, "/streams/", NULL, sd_route_delete, MAIN },
	{ M_READ | M_PUT, EXACT, "/admin/config", NULL, sd_route_config,
	  ADMIN },
	{ M_READ, EXACT, "/admin/sessions", NULL, sd_route_sessions, ADMIN },
	{ M_READ, EXACT, "/admin/capacity", NULL, sd_route_capacity, ADMIN },
	{ M_READ, EXACT, "/admin/sign", NULL, sd_route_sign, ADMIN },
	{ M_READ, EXACT, "/metrics", NULL, sd_route_metrics, ADMIN },
	{ M_READ, EXACT, "/", NULL, sd_route_home, MAIN },
};

/* Method names by bit, in the order an Allow header lists them. */
static const struct {
	const char *name;
	unsigned bit;
} methods[] = {
	{ "GET", M_GET }, { "HEAD", M_HEAD }, { "PUT", M_PUT },
	{ "POST", M_POST }, { "DELETE", M_DELETE }, { "OPTIONS", M_OPTIONS },
};

static unsigned method_bit(const char *m)
{
	for (size_t i = 0; i < ARRAY_LEN(methods); i++)
		if (strcmp(m, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

/* "GET, HEAD, OPTIONS": the methods in @bits, for Allow and
 * Access-Control-Allow-Methods. */
static void method_list(unsigned bits, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(methods); i++) {
		int w;

		if (!(bits & methods[i].bit))
			continue;
		w = snprintf(out + n, cap - n, "%s%s", n ? ", " : "",
			     methods[i].name);
		if (w < 0 || (size_t)w >= cap - n)
			return;
		n += (size_t)w;
	}
}

/* Does @path have the route's shape?  The name part goes to @name unless
 * NULL (it may be invalid: the route answers 400 for that, not 404). */
static int route_match(const struct route *rt, const char *path, char *name,
		       size_t cap)
{
	size_t pl = strlen(rt->prefix), sl = rt->suffix ? strlen(rt->suffix) : 0;
	size_t n = strlen(path), nl;

	if (rt->shape == EXACT)
		return strcmp(path, rt->prefix) == 0;
	if (rt->shape == NAME_TAIL) {
		/* The name ends at the first '/'; the suffix follows it,
		 * then at most one more segment. */
		const char *slash, *tail;

		if (n <= pl || strncmp(path, rt->prefix, pl) != 0 ||
		    !(slash = strchr(path + pl, '/')) || slash == path + pl ||
		    strncmp(slash, rt->suffix, sl) != 0)
			return 0;
		tail = slash + sl;
		if (*tail && (tail[0] != '/' || !tail[1] ||
			      strchr(tail + 1, '/')))
			return 0;
		nl = (size_t)(slash - path) - pl;
		goto name;
	}
	if (n <= pl + sl || strncmp(path, rt->prefix, pl) != 0)
		return 0;
	if (sl && strcmp(path + n - sl, rt->suffix) != 0)
		return 0;
	nl = n - pl - sl;
	if (rt->shape == NAME && memchr(path + pl, '/', nl))
		return 0;
	if (rt->shape == NAME_SUFFIX && memchr(path + pl, '/', nl))
		return 0;
name:
	if (!name)
		return 1;
	if (nl >= cap) {
		name[0] = '\0'; /* longer than any valid name: invalid */
		return 1;
	}
	memcpy(name, path + pl, nl);
	name[nl] = '\0';
	return 1;
}

/*
 * Is the route served on @l?  With an admin listener the admin routes are
 * served there only and the others on the main listener only.  A route
 * under /admin/ counts as admin even when its line lacks the mark: a
 * forgotten mark must not put it on the public listener.
 */
static int route_here(const struct route *rt, const struct listener *l)
{
	int admin = rt->admin || strncmp(rt->prefix, "/admin/", 7) == 0;

	return *l->d->cfg.admin_listen ? admin == l->admin : 1;
}

static enum MHD_Result route_options(struct sd_req *r, const char *upload,
				     size_t *upload_size);

/*
 * The route for a request on @l, or NULL with *status 404 or 405.  An
 * OPTIONS on a known path goes to route_options whatever route serves the
 * path, since the answer (what the path allows) is the same for all.
 * *allow gets the methods every route of this shape allows (0: unknown
 * path), for Allow and the CORS preflight.
 */
static sd_route_fn route_find(const struct listener *l, const char *method,
			      const char *path, char *name, size_t cap,
			      unsigned *status, unsigned *allow)
{
	unsigned bit = method_bit(method);
	sd_route_fn fn = NULL;

	*allow = 0;
	for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
		/* The name is the chosen route's: a later shape that also
		 * matches ("/streams/x.ts" as a NAME) must not overwrite it. */
		if (!route_here(&routes[i], l) ||
		    !route_match(&routes[i], path, fn ? NULL : name, cap))
			continue;
		*allow |= routes[i].methods;
		if (!fn && (routes[i].methods & bit))
			fn = routes[i].fn;
	}
	if (fn && bit == M_OPTIONS)
		fn = route_options;
	if (!fn)
		*status = *allow ? 405 : 404;
	return fn;
}

/* ------------------------------------------------------------------ */
/* Path tricks                                                         */
/* ------------------------------------------------------------------ */

/*
 * MHD hands the access handler the path with its escapes undone, where
 * "%2e%2e" has become ".." and "%00" has cut the string short; so the
 * request target is checked as received (on_uri) and the path once more
 * as decoded (req_begin).  A name never needs an escape ([A-Za-z0-9._-]),
 * so an escaped dot, slash, backslash or NUL in a path is a trick, and a
 * NUL is one in the query too.  Either way the answer is 400, whichever
 * route the path would have reached.
 */
static const char *const path_escapes_banned[] = { "2e", "2f", "5c", "00" };

static int raw_target_ok(const char *uri)
{
	size_t path_len = strcspn(uri, "?");

	for (size_t i = 0; uri[i]; i++) {
		char hex[3];

		if (i < path_len && uri[i] == '\\')
			return 0;
		if (uri[i] != '%' || !uri[i + 1] || !uri[i + 2])
			continue;
		hex[0] = (char)tolower((unsigned char)uri[i + 1]);
		hex[1] = (char)tolower((unsigned char)uri[i + 2]);
		hex[2] = '\0';
		if (strcmp(hex, "00") == 0)
			return 0;
		for (size_t k = 0; i < path_len &&
		     k < ARRAY_LEN(path_escapes_banned); k++)
			if (strcmp(hex, path_escapes_banned[k]) == 0)
				return 0;
	}
	return 1;
}

/*
 * A NUL byte sent as such inside the request target ends MHD's C string
 * early, so the URL arrives cut short ("/streams\0/x" reads as
 * "/streams").  MHD hands the target and the version as pointers into the
 * one request line, split in place ("TARGET\0HTTP/1.1"), and the target
 * as received was @r->target_len bytes long (on_uri): when the version
 * starts further on than that, the rest of the target hid behind a NUL.
 * The pointers are compared only when they look like that line.
 */
static int target_whole(const struct sd_req *r, const char *url,
			const char *version, size_t head_max)
{
	uintptr_t u = (uintptr_t)url, v = (uintptr_t)version;

	if (!r->target_len || !version || strncmp(version, "HTTP/", 5) != 0 ||
	    v <= u || v - u > head_max)
		return 1;
	return v - u - 1 == r->target_len;
}

/* The decoded path: no "." or ".." segment, no control byte or backslash. */
static int path_ok(const char *path)
{
	const char *seg = path;

	for (const char *p = path;; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '/' || ch == '\0') {
			size_t n = (size_t)(p - seg);

			if ((n == 1 || n == 2) && strncmp(seg, "..", n) == 0)
				return 0;
			if (ch == '\0')
				return 1;
			seg = p + 1;
		} else if (ch < 0x20 || ch == 0x7f || ch == '\\') {
			return 0;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Cross-origin requests                                               */
/* ------------------------------------------------------------------ */

/*
 * A page from another origin (a player on https://a.example fetching
 * index.m3u8 here) may read a response only when it names that origin,
 * or "*", in Access-Control-Allow-Origin; and before a request a page may
 * not send plainly (with a Range or Authorization header, a PUT) the
 * browser asks first with an OPTIONS preflight.  The knob cors_origins
 * says which origins: "" none, "*" any, or a comma-separated list whose
 * items sd_knobs_check has checked are scheme://host[:port].  sd_reply
 * adds the headers, so that every answer, errors included, carries them:
 * a player must be able to read a 404 or a 416 as such, not as a network
 * failure.  A knob change applies from the next response on.
 */

/* Response headers a page may read beyond the safelisted ones: what a
 * player needs for byte ranges, and the .ts route's position headers. */
static const char cors_expose[] = "Content-Range, Accept-Ranges, "
				  "Content-Length, X-Streamd-Start, "
				  "X-Streamd-Offset";
/* Request headers a page may send: Range for segments, Authorization for
 * a bearer token (sd_req_token_ok), Content-Type for an upload. */
static const char cors_allow_headers[] = "Range, Authorization, "
					 "Content-Type";
/* How long a browser may keep a preflight's answer, seconds: a knob
 * change reaches pages that already asked within this. */
#define CORS_MAX_AGE "600"

enum cors {
	CORS_NONE, /* no Origin, or one not allowed: no CORS headers */
	CORS_ANY,  /* cors_origins "*": Access-Control-Allow-Origin: * */
	CORS_ECHO, /* the Origin is listed: echoed back */
};

/* Is @origin in @list (checked by sd_knobs_check)?  Scheme and host are
 * case-insensitive, and spaces around the commas are allowed. */
static int origin_listed(const char *list, const char *origin)
{
	size_t ol = strlen(origin);

	for (const char *p = list; *p;) {
		size_t n, m;

		p += strspn(p, " \t");
		n = strcspn(p, ",");
		for (m = n; m && (p[m - 1] == ' ' || p[m - 1] == '\t'); m--)
			;
		if (m && m == ol && strncasecmp(p, origin, m) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* What CORS answer @origin (NULL: the request had none) gets; *by_origin
 * says whether answers differ by Origin (a list is configured). */
static enum cors cors_of(struct sd_daemon *d, const char *origin,
			 int *by_origin)
{
	const char *list = d->knobs.cors_origins;
	enum cors c = CORS_NONE;

	pthread_mutex_lock(&d->knobs_mu);
	*by_origin = *list && strcmp(list, "*") != 0;
	if (origin && strcmp(list, "*") == 0)
		c = CORS_ANY;
	else if (origin && *by_origin && origin_listed(list, origin))
		c = CORS_ECHO;
	pthread_mutex_unlock(&d->knobs_mu);
	return c;
}

/*
 * The headers every answer gets from where it is asked and configured:
 * Allow on a 405 and on an OPTIONS (RFC 9110, 15.5.6 and 9.3.7), and the
 * CORS ones, a preflight's included.
 */
static void reply_headers(struct sd_req *r, unsigned status,
			  struct MHD_Response *resp)
{
	const char *origin = MHD_lookup_connection_value(r->conn,
							 MHD_HEADER_KIND,
							 "Origin");
	int options = r->method && strcmp(r->method, "OPTIONS") == 0;
	int by_origin;
	enum cors c = cors_of(r->d, origin, &by_origin);
	char allow[64];

	method_list(r->allow, allow, sizeof(allow));
	if (r->allow && (status == 405 || options))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	/* Also when this Origin is refused or there is none: a cache must
	 * not hand this answer to another origin. */
	if (by_origin)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
	if (c == CORS_NONE)
		return;
	MHD_add_response_header(resp, "Access-Control-Allow-Origin",
				c == CORS_ANY ? "*" : origin);
	MHD_add_response_header(resp, "Access-Control-Expose-Headers",
				cors_expose);
	if (!options || !r->allow)
		return;
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers",
				cors_allow_headers);
	MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
}

/*
 * OPTIONS on a known path, whatever route serves it: 204 with Allow and,
 * for an allowed Origin, the preflight's headers (reply_headers).  A body,
 * which an OPTIONS may carry, is read and dropped.
 */
static enum MHD_Result route_options(struct sd_req *r, const char *upload,
				     size_t *upload_size)
{
	(void)upload;
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->status)
		return MHD_YES;
	return sd_reply(r, 204, MHD_create_response_from_buffer(
					0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

static void count_status(struct sd_daemon *d, unsigned status)
{
	for (unsigned i = 0; i < SD_HTTP_CODES; i++) {
		if (sd_http_codes[i] == status) {
			atomic_fetch_add(&d->http_count[i], 1);
			return;
		}
	}
	atomic_fetch_add(&d->http_other, 1);
}

enum MHD_Result sd_reply(struct sd_req *r, unsigned status,
			 struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Server", PACKAGE_NAME "/"
				PACKAGE_VERSION);
	reply_headers(r, status, resp);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->status = status;
		count_status(r->d, status);
	}
	return ret;
}

enum MHD_Result sd_reply_text(struct sd_req *r, unsigned status,
			      const char *type, const char *body, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-cache");
	r->bytes = len;
	return sd_reply(r, status, resp);
}

enum MHD_Result sd_reply_json(struct sd_req *r, json_t *o)
{
	return sd_reply_json_status(r, 200, o);
}

enum MHD_Result sd_reply_json_status(struct sd_req *r, unsigned status,
				     json_t *o)
{
	char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER |
				   JSON_REAL_PRECISION(10))
		       : NULL;
	enum MHD_Result ret;

	json_decref(o);
	if (!text)
		return sd_reply_error(r, 500, "out of memory");
	ret = sd_reply_text(r, status, "application/json", text, strlen(text));
	free(text);
	return ret;
}

enum MHD_Result sd_reply_error(struct sd_req *r, unsigned status,
			       const char *fmt, ...)
{
	char msg[512];
	char *body;
	json_t *o;
	va_list ap;
	enum MHD_Result ret;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_log_error(r->d->log, SD_LOG_INFO, "%s %s: %u %s", r->method,
		     r->url, status, msg);
	o = json_pack("{s:s, s:i}", "error", msg, "status", (int)status);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return MHD_NO;
	ret = sd_reply_text(r, status, "application/json", body, strlen(body));
	free(body);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Tokens and arguments                                                */
/* ------------------------------------------------------------------ */

/* Compares every byte of the longer string, so the time taken does not
 * tell an attacker how much of a guess was right. */
static int const_time_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < la ? (unsigned char)a[i] : 0;
		unsigned char y = i < lb ? (unsigned char)b[i] : 0;

		diff |= x ^ y;
	}
	return diff == 0;
}

int sd_req_token_ok(struct sd_req *r, const char *want)
{
	const char *auth, *q;

	if (!want || !*want)
		return 1;
	auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
		return const_time_eq(auth + 7, want);
	q = sd_req_arg(r, "token");
	return q ? const_time_eq(q, want) : 0;
}

const char *sd_req_arg(struct sd_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ------------------------------------------------------------------ */
/* Small bodies                                                        */
/* ------------------------------------------------------------------ */

static void body_cleanup(struct sd_req *r)
{
	struct sd_body *b = r->priv;

	if (b)
		free(b->p);
	free(b);
	r->priv = NULL;
}

struct sd_body *sd_req_body(struct sd_req *r, const char *upload,
			    size_t *upload_size, size_t max, int *done)
{
	struct sd_body *b = r->priv;

	*done = 0;
	if (!b) {
		if (!(b = calloc(1, sizeof(*b))))
			return NULL;
		r->priv = b;
		r->cleanup = body_cleanup;
		return b;
	}
	if (*upload_size == 0) {
		*done = 1;
		return b;
	}
	/* Past the limit the rest is read and dropped, so the answer (413)
	 * goes out on a connection that is still in step. */
	if (b->len + *upload_size > max) {
		b->too_big = 1;
	} else if (!b->too_big) {
		char *p = realloc(b->p, b->len + *upload_size + 1);

		if (!p)
			return NULL;
		memcpy(p + b->len, upload, *upload_size);
		b->p = p;
		b->len += *upload_size;
		p[b->len] = '\0';
	}
	*upload_size = 0;
	return b;
}

/* ------------------------------------------------------------------ */
/* Suspend handshake (invariants in sd_http.h)                         */
/* ------------------------------------------------------------------ */

void sd_req_wake(struct sd_req *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->gone) {
		/* nothing to resume */
	} else if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
	} else {
		r->wake_pending = 1;
	}
	pthread_mutex_unlock(&r->mu);
}

int sd_req_suspend(struct sd_req *r)
{
	int done = 0;

	pthread_mutex_lock(&r->mu);
	if (r->wake_pending) {
		r->wake_pending = 0;
	} else {
		r->suspended = 1;
		MHD_suspend_connection(r->conn);
		done = 1;
	}
	pthread_mutex_unlock(&r->mu);
	return done;
}

/* ------------------------------------------------------------------ */
/* Connection guard                                                    */
/* ------------------------------------------------------------------ */

/*
 * libmicrohttpd can cap connections per address and in all, but it
 * checks both before the accept policy callback and says nothing (at its
 * global cap a pool thread even stops accepting, so the excess waits in
 * the listen backlog rather than being refused); and its inactivity
 * timeout cannot bound how long a request's head takes, which a client
 * trickling one byte every few seconds defeats.  So the guard counts
 * connections per address and per listener in the accept policy callback
 * (refusing and counting the excess), follows each connection from MHD's
 * STARTED notification to its CLOSED one, and a reaper thread shuts down
 * (shutdown(2)) the ones whose head is overdue; the connection's MHD
 * thread then sees the end of the stream and closes it as usual.  MHD's
 * own connection limit stays, set above ours, as a backstop.
 *
 * Invariants (g->mu guards the lists, counts and conn fields):
 *  1. A struct conn lives from STARTED to CLOSED, on g->conns the whole
 *     time; only the CLOSED notification unlinks and frees it.
 *  2. MHD closes a connection's descriptor after CLOSED, so the fd of a
 *     conn on the list is still that connection's: the reaper's shutdown()
 *     under g->mu never reaches a reused descriptor.
 *  3. A connection accept_ok() admits holds one count of its listener
 *     (l->open) and, under a per-address cap, one of its address, until
 *     CLOSED.  From accept_ok() to STARTED (one after the other on the
 *     accepting thread) the hold sits in that thread's pending slot; if
 *     MHD drops the connection in between, the thread's next accept_ok()
 *     gives it back.
 *  4. c->due is non-zero exactly while the connection waits for a
 *     request's head.
 *
 * A connection's transitions:
 *   accept_ok()        admitted (hold taken) or refused (counted)
 *   on_conn(STARTED)   tracked, due = now + header_timeout
 *   req_begin()        the head is in: due = 0
 *   on_completed()     the request is over: due = now + idle + header
 *                      timeouts (a kept-alive connection's next head)
 *   reap()             overdue: shut down, counted
 *   on_conn(CLOSED)    untracked, hold given back
 */

#define REAP_MIN_NS (10 * 1000000LL)
#define REAP_MAX_NS (250 * 1000000LL)
/* MHD's idle timeout and ours are read on different clocks. */
#define IDLE_SLACK_NS (50 * 1000000LL)

struct ip_hold {
	unsigned char addr[16];
	size_t len;
	unsigned n;		/* connections held */
	struct ip_hold *next;
};

struct conn {
	struct listener *l;
	struct ip_hold *ip;	/* the address's count, if held */
	int held;		/* holds one of l->open */
	int fd;
	int64_t due;		/* head due by (sd_now), 0: in a request */
	int64_t since;		/* accepted, or the last request's end */
	int reaped, timed_out;
	int fresh;		/* counted in d->http_fresh */
	struct conn *next, *prev;
};

struct sd_http_guard {
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* stop the reaper */
	pthread_t reaper;
	int reaping, stop;
	int64_t head_ns;	/* header_timeout; 0: none */
	int64_t idle_ns;	/* MHD's idle timeout, whole seconds */
	int64_t period_ns;	/* of the reaper */
	struct conn *conns;
	struct listener main, admin;
};

static __thread struct {
	struct listener *l;
	struct ip_hold *ip;
} pending; /* invariant 3 */

static void refused(struct sd_daemon *d, enum sd_http_refusal why)
{
	atomic_fetch_add(&d->http_refused[why], 1);
}

/* The client's address as a key (IPv4, also when mapped into IPv6, or
 * IPv6); 0 for other families, which are not counted per address. */
static size_t addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	const struct in6_addr *a6;

	if (sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(key, a6->s6_addr + 12, 4);
		return 4;
	}
	memcpy(key, a6->s6_addr, 16);
	return 16;
}

static struct ip_hold **ip_bucket(struct listener *l, const unsigned char *k,
				  size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 16777619u;
	return &l->ips[h % ARRAY_LEN(l->ips)];
}

/* The address's count, or NULL; a new one (at 0) when @make.  g->mu. */
static struct ip_hold *ip_find(struct listener *l, const unsigned char *k,
			       size_t n, int make)
{
	struct ip_hold **b = ip_bucket(l, k, n), *e;

	for (e = *b; e; e = e->next)
		if (e->len == n && memcmp(e->addr, k, n) == 0)
			return e;
	if (!make || !(e = calloc(1, sizeof(*e))))
		return NULL;
	memcpy(e->addr, k, n);
	e->len = n;
	e->next = *b;
	*b = e;
	return e;
}

/* Gives back a connection's hold (invariant 3).  g->mu held. */
static void hold_release(struct listener *l, struct ip_hold *ip)
{
	struct ip_hold **pp;

	l->open--;
	if (!ip || --ip->n > 0)
		return;
	for (pp = ip_bucket(l, ip->addr, ip->len); *pp != ip; pp = &(*pp)->next)
		;
	*pp = ip->next;
	free(ip);
}

/* MHD's accept policy: admits a connection within the caps, taking its
 * hold, or refuses it (MHD closes it at once). */
static enum MHD_Result accept_ok(void *cls, const struct sockaddr *addr,
				 socklen_t addrlen)
{
	struct listener *l = cls;
	struct sd_http_guard *g = l->g;
	unsigned cap = l->d->cfg.max_connections_per_ip;
	unsigned char key[16];
	size_t kl = cap && addr && addrlen ? addr_key(addr, key) : 0;
	struct ip_hold *ip;
	int why = -1;

	pthread_mutex_lock(&g->mu);
	if (pending.l) /* MHD dropped the last one before STARTED */
		hold_release(pending.l, pending.ip);
	pending.l = NULL;
	pending.ip = NULL;
	ip = kl ? ip_find(l, key, kl, 0) : NULL;
	if (ip && ip->n >= cap)
		why = SD_REFUSED_PER_IP;
	else if (l->open >= l->max)
		why = SD_REFUSED_LIMIT;
	else if (kl && !ip && !(ip = ip_find(l, key, kl, 1)))
		why = SD_REFUSED_LIMIT; /* no memory to count it */
	if (why < 0) {
		l->open++;
		if (ip)
			ip->n++;
		pending.l = l;
		pending.ip = ip;
	}
	pthread_mutex_unlock(&g->mu);
	if (why < 0)
		return MHD_YES;
	refused(l->d, (enum sd_http_refusal)why);
	return MHD_NO;
}

static void conn_started(struct listener *l, struct MHD_Connection *mc,
			 void **ctx)
{
	struct sd_http_guard *g = l->g;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct conn *c = calloc(1, sizeof(*c));
	int64_t now = (int64_t)sd_now();

	atomic_fetch_add(&l->d->http_open, 1);
	if (c && !l->admin) {
		c->fresh = 1;
		atomic_fetch_add(&l->d->http_fresh, 1);
		atomic_store(&l->d->http_fresh_at, now);
	}
	pthread_mutex_lock(&g->mu);
	if (c) {
		c->l = l;
		c->fd = ci ? ci->connect_fd : -1;
		c->held = pending.l == l;
		c->ip = c->held ? pending.ip : NULL;
		c->since = now;
		c->due = g->head_ns ? now + g->head_ns : INT64_MAX;
		c->next = g->conns;
		if (g->conns)
			g->conns->prev = c;
		g->conns = c;
	} else if (pending.l) { /* untracked: only MHD's timeout holds it */
		hold_release(pending.l, pending.ip);
	}
	pending.l = NULL;
	pending.ip = NULL;
	pthread_mutex_unlock(&g->mu);
	*ctx = c;
}

/*
 * Slices while a crowd arrives.  A libmicrohttpd worker serves each ready
 * connection once per turn of its event loop, and reads a new
 * connection's request only when its turn comes, after every connection
 * already writing.  When hundreds of players take their start-up burst
 * at once, each writes a whole buffer per turn (a chunked body fills the
 * connection's memory pool: 48 KiB with the default max_header_size)
 * and a turn lasts hundreds of milliseconds: that, not our own work, is
 * most of what a crowd waits for its first byte (doc/streamd.md,
 * "Capacity and cost").  So while a connection accepted within the last
 * CROWD_WINDOW_NS has not had its request head read, bodies go
 * CROWD_SLICE at a time: a turn moves a third of the bytes, the
 * newcomers' requests are read sooner, and players already served get a
 * slice every (shorter) turn.  Measured, it helps less than the bytes
 * suggest, since a turn also costs per connection (p99 0.87 times,
 * stalls unchanged); 8 KiB slices cost enough more calls that admission's
 * CPU measure refused part of a 3,200-player crowd in three runs of six,
 * 16 KiB in none.  The window bounds what a connection that never sends
 * (a browser's preconnect, a scanner) costs everyone else: it runs from
 * the last accept, so such a connection slices bodies until a window
 * after the last connection came, not until its idle timeout.  A window
 * per connection would mean walking the guard's list under its lock on
 * every body call, for a bound on extra calls, not on correctness.
 */
#define CROWD_SLICE (16u * 1024u)
#define CROWD_WINDOW_NS ((int64_t)SD_NS)

size_t sd_http_slice(struct sd_daemon *d, size_t max)
{
	if (max <= CROWD_SLICE || atomic_load(&d->http_fresh) == 0 ||
	    (int64_t)sd_now() - atomic_load(&d->http_fresh_at) >
		    CROWD_WINDOW_NS)
		return max;
	return CROWD_SLICE;
}

/* @c's first request head is read, or it closed before one came. */
static void conn_unfresh(struct listener *l, struct conn *c)
{
	if (c->fresh) {
		c->fresh = 0;
		atomic_fetch_sub(&l->d->http_fresh, 1);
	}
}

/*
 * MHD does not say why it closed a connection with no request in
 * progress.  One it closed unreaped, between requests or before the
 * first, at least its idle timeout after the last request ended (or it
 * was accepted) is counted as timed out: MHD would have closed it then.
 */
static void conn_closed(struct listener *l, void **ctx)
{
	struct sd_http_guard *g = l->g;
	struct conn *c = *ctx;
	int64_t now = (int64_t)sd_now();
	int idle;

	atomic_fetch_sub(&l->d->http_open, 1);
	if (!c)
		return;
	conn_unfresh(l, c);
	pthread_mutex_lock(&g->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->held)
		hold_release(l, c->ip);
	idle = !c->reaped && !c->timed_out && c->due &&
	       now - c->since >= g->idle_ns - IDLE_SLACK_NS;
	pthread_mutex_unlock(&g->mu);
	if (idle)
		refused(l->d, SD_REFUSED_IDLE_TIMEOUT);
	free(c);
	*ctx = NULL;
}

static void on_conn(void *cls, struct MHD_Connection *mc, void **ctx,
		    enum MHD_ConnectionNotificationCode what)
{
	if (what == MHD_CONNECTION_NOTIFY_STARTED)
		conn_started(cls, mc, ctx);
	else if (what == MHD_CONNECTION_NOTIFY_CLOSED)
		conn_closed(cls, ctx);
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* A request's head is in (invariant 4). */
static void guard_head_in(struct listener *l, struct MHD_Connection *mc)
{
	struct conn *c = conn_of(mc);

	if (!c)
		return;
	conn_unfresh(l, c);
	pthread_mutex_lock(&l->g->mu);
	c->due = 0;
	pthread_mutex_unlock(&l->g->mu);
}

/* A request is over: the connection may wait for idle_timeout and then
 * has header_timeout for the next head. */
static void guard_request_over(struct listener *l, struct MHD_Connection *mc,
			       enum MHD_RequestTerminationCode why)
{
	struct sd_http_guard *g = l->g;
	struct conn *c = conn_of(mc);
	int64_t now = (int64_t)sd_now();
	int timed_out = why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED;

	if (c) {
		pthread_mutex_lock(&g->mu);
		c->since = now;
		c->due = g->head_ns ? now + g->idle_ns + g->head_ns : INT64_MAX;
		timed_out = timed_out && !c->timed_out;
		c->timed_out |= timed_out;
		pthread_mutex_unlock(&g->mu);
	}
	if (timed_out)
		refused(l->d, SD_REFUSED_IDLE_TIMEOUT);
}

/* Shuts down every connection whose head is overdue.  g->mu held. */
static void reap(struct sd_http_guard *g, int64_t now)
{
	for (struct conn *c = g->conns; c; c = c->next) {
		if (!c->due || c->reaped || now < c->due || c->fd < 0)
			continue;
		c->reaped = 1;
		if (shutdown(c->fd, SHUT_RDWR) < 0)
			sd_log_error(c->l->d->log, SD_LOG_DEBUG, "shutdown(%d): "
				     "%s", c->fd, strerror(errno));
		refused(c->l->d, SD_REFUSED_HEADER_TIMEOUT);
	}
}

static void *reaper_main(void *arg)
{
	struct sd_http_guard *g = arg;
	struct timespec ts;

	pthread_setname_np(pthread_self(), "sd-reaper");
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		reap(g, (int64_t)sd_now());
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)g->period_ns;
		ts.tv_sec += ts.tv_nsec / SD_NS;
		ts.tv_nsec %= SD_NS;
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* MHD's idle timeout: whole seconds, at least one. */
static unsigned idle_seconds(const struct sd_daemon *d)
{
	uint64_t s = d->cfg.idle_timeout_ns / SD_NS;

	return s == 0 ? 1u : s > UINT_MAX ? UINT_MAX : (unsigned)s;
}

static void listener_init(struct listener *l, struct sd_http_guard *g,
			  struct sd_daemon *d, int admin)
{
	l->d = d;
	l->g = g;
	l->admin = admin;
	l->spec = admin ? d->cfg.admin_listen : d->cfg.listen;
	l->key = admin ? "admin_listen" : "listen";
	l->max = admin ? ADMIN_MAX_CONNECTIONS : d->cfg.max_connections;
}

static int guard_new(struct sd_daemon *d, struct sd_http_guard **out)
{
	struct sd_http_guard *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;
	int64_t period;

	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	g->head_ns = (int64_t)d->cfg.header_timeout_ns;
	g->idle_ns = (int64_t)idle_seconds(d) * SD_NS;
	period = g->head_ns / 8;
	g->period_ns = period < REAP_MIN_NS ? REAP_MIN_NS :
		       period > REAP_MAX_NS ? REAP_MAX_NS : period;
	listener_init(&g->main, g, d, 0);
	listener_init(&g->admin, g, d, 1);
	*out = g;
	return 0;
}

/* After both MHD daemons stopped (every CLOSED has run).  NULL: no-op. */
static void guard_free(struct sd_http_guard *g)
{
	struct listener *ls[2];

	if (!g)
		return;
	if (g->reaping) {
		pthread_mutex_lock(&g->mu);
		g->stop = 1;
		pthread_cond_signal(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->reaper, NULL);
	}
	while (g->conns) {
		struct conn *c = g->conns;

		g->conns = c->next;
		free(c);
	}
	ls[0] = &g->main;
	ls[1] = &g->admin;
	for (int i = 0; i < 2; i++) {
		for (size_t b = 0; b < ARRAY_LEN(ls[i]->ips); b++) {
			while (ls[i]->ips[b]) {
				struct ip_hold *e = ls[i]->ips[b];

				ls[i]->ips[b] = e->next;
				free(e);
			}
		}
	}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* ------------------------------------------------------------------ */
/* Request life cycle                                                  */
/* ------------------------------------------------------------------ */

/* @url: the request target as received, until the head is in. */
static struct sd_req *req_new(struct sd_daemon *d,
			      struct MHD_Connection *conn, const char *url)
{
	struct sd_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->url = strdup(url);
	if (!r->url) {
		free(r);
		return NULL;
	}
	r->d = d;
	r->conn = conn;
	r->t0 = (int64_t)sd_now();
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_lock(&d->mu);
	r->next = d->reqs;
	if (d->reqs)
		d->reqs->prev = r;
	d->reqs = r;
	pthread_mutex_unlock(&d->mu);
	return r;
}

static void req_free(struct sd_req *r)
{
	struct sd_daemon *d = r->d;

	if (r->cleanup)
		r->cleanup(r);
	pthread_mutex_lock(&d->mu);
	if (r->prev)
		r->prev->next = r->next;
	else
		d->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_destroy(&r->mu);
	free(r->url);
	free(r);
}

/*
 * MHD's URI log callback, called once the request line is in and before
 * MHD decodes it: the request starts here, so the raw target can be
 * checked (what it returns is the access handler's *con_cls).
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct listener *l = cls;
	struct sd_req *r = req_new(l->d, conn, uri);
	struct conn *c = conn_of(conn);

	if (r) {
		r->bad_path = !raw_target_ok(uri);
		r->target_len = strlen(uri);
		/* When the connection was accepted (or its last request
		 * ended): what a client waited before its request line.  Only
		 * this connection's own thread writes c->since, so reading it
		 * here needs no guard lock on the request path. */
		r->t_conn = c ? c->since : r->t0;
	}
	return r;
}

/*
 * The first access callback: the head is in.  Checks it and picks the
 * route (r->route); a head refused is answered here, with r->route left
 * NULL.  Returns MHD_YES to go on, or what answering returned.
 */
static enum MHD_Result req_begin(struct listener *l, struct sd_req *r,
				 const char *url, const char *method,
				 const char *version)
{
	struct sd_daemon *d = l->d;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	char *path = strdup(url);
	unsigned status = 0;

	guard_head_in(l, r->conn);
	if (!path)
		return MHD_NO;
	pthread_mutex_lock(&d->mu); /* /admin/sessions reads it */
	free(r->url);
	r->url = path;
	pthread_mutex_unlock(&d->mu);
	r->method = method;
	r->version = version;
	if (ci && ci->header_size > d->cfg.max_header_size) {
		refused(d, SD_REFUSED_HEADER_SIZE);
		return sd_reply_error(r, 431, "request head of %zu bytes; the "
				      "limit is %llu", ci->header_size,
				      (unsigned long long)d->cfg.max_header_size);
	}
	if (r->bad_path || !path_ok(url) ||
	    !target_whole(r, url, version, d->cfg.max_header_size + POOL_EXTRA))
		return sd_reply_error(r, 400, "bad path: '.' and '..' segments "
				      "and escaped dots, slashes, backslashes "
				      "and NULs are refused");
	r->route = route_find(l, method, url, r->name, sizeof(r->name),
			      &status, &r->allow);
	if (!r->route)
		return sd_reply_error(r, status, status == 404 ?
				      "no such resource" :
				      "method not allowed here");
	return MHD_YES;
}

/*
 * libmicrohttpd closes the connection after a reply queued in a
 * request's first callback, since it cannot tell whether a body is still
 * to come.  So a GET, HEAD or OPTIONS, which has none (or one that
 * route_options drops), starts its route on the second callback, and its
 * connection can be kept alive; an upload's route starts on the first,
 * as it must.  r->calls counts the callbacks the route has seen.
 */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct listener *l = cls;
	struct sd_req *r = *con_cls;

	if (!r) { /* on_uri had no memory */
		r = req_new(l->d, conn, url);
		if (!r)
			return MHD_NO;
		*con_cls = r;
	}
	if (!r->method) {
		enum MHD_Result ret = req_begin(l, r, url, method, version);

		if (!r->route || ret != MHD_YES)
			return ret;
		if (method_bit(method) & (M_GET | M_HEAD | M_OPTIONS))
			return MHD_YES;
	}
	if (!r->route) { /* answered at once: the body is dropped */
		*upload_size = 0;
		return MHD_YES;
	}
	r->calls++;
	return r->route(r, upload, upload_size);
}

static void log_access(struct sd_daemon *d, struct MHD_Connection *conn,
		       const struct sd_req *r)
{
	const union MHD_ConnectionInfo *ci;
	char host[INET6_ADDRSTRLEN] = "-";

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->
				  sin_addr, host, sizeof(host));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->
				  sin6_addr, host, sizeof(host));
	}
	sd_log_access(d->log, host, r->method, r->url,
		      r->version ? r->version : "HTTP/1.1",
		      r->status ? r->status : 499, r->bytes,
		      MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						  MHD_HTTP_HEADER_REFERER),
		      MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						  MHD_HTTP_HEADER_USER_AGENT),
		      (uint64_t)((int64_t)sd_now() - r->t0) / 1000000u);
}

/* A request ends (or its connection closes).  One whose head never came
 * in (MHD refused it, or the client left) reached no route: no access
 * log line, as for a connection that never sent a request line. */
static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct listener *l = cls;
	struct sd_req *r = *con_cls;

	guard_request_over(l, conn, why);
	if (!r)
		return;
	/* Producers may still wake it until cleanup stops them. */
	pthread_mutex_lock(&r->mu);
	r->gone = 1;
	r->suspended = 0;
	pthread_mutex_unlock(&r->mu);
	if (r->method)
		log_access(l->d, conn, r);
	req_free(r);
	*con_cls = NULL;
}

/*
 * MHD answers a head too large for a connection's memory itself (431, or
 * 414 when the request line alone does not fit) and tells only its log;
 * that line is where those refusals are counted.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char said[] = "HTTP response code is ";
	struct listener *l = cls;
	char line[512];
	const char *p;
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	p = strstr(line, said);
	if (p) {
		unsigned long code = strtoul(p + sizeof(said) - 1, NULL, 10);

		if (code == 431 || code == 414)
			refused(l->d, SD_REFUSED_HEADER_SIZE);
	}
	/* Mostly clients that went away mid-response: routine for a
	 * streaming server.  Start-up failures are logged by the caller. */
	sd_log_error(l->d->log, SD_LOG_DEBUG, "libmicrohttpd: %s", line);
}

/* "host:port", "[v6]:port" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss,
			socklen_t *len)
{
	char host[128];
	const char *colon, *port;
	struct addrinfo hints = { 0 }, *ai = NULL;
	size_t hl;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - spec - 1);
		spec++;
		port = end + 2;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - spec);
		port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(host) || !*port)
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/*
 * Starts @l's MHD daemon with @threads epoll threads.  The guard's caps
 * are the real ones; MHD's limit is set so high that it never binds before
 * them (each pool thread gets a share of it).
 */
static int listener_start(struct listener *l, unsigned threads)
{
	struct sd_daemon *d = l->d;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	unsigned backstop = l->max > UINT_MAX / (threads + 1) ? UINT_MAX :
			    l->max * (threads + 1);
	size_t pool = (size_t)d->cfg.max_header_size + POOL_EXTRA;
	int err = parse_listen(l->spec, &ss, &sl);

	if (err < 0) {
		sd_log_error(d->log, SD_LOG_ERROR, "%s address '%s': "
			     "expected HOST:PORT or [V6]:PORT", l->key, l->spec);
		return err;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	l->mhd = MHD_start_daemon(
		flags, 0, accept_ok, l, on_access, l,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, backstop,
		MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds(d),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
		MHD_OPTION_NOTIFY_CONNECTION, on_conn, l,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
		MHD_OPTION_END);
	if (!l->mhd) {
		err = errno ? -errno : -EADDRINUSE;
		sd_log_error(d->log, SD_LOG_ERROR, "MHD_start_daemon(%s): "
			     "%s", l->spec, strerror(-err));
		return err;
	}
	di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (l->admin) {
		d->admin_mhd = l->mhd;
		d->admin_port = di ? di->port : 0;
	} else {
		d->mhd = l->mhd;
		d->port = di ? di->port : 0;
	}
	return 0;
}

/* "admin listening on http://HOST:PORT/", a wildcard host shown as the
 * loopback address a local client would use. */
static void log_admin_url(const struct sd_daemon *d)
{
	const char *spec = d->cfg.admin_listen;
	const char *colon = strrchr(spec, ':');
	int hl = colon ? (int)(colon - spec) : 0;

	if (strncmp(spec, "0.0.0.0:", 8) == 0) {
		spec = "127.0.0.1";
		hl = 9;
	} else if (strncmp(spec, "[::]:", 5) == 0) {
		spec = "[::1]";
		hl = 5;
	}
	sd_log_error(d->log, SD_LOG_INFO, "admin listening on "
		     "http://%.*s:%u/", hl, spec, d->admin_port);
}

int sd_http_start(struct sd_daemon *d)
{
	struct sd_http_guard *g;
	int err = guard_new(d, &g);

	if (err < 0)
		return err;
	d->guard = g;
	err = listener_start(&g->main, SD_HTTP_THREADS);
	if (err == 0 && *d->cfg.admin_listen)
		err = listener_start(&g->admin, 1);
	if (err == 0) {
		err = -pthread_create(&g->reaper, NULL, reaper_main, g);
		g->reaping = err == 0;
		if (err < 0)
			sd_log_error(d->log, SD_LOG_ERROR, "pthread_create("
				     "reaper): %s", strerror(-err));
	}
	if (err < 0)
		goto fail;
	if (d->admin_mhd)
		log_admin_url(d);
	return 0;
fail:
	if (d->admin_mhd)
		MHD_stop_daemon(d->admin_mhd);
	if (d->mhd)
		MHD_stop_daemon(d->mhd);
	d->admin_mhd = d->mhd = NULL;
	guard_free(g);
	d->guard = NULL;
	return err;
}

/* Wakes every suspended request, so each sees d->stopping (or a finished
 * ingest) and completes. */
static void wake_all(struct sd_daemon *d)
{
	pthread_mutex_lock(&d->mu);
	for (struct sd_req *r = d->reqs; r; r = r->next)
		sd_req_wake(r);
	pthread_mutex_unlock(&d->mu);
}

void sd_http_stop(struct sd_daemon *d, uint64_t grace_ns)
{
	struct timespec until;
	unsigned left;

	if (!d->mhd)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(grace_ns / SD_NS);
	until.tv_nsec += (long)(grace_ns % SD_NS);
	if (until.tv_nsec >= SD_NS) {
		until.tv_sec++;
		until.tv_nsec -= SD_NS;
	}
	/* Every upload ends as if its encoder had finished: the ingest
	 * threads drain what arrived and close the recordings.  Publishers
	 * are refused from here on; players end their responses when
	 * woken. */
	sd_recorder_stop_all(d->recorder);
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	pthread_mutex_unlock(&d->mu);
	/* Players whose session is still queued to open are answered (503)
	 * and none is left waiting for an opener: MHD must find no request
	 * suspended for good when it stops. */
	sd_pump_stop_opens(d->pump);
	/* Likewise the clips and thumbnails: queued ones are answered, and
	 * those being made see the stop at their next read. */
	sd_work_stop(d->work);
	wake_all(d);
	left = sd_recorder_wait(d->recorder, &until);
	if (left > 0)
		sd_log_error(d->log, SD_LOG_WARN, "stop: %u recording(s) "
			     "still closing after the grace period", left);
	wake_all(d);
	if (d->admin_mhd)
		MHD_stop_daemon(d->admin_mhd);
	MHD_stop_daemon(d->mhd);
	d->admin_mhd = d->mhd = NULL;
	guard_free(d->guard);
	d->guard = NULL;
}
