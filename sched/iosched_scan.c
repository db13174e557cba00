/*
 * The scan policy, in its C-LOOK form: the head sweeps towards higher
 * offsets serving whatever lies at or past it, then jumps back to the
 * lowest queued offset and sweeps again.  Deadlines play no part.
 *
 * Which requests belong to the current sweep is decided from ctx->head
 * when pop() is called, never remembered from insert(): a request that
 * arrives ahead of the head joins the sweep in progress, one behind it
 * waits for the next, and the order stays right however the head got
 * where it is (another policy's dispatches, a policy switch, a queue
 * drained with a head that doesn't move).
 */
#include "iosched-int.h"
#include "iosched_tree.h"

static int scan_create(void **state)
{
	struct iosched__tree *h;
	int rc = iosched__tree_new(&h, IOSCHED__TREE_BY_KEY_OFFSET);

	if (rc == 0)
		*state = h;
	return rc;
}

static void scan_destroy(void *state)
{
	iosched__tree_free(state);
}

static int scan_insert(void *state, struct iosched_req *req,
		       const struct iosched__ctx *ctx)
{
	(void)ctx;
	req->in.key = 0; /* one sweep order for the whole queue */
	iosched__tree_insert(state, req);
	return 0;
}

static struct iosched_req *scan_pop(void *state,
				    const struct iosched__ctx *ctx)
{
	return iosched__tree_pop_clook(state, ctx->head);
}

const struct iosched__policy_ops iosched__policy_scan = {
	.name = "scan",
	.create = scan_create,
	.destroy = scan_destroy,
	.insert = scan_insert,
	.pop = scan_pop,
};
