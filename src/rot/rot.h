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
 * forge evidence by asking for a signature over a chosen digest. Neither
 * long-term key does ECDH. Keys made by rot_keygen() get handles >=
 * ROT_KEY_GENERATED_BASE and live until rot_key_destroy() or a chip reset.
 *
 * A chip reset is rot_reset(), which only the owner of the struct rot can
 * call: no mailbox request resets the RoT. In the emulator the OTP is a file
 * that a process of the same uid can read and write (docs/rot.md).
 *
 * Unless a comment says otherwise, a function returns 0 on success or a
 * negative SPH_ERR_* status; SPH_ERR_INVALID_ARG for a NULL handle or output,
 * SPH_ERR_TRANSPORT when the RoT is gone or spoke out of protocol (on the
 * mailbox the handle is then broken: every later call fails the same way), and
 * SPH_ERR_CRYPTO if the crypto library failed. Fixed-size outputs and output
 * lengths are cleared on entry, and no partial result is written on failure.
 */
#ifndef SPHERE_ROT_H
#define SPHERE_ROT_H

#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#include "eat/eat.h"

#define ROT_KEY_IDENTITY       0u
#define ROT_KEY_ATTEST         1u
#define ROT_KEY_GENERATED_BASE 0x100u
#define ROT_MAX_GENERATED_KEYS 32

#define ROT_PUB_LEN       65
#define ROT_SIG_LEN       64
#define ROT_DIGEST_LEN    32
#define ROT_SECRET_LEN    32
#define ROT_DEVICE_ID_LEN 128 /* hex characters, without the NUL */
#define ROT_ECDH_LEN      32
#define ROT_RANDOM_MAX    1024 /* bytes per rot_random() call */
#define ROT_SEAL_MAX      4096 /* plaintext bytes per rot_seal() call */
#define ROT_SEAL_AAD_MAX  256
#define ROT_SEAL_OVERHEAD 29  /* version(1) || iv(12) || ciphertext || tag(16) */
#define ROT_COUNTERS      16  /* anti-rollback counters */
#define ROT_COUNTER_MAX   256 /* one-way bits per counter */

/* Device lifecycle, as fused in OTP (one-way: it only moves forward). */
enum rot_lifecycle {
	ROT_LC_BLANK = 0,
	ROT_LC_DEVELOPMENT = 1,
	ROT_LC_PRODUCTION = 2,
	ROT_LC_DECOMMISSIONED = 3,
};

struct rot;

/* ---- OTP (a file until the virtual chip owns it) --------------------------- */

/* Creates an OTP file at path (mode 0600) holding a fresh random device secret
 * (or the given one, for tests) and the lifecycle. Returns 0, SPH_ERR_STATE if
 * the file exists, SPH_ERR_INVALID_ARG (bad lifecycle, all-zero secret),
 * SPH_ERR_RANDOM, SPH_ERR_NOT_FOUND (no such directory) or SPH_ERR_IO; on
 * failure no file is left behind. */
int rot_otp_fuse(const char *path, const uint8_t *secret /* ROT_SECRET_LEN or NULL */,
                 enum rot_lifecycle lifecycle);

/* Fuses the platform-root key hash (SHA-256 of the root certificate's DER
 * SubjectPublicKeyInfo, img_root_hash) into the OTP file at path. One-way: it
 * is burned only while the field is all zero; the same hash again returns 0,
 * another one SPH_ERR_STATE (nothing written). Takes the file's lock, so it
 * fails with SPH_ERR_STATE while a RoT holds the file. Returns 0,
 * SPH_ERR_INVALID_ARG (NULL, all-zero hash), SPH_ERR_NOT_FOUND,
 * SPH_ERR_MALFORMED (not an OTP image), SPH_ERR_STATE or SPH_ERR_IO. */
int rot_otp_fuse_root_hash(const char *path, const uint8_t hash[ROT_DIGEST_LEN]);
/* Reads the fused platform-root key hash the way a boot ROM reads fuses:
 * directly from the file (no RoT, no lock; the secret is not read). Returns 0,
 * SPH_ERR_NOT_FOUND (no file, or the field is unfused: all zero),
 * SPH_ERR_MALFORMED, SPH_ERR_INVALID_ARG or SPH_ERR_IO; out is zeroed unless 0. */
int rot_otp_read_root_hash(const char *path, uint8_t out[ROT_DIGEST_LEN]);

/* ---- opening --------------------------------------------------------------- */

/* Opens an in-process RoT over the OTP file (a power-up: counts a boot). The
 * RoT holds the file's lock until rot_close: one RoT per OTP file. Returns 0
 * and *out (free with rot_close), or SPH_ERR_NOT_FOUND (no file),
 * SPH_ERR_MALFORMED (not an OTP image), SPH_ERR_STATE (no secret fused, or
 * "OTP in use": another RoT, in any process, holds the file), SPH_ERR_RANDOM,
 * SPH_ERR_IO or SPH_ERR_NOMEM; *out is NULL on failure. */
