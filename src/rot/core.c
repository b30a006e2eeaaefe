/*
 * rot: the core, i.e. the RoT's state and its request handler. This is the only
 * code that holds private keys. It runs inside `sphere-rot` (mailbox) or inside
 * the caller's process (in-process transport); either way every request
 * arrives as a mailbox frame through rot_core_handle(). No request resets it:
 * a chip reset is rot_core_free() + rot_core_new() by the owner of the core
 * (rot_reset() in client.c), i.e. a fresh core with fresh registers.
 *
 * Keys (docs/formats.md §4.4): HKDF-SHA256 from the OTP device secret, one
 * label per key; the private scalars live in OpenSSL's secure heap when the
 * process set one up (sphere-rot does), as do the device secret and the
 * sealing key (OPENSSL_secure_zalloc).
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "common/common.h"
#include "cose/cose.h"
#include "eat/eat.h"
#include "rot_internal.h"

#define ROT_HKDF_SALT      "sphere-rot-v1"
#define ROT_LABEL_IDENTITY "identity"
#define ROT_LABEL_ATTEST   "attestation"
#define ROT_LABEL_SEALING  "sealing"
#define ROT_SEAL_KEY_LEN   32
#define ROT_SEAL_VERSION   0x01
#define ROT_SEAL_IV_LEN    12
#define ROT_SEAL_TAG_LEN   16
/* Generated key handles: generation << 16 | (ROT_KEY_GENERATED_BASE + slot). */
#define ROT_HANDLE_SLOT_MASK 0xffffu
#define ROT_HANDLE_GEN_SHIFT 16
#define ROT_GEN_MAX          0xffffu

_Static_assert(ROT_SEAL_OVERHEAD == 1 + ROT_SEAL_IV_LEN + ROT_SEAL_TAG_LEN, "sealed blob layout");
_Static_assert(ROT_COMPONENT_RECORD_LEN == 132, "component record layout");
_Static_assert(EAT_TYPE_MAX == 16 && EAT_VERSION_MAX == 32, "record string fields");
_Static_assert(4 + ROT_SEAL_AAD_MAX + ROT_SEAL_MAX + ROT_SEAL_OVERHEAD <= ROT_MB_MAX_PAYLOAD,
               "seal requests fit a frame");
_Static_assert(EAT_MAX_TOKEN <= ROT_MB_MAX_PAYLOAD, "tokens fit a frame");
_Static_assert(ROT_KEY_GENERATED_BASE + ROT_MAX_GENERATED_KEYS <= ROT_HANDLE_SLOT_MASK,
               "slot numbers fit the low half of a handle");
_Static_assert(ROT_HKDF_MAX_TRIES - 1 <= 0xff, "the retry counter is one byte of info");

/* The order n of the P-256 group, big-endian (SEC 2, secp256r1). */
static const uint8_t rot_p256_order[ROT_SCALAR_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

struct rot_key {
	EVP_PKEY *pkey;     /* NULL: empty slot */
	EVP_PKEY_CTX *sign; /* EVP_PKEY_sign_init'ed once, reused for every signature */
	uint8_t pub[ROT_PUB_LEN];
	uint32_t generation; /* generated slots: generation of the current (or last) key */
};

struct rot_core {
	struct rot_otp otp;
	uint8_t *seal_key; /* ROT_SEAL_KEY_LEN bytes, secure heap */
	EVP_CIPHER *gcm;
	EC_GROUP *group; /* P-256 */
	struct rot_key identity;
	struct rot_key attest;
	uint8_t attest_kid[EAT_KID_LEN];
	uint8_t ueid[EAT_UEID_LEN];
	struct rot_key generated[ROT_MAX_GENERATED_KEYS];
	/* Verify: the last imported public key, so a run of verifications with
	 * one key imports it once. */
	uint8_t verify_pub[ROT_PUB_LEN];
	EVP_PKEY *verify_key;
	/* Volatile chip state: a chip reset frees the core and starts a new one. */
	uint8_t acc[ROT_DIGEST_LEN];
	struct eat_component log[EAT_MAX_COMPONENTS];
	size_t n_log;
	uint8_t nonce[EAT_NONCE_MAX];
	size_t nonce_len;
	uint8_t boot_seed[32];
	uint64_t boot_count;
	uint64_t n_refused; /* malformed frames, for rate-limited logging */
};

/* getrandom(2); tests may swap it for a failing stub (rot_test_set_getrandom). */
static rot_getrandom_fn rot_getrandom_src = getrandom;

void rot_test_set_getrandom(rot_getrandom_fn fn)
{
	rot_getrandom_src = fn ? fn : getrandom;
}

int rot_random_bytes(uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = rot_getrandom_src(buf + done, len - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			OPENSSL_cleanse(buf, len);
			sph_log(SPH_LOG_ERROR, "rot", "random_failed", "errno=%d", errno);
			return SPH_ERR_RANDOM;
		}
		done += (size_t)n;
	}
	return 0;
}

