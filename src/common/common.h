/*
 * common: what every Sphere module shares, and nothing more.
 *  - status codes (include/sphere/status.h) and sph_strerror()
 *  - the logger: one line per event, key=value fields, never a secret
 *  - a bounded CBOR writer and a strict, allocation-free CBOR reader (on libcbor)
 *  - hex encoding
 */
#ifndef SPHERE_COMMON_H
#define SPHERE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

/* ---- logging ---------------------------------------------------------------
 * Lines look like:
 *   ts=2026-11-25T12:00:00.123Z level=info mod=rot event=started pid=42
 * The level threshold comes from $SPHERE_LOG (error|warn|info|debug, default
 * info) unless sph_log_set_level() was called. Never pass key material, tokens
 * or secrets as fields: there is deliberately no "log these bytes" helper.
 */
enum sph_log_level { SPH_LOG_ERROR = 0, SPH_LOG_WARN, SPH_LOG_INFO, SPH_LOG_DEBUG };

void sph_log_set_level(enum sph_log_level level);
bool sph_log_enabled(enum sph_log_level level);
/* fields: printf-style "k=v k2=v2" (may be NULL). Writes one line to stderr. */
void sph_log(enum sph_log_level level, const char *mod, const char *event, const char *fields, ...)
        __attribute__((format(printf, 4, 5)));

/* ---- hex ------------------------------------------------------------------- */
/* Writes 2*len lowercase hex characters and a NUL into out (cap >= 2*len+1).
 * Returns 0, or SPH_ERR_BUFFER_TOO_SMALL. */
int sph_hex_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/* Decodes exactly out_len bytes from a 2*out_len-character hex string (either case).
 * Returns 0, SPH_ERR_MALFORMED or SPH_ERR_INVALID_ARG (wrong length). */
int sph_hex_decode(const char *hex, uint8_t *out, size_t out_len);

/* ---- base64url --------------------------------------------------------------- */
/* base64url (RFC 4648 §5; padding optional, nothing else: no whitespace,
 * no standard-alphabet characters) of at most cap bytes into out. Returns 0
 * and *len, SPH_ERR_MALFORMED (not base64url, empty, or longer than cap) or
 * SPH_ERR_NOMEM. */
int sph_b64url_decode(const char *in, uint8_t *out, size_t cap, size_t *len);
/* bytes -> base64url without padding (NUL-terminated; free with free()), or
 * NULL (no memory). */
char *sph_b64url_encode(const uint8_t *in, size_t len);

/* ---- CBOR writer -----------------------------------------------------------
 * Writes definite-length, shortest-form CBOR (RFC 8949 §4.2.1 deterministic
 * heads) into a caller-provided buffer of fixed capacity. Errors are sticky:
 * after the first failure every call is a no-op and sph_cbw_finish() reports
 * it, so encoders need a single check at the end.
 */
struct sph_cbw {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;
};

void sph_cbw_init(struct sph_cbw *w, uint8_t *buf, size_t cap);
void sph_cbw_uint(struct sph_cbw *w, uint64_t v);
void sph_cbw_int(struct sph_cbw *w, int64_t v);
void sph_cbw_bstr(struct sph_cbw *w, const uint8_t *data, size_t len);
void sph_cbw_tstr(struct sph_cbw *w, const char *str, size_t len);
/* Writes only the head of a bstr of len bytes (the contents follow separately). */
void sph_cbw_bstr_head(struct sph_cbw *w, size_t len);
void sph_cbw_array(struct sph_cbw *w, size_t count);
void sph_cbw_map(struct sph_cbw *w, size_t count);
void sph_cbw_tag(struct sph_cbw *w, uint64_t tag);
void sph_cbw_bool(struct sph_cbw *w, bool v);
void sph_cbw_null(struct sph_cbw *w);
/* Appends already-encoded CBOR verbatim. */
void sph_cbw_raw(struct sph_cbw *w, const uint8_t *data, size_t len);
/* Returns 0 and sets *len to the bytes written, or the first error
 * (SPH_ERR_BUFFER_TOO_SMALL when the capacity was exceeded). */
int sph_cbw_finish(const struct sph_cbw *w, size_t *len);

/* ---- CBOR reader -----------------------------------------------------------
 * A pull parser over untrusted bytes: each call decodes one data item head
 * with libcbor's streaming decoder and advances, never reading past the end
 * and never allocating. It is strict: indefinite lengths, non-shortest heads,
 * floats, undefined and simple values other than true/false/null are refused
 * (SPH_ERR_MALFORMED); a short buffer is SPH_ERR_TRUNCATED. Strings are
 * returned as pointers into the input. Nesting depth is bounded by
 * SPH_CBOR_MAX_DEPTH for sph_cbr_skip().
 */
#define SPH_CBOR_MAX_DEPTH 16

enum sph_cbor_type {
	SPH_CBOR_UINT,
	SPH_CBOR_NEGINT,
	SPH_CBOR_BSTR,
	SPH_CBOR_TSTR,
	SPH_CBOR_ARRAY,
	SPH_CBOR_MAP,
	SPH_CBOR_TAG,
	SPH_CBOR_BOOL,
	SPH_CBOR_NULL,
};

