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
	/* 19 was RESET. It is retired, never to be reused: a chip reset is not a
	 * request any mailbox caller may make, but rot_reset() by the owner of the
	 * struct rot, which restarts the RoT (docs/formats.md §4.2, §4.7). A frame
	 * with op 19 is refused like any unknown op. */
	ROT_OP_RETIRED_RESET = 19,
	ROT_OP_ROOT_HASH = 20, /* (empty) -> hash[32], the root key hash latched at start */
	ROT_OP_MAX = 20,
};

/* Non-zero for an op a frame may carry: 1..ROT_OP_MAX except the retired 19. */
static inline int rot_op_known(uint32_t op)
{
	return op >= 1 && op <= ROT_OP_MAX && op != ROT_OP_RETIRED_RESET;
}

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
 * "In range" is rot_op_known (1..ROT_OP_MAX but 19); op 0 is accepted only with a non-zero status,
 * because it is what the RoT answers to a request whose op it could not read.
 * Returns 0 and *h, or SPH_ERR_TRUNCATED / SPH_ERR_MALFORMED / SPH_ERR_TOO_LARGE /
 * SPH_ERR_TRAILING; *h is zeroed on failure. */
int rot_mb_hdr_decode(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h);
/* Reads the header fields of a frame without checking them (to echo op and seq
 * in an error response). Returns 0, or SPH_ERR_TRUNCATED (*h zeroed). */
int rot_mb_hdr_peek(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h);

/* Checks a response record against the request it answers (docs/formats.md
 * §4.1): the record decodes (size, magic, len; rot_mb_hdr_decode), its op and
 * seq equal the request's, its status is 0 or negative, an error response has
 * an empty payload and is not SPH_ERR_TRANSPORT (a status the RoT never sends),
 * and a successful one carries want_min..want_max payload bytes.
 * Returns 0 with *payload (pointing into resp; NULL when empty) and
 * *payload_len; or the RoT's own negative status; or SPH_ERR_TRANSPORT when the
 * response is refused (SPH_ERR_INVALID_ARG for a caller bug). *payload and
 * *payload_len are cleared on entry and stay cleared on every failure. */
int rot_mb_check_response(uint16_t op, uint32_t seq, const uint8_t *resp, size_t resp_len,
                          size_t want_min, size_t want_max, const uint8_t **payload,
                          size_t *payload_len);

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

/* Power-up: opens and locks the OTP file (held until rot_core_free), derives
 * the keys, starts a boot (new seed, boot count + 1). A chip reset is
 * rot_core_free + rot_core_new: there is no other way to clear the volatile
 * state. Returns 0 and *out (free with rot_core_free), or a negative status
 * (SPH_ERR_STATE "OTP in use" when another RoT holds the file). */
int rot_core_new(const char *otp_path, struct rot_core **out);
/* Wipes every secret and frees. Accepts NULL. */
void rot_core_free(struct rot_core *c);
/* Handles one request frame and writes one response frame into resp (cap >=
 * ROT_MB_MAX_FRAME). Bad requests get an error status, never a crash.
 * Returns the response frame length. */
size_t rot_core_handle(struct rot_core *c, const uint8_t *req, size_t req_len, uint8_t *resp,
                       size_t cap);

/* Fills buf with len bytes from getrandom(2), looping over partial reads and
 * EINTR. Fails closed: SPH_ERR_RANDOM (buf wiped), never a weaker source.
 * Returns 0 or SPH_ERR_RANDOM. */
int rot_random_bytes(uint8_t *buf, size_t len);

/* ---- key derivation (core.c, docs/formats.md §4.4) ------------------------- */
#define ROT_SCALAR_LEN     32
#define ROT_HKDF_MAX_TRIES 256 /* attempt 0 plus counter bytes 1..255 */

/* OKM = HKDF-SHA256(IKM = secret, salt "sphere-rot-v1", info = label, or
 * label || one byte ctr when ctr > 0), out_len bytes. Returns 0 or
 * SPH_ERR_INVALID_ARG / SPH_ERR_CRYPTO (out wiped). */
int rot_hkdf_label(const uint8_t secret[ROT_SECRET_LEN], const char *label, unsigned ctr,
                   uint8_t *out, size_t out_len);

/* One candidate P-256 private scalar for attempt ctr, written to okm. */
typedef int (*rot_okm_fn)(void *ctx, unsigned ctr, uint8_t okm[ROT_SCALAR_LEN]);
/* The rejection loop of §4.4: asks okm for attempts ctr = 0, 1, ...,
 * ROT_HKDF_MAX_TRIES - 1 and keeps the first candidate d (big-endian) with
 * 1 <= d < n, the P-256 group order (compared in constant time). Derived keys
 * and rot_keygen both go through it. Returns 0 with the scalar and *ctr (the
 * attempt that was taken), okm's own failure, or SPH_ERR_CRYPTO when every
 * attempt was rejected; scalar is wiped on failure. */
