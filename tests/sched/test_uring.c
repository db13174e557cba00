/*
 * Tests for the io_uring back end, driven directly through its operation
 * table on a temporary file opened with O_DIRECT.  A small fake owner
 * stands in for the scheduler core: its complete() hook records each
 * result and completion time, and can start the next request of a
 * backlog from inside the hook, as the core may.  The wake tests go
 * through the scheduler core, with a second thread calling iosched_wake().
 * Tests skip when the machine lacks io_uring or O_DIRECT on /tmp.
 */
#define _GNU_SOURCE /* O_DIRECT, MADV_DONTNEED */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "iosched-int.h"

#define BLK 4096u
#define MAX_REQS 512
#define MAX_LINES 64
#define FILE_BLOCKS 256u

struct captured_log {
	int n;
	enum iosched_log_level level[MAX_LINES];
	char line[MAX_LINES][256];
};

/* Stands in for the scheduler: records what complete() reports. */
struct owner {
	struct iosched_backend *be;
	int res[MAX_REQS];
	uint64_t when[MAX_REQS];
	int seen[MAX_REQS];
	int done;
	struct iosched_req *backlog; /* started one per completion */
	size_t nbacklog, next;
	int restart_rc;
	int again; /* restarts the finished request itself, this many times */
};

static struct captured_log logs;
static struct owner own;
static struct iosched_backend *be;
static int fd = -1;
static char path[64];

static void capture(void *arg, enum iosched_log_level level, const char *msg)
{
	struct captured_log *c = arg;

	if (c->n == MAX_LINES)
		return;
	c->level[c->n] = level;
	snprintf(c->line[c->n], sizeof(c->line[0]), "%s", msg);
	c->n++;
}

static const char *last_line(void)
{
	return logs.n ? logs.line[logs.n - 1] : "";
}

static void on_complete(void *arg, struct iosched_req *req, int res,
			uint64_t now_ns)
{
	struct owner *o = arg;

	cr_assert_lt(req->stream, MAX_REQS);
	o->res[req->stream] = res;
	o->when[req->stream] = now_ns;
	o->seen[req->stream]++;
	o->done++;
	if (o->again > 0) {
		o->again--;
		o->restart_rc = o->be->ops->start(o->be, req);
	} else if (o->next < o->nbacklog) {
		int rc = o->be->ops->start(o->be, &o->backlog[o->next++]);

		if (rc < 0 && o->restart_rc == 0)
			o->restart_rc = rc;
	}
}

static void reset(void)
{
	memset(&logs, 0, sizeof(logs));
	memset(&own, 0, sizeof(own));
	be = NULL;
	fd = -1;
	path[0] = '\0';
}

static void teardown(void)
{
	if (be)
		be->ops->destroy(be);
	if (fd >= 0)
		close(fd);
	if (path[0])
		unlink(path);
}

TestSuite(uring, .init = reset, .fini = teardown);

static struct iosched_backend *new_backend(unsigned entries, unsigned align)
{
	struct iosched_log log = { capture, &logs };
	struct iosched_backend *b;
	int rc = iosched_backend_uring_new(&b, entries, align, &log);

	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring unavailable: %s", strerror(-rc));
	cr_assert_eq(rc, 0, "iosched_backend_uring_new: %s", strerror(-rc));
	b->complete = on_complete;
	b->owner = &own;
	return b;
}

static void open_backend(unsigned entries)
{
	be = new_backend(entries, 0);
	own.be = be;
}

