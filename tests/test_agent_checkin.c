/*
 * The agent's check-in and update cycle (agent_checkin, agent_download,
 * agent_run_once; docs/agent.md "Check-in and updates") against a REAL
 * service (ss_fixture's sphere-ss in this process, SQLite) and REAL devices
 * (boot_provision, OS packages signed by the platform root the service
 * trusts, boot_run measuring them into the RoT), registered by the operator,
 * claimed, and in a Retail group.
 *
 * What is proved, and what is attacked:
 *  - an up-to-date device gets a certificate at once, on one TLS connection,
 *    that X509_verify_cert accepts against the returned chain (clientAuth),
 *    for its RoT key; queued failure reports go along and are listed;
 *  - an unregistered device is refused (403 "forbidden", reason
 *    "unregistered") after ONE attempt, though retries are configured; a
 *    service that is not there is retried exactly as configured, with backoff;
 *  - a newer OS published: the device gets update_required; a download
 *    resumes with a Range request from a pre-seeded half, and from where a
 *    cancelled transfer stopped: the second transfer fetches only the rest;
 *  - a digest that does not match (a tampered package in the service's
 *    database, a damaged partial file, a wrong promised digest) is refused,
 *    not installed, reported; the cycle recovers once the bytes are right;
 *  - agent_run_once downloads, installs (trial), reboots, confirms and ends
 *    up to date: the flash now boots OS 2.0.0 from its confirmed slot and the
 *    RoT's anti-rollback counter moved; the rounds are bounded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/sha.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "agent/agent.h"
#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"
#include "service/ss_http.h"
#include "service/ss_internal.h"
#include "ss_fixture.h"
#include "testutil.h"

#define OS2_PAYLOAD (48u * 1024u) /* several TLS records, several write callbacks */

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

struct dev {
	char *base, *dir;
	struct boot_device *bd;
	char id[ROT_DEVICE_ID_LEN + 1];
	char attest[2 * SS_ATTEST_KEY_LEN + 1];
};

static struct {
	struct party proot, psigner;
	uint8_t root_hash[32];
	char group[64];
	char os1[BOOT_COMPONENTS][64];
	char os2[64];
	uint8_t *os2_pkg;
	size_t os2_len;
	char url[64];
	struct dev up, stranger, r, t;
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

/* Component comp at version "<ver>.0.0", security version svn, signed by the platform. */
static uint8_t *pack(unsigned comp, unsigned ver, uint32_t svn, size_t payload_len, size_t *len)
{
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t *payload = malloc(payload_len), *pkg = NULL;

	assert_non_null(payload);
	for (size_t i = 0; i < payload_len; i++)
		payload[i] = (uint8_t)(i * 31u + comp * 7u + ver * 101u + (i >> 8));
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
	assert_int_equal(img_pack(&m, payload, payload_len, cx.psigner.key, cx.psigner.cert, chain,
	                          &pkg, len),
	                 0);
	sk_X509_free(chain);
	free(payload);
	return pkg;
}

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
	{
		char body[128];
		snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
		ssfx_expect(201, NULL, "POST", "/v1/os-feeds/Retail/releases",
		            fx.init.operator_token, body);
	}
}

/* A provisioned device running BL, SECMON and OS 1.0.0, booted; enrolled:
 * registered, claimed and put in the group. */
static void dev_make(struct dev *d, bool enrol)
{
	struct boot_report rep;
	uint8_t pub[ROT_PUB_LEN];
	char why[BOOT_REASON_MAX], path[400], body[400];

	d->base = tu_mkdtemp();
	d->dir = tu_path(d->base, "dev");
	assert_int_equal(boot_provision(d->dir, &geo, ROT_LC_PRODUCTION, NULL, cx.root_hash), 0);
	assert_int_equal(boot_open(d->dir, NULL, &d->bd), 0);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack(c, 1, 1, 64, &len);
		assert_int_equal(boot_install(d->bd, c, pkg, len, why, sizeof(why)), 0);
		free(pkg);
	}
	assert_int_equal(boot_run(d->bd, CHIP_RESET_SOFTWARE, &rep), 0);
	assert_int_equal(boot_confirm(d->bd) >= 0, 1);
	assert_int_equal(rot_device_id(boot_rot(d->bd), d->id), 0);
	assert_int_equal(rot_pubkey(boot_rot(d->bd), ROT_KEY_ATTEST, pub), 0);
	assert_int_equal(sph_hex_encode(pub + 1, SS_ATTEST_KEY_LEN, d->attest, sizeof(d->attest)),
	                 0);
	if (!enrol)
		return;
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", d->id,
	         d->attest);
	ssfx_expect(201, NULL, "POST", "/v1/device-registrations", fx.init.operator_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", d->id);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/device-group", fx.init.tenant.id,
	         d->id);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", cx.group);
	ssfx_expect(200, NULL, "PUT", path, fx.init.admin_token, body);
}

