/*
 * Device capabilities and modes (docs/api.md §4.14) end to end: a real
 * sphere-ss over real TLS, driven with libcurl. The service signs capability
 * files with the tenant's capability signer under the tenant image root; a
 * file verifies for its device against GET image-root and for no other
 * device; a provisioned device directory with that root as its tenant root
 * installs it through boot's capability path. Readers cannot issue, other
 * tenants' devices are not found, and the mode switches show up in device
 * show's "mode" and "update_status" and in the device's target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"
#include "service/ss_internal.h"
#include "ss_fixture.h"
#include "testutil.h"

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

static void claim(const char *tenant, const char *token, const char *dev)
{
	char path[200], body[200];

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", tenant);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	ssfx_expect(201, NULL, "POST", path, token, body);
}

/* The tenant image root, from GET image-root. */
static X509 *image_root(const char *tenant, const char *token)
{
	struct ssfx_reply rep;
	char path[200];
	BIO *b;
	X509 *x;

	snprintf(path, sizeof(path), "/v1/tenants/%s/image-root", tenant);
	ssfx_call(0, "GET", path, token, NULL, 0, NULL, &rep);
	assert_int_equal(rep.status, 200);
	b = BIO_new_mem_buf(rep.body, (int)rep.len);
	assert_non_null(b);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(x);
	BIO_free(b);
	ssfx_reply_free(&rep);
	return x;
}

/* POST with a JSON body; the raw reply in rep. */
static void post(const char *path, const char *token, const char *body, struct ssfx_reply *rep)
{
	ssfx_call(0, "POST", path, token, body, body ? strlen(body) : 0, NULL, rep);
}

static void verify(const struct ssfx_reply *rep, X509 *root, const char *dev_hex, int want,
                   uint32_t want_caps)
{
	struct img_trust trust;
	struct img_capability c;
	uint8_t id[IMG_CAP_DEVICE_ID_LEN];
	char why[200] = "";

	assert_int_equal(sph_hex_decode(dev_hex, id, sizeof(id)), 0);
	memset(&trust, 0, sizeof(trust));
	trust.root_cert = root;
	trust.time_policy = IMG_TIME_NOW;
	assert_int_equal(img_cap_verify((const uint8_t *)rep->body, rep->len, &trust, id, &c, why,
	                                sizeof(why)),
	                 want);
	if (want == 0)
		assert_int_equal(c.caps, want_caps);
}

