/*
 * The daemon's side of admission control: it builds the capacity model
 * (sd_admit.c) from the knobs and the disk profile they name, feeds it
 * measurements (this process's and the machine's CPU time, the bytes
 * served and received, the pump's and the scheduler's deadline counters,
 * the resident size), asks it before a player session or a publisher
 * starts, answers a refusal with 503, and serves GET /admin/capacity
 * (the model, and what it would charge one more viewer of a bitrate, so
 * that a load tool can tell how many fit without redoing the arithmetic).
 * Refusals that are not the model's (a full queue of session opens) get
 * the same 503 from sd_capacity_busy, so that a client reads every
 * "come back later" alike.
 *
 * Measurements are taken when admission needs them (a request to admit,
 * /admin/capacity, /metrics), at most every SAMPLE_EVERY_NS, rather than
 * on a timer: an idle server wakes for nothing, and a busy one is asked
 * often enough.  The model keeps the deltas between two samples, however
 * far apart, as its window.
 *
 * The memory budget is half of MemAvailable when the daemon starts: the
 * other half stays for the page cache the recordings' metadata and the
 * embedded DJMFS server use, and for the rest of the machine; a budget
 * taken from the whole would let buffers crowd out what keeps reads
 * fast.  A viewer whose recording has no measured bitrate yet (nothing
 * indexed) is counted at PRIOR_BPS, as is a new recording until its
 * upload has run long enough to measure (RATE_AFTER_NS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "iosched.h"
#include "sd_daemon.h"

#define SAMPLE_EVERY_NS (SD_NS / 2)
/* 4 Mbit/s: an HD H.264 stream as cameras and broadcasters send it;
 * above most surveillance streams, so an unknown one is not undercounted. */
#define PRIOR_BPS 4000000ull
#define RATE_AFTER_NS (2 * SD_NS)
#define RATE_EVERY_NS SD_NS
/* A new viewer's start is counted as spread over its first 5 s: what a
 * player fetches at once (burst 5 s by default, a buffer's first fill)
 * goes out in about that long on a node near its capacity. */
#define START_NS (5 * SD_NS)

static void from_iosched(void *arg, enum iosched_log_level level,
			 const char *msg)
{
	const struct sd_logger *l = arg;

	if (l->fn)
		l->fn(l->arg, (enum sd_log_level)level, msg);
}

static struct sd_admit_limits limits_of(const struct sd_daemon *d,
					const struct sd_knobs *k)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct sd_admit_limits l = {
		.on = strcmp(k->admission, "off") != 0,
		.ceiling = k->admission_ceiling,
		.max_bandwidth = k->max_bandwidth,
		.read_size = k->read_size,
		.write_size = d->cfg.write_size,
		.buffer_size = k->buffer_size,
		.deadline_ns = k->deadline_ns ? k->deadline_ns : k->period_ns,
		.cpus = cpus > 0 ? (unsigned)cpus : 1,
		.mem_budget = d->mem_budget,
		.burst_ns = k->burst_ns,
		.start_ns = START_NS,
	};
	return l;
}

static int load_model(struct sd_daemon *d, const char *profile,
		      struct iosched_model **out)
{
	struct iosched_log log = { .fn = from_iosched, .arg = &d->logger };
	int err = iosched_model_load(out, profile, &log);

	if (err < 0)
		sd_log_error(d->log, SD_LOG_ERROR, "admission: "
			     "iosched_model_load(%s): %s", profile,
			     strerror(-err));
	return err;
}

