/*
 * Private to src/eat: what the claim codec (eat_claims.c) and the token layer
 * (eat_token.c) share.
 */
#ifndef SPHERE_EAT_INTERNAL_H
#define SPHERE_EAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of data (len may be 0). Returns 0 or SPH_ERR_CRYPTO (out zeroed). */
int eat_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
