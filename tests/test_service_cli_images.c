/*
 * `sphere image`, `sphere deployment`, `sphere os-image`, `sphere os-feed`
 * and `sphere device-group target` against a real security service
 * (docs/api-images.md): upload and download, a deployment, an OS release
 * published by the operator, and the group's target; usage errors and the
 * service's refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "image/image.h"
#include "service/service.h"
#include "testutil.h"

static char *dir;
static struct ss_init_result init;
static struct ss_service *svc;
static char url[64], ca[700], conf[700], app_pkg[700], os_pkg[700], out_pkg[700];

#define SPHERE(...) tu_run("SPHERE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})

static void expect_out(struct tu_result *r, int status, const char *what)
{
	if (r->status != status || (what && !strstr(r->out, what)))
		fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant in stdout: %s", r->status,
		         status, r->out, r->err, what ? what : "(nothing)");
	tu_result_free(r);
}

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

/* Writes a package of type, signed by signer (chain: its root), to path. */
static void write_pkg(const char *path, uint32_t type, EVP_PKEY *key, X509 *leaf, X509 *root)
{
	static const char am[] = "{\"Name\":\"blink\"}";
	struct img_manifest m;
	STACK_OF(X509) *extra = sk_X509_new_null();
	uint8_t payload[200], *pkg = NULL;
	size_t len = 0;

	memset(&m, 0, sizeof(m));
	assert_int_equal(RAND_bytes(m.component_id, 16), 1);
	m.component_id[6] = (uint8_t)((m.component_id[6] & 0x0f) | 0x40);
	m.component_id[8] = (uint8_t)((m.component_id[8] & 0x3f) | 0x80);
	m.type = type;
	snprintf(m.name, sizeof(m.name), "%s", type == IMG_TYPE_OS ? "Sphere OS" : "blink");
	snprintf(m.version, sizeof(m.version), "%s", type == IMG_TYPE_OS ? "24.1" : "1.2.3");
	m.security_version = 2;
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	if (type == IMG_TYPE_APP) {
		m.app_manifest = am;
		m.app_manifest_len = strlen(am);
	}
	memset(payload, 0x5a, sizeof(payload));
	assert_non_null(extra);
	assert_true(sk_X509_push(extra, root) > 0);
	assert_int_equal(img_pack(&m, payload, sizeof(payload), key, leaf, extra, &pkg, &len), 0);
	assert_int_equal(img_write_file(path, pkg, len, 0644, true), 0);
	sk_X509_free(extra);
	free(pkg);
}

static int setup(void **state)
{
	struct img_cert_params p;
	EVP_PKEY *prk = NULL, *psk = NULL, *trk = NULL, *tsk = NULL;
	X509 *prc = NULL, *psc = NULL, *trc = NULL, *tsc = NULL;
	struct ss_config c;
	char data[600], root_path[700];
	FILE *f;

	(void)state;
	dir = tu_mkdtemp();
	snprintf(data, sizeof(data), "%s/ss", dir);
	ss_config_defaults(&c);
	assert_int_equal(ss_config_set(&c, "data-dir", data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&c, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&c, "workers", "1", NULL, 0), 0);
	assert_int_equal(ss_init(&c, "acme", "alice", &init), 0);

	/* A platform root (configured explicitly) and a developer's tenant root. */
	memset(&p, 0, sizeof(p));
	p.kind = IMG_CERT_PLATFORM_ROOT;
	assert_int_equal(img_cert_make(&p, &prk, &prc), 0);
	p.kind = IMG_CERT_PLATFORM_SIGNER;
	p.issuer_key = prk;
	p.issuer_cert = prc;
	assert_int_equal(img_cert_make(&p, &psk, &psc), 0);
	memset(&p, 0, sizeof(p));
	p.kind = IMG_CERT_TENANT_ROOT;
	assert_int_equal(img_cert_make(&p, &trk, &trc), 0);
	p.kind = IMG_CERT_DEVELOPER_SIGNER;
	p.issuer_key = trk;
	p.issuer_cert = trc;
	assert_int_equal(img_cert_make(&p, &tsk, &tsc), 0);
	snprintf(root_path, sizeof(root_path), "%s/platform.pem", dir);
	f = fopen(root_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, prc), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ss_config_set(&c, "platform-root", root_path, NULL, 0), 0);
	snprintf(app_pkg, sizeof(app_pkg), "%s/blink.pkg", dir);
	snprintf(os_pkg, sizeof(os_pkg), "%s/os.pkg", dir);
	snprintf(out_pkg, sizeof(out_pkg), "%s/downloaded.pkg", dir);
	write_pkg(app_pkg, IMG_TYPE_APP, tsk, tsc, trc);
	write_pkg(os_pkg, IMG_TYPE_OS, psk, psc, prc);
	EVP_PKEY_free(prk);
	EVP_PKEY_free(psk);
	EVP_PKEY_free(trk);
	EVP_PKEY_free(tsk);
	X509_free(prc);
	X509_free(psc);
	X509_free(trc);
	X509_free(tsc);

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

