/*
 * ss_store: the backend-neutral front (docs/api.md "Storage"). It picks the
 * backend from the URL, checks every argument before a backend sees it,
 * zeroes outputs, and makes ids (random UUID v4) and creation times. A
 * backend that leaves a member of its table NULL (not implemented yet) makes
 * that function return SPH_ERR_UNSUPPORTED instead of crashing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/crypto.h>

#include "common/common.h"
#include "ss_store_internal.h"

struct ss_store {
	const struct ss_store_ops *ops;
	void *be;
};

/* Calls backend member m with the backend's state and the arguments that
 * follow, or returns SPH_ERR_UNSUPPORTED when the backend lacks m. */
#define SS_BE(st, m, ...) ((st)->ops->m ? (st)->ops->m((st)->be, __VA_ARGS__) : SPH_ERR_UNSUPPORTED)

/* ---- helpers ---------------------------------------------------------------- */

int64_t ss_store_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static bool ss_is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lowercase hex. */
static bool ss_uuid_ok(const char *s)
{
	if (!s || strnlen(s, SS_UUID_LEN + 1) != SS_UUID_LEN)
		return false;
	for (size_t i = 0; i < SS_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !ss_is_lower_hex(s[i]))
			return false;
	}
	return true;
}

static bool ss_uuid_or_empty_ok(const char *s)
{
	return s && (s[0] == '\0' || ss_uuid_ok(s));
}

static bool ss_device_id_ok(const char *s)
{
	if (!s || strnlen(s, SS_DEVICE_ID_LEN + 1) != SS_DEVICE_ID_LEN)
		return false;
	for (size_t i = 0; i < SS_DEVICE_ID_LEN; i++)
		if (!ss_is_lower_hex(s[i]))
			return false;
	return true;
}

/* min..max bytes of printable ASCII (min is 0 or 1). */
static bool ss_text_ok(const char *s, size_t min, size_t max)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, max + 1);
	if (n == 0)
		return min == 0;
	return sph_text_ok((const uint8_t *)s, n, max);
}

static bool ss_role_ok(enum ss_role role)
{
	return (int)role >= SS_ROLE_NONE && (int)role <= SS_ROLE_ADMIN;
}

/* A random (version 4) UUID in lowercase. */
static int ss_uuid_new(char out[SS_UUID_LEN + 1])
{
	uint8_t b[16];
	char hex[33];
	int rc = SPH_ERR_RANDOM;

	out[0] = '\0';
	if (RAND_bytes(b, sizeof(b)) != 1)
		goto out;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	rc = sph_hex_encode(b, sizeof(b), hex, sizeof(hex));
	if (rc)
		goto out;
	memcpy(out, hex, 8);
	out[8] = '-';
	memcpy(out + 9, hex + 8, 4);
	out[13] = '-';
	memcpy(out + 14, hex + 12, 4);
	out[18] = '-';
	memcpy(out + 19, hex + 16, 4);
	out[23] = '-';
	memcpy(out + 24, hex + 20, 12);
	out[SS_UUID_LEN] = '\0';
	rc = 0;
out:
	return rc;
}

/* Zeroes a list output and bounds cap. Returns false for a bad list call. */
static bool ss_list_args(void *out, size_t elem, size_t *cap, size_t *n)
{
	if (n)
		*n = 0;
	if (*cap > SS_LIST_MAX)
		*cap = SS_LIST_MAX;
	if (out && *cap)
		memset(out, 0, *cap * elem);
	return n && (out || *cap == 0);
}

/* ---- open / close ---------------------------------------------------------- */

static const struct {
	const char *prefix;
	const struct ss_store_ops *ops;
	bool whole_url; /* the backend gets the URL itself, not what follows the prefix */
} ss_backends[] = {
        {"sqlite:", &ss_sqlite_ops, false},
        {"postgresql://", &ss_pg_ops, true},
        {"postgres://", &ss_pg_ops, true},
};

