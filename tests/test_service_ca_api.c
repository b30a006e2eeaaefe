/*
 * The tenant CA served (docs/api-ca.md) end to end: a real sphere-ss over
 * real TLS, driven with libcurl. A tenant has an Active CA from its creation;
 * the downloaded chain and trust bundle verify issued device certificates
 * with `openssl verify`; rollover publishes a successor beside the current
 * CA, hands issuing over, and drops a revoked CA from the bundle; outsiders
 * see nothing, Readers change nothing; the database holds no plaintext key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include "service/ss_internal.h"
#include "ss_fixture.h"
#include "testutil.h"

/* GETs path into the file name (under tmp); returns the status. */
static long download(const char *path, const char *token, const char *name, const char *want_ct)
{
	struct ssfx_reply r;
	char *file = tu_path(fx.tmp, name);
	long st;
	FILE *f;

	ssfx_call(0, "GET", path, token, NULL, 0, NULL, &r);
	st = r.status;
	if (st == 200) {
		f = fopen(file, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(r.body, 1, r.len, f), r.len);
		assert_int_equal(fclose(f), 0);
		if (want_ct)
			assert_string_equal(r.ctype, want_ct);
	}
	ssfx_reply_free(&r);
	free(file);
	return st;
}

static size_t count_certs(const char *name)
{
	char *file = tu_path(fx.tmp, name);
	uint8_t *d = NULL;
	size_t len = 0, n = 0;
	const char *p;

	assert_int_equal(tu_read_file(file, &d, &len), 0);
	d = realloc(d, len + 1);
	assert_non_null(d);
	d[len] = '\0';
	for (p = (const char *)d; (p = strstr(p, "-----BEGIN CERTIFICATE-----")); p++)
		n++;
	free(d);
	free(file);
	return n;
}

/* A fresh device key's X || Y. */
static void device_pub(uint8_t pub[64])
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pt[65];
	size_t n = 0;

	assert_non_null(k);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
	memcpy(pub, pt + 1, 64);
	EVP_PKEY_free(k);
}

/* Issues a device certificate with tenant's Active CA into a PEM file. */
static void issue(const char *tenant, const char *name)
{
	uint8_t pub[64], *der = NULL;
	const uint8_t *p;
	char *file = tu_path(fx.tmp, name);
	size_t len = 0;
	X509 *x;
	FILE *f;

	device_pub(pub);
	assert_int_equal(ss_tenant_issue_device_cert(fx.svc, tenant, pub, 0, &der, &len), 0);
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	free(der);
	free(file);
}

/* `openssl verify -purpose sslclient -CAfile bundle dev`: its exit status. */
static int verify(const char *bundle, const char *dev)
{
	char cmd[2200];
	int st;

	snprintf(cmd, sizeof(cmd),
	         "openssl verify -purpose sslclient -CAfile '%s/%s' '%s/%s' >/dev/null 2>&1",
	         fx.tmp, bundle, fx.tmp, dev);
	st = system(cmd);
	return st == 0 ? 0 : 1;
}

/* The tenant's CAs (JSON array, caller decrefs). */
static json_t *ca_list(const char *tenant, const char *token)
{
	char path[200];
	json_t *j = NULL, *a;

	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", tenant);
	assert_int_equal(ssfx_req("GET", path, token, NULL, &j), 200);
	a = json_incref(json_object_get(j, "ca_certificates"));
	assert_true(json_is_array(a));
	json_decref(j);
	return a;
}

static const char *state_of(json_t *list, const char *id)
{
	for (size_t i = 0; i < json_array_size(list); i++)
		if (strcmp(ssfx_jstr(json_array_get(list, i), "id"), id) == 0)
			return ssfx_jstr(json_array_get(list, i), "state");
	return "absent";
}

