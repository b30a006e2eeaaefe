/*
 * Private to src/rot: the mailbox frame format, the request handler (the RoT
 * "core") and the transports. The wire format is specified in docs/formats.md
 * §4.1-4.2 ("Mailbox frames", "Operations"); keep the two in step.
 */
#ifndef SPHERE_ROT_INTERNAL_H
#define SPHERE_ROT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rot.h"

/* ---- frames ----------------------------------------------------------------
 * Every frame is one SOCK_SEQPACKET record: a 16-byte header, then exactly
 * `len` payload bytes. All integers little-endian.
 *   magic u32 = ROT_MB_MAGIC, op u16, status i16 (0 in requests), seq u32, len u32
 * A response repeats the request's op and seq. Any frame whose size, magic,
 * op or len is off is refused; the server answers a malformed request with
 * status SPH_ERR_MALFORMED and an empty payload, and never dies of it.
 */
#define ROT_MB_MAGIC       0x31545253u /* "SRT1" */
#define ROT_MB_HDR_LEN     16
#define ROT_MB_MAX_PAYLOAD 8192
#define ROT_MB_MAX_FRAME   (ROT_MB_HDR_LEN + ROT_MB_MAX_PAYLOAD)

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

/* Little-endian field access for frames and the OTP image. */
static inline void rot_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void rot_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void rot_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t rot_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rot_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rot_get_le64(const uint8_t *p)
{
	return (uint64_t)rot_get_le32(p) | (uint64_t)rot_get_le32(p + 4) << 32;
}

void rot_mb_hdr_encode(const struct rot_mb_hdr *h, uint8_t out[ROT_MB_HDR_LEN]);
/* Parses and checks a whole frame of frame_len bytes: magic, op in range,
 * len <= ROT_MB_MAX_PAYLOAD and len == frame_len - ROT_MB_HDR_LEN.
 * "In range" is 1..ROT_OP_MAX; op 0 is accepted only with a non-zero status,
 * because it is what the RoT answers to a request whose op it could not read.
 * Returns 0 and *h, or SPH_ERR_TRUNCATED / SPH_ERR_MALFORMED / SPH_ERR_TOO_LARGE /
 * SPH_ERR_TRAILING; *h is zeroed on failure. */
int rot_mb_hdr_decode(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h);
/* Reads the header fields of a frame without checking them (to echo op and seq
 * in an error response). Returns 0, or SPH_ERR_TRUNCATED (*h zeroed). */
int rot_mb_hdr_peek(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h);

/* Receives one record into buf (cap bytes) with MSG_TRUNC, so the return value
 * is the record's real size (> cap: oversize). Polls without blocking for up to
 * spin_ns nanoseconds first, then blocks. Returns the size, 0 on hang-up (or
 * an empty record), or -1 with errno (EINTR included: the caller decides). */
ssize_t rot_mb_recv(int fd, uint8_t *buf, size_t cap, int64_t spin_ns);
/* Spin budgets: the client covers an ECDSA signature, the server the caller's
 * time between two requests. */
#define ROT_MB_CLIENT_SPIN_NS 100000
#define ROT_MB_SERVER_SPIN_NS 50000

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

/* Fills buf with len bytes from getrandom(2), looping over partial reads and
 * EINTR. Fails closed: SPH_ERR_RANDOM, never a weaker source. */
int rot_random_bytes(uint8_t *buf, size_t len);

/* ---- OTP (otp.c): a fixed-size file of one-way fuses -----------------------
 * Layout (docs/formats.md §4.3), all integers little-endian:
 *   0   magic "SPHOTP01"            8
 *   8   lifecycle fuse bits u32     4   bit n-1 burned = state n reached
 *   12  reserved, zero              4
 *   16  device secret               32
 *   48  platform-root key hash      32  all zero = unfused (next issue)
 *   80  counters                    ROT_COUNTERS x ROT_COUNTER_MAX bits
 *   592 boot count u64              8   not a fuse: the chip's boot register
 * Fuse regions are only ever OR-ed ("burned"), each write pwrite + fsync.
 */
#define ROT_OTP_MAGIC             "SPHOTP01"
#define ROT_OTP_MAGIC_LEN         8
#define ROT_OTP_OFF_LIFECYCLE     8
#define ROT_OTP_OFF_RESERVED      12
#define ROT_OTP_OFF_SECRET        16
#define ROT_OTP_OFF_ROOT_KEY_HASH 48
#define ROT_OTP_OFF_COUNTERS      80
#define ROT_OTP_COUNTER_BYTES     (ROT_COUNTER_MAX / 8)
#define ROT_OTP_OFF_BOOT_COUNT    (ROT_OTP_OFF_COUNTERS + ROT_COUNTERS * ROT_OTP_COUNTER_BYTES)
#define ROT_OTP_SIZE              (ROT_OTP_OFF_BOOT_COUNT + 8)
#define ROT_OTP_LIFECYCLE_MASK    0x7u

struct rot_otp {
	int fd; /* -1 when closed */
	enum rot_lifecycle lifecycle;
	uint8_t root_key_hash[32];
};

/* Checks that path is a well-formed OTP file (size, magic, reserved bits)
 * without reading the device secret. Returns 0, SPH_ERR_NOT_FOUND,
 * SPH_ERR_MALFORMED or SPH_ERR_IO. */
int rot_otp_probe(const char *path);
/* Opens and checks the OTP file; copies the device secret into secret (the
 * caller wipes it). Returns 0, SPH_ERR_NOT_FOUND, SPH_ERR_MALFORMED,
 * SPH_ERR_STATE (no secret fused) or SPH_ERR_IO; on failure otp->fd is -1 and
 * secret is zeroed. */
int rot_otp_open(const char *path, struct rot_otp *otp, uint8_t secret[ROT_SECRET_LEN]);
/* Closes the file. Accepts a closed otp. */
void rot_otp_close(struct rot_otp *otp);
/* Counter idx = number of burned bits. Returns 0, SPH_ERR_INVALID_ARG or SPH_ERR_IO. */
int rot_otp_counter_read(struct rot_otp *otp, unsigned idx, uint32_t *value);
/* Burns bits until counter idx equals value. Returns 0 (also when value is the
 * current value), SPH_ERR_ROLLBACK (value below; nothing written),
 * SPH_ERR_EXHAUSTED (value > ROT_COUNTER_MAX), SPH_ERR_INVALID_ARG or SPH_ERR_IO. */
int rot_otp_counter_advance(struct rot_otp *otp, unsigned idx, uint32_t value);
/* Counts a boot: boot count + 1, persisted. Returns 0 and the new count, or
 * SPH_ERR_EXHAUSTED (at UINT64_MAX) / SPH_ERR_IO. */
int rot_otp_boot(struct rot_otp *otp, uint64_t *count);

#endif