int ss_store_open(const char *url, struct ss_store **out)
{
	const struct ss_store_ops *ops = NULL;
	const char *loc = url;
	struct ss_store *st = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!url || !out || !url[0])
		goto out;
	for (size_t i = 0; i < sizeof(ss_backends) / sizeof(ss_backends[0]); i++) {
		size_t len = strlen(ss_backends[i].prefix);
		if (strncmp(url, ss_backends[i].prefix, len) == 0) {
			ops = ss_backends[i].ops;
			loc = ss_backends[i].whole_url ? url : url + len;
		}
	}
	if (!ops) {
		/* Any other "scheme://" is not built in. */
		rc = SPH_ERR_UNSUPPORTED;
		if (strstr(url, "://"))
			goto out;
		ops = &ss_sqlite_ops;
	}
	rc = SPH_ERR_UNSUPPORTED;
	if (!ops->open || !ops->close)
		goto out;
	rc = SPH_ERR_NOMEM;
	st = calloc(1, sizeof(*st));
	if (!st)
		goto out;
	st->ops = ops;
	rc = ops->open(loc, &st->be);
	if (rc)
		goto out;
	sph_log(SPH_LOG_INFO, "ss_store", "opened", "backend=%s", ops->name);
	*out = st;
	st = NULL; /* transferred */
out:
	free(st);
	return rc;
}

void ss_store_close(struct ss_store *st)
{
	if (!st)
		return;
	st->ops->close(st->be);
	free(st);
}

int ss_store_schema_version(struct ss_store *st, int *version)
{
	if (version)
		*version = 0;
	if (!st || !version)
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, schema_version, version);
}

/* ---- tenants, users, roles, tokens ----------------------------------------- */

int ss_store_tenant_create(struct ss_store *st, const char *name, const char *actor,
                           struct ss_tenant *out)
{
	struct ss_tenant t = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_text_ok(name, 1, SS_NAME_MAX) || !ss_uuid_or_empty_ok(actor))
		goto out;
	rc = ss_uuid_new(t.id);
	if (rc)
		goto out;
	memcpy(t.name, name, strlen(name) + 1);
	t.created = ss_store_now();
	rc = SS_BE(st, tenant_create, &t, actor);
	if (rc)
		goto out;
	*out = t;
out:
	return rc;
}

int ss_store_tenant_get(struct ss_store *st, const char *id, struct ss_tenant *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, tenant_get, id, out);
}

int ss_store_tenant_list_for_user(struct ss_store *st, const char *user_id, struct ss_tenant *out,
                                  size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(user_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, tenant_list_for_user, user_id, out, cap, n);
}

int ss_store_user_create(struct ss_store *st, const char *name, bool is_operator,
                         struct ss_user *out)
{
	struct ss_user u = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_text_ok(name, 1, SS_NAME_MAX))
		goto out;
	rc = ss_uuid_new(u.id);
	if (rc)
		goto out;
	memcpy(u.name, name, strlen(name) + 1);
	u.is_operator = is_operator;
	rc = SS_BE(st, user_create, &u, ss_store_now());
	if (rc)
		goto out;
	*out = u;
out:
	return rc;
}

int ss_store_user_get(struct ss_store *st, const char *id, struct ss_user *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, user_get, id, out);
}

int ss_store_user_by_name(struct ss_store *st, const char *name, struct ss_user *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_text_ok(name, 1, SS_NAME_MAX))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, user_by_name, name, out);
}

int ss_store_role_set(struct ss_store *st, const char *tenant_id, const char *user_id,
                      enum ss_role role, const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(user_id) || !ss_role_ok(role) ||
	    !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, role_set, tenant_id, user_id, role, actor);
}

int ss_store_role_get(struct ss_store *st, const char *tenant_id, const char *user_id,
                      enum ss_role *role)
{
	if (role)
		*role = SS_ROLE_NONE;
	if (!st || !role || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(user_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, role_get, tenant_id, user_id, role);
}

int ss_store_role_list(struct ss_store *st, const char *tenant_id, struct ss_role_entry *out,
                       size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, role_list, tenant_id, out, cap, n);
}

int ss_store_token_add(struct ss_store *st, const char *user_id, const uint8_t hash[32],
                       struct ss_token *out)
{
	struct ss_token t = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !hash || !ss_uuid_ok(user_id))
		goto out;
	rc = ss_uuid_new(t.id);
	if (rc)
		goto out;
	memcpy(t.user_id, user_id, SS_UUID_LEN + 1);
	t.created = ss_store_now();
	rc = SS_BE(st, token_add, &t, hash);
	if (rc)
		goto out;
	*out = t;