/* ---- keys ------------------------------------------------------------------ */

/* HKDF-SHA256(ikm = device secret, salt = "sphere-rot-v1", info = label [|| ctr]). */
static int rot_hkdf(EVP_KDF *kdf, const uint8_t *secret, const char *label, unsigned ctr,
                    uint8_t *out, size_t out_len)
{
	EVP_KDF_CTX *kctx = NULL;
	uint8_t info[32];
	size_t info_len = strlen(label);
	OSSL_PARAM params[5];
	int rc = SPH_ERR_CRYPTO;

	if (info_len + 1 > sizeof(info))
		return SPH_ERR_INVALID_ARG;
	memcpy(info, label, info_len);
	if (ctr > 0)
		info[info_len++] = (uint8_t)ctr;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
	                                              ROT_SECRET_LEN);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)ROT_HKDF_SALT,
	                                              strlen(ROT_HKDF_SALT));
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len);
	params[4] = OSSL_PARAM_construct_end();
	kctx = EVP_KDF_CTX_new(kdf);
	if (!kctx)
		goto out;
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1)
		goto out;
	rc = 0;
out:
	EVP_KDF_CTX_free(kctx); /* clears its copy of the key */
	if (rc != 0)
		OPENSSL_cleanse(out, out_len);
	return rc;
}

int rot_hkdf_label(const uint8_t secret[ROT_SECRET_LEN], const char *label, unsigned ctr,
                   uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (!secret || !label || !out || ctr >= ROT_HKDF_MAX_TRIES)
		goto out;
	rc = SPH_ERR_CRYPTO;
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		goto out;
	rc = rot_hkdf(kdf, secret, label, ctr, out, out_len);
out:
	EVP_KDF_free(kdf);
	return rc;
}

/* 1 <= d < n for a big-endian d, in constant time: the borrow out of d - n. */
static bool rot_scalar_in_range(const uint8_t d[ROT_SCALAR_LEN])
{
	unsigned borrow = 0, any = 0;

	for (size_t i = ROT_SCALAR_LEN; i-- > 0;) {
		unsigned diff = (unsigned)d[i] - rot_p256_order[i] - borrow;
		borrow = (diff >> 8) & 1u;
		any |= d[i];
	}
	return (borrow & ((0u - any) >> 31)) != 0;
}

int rot_scalar_derive(rot_okm_fn okm, void *ctx, uint8_t scalar[ROT_SCALAR_LEN], unsigned *ctr)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (ctr)
		*ctr = 0;
	if (!okm || !scalar || !ctr)
		goto out;
	for (unsigned i = 0; i < ROT_HKDF_MAX_TRIES; i++) {
		rc = okm(ctx, i, scalar);
		if (rc != 0)
			goto out;
		if (rot_scalar_in_range(scalar)) {
			*ctr = i;
			goto out; /* rc == 0 */
		}
	}
	rc = SPH_ERR_CRYPTO; /* 256 rejections: about 2^-8192, or a broken source */
out:
	if (rc != 0 && scalar)
		OPENSSL_cleanse(scalar, ROT_SCALAR_LEN);
	return rc;
}

/* The okm sources: HKDF for derived keys, getrandom(2) for generated ones. */
struct rot_hkdf_src {
	EVP_KDF *kdf;
	const uint8_t *secret;
	const char *label;
};

static int rot_okm_hkdf(void *ctx, unsigned ctr, uint8_t okm[ROT_SCALAR_LEN])
{
	const struct rot_hkdf_src *src = ctx;
	return rot_hkdf(src->kdf, src->secret, src->label, ctr, okm, ROT_SCALAR_LEN);
}

static int rot_okm_random(void *ctx, unsigned ctr, uint8_t okm[ROT_SCALAR_LEN])
{
	(void)ctx;
	(void)ctr;
	return rot_random_bytes(okm, ROT_SCALAR_LEN);
}

static void rot_key_clear(struct rot_key *k)
{
	EVP_PKEY_CTX_free(k->sign);
	EVP_PKEY_free(k->pkey); /* the EC provider frees the scalar with BN_clear_free */
	k->sign = NULL;
	k->pkey = NULL;
	memset(k->pub, 0, sizeof(k->pub));
}

/* Takes ownership of pkey (freed on failure) and prepares its signing context. */
static int rot_key_install(struct rot_key *k, EVP_PKEY *pkey, const uint8_t pub[ROT_PUB_LEN])
{
	int rc = SPH_ERR_CRYPTO;

	k->pkey = pkey;
	memcpy(k->pub, pub, ROT_PUB_LEN);
	k->sign = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!k->sign)
		goto out;
	if (EVP_PKEY_sign_init(k->sign) != 1)
		goto out;
	if (EVP_PKEY_CTX_set_signature_md(k->sign, EVP_sha256()) != 1)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		rot_key_clear(k);
	return rc;
}

