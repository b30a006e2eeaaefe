/*
 * Check-in nonces (src/service/ss_nonce.h): issued by one instance, checked
 * by another with the same key; bound to one device; expiring; every altered
 * byte refused; the issue time returned for the replay check.
 */
#include <string.h>

#include "service/ss_nonce.h"
#include "testutil.h"

static char dev_a[129], dev_b[129];
static uint8_t kek[SS_KEK_LEN];

static void test_round_trip_across_instances(void **state)
{
	struct ss_nonce_key k1, k2;
	uint8_t n[SS_NONCE_LEN];
	int64_t now = 1795600000000, at = 0;

	(void)state;
	/* Two instances derive the same key from the shared KEK. */
	assert_int_equal(ss_nonce_key_derive(kek, &k1), 0);
	assert_int_equal(ss_nonce_key_derive(kek, &k2), 0);
	assert_memory_equal(k1.k, k2.k, sizeof(k1.k));
	assert_memory_not_equal(k1.k, kek, sizeof(k1.k));
	assert_int_equal(ss_nonce_issue(&k1, dev_a, now, n), 0);
	assert_int_equal(ss_nonce_check(&k2, dev_a, now + 1000, n, sizeof(n), &at), 0);
	assert_true(at == now);
	/* Two nonces differ even in the same millisecond. */
	{
		uint8_t m[SS_NONCE_LEN];
		assert_int_equal(ss_nonce_issue(&k1, dev_a, now, m), 0);
		assert_memory_not_equal(m, n, sizeof(n));
	}
}

static void test_refusals(void **state)
{
	struct ss_nonce_key k, other;
	uint8_t n[SS_NONCE_LEN], kek2[SS_KEK_LEN];
	int64_t now = 1795600000000;

	(void)state;
	assert_int_equal(ss_nonce_key_derive(kek, &k), 0);
	memcpy(kek2, kek, sizeof(kek2));
	kek2[5] ^= 1;
	assert_int_equal(ss_nonce_key_derive(kek2, &other), 0);
	assert_int_equal(ss_nonce_issue(&k, dev_a, now, n), 0);
	/* Another device, another service, a wrong length. */
	assert_int_equal(ss_nonce_check(&k, dev_b, now, n, sizeof(n), NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	assert_int_equal(ss_nonce_check(&other, dev_a, now, n, sizeof(n), NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	assert_int_equal(ss_nonce_check(&k, dev_a, now, n, sizeof(n) - 1, NULL), SPH_ERR_MALFORMED);
	assert_int_equal(ss_nonce_check(&k, dev_a, now, n, 0, NULL), SPH_ERR_MALFORMED);
	/* Every flipped bit. */
	for (size_t i = 0; i < sizeof(n) * 8; i++) {
		n[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(ss_nonce_check(&k, dev_a, now, n, sizeof(n), NULL), 0);
		n[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* Expired after 60 s; from the future beyond 5 s of skew. */
	assert_int_equal(ss_nonce_check(&k, dev_a, now + SS_NONCE_TTL_MS, n, sizeof(n), NULL), 0);
	assert_int_equal(ss_nonce_check(&k, dev_a, now + SS_NONCE_TTL_MS + 1, n, sizeof(n), NULL),
	                 SPH_ERR_STATE);
	assert_int_equal(ss_nonce_check(&k, dev_a, now - 5000, n, sizeof(n), NULL), 0);
	assert_int_equal(ss_nonce_check(&k, dev_a, now - 5001, n, sizeof(n), NULL), SPH_ERR_STATE);
	/* Bad arguments. */
	assert_int_equal(ss_nonce_issue(&k, "abc", now, n), SPH_ERR_INVALID_ARG);
	{
		char keep = dev_b[7];
		dev_b[7] = 'G';
		assert_int_equal(ss_nonce_issue(&k, dev_b, now, n), SPH_ERR_INVALID_ARG);
		dev_b[7] = keep;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip_across_instances),
	        cmocka_unit_test(test_refusals),
	};
	for (int i = 0; i < 128; i++) {
		dev_a[i] = "0123456789abcdef"[i % 16];
		dev_b[i] = "0123456789abcdef"[(i * 3) % 16];
	}
	for (size_t i = 0; i < sizeof(kek); i++)
		kek[i] = (uint8_t)(i + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
