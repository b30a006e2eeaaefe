/*
 * agent_time: the signed time of a check-in (docs/formats.md §10) and the
 * device's tenant image root it is verified against, plus update windows
 * (docs/agent.md "Update windows").
 *
 * The time is a COSE_Sign1 by the tenant's production signer with x5chain
 * [signer, tenant image root]. Its signature always has to verify with the
 * leaf's key (else the reply is refused); it is TRUSTED only when the path
 * also verifies to the tenant root installed on the device, through the
 * image module's path and role checks (img_sign1_verify_chain). Certificate
 * validity is checked at the signed time itself: the device may have no
 * clock, and the nonce already makes the answer fresh.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "agent/agent_internal.h"
#include "boot/boot.h"
#include "common/common.h"
#include "cose/cose.h"
#include "image/image.h"

#define AGENT_TIME_CTYPE 65052 /* docs/formats.md §10 */
#define AGENT_PATH_MAX   4096

/* {1: seconds, 2: nonce}, deterministic, nothing else. */
static int agent_time_payload(const struct cose_sign1 *s, uint64_t *secs, const uint8_t **n,
                              size_t *nlen)
{
	struct sph_cbr r;
	uint64_t k1 = 0, k2 = 0;
	size_t count = 0;

	sph_cbr_init(&r, s->payload, s->payload_len);
	if (sph_cbr_map(&r, &count) != 0 || count != 2 || sph_cbr_uint(&r, &k1) != 0 || k1 != 1 ||
	    sph_cbr_uint(&r, secs) != 0 || *secs > (uint64_t)INT64_MAX ||
	    sph_cbr_uint(&r, &k2) != 0 || k2 != 2 || sph_cbr_bstr(&r, n, nlen) != 0 ||
	    sph_cbr_expect_end(&r) != 0)
		return SPH_ERR_MALFORMED;
	return 0;
}

int agent_signed_time(const uint8_t *cose, size_t len, const uint8_t *nonce, size_t nonce_len,
                      X509 *root, int64_t *when, bool *verified)
{
	struct img_trust trust;
	struct cose_sign1 s;
	const uint8_t *n = NULL, *der;
	uint64_t secs = 0;
	size_t nlen = 0;
	X509 *leaf = NULL;
	char why[160] = "";
	int rc = SPH_ERR_INVALID_ARG, vrc;

	if (when)
		*when = 0;
	if (verified)
		*verified = false;
	if (!cose || !nonce || !when || !verified)
		goto out;
	if ((rc = cose_sign1_decode(cose, len, &s)) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (s.content_type != AGENT_TIME_CTYPE || !s.payload || s.x5_count < 1 ||
	    !s.x5chain_protected)
		goto out;
	if ((rc = agent_time_payload(&s, &secs, &n, &nlen)) != 0)
		goto out;
	rc = SPH_ERR_NONCE_MISMATCH;
	if (nlen != nonce_len || CRYPTO_memcmp(n, nonce, nonce_len) != 0)
		goto out;
	der = s.x5[0].der;
	rc = SPH_ERR_MALFORMED;
	if (!(leaf = d2i_X509(NULL, &der, (long)s.x5[0].len)) || der != s.x5[0].der + s.x5[0].len)
		goto out;
	/* whoever signed it, the bytes must be theirs: a tampered time is refused */
	if ((rc = cose_sign1_verify(cose, len, NULL, 0, X509_get0_pubkey(leaf), NULL)) != 0)
		goto out;
	if (root) {
		memset(&trust, 0, sizeof(trust));
		trust.root_cert = root;
		trust.time_policy = IMG_TIME_AT;
		trust.at = (time_t)secs;
		vrc = img_sign1_verify_chain(cose, len, AGENT_TIME_CTYPE, &trust,
		                             IMG_ROLE_TENANT_APP, NULL, why, sizeof(why));
		if (vrc == 0) {
			*verified = true;
		} else if (vrc == SPH_ERR_AUTH || vrc == SPH_ERR_PERMISSION) {
			sph_log(SPH_LOG_WARN, "agent", "signed_time_unverified", "reason=\"%s\"",
			        why);
		} else {
			rc = vrc;
			goto out;
		}
	}
	*when = (int64_t)secs;
	rc = 0;
out:
	X509_free(leaf);
	ERR_clear_error();
	return rc;
}

int agent_tenant_root(const char *dir, X509 **root)
{
	STACK_OF(X509) *certs = NULL;
	char path[AGENT_PATH_MAX];
	int n, rc = SPH_ERR_INVALID_ARG;

	if (root)
		*root = NULL;
	if (!dir || !root)
		goto out;
	n = snprintf(path, sizeof(path), "%s/%s", dir, BOOT_TENANT_ROOT_FILE);
	rc = SPH_ERR_TOO_LARGE;
	if (n <= 0 || (size_t)n >= sizeof(path))
		goto out;
	if ((rc = img_load_certs(path, &certs)) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (sk_X509_num(certs) != 1)
		goto out;
	if ((rc = boot_tenant_root_check(sk_X509_value(certs, 0))) != 0)
		goto out;
	*root = sk_X509_shift(certs); /* transferred */
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return rc;
}

int64_t agent_window_wait(unsigned start, unsigned end, int64_t now)
{
	int64_t day = 86400, sod, s, e;

	if (start >= 1440 || end >= 1440 || start == end)
		return 0;
	sod = now % day;
	if (sod < 0)
		sod += day;
	s = (int64_t)start * 60;
	e = (int64_t)end * 60;
	if (s < e ? (sod >= s && sod < e) : (sod >= s || sod < e))
		return 0;
	return sod < s ? s - sod : day - sod + s;
}
