/*
 * djmfs-flip: the damage tool of the metadata torture test
 * (tests/djmfs/torture.sh).  It reads a volume's superblock, finds the
 * metadata bytes in use (each superblock copy's CRC-covered bytes, each
 * journal copy up to the end of its log plus 4 KiB, each checkpoint
 * slot's header and image in each copy), picks damage over them from a
 * seed, applies one flipped bit or one zeroed 4 KiB sector, and says
 * what the damage hit: the region, and for the journal which records
 * (the last one matters: with one copy of the journal a damaged last
 * record looks like a torn tail).  It reads the volume with the proto
 * library's superblock code and CRC, and walks records and slot headers
 * by their on-disk layout (djmfs_store.h, djmfs_journal.c), so it needs
 * no server code.
 *
 *   regions VOLUME                  one line per region in use:
 *       "REGION OFFSET LENGTH INFO"
 *   pick VOLUME SEED FLIPS ZEROS    FLIPS + ZEROS cases, one per line:
 *       "flip OFFSET BIT" or "zero OFFSET", mixed evenly; no sector is
 *       zeroed twice (zero cases beyond the sectors in use are flips)
 *   flip VOLUME OFFSET BIT          flips one bit; prints what it hit
 *   zero VOLUME OFFSET              zeroes the 4 KiB sector holding
 *       OFFSET; prints what it hit
 *   where VOLUME OFFSET [LENGTH]    what that range is, without writing
 *
 * What a hit is printed as, one line of KEY=VALUE words: format (the
 * superblock's version), region (superblock or superblockN, journal,
 * slotN.header, slotN.image, each B.-prefixed for copy B, or unused),
 * rel (offset in it) and, for the journal, current (its epoch is the
 * newest checkpoint's or later: replay reads it; else it is an older
 * epoch's leftover), records (in the log), rec_first/rec_last (record
 * indexes touched, -1 for the bytes after the log), last_hit (1 when the
 * last record of a current log is touched), seq; for slots gen and
 * newest.  `flip` and `zero` describe the volume before the damage.
 *
 * Offsets are picked per region, half of the weight spread evenly over
 * the regions and half by their sizes, so the superblock and the slots
 * (a few hundred bytes) are hit as well as the journal (tens of KiB).
 *
 * Formats 1 and 2: discover() lists the areas of each (format 2: three
 * superblock copies and, with a mirror, copy B of the journal and slots,
 * named "B.journal", "B.slot0.header"...).  Exit status: 0 done, 1 error
 * (message on stderr), 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djmfs_proto.h"

#define PROG "djmfs-flip"
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* On-disk layout that the proto library does not export. */
#define SB_USED_V1 116	 /* bytes [0, 112) and their CRC */
#define SB_USED_V2 256	 /* bytes [0, 252) and their CRC */
#define JREC_HDR 32	 /* u32 len | u32 crc | u64 epoch | u64 seq | ... */
#define JREC_CRC_FROM 8	 /* the record CRC covers everything after it */
#define CKPT_MAGIC "DJMFSCKP"
#define CKPT_HDR 64
#define CKPT_CRC_AT 60
#define SECTOR 4096u
#define LOG_SLACK 4096u /* bytes past the end of the log in use */
#define MAX_AREAS 16

enum kind { K_SB, K_JOURNAL, K_SLOT_HDR, K_SLOT_IMG };

struct jrec_pos {
	uint64_t off; /* from the start of the journal */
	uint64_t len; /* header included */
	uint64_t seq;
};

/* One metadata copy's journal, walked as replay reads it. */
struct jlog {
	struct jrec_pos *recs;
	size_t n;
	uint64_t epoch; /* of the record at 0; 0 when there is none */
	uint64_t end;	/* journal offset where the log ends */
	const char *why; /* what ended it */
	int current;	/* its epoch follows the newest checkpoint: replay
			   reads it (else it is an older epoch's leftover) */
};

