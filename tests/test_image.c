/* image: signed image packages (docs/formats.md §5). Round trips for every
 * component type, and attacks on every part: payload, manifest, signature,
 * header, certificates, roles, validity, trust anchors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image/image.h"
#include "testutil.h"

/* ---- fixtures: one key hierarchy for the whole file --------------------------- */

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

static struct {
	struct party proot, psigner;          /* platform root -> OS signer */
	struct party troot, tsigner, dsigner; /* tenant root -> production, developer */
	struct party oroot, osigner;          /* another platform's root and signer */
	struct party pinter, pisigner;        /* platform root -> intermediate -> signer */
	struct party expired, future;         /* OS signers outside their validity */
	struct party tos;                     /* tenant root -> a leaf claiming OS signing */
	struct party handleaf;                /* platform signer (not a CA) -> leaf */
	uint8_t proot_hash[IMG_DIGEST_LEN];
	time_t now;
} fx;

static void make(struct party *out, enum img_cert_kind kind, struct party *issuer, time_t nb,
                 unsigned days, unsigned roles)
{
	struct img_cert_params p = {.kind = kind, .not_before = nb, .days = days, .roles = roles};
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A leaf certificate issued by any certificate, CA or not: OpenSSL's X.509
 * API, without img_cert_make's refusal of non-CA issuers. */
static void hand_leaf(struct party *out, struct party *issuer, const char *eku)
{
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX ctx;

	out->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	out->cert = X509_new();
	assert_non_null(out->key);
	assert_non_null(out->cert);
	assert_int_equal(X509_set_version(out->cert, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(out->cert), 4242), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)"hand", -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(out->cert, n), 1);
	assert_int_equal(X509_set_issuer_name(out->cert, X509_get_subject_name(issuer->cert)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(out->cert), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(out->cert), 86400));
	assert_int_equal(X509_set_pubkey(out->cert, out->key), 1);
	X509V3_set_ctx(&ctx, issuer->cert, out->cert, NULL, NULL, 0);
	add_ext(out->cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(out->cert, &ctx, NID_key_usage, "critical,digitalSignature");
	add_ext(out->cert, &ctx, NID_subject_key_identifier, "hash");
	add_ext(out->cert, &ctx, NID_authority_key_identifier, "keyid:always");
	add_ext(out->cert, &ctx, NID_ext_key_usage, eku);
	assert_true(X509_sign(out->cert, issuer->key, EVP_sha256()) > 0);
	X509_NAME_free(n);
}

static int setup(void **state)
{
	(void)state;
	fx.now = time(NULL);
	/* the root predates every test time below */
	make(&fx.proot, IMG_CERT_PLATFORM_ROOT, NULL, fx.now - 100 * 86400, 0, 0);
	make(&fx.psigner, IMG_CERT_PLATFORM_SIGNER, &fx.proot, 0, 0, 0);
	make(&fx.troot, IMG_CERT_TENANT_ROOT, NULL, 0, 0, 0);
	make(&fx.tsigner, IMG_CERT_TENANT_SIGNER, &fx.troot, 0, 0, 0);
	make(&fx.dsigner, IMG_CERT_DEVELOPER_SIGNER, &fx.troot, 0, 0, 0);
	make(&fx.oroot, IMG_CERT_PLATFORM_ROOT, NULL, 0, 0, 0);
	make(&fx.osigner, IMG_CERT_PLATFORM_SIGNER, &fx.oroot, 0, 0, 0);
	make(&fx.pinter, IMG_CERT_INTERMEDIATE, &fx.proot, 0, 0, 1u << IMG_ROLE_PLATFORM_OS);
	make(&fx.pisigner, IMG_CERT_PLATFORM_SIGNER, &fx.pinter, 0, 0, 0);
	/* valid for one day, ten days ago; and for one day, in ten days */
	make(&fx.expired, IMG_CERT_PLATFORM_SIGNER, &fx.proot, fx.now - 10 * 86400, 1, 0);
	make(&fx.future, IMG_CERT_PLATFORM_SIGNER, &fx.proot, fx.now + 10 * 86400, 1, 0);
	/* img_cert_make does not look at the issuer's EKU; img_verify does. */
	make(&fx.tos, IMG_CERT_PLATFORM_SIGNER, &fx.troot, 0, 0, 0);
	hand_leaf(&fx.handleaf, &fx.psigner, "critical," IMG_OID_ARC ".1");
	assert_int_equal(img_root_hash(fx.proot.cert, fx.proot_hash), 0);
	return 0;
}

static void party_free(struct party *p)
{
	EVP_PKEY_free(p->key);
	X509_free(p->cert);
}

static int teardown(void **state)
{
	(void)state;
	struct party *all[] = {&fx.proot,  &fx.psigner, &fx.troot,   &fx.tsigner,  &fx.dsigner,
	                       &fx.oroot,  &fx.osigner, &fx.pinter,  &fx.pisigner, &fx.expired,
	                       &fx.future, &fx.tos,     &fx.handleaf};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		party_free(all[i]);
	return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static void sha256(const uint8_t *d, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(d, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static void assert_same_manifest(const struct img_manifest *a, const struct img_manifest *b)
{
	assert_memory_equal(a->component_id, b->component_id, IMG_COMPONENT_ID_LEN);
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->version, b->version);
	assert_int_equal(a->security_version, b->security_version);
	assert_int_equal(a->payload_size, b->payload_size);
	assert_memory_equal(a->payload_sha256, b->payload_sha256, IMG_DIGEST_LEN);
	assert_int_equal(a->debug, b->debug);
	assert_string_equal(a->target, b->target);
	assert_int_equal(a->app_manifest_len, b->app_manifest_len);
	if (a->app_manifest_len)
		assert_memory_equal(a->app_manifest, b->app_manifest, a->app_manifest_len);
	else
		assert_true(a->app_manifest == NULL && b->app_manifest == NULL);
}

static const char app_json[] = "{\"Name\":\"Blink\",\"EntryPoint\":\"/bin/app\"}";
static const uint8_t payload16[16] = "firmware bytes!";

static void base_manifest(struct img_manifest *m, uint32_t type)
{
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < IMG_COMPONENT_ID_LEN; i++)
		m->component_id[i] = (uint8_t)(0xa0 + i);
	m->type = type;
	snprintf(m->name, sizeof(m->name), "component");
	snprintf(m->version, sizeof(m->version), "22.11.1");
	m->security_version = 7;
	snprintf(m->target, sizeof(m->target), "%s", IMG_TARGET_DEFAULT);
	if (type == IMG_TYPE_APP || type == IMG_TYPE_RTAPP) {
		m->app_manifest = app_json;
		m->app_manifest_len = strlen(app_json);
	}
}

/* Packs with signer s; extra (may be NULL) are the certificates after the leaf. */
static uint8_t *pack(uint32_t type, struct party *s, X509 *extra1, X509 *extra2,
                     const uint8_t *payload, size_t plen, size_t *len)
{
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t *pkg = NULL;

	base_manifest(&m, type);
	assert_non_null(chain);
	if (extra1)
		assert_true(sk_X509_push(chain, extra1) > 0);
	if (extra2)
		assert_true(sk_X509_push(chain, extra2) > 0);
	assert_int_equal(img_pack(&m, payload, plen, s->key, s->cert, chain, &pkg, len), 0);
	sk_X509_free(chain);
	return pkg;
}

static struct img_trust trust_cert(X509 *root)
{
	struct img_trust t = {.root_cert = root};
	return t;
}

static struct img_trust trust_hash(const uint8_t *hash)
{
	struct img_trust t = {.root_hash = hash};
	return t;
}

static int verify(const uint8_t *pkg, size_t len, const struct img_trust *t)
{
	struct img_package out;
	char why[256];
	int rc = img_verify(pkg, len, t, &out, why, sizeof(why));
	if (rc == 0)
		assert_string_equal(why, "verified");
	else
		assert_true(strlen(why) > 0);
	return rc;
}

/* DER of a certificate, into buf. */
static size_t der(X509 *x, uint8_t *buf, size_t cap)
{
	int n = i2d_X509(x, NULL);
	unsigned char *p = buf;
	assert_true(n > 0 && (size_t)n <= cap);
	assert_int_equal(i2d_X509(x, &p), n);
	return (size_t)n;
}

/* A COSE_Sign1 from raw buckets, signed with key, around manifest bytes. */
static size_t raw_cose(EVP_PKEY *key, bool tagged, const uint8_t *prot, size_t prot_len,
                       const uint8_t *unprot, size_t unprot_len, const uint8_t *m, size_t mlen,
                       uint8_t *out, size_t cap)
{
	uint8_t digest[32], sig[64];
	struct sph_cbw w;
	size_t len;

	assert_int_equal(cose_sign1_tbs_digest(prot, prot_len, NULL, 0, m, mlen, digest), 0);
	assert_int_equal(cose_pkey_signer(key, digest, sig), 0);
	sph_cbw_init(&w, out, cap);
	if (tagged)
		sph_cbw_tag(&w, COSE_TAG_SIGN1);
	sph_cbw_array(&w, 4);
	sph_cbw_bstr(&w, prot, prot_len);
	sph_cbw_raw(&w, unprot, unprot_len);
	sph_cbw_bstr(&w, m, mlen);
	sph_cbw_bstr(&w, sig, sizeof(sig));
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return len;
}

/* The image profile's protected bucket {1: -7, 3: ct, 33: x5chain}. */
static size_t std_prot(int64_t ct, X509 *const *certs, size_t n, uint8_t *out, size_t cap)
{
	static uint8_t d[IMG_MAX_CHAIN][IMG_MAX_CERT];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, out, cap);
	sph_cbw_map(&w, 3);
	sph_cbw_uint(&w, 1);
	sph_cbw_int(&w, -7);
	sph_cbw_uint(&w, 3);
	sph_cbw_uint(&w, (uint64_t)ct);
	sph_cbw_uint(&w, 33);
	if (n > 1)
		sph_cbw_array(&w, n);
	for (size_t i = 0; i < n; i++)
		sph_cbw_bstr(&w, d[i], der(certs[i], d[i], sizeof(d[i])));
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return len;
}

/* header || cose || payload, malloc'd. */
static uint8_t *wrap(const uint8_t *cose, size_t cose_len, const uint8_t *payload, size_t plen,
                     size_t *len)
{
	uint8_t *pkg = malloc(IMG_HEADER_LEN + cose_len + plen + 1);
	assert_non_null(pkg);
	memcpy(pkg, IMG_MAGIC, 8);
	pkg[8] = (uint8_t)cose_len;
	pkg[9] = (uint8_t)(cose_len >> 8);
	pkg[10] = (uint8_t)(cose_len >> 16);
	pkg[11] = (uint8_t)(cose_len >> 24);
	memset(pkg + 12, 0, 4);
	memcpy(pkg + IMG_HEADER_LEN, cose, cose_len);
	memcpy(pkg + IMG_HEADER_LEN + cose_len, payload, plen);
	*len = IMG_HEADER_LEN + cose_len + plen;
	return pkg;
}

/* A package whose manifest bytes are given as is, signed by s with x5chain
 * [s, proot] and the image profile's envelope. */
static uint8_t *pack_manifest_bytes(struct party *s, X509 *above, const uint8_t *m, size_t mlen,
                                    const uint8_t *payload, size_t plen, size_t *len)
{
	static uint8_t prot[2 * IMG_MAX_CERT], cose[IMG_MAX_COSE];
	const uint8_t empty[] = {0xa0};
	X509 *certs[2] = {s->cert, above};
	size_t pl = std_prot(IMG_CONTENT_TYPE, certs, above ? 2 : 1, prot, sizeof(prot));
	size_t cl = raw_cose(s->key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	return wrap(cose, cl, payload, plen, len);
}

/* ---- manifest entries, for building odd manifests ---------------------------------- */

enum ent_kind { E_UINT, E_BSTR, E_TSTR, E_BOOL, E_NEGKEY_UINT, E_TEXTKEY_UINT };
struct ent {
	int64_t key;
	enum ent_kind kind;
	uint64_t u;
	const void *p;
	size_t len;
};

static uint8_t m_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static uint8_t m_hash[32];

static size_t base_ents(struct ent *e, uint32_t type, size_t plen)
{
	size_t n = 0;
	e[n++] = (struct ent){1, E_BSTR, 0, m_id, 16};
	e[n++] = (struct ent){2, E_UINT, type, NULL, 0};
	e[n++] = (struct ent){3, E_TSTR, 0, "name", 4};
	e[n++] = (struct ent){4, E_TSTR, 0, "1.0", 3};
	e[n++] = (struct ent){5, E_UINT, 1, NULL, 0};
	e[n++] = (struct ent){6, E_UINT, plen, NULL, 0};
	e[n++] = (struct ent){7, E_BSTR, 0, m_hash, 32};
	e[n++] = (struct ent){8, E_BOOL, 0, NULL, 0};
	e[n++] = (struct ent){9, E_TSTR, 0, IMG_TARGET_DEFAULT, strlen(IMG_TARGET_DEFAULT)};
	if (type >= IMG_TYPE_APP)
		e[n++] = (struct ent){10, E_TSTR, 0, app_json, strlen(app_json)};
	return n;
}

static size_t encode_ents(const struct ent *e, size_t n, uint8_t *out, size_t cap)
{
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, out, cap);
	sph_cbw_map(&w, n);
	for (size_t i = 0; i < n; i++) {
		if (e[i].kind == E_TEXTKEY_UINT)
			sph_cbw_tstr(&w, "k", 1);
		else
			sph_cbw_int(&w, e[i].key);
		switch (e[i].kind) {
		case E_UINT:
		case E_NEGKEY_UINT:
		case E_TEXTKEY_UINT:
			sph_cbw_uint(&w, e[i].u);
			break;
		case E_BSTR:
			sph_cbw_bstr(&w, e[i].p, e[i].len);
			break;
		case E_TSTR:
			sph_cbw_tstr(&w, e[i].p, e[i].len);
			break;
		case E_BOOL:
			sph_cbw_bool(&w, e[i].u != 0);
			break;
		}
	}
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return len;
}

static int decode_ents(const struct ent *e, size_t n)
{
	uint8_t buf[1024];
	struct img_manifest m;
	size_t len = encode_ents(e, n, buf, sizeof(buf));
	return img_manifest_decode(buf, len, &m);
}

/* ---- tests ---------------------------------------------------------------------- */

static void check_round_trip(uint32_t type, struct party *s, X509 *extra1, X509 *extra2, X509 *root,
                             const uint8_t *root_hash, enum img_role role)
{
	uint8_t payload[300];
	struct img_package pk, pv;
	struct img_trust t;
	size_t len;
	uint8_t *pkg, want_id[32];

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + type);
	pkg = pack(type, s, extra1, extra2, payload, sizeof(payload), &len);

	assert_int_equal(img_parse(pkg, len, &pk), 0);
	assert_int_equal(pk.manifest.type, type);
	assert_string_equal(pk.manifest.name, "component");
	assert_string_equal(pk.manifest.version, "22.11.1");
	assert_int_equal(pk.manifest.security_version, 7);
	assert_int_equal(pk.manifest.payload_size, sizeof(payload));
	assert_ptr_equal(pk.payload, pkg + len - sizeof(payload));
	assert_int_equal(pk.payload_len, sizeof(payload));
	assert_int_equal(pk.n_certs, 1 + (extra1 != NULL) + (extra2 != NULL));
	assert_int_equal(pk.role, IMG_ROLE_NONE);
	assert_ptr_equal(pk.cose, pkg + IMG_HEADER_LEN);
	if (type >= IMG_TYPE_APP) {
		assert_int_equal(pk.manifest.app_manifest_len, strlen(app_json));
		assert_memory_equal(pk.manifest.app_manifest, app_json, strlen(app_json));
		assert_true(pk.manifest.app_manifest > (const char *)pkg &&
		            pk.manifest.app_manifest < (const char *)pk.payload);
	} else {
		assert_null(pk.manifest.app_manifest);
	}

	t = root ? trust_cert(root) : trust_hash(root_hash);
	t.allow_developer = role == IMG_ROLE_DEVELOPER_APP;
	assert_int_equal(img_verify(pkg, len, &t, &pv, NULL, 0), 0);
	assert_int_equal(pv.role, role);
	assert_int_equal(pv.path_len, 2);
	assert_int_equal(img_signer_id(s->cert, want_id), 0);
	assert_memory_equal(pv.signer_id, want_id, 32);
	assert_same_manifest(&pv.manifest, &pk.manifest);
	free(pkg);
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	/* OS components, by root certificate (chain with or without the root) and by root hash. */
	for (uint32_t type = IMG_TYPE_BOOTLOADER; type <= IMG_TYPE_OS; type++) {
		check_round_trip(type, &fx.psigner, NULL, NULL, fx.proot.cert, NULL,
		                 IMG_ROLE_PLATFORM_OS);
		check_round_trip(type, &fx.psigner, fx.proot.cert, NULL, fx.proot.cert, NULL,
		                 IMG_ROLE_PLATFORM_OS);
		check_round_trip(type, &fx.psigner, fx.proot.cert, NULL, NULL, fx.proot_hash,
		                 IMG_ROLE_PLATFORM_OS);
	}
	/* Applications: production and (allowed) developer signers. */
	for (uint32_t type = IMG_TYPE_APP; type <= IMG_TYPE_RTAPP; type++) {
		check_round_trip(type, &fx.tsigner, fx.troot.cert, NULL, fx.troot.cert, NULL,
		                 IMG_ROLE_TENANT_APP);
		check_round_trip(type, &fx.dsigner, NULL, NULL, fx.troot.cert, NULL,
		                 IMG_ROLE_DEVELOPER_APP);
	}
}

