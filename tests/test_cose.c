/* cose: COSE_Sign1/ES256 against the COSE working group's vectors, round trips,
 * and attacks on structure, headers and signatures. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "cose/cose.h"
#include "testutil.h"

static EVP_PKEY *gen_key(const char *curve)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
	assert_non_null(k);
	return k;
}

/* Loads a vector: its message bytes, public key, external AAD, and fail flag. */
struct vector {
	uint8_t *msg;
	size_t msg_len;
	uint8_t pub[COSE_P256_PUB_LEN];
	bool p256;
	uint8_t *aad;
	size_t aad_len;
	bool fail;
};

static void load_vector(const char *name, struct vector *v)
{
	char *path = tu_data_path(name);
	json_error_t err;
	json_t *root = json_load_file(path, 0, &err);
	json_t *input, *sign0, *key, *ext;
	const char *crv;

	memset(v, 0, sizeof(*v));
	if (!root)
		fail_msg("%s: %s", path, err.text);
	input = json_object_get(root, "input");
	sign0 = json_object_get(input, "sign0");
	key = json_object_get(sign0, "key");
	crv = json_string_value(json_object_get(key, "crv"));
	assert_non_null(crv);
	v->p256 = strcmp(crv, "P-256") == 0;
	if (v->p256) {
		v->pub[0] = 0x04;
		assert_int_equal(
		        tu_b64url(json_string_value(json_object_get(key, "x")), v->pub + 1, 32),
		        32);
		assert_int_equal(
		        tu_b64url(json_string_value(json_object_get(key, "y")), v->pub + 33, 32),
		        32);
	}
	ext = json_object_get(sign0, "external");
	if (ext)
		assert_int_equal(tu_unhex(json_string_value(ext), &v->aad, &v->aad_len), 0);
	v->fail = json_is_true(json_object_get(root, "fail"));
	assert_int_equal(tu_unhex(json_string_value(
	                                  json_object_get(json_object_get(root, "output"), "cbor")),
	                          &v->msg, &v->msg_len),
	                 0);
	json_decref(root);
	free(path);
}

static int verify_vector(const char *name, bool *fail)
{
	struct vector v;
	EVP_PKEY *pub = NULL;
	int rc;

	load_vector(name, &v);
	*fail = v.fail;
	if (v.p256) {
		assert_int_equal(cose_p256_import(v.pub, &pub), 0);
		rc = cose_sign1_verify(v.msg, v.msg_len, v.aad, v.aad_len, pub, NULL);
	} else {
		/* ES384/ES512 keys: Sphere implements only ES256, so even parsing must refuse. */
		struct cose_sign1 s;
		rc = cose_sign1_decode(v.msg, v.msg_len, &s);
		assert_int_equal(rc, SPH_ERR_UNSUPPORTED);
	}
	EVP_PKEY_free(pub);
	free(v.msg);
	free(v.aad);
	return rc;
}

static void test_wg_sign_pass(void **state)
{
	(void)state;
	const char *pass[] = {"cose/sign-pass-01.json", "cose/sign-pass-02.json",
	                      "cose/sign-pass-03.json", "cose/ecdsa-sig-01.json"};
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
		bool fail;
		int rc = verify_vector(pass[i], &fail);
		assert_false(fail);
		if (rc != 0)
			fail_msg("%s: %s", pass[i], sph_strerror(rc));
	}
}

static void test_wg_sign_fail(void **state)
{
	(void)state;
	/* Each is refused for the reason its "failures" field gives. */
	const struct {
		const char *name;
		int status;
	} fails[] = {
	        {"cose/sign-fail-01.json", SPH_ERR_UNSUPPORTED},   /* tag 998 */
	        {"cose/sign-fail-02.json", SPH_ERR_BAD_SIGNATURE}, /* payload changed */
	        {"cose/sign-fail-03.json", SPH_ERR_UNSUPPORTED},   /* alg -999 */
	        {"cose/sign-fail-04.json", SPH_ERR_UNSUPPORTED},   /* alg "unknown" */
	        {"cose/sign-fail-06.json", SPH_ERR_BAD_SIGNATURE}, /* protected attribute added */
	        {"cose/sign-fail-07.json", SPH_ERR_BAD_SIGNATURE}, /* protected attribute removed */
	};
	for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
		bool fail;
		int rc = verify_vector(fails[i].name, &fail);
		assert_true(fail);
		if (rc != fails[i].status)
			fail_msg("%s: got %s, want %s", fails[i].name, sph_strerror(rc),
			         sph_strerror(fails[i].status));
	}
}

