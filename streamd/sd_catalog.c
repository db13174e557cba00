/*
 * The read side of the recordings: a catalog that the HTTP threads ask for
 * a stream by name or for all of them.  Each stream it has seen stays in a
 * small hash map with its own DJMFS read handle, and is brought to the
 * newest published snapshot at most once per refresh_ns: the header is
 * parsed again only when its bytes changed, and only the new tail of the
 * index object is read.
 *
 * Invariants:
 *  1. An entry in the map holds one reference; every sd_stream handed
 *     out holds another.  References are taken only under cat->mu while
 *     the entry is in the map, so the count never rises from 0; the last
 *     put closes the handle and frees.
 *  2. e->mu serialises refreshes of one entry (and guards its handle and
 *     refresh state); the public fields change only under the entry's
 *     write lock, after the I/O, so readers wait only for the copy.
 *  3. s.index holds only entries whose offset is within s.data_size: an
 *     entry published ahead of its data (a writer that failed between
 *     the two writes) waits in the index object until the data is there.
 *  4. An entry whose file vanished (-ENOENT from the file system) leaves
 *     the map at once; a caller may still hold it.
 *  5. A refresh that finds a loaded entry merely stale does not wait: it
 *     answers with what the entry holds and sends the snapshot sync
 *     without waiting (djmfs_sync_snap_async, e->syncing set, one
 *     reference held for it); the answer goes to the refresher thread,
 *     which applies it under e->mu and drops the reference.  The server
 *     answers in passes, a batching window apart under load, and a
 *     player's request must not hold an HTTP thread for one: with dozens
 *     of recordings each requested every refresh_ns, the threads would
 *     do nothing else.  Only an entry refreshed less than CAT_STALE_MAX
 *     refresh_ns ago is answered stale: one that nobody asked for since
 *     (its state may be seconds old), never loaded, touched (its
 *     recording began or ended here), or whose last refresh failed
 *     refreshes the blocking way.  So a stale answer is at most
 *     CAT_STALE_MAX refresh_ns old (300 ms by default), and never hides
 *     a start, an end or an error.
 *
 *  6. s.index holds no entry below s.data_start (retention trimmed
 *     those bytes), and s.idx_base counts the index object's entries
 *     before s.index.e[0], trimmed or dropped, so the tail read goes on
 *     from idx_base + n.
 *
 *   call             effect
 *   sd_catalog_get   map lookup (insert), refresh (open, sync, re-read;
 *                    merely stale: the sync sent, the refresher applies)
 *   sd_catalog_list  djmfs_list, then get for each name
 *   sd_stream_put    drops a reference; the last one frees
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamd-int.h"

#define CAT_BUCKETS 64
/* A stale entry is answered at once (invariant 5) only while its last
 * refresh is less than this many refresh_ns old. */
#define CAT_STALE_MAX 3

enum { OBJ_HDR, OBJ_DATA, OBJ_IDX, N_OBJS };

static const struct {
	const char *name;
	unsigned attr; /* META or DATA */
} cat_objs[N_OBJS] = {
	{ "header", DJMFS_ATTR_META },
	{ "data", DJMFS_ATTR_DATA },
	{ "index", DJMFS_ATTR_DATA },
};

struct cat_entry {
	struct sd_stream s; /* first: sd_stream pointers are entries */
	unsigned refs;	    /* atomic */
	pthread_rwlock_t lock;
	pthread_mutex_t mu;
	/* under mu: */
	struct djmfs_file *f;
	uint32_t id[N_OBJS];
	int have;	     /* the public fields were filled once */
	int state;	     /* result of the last refresh */
	int gone;	     /* see entry_refresh */
	uint64_t refreshed_ns;
	char *hdr;	     /* header bytes last parsed */
	size_t hdr_len;
	uint64_t bad_at;     /* index byte offset already warned about */
	uint32_t idx_loaded; /* the index object s.index came from: a new
				one (a writer rewrote it) is read afresh */
	struct sd_catalog *cat;
	int syncing;	     /* a sync sent, not applied (invariant 5) */
	int sync_err;	     /* its answer, under cat->rmu */
	struct cat_entry *rnext; /* cat->ready, under cat->rmu */
	struct cat_entry *next; /* hash chain, under cat->mu */
};

