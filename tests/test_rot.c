/*
 * rot: the root of trust. Every behavioural test runs twice, once per
 * transport (in-process and mailbox), through the same public API; then the
 * mailbox process itself, raw frame attacks on the core and on a spawned
 * server, the client's response checks (crafted frames and a misbehaving fake
 * RoT), the internal test seams (scalar rejection, a failing random source),
 * bad OTP files and the sphere-rot command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "common/common.h"
#include "cose/cose.h"
#include "eat/eat.h"
#include "rot/rot.h"
#include "rot/rot_internal.h"
#include "testutil.h"

/* ---- fixtures ----------------------------------------------------------------- */

struct transport {
	const char *name;
	int (*open)(const char *otp_path, struct rot **out);
	bool mailbox;
};

static const struct transport t_inproc = {"inproc", rot_open_inproc, false};
static const struct transport t_mailbox = {"mailbox", rot_open_mailbox, true};

struct fx {
	const struct transport *t;
	char *dir;
	char *otp;
	struct rot *r;
};

static const uint8_t secret_a[ROT_SECRET_LEN] = {0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                                 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                                 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                                 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t secret_b[ROT_SECRET_LEN] = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                                 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
                                                 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
                                                 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf};

static int fx_setup(void **state)
{
	const struct transport *t = *state;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->t = t;
	f->dir = tu_mkdtemp();
	f->otp = tu_path(f->dir, "otp");
	assert_int_equal(rot_otp_fuse(f->otp, secret_a, ROT_LC_DEVELOPMENT), 0);
	assert_int_equal(t->open(f->otp, &f->r), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	rot_close(f->r);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->otp);
	free(f);
	return 0;
}

/* Fuses another OTP file in the fixture's directory and opens it with the same transport. */
static struct rot *fx_open_other(struct fx *f, const char *name, const uint8_t *secret,
                                 enum rot_lifecycle lc)
{
	char *path = tu_path(f->dir, name);
	struct rot *r = NULL;

	assert_int_equal(rot_otp_fuse(path, secret, lc), 0);
	assert_int_equal(f->t->open(path, &r), 0);
	free(path);
	return r;
}

static void sha256(const void *data, size_t len, uint8_t out[32])
{
	assert_int_equal(EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL), 1);
}

static EVP_PKEY *import_pub(const uint8_t pub[ROT_PUB_LEN])
{
	EVP_PKEY *k = NULL;
	assert_int_equal(cose_p256_import(pub, &k), 0);
	return k;
}

static void make_component(struct eat_component *c, const char *type, const char *version,
                           uint32_t svn, uint8_t seed)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->type, sizeof(c->type), "%s", type);
	snprintf(c->version, sizeof(c->version), "%s", version);
	c->security_version = svn;
	for (size_t i = 0; i < 16; i++)
		c->component_id[i] = (uint8_t)(seed + i);
	sha256(&seed, 1, c->digest);
	sha256(c->digest, sizeof(c->digest), c->signer_id);
}

/* ---- identity and signatures -------------------------------------------------- */

static void test_device_id_deterministic(void **state)
{
	struct fx *f = *state;
	char id1[ROT_DEVICE_ID_LEN + 1], id2[ROT_DEVICE_ID_LEN + 1], id3[ROT_DEVICE_ID_LEN + 1];
	char hex[ROT_DEVICE_ID_LEN + 1];
	uint8_t pub[ROT_PUB_LEN];
	struct rot *r2;

	assert_int_equal(rot_device_id(f->r, id1), 0);
	assert_int_equal(strlen(id1), ROT_DEVICE_ID_LEN);
	for (size_t i = 0; i < ROT_DEVICE_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", id1[i]));
	/* id = lowercase hex of the identity key's X||Y */
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, pub), 0);
	assert_int_equal(pub[0], 0x04);
	assert_int_equal(sph_hex_encode(pub + 1, 64, hex, sizeof(hex)), 0);
	assert_string_equal(id1, hex);

	/* Same OTP, reopened: same id. */
	rot_close(f->r);
	f->r = NULL;
	assert_int_equal(f->t->open(f->otp, &f->r), 0);
	assert_int_equal(rot_device_id(f->r, id2), 0);
	assert_string_equal(id1, id2);

	/* Same secret in another file: same id. Another secret: another id. */
	r2 = fx_open_other(f, "otp-same", secret_a, ROT_LC_PRODUCTION);
	assert_int_equal(rot_device_id(r2, id3), 0);
	assert_string_equal(id1, id3);
	rot_close(r2);
	r2 = fx_open_other(f, "otp-b", secret_b, ROT_LC_DEVELOPMENT);
	assert_int_equal(rot_device_id(r2, id3), 0);
	assert_string_not_equal(id1, id3);
	rot_close(r2);

	/* The attestation key is a different key. */
	uint8_t apub[ROT_PUB_LEN];
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_ATTEST, apub), 0);
	assert_memory_not_equal(apub, pub, ROT_PUB_LEN);
	assert_int_equal(rot_pubkey(f->r, 7, apub), SPH_ERR_NOT_FOUND);
}

/*
 * Known answers for the device secret 00 01 .. 1f, computed independently (Python
 * `cryptography`) from docs/formats.md: HKDF-SHA256, salt "sphere-rot-v1", info
 * "identity" / "attestation" / "sealing"; and a blob sealed with IV = 0, AAD "aad".
 */
static void test_known_answers(void **state)
{
	struct fx *f = *state;
	static const char ident_hex[] =
	        "0437a3fcbc456af1dfd6c210366e40462f6461aa406e3e4d1566a8decb3ac924ff3f01b7b3ead820"
	        "0838024d5dace7591f50a49fbe9b2972f02a961de107e8f334";
	static const char attest_hex[] =
	        "047e3f8c5817165a44df68d17ebe21291345bc2c8a8eccffa0fad14429571aa5ed93b6cfb6a7020e"
	        "6bf53f8dc0e6e211d1ce52b6d128d1ed0cff05a9470ec0322f";
	static const char sealed_hex[] =
	        "01000000000000000000000000a062eb3cba1ea47a1fe3a69175017e881928a04cdb";
	uint8_t secret[ROT_SECRET_LEN], want[ROT_PUB_LEN], pub[ROT_PUB_LEN], sealed[34], out[8];
	size_t n;
	struct rot *r;

	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)i;
	r = fx_open_other(f, "otp-kat", secret, ROT_LC_DEVELOPMENT);
	assert_int_equal(sph_hex_decode(ident_hex, want, sizeof(want)), 0);
	assert_int_equal(rot_pubkey(r, ROT_KEY_IDENTITY, pub), 0);
	assert_memory_equal(pub, want, ROT_PUB_LEN);
	assert_int_equal(sph_hex_decode(attest_hex, want, sizeof(want)), 0);
	assert_int_equal(rot_pubkey(r, ROT_KEY_ATTEST, pub), 0);
	assert_memory_equal(pub, want, ROT_PUB_LEN);
	assert_int_equal(sph_hex_decode(sealed_hex, sealed, sizeof(sealed)), 0);
	assert_int_equal(rot_unseal(r, (const uint8_t *)"aad", 3, sealed, sizeof(sealed), out,
	                            sizeof(out), &n),
	                 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "hello", 5);
	rot_close(r);
}

/* Verifies with plain EVP calls (DER signature), independent of the COSE helper. */
static int evp_verify_raw(EVP_PKEY *k, const uint8_t digest[32], const uint8_t sig[64])
{
	uint8_t der[80];
	size_t der_len = 0;
	EVP_PKEY_CTX *ctx;
	int ok;

	assert_int_equal(cose_sig_raw_to_der(sig, der, sizeof(der), &der_len), 0);
	ctx = EVP_PKEY_CTX_new(k, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
	ok = EVP_PKEY_verify(ctx, der, der_len, digest, 32);
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	uint8_t pub[ROT_PUB_LEN], pub2[ROT_PUB_LEN], digest[32], other[32];
	uint8_t sig[ROT_SIG_LEN], sig2[ROT_SIG_LEN], sig3[ROT_SIG_LEN];
	uint32_t h;
	EVP_PKEY *k;

	sha256("hello", 5, digest);
	sha256("hellp", 5, other);
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, pub), 0);
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig), 0);
	k = import_pub(pub);
	assert_int_equal(cose_es256_verify_digest(k, digest, sig), 0);
	assert_int_equal(evp_verify_raw(k, digest, sig), 1);
	assert_int_equal(cose_es256_verify_digest(k, other, sig), SPH_ERR_BAD_SIGNATURE);
	assert_int_not_equal(evp_verify_raw(k, other, sig), 1);
	EVP_PKEY_free(k);
	/* ECDSA is randomised: a second signature differs and verifies too. */
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig2), 0);
	assert_memory_not_equal(sig, sig2, ROT_SIG_LEN);

	/* rot_verify, switching keys so the one-key cache is exercised. */
	assert_int_equal(rot_keygen(f->r, &h, pub2), 0);
	assert_int_equal(rot_sign(f->r, h, digest, sig3), 0);
	k = import_pub(pub2);
	assert_int_equal(cose_es256_verify_digest(k, digest, sig3), 0);
	EVP_PKEY_free(k);
	assert_int_equal(rot_verify(f->r, pub, digest, sig), 0);
	assert_int_equal(rot_verify(f->r, pub2, digest, sig3), 0);
	assert_int_equal(rot_verify(f->r, pub2, digest, sig), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(rot_verify(f->r, pub, digest, sig3), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(rot_verify(f->r, pub, other, sig), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(rot_verify(f->r, pub, digest, sig), 0);
	sig2[10] ^= 0x01;
	assert_int_equal(rot_verify(f->r, pub, digest, sig2), SPH_ERR_BAD_SIGNATURE);
	/* s = 0 and r = n are out of range. */
	memset(sig2, 0, sizeof(sig2));
	assert_int_equal(rot_verify(f->r, pub, digest, sig2), SPH_ERR_BAD_SIGNATURE);
	/* Not a point on the curve. */
	pub2[64] ^= 0x01;
	assert_int_equal(rot_verify(f->r, pub2, digest, sig3), SPH_ERR_MALFORMED);
	pub2[64] ^= 0x01;
	pub2[0] = 0x02;
	assert_int_equal(rot_verify(f->r, pub2, digest, sig3), SPH_ERR_MALFORMED);
	assert_int_equal(rot_sign(f->r, 0x555, digest, sig), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, NULL, sig), SPH_ERR_INVALID_ARG);
}

static void test_attest_key_refused(void **state)
{
	struct fx *f = *state;
	uint8_t digest[32] = {1}, sig[ROT_SIG_LEN], peer[ROT_PUB_LEN], secret[ROT_ECDH_LEN];
	uint8_t zero[ROT_SIG_LEN] = {0};

	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, peer), 0);
	memset(sig, 0xaa, sizeof(sig));
	assert_int_equal(rot_sign(f->r, ROT_KEY_ATTEST, digest, sig), SPH_ERR_PERMISSION);
	assert_memory_equal(sig, zero, ROT_SIG_LEN);
	memset(secret, 0xaa, sizeof(secret));
	assert_int_equal(rot_ecdh(f->r, ROT_KEY_ATTEST, peer, secret), SPH_ERR_PERMISSION);
	assert_memory_equal(secret, zero, ROT_ECDH_LEN);
	/* No raw static DH with the identity key either: only generated keys do ECDH. */
	memset(secret, 0xaa, sizeof(secret));
	assert_int_equal(rot_ecdh(f->r, ROT_KEY_IDENTITY, peer, secret), SPH_ERR_PERMISSION);
	assert_memory_equal(secret, zero, ROT_ECDH_LEN);
	assert_int_equal(rot_key_destroy(f->r, ROT_KEY_ATTEST), SPH_ERR_PERMISSION);
	assert_int_equal(rot_key_destroy(f->r, ROT_KEY_IDENTITY), SPH_ERR_PERMISSION);
	/* Still there and still the same. */
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig), 0);
}

static void test_ecdh_agrees(void **state)
{
	struct fx *f = *state;
	uint8_t rot_pub[ROT_PUB_LEN], ossl_pub[ROT_PUB_LEN], p1[ROT_PUB_LEN], p2[ROT_PUB_LEN];
	uint8_t s1[ROT_ECDH_LEN], s2[ROT_ECDH_LEN], s3[ROT_ECDH_LEN];
	size_t n = sizeof(s2);
	uint32_t h0, h1, h2;
	EVP_PKEY *mine, *theirs;
	EVP_PKEY_CTX *ctx;

	/* A generated RoT key with an OpenSSL key. */
	mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(mine);
	assert_int_equal(cose_p256_export(mine, ossl_pub), 0);
	assert_int_equal(rot_keygen(f->r, &h0, rot_pub), 0);
	assert_int_equal(rot_ecdh(f->r, h0, ossl_pub, s1), 0);
	theirs = import_pub(rot_pub);
	ctx = EVP_PKEY_CTX_new(mine, NULL);
	assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(ctx, theirs), 1);
	assert_int_equal(EVP_PKEY_derive(ctx, s2, &n), 1);
	assert_int_equal(n, ROT_ECDH_LEN);
	assert_memory_equal(s1, s2, ROT_ECDH_LEN);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(theirs);
	EVP_PKEY_free(mine);

	/* Two generated RoT keys, both directions. */
	assert_int_equal(rot_keygen(f->r, &h1, p1), 0);
	assert_int_equal(rot_keygen(f->r, &h2, p2), 0);
	assert_int_not_equal(h1, h2);
	assert_int_equal(rot_ecdh(f->r, h1, p2, s1), 0);
	assert_int_equal(rot_ecdh(f->r, h2, p1, s3), 0);
	assert_memory_equal(s1, s3, ROT_ECDH_LEN);
	assert_memory_not_equal(s1, s2, ROT_ECDH_LEN);

	/* A peer off the curve is refused. */
	p2[40] ^= 0x80;
	assert_int_equal(rot_ecdh(f->r, h1, p2, s1), SPH_ERR_MALFORMED);
	assert_int_equal(rot_ecdh(f->r, 0x9999, p1, s1), SPH_ERR_NOT_FOUND);
}

/* ---- sealing and randomness ------------------------------------------------------- */

