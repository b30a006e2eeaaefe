/*
 * `sphere` against a real security service: login, tenants, roles and device
 * claiming, with the service's reasons on refusal (docs/api.md, README).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/common.h"
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

static void test_cli_flow(void **state)
{
	char dev[129];
	struct tu_result r;
	struct stat st;
	json_t *j;

	(void)state;
	for (int i = 0; i < 128; i++)
		dev[i] = "0123456789abcdef"[(i * 5 + 3) % 16];
	dev[128] = '\0';

	r = SPHERE("tenant", "list");
	tu_expect(&r, 1, "not logged in");
	r = SPHERE("login", "--url", url, "--token",
	           "sph_0000000000000000000000000000000000000000000000000000000000000000", "--ca",
	           ca);
	tu_expect(&r, 1, "401 unauthorized");
	r = SPHERE("login", "--url", url);
	tu_expect(&r, 2, "--token");
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in as alice");
	assert_int_equal(stat(conf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	r = SPHERE("tenant", "list");
	expect_out(&r, 0, "acme");
	/* The error report: every failure report of the tenant, as JSON (none yet). */
	r = SPHERE("tenant", "download-error-report", "--out", "report.json");
	expect_out(&r, 0, "0 failure report(s) written to report.json");
	{
		char *p = tu_path(dir, "report.json");
		json_t *rep = json_load_file(p, 0, NULL);
		assert_true(json_is_array(rep));
		json_decref(rep);
		free(p);
	}
	/* scoped to a device group or an image: an unknown one is the service's
	 * 404; both at once is a usage error */
	r = SPHERE("tenant", "download-error-report", "--device-group",
	           "00000000-0000-4000-8000-000000000009");
	tu_expect(&r, 1, "404 not_found");
	r = SPHERE("tenant", "download-error-report", "--image",
	           "00000000-0000-4000-8000-000000000009");
	tu_expect(&r, 1, "404 not_found");
	r = SPHERE("tenant", "download-error-report", "--image", "a", "--device-group", "b");
	tu_expect(&r, 2, "not both");
	r = SPHERE("tenant", "show");
	expect_out(&r, 0, init.tenant.id);
	r = SPHERE("device", "claim", "--device-id", dev);
	expect_out(&r, 0, dev);
	r = SPHERE("device", "claim", "--device-id", dev);
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("device", "claim");
	tu_expect(&r, 2, "--device-id");
	r = SPHERE("device", "claim", "--device-id", "xyz");
	tu_expect(&r, 1, "400 bad_request");
	r = SPHERE("device", "list", "--output", "json");
	assert_int_equal(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(j, "devices"), 0), "id")),
	                    dev);
	json_decref(j);
	tu_result_free(&r);
	r = SPHERE("device", "show", "--device-id", dev);
	expect_out(&r, 0, init.tenant.id);
	/* capability files and modes (docs/api.md §4.14) */
	r = SPHERE("device", "capability", "download", "--device-id", dev, "--capability",
	           "appDevelopment,fieldServicing", "--out", "dev.cap");
	expect_out(&r, 0, "capability file: dev.cap");
	{
		char *p = tu_path(dir, "dev.cap");
		assert_int_equal(stat(p, &st), 0);
		assert_true(st.st_size > 100);
		free(p);
	}
	r = SPHERE("device", "capability", "download", "--device-id", dev, "--capability",
	           "appDevelopment", "--out", "dev.cap");
	tu_expect(&r, 1, "exists (not replaced)");
	r = SPHERE("device", "capability", "download", "--device-id", dev, "--capability", "root",
	           "--out", "x.cap");
	tu_expect(&r, 2, "--capability");
	r = SPHERE("device", "capability", "download", "--device-id", dev);
	tu_expect(&r, 2, "--out");
	r = SPHERE("device", "enable-development", "--device-id", dev, "--out", "devmode.cap");
	expect_out(&r, 0, "development mode");
	r = SPHERE("device", "show", "--device-id", dev, "--output", "json");
	expect_out(&r, 0, "\"development\"");
	r = SPHERE("device", "enable-cloud-test", "--device-id", dev, "--out", "x.cap");
	tu_expect(&r, 2, "--out is for enable-development only");
	r = SPHERE("device", "enable-cloud-test", "--device-id", dev);
	expect_out(&r, 0, dev);
	r = SPHERE("device", "show", "--device-id", dev, "--output", "json");
	expect_out(&r, 0, "\"cloud-test\"");
	r = SPHERE("role", "add", "--user", "rita", "--role", "Reader");
	expect_out(&r, 0, "sph_");
	r = SPHERE("role", "add", "--user", "rita", "--role", "Owner");
	tu_expect(&r, 1, "400 bad_request");
	r = SPHERE("role", "list");
	expect_out(&r, 0, "rita");
	r = SPHERE("role", "remove", "--user-id", init.admin.id);
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("tenant", "create", "--name", "beta");
	expect_out(&r, 0, "beta");
	r = SPHERE("tenant", "select", "--tenant", "00000000-0000-4000-8000-000000000000");
	tu_expect(&r, 1, "404 not_found");
	r = SPHERE("device", "list", "--output", "yaml");
	tu_expect(&r, 2, "--output");
}

/* X || Y of a fresh P-256 key, as 128 hex digits. */
static void key_hex(char out[129])
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pt[65];
	size_t n = 0;

	assert_non_null(k);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
	assert_int_equal(sph_hex_encode(pt + 1, 64, out, 129), 0);
	EVP_PKEY_free(k);
}

/* The operator registers a device from the JSON sphere-device prints. */
static void test_cli_register(void **state)
{
	char dev[129], att[129], path[800], *json;
	struct tu_result r;
	FILE *f;

	(void)state;
	key_hex(dev);
	key_hex(att);
	snprintf(path, sizeof(path), "%s/reg.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"device_id\": \"%s\", \"attestation_key\": \"%s\"}\n", dev, att);
	fclose(f);
	/* A tenant Administrator may not register devices. */
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in");
	r = SPHERE("device", "register", "--file", path);
	tu_expect(&r, 1, "403 forbidden");
	r = SPHERE("login", "--url", url, "--token", init.operator_token, "--ca", ca);
	expect_out(&r, 0, "logged in as operator");
	r = SPHERE("device", "register", "--file", path);
	expect_out(&r, 0, att);
	r = SPHERE("device", "register", "--file", path);
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("device", "registration", "show", "--device-id", dev);
	expect_out(&r, 0, att);
	json = tu_path(dir, "missing.json");
	r = SPHERE("device", "register", "--file", json);
	assert_int_not_equal(r.status, 0);
	tu_result_free(&r);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cli_flow),
	        cmocka_unit_test(test_cli_register),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
