/*
 * Private interfaces of streamd, the recording and time-shift daemon: the
 * time parsers (sd_time.c), the keyframe index (sd_index.c), the HLS
 * playlist writer (sd_hls.c), configuration and run-time knobs
 * (sd_config.c), the in-flight demuxer of encoder uploads (sd_ingest.c),
 * the recording writer and the read-side catalog on DJMFS (sd_rec.c,
 * sd_catalog.c), the players' input buffers and their pump (sd_session.c),
 * admission control (sd_admit.c), the logs (sd_log.c) and the HTTP front
 * end (sd_http.c and its routes).
 *
 * A recording is a DJMFS file named after the stream with three objects,
 * created in this order:
 *   "header"  META        JSON text (see sd_rec.c), rewritten in place;
 *   "data"    DATA|SYNC   the exact bytes the encoders sent, appended;
 *                         each write publishes a snapshot;
 *   "index"   DATA        SD_IDX_SIZE-byte entries (layout below), appended
 *                         before the data write that publishes them.
 *
 * Conventions as in the libraries: 0 (or a count) or -errno; constructors
 * fill an out-parameter; modules never print: they log through
 * struct sd_logger (the daemon routes it to the error log) and tell time
 * with sd_now().  Both are streamd's own: the daemon's main (streamd.c)
 * is the one place that turns them into libdjmfs's log hook.
 */
#ifndef STREAMD_INT_H
#define STREAMD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "djmfs.h"

/* ------------------------------------------------------------------ */
/* Logging hook and clock                                              */
/* ------------------------------------------------------------------ */

/* The values are libdjmfs's and libiosched's too, so that the boundary
 * (streamd.c) converts with a cast. */
enum sd_log_level {
	SD_LOG_ERROR = 0,
	SD_LOG_WARN = 1,
	SD_LOG_INFO = 2,
	SD_LOG_DEBUG = 3,
};

/* Receives one complete line (no trailing newline), valid during the call;
 * called from any of the daemon's threads. */
typedef void (*sd_log_fn)(void *arg, enum sd_log_level level,
			  const char *msg);

struct sd_logger {
	sd_log_fn fn; /* NULL: diagnostics are dropped */
	void *arg;
};

/* CLOCK_MONOTONIC in ns: every duration, timeout and deadline in the
 * daemon.  It is djmfs_now()'s clock, so a deadline taken from it is
 * one libdjmfs understands (sd_time.c). */
uint64_t sd_now(void);

/* Stream names: [A-Za-z0-9._-]{1,128}, and not "." or "..". */
#define SD_NAME_MAX 128
int sd_name_valid(const char *name); /* 1 or 0 (sd_name.c) */

/* ------------------------------------------------------------------ */
/* Time (sd_time.c)                                                    */
/* ------------------------------------------------------------------ */

#define SD_NS 1000000000LL

/* CLOCK_REALTIME in ns: the clock every wall time in a recording is on. */
int64_t sd_wall_now(void);

enum sd_start_kind {
	SD_START_NONE = 0,	/* not given */
	SD_START_BEHIND_LIVE,	/* "-30": ns is <= 0, relative to live */
	SD_START_FROM_BEGIN,	/* "120", "12.5": ns from the recording's start */
	SD_START_WALL,		/* ISO-8601: ns since the epoch */
};

struct sd_start {
	enum sd_start_kind kind;
	int64_t ns;
};

/*
 * Parses a start position: "-30" / "-2.5" (seconds behind live), "120" /
 * "0" (seconds from the start), or an ISO-8601 date-time
 * ("2026-11-21T10:00:00Z", "2026-11-21T10:00:00.250+01:00",
 * "2026-11-21T10:00:00" meaning UTC).  NULL or "" gives SD_START_NONE.
 * Returns 0 or -EINVAL (anything else, including trailing junk, NaN, inf,
 * and magnitudes beyond 10 years).
 */
int sd_time_parse_start(const char *s, struct sd_start *out);

/* Seconds, decimal ("5", "2.5"), > 0 and <= 10 years.  0 or -EINVAL. */
int sd_time_parse_duration(const char *s, int64_t *ns_out);

/* ISO-8601 date-time as above.  0 or -EINVAL. */
int sd_time_parse_iso8601(const char *s, int64_t *ns_out);

/* "2026-11-21T10:00:00.250Z" (always UTC, milliseconds).  Returns the
 * length written (< len), like snprintf; buffers of 32 bytes suffice. */
int sd_time_format_iso8601(int64_t ns, char *buf, size_t len);

/* The wall time a start position designates: @start_ns is the
 * recording's start, @live_ns its live edge (now while recording, its end
 * once finished).  SD_START_NONE gives @live_ns. */
int64_t sd_time_resolve(const struct sd_start *s, int64_t start_ns,
			int64_t live_ns);

/* ------------------------------------------------------------------ */
/* Keyframe index (sd_index.c)                                         */
/* ------------------------------------------------------------------ */

/*
 * One index entry; on disk SD_IDX_SIZE bytes, little-endian:
 *   0  u64 wall_ns   CLOCK_REALTIME of this point of the stream
 *   8  u64 offset    byte offset in the "data" object
 *  16  i64 pts       90 kHz media timestamp (SD_PTS_NONE if unknown)
 *  24  u32 flags     SD_IDX_*; no other bits may be set
 *  28  u32 check     CRC-32C of bytes 0..27 (djmfs' CRC; see sd_index.c)
 *
 * Entries are in data order (offsets never decrease).  Every encoder
 * connection starts with a SEGMENT entry at the first byte it sent; the
 * keyframes follow as KEY entries (one entry may be both, when the first
 * keyframe is at the connection's first byte); a connection that ends
 * cleanly writes an END entry at its last byte (its wall time: when the
 * last byte arrived).  Between an END (or, after a crash, the last entry)
 * and the next SEGMENT lies a gap: no bytes, only time.
 */
#define SD_IDX_SIZE 32
#define SD_IDX_KEY 0x1u
#define SD_IDX_SEGMENT 0x2u
#define SD_IDX_END 0x4u
#define SD_PTS_NONE INT64_MIN

struct sd_idx_entry {
	int64_t wall_ns;
	uint64_t offset;
	int64_t pts;
	uint32_t flags;
};

void sd_idx_encode(const struct sd_idx_entry *e, uint8_t out[SD_IDX_SIZE]);
/* 0, or -EBADMSG (bad check or flags). */
int sd_idx_decode(const uint8_t in[SD_IDX_SIZE], struct sd_idx_entry *e);

/* An in-memory index: a growing array (entries [0, n) never change). */
struct sd_index {
	struct sd_idx_entry *e;
	size_t n, cap;
	int64_t longest_ns;	/* the longest complete segment so far (see
				   sd_index_segments), kept as entries come
				   so a playlist's target duration needs no
				   walk over a day of entries */
	uint64_t nsegs;		/* complete segments so far: media sequence
				   numbers count back from it */
};

void sd_index_init(struct sd_index *ix);
void sd_index_free(struct sd_index *ix); /* leaves it empty and reusable */
/* Appends a copy.  -EINVAL if its offset is below the last entry's. */
int sd_index_append(struct sd_index *ix, const struct sd_idx_entry *e);
/* Decodes @len bytes of on-disk entries and appends them; @len must be a
 * multiple of SD_IDX_SIZE.  Returns entries added or -EBADMSG/-EINVAL
 * (nothing of a bad buffer is kept). */
int sd_index_load(struct sd_index *ix, const uint8_t *buf, size_t len);
/* Drops the entries below data offset @offset (retention trimmed their
 * bytes); returns how many. */
size_t sd_index_drop_below(struct sd_index *ix, uint64_t offset);

/* ------------------------------------------------------------------ */
/* Where retention cuts (sd_retain_plan.c)                             */
/* ------------------------------------------------------------------ */

struct sd_retain_rules {
	int64_t retention_ns;	  /* keep this much time; 0: forever */
	uint64_t retention_bytes; /* keep at most this many bytes; 0: all */
};

struct sd_retain_rec {
	/* In: the recording as the catalog has it (entries from data_start
	 * on), the earliest hold's start (INT64_MAX: none), its rules. */
	const struct sd_index *ix;
	uint64_t data_start, data_size;
	int64_t hold_from;
	struct sd_retain_rules rules;
	/* Out: the planned start (a keyframe's offset; data_start when
	 * nothing is cut) and its entry; whether a hold held a rule back
	 * and by how many bytes; whether the reserve moved it. */
	uint64_t cut;
	size_t cut_entry;
	int pinned;
	uint64_t pinned_bytes;
	int by_reserve;
};

/* The retention rules of recording @name: the knobs' with its
 * retention_overrides on top (sd_config.c).  With @name NULL it checks
 * the overrides only.  0, or -EINVAL with the reason in @err. */
