/*
 * Telemetry to a real Mosquitto broker that trusts one tenant's CA chain
 * (agent_mqtt, scripts/mosquitto-test.sh, docs/agent.md).
 *
 * The tenant CA is the service's own (ss_ca), so the device certificate is
 * exactly what sphere-ss issues; the device is a real RoT (in process) whose
 * identity key signs the TLS handshake. A libmosquitto subscriber with its own
 * certificate from the same CA watches devices/#.
 *
 * What works: the device's message reaches the subscriber byte for byte.
 * What the broker refuses (and the subscriber never sees): an expired device
 * certificate, one from another tenant's CA, a self-signed one, and a device
 * publishing under another device's id (MQTT v5: PUBACK "not authorized";
 * v3.1.1: dropped in silence). What the agent refuses: a broker its trust
 * anchors do not vouch for. Each refusal is checked against the subscriber by
 * a marker the genuine device publishes afterwards: the subscriber must get
 * the marker and nothing before it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "common/common.h"
#include "rot/rot.h"
#include "service/ss_ca.h"
#include "testutil.h"

#define WAIT_MS 5000 /* for anything the broker should do at once */

static const char tenant_a[] = "3f1c2a5e-8b7d-4c2a-9e1f-0a1b2c3d4e5f";
static const char tenant_b[] = "00000000-0000-4000-8000-000000000001";

static const uint8_t secret[ROT_SECRET_LEN] = {0x6d, 0x71, 0x74, 0x74, 0x04, 0x05, 0x06, 0x07,
                                               0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                               0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                               0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

/* A tenant: its CA as sphere-ss keeps it, the device CA at hand to issue. */
struct tenant {
	const char *id;
	struct ss_ca_pair ca;
	X509 *dev_ca;
	EVP_PKEY *dev_key;
	STACK_OF(X509) * chain; /* device CA (what a device sends after its cert) */
};

/* Everything the tests share: the broker, two tenants, the device, the subscriber. */
static struct {
	char *tmp, *mqtt_dir, *server_ca, *chain_pem;
	int port;
	uint8_t kek[SS_KEK_LEN];
	struct tenant a, b;
	char *otp;
	struct rot *rot;
	EVP_PKEY *key; /* the RoT identity key */
	char id[ROT_DEVICE_ID_LEN + 1];
	uint8_t pub[ROT_PUB_LEN];
	X509 *cert;      /* the device's certificate from tenant A */
	EVP_PKEY *s_key; /* the subscriber */
	X509 *s_cert;
	char s_id[ROT_DEVICE_ID_LEN + 1];
	int markers;
} g;

/* ---- certificates ----------------------------------------------------------- */

static X509 *der_x509(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	return x;
}

/* A certificate from t's device CA for the P-256 point pub (X || Y), as
 * sphere-ss issues it at time now. */
static X509 *issue(struct tenant *t, const uint8_t pub[64], time_t now, unsigned hours)
{
	uint8_t *der = NULL;
	size_t len = 0;
	X509 *x;

	assert_int_equal(
	        ss_ca_issue_with(t->dev_ca, t->dev_key, t->id, pub, now, hours, &der, &len), 0);
	x = der_x509(der, len);
	free(der);
	return x;
}

static void tenant_init(struct tenant *t, const char *id)
{
	t->id = id;
	/* Valid since ten days ago, so an expired certificate can be issued. */
	assert_int_equal(ss_ca_create(id, g.kek, time(NULL) - 10 * 86400, &t->ca), 0);
	assert_int_equal(ss_ca_device_key(&t->ca, g.kek, id, &t->dev_ca, &t->dev_key), 0);
	t->chain = sk_X509_new_null();
	assert_non_null(t->chain);
	assert_int_equal(X509_up_ref(t->dev_ca), 1);
	assert_true(sk_X509_push(t->chain, t->dev_ca) > 0);
}

static void tenant_free(struct tenant *t)
{
	sk_X509_pop_free(t->chain, X509_free);
	X509_free(t->dev_ca);
	EVP_PKEY_free(t->dev_key);
	ss_ca_pair_free(&t->ca);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* ---- the test's own MQTT client (subscriber, and a misbehaving device) ------ */

#define CLI_MSGS 8

struct cli {
	struct mosquitto *m;
	int connack; /* -1 until CONNACK */
	bool lost;
	int sub_mid, suback; /* suback: granted QoS (or reason), -1 until SUBACK */
	int pub_mid, puback; /* puback: reason code, -1 until PUBACK */
	size_t nmsg;
	bool overflow;
	struct {
		char topic[300];
		uint8_t payload[256];
		size_t len;
	} msg[CLI_MSGS];
};

static void cli_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                           const mosquitto_property *p)
{
	struct cli *c = obj;

	(void)m;
	(void)flags;
	(void)p;
	c->connack = rc;
}

static void cli_on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *p)
{
	struct cli *c = obj;

	(void)m;
	(void)rc;
	(void)p;
	c->lost = true;
}

