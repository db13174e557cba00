/*
 * Tests for libdjmfs, the client, against a real server started in this
 * process on a temporary volume (a Unix socket in a mkdtemp directory):
 * files and objects, the object pointer, the data path across unit
 * boundaries with unaligned sizes, what readers see before and after a
 * publish, frozen snapshots, the single writer, a full volume, a full
 * host file system under the volume file (as root: a small tmpfs),
 * asynchronous operations (readers opened and closed without waiting
 * among them), appends in place from the caller's blocks,
 * the metadata-only mode, a lost server, a
 * data path thread that sleeps while the device works, and trims (a
 * frozen reader keeps reading what was trimmed, others get ENODATA).
 * Tests that move data skip when the machine has no io_uring.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "djmfs.h"
#include "djmfs_server.h"
#include "server_env.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define AU (64 * KIB)

static struct server_env env;
static char host_dir[64]; /* a tmpfs of the test's own, or "" */

/* A server on a new volume of @vol_size bytes, on the Unix socket and on
 * 127.0.0.1:0; @lease_ms 0 is the server's default. */
static void env_start(uint64_t vol_size, uint32_t lease_ms)
{
	const struct server_env_opts o = {
		.tag = "djmfs-client",
		.vol_size = vol_size,
		.au_size = AU,
		.lease_ms = lease_ms,
		.tcp = true,
	};

	server_env_start(&env, &o);
}

static void setup(void)
{
	env_start(64 * MIB, 0);
}

static void teardown(void)
{
	server_env_stop(&env);
	server_env_remove(&env);
	if (*host_dir) {
		if (umount2(host_dir, 0) < 0)
			umount2(host_dir, MNT_DETACH);
		rmdir(host_dir);
		*host_dir = '\0';
	}
}

/* Mounts a @mib MiB tmpfs on a new directory (host_dir), for a volume
 * file bigger than its host; skips the test when this process may not. */
static void host_mount(unsigned mib)
{
	char opt[32];
	int err;

	snprintf(host_dir, sizeof(host_dir), "/tmp/djmfs-host-XXXXXX");
	cr_assert_not_null(mkdtemp(host_dir));
	snprintf(opt, sizeof(opt), "size=%um", mib);
	if (mount("tmpfs", host_dir, "tmpfs", 0, opt) < 0) {
		err = errno;
		rmdir(host_dir);
		*host_dir = '\0';
		cr_skip_test("cannot mount a tmpfs: %s", strerror(err));
	}
}

static struct djmfs_client_opts opts(unsigned flags)
{
	return server_env_client_opts(&env, flags);
}

/* A connected client, or a skipped test when data I/O is impossible. */
static struct djmfs_client *client_flags(unsigned flags)
{
	return server_env_connect(&env, flags);
}

