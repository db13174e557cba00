/*
 * The metadata server's body: booting from the volume (checkpoint, journal
 * replay, rebuilding free space, a fresh checkpoint), then one thread
 * running an epoll loop over the listening sockets, the client
 * connections, the journal's "durable" eventfd, a 100 ms timer and a stop
 * eventfd.  Connections are non-blocking; each assembles frames in a read
 * buffer, answers every frame of one read before writing, and keeps what
 * the socket would not take in a write buffer (EPOLLOUT only while that is
 * non-empty).  Answers to mutations wait on a queue, in seq order, until
 * the journal reports their record durable; only then does the durable
 * root move and the answers go out.  A peer that breaks the protocol
 * loses its connection, never the server.  With a shared secret, a gate
 * in front of the operations lets a connection's frames through only
 * once it has proven the secret (see "Shared secret" below).
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

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t djmfs__mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t djmfs__real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

const struct djmfs__boot_info *
djmfs__server_boot_info(const struct djmfs_server *s)
{
	return &s->boot;
}

static int ep_set(struct djmfs_server *s, int op, struct djmfs__ev *ev,
		  uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(s->epfd, op, ev->fd, &e) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------ */
/* Boot                                                                 */
/* ------------------------------------------------------------------ */

static int replay_one(void *arg, const struct djmfs__jrec *r)
{
	struct djmfs_server *s = arg;
	int err;

	s->cur_ino = r->ino;
	err = djmfs__meta_apply(s->meta, r);
	if (err < 0) /* logged and counted by the replay */
		djmfs__meta_skip(s->meta, r->seq);
	return err;
}

/* Volume, newest checkpoint, then the journal after it. */
static int boot_load(struct djmfs_server *s)
{
	const struct djmfs_log *log = &s->o.log;
	struct djmfs__ckpt ck = { 0 };
	struct djmfs__replay_info ri;
	struct djmfs__meta_opts mo;
	int err;

	err = djmfs__vol_open(&s->vol, s->volume, DJMFS__VOL_EXCL, log);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__vol_open %s: %s",
			   s->volume, strerror(-err));
		return err;
	}
	err = djmfs__ckpt_load(s->vol, &ck, log);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__ckpt_load %s: %s",
			   s->volume, strerror(-err));
		return err;
	}
	djmfs__log(log, DJMFS_LOG_DEBUG,
		   "checkpoint generation %llu in slot %u: %zu bytes, seq %llu",
		   (unsigned long long)ck.gen, ck.slot, ck.img_len,
		   (unsigned long long)ck.last_seq);
	s->boot.ckpt_gen = ck.gen;
	s->boot_slot = ck.slot;
	mo = (struct djmfs__meta_opts){ s->vol->sb.data_off, s->vol->sb.n_aus,
					s->vol->sb.au_size, log,
					djmfs__ops_on_free, s, 1 };
	err = djmfs__meta_new(&s->meta, &mo);
	if (err == 0)
		err = djmfs__meta_load(s->meta, ck.img, ck.img_len, ck.last_seq);
	free(ck.img);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__meta_load: %s",
			   strerror(-err));
		return err;
	}
	err = djmfs__journal_replay(s->vol, ck.gen, ck.last_seq, replay_one, s,
				    &ri, log);
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "djmfs__journal_replay: %s",
			   strerror(-err));
		return err;
	}
	s->boot.records_replayed = ri.records;
	s->boot.records_skipped = ri.skipped;
	djmfs__log(log, DJMFS_LOG_DEBUG,
		   "journal replayed: %llu records, %llu skipped, up to seq "
		   "%llu (%s)",
		   (unsigned long long)ri.records,
		   (unsigned long long)ri.skipped,
		   (unsigned long long)djmfs__meta_seq(s->meta), ri.stop);
	return 0;
}

static int mark_mapped(void *arg, uint64_t ino, uint64_t first, uint64_t n)
{
	struct djmfs_server *s = arg;
	uint64_t twice = djmfs__alloc_mark_used(s->alloc, first, n);

	if (twice) {
		s->boot.double_claims += twice;
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "ino %llu maps units %llu+%llu, %llu of them "
			   "already claimed by another map",
			   (unsigned long long)ino, (unsigned long long)first,
			   (unsigned long long)n, (unsigned long long)twice);
	}
	return 0;
}

/* Free space is whatever no map holds: reservations of the dead
 * server's sessions come back here. */
