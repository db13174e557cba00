/*
 * Tests for the player sessions and their pump (sd_session.c) against a
 * real DJMFS server started in this process on a temporary volume: a
 * test writer makes files with a "data" DATA|SYNC object (each write
 * publishes a snapshot), and sessions read them back through libdjmfs
 * and libiosched.  They check the bytes delivered (whole files, ranges,
 * a live recording followed to its end, one growing by odd sizes, fifty
 * readers at once), the A and B thresholds, deadline misses, underflow
 * accounting, the wake callback, closing with reads in flight, and opens
 * made by the pump's openers (the caller never waits; a full queue and
 * a stop are answered at once).  Every byte of "data" is a
 * function of its offset, so any range can be checked without keeping
 * a copy.  Tests that count the pump's periods run it on a fake clock
 * they move (sd_pump_opts.now), so the count does not depend on how
 * the machine schedules threads; those that race a live writer or a
 * close against the pump keep real time on purpose.  Tests skip when
 * the machine has no io_uring.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "streamd-int.h"
#include "../djmfs/server_env.h"
#include "sd_test_log.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define MS 1000000ull

/* ------------------------------------------------------------------ */
/* An in-process server (tests/djmfs/server_env.h)                     */
/* ------------------------------------------------------------------ */

static struct server_env env;
static struct djmfs_client *env_client; /* disconnected by teardown() */

static void setup(void)
{
	const struct server_env_opts o = {
		.tag = "sd-session",
		.vol_size = 64 * MIB,
		.au_size = 64 * KIB,
	};

	server_env_start(&env, &o);
	env_client = NULL;
}

static void teardown(void)
{
	djmfs_disconnect(env_client);
	env_client = NULL;
	server_env_stop(&env);
	server_env_remove(&env);
}

/* The test's client, or a skipped test when data I/O is impossible. */
static struct djmfs_client *client(void)
{
	env_client = server_env_connect(&env, 0);
	return env_client;
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static uint8_t pat(uint64_t off)
{
	return (uint8_t)((off * 2654435761ull) >> 13);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct sd_knobs knobs(uint64_t period_ms, uint32_t read_size,
			     uint32_t buffer_size, double a, double b)
{
	struct sd_knobs k = { 0 };

	k.a_pct = a;
	k.b_pct = b;
	k.period_ns = period_ms * MS;
	k.read_size = read_size;
	k.buffer_size = buffer_size;
	snprintf(k.policy, sizeof(k.policy), "glmd");
	snprintf(k.profile, sizeof(k.profile), "ssd-sata");
	return k;
}

static struct sd_pump *pump(struct djmfs_client *c, const struct sd_knobs *k)
{
	struct sd_pump *p = NULL;

	cr_assert_eq(sd_pump_new(&p, c, k, &sd_test_log, NULL), 0);
	return p;
}

/* A fake clock for the pump's periods: it moves only when a test says. */
static atomic_uint_fast64_t fake_ns;

static uint64_t fake_now(void)
{
	return atomic_load(&fake_ns);
}

static struct sd_pump *pump_on_fake_clock(struct djmfs_client *c,
					  const struct sd_knobs *k)
{
	const struct sd_pump_opts o = { .now = fake_now };
	struct sd_pump *p = NULL;

	cr_assert_eq(sd_pump_new(&p, c, k, &sd_test_log, &o), 0);
	return p;
}

/* One period of @k passes on the fake clock: returns once its visit and
 * every read or sync that followed, on @s, are done. */
static void next_period(struct sd_pump *p, const struct sd_knobs *k,
			struct sd_session *s)
{
	atomic_fetch_add(&fake_ns, k->period_ns);
	sd_pump_clock_moved(p);
	sd_session_settle(s);
}

/* A recording's writer: appends the pattern to "data". */
struct wr {
	struct djmfs_file *f;
	uint32_t id;
	uint64_t off;
};

static void wr_open(struct djmfs_client *c, const char *name, struct wr *w)
{
	memset(w, 0, sizeof(*w));
	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ | DJMFS_O_WRITE |
					      DJMFS_O_CREATE, &w->f), 0);
	cr_assert_eq(djmfs_create_obj(w->f, "data", DJMFS_ATTR_DATA |
						    DJMFS_ATTR_SYNC, &w->id),
		     0);
	cr_assert_eq(djmfs_set_objptr(w->f, w->id, 0), 0);
}

static void wr_append(struct wr *w, size_t n)
{
	uint8_t *buf = malloc(n);

	cr_assert_not_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(w->off + i);
	cr_assert_eq(djmfs_write(w->f, buf, n), (ssize_t)n);
	w->off += n;
	free(buf);
}

static void wr_close(struct wr *w)
{
	cr_assert_eq(djmfs_close(w->f), 0);
	w->f = NULL;
}

/* A finished recording of @size bytes. */
static void finished_file(struct djmfs_client *c, const char *name,
			  uint64_t size)
{
	struct wr w;

	wr_open(c, name, &w);
	for (uint64_t left = size; left > 0;) {
		size_t n = left < 256 * KIB ? (size_t)left : 256 * KIB;

		wr_append(&w, n);
		left -= n;
	}
	wr_close(&w);
}

/* The player side: counts wakes. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned wakes;
};

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->wakes = 0;
}

static void on_wake(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->mu);
	w->wakes++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static unsigned wakes(struct waiter *w)
{
	unsigned n;

	pthread_mutex_lock(&w->mu);
	n = w->wakes;
	pthread_mutex_unlock(&w->mu);
	return n;
}

/* Waits until the wake count passes @seen; 0, or -ETIMEDOUT. */
static int wait_wake(struct waiter *w, unsigned seen, unsigned timeout_ms)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (w->wakes <= seen && err == 0)
		err = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	pthread_mutex_unlock(&w->mu);
	return err ? -err : 0;
}

