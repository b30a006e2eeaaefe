/*
 * Products and device groups end to end (docs/api-groups.md): a real
 * sphere-ss over real TLS, driven with libcurl. Attacked: a Reader creating,
 * another tenant reading or moving into our groups, a device moved into
 * another tenant's group, unknown feeds and policies and fields, duplicate
 * names; checked: the five default groups, default_groups=false, and the
 * audited device move.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "service/service.h"
#include "testutil.h"

static struct {
	char *tmp;
	struct ss_config cfg;
	struct ss_init_result init;
	struct ss_service *svc;
	uint16_t port;
	char ca[700];
} fx;

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	char *q = realloc(b->p, b->n + sz * n + 1);
	assert_non_null(q);
	memcpy(q + b->n, d, sz * n);
	b->n += sz * n;
	q[b->n] = '\0';
	b->p = q;
	return sz * n;
}

/* One request; returns the status, *out the JSON reply (may be NULL). */
static long req_raw(uint16_t port, const char *method, const char *path, const char *token,
                    const char *body, size_t body_len, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = {NULL, 0};
	char url[512], auth[128];
	long status = 0;
	CURLcode cc;

	assert_non_null(c);
	snprintf(url, sizeof(url), "https://localhost:%u%s", (unsigned)port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, fx.ca);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out)
		*out = b.p && b.n ? json_loads(b.p, 0, NULL) : NULL;
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static long req(const char *method, const char *path, const char *token, const char *body,
                json_t **out)
{
	return req_raw(fx.port, method, path, token, body, body ? strlen(body) : 0, out);
}

/* The request's status, with the reply's error word checked when want_err. */
static void expect(long status, const char *want_err, const char *method, const char *path,
                   const char *token, const char *body)
{
	json_t *j = NULL;
	long got = req(method, path, token, body, &j);

	if (got != status)
		fail_msg("%s %s: status %ld, want %ld (%s)", method, path, got, status,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	if (want_err)
		assert_string_equal(json_string_value(json_object_get(j, "error")), want_err);
	json_decref(j);
}

static const char *jstr(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	assert_non_null(v);
	return v;
}

/* A device id: 128 lowercase hex digits, from a seed. */
static void device_id(char out[129], unsigned seed)
{
	for (int i = 0; i < 128; i++)
		out[i] = "0123456789abcdef"[(seed * 7u + (unsigned)i * 13u) % 16u];
	out[128] = '\0';
}

static int setup(void **state)
{
	char dir[600];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fx.tmp = tu_mkdtemp();
	snprintf(dir, sizeof(dir), "%s/ss", fx.tmp);
	ss_config_defaults(&fx.cfg);
	assert_int_equal(ss_config_set(&fx.cfg, "data-dir", dir, NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "workers", "2", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "max-body", "4096", NULL, 0), 0);
	assert_int_equal(ss_init(&fx.cfg, "acme", "alice", &fx.init), 0);
	/* A second init over the same directory is refused. */
	{
		struct ss_init_result again;
		assert_int_equal(ss_init(&fx.cfg, NULL, NULL, &again), SPH_ERR_STATE);
	}
	snprintf(fx.ca, sizeof(fx.ca), "%s/tls/server.pem", dir);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	assert_true(fx.port != 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ss_service_free(fx.svc);
	tu_rmtree(fx.tmp);
	free(fx.tmp);
	curl_global_cleanup();
	return 0;
}

/* POSTs body to path as token, wants status 201/200, returns the reply's "id"
 * in out. */
static void create(const char *path, const char *token, const char *body, char *out, size_t cap)
{
	json_t *j = NULL;
	long st = req("POST", path, token, body, &j);

	if (st != 201)
		fail_msg("POST %s: %ld (%s)", path, st,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	snprintf(out, cap, "%s", jstr(j, "id"));
	json_decref(j);
}

/* A new user of the acme tenant with role; its token in tok. */
static void add_user(const char *tenant_id, const char *name, const char *role,
                     char tok[SS_TOKEN_LEN + 1])
{
	char path[200], body[200];
	json_t *j = NULL;

	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tenant_id);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"role\":\"%s\"}", name, role);
	assert_int_equal(req("POST", path, fx.init.admin_token, body, &j), 201);
	snprintf(tok, SS_TOKEN_LEN + 1, "%s", jstr(j, "token"));
	json_decref(j);
}

/* The group named name in a device_groups array. */
static json_t *group_named(json_t *arr, const char *name)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (strcmp(jstr(json_array_get(arr, i), "name"), name) == 0)
			return json_array_get(arr, i);
	return NULL;
}

