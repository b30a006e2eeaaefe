/*
 * ss_group: the names of OS feeds and update policies in the API, and the
 * default device groups every new product gets (docs/api-groups.md).
 */
#include <string.h>

#include "ss_store.h"

static const char *const ss_feed_names[] = {NULL, "Retail", "RetailEval"};
static const char *const ss_policy_names[] = {NULL, "UpdateAll", "No3rdPartyAppUpdates",
                                              "NoUpdates"};

/* As Azure Sphere makes them: Development takes OS updates only, so a
 * developer's sideloaded applications are not replaced. */
static const struct ss_group ss_default_groups[SS_DEFAULT_GROUPS] = {
        {.name = "Development",
         .description = "Default development device group",
         .os_feed = SS_FEED_RETAIL,
         .update_policy = SS_POLICY_NO_3RD_PARTY},
        {.name = "Field Test",
         .description = "Default test device group",
         .os_feed = SS_FEED_RETAIL,
         .update_policy = SS_POLICY_UPDATE_ALL},
        {.name = "Production",
         .description = "Default production device group",
         .os_feed = SS_FEED_RETAIL,
         .update_policy = SS_POLICY_UPDATE_ALL},
        {.name = "Field Test OS Evaluation",
         .description = "Default Field Test OS Evaluation device group",
         .os_feed = SS_FEED_RETAIL_EVAL,
         .update_policy = SS_POLICY_UPDATE_ALL},
        {.name = "Production OS Evaluation",
         .description = "Default Production OS Evaluation device group",
         .os_feed = SS_FEED_RETAIL_EVAL,
         .update_policy = SS_POLICY_UPDATE_ALL},
};

const struct ss_group *ss_store_default_groups(void)
{
	return ss_default_groups;
}

const char *ss_os_feed_name(enum ss_os_feed f)
{
	return f >= SS_FEED_RETAIL && f <= SS_FEED_RETAIL_EVAL ? ss_feed_names[f] : NULL;
}

enum ss_os_feed ss_os_feed_from_name(const char *name)
{
	for (int f = SS_FEED_RETAIL; name && f <= SS_FEED_RETAIL_EVAL; f++)
		if (strcmp(name, ss_feed_names[f]) == 0)
			return (enum ss_os_feed)f;
	return SS_FEED_NONE;
}

const char *ss_update_policy_name(enum ss_update_policy p)
{
	return p >= SS_POLICY_UPDATE_ALL && p <= SS_POLICY_NO_UPDATES ? ss_policy_names[p] : NULL;
}

enum ss_update_policy ss_update_policy_from_name(const char *name)
{
	for (int p = SS_POLICY_UPDATE_ALL; name && p <= SS_POLICY_NO_UPDATES; p++)
		if (strcmp(name, ss_policy_names[p]) == 0)
			return (enum ss_update_policy)p;
	return SS_POLICY_NONE;
}