struct sd_knobs;
int sd_retention_rules(const struct sd_knobs *k, const char *name,
		       struct sd_retain_rules *out, char *err, size_t errlen);
/* Plans @r's cut by its own rules at wall time @now_ns. */
void sd_retain_rules(struct sd_retain_rec *r, int64_t now_ns);
/* Moves the cuts of @recs further, oldest moment first, until they free
 * @need_units more units of @unit bytes (or nothing more can go);
 * returns the units planned. */
uint64_t sd_retain_reserve(struct sd_retain_rec *recs, size_t n,
			   uint64_t need_units, uint64_t unit);
/* Whole units of @unit bytes @r's planned cut frees. */
uint64_t sd_retain_units(const struct sd_retain_rec *r, uint64_t unit);

/*
 * Where playback of wall time @t begins: the KEY entry at or before @t;
 * if @t lies in a gap, the first KEY after the gap; if before the first
 * KEY, the first KEY.  Returns its position or -ENOENT (no KEY at all).
 */
ssize_t sd_index_seek(const struct sd_index *ix, int64_t t);

/* 1 when sd_index_seek(@t), which gave @k, will give the same whatever
 * entries are appended later; else 0 (the keyframe that begins @t may be
 * yet to come). */
int sd_index_seek_final(const struct sd_index *ix, int64_t t, size_t k);

/* The KEY entry after position @from whose wall time is nearest to @t
 * (ties: the later), used to end a duration on a keyframe.  -ENOENT if
 * none follows @from. */
ssize_t sd_index_key_near(const struct sd_index *ix, size_t from, int64_t t);

struct sd_gap {
	int64_t start_ns;  /* when the previous connection's data ended */
	int64_t end_ns;	   /* when the next connection began */
	uint64_t offset;   /* data offset where the next connection begins */
};
/* Fills up to @max gaps, returns how many there are. */
size_t sd_index_gaps(const struct sd_index *ix, struct sd_gap *out,
		     size_t max);

/*
 * Media segments, for HLS: a segment starts at every KEY or SEGMENT entry
 * and ends at the next entry of any kind; the last one ends at
 * @data_size when @finished, and is left out while recording (it is not
 * complete yet).  Empty segments are skipped.  seq is the position of the
 * starting entry and msn the segment's media sequence number (both stable
 * across reloads).  duration comes from the pts of
 * both ends when they belong to one connection, else from wall times; a
 * segment cut short by a connection that never ended cleanly, and the last
 * one of a finished recording, get the bitrate of the segments before
 * them, so no segment's duration changes once it has been listed.
 */
struct sd_segment {
	size_t seq;		/* index position of its first entry */
	uint64_t msn;		/* media sequence number: how many segments
				   come before it (positions skip END
				   entries and empty segments, so they
				   cannot be used as HLS sequence numbers) */
	uint64_t offset, len;
	int64_t wall_ns;
	int64_t duration_ns;
	int discontinuity; /* first segment of a connection after a gap */
};
/* Calls @fn for each segment starting at or after position @from whose
 * start is before @until_ns (INT64_MAX: no limit); stops early on a
 * non-zero return and returns it. */
int sd_index_segments(const struct sd_index *ix, size_t from,
		      int64_t until_ns, uint64_t data_size, int finished,
		      int (*fn)(void *arg, const struct sd_segment *s),
		      void *arg);

/* ------------------------------------------------------------------ */
/* HLS playlists (sd_hls.c)                                            */
/* ------------------------------------------------------------------ */

struct sd_hls_req {
	struct sd_start start;	/* first segment: the one seek() picks;
				   NONE: the first of a finished recording,
				   or live - the live window while recording */
	int64_t window_ns;	/* 0: none; else only segments starting
				   within [first, first + window] (finished,
				   or start given) or the newest @window
				   (live, no start): a sliding playlist */
	int64_t live_window_ns;	/* without window=, how much a live playlist
				   holds (hls_live_window); see sd_hls.c */
	const char *uri;	/* segment URI, e.g. "data.ts" */
	const char *query;	/* appended to segment URIs after '?', or NULL
				   (carries play tokens) */
};

/*
 * Writes an RFC 8216 media playlist (version 4: EXT-X-BYTERANGE into
 * @req->uri for every segment, EXT-X-PROGRAM-DATE-TIME on the first and
 * after each discontinuity, EXT-X-DISCONTINUITY across gaps,
 * EXT-X-TARGETDURATION, EXT-X-MEDIA-SEQUENCE, EXT-X-DISCONTINUITY-SEQUENCE,
 * EXT-X-PLAYLIST-TYPE where it holds, EXT-X-START with a start,
 * EXT-X-ENDLIST when @finished or a fixed window is closed), in the shape
 * sd_hls.c's top describes.  A start inside a live recording's newest,
 * still growing segment begins with the newest complete one.
 * Returns 0 and a malloc'd NUL-terminated text in *out (caller frees),
 * -ENOENT (no complete segment yet), or -ENOMEM.
 */
int sd_hls_playlist(const struct sd_index *ix, uint64_t data_size,
		    int finished, int64_t start_ns, int64_t live_ns,
		    const struct sd_hls_req *req, char **out);

/* ------------------------------------------------------------------ */
/* HTTP byte ranges (sd_range.c)                                       */
/* ------------------------------------------------------------------ */

/*
 * One "bytes=" range (absolute "a-b", open "a-", or suffix "-n") against
 * @size.  Returns 1 and the inclusive range [*a, *b] (the end clipped to
 * the size), 0 when the header is to be ignored (NULL, another unit,
 * several ranges, bad syntax, end before start), or -1 when it cannot be
 * satisfied (starts at or past @size, an empty suffix, nothing to send).
 */
int sd_range_parse(const char *h, uint64_t size, uint64_t *a, uint64_t *b);

/* ------------------------------------------------------------------ */
/* Configuration and knobs (sd_config.c)                               */
/* ------------------------------------------------------------------ */

/* Player input buffers and the scheduler: changeable at run time. */
struct sd_knobs {
	double a_pct;		/* A: above this fill level a session skips */
	double b_pct;		/* B: below it, a session reads again at once */
	uint64_t period_ns;	/* pump period (0.3 s) */
	uint32_t read_size;	/* bytes per read (65536) */
	uint32_t buffer_size;	/* bytes per session buffer (1 MiB) */
	uint64_t deadline_ns;	/* read deadline after issue; 0: the period */
	char policy[16];	/* libiosched policy ("glmd") */
	unsigned depth;		/* dispatch depth; 0: the profile's */
	char profile[256];	/* model profile name or path ("ssd-sata") */
	uint64_t burst_ns;	/* progressive .ts: how far ahead of real time
				   a response may run (a burst at its start,
				   then the stream's rate) */
	char cors_origins[512];	/* "": no CORS; "*", or origins separated by
				   commas ("https://a.example,http://b:8000") */
	char admission[4];	/* "on" or "off" (sd_admit.c) */
	double admission_ceiling; /* 0..1 of each resource (0.85) */
	uint64_t max_bandwidth;	/* bits/s; 0: the network is not modelled */
	uint64_t retention_ns;	/* keep this much time; 0: forever */
	uint64_t retention_bytes; /* keep at most this many bytes; 0: all */
	double volume_reserve;	/* percent of the volume kept free (5) */
	/* "cam1 retention=2m; cam2 retention=7d retention_bytes=10G" */
	char retention_overrides[2048];
	uint64_t clip_max_duration_ns; /* longest .mp4 clip (3600 s) */
};

struct sd_config {
	char listen[128];	   /* "127.0.0.1:8080"; "[::1]:8080" */
	char data_dir[1024];	   /* "./streamd-data" (embedded) */
	char djmfs[256];	   /* "": embedded; else a djmfs server address */
	char volume[1024];	   /* "": data_dir/volume.img (embedded), or
				      the server's path (cluster) */
	uint64_t volume_size;	   /* embedded volume, bytes (8 GiB) */
	char djmfs_salvage[4];	   /* "yes": boot past metadata damage */
	char access_log[1024];	   /* "": off; "-": stdout */
	char error_log[1024];	   /* "-": stderr */
	char log_level[8];	   /* error, warn, info, debug */
	char publish_token[256];   /* "": publishing is open */
	char admin_token[256];	   /* "": /admin is open (loopback) */
	unsigned max_connections;  /* 1024 */
	uint64_t probe_size;	   /* bytes the probe may read (1 MiB) */
	uint64_t publish_ns;	   /* longest time between publishes (0.5 s) */
	uint32_t write_size;	   /* bytes per recording write (64 KiB) */
	uint64_t write_deadline_ns; /* write deadline after issue (1 s) */
	uint64_t idle_timeout_ns;  /* idle HTTP connections (60 s) */
	unsigned max_connections_per_ip; /* 0: no cap */
	uint64_t header_timeout_ns; /* a request's head must arrive within
				       this from the connection's start (10 s) */
	uint64_t max_header_size;  /* bytes of a request's head (16 KiB) */
	char admin_listen[128];	   /* "": /admin and /metrics on listen */
	char play_secret[256];	   /* "": playback is open; else play URLs
				      must carry an HMAC signature */
	char djmfs_secret_file[1024]; /* volume secret; "": none */
	uint64_t hls_live_window_ns; /* what a live HLS playlist holds without
					window= (sd_hls.c) */
	uint64_t cache_size;	   /* interval cache budget, bytes; 0: off;
				      SD_CACHE_SIZE_AUTO: from memory */
	uint64_t inject_latency_ns; /* test only: added to every disk I/O */
	unsigned inject_eio_every; /* test only: one disk I/O in N fails */
	uint64_t inject_open_latency_ns; /* test only: added to every player
					    session's open */
	struct sd_knobs knobs;
};

