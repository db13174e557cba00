/*
 * The shared client side of streamd's load tools (see loadgen.h): HTTP
 * framing, non-blocking connections, the epoll loop with its tick, token
 * buckets, blocking GETs, the /metrics parser and /proc samples.  One
 * thread drives everything, so nothing here locks.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "tool_clock.h"

void lg_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };

	nanosleep(&ts, NULL);
}

bool lg_parse_number(const char *s, bool suffix, double *out)
{
	static const struct { char c; double mul; } sfx[] = {
		{ 'k', 1e3 }, { 'K', 1e3 }, { 'm', 1e6 }, { 'M', 1e6 },
		{ 'g', 1e9 }, { 'G', 1e9 },
	};
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || !isfinite(d))
		return false;
	for (size_t i = 0; suffix && *end && i < sizeof(sfx) / sizeof(sfx[0]);
	     i++)
		if (*end == sfx[i].c) {
			d *= sfx[i].mul, end++;
			break;
		}
	*out = d;
	return *end == '\0';
}

/* ------------------------------------------------------------------ */
/* The server and HTTP framing                                         */
/* ------------------------------------------------------------------ */

int lg_target_parse(struct lg_target *t, const char *url, char *err,
		    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	const char *given = url;
	char host[256], *port;
	size_t len;
	int r;

	if (strncmp(url, "http://", 7) != 0)
		goto bad;
	url += 7;
	len = strcspn(url, "/");
	if (len == 0 || len >= sizeof(host) || len >= sizeof(t->hostport))
		goto bad;
	memcpy(t->hostport, url, len);
	t->hostport[len] = '\0';
	memcpy(host, url, len);
	host[len] = '\0';
	port = strrchr(host, ':');
	if (!port || port == host || (host[0] == '[' && port[-1] != ']'))
		goto bad;
	*port++ = '\0';
	if (host[0] == '[') {	/* [v6 address] */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(r));
		return -EINVAL;
	}
	memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
	t->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen, "bad URL %s: expected http://HOST:PORT", given);
	return -EINVAL;
}

/* The value of header line @p (after "Name:") as a number, or -1. */
static int64_t head_number(const char *p, const char *eol)
{
	char *end;
	long long v;

	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= eol || !isdigit((unsigned char)*p))
		return -1;
	v = strtoll(p, &end, 10);
	return end <= eol && v >= 0 ? (int64_t)v : -1;
}

/* Retry-After (RFC 9110 10.2.3): delta-seconds or an IMF-fixdate. */
static double head_retry_after(const char *p, const char *eol)
{
	char date[64];
	struct tm tm = { 0 };
	size_t n;
	int64_t secs = head_number(p, eol);
	const char *end;
	time_t t;

	if (secs >= 0)
		return (double)secs;
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	n = (size_t)(eol - p);
	if (n == 0 || n >= sizeof(date))
		return -1;
	memcpy(date, p, n);
	date[n] = '\0';
	end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	t = timegm(&tm);
	return t > time(NULL) ? difftime(t, time(NULL)) : 0;
}

static void head_field(struct lg_head *h, const char *p, const char *eol)
{
	if (!strncasecmp(p, "transfer-encoding:", 18))
		h->chunked = memmem(p + 18, (size_t)(eol - p - 18), "chunked",
				    7) != NULL;
	else if (!strncasecmp(p, "content-length:", 15))
		h->content_length = head_number(p + 15, eol);
	else if (!strncasecmp(p, "content-range:", 14) &&
		 eol - p > 20 && !strncasecmp(p + 14, " bytes ", 7))
		h->range_start = head_number(p + 21, eol);
	else if (!strncasecmp(p, "x-streamd-offset:", 17))
		h->offset = head_number(p + 17, eol);
	else if (!strncasecmp(p, "retry-after:", 12))
		h->retry_after = head_retry_after(p + 12, eol);
}

