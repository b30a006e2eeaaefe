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

/* At most this many CA certificates between the leaf and the root. */
#define MAX_INTERMEDIATES 3
/* OpenSSL security level 2: keys and signatures of at least 112 bits. */
#define AUTH_LEVEL 2

struct chain {
	X509 *certs[IMG_MAX_CHAIN]; /* the x5chain, decoded */
	size_t n;
	STACK_OF(X509) * untrusted; /* certs[1..n-1] */
	X509 *anchor;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
};

static void chain_free(struct chain *c)
{
	X509_STORE_CTX_free(c->ctx);
	X509_STORE_free(c->store);
	X509_free(c->anchor);
	sk_X509_free(c->untrusted);
	for (size_t i = 0; i < c->n; i++)
		X509_free(c->certs[i]);
	memset(c, 0, sizeof(*c));
}

static int chain_load(struct chain *c, const struct img_package *pk)
{
	c->untrusted = sk_X509_new_null();
	if (!c->untrusted)
		return SPH_ERR_NOMEM;
	for (size_t i = 0; i < pk->n_certs; i++) {
		const unsigned char *p = pk->certs[i].der;
		c->certs[i] = d2i_X509(NULL, &p, (long)pk->certs[i].len);
		if (!c->certs[i])
			return SPH_ERR_MALFORMED; /* img_parse_structure checked this */
		c->n++;
		if (i > 0 && !sk_X509_push(c->untrusted, c->certs[i]))
			return SPH_ERR_NOMEM;
	}
	return 0;
}

/* Picks the trust anchor: the given root, or the x5chain's top certificate
 * when it is self-signed and its SPKI hash is the given root hash. */
static int chain_anchor(struct chain *c, const struct img_trust *t, char *why, size_t cap)
{
	uint8_t hash[IMG_DIGEST_LEN];
	X509 *top = c->certs[c->n - 1];

	if (t->root_cert) {
		if (X509_up_ref(t->root_cert) != 1)
			return SPH_ERR_CRYPTO;
		c->anchor = t->root_cert;
		return 0;
	}
	if (c->n < 2) {
		img_why(why, cap, "x5chain must end with the root when trusting a root hash");
		return SPH_ERR_AUTH;
	}
	if (X509_self_signed(top, 1) != 1) {
		img_why(why, cap, "the x5chain's last certificate is not a self-signed root");
		return SPH_ERR_AUTH;
	}
	if (img_root_hash(top, hash) != 0 ||
	    CRYPTO_memcmp(hash, t->root_hash, IMG_DIGEST_LEN) != 0) {
		img_why(why, cap, "the x5chain's root is not the trusted root (root hash differs)");
		return SPH_ERR_AUTH;
	}
	if (X509_up_ref(top) != 1)
		return SPH_ERR_CRYPTO;
	c->anchor = top;
	return 0;
}

/* X509_verify_cert with a store holding only the anchor, then: the x5chain is
 * exactly the verified path (leaf first; the root optional when trusting a
 * certificate) and the path is longer than the leaf alone. */
static int chain_verify(struct chain *c, const struct img_trust *t, char *why, size_t cap)
{
	X509_VERIFY_PARAM *param;
	STACK_OF(X509) * path;
	unsigned long flags = X509_V_FLAG_X509_STRICT | X509_V_FLAG_CHECK_SS_SIGNATURE;
	size_t n_path;

	c->store = X509_STORE_new();
	c->ctx = X509_STORE_CTX_new();
	if (!c->store || !c->ctx)
		return SPH_ERR_NOMEM;
	if (X509_STORE_add_cert(c->store, c->anchor) != 1)
		return SPH_ERR_CRYPTO;
	if (X509_STORE_CTX_init(c->ctx, c->store, c->certs[0], c->untrusted) != 1)
		return SPH_ERR_CRYPTO;
	param = X509_STORE_CTX_get0_param(c->ctx);
	if (t->time_policy == IMG_TIME_NONE)
		flags |= X509_V_FLAG_NO_CHECK_TIME;
	else if (t->time_policy == IMG_TIME_AT)
		X509_VERIFY_PARAM_set_time(param, t->at);
	if (X509_VERIFY_PARAM_set_flags(param, flags) != 1)
		return SPH_ERR_CRYPTO;
	X509_VERIFY_PARAM_set_depth(param, MAX_INTERMEDIATES);
	X509_VERIFY_PARAM_set_auth_level(param, AUTH_LEVEL);

	if (X509_verify_cert(c->ctx) != 1) {
		int err = X509_STORE_CTX_get_error(c->ctx);
		img_why(why, cap, "signer certificate not trusted: %s (at depth %d)",
		        X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(c->ctx));
		return SPH_ERR_AUTH;
	}
	path = X509_STORE_CTX_get0_chain(c->ctx);
	n_path = path ? (size_t)sk_X509_num(path) : 0;
	if (n_path < 2) {
		img_why(why, cap, "the signer certificate is itself the trusted root");
		return SPH_ERR_AUTH;
	}
	if (c->n != n_path && !(t->root_cert && c->n == n_path - 1)) {
		img_why(why, cap, "x5chain is not exactly the certificate path to the root");
		return SPH_ERR_AUTH;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (X509_cmp(sk_X509_value(path, (int)i), c->certs[i]) != 0) {
			img_why(why, cap,
			        "x5chain is not exactly the certificate path to the root");
			return SPH_ERR_AUTH;
		}
	}
	return 0;
}

/* The leaf's role, every CA on the path allowed to certify it (EKU chaining),
 * and the role allowed to sign this component type under the policy. */
static int chain_role(struct chain *c, const struct img_trust *t, uint32_t type,
                      enum img_role *role, char *why, size_t cap)
{
	STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(c->ctx);

	if (img_cert_role(c->certs[0], role) != 0) {
		img_why(why, cap, "the signer certificate carries no single Sphere signing role");
		return SPH_ERR_PERMISSION;
	}
	for (int i = 1; i < sk_X509_num(path); i++) {
		if (!img_cert_has_role(sk_X509_value(path, i), *role)) {
			img_why(why, cap, "CA at depth %d may not certify the %s role", i,
			        img_role_name(*role));
			return SPH_ERR_PERMISSION;
		}
	}
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
	struct chain c;
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
	if ((rc = chain_load(&c, &pk)))
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
	rc = chain_anchor(&c, trust, why, why_cap);
	if (rc)
		goto out;
	rc = chain_verify(&c, trust, why, why_cap);
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
	chain_free(&c);
	ERR_clear_error();
	return rc;
}
