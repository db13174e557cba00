/*
 * The shared-secret gate of the metadata server: what a connection must
 * prove before its frames reach the operations (djmfs_ops.c), and the
 * server's half of the handshake (CHALLENGE answered with our nonce and
 * proof, HELLO's proof checked).  The loop (djmfs_server.c) runs every
 * whole frame through djmfs__gate() first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "djmfs_srv.h"

/* ------------------------------------------------------------------ */
/* Shared secret: the gate in front of the operations                   */
/* ------------------------------------------------------------------ */

/*
 * djmfs_proto.h draws the handshake ("Shared-secret handshake") and
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
int djmfs__gate(struct djmfs_server *s, struct djmfs__conn *c,
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