static void test_intermediate_chain(void **state)
{
	(void)state;
	uint8_t *pkg;
	size_t len;
	struct img_package pv;
	struct img_trust th = trust_hash(fx.proot_hash), tc = trust_cert(fx.proot.cert);

	/* leaf -> intermediate -> root: a three-certificate path. */
	pkg = pack(IMG_TYPE_OS, &fx.pisigner, fx.pinter.cert, fx.proot.cert, payload16, 16, &len);
	assert_int_equal(img_verify(pkg, len, &th, &pv, NULL, 0), 0);
	assert_int_equal(pv.path_len, 3);
	assert_int_equal(img_verify(pkg, len, &tc, &pv, NULL, 0), 0);
	free(pkg);
	/* Without the root: fine against the certificate, not against the hash
	 * (the device has nothing to compare but the top certificate). */
	pkg = pack(IMG_TYPE_OS, &fx.pisigner, fx.pinter.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), 0);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
	/* Without the intermediate: no path. */
	pkg = pack(IMG_TYPE_OS, &fx.pisigner, fx.proot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
	/* Out of order, or with an unrelated extra certificate: not the path. */
	pkg = pack(IMG_TYPE_OS, &fx.pisigner, fx.proot.cert, fx.pinter.cert, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
	pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.troot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_AUTH);
	free(pkg);
	pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, fx.troot.cert, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
}