/* A file of @size bytes in /tmp, opened read-write with O_DIRECT. */
static void open_file(off_t size)
{
	int tmp;

	snprintf(path, sizeof(path), "/tmp/test_uring.XXXXXX");
	tmp = mkstemp(path);
	cr_assert_geq(tmp, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(ftruncate(tmp, size), 0);
	close(tmp);
	fd = open(path, O_RDWR | O_DIRECT);
	if (fd < 0 && errno == EINVAL) {
		/* A skipped test runs no .fini. */
		unlink(path);
		cr_skip_test("O_DIRECT unsupported on /tmp");
	}
	cr_assert_geq(fd, 0, "open O_DIRECT: %s", strerror(errno));
}

static void *block_alloc(size_t len)
{
	void *p = NULL;

	cr_assert_eq(posix_memalign(&p, BLK, len), 0);
	memset(p, 0, len);
	return p;
}

static uint8_t pattern_at(uint64_t file_off)
{
	return (uint8_t)((file_off >> 12) * 37 + (file_off & 0xfff) * 11 + 1);
}

static void fill(void *buf, size_t len, uint64_t file_off)
{
	uint8_t *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = pattern_at(file_off + i);
}

static bool matches(const void *buf, size_t len, uint64_t file_off)
{
	const uint8_t *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != pattern_at(file_off + i))
			return false;
	return true;
}

static bool all_zero(const void *buf, size_t len)
{
	const uint8_t *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* Writes the pattern over the first @blocks blocks, bypassing the back end. */
static void write_pattern_file(unsigned blocks)
{
	size_t len = (size_t)blocks * BLK;
	void *buf = block_alloc(len);

	fill(buf, len, 0);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	free(buf);
}

static void make_req(struct iosched_req *r, enum iosched_op op, int rfd,
		     uint64_t offset, uint32_t len, void *buf, uint32_t id)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->fd = rfd;
	r->offset = offset;
	r->len = len;
	r->buf = buf;
	r->stream = id;
}

static void start_ok(struct iosched_req *r)
{
	cr_assert_eq(be->ops->validate(be, r), 0, "validate: %s", last_line());
	cr_assert_eq(be->ops->start(be, r), 0);
}

/* Waits until @n completions in all were reported; checks that wait()'s
 * counts agree with the hook. */
static void wait_all(int n)
{
	int idle = 0, before = own.done;
	int counted = 0;

	while (own.done < n) {
		int rc = be->ops->wait(be, UINT64_MAX);

		cr_assert_geq(rc, 0, "wait: %s", strerror(-rc));
		if (rc == 0)
			cr_assert_lt(++idle, 100, "wait makes no progress");
		counted += rc;
	}
	cr_assert_eq(counted, own.done - before);
}

/* ---------------------------------------------------------------- */

Test(uring, writes_then_reads_return_the_patterns_and_byte_counts)
{
	static const uint64_t offs[] = { 0, 3 * BLK, 10 * BLK, 64 * BLK };
	struct iosched_req w[4], r[4];
	uint32_t len = 2 * BLK;
	uint8_t *wbuf, *rbuf;
	int i;

	open_backend(16);
	open_file(FILE_BLOCKS * BLK);
	wbuf = block_alloc(4 * len);
	rbuf = block_alloc(4 * len);
	for (i = 0; i < 4; i++) {
		fill(wbuf + i * len, len, offs[i]);
		make_req(&w[i], IOSCHED_WRITE, fd, offs[i], len, wbuf + i * len,
			 i);
		start_ok(&w[i]);
	}
	cr_assert_eq(be->ops->flush(be), 0);
	wait_all(4);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(own.res[i], (int)len);
		make_req(&r[i], IOSCHED_READ, fd, offs[i], len, rbuf + i * len,
			 4 + i);
		start_ok(&r[i]);
	}
	wait_all(8);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(own.res[4 + i], (int)len);
		cr_assert(matches(rbuf + i * len, len, offs[i]),
			  "read %d returned the wrong bytes", i);
	}
	free(wbuf);
	free(rbuf);
}

Test(uring, short_read_at_end_of_file_returns_the_byte_count)
{
	struct iosched_req r;
	uint8_t *buf;

	open_backend(8);
	open_file(BLK + 904);
	buf = block_alloc(2 * BLK);
	make_req(&r, IOSCHED_READ, fd, BLK, 2 * BLK, buf, 0);
	start_ok(&r);
	wait_all(1);
	cr_assert_eq(own.res[0], 904);
	free(buf);
}

