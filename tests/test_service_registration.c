/*
 * Device registrations (docs/api.md §4.13) end to end: a real sphere-ss over
 * real TLS, driven with libcurl. Attacked: a tenant Administrator
 * registering or reading (403), no token (401), malformed and off-curve keys,
 * the identity key offered as the attestation key (400), a device registered
 * twice with the same key or another one, and a key registered for a second
 * device (409). Checked: the registration reads back, shows as "registered"
 * in the tenant's device show and list, and the record `sphere-device
 * registration` prints uploads as is and matches `sphere-device status`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "service/service.h"
#include "ss_fixture.h"
#include "testutil.h"

#define REG "/v1/device-registrations"

/* A fresh P-256 public key X||Y as 128 lowercase hex digits. */
static void p256_hex(char out[129])
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pub[65];
	size_t len = 0;

	assert_non_null(k);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len),
	        1);
	assert_int_equal(len, 65);
	assert_int_equal(pub[0], 0x04);
	assert_int_equal(sph_hex_encode(pub + 1, 64, out, 129), 0);
	EVP_PKEY_free(k);
}

static char *reg_body(const char *dev, const char *key)
{
	char *b = NULL;

	assert_true(asprintf(&b, "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", dev, key) >
	            0);
	return b;
}

/* POSTs a registration as token, wants status (and the error word). */
static void reg_expect(long status, const char *err, const char *token, const char *dev,
                       const char *key)
{
	char *b = reg_body(dev, key);

	ssfx_expect(status, err, "POST", REG, token, b);
	free(b);
}

static void test_operator_only(void **state)
{
	char dev[129], key[129], path[300];

	(void)state;
	p256_hex(dev);
	p256_hex(key);
	/* a tenant Administrator is not the platform operator */
	reg_expect(403, "forbidden", fx.init.admin_token, dev, key);
	reg_expect(401, "unauthorized", NULL, dev, key);
	snprintf(path, sizeof(path), REG "/%s", dev);
	ssfx_expect(403, "forbidden", "GET", path, fx.init.admin_token, NULL);
	ssfx_expect(401, "unauthorized", "GET", path, NULL, NULL);
	/* nothing was registered by the refused attempts */
	ssfx_expect(404, "not_found", "GET", path, fx.init.operator_token, NULL);
}

static void test_bad_keys(void **state)
{
	const char *op = fx.init.operator_token;
	char dev[129], key[129], bad[129], upper[129], path[300];
	char *b;

	(void)state;
	p256_hex(dev);
	p256_hex(key);
	/* not on the curve: Y changed in its last digit */
	memcpy(bad, key, sizeof(bad));
	bad[127] = bad[127] == '0' ? '1' : '0';
	reg_expect(400, "bad_request", op, dev, bad);
	/* the point at infinity, all zeros; all ones (coordinates >= p) */
	memset(bad, '0', 128);
	reg_expect(400, "bad_request", op, dev, bad);
	memset(bad, 'f', 128);
	reg_expect(400, "bad_request", op, dev, bad);
	/* short, long, not hex */
	bad[127] = '\0';
	reg_expect(400, "bad_request", op, dev, bad);
	b = reg_body(dev, "zz");
	ssfx_expect(400, "bad_request", "POST", REG, op, b);
	free(b);
	memcpy(bad, key, sizeof(bad));
	bad[5] = 'g';
	reg_expect(400, "bad_request", op, dev, bad);
	/* the identity key is not an attestation key */
	reg_expect(400, "bad_request", op, dev, dev);
	/* a device id that is no P-256 key, or not lowercase */
	ssfx_device_id(bad, 3);
	reg_expect(400, "bad_request", op, bad, key);
	memcpy(upper, dev, sizeof(upper));
	for (int i = 0; i < 128; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 'a' + 'A');
	reg_expect(400, "bad_request", op, upper, key);
	/* missing members, wrong types, not JSON */
	ssfx_expect(400, "bad_request", "POST", REG, op, "{\"device_id\":\"x\"}");
	ssfx_expect(400, "bad_request", "POST", REG, op, "{\"attestation_key\":\"x\"}");
	ssfx_expect(400, "bad_request", "POST", REG, op, "{\"device_id\":1,\"attestation_key\":2}");
	ssfx_expect(400, "bad_request", "POST", REG, op, "[");
	/* none of it was stored */
	snprintf(path, sizeof(path), REG "/%s", dev);
	ssfx_expect(404, "not_found", "GET", path, op, NULL);
	ssfx_expect(404, "not_found", "GET", REG "/nothex", op, NULL);
}

