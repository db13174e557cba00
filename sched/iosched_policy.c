/*
 * The table of queueing policies a scheduler can run, looked up by the
 * names users type (--policy, the admin endpoint).
 */
#include <string.h>

#include "iosched-int.h"

static const struct iosched__policy_ops *const policies[] = {
	&iosched__policy_fifo,	   &iosched__policy_edf,
	&iosched__policy_scan,	   &iosched__policy_scan_edf,
	&iosched__policy_glmd,	   &iosched__policy_mh,
};

const struct iosched__policy_ops *iosched__policy_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (strcmp(policies[i]->name, name) == 0)
			return policies[i];
	return NULL;
}

const char *iosched_policies(void)
{
	return "fifo,edf,scan,scan-edf,glmd,mh";
}