static void test_default_groups(void **state)
{
	static const char *const want[][3] = {
	        {"Development", "Retail", "No3rdPartyAppUpdates"},
	        {"Field Test", "Retail", "UpdateAll"},
	        {"Production", "Retail", "UpdateAll"},
	        {"Field Test OS Evaluation", "RetailEval", "UpdateAll"},
	        {"Production OS Evaluation", "RetailEval", "UpdateAll"},
	};
	char path[300], pid[64], bare[64];
	json_t *j = NULL, *gs;

	(void)state;
	snprintf(path, sizeof(path), "/v1/tenants/%s/products", fx.init.tenant.id);
	assert_int_equal(req("POST", path, fx.init.admin_token,
	                     "{\"name\":\"Coffee\",\"description\":\"a maker\"}", &j),
	                 201);
	snprintf(pid, sizeof(pid), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "name"), "Coffee");
	assert_string_equal(jstr(j, "description"), "a maker");
	assert_string_equal(jstr(j, "tenant_id"), fx.init.tenant.id);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 5);
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", fx.init.tenant.id,
	         pid);
	assert_int_equal(req("GET", path, fx.init.admin_token, NULL, &j), 200);
	gs = json_object_get(j, "device_groups");
	assert_int_equal(json_array_size(gs), 5);
	for (size_t i = 0; i < 5; i++) {
		json_t *g = group_named(gs, want[i][0]);
		if (!g)
			fail_msg("no default group %s", want[i][0]);
		assert_string_equal(jstr(g, "os_feed"), want[i][1]);
		assert_string_equal(jstr(g, "update_policy"), want[i][2]);
		assert_string_equal(jstr(g, "product_id"), pid);
	}
	json_decref(j);

	/* default_groups false: none; the product reads back */
	snprintf(path, sizeof(path), "/v1/tenants/%s/products", fx.init.tenant.id);
	create(path, fx.init.admin_token, "{\"name\":\"Bare\",\"default_groups\":false}", bare,
	       sizeof(bare));
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", fx.init.tenant.id,
	         bare);
	assert_int_equal(req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 0);
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s", fx.init.tenant.id, bare);
	assert_int_equal(req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_string_equal(jstr(j, "name"), "Bare");
	assert_string_equal(jstr(j, "description"), "");
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products?limit=1", fx.init.tenant.id);
	assert_int_equal(req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "products")), 1);
	assert_non_null(json_string_value(json_object_get(j, "next")));
	json_decref(j);
}