static struct sd_session *open_session(struct sd_pump *p, const char *name,
				       uint64_t start, uint64_t end,
				       struct waiter *w)
{
	struct sd_session_opts o = { .name = name, .start = start, .end = end,
				     .wake = on_wake, .wake_arg = w };
	struct sd_session *s = NULL;
	int err = sd_session_open(p, &o, &s);

	cr_assert_eq(err, 0, "sd_session_open: %s", strerror(-err));
	return s;
}

/* Checks @n bytes read at data offset @off against the pattern. */
static void check_bytes(const uint8_t *buf, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + i))
			cr_assert_fail("byte %llu: got %u, want %u",
				       (unsigned long long)(off + i), buf[i],
				       pat(off + i));
}

/* Reads until EOF as a player would (waiting for wakes), checking every
 * byte from @start; returns the bytes delivered. */
static uint64_t drain(struct sd_session *s, struct waiter *w, uint64_t start)
{
	static uint8_t buf[100 * KIB];
	uint64_t got = 0;

	for (;;) {
		unsigned seen = wakes(w);
		ssize_t n = sd_session_read(s, buf, sizeof(buf));

		if (n == SD_SESSION_EOF)
			return got;
		cr_assert_geq(n, 0, "sd_session_read: %s", strerror((int)-n));
		if (n == 0) {
			cr_assert_eq(wait_wake(w, seen, 5000), 0,
				     "no wake within 5 s");
			continue;
		}
		check_bytes(buf, (size_t)n, start + got);
		got += (uint64_t)n;
	}
}

static uint64_t reads_of(struct sd_session *s)
{
	struct sd_session_stats st;

	sd_session_stats(s, &st);
	return st.reads;
}

/* ------------------------------------------------------------------ */
/* Bytes delivered                                                     */
/* ------------------------------------------------------------------ */

Test(session, delivers_a_finished_recording_exactly_then_eof)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 1 * MIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct sd_session_stats st;
	struct waiter w;
	struct sd_session *s;
	uint8_t b[16];

	waiter_init(&w);
	finished_file(c, "rec", 5 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(s, &w, 0), 5 * MIB);
	cr_assert_eq(sd_session_read(s, b, sizeof(b)), SD_SESSION_EOF);
	sd_session_stats(s, &st);
	cr_assert_eq(st.bytes, 5 * MIB);
	cr_assert_eq(st.reads, 5 * MIB / (64 * KIB));
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, delivers_exactly_a_byte_range)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct waiter w;
	struct sd_session *s;

	waiter_init(&w);
	finished_file(c, "rec", 3 * MIB);
	s = open_session(p, "rec", 1000003, 2000017, &w);
	cr_assert_eq(drain(s, &w, 1000003), 2000017 - 1000003);
	sd_session_close(s);
	/* An end beyond a finished recording ends with the recording. */
	s = open_session(p, "rec", 2 * MIB + 5, 100 * MIB, &w);
	cr_assert_eq(drain(s, &w, 2 * MIB + 5), 1 * MIB - 5);
	sd_session_close(s);
	s = open_session(p, "rec", 3 * MIB, 3 * MIB, &w);
	cr_assert_eq(drain(s, &w, 3 * MIB), 0);
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, refuses_missing_files_and_files_without_data)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct sd_session_opts o = { .name = "nope", .end = SD_END_LIVE };
	struct sd_session *s = NULL;
	struct djmfs_file *f = NULL;

	cr_assert_eq(sd_session_open(p, &o, &s), -ENOENT);
	cr_assert_eq(djmfs_open(c, "plain", DJMFS_O_WRITE | DJMFS_O_CREATE,
				&f), 0);
	cr_assert_eq(djmfs_close(f), 0);
	o.name = "plain";
	cr_assert_eq(sd_session_open(p, &o, &s), -EUCLEAN);
	sd_pump_free(p);
}

/* What sd_session_open_async answered, as its caller sees it. */
struct opened {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int answered;
	int err;
	struct sd_session *s;
};

static void opened_init(struct opened *o)
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
}

static void on_opened(void *arg, int err, struct sd_session *s)
{
	struct opened *o = arg;

	pthread_mutex_lock(&o->mu);
	cr_expect_eq(o->answered, 0, "answered twice");
	o->answered++;
	o->err = err;
	o->s = s;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

/* Waits for the answer; returns its error. */
static int opened_wait(struct opened *o)
{
	pthread_mutex_lock(&o->mu);
	while (!o->answered)
		pthread_cond_wait(&o->cv, &o->mu);
	pthread_mutex_unlock(&o->mu);
	return o->err;
}

Test(session, opens_on_an_opener_and_refuses_beyond_its_queue)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	const struct sd_pump_opts po = { .openers = 1, .open_queue = 2,
					 .open_delay_ns = 300 * MS };
	struct sd_session_opts rec = { .name = "rec", .end = SD_END_LIVE };
	struct sd_session_opts nope = { .name = "nope", .end = SD_END_LIVE };
	struct opened a, b, extra;
	struct sd_pump *p = NULL;
	struct waiter w;
	uint64_t t0;

	waiter_init(&w);
	rec.wake = on_wake;
	rec.wake_arg = &w;
	opened_init(&a);
	opened_init(&b);
	opened_init(&extra);
	finished_file(c, "rec", 1 * MIB);
	cr_assert_eq(sd_pump_new(&p, c, &k, &sd_test_log, &po), 0);
	t0 = sd_now();
	cr_assert_eq(sd_session_open_async(p, &rec, on_opened, &a), 0);
	cr_assert_eq(sd_session_open_async(p, &nope, on_opened, &b), 0);
	cr_assert_eq(sd_session_open_async(p, &rec, on_opened, &extra),
		     -EAGAIN);
	/* The caller never waited for a round trip, let alone the delay. */
	cr_assert_lt(sd_now() - t0, 100 * MS);
	cr_assert_eq(opened_wait(&a), 0);
	cr_assert_geq(sd_now() - t0, 300 * MS);
	cr_assert_eq(drain(a.s, &w, 0), 1 * MIB);
	cr_assert_eq(opened_wait(&b), -ENOENT);
	cr_assert_null(b.s);
	cr_assert_eq(extra.answered, 0);
	/* The close returns at once; the opener makes djmfs_close. */
	sd_session_close(a.s);
	sd_pump_free(p);
}

