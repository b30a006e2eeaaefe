/*
 * `sphere product`, `sphere device-group` and `sphere device update` against
 * a real security service (docs/api-groups.md): the default groups, custom
 * groups, feed and policy changes, moving a device, and the service's
 * reasons on refusal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "service/service.h"
#include "testutil.h"

static char *dir;
static struct ss_init_result init;
static struct ss_service *svc;
static char url[64], ca[700], conf[700];

#define SPHERE(...) tu_run("SPHERE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})

static void expect_out(struct tu_result *r, int status, const char *what)
{
	if (r->status != status || (what && !strstr(r->out, what)))
		fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant in stdout: %s", r->status,
		         status, r->out, r->err, what ? what : "(nothing)");
	tu_result_free(r);
}

/* Runs a command that must succeed with --output json; returns its JSON. */
static json_t *json_of(struct tu_result *r)
{
	json_t *j;

	if (r->status != 0)
		fail_msg("exit %d\nstdout: %s\nstderr: %s", r->status, r->out, r->err);
	j = json_loads(r->out, 0, NULL);
	if (!j)
		fail_msg("not JSON: %s", r->out);
	tu_result_free(r);
	return j;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));

	assert_non_null(v);
	return v;
}

static int setup(void **state)
{
	struct ss_config c;
	char data[600];

	(void)state;
	dir = tu_mkdtemp();
	snprintf(data, sizeof(data), "%s/ss", dir);
	ss_config_defaults(&c);
	assert_int_equal(ss_config_set(&c, "data-dir", data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&c, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&c, "workers", "1", NULL, 0), 0);
	assert_int_equal(ss_init(&c, "acme", "alice", &init), 0);
	assert_int_equal(ss_service_start(&c, &svc), 0);
	snprintf(url, sizeof(url), "https://localhost:%u", (unsigned)ss_service_port(svc));
	snprintf(ca, sizeof(ca), "%s/tls/server.pem", data);
	snprintf(conf, sizeof(conf), "%s/cli/config.json", dir);
	setenv("SPHERE_CONFIG", conf, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ss_service_free(svc);
	tu_rmtree(dir);
	free(dir);
	return 0;
}

static void test_cli_groups_flow(void **state)
{
	char dev[129], pid[64], gid[64], dev_group[64], bare[64];
	struct tu_result r;
	json_t *j, *gs;

	(void)state;
	for (int i = 0; i < 128; i++)
		dev[i] = "0123456789abcdef"[(i * 3 + 1) % 16];
	dev[128] = '\0';

	r = SPHERE("product", "list");
	tu_expect(&r, 1, "not logged in");
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in as alice");

	/* a product with its five default groups (table output names them) */
	r = SPHERE("product", "create", "--name", "Coffee Maker", "--description", "2025 model");
	expect_out(&r, 0, "Production OS Evaluation");
	r = SPHERE("product", "create", "--name", "Coffee Maker");
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("product", "create");
	tu_expect(&r, 2, "--name");
	r = SPHERE("product", "list", "--output", "json");
	j = json_of(&r);
	assert_int_equal(json_array_size(json_object_get(j, "products")), 1);
	snprintf(pid, sizeof(pid), "%s",
	         jstr(json_array_get(json_object_get(j, "products"), 0), "id"));
	json_decref(j);
	r = SPHERE("product", "show", "--product", pid);
	expect_out(&r, 0, "2025 model");
	r = SPHERE("product", "show", "--product", "../tokens");
	tu_expect(&r, 2, "--product");
	r = SPHERE("product", "show", "--product", "00000000-0000-4000-8000-000000000000");
	tu_expect(&r, 1, "404 not_found");

	/* the defaults, listed per product */
	r = SPHERE("device-group", "list", "--product", pid, "--output", "json");
	j = json_of(&r);
	gs = json_object_get(j, "device_groups");
	assert_int_equal(json_array_size(gs), 5);
	for (size_t i = 0; i < 5; i++) {
		json_t *g = json_array_get(gs, i);
		if (strcmp(jstr(g, "name"), "Development") == 0) {
			assert_string_equal(jstr(g, "update_policy"), "No3rdPartyAppUpdates");
			snprintf(dev_group, sizeof(dev_group), "%s", jstr(g, "id"));
		}
		if (strstr(jstr(g, "name"), "OS Evaluation"))
			assert_string_equal(jstr(g, "os_feed"), "RetailEval");
	}
	json_decref(j);

	/* --no-default-groups */
	r = SPHERE("product", "create", "--name", "Bare", "--no-default-groups", "--output",
	           "json");
	j = json_of(&r);
	snprintf(bare, sizeof(bare), "%s", jstr(j, "id"));
	assert_int_equal(json_array_size(json_object_get(j, "device_groups")), 0);
	json_decref(j);

	/* a custom group; bad feed / policy named by the service */
	r = SPHERE("device-group", "create", "--product", bare, "--name", "Lab", "--os-feed",
	           "RetailEval", "--update-policy", "NoUpdates", "--output", "json");
	j = json_of(&r);
	snprintf(gid, sizeof(gid), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "os_feed"), "RetailEval");
	assert_string_equal(jstr(j, "update_policy"), "NoUpdates");
	json_decref(j);
	r = SPHERE("device-group", "create", "--product", bare, "--name", "Lab2", "--os-feed",
	           "Beta");
	tu_expect(&r, 1, "os_feed");
	r = SPHERE("device-group", "create", "--product", bare, "--name", "Lab2", "--update-policy",
	           "Whenever");
	tu_expect(&r, 1, "update_policy");
	r = SPHERE("device-group", "create", "--name", "Lab2");
	tu_expect(&r, 2, "--product");

	/* update, show */
	r = SPHERE("device-group", "update", "--device-group", gid, "--os-feed", "Retail",
	           "--update-policy", "UpdateAll", "--description", "bench units");
	expect_out(&r, 0, "UpdateAll");
	r = SPHERE("device-group", "show", "--device-group", gid);
	expect_out(&r, 0, "bench units");
	r = SPHERE("device-group", "update", "--device-group", gid);
	tu_expect(&r, 2, "nothing to change");
	r = SPHERE("device-group", "list");
	expect_out(&r, 0, "Lab");

	/* move a device: into Development, then Lab, then out */
	r = SPHERE("device", "claim", "--device-id", dev);
	expect_out(&r, 0, dev);
	r = SPHERE("device", "update", "--device-id", dev, "--device-group", dev_group);
	expect_out(&r, 0, dev_group);
	r = SPHERE("device", "show", "--device-id", dev);
	expect_out(&r, 0, dev_group);
	r = SPHERE("device", "update", "--device-id", dev, "--device-group", gid);
	expect_out(&r, 0, gid);
	r = SPHERE("device", "update", "--device-id", dev, "--device-group",
	           "00000000-0000-4000-8000-000000000000");
	tu_expect(&r, 1, "404 not_found");
	r = SPHERE("device", "update", "--device-id", dev);
	tu_expect(&r, 2, "--device-group");
	r = SPHERE("device", "update", "--device-id", "xyz", "--device-group", gid);
	tu_expect(&r, 2, "--device-id");
	r = SPHERE("device", "update", "--device-id", dev, "--device-group", "none", "--output",
	           "json");
	j = json_of(&r);
	assert_true(json_is_null(json_object_get(j, "group_id")));
	json_decref(j);

	/* a Reader is refused changes */
	r = SPHERE("role", "add", "--user", "rita", "--role", "Reader", "--output", "json");
	j = json_of(&r);
	{
		char tok[128];
		snprintf(tok, sizeof(tok), "%s", jstr(j, "token"));
		json_decref(j);
		r = SPHERE("login", "--url", url, "--token", tok, "--ca", ca);
		expect_out(&r, 0, "logged in as rita");
	}
	r = SPHERE("product", "create", "--name", "Toaster");
	tu_expect(&r, 1, "403 forbidden");
	r = SPHERE("device-group", "update", "--device-group", gid, "--name", "Mine");
	tu_expect(&r, 1, "403 forbidden");
	r = SPHERE("device", "update", "--device-id", dev, "--device-group", gid);
	tu_expect(&r, 1, "403 forbidden");
	r = SPHERE("product", "list");
	expect_out(&r, 0, "Coffee Maker");
	r = SPHERE("device-group", "frobnicate");
	tu_expect(&r, 2, "unknown command");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cli_groups_flow),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