void sd_config_defaults(struct sd_config *cfg);

/*
 * Applies a config file: "key = value" lines, '#' comments, blank lines;
 * keys are the names sd_config_keys() lists.  Returns 0, -ENOENT (no such
 * file), or -EINVAL with a message "PATH:LINE: why" in @err.  On error
 * @cfg may be partly updated (the caller exits).
 */
int sd_config_load(struct sd_config *cfg, const char *path, char *err,
		   size_t errlen);

/* Sets one key from text (config file value, or a flag's argument).
 * 0, or -EINVAL / -ENOENT (unknown key) with a message in @err. */
int sd_config_set(struct sd_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen);

/* Every key with its type and one-line help, for --help: calls @fn once
 * per key in table order. */
void sd_config_keys(void (*fn)(void *arg, const char *key, const char *arg_name,
			       const char *help),
		    void *arg);

/* Checks cross-field rules (0 < B < A <= 100, read_size <= buffer_size,
 * sizes multiples of 4096, ...).  0 or -EINVAL with a message. */
int sd_knobs_check(const struct sd_knobs *k, char *err, size_t errlen);

/*
 * The admin endpoint's JSON: {"A":80,"B":30,"period":0.3,"read_size":65536,
 * "buffer_size":1048576,"deadline":0.3,"policy":"glmd","depth":0,
 * "profile":"ssd-sata"} (seconds for times).  to_json returns a malloc'd
 * text (NULL: -ENOMEM).  from_json applies the keys present in @json to a
 * copy of @cur and checks it: 0 and *out, or -EINVAL with a message
 * (unknown key, wrong type, out of range, not JSON).
 */
char *sd_knobs_to_json(const struct sd_knobs *k);
int sd_knobs_from_json(const struct sd_knobs *cur, const char *json,
		       size_t len, struct sd_knobs *out, char *err,
		       size_t errlen);

/* ------------------------------------------------------------------ */
/* The scan of an MPEG-TS upload (sd_ts.c)                             */
/* ------------------------------------------------------------------ */

/*
 * One pass over an upload's TS packets, shared by the ingest (keyframes,
 * their PTS and where playback of each may start) and the recorder
 * (frame boundaries).  Offsets count from the upload's first byte.  A
 * scan is used by one thread at a time.
 */
struct sd_ts;

#define SD_TS_NONE UINT64_MAX
#define SD_TS_NO_PID 0x2000u /* above every 13-bit PID */

/* How the key stream tells a keyframe (see sd_ts.c). */
enum sd_ts_codec {
	SD_TS_H264,	/* an IDR, or a slice after a recovery point SEI */
	SD_TS_HEVC,	/* an IRAP slice */
	SD_TS_MPEG2,	/* an I picture (MPEG-1 too) */
	SD_TS_VIDEO,	/* other video: the random_access_indicator */
	SD_TS_AAC,	/* ADTS audio: every 2 s of frames */
	SD_TS_AUDIO,	/* other audio: every 2 s, a PES taken as a frame */
};

/* Audio-only uploads get a key every SD_AUDIO_KEY_90K of audio: a frame
 * at @pts is one after the last key at @last (or when !@have_key, or
 * after a jump backwards). */
#define SD_AUDIO_KEY_90K (2 * 90000)
static inline int sd_audio_key(int have_key, int64_t last, int64_t pts)
{
	if (!have_key)
		return 1;
	if (pts == SD_PTS_NONE || last == SD_PTS_NONE)
		return 0;
	return pts < last || pts - last >= SD_AUDIO_KEY_90K;
}

/* A new scan; @keys: keep PAT packets and sync points, for the offsets
 * of keys (a scan only cut at frames needs none).  0 or -ENOMEM. */
int sd_ts_new(struct sd_ts **out, int keys);
void sd_ts_free(struct sd_ts *t);
/* The upload's bytes [@at, @at + @n), borrowed: those the scan has seen
 * already are skipped, so either user may feed them (bytes come in order,
 * with no gap).  0 or -ENOMEM. */
int sd_ts_feed(struct sd_ts *t, uint64_t at, const void *buf, size_t n);
/* The newest frame boundary (a packet where a video PES begins, or an
 * audio one in an upload without video) found since the last call, or
 * SD_TS_NONE.  Boundaries come only while the upload is in step. */
uint64_t sd_ts_take_frame(struct sd_ts *t);
/* 1 while a publish should end at a frame boundary: a PES was seen and no
 * packet out of step yet. */
int sd_ts_frames(const struct sd_ts *t);
/* A scan with @keys finds the keyframes of the stream on @pid from the
 * bytes fed after this call (before the first, as the probe chose it). */
void sd_ts_key_stream(struct sd_ts *t, unsigned pid, enum sd_ts_codec codec);
/* The key-finding rule the scan applies to a stream libavformat probed
 * (sd_ingest.c); tests take it from here so they check the daemon's
 * mapping, not a copy of it. */
struct AVStream;
enum sd_ts_codec sd_ingest_ts_codec(const struct AVStream *st);
/* The oldest keyframe found and not yet taken: 1 with *@off, where
 * playback of it may begin (the last PAT packet before it if one came
 * after the previous key, else the start of the TS packet where its PES
 * begins), and *@pts (90 kHz, unwrapped once as libavformat does, or
 * SD_PTS_NONE); 0 when there is none.  Offsets never decrease and never
 * exceed the bytes fed. */
int sd_ts_take_key(struct sd_ts *t, uint64_t *off, int64_t *pts);
/* PES begun so far, every stream (for counters). */
uint64_t sd_ts_pes(const struct sd_ts *t);

/* ------------------------------------------------------------------ */
/* Ingest: demuxing an upload in flight (sd_ingest.c)                  */
/* ------------------------------------------------------------------ */

/*
 * An upload's bytes go into a bounded ring from the HTTP thread; the
 * ingest thread takes them out.  libavformat first probes them through a
 * custom AVIOContext (at most probe_size bytes; nothing is passed on
 * yet); a stream it cannot recognise ends with -EPROTONOSUPPORT.  Once
 * the probe succeeds the ingest calls on_ready, then on_bytes with every
 * byte of the upload in order (the ones the probe held first), and on_key
 * for each video keyframe (or, in an audio-only stream, every 2 s of
 * audio) with the byte offset where playback may begin.  In MPEG-TS the
 * TS scan (above) finds the keyframes, and the offset is the last PAT
 * packet before the keyframe when one came since the previous keyframe,
 * else the start of the TS packet where its PES begins; other containers
 * are demuxed by libavformat, and the offset is the keyframe's packet's.
 * Offsets are relative to the upload's first byte.  Callbacks run on the
 * ingest thread; an error from one stops the ingest with that error.
 */
struct sd_ingest_cbs {
	void *arg;
	/* @codecs: JSON array text describing the streams, e.g.
	 * [{"type":"video","codec":"h264","width":1280,"height":720,
	 *   "fps":25},{"type":"audio","codec":"aac","sample_rate":48000,
	 *   "channels":2}] ; @format: "mpegts", ... */
	int (*on_ready)(void *arg, const char *format, const char *codecs);
	int (*on_bytes)(void *arg, const void *buf, size_t len);
	/* Optional: where the next bytes may go (*@buf, returning how many
	 * fit; 0: nowhere).  The ingest then takes them from the ring
	 * straight there and calls on_bytes with that same pointer, so they
	 * are copied once on their way.  Not used while probing. */
	size_t (*on_space)(void *arg, void **buf);
	/* @pts: 90 kHz, or SD_PTS_NONE */
	int (*on_key)(void *arg, uint64_t offset, int64_t pts);
	/* Optional: called about every 100 ms while the thread waits for
	 * bytes after on_ready (so a stalled encoder's last bytes still get
	 * published); an error stops the ingest like the others. */
	int (*on_idle)(void *arg);
	/* The ring has room again after sd_ingest_push() took less than it
	 * was offered, or the ingest ended (check sd_ingest_state()).  The
	 * HTTP side resumes its connection.  Must not block. */
	void (*on_wake)(void *arg);
};

