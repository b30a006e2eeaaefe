/*
 * eat: Sphere's attestation evidence, an Entity Attestation Token (RFC 9711)
 * signed as COSE_Sign1/ES256, using the PSA attestation token's claim keys
 * (RFC 9783) where one fits. The claim set is specified in docs/formats.md.
 */
#ifndef SPHERE_EAT_H
#define SPHERE_EAT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "cose/cose.h"

/* Claim keys. */
#define EAT_CLAIM_NONCE              10       /* eat_nonce (RFC 9711) */
#define EAT_CLAIM_UEID               256      /* ueid (RFC 9711), PSA instance id */
#define EAT_CLAIM_PROFILE            265      /* eat_profile (RFC 9711) */
#define EAT_CLAIM_BOOT_COUNT         267      /* bootcount (RFC 9711) */
#define EAT_CLAIM_LIFECYCLE          2395     /* PSA security lifecycle */
#define EAT_CLAIM_IMPLEMENTATION_ID  2396     /* PSA implementation id */
#define EAT_CLAIM_BOOT_SEED          2397     /* PSA boot seed */
#define EAT_CLAIM_SW_COMPONENTS      2399     /* PSA software components */
#define EAT_CLAIM_SPHERE_ACCUMULATOR (-75000) /* Sphere: digest accumulator */

/* Keys inside one software component map. */
#define EAT_SWC_TYPE                1        /* PSA measurement type (tstr) */
#define EAT_SWC_MEASUREMENT         2        /* PSA measurement value (bstr, SHA-256) */
#define EAT_SWC_VERSION             4        /* PSA version (tstr) */
#define EAT_SWC_SIGNER_ID           5        /* PSA signer id (bstr, SHA-256 of signer key) */
#define EAT_SWC_DESCRIPTION         6        /* PSA measurement description: "sha-256" */
#define EAT_SWC_SPHERE_SVN          (-75001) /* Sphere: security version (uint) */
#define EAT_SWC_SPHERE_COMPONENT_ID (-75002) /* Sphere: component id (16-byte UUID) */

#define EAT_PROFILE        "tag:sphere-iot.org,2026:eat-v1"
#define EAT_NONCE_MIN      8
#define EAT_NONCE_MAX      64
#define EAT_UEID_LEN       33 /* 0x01 (RAND type) || SHA-256(identity X||Y) */
#define EAT_UEID_TYPE_RAND 0x01
#define EAT_MAX_COMPONENTS 16
#define EAT_TYPE_MAX       16   /* bytes of a measurement type, e.g. "BL", "OS", "APP" */
#define EAT_VERSION_MAX    32   /* bytes of a version string */
#define EAT_MAX_TOKEN      4096 /* largest token produced or accepted */

/* PSA security lifecycle values (RFC 9783 §4.2.5). */
#define EAT_LC_UNKNOWN           0x0000
#define EAT_LC_ASSEMBLY_AND_TEST 0x1000
#define EAT_LC_SECURED           0x3000
#define EAT_LC_NON_PSA_ROT_DEBUG 0x4000
#define EAT_LC_DECOMMISSIONED    0x6000

struct eat_component {
	char type[EAT_TYPE_MAX + 1]; /* NUL-terminated */
	uint8_t component_id[16];
	char version[EAT_VERSION_MAX + 1]; /* NUL-terminated */
	uint32_t security_version;
	uint8_t digest[32];
	uint8_t signer_id[32];
};

struct eat_claims {
	uint8_t nonce[EAT_NONCE_MAX];
	size_t nonce_len;
	uint8_t ueid[EAT_UEID_LEN];
	uint32_t lifecycle; /* PSA security lifecycle */
	uint8_t implementation_id[32];
	uint8_t boot_seed[32];
	uint64_t boot_count;
	uint8_t accumulator[32];
	size_t n_components;
	struct eat_component components[EAT_MAX_COMPONENTS];
};

/* The fixed implementation id of Sphere's emulated RoT: SHA-256("sphere virtual pluton v1"). */
extern const uint8_t eat_implementation_id[32];

