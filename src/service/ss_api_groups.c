/*
 * ss_api_groups: products and device groups (docs/api-groups.md): create,
 * read and list products; create, update, read and list their device groups;
 * move a device into a group. Bodies are checked strictly: an unknown member,
 * a member of the wrong type or an unknown feed or policy is 400 naming it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "service.h"
#include "ss_http.h"
#include "ss_internal.h"

/* ---- helpers ------------------------------------------------------------------ */

static json_t *ss_product_json(const struct ss_product *p)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", p->id, "tenant_id", p->tenant_id,
	                 "name", p->name, "description", p->description, "created",
	                 (json_int_t)p->created);
}

static json_t *ss_group_json(const struct ss_group *g)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", g->id, "tenant_id",
	                 g->tenant_id, "product_id", g->product_id, "name", g->name, "description",
	                 g->description, "os_feed", ss_os_feed_name(g->os_feed), "update_policy",
	                 ss_update_policy_name(g->update_policy), "created",
	                 (json_int_t)g->created);
}

/* Every member of body is one of allowed (NULL-terminated); else a 400
 * naming the first unknown one. */
static bool ss_groups_keys(struct ss_req *r, json_t *body, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(body, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (!ok) {
			ss_reply_error(r, 400, "bad_request", "\"%.64s\": unknown field", key);
			return false;
		}
	}
	return true;
}

/* An optional text member: absent (*out NULL), or a string of min..max
 * printable ASCII bytes; else a 400 naming it. */
static bool ss_groups_text(struct ss_req *r, json_t *body, const char *key, size_t min, size_t max,
                           const char **out)
{
	json_t *v = json_object_get(body, key);
	const char *s;
	size_t n;

	*out = NULL;
	if (!v)
		return true;
	s = json_string_value(v);
	n = s ? json_string_length(v) : 0;
	if (!s || n < min || n > max || strlen(s) != n ||
	    (n && !sph_text_ok((const uint8_t *)s, n, max))) {
		ss_reply_error(r, 400, "bad_request", "\"%s\": %zu..%zu printable ASCII characters",
		               key, min, max);
		return false;
	}
	*out = s;
	return true;
}

/* An optional "os_feed" (absent: SS_FEED_NONE); else 400. */
static bool ss_groups_feed(struct ss_req *r, json_t *body, enum ss_os_feed *out)
{
	json_t *v = json_object_get(body, "os_feed");

	*out = SS_FEED_NONE;
	if (!v)
		return true;
	*out = ss_os_feed_from_name(json_string_value(v));
	if (*out == SS_FEED_NONE) {
		ss_reply_error(r, 400, "bad_request", "\"os_feed\": Retail or RetailEval");
		return false;
	}
	return true;
}

/* An optional "update_policy" (absent: SS_POLICY_NONE); else 400. */
static bool ss_groups_policy(struct ss_req *r, json_t *body, enum ss_update_policy *out)
{
	json_t *v = json_object_get(body, "update_policy");

	*out = SS_POLICY_NONE;
	if (!v)
		return true;
	*out = ss_update_policy_from_name(json_string_value(v));
	if (*out == SS_POLICY_NONE) {
		ss_reply_error(r, 400, "bad_request",
		               "\"update_policy\": UpdateAll, No3rdPartyAppUpdates or NoUpdates");
		return false;
	}
	return true;
}

/* A store status for a path id: a malformed id is "not found". */
static int ss_groups_path_rc(int rc)
{
	return rc == SPH_ERR_INVALID_ARG ? SPH_ERR_NOT_FOUND : rc;
}

/* ?after= ("" when absent). A malformed one gives 400 from the store. */
static const char *ss_groups_after(struct ss_req *r)
{
	const char *after = ss_req_query(r, "after");

	return after ? after : "";
}

/* The product's groups (or the tenant's, product_id "") as a JSON array, at
 * most limit of them; next: the last id when the page is full, else "".
 * NULL and *rc on failure. */
static json_t *ss_groups_array(struct ss_service *s, const char *tenant_id, const char *product_id,
                               const char *after, size_t limit, char next[SS_UUID_LEN + 1], int *rc)
{
	struct ss_group *gs = calloc(limit, sizeof(*gs));
	json_t *a = json_array();
	size_t n = 0;

	next[0] = '\0';
	*rc = gs && a ? ss_store_group_list(s->st, tenant_id, product_id, after, gs, limit, &n)
	              : SPH_ERR_NOMEM;
	for (size_t i = 0; *rc == 0 && i < n; i++)
		if (json_array_append_new(a, ss_group_json(&gs[i])) != 0)
			*rc = SPH_ERR_NOMEM;
	if (*rc == 0 && n == limit && n > 0)
		memcpy(next, gs[n - 1].id, SS_UUID_LEN + 1);
	free(gs);
	if (*rc != 0) {
		json_decref(a);
		a = NULL;
	}
	return a;
}

