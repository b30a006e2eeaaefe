/*
 * fleet: emulated devices and their check-ins (fleet.h, docs/fleet.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "agent/agent.h"
#include "common/common.h"
#include "eat/eat.h"
#include "fleet.h"
#include "image/image.h"
#include "service/ss_nonce.h"

#define REPLY_MAX (256u * 1024u) /* a check-in reply is a few KiB */

static const struct chip_flash_geometry fleet_geo = {.block_size = 4096, .block_count = 390};

struct fleet_reply {
	char *body;
	size_t len;
};

/* ---- HTTP ------------------------------------------------------------------------- */

static size_t fleet_on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct fleet_reply *r = arg;
	size_t add = sz * n;
	char *q;

	if (add > REPLY_MAX - r->len)
		return 0; /* past the hard maximum: curl fails the transfer */
	q = realloc(r->body, r->len + add + 1);
	if (!q)
		return 0;
	memcpy(q + r->len, p, add);
	r->len += add;
	q[r->len] = '\0';
	r->body = q;
	return add;
}

static void fleet_reply_clear(struct fleet_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* A set-up call with a bearer token over c (kept alive between calls). Returns
 * the HTTP status, or 0 if the transfer failed; r receives the body. */
static long fleet_api(const struct fleet_service *b, CURL *c, const char *method, const char *path,
                      const char *token, const void *body, size_t len, const char *ctype,
                      struct fleet_reply *r)
{
	struct curl_slist *h = NULL, *h2;
	char url[512], auth[128], ct[128];
	long status = 0;

	fleet_reply_clear(r);
	curl_easy_reset(c);
	snprintf(url, sizeof(url), "https://localhost:%u%s", (unsigned)b->port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
	h = curl_slist_append(NULL, auth);
	if (!h || !(h2 = curl_slist_append(h, ct)))
		goto out;
	h = h2;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, b->ca);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fleet_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
out:
	curl_slist_free_all(h);
	return status;
}

static long fleet_api_json(const struct fleet_service *b, CURL *c, const char *path,
                           const char *token, const char *body, struct fleet_reply *r)
{
	return fleet_api(b, c, "POST", path, token, body, strlen(body), "application/json", r);
}

/* ---- the service ------------------------------------------------------------------ */

/* Component comp at version 1.0.0, signed by the platform signer. Returns 0 or a status. */
static int fleet_pack(struct fleet_service *b, unsigned comp)
{
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t payload[64];
	int rc = SPH_ERR_NOMEM;

	if (!chain || sk_X509_push(chain, b->root_cert) <= 0)
		goto out;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31u + comp * 7u + 101u);
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < IMG_COMPONENT_ID_LEN; i++)
		m.component_id[i] = (uint8_t)(0x10 * (comp + 1) + i);
	m.type = comp + 1;
	snprintf(m.name, sizeof(m.name), "%s", boot_comp_name(comp));
	snprintf(m.version, sizeof(m.version), "1.0.0");
	m.security_version = 1;
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	rc = img_pack(&m, payload, sizeof(payload), b->signer_key, b->signer_cert, chain,
	              &b->pkg[comp], &b->pkg_len[comp]);
out:
	sk_X509_free(chain);
	return rc;
}

/* What booting component comp measures (boot_chain.c does the same). */
static int fleet_measure(struct fleet_service *b, unsigned comp)
{
	struct img_package p;
	struct eat_component *c = &b->meas[comp];
	int rc = img_parse(b->pkg[comp], b->pkg_len[comp], &p);

	if (rc)
		return rc;
	memset(c, 0, sizeof(*c));
	snprintf(c->type, sizeof(c->type), "%s", boot_comp_name(comp));
	memcpy(c->component_id, p.manifest.component_id, sizeof(c->component_id));
	snprintf(c->version, sizeof(c->version), "%s", p.manifest.version);
	c->security_version = p.manifest.security_version;
	memcpy(c->digest, p.manifest.payload_sha256, sizeof(c->digest));
	memcpy(c->signer_id, p.signer_id, sizeof(c->signer_id));
	return 0;
}

/* The service in b->dir, trusting a fresh platform root, with the OS images
 * published in the Retail feed. */
