/*
 * ss_store: the security service's storage, behind one interface
 * (docs/api.md "Storage"). The embedded default is SQLite (WAL, foreign keys,
 * synchronous=FULL so an acknowledged write survives kill -9 and power loss,
 * versioned schema migrations); a PostgreSQL backend will implement the same
 * functions and run the same contract tests (tests/test_service_store.c),
 * so the SQL stays portable (no SQLite-only syntax outside the backend).
 *
 * Every function is safe to call from any worker thread at once. A call that
 * changes state runs in ONE transaction, audit row included: it is wholly
 * done or not at all. Unless a comment says otherwise a function returns 0 or
 * a negative SPH_ERR_*: SPH_ERR_INVALID_ARG (a NULL, an over-long or
 * malformed string), SPH_ERR_NOT_FOUND, SPH_ERR_DUPLICATE, SPH_ERR_IO (the
 * database failed), SPH_ERR_CORRUPT (a stored row out of shape: never
 * returned as data). Outputs are zeroed on entry; strings are copied into the
 * caller's fixed-size fields (no allocation to free).
 */
#ifndef SPHERE_SS_STORE_H
#define SPHERE_SS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#define SS_UUID_LEN      36   /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lowercase */
#define SS_DEVICE_ID_LEN 128  /* lowercase hex of the RoT identity key's X||Y */
#define SS_NAME_MAX      64   /* tenant and user names: 1..64 printable ASCII */
#define SS_ACTION_MAX    32   /* audit action, e.g. "device.claim" */
#define SS_TARGET_MAX    128  /* audit target: an id */
#define SS_DETAIL_MAX    256  /* audit detail: short free text */
#define SS_LIST_MAX      1000 /* rows one list call returns at most */

enum ss_role {
	SS_ROLE_NONE = 0,
	SS_ROLE_READER = 1,
	SS_ROLE_CONTRIBUTOR = 2,
	SS_ROLE_ADMIN = 3,
};

struct ss_tenant {
	char id[SS_UUID_LEN + 1];
	char name[SS_NAME_MAX + 1];
	int64_t created; /* Unix seconds */
};

struct ss_user {
	char id[SS_UUID_LEN + 1];
	char name[SS_NAME_MAX + 1];
	bool is_operator; /* the platform operator (publishes OS images); no tenant */
};

struct ss_role_entry {
	char user_id[SS_UUID_LEN + 1];
	char user_name[SS_NAME_MAX + 1];
	enum ss_role role;
};

struct ss_token {
	char id[SS_UUID_LEN + 1];
	char user_id[SS_UUID_LEN + 1];
	int64_t created;
	bool revoked;
};

struct ss_device {
	char id[SS_DEVICE_ID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];   /* the tenant that holds it now */
	char released_to[SS_UUID_LEN + 1]; /* "" or the tenant it was released to */
	int64_t claimed;                   /* when the current tenant claimed it */
	char group_id[SS_UUID_LEN + 1];    /* "" or its device group (of the same tenant) */
	bool registered; /* the platform operator registered its attestation key */
	/* When read: the holding tenant's and the service's target generations,
	 * which move with every change to what a group's target is made of
	 * (groups, deployments; OS releases) in that change's transaction. */
	int64_t target_gen, os_gen;
};

struct ss_audit {
	int64_t id; /* increasing */
	int64_t at; /* Unix seconds */
	char tenant_id[SS_UUID_LEN + 1];
	char actor[SS_UUID_LEN + 1]; /* a user id, or "" for the service itself */
	char action[SS_ACTION_MAX + 1];
	char target[SS_TARGET_MAX + 1];
	char detail[SS_DETAIL_MAX + 1];
};

struct ss_store;

/* Opens (creating if missing) the store at url: "sqlite:PATH" or a plain
 * path (SQLite; a file, not ":memory:"). Applies pending schema migrations in
 * order, each in its own transaction. A database from a newer schema than
 * this build knows, or another "scheme://": SPH_ERR_UNSUPPORTED. Returns 0
 * and *out (free with ss_store_close). */
int ss_store_open(const char *url, struct ss_store **out);
/* Accepts NULL. */
void ss_store_close(struct ss_store *st);
/* The schema version now in the database. */
int ss_store_schema_version(struct ss_store *st, int *version);

