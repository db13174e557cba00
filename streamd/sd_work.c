/*
 * The media workers: a few threads that run the jobs too long for an
 * HTTP thread, a clip's remux (seconds for an hour of video, most of it
 * reading) and a thumbnail's decode (tens of milliseconds of CPU).  An
 * MHD thread serves hundreds of players; a job made there would hold up
 * every one of them, so the route queues the job, suspends its
 * connection, and the job's end wakes it (sd_route_clip.c), as the
 * pump's openers do for a session's open.  The queue is bounded: a full
 * one says -EAGAIN at once, which the route turns into a 503, rather
 * than letting a crowd of clip requests queue for minutes.  The pool is
 * deliberately small (SD_WORKERS): its jobs are CPU and disk work the
 * players' deadlines must not lose to.
 *
 * Invariants (w->mu guards the queue and the counts):
 *  1. Every job sd_work_submit accepted runs exactly once: its fn with 0
 *     on a worker, or with -ESHUTDOWN in sd_work_stop if the pool
 *     stopped before a worker took it.  None is accepted once stopped.
 *  2. running counts jobs taken off the queue whose fn has not returned;
 *     sd_work_stop returns only once the queue is empty and running is
 *     zero, so after it no fn runs.
 *  3. fn runs with no lock of ours held.
 *
 *   call            effect
 *   sd_work_submit  queued (or -EAGAIN, -ESHUTDOWN: never runs)
 *   worker_main     queued -> running -> fn(arg, 0) -> gone
 *   sd_work_stop    queued -> fn(arg, -ESHUTDOWN) -> gone; waits out
 *                   the running ones
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

struct job {
	struct job *next;
	sd_work_fn fn;
	void *arg;
};

struct sd_work {
	struct sd_logger log;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a job queued, or stop */
	pthread_cond_t idle;	/* running reached zero */
	struct job *head, *tail;
	size_t len, max;
	unsigned running;	/* invariant 2 */
	int stopped;		/* invariant 1 */
	pthread_t th[SD_WORKERS_MAX];
	unsigned n;		/* started */
};

static void *worker_main(void *arg)
{
	struct sd_work *w = arg;
	struct job *j;

	pthread_setname_np(pthread_self(), "sd-media");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->stopped)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->head)
			break;
		j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		w->len--;
		w->running++;
		pthread_mutex_unlock(&w->mu);
		j->fn(j->arg, 0);
		free(j);
		pthread_mutex_lock(&w->mu);
		if (--w->running == 0)
			pthread_cond_broadcast(&w->idle);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int sd_work_new(struct sd_work **out, unsigned threads, size_t queue,
		const struct sd_logger *log)
{
	struct sd_work *w;
	int err = 0;

	if (!out || threads == 0 || threads > SD_WORKERS_MAX || queue == 0)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (log)
		w->log = *log;
	w->max = queue;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_cond_init(&w->idle, NULL);
	for (; w->n < threads; w->n++) {
		err = -pthread_create(&w->th[w->n], NULL, worker_main, w);
		if (err < 0) {
			sd__log(&w->log, SD_LOG_ERROR, "sd_work_new: "
				"pthread_create: %s", strerror(-err));
			sd_work_free(w);
			return err;
		}
	}
	*out = w;
	return 0;
}

int sd_work_submit(struct sd_work *w, sd_work_fn fn, void *arg)
{
	struct job *j;
	int err = 0;

	if (!w || !fn)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->stopped) {
		err = -ESHUTDOWN;
	} else if (w->len >= w->max) {
		err = -EAGAIN;
	} else {
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		w->len++;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (err < 0)
		free(j);
	return err;
}

void sd_work_stop(struct sd_work *w)
{
	struct job *j, *next;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopped = 1;
	j = w->head;
	w->head = w->tail = NULL;
	w->len = 0;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (; j; j = next) {
		next = j->next;
		j->fn(j->arg, -ESHUTDOWN);
		free(j);
	}
	pthread_mutex_lock(&w->mu);
	while (w->running > 0)
		pthread_cond_wait(&w->idle, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void sd_work_free(struct sd_work *w)
{
	if (!w)
		return;
	sd_work_stop(w);
	for (unsigned i = 0; i < w->n; i++)
		pthread_join(w->th[i], NULL);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