/* ---- handlers ------------------------------------------------------------------ */

static void ss_h_products_create(struct ss_req *r, void *arg)
{
	static const char *const keys[] = {"name", "description", "default_groups", NULL};
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_product p;
	enum ss_role role;
	json_t *body, *dg, *groups = NULL;
	const char *name, *desc;
	char next[SS_UUID_LEN + 1];
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	if (!ss_groups_keys(r, body, keys) ||
	    !ss_groups_text(r, body, "name", 1, SS_NAME_MAX, &name) ||
	    !ss_groups_text(r, body, "description", 0, SS_DESC_MAX, &desc))
		goto out;
	if (!name) {
		ss_reply_error(r, 400, "bad_request", "\"name\": a non-empty string is required");
		goto out;
	}
	dg = json_object_get(body, "default_groups");
	if (dg && !json_is_boolean(dg)) {
		ss_reply_error(r, 400, "bad_request", "\"default_groups\": true or false");
		goto out;
	}
	rc = ss_store_product_create(s->st, t.id, name, desc ? desc : "", !dg || json_is_true(dg),
	                             u.id, &p);
	if (rc == 0)
		groups = ss_groups_array(s, t.id, p.id, "", SS_LIST_MAX, next, &rc);
	if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict", "the tenant has a product named so already");
	else if (rc != 0)
		ss_api_reply_store(r, rc, "product");
	else {
		json_t *j = ss_product_json(&p);
		if (j)
			json_object_set_new(j, "device_groups", groups);
		else
			json_decref(groups);
		ss_reply_json(r, 201, j);
	}
out:
	json_decref(body);
}

static void ss_h_products_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_product *ps = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	size_t limit, n = 0;
	json_t *a;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	ps = calloc(limit, sizeof(*ps));
	a = json_array();
	rc = ps && a ? ss_store_product_list(s->st, t.id, ss_groups_after(r), ps, limit, &n)
	             : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a, ss_product_json(&ps[i]));
	if (rc == 0)
		ss_reply_json(r, 200,
		              json_pack("{s:o, s:s?}", "products", a, "next",
		                        n == limit && n > 0 ? ps[n - 1].id : NULL));
	else {
		json_decref(a);
		if (rc == SPH_ERR_INVALID_ARG)
			ss_reply_error(r, 400, "bad_request", "after: a product id");
		else
			ss_api_reply_store(r, rc, "products");
	}
	free(ps);
}

static void ss_h_product_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_product p;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	rc = ss_groups_path_rc(ss_store_product_get(s->st, t.id, ss_req_param(r, "product"), &p));
	if (rc == 0)
		ss_reply_json(r, 200, ss_product_json(&p));
	else
		ss_api_reply_store(r, rc, "product");
}

/* GET .../products/{product}/device-groups and GET .../device-groups. */
static void ss_h_groups_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_product p;
	enum ss_role role;
	const char *pid = ss_req_param(r, "product");
	char next[SS_UUID_LEN + 1];
	size_t limit;
	json_t *a = NULL;
	int rc = 0;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	if (pid)
		rc = ss_groups_path_rc(ss_store_product_get(s->st, t.id, pid, &p));
	if (rc != 0) {
		ss_api_reply_store(r, rc, "product");
		return;
	}
	a = ss_groups_array(s, t.id, pid ? pid : "", ss_groups_after(r), limit, next, &rc);
	if (rc == 0)
		ss_reply_json(r, 200,
		              json_pack("{s:o, s:s?}", "device_groups", a, "next",
		                        next[0] ? next : NULL));
	else if (rc == SPH_ERR_INVALID_ARG)
		ss_reply_error(r, 400, "bad_request", "after: a device group id");
	else
		ss_api_reply_store(r, rc, "device groups");
}

static void ss_h_groups_create(struct ss_req *r, void *arg)
{
	static const char *const keys[] = {"name", "description", "os_feed", "update_policy", NULL};
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_group g;
	enum ss_role role;
	enum ss_os_feed feed;
	enum ss_update_policy policy;
	json_t *body;
	const char *name, *desc;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	if (!ss_groups_keys(r, body, keys) ||
	    !ss_groups_text(r, body, "name", 1, SS_NAME_MAX, &name) ||
	    !ss_groups_text(r, body, "description", 0, SS_DESC_MAX, &desc) ||
	    !ss_groups_feed(r, body, &feed) || !ss_groups_policy(r, body, &policy))
		goto out;
	if (!name) {
		ss_reply_error(r, 400, "bad_request", "\"name\": a non-empty string is required");
		goto out;
	}
	rc = ss_store_group_create(s->st, t.id, ss_req_param(r, "product"), name, desc ? desc : "",
	                           feed == SS_FEED_NONE ? SS_FEED_RETAIL : feed,
	                           policy == SS_POLICY_NONE ? SS_POLICY_UPDATE_ALL : policy, u.id,
	                           &g);
	if (rc == 0)
		ss_reply_json(r, 201, ss_group_json(&g));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict",
		               "the product has a device group named so already");
	else
		ss_api_reply_store(r, ss_groups_path_rc(rc), "product");