static void test_issue(void **state)
{
	char reader[SS_TOKEN_LEN + 1], contrib[SS_TOKEN_LEN + 1], bob[SS_TOKEN_LEN + 1];
	char dev[129], other[129], devb[129], tb[64], path[300];
	const char *ta = fx.init.tenant.id;
	struct ssfx_reply rep;
	json_t *j = NULL, *ev;
	X509 *root;
	size_t n = 0;

	(void)state;
	add_user(ta, "rita", "Reader", reader);
	add_user(ta, "cora", "Contributor", contrib);
	assert_int_equal(
	        ssfx_req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
	        201);
	snprintf(tb, sizeof(tb), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tb);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"bob\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(bob, sizeof(bob), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	ssfx_device_id(dev, 1);
	ssfx_device_id(other, 2);
	ssfx_device_id(devb, 3);
	claim(ta, fx.init.admin_token, dev);
	claim(tb, bob, devb);

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", ta, dev);
	/* a Reader cannot issue; bad bodies 400 */
	ssfx_expect(403, "forbidden", "POST", path, reader,
	            "{\"capabilities\":[\"appDevelopment\"]}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"capabilities\":[]}");
	ssfx_expect(400, "bad_request", "POST", path, contrib, "{\"capabilities\":[\"root\"]}");
	ssfx_expect(400, "bad_request", "POST", path, contrib,
	            "{\"capabilities\":[\"appDevelopment\",\"appDevelopment\"]}");
	ssfx_expect(400, "bad_request", "POST", path, contrib,
	            "{\"capabilities\":[\"appDevelopment\"],\"days\":0}");
	/* another tenant's device, an unclaimed one, a malformed id: 404 */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", ta, devb);
	ssfx_expect(404, "not_found", "POST", path, contrib,
	            "{\"capabilities\":[\"appDevelopment\"]}");
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", tb, dev);
	ssfx_expect(404, "not_found", "POST", path, bob, "{\"capabilities\":[\"appDevelopment\"]}");
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", ta, other);
	ssfx_expect(404, "not_found", "POST", path, contrib,
	            "{\"capabilities\":[\"appDevelopment\"]}");
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/xyz/capabilities", ta);
	ssfx_expect(404, "not_found", "POST", path, contrib,
	            "{\"capabilities\":[\"appDevelopment\"]}");

	/* a Contributor issues: the file verifies for that device only */
	root = image_root(ta, reader);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", ta, dev);
	post(path, contrib, "{\"capabilities\":[\"fieldServicing\",\"appDevelopment\"],\"days\":7}",
	     &rep);
	assert_int_equal(rep.status, 201);
	assert_string_equal(rep.ctype, "application/cose");
	verify(&rep, root, dev, 0, IMG_CAP_MASK_ALL);
	verify(&rep, root, other, SPH_ERR_PERMISSION, 0);
	ssfx_reply_free(&rep);
	/* an Administrator too; the same signer serves the next file */
	post(path, fx.init.admin_token, "{\"capabilities\":[\"appDevelopment\"]}", &rep);
	assert_int_equal(rep.status, 201);
	verify(&rep, root, dev, 0, 1u << IMG_CAP_APP_DEVELOPMENT);
	ssfx_reply_free(&rep);
	X509_free(root);
	/* B's root does not accept A's file */
	root = image_root(tb, bob);
	post(path, contrib, "{\"capabilities\":[\"appDevelopment\"]}", &rep);
	assert_int_equal(rep.status, 201);
	verify(&rep, root, dev, SPH_ERR_AUTH, 0);
	ssfx_reply_free(&rep);
	X509_free(root);

	/* audited: capability.issue (3), capability.signer (1) */
	snprintf(path, sizeof(path), "/v1/tenants/%s/audit", ta);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	json_t *evs = json_object_get(j, "events");
	size_t cs = 0, i;
	json_array_foreach(evs, i, ev)
	{
		const char *a = json_string_value(json_object_get(ev, "action"));
		if (a && strcmp(a, "capability.issue") == 0) {
			n++;
			assert_string_equal(ssfx_jstr(ev, "target"), dev);
		}
		if (a && strcmp(a, "capability.signer") == 0)
			cs++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(cs, 1);
	json_decref(j);
}

/* The device side: a provisioned device with the tenant image root as its
 * tenant root installs the downloaded file; a file for another device is
 * refused and not stored. */
static void test_device_installs(void **state)
{
	static const uint8_t phash[32] = {1, 2, 3};
	char *tmp = tu_mkdtemp(), *dir = tu_path(tmp, "dev"), dev[129], path[300];
	char contrib[SS_TOKEN_LEN + 1], why[256];
	const char *ta = fx.init.tenant.id;
	struct boot_device *d = NULL;
	struct img_capability got;
	struct ssfx_reply rep, wrong;
	uint8_t pub[ROT_PUB_LEN];
	uint32_t mask = 99;
	X509 *root;

	(void)state;
	add_user(ta, "carl", "Contributor", contrib);
	root = image_root(ta, contrib);
	assert_int_equal(boot_provision(dir, NULL, ROT_LC_PRODUCTION, NULL, phash), 0);
	assert_int_equal(boot_set_tenant_root(dir, root), 0);
	assert_int_equal(boot_open(dir, NULL, &d), 0);
	assert_int_equal(rot_pubkey(boot_rot(d), ROT_KEY_IDENTITY, pub), 0);
	assert_int_equal(sph_hex_encode(pub + 1, IMG_CAP_DEVICE_ID_LEN, dev, sizeof(dev)), 0);
	claim(ta, fx.init.admin_token, dev);

	/* enable-development: the file comes back with the mode */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-development", ta, dev);
	post(path, contrib, NULL, &rep);
	assert_int_equal(rep.status, 201);
	assert_string_equal(rep.ctype, "application/cose");
	/* a file for another device (seed 1 of test_issue) is refused, nothing stored */
	{
		char p2[300], od[129];
		ssfx_device_id(od, 1);
		snprintf(p2, sizeof(p2), "/v1/tenants/%s/devices/%s/capabilities", ta, od);
		post(p2, fx.init.admin_token, "{\"capabilities\":[\"appDevelopment\"]}", &wrong);
	}
	assert_int_equal(wrong.status, 201);
	assert_int_equal(boot_capability_install(d, (const uint8_t *)wrong.body, wrong.len, NULL,
	                                         why, sizeof(why)),
	                 SPH_ERR_PERMISSION);
	assert_int_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(boot_capability_install(d, (const uint8_t *)rep.body, rep.len, &got, why,
	                                         sizeof(why)),
	                 0);
	assert_int_equal(got.caps, 1u << IMG_CAP_APP_DEVELOPMENT);
	assert_string_equal(got.tenant, fx.init.tenant.name);
	assert_int_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 1u << IMG_CAP_APP_DEVELOPMENT);
	ssfx_reply_free(&rep);
	ssfx_reply_free(&wrong);
	boot_close(d);
	X509_free(root);
	tu_rmtree(tmp);
	free(dir);
	free(tmp);
}

