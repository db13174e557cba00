/*
 * The metadata server's body: one thread running an epoll loop over the
 * listening sockets, the client connections, the journal's "durable"
 * eventfd, a 100 ms timer and a stop eventfd, from the end of the boot
 * (djmfs_boot.c) to shutdown.  Connections are non-blocking; each
 * assembles frames in a read buffer and answers every frame of one read
 * before writing; each whole frame passes the shared-secret gate
 * (djmfs_gate.c) and then goes to the operations (djmfs_ops.c).  What
 * becomes of answers, held back until durable or written at once, is
 * djmfs_conn.c's.  A peer that breaks the protocol loses its connection,
 * never the server.
 *
 * The server's files form layers; each calls only the ones below it:
 *   djmfs_server.c  loop, listeners, reading, timer, shutdown, new/free
 *   djmfs_boot.c    boot from the volume
 *   djmfs_gate.c    shared-secret gate
 *   djmfs_ops.c     the protocol operations
 *   djmfs_conn.c    answers, held-back answers, closing connections
 *   djmfs_session.c sessions, leases, handles, write locks, holds
 *   djmfs_commit.c  the mutation path: apply, journal, checkpoint
 *   djmfs_meta*.c, djmfs_journal.c, djmfs_alloc.c, then djmfs_tree.c,
 *   djmfs_volume.c
 * Lower layers tell higher ones things through hooks they own (the
 * metadata's on_free) or through what they return, never by calling up.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "djmfs_srv.h"

#define READ_CHUNK (64u << 10)
#define READ_ROUNDS 16 /* reads per wake-up, so one peer cannot hog */
#define SHUTDOWN_WAIT_MS 10000

/* ------------------------------------------------------------------ */
/* Listening sockets                                                    */
/* ------------------------------------------------------------------ */

/* A socket file nobody answers on is left over from a dead server. */
static int unix_clear(struct djmfs_server *s, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	rc = rc < 0 ? errno : 0;
	close(fd);
	if (rc != ECONNREFUSED)
		return -EADDRINUSE;
	djmfs__log(&s->o.log, DJMFS_LOG_INFO,
		   "removing stale socket %s (nothing answers on it)",
		   sa->sun_path);
	return unlink(sa->sun_path) < 0 && errno != ENOENT ? -errno : 0;
}

static int listen_unix(struct djmfs_server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = -1, err;

	if (strlen(s->unix_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, s->unix_path, strlen(s->unix_path) + 1);
	err = unix_clear(s, &sa);
	if (err < 0)
		goto err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		goto err;
	}
	s->unix_bound = 1;
	if (listen(fd, SOMAXCONN) < 0) {
		err = -errno;
		goto err;
	}
	s->ev_unix.fd = fd;
	return djmfs__ep_set(s, EPOLL_CTL_ADD, &s->ev_unix, EPOLLIN);
err:
	djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "listening on %s: %s",
		   s->unix_path, strerror(-err));
	if (fd >= 0)
		close(fd);
	return err;
}

/* "host:port", "[v6]:port" or ":port" (every address). */
static int tcp_split(const char *addr, char *host, size_t hsz,
		     const char **port)
{
	const char *colon = strrchr(addr, ':');
	size_t n;

	if (!colon || !colon[1])
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		addr++, n -= 2;
	if (n >= hsz)
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

static int tcp_bind_any(const struct addrinfo *ai)
{
	int fd, one = 1;

	for (; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			return fd;
		close(fd);
	}
	return -1;
}

static int listen_tcp(struct djmfs_server *s)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM },
			*ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256];
	const char *port;
	int err, fd;

	err = tcp_split(s->tcp_addr, host, sizeof(host), &port);
	if (err == 0 && (err = getaddrinfo(host[0] ? host : NULL, port,
					   &hints, &ai)) != 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "getaddrinfo %s: %s",
			   s->tcp_addr, gai_strerror(err));
		return -EINVAL;
	}
	if (err < 0)
		goto err;
	errno = EADDRNOTAVAIL;
	fd = tcp_bind_any(ai);
	err = fd < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (err < 0)
		goto err;
	s->ev_tcp.fd = fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		s->tcp_port = ntohs(ss.ss_family == AF_INET6 ?
			((struct sockaddr_in6 *)&ss)->sin6_port :
			((struct sockaddr_in *)&ss)->sin_port);
	return djmfs__ep_set(s, EPOLL_CTL_ADD, &s->ev_tcp, EPOLLIN);
