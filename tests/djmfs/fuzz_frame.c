/*
 * libFuzzer target for the protocol decoder (djmfs_wire.c).  The input is
 * read as the byte stream a server would receive: frames one after the
 * other, each decoded from a heap copy of exactly its own bytes so that
 * AddressSanitizer sees any read past it.  The decoder is strict enough
 * that a frame it accepts has exactly one encoding, so every accepted
 * frame must re-encode to the very bytes it came from; anything else is a
 * bug and aborts.
 *
 * Built with -DDJMFS_FUZZ_SEED_MAIN (and without -fsanitize=fuzzer) the
 * file instead becomes a small program that writes a seed corpus of valid
 * frames into the directory given as its argument (tests/djmfs/fuzz.sh).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *frame, size_t n)
{
	static struct djmfs__msg m, again;
	struct djmfs__buf b;
	uint8_t *copy = malloc(n);

	if (!copy)
		abort();
	memcpy(copy, frame, n);
	djmfs__buf_init(&b);
	if (djmfs__msg_decode(copy, n, &m) != 0)
		goto out;
	if (djmfs__msg_encode(&b, &m) != 0)
		abort(); /* the encoder refused what the decoder accepted */
	if (b.len != n || memcmp(b.p, frame, n) != 0)
		abort(); /* the bytes do not survive a round trip */
	if (djmfs__msg_decode(b.p, b.len, &again) != 0)
		abort();
out:
	djmfs__buf_free(&b);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct djmfs__hdr h;
	size_t off = 0;

	while (size - off >= DJMFS_HDR_SIZE) {
		int r = djmfs__hdr_decode(data + off, size - off, &h);
		size_t n = DJMFS_HDR_SIZE + (size_t)h.len;

		/* A server closes the connection on a bad header, and a
		 * short frame is one it is still waiting for. */
		if (r != 0 || n > size - off) {
			if (r == 0 || r == -EPROTO)
				check_frame(data + off, size - off);
			break;
		}
		check_frame(data + off, n);
		off += n;
	}
	return 0;
}

#ifdef DJMFS_FUZZ_SEED_MAIN
#include <stdio.h>

static uint8_t bytes[256];

static void seed_snap(struct djmfs__snap *s)
{
	s->ino = 7;
	strcpy(s->name, "cam/1");
	s->version = 3;
	s->n_objs = 2;
	s->objs[0].id = 1;
	s->objs[0].attrs = DJMFS_ATTR_META;
	strcpy(s->objs[0].name, "hdr");
	s->objs[0].size = 16;
	s->objs[0].meta = bytes;
	s->objs[0].meta_len = 16;
	s->objs[1].id = 2;
	s->objs[1].attrs = DJMFS_ATTR_DATA | DJMFS_ATTR_SYNC;
	strcpy(s->objs[1].name, "video");
	s->objs[1].size = 8192;
	s->objs[1].ext_total = 2;
	s->objs[1].ext_base = 0;
	s->objs[1].ext.p = bytes;
	s->objs[1].ext.n = 2;
	s->objs[1].ck_base = 1;
	s->objs[1].ck.p = bytes;
	s->objs[1].ck.n = 1;
	s->objs[1].last_ck = 0x1234;
}