static void test_wg_other_algorithms_refused(void **state)
{
	(void)state;
	/* ES384, ES512 and P-256 with SHA-512: not ES256, refused as unsupported. */
	const char *other[] = {"cose/ecdsa-sig-02.json", "cose/ecdsa-sig-03.json",
	                       "cose/ecdsa-sig-04.json"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		bool fail;
		assert_int_equal(verify_vector(other[i], &fail), SPH_ERR_UNSUPPORTED);
	}
}

/* Signs and assembles a COSE_Sign1 from raw header bytes, so tests can build
 * structurally odd messages whose signatures are nevertheless correct. */
static size_t build_raw(EVP_PKEY *key, bool tagged, const uint8_t *prot, size_t prot_len,
                        const uint8_t *unprot, size_t unprot_len, const uint8_t *payload,
                        size_t payload_len, uint8_t *out, size_t cap)
{
	uint8_t digest[32], sig[64];
	struct sph_cbw w;
	size_t len;

	assert_int_equal(
	        cose_sign1_tbs_digest(prot, prot_len, NULL, 0, payload, payload_len, digest), 0);
	assert_int_equal(cose_pkey_signer(key, digest, sig), 0);
	sph_cbw_init(&w, out, cap);
	if (tagged)
		sph_cbw_tag(&w, COSE_TAG_SIGN1);
	sph_cbw_array(&w, 4);
	sph_cbw_bstr(&w, prot, prot_len);
	sph_cbw_raw(&w, unprot, unprot_len);
	sph_cbw_bstr(&w, payload, payload_len);
	sph_cbw_bstr(&w, sig, sizeof(sig));
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return len;
}

static const uint8_t empty_map[] = {0xa0};
static const uint8_t prot_es256[] = {0xa1, 0x01, 0x26};

static void test_raw_builder_sanity(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	uint8_t msg[256];
	size_t n = build_raw(k, true, prot_es256, sizeof(prot_es256), empty_map, 1,
	                     (const uint8_t *)"hi", 2, msg, sizeof(msg));
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, NULL), 0);
	EVP_PKEY_free(k);
}

static void test_round_trip(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	uint8_t msg[512];
	size_t n;
	struct cose_sign1 s;
	const uint8_t aad[] = {1, 2, 3};
	struct cose_sign1_params p = {
	        .payload = (const uint8_t *)"payload bytes",
	        .payload_len = 13,
	        .external_aad = aad,
	        .external_aad_len = sizeof(aad),
	        .kid = (const uint8_t *)"kid-1",
	        .kid_len = 5,
	        .content_type = 61,
	};

	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(cose_sign1_verify(msg, n, aad, sizeof(aad), k, &s), 0);
	assert_true(s.tagged);
	assert_int_equal(s.payload_len, 13);
	assert_memory_equal(s.payload, "payload bytes", 13);
	assert_int_equal(s.kid_len, 5);
	assert_memory_equal(s.kid, "kid-1", 5);
	assert_int_equal(s.content_type, 61);

	/* Wrong or missing external AAD: refused. */
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, NULL), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(cose_sign1_verify(msg, n, (const uint8_t *)"\1\2\4", 3, k, NULL),
	                 SPH_ERR_BAD_SIGNATURE);

	/* Untagged form verifies too and says so. */
	p.untagged = true;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(msg[0], 0x84);
	assert_int_equal(cose_sign1_verify(msg, n, aad, sizeof(aad), k, &s), 0);
	assert_false(s.tagged);

	/* Too small an output buffer: a clear error, no partial length. */
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, 20, &n),
	                 SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 0);
	EVP_PKEY_free(k);
}

