/*
 * rot: the Pluton-style root of trust, the only code that ever holds a private key.
 *
 * The RoT reads its per-device secret and lifecycle from OTP, derives its keys
 * deterministically (HKDF-SHA256 -> P-256) and answers requests. Two
 * transports give the same API and semantics:
 *  - mailbox: the RoT runs as its own process (the "dedicated core",
 *    `sphere-rot`), reached over a SOCK_SEQPACKET socketpair with fixed,
 *    length-checked frames; key material exists only in that process (mlocked,
 *    not dumpable, wiped on exit);
 *  - in-process: the same request handler called directly, for fleets of
 *    thousands of emulated devices in one process.
 * Every call goes through the same frame encoder and request handler, so both
 * transports are exercised by the same tests. A struct rot may be shared by
 * threads (calls are serialised).
 *
 * Keys: ROT_KEY_IDENTITY is the device identity (device id = hex of its X||Y;
 * signs arbitrary digests, e.g. for TLS). ROT_KEY_ATTEST signs attestation
 * tokens only and is never offered for arbitrary digests, so no caller can
 * forge evidence by asking for a signature over a chosen digest. Keys made by
 * rot_keygen() get handles >= ROT_KEY_GENERATED_BASE and live until
 * rot_key_destroy() or a chip reset.
 */
#ifndef SPHERE_ROT_H
#define SPHERE_ROT_H

#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#include "eat/eat.h"

#define ROT_KEY_IDENTITY 0u
#define ROT_KEY_ATTEST 1u
#define ROT_KEY_GENERATED_BASE 0x100u
#define ROT_MAX_GENERATED_KEYS 32

#define ROT_PUB_LEN 65
#define ROT_SIG_LEN 64
#define ROT_DIGEST_LEN 32
#define ROT_SECRET_LEN 32
#define ROT_DEVICE_ID_LEN 128 /* hex characters, without the NUL */
#define ROT_ECDH_LEN 32
#define ROT_RANDOM_MAX 1024     /* bytes per rot_random() call */
#define ROT_SEAL_MAX 4096       /* plaintext bytes per rot_seal() call */
#define ROT_SEAL_AAD_MAX 256
#define ROT_SEAL_OVERHEAD 29    /* version(1) || iv(12) || ciphertext || tag(16) */
#define ROT_COUNTERS 16         /* anti-rollback counters */
#define ROT_COUNTER_MAX 256     /* one-way bits per counter */

/* Device lifecycle, as fused in OTP (one-way: it only moves forward). */
enum rot_lifecycle {
	ROT_LC_BLANK = 0,
	ROT_LC_DEVELOPMENT = 1,
	ROT_LC_PRODUCTION = 2,
	ROT_LC_DECOMMISSIONED = 3,
};

struct rot;

/* ---- OTP (a file until the virtual chip owns it) --------------------------- */

/* Creates an OTP file at path holding a fresh random device secret (or the
 * given one, for tests) and the lifecycle. Fails with SPH_ERR_STATE if the file
 * exists. Returns 0 or a negative status. */
int rot_otp_fuse(const char *path, const uint8_t *secret /* ROT_SECRET_LEN or NULL */,
		 enum rot_lifecycle lifecycle);

/* ---- opening --------------------------------------------------------------- */

/* Opens an in-process RoT over the OTP file. Returns 0 and *out (free with
 * rot_close), or a negative status. */
int rot_open_inproc(const char *otp_path, struct rot **out);

/* Starts the RoT process (`sphere-rot`, found next to the running executable,
 * or at $SPHERE_ROT_BIN) over the OTP file and connects to its mailbox.
 * Returns 0 and *out, or a negative status. */
int rot_open_mailbox(const char *otp_path, struct rot **out);

/* Closes the handle; for the mailbox, the RoT process wipes its keys and exits.
 * Accepts NULL. */
void rot_close(struct rot *r);

/* Process id of the mailbox RoT, or 0 for an in-process one. */
int rot_pid(const struct rot *r);

/* ---- identity and keys ----------------------------------------------------- */

/* Writes the 65-byte uncompressed public key of key. Returns 0 or a status
 * (SPH_ERR_NOT_FOUND for an unknown handle). */
int rot_pubkey(struct rot *r, uint32_t key, uint8_t pub[ROT_PUB_LEN]);
/* Writes the device id (128 lowercase hex characters of the identity X||Y) and a NUL. */
int rot_device_id(struct rot *r, char id[ROT_DEVICE_ID_LEN + 1]);
/* ECDSA P-256 over a SHA-256 digest, r||s. ROT_KEY_ATTEST is refused
 * (SPH_ERR_PERMISSION). Returns 0 or a status. */