/* ---- tenants, users, roles, tokens ---------------------------------------- */

/* Creates a tenant with a fresh random UUID, audited as "tenant.create" by
 * actor (a user id, or "" for the service). */
int ss_store_tenant_create(struct ss_store *st, const char *name, const char *actor,
                           struct ss_tenant *out);
int ss_store_tenant_get(struct ss_store *st, const char *id, struct ss_tenant *out);
/* The tenants where user holds a role, by name; *n of them (at most cap).
 * Every list call returns at most min(cap, SS_LIST_MAX) rows (out may be
 * NULL when cap is 0); an unknown owner has an empty list. */
int ss_store_tenant_list_for_user(struct ss_store *st, const char *user_id, struct ss_tenant *out,
                                  size_t cap, size_t *n);

/* Creates a user with a fresh UUID. Names are unique: SPH_ERR_DUPLICATE. */
int ss_store_user_create(struct ss_store *st, const char *name, bool is_operator,
                         struct ss_user *out);
int ss_store_user_get(struct ss_store *st, const char *id, struct ss_user *out);
int ss_store_user_by_name(struct ss_store *st, const char *name, struct ss_user *out);

/* Sets user's role in tenant (SS_ROLE_NONE removes it), audited as
 * "role.set" by actor with the role's name as detail ("None" on removal).
 * Removing the tenant's last Administrator: SPH_ERR_STATE (nothing changes).
 * Unknown tenant or user, or removing a role not held: SPH_ERR_NOT_FOUND. */
int ss_store_role_set(struct ss_store *st, const char *tenant_id, const char *user_id,
                      enum ss_role role, const char *actor);
/* SS_ROLE_NONE (and 0) when the user has no role there. */
int ss_store_role_get(struct ss_store *st, const char *tenant_id, const char *user_id,
                      enum ss_role *role);
int ss_store_role_list(struct ss_store *st, const char *tenant_id, struct ss_role_entry *out,
                       size_t cap, size_t *n);

/* Stores a token for user_id by its SHA-256 (the token itself is never
 * stored). Returns 0 and *out (its id). */
int ss_store_token_add(struct ss_store *st, const char *user_id, const uint8_t hash[32],
                       struct ss_token *out);
/* The live (not revoked) token whose SHA-256 is hash, and its user.
 * SPH_ERR_NOT_FOUND if none. */
int ss_store_token_find(struct ss_store *st, const uint8_t hash[32], struct ss_token *tok,
                        struct ss_user *user);
/* Revokes token id of user_id (a user revokes only their own; an
 * Administrator's revocation of others goes through the service layer).
 * SPH_ERR_NOT_FOUND if no such live token. Audited as "token.revoke" in
 * tenant_id ("" when none) by actor. */
int ss_store_token_revoke(struct ss_store *st, const char *user_id, const char *token_id,
                          const char *tenant_id, const char *actor);

/* ---- devices --------------------------------------------------------------- */

/* Claims device_id into tenant_id, audited as "device.claim". A device is
 * claimed once: held by any tenant already (the claimer included):
 * SPH_ERR_DUPLICATE; released to another tenant than this one (and not held
 * by this one): SPH_ERR_PERMISSION; unknown tenant: SPH_ERR_NOT_FOUND. A
 * device released to this tenant moves here (its history, the audit rows,
 * stays with the old one; the claim's detail is "transfer"). */
int ss_store_device_claim(struct ss_store *st, const char *tenant_id, const char *device_id,
                          const char *actor);
/* Marks tenant_id's device as released to to_tenant (which must exist and
 * differ), audited as "device.release" in tenant_id with to_tenant as detail.
 * Not held by tenant_id: SPH_ERR_NOT_FOUND; to_tenant unknown:
 * SPH_ERR_NOT_FOUND; to_tenant == tenant_id: SPH_ERR_INVALID_ARG. */
int ss_store_device_release(struct ss_store *st, const char *tenant_id, const char *device_id,
                            const char *to_tenant, const char *actor);
/* The device if tenant_id holds it (else SPH_ERR_NOT_FOUND: another tenant's
 * device is indistinguishable from none). */
int ss_store_device_get(struct ss_store *st, const char *tenant_id, const char *device_id,
                        struct ss_device *out);