static int boot_space(struct djmfs_server *s)
{
	int err;

	err = djmfs__alloc_new(&s->alloc, s->vol->sb.n_aus,
			       s->o.prefetch_aus, &s->o.log);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "djmfs__alloc_new: %s",
			   strerror(-err));
		return err;
	}
	err = djmfs__meta_walk_mapped(s->meta, mark_mapped, s);
	if (err < 0)
		return err;
	s->boot.units_reclaimed = djmfs__meta_drop_reservations(s->meta);
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG,
		   "free space rebuilt: %llu units reclaimed from reservations",
		   (unsigned long long)s->boot.units_reclaimed);
	return 0;
}

/* A fresh checkpoint in the other slot, then the journal's new epoch. */
static int boot_commit(struct djmfs_server *s)
{
	uint64_t seq = djmfs__meta_seq(s->meta), gen = s->boot.ckpt_gen + 1;
	unsigned slot = 1 - s->boot_slot;
	struct djmfs__journal_opts jo;
	struct djmfs__buf img;
	int err;

	djmfs__buf_init(&img);
	err = djmfs__meta_serialize(s->meta, &img);
	if (err == 0)
		err = img.err;
	if (err == 0)
		err = djmfs__ckpt_store(s->vol, slot, gen, seq, img.p, img.len);
	djmfs__buf_free(&img);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__ckpt_store slot %u: %s", slot,
			   strerror(-err));
		return err;
	}
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG,
		   "checkpoint generation %llu written to slot %u",
		   (unsigned long long)gen, slot);
	jo = (struct djmfs__journal_opts){ s->vol, gen, slot, seq + 1,
					   s->ev_jnl.fd,
					   (uint64_t)s->o.batch_us * 1000u,
					   &s->o.log };
	err = djmfs__journal_start(&s->jnl, &jo);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__journal_start: %s", strerror(-err));
		return err;
	}
	djmfs__meta_seal(s->meta);
	djmfs__meta_mark_durable(s->meta, seq);
	s->durable_seq = s->appended_seq = s->last_ckpt_seq = seq;
	s->jnl_durable = seq;
	err = djmfs__alloc_start(s->alloc);
	if (err < 0)
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR,
			   "djmfs__alloc_start: %s", strerror(-err));
	return err;
}

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
	return ep_set(s, EPOLL_CTL_ADD, &s->ev_unix, EPOLLIN);
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
	return ep_set(s, EPOLL_CTL_ADD, &s->ev_tcp, EPOLLIN);
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
	err = ep_set(s, EPOLL_CTL_ADD, &c->ev, EPOLLIN);
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

void djmfs__conn_kill(struct djmfs_server *s, struct djmfs__conn *c,
		      const char *why)
{
	struct djmfs__session *ss = c->sess;

	if (c->dead)
		return;
	c->dead = 1;
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG, "%s: closed (%s)", c->peer,
		   why);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->ev.fd, NULL);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = s->reap;
	s->reap = c;
	s->n_conns--;
	c->sess = NULL;
	if (ss)
		djmfs__sess_detach(s, ss);
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

static void conn_events(struct djmfs_server *s, struct djmfs__conn *c)
{
	int want = c->woff < c->wbuf.len;
	uint32_t ev = (c->closing ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);

	if (want == c->want_out && !c->closing)
		return;
	c->want_out = want;
	ep_set(s, EPOLL_CTL_MOD, &c->ev, ev);
}

static void conn_flush(struct djmfs_server *s, struct djmfs__conn *c)
{
	ssize_t n;

	while (!c->dead && c->woff < c->wbuf.len) {
		n = send(c->ev.fd, c->wbuf.p + c->woff, c->wbuf.len - c->woff,
			 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			djmfs__conn_kill(s, c, strerror(errno));
			return;
		}
		c->woff += (size_t)n;
	}
	if (c->dead)
		return;
	if (c->woff == c->wbuf.len) {
		djmfs__buf_reset(&c->wbuf);
		c->woff = 0;
		if (c->closing) {
			djmfs__conn_kill(s, c, "answered, then closed");
			return;
		}
	} else if (c->woff > c->wbuf.len / 2) {
		memmove(c->wbuf.p, c->wbuf.p + c->woff, c->wbuf.len - c->woff);
		c->wbuf.len -= c->woff;
		c->woff = 0;
	}
	conn_events(s, c);
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

/* ------------------------------------------------------------------ */
/* Shared secret: the gate in front of the operations                   */
/* ------------------------------------------------------------------ */

/*
 * djmfs-int.h draws the handshake ("Shared-secret handshake") and
 * djmfs_auth.c makes the proofs.  Only a server with a secret gates;
 * without one, CHALLENGE is answered -EOPNOTSUPP and every other frame
 * goes to the operations as it always did.
 *
 * Invariants (server with a secret):
 *  1. A frame reaches djmfs__ops_dispatch only from a connection in
 *     PROVEN, or as the HELLO whose proof moves it there.
 *  2. A connection answers one CHALLENGE at most; its nonces, ours fresh
 *     from the CSPRNG, never change afterwards, so a proof made for
 *     another connection (a replay) cannot match.
 *  3. Every refusal answers the frame with an error status, logs the
 *     peer and the reason, counts one in auth_refused and closes.
 *
 * Transitions:
 *   NONE       --CHALLENGE: auth_challenge------------------> CHALLENGED
 *   CHALLENGED --HELLO with the right proof: auth_hello-----> PROVEN
 *   NONE/CHALLENGED --anything else: auth_refuse------------> closed
 */

/* A client-chosen name, fit for a log line. */
static void log_safe(const char *in, char *out, size_t n)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[i] = '\0';
}

