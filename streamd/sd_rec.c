/*
 * The recording writer: one encoder connection's bytes and keyframes go
 * into the DJMFS file of its stream.  The file holds a "header" (META:
 * JSON rewritten in place, padded with spaces to a fixed size so it never
 * shrinks), "data" (DATA|SYNC: the exact bytes received) and "index"
 * (DATA: SD_IDX_SIZE-byte entries).  Bytes gather in a write ring (put
 * there by the caller's copy, or in place through sd_rec_space) and leave
 * from where they lie in write_size pieces (or sooner, once publish_ns
 * has passed) as asynchronous writes with deadlines; every data write publishes a
 * snapshot, taking with it the index entries written just before it.
 * The ring keeps a piece's device blocks whole in memory, the bytes of
 * the object's partial last block in front of the piece (invariant 8),
 * so libdjmfs writes them from the ring (djmfs_write_inplace_async)
 * instead of copying them into blocks of its own: from the socket to the
 * volume a recorded byte is copied twice, into the ingest ring and out
 * of it into this one (sd_ingest.c).  Only a continued recording whose
 * data ended off a block has its first bytes copied once more, by
 * djmfs_write_async, until the connection has filled a block of its own
 * (that partial block is on the volume, not in the ring).  A
 * recording that already exists continues: its pointers go to the ends
 * of "data" and "index", its start time and connection count are kept.
 *
 * With an interval cache (sd_rec_opts.cache), each data write's bytes go
 * into it once the write's callback says they are published, from the
 * piece still in the ring, so viewers just behind live take them from
 * memory; the writer's end is its place among the recording's consumers.
 *
 * Crashes.  What survives a crash is the last publish, so publishes end
 * where a player can stop cleanly: in an MPEG-TS upload (as encoders
 * write them, one PES after another) a publish ends where a video frame
 * begins, and the bytes of the frame still arriving wait for the next
 * publish (at most another publish_ns; rec_cut).  A recording reopened
 * after its writer died gets what a clean close would have written: an
 * END entry for the dead connection at the end of its data, at the time
 * of its last publish; index entries published ahead of their data (a
 * data write that failed after its index write) are trimmed first, since
 * the new connection's bytes would otherwise slide under them (rec_trim).
 *
 * Invariants:
 *  1. data_end and idx_end are the sizes "data" and "index" have once
 *     every submitted write completes; writes go only to those ends.
 *  2. The object pointer always sits at the end of what was submitted to
 *     its object (libdjmfs counts writes in flight in a DATA object's
 *     end), so moving it never waits for the device.
 *  3. An index write is always followed by a data write or a flush that
 *     publishes it, and every entry it carries points below the end of
 *     that data (an END entry: at its end), so no published entry points
 *     past published data while the writes succeed.
 *  4. q holds the entries not yet written, in offset order; seg_q is the
 *     position of the queued SEGMENT entry in q, or -1.  prev_wall and
 *     prev_off are the newest entry's (queued or written): wall times and
 *     offsets never decrease.
 *  5. err is the first failure; once set no write is submitted any more
 *     and every call returns it.  A refused submit counts only after
 *     the writes in flight have completed (rec_submit), since a failure
 *     among them is its cause.
 *  6. api_mu serialises the API calls (a DJMFS handle is used by one
 *     thread at a time) and guards everything not under mu; mu guards
 *     what the completion callbacks touch (in-flight counts, err, stats)
 *     and is never held across a DJMFS call.
 *  7. cut is a data offset in (data_end, data_end + pend_len] or 0: the
 *     newest frame boundary not yet published.  Only a publish with
 *     nothing to cut at (no frame seen in this connection, the end of
 *     the connection, or a frame held for publish_ns already) ends
 *     elsewhere.
 *  8. Pending bytes and data writes in flight live in the write ring,
 *     mapped twice back to back so any ring_size bytes from any start
 *     are contiguous.  pend_at and data_end agree modulo REC_ALIGN (and
 *     ring_size is a multiple of it), so a piece's first device block
 *     starts in memory data_end % REC_ALIGN bytes before the piece, on
 *     a REC_ALIGN boundary.  A data write in flight reads its piece, the
 *     head in front of it (the data's partial last block, which it
 *     writes again: in the ring once blk_down(data_end) >= seg_base,
 *     else it goes by djmfs_write_async, rec_issue) and the rest of its
 *     last block after it (past the data's end, so pending bytes may
 *     land there meanwhile).  The ring holds max_inflight + 1 write_size
 *     pieces and REC_ALIGN bytes more, so the pending bytes never reach
 *     a piece still in flight (at most max_inflight, rec_put_data) nor
 *     the head in front of the oldest, and a piece leaves from where
 *     its bytes were put: a byte is never moved inside the ring.
 *
 *   call            effect
 *   sd_rec_open     lock the file, find or create the objects, load state,
 *                   trim an index ahead of its data, queue a lost END
 *   sd_rec_begin    header (published by a flush), SEGMENT entry queued
 *   sd_rec_data     pending bytes, frame boundaries found (rec_ts_scan);
 *                   full pieces leave up to the newest one (rec_piece)
 *   sd_rec_key      KEY entry queued (merged into a queued SEGMENT)
 *   sd_rec_tick     a partial piece leaves once publish_ns has passed
 *   sd_rec_close    last piece with the END entry, header, flush, close
 *   sd_rec_retain   the heads of "data" and "index" trimmed in DJMFS
 *                   (retention, sd_retain.c); nothing of ours moves,
 *                   since offsets stay what they were
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "streamd-int.h"

/* See sd_rec_key. */
#define SEG_KEY_MERGE 4096u

