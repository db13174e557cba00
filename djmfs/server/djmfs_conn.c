/*
 * The output side of the metadata server's connections: encoding an
 * answer into a connection's write buffer, or, for a mutation, holding
 * it back in seq order until the journal reports its record durable;
 * moving the durable root and releasing the held answers when it does;
 * writing buffers out (EPOLLOUT only while one is non-empty); and closing
 * a connection, which detaches its session.  Killed connections are
 * freed by the loop (djmfs_server.c) between rounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "djmfs_srv.h"

int djmfs__ep_set(struct djmfs_server *s, int op, struct djmfs__ev *ev,
		  uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(s->epfd, op, ev->fd, &e) < 0 ? -errno : 0;
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

static void conn_events(struct djmfs_server *s, struct djmfs__conn *c)
{
	int want = c->woff < c->wbuf.len;
	uint32_t ev = (c->closing ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);

	if (want == c->want_out && !c->closing)
		return;
	c->want_out = want;
	djmfs__ep_set(s, EPOLL_CTL_MOD, &c->ev, ev);
}

void djmfs__conn_flush(struct djmfs_server *s, struct djmfs__conn *c)
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

void djmfs__srv_flush_dirty(struct djmfs_server *s)
{
	struct djmfs__conn *c;

	while ((c = s->dirty)) {
		s->dirty = c->dnext;
		c->dirty = 0;
		if (!c->dead)
			djmfs__conn_flush(s, c);
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
	djmfs__srv_flush_dirty(s);
}

/*
 * The journal's writer failed: the records behind the held answers will
 * never be durable, so no success may go out for them.  Their clients
 * lose the connection instead, as if the server had died (which is what
 * a restart makes of it), and every later change is refused.
 */
static void pending_fail(struct djmfs_server *s, int err)
{
	uint64_t n = 0;

	s->jnl_lost = 1;
	if (!s->broken)
		s->broken = err == -ENOSPC || err == -EDQUOT ? -EROFS : err;
	for (size_t i = s->pend_head; i < s->pend_n; i++) {
		struct djmfs__pending *p = &s->pend[i];

		/* Answers of durable records still go out with the root. */
		if (p->seq <= s->jnl_durable || !p->conn)
			continue;
		if (!p->conn->dead) {
			djmfs__conn_kill(s, p->conn, "its change can never "
					 "become durable (journal write failed)");
			n++;
		}
		p->conn = NULL;
	}
	djmfs__log(&s->o.log, DJMFS_LOG_ERROR, "journal write failed (%s): "
		   "%llu connections waiting for changes that can never be "
		   "durable closed; refusing further changes", strerror(-err),
		   (unsigned long long)n);
}

/*
 * A record is answered once readers can see it: when the durable root
 * has moved past it.  The root only moves to states sealed at the end of
 * a loop pass, so a journal batch that ends inside a pass answers that
 * pass's records with the next batch.
 */
void djmfs__srv_advance_durable(struct djmfs_server *s)
{
	uint64_t d, t0;
	int failed;

	if (!s->jnl) /* read-only: nothing becomes durable */
		return;
	d = djmfs__journal_durable(s->jnl);
	if (d > s->jnl_durable) {
		s->jnl_durable = d;
		t0 = djmfs__mono_ns();
		djmfs__meta_mark_durable(s->meta, d);
		s->lock_busy_ns += djmfs__mono_ns() - t0;
		s->durable_seq = djmfs__meta_durable_seq(s->meta);
		pending_release(s);
	}
	failed = djmfs__journal_failed(s->jnl);
	if (failed && !s->jnl_lost)
		pending_fail(s, failed);
}
