/*
 * eat claims: the claim set's deterministic CBOR encoding, its strict decoder,
 * the UEID, the measurement events and the accumulator replay
 * (docs/formats.md §3).
 *
 * Map keys are written in RFC 8949 §4.2.1 core deterministic order: ascending
 * bytewise by their encoded form, which for integer keys means every unsigned
 * key (by value) before every negative key (by magnitude). The decoder
 * accepts that order only, so a claim set decodes only from the exact bytes
 * eat_encode_claims() would produce for it (fuzz/fuzz_eat.c checks this), and
 * the component map bytes in a token are the bytes its measurement event
 * hashed.
 */
#include <string.h>

#include <openssl/evp.h>

#include "common/common.h"
#include "eat.h"
#include "eat_internal.h"

/* SHA-256("sphere virtual pluton v1"), i.e.
 * `printf 'sphere virtual pluton v1' | sha256sum`; pinned by test_eat. */
const uint8_t eat_implementation_id[32] = {
        0x0c, 0x41, 0xaa, 0xfd, 0x19, 0x8e, 0xe7, 0x2a, 0x42, 0xd0, 0x47,
        0xba, 0x74, 0x65, 0x46, 0x31, 0x08, 0xa9, 0xe8, 0x5d, 0x0d, 0xec,
        0x5b, 0x1b, 0x64, 0x85, 0x62, 0xa9, 0xa5, 0xf2, 0x55, 0x96,
};

#define EAT_DIGEST_LEN  32
#define EAT_DESCRIPTION "sha-256"

/* Largest encoded component map: map head 1, type 1+17, measurement 1+34,
 * version 1+34, signer id 1+34, description 1+8, svn 5+5, component id 5+17. */
#define EAT_COMPONENT_MAX_CBOR 165

/* Claim keys in deterministic order; the encoder writes them in this order and
 * the decoder requires it. */
static const int64_t claim_order[] = {
        EAT_CLAIM_NONCE,              /* 0x0a */
        EAT_CLAIM_UEID,               /* 0x19 0x0100 */
        EAT_CLAIM_PROFILE,            /* 0x19 0x0109 */
        EAT_CLAIM_BOOT_COUNT,         /* 0x19 0x010b */
        EAT_CLAIM_LIFECYCLE,          /* 0x19 0x095b */
        EAT_CLAIM_IMPLEMENTATION_ID,  /* 0x19 0x095c */
        EAT_CLAIM_BOOT_SEED,          /* 0x19 0x095d */
        EAT_CLAIM_SW_COMPONENTS,      /* 0x19 0x095f */
        EAT_CLAIM_SPHERE_ACCUMULATOR, /* 0x3a 0x000124f7 */
};
#define N_CLAIMS (sizeof(claim_order) / sizeof(claim_order[0]))

/* Component map keys in deterministic order. */
static const int64_t swc_order[] = {
        EAT_SWC_TYPE,                /* 0x01 */
        EAT_SWC_MEASUREMENT,         /* 0x02 */
        EAT_SWC_VERSION,             /* 0x04 */
        EAT_SWC_SIGNER_ID,           /* 0x05 */
        EAT_SWC_DESCRIPTION,         /* 0x06 */
        EAT_SWC_SPHERE_SVN,          /* 0x3a 0x000124f8 */
        EAT_SWC_SPHERE_COMPONENT_ID, /* 0x3a 0x000124f9 */
};
#define N_SWC (sizeof(swc_order) / sizeof(swc_order[0]))

_Static_assert(N_CLAIMS <= SPH_CBOR_MAX_KEYS, "claim keys fit a keyset");
_Static_assert(N_CLAIMS <= 32 && N_SWC <= 32, "seen masks are 32 bits");

int eat_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	static const uint8_t empty[1];
	unsigned int n = 0;

	if (EVP_Digest(data ? data : empty, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != EAT_DIGEST_LEN) {
		memset(out, 0, EAT_DIGEST_LEN);
		return SPH_ERR_CRYPTO;
	}
	return 0;
}

/* ---- value rules shared by the encoder and the decoder ---------------------- */

/* Sphere emits exactly these four PSA lifecycle values (docs/formats.md §3);
 * any other, including PSA's "unknown" (0) and its implementation-defined
 * minor values, is refused. */
static bool lifecycle_ok(uint64_t lc)
{
	return lc == EAT_LC_ASSEMBLY_AND_TEST || lc == EAT_LC_SECURED ||
	       lc == EAT_LC_NON_PSA_ROT_DEBUG || lc == EAT_LC_DECOMMISSIONED;
}