out:
	return rc;
}

int ss_store_token_find(struct ss_store *st, const uint8_t hash[32], struct ss_token *tok,
                        struct ss_user *user)
{
	if (tok)
		memset(tok, 0, sizeof(*tok));
	if (user)
		memset(user, 0, sizeof(*user));
	if (!st || !hash || !tok || !user)
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, token_find, hash, tok, user);
}

int ss_store_token_revoke(struct ss_store *st, const char *user_id, const char *token_id,
                          const char *tenant_id, const char *actor)
{
	if (!st || !ss_uuid_ok(user_id) || !ss_uuid_ok(token_id) ||
	    !ss_uuid_or_empty_ok(tenant_id) || !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, token_revoke, user_id, token_id, tenant_id, actor);
}

/* ---- devices ------------------------------------------------------------------ */

int ss_store_device_claim(struct ss_store *st, const char *tenant_id, const char *device_id,
                          const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id) ||
	    !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_claim, tenant_id, device_id, actor);
}

int ss_store_device_release(struct ss_store *st, const char *tenant_id, const char *device_id,
                            const char *to_tenant, const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id) ||
	    !ss_uuid_ok(to_tenant) || !ss_uuid_or_empty_ok(actor) ||
	    strcmp(tenant_id, to_tenant) == 0)
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_release, tenant_id, device_id, to_tenant, actor);
}

int ss_store_device_get(struct ss_store *st, const char *tenant_id, const char *device_id,
                        struct ss_device *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_get, tenant_id, device_id, out);
}

int ss_store_device_list(struct ss_store *st, const char *tenant_id, const char *after,
                         struct ss_device *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id) || !after ||
	    (after[0] && !ss_device_id_ok(after)))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_list, tenant_id, after, out, cap, n);
}

/* ---- audit ---------------------------------------------------------------------- */

int ss_store_audit_add(struct ss_store *st, const char *tenant_id, const char *actor,
                       const char *action, const char *target, const char *detail)
{
	struct ss_audit a = {0};

	if (!st || !ss_uuid_or_empty_ok(tenant_id) || !ss_uuid_or_empty_ok(actor) ||
	    !ss_text_ok(action, 1, SS_ACTION_MAX) || !ss_text_ok(target, 1, SS_TARGET_MAX) ||
	    !ss_text_ok(detail, 0, SS_DETAIL_MAX))
		return SPH_ERR_INVALID_ARG;
	memcpy(a.tenant_id, tenant_id, strlen(tenant_id) + 1);
	memcpy(a.actor, actor, strlen(actor) + 1);
	memcpy(a.action, action, strlen(action) + 1);
	memcpy(a.target, target, strlen(target) + 1);
	memcpy(a.detail, detail, strlen(detail) + 1);
	return SS_BE(st, audit_add, &a);
}

int ss_store_audit_list(struct ss_store *st, const char *tenant_id, int64_t after_id,
                        struct ss_audit *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_or_empty_ok(tenant_id) ||
	    after_id < 0)
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, audit_list, tenant_id, after_id, out, cap, n);
}

/* ---- products and device groups -------------------------------------------------- */

static bool ss_feed_ok(enum ss_os_feed f)
{
	return ss_os_feed_name(f) != NULL;
}

static bool ss_policy_ok(enum ss_update_policy p)
{
	return ss_update_policy_name(p) != NULL;
}

/* Copies a checked string (its length is known to fit cap). */
static void ss_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

