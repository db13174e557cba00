/*
 * The protocol part of DJMFS: what the client library and the server
 * both speak, and nothing either keeps state in.  Stateless modules, one
 * file each:
 *   djmfs_log.c      formatting for the caller's log hook
 *   djmfs_crc.c      CRC-32C for frames' bodies, superblock, journal
 *   djmfs_buf.c      growable output buffer and bounds-checked input cursor
 *   djmfs_wire.c     protocol frames: encode and decode every operation
 *   djmfs_auth.c     shared secrets: secret files, nonces, HMAC proofs
 *   djmfs_sb.c       the superblock as both sides read it
 * The client's private header (djmfs_clnt.h) and the server's
 * (djmfs_store.h, djmfs_srv.h, djmfs_tree.h, djmfs_meta.h, djmfs_volio.h)
 * each build on this one and never on each other.  Nothing here is
 * installed.
 *
 * Byte order on the wire and on the volume is little-endian throughout.
 */
#ifndef DJMFS_PROTO_H
#define DJMFS_PROTO_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "djmfs.h"

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

void djmfs__log(const struct djmfs_log *log, enum djmfs_log_level lvl,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* CRC-32C (Castagnoli), software                                      */
/* ------------------------------------------------------------------ */

/* Continues @crc over @n bytes; start with 0.  crc32c("123456789") is
 * 0xE3069283. */
uint32_t djmfs__crc32c(uint32_t crc, const void *p, size_t n);

/* ------------------------------------------------------------------ */
/* Buffers                                                              */
/* ------------------------------------------------------------------ */

/* Growable output.  An allocation failure sets err = -ENOMEM and makes
 * every later put a no-op, so encoders check once at the end. */
struct djmfs__buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int err;
};

void djmfs__buf_init(struct djmfs__buf *b);
void djmfs__buf_free(struct djmfs__buf *b); /* keeps the struct reusable */
void djmfs__buf_reset(struct djmfs__buf *b); /* len = 0, err = 0 */
int djmfs__buf_reserve(struct djmfs__buf *b, size_t more);
void djmfs__put_u8(struct djmfs__buf *b, uint8_t v);
void djmfs__put_u16(struct djmfs__buf *b, uint16_t v);
void djmfs__put_u32(struct djmfs__buf *b, uint32_t v);
void djmfs__put_u64(struct djmfs__buf *b, uint64_t v);
void djmfs__put_bytes(struct djmfs__buf *b, const void *p, size_t n);
/* u16 length, then the bytes (no NUL). */
void djmfs__put_str(struct djmfs__buf *b, const char *s);
/* Overwrites 4 bytes at @at (for lengths known only at the end). */
void djmfs__patch_u32(struct djmfs__buf *b, size_t at, uint32_t v);

/* Bounded input.  Reading past the end, or a malformed field, sets
 * err = -EBADMSG; later gets return zeroes.  Decoders check err once. */
struct djmfs__cur {
	const uint8_t *p;
	size_t len;
	size_t pos;
	int err;
};

void djmfs__cur_init(struct djmfs__cur *c, const void *p, size_t n);
size_t djmfs__cur_left(const struct djmfs__cur *c);
uint8_t djmfs__get_u8(struct djmfs__cur *c);
uint16_t djmfs__get_u16(struct djmfs__cur *c);
uint32_t djmfs__get_u32(struct djmfs__cur *c);
uint64_t djmfs__get_u64(struct djmfs__cur *c);
/* Returns a pointer to @n bytes inside the input, or NULL (and err). */
const uint8_t *djmfs__get_bytes(struct djmfs__cur *c, size_t n);
/* Copies a string into @dst (NUL-terminated).  One longer than
 * @dstsz - 1, empty when !allow_empty, or holding a NUL byte sets err. */
void djmfs__get_str(struct djmfs__cur *c, char *dst, size_t dstsz,
		    int allow_empty);

/* Little-endian loads for views into wire bytes. */
static inline uint32_t djmfs__le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t djmfs__le64(const uint8_t *p)
{
	return (uint64_t)djmfs__le32(p) | (uint64_t)djmfs__le32(p + 4) << 32;
}