/* Length of a NUL-terminated text field of capacity max+1, if valid, else 0. */
static size_t text_len(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);
	return sph_text_ok((const uint8_t *)s, len, max) ? len : 0;
}

static bool component_ok(const struct eat_component *c)
{
	return text_len(c->type, EAT_TYPE_MAX) != 0 && text_len(c->version, EAT_VERSION_MAX) != 0;
}

static bool claims_ok(const struct eat_claims *c)
{
	if (c->nonce_len < EAT_NONCE_MIN || c->nonce_len > EAT_NONCE_MAX)
		return false;
	if (c->ueid[0] != EAT_UEID_TYPE_RAND)
		return false;
	if (!lifecycle_ok(c->lifecycle))
		return false;
	if (c->n_components < 1 || c->n_components > EAT_MAX_COMPONENTS)
		return false;
	for (size_t i = 0; i < c->n_components; i++)
		if (!component_ok(&c->components[i]))
			return false;
	return true;
}

/* ---- encoder --------------------------------------------------------------- */

/* Writes one component map; c must satisfy component_ok(). */
static void put_component(struct sph_cbw *w, const struct eat_component *c)
{
	sph_cbw_map(w, N_SWC);
	for (size_t i = 0; i < N_SWC; i++) {
		sph_cbw_int(w, swc_order[i]);
		switch (swc_order[i]) {
		case EAT_SWC_TYPE:
			sph_cbw_tstr(w, c->type, strlen(c->type));
			break;
		case EAT_SWC_MEASUREMENT:
			sph_cbw_bstr(w, c->digest, sizeof(c->digest));
			break;
		case EAT_SWC_VERSION:
			sph_cbw_tstr(w, c->version, strlen(c->version));
			break;
		case EAT_SWC_SIGNER_ID:
			sph_cbw_bstr(w, c->signer_id, sizeof(c->signer_id));
			break;
		case EAT_SWC_DESCRIPTION:
			sph_cbw_tstr(w, EAT_DESCRIPTION, strlen(EAT_DESCRIPTION));
			break;
		case EAT_SWC_SPHERE_SVN:
			sph_cbw_uint(w, c->security_version);
			break;
		case EAT_SWC_SPHERE_COMPONENT_ID:
			sph_cbw_bstr(w, c->component_id, sizeof(c->component_id));
			break;
		}
	}
}

/* Writes the claims map; c must satisfy claims_ok(). */
static void put_claims(struct sph_cbw *w, const struct eat_claims *c)
{
	sph_cbw_map(w, N_CLAIMS);
	for (size_t i = 0; i < N_CLAIMS; i++) {
		sph_cbw_int(w, claim_order[i]);
		switch (claim_order[i]) {
		case EAT_CLAIM_NONCE:
			sph_cbw_bstr(w, c->nonce, c->nonce_len);
			break;
		case EAT_CLAIM_UEID:
			sph_cbw_bstr(w, c->ueid, sizeof(c->ueid));
			break;
		case EAT_CLAIM_PROFILE:
			sph_cbw_tstr(w, EAT_PROFILE, strlen(EAT_PROFILE));
			break;
		case EAT_CLAIM_BOOT_COUNT:
			sph_cbw_uint(w, c->boot_count);
			break;
		case EAT_CLAIM_LIFECYCLE:
			sph_cbw_uint(w, c->lifecycle);
			break;
		case EAT_CLAIM_IMPLEMENTATION_ID:
			sph_cbw_bstr(w, c->implementation_id, sizeof(c->implementation_id));
			break;
		case EAT_CLAIM_BOOT_SEED:
			sph_cbw_bstr(w, c->boot_seed, sizeof(c->boot_seed));
			break;
		case EAT_CLAIM_SW_COMPONENTS:
			sph_cbw_array(w, c->n_components);
			for (size_t j = 0; j < c->n_components; j++)
				put_component(w, &c->components[j]);
			break;
		case EAT_CLAIM_SPHERE_ACCUMULATOR:
			sph_cbw_bstr(w, c->accumulator, sizeof(c->accumulator));
			break;
		}
	}
}

int eat_encode_claims(const struct eat_claims *claims, uint8_t *out, size_t cap, size_t *out_len)
{
	struct sph_cbw w;
	int rc = SPH_ERR_INVALID_ARG;

	if (out_len)
		*out_len = 0;
	if (!claims || !out_len)
		goto out;
	rc = SPH_ERR_CLAIM;
	if (!claims_ok(claims))
		goto out;
	sph_cbw_init(&w, out, cap);
	put_claims(&w, claims);
	rc = sph_cbw_finish(&w, out_len);
out:
	return rc;
}