static void test_wrong_key_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256"), *other = gen_key("P-256"), *p384 = gen_key("P-384");
	struct cose_sign1_params p = {
	        .payload = (const uint8_t *)"x", .payload_len = 1, .content_type = -1};
	uint8_t msg[256];
	size_t n;

	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, other, NULL), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, p384, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, NULL, NULL), SPH_ERR_INVALID_ARG);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	EVP_PKEY_free(p384);
}

static void test_every_bit_flip_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	struct cose_sign1_params p = {.payload = (const uint8_t *)"firmware",
	                              .payload_len = 8,
	                              .kid = (const uint8_t *)"k",
	                              .kid_len = 1,
	                              .content_type = -1};
	uint8_t msg[256];
	size_t n, unprotected_flips = 0;

	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	for (size_t bit = 0; bit < n * 8; bit++) {
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = cose_sign1_verify(msg, n, NULL, 0, k, NULL);
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		/* A flip inside the unprotected bucket (e.g. kid label 4 -> 5) may leave
		 * the signature valid, as in every COSE implementation: those headers are
		 * hints, never trusted. What must never verify is changed signed content. */
		if (rc == 0) {
			struct cose_sign1 s;
			msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(cose_sign1_decode(msg, n, &s), 0);
			msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(s.payload_len, 8);
			assert_memory_equal(s.payload, "firmware", 8);
			assert_int_equal(s.protected_len, sizeof(prot_es256));
			assert_memory_equal(s.protected_hdr, prot_es256, sizeof(prot_es256));
			unprotected_flips++;
		}
	}
	assert_true(unprotected_flips < 16);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, NULL), 0);
	EVP_PKEY_free(k);
}

static void test_truncation_and_trailing(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	struct cose_sign1_params p = {
	        .payload = (const uint8_t *)"abc", .payload_len = 3, .content_type = -1};
	uint8_t msg[256];
	size_t n;
	struct cose_sign1 s;

	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg) - 1, &n), 0);
	for (size_t len = 0; len < n; len++)
		assert_int_not_equal(cose_sign1_decode(msg, len, &s), 0);
	msg[n] = 0x00;
	assert_int_equal(cose_sign1_decode(msg, n + 1, &s), SPH_ERR_TRAILING);
	assert_int_equal(cose_sign1_verify(msg, n + 1, NULL, 0, k, NULL), SPH_ERR_TRAILING);
	EVP_PKEY_free(k);
}

static int decode_built(EVP_PKEY *k, const uint8_t *prot, size_t prot_len, const uint8_t *unprot,
                        size_t unprot_len)
{
	uint8_t msg[512];
	size_t n = build_raw(k, true, prot, prot_len, unprot, unprot_len, (const uint8_t *)"p", 1,
	                     msg, sizeof(msg));
	return cose_sign1_verify(msg, n, NULL, 0, k, NULL);
}

