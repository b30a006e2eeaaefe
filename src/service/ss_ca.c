/*
 * ss_ca: the tenant CA (ss_ca.h, docs/api.md §5) on OpenSSL: key generation,
 * AES-256-GCM key wrapping under the key-encryption key, certificates.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "ss_ca.h"

#define SS_GCM_NONCE 12
#define SS_GCM_TAG   16
#define SS_AAD_LABEL "sphere-ss ca key v1"
#define SS_AAD_IMAGE "sphere-ss image key v1"
#define SS_SKEW      300 /* seconds a certificate is back-dated */

static const char *ss_ca_tenant_ok(const char *t)
{
	return t && t[0] && strlen(t) <= 64 ? t : NULL;
}

/* ---- key wrapping ---------------------------------------------------------- */

/* The associated data of each kind of wrapped key (with its NUL), so a blob
 * of one kind never unwraps as another. */
static const char *ss_key_label(enum ss_key_use use)
{
	return use == SS_KEY_IMAGE ? SS_AAD_IMAGE : SS_AAD_LABEL;
}

static int ss_gcm(bool enc, const uint8_t kek[SS_KEK_LEN], const uint8_t nonce[SS_GCM_NONCE],
                  enum ss_key_use use, const char *tenant, const uint8_t *in, size_t len,
                  uint8_t *out, uint8_t tag[SS_GCM_TAG])
{
	const char *label = ss_key_label(use);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, kek, nonce, enc ? 1 : 0) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)label, (int)strlen(label) + 1) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)tenant, (int)strlen(tenant)) == 1 &&
	     EVP_CipherUpdate(c, out, &n, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SS_GCM_TAG, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out + n, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SS_GCM_TAG, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	ERR_clear_error();
	return ok ? 0 : enc ? SPH_ERR_CRYPTO : SPH_ERR_AUTH;
}

static int ss_wrap_use(EVP_PKEY *key, const uint8_t kek[SS_KEK_LEN], enum ss_key_use use,
                       const char *tenant, struct ss_ca_key *out)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	uint8_t *der = NULL, *blob = NULL;
	int len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	int rc = SPH_ERR_CRYPTO;

	if (len <= 0 || (size_t)len > SS_CA_KEYBLOB_MAX - SS_GCM_NONCE - SS_GCM_TAG)
		goto out;
	rc = SPH_ERR_NOMEM;
	blob = malloc(SS_GCM_NONCE + (size_t)len + SS_GCM_TAG);
	if (!blob)
		goto out;
	rc = SPH_ERR_RANDOM;
	if (RAND_bytes(blob, SS_GCM_NONCE) != 1)
		goto out;
	rc = ss_gcm(true, kek, blob, use, tenant, der, (size_t)len, blob + SS_GCM_NONCE,
	            blob + SS_GCM_NONCE + len);
	if (rc != 0)
		goto out;
	out->key_blob = blob;
	out->key_blob_len = SS_GCM_NONCE + (size_t)len + SS_GCM_TAG;
	blob = NULL;
out:
	if (der) {
		OPENSSL_cleanse(der, (size_t)len);
		OPENSSL_free(der);
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	free(blob);
	return rc;
}

static int ss_unwrap_use(const struct ss_ca_key *k, const uint8_t kek[SS_KEK_LEN],
                         enum ss_key_use use, const char *tenant, EVP_PKEY **key)
{
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	const uint8_t *p;
	uint8_t *der = NULL;
	size_t len;
	int rc = SPH_ERR_MALFORMED;

	*key = NULL;
	if (!k->key_blob || k->key_blob_len <= SS_GCM_NONCE + SS_GCM_TAG ||
	    k->key_blob_len > SS_CA_KEYBLOB_MAX)
		return rc;
	len = k->key_blob_len - SS_GCM_NONCE - SS_GCM_TAG;
	der = malloc(len);
	if (!der)
		return SPH_ERR_NOMEM;
	rc = ss_gcm(false, kek, k->key_blob, use, tenant, k->key_blob + SS_GCM_NONCE, len, der,
	            k->key_blob + SS_GCM_NONCE + len);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	p = der;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	if (!p8 || p != der + len)
		goto out;
	*key = EVP_PKCS82PKEY(p8);
	rc = *key ? 0 : SPH_ERR_MALFORMED;
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	OPENSSL_cleanse(der, len);
	free(der);
	ERR_clear_error();
	return rc;
}