static void test_seal_roundtrip(void **state)
{
	struct fx *f = *state;
	static uint8_t pt[ROT_SEAL_MAX + 1], sealed[ROT_SEAL_MAX + ROT_SEAL_OVERHEAD + 1],
	        sealed2[ROT_SEAL_MAX + ROT_SEAL_OVERHEAD], back[ROT_SEAL_MAX + 1];
	uint8_t aad[ROT_SEAL_AAD_MAX + 1];
	const size_t sizes[] = {0, 1, 100, ROT_SEAL_MAX};
	size_t n, n2, m;

	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	memset(aad, 0x42, sizeof(aad));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t a = 0; a <= ROT_SEAL_AAD_MAX; a += ROT_SEAL_AAD_MAX) {
			const uint8_t *ap = a ? aad : NULL;
			assert_int_equal(
			        rot_seal(f->r, ap, a, pt, sizes[i], sealed, sizeof(sealed), &n), 0);
			assert_int_equal(n, sizes[i] + ROT_SEAL_OVERHEAD);
			assert_int_equal(sealed[0], 0x01);
			assert_int_equal(rot_unseal(f->r, ap, a, sealed, n, back, sizeof(back), &m),
			                 0);
			assert_int_equal(m, sizes[i]);
			if (m)
				assert_memory_equal(back, pt, m);
			/* A fresh IV each time. */
			assert_int_equal(
			        rot_seal(f->r, ap, a, pt, sizes[i], sealed2, sizeof(sealed2), &n2),
			        0);
			assert_int_equal(n2, n);
			assert_memory_not_equal(sealed + 1, sealed2 + 1, 12);
		}
	}
	/* Limits. */
	assert_int_equal(rot_seal(f->r, NULL, 0, pt, ROT_SEAL_MAX + 1, sealed, sizeof(sealed), &n),
	                 SPH_ERR_TOO_LARGE);
	assert_int_equal(
	        rot_seal(f->r, aad, ROT_SEAL_AAD_MAX + 1, pt, 1, sealed, sizeof(sealed), &n),
	        SPH_ERR_TOO_LARGE);
	assert_int_equal(rot_seal(f->r, NULL, 0, pt, 10, sealed, 10 + ROT_SEAL_OVERHEAD - 1, &n),
	                 SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(rot_seal(f->r, NULL, 0, pt, 10, sealed, sizeof(sealed), &n), 0);
	assert_int_equal(rot_unseal(f->r, NULL, 0, sealed, n, back, 9, &m),
	                 SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(m, 0);
}

static void test_unseal_refuses_tampering(void **state)
{
	struct fx *f = *state;
	const uint8_t pt[] = "meter calibration", aad[] = "app:42";
	uint8_t sealed[sizeof(pt) + ROT_SEAL_OVERHEAD + 1], back[sizeof(pt) + 8];
	size_t n, m;
	struct rot *other;

	assert_int_equal(
	        rot_seal(f->r, aad, sizeof(aad), pt, sizeof(pt), sealed, sizeof(sealed), &n), 0);
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, n, back, sizeof(back), &m), 0);
	assert_memory_equal(back, pt, sizeof(pt));
	/* Another AAD, no AAD. */
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad) - 1, sealed, n, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	assert_int_equal(rot_unseal(f->r, NULL, 0, sealed, n, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	/* Every single bit flipped, version byte, IV, ciphertext and tag alike. */
	for (size_t bit = 0; bit < 8 * n; bit++) {
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(back, 0x55, sizeof(back));
		assert_int_equal(
		        rot_unseal(f->r, aad, sizeof(aad), sealed, n, back, sizeof(back), &m),
		        SPH_ERR_AUTH);
		assert_int_equal(m, 0);
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Truncated, extended, shorter than the overhead. */
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, n - 1, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	sealed[n] = 0;
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, n + 1, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, ROT_SEAL_OVERHEAD - 1, back,
	                            sizeof(back), &m),
	                 SPH_ERR_AUTH);
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, 0, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	/* Another device cannot open it; the same secret in another OTP file can. */
	other = fx_open_other(f, "otp-b", secret_b, ROT_LC_DEVELOPMENT);
	assert_int_equal(rot_unseal(other, aad, sizeof(aad), sealed, n, back, sizeof(back), &m),
	                 SPH_ERR_AUTH);
	rot_close(other);
	other = fx_open_other(f, "otp-a2", secret_a, ROT_LC_DEVELOPMENT);
	assert_int_equal(rot_unseal(other, aad, sizeof(aad), sealed, n, back, sizeof(back), &m), 0);
	assert_memory_equal(back, pt, sizeof(pt));
	rot_close(other);
	/* Still fine on the original after all that. */
	assert_int_equal(rot_unseal(f->r, aad, sizeof(aad), sealed, n, back, sizeof(back), &m), 0);
}

static void test_random(void **state)
{
	struct fx *f = *state;
	uint8_t a[32], b[32], zero[32] = {0}, big[ROT_RANDOM_MAX + 1];

	assert_int_equal(rot_random(f->r, a, sizeof(a)), 0);
	assert_int_equal(rot_random(f->r, b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_int_equal(rot_random(f->r, big, ROT_RANDOM_MAX), 0);
	assert_memory_not_equal(big, big + 512, 32);
	assert_int_equal(rot_random(f->r, a, 0), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_random(f->r, big, ROT_RANDOM_MAX + 1), SPH_ERR_TOO_LARGE);
	assert_int_equal(rot_random(f->r, NULL, 4), SPH_ERR_INVALID_ARG);
}

/* ---- generated keys ---------------------------------------------------------------- */

static void test_keygen_exhaust_destroy_stale(void **state)
{
	struct fx *f = *state;
	uint32_t h[ROT_MAX_GENERATED_KEYS], extra, again;
	uint8_t pub[ROT_MAX_GENERATED_KEYS][ROT_PUB_LEN], p[ROT_PUB_LEN], digest[32] = {9};
	uint8_t sig[ROT_SIG_LEN];

	for (size_t i = 0; i < ROT_MAX_GENERATED_KEYS; i++) {
		assert_int_equal(rot_keygen(f->r, &h[i], pub[i]), 0);
		assert_true(h[i] >= ROT_KEY_GENERATED_BASE);
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(h[i], h[j]);
			assert_memory_not_equal(pub[i], pub[j], ROT_PUB_LEN);
		}
		assert_int_equal(rot_pubkey(f->r, h[i], p), 0);
		assert_memory_equal(p, pub[i], ROT_PUB_LEN);
	}
	assert_int_equal(rot_keygen(f->r, &extra, p), SPH_ERR_EXHAUSTED);
	assert_int_equal(extra, 0);

	/* A generated key signs. */
	assert_int_equal(rot_sign(f->r, h[3], digest, sig), 0);
	assert_int_equal(rot_verify(f->r, pub[3], digest, sig), 0);

	/* Destroy, then the handle is dead for every op. */
	assert_int_equal(rot_key_destroy(f->r, h[5]), 0);
	assert_int_equal(rot_key_destroy(f->r, h[5]), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_sign(f->r, h[5], digest, sig), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_pubkey(f->r, h[5], p), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_ecdh(f->r, h[5], pub[0], sig), SPH_ERR_NOT_FOUND);

	/* The freed slot is reused under a new handle; the old one stays stale. */
	assert_int_equal(rot_keygen(f->r, &again, p), 0);
	assert_int_not_equal(again, h[5]);
	assert_int_equal(again & 0xffffu, h[5] & 0xffffu);
	assert_int_equal(rot_sign(f->r, h[5], digest, sig), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_key_destroy(f->r, h[5]), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_sign(f->r, again, digest, sig), 0);
	assert_int_equal(rot_verify(f->r, p, digest, sig), 0);
	assert_int_equal(rot_keygen(f->r, &extra, p), SPH_ERR_EXHAUSTED);

	/* Handles that were never issued. */
	const uint32_t bogus[] = {2,
	                          ROT_KEY_GENERATED_BASE - 1,
	                          ROT_KEY_GENERATED_BASE + ROT_MAX_GENERATED_KEYS,
	                          h[0] & 0xffffu, /* generation 0 */
	                          h[0] + 0x10000u,
	                          0x10000u,
	                          0xffffffffu};
	for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
		assert_int_equal(rot_sign(f->r, bogus[i], digest, sig), SPH_ERR_NOT_FOUND);
		assert_int_equal(rot_key_destroy(f->r, bogus[i]), SPH_ERR_NOT_FOUND);
	}
	/* A chip reset drops every generated key: every handle from before it is void.
	 * The RoT restarts from scratch, so a later key may be issued an old handle
	 * again (formats.md §4.6): callers drop their handles at a reset. */
	assert_int_equal(rot_reset(f->r), 0);
	for (size_t i = 0; i < ROT_MAX_GENERATED_KEYS; i++) {
		assert_int_equal(rot_sign(f->r, h[i], digest, sig), SPH_ERR_NOT_FOUND);
		assert_int_equal(rot_pubkey(f->r, h[i], p), SPH_ERR_NOT_FOUND);
	}
	assert_int_equal(rot_sign(f->r, again, digest, sig), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_key_destroy(f->r, again), SPH_ERR_NOT_FOUND);
	for (size_t i = 0; i < ROT_MAX_GENERATED_KEYS; i++)
		assert_int_equal(rot_keygen(f->r, &h[i], pub[i]), 0);
	assert_int_equal(rot_keygen(f->r, &extra, p), SPH_ERR_EXHAUSTED);
	assert_int_equal(rot_sign(f->r, h[7], digest, sig), 0);
	assert_int_equal(rot_verify(f->r, pub[7], digest, sig), 0);
}

/* ---- measured boot and the registers ---------------------------------------------- */