static void test_header_attacks(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	/* {1: -7, 1: -7} */
	const uint8_t dup_prot[] = {0xa2, 0x01, 0x26, 0x01, 0x26};
	/* {1: -7} protected and {1: -7} unprotected: duplicate across buckets */
	const uint8_t unprot_alg[] = {0xa1, 0x01, 0x26};
	/* {1: -7, 2: [99], 99: 0}: critical label we do not understand */
	const uint8_t crit_unknown[] = {0xa3, 0x01, 0x26, 0x02, 0x81, 0x18, 0x63, 0x18, 0x63, 0x00};
	/* {1: -7, 2: [3]}: crit names a label absent from the protected bucket */
	const uint8_t crit_absent[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x03};
	/* {1: -7, 2: [3], 3: 0}: crit naming an understood, present label is fine */
	const uint8_t crit_ok[] = {0xa3, 0x01, 0x26, 0x02, 0x81, 0x03, 0x03, 0x00};
	/* {1: -7, 2: []} */
	const uint8_t crit_empty[] = {0xa2, 0x01, 0x26, 0x02, 0x80};
	/* {2: [1]} unprotected: crit only belongs in the protected bucket */
	const uint8_t crit_unprot[] = {0xa1, 0x02, 0x81, 0x01};
	/* {1: -35} ES384; {1: "ES256"}; {} (no alg anywhere) */
	const uint8_t alg_es384[] = {0xa1, 0x01, 0x38, 0x22};
	const uint8_t alg_text[] = {0xa1, 0x01, 0x65, 'E', 'S', '2', '5', '6'};
	/* protected map followed by trailing bytes inside the bstr */
	const uint8_t prot_trailing[] = {0xa1, 0x01, 0x26, 0x00};
	/* kid not a bstr */
	const uint8_t kid_int[] = {0xa1, 0x04, 0x01};
	/* {"x": 1, "x": 2} duplicate text labels */
	const uint8_t dup_text[] = {0xa2, 0x61, 'x', 0x01, 0x61, 'x', 0x02};
	/* unknown non-critical labels (int and text) are ignored */
	const uint8_t unknown_ok[] = {0xa2, 0x18, 0x63, 0x82, 0x01, 0x02, 0x61, 'z', 0xa0};

	assert_int_equal(decode_built(k, dup_prot, sizeof(dup_prot), empty_map, 1),
	                 SPH_ERR_DUPLICATE);
	assert_int_equal(
	        decode_built(k, prot_es256, sizeof(prot_es256), unprot_alg, sizeof(unprot_alg)),
	        SPH_ERR_DUPLICATE);
	assert_int_equal(decode_built(k, crit_unknown, sizeof(crit_unknown), empty_map, 1),
	                 SPH_ERR_UNSUPPORTED);
	assert_int_equal(decode_built(k, crit_absent, sizeof(crit_absent), empty_map, 1),
	                 SPH_ERR_MALFORMED);
	assert_int_equal(decode_built(k, crit_ok, sizeof(crit_ok), empty_map, 1), 0);
	assert_int_equal(decode_built(k, crit_empty, sizeof(crit_empty), empty_map, 1),
	                 SPH_ERR_MALFORMED);
	assert_int_equal(
	        decode_built(k, prot_es256, sizeof(prot_es256), crit_unprot, sizeof(crit_unprot)),
	        SPH_ERR_MALFORMED);
	assert_int_equal(decode_built(k, alg_es384, sizeof(alg_es384), empty_map, 1),
	                 SPH_ERR_UNSUPPORTED);
	assert_int_equal(decode_built(k, alg_text, sizeof(alg_text), empty_map, 1),
	                 SPH_ERR_UNSUPPORTED);
	assert_int_equal(decode_built(k, NULL, 0, empty_map, 1), SPH_ERR_UNSUPPORTED);
	assert_int_equal(decode_built(k, prot_trailing, sizeof(prot_trailing), empty_map, 1),
	                 SPH_ERR_TRAILING);
	assert_int_equal(decode_built(k, prot_es256, sizeof(prot_es256), kid_int, sizeof(kid_int)),
	                 SPH_ERR_MALFORMED);
	assert_int_equal(
	        decode_built(k, prot_es256, sizeof(prot_es256), dup_text, sizeof(dup_text)),
	        SPH_ERR_DUPLICATE);
	assert_int_equal(
	        decode_built(k, prot_es256, sizeof(prot_es256), unknown_ok, sizeof(unknown_ok)), 0);
	/* alg only in the unprotected bucket is legal COSE (sign-pass-01 does it). */
	assert_int_equal(decode_built(k, NULL, 0, unprot_alg, sizeof(unprot_alg)), 0);
	{
		/* {1: -7, 2: [3, 3], 3: 0}: a critical label listed twice */
		const uint8_t crit_twice[] = {0xa3, 0x01, 0x26, 0x02, 0x82, 0x03, 0x03, 0x03, 0x00};
		/* unprotected {3: 42}: verifies, but is not reported as the content type */
		const uint8_t unprot_ct[] = {0xa1, 0x03, 0x18, 0x2a};
		/* unprotected {99: {1: 0, 1: 1}}: an ignored header may still not repeat keys */
		const uint8_t nested_dup[] = {0xa1, 0x18, 0x63, 0xa2, 0x01, 0x00, 0x01, 0x01};
		uint8_t msg[256];
		size_t n;
		struct cose_sign1 s;

		assert_int_equal(decode_built(k, crit_twice, sizeof(crit_twice), empty_map, 1),
		                 SPH_ERR_DUPLICATE);
		n = build_raw(k, true, prot_es256, sizeof(prot_es256), unprot_ct, sizeof(unprot_ct),
		              (const uint8_t *)"p", 1, msg, sizeof(msg));
		assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, &s), 0);
		assert_int_equal(s.content_type, -1);
		assert_int_equal(decode_built(k, prot_es256, sizeof(prot_es256), nested_dup,
		                              sizeof(nested_dup)),
		                 SPH_ERR_DUPLICATE);
	}
	EVP_PKEY_free(k);
}