static void cli_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                             const mosquitto_property *p)
{
	struct cli *c = obj;

	(void)m;
	(void)p;
	if (mid == c->sub_mid && n == 1)
		c->suback = granted[0];
}

static void cli_on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                           const mosquitto_property *p)
{
	struct cli *c = obj;

	(void)m;
	(void)p;
	if (mid == c->pub_mid)
		c->puback = rc;
}

static void cli_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                           const mosquitto_property *p)
{
	struct cli *c = obj;

	(void)m;
	(void)p;
	if (c->nmsg == CLI_MSGS || strlen(msg->topic) >= sizeof(c->msg[0].topic) ||
	    (size_t)msg->payloadlen > sizeof(c->msg[0].payload)) {
		c->overflow = true;
		return;
	}
	memcpy(c->msg[c->nmsg].topic, msg->topic, strlen(msg->topic) + 1);
	if (msg->payloadlen > 0)
		memcpy(c->msg[c->nmsg].payload, msg->payload, (size_t)msg->payloadlen);
	c->msg[c->nmsg].len = (size_t)msg->payloadlen;
	c->nmsg++;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs c's loop until *flag differs from unset (or c->nmsg reaches want when
 * flag is NULL); false on timeout or a lost connection. */
static bool cli_wait(struct cli *c, const int *flag, size_t want)
{
	long long end = now_ms() + WAIT_MS;

	for (;;) {
		if (flag ? *flag != -1 : c->nmsg >= want)
			return true;
		if (c->lost || now_ms() >= end)
			return false;
		if (mosquitto_loop(c->m, (int)(end - now_ms()) > 0 ? (int)(end - now_ms()) : 1,
		                   1) != MOSQ_ERR_SUCCESS)
			c->lost = true;
	}
}

/* Connects with cert and key (any EVP_PKEY, the RoT's included), trusting the
 * broker's certificate only; proto is MQTT_PROTOCOL_V5 or _V311. */
static void cli_connect(struct cli *c, X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key, int proto)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	memset(c, 0, sizeof(*c));
	c->connack = c->suback = c->puback = -1;
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(SSL_CTX_load_verify_file(ctx, g.server_ca), 1);
	assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	c->m = mosquitto_new(NULL, true, c);
	assert_non_null(c->m);
	mosquitto_connect_v5_callback_set(c->m, cli_on_connect);
	mosquitto_disconnect_v5_callback_set(c->m, cli_on_disconnect);
	mosquitto_subscribe_v5_callback_set(c->m, cli_on_subscribe);
	mosquitto_publish_v5_callback_set(c->m, cli_on_publish);
	mosquitto_message_v5_callback_set(c->m, cli_on_message);
	assert_int_equal(mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, proto), 0);
	assert_int_equal(mosquitto_int_option(c->m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0), 0);
	assert_int_equal(mosquitto_void_option(c->m, MOSQ_OPT_SSL_CTX, ctx), 0);
	SSL_CTX_free(ctx); /* libmosquitto holds its own reference */
	assert_int_equal(mosquitto_connect_bind_v5(c->m, "127.0.0.1", g.port, 60, NULL, NULL), 0);
	assert_true(cli_wait(c, &c->connack, 0));
	assert_int_equal(c->connack, 0);
}

