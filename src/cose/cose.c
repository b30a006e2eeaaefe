/*
 * COSE_Sign1 with ES256 (RFC 9052 §4.2, RFC 9053 §2.1).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "common/common.h"
#include "cose.h"

#define SIG1_CONTEXT    "Signature1"
#define MAX_TSTR_LABELS 8
#define MAX_PROTECTED   128

/* What the two header buckets told us, collected while parsing. */
struct hdr_state {
	struct sph_keyset int_labels; /* integer labels seen in either bucket */
	struct {
		const uint8_t *s;
		size_t len;
	} tstr_labels[MAX_TSTR_LABELS];
	size_t n_tstr;
	bool alg_seen;
	/* crit: the labels listed, checked after the protected bucket is parsed. */
	int64_t crit[SPH_CBOR_MAX_KEYS];
	size_t n_crit;
	bool crit_seen;
};

static int record_tstr_label(struct hdr_state *hs, const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < hs->n_tstr; i++)
		if (hs->tstr_labels[i].len == len && memcmp(hs->tstr_labels[i].s, s, len) == 0)
			return SPH_ERR_DUPLICATE;
	if (hs->n_tstr == MAX_TSTR_LABELS)
		return SPH_ERR_TOO_LARGE;
	hs->tstr_labels[hs->n_tstr].s = s;
	hs->tstr_labels[hs->n_tstr].len = len;
	hs->n_tstr++;
	return 0;
}

/* Labels this implementation understands, so may appear in crit. */
static bool label_understood(int64_t label)
{
	return label == COSE_HDR_ALG || label == COSE_HDR_CONTENT_TYPE || label == COSE_HDR_KID ||
	       label == COSE_HDR_X5CHAIN;
}

/* One x5chain certificate: a bstr of 1..COSE_MAX_CERT bytes. */
static int parse_x5_cert(struct sph_cbr *r, struct cose_x5 *c)
{
	int rc = sph_cbr_bstr(r, &c->der, &c->len);

	if (rc)
		return rc;
	if (c->len == 0)
		return SPH_ERR_MALFORMED;
	if (c->len > COSE_MAX_CERT)
		return SPH_ERR_TOO_LARGE;
	return 0;
}

/* x5chain (RFC 9360): COSE_X509 = bstr / [2*certs: bstr]. One certificate is
 * a bare bstr; an array holds 2..COSE_MAX_X5CHAIN of them. */
static int parse_x5chain(struct sph_cbr *r, bool is_protected, struct cose_sign1 *out)
{
	struct sph_cbor_item it;
	size_t start = r->off, n;
	int rc = sph_cbr_peek(r, &it);

	if (rc)
		return rc;
	if (it.type == SPH_CBOR_BSTR) {
		n = 1;
		rc = parse_x5_cert(r, &out->x5[0]);
	} else if (it.type == SPH_CBOR_ARRAY) {
		(void)sph_cbr_next(r, &it);
		if (it.u < 2)
			return SPH_ERR_MALFORMED;
		if (it.u > COSE_MAX_X5CHAIN)
			return SPH_ERR_TOO_LARGE;
		n = (size_t)it.u;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = parse_x5_cert(r, &out->x5[i]);
	} else {
		return SPH_ERR_MALFORMED;
	}
	if (rc)
		return rc;
	out->x5_count = n;
	out->x5chain = r->buf + start;
	out->x5chain_len = r->off - start;
	out->x5chain_protected = is_protected;
	return 0;
}

