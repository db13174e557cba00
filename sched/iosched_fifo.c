/*
 * The fifo policy: requests reach the device in the order callers
 * submitted them (in.seq ascending), whatever order they were inserted in,
 * so a queue handed over from another policy comes back to submission
 * order.  It is the baseline the other policies are measured against.
 */
#include "iosched-int.h"
#include "iosched_tree.h"

static int fifo_create(void **state)
{
	struct iosched__tree *h;
	int rc = iosched__tree_new(&h, IOSCHED__TREE_BY_KEY);

	if (rc == 0)
		*state = h;
	return rc;
}

static void fifo_destroy(void *state)
{
	iosched__tree_free(state);
}

static int fifo_insert(void *state, struct iosched_req *req,
		       const struct iosched__ctx *ctx)
{
	(void)ctx;
	req->in.key = 0; /* one key: the heap falls through to in.seq */
	iosched__tree_insert(state, req);
	return 0;
}

static struct iosched_req *fifo_pop(void *state,
				    const struct iosched__ctx *ctx)
{
	(void)ctx;
	return iosched__tree_pop_first(state);
}

const struct iosched__policy_ops iosched__policy_fifo = {
	.name = "fifo",
	.create = fifo_create,
	.destroy = fifo_destroy,
	.insert = fifo_insert,
	.pop = fifo_pop,
};