static int ss_wrap(EVP_PKEY *key, const uint8_t kek[SS_KEK_LEN], const char *tenant,
                   struct ss_ca_key *out)
{
	return ss_wrap_use(key, kek, SS_KEY_CA, tenant, out);
}

static int ss_unwrap(const struct ss_ca_key *k, const uint8_t kek[SS_KEK_LEN], const char *tenant,
                     EVP_PKEY **key)
{
	return ss_unwrap_use(k, kek, SS_KEY_CA, tenant, key);
}

int ss_key_wrap(EVP_PKEY *key, const uint8_t kek[SS_KEK_LEN], enum ss_key_use use,
                const char *tenant_id, uint8_t **blob, size_t *len)
{
	struct ss_ca_key k = {0};
	int rc = SPH_ERR_INVALID_ARG;

	if (blob)
		*blob = NULL;
	if (len)
		*len = 0;
	if (!key || !kek || !blob || !len || !ss_ca_tenant_ok(tenant_id) ||
	    (use != SS_KEY_CA && use != SS_KEY_IMAGE))
		goto out;
	rc = ss_wrap_use(key, kek, use, tenant_id, &k);
	if (rc)
		goto out;
	*blob = k.key_blob;
	*len = k.key_blob_len;
out:
	return rc;
}

int ss_key_unwrap(const uint8_t *blob, size_t len, const uint8_t kek[SS_KEK_LEN],
                  enum ss_key_use use, const char *tenant_id, EVP_PKEY **key)
{
	struct ss_ca_key k = {0};

	if (key)
		*key = NULL;
	if (!blob || !kek || !key || !ss_ca_tenant_ok(tenant_id) ||
	    (use != SS_KEY_CA && use != SS_KEY_IMAGE))
		return SPH_ERR_INVALID_ARG;
	k.key_blob = (uint8_t *)blob;
	k.key_blob_len = len;
	return ss_unwrap_use(&k, kek, use, tenant_id, key);
}

/* ---- certificates ---------------------------------------------------------- */

static int ss_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return SPH_ERR_CRYPTO;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : SPH_ERR_CRYPTO;
}

/* A 128-bit random serial. */
static int ss_serial(X509 *x)
{
	uint8_t r[16];
	BIGNUM *bn;
	ASN1_INTEGER *ai = NULL;
	int rc = SPH_ERR_RANDOM;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return rc;
	r[0] |= 0x40; /* never short: 127 or 128 significant bits */
	bn = BN_bin2bn(r, sizeof(r), NULL);
	rc = SPH_ERR_CRYPTO;
	if (bn && (ai = BN_to_ASN1_INTEGER(bn, NULL)) && X509_set_serialNumber(x, ai) == 1)
		rc = 0;
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

struct ss_cert_spec {
	const char *cn, *o;
	EVP_PKEY *subject_key;     /* public key certified, or NULL: */
	const uint8_t *subject_pt; /* a P-256 point (0x04 || X || Y), checked */
	X509 *issuer;              /* NULL: self-signed */
	EVP_PKEY *issuer_key;      /* signs */
	time_t not_before, not_after;
	const char *const *exts; /* NULL-terminated nid-value pairs as text */
};

/* Sets x's subjectPublicKeyInfo to the P-256 point pt without an EVP_PKEY:
 * OpenSSL 3.0's X509_set_pubkey encodes a key and decodes it back through
 * the provider decoders, once the largest cost of issuing a certificate. */
static int ss_set_p256(X509 *x, const uint8_t pt[65])
{
	X509_PUBKEY *pk = X509_get_X509_PUBKEY(x);
	unsigned char *enc = OPENSSL_memdup(pt, 65);

	if (!pk || !enc ||
	    X509_PUBKEY_set0_param(pk, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
	                           OBJ_nid2obj(NID_X9_62_prime256v1), enc, 65) != 1) {
		OPENSSL_free(enc);
		return SPH_ERR_CRYPTO;
	}
	return 0;
}

static int ss_cert_make(const struct ss_cert_spec *sp, const int *nids, X509 **out)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	int rc = SPH_ERR_CRYPTO;

	*out = NULL;
	if (!x || X509_set_version(x, 2) != 1 || (rc = ss_serial(x)) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	name = X509_NAME_new();
	if (!name ||
	    /* UTF8String set directly: a device id CN is 128 characters, past
	     * X.520's 64-character bound that the MBSTRING path enforces. */
	    X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
	                               (const unsigned char *)sp->cn, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_organizationName, V_ASN1_UTF8STRING,
	                               (const unsigned char *)sp->o, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, sp->issuer ? X509_get_subject_name(sp->issuer) : name) != 1 ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &(time_t){sp->not_before}) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &(time_t){sp->not_after}) ||
	    (sp->subject_key ? X509_set_pubkey(x, sp->subject_key) != 1
	                     : ss_set_p256(x, sp->subject_pt) != 0))
		goto out;
	for (size_t i = 0; nids[i]; i++) {
		if ((rc = ss_ext(x, sp->issuer ? sp->issuer : x, nids[i], sp->exts[i])) != 0)
			goto out;
	}
	rc = SPH_ERR_CRYPTO;
	if (X509_sign(x, sp->issuer_key, EVP_sha256()) <= 0)
		goto out;
	*out = x;
	x = NULL;
	rc = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