static void test_accumulator(void **state)
{
	struct fx *f = *state;
	struct eat_component c[EAT_MAX_COMPONENTS + 1], bad;
	uint8_t acc[32], acc2[32], want[32], zero[32] = {0};

	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(acc, zero, 32);
	for (size_t i = 0; i < EAT_MAX_COMPONENTS; i++) {
		char ver[16];
		snprintf(ver, sizeof(ver), "1.%zu.0", i);
		make_component(&c[i],
		               i == 0   ? "BL"
		               : i == 1 ? "OS"
		                        : "APP",
		               ver, (uint32_t)i, (uint8_t)(i + 1));
	}
	/* The same component twice extends twice: the register only moves forward. */
	c[3] = c[2];
	for (size_t i = 0; i < EAT_MAX_COMPONENTS; i++) {
		memcpy(acc2, acc, 32);
		assert_int_equal(rot_measure(f->r, &c[i], acc), 0);
		assert_memory_not_equal(acc, acc2, 32);
		assert_int_equal(eat_accumulator_replay(c, i + 1, want), 0);
		assert_memory_equal(acc, want, 32);
		assert_int_equal(rot_accumulator(f->r, acc2), 0);
		assert_memory_equal(acc2, want, 32);
	}
	/* Full log. */
	make_component(&c[EAT_MAX_COMPONENTS], "APP", "9", 9, 99);
	assert_int_equal(rot_measure(f->r, &c[EAT_MAX_COMPONENTS], acc), SPH_ERR_EXHAUSTED);
	assert_int_equal(rot_accumulator(f->r, acc2), 0);
	assert_memory_equal(acc2, want, 32);
	/* Chip reset clears it. */
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(acc, zero, 32);

	/* Bad components change nothing. */
	make_component(&bad, "", "1", 1, 1);
	assert_int_equal(rot_measure(f->r, &bad, acc), SPH_ERR_INVALID_ARG);
	make_component(&bad, "BL", "", 1, 1);
	assert_int_equal(rot_measure(f->r, &bad, acc), SPH_ERR_INVALID_ARG);
	make_component(&bad, "BL", "1", 1, 1);
	memset(bad.type, 'A', sizeof(bad.type)); /* no NUL within EAT_TYPE_MAX + 1 */
	assert_int_equal(rot_measure(f->r, &bad, acc), SPH_ERR_INVALID_ARG);
	make_component(&bad, "B\nL", "1", 1, 1); /* the RoT takes printable ASCII only */
	assert_int_equal(rot_measure(f->r, &bad, acc), SPH_ERR_MALFORMED);
	assert_int_equal(rot_measure(f->r, NULL, acc), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(acc, zero, 32);
	/* Longest legal strings are accepted; acc may be NULL. */
	make_component(&bad, "ABCDEFGHIJKLMNOP", "0123456789abcdef0123456789abcdef", 1, 1);
	assert_int_equal(rot_measure(f->r, &bad, NULL), 0);
	assert_int_equal(eat_accumulator_replay(&bad, 1, want), 0);
	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(acc, want, 32);
}

static void test_nonce_register(void **state)
{
	struct fx *f = *state;
	uint8_t nonce[EAT_NONCE_MAX + 1], buf[EAT_NONCE_MAX];
	size_t len = 99;

	for (size_t i = 0; i < sizeof(nonce); i++)
		nonce[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(rot_nonce_read(f->r, buf, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(rot_nonce_load(f->r, nonce, EAT_NONCE_MIN - 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_nonce_load(f->r, nonce, EAT_NONCE_MAX + 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_nonce_load(f->r, NULL, 8), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_nonce_load(f->r, nonce, EAT_NONCE_MIN), 0);
	assert_int_equal(rot_nonce_read(f->r, buf, &len), 0);
	assert_int_equal(len, EAT_NONCE_MIN);
	assert_memory_equal(buf, nonce, len);
	assert_int_equal(rot_nonce_load(f->r, nonce + 1, EAT_NONCE_MAX), 0);
	assert_int_equal(rot_nonce_read(f->r, buf, &len), 0);
	assert_int_equal(len, EAT_NONCE_MAX);
	assert_memory_equal(buf, nonce + 1, len);
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_nonce_read(f->r, buf, &len), 0);
	assert_int_equal(len, 0);
}

/* ---- one-way state ------------------------------------------------------------------ */

static void read_otp(const char *path, uint8_t img[ROT_OTP_SIZE])
{
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(tu_read_file(path, &buf, &len), 0);
	assert_int_equal(len, ROT_OTP_SIZE);
	memcpy(img, buf, ROT_OTP_SIZE);
	free(buf);
}

/* Every fuse byte (all but the boot register) only gained bits. */
static void assert_only_burned(const uint8_t *old, const uint8_t *new_img)
{
	for (size_t i = 0; i < ROT_OTP_OFF_BOOT_COUNT; i++) {
		if ((new_img[i] & old[i]) != old[i])
			fail_msg("OTP byte %zu lost bits: %02x -> %02x", i, old[i], new_img[i]);
	}
}

static void test_counters(void **state)
{
	struct fx *f = *state;
	uint8_t before[ROT_OTP_SIZE], after[ROT_OTP_SIZE];
	uint32_t v = 99;

	read_otp(f->otp, before);
	for (unsigned i = 0; i < ROT_COUNTERS; i++) {
		assert_int_equal(rot_counter_read(f->r, i, &v), 0);
		assert_int_equal(v, 0);
	}
	assert_int_equal(rot_counter_advance(f->r, 2, 5), 0);
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 5);
	read_otp(f->otp, after);
	assert_only_burned(before, after);
	assert_memory_not_equal(before, after, ROT_OTP_OFF_BOOT_COUNT);
	memcpy(before, after, sizeof(before));

	/* Rollback refused and nothing changes, in the RoT or in the file. */
	assert_int_equal(rot_counter_advance(f->r, 2, 4), SPH_ERR_ROLLBACK);
	assert_int_equal(rot_counter_advance(f->r, 2, 0), SPH_ERR_ROLLBACK);
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 5);
	read_otp(f->otp, after);
	assert_memory_equal(before, after, ROT_OTP_SIZE);
	/* Equal is a no-op success. */
	assert_int_equal(rot_counter_advance(f->r, 2, 5), 0);
	read_otp(f->otp, after);
	assert_memory_equal(before, after, ROT_OTP_SIZE);
	/* Other counters are independent. */
	assert_int_equal(rot_counter_read(f->r, 3, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(rot_counter_advance(f->r, 3, 1), 0);

	/* Exhaustion at ROT_COUNTER_MAX. */
	assert_int_equal(rot_counter_advance(f->r, ROT_COUNTERS - 1, ROT_COUNTER_MAX + 1),
	                 SPH_ERR_EXHAUSTED);
	assert_int_equal(rot_counter_advance(f->r, ROT_COUNTERS - 1, 0xffffffffu),
	                 SPH_ERR_EXHAUSTED);
	assert_int_equal(rot_counter_advance(f->r, ROT_COUNTERS - 1, ROT_COUNTER_MAX), 0);
	assert_int_equal(rot_counter_read(f->r, ROT_COUNTERS - 1, &v), 0);
	assert_int_equal(v, ROT_COUNTER_MAX);
	assert_int_equal(rot_counter_advance(f->r, ROT_COUNTERS - 1, ROT_COUNTER_MAX + 1),
	                 SPH_ERR_EXHAUSTED);
	assert_int_equal(rot_counter_read(f->r, ROT_COUNTERS - 1, &v), 0);
	assert_int_equal(v, ROT_COUNTER_MAX);
	read_otp(f->otp, after);
	assert_only_burned(before, after);
	memcpy(before, after, sizeof(before));

	/* Bad index. */
	assert_int_equal(rot_counter_read(f->r, ROT_COUNTERS, &v), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_counter_advance(f->r, ROT_COUNTERS, 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_counter_advance(f->r, 0xffffffffu, 1), SPH_ERR_INVALID_ARG);

	/* Persistence across close/reopen (and a reset in between burns nothing). */
	assert_int_equal(rot_reset(f->r), 0);
	rot_close(f->r);
	f->r = NULL;
	read_otp(f->otp, after);
	assert_only_burned(before, after);
	assert_int_equal(f->t->open(f->otp, &f->r), 0);
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(rot_counter_read(f->r, 3, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(rot_counter_advance(f->r, 2, 4), SPH_ERR_ROLLBACK);
	assert_int_equal(rot_counter_advance(f->r, 2, 200), 0);
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 200);
	read_otp(f->otp, after);
	assert_only_burned(before, after);
}

static void test_lifecycle(void **state)
{
	struct fx *f = *state;
	const struct {
		enum rot_lifecycle lc;
		uint32_t psa;
	} cases[] = {
	        {ROT_LC_BLANK, EAT_LC_ASSEMBLY_AND_TEST},
	        {ROT_LC_DEVELOPMENT, EAT_LC_NON_PSA_ROT_DEBUG},
	        {ROT_LC_PRODUCTION, EAT_LC_SECURED},
	        {ROT_LC_DECOMMISSIONED, EAT_LC_DECOMMISSIONED},
	};
	enum rot_lifecycle lc = ROT_LC_DECOMMISSIONED;

	assert_int_equal(rot_lifecycle(f->r, &lc), 0);
	assert_int_equal(lc, ROT_LC_DEVELOPMENT);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[16];
		uint8_t nonce[16] = {1, 2, 3, 4, 5, 6, 7, 8}, tok[EAT_MAX_TOKEN], apub[ROT_PUB_LEN];
		size_t n;
		struct eat_component c;
		struct eat_claims claims;
		struct rot *r;

		snprintf(name, sizeof(name), "otp-lc%zu", i);
		r = fx_open_other(f, name, secret_b, cases[i].lc);
		assert_int_equal(rot_lifecycle(r, &lc), 0);
		assert_int_equal(lc, cases[i].lc);
		/* And the token carries the PSA value. */
		make_component(&c, "BL", "1", 1, 1);
		assert_int_equal(rot_measure(r, &c, NULL), 0);
		assert_int_equal(rot_attest(r, nonce, sizeof(nonce), tok, sizeof(tok), &n), 0);
		assert_int_equal(rot_pubkey(r, ROT_KEY_ATTEST, apub), 0);
		assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, NULL, &claims), 0);
		assert_int_equal(claims.lifecycle, cases[i].psa);
		rot_close(r);
	}
	assert_int_equal(rot_otp_fuse("/nonexistent-dir/otp", secret_a, ROT_LC_DEVELOPMENT),
	                 SPH_ERR_NOT_FOUND);
	char *p = tu_path(f->dir, "otp-bad-lc");
	assert_int_equal(rot_otp_fuse(p, secret_a, (enum rot_lifecycle)4), SPH_ERR_INVALID_ARG);
	uint8_t zero[ROT_SECRET_LEN] = {0};
	assert_int_equal(rot_otp_fuse(p, zero, ROT_LC_DEVELOPMENT), SPH_ERR_INVALID_ARG);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
}

static void test_boot_count(void **state)
{
	struct fx *f = *state;
	uint64_t n = 0;

	assert_int_equal(rot_boot_count(f->r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_boot_count(f->r, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_boot_count(f->r, &n), 0);
	assert_int_equal(n, 3);
	rot_close(f->r);
	f->r = NULL;
	assert_int_equal(f->t->open(f->otp, &f->r), 0);
	assert_int_equal(rot_boot_count(f->r, &n), 0);
	assert_int_equal(n, 4);
	/* The boot count lives in the OTP file's boot register. */
	uint8_t img[ROT_OTP_SIZE];
	read_otp(f->otp, img);
	assert_int_equal(rot_get_le64(img + ROT_OTP_OFF_BOOT_COUNT), 4);
}

/* ---- attestation ------------------------------------------------------------------- */

static size_t measure_boot(struct rot *r, struct eat_component *c)
{
	make_component(&c[0], "BL", "1.0.0", 1, 10);
	make_component(&c[1], "OS", "24.10.1", 7, 11);
	make_component(&c[2], "APP", "0.3", 0, 12);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(rot_measure(r, &c[i], NULL), 0);
	return 3;
}

static void test_attest_verifies(void **state)
{
	struct fx *f = *state;
	struct eat_component c[3];
	struct eat_claims claims, claims2;
	uint8_t nonce[32], nonce2[32], tok[EAT_MAX_TOKEN], tok2[EAT_MAX_TOKEN];
	uint8_t apub[ROT_PUB_LEN], ipub[ROT_PUB_LEN], acc[32], reg[EAT_NONCE_MAX],
	        ueid[EAT_UEID_LEN];
	size_t n, n2, reg_len, nc;
	uint64_t boots;

	assert_int_equal(rot_random(f->r, nonce, sizeof(nonce)), 0);
	assert_int_equal(rot_random(f->r, nonce2, sizeof(nonce2)), 0);
	/* Nothing measured: nothing to attest. */
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, sizeof(tok), &n),
	                 SPH_ERR_STATE);
	assert_int_equal(n, 0);
	nc = measure_boot(f->r, c);
	assert_int_equal(rot_attest(f->r, nonce, 7, tok, sizeof(tok), &n), SPH_ERR_INVALID_ARG);
	/* Too small a buffer is refused before the request: the RoT loads no nonce
	 * and signs nothing. */
	assert_int_equal(rot_nonce_load(f->r, nonce2, sizeof(nonce2)), 0);
	n = 99;
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, 16, &n),
	                 SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 0);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, EAT_MAX_TOKEN - 1, &n),
	                 SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(rot_nonce_read(f->r, reg, &reg_len), 0);
	assert_int_equal(reg_len, sizeof(nonce2));
	assert_memory_equal(reg, nonce2, reg_len);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, sizeof(tok), &n), 0);
	assert_true(n > 0 && n <= EAT_MAX_TOKEN);

	assert_int_equal(rot_pubkey(f->r, ROT_KEY_ATTEST, apub), 0);
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, ipub), 0);
	assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, ipub, &claims), 0);
	/* The claims are the RoT's state. */
	assert_int_equal(claims.nonce_len, sizeof(nonce));
	assert_memory_equal(claims.nonce, nonce, sizeof(nonce));
	assert_int_equal(eat_ueid_from_pub(ipub, ueid), 0);
	assert_memory_equal(claims.ueid, ueid, EAT_UEID_LEN);
	assert_int_equal(claims.lifecycle, EAT_LC_NON_PSA_ROT_DEBUG);
	assert_memory_equal(claims.implementation_id, eat_implementation_id, 32);
	assert_int_equal(rot_boot_count(f->r, &boots), 0);
	assert_int_equal(claims.boot_count, boots);
	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(claims.accumulator, acc, 32);
	assert_int_equal(claims.n_components, nc);
	for (size_t i = 0; i < nc; i++) {
		assert_string_equal(claims.components[i].type, c[i].type);
		assert_string_equal(claims.components[i].version, c[i].version);
		assert_int_equal(claims.components[i].security_version, c[i].security_version);
		assert_memory_equal(claims.components[i].digest, c[i].digest, 32);
		assert_memory_equal(claims.components[i].signer_id, c[i].signer_id, 32);
		assert_memory_equal(claims.components[i].component_id, c[i].component_id, 16);
	}
	/* The nonce went through the nonce register. */
	assert_int_equal(rot_nonce_read(f->r, reg, &reg_len), 0);
	assert_int_equal(reg_len, sizeof(nonce));
	assert_memory_equal(reg, nonce, reg_len);

	/* Wrong nonce, replay of an old token to a new challenge, wrong key. */
	assert_int_equal(eat_verify(tok, n, nonce2, sizeof(nonce2), apub, ipub, NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	assert_int_equal(rot_attest(f->r, nonce2, sizeof(nonce2), tok2, sizeof(tok2), &n2), 0);
	assert_int_equal(eat_verify(tok2, n2, nonce2, sizeof(nonce2), apub, ipub, &claims2), 0);
	assert_int_equal(eat_verify(tok, n, nonce2, sizeof(nonce2), apub, ipub, NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	assert_int_not_equal(eat_verify(tok, n, nonce, sizeof(nonce), ipub, NULL, NULL), 0);
	/* Same boot: same seed. */
	assert_memory_equal(claims.boot_seed, claims2.boot_seed, 32);

	/* Every byte of the token matters. */
	for (size_t i = 0; i < n; i++) {
		tok[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, ipub, NULL), 0);
		tok[i] ^= (uint8_t)(1u << (i % 8));
	}
	for (size_t len = 0; len < n; len += 7)
		assert_int_not_equal(eat_verify(tok, len, nonce, sizeof(nonce), apub, ipub, NULL),
		                     0);
	assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, ipub, NULL), 0);

	/* After a chip reset: new seed, one more boot, and evidence needs a new measurement. */
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok2, sizeof(tok2), &n2),
	                 SPH_ERR_STATE);
	measure_boot(f->r, c);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok2, sizeof(tok2), &n2), 0);
	assert_int_equal(eat_verify(tok2, n2, nonce, sizeof(nonce), apub, ipub, &claims2), 0);
	assert_memory_not_equal(claims.boot_seed, claims2.boot_seed, 32);
	assert_int_equal(claims2.boot_count, claims.boot_count + 1);
	assert_memory_equal(claims2.accumulator, claims.accumulator, 32);
}

struct rot_signer {
	struct rot *r;
	uint32_t key;
};

static int rot_signer_cb(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                         uint8_t sig[COSE_ES256_SIG_LEN])
{
	struct rot_signer *s = ctx;
	return rot_sign(s->r, s->key, digest, sig);
}

/* An attacker with the sign API (identity key) forges evidence: it must not verify. */
static void test_attack_forged_token(void **state)
{
	struct fx *f = *state;
	struct eat_component c[3];
	struct eat_claims claims;
	struct rot_signer id_signer = {f->r, ROT_KEY_IDENTITY}, at_signer = {f->r, ROT_KEY_ATTEST};
	uint8_t nonce[16], tok[EAT_MAX_TOKEN], forged[EAT_MAX_TOKEN], apub[ROT_PUB_LEN],
	        ipub[ROT_PUB_LEN], kid[EAT_KID_LEN];
	size_t n, fn;
	EVP_PKEY *idk;

	memset(nonce, 0x3c, sizeof(nonce));
	measure_boot(f->r, c);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, sizeof(tok), &n), 0);
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_ATTEST, apub), 0);
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, ipub), 0);
	assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, ipub, &claims), 0);

	/* Claim a production device that booted a different OS, consistently. */
	claims.lifecycle = EAT_LC_SECURED;
	claims.components[1].digest[0] ^= 0xff;
	assert_int_equal(
	        eat_accumulator_replay(claims.components, claims.n_components, claims.accumulator),
	        0);
	assert_int_equal(eat_kid_from_pub(apub, kid), 0);
	/* Asking for the attestation key fails outright... */
	assert_int_not_equal(eat_sign(&claims, rot_signer_cb, &at_signer, kid, sizeof(kid), forged,
	                              sizeof(forged), &fn),
	                     0);
	/* ...so sign the Sig_structure digest with the identity key instead. */
	assert_int_equal(eat_sign(&claims, rot_signer_cb, &id_signer, kid, sizeof(kid), forged,
	                          sizeof(forged), &fn),
	                 0);
	/* The forgery is a well-formed COSE_Sign1 that the identity key did sign... */
	idk = import_pub(ipub);
	assert_int_equal(cose_sign1_verify(forged, fn, NULL, 0, idk, NULL), 0);
	EVP_PKEY_free(idk);
	/* ...and the verifier, holding the attestation key, refuses it. */
	assert_int_equal(eat_verify(forged, fn, nonce, sizeof(nonce), apub, ipub, NULL),
	                 SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(eat_verify(forged, fn, nonce, sizeof(nonce), apub, NULL, NULL),
	                 SPH_ERR_BAD_SIGNATURE);
}

/* ---- chip reset ------------------------------------------------------------------- */

/* Attests with a fresh nonce and returns the verified claims. */
static void attest_claims(struct rot *r, struct eat_claims *claims)
{
	uint8_t nonce[16], tok[EAT_MAX_TOKEN], apub[ROT_PUB_LEN];
	size_t n;

	assert_int_equal(rot_random(r, nonce, sizeof(nonce)), 0);
	assert_int_equal(rot_attest(r, nonce, sizeof(nonce), tok, sizeof(tok), &n), 0);
	assert_int_equal(rot_pubkey(r, ROT_KEY_ATTEST, apub), 0);
	assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, NULL, claims), 0);
}

/* rot_reset powers the RoT off and on behind the same handle: a new process (mailbox)
 * or a new core (in-process), fresh registers, a new boot seed, one more boot. */
static void test_reset_restarts(void **state)
{
	struct fx *f = *state;
	struct eat_component c[3];
	struct eat_claims before, after;
	uint8_t acc[32], zero[32] = {0}, pub[ROT_PUB_LEN], digest[32] = {5}, sig[ROT_SIG_LEN];
	uint8_t nonce[EAT_NONCE_MIN] = {1, 2, 3, 4, 5, 6, 7, 8}, reg[EAT_NONCE_MAX];
	uint8_t sealed[64], back[16];
	char id1[ROT_DEVICE_ID_LEN + 1], id2[ROT_DEVICE_ID_LEN + 1];
	size_t sealed_len, back_len, reg_len;
	uint64_t boots;
	uint32_t h, v;
	int pid0 = rot_pid(f->r);

	assert_int_equal(rot_device_id(f->r, id1), 0);
	assert_int_equal(rot_counter_advance(f->r, 4, 3), 0);
	assert_int_equal(rot_seal(f->r, NULL, 0, (const uint8_t *)"persist", 7, sealed,
	                          sizeof(sealed), &sealed_len),
	                 0);
	measure_boot(f->r, c);
	attest_claims(f->r, &before);
	assert_int_equal(before.boot_count, 1);
	assert_int_equal(rot_keygen(f->r, &h, pub), 0);
	assert_int_equal(rot_nonce_load(f->r, nonce, sizeof(nonce)), 0);

	assert_int_equal(rot_reset(f->r), 0);

	if (f->t->mailbox) {
		/* A new RoT process; the old one is gone (reaped). */
		assert_true(rot_pid(f->r) > 0);
		assert_int_not_equal(rot_pid(f->r), pid0);
		assert_int_equal(kill(pid0, 0), -1);
		assert_int_equal(kill(rot_pid(f->r), 0), 0);
	} else {
		assert_int_equal(rot_pid(f->r), 0);
	}
	/* Fresh registers. */
	assert_int_equal(rot_accumulator(f->r, acc), 0);
	assert_memory_equal(acc, zero, 32);
	assert_int_equal(rot_nonce_read(f->r, reg, &reg_len), 0);
	assert_int_equal(reg_len, 0);
	assert_int_equal(rot_sign(f->r, h, digest, sig), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_boot_count(f->r, &boots), 0);
	assert_int_equal(boots, 2);
	/* Same device: same keys, same sealing key, same counters. */
	assert_int_equal(rot_device_id(f->r, id2), 0);
	assert_string_equal(id1, id2);
	assert_int_equal(
	        rot_unseal(f->r, NULL, 0, sealed, sealed_len, back, sizeof(back), &back_len), 0);
	assert_memory_equal(back, "persist", 7);
	assert_int_equal(rot_counter_read(f->r, 4, &v), 0);
	assert_int_equal(v, 3);
	/* The same chain measured again: a new boot seed, the boot count moved on, the log
	 * restarted (not appended to) and the accumulator the same as last boot. */
	measure_boot(f->r, c);
	attest_claims(f->r, &after);
	assert_memory_not_equal(before.boot_seed, after.boot_seed, 32);
	assert_int_equal(after.boot_count, 2);
	assert_int_equal(after.n_components, 3);
	assert_memory_equal(before.accumulator, after.accumulator, 32);
	/* And again: every reset is a boot. */
	assert_int_equal(rot_reset(f->r), 0);
	measure_boot(f->r, c);
	attest_claims(f->r, &before);
	assert_int_equal(before.boot_count, 3);
	assert_memory_not_equal(before.boot_seed, after.boot_seed, 32);
	assert_int_equal(rot_reset(NULL), SPH_ERR_INVALID_ARG);
}