struct sph_cbor_item {
	enum sph_cbor_type type;
	uint64_t u; /* UINT value; NEGINT: value is -1 - u; ARRAY/MAP count; TAG number; BOOL 0/1 */
	const uint8_t *data;  /* BSTR/TSTR contents (points into the input) */
	size_t len;           /* BSTR/TSTR length */
	const uint8_t *start; /* first byte of this item's head */
};

struct sph_cbr {
	const uint8_t *buf;
	size_t len;
	size_t off;
};

void sph_cbr_init(struct sph_cbr *r, const uint8_t *buf, size_t len);
/* Decodes the next item head. Returns 0 or a negative status; r is unchanged on error. */
int sph_cbr_next(struct sph_cbr *r, struct sph_cbor_item *it);
/* Peeks at the next item head without consuming it. */
int sph_cbr_peek(const struct sph_cbr *r, struct sph_cbor_item *it);
/* Convenience readers: each consumes one item of the named type, else
 * SPH_ERR_MALFORMED (r unchanged, outputs zeroed/NULLed). */
int sph_cbr_uint(struct sph_cbr *r, uint64_t *v);
int sph_cbr_int(struct sph_cbr *r, int64_t *v); /* UINT or NEGINT within int64_t */
int sph_cbr_bstr(struct sph_cbr *r, const uint8_t **data, size_t *len);
int sph_cbr_tstr(struct sph_cbr *r, const uint8_t **data, size_t *len);
int sph_cbr_array(struct sph_cbr *r, size_t *count);
int sph_cbr_map(struct sph_cbr *r, size_t *count);
/* Skips one complete data item (with its contents), depth-bounded. Maps in it
 * must not repeat a key (SPH_ERR_DUPLICATE) nor hold more than
 * SPH_CBOR_MAX_KEYS entries (SPH_ERR_TOO_LARGE). r is unchanged on error. */
int sph_cbr_skip(struct sph_cbr *r);
/* True when every byte has been consumed. */
bool sph_cbr_done(const struct sph_cbr *r);
/* Returns 0 if every byte was consumed, else SPH_ERR_TRAILING. */
int sph_cbr_expect_end(const struct sph_cbr *r);

/* Duplicate-key detection for maps whose keys are integers: callers record
 * each key they read; a second occurrence is SPH_ERR_DUPLICATE. */
#define SPH_CBOR_MAX_KEYS 32
struct sph_keyset {
	int64_t keys[SPH_CBOR_MAX_KEYS];
	size_t n;
};
/* Returns 0, SPH_ERR_DUPLICATE, or SPH_ERR_TOO_LARGE (more than SPH_CBOR_MAX_KEYS keys). */
int sph_keyset_add(struct sph_keyset *ks, int64_t key);

/* ---- strict profile maps ---------------------------------------------------
 * For decoders of Sphere's own integer-keyed maps (EAT claims, image
 * manifests): a fixed key set in deterministic order. A key outside the set,
 * or a value of the wrong type, length or range, is SPH_ERR_CLAIM; a repeated
 * key SPH_ERR_DUPLICATE; a key out of order SPH_ERR_MALFORMED.
 */
/* True if s is 1..max bytes of printable ASCII (0x20..0x7e). */
bool sph_text_ok(const uint8_t *s, size_t len, size_t max);
/* Reads the next map key: it must be one of order[0..n), not seen before (ks),
 * and come after the previous one (*last: its index, -1 before the first).
 * Sets *idx (and *last) to its index. Returns 0 or a status as above. */
int sph_cbr_profile_key(struct sph_cbr *r, const int64_t *order, size_t n, struct sph_keyset *ks,
                        int *last, int *idx);
/* Reads the count entries of a map whose head was just read: each key with
 * sph_cbr_profile_key, then its value with value(r, key, ctx). *seen gets
 * bit i set for each order[i] present (n <= 32). Returns 0, a status as
 * above, or value's first failure. */
int sph_cbr_profile_entries(struct sph_cbr *r, size_t count, const int64_t *order, size_t n,
                            int (*value)(struct sph_cbr *r, int64_t key, void *ctx), void *ctx,
                            uint32_t *seen);
/* Reads one item that must be of type. Returns 0 or a status as above. */
int sph_cbr_typed(struct sph_cbr *r, enum sph_cbor_type type, struct sph_cbor_item *it);
/* Reads a bstr of exactly len bytes into dst. Returns 0 or a status as above. */
int sph_cbr_bstr_exact(struct sph_cbr *r, uint8_t *dst, size_t len);
/* Reads printable text (sph_text_ok) into dst, which holds max+1 zeroed bytes
 * so the copy stays NUL-terminated. Returns 0 or a status as above. */
int sph_cbr_text(struct sph_cbr *r, char *dst, size_t max);
/* Reads an unsigned integer no larger than max. Returns 0 or a status as above. */
int sph_cbr_uint_max(struct sph_cbr *r, uint64_t max, uint64_t *v);

/* ---- little-endian wire integers ------------------------------------------ */
static inline void sph_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t sph_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void sph_put_le64(uint8_t *p, uint64_t v)
{
	sph_put_le32(p, (uint32_t)v);
	sph_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t sph_get_le64(const uint8_t *p)
{
	return (uint64_t)sph_get_le32(p) | (uint64_t)sph_get_le32(p + 4) << 32;
}

#endif
