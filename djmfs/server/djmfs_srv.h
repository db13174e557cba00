/*
 * Private header of the metadata server, shared by its files only, which
 * form layers (each calls only those below it; djmfs_server.c draws
 * them): djmfs_server.c (the epoll loop, listeners, reading frames,
 * timer, shutdown), djmfs_boot.c (boot from the volume), djmfs_gate.c
 * (the shared-secret gate), djmfs_ops.c (the table of protocol
 * operations), djmfs_conn.c (answers, held back until durable, and
 * closing connections), djmfs_session.c (sessions, leases, handles, the
 * write-lock table, LOCK_SNAP holds, units freed) and djmfs_commit.c
 * (the mutation path through metadata and journal, checkpoints).
 * Everything runs on the loop thread; only djmfs_server_stop() comes
 * from elsewhere.
 */
#ifndef DJMFS_SRV_H
#define DJMFS_SRV_H

#include <stdint.h>
#include <time.h>

#include "djmfs_store.h"
#include "djmfs_server.h"

#define DJMFS_SRV_LEASE_MS 10000u	/* lease when the options say 0 */
#define DJMFS_SRV_LEASE_MIN_MS 1000u	/* clamp of a client's lease ask */
#define DJMFS_SRV_SNAP_LOCK_MS 60000u
#define DJMFS_SRV_PREFETCH 1024u
#define DJMFS_SRV_BATCH_US 10000u	/* batching window when the options say 0 */
#define DJMFS_SRV_BATCH_MIN 2	/* requests in a pass that mean "under load" */
#define DJMFS_SRV_RESERVE_MAX 256u
#define DJMFS_SRV_TICK_MS 100u
#define DJMFS_SRV_LIST_MAX 1000u
#define DJMFS_SRV_RESERVE_RUNS 64u	/* runs in one RESERVE answer */
/* A peer that lets this much output pile up is not reading: drop it. */
#define DJMFS_SRV_WBUF_MAX (4ull * DJMFS_FRAME_MAX)

struct djmfs__session;
struct djmfs__handle;
struct djmfs__map; /* u64 -> pointer hash, djmfs_session.c */

/* What epoll's data.ptr points to: a listener, an internal fd, or a
 * connection (whose struct starts with one of these). */
enum djmfs__ev_kind {
	DJMFS_EV_UNIX,
	DJMFS_EV_TCP,
	DJMFS_EV_JOURNAL,
	DJMFS_EV_TIMER,
	DJMFS_EV_STOP,
	DJMFS_EV_CONN,
};

struct djmfs__ev {
	enum djmfs__ev_kind kind;
	int fd;
};

/* Where a connection is in the shared-secret handshake. */
enum {
	DJMFS__AUTH_NONE = 0,	/* nothing yet */
	DJMFS__AUTH_CHALLENGED, /* CHALLENGE answered; HELLO must prove */
	DJMFS__AUTH_PROVEN,	/* its HELLO proved the secret */
};

struct djmfs__conn {
	struct djmfs__ev ev; /* first: epoll hands this back */
	uint64_t id;
	char peer[80];
	uint8_t *rbuf; /* bytes read, not yet a whole frame */
	size_t rlen, rcap;
	struct djmfs__buf wbuf; /* frames not yet written, from woff on */
	size_t woff;
	int want_out;  /* EPOLLOUT registered */
	int closing;   /* answer what is queued, then close */
	int dead;      /* closed at the end of this loop round */
	uint64_t last_rx_ns;
	struct djmfs__session *sess; /* NULL until HELLO */
	/* Shared-secret handshake (djmfs_gate.c): DJMFS__AUTH_*, and the
	 * client's nonce then ours once CHALLENGE is answered. */
	uint8_t auth;
	uint8_t nonces[2 * DJMFS_AUTH_NONCE];
	int dirty; /* on the server's flush list */
	struct djmfs__conn *dnext;
	struct djmfs__conn *prev, *next; /* live list, or the reap list */
};

/* An encoded answer held back until the journal has made @seq durable:
 * its frame is bytes [off, off + len) of the server's pend_bytes. */
struct djmfs__pending {
	uint64_t seq;
	struct djmfs__conn *conn; /* NULL once the connection went away */
	size_t off, len;
};

struct djmfs__boot_info {
	uint64_t ckpt_gen;	   /* generation the server booted from */
	uint64_t records_replayed;
	uint64_t records_skipped;
	uint64_t units_reclaimed;  /* reservations no map held */
	uint64_t double_claims;	   /* units mapped twice (warned) */
	uint64_t files;
	uint64_t free_aus;
	int read_only;		   /* 1: booted read-only (host full) */
	int journal_end;	   /* enum djmfs__jend of the replay */
	int salvaged;		   /* 1: went on past damage (--salvage) */
	uint64_t max_gen;	   /* highest generation a slot names */
	uint64_t max_epoch;	   /* highest epoch a journal record names */
	int upgraded;		   /* 1: format 1 upgraded to 2 at this boot */
	uint64_t repaired_sb;	   /* superblock copies rewritten */
	uint64_t repaired_ckpt;	   /* checkpoint copies rewritten */
	uint64_t repaired_jrec;	   /* journal records rewritten */
};

