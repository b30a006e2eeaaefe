/*
 * Private to src/rot: the mailbox frame format, the request handler (the RoT
 * "core") and the transports. The wire format is specified in docs/formats.md
 * ("RoT mailbox"); keep the two in step.
 */
#ifndef SPHERE_ROT_INTERNAL_H
#define SPHERE_ROT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rot.h"

/* ---- frames ----------------------------------------------------------------
 * Every frame is one SOCK_SEQPACKET record: a 16-byte header, then exactly
 * `len` payload bytes. All integers little-endian.
 *   magic u32 = ROT_MB_MAGIC, op u16, status i16 (0 in requests), seq u32, len u32
 * A response repeats the request's op and seq. Any frame whose size, magic,
 * op or len is off is refused; the server answers a malformed request with
 * status SPH_ERR_MALFORMED and an empty payload, and never dies of it.
 */
#define ROT_MB_MAGIC 0x31545253u /* "SRT1" */
#define ROT_MB_HDR_LEN 16
#define ROT_MB_MAX_PAYLOAD 8192
#define ROT_MB_MAX_FRAME (ROT_MB_HDR_LEN + ROT_MB_MAX_PAYLOAD)

/* Ops and their exact payloads (request -> response). */
enum rot_op {
	ROT_OP_PUBKEY = 1,           /* key u32 -> pub[65] */
	ROT_OP_SIGN = 2,             /* key u32, digest[32] -> sig[64] */
	ROT_OP_VERIFY = 3,           /* pub[65], digest[32], sig[64] -> (empty) */
	ROT_OP_ECDH = 4,             /* key u32, peer[65] -> secret[32] */
	ROT_OP_KEYGEN = 5,           /* (empty) -> handle u32, pub[65] */
	ROT_OP_KEY_DESTROY = 6,      /* handle u32 -> (empty) */
	ROT_OP_SEAL = 7,             /* aad_len u16, pt_len u16, aad, pt -> sealed */
	ROT_OP_UNSEAL = 8,           /* aad_len u16, sealed_len u16, aad, sealed -> pt */
	ROT_OP_RANDOM = 9,           /* len u16 (<= ROT_RANDOM_MAX) -> bytes[len] */
	ROT_OP_MEASURE = 10,         /* component record[ROT_COMPONENT_RECORD_LEN] -> acc[32] */
	ROT_OP_ACCUMULATOR = 11,     /* (empty) -> acc[32] */
	ROT_OP_NONCE_LOAD = 12,      /* nonce[8..64] -> (empty) */
	ROT_OP_NONCE_READ = 13,      /* (empty) -> nonce[0..64] */
	ROT_OP_ATTEST = 14,          /* nonce[8..64] -> token[..EAT_MAX_TOKEN] */
	ROT_OP_COUNTER_READ = 15,    /* idx u32 -> value u32 */
	ROT_OP_COUNTER_ADVANCE = 16, /* idx u32, value u32 -> (empty) */
	ROT_OP_LIFECYCLE = 17,       /* (empty) -> lifecycle u32 */
	ROT_OP_BOOT_COUNT = 18,      /* (empty) -> count u64 */
	ROT_OP_RESET = 19,           /* (empty) -> (empty) */
	ROT_OP_MAX = 19,
};

/* A component as it crosses the mailbox: type[16] NUL-padded, component_id[16],
 * version[32] NUL-padded, security_version u32, digest[32], signer_id[32]. */
#define ROT_COMPONENT_RECORD_LEN (16 + 16 + 32 + 4 + 32 + 32)

struct rot_mb_hdr {
	uint32_t magic;
	uint16_t op;
	int16_t status;
	uint32_t seq;
	uint32_t len;
};

void rot_mb_hdr_encode(const struct rot_mb_hdr *h, uint8_t out[ROT_MB_HDR_LEN]);
/* Parses and checks a whole frame of frame_len bytes: magic, op in range,
 * len <= ROT_MB_MAX_PAYLOAD and len == frame_len - ROT_MB_HDR_LEN.
 * Returns 0 and *h, or SPH_ERR_TRUNCATED / SPH_ERR_MALFORMED / SPH_ERR_TOO_LARGE /
 * SPH_ERR_TRAILING. */
int rot_mb_hdr_decode(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h);

/* ---- the core: the RoT's state and request handler ------------------------- */
struct rot_core;

/* Loads OTP, derives keys, starts a boot (new seed, boot count + 1).
 * Returns 0 and *out (free with rot_core_free), or a negative status. */
int rot_core_new(const char *otp_path, struct rot_core **out);
/* Wipes every secret and frees. Accepts NULL. */
void rot_core_free(struct rot_core *c);
/* Handles one request frame and writes one response frame into resp (cap >=
 * ROT_MB_MAX_FRAME). Bad requests get an error status, never a crash.
 * Returns the response frame length. */
size_t rot_core_handle(struct rot_core *c, const uint8_t *req, size_t req_len, uint8_t *resp,
		       size_t cap);

#endif
