/* service: state shared by the module's files; not part of its API. */
#ifndef SPHERE_SS_INTERNAL_H
#define SPHERE_SS_INTERNAL_H

#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "service.h"
#include "ss_ca.h"
#include "ss_http.h"
#include "ss_nonce.h"
#include "ss_store.h"
#include "ss_target.h"

#include <openssl/x509.h>

/* Per-tenant keys a check-in needs, unwrapped once (ss_cache.c). */
#define SS_CACHE_TENANTS 64
struct ss_cache_entry {
	char tenant[SS_UUID_LEN + 1];
	X509 *root, *signer; /* the tenant image root and production signer */
	EVP_PKEY *signer_key;
	char ca_id[SS_UUID_LEN + 1]; /* the Active CA these belong to */
	X509 *ca_cert;               /* its device CA */
	EVP_PKEY *ca_key;
	char *ca_chain; /* its chain as PEM (device CA, root) */
};
/* Device registrations never change once made: a cached attestation key is
 * never stale. Direct-mapped by a hash of the device id. */
#define SS_CACHE_REGS 4096
struct ss_cache_reg {
	char device_id[SS_DEVICE_ID_LEN + 1];
	uint8_t key[SS_ATTEST_KEY_LEN];
};
/* A group's target as it was at the tenant's and the service's target
 * generations (ss_device.target_gen, os_gen): valid while both are. */
#define SS_CACHE_TARGETS 256
struct ss_cache_target {
	char tenant[SS_UUID_LEN + 1];
	char group[SS_UUID_LEN + 1];
	int64_t target_gen, os_gen;
	struct ss_target t;
};
struct ss_cache {
	pthread_mutex_t mu;
	struct ss_cache_entry e[SS_CACHE_TENANTS];
	unsigned next;
	struct ss_cache_reg *regs;       /* SS_CACHE_REGS */
	struct ss_cache_target *targets; /* SS_CACHE_TARGETS */
	uint64_t reg_hits, target_hits;  /* for tests and metrics */
};
int ss_cache_init(struct ss_cache *c);
void ss_cache_free(struct ss_cache *c);
/* Hits give one more reference to each object (the caller frees them). */
bool ss_cache_signer_get(struct ss_cache *c, const char *tenant, X509 **root, X509 **signer,
                         EVP_PKEY **key);
void ss_cache_signer_put(struct ss_cache *c, const char *tenant, X509 *root, X509 *signer,
                         EVP_PKEY *key);
/* A CA hit also copies its chain PEM into *chain (caller frees); a miss, or
 * no memory for the copy, is false with nothing to free. */
/* A registered device's attestation key: true and key[] on a hit. */
bool ss_cache_reg_get(struct ss_cache *c, const char *device_id, uint8_t key[SS_ATTEST_KEY_LEN]);
void ss_cache_reg_put(struct ss_cache *c, const char *device_id,
                      const uint8_t key[SS_ATTEST_KEY_LEN]);
/* tenant's group's target made at generations (target_gen, os_gen): true
 * and *out on a hit. */
bool ss_cache_target_get(struct ss_cache *c, const char *tenant, const char *group,
                         int64_t target_gen, int64_t os_gen, struct ss_target *out);
void ss_cache_target_put(struct ss_cache *c, const char *tenant, const char *group,
                         int64_t target_gen, int64_t os_gen, const struct ss_target *t);
bool ss_cache_ca_get(struct ss_cache *c, const char *tenant, const char *ca_id, X509 **cert,
                     EVP_PKEY **key, char **chain);
void ss_cache_ca_put(struct ss_cache *c, const char *tenant, const char *ca_id, X509 *cert,
                     EVP_PKEY *key, const char *chain);

