/*
 * agent: the device agent (DESIGN.md §6, "on-chip cloud services"). This
 * header grows with the agent; for now it holds the device's TLS key and a
 * telemetry client for an MQTT broker that trusts the tenant CA.
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

#include <stddef.h>
#include <stdint.h>

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

/* ---- telemetry to an MQTT broker (agent_mqtt.c) ----------------------------
 * A minimal MQTT v5 client on libmosquitto: mutual TLS (1.2 or later) with the
 * device certificate the service issued and the RoT identity key (the private
 * key stays in the RoT: libmosquitto gets an SSL_CTX built here, through
 * MOSQ_OPT_SSL_CTX), QoS 1 publishes under devices/<device id>/ that wait for
 * the broker's PUBACK, and a clean disconnect. The broker decides who may do
 * what (docs/agent.md "Telemetry to an MQTT broker that trusts the tenant
 * CA"): it refuses a certificate its tenant chain does not vouch for, and its
 * ACL keeps each device under its own id. One connection is used by one
 * thread at a time and nothing runs in the background: a connection left idle
 * for more than 1.5 x AGENT_MQTT_KEEPALIVE_S is dropped by the broker, and the
 * next publish says so (SPH_ERR_TRANSPORT): connect again. libmosquitto sets
 * SIGPIPE to be ignored in the whole process.
 */
#define AGENT_MQTT_TIMEOUT_MS   10000u /* default bound of one connect or publish */
#define AGENT_MQTT_TIMEOUT_MAX  600000u
#define AGENT_MQTT_KEEPALIVE_S  60
#define AGENT_MQTT_SUBTOPIC_MAX 128u   /* bytes of the part after devices/<id>/ */
#define AGENT_MQTT_PAYLOAD_MAX  65536u /* bytes of one message */

struct agent_mqtt_config {
	const char *host; /* broker name or IP literal; its certificate must name it */
	uint16_t port;    /* 1..65535 */
	/* The broker's trust anchors: a PEM file, or (ca_file NULL) certificates.
	 * Exactly one of the two. */
	const char *ca_file;
	STACK_OF(X509) * ca;
	struct rot *rot;        /* the device; must outlive the connection */
	X509 *cert;             /* the device certificate (its key = the RoT identity key) */
	STACK_OF(X509) * chain; /* sent after cert (e.g. the device CA); may be NULL */
	unsigned timeout_ms;    /* per operation, 1..AGENT_MQTT_TIMEOUT_MAX; 0: the default */
	/* 0 or TLS1_3_VERSION: TLS 1.3 when the broker has it, else 1.2;
	 * TLS1_2_VERSION: 1.2 only. Never below 1.2. */
	int tls_max_version;
};

struct agent_mqtt;

/* Connects to the broker and waits (at most timeout_ms after the TCP connect)
 * for its CONNACK; the MQTT client id is the device id (rot_device_id). The
 * connection takes its own references to cfg's certificates: the caller keeps
 * ownership of cfg and what it points to, and may free it after the call.
 * Returns 0 and *out (close with agent_mqtt_close), or:
 *  SPH_ERR_INVALID_ARG   a bad config, or cert is not for the RoT identity key;
 *  SPH_ERR_IO            ca_file unreadable;
 *  SPH_ERR_CRYPTO        building the TLS context failed;
 *  SPH_ERR_BAD_SIGNATURE the broker's certificate does not verify against the
 *                        trust anchors, or does not name host;
 *  SPH_ERR_PERMISSION    the broker refused the device: a TLS alert about its
 *                        certificate, or a CONNACK "not authorized";
 *  SPH_ERR_TRANSPORT     no connection, the broker closed it, it spoke out of
 *                        protocol, or the timeout passed;
 *  SPH_ERR_NOMEM, SPH_ERR_STATE (libmosquitto refused an option), or what
 *  agent_rot_key / rot_device_id return. *out is NULL on failure.
 * With TLS 1.3 the client's handshake ends before the broker has checked the
 * client certificate; a broker that refuses it may close the connection before
 * its alert can be read, and the refusal then shows as SPH_ERR_TRANSPORT (the
 * log line says so). With TLS 1.2 it is always SPH_ERR_PERMISSION. */
int agent_mqtt_connect(const struct agent_mqtt_config *cfg, struct agent_mqtt **out);

/* Publishes len bytes of payload (NULL if len is 0) to
 * devices/<device id>/<subtopic> with QoS 1, not retained, and waits for the
 * PUBACK. subtopic: 1..AGENT_MQTT_SUBTOPIC_MAX bytes of UTF-8, no control
 * character, no wildcard ('+', '#'). The payload is not kept. Returns 0 (the
 * broker took it) or:
 *  SPH_ERR_INVALID_ARG a bad argument;
 *  SPH_ERR_TOO_LARGE   len > AGENT_MQTT_PAYLOAD_MAX, or the broker refused the size;
 *  SPH_ERR_STATE       the connection is closed: connect again;
 *  SPH_ERR_PERMISSION  PUBACK "not authorized": the broker's ACL refused the topic;
 *  SPH_ERR_TRANSPORT   the connection was lost, another refusal, or no PUBACK
 *                      within the timeout (the connection is then closed);
 *  SPH_ERR_NOMEM. */
int agent_mqtt_publish(struct agent_mqtt *m, const char *subtopic, const void *payload, size_t len);

/* Sends DISCONNECT (if still connected), closes the connection and frees m.
 * Accepts NULL. */
void agent_mqtt_close(struct agent_mqtt *m);

#endif