static void test_structure_attacks(void **state)
{
	(void)state;
	struct cose_sign1 s;
	/* Each is a complete CBOR item that is not a valid COSE_Sign1. */
	const uint8_t three[] = {0x83, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40};
	const uint8_t wrong_tag[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x40};
	const uint8_t not_array[] = {0xa0};
	const uint8_t prot_not_bstr[] = {0x84, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x40};
	uint8_t sig63[80] = {0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x58, 63};
	uint8_t sig65[80] = {0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x58, 65};
	uint8_t sig_text[80] = {0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x78, 64};

	assert_int_equal(cose_sign1_decode(three, sizeof(three), &s), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(wrong_tag, sizeof(wrong_tag), &s), SPH_ERR_UNSUPPORTED);
	assert_int_equal(cose_sign1_decode(not_array, sizeof(not_array), &s), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(prot_not_bstr, sizeof(prot_not_bstr), &s),
	                 SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(sig63, 9 + 63, &s), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(sig65, 9 + 65, &s), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(sig_text, 9 + 64, &s), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sign1_decode(NULL, 0, &s), SPH_ERR_INVALID_ARG);
}

static void test_detached_payload(void **state)
{
	(void)state;
	/* nil payload decodes as detached; verification then covers an empty payload. */
	const uint8_t msg_hdr[] = {0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0xf6, 0x58, 0x40};
	uint8_t msg[sizeof(msg_hdr) + 64];
	struct cose_sign1 s;

	memcpy(msg, msg_hdr, sizeof(msg_hdr));
	memset(msg + sizeof(msg_hdr), 0x11, 64);
	assert_int_equal(cose_sign1_decode(msg, sizeof(msg), &s), 0);
	assert_null(s.payload);
	assert_int_equal(s.payload_len, 0);
}

static void test_signature_helpers(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	uint8_t digest[32] = {1}, raw[64], back[64], der[80], pub[65];
	size_t der_len;
	EVP_PKEY *imported = NULL;

	assert_int_equal(cose_pkey_signer(k, digest, raw), 0);
	assert_int_equal(cose_es256_verify_digest(k, digest, raw), 0);
	assert_int_equal(cose_sig_raw_to_der(raw, der, sizeof(der), &der_len), 0);
	assert_int_equal(cose_sig_der_to_raw(der, der_len, back), 0);
	assert_memory_equal(raw, back, 64);
	/* DER with a trailing byte, or cut short, is refused. */
	der[der_len] = 0;
	assert_int_equal(cose_sig_der_to_raw(der, der_len + 1, back), SPH_ERR_MALFORMED);
	assert_int_equal(cose_sig_der_to_raw(der, der_len - 1, back), SPH_ERR_MALFORMED);
	/* r = 0 or s = 0 never verifies. */
	memset(back, 0, 32);
	memcpy(back + 32, raw + 32, 32);
	assert_int_equal(cose_es256_verify_digest(k, digest, back), SPH_ERR_BAD_SIGNATURE);
	digest[0] ^= 1;
	assert_int_equal(cose_es256_verify_digest(k, digest, raw), SPH_ERR_BAD_SIGNATURE);

	/* Export/import round trip. */
	assert_int_equal(cose_p256_export(k, pub), 0);
	assert_int_equal(pub[0], 0x04);
	assert_int_equal(cose_p256_import(pub, &imported), 0);
	digest[0] ^= 1;
	assert_int_equal(cose_es256_verify_digest(imported, digest, raw), 0);
	EVP_PKEY_free(imported);
	EVP_PKEY_free(k);
}