int eat_measurement_event(const struct eat_component *c, uint8_t event[32])
{
	uint8_t buf[EAT_COMPONENT_MAX_CBOR];
	struct sph_cbw w;
	size_t len = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (event)
		memset(event, 0, EAT_DIGEST_LEN);
	if (!c || !event)
		goto out;
	rc = SPH_ERR_CLAIM;
	if (!component_ok(c))
		goto out;
	sph_cbw_init(&w, buf, sizeof(buf));
	put_component(&w, c);
	rc = sph_cbw_finish(&w, &len);
	if (rc)
		goto out;
	rc = eat_sha256(buf, len, event);
out:
	return rc;
}

int eat_accumulator_replay(const struct eat_component *c, size_t n, uint8_t acc[32])
{
	uint8_t chain[2 * EAT_DIGEST_LEN]; /* acc || event */
	int rc = SPH_ERR_INVALID_ARG;

	if (acc)
		memset(acc, 0, EAT_DIGEST_LEN);
	if (!acc || (!c && n > 0))
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (n > EAT_MAX_COMPONENTS)
		goto out;
	memset(chain, 0, sizeof(chain));
	for (size_t i = 0; i < n; i++) {
		rc = eat_measurement_event(&c[i], chain + EAT_DIGEST_LEN);
		if (rc)
			goto out;
		rc = eat_sha256(chain, sizeof(chain), chain);
		if (rc)
			goto out;
	}
	memcpy(acc, chain, EAT_DIGEST_LEN);
	rc = 0;
out:
	return rc;
}

int eat_ueid_from_pub(const uint8_t pub[COSE_P256_PUB_LEN], uint8_t ueid[EAT_UEID_LEN])
{
	int rc = SPH_ERR_INVALID_ARG;

	if (ueid)
		memset(ueid, 0, EAT_UEID_LEN);
	if (!pub || !ueid)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (pub[0] != 0x04)
		goto out;
	rc = eat_sha256(pub + 1, COSE_P256_PUB_LEN - 1, ueid + 1);
	if (rc)
		goto out;
	ueid[0] = EAT_UEID_TYPE_RAND;
out:
	return rc;
}

/* ---- decoder ----------------------------------------------------------------
 * Errors: the reader's own (SPH_ERR_TRUNCATED, SPH_ERR_MALFORMED) for bytes
 * that are not strict CBOR; SPH_ERR_CLAIM for a key the profile does not
 * define, a value of the wrong type, length or range, or a missing claim;
 * SPH_ERR_DUPLICATE for a repeated key; SPH_ERR_MALFORMED for keys out of
 * deterministic order; SPH_ERR_TRAILING for bytes after the map.
 */

/* Reads a tstr that must equal want exactly. */
static int read_text_equal(struct sph_cbr *r, const char *want)
{
	struct sph_cbor_item it;
	size_t len = strlen(want);
	int rc = sph_cbr_typed(r, SPH_CBOR_TSTR, &it);

	if (rc)
		return rc;
	if (it.len != len || memcmp(it.data, want, len) != 0)
		return SPH_ERR_CLAIM;
	return 0;
}

/* Reads the value of component key into ctx (a struct eat_component). */
static int decode_component_value(struct sph_cbr *r, int64_t key, void *ctx)
{
	struct eat_component *c = ctx;
	uint64_t v = 0;
	int rc = SPH_ERR_CLAIM;

	switch (key) {
	case EAT_SWC_TYPE:
		rc = sph_cbr_text(r, c->type, EAT_TYPE_MAX);
		break;
	case EAT_SWC_MEASUREMENT:
		rc = sph_cbr_bstr_exact(r, c->digest, sizeof(c->digest));
		break;
	case EAT_SWC_VERSION:
		rc = sph_cbr_text(r, c->version, EAT_VERSION_MAX);
		break;
	case EAT_SWC_SIGNER_ID:
		rc = sph_cbr_bstr_exact(r, c->signer_id, sizeof(c->signer_id));
		break;
	case EAT_SWC_DESCRIPTION:
		rc = read_text_equal(r, EAT_DESCRIPTION);
		break;
	case EAT_SWC_SPHERE_SVN:
		rc = sph_cbr_uint_max(r, UINT32_MAX, &v);
		c->security_version = (uint32_t)v;
		break;
	case EAT_SWC_SPHERE_COMPONENT_ID:
		rc = sph_cbr_bstr_exact(r, c->component_id, sizeof(c->component_id));
		break;
	}
	return rc;
}

