/*
 * The scan-edf policy: EDF over batches of deadlines, C-LOOK inside a
 * batch.  A request's batch is its deadline rounded down to a multiple of
 * the scan_edf_window_ns knob (window 0: the deadline itself, so only
 * equal deadlines share a batch); the earliest batch is served first, and
 * within it the head sweeps up from ctx->head and wraps as in scan.
 *
 * The batch is fixed when the request is inserted, so a new window only
 * applies to later requests.  Keeping it in nanoseconds (a batch's start
 * time) rather than as a batch number keeps batches made under different
 * windows comparable: the queue stays in deadline order across the change.
 */
#include "iosched-int.h"
#include "iosched_tree.h"

static int scan_edf_create(void **state)
{
	struct iosched__tree *h;
	int rc = iosched__tree_new(&h, IOSCHED__TREE_BY_KEY_OFFSET);

	if (rc == 0)
		*state = h;
	return rc;
}

static void scan_edf_destroy(void *state)
{
	iosched__tree_free(state);
}

static int scan_edf_insert(void *state, struct iosched_req *req,
			   const struct iosched__ctx *ctx)
{
	uint64_t d = req->in.deadline_ns;
	uint64_t w = ctx && ctx->knobs ? ctx->knobs->scan_edf_window_ns : 0;

	req->in.key = w ? d - d % w : d;
	iosched__tree_insert(state, req);
	return 0;
}

static struct iosched_req *scan_edf_pop(void *state,
					const struct iosched__ctx *ctx)
{
	return iosched__tree_pop_clook(state, ctx->head);
}

const struct iosched__policy_ops iosched__policy_scan_edf = {
	.name = "scan-edf",
	.create = scan_edf_create,
	.destroy = scan_edf_destroy,
	.insert = scan_edf_insert,
	.pop = scan_edf_pop,
};