struct djmfs_server {
	struct djmfs_server_opts o; /* strings below are our copies */
	char *volume, *unix_path, *tcp_addr;
	char *volume_abs; /* what HELLO announces: clients run elsewhere */
	struct djmfs__vol *vol;
	struct djmfs__meta *meta;
	struct djmfs__alloc *alloc;
	struct djmfs__journal *jnl;
	int booting;		/* on_free ignored: boot rebuilds free space */
	int broken;		/* -errno: metadata and journal disagree */
	int jnl_lost;		/* the journal's writer failed; answers held
				   for records it never made durable were
				   dropped with their connections */
	/* -EROFS once the host file system under the volume had no room at
	 * boot: the server serves what the volume holds (the journal
	 * replayed in memory), has no journal, writes nothing, and refuses
	 * everything that would write, until it restarts. */
	int read_only;
	uint64_t cur_ino;	/* file of the record being applied */
	uint64_t last_ckpt_seq;
	uint64_t appended_seq;	/* last record the journal accepted */
	uint64_t durable_seq;	/* what the durable root holds */
	uint64_t jnl_durable;	/* what the journal last said is durable */
	unsigned boot_slot;	/* checkpoint slot booted from */

	int epfd;
	struct djmfs__ev ev_unix, ev_tcp, ev_jnl, ev_timer, ev_stop;
	uint16_t tcp_port;
	int unix_bound; /* we created the socket file: unlink it at the end */
	int accept_paused; /* out of descriptors: retried each tick */
	int stopping, shut;

	struct djmfs__conn *conns, *reap;
	uint64_t next_conn_id;
	uint64_t n_conns;
	/* Held-back answers, oldest first (seq order): entries [pend_head,
	 * pend_n) of pend, their frames back to back in pend_bytes.  One
	 * growing array and buffer instead of two allocations per answer. */
	struct djmfs__pending *pend;
	size_t pend_head, pend_n, pend_cap;
	struct djmfs__buf pend_bytes;
	struct djmfs__conn *dirty; /* connections with output to flush */
	struct djmfs__buf scratch; /* an answer's views, reused (ops) */
	uint64_t rx_ns; /* monotonic time of the latest read */

	/* sessions (djmfs_session.c) */
	struct djmfs__session *sessions;
	uint64_t n_sessions;
	uint64_t next_session_id;
	struct djmfs__map *locks;      /* ino -> writer's handle */
	struct djmfs__handle *holds;   /* handles with a LOCK_SNAP hold */

	/* counters */
	uint64_t start_ns;
	uint64_t ops, mutations, lock_busy_ns, ckpts;
	struct djmfs__boot_info boot;

	/* shared secret (djmfs_gate.c): our copy, NULL when none */
	uint8_t *secret;
	size_t secret_len;
	uint64_t auth_accepted, auth_refused; /* atomic: read anywhere */
};

static inline uint64_t djmfs__clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t djmfs__mono_ns(void)
{
	return djmfs__clock_ns(CLOCK_MONOTONIC);
}

static inline uint64_t djmfs__real_ns(void)
{
	return djmfs__clock_ns(CLOCK_REALTIME);
}

/* ---- djmfs_boot.c ----------------------------------------------- */

/* Volume, newest checkpoint, journal replay, free space, a fresh
 * checkpoint and the journal's new epoch; logs what fails.  Returns 0 or
 * -errno. */
int djmfs__boot(struct djmfs_server *s);
/* Boot figures (tests). */
const struct djmfs__boot_info *
djmfs__server_boot_info(const struct djmfs_server *s);

/* ---- djmfs_gate.c ----------------------------------------------- */

/* Runs before the operations see a frame of @c (header @h, whole frame
 * @frame of @n bytes).  Returns 0 (dispatch it), 1 (answered here) or
 * -errno (malformed: the caller closes). */
int djmfs__gate(struct djmfs_server *s, struct djmfs__conn *c,
		const struct djmfs__hdr *h, const uint8_t *frame, size_t n);

/* ---- djmfs_conn.c ----------------------------------------------- */

/* epoll_ctl(@op) on @ev's descriptor for @events.  Returns 0 or -errno. */
int djmfs__ep_set(struct djmfs_server *s, int op, struct djmfs__ev *ev,
		  uint32_t events);
/* Encodes @m (a response) and queues it for @c: at once when @wait_seq
 * is already durable (or 0), else once it is.  Returns 0 or -errno. */
int djmfs__srv_send(struct djmfs_server *s, struct djmfs__conn *c,
		    const struct djmfs__msg *m, uint64_t wait_seq);
/* Marks @c for closing at the end of this loop round (idempotent) and
 * detaches its session. */
void djmfs__conn_kill(struct djmfs_server *s, struct djmfs__conn *c,
		      const char *why);