static void test_every_bit_flip_refused(void **state)
{
	(void)state;
	struct img_trust th = trust_hash(fx.proot_hash);
	size_t len, cose_len, payload_off, sig_off, flips_ok = 0;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len);

	cose_len = (size_t)pkg[8] | (size_t)pkg[9] << 8;
	payload_off = IMG_HEADER_LEN + cose_len;
	sig_off = payload_off - 64;
	assert_int_equal(verify(pkg, len, &th), 0);
	for (size_t bit = 0; bit < len * 8; bit++) {
		size_t byte = bit / 8;
		int rc;

		pkg[byte] ^= (uint8_t)(1u << (bit % 8));
		rc = img_verify(pkg, len, &th, NULL, NULL, 0);
		if (rc == 0)
			flips_ok++;
		if (byte >= sig_off) {
			/* payload or signature: the signature check says so */
			assert_int_equal(rc, SPH_ERR_BAD_SIGNATURE);
		} else if (byte < 8 || byte >= 12) {
			/* magic, reserved: a bad header */
			if (byte < IMG_HEADER_LEN)
				assert_int_equal(rc, SPH_ERR_MALFORMED);
		}
		/* payload flips also fail the structural parse */
		if (byte >= payload_off)
			assert_int_equal(img_parse(pkg, len, &(struct img_package){0}),
			                 SPH_ERR_BAD_SIGNATURE);
		pkg[byte] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(flips_ok, 0);
	assert_int_equal(verify(pkg, len, &th), 0);
	free(pkg);
}

static void test_truncation_and_trailing(void **state)
{
	(void)state;
	struct img_trust tc = trust_cert(fx.proot.cert);
	struct img_package pk;
	size_t len;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.psigner, NULL, NULL, payload16, 16, &len), *longer;

	for (size_t n = 0; n < len; n++) {
		assert_int_equal(img_parse(pkg, n, &pk), SPH_ERR_TRUNCATED);
		assert_int_equal(verify(pkg, n, &tc), SPH_ERR_TRUNCATED);
	}
	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, pkg, len);
	longer[len] = 0;
	assert_int_equal(img_parse(longer, len + 1, &pk), SPH_ERR_TRAILING);
	assert_int_equal(verify(longer, len + 1, &tc), SPH_ERR_TRAILING);
	assert_int_equal(img_parse(NULL, 0, &pk), SPH_ERR_TRUNCATED);
	assert_int_equal(img_parse(pkg, len, NULL), SPH_ERR_INVALID_ARG);
	free(longer);
	free(pkg);
}

static void test_payload_size_mismatch(void **state)
{
	(void)state;
	struct img_trust tc = trust_cert(fx.proot.cert);
	struct ent e[12];
	uint8_t m[1024], payload[20] = {0};
	size_t n, mlen, len;
	uint8_t *pkg;

	sha256(payload, 16, m_hash);
	/* A correctly signed manifest that claims 16 bytes, with 15, 16 and 17. */
	n = base_ents(e, IMG_TYPE_OS, 16);
	mlen = encode_ents(e, n, m, sizeof(m));
	for (size_t plen = 15; plen <= 17; plen++) {
		pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload, plen, &len);
		assert_int_equal(verify(pkg, len, &tc), plen < 16   ? SPH_ERR_TRUNCATED
		                                        : plen > 16 ? SPH_ERR_TRAILING
		                                                    : 0);
		free(pkg);
	}
	/* Right size, wrong digest: the signature does not cover these bytes. */
	payload[3] = 1;
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(img_parse(pkg, len, &(struct img_package){0}), SPH_ERR_BAD_SIGNATURE);
	free(pkg);
	/* A size beyond 64 MiB is refused by the manifest decoder. */
	e[5].u = (uint64_t)IMG_MAX_PAYLOAD + 1;
	mlen = encode_ents(e, n, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_CLAIM);
	free(pkg);
}

static void test_wrong_signers(void **state)
{
	(void)state;
	struct img_trust tp = trust_cert(fx.proot.cert), tt = trust_cert(fx.troot.cert);
	struct img_trust th = trust_hash(fx.proot_hash), to = trust_cert(fx.oroot.cert);
	size_t len;
	uint8_t *pkg;

	/* Another platform's signer: a valid signature nobody here vouches for. */
	pkg = pack(IMG_TYPE_OS, &fx.osigner, fx.oroot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tp), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &to), 0);
	free(pkg);
	/* A self-signed certificate as the signer: it chains to nothing, and is
	 * not a path even when it is the trusted root itself. */
	pkg = pack(IMG_TYPE_OS, &fx.oroot, NULL, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tp), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &to), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
	/* A tenant production key signing an OS component. */
	for (uint32_t type = IMG_TYPE_BOOTLOADER; type <= IMG_TYPE_OS; type++) {
		pkg = pack(type, &fx.tsigner, fx.troot.cert, NULL, payload16, 16, &len);
		assert_int_equal(verify(pkg, len, &tt), SPH_ERR_PERMISSION);
		tt.allow_developer = true;
		assert_int_equal(verify(pkg, len, &tt), SPH_ERR_PERMISSION);
		tt.allow_developer = false;
		assert_int_equal(verify(pkg, len, &tp), SPH_ERR_AUTH);
		free(pkg);
	}
	/* A developer key signing an OS component, even where developer apps are allowed. */
	pkg = pack(IMG_TYPE_OS, &fx.dsigner, fx.troot.cert, NULL, payload16, 16, &len);
	tt.allow_developer = true;
	assert_int_equal(verify(pkg, len, &tt), SPH_ERR_PERMISSION);
	tt.allow_developer = false;
	free(pkg);
	/* The platform key signing applications. */
	for (uint32_t type = IMG_TYPE_APP; type <= IMG_TYPE_RTAPP; type++) {
		pkg = pack(type, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len);
		assert_int_equal(verify(pkg, len, &tp), SPH_ERR_PERMISSION);
		assert_int_equal(verify(pkg, len, &th), SPH_ERR_PERMISSION);
		free(pkg);
	}
	/* A developer-signed app: refused unless the policy allows developer images. */
	pkg = pack(IMG_TYPE_APP, &fx.dsigner, fx.troot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tt), SPH_ERR_PERMISSION);
	tt.allow_developer = true;
	assert_int_equal(verify(pkg, len, &tt), 0);
	tt.allow_developer = false;
	free(pkg);
	/* EKU chaining: a leaf the tenant root issued for OS signing is refused,
	 * although its own EKU says platform OS. */
	pkg = pack(IMG_TYPE_OS, &fx.tos, fx.troot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tt), SPH_ERR_PERMISSION);
	assert_int_equal(verify(pkg, len, &tp), SPH_ERR_AUTH);
	free(pkg);
	/* A CA's key as the signer: not a signing role. */
	pkg = pack(IMG_TYPE_OS, &fx.pinter, fx.proot.cert, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tp), SPH_ERR_PERMISSION);
	free(pkg);
}

