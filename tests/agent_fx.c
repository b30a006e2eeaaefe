/* The agent tests' world (agent_fx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#include "agent_fx.h"
#include "common/common.h"
#include "image/image.h"
#include "service/ss_internal.h"
#include "ss_fixture.h"
#include "testutil.h"

struct afx ax;

static const struct chip_flash_geometry afx_geo = {.block_size = 4096, .block_count = 390};

uint8_t *afx_pack(unsigned comp, unsigned ver, uint32_t svn, size_t payload_len, size_t *len)
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
	assert_true(sk_X509_push(chain, ax.proot) > 0);
	assert_int_equal(
	        img_pack(&m, payload, payload_len, ax.psigner_key, ax.psigner, chain, &pkg, len),
	        0);
	sk_X509_free(chain);
	free(payload);
	return pkg;
}

void afx_upload_os(const uint8_t *pkg, size_t len, char *id)
{
	struct ssfx_reply r;
	char body[128];
	json_t *j;

	ssfx_call(0, "POST", "/v1/os-images", fx.init.operator_token, pkg, len,
	          "application/octet-stream", &r);
	assert_int_equal(r.status, 201);
	j = json_loadb(r.body, r.len, 0, NULL);
	snprintf(id, 64, "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	ssfx_reply_free(&r);
	snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
	ssfx_expect(201, NULL, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token,
	            body);
}

void afx_dev_make(struct afx_dev *d, bool enrol, X509 *troot)
{
	struct boot_report rep;
	uint8_t pub[ROT_PUB_LEN];
	char why[BOOT_REASON_MAX], path[400], body[400], attest[2 * SS_ATTEST_KEY_LEN + 1];

	memset(d, 0, sizeof(*d));
	d->base = tu_mkdtemp();
	d->dir = tu_path(d->base, "dev");
	assert_int_equal(boot_provision(d->dir, &afx_geo, ROT_LC_PRODUCTION, NULL, ax.root_hash),
	                 0);
	if (troot)
		assert_int_equal(boot_set_tenant_root(d->dir, troot), 0);
	assert_int_equal(boot_open(d->dir, NULL, &d->bd), 0);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = afx_pack(c, 1, 1, 64, &len);
		assert_int_equal(boot_install(d->bd, c, pkg, len, why, sizeof(why)), 0);
		free(pkg);
	}
	assert_int_equal(boot_run(d->bd, CHIP_RESET_SOFTWARE, &rep), 0);
	assert_int_equal(boot_confirm(d->bd) >= 0, 1);
	assert_int_equal(rot_device_id(boot_rot(d->bd), d->id), 0);
	assert_int_equal(rot_pubkey(boot_rot(d->bd), ROT_KEY_ATTEST, pub), 0);
	assert_int_equal(sph_hex_encode(pub + 1, SS_ATTEST_KEY_LEN, attest, sizeof(attest)), 0);
	afx_dev_close(d);
	afx_dev_open(d);
	if (!enrol)
		return;
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\",\"attestation_key\":\"%s\"}", d->id,
	         attest);
	ssfx_expect(201, NULL, "POST", "/v1/device-registrations", fx.init.operator_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", d->id);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/device-group", fx.init.tenant.id,
	         d->id);
	snprintf(body, sizeof(body), "{\"group_id\":\"%s\"}", ax.group);
	ssfx_expect(200, NULL, "PUT", path, fx.init.admin_token, body);
}

void afx_dev_close(struct afx_dev *d)
{
	boot_close(d->bd);
	d->bd = NULL;
}

void afx_dev_open(struct afx_dev *d)
{
	assert_null(d->bd);
	assert_int_equal(boot_open(d->dir, NULL, &d->bd), 0);
}

void afx_dev_free(struct afx_dev *d)
{
	boot_close(d->bd);
	if (d->base)
		tu_rmtree(d->base);
	free(d->base);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

void afx_dev_capability(struct afx_dev *d)
{
	struct ssfx_reply r;
	struct img_capability c;
	char path[400], why[256];
	static const char body[] = "{\"capabilities\":[\"appDevelopment\"]}";

	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", fx.init.tenant.id,
	         d->id);
	ssfx_call(0, "POST", path, fx.init.admin_token, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	if (boot_capability_install(d->bd, (const uint8_t *)r.body, r.len, &c, why, sizeof(why)) !=
	    0)
		fail_msg("capability install: %s", why);
	ssfx_reply_free(&r);
}

struct agent_config afx_config(void)
{
	struct agent_config c;

	memset(&c, 0, sizeof(c));
	c.service_url = ax.url;
	c.ca_file = fx.ca;
	c.retry.attempts = 2;
	c.retry.base_ms = 50;
	c.retry.max_ms = 400;
	c.timeout_s = 10;
	return c;
}

void afx_service_stop(void)
{
	ss_service_free(fx.svc);
	fx.svc = NULL;
}

void afx_service_restart(void)
{
	char port[16];

	assert_null(fx.svc);
	snprintf(port, sizeof(port), "%u", (unsigned)fx.port);
	assert_int_equal(ss_config_set(&fx.cfg, "port", port, NULL, 0), 0);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	assert_int_equal(ss_service_port(fx.svc), fx.port);
}

static void afx_make(EVP_PKEY **key, X509 **cert, enum img_cert_kind kind, EVP_PKEY *ikey,
                     X509 *icert)
{
	struct img_cert_params p = {.kind = kind, .issuer_key = ikey, .issuer_cert = icert};

	assert_int_equal(img_cert_make(&p, key, cert), 0);
}

int afx_setup(void **state)
{
	struct ssfx_reply r;
	char path[900];
	json_t *j = NULL;
	BIO *b;
	FILE *f;

	(void)state;
	memset(&ax, 0, sizeof(ax));
	afx_make(&ax.proot_key, &ax.proot, IMG_CERT_PLATFORM_ROOT, NULL, NULL);
	afx_make(&ax.psigner_key, &ax.psigner, IMG_CERT_PLATFORM_SIGNER, ax.proot_key, ax.proot);
	assert_int_equal(img_root_hash(ax.proot, ax.root_hash), 0);
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
	assert_int_equal(PEM_write_X509(f, ax.proot), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	snprintf(ax.url, sizeof(ax.url), "https://localhost:%u", (unsigned)fx.port);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		char id[64];
		uint8_t *pkg = afx_pack(c, 1, 1, 64, &len);
		afx_upload_os(pkg, len, id);
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
	snprintf(ax.group, sizeof(ax.group), "%s", ssfx_jstr(j, "id"));
	json_decref(j);
	/* the tenant image root a device installs (docs/api.md §4.7) */
	snprintf(path, sizeof(path), "/v1/tenants/%s/image-root", fx.init.tenant.id);
	ssfx_call(0, "GET", path, fx.init.admin_token, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	b = BIO_new_mem_buf(r.body, (int)r.len);
	ax.image_root = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(ax.image_root);
	BIO_free(b);
	ssfx_reply_free(&r);
	return 0;
}

int afx_teardown(void **state)
{
	X509_free(ax.image_root);
	EVP_PKEY_free(ax.proot_key);
	X509_free(ax.proot);
	EVP_PKEY_free(ax.psigner_key);
	X509_free(ax.psigner);
	memset(&ax, 0, sizeof(ax));
	return ssfx_teardown(state);
}
