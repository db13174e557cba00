/*
 * Private interfaces of libdjmfs, the client, in layers that each call
 * only the ones below (djmfs_reconnect.c draws the whole stack):
 *   recovery    djmfs_reconnect.c, djmfs_restore.c (the last section)
 *   handles     djmfs_file.c and the files of djmfs_file.h
 *   connection  djmfs_client.c (connecting, the state transitions) over
 *               djmfs_rpc.c (the RPC layer, receive and heartbeat)
 *   data path   djmfs_io.c
 * Nothing here is installed or used by the server.  The client handle is
 * defined here because every layer shares it; each field says which
 * module owns it.  A lower layer reports to a higher one only through
 * state the higher one reads (the connection's state and generation, a
 * handle's ready generation and parked operations), never by a call.
 */
#ifndef DJMFS_CLNT_H
#define DJMFS_CLNT_H

#include <pthread.h>
#include <stdint.h>

#include "djmfs_proto.h"
#include "iosched.h"

/* ------------------------------------------------------------------ */
/* Connection: RPC (djmfs_rpc.c)                                       */
/* ------------------------------------------------------------------ */

/*
 * Reply hook.  @status is the server's (0 or -errno), or -ENOTCONN /
 * -EPROTO / -EBADMSG when the connection failed first; @m is the decoded
 * reply when status is 0 (else NULL) and is valid only during the call:
 * copy what you need.  Runs on the receive thread (or, on a lost
 * connection, on the thread that notices): it must not block.
 */
typedef void (*djmfs__reply_fn)(void *arg, int status,
				const struct djmfs__msg *m);

/*
 * Sends @req (its h.op and body; id and kind are filled in) and calls @fn
 * exactly once with the reply.  Returns 0, or -errno (-ENOTCONN, -EINVAL,
 * -EMSGSIZE, -ENOMEM) and then @fn is never called.  @fn may be NULL.
 */
int djmfs__rpc_async(struct djmfs_client *c, struct djmfs__msg *req,
		     djmfs__reply_fn fn, void *arg);

/* As djmfs__rpc_async, then waits: @fn (which may be NULL) runs on the
 * receive thread, then this returns the status.  Never call it from a
 * library thread but the reconnect thread.  While the client reconnects
 * it first waits until the connection is back (the reconnect thread
 * itself does not wait), and a call that is safe to repeat (PING, LIST,
 * STAT, DF, STATS, UNLINK) and was lost with a connection is sent again,
 * so @fn may run more than once, with -ENOTCONN before the last. */
int djmfs__rpc(struct djmfs_client *c, struct djmfs__msg *req,
	       djmfs__reply_fn fn, void *arg);

/*
 * Connection generations.  Every connection (the first, and each one a
 * reconnect makes) has a number; a file handle's server handle is only
 * valid on the generation that opened it.  The _on forms send only on
 * generation @gen and only while it is live (the client UP or
 * RESTORING): otherwise they fail with -ENOTCONN at once (the
 * asynchronous form never calls @fn then).  A call lost with its
 * connection completes with -ENOTCONN as before.
 */
uint64_t djmfs__conn_gen(struct djmfs_client *c); /* lock-free */
int djmfs__rpc_async_on(struct djmfs_client *c, uint64_t gen,
			struct djmfs__msg *req, djmfs__reply_fn fn,
			void *arg);
int djmfs__rpc_on(struct djmfs_client *c, uint64_t gen,
		  struct djmfs__msg *req, djmfs__reply_fn fn, void *arg);
/* Waits until the connection is UP and says its generation.  Returns 0,
 * or the -errno calls fail with once the client gave up. */
int djmfs__conn_wait_up(struct djmfs_client *c, uint64_t *gen);
/* Nonzero once the client will never send again (it gave up
 * reconnecting, reconnecting is off and the connection is lost, or it is
 * disconnecting).  Lock-free: any thread, any lock held. */
int djmfs__conn_dead(struct djmfs_client *c);
/* Sleeps @ns or until the client's state changes (a loss, the end),
 * whichever is first; for retry loops on the reconnect thread. */
void djmfs__conn_nap(struct djmfs_client *c, uint64_t ns);
/* Monotonic time (djmfs_now) at which the current outage's reconnect
 * window ends; 0 when connected. */
uint64_t djmfs__conn_deadline(struct djmfs_client *c);

/* ------------------------------------------------------------------ */
/* Data path (djmfs_io.c)                                              */
/* ------------------------------------------------------------------ */

struct djmfs__io;
struct djmfs__ioreq;

/* Completion of one device request: @res is r->len or -errno.  Runs on
 * the I/O thread; must not block. */
typedef void (*djmfs__io_done_fn)(struct djmfs__ioreq *r, int res);

/*
 * One device request, owned by the caller until its callback.  Writes
 * must cover whole blocks (offset and length multiples of DJMFS_BLOCK);
 * reads may be unaligned.  A buffer, offset or length that is not
 * aligned goes through a bounce buffer.  len 0 is a no-op that completes
 * on the I/O thread (to move a completion onto a library thread).
 */
