#include "common.h"

int sph_hex_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";

	if (cap == 0 || len > (cap - 1) / 2)
		return SPH_ERR_BUFFER_TOO_SMALL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
	return 0;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sph_hex_decode(const char *hex, uint8_t *out, size_t out_len)
{
	for (size_t i = 0; i < out_len; i++) {
		if (hex[2 * i] == '\0' || hex[2 * i + 1] == '\0')
			return SPH_ERR_INVALID_ARG;
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return SPH_ERR_MALFORMED;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * out_len] == '\0' ? 0 : SPH_ERR_INVALID_ARG;
}
