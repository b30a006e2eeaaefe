/*
 * device capability files (docs/formats.md §8): a COSE_Sign1 by a tenant
 * capability signer over a small deterministic map that binds capabilities
 * (appDevelopment, fieldServicing) to one device id.
 *
 * The envelope is pinned byte for byte: after a strict decode, the file is
 * rebuilt with cose_sign1_create (replaying its own signature) and must equal
 * the input. The payload is read with the strict profile-map readers. The
 * verifier's result starts as a refusal and becomes 0 only at the end.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image_internal.h"

static const int64_t key_order[] = {
        IMG_CAP_KEY_DEVICE_ID, IMG_CAP_KEY_CAPABILITIES, IMG_CAP_KEY_ISSUED_AT,
        IMG_CAP_KEY_EXPIRES,   IMG_CAP_KEY_TENANT,
};
#define N_KEYS         (sizeof(key_order) / sizeof(key_order[0]))
#define MANDATORY_MASK 0x17u /* every key but IMG_CAP_KEY_EXPIRES (index 3) */
#define EXPIRES_BIT    0x08u

static const char *const cap_names[] = {NULL, "appDevelopment", "fieldServicing"};

const char *img_cap_name(uint32_t cap)
{
	return cap >= IMG_CAP_APP_DEVELOPMENT && cap <= IMG_CAP_FIELD_SERVICING ? cap_names[cap]
	                                                                        : NULL;
}