err:
	djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "listening on %s: %s",
		   s->tcp_addr, strerror(-err));
	return err;
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */
/* ------------------------------------------------------------------ */

static void peer_name(int fd, int tcp, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	char ip[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (!tcp) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(out, n, "unix:pid %d", (int)cr.pid);
		else
			snprintf(out, n, "unix:?");
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			port = ntohs(a->sin6_port);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
			port = ntohs(a->sin_port);
		}
	}
	snprintf(out, n, "tcp:%s:%u", ip, port);
}

static int conn_new(struct djmfs_server *s, int fd, int tcp)
{
	struct djmfs__conn *c = calloc(1, sizeof(*c));
	char peer[64];
	int one = 1, err;

	if (!c)
		return -ENOMEM;
	if (tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->ev.kind = DJMFS_EV_CONN;
	c->ev.fd = fd;
	c->id = ++s->next_conn_id;
	peer_name(fd, tcp, peer, sizeof(peer));
	snprintf(c->peer, sizeof(c->peer), "conn %llu (%s)",
		 (unsigned long long)c->id, peer);
	djmfs__buf_init(&c->wbuf);
	c->last_rx_ns = djmfs__mono_ns();
	err = djmfs__ep_set(s, EPOLL_CTL_ADD, &c->ev, EPOLLIN);
	if (err < 0) {
		free(c);
		return err;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG, "%s: connected", c->peer);
	return 0;
}

/* Frees killed connections: only between loop rounds, so no event of
 * the current round can point at freed memory. */
static void conn_reap(struct djmfs_server *s)
{
	struct djmfs__conn *c;
	size_t i;

	while ((c = s->reap)) {
		s->reap = c->next;
		for (i = s->pend_head; i < s->pend_n; i++)
			if (s->pend[i].conn == c)
				s->pend[i].conn = NULL;
		close(c->ev.fd);
		free(c->rbuf);
		djmfs__buf_free(&c->wbuf);
		free(c);
	}
}

/* Room to read into: the whole frame being assembled, plus a chunk. */
static int conn_room(struct djmfs__conn *c)
{
	size_t need = c->rlen + READ_CHUNK, cap;
	uint8_t *p;

	if (c->rlen >= DJMFS_HDR_SIZE)
		need += djmfs__le32(c->rbuf);
	if (c->rcap >= need)
		return 0;
	cap = c->rcap ? c->rcap : READ_CHUNK;
	while (cap < need)
		cap *= 2;
	p = realloc(c->rbuf, cap);
	if (!p)
		return -ENOMEM;
	c->rbuf = p;
	c->rcap = cap;
	return 0;
}


/* Answers every whole frame buffered; keeps the tail of a partial one. */
static void conn_frames(struct djmfs_server *s, struct djmfs__conn *c)
{
	struct djmfs__hdr h;
	size_t off = 0;
	int err;

	while (!c->dead && !c->closing && c->rlen - off >= DJMFS_HDR_SIZE) {
		err = djmfs__hdr_decode(c->rbuf + off, DJMFS_HDR_SIZE, &h);
		if (err < 0) {
			djmfs__log(&s->o.log, DJMFS_LOG_WARN,
				   "%s: bad frame header (%s); closing",
				   c->peer, strerror(-err));
			djmfs__conn_kill(s, c, "bad frame header");
			return;
		}
		if (c->rlen - off < DJMFS_HDR_SIZE + (size_t)h.len)
			break;
		err = djmfs__gate(s, c, &h, c->rbuf + off,
				DJMFS_HDR_SIZE + (size_t)h.len);
		if (err == 0)
			err = djmfs__ops_dispatch(s, c, c->rbuf + off,
						  DJMFS_HDR_SIZE +
							  (size_t)h.len);
		if (err < 0) {
			djmfs__log(&s->o.log, DJMFS_LOG_WARN,
				   "%s: bad %s frame (%s); closing", c->peer,
				   djmfs__op_name(h.op), strerror(-err));
			djmfs__conn_kill(s, c, "bad frame");
			return;
		}
		off += DJMFS_HDR_SIZE + (size_t)h.len;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

/*
 * A read that leaves room in the buffer has taken all the socket held,
 * so the loop stops there instead of paying one more read for EAGAIN;
 * epoll (level-triggered) reports whatever arrives later.
 */
static void conn_read(struct djmfs_server *s, struct djmfs__conn *c)
{
	ssize_t n;
	size_t room;
	int round;

	for (round = 0; round < READ_ROUNDS && !c->dead && !c->closing;) {
		if (conn_room(c) < 0) {
			djmfs__conn_kill(s, c, "out of memory");
			return;
		}
		room = c->rcap - c->rlen;
		n = read(c->ev.fd, c->rbuf + c->rlen, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			djmfs__conn_kill(s, c, n ? strerror(errno) :
					 c->rlen ? "end of stream inside a frame" :
						   "end of stream");
			return;
		}
		c->rlen += (size_t)n;
		c->last_rx_ns = s->rx_ns = djmfs__mono_ns();
		conn_frames(s, c);
		round++;
		if ((size_t)n < room)
			break;
	}
	if (!c->dead)
		djmfs__conn_flush(s, c);
}

static void on_accept(struct djmfs_server *s, struct djmfs__ev *ev,
		      uint32_t events)
{
	int fd, err;

	(void)events;
	for (;;) {
		fd = accept4(ev->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			djmfs__log(&s->o.log, DJMFS_LOG_WARN,
				   "accept4: %s; pausing accepts",
				   strerror(errno));
			/* Level-triggered: out of descriptors would spin. */
			s->accept_paused = 1;
			djmfs__ep_set(s, EPOLL_CTL_MOD, ev, 0);
			return;
		}
		err = conn_new(s, fd, ev->kind == DJMFS_EV_TCP);
		if (err < 0) {
			djmfs__log(&s->o.log, DJMFS_LOG_WARN,
				   "accepting a connection: %s",
				   strerror(-err));
			close(fd);
		}
	}
}

static void on_conn(struct djmfs_server *s, struct djmfs__ev *ev,
		    uint32_t events)
{
	struct djmfs__conn *c = (struct djmfs__conn *)ev;

	if (c->dead)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(s, c);
	if (!c->dead && (events & EPOLLOUT))
		djmfs__conn_flush(s, c);
}


static void on_journal(struct djmfs_server *s, struct djmfs__ev *ev,
		       uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(ev->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		djmfs__log(&s->o.log, DJMFS_LOG_WARN, "read eventfd: %s",
			   strerror(errno));
	djmfs__srv_advance_durable(s);
}

/* ------------------------------------------------------------------ */
/* Timer and stop                                                       */
/* ------------------------------------------------------------------ */

static void on_timer(struct djmfs_server *s, struct djmfs__ev *ev,
		     uint32_t events)
{
	uint64_t v, now = djmfs__mono_ns();
	uint64_t idle = (uint64_t)s->o.lease_ms * 1000000u;
	struct djmfs__conn *c, *next;

	(void)events;
	if (read(ev->fd, &v, sizeof(v)) < 0)
		return;
	/* A session silent for its lease loses its connection here, then
	 * djmfs__sess_tick ends it; a connection that never said HELLO has
	 * no lease of its own and gets the server's. */
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->sess && djmfs__sess_expired(c->sess, now)) {
			c->sess->conn = NULL;
			c->sess = NULL;
			djmfs__conn_kill(s, c, "silent for a lease");
		} else if (!c->sess && now - c->last_rx_ns > idle) {
			djmfs__conn_kill(s, c, "no HELLO within a lease");
		}
	}
	djmfs__sess_tick(s, now);
	djmfs__alloc_tick(s->alloc, now);
	if (!s->broken && s->jnl && djmfs__journal_want_checkpoint(s->jnl))
		djmfs__srv_checkpoint(s);
	if (s->accept_paused) {
		s->accept_paused = 0;
		if (s->ev_unix.fd >= 0)
			djmfs__ep_set(s, EPOLL_CTL_MOD, &s->ev_unix, EPOLLIN);
		if (s->ev_tcp.fd >= 0)
			djmfs__ep_set(s, EPOLL_CTL_MOD, &s->ev_tcp, EPOLLIN);
	}
	djmfs__srv_flush_dirty(s);
}

static void on_stop(struct djmfs_server *s, struct djmfs__ev *ev,
		    uint32_t events)
{
	(void)ev, (void)events;
	s->stopping = 1;
}

typedef void (*ev_fn)(struct djmfs_server *s, struct djmfs__ev *ev,
		      uint32_t events);

static const ev_fn ev_table[] = {
	[DJMFS_EV_UNIX] = on_accept,   [DJMFS_EV_TCP] = on_accept,
	[DJMFS_EV_JOURNAL] = on_journal, [DJMFS_EV_TIMER] = on_timer,
	[DJMFS_EV_STOP] = on_stop,     [DJMFS_EV_CONN] = on_conn,
};

void djmfs_server_stop(struct djmfs_server *s)
{
	uint64_t one = 1;
	ssize_t r;

	if (!s)
		return;
	r = write(s->ev_stop.fd, &one, sizeof(one));
	(void)r;
}

uint16_t djmfs_server_tcp_port(const struct djmfs_server *s)
{
	return s ? s->tcp_port : 0;
}

int djmfs_server_read_only(const struct djmfs_server *s)
{
	return s && s->read_only ? 1 : 0;
}

static void close_listener(struct djmfs_server *s, struct djmfs__ev *ev)
{
	if (ev->fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
	close(ev->fd);
	ev->fd = -1;
}

/* Waits for the journal to make @seq durable, answering as it goes. */
static void wait_durable(struct djmfs_server *s, uint64_t seq)
{
	struct pollfd pfd = { .fd = s->ev_jnl.fd, .events = POLLIN };
	uint64_t v, last = s->durable_seq;
	int waited = 0;

	while (s->durable_seq < seq && waited < SHUTDOWN_WAIT_MS) {
		if (poll(&pfd, 1, 100) > 0 &&
		    read(pfd.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		djmfs__srv_advance_durable(s);
		waited = s->durable_seq > last ? 0 : waited + 100;
		last = s->durable_seq;
	}
	if (s->durable_seq < seq)
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "shutdown: records up to seq %llu never became "
			   "durable (durable: %llu)",
			   (unsigned long long)seq,
			   (unsigned long long)s->durable_seq);
}

/* Stop accepting, make every record durable and answer it, write a
 * checkpoint, stop the journal.  Idempotent. */
static void srv_shutdown(struct djmfs_server *s)
{
	if (s->shut)
		return;
	s->shut = 1;
	if (s->meta)
		djmfs__meta_seal(s->meta);
	close_listener(s, &s->ev_unix);
	close_listener(s, &s->ev_tcp);
	if (s->unix_bound && s->unix_path)
		unlink(s->unix_path);
	s->unix_bound = 0;
	if (!s->jnl)
		return;
	if (!s->broken && s->appended_seq > s->last_ckpt_seq)
		djmfs__srv_checkpoint(s);
	wait_durable(s, s->appended_seq);
	djmfs__journal_stop(s->jnl);
	s->jnl = NULL;
	djmfs__log(&s->o.log, DJMFS_LOG_INFO,
		   "stopped: durable up to seq %llu",
		   (unsigned long long)s->durable_seq);
}

/*
 * Interrupt coalescing for the loop: under load, requests trickle in a
 * few microseconds apart, and waking for each one costs more in context
 * switches and socket wake-ups than handling it.  Waiting out the rest of
 * the batching window before the next epoll_wait lets one pass read many
 * frames per read() and answer them with one write().  Only under load:
 * a pass that found a single request (a lone client doing one call after
 * another) says waiting would only add latency.  The rule settles by
 * itself: at a high rate even unbatched passes often find two requests,
 * and at a low rate a batched pass finds fewer than two.
 */
static void batch_wait(const struct djmfs_server *s, uint64_t pass_start,
		       uint64_t pass_frames)
{
	uint64_t until = pass_start + (uint64_t)s->o.batch_us * 1000u;
	struct timespec ts = { (time_t)(until / 1000000000u),
			       (long)(until % 1000000000u) };

	if (s->o.batch_us == 0 || s->stopping ||
	    pass_frames < DJMFS_SRV_BATCH_MIN)
		return;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR && !s->stopping)
		;
}

int djmfs_server_run(struct djmfs_server *s)
{
	struct epoll_event evs[64];
	uint64_t pass = 0, ops0 = s->ops;
	int i, n, err = 0;

	if (s->shut)
		return -ESHUTDOWN;
	while (!s->stopping) {
		batch_wait(s, pass, s->ops - ops0);
		n = epoll_wait(s->epfd, evs, 64, -1);
		pass = djmfs__mono_ns();
		ops0 = s->ops;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
				   "epoll_wait: %s", strerror(-err));
			break;
		}
		for (i = 0; i < n; i++) {
			struct djmfs__ev *ev = evs[i].data.ptr;

			ev_table[ev->kind](s, ev, evs[i].events);
		}
		/* The pass is one commit: its records become one state. */
		djmfs__meta_seal(s->meta);
		conn_reap(s);
	}
	srv_shutdown(s);
	conn_reap(s);
	return err;
}

/* ------------------------------------------------------------------ */
/* Construction                                                         */
/* ------------------------------------------------------------------ */

static int loop_fds(struct djmfs_server *s)
{
	struct itimerspec its = {
		{ 0, DJMFS_SRV_TICK_MS * 1000000L },
		{ 0, DJMFS_SRV_TICK_MS * 1000000L },
	};
	int err;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->ev_jnl.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->ev_stop.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->ev_timer.fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->epfd < 0 || s->ev_jnl.fd < 0 || s->ev_stop.fd < 0 ||
	    s->ev_timer.fd < 0 || timerfd_settime(s->ev_timer.fd, 0, &its, NULL))
		err = -errno;
	else if ((err = djmfs__ep_set(s, EPOLL_CTL_ADD, &s->ev_jnl, EPOLLIN)) == 0 &&
		 (err = djmfs__ep_set(s, EPOLL_CTL_ADD, &s->ev_stop, EPOLLIN)) == 0)
		err = djmfs__ep_set(s, EPOLL_CTL_ADD, &s->ev_timer, EPOLLIN);
	if (err < 0)
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "setting up the event loop: %s", strerror(-err));
	return err;
}