static int fleet_service_up(struct fleet_service *b, unsigned workers, CURL *c, char *why,
                            size_t why_cap)
{
	struct img_cert_params rootp = {.kind = IMG_CERT_PLATFORM_ROOT};
	struct img_cert_params signp = {.kind = IMG_CERT_PLATFORM_SIGNER};
	struct fleet_reply r = {0};
	char path[FLEET_PATH_MAX + 64], nworkers[24], body[160];
	json_t *j = NULL;
	FILE *f;
	int rc;

	if ((rc = img_cert_make(&rootp, &b->root_key, &b->root_cert)) != 0)
		goto out;
	signp.issuer_key = b->root_key;
	signp.issuer_cert = b->root_cert;
	if ((rc = img_cert_make(&signp, &b->signer_key, &b->signer_cert)) != 0 ||
	    (rc = img_root_hash(b->root_cert, b->root_hash)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s", b->dir);
	snprintf(nworkers, sizeof(nworkers), "%u", workers);
	ss_config_defaults(&b->cfg);
	if ((rc = ss_config_set(&b->cfg, "data-dir", path, NULL, 0)) != 0 ||
	    (rc = ss_config_set(&b->cfg, "port", "0", NULL, 0)) != 0 ||
	    (workers && (rc = ss_config_set(&b->cfg, "workers", nworkers, NULL, 0)) != 0) ||
	    (rc = ss_config_set(&b->cfg, "max-body", "65536", NULL, 0)) != 0 ||
	    (rc = ss_init(&b->cfg, "fleet", "admin", &b->init)) != 0) {
		snprintf(why, why_cap, "sphere-ss init: %s", sph_strerror(rc));
		goto out;
	}
	snprintf(b->ca, sizeof(b->ca), "%s/tls/server.pem", b->cfg.data_dir);
	snprintf(path, sizeof(path), "%s/platform-root.pem", b->cfg.data_dir);
	rc = SPH_ERR_IO;
	if (!(f = fopen(path, "w"))) {
		snprintf(why, why_cap, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (PEM_write_X509(f, b->root_cert) != 1) {
		fclose(f);
		goto out;
	}
	if (fclose(f) != 0)
		goto out;
	if ((rc = ss_service_start(&b->cfg, &b->svc)) != 0) {
		snprintf(why, why_cap, "sphere-ss start: %s", sph_strerror(rc));
		goto out;
	}
	b->port = ss_service_port(b->svc);
	for (unsigned comp = 0; comp < BOOT_COMPONENTS; comp++) {
		const char *id;

		if ((rc = fleet_pack(b, comp)) != 0 || (rc = fleet_measure(b, comp)) != 0) {
			snprintf(why, why_cap, "packing %s: %s", boot_comp_name(comp),
			         sph_strerror(rc));
			goto out;
		}
		rc = SPH_ERR_STATE;
		if (fleet_api(b, c, "POST", "/v1/os-images", b->init.operator_token, b->pkg[comp],
		              b->pkg_len[comp], "application/octet-stream", &r) != 201) {
			snprintf(why, why_cap, "OS image upload: %.200s", r.body ? r.body : "");
			goto out;
		}
		json_decref(j);
		j = json_loadb(r.body, r.len, 0, NULL);
		if (!(id = json_string_value(json_object_get(j, "id"))))
			goto out;
		snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
		if (fleet_api_json(b, c, "/v1/os-feeds/Retail/releases", b->init.operator_token,
		                   body, &r) != 201) {
			snprintf(why, why_cap, "publish: %.200s", r.body ? r.body : "");
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(j);
	fleet_reply_clear(&r);
	return rc;
}

int fleet_service_start(const char *dir, unsigned workers, struct fleet_service *fs, char *why,
                        size_t why_cap)
{
	CURL *c = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (fs)
		memset(fs, 0, sizeof(*fs));
	if (why && why_cap)
		why[0] = '\0';
	if (!dir || !fs || !why || why_cap == 0 || strlen(dir) >= sizeof(fs->dir)) {
		if (why && why_cap)
			snprintf(why, why_cap, "bad arguments");
		return rc;
	}
	snprintf(fs->dir, sizeof(fs->dir), "%s", dir);
	c = curl_easy_init();
	rc = c ? fleet_service_up(fs, workers, c, why, why_cap) : SPH_ERR_NOMEM;
	if (rc && !why[0])
		snprintf(why, why_cap, "%s", sph_strerror(rc));
	curl_easy_cleanup(c);
	return rc;
}

void fleet_service_stop(struct fleet_service *fs)
{
	if (!fs)
		return;
	ss_service_free(fs->svc);
	for (unsigned comp = 0; comp < BOOT_COMPONENTS; comp++)
		free(fs->pkg[comp]);
	EVP_PKEY_free(fs->root_key);
	X509_free(fs->root_cert);
	EVP_PKEY_free(fs->signer_key);
	X509_free(fs->signer_cert);
	OPENSSL_cleanse(&fs->init, sizeof(fs->init));
	memset(fs, 0, sizeof(*fs));
}

/* ---- devices ---------------------------------------------------------------------- */

int fleet_device_make(const struct fleet_service *fs, enum fleet_kind kind, const char *dir,
                      struct fleet_device *d)
{
	uint8_t pub[ROT_PUB_LEN];
	char why[BOOT_REASON_MAX], otp[FLEET_PATH_MAX + 16];
	int rc = SPH_ERR_INVALID_ARG;

	if (d)
		memset(d, 0, sizeof(*d));
	if (!fs || !dir || !d || strlen(dir) >= FLEET_PATH_MAX ||
	    (kind != FLEET_LIGHT && kind != FLEET_BOOTED))
		return rc;
	rc = SPH_ERR_NOMEM;
	if (!(d->dir = strdup(dir)))
		goto out;
	if (kind == FLEET_BOOTED) {
		struct boot_report rep;
		if ((rc = boot_provision(d->dir, &fleet_geo, ROT_LC_PRODUCTION, NULL,
		                         fs->root_hash)) != 0 ||
		    (rc = boot_open(d->dir, NULL, &d->bd)) != 0)
			goto out;
		for (unsigned comp = 0; comp < BOOT_COMPONENTS; comp++)
			if ((rc = boot_install(d->bd, comp, fs->pkg[comp], fs->pkg_len[comp], why,
			                       sizeof(why))) != 0)
				goto out;
		if ((rc = boot_run(d->bd, CHIP_RESET_SOFTWARE, &rep)) != 0)
			goto out;
		d->rot = boot_rot(d->bd);
	} else {
		rc = SPH_ERR_IO;
		if (mkdir(d->dir, 0700) != 0)
			goto out;
		snprintf(otp, sizeof(otp), "%s/otp", d->dir);
		if ((rc = rot_otp_fuse(otp, NULL, ROT_LC_PRODUCTION)) != 0 ||
		    (rc = rot_open_inproc(otp, &d->rot)) != 0)
			goto out;
		for (unsigned comp = 0; comp < BOOT_COMPONENTS; comp++)
			if ((rc = rot_measure(d->rot, &fs->meas[comp], NULL)) != 0)
				goto out;
	}
	if ((rc = rot_device_id(d->rot, d->id)) != 0 ||
	    (rc = rot_pubkey(d->rot, ROT_KEY_ATTEST, pub)) != 0 ||
	    (rc = sph_hex_encode(pub + 1, 64, d->attest, sizeof(d->attest))) != 0 ||
	    (rc = agent_rot_key(d->rot, &d->key)) != 0 ||
	    (rc = agent_device_cert(d->rot, d->key, 1, &d->cert)) != 0)
		goto out;
	rc = 0;
out:
	return rc;
}

void fleet_device_free(struct fleet_device *d)
{
	if (!d)
		return;
	X509_free(d->cert);
	EVP_PKEY_free(d->key);
	if (d->bd)
		boot_close(d->bd); /* closes its RoT */
	else
		rot_close(d->rot);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

/* Registered by the operator, claimed by the tenant. Returns 0 or -1. */
int fleet_device_enrol(const struct fleet_service *b, CURL *c, const struct fleet_device *d,
                       char *why, size_t why_cap)
{
	struct fleet_reply r = {0};
	char path[128], body[400];
	int rc = -1;

	snprintf(body, sizeof(body), "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", d->id,
	         d->attest);
	if (fleet_api_json(b, c, "/v1/device-registrations", b->init.operator_token, body, &r) !=
	    201) {
		snprintf(why, why_cap, "register: %.200s", r.body ? r.body : "");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", b->init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", d->id);
	if (fleet_api_json(b, c, path, b->init.admin_token, body, &r) != 201) {
		snprintf(why, why_cap, "claim: %.200s", r.body ? r.body : "");
		goto out;
	}
	rc = 0;
out:
	fleet_reply_clear(&r);
	return rc;
}

/* ---- one check-in ----------------------------------------------------------------- */

static CURLcode fleet_install_key(CURL *c, void *sslctx, void *arg)
{
	struct fleet_device *d = arg;

	(void)c;
	if (SSL_CTX_use_certificate(sslctx, d->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(sslctx, d->key) != 1)
		return CURLE_SSL_CERTPROBLEM;
	return CURLE_OK;
}

int fleet_checkin(const struct fleet_service *b, struct fleet_device *d, enum fleet_op op,
                  char *why, size_t why_cap)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct fleet_reply r = {0};
	uint8_t nonce[SS_NONCE_LEN], tok[EAT_MAX_TOKEN];
	char url[128], *body = NULL;
	const char *s;
	size_t tok_len = 0, cap;
	long status = 0, conns = 0;
	json_t *j = NULL;
	BIO *bio = NULL;
	X509 *cert = NULL;
	int rc = -1, err;

	if (!c || !h) {
		snprintf(why, why_cap, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "https://localhost:%u/v1/checkin/nonce", (unsigned)b->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, b->ca);
	curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_EC_CURVES, "P-256");
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, fleet_install_key);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, d);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 2L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fleet_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200 ||
	    !(j = json_loadb(r.body, r.len, 0, NULL)) ||
	    !(s = json_string_value(json_object_get(j, "nonce"))) ||
	    strlen(s) != 2 * SS_NONCE_LEN || sph_hex_decode(s, nonce, sizeof(nonce)) != 0) {
		snprintf(why, why_cap, "nonce: status %ld %.200s", status, r.body ? r.body : "");
		goto out;
	}
	if (op == FLEET_HANDSHAKE) {
		rc = 0;
		goto out;
	}
	if ((err = rot_attest(d->rot, nonce, sizeof(nonce), tok, sizeof(tok), &tok_len)) != 0) {
		snprintf(why, why_cap, "rot_attest: %s", sph_strerror(err));
		goto out;
	}
	{
		char *ev = sph_b64url_encode(tok, tok_len);
		cap = ev ? strlen(ev) + 2 * SS_NONCE_LEN + 64 : 0;
		if (!ev || !(body = malloc(cap))) {
			free(ev);
			snprintf(why, why_cap, "out of memory");
			goto out;
		}
		snprintf(body, cap, "{\"nonce\":\"%s\",\"evidence\":\"%s\"}", s, ev);
		free(ev);
	}
	json_decref(j);
	j = NULL;
	fleet_reply_clear(&r);
	snprintf(url, sizeof(url), "https://localhost:%u/v1/checkin", (unsigned)b->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	status = 0;
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200 ||
	    !(j = json_loadb(r.body, r.len, 0, NULL))) {
		snprintf(why, why_cap, "checkin: status %ld %.200s", status, r.body ? r.body : "");
		goto out;
	}
	/* the same connection: one TLS handshake per check-in */
	if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns) != CURLE_OK || conns != 0) {
		snprintf(why, why_cap, "checkin: a second TLS connection (%ld)", conns);
		goto out;
	}
	s = json_string_value(json_object_get(j, "status"));
	if (!s || strcmp(s, "up_to_date") != 0 ||
	    !(s = json_string_value(json_object_get(j, "certificate"))) ||
	    !(bio = BIO_new_mem_buf(s, -1)) || !(cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		snprintf(why, why_cap, "checkin: no certificate: %.200s", r.body ? r.body : "");
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	BIO_free(bio);
	json_decref(j);
	free(body);
	fleet_reply_clear(&r);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}
