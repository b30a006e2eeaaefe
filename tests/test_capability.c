/* image capability files (docs/formats.md §8): round trips, and attacks on
 * every part: another device, every bit, every length, trailing bytes, the
 * wrong signer role or tenant, expiry, non-canonical capability lists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "image/image.h"
#include "testutil.h"

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

static struct {
	struct party troot, csigner, tsigner, dsigner; /* tenant root and its signers */
	struct party oroot, osigner; /* another tenant and its capability signer */
	struct party inter, isigner; /* tenant root -> intermediate (tenant-app only) -> signer */
	uint8_t troot_hash[IMG_DIGEST_LEN];
	uint8_t dev[IMG_CAP_DEVICE_ID_LEN], other[IMG_CAP_DEVICE_ID_LEN];
	time_t now;
} fx;

static void make(struct party *out, enum img_cert_kind kind, struct party *issuer, unsigned roles)
{
	struct img_cert_params p = {.kind = kind, .roles = roles};
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

static int setup(void **state)
{
	(void)state;
	fx.now = time(NULL);
	make(&fx.troot, IMG_CERT_TENANT_ROOT, NULL, 0);
	make(&fx.csigner, IMG_CERT_CAPABILITY_SIGNER, &fx.troot, 0);
	make(&fx.tsigner, IMG_CERT_TENANT_SIGNER, &fx.troot, 0);
	make(&fx.dsigner, IMG_CERT_DEVELOPER_SIGNER, &fx.troot, 0);
	make(&fx.oroot, IMG_CERT_TENANT_ROOT, NULL, 0);
	make(&fx.osigner, IMG_CERT_CAPABILITY_SIGNER, &fx.oroot, 0);
	make(&fx.inter, IMG_CERT_INTERMEDIATE, &fx.troot, 1u << IMG_ROLE_TENANT_APP);
	make(&fx.isigner, IMG_CERT_CAPABILITY_SIGNER, &fx.inter, 0);
	assert_int_equal(img_root_hash(fx.troot.cert, fx.troot_hash), 0);
	for (size_t i = 0; i < IMG_CAP_DEVICE_ID_LEN; i++) {
		fx.dev[i] = (uint8_t)(i * 7 + 1);
		fx.other[i] = fx.dev[i];
	}
	fx.other[63] ^= 1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct party *all[] = {&fx.troot, &fx.csigner, &fx.tsigner, &fx.dsigner,
	                       &fx.oroot, &fx.osigner, &fx.inter,   &fx.isigner};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		EVP_PKEY_free(all[i]->key);
		X509_free(all[i]->cert);
	}
	return 0;
}

static struct img_capability cap_for(const uint8_t dev[IMG_CAP_DEVICE_ID_LEN], uint32_t caps)
{
	struct img_capability c;
	memset(&c, 0, sizeof(c));
	memcpy(c.device_id, dev, IMG_CAP_DEVICE_ID_LEN);
	c.caps = caps;
	c.issued_at = (uint64_t)fx.now - 60;
	c.expires = (uint64_t)fx.now + 86400;
	snprintf(c.tenant, sizeof(c.tenant), "contoso");
	return c;
}

/* Packs c signed by s; with_root appends root to the x5chain. */
static void pack(const struct img_capability *c, struct party *s, X509 *root, uint8_t **out,
                 size_t *len)
{
	STACK_OF(X509) *extra = NULL;
	if (root) {
		extra = sk_X509_new_null();
		assert_non_null(extra);
		assert_true(sk_X509_push(extra, root) > 0);
	}
	assert_int_equal(img_cap_pack(c, s->key, s->cert, extra, out, len), 0);
	sk_X509_free(extra);
}

static struct img_trust trust_cert(X509 *root)
{
	struct img_trust t;
	memset(&t, 0, sizeof(t));
	t.root_cert = root;
	t.time_policy = IMG_TIME_NOW;
	return t;
}