struct djmfs__ioreq {
	enum iosched_op op;
	uint64_t off;	      /* volume byte offset */
	uint32_t len;
	void *buf;
	uint64_t deadline_ns; /* djmfs_now() clock; 0: best effort */
	djmfs__io_done_fn done;
	void *user;

	/* Private to djmfs_io.c. */
	struct iosched_req ireq;
	void *bounce;
	uint32_t skip; /* bytes of the bounce before r->off */
	struct djmfs__io *io;
	struct djmfs__ioreq *next;
};

/* Largest device request the client issues (bigger ones are split). */
#define DJMFS_IO_MAX (1u << 20)

/*
 * Starts the I/O thread on @fd (borrowed, O_DIRECT), with the scheduler
 * configured from @o (policy, profile, depth).  With
 * DJMFS_CLIENT_NO_DATA_IO in o->flags no scheduler is made and every
 * request completes on the thread without I/O.  Returns 0, -ENOSYS (no
 * io_uring), -ENOENT/-EINVAL (profile), or -errno.
 */
int djmfs__io_new(struct djmfs__io **out, int fd,
		  const struct djmfs_client_opts *o,
		  const struct djmfs_log *log);
/* Waits for everything submitted, stops the thread, frees.  NULL ok. */
void djmfs__io_free(struct djmfs__io *io);
/* Any thread.  Returns 0 (the callback will run on the I/O thread). */
int djmfs__io_submit(struct djmfs__io *io, struct djmfs__ioreq *r);
void djmfs__io_get_stats(struct djmfs__io *io, struct djmfs_io_stats *out);
/* Any thread but the I/O thread; waits until the I/O thread applied it.
 * Returns 0 or -errno (see djmfs_set_io). */
int djmfs__io_set(struct djmfs__io *io, const char *policy,
		  const char *profile, unsigned depth);
void djmfs__io_get(struct djmfs__io *io, struct djmfs_io_knobs *out);

/* ------------------------------------------------------------------ */
/* The client handle                                                   */
/* ------------------------------------------------------------------ */

struct djmfs__call; /* a pending RPC (djmfs_rpc.c) */

/* The connection's life (djmfs_client.c has the transitions). */
enum djmfs__conn_state {
	DJMFS__CONN_UP,	       /* calls flow */
	DJMFS__CONN_DOWN,      /* lost: no socket, reconnecting */
	DJMFS__CONN_RESTORING, /* connected again: files being restored */
	DJMFS__CONN_DEAD,      /* never sends again */
};

/* What restoring the open files did, for the log line and the stats. */
struct djmfs__restore_tally {
	uint32_t files;	      /* reopened */
	uint32_t confirmed;   /* lost publishes found applied */
	uint32_t resent;      /* operations sent again */
	uint32_t lost;	      /* files that could not be restored */
	uint64_t rewritten;   /* unpublished bytes moved to new units */
};

#define DJMFS__CALL_BUCKETS 64

struct djmfs_client {
	/* Set by djmfs_connect, read-only afterwards. */
	struct djmfs_client_opts opts; /* strings point to the copies below */
	char *server, *volume, *name, *policy, *profile;
	struct djmfs_log log;
	int sock;
	int vol_fd;
	uint64_t session;
	uint32_t lease_ms;
	uint32_t au_size;
	uint64_t data_off;
	uint64_t n_aus;
	uint8_t uuid[16];
	struct djmfs__io *io;
	uint64_t copied_bytes; /* djmfs_io_stats; __atomic adds */
	struct djmfs_client_stats csum; /* djmfs_read.c; __atomic adds */

	/* Connection state and pending calls, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t state_cv; /* any change of state (CLOCK_MONOTONIC) */
	uint32_t next_id;
	struct djmfs__call *calls[DJMFS__CALL_BUCKETS];
	int state;	       /* enum djmfs__conn_state; atomic reads */
	int dead_err;	       /* what calls fail with once DEAD */
	uint64_t gen;	       /* current connection generation */
	uint64_t down_ns;      /* when the current outage began */
	uint64_t deadline_ns;  /* its reconnect window ends then */
	uint64_t reconnect_ns; /* the window's length; 0: no reconnecting */
	char fail_why[96];     /* first reason the connection failed */
	int settled;	       /* DOWN and the lost calls all failed */
	struct djmfs_conn_stats cstats;
	struct djmfs_file *files; /* open handles (djmfs_file.c links) */

	/* Outgoing frames, under send_lock; one flusher at a time.  c->sock
	 * changes under both lock and send_lock. */
	pthread_mutex_t send_lock;
	pthread_cond_t send_cv;	   /* flushing dropped to 0 */
	uint64_t send_gen;	   /* generation of c->sock; 0: none */
	struct djmfs__buf sendq;   /* frames waiting */
	struct djmfs__buf sending; /* frames the flusher is writing */
	int flushing;
	uint64_t last_send_ns;
	uint64_t last_flush_ns; /* start of the last socket write */
	uint64_t flush_at_ns;	/* a deferred flush is due then; 0: none */
	uint64_t batch_ns;	/* send coalescing window */
	int npending;		/* calls in the table (c->lock; read racily
				   as a hint) */