int lg_head_parse(const char *buf, size_t len, struct lg_head *h)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *p;

	if (!end)
		return len >= LG_HEAD_MAX - 1 ? -1 : 0;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	h->status = atoi(buf + 9);
	h->len = (size_t)(end - buf) + 4;
	h->chunked = false;
	h->content_length = h->range_start = h->offset = -1;
	h->retry_after = -1;
	for (p = memchr(buf, '\n', len); p && p < end;
	     p = memchr(p + 1, '\n', (size_t)(end - p))) {
		const char *eol = memchr(p + 1, '\r', (size_t)(end + 2 - p));

		if (eol)
			head_field(h, p + 1, eol);
	}
	return h->status >= 100 && h->status <= 999 ? 1 : -1;
}

/* The chunked-body decoder.  Byte-wise except the data runs. */
static void chunk_byte(struct lg_chunk_dec *d, char ch)
{
	int x = isdigit((unsigned char)ch) ? ch - '0' :
		isxdigit((unsigned char)ch) ? (tolower(ch) - 'a' + 10) : -1;

	if (ch == '\r')
		return;
	switch (d->st) {
	case LG_CD_SIZE:
		if (x >= 0 && d->digits < 15) {
			d->size = d->size * 16 + (unsigned)x, d->digits++;
			return;
		}
		if (ch == ';' || ch == ' ' || ch == '\t')
			d->st = LG_CD_EXT;
		else if (ch != '\n')
			d->st = LG_CD_BAD;
		break;
	case LG_CD_EXT:
		break;
	case LG_CD_DATA_END:
		d->st = ch == '\n' ? LG_CD_SIZE : LG_CD_BAD;
		d->size = d->digits = 0;
		return;
	case LG_CD_TRAILER:
		if (ch != '\n')
			d->line++;
		else if (d->line == 0)
			d->st = LG_CD_DONE;
		else
			d->line = 0;
		return;
	default:
		return;
	}
	if (ch == '\n' && d->st != LG_CD_BAD) {	/* end of a size line */
		d->st = !d->digits ? LG_CD_BAD :
			d->size ? LG_CD_DATA : LG_CD_TRAILER;
		d->line = 0;
	}
}

size_t lg_chunk_feed(struct lg_chunk_dec *d, char *buf, size_t len, bool keep)
{
	size_t i = 0, out = 0;

	while (i < len && d->st != LG_CD_DONE && d->st != LG_CD_BAD) {
		if (d->st == LG_CD_DATA) {
			size_t n = len - i;

			if (n > d->size)
				n = (size_t)d->size;
			if (keep)
				memmove(buf + out, buf + i, n);
			out += n, i += n, d->size -= n;
			if (!d->size)
				d->st = LG_CD_DATA_END;
			continue;
		}
		chunk_byte(d, buf[i++]);
	}
	return out;
}

size_t lg_chunk_header_len(size_t n)
{
	size_t len = 3;		/* one digit and CRLF */

	for (; n > 15; n >>= 4)
		len++;
	return len;
}

size_t lg_chunk_frame(char *out, const void *data, size_t n)
{
	size_t hl = lg_chunk_header_len(n);
	char hdr[24];

	snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
	if (data)
		memmove(out + hl, data, n);
	memcpy(out, hdr, hl);
	memcpy(out + hl + n, "\r\n", 2);
	return hl + n + 2;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

void lg_conn_close(struct lg_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = LG_DONE;
}

int lg_conn_flush(struct lg_conn *c)
{
	while (c->state == LG_OPEN && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return 0;
}

void lg_conn_queue(struct lg_conn *c, const void *data, size_t len)
{
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

int lg_conn_open(struct lg_conn *c, int ep, const struct lg_target *t,
		 void *ptr, const char *request, size_t cap, const char **what)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
				  EPOLLET, .data.ptr = ptr };
	size_t rlen = strlen(request);
	int one = 1, err;

	c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		       SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		*what = "socket";
		goto fail_errno;
	}
	if (!c->out) {
		c->out_cap = cap > rlen ? cap : rlen;
		c->out = malloc(c->out_cap);
	}
	if (!c->out || rlen > c->out_cap) {
		*what = "malloc";
		err = ENOMEM;
		goto fail;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = LG_CONNECTING;
	c->out_len = c->out_off = 0;
	lg_conn_queue(c, request, rlen);
	if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0) {
		c->state = LG_OPEN;
	} else if (errno != EINPROGRESS) {
		*what = "connect";
		goto fail_errno;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		*what = "epoll_ctl";
		goto fail_errno;
	}
	err = c->state == LG_OPEN ? -lg_conn_flush(c) : 0;
	if (err)
		*what = "send";
	else
		return 0;
	goto fail;
fail_errno:
	err = errno;
fail:
	lg_conn_close(c);
	return -err;
}