int rot_open_inproc(const char *otp_path, struct rot **out);

/* Starts the RoT process (`sphere-rot`, found next to the running executable)
 * over the OTP file and connects to its mailbox. $SPHERE_ROT_BIN overrides the
 * binary, for tests and development only: it must be an absolute path to a
 * regular executable file (ignored in set-id programs). Returns 0 and *out, or
 * what rot_open_inproc returns (reported by the RoT through the handshake),
 * SPH_ERR_NOT_FOUND (no such binary), SPH_ERR_INVALID_ARG (a relative path, a
 * non-regular or non-executable file) or SPH_ERR_TRANSPORT (the program did not
 * answer as a RoT); *out is NULL on failure. */
int rot_open_mailbox(const char *otp_path, struct rot **out);

/* Closes the handle; for the mailbox, the RoT process wipes its keys and exits.
 * Accepts NULL. */
void rot_close(struct rot *r);

/* Returns the process id of the mailbox RoT (a new one after rot_reset), or 0
 * for an in-process RoT, a NULL handle or a mailbox whose reset failed. */
int rot_pid(const struct rot *r);

/* ---- identity and keys ----------------------------------------------------- */

/* Writes the 65-byte uncompressed public key of key. Returns 0 or a status
 * (SPH_ERR_NOT_FOUND for an unknown handle). */
int rot_pubkey(struct rot *r, uint32_t key, uint8_t pub[ROT_PUB_LEN]);
/* Writes the device id (128 lowercase hex characters of the identity X||Y) and a
 * NUL. Returns 0 or a status (id is "" on failure). */
int rot_device_id(struct rot *r, char id[ROT_DEVICE_ID_LEN + 1]);
/* ECDSA P-256 over a SHA-256 digest, r||s. ROT_KEY_ATTEST is refused
 * (SPH_ERR_PERMISSION). Returns 0 or a status. */
int rot_sign(struct rot *r, uint32_t key, const uint8_t digest[ROT_DIGEST_LEN],
             uint8_t sig[ROT_SIG_LEN]);
/* Verifies an r||s signature. Returns 0, SPH_ERR_BAD_SIGNATURE, SPH_ERR_MALFORMED (bad point). */
int rot_verify(struct rot *r, const uint8_t pub[ROT_PUB_LEN], const uint8_t digest[ROT_DIGEST_LEN],
               const uint8_t sig[ROT_SIG_LEN]);
/* ECDH with a generated key and a peer point; writes the 32-byte shared X
 * coordinate. Only rot_keygen() keys do ECDH: ROT_KEY_IDENTITY and
 * ROT_KEY_ATTEST are refused (SPH_ERR_PERMISSION), since raw static DH with a
 * long-term key would let any caller use it as an oracle. Returns 0,
 * SPH_ERR_PERMISSION, SPH_ERR_NOT_FOUND or SPH_ERR_MALFORMED (peer not on the
 * curve); secret is zeroed on failure. */
int rot_ecdh(struct rot *r, uint32_t key, const uint8_t peer[ROT_PUB_LEN],
             uint8_t secret[ROT_ECDH_LEN]);
/* Generates a P-256 key pair inside the RoT (scalar from getrandom(2)). Returns
 * 0 with its handle and public key, SPH_ERR_EXHAUSTED when all slots are used,
 * or SPH_ERR_RANDOM. */
int rot_keygen(struct rot *r, uint32_t *handle, uint8_t pub[ROT_PUB_LEN]);
/* Destroys a generated key (wiped). Returns 0 or SPH_ERR_NOT_FOUND. */
int rot_key_destroy(struct rot *r, uint32_t handle);

/* ---- sealing and randomness ------------------------------------------------ */

/* AES-256-GCM with the device-unique sealing key and a random IV. out receives
 * pt_len + ROT_SEAL_OVERHEAD bytes. Returns 0 and *out_len, SPH_ERR_TOO_LARGE,
 * SPH_ERR_BUFFER_TOO_SMALL (checked before the request) or SPH_ERR_RANDOM. */
int rot_seal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
             uint8_t *out, size_t cap, size_t *out_len);
/* Opens what rot_seal produced on this device. Returns 0 and *out_len,
 * SPH_ERR_AUTH if the data, the AAD or the device differ (no plaintext is
 * released), SPH_ERR_TOO_LARGE or SPH_ERR_BUFFER_TOO_SMALL. */
int rot_unseal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
               size_t sealed_len, uint8_t *out, size_t cap, size_t *out_len);
/* len (1..ROT_RANDOM_MAX) bytes from getrandom(2). Returns 0, SPH_ERR_TOO_LARGE,
 * or SPH_ERR_RANDOM (fails closed, never a weaker source; buf zeroed). */
int rot_random(struct rot *r, uint8_t *buf, size_t len);

/* ---- measured boot --------------------------------------------------------- */