	/* Threads. */
	pthread_t rx_thread, hb_thread, recon_thread;
	int rx_started, hb_started, recon_started;
	pthread_mutex_t hb_lock;
	pthread_cond_t hb_cond;
	int hb_stop;
};

/* ------------------------------------------------------------------ */
/* Connection: its life (djmfs_client.c over djmfs_rpc.c)              */
/* ------------------------------------------------------------------ */

/* Fails the connection (idempotent): shuts its socket down, so the
 * receive thread fails the pending calls and the state goes DOWN (the
 * reconnect thread, if started, takes over) or DEAD; otherwise later
 * calls return -ENOTCONN.  @why is logged with the loss. */
void djmfs__conn_fail(struct djmfs_client *c, int err, const char *why);

/* djmfs_rpc.c, for djmfs_client.c: a state change under c->lock (wakes
 * state_cv); starting the receive thread (0 or -errno); starting and
 * stopping (joining; no-op if not started) the heartbeat thread. */
void djmfs__conn_set_state(struct djmfs_client *c, int st);
int djmfs__rx_start(struct djmfs_client *c);
int djmfs__hb_start(struct djmfs_client *c);
void djmfs__hb_stop(struct djmfs_client *c);

/*
 * Connects (address, receive thread, HELLO, the volume's identity, the
 * I/O thread, the heartbeat): the client UP, no reconnect thread yet
 * (c->recon_started 0; the caller may start one and set reconnect_ns).
 * Returns 0 and *out, or -errno with nothing left.  @opts may be NULL.
 */
int djmfs__conn_open(struct djmfs_client **out,
		     const struct djmfs_client_opts *opts);
/* Ends the connection on purpose: heartbeat stopped, DEAD (not logged
 * as a loss, no reconnecting), socket shut down, receive thread joined.
 * Then the caller joins its reconnect thread, if any, and frees. */
void djmfs__conn_stop(struct djmfs_client *c);
void djmfs__conn_free(struct djmfs_client *c);

/*
 * The transitions the reconnect thread makes (djmfs_client.c has the
 * state table), called on that thread only:
 *   recon_thread   marks the calling thread as the reconnect thread: its
 *                  blocking calls never wait for UP
 *   wait_settled   waits for DOWN with the lost calls all failed; 0, or
 *                  -ECANCELED once DEAD
 *   redial         connects again, DOWN -> RESTORING on the new
 *                  generation *gen, HELLO, checks the volume is the
 *                  same; 0 or -errno (after the connect, a failure fails
 *                  the new connection again)
 *   go_up_locked   under c->lock: RESTORING on @gen -> UP if @ready
 *                  (counted, *ms the outage); 1 (UP), 0 (not @ready) or
 *                  -ENOTCONN (@gen is gone)
 *   give_up        the window is over: DEAD, logged, socket shut down
 */
void djmfs__conn_recon_thread(const struct djmfs_client *c);
int djmfs__conn_wait_settled(struct djmfs_client *c);
int djmfs__conn_redial(struct djmfs_client *c, uint64_t *gen);
int djmfs__conn_go_up_locked(struct djmfs_client *c, uint64_t gen,
			     int ready, uint64_t *ms);
void djmfs__conn_give_up(struct djmfs_client *c, int err);

/* ------------------------------------------------------------------ */
/* Handles (djmfs_file.c; the rest in djmfs_file.h)                    */
/* ------------------------------------------------------------------ */

/* Closes every handle still open (at disconnect). */
void djmfs__files_close_all(struct djmfs_client *c);

/* ------------------------------------------------------------------ */
/* Recovery (djmfs_restore.c, for djmfs_reconnect.c)                   */
/* ------------------------------------------------------------------ */

/*
 * The file side of a reconnect, called by the reconnect thread in this
 * order.  A loss needs no call: it bumps the connection's generation,
 * and with it every handle is stale (its queue starts no step that needs
 * the server or the reservation; calls block or stay queued).
 *   salvage     reconnect thread, before reconnecting: once each writer
 *               is quiet, reads back the unpublished data that lies in
 *               reserved units (a restarted server forgets reservations,
 *               a dead session's are released), while they are still ours
 *   restore     reconnect thread, on generation @gen: reopens every stale
 *               handle (a writer retakes its lock, retrying -EBUSY within
 *               the window), works out whether a lost PUBLISH or object
 *               call was applied, moves salvaged data to new units, and
 *               lets the queue run again.  Returns 0 when every handle is
 *               restored or given up (*t counts), -ENOTCONN when the
 *               connection was lost meanwhile.
 *   any_stale   under c->lock: is a handle still waiting for a restore?
 *   lose        after giving up: every handle's calls fail with @err.
 */
void djmfs__files_salvage(struct djmfs_client *c);
int djmfs__files_restore(struct djmfs_client *c, uint64_t gen,
			 struct djmfs__restore_tally *t);
int djmfs__files_any_stale(struct djmfs_client *c);
void djmfs__files_lose(struct djmfs_client *c, int err);

#endif /* DJMFS_CLNT_H */