static void cli_close(struct cli *c)
{
	if (!c->m)
		return;
	if (!c->lost)
		mosquitto_disconnect(c->m);
	mosquitto_destroy(c->m);
	c->m = NULL;
	ERR_clear_error();
}

/* The subscriber, subscribed to devices/# (QoS 1). */
static void subscriber(struct cli *s)
{
	cli_connect(s, g.s_cert, g.a.chain, g.s_key, MQTT_PROTOCOL_V5);
	assert_int_equal(mosquitto_subscribe_v5(s->m, &s->sub_mid, "devices/#", 1, 0, NULL), 0);
	assert_true(cli_wait(s, &s->suback, 0));
	assert_int_equal(s->suback, 1);
}

/* ---- the device ---------------------------------------------------------------- */

static struct agent_mqtt_config device_cfg(X509 *cert, STACK_OF(X509) * chain)
{
	struct agent_mqtt_config c;

	memset(&c, 0, sizeof(c));
	c.host = "127.0.0.1";
	c.port = (uint16_t)g.port;
	c.ca_file = g.server_ca;
	c.rot = g.rot;
	c.cert = cert;
	c.chain = chain;
	c.timeout_ms = WAIT_MS;
	return c;
}

static void topic_of(char *out, size_t cap, const char *id, const char *sub)
{
	assert_true((size_t)snprintf(out, cap, "devices/%s/%s", id, sub) < cap);
}

/* The genuine device publishes a fresh marker; s (which received nothing
 * since it was last cleared) must get that marker and nothing else: whatever
 * an attack published before would have arrived first. */
