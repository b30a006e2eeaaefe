/*
 * The device check-in (docs/api.md §4.13) end to end: real devices
 * (boot_provision, OS packages signed by the platform root the service
 * trusts, boot_run measuring them into the RoT), registered by the operator,
 * claimed by the tenant, put in a group whose feed carries the same images;
 * then check-ins over TLS with the RoT key (agent_rot_key, libcurl
 * CURLOPT_SSL_CTX_FUNCTION) and evidence from rot_attest. Up to date: a
 * certificate that `openssl verify -purpose sslclient` accepts against the
 * tenant chain; a newer OS published: update_required. Attacks are refused
 * with their reason and change nothing; failure reports are listed and
 * capped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"
#include "service/ss_internal.h"
#include "ss_fixture.h"
#include "testutil.h"

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

struct dev {
	char *dir;
	struct boot_device *bd;
	struct rot *rot;
	EVP_PKEY *key;
	X509 *cert;
	char id[SS_DEVICE_ID_LEN + 1];
	char attest[2 * SS_ATTEST_KEY_LEN + 1];
};

static struct {
	struct party proot, psigner;
	uint8_t root_hash[32];
	struct dev a, b;
	char group[64];
	char os_ids[4][64]; /* BL, SECMON, OS v1; OS v2 */
} cx;

static const struct chip_flash_geometry geo = {.block_size = 4096, .block_count = 390};

static void make(struct party *out, enum img_cert_kind kind, struct party *issuer)
{
	struct img_cert_params p = {.kind = kind};
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

/* Component comp (type comp + 1) at version "<ver>.0.0", signed by the platform. */
static uint8_t *pack(unsigned comp, unsigned ver, uint32_t svn, size_t *len)
{
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t payload[64], *pkg = NULL;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31u + comp * 7u + ver * 101u);
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < IMG_COMPONENT_ID_LEN; i++)
		m.component_id[i] = (uint8_t)(0x10 * (comp + 1) + i);
	m.type = comp + 1;
	snprintf(m.name, sizeof(m.name), "%s", boot_comp_name(comp));
	snprintf(m.version, sizeof(m.version), "%u.0.0", ver);
	m.security_version = svn;
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	assert_non_null(chain);
	assert_true(sk_X509_push(chain, cx.proot.cert) > 0);
	assert_int_equal(img_pack(&m, payload, sizeof(payload), cx.psigner.key, cx.psigner.cert,
	                          chain, &pkg, len),
	                 0);
	sk_X509_free(chain);
	return pkg;
}

/* A provisioned device running BL 1, SECMON 1 and OS os_ver, booted. */
static void dev_make(struct dev *d, unsigned os_ver)
{
	struct boot_report rep;
	uint8_t pub[ROT_PUB_LEN];
	char *base = tu_mkdtemp();
	char why[BOOT_REASON_MAX];

	d->dir = tu_path(base, "dev");
	free(base);
	assert_int_equal(boot_provision(d->dir, &geo, ROT_LC_PRODUCTION, NULL, cx.root_hash), 0);
	assert_int_equal(boot_open(d->dir, NULL, &d->bd), 0);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack(c, c == BOOT_OS ? os_ver : 1, 1, &len);
		assert_int_equal(boot_install(d->bd, c, pkg, len, why, sizeof(why)), 0);
		free(pkg);
	}
	assert_int_equal(boot_run(d->bd, CHIP_RESET_SOFTWARE, &rep), 0);
	assert_int_equal(rep.result, BOOT_RESULT_BOOTED);
	d->rot = boot_rot(d->bd);
	assert_int_equal(rot_device_id(d->rot, d->id), 0);
	assert_int_equal(rot_pubkey(d->rot, ROT_KEY_ATTEST, pub), 0);
	assert_int_equal(sph_hex_encode(pub + 1, SS_ATTEST_KEY_LEN, d->attest, sizeof(d->attest)),
	                 0);
	assert_int_equal(agent_rot_key(d->rot, &d->key), 0);
	assert_int_equal(agent_device_cert(d->rot, d->key, 1, &d->cert), 0);
}

