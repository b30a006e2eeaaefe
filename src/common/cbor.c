/*
 * Bounded CBOR writer and strict pull reader, both on libcbor's encoding and
 * streaming-decoding primitives (no tree, no allocation).
 */
#include <string.h>

#include <cbor.h>

#include "common.h"

/* ---- writer ---------------------------------------------------------------- */

void sph_cbw_init(struct sph_cbw *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->len = 0;
	w->err = 0;
}

/* Appends the bytes an encoder produced; libcbor's encoders return 0 when the
 * remaining space is too small. */
static void cbw_put(struct sph_cbw *w, size_t n)
{
	if (n == 0)
		w->err = SPH_ERR_BUFFER_TOO_SMALL;
	else
		w->len += n;
}

#define CBW_ENCODE(w, call)                                                                        \
	do {                                                                                       \
		if ((w)->err == 0)                                                                 \
			cbw_put((w), (call));                                                      \
	} while (0)

void sph_cbw_uint(struct sph_cbw *w, uint64_t v)
{
	CBW_ENCODE(w, cbor_encode_uint(v, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_int(struct sph_cbw *w, int64_t v)
{
	if (v >= 0)
		CBW_ENCODE(w, cbor_encode_uint((uint64_t)v, w->buf + w->len, w->cap - w->len));
	else
		CBW_ENCODE(w, cbor_encode_negint((uint64_t)(-(v + 1)), w->buf + w->len,
		                                 w->cap - w->len));
}

void sph_cbw_raw(struct sph_cbw *w, const uint8_t *data, size_t len)
{
	if (w->err)
		return;
	if (len > w->cap - w->len) {
		w->err = SPH_ERR_BUFFER_TOO_SMALL;
		return;
	}
	if (len)
		memcpy(w->buf + w->len, data, len);
	w->len += len;
}

void sph_cbw_bstr(struct sph_cbw *w, const uint8_t *data, size_t len)
{
	CBW_ENCODE(w, cbor_encode_bytestring_start(len, w->buf + w->len, w->cap - w->len));
	sph_cbw_raw(w, data, len);
}

void sph_cbw_bstr_head(struct sph_cbw *w, size_t len)
{
	CBW_ENCODE(w, cbor_encode_bytestring_start(len, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_tstr(struct sph_cbw *w, const char *str, size_t len)
{
	CBW_ENCODE(w, cbor_encode_string_start(len, w->buf + w->len, w->cap - w->len));
	sph_cbw_raw(w, (const uint8_t *)str, len);
}

void sph_cbw_array(struct sph_cbw *w, size_t count)
{
	CBW_ENCODE(w, cbor_encode_array_start(count, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_map(struct sph_cbw *w, size_t count)
{
	CBW_ENCODE(w, cbor_encode_map_start(count, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_tag(struct sph_cbw *w, uint64_t tag)
{
	CBW_ENCODE(w, cbor_encode_tag(tag, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_bool(struct sph_cbw *w, bool v)
{
	CBW_ENCODE(w, cbor_encode_bool(v, w->buf + w->len, w->cap - w->len));
}

void sph_cbw_null(struct sph_cbw *w)
{
	CBW_ENCODE(w, cbor_encode_null(w->buf + w->len, w->cap - w->len));
}

int sph_cbw_finish(const struct sph_cbw *w, size_t *len)
{
	if (len)
		*len = 0;
	if (w->err)
		return w->err;
	if (len)
		*len = w->len;
	return 0;
}

/* ---- reader ---------------------------------------------------------------- */

/* What one libcbor callback reported. */
struct cbr_event {
	int kind; /* enum sph_cbor_type, or -1 for anything we refuse */
	uint64_t u;
	const uint8_t *data;
	size_t len;
};

static void ev_uint8(void *c, uint8_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_UINT, v, NULL, 0};
}
static void ev_uint16(void *c, uint16_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_UINT, v, NULL, 0};
}
static void ev_uint32(void *c, uint32_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_UINT, v, NULL, 0};
}
static void ev_uint64(void *c, uint64_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_UINT, v, NULL, 0};
}
static void ev_negint8(void *c, uint8_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_NEGINT, v, NULL, 0};
}
static void ev_negint16(void *c, uint16_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_NEGINT, v, NULL, 0};
}
static void ev_negint32(void *c, uint32_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_NEGINT, v, NULL, 0};
}
static void ev_negint64(void *c, uint64_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_NEGINT, v, NULL, 0};
}
static void ev_bstr(void *c, cbor_data d, size_t n)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_BSTR, n, d, n};
}
static void ev_tstr(void *c, cbor_data d, size_t n)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_TSTR, n, d, n};
}
static void ev_array(void *c, size_t n)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_ARRAY, n, NULL, 0};
}
static void ev_map(void *c, size_t n)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_MAP, n, NULL, 0};
}
static void ev_tag(void *c, uint64_t v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_TAG, v, NULL, 0};
}
static void ev_bool(void *c, bool v)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_BOOL, v ? 1 : 0, NULL, 0};
}
static void ev_null(void *c)
{
	*(struct cbr_event *)c = (struct cbr_event){SPH_CBOR_NULL, 0, NULL, 0};
}
static void ev_refused(void *c)
{
	((struct cbr_event *)c)->kind = -1;
}
static void ev_refused_float(void *c, float f)
{
	(void)f;
	((struct cbr_event *)c)->kind = -1;
}
static void ev_refused_double(void *c, double f)
{
	(void)f;
	((struct cbr_event *)c)->kind = -1;
}