int lg_conn_connected(struct lg_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return -err;
	c->state = LG_OPEN;
	return 0;
}

int lg_conn_head(struct lg_conn *c)
{
	int r = 0;

	while (r == 0) {
		ssize_t n = recv(c->fd, c->head + c->head_len,
				 LG_HEAD_MAX - 1 - c->head_len, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			c->readable = false;
			return 0;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		c->head_len += (size_t)n;
		r = lg_head_parse(c->head, c->head_len, &c->h);
	}
	if (r < 0)
		return -EPROTO;
	c->have_head = true;
	return 1;
}

/* ------------------------------------------------------------------ */
/* The loop and pacing                                                 */
/* ------------------------------------------------------------------ */

int lg_loop_run(const struct lg_loop *l, double until,
		bool (*done)(void *arg))
{
	struct epoll_event ev[256];
	double next = tool_now_s();

	while (!*l->interrupted && !(done && done(l->arg))) {
		double now = tool_now_s(), wake = next < until ? next : until;
		int n;

		if (now >= until)
			return 0;
		n = epoll_wait(l->ep, ev, 256,
			       wake > now ? (int)ceil((wake - now) * 1e3) : 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		now = tool_now_s();
		for (int i = 0; i < n; i++)
			l->on_event(l->arg, ev[i].data.ptr, ev[i].events, now);
		if (now >= next) {
			l->tick(l->arg, now);
			next += l->tick_s;
			if (next < now)
				next = now + l->tick_s;
		}
	}
	return *l->interrupted ? -EINTR : 0;
}

void lg_bucket_init(struct lg_bucket *b, double rate, double burst,
		    double now)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->t = now;
}

void lg_bucket_refill(struct lg_bucket *b, double now)
{
	b->tokens += b->rate * (now - b->t);
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->t = now;
}

/* ------------------------------------------------------------------ */
/* Blocking requests                                                   */
/* ------------------------------------------------------------------ */

/* A blocking connection with timeouts and the request sent; fd or
 * -errno. */
static int fetch_connect(const struct lg_target *t, const char *path,
			 const char *headers, int timeout_s)
{
	struct timeval tv = { timeout_s, 0 };
	char req[1024];
	int fd, n;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		     "User-Agent: streamd-loadgen\r\n%sConnection: close\r\n"
		     "\r\n", path, t->hostport, headers ? headers : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return -ENAMETOOLONG;
	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 ||
	    send(fd, req, (size_t)n, MSG_NOSIGNAL) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* Passes @n raw body bytes on, decoding chunks; 1 at the body's end, 0
 * for more, or <0. */
static int fetch_body(const struct lg_head *h, struct lg_chunk_dec *d,
		      uint64_t *got, char *buf, size_t n, lg_sink sink,
		      void *arg)
{
	int r = 0;

	if (h->chunked) {
		n = lg_chunk_feed(d, buf, n, true);
		if (d->st == LG_CD_BAD)
			return -EPROTO;
	} else if (h->content_length >= 0 &&
		   *got + n > (uint64_t)h->content_length) {
		n = (size_t)((uint64_t)h->content_length - *got);
	}
	*got += n;
	if (n && h->status == 200 && sink)
		r = sink(arg, buf, n);
	if (r < 0)
		return r;
	if (h->chunked)
		return d->st == LG_CD_DONE;
	return h->content_length >= 0 && *got == (uint64_t)h->content_length;
}

int lg_http_fetch(const struct lg_target *t, const char *path,
		  const char *headers, int timeout_s, lg_sink sink, void *arg,
		  int *status, char *err, size_t errlen)
{
	static char buf[256 * 1024];
	struct lg_chunk_dec d = { .st = LG_CD_SIZE };
	struct lg_head h = { .status = 0 };
	size_t len = 0;
	uint64_t got = 0;
	int fd = fetch_connect(t, path, headers, timeout_s), r = 0, hr = 0;
	ssize_t n = 0;

	if (fd < 0) {
		r = fd;
		goto out;
	}
	while (hr == 0 && (n = recv(fd, buf + len, LG_HEAD_MAX - 1 - len,
				    0)) > 0) {
		len += (size_t)n;
		hr = lg_head_parse(buf, len, &h);
	}
	if (hr <= 0) {
		r = n < 0 ? -errno : -EPROTO;
		goto out;
	}
	*status = h.status;
	r = fetch_body(&h, &d, &got, buf + h.len, len - h.len, sink, arg);
	while (r == 0 && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
		r = fetch_body(&h, &d, &got, buf, (size_t)n, sink, arg);
	if (r == 0 && n < 0)
		r = -errno;
	else if (r == 0 && (h.chunked || h.content_length >= 0))
		r = -EPIPE;	/* closed before the announced end */
	else if (r > 0)
		r = 0;
out:
	if (r < 0)
		snprintf(err, errlen, "GET http://%s%s: %s", t->hostport, path,
			 r == -EPROTO && hr <= 0 ? "not an HTTP response" :
			 strerror(-r));
	if (fd >= 0)
		close(fd);
	return r;
}

struct grow {
	char *p;
	size_t len, cap;
};

static int grow_sink(void *arg, const void *buf, size_t len)
{
	struct grow *g = arg;

	if (g->len + len + 1 > g->cap) {
		size_t cap = g->cap ? g->cap : 65536;
		char *p;

		while (cap < g->len + len + 1)
			cap *= 2;
		if (!(p = realloc(g->p, cap)))
			return -ENOMEM;
		g->p = p, g->cap = cap;
	}
	memcpy(g->p + g->len, buf, len);
	g->len += len;
	return 0;
}

int lg_http_get(const struct lg_target *t, const char *path,
		const char *headers, int timeout_s, char **body, char *err,
		size_t errlen)
{
	struct grow g = { 0 };
	int status = 0;
	int r = lg_http_fetch(t, path, headers, timeout_s, grow_sink, &g,
			      &status, err, errlen);

	if (r == 0 && status != 200) {
		snprintf(err, errlen, "GET %s: status %d", path, status);
		r = -EPROTO;
	}
	if (r == 0 && grow_sink(&g, "", 0) < 0)
		r = -ENOMEM;
	if (r < 0) {
		free(g.p);
		return r;
	}
	g.p[g.len] = '\0';
	*body = g.p;
	return 0;
}

void lg_metrics_parse(const char *p, const char *const *names, size_t n,
		      double *v, bool *has)
{
	memset(v, 0, n * sizeof(*v));
	memset(has, 0, n * sizeof(*has));
	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(names[i]);
			const char *x = p + l;

			if (strncmp(p, names[i], l) != 0 ||
			    (*x != ' ' && *x != '{'))
				continue;
			if (*x == '{' && !(x = strchr(x, '}')))
				break;
			v[i] += strtod(x + 1, NULL);
			has[i] = true;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* CPU seconds from a /proc stat file; its comm into @name (may be NULL). */
static double stat_cpu_s(const char *path, char *name, size_t namelen)
{
	char buf[1024], *p, *q;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NAN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NAN;
	buf[n] = '\0';
	/* After "pid (comm)": state is field 3, utime 14 and stime 15.  The
	 * comm may hold ')' itself, so its end is the last one. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &st) != 2)
		return NAN;
	if (name && (q = strchr(buf, '(')) && q < p)
		snprintf(name, namelen, "%.*s", (int)(p - q - 1), q + 1);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double lg_proc_cpu_s(pid_t pid)
{
	char path[64];

	if (pid <= 0)
		return NAN;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_cpu_s(path, NULL, 0);
}

int lg_proc_threads(pid_t pid, struct lg_thread **out, size_t *n)
{
	char path[96];
	struct lg_thread *t = NULL, *nt;
	size_t len = 0, cap = 0;
	struct dirent *e;
	DIR *dir;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(dir = opendir(path)))
		return -errno;
	while ((e = readdir(dir))) {
		long tid = strtol(e->d_name, NULL, 10);
		struct lg_thread th = { .tid = (pid_t)tid };

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%ld/stat",
			 (int)pid, tid);
		th.cpu_s = stat_cpu_s(path, th.name, sizeof(th.name));
		if (isnan(th.cpu_s))
			continue; /* ended since the listing */
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(nt = realloc(t, cap * sizeof(*t)))) {
				free(t);
				closedir(dir);
				return -ENOMEM;
			}
			t = nt;
		}
		t[len++] = th;
	}
	closedir(dir);
	*out = t;
	*n = len;
	return 0;
}

/* The number after @key in /proc/@pid/@file ("VmRSS:" in status,
 * "read_bytes:" in io), or NAN. */
static double proc_field(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	double v = NAN;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if (pid <= 0 || !(f = fopen(path, "re")))
		return NAN;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) &&
		    sscanf(line + klen, "%lf", &v) == 1)
			break;
	fclose(f);
	return v;
}