static void dev_free(struct dev *d)
{
	char *base;

	X509_free(d->cert);
	EVP_PKEY_free(d->key);
	boot_close(d->bd);
	base = strdup(d->dir);
	assert_non_null(base);
	*strrchr(base, '/') = '\0';
	tu_rmtree(base);
	free(base);
	free(d->dir);
}

/* ---- talking as a device ------------------------------------------------------------ */

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct ssfx_reply *r = arg;
	char *q = realloc(r->body, r->len + sz * n + 1);

	assert_non_null(q);
	memcpy(q + r->len, p, sz * n);
	r->len += sz * n;
	q[r->len] = '\0';
	r->body = q;
	return sz * n;
}

static CURLcode install_key(CURL *c, void *sslctx, void *arg)
{
	struct dev *d = arg;

	(void)c;
	if (SSL_CTX_use_certificate(sslctx, d->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(sslctx, d->key) != 1)
		return CURLE_SSL_CERTPROBLEM;
	return CURLE_OK;
}

/* POST path with body over TLS as device d (NULL: no client certificate). */
static long dev_post(struct dev *d, const char *path, const char *body, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct ssfx_reply r;
	char url[256];
	long status = 0;

	memset(&r, 0, sizeof(r));
	assert_non_null(c);
	snprintf(url, sizeof(url), "https://localhost:%u%s", (unsigned)fx.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, fx.ca);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (d) {
		curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, install_key);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, d);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out)
		*out = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	free(r.body);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static void get_nonce(struct dev *d, char hex[2 * SS_NONCE_LEN + 1])
{
	json_t *j = NULL;

	assert_int_equal(dev_post(d, "/v1/checkin/nonce", "{}", &j), 200);
	assert_int_equal(strlen(ssfx_jstr(j, "nonce")), 2 * SS_NONCE_LEN);
	snprintf(hex, 2 * SS_NONCE_LEN + 1, "%s", ssfx_jstr(j, "nonce"));
	json_decref(j);
}

