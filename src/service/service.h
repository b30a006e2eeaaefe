/*
 * service: the security service `sphere-ss` (docs/api.md): configuration,
 * first-time set-up, and the running service (store + HTTPS server + API).
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_*, and SPH_ERR_INVALID_ARG for a NULL argument.
 */
#ifndef SPHERE_SERVICE_H
#define SPHERE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#include "ss_store.h"

#define SS_PATH_MAX   512
#define SS_REASON_MAX 160
#define SS_TOKEN_LEN  68 /* "sph_" + 64 hex digits */

struct ss_config {
	char data_dir[SS_PATH_MAX];
	char listen[64];
	uint16_t port;
	int workers;            /* 0: the number of cores */
	char db[SS_PATH_MAX];   /* "" : sqlite:<data_dir>/sphere.db */
	char cert[SS_PATH_MAX]; /* "" : <data_dir>/tls/server.pem */
	char key[SS_PATH_MAX];  /* "" : <data_dir>/tls/server.key */
	size_t max_body;
	char log_level[8];
	/* Keys set so far (by the file or a flag), so a file cannot set one twice. */
	uint32_t set_mask;
	/* "" : <data_dir>/platform-root.pem if it exists (OS images need one). */
	char platform_root[SS_PATH_MAX];
};

/* The defaults of docs/api.md §1.1. */
void ss_config_defaults(struct ss_config *c);
/* Sets one option by its key (a long flag name without "--"). Returns 0,
 * SPH_ERR_NOT_FOUND (unknown key) or SPH_ERR_INVALID_ARG (bad value); why
 * (may be NULL) says which. */
int ss_config_set(struct ss_config *c, const char *key, const char *value, char *why,
                  size_t why_cap);
/* Reads a configuration file of `key = value` lines. Returns 0,
 * SPH_ERR_NOT_FOUND (no such file), SPH_ERR_MALFORMED (a bad line: why names
 * it), SPH_ERR_DUPLICATE (a key twice) or SPH_ERR_IO. */
int ss_config_load(struct ss_config *c, const char *path, char *why, size_t why_cap);
/* Fills the paths left empty from data_dir. */
int ss_config_finish(struct ss_config *c);

/* What init made: the two tokens, shown once. */
struct ss_init_result {
	struct ss_tenant tenant;
	struct ss_user admin, operator_user;
	char admin_token[SS_TOKEN_LEN + 1];
	char operator_token[SS_TOKEN_LEN + 1];
};

/* Creates the data directory (refusing an existing one: SPH_ERR_STATE), the
 * TLS key and self-signed certificate, the configuration file, the database,
 * the first tenant, its Administrator and the platform operator, with a
 * token each. The caller prints the tokens and then wipes *res with
 * OPENSSL_cleanse. */
int ss_init(const struct ss_config *c, const char *tenant_name, const char *admin_name,
            struct ss_init_result *res);

struct ss_service;

/* Opens the store, sets up the routes and starts serving. Returns 0 and
 * *out (free with ss_service_free), or the store's / server's status. */
int ss_service_start(const struct ss_config *c, struct ss_service **out);
/* The port it listens on. */
uint16_t ss_service_port(const struct ss_service *s);
/* Stops serving, closes the store, frees. Accepts NULL. */
void ss_service_free(struct ss_service *s);

/* A new API token (SS_TOKEN_LEN characters and a NUL) and its SHA-256, from
 * the OS random source (SPH_ERR_RANDOM if it fails). */
int ss_token_new(char token[SS_TOKEN_LEN + 1], uint8_t hash[32]);
/* SHA-256 of a presented token, after checking its form ("sph_" and 64
 * lowercase hex digits): SPH_ERR_MALFORMED otherwise. */
int ss_token_hash(const char *token, uint8_t hash[32]);

#endif