static void dev_free(struct dev *d)
{
	boot_close(d->bd);
	if (d->base)
		tu_rmtree(d->base);
	free(d->base);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

static int group_setup(void **state)
{
	char path[900];
	json_t *j = NULL;
	FILE *f;

	(void)state;
	make(&cx.proot, IMG_CERT_PLATFORM_ROOT, NULL);
	make(&cx.psigner, IMG_CERT_PLATFORM_SIGNER, &cx.proot);
	assert_int_equal(img_root_hash(cx.proot.cert, cx.root_hash), 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fx.tmp = tu_mkdtemp();
	snprintf(fx.data, sizeof(fx.data), "%s/ss", fx.tmp);
	ss_config_defaults(&fx.cfg);
	assert_int_equal(ss_config_set(&fx.cfg, "data-dir", fx.data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "workers", "2", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "max-body", "1048576", NULL, 0), 0);
	assert_int_equal(ss_init(&fx.cfg, "acme", "alice", &fx.init), 0);
	snprintf(fx.ca, sizeof(fx.ca), "%s/tls/server.pem", fx.data);
	snprintf(path, sizeof(path), "%s/platform-root.pem", fx.data);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, cx.proot.cert), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	snprintf(cx.url, sizeof(cx.url), "https://localhost:%u", (unsigned)fx.port);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack(c, 1, 1, 64, &len);
		upload_os(pkg, len, cx.os1[c]);
		free(pkg);
	}
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
	dev_make(&cx.up, true);
	dev_make(&cx.stranger, false);
	dev_make(&cx.r, true);
	dev_make(&cx.t, true);
	return 0;
}

static struct ss_http *flaky_server(void);

static int group_teardown(void **state)
{
	ss_http_free(flaky_server());
	dev_free(&cx.up);
	dev_free(&cx.stranger);
	dev_free(&cx.r);
	dev_free(&cx.t);
	free(cx.os2_pkg);
	EVP_PKEY_free(cx.proot.key);
	X509_free(cx.proot.cert);
	EVP_PKEY_free(cx.psigner.key);
	X509_free(cx.psigner.cert);
	return ssfx_teardown(state);
}

/* ---- helpers ----------------------------------------------------------------------- */

static struct agent_config config(void)
{
	struct agent_config c;

	memset(&c, 0, sizeof(c));
	c.service_url = cx.url;
	c.ca_file = fx.ca;
	c.retry.attempts = 3;
	c.retry.base_ms = 20;
	c.retry.max_ms = 200;
	c.timeout_s = 20;
	return c;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The certificate verifies for clientAuth against the chain's self-signed
 * root, the chain's other certificates untrusted; its CN is the device id. */
static void expect_cert_verifies(const struct agent_checkin_result *res, const char *id)
{
	BIO *b = BIO_new_mem_buf(res->chain, (int)res->chain_len);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *x, *leaf, *root = NULL;
	char cn[200];

	assert_non_null(b);
	assert_non_null(untrusted);
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (X509_check_issued(x, x) == X509_V_OK) {
			assert_null(root);
			root = x;
		} else {
			assert_true(sk_X509_push(untrusted, x) > 0);
		}
	}
	BIO_free(b);
	assert_non_null(root);
	assert_int_equal(X509_STORE_add_cert(store, root), 1);
	b = BIO_new_mem_buf(res->certificate, (int)res->certificate_len);
	leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(leaf);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), 1);
	if (X509_verify_cert(ctx) != 1)
		fail_msg("X509_verify_cert: %s",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
	                                      sizeof(cn)) > 0);
	assert_string_equal(cn, id);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(root);
	X509_free(leaf);
	BIO_free(b);
}

static void dl_path(const struct dev *d, const char *image_id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s/%s.pkg", d->dir, AGENT_DOWNLOAD_DIR, image_id);
}