static void only_marker(struct cli *s)
{
	struct agent_mqtt_config cfg = device_cfg(g.cert, g.a.chain);
	struct agent_mqtt *m = NULL;
	char marker[32], topic[300];

	snprintf(marker, sizeof(marker), "marker-%d", ++g.markers);
	assert_int_equal(agent_mqtt_connect(&cfg, &m), 0);
	assert_int_equal(agent_mqtt_publish(m, "marker", marker, strlen(marker)), 0);
	agent_mqtt_close(m);
	assert_true(cli_wait(s, NULL, 1));
	assert_false(s->overflow);
	topic_of(topic, sizeof(topic), g.id, "marker");
	assert_int_equal(s->nmsg, 1);
	assert_string_equal(s->msg[0].topic, topic);
	assert_int_equal(s->msg[0].len, strlen(marker));
	assert_memory_equal(s->msg[0].payload, marker, strlen(marker));
	s->nmsg = 0;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_telemetry(void **state)
{
	static const uint8_t payload[] = {'{', '"', 't', '"', ':', '2', '1', '}', 0x00, 0xff, 0x80};
	struct agent_mqtt_config cfg = device_cfg(g.cert, g.a.chain);
	struct agent_mqtt *m = NULL;
	struct cli s;
	char topic[300];

	(void)state;
	subscriber(&s);
	assert_int_equal(agent_mqtt_connect(&cfg, &m), 0);
	assert_non_null(m);
	assert_int_equal(agent_mqtt_publish(m, "telemetry/env", payload, sizeof(payload)), 0);
	assert_true(cli_wait(&s, NULL, 1));
	topic_of(topic, sizeof(topic), g.id, "telemetry/env");
	assert_int_equal(s.nmsg, 1);
	assert_string_equal(s.msg[0].topic, topic);
	assert_int_equal(s.msg[0].len, sizeof(payload));
	assert_memory_equal(s.msg[0].payload, payload, sizeof(payload));
	s.nmsg = 0;

	/* An empty message, then more on the same connection. */
	assert_int_equal(agent_mqtt_publish(m, "heartbeat", NULL, 0), 0);
	assert_int_equal(agent_mqtt_publish(m, "telemetry/env", "22", 2), 0);
	assert_true(cli_wait(&s, NULL, 2));
	assert_int_equal(s.msg[0].len, 0);
	assert_int_equal(s.msg[1].len, 2);
	assert_memory_equal(s.msg[1].payload, "22", 2);
	s.nmsg = 0;

	/* What the agent refuses to send. */
	{
		static uint8_t big[AGENT_MQTT_PAYLOAD_MAX + 1];
		char longsub[AGENT_MQTT_SUBTOPIC_MAX + 2];

		memset(longsub, 'a', sizeof(longsub) - 1);
		longsub[sizeof(longsub) - 1] = '\0';
		assert_int_equal(agent_mqtt_publish(m, "t", big, sizeof(big)), SPH_ERR_TOO_LARGE);
		assert_int_equal(agent_mqtt_publish(m, "a/+", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "#", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "\xff\xfe", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "a\nb", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "a\x7f", "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, longsub, "x", 1), SPH_ERR_INVALID_ARG);
		longsub[AGENT_MQTT_SUBTOPIC_MAX] = '\0';
		assert_int_equal(agent_mqtt_publish(m, longsub, "x", 1), 0);
		assert_int_equal(agent_mqtt_publish(m, NULL, "x", 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(m, "t", NULL, 1), SPH_ERR_INVALID_ARG);
		assert_int_equal(agent_mqtt_publish(NULL, "t", "x", 1), SPH_ERR_INVALID_ARG);
		assert_true(cli_wait(&s, NULL, 1));
		assert_int_equal(s.nmsg, 1); /* the longest subtopic, nothing else */
		s.nmsg = 0;
	}
	agent_mqtt_close(m);

	/* TLS 1.2 only. */
	cfg = device_cfg(g.cert, g.a.chain);
	cfg.tls_max_version = TLS1_2_VERSION;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), 0);
	assert_int_equal(agent_mqtt_publish(m, "telemetry/env", "tls12", 5), 0);
	agent_mqtt_close(m);
	assert_true(cli_wait(&s, NULL, 1));
	assert_int_equal(s.msg[0].len, 5);
	assert_memory_equal(s.msg[0].payload, "tls12", 5);
	s.nmsg = 0;

	/* The trust anchors as certificates rather than a file; no chain sent (the
	 * broker holds the tenant chain). */
	{
		STACK_OF(X509) *anchors = sk_X509_new_null();
		FILE *f = fopen(g.server_ca, "r");
		X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

		assert_non_null(x);
		fclose(f);
		assert_true(sk_X509_push(anchors, x) > 0);
		cfg = device_cfg(g.cert, NULL);
		cfg.ca_file = NULL;
		cfg.ca = anchors;
		assert_int_equal(agent_mqtt_connect(&cfg, &m), 0);
		sk_X509_pop_free(anchors, X509_free); /* the connection keeps its own */
		assert_int_equal(agent_mqtt_publish(m, "telemetry/env", "23", 2), 0);
		agent_mqtt_close(m);
		assert_true(cli_wait(&s, NULL, 1));
		assert_memory_equal(s.msg[0].payload, "23", 2);
		s.nmsg = 0;
	}
	only_marker(&s);
	cli_close(&s);
}

/* The device connects with cert (and chain): the broker must refuse it, over
 * TLS 1.2 (the broker's alert always arrives: SPH_ERR_PERMISSION) and TLS 1.3
 * (it may close first: SPH_ERR_TRANSPORT, agent.h). */
static void refused(struct cli *s, X509 *cert, STACK_OF(X509) * chain)
{
	static const int versions[] = {TLS1_2_VERSION, 0};

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		struct agent_mqtt_config cfg = device_cfg(cert, chain);
		struct agent_mqtt *m = NULL;
		int rc;

		cfg.tls_max_version = versions[i];
		rc = agent_mqtt_connect(&cfg, &m);
		if (versions[i] == TLS1_2_VERSION)
			assert_int_equal(rc, SPH_ERR_PERMISSION);
		else if (rc != SPH_ERR_PERMISSION)
			assert_int_equal(rc, SPH_ERR_TRANSPORT);
		assert_null(m);
	}
	only_marker(s);
}

static void test_expired(void **state)
{
	struct cli s;
	X509 *old;

	(void)state;
	subscriber(&s);
	/* Issued three days ago for one hour: what a device holds after a long outage. */
	old = issue(&g.a, g.pub + 1, time(NULL) - 3 * 86400, 1);
	assert_true(X509_cmp_time(X509_get0_notAfter(old), NULL) < 0);
	refused(&s, old, g.a.chain);
	refused(&s, old, NULL);
	X509_free(old);
	cli_close(&s);
}

static void test_other_tenant(void **state)
{
	struct cli s;
	X509 *other;

	(void)state;
	subscriber(&s);
	/* The same device, a valid certificate, but from tenant B's CA. */
	other = issue(&g.b, g.pub + 1, time(NULL), 24);
	refused(&s, other, g.b.chain);
	refused(&s, other, NULL);
	/* Tenant B's chain sent along with tenant A's device CA does not help. */
	{
		STACK_OF(X509) *mix = sk_X509_dup(g.b.chain);

		assert_non_null(mix);
		assert_true(sk_X509_push(mix, g.a.dev_ca) > 0);
		refused(&s, other, mix);
		sk_X509_free(mix);
	}
	X509_free(other);
	cli_close(&s);
}

static void test_self_signed(void **state)
{
	struct cli s;
	X509 *self = NULL;

	(void)state;
	subscriber(&s);
	/* Right CN, right key, right usage: but nobody the broker trusts signed it. */
	assert_int_equal(agent_device_cert(g.rot, g.key, 1, &self), 0);
	refused(&s, self, NULL);
	refused(&s, self, g.a.chain);
	X509_free(self);
	cli_close(&s);
}

/* The device, with its genuine certificate, publishes under another id. */
static void test_acl_other_device(void **state)
{
	struct cli s, d;
	char other[ROT_DEVICE_ID_LEN + 1], topic[300];
	uint8_t opub[64];

	(void)state;
	/* Another device of the same tenant (its id is all that matters). */
	assert_int_equal(RAND_bytes(opub, sizeof(opub)), 1);
	assert_int_equal(sph_hex_encode(opub, sizeof(opub), other, sizeof(other)), 0);
	subscriber(&s);

	/* MQTT v5: the broker answers "not authorized". */
	cli_connect(&d, g.cert, g.a.chain, g.key, MQTT_PROTOCOL_V5);
	topic_of(topic, sizeof(topic), other, "telemetry");
	assert_int_equal(mosquitto_publish_v5(d.m, &d.pub_mid, topic, 4, "fake", 1, false, NULL),
	                 0);
	assert_true(cli_wait(&d, &d.puback, 0));
	assert_int_equal(d.puback, MQTT_RC_NOT_AUTHORIZED);
	/* Nor the subscriber's own namespace, nor the root. */
	d.puback = -1;
	assert_int_equal(
	        mosquitto_publish_v5(d.m, &d.pub_mid, "devices/x", 4, "fake", 1, false, NULL), 0);
	assert_true(cli_wait(&d, &d.puback, 0));
	assert_int_equal(d.puback, MQTT_RC_NOT_AUTHORIZED);
	/* Control: the same connection may publish under its own id. */
	d.puback = -1;
	topic_of(topic, sizeof(topic), g.id, "telemetry");
	assert_int_equal(mosquitto_publish_v5(d.m, &d.pub_mid, topic, 4, "real", 1, false, NULL),
	                 0);
	assert_true(cli_wait(&d, &d.puback, 0));
	assert_int_equal(d.puback, 0);
	cli_close(&d);
	assert_true(cli_wait(&s, NULL, 1));
	assert_int_equal(s.nmsg, 1);
	assert_string_equal(s.msg[0].topic, topic);
	assert_memory_equal(s.msg[0].payload, "real", 4);
	s.nmsg = 0;
	only_marker(&s);

	/* MQTT v3.1.1: the PUBACK says nothing; the message must still be dropped. */
	cli_connect(&d, g.cert, g.a.chain, g.key, MQTT_PROTOCOL_V311);
	topic_of(topic, sizeof(topic), other, "telemetry");
	assert_int_equal(mosquitto_publish(d.m, &d.pub_mid, topic, 4, "fake", 1, false), 0);
	assert_true(cli_wait(&d, &d.puback, 0));
	cli_close(&d);
	only_marker(&s);
	cli_close(&s);
}

/* Another device of the tenant subscribes to devices/#: it may not read. */
static void test_acl_no_read(void **state)
{
	struct cli s, d2;
	uint8_t pt[ROT_PUB_LEN];
	size_t n = 0;
	EVP_PKEY *k2 = EVP_EC_gen("P-256");
	X509 *c2;

	(void)state;
	assert_non_null(k2);
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(k2, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n),
	        1);
	c2 = issue(&g.a, pt + 1, time(NULL), 24);
	subscriber(&s);
	cli_connect(&d2, c2, g.a.chain, k2, MQTT_PROTOCOL_V5);
	assert_int_equal(mosquitto_subscribe_v5(d2.m, &d2.sub_mid, "devices/#", 1, 0, NULL), 0);
	assert_true(cli_wait(&d2, &d2.suback, 0));
	only_marker(&s); /* the genuine device publishes; the subscriber gets it */
	/* Whatever the broker forwarded to d2 before would arrive before this
	 * second SUBACK. Granted or not (Mosquitto may grant and then filter),
	 * nothing may have arrived. */
	d2.suback = -1;
	assert_int_equal(mosquitto_subscribe_v5(d2.m, &d2.sub_mid, "devices/+/marker", 1, 0, NULL),
	                 0);
	assert_true(cli_wait(&d2, &d2.suback, 0));
	assert_int_equal(d2.nmsg, 0);
	assert_false(d2.overflow);
	cli_close(&d2);
	cli_close(&s);
	X509_free(c2);
	EVP_PKEY_free(k2);
}