Test(uring, registered_buffers_carry_the_right_bytes)
{
	struct iosched_req w, r;
	size_t len = 8 * BLK;
	uint8_t *buf;
	void *bufs[1];

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	buf = block_alloc(len);
	bufs[0] = buf;
	cr_assert_eq(be->ops->register_buffers(be, bufs, &len, 1), 0,
		     "register: %s", last_line());
	fill(buf, 4 * BLK, 20 * BLK);
	make_req(&w, IOSCHED_WRITE, fd, 20 * BLK, 4 * BLK, buf, 0);
	start_ok(&w);
	wait_all(1);
	cr_assert_eq(own.res[0], (int)(4 * BLK));
	make_req(&r, IOSCHED_READ, fd, 20 * BLK, 4 * BLK, buf + 4 * BLK, 1);
	start_ok(&r);
	wait_all(2);
	cr_assert_eq(own.res[1], (int)(4 * BLK));
	cr_assert(matches(buf + 4 * BLK, 4 * BLK, 20 * BLK));
	free(buf);
}

/*
 * A registered buffer's pages stay pinned by the kernel.  After
 * MADV_DONTNEED the address maps fresh zero pages while the pinned ones
 * live on, so a READ_FIXED lands where the process can no longer see it
 * and a plain READ lands in the new pages: what the buffer shows
 * afterwards tells which opcode the back end chose.
 */
static uint8_t *map_blocks(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED);
	memset(p, 0xee, len);
	return p;
}

static void read_into(uint8_t *buf, uint32_t id)
{
	struct iosched_req r;

	make_req(&r, IOSCHED_READ, fd, 0, 4 * BLK, buf, id);
	start_ok(&r);
	wait_all(own.done + 1);
	cr_assert_eq(own.res[id], (int)(4 * BLK));
}

Test(uring, reads_into_a_registered_buffer_use_the_fixed_opcode)
{
	size_t len = 4 * BLK;
	uint8_t *p, *q;
	void *bufs[1];

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(4);
	p = map_blocks(len);
	q = map_blocks(len);
	bufs[0] = p;
	cr_assert_eq(be->ops->register_buffers(be, bufs, &len, 1), 0);
	cr_assert_eq(madvise(p, len, MADV_DONTNEED), 0);
	cr_assert_eq(madvise(q, len, MADV_DONTNEED), 0);
	read_into(p, 0);
	cr_assert(all_zero(p, len), "read went through the mapping, not the fixed buffer");
	read_into(q, 1);
	cr_assert(matches(q, len, 0), "unregistered buffer should see the data");
	munmap(p, len);
	munmap(q, len);
}

Test(uring, registering_again_replaces_the_old_buffers)
{
	size_t len = 4 * BLK;
	uint8_t *p, *q;
	void *bufs[1];

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(4);
	p = map_blocks(len);
	q = map_blocks(len);
	bufs[0] = p;
	cr_assert_eq(be->ops->register_buffers(be, bufs, &len, 1), 0);
	bufs[0] = q;
	cr_assert_eq(be->ops->register_buffers(be, bufs, &len, 1), 0);
	cr_assert_eq(madvise(p, len, MADV_DONTNEED), 0);
	cr_assert_eq(madvise(q, len, MADV_DONTNEED), 0);
	read_into(p, 0);
	cr_assert(matches(p, len, 0), "old buffer must no longer be fixed");
	read_into(q, 1);
	cr_assert(all_zero(q, len), "new buffer must be fixed");
	munmap(p, len);
	munmap(q, len);
}

