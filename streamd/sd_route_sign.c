/*
 * GET /admin/sign?stream=NAME&ttl=SECONDS: mints a play token (sd_token.c)
 * for an operator's back end that would rather ask streamd than hold the
 * play secret itself.  It answers the token and the ready-made relative
 * URLs of every playback route of the stream, all carrying the same
 * query.  Behind the admin token like the rest of /admin; the stream
 * need not exist yet (a URL can be handed out before a live event).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sd_daemon.h"

/* "/streams/NAME" + the longest suffix + "?" + the query. */
#define URL_MAX (SD_NAME_MAX + 64 + 128)

static const struct {
	const char *key;
	const char *fmt; /* name, query */
} url_forms[] = {
	{ "ts", "/streams/%s.ts?%s" },
	{ "hls", "/streams/%s/index.m3u8?%s" },
	{ "data", "/streams/%s/data.ts?%s" },
	{ "detail", "/streams/%s?%s" },
};

/* The reply's JSON, or NULL (out of memory).  json_object_set_new takes
 * each value even when it fails, so nothing leaks on the way. */
static json_t *sign_json(const char *name, int64_t expires, const char *sig)
{
	char query[128], url[URL_MAX], when[40];
	json_t *o = json_object(), *urls = json_object();
	int bad = !o || !urls;

	snprintf(query, sizeof(query), "expires=%lld&sig=%s",
		 (long long)expires, sig);
	sd_time_format_iso8601(expires * SD_NS, when, sizeof(when));
	for (size_t i = 0; i < sizeof(url_forms) / sizeof(url_forms[0]); i++) {
		snprintf(url, sizeof(url), url_forms[i].fmt, name, query);
		bad |= json_object_set_new(urls, url_forms[i].key,
					   json_string(url));
	}
	bad |= json_object_set_new(o, "stream", json_string(name));
	bad |= json_object_set_new(o, "expires", json_integer(expires));
	bad |= json_object_set_new(o, "expires_at", json_string(when));
	bad |= json_object_set_new(o, "sig", json_string(sig));
	bad |= json_object_set_new(o, "query", json_string(query));
	bad |= json_object_set_new(o, "urls", urls);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

enum MHD_Result sd_route_sign(struct sd_req *r, const char *upload,
			      size_t *upload_size)
{
	const char *name = sd_req_arg(r, "stream");
	const char *ttl_text = sd_req_arg(r, "ttl");
	int64_t ttl = SD_TOKEN_TTL_DEFAULT, expires;
	char sig[SD_TOKEN_SIG_LEN + 1];
	int err;

	(void)upload;
	(void)upload_size;
	if (!sd_req_token_ok(r, r->d->cfg.admin_token))
		return sd_reply_error(r, 401, "the admin endpoint needs the "
				      "admin token");
	if (!r->d->cfg.play_secret[0])
		return sd_reply_error(r, 409, "play_secret is not set: play "
				      "URLs need no signature");
	if (!name || !sd_name_valid(name))
		return sd_reply_error(r, 400, "bad or missing stream: "
				      "[A-Za-z0-9._-]{1,128}");
	if (ttl_text && (sd_token_parse_seconds(ttl_text, &ttl) < 0 ||
			 ttl < 1 || ttl > SD_TOKEN_TTL_MAX))
		return sd_reply_error(r, 400, "bad ttl: whole seconds from 1 "
				      "to %lld", (long long)SD_TOKEN_TTL_MAX);
	expires = sd_wall_now() / SD_NS + ttl;
	err = sd_token_sign(r->d->cfg.play_secret, name, expires, sig);
	if (err < 0)
		return sd_reply_error(r, 500, "sd_token_sign(%s): %s", name,
				      strerror(-err));
	return sd_reply_json(r, sign_json(name, expires, sig));
}