static void test_roles_and_validation(void **state)
{
	char base[200], path[400], reader[SS_TOKEN_LEN + 1], contrib[SS_TOKEN_LEN + 1], pid[64],
	        gid[64];
	json_t *j = NULL;

	(void)state;
	snprintf(base, sizeof(base), "/v1/tenants/%s", fx.init.tenant.id);
	add_user(fx.init.tenant.id, "rita", "Reader", reader);
	add_user(fx.init.tenant.id, "carl", "Contributor", contrib);
	snprintf(path, sizeof(path), "%s/products", base);

	/* a Reader reads but never creates; a Contributor creates */
	expect(403, "forbidden", "POST", path, reader, "{\"name\":\"Toaster\"}");
	expect(401, "unauthorized", "POST", path, NULL, "{\"name\":\"Toaster\"}");
	create(path, contrib, "{\"name\":\"Toaster\"}", pid, sizeof(pid));
	expect(200, NULL, "GET", path, reader, NULL);
	/* duplicate name: 409 */
	expect(409, "conflict", "POST", path, contrib, "{\"name\":\"Toaster\"}");
	/* strict bodies */
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"T2\",\"color\":\"red\"}");
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"T2\",\"default_groups\":1}");
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"\"}");
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":7}");
	expect(400, "bad_request", "POST", path, contrib, "{\"description\":\"no name\"}");
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"tab\\there\"}");
	expect(400, "bad_request", "POST", path, contrib,
	       "{\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
	snprintf(path, sizeof(path), "%s/products?after=zz", base);
	expect(400, "bad_request", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/products", base);

	/* custom groups: defaults Retail / UpdateAll; unknown enums 400 naming the field */
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", base, pid);
	assert_int_equal(req("POST", path, contrib, "{\"name\":\"Lab\"}", &j), 201);
	snprintf(gid, sizeof(gid), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "os_feed"), "Retail");
	assert_string_equal(jstr(j, "update_policy"), "UpdateAll");
	json_decref(j);
	assert_int_equal(req("POST", path, contrib, "{\"name\":\"Lab2\",\"os_feed\":\"Beta\"}", &j),
	                 400);
	assert_non_null(strstr(jstr(j, "reason"), "os_feed"));
	json_decref(j);
	assert_int_equal(req("POST", path, contrib,
	                     "{\"name\":\"Lab2\",\"update_policy\":\"Sometimes\"}", &j),
	                 400);
	assert_non_null(strstr(jstr(j, "reason"), "update_policy"));
	json_decref(j);
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"Lab2\",\"os_feed\":1}");
	expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"Lab2\",\"policy\":\"x\"}");
	expect(403, "forbidden", "POST", path, reader, "{\"name\":\"Lab3\"}");
	expect(409, "conflict", "POST", path, contrib, "{\"name\":\"Lab\"}");
	snprintf(path, sizeof(path),
	         "%s/products/00000000-0000-4000-8000-000000000000/device-groups", base);
	expect(404, "not_found", "POST", path, contrib, "{\"name\":\"Lab\"}");
	expect(404, "not_found", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/products/not-a-uuid", base);
	expect(404, "not_found", "GET", path, reader, NULL);

	/* PATCH: Contributor; strict; the change reads back */
	snprintf(path, sizeof(path), "%s/device-groups/%s", base, gid);
	expect(403, "forbidden", "PATCH", path, reader, "{\"os_feed\":\"RetailEval\"}");
	expect(400, "bad_request", "PATCH", path, contrib, "{}");
	expect(400, "bad_request", "PATCH", path, contrib, "{\"os_feed\":\"retail\"}");
	expect(400, "bad_request", "PATCH", path, contrib, "{\"update_policy\":null}");
	expect(400, "bad_request", "PATCH", path, contrib, "{\"id\":\"x\"}");
	assert_int_equal(req("PATCH", path, contrib,
	                     "{\"os_feed\":\"RetailEval\",\"update_policy\":\"NoUpdates\","
	                     "\"description\":\"bench\"}",
	                     &j),
	                 200);
	assert_string_equal(jstr(j, "os_feed"), "RetailEval");
	assert_string_equal(jstr(j, "update_policy"), "NoUpdates");
	assert_string_equal(jstr(j, "name"), "Lab");
	json_decref(j);
	assert_int_equal(req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(jstr(j, "description"), "bench");
	json_decref(j);
	/* renaming onto a default group's name is a conflict */
	expect(409, "conflict", "PATCH", path, contrib, "{\"name\":\"Production\"}");
	expect(200, NULL, "PATCH", path, contrib, "{\"name\":\"Lab 9\"}");
	snprintf(path, sizeof(path), "%s/device-groups/00000000-0000-4000-8000-000000000000", base);
	expect(404, "not_found", "PATCH", path, contrib, "{\"name\":\"x\"}");
	expect(404, "not_found", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/device-groups", base);
	expect(200, NULL, "GET", path, reader, NULL);
	expect(405, NULL, "DELETE", path, contrib, NULL);
}

static void test_tenant_isolation_and_move(void **state)
{
	char a[200], b[200], path[400], body[300], bob[SS_TOKEN_LEN + 1], contrib[SS_TOKEN_LEN + 1],
	        reader[SS_TOKEN_LEN + 1], pa[64], pb[64], ga[64], gb[64], tb[64], dev[129],
	        devb[129], want[200];
	json_t *j = NULL, *ev;
	bool moved = false;

	(void)state;
	snprintf(a, sizeof(a), "/v1/tenants/%s", fx.init.tenant.id);
	/* Tenant B with Bob as its Administrator */
	assert_int_equal(req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
	                 201);
	snprintf(tb, sizeof(tb), "%s", jstr(j, "id"));
	json_decref(j);
	snprintf(b, sizeof(b), "/v1/tenants/%s", tb);
	snprintf(path, sizeof(path), "%s/users", b);
	assert_int_equal(req("POST", path, fx.init.admin_token,
	                     "{\"name\":\"bob\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(bob, sizeof(bob), "%s", jstr(j, "token"));
	json_decref(j);
	add_user(fx.init.tenant.id, "cora", "Contributor", contrib);
	add_user(fx.init.tenant.id, "ravi", "Reader", reader);

	/* A product and group in each tenant, a device in each */
	snprintf(path, sizeof(path), "%s/products", a);
	create(path, fx.init.admin_token, "{\"name\":\"Kettle\",\"default_groups\":false}", pa,
	       sizeof(pa));
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", a, pa);
	create(path, fx.init.admin_token, "{\"name\":\"Fleet A\"}", ga, sizeof(ga));
	snprintf(path, sizeof(path), "%s/products", b);
	create(path, bob, "{\"name\":\"Kettle\",\"default_groups\":false}", pb, sizeof(pb));
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", b, pb);
	create(path, bob, "{\"name\":\"Fleet B\"}", gb, sizeof(gb));
	device_id(dev, 21);
	device_id(devb, 22);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	snprintf(path, sizeof(path), "%s/devices", a);
	expect(201, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", devb);
	snprintf(path, sizeof(path), "%s/devices", b);
	expect(201, NULL, "POST", path, bob, body);

	/* Bob reads nothing of A's: through A's path (no role: 404) ... */
	snprintf(path, sizeof(path), "%s/products/%s", a, pa);
	expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/device-groups/%s", a, ga);
	expect(404, "not_found", "GET", path, bob, NULL);
	expect(404, "not_found", "PATCH", path, bob, "{\"update_policy\":\"NoUpdates\"}");
	/* ... nor through his own tenant's path with A's ids */
	snprintf(path, sizeof(path), "%s/products/%s", b, pa);
	expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", b, pa);
	expect(404, "not_found", "GET", path, bob, NULL);
	expect(404, "not_found", "POST", path, bob, "{\"name\":\"Sneaky\"}");
	snprintf(path, sizeof(path), "%s/device-groups/%s", b, ga);
	expect(404, "not_found", "GET", path, bob, NULL);
	expect(404, "not_found", "PATCH", path, bob, "{\"update_policy\":\"NoUpdates\"}");
	/* Bob moves his device into A's group: 404; A's device into his: 404 */
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", ga);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", b, devb);
	expect(404, "not_found", "PUT", path, bob, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", b, dev);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", gb);
	expect(404, "not_found", "PUT", path, bob, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	expect(404, "not_found", "PUT", path, bob, body);
	/* A's Contributor moves A's device into B's group: 404, nothing changes */
	expect(404, "not_found", "PUT", path, contrib, body);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	assert_int_equal(req("GET", path, reader, NULL, &j), 200);
	assert_true(json_is_null(json_object_get(j, "group_id")));
	json_decref(j);
	/* B's group listing has only B's group */
	snprintf(path, sizeof(path), "%s/device-groups", b);
	assert_int_equal(req("GET", path, bob, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 1);
	json_decref(j);

	/* The real move: Reader 403, bad bodies 400, then Contributor 200 */
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", ga);
	expect(403, "forbidden", "PUT", path, reader, body);
	expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":\"nope\"}");
	expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":\"\"}");
	expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":5}");
	expect(400, "bad_request", "PUT", path, contrib, "{}");
	expect(400, "bad_request", "PUT", path, contrib, "{\"group\":\"x\"}");
	assert_int_equal(req("PUT", path, contrib, body, &j), 200);
	assert_string_equal(jstr(j, "group_id"), ga);
	json_decref(j);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	assert_int_equal(req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(jstr(j, "group_id"), ga);
	json_decref(j);
	snprintf(path, sizeof(path), "%s/devices", a);
	assert_int_equal(req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(jstr(json_array_get(json_object_get(j, "devices"), 0), "group_id"), ga);
	json_decref(j);
	/* an unknown device: 404; null: out of the group */
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, devb);
	expect(404, "not_found", "PUT", path, contrib, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	assert_int_equal(req("PUT", path, contrib, "{\"group_id\":null}", &j), 200);
	assert_true(json_is_null(json_object_get(j, "group_id")));
	json_decref(j);

	/* audited: device.move by the Contributor, "none -> <ga>" then "<ga> -> none" */
	snprintf(path, sizeof(path), "%s/audit?limit=1000", a);
	assert_int_equal(req("GET", path, fx.init.admin_token, NULL, &j), 200);
	ev = json_object_get(j, "events");
	snprintf(want, sizeof(want), "none -> %s", ga);
	for (size_t i = 0; i < json_array_size(ev); i++) {
		json_t *e = json_array_get(ev, i);
		if (strcmp(jstr(e, "action"), "device.move") != 0)
			continue;
		assert_string_equal(jstr(e, "target"), dev);
		if (!moved) {
			assert_string_equal(jstr(e, "detail"), want);
			moved = true;
		} else {
			snprintf(want, sizeof(want), "%s -> none", ga);
			assert_string_equal(jstr(e, "detail"), want);
		}
	}
	assert_true(moved);
	json_decref(j);
	/* B's audit has nothing of A's move */
	snprintf(path, sizeof(path), "%s/audit", b);
	assert_int_equal(req("GET", path, bob, NULL, &j), 200);
	ev = json_object_get(j, "events");
	for (size_t i = 0; i < json_array_size(ev); i++)
		assert_string_not_equal(jstr(json_array_get(ev, i), "action"), "device.move");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default_groups),
	        cmocka_unit_test(test_roles_and_validation),
	        cmocka_unit_test(test_tenant_isolation_and_move),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
