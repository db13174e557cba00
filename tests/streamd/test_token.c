/*
 * Tests for sd_token.c: a known-answer signature (computed with
 * `printf 'cam1\n%s' 1795251600 | openssl dgst -sha256 -hmac s3cret`),
 * the expiry boundary on an injected clock, tokens of another stream,
 * expiry or secret, tampered and malformed signatures, expiry texts that
 * are not canonical or overflow, that every signature check compares the
 * whole digest through the constant-time seam, and the redaction of
 * tokens from text bound for logs.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "streamd-int.h"

#define SECRET "s3cret"
#define EXP 1795251600LL /* 2026-11-21T09:00:00Z */
#define EXP_TEXT "1795251600"
#define SIG_CAM1 "a536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444df2"
#define SIG_CAM2 "bd8624131e8d88cb92c451169fd2b2dece7f80589ad775dbc32e03773eeedbba"
#define SIG_OTHER_SECRET \
	"e74fe376f48abd4d7dffc73fc928da70476da22863033f8c2aa8c14dd35b02c5"
#define BEFORE (EXP - 60)

TestSuite(token);

Test(token, signs_like_openssl_dgst_hmac)
{
	char sig[SD_TOKEN_SIG_LEN + 1];

	cr_assert_eq(sd_token_sign(SECRET, "cam1", EXP, sig), 0);
	cr_assert_str_eq(sig, SIG_CAM1);
	cr_assert_eq(sd_token_sign(SECRET, "cam2", EXP, sig), 0);
	cr_assert_str_eq(sig, SIG_CAM2);
}

Test(token, refuses_to_sign_without_secret_or_with_a_bad_name)
{
	char sig[SD_TOKEN_SIG_LEN + 1];

	cr_assert_eq(sd_token_sign("", "cam1", EXP, sig), -EINVAL);
	cr_assert_eq(sd_token_sign(NULL, "cam1", EXP, sig), -EINVAL);
	cr_assert_eq(sd_token_sign(SECRET, "..", EXP, sig), -EINVAL);
	cr_assert_eq(sd_token_sign(SECRET, "a/b", EXP, sig), -EINVAL);
	cr_assert_eq(sd_token_sign(SECRET, "cam1", -1, sig), -EINVAL);
}

Test(token, accepts_its_own_signature_until_the_second_it_expires)
{
	char sig[SD_TOKEN_SIG_LEN + 1];

	cr_assert_eq(sd_token_sign(SECRET, "cam.1_x-y", EXP, sig), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam.1_x-y", EXP_TEXT, sig,
				     BEFORE), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam.1_x-y", EXP_TEXT, sig,
				     EXP - 1), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam.1_x-y", EXP_TEXT, sig, EXP),
		     -EKEYEXPIRED);
	cr_assert_eq(sd_token_verify(SECRET, "cam.1_x-y", EXP_TEXT, sig,
				     EXP + 86400), -EKEYEXPIRED);
}

Test(token, accepts_the_openssl_vector_in_either_case)
{
	char upper[] = SIG_CAM1;

	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, SIG_CAM1,
				     BEFORE), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, upper, BEFORE),
		     0);
}

Test(token, rejects_another_streams_expiry_or_secret)
{
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, SIG_CAM2,
				     BEFORE), -EKEYREJECTED);
	cr_assert_eq(sd_token_verify(SECRET, "cam2", EXP_TEXT, SIG_CAM1,
				     BEFORE), -EKEYREJECTED);
	/* a later expiry with the old signature */
	cr_assert_eq(sd_token_verify(SECRET, "cam1", "1795251601", SIG_CAM1,
				     BEFORE), -EKEYREJECTED);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT,
				     SIG_OTHER_SECRET, BEFORE), -EKEYREJECTED);
	cr_assert_eq(sd_token_verify("", "cam1", EXP_TEXT, SIG_CAM1, BEFORE),
		     -EKEYREJECTED);
}

Test(token, calls_a_forged_token_forged_even_when_expired)
{
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, SIG_CAM2,
				     EXP + 10), -EKEYREJECTED);
}

Test(token, rejects_a_tampered_signature_at_any_digit)
{
	for (size_t i = 0; i < SD_TOKEN_SIG_LEN; i++) {
		char sig[] = SIG_CAM1;

		sig[i] = sig[i] == '0' ? '1' : '0';
		cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, sig,
					     BEFORE), -EKEYREJECTED,
			     "digit %zu", i);
	}
}

Test(token, says_a_missing_argument_is_missing)
{
	cr_assert_eq(sd_token_verify(SECRET, "cam1", NULL, SIG_CAM1, BEFORE),
		     -ENOKEY);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, NULL, BEFORE),
		     -ENOKEY);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", NULL, NULL, BEFORE),
		     -ENOKEY);
}

Test(token, rejects_signatures_that_are_not_64_hex_digits)
{
	static const char *const bad[] = {
		"",
		"a536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444df",
		SIG_CAM1 "0",
		"g536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444df2",
		"a536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444d 2",
		"a536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444d\n2",
		"0xa536ff994b9aa17e5e7d06479aef732b3c85111097957fe3775fb06954444d",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, bad[i],
					     BEFORE), -EINVAL, "sig %zu", i);
}