Test(uring, misaligned_offset_length_and_buffer_are_rejected_with_a_log_line)
{
	static const struct {
		uint64_t offset;
		uint32_t len;
		size_t buf_skew;
		const char *what;
		const char *by;
	} cases[] = {
		{ BLK + 1, BLK, 0, "offset", "misaligned by 1 " },
		{ BLK, 100, 0, "len", "misaligned by 100 " },
		{ BLK, BLK, 512, "buf", "misaligned by 512 " },
	};
	struct iosched_req r;
	uint8_t *buf;
	size_t i;

	open_backend(8);
	buf = block_alloc(2 * BLK);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int before = logs.n;

		make_req(&r, IOSCHED_READ, 0, cases[i].offset, cases[i].len,
			 buf + cases[i].buf_skew, 0);
		cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
		cr_assert_eq(logs.n, before + 1);
		cr_assert(strstr(last_line(), cases[i].what), "%s", last_line());
		cr_assert(strstr(last_line(), cases[i].by), "%s", last_line());
	}
	free(buf);
}

Test(uring, missing_fd_buffer_or_length_are_rejected_with_a_log_line)
{
	struct iosched_req r;
	uint8_t *buf;

	open_backend(8);
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, -1, 0, BLK, buf, 0);
	cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
	make_req(&r, IOSCHED_READ, 0, 0, BLK, NULL, 0);
	cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
	make_req(&r, IOSCHED_READ, 0, 0, 0, buf, 0);
	cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
	make_req(&r, (enum iosched_op)7, 0, 0, BLK, buf, 0);
	cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
	cr_assert_eq(logs.n, 4);
	free(buf);
}

Test(uring, a_smaller_alignment_accepts_what_it_allows)
{
	struct iosched_req r;
	uint8_t *buf;

	be = new_backend(8, 512);
	buf = block_alloc(2 * BLK);
	make_req(&r, IOSCHED_READ, 0, 512, 1024, buf + 512, 0);
	cr_assert_eq(be->ops->validate(be, &r), 0);
	r.offset = 256;
	cr_assert_eq(be->ops->validate(be, &r), -EINVAL);
	free(buf);
}

Test(uring, bad_constructor_arguments_are_rejected)
{
	struct iosched_log log = { capture, &logs };
	struct iosched_backend *b = (void *)1;

	cr_assert_eq(iosched_backend_uring_new(&b, 0, 0, &log), -EINVAL);
	cr_assert_null(b);
	cr_assert_eq(iosched_backend_uring_new(&b, 8, 3000, &log), -EINVAL);
	cr_assert_eq(logs.n, 2);
}

static void expect_ebadf_from_read(int rfd)
{
	struct iosched_req r;
	char fdtext[32];
	uint8_t *buf = block_alloc(BLK);

	make_req(&r, IOSCHED_READ, rfd, 0, BLK, buf, 0);
	start_ok(&r);
	wait_all(1);
	cr_assert_eq(own.res[0], -EBADF);
	cr_assert_eq(logs.level[logs.n - 1], IOSCHED_LOG_WARN);
	snprintf(fdtext, sizeof(fdtext), "fd %d", rfd);
	cr_assert(strstr(last_line(), "read"), "%s", last_line());
	cr_assert(strstr(last_line(), fdtext), "%s", last_line());
	cr_assert(strstr(last_line(), strerror(EBADF)), "%s", last_line());
	free(buf);
}

Test(uring, read_on_a_write_only_fd_completes_with_ebadf)
{
	int wfd;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	wfd = open(path, O_WRONLY);
	cr_assert_geq(wfd, 0);
	expect_ebadf_from_read(wfd);
	close(wfd);
}

Test(uring, read_on_a_closed_fd_completes_with_ebadf)
{
	int cfd;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	cfd = open(path, O_RDONLY);
	cr_assert_geq(cfd, 0);
	close(cfd);
	expect_ebadf_from_read(cfd);
}