static struct djmfs_client *client(void)
{
	return client_flags(0);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

/* CRC-32C computed bit by bit, independent of the library's. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

/* The sums @r's image holds for object @id are the CRCs of @src's
 * @size bytes, per DJMFS_CSUM_BLOCK. */
static void expect_sums(struct djmfs_file *r, uint32_t id, const uint8_t *src,
			size_t size)
{
	size_t nb = size / DJMFS_CSUM_BLOCK, rest = size % DJMFS_CSUM_BLOCK;
	uint32_t *sums = calloc(nb + 1, sizeof(*sums)), last = 1;

	cr_assert_not_null(sums);
	cr_assert_eq(djmfs_obj_checksums(r, id, sums, nb + 1, &last),
		     (int)nb);
	for (size_t k = 0; k < nb; k++)
		cr_assert_eq(sums[k],
			     ref_crc32c(src + k * DJMFS_CSUM_BLOCK,
					DJMFS_CSUM_BLOCK),
			     "block %zu", k);
	cr_assert_eq(last, rest ? ref_crc32c(src + nb * DJMFS_CSUM_BLOCK, rest)
				: 0);
	free(sums);
}

/* A writer handle on a new file with one SYNC DATA object. */
static struct djmfs_file *new_stream(struct djmfs_client *c, const char *name,
				     uint32_t *id)
{
	struct djmfs_file *w = NULL;

	cr_assert_eq(djmfs_open(c, name, DJMFS_O_READ | DJMFS_O_WRITE |
					      DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
						 DJMFS_ATTR_SYNC, id), 0);
	return w;
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

Test(client, creates_opens_lists_and_unlinks_files)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w = NULL, *r = NULL;
	struct djmfs_file_info fi;
	struct djmfs_df df;
	struct djmfs_server_stats st;

	cr_assert_eq(djmfs_open(c, "a", DJMFS_O_READ, &r), -ENOENT);
	cr_assert_eq(djmfs_open(c, "a", DJMFS_O_WRITE | DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_open(c, "a", DJMFS_O_WRITE | DJMFS_O_CREATE |
					   DJMFS_O_EXCL, &r), -EEXIST);
	cr_assert_eq(djmfs_open(c, "a", DJMFS_O_READ | DJMFS_O_CREATE, &r),
		     -EINVAL);
	cr_assert_eq(djmfs_stat(c, "a", &fi), 0);
	cr_assert_str_eq(fi.name, "a");
	cr_assert(fi.flags & DJMFS_FILE_WRITE_LOCKED);
	cr_assert_eq(djmfs_close(w), 0);
	cr_assert_eq(djmfs_open(c, "a", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_df(c, &df), 0);
	cr_assert_eq(df.au_size, AU);
	cr_assert_eq(df.files, 1);
	cr_assert_eq(djmfs_server_stats(c, &st), 0);
	cr_assert_geq(st.sessions, 1);
	cr_assert_eq(djmfs_unlink(c, "a"), 0);
	cr_assert_eq(djmfs_stat(c, "a", &fi), -ENOENT);
	djmfs_disconnect(c);
}

struct names {
	int n;
	char name[8][DJMFS_NAME_MAX + 1];
};

static int collect(void *arg, const struct djmfs_file_info *fi)
{
	struct names *ns = arg;

	snprintf(ns->name[ns->n++], sizeof(ns->name[0]), "%s", fi->name);
	return ns->n == 8;
}

Test(client, lists_files_by_prefix_in_name_order)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	const char *names[] = { "cam/2", "cam/1", "mic/1", "cam/3" };
	struct names ns = { 0 };

	for (int i = 0; i < 4; i++) {
		struct djmfs_file *w = NULL;

		cr_assert_eq(djmfs_open(c, names[i], DJMFS_O_WRITE |
							     DJMFS_O_CREATE,
					&w), 0);
		cr_assert_eq(djmfs_close(w), 0);
	}
	cr_assert_eq(djmfs_list(c, "cam/", collect, &ns), 0);
	cr_assert_eq(ns.n, 3);
	cr_assert_str_eq(ns.name[0], "cam/1");
	cr_assert_str_eq(ns.name[2], "cam/3");
	djmfs_disconnect(c);
}

Test(client, manages_objects_and_refuses_a_second_sync_object)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w = NULL, *r = NULL;
	uint32_t hdr, data, idx, id;
	unsigned attrs;
	struct djmfs_file_info fi;

	cr_assert_eq(djmfs_open(c, "rec", DJMFS_O_WRITE | DJMFS_O_CREATE, &w),
		     0);
	cr_assert_eq(djmfs_create_obj(w, "header", DJMFS_ATTR_META, &hdr), 0);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
						 DJMFS_ATTR_SYNC, &data), 0);
	cr_assert_eq(djmfs_create_obj(w, "index", DJMFS_ATTR_DATA |
						  DJMFS_ATTR_SYNC, &idx),
		     -EEXIST);
	cr_assert_eq(djmfs_create_obj(w, "index", DJMFS_ATTR_DATA, &idx), 0);
	cr_assert_eq(djmfs_create_obj(w, "header", DJMFS_ATTR_DATA, &id),
		     -EEXIST);
	cr_assert_eq(djmfs_create_obj(w, "bad", DJMFS_ATTR_META |
						DJMFS_ATTR_SYNC, &id),
		     -EINVAL);
	cr_assert_eq(djmfs_find_obj(w, "index", &id), 0);
	cr_assert_eq(id, idx);
	cr_assert_eq(djmfs_get_attr(w, data, &attrs), 0);
	cr_assert_eq(attrs, DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC);
	cr_assert_eq(djmfs_set_attr(w, data, DJMFS_ATTR_DATA), 0);
	cr_assert_eq(djmfs_set_attr(w, idx, DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC),
		     0);
	cr_assert_eq(djmfs_set_attr(w, hdr, DJMFS_ATTR_DATA), -EINVAL);
	cr_assert_eq(djmfs_delete_obj(w, data), 0);
	cr_assert_eq(djmfs_find_obj(w, "data", &id), -ENOENT);
	cr_assert_eq(djmfs_get_attr(w, data, &attrs), -ENOENT);

	/* Object changes take effect at once: a reader sees them. */
	cr_assert_eq(djmfs_open(c, "rec", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_file_info(r, &fi), 0);
	cr_assert_eq(fi.n_objs, 2);
	cr_assert_str_eq(fi.objs[0].name, "header");
	cr_assert_str_eq(fi.objs[1].name, "index");
	cr_assert_eq(fi.objs[1].attrs, DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC);
	cr_assert_eq(djmfs_create_obj(r, "x", DJMFS_ATTR_META, &id), -EBADF);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, keeps_the_object_pointer_rules)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w = NULL;
	uint32_t hdr, data, id;
	uint64_t off;
	char buf[16];

	cr_assert_eq(djmfs_open(c, "p", DJMFS_O_READ | DJMFS_O_WRITE |
					   DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_get_objptr(w, &id, &off), -ENOENT);
	cr_assert_eq(djmfs_write(w, "x", 1), -EINVAL);
	cr_assert_eq(djmfs_create_obj(w, "header", DJMFS_ATTR_META, &hdr), 0);
	cr_assert_eq(djmfs_get_objptr(w, &id, &off), 0);
	cr_assert_eq(id, hdr);
	cr_assert_eq(off, 0);
	cr_assert_eq(djmfs_write(w, "hello world", 11), 11);
	cr_assert_eq(djmfs_set_objptr(w, hdr, 12), -EINVAL);
	cr_assert_eq(djmfs_set_objptr(w, hdr, 6), 0);
	cr_assert_eq(djmfs_write(w, "WORLD!", 6), 6);
	cr_assert_eq(djmfs_get_objptr(w, &id, &off), 0);
	cr_assert_eq(off, 12);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA, &data), 0);
	cr_assert_eq(djmfs_write(w, "abc", 3), 3);
	cr_assert_eq(djmfs_set_objptr(w, data, 0), -EINVAL);
	cr_assert_eq(djmfs_set_objptr(w, data, 3), 0);
	cr_assert_eq(djmfs_set_objptr(w, 999, 0), -ENOENT);
	/* META bytes are published whole; nothing visible before. */
	cr_assert_eq(djmfs_pread_obj(w, hdr, buf, sizeof(buf), 0), 0);
	cr_assert_eq(djmfs_flush(w), 0);
	cr_assert_eq(djmfs_pread_obj(w, hdr, buf, sizeof(buf), 0), 12);
	cr_assert_eq(memcmp(buf, "hello WORLD!", 12), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, round_trips_unaligned_writes_across_unit_boundaries)
{
	struct djmfs_client *c = client();
	static const size_t sizes[] = { 1, 4095, 65536, 100000, 3, 200000 };
	size_t total = 0, n = sizeof(sizes) / sizeof(sizes[0]);
	struct djmfs_file *w, *r = NULL;
	struct djmfs_file_info fi;
	uint8_t *src = malloc(400000), *dst = malloc(400000);
	uint32_t id;

	w = new_stream(c, "s", &id);
	fill(src, 400000, 7);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(djmfs_write(w, src + total, sizes[i]),
			     (ssize_t)sizes[i]);
		total += sizes[i];
	}
	cr_assert_eq(djmfs_open(c, "s", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_file_info(r, &fi), 0);
	cr_assert_eq(fi.objs[0].size, total);
	cr_assert_geq(fi.objs[0].n_extents, 1);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 400000, 0), (ssize_t)total);
	cr_assert_eq(memcmp(src, dst, total), 0);
	/* Unaligned pieces in the middle, one crossing a unit boundary. */
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 70001, AU - 5), 70001);
	cr_assert_eq(memcmp(src + AU - 5, dst, 70001), 0);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 10, total - 4), 4);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 10, total + 4), 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);

	/* A new writer continues where the last one stopped. */
	cr_assert_eq(djmfs_open(c, "s", DJMFS_O_READ | DJMFS_O_WRITE, &w), 0);
	cr_assert_eq(djmfs_set_objptr(w, id, total), 0);
	cr_assert_eq(djmfs_write(w, src + total, 5000), 5000);
	total += 5000;
	cr_assert_eq(djmfs_pread(w, dst, 400000, 0), (ssize_t)total);
	cr_assert_eq(memcmp(src, dst, total), 0);
	cr_assert_eq(djmfs_close(w), 0);
	free(src);
	free(dst);
	djmfs_disconnect(c);
}

