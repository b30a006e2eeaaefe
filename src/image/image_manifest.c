/*
 * image manifest: its deterministic CBOR encoding and strict decoder
 * (docs/formats.md §5.3).
 *
 * Keys 1..10 are written in ascending order, each once; key 10 (the app
 * manifest) exactly for applications. The decoder accepts only that form, so
 * a manifest decodes only from the bytes img_manifest_encode() would produce
 * for it (fuzz/fuzz_image.c checks this).
 */
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "image_internal.h"

static const int64_t key_order[] = {
        IMG_KEY_COMPONENT_ID, IMG_KEY_TYPE,         IMG_KEY_NAME,         IMG_KEY_VERSION,
        IMG_KEY_SVN,          IMG_KEY_PAYLOAD_SIZE, IMG_KEY_PAYLOAD_HASH, IMG_KEY_DEBUG,
        IMG_KEY_TARGET,       IMG_KEY_APP_MANIFEST,
};
#define N_KEYS (sizeof(key_order) / sizeof(key_order[0]))
_Static_assert(N_KEYS <= 32, "seen mask is 32 bits");
/* Keys every manifest holds; IMG_KEY_APP_MANIFEST depends on the type. */
#define MANDATORY_MASK ((1u << (N_KEYS - 1)) - 1)
#define APP_MASK       (1u << (N_KEYS - 1))

int img_sha256(const uint8_t *data, size_t len, uint8_t out[IMG_DIGEST_LEN])
{
	static const uint8_t empty[1];
	unsigned int n = 0;

	if (EVP_Digest(data ? data : empty, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != IMG_DIGEST_LEN) {
		memset(out, 0, IMG_DIGEST_LEN);
		return SPH_ERR_CRYPTO;
	}
	return 0;
}

/* Length of a NUL-terminated text field of capacity max+1 if valid, else 0. */
static size_t text_len(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);
	return sph_text_ok((const uint8_t *)s, len, max) ? len : 0;
}

static bool type_ok(uint64_t type)
{
	return type >= IMG_TYPE_BOOTLOADER && type <= IMG_TYPE_RTAPP;
}

static bool is_app(uint64_t type)
{
	return type == IMG_TYPE_APP || type == IMG_TYPE_RTAPP;
}

static bool uuid_ok(const uint8_t id[IMG_COMPONENT_ID_LEN])
{
	uint8_t any = 0;
	for (size_t i = 0; i < IMG_COMPONENT_ID_LEN; i++)
		any |= id[i];
	return any != 0; /* the nil UUID names nothing */
}

/* The app manifest: 1..IMG_APP_MANIFEST_MAX bytes of UTF-8 holding exactly one
 * JSON object, without NUL bytes or duplicate member names. jansson checks
 * the UTF-8 and the syntax; its schema is the OS's business. */
static bool app_manifest_ok(const char *s, size_t len)
{
	json_error_t err;
	json_t *root;
	bool ok;

	if (!s || len == 0 || len > IMG_APP_MANIFEST_MAX || memchr(s, 0, len))
		return false;
	root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
	ok = root && json_is_object(root);
	json_decref(root);
	return ok;
}

static bool manifest_ok(const struct img_manifest *m)
{
	if (!uuid_ok(m->component_id) || !type_ok(m->type))
		return false;
	if (!text_len(m->name, IMG_NAME_MAX) || !text_len(m->version, IMG_VERSION_MAX) ||
	    !text_len(m->target, IMG_TARGET_MAX))
		return false;
	if (m->security_version > IMG_SVN_MAX || m->payload_size > IMG_MAX_PAYLOAD)
		return false;
	if (is_app(m->type))
		return app_manifest_ok(m->app_manifest, m->app_manifest_len);
	return m->app_manifest == NULL && m->app_manifest_len == 0;
}

