/*
 * ss_api_checkin: the device check-in (docs/api.md §4.13). A device talks
 * over TLS with its RoT identity key (ss_http device_keys): it asks for a
 * nonce (§4.12), then presents an EAT over it signed by its registered
 * attestation key. The service checks, in order, registration, claim, nonce,
 * evidence and every measurement against the catalogue, compares what runs
 * with the group's target, and records the check-in in one write transaction
 * (the nonce's single use included). Up to date, the device gets a 24 h
 * certificate from its tenant's CA; either way a signed time.
 *
 * Nothing from the evidence or the nonce is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "cose/cose.h"
#include "eat/eat.h"
#include "image/image.h"
#include "ss_http.h"
#include "ss_internal.h"

#define SS_CI_CERT_HOURS   24
#define SS_CI_TIME_CTYPE   65052 /* application/sphere-time+cbor (docs/formats.md) */
#define SS_CI_EVIDENCE_MAX EAT_MAX_TOKEN
#define SS_CI_TIME_MAX     (2 * SS_CA_CERT_MAX + 512)

/* ---- small helpers ------------------------------------------------------------- */

static int64_t ss_ci_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ss_ci_uuid(const uint8_t b[16], char out[SS_UUID_LEN + 1])
{
	static const char hx[] = "0123456789abcdef";
	size_t k = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hx[b[i] >> 4];
		out[k++] = hx[b[i] & 15];
	}
	out[k] = '\0';
}

/* The image type a measurement names: BL, SECMON, OS (platform); anything
 * else is an application (matched among the tenant's types 4 and 5). */
static uint32_t ss_ci_os_type(const char *type)
{
	if (strcmp(type, "BL") == 0)
		return IMG_TYPE_BOOTLOADER;
	if (strcmp(type, "SECMON") == 0)
		return IMG_TYPE_SECMON;
	if (strcmp(type, "OS") == 0)
		return IMG_TYPE_OS;
	return 0;
}

/* The image type of any measurement type: the platform's, "APP", "RTAPP";
 * 0 for anything else. */
static uint32_t ss_ci_type(const char *type)
{
	uint32_t os = ss_ci_os_type(type);

	if (os)
		return os;
	if (strcmp(type, "APP") == 0)
		return IMG_TYPE_APP;
	if (strcmp(type, "RTAPP") == 0)
		return IMG_TYPE_RTAPP;
	return 0;
}

/* The measurement log a boot chain writes: BL, SECMON, OS first, in that
 * order, once each, then only application types. Anything else — a second
 * OS measured later by software that could extend the RoT's log, a platform
 * entry out of order, an unknown type — is not a boot this service can
 * compare with a target. */
static bool ss_ci_log_shape_ok(const struct eat_claims *c)
{
	static const uint32_t boot[] = {IMG_TYPE_BOOTLOADER, IMG_TYPE_SECMON, IMG_TYPE_OS};

	if (c->n_components < 3)
		return false;
	for (size_t i = 0; i < c->n_components; i++) {
		uint32_t t = ss_ci_type(c->components[i].type);
		if (i < 3 ? t != boot[i] : (t != IMG_TYPE_APP && t != IMG_TYPE_RTAPP))
			return false;
	}
	return true;
}

/* A refusal: counted, audited in the device's tenant ("" when none), replied. */
/* Whether a service-wide refusal may be audited now (a token bucket, see
 * struct ss_service); *dropped is how many were not since the last that was. */
static bool ss_ci_refuse_audit_ok(struct ss_service *s, uint64_t *dropped)
{
	struct timespec ts;
	int64_t ms;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&s->refuse_audit.mu);
	if (s->refuse_audit.last_ms)
		s->refuse_audit.tokens +=
		        (double)(ms - s->refuse_audit.last_ms) / 1000.0 * SS_AUDIT_REFUSE_PER_S;
	if (s->refuse_audit.tokens > SS_AUDIT_REFUSE_BURST)
		s->refuse_audit.tokens = SS_AUDIT_REFUSE_BURST;
	s->refuse_audit.last_ms = ms;
	ok = s->refuse_audit.tokens >= 1.0;
	if (ok) {
		s->refuse_audit.tokens -= 1.0;
		*dropped = s->refuse_audit.dropped;
		s->refuse_audit.dropped = 0;
	} else {
		s->refuse_audit.dropped++;
	}
	pthread_mutex_unlock(&s->refuse_audit.mu);
	return ok;
}