static void test_low_s(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	uint8_t digest[32] = {7}, sig[64], twin[64];
	BIGNUM *n = NULL, *s = NULL;

	assert_true(
	        BN_hex2bn(&n, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551") >
	        0);
	for (int i = 0; i < 16; i++) {
		digest[1] = (uint8_t)i;
		assert_int_equal(cose_pkey_signer(k, digest, sig), 0);
		assert_true(cose_es256_is_low_s(sig));
		/* The high-s twin verifies as ECDSA, is not low-s, and normalises back. */
		s = BN_bin2bn(sig + 32, 32, s);
		assert_int_equal(BN_sub(s, n, s), 1);
		memcpy(twin, sig, 32);
		assert_int_equal(BN_bn2binpad(s, twin + 32, 32), 32);
		assert_int_equal(cose_es256_verify_digest(k, digest, twin), 0);
		assert_false(cose_es256_is_low_s(twin));
		assert_int_equal(cose_es256_make_low_s(twin), 0);
		assert_memory_equal(twin, sig, 64);
	}
	BN_free(n);
	BN_free(s);
	EVP_PKEY_free(k);
}

static void test_point_validation(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256"), *out = (EVP_PKEY *)1;
	uint8_t pub[65];

	assert_int_equal(cose_p256_export(k, pub), 0);
	pub[64] ^= 1; /* no longer on the curve */
	assert_int_equal(cose_p256_import(pub, &out), SPH_ERR_MALFORMED);
	assert_null(out);
	pub[64] ^= 1;
	pub[0] = 0x06; /* hybrid form */
	assert_int_equal(cose_p256_import(pub, &out), SPH_ERR_MALFORMED);
	pub[0] = 0x02;
	assert_int_equal(cose_p256_import(pub, &out), SPH_ERR_MALFORMED);
	memset(pub, 0, sizeof(pub));
	pub[0] = 0x04; /* the point (0, 0) */
	assert_int_equal(cose_p256_import(pub, &out), SPH_ERR_MALFORMED);
	EVP_PKEY_free(k);
}

/* ---- x5chain (label 33, RFC 9360) ------------------------------------------- */

static void test_x5chain_round_trip(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	static uint8_t big[COSE_MAX_CERT];
	const uint8_t c1[] = {0x30, 0x01, 0xaa}, c2[] = {0x30, 0x02, 0xbb, 0xcc};
	struct cose_x5 certs[COSE_MAX_X5CHAIN + 1] = {
	        {c1, sizeof(c1)}, {c2, sizeof(c2)}, {big, sizeof(big)}, {c1, sizeof(c1)}, {c2, 4}};
	struct cose_sign1_params p = {.payload = (const uint8_t *)"m",
	                              .payload_len = 1,
	                              .content_type = 65050,
	                              .x5chain = certs,
	                              .x5chain_count = 1};
	/* protected {1: -7, 3: 65050, 33: h'3001aa'}: one certificate is a bare bstr */
	const uint8_t want_one[] = {0xa3, 0x01, 0x26, 0x03, 0x19, 0xfe, 0x1a,
	                            0x18, 0x21, 0x43, 0x30, 0x01, 0xaa};
	static uint8_t msg[COSE_MAX_CERT + 512];
	struct cose_sign1 s;
	size_t n;

	memset(big, 0x5a, sizeof(big));
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, &s), 0);
	assert_int_equal(s.protected_len, sizeof(want_one));
	assert_memory_equal(s.protected_hdr, want_one, sizeof(want_one));
	assert_int_equal(s.x5_count, 1);
	assert_true(s.x5chain_protected);
	assert_ptr_equal(s.x5chain, s.protected_hdr + 9);
	assert_int_equal(s.x5chain_len, 4);
	assert_int_equal(s.x5[0].len, sizeof(c1));
	assert_memory_equal(s.x5[0].der, c1, sizeof(c1));
	assert_int_equal(s.content_type, 65050);

	/* Several certificates, the largest allowed among them: an array. */
	p.x5chain_count = COSE_MAX_X5CHAIN;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, &s), 0);
	assert_int_equal(s.x5_count, COSE_MAX_X5CHAIN);
	assert_int_equal(s.x5chain[0], 0x80 + COSE_MAX_X5CHAIN);
	for (size_t i = 0; i < COSE_MAX_X5CHAIN; i++) {
		assert_int_equal(s.x5[i].len, certs[i].len);
		assert_memory_equal(s.x5[i].der, certs[i].der, certs[i].len);
	}
	assert_ptr_equal(s.x5chain + s.x5chain_len, s.protected_hdr + s.protected_len);

	/* No x5chain: the old protected bucket, nothing reported. */
	p.x5chain_count = 0;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n), 0);
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, &s), 0);
	assert_int_equal(s.x5_count, 0);
	assert_null(s.x5chain);

	/* The producer refuses what the decoder would: too many, empty, too large. */
	p.x5chain_count = COSE_MAX_X5CHAIN + 1;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n),
	                 SPH_ERR_INVALID_ARG);
	p.x5chain_count = 1;
	certs[0].len = 0;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n),
	                 SPH_ERR_INVALID_ARG);
	certs[0].len = COSE_MAX_CERT + 1;
	certs[0].der = msg;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n),
	                 SPH_ERR_INVALID_ARG);
	p.x5chain = NULL;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k, msg, sizeof(msg), &n),
	                 SPH_ERR_INVALID_ARG);
	EVP_PKEY_free(k);
}