struct ss_service {
	struct ss_config cfg;
	struct ss_store *st;
	struct ss_http *http;
	uint8_t kek[SS_KEK_LEN];       /* wraps tenant CA keys (ss_kek.c); wiped at free */
	X509 *platform_root;           /* trusted for OS images; NULL: none configured */
	struct ss_nonce_key nonce_key; /* check-in nonces (§4.12); wiped at free */
	struct ss_cache cache;         /* per-tenant keys, unwrapped once */
	/* Service-wide refusals (an unregistered or unclaimed device: anyone with
	 * a key) are audited at most SS_AUDIT_REFUSE_BURST at once, then
	 * SS_AUDIT_REFUSE_PER_S a second, so they cannot fill the database; the
	 * next row written says how many were not. */
	struct {
		pthread_mutex_t mu;
		double tokens;
		int64_t last_ms;
		uint64_t dropped;
	} refuse_audit;
};
#define SS_AUDIT_REFUSE_BURST 60
#define SS_AUDIT_REFUSE_PER_S 1.0

/* Creates <data_dir>/master.key (32 random bytes, mode 0600; never over an
 * existing file). Returns 0, SPH_ERR_RANDOM or SPH_ERR_IO. */
int ss_kek_create(const char *data_dir);
/* Loads it: SPH_ERR_NOT_FOUND (none), SPH_ERR_PERMISSION (readable by group
 * or others), SPH_ERR_MALFORMED (not exactly 32 bytes) or SPH_ERR_IO. */
int ss_kek_load(const char *data_dir, uint8_t kek[SS_KEK_LEN]);

/* Adds the /v1 routes of docs/api.md §4. Returns 0 or ss_http_route's status. */
int ss_api_routes(struct ss_service *s);

/* ---- the tenant CA (ss_api_ca.c, docs/api-ca.md) ---------------------------- */

/* Adds the ca-certificates routes. Returns 0 or ss_http_route's status. */
int ss_api_ca_routes(struct ss_service *s);
/* Gives tenant_id its first CA (Active, keys wrapped under the KEK) when it
 * has none; a tenant with a CA is left alone. Returns 0 or the store's / the
 * CA's status. The _st form takes the store and KEK; the _dir form loads the
 * KEK from data_dir (for init, which has no service yet) and wipes it. */
int ss_tenant_ca_ensure(struct ss_service *s, const char *tenant_id, const char *actor);
int ss_tenant_ca_ensure_st(struct ss_store *st, const uint8_t kek[SS_KEK_LEN],
                           const char *tenant_id, const char *actor);
int ss_tenant_ca_ensure_dir(struct ss_store *st, const char *data_dir, const char *tenant_id,
                            const char *actor);
/* Issues a device certificate (*cert, free with X509_free) for the RoT
 * public key pub (X || Y) with tenant_id's Active CA, valid for hours (0:
 * SS_CERT_HOURS; at most SS_CERT_HOURS_MAX), never past that CA's end, and
 * *chain, the PEM chain (device CA, root; free with free()) it verifies
 * with: both from one reading of the Active CA, so a rollover between them
 * cannot pair a certificate with another CA's chain. */
int ss_tenant_issue(struct ss_service *s, const char *tenant_id, const uint8_t pub[64],
                    unsigned hours, X509 **cert, char **chain);
/* The same, the certificate as DER (free with free()) and no chain. */
int ss_tenant_issue_device_cert(struct ss_service *s, const char *tenant_id, const uint8_t pub[64],
                                unsigned hours, uint8_t **der, size_t *len);

/* Adds the check-in routes (ss_api_checkin.c, §4.13). Returns 0 or
 * ss_http_route's status. */
int ss_api_checkin_routes(struct ss_service *s);

/* ---- helpers for handlers (ss_api.c) ----------------------------------------
 * Each replies itself when it returns false / NULL: the handler just returns. */

/* The request's API token → its user (401 / 500 otherwise). */
bool ss_api_auth(struct ss_service *s, struct ss_req *r, struct ss_user *u, struct ss_token *tok);
/* The path's {tenant} if u holds at least min there: 404 when u holds no role
 * (existence not disclosed), 403 when the role is too low. */
bool ss_api_tenant(struct ss_service *s, struct ss_req *r, const struct ss_user *u,
                   enum ss_role min, struct ss_tenant *t, enum ss_role *role);
