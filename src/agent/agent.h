/*
 * agent: the device agent (DESIGN.md §6, "on-chip cloud services"). This
 * header grows with the agent; for now it holds the device's TLS key.
 *
 * The device's TLS key is the RoT identity key (ROT_KEY_IDENTITY). It never
 * enters the agent's memory: agent_rot_key() gives an EVP_PKEY whose public
 * half is the RoT's identity public key and whose every signature is made by
 * rot_sign(), through a small OpenSSL 3 provider ("sphere-rot", keymgmt +
 * signature) that this module loads into the default library context on first
 * use. Such a key works wherever libssl or libcrypto sign with EVP_DigestSign:
 * X509_sign / X509_REQ_sign, and as a TLS 1.2 or 1.3 client key
 * (SSL_CTX_use_PrivateKey, SSL_CTX_check_private_key, libcurl through
 * CURLOPT_SSL_CTX_FUNCTION). It signs SHA-256 digests only (ES256): any other
 * digest is refused. It cannot be written out (there is no private half to
 * write) and does no ECDH. See docs/rot.md "The device's TLS key".
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_*; outputs are NULL on failure.
 */
#ifndef SPHERE_AGENT_H
#define SPHERE_AGENT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <sphere/status.h>

#include "rot/rot.h"

/* Lifetime of a device certificate made by agent_device_cert, at most. */
#define AGENT_CERT_MAX_DAYS 3650u

struct rot;

/* Makes *out, an EVP_PKEY for ROT_KEY_IDENTITY of rot (free with
 * EVP_PKEY_free). The key keeps rot: rot must outlive *out and every copy of it
 * (SSL_CTX, SSL, X509 signing contexts). A signature with it is a rot_sign()
 * call; if the RoT fails (e.g. its process is gone) the OpenSSL operation fails
 * and the error queue says why. Returns 0, SPH_ERR_INVALID_ARG, SPH_ERR_STATE
 * (the provider could not be loaded, or it would shadow OpenSSL's own EC
 * implementations), SPH_ERR_CRYPTO, or what rot_pubkey returns. */
int agent_rot_key(struct rot *rot, EVP_PKEY **out);

/* Makes *out, a self-signed X.509 v3 certificate for the device (free with
 * X509_free): subject and issuer CN = the device id (rot_device_id), public
 * key = the identity key, valid from now for days (1..AGENT_CERT_MAX_DAYS),
 * a random 128-bit serial, basicConstraints CA:FALSE, keyUsage
 * digitalSignature, extendedKeyUsage clientAuth, signed with ES256 through the
 * RoT. key must come from agent_rot_key(rot, ...): a key whose public half is
 * not the RoT's identity key is refused (SPH_ERR_INVALID_ARG). Returns 0,
 * SPH_ERR_INVALID_ARG, SPH_ERR_CRYPTO (includes a failed RoT signature), or
 * what rot_device_id / rot_pubkey return. */
int agent_device_cert(struct rot *rot, EVP_PKEY *key, unsigned days, X509 **out);

#endif
