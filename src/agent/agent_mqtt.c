/*
 * agent_mqtt: device telemetry to an MQTT broker that trusts the tenant CA
 * (agent.h, docs/agent.md).
 *
 * libmosquitto speaks MQTT; the TLS context is built here and handed over with
 * MOSQ_OPT_SSL_CTX (and MOSQ_OPT_SSL_CTX_WITH_DEFAULTS off, so libmosquitto
 * changes nothing in it): TLS 1.2 or later, the broker verified against the
 * given trust anchors and host name, the device certificate with the RoT
 * identity key from agent_rot_key (every signature a rot_sign call). Nothing
 * runs in the background: each call drives mosquitto_loop itself until what it
 * waits for arrives, the connection drops, or its deadline passes.
 *
 * Why a refusal happened is learnt from TLS itself: the broker's fatal alert
 * (certificate expired, unknown CA, ...) through the info callback, our own
 * verification of the broker's certificate through the verify callback, and
 * MQTT v5 reason codes (CONNACK, PUBACK). MQTT v5 matters for the last: a
 * v3.1.1 broker acknowledges a publish its ACL dropped as if it were taken.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "common/common.h"

#define AGENT_MQTT_HOST_MAX 253 /* a DNS name, at most */
#define AGENT_MQTT_PREFIX   "devices/"
#define AGENT_MQTT_TOPIC_CAP                                                                       \
	(sizeof(AGENT_MQTT_PREFIX) + ROT_DEVICE_ID_LEN + 1 + AGENT_MQTT_SUBTOPIC_MAX)

/* TLS alert descriptions (RFC 8446 §6.2) that mean "your certificate is refused". */
#define AGENT_ALERT_BAD_CERTIFICATE         42
#define AGENT_ALERT_UNSUPPORTED_CERTIFICATE 43
#define AGENT_ALERT_CERTIFICATE_REVOKED     44
#define AGENT_ALERT_CERTIFICATE_EXPIRED     45
#define AGENT_ALERT_CERTIFICATE_UNKNOWN     46
#define AGENT_ALERT_UNKNOWN_CA              48
#define AGENT_ALERT_ACCESS_DENIED           49
#define AGENT_ALERT_CERTIFICATE_REQUIRED    116

struct agent_mqtt {
	struct mosquitto *mosq;
	SSL_CTX *ctx;
	char id[ROT_DEVICE_ID_LEN + 1];
	unsigned timeout_ms;
	int connack;    /* CONNACK reason code; -1 until one arrives */
	bool connected; /* a CONNACK "success" arrived */
	bool lost;      /* the connection is gone, or was given up */
	int pub_mid;    /* the publish being waited for; 0: none */
	int pub_reason; /* its PUBACK reason code; -1 until one arrives */
	int tls_alert;  /* the last fatal alert the broker sent; -1: none */
	int peer_err;   /* X509_V_ERR_* of the broker's certificate; 0: none */
	int tls_done;   /* the TLS version of the completed handshake; 0: none */
};

enum agent_wait { AGENT_WAIT_CONNACK, AGENT_WAIT_PUBACK, AGENT_WAIT_CLOSED };

/* ---- libmosquitto ---------------------------------------------------------- */

static pthread_once_t agent_mqtt_once = PTHREAD_ONCE_INIT;
static int agent_mqtt_lib_rc = SPH_ERR_STATE;

/* mosquitto_lib_init once per process; never undone (mosquitto_lib_cleanup
 * would tear down OpenSSL state other users share). */
static void agent_mqtt_lib_once(void)
{
	if (mosquitto_lib_init() == MOSQ_ERR_SUCCESS)
		agent_mqtt_lib_rc = 0;
}

static int agent_mqtt_lib_init(void)
{
	if (pthread_once(&agent_mqtt_once, agent_mqtt_lib_once) != 0)
		return SPH_ERR_STATE;
	return agent_mqtt_lib_rc;
}

static void agent_mqtt_on_connect(struct mosquitto *mosq, void *obj, int reason, int flags,
                                  const mosquitto_property *props)
{
	struct agent_mqtt *m = obj;

	(void)mosq;
	(void)flags;
	(void)props;
	m->connack = reason;
	m->connected = reason == 0;
}

static void agent_mqtt_on_disconnect(struct mosquitto *mosq, void *obj, int reason,
                                     const mosquitto_property *props)
{
	struct agent_mqtt *m = obj;

	(void)mosq;
	(void)reason;
	(void)props;
	m->lost = true;
}

static void agent_mqtt_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                                  const mosquitto_property *props)
{
	struct agent_mqtt *m = obj;

	(void)mosq;
	(void)props;
	if (m->pub_mid != 0 && mid == m->pub_mid)
		m->pub_reason = reason;
}