/* Makes the P-256 key pair for a private scalar (already checked: 1 <= d < n)
 * and installs it in k. Returns 0 or SPH_ERR_NOMEM / SPH_ERR_CRYPTO. */
static int rot_key_from_scalar(const EC_GROUP *group, const uint8_t scalar[ROT_SCALAR_LEN],
                               struct rot_key *k)
{
	uint8_t pub[ROT_PUB_LEN];
	BIGNUM *d = NULL;
	BN_CTX *bn = NULL;
	EC_POINT *point = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	int rc = SPH_ERR_NOMEM;

	d = BN_secure_new();
	bn = BN_CTX_secure_new();
	point = EC_POINT_new(group);
	bld = OSSL_PARAM_BLD_new();
	if (!d || !bn || !point || !bld)
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (!BN_bin2bn(scalar, ROT_SCALAR_LEN, d))
		goto out;
	if (EC_POINT_mul(group, point, d, NULL, NULL, bn) != 1)
		goto out;
	if (EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), bn) !=
	    sizeof(pub))
		goto out;
	/* A secure BIGNUM makes the builder put the scalar in the secure heap too. */
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
	                                     0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !pctx)
		goto out;
	if (EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	rc = rot_key_install(k, pkey, pub);
	pkey = NULL; /* transferred (or freed) */
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params); /* clears the secure block holding the scalar */
	OSSL_PARAM_BLD_free(bld);
	EC_POINT_free(point);
	BN_CTX_free(bn);
	BN_clear_free(d);
	return rc;
}

/* Makes a key from the first acceptable scalar okm offers (rot_scalar_derive). */
static int rot_key_make(const EC_GROUP *group, rot_okm_fn okm, void *ctx, struct rot_key *k)
{
	uint8_t *scalar = OPENSSL_secure_zalloc(ROT_SCALAR_LEN);
	unsigned ctr = 0;
	int rc = SPH_ERR_NOMEM;

	if (!scalar)
		goto out;
	rc = rot_scalar_derive(okm, ctx, scalar, &ctr);
	if (rc != 0)
		goto out;
	rc = rot_key_from_scalar(group, scalar, k);
out:
	OPENSSL_secure_clear_free(scalar, ROT_SCALAR_LEN);
	return rc;
}

/* Derives a P-256 key from the device secret: d = HKDF(label), retried with
 * info = label || ctr (ctr = 1, 2, ...) while d is 0 or >= the group order. */
static int rot_derive_key(EVP_KDF *kdf, const EC_GROUP *group, const uint8_t *secret,
                          const char *label, struct rot_key *k)
{
	struct rot_hkdf_src src = {kdf, secret, label};
	return rot_key_make(group, rot_okm_hkdf, &src, k);
}

static int rot_key_sign(struct rot_key *k, const uint8_t digest[ROT_DIGEST_LEN],
                        uint8_t sig[ROT_SIG_LEN])
{
	uint8_t der[80];
	size_t der_len = sizeof(der);

	if (EVP_PKEY_sign(k->sign, der, &der_len, digest, ROT_DIGEST_LEN) != 1)
		return SPH_ERR_CRYPTO;
	return cose_sig_der_to_raw(der, der_len, sig) == 0 ? 0 : SPH_ERR_CRYPTO;
}

/* The cose_sign_fn that eat_sign() calls back: the attestation key. */
static int rot_attest_signer(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                             uint8_t sig[COSE_ES256_SIG_LEN])
{
	struct rot_core *c = ctx;
	return rot_key_sign(&c->attest, digest, sig);
}

/* Resolves a key handle. The attestation key is only reachable with allow_attest. */
static int rot_key_lookup(struct rot_core *c, uint32_t handle, bool allow_attest,
                          struct rot_key **out)
{
	uint32_t low = handle & ROT_HANDLE_SLOT_MASK, gen = handle >> ROT_HANDLE_GEN_SHIFT;
	struct rot_key *k;

	*out = NULL;
	if (handle == ROT_KEY_IDENTITY) {
		*out = &c->identity;
		return 0;
	}
	if (handle == ROT_KEY_ATTEST) {
		if (!allow_attest)
			return SPH_ERR_PERMISSION;
		*out = &c->attest;
		return 0;
	}
	if (low < ROT_KEY_GENERATED_BASE || low - ROT_KEY_GENERATED_BASE >= ROT_MAX_GENERATED_KEYS)
		return SPH_ERR_NOT_FOUND;
	k = &c->generated[low - ROT_KEY_GENERATED_BASE];
	if (!k->pkey || gen == 0 || k->generation != gen)
		return SPH_ERR_NOT_FOUND;
	*out = k;
	return 0;
}

/* ---- power-up ---------------------------------------------------------------- */

/* A boot: a new boot seed and one more boot in OTP. The volatile state (the
 * accumulator, log, nonce register, generated keys) starts zeroed with the core. */