Test(session, answers_queued_opens_when_opens_stop)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	const struct sd_pump_opts po = { .open_delay_ns = 60000 * MS };
	struct sd_session_opts rec = { .name = "rec", .end = SD_END_LIVE };
	struct opened a, late;
	struct sd_pump *p = NULL;

	opened_init(&a);
	opened_init(&late);
	finished_file(c, "rec", 256 * KIB);
	cr_assert_eq(sd_pump_new(&p, c, &k, &sd_test_log, &po), 0);
	cr_assert_eq(sd_session_open_async(p, &rec, on_opened, &a), 0);
	sd_pump_stop_opens(p);
	cr_assert_eq(a.answered, 1, "a queued open left unanswered");
	cr_assert_eq(a.err, -ESHUTDOWN);
	cr_assert_eq(sd_session_open_async(p, &rec, on_opened, &late),
		     -ESHUTDOWN);
	sd_pump_free(p);
}

struct live_writer {
	struct wr w;
	unsigned appends;
	size_t size;
	unsigned every_ms;
};

static void *live_main(void *arg)
{
	struct live_writer *lw = arg;

	for (unsigned i = 0; i < lw->appends; i++) {
		/* Real time: the pump's timer races these appends. */
		sleep_ms(lw->every_ms);
		wr_append(&lw->w, lw->size);
	}
	wr_close(&lw->w);
	return NULL;
}

static void live_start(struct djmfs_client *c, struct live_writer *lw,
		       pthread_t *th)
{
	wr_open(c, "live", &lw->w);
	cr_assert_eq(pthread_create(th, NULL, live_main, lw), 0);
}

/* A session follows "live" while a writer appends @appends pieces of
 * @size bytes every @every_ms through a pump with @k; every byte must
 * arrive. */
static void follow_live(const struct sd_knobs *k, unsigned appends,
			size_t size, unsigned every_ms)
{
	struct djmfs_client *c = client();
	struct sd_pump *p = pump(c, k);
	struct live_writer lw = { .appends = appends, .size = size,
				  .every_ms = every_ms };
	struct waiter w;
	struct sd_session *s;
	pthread_t th;

	waiter_init(&w);
	live_start(c, &lw, &th);
	s = open_session(p, "live", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(s, &w, 0), (uint64_t)appends * size);
	pthread_join(th, NULL);
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, follows_a_live_recording_until_the_writer_closes)
{
	struct sd_knobs k = knobs(50, 64 * KIB, 1 * MIB, 80, 30);

	follow_live(&k, 16, 64 * KIB, 50);
}

/* Reads land in the ring aligned where they can and realign after each
 * snapshot's odd end: every byte still arrives, in order, across the
 * ring's wrap. */
Test(session, follows_a_recording_growing_by_odd_sizes_byte_for_byte)
{
	struct sd_knobs k = knobs(20, 64 * KIB, 128 * KIB, 80, 30);

	follow_live(&k, 40, 10007, 10);
}

