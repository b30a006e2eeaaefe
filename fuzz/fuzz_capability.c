/*
 * fuzz_capability: arbitrary bytes as a device capability file
 * (docs/formats.md §8).
 *  - img_cap_parse() must not crash; what it accepts must hold known
 *    capabilities, a valid expiry and printable tenant text;
 *  - an accepted file's contents, re-signed by the fuzzer's own capability
 *    signer, must parse back to the same contents and verify for its device
 *    (SPH_ERR_PERMISSION for any other);
 *  - img_cap_verify() must never accept the input itself: the tenant root is
 *    generated at start-up, so no input can carry a chain to it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *root_key, *signer_key;
static X509 *root_cert, *signer_cert;

static void setup(void)
{
	struct img_cert_params p = {.kind = IMG_CERT_TENANT_ROOT};

	if (root_key)
		return;
	if (img_cert_make(&p, &root_key, &root_cert) != 0)
		abort();
	p = (struct img_cert_params){.kind = IMG_CERT_CAPABILITY_SIGNER,
	                             .issuer_key = root_key,
	                             .issuer_cert = root_cert};
	if (img_cert_make(&p, &signer_key, &signer_cert) != 0)
		abort();
}

static void check_accepted(const struct img_capability *c)
{
	struct img_trust t = {.root_cert = root_cert, .time_policy = IMG_TIME_NONE};
	struct img_capability back, ver;
	uint8_t other[IMG_CAP_DEVICE_ID_LEN];
	uint8_t *buf = NULL;
	size_t len = 0, tlen = strnlen(c->tenant, sizeof(c->tenant));

	if (c->caps == 0 || (c->caps & ~IMG_CAP_MASK_ALL) ||
	    (c->expires != 0 && c->expires <= c->issued_at) ||
	    !sph_text_ok((const uint8_t *)c->tenant, tlen, IMG_CAP_TENANT_MAX))
		abort();
	if (img_cap_pack(c, signer_key, signer_cert, NULL, &buf, &len) != 0)
		abort();
	if (img_cap_parse(buf, len, &back, NULL, 0) != 0 ||
	    memcmp(back.device_id, c->device_id, sizeof(back.device_id)) != 0 ||
	    back.caps != c->caps || back.issued_at != c->issued_at || back.expires != c->expires ||
	    strcmp(back.tenant, c->tenant) != 0)
		abort();
	if (img_cap_verify(buf, len, &t, c->device_id, &ver, NULL, 0) != 0 || ver.caps != c->caps)
		abort();
	memcpy(other, c->device_id, sizeof(other));
	other[0] ^= 1;
	if (img_cap_verify(buf, len, &t, other, NULL, NULL, 0) != SPH_ERR_PERMISSION)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct img_trust t = {.root_cert = root_cert, .time_policy = IMG_TIME_NONE};
	struct img_capability c;
	char why[256];

	setup();
	t.root_cert = root_cert;
	if (img_cap_parse(data, size, &c, why, sizeof(why)) == 0) {
		check_accepted(&c);
		if (img_cap_verify(data, size, &t, c.device_id, NULL, NULL, 0) == 0)
			abort();
	}
	return 0;
}