/* An open that finds the write lock taken tries for about a second. */
#define REC_BUSY_TRIES 50
#define REC_BUSY_NS 20000000L
#define REC_HDR_SIZE 4096 /* the header's size unit, spaces after the JSON */
#define REC_PTS_HZ 90000
#define REC_PTS_WRAP (1LL << 33)
#define REC_ALIGN 4096

enum { OBJ_HDR, OBJ_DATA, OBJ_IDX, N_OBJS };

/* The objects of a recording, in file order. */
static const struct {
	const char *name;
	unsigned attrs;
} rec_objs[N_OBJS] = {
	{ "header", DJMFS_ATTR_META },
	{ "data", DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC },
	{ "index", DJMFS_ATTR_DATA },
};

/* One asynchronous write: an index write owns its buffer until the
 * callback; a data write borrows its piece of the write ring. */
struct rec_write {
	struct sd_rec *r;
	uint8_t *buf;
	size_t len;
	uint64_t off;		/* data: where it lands in "data" */
	uint64_t deadline_ns;
	int data;
	const char *call; /* the DJMFS call it went by, for the log */
};

struct sd_rec {
	struct djmfs_file *f;
	uint32_t id[N_OBJS];
	uint64_t ino;
	struct sd_cache_cons *ccons; /* this writer in o.cache, or NULL */
	struct sd_rec_opts o;
	char name[SD_NAME_MAX + 1];
	pthread_mutex_t api_mu;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu: */
	unsigned inflight;	/* writes of both objects */
	unsigned data_inflight;
	int err;
	struct sd_rec_stats st;
	/* under api_mu: */
	uint64_t idx_first;	/* index entries below it were trimmed */
	int begun;
	int ptr_data;		/* the object pointer is at data_end */
	uint64_t data_end, idx_end;
	uint64_t seg_base;	/* data offset of this connection's first byte */
	uint8_t *ring;		/* invariant 8 */
	size_t ring_size;
	size_t pend_at;		/* where the pending bytes start in ring */
	uint8_t *pend;		/* ring + pend_at */
	size_t pend_len;
	struct sd_idx_entry *q;
	size_t nq, capq;
	ssize_t seg_q;
	int64_t conn_wall, conn_pts;
	int64_t prev_wall;
	uint64_t prev_off;
	uint64_t last_pub_ns;
	uint64_t cut;		/* invariant 7 */
	/* this connection's TS packets, for frame boundaries (rec_ts_scan) */
	int ts;			/* 1: an MPEG-TS upload */
	struct sd_ts *scan;	/* o.ts, or scan_own */
	struct sd_ts *scan_own;
	/* the header */
	int64_t start_ns;
	unsigned connections;
	uint64_t bitrate;
	char format[32];
	json_t *codecs;
	size_t hdr_size;
};

#define rec_log(r, level, ...) sd__log(&(r)->o.log, level, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Writes and their completions                                        */
/* ------------------------------------------------------------------ */

static void rec_done(void *user, ssize_t res)
{
	struct rec_write *w = user;
	struct sd_rec *r = w->r;
	int late = sd_now() > w->deadline_ns;

	if (res >= 0 && (size_t)res != w->len)
		res = -EIO;
	pthread_mutex_lock(&r->mu);
	if (res < 0 && r->err == 0) {
		r->err = (int)res;
		rec_log(r, SD_LOG_ERROR, "sd_rec(%s): %s (%s): %s", r->name,
			w->call, w->data ? "data" : "index",
			strerror((int)-res));
	}
	if (w->data && res >= 0 && r->ccons) {
		/* Published now (the callback of a SYNC object's write
		 * comes after its publish): the viewers behind may have the
		 * bytes from memory.  The piece is still ours until we
		 * return (invariant 8). */
		sd_cache_put(r->o.cache, r->ino, r->id[OBJ_DATA], w->off,
			     w->buf, w->len);
		/* After the put: a session that learns this end from the
		 * cache finds the bytes there. */
		sd_cache_move(r->ccons, w->off + w->len);
	}
	if (w->data) {
		r->data_inflight--;
		if (res >= 0) {
			r->st.writes++;
			r->st.write_misses += late;
		}
	}
	r->inflight--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (!w->data)
		free(w->buf);
	free(w);
}

static int rec_err(struct sd_rec *r)
{
	int err;

	pthread_mutex_lock(&r->mu);
	err = r->err;
	pthread_mutex_unlock(&r->mu);
	return err;
}

/* Writes in flight of one kind (or of both). */
enum rec_kind { K_INDEX, K_DATA, K_ALL };

static unsigned rec_inflight(const struct sd_rec *r, enum rec_kind k)
{
	return k == K_DATA ? r->data_inflight
	     : k == K_INDEX ? r->inflight - r->data_inflight : r->inflight;
}

/* Waits until at most @max writes of kind @k are in flight; returns the
 * first failure so far (at once once there is one). */
static int rec_wait(struct sd_rec *r, unsigned max, enum rec_kind k)
{
	int err;

	pthread_mutex_lock(&r->mu);
	while (r->err == 0 && rec_inflight(r, k) > max)
		pthread_cond_wait(&r->cv, &r->mu);
	err = r->err;
	pthread_mutex_unlock(&r->mu);
	return err;
}

