/*
 * image package: the file layout and the pinned COSE envelope
 * (docs/formats.md §5.1, §5.2): img_pack and img_parse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "image_internal.h"

/* The protected bucket, byte for byte, up to the x5chain value:
 * {1: -7, 3: 65050, 33: ...} */
static const uint8_t prot_prefix[] = {0xa3, 0x01, 0x26, 0x03, 0x19, 0xfe, 0x1a, 0x18, 0x21};
_Static_assert(IMG_CONTENT_TYPE == 0xfe1a, "prot_prefix encodes the content type");

void img_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!why || cap == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(why, cap, fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
}

/* Checks that the CBOR head of a bstr of len bytes sits at p (within end) and
 * that its contents start at want. */
static bool bstr_at(const uint8_t *p, const uint8_t *end, size_t len, const uint8_t *want)
{
	uint8_t head[9];
	struct sph_cbw w;
	size_t n = 0;

	sph_cbw_init(&w, head, sizeof(head));
	sph_cbw_bstr_head(&w, len);
	if (sph_cbw_finish(&w, &n) != 0 || (size_t)(end - p) < n)
		return false;
	return memcmp(p, head, n) == 0 && p + n == want;
}

/* The envelope of §5.2, byte for byte, around what cose_sign1_decode found:
 * d2 84 <bstr prot> a0 <bstr manifest> 58 40 <sig>. */
static int envelope_ok(const uint8_t *cose, size_t len, const struct cose_sign1 *s)
{
	const uint8_t *end = cose + len, *p = cose;

	if (!s->tagged || len < 2 || p[0] != 0xd2 || p[1] != 0x84)
		return SPH_ERR_MALFORMED;
	p += 2;
	if (!bstr_at(p, end, s->protected_len, s->protected_hdr))
		return SPH_ERR_MALFORMED;
	p = s->protected_hdr + s->protected_len;
	if (end - p < 1 || p[0] != 0xa0)
		return SPH_ERR_MALFORMED; /* the unprotected bucket must be empty */
	p++;
	if (!s->payload || !bstr_at(p, end, s->payload_len, s->payload))
		return SPH_ERR_MALFORMED;
	p = s->payload + s->payload_len;
	if (end - p != 2 + COSE_ES256_SIG_LEN || p[0] != 0x58 || p[1] != COSE_ES256_SIG_LEN ||
	    s->signature != p + 2)
		return SPH_ERR_MALFORMED;
	/* Protected: exactly {1: -7, 3: 65050, 33: x5chain}, in that order. */
	if (!s->x5chain_protected || s->x5_count == 0 ||
	    s->protected_len != sizeof(prot_prefix) + s->x5chain_len ||
	    memcmp(s->protected_hdr, prot_prefix, sizeof(prot_prefix)) != 0 ||
	    s->x5chain != s->protected_hdr + sizeof(prot_prefix))
		return SPH_ERR_MALFORMED;
	return 0;
}

/* Each x5chain entry must be exactly one DER certificate. */
static bool certs_ok(const struct cose_sign1 *s)
{
	for (size_t i = 0; i < s->x5_count; i++) {
		const unsigned char *p = s->x5[i].der;
		X509 *x = d2i_X509(NULL, &p, (long)s->x5[i].len);
		bool ok = x && p == s->x5[i].der + s->x5[i].len;

		X509_free(x);
		if (!ok)
			return false;
	}
	return true;
}

