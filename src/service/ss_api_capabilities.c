/*
 * ss_api_capabilities: device capability files and device modes (docs/api.md
 * §4.14).
 *
 * The service signs per-device capability files (docs/formats.md §8) with
 * the tenant's capability signer, a leaf issued by the tenant image root
 * devices install as their tenant root (made on first need next to the
 * production signer, key wrapped under the KEK). A Contributor switches a
 * device between development mode (an appDevelopment capability: the device
 * sideloads applications, the service deploys only OS updates to it) and
 * cloud-test mode (applications from deployments again). Device show says in
 * one sentence which mode the device is in and why updates are or are not
 * applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "image/image.h"
#include "ss_internal.h"

#define SS_CAP_DAYS_DEFAULT 30
#define SS_CAP_DAYS_MAX     365
#define SS_CAP_CTYPE        "application/cose"

/* The tenant's name as a capability file's tenant (1..64 printable ASCII). */
static void ss_cap_tenant(const struct ss_tenant *t, char out[IMG_CAP_TENANT_MAX + 1])
{
	size_t i = 0;

	for (; t->name[i] && i < IMG_CAP_TENANT_MAX; i++)
		out[i] = t->name[i] >= 0x20 && t->name[i] <= 0x7e ? t->name[i] : '?';
	out[i] = '\0';
	if (i == 0)
		snprintf(out, IMG_CAP_TENANT_MAX + 1, "%.36s", t->id);
}

/* Signs a capability file for device d of tenant t (caps: a mask of
 * IMG_CAP_*) valid for days, and checks it against the tenant image root
 * before it leaves. Returns 0 and *out (caller frees), *out_len. */
static int ss_cap_issue(struct ss_service *s, const struct ss_tenant *t, const struct ss_device *d,
                        uint32_t caps, unsigned days, uint8_t **out, size_t *out_len)
{
	struct img_capability c, chk;
	struct img_trust trust;
	STACK_OF(X509) *extra = NULL;
	X509 *root = NULL, *leaf = NULL;
	EVP_PKEY *key = NULL;
	char why[160] = "";
	uint64_t now = (uint64_t)time(NULL);
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&c, 0, sizeof(c));
	rc = sph_hex_decode(d->id, c.device_id, sizeof(c.device_id));
	if (rc)
		goto out;
	c.caps = caps;
	c.issued_at = now;
	c.expires = now + (uint64_t)days * 86400u;
	ss_cap_tenant(t, c.tenant);
	rc = ss_tenant_cap_signer(s, t->id, &root, &leaf, &key);
	if (rc)
		goto out;
	rc = SPH_ERR_NOMEM;
	extra = sk_X509_new_null();
	if (extra && sk_X509_push(extra, root) > 0)
		rc = img_cap_pack(&c, key, leaf, extra, out, out_len);
	if (rc)
		goto out;
	memset(&trust, 0, sizeof(trust));
	trust.root_cert = root;
	trust.time_policy = IMG_TIME_NOW;
	rc = img_cap_verify(*out, *out_len, &trust, c.device_id, &chk, why, sizeof(why));
	if (rc)
		sph_log(SPH_LOG_ERROR, "ss", "capability_unverified",
		        "tenant=%s status=%d why=\"%s\"", t->id, rc, why);
out:
	if (rc) {
		free(*out);
		*out = NULL;
		*out_len = 0;
	}
	sk_X509_free(extra); /* root is freed below, not by the stack */
	X509_free(root);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return rc;
}

/* The path's device, held by t (404 otherwise, after a reply). */
static bool ss_cap_device(struct ss_service *s, struct ss_req *r, const struct ss_tenant *t,
                          struct ss_device *d)
{
	int rc = ss_store_device_get(s->st, t->id, ss_req_param(r, "device"), d);

	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc)
		ss_api_reply_store(r, rc, "device");
	return rc == 0;
}

/* {"capabilities": [names], "days"?} → *caps, *days (400 otherwise). */
static bool ss_cap_body(struct ss_req *r, json_t *body, uint32_t *caps, unsigned *days)
{
	json_t *a = json_object_get(body, "capabilities"), *dj = json_object_get(body, "days");
	size_t i;
	json_t *v;

	*caps = 0;
	*days = SS_CAP_DAYS_DEFAULT;
	if (!json_is_array(a) || json_array_size(a) == 0) {
		ss_reply_error(r, 400, "bad_request",
		               "capabilities: a non-empty array of \"appDevelopment\", "
		               "\"fieldServicing\"");
		return false;
	}
	json_array_foreach(a, i, v)
	{
		const char *n = json_string_value(v);
		uint32_t bit = 0;
		if (n && strcmp(n, "appDevelopment") == 0)
			bit = 1u << IMG_CAP_APP_DEVELOPMENT;
		else if (n && strcmp(n, "fieldServicing") == 0)
			bit = 1u << IMG_CAP_FIELD_SERVICING;
		if (!bit || (*caps & bit)) {
			ss_reply_error(
			        r, 400, "bad_request",
			        "capabilities: unknown or repeated capability (appDevelopment, "
			        "fieldServicing)");
			return false;
		}
		*caps |= bit;
	}
	if (dj) {
		json_int_t n = json_is_integer(dj) ? json_integer_value(dj) : 0;
		if (n < 1 || n > SS_CAP_DAYS_MAX) {
			ss_reply_error(r, 400, "bad_request", "days: an integer 1..%d",
			               SS_CAP_DAYS_MAX);
			return false;
		}
		*days = (unsigned)n;
	}
	return true;
}