Test(client, reads_by_file_offset_across_objects)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w = NULL;
	uint32_t hdr, data;
	uint8_t src[10000], dst[10100];

	cr_assert_eq(djmfs_open(c, "f", DJMFS_O_READ | DJMFS_O_WRITE |
					   DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_create_obj(w, "header", DJMFS_ATTR_META, &hdr), 0);
	cr_assert_eq(djmfs_write(w, "HEAD", 4), 4);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
						 DJMFS_ATTR_SYNC, &data), 0);
	fill(src, sizeof(src), 3);
	cr_assert_eq(djmfs_write(w, src, sizeof(src)), (ssize_t)sizeof(src));
	cr_assert_eq(djmfs_pread(w, dst, sizeof(dst), 0), 10004);
	cr_assert_eq(memcmp(dst, "HEAD", 4), 0);
	cr_assert_eq(memcmp(dst + 4, src, sizeof(src)), 0);
	cr_assert_eq(djmfs_pread(w, dst, 6, 2), 6);
	cr_assert_eq(memcmp(dst, "AD", 2), 0);
	cr_assert_eq(memcmp(dst + 2, src, 4), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, reader_sees_only_what_a_sync_write_published)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w = NULL, *r = NULL;
	struct djmfs_file_info fi;
	uint32_t data, idx;
	uint8_t src[9000], dst[9000];

	w = new_stream(c, "live", &data);
	cr_assert_eq(djmfs_create_obj(w, "index", DJMFS_ATTR_DATA, &idx), 0);
	cr_assert_eq(djmfs_open(c, "live", DJMFS_O_READ, &r), 0);
	fill(src, sizeof(src), 11);
	cr_assert_eq(djmfs_write(w, src, 100), 100); /* index: staged */
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 0);
	cr_assert_eq(djmfs_pread(r, dst, sizeof(dst), 0), 0);

	cr_assert_eq(djmfs_set_objptr(w, data, 0), 0);
	cr_assert_eq(djmfs_write(w, src + 100, 8000), 8000); /* publishes */
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.objs[0].size, 8000);
	cr_assert_eq(fi.objs[1].size, 100);
	cr_assert_eq(djmfs_pread_obj(r, data, dst, sizeof(dst), 0), 8000);
	cr_assert_eq(memcmp(dst, src + 100, 8000), 0);
	cr_assert_eq(djmfs_pread_obj(r, idx, dst, sizeof(dst), 0), 100);
	cr_assert_eq(memcmp(dst, src, 100), 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, lock_snap_freezes_the_image_while_the_writer_appends)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w, *r = NULL;
	struct djmfs_file_info fi;
	uint8_t src[3 * AU], dst[3 * AU];
	uint32_t id;

	fill(src, sizeof(src), 5);
	w = new_stream(c, "frozen", &id);
	cr_assert_eq(djmfs_write(w, src, 5000), 5000);
	cr_assert_eq(djmfs_open(c, "frozen", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_lock_snap(r, 10000, &fi), 0);
	cr_assert(fi.flags & DJMFS_FILE_SNAP_LOCKED);
	cr_assert_eq(fi.size, 5000);
	cr_assert_eq(djmfs_write(w, src + 5000, 2 * AU), (ssize_t)(2 * AU));
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 5000);
	cr_assert_eq(djmfs_pread(r, dst, sizeof(dst), 0), 5000);
	cr_assert_eq(memcmp(dst, src, 5000), 0);
	cr_assert_eq(djmfs_unlock_snap(r), 0);
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 5000 + 2 * AU);
	cr_assert_eq(djmfs_pread(r, dst, sizeof(dst), 0), 5000 + 2 * AU);
	cr_assert_eq(memcmp(dst, src, 5000 + 2 * AU), 0);
	cr_assert_eq(djmfs_lock_snap(w, 0, NULL), -EBADF);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, refuses_a_second_writer_with_ebusy)
{
	struct djmfs_client *c1 = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_client *c2 = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w = NULL, *w2 = NULL;
	char buf[1];

	cr_assert_eq(djmfs_open(c1, "one", DJMFS_O_WRITE | DJMFS_O_CREATE, &w),
		     0);
	cr_assert_eq(djmfs_open(c2, "one", DJMFS_O_WRITE, &w2), -EBUSY);
	cr_assert_eq(djmfs_write(w, "x", 1), -EINVAL); /* no object yet */
	cr_assert_eq(djmfs_pread(w, buf, 1, 0), -EBADF); /* write-only */
	cr_assert_eq(djmfs_close(w), 0);
	cr_assert_eq(djmfs_open(c2, "one", DJMFS_O_WRITE, &w2), 0);
	djmfs_disconnect(c2); /* closes w2 */
	djmfs_disconnect(c1);
}

