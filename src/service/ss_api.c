/*
 * ss_api: the /v1 endpoints of docs/api.md §4 on the HTTPS core (ss_http)
 * and the store (ss_store): authentication, tenant roles, and the handlers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "service.h"
#include "ss_http.h"
#include "ss_internal.h"

#define SS_LIMIT_DEFAULT 100

/* ---- helpers ------------------------------------------------------------------ */

/* Replies for a store status that refused or failed a request. */
void ss_api_reply_store(struct ss_req *r, int rc, const char *what)
{
	switch (rc) {
	case SPH_ERR_NOT_FOUND:
		ss_reply_error(r, 404, "not_found", "%s not found", what);
		break;
	case SPH_ERR_DUPLICATE:
		ss_reply_error(r, 409, "conflict", "%s exists already", what);
		break;
	case SPH_ERR_PERMISSION:
	case SPH_ERR_STATE:
		ss_reply_error(r, 409, "conflict", "%s: not allowed in its current state", what);
		break;
	case SPH_ERR_INVALID_ARG:
		ss_reply_error(r, 400, "bad_request", "%s: invalid value", what);
		break;
	default:
		sph_log(SPH_LOG_ERROR, "ss", "store_failed", "what=\"%s\" status=%d", what, rc);
		ss_reply_error(r, 500, "internal", "the service failed (%s)", sph_strerror(rc));
	}
}

/* The request's token → its user. Replies 401 (or 500) and returns false
 * when there is none. */
bool ss_api_auth(struct ss_service *s, struct ss_req *r, struct ss_user *u, struct ss_token *tok)
{
	const char *h = ss_req_header(r, "Authorization");
	const char *why = "missing", *label = "reason=\"missing\"";
	uint8_t hash[32];
	int rc = SPH_ERR_NOT_FOUND;

	if (h && strncmp(h, "Bearer ", 7) == 0) {
		why = "malformed";
		label = "reason=\"malformed\"";
		rc = ss_token_hash(h + 7, hash);
		if (rc == 0) {
			why = "unknown or revoked";
			label = "reason=\"unknown\"";
			rc = ss_store_token_find(s->st, hash, tok, u);
		}
		OPENSSL_cleanse(hash, sizeof(hash));
	}
	if (rc == 0)
		return true;
	if (rc == SPH_ERR_IO) {
		ss_api_reply_store(r, rc, "token");
		return false;
	}
	ss_metric_inc(s->http, "sphere_auth_failures_total", label);
	ss_reply_error(r, 401, "unauthorized", "a valid API token is required (%s)", why);
	return false;
}

bool ss_api_enter(struct ss_service *s, struct ss_req *r, enum ss_role min, struct ss_user *u,
                  struct ss_tenant *t, enum ss_role *role)
{
	struct ss_token tok;

	if (!ss_api_auth(s, r, u, &tok))
		return false;
	return min == SS_ROLE_NONE || ss_api_tenant(s, r, u, min, t, role);
}

/* The {tenant} of the path, if the user holds at least min there. Replies 404
 * (no role: the tenant's existence is not disclosed) or 403, and returns
 * false otherwise. */
bool ss_api_tenant(struct ss_service *s, struct ss_req *r, const struct ss_user *u,
                   enum ss_role min, struct ss_tenant *t, enum ss_role *role)
{
	const char *id = ss_req_param(r, "tenant");
	int rc;

	*role = SS_ROLE_NONE;
	rc = id ? ss_store_role_get(s->st, id, u->id, role) : SPH_ERR_NOT_FOUND;
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0 && *role == SS_ROLE_NONE)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0)
		rc = ss_store_tenant_get(s->st, id, t);
	if (rc != 0) {
		ss_api_reply_store(r, rc, "tenant");
		return false;
	}
	if (*role < min) {
		ss_reply_error(r, 403, "forbidden", "%s role required", ss_role_name(min));
		return false;
	}
	return true;
}

/* A required string member of a JSON body. Replies 400 when it is missing,
 * not a string, or empty. */