double lg_proc_read_bytes(pid_t pid)
{
	return proc_field(pid, "io", "read_bytes:");
}

long lg_nofile_raise(pid_t pid, unsigned long need)
{
	struct rlimit rl, want;

	if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= need)
		return (long)rl.rlim_cur;
	want = rl;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		want.rlim_max = need;	/* only with CAP_SYS_RESOURCE */
	want.rlim_cur = want.rlim_max == RLIM_INFINITY ? need : want.rlim_max;
	if (prlimit(pid, RLIMIT_NOFILE, &want, NULL) < 0) {
		want = rl;
		want.rlim_cur = rl.rlim_max;
		if (prlimit(pid, RLIMIT_NOFILE, &want, NULL) < 0)
			return -errno;
	}
	return prlimit(pid, RLIMIT_NOFILE, NULL, &rl) < 0 ? -errno :
	       (long)rl.rlim_cur;
}

double lg_proc_rss_mb(pid_t pid)
{
	return proc_field(pid, "status", "VmRSS:") / 1024.0;
}

long lg_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (pid <= 0)
		return -EINVAL;
	if (!(dir = opendir(path)))
		return -errno;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

bool lg_have_program(const char *name)
{
	char path[PATH_MAX];
	const char *dirs = getenv("PATH");

	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	for (const char *d = dirs; d && *d; d += *d == ':') {
		int len = (int)strcspn(d, ":"),
		    n = snprintf(path, sizeof(path), "%.*s/%s", len, d, name);

		if (n > 0 && (size_t)n < sizeof(path) &&
		    access(path, X_OK) == 0)
			return true;
		d += len;
	}
	return false;
}

pid_t lg_spawn(char *const argv[], int out_fd, int err_fd, bool own_group,
	       const char *prog)
{
	pid_t pid = fork();
	int in;

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (own_group)
		setpgid(0, 0);
	in = open("/dev/null", O_RDONLY);
	if (in < 0 || dup2(in, 0) < 0 ||
	    (out_fd >= 0 && dup2(out_fd, 1) < 0) ||
	    (err_fd >= 0 && dup2(err_fd, 2) < 0))
		_exit(126);
	execvp(argv[0], argv);
	fprintf(stderr, "%s: exec %s: %s\n", prog, argv[0], strerror(errno));
	_exit(127);
}