static int verify_dev(const uint8_t *buf, size_t len)
{
	struct img_trust t = trust_cert(fx.troot.cert);
	struct img_capability out;
	char why[256];
	int rc = img_cap_verify(buf, len, &t, fx.dev, &out, why, sizeof(why));
	if (rc) {
		uint8_t zero[sizeof(out)];
		memset(zero, 0, sizeof(zero));
		assert_memory_equal(&out, zero, sizeof(out)); /* cleared on refusal */
		assert_true(why[0] != '\0');
	}
	return rc;
}

/* Signs a hand-made payload as a capability file (to reach decoder paths
 * img_cap_pack refuses to produce). */
static int sign_cb(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                   uint8_t sig[COSE_ES256_SIG_LEN])
{
	return cose_pkey_signer(ctx, digest, sig);
}

static void sign_raw(const uint8_t *payload, size_t plen, struct party *s, uint8_t **out,
                     size_t *len)
{
	struct cose_sign1_params p;
	struct cose_x5 x5;
	unsigned char *der = NULL;
	int n = i2d_X509(s->cert, &der);

	assert_true(n > 0);
	x5.der = der;
	x5.len = (size_t)n;
	memset(&p, 0, sizeof(p));
	p.payload = payload;
	p.payload_len = plen;
	p.content_type = IMG_CAP_CONTENT_TYPE;
	p.x5chain = &x5;
	p.x5chain_count = 1;
	*out = malloc(8192);
	assert_non_null(*out);
	assert_int_equal(cose_sign1_create(&p, sign_cb, s->key, *out, 8192, len), 0);
	OPENSSL_free(der);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT |
	                                                  1u << IMG_CAP_FIELD_SERVICING),
	                      out, parsed;
	struct img_trust t = trust_cert(fx.troot.cert);
	uint8_t *buf = NULL, id[IMG_DIGEST_LEN];
	size_t len = 0;
	char why[256];

	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, &out, why, sizeof(why)), 0);
	assert_memory_equal(out.device_id, fx.dev, IMG_CAP_DEVICE_ID_LEN);
	assert_int_equal(out.caps, c.caps);
	assert_int_equal(out.issued_at, c.issued_at);
	assert_int_equal(out.expires, c.expires);
	assert_string_equal(out.tenant, "contoso");
	assert_int_equal(img_signer_id(fx.csigner.cert, id), 0);
	assert_memory_equal(out.signer_id, id, sizeof(id));
	assert_int_equal(img_cap_parse(buf, len, &parsed, why, sizeof(why)), 0);
	assert_int_equal(parsed.caps, c.caps);
	/* bytes are deterministic up to the signature */
	free(buf);

	/* by root hash: the x5chain must end with the root */
	pack(&c, &fx.csigner, fx.troot.cert, &buf, &len);
	t.root_cert = NULL;
	t.root_hash = fx.troot_hash;
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, why, sizeof(why)), 0);
	free(buf);
	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, why, sizeof(why)),
	                 SPH_ERR_AUTH);
	free(buf);

	/* no expiry */
	c.expires = 0;
	c.caps = 1u << IMG_CAP_FIELD_SERVICING;
	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), 0);
	t = trust_cert(fx.troot.cert);
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, &out, why, sizeof(why)), 0);
	assert_int_equal(out.expires, 0);
	assert_int_equal(out.caps, 1u << IMG_CAP_FIELD_SERVICING);
	free(buf);
}