int ss_store_product_create(struct ss_store *st, const char *tenant_id, const char *name,
                            const char *description, bool default_groups, const char *actor,
                            struct ss_product *out)
{
	struct ss_group gs[SS_DEFAULT_GROUPS];
	const struct ss_group *def = ss_store_default_groups();
	struct ss_product p = {0};
	size_t ng = default_groups ? SS_DEFAULT_GROUPS : 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	memset(gs, 0, sizeof(gs));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_text_ok(name, 1, SS_NAME_MAX) ||
	    !ss_text_ok(description, 0, SS_DESC_MAX) || !ss_uuid_or_empty_ok(actor))
		goto out;
	rc = ss_uuid_new(p.id);
	if (rc)
		goto out;
	ss_copy(p.tenant_id, sizeof(p.tenant_id), tenant_id);
	ss_copy(p.name, sizeof(p.name), name);
	ss_copy(p.description, sizeof(p.description), description);
	p.created = ss_store_now();
	for (size_t i = 0; i < ng; i++) {
		gs[i] = def[i];
		rc = ss_uuid_new(gs[i].id);
		if (rc)
			goto out;
		ss_copy(gs[i].tenant_id, sizeof(gs[i].tenant_id), tenant_id);
		ss_copy(gs[i].product_id, sizeof(gs[i].product_id), p.id);
		gs[i].created = p.created;
	}
	rc = SS_BE(st, product_create, &p, gs, ng, actor);
	if (rc)
		goto out;
	*out = p;
out:
	return rc;
}

int ss_store_product_get(struct ss_store *st, const char *tenant_id, const char *product_id,
                         struct ss_product *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(product_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, product_get, tenant_id, product_id, out);
}

int ss_store_product_list(struct ss_store *st, const char *tenant_id, const char *after,
                          struct ss_product *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id) ||
	    !ss_uuid_or_empty_ok(after))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, product_list, tenant_id, after, out, cap, n);
}

int ss_store_group_create(struct ss_store *st, const char *tenant_id, const char *product_id,
                          const char *name, const char *description, enum ss_os_feed os_feed,
                          enum ss_update_policy update_policy, const char *actor,
                          struct ss_group *out)
{
	struct ss_group g = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(product_id) ||
	    !ss_text_ok(name, 1, SS_NAME_MAX) || !ss_text_ok(description, 0, SS_DESC_MAX) ||
	    !ss_feed_ok(os_feed) || !ss_policy_ok(update_policy) || !ss_uuid_or_empty_ok(actor))
		goto out;
	rc = ss_uuid_new(g.id);
	if (rc)
		goto out;
	ss_copy(g.tenant_id, sizeof(g.tenant_id), tenant_id);
	ss_copy(g.product_id, sizeof(g.product_id), product_id);
	ss_copy(g.name, sizeof(g.name), name);
	ss_copy(g.description, sizeof(g.description), description);
	g.os_feed = os_feed;
	g.update_policy = update_policy;
	g.created = ss_store_now();
	rc = SS_BE(st, group_create, &g, actor);
	if (rc)
		goto out;
	*out = g;
out:
	return rc;
}

int ss_store_group_update(struct ss_store *st, const char *tenant_id, const char *group_id,
                          const struct ss_group_change *chg, const char *actor,
                          struct ss_group *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !chg || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(group_id) ||
	    !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	if (!chg->name && !chg->description && chg->os_feed == SS_FEED_NONE &&
	    chg->update_policy == SS_POLICY_NONE)
		return SPH_ERR_INVALID_ARG;
	if ((chg->name && !ss_text_ok(chg->name, 1, SS_NAME_MAX)) ||
	    (chg->description && !ss_text_ok(chg->description, 0, SS_DESC_MAX)) ||
	    (chg->os_feed != SS_FEED_NONE && !ss_feed_ok(chg->os_feed)) ||
	    (chg->update_policy != SS_POLICY_NONE && !ss_policy_ok(chg->update_policy)))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, group_update, tenant_id, group_id, chg, actor, out);
}

int ss_store_group_get(struct ss_store *st, const char *tenant_id, const char *group_id,
                       struct ss_group *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(group_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, group_get, tenant_id, group_id, out);
}

int ss_store_group_list(struct ss_store *st, const char *tenant_id, const char *product_id,
                        const char *after, struct ss_group *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id) ||
	    !ss_uuid_or_empty_ok(product_id) || !ss_uuid_or_empty_ok(after))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, group_list, tenant_id, product_id, after, out, cap, n);
}

int ss_store_device_set_group(struct ss_store *st, const char *tenant_id, const char *device_id,
                              const char *group_id, const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id) ||
	    !ss_uuid_or_empty_ok(group_id) || !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_set_group, tenant_id, device_id, group_id, actor);
}

/* ---- tenant CAs ------------------------------------------------------------------ */