/* ---- the OTP file behind the RoT's back --------------------------------------------- */

/* Writes bytes into the OTP file directly, as a same-uid attacker can (the RoT's
 * flock is advisory). */
static void otp_poke(const char *path, off_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, off), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Clearing burned counter bits behind a running RoT must not let the counter go
 * down: counter reads and advances fail closed until the bits are back. */
static void test_otp_tamper_counters(void **state)
{
	struct fx *f = *state;
	const off_t off2 = ROT_OTP_OFF_COUNTERS + 2 * ROT_OTP_COUNTER_BYTES;
	uint8_t img[ROT_OTP_SIZE], saved[ROT_OTP_COUNTER_BYTES], bits[ROT_OTP_COUNTER_BYTES];
	uint8_t zero[ROT_OTP_COUNTER_BYTES] = {0};
	uint32_t v;

	assert_int_equal(rot_counter_advance(f->r, 2, 5), 0);
	assert_int_equal(rot_counter_advance(f->r, 3, 1), 0);
	read_otp(f->otp, img);
	memcpy(saved, img + off2, sizeof(saved));

	/* Zero counter 2, then try to "advance" it to below its old value. */
	otp_poke(f->otp, off2, zero, sizeof(zero));
	v = 99;
	assert_int_equal(rot_counter_read(f->r, 2, &v), SPH_ERR_STATE);
	assert_int_equal(v, 0);
	assert_int_equal(rot_counter_advance(f->r, 2, 3), SPH_ERR_STATE);
	assert_int_equal(rot_counter_advance(f->r, 2, 5), SPH_ERR_STATE);
	assert_int_equal(rot_counter_advance(f->r, 2, 9), SPH_ERR_STATE);
	/* The OTP is not trusted any more: the other counters fail closed too. */
	assert_int_equal(rot_counter_read(f->r, 3, &v), SPH_ERR_STATE);
	assert_int_equal(rot_counter_advance(f->r, 7, 1), SPH_ERR_STATE);
	/* Nothing was written. */
	read_otp(f->otp, img);
	assert_memory_equal(img + off2, zero, sizeof(zero));
	/* Bits back: the counter has not gone down, and rollback is still refused. */
	otp_poke(f->otp, off2, saved, sizeof(saved));
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(rot_counter_advance(f->r, 2, 3), SPH_ERR_ROLLBACK);

	/* One bit swapped for another: the same count, still tampering. */
	memcpy(bits, saved, sizeof(bits));
	bits[0] &= (uint8_t)~0x01u;
	bits[20] |= 0x10;
	otp_poke(f->otp, off2, bits, sizeof(bits));
	assert_int_equal(rot_counter_read(f->r, 2, &v), SPH_ERR_STATE);
	assert_int_equal(rot_counter_advance(f->r, 2, 6), SPH_ERR_STATE);
	otp_poke(f->otp, off2, saved, sizeof(saved));
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 5);

	/* A bit burned behind its back only moves a fuse forward: taken, then remembered. */
	memcpy(bits, saved, sizeof(bits));
	bits[31] |= 0x80;
	otp_poke(f->otp, off2, bits, sizeof(bits));
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 6);
	otp_poke(f->otp, off2, saved, sizeof(saved));
	assert_int_equal(rot_counter_read(f->r, 2, &v), SPH_ERR_STATE);
	otp_poke(f->otp, off2, bits, sizeof(bits));
	assert_int_equal(rot_counter_advance(f->r, 2, 8), 0);
	assert_int_equal(rot_counter_read(f->r, 2, &v), 0);
	assert_int_equal(v, 8);
	/* Bits the RoT burned itself are remembered as well. */
	otp_poke(f->otp, off2, bits, sizeof(bits));
	assert_int_equal(rot_counter_read(f->r, 2, &v), SPH_ERR_STATE);
}

/* The lifecycle fuses get the same check: bits that vanish (or undefined bits that
 * appear) make LIFECYCLE and ATTEST fail closed. */
static void test_otp_tamper_lifecycle(void **state)
{
	struct fx *f = *state;
	struct eat_component c[3];
	uint8_t lc_dev[4], bad[4], nonce[16] = {9}, tok[EAT_MAX_TOKEN];
	enum rot_lifecycle lc = ROT_LC_DECOMMISSIONED;
	size_t n;

	measure_boot(f->r, c);
	rot_put_le32(lc_dev, 1u << (ROT_LC_DEVELOPMENT - 1));
	rot_put_le32(bad, 0);
	otp_poke(f->otp, ROT_OTP_OFF_LIFECYCLE, bad, sizeof(bad));
	assert_int_equal(rot_lifecycle(f->r, &lc), SPH_ERR_STATE);
	assert_int_equal(lc, ROT_LC_BLANK);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, sizeof(tok), &n),
	                 SPH_ERR_STATE);
	assert_int_equal(n, 0);
	rot_put_le32(bad, 0x9u); /* development plus an undefined bit */
	otp_poke(f->otp, ROT_OTP_OFF_LIFECYCLE, bad, sizeof(bad));
	assert_int_equal(rot_lifecycle(f->r, &lc), SPH_ERR_STATE);
	otp_poke(f->otp, ROT_OTP_OFF_LIFECYCLE, lc_dev, sizeof(lc_dev));
	assert_int_equal(rot_lifecycle(f->r, &lc), 0);
	assert_int_equal(lc, ROT_LC_DEVELOPMENT);
	assert_int_equal(rot_attest(f->r, nonce, sizeof(nonce), tok, sizeof(tok), &n), 0);
	/* A counter cleared behind its back also stops LIFECYCLE: one OTP, one verdict. */
	assert_int_equal(rot_counter_advance(f->r, 0, 1), 0);
	rot_put_le32(bad, 0);
	otp_poke(f->otp, ROT_OTP_OFF_COUNTERS, bad, 1);
	assert_int_equal(rot_lifecycle(f->r, &lc), SPH_ERR_STATE);
}

/* The root key hash is latched when the RoT starts (ROT_OP_ROOT_HASH) and its
 * region is part of the tamper check: rewriting it behind a running RoT (bits
 * that vanish or appear) makes ROOT_HASH, counters and LIFECYCLE fail closed;
 * the RoT never answers the file's new value. */
static void test_otp_tamper_root_hash(void **state)
{
	struct fx *f = *state;
	char *p = tu_path(f->dir, "root-otp");
	uint8_t h1[ROT_DIGEST_LEN], h2[ROT_DIGEST_LEN], out[ROT_DIGEST_LEN];
	uint8_t zero[ROT_DIGEST_LEN] = {0};
	enum rot_lifecycle lc;
	struct rot *r = NULL;
	uint32_t v;

	memset(h1, 0x11, sizeof(h1));
	memset(h2, 0x22, sizeof(h2));
	assert_int_equal(rot_otp_fuse(p, secret_a, ROT_LC_DEVELOPMENT), 0);
	/* Unfused at start: no trust anchor, and one appearing later is tampering. */
	assert_int_equal(f->t->open(p, &r), 0);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(rot_root_hash(r, out), SPH_ERR_NOT_FOUND);
	assert_memory_equal(out, zero, sizeof(out));
	assert_int_equal(rot_root_hash(r, NULL), SPH_ERR_INVALID_ARG);
	otp_poke(p, ROT_OTP_OFF_ROOT_KEY_HASH, h1, sizeof(h1));
	assert_int_equal(rot_root_hash(r, out), SPH_ERR_STATE);
	assert_int_equal(rot_counter_read(r, 0, &v), SPH_ERR_STATE);
	rot_close(r);
	r = NULL;
	/* Fused before start: latched. */
	assert_int_equal(f->t->open(p, &r), 0);
	assert_int_equal(rot_root_hash(r, out), 0);
	assert_memory_equal(out, h1, sizeof(h1));
	/* Another root's hash written over it: everything fails closed. */
	otp_poke(p, ROT_OTP_OFF_ROOT_KEY_HASH, h2, sizeof(h2));
	memset(out, 0xee, sizeof(out));
	assert_int_equal(rot_root_hash(r, out), SPH_ERR_STATE);
	assert_memory_equal(out, zero, sizeof(out));
	assert_int_equal(rot_counter_read(r, 0, &v), SPH_ERR_STATE);
	assert_int_equal(rot_counter_advance(r, 0, 1), SPH_ERR_STATE);
	assert_int_equal(rot_lifecycle(r, &lc), SPH_ERR_STATE);
	/* Bits that only vanish, too. */
	otp_poke(p, ROT_OTP_OFF_ROOT_KEY_HASH, zero, sizeof(zero));
	assert_int_equal(rot_root_hash(r, out), SPH_ERR_STATE);
	/* Put back: the latched hash again. */
	otp_poke(p, ROT_OTP_OFF_ROOT_KEY_HASH, h1, sizeof(h1));
	assert_int_equal(rot_root_hash(r, out), 0);
	assert_memory_equal(out, h1, sizeof(h1));
	assert_int_equal(rot_counter_read(r, 0, &v), 0);
	rot_close(r);
	free(p);
}

/* One RoT per OTP file: a second open, by either transport, fails at once. */
static void test_otp_in_use(void **state)
{
	struct fx *f = *state;
	struct rot *r2 = NULL;
	struct rot_core *core = NULL;
	uint8_t img[ROT_OTP_SIZE];
	uint64_t boots;

	assert_int_equal(f->t->open(f->otp, &r2), SPH_ERR_STATE);
	assert_null(r2);
	assert_int_equal(rot_open_inproc(f->otp, &r2), SPH_ERR_STATE);
	assert_null(r2);
	assert_int_equal(rot_open_mailbox(f->otp, &r2), SPH_ERR_STATE);
	assert_null(r2);
	assert_int_equal(rot_core_new(f->otp, &core), SPH_ERR_STATE);
	assert_null(core);
	/* The refused opens counted no boot, and the first RoT carries on. */
	read_otp(f->otp, img);
	assert_int_equal(rot_get_le64(img + ROT_OTP_OFF_BOOT_COUNT), 1);
	assert_int_equal(rot_boot_count(f->r, &boots), 0);
	assert_int_equal(boots, 1);
	assert_int_equal(rot_counter_advance(f->r, 1, 2), 0);
	/* A reset keeps the file to itself (and across the restart). */
	assert_int_equal(rot_reset(f->r), 0);
	assert_int_equal(rot_open_inproc(f->otp, &r2), SPH_ERR_STATE);
	assert_null(r2);
	/* Once it is closed, the file is free. */
	rot_close(f->r);
	f->r = NULL;
	assert_int_equal(rot_open_inproc(f->otp, &r2), 0);
	assert_int_equal(rot_boot_count(r2, &boots), 0);
	assert_int_equal(boots, 3);
	rot_close(r2);
	assert_int_equal(f->t->open(f->otp, &f->r), 0);
}

/* ---- concurrency ------------------------------------------------------------------- */

struct thread_arg {
	struct rot *r;
	int id;
	int failures;
};

static void *hammer(void *p)
{
	struct thread_arg *a = p;
	uint8_t digest[32], sig[ROT_SIG_LEN], pub[ROT_PUB_LEN], rnd[16];

	memset(digest, a->id, sizeof(digest));
	for (int i = 0; i < 40; i++) {
		if (rot_pubkey(a->r, ROT_KEY_IDENTITY, pub) != 0 ||
		    rot_sign(a->r, ROT_KEY_IDENTITY, digest, sig) != 0 ||
		    rot_verify(a->r, pub, digest, sig) != 0 ||
		    rot_random(a->r, rnd, sizeof(rnd)) != 0)
			a->failures++;
	}
	return NULL;
}

static void test_threads_share_a_handle(void **state)
{
	struct fx *f = *state;
	pthread_t th[4];
	struct thread_arg args[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){f->r, i + 1, 0};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
}

/* ---- bad OTP files ------------------------------------------------------------------- */

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* ---- platform-root key hash (the boot chain's trust anchor) --------------------- */

static void test_otp_root_hash(void **state)
{
	char *dir = tu_mkdtemp(), *p = tu_path(dir, "otp"), *missing = tu_path(dir, "none");
	uint8_t h1[ROT_DIGEST_LEN], h2[ROT_DIGEST_LEN], zero[ROT_DIGEST_LEN] = {0};
	uint8_t out[ROT_DIGEST_LEN], before[ROT_OTP_SIZE], after[ROT_OTP_SIZE];
	struct rot *r = NULL;
	uint32_t v;

	(void)state;
	memset(h1, 0x11, sizeof(h1));
	memset(h2, 0x22, sizeof(h2));
	assert_int_equal(rot_otp_fuse(p, secret_a, ROT_LC_PRODUCTION), 0);
	/* Unfused: the ROM finds no trust anchor. */
	memset(out, 0xee, sizeof(out));
	assert_int_equal(rot_otp_read_root_hash(p, out), SPH_ERR_NOT_FOUND);
	assert_memory_equal(out, zero, sizeof(out));
	assert_int_equal(rot_otp_read_root_hash(missing, out), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_otp_fuse_root_hash(missing, h1), SPH_ERR_NOT_FOUND);
	assert_int_equal(rot_otp_fuse_root_hash(p, zero), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_otp_fuse_root_hash(NULL, h1), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_otp_read_root_hash(NULL, out), SPH_ERR_INVALID_ARG);
	/* Burn once; only that region changes, and only by burning bits. */
	read_otp(p, before);
	assert_int_equal(rot_otp_fuse_root_hash(p, h1), 0);
	read_otp(p, after);
	assert_memory_equal(after + ROT_OTP_OFF_ROOT_KEY_HASH, h1, sizeof(h1));
	assert_memory_equal(after, before, ROT_OTP_OFF_ROOT_KEY_HASH);
	assert_memory_equal(after + ROT_OTP_OFF_COUNTERS, before + ROT_OTP_OFF_COUNTERS,
	                    ROT_OTP_SIZE - ROT_OTP_OFF_COUNTERS);
	assert_int_equal(rot_otp_read_root_hash(p, out), 0);
	assert_memory_equal(out, h1, sizeof(h1));
	/* One-way: the same hash is a no-op, another one is refused. */
	assert_int_equal(rot_otp_fuse_root_hash(p, h1), 0);
	assert_int_equal(rot_otp_fuse_root_hash(p, h2), SPH_ERR_STATE);
	read_otp(p, before);
	assert_memory_equal(before, after, ROT_OTP_SIZE);
	/* The RoT still opens over it; while it runs the ROM can read the fuse but
	 * nobody can burn (the file is locked). */
	assert_int_equal(rot_open_inproc(p, &r), 0);
	assert_int_equal(rot_counter_read(r, 0, &v), 0);
	assert_int_equal(rot_otp_read_root_hash(p, out), 0);
	assert_memory_equal(out, h1, sizeof(h1));
	assert_int_equal(rot_otp_fuse_root_hash(p, h1), SPH_ERR_STATE);
	rot_close(r);
	/* A malformed OTP file is refused by both. */
	after[ROT_OTP_OFF_RESERVED] = 1;
	write_file(missing, after, sizeof(after));
	assert_int_equal(rot_otp_read_root_hash(missing, out), SPH_ERR_MALFORMED);
	assert_int_equal(rot_otp_fuse_root_hash(missing, h2), SPH_ERR_MALFORMED);
	tu_rmtree(dir);
	free(dir);
	free(p);
	free(missing);
}

static void test_bad_otp_files(void **state)
{
	struct fx *f = *state;
	uint8_t img[ROT_OTP_SIZE + 1], bad[ROT_OTP_SIZE + 1];
	char *p = tu_path(f->dir, "bad");
	struct rot *r = NULL;

	read_otp(f->otp, img);
	img[ROT_OTP_SIZE] = 0;

	assert_int_equal(f->t->open(p, &r), SPH_ERR_NOT_FOUND);
	assert_null(r);
	/* Wrong sizes. */
	write_file(p, img, ROT_OTP_SIZE - 1);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	write_file(p, img, ROT_OTP_SIZE + 1);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	write_file(p, img, 0);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	/* Wrong magic. */
	memcpy(bad, img, ROT_OTP_SIZE);
	bad[7] = '2';
	write_file(p, bad, ROT_OTP_SIZE);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	/* Undefined lifecycle bits, non-zero reserved word. */
	memcpy(bad, img, ROT_OTP_SIZE);
	bad[ROT_OTP_OFF_LIFECYCLE] |= 0x08;
	write_file(p, bad, ROT_OTP_SIZE);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	memcpy(bad, img, ROT_OTP_SIZE);
	bad[ROT_OTP_OFF_RESERVED + 3] = 1;
	write_file(p, bad, ROT_OTP_SIZE);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_MALFORMED);
	unlink(p);
	/* No device secret fused: the mailbox RoT reports it through the handshake. */
	memcpy(bad, img, ROT_OTP_SIZE);
	memset(bad + ROT_OTP_OFF_SECRET, 0, ROT_SECRET_LEN);
	write_file(p, bad, ROT_OTP_SIZE);
	assert_int_equal(f->t->open(p, &r), SPH_ERR_STATE);
	assert_null(r);
	unlink(p);
	/* A directory. */
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_not_equal(f->t->open(p, &r), 0);
	assert_null(r);
	rmdir(p);
	/* Fusing over an existing file is refused and leaves it alone. */
	assert_int_equal(rot_otp_fuse(f->otp, secret_b, ROT_LC_PRODUCTION), SPH_ERR_STATE);
	read_otp(f->otp, bad);
	assert_memory_equal(bad, img, ROT_OTP_SIZE);
	assert_int_equal(f->t->open(NULL, &r), SPH_ERR_INVALID_ARG);
	assert_int_equal(f->t->open(f->otp, NULL), SPH_ERR_INVALID_ARG);
	free(p);
}

