/* service: state shared by the module's files; not part of its API. */
#ifndef SPHERE_SS_INTERNAL_H
#define SPHERE_SS_INTERNAL_H

#include "service.h"
#include "ss_ca.h"
#include "ss_http.h"
#include "ss_store.h"

struct ss_service {
	struct ss_config cfg;
	struct ss_store *st;
	struct ss_http *http;
	uint8_t kek[SS_KEK_LEN]; /* wraps tenant CA keys (ss_kek.c); wiped at free */
};

/* Creates <data_dir>/master.key (32 random bytes, mode 0600; never over an
 * existing file). Returns 0, SPH_ERR_RANDOM or SPH_ERR_IO. */
int ss_kek_create(const char *data_dir);
/* Loads it: SPH_ERR_NOT_FOUND (none), SPH_ERR_PERMISSION (readable by group
 * or others), SPH_ERR_MALFORMED (not exactly 32 bytes) or SPH_ERR_IO. */
int ss_kek_load(const char *data_dir, uint8_t kek[SS_KEK_LEN]);

/* Adds the /v1 routes of docs/api.md §4. Returns 0 or ss_http_route's status. */
int ss_api_routes(struct ss_service *s);

#endif