struct sd_ingest_opts {
	uint64_t probe_size; /* 0: 1 MiB */
	size_t ring_size;    /* 0: 4 MiB */
	struct sd_logger log;
	/* Borrowed, optional: the scan of an MPEG-TS upload, shared with
	 * whoever on_bytes hands the bytes to (so each is scanned once);
	 * NULL: the ingest keeps its own. */
	struct sd_ts *ts;
};

enum sd_ingest_state {
	SD_INGEST_PROBING,
	SD_INGEST_RUNNING,	/* probe succeeded (on_ready was called) */
	SD_INGEST_DONE,		/* the thread has finished: see result */
};

struct sd_ingest;

/* Starts the ingest thread.  @cbs and @opts are copied. */
int sd_ingest_new(struct sd_ingest **out, const struct sd_ingest_opts *opts,
		  const struct sd_ingest_cbs *cbs);
/* HTTP side: copies as much of @buf as the ring has room for and returns
 * it (0 when full: on_wake comes when there is room).  After the ingest
 * is DONE it takes nothing and returns 0. */
size_t sd_ingest_push(struct sd_ingest *in, const void *buf, size_t len);
/* End of the upload: the ingest drains the ring and finishes. */
void sd_ingest_finish(struct sd_ingest *in);
/* The encoder went away mid-body: same as finish (what arrived is kept). */
enum sd_ingest_state sd_ingest_state(struct sd_ingest *in, int *result);
/* Waits for the thread (after finish), frees.  Returns the result: 0,
 * -EPROTONOSUPPORT (not a stream), or a callback's error.  NULL: 0. */
int sd_ingest_free(struct sd_ingest *in);
/* Counters for logs and metrics. */
struct sd_ingest_stats {
	uint64_t bytes_in;	/* pushed */
	uint64_t packets;	/* demuxed */
	uint64_t keyframes;
};
void sd_ingest_stats(struct sd_ingest *in, struct sd_ingest_stats *out);

/* ------------------------------------------------------------------ */
/* Recording writer (sd_rec.c)                                         */
/* ------------------------------------------------------------------ */

struct sd_rec_opts {
	uint32_t write_size;	  /* bytes per data write; 0: 65536 */
	uint64_t publish_ns;	  /* longest wait before a partial write
				     publishes; 0: 0.5 s.  An MPEG-TS
				     publish ends where a video frame
				     begins; the bytes of a frame still
				     arriving wait at most another
				     publish_ns (a crash then leaves a
				     recording that decodes to its end) */
	uint64_t deadline_ns;	  /* write deadline after issue; 0: 1 s */
	unsigned max_inflight;	  /* data writes in flight; 0: 4 */
	uint64_t (*now)(void);	  /* the clock publish_ns runs on; NULL:
				     sd_now (tests move a fake one).  Write
				     deadlines stay on sd_now(), the clock
				     libdjmfs judges them by */
	struct sd_logger log;
	struct sd_ts *ts;	  /* borrowed, optional: the upload's scan,
				     shared with the ingest; NULL: own */
	struct sd_cache *cache;	  /* borrowed, optional: each data write's
				     bytes go in once published, for the
				     viewers behind the writer */
};

struct sd_rec_stats {
	uint64_t bytes;		  /* accepted into the recording this connection */
	uint64_t writes;	  /* data writes completed (= publishes) */
	uint64_t write_misses;	  /* completed after their deadline */
	uint64_t keyframes;
};

struct sd_rec;

/*
 * Takes the write lock of recording @name (creating the file and its
 * three objects if missing; an existing recording continues: its pointers
 * go to the ends of "data" and "index").  Index entries beyond the data
 * (or damaged at its tail) are trimmed, and a previous connection that
 * ended without an END entry (its writer died) gets one at the end of its
 * data, at the time of its last publish.  Returns 0, -EBUSY (another
 * publisher holds it), -EUCLEAN (a file of that name that is not a
 * recording, or quarantined), -ENOSPC, or -errno.
 */
int sd_rec_open(struct djmfs_client *c, const char *name,
		const struct sd_rec_opts *opts, struct sd_rec **out);

/*
 * Starts this connection's segment: records @format and @codecs in the
 * header (the recording's start time is set on its first connection
 * only), and queues a SEGMENT index entry at the current end of the data
 * with wall time @wall_ns.  Must come before sd_rec_data.
 */
int sd_rec_begin(struct sd_rec *r, const char *format, const char *codecs,
		 int64_t wall_ns);

/* Where the next bytes may go without a copy: *@buf, and how many fit
 * (0 after a failure).  Valid until the next call; bytes put there are
 * then given to sd_rec_data at that same address. */
size_t sd_rec_space(struct sd_rec *r, void **buf);

/* Appends stream bytes (copied, unless they are in sd_rec_space's).  Writes leave in write_size pieces with
 * deadlines; blocks while max_inflight writes are outstanding.  Returns 0
 * or the -errno of a failed write (-ENOSPC: the volume is full; the
 * recording keeps everything published before). */
int sd_rec_data(struct sd_rec *r, const void *buf, size_t len);

/* A keyframe at connection offset @conn_off (relative to this connection's
 * first byte) with @pts; its wall time is derived from the connection's
 * first pts and wall time.  The entry is published with the data write
 * that follows. */
int sd_rec_key(struct sd_rec *r, uint64_t conn_off, int64_t pts);

/* Publishes a partial write if publish_ns has passed since the last
 * publish.  Call it at least every 100 ms while the upload idles. */
int sd_rec_tick(struct sd_rec *r);

/* Ends the connection: writes what is pending, an END entry at @wall_ns,
 * the header's measured bitrate; publishes, waits for every write, closes
 * the file (releasing the lock) and frees.  The counters at the very end
 * go to @final when it is not NULL.  Returns 0 or the first -errno seen.
 * NULL: 0. */
int sd_rec_close(struct sd_rec *r, int64_t wall_ns,
		 struct sd_rec_stats *final);

void sd_rec_stats(struct sd_rec *r, struct sd_rec_stats *out);
/* Retention: the recording now starts at data offset @data_start (a
 * keyframe's) and its index at byte @idx_start (that keyframe's entry);
 * what lies below is trimmed from DJMFS.  0 or -errno. */
int sd_rec_retain(struct sd_rec *r, uint64_t data_start, uint64_t idx_start);

/* ------------------------------------------------------------------ */
/* Read side: the catalog of recordings (sd_catalog.c)                 */
/* ------------------------------------------------------------------ */

/* A recording as the newest snapshot shows it.  Fields below the lock are
 * valid while the caller holds sd_stream_rdlock(). */
struct sd_stream {
	char name[SD_NAME_MAX + 1];
	/* under the lock: */
	int live;		/* a publisher holds the write lock */
	int64_t start_ns;	/* wall time of the first byte kept: the
				   recording's start, or after a trim the
				   first index entry's */
	int64_t created_ns;	/* the recording's start, trims or not */
	uint64_t data_start;	/* bytes of "data" below it are trimmed */
	uint64_t idx_base;	/* index entries trimmed or dropped before
				   index.e[0] */
	int64_t end_ns;		/* live: wall time of the newest entry;
				   finished: its END entry (or newest) */
	uint64_t data_size;	/* published bytes of "data" */
	uint64_t version;	/* snapshot version */
	uint64_t bitrate;	/* bits/s: data_size over the recorded time */
	char format[32];
	char *codecs;		/* JSON array text from the header */
	unsigned connections;	/* encoder connections so far */
	uint64_t ino;		/* the file's, and its "data" object's id: */
	uint32_t data_id;	/* the interval cache's name of its bytes */
	struct sd_index index;
};

struct sd_catalog;

/* @refresh_ns: a stream's snapshot is fetched again at most this often
 * (0: 100 ms). */
int sd_catalog_new(struct sd_catalog **out, struct djmfs_client *c,
		   uint64_t refresh_ns, const struct sd_logger *log);
void sd_catalog_free(struct sd_catalog *cat);

/* The recording @name, refreshed to the newest snapshot (new index
 * entries are read from the index object's tail only).  Returns 0 and a
 * reference (sd_stream_put), -ENOENT, -EUCLEAN (not a recording), -errno. */
int sd_catalog_get(struct sd_catalog *cat, const char *name,
		   struct sd_stream **out);