static void ss_ci_refuse(struct ss_service *s, struct ss_req *r, const char *tenant_id,
                         const char *device_id, int status, const char *reason, const char *text)
{
	char label[64], detail[96];
	const char *code = status == 401 ? "unauthorized" : status == 403 ? "forbidden" : "error";
	uint64_t dropped = 0;

	snprintf(label, sizeof(label), "reason=\"%s\"", reason);
	ss_metric_inc(ss_req_server(r), "sphere_attestation_failures_total", label);
	ss_metric_inc(ss_req_server(r), "sphere_checkins_total", "status=\"refused\"");
	snprintf(detail, sizeof(detail), "%s", reason);
	if (tenant_id[0] || ss_ci_refuse_audit_ok(s, &dropped)) {
		if (dropped)
			snprintf(detail, sizeof(detail),
			         "%s (+%llu service-wide refusals not audited)", reason,
			         (unsigned long long)dropped);
		if (ss_store_audit_add(s->st, tenant_id, "", "attestation.refused", device_id,
		                       detail) != 0)
			sph_log(SPH_LOG_WARN, "ss", "audit_failed",
			        "action=attestation.refused reason=%s", reason);
	} else {
		ss_metric_inc(ss_req_server(r), "sphere_audit_refusals_dropped_total", "");
	}
	ss_reply_error(r, status, code, "%s: %s", reason, text);
}

/* The device id: the TLS client key (401 without one). */
static bool ss_ci_device(struct ss_req *r, uint8_t pub[64], char id[SS_DEVICE_ID_LEN + 1])
{
	if (ss_req_peer_key(r, pub) != 0 ||
	    sph_hex_encode(pub, 64, id, SS_DEVICE_ID_LEN + 1) != 0) {
		ss_reply_error(r, 401, "unauthorized", "a device certificate (P-256) is required");
		return false;
	}
	return true;
}

/* ---- POST /v1/checkin/nonce ------------------------------------------------------ */

static void ss_h_checkin_nonce(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	uint8_t pub[64], nonce[SS_NONCE_LEN];
	char id[SS_DEVICE_ID_LEN + 1], hex[2 * SS_NONCE_LEN + 1];

	if (!ss_ci_device(r, pub, id))
		return;
	if (ss_nonce_issue(&s->nonce_key, id, ss_ci_now_ms(), nonce) != 0 ||
	    sph_hex_encode(nonce, sizeof(nonce), hex, sizeof(hex)) != 0) {
		ss_reply_error(r, 500, "internal", "nonce");
		return;
	}
	ss_reply_json(r, 200, json_pack("{s:s}", "nonce", hex));
}

/* ---- measurements against the catalogue -------------------------------------------- */

/* Whether owner's ("" : OS) catalogue holds an image of type for
 * measurement m: one indexed lookup by component id and version, then the
 * rest compared. Returns 1, 0 or a negative status. The catalogue stores no
 * signer id: OS packages were verified against the platform root at upload,
 * tenant ones are re-signed; the match is component id, version, security
 * version, type and payload SHA-256. */
static int ss_ci_known(struct ss_service *s, const char *owner, uint32_t type,
                       const struct eat_component *m)
{
	struct ss_image g;
	char cid[SS_UUID_LEN + 1];
	int rc;

	ss_ci_uuid(m->component_id, cid);
	rc = ss_store_image_find(s->st, owner, cid, m->version, &g);
	if (rc == SPH_ERR_NOT_FOUND)
		return 0;
	if (rc)
		return rc;
	return g.type == type && g.security_version == m->security_version &&
	       CRYPTO_memcmp(g.payload_sha256, m->digest, 32) == 0;
}

/* The measured summary stored with the check-in: [{"type", "component_id",
 * "version", "svn"}...], as many as fit SS_MEASURED_MAX. Returns a malloc'd
 * string or NULL. */
static char *ss_ci_summary(const struct eat_claims *c)
{
	json_t *a = json_array();
	char *out = NULL;

	for (size_t i = 0; a && i < c->n_components; i++) {
		const struct eat_component *m = &c->components[i];
		char cid[SS_UUID_LEN + 1], *try;
		ss_ci_uuid(m->component_id, cid);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I}", "type", m->type,
		                                   "component_id", cid, "version", m->version,
		                                   "svn", (json_int_t)m->security_version));
		try = json_dumps(a, JSON_COMPACT);
		if (!try || strlen(try) > SS_MEASURED_MAX ||
		    !sph_text_ok((const uint8_t *)try, strlen(try), SS_MEASURED_MAX)) {
			free(try);
			break;
		}
		free(out);
		out = try;
	}
	json_decref(a);
	if (!out)
		out = strdup("[]");
	return out;
}

