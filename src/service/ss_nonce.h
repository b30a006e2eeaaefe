/*
 * ss_nonce: check-in nonces that need no database round trip (docs/api.md
 * §4.7). A nonce is self-authenticating: 8 bytes of issue time (Unix
 * milliseconds, big-endian), 16 random bytes, and the first 16 bytes of
 * HMAC-SHA256 over both and the device id, under a key every service
 * instance derives from the shared key-encryption key. Any instance can check
 * one that another instance issued; it is bound to one device and expires
 * after SS_NONCE_TTL_MS. Single use is enforced by the check-in's one write
 * transaction, which accepts a nonce only if its issue time is later than the
 * device's last accepted one (ss_nonce_time gives it).
 *
 * Unless a comment says otherwise a function returns 0 or a negative SPH_ERR_*.
 */
#ifndef SPHERE_SS_NONCE_H
#define SPHERE_SS_NONCE_H

#include <stdint.h>

#include <sphere/status.h>

#include "ss_ca.h"

#define SS_NONCE_LEN    40
#define SS_NONCE_TTL_MS 60000

struct ss_nonce_key {
	uint8_t k[32];
};

/* Derives the nonce key from the key-encryption key (HKDF-SHA256, info
 * "sphere-ss nonce v1"). Wipe it with OPENSSL_cleanse when done. */
int ss_nonce_key_derive(const uint8_t kek[SS_KEK_LEN], struct ss_nonce_key *key);

/* A fresh nonce for device_id (128 hex digits) issued at now_ms. */
int ss_nonce_issue(const struct ss_nonce_key *key, const char *device_id, int64_t now_ms,
                   uint8_t nonce[SS_NONCE_LEN]);

/* Checks a presented nonce for device_id at now_ms: exactly SS_NONCE_LEN
 * bytes (else SPH_ERR_MALFORMED), its MAC (constant time; another device's
 * or an altered one: SPH_ERR_NONCE_MISMATCH), not issued in the future
 * beyond a 5 s skew and not older than SS_NONCE_TTL_MS (SPH_ERR_STATE).
 * *issued_ms (may be NULL) gets its issue time for the replay check. */
int ss_nonce_check(const struct ss_nonce_key *key, const char *device_id, int64_t now_ms,
                   const uint8_t *nonce, size_t len, int64_t *issued_ms);

#endif
