#include "common.h"

const char *sph_strerror(int status)
{
	switch (status) {
	case SPH_OK:
		return "success";
	case SPH_ERR_INVALID_ARG:
		return "invalid argument";
	case SPH_ERR_NOMEM:
		return "out of memory";
	case SPH_ERR_MALFORMED:
		return "malformed input";
	case SPH_ERR_TOO_LARGE:
		return "length exceeds maximum";
	case SPH_ERR_TRUNCATED:
		return "input truncated";
	case SPH_ERR_TRAILING:
		return "trailing bytes after structure";
	case SPH_ERR_DUPLICATE:
		return "duplicate key or field";
	case SPH_ERR_UNSUPPORTED:
		return "unsupported algorithm, version or critical header";
	case SPH_ERR_BAD_SIGNATURE:
		return "signature verification failed";
	case SPH_ERR_NONCE_MISMATCH:
		return "nonce does not match the challenge";
	case SPH_ERR_CRYPTO:
		return "cryptographic library failure";
	case SPH_ERR_IO:
		return "I/O error";
	case SPH_ERR_RANDOM:
		return "random source failed";
	case SPH_ERR_ROLLBACK:
		return "rollback refused";
	case SPH_ERR_EXHAUSTED:
		return "resource exhausted";
	case SPH_ERR_NOT_FOUND:
		return "not found";
	case SPH_ERR_PERMISSION:
		return "permission denied";
	case SPH_ERR_STATE:
		return "operation not allowed in this state";
	case SPH_ERR_TRANSPORT:
		return "transport failure";
	case SPH_ERR_AUTH:
		return "authentication failed";
	case SPH_ERR_BUFFER_TOO_SMALL:
		return "output buffer too small";
	case SPH_ERR_CLAIM:
		return "required claim missing or invalid";
	case SPH_ERR_POWER_LOSS:
		return "power lost (flash unpowered until the chip power-cycles)";
	case SPH_ERR_CORRUPT:
		return "stored data damaged beyond repair";
	case SPH_ERR_NO_SPACE:
		return "no space left (store or quota full)";
	}
	return "unknown status";
}