void sd_stream_put(struct sd_stream *s);
void sd_stream_rdlock(struct sd_stream *s);
void sd_stream_unlock(struct sd_stream *s);

/* The next sd_catalog_get of @name fetches the newest snapshot whatever
 * refresh_ns says: this node's own recording of it just began or ended,
 * and a player arriving now must see that at once. */
void sd_catalog_touch(struct sd_catalog *cat, const char *name);

/* The names of the recordings' files, in name order, without opening
 * them: 0 and an array the caller frees (each name, then the array), or
 * -errno and none. */
int sd_catalog_names(struct sd_catalog *cat, char ***names, size_t *n);

/* Calls @fn with every recording, refreshed, in name order (files that
 * are not recordings are skipped). */
int sd_catalog_list(struct sd_catalog *cat,
		    int (*fn)(void *arg, struct sd_stream *s), void *arg);

/* ------------------------------------------------------------------ */
/* The interval cache (sd_cache.c)                                     */
/* ------------------------------------------------------------------ */

/*
 * Bytes of DATA objects in SD_CACHE_BLOCK blocks (aligned to that much of
 * the object, DJMFS_IO_ALIGN in memory), named by (ino, object id, block
 * index), kept while a consumer behind them is expected to read them
 * (interval caching; see sd_cache.c).  Thread-safe; its lock is a leaf.
 * Every byte put must be published (DATA objects never change below a
 * published size and inos are never reused, so nothing is stale); every
 * taker bounds what it takes by its own snapshot.
 */
#define SD_CACHE_BLOCK (64u * 1024)
#define SD_CACHE_SIZE_AUTO UINT64_MAX /* cache_size = auto */
#define SD_CACHE_AUTO_MIN (64ull << 20)
#define SD_CACHE_AUTO_MAX (4ull << 30)

struct sd_cache;
struct sd_cache_block;
struct sd_cache_cons;

struct sd_cache_stats {
	uint64_t budget;	/* bytes */
	uint64_t bytes;		/* held (blocks not freed yet, whole) */
	uint64_t blocks;	/* indexed */
	uint64_t hits;		/* sd_cache_read calls that copied bytes */
	uint64_t hit_bytes;
	uint64_t misses;	/* sd_cache_read calls that found nothing */
	uint64_t miss_bytes;	/* what those asked for */
	uint64_t put_bytes;	/* new bytes put in */
	uint64_t evictions;	/* blocks */
};

/* @budget: bytes (0: the cache keeps nothing).  0 or -ENOMEM. */
int sd_cache_new(struct sd_cache **out, uint64_t budget,
		 const struct sd_logger *log);
/* Every consumer must have left; blocks still referenced are freed
 * all the same (their holders must be gone).  NULL: no-op. */
void sd_cache_free(struct sd_cache *c);

/* Copies published bytes [@off, @off + @len) of object (@ino, @id) in:
 * each block takes those that continue what it holds (a block begins
 * only at its first byte), others are skipped.  May evict.  0 or
 * -EINVAL / -ENOMEM (nothing is lost but the chance of a hit). */
int sd_cache_put(struct sd_cache *c, uint64_t ino, uint32_t id, uint64_t off,
		 const void *buf, size_t len);

/* A reference to the block holding byte @off, when it does: *@data is
 * its memory (the object's bytes from the block's start) and *@valid how
 * many of them it holds (> @off % SD_CACHE_BLOCK); bytes below *@valid
 * never change.  The block stays allocated, evicted or not, until
 * sd_cache_block_put.  NULL when not cached. */
struct sd_cache_block *sd_cache_get(struct sd_cache *c, uint64_t ino,
				    uint32_t id, uint64_t off,
				    const uint8_t **data, size_t *valid);
void sd_cache_block_put(struct sd_cache *c, struct sd_cache_block *b);

/* A consumer of object (@ino, @id) at @pos: a session (its next byte) or,
 * @writer, this node's writer (its published end).  Consumers decide
 * what the cache keeps.  0, -EINVAL or -ENOMEM. */
int sd_cache_join(struct sd_cache *c, uint64_t ino, uint32_t id,
		  uint64_t pos, int writer, struct sd_cache_cons **out);
void sd_cache_move(struct sd_cache_cons *k, uint64_t pos);
/* 1 and *@end when a writer of @k's object has joined on this node: its
 * position, which it moves only once its bytes are published (so a
 * reader may take that size as published without asking the server);
 * else 0. */
int sd_cache_published(struct sd_cache_cons *k, uint64_t *end);
void sd_cache_leave(struct sd_cache_cons *k); /* NULL: no-op; frees @k */

/* Consumer @k's read: copies into @dst what the cache holds of its
 * object from @off, at most @max bytes and only from one block (the
 * caller bounds @max by its snapshot).  Returns the count, a hit; 0 is
 * a miss (counted as one, of @max bytes). */
size_t sd_cache_read(struct sd_cache_cons *k, uint64_t off, void *dst,
		     size_t max);

/* sd_cache_read without the copy: a reference to the block that holds
 * byte @off (a hit, counted as one), with *@p its bytes from @off and *@n
 * how many of them (at most @max, from that block only); the bytes stay
 * valid and unchanged until sd_cache_block_put, evicted or not.  NULL is
 * a miss (counted as one, of @max bytes). */
struct sd_cache_block *sd_cache_take(struct sd_cache_cons *k, uint64_t off,
				     size_t max, const uint8_t **p,
				     size_t *n);

/* The share (0..1) of the SD_CACHE_BLOCK blocks of object (@ino, @id)
 * from the one holding @off through the one holding @off + @len - 1 that
 * the cache holds: what a new reader there may expect to find. */
double sd_cache_held_share(struct sd_cache *c, uint64_t ino, uint32_t id,
			   uint64_t off, uint64_t len);

/* The share (0..1) of @k's recent bytes (about the last 16 MiB) that
 * came from the cache: what of its stream does not reach the disk. */
double sd_cache_hit_share(struct sd_cache_cons *k);

/* Counters and sizes (zeroes for a NULL @c). */
void sd_cache_stats(struct sd_cache *c, struct sd_cache_stats *out);

/* cache_size = auto: 1/8 of @mem_available, within [SD_CACHE_AUTO_MIN,
 * SD_CACHE_AUTO_MAX], whole blocks. */
uint64_t sd_cache_auto_size(uint64_t mem_available);
/* MemAvailable of /proc/meminfo in bytes, or 0 when unknown. */
uint64_t sd_cache_mem_available(void);

/* ------------------------------------------------------------------ */
/* Player sessions and their input buffers (sd_session.c)              */
/* ------------------------------------------------------------------ */

/*
 * The pump: one thread that, every period, visits each session: a session
 * whose buffer is above A skips; otherwise it reads read_size bytes from
 * its recording's "data" object (djmfs_pread_obj_async, deadline = issue
 * time + deadline_ns); after each read completes, a session still below
 * B reads again at once.  A session that has read all its snapshot holds
 * moves to the newest snapshot (djmfs_sync_snap_async) once per period,
 * and ends when the range ends or the recording is finished and read.
 */
struct sd_pump;
struct sd_session;

struct sd_session_stats {
	uint64_t reads;		/* reads completed */
	uint64_t misses;	/* reads completed after their deadline */
	uint64_t underflows;	/* times the player found the buffer empty
				   while the recording held more bytes and
				   then waited longer than a read deadline
				   for them */
	uint64_t bytes;		/* bytes handed to the player */
	uint64_t hits;		/* reads the cache served at once (neither
				   reads nor misses) */
	uint64_t hit_bytes;	/* bytes they brought */
	uint64_t disk_bytes;	/* bytes reads brought from the disk */
	uint64_t syncs;		/* snapshot syncs completed */
};

struct sd_pump_stats {
	uint64_t sessions;	/* open now */
	uint64_t sessions_total;
	struct sd_session_stats sum; /* over every session, closed ones too */
	uint64_t lateness_max_ns;
	uint64_t lateness_p99_ns; /* over the last 4096 late reads */
	uint64_t buffered_bytes; /* queued in the open sessions' buffers */
	uint64_t private_bytes;	/* their own read buffers' memory; the
				   rest of what they queue is the cache's
				   blocks, shared */
};

struct sd_pump_opts {
	uint64_t (*now)(void);	/* the clock periods run on; NULL: sd_now,
				   on a timer.  Another clock moves only
				   when sd_pump_clock_moved says so (tests
				   move a fake one).  Read deadlines and
				   underflows stay on sd_now(), the clock
				   libdjmfs judges deadlines by */
	struct sd_cache *cache;	/* borrowed, optional (must outlive the
				   pump): sessions take what it holds
				   before reading the disk, and put what
				   they read in */
	unsigned openers;	/* threads making sd_session_open_async's
				   opens and the closes' djmfs_close; 0:
				   SD_OPENERS, at most SD_OPENERS_MAX */
	size_t open_queue;	/* opens that may wait for an opener; 0:
				   SD_OPEN_QUEUE */
	uint64_t open_delay_ns;	/* testing only: each queued open starts
				   this long after it was queued, as if
				   the DJMFS server were that slow to
				   answer (no opener is held meanwhile) */
};