Test(client, enospc_on_a_full_volume_keeps_earlier_data)
{
	struct djmfs_client *c;
	struct djmfs_file *w, *r = NULL;
	uint8_t *src = malloc(4 * MIB), *dst = malloc(4 * MIB);
	size_t total = 0;
	ssize_t n;
	uint32_t id;

	teardown();
	env_start(9 * MIB, 0); /* 16 units of 64 KiB, two metadata copies */
	c = client();
	fill(src, 4 * MIB, 9);
	w = new_stream(c, "big", &id);
	while ((n = djmfs_write(w, src + total, 50000)) == 50000)
		total += 50000;
	cr_assert_eq(n, -ENOSPC);
	cr_assert_gt(total, 0);
	cr_assert_leq(total, 16 * AU);
	cr_assert_eq(djmfs_open(c, "big", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_pread(r, dst, 4 * MIB, 0), (ssize_t)total);
	cr_assert_eq(memcmp(src, dst, total), 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	free(src);
	free(dst);
	djmfs_disconnect(c);
}

/* Reads "big" back: its first @len bytes are @src's. */
static void expect_big(struct djmfs_client *c, const uint8_t *src,
		       size_t len)
{
	struct djmfs_file *r = NULL;
	uint8_t *dst = malloc(len + 1);

	cr_assert_eq(djmfs_open(c, "big", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_pread(r, dst, len + 1, 0), (ssize_t)len);
	cr_assert_eq(memcmp(src, dst, len), 0);
	cr_assert_eq(djmfs_close(r), 0);
	free(dst);
}

Test(client, a_full_host_is_enospc_and_the_server_restarts_read_only)
{
	const size_t step = 256 * KIB, max = 16 * MIB;
	struct server_env_opts o = {
		.tag = "djmfs-full", /* under host_dir: short */
		/* sparse but for its 2 x 4 MiB of metadata, in a 14 MiB
		 * tmpfs */
		.vol_size = 32 * MIB,
		.au_size = AU,
		.parent = host_dir,
	};
	struct djmfs_client *c;
	struct djmfs_file *w = NULL;
	struct djmfs_io_stats st;
	uint8_t *src = malloc(max);
	size_t total = 0;
	ssize_t n = 0;
	uint32_t id;

	teardown();
	host_mount(14);
	server_env_start(&env, &o);
	c = client();
	fill(src, max, 11);
	w = new_stream(c, "big", &id);
	while (total < max && (n = djmfs_write(w, src + total, step)) ==
				      (ssize_t)step)
		total += step;
	/* The host's word, not a failing disk's. */
	cr_assert_eq(n, -ENOSPC, "the write that met a full host: %zd (%s)",
		     n, n < 0 ? strerror((int)-n) : "no error");
	cr_assert_gt(total, 0);
	djmfs_io_stats(c, &st);
	cr_assert_gt(st.nospace, 0);
	expect_big(c, src, total);
	djmfs_close(w);
	djmfs_disconnect(c);

	/* Still full: the server comes back read-only and serves reads. */
	server_env_stop(&env);
	server_env_serve_again(&env, &o);
	cr_assert_eq(djmfs_server_read_only(env.srv), 1);
	c = client();
	expect_big(c, src, total);
	w = NULL;
	cr_assert_eq(djmfs_open(c, "big", DJMFS_O_READ | DJMFS_O_WRITE, &w),
		     -EROFS);
	cr_assert_eq(djmfs_open(c, "new", DJMFS_O_READ | DJMFS_O_WRITE |
						  DJMFS_O_CREATE, &w), -EROFS);
	cr_assert_eq(djmfs_unlink(c, "big"), -EROFS);
	expect_big(c, src, total);
	djmfs_disconnect(c);
	free(src);
}

struct order {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;
	int seq[64];
	ssize_t res[64];
};

static struct order ord = { PTHREAD_MUTEX_INITIALIZER,
			    PTHREAD_COND_INITIALIZER, 0, { 0 }, { 0 } };

static void note(void *user, ssize_t res)
{
	pthread_mutex_lock(&ord.mu);
	ord.seq[ord.n] = (int)(intptr_t)user;
	ord.res[ord.n] = res;
	ord.n++;
	pthread_cond_broadcast(&ord.cv);
	pthread_mutex_unlock(&ord.mu);
}

static void wait_for(int n)
{
	pthread_mutex_lock(&ord.mu);
	while (ord.n < n)
		pthread_cond_wait(&ord.cv, &ord.mu);
	pthread_mutex_unlock(&ord.mu);
}

Test(client, async_writes_and_reads_complete_in_order_with_deadlines)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w;
	struct djmfs_io_stats st;
	static uint8_t src[20 * 10000], dst[20 * 10000];
	uint32_t id;

	fill(src, sizeof(src), 21);
	w = new_stream(c, "async", &id);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(djmfs_write_async(w, src + i * 10000, 10000,
					       djmfs_now() + 2000000000ull,
					       note, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(djmfs_pread_async(w, dst + i * 10000, 10000,
					       i * 10000,
					       djmfs_now() + 2000000000ull,
					       note, (void *)(intptr_t)(20 + i)),
			     0);
	cr_assert_eq(djmfs_sync_snap_async(w, note, (void *)(intptr_t)40), 0);
	wait_for(41);
	for (int i = 0; i < 41; i++) {
		cr_assert_eq(ord.seq[i], i);
		cr_assert_eq(ord.res[i], i == 40 ? 0 : 10000);
	}
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	djmfs_io_stats(c, &st);
	cr_assert_gt(st.requests, 0);
	cr_assert_gt(st.deadline_requests, 0);
	cr_assert_gt(st.bytes, 0);
	cr_assert_eq(djmfs_write_async(w, src, 1, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, reads_one_object_asynchronously)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w;
	uint8_t meta[100], src[30000], dst[30000];
	uint32_t mid, did;

	fill(src, sizeof(src), 5);
	memset(meta, 'm', sizeof(meta));
	cr_assert_eq(djmfs_open(c, "objasync", DJMFS_O_READ | DJMFS_O_WRITE |
					       DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_create_obj(w, "header", DJMFS_ATTR_META, &mid), 0);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
						 DJMFS_ATTR_SYNC, &did), 0);
	cr_assert_eq(djmfs_set_objptr(w, mid, 0), 0);
	cr_assert_eq(djmfs_write(w, meta, sizeof(meta)), (ssize_t)sizeof(meta));
	cr_assert_eq(djmfs_set_objptr(w, did, 0), 0);
	cr_assert_eq(djmfs_write(w, src, sizeof(src)), (ssize_t)sizeof(src));
	/* Object offsets, not file offsets: the META bytes come first in
	 * the file but not in the object. */
	cr_assert_eq(djmfs_pread_obj_async(w, did, dst, 1000, 0,
					   djmfs_now() + 1000000000ull, note,
					   (void *)(intptr_t)0), 0);
	cr_assert_eq(djmfs_pread_obj_async(w, did, dst + 1000, 29000, 1000, 0,
					   note, (void *)(intptr_t)1), 0);
	wait_for(2);
	cr_assert_eq(ord.res[0], 1000);
	cr_assert_eq(ord.res[1], 29000);
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	/* A missing object is reported through the callback. */
	cr_assert_eq(djmfs_pread_obj_async(w, 99, dst, 1, 0, 0, note,
					   (void *)(intptr_t)2), 0);
	wait_for(3);
	cr_assert_eq(ord.res[2], -ENOENT);
	cr_assert_eq(djmfs_pread_obj_async(w, did, dst, 1, 0, 0, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, the_pointer_returns_to_an_object_with_writes_in_flight)
{
	struct djmfs_client *c = client();
	struct djmfs_file *w;
	static uint8_t a[65536], b[64], dst[65536 * 2];
	uint32_t did, xid;

	fill(a, sizeof(a), 3);
	fill(b, sizeof(b), 4);
	cr_assert_eq(djmfs_open(c, "interleave", DJMFS_O_READ | DJMFS_O_WRITE |
					       DJMFS_O_CREATE, &w), 0);
	cr_assert_eq(djmfs_create_obj(w, "data", DJMFS_ATTR_DATA |
						 DJMFS_ATTR_SYNC, &did), 0);
	cr_assert_eq(djmfs_create_obj(w, "index", DJMFS_ATTR_DATA, &xid), 0);
	cr_assert_eq(djmfs_set_objptr(w, did, 0), 0);
	cr_assert_eq(djmfs_write_async(w, a, sizeof(a), 0, note,
				       (void *)(intptr_t)0), 0);
	cr_assert_eq(djmfs_set_objptr(w, xid, 0), 0);
	cr_assert_eq(djmfs_write_async(w, b, sizeof(b), 0, note,
				       (void *)(intptr_t)1), 0);
	/* The data object's end counts the write still in flight. */
	cr_assert_eq(djmfs_set_objptr(w, did, 0), -EINVAL);
	cr_assert_eq(djmfs_set_objptr(w, did, sizeof(a)), 0);
	cr_assert_eq(djmfs_write_async(w, a, sizeof(a), 0, note,
				       (void *)(intptr_t)2), 0);
	wait_for(3);
	for (int i = 0; i < 3; i++)
		cr_assert_gt(ord.res[i], 0);
	cr_assert_eq(djmfs_pread_obj(w, did, dst, sizeof(dst), 0),
		     (ssize_t)sizeof(dst));
	cr_assert_eq(memcmp(dst, a, sizeof(a)), 0);
	cr_assert_eq(memcmp(dst + sizeof(a), a, sizeof(a)), 0);
	cr_assert_eq(djmfs_pread_obj(w, xid, dst, sizeof(b), 0),
		     (ssize_t)sizeof(b));
	cr_assert_eq(memcmp(dst, b, sizeof(b)), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

/* Completions of a batch of appends, each expecting its length. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n, wrong;
} batch = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

static void batch_done(void *user, ssize_t res)
{
	pthread_mutex_lock(&batch.mu);
	batch.wrong += res != (ssize_t)(uintptr_t)user;
	batch.n++;
	pthread_cond_broadcast(&batch.cv);
	pthread_mutex_unlock(&batch.mu);
}

static void batch_wait(int n)
{
	pthread_mutex_lock(&batch.mu);
	while (batch.n < n)
		pthread_cond_wait(&batch.cv, &batch.mu);
	pthread_mutex_unlock(&batch.mu);
}

#define IA DJMFS_IO_ALIGN

Test(client, appends_in_place_from_the_callers_blocks)
{
	enum { N = 240, BATCH = 8, MAXLEN = 20000 };
	struct djmfs_client *c = client();
	struct djmfs_file *w, *r = NULL;
	struct djmfs_io_stats st;
	size_t cap = N * MAXLEN + 2 * IA, size = 0, copied = 0;
	uint8_t *src, *dst = malloc(cap), *blk[BATCH];
	uint64_t s = 0x9e3779b97f4a7c15ull;
	uint32_t id, mid;

	cr_assert_eq(posix_memalign((void **)&src, IA, cap), 0);
	for (int i = 0; i < BATCH; i++)
		cr_assert_eq(posix_memalign((void **)&blk[i], IA,
					    MAXLEN + 2 * IA), 0);
	fill(src, cap, 11);
	w = new_stream(c, "inplace", &id);
	cr_assert_eq(djmfs_set_objptr(w, id, 0), 0);
	for (int i = 0; i < N; i++) {
		size_t len, head = size % IA, end;
		int k = i % BATCH;

		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		len = s % 7 == 0 ? (1 + s % 4) * IA : 1 + s % MAXLEN;
		end = size + len;
		if (k == 0 && i > 0)
			batch_wait(i);
		if (s % 5 == 0) { /* an ordinary append in between */
			cr_assert_eq(djmfs_write_async(w, src + size, len, 0,
						       batch_done,
						       (void *)(uintptr_t)len),
				     0);
			if (head || len % IA)
				copied += head + len;
		} else {
			/* The head and the new bytes, then junk to the
			 * block's end, past the object's. */
			memcpy(blk[k], src + size - head, head + len);
			memset(blk[k] + head + len, 0xa5,
			       (end + IA - 1) / IA * IA - end);
			cr_assert_eq(djmfs_write_inplace_async(
					     w, blk[k], head, len, 0,
					     batch_done,
					     (void *)(uintptr_t)len), 0);
		}
		size = end;
	}
	batch_wait(N);
	cr_assert_eq(batch.wrong, 0);
	djmfs_io_stats(c, &st);
	cr_assert_eq(st.copied_bytes, copied, "only ordinary appends copy");

	/* Misuse changes nothing: the pointer stays at the end. */
	cr_assert_eq(djmfs_write_inplace_async(w, blk[0] + 1, size % IA, 1, 0,
					       batch_done, (void *)1), -EINVAL);
	cr_assert_eq(djmfs_write_inplace_async(w, blk[0], (size + 1) % IA, 1,
					       0, batch_done, (void *)1),
		     -EINVAL);
	cr_assert_eq(djmfs_write_inplace_async(w, blk[0], size % IA, 1, 0,
					       NULL, NULL), -EINVAL);
	cr_assert_eq(djmfs_create_obj(w, "meta", DJMFS_ATTR_META, &mid), 0);
	cr_assert_eq(djmfs_set_objptr(w, mid, 0), 0);
	cr_assert_eq(djmfs_write_inplace_async(w, blk[0], 0, 1, 0, batch_done,
					       (void *)1), -EINVAL);
	cr_assert_eq(djmfs_set_objptr(w, id, size), 0);
	/* An ordinary append after an in-place one finds the last block. */
	cr_assert_eq(djmfs_write(w, src + size, 3), 3);
	size += 3;
	cr_assert_eq(djmfs_close(w), 0);

	cr_assert_eq(djmfs_open(c, "inplace", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, cap, 0), (ssize_t)size);
	cr_assert_eq(memcmp(dst, src, size), 0);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 10, size - 2), 2);
	/* The server's sums, from a fresh OPEN, are those of the bytes. */
	expect_sums(r, id, src, size);
	cr_assert_eq(djmfs_obj_checksums(r, mid, NULL, 0, NULL), -EINVAL);
	cr_assert_eq(djmfs_obj_checksums(r, 99, NULL, 0, NULL), -ENOENT);
	cr_assert_eq(djmfs_close(r), 0);
	for (int i = 0; i < BATCH; i++)
		free(blk[i]);
	free(src);
	free(dst);
	djmfs_disconnect(c);
}

Test(client, checksums_follow_the_bytes_across_publishes_and_deltas)
{
	enum { SIZE = 5 * DJMFS_CSUM_BLOCK + 777, EXTRA = 100000 };
	struct djmfs_client *c = client();
	struct djmfs_file *w, *r = NULL;
	uint8_t *src = malloc(SIZE + EXTRA);
	size_t at = 0, step = 9000;
	uint32_t id;

	fill(src, SIZE, 5);
	w = new_stream(c, "sums", &id);
	cr_assert_eq(djmfs_set_objptr(w, id, 0), 0);
	cr_assert_eq(djmfs_open(c, "sums", DJMFS_O_READ, &r), 0);
	/* Unaligned appends, each published (SYNC object); the reader
	 * follows by deltas, which carry only the new sums. */
	while (at < SIZE) {
		size_t n = SIZE - at < step ? SIZE - at : step;

		cr_assert_eq(djmfs_write(w, src + at, n), (ssize_t)n);
		at += n;
		step = step * 3 / 2;
		cr_assert_eq(djmfs_sync_snap(r, NULL), 0);
		expect_sums(r, id, src, at);
	}
	expect_sums(w, id, src, SIZE);
	cr_assert_eq(djmfs_close(w), 0);
	/* A writer that reopens the object chains on from the partial
	 * last cblock's sum the server sent, without reading it. */
	cr_assert_eq(djmfs_open(c, "sums", DJMFS_O_READ | DJMFS_O_WRITE, &w),
		     0);
	cr_assert_eq(djmfs_set_objptr(w, id, SIZE), 0);
	fill(src + SIZE, EXTRA, 6);
	cr_assert_eq(djmfs_write(w, src + SIZE, EXTRA), EXTRA);
	cr_assert_eq(djmfs_close(w), 0);
	cr_assert_eq(djmfs_sync_snap(r, NULL), 0);
	expect_sums(r, id, src, SIZE + EXTRA);
	cr_assert_eq(djmfs_close(r), 0);
	free(src);
	djmfs_disconnect(c);
}

/* Volume offset of byte @at of object @id in @r's image. */
static uint64_t phys_of(struct djmfs_file *r, uint32_t id, uint64_t at)
{
	struct djmfs_extent e[64];
	int n = djmfs_obj_extents(r, id, e, 64);

	cr_assert_gt(n, 0);
	cr_assert_leq(n, 64);
	for (int i = 0; i < n; i++) {
		if (at < e[i].len)
			return e[i].offset + at;
		at -= e[i].len;
	}
	cr_assert_fail("offset past the map");
	return 0;
}

/* Flips every bit of the byte at volume offset @off of the volume file
 * (a buffered write: the client's O_DIRECT read writes it back first). */
static void flip(uint64_t off)
{
	int fd = open(env.vol, O_RDWR);
	uint8_t b;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0xff;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
}

Test(client, a_flipped_byte_fails_the_read_with_eio_after_one_retry)
{
	enum { SIZE = 3 * DJMFS_CSUM_BLOCK + 3392, BAD = 70000,
	       TAILBAD = 3 * DJMFS_CSUM_BLOCK + 100 };
	struct djmfs_client *c = client();
	struct djmfs_file *w, *r = NULL;
	struct djmfs_client_stats st;
	uint8_t *src = malloc(SIZE), *dst = malloc(SIZE);
	uint32_t id;

	fill(src, SIZE, 21);
	w = new_stream(c, "flip", &id);
	cr_assert_eq(djmfs_set_objptr(w, id, 0), 0);
	cr_assert_eq(djmfs_write(w, src, SIZE), SIZE);
	cr_assert_eq(djmfs_close(w), 0);
	cr_assert_eq(djmfs_open(c, "flip", DJMFS_O_READ, &r), 0);

	/* Intact: every byte read is checked, whole cblocks or not. */
	cr_assert_eq(djmfs_pread_obj(r, id, dst, SIZE, 0), SIZE);
	cr_assert_eq(memcmp(dst, src, SIZE), 0);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 1000, 65000), 1000);
	cr_assert_eq(memcmp(dst, src + 65000, 1000), 0);
	djmfs_client_stats(c, &st);
	cr_assert_eq(st.csum_verified_bytes, SIZE + 2 * DJMFS_CSUM_BLOCK);
	cr_assert_eq(st.csum_unverified_bytes, 0);
	cr_assert_eq(st.csum_mismatches + st.csum_errors, 0);

	/* One byte of cblock 1 flipped on the volume. */
	flip(phys_of(r, id, BAD));
	memset(dst, 0, SIZE);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, SIZE, 0), -EIO);
	cr_assert_eq(dst[BAD], 0, "the flipped byte is not handed out");
	djmfs_client_stats(c, &st);
	cr_assert_eq(st.csum_mismatches, 1);
	cr_assert_eq(st.csum_errors, 1);
	cr_assert_eq(st.csum_retry_ok, 0);
	/* A small read inside it fails too; one beside it does not. */
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 10, BAD - 5), -EIO);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 1000, 0), 1000);
	cr_assert_eq(memcmp(dst, src, 1000), 0);
	djmfs_client_stats(c, &st);
	cr_assert_eq(st.csum_errors, 2);
	/* Flipped back, it reads again. */
	flip(phys_of(r, id, BAD));
	cr_assert_eq(djmfs_pread_obj(r, id, dst, SIZE, 0), SIZE);
	cr_assert_eq(memcmp(dst, src, SIZE), 0);

	/* The partial last cblock is checked against its own sum. */
	flip(phys_of(r, id, TAILBAD));
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 10, SIZE - 10), -EIO);
	cr_assert_eq(djmfs_pread(r, dst, 100, 0), 100);
	djmfs_client_stats(c, &st);
	cr_assert_eq(st.csum_errors, 3);
	cr_assert_eq(st.csum_mismatches, 3);
	cr_assert_eq(djmfs_close(r), 0);
	free(src);
	free(dst);
	djmfs_disconnect(c);
}

