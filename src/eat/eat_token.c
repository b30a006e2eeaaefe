/*
 * eat token: the claim set signed as a tagged COSE_Sign1/ES256, and the
 * verifier's checks in the order docs/formats.md §3 gives them.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "eat.h"
#include "eat_internal.h"

/* The only protected header a token may carry: {1: -7}. */
static const uint8_t eat_protected[] = {0xa1, 0x01, 0x26};

int eat_kid_from_pub(const uint8_t pub[COSE_P256_PUB_LEN], uint8_t kid[EAT_KID_LEN])
{
	int rc = SPH_ERR_INVALID_ARG;

	if (kid)
		memset(kid, 0, EAT_KID_LEN);
	if (!pub || !kid)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (pub[0] != 0x04)
		goto out;
	rc = eat_sha256(pub + 1, COSE_P256_PUB_LEN - 1, kid);
out:
	return rc;
}

struct eat_signer {
	cose_sign_fn sign;
	void *ctx;
};

static int eat_low_s_signer(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                            uint8_t sig[COSE_ES256_SIG_LEN])
{
	const struct eat_signer *inner = ctx;
	int rc = inner->sign(inner->ctx, digest, sig);

	if (rc == 0)
		rc = cose_es256_make_low_s(sig);
	return rc;
}

int eat_sign(const struct eat_claims *claims, cose_sign_fn sign, void *sign_ctx, const uint8_t *kid,
             size_t kid_len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t payload[EAT_MAX_TOKEN];
	struct cose_sign1_params p;
	size_t payload_len = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out_len)
		*out_len = 0;
	if (!claims || !sign || !out || !out_len || (!kid && kid_len > 0))
		goto out;
	rc = eat_encode_claims(claims, payload, sizeof(payload), &payload_len);
	if (rc)
		goto out;
	memset(&p, 0, sizeof(p));
	p.payload = payload;
	p.payload_len = payload_len;
	p.kid = kid;
	p.kid_len = kid_len;
	p.content_type = -1;
	p.untagged = false;
	rc = cose_sign1_create(&p, eat_low_s_signer, &(struct eat_signer){sign, sign_ctx}, out, cap,
	                       out_len);
	if (rc)
		goto out;
	if (*out_len > EAT_MAX_TOKEN) {
		/* Cannot happen with the profile's bounds (3 KiB at most); refuse
		 * rather than hand out a token every verifier rejects. */
		*out_len = 0;
		rc = SPH_ERR_TOO_LARGE;
	}
out:
	return rc;
}

/* After the signature verified: the envelope must be exactly the one eat_sign
 * produces with kid = eat_kid_from_pub(attest_pub), so no header bit, label
 * or byte outside the signature's coverage can vary. Rebuilds it from the
 * decoded parts and compares byte for byte. Returns 0 or SPH_ERR_MALFORMED. */
static int check_envelope(const uint8_t *token, size_t len, const struct cose_sign1 *msg,
                          const uint8_t attest_pub[COSE_P256_PUB_LEN])
{
	uint8_t want[EAT_MAX_TOKEN];
	uint8_t kid[EAT_KID_LEN];
	struct sph_cbw w;
	size_t want_len = 0;
	int rc;

	rc = eat_kid_from_pub(attest_pub, kid);
	if (rc)
		return rc;
	if (!msg->tagged || !msg->payload || msg->signature_len != COSE_ES256_SIG_LEN)
		return SPH_ERR_MALFORMED;
	sph_cbw_init(&w, want, sizeof(want));
	sph_cbw_tag(&w, COSE_TAG_SIGN1);
	sph_cbw_array(&w, 4);
	sph_cbw_bstr(&w, eat_protected, sizeof(eat_protected));
	sph_cbw_map(&w, 1);
	sph_cbw_uint(&w, COSE_HDR_KID);
	sph_cbw_bstr(&w, kid, sizeof(kid));
	sph_cbw_bstr(&w, msg->payload, msg->payload_len);
	sph_cbw_bstr(&w, msg->signature, msg->signature_len);
	if (sph_cbw_finish(&w, &want_len) != 0 || want_len != len || memcmp(want, token, len) != 0)
		return SPH_ERR_MALFORMED;
	return 0;
}

int eat_verify(const uint8_t *token, size_t len, const uint8_t *nonce, size_t nonce_len,
               const uint8_t attest_pub[COSE_P256_PUB_LEN],
               const uint8_t *identity_pub /* COSE_P256_PUB_LEN or NULL */, struct eat_claims *out)
{
	struct eat_claims claims;
	struct cose_sign1 msg;
	EVP_PKEY *pub = NULL;
	uint8_t acc[32];
	uint8_t ueid[EAT_UEID_LEN];
	int rc = SPH_ERR_INVALID_ARG;

	memset(&claims, 0, sizeof(claims));
	memset(&msg, 0, sizeof(msg));
	if (out)
		memset(out, 0, sizeof(*out));
	if (!token || !nonce || !attest_pub || nonce_len < EAT_NONCE_MIN ||
	    nonce_len > EAT_NONCE_MAX)
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (len > EAT_MAX_TOKEN)
		goto out;

	/* 1. Signature, then the exact envelope. */
	rc = cose_p256_import(attest_pub, &pub);
	if (rc)
		goto out;
	rc = cose_sign1_verify(token, len, NULL, 0, pub, &msg);
	if (rc)
		goto out;
	rc = check_envelope(token, len, &msg, attest_pub);
	if (rc)
		goto out;
	/* One valid encoding per token: the high-s twin of a signature is refused. */
	rc = SPH_ERR_MALFORMED;
	if (!cose_es256_is_low_s(msg.signature))
		goto out;

	/* 2. The claim set. */
	rc = eat_decode_claims(msg.payload, msg.payload_len, &claims);
	if (rc)
		goto out;

	/* 3. Freshness: the token answers this challenge. */
	rc = SPH_ERR_NONCE_MISMATCH;
	if (claims.nonce_len != nonce_len || CRYPTO_memcmp(claims.nonce, nonce, nonce_len) != 0)
		goto out;

	/* 4. The accumulator is what the listed components replay to. */
	rc = eat_accumulator_replay(claims.components, claims.n_components, acc);
	if (rc)
		goto out;
	rc = SPH_ERR_CLAIM;
	if (CRYPTO_memcmp(acc, claims.accumulator, sizeof(acc)) != 0)
		goto out;

	/* 5. The token comes from the device the caller means. */
	if (identity_pub) {
		rc = eat_ueid_from_pub(identity_pub, ueid);
		if (rc)
			goto out;
		rc = SPH_ERR_CLAIM;
		if (CRYPTO_memcmp(ueid, claims.ueid, sizeof(ueid)) != 0)
			goto out;
	}

	if (out)
		*out = claims;
	rc = 0;
out:
	EVP_PKEY_free(pub);
	OPENSSL_cleanse(&claims, sizeof(claims));
	return rc;
}