/* Evidence from d's RoT over the nonce (hex), base64url (caller frees). */
static char *evidence(struct dev *d, const char *nonce_hex)
{
	uint8_t nonce[SS_NONCE_LEN], tok[EAT_MAX_TOKEN];
	size_t len = 0;
	char *out = malloc(4 * (EAT_MAX_TOKEN / 3 + 2));
	int n;

	assert_non_null(out);
	assert_int_equal(sph_hex_decode(nonce_hex, nonce, sizeof(nonce)), 0);
	assert_int_equal(rot_attest(d->rot, nonce, sizeof(nonce), tok, sizeof(tok), &len), 0);
	n = EVP_EncodeBlock((unsigned char *)out, tok, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return out;
}

static json_t *last_reply;

/* A check-in of d with nonce and ev's evidence; extra: more JSON members. */
static long checkin(struct dev *d, const char *nonce, struct dev *ev, const char *extra,
                    json_t **out)
{
	char *e = evidence(ev, nonce);
	size_t cap = strlen(e) + 8192;
	char *body = malloc(cap);
	long st;

	assert_non_null(body);
	snprintf(body, cap, "{\"nonce\":\"%s\",\"evidence\":\"%s\"%s%s}", nonce, e,
	         extra ? "," : "", extra ? extra : "");
	st = dev_post(d, "/v1/checkin", body, out);
	last_reply = out ? *out : NULL;
	free(body);
	free(e);
	return st;
}

static void expect_refused(long got, json_t *j, long status, const char *reason)
{
	/* callers pass `checkin(..., &j), j`: evaluation order is unspecified */
	(void)j;
	j = last_reply;
	if (got != status)
		fail_msg("status %ld, want %ld (%s)", got, status,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	if (!j || !strstr(json_string_value(json_object_get(j, "reason")) ?: "", reason)) {
		char *t = j ? json_dumps(j, 0) : NULL;
		fail_msg("want %s, got %s", reason, t ? t : "(no body)");
	}
	json_decref(j);
}

static int64_t nonce_ms_of(struct dev *d)
{
	struct ss_checkin_state k;
	int rc = ss_store_device_checkin_get(fx.svc->st, d->id, &k);

	assert_true(rc == 0 || rc == SPH_ERR_NOT_FOUND);
	return rc ? 0 : k.nonce_ms;
}

/* ---- setup ------------------------------------------------------------------------ */

static void upload_os(const uint8_t *pkg, size_t len, char id[64])
{
	struct ssfx_reply r;
	json_t *j;

	ssfx_call(0, "POST", "/v1/os-images", fx.init.operator_token, pkg, len,
	          "application/octet-stream", &r);
	assert_int_equal(r.status, 201);
	j = json_loadb(r.body, r.len, 0, NULL);
	snprintf(id, 64, "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	ssfx_reply_free(&r);
}

static void publish(const char *id)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
	ssfx_expect(201, NULL, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token,
	            body);
}

static int group_setup(void **state)
{
	char path[900], body[400];
	json_t *j = NULL;
	FILE *f;

	make(&cx.proot, IMG_CERT_PLATFORM_ROOT, NULL);
	make(&cx.psigner, IMG_CERT_PLATFORM_SIGNER, &cx.proot);
	assert_int_equal(img_root_hash(cx.proot.cert, cx.root_hash), 0);
	/* the service, trusting that platform root; bodies up to 64 KiB */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fx.tmp = tu_mkdtemp();
	snprintf(fx.data, sizeof(fx.data), "%s/ss", fx.tmp);
	ss_config_defaults(&fx.cfg);
	assert_int_equal(ss_config_set(&fx.cfg, "data-dir", fx.data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "workers", "2", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "max-body", "65536", NULL, 0), 0);
	assert_int_equal(ss_init(&fx.cfg, "acme", "alice", &fx.init), 0);
	snprintf(fx.ca, sizeof(fx.ca), "%s/tls/server.pem", fx.data);
	snprintf(path, sizeof(path), "%s/platform-root.pem", fx.data);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, cx.proot.cert), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	(void)state;
	/* the OS images v1 in the Retail feed */
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack(c, 1, 1, &len);
		upload_os(pkg, len, cx.os_ids[c]);
		publish(cx.os_ids[c]);
		free(pkg);
	}
	/* device A runs them; B runs an OS the catalogue does not know */
	dev_make(&cx.a, 1);
	dev_make(&cx.b, 7);
	/* A: registered, claimed, in a Retail group */
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", cx.a.id,
	         cx.a.attest);
	ssfx_expect(201, NULL, "POST", "/v1/device-registrations", fx.init.operator_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", cx.a.id);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products", fx.init.tenant.id);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"P\",\"default_groups\":false}", &j),
	                 201);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", fx.init.tenant.id,
	         ssfx_jstr(j, "id"));
	json_decref(j);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"G\",\"os_feed\":\"Retail\","
	                          "\"update_policy\":\"UpdateAll\"}",
	                          &j),
	                 201);
	snprintf(cx.group, sizeof(cx.group), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/device-group", fx.init.tenant.id,
	         cx.a.id);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", cx.group);
	ssfx_expect(200, NULL, "PUT", path, fx.init.admin_token, body);
	return 0;
}

static int group_teardown(void **state)
{
	dev_free(&cx.a);
	dev_free(&cx.b);
	EVP_PKEY_free(cx.proot.key);
	X509_free(cx.proot.cert);
	EVP_PKEY_free(cx.psigner.key);
	X509_free(cx.psigner.cert);
	return ssfx_teardown(state);
}