const char *ss_api_body_str(struct ss_req *r, json_t *body, const char *key)
{
	const char *v = json_string_value(json_object_get(body, key));

	if (!v || !v[0]) {
		ss_reply_error(r, 400, "bad_request", "\"%s\": a non-empty string is required",
		               key);
		return NULL;
	}
	return v;
}

/* The JSON object body, or a 400 reply and NULL. */
json_t *ss_api_body(struct ss_req *r)
{
	char why[SS_REASON_MAX];
	json_t *j = ss_req_json(r, why, sizeof(why));

	if (!j)
		ss_reply_error(r, 400, "bad_request", "body: %s", why);
	return j;
}

/* ?limit= in 1..SS_LIST_MAX (default 100); false after a 400 reply. */
bool ss_api_limit(struct ss_req *r, size_t *limit)
{
	const char *v = ss_req_query(r, "limit");
	char *end;
	unsigned long n;

	*limit = SS_LIMIT_DEFAULT;
	if (!v)
		return true;
	n = strtoul(v, &end, 10);
	if (!v[0] || *end || v[0] == '-' || n < 1 || n > SS_LIST_MAX) {
		ss_reply_error(r, 400, "bad_request", "limit: 1..%d", SS_LIST_MAX);
		return false;
	}
	*limit = n;
	return true;
}

static json_t *ss_tenant_json(const struct ss_tenant *t, enum ss_role role)
{
	json_t *j = json_pack("{s:s, s:s, s:I}", "id", t->id, "name", t->name, "created",
	                      (json_int_t)t->created);
	if (j && role != SS_ROLE_NONE)
		json_object_set_new(j, "role", json_string(ss_role_name(role)));
	return j;
}

json_t *ss_device_json(const struct ss_device *d)
{
	return json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:b}", "id", d->id, "tenant_id", d->tenant_id,
	                 "claimed", (json_int_t)d->claimed, "released_to",
	                 d->released_to[0] ? d->released_to : NULL, "group_id",
	                 d->group_id[0] ? d->group_id : NULL, "registered", d->registered);
}

/* The caller's tenants with their roles, or NULL (after a reply). */
static json_t *ss_my_tenants(struct ss_service *s, struct ss_req *r, const struct ss_user *u)
{
	struct ss_tenant *ts = calloc(SS_LIST_MAX, sizeof(*ts));
	json_t *a = json_array();
	size_t n = 0;
	int rc = ts && a ? ss_store_tenant_list_for_user(s->st, u->id, ts, SS_LIST_MAX, &n)
	                 : SPH_ERR_NOMEM;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		enum ss_role role = SS_ROLE_NONE;
		rc = ss_store_role_get(s->st, ts[i].id, u->id, &role);
		if (rc == 0)
			json_array_append_new(a, ss_tenant_json(&ts[i], role));
	}
	free(ts);
	if (rc != 0) {
		json_decref(a);
		ss_api_reply_store(r, rc, "tenants");
		return NULL;
	}
	return a;
}

/* ---- handlers ------------------------------------------------------------------ */

static void ss_h_health(struct ss_req *r, void *arg)
{
	(void)arg;
	ss_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void ss_h_me(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	json_t *ts;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	ts = ss_my_tenants(s, r, &u);
	if (!ts)
		return;
	ss_reply_json(r, 200,
	              json_pack("{s:{s:s, s:s, s:b}, s:o}", "user", "id", u.id, "name", u.name,
	                        "operator", u.is_operator, "tenants", ts));
}

static void ss_h_tenants_create(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	json_t *body;
	const char *name;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	if (u.is_operator) {
		ss_reply_error(r, 403, "forbidden", "the platform operator does not own tenants");
		return;
	}
	body = ss_api_body(r);
	if (!body)
		return;
	name = ss_api_body_str(r, body, "name");
	if (name) {
		rc = ss_store_tenant_create(s->st, name, u.id, &t);
		if (rc == 0)
			rc = ss_store_role_set(s->st, t.id, u.id, SS_ROLE_ADMIN, u.id);
		if (rc == 0)
			rc = ss_tenant_ca_ensure(s, t.id, u.id);
		if (rc == 0)
			ss_reply_json(r, 201, ss_tenant_json(&t, SS_ROLE_ADMIN));
		else
			ss_api_reply_store(r, rc, "tenant");
	}
	json_decref(body);
}

static void ss_h_tenants_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	json_t *ts;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	ts = ss_my_tenants(s, r, &u);
	if (ts)
		ss_reply_json(r, 200, json_pack("{s:o}", "tenants", ts));
}