Test(client, changes_the_data_paths_scheduler_at_run_time)
{
	struct djmfs_client *c = client();
	struct djmfs_io_knobs k;
	struct djmfs_file *w;
	uint8_t src[8192], dst[8192];
	uint32_t id;

	djmfs_get_io(c, &k);
	cr_assert_str_eq(k.policy, "glmd");
	cr_assert_gt(k.depth, 0);
	cr_assert_eq(djmfs_set_io(c, "edf", IOSCHED_TEST_PROFILE_DIR
				  "/nvme.profile", 4), 0);
	djmfs_get_io(c, &k);
	cr_assert_str_eq(k.policy, "edf");
	cr_assert_eq(k.depth, 4);
	cr_assert(strstr(k.profile, "nvme") != NULL);
	/* A refused change leaves everything as it was. */
	cr_assert_eq(djmfs_set_io(c, "no-such-policy", NULL, 0), -EINVAL);
	cr_assert_eq(djmfs_set_io(c, NULL, "/nonexistent.profile", 0),
		     -ENOENT);
	cr_assert_eq(djmfs_set_io(c, "scan", NULL, 100000), -EINVAL);
	djmfs_get_io(c, &k);
	cr_assert_str_eq(k.policy, "edf");
	cr_assert_eq(k.depth, 4);
	/* And I/O still flows under the new settings. */
	fill(src, sizeof(src), 9);
	w = new_stream(c, "setio", &id);
	cr_assert_eq(djmfs_write(w, src, sizeof(src)), (ssize_t)sizeof(src));
	cr_assert_eq(djmfs_pread(w, dst, sizeof(dst), 0), (ssize_t)sizeof(dst));
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, no_data_io_mode_keeps_every_metadata_operation)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w, *r = NULL;
	struct djmfs_file_info fi;
	struct djmfs_df df;
	uint8_t src[70000], dst[70000];
	uint32_t id;

	memset(src, 0xab, sizeof(src));
	w = new_stream(c, "meta-only", &id);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(djmfs_write(w, src, sizeof(src)),
			     (ssize_t)sizeof(src));
	cr_assert_eq(djmfs_df(c, &df), 0);
	cr_assert_lt(df.free_aus, df.total_aus);
	cr_assert_eq(djmfs_open(c, "meta-only", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_file_info(r, &fi), 0);
	cr_assert_eq(fi.objs[0].size, 4 * sizeof(src));
	cr_assert_eq(djmfs_pread(r, dst, sizeof(dst), 1000),
		     (ssize_t)sizeof(dst));
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

/* What the asynchronous opens and closes answered. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int opened, failed, closed;
	int last_err;
	struct djmfs_file *f[256];
} oc = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void opened(void *user, int err, struct djmfs_file *f)
{
	pthread_mutex_lock(&oc.mu);
	if (err == 0) {
		cr_assert_not_null(f);
		oc.f[(intptr_t)user] = f;
		oc.opened++;
	} else {
		cr_assert_null(f);
		oc.last_err = err;
		oc.failed++;
	}
	pthread_cond_broadcast(&oc.cv);
	pthread_mutex_unlock(&oc.mu);
}

static void closed(void *user, ssize_t res)
{
	(void)user;
	cr_assert_eq(res, 0);
	pthread_mutex_lock(&oc.mu);
	oc.closed++;
	pthread_cond_broadcast(&oc.cv);
	pthread_mutex_unlock(&oc.mu);
}

static void oc_wait(int *counter, int n)
{
	pthread_mutex_lock(&oc.mu);
	while (*counter < n)
		pthread_cond_wait(&oc.cv, &oc.mu);
	pthread_mutex_unlock(&oc.mu);
}

/* Two hundred readers opened at once without a thread each, every one
 * on the published image; a missing file answers -ENOENT through the
 * callback; writers are refused up front; closes go the same way. */
Test(client, opens_and_closes_readers_without_waiting)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file_info fi;
	struct djmfs_file *w;
	uint32_t id;
	const int n = 200;

	w = new_stream(c, "s", &id);
	cr_assert_eq(djmfs_write(w, "abcdef", 6), 6);
	cr_assert_eq(djmfs_flush(w), 0);
	cr_assert_eq(djmfs_open_async(c, "s", DJMFS_O_READ | DJMFS_O_WRITE,
				      opened, NULL), -EINVAL);
	cr_assert_eq(djmfs_open_async(c, "", DJMFS_O_READ, opened, NULL),
		     -EINVAL);
	for (intptr_t i = 0; i < n; i++)
		cr_assert_eq(djmfs_open_async(c, "s", DJMFS_O_READ, opened,
					      (void *)i), 0);
	cr_assert_eq(djmfs_open_async(c, "nothing", DJMFS_O_READ, opened,
				      NULL), 0);
	oc_wait(&oc.opened, n);
	oc_wait(&oc.failed, 1);
	cr_expect_eq(oc.last_err, -ENOENT);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(djmfs_file_info(oc.f[i], &fi), 0);
		cr_expect_eq(fi.size, 6, "reader %d sees %llu bytes", i,
			     (unsigned long long)fi.size);
	}
	cr_assert_eq(djmfs_close_async(w, closed, NULL), -EINVAL);
	for (int i = 0; i < n; i++)
		cr_assert_eq(djmfs_close_async(oc.f[i], closed, NULL), 0);
	oc_wait(&oc.closed, n);
	cr_assert_eq(djmfs_close(w), 0);
	/* Every handle went back: the writer could unlink at once. */
	cr_assert_eq(djmfs_unlink(c, "s"), 0);
	server_env_stop(&env);
	/* No connection and no reconnect to wait for: refused at once. */
	djmfs_disconnect(c);
}