static int parse_crit(struct sph_cbr *r, struct hdr_state *hs)
{
	size_t n;
	int rc = sph_cbr_array(r, &n);
	if (rc)
		return rc;
	/* RFC 9052 §3.1: crit MUST NOT be empty. */
	if (n == 0 || n > SPH_CBOR_MAX_KEYS)
		return SPH_ERR_MALFORMED;
	for (size_t i = 0; i < n; i++) {
		struct sph_cbor_item it;
		rc = sph_cbr_peek(r, &it);
		if (rc)
			return rc;
		/* A text label is never one we understand: refuse it as critical. */
		if (it.type == SPH_CBOR_TSTR)
			return SPH_ERR_UNSUPPORTED;
		rc = sph_cbr_int(r, &hs->crit[i]);
		if (rc)
			return rc;
		if (!label_understood(hs->crit[i]))
			return SPH_ERR_UNSUPPORTED;
		for (size_t j = 0; j < i; j++)
			if (hs->crit[j] == hs->crit[i])
				return SPH_ERR_DUPLICATE;
	}
	hs->n_crit = n;
	hs->crit_seen = true;
	return 0;
}

/* Parses one header map (protected when is_protected) into out/hs. */
static int parse_header_map(struct sph_cbr *r, bool is_protected, struct hdr_state *hs,
                            struct cose_sign1 *out)
{
	size_t n;
	int rc = sph_cbr_map(r, &n);
	if (rc)
		return rc;
	if (n > SPH_CBOR_MAX_KEYS)
		return SPH_ERR_TOO_LARGE;
	for (size_t i = 0; i < n; i++) {
		struct sph_cbor_item key;
		int64_t label;

		rc = sph_cbr_peek(r, &key);
		if (rc)
			return rc;
		if (key.type == SPH_CBOR_TSTR) {
			rc = sph_cbr_next(r, &key);
			if (rc == 0)
				rc = record_tstr_label(hs, key.data, key.len);
			if (rc == 0)
				rc = sph_cbr_skip(r);
			if (rc)
				return rc;
			continue;
		}
		rc = sph_cbr_int(r, &label);
		if (rc)
			return rc;
		rc = sph_keyset_add(&hs->int_labels, label);
		if (rc)
			return rc;

		switch (label) {
		case COSE_HDR_ALG: {
			struct sph_cbor_item v;
			int64_t alg;
			rc = sph_cbr_peek(r, &v);
			if (rc)
				return rc;
			if (v.type != SPH_CBOR_UINT && v.type != SPH_CBOR_NEGINT)
				return SPH_ERR_UNSUPPORTED; /* e.g. a text alg name */
			rc = sph_cbr_int(r, &alg);
			if (rc)
				return rc == SPH_ERR_MALFORMED ? SPH_ERR_UNSUPPORTED : rc;
			if (alg != COSE_ALG_ES256)
				return SPH_ERR_UNSUPPORTED;
			hs->alg_seen = true;
			break;
		}
		case COSE_HDR_CRIT:
			if (!is_protected)
				return SPH_ERR_MALFORMED; /* crit only in the protected bucket */
			rc = parse_crit(r, hs);
			if (rc)
				return rc;
			break;
		case COSE_HDR_CONTENT_TYPE: {
			struct sph_cbor_item v;
			rc = sph_cbr_next(r, &v);
			if (rc)
				return rc;
			if (v.type != SPH_CBOR_TSTR &&
			    (v.type != SPH_CBOR_UINT || v.u > UINT16_MAX))
				return SPH_ERR_MALFORMED;
			/* Only a signed content type is reported: an unprotected one
			 * is a hint anyone could have changed. */
			if (v.type == SPH_CBOR_UINT && is_protected)
				out->content_type = (int64_t)v.u;
			break;
		}
		case COSE_HDR_KID:
			rc = sph_cbr_bstr(r, &out->kid, &out->kid_len);
			if (rc)
				return rc;
			if (out->kid_len > COSE_MAX_KID)
				return SPH_ERR_TOO_LARGE;
			break;
		case COSE_HDR_X5CHAIN:
			rc = parse_x5chain(r, is_protected, out);
			if (rc)
				return rc;
			break;
		default:
			/* Not understood and not critical: ignored (RFC 9052 §3). */
			rc = sph_cbr_skip(r);
			if (rc)
				return rc;
			break;
		}
	}
	return 0;
}

