/*
 * loadgen: the pieces streamd's load tools (streamd-bench, streamd-soak)
 * share to drive a streamd over HTTP from one thread: a minimal HTTP/1.1
 * client (response heads, chunked bodies both ways), non-blocking
 * connections on an edge-triggered epoll loop with a fixed tick, token
 * buckets for real-time pacing, blocking GETs for /metrics and whole
 * bodies, a /metrics parser, /proc samples of a process (CPU, RSS,
 * descriptors) and child processes.  Nothing here prints or exits: calls
 * return 0 (or a count) or -errno, and those that can fail for a reason
 * worth telling fill a caller's message buffer.
 */
#ifndef STREAMD_LOADGEN_H
#define STREAMD_LOADGEN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define LG_HEAD_MAX 4096	/* response head block, blank line included */

/* ------------------------------------------------------------------ */
/* Time and numbers                                                    */
/* ------------------------------------------------------------------ */

/* Times here are tool_now_s() (tool_clock.h), the tools' one clock. */
void lg_sleep(double s);

/* A number with, when @suffix, an optional k/M/G (powers of 1000);
 * true with *out set when all of @s is one. */
bool lg_parse_number(const char *s, bool suffix, double *out);

/* ------------------------------------------------------------------ */
/* The server and HTTP framing                                         */
/* ------------------------------------------------------------------ */

struct lg_target {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char hostport[300];	/* for Host: */
};

/* "http://HOST:PORT[/...]" resolved into @t; 0, or -EINVAL with why in
 * @err. */
int lg_target_parse(struct lg_target *t, const char *url, char *err,
		    size_t errlen);

struct lg_head {
	int status;
	bool chunked;
	size_t len;		/* bytes of the head, blank line included */
	int64_t content_length;	/* -1: absent */
	int64_t range_start;	/* Content-Range's first byte; -1: absent */
	int64_t offset;		/* X-Streamd-Offset; -1: absent */
	/* Retry-After in seconds from now (delta-seconds, or an HTTP-date
	 * against the wall clock, 0 when past); -1: absent or unreadable,
	 * so a 503 without a usable one is told apart from a refusal. */
	double retry_after;
};

/* 1 with @h filled when @buf holds a whole head, 0 when it needs more,
 * -1 when it is not an HTTP response. */
int lg_head_parse(const char *buf, size_t len, struct lg_head *h);

enum lg_cd_state { LG_CD_SIZE, LG_CD_EXT, LG_CD_DATA, LG_CD_DATA_END,
		   LG_CD_TRAILER, LG_CD_DONE, LG_CD_BAD };

/* A chunked-body decoder; zero it with st = LG_CD_SIZE to start. */
struct lg_chunk_dec {
	enum lg_cd_state st;
	uint64_t size;		/* LG_CD_SIZE: parsed so far; DATA: left */
	unsigned digits, line;
};

/* Feeds @len raw bytes; returns the payload bytes among them, moved to
 * the front of @buf when @keep.  d->st tells LG_CD_DONE / LG_CD_BAD. */
size_t lg_chunk_feed(struct lg_chunk_dec *d, char *buf, size_t len,
		     bool keep);

/* Frames @n bytes of @data as one chunk at @out (room for n + 24);
 * returns the bytes written.  @data may be NULL when the payload is
 * already at out + lg_chunk_header_len(n). */
size_t lg_chunk_header_len(size_t n);
size_t lg_chunk_frame(char *out, const void *data, size_t n);

/* ------------------------------------------------------------------ */
/* Connections on an edge-triggered epoll                              */
/* ------------------------------------------------------------------ */

/*
 * Connection invariants:
 *  1. fd >= 0 exactly while the state is not LG_DONE; lg_conn_close()
 *     takes it out of epoll by closing it.
 *  2. out[out_off, out_len) is unsent; lg_conn_flush() resets both to 0
 *     once all of it went.
 *  3. Epoll is edge-triggered: readable is set by the owner on an EPOLLIN
 *     edge and cleared only by EAGAIN, so a paced reader may leave bytes
 *     unread.
 * Transitions: LG_CONNECTING -(lg_conn_open, or lg_conn_connected on the
 * first event)-> LG_OPEN -(lg_conn_close)-> LG_DONE.
 */
enum lg_state { LG_CONNECTING, LG_OPEN, LG_DONE };

struct lg_conn {
	enum lg_state state;
	int fd;
	char *out;		/* out_cap bytes, owned */
	size_t out_len, out_off, out_cap;
	char head[LG_HEAD_MAX];
	size_t head_len;
	bool have_head, readable;
	struct lg_head h;
	struct lg_chunk_dec dec;
};

/* Opens a non-blocking connection to @t with @request queued; epoll data
 * is @ptr.  A NULL out is allocated with @cap bytes (at least the
 * request); one left by an earlier connection is reused.  0, or -errno
 * with the failing call in *what (the connection is then closed; out
 * stays for the caller to free). */
