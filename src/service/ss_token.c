/*
 * ss_token: API tokens (docs/api.md §2.1): "sph_" + 64 lowercase hex digits
 * of 256 random bits; only their SHA-256 is ever stored.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/common.h"
#include "service.h"

#define SS_TOKEN_PREFIX     "sph_"
#define SS_TOKEN_PREFIX_LEN 4
_Static_assert(SS_TOKEN_PREFIX_LEN + 64 == SS_TOKEN_LEN, "token length");

static int ss_token_digest(const char *token, uint8_t hash[32])
{
	return EVP_Digest(token, SS_TOKEN_LEN, hash, NULL, EVP_sha256(), NULL) == 1
	               ? 0
	               : SPH_ERR_CRYPTO;
}

int ss_token_new(char token[SS_TOKEN_LEN + 1], uint8_t hash[32])
{
	uint8_t raw[32];
	int rc = SPH_ERR_RANDOM;

	if (!token || !hash)
		return SPH_ERR_INVALID_ARG;
	memset(token, 0, SS_TOKEN_LEN + 1);
	memset(hash, 0, 32);
	if (RAND_priv_bytes(raw, sizeof(raw)) != 1)
		goto out;
	memcpy(token, SS_TOKEN_PREFIX, SS_TOKEN_PREFIX_LEN);
	rc = sph_hex_encode(raw, sizeof(raw), token + SS_TOKEN_PREFIX_LEN, 65);
	if (rc == 0)
		rc = ss_token_digest(token, hash);
	if (rc != 0)
		OPENSSL_cleanse(token, SS_TOKEN_LEN + 1);
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

int ss_token_hash(const char *token, uint8_t hash[32])
{
	if (!token || !hash)
		return SPH_ERR_INVALID_ARG;
	memset(hash, 0, 32);
	if (strncmp(token, SS_TOKEN_PREFIX, SS_TOKEN_PREFIX_LEN) != 0 ||
	    strlen(token) != SS_TOKEN_LEN)
		return SPH_ERR_MALFORMED;
	for (size_t i = SS_TOKEN_PREFIX_LEN; i < SS_TOKEN_LEN; i++) {
		char ch = token[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return SPH_ERR_MALFORMED;
	}
	return ss_token_digest(token, hash);
}