/* tenant_id's devices by id, starting after `after` ("" = from the start). */
int ss_store_device_list(struct ss_store *st, const char *tenant_id, const char *after,
                         struct ss_device *out, size_t cap, size_t *n);

/* ---- audit ------------------------------------------------------------------- */

/* Appends an audit row on its own (for actions without a store change, e.g.
 * "attestation.refused"). tenant_id and actor: a UUID or "" (service-wide);
 * action 1..SS_ACTION_MAX, target 1..SS_TARGET_MAX, detail 0..SS_DETAIL_MAX
 * bytes of printable ASCII. */
int ss_store_audit_add(struct ss_store *st, const char *tenant_id, const char *actor,
                       const char *action, const char *target, const char *detail);
/* tenant_id's ("" = service-wide) audit rows with id > after_id (>= 0),
 * oldest first. */
int ss_store_audit_list(struct ss_store *st, const char *tenant_id, int64_t after_id,
                        struct ss_audit *out, size_t cap, size_t *n);

/* ---- products and device groups ------------------------------------------------ */

#define SS_DESC_MAX       256 /* product and group descriptions: 0..256 printable ASCII */
#define SS_DEFAULT_GROUPS 5   /* the groups a new product gets unless told not to */

/* Where a device group's devices get OS releases from. RetailEval receives
 * each release before Retail, for evaluation. */
enum ss_os_feed {
	SS_FEED_NONE = 0, /* in ss_group_change: unchanged */
	SS_FEED_RETAIL = 1,
	SS_FEED_RETAIL_EVAL = 2,
};

/* Which updates a device group's devices accept. */
enum ss_update_policy {
	SS_POLICY_NONE = 0,         /* in ss_group_change: unchanged */
	SS_POLICY_UPDATE_ALL = 1,   /* OS and applications */
	SS_POLICY_NO_3RD_PARTY = 2, /* OS only: no application updates */
	SS_POLICY_NO_UPDATES = 3,   /* nothing */
};

struct ss_product {
	char id[SS_UUID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];
	char name[SS_NAME_MAX + 1]; /* unique in its tenant */
	char description[SS_DESC_MAX + 1];
	int64_t created;
};

struct ss_group {
	char id[SS_UUID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1]; /* always its product's tenant */
	char product_id[SS_UUID_LEN + 1];
	char name[SS_NAME_MAX + 1]; /* unique in its product */
	char description[SS_DESC_MAX + 1];
	enum ss_os_feed os_feed;
	enum ss_update_policy update_policy;
	int64_t created;
};

/* A group_update: what to change. NULL / SS_FEED_NONE / SS_POLICY_NONE keep
 * the current value; at least one member must change something. */
struct ss_group_change {
	const char *name;
	const char *description;
	enum ss_os_feed os_feed;
	enum ss_update_policy update_policy;
};

/* Creates a product of tenant_id (name 1..SS_NAME_MAX, description
 * 0..SS_DESC_MAX printable ASCII), audited "product.create" (detail: the
 * name). With default_groups, the same transaction also creates the
 * SS_DEFAULT_GROUPS default groups (ss_store_default_groups), each audited
 * "group.create". A name the tenant uses already: SPH_ERR_DUPLICATE; unknown
 * tenant: SPH_ERR_NOT_FOUND. Returns 0 and *out. */
int ss_store_product_create(struct ss_store *st, const char *tenant_id, const char *name,
                            const char *description, bool default_groups, const char *actor,
                            struct ss_product *out);
/* tenant_id's product (another tenant's: SPH_ERR_NOT_FOUND). */
int ss_store_product_get(struct ss_store *st, const char *tenant_id, const char *product_id,
                         struct ss_product *out);
/* tenant_id's products by id, after `after` ("" = from the start, or an id). */
int ss_store_product_list(struct ss_store *st, const char *tenant_id, const char *after,
                          struct ss_product *out, size_t cap, size_t *n);

/* Creates a group in tenant_id's product_id, audited "group.create" (detail:
 * the name). The product not the tenant's (or unknown): SPH_ERR_NOT_FOUND;
 * a name the product uses already: SPH_ERR_DUPLICATE. os_feed and
 * update_policy must be real values (not _NONE). Returns 0 and *out. */