/* ---- TLS ------------------------------------------------------------------- */

static struct agent_mqtt *agent_mqtt_of(const SSL *ssl)
{
	SSL_CTX *ctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;

	return ctx ? SSL_CTX_get_app_data(ctx) : NULL;
}

/* Records the fatal alert the broker sends (why it refused us). */
static void agent_mqtt_info(const SSL *ssl, int where, int ret)
{
	struct agent_mqtt *m = agent_mqtt_of(ssl);

	if (!m)
		return;
	if (where & SSL_CB_HANDSHAKE_DONE)
		m->tls_done = SSL_version(ssl);
	if ((where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL)
		m->tls_alert = ret & 0xff;
}

/* Records why the broker's certificate failed; decides nothing (ok stands). */
static int agent_mqtt_verify(int ok, X509_STORE_CTX *sctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct agent_mqtt *m = agent_mqtt_of(ssl);

	if (!ok && m && m->peer_err == 0)
		m->peer_err = X509_STORE_CTX_get_error(sctx);
	return ok;
}

/* The client TLS context: trust anchors, the broker's name, the device
 * certificate and chain, the RoT key. Returns 0 and *out (SSL_CTX_free). */
static int agent_mqtt_ctx(const struct agent_mqtt_config *cfg, struct agent_mqtt *m, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	X509_VERIFY_PARAM *vp;
	int rc = SPH_ERR_CRYPTO;

	*out = NULL;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, cfg->tls_max_version) != 1 ||
	    SSL_CTX_set_app_data(ctx, m) != 1)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, agent_mqtt_verify);
	SSL_CTX_set_info_callback(ctx, agent_mqtt_info);
	/* The RoT signs ES256 only: offer nothing else for the client signature. */
	if (SSL_CTX_set1_client_sigalgs_list(ctx, "ECDSA+SHA256") != 1)
		goto out;

	/* Whom we trust: the broker's certificate must chain to these and name host. */
	if (cfg->ca_file) {
		if (SSL_CTX_load_verify_file(ctx, cfg->ca_file) != 1) {
			rc = SPH_ERR_IO;
			goto out;
		}
	} else {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);

		if (sk_X509_num(cfg->ca) <= 0) {
			rc = SPH_ERR_INVALID_ARG;
			goto out;
		}
		for (int i = 0; i < sk_X509_num(cfg->ca); i++) {
			if (X509_STORE_add_cert(st, sk_X509_value(cfg->ca, i)) != 1)
				goto out;
		}
	}
	vp = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->host) != 1) {
		ERR_clear_error(); /* not an IP literal: a name */
		if (X509_VERIFY_PARAM_set1_host(vp, cfg->host, 0) != 1)
			goto out;
	}

	/* Who we are: the service's certificate, the key in the RoT. */
	if ((rc = agent_rot_key(cfg->rot, &key)) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (SSL_CTX_use_certificate(ctx, cfg->cert) != 1)
		goto out;
	for (int i = 0; cfg->chain && i < sk_X509_num(cfg->chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(cfg->chain, i)) != 1)
			goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		rc = SPH_ERR_INVALID_ARG; /* cert is not for the RoT identity key */
		goto out;
	}
	*out = ctx;
	ctx = NULL; /* transferred */
	rc = 0;
out:
	if (rc != 0)
		ERR_clear_error();
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return rc;
}

/* ---- waiting --------------------------------------------------------------- */

static bool agent_mqtt_done(const struct agent_mqtt *m, enum agent_wait w)
{
	switch (w) {
	case AGENT_WAIT_CONNACK:
		return m->connack >= 0;
	case AGENT_WAIT_PUBACK:
		return m->pub_reason >= 0;
	case AGENT_WAIT_CLOSED:
		return m->lost;
	}
	return false;
}

static long long agent_mqtt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs libmosquitto's loop until w is done, the connection is lost, or
 * m->timeout_ms pass (the connection is then given up). Returns 0 (done) or
 * SPH_ERR_TRANSPORT. */
static int agent_mqtt_wait(struct agent_mqtt *m, enum agent_wait w)
{
	long long deadline = agent_mqtt_now_ms() + m->timeout_ms, left;

	for (;;) {
		if (agent_mqtt_done(m, w))
			return 0;
		if (m->lost)
			return SPH_ERR_TRANSPORT;
		left = deadline - agent_mqtt_now_ms();
		if (left <= 0) {
			m->lost = true;
			return SPH_ERR_TRANSPORT;
		}
		/* Returns as soon as a packet is handled; errors mean the link is gone. */
		if (mosquitto_loop(m->mosq, (int)left, 1) != MOSQ_ERR_SUCCESS)
			m->lost = true;
	}
}