/* The body as a JSON object (400 otherwise); caller json_decref()s. */
json_t *ss_api_body(struct ss_req *r);
/* ss_api_auth, then (min above SS_ROLE_NONE) ss_api_tenant with min: the
 * preamble of every handler. t and role may be NULL when min is NONE. */
bool ss_api_enter(struct ss_service *s, struct ss_req *r, enum ss_role min, struct ss_user *u,
                  struct ss_tenant *t, enum ss_role *role);
/* A required non-empty string member (400 otherwise). */
const char *ss_api_body_str(struct ss_req *r, json_t *body, const char *key);
/* ?limit= in 1..SS_LIST_MAX, default 100 (400 otherwise). */
bool ss_api_limit(struct ss_req *r, size_t *limit);
/* The reply for a store status: 404, 409, 400 or 500 (logged). */
void ss_api_reply_store(struct ss_req *r, int rc, const char *what);
/* A device as the API shows it ({"id", "tenant_id", "claimed", "released_to",
 * "group_id", "registered"}); NULL when out of memory. */
json_t *ss_device_json(const struct ss_device *d);

/* Adds the device registration routes (ss_api_registration.c, §4.13).
 * Returns 0 or ss_http_route's status. */
int ss_api_registration_routes(struct ss_service *s);

/* Adds the products and device groups routes (ss_api_groups.c,
 * docs/api-groups.md). Returns 0 or ss_http_route's status. */
int ss_api_groups_routes(struct ss_service *s);

/* ---- image catalogue, OS feeds, deployments (ss_api_images.c) ------------------ */

/* Adds the images, OS images and feeds, deployments and target routes.
 * Returns 0 or ss_http_route's status. */
int ss_api_images_routes(struct ss_service *s);
/* Loads the configured platform root (cfg.platform_root, else
 * <data_dir>/platform-root.pem if present) into s->platform_root. A
 * configured file that is missing or not one self-signed CA certificate is an
 * error (SPH_ERR_NOT_FOUND, SPH_ERR_MALFORMED); an absent default is not. */
int ss_platform_root_load(struct ss_service *s);
/* tenant_id's image root and production signer, made (and stored, keys
 * wrapped under the KEK) on first need. Returns 0 and *root_cert, *signer_cert,
 * *signer_key (caller frees; any may be NULL when not wanted). */
int ss_tenant_signer(struct ss_service *s, const char *tenant_id, X509 **root_cert,
                     X509 **signer_cert, EVP_PKEY **signer_key);
/* tenant_id's capability signer (docs/formats.md §8.3), issued by its tenant
 * image root and made (key wrapped under the KEK) on first need. Returns 0
 * and *root_cert (the tenant image root), *cap_cert, *cap_key (caller frees;
 * any may be NULL when not wanted). */
int ss_tenant_cap_signer(struct ss_service *s, const char *tenant_id, X509 **root_cert,
                         X509 **cap_cert, EVP_PKEY **cap_key);
/* The group's target (see ss_target.h). The group not tenant_id's:
 * SPH_ERR_NOT_FOUND. Returns 0 and *out (zeroed on entry). */
int ss_group_target(struct ss_service *s, const char *tenant_id, const char *group_id,
                    struct ss_target *out);

/* ---- device capabilities and modes (ss_api_capabilities.c, §4.14) ----------- */

/* Adds the capabilities and mode routes. Returns 0 or ss_http_route's status. */
int ss_api_capabilities_routes(struct ss_service *s);
/* Adds "mode" and "update_status" (a plain sentence) to j, a device d of its
 * tenant as device show returns it; k: its last check-in or NULL (none).
 * Returns 0 or a store status. */
int ss_device_status_json(struct ss_service *s, const struct ss_device *d,
                          const struct ss_checkin_state *k, json_t *j);
/* Applies d's mode to its group's target t: in development mode only the OS
 * entries stay (applications are sideloaded). *sideloading tells which.
 * Returns 0 or a store status. */
int ss_device_target_mode(struct ss_service *s, const struct ss_device *d, struct ss_target *t,
                          bool *sideloading);

#endif
