/*
 * fuzz_image: arbitrary bytes as an image package (docs/formats.md §5).
 *  - img_parse() must not crash; whatever it accepts must be a view inside
 *    the input (header, COSE, manifest, certificates, app manifest, payload),
 *    its lengths must add up to the input's, its payload must hash to the
 *    manifest's digest, and its manifest must re-encode to exactly the signed
 *    bytes (the decoder takes only the deterministic encoding);
 *  - an accepted manifest, re-packed by the fuzzer's own platform signer,
 *    must verify exactly when a platform key may sign it (an OS component for
 *    the default target), and be refused with SPH_ERR_PERMISSION or
 *    SPH_ERR_CLAIM otherwise;
 *  - img_verify() must never accept the input itself, by root certificate or
 *    by root hash: the root is generated at start-up, so no input can carry a
 *    chain to it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *root_key, *signer_key;
static X509 *root_cert, *signer_cert;
static STACK_OF(X509) * chain;
static uint8_t root_hash[IMG_DIGEST_LEN];

static void setup(void)
{
	struct img_cert_params p = {.kind = IMG_CERT_PLATFORM_ROOT};

	if (root_key)
		return;
	if (img_cert_make(&p, &root_key, &root_cert) != 0)
		abort();
	p = (struct img_cert_params){
	        .kind = IMG_CERT_PLATFORM_SIGNER, .issuer_key = root_key, .issuer_cert = root_cert};
	if (img_cert_make(&p, &signer_key, &signer_cert) != 0)
		abort();
	chain = sk_X509_new_null();
	if (!chain || !sk_X509_push(chain, root_cert) || img_root_hash(root_cert, root_hash) != 0)
		abort();
}

static void check_within(const uint8_t *base, size_t len, const void *ptr, size_t plen)
{
	const uint8_t *p = ptr;

	if (!p) {
		if (plen)
			abort();
		return;
	}
	if (p < base || plen > len || (size_t)(p - base) > len - plen)
		abort();
}

static void check_parsed(const uint8_t *data, size_t size, const struct img_package *pk)
{
	static uint8_t buf[IMG_MAX_MANIFEST];
	uint8_t digest[IMG_DIGEST_LEN];
	unsigned int dlen = 0;
	size_t len = 0;

	check_within(data, size, pk->cose, pk->cose_len);
	check_within(data, size, pk->manifest_cbor, pk->manifest_cbor_len);
	check_within(data, size, pk->payload, pk->payload_len);
	check_within(data, size, pk->manifest.app_manifest, pk->manifest.app_manifest_len);
	if (pk->cose != data + IMG_HEADER_LEN || pk->payload != pk->cose + pk->cose_len ||
	    IMG_HEADER_LEN + pk->cose_len + pk->payload_len != size ||
	    pk->payload_len != pk->manifest.payload_size)
		abort();
	if (pk->n_certs < 1 || pk->n_certs > IMG_MAX_CHAIN)
		abort();
	for (size_t i = 0; i < pk->n_certs; i++) {
		check_within(pk->cose, pk->cose_len, pk->certs[i].der, pk->certs[i].len);
		if (pk->certs[i].len == 0 || pk->certs[i].len > IMG_MAX_CERT)
			abort();
	}
	if (pk->role != IMG_ROLE_NONE)
		abort(); /* only img_verify sets the role */
	if (EVP_Digest(pk->payload ? pk->payload : data, pk->payload_len, digest, &dlen,
	               EVP_sha256(), NULL) != 1 ||
	    memcmp(digest, pk->manifest.payload_sha256, sizeof(digest)) != 0)
		abort();
	if (img_manifest_encode(&pk->manifest, buf, sizeof(buf), &len) != 0 ||
	    len != pk->manifest_cbor_len || memcmp(buf, pk->manifest_cbor, len) != 0)
		abort();
}

/* Re-signs an accepted manifest with the fuzzer's platform signer. */
static void check_repack(const struct img_package *pk)
{
	struct img_trust t = {.root_hash = root_hash, .time_policy = IMG_TIME_NONE};
	struct img_package back;
	uint8_t *pkg = NULL;
	size_t len = 0;
	int want, rc;

	if (img_pack(&pk->manifest, pk->payload, pk->payload_len, signer_key, signer_cert, chain,
	             &pkg, &len) != 0)
		abort();
	if (!img_role_may_sign(IMG_ROLE_PLATFORM_OS, pk->manifest.type, false))
		want = SPH_ERR_PERMISSION;
	else if (strcmp(pk->manifest.target, IMG_TARGET_DEFAULT) != 0)
		want = SPH_ERR_CLAIM;
	else
		want = 0;
	rc = img_verify(pkg, len, &t, &back, NULL, 0);
	if (rc != want)
		abort();
	if (rc == 0 && (back.role != IMG_ROLE_PLATFORM_OS || back.path_len != 2 ||
	                back.payload_len != pk->payload_len))
		abort();
	free(pkg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct img_trust by_cert = {.root_cert = NULL, .time_policy = IMG_TIME_NONE};
	struct img_trust by_hash = {.root_hash = root_hash, .allow_developer = true};
	struct img_package pk;
	char why[256];

	setup();
	by_cert.root_cert = root_cert;
	by_cert.allow_developer = true;
	if (img_parse(data, size, &pk) == 0) {
		check_parsed(data, size, &pk);
		check_repack(&pk);
	}
	if (img_verify(data, size, &by_cert, &pk, why, sizeof(why)) == 0)
		abort();
	if (img_verify(data, size, &by_hash, NULL, NULL, 0) == 0)
		abort();
	if (strnlen(why, sizeof(why)) == sizeof(why))
		abort();
	return 0;
}