static void test_names(void **state)
{
	(void)state;
	uint32_t m = 7;
	assert_int_equal(img_cap_parse_names("appDevelopment", &m), 0);
	assert_int_equal(m, 1u << IMG_CAP_APP_DEVELOPMENT);
	assert_int_equal(img_cap_parse_names("fieldServicing,appDevelopment", &m), 0);
	assert_int_equal(m, IMG_CAP_MASK_ALL);
	assert_int_equal(img_cap_parse_names("", &m), SPH_ERR_INVALID_ARG);
	assert_int_equal(m, 0);
	assert_int_equal(img_cap_parse_names("appDevelopment,", &m), SPH_ERR_INVALID_ARG);
	assert_int_equal(img_cap_parse_names("appDevelopment,appDevelopment", &m),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(img_cap_parse_names("debug", &m), SPH_ERR_INVALID_ARG);
	assert_int_equal(img_cap_parse_names("appDevelopmentX", &m), SPH_ERR_INVALID_ARG);
	assert_string_equal(img_cap_name(IMG_CAP_APP_DEVELOPMENT), "appDevelopment");
	assert_null(img_cap_name(0));
	assert_null(img_cap_name(3));
	assert_string_equal(img_role_name(IMG_ROLE_CAPABILITY), "capability");
	assert_string_equal(img_role_oid(IMG_ROLE_CAPABILITY), IMG_OID_ARC ".4");
	/* a capability signer signs no image */
	for (uint32_t type = 0; type <= 6; type++)
		assert_false(img_role_may_sign(IMG_ROLE_CAPABILITY, type, true));
}

static void test_pack_refuses(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	uint8_t *buf = (uint8_t *)1;
	size_t len = 1;

	c.caps = 0;
	assert_int_equal(img_cap_pack(&c, fx.csigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_CLAIM);
	assert_null(buf);
	assert_int_equal(len, 0);
	c.caps = 1u << 3;
	assert_int_equal(img_cap_pack(&c, fx.csigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_CLAIM);
	c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	c.expires = c.issued_at;
	assert_int_equal(img_cap_pack(&c, fx.csigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_CLAIM);
	c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	c.tenant[0] = '\0';
	assert_int_equal(img_cap_pack(&c, fx.csigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_CLAIM);
	c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	c.tenant[1] = '\n';
	assert_int_equal(img_cap_pack(&c, fx.csigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_CLAIM);
	c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	assert_int_equal(img_cap_pack(&c, fx.tsigner.key, fx.csigner.cert, NULL, &buf, &len),
	                 SPH_ERR_INVALID_ARG);
}

static void test_other_device(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.other, 1u << IMG_CAP_APP_DEVELOPMENT);
	uint8_t *buf = NULL;
	size_t len = 0;

	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), SPH_ERR_PERMISSION);
	free(buf);
}

static void test_bit_flips_and_lengths(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT), pc;
	uint8_t *buf = NULL, *copy;
	size_t len = 0;

	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), 0);
	copy = malloc(len + 1);
	assert_non_null(copy);
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(copy, buf, len);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (verify_dev(copy, len) == 0)
			fail_msg("a flip of bit %zu was accepted", bit);
		/* the structural parser: refuses, or returns a complete file (a flip
		 * inside a certificate once passed with rc 0 and nothing decoded) */
		if (img_cap_parse(copy, len, &pc, NULL, 0) == 0 && pc.caps == 0)
			fail_msg("a flip of bit %zu parsed as an empty file", bit);
	}
	for (size_t n = 0; n < len; n++)
		if (verify_dev(buf, n) == 0)
			fail_msg("truncation to %zu bytes was accepted", n);
	memcpy(copy, buf, len);
	copy[len] = 0;
	assert_int_equal(verify_dev(copy, len + 1), SPH_ERR_TRAILING);
	free(copy);
	free(buf);
}

static void test_wrong_signer(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	struct img_trust t = trust_cert(fx.oroot.cert);
	uint8_t *buf = NULL;
	size_t len = 0;

	/* image signers of the right tenant: wrong role */
	pack(&c, &fx.tsigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), SPH_ERR_PERMISSION);
	free(buf);
	pack(&c, &fx.dsigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), SPH_ERR_PERMISSION);
	free(buf);
	/* another tenant's capability signer */
	pack(&c, &fx.osigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), SPH_ERR_AUTH);
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, NULL, 0), 0);
	free(buf);
	/* through an intermediate that may not certify the capability role */
	{
		STACK_OF(X509) *extra = sk_X509_new_null();
		assert_non_null(extra);
		assert_true(sk_X509_push(extra, fx.inter.cert) > 0);
		assert_int_equal(
		        img_cap_pack(&c, fx.isigner.key, fx.isigner.cert, extra, &buf, &len), 0);
		sk_X509_free(extra);
		assert_int_equal(verify_dev(buf, len), SPH_ERR_PERMISSION);
		free(buf);
	}
	/* the root itself as signer */
	{
		uint8_t *b2 = NULL;
		size_t l2 = 0;
		assert_int_equal(img_cap_pack(&c, fx.troot.key, fx.troot.cert, NULL, &b2, &l2), 0);
		assert_int_not_equal(verify_dev(b2, l2), 0);
		free(b2);
	}
}