/* Computes the UEID for an identity key: 0x01 || SHA-256(X||Y). Returns 0 or a status. */
int eat_ueid_from_pub(const uint8_t pub[COSE_P256_PUB_LEN], uint8_t ueid[EAT_UEID_LEN]);

/* The COSE kid every token carries: SHA-256(X||Y) of the attestation key.
 * Returns 0, SPH_ERR_MALFORMED (not an uncompressed point) or another status. */
#define EAT_KID_LEN 32
int eat_kid_from_pub(const uint8_t pub[COSE_P256_PUB_LEN], uint8_t kid[EAT_KID_LEN]);

/* The measurement event a component contributes to the accumulator:
 * SHA-256 of the component's deterministic CBOR map (the bytes that appear in
 * the token). acc' = SHA-256(acc || event). Returns 0 or a negative status. */
int eat_measurement_event(const struct eat_component *c, uint8_t event[32]);
/* Replays the accumulator from zero over the components: acc = 32 zero bytes,
 * then acc = SHA-256(acc || event(c_i)). Returns 0 or a negative status. */
int eat_accumulator_replay(const struct eat_component *c, size_t n, uint8_t acc[32]);

/* Encodes the claim set as a deterministic CBOR map into out (keys in
 * RFC 8949 §4.2.1 order). Refuses (SPH_ERR_CLAIM) what eat_decode_claims()
 * would refuse. Returns 0 and sets *out_len, or a negative status. */
int eat_encode_claims(const struct eat_claims *claims, uint8_t *out, size_t cap, size_t *out_len);

/* Decodes a claim set strictly: every claim above present exactly once with
 * the documented type and length, the profile equal to EAT_PROFILE, no
 * unknown (SPH_ERR_CLAIM) or duplicate (SPH_ERR_DUPLICATE) keys, keys in
 * deterministic order (SPH_ERR_MALFORMED), no trailing bytes
 * (SPH_ERR_TRAILING): only the exact bytes eat_encode_claims() produces
 * decode. Returns 0 or a negative status (SPH_ERR_CLAIM for a missing or
 * invalid claim); *out is zeroed on failure. */
int eat_decode_claims(const uint8_t *buf, size_t len, struct eat_claims *out);

/* Encodes and signs the claims as a tagged COSE_Sign1 with kid = the signer's
 * key id (may be NULL). eat_verify() accepts only tokens whose kid is
 * eat_kid_from_pub(attestation key), so the RoT passes that; NULL is for
 * tests and tools. Returns 0 and sets *out_len, or a negative status
 * (SPH_ERR_CLAIM if the claims break the profile). */
int eat_sign(const struct eat_claims *claims, cose_sign_fn sign, void *sign_ctx, const uint8_t *kid,
             size_t kid_len, uint8_t *out, size_t cap, size_t *out_len);

/* Verifies a token as a service would, in this order:
 *  - the COSE_Sign1 signature against attest_pub (the device's attestation key),
 *    and the envelope exactly tag 18, protected {1: -7}, unprotected
 *    {4: eat_kid_from_pub(attest_pub)} (else SPH_ERR_MALFORMED),
 *  - the claim set well-formed (eat_decode_claims),
 *  - the nonce equal (constant time) to the expected one (EAT_NONCE_MIN..MAX bytes,
 *    else SPH_ERR_INVALID_ARG; a different nonce is SPH_ERR_NONCE_MISMATCH),
 *  - the accumulator equal to the replay of the listed components,
 *  - if identity_pub is not NULL, the UEID derived from it.
 * Returns 0 and fills *out (may be NULL) only when all checks pass; otherwise
 * SPH_ERR_BAD_SIGNATURE, SPH_ERR_NONCE_MISMATCH, SPH_ERR_CLAIM or another
 * negative status. */
int eat_verify(const uint8_t *token, size_t len, const uint8_t *nonce, size_t nonce_len,
               const uint8_t attest_pub[COSE_P256_PUB_LEN],
               const uint8_t *identity_pub /* COSE_P256_PUB_LEN or NULL */, struct eat_claims *out);

#endif
