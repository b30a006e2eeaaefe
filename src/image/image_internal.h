/* image: helpers shared by the module's files; not part of its API. */
#ifndef SPHERE_IMAGE_INTERNAL_H
#define SPHERE_IMAGE_INTERNAL_H

#include <stdarg.h>

#include <openssl/asn1.h>
#include <openssl/x509.h>

#include "image.h"

/* SHA-256 of len bytes (data may be NULL when len is 0). Returns 0 or SPH_ERR_CRYPTO. */
int img_sha256(const uint8_t *data, size_t len, uint8_t out[IMG_DIGEST_LEN]);

/* Steps 1..5 of docs/formats.md §5.5 (everything but the payload digest and
 * the cryptography). check_certs false skips decoding the x5chain entries
 * (step 3): for a caller that decodes them next (img_chain_load) or that holds
 * them already verified (img_cache). Returns 0 and fills *out, or a negative
 * status with a reason in why (may be NULL); *out is zeroed on failure. */
int img_parse_structure(const uint8_t *pkg, size_t len, bool check_certs, struct img_package *out,
                        char *why, size_t why_cap);

/* Writes a one-line reason into why (may be NULL). */
void img_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The role's OID as a new ASN1_OBJECT (caller frees with ASN1_OBJECT_free), or NULL. */
ASN1_OBJECT *img_role_obj(enum img_role role);

/* DER-encodes cert into an OPENSSL_malloc'd buffer (caller frees with
 * OPENSSL_free). Returns 0, SPH_ERR_TOO_LARGE or SPH_ERR_CRYPTO. */
int img_cert_der(X509 *cert, uint8_t **der, size_t *len);

/* Signs payload as a tagged COSE_Sign1/ES256 with content_type and the x5chain
 * leaf, chain_extra... (at most IMG_MAX_CHAIN in all) in its protected header,
 * into cose (cap bytes). Returns 0 and *cose_len, SPH_ERR_TOO_LARGE (chain or
 * result too large) or another status. */
int img_sign_with_chain(const uint8_t *payload, size_t len, int64_t content_type, EVP_PKEY *signer,
                        X509 *leaf, STACK_OF(X509) * chain_extra, uint8_t *cose, size_t cap,
                        size_t *cose_len);

/* ---- the certificate path (image_chain.c) -------------------------------- */
struct img_chain {
	X509 *certs[IMG_MAX_CHAIN]; /* the x5chain, decoded, leaf first */
	size_t n;
	STACK_OF(X509) * untrusted; /* certs[1..n-1] */
	X509 *anchor;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
};
/* Frees everything the chain holds and zeroes it. Start from a zeroed chain. */
void img_chain_free(struct img_chain *c);
/* Decodes n (1..IMG_MAX_CHAIN) entries, each exactly one DER certificate.
 * Returns 0, SPH_ERR_MALFORMED or SPH_ERR_NOMEM; on failure the caller still
 * calls img_chain_free. */
int img_chain_load(struct img_chain *c, const struct cose_x5 *x5, size_t n);
/* Picks the trust anchor (t->root_cert, or the self-signed top certificate
 * whose SPKI hash is t->root_hash). Returns 0 or SPH_ERR_AUTH with why. */
int img_chain_anchor(struct img_chain *c, const struct img_trust *t, char *why, size_t cap);
/* Strict path validation to the anchor under t's time policy; the x5chain
 * must be exactly that path. Returns 0 or SPH_ERR_AUTH with why. */
int img_chain_verify(struct img_chain *c, const struct img_trust *t, char *why, size_t cap);
/* After img_chain_verify: the leaf's single Sphere role, which every CA on
 * the path must also list (EKU chaining). Returns 0 or SPH_ERR_PERMISSION. */
int img_chain_role(struct img_chain *c, enum img_role *role, char *why, size_t cap);
#endif