/* ---- the signed time ------------------------------------------------------------- */

/* COSE_Sign1 over {1: now, 2: nonce} with the tenant's production signer,
 * x5chain [signer, tenant image root], content type 65052; base64url. */
static int ss_ci_signed_time(struct ss_service *s, const char *tenant_id, const uint8_t *nonce,
                             size_t nonce_len, char **out)
{
	X509 *root = NULL, *signer = NULL;
	EVP_PKEY *key = NULL;
	uint8_t payload[128], *cose = malloc(SS_CI_TIME_MAX), *rder = NULL, *sder = NULL;
	struct cose_x5 x5[2];
	struct cose_sign1_params p;
	struct sph_cbw w;
	size_t plen = 0, clen = 0;
	int rl, sl, rc;

	*out = NULL;
	rc = cose ? ss_tenant_signer(s, tenant_id, &root, &signer, &key) : SPH_ERR_NOMEM;
	if (rc)
		goto out;
	rc = SPH_ERR_CRYPTO;
	rl = i2d_X509(root, &rder);
	sl = i2d_X509(signer, &sder);
	if (rl <= 0 || sl <= 0)
		goto out;
	sph_cbw_init(&w, payload, sizeof(payload));
	sph_cbw_map(&w, 2);
	sph_cbw_uint(&w, 1);
	sph_cbw_uint(&w, (uint64_t)time(NULL));
	sph_cbw_uint(&w, 2);
	sph_cbw_bstr(&w, nonce, nonce_len);
	rc = sph_cbw_finish(&w, &plen);
	if (rc)
		goto out;
	x5[0] = (struct cose_x5){sder, (size_t)sl};
	x5[1] = (struct cose_x5){rder, (size_t)rl};
	memset(&p, 0, sizeof(p));
	p.payload = payload;
	p.payload_len = plen;
	p.content_type = SS_CI_TIME_CTYPE;
	p.x5chain = x5;
	p.x5chain_count = 2;
	rc = cose_sign1_create(&p, cose_pkey_signer, key, cose, SS_CI_TIME_MAX, &clen);
	if (rc)
		goto out;
	*out = sph_b64url_encode(cose, clen);
	rc = *out ? 0 : SPH_ERR_NOMEM;
out:
	OPENSSL_free(rder);
	OPENSSL_free(sder);
	free(cose);
	X509_free(root);
	X509_free(signer);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- POST /v1/checkin ------------------------------------------------------------ */

/* The body's failure reports (400 when malformed). */
static bool ss_ci_failures(struct ss_req *r, json_t *body, struct ss_failure *f, size_t *n)
{
	json_t *a = json_object_get(body, "failures"), *e;
	size_t i;

	*n = 0;
	if (!a)
		return true;
	if (!json_is_array(a) || json_array_size(a) > SS_FAILURES_PER_CHECKIN) {
		ss_reply_error(r, 400, "bad_request", "failures: an array of at most %d",
		               SS_FAILURES_PER_CHECKIN);
		return false;
	}
	json_array_foreach(a, i, e)
	{
		json_t *comp = json_object_get(e, "component"), *code = json_object_get(e, "code"),
		       *text = json_object_get(e, "text");
		const char *kind = json_string_value(json_object_get(e, "kind"));
		struct ss_failure *x = &f[i];

		memset(x, 0, sizeof(*x));
		x->kind = ss_failure_kind_from_name(kind);
		if (!json_is_object(e) || x->kind == SS_FAIL_NONE ||
		    (comp && !json_is_string(comp)) || (code && !json_is_integer(code)) ||
		    (text && !json_is_string(text)) ||
		    (comp && json_string_length(comp) > SS_FAILURE_COMP_MAX) ||
		    (text && json_string_length(text) > SS_FAILURE_TEXT_MAX)) {
			ss_reply_error(r, 400, "bad_request",
			               "failures[%zu]: {\"kind\": crash|exit|signal|refused-image|"
			               "failed-boot, \"component\"?, \"code\"?, \"text\"? (<= %d)}",
			               i, SS_FAILURE_TEXT_MAX);
			return false;
		}
		if (comp)
			memcpy(x->component, json_string_value(comp), json_string_length(comp) + 1);
		if (text)
			memcpy(x->text, json_string_value(text), json_string_length(text) + 1);
		x->code = code ? (int64_t)json_integer_value(code) : 0;
		if (!sph_text_ok((const uint8_t *)x->component, strlen(x->component),
		                 SS_FAILURE_COMP_MAX) &&
		    x->component[0]) {
			ss_reply_error(r, 400, "bad_request", "failures[%zu].component: printable",
			               i);
			return false;
		}
		if (!sph_text_ok((const uint8_t *)x->text, strlen(x->text), SS_FAILURE_TEXT_MAX) &&
		    x->text[0]) {
			ss_reply_error(r, 400, "bad_request", "failures[%zu].text: printable", i);
			return false;
		}
	}
	*n = json_array_size(a);
	return true;
}

/* Whether claims run every target entry (that component at that version, or
 * a higher security version); the entries not run go to updates. */
static bool ss_ci_compare(const struct ss_target *t, const struct eat_claims *c, const char *tenant,
                          json_t *updates)
{
	bool ok = true;

	for (size_t i = 0; i < t->n; i++) {
		const struct ss_target_image *g = &t->images[i];
		bool runs = false;
		char url[160], hex[65], cid[SS_UUID_LEN + 1];

		for (size_t k = 0; k < c->n_components && !runs; k++) {
			const struct eat_component *m = &c->components[k];
			runs = ss_ci_type(m->type) == g->type &&
			       memcmp(m->component_id, g->component_id, 16) == 0 &&
			       (strcmp(m->version, g->version) == 0 ||
			        m->security_version > g->security_version);
		}
		if (runs)
			continue;
		ok = false;
		if (g->is_os)
			snprintf(url, sizeof(url), "/v1/os-images/%s/package", g->image_id);
		else
			snprintf(url, sizeof(url), "/v1/tenants/%s/images/%s/package", tenant,
			         g->image_id);
		sph_hex_encode(g->package_sha256, 32, hex, sizeof(hex));
		ss_ci_uuid(g->component_id, cid);
		json_array_append_new(
		        updates,
		        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "image_id",
		                  g->image_id, "type",
		                  g->type <= IMG_TYPE_OS
		                          ? (const char *[]){"", "BL", "SECMON", "OS"}[g->type]
		                  : g->type == IMG_TYPE_APP ? "APP"
		                                            : "RTAPP",
		                  "component_id", cid, "version", g->version, "security_version",
		                  (json_int_t)g->security_version, "size",
		                  (json_int_t)g->package_size, "sha256", hex, "url", url));
	}
	return ok;
}