Test(client, a_stopped_server_fails_calls_with_enotconn)
{
	struct djmfs_client_opts o = opts(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_client *c = NULL;
	struct djmfs_file *w;
	struct djmfs_file_info fi;
	uint32_t id;

	/* Without reconnects (test_reconnect.c has the waiting kind). */
	o.reconnect_ms = DJMFS_CLIENT_NO_RECONNECT;
	cr_assert_eq(djmfs_connect(&c, &o), 0);
	w = new_stream(c, "gone", &id);
	cr_assert_eq(djmfs_write(w, "abc", 3), 3);
	server_env_stop(&env);
	cr_assert_eq(djmfs_stat(c, "gone", &fi), -ENOTCONN);
	cr_assert_eq(djmfs_write(w, "def", 3), -ENOTCONN);
	cr_assert_eq(djmfs_close(w), -ENOTCONN);
	djmfs_disconnect(c);
}

Test(client, connect_fails_cleanly_without_a_server)
{
	struct djmfs_client_opts o = opts(0);
	struct djmfs_client *c = NULL;

	server_env_stop(&env);
	cr_assert_eq(djmfs_connect(&c, &o), -ENOENT);
	cr_assert_null(c);
}

Test(client, refuses_a_volume_that_is_not_the_servers)
{
	struct djmfs_client_opts o = opts(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_client *c = NULL;
	char other[160];

	snprintf(other, sizeof(other), "%s/other", env.dir);
	cr_assert_eq(djmfs_mkfs(other, 12 * MIB, AU, 0, &server_env_log), 0);
	o.volume = other;
	cr_assert_eq(djmfs_connect(&c, &o), -EXDEV);
	unlink(other);
}

Test(client, heartbeats_keep_an_idle_session_alive)
{
	struct djmfs_client *c;
	struct djmfs_file_info fi;
	struct djmfs_file *w = NULL;

	teardown();
	env_start(64 * MIB, 300); /* the server drops silent clients */
	c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	cr_assert_eq(djmfs_open(c, "hb", DJMFS_O_WRITE | DJMFS_O_CREATE, &w),
		     0);
	/* Real time: the server's lease and the heartbeats run on it. */
	usleep(800 * 1000);
	cr_assert_eq(djmfs_stat(c, "hb", &fi), 0);
	cr_assert(fi.flags & DJMFS_FILE_WRITE_LOCKED);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, a_snapshot_lock_ends_with_its_timeout)
{
	struct djmfs_client *c = client_flags(DJMFS_CLIENT_NO_DATA_IO);
	struct djmfs_file *w, *r = NULL;
	struct djmfs_file_info fi;
	uint32_t id;

	w = new_stream(c, "t", &id);
	cr_assert_eq(djmfs_write(w, "abc", 3), 3);
	cr_assert_eq(djmfs_open(c, "t", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_lock_snap(r, 200, &fi), 0);
	cr_assert_eq(djmfs_write(w, "def", 3), 3);
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 3);
	/* Real time: the server times the snapshot lock out on it. */
	usleep(300 * 1000);
	cr_assert_eq(djmfs_sync_snap(r, &fi), 0);
	cr_assert_eq(fi.size, 6);
	cr_assert_not(fi.flags & DJMFS_FILE_SNAP_LOCKED);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);
}

Test(client, connects_with_every_address_form)
{
	char addr[4][160];
	uint16_t port = djmfs_server_tcp_port(env.srv);

	cr_assert_gt(port, 0);
	snprintf(addr[0], sizeof(addr[0]), "unix:%s", env.sock);
	snprintf(addr[1], sizeof(addr[1]), "%s", env.sock);
	snprintf(addr[2], sizeof(addr[2]), "tcp:127.0.0.1:%u", port);
	snprintf(addr[3], sizeof(addr[3]), "localhost:%u", port);
	for (int i = 0; i < 4; i++) {
		struct djmfs_client_opts o = opts(DJMFS_CLIENT_NO_DATA_IO);
		struct djmfs_client *c = NULL;
		struct djmfs_df df;

		o.server = addr[i];
		cr_assert_eq(djmfs_connect(&c, &o), 0, "%s", addr[i]);
		cr_assert_eq(djmfs_df(c, &df), 0);
		djmfs_disconnect(c);
	}
}

Test(client, a_failed_append_fails_the_appends_queued_behind_it)
{
	struct djmfs_client_opts o = opts(0);
	struct djmfs_client *c = NULL, *rc = client();
	struct djmfs_file *w, *r = NULL;
	struct djmfs_io_stats st;
	static uint8_t src[4 * 64 * KIB], dst[4 * 64 * KIB];
	uint32_t id;

	/* Device requests 2, 4, ... fail: the second append's write. */
	o.inject_eio_every = 2;
	cr_assert_eq(djmfs_connect(&c, &o), 0);
	fill(src, sizeof(src), 5);
	w = new_stream(c, "chain", &id);
	cr_assert_eq(djmfs_set_objptr(w, id, 0), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(djmfs_write_async(w, src + i * 64 * KIB, 64 * KIB,
					       0, note, (void *)(intptr_t)i), 0);
	wait_for(3);
	cr_assert_eq(ord.res[0], 64 * KIB);
	cr_assert_eq(ord.res[1], -EIO);
	/* Written after B's failure, C would sit where B belongs. */
	cr_assert_eq(ord.res[2], -ECANCELED);
	djmfs_io_stats(c, &st);
	cr_assert_eq(st.errors, 1);
	/* The pointer is back at the object's real end: the next append
	 * (device request 3, which succeeds) continues it there. */
	cr_assert_eq(djmfs_write(w, src + 3 * 64 * KIB, 64 * KIB), 64 * KIB);
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);

	cr_assert_eq(djmfs_open(rc, "chain", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_pread(r, dst, sizeof(dst), 0), 128 * KIB);
	cr_assert_eq(memcmp(dst, src, 64 * KIB), 0);
	cr_assert_eq(memcmp(dst + 64 * KIB, src + 3 * 64 * KIB, 64 * KIB), 0);
	djmfs_close(r);
	djmfs_disconnect(rc);
}

/* The voluntary context switches of this process's thread named @comm
 * (exactly one must exist), from /proc/self/task/TID/status. */
static long thread_switches(const char *comm)
{
	char path[300], line[256], name[32];
	long found = -1;
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	cr_assert(d, "opendir /proc/self/task: %s", strerror(errno));
	while ((e = readdir(d))) {
		FILE *fp;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		fp = fopen(path, "r");
		if (!fp || !fgets(name, sizeof(name), fp)) {
			if (fp)
				fclose(fp);
			continue;
		}
		fclose(fp);
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, comm) != 0)
			continue;
		n++;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
			 e->d_name);
		fp = fopen(path, "r");
		cr_assert(fp, "%s: %s", path, strerror(errno));
		while (fgets(line, sizeof(line), fp))
			sscanf(line, "voluntary_ctxt_switches: %ld", &found);
		fclose(fp);
	}
	closedir(d);
	cr_assert_eq(n, 1, "%d threads named %s", n, comm);
	cr_assert_geq(found, 0);
	return found;
}

