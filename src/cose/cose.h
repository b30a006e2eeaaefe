/*
 * cose: COSE_Sign1 (RFC 9052) with ES256 only, on libcbor and OpenSSL.
 *
 * Signatures travel in COSE's fixed-width r||s form (64 bytes), never DER.
 * Public keys travel as 65-byte uncompressed SEC1 points (0x04 || X || Y).
 * Decoding is strict: a tagged (18) or untagged 4-element array; protected
 * header a bstr holding a map (or empty); no duplicate labels within or across
 * buckets; alg is required, in either bucket (not both), and must be ES256
 * (-7); "crit" (2) may only list, once each, labels this module understands
 * and that are present in the protected bucket; kid (4) a bstr; x5chain (33,
 * RFC 9360) a bstr or an array of 2..COSE_MAX_X5CHAIN bstr, each 1..COSE_MAX_CERT
 * bytes; no trailing bytes. Unknown non-critical labels are ignored, as
 * RFC 9052 requires.
 */
#ifndef SPHERE_COSE_H
#define SPHERE_COSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <sphere/status.h>

#define COSE_TAG_SIGN1        18
#define COSE_ALG_ES256        (-7)
#define COSE_HDR_ALG          1
#define COSE_HDR_CRIT         2
#define COSE_HDR_CONTENT_TYPE 3
#define COSE_HDR_KID          4
#define COSE_HDR_X5CHAIN      33 /* RFC 9360: DER certificates, leaf first */

#define COSE_ES256_SIG_LEN 64
#define COSE_P256_PUB_LEN  65
#define COSE_DIGEST_LEN    32
/* Largest COSE_Sign1 this module will decode or produce. */
#define COSE_MAX_MESSAGE (1u << 20)
#define COSE_MAX_KID     64
/* x5chain bounds: at most this many certificates, each at most this many bytes. */
#define COSE_MAX_X5CHAIN 4
#define COSE_MAX_CERT    4096

/* One DER certificate of an x5chain (a view: der points into someone's buffer). */
struct cose_x5 {
	const uint8_t *der;
	size_t len;
};

/* A decoded COSE_Sign1: a view whose pointers point into the caller's buffer. */
struct cose_sign1 {
	bool tagged;
	const uint8_t *protected_hdr; /* contents of the protected bstr (the signed bytes) */
	size_t protected_len;
	const uint8_t *payload; /* NULL when the payload is detached (nil) */
	size_t payload_len;
	const uint8_t *signature;
	size_t signature_len;
	const uint8_t *kid; /* NULL if absent */
	size_t kid_len;
	int64_t content_type; /* protected integer content type; -1 if absent,
	                       * textual, or only in the unprotected bucket */
	/* x5chain (33), in whichever bucket it was: the raw CBOR of its value (a
	 * bstr or an array of bstr) and the certificates, leaf first. x5_count is
	 * 0 (x5chain NULL) when absent. Unprotected certificates are not signed. */
	const uint8_t *x5chain;
	size_t x5chain_len;
	bool x5chain_protected;
	size_t x5_count;
	struct cose_x5 x5[COSE_MAX_X5CHAIN];
};

/* Signer callback: signs a SHA-256 digest with ES256, writing r||s into sig.
 * Returns 0 or a negative status. Lets the RoT sign without exposing its key. */
typedef int (*cose_sign_fn)(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                            uint8_t sig[COSE_ES256_SIG_LEN]);

struct cose_sign1_params {
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *external_aad; /* may be NULL */
	size_t external_aad_len;
	const uint8_t *kid; /* unprotected kid, may be NULL */
	size_t kid_len;
	int64_t content_type; /* protected content type (integer), or -1 for none */
	bool untagged;        /* default: tagged with 18 */
	/* Protected x5chain (33): 0..COSE_MAX_X5CHAIN DER certificates, leaf first,
	 * each 1..COSE_MAX_CERT bytes. One is written as a bare bstr, more as an
	 * array (RFC 9360); none: no x5chain label. */
	const struct cose_x5 *x5chain;
	size_t x5chain_count;
};