static void ss_h_tenant_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;

	if (ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		ss_reply_json(r, 200, ss_tenant_json(&t, role));
}

static void ss_h_roles_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_role_entry *es = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	json_t *a;
	size_t n = 0;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	es = calloc(SS_LIST_MAX, sizeof(*es));
	a = json_array();
	rc = es && a ? ss_store_role_list(s->st, t.id, es, SS_LIST_MAX, &n) : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a,
		                      json_pack("{s:s, s:s, s:s}", "user_id", es[i].user_id, "user",
		                                es[i].user_name, "role", ss_role_name(es[i].role)));
	free(es);
	if (rc == 0)
		ss_reply_json(r, 200, json_pack("{s:o}", "roles", a));
	else {
		json_decref(a);
		ss_api_reply_store(r, rc, "roles");
	}
}

static void ss_h_users_add(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u, target;
	struct ss_token newtok;
	struct ss_tenant t;
	enum ss_role role, want;
	char token[SS_TOKEN_LEN + 1] = "";
	uint8_t hash[32];
	json_t *body;
	const char *name, *rname;
	bool created = false;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	name = ss_api_body_str(r, body, "name");
	rname = name ? ss_api_body_str(r, body, "role") : NULL;
	if (!rname)
		goto out;
	want = ss_role_from_name(rname);
	if (want == SS_ROLE_NONE) {
		ss_reply_error(r, 400, "bad_request",
		               "\"role\": Reader, Contributor or Administrator");
		goto out;
	}
	rc = ss_store_user_by_name(s->st, name, &target);
	if (rc == SPH_ERR_NOT_FOUND) {
		rc = ss_store_user_create(s->st, name, false, &target);
		if (rc == 0)
			rc = ss_token_new(token, hash);
		if (rc == 0)
			rc = ss_store_token_add(s->st, target.id, hash, &newtok);
		OPENSSL_cleanse(hash, sizeof(hash));
		created = rc == 0;
	}
	if (rc == 0 && target.is_operator)
		rc = SPH_ERR_PERMISSION;
	if (rc == 0)
		rc = ss_store_role_set(s->st, t.id, target.id, want, u.id);
	if (rc != 0) {
		ss_api_reply_store(r, rc, "user");
		goto out;
	}
	ss_reply_json(r, created ? 201 : 200,
	              json_pack("{s:s, s:s, s:s, s:s?}", "user_id", target.id, "user", target.name,
	                        "role", ss_role_name(want), "token", created ? token : NULL));
out:
	OPENSSL_cleanse(token, sizeof(token));
	json_decref(body);
}

static void ss_h_role_delete(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role, cur = SS_ROLE_NONE;
	const char *uid = ss_req_param(r, "user");
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	rc = ss_store_role_get(s->st, t.id, uid, &cur);
	if (rc == 0 && cur == SS_ROLE_NONE)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0)
		rc = ss_store_role_set(s->st, t.id, uid, SS_ROLE_NONE, u.id);
	if (rc == 0)
		ss_reply_raw(r, 204, "application/json", NULL, 0);
	else if (rc == SPH_ERR_STATE)
		ss_reply_error(r, 409, "conflict", "a tenant keeps at least one Administrator");
	else
		ss_api_reply_store(r, rc, "role");
}