static void test_active_from_creation(void **state)
{
	const char *tok = fx.init.admin_token;
	char path[200];
	json_t *l, *j = NULL;

	(void)state;
	/* The tenant init made. */
	l = ca_list(fx.init.tenant.id, tok);
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(ssfx_jstr(json_array_get(l, 0), "state"), "Active");
	assert_non_null(
	        strstr(ssfx_jstr(json_array_get(l, 0), "device_subject"), fx.init.tenant.id));
	assert_non_null(strstr(ssfx_jstr(json_array_get(l, 0), "root_subject"), "root"));
	assert_true(json_integer_value(json_object_get(json_array_get(l, 0), "not_after")) >
	            json_integer_value(json_object_get(json_array_get(l, 0), "created")));
	json_decref(l);
	/* A tenant created through the API. */
	assert_int_equal(ssfx_req("POST", "/v1/tenants", tok, "{\"name\":\"beta\"}", &j), 201);
	l = ca_list(ssfx_jstr(j, "id"), tok);
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(ssfx_jstr(json_array_get(l, 0), "state"), "Active");
	json_decref(l);
	json_decref(j);
	/* No token: 401. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", fx.init.tenant.id);
	ssfx_expect(401, NULL, "GET", path, NULL, NULL);
}

static void test_chain_verifies(void **state)
{
	const char *tok = fx.init.admin_token, *t = fx.init.tenant.id;
	char path[300];
	json_t *l = ca_list(t, tok);
	const char *id = ssfx_jstr(json_array_get(l, 0), "id");
	struct ssfx_reply b;
	const uint8_t *p;
	PKCS7 *p7;

	(void)state;
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, id);
	assert_int_equal(download(path, tok, "chain.pem", "application/x-pem-file"), 200);
	assert_int_equal(count_certs("chain.pem"), 2);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain?format=pem", t, id);
	assert_int_equal(download(path, tok, "chain2.pem", "application/x-pem-file"), 200);
	issue(t, "dev.pem");
	assert_int_equal(verify("chain.pem", "dev.pem"), 0);
	/* The trust bundle. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/chain", t);
	assert_int_equal(download(path, tok, "bundle.pem", "application/x-pem-file"), 200);
	assert_int_equal(verify("bundle.pem", "dev.pem"), 0);
	/* PKCS#7: the same two certificates. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain?format=p7", t, id);
	ssfx_call(0, "GET", path, tok, NULL, 0, NULL, &b);
	assert_int_equal(b.status, 200);
	assert_string_equal(b.ctype, "application/pkcs7-mime");
	p = (const uint8_t *)b.body;
	p7 = d2i_PKCS7(NULL, &p, (long)b.len);
	assert_non_null(p7);
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
	PKCS7_free(p7);
	ssfx_reply_free(&b);
	/* Bad format, unknown and malformed CA ids. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain?format=der", t, id);
	ssfx_expect(400, NULL, "GET", path, tok, NULL);
	snprintf(path, sizeof(path),
	         "/v1/tenants/%s/ca-certificates/00000000-0000-4000-8000-000000000000/chain", t);
	ssfx_expect(404, NULL, "GET", path, tok, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/nope/chain", t);
	ssfx_expect(404, NULL, "GET", path, tok, NULL);
	/* A certificate of another tenant's CA does not verify against this chain. */
	{
		json_t *j = NULL;
		assert_int_equal(ssfx_req("POST", "/v1/tenants", tok, "{\"name\":\"gamma\"}", &j),
		                 201);
		issue(ssfx_jstr(j, "id"), "other.pem");
		assert_int_equal(verify("bundle.pem", "other.pem"), 1);
		json_decref(j);
	}
	json_decref(l);
}