/* Builds a protected bucket {1: -7, 33: <x5>} around raw x5chain bytes. */
static int verify_x5_prot(EVP_PKEY *k, const uint8_t *x5, size_t x5_len, struct cose_sign1 *s)
{
	static uint8_t prot[COSE_MAX_X5CHAIN * (COSE_MAX_CERT + 8) + 16];
	static uint8_t msg[sizeof(prot) + 256];
	size_t n;

	assert_true(x5_len + 5 <= sizeof(prot));
	memcpy(prot, (const uint8_t[]){0xa2, 0x01, 0x26, 0x18, 0x21}, 5);
	memcpy(prot + 5, x5, x5_len);
	n = build_raw(k, true, prot, 5 + x5_len, empty_map, 1, (const uint8_t *)"p", 1, msg,
	              sizeof(msg));
	return cose_sign1_verify(msg, n, NULL, 0, k, s);
}

static void test_x5chain_attacks(void **state)
{
	(void)state;
	EVP_PKEY *k = gen_key("P-256");
	struct cose_sign1 s;
	static uint8_t x5[COSE_MAX_CERT + 16];
	/* bare bstr and two-element array: accepted */
	const uint8_t bare[] = {0x41, 0x01};
	const uint8_t two[] = {0x82, 0x41, 0x01, 0x42, 0x02, 0x03};
	/* a one-element array breaks RFC 9360's [2*certs: bstr] */
	const uint8_t one[] = {0x81, 0x41, 0x01};
	const uint8_t five[] = {0x85, 0x41, 1, 0x41, 2, 0x41, 3, 0x41, 4, 0x41, 5};
	const uint8_t empty_arr[] = {0x80};
	const uint8_t not_bstr[] = {0x01};
	const uint8_t text[] = {0x61, 'c'};
	const uint8_t elem_int[] = {0x82, 0x41, 0x01, 0x02};
	const uint8_t elem_text[] = {0x82, 0x41, 0x01, 0x61, 'c'};
	const uint8_t empty_cert[] = {0x40};
	const uint8_t nested[] = {0x82, 0x41, 0x01, 0x81, 0x41, 0x02};
	/* {1: -7, 33: h'01', 33: h'01'} */
	const uint8_t dup[] = {0xa3, 0x01, 0x26, 0x18, 0x21, 0x41, 0x01, 0x18, 0x21, 0x41, 0x01};
	/* {1: -7, 33: h'01'} protected and {33: h'02'} unprotected */
	const uint8_t prot_x5[] = {0xa2, 0x01, 0x26, 0x18, 0x21, 0x41, 0x01};
	const uint8_t unprot_x5[] = {0xa1, 0x18, 0x21, 0x41, 0x02};
	/* {1: -7, 2: [33], 33: h'01'}: crit may now name x5chain */
	const uint8_t crit_x5[] = {0xa3, 0x01, 0x26, 0x02, 0x81, 0x18,
	                           0x21, 0x18, 0x21, 0x41, 0x01};
	/* {1: -7, 2: [33]}: ... but only when it is present */
	const uint8_t crit_x5_absent[] = {0xa2, 0x01, 0x26, 0x02, 0x81, 0x18, 0x21};
	uint8_t msg[256];
	size_t n;

	assert_int_equal(verify_x5_prot(k, bare, sizeof(bare), &s), 0);
	assert_int_equal(s.x5_count, 1);
	assert_int_equal(s.x5[0].len, 1);
	assert_int_equal(s.x5[0].der[0], 0x01);
	assert_int_equal(verify_x5_prot(k, two, sizeof(two), &s), 0);
	assert_int_equal(s.x5_count, 2);
	assert_int_equal(s.x5[1].len, 2);
	assert_int_equal(s.x5chain_len, sizeof(two));

	assert_int_equal(verify_x5_prot(k, one, sizeof(one), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, five, sizeof(five), &s), SPH_ERR_TOO_LARGE);
	assert_int_equal(verify_x5_prot(k, empty_arr, sizeof(empty_arr), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, not_bstr, sizeof(not_bstr), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, text, sizeof(text), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, elem_int, sizeof(elem_int), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, elem_text, sizeof(elem_text), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, empty_cert, sizeof(empty_cert), &s), SPH_ERR_MALFORMED);
	assert_int_equal(verify_x5_prot(k, nested, sizeof(nested), &s), SPH_ERR_MALFORMED);
	assert_int_equal(s.x5_count, 0);

	/* Certificate sizes: COSE_MAX_CERT is fine, one byte more is not. */
	x5[0] = 0x59;
	x5[1] = (uint8_t)(COSE_MAX_CERT >> 8);
	x5[2] = (uint8_t)COSE_MAX_CERT;
	memset(x5 + 3, 0x30, COSE_MAX_CERT);
	assert_int_equal(verify_x5_prot(k, x5, 3 + COSE_MAX_CERT, &s), 0);
	assert_int_equal(s.x5[0].len, COSE_MAX_CERT);
	x5[2] = (uint8_t)(COSE_MAX_CERT + 1);
	x5[3 + COSE_MAX_CERT] = 0x30;
	assert_int_equal(verify_x5_prot(k, x5, 4 + COSE_MAX_CERT, &s), SPH_ERR_TOO_LARGE);

	/* Duplicates, within the protected bucket or across both. */
	assert_int_equal(decode_built(k, dup, sizeof(dup), empty_map, 1), SPH_ERR_DUPLICATE);
	assert_int_equal(decode_built(k, prot_x5, sizeof(prot_x5), unprot_x5, sizeof(unprot_x5)),
	                 SPH_ERR_DUPLICATE);
	/* Unprotected x5chain decodes, and says it is not signed. */
	n = build_raw(k, true, prot_es256, sizeof(prot_es256), unprot_x5, sizeof(unprot_x5),
	              (const uint8_t *)"p", 1, msg, sizeof(msg));
	assert_int_equal(cose_sign1_verify(msg, n, NULL, 0, k, &s), 0);
	assert_int_equal(s.x5_count, 1);
	assert_false(s.x5chain_protected);
	assert_int_equal(s.x5[0].der[0], 0x02);
	/* crit: x5chain is understood. */
	assert_int_equal(decode_built(k, crit_x5, sizeof(crit_x5), empty_map, 1), 0);
	assert_int_equal(decode_built(k, crit_x5_absent, sizeof(crit_x5_absent), empty_map, 1),
	                 SPH_ERR_MALFORMED);
	EVP_PKEY_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_wg_sign_pass),
	        cmocka_unit_test(test_wg_sign_fail),
	        cmocka_unit_test(test_wg_other_algorithms_refused),
	        cmocka_unit_test(test_raw_builder_sanity),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_wrong_key_refused),
	        cmocka_unit_test(test_every_bit_flip_refused),
	        cmocka_unit_test(test_truncation_and_trailing),
	        cmocka_unit_test(test_header_attacks),
	        cmocka_unit_test(test_structure_attacks),
	        cmocka_unit_test(test_detached_payload),
	        cmocka_unit_test(test_signature_helpers),
	        cmocka_unit_test(test_low_s),
	        cmocka_unit_test(test_point_validation),
	        cmocka_unit_test(test_x5chain_round_trip),
	        cmocka_unit_test(test_x5chain_attacks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