int ss_store_group_create(struct ss_store *st, const char *tenant_id, const char *product_id,
                          const char *name, const char *description, enum ss_os_feed os_feed,
                          enum ss_update_policy update_policy, const char *actor,
                          struct ss_group *out);
/* Applies chg to tenant_id's group, audited "group.update" (detail: what
 * changed, e.g. "name os_feed=RetailEval"). Not the tenant's:
 * SPH_ERR_NOT_FOUND; the new name taken in the product: SPH_ERR_DUPLICATE;
 * nothing to change: SPH_ERR_INVALID_ARG. Returns 0 and *out (the group
 * after the change). */
int ss_store_group_update(struct ss_store *st, const char *tenant_id, const char *group_id,
                          const struct ss_group_change *chg, const char *actor,
                          struct ss_group *out);
int ss_store_group_get(struct ss_store *st, const char *tenant_id, const char *group_id,
                       struct ss_group *out);
/* tenant_id's groups by id, after `after` ("" or an id): all of them when
 * product_id is "", else that product's. */
int ss_store_group_list(struct ss_store *st, const char *tenant_id, const char *product_id,
                        const char *after, struct ss_group *out, size_t cap, size_t *n);

/* Moves tenant_id's device into group_id ("" = out of any group), audited
 * "device.move" with detail "<old group id or none> -> <new or none>". The
 * device not held by tenant_id, or the group not tenant_id's:
 * SPH_ERR_NOT_FOUND (another tenant's group is indistinguishable from none).
 * A device that moves to another tenant (claim after release) leaves its
 * group. */
int ss_store_device_set_group(struct ss_store *st, const char *tenant_id, const char *device_id,
                              const char *group_id, const char *actor);

/* The default groups of a product, in creation order: name, description,
 * feed and policy (ids, tenant and product left empty). */
const struct ss_group *ss_store_default_groups(void);

/* API names: "Retail", "RetailEval"; "UpdateAll", "No3rdPartyAppUpdates",
 * "NoUpdates". NULL for others; the _from_name functions return _NONE for an
 * unknown (or NULL) name. */
const char *ss_os_feed_name(enum ss_os_feed f);
enum ss_os_feed ss_os_feed_from_name(const char *name);
const char *ss_update_policy_name(enum ss_update_policy p);
enum ss_update_policy ss_update_policy_from_name(const char *name);

/* ---- tenant CAs ----------------------------------------------------------------
 * A tenant's CA generations (docs/api-ca.md): each a root and a device CA
 * certificate (DER) with their private keys wrapped under the service's KEK
 * (the store sees only ciphertext). States: exactly one Active per tenant at
 * any time once it has a CA; a Revoked one never becomes Active again. A
 * tenant holds at most SS_CA_PER_TENANT rows (SPH_ERR_EXHAUSTED past it). */

#define SS_CA_CERT_MAX   4096 /* bytes of one DER certificate (= SS_CA_DER_MAX) */
#define SS_CA_KEY_MAX    512  /* bytes of one wrapped key (= SS_CA_KEYBLOB_MAX) */
#define SS_CA_PER_TENANT 64

enum ss_ca_state {
	SS_CA_ACTIVE = 1,   /* issues device certificates */
	SS_CA_INACTIVE = 2, /* published (trusted), does not issue: a successor or a predecessor */
	SS_CA_REVOKED = 3,  /* no longer published; final */
};

struct ss_ca_record {
	char id[SS_UUID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];
	enum ss_ca_state state;
	int64_t created;   /* Unix seconds */
	int64_t not_after; /* the device CA's end, Unix seconds */
	uint8_t root_der[SS_CA_CERT_MAX];
	size_t root_der_len;
	uint8_t device_der[SS_CA_CERT_MAX];
	size_t device_der_len;
	uint8_t root_key[SS_CA_KEY_MAX]; /* wrapped: nonce || AES-256-GCM || tag */
	size_t root_key_len;
	uint8_t device_key[SS_CA_KEY_MAX];
	size_t device_key_len;
};

/* Adds a CA to ca->tenant_id with a fresh id (written to id) and creation
 * time, audited "ca.create" (detail: the state). ca->state: Active (only when
 * the tenant has no Active CA: else SPH_ERR_STATE) or Inactive; every length
 * 1..its array's size; not_after > 0. Unknown tenant: SPH_ERR_NOT_FOUND. */