/* Answers @h's frame with @status alone. */
static int auth_answer(struct djmfs_server *s, struct djmfs__conn *c,
		       const struct djmfs__hdr *h, int status)
{
	struct djmfs__msg m;

	memset(&m, 0, sizeof(m));
	m.h.op = h->op;
	m.h.kind = DJMFS_RESP;
	m.h.id = h->id;
	m.status = status;
	return djmfs__srv_send(s, c, &m, 0);
}

/* Invariant 3.  Returns 1 (the frame is answered) or -errno. */
static int auth_refuse(struct djmfs_server *s, struct djmfs__conn *c,
		       const struct djmfs__hdr *h, int status,
		       const char *name, const char *why)
{
	char safe[DJMFS_CLIENT_NAME_MAX + 1];
	int err;

	log_safe(name ? name : "", safe, sizeof(safe));
	__atomic_fetch_add(&s->auth_refused, 1, __ATOMIC_RELAXED);
	djmfs__log(&s->o.log, DJMFS_LOG_WARN, "%s%s%s%s: refused: %s; closing",
		   c->peer, name ? " (" : "", safe, name ? ")" : "", why);
	c->closing = 1;
	err = auth_answer(s, c, h, status);
	return err < 0 ? err : 1;
}

/* Decodes a request the gate must read whole. */
static int auth_decode(const uint8_t *frame, size_t n, struct djmfs__msg *m)
{
	int err = djmfs__msg_decode(frame, n, m);

	return err == 0 && m->h.kind != DJMFS_REQ ? -EBADMSG : err;
}

static int auth_challenge(struct djmfs_server *s, struct djmfs__conn *c,
			  const struct djmfs__msg *req)
{
	const typeof(req->u.challenge_req) *q = &req->u.challenge_req;
	uint8_t *cn = c->nonces, *sn = c->nonces + DJMFS_AUTH_NONCE;
	struct djmfs__msg rep;
	int err;

	if (!s->secret) {
		djmfs__log(&s->o.log, DJMFS_LOG_INFO, "%s: CHALLENGE, but "
			   "this server has no shared secret", c->peer);
		err = auth_answer(s, c, &req->h, -EOPNOTSUPP);
		return err < 0 ? err : 1;
	}
	if (c->auth != DJMFS__AUTH_NONE)
		return auth_refuse(s, c, &req->h, -EACCES, q->name,
				   "a second CHALLENGE");
	if (q->proto != DJMFS_PROTO_VERSION)
		return auth_refuse(s, c, &req->h, -EPROTO, q->name,
				   "CHALLENGE of another protocol version");
	memset(&rep, 0, sizeof(rep));
	rep.h.op = req->h.op;
	rep.h.kind = DJMFS_RESP;
	rep.h.id = req->h.id;
	memcpy(cn, q->nonce, DJMFS_AUTH_NONCE);
	err = djmfs__auth_nonce(sn, DJMFS_AUTH_NONCE);
	if (err == 0)
		err = djmfs__auth_proof(s->secret, s->secret_len,
					DJMFS_AUTH_SERVER, q->proto, q->name,
					cn, sn, rep.u.challenge_resp.proof);
	if (err < 0) {
		djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "%s: djmfs__auth_proof:"
			   " %s", c->peer, strerror(-err));
		return auth_refuse(s, c, &req->h, err, q->name,
				   "no proof could be made");
	}
	memcpy(rep.u.challenge_resp.nonce, sn, DJMFS_AUTH_NONCE);
	c->auth = DJMFS__AUTH_CHALLENGED;
	err = djmfs__srv_send(s, c, &rep, 0);
	return err < 0 ? err : 1;
}