int img_cap_parse_names(const char *list, uint32_t *mask)
{
	const char *p = list;
	uint32_t m = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (mask)
		*mask = 0;
	if (!list || !mask)
		goto out;
	for (;;) {
		size_t n = strcspn(p, ",");
		uint32_t bit = 0;

		for (uint32_t c = IMG_CAP_APP_DEVELOPMENT; c <= IMG_CAP_FIELD_SERVICING; c++)
			if (strlen(cap_names[c]) == n && strncmp(p, cap_names[c], n) == 0)
				bit = 1u << c;
		if (!bit || (m & bit))
			goto out; /* empty, unknown or repeated */
		m |= bit;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	*mask = m;
	rc = 0;
out:
	return rc;
}

static bool cap_ok(const struct img_capability *c)
{
	size_t tlen = strnlen(c->tenant, IMG_CAP_TENANT_MAX + 1);

	if (c->caps == 0 || (c->caps & ~IMG_CAP_MASK_ALL))
		return false;
	if (c->expires != 0 && c->expires <= c->issued_at)
		return false;
	return sph_text_ok((const uint8_t *)c->tenant, tlen, IMG_CAP_TENANT_MAX);
}

/* Encodes the payload map deterministically. Returns 0 or a negative status. */
static int payload_encode(const struct img_capability *c, uint8_t *out, size_t cap, size_t *out_len)
{
	struct sph_cbw w;
	size_t n = 0;

	*out_len = 0;
	if (!cap_ok(c))
		return SPH_ERR_CLAIM;
	for (uint32_t v = IMG_CAP_APP_DEVELOPMENT; v <= IMG_CAP_FIELD_SERVICING; v++)
		n += (c->caps >> v) & 1u;
	sph_cbw_init(&w, out, cap);
	sph_cbw_map(&w, c->expires ? N_KEYS : N_KEYS - 1);
	sph_cbw_uint(&w, IMG_CAP_KEY_DEVICE_ID);
	sph_cbw_bstr(&w, c->device_id, sizeof(c->device_id));
	sph_cbw_uint(&w, IMG_CAP_KEY_CAPABILITIES);
	sph_cbw_array(&w, n);
	for (uint32_t v = IMG_CAP_APP_DEVELOPMENT; v <= IMG_CAP_FIELD_SERVICING; v++)
		if (c->caps & (1u << v))
			sph_cbw_uint(&w, v);
	sph_cbw_uint(&w, IMG_CAP_KEY_ISSUED_AT);
	sph_cbw_uint(&w, c->issued_at);
	if (c->expires) {
		sph_cbw_uint(&w, IMG_CAP_KEY_EXPIRES);
		sph_cbw_uint(&w, c->expires);
	}
	sph_cbw_uint(&w, IMG_CAP_KEY_TENANT);
	sph_cbw_tstr(&w, c->tenant, strlen(c->tenant));
	return sph_cbw_finish(&w, out_len);
}

/* The capabilities array: 1..IMG_CAP_MAX_ENTRIES known values, strictly ascending. */
static int read_caps(struct sph_cbr *r, uint32_t *mask)
{
	uint64_t v = 0, prev = 0;
	size_t n = 0;
	int rc;

	*mask = 0;
	if ((rc = sph_cbr_array(r, &n)))
		return rc == SPH_ERR_MALFORMED ? SPH_ERR_CLAIM : rc;
	if (n == 0 || n > IMG_CAP_MAX_ENTRIES)
		return SPH_ERR_CLAIM;
	for (size_t i = 0; i < n; i++) {
		if ((rc = sph_cbr_uint_max(r, IMG_CAP_FIELD_SERVICING, &v)))
			return rc;
		if (v < IMG_CAP_APP_DEVELOPMENT)
			return SPH_ERR_CLAIM;
		if (i > 0 && v == prev)
			return SPH_ERR_DUPLICATE;
		if (i > 0 && v < prev)
			return SPH_ERR_MALFORMED;
		*mask |= 1u << v;
		prev = v;
	}
	return 0;
}

static int read_value(struct sph_cbr *r, int64_t key, void *ctx)
{
	struct img_capability *c = ctx;
	int rc = SPH_ERR_CLAIM;

	switch (key) {
	case IMG_CAP_KEY_DEVICE_ID:
		rc = sph_cbr_bstr_exact(r, c->device_id, sizeof(c->device_id));
		break;
	case IMG_CAP_KEY_CAPABILITIES:
		rc = read_caps(r, &c->caps);
		break;
	case IMG_CAP_KEY_ISSUED_AT:
		rc = sph_cbr_uint_max(r, UINT64_MAX, &c->issued_at);
		break;
	case IMG_CAP_KEY_EXPIRES:
		rc = sph_cbr_uint_max(r, UINT64_MAX, &c->expires);
		if (rc == 0 && c->expires <= c->issued_at)
			rc = SPH_ERR_CLAIM; /* key 3 precedes key 4 */
		break;
	case IMG_CAP_KEY_TENANT:
		rc = sph_cbr_text(r, c->tenant, IMG_CAP_TENANT_MAX);
		break;
	}
	return rc;
}

/* Decodes the payload strictly. Returns 0 or a status; *c zeroed on failure. */
static int payload_decode(const uint8_t *buf, size_t len, struct img_capability *c)
{
	struct sph_cbr r;
	size_t n = 0;
	uint32_t seen = 0;
	int rc = SPH_ERR_TOO_LARGE;

	memset(c, 0, sizeof(*c));
	if (len > IMG_CAP_MAX_PAYLOAD)
		goto out;
	sph_cbr_init(&r, buf, len);
	if ((rc = sph_cbr_map(&r, &n)))
		goto out;
	if ((rc = sph_cbr_profile_entries(&r, n, key_order, N_KEYS, read_value, c, &seen)))
		goto out;
	rc = SPH_ERR_CLAIM;
	if ((seen & ~EXPIRES_BIT) != MANDATORY_MASK)
		goto out;
	rc = sph_cbr_expect_end(&r);
out:
	if (rc)
		memset(c, 0, sizeof(*c));
	return rc;
}

/* Signer callback that replays a known signature (for the byte-exact rebuild). */
static int replay_sig(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                      uint8_t sig[COSE_ES256_SIG_LEN])
{
	(void)digest;
	memcpy(sig, ctx, COSE_ES256_SIG_LEN);
	return 0;
}

/* Structure: strict COSE decode, content type, the envelope rebuilt byte for
 * byte, DER certificates, payload. s receives the decoded COSE view. */
static int parse(const uint8_t *buf, size_t len, struct cose_sign1 *s, struct img_capability *c,
                 char *why, size_t cap)
{
	struct cose_sign1_params p;
	uint8_t sig[COSE_ES256_SIG_LEN];
	uint8_t *re = NULL;
	size_t re_len = 0;
	int rc = SPH_ERR_TOO_LARGE;

	memset(s, 0, sizeof(*s));
	memset(c, 0, sizeof(*c));
	if (len > IMG_CAP_MAX_FILE) {
		img_why(why, cap, "larger than %u bytes", IMG_CAP_MAX_FILE);
		goto out;
	}
	if ((rc = cose_sign1_decode(buf, len, s))) {
		img_why(why, cap, "COSE_Sign1: %s", sph_strerror(rc));
		goto out;
	}
	rc = SPH_ERR_UNSUPPORTED;
	if (s->content_type != IMG_CAP_CONTENT_TYPE) {
		img_why(why, cap, "COSE content type is not a capability file (%d)",
		        IMG_CAP_CONTENT_TYPE);
		goto out;
	}
	rc = SPH_ERR_MALFORMED;
	if (!s->tagged || !s->payload || !s->x5chain_protected || s->x5_count == 0 ||
	    s->signature_len != COSE_ES256_SIG_LEN || s->kid) {
		img_why(why, cap, "COSE envelope differs from the capability profile");
		goto out;
	}
	memcpy(sig, s->signature, sizeof(sig));
	memset(&p, 0, sizeof(p));
	p.payload = s->payload;
	p.payload_len = s->payload_len;
	p.content_type = IMG_CAP_CONTENT_TYPE;
	p.x5chain = s->x5;
	p.x5chain_count = s->x5_count;
	rc = SPH_ERR_NOMEM;
	if (!(re = malloc(len)))
		goto out;
	rc = cose_sign1_create(&p, replay_sig, sig, re, len, &re_len);
	if (rc || re_len != len || memcmp(re, buf, len) != 0) {
		rc = SPH_ERR_MALFORMED;
		img_why(why, cap, "COSE envelope differs from the capability profile");
		goto out;
	}
	rc = SPH_ERR_MALFORMED;
	for (size_t i = 0; i < s->x5_count; i++) {
		const unsigned char *d = s->x5[i].der;
		X509 *x = d2i_X509(NULL, &d, (long)s->x5[i].len);
		bool ok = x && d == s->x5[i].der + s->x5[i].len;

		X509_free(x);
		if (!ok) {
			img_why(why, cap,
			        "x5chain holds something that is not one DER certificate");
			goto out;
		}
	}
	if ((rc = payload_decode(s->payload, s->payload_len, c))) {
		img_why(why, cap, "capability payload: %s", sph_strerror(rc));
		goto out;
	}
	img_why(why, cap, "ok");
	rc = 0;
out:
	free(re);
	if (rc) {
		memset(s, 0, sizeof(*s));
		memset(c, 0, sizeof(*c));
	}
	return rc;
}

int img_cap_parse(const uint8_t *buf, size_t len, struct img_capability *out, char *why,
                  size_t why_cap)
{
	struct cose_sign1 s;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!out || (!buf && len > 0))
		goto out;
	rc = parse(buf, len, &s, out, why, why_cap);
out:
	return rc;
}