static int rot_boot(struct rot_core *c)
{
	int rc;

	rc = rot_random_bytes(c->boot_seed, sizeof(c->boot_seed));
	if (rc != 0)
		return rc;
	return rot_otp_boot(&c->otp, &c->boot_count);
}

int rot_core_new(const char *otp_path, struct rot_core **out)
{
	struct rot_core *c = NULL;
	uint8_t *secret = NULL;
	EVP_KDF *kdf = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!out || !otp_path)
		goto out;
	rc = SPH_ERR_NOMEM;
	c = OPENSSL_zalloc(sizeof(*c));
	secret = OPENSSL_secure_zalloc(ROT_SECRET_LEN);
	if (!c || !secret)
		goto out;
	c->otp.fd = -1;
	c->seal_key = OPENSSL_secure_zalloc(ROT_SEAL_KEY_LEN);
	if (!c->seal_key)
		goto out;
	rc = rot_otp_open(otp_path, &c->otp, secret);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	c->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	c->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (!kdf || !c->group || !c->gcm)
		goto out;
	rc = rot_derive_key(kdf, c->group, secret, ROT_LABEL_IDENTITY, &c->identity);
	if (rc != 0)
		goto out;
	rc = rot_derive_key(kdf, c->group, secret, ROT_LABEL_ATTEST, &c->attest);
	if (rc != 0)
		goto out;
	rc = rot_hkdf(kdf, secret, ROT_LABEL_SEALING, 0, c->seal_key, ROT_SEAL_KEY_LEN);
	if (rc != 0)
		goto out;
	rc = eat_kid_from_pub(c->attest.pub, c->attest_kid);
	if (rc != 0)
		goto out;
	rc = eat_ueid_from_pub(c->identity.pub, c->ueid);
	if (rc != 0)
		goto out;
	rc = rot_boot(c);
	if (rc != 0)
		goto out;
	sph_log(SPH_LOG_DEBUG, "rot", "core_started", "boot_count=%llu lifecycle=%u",
	        (unsigned long long)c->boot_count, (unsigned)c->otp.lifecycle);
	*out = c;
	c = NULL; /* transferred */
out:
	if (rc != 0)
		sph_log(SPH_LOG_WARN, "rot", "core_failed", "status=%d reason=\"%s\"", rc,
		        sph_strerror(rc));
	OPENSSL_secure_clear_free(secret, ROT_SECRET_LEN);
	EVP_KDF_free(kdf);
	rot_core_free(c);
	return rc;
}

void rot_core_free(struct rot_core *c)
{
	if (!c)
		return;
	rot_key_clear(&c->identity);
	rot_key_clear(&c->attest);
	for (size_t i = 0; i < ROT_MAX_GENERATED_KEYS; i++)
		rot_key_clear(&c->generated[i]);
	EVP_PKEY_free(c->verify_key);
	EVP_CIPHER_free(c->gcm);
	EC_GROUP_free(c->group);
	OPENSSL_secure_clear_free(c->seal_key, ROT_SEAL_KEY_LEN);
	rot_otp_close(&c->otp);
	OPENSSL_clear_free(c, sizeof(*c));
}

/* ---- operations ----------------------------------------------------------------
 * Each handler gets a request payload whose length the dispatcher has checked
 * against the op table, and writes at most ROT_MB_MAX_PAYLOAD bytes. */

typedef int (*rot_op_fn)(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len);

static int rot_op_pubkey(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	struct rot_key *k;
	int rc;

	(void)in_len;
	rc = rot_key_lookup(c, rot_get_le32(in), true, &k);
	if (rc != 0)
		return rc;
	memcpy(out, k->pub, ROT_PUB_LEN);
	*out_len = ROT_PUB_LEN;
	return 0;
}

static int rot_op_sign(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t *out_len)
{
	struct rot_key *k;
	int rc;

	(void)in_len;
	rc = rot_key_lookup(c, rot_get_le32(in), false, &k);
	if (rc != 0)
		return rc;
	rc = rot_key_sign(k, in + 4, out);
	if (rc == 0)
		*out_len = ROT_SIG_LEN;
	return rc;
}

static int rot_op_verify(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	const uint8_t *pub = in, *digest = in + ROT_PUB_LEN,
	              *sig = in + ROT_PUB_LEN + ROT_DIGEST_LEN;
	EVP_PKEY *key = NULL;
	int rc;

	(void)in_len;
	(void)out;
	(void)out_len;
	if (!c->verify_key || memcmp(c->verify_pub, pub, ROT_PUB_LEN) != 0) {
		if (cose_p256_import(pub, &key) != 0)
			return SPH_ERR_MALFORMED;
		EVP_PKEY_free(c->verify_key);
		c->verify_key = key;
		memcpy(c->verify_pub, pub, ROT_PUB_LEN);
	}
	rc = cose_es256_verify_digest(c->verify_key, digest, sig);
	if (rc != 0 && rc != SPH_ERR_BAD_SIGNATURE)
		rc = SPH_ERR_CRYPTO;
	return rc;
}