int ss_store_ca_add(struct ss_store *st, const struct ss_ca_record *ca, const char *actor,
                    char id[SS_UUID_LEN + 1]);
/* tenant_id's CAs, newest first. Each record is ~9.3 KiB: keep cap small. */
int ss_store_ca_list(struct ss_store *st, const char *tenant_id, struct ss_ca_record *out,
                     size_t cap, size_t *n);
/* One CA of tenant_id (another tenant's: SPH_ERR_NOT_FOUND). */
int ss_store_ca_get(struct ss_store *st, const char *tenant_id, const char *ca_id,
                    struct ss_ca_record *out);
/* Sets a CA's state, audited "ca.state" (detail: the new state). Active: the
 * previous Active one becomes Inactive in the same transaction (audited too).
 * A Revoked CA never changes again (SPH_ERR_STATE; Revoked again is a no-op);
 * the Active CA cannot become Inactive or Revoked directly (SPH_ERR_STATE:
 * activate a successor first), so a tenant never loses its issuer. Setting
 * the state a CA has already is a no-op (0, not audited). */
int ss_store_ca_set_state(struct ss_store *st, const char *tenant_id, const char *ca_id,
                          enum ss_ca_state state, const char *actor);
/* tenant_id's Active CA (SPH_ERR_NOT_FOUND when it has none). */
int ss_store_ca_active(struct ss_store *st, const char *tenant_id, struct ss_ca_record *out);
/* "Active", "Inactive", "Revoked"; NULL for others. ss_ca_state_from_name
 * returns 0 for an unknown name. */
const char *ss_ca_state_name(enum ss_ca_state state);
enum ss_ca_state ss_ca_state_from_name(const char *name);

/* Role names for the API: "Reader", "Contributor", "Administrator"; NULL for
 * others. ss_role_from_name returns SS_ROLE_NONE for an unknown name. */
const char *ss_role_name(enum ss_role role);
enum ss_role ss_role_from_name(const char *name);

/* ---- image catalogue, OS feeds and deployments (docs/api-images.md) ------------
 * Tenant images (applications) belong to a tenant; OS images (bootloader,
 * security monitor, OS) are platform-wide (tenant_id ""). Packages are stored
 * as the signed bytes the service serves; the manifest fields beside them. */

#define SS_IMAGE_NAME_MAX    64          /* = IMG_NAME_MAX */
#define SS_IMAGE_VERSION_MAX 32          /* = IMG_VERSION_MAX */
#define SS_IMAGE_PACKAGE_MAX (68u << 20) /* bytes of one stored package (>= IMG_MAX_PACKAGE) */
#define SS_DEPLOY_IMAGES_MAX 16          /* images in one deployment */

/* A tenant's image-signing keys: the tenant image root and its production
 * signer (DER certificates; keys wrapped under the KEK, bound to the tenant). */
struct ss_signer_record {
	char tenant_id[SS_UUID_LEN + 1];
	int64_t created;
	uint8_t root_der[SS_CA_CERT_MAX];
	size_t root_der_len;
	uint8_t signer_der[SS_CA_CERT_MAX];
	size_t signer_der_len;
	uint8_t root_key[SS_CA_KEY_MAX];
	size_t root_key_len;
	uint8_t signer_key[SS_CA_KEY_MAX];
	size_t signer_key_len;
};

struct ss_image {
	char id[SS_UUID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];    /* "" for an OS image (platform-wide) */
	char component_id[SS_UUID_LEN + 1]; /* the manifest's component id, lowercase UUID */
	uint32_t type;                      /* enum img_component_type, 1..5 */
	char name[SS_IMAGE_NAME_MAX + 1];
	char version[SS_IMAGE_VERSION_MAX + 1];
	uint32_t security_version; /* 0..255 */
	uint64_t payload_size;
	uint8_t payload_sha256[32];
	uint64_t package_size;
	uint8_t package_sha256[32];
	int64_t created;
};

struct ss_os_release {
	char id[SS_UUID_LEN + 1];
	enum ss_os_feed feed;
	char image_id[SS_UUID_LEN + 1];
	int64_t published; /* Unix seconds */
	int64_t seq;       /* increasing over all releases: orders ties of published */
};

