/*
 * image verification (docs/formats.md §5.5): signature with the leaf's key,
 * certificate path to exactly one trusted root (OpenSSL's X509_verify_cert,
 * strict), the signer's role against the component type, the target, the
 * payload digest. The result starts as a refusal and becomes 0 only at the
 * end of a fully successful run.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image_internal.h"

/* The leaf's role, every CA on the path allowed to certify it (EKU chaining),
 * and the role allowed to sign this component type under the policy. */
static int chain_role(struct img_chain *c, const struct img_trust *t, uint32_t type,
                      enum img_role *role, char *why, size_t cap)
{
	int rc = img_chain_role(c, role, why, cap);

	if (rc)
		return rc;
	if (!img_role_may_sign(*role, type, t->allow_developer)) {
		if (*role == IMG_ROLE_DEVELOPER_APP && img_role_may_sign(*role, type, true))
			img_why(why, cap, "developer-signed images are not allowed here");
		else
			img_why(why, cap, "a %s key may not sign %s images", img_role_name(*role),
			        img_type_name(type));
		return SPH_ERR_PERMISSION;
	}
	return 0;
}

int img_verify(const uint8_t *pkg, size_t len, const struct img_trust *trust,
               struct img_package *out, char *why, size_t why_cap)
{
	struct img_package pk;
	struct img_chain c;
	enum img_role role = IMG_ROLE_NONE;
	uint8_t digest[IMG_DIGEST_LEN];
	const char *target;
	EVP_PKEY *leaf_key;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&c, 0, sizeof(c));
	memset(&pk, 0, sizeof(pk));
	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!trust || !trust->root_cert == !trust->root_hash || trust->time_policy > IMG_TIME_NONE)
		goto out;
	target = trust->target ? trust->target : IMG_TARGET_DEFAULT;

	/* 1..5: structure */
	if ((rc = img_parse_structure(pkg, len, &pk, why, why_cap)))
		goto out;
	img_why(why, why_cap, "out of memory, or the crypto library failed");
	if ((rc = img_chain_load(&c, pk.certs, pk.n_certs)))
		goto out;

	/* 6: the signature, with the leaf's key */
	leaf_key = X509_get0_pubkey(c.certs[0]);
	rc = SPH_ERR_UNSUPPORTED;
	if (img_signer_id(c.certs[0], pk.signer_id) != 0) {
		img_why(why, why_cap, "the signer key is not ECDSA P-256");
		goto out;
	}
	rc = cose_sign1_verify(pk.cose, pk.cose_len, NULL, 0, leaf_key, NULL);
	if (rc) {
		img_why(why, why_cap, "the COSE signature does not verify with the signer's key");
		goto out;
	}

	/* 7: certificate path to the trusted root */
	rc = img_chain_anchor(&c, trust, why, why_cap);
	if (rc)
		goto out;
	rc = img_chain_verify(&c, trust, why, why_cap);
	if (rc)
		goto out;
	pk.path_len = (size_t)sk_X509_num(X509_STORE_CTX_get0_chain(c.ctx));

	/* 8: role */
	rc = chain_role(&c, trust, pk.manifest.type, &role, why, why_cap);
	if (rc)
		goto out;

	/* 9: target */
	rc = SPH_ERR_CLAIM;
	if (strcmp(pk.manifest.target, target) != 0) {
		img_why(why, why_cap, "the image is for target \"%s\", not \"%s\"",
		        pk.manifest.target, target);
		goto out;
	}

	/* 10: payload digest */
	if ((rc = img_sha256(pk.payload, pk.payload_len, digest)))
		goto out;
	rc = SPH_ERR_BAD_SIGNATURE;
	if (CRYPTO_memcmp(digest, pk.manifest.payload_sha256, sizeof(digest)) != 0) {
		img_why(why, why_cap, "the payload does not match its signed SHA-256");
		goto out;
	}

	pk.role = role;
	if (out)
		*out = pk;
	img_why(why, why_cap, "verified");
	rc = 0;
out:
	img_chain_free(&c);
	ERR_clear_error();
	return rc;
}