Test(session, fifty_sessions_on_one_file_get_identical_bytes)
{
	enum { N = 50 };
	const uint64_t size = 2 * MIB;
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct sd_session *s[N];
	uint64_t got[N] = { 0 };
	int eof[N] = { 0 }, left = N;
	struct sd_pump_stats ps;
	static uint8_t buf[64 * KIB];
	struct waiter w;

	waiter_init(&w);
	finished_file(c, "rec", size);
	for (int i = 0; i < N; i++)
		s[i] = open_session(p, "rec", 0, SD_END_LIVE, &w);
	sd_pump_stats(p, &ps);
	cr_assert_eq(ps.sessions, N);
	while (left > 0) {
		unsigned seen = wakes(&w);
		int progress = 0;

		for (int i = 0; i < N; i++) {
			ssize_t n = eof[i] ? 0 : sd_session_read(s[i], buf,
								 sizeof(buf));

			if (n == SD_SESSION_EOF) {
				eof[i] = 1;
				left--;
				progress = 1;
				continue;
			}
			cr_assert_geq(n, 0);
			check_bytes(buf, (size_t)n, got[i]);
			got[i] += (uint64_t)n;
			progress |= n > 0;
		}
		if (!progress && left > 0)
			cr_assert_eq(wait_wake(&w, seen, 5000), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(got[i], size);
		sd_session_close(s[i]);
	}
	sd_pump_stats(p, &ps);
	cr_assert_eq(ps.sessions, 0);
	cr_assert_eq(ps.sessions_total, N);
	cr_assert_eq(ps.sum.bytes, N * size);
	cr_assert_eq(ps.sum.reads, N * size / (64 * KIB));
	sd_pump_free(p);
}

/* ------------------------------------------------------------------ */
/* The interval cache                                                  */
/* ------------------------------------------------------------------ */

static struct sd_pump *pump_with_cache(struct djmfs_client *c,
				       const struct sd_knobs *k,
				       struct sd_cache *cache)
{
	const struct sd_pump_opts o = { .cache = cache };
	struct sd_pump *p = NULL;

	cr_assert_eq(sd_pump_new(&p, c, k, &sd_test_log, &o), 0);
	return p;
}

/* A session behind one that read the recording takes every byte from
 * the cache: no read, no disk byte, the same bytes. */
Test(session, a_follower_is_served_from_the_cache_without_reads)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_cache *cache;
	struct sd_session_stats st;
	struct sd_cache_stats cs;
	struct sd_session *a, *b;
	struct sd_pump *p;
	struct waiter w;

	cr_assert_eq(sd_cache_new(&cache, 16 * MIB, &sd_test_log), 0);
	p = pump_with_cache(c, &k, cache);
	waiter_init(&w);
	finished_file(c, "rec", 3 * MIB + 1000);
	a = open_session(p, "rec", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(a, &w, 0), 3 * MIB + 1000);
	sd_session_stats(a, &st);
	cr_assert_eq(st.disk_bytes, 3 * MIB + 1000);
	cr_assert_eq(st.hits, 0);
	b = open_session(p, "rec", 5000, SD_END_LIVE, &w);
	cr_assert_eq(drain(b, &w, 5000), 3 * MIB + 1000 - 5000);
	sd_session_stats(b, &st);
	cr_expect_eq(st.reads, 0, "%llu reads", (unsigned long long)st.reads);
	cr_expect_eq(st.disk_bytes, 0);
	cr_expect_eq(st.hit_bytes, 3 * MIB + 1000 - 5000);
	cr_expect_gt(st.hits, 0);
	cr_expect_gt(sd_session_cache_share(b), 0.99);
	sd_session_close(a);
	sd_session_close(b);
	sd_cache_stats(cache, &cs);
	cr_expect_eq(cs.hit_bytes, 3 * MIB + 1000 - 5000);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* Twenty players of a recording the cache holds fill their buffers with
 * references to its blocks: each queues what B asks for, none holds a
 * private byte, and the cache holds no more than the recording. */
Test(session, players_of_a_cached_recording_share_its_blocks)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_session *a, *v[20];
	struct sd_pump_stats ps;
	struct sd_cache_stats cs;
	struct sd_cache *cache;
	struct sd_pump *p;
	struct waiter w;
	uint8_t got[4096];

	cr_assert_eq(sd_cache_new(&cache, 16 * MIB, &sd_test_log), 0);
	p = pump_with_cache(c, &k, cache);
	waiter_init(&w);
	finished_file(c, "rec", 3 * MIB);
	a = open_session(p, "rec", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(a, &w, 0), 3 * MIB);
	sd_session_close(a);
	for (size_t i = 0; i < 20; i++)
		v[i] = open_session(p, "rec", i * 100000, SD_END_LIVE, &w);
	sd_pump_stats(p, &ps);
	/* The open fills each to B at once (the A/B rules, as reads). */
	cr_expect_geq(ps.buffered_bytes, 20 * (256 * KIB * 30 / 100),
		      "%llu bytes buffered",
		      (unsigned long long)ps.buffered_bytes);
	cr_expect_eq(ps.private_bytes, 0, "%llu private bytes",
		     (unsigned long long)ps.private_bytes);
	sd_cache_stats(cache, &cs);
	cr_expect_leq(cs.bytes, 3 * MIB, "the cache holds %llu bytes",
		      (unsigned long long)cs.bytes);
	/* And they are the recording's bytes, at each player's place. */
	for (size_t i = 0; i < 20; i++) {
		cr_assert_eq(sd_session_read(v[i], got, sizeof(got)),
			     (ssize_t)sizeof(got));
		check_bytes(got, sizeof(got), i * 100000);
		sd_session_close(v[i]);
	}
	sd_pump_stats(p, &ps);
	cr_expect_eq(ps.buffered_bytes, 0);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* The recorder of this node, as sd_rec does it: each write publishes,
 * then its bytes go into the cache and the writer moves past them. */
struct cached_writer {
	struct wr w;
	struct sd_cache *cache;
	struct sd_cache_cons *k;
	uint64_t ino;
	unsigned appends;
	size_t size;
};

static void *cached_writer_main(void *arg)
{
	struct cached_writer *cw = arg;
	uint8_t *buf = malloc(cw->size);

	for (unsigned i = 0; i < cw->appends; i++) {
		uint64_t off = cw->w.off;

		sleep_ms(5);
		wr_append(&cw->w, cw->size);
		for (size_t j = 0; j < cw->size; j++)
			buf[j] = pat(off + j);
		cr_assert_eq(sd_cache_put(cw->cache, cw->ino, cw->w.id, off, buf,
					  cw->size), 0);
		sd_cache_move(cw->k, off + cw->size);
	}
	sd_cache_leave(cw->k);
	wr_close(&cw->w);
	free(buf);
	return NULL;
}

/* A session following a recording whose writer is on this node learns
 * the published sizes from the cache: every byte, from memory, with no
 * snapshot sync until the writer leaves. */
Test(session, follows_a_local_writer_through_the_cache_without_syncs)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(10, 64 * KIB, 256 * KIB, 80, 30);
	struct cached_writer cw = { .appends = 100, .size = 20011 };
	struct djmfs_file_info fi;
	struct sd_session_stats st;
	struct sd_cache *cache;
	struct sd_session *s;
	struct sd_pump *p;
	struct waiter w;
	pthread_t th;

	cr_assert_eq(sd_cache_new(&cache, 16 * MIB, &sd_test_log), 0);
	p = pump_with_cache(c, &k, cache);
	waiter_init(&w);
	wr_open(c, "live", &cw.w);
	cr_assert_eq(djmfs_file_info(cw.w.f, &fi), 0);
	cw.cache = cache;
	cw.ino = fi.ino;
	cr_assert_eq(sd_cache_join(cache, cw.ino, cw.w.id, 0, 1, &cw.k), 0);
	wr_append(&cw.w, 1); /* "data" exists in the image the session opens */
	cr_assert_eq(sd_cache_put(cache, cw.ino, cw.w.id, 0,
				  (uint8_t[]){ pat(0) }, 1), 0);
	sd_cache_move(cw.k, 1);
	s = open_session(p, "live", 0, SD_END_LIVE, &w);
	cr_assert_eq(pthread_create(&th, NULL, cached_writer_main, &cw), 0);
	cr_assert_eq(drain(s, &w, 0), 1 + (uint64_t)cw.appends * cw.size);
	pthread_join(th, NULL);
	sd_session_stats(s, &st);
	cr_expect_eq(st.reads, 0, "%llu reads", (unsigned long long)st.reads);
	cr_expect_eq(st.disk_bytes, 0);
	/* Periods of 10 ms over the writer's 0.5 s or more: a session that
	 * asked the server would have synced dozens of times. */
	cr_expect_leq(st.syncs, 4, "%llu syncs", (unsigned long long)st.syncs);
	sd_session_close(s);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* Sessions following a recording that grows by odd sizes, sharing a
 * cache (a small one, so it evicts): each gets every byte, in order,
 * never one its own snapshot does not show. */
Test(session, sessions_sharing_a_cache_follow_a_live_recording_exactly)
{
	enum { N = 4 };
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(10, 64 * KIB, 256 * KIB, 80, 30);
	struct live_writer lw = { .appends = 120, .size = 30011,
				  .every_ms = 5 };
	struct sd_session *s[N];
	uint64_t got[N] = { 0 };
	int eof[N] = { 0 }, left = N;
	static uint8_t buf[64 * KIB];
	struct sd_cache_stats cs;
	struct sd_cache *cache;
	struct sd_pump *p;
	struct waiter w;
	pthread_t th;

	cr_assert_eq(sd_cache_new(&cache, 1 * MIB, &sd_test_log), 0);
	p = pump_with_cache(c, &k, cache);
	waiter_init(&w);
	live_start(c, &lw, &th);
	for (int i = 0; i < N; i++) {
		s[i] = open_session(p, "live", 0, SD_END_LIVE, &w);
		sleep_ms(40); /* a few appends apart */
	}
	while (left > 0) {
		unsigned seen = wakes(&w);
		int progress = 0;

		for (int i = 0; i < N; i++) {
			ssize_t n = eof[i] ? 0 : sd_session_read(s[i], buf,
								 sizeof(buf));

			if (n == SD_SESSION_EOF) {
				eof[i] = 1;
				left--;
				progress = 1;
				continue;
			}
			cr_assert_geq(n, 0);
			check_bytes(buf, (size_t)n, got[i]);
			got[i] += (uint64_t)n;
			progress |= n > 0;
		}
		if (!progress && left > 0)
			cr_assert_eq(wait_wake(&w, seen, 5000), 0);
	}
	pthread_join(th, NULL);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(got[i], (uint64_t)lw.appends * lw.size);
		sd_session_close(s[i]);
	}
	sd_cache_stats(cache, &cs);
	cr_expect_gt(cs.hit_bytes, 0, "no session was served from the cache");
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* ------------------------------------------------------------------ */
/* Thresholds                                                          */
/* ------------------------------------------------------------------ */

Test(session, stops_reading_once_the_buffer_is_above_a)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 16 * KIB, 256 * KIB, 50, 10);
	struct sd_pump *p = pump_on_fake_clock(c, &k);
	struct waiter w;
	struct sd_session *s;
	uint64_t r = 0, prev;

	waiter_init(&w);
	finished_file(c, "rec", 2 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	sd_session_settle(s);
	/* Until ten periods pass without a read. */
	for (int still = 0; still < 10; still++) {
		prev = r;
		next_period(p, &k, s);
		r = reads_of(s);
		if (r != prev)
			still = 0;
	}
	/* One read per period while at or below A (50% = 8 reads), so
	 * the ninth is the last. */
	cr_assert_eq(r, 9);
	sd_session_close(s);
	sd_pump_free(p);
}