struct ss_deployment {
	char id[SS_UUID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];
	char group_id[SS_UUID_LEN + 1];
	int64_t created;
	int64_t seq; /* increasing per group: the newest is the group's target */
	size_t n_images;
	char image_ids[SS_DEPLOY_IMAGES_MAX][SS_UUID_LEN + 1];
};

/* Stores tenant_id's signer record (rec->created is set here), audited
 * "image.signer". The tenant has one already: SPH_ERR_DUPLICATE (the caller
 * reads that one); unknown tenant: SPH_ERR_NOT_FOUND. Blobs 1..their bound. */
int ss_store_signer_add(struct ss_store *st, const struct ss_signer_record *rec, const char *actor);
/* tenant_id's signer record, or SPH_ERR_NOT_FOUND. */
int ss_store_signer_get(struct ss_store *st, const char *tenant_id, struct ss_signer_record *out);

/* ---- device capabilities (docs/api.md §4.14) -------------------------------- */

/* A tenant's capability signer (docs/formats.md §8.3): a leaf issued by the
 * tenant image root of its ss_signer_record; the key wrapped under the KEK. */
struct ss_cap_signer_record {
	char tenant_id[SS_UUID_LEN + 1];
	int64_t created;
	uint8_t signer_der[SS_CA_CERT_MAX];
	size_t signer_der_len;
	uint8_t signer_key[SS_CA_KEY_MAX];
	size_t signer_key_len;
};

/* What a device is set to (§4.14). PRODUCTION: never switched. */
enum ss_device_mode {
	SS_MODE_PRODUCTION = 0,
	SS_MODE_DEVELOPMENT = 1, /* sideloading: the check-in target has OS images only */
	SS_MODE_CLOUD_TEST = 2,  /* applications from deployments again */
};

/* "production", "development", "cloud-test"; NULL for others. */
const char *ss_device_mode_name(enum ss_device_mode m);

/* Stores tenant_id's capability signer (rec->created is set here), audited
 * "capability.signer". One per tenant: SPH_ERR_DUPLICATE (the caller reads
 * that one); unknown tenant: SPH_ERR_NOT_FOUND. Blobs 1..their bound. */
int ss_store_cap_signer_add(struct ss_store *st, const struct ss_cap_signer_record *rec,
                            const char *actor);
/* tenant_id's capability signer, or SPH_ERR_NOT_FOUND. */
int ss_store_cap_signer_get(struct ss_store *st, const char *tenant_id,
                            struct ss_cap_signer_record *out);
/* Sets device_id's mode in tenant_id (SS_MODE_DEVELOPMENT or
 * SS_MODE_CLOUD_TEST), audited "device.mode" with the mode's name as detail.
 * The device not held by tenant_id: SPH_ERR_NOT_FOUND. */
int ss_store_device_mode_set(struct ss_store *st, const char *tenant_id, const char *device_id,
                             enum ss_device_mode mode, const char *actor);
/* device_id's mode in tenant_id: SS_MODE_PRODUCTION when never set there (a
 * mode recorded by a tenant that no longer holds the device does not count).
 * It does not check that tenant_id holds the device. */
int ss_store_device_mode_get(struct ss_store *st, const char *tenant_id, const char *device_id,
                             enum ss_device_mode *mode);

/* Adds an image with a fresh id and creation time and its package bytes
 * (1..SS_IMAGE_PACKAGE_MAX), audited "image.add" in img->tenant_id (an OS
 * image, tenant_id "": "os_image.add", service-wide); detail
 * "<component id> <version>". Types: 4..5 for a tenant image, 1..3 for an OS
 * image. The same component id and version again in the same owner:
 * SPH_ERR_DUPLICATE; unknown tenant: SPH_ERR_NOT_FOUND. Returns 0 and *out. */
int ss_store_image_add(struct ss_store *st, const struct ss_image *img, const uint8_t *pkg,
                       size_t pkg_len, const char *actor, struct ss_image *out);
/* An image of tenant_id ("" : an OS image); another owner's is SPH_ERR_NOT_FOUND. */
int ss_store_image_get(struct ss_store *st, const char *tenant_id, const char *image_id,
                       struct ss_image *out);
/* The image of tenant_id ("" : OS) with this component id and version (at
 * most one: see image_add). SPH_ERR_NOT_FOUND when there is none, or when
 * component_id or version could not name one (a check-in asks with what a
 * device measured). Returns 0 and *out. */