/* The issued certificate's notAfter (Unix seconds), serial (hex) and PEM
 * (*pem, caller frees): from the object, never decoded again. */
static int ss_ci_cert_info(X509 *x, int64_t *not_after, char *serial, size_t cap, char **pem)
{
	struct tm tm;
	BIGNUM *bn = NULL;
	char *h = NULL;
	int rc = SPH_ERR_CRYPTO;

	*pem = NULL;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		goto out;
	*not_after = (int64_t)timegm(&tm);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	h = bn ? BN_bn2hex(bn) : NULL;
	if (!h)
		goto out;
	snprintf(serial, cap, "%s", h);
	rc = ss_ca_pem(&x, 1, pem);
out:
	OPENSSL_free(h);
	BN_free(bn);
	return rc;
}

struct ss_ci_work {
	uint8_t pub[64];
	char id[SS_DEVICE_ID_LEN + 1];
	uint8_t nonce[SS_NONCE_LEN];
	size_t nonce_len;
	uint8_t evidence[SS_CI_EVIDENCE_MAX];
	size_t evidence_len;
	struct ss_failure failures[SS_FAILURES_PER_CHECKIN];
	size_t n_failures;
	struct ss_registration reg;
	struct ss_device dev;
	struct eat_claims claims;
	struct ss_target target;
};

