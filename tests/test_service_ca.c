/*
 * The tenant CA (src/service/ss_ca.h): device certificates carry exactly the
 * fields docs/api.md §5 names and verify with `openssl verify` against the
 * published chain; the CA keys exist only encrypted, and unwrap only with
 * the right key-encryption key and tenant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "service/ss_ca.h"
#include "testutil.h"

static const char tenant[] = "3f1c2a5e-8b7d-4c2a-9e1f-0a1b2c3d4e5f";
static uint8_t kek[SS_KEK_LEN];

/* A fresh device key's X || Y. */
static void device_pub(uint8_t pub[64])
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t pt[65];
	size_t n = 0;

	assert_non_null(k);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
	assert_int_equal(n, 65);
	memcpy(pub, pt + 1, 64);
	EVP_PKEY_free(k);
}

static X509 *parse(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	return x;
}

static void name_entry(X509_NAME *n, int nid, char *out, size_t cap)
{
	assert_true(X509_NAME_get_text_by_NID(n, nid, out, (int)cap) > 0);
}

static void test_issue_and_fields(void **state)
{
	struct ss_ca_pair ca;
	uint8_t pub[64], *der = NULL;
	char id[129], cn[200], o[100];
	size_t len = 0;
	time_t now = time(NULL);
	X509 *x;
	const ASN1_INTEGER *serial;
	BIGNUM *bn;
	EXTENDED_KEY_USAGE *eku;

	(void)state;
	assert_int_equal(ss_ca_create(tenant, kek, 0, &ca), 0);
	device_pub(pub);
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, now, SS_CERT_HOURS, &der, &len), 0);
	x = parse(der, len);
	/* CN = device id, O = tenant id. */
	assert_int_equal(sph_hex_encode(pub, 64, id, sizeof(id)), 0);
	name_entry(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, id);
	name_entry(X509_get_subject_name(x), NID_organizationName, o, sizeof(o));
	assert_string_equal(o, tenant);
	/* ES256, v3, 128-bit serial, 24 h. */
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_get_version(x), 2);
	serial = X509_get0_serialNumber(x);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	assert_true(BN_num_bits(bn) >= 127 && BN_num_bits(bn) <= 128);
	BN_free(bn);
	{
		int days, secs;
		assert_int_equal(
		        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
		        1);
		assert_int_equal(days * 86400 + secs, 24 * 3600 + 300);
	}
	/* clientAuth only; not a CA; digitalSignature. */
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	X509_free(x);
	free(der);
	ss_ca_pair_free(&ca);
}

/* openssl verify, the tool a relying service would use. */
static void test_openssl_verify(void **state)
{
	struct ss_ca_pair ca;
	uint8_t pub[64], *der = NULL, *p7 = NULL;
	char *dir = tu_mkdtemp(), *chain = NULL, cmd[2048];
	size_t len = 0, p7len = 0;
	FILE *f;
	X509 *x;

	(void)state;
	assert_int_equal(ss_ca_create(tenant, kek, 0, &ca), 0);
	device_pub(pub);
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, time(NULL), 1, &der, &len), 0);
	assert_int_equal(ss_ca_chain_pem(&ca, &chain), 0);
	snprintf(cmd, sizeof(cmd), "%s/chain.pem", dir);
	f = fopen(cmd, "w");
	assert_non_null(f);
	fputs(chain, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s/device.pem", dir);
	f = fopen(cmd, "w");
	assert_non_null(f);
	x = parse(der, len);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	snprintf(cmd, sizeof(cmd),
	         "openssl verify -purpose sslclient -CAfile %s/chain.pem %s/device.pem "
	         ">/dev/null 2>&1",
	         dir, dir);
	assert_int_equal(system(cmd), 0);
	/* Not a server certificate. */
	snprintf(cmd, sizeof(cmd),
	         "openssl verify -purpose sslserver -CAfile %s/chain.pem %s/device.pem "
	         ">/dev/null 2>&1",
	         dir, dir);
	assert_int_not_equal(system(cmd), 0);
	/* Another tenant's chain does not vouch for it. */
	{
		struct ss_ca_pair other;
		char *ochain = NULL;
		assert_int_equal(
		        ss_ca_create("00000000-0000-4000-8000-000000000001", kek, 0, &other), 0);
		assert_int_equal(ss_ca_chain_pem(&other, &ochain), 0);
		snprintf(cmd, sizeof(cmd), "%s/other.pem", dir);
		f = fopen(cmd, "w");
		assert_non_null(f);
		fputs(ochain, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd),
		         "openssl verify -CAfile %s/other.pem %s/device.pem >/dev/null 2>&1", dir,
		         dir);
		assert_int_not_equal(system(cmd), 0);
		free(ochain);
		ss_ca_pair_free(&other);
	}
	/* The PKCS#7 form holds the same two certificates. */
	assert_int_equal(ss_ca_chain_p7(&ca, &p7, &p7len), 0);
	{
		const uint8_t *p = p7;
		PKCS7 *pk = d2i_PKCS7(NULL, &p, (long)p7len);
		assert_non_null(pk);
		assert_int_equal(sk_X509_num(pk->d.sign->cert), 2);
		PKCS7_free(pk);
	}
	free(p7);
	free(chain);
	free(der);
	ss_ca_pair_free(&ca);
	tu_rmtree(dir);
	free(dir);
}