/* Every write completed, failed ones included (nothing left to borrow
 * our buffers or call back). */
static void rec_drain_all(struct sd_rec *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->inflight > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

/* Issues @w at the pointer: an index buffer, or a data piece from its
 * device blocks in the ring when the head in front of it is there,
 * else copied by libdjmfs (invariant 8). */
static int rec_issue(struct sd_rec *r, struct rec_write *w)
{
	size_t head = r->data_end % REC_ALIGN, at = (size_t)(w->buf - r->ring);

	if (!w->data || r->data_end - head < r->seg_base)
		return djmfs_write_async(r->f, w->buf, w->len, w->deadline_ns,
					 rec_done, w);
	w->call = "djmfs_write_inplace_async";
	return djmfs_write_inplace_async(r->f, r->ring + (at + r->ring_size -
							  head) % r->ring_size,
					 head, w->len, w->deadline_ns,
					 rec_done, w);
}

/* Submits @len bytes of @buf at the pointer (an index buffer: ownership
 * passes here; data: borrowed from the ring, where it is pending). */
static int rec_submit(struct sd_rec *r, uint8_t *buf, size_t len, int data)
{
	struct rec_write *w = calloc(1, sizeof(*w));
	int err;

	if (!w) {
		if (!data)
			free(buf);
		return -ENOMEM;
	}
	*w = (struct rec_write){ r, buf, len, data ? r->data_end : 0,
				 sd_now() + r->o.deadline_ns, data,
				 "djmfs_write_async" };
	pthread_mutex_lock(&r->mu);
	r->inflight++;
	r->data_inflight += data;
	pthread_mutex_unlock(&r->mu);
	err = rec_issue(r, w);
	if (err < 0) {
		int refused = err;

		/* A refusal is often the echo of a failure still on its way
		 * back: once an append fails, libdjmfs takes the object's end
		 * back to what landed, and the next in-place append is
		 * refused (EINVAL) before that failure's callback has run.
		 * So wait for the writes in flight and report the
		 * recording's first failure (a full volume must read as
		 * ENOSPC, not as a refused argument). */
		pthread_mutex_lock(&r->mu);
		r->inflight--;
		r->data_inflight -= data;
		while (r->inflight > 0)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->err == 0)
			r->err = err;
		err = r->err;
		pthread_mutex_unlock(&r->mu);
		rec_log(r, err == refused ? SD_LOG_ERROR : SD_LOG_INFO,
			"sd_rec(%s): %s: %s%s", r->name, w->call,
			strerror(-refused), err == refused ? ""
			: " (after the recording's first failure)");
		if (!data)
			free(buf);
		free(w);
	}
	return err;
}

/* Puts the object pointer at @end of object @obj.  libdjmfs counts the
 * writes still in flight in a DATA object's end, so the pointer moves
 * between "index" and "data" without waiting for them. */
static int rec_point(struct sd_rec *r, int obj, uint64_t end)
{
	int err = rec_err(r);

	if (err == 0)
		err = djmfs_set_objptr(r->f, r->id[obj], end);
	if (err < 0 && err != rec_err(r))
		rec_log(r, SD_LOG_ERROR, "sd_rec(%s): djmfs_set_objptr(%s):"
			" %s", r->name, rec_objs[obj].name, strerror(-err));
	r->ptr_data = err == 0 && obj == OBJ_DATA;
	return err;
}

/* Writes the first @k queued entries to "index". */
static int rec_put_index(struct sd_rec *r, size_t k)
{
	uint8_t *buf = malloc(k * SD_IDX_SIZE);
	int err;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < k; i++)
		sd_idx_encode(&r->q[i], buf + i * SD_IDX_SIZE);
	err = rec_point(r, OBJ_IDX, r->idx_end);
	if (err < 0) {
		free(buf);
		return err;
	}
	err = rec_submit(r, buf, k * SD_IDX_SIZE, 0);
	if (err < 0)
		return err;
	r->idx_end += k * SD_IDX_SIZE;
	memmove(r->q, r->q + k, (r->nq - k) * sizeof(*r->q));
	r->nq -= k;
	r->seg_q = r->seg_q < (ssize_t)k ? -1 : r->seg_q - (ssize_t)k;
	return 0;
}

/* Sends the first @len pending bytes as one data write (it publishes);
 * the rest stays pending, where it is (invariant 8). */
static int rec_put_data(struct sd_rec *r, size_t len)
{
	int err = rec_wait(r, r->o.max_inflight - 1, K_DATA);

	if (err == 0 && !r->ptr_data)
		err = rec_point(r, OBJ_DATA, r->data_end);
	if (err < 0)
		return err;
	err = rec_submit(r, r->pend, len, 1);
	r->pend_at = (r->pend_at + len) % r->ring_size;
	r->pend = r->ring + r->pend_at;
	r->pend_len -= len;
	if (err < 0)
		return err;
	r->data_end += len;
	if (r->cut <= r->data_end)
		r->cut = 0;
	r->last_pub_ns = r->o.now();
	return 0;
}

/* Sends the first @len pending bytes with the queued entries that point
 * into what is then published (invariant 3); @final also lets entries at
 * the very end go (the END entry). */