/* Writes what @c's buffer holds, as far as the socket takes it. */
void djmfs__conn_flush(struct djmfs_server *s, struct djmfs__conn *c);
/* Flushes every connection that got answers since the last flush. */
void djmfs__srv_flush_dirty(struct djmfs_server *s);
/* Moves the durable root to what the journal last made durable and
 * sends the answers that were waiting for it. */
void djmfs__srv_advance_durable(struct djmfs_server *s);

/* ---- djmfs_session.c -------------------------------------------- */

enum { DJMFS_H_READ = 0x1, DJMFS_H_WRITE = 0x2 };

struct djmfs__handle {
	uint32_t id;
	unsigned mode; /* DJMFS_H_* */
	uint64_t ino;
	char name[DJMFS_NAME_MAX + 1];
	struct djmfs__session *sess;
	const struct djmfs__file *hold; /* LOCK_SNAP: the frozen version */
	uint64_t hold_until_ns;
	struct djmfs__handle *hprev, *hnext; /* server's hold list */
};

struct djmfs__session {
	uint64_t id;
	char name[DJMFS_CLIENT_NAME_MAX + 1];
	uint32_t lease_ms;
	uint64_t expires_ns;
	struct djmfs__conn *conn; /* NULL once the connection closed */
	struct djmfs__map *handles; /* id -> handle */
	uint32_t next_handle;
	uint32_t n_writers;
	struct djmfs__session *prev, *next;
};

/* Creates the write-lock table.  Returns 0 or -ENOMEM. */
int djmfs__sess_init(struct djmfs_server *s);
/* Lease of a client that asked for @ask ms (0: the server's). */
uint32_t djmfs__lease_clamp(const struct djmfs_server *s, uint32_t ask);
/* Opens a session bound to @c.  Returns 0 or -ENOMEM. */
int djmfs__sess_new(struct djmfs_server *s, struct djmfs__conn *c,
		    const char *name, uint32_t lease_ms,
		    struct djmfs__session **out);
/* Any frame from the client: the lease starts again. */
void djmfs__sess_touch(struct djmfs__session *ss, uint64_t now_ns);
/* The connection went away: the session lives on until its lease ends
 * if it holds write locks (fencing), else it ends now. */
void djmfs__sess_detach(struct djmfs_server *s, struct djmfs__session *ss);
/* Ends expired sessions and LOCK_SNAP holds. */
void djmfs__sess_tick(struct djmfs_server *s, uint64_t now_ns);
/* Server shutdown: frees every session without journaling anything. */
void djmfs__sess_free_all(struct djmfs_server *s);

int djmfs__handle_new(struct djmfs_server *s, struct djmfs__session *ss,
		      uint64_t ino, const char *name, unsigned mode,
		      struct djmfs__handle **out);
struct djmfs__handle *djmfs__handle_get(const struct djmfs__session *ss,
					uint32_t id);
/* CLOSE: gives back a writer's lock and reservations (journaled) and
 * any hold, then frees @h.  Returns the units released, or -errno. */
int64_t djmfs__handle_close(struct djmfs_server *s, struct djmfs__handle *h);
/* The writer's handle holding @ino's lock, or NULL. */
struct djmfs__handle *djmfs__lock_owner(const struct djmfs_server *s,
					uint64_t ino);
/* Freezes @h on @f (takes a reference) until @until_ns; replaces an
 * older hold. */
void djmfs__hold_set(struct djmfs_server *s, struct djmfs__handle *h,
		     const struct djmfs__file *f, uint64_t until_ns);
void djmfs__hold_drop(struct djmfs_server *s, struct djmfs__handle *h);
/* Latest end of a hold on @ino (monotonic ns), or 0. */
uint64_t djmfs__hold_until(const struct djmfs_server *s, uint64_t ino);

/* Whether @ss's lease ran out by @now_ns (the loop then closes its
 * connection, and djmfs__sess_tick ends it). */
int djmfs__sess_expired(const struct djmfs__session *ss, uint64_t now_ns);
/* The metadata's on_free hook (arg: the server). */
void djmfs__sess_on_free(void *arg, uint64_t first_au, uint64_t n_aus,
			 enum djmfs__free_kind kind);

/* ---- djmfs_ops.c ------------------------------------------------- */

/* Decodes one whole frame from @c and answers it.  Returns 0, or -errno
 * when the frame is malformed (the caller closes @c). */
int djmfs__ops_dispatch(struct djmfs_server *s, struct djmfs__conn *c,
			const uint8_t *frame, size_t n);

/* ---- djmfs_commit.c ---------------------------------------------- */

/* Applies @r (seq and time are filled in) and journals it.  Returns 0,
 * the metadata's refusal, or the journal's error. */
int djmfs__srv_mutate(struct djmfs_server *s, struct djmfs__jrec *r);
/* Queues a checkpoint of the working state.  Returns 0 or -errno. */
int djmfs__srv_checkpoint(struct djmfs_server *s);
/* Journals a RELEASE of every unit reserved for @ino.  Returns the units
 * released, or -errno. */
int64_t djmfs__commit_release(struct djmfs_server *s, uint64_t ino);

#endif /* DJMFS_SRV_H */