/* ---- the mailbox process ------------------------------------------------------------ */

/* Reads "Key:   N kB" from /proc/PID/status; -1 if absent. */
static long proc_status_kb(int pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	size_t klen = strlen(key);
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *p = line + klen + 1;
			char *end = NULL;
			errno = 0;
			v = strtol(p, &end, 10);
			/* "VmLck:	       4 kB": digits, then " kB" */
			if (errno != 0 || end == p || v < 0 || strncmp(end, " kB", 3) != 0)
				fail_msg("/proc/%d/status: cannot parse %s: '%s'", pid, key, line);
			break;
		}
	}
	fclose(fp);
	return v;
}

static bool proc_core_limit_zero(int pid)
{
	char path[64], line[256];
	bool zero = false;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *soft, *hard, *save = NULL;
		if (strncmp(line, "Max core file size", 18) != 0)
			continue;
		/* "Max core file size        0                    0                    bytes" */
		soft = strtok_r(line + 18, " \t", &save);
		hard = strtok_r(NULL, " \t", &save);
		zero = soft && hard && strcmp(soft, "0") == 0 && strcmp(hard, "0") == 0;
	}
	fclose(fp);
	return zero;
}

static uid_t proc_owner(int pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	assert_int_equal(stat(path, &st), 0);
	return st.st_uid;
}

/*
 * PR_SET_DUMPABLE 0 shows as /proc/PID owned by root. As root that proves
 * nothing, so a helper drops to an unprivileged uid and starts its own mailbox
 * RoT: the helper's /proc entries show its uid, the RoT's must show root.
 */
static void check_not_dumpable(struct fx *f)
{
	const uid_t nobody = 65534;
	int to_parent[2], to_child[2];
	int helper_rot = 0;
	pid_t helper;
	int status;
	char *otp2;

	if (geteuid() != 0) {
		assert_int_equal(proc_owner(rot_pid(f->r)), 0);
		assert_int_equal(proc_owner(getpid()), geteuid());
		return;
	}
	otp2 = tu_path(f->dir, "otp-nobody");
	assert_int_equal(rot_otp_fuse(otp2, secret_b, ROT_LC_DEVELOPMENT), 0);
	assert_int_equal(chown(f->dir, nobody, nobody), 0);
	assert_int_equal(chown(otp2, nobody, nobody), 0);
	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		struct rot *r = NULL;
		int pid = -1;
		char go;

		struct pollfd p = {.fd = to_child[0], .events = POLLIN};

		/* A uid change clears the dumpable flag and the parent-death signal: restore
		 * both, so the helper is a dumpable control and never outlives the test. */
		if (setgid(nobody) != 0 || setuid(nobody) != 0 || prctl(PR_SET_DUMPABLE, 1) != 0 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || rot_open_mailbox(otp2, &r) != 0)
			pid = -1;
		else
			pid = rot_pid(r);
		if (write(to_parent[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(3);
		if (poll(&p, 1, 30000) != 1 || read(to_child[0], &go, 1) != 1)
			_exit(4);
		rot_close(r);
		_exit(pid > 0 ? 0 : 2);
	}
	assert_int_equal(read(to_parent[0], &helper_rot, sizeof(helper_rot)), sizeof(helper_rot));
	if (helper_rot > 0) {
		assert_int_equal(proc_owner(helper), nobody); /* dumpable: its own uid */
		assert_int_equal(proc_owner(helper_rot), 0);  /* not dumpable: root */
		assert_true(proc_core_limit_zero(helper_rot));
	}
	assert_int_equal(write(to_child[1], "g", 1), 1);
	assert_int_equal(waitpid(helper, &status, 0), helper);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		print_message("note: could not drop privileges; dumpable check skipped\n");
	else
		assert_int_equal(WEXITSTATUS(status), 0);
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
	assert_int_equal(chown(f->dir, 0, 0), 0);
	free(otp2);
}

static void test_transport_process(void **state)
{
	struct fx *f = *state;
	int pid = rot_pid(f->r);
	char path[64];

	if (!f->t->mailbox) {
		assert_int_equal(pid, 0);
		return;
	}
	assert_true(pid > 0);
	assert_int_not_equal(pid, getpid());
	assert_int_equal(kill(pid, 0), 0);
	/* Secrets are in locked memory (the secure heap and the frame buffers). */
	assert_true(proc_status_kb(pid, "VmLck") > 0);
	/* No core file, ever. */
	assert_true(proc_core_limit_zero(pid));
	check_not_dumpable(f);
	/* Inherited descriptors are closed: the RoT holds stdio, the mailbox socket (3) and
	 * its own OTP file, nothing else (readable as root or as the same uid). */
	for (int fd = 3; fd < 256; fd++) {
		char target[512];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (fd == 3 && strncmp(target, "socket:", 7) == 0)
			continue;
		if (strcmp(target, f->otp) == 0)
			continue;
		fail_msg("the RoT holds descriptor %d -> %s", fd, target);
	}
	/* Closing the handle ends the process. */
	rot_close(f->r);
	f->r = NULL;
	assert_int_equal(kill(pid, 0), -1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_mailbox_rot_killed(void **state)
{
	struct fx *f = *state;
	uint8_t digest[32] = {0}, sig[ROT_SIG_LEN], pub[ROT_PUB_LEN];
	uint64_t boots;
	double t0;

	if (!f->t->mailbox)
		skip();
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig), 0);
	assert_int_equal(kill(rot_pid(f->r), SIGKILL), 0);
	t0 = now_s();
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig), SPH_ERR_TRANSPORT);
	assert_int_equal(rot_pubkey(f->r, ROT_KEY_IDENTITY, pub), SPH_ERR_TRANSPORT);
	assert_int_equal(rot_boot_count(f->r, &boots), SPH_ERR_TRANSPORT);
	assert_int_equal(rot_reset(f->r), SPH_ERR_TRANSPORT);
	assert_true(now_s() - t0 < 2.0);
	rot_close(f->r); /* reaps the dead child without hanging */
	f->r = NULL;
	assert_true(now_s() - t0 < 2.0);
	/* The device comes back on the next open. */
	assert_int_equal(f->t->open(f->otp, &f->r), 0);
	assert_int_equal(rot_sign(f->r, ROT_KEY_IDENTITY, digest, sig), 0);
}

static void test_mailbox_missing_binary(void **state)
{
	struct fx *f = *state;
	const char *old = getenv("SPHERE_ROT_BIN");
	char *saved;
	struct rot *r = NULL;

	if (!f->t->mailbox)
		skip();
	saved = old ? strdup(old) : NULL;
	setenv("SPHERE_ROT_BIN", "/nonexistent/sphere-rot", 1);
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_NOT_FOUND);
	assert_null(r);
	/* Only an absolute path to a regular, executable file is taken. */
	setenv("SPHERE_ROT_BIN", "sphere-rot", 1);
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_INVALID_ARG);
	assert_null(r);
	setenv("SPHERE_ROT_BIN", "./bin/sphere-rot", 1);
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_INVALID_ARG);
	setenv("SPHERE_ROT_BIN", f->dir, 1); /* a directory */
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_INVALID_ARG);
	setenv("SPHERE_ROT_BIN", f->otp, 1); /* a regular file, mode 0600 */
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_INVALID_ARG);
	setenv("SPHERE_ROT_BIN", "/dev/null", 1); /* not a regular file */
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_INVALID_ARG);
	assert_null(r);
	/* A binary that is not a RoT: the handshake fails, nothing hangs. */
	setenv("SPHERE_ROT_BIN", "/bin/true", 1);
	assert_int_equal(rot_open_mailbox(f->otp, &r), SPH_ERR_TRANSPORT);
	assert_null(r);
	if (saved)
		setenv("SPHERE_ROT_BIN", saved, 1);
	else
		unsetenv("SPHERE_ROT_BIN");
	free(saved);
}

/* ---- raw frames: straight at a core, and at a spawned sphere-rot serve ---------------- */

struct raw {
	struct rot_core *core; /* or */
	int fd;
	pid_t pid;
	char *dir;
};

static const char *rot_bin(void)
{
	const char *bin = getenv("SPHERE_ROT_BIN");
	if (!bin)
		fail_msg("SPHERE_ROT_BIN is not set (run the tests through ctest)");
	return bin;
}