static void test_non_ca_intermediate(void **state)
{
	(void)state;
	struct img_trust tp = trust_cert(fx.proot.cert), th = trust_hash(fx.proot_hash);
	size_t len;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.handleaf, fx.psigner.cert, fx.proot.cert, payload16,
	                    16, &len);

	/* The leaf's issuer is the platform signer, an end entity. */
	assert_int_equal(verify(pkg, len, &tp), SPH_ERR_AUTH);
	assert_int_equal(verify(pkg, len, &th), SPH_ERR_AUTH);
	free(pkg);
}

static void test_validity_time(void **state)
{
	(void)state;
	struct img_trust t = trust_cert(fx.proot.cert);
	size_t elen, flen;
	uint8_t *exp = pack(IMG_TYPE_OS, &fx.expired, NULL, NULL, payload16, 16, &elen);
	uint8_t *fut = pack(IMG_TYPE_OS, &fx.future, NULL, NULL, payload16, 16, &flen);

	assert_int_equal(verify(exp, elen, &t), SPH_ERR_AUTH);
	assert_int_equal(verify(fut, flen, &t), SPH_ERR_AUTH);
	t.time_policy = IMG_TIME_AT;
	t.at = fx.now - 10 * 86400 + 3600; /* inside the expired one's day */
	assert_int_equal(verify(exp, elen, &t), 0);
	assert_int_equal(verify(fut, flen, &t), SPH_ERR_AUTH);
	t.at = fx.now + 10 * 86400 + 3600;
	assert_int_equal(verify(exp, elen, &t), SPH_ERR_AUTH);
	assert_int_equal(verify(fut, flen, &t), 0);
	t.at = fx.now + 30 * 86400; /* both over */
	assert_int_equal(verify(exp, elen, &t), SPH_ERR_AUTH);
	assert_int_equal(verify(fut, flen, &t), SPH_ERR_AUTH);
	/* A device without a clock does not check validity at all. */
	t.time_policy = IMG_TIME_NONE;
	assert_int_equal(verify(exp, elen, &t), 0);
	assert_int_equal(verify(fut, flen, &t), 0);
	free(exp);
	free(fut);
}

static void test_root_hash(void **state)
{
	(void)state;
	uint8_t wrong[IMG_DIGEST_LEN] = {0};
	struct img_trust t = trust_hash(wrong);
	size_t len;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len);

	memcpy(wrong, fx.proot_hash, sizeof(wrong));
	assert_int_equal(verify(pkg, len, &t), 0);
	for (size_t i = 0; i < sizeof(wrong) * 8; i += 37) {
		wrong[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
		wrong[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* The other root's hash; the tenant root's. */
	assert_int_equal(img_root_hash(fx.oroot.cert, wrong), 0);
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	assert_int_equal(img_root_hash(fx.troot.cert, wrong), 0);
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	/* The hash must be of the SPKI, not of the whole certificate. */
	{
		uint8_t d[IMG_MAX_CERT];
		sha256(d, der(fx.proot.cert, d, sizeof(d)), wrong);
		assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	}
	free(pkg);
}

static void test_target_and_trust_args(void **state)
{
	(void)state;
	struct img_trust t = trust_cert(fx.proot.cert);
	size_t len;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len);

	t.target = "sphere-virtual-mt3621";
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_CLAIM);
	t.target = IMG_TARGET_DEFAULT;
	assert_int_equal(verify(pkg, len, &t), 0);
	t.root_hash = fx.proot_hash; /* both anchors */
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_INVALID_ARG);
	t.root_cert = NULL;
	t.root_hash = NULL; /* neither */
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_INVALID_ARG);
	assert_int_equal(img_verify(pkg, len, NULL, NULL, NULL, 0), SPH_ERR_INVALID_ARG);
	free(pkg);
}

static void test_manifest_codec(void **state)
{
	(void)state;
	struct img_manifest m, back;
	uint8_t buf[IMG_MAX_MANIFEST], again[IMG_MAX_MANIFEST];
	static char big[IMG_APP_MANIFEST_MAX + 2];
	size_t len, len2;

	for (uint32_t type = IMG_TYPE_BOOTLOADER; type <= IMG_TYPE_RTAPP; type++) {
		base_manifest(&m, type);
		m.debug = type % 2;
		m.payload_size = IMG_MAX_PAYLOAD;
		m.security_version = IMG_SVN_MAX;
		assert_int_equal(img_manifest_encode(&m, buf, sizeof(buf), &len), 0);
		assert_int_equal(img_manifest_decode(buf, len, &back), 0);
		assert_int_equal(back.type, type);
		assert_int_equal(back.debug, m.debug);
		assert_int_equal(back.payload_size, IMG_MAX_PAYLOAD);
		assert_same_manifest(&back, &m);
		assert_int_equal(img_manifest_encode(&back, again, sizeof(again), &len2), 0);
		assert_int_equal(len2, len);
		assert_memory_equal(again, buf, len);
		assert_int_equal(img_manifest_encode(&m, buf, 10, &len), SPH_ERR_BUFFER_TOO_SMALL);
	}

	/* The encoder refuses what the decoder would refuse. */
#define REFUSED(type, stmt)                                                                        \
	do {                                                                                       \
		base_manifest(&m, type);                                                           \
		stmt;                                                                              \
		assert_int_equal(img_manifest_encode(&m, buf, sizeof(buf), &len), SPH_ERR_CLAIM);  \
		assert_int_equal(len, 0);                                                          \
	} while (0)
	REFUSED(IMG_TYPE_OS, memset(m.component_id, 0, 16));
	REFUSED(IMG_TYPE_OS, m.type = 0);
	REFUSED(IMG_TYPE_OS, m.type = 6);
	REFUSED(IMG_TYPE_OS, m.name[0] = 0);
	REFUSED(IMG_TYPE_OS, memset(m.name, 'a', IMG_NAME_MAX + 1));
	REFUSED(IMG_TYPE_OS, m.name[1] = '\n');
	REFUSED(IMG_TYPE_OS, m.name[1] = (char)0xc3);
	REFUSED(IMG_TYPE_OS, m.version[0] = 0);
	REFUSED(IMG_TYPE_OS, memset(m.version, '1', IMG_VERSION_MAX + 1));
	REFUSED(IMG_TYPE_OS, m.target[0] = 0);
	REFUSED(IMG_TYPE_OS, m.security_version = IMG_SVN_MAX + 1);
	REFUSED(IMG_TYPE_OS, m.payload_size = (uint64_t)IMG_MAX_PAYLOAD + 1);
	REFUSED(IMG_TYPE_OS, (m.app_manifest = app_json, m.app_manifest_len = strlen(app_json)));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = NULL, m.app_manifest_len = 0));
	REFUSED(IMG_TYPE_RTAPP, m.app_manifest_len = 0);
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "[1,2]", m.app_manifest_len = 5));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "\"s\"", m.app_manifest_len = 3));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "{\"a\":1", m.app_manifest_len = 6));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "{} {}", m.app_manifest_len = 5));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "{\"a\":1,\"a\":2}", m.app_manifest_len = 13));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "{}\0", m.app_manifest_len = 3));
	REFUSED(IMG_TYPE_APP, (m.app_manifest = "{\"a\":\"\xff\"}", m.app_manifest_len = 9));
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[IMG_APP_MANIFEST_MAX - 1] = '}';
	base_manifest(&m, IMG_TYPE_APP);
	m.app_manifest = big;
	m.app_manifest_len = IMG_APP_MANIFEST_MAX; /* the largest allowed */
	assert_int_equal(img_manifest_encode(&m, buf, sizeof(buf), &len), 0);
	assert_int_equal(img_manifest_decode(buf, len, &back), 0);
	big[IMG_APP_MANIFEST_MAX - 1] = ' ';
	big[IMG_APP_MANIFEST_MAX] = '}';
	REFUSED(IMG_TYPE_APP,
	        (m.app_manifest = big, m.app_manifest_len = IMG_APP_MANIFEST_MAX + 1));