/* Issues, audits "capability.issue" and replies 201 with the file. */
static void ss_cap_reply(struct ss_service *s, struct ss_req *r, const struct ss_user *u,
                         const struct ss_tenant *t, const struct ss_device *d, uint32_t caps,
                         unsigned days, const char *mode)
{
	uint8_t *file = NULL;
	size_t len = 0;
	char detail[SS_DETAIL_MAX + 1];
	int rc = ss_cap_issue(s, t, d, caps, days, &file, &len);

	if (rc) {
		ss_api_reply_store(r, rc, "capability");
		goto out;
	}
	snprintf(detail, sizeof(detail), "%s%s%s days=%u",
	         caps & (1u << IMG_CAP_APP_DEVELOPMENT) ? "appDevelopment" : "",
	         caps == IMG_CAP_MASK_ALL ? "," : "",
	         caps & (1u << IMG_CAP_FIELD_SERVICING) ? "fieldServicing" : "", days);
	rc = ss_store_audit_add(s->st, t->id, u->id, "capability.issue", d->id, detail);
	if (rc) {
		ss_api_reply_store(r, rc, "audit");
		goto out;
	}
	if (mode)
		(void)ss_reply_header(r, "Sphere-Device-Mode", mode);
	ss_reply_raw(r, 201, SS_CAP_CTYPE, file, len);
out:
	free(file);
}

static void ss_h_capabilities(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	json_t *body = NULL;
	uint32_t caps;
	unsigned days;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role) || !ss_cap_device(s, r, &t, &d))
		return;
	body = ss_api_body(r);
	if (body && ss_cap_body(r, body, &caps, &days))
		ss_cap_reply(s, r, &u, &t, &d, caps, days, NULL);
	json_decref(body);
}

static void ss_h_enable_development(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	unsigned days = SS_CAP_DAYS_DEFAULT;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role) || !ss_cap_device(s, r, &t, &d))
		return;
	rc = ss_store_device_mode_set(s->st, t.id, d.id, SS_MODE_DEVELOPMENT, u.id);
	if (rc) {
		ss_api_reply_store(r, rc, "device");
		return;
	}
	ss_cap_reply(s, r, &u, &t, &d, 1u << IMG_CAP_APP_DEVELOPMENT, days, "development");
}

static void ss_h_enable_cloud_test(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_device d;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role) || !ss_cap_device(s, r, &t, &d))
		return;
	rc = ss_store_device_mode_set(s->st, t.id, d.id, SS_MODE_CLOUD_TEST, u.id);
	if (rc) {
		ss_api_reply_store(r, rc, "device");
		return;
	}
	ss_reply_json(r, 200,
	              json_pack("{s:s, s:s, s:s}", "device_id", d.id, "mode", "cloud-test",
	                        "message",
	                        "applications come from the device group's deployments again; "
	                        "remove the device's appDevelopment capability (delete "
	                        "its capability file) so that it accepts production-signed "
	                        "applications only"));
}

/* ---- internal API ----------------------------------------------------------------------- */

int ss_device_target_mode(struct ss_service *s, const struct ss_device *d, struct ss_target *t,
                          bool *sideloading)
{
	enum ss_device_mode m = SS_MODE_PRODUCTION;
	size_t k = 0;
	int rc = ss_store_device_mode_get(s->st, d->tenant_id, d->id, &m);

	*sideloading = false;
	if (rc || m != SS_MODE_DEVELOPMENT)
		return rc;
	*sideloading = true;
	for (size_t i = 0; i < t->n; i++)
		if (t->images[i].is_os)
			t->images[k++] = t->images[i];
	for (size_t i = k; i < t->n; i++)
		memset(&t->images[i], 0, sizeof(t->images[i]));
	t->n = k;
	t->deployment_id[0] = '\0';
	return 0;
}

int ss_device_status_json(struct ss_service *s, const struct ss_device *d,
                          const struct ss_checkin_state *k, json_t *j)
{
	enum ss_device_mode m = SS_MODE_PRODUCTION;
	struct ss_group g;
	const char *why;
	int rc = ss_store_device_mode_get(s->st, d->tenant_id, d->id, &m);

	if (rc)
		return rc;
	if (!d->group_id[0]) {
		why = "not in a device group: no updates";
	} else {
		rc = ss_store_group_get(s->st, d->tenant_id, d->group_id, &g);
		if (rc)
			return rc;
		if (g.update_policy == SS_POLICY_NO_UPDATES)
			why = "the device group's update policy is NoUpdates: no updates are "
			      "applied";
		else if (m == SS_MODE_DEVELOPMENT)
			why = "development mode: applications are sideloaded, only OS updates are "
			      "applied";
		else if (g.update_policy == SS_POLICY_NO_3RD_PARTY)
			why = "the device group's update policy is No3rdPartyAppUpdates: OS "
			      "updates "
			      "only";
		else if (!k)
			why = "no check-in yet: updates are applied when the device checks in";
		else if (k->up_to_date)
			why = "up to date: at its last check-in the device ran its device group's "
			      "target";
		else
			why = "update required: at its last check-in the device did not yet run "
			      "its "
			      "device group's target";
	}
	json_object_set_new(j, "mode", json_string(ss_device_mode_name(m)));
	json_object_set_new(j, "update_status", json_string(why));
	return 0;
}

int ss_api_capabilities_routes(struct ss_service *s)
{
	static const struct {
		const char *pattern;
		ss_handler fn;
	} routes[] = {
	        {"/v1/tenants/{tenant}/devices/{device}/capabilities", ss_h_capabilities},
	        {"/v1/tenants/{tenant}/devices/{device}/enable-development",
	         ss_h_enable_development},
	        {"/v1/tenants/{tenant}/devices/{device}/enable-cloud-test", ss_h_enable_cloud_test},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, "POST", routes[i].pattern, routes[i].fn, s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