struct area {
	enum kind kind;
	char name[32];
	uint64_t off, len; /* volume bytes in use */
	int slot;	   /* slots: 0 or 1 */
	uint64_t gen;	   /* slots: generation, 0 if the header is bad */
	int newest;	   /* slots: holds the highest valid generation */
	const struct jlog *log; /* journal: its records */
};

struct vol {
	int fd;
	struct djmfs__sb sb;
	uint32_t seed;
	struct area a[MAX_AREAS];
	size_t n;
	struct jlog log[2]; /* per metadata copy: A, and B where there is one */
};

static int die(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(-err));
	return EXIT_FAIL;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: %s regions VOLUME\n"
		"       %s pick VOLUME SEED FLIPS ZEROS\n"
		"       %s flip VOLUME OFFSET BIT\n"
		"       %s zero VOLUME OFFSET\n"
		"       %s where VOLUME OFFSET [LENGTH]\n",
		PROG, PROG, PROG, PROG, PROG);
	return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static struct area *add_area(struct vol *v, enum kind k, const char *name,
			     uint64_t off, uint64_t len)
{
	struct area *a = &v->a[v->n++];

	memset(a, 0, sizeof(*a));
	a->kind = k;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->off = off;
	a->len = len;
	return a;
}

/* Walks records from journal offset 0 while each decodes (length, CRC)
 * and continues the first one's epoch and seq; where it stops is the end
 * of the log as replay sees it on an undamaged volume. */
static int walk_journal(struct vol *v, uint64_t base, struct jlog *l)
{
	uint64_t jl = v->sb.journal_len, pos = 0;
	uint8_t *buf = malloc(jl);
	size_t cap = 0;
	int err;

	memset(l, 0, sizeof(*l));
	if (!buf)
		return -ENOMEM;
	err = djmfs__pread_full(v->fd, buf, jl, base);
	while (err == 0) {
		const uint8_t *p = buf + pos;
		uint64_t len, epoch, seq;

		l->why = "end of area";
		if (jl - pos < JREC_HDR)
			break;
		len = djmfs__le32(p);
		epoch = djmfs__le64(p + 8);
		seq = djmfs__le64(p + 16);
		l->why = "zero header";
		if (len == 0 && djmfs__le32(p + 4) == 0)
			break;
		l->why = "bad length";
		if (len > jl - pos - JREC_HDR)
			break;
		l->why = "bad CRC";
		if (djmfs__crc32c(v->seed, p + JREC_CRC_FROM,
				  JREC_HDR - JREC_CRC_FROM + len) !=
		    djmfs__le32(p + 4))
			break;
		l->why = "older epoch";
		if (l->n > 0 &&
		    (epoch != l->epoch || seq != l->recs[l->n - 1].seq + 1))
			break;
		if (l->n == cap) {
			size_t nc = cap ? 2 * cap : 256;
			void *q = realloc(l->recs, nc * sizeof(*l->recs));

			if (!q) {
				err = -ENOMEM;
				break;
			}
			l->recs = q;
			cap = nc;
		}
		if (l->n == 0)
			l->epoch = epoch;
		l->recs[l->n++] = (struct jrec_pos){ pos, JREC_HDR + len, seq };
		pos += JREC_HDR + len;
	}
	l->end = pos;
	free(buf);
	return err;
}

/* The two slots of one copy at @off[0], @off[1]: each header (in use
 * even when blank: damage there is damage to a slot), and the image its
 * valid header names. */
