/*
 * Private interfaces of libdjmfs, the client: the connection and its RPC
 * layer (djmfs_client.c), the data-path thread (djmfs_io.c) and file
 * handles (djmfs_file.c).  Nothing here is installed or used by the
 * server.  The client handle is defined here because all three modules
 * share it; each field says which module owns it.
 */
#ifndef DJMFS_CLNT_H
#define DJMFS_CLNT_H

#include <pthread.h>
#include <stdint.h>

#include "djmfs-int.h"
#include "iosched.h"

/* ------------------------------------------------------------------ */
/* RPC (djmfs_client.c)                                                */
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
 * library thread. */
int djmfs__rpc(struct djmfs_client *c, struct djmfs__msg *req,
	       djmfs__reply_fn fn, void *arg);

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

struct djmfs__call; /* a pending RPC (djmfs_client.c) */

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

	/* Connection state and pending calls, under lock. */
	pthread_mutex_t lock;
	uint32_t next_id;
	struct djmfs__call *calls[DJMFS__CALL_BUCKETS];
	int dead;	       /* no new calls; set once */
	int dead_err;	       /* what pending calls fail with */
	struct djmfs_file *files; /* open handles (djmfs_file.c links) */

	/* Outgoing frames, under send_lock; one flusher at a time. */
	pthread_mutex_t send_lock;
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
	pthread_t rx_thread, hb_thread;
	int rx_started, hb_started;
	pthread_mutex_t hb_lock;
	pthread_cond_t hb_cond;
	int hb_stop;
};

/* Logs and fails the connection (idempotent): later calls return
 * -ENOTCONN; pending ones are failed by the receive thread. */
void djmfs__conn_fail(struct djmfs_client *c, int err, const char *why);

/* djmfs_file.c: closes every handle still open (at disconnect). */
void djmfs__files_close_all(struct djmfs_client *c);

#endif /* DJMFS_CLNT_H */