/* A player that takes nothing while no period passes (the pump's clock
 * stands still); returns the reads made. */
static uint64_t hold(struct sd_pump *p)
{
	struct waiter w;
	struct sd_session *s;
	uint64_t r;

	waiter_init(&w);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	sd_session_settle(s);
	r = reads_of(s);
	sd_session_close(s);
	return r;
}

/* A consumer that drains everything for @ms (or to the end); returns
 * the reads made. */
static uint64_t drain_for(struct sd_pump *p, unsigned ms)
{
	static uint8_t buf[256 * KIB];
	struct waiter w;
	struct sd_session *s;
	struct timespec t0, t;
	uint64_t r, got = 0;

	waiter_init(&w);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned seen = wakes(&w);
		ssize_t n = sd_session_read(s, buf, sizeof(buf));

		if (n == SD_SESSION_EOF)
			break;
		cr_assert_geq(n, 0);
		check_bytes(buf, (size_t)n, got);
		got += (uint64_t)n;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			    (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
		if (n == 0)
			wait_wake(&w, seen, 20);
	}
	r = reads_of(s);
	sd_session_close(s);
	return r;
}

Test(session, reads_again_at_once_while_below_b)
{
	struct djmfs_client *c = client();
	struct sd_knobs below = knobs(2000, 16 * KIB, 256 * KIB, 80, 50);
	struct sd_knobs above = knobs(2000, 16 * KIB, 256 * KIB, 80, 1);
	struct sd_pump *p;

	finished_file(c, "rec", 5 * MIB);
	/* Well within the first period (the pump's clock stands still):
	 * only the B rule can add reads.  A player that takes nothing:
	 * reads go on until the buffer is past B (8 of 16 KiB for B at
	 * 50 %)... */
	p = pump_on_fake_clock(c, &below);
	cr_assert_eq(hold(p), 8);
	cr_assert_gt(drain_for(p, 300), 4);
	sd_pump_free(p);
	/* ...and with B at 1 % one read fills past B: nothing more until a
	 * tick, unless the player drains the buffer below B, which brings
	 * the next read at once. */
	p = pump_on_fake_clock(c, &above);
	cr_assert_eq(hold(p), 1);
	cr_assert_gt(drain_for(p, 300), 4);
	sd_pump_free(p);
}