static void raw_open(struct raw *x, bool server)
{
	char *otp;
	int sv[2];

	memset(x, 0, sizeof(*x));
	x->fd = -1;
	x->dir = tu_mkdtemp();
	otp = tu_path(x->dir, "otp");
	assert_int_equal(rot_otp_fuse(otp, secret_a, ROT_LC_DEVELOPMENT), 0);
	if (!server) {
		assert_int_equal(rot_core_new(otp, &x->core), 0);
		free(otp);
		return;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	x->pid = fork();
	assert_true(x->pid >= 0);
	if (x->pid == 0) {
		if (dup2(sv[1], 3) != 3)
			_exit(127);
		execl(rot_bin(), "sphere-rot", "serve", "--otp", otp, "--fd", "3", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	x->fd = sv[0];
	free(otp);
}

/* Closes; a spawned server must have survived everything and exit 0 on hang-up. */
static void raw_close(struct raw *x)
{
	int status;

	rot_core_free(x->core);
	if (x->fd >= 0) {
		close(x->fd);
		assert_int_equal(waitpid(x->pid, &status, 0), x->pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	tu_rmtree(x->dir);
	free(x->dir);
}

/* Sends one record and returns the response length (resp holds ROT_MB_MAX_FRAME + 1). */
static size_t raw_xfer(struct raw *x, const uint8_t *req, size_t len, uint8_t *resp)
{
	struct pollfd p;
	ssize_t n;

	if (x->core)
		return rot_core_handle(x->core, req, len, resp, ROT_MB_MAX_FRAME + 1);
	assert_int_equal(send(x->fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	p = (struct pollfd){.fd = x->fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 10000), 1); /* the RoT answers, never goes quiet */
	n = recv(x->fd, resp, ROT_MB_MAX_FRAME + 1, MSG_TRUNC);
	assert_true(n > 0 && n <= ROT_MB_MAX_FRAME);
	return (size_t)n;
}

static size_t frame(uint8_t *buf, uint16_t op, uint32_t seq, const void *payload, size_t len)
{
	struct rot_mb_hdr h = {.magic = ROT_MB_MAGIC, .op = op, .seq = seq, .len = (uint32_t)len};
	rot_mb_hdr_encode(&h, buf);
	if (len)
		memcpy(buf + ROT_MB_HDR_LEN, payload, len);
	return ROT_MB_HDR_LEN + len;
}

/* Sends a bad record: the answer is an error with an empty payload, echoing the seq
 * when the header was readable; then the RoT still answers a good request. */
static void expect_refused(struct raw *x, const uint8_t *req, size_t len, int want_status,
                           const char *what)
{
	static uint8_t resp[ROT_MB_MAX_FRAME + 1];
	static uint8_t good[64];
	struct rot_mb_hdr h, rq;
	size_t n;
	uint8_t key[4] = {0};

	n = raw_xfer(x, req, len, resp);
	if (n != ROT_MB_HDR_LEN)
		fail_msg("%s: response of %zu bytes", what, n);
	if (rot_mb_hdr_decode(resp, n, &h) != 0)
		fail_msg("%s: the RoT's own response does not decode", what);
	if (h.status == 0 || h.len != 0)
		fail_msg("%s: status %d len %u", what, h.status, (unsigned)h.len);
	if (want_status != 0 && h.status != want_status)
		fail_msg("%s: status %d, want %d", what, h.status, want_status);
	if (len >= ROT_MB_HDR_LEN) {
		assert_int_equal(rot_mb_hdr_peek(req, len, &rq), 0);
		if (h.seq != rq.seq)
			fail_msg("%s: seq %u not echoed", what, (unsigned)rq.seq);
	}
	/* Alive and well. */
	n = raw_xfer(x, good, frame(good, ROT_OP_PUBKEY, 77, key, sizeof(key)), resp);
	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.op, ROT_OP_PUBKEY);
	assert_int_equal(h.seq, 77);
	assert_int_equal(h.len, ROT_PUB_LEN);
}

/* Request payload length range per op (mirrors the op table in docs/formats.md). */
static const struct {
	size_t min, max;
} op_len[ROT_OP_MAX + 1] = {
        [ROT_OP_PUBKEY] = {4, 4},
        [ROT_OP_SIGN] = {36, 36},
        [ROT_OP_VERIFY] = {161, 161},
        [ROT_OP_ECDH] = {69, 69},
        [ROT_OP_KEYGEN] = {0, 0},
        [ROT_OP_KEY_DESTROY] = {4, 4},
        [ROT_OP_SEAL] = {4, 4 + ROT_SEAL_AAD_MAX + ROT_SEAL_MAX},
        [ROT_OP_UNSEAL] = {4, 4 + ROT_SEAL_AAD_MAX + ROT_SEAL_MAX + ROT_SEAL_OVERHEAD},
        [ROT_OP_RANDOM] = {2, 2},
        [ROT_OP_MEASURE] = {ROT_COMPONENT_RECORD_LEN, ROT_COMPONENT_RECORD_LEN},
        [ROT_OP_ACCUMULATOR] = {0, 0},
        [ROT_OP_NONCE_LOAD] = {8, 64},
        [ROT_OP_NONCE_READ] = {0, 0},
        [ROT_OP_ATTEST] = {8, 64},
        [ROT_OP_COUNTER_READ] = {4, 4},
        [ROT_OP_COUNTER_ADVANCE] = {8, 8},
        [ROT_OP_LIFECYCLE] = {0, 0},
        [ROT_OP_BOOT_COUNT] = {0, 0},
        [ROT_OP_ROOT_HASH] = {0, 0},
};

static void raw_attacks(struct raw *x)
{
	static uint8_t req[2 * ROT_MB_MAX_FRAME], payload[2 * ROT_MB_MAX_FRAME];
	static uint8_t resp[ROT_MB_MAX_FRAME + 1];
	struct rot_mb_hdr h;
	size_t n;
	uint32_t seq = 1000;

	memset(payload, 0, sizeof(payload));
	/* Truncated headers, including an empty record. */
	n = frame(req, ROT_OP_LIFECYCLE, seq, NULL, 0);
	for (size_t len = 0; len < ROT_MB_HDR_LEN; len++)
		expect_refused(x, req, len, SPH_ERR_MALFORMED, "truncated header");
	/* len field says more (or less) than the record holds. */
	n = frame(req, ROT_OP_PUBKEY, ++seq, payload, 4);
	rot_put_le32(req + 12, 5);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "len > record");
	rot_put_le32(req + 12, 3);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "len < record");
	rot_put_le32(req + 12, 0xffffffffu);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "huge len");
	rot_put_le32(req + 12, ROT_MB_MAX_PAYLOAD + 1);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "len > max payload");
	/* Oversize records. */
	n = frame(req, ROT_OP_SEAL, ++seq, payload, ROT_MB_MAX_PAYLOAD + 1);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "oversize record");
	if (!x->core) {
		n = frame(req, ROT_OP_SEAL, ++seq, payload, sizeof(req) - ROT_MB_HDR_LEN);
		expect_refused(x, req, n, SPH_ERR_MALFORMED, "far oversize record");
	}
	/* Bad magic, bad ops, a status in a request. */
	n = frame(req, ROT_OP_LIFECYCLE, ++seq, NULL, 0);
	req[0] ^= 0x20;
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "bad magic");
	const uint16_t bad_ops[] = {0, ROT_OP_MAX + 1, 0x100, 0xffff};
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++) {
		n = frame(req, bad_ops[i], ++seq, NULL, 0);
		expect_refused(x, req, n, SPH_ERR_MALFORMED, "unknown op");
		n = raw_xfer(x, req, n, resp);
		assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
		assert_int_equal(h.op, 0); /* an unreadable op is answered as op 0 */
	}
	n = frame(req, ROT_OP_LIFECYCLE, ++seq, NULL, 0);
	rot_put_le16(req + 6, (uint16_t)SPH_ERR_AUTH);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "status in request");
	/* Wrong payload length for every op. */
	for (uint16_t op = 1; op <= ROT_OP_MAX; op++) {
		char what[64];
		snprintf(what, sizeof(what), "op %u payload length", (unsigned)op);
		if (op_len[op].min > 0) {
			n = frame(req, op, ++seq, payload, op_len[op].min - 1);
			expect_refused(x, req, n, SPH_ERR_MALFORMED, what);
		}
		n = frame(req, op, ++seq, payload, op_len[op].max + 1);
		expect_refused(x, req, n, SPH_ERR_MALFORMED, what);
		if (op_len[op].max + 64 <= ROT_MB_MAX_PAYLOAD) {
			n = frame(req, op, ++seq, payload, op_len[op].max + 64);
			expect_refused(x, req, n, SPH_ERR_MALFORMED, what);
		}
	}
	/* Inner lengths of SEAL/UNSEAL that disagree with the frame, or exceed the limits. */
	rot_put_le16(payload, 3);
	rot_put_le16(payload + 2, 3);
	n = frame(req, ROT_OP_SEAL, ++seq, payload, 4 + 5);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "seal inner lengths");
	n = frame(req, ROT_OP_UNSEAL, ++seq, payload, 4 + 7);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "unseal inner lengths");
	rot_put_le16(payload, ROT_SEAL_AAD_MAX + 1);
	rot_put_le16(payload + 2, 0);
	n = frame(req, ROT_OP_SEAL, ++seq, payload, 4 + ROT_SEAL_AAD_MAX + 1);
	expect_refused(x, req, n, SPH_ERR_TOO_LARGE, "seal aad too long");
	rot_put_le16(payload, 0xffff);
	rot_put_le16(payload + 2, 0xffff);
	n = frame(req, ROT_OP_UNSEAL, ++seq, payload, 4 + 10);
	expect_refused(x, req, n, SPH_ERR_TOO_LARGE, "unseal huge inner lengths");
	memset(payload, 0, 8);
	/* RANDOM of 0 and too many bytes, counter index out of range. */
	n = frame(req, ROT_OP_RANDOM, ++seq, payload, 2);
	expect_refused(x, req, n, SPH_ERR_INVALID_ARG, "random 0");
	rot_put_le16(payload, ROT_RANDOM_MAX + 1);
	n = frame(req, ROT_OP_RANDOM, ++seq, payload, 2);
	expect_refused(x, req, n, SPH_ERR_TOO_LARGE, "random too many");
	rot_put_le32(payload, ROT_COUNTERS);
	n = frame(req, ROT_OP_COUNTER_READ, ++seq, payload, 4);
	expect_refused(x, req, n, SPH_ERR_INVALID_ARG, "counter index");
	/* MEASURE records with bad strings. */
	{
		uint8_t rec[ROT_COMPONENT_RECORD_LEN];
		const struct {
			size_t off;
			const char *bytes;
			size_t len;
			const char *what;
		} cases[] = {
		        {0, "", 1, "empty type"},
		        {0, "BL\0X", 4, "byte after type NUL"},
		        {0, "B\x01", 2, "control char in type"},
		        {0, "B\x80", 2, "non-ASCII type"},
		        {32, "", 1, "empty version"},
		        {32, "1.0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0z", 32,
		         "byte at the end of version"},
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			memset(rec, 0, sizeof(rec));
			memcpy(rec, "BL", 2);
			memcpy(rec + 32, "1.0", 3);
			memset(rec + cases[i].off, 0, cases[i].off == 0 ? 16 : 32);
			memcpy(rec + cases[i].off, cases[i].bytes, cases[i].len);
			n = frame(req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec));
			expect_refused(x, req, n, SPH_ERR_MALFORMED, cases[i].what);
		}
		/* A full-width type (16 chars, no NUL) is fine. */
		memset(rec, 0, sizeof(rec));
		memcpy(rec, "ABCDEFGHIJKLMNOP", 16);
		memcpy(rec + 32, "1", 1);
		n = raw_xfer(x, req, frame(req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec)), resp);
		assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
		assert_int_equal(h.status, 0);
		assert_int_equal(h.len, 32);
	}
	/* Garbage records of every small length and some large ones. */
	{
		uint32_t s = 12345;
		for (size_t len = 1; len < 300; len += 1) {
			for (size_t i = 0; i < len; i++) {
				s = s * 1103515245u + 12345u;
				req[i] = (uint8_t)(s >> 16);
			}
			expect_refused(x, req, len, 0, "garbage");
		}
	}
	/* Finally, good requests still get exactly the right answers. */
	uint8_t idx[8] = {0};
	n = raw_xfer(x, req, frame(req, ROT_OP_BOOT_COUNT, ++seq, NULL, 0), resp);
	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.seq, seq);
	assert_int_equal(h.len, 8);
	assert_int_equal(rot_get_le64(resp + ROT_MB_HDR_LEN), 1);
	n = raw_xfer(x, req, frame(req, ROT_OP_COUNTER_READ, ++seq, idx, 4), resp);
	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.len, 4);
}

static void test_raw_frames_core(void **state)
{
	struct raw x;

	(void)state;
	raw_open(&x, false);
	raw_attacks(&x);
	/* A core handler given a small response buffer refuses instead of overflowing. */
	{
		uint8_t req[32], small[ROT_MB_HDR_LEN + 8];
		uint8_t key[4] = {0};
		struct rot_mb_hdr h;
		size_t n = rot_core_handle(x.core, req, frame(req, ROT_OP_PUBKEY, 1, key, 4), small,
		                           sizeof(small));
		assert_int_equal(n, ROT_MB_HDR_LEN);
		assert_int_equal(rot_mb_hdr_decode(small, n, &h), 0);
		assert_int_equal(h.status, SPH_ERR_BUFFER_TOO_SMALL);
		assert_int_equal(rot_core_handle(x.core, req, 20, small, 8), 0);
		assert_int_equal(rot_core_handle(x.core, NULL, 0, small, sizeof(small)),
		                 ROT_MB_HDR_LEN);
	}
	raw_close(&x);
}

static void test_raw_frames_server(void **state)
{
	struct raw x;

	(void)state;
	raw_open(&x, true);
	raw_attacks(&x);
	raw_close(&x);
}

/* SIGTERM: the server wipes its keys and exits 0, even when idle. */
static void test_server_sigterm(void **state)
{
	static uint8_t req[64], resp[ROT_MB_MAX_FRAME + 1];
	uint8_t key[4] = {0};
	struct rot_mb_hdr h;
	struct raw x;
	int status = 0;
	size_t n;
	pid_t w = 0;

	(void)state;
	raw_open(&x, true);
	n = raw_xfer(&x, req, frame(req, ROT_OP_PUBKEY, 5, key, sizeof(key)), resp);
	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.status, 0);
	usleep(100000); /* let it go idle in a blocking recv */
	assert_int_equal(kill(x.pid, SIGTERM), 0);
	for (int i = 0; i < 500 && w == 0; i++) {
		w = waitpid(x.pid, &status, WNOHANG);
		if (w == 0)
			usleep(10000);
	}
	assert_int_equal(w, x.pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(x.fd);
	tu_rmtree(x.dir);
	free(x.dir);
}

/* ---- RESET is not a request ----------------------------------------------------------- */

/* A component as a MEASURE record (formats.md §4.2). */
static void component_record(const struct eat_component *c, uint8_t rec[ROT_COMPONENT_RECORD_LEN])
{
	memset(rec, 0, ROT_COMPONENT_RECORD_LEN);
	memcpy(rec, c->type, strlen(c->type));
	memcpy(rec + 16, c->component_id, 16);
	memcpy(rec + 32, c->version, strlen(c->version));
	rot_put_le32(rec + 64, c->security_version);
	memcpy(rec + 68, c->digest, 32);
	memcpy(rec + 100, c->signer_id, 32);
}

/* Sends a request that must succeed; returns the response payload length. */
static size_t raw_ok(struct raw *x, uint8_t *req, uint16_t op, uint32_t seq, const void *payload,
                     size_t len, uint8_t *resp)
{
	struct rot_mb_hdr h;
	size_t n = raw_xfer(x, req, frame(req, op, seq, payload, len), resp);

	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.op, op);
	assert_int_equal(h.seq, seq);
	return h.len;
}

/*
 * The reported attack: measure BL + an evil OS, clear the registers with a RESET
 * frame, measure BL + the good OS and attest a clean chain. Op 19 is retired: the
 * RoT refuses it like any unknown op and the registers keep the evil OS.
 */
static void raw_reset_refused(struct raw *x)
{
	static uint8_t req[ROT_MB_MAX_FRAME + 1], resp[ROT_MB_MAX_FRAME + 1];
	struct eat_component bl, evil, good, chain[2];
	struct eat_claims claims;
	struct rot_mb_hdr h;
	uint8_t rec[ROT_COMPONENT_RECORD_LEN], acc[32], want[32], apub[ROT_PUB_LEN];
	uint8_t key[4], nonce[16], tok[EAT_MAX_TOKEN];
	uint32_t seq = 500;
	size_t n;

	make_component(&bl, "BL", "1.0.0", 1, 10);
	make_component(&evil, "OS", "6.6.6", 1, 66);
	make_component(&good, "OS", "24.10.1", 7, 11);
	component_record(&bl, rec);
	raw_ok(x, req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec), resp);
	component_record(&evil, rec);
	raw_ok(x, req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec), resp);
	assert_int_equal(raw_ok(x, req, ROT_OP_ACCUMULATOR, ++seq, NULL, 0, resp), 32);
	memcpy(acc, resp + ROT_MB_HDR_LEN, 32);

	/* RESET, with and without a payload: refused like an unknown op (answered as op 0). */
	n = frame(req, ROT_OP_RETIRED_RESET, ++seq, NULL, 0);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "retired RESET");
	n = raw_xfer(x, req, frame(req, ROT_OP_RETIRED_RESET, ++seq, NULL, 0), resp);
	assert_int_equal(rot_mb_hdr_decode(resp, n, &h), 0);
	assert_int_equal(h.op, 0);
	assert_int_equal(h.status, SPH_ERR_MALFORMED);
	assert_int_equal(h.len, 0);
	n = frame(req, ROT_OP_RETIRED_RESET, ++seq, rec, 4);
	expect_refused(x, req, n, SPH_ERR_MALFORMED, "retired RESET with a payload");

	/* Nothing was cleared, no boot was counted. */
	assert_int_equal(raw_ok(x, req, ROT_OP_ACCUMULATOR, ++seq, NULL, 0, resp), 32);
	assert_memory_equal(resp + ROT_MB_HDR_LEN, acc, 32);
	assert_int_equal(raw_ok(x, req, ROT_OP_BOOT_COUNT, ++seq, NULL, 0, resp), 8);
	assert_int_equal(rot_get_le64(resp + ROT_MB_HDR_LEN), 1);

	/* The "clean" chain is appended to the evil one, and the token says so. */
	component_record(&bl, rec);
	raw_ok(x, req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec), resp);
	component_record(&good, rec);
	raw_ok(x, req, ROT_OP_MEASURE, ++seq, rec, sizeof(rec), resp);
	memset(nonce, 0x42, sizeof(nonce));
	n = raw_ok(x, req, ROT_OP_ATTEST, ++seq, nonce, sizeof(nonce), resp);
	assert_true(n > 0 && n <= sizeof(tok));
	memcpy(tok, resp + ROT_MB_HDR_LEN, n);
	rot_put_le32(key, ROT_KEY_ATTEST);
	assert_int_equal(raw_ok(x, req, ROT_OP_PUBKEY, ++seq, key, 4, resp), ROT_PUB_LEN);
	memcpy(apub, resp + ROT_MB_HDR_LEN, ROT_PUB_LEN);
	assert_int_equal(eat_verify(tok, n, nonce, sizeof(nonce), apub, NULL, &claims), 0);
	assert_int_equal(claims.n_components, 4);
	assert_string_equal(claims.components[1].version, "6.6.6");
	assert_int_equal(claims.boot_count, 1);
	chain[0] = bl;
	chain[1] = good;
	assert_int_equal(eat_accumulator_replay(chain, 2, want), 0);
	assert_memory_not_equal(claims.accumulator, want, 32);
}

static void test_raw_reset_refused_core(void **state)
{
	struct raw x;

	(void)state;
	raw_open(&x, false);
	raw_reset_refused(&x);
	raw_close(&x);
}

static void test_raw_reset_refused_server(void **state)
{
	struct raw x;

	(void)state;
	raw_open(&x, true);
	raw_reset_refused(&x);
	raw_close(&x);
}

/* ---- the client's response checks ------------------------------------------------------ */

/* A response record: header, then len bytes of pattern. */
static size_t resp_frame(uint8_t *buf, uint32_t magic, uint16_t op, int16_t status, uint32_t seq,
                         size_t len)
{
	struct rot_mb_hdr h = {
	        .magic = magic, .op = op, .status = status, .seq = seq, .len = (uint32_t)len};

	rot_mb_hdr_encode(&h, buf);
	for (size_t i = 0; i < len; i++)
		buf[ROT_MB_HDR_LEN + i] = (uint8_t)(i * 13 + 1);
	return ROT_MB_HDR_LEN + len;
}

/* Checks that a response is refused and the outputs stay cleared. */
static void expect_response_refused(uint16_t op, uint32_t seq, const uint8_t *resp, size_t len,
                                    size_t min, size_t max, const char *what)
{
	const uint8_t *p = (const uint8_t *)"x";
	size_t pl = 99;
	int rc = rot_mb_check_response(op, seq, resp, len, min, max, &p, &pl);

	if (rc != SPH_ERR_TRANSPORT)
		fail_msg("%s: status %d, want SPH_ERR_TRANSPORT", what, rc);
	assert_null(p);
	assert_int_equal(pl, 0);
}