/* ---- the tests ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_up_to_date_certificate(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1], cert[800], chain[800], cmd[2600], cn[200], path[400];
	json_t *j = NULL;
	BIO *b;
	X509 *x;

	(void)state;
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "status"), "up_to_date");
	assert_true(strlen(ssfx_jstr(j, "time")) > 100);
	snprintf(cert, sizeof(cert), "%s/dev.pem", fx.tmp);
	snprintf(chain, sizeof(chain), "%s/chain.pem", fx.tmp);
	write_file(cert, ssfx_jstr(j, "certificate"));
	write_file(chain, ssfx_jstr(j, "chain"));
	snprintf(cmd, sizeof(cmd),
	         "openssl verify -purpose sslclient -CAfile '%s' '%s' >/dev/null 2>&1", chain,
	         cert);
	assert_int_equal(system(cmd), 0);
	b = BIO_new_mem_buf(ssfx_jstr(j, "certificate"), -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(x);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                                      sizeof(cn)) > 0);
	assert_string_equal(cn, cx.a.id);
	X509_free(x);
	BIO_free(b);
	json_decref(j);
	/* the device shows it */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_true(json_is_true(json_object_get(j, "up_to_date")));
	assert_true(json_integer_value(json_object_get(j, "cert_expires")) > time(NULL));
	assert_true(json_integer_value(json_object_get(j, "last_checkin")) > 0);
	json_decref(j);
}

static void test_attacks(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1], other[2 * SS_NONCE_LEN + 1], hex[2 * SS_NONCE_LEN + 1];
	char body[600];
	uint8_t old[SS_NONCE_LEN];
	json_t *j = NULL;
	int64_t before;

	(void)state;
	/* a fresh, successful check-in, then its nonce again: replay */
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	json_decref(j);
	before = nonce_ms_of(&cx.a);
	assert_true(before > 0);
	expect_refused(checkin(&cx.a, nonce, &cx.a, NULL, &j), j, 401, "replay");
	/* an expired nonce, made with the service's own key */
	assert_int_equal(ss_nonce_issue(&fx.svc->nonce_key, cx.a.id,
	                                (int64_t)time(NULL) * 1000 - 120000, old),
	                 0);
	assert_int_equal(sph_hex_encode(old, sizeof(old), hex, sizeof(hex)), 0);
	expect_refused(checkin(&cx.a, hex, &cx.a, NULL, &j), j, 401, "nonce");
	/* another device's nonce */
	get_nonce(&cx.b, other);
	expect_refused(checkin(&cx.a, other, &cx.a, NULL, &j), j, 401, "nonce");
	/* an altered one */
	get_nonce(&cx.a, nonce);
	snprintf(hex, sizeof(hex), "%s", nonce);
	hex[50] = hex[50] == '0' ? '1' : '0';
	expect_refused(checkin(&cx.a, hex, &cx.a, NULL, &j), j, 401, "nonce");
	/* evidence signed by another key: B's EAT over A's nonce, on A's TLS */
	get_nonce(&cx.a, nonce);
	expect_refused(checkin(&cx.a, nonce, &cx.b, NULL, &j), j, 401, "evidence");
	/* nothing changed */
	assert_true(nonce_ms_of(&cx.a) == before);
	/* malformed JSON, bad base64, no certificate */
	assert_int_equal(dev_post(&cx.a, "/v1/checkin", "{\"nonce\":", NULL), 400);
	snprintf(body, sizeof(body), "{\"nonce\":\"%s\",\"evidence\":\"*not base64*\"}", nonce);
	assert_int_equal(dev_post(&cx.a, "/v1/checkin", body, NULL), 400);
	snprintf(body, sizeof(body), "{\"nonce\":\"%s\",\"evidence\":\"AAAA\",\"failures\":[1]}",
	         nonce);
	assert_int_equal(dev_post(&cx.a, "/v1/checkin", body, NULL), 400);
	assert_int_equal(dev_post(NULL, "/v1/checkin/nonce", "{}", NULL), 401);
	/* well-formed base64url of bytes that are no COSE_Sign1 (bad CBOR), and of
	 * a truncated token: the evidence is refused, nothing recorded */
	get_nonce(&cx.a, nonce);
	snprintf(body, sizeof(body), "{\"nonce\":\"%s\",\"evidence\":\"0oRDoQEm_wAB\"}", nonce);
	assert_int_equal(dev_post(&cx.a, "/v1/checkin", body, &j), 401);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "unauthorized");
	json_decref(j);
	j = NULL;
	{
		char *e = evidence(&cx.a, nonce), *cut;
		size_t n = strlen(e);
		cut = malloc(n + 64 + 2 * SS_NONCE_LEN);
		assert_non_null(cut);
		e[(n / 2) & ~(size_t)3] = '\0'; /* still valid base64url */
		snprintf(cut, n + 64 + 2 * SS_NONCE_LEN, "{\"nonce\":\"%s\",\"evidence\":\"%s\"}",
		         nonce, e);
		assert_int_equal(dev_post(&cx.a, "/v1/checkin", cut, NULL), 401);
		free(cut);
		free(e);
	}
	assert_true(nonce_ms_of(&cx.a) == before);
}

