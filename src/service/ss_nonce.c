/* ss_nonce: stateless, device-bound, expiring check-in nonces (ss_nonce.h). */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "ss_nonce.h"
#include "ss_store.h"

#define SS_NONCE_TIME    8
#define SS_NONCE_RAND    16
#define SS_NONCE_MAC     16
#define SS_NONCE_SKEW_MS 5000
_Static_assert(SS_NONCE_TIME + SS_NONCE_RAND + SS_NONCE_MAC == SS_NONCE_LEN, "nonce layout");

int ss_nonce_key_derive(const uint8_t kek[SS_KEK_LEN], struct ss_nonce_key *key)
{
	static const char info[] = "sphere-ss nonce v1";
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[] = {
	        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)kek, SS_KEK_LEN),
	        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, sizeof(info) - 1),
	        OSSL_PARAM_END};
	int rc = SPH_ERR_INVALID_ARG;

	if (!kek || !key)
		goto out;
	rc = c && EVP_KDF_derive(c, key->k, sizeof(key->k), p) == 1 ? 0 : SPH_ERR_CRYPTO;
	if (rc != 0)
		OPENSSL_cleanse(key->k, sizeof(key->k));
out:
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
	return rc;
}

static bool ss_nonce_device_ok(const char *id)
{
	if (!id || strlen(id) != SS_DEVICE_ID_LEN)
		return false;
	for (size_t i = 0; i < SS_DEVICE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

/* HMAC-SHA256(key, time || random || device id), truncated. */
static int ss_nonce_mac(const struct ss_nonce_key *key, const uint8_t *head, const char *device_id,
                        uint8_t mac[SS_NONCE_MAC])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	                  OSSL_PARAM_END};
	uint8_t full[32];
	size_t n = 0;
	int rc = SPH_ERR_CRYPTO;

	if (c && EVP_MAC_init(c, key->k, sizeof(key->k), p) == 1 &&
	    EVP_MAC_update(c, head, SS_NONCE_TIME + SS_NONCE_RAND) == 1 &&
	    EVP_MAC_update(c, (const uint8_t *)device_id, SS_DEVICE_ID_LEN) == 1 &&
	    EVP_MAC_final(c, full, &n, sizeof(full)) == 1 && n == sizeof(full)) {
		memcpy(mac, full, SS_NONCE_MAC);
		rc = 0;
	}
	OPENSSL_cleanse(full, sizeof(full));
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	return rc;
}

int ss_nonce_issue(const struct ss_nonce_key *key, const char *device_id, int64_t now_ms,
                   uint8_t nonce[SS_NONCE_LEN])
{
	if (!key || !nonce || !ss_nonce_device_ok(device_id) || now_ms < 0)
		return SPH_ERR_INVALID_ARG;
	for (int i = 0; i < SS_NONCE_TIME; i++)
		nonce[i] = (uint8_t)((uint64_t)now_ms >> (56 - 8 * i));
	if (RAND_bytes(nonce + SS_NONCE_TIME, SS_NONCE_RAND) != 1)
		return SPH_ERR_RANDOM;
	return ss_nonce_mac(key, nonce, device_id, nonce + SS_NONCE_TIME + SS_NONCE_RAND);
}

int ss_nonce_check(const struct ss_nonce_key *key, const char *device_id, int64_t now_ms,
                   const uint8_t *nonce, size_t len, int64_t *issued_ms)
{
	uint8_t mac[SS_NONCE_MAC];
	uint64_t t = 0;
	int rc;

	if (issued_ms)
		*issued_ms = 0;
	if (!key || !ss_nonce_device_ok(device_id) || (!nonce && len))
		return SPH_ERR_INVALID_ARG;
	if (len != SS_NONCE_LEN)
		return SPH_ERR_MALFORMED;
	rc = ss_nonce_mac(key, nonce, device_id, mac);
	if (rc != 0)
		return rc;
	if (CRYPTO_memcmp(mac, nonce + SS_NONCE_TIME + SS_NONCE_RAND, SS_NONCE_MAC) != 0)
		return SPH_ERR_NONCE_MISMATCH;
	for (int i = 0; i < SS_NONCE_TIME; i++)
		t = t << 8 | nonce[i];
	if (t > (uint64_t)INT64_MAX || (int64_t)t > now_ms + SS_NONCE_SKEW_MS ||
	    now_ms - (int64_t)t > SS_NONCE_TTL_MS)
		return SPH_ERR_STATE;
	if (issued_ms)
		*issued_ms = (int64_t)t;
	return 0;
}