static const char *const ss_ca_states[] = {
        [SS_CA_ACTIVE] = "Active",
        [SS_CA_INACTIVE] = "Inactive",
        [SS_CA_REVOKED] = "Revoked",
};

const char *ss_ca_state_name(enum ss_ca_state state)
{
	return (int)state >= SS_CA_ACTIVE && (int)state <= SS_CA_REVOKED ? ss_ca_states[state]
	                                                                 : NULL;
}

enum ss_ca_state ss_ca_state_from_name(const char *name)
{
	for (int i = SS_CA_ACTIVE; name && i <= SS_CA_REVOKED; i++)
		if (strcmp(name, ss_ca_states[i]) == 0)
			return (enum ss_ca_state)i;
	return (enum ss_ca_state)0;
}

static bool ss_blob_ok(size_t len, size_t max)
{
	return len >= 1 && len <= max;
}

int ss_store_ca_add(struct ss_store *st, const struct ss_ca_record *ca, const char *actor,
                    char id[SS_UUID_LEN + 1])
{
	struct ss_ca_record *rec = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (id)
		id[0] = '\0';
	if (!st || !ca || !id || !ss_uuid_ok(ca->tenant_id) || !ss_uuid_or_empty_ok(actor) ||
	    (ca->state != SS_CA_ACTIVE && ca->state != SS_CA_INACTIVE) || ca->not_after <= 0 ||
	    !ss_blob_ok(ca->root_der_len, SS_CA_CERT_MAX) ||
	    !ss_blob_ok(ca->device_der_len, SS_CA_CERT_MAX) ||
	    !ss_blob_ok(ca->root_key_len, SS_CA_KEY_MAX) ||
	    !ss_blob_ok(ca->device_key_len, SS_CA_KEY_MAX))
		goto out;
	rc = SPH_ERR_NOMEM;
	rec = malloc(sizeof(*rec));
	if (!rec)
		goto out;
	*rec = *ca;
	rc = ss_uuid_new(rec->id);
	if (rc)
		goto out;
	rec->created = ss_store_now();
	rc = SS_BE(st, ca_add, rec, actor);
	if (rc)
		goto out;
	memcpy(id, rec->id, SS_UUID_LEN + 1);
out:
	if (rec)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return rc;
}

int ss_store_ca_list(struct ss_store *st, const char *tenant_id, struct ss_ca_record *out,
                     size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, ca_list, tenant_id, out, cap, n);
}

int ss_store_ca_get(struct ss_store *st, const char *tenant_id, const char *ca_id,
                    struct ss_ca_record *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(ca_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, ca_get, tenant_id, ca_id, out);
}

int ss_store_ca_set_state(struct ss_store *st, const char *tenant_id, const char *ca_id,
                          enum ss_ca_state state, const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_uuid_ok(ca_id) || !ss_ca_state_name(state) ||
	    !ss_uuid_or_empty_ok(actor))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, ca_set_state, tenant_id, ca_id, state, actor);
}

int ss_store_ca_active(struct ss_store *st, const char *tenant_id, struct ss_ca_record *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, ca_active, tenant_id, out);
}

/* ---- image catalogue, OS feeds and deployments ------------------------------------ */

static bool ss_image_ok(const struct ss_image *img)
{
	bool os = img->tenant_id[0] == '\0';

	return ss_uuid_or_empty_ok(img->tenant_id) && ss_uuid_ok(img->component_id) &&
	       (os ? img->type >= 1 && img->type <= 3 : img->type >= 4 && img->type <= 5) &&
	       ss_text_ok(img->name, 1, SS_IMAGE_NAME_MAX) &&
	       ss_text_ok(img->version, 1, SS_IMAGE_VERSION_MAX) && img->security_version <= 255 &&
	       img->package_size >= 1 && img->package_size <= SS_IMAGE_PACKAGE_MAX &&
	       img->payload_size < img->package_size;
}