static int opts_copy(struct djmfs_server *s, const struct djmfs_server_opts *o)
{
	s->o = *o;
	if (!s->o.lease_ms)
		s->o.lease_ms = DJMFS_SRV_LEASE_MS;
	if (!s->o.snap_lock_max_ms)
		s->o.snap_lock_max_ms = DJMFS_SRV_SNAP_LOCK_MS;
	if (!s->o.prefetch_aus)
		s->o.prefetch_aus = DJMFS_SRV_PREFETCH;
	if (!s->o.reserve_max_aus)
		s->o.reserve_max_aus = DJMFS_SRV_RESERVE_MAX;
	if (!s->o.batch_us)
		s->o.batch_us = DJMFS_SRV_BATCH_US;
	else if (s->o.batch_us == DJMFS_SERVER_NO_BATCH)
		s->o.batch_us = 0;
	s->volume = strdup(o->volume);
	s->volume_abs = realpath(o->volume, NULL);
	if (!s->volume_abs && s->volume)
		s->volume_abs = strdup(s->volume);
	s->unix_path = o->unix_path ? strdup(o->unix_path) : NULL;
	s->tcp_addr = o->tcp_addr ? strdup(o->tcp_addr) : NULL;
	s->o.volume = s->volume;
	s->o.unix_path = s->unix_path;
	s->o.tcp_addr = s->tcp_addr;
	if (o->secret && (s->secret = malloc(o->secret_len))) {
		memcpy(s->secret, o->secret, o->secret_len);
		s->secret_len = o->secret_len;
	}
	s->o.secret = s->secret;
	if (!s->volume || !s->volume_abs || (o->unix_path && !s->unix_path) ||
	    (o->tcp_addr && !s->tcp_addr) || (o->secret && !s->secret))
		return -ENOMEM;
	return 0;
}