/* Parses a COSE_Sign1 strictly (see above) without checking the signature.
 * Returns 0 and fills *out, or a negative status (out zeroed). Nothing to free. */
int cose_sign1_decode(const uint8_t *msg, size_t len, struct cose_sign1 *out);

/* Decodes and verifies msg with an ES256 public key. external_aad may be NULL.
 * Returns 0 only if the structure is valid and the signature verifies;
 * SPH_ERR_BAD_SIGNATURE on a signature mismatch; another negative status for
 * malformed or unsupported input. out (may be NULL) is filled only on success. */
int cose_sign1_verify(const uint8_t *msg, size_t len, const uint8_t *external_aad,
                      size_t external_aad_len, EVP_PKEY *pub, struct cose_sign1 *out);

/* Builds and signs a COSE_Sign1 into out (cap bytes): protected
 * {1: -7[, 3: ct][, 33: x5chain]}, unprotected {[4: kid]}. Returns 0 and sets
 * *out_len, or a negative status (SPH_ERR_BUFFER_TOO_SMALL if cap is too
 * small, SPH_ERR_INVALID_ARG for an x5chain beyond its bounds). */
int cose_sign1_create(const struct cose_sign1_params *p, cose_sign_fn sign, void *sign_ctx,
                      uint8_t *out, size_t cap, size_t *out_len);

/* Computes SHA-256 over the Sig_structure ["Signature1", protected, aad, payload].
 * Returns 0 or a negative status. */
int cose_sign1_tbs_digest(const uint8_t *protected_hdr, size_t protected_len,
                          const uint8_t *external_aad, size_t external_aad_len,
                          const uint8_t *payload, size_t payload_len,
                          uint8_t digest[COSE_DIGEST_LEN]);

/* ---- ES256 helpers shared with the RoT ------------------------------------ */

/* ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. Returns
 * true if s <= (n - 1) / 2 (the "low-s" form). */
bool cose_es256_is_low_s(const uint8_t sig[COSE_ES256_SIG_LEN]);
/* Rewrites sig into its low-s form in place. Returns 0 or SPH_ERR_CRYPTO. */
int cose_es256_make_low_s(uint8_t sig[COSE_ES256_SIG_LEN]);

/* A cose_sign_fn that signs with an EVP_PKEY passed as ctx; always low-s. */
int cose_pkey_signer(void *pkey, const uint8_t digest[COSE_DIGEST_LEN],
                     uint8_t sig[COSE_ES256_SIG_LEN]);

/* Verifies an r||s signature over a digest. Returns 0 or SPH_ERR_BAD_SIGNATURE
 * (also for out-of-range r or s), or SPH_ERR_CRYPTO. */
int cose_es256_verify_digest(EVP_PKEY *pub, const uint8_t digest[COSE_DIGEST_LEN],
                             const uint8_t sig[COSE_ES256_SIG_LEN]);

/* DER ECDSA-Sig-Value <-> fixed r||s. Return 0 or SPH_ERR_MALFORMED. */
int cose_sig_der_to_raw(const uint8_t *der, size_t der_len, uint8_t raw[COSE_ES256_SIG_LEN]);
int cose_sig_raw_to_der(const uint8_t raw[COSE_ES256_SIG_LEN], uint8_t *der, size_t cap,
                        size_t *der_len);

/* Imports a 65-byte uncompressed P-256 point (validated to lie on the curve).
 * Returns 0 and a new key in *out (caller frees with EVP_PKEY_free), or
 * SPH_ERR_MALFORMED. */
int cose_p256_import(const uint8_t pub[COSE_P256_PUB_LEN], EVP_PKEY **out);
/* Exports a P-256 public key as 65 uncompressed bytes. Returns 0 or SPH_ERR_CRYPTO. */
int cose_p256_export(EVP_PKEY *key, uint8_t pub[COSE_P256_PUB_LEN]);

#endif
