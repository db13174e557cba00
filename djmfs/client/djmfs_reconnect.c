/*
 * The recovery layer of libdjmfs, top half: the reconnect thread, and the
 * client's life as the public API sees it (djmfs_connect starts the
 * connection and then the reconnect thread; djmfs_disconnect closes the
 * files, stops the connection, joins the thread).  One outage is handled
 * here from end to end: wait for the receive thread to settle the loss,
 * salvage writers' unpublished data, connect again with backoff and say
 * HELLO, restore every file handle (djmfs_restore.c), and open the gate
 * (RESTORING -> UP) once no handle is stale; or give up when the window
 * is over.  The client's layers, each calling only the ones below it:
 *
 *   recovery    djmfs_reconnect.c  reconnect thread, connect, disconnect
 *               djmfs_restore.c    salvage, reopen, judge, relocate, lose
 *   handles     djmfs_file.c       open, close, the table of steps
 *               djmfs_write.c, djmfs_read.c, djmfs_snap.c, djmfs_obj.c
 *               djmfs_fifo.c       the FIFO driver
 *               djmfs_image.c      objects, maps, snapshots applied
 *   connection  djmfs_client.c     connecting, state transitions, calls
 *                                  without a handle
 *               djmfs_rpc.c        pending calls, send, receive, loss,
 *                                  heartbeat
 *   data path   djmfs_io.c         the I/O thread
 *
 * Nothing below reports up by a call: the connection records a loss in
 * its state (DOWN, a new generation, settled), which the reconnect
 * thread waits for; a handle is stale while its ready generation is not
 * the connection's, and parks an operation whose RPC was lost, which the
 * restore reads.  tools/callgraph.sh checks that the files form this
 * hierarchy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "djmfs_clnt.h"

#define RECONNECT_DEFAULT_MS 30000u
#define BACKOFF_FIRST_NS 10000000u  /* after the immediate first retry */
#define BACKOFF_MAX_NS 500000000u

/* RESTORING -> UP once no handle waits for a restore, checked under
 * c->lock so a handle linked meanwhile cannot slip past.  Returns 1
 * (UP), 0 (a handle opened meanwhile still needs one) or -ENOTCONN. */
static int go_up(struct djmfs_client *c, uint64_t gen,
		 const struct djmfs__restore_tally *t, unsigned tries)
{
	uint64_t ms = 0;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = djmfs__conn_go_up_locked(c, gen, !djmfs__files_any_stale(c),
				       &ms);
	if (ret == 1) {
		c->cstats.confirmed += t->confirmed;
		c->cstats.resent += t->resent;
		c->cstats.rewritten_bytes += t->rewritten;
	}
	pthread_mutex_unlock(&c->lock);
	if (ret == 1)
		djmfs__log(&c->log, DJMFS_LOG_WARN, "djmfs: connection to %s "
			   "restored after %llu ms (%u tries): %u files "
			   "reopened (%u lost), %u publishes found applied, %u "
			   "operations re-sent, %llu unpublished bytes "
			   "rewritten", c->server, (unsigned long long)ms,
			   tries, t->files, t->lost, t->confirmed, t->resent,
			   (unsigned long long)t->rewritten);
	return ret;
}

/* One try: connect, HELLO, restore the files.  A failure after the
 * connect drops that connection again. */
static int try_once(struct djmfs_client *c, struct djmfs__restore_tally *t,
		    unsigned tries)
{
	uint64_t gen = 0;
	int err = djmfs__conn_wait_settled(c);

	if (err == 0) {
		djmfs__files_salvage(c);
		err = djmfs__conn_redial(c, &gen);
	}
	if (err < 0)
		return err;
	while (err == 0) {
		err = djmfs__files_restore(c, gen, t);
		if (err == 0)
			err = go_up(c, gen, t, tries);
		if (err == 1)
			return 0;
	}
	djmfs__conn_fail(c, err, "restoring the session");
	return err;
}

/* Errors no retry can mend. */
static int fatal(int err)
{
	return err == -EXDEV || err == -EPROTO || err == -EACCES ||
	       err == -ECANCELED;
}

/* One outage: tries at once, then with a growing pause, until the
 * session and files are back or the window is over. */
static void reconnect(struct djmfs_client *c)
{
	struct djmfs__restore_tally t = { 0 };
	uint64_t pause = 0, deadline = djmfs__conn_deadline(c);
	unsigned tries = 0;
	int err;

	for (;;) {
		uint64_t now;

		err = try_once(c, &t, ++tries);
		if (err == 0 || fatal(err) || djmfs__conn_dead(c))
			break;
		now = djmfs_now();
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		/* The last pause ends with the window: one more try then. */
		if (pause)
			djmfs__conn_nap(c, pause < deadline - now ?
					pause : deadline - now);
		pause = pause ? pause * 2 : BACKOFF_FIRST_NS;
		if (pause > BACKOFF_MAX_NS)
			pause = BACKOFF_MAX_NS;
	}
	if (err < 0 && err != -ECANCELED && !djmfs__conn_dead(c)) {
		djmfs__conn_give_up(c, err);
		djmfs__files_lose(c, -ENOTCONN);
	}
}

/* The reconnect thread: sleeps until an outage, handles it. */
static void *recon_main(void *arg)
{
	struct djmfs_client *c = arg;

	pthread_setname_np(pthread_self(), "djmfs-recon");
	djmfs__conn_recon_thread(c);
	while (djmfs__conn_wait_settled(c) == 0)
		reconnect(c);
	return NULL;
}

/* Reconnecting is on unless the options say never. */
static int recon_start(struct djmfs_client *c)
{
	uint32_t ms = c->opts.reconnect_ms;
	int err;

	if (ms == DJMFS_CLIENT_NO_RECONNECT)
		return 0;
	c->reconnect_ns = (uint64_t)(ms ? ms : RECONNECT_DEFAULT_MS) *
			  1000000u;
	err = pthread_create(&c->recon_thread, NULL, recon_main, c);
	if (err)
		return -err;
	pthread_mutex_lock(&c->lock);
	c->recon_started = 1;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Stops the connection (DEAD first, so no reconnect starts), then the
 * reconnect thread, then frees the client. */
static void client_end(struct djmfs_client *c)
{
	djmfs__conn_stop(c);
	if (c->recon_started)
		pthread_join(c->recon_thread, NULL);
	djmfs__conn_free(c);
}

int djmfs_connect(struct djmfs_client **out,
		  const struct djmfs_client_opts *opts)
{
	struct djmfs_client *c = NULL;
	int err;

	if (!out)
		return -EINVAL;
	err = djmfs__conn_open(&c, opts);
	if (err < 0)
		return err;
	err = recon_start(c);
	if (err < 0) {
		client_end(c);
		return err;
	}
	*out = c;
	return 0;
}

void djmfs_disconnect(struct djmfs_client *c)
{
	if (!c)
		return;
	djmfs__files_close_all(c);
	client_end(c);
}