static void ss_h_checkin(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_ci_work *w = calloc(1, sizeof(*w));
	json_t *body = NULL, *reply = NULL, *updates = NULL;
	const char *nonce_hex, *ev;
	uint8_t attest[COSE_P256_PUB_LEN], ident[COSE_P256_PUB_LEN];
	X509 *cert = NULL;
	char *summary = NULL, *chain = NULL, *pem = NULL, *stime = NULL, serial[80] = "";
	struct ss_checkin ci;
	bool sideloading = false;
	int64_t issued_ms = 0, not_after = 0;
	bool up;
	int rc;

	if (!w) {
		ss_reply_error(r, 500, "internal", "out of memory");
		goto out;
	}
	if (!ss_ci_device(r, w->pub, w->id))
		goto out;
	body = ss_api_body(r);
	if (!body)
		goto out;
	nonce_hex = json_string_value(json_object_get(body, "nonce"));
	ev = json_string_value(json_object_get(body, "evidence"));
	if (!nonce_hex || !ev) {
		ss_reply_error(r, 400, "bad_request", "nonce and evidence: strings required");
		goto out;
	}
	if (sph_b64url_decode(ev, w->evidence, sizeof(w->evidence), &w->evidence_len) != 0) {
		ss_reply_error(r, 400, "bad_request", "evidence: base64url of at most %d bytes",
		               SS_CI_EVIDENCE_MAX);
		goto out;
	}
	if (!ss_ci_failures(r, body, w->failures, &w->n_failures))
		goto out;
	/* registered, claimed */
	/* the attestation key: a registration never changes, so a cached one is
	 * current (ss_cache.c) */
	if (ss_cache_reg_get(&s->cache, w->id, w->reg.attestation_key)) {
		rc = 0;
	} else {
		rc = ss_store_registration_get(s->st, w->id, &w->reg);
		if (rc == 0)
			ss_cache_reg_put(&s->cache, w->id, w->reg.attestation_key);
	}
	if (rc == SPH_ERR_NOT_FOUND) {
		ss_ci_refuse(s, r, "", w->id, 403, "unregistered", "the device is not registered");
		goto out;
	}
	if (rc == 0) {
		rc = ss_store_device_find(s->st, w->id, &w->dev);
		if (rc == SPH_ERR_NOT_FOUND) {
			ss_ci_refuse(s, r, "", w->id, 403, "unclaimed",
			             "no tenant holds the device");
			goto out;
		}
	}
	if (rc) {
		ss_api_reply_store(r, rc, "device");
		goto out;
	}
	/* the nonce */
	w->nonce_len = strlen(nonce_hex) / 2;
	if (strlen(nonce_hex) != 2 * SS_NONCE_LEN ||
	    sph_hex_decode(nonce_hex, w->nonce, sizeof(w->nonce)) != 0 ||
	    ss_nonce_check(&s->nonce_key, w->id, ss_ci_now_ms(), w->nonce, w->nonce_len,
	                   &issued_ms) != 0) {
		ss_ci_refuse(s, r, w->dev.tenant_id, w->id, 401, "nonce",
		             "malformed, another device's, altered or expired");
		goto out;
	}
	/* the evidence */
	attest[0] = ident[0] = 0x04;
	memcpy(attest + 1, w->reg.attestation_key, SS_ATTEST_KEY_LEN);
	memcpy(ident + 1, w->pub, 64);
	if (eat_verify(w->evidence, w->evidence_len, w->nonce, w->nonce_len, attest, ident,
	               &w->claims) != 0) {
		ss_ci_refuse(s, r, w->dev.tenant_id, w->id, 401, "evidence",
		             "the evidence does not verify");
		goto out;
	}
	/* a boot's measurement log, and every measurement in the catalogue */
	if (!ss_ci_log_shape_ok(&w->claims)) {
		ss_ci_refuse(
		        s, r, w->dev.tenant_id, w->id, 403, "unknown_measurement",
		        "the measurements are not BL, SECMON, OS once each, then applications");
		goto out;
	}
	for (size_t i = 0; i < w->claims.n_components; i++) {
		const struct eat_component *m = &w->claims.components[i];
		uint32_t os = ss_ci_os_type(m->type);
		rc = ss_ci_known(s, os ? "" : w->dev.tenant_id, ss_ci_type(m->type), m);
		if (rc < 0) {
			ss_api_reply_store(r, rc, "images");
			goto out;
		}
		if (rc == 0) {
			ss_ci_refuse(s, r, w->dev.tenant_id, w->id, 403, "unknown_measurement",
			             "a measured component is not in the catalogue");
			goto out;
		}
	}
	/* the group's target (a device in no group has none: up to date) */
	updates = json_array();
	if (!updates) {
		ss_reply_error(r, 500, "internal", "out of memory");
		goto out;
	}
	if (w->dev.group_id[0]) {
		/* cached while the generations read with the device are current */
		rc = 0;
		if (!ss_cache_target_get(&s->cache, w->dev.tenant_id, w->dev.group_id,
		                         w->dev.target_gen, w->dev.os_gen, &w->target)) {
			rc = ss_group_target(s, w->dev.tenant_id, w->dev.group_id, &w->target);
			if (rc == 0)
				ss_cache_target_put(&s->cache, w->dev.tenant_id, w->dev.group_id,
				                    w->dev.target_gen, w->dev.os_gen, &w->target);
		}
		/* development mode: applications are sideloaded, OS updates only */
		if (rc == 0)
			rc = ss_device_target_mode(s, &w->dev, &w->target, &sideloading);
		if (rc) {
			ss_api_reply_store(r, rc, "target");
			goto out;
		}
	}
	up = ss_ci_compare(&w->target, &w->claims, w->dev.tenant_id, updates);
	if (up) {
		rc = ss_tenant_issue(s, w->dev.tenant_id, w->pub, SS_CI_CERT_HOURS, &cert, &chain);
		if (rc == 0)
			rc = ss_ci_cert_info(cert, &not_after, serial, sizeof(serial), &pem);
		if (rc) {
			sph_log(SPH_LOG_ERROR, "ss", "checkin_cert", "rc=%d", rc);
			ss_reply_error(r, 500, "internal", "certificate");
			goto out;
		}
	}
	rc = ss_ci_signed_time(s, w->dev.tenant_id, w->nonce, w->nonce_len, &stime);
	if (rc) {
		sph_log(SPH_LOG_ERROR, "ss", "checkin_time", "rc=%d", rc);
		ss_reply_error(r, 500, "internal", "signed time");
		goto out;
	}
	summary = ss_ci_summary(&w->claims);
	if (!summary) {
		ss_reply_error(r, 500, "internal", "out of memory");
		goto out;
	}
	/* one write transaction: the nonce's single use, the state, the reports */
	memset(&ci, 0, sizeof(ci));
	ci.tenant_id = w->dev.tenant_id;
	ci.device_id = w->id;
	ci.nonce_ms = issued_ms;
	ci.up_to_date = up;
	ci.cert_expires = up ? not_after : 0;
	ci.cert_serial = serial;
	ci.measured = summary;
	ci.failures = w->failures;
	ci.n_failures = w->n_failures;
	rc = ss_store_checkin_record(s->st, &ci);
	if (rc == SPH_ERR_ROLLBACK) {
		ss_ci_refuse(s, r, w->dev.tenant_id, w->id, 401, "replay",
		             "the nonce was used already");
		goto out;
	}
	if (rc == SPH_ERR_NOT_FOUND) {
		ss_ci_refuse(s, r, "", w->id, 403, "unclaimed", "no tenant holds the device");
		goto out;
	}
	if (rc) {
		ss_api_reply_store(r, rc, "checkin");
		goto out;
	}
	ss_metric_inc(ss_req_server(r), "sphere_checkins_total",
	              up ? "status=\"up_to_date\"" : "status=\"update_required\"");
	if (up) {
		ss_metric_inc(ss_req_server(r), "sphere_certificates_issued_total", "");
		reply = json_pack("{s:s, s:s, s:s, s:s}", "status", "up_to_date", "certificate",
		                  pem, "chain", chain, "time", stime);
	} else {
		reply = json_pack("{s:s, s:O, s:s}", "status", "update_required", "updates",
		                  updates, "time", stime);
	}
	if (reply && sideloading)
		json_object_set_new(reply, "applications", json_string("sideloading"));
	ss_reply_json(r, 200, reply);
out:
	json_decref(body);
	json_decref(updates);
	X509_free(cert);
	free(summary);
	free(chain);
	free(pem);
	free(stime);
	if (w)
		OPENSSL_cleanse(w, sizeof(*w));
	free(w);
}