static void test_keys_only_encrypted(void **state)
{
	struct ss_ca_pair ca;
	uint8_t pub[64], wrong[SS_KEK_LEN], *der = NULL;
	size_t len = 0;
	time_t now = time(NULL);

	(void)state;
	assert_int_equal(ss_ca_create(tenant, kek, 0, &ca), 0);
	device_pub(pub);
	memcpy(wrong, kek, sizeof(wrong));
	wrong[0] ^= 1;
	assert_int_equal(ss_ca_issue(&ca, wrong, tenant, pub, now, 24, &der, &len), SPH_ERR_AUTH);
	assert_null(der);
	/* The blob is bound to its tenant. */
	assert_int_equal(ss_ca_issue(&ca, kek, "00000000-0000-4000-8000-000000000002", pub, now, 24,
	                             &der, &len),
	                 SPH_ERR_AUTH);
	/* Every flipped byte of the blob is refused. */
	for (size_t i = 0; i < ca.device.key_blob_len; i++) {
		ca.device.key_blob[i] ^= 0x20;
		assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, now, 24, &der, &len),
		                 SPH_ERR_AUTH);
		ca.device.key_blob[i] ^= 0x20;
	}
	/* The plaintext key never appears: the blob does not parse as PKCS#8. */
	{
		const uint8_t *p = ca.device.key_blob + 12;
		PKCS8_PRIV_KEY_INFO *p8 =
		        d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)(ca.device.key_blob_len - 28));
		assert_null(p8);
	}
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, now, 24, &der, &len), 0);
	free(der);
	ss_ca_pair_free(&ca);
}

static void test_bad_requests(void **state)
{
	struct ss_ca_pair ca;
	uint8_t pub[64], bad[64], *der = NULL;
	size_t len = 0;
	time_t now = time(NULL);

	(void)state;
	assert_int_equal(ss_ca_create(tenant, kek, 0, &ca), 0);
	device_pub(pub);
	memset(bad, 0x11, sizeof(bad)); /* not on the curve */
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, bad, now, 24, &der, &len),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, now, 0, &der, &len),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, now, SS_CERT_HOURS_MAX + 1, &der, &len),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_ca_create("", kek, 0, &ca), SPH_ERR_INVALID_ARG);
	/* Never past the device CA: issued at its last hour, cut at its end. */
	{
		X509 *cax = parse(ca.device.cert_der, ca.device.cert_len), *x;
		struct tm tm;
		time_t end;
		assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(cax), &tm), 1);
		end = timegm(&tm);
		assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, end - 3600, 24, &der, &len), 0);
		x = parse(der, len);
		assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), end), 0);
		X509_free(x);
		free(der);
		assert_int_equal(ss_ca_issue(&ca, kek, tenant, pub, end + 10, 24, &der, &len),
		                 SPH_ERR_STATE);
		X509_free(cax);
	}
	ss_ca_pair_free(&ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_issue_and_fields),
	        cmocka_unit_test(test_openssl_verify),
	        cmocka_unit_test(test_keys_only_encrypted),
	        cmocka_unit_test(test_bad_requests),
	};
	for (size_t i = 0; i < sizeof(kek); i++)
		kek[i] = (uint8_t)(i * 29 + 7);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