static void test_time(void **state)
{
	(void)state;
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	struct img_trust t = trust_cert(fx.troot.cert);
	uint8_t *buf = NULL;
	size_t len = 0;

	c.issued_at = (uint64_t)fx.now - 100;
	c.expires = (uint64_t)fx.now + 100;
	pack(&c, &fx.csigner, NULL, &buf, &len);
	t.time_policy = IMG_TIME_AT;
	t.at = fx.now + 100; /* expires is exclusive */
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, NULL, 0), SPH_ERR_AUTH);
	t.at = fx.now + 99;
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, NULL, 0), 0);
	t.at = fx.now - 101; /* not yet valid */
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, NULL, 0), SPH_ERR_AUTH);
	t.time_policy = IMG_TIME_NONE; /* no clock: no expiry check */
	assert_int_equal(img_cap_verify(buf, len, &t, fx.dev, NULL, NULL, 0), 0);
	free(buf);

	c.issued_at = (uint64_t)fx.now - 7200;
	c.expires = (uint64_t)fx.now - 3600;
	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_equal(verify_dev(buf, len), SPH_ERR_AUTH);
	free(buf);
}

/* Payload maps written by hand, each signed by the right signer. */
static void test_payload_strict(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		uint8_t caps[6];
		size_t n_caps;
		int want;
	} cases[] = {
	        {"sorted pair", {0x82, 0x01, 0x02}, 3, 0},
	        {"duplicate", {0x82, 0x01, 0x01}, 3, SPH_ERR_DUPLICATE},
	        {"unsorted", {0x82, 0x02, 0x01}, 3, SPH_ERR_MALFORMED},
	        {"unknown 3", {0x81, 0x03}, 2, SPH_ERR_CLAIM},
	        {"unknown 0", {0x81, 0x00}, 2, SPH_ERR_CLAIM},
	        {"empty", {0x80}, 1, SPH_ERR_CLAIM},
	        {"five", {0x85, 0x01, 0x01, 0x01, 0x01, 0x01}, 6, SPH_ERR_CLAIM},
	        {"not an array", {0x01}, 1, SPH_ERR_CLAIM},
	        {"text entry", {0x81, 0x61, 0x61}, 3, SPH_ERR_CLAIM},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t p[256], *buf = NULL;
		struct sph_cbw w;
		size_t plen = 0, len = 0;
		int rc;

		sph_cbw_init(&w, p, sizeof(p));
		sph_cbw_map(&w, 4);
		sph_cbw_uint(&w, 1);
		sph_cbw_bstr(&w, fx.dev, sizeof(fx.dev));
		sph_cbw_uint(&w, 2);
		sph_cbw_raw(&w, cases[i].caps, cases[i].n_caps);
		sph_cbw_uint(&w, 3);
		sph_cbw_uint(&w, (uint64_t)fx.now - 10);
		sph_cbw_uint(&w, 5);
		sph_cbw_tstr(&w, "t", 1);
		assert_int_equal(sph_cbw_finish(&w, &plen), 0);
		sign_raw(p, plen, &fx.csigner, &buf, &len);
		rc = verify_dev(buf, len);
		if (rc != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].what, rc, cases[i].want);
		free(buf);
	}
}