static void test_response_check(void **state)
{
	static uint8_t buf[2 * ROT_MB_MAX_FRAME];
	const uint32_t seq = 0x01020304;
	const uint8_t *p = NULL;
	size_t n, pl = 0;

	(void)state;
	/* Good answers: exact length, an empty payload, both ends of a range. */
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_PUBKEY, 0, seq, ROT_PUB_LEN);
	assert_int_equal(rot_mb_check_response(ROT_OP_PUBKEY, seq, buf, n, ROT_PUB_LEN, ROT_PUB_LEN,
	                                       &p, &pl),
	                 0);
	assert_ptr_equal(p, buf + ROT_MB_HDR_LEN);
	assert_int_equal(pl, ROT_PUB_LEN);
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_VERIFY, 0, seq, 0);
	assert_int_equal(rot_mb_check_response(ROT_OP_VERIFY, seq, buf, n, 0, 0, &p, &pl), 0);
	assert_null(p);
	assert_int_equal(pl, 0);
	for (size_t len = 0; len <= EAT_NONCE_MAX; len += EAT_NONCE_MAX) {
		n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_NONCE_READ, 0, seq, len);
		assert_int_equal(rot_mb_check_response(ROT_OP_NONCE_READ, seq, buf, n, 0,
		                                       EAT_NONCE_MAX, &p, &pl),
		                 0);
		assert_int_equal(pl, len);
	}
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_ATTEST, 0, seq, EAT_MAX_TOKEN);
	assert_int_equal(
	        rot_mb_check_response(ROT_OP_ATTEST, seq, buf, n, 1, EAT_MAX_TOKEN, &p, &pl), 0);
	assert_int_equal(pl, EAT_MAX_TOKEN);
	/* The RoT's own refusal is passed on, with no payload. */
	p = buf;
	pl = 5;
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_UNSEAL, SPH_ERR_AUTH, seq, 0);
	assert_int_equal(
	        rot_mb_check_response(ROT_OP_UNSEAL, seq, buf, n, 0, ROT_SEAL_MAX, &p, &pl),
	        SPH_ERR_AUTH);
	assert_null(p);
	assert_int_equal(pl, 0);

	/* Every way a response can be wrong. */
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN);
	expect_response_refused(ROT_OP_PUBKEY, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN, "wrong op");
	expect_response_refused(ROT_OP_SIGN, seq + 1, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "wrong seq");
	expect_response_refused(ROT_OP_SIGN, seq ^ 0x80000000u, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "wrong seq, high bit");
	n = resp_frame(buf, ROT_MB_MAGIC, 0, SPH_ERR_MALFORMED, seq, 0);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "a refusal of op 0");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_RETIRED_RESET, 0, seq, 0);
	expect_response_refused(ROT_OP_BOOT_COUNT, seq, buf, n, 8, 8, "op out of range");
	n = resp_frame(buf, ROT_MB_MAGIC ^ 1u, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN, "bad magic");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 1, seq, 0);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "positive status");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, INT16_MAX, seq, 0);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "positive status, max");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, SPH_ERR_NOT_FOUND, seq, 1);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "error status with a payload");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, SPH_ERR_NOT_FOUND, seq, ROT_SIG_LEN);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "error status with a full payload");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, SPH_ERR_TRANSPORT, seq, 0);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "SPH_ERR_TRANSPORT from the RoT");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN - 1);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "payload short");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN + 1);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN, "payload long");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, 0);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "success without a payload");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_ATTEST, 0, seq, 0);
	expect_response_refused(ROT_OP_ATTEST, seq, buf, n, 1, EAT_MAX_TOKEN, "empty token");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_NONCE_READ, 0, seq, EAT_NONCE_MAX + 1);
	expect_response_refused(ROT_OP_NONCE_READ, seq, buf, n, 0, EAT_NONCE_MAX,
	                        "above the range");
	/* Record size against the len field: truncated, trailing, short headers, oversize. */
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN);
	expect_response_refused(ROT_OP_SIGN, seq, buf, n - 1, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "truncated record");
	expect_response_refused(ROT_OP_SIGN, seq, buf, n + 1, ROT_SIG_LEN, ROT_SIG_LEN,
	                        "trailing byte");
	for (size_t len = 0; len < ROT_MB_HDR_LEN; len++)
		expect_response_refused(ROT_OP_SIGN, seq, buf, len, ROT_SIG_LEN, ROT_SIG_LEN,
		                        "short header");
	expect_response_refused(ROT_OP_SIGN, seq, NULL, 0, ROT_SIG_LEN, ROT_SIG_LEN, "no record");
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_ATTEST, 0, seq, ROT_MB_MAX_PAYLOAD + 1);
	expect_response_refused(ROT_OP_ATTEST, seq, buf, n, 1, ROT_MB_MAX_PAYLOAD,
	                        "oversize record");
	/* What the client sees of an oversize record: its buffer, one byte past the maximum. */
	expect_response_refused(ROT_OP_ATTEST, seq, buf, ROT_MB_MAX_FRAME + 1, 1,
	                        ROT_MB_MAX_PAYLOAD, "oversize record, cut");
	rot_put_le32(buf + 12, 0xffffffffu);
	expect_response_refused(ROT_OP_ATTEST, seq, buf, n, 1, ROT_MB_MAX_PAYLOAD, "huge len");

	/* Caller bugs. */
	n = resp_frame(buf, ROT_MB_MAGIC, ROT_OP_SIGN, 0, seq, ROT_SIG_LEN);
	assert_int_equal(rot_mb_check_response(0, seq, buf, n, 0, 64, &p, &pl),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_mb_check_response(ROT_OP_RETIRED_RESET, seq, buf, n, 0, 64, &p, &pl),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_mb_check_response(ROT_OP_SIGN, seq, buf, n, 65, 64, &p, &pl),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(
	        rot_mb_check_response(ROT_OP_SIGN, seq, buf, n, 0, ROT_MB_MAX_PAYLOAD + 1, &p, &pl),
	        SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_mb_check_response(ROT_OP_SIGN, seq, buf, n, 64, 64, NULL, &pl),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_mb_check_response(ROT_OP_SIGN, seq, buf, n, 64, 64, &p, NULL),
	                 SPH_ERR_INVALID_ARG);
}

/*
 * A fake RoT: the test binary itself, run as `serve` with SPHERE_TEST_FAKE_ROT set
 * (main() below). It answers the handshake properly, breaks the protocol in the
 * chosen way on the next request, then answers properly again: the client must
 * not take it back.
 */
#define FAKE_ROT_ENV "SPHERE_TEST_FAKE_ROT"

static const char *const fake_modes[] = {
        "seq",       "op",       "status_positive", "status_payload", "status_transport",
        "len_short", "len_long", "magic",           "oversize",       "truncated",
        "trailing",  "empty",    "hangup",
};

/* Success payload length the fake gives for an op. */
static size_t fake_len(uint16_t op)
{
	switch (op) {
	case ROT_OP_LIFECYCLE:
		return 4;
	case ROT_OP_BOOT_COUNT:
		return 8;
	case ROT_OP_PUBKEY:
		return ROT_PUB_LEN;
	default:
		return 0;
	}
}

static int fake_rot_main(const char *mode)
{
	static uint8_t req[ROT_MB_MAX_FRAME + 1], resp[2 * ROT_MB_MAX_FRAME];
	const int fd = 3;
	unsigned n_req = 0;

	for (;;) {
		struct rot_mb_hdr h, a;
		size_t plen, total;
		ssize_t n = recv(fd, req, sizeof(req), 0);

		if (n <= 0 || rot_mb_hdr_decode(req, (size_t)n, &h) != 0)
			return 0;
		a = (struct rot_mb_hdr){.magic = ROT_MB_MAGIC, .op = h.op, .seq = h.seq};
		plen = fake_len(h.op);
		memset(resp, 0, sizeof(resp));
		if (h.op == ROT_OP_LIFECYCLE)
			rot_put_le32(resp + ROT_MB_HDR_LEN, ROT_LC_DEVELOPMENT);
		if (h.op == ROT_OP_BOOT_COUNT)
			rot_put_le64(resp + ROT_MB_HDR_LEN, 1);
		total = ROT_MB_HDR_LEN + plen;
		if (++n_req == 2) { /* request 1 is the handshake */
			if (strcmp(mode, "seq") == 0) {
				a.seq++;
			} else if (strcmp(mode, "op") == 0) {
				a.op = h.op == ROT_OP_ACCUMULATOR ? ROT_OP_BOOT_COUNT
				                                  : ROT_OP_ACCUMULATOR;
			} else if (strcmp(mode, "status_positive") == 0) {
				a.status = 1;
				plen = 0;
			} else if (strcmp(mode, "status_payload") == 0) {
				a.status = SPH_ERR_STATE;
				plen = plen ? plen : 4;
			} else if (strcmp(mode, "status_transport") == 0) {
				a.status = SPH_ERR_TRANSPORT;
				plen = 0;
			} else if (strcmp(mode, "len_short") == 0) {
				plen = plen ? plen - 1 : 0;
			} else if (strcmp(mode, "len_long") == 0) {
				plen++;
			} else if (strcmp(mode, "magic") == 0) {
				a.magic ^= 0x01000000u;
			} else if (strcmp(mode, "oversize") == 0) {
				plen = ROT_MB_MAX_PAYLOAD + 1;
			}
			total = ROT_MB_HDR_LEN + plen;
			if (strcmp(mode, "truncated") == 0)
				total--;
			if (strcmp(mode, "trailing") == 0)
				total++;
			if (strcmp(mode, "empty") == 0)
				total = 0;
			if (strcmp(mode, "hangup") == 0)
				return 0;
		}
		a.len = (uint32_t)plen;
		rot_mb_hdr_encode(&a, resp);
		if (send(fd, resp, total, MSG_NOSIGNAL) != (ssize_t)total)
			return 1;
	}
}

/* setenv, keeping the old value (or its absence) to put back. */
static char *env_swap(const char *name, const char *value)
{
	const char *old = getenv(name);
	char *saved = old ? strdup(old) : NULL;

	if (value)
		assert_int_equal(setenv(name, value, 1), 0);
	else
		assert_int_equal(unsetenv(name), 0);
	return saved;
}

static void env_restore(const char *name, char *saved)
{
	if (saved)
		setenv(name, saved, 1);
	else
		unsetenv(name);
	free(saved);
}

/* Every response failure on the mailbox breaks the handle for good (formats.md §4.1):
 * later calls fail with SPH_ERR_TRANSPORT even though the peer answers properly again,
 * and rot_reset does not revive it. */
static void test_mailbox_bad_responses(void **state)
{
	char self[PATH_MAX], *dir = tu_mkdtemp(), *otp = tu_path(dir, "otp");
	char *saved_bin, *saved_mode;
	struct rot *r = NULL;
	enum rot_lifecycle lc;
	uint64_t n;
	ssize_t len;
	int pid;

	(void)state;
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(len > 0 && (size_t)len < sizeof(self) - 1);
	self[len] = '\0';
	assert_int_equal(rot_otp_fuse(otp, secret_a, ROT_LC_DEVELOPMENT), 0);
	saved_bin = env_swap("SPHERE_ROT_BIN", self);
	saved_mode = env_swap(FAKE_ROT_ENV, "none");

	/* Control: a well-behaved fake works, and rot_reset restarts it. */
	assert_int_equal(rot_open_mailbox(otp, &r), 0);
	assert_int_equal(rot_boot_count(r, &n), 0);
	assert_int_equal(n, 1);
	pid = rot_pid(r);
	assert_int_equal(rot_reset(r), 0);
	assert_int_not_equal(rot_pid(r), pid);
	assert_int_equal(rot_boot_count(r, &n), 0);
	rot_close(r);

	for (size_t i = 0; i < sizeof(fake_modes) / sizeof(fake_modes[0]); i++) {
		assert_int_equal(setenv(FAKE_ROT_ENV, fake_modes[i], 1), 0);
		r = NULL;
		assert_int_equal(rot_open_mailbox(otp, &r), 0);
		n = 77;
		if (rot_boot_count(r, &n) != SPH_ERR_TRANSPORT)
			fail_msg("fake RoT mode %s: response accepted", fake_modes[i]);
		assert_int_equal(n, 0);
		/* The fake answers properly from now on; the handle stays broken. */
		assert_int_equal(rot_boot_count(r, &n), SPH_ERR_TRANSPORT);
		assert_int_equal(rot_lifecycle(r, &lc), SPH_ERR_TRANSPORT);
		assert_int_equal(rot_reset(r), SPH_ERR_TRANSPORT);
		assert_int_equal(rot_boot_count(r, &n), SPH_ERR_TRANSPORT);
		rot_close(r);
	}
	env_restore(FAKE_ROT_ENV, saved_mode);
	env_restore("SPHERE_ROT_BIN", saved_bin);
	tu_rmtree(dir);
	free(otp);
	free(dir);
}

/* ---- test seams: scalar rejection and a failing random source -------------------------- */

struct fake_okm {
	const uint8_t (*vals)[ROT_SCALAR_LEN];
	size_t n_vals;
	unsigned calls;
	int fail_at; /* attempt that fails with SPH_ERR_RANDOM, or -1 */
};

static int fake_okm_fn(void *ctx, unsigned ctr, uint8_t okm[ROT_SCALAR_LEN])
{
	struct fake_okm *f = ctx;

	assert_int_equal(ctr, f->calls); /* attempts 0, 1, 2, ... in order */
	f->calls++;
	if ((int)ctr == f->fail_at)
		return SPH_ERR_RANDOM;
	memcpy(okm, f->vals[ctr < f->n_vals ? ctr : f->n_vals - 1], ROT_SCALAR_LEN);
	return 0;
}

/* Runs rot_scalar_derive over the candidates; returns its status, the attempt taken. */
static int derive_from(const uint8_t (*vals)[ROT_SCALAR_LEN], size_t n_vals, int fail_at,
                       uint8_t scalar[ROT_SCALAR_LEN], unsigned *ctr, unsigned *calls)
{
	struct fake_okm f = {vals, n_vals, 0, fail_at};
	int rc;

	memset(scalar, 0xee, ROT_SCALAR_LEN);
	rc = rot_scalar_derive(fake_okm_fn, &f, scalar, ctr);
	*calls = f.calls;
	return rc;
}

/* formats.md §4.4: d = OKM is taken only if 1 <= d < n, else the next attempt
 * (info = label || ctr) is tried; 256 rejections are a failure. */