static int ss_der(X509 *x, uint8_t **der, size_t *len)
{
	uint8_t *p = NULL;
	int n = i2d_X509(x, &p);

	if (n <= 0 || (size_t)n > SS_CA_DER_MAX) {
		OPENSSL_free(p);
		return SPH_ERR_CRYPTO;
	}
	*der = malloc((size_t)n);
	if (!*der) {
		OPENSSL_free(p);
		return SPH_ERR_NOMEM;
	}
	memcpy(*der, p, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(p);
	return 0;
}

static X509 *ss_x509(const struct ss_ca_key *k)
{
	const uint8_t *p = k->cert_der;
	X509 *x = p ? d2i_X509(NULL, &p, (long)k->cert_len) : NULL;

	if (x && p != k->cert_der + k->cert_len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

void ss_ca_pair_free(struct ss_ca_pair *p)
{
	if (!p)
		return;
	free(p->root.cert_der);
	free(p->device.cert_der);
	if (p->root.key_blob)
		OPENSSL_cleanse(p->root.key_blob, p->root.key_blob_len);
	if (p->device.key_blob)
		OPENSSL_cleanse(p->device.key_blob, p->device.key_blob_len);
	free(p->root.key_blob);
	free(p->device.key_blob);
	memset(p, 0, sizeof(*p));
}

int ss_ca_create(const char *tenant_id, const uint8_t kek[SS_KEK_LEN], time_t not_before,
                 struct ss_ca_pair *out)
{
	static const int root_nids[] = {NID_basic_constraints, NID_key_usage,
	                                NID_subject_key_identifier, 0};
	static const char *const root_exts[] = {"critical,CA:TRUE,pathlen:1",
	                                        "critical,keyCertSign,cRLSign", "hash"};
	static const int ca_nids[] = {NID_basic_constraints, NID_key_usage,
	                              NID_subject_key_identifier, NID_authority_key_identifier, 0};
	static const char *const ca_exts[] = {"critical,CA:TRUE,pathlen:0",
	                                      "critical,keyCertSign,cRLSign", "hash",
	                                      "keyid:always"};
	struct ss_ca_pair p;
	EVP_PKEY *rk = NULL, *ck = NULL;
	X509 *root = NULL, *ca = NULL;
	char cn_root[96], cn_ca[96];
	time_t nb = not_before ? not_before : time(NULL);
	int rc = SPH_ERR_INVALID_ARG;

	memset(&p, 0, sizeof(p));
	if (!ss_ca_tenant_ok(tenant_id) || !kek || !out)
		goto out;
	snprintf(cn_root, sizeof(cn_root), "Sphere tenant %s root", tenant_id);
	snprintf(cn_ca, sizeof(cn_ca), "Sphere tenant %s device CA", tenant_id);
	rc = SPH_ERR_CRYPTO;
	rk = EVP_EC_gen("P-256");
	ck = EVP_EC_gen("P-256");
	if (!rk || !ck)
		goto out;
	{
		struct ss_cert_spec rs = {.cn = cn_root,
		                          .o = tenant_id,
		                          .subject_key = rk,
		                          .issuer_key = rk,
		                          .not_before = nb,
		                          .not_after = nb + (time_t)SS_CA_ROOT_DAYS * 86400,
		                          .exts = root_exts};
		if ((rc = ss_cert_make(&rs, root_nids, &root)) != 0)
			goto out;
	}
	{
		struct ss_cert_spec cs = {.cn = cn_ca,
		                          .o = tenant_id,
		                          .subject_key = ck,
		                          .issuer = root,
		                          .issuer_key = rk,
		                          .not_before = nb,
		                          .not_after = nb + (time_t)SS_CA_DEVICE_DAYS * 86400,
		                          .exts = ca_exts};
		if ((rc = ss_cert_make(&cs, ca_nids, &ca)) != 0)
			goto out;
	}
	if ((rc = ss_der(root, &p.root.cert_der, &p.root.cert_len)) != 0 ||
	    (rc = ss_der(ca, &p.device.cert_der, &p.device.cert_len)) != 0 ||
	    (rc = ss_wrap(rk, kek, tenant_id, &p.root)) != 0 ||
	    (rc = ss_wrap(ck, kek, tenant_id, &p.device)) != 0)
		goto out;
	*out = p;
	memset(&p, 0, sizeof(p));
out:
	ss_ca_pair_free(&p);
	X509_free(root);
	X509_free(ca);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ck);
	return rc;
}

static EC_GROUP *ss_p256;
static pthread_once_t ss_p256_once = PTHREAD_ONCE_INIT;

static void ss_p256_init(void)
{
	ss_p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* Whether pt (0x04 || X || Y) is a point of P-256 (its cofactor is 1: on the
 * curve and not at infinity is all there is to check). The group is made
 * once and only read after. */
static bool ss_p256_ok(const uint8_t pt[65])
{
	EC_POINT *q;
	bool ok;

	if (pthread_once(&ss_p256_once, ss_p256_init) != 0 || !ss_p256)
		return false;
	q = EC_POINT_new(ss_p256);
	ok = q && EC_POINT_oct2point(ss_p256, q, pt, 65, NULL) == 1 &&
	     EC_POINT_is_on_curve(ss_p256, q, NULL) == 1 &&
	     EC_POINT_is_at_infinity(ss_p256, q) == 0;
	EC_POINT_free(q);
	ERR_clear_error();
	return ok;
}

int ss_ca_issue_x509(X509 *cax, EVP_PKEY *ck, const char *tenant_id, const uint8_t pub[64],
                     time_t now, unsigned hours, X509 **out)
{
	static const int nids[] = {NID_basic_constraints,
	                           NID_key_usage,
	                           NID_ext_key_usage,
	                           NID_subject_key_identifier,
	                           NID_authority_key_identifier,
	                           0};
	static const char *const exts[] = {"critical,CA:FALSE", "critical,digitalSignature",
	                                   "clientAuth", "hash", "keyid:always"};
	uint8_t pt[65];
	char id[129];
	time_t end;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!cax || !ck || !ss_ca_tenant_ok(tenant_id) || !pub || !out || hours == 0 ||
	    hours > SS_CERT_HOURS_MAX)
		goto out;
	pt[0] = 0x04;
	memcpy(pt + 1, pub, 64);
	if (!ss_p256_ok(pt))
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (sph_hex_encode(pub, 64, id, sizeof(id)) != 0)
		goto out;
	end = now + (time_t)hours * 3600;
	{
		/* Never past the device CA's own end. */
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(cax), &tm) != 1)
			goto out;
		if (timegm(&tm) < end)
			end = timegm(&tm);
	}
	rc = SPH_ERR_STATE;
	if (end <= now)
		goto out; /* the device CA has expired */
	{
		struct ss_cert_spec s = {.cn = id,
		                         .o = tenant_id,
		                         .subject_pt = pt,
		                         .issuer = cax,
		                         .issuer_key = ck,
		                         .not_before = now - SS_SKEW,
		                         .not_after = end,
		                         .exts = exts};
		rc = ss_cert_make(&s, nids, out);
	}
out:
	return rc;
}