int cose_sign1_decode(const uint8_t *msg, size_t len, struct cose_sign1 *out)
{
	struct hdr_state hs;
	struct sph_cbr r, pr;
	struct sph_cbor_item it;
	struct cose_sign1 s;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&hs, 0, sizeof(hs));
	memset(&s, 0, sizeof(s));
	s.content_type = -1;
	if (!msg)
		return SPH_ERR_INVALID_ARG;
	if (len > COSE_MAX_MESSAGE)
		return SPH_ERR_TOO_LARGE;

	sph_cbr_init(&r, msg, len);
	if ((rc = sph_cbr_peek(&r, &it)))
		goto out;
	if (it.type == SPH_CBOR_TAG) {
		if (it.u != COSE_TAG_SIGN1) {
			rc = SPH_ERR_UNSUPPORTED;
			goto out;
		}
		(void)sph_cbr_next(&r, &it);
		s.tagged = true;
	}
	if ((rc = sph_cbr_array(&r, &n)))
		goto out;
	if (n != 4) {
		rc = SPH_ERR_MALFORMED;
		goto out;
	}

	/* protected: a bstr wrapping a map, or empty (meaning no headers). */
	if ((rc = sph_cbr_bstr(&r, &s.protected_hdr, &s.protected_len)))
		goto out;
	if (s.protected_len > 0) {
		sph_cbr_init(&pr, s.protected_hdr, s.protected_len);
		if ((rc = parse_header_map(&pr, true, &hs, &s)))
			goto out;
		if ((rc = sph_cbr_expect_end(&pr)))
			goto out;
	}
	/* Every critical label must be present in the protected bucket. */
	for (size_t i = 0; i < hs.n_crit; i++) {
		bool present = false;
		for (size_t j = 0; j < hs.int_labels.n; j++)
			present |= hs.int_labels.keys[j] == hs.crit[i];
		if (!present) {
			rc = SPH_ERR_MALFORMED;
			goto out;
		}
	}

	if ((rc = parse_header_map(&r, false, &hs, &s)))
		goto out;
	if (!hs.alg_seen) {
		rc = SPH_ERR_UNSUPPORTED;
		goto out;
	}

	if ((rc = sph_cbr_peek(&r, &it)))
		goto out;
	if (it.type == SPH_CBOR_NULL) {
		(void)sph_cbr_next(&r, &it);
	} else if ((rc = sph_cbr_bstr(&r, &s.payload, &s.payload_len))) {
		goto out;
	}

	if ((rc = sph_cbr_bstr(&r, &s.signature, &s.signature_len)))
		goto out;
	if (s.signature_len != COSE_ES256_SIG_LEN) {
		rc = SPH_ERR_MALFORMED;
		goto out;
	}
	if ((rc = sph_cbr_expect_end(&r)))
		goto out;

	*out = s;
	rc = 0;
out:
	return rc;
}

/* Feeds a bstr (head, then contents) into the digest without copying it. */
static int digest_bstr(EVP_MD_CTX *md, const uint8_t *data, size_t len)
{
	uint8_t head[9];
	struct sph_cbw w;
	size_t n;

	sph_cbw_init(&w, head, sizeof(head));
	sph_cbw_bstr_head(&w, len);
	if (sph_cbw_finish(&w, &n))
		return SPH_ERR_CRYPTO;
	if (EVP_DigestUpdate(md, head, n) != 1)
		return SPH_ERR_CRYPTO;
	if (len && EVP_DigestUpdate(md, data, len) != 1)
		return SPH_ERR_CRYPTO;
	return 0;
}