static void test_cli_images_flow(void **state)
{
	char img[64], osid[64], gid[64], pid[64];
	struct tu_result r;
	json_t *j, *gs;
	uint8_t *d = NULL;
	size_t dlen = 0;

	(void)state;
	r = SPHERE("image", "list");
	tu_expect(&r, 1, "not logged in");
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in as alice");

	/* Usage errors are caught before any request. */
	r = SPHERE("image", "add");
	tu_expect(&r, 2, "--file");
	r = SPHERE("image", "show", "--image", "../tokens");
	tu_expect(&r, 2, "--image");
	r = SPHERE("deployment", "create", "--device-group",
	           "00000000-0000-4000-8000-000000000000");
	tu_expect(&r, 2, "--image");
	r = SPHERE("os-feed", "list", "--feed", "retail");
	tu_expect(&r, 2, "--feed");
	r = SPHERE("image", "--help");
	expect_out(&r, 0, "sphere image add --file PKG");

	/* Upload (re-signed by the service); the same again is refused. */
	r = SPHERE("image", "add", "--file", app_pkg, "--output", "json");
	j = json_of(&r);
	snprintf(img, sizeof(img), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "version"), "1.2.3");
	json_decref(j);
	r = SPHERE("image", "add", "--file", app_pkg);
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("image", "list");
	expect_out(&r, 0, img);
	r = SPHERE("image", "show", "--image", img);
	expect_out(&r, 0, "application");
	r = SPHERE("image", "download", "--image", img, "--out", out_pkg);
	expect_out(&r, 0, "wrote");
	assert_int_equal(tu_read_file(out_pkg, &d, &dlen), 0);
	{
		struct img_package pk;
		assert_int_equal(img_parse(d, dlen, &pk), 0);
		assert_string_equal(pk.manifest.version, "1.2.3");
	}
	free(d);
	/* The tenant image root devices install: a certificate that verifies the
	 * re-signed package. */
	{
		char root_pem[720];
		uint8_t *pem = NULL;
		size_t plen = 0;
		snprintf(root_pem, sizeof(root_pem), "%s.root.pem", out_pkg);
		r = SPHERE("image", "root", "--out", root_pem);
		expect_out(&r, 0, "wrote");
		assert_int_equal(tu_read_file(root_pem, &pem, &plen), 0);
		assert_non_null(strstr((const char *)pem, "BEGIN CERTIFICATE"));
		free(pem);
		r = SPHERE("image", "root");
		tu_expect(&r, 2, "--out");
	}

	/* A tenant Administrator is not the operator. */
	r = SPHERE("os-image", "add", "--file", os_pkg);
	tu_expect(&r, 1, "403 forbidden");

	/* A deployment to the product's Production group. */
	r = SPHERE("product", "create", "--name", "Lamp", "--output", "json");
	j = json_of(&r);
	snprintf(pid, sizeof(pid), "%s", jstr(j, "id"));
	gs = json_object_get(j, "device_groups");
	for (size_t i = 0; i < json_array_size(gs); i++)
		if (strcmp(jstr(json_array_get(gs, i), "name"), "Production") == 0)
			snprintf(gid, sizeof(gid), "%s", jstr(json_array_get(gs, i), "id"));
	json_decref(j);
	r = SPHERE("deployment", "create", "--device-group", gid, "--image", img);
	expect_out(&r, 0, gid);
	r = SPHERE("deployment", "list", "--device-group", gid, "--output", "json");
	j = json_of(&r);
	assert_int_equal(json_array_size(json_object_get(j, "deployments")), 1);
	json_decref(j);

	/* The operator uploads and publishes an OS release. */
	r = SPHERE("login", "--url", url, "--token", init.operator_token, "--ca", ca);
	expect_out(&r, 0, "logged in");
	r = SPHERE("os-image", "add", "--file", os_pkg, "--output", "json");
	j = json_of(&r);
	snprintf(osid, sizeof(osid), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "type"), "os");
	json_decref(j);
	r = SPHERE("os-image", "add", "--file", app_pkg);
	tu_expect(&r, 1, "400 bad_request");
	r = SPHERE("os-feed", "publish", "--feed", "Retail", "--image", osid);
	expect_out(&r, 0, osid);
	r = SPHERE("os-feed", "publish", "--feed", "Retail", "--image", osid);
	tu_expect(&r, 1, "409 conflict");
	r = SPHERE("os-feed", "list", "--feed", "Retail");
	expect_out(&r, 0, osid);
	r = SPHERE("os-image", "list");
	expect_out(&r, 0, osid);

	/* Back as the tenant: the group's target is the OS and the app. */
	r = SPHERE("login", "--url", url, "--token", init.admin_token, "--ca", ca);
	expect_out(&r, 0, "logged in as alice");
	r = SPHERE("device-group", "target", "--device-group", gid, "--output", "json");
	j = json_of(&r);
	{
		json_t *imgs = json_object_get(j, "images");
		assert_int_equal(json_array_size(imgs), 2);
		assert_string_equal(jstr(json_array_get(imgs, 0), "image_id"), osid);
		assert_string_equal(jstr(json_array_get(imgs, 1), "image_id"), img);
	}
	json_decref(j);
	r = SPHERE("device-group", "target", "--device-group", gid);
	expect_out(&r, 0, "24.1");
	(void)pid;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cli_images_flow),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