/* Decodes one component map into c (zeroed). */
static int decode_component(struct sph_cbr *r, struct eat_component *c)
{
	struct sph_cbor_item it;
	uint32_t seen = 0;
	int rc;

	rc = sph_cbr_typed(r, SPH_CBOR_MAP, &it);
	if (rc)
		return rc;
	rc = sph_cbr_profile_entries(r, (size_t)it.u, swc_order, N_SWC, decode_component_value, c,
	                             &seen);
	if (rc)
		return rc;
	if (seen != (1u << N_SWC) - 1)
		return SPH_ERR_CLAIM;
	return 0;
}

static int decode_components(struct sph_cbr *r, struct eat_claims *out)
{
	struct sph_cbor_item it;
	int rc = sph_cbr_typed(r, SPH_CBOR_ARRAY, &it);

	if (rc)
		return rc;
	if (it.u < 1 || it.u > EAT_MAX_COMPONENTS)
		return SPH_ERR_CLAIM;
	for (size_t i = 0; i < (size_t)it.u; i++) {
		rc = decode_component(r, &out->components[i]);
		if (rc)
			return rc;
	}
	out->n_components = (size_t)it.u;
	return 0;
}

static int decode_claim(struct sph_cbr *r, int64_t key, void *ctx)
{
	struct eat_claims *out = ctx;
	struct sph_cbor_item it;
	uint64_t v = 0;
	int rc = SPH_ERR_CLAIM;

	switch (key) {
	case EAT_CLAIM_NONCE:
		rc = sph_cbr_typed(r, SPH_CBOR_BSTR, &it);
		if (rc)
			break;
		if (it.len < EAT_NONCE_MIN || it.len > EAT_NONCE_MAX) {
			rc = SPH_ERR_CLAIM;
			break;
		}
		memcpy(out->nonce, it.data, it.len);
		out->nonce_len = it.len;
		break;
	case EAT_CLAIM_UEID:
		rc = sph_cbr_bstr_exact(r, out->ueid, sizeof(out->ueid));
		if (rc == 0 && out->ueid[0] != EAT_UEID_TYPE_RAND)
			rc = SPH_ERR_CLAIM;
		break;
	case EAT_CLAIM_PROFILE:
		rc = read_text_equal(r, EAT_PROFILE);
		break;
	case EAT_CLAIM_BOOT_COUNT:
		rc = sph_cbr_uint_max(r, UINT64_MAX, &out->boot_count);
		break;
	case EAT_CLAIM_LIFECYCLE:
		rc = sph_cbr_uint_max(r, UINT32_MAX, &v);
		if (rc == 0 && !lifecycle_ok(v))
			rc = SPH_ERR_CLAIM;
		out->lifecycle = (uint32_t)v;
		break;
	case EAT_CLAIM_IMPLEMENTATION_ID:
		rc = sph_cbr_bstr_exact(r, out->implementation_id, sizeof(out->implementation_id));
		break;
	case EAT_CLAIM_BOOT_SEED:
		rc = sph_cbr_bstr_exact(r, out->boot_seed, sizeof(out->boot_seed));
		break;
	case EAT_CLAIM_SW_COMPONENTS:
		rc = decode_components(r, out);
		break;
	case EAT_CLAIM_SPHERE_ACCUMULATOR:
		rc = sph_cbr_bstr_exact(r, out->accumulator, sizeof(out->accumulator));
		break;
	}
	return rc;
}

int eat_decode_claims(const uint8_t *buf, size_t len, struct eat_claims *out)
{
	struct sph_cbr r;
	size_t n = 0;
	uint32_t seen = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!out || (!buf && len > 0))
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (len > EAT_MAX_TOKEN)
		goto out;
	sph_cbr_init(&r, buf, len);
	rc = sph_cbr_map(&r, &n);
	if (rc)
		goto out;
	rc = sph_cbr_profile_entries(&r, n, claim_order, N_CLAIMS, decode_claim, out, &seen);
	if (rc)
		goto out;
	rc = SPH_ERR_CLAIM;
	if (seen != (1u << N_CLAIMS) - 1)
		goto out;
	rc = sph_cbr_expect_end(&r);
out:
	if (rc && out)
		memset(out, 0, sizeof(*out));
	return rc;
}
