/*
 * Strict readers for Sphere's own integer-keyed maps (EAT claim sets, image
 * manifests): a fixed key set in deterministic order, exact types and lengths.
 */
#include <string.h>

#include "common.h"

bool sph_text_ok(const uint8_t *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

int sph_cbr_profile_key(struct sph_cbr *r, const int64_t *order, size_t n, struct sph_keyset *ks,
                        int *last, int *idx)
{
	struct sph_cbor_item it;
	int64_t key;
	int rc;

	*idx = -1;
	if ((rc = sph_cbr_next(r, &it)))
		return rc;
	if (it.type == SPH_CBOR_UINT && it.u <= (uint64_t)INT64_MAX)
		key = (int64_t)it.u;
	else if (it.type == SPH_CBOR_NEGINT && it.u <= (uint64_t)INT64_MAX)
		key = -1 - (int64_t)it.u;
	else
		return SPH_ERR_CLAIM;
	if ((rc = sph_keyset_add(ks, key)))
		return rc;
	for (size_t i = 0; i < n; i++)
		if (order[i] == key)
			*idx = (int)i;
	if (*idx < 0)
		return SPH_ERR_CLAIM;
	if (*idx <= *last)
		return SPH_ERR_MALFORMED;
	*last = *idx;
	return 0;
}

int sph_cbr_profile_entries(struct sph_cbr *r, size_t count, const int64_t *order, size_t n,
                            int (*value)(struct sph_cbr *r, int64_t key, void *ctx), void *ctx,
                            uint32_t *seen)
{
	struct sph_keyset ks = {.n = 0};
	int last = -1, idx = -1;
	int rc;

	*seen = 0;
	if (n > 32)
		return SPH_ERR_INVALID_ARG;
	/* A count beyond n fails at the first extra key (duplicate or unknown),
	 * so this loop runs at most n + 1 times whatever the count claims. */
	for (size_t i = 0; i < count; i++) {
		if ((rc = sph_cbr_profile_key(r, order, n, &ks, &last, &idx)))
			return rc;
		*seen |= 1u << idx;
		if ((rc = value(r, order[idx], ctx)))
			return rc;
	}
	return 0;
}

int sph_cbr_typed(struct sph_cbr *r, enum sph_cbor_type type, struct sph_cbor_item *it)
{
	int rc = sph_cbr_next(r, it);

	if (rc)
		return rc;
	return it->type == type ? 0 : SPH_ERR_CLAIM;
}

int sph_cbr_bstr_exact(struct sph_cbr *r, uint8_t *dst, size_t len)
{
	struct sph_cbor_item it;
	int rc = sph_cbr_typed(r, SPH_CBOR_BSTR, &it);

	if (rc)
		return rc;
	if (it.len != len)
		return SPH_ERR_CLAIM;
	memcpy(dst, it.data, len);
	return 0;
}

int sph_cbr_text(struct sph_cbr *r, char *dst, size_t max)
{
	struct sph_cbor_item it;
	int rc = sph_cbr_typed(r, SPH_CBOR_TSTR, &it);

	if (rc)
		return rc;
	if (!sph_text_ok(it.data, it.len, max))
		return SPH_ERR_CLAIM;
	memcpy(dst, it.data, it.len);
	return 0;
}

int sph_cbr_uint_max(struct sph_cbr *r, uint64_t max, uint64_t *v)
{
	struct sph_cbor_item it;
	int rc = sph_cbr_typed(r, SPH_CBOR_UINT, &it);

	if (rc)
		return rc;
	if (it.u > max)
		return SPH_ERR_CLAIM;
	*v = it.u;
	return 0;
}