static void log_capacity(struct sd_daemon *d, const struct sd_knobs *k)
{
	struct sd_admit_stats st;
	double per = 0;
	char net[48];

	sd_admit_stats(d->admit, sd_now(), &st);
	if (st.res[SD_ADMIT_NET].modelled)
		snprintf(net, sizeof(net), "%.0f bit/s",
			 st.res[SD_ADMIT_NET].capacity);
	else
		snprintf(net, sizeof(net), "not modelled");
	if (st.disk_read_ns > 0)
		per = (double)PRIOR_BPS / 8 / k->read_size * st.disk_read_ns /
		      st.disk_parallelism / 1e9;
	sd_log_error(d->log, SD_LOG_INFO, "admission %s, ceiling %.2f: disk "
		     "%s (%u KiB read %.0f us, %u KiB write %.0f us, "
		     "parallelism %u: %.0f viewers of %.0f Mbit/s), cpu %.2f "
		     "cores of %u, network %s, memory %.0f MiB "
		     "(%.0f viewers)", st.on ? "on" : "off", st.ceiling,
		     d->admit_profile, k->read_size >> 10,
		     st.disk_read_ns / 1e3, d->cfg.write_size >> 10,
		     st.disk_write_ns / 1e3, st.disk_parallelism,
		     per > 0 ? st.ceiling / per : 0, PRIOR_BPS / 1e6,
		     st.res[SD_ADMIT_CPU].capacity, st.cpus,
		     net,
		     st.res[SD_ADMIT_MEM].capacity / 1048576.0,
		     st.ceiling * st.res[SD_ADMIT_MEM].capacity /
			     ((double)k->buffer_size + (64 << 10) +
			      2.0 * k->read_size));
}

int sd_capacity_start(struct sd_daemon *d)
{
	struct iosched_model *m = NULL;
	struct sd_admit_limits l;
	int err;

	d->mem_budget = sd_cache_mem_available() / 2;
	err = load_model(d, d->knobs.profile, &m);
	if (err < 0)
		return err;
	snprintf(d->admit_profile, sizeof(d->admit_profile), "%s",
		 d->knobs.profile);
	l = limits_of(d, &d->knobs);
	err = sd_admit_new(&d->admit, &l, m);
	if (err < 0)
		return err;
	sd_capacity_sample(d);
	log_capacity(d, &d->knobs);
	return 0;
}

void sd_capacity_stop(struct sd_daemon *d)
{
	sd_admit_free(d->admit);
	d->admit = NULL;
}

/* Under knobs_mu (sd_apply_knobs), after the scheduler took @k. */
void sd_capacity_knobs(struct sd_daemon *d, const struct sd_knobs *k)
{
	struct sd_admit_limits l = limits_of(d, k);
	struct iosched_model *m = NULL;

	if (!d->admit)
		return;
	sd_admit_set_limits(d->admit, &l);
	if (strcmp(k->profile, d->admit_profile) == 0)
		return;
	/* The scheduler accepted the profile, so it loads here too; if it
	 * does not, the old model stays and the log says why. */
	if (load_model(d, k->profile, &m) < 0)
		return;
	sd_admit_set_model(d->admit, m);
	snprintf(d->admit_profile, sizeof(d->admit_profile), "%s",
		 k->profile);
	log_capacity(d, k);
}

/* ------------------------------------------------------------------ */
/* Measurements                                                        */
/* ------------------------------------------------------------------ */

/* Busy time of every CPU, niced time excluded (sd_admit.c), in ns. */
static uint64_t sys_busy_ns(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	int n = 0;

	if (!f)
		return 0;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user,
		   &nice, &sys, &idle, &iowait, &irq, &softirq, &steal);
	fclose(f);
	if (n != 8 || hz <= 0)
		return 0;
	return (uint64_t)((double)(user + sys + irq + softirq + steal) * 1e9 /
			  (double)hz);
}