static int rot_op_ecdh(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t *out_len)
{
	uint32_t handle = rot_get_le32(in);
	struct rot_key *k;
	EVP_PKEY *peer = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	size_t n = ROT_ECDH_LEN;
	int rc;

	(void)in_len;
	/* Raw static DH with a long-term key would be an oracle on it: only keys
	 * made by KEYGEN do ECDH. */
	rc = SPH_ERR_PERMISSION;
	if (handle == ROT_KEY_IDENTITY || handle == ROT_KEY_ATTEST)
		goto out;
	rc = rot_key_lookup(c, handle, false, &k);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (cose_p256_import(in + 4, &peer) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	dctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, peer) != 1)
		goto out;
	if (EVP_PKEY_derive(dctx, out, &n) != 1 || n != ROT_ECDH_LEN)
		goto out;
	*out_len = ROT_ECDH_LEN;
	rc = 0;
out:
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(peer);
	return rc;
}

static int rot_op_keygen(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	struct rot_key *k = NULL;
	size_t slot;
	int rc;

	(void)in;
	(void)in_len;
	/* A slot whose generation counter is spent is retired, so a handle is never reissued. */
	for (slot = 0; slot < ROT_MAX_GENERATED_KEYS; slot++) {
		if (!c->generated[slot].pkey && c->generated[slot].generation < ROT_GEN_MAX)
			break;
	}
	rc = SPH_ERR_EXHAUSTED;
	if (slot == ROT_MAX_GENERATED_KEYS)
		goto out;
	k = &c->generated[slot];
	/* The scalar comes from getrandom(2) through the same rejection loop as
	 * derived keys: no other random source, and SPH_ERR_RANDOM if it fails. */
	rc = rot_key_make(c->group, rot_okm_random, NULL, k);
	if (rc != 0)
		goto out;
	k->generation++;
	rot_put_le32(out, k->generation << ROT_HANDLE_GEN_SHIFT |
	                          (uint32_t)(ROT_KEY_GENERATED_BASE + slot));
	memcpy(out + 4, k->pub, ROT_PUB_LEN);
	*out_len = 4 + ROT_PUB_LEN;
out:
	return rc;
}

static int rot_op_key_destroy(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                              size_t *out_len)
{
	uint32_t handle = rot_get_le32(in);
	struct rot_key *k;
	int rc;

	(void)in_len;
	(void)out;
	(void)out_len;
	if (handle == ROT_KEY_IDENTITY || handle == ROT_KEY_ATTEST)
		return SPH_ERR_PERMISSION; /* derived keys live as long as the device */
	rc = rot_key_lookup(c, handle, false, &k);
	if (rc != 0)
		return rc;
	rot_key_clear(k);
	return 0;
}

static int rot_op_seal(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t *out_len)
{
	size_t aad_len = rot_get_le16(in), pt_len = rot_get_le16(in + 2);
	const uint8_t *aad, *pt;
	uint8_t *iv = out + 1, *ct = out + 1 + ROT_SEAL_IV_LEN, *tag;
	EVP_CIPHER_CTX *ctx = NULL;
	int n, rc;

	if (aad_len > ROT_SEAL_AAD_MAX || pt_len > ROT_SEAL_MAX)
		return SPH_ERR_TOO_LARGE;
	if (4 + aad_len + pt_len != in_len)
		return SPH_ERR_MALFORMED;
	aad = in + 4;
	pt = aad + aad_len;
	tag = ct + pt_len;
	out[0] = ROT_SEAL_VERSION;
	rc = rot_random_bytes(iv, ROT_SEAL_IV_LEN);
	if (rc != 0)
		return rc;
	rc = SPH_ERR_CRYPTO;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_EncryptInit_ex2(ctx, c->gcm, c->seal_key, iv, NULL) != 1)
		goto out;
	/* The version byte is authenticated along with the caller's AAD. */
	if (EVP_EncryptUpdate(ctx, NULL, &n, out, 1) != 1)
		goto out;
	if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	n = 0;
	if (pt_len > 0 && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)pt_len) != 1)
		goto out;
	if ((size_t)n != pt_len)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, ct + n, &n) != 1 || n != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ROT_SEAL_TAG_LEN, tag) != 1)
		goto out;
	*out_len = pt_len + ROT_SEAL_OVERHEAD;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx); /* wipes the key schedule */
	return rc;
}