int lg_conn_open(struct lg_conn *c, int ep, const struct lg_target *t,
		 void *ptr, const char *request, size_t cap,
		 const char **what);

/* The first event of a connecting socket: 0 (now LG_OPEN) or -errno. */
int lg_conn_connected(struct lg_conn *c);

/* Appends to out (the caller keeps within out_cap). */
void lg_conn_queue(struct lg_conn *c, const void *data, size_t len);

/* Sends what is queued: 0 (all sent, or EAGAIN), or -errno of send. */
int lg_conn_flush(struct lg_conn *c);

/* Reads until the response head is whole: 1 parsed (body bytes after
 * it stay in head[h.len, head_len)), 0 for more later, -EPIPE closed
 * before the response, -EPROTO not HTTP, or -errno of recv. */
int lg_conn_head(struct lg_conn *c);

/* Closes the socket (state LG_DONE); out stays allocated. */
void lg_conn_close(struct lg_conn *c);

/* ------------------------------------------------------------------ */
/* The loop and pacing                                                 */
/* ------------------------------------------------------------------ */

struct lg_loop {
	int ep;
	double tick_s;
	void *arg;
	/* An epoll event for the connection registered with @ptr. */
	void (*on_event)(void *arg, void *ptr, uint32_t events, double now);
	/* Every tick_s: pacing, timers. */
	void (*tick)(void *arg, double now);
	const volatile sig_atomic_t *interrupted;
};

/* Runs until @until, or earlier when @done (may be NULL) says so; 0,
 * -EINTR when *interrupted, or -errno of epoll_wait. */
int lg_loop_run(const struct lg_loop *l, double until,
		bool (*done)(void *arg));

/* A token bucket: tokens accrue at rate per second up to burst. */
struct lg_bucket {
	double tokens, rate, burst, t;
};

void lg_bucket_init(struct lg_bucket *b, double rate, double burst,
		    double now);
void lg_bucket_refill(struct lg_bucket *b, double now);

/* ------------------------------------------------------------------ */
/* Blocking requests                                                   */
/* ------------------------------------------------------------------ */

/* Receives body bytes; a negative return stops the transfer with it. */
typedef int (*lg_sink)(void *arg, const void *buf, size_t len);

/* GET of @path (with @headers, "Name: value\r\n" lines or NULL) with a
 * @timeout_s per socket call; the body goes to @sink, *status gets the
 * status (the body of a non-200 answer is dropped).  0 when the whole
 * body arrived, -errno / -EPROTO (why in @err) otherwise. */
int lg_http_fetch(const struct lg_target *t, const char *path,
		  const char *headers, int timeout_s, lg_sink sink, void *arg,
		  int *status, char *err, size_t errlen);

/* lg_http_fetch of a 200 answer into a malloc'd NUL-terminated body
 * (caller frees); 0, or -errno / -EPROTO with why in @err. */
int lg_http_get(const struct lg_target *t, const char *path,
		const char *headers, int timeout_s, char **body, char *err,
		size_t errlen);

/* Sums each of the @n metrics @names over its label sets in a /metrics
 * text: v[i] and has[i] (both zeroed first). */
void lg_metrics_parse(const char *text, const char *const *names, size_t n,
		      double *v, bool *has);

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* CPU seconds (user + system) of @pid so far; NAN if unknown. */
double lg_proc_cpu_s(pid_t pid);
/* Bytes @pid (all its threads) made the block layer read so far, the
 * read_bytes of /proc/PID/io: device reads, direct I/O included, page
 * cache hits not; NAN if unknown. */
double lg_proc_read_bytes(pid_t pid);
/* Raises @pid's (0: our own) open-file soft limit to at least @need
 * when the hard limit allows, else to the hard limit (raising the hard
 * limit too when privileged); the soft limit it ends with, or -errno. */
long lg_nofile_raise(pid_t pid, unsigned long need);
/* VmRSS of @pid in MiB; NAN if unknown. */
double lg_proc_rss_mb(pid_t pid);
/* Open descriptors of @pid; -errno if unknown. */
long lg_proc_fds(pid_t pid);

/* One thread of a process: its id, name (comm) and CPU seconds so far. */
struct lg_thread {
	pid_t tid;
	char name[16];
	double cpu_s;
};

/* The threads of @pid now, in a new array of *@n (free() it); -errno if
 * the process cannot be read.  Threads that end meanwhile are skipped. */
int lg_proc_threads(pid_t pid, struct lg_thread **out, size_t *n);

/* Whether @name runs: a path, or a command found in $PATH. */
bool lg_have_program(const char *name);

/* Forks @argv with stdin from /dev/null, stdout to @out_fd and stderr to
 * @err_fd (-1: inherited); it gets SIGTERM when we die.  @own_group puts
 * it in its own process group, so that a ^C reaches only the tool, which
 * then stops it in order.  In the child, an exec failure is told on
 * stderr under @prog.  The pid, or -errno. */
pid_t lg_spawn(char *const argv[], int out_fd, int err_fd, bool own_group,
	       const char *prog);

#endif