/* Returns 0 (proven: the HELLO goes on to the operations), 1 (refused)
 * or -errno. */
static int auth_hello(struct djmfs_server *s, struct djmfs__conn *c,
		      const struct djmfs__msg *req)
{
	const typeof(req->u.hello_req) *q = &req->u.hello_req;
	const char *why = NULL;
	int err = 0;

	if (!q->has_proof)
		why = "HELLO without a proof (the client has no shared secret)";
	else if (c->auth != DJMFS__AUTH_CHALLENGED)
		why = "HELLO with a proof but no CHALLENGE before it";
	else
		err = djmfs__auth_verify(s->secret, s->secret_len,
					 DJMFS_AUTH_CLIENT, q->proto, q->name,
					 c->nonces,
					 c->nonces + DJMFS_AUTH_NONCE,
					 q->proof);
	if (err == -EACCES)
		why = "wrong proof of the shared secret (another secret, or "
		      "a replay)";
	else if (err < 0)
		why = "the proof could not be checked";
	if (why)
		return auth_refuse(s, c, &req->h, -EACCES, q->name, why);
	c->auth = DJMFS__AUTH_PROVEN;
	__atomic_fetch_add(&s->auth_accepted, 1, __ATOMIC_RELAXED);
	djmfs__log(&s->o.log, DJMFS_LOG_DEBUG, "%s: proved the shared secret",
		   c->peer);
	return 0;
}

/*
 * Runs before the operations see a frame.  Returns 0 (dispatch it), 1
 * (answered here) or -errno (malformed: the caller closes).
 */
static int auth_gate(struct djmfs_server *s, struct djmfs__conn *c,
		     const struct djmfs__hdr *h, const uint8_t *frame,
		     size_t n)
{
	struct djmfs__msg req;
	char why[64];
	int err;

	if (h->op != DJMFS_OP_CHALLENGE &&
	    (!s->secret || c->auth == DJMFS__AUTH_PROVEN))
		return 0;
	if (h->op != DJMFS_OP_CHALLENGE && h->op != DJMFS_OP_HELLO) {
		snprintf(why, sizeof(why), "%s before proving the shared "
			 "secret", djmfs__op_name(h->op));
		return auth_refuse(s, c, h, -EACCES, NULL, why);
	}
	err = auth_decode(frame, n, &req);
	if (err < 0)
		return err;
	if (h->op == DJMFS_OP_CHALLENGE)
		return auth_challenge(s, c, &req);
	return auth_hello(s, c, &req);
}