static int rot_op_unseal(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	size_t aad_len = rot_get_le16(in), sealed_len = rot_get_le16(in + 2), ct_len;
	const uint8_t *aad, *sealed;
	uint8_t tag[ROT_SEAL_TAG_LEN];
	EVP_CIPHER_CTX *ctx = NULL;
	int n, rc;

	if (aad_len > ROT_SEAL_AAD_MAX || sealed_len > ROT_SEAL_MAX + ROT_SEAL_OVERHEAD)
		return SPH_ERR_TOO_LARGE;
	if (4 + aad_len + sealed_len != in_len)
		return SPH_ERR_MALFORMED;
	aad = in + 4;
	sealed = aad + aad_len;
	/* Anything that is not a blob this device sealed fails as one: SPH_ERR_AUTH. */
	if (sealed_len < ROT_SEAL_OVERHEAD || sealed[0] != ROT_SEAL_VERSION)
		return SPH_ERR_AUTH;
	ct_len = sealed_len - ROT_SEAL_OVERHEAD;
	memcpy(tag, sealed + 1 + ROT_SEAL_IV_LEN + ct_len, ROT_SEAL_TAG_LEN);
	rc = SPH_ERR_CRYPTO;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_DecryptInit_ex2(ctx, c->gcm, c->seal_key, sealed + 1, NULL) != 1)
		goto out;
	if (EVP_DecryptUpdate(ctx, NULL, &n, sealed, 1) != 1)
		goto out;
	if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	n = 0;
	if (ct_len > 0 &&
	    EVP_DecryptUpdate(ctx, out, &n, sealed + 1 + ROT_SEAL_IV_LEN, (int)ct_len) != 1)
		goto out;
	if ((size_t)n != ct_len)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ROT_SEAL_TAG_LEN, tag) != 1)
		goto out;
	rc = SPH_ERR_AUTH;
	if (EVP_DecryptFinal_ex(ctx, out + n, &n) != 1 || n != 0)
		goto out;
	*out_len = ct_len;
	rc = 0;
out:
	if (rc != 0)
		OPENSSL_cleanse(out, ct_len); /* never hand out unauthenticated plaintext */
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int rot_op_random(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	size_t len = rot_get_le16(in);
	int rc;

	(void)c;
	(void)in_len;
	if (len == 0)
		return SPH_ERR_INVALID_ARG;
	if (len > ROT_RANDOM_MAX)
		return SPH_ERR_TOO_LARGE;
	rc = rot_random_bytes(out, len);
	if (rc == 0)
		*out_len = len;
	return rc;
}