static void test_unregistered_unclaimed_unknown(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1], path[300], body[400];
	json_t *j = NULL;

	(void)state;
	/* anyone with a key can be refused as unregistered: those service-wide
	 * audit rows are rate-limited (a burst, then one a second), every refusal
	 * is still counted, and the rows say how many were not audited: rows +
	 * the counts they report = refusals, whatever the timing */
	{
		struct ss_audit *a = calloc(1000, sizeof(*a));
		size_t n = 0, rows = 0, reported = 0;
		char *text = NULL;
		const int tries = SS_AUDIT_REFUSE_BURST + 40;
		struct timespec t0, t1;
		double took;

		assert_non_null(a);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < tries; i++) {
			get_nonce(&cx.b, nonce);
			expect_refused(checkin(&cx.b, nonce, &cx.b, NULL, &j), j, 403,
			               "unregistered");
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		sleep(2); /* tokens come back: the next row reports the rest */
		get_nonce(&cx.b, nonce);
		expect_refused(checkin(&cx.b, nonce, &cx.b, NULL, &j), j, 403, "unregistered");
		assert_int_equal(ss_store_audit_list(fx.svc->st, "", 0, a, 1000, &n), 0);
		for (size_t i = 0; i < n; i++) {
			const char *plus;
			if (strcmp(a[i].action, "attestation.refused") != 0 ||
			    strcmp(a[i].target, cx.b.id) != 0)
				continue;
			rows++;
			if ((plus = strstr(a[i].detail, "(+")))
				reported += strtoul(plus + 2, NULL, 10);
		}
		/* at most the burst plus what refilled while the loop ran */
		assert_true((double)rows <=
		            SS_AUDIT_REFUSE_BURST + took * SS_AUDIT_REFUSE_PER_S + 2);
		assert_int_equal(rows + reported, (size_t)tries + 1);
		if (took < 30)
			assert_true(reported > 0);
		assert_int_equal(ss_metrics_text(fx.svc->http, &text), 0);
		assert_non_null(strstr(text, "sphere_audit_refusals_dropped_total"));
		free(text);
		free(a);
	}
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", cx.b.id,
	         cx.b.attest);
	ssfx_expect(201, NULL, "POST", "/v1/device-registrations", fx.init.operator_token, body);
	get_nonce(&cx.b, nonce);
	expect_refused(checkin(&cx.b, nonce, &cx.b, NULL, &j), j, 403, "unclaimed");
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", cx.b.id);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	/* B runs OS 7.0.0, which the catalogue does not know */
	get_nonce(&cx.b, nonce);
	expect_refused(checkin(&cx.b, nonce, &cx.b, NULL, &j), j, 403, "unknown_measurement");
	assert_int_equal(nonce_ms_of(&cx.b), 0);
	/* the refusals are counted */
	{
		char *text = NULL;
		assert_int_equal(ss_metrics_text(fx.svc->http, &text), 0);
		assert_non_null(
		        strstr(text, "sphere_attestation_failures_total{reason=\"unregistered\"}"));
		assert_non_null(
		        strstr(text, "sphere_attestation_failures_total{reason=\"replay\"}"));
		assert_non_null(strstr(text, "sphere_certificates_issued_total"));
		free(text);
	}
}