static uint64_t self_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * SD_NS +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static uint64_t rss_bytes(void)
{
	unsigned long long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void sd_capacity_sample(struct sd_daemon *d)
{
	uint_fast64_t now = sd_now(), last = atomic_load(&d->admit_sampled);
	struct sd_admit_sample s = { .now_ns = now };
	struct sd_pump_stats ps;
	struct djmfs_io_stats io;

	if (!d->admit || (last && now - last < SAMPLE_EVERY_NS) ||
	    !atomic_compare_exchange_strong(&d->admit_sampled, &last, now))
		return;
	sd_pump_stats(d->pump, &ps);
	djmfs_io_stats(d->client, &io);
	s.self_cpu_ns = self_cpu_ns();
	s.sys_busy_ns = sys_busy_ns();
	s.bytes_out = atomic_load(&d->bytes_out);
	s.bytes_in = atomic_load(&d->bytes_in);
	s.reads = ps.sum.reads;
	s.read_misses = ps.sum.misses;
	s.io_requests = io.requests;
	s.io_deadline_requests = io.deadline_requests;
	s.io_misses = io.misses;
	s.io_bytes = io.bytes;
	s.io_latency_p99_ns = io.latency_p99_ns;
	s.rss = rss_bytes();
	sd_admit_observe(d->admit, &s);
}

/* ------------------------------------------------------------------ */
/* Admitting                                                           */
/* ------------------------------------------------------------------ */

static void client_address(struct sd_req *r, char *host, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(host, len, "-");
	if (!ci || !ci->client_addr)
		return;
	if (ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
				     ci->client_addr)->sin_addr, host,
			  (socklen_t)len);
	else if (ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
				      ci->client_addr)->sin6_addr, host,
			  (socklen_t)len);
}

/* 503 with Retry-After and @o (taken), the refusal as JSON. */
static enum MHD_Result reply_503(struct sd_req *r, json_t *o,
				 unsigned retry_s)
{
	struct MHD_Response *resp;
	char retry[16], *body;

	snprintf(retry, sizeof(retry), "%u", retry_s);
	body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	r->bytes = strlen(body);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-cache");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
	return sd_reply(r, 503, resp);
}

static enum MHD_Result refuse(struct sd_req *r, const char *what,
			      const struct sd_admit_refusal *why)
{
	const char *res = sd_admit_res_names[why->res];
	char msg[256];

	snprintf(msg, sizeof(msg), "%s refused: not enough %s to keep the "
		 "deadlines already promised", what, res);
	sd_log_error(r->d->log, SD_LOG_INFO, "%s %s: 503 %s (%s: promised "
		     "%.4g + %.4g over %.2f of %.4g); retry after %u s",
		     r->method, r->url, msg, res, why->promised, why->demand,
		     why->ceiling, why->capacity, why->retry_after_s);
	return reply_503(r, json_pack("{s:s, s:i, s:s, s:i, s:f, s:f, s:f, "
				      "s:f}", "error", msg, "status", 503,
				      "reason", res, "retry_after",
				      (int)why->retry_after_s,
				      "capacity", why->capacity,
				      "promised", why->promised,
				      "demand", why->demand,
				      "ceiling", why->ceiling),
			 why->retry_after_s);
}

enum MHD_Result sd_capacity_busy(struct sd_req *r, const char *reason,
				 const char *msg, unsigned retry_s)
{
	sd_log_error(r->d->log, SD_LOG_INFO, "%s %s: 503 %s; retry after "
		     "%u s", r->method, r->url, msg, retry_s);
	return reply_503(r, json_pack("{s:s, s:i, s:s, s:i}", "error", msg,
				      "status", 503, "reason", reason,
				      "retry_after", (int)retry_s),
			 retry_s);
}

int sd_capacity_play(struct sd_req *r, uint64_t bps, double share,
		     struct sd_admit_ticket **t, enum MHD_Result *ret)
{
	struct sd_admit_refusal why;
	char host[64];
	int err;

	*t = NULL;
	if (!r->d->admit)
		return 1;
	sd_capacity_sample(r->d);
	client_address(r, host, sizeof(host));
	err = sd_admit_viewer_share(r->d->admit, host, r->name,
				    bps ? bps : PRIOR_BPS, share, sd_now(), t,
				    &why);
	if (err == 0)
		return 1;
	*ret = err == -EBUSY ? refuse(r, "playback", &why) :
			       sd_reply_error(r, 500, "sd_admit_viewer: %s",
					      strerror(-err));
	return 0;
}

