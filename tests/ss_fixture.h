/*
 * A real security service for the API tests (tests/test_service_*.c):
 * initialised in a temporary directory (tenant "acme", Administrator
 * "alice", a 4 KiB body limit, 2 workers), served on an ephemeral port over
 * TLS, and talked to with libcurl.
 */
#ifndef SPHERE_SS_FIXTURE_H
#define SPHERE_SS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "service/service.h"

struct ssfx {
	char *tmp;
	char data[600]; /* the data directory */
	struct ss_config cfg;
	struct ss_init_result init;
	struct ss_service *svc;
	uint16_t port;
	char ca[700]; /* the server certificate, to trust */
};
extern struct ssfx fx;

/* cmocka group setup and teardown. */
int ssfx_setup(void **state);
int ssfx_teardown(void **state);

/* A reply: status (0 if the request failed), body bytes (NUL-terminated;
 * free with ssfx_reply_free), content type. */
struct ssfx_reply {
	long status;
	char *body;
	size_t len;
	char ctype[128];
};
/* One request to port (0: the fixture's) with an optional bearer token and
 * body (content_type NULL: application/json). Fills *out. */
void ssfx_call(uint16_t port, const char *method, const char *path, const char *token,
               const void *body, size_t body_len, const char *content_type, struct ssfx_reply *out);
void ssfx_reply_free(struct ssfx_reply *r);

/* A JSON request to the fixture: the status, *out its JSON reply (may be
 * NULL; caller json_decref()s). */
long ssfx_req(const char *method, const char *path, const char *token, const char *body,
              json_t **out);
/* The same with an explicit body length and port. */
long ssfx_req_raw(uint16_t port, const char *method, const char *path, const char *token,
                  const char *body, size_t body_len, json_t **out);
/* Fails the test unless the request answers status (and, when want_err,
 * that error word). */
void ssfx_expect(long status, const char *want_err, const char *method, const char *path,
                 const char *token, const char *body);
/* A string member that must be there. */
const char *ssfx_jstr(json_t *j, const char *key);
/* A device id (128 lowercase hex digits) from a seed. */
void ssfx_device_id(char out[129], unsigned seed);

#endif