/* Opens in flight at once: the DJMFS client pipelines the requests of
 * concurrent callers, so several openers share one server pass. */
#define SD_OPENERS 8
#define SD_OPENERS_MAX 64
/* Opens queued beyond that before sd_session_open_async says -EAGAIN. */
#define SD_OPEN_QUEUE 1024

/* @o: NULL for the defaults. */
int sd_pump_new(struct sd_pump **out, struct djmfs_client *c,
		const struct sd_knobs *k, const struct sd_logger *log,
		const struct sd_pump_opts *o);
/* Stops the threads; every session must be closed first (the openers
 * make the closes' djmfs_close calls still queued, then exit). */
void sd_pump_free(struct sd_pump *p);
/* Refuses opens from now on (-ESHUTDOWN), answers every queued one with
 * -ESHUTDOWN (its done runs here) and waits for those being made to be
 * answered.  Closes go on until sd_pump_free.  For a clean stop, before
 * the callers' connections end. */
void sd_pump_stop_opens(struct sd_pump *p);
/* With a clock of the pump's own (sd_pump_opts.now): it moved.  Returns
 * once the pump has made every period's visit due by now (the
 * operations those started may still be in flight: sd_session_settle).
 * A no-op on sd_now. */
void sd_pump_clock_moved(struct sd_pump *p);
/* New knobs apply from the next period; buffer_size applies to sessions
 * opened after the change. */
void sd_pump_set_knobs(struct sd_pump *p, const struct sd_knobs *k);
void sd_pump_stats(struct sd_pump *p, struct sd_pump_stats *out);

#define SD_END_LIVE UINT64_MAX /* follow the live edge until it finishes */

struct sd_session_opts {
	const char *name;	/* recording */
	uint64_t start;		/* first data byte */
	uint64_t end;		/* one past the last byte, or SD_END_LIVE */
	/* Called (on a library or pump thread) when data arrives or the
	 * session ends after sd_session_read() returned 0.  Must not block. */
	void (*wake)(void *arg);
	void *wake_arg;
	/* What the caller's own snapshot of the recording (the catalog's)
	 * says, for sd_session_start: its file's ino (0: nothing known),
	 * its "data" object, the size that snapshot published and whether
	 * a writer held it then. */
	uint64_t ino;
	uint32_t data_id;
	uint64_t size;
	int live;
};

/* Opens the recording for reading and joins the pump.  Returns 0,
 * -ENOENT, -EUCLEAN, or -errno. */
int sd_session_open(struct sd_pump *p, const struct sd_session_opts *o,
		    struct sd_session **out);

/* An sd_session_open_async open's answer: @err 0 and @s (the caller's
 * now, to close), or -errno (as sd_session_open's, or -ESHUTDOWN) and a
 * NULL @s.  Runs on an opener thread (or in sd_pump_stop_opens); must
 * not block on the HTTP side. */
typedef void (*sd_session_open_fn)(void *arg, int err, struct sd_session *s);

/* sd_session_open on one of the pump's openers, so that the caller does
 * not wait for the djmfs_open round trip: queues the open (@o copied,
 * name too) and returns.  0: @done(@arg, ...) runs exactly once later.
 * -EAGAIN (the queue is full), -ESHUTDOWN (sd_pump_stop_opens was
 * called), -EINVAL or -ENOMEM: @done never runs. */
int sd_session_open_async(struct sd_pump *p, const struct sd_session_opts *o,
			  sd_session_open_fn done, void *arg);

/*
 * A session that starts at once, before its own OPEN is answered, when
 * the pump's cache holds the block of @o->start: it takes only cached
 * bytes below @o->size (published by the caller's snapshot, so within
 * what the OPEN will show) while the OPEN, queued to the openers as
 * sd_session_open_async's is, is on its way, then goes on as an opened
 * session.  0 and *@out (the caller's, to close as any); -EAGAIN (the
 * queue of opens is full), -ESHUTDOWN (sd_pump_stop_opens was called);
 * -ENOTSUP when it cannot start early (no cache or openers, no ino, or
 * the first block not cached: sd_session_open_async then); -EINVAL,
 * -ENOMEM.  An OPEN that fails later (the recording deleted meanwhile,
 * or another file by now under its name: -ESTALE) is the session's
 * error, which sd_session_read returns once the buffer is drained.
 */
int sd_session_start(struct sd_pump *p, const struct sd_session_opts *o,
		     struct sd_session **out);

#define SD_SESSION_EOF (-1)
/* HTTP side: copies up to @max buffered bytes.  Returns the count, 0
 * (empty now; wake comes later), SD_SESSION_EOF (the range or the
 * recording ended and everything was handed over), or -errno (a read
 * failed).  At a growing recording's live edge what has been handed
 * over may end anywhere, on a 4 KiB block rather than where the writer
 * published (a frame start): a caller that ends a body before the range
 * does must end it at an offset it knows, such as a keyframe's. */
ssize_t sd_session_read(struct sd_session *s, void *buf, size_t max);
/* HTTP side, holding its player back (pacing) rather than finding the
 * buffer empty: wake() comes once, at the pump's next period or when a
 * read completes, whichever is first.  0, or -EINVAL. */
int sd_session_wake_at_tick(struct sd_session *s);
/* Waits until the session has no read or sync in flight and no wake()
 * running.  On a pump with a clock of its own nothing then changes the
 * session until that clock moves or the player reads. */
void sd_session_settle(struct sd_session *s);
void sd_session_stats(struct sd_session *s, struct sd_session_stats *out);
/* The share (0..1) of the session's recent bytes (about the last 16 MiB)
 * the cache served: 1 - it is what of its stream reaches the disk (0
 * with no cache).  For admission: a viewer inside a kept interval costs
 * the disk nothing. */
double sd_session_cache_share(struct sd_session *s);
/* Leaves the pump and waits for reads in flight and wakes running; no
 * wake runs after it returns.  The file's djmfs_close (a round trip) is
 * left to an opener, which then frees the session (inline when the pump
 * has none).  NULL is a no-op. */
void sd_session_close(struct sd_session *s);

/* ------------------------------------------------------------------ */
/* Admission control (sd_admit.c)                                      */
/* ------------------------------------------------------------------ */

/*
 * The node's capacity model: disk (the scheduler's calibrated model,
 * corrected by measured lateness), CPU, network and memory, each with a
 * capacity, what admitted sessions were promised, and what is measured.
 * A player session or a publisher is admitted only if every resource
 * stays within the ceiling; sd_admit.c's top says how each is counted.
 * Pure: every call takes the time (CLOCK_MONOTONIC ns, or a test's), and
 * measurements come in through sd_admit_observe.  Thread-safe.
 */
struct iosched_model;
struct sd_admit;
struct sd_admit_ticket;

enum sd_admit_res {
	SD_ADMIT_DISK,
	SD_ADMIT_CPU,
	SD_ADMIT_NET,
	SD_ADMIT_MEM,
	SD_ADMIT_N
};
/* "disk", "cpu", "network", "memory": the reasons a refusal names. */
extern const char *const sd_admit_res_names[SD_ADMIT_N];

struct sd_admit_limits {
	int on;			/* 0: admit everyone (still counted) */
	double ceiling;		/* admission_ceiling, 0..1 */
	uint64_t max_bandwidth;	/* bits/s; 0: the network is not modelled */
	uint32_t read_size;	/* bytes per session read */
	uint32_t write_size;	/* bytes per recording write */
	uint32_t buffer_size;	/* bytes of a session's input buffer */
	uint64_t deadline_ns;	/* the read deadline in effect */
	unsigned cpus;		/* online CPUs */
	uint64_t mem_budget;	/* bytes for sessions; 0: not modelled */
	uint64_t burst_ns;	/* how far ahead a .ts response may run */
	uint64_t start_ns;	/* a new viewer's start (its burst and its
				   buffer's first fill) is counted as spread
				   over this long; 0: not counted */
};

/* Cumulative counters, as read at @now_ns: the deltas between two
 * observations are the window the measurements come from. */