static void log_startup(struct djmfs_server *s)
{
	const struct djmfs__sb *sb = &s->vol->sb;
	struct djmfs__alloc_info ai;

	djmfs__alloc_get(s->alloc, &ai);
	s->boot.files = djmfs__root_nfiles(djmfs__meta_working(s->meta));
	s->boot.free_aus = ai.free;
	djmfs__log(&s->o.log, DJMFS_LOG_INFO,
		   "serving %s (%llu bytes, unit %u bytes): %llu files, "
		   "%llu units free (%llu bytes), %llu records replayed, "
		   "%llu units reclaimed, checkpoint generation %llu; "
		   "listening on%s%s%s%s%s%.0u",
		   s->volume, (unsigned long long)sb->vol_size, sb->au_size,
		   (unsigned long long)s->boot.files,
		   (unsigned long long)ai.free,
		   (unsigned long long)(ai.free * sb->au_size),
		   (unsigned long long)s->boot.records_replayed,
		   (unsigned long long)s->boot.units_reclaimed,
		   (unsigned long long)s->boot.ckpt_gen,
		   s->unix_path ? " unix:" : "",
		   s->unix_path ? s->unix_path : "",
		   s->tcp_addr ? " tcp:" : "", s->tcp_addr ? s->tcp_addr : "",
		   s->tcp_addr ? " port " : "", (unsigned)s->tcp_port);
	if (s->secret)
		djmfs__log(&s->o.log, DJMFS_LOG_INFO, "clients must prove the "
			   "shared secret (%zu bytes) before any operation",
			   s->secret_len);
	else if (s->tcp_addr)
		djmfs__log(&s->o.log, DJMFS_LOG_WARN, "no shared secret: "
			   "anyone who reaches %s is served", s->tcp_addr);
}