int ss_store_image_find(struct ss_store *st, const char *tenant_id, const char *component_id,
                        const char *version, struct ss_image *out);
/* tenant_id's ("" : OS) images by id, after `after` ("" or an id). */
int ss_store_image_list(struct ss_store *st, const char *tenant_id, const char *after,
                        struct ss_image *out, size_t cap, size_t *n);
/* The stored package of an image of tenant_id ("" : OS). Returns 0 and *pkg
 * (malloc'd, caller frees) and *len. */
int ss_store_image_package(struct ss_store *st, const char *tenant_id, const char *image_id,
                           uint8_t **pkg, size_t *len);

/* Publishes OS image image_id to feed, audited "os.publish" (service-wide,
 * detail the feed). Not an OS image: SPH_ERR_NOT_FOUND; already in that feed:
 * SPH_ERR_DUPLICATE. Returns 0 and *out. */
int ss_store_os_release_add(struct ss_store *st, enum ss_os_feed feed, const char *image_id,
                            const char *actor, struct ss_os_release *out);
/* feed's releases, newest first (by seq). */
int ss_store_os_release_list(struct ss_store *st, enum ss_os_feed feed, struct ss_os_release *out,
                             size_t cap, size_t *n);

/* Creates a deployment of n (1..SS_DEPLOY_IMAGES_MAX) distinct tenant images
 * to tenant_id's group_id, audited "deployment.create" (target the
 * deployment, detail the group id). The group or an image not the tenant's
 * (or an OS image): SPH_ERR_NOT_FOUND; two images of one component, or one
 * image twice: SPH_ERR_DUPLICATE. Returns 0 and *out. */
int ss_store_deployment_create(struct ss_store *st, const char *tenant_id, const char *group_id,
                               const char *const *image_ids, size_t n, const char *actor,
                               struct ss_deployment *out);
/* tenant_id's group_id's deployments, newest first. An unknown group has none. */
int ss_store_deployment_list(struct ss_store *st, const char *tenant_id, const char *group_id,
                             struct ss_deployment *out, size_t cap, size_t *n);

/* ---- device registrations (docs/api.md §4.13) -----------------------------------
 * Which RoT attestation key belongs to which device, recorded by the platform
 * operator at provisioning. A device is registered once. */

#define SS_ATTEST_KEY_LEN 64 /* the attestation public key, X || Y (P-256) */

struct ss_registration {
	char device_id[SS_DEVICE_ID_LEN + 1];
	uint8_t attestation_key[SS_ATTEST_KEY_LEN];
	int64_t registered;                  /* Unix seconds */
	char registered_by[SS_UUID_LEN + 1]; /* a user id, or "" for the service */
};

/* Registers device_id's attestation key (which must differ from the key the
 * device id names: SPH_ERR_INVALID_ARG), audited "device.register"
 * service-wide (tenant "", target the device id). Registered already with
 * the same key: SPH_ERR_DUPLICATE; with another key: SPH_ERR_STATE (a
 * registration never changes); the key registered for another device:
 * SPH_ERR_DUPLICATE. The key's curve membership is the caller's to check.
 * Returns 0 and *out (may be NULL). */
int ss_store_registration_add(struct ss_store *st, const char *device_id,
                              const uint8_t key[SS_ATTEST_KEY_LEN], const char *actor,
                              struct ss_registration *out);
/* device_id's registration, or SPH_ERR_NOT_FOUND. */
int ss_store_registration_get(struct ss_store *st, const char *device_id,
                              struct ss_registration *out);

/* ---- device check-ins and failure reports (docs/api.md §4.13) -------------------
 * One row of state per device (its last accepted check-in) and a bounded log
 * of the failures devices report with their check-ins. */

#define SS_MEASURED_MAX         2048 /* bytes of a check-in's measured summary (JSON text) */
#define SS_FAILURE_TEXT_MAX     256  /* bytes of a failure report's text */
#define SS_FAILURE_COMP_MAX     64   /* bytes of a failure report's component */
#define SS_FAILURES_PER_CHECKIN 16   /* reports one check-in carries at most */
#define SS_FAILURES_KEEP        100  /* reports kept per device by default */
#define SS_FAILURES_AGE_MAX     (30 * 86400) /* seconds a report is kept by default */

