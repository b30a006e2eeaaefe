/*
 * image: verifying a COSE_Sign1 that carries its signer's certificate path
 * in a protected x5chain, for objects other than packages and capability
 * files (the check-in's signed time, docs/formats.md §10). The same path
 * checks as img_verify and img_cap_verify: OpenSSL's strict validation to
 * the trusted root, and the leaf's single Sphere role, EKU-chained.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "image_internal.h"

int img_sign1_verify_chain(const uint8_t *msg, size_t len, int64_t content_type,
                           const struct img_trust *trust, enum img_role want,
                           struct cose_sign1 *out, char *why, size_t why_cap)
{
	struct cose_sign1 s;
	struct img_chain ch;
	enum img_role role = IMG_ROLE_NONE;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&ch, 0, sizeof(ch));
	memset(&s, 0, sizeof(s));
	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!msg || !trust || !trust->root_cert == !trust->root_hash ||
	    trust->time_policy > IMG_TIME_NONE || want == IMG_ROLE_NONE)
		goto out;
	if (trust->time_policy == IMG_TIME_AT && trust->at < 0)
		goto out;
	if ((rc = cose_sign1_decode(msg, len, &s)) != 0) {
		img_why(why, why_cap, "not a well-formed COSE_Sign1");
		goto out;
	}
	rc = SPH_ERR_MALFORMED;
	if (s.content_type != content_type || !s.payload || s.x5_count < 1 ||
	    !s.x5chain_protected) {
		img_why(why, why_cap, "wrong content type, no payload or no protected x5chain");
		goto out;
	}
	img_why(why, why_cap, "out of memory, or the crypto library failed");
	if ((rc = img_chain_load(&ch, s.x5, s.x5_count)) != 0)
		goto out;
	rc = cose_sign1_verify(msg, len, NULL, 0, X509_get0_pubkey(ch.certs[0]), NULL);
	if (rc) {
		img_why(why, why_cap, "the COSE signature does not verify with the signer's key");
		goto out;
	}
	if ((rc = img_chain_anchor(&ch, trust, why, why_cap)) != 0 ||
	    (rc = img_chain_verify(&ch, trust, why, why_cap)) != 0 ||
	    (rc = img_chain_role(&ch, &role, why, why_cap)) != 0)
		goto out;
	rc = SPH_ERR_PERMISSION;
	if (role != want) {
		img_why(why, why_cap, "the signer's role is %s, not %s", img_role_name(role),
		        img_role_name(want));
		goto out;
	}
	if (out)
		*out = s;
	img_why(why, why_cap, "verified");
	rc = 0;
out:
	img_chain_free(&ch);
	ERR_clear_error();
	return rc;
}