Test(session, applies_new_knobs_at_the_next_period)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 16 * KIB, 256 * KIB, 50, 10);
	struct sd_pump *p = pump_on_fake_clock(c, &k);
	struct waiter w;
	struct sd_session *s;
	uint64_t r = 0, prev;

	waiter_init(&w);
	finished_file(c, "rec", 2 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	k.a_pct = 100;
	sd_pump_set_knobs(p, &k);
	sd_session_settle(s);
	for (int still = 0; still < 10; still++) {
		prev = r;
		next_period(p, &k, s);
		r = reads_of(s);
		if (r != prev)
			still = 0;
	}
	/* Fills up to the brim: 256 KiB in 16 KiB reads. */
	cr_assert_eq(r, 16);
	sd_session_close(s);
	sd_pump_free(p);
}

/* ------------------------------------------------------------------ */
/* Accounting                                                          */
/* ------------------------------------------------------------------ */

Test(session, counts_every_late_read_as_a_miss)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump *p;
	struct sd_session_stats st;
	struct sd_pump_stats ps;
	struct waiter w;
	struct sd_session *s;

	k.deadline_ns = 1000;
	p = pump(c, &k);
	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(s, &w, 0), 1 * MIB);
	sd_session_stats(s, &st);
	cr_assert_eq(st.reads, 16);
	cr_assert_eq(st.misses, st.reads);
	sd_session_close(s);
	sd_pump_stats(p, &ps);
	cr_assert_eq(ps.sum.reads, 16);
	cr_assert_eq(ps.sum.misses, 16);
	cr_assert_gt(ps.lateness_p99_ns, 0);
	cr_assert_geq(ps.lateness_max_ns, ps.lateness_p99_ns);
	sd_pump_free(p);
}

Test(session, counts_an_underflow_when_the_disk_is_late)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(50, 4 * KIB, 64 * KIB, 80, 1);
	struct sd_pump *p;
	static uint8_t buf[64 * KIB];
	struct sd_session_stats st;
	struct waiter w;
	struct sd_session *s;
	uint64_t got = 0;
	unsigned empties = 0;

	/* A 1 us deadline no read can meet: every empty episode lasts at
	 * least one read, longer than that. */
	k.deadline_ns = 1000;
	p = pump(c, &k);

	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	while (empties < 4) {
		unsigned seen = wakes(&w);
		ssize_t n = sd_session_read(s, buf, sizeof(buf));

		cr_assert_geq(n, 0);
		check_bytes(buf, (size_t)n, got);
		got += (uint64_t)n;
		if (n > 0)
			continue;
		/* A second call in the same episode counts nothing (it may
		 * find a read that just landed: then no episode ends). */
		n = sd_session_read(s, buf, sizeof(buf));
		cr_assert_geq(n, 0);
		check_bytes(buf, (size_t)n, got);
		got += (uint64_t)n;
		if (n > 0)
			continue;
		empties++;
		cr_assert_eq(wait_wake(&w, seen, 5000), 0);
	}
	sd_session_stats(s, &st);
	/* The first empty read may come before the first read landed. */
	cr_assert_geq(st.underflows, 3);
	cr_assert_leq(st.underflows, 4);
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, a_burst_refilled_within_the_deadline_is_no_underflow)
{
	struct djmfs_client *c = client();
	/* A long period: only the B rule refills, at once after each read. */
	struct sd_knobs k = knobs(2000, 64 * KIB, 1 * MIB, 80, 50);
	struct sd_pump *p = pump(c, &k);
	static uint8_t buf[256 * KIB];
	struct sd_session_stats st;
	struct waiter w;
	struct sd_session *s;
	uint64_t got = 0;
	unsigned empties = 0;

	waiter_init(&w);
	finished_file(c, "rec", 4 * MIB);
	s = open_session(p, "rec", 0, SD_END_LIVE, &w);
	/* The player drains everything as fast as it can, as a player's
	 * socket does at start-up: the buffer keeps running empty for the
	 * moment the next read takes. */
	for (;;) {
		unsigned seen = wakes(&w);
		ssize_t n = sd_session_read(s, buf, sizeof(buf));

		if (n == SD_SESSION_EOF)
			break;
		cr_assert_geq(n, 0);
		check_bytes(buf, (size_t)n, got);
		got += (uint64_t)n;
		if (n == 0) {
			empties++;
			cr_assert_eq(wait_wake(&w, seen, 5000), 0);
		}
	}
	cr_assert_eq(got, 4 * MIB);
	cr_assert_gt(empties, 0);
	sd_session_stats(s, &st);
	cr_assert_eq(st.underflows, 0, "%llu underflows over %u empty "
		     "episodes", (unsigned long long)st.underflows, empties);
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, never_counts_an_underflow_at_the_live_edge)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 1 * MIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct live_writer lw = { .appends = 6, .size = 16 * KIB,
				  .every_ms = 100 };
	struct sd_session_stats st;
	struct waiter w;
	struct sd_session *s;
	pthread_t th;

	waiter_init(&w);
	live_start(c, &lw, &th);
	s = open_session(p, "live", 0, SD_END_LIVE, &w);
	cr_assert_eq(drain(s, &w, 0), 6 * 16 * KIB);
	pthread_join(th, NULL);
	sd_session_stats(s, &st);
	cr_assert_eq(st.underflows, 0);
	cr_assert_geq(wakes(&w), 6);
	sd_session_close(s);
	sd_pump_free(p);
}