/* The agent refuses a broker its trust anchors do not vouch for. */
static void test_untrusted_broker(void **state)
{
	struct agent_mqtt_config cfg = device_cfg(g.cert, g.a.chain);
	struct agent_mqtt *m = NULL;

	(void)state;
	cfg.ca_file = g.chain_pem; /* the tenant chain: it never signed the broker */
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_BAD_SIGNATURE);
	assert_null(m);
}

static void test_bad_args(void **state)
{
	struct agent_mqtt_config cfg = device_cfg(g.cert, g.a.chain);
	struct agent_mqtt *m = NULL;
	char path[600];

	(void)state;
	assert_int_equal(agent_mqtt_connect(NULL, &m), SPH_ERR_INVALID_ARG);
	assert_int_equal(agent_mqtt_connect(&cfg, NULL), SPH_ERR_INVALID_ARG);
	cfg.port = 0;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	cfg = device_cfg(g.cert, NULL);
	cfg.host = "";
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	cfg = device_cfg(g.cert, NULL);
	cfg.ca_file = NULL; /* no trust anchors */
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	cfg = device_cfg(NULL, NULL);
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	cfg = device_cfg(g.cert, NULL);
	cfg.timeout_ms = AGENT_MQTT_TIMEOUT_MAX + 1;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	cfg = device_cfg(g.cert, NULL);
	cfg.tls_max_version = TLS1_1_VERSION;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	/* A certificate for another key (the subscriber's) is not the RoT's. */
	cfg = device_cfg(g.s_cert, NULL);
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_INVALID_ARG);
	/* No such trust-anchor file. */
	snprintf(path, sizeof(path), "%s/nonexistent.pem", g.tmp);
	cfg = device_cfg(g.cert, NULL);
	cfg.ca_file = path;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_IO);
	/* Nobody listening. */
	cfg = device_cfg(g.cert, NULL);
	cfg.port = 1;
	assert_int_equal(agent_mqtt_connect(&cfg, &m), SPH_ERR_TRANSPORT);
	assert_null(m);
	agent_mqtt_close(NULL);
	ERR_clear_error();
}