/* Why a connection failed, from what TLS and MQTT said. */
static int agent_mqtt_refusal(const struct agent_mqtt *m)
{
	if (m->peer_err != 0)
		return SPH_ERR_BAD_SIGNATURE;
	switch (m->tls_alert) {
	case AGENT_ALERT_BAD_CERTIFICATE:
	case AGENT_ALERT_UNSUPPORTED_CERTIFICATE:
	case AGENT_ALERT_CERTIFICATE_REVOKED:
	case AGENT_ALERT_CERTIFICATE_EXPIRED:
	case AGENT_ALERT_CERTIFICATE_UNKNOWN:
	case AGENT_ALERT_UNKNOWN_CA:
	case AGENT_ALERT_ACCESS_DENIED:
	case AGENT_ALERT_CERTIFICATE_REQUIRED:
		return SPH_ERR_PERMISSION;
	default:
		break;
	}
	switch (m->connack) {
	case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BANNED:
	case MQTT_RC_BAD_AUTHENTICATION_METHOD:
	case CONNACK_REFUSED_BAD_USERNAME_PASSWORD: /* a v3.1.1 answer */
	case CONNACK_REFUSED_NOT_AUTHORIZED:
		return SPH_ERR_PERMISSION;
	default:
		return SPH_ERR_TRANSPORT;
	}
}

static void agent_mqtt_log_refusal(const struct agent_mqtt_config *cfg, const struct agent_mqtt *m,
                                   int rc)
{
	const char *why = "connection failed";

	if (m->peer_err != 0)
		why = X509_verify_cert_error_string(m->peer_err);
	else if (m->tls_alert >= 0)
		why = SSL_alert_desc_string_long(m->tls_alert);
	else if (m->connack > 0)
		why = mosquitto_reason_string(m->connack);
	else if (m->tls_done == TLS1_3_VERSION)
		why = "closed after the TLS 1.3 handshake (a refused certificate, if the broker's "
		      "alert was lost)";
	else if (m->tls_done != 0)
		why = "closed after the TLS handshake";
	sph_log(SPH_LOG_WARN, "agent", "mqtt_refused", "host=%s port=%u rc=%d reason=\"%s\"",
	        cfg->host, (unsigned)cfg->port, rc, why);
}

/* ---- the API --------------------------------------------------------------- */

static bool agent_mqtt_config_ok(const struct agent_mqtt_config *cfg)
{
	size_t hl;

	if (!cfg || !cfg->host || !cfg->rot || !cfg->cert || cfg->port == 0)
		return false;
	hl = strnlen(cfg->host, AGENT_MQTT_HOST_MAX + 1);
	if (hl == 0 || hl > AGENT_MQTT_HOST_MAX)
		return false;
	if ((cfg->ca_file == NULL) == (cfg->ca == NULL)) /* exactly one */
		return false;
	if (cfg->tls_max_version != 0 && cfg->tls_max_version != TLS1_2_VERSION &&
	    cfg->tls_max_version != TLS1_3_VERSION)
		return false;
	return cfg->timeout_ms <= AGENT_MQTT_TIMEOUT_MAX;
}

int agent_mqtt_connect(const struct agent_mqtt_config *cfg, struct agent_mqtt **out)
{
	struct agent_mqtt *m = NULL;
	int rc = SPH_ERR_INVALID_ARG, mrc;

	if (out)
		*out = NULL;
	if (!out || !agent_mqtt_config_ok(cfg))
		goto out;
	rc = SPH_ERR_NOMEM;
	m = calloc(1, sizeof(*m));
	if (!m)
		goto out;
	m->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : AGENT_MQTT_TIMEOUT_MS;
	m->connack = -1;
	m->pub_reason = -1;
	m->tls_alert = -1;
	if ((rc = rot_device_id(cfg->rot, m->id)) != 0)
		goto out;
	if ((rc = agent_mqtt_ctx(cfg, m, &m->ctx)) != 0)
		goto out;
	if ((rc = agent_mqtt_lib_init()) != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	m->mosq = mosquitto_new(m->id, true, m);
	if (!m->mosq)
		goto out;
	mosquitto_connect_v5_callback_set(m->mosq, agent_mqtt_on_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, agent_mqtt_on_disconnect);
	mosquitto_publish_v5_callback_set(m->mosq, agent_mqtt_on_publish);
	rc = SPH_ERR_STATE;
	if (mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) !=
	            MOSQ_ERR_SUCCESS ||
	    mosquitto_int_option(m->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) != MOSQ_ERR_SUCCESS ||
	    mosquitto_void_option(m->mosq, MOSQ_OPT_SSL_CTX, m->ctx) != MOSQ_ERR_SUCCESS)
		goto out;

	/* TCP connect (blocking), then the handshake and CONNACK under the deadline. */
	mrc = mosquitto_connect_bind_v5(m->mosq, cfg->host, cfg->port, AGENT_MQTT_KEEPALIVE_S, NULL,
	                                NULL);
	if (mrc != MOSQ_ERR_SUCCESS)
		m->lost = true;
	rc = agent_mqtt_wait(m, AGENT_WAIT_CONNACK);
	if (rc != 0 || !m->connected) {
		rc = agent_mqtt_refusal(m);
		agent_mqtt_log_refusal(cfg, m, rc);
		goto out;
	}
	*out = m;
	m = NULL; /* transferred */
	rc = 0;
out:
	ERR_clear_error(); /* libmosquitto leaves TLS errors queued */
	agent_mqtt_close(m);
	return rc;
}