static void test_rollover(void **state)
{
	const char *tok = fx.init.admin_token, *t = fx.init.tenant.id;
	char path[300], bpath[200], old_id[64], new_id[64];
	json_t *l = ca_list(t, tok), *j = NULL;

	(void)state;
	snprintf(old_id, sizeof(old_id), "%s", ssfx_jstr(json_array_get(l, 0), "id"));
	json_decref(l);
	snprintf(bpath, sizeof(bpath), "/v1/tenants/%s/ca-certificates/chain", t);
	issue(t, "old-dev.pem");
	/* A successor: Inactive, published beside the current CA. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", t);
	assert_int_equal(ssfx_req("POST", path, tok, NULL, &j), 201);
	assert_string_equal(ssfx_jstr(j, "state"), "Inactive");
	snprintf(new_id, sizeof(new_id), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	l = ca_list(t, tok);
	assert_string_equal(ssfx_jstr(json_array_get(l, 0), "id"), new_id); /* newest first */
	assert_string_equal(state_of(l, old_id), "Active");
	json_decref(l);
	assert_int_equal(download(bpath, tok, "bundle2.pem", NULL), 200);
	assert_int_equal(count_certs("bundle2.pem"), 4);
	assert_int_equal(verify("bundle2.pem", "old-dev.pem"), 0);
	/* Certificates still come from the old CA until the successor is activated. */
	issue(t, "mid-dev.pem");
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, old_id);
	assert_int_equal(download(path, tok, "old-chain.pem", NULL), 200);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, new_id);
	assert_int_equal(download(path, tok, "new-chain.pem", NULL), 200);
	assert_int_equal(verify("old-chain.pem", "mid-dev.pem"), 0);
	assert_int_equal(verify("new-chain.pem", "mid-dev.pem"), 1);
	/* Activate the successor: the old one becomes Inactive. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", t, new_id);
	assert_int_equal(ssfx_req("POST", path, tok, "{\"state\":\"Active\"}", &j), 200);
	assert_string_equal(ssfx_jstr(j, "state"), "Active");
	json_decref(j);
	l = ca_list(t, tok);
	assert_string_equal(state_of(l, old_id), "Inactive");
	assert_string_equal(state_of(l, new_id), "Active");
	json_decref(l);
	issue(t, "new-dev.pem");
	assert_int_equal(verify("new-chain.pem", "new-dev.pem"), 0);
	assert_int_equal(verify("old-chain.pem", "new-dev.pem"), 1);
	/* The Active CA cannot be revoked; a bad state word is 400. */
	ssfx_expect(409, NULL, "POST", path, tok, "{\"state\":\"Revoked\"}");
	ssfx_expect(400, NULL, "POST", path, tok, "{\"state\":\"Inactive\"}");
	ssfx_expect(400, NULL, "POST", path, tok, "{}");
	/* Revoke the old one: gone from the bundle, and its certificates with it. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", t, old_id);
	assert_int_equal(ssfx_req("POST", path, tok, "{\"state\":\"Revoked\"}", &j), 200);
	assert_string_equal(ssfx_jstr(j, "state"), "Revoked");
	json_decref(j);
	assert_int_equal(download(bpath, tok, "bundle3.pem", NULL), 200);
	assert_int_equal(count_certs("bundle3.pem"), 2);
	assert_int_equal(verify("bundle3.pem", "new-dev.pem"), 0);
	assert_int_equal(verify("bundle3.pem", "old-dev.pem"), 1);
	/* Revoked is final. */
	ssfx_expect(409, NULL, "POST", path, tok, "{\"state\":\"Active\"}");
	/* Audited. */
	{
		size_t creates = 0, states = 0;
		json_t *ev;
		snprintf(path, sizeof(path), "/v1/tenants/%s/audit?limit=1000", t);
		assert_int_equal(ssfx_req("GET", path, tok, NULL, &j), 200);
		ev = json_object_get(j, "events");
		for (size_t i = 0; i < json_array_size(ev); i++) {
			const char *a = ssfx_jstr(json_array_get(ev, i), "action");
			creates += strcmp(a, "ca.create") == 0;
			states += strcmp(a, "ca.state") == 0;
		}
		assert_int_equal(creates, 2);
		assert_int_equal(states, 3); /* new Active, old Inactive, old Revoked */
		json_decref(j);
	}
}

