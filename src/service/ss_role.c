/* ss_role: the names of tenant roles in the API (docs/api.md "Roles"). */
#include <string.h>

#include "ss_store.h"

static const char *const ss_role_names[] = {NULL, "Reader", "Contributor", "Administrator"};

const char *ss_role_name(enum ss_role role)
{
	return role >= SS_ROLE_READER && role <= SS_ROLE_ADMIN ? ss_role_names[role] : NULL;
}

enum ss_role ss_role_from_name(const char *name)
{
	for (int r = SS_ROLE_READER; name && r <= SS_ROLE_ADMIN; r++)
		if (strcmp(name, ss_role_names[r]) == 0)
			return (enum ss_role)r;
	return SS_ROLE_NONE;
}