static void expect_status(const char *ta, const char *dev, const char *mode, const char *why)
{
	char path[300];
	json_t *j = NULL;

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", ta, dev);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "mode"), mode);
	if (strcmp(ssfx_jstr(j, "update_status"), why) != 0)
		fail_msg("update_status \"%s\", want \"%s\"", ssfx_jstr(j, "update_status"), why);
	json_decref(j);
}

static void test_modes(void **state)
{
	char reader[SS_TOKEN_LEN + 1], contrib[SS_TOKEN_LEN + 1], dev[129], path[300], body[200];
	char pid[64], gid[64];
	const char *ta = fx.init.tenant.id;
	struct ssfx_reply rep;
	struct ss_device d;
	struct ss_target t;
	bool side = false;
	json_t *j = NULL;

	(void)state;
	add_user(ta, "rory", "Reader", reader);
	add_user(ta, "cleo", "Contributor", contrib);
	ssfx_device_id(dev, 40);
	claim(ta, fx.init.admin_token, dev);
	expect_status(ta, dev, "production", "not in a device group: no updates");

	/* a group: UpdateAll, then the policies */
	snprintf(path, sizeof(path), "/v1/tenants/%s/products", ta);
	assert_int_equal(
	        ssfx_req("POST", path, contrib, "{\"name\":\"Lamp\",\"default_groups\":false}", &j),
	        201);
	snprintf(pid, sizeof(pid), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", ta, pid);
	assert_int_equal(ssfx_req("POST", path, contrib, "{\"name\":\"Field\"}", &j), 201);
	snprintf(gid, sizeof(gid), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/device-group", ta, dev);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", gid);
	ssfx_expect(200, NULL, "PUT", path, contrib, body);
	expect_status(ta, dev, "production",
	              "no check-in yet: updates are applied when the device checks in");
	snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s", ta, gid);
	ssfx_expect(200, NULL, "PATCH", path, contrib,
	            "{\"update_policy\":\"No3rdPartyAppUpdates\"}");
	expect_status(ta, dev, "production",
	              "the device group's update policy is No3rdPartyAppUpdates: OS updates only");
	ssfx_expect(200, NULL, "PATCH", path, contrib, "{\"update_policy\":\"NoUpdates\"}");
	expect_status(ta, dev, "production",
	              "the device group's update policy is NoUpdates: no updates are applied");
	ssfx_expect(200, NULL, "PATCH", path, contrib, "{\"update_policy\":\"UpdateAll\"}");

	/* development: Reader 403, Contributor 201 */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-development", ta, dev);
	ssfx_expect(403, "forbidden", "POST", path, reader, NULL);
	post(path, contrib, NULL, &rep);
	assert_int_equal(rep.status, 201);
	ssfx_reply_free(&rep);
	expect_status(ta, dev, "development",
	              "development mode: applications are sideloaded, only OS updates are applied");

	/* the device's target keeps OS entries only */
	assert_int_equal(ss_store_device_get(fx.svc->st, ta, dev, &d), 0);
	memset(&t, 0, sizeof(t));
	t.n = 3;
	t.images[0].is_os = true;
	snprintf(t.images[0].version, sizeof(t.images[0].version), "os");
	t.images[1].is_os = false;
	t.images[2].is_os = true;
	snprintf(t.images[2].version, sizeof(t.images[2].version), "os2");
	snprintf(t.deployment_id, sizeof(t.deployment_id), "x");
	assert_int_equal(ss_device_target_mode(fx.svc, &d, &t, &side), 0);
	assert_true(side);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.images[1].version, "os2");
	assert_string_equal(t.deployment_id, "");

	/* cloud-test: applications from deployments again, the reply says to remove the file */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-cloud-test", ta, dev);
	ssfx_expect(403, "forbidden", "POST", path, reader, NULL);
	assert_int_equal(ssfx_req("POST", path, contrib, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "mode"), "cloud-test");
	assert_non_null(strstr(ssfx_jstr(j, "message"), "remove"));
	json_decref(j);
	expect_status(ta, dev, "cloud-test",
	              "no check-in yet: updates are applied when the device checks in");
	memset(&t, 0, sizeof(t));
	t.n = 2;
	t.images[0].is_os = true;
	assert_int_equal(ss_device_target_mode(fx.svc, &d, &t, &side), 0);
	assert_false(side);
	assert_int_equal(t.n, 2);

	/* another tenant's device id: 404 */
	ssfx_device_id(dev, 41);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-cloud-test", ta, dev);
	ssfx_expect(404, "not_found", "POST", path, contrib, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_issue),
	        cmocka_unit_test(test_device_installs),
	        cmocka_unit_test(test_modes),
	};
	return cmocka_run_group_tests(tests, ssfx_setup, ssfx_teardown);
}