static int rec_piece(struct sd_rec *r, size_t len, int final)
{
	uint64_t end = r->data_end + len;
	size_t k = 0;
	int err = 0;

	while (k < r->nq && (r->q[k].offset < end ||
			     (final && r->q[k].offset == end)))
		k++;
	if (k > 0)
		err = rec_put_index(r, k);
	if (err == 0 && len > 0)
		err = rec_put_data(r, len);
	return err;
}

/* How many pending bytes a publish takes now (invariant 7): up to the
 * newest frame boundary; all of them when the upload shows no frames,
 * when the buffer is @full, or once a frame has waited a publish_ns
 * beyond the publish that was due (a stalled encoder's last bytes);
 * none while a frame still arrives. */
static size_t rec_cut(struct sd_rec *r, int full)
{
	if (r->cut > r->data_end)
		return (size_t)(r->cut - r->data_end);
	if (full || !r->ts || !sd_ts_frames(r->scan) ||
	    r->o.now() - r->last_pub_ns >= 2 * r->o.publish_ns)
		return r->pend_len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Frame boundaries of an MPEG-TS upload                               */
/* ------------------------------------------------------------------ */

/* Feeds the connection's next @n bytes (just made pending, in place) to
 * the upload's scan, and cuts at the newest frame boundary it found. */
static int rec_ts_scan(struct sd_rec *r, const uint8_t *p, size_t n)
{
	uint64_t at = r->data_end + r->pend_len - n - r->seg_base, f;
	int err;

	if (!r->ts)
		return 0;
	if ((err = sd_ts_feed(r->scan, at, p, n)) < 0)
		return err;
	f = sd_ts_take_frame(r->scan);
	if (f != SD_TS_NONE && r->seg_base + f > r->data_end)
		r->cut = r->seg_base + f;
	return 0;
}

static int rec_queue(struct sd_rec *r, const struct sd_idx_entry *e)
{
	if (r->nq == r->capq) {
		size_t cap = r->capq ? r->capq * 2 : 16;
		struct sd_idx_entry *v = realloc(r->q, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->q = v;
		r->capq = cap;
	}
	r->q[r->nq++] = *e;
	r->prev_wall = e->wall_ns;
	r->prev_off = e->offset;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The header                                                          */
/* ------------------------------------------------------------------ */

static int rec_write_header(struct sd_rec *r)
{
	char start[40];
	json_t *h;
	char *txt = NULL;
	uint8_t *buf = NULL;
	size_t len, size = r->hdr_size;
	ssize_t n;
	int err = -ENOMEM;

	sd_time_format_iso8601(r->start_ns, start, sizeof(start));
	h = json_pack("{s:i,s:s,s:s,s:I,s:s,s:O,s:I,s:I}", "version", 1,
		      "name", r->name, "start", start, "start_ns",
		      (json_int_t)r->start_ns, "format", r->format, "codecs",
		      r->codecs, "bitrate", (json_int_t)r->bitrate,
		      "connections", (json_int_t)r->connections);
	if (h)
		txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!txt)
		goto out;
	len = strlen(txt);
	while (size < len)
		size += REC_HDR_SIZE;
	err = -EFBIG;
	if (size > DJMFS_META_MAX)
		goto out;
	err = -ENOMEM;
	if (!(buf = malloc(size)))
		goto out;
	memcpy(buf, txt, len);
	memset(buf + len, ' ', size - len);
	err = rec_point(r, OBJ_HDR, 0);
	if (err == 0 && (n = djmfs_write(r->f, buf, size)) != (ssize_t)size)
		err = n < 0 ? (int)n : -EIO;
	if (err == 0)
		r->hdr_size = size;
out:
	if (err < 0)
		rec_log(r, SD_LOG_ERROR, "sd_rec(%s): writing the header: %s",
			r->name, strerror(-err));
	free(buf);
	free(txt);
	json_decref(h);
	return err;
}

static int rec_json_int(json_t *h, const char *key, json_int_t *out)
{
	json_t *v = json_object_get(h, key);

	if (!json_is_integer(v))
		return -EUCLEAN;
	*out = json_integer_value(v);
	return 0;
}

/* Keeps what the next connections need from an existing header. */
static int rec_parse_header(struct sd_rec *r, const char *txt, size_t len)
{
	json_t *h = json_loadb(txt, len, 0, NULL);
	json_int_t ver = 0, start = 0, conns = 0, rate = 0;
	json_t *codecs = json_object_get(h, "codecs");
	const char *fmt = json_string_value(json_object_get(h, "format"));
	int err = -EUCLEAN;

	if (!json_is_object(h) || rec_json_int(h, "version", &ver) < 0 ||
	    ver != 1 || rec_json_int(h, "start_ns", &start) < 0 ||
	    rec_json_int(h, "connections", &conns) < 0 || conns < 0 ||
	    !fmt || !json_is_array(codecs))
		goto out;
	rec_json_int(h, "bitrate", &rate);
	r->start_ns = start;
	r->connections = (unsigned)conns;
	r->bitrate = rate > 0 ? (uint64_t)rate : 0;
	snprintf(r->format, sizeof(r->format), "%s", fmt);
	json_decref(r->codecs);
	r->codecs = json_incref(codecs);
	err = 0;
out:
	json_decref(h);
	return err;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */
/* ------------------------------------------------------------------ */

/* Finds the three objects, creating the missing ones at the end; a file
 * whose objects are not a prefix of the recording's is not one. */
static int rec_shape(struct sd_rec *r, struct djmfs_file_info *fi)
{
	int err = djmfs_file_info(r->f, fi);

	if (err < 0)
		return err;
	for (uint32_t i = 0; i < fi->n_objs; i++)
		if (i >= N_OBJS || strcmp(fi->objs[i].name, rec_objs[i].name) ||
		    fi->objs[i].attrs != rec_objs[i].attrs) {
			rec_log(r, SD_LOG_WARN, "sd_rec_open(%s): not a "
				"recording (object %u is \"%s\")", r->name, i,
				fi->objs[i].name);
			return -EUCLEAN;
		}
	for (uint32_t i = 0; i < N_OBJS; i++) {
		if (i < fi->n_objs) {
			r->id[i] = fi->objs[i].id;
			continue;
		}
		fi->objs[i].size = 0;
		err = djmfs_create_obj(r->f, rec_objs[i].name,
				       rec_objs[i].attrs, &r->id[i]);
		if (err < 0) {
			rec_log(r, SD_LOG_ERROR, "sd_rec_open(%s): "
				"djmfs_create_obj(%s): %s", r->name,
				rec_objs[i].name, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Reads object @obj's bytes [off, off + len) exactly. */
static int rec_read(struct sd_rec *r, int obj, void *buf, size_t len,
		    uint64_t off)
{
	ssize_t n = djmfs_pread_obj(r->f, r->id[obj], buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	rec_log(r, SD_LOG_ERROR, "sd_rec_open(%s): djmfs_pread_obj(%s): %s",
		r->name, rec_objs[obj].name,
		strerror(n < 0 ? (int)-n : EIO));
	return n < 0 ? (int)n : -EIO;
}

/* How many entries of the index to keep: those up to the last one that
 * decodes and points within the data (@last), read back from the end. */
static int rec_index_keep(struct sd_rec *r, uint64_t *keep,
			  struct sd_idx_entry *last)
{
	enum { CHUNK = 64 };
	uint8_t buf[CHUNK * SD_IDX_SIZE];
	uint64_t n = r->idx_end / SD_IDX_SIZE, k;
	int err;

	/* Entries below idx_first were trimmed by retention. */
	for (*keep = r->idx_first; n > r->idx_first; n -= k) {
		k = n - r->idx_first < CHUNK ? n - r->idx_first : CHUNK;
		err = rec_read(r, OBJ_IDX, buf, k * SD_IDX_SIZE,
			       (n - k) * SD_IDX_SIZE);
		if (err < 0)
			return err;
		for (uint64_t i = k; i > 0; i--)
			if (sd_idx_decode(buf + (i - 1) * SD_IDX_SIZE,
					  last) == 0 &&
			    last->offset <= r->data_end) {
				*keep = n - k + i;
				return 0;
			}
	}
	return 0;
}

/* Rewrites "index" with its entries idx_first to @keep and publishes
 * it: a DATA object only grows, so the entries beyond leave with the
 * object (those below retention trimmed, so the new one starts at 0).
 * (A crash between the delete and the publish leaves the recording
 * without keyframes, never without data.) */
static int rec_trim(struct sd_rec *r, uint64_t keep)
{
	size_t len = (size_t)(keep - r->idx_first) * SD_IDX_SIZE;
	uint8_t *buf = malloc(len ? len : 1);
	const char *call = "djmfs_delete_obj";
	ssize_t n = 0;
	int err = buf ? 0 : -ENOMEM;

	if (err == 0 && len > 0 &&
	    (err = rec_read(r, OBJ_IDX, buf, len,
			    r->idx_first * SD_IDX_SIZE)))
		goto out; /* logged */
	if (err == 0)
		err = djmfs_delete_obj(r->f, r->id[OBJ_IDX]);
	if (err == 0) {
		call = "djmfs_create_obj";
		err = djmfs_create_obj(r->f, rec_objs[OBJ_IDX].name,
				       rec_objs[OBJ_IDX].attrs,
				       &r->id[OBJ_IDX]);
	}
	if (err == 0 && len > 0) {
		call = "djmfs_write";
		err = djmfs_set_objptr(r->f, r->id[OBJ_IDX], 0);
		if (err == 0 && (n = djmfs_write(r->f, buf, len)) != (ssize_t)len)
			err = n < 0 ? (int)n : -EIO;
	}
	if (err == 0) {
		call = "djmfs_flush";
		err = djmfs_flush(r->f);
	}
	if (err < 0)
		rec_log(r, SD_LOG_ERROR, "sd_rec_open(%s): trimming the "
			"index: %s: %s", r->name, call, strerror(-err));
out:
	free(buf);
	return err;
}

/*
 * The index of an existing recording: entries beyond the data trimmed,
 * the newest one's wall time kept, and, when the previous connection
 * died without its END entry, one queued at the end of its data at the
 * time of its last publish (@mtime_ns), as its close would have written.
 */
static int rec_load_index(struct sd_rec *r, int64_t mtime_ns)
{
	struct sd_idx_entry e, end = { 0, r->data_end, SD_PTS_NONE,
				       SD_IDX_END };
	uint64_t keep = 0, have = r->idx_end / SD_IDX_SIZE;
	int64_t now = sd_wall_now();
	int err = rec_index_keep(r, &keep, &e);

	if (err == 0 && keep < have) {
		rec_log(r, SD_LOG_WARN, "sd_rec_open(%s): %llu index "
			"entries beyond the data (%llu bytes) or damaged; "
			"trimming them", r->name,
			(unsigned long long)(have - keep),
			(unsigned long long)r->data_end);
		err = rec_trim(r, keep);
		r->idx_end = (keep - r->idx_first) * SD_IDX_SIZE;
		keep -= r->idx_first;
		r->idx_first = 0;
	}
	if (err < 0 || keep == r->idx_first)
		return err;
	r->prev_wall = e.wall_ns;
	if (e.flags & SD_IDX_END)
		return 0;
	end.wall_ns = mtime_ns < now ? mtime_ns : now;
	if (end.wall_ns < e.wall_ns)
		end.wall_ns = e.wall_ns;
	rec_log(r, SD_LOG_INFO, "sd_rec_open(%s): the previous connection "
		"ended without closing (a crash?); its %llu bytes end the "
		"recording so far", r->name, (unsigned long long)r->data_end);
	return rec_queue(r, &end);
}

/* An existing recording: its header, its index, the ends. */
static int rec_load(struct sd_rec *r, const struct djmfs_file_info *fi)
{
	uint64_t hsize = fi->objs[OBJ_HDR].size;
	char *txt = NULL;
	int err = 0;

	r->data_end = fi->objs[OBJ_DATA].size;
	r->idx_end = fi->objs[OBJ_IDX].size;
	r->idx_first = fi->objs[OBJ_IDX].start / SD_IDX_SIZE;
	r->prev_off = r->data_end;
	if (r->idx_end % SD_IDX_SIZE)
		err = -EUCLEAN;
	if (err == 0 && hsize > 0 && !(txt = malloc(hsize)))
		err = -ENOMEM;
	if (err == 0 && hsize > 0 &&
	    (err = rec_read(r, OBJ_HDR, txt, hsize, 0)) == 0)
		err = rec_parse_header(r, txt, hsize);
	if (err == 0 && hsize > REC_HDR_SIZE)
		r->hdr_size = hsize;
	if (err == -EUCLEAN)
		rec_log(r, SD_LOG_WARN, "sd_rec_open(%s): not a recording "
			"(bad header or index)", r->name);
	if (err == 0 && r->idx_end > 0)
		err = rec_load_index(r, (int64_t)fi->mtime_ns);
	free(txt);
	return err;
}

/* The write ring (invariant 8): @size bytes, rounded up to whole pages
 * and REC_ALIGN blocks (both powers of two), mapped twice back to back. */
static int rec_ring_map(struct sd_rec *r, size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n;
	int fd = memfd_create("sd-rec", MFD_CLOEXEC);
	uint8_t *base = MAP_FAILED;

	pg = pg > REC_ALIGN ? pg : REC_ALIGN;
	n = (size + pg - 1) / pg * pg;
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)n) == 0)
		base = mmap(NULL, 2 * n, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base != MAP_FAILED &&
	    (mmap(base, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		  fd, 0) == MAP_FAILED ||
	     mmap(base + n, n, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)) {
		munmap(base, 2 * n);
		base = MAP_FAILED;
	}
	close(fd);
	if (base == MAP_FAILED)
		return -ENOMEM;
	r->ring = base;
	r->ring_size = n;
	r->pend = base;
	return 0;
}

static void rec_free(struct sd_rec *r)
{
	sd_cache_leave(r->ccons);
	pthread_mutex_destroy(&r->api_mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	json_decref(r->codecs);
	sd_ts_free(r->scan_own);
	if (r->ring)
		munmap(r->ring, 2 * r->ring_size);
	free(r->q);
	free(r);
}

static struct sd_rec *rec_new(const char *name, const struct sd_rec_opts *o)
{
	struct sd_rec *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (o)
		r->o = *o;
	if (!r->o.write_size)
		r->o.write_size = 65536;
	if (!r->o.publish_ns)
		r->o.publish_ns = SD_NS / 2;
	if (!r->o.deadline_ns)
		r->o.deadline_ns = SD_NS;
	if (!r->o.max_inflight)
		r->o.max_inflight = 4;
	if (!r->o.now)
		r->o.now = sd_now;
	snprintf(r->name, sizeof(r->name), "%s", name);
	pthread_mutex_init(&r->api_mu, NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->seg_q = -1;
	r->conn_pts = SD_PTS_NONE;
	r->prev_wall = INT64_MIN;
	r->hdr_size = REC_HDR_SIZE;
	snprintf(r->format, sizeof(r->format), "unknown");
	r->codecs = json_array();
	if (!r->codecs || rec_ring_map(r, ((size_t)r->o.max_inflight + 1) *
						  r->o.write_size +
					  REC_ALIGN) < 0) {
		rec_free(r);
		return NULL;
	}
	return r;
}

int sd_rec_open(struct djmfs_client *c, const char *name,
		const struct sd_rec_opts *opts, struct sd_rec **out)
{
	struct djmfs_file_info fi;
	struct sd_rec *r;
	int err;

	if (!c || !out || !name || !sd_name_valid(name))
		return -EINVAL;
	if (!(r = rec_new(name, opts)))
		return -ENOMEM;
	/* Retention opens a recording nobody records for the moment of a
	 * trim: an encoder arriving then waits for it rather than be told
	 * someone else records. */
	for (int i = 0; i < REC_BUSY_TRIES; i++) {
		struct timespec ts = { 0, REC_BUSY_NS };

		err = djmfs_open(c, name, DJMFS_O_READ | DJMFS_O_WRITE |
					  DJMFS_O_CREATE, &r->f);
		if (err != -EBUSY)
			break;
		nanosleep(&ts, NULL);
	}
	if (err < 0) {
		rec_log(r, err == -EBUSY ? SD_LOG_INFO : SD_LOG_ERROR,
			"sd_rec_open(%s): djmfs_open: %s", name,
			strerror(-err));
		r->f = NULL;
		goto fail;
	}
	err = rec_shape(r, &fi);
	if (err == 0)
		err = rec_load(r, &fi);
	if (err < 0)
		goto fail;
	r->ino = fi.ino;
	/* Optional: without a place, its bytes only reach the disk. */
	if (r->o.cache && sd_cache_join(r->o.cache, r->ino, r->id[OBJ_DATA],
					r->data_end, 1, &r->ccons) < 0)
		r->ccons = NULL;
	*out = r;
	return 0;
fail:
	djmfs_close(r->f);
	rec_free(r);
	return err;
}

/* ------------------------------------------------------------------ */
/* A connection                                                        */
/* ------------------------------------------------------------------ */

/* The codecs as given, or an empty list when they are not a JSON array
 * (the header must stay valid JSON). */
static json_t *rec_codecs(struct sd_rec *r, const char *codecs)
{
	json_t *v = codecs ? json_loads(codecs, 0, NULL) : NULL;

	if (json_is_array(v))
		return v;
	if (codecs)
		rec_log(r, SD_LOG_WARN, "sd_rec_begin(%s): codecs are not "
			"a JSON array; recording []", r->name);
	json_decref(v);
	return json_array();
}

int sd_rec_begin(struct sd_rec *r, const char *format, const char *codecs,
		 int64_t wall_ns)
{
	struct sd_idx_entry seg;
	json_t *cv;
	int err;

	pthread_mutex_lock(&r->api_mu);
	err = r->begun ? -EINVAL : rec_err(r);
	if (err < 0)
		goto out;
	err = -ENOMEM;
	r->ts = format && !strcmp(format, "mpegts");
	if (r->ts && !(r->scan = r->o.ts) &&
	    sd_ts_new(&r->scan_own, 0) == 0)
		r->scan = r->scan_own;
	if ((r->ts && !r->scan) || !(cv = rec_codecs(r, codecs)))
		goto out;
	json_decref(r->codecs);
	r->codecs = cv;
	snprintf(r->format, sizeof(r->format), "%s", format ? format : "");
	if (r->connections++ == 0)
		r->start_ns = wall_ns;
	r->conn_wall = wall_ns > r->prev_wall ? wall_ns : r->prev_wall;
	r->seg_base = r->data_end;
	r->pend_at = r->data_end % REC_ALIGN; /* invariant 8; nothing pending */
	r->pend = r->ring + r->pend_at;
	seg = (struct sd_idx_entry){ r->conn_wall, r->seg_base, SD_PTS_NONE,
				     SD_IDX_SEGMENT };
	err = rec_queue(r, &seg);
	if (err < 0)
		goto out;
	r->seg_q = (ssize_t)r->nq - 1;
	r->begun = 1;
	err = rec_write_header(r);
	/* Readers see the recording (live, with its start) at once. */
	if (err == 0 && (err = djmfs_flush(r->f)) < 0)
		rec_log(r, SD_LOG_ERROR, "sd_rec_begin(%s): djmfs_flush: %s",
			r->name, strerror(-err));
	r->last_pub_ns = r->o.now();
out:
	pthread_mutex_unlock(&r->api_mu);
	return err;
}

/* A partial piece leaves once publish_ns has passed since the last,
 * ending on a frame boundary when it can (rec_cut). */
static int rec_maybe_publish(struct sd_rec *r)
{
	size_t len;

	if (r->pend_len == 0 ||
	    r->o.now() - r->last_pub_ns < r->o.publish_ns)
		return 0;
	len = rec_cut(r, 0);
	return len > 0 ? rec_piece(r, len, 0) : 0;
}

int sd_rec_data(struct sd_rec *r, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t n;
	int err;

	pthread_mutex_lock(&r->api_mu);
	err = r->begun ? rec_err(r) : -EINVAL;
	while (err == 0 && len > 0) {
		n = r->o.write_size - r->pend_len;
		n = n < len ? n : len;
		if (p != r->pend + r->pend_len) /* else in place already */
			memcpy(r->pend + r->pend_len, p, n);
		r->pend_len += n;
		err = rec_ts_scan(r, r->pend + r->pend_len - n, n);
		if (err < 0)
			break;
		p += n;
		len -= n;
		pthread_mutex_lock(&r->mu);
		r->st.bytes += n;
		pthread_mutex_unlock(&r->mu);
		if (r->pend_len == r->o.write_size)
			err = rec_piece(r, rec_cut(r, 1), 0);
	}
	if (err == 0)
		err = rec_maybe_publish(r);
	pthread_mutex_unlock(&r->api_mu);
	return err;
}

size_t sd_rec_space(struct sd_rec *r, void **buf)
{
	size_t room = 0;

	pthread_mutex_lock(&r->api_mu);
	if (r->begun && rec_err(r) == 0) {
		*buf = r->pend + r->pend_len;
		room = r->o.write_size - r->pend_len;
	}
	pthread_mutex_unlock(&r->api_mu);
	return room;
}

/* The wall time of @pts on this connection's clock: its first wall time
 * plus the pts elapsed since its first keyframe. */
static int64_t rec_key_wall(struct sd_rec *r, int64_t pts)
{
	int64_t d;

	if (pts == SD_PTS_NONE || r->conn_pts == SD_PTS_NONE)
		return sd_wall_now();
	d = pts - r->conn_pts;
	if (d < -REC_PTS_WRAP / 2)
		d += REC_PTS_WRAP;
	return r->conn_wall + d * (SD_NS / 1000) / (REC_PTS_HZ / 1000);
}

int sd_rec_key(struct sd_rec *r, uint64_t conn_off, int64_t pts)
{
	struct sd_idx_entry e = { 0, r->seg_base + conn_off, pts, SD_IDX_KEY };
	int err;

	pthread_mutex_lock(&r->api_mu);
	err = r->begun ? rec_err(r) : -EINVAL;
	if (err < 0)
		goto out;
	if (e.offset < r->prev_off) {
		/* Offsets never go back; one lost keyframe costs little. */
		rec_log(r, SD_LOG_WARN, "sd_rec_key(%s): keyframe at %llu "
			"before the previous entry at %llu; dropped", r->name,
			(unsigned long long)e.offset,
			(unsigned long long)r->prev_off);
		goto out;
	}
	if (pts != SD_PTS_NONE && r->conn_pts == SD_PTS_NONE)
		r->conn_pts = pts;
	e.wall_ns = rec_key_wall(r, pts);
	if (e.wall_ns < r->prev_wall)
		e.wall_ns = r->prev_wall;
	/* A connection's first keyframe close behind its first byte (only
	 * the stream's tables come before it, as encoders write them) makes
	 * one entry with the SEGMENT, so playback and HLS start at the
	 * connection's first byte instead of with a sliver of tables. */
	if (r->seg_q >= 0 && !(r->q[r->seg_q].flags & SD_IDX_KEY) &&
	    e.offset - r->q[r->seg_q].offset <= SEG_KEY_MERGE) {
		r->q[r->seg_q].flags |= SD_IDX_KEY;
		r->q[r->seg_q].pts = pts;
	} else {
		err = rec_queue(r, &e);
	}
	if (err == 0) {
		pthread_mutex_lock(&r->mu);
		r->st.keyframes++;
		pthread_mutex_unlock(&r->mu);
	}
out:
	pthread_mutex_unlock(&r->api_mu);
	return err;
}

int sd_rec_tick(struct sd_rec *r)
{
	int err;

	pthread_mutex_lock(&r->api_mu);
	err = rec_err(r);
	if (err == 0 && r->begun)
		err = rec_maybe_publish(r);
	pthread_mutex_unlock(&r->api_mu);
	return err;
}

/* The last piece with the END entry at the end of the data. */
static int rec_finish(struct sd_rec *r, int64_t wall_ns)
{
	struct sd_idx_entry end = { wall_ns > r->prev_wall ? wall_ns
							   : r->prev_wall,
				    r->data_end + r->pend_len, SD_PTS_NONE,
				    SD_IDX_END };
	int64_t span;
	int err = rec_queue(r, &end);

	if (err == 0)
		err = rec_piece(r, r->pend_len, 1);
	span = end.wall_ns - r->start_ns;
	/* Over the whole recording, gaps included. */
	r->bitrate = span > 0 ? (uint64_t)((double)r->data_end * 8.0 *
					   (double)SD_NS / (double)span)
			      : 0;
	return err;
}

int sd_rec_close(struct sd_rec *r, int64_t wall_ns, struct sd_rec_stats *final)
{
	int err, e2;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->api_mu);
	err = rec_err(r);
	if (err == 0 && r->begun)
		err = rec_finish(r, wall_ns);
	rec_drain_all(r);
	if (err == 0)
		err = rec_err(r);
	/* The flush publishes the header with the last index write. */
	if (err == 0 && r->begun)
		err = rec_write_header(r);
	if ((e2 = djmfs_flush(r->f)) < 0 && err == 0) {
		rec_log(r, SD_LOG_ERROR, "sd_rec_close(%s): djmfs_flush: %s",
			r->name, strerror(-e2));
		err = e2;
	}
	if ((e2 = djmfs_close(r->f)) < 0 && err == 0) {
		rec_log(r, SD_LOG_ERROR, "sd_rec_close(%s): djmfs_close: %s",
			r->name, strerror(-e2));
		err = e2;
	}
	pthread_mutex_unlock(&r->api_mu);
	if (final)
		sd_rec_stats(r, final);
	rec_free(r);
	return err;
}

int sd_rec_retain(struct sd_rec *r, uint64_t data_start, uint64_t idx_start)
{
	int err;

	pthread_mutex_lock(&r->api_mu);
	err = rec_err(r);
	/* The data first: index entries below the data's start are
	 * ignored by readers, so a crash between the two leaves a
	 * recording that plays as after both. */
	if (err == 0)
		err = djmfs_trim(r->f, r->id[OBJ_DATA], data_start, NULL);
	if (err == 0)
		err = djmfs_trim(r->f, r->id[OBJ_IDX], idx_start, NULL);
	pthread_mutex_unlock(&r->api_mu);
	if (err < 0)
		rec_log(r, SD_LOG_WARN, "sd_rec_retain(%s): %s", r->name,
			strerror(-err));
	return err;
}

void sd_rec_stats(struct sd_rec *r, struct sd_rec_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->st;
	pthread_mutex_unlock(&r->mu);
}