static int add_slots(struct vol *v, const uint64_t off[2], const char *copy)
{
	uint64_t best = 0;

	for (int s = 0; s < 2; s++) {
		uint8_t h[CKPT_HDR];
		struct area *a;
		char name[32];
		uint64_t gen = 0, img = 0;
		int err = djmfs__pread_full(v->fd, h, sizeof(h), off[s]);

		if (err)
			return err;
		if (memcmp(h, CKPT_MAGIC, 8) == 0 &&
		    djmfs__le32(h + CKPT_CRC_AT) ==
			    djmfs__crc32c(v->seed, h, CKPT_CRC_AT)) {
			gen = djmfs__le64(h + 16);
			img = djmfs__le64(h + 32);
			if (img > v->sb.ckpt_len - CKPT_HDR)
				gen = img = 0;
		}
		snprintf(name, sizeof(name), "%sslot%d.header", copy, s);
		a = add_area(v, K_SLOT_HDR, name, off[s], CKPT_HDR);
		a->slot = s;
		a->gen = gen;
		if (img > 0) {
			snprintf(name, sizeof(name), "%sslot%d.image", copy, s);
			a = add_area(v, K_SLOT_IMG, name, off[s] + CKPT_HDR,
				     img);
			a->slot = s;
			a->gen = gen;
		}
		if (gen > best)
			best = gen;
	}
	for (size_t i = 0; i < v->n; i++) {
		struct area *a = &v->a[i];

		if ((a->kind == K_SLOT_HDR || a->kind == K_SLOT_IMG) &&
		    a->off >= off[0] && a->off < off[1] + v->sb.ckpt_len)
			a->newest = best > 0 && a->gen == best;
	}
	return 0;
}

/* One metadata copy's journal (into @log) and slots, at @journal_off and
 * @ckpt_off; @copy prefixes the area names ("" for copy A, "B."). */
static int add_copy(struct vol *v, uint64_t journal_off,
		    const uint64_t ckpt_off[2], const char *copy,
		    struct jlog *log)
{
	struct area *j;
	char name[32];
	uint64_t used;
	size_t first = v->n;
	int err = walk_journal(v, journal_off, log);

	if (err)
		return err;
	used = log->end + LOG_SLACK;
	if (used > v->sb.journal_len)
		used = v->sb.journal_len;
	snprintf(name, sizeof(name), "%sjournal", copy);
	j = add_area(v, K_JOURNAL, name, journal_off, used);
	j->log = log;
	err = add_slots(v, ckpt_off, copy);
	for (size_t i = first; i < v->n && err == 0; i++) {
		if (v->a[i].newest)
			log->current = log->epoch >= v->a[i].gen;
	}
	return err;
}

/* Every metadata region in use.  Format 1: one superblock (its CRC-
 * covered bytes) and one copy of the journal and slots at the front.
 * Format 2 adds superblock copies 1 (64 KiB) and 2 (mirror_off) and, with
 * a mirror, copy B of the journal and slots at the offsets the decoder
 * derives (mj_off, mckpt_off).  A later format adds its areas here. */
static int discover(struct vol *v)
{
	const struct djmfs__sb *sb = &v->sb;
	int err;

	if (sb->version != 1 && sb->version != 2) {
		fprintf(stderr, "%s: format %u: its regions are not known here "
			"(see discover())\n", PROG, sb->version);
		return -ENOTSUP;
	}
	for (unsigned c = 0; c < DJMFS_SB_COPIES; c++) {
		uint64_t off = djmfs__sb_copy_off(sb, c);
		char name[32];

		if (sb->version == 1 && c > 0)
			break;
		if (c > 0 && off == 0)
			continue;
		snprintf(name, sizeof(name), sb->version == 1 ? "superblock" :
			 "superblock%u", c);
		add_area(v, K_SB, name, off,
			 sb->version == 1 ? SB_USED_V1 : SB_USED_V2);
	}
	err = add_copy(v, sb->journal_off, sb->ckpt_off, "", &v->log[0]);
	if (err == 0 && sb->mj_off)
		err = add_copy(v, sb->mj_off, sb->mckpt_off, "B.", &v->log[1]);
	return err;
}

