/*
 * fuzz_eat: arbitrary bytes as an EAT claim set and as a signed token.
 *  - eat_decode_claims() must not crash, and whatever it accepts must
 *    re-encode to exactly the input: the decoder takes only the deterministic
 *    encoding, so the component bytes a verifier sees are the ones measured;
 *  - accepted claims, signed with the fuzzer's key, must verify against their
 *    own nonce exactly when their accumulator replays (else SPH_ERR_CLAIM),
 *    and must not verify against another nonce;
 *  - eat_verify() must not crash and must never accept the input itself: the
 *    key is generated at start-up, so no input can carry its signature.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "eat/eat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fuzz_key;
static uint8_t fuzz_pub[COSE_P256_PUB_LEN];
static uint8_t fuzz_kid[EAT_KID_LEN];
static const uint8_t fuzz_nonce[16] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
                                       0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff};

static void setup(void)
{
	if (fuzz_key)
		return;
	fuzz_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!fuzz_key || cose_p256_export(fuzz_key, fuzz_pub) != 0 ||
	    eat_kid_from_pub(fuzz_pub, fuzz_kid) != 0)
		abort();
}

/* Decoded claims re-encode to the input, and sign and verify as they should. */
static void check_claims(const uint8_t *data, size_t size, const struct eat_claims *c)
{
	static uint8_t buf[EAT_MAX_TOKEN], tok[EAT_MAX_TOKEN];
	struct eat_claims back;
	uint8_t acc[32];
	size_t len = 0, tok_len = 0;
	int want, rc;

	if (eat_encode_claims(c, buf, sizeof(buf), &len) != 0)
		abort();
	if (len != size || memcmp(buf, data, size) != 0)
		abort();

	if (eat_sign(c, cose_pkey_signer, fuzz_key, fuzz_kid, sizeof(fuzz_kid), tok, sizeof(tok),
	             &tok_len) != 0)
		abort();
	if (eat_accumulator_replay(c->components, c->n_components, acc) != 0)
		abort();
	want = CRYPTO_memcmp(acc, c->accumulator, sizeof(acc)) == 0 ? 0 : SPH_ERR_CLAIM;
	rc = eat_verify(tok, tok_len, c->nonce, c->nonce_len, fuzz_pub, NULL, &back);
	if (rc != want)
		abort();
	if (rc == 0 && (back.n_components != c->n_components ||
	                memcmp(back.accumulator, c->accumulator, sizeof(acc)) != 0))
		abort();
	if (c->nonce_len != sizeof(fuzz_nonce) ||
	    memcmp(c->nonce, fuzz_nonce, sizeof(fuzz_nonce)) != 0) {
		if (eat_verify(tok, tok_len, fuzz_nonce, sizeof(fuzz_nonce), fuzz_pub, NULL,
		               NULL) != SPH_ERR_NONCE_MISMATCH)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct eat_claims claims;

	setup();
	if (eat_decode_claims(data, size, &claims) == 0)
		check_claims(data, size, &claims);
	if (eat_verify(data, size, fuzz_nonce, sizeof(fuzz_nonce), fuzz_pub, NULL, &claims) == 0)
		abort();
	return 0;
}