/* Fills seed @i (op, kind and body); returns 0 past the last one. */
static int seed_msg(unsigned i, struct djmfs__msg *m)
{
	static const uint16_t plain_ops[] = {
		DJMFS_OP_PING, DJMFS_OP_CLOSE, DJMFS_OP_DF, DJMFS_OP_STATS,
		DJMFS_OP_UNLOCK_SNAP,
	};
	unsigned n_plain = sizeof(plain_ops) / sizeof(plain_ops[0]);

	memset(m, 0, sizeof(*m));
	m->h.id = i;
	if (i < 2 * n_plain) {
		m->h.op = plain_ops[i / 2];
		m->h.kind = (uint8_t)(i & 1);
		return 1;
	}
	i -= 2 * n_plain;
	switch (i) {
	case 0:
		m->h.op = DJMFS_OP_HELLO;
		m->u.hello_req.proto = DJMFS_PROTO_VERSION;
		strcpy(m->u.hello_req.name, "seed");
		return 1;
	case 1:
		m->h.op = DJMFS_OP_OPEN;
		m->h.kind = DJMFS_RESP;
		seed_snap(&m->u.open_resp.snap);
		return 1;
	case 2:
		m->h.op = DJMFS_OP_PUBLISH;
		m->u.publish_req.pub.n_objs = 2;
		m->u.publish_req.pub.objs[0].has_meta = 1;
		m->u.publish_req.pub.objs[0].size = 4;
		m->u.publish_req.pub.objs[0].meta = bytes;
		m->u.publish_req.pub.objs[0].meta_len = 4;
		m->u.publish_req.pub.objs[1].ext.p = bytes;
		m->u.publish_req.pub.objs[1].ext.n = 3;
		m->u.publish_req.pub.objs[1].ck.p = bytes;
		m->u.publish_req.pub.objs[1].ck.n = 2;
		m->u.publish_req.pub.objs[1].last_ck = 9;
		return 1;
	case 3:
		m->h.op = DJMFS_OP_LOCK_SNAP;
		m->u.snap_req.known.n = 2;
		return 1;
	case 4:
		m->h.op = DJMFS_OP_RESERVE;
		m->h.kind = DJMFS_RESP;
		m->u.reserve_resp.p = bytes;
		m->u.reserve_resp.n = 2;
		return 1;
	case 5:
		m->h.op = DJMFS_OP_STAT;
		m->h.kind = DJMFS_RESP;
		m->status = -ENOENT;
		return 1;
	case 6:
		m->h.op = DJMFS_OP_LIST;
		strcpy(m->u.list_req.prefix, "cam");
		m->u.list_req.max = 10;
		return 1;
	case 7:
		m->h.op = DJMFS_OP_CHALLENGE;
		m->u.challenge_req.proto = DJMFS_PROTO_VERSION;
		memset(m->u.challenge_req.nonce, 0x5a, DJMFS_AUTH_NONCE);
		strcpy(m->u.challenge_req.name, "seed");
		return 1;
	case 8:
		m->h.op = DJMFS_OP_CHALLENGE;
		m->h.kind = DJMFS_RESP;
		memset(m->u.challenge_resp.nonce, 0x11, DJMFS_AUTH_NONCE);
		memset(m->u.challenge_resp.proof, 0x22, DJMFS_AUTH_PROOF);
		return 1;
	case 9:
		m->h.op = DJMFS_OP_HELLO;
		m->u.hello_req.proto = DJMFS_PROTO_VERSION;
		strcpy(m->u.hello_req.name, "seed");
		m->u.hello_req.has_proof = 1;
		memset(m->u.hello_req.proof, 0x33, DJMFS_AUTH_PROOF);
		return 1;
	case 10:
		m->h.op = DJMFS_OP_TRIM;
		m->u.trim_req.handle = 3;
		m->u.trim_req.obj_id = 2;
		m->u.trim_req.start = 5000;
		return 1;
	case 11:
		m->h.op = DJMFS_OP_TRIM;
		m->h.kind = DJMFS_RESP;
		m->u.trim_resp.start = 5000;
		m->u.trim_resp.version = 4;
		return 1;
	case 12:
		/* A trimmed object: its map from extent 1, its sums from
		 * the start's cblock. */
		m->h.op = DJMFS_OP_SYNC_SNAP;
		m->h.kind = DJMFS_RESP;
		seed_snap(&m->u.snap_resp);
		m->u.snap_resp.objs[1].size = 140000;
		m->u.snap_resp.objs[1].start = 70000;
		m->u.snap_resp.objs[1].ext_first = 1;
		m->u.snap_resp.objs[1].first_at = 65536;
		m->u.snap_resp.objs[1].ext_base = 1;
		m->u.snap_resp.objs[1].ext.n = 1;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct djmfs__msg m;
	struct djmfs__buf b;
	char path[4096];
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	for (unsigned i = 0; seed_msg(i, &m); i++) {
		FILE *f;

		djmfs__buf_init(&b);
		if (djmfs__msg_encode(&b, &m) != 0) {
			fprintf(stderr, "seed %u: encode failed\n", i);
			return 1;
		}
		LLVMFuzzerTestOneInput(b.p, b.len); /* aborts if broken */
		snprintf(path, sizeof(path), "%s/frame-%02u", argv[1], i);
		f = fopen(path, "wb");
		if (!f || fwrite(b.p, 1, b.len, f) != b.len)
			rc = 1;
		if (f && fclose(f) != 0)
			rc = 1;
		djmfs__buf_free(&b);
	}
	if (rc)
		perror("writing seeds");
	return rc;
}
#endif