Test(client, the_io_thread_sleeps_while_a_read_waits_on_a_slow_device)
{
	struct djmfs_client_opts o = opts(0);
	struct djmfs_client *c = client(), *slow = NULL;
	struct djmfs_file *w, *r = NULL;
	static uint8_t src[64 * KIB], dst[64 * KIB];
	const struct timespec settle = { 0, 300000000 }, idle = { 1, 0 };
	long before, after;
	uint32_t id;

	fill(src, sizeof(src), 9);
	w = new_stream(c, "slow", &id);
	cr_assert_eq(djmfs_set_objptr(w, id, 0), 0);
	cr_assert_eq(djmfs_write(w, src, sizeof(src)), (ssize_t)sizeof(src));
	cr_assert_eq(djmfs_close(w), 0);
	djmfs_disconnect(c);

	/* Every device request of this client takes 5 s more: the read
	 * stays outstanding through the whole idle second below. */
	o.inject_latency_ns = 5000000000ull;
	cr_assert_eq(djmfs_connect(&slow, &o), 0);
	cr_assert_eq(djmfs_open(slow, "slow", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_pread_async(r, dst, sizeof(dst), 0, 0, note,
				       (void *)(intptr_t)0), 0);
	nanosleep(&settle, NULL);
	before = thread_switches("djmfs-io");
	/* Real time: the test is whether the I/O thread wakes when idle. */
	nanosleep(&idle, NULL);
	after = thread_switches("djmfs-io");
	pthread_mutex_lock(&ord.mu);
	cr_assert_eq(ord.n, 0, "the read was still outstanding");
	pthread_mutex_unlock(&ord.mu);
	/* A thread woken every 200 us would have switched ~5000 times. */
	cr_assert_leq(after - before, 3, "the I/O thread woke %ld times in "
		      "an idle second", after - before);
	wait_for(1);
	cr_assert_eq(ord.res[0], (ssize_t)sizeof(dst));
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	cr_assert_eq(djmfs_close(r), 0);
	djmfs_disconnect(slow);
}

/* ---- trimming ---- */

/* Polls DF until no unit is deferred (the server frees them on its
 * tick); fails after @ms. */
static void wait_deferred_zero(struct djmfs_client *c, unsigned ms)
{
	struct djmfs_df d;

	for (unsigned t = 0;; t += 20) {
		cr_assert_eq(djmfs_df(c, &d), 0);
		if (d.deferred_aus == 0)
			return;
		cr_assert_lt(t, ms, "%llu units still deferred",
			     (unsigned long long)d.deferred_aus);
		usleep(20 * 1000);
	}
}

Test(client, a_frozen_reader_reads_trimmed_bytes_exactly_until_it_lets_go)
{
	enum { SIZE = 8 * AU, START = 5 * AU + 100 };
	struct djmfs_client *c;
	struct djmfs_file *w, *r = NULL, *r2 = NULL;
	struct djmfs_file_info fi;
	struct djmfs_client_stats st, st2;
	struct djmfs_df d;
	uint8_t *src = malloc(2 * SIZE), *dst = malloc(2 * SIZE);
	uint32_t sums[32];
	uint64_t now = 0;
	uint32_t id;

	/* A short lease, so deferred units come back within the test. */
	teardown();
	env_start(16 * MIB, 200);
	c = client();
	fill(src, 2 * SIZE, 33);
	w = new_stream(c, "rec", &id);
	cr_assert_eq(djmfs_write(w, src, SIZE), SIZE);
	cr_assert_eq(djmfs_open(c, "rec", DJMFS_O_READ, &r), 0);
	cr_assert_eq(djmfs_lock_snap(r, 500, &fi), 0);
	cr_assert_eq(fi.objs[0].start, 0);

	/* Units 0..4 of the recording hold only bytes below START. */
	cr_assert_eq(djmfs_trim(w, id, START, &now), 0);
	cr_assert_eq(now, START);
	cr_assert_eq(djmfs_df(c, &d), 0);
	cr_assert_eq(d.deferred_aus, 5);
	cr_assert_eq(djmfs_file_info(w, &fi), 0);
	cr_assert_eq(fi.objs[0].start, START);
	/* Lower starts change nothing. */
	cr_assert_eq(djmfs_trim(w, id, AU, &now), 0);
	cr_assert_eq(now, START);
	cr_assert_eq(djmfs_trim(w, id, SIZE + 1, NULL), -EINVAL);
	cr_assert_eq(djmfs_trim(w, 99, 1, NULL), -ENOENT);
	cr_assert_eq(djmfs_trim(r, id, START + 1, NULL), -EBADF);

	/* The writer goes on (its publishes build on the trim's version),
	 * and the frozen reader still reads every byte of its image. */
	cr_assert_eq(djmfs_write(w, src + SIZE, SIZE), SIZE);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, SIZE, 0), SIZE);
	cr_assert_eq(memcmp(dst, src, SIZE), 0);

	/* A new reader sees the start: nothing below it, all above. */
	cr_assert_eq(djmfs_open(c, "rec", DJMFS_O_READ, &r2), 0);
	cr_assert_eq(djmfs_file_info(r2, &fi), 0);
	cr_assert_eq(fi.objs[0].start, START);
	cr_assert_eq(fi.objs[0].size, 2 * SIZE);
	cr_assert_eq(djmfs_pread_obj(r2, id, dst, 10, START - 1), -ENODATA);
	cr_assert_eq(djmfs_pread(r2, dst, 10, 0), -ENODATA);
	cr_assert_eq(djmfs_pread_obj(r2, id, dst, 2 * SIZE - START, START),
		     2 * SIZE - START);
	cr_assert_eq(memcmp(dst, src + START, 2 * SIZE - START), 0);

	/* Let go: the units come back once the hold and the lease end. */
	cr_assert_eq(djmfs_unlock_snap(r), 0);
	wait_deferred_zero(c, 3000);

	/* An old image, not frozen, whose trimmed bytes now read back
	 * wrong (as if their units were reused): -ENODATA, after it moved
	 * to the latest snapshot. */
	flip(phys_of(r, id, 10));
	cr_assert_eq(djmfs_pread_obj(r, id, dst, 100, 0), -ENODATA);
	cr_assert_eq(djmfs_file_info(r, &fi), 0);
	cr_assert_eq(fi.objs[0].start, START);
	/* Its sums moved down with the trim: what it reads is still
	 * checked against the right ones. */
	djmfs_client_stats(c, &st);
	cr_assert_eq(djmfs_pread_obj(r, id, dst, SIZE, SIZE), SIZE);
	cr_assert_eq(memcmp(dst, src + SIZE, SIZE), 0);
	djmfs_client_stats(c, &st2);
	cr_assert_eq(st2.csum_verified_bytes - st.csum_verified_bytes, SIZE);
	cr_assert_eq(st2.csum_errors, st.csum_errors);
	cr_assert_eq(djmfs_obj_checksums(r2, id, sums, 32, NULL),
		     2 * SIZE / DJMFS_CSUM_BLOCK);
	for (unsigned k = 0; k < 2 * SIZE / DJMFS_CSUM_BLOCK; k++)
		cr_assert_eq(sums[k], k < START / DJMFS_CSUM_BLOCK ? 0 :
			     ref_crc32c(src + k * DJMFS_CSUM_BLOCK,
					DJMFS_CSUM_BLOCK), "sum %u", k);
	cr_assert_eq(djmfs_close(r2), 0);
	cr_assert_eq(djmfs_close(r), 0);
	cr_assert_eq(djmfs_close(w), 0);
	free(src);
	free(dst);
	djmfs_disconnect(c);
}