int img_parse_structure(const uint8_t *pkg, size_t len, bool check_certs, struct img_package *out,
                        char *why, size_t why_cap)
{
	const struct img_header *h = (const struct img_header *)pkg;
	struct img_package pk;
	struct cose_sign1 s;
	uint32_t cose_len, reserved;
	uint64_t want;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&pk, 0, sizeof(pk));
	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!out || (!pkg && len > 0))
		goto out;

	/* 1. header */
	rc = SPH_ERR_TRUNCATED;
	if (len < IMG_HEADER_LEN) {
		img_why(why, why_cap, "shorter than the %d-byte header", IMG_HEADER_LEN);
		goto out;
	}
	cose_len = sph_get_le32(h->cose_len);
	reserved = sph_get_le32(h->reserved);
	rc = SPH_ERR_MALFORMED;
	if (memcmp(h->magic, IMG_MAGIC, IMG_MAGIC_LEN) != 0) {
		img_why(why, why_cap, "not an image package (bad magic)");
		goto out;
	}
	if (reserved != 0 || cose_len == 0) {
		img_why(why, why_cap, "bad header (reserved field or COSE length 0)");
		goto out;
	}
	rc = SPH_ERR_TOO_LARGE;
	if (cose_len > IMG_MAX_COSE) {
		img_why(why, why_cap, "COSE length %u exceeds %u", cose_len, IMG_MAX_COSE);
		goto out;
	}
	rc = SPH_ERR_TRUNCATED;
	if (len - IMG_HEADER_LEN < cose_len) {
		img_why(why, why_cap, "file ends inside the signed manifest");
		goto out;
	}

	/* 2. COSE_Sign1, strictly, then the pinned envelope */
	pk.cose = pkg + IMG_HEADER_LEN;
	pk.cose_len = cose_len;
	rc = cose_sign1_decode(pk.cose, pk.cose_len, &s);
	if (rc) {
		img_why(why, why_cap, "COSE_Sign1: %s", sph_strerror(rc));
		goto out;
	}
	rc = SPH_ERR_UNSUPPORTED;
	if (s.content_type != IMG_CONTENT_TYPE) {
		img_why(why, why_cap, "COSE content type is not an image manifest (%d)",
		        IMG_CONTENT_TYPE);
		goto out;
	}
	rc = envelope_ok(pk.cose, pk.cose_len, &s);
	if (rc) {
		img_why(why, why_cap, "COSE envelope differs from the image profile");
		goto out;
	}

	/* 3. certificates */
	rc = SPH_ERR_MALFORMED;
	if (check_certs && !certs_ok(&s)) {
		img_why(why, why_cap, "x5chain holds something that is not one DER certificate");
		goto out;
	}
	pk.n_certs = s.x5_count;
	memcpy(pk.certs, s.x5, sizeof(pk.certs));

	/* 4. manifest */
	pk.manifest_cbor = s.payload;
	pk.manifest_cbor_len = s.payload_len;
	rc = img_manifest_decode(s.payload, s.payload_len, &pk.manifest);
	if (rc) {
		img_why(why, why_cap, "manifest: %s", sph_strerror(rc));
		goto out;
	}

	/* 5. length: 16 + cose_len + payload size, exactly (no overflow: both bounded) */
	want = (uint64_t)IMG_HEADER_LEN + cose_len + pk.manifest.payload_size;
	if ((uint64_t)len != want) {
		rc = (uint64_t)len < want ? SPH_ERR_TRUNCATED : SPH_ERR_TRAILING;
		img_why(why, why_cap, "file is %zu bytes, the manifest says %llu", len,
		        (unsigned long long)want);
		goto out;
	}
	pk.payload = pk.cose + cose_len;
	pk.payload_len = (size_t)pk.manifest.payload_size;
	*out = pk;
	img_why(why, why_cap, "ok");
	rc = 0;
out:
	return rc;
}

int img_parse(const uint8_t *pkg, size_t len, struct img_package *out)
{
	uint8_t digest[IMG_DIGEST_LEN];
	int rc = img_parse_structure(pkg, len, true, out, NULL, 0);

	if (rc)
		goto out;
	rc = img_sha256(out->payload, out->payload_len, digest);
	if (rc)
		goto out;
	if (CRYPTO_memcmp(digest, out->manifest.payload_sha256, sizeof(digest)) != 0)
		rc = SPH_ERR_BAD_SIGNATURE;
out:
	if (rc && out)
		memset(out, 0, sizeof(*out));
	return rc;
}

int img_pack(const struct img_manifest *m, const uint8_t *payload, size_t len, EVP_PKEY *signer,
             X509 *leaf, STACK_OF(X509) * chain_extra, uint8_t **out, size_t *out_len)
{
	struct img_manifest man;
	struct img_header h;
	uint8_t *mbuf = NULL, *cose = NULL, *pkg = NULL;
	size_t mlen = 0, cose_len = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!m || (!payload && len > 0) || !signer || !leaf || !out || !out_len)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), signer) != 1)
		goto out; /* the key must be the leaf certificate's */
	rc = SPH_ERR_TOO_LARGE;
	if (len > IMG_MAX_PAYLOAD)
		goto out;

	man = *m;
	man.payload_size = len;
	rc = img_sha256(payload, len, man.payload_sha256);
	if (rc)
		goto out;
	rc = SPH_ERR_NOMEM;
	mbuf = malloc(IMG_MAX_MANIFEST);
	cose = malloc(IMG_MAX_COSE);
	if (!mbuf || !cose)
		goto out;
	rc = img_manifest_encode(&man, mbuf, IMG_MAX_MANIFEST, &mlen);
	if (rc)
		goto out;

	rc = img_sign_with_chain(mbuf, mlen, IMG_CONTENT_TYPE, signer, leaf, chain_extra, cose,
	                         IMG_MAX_COSE, &cose_len);
	if (rc)
		goto out;

	rc = SPH_ERR_NOMEM;
	pkg = malloc(IMG_HEADER_LEN + cose_len + len + 1);
	if (!pkg)
		goto out;
	memcpy(h.magic, IMG_MAGIC, IMG_MAGIC_LEN);
	sph_put_le32(h.cose_len, (uint32_t)cose_len);
	sph_put_le32(h.reserved, 0);
	memcpy(pkg, &h, sizeof(h));
	memcpy(pkg + IMG_HEADER_LEN, cose, cose_len);
	if (len)
		memcpy(pkg + IMG_HEADER_LEN + cose_len, payload, len);
	*out = pkg;
	*out_len = IMG_HEADER_LEN + cose_len + len;
	pkg = NULL; /* transferred */
	rc = 0;
out:
	free(mbuf);
	free(cose);
	free(pkg);
	return rc;
}