/* ---- failure report listings --------------------------------------------------------- */

/* The scope a tenant-wide listing asks for: ?device_group=<id> (the reports
 * of the devices now in it) or ?image=<id> (reports naming its component, a
 * tenant or an OS image), not both. Replies itself and returns false when
 * the group or image is not this tenant's to see. */
static bool ss_ci_scope(struct ss_service *s, struct ss_req *r, const char *tenant_id,
                        enum ss_failure_scope *scope, char key[SS_UUID_LEN + 1])
{
	const char *g = ss_req_query(r, "device_group"), *i = ss_req_query(r, "image");
	int rc;

	*scope = SS_FAILURES_TENANT;
	key[0] = '\0';
	if (g && i) {
		ss_reply_error(r, 400, "bad_request", "device_group or image, not both");
		return false;
	}
	if (g) {
		struct ss_group grp;
		rc = ss_store_group_get(s->st, tenant_id, g, &grp);
		if (rc) {
			ss_api_reply_store(r, rc == SPH_ERR_INVALID_ARG ? SPH_ERR_NOT_FOUND : rc,
			                   "device group");
			return false;
		}
		*scope = SS_FAILURES_GROUP;
		memcpy(key, grp.id, SS_UUID_LEN + 1);
	}
	if (i) {
		struct ss_image img;
		rc = ss_store_image_get(s->st, tenant_id, i, &img);
		if (rc == SPH_ERR_NOT_FOUND)
			rc = ss_store_image_get(s->st, "", i, &img); /* an OS image */
		if (rc) {
			ss_api_reply_store(r, rc == SPH_ERR_INVALID_ARG ? SPH_ERR_NOT_FOUND : rc,
			                   "image");
			return false;
		}
		*scope = SS_FAILURES_COMPONENT;
		memcpy(key, img.component_id, SS_UUID_LEN + 1);
	}
	return true;
}