static void test_scalar_derive(void **state)
{
	enum { ZERO, N, N_PLUS_1, ALL_FF, ONE, N_MINUS_1, N_VALS };
	uint8_t v[N_VALS][ROT_SCALAR_LEN], scalar[ROT_SCALAR_LEN], zero[ROT_SCALAR_LEN] = {0};
	uint8_t okm[ROT_SCALAR_LEN], want[ROT_SCALAR_LEN], secret[ROT_SECRET_LEN];
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	unsigned ctr, calls;

	(void)state;
	/* The order n from OpenSSL, independent of the RoT's own copy. */
	assert_non_null(g);
	assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(g), v[N], ROT_SCALAR_LEN),
	                 ROT_SCALAR_LEN);
	EC_GROUP_free(g);
	memset(v[ZERO], 0, ROT_SCALAR_LEN);
	memcpy(v[N_PLUS_1], v[N], ROT_SCALAR_LEN);
	v[N_PLUS_1][31]++; /* n ends in 0x51: no carry */
	memcpy(v[N_MINUS_1], v[N], ROT_SCALAR_LEN);
	v[N_MINUS_1][31]--;
	memset(v[ALL_FF], 0xff, ROT_SCALAR_LEN);
	memset(v[ONE], 0, ROT_SCALAR_LEN);
	v[ONE][31] = 1;

	/* Single candidates: 1 and n - 1 are taken at once; 0, n, n + 1 and 2^256 - 1
	 * are rejected every time, 256 attempts, then SPH_ERR_CRYPTO with nothing left. */
	assert_int_equal(derive_from(&v[ONE], 1, -1, scalar, &ctr, &calls), 0);
	assert_int_equal(ctr, 0);
	assert_int_equal(calls, 1);
	assert_memory_equal(scalar, v[ONE], ROT_SCALAR_LEN);
	assert_int_equal(derive_from(&v[N_MINUS_1], 1, -1, scalar, &ctr, &calls), 0);
	assert_memory_equal(scalar, v[N_MINUS_1], ROT_SCALAR_LEN);
	for (size_t i = ZERO; i <= ALL_FF; i++) {
		assert_int_equal(derive_from(&v[i], 1, -1, scalar, &ctr, &calls), SPH_ERR_CRYPTO);
		assert_int_equal(calls, ROT_HKDF_MAX_TRIES);
		assert_int_equal(ctr, 0);
		assert_memory_equal(scalar, zero, ROT_SCALAR_LEN);
	}
	/* 0, n, n + 1 rejected in turn, then n - 1 taken at attempt 3. */
	{
		uint8_t seq4[4][ROT_SCALAR_LEN];
		memcpy(seq4[0], v[ZERO], ROT_SCALAR_LEN);
		memcpy(seq4[1], v[N], ROT_SCALAR_LEN);
		memcpy(seq4[2], v[N_PLUS_1], ROT_SCALAR_LEN);
		memcpy(seq4[3], v[N_MINUS_1], ROT_SCALAR_LEN);
		assert_int_equal(derive_from((const uint8_t(*)[ROT_SCALAR_LEN])seq4, 4, -1, scalar,
		                             &ctr, &calls),
		                 0);
		assert_int_equal(ctr, 3);
		assert_int_equal(calls, 4);
		assert_memory_equal(scalar, v[N_MINUS_1], ROT_SCALAR_LEN);
		/* The source failing mid-way: its status, nothing left behind. */
		assert_int_equal(derive_from((const uint8_t(*)[ROT_SCALAR_LEN])seq4, 4, 2, scalar,
		                             &ctr, &calls),
		                 SPH_ERR_RANDOM);
		assert_int_equal(calls, 3);
		assert_memory_equal(scalar, zero, ROT_SCALAR_LEN);
	}
	assert_int_equal(rot_scalar_derive(NULL, NULL, scalar, &ctr), SPH_ERR_INVALID_ARG);
	assert_int_equal(rot_scalar_derive(fake_okm_fn, NULL, NULL, &ctr), SPH_ERR_INVALID_ARG);

	/* The retry's info encoding, label || one byte, against HKDF computed independently
	 * (Python `cryptography`) for the secret 00 01 .. 1f. */
	{
		static const struct {
			const char *label;
			unsigned ctr;
			const char *hex;
		} kat[] = {
		        {"identity", 0,
		         "c145a30d972fbeae56489c9b826918a8ef99c568afbd1a6ff7388bcd0f66b7f7"},
		        {"identity", 1,
		         "dae34e82f0a28c7cca986a4851063b1128fae7eb194a37ab0fa71fab5eec40d1"},
		        {"attestation", 2,
		         "5ba58b176eda6703a00d2ad70d22de618fb8b7ff4a8054b7bdea53616f6658a1"},
		        {"identity", 255,
		         "546e45b51aff4f20ee1a89e45eb59ca90f1672e498cd745af64e13d44e441059"},
		};
		for (size_t i = 0; i < sizeof(secret); i++)
			secret[i] = (uint8_t)i;
		for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
			assert_int_equal(sph_hex_decode(kat[i].hex, want, sizeof(want)), 0);
			assert_int_equal(
			        rot_hkdf_label(secret, kat[i].label, kat[i].ctr, okm, sizeof(okm)),
			        0);
			assert_memory_equal(okm, want, sizeof(want));
		}
		assert_int_equal(
		        rot_hkdf_label(secret, "identity", ROT_HKDF_MAX_TRIES, okm, sizeof(okm)),
		        SPH_ERR_INVALID_ARG);
	}
}

static ssize_t getrandom_fails(void *buf, size_t len, unsigned int flags)
{
	(void)buf;
	(void)len;
	(void)flags;
	errno = EIO;
	return -1;
}

static ssize_t getrandom_nothing(void *buf, size_t len, unsigned int flags)
{
	(void)buf;
	(void)len;
	(void)flags;
	errno = 0;
	return 0;
}

/* One byte at a time, with an EINTR every third call: slow, but good. */
static ssize_t getrandom_dribble(void *buf, size_t len, unsigned int flags)
{
	static unsigned calls;

	(void)flags;
	if (len == 0)
		return 0;
	if (++calls % 3 == 0) {
		errno = EINTR;
		return -1;
	}
	return getrandom(buf, 1, 0);
}

static int restore_getrandom(void **state)
{
	(void)state;
	rot_test_set_getrandom(NULL);
	return 0;
}

/* Every consumer of randomness fails closed with SPH_ERR_RANDOM when getrandom(2)
 * fails, and nothing falls back to another source. */
static void test_random_source_fails(void **state)
{
	char *dir = tu_mkdtemp(), *otp = tu_path(dir, "otp"), *otp2 = tu_path(dir, "otp2");
	uint8_t buf[64], zero[ROT_PUB_LEN] = {0}, pt[8] = {1}, sealed[64], pub[ROT_PUB_LEN];
	uint8_t img[ROT_OTP_SIZE];
	struct rot *r = NULL, *r2 = NULL;
	struct rot_core *core = NULL;
	size_t n;
	uint32_t h;
	uint64_t boots;

	(void)state;
	assert_int_equal(rot_otp_fuse(otp, secret_a, ROT_LC_DEVELOPMENT), 0);
	assert_int_equal(rot_open_inproc(otp, &r), 0);

	rot_test_set_getrandom(getrandom_fails);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(rot_random_bytes(buf, sizeof(buf)), SPH_ERR_RANDOM);
	assert_memory_equal(buf, zero, sizeof(buf));
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(rot_random(r, buf, 32), SPH_ERR_RANDOM);
	assert_memory_equal(buf, zero, 32);
	n = 5;
	assert_int_equal(rot_seal(r, NULL, 0, pt, sizeof(pt), sealed, sizeof(sealed), &n),
	                 SPH_ERR_RANDOM);
	assert_int_equal(n, 0);
	h = 5;
	memset(pub, 0xaa, sizeof(pub));
	assert_int_equal(rot_keygen(r, &h, pub), SPH_ERR_RANDOM);
	assert_int_equal(h, 0);
	assert_memory_equal(pub, zero, sizeof(pub));
	/* No device secret without randomness; a given one needs none. */
	assert_int_equal(rot_otp_fuse(otp2, NULL, ROT_LC_DEVELOPMENT), SPH_ERR_RANDOM);
	assert_int_equal(access(otp2, F_OK), -1);
	assert_int_equal(rot_otp_fuse(otp2, secret_b, ROT_LC_DEVELOPMENT), 0);
	/* No boot without a boot seed: power-up and chip reset fail, no boot counted. */
	assert_int_equal(rot_open_inproc(otp2, &r2), SPH_ERR_RANDOM);
	assert_null(r2);
	assert_int_equal(rot_core_new(otp2, &core), SPH_ERR_RANDOM);
	assert_null(core);
	read_otp(otp2, img);
	assert_int_equal(rot_get_le64(img + ROT_OTP_OFF_BOOT_COUNT), 0);
	assert_int_equal(rot_reset(r), SPH_ERR_RANDOM);
	read_otp(otp, img);
	assert_int_equal(rot_get_le64(img + ROT_OTP_OFF_BOOT_COUNT), 1);
	/* The failed reset left the handle without a RoT: it stays dead. */
	assert_int_equal(rot_boot_count(r, &boots), SPH_ERR_TRANSPORT);
	assert_int_equal(rot_random(r, buf, 8), SPH_ERR_TRANSPORT);
	rot_test_set_getrandom(NULL);
	assert_int_equal(rot_reset(r), SPH_ERR_TRANSPORT);
	rot_close(r);
	r = NULL;

	/* A source that returns nothing fails too, rather than spin. */
	rot_test_set_getrandom(getrandom_nothing);
	assert_int_equal(rot_random_bytes(buf, 4), SPH_ERR_RANDOM);
	/* Short reads and EINTR are retried, not failures. */
	rot_test_set_getrandom(getrandom_dribble);
	assert_int_equal(rot_open_inproc(otp, &r), 0);
	assert_int_equal(rot_random(r, buf, sizeof(buf)), 0);
	assert_memory_not_equal(buf, zero, sizeof(buf));
	assert_int_equal(rot_keygen(r, &h, pub), 0);
	assert_int_equal(rot_boot_count(r, &boots), 0);
	assert_int_equal(boots, 2);
	rot_close(r);
	rot_test_set_getrandom(NULL);
	tu_rmtree(dir);
	free(otp2);
	free(otp);
	free(dir);
}

/* ---- the sphere-rot command line ---------------------------------------------------- */

/* Runs sphere-rot with args; returns its exit code, its stdout in out. */
static int run_rot(char *out, size_t cap, const char *const *args)
{
	const char *argv[12];
	int p[2], status;
	size_t n = 0, i;
	pid_t pid;

	argv[0] = "sphere-rot";
	for (i = 0; args[i] && i < 10; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(p[1], 1);
		if (devnull >= 0)
			dup2(devnull, 2);
		execv(rot_bin(), (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t k = read(p[0], out + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_cli(void **state)
{
	char *dir = tu_mkdtemp(), *otp = tu_path(dir, "otp"), *otp2 = tu_path(dir, "otp2");
	char out[8192], id[ROT_DEVICE_ID_LEN + 1], hex[2 * ROT_SECRET_LEN + 1];
	struct rot *r = NULL;
	enum rot_lifecycle lc;

	(void)state;
	assert_int_equal(sph_hex_encode(secret_b, ROT_SECRET_LEN, hex, sizeof(hex)), 0);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"--help", NULL}), 0);
	assert_non_null(strstr(out, "serve --otp PATH --fd N"));
	assert_non_null(strstr(out, "fuse --otp PATH"));
	assert_non_null(strstr(out, "id --otp PATH"));
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){NULL}), 2);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"bogus", NULL}), 2);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"id", NULL}), 2);
	assert_int_equal(
	        run_rot(out, sizeof(out), (const char *[]){"id", "--otp", otp, "extra", NULL}), 2);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"serve", "--otp", otp, NULL}),
	                 2);
	assert_int_equal(run_rot(out, sizeof(out),
	                         (const char *[]){"serve", "--otp", otp, "--fd", "2", NULL}),
	                 2);
	assert_int_equal(run_rot(out, sizeof(out),
	                         (const char *[]){"serve", "--otp", otp, "--fd", "3x", NULL}),
	                 2);
	/* serve on a descriptor that is not a socket fails cleanly. */
	assert_int_equal(run_rot(out, sizeof(out),
	                         (const char *[]){"serve", "--otp", otp, "--fd", "9", NULL}),
	                 1);
	assert_int_equal(
	        run_rot(out, sizeof(out),
	                (const char *[]){"fuse", "--otp", otp, "--lifecycle", "gold", NULL}),
	        2);
	assert_int_equal(
	        run_rot(out, sizeof(out),
	                (const char *[]){"fuse", "--otp", otp, "--secret-hex", "abcd", NULL}),
	        2);
	assert_int_equal(access(otp, F_OK), -1);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"id", "--otp", otp, NULL}), 1);

	assert_int_equal(run_rot(out, sizeof(out),
	                         (const char *[]){"fuse", "--otp", otp, "--lifecycle", "production",
	                                          "--secret-hex", hex, NULL}),
	                 0);
	assert_int_equal(run_rot(out, sizeof(out),
	                         (const char *[]){"fuse", "--otp", otp, "--secret-hex", hex, NULL}),
	                 1);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"id", "--otp", otp, NULL}), 0);
	assert_int_equal(strlen(out), ROT_DEVICE_ID_LEN + 1);
	assert_int_equal(rot_open_inproc(otp, &r), 0);
	assert_int_equal(rot_device_id(r, id), 0);
	assert_int_equal(rot_lifecycle(r, &lc), 0);
	assert_int_equal(lc, ROT_LC_PRODUCTION);
	rot_close(r);
	assert_memory_equal(out, id, ROT_DEVICE_ID_LEN);
	/* A random secret: a different device. */
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"fuse", "--otp", otp2, NULL}),
	                 0);
	assert_int_equal(run_rot(out, sizeof(out), (const char *[]){"id", "--otp", otp2, NULL}), 0);
	assert_int_equal(strlen(out), ROT_DEVICE_ID_LEN + 1);
	assert_memory_not_equal(out, id, ROT_DEVICE_ID_LEN);
	tu_rmtree(dir);
	free(otp2);
	free(otp);
	free(dir);
}

/* ---- runner ---------------------------------------------------------------------------- */

#define ROT_TESTS(t)                                                                               \
	cmocka_unit_test_prestate_setup_teardown(test_device_id_deterministic, fx_setup,           \
	                                         fx_teardown, (void *)(t)),                        \
	        cmocka_unit_test_prestate_setup_teardown(test_known_answers, fx_setup,             \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_sign_verify, fx_setup, fx_teardown,  \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_attest_key_refused, fx_setup,        \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_ecdh_agrees, fx_setup, fx_teardown,  \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_seal_roundtrip, fx_setup,            \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_unseal_refuses_tampering, fx_setup,  \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_random, fx_setup, fx_teardown,       \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_keygen_exhaust_destroy_stale,        \
	                                                 fx_setup, fx_teardown, (void *)(t)),      \
	        cmocka_unit_test_prestate_setup_teardown(test_accumulator, fx_setup, fx_teardown,  \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_nonce_register, fx_setup,            \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_counters, fx_setup, fx_teardown,     \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_lifecycle, fx_setup, fx_teardown,    \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_boot_count, fx_setup, fx_teardown,   \
	                                                 (void *)(t)),                             \
	        cmocka_unit_test_prestate_setup_teardown(test_attest_verifies, fx_setup,           \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_attack_forged_token, fx_setup,       \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_threads_share_a_handle, fx_setup,    \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_bad_otp_files, fx_setup,             \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_transport_process, fx_setup,         \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_mailbox_rot_killed, fx_setup,        \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_mailbox_missing_binary, fx_setup,    \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_reset_restarts, fx_setup,            \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_otp_tamper_counters, fx_setup,       \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_otp_tamper_lifecycle, fx_setup,      \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_otp_tamper_root_hash, fx_setup,      \
	                                                 fx_teardown, (void *)(t)),                \
	        cmocka_unit_test_prestate_setup_teardown(test_otp_in_use, fx_setup, fx_teardown,   \
	                                                 (void *)(t))

int main(int argc, char **argv)
{
	const struct CMUnitTest inproc[] = {ROT_TESTS(&t_inproc)};
	const struct CMUnitTest mailbox[] = {ROT_TESTS(&t_mailbox)};
	const struct CMUnitTest raw[] = {
	        cmocka_unit_test(test_raw_frames_core),
	        cmocka_unit_test(test_raw_frames_server),
	        cmocka_unit_test(test_raw_reset_refused_core),
	        cmocka_unit_test(test_raw_reset_refused_server),
	        cmocka_unit_test(test_response_check),
	        cmocka_unit_test(test_mailbox_bad_responses),
	        cmocka_unit_test(test_scalar_derive),
	        cmocka_unit_test_teardown(test_random_source_fails, restore_getrandom),
	        cmocka_unit_test(test_server_sigterm),
	        cmocka_unit_test(test_cli),
	        cmocka_unit_test(test_otp_root_hash),
	};
	const char *fake = getenv(FAKE_ROT_ENV);
	int failed = 0;

	/* Started by rot_open_mailbox as the RoT binary: play the fake RoT. */
	if (fake && argc > 1 && strcmp(argv[1], "serve") == 0)
		return fake_rot_main(fake);

	failed += cmocka_run_group_tests_name("rot_inproc", inproc, NULL, NULL);
	failed += cmocka_run_group_tests_name("rot_mailbox", mailbox, NULL, NULL);
	failed += cmocka_run_group_tests_name("rot_frames_and_cli", raw, NULL, NULL);
	return failed;
}