static const struct cbor_callbacks cbr_callbacks = {
        .uint8 = ev_uint8,
        .uint16 = ev_uint16,
        .uint32 = ev_uint32,
        .uint64 = ev_uint64,
        .negint8 = ev_negint8,
        .negint16 = ev_negint16,
        .negint32 = ev_negint32,
        .negint64 = ev_negint64,
        .byte_string = ev_bstr,
        .byte_string_start = ev_refused,
        .string = ev_tstr,
        .string_start = ev_refused,
        .array_start = ev_array,
        .indef_array_start = ev_refused,
        .map_start = ev_map,
        .indef_map_start = ev_refused,
        .tag = ev_tag,
        .float2 = ev_refused_float,
        .float4 = ev_refused_float,
        .float8 = ev_refused_double,
        .undefined = ev_refused,
        .null = ev_null,
        .boolean = ev_bool,
        .indef_break = ev_refused,
};

/* Size of the shortest head for argument v (RFC 8949 §4.2.1). */
static size_t shortest_head(uint64_t v)
{
	if (v < 24)
		return 1;
	if (v <= UINT8_MAX)
		return 2;
	if (v <= UINT16_MAX)
		return 3;
	if (v <= UINT32_MAX)
		return 5;
	return 9;
}

void sph_cbr_init(struct sph_cbr *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = buf ? len : 0;
	r->off = 0;
}

/* Decodes the item at r->off into *it; returns the bytes it spans (head, plus
 * contents for strings) or a negative status. */
static int cbr_decode(const struct sph_cbr *r, struct sph_cbor_item *it, size_t *used)
{
	struct cbr_event ev = {-1, 0, NULL, 0};
	struct cbor_decoder_result res;
	size_t avail = r->len - r->off;
	size_t head;

	if (avail == 0)
		return SPH_ERR_TRUNCATED;
	if (r->buf[r->off] >= 0xc6 && r->buf[r->off] <= 0xd4) {
		/* libcbor 0.8 reports the one-byte tags 6..20 as errors (they were
		 * unassigned when it was written); COSE_Sign1 is tag 18. */
		ev = (struct cbr_event){SPH_CBOR_TAG, (uint64_t)(r->buf[r->off] - 0xc0), NULL, 0};
		res = (struct cbor_decoder_result){.read = 1, .status = CBOR_DECODER_FINISHED};
	} else {
		res = cbor_stream_decode(r->buf + r->off, avail, &cbr_callbacks, &ev);
	}
	if (res.status == CBOR_DECODER_NEDATA)
		return SPH_ERR_TRUNCATED;
	if (res.status != CBOR_DECODER_FINISHED || ev.kind < 0)
		return SPH_ERR_MALFORMED;
	if (res.read == 0 || res.read > avail)
		return SPH_ERR_MALFORMED;

	it->type = (enum sph_cbor_type)ev.kind;
	it->u = ev.u;
	it->data = ev.data;
	it->len = ev.len;
	it->start = r->buf + r->off;

	/* Deterministic encoding: the head must be the shortest form of its argument.
	 * true/false/null are single-byte simple values. */
	switch (it->type) {
	case SPH_CBOR_BOOL:
	case SPH_CBOR_NULL:
		head = 1;
		if (res.read != 1)
			return SPH_ERR_MALFORMED;
		break;
	case SPH_CBOR_BSTR:
	case SPH_CBOR_TSTR:
		if (res.read < ev.len)
			return SPH_ERR_MALFORMED;
		head = res.read - ev.len;
		if (head != shortest_head(ev.len))
			return SPH_ERR_MALFORMED;
		break;
	default:
		head = res.read;
		if (head != shortest_head(ev.u))
			return SPH_ERR_MALFORMED;
		break;
	}
	*used = res.read;
	return 0;
}

int sph_cbr_peek(const struct sph_cbr *r, struct sph_cbor_item *it)
{
	size_t used;
	return cbr_decode(r, it, &used);
}

int sph_cbr_next(struct sph_cbr *r, struct sph_cbor_item *it)
{
	size_t used = 0;
	int rc = cbr_decode(r, it, &used);
	if (rc == 0)
		r->off += used;
	return rc;
}

static int cbr_expect(struct sph_cbr *r, enum sph_cbor_type type, struct sph_cbor_item *it)
{
	size_t used = 0;
	int rc = cbr_decode(r, it, &used);
	if (rc)
		return rc;
	if (it->type != type)
		return SPH_ERR_MALFORMED;
	r->off += used;
	return 0;
}