/* A NUL-padded text field: 1..n printable ASCII bytes, then only NULs. */
static int rot_text_field(const uint8_t *p, size_t n, char *out)
{
	size_t len = 0;

	while (len < n && p[len] != 0) {
		if (p[len] < 0x20 || p[len] > 0x7e)
			return SPH_ERR_MALFORMED;
		len++;
	}
	if (len == 0)
		return SPH_ERR_MALFORMED;
	for (size_t i = len; i < n; i++) {
		if (p[i] != 0)
			return SPH_ERR_MALFORMED;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

static int rot_op_measure(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                          size_t *out_len)
{
	struct eat_component comp;
	uint8_t buf[2 * ROT_DIGEST_LEN];
	int rc;

	(void)in_len;
	memset(&comp, 0, sizeof(comp));
	if (rot_text_field(in, 16, comp.type) != 0 ||
	    rot_text_field(in + 32, 32, comp.version) != 0)
		return SPH_ERR_MALFORMED;
	memcpy(comp.component_id, in + 16, 16);
	comp.security_version = rot_get_le32(in + 64);
	memcpy(comp.digest, in + 68, 32);
	memcpy(comp.signer_id, in + 100, 32);
	if (c->n_log == EAT_MAX_COMPONENTS)
		return SPH_ERR_EXHAUSTED;
	memcpy(buf, c->acc, ROT_DIGEST_LEN);
	rc = eat_measurement_event(&comp, buf + ROT_DIGEST_LEN);
	if (rc != 0)
		return rc;
	if (EVP_Digest(buf, sizeof(buf), c->acc, NULL, EVP_sha256(), NULL) != 1)
		return SPH_ERR_CRYPTO; /* cannot happen once SHA-256 is loaded; acc untouched then
		                        */
	c->log[c->n_log++] = comp;
	memcpy(out, c->acc, ROT_DIGEST_LEN);
	*out_len = ROT_DIGEST_LEN;
	return 0;
}

static int rot_op_accumulator(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                              size_t *out_len)
{
	(void)in;
	(void)in_len;
	memcpy(out, c->acc, ROT_DIGEST_LEN);
	*out_len = ROT_DIGEST_LEN;
	return 0;
}

static int rot_op_nonce_load(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t *out_len)
{
	(void)out;
	(void)out_len;
	memset(c->nonce, 0, sizeof(c->nonce));
	memcpy(c->nonce, in, in_len);
	c->nonce_len = in_len;
	return 0;
}

static int rot_op_nonce_read(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t *out_len)
{
	(void)in;
	(void)in_len;
	memcpy(out, c->nonce, c->nonce_len);
	*out_len = c->nonce_len;
	return 0;
}

static uint32_t rot_psa_lifecycle(enum rot_lifecycle lc)
{
	switch (lc) {
	case ROT_LC_BLANK:
		return EAT_LC_ASSEMBLY_AND_TEST;
	case ROT_LC_DEVELOPMENT:
		return EAT_LC_NON_PSA_ROT_DEBUG;
	case ROT_LC_PRODUCTION:
		return EAT_LC_SECURED;
	case ROT_LC_DECOMMISSIONED:
		return EAT_LC_DECOMMISSIONED;
	}
	return EAT_LC_UNKNOWN;
}

static int rot_op_attest(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                         size_t *out_len)
{
	struct eat_claims claims;
	enum rot_lifecycle lc;
	int rc;

	/* Evidence with nothing measured would attest to nothing: refuse it. */
	if (c->n_log == 0)
		return SPH_ERR_STATE;
	/* Nor does the RoT sign a lifecycle whose fuses were tampered with. */
	rc = rot_otp_lifecycle(&c->otp, &lc);
	if (rc != 0)
		return rc;
	rot_op_nonce_load(c, in, in_len, NULL, NULL);
	/* Every claim comes from the RoT's own state, never from the request. */
	memset(&claims, 0, sizeof(claims));
	memcpy(claims.nonce, c->nonce, c->nonce_len);
	claims.nonce_len = c->nonce_len;
	memcpy(claims.ueid, c->ueid, sizeof(claims.ueid));
	claims.lifecycle = rot_psa_lifecycle(lc);
	memcpy(claims.implementation_id, eat_implementation_id, sizeof(claims.implementation_id));
	memcpy(claims.boot_seed, c->boot_seed, sizeof(claims.boot_seed));
	claims.boot_count = c->boot_count;
	memcpy(claims.accumulator, c->acc, sizeof(claims.accumulator));
	claims.n_components = c->n_log;
	memcpy(claims.components, c->log, c->n_log * sizeof(c->log[0]));
	rc = eat_sign(&claims, rot_attest_signer, c, c->attest_kid, sizeof(c->attest_kid), out,
	              EAT_MAX_TOKEN, out_len);
	if (rc != 0)
		*out_len = 0;
	return rc;
}

static int rot_op_counter_read(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                               size_t *out_len)
{
	uint32_t idx = rot_get_le32(in), value;
	int rc;

	(void)in_len;
	if (idx >= ROT_COUNTERS)
		return SPH_ERR_INVALID_ARG;
	rc = rot_otp_counter_read(&c->otp, idx, &value);
	if (rc != 0)
		return rc;
	rot_put_le32(out, value);
	*out_len = 4;
	return 0;
}

static int rot_op_counter_advance(struct rot_core *c, const uint8_t *in, size_t in_len,
                                  uint8_t *out, size_t *out_len)
{
	uint32_t idx = rot_get_le32(in), value = rot_get_le32(in + 4);
	int rc;

	(void)in_len;
	(void)out;
	(void)out_len;
	if (idx >= ROT_COUNTERS)
		return SPH_ERR_INVALID_ARG;
	rc = rot_otp_counter_advance(&c->otp, idx, value);
	if (rc == SPH_ERR_ROLLBACK)
		sph_log(SPH_LOG_WARN, "rot", "rollback_refused", "counter=%u value=%u",
		        (unsigned)idx, (unsigned)value);
	return rc;
}

static int rot_op_lifecycle(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t *out_len)
{
	enum rot_lifecycle lc;
	int rc;

	(void)in;
	(void)in_len;
	rc = rot_otp_lifecycle(&c->otp, &lc);
	if (rc != 0)
		return rc;
	rot_put_le32(out, (uint32_t)lc);
	*out_len = 4;
	return 0;
}

static int rot_op_boot_count(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t *out_len)
{
	(void)in;
	(void)in_len;
	rot_put_le64(out, c->boot_count);
	*out_len = 8;
	return 0;
}

static int rot_op_root_hash(struct rot_core *c, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t *out_len)
{
	int rc;

	(void)in;
	(void)in_len;
	rc = rot_otp_root_hash(&c->otp, out);
	if (rc != 0)
		return rc;
	*out_len = 32;
	return 0;
}

/* The op table: handler and the exact request payload length range. An op
 * without a handler is refused as malformed. */
static const struct {
	rot_op_fn fn;
	size_t min, max;
} rot_ops[ROT_OP_MAX + 1] = {
        [ROT_OP_PUBKEY] = {rot_op_pubkey, 4, 4},
        [ROT_OP_SIGN] = {rot_op_sign, 4 + ROT_DIGEST_LEN, 4 + ROT_DIGEST_LEN},
        [ROT_OP_VERIFY] = {rot_op_verify, ROT_PUB_LEN + ROT_DIGEST_LEN + ROT_SIG_LEN,
                           ROT_PUB_LEN + ROT_DIGEST_LEN + ROT_SIG_LEN},
        [ROT_OP_ECDH] = {rot_op_ecdh, 4 + ROT_PUB_LEN, 4 + ROT_PUB_LEN},
        [ROT_OP_KEYGEN] = {rot_op_keygen, 0, 0},
        [ROT_OP_KEY_DESTROY] = {rot_op_key_destroy, 4, 4},
        [ROT_OP_SEAL] = {rot_op_seal, 4, 4 + ROT_SEAL_AAD_MAX + ROT_SEAL_MAX},
        [ROT_OP_UNSEAL] = {rot_op_unseal, 4,
                           4 + ROT_SEAL_AAD_MAX + ROT_SEAL_MAX + ROT_SEAL_OVERHEAD},
        [ROT_OP_RANDOM] = {rot_op_random, 2, 2},
        [ROT_OP_MEASURE] = {rot_op_measure, ROT_COMPONENT_RECORD_LEN, ROT_COMPONENT_RECORD_LEN},
        [ROT_OP_ACCUMULATOR] = {rot_op_accumulator, 0, 0},
        [ROT_OP_NONCE_LOAD] = {rot_op_nonce_load, EAT_NONCE_MIN, EAT_NONCE_MAX},
        [ROT_OP_NONCE_READ] = {rot_op_nonce_read, 0, 0},
        [ROT_OP_ATTEST] = {rot_op_attest, EAT_NONCE_MIN, EAT_NONCE_MAX},
        [ROT_OP_COUNTER_READ] = {rot_op_counter_read, 4, 4},
        [ROT_OP_COUNTER_ADVANCE] = {rot_op_counter_advance, 8, 8},
        [ROT_OP_LIFECYCLE] = {rot_op_lifecycle, 0, 0},
        [ROT_OP_BOOT_COUNT] = {rot_op_boot_count, 0, 0},
        /* ROT_OP_RETIRED_RESET (19) has no handler: refused like any unknown op. */
        [ROT_OP_ROOT_HASH] = {rot_op_root_hash, 0, 0},
};

/* Logs a refused frame: the first few, then at powers of two, so a flood of
 * garbage from the normal world cannot flood the log. */
static void rot_log_refused(struct rot_core *c, size_t len, const struct rot_mb_hdr *h)
{
	uint64_t n = c ? ++c->n_refused : 1;

	if (n <= 8 || (n & (n - 1)) == 0)
		sph_log(SPH_LOG_WARN, "rot", "frame_refused", "len=%zu op=%u seq=%u count=%llu",
		        len, (unsigned)h->op, (unsigned)h->seq, (unsigned long long)n);
}

size_t rot_core_handle(struct rot_core *c, const uint8_t *req, size_t req_len, uint8_t *resp,
                       size_t cap)
{
	struct rot_mb_hdr in, hdr = {.magic = ROT_MB_MAGIC, .status = SPH_ERR_MALFORMED};
	uint8_t *payload = resp + ROT_MB_HDR_LEN;
	size_t out_len = 0;
	int rc;

	if (!resp || cap < ROT_MB_HDR_LEN)
		return 0;
	if (!req || rot_mb_hdr_decode(req, req_len, &in) != 0) {
		/* Echo what can be read so the peer can match the refusal. */
		if (req)
			(void)rot_mb_hdr_peek(req, req_len, &in);
		else
			memset(&in, 0, sizeof(in));
		hdr.op = rot_op_known(in.op) ? in.op : 0;
		hdr.seq = in.seq;
		rot_log_refused(c, req_len, &in);
		goto out;
	}
	hdr.op = in.op;
	hdr.seq = in.seq;
	if (in.status != 0 || in.op == 0 || !rot_ops[in.op].fn || in.len < rot_ops[in.op].min ||
	    in.len > rot_ops[in.op].max) {
		rot_log_refused(c, req_len, &in);
		goto out;
	}
	hdr.status = SPH_ERR_BUFFER_TOO_SMALL;
	if (cap < ROT_MB_MAX_FRAME)
		goto out;
	hdr.status = SPH_ERR_STATE;
	if (!c)
		goto out;
	rc = rot_ops[in.op].fn(c, req + ROT_MB_HDR_LEN, in.len, payload, &out_len);
	if (rc != 0) {
		OPENSSL_cleanse(payload, ROT_MB_MAX_PAYLOAD); /* nothing partial leaves */
		out_len = 0;
		sph_log(rc == SPH_ERR_PERMISSION ? SPH_LOG_WARN : SPH_LOG_DEBUG, "rot",
		        "request_refused", "op=%u status=%d", (unsigned)in.op, rc);
	}
	hdr.status = (int16_t)rc;
out:
	hdr.len = (uint32_t)out_len;
	rot_mb_hdr_encode(&hdr, resp);
	return ROT_MB_HDR_LEN + out_len;
}