int ss_store_signer_add(struct ss_store *st, const struct ss_signer_record *rec, const char *actor)
{
	struct ss_signer_record *r = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (!st || !rec || !ss_uuid_ok(rec->tenant_id) || !ss_uuid_or_empty_ok(actor) ||
	    !ss_blob_ok(rec->root_der_len, SS_CA_CERT_MAX) ||
	    !ss_blob_ok(rec->signer_der_len, SS_CA_CERT_MAX) ||
	    !ss_blob_ok(rec->root_key_len, SS_CA_KEY_MAX) ||
	    !ss_blob_ok(rec->signer_key_len, SS_CA_KEY_MAX))
		goto out;
	rc = SPH_ERR_NOMEM;
	r = malloc(sizeof(*r));
	if (!r)
		goto out;
	*r = *rec;
	r->created = ss_store_now();
	rc = SS_BE(st, signer_add, r, actor);
out:
	if (r)
		OPENSSL_cleanse(r, sizeof(*r));
	free(r);
	return rc;
}

int ss_store_signer_get(struct ss_store *st, const char *tenant_id, struct ss_signer_record *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, signer_get, tenant_id, out);
}

const char *ss_device_mode_name(enum ss_device_mode m)
{
	switch (m) {
	case SS_MODE_PRODUCTION:
		return "production";
	case SS_MODE_DEVELOPMENT:
		return "development";
	case SS_MODE_CLOUD_TEST:
		return "cloud-test";
	}
	return NULL;
}

int ss_store_cap_signer_add(struct ss_store *st, const struct ss_cap_signer_record *rec,
                            const char *actor)
{
	struct ss_cap_signer_record *r = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (!st || !rec || !ss_uuid_ok(rec->tenant_id) || !ss_uuid_or_empty_ok(actor) ||
	    !ss_blob_ok(rec->signer_der_len, SS_CA_CERT_MAX) ||
	    !ss_blob_ok(rec->signer_key_len, SS_CA_KEY_MAX))
		goto out;
	rc = SPH_ERR_NOMEM;
	r = malloc(sizeof(*r));
	if (!r)
		goto out;
	*r = *rec;
	r->created = ss_store_now();
	rc = SS_BE(st, cap_signer_add, r, actor);
out:
	if (r)
		OPENSSL_cleanse(r, sizeof(*r));
	free(r);
	return rc;
}

int ss_store_cap_signer_get(struct ss_store *st, const char *tenant_id,
                            struct ss_cap_signer_record *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_ok(tenant_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, cap_signer_get, tenant_id, out);
}

int ss_store_device_mode_set(struct ss_store *st, const char *tenant_id, const char *device_id,
                             enum ss_device_mode mode, const char *actor)
{
	if (!st || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id) ||
	    !ss_uuid_or_empty_ok(actor) ||
	    (mode != SS_MODE_DEVELOPMENT && mode != SS_MODE_CLOUD_TEST))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_mode_set, tenant_id, device_id, mode, actor);
}

int ss_store_device_mode_get(struct ss_store *st, const char *tenant_id, const char *device_id,
                             enum ss_device_mode *mode)
{
	if (mode)
		*mode = SS_MODE_PRODUCTION;
	if (!st || !mode || !ss_uuid_ok(tenant_id) || !ss_device_id_ok(device_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_mode_get, tenant_id, device_id, mode);
}

int ss_store_image_add(struct ss_store *st, const struct ss_image *img, const uint8_t *pkg,
                       size_t pkg_len, const char *actor, struct ss_image *out)
{
	struct ss_image i;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !img || !out || !pkg || !ss_image_ok(img) || pkg_len != img->package_size ||
	    !ss_uuid_or_empty_ok(actor))
		goto out;
	i = *img;
	rc = ss_uuid_new(i.id);
	if (rc)
		goto out;
	i.created = ss_store_now();
	rc = SS_BE(st, image_add, &i, pkg, pkg_len, actor);
	if (rc)
		goto out;
	*out = i;
out:
	return rc;
}

int ss_store_image_get(struct ss_store *st, const char *tenant_id, const char *image_id,
                       struct ss_image *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_or_empty_ok(tenant_id) || !ss_uuid_ok(image_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, image_get, tenant_id, image_id, out);
}

int ss_store_image_find(struct ss_store *st, const char *tenant_id, const char *component_id,
                        const char *version, struct ss_image *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_uuid_or_empty_ok(tenant_id) || !component_id || !version)
		return SPH_ERR_INVALID_ARG;
	if (!ss_uuid_ok(component_id) || !ss_text_ok(version, 1, SS_IMAGE_VERSION_MAX))
		return SPH_ERR_NOT_FOUND;
	return SS_BE(st, image_find, tenant_id, component_id, version, out);
}

