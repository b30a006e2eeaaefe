/*
 * base64url (RFC 4648 §5) over OpenSSL's base64 block codec: the check-in's
 * evidence and signed time travel in JSON this way (docs/api.md §4.13).
 * Shared by the service, the agent and the fleet; fuzzed (fuzz_b64url).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common.h"

int sph_b64url_decode(const char *in, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(in), m = (n + 3) / 4 * 4;
	char *tmp = NULL;
	uint8_t *dec = NULL;
	int got, rc = SPH_ERR_MALFORMED;

	*len = 0;
	if (n == 0 || n > 4 * (cap / 3 + 2))
		goto out;
	tmp = malloc(m + 1);
	dec = malloc(m / 4 * 3 + 1);
	if (!tmp || !dec) {
		rc = SPH_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '=') {
			/* padding only at the end */
			for (size_t k = i; k < n; k++)
				if (in[k] != '=')
					goto out;
			n = i;
			break;
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9')))
			goto out;
		tmp[i] = c;
	}
	if (n % 4 == 1)
		goto out;
	m = (n + 3) / 4 * 4;
	for (size_t i = n; i < m; i++)
		tmp[i] = '=';
	tmp[m] = '\0';
	got = EVP_DecodeBlock(dec, (const unsigned char *)tmp, (int)m);
	if (got < 0)
		goto out;
	got -= (int)(m - n); /* EVP_DecodeBlock counts the padding as zero bytes */
	if (got <= 0 || (size_t)got > cap)
		goto out;
	memcpy(out, dec, (size_t)got);
	*len = (size_t)got;
	rc = 0;
out:
	free(tmp);
	free(dec);
	return rc;
}

char *sph_b64url_encode(const uint8_t *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n;

	if (!out)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}