out:
	json_decref(body);
}

static void ss_h_group_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_group g;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	rc = ss_groups_path_rc(ss_store_group_get(s->st, t.id, ss_req_param(r, "group"), &g));
	if (rc == 0)
		ss_reply_json(r, 200, ss_group_json(&g));
	else
		ss_api_reply_store(r, rc, "device group");
}

static void ss_h_group_update(struct ss_req *r, void *arg)
{
	static const char *const keys[] = {"name", "description", "os_feed", "update_policy", NULL};
	struct ss_service *s = arg;
	struct ss_group_change chg = {0};
	struct ss_user u;
	struct ss_tenant t;
	struct ss_group g;
	enum ss_role role;
	json_t *body;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	if (!ss_groups_keys(r, body, keys) ||
	    !ss_groups_text(r, body, "name", 1, SS_NAME_MAX, &chg.name) ||
	    !ss_groups_text(r, body, "description", 0, SS_DESC_MAX, &chg.description) ||
	    !ss_groups_feed(r, body, &chg.os_feed) ||
	    !ss_groups_policy(r, body, &chg.update_policy))
		goto out;
	if (json_object_size(body) == 0) {
		ss_reply_error(r, 400, "bad_request",
		               "nothing to change: name, description, os_feed or update_policy");
		goto out;
	}
	rc = ss_store_group_update(s->st, t.id, ss_req_param(r, "group"), &chg, u.id, &g);
	if (rc == 0)
		ss_reply_json(r, 200, ss_group_json(&g));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict",
		               "the product has a device group named so already");
	else
		ss_api_reply_store(r, ss_groups_path_rc(rc), "device group");
out:
	json_decref(body);
}

static void ss_h_device_group_set(struct ss_req *r, void *arg)
{
	static const char *const keys[] = {"group_id", NULL};
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	const char *dev = ss_req_param(r, "device"), *gid;
	json_t *body, *v;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	if (!ss_groups_keys(r, body, keys))
		goto out;
	v = json_object_get(body, "group_id");
	gid = json_is_null(v) ? "" : json_string_value(v);
	if (!gid || (json_is_string(v) && !gid[0])) {
		ss_reply_error(r, 400, "bad_request",
		               "\"group_id\": a device group id, or null for none");
		goto out;
	}
	/* The device first: a malformed or foreign device id is 404. */
	rc = ss_groups_path_rc(ss_store_device_get(s->st, t.id, dev, &d));
	if (rc != 0) {
		ss_api_reply_store(r, rc, "device");
		goto out;
	}
	rc = ss_store_device_set_group(s->st, t.id, dev, gid, u.id);
	if (rc == 0)
		rc = ss_store_device_get(s->st, t.id, dev, &d);
	if (rc == 0)
		ss_reply_json(r, 200, ss_device_json(&d));
	else if (rc == SPH_ERR_INVALID_ARG)
		ss_reply_error(r, 400, "bad_request", "\"group_id\": not a device group id");
	else
		ss_api_reply_store(r, rc, "device or device group");
out:
	json_decref(body);
}

int ss_api_groups_routes(struct ss_service *s)
{
	static const struct {
		const char *method, *pattern;
		ss_handler fn;
	} routes[] = {
	        {"POST", "/v1/tenants/{tenant}/products", ss_h_products_create},
	        {"GET", "/v1/tenants/{tenant}/products", ss_h_products_list},
	        {"GET", "/v1/tenants/{tenant}/products/{product}", ss_h_product_get},
	        {"GET", "/v1/tenants/{tenant}/products/{product}/device-groups", ss_h_groups_list},
	        {"POST", "/v1/tenants/{tenant}/products/{product}/device-groups",
	         ss_h_groups_create},
	        {"GET", "/v1/tenants/{tenant}/device-groups", ss_h_groups_list},
	        {"GET", "/v1/tenants/{tenant}/device-groups/{group}", ss_h_group_get},
	        {"PATCH", "/v1/tenants/{tenant}/device-groups/{group}", ss_h_group_update},
	        {"PUT", "/v1/tenants/{tenant}/devices/{device}/device-group",
	         ss_h_device_group_set},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn,
		                       s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