#undef REFUSED
	assert_int_equal(img_manifest_encode(NULL, buf, sizeof(buf), &len), SPH_ERR_INVALID_ARG);
	assert_int_equal(img_manifest_decode(buf, IMG_MAX_MANIFEST + 1, &back), SPH_ERR_TOO_LARGE);
}

static void test_manifest_decoder_attacks(void **state)
{
	(void)state;
	struct ent e[16], x[16];
	uint8_t buf[1024], id15[15] = {0}, zero16[16] = {0};
	struct img_manifest m;
	size_t n, len;

	n = base_ents(e, IMG_TYPE_OS, 16);
	assert_int_equal(decode_ents(e, n), 0);
	n = base_ents(e, IMG_TYPE_APP, 16);
	assert_int_equal(decode_ents(e, n), 0);

	/* unknown key: appended (11), negative, text */
	n = base_ents(e, IMG_TYPE_APP, 16);
	e[n] = (struct ent){11, E_UINT, 0, NULL, 0};
	assert_int_equal(decode_ents(e, n + 1), SPH_ERR_CLAIM);
	e[n] = (struct ent){-1, E_NEGKEY_UINT, 0, NULL, 0};
	assert_int_equal(decode_ents(e, n + 1), SPH_ERR_CLAIM);
	n = base_ents(e, IMG_TYPE_OS, 16);
	e[n] = (struct ent){0, E_TEXTKEY_UINT, 0, NULL, 0};
	assert_int_equal(decode_ents(e, n + 1), SPH_ERR_CLAIM);
	e[n] = (struct ent){0, E_UINT, 0, NULL, 0}; /* key 0 before key 1 is unknown too */
	memcpy(x + 1, e, n * sizeof(e[0]));
	x[0] = e[n];
	assert_int_equal(decode_ents(x, n + 1), SPH_ERR_CLAIM);

	/* duplicate key (in order, so only the duplicate check can catch it) */
	n = base_ents(e, IMG_TYPE_OS, 16);
	memcpy(x, e, 3 * sizeof(e[0]));
	x[3] = e[2];
	memcpy(x + 4, e + 3, (n - 3) * sizeof(e[0]));
	assert_int_equal(decode_ents(x, n + 1), SPH_ERR_DUPLICATE);
	/* keys out of order */
	memcpy(x, e, n * sizeof(e[0]));
	x[3] = e[4];
	x[4] = e[3];
	assert_int_equal(decode_ents(x, n), SPH_ERR_MALFORMED);

	/* every key missing in turn */
	for (size_t skip = 0; skip < n; skip++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (i != skip)
				x[k++] = e[i];
		assert_int_equal(decode_ents(x, k), SPH_ERR_CLAIM);
	}
	/* wrong types and lengths */
#define BAD(i, entry, want)                                                                        \
	do {                                                                                       \
		n = base_ents(e, IMG_TYPE_OS, 16);                                                 \
		e[i] = (struct ent)entry;                                                          \
		assert_int_equal(decode_ents(e, n), want);                                         \
	} while (0)
	BAD(0, ((struct ent){1, E_BSTR, 0, id15, 15}), SPH_ERR_CLAIM);
	BAD(0, ((struct ent){1, E_BSTR, 0, zero16, 16}), SPH_ERR_CLAIM);
	BAD(0, ((struct ent){1, E_TSTR, 0, "0123456789abcdef", 16}), SPH_ERR_CLAIM);
	BAD(1, ((struct ent){2, E_TSTR, 0, "os", 2}), SPH_ERR_CLAIM);
	BAD(1, ((struct ent){2, E_UINT, 0, NULL, 0}), SPH_ERR_CLAIM);
	BAD(1, ((struct ent){2, E_UINT, 6, NULL, 0}), SPH_ERR_CLAIM);
	BAD(1, ((struct ent){2, E_UINT, 1ull << 40, NULL, 0}), SPH_ERR_CLAIM);
	BAD(2, ((struct ent){3, E_BSTR, 0, "name", 4}), SPH_ERR_CLAIM);
	BAD(2, ((struct ent){3, E_TSTR, 0, "", 0}), SPH_ERR_CLAIM);
	BAD(2, ((struct ent){3, E_TSTR, 0, "a\x1b[2J", 5}), SPH_ERR_CLAIM);
	BAD(3, ((struct ent){4, E_TSTR, 0, "123456789012345678901234567890123", 33}),
	    SPH_ERR_CLAIM);
	BAD(4, ((struct ent){5, E_UINT, 256, NULL, 0}), SPH_ERR_CLAIM);
	BAD(4, ((struct ent){5, E_BOOL, 1, NULL, 0}), SPH_ERR_CLAIM);
	BAD(5, ((struct ent){6, E_TSTR, 0, "16", 2}), SPH_ERR_CLAIM);
	BAD(6, ((struct ent){7, E_BSTR, 0, m_hash, 31}), SPH_ERR_CLAIM);
	BAD(7, ((struct ent){8, E_UINT, 1, NULL, 0}), SPH_ERR_CLAIM);
	BAD(8, ((struct ent){9, E_BSTR, 0, "t", 1}), SPH_ERR_CLAIM);
#undef BAD
	/* app manifest on an OS image; none on an app; not an object; on an app but a bstr */
	n = base_ents(e, IMG_TYPE_OS, 16);
	e[n] = (struct ent){10, E_TSTR, 0, app_json, strlen(app_json)};
	assert_int_equal(decode_ents(e, n + 1), SPH_ERR_CLAIM);
	n = base_ents(e, IMG_TYPE_APP, 16);
	assert_int_equal(decode_ents(e, n - 1), SPH_ERR_CLAIM);
	e[n - 1] = (struct ent){10, E_TSTR, 0, "[]", 2};
	assert_int_equal(decode_ents(e, n), SPH_ERR_CLAIM);
	e[n - 1] = (struct ent){10, E_BSTR, 0, app_json, strlen(app_json)};
	assert_int_equal(decode_ents(e, n), SPH_ERR_CLAIM);

	/* trailing bytes; not a map; truncated */
	n = base_ents(e, IMG_TYPE_OS, 16);
	len = encode_ents(e, n, buf, sizeof(buf));
	buf[len] = 0;
	assert_int_equal(img_manifest_decode(buf, len + 1, &m), SPH_ERR_TRAILING);
	for (size_t cut = 0; cut < len; cut++)
		assert_int_not_equal(img_manifest_decode(buf, cut, &m), 0);
	assert_int_equal(img_manifest_decode((const uint8_t *)"\x80", 1, &m), SPH_ERR_MALFORMED);
	/* a huge map count stops at the end of the input, not after 2^64 rounds */
	buf[0] = 0xbb; /* map, 8-byte count */
	memset(buf + 1, 0xff, 8);
	len = 9 + encode_ents(e, n, buf + 9, sizeof(buf) - 9) - 1;
	memmove(buf + 9, buf + 10, len - 9);
	assert_int_not_equal(img_manifest_decode(buf, len, &m), 0);
}