Test(token, rejects_expiry_texts_that_are_not_canonical_or_overflow)
{
	static const char *const bad[] = {
		"", "+1795251600", "-1", "01795251600", " 1795251600",
		"1795251600 ", "1795251600.0", "1e9", "0x6b",
		"9223372036854775808",	/* INT64_MAX + 1 */
		"18446744073709551616", /* 2^64 */
		"99999999999999999999999",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sd_token_parse_seconds(bad[i], &v), -EINVAL,
			     "expires '%s'", bad[i]);
		cr_assert_eq(sd_token_verify(SECRET, "cam1", bad[i], SIG_CAM1,
					     BEFORE), -EINVAL, "'%s'", bad[i]);
	}
	cr_assert_eq(sd_token_parse_seconds(NULL, &v), -EINVAL);
}

Test(token, parses_the_whole_int64_range)
{
	int64_t v = -1;

	cr_assert_eq(sd_token_parse_seconds("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(sd_token_parse_seconds("9223372036854775807", &v), 0);
	cr_assert_eq(v, INT64_MAX);
}

Test(token, signs_and_accepts_the_largest_expiry)
{
	char sig[SD_TOKEN_SIG_LEN + 1];

	cr_assert_eq(sd_token_sign(SECRET, "cam1", INT64_MAX, sig), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", "9223372036854775807",
				     sig, INT64_MAX - 1), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", "9223372036854775807",
				     sig, INT64_MAX), -EKEYEXPIRED);
}

/* The seam's stand-in: counts calls and lengths, then compares. */
static unsigned ct_calls;
static size_t ct_len;

static int counting_memcmp(const void *a, const void *b, size_t n)
{
	ct_calls++;
	ct_len = n;
	return memcmp(a, b, n) != 0;
}

Test(token, compares_every_signature_in_full_through_the_constant_time_seam)
{
	int (*saved)(const void *, const void *, size_t) = sd__token_memcmp;
	char first[] = SIG_CAM1, last[] = SIG_CAM1;

	first[0] = 'b';
	last[SD_TOKEN_SIG_LEN - 1] = '3';
	sd__token_memcmp = counting_memcmp;
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, SIG_CAM1,
				     BEFORE), 0);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, first, BEFORE),
		     -EKEYREJECTED);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, last, BEFORE),
		     -EKEYREJECTED);
	cr_assert_eq(sd_token_verify(SECRET, "cam1", EXP_TEXT, SIG_CAM1,
				     EXP), -EKEYEXPIRED);
	sd__token_memcmp = saved;
	cr_assert_eq(ct_calls, 4);
	cr_assert_eq(ct_len, 32);
}

Test(token, the_default_seam_is_openssls_constant_time_compare)
{
	cr_assert(sd__token_memcmp == CRYPTO_memcmp);
}

Test(token, gives_a_reason_for_every_refusal)
{
	static const int errs[] = { -ENOKEY, -EINVAL, -EKEYREJECTED,
				    -EKEYEXPIRED };

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		cr_assert_neq(strcmp(sd_token_reason(errs[i]),
				     sd_token_reason(-EBADMSG)), 0);
	cr_assert(strstr(sd_token_reason(-ENOKEY), "expires") != NULL);
	cr_assert(strstr(sd_token_reason(-EKEYEXPIRED), "expired") != NULL);
}

Test(token, redacts_sig_and_token_values_in_query_strings)
{
	char out[256];
	size_t n;

	n = sd_token_redact("/streams/cam1.ts?start=-30&expires=1795251600&sig="
			    SIG_CAM1 "&duration=5", out, sizeof(out));
	cr_assert_str_eq(out, "/streams/cam1.ts?start=-30&expires=1795251600"
			 "&sig=REDACTED&duration=5");
	cr_assert_eq(n, strlen(out));
	sd_token_redact("/record/cam1?token=hunter2", out, sizeof(out));
	cr_assert_str_eq(out, "/record/cam1?token=REDACTED");
	sd_token_redact("/streams/sig=x/data.ts?sig=" SIG_CAM1 "#sig=y", out,
			sizeof(out));
	cr_assert_str_eq(out, "/streams/sig=x/data.ts?sig=REDACTED#sig=y");
	sd_token_redact("/a?design=1&mysig=2", out, sizeof(out));
	cr_assert_str_eq(out, "/a?design=1&mysig=2");
	sd_token_redact(NULL, out, sizeof(out));
	cr_assert_str_eq(out, "");
}

Test(token, redaction_cuts_short_and_reports_the_length_needed)
{
	char out[12];
	size_t n = sd_token_redact("/x?sig=abcdef&a=1", out, sizeof(out));

	cr_assert_eq(n, strlen("/x?sig=REDACTED&a=1"));
	cr_assert_str_eq(out, "/x?sig=REDA");
	cr_assert_eq(sd_token_redact("/x?sig=abc", NULL, 0),
		     strlen("/x?sig=REDACTED"));
}