Test(session, wakes_the_player_once_when_data_arrives)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump *p = pump_on_fake_clock(c, &k);
	uint8_t buf[8 * KIB];
	struct waiter w;
	struct sd_session *s;
	struct wr wr;

	waiter_init(&w);
	wr_open(c, "live", &wr);
	s = open_session(p, "live", 0, SD_END_LIVE, &w);
	cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), 0);
	for (int i = 0; i < 3; i++)
		next_period(p, &k, s);
	cr_assert_eq(wakes(&w), 0, "woken with nothing to read");
	wr_append(&wr, 4 * KIB);
	next_period(p, &k, s);
	cr_assert_eq(wait_wake(&w, 0, 5000), 0);
	cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), 4 * KIB);
	check_bytes(buf, 4 * KIB, 0);
	/* Not waiting (no empty read since): more data wakes nobody. */
	wr_append(&wr, 4 * KIB);
	for (int i = 0; i < 5; i++)
		next_period(p, &k, s);
	cr_assert_eq(wakes(&w), 1);
	cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), 4 * KIB);
	check_bytes(buf, 4 * KIB, 4 * KIB);
	/* The end of the recording wakes a waiting player too. */
	cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), 0);
	wr_close(&wr);
	next_period(p, &k, s);
	cr_assert_eq(wait_wake(&w, 1, 5000), 0);
	cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), SD_SESSION_EOF);
	cr_assert_eq(wakes(&w), 2);
	sd_session_close(s);
	sd_pump_free(p);
}

/* ------------------------------------------------------------------ */
/* Starting before the open is answered (sd_session_start)             */
/* ------------------------------------------------------------------ */

/* A pump with a cache of its own (16 MiB, in *@cache, freed by the
 * test) whose opens are answered @delay_ms late. */
static struct sd_pump *pump_slow_opens(struct djmfs_client *c,
				       const struct sd_knobs *k,
				       unsigned delay_ms,
				       struct sd_cache **cache)
{
	struct sd_pump_opts o = { .open_delay_ns = delay_ms * MS };
	struct sd_pump *p = NULL;

	cr_assert_eq(sd_cache_new(cache, 16 * MIB, &sd_test_log), 0);
	o.cache = *cache;
	cr_assert_eq(sd_pump_new(&p, c, k, &sd_test_log, &o), 0);
	return p;
}

/* Reads "@name" [0, @end) through the cache (a blocking open, no
 * delay), so that its blocks are there for the next session. */
static void read_through(struct sd_pump *p, const char *name, uint64_t end,
			 struct waiter *w)
{
	struct sd_session *a = open_session(p, name, 0, end, w);

	cr_assert_eq(drain(a, w, 0), end);
	sd_session_close(a);
}

/* What a catalog's snapshot of @name says, as sd_session_start takes it
 * (the file's only object is "data"). */
static struct sd_session_opts known(struct djmfs_client *c, const char *name,
				    uint64_t start, struct waiter *w)
{
	struct djmfs_file_info fi;
	struct sd_session_opts o = { .name = name, .start = start,
				     .end = SD_END_LIVE, .wake = on_wake,
				     .wake_arg = w };

	cr_assert_eq(djmfs_stat(c, name, &fi), 0);
	cr_assert_eq(fi.n_objs, 1);
	o.ino = fi.ino;
	o.data_id = fi.objs[0].id;
	o.size = fi.objs[0].size;
	o.live = !!(fi.flags & DJMFS_FILE_WRITE_LOCKED);
	return o;
}

/* Reads what the session has now, checking it from @off; the count. */
static size_t read_now(struct sd_session *s, uint64_t off)
{
	static uint8_t buf[256 * KIB];
	ssize_t n = sd_session_read(s, buf, sizeof(buf));

	cr_assert_geq(n, 0, "sd_session_read: %s", strerror((int)-n));
	check_bytes(buf, (size_t)n, off);
	return (size_t)n;
}

/* Reads as a player would until the session fails, checking every byte
 * from 0 (counted in *@got); returns the failure. */
static ssize_t drain_to_error(struct sd_session *s, struct waiter *w,
			      uint64_t *got)
{
	uint8_t b[4096];

	for (;;) {
		unsigned seen = wakes(w);
		ssize_t n = sd_session_read(s, b, sizeof(b));

		if (n < 0)
			return n;
		if (n == 0) {
			cr_assert_eq(wait_wake(w, seen, 5000), 0,
				     "no wake within 5 s");
			continue;
		}
		check_bytes(b, (size_t)n, *got);
		*got += (uint64_t)n;
	}
}

/* A player whose first bytes are cached gets them at once, while its
 * own OPEN is answered 300 ms late; the bytes the cache lacks come from
 * the disk once the answer is in, and every byte is the recording's. */
Test(session, starts_from_the_cache_before_its_open_is_answered)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_session_stats st;
	struct sd_session_opts o;
	struct sd_cache *cache;
	struct sd_session *s = NULL;
	struct sd_pump *p;
	struct waiter w;
	uint64_t t0, got;

	p = pump_slow_opens(c, &k, 300, &cache);
	waiter_init(&w);
	finished_file(c, "rec", 3 * MIB);
	read_through(p, "rec", 1 * MIB, &w);
	o = known(c, "rec", 4096, &w);
	t0 = sd_now();
	cr_assert_eq(sd_session_start(p, &o, &s), 0);
	got = read_now(s, 4096);
	cr_assert_gt(got, 0, "nothing at once from the cache");
	cr_assert_lt(sd_now() - t0, 200 * MS, "waited for the open");
	got += drain(s, &w, 4096 + got);
	cr_assert_eq(got, 3 * MIB - 4096);
	cr_expect_geq(sd_now() - t0, 300 * MS, "the disk before the open");
	sd_session_stats(s, &st);
	cr_expect_eq(st.hit_bytes, 1 * MIB - 4096);
	cr_expect_eq(st.disk_bytes, 2 * MIB);
	sd_session_close(s);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* Without its first block cached, or without what the catalog knows, a
 * session does not start early: the caller opens it as before. */
