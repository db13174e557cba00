/*
 * libFuzzer target for the ingest path (sd_ingest.c): the input is an
 * upload, pushed in chunks whose sizes come from its first bytes, and
 * demuxed by libavformat through the ring and the custom AVIOContext
 * while keyframes are reported.  Invariants: an upload the probe refuses
 * hands on no byte; one it accepts hands on exactly the bytes pushed, in
 * order; keyframe offsets never decrease and never point past what was
 * handed on.  The seed corpus holds small MPEG-TS files, so mutations
 * explore damaged streams as well as garbage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	const uint8_t *want;
	size_t want_len;
	size_t got;
	uint64_t last_key;
	int ready;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int woken;
};

static int on_ready(void *arg, const char *format, const char *codecs)
{
	struct sink *k = arg;

	if (!format || !codecs || codecs[0] != '[')
		abort();
	k->ready = 1;
	return 0;
}

static int on_bytes(void *arg, const void *buf, size_t len)
{
	struct sink *k = arg;

	if (!k->ready || k->got + len > k->want_len ||
	    memcmp(k->want + k->got, buf, len) != 0)
		abort(); /* bytes out of order, duplicated or invented */
	k->got += len;
	return 0;
}

static int on_key(void *arg, uint64_t offset, int64_t pts)
{
	struct sink *k = arg;

	(void)pts;
	if (offset < k->last_key || offset > k->got)
		abort();
	k->last_key = offset;
	return 0;
}

static void on_wake(void *arg)
{
	struct sink *k = arg;

	pthread_mutex_lock(&k->mu);
	k->woken++;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink k = { .want = data, .want_len = size };
	struct sd_ingest_cbs cbs = { .arg = &k, .on_ready = on_ready,
				     .on_bytes = on_bytes, .on_key = on_key,
				     .on_wake = on_wake };
	struct sd_ingest_opts o = { .probe_size = 256 * 1024,
				    .ring_size = 64 * 1024 };
	struct sd_ingest *in = NULL;
	size_t off = 0, chunk = size ? 1 + data[0] * 97u : 1;
	int res = 0;

	if (size > 2 * 1024 * 1024)
		return 0;
	pthread_mutex_init(&k.mu, NULL);
	pthread_cond_init(&k.cv, NULL);
	if (sd_ingest_new(&in, &o, &cbs) != 0)
		abort();
	while (off < size) {
		size_t want = size - off < chunk ? size - off : chunk;
		size_t n = sd_ingest_push(in, data + off, want);
		int woken;

		off += n;
		if (n == want)
			continue;
		if (sd_ingest_state(in, &res) == SD_INGEST_DONE)
			break;
		/* Full ring: wait for room (on_wake), as the HTTP side does. */
		pthread_mutex_lock(&k.mu);
		woken = k.woken;
		while (k.woken == woken &&
		       sd_ingest_state(in, &res) != SD_INGEST_DONE) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&k.cv, &k.mu, &ts);
		}
		pthread_mutex_unlock(&k.mu);
	}
	sd_ingest_finish(in);
	res = sd_ingest_free(in);
	if (res == -EPROTONOSUPPORT && k.got != 0)
		abort(); /* a refused upload handed bytes on */
	if (res == 0 && k.got != size)
		abort(); /* an accepted upload lost bytes */
	if (res != 0 && res != -EPROTONOSUPPORT)
		abort(); /* our callbacks never fail */
	pthread_cond_destroy(&k.cv);
	pthread_mutex_destroy(&k.mu);
	return 0;
}