static void test_payload_keys(void **state)
{
	(void)state;
	/* map variants: missing key, unknown key, out of order, expires <= issued */
	enum { MISSING_TENANT, UNKNOWN_KEY, OUT_OF_ORDER, EXPIRES_EQ, SHORT_ID, BIG_MAP };
	for (int v = MISSING_TENANT; v <= BIG_MAP; v++) {
		uint8_t p[256], *buf = NULL;
		struct sph_cbw w;
		size_t plen = 0, len = 0;
		uint64_t now = (uint64_t)fx.now - 10;

		sph_cbw_init(&w, p, sizeof(p));
		sph_cbw_map(&w, v == MISSING_TENANT                   ? 3
		                : v == UNKNOWN_KEY || v == EXPIRES_EQ ? 5
		                                                      : 4);
		if (v == OUT_OF_ORDER) {
			sph_cbw_uint(&w, 2);
			sph_cbw_array(&w, 1);
			sph_cbw_uint(&w, 1);
			sph_cbw_uint(&w, 1);
			sph_cbw_bstr(&w, fx.dev, sizeof(fx.dev));
		} else {
			sph_cbw_uint(&w, 1);
			sph_cbw_bstr(&w, fx.dev, v == SHORT_ID ? 63 : sizeof(fx.dev));
			sph_cbw_uint(&w, 2);
			sph_cbw_array(&w, 1);
			sph_cbw_uint(&w, 1);
		}
		sph_cbw_uint(&w, 3);
		sph_cbw_uint(&w, now);
		if (v == EXPIRES_EQ) {
			sph_cbw_uint(&w, 4);
			sph_cbw_uint(&w, now);
		}
		if (v != MISSING_TENANT) {
			sph_cbw_uint(&w, 5);
			sph_cbw_tstr(&w, "t", 1);
		}
		if (v == UNKNOWN_KEY) {
			sph_cbw_uint(&w, 6);
			sph_cbw_uint(&w, 0);
		}
		if (v == BIG_MAP)
			p[0] = 0xa9; /* claims 9 entries, holds 4 */
		assert_int_equal(sph_cbw_finish(&w, &plen), 0);
		sign_raw(p, plen, &fx.csigner, &buf, &len);
		if (verify_dev(buf, len) == 0)
			fail_msg("payload variant %d was accepted", v);
		free(buf);
	}
}

static void test_image_content_type_refused(void **state)
{
	(void)state;
	/* a valid image package is not a capability file, nor the reverse */
	struct img_capability c = cap_for(fx.dev, 1u << IMG_CAP_APP_DEVELOPMENT);
	struct img_package pk;
	uint8_t *buf = NULL;
	size_t len = 0;

	pack(&c, &fx.csigner, NULL, &buf, &len);
	assert_int_not_equal(img_parse(buf, len, &pk), 0);
	free(buf);
	assert_int_not_equal(verify_dev((const uint8_t *)"SPHPKG01", 8), 0);
	assert_int_not_equal(verify_dev(NULL, 0), 0);
}

/* A capability signer signs no image, even with allow_developer. */
static void test_capability_signer_signs_no_image(void **state)
{
	(void)state;
	static const char app[] = "{\"Name\":\"x\"}";
	struct img_manifest m;
	struct img_trust t = trust_cert(fx.troot.cert);
	uint8_t *pkg = NULL;
	size_t len = 0;

	memset(&m, 0, sizeof(m));
	m.component_id[0] = 1;
	m.type = IMG_TYPE_APP;
	snprintf(m.name, sizeof(m.name), "app");
	snprintf(m.version, sizeof(m.version), "1.0");
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	m.app_manifest = app;
	m.app_manifest_len = strlen(app);
	assert_int_equal(img_pack(&m, (const uint8_t *)"abc", 3, fx.csigner.key, fx.csigner.cert,
	                          NULL, &pkg, &len),
	                 0);
	t.allow_developer = true;
	assert_int_equal(img_verify(pkg, len, &t, NULL, NULL, 0), SPH_ERR_PERMISSION);
	free(pkg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_pack_refuses),
	        cmocka_unit_test(test_other_device),
	        cmocka_unit_test(test_bit_flips_and_lengths),
	        cmocka_unit_test(test_wrong_signer),
	        cmocka_unit_test(test_time),
	        cmocka_unit_test(test_payload_strict),
	        cmocka_unit_test(test_payload_keys),
	        cmocka_unit_test(test_image_content_type_refused),
	        cmocka_unit_test(test_capability_signer_signs_no_image),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
