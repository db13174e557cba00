/*
 * Protected ranges ("holds") of a recording: wall-clock intervals an
 * operator wants kept whatever the retention rules say.  They live in
 * DJMFS beside the recording, in a file of their own named "NAME~holds"
 * (a '~' can never appear in a recording's name, so the catalog skips
 * it), as one META object of JSON: every node of a cluster sees the same
 * holds, they survive restarts, and changing them never touches the
 * recording file, whose write lock a live recorder holds.  A change
 * takes that small file's write lock for the time of one publish;
 * two changes at once (two admin requests, two nodes) wait for each
 * other a little rather than fail.
 *
 * The stored JSON: {"version":1,"next_id":N,"holds":[{"id","start_ns",
 * "end_ns","created_ns","label"}, ...]}, padded with spaces to a
 * multiple of 4 KiB and never shorter than before (a META write does not
 * truncate, so the padding covers the old text).  Ids are never reused
 * within a recording's life.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_daemon.h"

#define HOLDS_OBJ "holds"
#define HOLDS_UNIT 4096
/* A write lock held by another change: tries for about two seconds. */
#define HOLDS_BUSY_TRIES 100
#define HOLDS_BUSY_NS 20000000L

static int holds_file(const char *name, char *buf, size_t cap)
{
	int n;

	if (!sd_name_valid(name))
		return -EINVAL;
	n = snprintf(buf, cap, "%s" SD_HOLDS_SUFFIX, name);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int hold_cmp(const void *a, const void *b)
{
	const struct sd_hold *x = a, *y = b;

	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Parses the stored text; holds sorted by start.  -EUCLEAN when it is not
 * what this file writes. */
static int holds_parse(const char *txt, size_t len, struct sd_holds *out)
{
	json_t *root = json_loadb(txt, len, 0, NULL), *a, *v;
	size_t i;
	int err = -EUCLEAN;

	memset(out, 0, sizeof(*out));
	out->next_id = 1;
	if (!root)
		return -EUCLEAN;
	a = json_object_get(root, "holds");
	v = json_object_get(root, "next_id");
	if (!json_is_array(a) || !json_is_integer(v) ||
	    json_integer_value(v) < 1 ||
	    json_array_size(a) > SD_HOLDS_MAX)
		goto out;
	out->next_id = (uint32_t)json_integer_value(v);
	out->n = json_array_size(a);
	if (out->n && !(out->h = calloc(out->n, sizeof(*out->h)))) {
		err = -ENOMEM;
		goto out;
	}
	json_array_foreach(a, i, v) {
		struct sd_hold *h = &out->h[i];
		json_int_t id, s, e, c;
		const char *label = NULL;

		if (json_unpack(v, "{s:I, s:I, s:I, s:I, s?s}", "id", &id,
				"start_ns", &s, "end_ns", &e, "created_ns", &c,
				"label", &label) < 0 ||
		    id < 1 || id >= out->next_id || e < s)
			goto out;
		h->id = (uint32_t)id;
		h->start_ns = s;
		h->end_ns = e;
		h->created_ns = c;
		snprintf(h->label, sizeof(h->label), "%s", label ? label : "");
	}
	qsort(out->h, out->n, sizeof(*out->h), hold_cmp);
	err = 0;
out:
	if (err < 0) {
		free(out->h);
		memset(out, 0, sizeof(*out));
	}
	json_decref(root);
	return err;
}

/* Reads the holds object of an open file: 0 (none yet: empty), -errno. */
static int holds_read(struct djmfs_file *f, struct sd_holds *out,
		      uint64_t *size)
{
	struct djmfs_file_info fi;
	uint32_t id;
	char *buf;
	ssize_t n;
	int err;

	memset(out, 0, sizeof(*out));
	out->next_id = 1;
	*size = 0;
	if ((err = djmfs_find_obj(f, HOLDS_OBJ, &id)) < 0)
		return err == -ENOENT ? 0 : err;
	if ((err = djmfs_file_info(f, &fi)) < 0)
		return err;
	for (uint32_t i = 0; i < fi.n_objs; i++)
		if (fi.objs[i].id == id)
			*size = fi.objs[i].size;
	if (*size == 0)
		return 0;
	if (*size > DJMFS_META_MAX)
		return -EUCLEAN;
	if (!(buf = malloc(*size)))
		return -ENOMEM;
	n = djmfs_pread_obj(f, id, buf, *size, 0);
	err = n == (ssize_t)*size ? holds_parse(buf, *size, out) :
		n < 0 ? (int)n : -EIO;
	free(buf);
	return err;
}

int sd_holds_load(struct djmfs_client *c, const char *name,
		  struct sd_holds *out)
{
	char fname[SD_NAME_MAX + sizeof(SD_HOLDS_SUFFIX)];
	struct djmfs_file *f;
	uint64_t size;
	int err;

	memset(out, 0, sizeof(*out));
	out->next_id = 1;
	if ((err = holds_file(name, fname, sizeof(fname))) < 0)
		return err;
	err = djmfs_open(c, fname, DJMFS_O_READ, &f);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	err = holds_read(f, out, &size);
	djmfs_close(f);
	return err;
}

void sd_holds_free(struct sd_holds *hs)
{
	free(hs->h);
	memset(hs, 0, sizeof(*hs));
}

static int holds_write(struct djmfs_file *f, const struct sd_holds *hs,
		       uint64_t old_size)
{
	json_t *root = json_pack("{s:i, s:I, s:[]}", "version", 1, "next_id",
				 (json_int_t)hs->next_id, "holds");
	json_t *a = root ? json_object_get(root, "holds") : NULL;
	char *txt = NULL, *buf = NULL;
	size_t len, size;
	uint32_t id;
	ssize_t n;
	int err = -ENOMEM;

	for (size_t i = 0; a && i < hs->n; i++) {
		const struct sd_hold *h = &hs->h[i];

		if (json_array_append_new(a, json_pack(
			    "{s:I, s:I, s:I, s:I, s:s}", "id",
			    (json_int_t)h->id, "start_ns",
			    (json_int_t)h->start_ns, "end_ns",
			    (json_int_t)h->end_ns, "created_ns",
			    (json_int_t)h->created_ns, "label", h->label)) < 0)
			goto out;
	}
	if (!a || !(txt = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		goto out;
	len = strlen(txt);
	size = (len + HOLDS_UNIT - 1) / HOLDS_UNIT * HOLDS_UNIT;
	if (size < old_size)
		size = old_size;
	err = -EFBIG;
	if (size > DJMFS_META_MAX)
		goto out;
	err = -ENOMEM;
	if (!(buf = malloc(size)))
		goto out;
	memcpy(buf, txt, len);
	memset(buf + len, ' ', size - len);
	err = djmfs_find_obj(f, HOLDS_OBJ, &id);
	if (err == -ENOENT)
		err = djmfs_create_obj(f, HOLDS_OBJ, DJMFS_ATTR_META, &id);
	if (err == 0)
		err = djmfs_set_objptr(f, id, 0);
	if (err == 0 && (n = djmfs_write(f, buf, size)) != (ssize_t)size)
		err = n < 0 ? (int)n : -EIO;
	if (err == 0)
		err = djmfs_flush(f);
out:
	free(buf);
	free(txt);
	json_decref(root);
	return err;
}

/* Opens the holds file for writing, creating it, waiting out another
 * change that holds its lock. */
static int holds_open_write(struct djmfs_client *c, const char *fname,
			    struct djmfs_file **f)
{
	struct timespec ts = { 0, HOLDS_BUSY_NS };
	int err = -EBUSY;

	for (int i = 0; i < HOLDS_BUSY_TRIES && err == -EBUSY; i++) {
		err = djmfs_open(c, fname, DJMFS_O_READ | DJMFS_O_WRITE |
				 DJMFS_O_CREATE, f);
		if (err == -EBUSY)
			nanosleep(&ts, NULL);
	}
	return err;
}

/* Applies @change to the stored holds under the file's write lock. */
static int holds_change(struct djmfs_client *c, const char *name,
			int (*change)(struct sd_holds *hs, void *arg),
			void *arg)
{
	char fname[SD_NAME_MAX + sizeof(SD_HOLDS_SUFFIX)];
	struct djmfs_file *f;
	struct sd_holds hs;
	uint64_t size;
	int err, cerr;

	if ((err = holds_file(name, fname, sizeof(fname))) < 0)
		return err;
	if ((err = holds_open_write(c, fname, &f)) < 0)
		return err;
	err = holds_read(f, &hs, &size);
	if (err == 0)
		err = change(&hs, arg);
	if (err == 0)
		err = holds_write(f, &hs, size);
	cerr = djmfs_close(f);
	sd_holds_free(&hs);
	return err < 0 ? err : cerr;
}

static int add_one(struct sd_holds *hs, void *arg)
{
	struct sd_hold *h = arg, *v;

	if (hs->n >= SD_HOLDS_MAX)
		return -ENOSPC;
	if (!(v = realloc(hs->h, (hs->n + 1) * sizeof(*v))))
		return -ENOMEM;
	hs->h = v;
	h->id = hs->next_id++;
	hs->h[hs->n++] = *h;
	qsort(hs->h, hs->n, sizeof(*hs->h), hold_cmp);
	return 0;
}

int sd_holds_add(struct djmfs_client *c, const char *name, struct sd_hold *h)
{
	if (h->end_ns < h->start_ns)
		return -EINVAL;
	return holds_change(c, name, add_one, h);
}

static int remove_one(struct sd_holds *hs, void *arg)
{
	uint32_t id = *(uint32_t *)arg;

	for (size_t i = 0; i < hs->n; i++) {
		if (hs->h[i].id != id)
			continue;
		memmove(&hs->h[i], &hs->h[i + 1],
			(hs->n - i - 1) * sizeof(*hs->h));
		hs->n--;
		return 0;
	}
	return -ENOENT;
}

int sd_holds_remove(struct djmfs_client *c, const char *name, uint32_t id)
{
	return holds_change(c, name, remove_one, &id);
}

int sd_holds_drop(struct djmfs_client *c, const char *name)
{
	char fname[SD_NAME_MAX + sizeof(SD_HOLDS_SUFFIX)];
	int err = holds_file(name, fname, sizeof(fname));

	if (err == 0)
		err = djmfs_unlink(c, fname);
	return err == -ENOENT ? 0 : err;
}

int64_t sd_holds_first_start(const struct sd_holds *hs)
{
	return hs->n ? hs->h[0].start_ns : INT64_MAX;
}