int cose_sign1_tbs_digest(const uint8_t *protected_hdr, size_t protected_len,
                          const uint8_t *external_aad, size_t external_aad_len,
                          const uint8_t *payload, size_t payload_len,
                          uint8_t digest[COSE_DIGEST_LEN])
{
	/* Sig_structure = ["Signature1", body_protected, external_aad, payload] */
	static const uint8_t prefix[] = {0x84, 0x6a, 'S', 'i', 'g', 'n',
	                                 'a',  't',  'u', 'r', 'e', '1'};
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int dlen = 0;
	int rc = SPH_ERR_CRYPTO;

	if (!md)
		return SPH_ERR_NOMEM;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	if (EVP_DigestUpdate(md, prefix, sizeof(prefix)) != 1)
		goto out;
	if ((rc = digest_bstr(md, protected_hdr, protected_len)))
		goto out;
	if ((rc = digest_bstr(md, external_aad, external_aad ? external_aad_len : 0)))
		goto out;
	if ((rc = digest_bstr(md, payload, payload ? payload_len : 0)))
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != COSE_DIGEST_LEN)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static bool is_p256(EVP_PKEY *key)
{
	char group[32];
	size_t glen = 0;

	if (!key || !EVP_PKEY_is_a(key, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &glen) != 1)
		return false;
	return strcmp(group, SN_X9_62_prime256v1) == 0;
}

static bool protected_is_empty(const struct cose_sign1 *s)
{
	return s->protected_len == 1 && s->protected_hdr[0] == 0xa0;
}

int cose_sign1_verify(const uint8_t *msg, size_t len, const uint8_t *external_aad,
                      size_t external_aad_len, EVP_PKEY *pub, struct cose_sign1 *out)
{
	struct cose_sign1 s;
	uint8_t digest[COSE_DIGEST_LEN];
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!is_p256(pub))
		return SPH_ERR_INVALID_ARG;
	if ((rc = cose_sign1_decode(msg, len, &s)))
		return rc;
	/* An encoded empty map (h'a0') means "no protected headers": the
	 * Sig_structure then carries a zero-length bstr (RFC 9052 §4.4; the
	 * working group's sign-pass-01 vector checks exactly this). */
	if ((rc = cose_sign1_tbs_digest(s.protected_hdr,
	                                protected_is_empty(&s) ? 0 : s.protected_len, external_aad,
	                                external_aad_len, s.payload, s.payload_len, digest)))
		return rc;
	if ((rc = cose_es256_verify_digest(pub, digest, s.signature)))
		return rc;
	if (out)
		*out = s;
	return 0;
}

/* Bytes the protected bucket needs for p's x5chain (0 without one), or 0 with
 * *ok false when the x5chain breaks its bounds. */
static size_t x5chain_cap(const struct cose_sign1_params *p, bool *ok)
{
	size_t cap = 0;

	*ok = p->x5chain_count <= COSE_MAX_X5CHAIN && (p->x5chain_count == 0 || p->x5chain);
	for (size_t i = 0; *ok && i < p->x5chain_count; i++) {
		const struct cose_x5 *c = &p->x5chain[i];
		*ok = c->der && c->len > 0 && c->len <= COSE_MAX_CERT;
		cap += 9 + c->len; /* bstr head + contents */
	}
	return *ok && p->x5chain_count ? cap + 2 + 9 : 0; /* label 33, array head */
}

