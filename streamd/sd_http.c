/*
 * The HTTP front end of streamd on libmicrohttpd: binds the listen
 * address, dispatches each request through one static route table
 * (method, path shape, handler), keeps every live request on a list so a
 * clean stop can wake and finish them, writes the access log when a
 * request ends, and provides the small reply and token helpers the routes
 * share.  MHD runs a small pool of epoll threads; connections with nothing
 * to send are suspended rather than polled (see sd_http.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "sd_http.h"

#define SD_HTTP_THREADS 4

const unsigned sd_http_codes[SD_HTTP_CODES] = {
	200, 201, 204, 206, 304, 400, 401, 403,
	404, 405, 409, 413, 415, 416, 500, 507,
};

/* ------------------------------------------------------------------ */
/* Route table                                                         */
/* ------------------------------------------------------------------ */

enum shape {
	EXACT,	     /* the path itself */
	NAME,	     /* prefix + name */
	NAME_SUFFIX, /* prefix + name + suffix */
};

#define M_GET 0x1u
#define M_HEAD 0x2u
#define M_PUT 0x4u
#define M_POST 0x8u

static const struct route {
	unsigned methods;
	enum shape shape;
	const char *prefix;
	const char *suffix;
	sd_route_fn fn;
} routes[] = {
	{ M_PUT | M_POST, NAME, "/record/", NULL, sd_route_record },
	{ M_GET | M_HEAD, EXACT, "/streams", NULL, sd_route_list },
	{ M_GET | M_HEAD, EXACT, "/streams/", NULL, sd_route_list },
	{ M_GET | M_HEAD, NAME_SUFFIX, "/streams/", "/data.ts", sd_route_data },
	{ M_GET | M_HEAD, NAME_SUFFIX, "/streams/", "/index.m3u8",
	  sd_route_hls },
	{ M_GET | M_HEAD, NAME_SUFFIX, "/streams/", ".ts", sd_route_play },
	{ M_GET | M_HEAD, NAME, "/streams/", NULL, sd_route_detail },
	{ M_GET | M_HEAD | M_PUT, EXACT, "/admin/config", NULL,
	  sd_route_config },
	{ M_GET | M_HEAD, EXACT, "/admin/sessions", NULL, sd_route_sessions },
	{ M_GET | M_HEAD, EXACT, "/metrics", NULL, sd_route_metrics },
	{ M_GET | M_HEAD, EXACT, "/", NULL, sd_route_home },
};

static unsigned method_bit(const char *m)
{
	static const struct {
		const char *name;
		unsigned bit;
	} tab[] = { { "GET", M_GET }, { "HEAD", M_HEAD }, { "PUT", M_PUT },
		    { "POST", M_POST } };

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(m, tab[i].name) == 0)
			return tab[i].bit;
	return 0;
}

/* Does @path have the route's shape?  The name part goes to @name (it may
 * be invalid: the route answers 400 for that, not 404). */
static int route_match(const struct route *rt, const char *path, char *name,
		       size_t cap)
{
	size_t pl = strlen(rt->prefix), sl = rt->suffix ? strlen(rt->suffix) : 0;
	size_t n = strlen(path), nl;

	if (rt->shape == EXACT)
		return strcmp(path, rt->prefix) == 0;
	if (n <= pl + sl || strncmp(path, rt->prefix, pl) != 0)
		return 0;
	if (sl && strcmp(path + n - sl, rt->suffix) != 0)
		return 0;
	nl = n - pl - sl;
	if (rt->shape == NAME && memchr(path + pl, '/', nl))
		return 0;
	if (rt->shape == NAME_SUFFIX && memchr(path + pl, '/', nl))
		return 0;
	if (nl >= cap) /* longer than any valid name: keep a marker */
		nl = cap - 1;
	memcpy(name, path + pl, nl);
	name[nl] = '\0';
	if (n - pl - sl >= cap)
		name[0] = '\0'; /* too long: invalid */
	return 1;
}

