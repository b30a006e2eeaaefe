/*
 * libFuzzer target: the base64url codec (src/common/b64url.c, used for
 * a device's evidence). Every input, as text: the decoder either refuses it
 * or returns at most cap bytes that re-encode and decode to themselves; the
 * input's bytes, encoded, always decode back to exactly them.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CAP 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[FZ_CAP], again[FZ_CAP];
	size_t len = 0, len2 = 0;
	char *text = malloc(size + 1), *enc;
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = sph_b64url_decode(text, out, sizeof(out), &len);
	if (rc == 0) {
		if (len == 0 || len > sizeof(out))
			abort();
		enc = sph_b64url_encode(out, len);
		if (!enc || sph_b64url_decode(enc, again, sizeof(again), &len2) != 0 ||
		    len2 != len || memcmp(again, out, len) != 0)
			abort();
		free(enc);
	} else if (rc != SPH_ERR_MALFORMED && rc != SPH_ERR_NOMEM) {
		abort();
	}
	/* The raw bytes round-trip. */
	if (size > 0 && size <= FZ_CAP) {
		enc = sph_b64url_encode(data, size);
		if (!enc || sph_b64url_decode(enc, again, sizeof(again), &len2) != 0 ||
		    len2 != size || memcmp(again, data, size) != 0)
			abort();
		free(enc);
	}
	free(text);
	return 0;
}