/* The same manifest and signer, with the envelope changed around them. */
static void test_envelope_attacks(void **state)
{
	(void)state;
	static uint8_t prot[2 * IMG_MAX_CERT + 64], cose[IMG_MAX_COSE + 16];
	struct img_trust tc = trust_cert(fx.proot.cert);
	struct ent e[12];
	uint8_t m[1024], garbage[40];
	const uint8_t empty[] = {0xa0}, kid[] = {0xa1, 0x04, 0x41, 0x01};
	X509 *certs[2] = {fx.psigner.cert, fx.proot.cert};
	size_t n, mlen, pl, cl, len;
	uint8_t *pkg;

	sha256(payload16, 16, m_hash);
	n = base_ents(e, IMG_TYPE_OS, 16);
	mlen = encode_ents(e, n, m, sizeof(m));
	pl = std_prot(IMG_CONTENT_TYPE, certs, 2, prot, sizeof(prot));

	/* the reference: accepted */
	cl = raw_cose(fx.psigner.key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), 0);
	/* header: magic, reserved, cose_len 0 and too large */
	pkg[0] ^= 1;
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	pkg[0] ^= 1;
	pkg[15] = 1;
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	pkg[15] = 0;
	memset(pkg + 8, 0, 4);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	pkg[8] = 1;
	pkg[10] = 1; /* 65537 */
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_TOO_LARGE);
	free(pkg);

	/* untagged */
	cl = raw_cose(fx.psigner.key, false, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	free(pkg);
	/* a kid in the unprotected bucket, signature still valid */
	cl = raw_cose(fx.psigner.key, true, prot, pl, kid, sizeof(kid), m, mlen, cose,
	              sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	free(pkg);
	/* another content type */
	pl = std_prot(IMG_CONTENT_TYPE + 1, certs, 2, prot, sizeof(prot));
	cl = raw_cose(fx.psigner.key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_UNSUPPORTED);
	free(pkg);
	/* no content type: {1: -7, 33: x5chain} */
	pl = std_prot(IMG_CONTENT_TYPE, certs, 2, prot, sizeof(prot));
	memmove(prot + 3, prot + 7, pl - 7);
	prot[0] = 0xa2;
	cl = raw_cose(fx.psigner.key, true, prot, pl - 4, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_UNSUPPORTED);
	free(pkg);
	/* x5chain in the unprotected bucket (not signed): {1: -7, 3: ct} + {33: ...} */
	{
		static uint8_t unprot[2 * IMG_MAX_CERT + 16];
		const uint8_t p2[] = {0xa2, 0x01, 0x26, 0x03, 0x19, 0xfe, 0x1a};
		pl = std_prot(IMG_CONTENT_TYPE, certs, 2, prot, sizeof(prot));
		unprot[0] = 0xa1;
		memcpy(unprot + 1, prot + 7, pl - 7);
		cl = raw_cose(fx.psigner.key, true, p2, sizeof(p2), unprot, pl - 6, m, mlen, cose,
		              sizeof(cose));
		pkg = wrap(cose, cl, payload16, 16, &len);
		assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
		free(pkg);
	}
	/* an extra protected label: {1: -7, 3: ct, 33: x5, 99: 0} */
	pl = std_prot(IMG_CONTENT_TYPE, certs, 2, prot, sizeof(prot));
	prot[0] = 0xa4;
	prot[pl++] = 0x18;
	prot[pl++] = 0x63;
	prot[pl++] = 0x00;
	cl = raw_cose(fx.psigner.key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
	free(pkg);
	/* x5chain entries that are not one DER certificate */
	{
		static uint8_t d[IMG_MAX_CERT + 1];
		size_t dl = der(fx.psigner.cert, d, sizeof(d));
		struct sph_cbw w;
		memset(garbage, 0x30, sizeof(garbage));
		d[dl] = 0x00; /* a certificate with a trailing byte */
		for (int variant = 0; variant < 2; variant++) {
			sph_cbw_init(&w, prot, sizeof(prot));
			sph_cbw_map(&w, 3);
			sph_cbw_uint(&w, 1);
			sph_cbw_int(&w, -7);
			sph_cbw_uint(&w, 3);
			sph_cbw_uint(&w, IMG_CONTENT_TYPE);
			sph_cbw_uint(&w, 33);
			if (variant == 0)
				sph_cbw_bstr(&w, d, dl + 1);
			else
				sph_cbw_bstr(&w, garbage, sizeof(garbage));
			assert_int_equal(sph_cbw_finish(&w, &pl), 0);
			cl = raw_cose(fx.psigner.key, true, prot, pl, empty, 1, m, mlen, cose,
			              sizeof(cose));
			pkg = wrap(cose, cl, payload16, 16, &len);
			assert_int_equal(verify(pkg, len, &tc), SPH_ERR_MALFORMED);
			free(pkg);
		}
	}
	/* the signature made by another key than the leaf's */
	pl = std_prot(IMG_CONTENT_TYPE, certs, 2, prot, sizeof(prot));
	cl = raw_cose(fx.tsigner.key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_BAD_SIGNATURE);
	free(pkg);
	/* a COSE_Sign1 followed by junk inside cose_len */
	cl = raw_cose(fx.psigner.key, true, prot, pl, empty, 1, m, mlen, cose, sizeof(cose));
	cose[cl++] = 0x00;
	pkg = wrap(cose, cl, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_TRAILING);
	free(pkg);
}

static void test_manifest_attacks_in_package(void **state)
{
	(void)state;
	struct img_trust tc = trust_cert(fx.proot.cert), tt = trust_cert(fx.troot.cert);
	struct ent e[12];
	uint8_t m[1024];
	size_t n, mlen, len;
	uint8_t *pkg;

	sha256(payload16, 16, m_hash);
	/* Signed by the right key, but the manifest breaks the profile. */
	n = base_ents(e, IMG_TYPE_OS, 16);
	e[n] = (struct ent){11, E_UINT, 0, NULL, 0};
	mlen = encode_ents(e, n + 1, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_CLAIM);
	free(pkg);
	e[n] = (struct ent){10, E_TSTR, 0, app_json, strlen(app_json)}; /* app manifest on an OS */
	mlen = encode_ents(e, n + 1, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_CLAIM);
	free(pkg);
	e[n] = e[n - 1]; /* duplicate key 9 */
	mlen = encode_ents(e, n + 1, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_DUPLICATE);
	free(pkg);
	e[1] = (struct ent){2, E_TSTR, 0, "os", 2}; /* wrong type */
	mlen = encode_ents(e, n, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.psigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tc), SPH_ERR_CLAIM);
	free(pkg);
	n = base_ents(e, IMG_TYPE_APP, 16); /* an app without its app manifest */
	mlen = encode_ents(e, n - 1, m, sizeof(m));
	pkg = pack_manifest_bytes(&fx.tsigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tt), SPH_ERR_CLAIM);
	free(pkg);
	mlen = encode_ents(e, n, m, sizeof(m)); /* ... and with it */
	pkg = pack_manifest_bytes(&fx.tsigner, NULL, m, mlen, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &tt), 0);
	free(pkg);
}