int img_cap_pack(const struct img_capability *c, EVP_PKEY *signer, X509 *leaf,
                 STACK_OF(X509) * chain_extra, uint8_t **out, size_t *out_len)
{
	uint8_t payload[IMG_CAP_MAX_PAYLOAD];
	uint8_t *cose = NULL;
	size_t plen = 0, cose_len = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!c || !signer || !leaf || !out || !out_len)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), signer) != 1)
		goto out;
	if ((rc = payload_encode(c, payload, sizeof(payload), &plen)))
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(cose = malloc(IMG_MAX_COSE)))
		goto out;
	rc = img_sign_with_chain(payload, plen, IMG_CAP_CONTENT_TYPE, signer, leaf, chain_extra,
	                         cose, IMG_MAX_COSE, &cose_len);
	if (rc)
		goto out;
	*out = cose;
	*out_len = cose_len;
	cose = NULL; /* transferred */
	rc = 0;
out:
	free(cose);
	return rc;
}

/* ---- verification --------------------------------------------------------- */

/* The signer must be a tenant capability signer, certified as such by every
 * CA on its path. */
static int chain_role(struct img_chain *ch, char *why, size_t cap)
{
	enum img_role role = IMG_ROLE_NONE;
	int rc = img_chain_role(ch, &role, why, cap);

	if (rc == 0 && role != IMG_ROLE_CAPABILITY) {
		img_why(why, cap, "the signer is not a tenant capability signer (role %s)",
		        img_role_name(role));
		rc = SPH_ERR_PERMISSION;
	}
	return rc;
}

