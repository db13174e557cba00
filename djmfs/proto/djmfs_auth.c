/*
 * Shared secrets of DJMFS: reading and creating secret files (public, in
 * djmfs_server.h, for djmfsd, the tools and embedders) and the pieces of
 * the handshake that both ends share (djmfs_proto.h): nonces and the
 * HMAC-SHA256 proofs, checked in constant time.  OpenSSL's libcrypto
 * does the cryptography; nothing here keeps state between calls.
 */
#define _GNU_SOURCE /* explicit_bzero */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "djmfs_proto.h"
#include "djmfs_server.h"

/* Both labels have the same length, NUL included, so no transcript of
 * one side can be read as the other's. */
static const char *const labels[] = {
	[DJMFS_AUTH_SERVER] = "djmfs-auth server",
	[DJMFS_AUTH_CLIENT] = "djmfs-auth client",
};

#define LABEL_LEN (sizeof("djmfs-auth server"))
#define TRANSCRIPT_MAX \
	(LABEL_LEN + 4 + 2 + DJMFS_CLIENT_NAME_MAX + 2 * DJMFS_AUTH_NONCE)

/* ------------------------------------------------------------------ */
/* Proofs                                                               */
/* ------------------------------------------------------------------ */

int djmfs__auth_nonce(uint8_t *out, size_t n)
{
	if (n > INT_MAX || RAND_bytes(out, (int)n) != 1)
		return -EIO;
	return 0;
}

int djmfs__auth_proof(const void *secret, size_t secret_len,
		      enum djmfs__auth_side side, uint32_t proto,
		      const char *name, const uint8_t cnonce[DJMFS_AUTH_NONCE],
		      const uint8_t snonce[DJMFS_AUTH_NONCE],
		      uint8_t out[DJMFS_AUTH_PROOF])
{
	uint8_t t[TRANSCRIPT_MAX];
	size_t nlen = strnlen(name, DJMFS_CLIENT_NAME_MAX + 1), n = 0;
	unsigned int mlen = 0;

	if (!secret || secret_len == 0 || secret_len > DJMFS_SECRET_MAX ||
	    nlen > DJMFS_CLIENT_NAME_MAX)
		return -EINVAL;
	memcpy(t, labels[side], LABEL_LEN);
	n = LABEL_LEN;
	for (unsigned i = 0; i < 4; i++)
		t[n++] = (uint8_t)(proto >> (8 * i));
	t[n++] = (uint8_t)nlen;
	t[n++] = (uint8_t)(nlen >> 8);
	memcpy(t + n, name, nlen);
	n += nlen;
	memcpy(t + n, cnonce, DJMFS_AUTH_NONCE);
	n += DJMFS_AUTH_NONCE;
	memcpy(t + n, snonce, DJMFS_AUTH_NONCE);
	n += DJMFS_AUTH_NONCE;
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, t, n, out, &mlen) ||
	    mlen != DJMFS_AUTH_PROOF)
		return -EIO;
	return 0;
}

int djmfs__auth_verify(const void *secret, size_t secret_len,
		       enum djmfs__auth_side side, uint32_t proto,
		       const char *name,
		       const uint8_t cnonce[DJMFS_AUTH_NONCE],
		       const uint8_t snonce[DJMFS_AUTH_NONCE],
		       const uint8_t proof[DJMFS_AUTH_PROOF])
{
	uint8_t want[DJMFS_AUTH_PROOF];
	int err = djmfs__auth_proof(secret, secret_len, side, proto, name,
				    cnonce, snonce, want);

	if (err == 0 && CRYPTO_memcmp(want, proof, sizeof(want)) != 0)
		err = -EACCES;
	OPENSSL_cleanse(want, sizeof(want));
	return err;
}

/* ------------------------------------------------------------------ */
/* Secret files                                                         */
/* ------------------------------------------------------------------ */

/* The checks an opened secret file must pass; logs why it fails. */
static int secret_stat_ok(int fd, const char *path, size_t *size,
			  const struct djmfs_log *log)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "fstat %s: %s", path,
			   strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: not a "
			   "regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: group or "
			   "others may access it (mode %04o): refusing it; "
			   "chmod 600 it", path,
			   (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_size < DJMFS_SECRET_MIN || st.st_size > DJMFS_SECRET_MAX) {
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: %lld bytes; "
			   "a secret is %d to %d bytes ('djmfs secret' makes "
			   "one)", path, (long long)st.st_size,
			   DJMFS_SECRET_MIN, DJMFS_SECRET_MAX);
		return -EINVAL;
	}
	*size = (size_t)st.st_size;
	return 0;
}

/* Reads exactly @n bytes; a file that changed size meanwhile is -EIO. */
static int read_exact(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;
	uint8_t extra;

	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		got += (size_t)r;
	}
	while ((r = read(fd, &extra, 1)) < 0 && errno == EINTR)
		;
	return r == 0 ? 0 : r < 0 ? -errno : -EIO;
}

int djmfs_secret_load(const char *path, void **out, size_t *len,
		      const struct djmfs_log *log)
{
	uint8_t *buf = NULL;
	size_t size = 0;
	int fd, err;

	if (!path || !out || !len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = -errno;
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: open: %s",
			   path, strerror(-err));
		return err;
	}
	err = secret_stat_ok(fd, path, &size, log);
	if (err < 0)
		goto out;
	buf = malloc(size);
	err = buf ? read_exact(fd, buf, size) : -ENOMEM;
	if (err < 0) {
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: read: %s",
			   path, strerror(-err));
		djmfs_secret_free(buf, size);
		goto out;
	}
	*out = buf;
	*len = size;
out:
	close(fd);
	return err;
}

void djmfs_secret_free(void *secret, size_t len)
{
	if (!secret)
		return;
	explicit_bzero(secret, len);
	free(secret);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fill_random(uint8_t *p, size_t n)
{
	ssize_t r;

	while (n) {
		r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Mode, bytes, durability; *what names the step that failed. */
static int secret_write(int fd, const uint8_t *key, size_t n,
			const char **what)
{
	int err;

	/* A replaced file keeps its old mode unless told otherwise. */
	*what = "fchmod";
	if (fchmod(fd, 0600) < 0)
		return -errno;
	*what = "write";
	err = write_all(fd, key, n);
	if (err < 0)
		return err;
	*what = "fsync";
	return fsync(fd) < 0 ? -errno : 0;
}

int djmfs_secret_create(const char *path, unsigned flags,
			const struct djmfs_log *log)
{
	int oflags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY;
	uint8_t key[DJMFS_SECRET_NEW];
	const char *what = "getrandom";
	int fd, err;

	if (!path || (flags & ~DJMFS_SECRET_FORCE))
		return -EINVAL;
	oflags |= flags & DJMFS_SECRET_FORCE ? O_TRUNC : O_EXCL;
	err = fill_random(key, sizeof(key));
	if (err < 0)
		goto out;
	what = "open";
	fd = open(path, oflags, 0600);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	err = secret_write(fd, key, sizeof(key), &what);
	if (close(fd) < 0 && err == 0) {
		err = -errno;
		what = "close";
	}
	if (err < 0)
		unlink(path);
out:
	explicit_bzero(key, sizeof(key));
	if (err < 0)
		djmfs__log(log, DJMFS_LOG_ERROR, "secret file %s: %s: %s",
			   path, what, strerror(-err));
	return err;
}