static void ss_h_tokens_create(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_token newtok;
	char token[SS_TOKEN_LEN + 1];
	uint8_t hash[32];
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	rc = ss_token_new(token, hash);
	if (rc == 0)
		rc = ss_store_token_add(s->st, u.id, hash, &newtok);
	if (rc == 0)
		ss_reply_json(r, 201, json_pack("{s:s, s:s}", "id", newtok.id, "token", token));
	else
		ss_api_reply_store(r, rc, "token");
	OPENSSL_cleanse(token, sizeof(token));
	OPENSSL_cleanse(hash, sizeof(hash));
}

static void ss_h_token_delete(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	const char *id = ss_req_param(r, "id");
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	rc = ss_store_token_revoke(s->st, u.id, id, "", u.id);
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0)
		ss_reply_raw(r, 204, "application/json", NULL, 0);
	else
		ss_api_reply_store(r, rc, "token");
}

static void ss_h_devices_claim(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	json_t *body;
	const char *id;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	id = ss_api_body_str(r, body, "device_id");
	if (id) {
		rc = ss_store_device_claim(s->st, t.id, id, u.id);
		if (rc == 0)
			rc = ss_store_device_get(s->st, t.id, id, &d);
		if (rc == 0) {
			ss_metric_inc(s->http, "sphere_devices_claimed_total", "");
			ss_reply_json(r, 201, ss_device_json(&d));
		} else if (rc == SPH_ERR_DUPLICATE) {
			ss_reply_error(r, 409, "conflict", "the device is claimed already");
		} else if (rc == SPH_ERR_PERMISSION) {
			ss_reply_error(r, 409, "conflict",
			               "the device was released to another tenant");
		} else {
			ss_api_reply_store(r, rc, "device");
		}
	}
	json_decref(body);
}

static void ss_h_device_release(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	json_t *body;
	const char *to;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	to = ss_api_body_str(r, body, "to_tenant");
	if (to) {
		rc = strcmp(to, t.id) == 0
		             ? SPH_ERR_INVALID_ARG
		             : ss_store_device_release(s->st, t.id, ss_req_param(r, "device"), to,
		                                       u.id);
		if (rc == 0)
			ss_reply_json(r, 200,
			              json_pack("{s:s, s:s}", "id", ss_req_param(r, "device"),
			                        "released_to", to));
		else
			ss_api_reply_store(r, rc, "device or tenant");
	}
	json_decref(body);
}

static void ss_h_devices_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_device *ds = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	const char *after = ss_req_query(r, "after");
	size_t limit, n = 0;
	json_t *a;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	ds = calloc(limit, sizeof(*ds));
	a = json_array();
	rc = ds && a ? ss_store_device_list(s->st, t.id, after ? after : "", ds, limit, &n)
	             : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a, ss_device_json(&ds[i]));
	if (rc == 0)
		ss_reply_json(r, 200,
		              json_pack("{s:o, s:s?}", "devices", a, "next",
		                        n == limit && n > 0 ? ds[n - 1].id : NULL));
	else {
		json_decref(a);
		ss_api_reply_store(r, rc, "devices");
	}
	free(ds);
}