int djmfs_server_new(struct djmfs_server **out,
		     const struct djmfs_server_opts *opts)
{
	struct djmfs_server *s;
	int err;

	if (!opts || !opts->volume || (!opts->unix_path && !opts->tcp_addr))
		return -EINVAL;
	if (opts->secret && (opts->secret_len == 0 ||
			     opts->secret_len > DJMFS_SECRET_MAX)) {
		djmfs__log(&opts->log, DJMFS_LOG_ERROR, "djmfs_server_new: a "
			   "shared secret of %zu bytes (1 to %d)",
			   opts->secret_len, DJMFS_SECRET_MAX);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->epfd = s->ev_unix.fd = s->ev_tcp.fd = -1;
	s->ev_jnl.fd = s->ev_stop.fd = s->ev_timer.fd = -1;
	s->ev_unix.kind = DJMFS_EV_UNIX;
	s->ev_tcp.kind = DJMFS_EV_TCP;
	s->ev_jnl.kind = DJMFS_EV_JOURNAL;
	s->ev_timer.kind = DJMFS_EV_TIMER;
	s->ev_stop.kind = DJMFS_EV_STOP;
	s->start_ns = djmfs__mono_ns();
	s->booting = 1;
	err = opts_copy(s, opts);
	if (err == 0)
		err = djmfs__sess_init(s);
	if (err == 0)
		err = loop_fds(s);
	if (err == 0)
		err = djmfs__boot(s);
	s->booting = 0;
	if (err == 0 && s->unix_path)
		err = listen_unix(s);
	if (err == 0 && s->tcp_addr)
		err = listen_tcp(s);
	if (err < 0) {
		djmfs_server_free(s);
		return err;
	}
	log_startup(s);
	*out = s;
	return 0;
}

void djmfs_server_free(struct djmfs_server *s)
{
	int i, fds[4];

	if (!s)
		return;
	srv_shutdown(s);
	/* Sessions first, so closing their connections journals nothing. */
	djmfs__sess_free_all(s);
	while (s->conns)
		djmfs__conn_kill(s, s->conns, "server shut down");
	conn_reap(s);
	free(s->pend);
	djmfs__buf_free(&s->pend_bytes);
	djmfs__buf_free(&s->scratch);
	if (s->alloc)
		djmfs__alloc_free(s->alloc);
	djmfs__meta_free(s->meta);
	if (s->vol)
		djmfs__vol_close(s->vol);
	fds[0] = s->epfd, fds[1] = s->ev_jnl.fd;
	fds[2] = s->ev_stop.fd, fds[3] = s->ev_timer.fd;
	for (i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(s->volume);
	free(s->volume_abs);
	free(s->unix_path);
	free(s->tcp_addr);
	djmfs_secret_free(s->secret, s->secret_len);
	free(s);
}