struct sd_admit_sample {
	uint64_t now_ns;
	uint64_t self_cpu_ns;	/* this process, user + system */
	uint64_t sys_busy_ns;	/* every CPU, every process, niced excluded */
	uint64_t bytes_out, bytes_in;
	uint64_t reads, read_misses; /* the pump's reads, late ones */
	uint64_t io_requests, io_deadline_requests, io_misses, io_bytes;
	uint64_t io_latency_p99_ns; /* the scheduler's, over its life */
	uint64_t rss;		/* resident bytes */
};

struct sd_admit_refusal {
	enum sd_admit_res res;	/* the resource that would not hold */
	double capacity, promised, demand, ceiling;
	unsigned retry_after_s;	/* >= 1: when to ask again */
};

struct sd_admit_resource {
	int modelled;		/* 0: no limit (network without
				   max_bandwidth) */
	double capacity, promised, measured;
};

struct sd_admit_stats {
	struct sd_admit_resource res[SD_ADMIT_N]; /* units: disk device s/s,
						     cpu cores, network
						     bits/s, memory bytes */
	double ceiling;
	int on;
	unsigned viewers;	/* tickets of viewers, held ones included */
	unsigned starting;	/* of which within their start (start_ns) */
	unsigned held;		/* of which released, within their grace */
	unsigned recorders;
	uint64_t admitted_total, takeovers_total;
	uint64_t refused[SD_ADMIT_N];
	double disk_factor;	/* the measured correction of the disk */
	double view_disk_share;	/* viewers' bytes/s that reach the disk,
				   over all their bytes/s (1: none) */
	double disk_latency_ratio; /* scheduler p99 latency / read deadline */
	double disk_late_ratio;	/* late deadline requests, last window */
	double disk_read_ns, disk_write_ns; /* the model's, per read/write */
	unsigned disk_parallelism;
	double cpu_ns_per_byte, cpu_per_recording, cpu_other;
	unsigned cpus;
};

/* What admitting one more viewer charges (units of sd_admit_stats). */
struct sd_admit_cost {
	double steady[SD_ADMIT_N];	/* for as long as its ticket lives */
	double start[SD_ADMIT_N];	/* added for its first start_ns */
};

/* Takes ownership of @model (NULL: the disk is not modelled).  0 or
 * -ENOMEM (the model is freed). */
int sd_admit_new(struct sd_admit **out, const struct sd_admit_limits *lim,
		 struct iosched_model *model);
/* Frees every ticket too.  NULL is a no-op. */
void sd_admit_free(struct sd_admit *a);
/* Knobs changed: applies to new tickets and to every promise's price. */
void sd_admit_set_limits(struct sd_admit *a, const struct sd_admit_limits *l);
/* Swaps the disk model (takes ownership; frees the old one). */
void sd_admit_set_model(struct sd_admit *a, struct iosched_model *m);

/*
 * A viewer of stream @stream from @client (its address) at @bps bits/s.
 * A ticket @client released on @stream within the grace is taken over
 * without a check.  Returns 0 and *out (release it with
 * sd_admit_release), -EBUSY with @why filled (may be NULL), or -ENOMEM.
 */
int sd_admit_viewer(struct sd_admit *a, const char *client,
		    const char *stream, uint64_t bps, uint64_t now,
		    struct sd_admit_ticket **out, struct sd_admit_refusal *why);
/* The same, for a viewer expected to read @share (0..1) of its bytes,
 * its start's included, from the disk (the rest from the cache) until
 * sd_admit_set_disk_share says what it really reads. */
int sd_admit_viewer_share(struct sd_admit *a, const char *client,
			  const char *stream, uint64_t bps, double share,
			  uint64_t now, struct sd_admit_ticket **out,
			  struct sd_admit_refusal *why);
/* A publisher of @stream at @bps: refused (-EBUSY) only if the
 * recorders' writes alone would not fit on the disk or the network. */
int sd_admit_recorder(struct sd_admit *a, const char *stream, uint64_t bps,
		      uint64_t now, struct sd_admit_ticket **out,
		      struct sd_admit_refusal *why);
/* The session or upload ended: a viewer's ticket is held for the grace,
 * a recorder's freed.  Takes @t (NULL: no-op). */
void sd_admit_release(struct sd_admit *a, struct sd_admit_ticket *t,
		      uint64_t now);
/* Of a viewer's reads, the share (0..1, clamped) that will reach the
 * disk; 1 until set (a cache serving the rest lowers it). */
void sd_admit_set_disk_share(struct sd_admit *a, struct sd_admit_ticket *t,
			     double share);
/* A ticket's bitrate, measured since it was admitted. */
void sd_admit_set_rate(struct sd_admit *a, struct sd_admit_ticket *t,
		       uint64_t bps);
/* A new set of counters; windows under 0.5 s are merged into the next. */
void sd_admit_observe(struct sd_admit *a, const struct sd_admit_sample *s);
void sd_admit_stats(struct sd_admit *a, uint64_t now,
		    struct sd_admit_stats *out);
/* What a new viewer of @bps would be charged now on each resource, at
 * its full disk share (a cache lowers it later): with sd_admit_stats,
 * the viewers of that rate that settle under the ceiling on resource i
 * are (ceiling x capacity - promised - start[i]) / steady[i], the last
 * one's start included. */
void sd_admit_viewer_cost(struct sd_admit *a, uint64_t bps,
			  struct sd_admit_cost *out);

/* ------------------------------------------------------------------ */
/* Media work: clips and thumbnails (sd_work.c, sd_clip.c, sd_thumb.c) */
/* ------------------------------------------------------------------ */

/*
 * The media workers (sd_work.c): SD_WORKERS threads that run jobs too
 * long for an HTTP thread (a clip's remux, a thumbnail's decode) from a
 * queue of at most SD_WORK_QUEUE.  Thread-safe.
 */
#define SD_WORKERS 2
#define SD_WORKERS_MAX 16
#define SD_WORK_QUEUE 64

struct sd_work;

/* A job: @err 0 on a worker; -ESHUTDOWN when the pool stopped before a
 * worker took it (the job then only answers its caller).  Must not call
 * back into the pool. */
typedef void (*sd_work_fn)(void *arg, int err);

/* 0 or -EINVAL / -ENOMEM / -errno of pthread_create (nothing left). */
int sd_work_new(struct sd_work **out, unsigned threads, size_t queue,
		const struct sd_logger *log);
/* Queues @fn(@arg, ...): 0, and it runs exactly once later; -EAGAIN (the
 * queue is full), -ESHUTDOWN (stopped), -EINVAL or -ENOMEM: it never
 * runs. */
int sd_work_submit(struct sd_work *w, sd_work_fn fn, void *arg);
/* Refuses jobs from now on, runs the queued ones' fn with -ESHUTDOWN
 * here, and waits until the running ones returned.  NULL: no-op. */
void sd_work_stop(struct sd_work *w);
/* Stops (as above), joins the threads and frees.  NULL: no-op. */
void sd_work_free(struct sd_work *w);

/* Where a remux or a decode takes its MPEG-TS from: @read copies up to
 * @max bytes to @buf and returns the count, 0 at the end, or -errno
 * (-ECANCELED: the caller gave up). */
struct sd_media_src {
	ssize_t (*read)(void *arg, void *buf, size_t max);
	void *arg;
};

/*
 * An MPEG-TS from @src opened by libavformat through a custom AVIOContext
 * (sd_media.c), with its streams probed (at most @probesize bytes and
 * @analyze_us of media; 0: libavformat's defaults).  0 and *@in, or
 * -errno (sd__av_errno's); sd__media_close(NULL's fields) is a no-op.
 */
struct AVFormatContext;
struct AVIOContext;
struct sd__media_in {
	struct AVFormatContext *fc;
	struct AVIOContext *pb;
};
int sd__media_open(const struct sd_media_src *src, int64_t probesize,
		   int64_t analyze_us, struct sd__media_in *in);
void sd__media_close(struct sd__media_in *in);
/* A libav error as -errno: an errno passes as it is, the end of the
 * input is -ENODATA, bad data -EPROTO, anything else -EIO. */
int sd__av_errno(int averr);

struct sd_clip_stats {
	uint64_t out_bytes;	/* of the MP4 */
	uint64_t packets;	/* written, every stream */
	uint64_t video_packets;
	unsigned streams;	/* copied (video and audio) */
};

/*
 * Remuxes the MPEG-TS of @src into an MP4 written to @fd (an empty file
 * open for reading and writing, which libavformat reopens through
 * /proc/self/fd to move the moov atom to the front: "faststart"), with
 * no transcoding: video and audio streams are copied (ADTS AAC gets the
 * aac_adtstoasc filter), other streams are dropped, and timestamps
 * start at 0.  Returns 0 with *@st filled, or -errno: -EPROTO (not a
 * stream libavformat reads, or no video or audio in it), -ENODATA (no
 * packet), @src's error, or libavformat's (as -errno).
 */