static void ss_h_device_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	rc = ss_store_device_get(s->st, t.id, ss_req_param(r, "device"), &d);
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0) {
		struct ss_checkin_state *k = calloc(1, sizeof(*k));
		json_t *j = ss_device_json(&d);
		int krc = k ? ss_store_device_checkin_get(s->st, d.id, k) : SPH_ERR_NOMEM;

		/* A check-in made while another tenant held the device is that
		 * tenant's history, not this one's. */
		if (krc == 0 && strcmp(k->tenant_id, t.id) != 0)
			krc = SPH_ERR_NOT_FOUND;
		/* The last check-in (§4.13): null until the first one. */
		if (krc != 0 && krc != SPH_ERR_NOT_FOUND) {
			json_decref(j);
			free(k);
			ss_api_reply_store(r, krc, "device");
			return;
		}
		if (j && krc == 0) {
			json_object_set_new(j, "last_checkin", json_integer(k->last_checkin));
			json_object_set_new(j, "up_to_date", json_boolean(k->up_to_date));
			json_object_set_new(j, "cert_expires",
			                    k->cert_expires ? json_integer(k->cert_expires)
			                                    : json_null());
		} else if (j) {
			json_object_set_new(j, "last_checkin", json_null());
			json_object_set_new(j, "up_to_date", json_null());
			json_object_set_new(j, "cert_expires", json_null());
		}
		/* The mode and why updates are or are not applied (§4.14). */
		krc = j ? ss_device_status_json(s, &d, krc == 0 ? k : NULL, j) : 0;
		free(k);
		if (krc) {
			json_decref(j);
			ss_api_reply_store(r, krc, "device");
			return;
		}
		ss_reply_json(r, 200, j);
	} else {
		ss_api_reply_store(r, rc, "device");
	}
}

static void ss_h_audit_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_audit *es = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	const char *after = ss_req_query(r, "after");
	long long after_id = 0;
	size_t limit, n = 0;
	json_t *a;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	if (after) {
		char *end;
		after_id = strtoll(after, &end, 10);
		if (!after[0] || *end || after_id < 0) {
			ss_reply_error(r, 400, "bad_request", "after: an event id");
			return;
		}
	}
	es = calloc(limit, sizeof(*es));
	a = json_array();
	rc = es && a ? ss_store_audit_list(s->st, t.id, (int64_t)after_id, es, limit, &n)
	             : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "id",
		                                   (json_int_t)es[i].id, "at", (json_int_t)es[i].at,
		                                   "actor", es[i].actor, "action", es[i].action,
		                                   "target", es[i].target, "detail", es[i].detail));
	if (rc == 0)
		ss_reply_json(r, 200,
		              json_pack("{s:o, s:O}", "events", a, "next",
		                        n == limit && n > 0 ? json_integer((json_int_t)es[n - 1].id)
		                                            : json_null()));
	else {
		json_decref(a);
		ss_api_reply_store(r, rc, "audit");
	}
	free(es);
}

int ss_api_routes(struct ss_service *s)
{
	static const struct {
		const char *method, *pattern;
		ss_handler fn;
	} routes[] = {
	        {"GET", "/v1/health", ss_h_health},
	        {"GET", "/v1/me", ss_h_me},
	        {"POST", "/v1/tenants", ss_h_tenants_create},
	        {"GET", "/v1/tenants", ss_h_tenants_list},
	        {"GET", "/v1/tenants/{tenant}", ss_h_tenant_get},
	        {"GET", "/v1/tenants/{tenant}/roles", ss_h_roles_list},
	        {"DELETE", "/v1/tenants/{tenant}/roles/{user}", ss_h_role_delete},
	        {"POST", "/v1/tenants/{tenant}/users", ss_h_users_add},
	        {"POST", "/v1/tokens", ss_h_tokens_create},
	        {"DELETE", "/v1/tokens/{id}", ss_h_token_delete},
	        {"POST", "/v1/tenants/{tenant}/devices", ss_h_devices_claim},
	        {"GET", "/v1/tenants/{tenant}/devices", ss_h_devices_list},
	        {"GET", "/v1/tenants/{tenant}/devices/{device}", ss_h_device_get},
	        {"POST", "/v1/tenants/{tenant}/devices/{device}/release", ss_h_device_release},
	        {"GET", "/v1/tenants/{tenant}/audit", ss_h_audit_list},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn,
		                       s);
		if (rc != 0)
			return rc;
	}
	{
		int rc = ss_api_groups_routes(s);
		if (rc == 0)
			rc = ss_api_ca_routes(s);
		if (rc == 0)
			rc = ss_api_registration_routes(s);
		if (rc == 0)
			rc = ss_api_checkin_routes(s);
		if (rc == 0)
			rc = ss_api_capabilities_routes(s);
		return rc ? rc : ss_api_images_routes(s);
	}
}