static void test_roles_and_isolation(void **state)
{
	const char *alice = fx.init.admin_token, *t = fx.init.tenant.id;
	char bob[SS_TOKEN_LEN + 1], carol[SS_TOKEN_LEN + 1], path[300], bobs[64], id[64];
	char bobs_ca[64];
	json_t *j = NULL, *l;

	(void)state;
	l = ca_list(t, alice);
	snprintf(id, sizeof(id), "%s", ssfx_jstr(json_array_get(l, 0), "id"));
	json_decref(l);
	/* bob: Reader of acme, Administrator of his own tenant. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", t);
	assert_int_equal(
	        ssfx_req("POST", path, alice, "{\"name\":\"bob\",\"role\":\"Reader\"}", &j), 201);
	snprintf(bob, sizeof(bob), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	assert_int_equal(ssfx_req("POST", "/v1/tenants", bob, "{\"name\":\"bobs\"}", &j), 201);
	snprintf(bobs, sizeof(bobs), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	/* carol: Administrator of bob's tenant only. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", bobs);
	assert_int_equal(
	        ssfx_req("POST", path, bob, "{\"name\":\"carol\",\"role\":\"Administrator\"}", &j),
	        201);
	snprintf(carol, sizeof(carol), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	l = ca_list(bobs, carol);
	snprintf(bobs_ca, sizeof(bobs_ca), "%s", ssfx_jstr(json_array_get(l, 0), "id"));
	json_decref(l);

	/* The Reader reads, and changes nothing. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", t);
	ssfx_expect(200, NULL, "GET", path, bob, NULL);
	ssfx_expect(403, NULL, "POST", path, bob, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/chain", t);
	ssfx_expect(200, NULL, "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, id);
	ssfx_expect(200, NULL, "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", t, id);
	ssfx_expect(403, NULL, "POST", path, bob, "{\"state\":\"Revoked\"}");

	/* Another tenant's Administrator: 404 for everything. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", t);
	ssfx_expect(404, NULL, "GET", path, carol, NULL);
	ssfx_expect(404, NULL, "POST", path, carol, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/chain", t);
	ssfx_expect(404, NULL, "GET", path, carol, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, id);
	ssfx_expect(404, NULL, "GET", path, carol, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", t, id);
	ssfx_expect(404, NULL, "POST", path, carol, "{\"state\":\"Active\"}");
	/* ... and her own tenant's path does not reach acme's CA. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", bobs, id);
	ssfx_expect(404, NULL, "GET", path, carol, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", bobs, id);
	ssfx_expect(404, NULL, "POST", path, carol, "{\"state\":\"Active\"}");
	/* Nor alice bob's tenant's CA through acme. */
	snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain", t, bobs_ca);
	ssfx_expect(404, NULL, "GET", path, alice, NULL);
}

/* Fails if blob parses as a private key, whole or after the GCM nonce. */
static void assert_not_plain_key(const uint8_t *blob, int len)
{
	for (int off = 0; off <= 12 && off < len; off += 12) {
		const uint8_t *p = blob + off;
		PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len - off);
		EVP_PKEY *k;
		assert_null(p8);
		p = blob + off;
		k = d2i_AutoPrivateKey(NULL, &p, len - off);
		assert_null(k);
	}
}

static void test_no_plaintext_key(void **state)
{
	char *db_path = tu_path(fx.data, "sphere.db");
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rows = 0;

	(void)state;
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "SELECT root_key, device_key FROM tenant_cas", -1, &s, NULL),
	        SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		for (int c = 0; c < 2; c++) {
			int len = sqlite3_column_bytes(s, c);
			assert_true(len > 28);
			assert_not_plain_key(sqlite3_column_blob(s, c), len);
		}
		rows++;
	}
	assert_true(rows >= 2);
	sqlite3_finalize(s);
	sqlite3_close(db);
	free(db_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_active_from_creation),
	        cmocka_unit_test(test_chain_verifies),
	        cmocka_unit_test(test_rollover),
	        cmocka_unit_test(test_roles_and_isolation),
	        cmocka_unit_test(test_no_plaintext_key),
	};
	return cmocka_run_group_tests(tests, ssfx_setup, ssfx_teardown);
}
