/*
 * streamd-soak's admission limit, for --offer: how many viewers of the
 * run's recordings streamd would let in, learnt from streamd itself so
 * that "120 % of the limit" means the same thing on every node and every
 * run.  GET /admin/capacity?stream=NAME tells, for each resource, its
 * capacity, the ceiling, what is promised (the recorders, after the
 * warm-up) and what one more viewer of that recording is charged
 * (per_viewer while its ticket lives, per_viewer_start on top during its
 * start).  The viewers that settle under the ceiling on a resource are
 * (ceiling x capacity - promised - per_viewer_start) / per_viewer: the
 * last one's start must fit beside those that settled before it.  The
 * limit is the smallest over the modelled resources, and that resource
 * is named.  The costs are streamd's; only this inequality, the one its
 * admission check makes, is written here.
 *
 * The same URL, token and timeout rules as /metrics (--metrics-url,
 * --admin-token): both are admin routes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "soak.h"

#define IO_TIMEOUT_S 10
/* A quotient that is a whole number in exact arithmetic may come out a
 * hair under it in floating point. */
#define FIT_EPSILON 1e-9

static const char *const resources[] = { "disk", "cpu", "network", "memory" };

/* GET @path of the admin listener as JSON; NULL with why in @err. */
static json_t *capacity_get(struct soak *s, const char *path, char *err,
			    size_t len)
{
	char *text = NULL, why[512];
	json_t *o;
	int r = lg_http_get(&s->metrics_target, path, s->auth_admin,
			    IO_TIMEOUT_S, &text, why, sizeof(why));

	if (r < 0) {
		snprintf(err, len, "cannot read %s of %s: %s (a running "
			 "streamd? --metrics-url, --admin-token?)", path,
			 s->cfg.metrics_url ? s->cfg.metrics_url : s->cfg.url,
			 why);
		return NULL;
	}
	o = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_object(o) ||
	    !json_is_string(json_object_get(o, "admission"))) {
		snprintf(err, len, "%s is not streamd's admission model", path);
		json_decref(o);
		return NULL;
	}
	if (strcmp(json_string_value(json_object_get(o, "admission")), "on")) {
		snprintf(err, len, "admission control is off on that streamd: "
			 "--offer needs it on");
		json_decref(o);
		return NULL;
	}
	return o;
}

int soak_limit_probe(struct soak *s, char *err, size_t len)
{
	json_t *o = capacity_get(s, "/admin/capacity", err, len);

	json_decref(o);
	return o ? 0 : -EPROTO;
}

/* The viewers that settle on resource @res; -1 when it sets no limit. */
static double fit(const json_t *res)
{
	double cap, ceiling, promised, per, start, n;

	if (!json_is_number(json_object_get(res, "capacity")))
		return -1;	/* null: not modelled */
	cap = json_number_value(json_object_get(res, "capacity"));
	ceiling = json_number_value(json_object_get(res, "ceiling"));
	promised = json_number_value(json_object_get(res, "promised"));
	per = json_number_value(json_object_get(res, "per_viewer"));
	start = json_number_value(json_object_get(res, "per_viewer_start"));
	if (!(per > 0))
		return -1;
	n = floor((ceiling * cap - promised - start) / per + FIT_EPSILON);
	return n > 0 ? n : 0;
}

int soak_limit_read(struct soak *s, char *err, size_t len)
{
	const struct soak_rec *priced = NULL;
	char path[128];
	double best = -1;
	json_t *o;

	for (unsigned i = 0; i < s->cfg.recorders && !priced; i++)
		priced = s->rec[i].refused ? NULL : &s->rec[i];
	if (!priced) {
		snprintf(err, len, "no recording to price a viewer of");
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "/admin/capacity?stream=%s", priced->name);
	if (!(o = capacity_get(s, path, err, len)))
		return -EPROTO;
	if (!json_is_object(json_object_get(o, "network")) ||
	    !json_is_number(json_object_get(json_object_get(o, "network"),
					    "per_viewer"))) {
		snprintf(err, len, "/admin/capacity does not price a viewer "
			 "(per_viewer): a streamd older than this soak");
		json_decref(o);
		return -EPROTO;
	}
	for (size_t i = 0; i < sizeof(resources) / sizeof(resources[0]); i++) {
		double n = fit(json_object_get(o, resources[i]));

		if (n >= 0 && (best < 0 || n < best)) {
			best = n;
			snprintf(s->limit_res, sizeof(s->limit_res), "%s",
				 resources[i]);
		}
	}
	s->limit_bitrate = json_number_value(json_object_get(o,
							     "viewer_bitrate"));
	json_decref(o);
	if (best < 0 || best > 1e7) {
		snprintf(err, len, "no resource limits the viewers");
		return -ERANGE;
	}
	s->limit = (unsigned)best;
	s->have_limit = true;
	return 0;
}