int sph_cbr_uint(struct sph_cbr *r, uint64_t *v)
{
	struct sph_cbor_item it;
	int rc = cbr_expect(r, SPH_CBOR_UINT, &it);
	*v = rc == 0 ? it.u : 0;
	return rc;
}

int sph_cbr_int(struct sph_cbr *r, int64_t *v)
{
	struct sph_cbor_item it;
	size_t used = 0;
	int rc;

	*v = 0;
	rc = cbr_decode(r, &it, &used);
	if (rc)
		return rc;
	if (it.type == SPH_CBOR_UINT && it.u <= (uint64_t)INT64_MAX)
		*v = (int64_t)it.u;
	else if (it.type == SPH_CBOR_NEGINT && it.u <= (uint64_t)INT64_MAX)
		*v = -1 - (int64_t)it.u;
	else
		return SPH_ERR_MALFORMED;
	r->off += used;
	return 0;
}

int sph_cbr_bstr(struct sph_cbr *r, const uint8_t **data, size_t *len)
{
	struct sph_cbor_item it;
	int rc = cbr_expect(r, SPH_CBOR_BSTR, &it);
	*data = rc == 0 ? it.data : NULL;
	*len = rc == 0 ? it.len : 0;
	return rc;
}

int sph_cbr_tstr(struct sph_cbr *r, const uint8_t **data, size_t *len)
{
	struct sph_cbor_item it;
	int rc = cbr_expect(r, SPH_CBOR_TSTR, &it);
	*data = rc == 0 ? it.data : NULL;
	*len = rc == 0 ? it.len : 0;
	return rc;
}

int sph_cbr_array(struct sph_cbr *r, size_t *count)
{
	struct sph_cbor_item it;
	int rc = cbr_expect(r, SPH_CBOR_ARRAY, &it);
	*count = rc == 0 ? (size_t)it.u : 0;
	return rc;
}

int sph_cbr_map(struct sph_cbr *r, size_t *count)
{
	struct sph_cbor_item it;
	int rc = cbr_expect(r, SPH_CBOR_MAP, &it);
	*count = rc == 0 ? (size_t)it.u : 0;
	return rc;
}

/* Skips one item at r->off, recursing into arrays, maps and tags up to
 * SPH_CBOR_MAX_DEPTH. Map keys are compared by their encoded bytes: the
 * reader accepts only shortest-form heads, so equal keys have equal bytes. */
static int cbr_skip_item(struct sph_cbr *r, unsigned depth)
{
	struct {
		const uint8_t *p;
		size_t len;
	} keys[SPH_CBOR_MAX_KEYS];
	struct sph_cbor_item it;
	int rc;

	if ((rc = sph_cbr_next(r, &it)))
		return rc;
	if (it.type != SPH_CBOR_ARRAY && it.type != SPH_CBOR_MAP && it.type != SPH_CBOR_TAG)
		return 0;
	if (depth == SPH_CBOR_MAX_DEPTH)
		return SPH_ERR_TOO_LARGE;
	if (it.type == SPH_CBOR_TAG)
		return cbr_skip_item(r, depth + 1);
	/* Each item costs at least one byte: refuse counts beyond what remains. */
	if (it.u > r->len - r->off)
		return SPH_ERR_TRUNCATED;
	if (it.type == SPH_CBOR_ARRAY) {
		for (uint64_t i = 0; i < it.u; i++)
			if ((rc = cbr_skip_item(r, depth + 1)))
				return rc;
		return 0;
	}
	if (it.u > SPH_CBOR_MAX_KEYS)
		return SPH_ERR_TOO_LARGE;
	for (size_t i = 0; i < it.u; i++) {
		size_t start = r->off;
		if ((rc = cbr_skip_item(r, depth + 1)))
			return rc;
		keys[i].p = r->buf + start;
		keys[i].len = r->off - start;
		for (size_t j = 0; j < i; j++)
			if (keys[j].len == keys[i].len &&
			    memcmp(keys[j].p, keys[i].p, keys[i].len) == 0)
				return SPH_ERR_DUPLICATE;
		if ((rc = cbr_skip_item(r, depth + 1)))
			return rc;
	}
	return 0;
}

int sph_cbr_skip(struct sph_cbr *r)
{
	size_t start = r->off;
	int rc = cbr_skip_item(r, 0);

	if (rc)
		r->off = start;
	return rc;
}

bool sph_cbr_done(const struct sph_cbr *r)
{
	return r->off == r->len;
}

int sph_cbr_expect_end(const struct sph_cbr *r)
{
	return r->off == r->len ? 0 : SPH_ERR_TRAILING;
}

int sph_keyset_add(struct sph_keyset *ks, int64_t key)
{
	for (size_t i = 0; i < ks->n; i++)
		if (ks->keys[i] == key)
			return SPH_ERR_DUPLICATE;
	if (ks->n == SPH_CBOR_MAX_KEYS)
		return SPH_ERR_TOO_LARGE;
	ks->keys[ks->n++] = key;
	return 0;
}