static int vol_open(struct vol *v, const char *path, int writable)
{
	int err;

	memset(v, 0, sizeof(*v));
	v->fd = open(path, writable ? O_RDWR : O_RDONLY);
	if (v->fd < 0)
		return -errno;
	/* The copy the server would choose: the tool damages a volume
	 * whose superblock is intact, and describes it as that copy does. */
	err = djmfs__sb_read_fd(v->fd, &v->sb);
	if (err)
		return err;
	v->seed = djmfs__sb_seed(&v->sb);
	return discover(v);
}

static void vol_close(struct vol *v)
{
	free(v->log[0].recs);
	free(v->log[1].recs);
	if (v->fd >= 0)
		close(v->fd);
}

static void print_regions(const struct vol *v)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct area *a = &v->a[i];

		printf("%s %" PRIu64 " %" PRIu64, a->name, a->off, a->len);
		if (a->kind == K_JOURNAL)
			printf(" epoch=%" PRIu64 " current=%d records=%zu "
			       "end=%" PRIu64 " ended_by=\"%s\"",
			       a->log->epoch, a->log->current, a->log->n,
			       a->log->end, a->log->why);
		if (a->kind == K_SLOT_HDR || a->kind == K_SLOT_IMG)
			printf(" gen=%" PRIu64 " newest=%d", a->gen, a->newest);
		printf("\n");
	}
}

/* What the volume bytes [off, off + len) hit: the first region they
 * overlap (regions are 4 KiB apart, so a sector holds at most a slot's
 * header and the start of its image). */
static void print_hit(const struct vol *v, uint64_t off, uint64_t len)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct area *a = &v->a[i];
		uint64_t lo, hi;

		if (off >= a->off + a->len || off + len <= a->off)
			continue;
		lo = off > a->off ? off - a->off : 0;
		hi = (off + len < a->off + a->len ? off + len : a->off + a->len)
		     - a->off; /* exclusive, relative */
		printf("format=%u region=%s rel=%" PRIu64, v->sb.version,
		       a->name, lo);
		if (a->kind == K_JOURNAL) {
			const struct jlog *l = a->log;
			long first = -1, last = -1;

			for (size_t r = 0; r < l->n; r++) {
				const struct jrec_pos *p = &l->recs[r];

				if (p->off < hi && lo < p->off + p->len) {
					if (first < 0)
						first = (long)r;
					last = (long)r;
				}
			}
			printf(" current=%d records=%zu rec_first=%ld "
			       "rec_last=%ld last_hit=%d",
			       l->current, l->n, first, last,
			       l->current && l->n > 0 && last == (long)l->n - 1);
			if (first >= 0)
				printf(" seq=%" PRIu64,
				       l->recs[first].seq);
		}
		if (a->kind == K_SLOT_HDR || a->kind == K_SLOT_IMG)
			printf(" gen=%" PRIu64 " newest=%d", a->gen, a->newest);
		printf("\n");
		return;
	}
	printf("format=%u region=unused rel=%" PRIu64 "\n", v->sb.version,
	       off);
}

/* splitmix64: small, seedable, the same on every machine. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* A volume offset in use: a region drawn with half its weight even over
 * the regions and half by size, then a byte in it uniformly. */
static uint64_t pick_off(const struct vol *v, uint64_t *s)
{
	double total = 0, r, acc = 0;

	for (size_t i = 0; i < v->n; i++)
		total += (double)v->a[i].len;
	r = (double)(rnd(s) >> 11) / (double)(UINT64_C(1) << 53);
	for (size_t i = 0; i < v->n; i++) {
		const struct area *a = &v->a[i];

		acc += 0.5 / (double)v->n + 0.5 * (double)a->len / total;
		if (r < acc || i == v->n - 1)
			return a->off + rnd(s) % a->len;
	}
	return 0; /* not reached: there is always a superblock */
}

/* Nonzero when sector @sec is among the first @n of @used. */
static int sector_seen(const uint64_t *used, uint64_t n, uint64_t sec)
{
	for (uint64_t i = 0; i < n; i++) {
		if (used[i] == sec)
			return 1;
	}
	return 0;
}