/* 1..AGENT_MQTT_SUBTOPIC_MAX bytes of UTF-8 (as MQTT wants it), no wildcard,
 * no control character. */
static bool agent_mqtt_subtopic_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, AGENT_MQTT_SUBTOPIC_MAX + 1);
	if (n == 0 || n > AGENT_MQTT_SUBTOPIC_MAX || strpbrk(s, "+#"))
		return false;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	}
	return mosquitto_validate_utf8(s, (int)n) == MOSQ_ERR_SUCCESS;
}

int agent_mqtt_publish(struct agent_mqtt *m, const char *subtopic, const void *payload, size_t len)
{
	char topic[AGENT_MQTT_TOPIC_CAP];
	int rc = SPH_ERR_INVALID_ARG, mid = 0, n;

	if (!m || !agent_mqtt_subtopic_ok(subtopic) || (!payload && len != 0))
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (len > AGENT_MQTT_PAYLOAD_MAX)
		goto out;
	rc = SPH_ERR_STATE;
	if (!m->connected || m->lost)
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	n = snprintf(topic, sizeof(topic), AGENT_MQTT_PREFIX "%s/%s", m->id, subtopic);
	if (n < 0 || (size_t)n >= sizeof(topic) ||
	    mosquitto_pub_topic_check2(topic, (size_t)n) != MOSQ_ERR_SUCCESS)
		goto out;

	m->pub_mid = 0;
	m->pub_reason = -1;
	switch (mosquitto_publish_v5(m->mosq, &mid, topic, (int)len, payload, 1, false, NULL)) {
	case MOSQ_ERR_SUCCESS:
		break;
	case MOSQ_ERR_NOMEM:
		rc = SPH_ERR_NOMEM;
		goto out;
	case MOSQ_ERR_OVERSIZE_PACKET: /* over the broker's maximum packet size */
		rc = SPH_ERR_TOO_LARGE;
		goto out;
	default:
		m->lost = true;
		rc = SPH_ERR_TRANSPORT;
		goto out;
	}
	m->pub_mid = mid;
	if ((rc = agent_mqtt_wait(m, AGENT_WAIT_PUBACK)) != 0)
		goto out;
	switch (m->pub_reason) {
	case MQTT_RC_SUCCESS:
	case MQTT_RC_NO_MATCHING_SUBSCRIBERS:
		rc = 0;
		break;
	case MQTT_RC_NOT_AUTHORIZED:
		rc = SPH_ERR_PERMISSION;
		break;
	case MQTT_RC_PACKET_TOO_LARGE:
	case MQTT_RC_QUOTA_EXCEEDED:
		rc = SPH_ERR_TOO_LARGE;
		break;
	default:
		rc = SPH_ERR_TRANSPORT;
		break;
	}
	if (rc != 0)
		sph_log(SPH_LOG_WARN, "agent", "mqtt_publish_refused", "rc=%d reason=\"%s\"", rc,
		        mosquitto_reason_string(m->pub_reason));
out:
	if (m)
		m->pub_mid = 0;
	return rc;
}

void agent_mqtt_close(struct agent_mqtt *m)
{
	if (!m)
		return;
	if (m->mosq) {
		if (m->connected && !m->lost &&
		    mosquitto_disconnect_v5(m->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL) ==
		            MOSQ_ERR_SUCCESS)
			(void)agent_mqtt_wait(m, AGENT_WAIT_CLOSED);
		mosquitto_destroy(m->mosq);
	}
	SSL_CTX_free(m->ctx);
	ERR_clear_error();
	free(m);
}
