/*
 * ss_ca: a tenant's certificate authority (docs/api.md §5): a self-signed
 * root and a device CA under it, whose private keys are only ever stored
 * encrypted (AES-256-GCM under the service's key-encryption key, bound to
 * the tenant), and the short-lived device certificates it issues:
 * X.509 v3, ES256, CN = device id, O = tenant id, clientAuth, a 128-bit
 * random serial, 24 hours by default.
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_*; outputs are set only on success and are freed by the caller as
 * stated.
 */
#ifndef SPHERE_SS_CA_H
#define SPHERE_SS_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <sphere/status.h>

#define SS_KEK_LEN        32
#define SS_CA_ROOT_DAYS   3650
#define SS_CA_DEVICE_DAYS 730
#define SS_CERT_HOURS     24
#define SS_CERT_HOURS_MAX (24 * 30)
#define SS_CA_DER_MAX     4096 /* bytes of one certificate */
#define SS_CA_KEYBLOB_MAX 512  /* bytes of one encrypted key */

/* One CA: its certificate and its encrypted private key (both owned). */
struct ss_ca_key {
	uint8_t *cert_der;
	size_t cert_len;
	uint8_t *key_blob; /* nonce(12) || AES-256-GCM(PKCS#8 DER) || tag(16) */
	size_t key_blob_len;
};

/* A tenant's pair: root (self-signed, pathlen 1) and device CA (pathlen 0). */
struct ss_ca_pair {
	struct ss_ca_key root;
	struct ss_ca_key device;
};

/* Frees and zeroes. Accepts NULL. */
void ss_ca_pair_free(struct ss_ca_pair *p);

/* Creates a tenant's CA pair valid from not_before (0: now) for
 * SS_CA_ROOT_DAYS and SS_CA_DEVICE_DAYS, named "Sphere tenant <tenant_id>
 * root" and "... device CA", each key wrapped under kek with the tenant id as
 * associated data. Returns 0 and *out (free with ss_ca_pair_free). */
int ss_ca_create(const char *tenant_id, const uint8_t kek[SS_KEK_LEN], time_t not_before,
                 struct ss_ca_pair *out);

/* Issues a device certificate under ca->device for the device whose RoT
 * identity public key is pub (X || Y, 64 bytes; the device id is its hex),
 * valid [now - 5 min, now + hours) but never past the device CA's end.
 * Unwrapping the key with another kek or tenant: SPH_ERR_AUTH. A pub that
 * is not a P-256 point: SPH_ERR_INVALID_ARG. Returns 0 and *der (free with
 * free()). */
int ss_ca_issue(const struct ss_ca_pair *ca, const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                const uint8_t pub[64], time_t now, unsigned hours, uint8_t **der, size_t *len);

/* The device CA's certificate and unwrapped key (to issue many certificates
 * with one unwrap). Returns 0 and both (caller frees), SPH_ERR_AUTH (another
 * kek or tenant) or SPH_ERR_MALFORMED. */
int ss_ca_device_key(const struct ss_ca_pair *ca, const uint8_t kek[SS_KEK_LEN],
                     const char *tenant_id, X509 **cert, EVP_PKEY **key);
/* ss_ca_issue with the device CA's certificate and key already at hand, the
 * certificate as an object: *out (free with X509_free). */
int ss_ca_issue_x509(X509 *ca_cert, EVP_PKEY *ca_key, const char *tenant_id, const uint8_t pub[64],
                     time_t now, unsigned hours, X509 **out);
/* The same, DER (free with free()). */
int ss_ca_issue_with(X509 *ca_cert, EVP_PKEY *ca_key, const char *tenant_id, const uint8_t pub[64],
                     time_t now, unsigned hours, uint8_t **der, size_t *len);

/* certs[0..n) as PEM, in that order (NUL-terminated; free with free()). */
int ss_ca_pem(X509 *const *certs, size_t n, char **pem);
/* The chain a relying service trusts, device CA first then root, as PEM
 * (NUL-terminated; free with free()). */
int ss_ca_chain_pem(const struct ss_ca_pair *ca, char **pem);
/* The same as a degenerate PKCS#7 SignedData (certificates only), DER. */
int ss_ca_chain_p7(const struct ss_ca_pair *ca, uint8_t **der, size_t *len);

/* What a wrapped key is for: the associated data names it ("sphere-ss ca key
 * v1" or "sphere-ss image key v1", each with its NUL, then the tenant id), so
 * a blob of one kind or tenant never unwraps as another. */
enum ss_key_use {
	SS_KEY_CA = 1,    /* a tenant CA key (docs/api.md §5) */
	SS_KEY_IMAGE = 2, /* a tenant image-signing key (docs/api-images.md) */
};

/* Wraps key as nonce(12) || AES-256-GCM(PKCS#8 DER) || tag(16) under kek,
 * bound to use and tenant_id; at most SS_CA_KEYBLOB_MAX bytes. Returns 0 and
 * *blob (free with free()) and *len. */
int ss_key_wrap(EVP_PKEY *key, const uint8_t kek[SS_KEK_LEN], enum ss_key_use use,
                const char *tenant_id, uint8_t **blob, size_t *len);
/* Unwraps a blob of ss_key_wrap: SPH_ERR_AUTH for another kek, use or tenant,
 * or any altered byte; SPH_ERR_MALFORMED for a blob out of shape. Returns 0
 * and *key (free with EVP_PKEY_free). */
int ss_key_unwrap(const uint8_t *blob, size_t len, const uint8_t kek[SS_KEK_LEN],
                  enum ss_key_use use, const char *tenant_id, EVP_PKEY **key);

#endif