static int cmd_pick(struct vol *v, uint64_t seed, uint64_t flips,
		    uint64_t zeros)
{
	const uint64_t mask = ~(uint64_t)(SECTOR - 1);
	uint64_t s = seed, n = flips + zeros, z = 0, *used;

	used = calloc(zeros ? zeros : 1, sizeof(*used));
	if (!used)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = pick_off(v, &s), sec = off & mask;

		/* Zero cases spread evenly: case i is one when the share of
		 * zeros so far falls behind zeros / n.  The metadata in use
		 * spans a few sectors only: each is zeroed once, and a case
		 * that finds no fresh one in a few draws is a flip instead. */
		if (z < zeros && (z + 1) * n <= (i + 1) * zeros) {
			for (int t = 0; t < 64 && sector_seen(used, z, sec); t++)
				sec = pick_off(v, &s) & mask;
			if (!sector_seen(used, z, sec)) {
				printf("zero %" PRIu64 "\n", sec);
				used[z++] = sec;
				continue;
			}
			zeros--; /* none left: the rest are flips */
		}
		printf("flip %" PRIu64 " %" PRIu64 "\n", off, rnd(&s) % 8);
	}
	free(used);
	return 0;
}

static int cmd_flip(struct vol *v, uint64_t off, uint64_t bit)
{
	uint8_t b;
	int err;

	if (bit > 7)
		return -EINVAL;
	err = djmfs__pread_full(v->fd, &b, 1, off);
	if (err)
		return err;
	print_hit(v, off, 1);
	b ^= (uint8_t)(1u << bit);
	if (pwrite(v->fd, &b, 1, (off_t)off) != 1)
		return -errno;
	return fsync(v->fd) ? -errno : 0;
}

static int cmd_zero(struct vol *v, uint64_t off)
{
	static const uint8_t zero[SECTOR];

	off &= ~(uint64_t)(SECTOR - 1);
	print_hit(v, off, SECTOR);
	if (pwrite(v->fd, zero, SECTOR, (off_t)off) != (ssize_t)SECTOR)
		return -errno;
	return fsync(v->fd) ? -errno : 0;
}

int main(int argc, char **argv)
{
	uint64_t x[3] = { 0, 0, 0 };
	struct vol v = { .fd = -1 };
	const char *cmd;
	int nx, err, writes;

	if (argc < 3)
		return usage();
	cmd = argv[1];
	nx = argc - 3;
	if (!((strcmp(cmd, "regions") == 0 && nx == 0) ||
	      (strcmp(cmd, "pick") == 0 && nx == 3) ||
	      (strcmp(cmd, "flip") == 0 && nx == 2) ||
	      (strcmp(cmd, "zero") == 0 && nx == 1) ||
	      (strcmp(cmd, "where") == 0 && (nx == 1 || nx == 2))))
		return usage();
	for (int i = 0; i < nx; i++) {
		if (parse_u64(argv[3 + i], &x[i]))
			return usage();
	}
	writes = strcmp(cmd, "flip") == 0 || strcmp(cmd, "zero") == 0;
	err = vol_open(&v, argv[2], writes);
	if (err) {
		vol_close(&v);
		return die(argv[2], err);
	}
	if (strcmp(cmd, "regions") == 0)
		print_regions(&v);
	else if (strcmp(cmd, "pick") == 0)
		err = cmd_pick(&v, x[0], x[1], x[2]);
	else if (strcmp(cmd, "flip") == 0)
		err = cmd_flip(&v, x[0], x[1]);
	else if (strcmp(cmd, "zero") == 0)
		err = cmd_zero(&v, x[0]);
	else
		print_hit(&v, x[0], nx == 2 && x[1] ? x[1] : 1);
	vol_close(&v);
	if (fflush(stdout))
		return die("stdout", -errno);
	return err ? die(argv[2], err) : 0;
}