Test(uring, injected_eio_fails_exactly_every_third_request)
{
	struct iosched_req r[9];
	uint8_t *buf;
	int i;

	open_backend(16);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(9);
	cr_assert_eq(be->ops->inject(be, 0, 3), 0);
	buf = block_alloc(9 * BLK);
	for (i = 0; i < 9; i++) {
		make_req(&r[i], IOSCHED_READ, fd, (uint64_t)i * BLK, BLK,
			 buf + i * BLK, i);
		start_ok(&r[i]);
	}
	cr_assert_eq(own.done, 0, "injected failures complete only in wait()");
	wait_all(9);
	for (i = 0; i < 9; i++) {
		cr_assert_eq(own.seen[i], 1);
		if (i % 3 == 2) {
			cr_assert_eq(own.res[i], -EIO, "request %d", i);
			cr_assert(all_zero(buf + i * BLK, BLK));
		} else {
			cr_assert_eq(own.res[i], (int)BLK, "request %d", i);
			cr_assert(matches(buf + i * BLK, BLK, (uint64_t)i * BLK));
		}
	}
	free(buf);
}

Test(uring, a_hook_that_always_resubmits_cannot_keep_wait_from_returning)
{
	struct iosched_req r;
	uint8_t *buf;
	int rc;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	/* Every request fails at once, so each resubmission is due at once. */
	cr_assert_eq(be->ops->inject(be, 0, 1), 0);
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, fd, 0, BLK, buf, 0);
	start_ok(&r);
	own.again = 1000000;
	rc = be->ops->wait(be, UINT64_MAX);
	cr_assert_eq(rc, 1, "one wait hands back what was there when it began");
	cr_assert_eq(own.res[0], -EIO);
	cr_assert_eq(own.restart_rc, 0);
	own.again = 0;
	wait_all(2);
	free(buf);
}

Test(uring, turning_injection_on_logs_a_warning)
{
	open_backend(8);
	cr_assert_eq(be->ops->inject(be, 1000, 0), 0);
	cr_assert_eq(logs.n, 1);
	cr_assert_eq(logs.level[0], IOSCHED_LOG_WARN);
	cr_assert(strstr(last_line(), "injection"), "%s", last_line());
	cr_assert_eq(be->ops->inject(be, 0, 0), 0);
	cr_assert_eq(logs.n, 1, "turning it off is silent");
}

Test(uring, wait_zero_returns_at_once)
{
	struct iosched_req r;
	uint64_t t0;
	uint8_t *buf;
	int i;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	cr_assert_eq(be->ops->wait(be, 0), 0, "nothing in flight");
	cr_assert_eq(be->ops->inject(be, 10 * IOSCHED__NS_PER_S, 0), 0);
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, fd, 0, BLK, buf, 0);
	start_ok(&r);
	t0 = be->ops->now(be);
	for (i = 0; i < 5; i++)
		cr_assert_eq(be->ops->wait(be, 0), 0);
	cr_assert_lt(be->ops->now(be) - t0, IOSCHED__NS_PER_S);
	cr_assert_eq(own.done, 0);
	free(buf);
}

Test(uring, a_near_deadline_times_out_returning_zero)
{
	struct iosched_req r;
	uint64_t until;
	uint8_t *buf;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	until = be->ops->now(be) + 2 * IOSCHED__NS_PER_MS;
	cr_assert_eq(be->ops->wait(be, until), 0);
	cr_assert_geq(be->ops->now(be), until);

	cr_assert_eq(be->ops->inject(be, 10 * IOSCHED__NS_PER_S, 0), 0);
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, fd, 0, BLK, buf, 0);
	start_ok(&r);
	until = be->ops->now(be) + 2 * IOSCHED__NS_PER_MS;
	cr_assert_eq(be->ops->wait(be, until), 0);
	cr_assert_geq(be->ops->now(be), until);
	cr_assert_lt(be->ops->now(be) - until, IOSCHED__NS_PER_S);
	cr_assert_eq(own.done, 0);
	free(buf);
}