/* Records a booted component: appends it to the measurement log and extends
 * the accumulator with its event (eat_measurement_event). acc (may be NULL)
 * receives the new value. Returns 0, SPH_ERR_INVALID_ARG (empty or unterminated
 * strings), SPH_ERR_MALFORMED (not printable ASCII) or SPH_ERR_EXHAUSTED after
 * EAT_MAX_COMPONENTS; nothing is recorded on failure. */
int rot_measure(struct rot *r, const struct eat_component *c, uint8_t acc[ROT_DIGEST_LEN]);
/* Reads the accumulator (32 zero bytes after a chip reset). Returns 0 or a status. */
int rot_accumulator(struct rot *r, uint8_t acc[ROT_DIGEST_LEN]);

/* ---- nonce register and attestation --------------------------------------- */

/* Loads a verifier's challenge (EAT_NONCE_MIN..EAT_NONCE_MAX bytes) into the
 * nonce register. Returns 0, SPH_ERR_INVALID_ARG (length) or a status. */
int rot_nonce_load(struct rot *r, const uint8_t *nonce, size_t len);
/* Reads the nonce register; *len is 0 if empty. buf holds EAT_NONCE_MAX bytes.
 * Returns 0 or a status. */
int rot_nonce_read(struct rot *r, uint8_t buf[EAT_NONCE_MAX], size_t *len);
/* Loads nonce into the register and returns an EAT signed with ROT_KEY_ATTEST
 * over the RoT's own state (lifecycle, boot count and seed, accumulator and
 * measurement log). cap must be at least EAT_MAX_TOKEN. Returns 0 and *out_len,
 * SPH_ERR_INVALID_ARG (nonce length), SPH_ERR_BUFFER_TOO_SMALL (cap <
 * EAT_MAX_TOKEN: refused before anything reaches the RoT, so the nonce register
 * is untouched), SPH_ERR_STATE (nothing measured yet, or the lifecycle fuses
 * were tampered with) or a status. */
int rot_attest(struct rot *r, const uint8_t *nonce, size_t nonce_len, uint8_t *out, size_t cap,
               size_t *out_len);

/* ---- one-way state --------------------------------------------------------- */

/* Reads anti-rollback counter idx (< ROT_COUNTERS). Returns 0,
 * SPH_ERR_INVALID_ARG (idx), SPH_ERR_STATE (fuse bits this RoT saw burned have
 * vanished from the OTP file: tampering; it fails closed), SPH_ERR_IO or a
 * status; *value is 0 on failure. */
int rot_counter_read(struct rot *r, unsigned idx, uint32_t *value);
/* Raises counter idx to value by burning OTP bits. Returns 0 (also for the
 * current value), SPH_ERR_ROLLBACK (value below the current one; nothing
 * changes), SPH_ERR_EXHAUSTED (above ROT_COUNTER_MAX), SPH_ERR_INVALID_ARG
 * (idx), SPH_ERR_STATE (tampered OTP, as for rot_counter_read; nothing is
 * written), SPH_ERR_IO or a status. */
int rot_counter_advance(struct rot *r, unsigned idx, uint32_t value);
/* Reads the lifecycle state fused at power-up. Returns 0, SPH_ERR_STATE
 * (lifecycle fuse bits vanished from the OTP file: tampering) or a status;
 * *lc is ROT_LC_BLANK on failure. */
int rot_lifecycle(struct rot *r, enum rot_lifecycle *lc);
/* The platform-root key hash the RoT read from the OTP fuses when it started
 * (ROT_OP_ROOT_HASH), after its tamper check: the boot chain's trust anchor
 * (rot_otp_read_root_hash reads the file, for tools). Returns 0, SPH_ERR_NOT_FOUND
 * (none fused), SPH_ERR_STATE (the fuse regions were tampered with since the
 * RoT started, the root-hash region included: it fails closed) or a status;
 * hash is zeroed on failure. */
int rot_root_hash(struct rot *r, uint8_t hash[ROT_DIGEST_LEN]);
/* Boot count: power-ups and chip resets since the OTP was fused, counting the
 * current one. Returns 0 or a status (*count 0 on failure). */
int rot_boot_count(struct rot *r, uint64_t *count);

/* Chip reset, for the owner of r only (no mailbox request can reset the RoT):
 * powers the RoT off and on again behind the same handle. Mailbox: the RoT
 * process is stopped (it wipes its keys and exits) and a new one started over
 * the same OTP file from the same binary; in-process: the core is freed and a
 * new one made. Either way the accumulator, measurement log, nonce register
 * and generated keys are gone (handles from before the reset are void and may
 * be issued again: drop them), a new boot seed is drawn and a boot counted;
 * OTP persists. Calls from other threads wait for it. Returns 0, or
 * what rot_open_* returns, after which r is broken (every call, rot_reset
 * included, returns SPH_ERR_TRANSPORT; close it); SPH_ERR_TRANSPORT on a
 * broken handle. */
int rot_reset(struct rot *r);

#endif