int img_cap_verify(const uint8_t *buf, size_t len, const struct img_trust *trust,
                   const uint8_t device_id[IMG_CAP_DEVICE_ID_LEN], struct img_capability *out,
                   char *why, size_t why_cap)
{
	struct img_capability c;
	struct cose_sign1 s;
	struct img_chain ch;
	uint64_t now;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&ch, 0, sizeof(ch));
	memset(&c, 0, sizeof(c));
	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!trust || !trust->root_cert == !trust->root_hash ||
	    trust->time_policy > IMG_TIME_NONE || !device_id || (!buf && len > 0))
		goto out;
	if (trust->time_policy == IMG_TIME_AT && trust->at < 0)
		goto out;

	if ((rc = parse(buf, len, &s, &c, why, why_cap)))
		goto out;
	img_why(why, why_cap, "out of memory, or the crypto library failed");
	if ((rc = img_chain_load(&ch, s.x5, s.x5_count)))
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (img_signer_id(ch.certs[0], c.signer_id) != 0) {
		img_why(why, why_cap, "the signer key is not ECDSA P-256");
		goto out;
	}
	rc = cose_sign1_verify(buf, len, NULL, 0, X509_get0_pubkey(ch.certs[0]), NULL);
	if (rc) {
		img_why(why, why_cap, "the COSE signature does not verify with the signer's key");
		goto out;
	}
	if ((rc = img_chain_anchor(&ch, trust, why, why_cap)))
		goto out;
	if ((rc = img_chain_verify(&ch, trust, why, why_cap)))
		goto out;
	if ((rc = chain_role(&ch, why, why_cap)))
		goto out;
	rc = SPH_ERR_PERMISSION;
	if (CRYPTO_memcmp(c.device_id, device_id, IMG_CAP_DEVICE_ID_LEN) != 0) {
		img_why(why, why_cap, "the capability file is for another device");
		goto out;
	}
	if (trust->time_policy != IMG_TIME_NONE) {
		time_t t = trust->time_policy == IMG_TIME_AT ? trust->at : time(NULL);
		rc = SPH_ERR_AUTH;
		if (t < 0) {
			img_why(why, why_cap, "no current time");
			goto out;
		}
		now = (uint64_t)t;
		if (now < c.issued_at) {
			img_why(why, why_cap, "the capability file is not valid yet");
			goto out;
		}
		if (c.expires != 0 && now >= c.expires) {
			img_why(why, why_cap, "the capability file has expired");
			goto out;
		}
	}
	if (out)
		*out = c;
	img_why(why, why_cap, "verified");
	rc = 0;
out:
	img_chain_free(&ch);
	ERR_clear_error();
	return rc;
}