int cose_sign1_create(const struct cose_sign1_params *p, cose_sign_fn sign, void *sign_ctx,
                      uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t prot_small[MAX_PROTECTED];
	uint8_t *prot = prot_small;
	uint8_t digest[COSE_DIGEST_LEN];
	uint8_t sig[COSE_ES256_SIG_LEN];
	struct sph_cbw w;
	size_t prot_len, prot_cap = sizeof(prot_small), x5_cap = 0;
	bool x5_ok = true;
	int rc = SPH_ERR_INVALID_ARG;

	if (out_len)
		*out_len = 0;
	if (p)
		x5_cap = x5chain_cap(p, &x5_ok);
	if (!p || !sign || !out || !out_len || (p->kid_len && !p->kid) ||
	    (p->payload_len && !p->payload) || p->kid_len > COSE_MAX_KID ||
	    p->content_type > UINT16_MAX || !x5_ok)
		return SPH_ERR_INVALID_ARG;
	if (x5_cap) {
		prot_cap += x5_cap;
		prot = malloc(prot_cap);
		if (!prot)
			return SPH_ERR_NOMEM;
	}

	sph_cbw_init(&w, prot, prot_cap);
	sph_cbw_map(&w, 1 + (p->content_type >= 0) + (p->x5chain_count > 0));
	sph_cbw_uint(&w, COSE_HDR_ALG);
	sph_cbw_int(&w, COSE_ALG_ES256);
	if (p->content_type >= 0) {
		sph_cbw_uint(&w, COSE_HDR_CONTENT_TYPE);
		sph_cbw_uint(&w, (uint64_t)p->content_type);
	}
	if (p->x5chain_count > 0) {
		sph_cbw_uint(&w, COSE_HDR_X5CHAIN);
		/* RFC 9360: one certificate as a bstr, several as an array. */
		if (p->x5chain_count > 1)
			sph_cbw_array(&w, p->x5chain_count);
		for (size_t i = 0; i < p->x5chain_count; i++)
			sph_cbw_bstr(&w, p->x5chain[i].der, p->x5chain[i].len);
	}
	if ((rc = sph_cbw_finish(&w, &prot_len)))
		goto out;

	if ((rc = cose_sign1_tbs_digest(prot, prot_len, p->external_aad, p->external_aad_len,
	                                p->payload, p->payload_len, digest)))
		goto out;
	if ((rc = sign(sign_ctx, digest, sig)))
		goto out;

	sph_cbw_init(&w, out, cap);
	if (!p->untagged)
		sph_cbw_tag(&w, COSE_TAG_SIGN1);
	sph_cbw_array(&w, 4);
	sph_cbw_bstr(&w, prot, prot_len);
	sph_cbw_map(&w, p->kid_len ? 1 : 0);
	if (p->kid_len) {
		sph_cbw_uint(&w, COSE_HDR_KID);
		sph_cbw_bstr(&w, p->kid, p->kid_len);
	}
	sph_cbw_bstr(&w, p->payload, p->payload_len);
	sph_cbw_bstr(&w, sig, sizeof(sig));
	if ((rc = sph_cbw_finish(&w, out_len)))
		goto out;
	if (*out_len > COSE_MAX_MESSAGE) {
		*out_len = 0;
		rc = SPH_ERR_TOO_LARGE;
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(digest, sizeof(digest));
	if (prot != prot_small)
		free(prot);
	return rc;
}

/* ---- ES256 helpers --------------------------------------------------------- */

int cose_sig_der_to_raw(const uint8_t *der, size_t der_len, uint8_t raw[COSE_ES256_SIG_LEN])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r = NULL, *s = NULL;
	int rc = SPH_ERR_MALFORMED;

	memset(raw, 0, COSE_ES256_SIG_LEN);
	if (!der || der_len == 0 || der_len > 128)
		goto out;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig || p != der + der_len)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32) {
		memset(raw, 0, COSE_ES256_SIG_LEN);
		goto out;
	}
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	return rc;
}

int cose_sig_raw_to_der(const uint8_t raw[COSE_ES256_SIG_LEN], uint8_t *der, size_t cap,
                        size_t *der_len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL);
	BIGNUM *s = BN_bin2bn(raw + 32, 32, NULL);
	unsigned char *p = der;
	int n, rc = SPH_ERR_MALFORMED;

	*der_len = 0;
	if (!sig || !r || !s)
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by sig */
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0)
		goto out;
	if ((size_t)n > cap) {
		rc = SPH_ERR_BUFFER_TOO_SMALL;
		goto out;
	}
	if (i2d_ECDSA_SIG(sig, &p) != n)
		goto out;
	*der_len = (size_t)n;
	rc = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return rc;
}

/* (n - 1) / 2 for the P-256 group order n: an ES256 s above it is "high". */
static const uint8_t p256_half_order[32] = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
                                            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
                                            0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

/* s is public, so a plain big-endian comparison is fine. */
bool cose_es256_is_low_s(const uint8_t sig[COSE_ES256_SIG_LEN])
{
	return memcmp(sig + 32, p256_half_order, sizeof(p256_half_order)) <= 0;
}