int ss_ca_issue_with(X509 *cax, EVP_PKEY *ck, const char *tenant_id, const uint8_t pub[64],
                     time_t now, unsigned hours, uint8_t **der, size_t *len)
{
	X509 *x = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (der)
		*der = NULL;
	if (len)
		*len = 0;
	if (der && len)
		rc = ss_ca_issue_x509(cax, ck, tenant_id, pub, now, hours, &x);
	if (rc == 0)
		rc = ss_der(x, der, len);
	X509_free(x);
	return rc;
}

int ss_ca_device_key(const struct ss_ca_pair *ca, const uint8_t kek[SS_KEK_LEN],
                     const char *tenant_id, X509 **cert, EVP_PKEY **key)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (cert)
		*cert = NULL;
	if (key)
		*key = NULL;
	if (!ca || !kek || !ss_ca_tenant_ok(tenant_id) || !cert || !key)
		return rc;
	*cert = ss_x509(&ca->device);
	if (!*cert)
		return SPH_ERR_MALFORMED;
	rc = ss_unwrap(&ca->device, kek, tenant_id, key);
	if (rc != 0) {
		X509_free(*cert);
		*cert = NULL;
	}
	return rc;
}

int ss_ca_issue(const struct ss_ca_pair *ca, const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                const uint8_t pub[64], time_t now, unsigned hours, uint8_t **der, size_t *len)
{
	EVP_PKEY *ck = NULL;
	X509 *cax = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (der)
		*der = NULL;
	if (len)
		*len = 0;
	if (!ca || !kek || !ss_ca_tenant_ok(tenant_id) || !pub || !der || !len || hours == 0 ||
	    hours > SS_CERT_HOURS_MAX)
		return rc;
	rc = ss_ca_device_key(ca, kek, tenant_id, &cax, &ck);
	if (rc == 0)
		rc = ss_ca_issue_with(cax, ck, tenant_id, pub, now, hours, der, len);
	X509_free(cax);
	EVP_PKEY_free(ck);
	return rc;
}

