/*
 * ss_api_registration: device registrations (docs/api.md §4.13). The
 * platform operator records, at provisioning, which RoT attestation key
 * belongs to which device id; check-in will verify evidence with it.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "ss_http.h"
#include "ss_internal.h"

/* True when pub (X || Y) is a P-256 public key: on the curve, not the point
 * at infinity (OpenSSL's full public key check). */
static bool ss_reg_p256_ok(const uint8_t pub[SS_ATTEST_KEY_LEN])
{
	uint8_t pt[1 + SS_ATTEST_KEY_LEN];
	OSSL_PARAM params[] = {
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
	        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)), OSSL_PARAM_END};
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), *chk = NULL;
	EVP_PKEY *k = NULL;
	bool ok = false;

	pt[0] = 0x04;
	memcpy(pt + 1, pub, SS_ATTEST_KEY_LEN);
	if (!c || EVP_PKEY_fromdata_init(c) != 1 ||
	    EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	ok = chk && EVP_PKEY_public_check(chk) == 1;
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ok;
}

/* The operator only: 403 for anyone else. */
static bool ss_reg_operator(struct ss_req *r, const struct ss_user *u)
{
	if (!u->is_operator) {
		ss_reply_error(r, 403, "forbidden", "the platform operator's token is required");
		return false;
	}
	return true;
}

static json_t *ss_reg_json(const struct ss_registration *g)
{
	char hex[2 * SS_ATTEST_KEY_LEN + 1];

	if (sph_hex_encode(g->attestation_key, SS_ATTEST_KEY_LEN, hex, sizeof(hex)) != 0)
		return NULL;
	return json_pack("{s:s, s:s, s:I, s:s}", "device_id", g->device_id, "attestation_key", hex,
	                 "registered", (json_int_t)g->registered, "registered_by",
	                 g->registered_by);
}

/* Checks the body's ids. Returns false after a 400 reply. */
static bool ss_reg_check(struct ss_req *r, const char *id, const char *hex,
                         uint8_t key[SS_ATTEST_KEY_LEN])
{
	uint8_t idkey[SS_ATTEST_KEY_LEN];
	bool ok = false;

	if (strlen(id) != SS_DEVICE_ID_LEN || strspn(id, "0123456789abcdef") != SS_DEVICE_ID_LEN ||
	    sph_hex_decode(id, idkey, sizeof(idkey)) != 0 || !ss_reg_p256_ok(idkey)) {
		ss_reply_error(
		        r, 400, "bad_request",
		        "\"device_id\": 128 lowercase hex digits, a P-256 public key (X||Y)");
		goto out;
	}
	if (strlen(hex) != 2 * SS_ATTEST_KEY_LEN ||
	    sph_hex_decode(hex, key, SS_ATTEST_KEY_LEN) != 0 || !ss_reg_p256_ok(key)) {
		ss_reply_error(r, 400, "bad_request",
		               "\"attestation_key\": 128 hex digits, a P-256 public key (X||Y)");
		goto out;
	}
	if (memcmp(idkey, key, SS_ATTEST_KEY_LEN) == 0) {
		ss_reply_error(r, 400, "bad_request",
		               "\"attestation_key\": the identity key (the device id) is not an "
		               "attestation key");
		goto out;
	}
	ok = true;
out:
	OPENSSL_cleanse(idkey, sizeof(idkey));
	return ok;
}

static void ss_h_registration_add(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_registration g;
	struct ss_user u;
	uint8_t key[SS_ATTEST_KEY_LEN];
	json_t *body = NULL;
	const char *id, *hex;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL) || !ss_reg_operator(r, &u))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	id = ss_api_body_str(r, body, "device_id");
	hex = id ? ss_api_body_str(r, body, "attestation_key") : NULL;
	if (!hex || !ss_reg_check(r, id, hex, key))
		goto out;
	rc = ss_store_registration_add(s->st, id, key, u.id, &g);
	if (rc == 0) {
		ss_metric_inc(s->http, "sphere_devices_registered_total", "");
		ss_reply_json(r, 201, ss_reg_json(&g));
	} else if (rc == SPH_ERR_STATE) {
		ss_reply_error(r, 409, "conflict",
		               "the device is registered already, with another attestation key");
	} else if (rc == SPH_ERR_DUPLICATE) {
		ss_reply_error(r, 409, "conflict",
		               "the device, or its attestation key, is registered already");
	} else {
		ss_api_reply_store(r, rc, "device registration");
	}
out:
	json_decref(body);
}

static void ss_h_registration_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_registration g;
	struct ss_user u;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL) || !ss_reg_operator(r, &u))
		return;
	rc = ss_store_registration_get(s->st, ss_req_param(r, "device"), &g);
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0)
		ss_reply_json(r, 200, ss_reg_json(&g));
	else
		ss_api_reply_store(r, rc, "device registration");
}

int ss_api_registration_routes(struct ss_service *s)
{
	int rc = ss_http_route(s->http, "POST", "/v1/device-registrations", ss_h_registration_add,
	                       s);

	if (rc == 0)
		rc = ss_http_route(s->http, "GET", "/v1/device-registrations/{device}",
		                   ss_h_registration_get, s);
	return rc;
}