static inline void djmfs__st_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void djmfs__st_le64(uint8_t *p, uint64_t v)
{
	djmfs__st_le32(p, (uint32_t)v);
	djmfs__st_le32(p + 4, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------------ */
/* Extents and runs as they travel (views into wire bytes)             */
/* ------------------------------------------------------------------ */

#define DJMFS_EXT_WIRE 16 /* u64 volume offset, u64 length */
#define DJMFS_RUN_WIRE 12 /* u64 first unit, u32 count */

struct djmfs__extv {
	const uint8_t *p; /* n * DJMFS_EXT_WIRE bytes */
	uint32_t n;
};

struct djmfs__run {
	uint64_t first; /* allocation unit index */
	uint32_t count;
};

struct djmfs__runv {
	const uint8_t *p; /* n * DJMFS_RUN_WIRE bytes */
	uint32_t n;
};

static inline struct djmfs_extent djmfs__extv_at(struct djmfs__extv v,
						 uint32_t i)
{
	struct djmfs_extent e = {
		djmfs__le64(v.p + (size_t)i * DJMFS_EXT_WIRE),
		djmfs__le64(v.p + (size_t)i * DJMFS_EXT_WIRE + 8),
	};
	return e;
}

static inline struct djmfs__run djmfs__runv_at(struct djmfs__runv v,
					       uint32_t i)
{
	struct djmfs__run r = {
		djmfs__le64(v.p + (size_t)i * DJMFS_RUN_WIRE),
		djmfs__le32(v.p + (size_t)i * DJMFS_RUN_WIRE + 8),
	};
	return r;
}

/*
 * Data checksums: CRC-32C per DJMFS_CK_BLOCK bytes of a DATA object
 * (cblock k is object bytes [k * CK_BLOCK, (k + 1) * CK_BLOCK)).  A
 * complete cblock's sum never changes once published; the partial last
 * one's (last_ck) is kept per object version.  An object whose sums
 * stopped (bytes published without them, by an older format) has
 * DJMFS_OBJ_CK_GAP: its cblocks from n_ck on are unverified.
 */
#define DJMFS_CK_SHIFT 16
#define DJMFS_CK_BLOCK (1u << DJMFS_CK_SHIFT)
#define DJMFS_CK_WIRE 4
#define DJMFS_OBJ_CK_GAP 0x1u

struct djmfs__ckv {
	const uint8_t *p; /* n * DJMFS_CK_WIRE bytes */
	uint32_t n;
};

static inline uint32_t djmfs__ckv_at(struct djmfs__ckv v, uint32_t i)
{
	return djmfs__le32(v.p + (size_t)i * DJMFS_CK_WIRE);
}

/* Appends one extent / run in wire form (to build views). */
void djmfs__put_ext(struct djmfs__buf *b, uint64_t off, uint64_t len);
void djmfs__put_run(struct djmfs__buf *b, uint64_t first, uint32_t count);

/* ------------------------------------------------------------------ */
/* Protocol (doc/djmfs-protocol.md is the reference)                  */
/* ------------------------------------------------------------------ */

/*
 * Frame: a 16-byte header, then `len` payload bytes.
 *   u32 len | u16 magic 0xD7F5 | u8 version | u8 kind | u16 op |
 *   u16 flags (0) | u32 id
 * kind 0 = request, 1 = response; a response echoes op and id and its
 * payload starts with an i32 status (0 or -errno); the body follows only
 * when the status is 0.
 */
/* 2: CHALLENGE, HELLO's proof; 3: sums; 4: TRIM, an object's start in
 * SNAP */
#define DJMFS_PROTO_VERSION 4
#define DJMFS_FRAME_MAGIC 0xD7F5
#define DJMFS_HDR_SIZE 16
#define DJMFS_FRAME_MAX (16u << 20) /* payload bytes */

enum djmfs__kind { DJMFS_REQ = 0, DJMFS_RESP = 1 };

enum djmfs__op {
	DJMFS_OP_HELLO = 1,
	DJMFS_OP_PING,
	DJMFS_OP_OPEN,
	DJMFS_OP_CLOSE,
	DJMFS_OP_CREATE_OBJ,
	DJMFS_OP_DELETE_OBJ,
	DJMFS_OP_SET_ATTR,
	DJMFS_OP_RESERVE,
	DJMFS_OP_PUBLISH,
	DJMFS_OP_SYNC_SNAP,
	DJMFS_OP_LOCK_SNAP,
	DJMFS_OP_UNLOCK_SNAP,
	DJMFS_OP_UNLINK,
	DJMFS_OP_LIST,
	DJMFS_OP_STAT,
	DJMFS_OP_DF,
	DJMFS_OP_STATS,
	DJMFS_OP_CHALLENGE,
	DJMFS_OP_TRIM,
	DJMFS_OP_MAX
};

/* Shared-secret handshake (see its section below): a random nonce from
 * each side, HMAC-SHA256 proofs. */
#define DJMFS_AUTH_NONCE 32
#define DJMFS_AUTH_PROOF 32

/* Name of an op for logs ("PUBLISH"), or "?". */
const char *djmfs__op_name(unsigned op);

struct djmfs__hdr {
	uint32_t len; /* payload bytes */
	uint16_t op;
	uint8_t kind;
	uint32_t id;
};

/* Checks and decodes a header from @n >= DJMFS_HDR_SIZE bytes.  Returns 0,
 * -EPROTO (other version), or -EBADMSG (bad magic, kind, flags, unknown
 * op, len > DJMFS_FRAME_MAX). */
int djmfs__hdr_decode(const uint8_t *p, size_t n, struct djmfs__hdr *h);

/* A PUBLISH body (wire PUBLISH and journal PUBLISH share it):
 *   u64 base_version | u32 n_objs | n_objs * {
 *     u32 obj_id | u64 size | u32 n_ext | n_ext * EXT |
 *     [u32 ck_first | u32 ck_n | ck_n * u32 crc | u32 last_ck] |
 *     u8 has_meta | [u32 meta_len | meta bytes] }
 * Extents are appended to the object's map, in order; one that starts
 * where the map ends extends the last extent.  META objects carry their
 * whole new content (size = meta_len).  The sums (in brackets: every
 * wire PUBLISH has them, a journal record of the first format not) are
 * a DATA object's: ck_first is old size / CK_BLOCK, the ck_n sums are
 * the cblocks from there that the new size completes, last_ck the new
 * partial one's (0 when size is a multiple of CK_BLOCK); a META
 * object's are all 0. */
struct djmfs__pub_obj {
	uint32_t obj_id;
	uint64_t size;
	struct djmfs__extv ext;
	uint32_t ck_first;
	struct djmfs__ckv ck;
	uint32_t last_ck;
	uint8_t has_meta;
	const uint8_t *meta;
	uint32_t meta_len;
};

struct djmfs__publish {
	uint8_t has_ck; /* 0: no sums (a journal record of format 1) */
	uint64_t base_version;
	uint32_t n_objs; /* <= DJMFS_MAX_OBJS */
	struct djmfs__pub_obj objs[DJMFS_MAX_OBJS];
};

/* What a client already holds, so SYNC_SNAP/LOCK_SNAP send deltas:
 *   u64 known_version | u32 n | n * { u32 obj_id | u32 n_ext | u32 n_ck } */
struct djmfs__known {
	uint64_t version;
	uint32_t n; /* <= DJMFS_MAX_OBJS */
	struct {
		uint32_t id;
		uint32_t n_ext;
		uint32_t n_ck;
	} o[DJMFS_MAX_OBJS];
};

/* A snapshot (OPEN, SYNC_SNAP, LOCK_SNAP and STAT responses):
 *   u64 ino | str name | u64 version | u32 flags | u64 ctime_ns |
 *   u64 mtime_ns | u8 unchanged | u32 n_objs | n_objs * {
 *     u32 id | u32 attrs | str name | u64 size | u64 start |
 *     u32 ext_first | u64 first_at | u32 ext_total |
 *     u32 ext_base | u32 n_sent | n_sent * EXT | u32 ck_flags |
 *     u32 ck_base | u32 ck_sent | ck_sent * u32 | u32 last_ck |
 *     u32 meta_len | bytes }
 * unchanged = 1: the client's known version is current; n_objs is 0.
 * The client replaces its extents from index ext_base on with the n_sent
 * sent (ext_base + n_sent == ext_total), or, for STAT, keeps none
 * (n_sent 0).  Sums likewise: complete ones never change, so the
 * client keeps its first ck_base and appends the ck_sent (n_ck = ck_base
 * + ck_sent; STAT sends none); last_ck is the partial last cblock's.
 * meta_len bytes are a META object's whole content.  Indices are
 * absolute: a trimmed object's map begins at extent ext_first (which
 * begins at object offset first_at <= start), its sums at cblock
 * start / CK_BLOCK; ext_first <= ext_base unless STAT. */
struct djmfs__snap_obj {
	uint32_t id;
	uint32_t attrs;
	char name[DJMFS_OBJ_NAME_MAX + 1];
	uint64_t size;
	uint64_t start;	    /* bytes below it are trimmed (<= size) */
	uint32_t ext_first; /* first extent of the map (<= ext_total) */
	uint64_t first_at;  /* object offset where that extent begins */
	uint32_t ext_total;
	uint32_t ext_base;
	struct djmfs__extv ext; /* the n_sent extents */
	uint32_t ck_flags;	/* DJMFS_OBJ_CK_GAP */
	uint32_t ck_base;
	struct djmfs__ckv ck;	/* the ck_sent sums */
	uint32_t last_ck;
	const uint8_t *meta;
	uint32_t meta_len;
};

struct djmfs__snap {
	uint64_t ino;
	char name[DJMFS_NAME_MAX + 1];
	uint64_t version;
	uint32_t flags;
	uint64_t ctime_ns;
	uint64_t mtime_ns;
	uint8_t unchanged;
	uint32_t n_objs;
	struct djmfs__snap_obj objs[DJMFS_MAX_OBJS];
};

/* LIST entry: str name | u64 ino | u64 size | u64 version | u32 flags |
 * u64 mtime_ns */
struct djmfs__list_entry {
	char name[DJMFS_NAME_MAX + 1];
	uint64_t ino;
	uint64_t size;
	uint64_t version;
	uint32_t flags;
	uint64_t mtime_ns;
};

#define DJMFS_VOLPATH_MAX 1023
#define DJMFS_CLIENT_NAME_MAX 63

/*
 * One decoded frame.  Pointers and views point into the frame bytes, so
 * the frame must outlive the message.  Which member of the union is used
 * depends on op and kind; for a response with status != 0 none is.
 * Bodies (request -> response on success):
 *   CHALLENGE   u32 proto | NONCE client_nonce | str name
 *               -> NONCE server_nonce | PROOF server_proof
 *               (a server without a shared secret answers -EOPNOTSUPP)
 *   HELLO       u32 proto | u32 lease_ms | str name | u8 has_proof |
 *               [PROOF client_proof]
 *               -> u64 session | u32 lease_ms | u32 au_size | u64 data_off
 *                  | u64 n_aus | 16 bytes uuid | str volume
 *   PING        -> u64 now_ns
 *   OPEN        u32 flags | str name -> u32 handle | SNAP
 *   CLOSE       u32 handle ->
 *   CREATE_OBJ  u32 handle | u32 attrs | str name -> u32 obj_id | u64 version
 *   DELETE_OBJ  u32 handle | u32 obj_id -> u32 obj_id | u64 version
 *   SET_ATTR    u32 handle | u32 obj_id | u32 attrs -> u32 obj_id | u64 version
 *   TRIM        u32 handle | u32 obj_id | u64 start -> u64 start | u64 version
 *   RESERVE     u32 handle | u32 n_aus -> u32 n | n * RUN
 *   PUBLISH     u32 handle | PUBLISH body -> u64 version
 *   SYNC_SNAP   u32 handle | KNOWN -> SNAP
 *   LOCK_SNAP   u32 handle | u32 timeout_ms | KNOWN -> SNAP
 *   UNLOCK_SNAP u32 handle ->
 *   UNLINK      str name ->
 *   LIST        str prefix | str after | u32 max
 *               -> u32 n | u8 more | n * LIST entry
 *   STAT        str name -> SNAP (no extents, no META bytes)
 *   DF          -> u32 au_size | u64 total | free | reserved | deferred |
 *                  files | quarantined
 *   STATS       -> the 15 u64 fields of struct djmfs_server_stats, in order
 *                  (a server of the previous release sends the first 12)
 */
struct djmfs__msg {
	struct djmfs__hdr h;
	int32_t status; /* responses */
	/* STATS response: 1 when it came without the repair counters (a
	 * server of the previous release), and is encoded so again. */
	uint8_t stats_short;
	union {
		struct {
			uint32_t proto;
			uint32_t lease_ms;
			char name[DJMFS_CLIENT_NAME_MAX + 1];
			uint8_t has_proof; /* 0 or 1: proof follows */
			uint8_t proof[DJMFS_AUTH_PROOF];
		} hello_req;
		struct {
			uint32_t proto;
			uint8_t nonce[DJMFS_AUTH_NONCE];
			char name[DJMFS_CLIENT_NAME_MAX + 1];
		} challenge_req;
		struct {
			uint8_t nonce[DJMFS_AUTH_NONCE];
			uint8_t proof[DJMFS_AUTH_PROOF];
		} challenge_resp;
		struct {
			uint64_t session;
			uint32_t lease_ms;
			uint32_t au_size;
			uint64_t data_off;
			uint64_t n_aus;
			uint8_t uuid[16];
			char volume[DJMFS_VOLPATH_MAX + 1];
		} hello_resp;
		struct {
			uint64_t now_ns;
		} ping_resp;
		struct {
			uint32_t flags;
			char name[DJMFS_NAME_MAX + 1];
		} open_req;
		struct {
			uint32_t handle;
			struct djmfs__snap snap;
		} open_resp;
		struct {
			uint32_t handle; /* CLOSE, UNLOCK_SNAP */
		} handle_req;
		struct {
			uint32_t handle;
			uint32_t attrs;
			char name[DJMFS_OBJ_NAME_MAX + 1];
		} create_obj_req;
		struct {
			uint32_t handle;
			uint32_t obj_id;
			uint32_t attrs; /* SET_ATTR only */
		} obj_req; /* DELETE_OBJ, SET_ATTR */
		struct {
			uint32_t obj_id;
			uint64_t version;
		} obj_resp; /* CREATE_OBJ, DELETE_OBJ, SET_ATTR */
		struct {
			uint32_t handle;
			uint32_t obj_id;
			uint64_t start;
		} trim_req;
		struct {
			uint64_t start; /* the object's start after it */
			uint64_t version;
		} trim_resp;
		struct {
			uint32_t handle;
			uint32_t n_aus;
		} reserve_req;
		struct djmfs__runv reserve_resp;
		struct {
			uint32_t handle;
			struct djmfs__publish pub;
		} publish_req;
		struct {
			uint64_t version;
		} publish_resp;
		struct {
			uint32_t handle;
			uint32_t timeout_ms; /* LOCK_SNAP only */
			struct djmfs__known known;
		} snap_req; /* SYNC_SNAP, LOCK_SNAP */
		struct djmfs__snap snap_resp; /* SYNC_SNAP, LOCK_SNAP, STAT */
		struct {
			char name[DJMFS_NAME_MAX + 1];
		} name_req; /* UNLINK, STAT */
		struct {
			char prefix[DJMFS_NAME_MAX + 1];
			char after[DJMFS_NAME_MAX + 1];
			uint32_t max;
		} list_req;
		struct {
			uint32_t n;
			uint8_t more;
			const uint8_t *p; /* the n entries, checked */
			size_t plen;
		} list_resp;
		struct djmfs_df df_resp;
		struct djmfs_server_stats stats_resp;
	} u;
};

/*
 * Decodes one whole frame (header included; @n must be exactly
 * DJMFS_HDR_SIZE + h.len).  Every count is checked against the bytes
 * left, every string against its limit, and trailing bytes are an error.
 * Returns 0, -EPROTO, or -EBADMSG.
 */
int djmfs__msg_decode(const uint8_t *frame, size_t n, struct djmfs__msg *m);

/* Appends one frame for @m (its h.op, h.kind, h.id and, for responses,
 * status; h.len is computed).  Returns 0, -EINVAL (a count or string over
 * its limit), -EMSGSIZE (payload over DJMFS_FRAME_MAX), or -ENOMEM. */
int djmfs__msg_encode(struct djmfs__buf *b, const struct djmfs__msg *m);

/* Iterates LIST entries: returns 1 with @e filled, 0 at the end, or
 * -EBADMSG.  @c starts on list_resp.p/plen. */
int djmfs__list_next(struct djmfs__cur *c, struct djmfs__list_entry *e);
void djmfs__put_list_entry(struct djmfs__buf *b,
			   const struct djmfs__list_entry *e);

/* ------------------------------------------------------------------ */
/* Shared-secret handshake                                              */
/* ------------------------------------------------------------------ */

/*
 * djmfs_auth.c, for the server's connection gate (djmfs_gate.c) and
 * the client's HELLO (djmfs_client.c).  The secret never travels: each
 * side proves it knows it with an HMAC-SHA256 over both sides' nonces
 * and the session parameters, under a label naming the side, so a proof
 * can neither be replayed on another connection nor reflected as the
 * other side's.  It authenticates the peers, nothing more: later frames
 * are neither encrypted nor signed (a hostile network needs a tunnel).
 *
 *   client                                   server (with a secret)
 *   CHALLENGE proto, client_nonce, name -->
 *                                      <--  server_nonce,
 *                                           PROOF(server, ...)
 *   (checks the server's proof; a server
 *    that cannot give it is refused)
 *   HELLO proto, lease, name,
 *         PROOF(client, ...)            -->  (checks it; refuses and
 *                                            closes on a mismatch)
 *                                      <--  session ...
 *
 * PROOF(side, proto, name, cn, sn) = HMAC-SHA256(secret,
 *     label(side) | u32 proto | u16 len | name | cn | sn)
 * with label "djmfs-auth server\0" or "djmfs-auth client\0".
 */
enum djmfs__auth_side { DJMFS_AUTH_SERVER, DJMFS_AUTH_CLIENT };

/* @n bytes from the system's CSPRNG.  Returns 0 or -EIO. */
int djmfs__auth_nonce(uint8_t *out, size_t n);

/* Computes @side's proof.  Returns 0, -EINVAL (no secret, or one over
 * DJMFS_SECRET_MAX bytes), or -EIO (libcrypto failed). */
int djmfs__auth_proof(const void *secret, size_t secret_len,
		      enum djmfs__auth_side side, uint32_t proto,
		      const char *name, const uint8_t cnonce[DJMFS_AUTH_NONCE],
		      const uint8_t snonce[DJMFS_AUTH_NONCE],
		      uint8_t out[DJMFS_AUTH_PROOF]);

/* Checks @proof against the one @side should have sent, in constant
 * time.  Returns 0 (it matches), -EACCES (it does not), or as
 * djmfs__auth_proof. */
int djmfs__auth_verify(const void *secret, size_t secret_len,
		       enum djmfs__auth_side side, uint32_t proto,
		       const char *name,
		       const uint8_t cnonce[DJMFS_AUTH_NONCE],
		       const uint8_t snonce[DJMFS_AUTH_NONCE],
		       const uint8_t proof[DJMFS_AUTH_PROOF]);

/* ------------------------------------------------------------------ */
/* Superblock                                                          */
/* ------------------------------------------------------------------ */

/*
 * Layout, every region aligned to 1 MiB (the data area also to the unit):
 *   [sb copy 0][sb copy 1 at 64 KiB][journal][checkpoint slot 0][slot 1]
 *   [data area][copy B: sb copy 2, journal, slot 0, slot 1]
 * Copy B (format 2) sits at mirror_off with the same relative offsets as
 * the front: a second copy of every metadata byte, far from the first.
 * Format 1 has one superblock (offset 0) and no copy B.
 * Superblock: "DJMFSVOL" | u32 version | u32 sb_size | uuid[16] |
 *   u32 au_size | u32 block_size | u64 vol_size | journal_off |
 *   journal_len | ckpt_off[0] | ckpt_off[1] | ckpt_len | data_off |
 *   n_aus | created_ns, then
 *   version 1: u32 crc32c of bytes [0, 112)
 *   version 2: u64 mirror_off | u32 features | u32 copy | u64 sb_gen |
 *     u32 csum_shift | u32 0 | u64 upgraded_ns | zeros to 252 |
 *     u32 crc32c of bytes [0, 252)
 * The three copies of a version 2 superblock differ only in `copy` (where
 * they lie: 0, 1, 2) and the CRC.
 */
#define DJMFS_SB_MAGIC "DJMFSVOL"
#define DJMFS_SB_VERSION 2
#define DJMFS_SB_SIZE 4096
#define DJMFS_BLOCK 4096
#define DJMFS_SB_COPY1_OFF (64u << 10)
#define DJMFS_SB_COPIES 3
#define DJMFS_FEAT_META_MIRROR 0x1u /* copy B of the metadata exists */
#define DJMFS_FEAT_DATA_CSUM 0x2u

struct djmfs__sb {
	uint32_t version;
	uint8_t uuid[16];
	uint32_t au_size;
	uint32_t block_size;
	uint64_t vol_size;
	uint64_t journal_off;
	uint64_t journal_len;
	uint64_t ckpt_off[2];
	uint64_t ckpt_len;
	uint64_t data_off;
	uint64_t n_aus;
	uint64_t created_ns;
	/* Version 2; all 0 on a version 1 volume. */
	uint64_t mirror_off;  /* copy B (and sb copy 2); 0: none */
	uint32_t features;    /* DJMFS_FEAT_* */
	uint32_t copy;	      /* which copy these bytes were read from */
	uint64_t sb_gen;      /* 1 at mkfs, +1 at each rewrite (upgrade) */
	uint32_t csum_shift;
	uint64_t upgraded_ns; /* 0 unless made by upgrading format 1 */
	/* Derived by decode (0 without copy B), so no caller computes them. */
	uint64_t mj_off;      /* journal copy B */
	uint64_t mckpt_off[2]; /* checkpoint slots copy B */
};

/* Reads @n bytes at @off, hiding EINTR and short reads.  Returns 0,
 * -ENODATA (end of file first), or -errno. */
int djmfs__pread_full(int fd, void *p, size_t n, uint64_t off);
/* Nonzero when @au is a power of two in [64 KiB, 64 MiB]. */
int djmfs__au_size_ok(uint64_t au);
/* Nonzero when @p (@n bytes) has a superblock's magic and CRC (at the
 * place its version puts it): it was written as one, whether or not its
 * geometry holds. */
int djmfs__sb_raw_valid(const uint8_t *p, size_t n);
/* Returns 0, -EUCLEAN (no magic, bad CRC, unknown version), or -EINVAL
 * (inconsistent geometry: regions overlapping or past vol_size).  Fills
 * the derived copy B offsets. */
int djmfs__sb_decode(const uint8_t *p, size_t n, struct djmfs__sb *sb);
/* Sets mj_off and mckpt_off from mirror_off and the front's offsets. */
void djmfs__sb_derive(struct djmfs__sb *sb);
/* Where superblock copy @copy lies on the volume @sb describes (copy 2:
 * mirror_off, 0 when there is none). */
uint64_t djmfs__sb_copy_off(const struct djmfs__sb *sb, unsigned copy);

/* What reading one superblock copy found. */
struct djmfs__sb_copy {
	uint64_t off;
	int err;	 /* 0 or -errno: -EUCLEAN no magic or bad CRC, -EINVAL
			    geometry, -ENODATA past the end, -EIO... */
	int same;	 /* its bytes are exactly the chosen superblock's */
	uint32_t version;
	uint64_t sb_gen;
	int repaired;	 /* the server rewrote it from the chosen copy */
};

/*
 * Reads the superblock copies of the volume on @fd and picks one: of
 * copies 0 and 1, the valid one with the highest (version, sb_gen), its
 * `copy` field matching its place; copy 2 (found at the chosen copy's
 * mirror_off, or by scanning back from the end of @fd in 1 MiB steps
 * when neither front copy is valid) only when neither is.  Fills *sb
 * and, when @st is not NULL, what each copy held (st[2].off 0: no copy 2
 * expected).  Works on O_DIRECT descriptors.  Returns 0, -EUCLEAN (no
 * valid copy), -EINVAL (only copies with a bad geometry), or the read
 * error of copy 0 when no copy could be read.
 */
int djmfs__sb_read_copies(int fd, struct djmfs__sb *sb,
			  struct djmfs__sb_copy st[DJMFS_SB_COPIES]);
/* The chosen superblock, as djmfs__sb_read_copies() picks it. */
int djmfs__sb_read_fd(int fd, struct djmfs__sb *sb);
/* CRC of the uuid: the seed of journal and checkpoint CRCs. */
uint32_t djmfs__sb_seed(const struct djmfs__sb *sb);

/* Allocation unit <-> volume byte offset. */
static inline uint64_t djmfs__au_off(const struct djmfs__sb *sb, uint64_t au)
{
	return sb->data_off + au * (uint64_t)sb->au_size;
}

#endif /* DJMFS_PROTO_H */