/* ---- the broker ------------------------------------------------------------------- */

static int setup(void **state)
{
	const char *dir = getenv("SPHERE_MQTT_DIR");
	char *chain = NULL, *port_path;
	uint8_t *port_text = NULL, pt[ROT_PUB_LEN];
	size_t len = 0, n = 0;
	struct tu_result r;

	(void)state;
	if (!dir || !getenv("SPHERE_MQTT_SCRIPT"))
		fail_msg("SPHERE_MQTT_DIR / SPHERE_MQTT_SCRIPT not set (run the test through "
		         "ctest)");
	g.tmp = tu_mkdtemp();
	g.mqtt_dir = strdup(dir);
	assert_non_null(g.mqtt_dir);
	assert_int_equal(RAND_bytes(g.kek, sizeof(g.kek)), 1);
	tenant_init(&g.a, tenant_a);
	tenant_init(&g.b, tenant_b);

	/* The device: a real RoT, its certificate from tenant A as sphere-ss issues it. */
	g.otp = tu_path(g.tmp, "otp");
	assert_int_equal(rot_otp_fuse(g.otp, secret, ROT_LC_DEVELOPMENT), 0);
	assert_int_equal(rot_open_inproc(g.otp, &g.rot), 0);
	assert_int_equal(agent_rot_key(g.rot, &g.key), 0);
	assert_int_equal(rot_device_id(g.rot, g.id), 0);
	assert_int_equal(rot_pubkey(g.rot, ROT_KEY_IDENTITY, g.pub), 0);
	g.cert = issue(&g.a, g.pub + 1, time(NULL), 24);

	/* The subscriber: an ordinary key, a certificate from the same CA. */
	g.s_key = EVP_EC_gen("P-256");
	assert_non_null(g.s_key);
	assert_int_equal(EVP_PKEY_get_octet_string_param(g.s_key, OSSL_PKEY_PARAM_PUB_KEY, pt,
	                                                 sizeof(pt), &n),
	                 1);
	assert_int_equal(n, sizeof(pt));
	g.s_cert = issue(&g.a, pt + 1, time(NULL), 24);
	assert_int_equal(sph_hex_encode(pt + 1, 64, g.s_id, sizeof(g.s_id)), 0);

	/* The broker: trusts tenant A's chain (what `sphere ca-certificate
	 * download-chain` gives), lets the subscriber read. */
	assert_int_equal(ss_ca_chain_pem(&g.a.ca, &chain), 0);
	g.chain_pem = tu_path(g.tmp, "tenant-a-chain.pem");
	write_file(g.chain_pem, chain);
	free(chain);
	{
		const char *args[] = {"start", g.mqtt_dir, g.chain_pem, g.s_id, NULL};

		r = tu_run("SPHERE_MQTT_SCRIPT", g.tmp, args);
		tu_expect(&r, 0, NULL);
	}
	port_path = tu_path(g.mqtt_dir, "port");
	assert_int_equal(tu_read_file(port_path, &port_text, &len), 0);
	{
		char *end = NULL;
		long p = strtol((char *)port_text, &end, 10);

		assert_true(end != (char *)port_text && (*end == '\n' || *end == '\0'));
		assert_true(p > 0 && p < 65536);
		g.port = (int)p;
	}
	free(port_text);
	free(port_path);
	g.server_ca = tu_path(g.mqtt_dir, "server-ca.pem");
	return 0;
}

static int teardown(void **state)
{
	const char *args[] = {"stop", g.mqtt_dir, NULL};
	struct tu_result r = tu_run("SPHERE_MQTT_SCRIPT", g.tmp, args);

	(void)state;
	tu_expect(&r, 0, NULL);
	X509_free(g.cert);
	X509_free(g.s_cert);
	EVP_PKEY_free(g.s_key);
	EVP_PKEY_free(g.key);
	rot_close(g.rot);
	tenant_free(&g.a);
	tenant_free(&g.b);
	tu_rmtree(g.tmp);
	free(g.tmp);
	free(g.otp);
	free(g.chain_pem);
	free(g.server_ca);
	free(g.mqtt_dir);
	mosquitto_lib_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_telemetry),        cmocka_unit_test(test_expired),
	        cmocka_unit_test(test_other_tenant),     cmocka_unit_test(test_self_signed),
	        cmocka_unit_test(test_acl_other_device), cmocka_unit_test(test_acl_no_read),
	        cmocka_unit_test(test_untrusted_broker), cmocka_unit_test(test_bad_args),
	};

	mosquitto_lib_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