int ss_ca_pem(X509 *const *certs, size_t n, char **pem)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = SPH_ERR_CRYPTO;

	if (pem)
		*pem = NULL;
	if (!pem || !certs || !n || !b)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!certs[i] || PEM_write_bio_X509(b, certs[i]) != 1)
			goto out;
	len = BIO_get_mem_data(b, &data);
	rc = SPH_ERR_NOMEM;
	*pem = len > 0 ? malloc((size_t)len + 1) : NULL;
	if (!*pem)
		goto out;
	memcpy(*pem, data, (size_t)len);
	(*pem)[len] = '\0';
	rc = 0;
out:
	BIO_free(b);
	return rc;
}

int ss_ca_chain_pem(const struct ss_ca_pair *ca, char **pem)
{
	X509 *c[2] = {ca ? ss_x509(&ca->device) : NULL, ca ? ss_x509(&ca->root) : NULL};
	int rc = ss_ca_pem(c, 2, pem);

	X509_free(c[0]);
	X509_free(c[1]);
	return rc;
}

int ss_ca_chain_p7(const struct ss_ca_pair *ca, uint8_t **der, size_t *len)
{
	PKCS7 *p7 = PKCS7_new();
	X509 *dev = ca ? ss_x509(&ca->device) : NULL, *root = ca ? ss_x509(&ca->root) : NULL;
	uint8_t *p = NULL;
	int n = -1, rc = SPH_ERR_CRYPTO;

	if (der)
		*der = NULL;
	if (len)
		*len = 0;
	if (!der || !len || !p7 || !dev || !root || PKCS7_set_type(p7, NID_pkcs7_signed) != 1 ||
	    PKCS7_content_new(p7, NID_pkcs7_data) != 1 || PKCS7_add_certificate(p7, dev) != 1 ||
	    PKCS7_add_certificate(p7, root) != 1)
		goto out;
	n = i2d_PKCS7(p7, &p);
	if (n <= 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	*der = malloc((size_t)n);
	if (!*der)
		goto out;
	memcpy(*der, p, (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	OPENSSL_free(p);
	PKCS7_free(p7);
	X509_free(dev);
	X509_free(root);
	return rc;
}