static void test_failures(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1], path[400], extra[8000];
	json_t *j = NULL, *a;
	size_t k = 0;

	(void)state;
	/* 16 reports per check-in, 7 check-ins: the newest 100 are kept */
	k = (size_t)snprintf(extra, sizeof(extra), "\"failures\":[");
	for (int i = 0; i < SS_FAILURES_PER_CHECKIN; i++)
		k += (size_t)snprintf(extra + k, sizeof(extra) - k,
		                      "%s{\"kind\":\"crash\",\"component\":\"app-%d\",\"code\":%d,"
		                      "\"text\":\"segfault at %d\"}",
		                      i ? "," : "", i, i, i);
	snprintf(extra + k, sizeof(extra) - k, "]");
	for (int n = 0; n < 7; n++) {
		get_nonce(&cx.a, nonce);
		assert_int_equal(checkin(&cx.a, nonce, &cx.a, extra, &j), 200);
		json_decref(j);
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/failures?limit=1000",
	         fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	a = json_object_get(j, "failures");
	assert_int_equal(json_array_size(a), SS_FAILURES_KEEP);
	assert_string_equal(ssfx_jstr(json_array_get(a, 0), "kind"), "crash");
	assert_string_equal(ssfx_jstr(json_array_get(a, 0), "component"), "app-15");
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/failures?limit=5", fx.init.tenant.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "failures")), 5);
	json_decref(j);
	/* per image: a failed boot naming the OS's component id is listed under
	 * that OS image; per device group: A's group lists A's reports */
	{
		char cid[SS_UUID_LEN + 1], body[300], other[64];
		snprintf(path, sizeof(path), "/v1/os-images/%s", cx.os_ids[2]);
		assert_int_equal(ssfx_req("GET", path, fx.init.operator_token, NULL, &j), 200);
		snprintf(cid, sizeof(cid), "%s", ssfx_jstr(j, "component_id"));
		json_decref(j);
		snprintf(
		        body, sizeof(body),
		        "\"failures\":[{\"kind\":\"failed-boot\",\"component\":\"%s\",\"code\":7}]",
		        cid);
		get_nonce(&cx.a, nonce);
		assert_int_equal(checkin(&cx.a, nonce, &cx.a, body, &j), 200);
		json_decref(j);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?image=%s", fx.init.tenant.id,
		         cx.os_ids[2]);
		assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
		a = json_object_get(j, "failures");
		assert_int_equal(json_array_size(a), 1);
		assert_string_equal(ssfx_jstr(json_array_get(a, 0), "kind"), "failed-boot");
		assert_string_equal(ssfx_jstr(json_array_get(a, 0), "component"), cid);
		json_decref(j);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?image=%s", fx.init.tenant.id,
		         cx.os_ids[0]);
		assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
		assert_int_equal(json_array_size(json_object_get(j, "failures")), 0);
		json_decref(j);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?device_group=%s&limit=1000",
		         fx.init.tenant.id, cx.group);
		assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
		a = json_object_get(j, "failures");
		assert_int_equal(json_array_size(a), SS_FAILURES_KEEP);
		for (size_t i = 0; i < json_array_size(a); i++)
			assert_string_equal(ssfx_jstr(json_array_get(a, i), "device_id"), cx.a.id);
		json_decref(j);
		/* unknown, malformed or both: refused */
		snprintf(other, sizeof(other), "%s", "00000000-0000-4000-8000-000000000009");
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?device_group=%s",
		         fx.init.tenant.id, other);
		ssfx_expect(404, "not_found", "GET", path, fx.init.admin_token, NULL);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?image=%s", fx.init.tenant.id,
		         other);
		ssfx_expect(404, "not_found", "GET", path, fx.init.admin_token, NULL);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?image=x", fx.init.tenant.id);
		ssfx_expect(404, "not_found", "GET", path, fx.init.admin_token, NULL);
		snprintf(path, sizeof(path), "/v1/tenants/%s/failures?image=%s&device_group=%s",
		         fx.init.tenant.id, cx.os_ids[2], cx.group);
		ssfx_expect(400, "bad_request", "GET", path, fx.init.admin_token, NULL);
	}
	/* a bad report refuses the check-in (400) */
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, "\"failures\":[{\"kind\":\"boom\"}]", &j),
	                 400);
	json_decref(j);
}