int rot_sign(struct rot *r, uint32_t key, const uint8_t digest[ROT_DIGEST_LEN],
	     uint8_t sig[ROT_SIG_LEN]);
/* Verifies an r||s signature. Returns 0, SPH_ERR_BAD_SIGNATURE, SPH_ERR_MALFORMED (bad point). */
int rot_verify(struct rot *r, const uint8_t pub[ROT_PUB_LEN], const uint8_t digest[ROT_DIGEST_LEN],
	       const uint8_t sig[ROT_SIG_LEN]);
/* ECDH with key and a peer point; writes the 32-byte shared X coordinate.
 * ROT_KEY_ATTEST is refused. Returns 0 or a status. */
int rot_ecdh(struct rot *r, uint32_t key, const uint8_t peer[ROT_PUB_LEN],
	     uint8_t secret[ROT_ECDH_LEN]);
/* Generates a P-256 key pair inside the RoT. Returns 0 with its handle and public
 * key, or SPH_ERR_EXHAUSTED when all slots are used. */
int rot_keygen(struct rot *r, uint32_t *handle, uint8_t pub[ROT_PUB_LEN]);
/* Destroys a generated key (wiped). Returns 0 or SPH_ERR_NOT_FOUND. */
int rot_key_destroy(struct rot *r, uint32_t handle);

/* ---- sealing and randomness ------------------------------------------------ */

/* AES-256-GCM with the device-unique sealing key and a random IV. out receives
 * pt_len + ROT_SEAL_OVERHEAD bytes. Returns 0 and *out_len, or a status. */
int rot_seal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
	     uint8_t *out, size_t cap, size_t *out_len);
/* Opens what rot_seal produced on this device. Returns 0, or SPH_ERR_AUTH if the
 * data, the AAD or the device differ. */
int rot_unseal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
	       size_t sealed_len, uint8_t *out, size_t cap, size_t *out_len);
/* len (<= ROT_RANDOM_MAX) bytes from getrandom(2). Fails closed: SPH_ERR_RANDOM. */
int rot_random(struct rot *r, uint8_t *buf, size_t len);

/* ---- measured boot --------------------------------------------------------- */

/* Records a booted component: appends it to the measurement log and extends
 * the accumulator with its event (eat_measurement_event). acc (may be NULL)
 * receives the new value. SPH_ERR_EXHAUSTED after EAT_MAX_COMPONENTS. */
int rot_measure(struct rot *r, const struct eat_component *c, uint8_t acc[ROT_DIGEST_LEN]);
/* Reads the accumulator (32 zero bytes after a chip reset). */
int rot_accumulator(struct rot *r, uint8_t acc[ROT_DIGEST_LEN]);

/* ---- nonce register and attestation --------------------------------------- */

/* Loads a verifier's challenge (EAT_NONCE_MIN..EAT_NONCE_MAX bytes) into the nonce register. */
int rot_nonce_load(struct rot *r, const uint8_t *nonce, size_t len);
/* Reads the nonce register; *len is 0 if empty. buf holds EAT_NONCE_MAX bytes. */
int rot_nonce_read(struct rot *r, uint8_t buf[EAT_NONCE_MAX], size_t *len);
/* Loads nonce into the register and returns an EAT signed with ROT_KEY_ATTEST
 * over the RoT's own state (lifecycle, boot count and seed, accumulator and
 * measurement log). out holds up to EAT_MAX_TOKEN bytes. */
int rot_attest(struct rot *r, const uint8_t *nonce, size_t nonce_len, uint8_t *out, size_t cap,
	       size_t *out_len);

/* ---- one-way state --------------------------------------------------------- */

/* Reads anti-rollback counter idx (< ROT_COUNTERS). */
int rot_counter_read(struct rot *r, unsigned idx, uint32_t *value);
/* Raises counter idx to value by burning OTP bits. value below the current one:
 * SPH_ERR_ROLLBACK (nothing changes); above ROT_COUNTER_MAX: SPH_ERR_EXHAUSTED. */
int rot_counter_advance(struct rot *r, unsigned idx, uint32_t value);
/* Reads the fused lifecycle state. */
int rot_lifecycle(struct rot *r, enum rot_lifecycle *lc);
/* Boot count: chip resets since the OTP was fused, counting the current one. */
int rot_boot_count(struct rot *r, uint64_t *count);

/* Chip reset: clears the accumulator, measurement log, nonce register and
 * generated keys, draws a new boot seed and counts a boot. OTP persists. */
int rot_reset(struct rot *r);

#endif
