/*
 * Play tokens: the HMAC-signed, expiring play URLs that let an operator's
 * own back end (a web site with logins, a pay wall) decide who may watch a
 * stream, while streamd only checks arithmetic.  A token is the pair
 * expires=E&sig=HEX with HEX = HMAC-SHA256(play_secret, "NAME\nE"), the
 * convention CDNs use for signed URLs, so one openssl command mints it.
 * This file signs, verifies (with the caller's clock, so tests need no
 * sleeping), and redacts tokens from text bound for logs; the routes that
 * demand tokens are in sd_route_play.c and the minting endpoint in
 * sd_route_sign.c.  No secret, signature or digest is ever logged here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "streamd-int.h"

#define DIGEST_LEN 32 /* SHA-256 */
#define SECONDS_DIGITS_MAX 19 /* INT64_MAX has 19 */

int (*sd__token_memcmp)(const void *a, const void *b, size_t n) =
	CRYPTO_memcmp;

int sd_token_parse_seconds(const char *text, int64_t *out)
{
	int64_t v = 0;
	size_t n;

	if (!text)
		return -EINVAL;
	n = strlen(text);
	/* One spelling per number: the signature covers the text. */
	if (n == 0 || n > SECONDS_DIGITS_MAX || (text[0] == '0' && n > 1))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, text[i] - '0', &v))
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* HMAC-SHA256(secret, "NAME\nEXPIRES") into @md.  0 or -EIO. */
static int digest(const char *secret, const char *name, int64_t expires,
		  unsigned char md[DIGEST_LEN])
{
	char msg[SD_NAME_MAX + 2 + SECONDS_DIGITS_MAX + 1];
	unsigned int len = 0;
	int n = snprintf(msg, sizeof(msg), "%s\n%lld", name,
			 (long long)expires);

	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EIO;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret),
		  (const unsigned char *)msg, (size_t)n, md, &len) ||
	    len != DIGEST_LEN)
		return -EIO;
	return 0;
}

int sd_token_sign(const char *secret, const char *name, int64_t expires,
		  char *sig)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[DIGEST_LEN];
	int err;

	if (!secret || !*secret || !name || !sd_name_valid(name) ||
	    expires < 0)
		return -EINVAL;
	err = digest(secret, name, expires, md);
	if (err == 0) {
		for (size_t i = 0; i < DIGEST_LEN; i++) {
			sig[2 * i] = hex[md[i] >> 4];
			sig[2 * i + 1] = hex[md[i] & 0xf];
		}
		sig[SD_TOKEN_SIG_LEN] = '\0';
	}
	OPENSSL_cleanse(md, sizeof(md));
	return err;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* SD_TOKEN_SIG_LEN hex digits into DIGEST_LEN bytes.  0 or -EINVAL. */
static int unhex(const char *text, unsigned char out[DIGEST_LEN])
{
	if (strlen(text) != SD_TOKEN_SIG_LEN)
		return -EINVAL;
	for (size_t i = 0; i < DIGEST_LEN; i++) {
		int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int sd_token_verify(const char *secret, const char *name,
		    const char *expires, const char *sig, int64_t now_s)
{
	unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
	int64_t e;
	int err;

	if (!expires || !sig)
		return -ENOKEY;
	if (sd_token_parse_seconds(expires, &e) < 0 || unhex(sig, got) < 0)
		return -EINVAL;
	/* A name no one can sign (sd_token_sign refuses it) matches no
	 * signature; it still costs one HMAC, like any other miss. */
	err = digest(secret ? secret : "", name ? name : "", e, want);
	if (err == 0 && (sd__token_memcmp(want, got, DIGEST_LEN) != 0 ||
			 !secret || !*secret || !name || !sd_name_valid(name)))
		err = -EKEYREJECTED;
	if (err == 0 && now_s >= e)
		err = -EKEYEXPIRED;
	OPENSSL_cleanse(want, sizeof(want));
	return err;
}

const char *sd_token_reason(int err)
{
	static const struct {
		int err;
		const char *text;
	} tab[] = {
		{ 0, "valid" },
		{ -ENOKEY, "this stream needs a signed URL: add "
			   "?expires=UNIX_SECONDS&sig=HEX (HMAC-SHA256 of "
			   "\"NAME\\nEXPIRES\" with the play secret; "
			   "GET /admin/sign mints one)" },
		{ -EINVAL, "malformed play token: expires must be Unix "
			   "seconds (digits, no leading zero) and sig 64 hex "
			   "digits" },
		{ -EKEYREJECTED, "bad play token signature (signed for another "
				 "stream, expiry or secret, or altered)" },
		{ -EKEYEXPIRED, "play token expired" },
		{ -EIO, "play token check failed (libcrypto)" },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].err == err)
			return tab[i].text;
	return "play token refused";
}

/* ------------------------------------------------------------------ */
/* Redaction                                                           */
/* ------------------------------------------------------------------ */

/* Length of the secret-bearing key at @p ("sig=", "token="), or 0. */
static size_t secret_key_at(const char *p)
{
	static const char *const keys[] = { "sig=", "token=" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i]);

		if (strncmp(p, keys[i], n) == 0)
			return n;
	}
	return 0;
}

/* Appends @n bytes of @s at *len, as far as @cap allows. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + 1 < cap) {
		size_t room = cap - 1 - *len;

		memcpy(out + *len, s, n < room ? n : room);
	}
	*len += n;
}

size_t sd_token_redact(const char *in, char *out, size_t cap)
{
	static const char mark[] = "REDACTED";
	size_t len = 0;
	int in_query = 0;

	for (const char *p = in ? in : ""; *p;) {
		size_t k = in_query && (p[-1] == '?' || p[-1] == '&' ||
					p[-1] == ';') ? secret_key_at(p) : 0;

		if (k) {
			put(out, cap, &len, p, k);
			put(out, cap, &len, mark, sizeof(mark) - 1);
			p += k + strcspn(p + k, "&;#");
			continue;
		}
		if (*p == '?')
			in_query = 1;
		else if (*p == '#')
			in_query = 0;
		put(out, cap, &len, p, 1);
		p++;
	}
	if (cap > 0)
		out[len < cap ? len : cap - 1] = '\0';
	return len;
}
