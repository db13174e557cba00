/*
 * libFuzzer target for the journal record decoder (djmfs_jrec.c).  The
 * input is read as a journal area: records one after the other, decoded
 * with a fixed seed until one fails, as replay does.  Random bytes almost
 * never carry a valid CRC, so a second pass re-seals each record's CRC
 * (per its len field) in a private copy before decoding it; that lets the
 * fuzzer reach the payload decoders instead of stopping at the checksum.
 * A record the decoder accepts has exactly one encoding, so it must
 * re-encode to the very bytes it came from; anything else aborts.
 *
 * Built with -DDJMFS_FUZZ_SEED_MAIN (and without -fsanitize=fuzzer) the
 * file instead becomes a small program that writes a seed corpus of valid
 * records into the directory given as its argument (tests/djmfs/fuzz.sh).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "djmfs_store.h"

#define FUZZ_SEED 0xC0FFEE11u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const uint8_t *p, size_t used)
{
	static struct djmfs__jrec r, again;
	struct djmfs__buf b;
	size_t used2;

	djmfs__buf_init(&b);
	if (djmfs__jrec_decode(p, used, FUZZ_SEED, &r, &used2) != 0 ||
	    used2 != used)
		abort(); /* decoding the same bytes again must agree */
	if (djmfs__jrec_encode(&b, FUZZ_SEED, &r) != 0)
		abort(); /* the encoder refused what the decoder accepted */
	if (b.len != used || memcmp(b.p, p, used) != 0)
		abort(); /* the bytes do not survive a round trip */
	if (djmfs__jrec_decode(b.p, b.len, FUZZ_SEED, &again, &used2) != 0)
		abort();
	djmfs__buf_free(&b);
}

/* Walks the records in @p; with @reseal, fixes each CRC first. */
static void walk(uint8_t *p, size_t size, int reseal)
{
	static struct djmfs__jrec r;
	size_t off = 0, used;

	while (off < size) {
		size_t left = size - off;

		if (reseal && left >= DJMFS_JREC_HDR) {
			uint32_t len = djmfs__le32(p + off);

			if (len <= left - DJMFS_JREC_HDR) {
				uint32_t crc = djmfs__crc32c(
					FUZZ_SEED, p + off + 8,
					DJMFS_JREC_HDR - 8 + (size_t)len);

				for (unsigned i = 0; i < 4; i++)
					p[off + 4 + i] = (uint8_t)(crc >> (8 * i));
			}
		}
		if (djmfs__jrec_decode(p + off, left, FUZZ_SEED, &r, &used))
			break;
		if (used < DJMFS_JREC_HDR || used > left)
			abort();
		check_record(p + off, used);
		off += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Heap copies of exactly @size bytes, so ASan sees an over-read. */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		abort();
	memcpy(copy, data, size);
	walk(copy, size, 0);
	walk(copy, size, 1);
	free(copy);
	return 0;
}

#ifdef DJMFS_FUZZ_SEED_MAIN
#include <stdio.h>

static uint8_t bytes[64];

/* Fills seed record @t (one per type). */
static void seed_rec(unsigned t, struct djmfs__jrec *r)
{
	memset(r, 0, sizeof(*r));
	r->epoch = 1;
	r->seq = t;
	/* PUBLISH_CK is the volume type of a PUBLISH with sums. */
	r->type = (uint16_t)(t == DJMFS_J_PUBLISH_CK ? DJMFS_J_PUBLISH : t);
	r->ino = 2;
	if (t == DJMFS_J_FILE_CREATE)
		strcpy(r->u.create.name, "cam/1");
	if (t == DJMFS_J_OBJ_CREATE)
		strcpy(r->u.obj.name, "video");
	if (t == DJMFS_J_QUARANTINE)
		strcpy(r->u.quarantine.why, "overlap");
	if (t == DJMFS_J_TRIM) {
		r->u.trim.obj_id = 2;
		r->u.trim.start = 70000;
	}
	if (t == DJMFS_J_RESERVE || t == DJMFS_J_RELEASE) {
		r->u.runs.p = bytes;
		r->u.runs.n = 2;
	}
	if (r->type == DJMFS_J_PUBLISH) {
		r->u.publish.has_ck = t == DJMFS_J_PUBLISH_CK;
		r->u.publish.objs[1].size = 70000;
		r->u.publish.objs[1].ck.p = bytes;
		r->u.publish.objs[1].ck.n = r->u.publish.has_ck ? 1 : 0;
		r->u.publish.objs[1].last_ck = r->u.publish.has_ck ? 77 : 0;
		r->u.publish.n_objs = 2;
		r->u.publish.objs[0].has_meta = 1;
		r->u.publish.objs[0].size = 8;
		r->u.publish.objs[0].meta = bytes;
		r->u.publish.objs[0].meta_len = 8;
		r->u.publish.objs[1].ext.p = bytes;
		r->u.publish.objs[1].ext.n = 2;
	}
}

/* One seed per type, and one with every type in a row. */
int main(int argc, char **argv)
{
	struct djmfs__buf all, one;
	struct djmfs__jrec r;
	char path[4096];
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	djmfs__buf_init(&all);
	for (unsigned t = 1; t <= DJMFS_J_MAX; t++) {
		struct djmfs__buf *b = t < DJMFS_J_MAX ? &one : &all;
		FILE *f;

		djmfs__buf_init(&one);
		if (t < DJMFS_J_MAX) {
			seed_rec(t, &r);
			if (djmfs__jrec_encode(&one, FUZZ_SEED, &r) ||
			    djmfs__jrec_encode(&all, FUZZ_SEED, &r)) {
				fprintf(stderr, "seed %u: encode failed\n", t);
				return 1;
			}
		}
		LLVMFuzzerTestOneInput(b->p, b->len); /* aborts if broken */
		snprintf(path, sizeof(path), "%s/jrec-%02u", argv[1], t);
		f = fopen(path, "wb");
		if (!f || fwrite(b->p, 1, b->len, f) != b->len)
			rc = 1;
		if (f && fclose(f) != 0)
			rc = 1;
		djmfs__buf_free(&one);
	}
	djmfs__buf_free(&all);
	if (rc)
		perror("writing seeds");
	return rc;
}
#endif