int cose_es256_make_low_s(uint8_t sig[COSE_ES256_SIG_LEN])
{
	BIGNUM *half = NULL, *n = NULL, *s = NULL;
	int rc = SPH_ERR_CRYPTO;

	if (cose_es256_is_low_s(sig))
		return 0;
	half = BN_bin2bn(p256_half_order, sizeof(p256_half_order), NULL);
	n = BN_new();
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (!half || !n || !s)
		goto out;
	/* n = 2 * half + 1 */
	if (!BN_lshift1(n, half) || !BN_add_word(n, 1) || !BN_sub(s, n, s) ||
	    BN_bn2binpad(s, sig + 32, 32) != 32)
		goto out;
	rc = 0;
out:
	BN_free(half);
	BN_free(n);
	BN_free(s);
	return rc;
}

int cose_pkey_signer(void *pkey, const uint8_t digest[COSE_DIGEST_LEN],
                     uint8_t sig[COSE_ES256_SIG_LEN])
{
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t der[80];
	size_t der_len = sizeof(der);
	int rc = SPH_ERR_CRYPTO;

	memset(sig, 0, COSE_ES256_SIG_LEN);
	if (!is_p256(pkey))
		return SPH_ERR_INVALID_ARG;
	ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (!ctx || EVP_PKEY_sign_init(ctx) != 1)
		goto out;
	if (EVP_PKEY_sign(ctx, der, &der_len, digest, COSE_DIGEST_LEN) != 1)
		goto out;
	rc = cose_sig_der_to_raw(der, der_len, sig);
	if (rc == 0)
		rc = cose_es256_make_low_s(sig);
	if (rc)
		rc = SPH_ERR_CRYPTO;
out:
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int cose_es256_verify_digest(EVP_PKEY *pub, const uint8_t digest[COSE_DIGEST_LEN],
                             const uint8_t sig[COSE_ES256_SIG_LEN])
{
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t der[80];
	size_t der_len;
	int v, rc;

	if (!is_p256(pub))
		return SPH_ERR_INVALID_ARG;
	if (cose_sig_raw_to_der(sig, der, sizeof(der), &der_len))
		return SPH_ERR_BAD_SIGNATURE;
	rc = SPH_ERR_CRYPTO;
	ctx = EVP_PKEY_CTX_new(pub, NULL);
	if (!ctx || EVP_PKEY_verify_init(ctx) != 1)
		goto out;
	/* 1: valid; 0: invalid; <0: the signature could not even be parsed. */
	v = EVP_PKEY_verify(ctx, der, der_len, digest, COSE_DIGEST_LEN);
	rc = v == 1 ? 0 : SPH_ERR_BAD_SIGNATURE;
out:
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int cose_p256_import(const uint8_t pub[COSE_P256_PUB_LEN], EVP_PKEY **out)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	int rc = SPH_ERR_MALFORMED;

	*out = NULL;
	/* Only the uncompressed form: hybrid points (0x06/0x07) are also 65 bytes. */
	if (!pub || pub[0] != 0x04)
		return SPH_ERR_MALFORMED;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	                                             (char *)SN_X9_62_prime256v1, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub,
	                                              COSE_P256_PUB_LEN);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1) {
		rc = SPH_ERR_CRYPTO;
		goto out;
	}
	/* Decoding the point checks that it lies on the curve. */
	if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	*out = key;
	key = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int cose_p256_export(EVP_PKEY *key, uint8_t pub[COSE_P256_PUB_LEN])
{
	size_t len = 0;

	memset(pub, 0, COSE_P256_PUB_LEN);
	if (!is_p256(key))
		return SPH_ERR_INVALID_ARG;
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub,
	                                    COSE_P256_PUB_LEN, &len) != 1 ||
	    len != COSE_P256_PUB_LEN || pub[0] != 0x04) {
		memset(pub, 0, COSE_P256_PUB_LEN);
		return SPH_ERR_CRYPTO;
	}
	return 0;
}