void djmfs_server_auth_stats(const struct djmfs_server *s,
			     struct djmfs_server_auth_stats *out)
{
	out->accepted = __atomic_load_n(&s->auth_accepted, __ATOMIC_RELAXED);
	out->refused = __atomic_load_n(&s->auth_refused, __ATOMIC_RELAXED);
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
		err = auth_gate(s, c, &h, c->rbuf + off,
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
		conn_flush(s, c);
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
			ep_set(s, EPOLL_CTL_MOD, ev, 0);
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
		conn_flush(s, c);
}

/* ------------------------------------------------------------------ */
/* Answers                                                              */
/* ------------------------------------------------------------------ */

static void mark_dirty(struct djmfs_server *s, struct djmfs__conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dnext = s->dirty;
	s->dirty = c;
}

static void flush_dirty(struct djmfs_server *s)
{
	struct djmfs__conn *c;

	while ((c = s->dirty)) {
		s->dirty = c->dnext;
		c->dirty = 0;
		if (!c->dead)
			conn_flush(s, c);
	}
}

static int send_now(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *m)
{
	size_t before = c->wbuf.len;
	int err = djmfs__msg_encode(&c->wbuf, m);

	if (err < 0) {
		c->wbuf.len = before;
		c->wbuf.err = 0;
		return err;
	}
	if (c->wbuf.len - c->woff > DJMFS_SRV_WBUF_MAX) {
		djmfs__log(&s->o.log, DJMFS_LOG_WARN,
			   "%s: not reading its answers; closing", c->peer);
		djmfs__conn_kill(s, c, "output backlog");
	}
	return 0;
}

static int pend_grow(struct djmfs_server *s)
{
	size_t cap = s->pend_cap ? s->pend_cap * 2 : 64;
	struct djmfs__pending *p;

	if (s->pend_n < s->pend_cap)
		return 0;
	p = realloc(s->pend, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->pend = p;
	s->pend_cap = cap;
	return 0;
}

int djmfs__srv_send(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *m, uint64_t wait_seq)
{
	struct djmfs__buf *b = &s->pend_bytes;
	size_t before = b->len;
	int err;

	if (c->dead)
		return 0;
	if (wait_seq <= s->durable_seq)
		return send_now(s, c, m);
	if (pend_grow(s) < 0)
		return -ENOMEM;
	err = djmfs__msg_encode(b, m);
	if (err < 0) {
		b->len = before;
		b->err = 0;
		return err;
	}
	s->pend[s->pend_n++] = (struct djmfs__pending){ wait_seq, c, before,
							b->len - before };
	return 0;
}

/* Drops the released entries [0, pend_head) and their bytes; what is
 * left (this pass's answers, usually few) moves to the front. */
static void pend_compact(struct djmfs_server *s)
{
	size_t i, base, keep = s->pend_n - s->pend_head;

	if (!keep) {
		s->pend_head = s->pend_n = 0;
		djmfs__buf_reset(&s->pend_bytes);
		return;
	}
	base = s->pend[s->pend_head].off;
	memmove(s->pend, s->pend + s->pend_head, keep * sizeof(*s->pend));
	for (i = 0; i < keep; i++)
		s->pend[i].off -= base;
	memmove(s->pend_bytes.p, s->pend_bytes.p + base,
		s->pend_bytes.len - base);
	s->pend_bytes.len -= base;
	s->pend_head = 0;
	s->pend_n = keep;
}

/* Sends the answers whose records are now durable (seq order). */
static void pending_release(struct djmfs_server *s)
{
	struct djmfs__pending *p;
	struct djmfs__conn *c;

	while (s->pend_head < s->pend_n &&
	       (p = &s->pend[s->pend_head])->seq <= s->durable_seq) {
		s->pend_head++;
		c = p->conn;
		if (c && !c->dead) {
			djmfs__put_bytes(&c->wbuf, s->pend_bytes.p + p->off,
					 p->len);
			if (c->wbuf.err)
				djmfs__conn_kill(s, c, "out of memory");
			else
				mark_dirty(s, c);
		}
	}
	if (s->pend_head)
		pend_compact(s);
	flush_dirty(s);
}

/*
 * A record is answered once readers can see it: when the durable root
 * has moved past it.  The root only moves to states sealed at the end of
 * a loop pass, so a journal batch that ends inside a pass answers that
 * pass's records with the next batch.
 */
static void advance_durable(struct djmfs_server *s)
{
	uint64_t d = djmfs__journal_durable(s->jnl), t0;

	if (d <= s->jnl_durable)
		return;
	s->jnl_durable = d;
	t0 = djmfs__mono_ns();
	djmfs__meta_mark_durable(s->meta, d);
	s->lock_busy_ns += djmfs__mono_ns() - t0;
	s->durable_seq = djmfs__meta_durable_seq(s->meta);
	pending_release(s);
}

static void on_journal(struct djmfs_server *s, struct djmfs__ev *ev,
		       uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(ev->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		djmfs__log(&s->o.log, DJMFS_LOG_WARN, "read eventfd: %s",
			   strerror(errno));
	advance_durable(s);
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
	djmfs__sess_tick(s, now);
	/* A connection that never said HELLO has no lease of its own. */
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (!c->sess && now - c->last_rx_ns > idle)
			djmfs__conn_kill(s, c, "no HELLO within a lease");
	}
	djmfs__alloc_tick(s->alloc, now);
	if (!s->broken && djmfs__journal_want_checkpoint(s->jnl))
		djmfs__srv_checkpoint(s);
	if (s->accept_paused) {
		s->accept_paused = 0;
		if (s->ev_unix.fd >= 0)
			ep_set(s, EPOLL_CTL_MOD, &s->ev_unix, EPOLLIN);
		if (s->ev_tcp.fd >= 0)
			ep_set(s, EPOLL_CTL_MOD, &s->ev_tcp, EPOLLIN);
	}
	flush_dirty(s);
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
		advance_durable(s);
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
	else if ((err = ep_set(s, EPOLL_CTL_ADD, &s->ev_jnl, EPOLLIN)) == 0 &&
		 (err = ep_set(s, EPOLL_CTL_ADD, &s->ev_stop, EPOLLIN)) == 0)
		err = ep_set(s, EPOLL_CTL_ADD, &s->ev_timer, EPOLLIN);
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
		err = boot_load(s);
	if (err == 0)
		err = boot_space(s);
	if (err == 0)
		err = boot_commit(s);
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