static void test_pack_refusals(void **state)
{
	(void)state;
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t *pkg = (uint8_t *)1;
	size_t len = 1;

	base_manifest(&m, IMG_TYPE_OS);
	/* a key that is not the leaf's */
	assert_int_equal(
	        img_pack(&m, payload16, 16, fx.tsigner.key, fx.psigner.cert, NULL, &pkg, &len),
	        SPH_ERR_INVALID_ARG);
	assert_null(pkg);
	assert_int_equal(len, 0);
	/* more than IMG_MAX_CHAIN certificates */
	for (int i = 0; i < IMG_MAX_CHAIN; i++)
		assert_true(sk_X509_push(chain, fx.proot.cert) > 0);
	assert_int_equal(
	        img_pack(&m, payload16, 16, fx.psigner.key, fx.psigner.cert, chain, &pkg, &len),
	        SPH_ERR_TOO_LARGE);
	(void)sk_X509_pop(chain);
	assert_int_equal(
	        img_pack(&m, payload16, 16, fx.psigner.key, fx.psigner.cert, chain, &pkg, &len), 0);
	free(pkg);
	/* a manifest the decoder would refuse */
	m.name[0] = 0;
	assert_int_equal(
	        img_pack(&m, payload16, 16, fx.psigner.key, fx.psigner.cert, NULL, &pkg, &len),
	        SPH_ERR_CLAIM);
	base_manifest(&m, IMG_TYPE_OS);
	assert_int_equal(img_pack(&m, NULL, 1, fx.psigner.key, fx.psigner.cert, NULL, &pkg, &len),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(img_pack(&m, payload16, (size_t)IMG_MAX_PAYLOAD + 1, fx.psigner.key,
	                          fx.psigner.cert, NULL, &pkg, &len),
	                 SPH_ERR_TOO_LARGE);
	/* an empty payload is fine */
	assert_int_equal(img_pack(&m, NULL, 0, fx.psigner.key, fx.psigner.cert, NULL, &pkg, &len),
	                 0);
	{
		struct img_trust t = trust_cert(fx.proot.cert);
		assert_int_equal(verify(pkg, len, &t), 0);
	}
	free(pkg);
	sk_X509_free(chain);
}

static void test_roles_and_names(void **state)
{
	(void)state;
	enum img_role r;
	uint32_t t;

	for (uint32_t type = 0; type <= 6; type++) {
		bool os = type >= 1 && type <= 3, app = type == 4 || type == 5;
		assert_int_equal(img_role_may_sign(IMG_ROLE_PLATFORM_OS, type, true), os);
		assert_int_equal(img_role_may_sign(IMG_ROLE_TENANT_APP, type, false), app);
		assert_int_equal(img_role_may_sign(IMG_ROLE_DEVELOPER_APP, type, false), false);
		assert_int_equal(img_role_may_sign(IMG_ROLE_DEVELOPER_APP, type, true), app);
		assert_int_equal(img_role_may_sign(IMG_ROLE_NONE, type, true), false);
		if (img_type_name(type)) {
			assert_int_equal(img_type_from_name(img_type_name(type), &t), 0);
			assert_int_equal(t, type);
		}
	}
	assert_null(img_type_name(0));
	assert_null(img_type_name(6));
	assert_int_equal(img_type_from_name("kernel", &t), SPH_ERR_INVALID_ARG);
	assert_string_equal(img_role_oid(IMG_ROLE_PLATFORM_OS),
	                    "2.25.230968341780373320617375492591400982376.1");
	assert_string_equal(img_role_oid(IMG_ROLE_TENANT_APP),
	                    "2.25.230968341780373320617375492591400982376.2");
	assert_string_equal(img_role_oid(IMG_ROLE_DEVELOPER_APP),
	                    "2.25.230968341780373320617375492591400982376.3");
	assert_null(img_role_oid(IMG_ROLE_NONE));

	assert_int_equal(img_cert_role(fx.psigner.cert, &r), 0);
	assert_int_equal(r, IMG_ROLE_PLATFORM_OS);
	assert_int_equal(img_cert_role(fx.tsigner.cert, &r), 0);
	assert_int_equal(r, IMG_ROLE_TENANT_APP);
	assert_int_equal(img_cert_role(fx.dsigner.cert, &r), 0);
	assert_int_equal(r, IMG_ROLE_DEVELOPER_APP);
	assert_int_equal(img_cert_role(fx.proot.cert, &r), SPH_ERR_PERMISSION);
	assert_int_equal(r, IMG_ROLE_NONE);
	assert_int_equal(img_cert_role(fx.pinter.cert, &r), SPH_ERR_PERMISSION);
	assert_true(img_cert_has_role(fx.proot.cert, IMG_ROLE_PLATFORM_OS));
	assert_false(img_cert_has_role(fx.proot.cert, IMG_ROLE_TENANT_APP));
	assert_true(img_cert_has_role(fx.troot.cert, IMG_ROLE_TENANT_APP));
	assert_true(img_cert_has_role(fx.troot.cert, IMG_ROLE_DEVELOPER_APP));
	assert_false(img_cert_has_role(fx.troot.cert, IMG_ROLE_PLATFORM_OS));
}

static void test_cert_make_refusals(void **state)
{
	(void)state;
	EVP_PKEY *k = (EVP_PKEY *)1;
	X509 *c = (X509 *)1;
	struct img_cert_params p = {.kind = IMG_CERT_PLATFORM_SIGNER,
	                            .issuer_key = fx.psigner.key,
	                            .issuer_cert = fx.psigner.cert};

	/* a non-CA issuer */
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	assert_null(k);
	assert_null(c);
	/* an issuer key that is not the issuer's */
	p.issuer_key = fx.troot.key;
	p.issuer_cert = fx.proot.cert;
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	/* a root with an issuer; a signer without one */
	p.kind = IMG_CERT_PLATFORM_ROOT;
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p = (struct img_cert_params){.kind = IMG_CERT_TENANT_SIGNER};
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	/* bad names, days, kinds, roles */
	p = (struct img_cert_params){.kind = IMG_CERT_TENANT_ROOT, .cn = "bad\nname"};
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p.cn = "";
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p.cn = NULL;
	p.days = IMG_DAYS_MAX + 1;
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p.days = 0;
	p.kind = 99;
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p = (struct img_cert_params){.kind = IMG_CERT_INTERMEDIATE,
	                             .roles = 1u << 7,
	                             .issuer_key = fx.proot.key,
	                             .issuer_cert = fx.proot.cert};
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	p.roles = 0;
	assert_int_equal(img_cert_make(&p, &k, &c), SPH_ERR_INVALID_ARG);
	/* a custom name and lifetime are kept */
	p = (struct img_cert_params){.kind = IMG_CERT_TENANT_ROOT, .cn = "Contoso", .days = 2};
	assert_int_equal(img_cert_make(&p, &k, &c), 0);
	assert_int_equal(X509_check_ca(c), 1);
	{
		char cn[32];
		assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName,
		                                           cn, sizeof(cn)),
		                 7);
		assert_string_equal(cn, "Contoso");
	}
	EVP_PKEY_free(k);
	X509_free(c);
}

