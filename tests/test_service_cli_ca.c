/*
 * `sphere ca-certificate` against a real security service (docs/api-ca.md):
 * list, download (PEM and PKCS#7), the trust bundle, and a rollover, with
 * usage errors and the service's refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "service/ss_internal.h"
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
	struct tu_result r;

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
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in as alice");
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

/* The ids of `ca-certificate list --output json`, newest first, and states. */
static size_t list_ids(char ids[][40], char states[][16], size_t cap)
{
	struct tu_result r = SPHERE("ca-certificate", "list", "--output", "json");
	json_t *j, *a;
	size_t n;

	assert_int_equal(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	a = json_object_get(j, "ca_certificates");
	n = json_array_size(a);
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], 40, "%s",
		         json_string_value(json_object_get(json_array_get(a, i), "id")));
		snprintf(states[i], 16, "%s",
		         json_string_value(json_object_get(json_array_get(a, i), "state")));
	}
	json_decref(j);
	tu_result_free(&r);
	return n;
}

static void issue(const char *file)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pt[65], *der = NULL;
	const uint8_t *p;
	size_t n = 0, len = 0;
	X509 *x;
	FILE *f;

	assert_non_null(k);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
	assert_int_equal(ss_tenant_issue_device_cert(svc, init.tenant.id, pt + 1, 24, &der, &len),
	                 0);
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	free(der);
	EVP_PKEY_free(k);
}

static int verify(const char *bundle, const char *dev)
{
	char cmd[2000];

	snprintf(cmd, sizeof(cmd),
	         "openssl verify -purpose sslclient -CAfile '%s' '%s' >/dev/null 2>&1", bundle,
	         dev);
	return system(cmd) == 0 ? 0 : 1;
}

static size_t count_certs(const char *file)
{
	uint8_t *d = NULL;
	size_t len = 0, n = 0;

	assert_int_equal(tu_read_file(file, &d, &len), 0);
	for (size_t i = 0; i + 27 <= len; i++)
		n += memcmp(d + i, "-----BEGIN CERTIFICATE-----", 27) == 0;
	free(d);
	return n;
}

static void test_cli_ca(void **state)
{
	char ids[8][40], states[8][16], *chain, *p7f, *bundle, *dev, *dev2, *missing;
	struct tu_result r;
	struct stat st;
	uint8_t *d = NULL;
	const uint8_t *p;
	size_t len = 0, n;
	PKCS7 *p7;

	(void)state;
	chain = tu_path(dir, "chain.pem");
	p7f = tu_path(dir, "chain.p7b");
	bundle = tu_path(dir, "bundle.pem");
	dev = tu_path(dir, "dev.pem");
	dev2 = tu_path(dir, "dev2.pem");
	missing = tu_path(dir, "no/such/dir/x.pem");

	r = SPHERE("ca-certificate", "list");
	expect_out(&r, 0, "Active");
	n = list_ids(ids, states, 8);
	assert_int_equal(n, 1);
	assert_string_equal(states[0], "Active");

	/* Usage errors. */
	r = SPHERE("ca-certificate");
	tu_expect(&r, 2, "list, download");
	r = SPHERE("ca-certificate", "download", "--out", chain);
	tu_expect(&r, 2, "--ca");
	r = SPHERE("ca-certificate", "download", "--ca", "../../x", "--out", chain);
	tu_expect(&r, 2, "--ca");
	r = SPHERE("ca-certificate", "download", "--ca", ids[0], "--out", chain, "--format", "der");
	tu_expect(&r, 2, "--format");
	r = SPHERE("ca-certificate", "set-state", "--ca", ids[0], "--state", "Inactive");
	tu_expect(&r, 2, "--state");
	r = SPHERE("ca-certificate", "frobnicate");
	tu_expect(&r, 2, "unknown command");
	r = SPHERE("ca-certificate", "--help");
	expect_out(&r, 0, "download-chain");

	/* Downloads. */
	r = SPHERE("ca-certificate", "download", "--ca", ids[0], "--out", chain);
	expect_out(&r, 0, "wrote");
	assert_int_equal(count_certs(chain), 2);
	r = SPHERE("ca-certificate", "download", "--ca", ids[0], "--out", p7f, "--format", "p7");
	expect_out(&r, 0, "wrote");
	assert_int_equal(tu_read_file(p7f, &d, &len), 0);
	p = d;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
	PKCS7_free(p7);
	free(d);
	r = SPHERE("ca-certificate", "download-chain", "--out", bundle);
	expect_out(&r, 0, "wrote");
	issue(dev);
	assert_int_equal(verify(chain, dev), 0);
	assert_int_equal(verify(bundle, dev), 0);
	/* Unknown CA: the service's 404, and no file. */
	r = SPHERE("ca-certificate", "download", "--ca", "00000000-0000-4000-8000-000000000000",
	           "--out", missing);
	tu_expect(&r, 1, "404 not_found");
	assert_int_not_equal(stat(missing, &st), 0);
	/* A download into a directory that does not exist fails cleanly. */
	r = SPHERE("ca-certificate", "download-chain", "--out", missing);
	tu_expect(&r, 1, "cannot");

	/* Rollover. */
	r = SPHERE("ca-certificate", "create");
	expect_out(&r, 0, "Inactive");
	n = list_ids(ids, states, 8);
	assert_int_equal(n, 2);
	assert_string_equal(states[0], "Inactive");
	assert_string_equal(states[1], "Active");
	r = SPHERE("ca-certificate", "download-chain", "--out", bundle);
	expect_out(&r, 0, "wrote");
	assert_int_equal(count_certs(bundle), 4);
	assert_int_equal(verify(bundle, dev), 0);
	r = SPHERE("ca-certificate", "set-state", "--ca", ids[0], "--state", "Active");
	expect_out(&r, 0, "Active");
	r = SPHERE("ca-certificate", "set-state", "--ca", ids[0], "--state", "Revoked");
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("ca-certificate", "set-state", "--ca", ids[1], "--state", "Revoked");
	expect_out(&r, 0, "Revoked");
	r = SPHERE("ca-certificate", "set-state", "--ca", ids[1], "--state", "Active");
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("ca-certificate", "download-chain", "--out", bundle);
	expect_out(&r, 0, "wrote");
	assert_int_equal(count_certs(bundle), 2);
	assert_int_equal(verify(bundle, dev), 1);
	issue(dev2);
	assert_int_equal(verify(bundle, dev2), 0);
	assert_int_equal(stat(bundle, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* A tenant the caller has no role in. */
	r = SPHERE("ca-certificate", "list", "--tenant", "00000000-0000-4000-8000-000000000000");
	tu_expect(&r, 1, "404 not_found");

	free(chain);
	free(p7f);
	free(bundle);
	free(dev);
	free(dev2);
	free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cli_ca),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