int sd_clip_remux(const struct sd_media_src *src, int fd,
		  const struct sd_logger *log, struct sd_clip_stats *st);

/* An unlinked temporary file, open read-write: O_TMPFILE in @dir (NULL:
 * skipped), else in TMPDIR or /tmp (O_TMPFILE, else mkstemp and unlink
 * at once).  Returns the descriptor or -errno. */
int sd_clip_tmpfile(const char *dir);

/* "NAME-YYYYMMDDTHHMMSSZ-Ds.mp4": the clip's first keyframe's UTC time
 * (@start_ns, to the second) and its length (@dur_ns rounded to whole
 * seconds, at least 1).  Returns the length written, or -ENAMETOOLONG
 * when @len is too small (buffers of SD_NAME_MAX + 48 suffice). */
int sd_clip_filename(const char *name, int64_t start_ns, int64_t dur_ns,
		     char *buf, size_t len);

/* A thumbnail as JPEG (sd_thumb.c). */
struct sd_thumb {
	uint8_t *jpeg;		/* malloc'd (caller frees) */
	size_t len;
	unsigned width, height;
	unsigned packets;	/* video packets it took to get a frame */
};

#define SD_THUMB_MIN_WIDTH 16
#define SD_THUMB_MAX_WIDTH 4096
#define SD_THUMB_MAX_PACKETS 300
#define SD_THUMB_MAX_BYTES (2u << 20)

/* The size a thumbnail of a @sw x @sh picture gets: @want wide (0: the
 * picture's own size) with the aspect kept and an even height (at
 * least 2). */
void sd_thumb_size(unsigned sw, unsigned sh, unsigned want, unsigned *w,
		   unsigned *h);

/*
 * Decodes the first video frame of the MPEG-TS in @src (which starts at
 * a keyframe), reading at most @max_packets video packets, scales it
 * (sd_thumb_size with @width) and encodes it as a baseline JPEG
 * (YUVJ420P).  Returns 0 and *@out, or -errno: -EPROTO (no video stream
 * that libavcodec decodes), -ENODATA (no frame within the bound),
 * @src's error, or libav's.
 */
int sd_thumb_make(const struct sd_media_src *src, unsigned width,
		  unsigned max_packets, const struct sd_logger *log,
		  struct sd_thumb *out);

/*
 * Thumbnails kept in memory (sd_thumb_cache.c), by recording (ino and
 * data object), keyframe offset and width, least recently used first to
 * go once more than @max_entries or @max_bytes of JPEG are held: a
 * scrubbing player asks for the same keyframes again and again.
 * DATA objects never change below their published size and inos are
 * never reused, so an entry is never stale.  Thread-safe.
 */
struct sd_thumb_cache;

struct sd_thumb_key {
	uint64_t ino;
	uint32_t data_id;
	uint64_t offset;	/* of the keyframe */
	unsigned width;		/* asked for; 0: the stream's own */
};

struct sd_thumb_cache_stats {
	uint64_t entries, bytes;
	uint64_t hits, misses, evictions;
};

#define SD_THUMB_CACHE_ENTRIES 256
#define SD_THUMB_CACHE_BYTES (16u << 20)

int sd_thumb_cache_new(struct sd_thumb_cache **out, size_t max_entries,
		       size_t max_bytes);
void sd_thumb_cache_free(struct sd_thumb_cache *c); /* NULL: no-op */
/* 1 and a malloc'd copy of the JPEG in *@jpeg, *@len (caller frees), the
 * entry now the most recently used; 0 when not held (-ENOMEM counts as
 * not held).  Counts a hit or a miss. */
int sd_thumb_cache_get(struct sd_thumb_cache *c,
		       const struct sd_thumb_key *k, uint8_t **jpeg,
		       size_t *len);
/* Keeps a copy (replacing one of the same key), evicting the least
 * recently used down to the budget; one larger than the whole budget is
 * not kept.  0 or -ENOMEM. */
int sd_thumb_cache_put(struct sd_thumb_cache *c,
		       const struct sd_thumb_key *k, const uint8_t *jpeg,
		       size_t len);
void sd_thumb_cache_stats(struct sd_thumb_cache *c,
			  struct sd_thumb_cache_stats *out);

/* ------------------------------------------------------------------ */
/* Logs (sd_log.c)                                                     */
/* ------------------------------------------------------------------ */

/* Formats one line and hands it to @log's hook (nothing when @log or its
 * fn is NULL): how every module of the daemon logs. */
void sd__log(const struct sd_logger *log, enum sd_log_level level,
	     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct sd_log;

/* @error_path: "-" for stderr; @access_path: "" for none, "-" stdout.
 * Returns 0 or -errno (cannot open). */
int sd_log_open(struct sd_log **out, const char *error_path,
		const char *access_path, enum sd_log_level level);
void sd_log_close(struct sd_log *l);
/* Reopens both files (SIGHUP after rotation).  0 or -errno (the old
 * files stay in use). */
int sd_log_reopen(struct sd_log *l);
/* A struct sd_logger whose lines go to the error log with a timestamp
 * and level. */
struct sd_logger sd_log_hook(struct sd_log *l);
void sd_log_error(struct sd_log *l, enum sd_log_level level,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One access log line in the combined log format, plus the duration in
 * ms: host - - [time] "METHOD URL VERSION" status bytes "referer" "ua" ms */
void sd_log_access(struct sd_log *l, const char *host, const char *method,
		   const char *url, const char *version, unsigned status,
		   uint64_t bytes, const char *referer, const char *agent,
		   uint64_t duration_ms);

/* ------------------------------------------------------------------ */
/* Play tokens (sd_token.c)                                            */
/* ------------------------------------------------------------------ */

/*
 * Signed play URLs, the shape CDNs use: with play_secret set, every
 * playback route of stream NAME needs ?expires=E&sig=S, where E is a Unix
 * time in seconds (canonical decimal: no sign, no leading zero) and S the
 * lowercase hex of HMAC-SHA256(play_secret, "NAME\nE").  One token covers
 * the detail, .ts, data.ts and index.m3u8 of that stream, so an HLS player
 * fetches the playlist and its byte ranges with the same query.  An
 * operator's back end mints one with
 *   printf 'NAME\n%s' "$E" | openssl dgst -sha256 -hmac "$SECRET"
 */
#define SD_TOKEN_SIG_LEN 64		/* hex digits of a signature */
#define SD_TOKEN_TTL_DEFAULT 3600	/* /admin/sign without ttl, seconds */
#define SD_TOKEN_TTL_MAX (10LL * 366 * 86400) /* ten years */

/*
 * The signature of stream @name valid until @expires into @sig
 * (SD_TOKEN_SIG_LEN + 1 bytes, lowercase hex, terminated).  Borrows every
 * argument.  Returns 0, -EINVAL (empty secret, name not valid, expires
 * negative) or -EIO (libcrypto failed).
 */
int sd_token_sign(const char *secret, const char *name, int64_t expires,
		  char *sig);

/*
 * Checks a request's expires and sig arguments (NULL when absent) for
 * stream @name at @now_s (Unix seconds; the caller's clock, so tests pass
 * any).  The signature is checked before the expiry, so a forged token
 * reads as forged whatever its expiry.  Returns
 *   0              valid (now_s < expires);
 *   -ENOKEY        an argument is missing;
 *   -EINVAL        expires is not a canonical decimal in int64 range, or
 *                  sig is not SD_TOKEN_SIG_LEN hex digits;
 *   -EKEYREJECTED  signed for another stream, expiry or secret, or
 *                  tampered with (compared in constant time through
 *                  sd__token_memcmp, over the whole digest);
 *   -EKEYEXPIRED   authentic, but now_s >= expires;
 *   -EIO           libcrypto failed.
 */
int sd_token_verify(const char *secret, const char *name,
		    const char *expires, const char *sig, int64_t now_s);

/* What a sd_token_verify() error means, for the reply; static text. */
const char *sd_token_reason(int err);

/* A canonical decimal (digits, no leading zero, at most INT64_MAX) into
 * *out.  0 or -EINVAL (NULL, empty, other characters, overflow). */
int sd_token_parse_seconds(const char *text, int64_t *out);

/*
 * Copies @in to @out (@cap bytes, always terminated when @cap > 0, cut
 * short when too small) with the value of every sig= and token= query
 * argument replaced by "REDACTED", for lines that go to logs.  Returns
 * the length the whole result needs (as snprintf).
 */
size_t sd_token_redact(const char *in, char *out, size_t cap);

/* Test seam: the comparison every signature check goes through;
 * CRYPTO_memcmp (time independent of where the inputs differ). */
extern int (*sd__token_memcmp)(const void *a, const void *b, size_t n);

#endif /* STREAMD_INT_H */