Test(session, does_not_start_early_without_its_first_block_cached)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_session_opts o;
	struct sd_cache *cache;
	struct sd_session *s = NULL;
	struct sd_pump *p;
	struct waiter w;

	p = pump_slow_opens(c, &k, 0, &cache);
	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	o = known(c, "rec", 0, &w);
	cr_assert_eq(sd_session_start(p, &o, &s), -ENOTSUP);
	read_through(p, "rec", 64 * KIB, &w);
	o.start = 64 * KIB; /* the next block: not read */
	cr_assert_eq(sd_session_start(p, &o, &s), -ENOTSUP);
	o.start = 0;
	o.ino = 0;
	cr_assert_eq(sd_session_start(p, &o, &s), -ENOTSUP);
	o = known(c, "rec", 1 * MIB, &w); /* at the published end */
	cr_assert_eq(sd_session_start(p, &o, &s), -ENOTSUP);
	cr_assert_null(s);
	sd_pump_free(p);
	sd_cache_free(cache);
	/* No cache at all. */
	p = pump(c, &k);
	o = known(c, "rec", 0, &w);
	cr_assert_eq(sd_session_start(p, &o, &s), -ENOTSUP);
	sd_pump_free(p);
}

/* Players that leave while their OPEN is on its way: the answer finds
 * them closed and frees them, nothing stays open, and a stop with such
 * OPENs still queued answers them. */
Test(session, an_early_session_closed_before_its_open_is_answered)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_pump_stats ps;
	struct sd_session_opts o;
	struct sd_cache *cache;
	struct sd_session *s[8];
	struct sd_pump *p;
	struct waiter w;

	p = pump_slow_opens(c, &k, 100, &cache);
	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	read_through(p, "rec", 1 * MIB, &w);
	o = known(c, "rec", 0, &w);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(sd_session_start(p, &o, &s[i]), 0);
		if (i % 2)
			read_now(s[i], 0);
		/* Real time: before, around and after the answer. */
		sleep_ms((unsigned)i * 20);
		sd_session_close(s[i]);
	}
	sd_pump_stats(p, &ps);
	cr_assert_eq(ps.sessions, 0);
	sd_pump_free(p); /* waits for every answer: ASan sees any leak */
	sd_cache_free(cache);
}

/* A stop with a started session's OPEN still queued answers it: the
 * player drains what the cache gave, then sees the stop. */
Test(session, a_stop_answers_an_early_session_still_queued)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_session_opts o;
	struct sd_cache *cache;
	struct sd_session *s = NULL;
	struct sd_pump *p;
	struct waiter w;
	uint64_t got = 0;

	p = pump_slow_opens(c, &k, 60000, &cache);
	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	read_through(p, "rec", 128 * KIB, &w);
	o = known(c, "rec", 0, &w);
	cr_assert_eq(sd_session_start(p, &o, &s), 0);
	sd_pump_stop_opens(p);
	cr_assert_eq(drain_to_error(s, &w, &got), -ESHUTDOWN);
	cr_assert_eq(got, 128 * KIB);
	sd_session_close(s);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* A recording deleted and made again under its name is another file:
 * a session started on the old one's cached bytes fails with -ESTALE
 * once its OPEN finds the new one, rather than mix the two. */
Test(session, an_early_session_of_a_remade_recording_fails_stale)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 64 * KIB, 256 * KIB, 80, 30);
	struct sd_session_opts o;
	struct sd_cache *cache;
	struct sd_session *s = NULL;
	struct sd_pump *p;
	struct waiter w;
	uint64_t got = 0;

	p = pump_slow_opens(c, &k, 50, &cache);
	waiter_init(&w);
	finished_file(c, "rec", 1 * MIB);
	read_through(p, "rec", 64 * KIB, &w);
	o = known(c, "rec", 0, &w);
	cr_assert_eq(djmfs_unlink(c, "rec"), 0);
	finished_file(c, "rec", 1 * MIB);
	cr_assert_eq(sd_session_start(p, &o, &s), 0);
	cr_assert_eq(drain_to_error(s, &w, &got), -ESTALE);
	cr_assert_leq(got, 64 * KIB);
	sd_session_close(s);
	sd_pump_free(p);
	sd_cache_free(cache);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

Test(session, closes_cleanly_with_reads_in_flight)
{
	struct djmfs_client *c = client();
	struct sd_knobs k = knobs(20, 1 * MIB, 4 * MIB, 80, 30);
	struct sd_pump *p = pump(c, &k);
	struct sd_pump_stats ps;
	uint8_t buf[4 * KIB];
	struct waiter w;
	struct sd_session *s;
	struct wr wr;

	waiter_init(&w);
	finished_file(c, "rec", 5 * MIB);
	for (int i = 0; i < 20; i++) {
		s = open_session(p, "rec", (uint64_t)i * 4096, SD_END_LIVE, &w);
		if (i % 2)
			sd_session_read(s, buf, sizeof(buf));
		sd_session_close(s);
	}
	/* A session waiting on a snapshot sync at the live edge. */
	wr_open(c, "live", &wr);
	for (int i = 0; i < 5; i++) {
		s = open_session(p, "live", 0, SD_END_LIVE, &w);
		cr_assert_eq(sd_session_read(s, buf, sizeof(buf)), 0);
		/* Real time: closes at varied points of a sync in flight. */
		sleep_ms((unsigned)i * 10);
		sd_session_close(s);
	}
	wr_close(&wr);
	sd_pump_stats(p, &ps);
	cr_assert_eq(ps.sessions, 0);
	cr_assert_eq(ps.sessions_total, 25);
	sd_pump_free(p);
}