static void ss_ci_list(struct ss_service *s, struct ss_req *r, const char *device_id)
{
	struct ss_user u;
	struct ss_tenant t;
	struct ss_failure *fs = NULL;
	enum ss_role role;
	enum ss_failure_scope scope = SS_FAILURES_DEVICE;
	const char *before = ss_req_query(r, "before");
	char key[SS_UUID_LEN + 1];
	json_t *a = NULL;
	size_t limit, n = 0;
	long long b = 0;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	if (before) {
		char *end;
		b = strtoll(before, &end, 10);
		if (!before[0] || *end || b < 1) {
			ss_reply_error(r, 400, "bad_request", "before: a failure id");
			return;
		}
	}
	if (device_id[0]) {
		struct ss_device d;
		rc = ss_store_device_get(s->st, t.id, device_id, &d);
		if (rc) {
			ss_api_reply_store(r, rc == SPH_ERR_INVALID_ARG ? SPH_ERR_NOT_FOUND : rc,
			                   "device");
			return;
		}
	} else if (!ss_ci_scope(s, r, t.id, &scope, key)) {
		return;
	}
	fs = calloc(limit, sizeof(*fs));
	a = json_array();
	rc = fs && a ? ss_store_failure_list(s->st, t.id, scope, device_id[0] ? device_id : key, b,
	                                     fs, limit, &n)
	             : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a, json_pack("{s:I, s:s, s:I, s:s, s:s, s:I, s:s}", "id",
		                                   (json_int_t)fs[i].id, "device_id",
		                                   fs[i].device_id, "at", (json_int_t)fs[i].at,
		                                   "component", fs[i].component, "kind",
		                                   ss_failure_kind_name(fs[i].kind), "code",
		                                   (json_int_t)fs[i].code, "text", fs[i].text));
	free(fs);
	if (rc) {
		json_decref(a);
		ss_api_reply_store(r, rc, "failures");
		return;
	}
	ss_reply_json(r, 200, json_pack("{s:o}", "failures", a));
}

static void ss_h_failures_device(struct ss_req *r, void *arg)
{
	ss_ci_list(arg, r, ss_req_param(r, "device"));
}

static void ss_h_failures_tenant(struct ss_req *r, void *arg)
{
	ss_ci_list(arg, r, "");
}

int ss_api_checkin_routes(struct ss_service *s)
{
	static const struct {
		const char *method, *pattern;
		ss_handler fn;
	} routes[] = {
	        {"POST", "/v1/checkin/nonce", ss_h_checkin_nonce},
	        {"POST", "/v1/checkin", ss_h_checkin},
	        {"GET", "/v1/tenants/{tenant}/devices/{device}/failures", ss_h_failures_device},
	        {"GET", "/v1/tenants/{tenant}/failures", ss_h_failures_tenant},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn,
		                       s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