static void test_update_required(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1];
	uint8_t *pkg;
	size_t len;
	json_t *j = NULL, *u;

	struct ss_service *two = NULL;
	uint16_t port2;
	char path[300];
	uint64_t hits = fx.svc->cache.target_hits;

	(void)state;
	/* The group's target and A's key are cached by now (A checked in at
	 * this instance before); a second instance on the same database makes
	 * the changes, and this one sees each at the next check-in. */

	assert_true(fx.svc->cache.reg_hits > 0);
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "status"), "up_to_date");
	json_decref(j);
	assert_true(fx.svc->cache.target_hits > hits);
	assert_int_equal(ss_service_start(&fx.cfg, &two), 0);
	port2 = ss_service_port(two);
	pkg = pack(BOOT_OS, 2, 2, &len);
	{
		struct ssfx_reply r;
		ssfx_call(port2, "POST", "/v1/os-images", fx.init.operator_token, pkg, len,
		          "application/octet-stream", &r);
		assert_int_equal(r.status, 201);
		j = json_loadb(r.body, r.len, 0, NULL);
		snprintf(cx.os_ids[3], sizeof(cx.os_ids[3]), "%s", ssfx_jstr(j, "id"));
		json_decref(j);
		ssfx_reply_free(&r);
	}
	free(pkg);
	{
		char body[128];
		snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", cx.os_ids[3]);
		assert_int_equal(ssfx_req_raw(port2, "POST", "/v1/os-feeds/Retail/releases",
		                              fx.init.operator_token, body, strlen(body), NULL),
		                 201);
	}
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "status"), "update_required");
	json_decref(j);
	/* the group's policy, changed at the other instance: NoUpdates, then
	 * UpdateAll again */
	snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s", fx.init.tenant.id,
	         cx.group);
	assert_int_equal(ssfx_req_raw(port2, "PATCH", path, fx.init.admin_token,
	                              "{\"update_policy\":\"NoUpdates\"}", 29, NULL),
	                 200);
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "status"), "up_to_date");
	json_decref(j);
	assert_int_equal(ssfx_req_raw(port2, "PATCH", path, fx.init.admin_token,
	                              "{\"update_policy\":\"UpdateAll\"}", 29, NULL),
	                 200);
	ss_service_free(two);
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "status"), "update_required");
	assert_null(json_object_get(j, "certificate"));
	u = json_object_get(j, "updates");
	assert_int_equal(json_array_size(u), 1);
	assert_string_equal(ssfx_jstr(json_array_get(u, 0), "image_id"), cx.os_ids[3]);
	assert_string_equal(ssfx_jstr(json_array_get(u, 0), "version"), "2.0.0");
	assert_string_equal(ssfx_jstr(json_array_get(u, 0), "type"), "OS");
	json_decref(j);

	/* Software on the device appends a measurement of the new OS to the RoT's
	 * log (the RoT lets it extend) without booting it: the log is no longer
	 * a boot's (two OS entries), and no certificate comes of it. */
	{
		struct img_package p;
		struct eat_component fake;
		uint8_t acc[32];
		pkg = pack(BOOT_OS, 2, 2, &len);
		assert_int_equal(img_parse(pkg, len, &p), 0);
		memset(&fake, 0, sizeof(fake));
		snprintf(fake.type, sizeof(fake.type), "OS");
		memcpy(fake.component_id, p.manifest.component_id, 16);
		snprintf(fake.version, sizeof(fake.version), "%s", p.manifest.version);
		fake.security_version = p.manifest.security_version;
		memcpy(fake.digest, p.manifest.payload_sha256, 32);
		memcpy(fake.signer_id, p.signer_id, 32);
		assert_int_equal(rot_measure(cx.a.rot, &fake, acc), 0);
		free(pkg);
	}
	get_nonce(&cx.a, nonce);
	expect_refused(checkin(&cx.a, nonce, &cx.a, NULL, &j), j, 403, "unknown_measurement");
}