static void test_registered_once(void **state)
{
	const char *op = fx.init.operator_token;
	char dev[129], dev2[129], key[129], key2[129], path[300];
	json_t *j = NULL;
	char *b;

	(void)state;
	p256_hex(dev);
	p256_hex(dev2);
	p256_hex(key);
	p256_hex(key2);
	b = reg_body(dev, key);
	assert_int_equal(ssfx_req("POST", REG, op, b, &j), 201);
	free(b);
	assert_string_equal(ssfx_jstr(j, "device_id"), dev);
	assert_string_equal(ssfx_jstr(j, "attestation_key"), key);
	assert_string_equal(ssfx_jstr(j, "registered_by"), fx.init.operator_user.id);
	assert_true(json_integer_value(json_object_get(j, "registered")) > 0);
	json_decref(j);

	/* the same again, another key for it, its key for another device: 409 */
	reg_expect(409, "conflict", op, dev, key);
	reg_expect(409, "conflict", op, dev, key2);
	reg_expect(409, "conflict", op, dev2, key);

	/* it reads back unchanged; the other device was not registered */
	snprintf(path, sizeof(path), REG "/%s", dev);
	assert_int_equal(ssfx_req("GET", path, op, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "attestation_key"), key);
	json_decref(j);
	snprintf(path, sizeof(path), REG "/%s", dev2);
	ssfx_expect(404, "not_found", "GET", path, op, NULL);
}

/* The device's "registered" as the tenant sees it (show, then list). */
static bool tenant_sees_registered(const char *dev)
{
	char path[300];
	json_t *j = NULL, *ds;
	bool show, listed = false, found = false;

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, dev);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_true(json_is_boolean(json_object_get(j, "registered")));
	show = json_is_true(json_object_get(j, "registered"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices?limit=1000", fx.init.tenant.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	ds = json_object_get(j, "devices");
	for (size_t i = 0; i < json_array_size(ds); i++) {
		json_t *d = json_array_get(ds, i);
		if (strcmp(ssfx_jstr(d, "id"), dev) == 0) {
			found = true;
			listed = json_is_true(json_object_get(d, "registered"));
		}
	}
	json_decref(j);
	assert_true(found);
	assert_int_equal(show, listed);
	return show;
}

static void test_visible_in_device_show(void **state)
{
	char dev[129], key[129], path[300], body[200];
	json_t *j = NULL;

	(void)state;
	p256_hex(dev);
	p256_hex(key);
	/* an unregistered device is still claimed, and shows as such */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token, body, &j), 201);
	assert_false(json_is_true(json_object_get(j, "registered")));
	json_decref(j);
	assert_false(tenant_sees_registered(dev));
	/* registered afterwards: the tenant sees it, not the key */
	reg_expect(201, NULL, fx.init.operator_token, dev, key);
	assert_true(tenant_sees_registered(dev));
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, dev);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_null(json_object_get(j, "attestation_key"));
	json_decref(j);
}

#define DEVICE(dir, ...) tu_run("SPHERE_DEVICE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})

/* `sphere-device registration` prints what the operator uploads as is. */
static void test_sphere_device_upload(void **state)
{
	char *dir = tu_mkdtemp(), path[300];
	struct tu_result r;
	json_error_t jerr;
	json_t *rec, *st, *j = NULL;
	char *out;

	(void)state;
	r = DEVICE(dir, "provision", "--dir", "dev", "--root-hash",
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	tu_expect(&r, 0, NULL);
	r = DEVICE(dir, "registration", "--dir", "dev");
	assert_int_equal(r.status, 0);
	out = strdup(r.out);
	assert_non_null(out);
	rec = json_loads(r.out, 0, &jerr);
	tu_result_free(&r);
	assert_non_null(rec);
	assert_int_equal(json_object_size(rec), 2);
	assert_int_equal(strlen(ssfx_jstr(rec, "device_id")), 128);
	assert_int_equal(strlen(ssfx_jstr(rec, "attestation_key")), 128);
	assert_string_not_equal(ssfx_jstr(rec, "device_id"), ssfx_jstr(rec, "attestation_key"));

	/* status --json shows the same two values */
	r = DEVICE(dir, "status", "--dir", "dev", "--json");
	assert_int_equal(r.status, 0);
	st = json_loads(r.out, 0, &jerr);
	tu_result_free(&r);
	assert_non_null(st);
	assert_string_equal(ssfx_jstr(st, "device_id"), ssfx_jstr(rec, "device_id"));
	assert_string_equal(ssfx_jstr(st, "attestation_key"), ssfx_jstr(rec, "attestation_key"));
	json_decref(st);

	/* uploaded byte for byte: accepted, and reads back */
	assert_int_equal(ssfx_req("POST", REG, fx.init.operator_token, out, &j), 201);
	assert_string_equal(ssfx_jstr(j, "attestation_key"), ssfx_jstr(rec, "attestation_key"));
	json_decref(j);
	ssfx_expect(409, "conflict", "POST", REG, fx.init.operator_token, out);
	snprintf(path, sizeof(path), REG "/%s", ssfx_jstr(rec, "device_id"));
	assert_int_equal(ssfx_req("GET", path, fx.init.operator_token, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "attestation_key"), ssfx_jstr(rec, "attestation_key"));
	json_decref(j);
	/* a tenant cannot upload it */
	ssfx_expect(403, "forbidden", "POST", REG, fx.init.admin_token, out);
	json_decref(rec);
	free(out);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_operator_only),
	        cmocka_unit_test(test_bad_keys),
	        cmocka_unit_test(test_registered_once),
	        cmocka_unit_test(test_visible_in_device_show),
	        cmocka_unit_test(test_sphere_device_upload),
	};
	return cmocka_run_group_tests(tests, ssfx_setup, ssfx_teardown);
}
