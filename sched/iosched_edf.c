/*
 * The edf policy: earliest effective deadline (in.deadline_ns) first,
 * submission order between equal deadlines.  It ignores where requests lie
 * on the device, so it meets deadlines while the disk keeps up and wastes
 * seeks doing it.
 */
#include "iosched-int.h"
#include "iosched_tree.h"

static int edf_create(void **state)
{
	struct iosched__tree *h;
	int rc = iosched__tree_new(&h, IOSCHED__TREE_BY_KEY);

	if (rc == 0)
		*state = h;
	return rc;
}

static void edf_destroy(void *state)
{
	iosched__tree_free(state);
}

static int edf_insert(void *state, struct iosched_req *req,
		      const struct iosched__ctx *ctx)
{
	(void)ctx;
	req->in.key = req->in.deadline_ns;
	iosched__tree_insert(state, req);
	return 0;
}

static struct iosched_req *edf_pop(void *state, const struct iosched__ctx *ctx)
{
	(void)ctx;
	return iosched__tree_pop_first(state);
}

const struct iosched__policy_ops iosched__policy_edf = {
	.name = "edf",
	.create = edf_create,
	.destroy = edf_destroy,
	.insert = edf_insert,
	.pop = edf_pop,
};
