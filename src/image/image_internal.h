/* image: helpers shared by the module's files; not part of its API. */
#ifndef SPHERE_IMAGE_INTERNAL_H
#define SPHERE_IMAGE_INTERNAL_H

#include <stdarg.h>

#include <openssl/asn1.h>

#include "image.h"

/* SHA-256 of len bytes (data may be NULL when len is 0). Returns 0 or SPH_ERR_CRYPTO. */
int img_sha256(const uint8_t *data, size_t len, uint8_t out[IMG_DIGEST_LEN]);

/* Steps 1..5 of docs/formats.md §5.5 (everything but the payload digest and
 * the cryptography). Returns 0 and fills *out, or a negative status with a
 * reason in why (may be NULL); *out is zeroed on failure. */
int img_parse_structure(const uint8_t *pkg, size_t len, struct img_package *out, char *why,
                        size_t why_cap);

/* Writes a one-line reason into why (may be NULL). */
void img_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The role's OID as a new ASN1_OBJECT (caller frees with ASN1_OBJECT_free), or NULL. */
ASN1_OBJECT *img_role_obj(enum img_role role);


#endif