int img_manifest_encode(const struct img_manifest *m, uint8_t *out, size_t cap, size_t *out_len)
{
	struct sph_cbw w;
	bool app;
	int rc = SPH_ERR_INVALID_ARG;

	if (out_len)
		*out_len = 0;
	if (!m || !out_len || (!out && cap))
		goto out;
	rc = SPH_ERR_CLAIM;
	if (!manifest_ok(m))
		goto out;
	app = is_app(m->type);
	sph_cbw_init(&w, out, cap);
	sph_cbw_map(&w, app ? N_KEYS : N_KEYS - 1);
	sph_cbw_uint(&w, IMG_KEY_COMPONENT_ID);
	sph_cbw_bstr(&w, m->component_id, sizeof(m->component_id));
	sph_cbw_uint(&w, IMG_KEY_TYPE);
	sph_cbw_uint(&w, m->type);
	sph_cbw_uint(&w, IMG_KEY_NAME);
	sph_cbw_tstr(&w, m->name, strlen(m->name));
	sph_cbw_uint(&w, IMG_KEY_VERSION);
	sph_cbw_tstr(&w, m->version, strlen(m->version));
	sph_cbw_uint(&w, IMG_KEY_SVN);
	sph_cbw_uint(&w, m->security_version);
	sph_cbw_uint(&w, IMG_KEY_PAYLOAD_SIZE);
	sph_cbw_uint(&w, m->payload_size);
	sph_cbw_uint(&w, IMG_KEY_PAYLOAD_HASH);
	sph_cbw_bstr(&w, m->payload_sha256, sizeof(m->payload_sha256));
	sph_cbw_uint(&w, IMG_KEY_DEBUG);
	sph_cbw_bool(&w, m->debug);
	sph_cbw_uint(&w, IMG_KEY_TARGET);
	sph_cbw_tstr(&w, m->target, strlen(m->target));
	if (app) {
		sph_cbw_uint(&w, IMG_KEY_APP_MANIFEST);
		sph_cbw_tstr(&w, m->app_manifest, m->app_manifest_len);
	}
	rc = sph_cbw_finish(&w, out_len);
out:
	return rc;
}

/* ---- decoder ----------------------------------------------------------------
 * Statuses as for EAT claims: the reader's own for bad CBOR; SPH_ERR_CLAIM for
 * an unknown key, a wrong type, length or value, a missing key;
 * SPH_ERR_DUPLICATE for a repeated key; SPH_ERR_MALFORMED for keys out of
 * order; SPH_ERR_TRAILING for bytes after the map.
 */

static int read_value(struct sph_cbr *r, int64_t key, void *ctx)
{
	struct img_manifest *m = ctx;
	struct sph_cbor_item it;
	uint64_t v = 0;
	int rc = SPH_ERR_CLAIM;

	switch (key) {
	case IMG_KEY_COMPONENT_ID:
		rc = sph_cbr_bstr_exact(r, m->component_id, sizeof(m->component_id));
		if (rc == 0 && !uuid_ok(m->component_id))
			rc = SPH_ERR_CLAIM;
		break;
	case IMG_KEY_TYPE:
		rc = sph_cbr_uint_max(r, IMG_TYPE_RTAPP, &v);
		if (rc == 0 && !type_ok(v))
			rc = SPH_ERR_CLAIM;
		m->type = (uint32_t)v;
		break;
	case IMG_KEY_NAME:
		rc = sph_cbr_text(r, m->name, IMG_NAME_MAX);
		break;
	case IMG_KEY_VERSION:
		rc = sph_cbr_text(r, m->version, IMG_VERSION_MAX);
		break;
	case IMG_KEY_SVN:
		rc = sph_cbr_uint_max(r, IMG_SVN_MAX, &v);
		m->security_version = (uint32_t)v;
		break;
	case IMG_KEY_PAYLOAD_SIZE:
		rc = sph_cbr_uint_max(r, IMG_MAX_PAYLOAD, &m->payload_size);
		break;
	case IMG_KEY_PAYLOAD_HASH:
		rc = sph_cbr_bstr_exact(r, m->payload_sha256, sizeof(m->payload_sha256));
		break;
	case IMG_KEY_DEBUG:
		rc = sph_cbr_typed(r, SPH_CBOR_BOOL, &it);
		m->debug = rc == 0 && it.u != 0;
		break;
	case IMG_KEY_TARGET:
		rc = sph_cbr_text(r, m->target, IMG_TARGET_MAX);
		break;
	case IMG_KEY_APP_MANIFEST:
		rc = sph_cbr_typed(r, SPH_CBOR_TSTR, &it);
		if (rc)
			break;
		/* Key 2 precedes key 10, so the type is known here. */
		if (!is_app(m->type) || !app_manifest_ok((const char *)it.data, it.len)) {
			rc = SPH_ERR_CLAIM;
			break;
		}
		m->app_manifest = (const char *)it.data;
		m->app_manifest_len = it.len;
		break;
	}
	return rc;
}

int img_manifest_decode(const uint8_t *buf, size_t len, struct img_manifest *out)
{
	struct sph_cbr r;
	size_t n = 0;
	uint32_t seen = 0, want;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!out || (!buf && len > 0))
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (len > IMG_MAX_MANIFEST)
		goto out;
	sph_cbr_init(&r, buf, len);
	rc = sph_cbr_map(&r, &n);
	if (rc)
		goto out;
	rc = sph_cbr_profile_entries(&r, n, key_order, N_KEYS, read_value, out, &seen);
	if (rc)
		goto out;
	want = MANDATORY_MASK | (is_app(out->type) ? APP_MASK : 0);
	rc = SPH_ERR_CLAIM;
	if (seen != want)
		goto out;
	rc = sph_cbr_expect_end(&r);
out:
	if (rc && out)
		memset(out, 0, sizeof(*out));
	return rc;
}