int rot_scalar_derive(rot_okm_fn okm, void *ctx, uint8_t scalar[ROT_SCALAR_LEN], unsigned *ctr);

/* ---- test seams --------------------------------------------------------------
 * Internal, never in rot.h, for tests/test_rot.c only: nothing in the library or
 * in sphere-rot calls them, and they reach only the calling process (a mailbox
 * RoT is another process and keeps getrandom(2)).
 */
typedef ssize_t (*rot_getrandom_fn)(void *buf, size_t len, unsigned int flags);
/* Replaces the random source behind rot_random_bytes (NULL: getrandom(2) again),
 * so tests can make it fail and check that every consumer fails closed. */
void rot_test_set_getrandom(rot_getrandom_fn fn);

/* ---- OTP (otp.c): a fixed-size file of one-way fuses -----------------------
 * Until the virtual chip owns it, OTP is a file of the same uid: a same-uid
 * process can read the device secret and edit the file. The RoT holds the
 * file's flock LOCK_EX for its lifetime (one RoT per chip) and remembers every
 * fuse bit it has seen set since it opened the file; a fuse bit that later
 * disappears from the file is tampering, and counter, lifecycle and root-hash
 * operations then fail closed (SPH_ERR_STATE, event=otp_tamper). The
 * platform-root key hash is latched at open: it is burned once, before any RoT
 * holds the file, so any change to that region while the RoT runs is tampering.
 * Layout (docs/formats.md §4.3), all integers little-endian:
 *   0   magic "SPHOTP01"            8
 *   8   lifecycle fuse bits u32     4   bit n-1 burned = state n reached
 *   12  reserved, zero              4
 *   16  device secret               32
 *   48  platform-root key hash      32  all zero = unfused; rot_otp_fuse_root_hash
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
	int fd;                       /* -1 when closed; holds the file's flock LOCK_EX */
	enum rot_lifecycle lifecycle; /* latched at open: fuses take effect at power-up */
	uint8_t root_key_hash[32];    /* latched at open; the region must stay equal to it */
	/* Every fuse bit seen set since open (the file must stay a superset). */
	uint32_t seen_lifecycle;
	uint8_t seen_counters[ROT_COUNTERS * ROT_OTP_COUNTER_BYTES];
};

/* Checks that path is a well-formed OTP file (size, magic, reserved bits)
 * without reading the device secret. Returns 0, SPH_ERR_NOT_FOUND,
 * SPH_ERR_MALFORMED or SPH_ERR_IO. */
int rot_otp_probe(const char *path);
/* Opens and checks the OTP file and takes its flock LOCK_EX without waiting;
 * copies the device secret into secret (the caller wipes it). Returns 0,
 * SPH_ERR_NOT_FOUND, SPH_ERR_MALFORMED, SPH_ERR_STATE (no secret fused, or
 * "OTP in use": another RoT holds the lock) or SPH_ERR_IO; on failure otp->fd
 * is -1 and secret is zeroed. */
int rot_otp_open(const char *path, struct rot_otp *otp, uint8_t secret[ROT_SECRET_LEN]);
/* Closes the file, which releases the lock. Accepts a closed otp. */
void rot_otp_close(struct rot_otp *otp);
/* Counter idx = number of burned bits, after the tamper check of every fuse
 * region. Returns 0, SPH_ERR_INVALID_ARG, SPH_ERR_STATE (fuse bits vanished:
 * *value stays 0) or SPH_ERR_IO. */
int rot_otp_counter_read(struct rot_otp *otp, unsigned idx, uint32_t *value);
/* Burns bits until counter idx equals value, after the tamper check. Returns 0
 * (also when value is the current value), SPH_ERR_ROLLBACK (value below;
 * nothing written), SPH_ERR_EXHAUSTED (value > ROT_COUNTER_MAX),
 * SPH_ERR_INVALID_ARG, SPH_ERR_STATE (fuse bits vanished; nothing written) or
 * SPH_ERR_IO. */
int rot_otp_counter_advance(struct rot_otp *otp, unsigned idx, uint32_t value);
/* The lifecycle latched at open, after the tamper check (lifecycle bits that
 * were set must still be set, and no undefined bit may appear). Returns 0,
 * SPH_ERR_STATE (tampered: *lc is ROT_LC_BLANK) or SPH_ERR_IO. */
int rot_otp_lifecycle(struct rot_otp *otp, enum rot_lifecycle *lc);
/* The platform-root key hash latched at open, after the tamper check of every
 * fuse region (the root-hash region included). Returns 0, SPH_ERR_NOT_FOUND
 * (none fused), SPH_ERR_STATE (tampered) or SPH_ERR_IO; out is zeroed on
 * failure. */
int rot_otp_root_hash(struct rot_otp *otp, uint8_t out[32]);
/* Counts a boot: boot count + 1, persisted. Returns 0 and the new count, or
 * SPH_ERR_EXHAUSTED (at UINT64_MAX) / SPH_ERR_IO. */
int rot_otp_boot(struct rot_otp *otp, uint64_t *count);

#endif