/* Development mode over a real check-in: the device is told applications are
 * sideloaded (only OS updates apply); back in cloud-test mode it is not. */
static void test_development_mode(void **state)
{
	char nonce[2 * SS_NONCE_LEN + 1], path[400];
	json_t *j = NULL;

	(void)state;
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-development",
	         fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req_raw(0, "POST", path, fx.init.admin_token, "{}", 2, NULL), 201);
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "applications"), "sideloading");
	json_decref(j);
	j = NULL;
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(j, "mode"), "development");
	json_decref(j);
	j = NULL;
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/enable-cloud-test",
	         fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token, "{}", NULL), 200);
	get_nonce(&cx.a, nonce);
	assert_int_equal(checkin(&cx.a, nonce, &cx.a, NULL, &j), 200);
	assert_null(json_object_get(j, "applications"));
	json_decref(j);
}

/* A device released to another tenant takes none of its history along: the
 * new owner sees no check-in and no certificate until the device checks in
 * under it (review finding). Runs last: device A changes hands. */
static void test_release_keeps_history(void **state)
{
	char path[400], body[300], tok[SS_TOKEN_LEN + 1], b[128];
	json_t *j = NULL;

	(void)state;
	assert_int_equal(
	        ssfx_req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
	        201);
	snprintf(b, sizeof(b), "/v1/tenants/%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/users", b);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"bea\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(tok, sizeof(tok), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	/* A has checked in under acme (earlier tests) */
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, cx.a.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_true(json_integer_value(json_object_get(j, "last_checkin")) > 0);
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/release", fx.init.tenant.id,
	         cx.a.id);
	snprintf(body, sizeof(body), "{\"to_tenant\":\"%s\"}", b + strlen("/v1/tenants/"));
	ssfx_expect(200, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(path, sizeof(path), "%s/devices", b);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", cx.a.id);
	ssfx_expect(201, NULL, "POST", path, tok, body);
	snprintf(path, sizeof(path), "%s/devices/%s", b, cx.a.id);
	assert_int_equal(ssfx_req("GET", path, tok, NULL, &j), 200);
	assert_false(json_integer_value(json_object_get(j, "last_checkin")) > 0);
	assert_false(json_integer_value(json_object_get(j, "cert_expires")) > 0);
	assert_false(json_is_true(json_object_get(j, "up_to_date")));
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_up_to_date_certificate),
	        cmocka_unit_test(test_development_mode),
	        cmocka_unit_test(test_attacks),
	        cmocka_unit_test(test_unregistered_unclaimed_unknown),
	        cmocka_unit_test(test_failures),
	        cmocka_unit_test(test_update_required),
	        cmocka_unit_test(test_release_keeps_history),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