/* The route for a request, or NULL with *status 404 or 405. */
static sd_route_fn route_find(const char *method, const char *path,
			      char *name, size_t cap, unsigned *status)
{
	unsigned bit = method_bit(method);
	int path_known = 0;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!route_match(&routes[i], path, name, cap))
			continue;
		path_known = 1;
		if (routes[i].methods & bit)
			return routes[i].fn;
	}
	*status = path_known ? 405 : 404;
	return NULL;
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
	sd_log_error(r->d->log, DJMFS_LOG_INFO, "%s %s: %u %s", r->method,
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
/* Request life cycle                                                  */
/* ------------------------------------------------------------------ */

static struct sd_req *req_new(struct sd_daemon *d,
			      struct MHD_Connection *conn, const char *method,
			      const char *url)
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
	r->method = method;
	r->t0 = (int64_t)djmfs_now();
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

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct sd_daemon *d = cls;
	struct sd_req *r = *con_cls;
	unsigned status = 0;

	if (!r) {
		r = req_new(d, conn, method, url);
		if (!r)
			return MHD_NO;
		r->version = version;
		*con_cls = r;
		r->route = route_find(method, url, r->name, sizeof(r->name),
				      &status);
		if (!r->route)
			return sd_reply_error(r, status, status == 404 ?
					      "no such resource" :
					      "method not allowed here");
	}
	r->calls++;
	return r->route(r, upload, upload_size);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct sd_daemon *d = cls;
	struct sd_req *r = *con_cls;
	const union MHD_ConnectionInfo *ci;
	char host[INET6_ADDRSTRLEN] = "-";

	(void)why;
	if (!r)
		return;
	/* Producers may still wake it until cleanup stops them. */
	pthread_mutex_lock(&r->mu);
	r->gone = 1;
	r->suspended = 0;
	pthread_mutex_unlock(&r->mu);
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
		      (uint64_t)((int64_t)djmfs_now() - r->t0) / 1000000u);
	req_free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct sd_daemon *d = cls;
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* Mostly clients that went away mid-response: routine for a
	 * streaming server.  Start-up failures are logged by the caller. */
	sd_log_error(d->log, DJMFS_LOG_DEBUG, "libmicrohttpd: %s", line);
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

int sd_http_start(struct sd_daemon *d)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	unsigned timeout_s = (unsigned)(d->cfg.idle_timeout_ns / SD_NS);
	int err = parse_listen(d->cfg.listen, &ss, &sl);

	if (err < 0) {
		sd_log_error(d->log, DJMFS_LOG_ERROR, "listen address '%s': "
			     "expected HOST:PORT or [V6]:PORT", d->cfg.listen);
		return err;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	d->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_access, d,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, d,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)SD_HTTP_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, d->cfg.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout_s ? timeout_s : 1u,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
		MHD_OPTION_END);
	if (!d->mhd) {
		err = errno ? -errno : -EADDRINUSE;
		sd_log_error(d->log, DJMFS_LOG_ERROR, "MHD_start_daemon(%s): "
			     "%s", d->cfg.listen, strerror(-err));
		return err;
	}
	di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	d->port = di ? di->port : 0;
	return 0;
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

	if (!d->mhd)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(grace_ns / SD_NS);
	until.tv_nsec += (long)(grace_ns % SD_NS);
	if (until.tv_nsec >= SD_NS) {
		until.tv_sec++;
		until.tv_nsec -= SD_NS;
	}
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	pthread_mutex_unlock(&d->mu);
	/* Every upload ends as if its encoder had finished: the ingest
	 * threads drain what arrived and close the recordings.  Players end
	 * their responses when woken. */
	sd_record_stop_all(d);
	wake_all(d);
	pthread_mutex_lock(&d->mu);
	while (d->publishing > 0)
		if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT)
			break;
	if (d->publishing > 0)
		sd_log_error(d->log, DJMFS_LOG_WARN, "stop: %u recording(s) "
			     "still closing after the grace period",
			     d->publishing);
	pthread_mutex_unlock(&d->mu);
	wake_all(d);
	MHD_stop_daemon(d->mhd);
	d->mhd = NULL;
}