int ss_store_image_list(struct ss_store *st, const char *tenant_id, const char *after,
                        struct ss_image *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_or_empty_ok(tenant_id) ||
	    !ss_uuid_or_empty_ok(after))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, image_list, tenant_id, after, out, cap, n);
}

int ss_store_image_package(struct ss_store *st, const char *tenant_id, const char *image_id,
                           uint8_t **pkg, size_t *len)
{
	if (pkg)
		*pkg = NULL;
	if (len)
		*len = 0;
	if (!st || !pkg || !len || !ss_uuid_or_empty_ok(tenant_id) || !ss_uuid_ok(image_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, image_package, tenant_id, image_id, pkg, len);
}

int ss_store_os_release_add(struct ss_store *st, enum ss_os_feed feed, const char *image_id,
                            const char *actor, struct ss_os_release *out)
{
	struct ss_os_release r = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_feed_ok(feed) || !ss_uuid_ok(image_id) ||
	    !ss_uuid_or_empty_ok(actor))
		goto out;
	rc = ss_uuid_new(r.id);
	if (rc)
		goto out;
	r.feed = feed;
	ss_copy(r.image_id, sizeof(r.image_id), image_id);
	r.published = ss_store_now();
	rc = SS_BE(st, os_release_add, &r, actor);
	if (rc)
		goto out;
	*out = r;
out:
	return rc;
}

int ss_store_os_release_list(struct ss_store *st, enum ss_os_feed feed, struct ss_os_release *out,
                             size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_feed_ok(feed))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, os_release_list, feed, out, cap, n);
}

int ss_store_deployment_create(struct ss_store *st, const char *tenant_id, const char *group_id,
                               const char *const *image_ids, size_t n, const char *actor,
                               struct ss_deployment *out)
{
	struct ss_deployment d = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !image_ids || n < 1 || n > SS_DEPLOY_IMAGES_MAX ||
	    !ss_uuid_ok(tenant_id) || !ss_uuid_ok(group_id) || !ss_uuid_or_empty_ok(actor))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!ss_uuid_ok(image_ids[i]))
			goto out;
		ss_copy(d.image_ids[i], sizeof(d.image_ids[i]), image_ids[i]);
	}
	d.n_images = n;
	rc = ss_uuid_new(d.id);
	if (rc)
		goto out;
	ss_copy(d.tenant_id, sizeof(d.tenant_id), tenant_id);
	ss_copy(d.group_id, sizeof(d.group_id), group_id);
	d.created = ss_store_now();
	rc = SS_BE(st, deployment_create, &d, actor);
	if (rc)
		goto out;
	*out = d;
out:
	return rc;
}

int ss_store_deployment_list(struct ss_store *st, const char *tenant_id, const char *group_id,
                             struct ss_deployment *out, size_t cap, size_t *n)
{
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id) ||
	    !ss_uuid_ok(group_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, deployment_list, tenant_id, group_id, out, cap, n);
}

/* ---- device registrations ------------------------------------------------------------ */

int ss_store_registration_add(struct ss_store *st, const char *device_id,
                              const uint8_t key[SS_ATTEST_KEY_LEN], const char *actor,
                              struct ss_registration *out)
{
	struct ss_registration reg = {0};
	uint8_t id_key[SS_ATTEST_KEY_LEN];
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !key || !ss_device_id_ok(device_id) || !ss_uuid_or_empty_ok(actor))
		goto out;
	/* The attestation key is never the identity key (the device id). */
	if (sph_hex_decode(device_id, id_key, sizeof(id_key)) != 0 ||
	    memcmp(id_key, key, sizeof(id_key)) == 0)
		goto out;
	memcpy(reg.device_id, device_id, SS_DEVICE_ID_LEN + 1);
	memcpy(reg.attestation_key, key, SS_ATTEST_KEY_LEN);
	reg.registered = ss_store_now();
	memcpy(reg.registered_by, actor, strlen(actor) + 1);
	rc = SS_BE(st, registration_add, &reg, actor);
	if (rc == 0 && out)
		*out = reg;
out:
	return rc;
}

