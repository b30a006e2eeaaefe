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
#include "ss_fixture.h"
#include "testutil.h"

/* POSTs body to path as token, wants status 201/200, returns the reply's "id"
 * in out. */
static void create(const char *path, const char *token, const char *body, char *out, size_t cap)
{
	json_t *j = NULL;
	long st = ssfx_req("POST", path, token, body, &j);

	if (st != 201)
		fail_msg("POST %s: %ld (%s)", path, st,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	snprintf(out, cap, "%s", ssfx_jstr(j, "id"));
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
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token, body, &j), 201);
	snprintf(tok, SS_TOKEN_LEN + 1, "%s", ssfx_jstr(j, "token"));
	json_decref(j);
}

/* The group named name in a device_groups array. */
static json_t *group_named(json_t *arr, const char *name)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (strcmp(ssfx_jstr(json_array_get(arr, i), "name"), name) == 0)
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
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"Coffee\",\"description\":\"a maker\"}", &j),
	                 201);
	snprintf(pid, sizeof(pid), "%s", ssfx_jstr(j, "id"));
	assert_string_equal(ssfx_jstr(j, "name"), "Coffee");
	assert_string_equal(ssfx_jstr(j, "description"), "a maker");
	assert_string_equal(ssfx_jstr(j, "tenant_id"), fx.init.tenant.id);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 5);
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", fx.init.tenant.id,
	         pid);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	gs = json_object_get(j, "device_groups");
	assert_int_equal(json_array_size(gs), 5);
	for (size_t i = 0; i < 5; i++) {
		json_t *g = group_named(gs, want[i][0]);
		if (!g)
			fail_msg("no default group %s", want[i][0]);
		assert_string_equal(ssfx_jstr(g, "os_feed"), want[i][1]);
		assert_string_equal(ssfx_jstr(g, "update_policy"), want[i][2]);
		assert_string_equal(ssfx_jstr(g, "product_id"), pid);
	}
	json_decref(j);

	/* default_groups false: none; the product reads back */
	snprintf(path, sizeof(path), "/v1/tenants/%s/products", fx.init.tenant.id);
	create(path, fx.init.admin_token, "{\"name\":\"Bare\",\"default_groups\":false}", bare,
	       sizeof(bare));
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", fx.init.tenant.id,
	         bare);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 0);
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s", fx.init.tenant.id, bare);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "name"), "Bare");
	assert_string_equal(ssfx_jstr(j, "description"), "");
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products?limit=1", fx.init.tenant.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
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
	ssfx_expect(403, "forbidden", "POST", path, reader, "{\"name\":\"Toaster\"}");
	ssfx_expect(401, "unauthorized", "POST", path, NULL, "{\"name\":\"Toaster\"}");
	create(path, contrib, "{\"name\":\"Toaster\"}", pid, sizeof(pid));
	ssfx_expect(200, NULL, "GET", path, reader, NULL);
	/* duplicate name: 409 */
	ssfx_expect(409, "conflict", "POST", path, contrib, "{\"name\":\"Toaster\"}");
	/* strict bodies */
	ssfx_expect(400, "bad_request", "POST", path, contrib,
	            "{\"name\":\"T2\",\"color\":\"red\"}");
	ssfx_expect(400, "bad_request", "POST", path, contrib,
	            "{\"name\":\"T2\",\"default_groups\":1}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"\"}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"name\":7}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"description\":\"no name\"}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"tab\\there\"}");
	ssfx_expect(
	        400, "bad_request", "POST", path, contrib,
	        "{\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
	snprintf(path, sizeof(path), "%s/products?after=zz", base);
	ssfx_expect(400, "bad_request", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/products", base);

	/* custom groups: defaults Retail / UpdateAll; unknown enums 400 naming the field */
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", base, pid);
	assert_int_equal(ssfx_req("POST", path, contrib, "{\"name\":\"Lab\"}", &j), 201);
	snprintf(gid, sizeof(gid), "%s", ssfx_jstr(j, "id"));
	assert_string_equal(ssfx_jstr(j, "os_feed"), "Retail");
	assert_string_equal(ssfx_jstr(j, "update_policy"), "UpdateAll");
	json_decref(j);
	assert_int_equal(
	        ssfx_req("POST", path, contrib, "{\"name\":\"Lab2\",\"os_feed\":\"Beta\"}", &j),
	        400);
	assert_non_null(strstr(ssfx_jstr(j, "reason"), "os_feed"));
	json_decref(j);
	assert_int_equal(ssfx_req("POST", path, contrib,
	                          "{\"name\":\"Lab2\",\"update_policy\":\"Sometimes\"}", &j),
	                 400);
	assert_non_null(strstr(ssfx_jstr(j, "reason"), "update_policy"));
	json_decref(j);
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"name\":\"Lab2\",\"os_feed\":1}");
	ssfx_expect(400, "bad_request", "POST", path, contrib,
	            "{\"name\":\"Lab2\",\"policy\":\"x\"}");
	ssfx_expect(403, "forbidden", "POST", path, reader, "{\"name\":\"Lab3\"}");
	ssfx_expect(409, "conflict", "POST", path, contrib, "{\"name\":\"Lab\"}");
	snprintf(path, sizeof(path),
	         "%s/products/00000000-0000-4000-8000-000000000000/device-groups", base);
	ssfx_expect(404, "not_found", "POST", path, contrib, "{\"name\":\"Lab\"}");
	ssfx_expect(404, "not_found", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/products/not-a-uuid", base);
	ssfx_expect(404, "not_found", "GET", path, reader, NULL);

	/* PATCH: Contributor; strict; the change reads back */
	snprintf(path, sizeof(path), "%s/device-groups/%s", base, gid);
	ssfx_expect(403, "forbidden", "PATCH", path, reader, "{\"os_feed\":\"RetailEval\"}");
	ssfx_expect(400, "bad_request", "PATCH", path, contrib, "{}");
	ssfx_expect(400, "bad_request", "PATCH", path, contrib, "{\"os_feed\":\"retail\"}");
	ssfx_expect(400, "bad_request", "PATCH", path, contrib, "{\"update_policy\":null}");
	ssfx_expect(400, "bad_request", "PATCH", path, contrib, "{\"id\":\"x\"}");
	assert_int_equal(ssfx_req("PATCH", path, contrib,
	                          "{\"os_feed\":\"RetailEval\",\"update_policy\":\"NoUpdates\","
	                          "\"description\":\"bench\"}",
	                          &j),
	                 200);
	assert_string_equal(ssfx_jstr(j, "os_feed"), "RetailEval");
	assert_string_equal(ssfx_jstr(j, "update_policy"), "NoUpdates");
	assert_string_equal(ssfx_jstr(j, "name"), "Lab");
	json_decref(j);
	assert_int_equal(ssfx_req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "description"), "bench");
	json_decref(j);
	/* renaming onto a default group's name is a conflict */
	ssfx_expect(409, "conflict", "PATCH", path, contrib, "{\"name\":\"Production\"}");
	ssfx_expect(200, NULL, "PATCH", path, contrib, "{\"name\":\"Lab 9\"}");
	snprintf(path, sizeof(path), "%s/device-groups/00000000-0000-4000-8000-000000000000", base);
	ssfx_expect(404, "not_found", "PATCH", path, contrib, "{\"name\":\"x\"}");
	ssfx_expect(404, "not_found", "GET", path, contrib, NULL);
	snprintf(path, sizeof(path), "%s/device-groups", base);
	ssfx_expect(200, NULL, "GET", path, reader, NULL);
	ssfx_expect(405, NULL, "DELETE", path, contrib, NULL);
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
	assert_int_equal(
	        ssfx_req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
	        201);
	snprintf(tb, sizeof(tb), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(b, sizeof(b), "/v1/tenants/%s", tb);
	snprintf(path, sizeof(path), "%s/users", b);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"bob\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(bob, sizeof(bob), "%s", ssfx_jstr(j, "token"));
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
	ssfx_device_id(dev, 21);
	ssfx_device_id(devb, 22);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	snprintf(path, sizeof(path), "%s/devices", a);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", devb);
	snprintf(path, sizeof(path), "%s/devices", b);
	ssfx_expect(201, NULL, "POST", path, bob, body);

	/* Bob reads nothing of A's: through A's path (no role: 404) ... */
	snprintf(path, sizeof(path), "%s/products/%s", a, pa);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/device-groups/%s", a, ga);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	ssfx_expect(404, "not_found", "PATCH", path, bob, "{\"update_policy\":\"NoUpdates\"}");
	/* ... nor through his own tenant's path with A's ids */
	snprintf(path, sizeof(path), "%s/products/%s", b, pa);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/products/%s/device-groups", b, pa);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	ssfx_expect(404, "not_found", "POST", path, bob, "{\"name\":\"Sneaky\"}");
	snprintf(path, sizeof(path), "%s/device-groups/%s", b, ga);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	ssfx_expect(404, "not_found", "PATCH", path, bob, "{\"update_policy\":\"NoUpdates\"}");
	/* Bob moves his device into A's group: 404; A's device into his: 404 */
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", ga);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", b, devb);
	ssfx_expect(404, "not_found", "PUT", path, bob, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", b, dev);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", gb);
	ssfx_expect(404, "not_found", "PUT", path, bob, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	ssfx_expect(404, "not_found", "PUT", path, bob, body);
	/* A's Contributor moves A's device into B's group: 404, nothing changes */
	ssfx_expect(404, "not_found", "PUT", path, contrib, body);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	assert_int_equal(ssfx_req("GET", path, reader, NULL, &j), 200);
	assert_true(json_is_null(json_object_get(j, "group_id")));
	json_decref(j);
	/* B's group listing has only B's group */
	snprintf(path, sizeof(path), "%s/device-groups", b);
	assert_int_equal(ssfx_req("GET", path, bob, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 1);
	json_decref(j);

	/* The real move: Reader 403, bad bodies 400, then Contributor 200 */
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", ga);
	ssfx_expect(403, "forbidden", "PUT", path, reader, body);
	ssfx_expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":\"nope\"}");
	ssfx_expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":\"\"}");
	ssfx_expect(400, "bad_request", "PUT", path, contrib, "{\"group_id\":5}");
	ssfx_expect(400, "bad_request", "PUT", path, contrib, "{}");
	ssfx_expect(400, "bad_request", "PUT", path, contrib, "{\"group\":\"x\"}");
	assert_int_equal(ssfx_req("PUT", path, contrib, body, &j), 200);
	assert_string_equal(ssfx_jstr(j, "group_id"), ga);
	json_decref(j);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	assert_int_equal(ssfx_req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "group_id"), ga);
	json_decref(j);
	snprintf(path, sizeof(path), "%s/devices", a);
	assert_int_equal(ssfx_req("GET", path, reader, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(json_array_get(json_object_get(j, "devices"), 0), "group_id"),
	                    ga);
	json_decref(j);
	/* an unknown device: 404; null: out of the group */
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, devb);
	ssfx_expect(404, "not_found", "PUT", path, contrib, body);
	snprintf(path, sizeof(path), "%s/devices/%s/device-group", a, dev);
	assert_int_equal(ssfx_req("PUT", path, contrib, "{\"group_id\":null}", &j), 200);
	assert_true(json_is_null(json_object_get(j, "group_id")));
	json_decref(j);

	/* audited: device.move by the Contributor, "none -> <ga>" then "<ga> -> none" */
	snprintf(path, sizeof(path), "%s/audit?limit=1000", a);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	ev = json_object_get(j, "events");
	snprintf(want, sizeof(want), "none -> %s", ga);
	for (size_t i = 0; i < json_array_size(ev); i++) {
		json_t *e = json_array_get(ev, i);
		if (strcmp(ssfx_jstr(e, "action"), "device.move") != 0)
			continue;
		assert_string_equal(ssfx_jstr(e, "target"), dev);
		if (!moved) {
			assert_string_equal(ssfx_jstr(e, "detail"), want);
			moved = true;
		} else {
			snprintf(want, sizeof(want), "%s -> none", ga);
			assert_string_equal(ssfx_jstr(e, "detail"), want);
		}
	}
	assert_true(moved);
	json_decref(j);
	/* B's audit has nothing of A's move */
	snprintf(path, sizeof(path), "%s/audit", b);
	assert_int_equal(ssfx_req("GET", path, bob, NULL, &j), 200);
	ev = json_object_get(j, "events");
	for (size_t i = 0; i < json_array_size(ev); i++)
		assert_string_not_equal(ssfx_jstr(json_array_get(ev, i), "action"), "device.move");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default_groups),
	        cmocka_unit_test(test_roles_and_validation),
	        cmocka_unit_test(test_tenant_isolation_and_move),
	};
	return cmocka_run_group_tests(tests, ssfx_setup, ssfx_teardown);
}