static void write_bytes(const char *path, const uint8_t *p, size_t n)
{
	FILE *f;
	char dir[600];

	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	(void)mkdir(dir, 0700);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static const char *os_version(struct dev *d)
{
	static struct boot_report rep;
	assert_int_equal(boot_last_report(d->bd, &rep), 0);
	assert_int_equal(rep.result, BOOT_RESULT_BOOTED);
	return rep.stage[BOOT_OS].measured.version;
}

/* The stored package of image id in the service's database, replaced. */
static void db_set_package(const char *id, const uint8_t *pkg, size_t len)
{
	char path[700];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;

	snprintf(path, sizeof(path), "%s/sphere.db", fx.data);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "UPDATE images SET package = ? WHERE id = ?", -1, &s, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_bind_blob(s, 1, pkg, (int)len, SQLITE_TRANSIENT), SQLITE_OK);
	assert_int_equal(sqlite3_bind_text(s, 2, id, -1, SQLITE_TRANSIENT), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* The device's failure reports as the service lists them. */
static json_t *service_failures(const struct dev *d)
{
	char path[400];
	json_t *j = NULL, *a;

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/failures?limit=100",
	         fx.init.tenant.id, d->id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	a = json_incref(json_object_get(j, "failures"));
	json_decref(j);
	assert_non_null(a);
	return a;
}

/* ---- up to date, refusals, retries ------------------------------------------------------ */

static void test_up_to_date_at_once(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct agent_cycle cyc;
	struct agent_failure f = {.kind = "crash",
	                          .component = "app-x",
	                          .has_code = true,
	                          .code = 11,
	                          .text = "segfault"};
	json_t *a;
	int64_t t = (int64_t)time(NULL);

	(void)state;
	/* a report queued on the device goes with the next check-in */
	assert_int_equal(agent_failure_queue(cx.up.dir, &f), 0);
	assert_int_equal(agent_failure_count(cx.up.dir), 1);
	assert_int_equal(agent_checkin(cx.up.bd, &cfg, &res, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UP_TO_DATE);
	assert_int_equal(res.tls_connections, 1); /* nonce + check-in on one connection */
	assert_int_equal(res.n_updates, 0);
	assert_non_null(res.certificate);
	assert_int_equal(strlen(res.certificate), res.certificate_len);
	expect_cert_verifies(&res, cx.up.id);
	assert_true(res.time >= t - 5 && res.time <= t + 60);
	assert_false(res.time_verified);
	assert_int_equal(res.failures_sent, 1);
	assert_int_equal(agent_failure_count(cx.up.dir), 0);
	agent_checkin_result_free(&res);
	a = service_failures(&cx.up);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(ssfx_jstr(json_array_get(a, 0), "kind"), "crash");
	assert_string_equal(ssfx_jstr(json_array_get(a, 0), "component"), "app-x");
	json_decref(a);

	/* the whole cycle: one round, nothing installed */
	assert_int_equal(agent_run_once(cx.up.bd, &cfg, &res, &cyc, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UP_TO_DATE);
	assert_int_equal(cyc.rounds, 1);
	assert_int_equal(cyc.installed, 0);
	expect_cert_verifies(&res, cx.up.id);
	agent_checkin_result_free(&res);
}

static void test_unregistered_refused_once(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct agent_cycle cyc;
	double t0;

	(void)state;
	cfg.retry.attempts = 6;
	cfg.retry.base_ms = 2000; /* a retry would take seconds */
	t0 = now_s();
	assert_int_equal(agent_checkin(cx.stranger.bd, &cfg, &res, &err), SPH_ERR_PERMISSION);
	assert_true(now_s() - t0 < 1.5);
	assert_int_equal(err.attempts, 1);
	assert_int_equal(err.http_status, 403);
	assert_string_equal(err.error, "forbidden");
	assert_non_null(strstr(err.reason, "unregistered"));
	assert_int_equal(res.status, AGENT_STATUS_NONE);
	assert_null(res.certificate);
	/* the cycle stops too: one check-in, nothing else */
	assert_int_equal(agent_run_once(cx.stranger.bd, &cfg, &res, &cyc, &err),
	                 SPH_ERR_PERMISSION);
	assert_int_equal(cyc.rounds, 1);
	assert_int_equal(err.attempts, 1);
	assert_null(res.certificate);
}

static void test_network_errors_retried(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char url[64];
	double t0, dt;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	/* a port nobody listens on */
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(url, sizeof(url), "https://localhost:%u", (unsigned)ntohs(sa.sin_port));
	cfg.service_url = url;
	cfg.retry.attempts = 4;
	cfg.retry.base_ms = 40;
	cfg.retry.max_ms = 80;
	t0 = now_s();
	assert_int_equal(agent_checkin(cx.up.bd, &cfg, &res, &err), SPH_ERR_TRANSPORT);
	dt = now_s() - t0;
	assert_int_equal(err.attempts, 4);
	assert_int_equal(err.http_status, 0);
	/* waits: [20,40] + [40,80] + [40,80] (capped) ms */
	assert_true(dt >= 0.100);
	assert_true(dt < 5.0);
	/* bad configuration is refused before any network use */
	cfg = config();
	cfg.service_url = "http://localhost:1";
	assert_int_equal(agent_checkin(cx.up.bd, &cfg, &res, &err), SPH_ERR_INVALID_ARG);
	cfg.service_url = cx.url;
	cfg.ca_file = NULL;
	assert_int_equal(agent_checkin(cx.up.bd, &cfg, &res, &err), SPH_ERR_INVALID_ARG);
	/* a service whose TLS certificate is not the configured CA's: no retry
	 * turns it into a success */
	cfg = config();
	cfg.ca_file = "/dev/null";
	cfg.retry.attempts = 2;
	assert_true(agent_checkin(cx.up.bd, &cfg, &res, &err) < 0);
	assert_null(res.certificate);
}

/* ---- updates --------------------------------------------------------------------------- */

struct progress {
	uint64_t cancel_at; /* 0: never */
	unsigned calls;
	unsigned restarts; /* have went down: a download started over */
	uint64_t last, total;
};

static int on_progress(void *ctx, const struct agent_update *u, uint64_t have, uint64_t total)
{
	struct progress *p = ctx;

	assert_true(have <= total);
	assert_int_equal(total, u->size);
	if (p->calls && have < p->last)
		p->restarts++;
	p->calls++;
	p->last = have;
	p->total = total;
	return p->cancel_at && have >= p->cancel_at;
}

/* Publishes OS 2.0.0 (security version 2): the group's target moves on. */
static void test_update_required(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	uint8_t md[32];
	char hex[65];

	(void)state;
	cx.os2_pkg = pack(BOOT_OS, 2, 2, OS2_PAYLOAD, &cx.os2_len);
	upload_os(cx.os2_pkg, cx.os2_len, cx.os2);
	assert_int_equal(agent_checkin(cx.r.bd, &cfg, &res, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UPDATE_REQUIRED);
	assert_null(res.certificate);
	assert_int_equal(res.n_updates, 1);
	assert_string_equal(res.updates[0].image_id, cx.os2);
	assert_string_equal(res.updates[0].type, "OS");
	assert_string_equal(res.updates[0].version, "2.0.0");
	assert_int_equal(res.updates[0].security_version, 2);
	assert_int_equal(res.updates[0].size, cx.os2_len);
	SHA256(cx.os2_pkg, cx.os2_len, md);
	assert_memory_equal(res.updates[0].sha256, md, 32);
	assert_int_equal(sph_hex_encode(md, 32, hex, sizeof(hex)), 0);
	assert_non_null(strstr(res.updates[0].url, cx.os2));
	agent_checkin_result_free(&res);
}

static void get_update(struct dev *d, struct agent_update *u)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;

	assert_int_equal(agent_checkin(d->bd, &cfg, &res, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UPDATE_REQUIRED);
	assert_int_equal(res.n_updates, 1);
	*u = res.updates[0];
	agent_checkin_result_free(&res);
}

static void test_download_resumes(void **state)
{
	struct agent_config cfg = config();
	struct agent_update u;
	struct agent_dl_stats st;
	struct agent_error err;
	struct progress pr = {0};
	char path[700];
	uint8_t *pkg = NULL;
	size_t len = 0, half = cx.os2_len / 2;
	long cut;

	(void)state;
	get_update(&cx.r, &u);
	dl_path(&cx.r, u.image_id, path, sizeof(path));
	/* a pre-seeded first half (an earlier, interrupted download) */
	write_bytes(path, cx.os2_pkg, half);
	cfg.progress = on_progress;
	cfg.progress_ctx = &pr;
	assert_int_equal(agent_download(cx.r.bd, &cfg, &u, &pkg, &len, &st, &err), 0);
	assert_int_equal(st.resumed_from, half);
	assert_int_equal(st.fetched, cx.os2_len - half); /* only the rest came */
	assert_int_equal(st.transfers, 1);
	assert_int_equal(len, cx.os2_len);
	assert_memory_equal(pkg, cx.os2_pkg, len);
	assert_true(pr.calls >= 1);
	assert_int_equal(pr.restarts, 0);
	assert_int_equal(pr.last, cx.os2_len);
	free(pkg);
	pkg = NULL;

	/* a transfer cut midway (cancelled by the progress callback): the bytes
	 * so far stay; the next download asks for the rest only */
	assert_int_equal(unlink(path), 0);
	memset(&pr, 0, sizeof(pr));
	pr.cancel_at = 1;
	assert_int_equal(agent_download(cx.r.bd, &cfg, &u, &pkg, &len, &st, &err), SPH_ERR_STATE);
	assert_null(pkg);
	cut = file_size(path);
	assert_true(cut > 0 && (size_t)cut < cx.os2_len);
	assert_int_equal(st.fetched, (uint64_t)cut);
	memset(&pr, 0, sizeof(pr));
	assert_int_equal(agent_download(cx.r.bd, &cfg, &u, &pkg, &len, &st, &err), 0);
	assert_int_equal(st.resumed_from, (uint64_t)cut);
	assert_int_equal(st.fetched, cx.os2_len - (size_t)cut);
	assert_memory_equal(pkg, cx.os2_pkg, cx.os2_len);
	free(pkg);
	pkg = NULL;

	/* a file holding every byte already: nothing is fetched */
	assert_int_equal(agent_download(cx.r.bd, &cfg, &u, &pkg, &len, &st, &err), 0);
	assert_int_equal(st.resumed_from, cx.os2_len);
	assert_int_equal(st.fetched, 0);
	free(pkg);
	assert_int_equal(unlink(path), 0);
}

static void test_download_refused(void **state)
{
	struct agent_config cfg = config();
	struct agent_update u, bad;
	struct agent_dl_stats st;
	struct agent_error err;
	struct boot_state bs;
	char path[700];
	uint8_t *pkg = NULL, *junk;
	size_t len = 0;

	(void)state;
	get_update(&cx.r, &u);
	dl_path(&cx.r, u.image_id, path, sizeof(path));
	/* the digest the check-in promised is not the bytes' */
	bad = u;
	bad.sha256[7] ^= 0x01;
	assert_int_equal(agent_download(cx.r.bd, &cfg, &bad, &pkg, &len, &st, &err),
	                 SPH_ERR_CORRUPT);
	assert_null(pkg);
	assert_int_equal(file_size(path), -1); /* not kept */
	assert_int_equal(err.attempts, 1);
	/* a size that is not the package's: more bytes than promised */
	bad = u;
	bad.size = u.size - 1;
	assert_int_equal(agent_download(cx.r.bd, &cfg, &bad, &pkg, &len, &st, &err),
	                 SPH_ERR_CORRUPT);
	assert_int_equal(file_size(path), -1);
	/* a damaged partial file: resumed, then refused on its digest */
	junk = malloc(cx.os2_len / 3);
	assert_non_null(junk);
	memcpy(junk, cx.os2_pkg, cx.os2_len / 3);
	junk[100] ^= 0x40;
	write_bytes(path, junk, cx.os2_len / 3);
	free(junk);
	assert_int_equal(agent_download(cx.r.bd, &cfg, &u, &pkg, &len, &st, &err), SPH_ERR_CORRUPT);
	assert_int_equal(st.resumed_from, cx.os2_len / 3);
	assert_int_equal(file_size(path), -1);
	/* nothing reached the inactive slot */
	assert_int_equal(boot_state_read(cx.r.bd, BOOT_OS, &bs), 0);
	assert_int_equal(bs.trial, BOOT_NO_SLOT);
	assert_string_equal(os_version(&cx.r), "1.0.0");
	/* another tenant's path, or no such image: the service's refusal word */
	bad = u;
	snprintf(bad.url, sizeof(bad.url), "/v1/os-images/%s/package", "no-such-image");
	assert_int_equal(agent_download(cx.r.bd, &cfg, &bad, &pkg, &len, &st, &err),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(err.http_status, 404);
	assert_string_equal(err.error, "not_found");
	assert_int_equal(err.attempts, 1);
}

/* The package in the service's database is tampered with: the cycle refuses
 * it, installs nothing, reports it; with the bytes restored it finishes. */
static void test_cycle_tampered_then_recovers(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct agent_cycle cyc;
	struct boot_state bs;
	uint8_t *evil = malloc(cx.os2_len);
	char path[700];
	json_t *a;
	bool reported = false;

	(void)state;
	assert_non_null(evil);
	memcpy(evil, cx.os2_pkg, cx.os2_len);
	evil[cx.os2_len - 10] ^= 0x80; /* in the payload */
	db_set_package(cx.os2, evil, cx.os2_len);
	free(evil);
	assert_int_equal(agent_run_once(cx.t.bd, &cfg, &res, &cyc, &err), SPH_ERR_CORRUPT);
	assert_null(res.certificate);
	assert_int_equal(cyc.rounds, 1);
	assert_int_equal(cyc.installed, 0);
	assert_int_equal(boot_state_read(cx.t.bd, BOOT_OS, &bs), 0);
	assert_int_equal(bs.trial, BOOT_NO_SLOT);
	assert_string_equal(os_version(&cx.t), "1.0.0");
	dl_path(&cx.t, cx.os2, path, sizeof(path));
	assert_int_equal(file_size(path), -1);
	assert_int_equal(agent_failure_count(cx.t.dir), 1);

	/* the service serves the right bytes again */
	db_set_package(cx.os2, cx.os2_pkg, cx.os2_len);
	assert_int_equal(agent_run_once(cx.t.bd, &cfg, &res, &cyc, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UP_TO_DATE);
	assert_int_equal(cyc.installed, 1);
	assert_string_equal(os_version(&cx.t), "2.0.0");
	expect_cert_verifies(&res, cx.t.id);
	agent_checkin_result_free(&res);
	/* the refusal reached the service with the first check-in */
	assert_int_equal(agent_failure_count(cx.t.dir), 0);
	a = service_failures(&cx.t);
	for (size_t i = 0; i < json_array_size(a); i++)
		reported = reported ||
		           strcmp(ssfx_jstr(json_array_get(a, i), "kind"), "refused-image") == 0;
	assert_true(reported);
	json_decref(a);
}

static void test_cycle_updates_and_certifies(void **state)
{
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct agent_cycle cyc;
	struct boot_report rep;
	struct boot_state bs;
	struct progress pr = {0};
	uint32_t counter = 0;
	char path[700];
	json_t *j = NULL;
	uint8_t *junk;

	(void)state;
	/* at most one round: still out of date, nothing installed */
	cfg.max_rounds = 1;
	assert_int_equal(agent_run_once(cx.r.bd, &cfg, &res, &cyc, &err), SPH_ERR_EXHAUSTED);
	assert_int_equal(cyc.rounds, 1);
	assert_int_equal(cyc.installed, 0);
	assert_null(res.certificate);
	assert_string_equal(os_version(&cx.r), "1.0.0");

	/* a damaged partial download is on the device: resumed, refused on its
	 * digest, fetched whole once more */
	dl_path(&cx.r, cx.os2, path, sizeof(path));
	junk = malloc(cx.os2_len / 2);
	assert_non_null(junk);
	memset(junk, 0xa5, cx.os2_len / 2);
	write_bytes(path, junk, cx.os2_len / 2);
	free(junk);
	cfg = config();
	cfg.progress = on_progress;
	cfg.progress_ctx = &pr;
	assert_int_equal(agent_run_once(cx.r.bd, &cfg, &res, &cyc, &err), 0);
	assert_int_equal(res.status, AGENT_STATUS_UP_TO_DATE);
	assert_int_equal(cyc.rounds, 2);
	assert_int_equal(cyc.installed, 1);
	assert_int_equal(cyc.confirmed, 1);
	assert_int_equal(pr.last, cx.os2_len);
	assert_int_equal(pr.restarts, 1); /* the damaged half was not kept */
	expect_cert_verifies(&res, cx.r.id);
	agent_checkin_result_free(&res);
	assert_int_equal(file_size(path), -1); /* installed: the download is gone */
	assert_int_equal(agent_failure_count(cx.r.dir), 0);
	/* the flash now boots the new OS from its confirmed slot; the RoT's
	 * anti-rollback counter moved to its security version */
	assert_int_equal(boot_last_report(cx.r.bd, &rep), 0);
	assert_string_equal(rep.stage[BOOT_OS].measured.version, "2.0.0");
	assert_int_equal(rep.stage[BOOT_OS].measured.security_version, 2);
	assert_int_equal(boot_state_read(cx.r.bd, BOOT_OS, &bs), 0);
	assert_int_equal(bs.confirmed, rep.stage[BOOT_OS].slot);
	assert_int_equal(bs.trial, BOOT_NO_SLOT);
	assert_int_equal(bs.confirmed_svn, 2);
	assert_int_equal(rot_counter_read(boot_rot(cx.r.bd), BOOT_OS, &counter), 0);
	assert_int_equal(counter, 2);
	/* after another power cycle too, and the service agrees */
	assert_int_equal(boot_run(cx.r.bd, CHIP_RESET_POWER_LOSS, &rep), 0);
	assert_string_equal(rep.stage[BOOT_OS].measured.version, "2.0.0");
	assert_false(rep.stage[BOOT_OS].was_trial);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id, cx.r.id);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	assert_true(json_is_true(json_object_get(j, "up_to_date")));
	json_decref(j);
	/* and an up-to-date cycle is one round */
	assert_int_equal(agent_run_once(cx.r.bd, &cfg, &res, &cyc, &err), 0);
	assert_int_equal(cyc.rounds, 1);
	assert_int_equal(cyc.installed, 0);
	agent_checkin_result_free(&res);
}

/* Packages are served to a device only when it is registered and claimed:
 * an unknown device's TLS key fetches nothing. */
static void test_download_needs_enrolled_device(void **state)
{
	struct agent_config cfg = config();
	struct agent_update u;
	struct agent_error err;
	uint8_t *pkg = NULL;
	size_t len = 0;

	(void)state;
	get_update(&cx.up, &u); /* up is out of date now too */
	assert_int_equal(agent_download(cx.stranger.bd, &cfg, &u, &pkg, &len, NULL, &err),
	                 SPH_ERR_PERMISSION);
	assert_int_equal(err.http_status, 403);
	assert_string_equal(err.error, "forbidden");
	assert_null(pkg);
}

static void test_failure_queue_bounds(void **state)
{
	struct agent_failure f = {.kind = "exit", .has_code = true};
	char path[700];
	FILE *fp;

	(void)state;
	for (int i = 0; i < AGENT_FAILURES_MAX + 5; i++) {
		f.code = i;
		assert_int_equal(agent_failure_queue(cx.stranger.dir, &f), 0);
	}
	assert_int_equal(agent_failure_count(cx.stranger.dir), AGENT_FAILURES_MAX);
	f.kind = "boom";
	assert_int_equal(agent_failure_queue(cx.stranger.dir, &f), SPH_ERR_INVALID_ARG);
	f.kind = "crash";
	f.text = "bell\a";
	assert_int_equal(agent_failure_queue(cx.stranger.dir, &f), SPH_ERR_INVALID_ARG);
	/* a damaged queue file is reported, then replaced by the next report */
	snprintf(path, sizeof(path), "%s/%s", cx.stranger.dir, AGENT_FAILURES_FILE);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("[{\"kind\":\"crash\"},", fp);
	fclose(fp);
	assert_int_equal(agent_failure_count(cx.stranger.dir), SPH_ERR_MALFORMED);
	f.text = "ok";
	assert_int_equal(agent_failure_queue(cx.stranger.dir, &f), 0);
	assert_int_equal(agent_failure_count(cx.stranger.dir), 1);
}

/* ---- a flaky service: 5xx, short ranges ------------------------------------------------ */

static struct {
	struct ss_http *h;
	unsigned nonce_calls, pkg_calls;
	char ranges[4][48]; /* the Range header of each package request ("" for none) */
} flaky;

/* The flaky server if a failed test left it running (NULL otherwise). */
static struct ss_http *flaky_server(void)
{
	struct ss_http *h = flaky.h;

	flaky.h = NULL;
	return h;
}

static void flaky_nonce(struct ss_req *r, void *arg)
{
	(void)arg;
	flaky.nonce_calls++;
	ss_reply_error(r, 503, "unavailable", "try again later");
}

/* 503 first; then a 206 of the first third only, whatever was asked; then
 * the range asked for. */
static void flaky_package(struct ss_req *r, void *arg)
{
	const char *range = ss_req_header(r, "Range");
	size_t third = cx.os2_len / 3, from = 0;
	char cr[64];

	(void)arg;
	if (flaky.pkg_calls < 4)
		snprintf(flaky.ranges[flaky.pkg_calls], sizeof(flaky.ranges[0]), "%s",
		         range ? range : "");
	flaky.pkg_calls++;
	if (flaky.pkg_calls == 1) {
		ss_reply_error(r, 503, "unavailable", "try again later");
		return;
	}
	if (flaky.pkg_calls == 2) {
		snprintf(cr, sizeof(cr), "bytes 0-%zu/%zu", third - 1, cx.os2_len);
		(void)ss_reply_header(r, "Content-Range", cr);
		ss_reply_raw(r, 206, "application/octet-stream", cx.os2_pkg, third);
		return;
	}
	if (range && strncmp(range, "bytes=", 6) == 0)
		from = (size_t)strtoul(range + 6, NULL, 10);
	snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", from, cx.os2_len - 1, cx.os2_len);
	(void)ss_reply_header(r, "Content-Range", cr);
	ss_reply_raw(r, 206, "application/octet-stream", cx.os2_pkg + from, cx.os2_len - from);
}

static void test_flaky_service(void **state)
{
	struct ss_http_config hc;
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_update u;
	struct agent_dl_stats st;
	struct agent_error err;
	char cert[700], key[700], url[64], path[700];
	uint8_t *pkg = NULL;
	size_t len = 0;

	(void)state;
	snprintf(cert, sizeof(cert), "%s/tls/server.pem", fx.data);
	snprintf(key, sizeof(key), "%s/tls/server.key", fx.data);
	memset(&hc, 0, sizeof(hc));
	hc.workers = 1;
	hc.cert_file = cert;
	hc.key_file = key;
	hc.device_keys = true;
	assert_int_equal(ss_http_new(&hc, &flaky.h), 0);
	assert_int_equal(ss_http_route(flaky.h, "POST", "/v1/checkin/nonce", flaky_nonce, NULL), 0);
	assert_int_equal(
	        ss_http_route(flaky.h, "GET", "/v1/os-images/{image}/package", flaky_package, NULL),
	        0);
	assert_int_equal(ss_http_start(flaky.h), 0);
	snprintf(url, sizeof(url), "https://localhost:%u", (unsigned)ss_http_port(flaky.h));
	cfg.service_url = url;

	/* a 5xx is retried as configured, then surfaced with its error word */
	cfg.retry.attempts = 3;
	assert_int_equal(agent_checkin(cx.up.bd, &cfg, &res, &err), SPH_ERR_TRANSPORT);
	assert_int_equal(flaky.nonce_calls, 3);
	assert_int_equal(err.attempts, 3);
	assert_int_equal(err.http_status, 503);
	assert_string_equal(err.error, "unavailable");

	/* a download through a 503 and a short 206: it resumes after each */
	memset(&u, 0, sizeof(u));
	snprintf(u.image_id, sizeof(u.image_id), "%s", cx.os2);
	snprintf(u.type, sizeof(u.type), "OS");
	snprintf(u.url, sizeof(u.url), "/v1/os-images/%s/package", cx.os2);
	u.size = cx.os2_len;
	SHA256(cx.os2_pkg, cx.os2_len, u.sha256);
	assert_int_equal(agent_download(cx.up.bd, &cfg, &u, &pkg, &len, &st, &err), 0);
	assert_memory_equal(pkg, cx.os2_pkg, cx.os2_len);
	free(pkg);
	assert_int_equal(flaky.pkg_calls, 3);
	assert_string_equal(flaky.ranges[0], "");
	assert_string_equal(flaky.ranges[1], "");
	{
		char want[48];
		snprintf(want, sizeof(want), "bytes=%zu-", cx.os2_len / 3);
		assert_string_equal(flaky.ranges[2], want);
	}
	assert_int_equal(st.fetched, cx.os2_len);
	assert_int_equal(st.transfers, 3);
	dl_path(&cx.up, cx.os2, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	ss_http_free(flaky.h);
	flaky.h = NULL;
}

/* A power cut at many points of an update (the flash torn mid-operation,
 * every later operation refused until the power comes back): the device
 * comes back on the software it had, and the next cycle finishes the
 * update and gets its certificate. */
static void test_cycle_power_cuts(void **state)
{
	static const unsigned cuts[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377};
	struct agent_config cfg = config();
	struct agent_checkin_result res;
	struct agent_error err;
	struct agent_cycle cyc;
	unsigned interrupted = 0;

	(void)state;
	for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		struct chip_faults plan;
		struct dev d;
		char spec[64];
		int rc;

		memset(&d, 0, sizeof(d));
		dev_make(&d, true);
		boot_close(d.bd);
		snprintf(spec, sizeof(spec), "powercut=%u,seed=%zu", cuts[k], k + 1);
		assert_int_equal(chip_faults_parse(spec, &plan, NULL, 0), 0);
		assert_int_equal(boot_open(d.dir, &plan, &d.bd), 0);
		rc = agent_run_once(d.bd, &cfg, &res, &cyc, &err);
		agent_checkin_result_free(&res);
		if (rc != 0)
			interrupted++;
		/* the power comes back */
		boot_close(d.bd);
		assert_int_equal(boot_open(d.dir, NULL, &d.bd), 0);
		rc = agent_run_once(d.bd, &cfg, &res, &cyc, &err);
		if (rc != 0)
			fail_msg("cut at %u: the next cycle: %s (%s)", cuts[k], sph_strerror(rc),
			         err.reason);
		assert_int_equal(res.status, AGENT_STATUS_UP_TO_DATE);
		assert_string_equal(os_version(&d), "2.0.0");
		expect_cert_verifies(&res, d.id);
		agent_checkin_result_free(&res);
		dev_free(&d);
	}
	print_message("power cuts: %u of %zu interrupted the update\n", interrupted,
	              sizeof(cuts) / sizeof(cuts[0]));
	assert_true(interrupted >= 5); /* the cuts did land inside the update */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_up_to_date_at_once),
	        cmocka_unit_test(test_unregistered_refused_once),
	        cmocka_unit_test(test_network_errors_retried),
	        cmocka_unit_test(test_failure_queue_bounds),
	        cmocka_unit_test(test_update_required),
	        cmocka_unit_test(test_download_resumes),
	        cmocka_unit_test(test_download_refused),
	        cmocka_unit_test(test_download_needs_enrolled_device),
	        cmocka_unit_test(test_flaky_service),
	        cmocka_unit_test(test_cycle_tampered_then_recovers),
	        cmocka_unit_test(test_cycle_updates_and_certifies),
	        cmocka_unit_test(test_cycle_power_cuts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