int ss_store_registration_get(struct ss_store *st, const char *device_id,
                              struct ss_registration *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_device_id_ok(device_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, registration_get, device_id, out);
}

/* ---- device check-ins and failure reports ------------------------------------------ */

static const char *const ss_failure_kinds[] = {
        [SS_FAIL_CRASH] = "crash",
        [SS_FAIL_EXIT] = "exit",
        [SS_FAIL_SIGNAL] = "signal",
        [SS_FAIL_REFUSED_IMAGE] = "refused-image",
        [SS_FAIL_FAILED_BOOT] = "failed-boot",
};

const char *ss_failure_kind_name(enum ss_failure_kind k)
{
	return (int)k >= SS_FAIL_CRASH && (int)k <= SS_FAIL_FAILED_BOOT ? ss_failure_kinds[k]
	                                                                : NULL;
}

enum ss_failure_kind ss_failure_kind_from_name(const char *name)
{
	for (int k = SS_FAIL_CRASH; name && k <= SS_FAIL_FAILED_BOOT; k++)
		if (strcmp(name, ss_failure_kinds[k]) == 0)
			return (enum ss_failure_kind)k;
	return SS_FAIL_NONE;
}

int ss_store_checkin_record(struct ss_store *st, const struct ss_checkin *ci)
{
	struct ss_checkin c;

	if (!st || !ci || !ss_uuid_ok(ci->tenant_id) || !ss_device_id_ok(ci->device_id) ||
	    ci->nonce_ms <= 0 || ci->cert_expires < 0 || !ci->measured ||
	    !ss_text_ok(ci->measured, 0, SS_MEASURED_MAX) ||
	    ci->n_failures > SS_FAILURES_PER_CHECKIN || (ci->n_failures && !ci->failures) ||
	    ci->keep > SS_LIST_MAX || ci->max_age < 0)
		return SPH_ERR_INVALID_ARG;
	if (ci->cert_expires &&
	    (!ci->cert_serial || !ss_text_ok(ci->cert_serial, 1, SS_DETAIL_MAX)))
		return SPH_ERR_INVALID_ARG;
	for (size_t i = 0; i < ci->n_failures; i++) {
		const struct ss_failure *f = &ci->failures[i];
		if (!ss_failure_kind_name(f->kind) ||
		    !ss_text_ok(f->component, 0, SS_FAILURE_COMP_MAX) ||
		    !ss_text_ok(f->text, 0, SS_FAILURE_TEXT_MAX))
			return SPH_ERR_INVALID_ARG;
	}
	c = *ci;
	if (!c.keep)
		c.keep = SS_FAILURES_KEEP;
	if (!c.max_age)
		c.max_age = SS_FAILURES_AGE_MAX;
	if (!c.cert_expires)
		c.cert_serial = "";
	return SS_BE(st, checkin_record, &c, ss_store_now());
}

int ss_store_device_checkin_get(struct ss_store *st, const char *device_id,
                                struct ss_checkin_state *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_device_id_ok(device_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, checkin_get, device_id, out);
}

int ss_store_device_find(struct ss_store *st, const char *device_id, struct ss_device *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!st || !out || !ss_device_id_ok(device_id))
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, device_find, device_id, out);
}

int ss_store_failure_list(struct ss_store *st, const char *tenant_id, enum ss_failure_scope scope,
                          const char *key, int64_t before_id, struct ss_failure *out, size_t cap,
                          size_t *n)
{
	bool key_ok = false;

	if (key) {
		switch (scope) {
		case SS_FAILURES_TENANT:
			key_ok = key[0] == '\0';
			break;
		case SS_FAILURES_DEVICE:
			key_ok = ss_device_id_ok(key);
			break;
		case SS_FAILURES_GROUP:
		case SS_FAILURES_COMPONENT:
			key_ok = ss_uuid_ok(key);
			break;
		}
	}
	if (!ss_list_args(out, sizeof(*out), &cap, n) || !st || !ss_uuid_ok(tenant_id) || !key_ok ||
	    before_id < 0)
		return SPH_ERR_INVALID_ARG;
	return SS_BE(st, failure_list, tenant_id, scope, key, before_id ? before_id : INT64_MAX,
	             out, cap, n);
}