struct sd_catalog {
	struct djmfs_client *c;
	uint64_t refresh_ns;
	struct sd_logger log;
	pthread_mutex_t mu;
	struct cat_entry *map[CAT_BUCKETS];
	/* The refresher (invariant 5). */
	pthread_t th;
	int started;
	pthread_mutex_t rmu;	/* leaf */
	pthread_cond_t rcv;
	struct cat_entry *ready; /* syncs answered, to apply */
	unsigned syncing;	/* syncs sent, not applied */
	int stop;
};

#define cat_log(cat, level, ...) sd__log(&(cat)->log, level, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Entries and the map                                                 */
/* ------------------------------------------------------------------ */

static unsigned cat_hash(const char *name)
{
	uint32_t h = 2166136261u;

	while (*name)
		h = (h ^ (uint8_t)*name++) * 16777619u;
	return h % CAT_BUCKETS;
}

static void entry_free(struct cat_entry *e)
{
	djmfs_close(e->f);
	sd_index_free(&e->s.index);
	free(e->s.codecs);
	free(e->hdr);
	pthread_rwlock_destroy(&e->lock);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static struct cat_entry *entry_new(const char *name)
{
	struct cat_entry *e = calloc(1, sizeof(*e));
	pthread_rwlockattr_t ra;

	if (!e)
		return NULL;
	snprintf(e->s.name, sizeof(e->s.name), "%s", name);
	sd_index_init(&e->s.index);
	/* Many HTTP readers must not starve the refresh. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
		&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&e->mu, NULL);
	e->refs = 1;
	return e;
}

void sd_stream_put(struct sd_stream *s)
{
	struct cat_entry *e = (struct cat_entry *)s;

	if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		entry_free(e);
}

void sd_stream_rdlock(struct sd_stream *s)
{
	pthread_rwlock_rdlock(&((struct cat_entry *)s)->lock);
}

void sd_stream_unlock(struct sd_stream *s)
{
	pthread_rwlock_unlock(&((struct cat_entry *)s)->lock);
}

/* The entry for @name with a reference, inserted if missing; NULL:
 * -ENOMEM. */
static struct cat_entry *cat_lookup(struct sd_catalog *cat, const char *name)
{
	unsigned b = cat_hash(name);
	struct cat_entry *e;

	pthread_mutex_lock(&cat->mu);
	for (e = cat->map[b]; e && strcmp(e->s.name, name); e = e->next)
		;
	if (!e && (e = entry_new(name))) {
		e->cat = cat;
		e->next = cat->map[b];
		cat->map[b] = e;
	}
	if (e)
		__atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&cat->mu);
	return e;
}

/* Takes @e out of the map (if still there) and drops the map's
 * reference (invariant 4). */
static void cat_drop(struct sd_catalog *cat, struct cat_entry *e)
{
	struct cat_entry **p;
	int found = 0;

	pthread_mutex_lock(&cat->mu);
	for (p = &cat->map[cat_hash(e->s.name)]; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			found = 1;
			break;
		}
	pthread_mutex_unlock(&cat->mu);
	if (found)
		sd_stream_put(&e->s);
}

/* ------------------------------------------------------------------ */
/* Refreshing an entry                                                 */
/* ------------------------------------------------------------------ */

/* What the header says, parsed outside the stream's lock. */
struct cat_hdr {
	int64_t start_ns;
	unsigned connections;
	char format[32];
	char *codecs;
};

static int cat_parse_header(const char *txt, size_t len, struct cat_hdr *h)
{
	json_t *j = json_loadb(txt, len, 0, NULL), *v;
	const char *fmt = json_string_value(json_object_get(j, "format"));
	json_t *codecs = json_object_get(j, "codecs");
	int err = -EUCLEAN;

	if (!json_is_object(j) ||
	    json_integer_value(json_object_get(j, "version")) != 1 ||
	    !json_is_integer(v = json_object_get(j, "start_ns")) || !fmt ||
	    !json_is_array(codecs))
		goto out;
	h->start_ns = json_integer_value(v);
	v = json_object_get(j, "connections");
	h->connections = json_integer_value(v) > 0 ?
				 (unsigned)json_integer_value(v) : 0;
	snprintf(h->format, sizeof(h->format), "%s", fmt);
	err = (h->codecs = json_dumps(codecs, JSON_COMPACT |
						      JSON_PRESERVE_ORDER))
		      ? 0 : -ENOMEM;
out:
	json_decref(j);
	return err;
}

/* Finds the recording's objects in the snapshot: -EUCLEAN when missing,
 * -ENOENT while its publisher may still be creating them. */
static int entry_shape(struct cat_entry *e, const struct djmfs_file_info *fi)
{
	int found = 0;

	for (int k = 0; k < N_OBJS; k++)
		for (uint32_t i = 0; i < fi->n_objs; i++)
			if (!strcmp(fi->objs[i].name, cat_objs[k].name) &&
			    (fi->objs[i].attrs & cat_objs[k].attr)) {
				e->id[k] = fi->objs[i].id;
				found |= 1 << k;
				break;
			}
	if (found == (1 << N_OBJS) - 1)
		return 0;
	/* A publisher that is still making its objects: not yet one. */
	return (fi->flags & DJMFS_FILE_WRITE_LOCKED) && fi->n_objs < N_OBJS
		       ? -ENOENT : -EUCLEAN;
}

static const struct djmfs_obj_info *obj_of(const struct djmfs_file_info *fi,
					   uint32_t id)
{
	for (uint32_t i = 0; i < fi->n_objs; i++)
		if (fi->objs[i].id == id)
			return &fi->objs[i];
	return NULL;
}

/* Reads exactly @len bytes of object @id at @off. */
static int entry_read(struct sd_catalog *cat, struct cat_entry *e,
		      uint32_t id, void *buf, size_t len, uint64_t off)
{
	ssize_t n = djmfs_pread_obj(e->f, id, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	n = n < 0 ? n : -EIO;
	cat_log(cat, SD_LOG_ERROR, "sd_catalog(%s): djmfs_pread_obj: %s",
		e->s.name, strerror((int)-n));
	return (int)n;
}

/* The header when its bytes changed: 1 and @h filled, 0 unchanged,
 * -ENOENT (not written yet: a publisher is starting), -EUCLEAN. */
static int entry_header(struct sd_catalog *cat, struct cat_entry *e,
			uint64_t size, struct cat_hdr *h)
{
	char *txt;
	int err;

	if (size == 0)
		return -ENOENT;
	if (!(txt = malloc(size)))
		return -ENOMEM;
	err = entry_read(cat, e, e->id[OBJ_HDR], txt, size, 0);
	if (err == 0 && e->hdr && e->hdr_len == size &&
	    !memcmp(e->hdr, txt, size)) {
		free(txt);
		return 0;
	}
	if (err == 0)
		err = cat_parse_header(txt, size, h);
	if (err < 0) {
		free(txt);
		return err;
	}
	free(e->hdr);
	e->hdr = txt;
	e->hdr_len = size;
	return 1;
}

/* New index entries from the object's tail, up to the first that points
 * past the published data (invariant 3) or fails its check: *@buf holds
 * @*n of them. */
static int entry_index_tail(struct sd_catalog *cat, struct cat_entry *e,
			    uint64_t isize, uint64_t data_size, uint8_t **buf,
			    size_t *n)
{
	uint64_t from = (e->s.idx_base + e->s.index.n) * SD_IDX_SIZE, len;
	struct sd_idx_entry x;
	size_t k = 0;
	int err;

	*buf = NULL;
	*n = 0;
	isize -= isize % SD_IDX_SIZE;
	if (isize <= from)
		return 0;
	len = isize - from;
	if (!(*buf = malloc(len)))
		return -ENOMEM;
	err = entry_read(cat, e, e->id[OBJ_IDX], *buf, len, from);
	for (; err == 0 && k < len / SD_IDX_SIZE; k++) {
		if (sd_idx_decode(*buf + k * SD_IDX_SIZE, &x) < 0) {
			if (e->bad_at != from + k * SD_IDX_SIZE + 1)
				cat_log(cat, SD_LOG_WARN, "sd_catalog(%s): "
					"bad index entry %zu; the index stops "
					"there", e->s.name,
					(size_t)(from / SD_IDX_SIZE + k));
			e->bad_at = from + k * SD_IDX_SIZE + 1;
			break;
		}
		if (x.offset > data_size)
			break;
	}
	*n = k;
	return err;
}

/* Derived fields, under the write lock. */
static void stream_derive(struct sd_stream *s)
{
	int64_t span;

	s->start_ns = s->data_start && s->index.n ? s->index.e[0].wall_ns
						  : s->created_ns;
	s->end_ns = s->start_ns;
	if (s->index.n > 0 && s->index.e[s->index.n - 1].wall_ns > s->end_ns)
		s->end_ns = s->index.e[s->index.n - 1].wall_ns;
	span = s->end_ns - s->start_ns;
	s->bitrate = span > 0 ? (uint64_t)((double)(s->data_size -
						   s->data_start) * 8.0 *
					   (double)SD_NS / (double)span)
			      : 0;
}

/* Brings the public fields to snapshot @fi. */
static int entry_apply(struct sd_catalog *cat, struct cat_entry *e,
		       const struct djmfs_file_info *fi)
{
	struct cat_hdr h = { 0 };
	uint8_t *ib = NULL;
	size_t n = 0;
	uint64_t data_size, data_start = 0, idx_start;
	int reset;
	int hdr = 0, err = entry_shape(e, fi);

	if (err == 0 && e->have && fi->version == e->s.version) {
		pthread_rwlock_wrlock(&e->lock);
		e->s.live = !!(fi->flags & DJMFS_FILE_WRITE_LOCKED);
		pthread_rwlock_unlock(&e->lock);
		return 0;
	}
	if (err == 0)
		hdr = err = entry_header(cat, e, obj_of(fi, e->id[OBJ_HDR])->size,
					 &h);
	data_size = err < 0 ? 0 : obj_of(fi, e->id[OBJ_DATA])->size;
	if (err >= 0) {
		data_start = obj_of(fi, e->id[OBJ_DATA])->start;
		idx_start = obj_of(fi, e->id[OBJ_IDX])->start / SD_IDX_SIZE;
		/* Retention trimmed past every entry held (or this is the
		 * first load of a trimmed recording): read from its start. */
		reset = idx_start > e->s.idx_base + e->s.index.n ||
			(e->idx_loaded && e->idx_loaded != e->id[OBJ_IDX]);
		e->idx_loaded = e->id[OBJ_IDX];
		if (reset) {
			pthread_rwlock_wrlock(&e->lock);
			sd_index_free(&e->s.index);
			e->s.idx_base = idx_start;
			pthread_rwlock_unlock(&e->lock);
		}
		err = entry_index_tail(cat, e, obj_of(fi, e->id[OBJ_IDX])->size,
				       data_size, &ib, &n);
	}
	if (err < 0)
		goto out;
	pthread_rwlock_wrlock(&e->lock);
	if (hdr > 0) {
		free(e->s.codecs);
		e->s.codecs = h.codecs;
		h.codecs = NULL;
		e->s.created_ns = h.start_ns;
		e->s.connections = h.connections;
		memcpy(e->s.format, h.format, sizeof(e->s.format));
	}
	if (n > 0 && (err = sd_index_load(&e->s.index, ib, n * SD_IDX_SIZE)) < 0)
		cat_log(cat, SD_LOG_WARN, "sd_catalog(%s): sd_index_load: "
			"%s", e->s.name, strerror(-err));
	/* Entries of trimmed bytes go (invariant 6). */
	e->s.data_start = data_start;
	e->s.idx_base += sd_index_drop_below(&e->s.index, data_start);
	e->s.live = !!(fi->flags & DJMFS_FILE_WRITE_LOCKED);
	e->s.data_size = data_size;
	e->s.version = fi->version;
	e->s.ino = fi->ino;
	e->s.data_id = e->id[OBJ_DATA];
	stream_derive(&e->s);
	pthread_rwlock_unlock(&e->lock);
	e->have = 1;
	err = 0;
out:
	free(h.codecs);
	free(ib);
	return err;
}

/* Opens or moves the handle to the newest snapshot and applies it, at
 * most once per refresh_ns; returns the result of the last refresh.
 * e->gone: 1 no such file, 2 it vanished under the open handle. */
static int sync_send(struct sd_catalog *cat, struct cat_entry *e);

static int entry_refresh(struct sd_catalog *cat, struct cat_entry *e,
			 int *gone)
{
	struct djmfs_file_info fi;
	uint64_t now = sd_now();
	int err, opened = 0;

	pthread_mutex_lock(&e->mu);
	if (e->refreshed_ns && now - e->refreshed_ns < cat->refresh_ns) {
		err = e->state;
		goto out;
	}
	if (e->refreshed_ns && e->have && e->f && e->state == 0 &&
	    now - e->refreshed_ns < CAT_STALE_MAX * cat->refresh_ns &&
	    cat->started && (e->syncing || sync_send(cat, e) == 0)) {
		err = 0; /* stale, being refreshed: invariant 5 */
		goto out;
	}
	if (!e->f) {
		err = djmfs_open(cat->c, e->s.name, DJMFS_O_READ, &e->f);
		if (err < 0)
			e->f = NULL;
		opened = err == 0;
		e->gone = err == -ENOENT;
		if (err == -EUCLEAN)
			cat_log(cat, SD_LOG_DEBUG, "sd_catalog(%s): "
				"quarantined", e->s.name);
	}
	if (e->f) {
		/* A new handle already holds the newest snapshot. */
		err = opened ? djmfs_file_info(e->f, &fi)
			     : djmfs_sync_snap(e->f, &fi);
		e->gone = err == -ENOENT ? 2 : 0;
		if (err == 0)
			err = entry_apply(cat, e, &fi);
	}
	e->state = err;
	e->refreshed_ns = now;
out:
	*gone = e->gone;
	pthread_mutex_unlock(&e->mu);
	return err;
}

/* Library thread: a sync sent by sync_send was answered. */
static void sync_answered(void *arg, ssize_t res)
{
	struct cat_entry *e = arg;
	struct sd_catalog *cat = e->cat;

	pthread_mutex_lock(&cat->rmu);
	e->sync_err = res < 0 ? (int)res : 0;
	e->rnext = cat->ready;
	cat->ready = e;
	pthread_cond_signal(&cat->rcv);
	pthread_mutex_unlock(&cat->rmu);
}

/* Under e->mu: sends @e's snapshot sync without waiting; 0 or -errno
 * (then the caller refreshes the blocking way). */
static int sync_send(struct sd_catalog *cat, struct cat_entry *e)
{
	int err;

	__atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&cat->rmu);
	cat->syncing++;
	pthread_mutex_unlock(&cat->rmu);
	e->syncing = 1;
	err = djmfs_sync_snap_async(e->f, sync_answered, e);
	if (err == 0)
		return 0;
	e->syncing = 0;
	pthread_mutex_lock(&cat->rmu);
	cat->syncing--;
	pthread_mutex_unlock(&cat->rmu);
	sd_stream_put(&e->s); /* not the last: the caller holds one */
	return err;
}

/* The refresher: applies an answered sync (invariant 5).  A failed one
 * leaves the entry to the next request's blocking refresh, which tells
 * a vanished file or an error as it always did. */
static void sync_apply(struct sd_catalog *cat, struct cat_entry *e, int res)
{
	struct djmfs_file_info fi;
	int err = res;

	pthread_mutex_lock(&e->mu);
	if (err == 0)
		err = djmfs_file_info(e->f, &fi);
	if (err == 0)
		err = entry_apply(cat, e, &fi);
	if (err == 0 && e->refreshed_ns)
		e->refreshed_ns = sd_now();
	else
		e->refreshed_ns = 0;
	e->syncing = 0;
	pthread_mutex_unlock(&e->mu);
	sd_stream_put(&e->s);
}

static void *refresher_main(void *arg)
{
	struct sd_catalog *cat = arg;

	pthread_setname_np(pthread_self(), "sd-catalog");
	pthread_mutex_lock(&cat->rmu);
	for (;;) {
		struct cat_entry *e = cat->ready;

		if (e) {
			int res = e->sync_err;

			cat->ready = e->rnext;
			pthread_mutex_unlock(&cat->rmu);
			sync_apply(cat, e, res);
			pthread_mutex_lock(&cat->rmu);
			cat->syncing--;
			continue;
		}
		if (cat->stop && !cat->syncing)
			break;
		pthread_cond_wait(&cat->rcv, &cat->rmu);
	}
	pthread_mutex_unlock(&cat->rmu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The catalog                                                         */
/* ------------------------------------------------------------------ */

int sd_catalog_new(struct sd_catalog **out, struct djmfs_client *c,
		   uint64_t refresh_ns, const struct sd_logger *log)
{
	struct sd_catalog *cat;

	if (!out || !c)
		return -EINVAL;
	if (!(cat = calloc(1, sizeof(*cat))))
		return -ENOMEM;
	cat->c = c;
	cat->refresh_ns = refresh_ns ? refresh_ns : SD_NS / 10;
	if (log)
		cat->log = *log;
	pthread_mutex_init(&cat->mu, NULL);
	pthread_mutex_init(&cat->rmu, NULL);
	pthread_cond_init(&cat->rcv, NULL);
	/* Without the refresher every refresh blocks, as it used to. */
	if (pthread_create(&cat->th, NULL, refresher_main, cat) == 0)
		cat->started = 1;
	else
		cat_log(cat, SD_LOG_WARN, "sd_catalog: no refresher thread: "
			"refreshes wait for the server");
	*out = cat;
	return 0;
}

void sd_catalog_free(struct sd_catalog *cat)
{
	struct cat_entry *e, *next;

	if (!cat)
		return;
	if (cat->started) {
		/* Waits for the syncs still in flight (invariant 5). */
		pthread_mutex_lock(&cat->rmu);
		cat->stop = 1;
		pthread_cond_signal(&cat->rcv);
		pthread_mutex_unlock(&cat->rmu);
		pthread_join(cat->th, NULL);
	}
	for (unsigned b = 0; b < CAT_BUCKETS; b++)
		for (e = cat->map[b]; e; e = next) {
			next = e->next;
			sd_stream_put(&e->s);
		}
	pthread_mutex_destroy(&cat->mu);
	pthread_mutex_destroy(&cat->rmu);
	pthread_cond_destroy(&cat->rcv);
	free(cat);
}

int sd_catalog_get(struct sd_catalog *cat, const char *name,
		   struct sd_stream **out)
{
	struct cat_entry *e;
	int err = 0, gone = 2;

	if (!sd_name_valid(name))
		return -ENOENT;
	/* A second round when the file vanished under an open handle: a
	 * new one of that name may have been made since. */
	for (int round = 0; round < 2 && gone == 2; round++) {
		if (!(e = cat_lookup(cat, name)))
			return -ENOMEM;
		err = entry_refresh(cat, e, &gone);
		if (err == 0) {
			*out = &e->s;
			return 0;
		}
		if (gone)
			cat_drop(cat, e);
		sd_stream_put(&e->s);
	}
	return err;
}

void sd_catalog_touch(struct sd_catalog *cat, const char *name)
{
	struct cat_entry *e;

	if (!cat || !sd_name_valid(name) || !(e = cat_lookup(cat, name)))
		return;
	pthread_mutex_lock(&e->mu);
	e->refreshed_ns = 0;
	pthread_mutex_unlock(&e->mu);
	sd_stream_put(&e->s);
}

/* The names djmfs_list reports, gathered first: the refreshes block, and
 * must not run inside the walk. */
struct cat_names {
	char **v;
	size_t n, cap;
	int err;
};

static int cat_collect(void *arg, const struct djmfs_file_info *fi)
{
	struct cat_names *ns = arg;
	char **v;

	if (!sd_name_valid(fi->name))
		return 0;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 32;
		if (!(v = realloc(ns->v, ns->cap * sizeof(*v))))
			return ns->err = -ENOMEM;
		ns->v = v;
	}
	if (!(ns->v[ns->n] = strdup(fi->name)))
		return ns->err = -ENOMEM;
	ns->n++;
	return 0;
}

int sd_catalog_names(struct sd_catalog *cat, char ***names, size_t *n)
{
	struct cat_names ns = { 0 };
	int err = djmfs_list(cat->c, NULL, cat_collect, &ns);

	if (err < 0 && err != ns.err)
		cat_log(cat, SD_LOG_ERROR, "sd_catalog_names: djmfs_list: %s",
			strerror(-err));
	if (err < 0) {
		for (size_t i = 0; i < ns.n; i++)
			free(ns.v[i]);
		free(ns.v);
		ns.v = NULL;
		ns.n = 0;
	}
	*names = ns.v;
	*n = ns.n;
	return err;
}

int sd_catalog_list(struct sd_catalog *cat,
		    int (*fn)(void *arg, struct sd_stream *s), void *arg)
{
	struct cat_names ns = { 0 };
	struct sd_stream *s;
	int err = sd_catalog_names(cat, &ns.v, &ns.n);

	for (size_t i = 0; err == 0 && i < ns.n; i++) {
		int e = sd_catalog_get(cat, ns.v[i], &s);

		if (e < 0) {
			/* Not a recording, not started, or just removed. */
			cat_log(cat, e == -ENOENT || e == -EUCLEAN ?
					     SD_LOG_DEBUG : SD_LOG_WARN,
				"sd_catalog_list: skipping %s: %s", ns.v[i],
				strerror(-e));
			continue;
		}
		err = fn(arg, s);
		sd_stream_put(s);
	}
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	return err;
}