int sd_capacity_publish(struct sd_req *r, struct sd_admit_ticket **t,
			enum MHD_Result *ret)
{
	struct sd_admit_refusal why;
	struct sd_stream *s;
	uint64_t bps = 0;
	int err;

	*t = NULL;
	if (!r->d->admit)
		return 1;
	sd_capacity_sample(r->d);
	/* A recording that goes on is counted at the rate it had. */
	if (sd_catalog_get(r->d->cat, r->name, &s) == 0) {
		sd_stream_rdlock(s);
		bps = s->bitrate;
		sd_stream_unlock(s);
		sd_stream_put(s);
	}
	err = sd_admit_recorder(r->d->admit, r->name, bps ? bps : PRIOR_BPS,
				sd_now(), t, &why);
	if (err == 0)
		return 1;
	*ret = err == -EBUSY ? refuse(r, "publishing", &why) :
			       sd_reply_error(r, 500, "sd_admit_recorder: %s",
					      strerror(-err));
	return 0;
}

void sd_capacity_release(struct sd_daemon *d, struct sd_admit_ticket *t)
{
	if (d->admit && t)
		sd_admit_release(d->admit, t, sd_now());
}

void sd_capacity_upload_rate(struct sd_daemon *d, struct sd_admit_ticket *t,
			     uint64_t bytes, int64_t since, int64_t *next)
{
	int64_t now = (int64_t)sd_now();

	if (!d->admit || !t || now < *next || now - since < RATE_AFTER_NS)
		return;
	*next = now + RATE_EVERY_NS;
	sd_admit_set_rate(d->admit, t, (uint64_t)((double)bytes * 8e9 /
						  (double)(now - since)));
}

/* ------------------------------------------------------------------ */
/* GET /admin/capacity                                                 */
/* ------------------------------------------------------------------ */

static json_t *resource(const struct sd_admit_stats *st,
			const struct sd_admit_cost *cost, enum sd_admit_res i,
			const char *unit)
{
	const struct sd_admit_resource *x = &st->res[i];

	return json_pack("{s:o, s:f, s:f, s:f, s:s, s:f, s:f}",
			 "capacity", x->modelled ? json_real(x->capacity)
						 : json_null(),
			 "promised", x->promised, "measured", x->measured,
			 "ceiling", st->ceiling, "unit", unit,
			 "per_viewer", cost->steady[i],
			 "per_viewer_start", cost->start[i]);
}

/*
 * The bitrate the per_viewer fields price: ?bitrate=BPS, or ?stream=NAME
 * for what a player of that recording is charged now (sd_capacity_play:
 * its measured bitrate, PRIOR_BPS while it has none), else PRIOR_BPS, an
 * unknown recording's.  0, or -1 with the error answered in *ret.
 */
static int priced_bitrate(struct sd_req *r, uint64_t *bps,
			  enum MHD_Result *ret)
{
	const char *text = sd_req_arg(r, "bitrate");
	const char *name = sd_req_arg(r, "stream");
	struct sd_stream *s;
	char *end;
	int err;

	*bps = PRIOR_BPS;
	if (text && name) {
		*ret = sd_reply_error(r, 400, "bitrate or stream, not both");
		return -1;
	}
	if (text) {
		errno = 0;
		*bps = strtoull(text, &end, 10);
		if (errno || end == text || *end || *text == '-' || !*bps) {
			*ret = sd_reply_error(r, 400, "bad bitrate: bits/s, "
					      "a whole number above 0");
			return -1;
		}
		return 0;
	}
	if (!name)
		return 0;
	if (!sd_name_valid(name)) {
		*ret = sd_reply_error(r, 400, "bad stream: "
				      "[A-Za-z0-9._-]{1,128}");
		return -1;
	}
	err = sd_catalog_get(r->d->cat, name, &s);
	if (err < 0) {
		*ret = err == -ENOENT || err == -EUCLEAN ?
		       sd_reply_error(r, 404, "no recording %s", name) :
		       sd_reply_error(r, 500, "sd_catalog_get(%s): %s", name,
				      strerror(-err));
		return -1;
	}
	sd_stream_rdlock(s);
	if (s->bitrate)
		*bps = s->bitrate;
	sd_stream_unlock(s);
	sd_stream_put(s);
	return 0;
}