Test(uring, injected_latency_holds_completions_until_their_release)
{
	uint64_t latency = 30 * IOSCHED__NS_PER_MS, t0;
	struct iosched_req r[3];
	uint8_t *buf;
	int i;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(3);
	cr_assert_eq(be->ops->inject(be, latency, 0), 0);
	buf = block_alloc(3 * BLK);
	t0 = be->ops->now(be);
	for (i = 0; i < 3; i++) {
		make_req(&r[i], IOSCHED_READ, fd, (uint64_t)i * BLK, BLK,
			 buf + i * BLK, i);
		start_ok(&r[i]);
	}
	cr_assert_eq(be->ops->wait(be, t0 + 5 * IOSCHED__NS_PER_MS), 0);
	cr_assert_eq(own.done, 0);
	wait_all(3);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(own.res[i], (int)BLK);
		cr_assert_geq(own.when[i], t0 + latency);
		cr_assert(matches(buf + i * BLK, BLK, (uint64_t)i * BLK));
	}
	free(buf);
}

Test(uring, many_requests_through_a_small_ring_complete_when_resubmitted_from_the_hook)
{
	enum { N = 256, RING = 32 };
	struct iosched_req *reqs;
	uint8_t *buf;
	int i;

	open_backend(RING);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(FILE_BLOCKS);
	cr_assert_eq(be->ops->max_depth(be), RING);
	reqs = calloc(N, sizeof(*reqs));
	cr_assert_not_null(reqs);
	buf = block_alloc((size_t)N * BLK);
	for (i = 0; i < N; i++)
		make_req(&reqs[i], IOSCHED_READ, fd,
			 (uint64_t)(N - 1 - i) * BLK, BLK, buf + (size_t)i * BLK,
			 i);
	own.backlog = reqs;
	own.nbacklog = N;
	for (own.next = 0; own.next < RING;)
		start_ok(&reqs[own.next++]);
	wait_all(N);
	cr_assert_eq(own.restart_rc, 0);
	for (i = 0; i < N; i++) {
		cr_assert_eq(own.seen[i], 1, "request %d", i);
		cr_assert_eq(own.res[i], (int)BLK, "request %d", i);
		cr_assert(matches(buf + (size_t)i * BLK, BLK,
				  (uint64_t)(N - 1 - i) * BLK));
	}
	free(buf);
	free(reqs);
}

Test(uring, start_submits_by_itself_when_the_submission_queue_is_full)
{
	enum { N = 64 };
	struct iosched_req r[N];
	uint8_t *buf;
	int i;

	open_backend(8);
	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(N);
	buf = block_alloc((size_t)N * BLK);
	for (i = 0; i < N; i++) {
		make_req(&r[i], IOSCHED_READ, fd, (uint64_t)i * BLK, BLK,
			 buf + (size_t)i * BLK, i);
		start_ok(&r[i]);
	}
	wait_all(N);
	for (i = 0; i < N; i++) {
		cr_assert_eq(own.res[i], (int)BLK, "request %d", i);
		cr_assert(matches(buf + (size_t)i * BLK, BLK,
				  (uint64_t)i * BLK));
	}
	free(buf);
}

Test(uring, now_follows_the_monotonic_clock)
{
	struct timespec ts;
	uint64_t a, b, mono;

	open_backend(8);
	a = be->ops->now(be);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = (uint64_t)ts.tv_sec * IOSCHED__NS_PER_S + (uint64_t)ts.tv_nsec;
	b = be->ops->now(be);
	cr_assert_leq(a, mono);
	cr_assert_leq(mono, b);
}

/* ---------------------------------------------------------------- */
/* Wakes, through the scheduler core                                */
/* ---------------------------------------------------------------- */

/* Wakes a scheduler from another thread after a pause, noting first that
 * it is about to, so the test can tell the wake from anything else. */
struct waker {
	struct iosched *s;
	long delay_ns;
	atomic_int woke;
	pthread_t th;
};

static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct timespec ts = { 0, w->delay_ns };

	nanosleep(&ts, NULL);
	atomic_store(&w->woke, 1);
	cr_assert_eq(iosched_wake(w->s), 0);
	return NULL;
}

static void waker_start(struct waker *w, struct iosched *s, long delay_ns)
{
	w->s = s;
	w->delay_ns = delay_ns;
	atomic_init(&w->woke, 0);
	cr_assert_eq(pthread_create(&w->th, NULL, waker_main, w), 0);
}