static void test_keygen_files(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char *rk = tu_path(dir, "root.key"), *rc = tu_path(dir, "root.pem");
	char *sk = tu_path(dir, "signer.key"), *sc = tu_path(dir, "signer.pem");
	char *dk = tu_path(dir, "dev.key"), *dc = tu_path(dir, "dev.pem");
	char *bad = tu_path(dir, "nodir/x.key");
	uint8_t hash[IMG_DIGEST_LEN], hash2[IMG_DIGEST_LEN], *before = NULL, *after = NULL;
	uint8_t junk[IMG_DIGEST_LEN];
	size_t blen, alen;
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	struct stat st;

	assert_int_equal(img_keygen_root(IMG_CERT_PLATFORM_ROOT, NULL, 0, rk, rc, hash), 0);
	assert_int_equal(stat(rk, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(rc, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(img_load_certs(rc, &certs), 0);
	assert_int_equal(sk_X509_num(certs), 1);
	assert_int_equal(img_root_hash(sk_X509_value(certs, 0), hash2), 0);
	assert_memory_equal(hash, hash2, sizeof(hash));
	assert_int_equal(img_load_key(rk, &key), 0);
	assert_int_equal(EVP_PKEY_eq(key, X509_get0_pubkey(sk_X509_value(certs, 0))), 1);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);

	/* never over an existing file: both untouched */
	assert_int_equal(tu_read_file(rk, &before, &blen), 0);
	assert_int_equal(img_keygen_root(IMG_CERT_PLATFORM_ROOT, NULL, 0, rk, sk, junk),
	                 SPH_ERR_STATE);
	assert_int_equal(img_keygen_root(IMG_CERT_TENANT_ROOT, NULL, 0, sk, rc, junk),
	                 SPH_ERR_STATE);
	assert_int_equal(stat(sk, &st), -1);
	assert_int_equal(tu_read_file(rk, &after, &alen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	/* a failed certificate write leaves no key behind */
	assert_int_equal(img_keygen_root(IMG_CERT_TENANT_ROOT, NULL, 0, sk, bad, junk), SPH_ERR_IO);
	assert_int_equal(stat(sk, &st), -1);
	assert_int_equal(img_keygen_root(IMG_CERT_PLATFORM_SIGNER, NULL, 0, sk, sc, junk),
	                 SPH_ERR_INVALID_ARG);
	for (size_t i = 0; i < sizeof(junk); i++)
		assert_int_equal(junk[i], 0); /* no hash on failure */

	/* signers: the right issuer works; one that may not certify the role is refused */
	assert_int_equal(
	        img_keygen_signer(IMG_CERT_PLATFORM_SIGNER, "OS signer 1", 30, rk, rc, sk, sc), 0);
	assert_int_equal(img_keygen_signer(IMG_CERT_DEVELOPER_SIGNER, NULL, 0, rk, rc, dk, dc),
	                 SPH_ERR_PERMISSION);
	assert_int_equal(stat(dk, &st), -1);
	assert_int_equal(img_keygen_signer(IMG_CERT_PLATFORM_SIGNER, NULL, 0, sk, sc, dk, dc),
	                 SPH_ERR_INVALID_ARG); /* the issuer is not a CA */
	assert_int_equal(img_keygen_signer(IMG_CERT_PLATFORM_SIGNER, NULL, 0, rk, rk, dk, dc),
	                 SPH_ERR_MALFORMED); /* a key is no certificate */
	assert_int_equal(img_keygen_signer(IMG_CERT_PLATFORM_ROOT, NULL, 0, rk, rc, dk, dc),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(img_load_key(rc, &key), SPH_ERR_MALFORMED);
	assert_int_equal(img_load_key(bad, &key), SPH_ERR_NOT_FOUND);
	assert_null(key);

	/* the files sign and verify a package */
	{
		EVP_PKEY *skey = NULL;
		STACK_OF(X509) *leaf = NULL, *root = NULL;
		struct img_manifest m;
		struct img_trust t = {.root_hash = hash};
		uint8_t *pkg = NULL;
		size_t len = 0;

		assert_int_equal(img_load_key(sk, &skey), 0);
		assert_int_equal(img_load_certs(sc, &leaf), 0);
		assert_int_equal(img_load_certs(rc, &root), 0);
		base_manifest(&m, IMG_TYPE_BOOTLOADER);
		assert_int_equal(
		        img_pack(&m, payload16, 16, skey, sk_X509_value(leaf, 0), root, &pkg, &len),
		        0);
		assert_int_equal(verify(pkg, len, &t), 0);
		free(pkg);
		EVP_PKEY_free(skey);
		sk_X509_pop_free(leaf, X509_free);
		sk_X509_pop_free(root, X509_free);
	}
	free(before);
	free(after);
	tu_rmtree(dir);
	free(rk);
	free(rc);
	free(sk);
	free(sc);
	free(dk);
	free(dc);
	free(bad);
	free(dir);
}

static void test_write_file(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp();
	char *f = tu_path(dir, "f");
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;

	assert_int_equal(img_write_file(f, (const uint8_t *)"one", 3, 0640, false), 0);
	assert_int_equal(img_write_file(f, (const uint8_t *)"two", 3, 0640, false), SPH_ERR_STATE);
	assert_int_equal(img_read_file(f, 100, &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(img_write_file(f, (const uint8_t *)"three", 5, 0600, true), 0);
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(img_read_file(f, 4, &buf, &len), SPH_ERR_TOO_LARGE);
	assert_null(buf);
	assert_int_equal(img_read_file(f, 5, &buf, &len), 0);
	assert_memory_equal(buf, "three", 5);
	assert_int_equal(buf[5], 0);
	free(buf);
	assert_int_equal(img_read_file(dir, 100, &buf, &len), SPH_ERR_IO);
	tu_rmtree(dir);
	free(f);
	free(dir);
}

/* The boot's verified-signer cache (struct img_cache) skips only the
 * certificate path: every other check still runs on a hit, and the key covers
 * the root, the time policy and the exact x5chain bytes. */
static void test_verified_signer_cache(void **state)
{
	(void)state;
	struct img_cache cache;
	struct img_trust t = trust_hash(fx.proot_hash);
	uint8_t other[IMG_DIGEST_LEN];
	const uint8_t payload2[16] = "other firmware!";
	size_t len, len2, len3, len4, flips_ok = 0;
	uint8_t *pkg = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len);
	uint8_t *pkg2 = pack(IMG_TYPE_OS, &fx.psigner, fx.proot.cert, NULL, payload2, 16, &len2);
	uint8_t *app = pack(IMG_TYPE_APP, &fx.psigner, fx.proot.cert, NULL, payload16, 16, &len3);
	uint8_t *exp = pack(IMG_TYPE_OS, &fx.expired, fx.proot.cert, NULL, payload16, 16, &len4);

	memset(&cache, 0, sizeof(cache));
	t.time_policy = IMG_TIME_NONE;
	t.cache = &cache;
	assert_int_equal(verify(pkg, len, &t), 0);
	assert_int_equal(cache.misses, 1);
	assert_int_equal(cache.n, 1);
	assert_int_equal(verify(pkg, len, &t), 0);
	assert_int_equal(verify(pkg2, len2, &t), 0);
	assert_int_equal(cache.hits, 2);

	/* Warm: every single-bit flip is still refused; signature and payload
	 * flips by the signature checks, which a hit does not skip. */
	{
		size_t cose_len = (size_t)pkg[8] | (size_t)pkg[9] << 8;
		size_t sig_off = IMG_HEADER_LEN + cose_len - 64;
		for (size_t bit = 0; bit < len * 8; bit++) {
			int rc;
			pkg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rc = img_verify(pkg, len, &t, NULL, NULL, 0);
			if (rc == 0)
				flips_ok++;
			if (bit / 8 >= sig_off)
				assert_int_equal(rc, SPH_ERR_BAD_SIGNATURE);
			pkg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		assert_int_equal(flips_ok, 0);
		assert_true(cache.n <= IMG_CACHE_SLOTS);
	}
	/* The role is still checked: an OS key may not sign an app. */
	assert_int_equal(verify(app, len3, &t), SPH_ERR_PERMISSION);
	/* Another root: not a hit. */
	assert_int_equal(img_root_hash(fx.oroot.cert, other), 0);
	t.root_hash = other;
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	t.root_hash = fx.proot_hash;
	/* A path cached without a time check is not a hit under one. */
	assert_int_equal(verify(exp, len4, &t), 0);
	t.time_policy = IMG_TIME_AT;
	t.at = fx.now;
	assert_int_equal(verify(exp, len4, &t), SPH_ERR_AUTH);
	/* IMG_TIME_NOW never uses the cache. */
	t.time_policy = IMG_TIME_NOW;
	{
		uint64_t h = cache.hits, m = cache.misses;
		assert_int_equal(verify(pkg, len, &t), 0);
		assert_int_equal(cache.hits, h);
		assert_int_equal(cache.misses, m);
	}
	img_cache_clear(&cache);
	assert_int_equal(cache.n, 0);
	img_cache_clear(NULL);
	free(pkg);
	free(pkg2);
	free(app);
	free(exp);
}

/* The trusted root is matched by its key hash, but its self-signature is
 * still checked: a root certificate whose fields were altered is refused. */
static void test_root_self_signature(void **state)
{
	(void)state;
	struct img_trust t = trust_hash(fx.proot_hash);
	uint8_t d[IMG_MAX_CERT];
	size_t n = der(fx.proot.cert, d, sizeof(d)), len;
	const unsigned char *p = d;
	X509 *bad;
	uint8_t *pkg;

	d[n - 1] ^= 0x01; /* the signature's last byte: still DER, no longer valid */
	bad = d2i_X509(NULL, &p, (long)n);
	assert_non_null(bad);
	pkg = pack(IMG_TYPE_OS, &fx.psigner, bad, NULL, payload16, 16, &len);
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	t.time_policy = IMG_TIME_NONE;
	assert_int_equal(verify(pkg, len, &t), SPH_ERR_AUTH);
	free(pkg);
	X509_free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip_every_type),
	        cmocka_unit_test(test_intermediate_chain),
	        cmocka_unit_test(test_every_bit_flip_refused),
	        cmocka_unit_test(test_truncation_and_trailing),
	        cmocka_unit_test(test_payload_size_mismatch),
	        cmocka_unit_test(test_wrong_signers),
	        cmocka_unit_test(test_non_ca_intermediate),
	        cmocka_unit_test(test_validity_time),
	        cmocka_unit_test(test_root_hash),
	        cmocka_unit_test(test_verified_signer_cache),
	        cmocka_unit_test(test_root_self_signature),
	        cmocka_unit_test(test_target_and_trust_args),
	        cmocka_unit_test(test_manifest_codec),
	        cmocka_unit_test(test_manifest_decoder_attacks),
	        cmocka_unit_test(test_envelope_attacks),
	        cmocka_unit_test(test_manifest_attacks_in_package),
	        cmocka_unit_test(test_pack_refusals),
	        cmocka_unit_test(test_roles_and_names),
	        cmocka_unit_test(test_cert_make_refusals),
	        cmocka_unit_test(test_keygen_files),
	        cmocka_unit_test(test_write_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