enum MHD_Result sd_route_capacity(struct sd_req *r, const char *upload,
				  size_t *upload_size)
{
	struct sd_daemon *d = r->d;
	struct sd_admit_stats st;
	struct sd_admit_cost cost;
	enum MHD_Result ret;
	uint64_t bps;
	json_t *o, *disk, *cpu, *refused;

	(void)upload;
	(void)upload_size;
	if (!sd_req_token_ok(r, d->cfg.admin_token))
		return sd_reply_error(r, 401, "the admin endpoint needs the "
				      "admin token");
	if (priced_bitrate(r, &bps, &ret) < 0)
		return ret;
	sd_capacity_sample(d);
	sd_admit_stats(d->admit, sd_now(), &st);
	sd_admit_viewer_cost(d->admit, bps, &cost);
	disk = resource(&st, &cost, SD_ADMIT_DISK, "device seconds per second");
	cpu = resource(&st, &cost, SD_ADMIT_CPU, "cores");
	refused = json_object();
	for (int i = 0; i < SD_ADMIT_N; i++)
		json_object_set_new(refused, sd_admit_res_names[i],
				    json_integer((json_int_t)st.refused[i]));
	if (disk) {
		pthread_mutex_lock(&d->knobs_mu);
		json_object_set_new(disk, "profile",
				    json_string(d->admit_profile));
		pthread_mutex_unlock(&d->knobs_mu);
		json_object_set_new(disk, "read_service_us",
				    json_real(st.disk_read_ns / 1e3));
		json_object_set_new(disk, "write_service_us",
				    json_real(st.disk_write_ns / 1e3));
		json_object_set_new(disk, "parallelism",
				    json_integer(st.disk_parallelism));
		json_object_set_new(disk, "correction",
				    json_real(st.disk_factor));
		json_object_set_new(disk, "viewers_disk_share",
				    json_real(st.view_disk_share));
		json_object_set_new(disk, "latency_p99_over_deadline",
				    json_real(st.disk_latency_ratio));
		json_object_set_new(disk, "late_ratio",
				    json_real(st.disk_late_ratio));
	}
	if (cpu) {
		json_object_set_new(cpu, "cpus", json_integer(st.cpus));
		json_object_set_new(cpu, "others",
				    json_real(st.cpu_other));
		json_object_set_new(cpu, "ns_per_byte",
				    json_real(st.cpu_ns_per_byte));
		json_object_set_new(cpu, "per_recording",
				    json_real(st.cpu_per_recording));
	}
	o = json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, "
		      "s:o, s:o, s:o, s:o}",
		      "admission", st.on ? "on" : "off",
		      "ceiling", st.ceiling,
		      "viewers", (json_int_t)st.viewers,
		      "viewers_held", (json_int_t)st.held,
		      "viewers_starting", (json_int_t)st.starting,
		      "recorders", (json_int_t)st.recorders,
		      "admitted_total", (json_int_t)st.admitted_total,
		      "takeovers_total", (json_int_t)st.takeovers_total,
		      "refused_total", refused,
		      "viewer_bitrate", (json_int_t)bps,
		      "disk", disk,
		      "cpu", cpu,
		      "network", resource(&st, &cost, SD_ADMIT_NET, "bits/s"),
		      "memory", resource(&st, &cost, SD_ADMIT_MEM, "bytes"));
	return sd_reply_json(r, o);
}