/* A scheduler on a new io_uring back end, which it owns (the suite's
 * teardown must not destroy it); *out_be stays valid until it is freed. */
static struct iosched *new_sched(struct iosched_model **m,
				 struct iosched_backend **out_be)
{
	struct iosched_config cfg = { .policy = "fifo" };
	struct iosched *s;

	*out_be = new_backend(8, 0);
	cr_assert_eq(iosched_model_load(m, "ssd-sata", NULL), 0);
	cfg.model = *m;
	cr_assert_eq(iosched_new(&s, &cfg, *out_be), 0);
	return s;
}

static void on_sched_done(struct iosched_req *req, int res)
{
	own.res[req->stream] = res;
	own.done++;
}

Test(uring, a_run_with_no_deadline_and_nothing_submitted_sleeps_until_a_wake)
{
	struct iosched_backend *b;
	struct iosched_model *m;
	struct iosched *s = new_sched(&m, &b);
	struct waker w;

	/* Returning before the watchdog's wake would be spurious: nothing
	 * was submitted and nobody else wakes it. */
	waker_start(&w, s, 200 * 1000 * 1000);
	cr_assert_eq(iosched_run(s, UINT64_MAX), 0);
	cr_assert_eq(atomic_load(&w.woke), 1, "returned before the wake");
	pthread_join(w.th, NULL);
	iosched_free(s);
	iosched_model_free(m);
}

Test(uring, a_wake_from_another_thread_ends_a_run_blocked_on_a_slow_request)
{
	struct iosched_backend *b;
	struct iosched_model *m;
	struct iosched *s = new_sched(&m, &b);
	struct iosched_req r;
	struct waker w;
	uint8_t *buf;

	open_file(FILE_BLOCKS * BLK);
	cr_assert_eq(iosched_backend_inject(b, 3600 * IOSCHED__NS_PER_S, 0), 0);
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, fd, 0, BLK, buf, 0);
	r.done = on_sched_done;
	cr_assert_eq(iosched_submit(s, &r), 0);
	waker_start(&w, s, 50 * 1000 * 1000);
	cr_assert_eq(iosched_run(s, UINT64_MAX), 0);
	cr_assert_eq(atomic_load(&w.woke), 1, "returned before the wake");
	cr_assert_eq(iosched_inflight(s), 1, "the request is still out");
	pthread_join(w.th, NULL);

	/* A deadline too far to be reached: only the wake can end it. */
	waker_start(&w, s, 50 * 1000 * 1000);
	cr_assert_eq(iosched_run(s, UINT64_MAX - 1), 0);
	cr_assert_eq(atomic_load(&w.woke), 1, "returned before the wake");
	pthread_join(w.th, NULL);
	cr_assert_eq(own.done, 0);
	/* Abandoned in flight: the buffer outlives the ring. */
	iosched_free(s);
	iosched_model_free(m);
	free(buf);
}

Test(uring, a_wake_before_the_run_is_kept_and_completions_still_end_runs)
{
	struct iosched_backend *b;
	struct iosched_model *m;
	struct iosched *s = new_sched(&m, &b);
	struct iosched_req r;
	uint8_t *buf;

	open_file(FILE_BLOCKS * BLK);
	write_pattern_file(1);
	cr_assert_eq(iosched_wake(s), 0);
	cr_assert_eq(iosched_wake(s), 0);
	cr_assert_eq(iosched_run(s, UINT64_MAX), 0, "the wakes were kept");
	buf = block_alloc(BLK);
	make_req(&r, IOSCHED_READ, fd, 0, BLK, buf, 0);
	r.done = on_sched_done;
	cr_assert_eq(iosched_submit(s, &r), 0);
	/* Two wakes before one wait count as one: this run ends with the
	 * read. */
	cr_assert_eq(iosched_run(s, UINT64_MAX), 1);
	cr_assert_eq(own.res[0], (int)BLK);
	cr_assert(matches(buf, BLK, 0));
	iosched_free(s);
	iosched_model_free(m);
	free(buf);
}