enum ss_failure_kind {
	SS_FAIL_NONE = 0,
	SS_FAIL_CRASH = 1,
	SS_FAIL_EXIT = 2,
	SS_FAIL_SIGNAL = 3,
	SS_FAIL_REFUSED_IMAGE = 4,
	SS_FAIL_FAILED_BOOT = 5,
};

struct ss_checkin_state {
	char device_id[SS_DEVICE_ID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1]; /* the tenant that held it at that check-in */
	int64_t last_checkin;            /* Unix seconds */
	int64_t nonce_ms;                /* the last accepted nonce's issue time */
	bool up_to_date;
	int64_t cert_expires; /* the last issued certificate's notAfter; 0: none */
	char measured[SS_MEASURED_MAX + 1];
};

struct ss_failure {
	int64_t id; /* increasing */
	char device_id[SS_DEVICE_ID_LEN + 1];
	char tenant_id[SS_UUID_LEN + 1];
	int64_t at;                              /* Unix seconds: when the service recorded it */
	char component[SS_FAILURE_COMP_MAX + 1]; /* printable ASCII, may be "" */
	enum ss_failure_kind kind;
	int64_t code;
	char text[SS_FAILURE_TEXT_MAX + 1]; /* printable ASCII, may be "" */
};

/* One accepted check-in (ss_store_checkin_record). */
struct ss_checkin {
	const char *tenant_id; /* the tenant holding the device */
	const char *device_id;
	int64_t nonce_ms; /* the nonce's issue time: must beat the last accepted one */
	bool up_to_date;
	int64_t cert_expires;              /* the certificate issued now (0: none issued) */
	const char *cert_serial;           /* with a certificate: the audit target's detail (hex) */
	const char *measured;              /* 0..SS_MEASURED_MAX bytes of printable text */
	const struct ss_failure *failures; /* component, kind, code, text read */
	size_t n_failures;                 /* 0..SS_FAILURES_PER_CHECKIN */
	size_t keep;                       /* 0: SS_FAILURES_KEEP */
	int64_t max_age;                   /* seconds; 0: SS_FAILURES_AGE_MAX */
};

/* Records a check-in in ONE transaction: the device must still be held by
 * tenant_id (else SPH_ERR_NOT_FOUND); the compare-and-set of the nonce time
 * (not later than the last accepted one: SPH_ERR_ROLLBACK, nothing changes);
 * the device's state; the failure reports appended, then the device's reports
 * beyond keep (oldest first) or older than max_age dropped; and, with a
 * certificate, the audit row "certificate.issue" (target the device id,
 * detail the serial) in tenant_id. */
int ss_store_checkin_record(struct ss_store *st, const struct ss_checkin *ci);
/* device_id's last check-in, or SPH_ERR_NOT_FOUND (never checked in). */
int ss_store_device_checkin_get(struct ss_store *st, const char *device_id,
                                struct ss_checkin_state *out);
/* The device, whichever tenant holds it (SPH_ERR_NOT_FOUND: unclaimed). */
int ss_store_device_find(struct ss_store *st, const char *device_id, struct ss_device *out);
/* Which of a tenant's failure reports a listing takes. */
enum ss_failure_scope {
	SS_FAILURES_TENANT = 0,    /* all (key "") */
	SS_FAILURES_DEVICE = 1,    /* the device's (key: a device id) */
	SS_FAILURES_GROUP = 2,     /* of the devices now in a device group (key: its id) */
	SS_FAILURES_COMPONENT = 3, /* naming a component (key: an image's component id) */
};
/* tenant_id's failure reports in scope, newest first, with id < before_id
 * (0: from the newest). A key that does not fit its scope: SPH_ERR_INVALID_ARG. */
int ss_store_failure_list(struct ss_store *st, const char *tenant_id, enum ss_failure_scope scope,
                          const char *key, int64_t before_id, struct ss_failure *out, size_t cap,
                          size_t *n);
/* "crash", "exit", "signal", "refused-image", "failed-boot"; NULL for others.
 * ss_failure_kind_from_name returns SS_FAIL_NONE for an unknown name. */
const char *ss_failure_kind_name(enum ss_failure_kind k);
enum ss_failure_kind ss_failure_kind_from_name(const char *name);

#endif
