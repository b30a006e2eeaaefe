/* libFuzzer target: the COSE_Sign1 decoder and verifier on arbitrary bytes.
 * Invariants: no crash, no hang, and every pointer a successful decode returns
 * lies inside the input. */
#include <stdlib.h>

#include <openssl/evp.h>

#include "cose/cose.h"

static EVP_PKEY *key;

static void check_within(const uint8_t *base, size_t len, const uint8_t *p, size_t plen)
{
	if (!p) {
		if (plen)
			abort();
		return;
	}
	if (p < base || plen > len || (size_t)(p - base) > len - plen)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cose_sign1 s;

	if (!key)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (cose_sign1_decode(data, size, &s) == 0) {
		check_within(data, size, s.protected_hdr, s.protected_len);
		check_within(data, size, s.payload, s.payload_len);
		check_within(data, size, s.signature, s.signature_len);
		check_within(data, size, s.kid, s.kid_len);
		check_within(data, size, s.x5chain, s.x5chain_len);
		if (s.x5_count > COSE_MAX_X5CHAIN)
			abort();
		for (size_t i = 0; i < s.x5_count; i++)
			check_within(data, size, s.x5[i].der, s.x5[i].len);
		if (s.signature_len != COSE_ES256_SIG_LEN)
			abort();
		/* A random key never verifies fuzzer-made bytes: success would mean forgery. */
		if (cose_sign1_verify(data, size, NULL, 0, key, NULL) == 0)
			abort();
	}
	return 0;
}
