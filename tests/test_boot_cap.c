/* boot capability: the device side of capability files (docs/formats.md §8):
 * the tenant root in the device directory, install, and re-verification of
 * the stored file on every question. A refused file is never stored and
 * changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"
#include "testutil.h"

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

static struct {
	struct party troot, csigner, dsigner, oroot, osigner, proot;
	char *tmp;
	int n;
} fx;

static void make(struct party *out, enum img_cert_kind kind, struct party *issuer)
{
	struct img_cert_params p = {.kind = kind};
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

static int setup(void **state)
{
	(void)state;
	make(&fx.troot, IMG_CERT_TENANT_ROOT, NULL);
	make(&fx.csigner, IMG_CERT_CAPABILITY_SIGNER, &fx.troot);
	make(&fx.dsigner, IMG_CERT_DEVELOPER_SIGNER, &fx.troot);
	make(&fx.oroot, IMG_CERT_TENANT_ROOT, NULL);
	make(&fx.osigner, IMG_CERT_CAPABILITY_SIGNER, &fx.oroot);
	make(&fx.proot, IMG_CERT_PLATFORM_ROOT, NULL);
	fx.tmp = tu_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct party *all[] = {&fx.troot, &fx.csigner, &fx.dsigner,
	                       &fx.oroot, &fx.osigner, &fx.proot};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		EVP_PKEY_free(all[i]->key);
		X509_free(all[i]->cert);
	}
	tu_rmtree(fx.tmp);
	free(fx.tmp);
	return 0;
}

/* A fresh device directory; with_root: the tenant root configured. */
static char *new_device(bool with_root)
{
	static const uint8_t phash[32] = {1, 2, 3};
	char name[32];
	char *dir;

	snprintf(name, sizeof(name), "dev%d", fx.n++);
	dir = tu_path(fx.tmp, name);
	assert_int_equal(boot_provision(dir, NULL, ROT_LC_PRODUCTION, NULL, phash), 0);
	if (with_root)
		assert_int_equal(boot_set_tenant_root(dir, fx.troot.cert), 0);
	return dir;
}

static void device_id(struct boot_device *d, uint8_t id[IMG_CAP_DEVICE_ID_LEN])
{
	uint8_t pub[ROT_PUB_LEN];
	assert_int_equal(rot_pubkey(boot_rot(d), ROT_KEY_IDENTITY, pub), 0);
	memcpy(id, pub + 1, IMG_CAP_DEVICE_ID_LEN);
}

static void cap_file(const uint8_t id[IMG_CAP_DEVICE_ID_LEN], uint32_t caps, struct party *s,
                     uint64_t expires_in, uint8_t **buf, size_t *len)
{
	struct img_capability c;
	uint64_t now = (uint64_t)time(NULL);

	memset(&c, 0, sizeof(c));
	memcpy(c.device_id, id, IMG_CAP_DEVICE_ID_LEN);
	c.caps = caps;
	c.issued_at = now - 7200;
	c.expires = expires_in ? now + expires_in : now - 3600;
	snprintf(c.tenant, sizeof(c.tenant), "contoso");
	assert_int_equal(img_cap_pack(&c, s->key, s->cert, NULL, buf, len), 0);
}

static void read_stored(const char *dir, uint8_t **buf, size_t *len)
{
	char *p = tu_path(dir, BOOT_CAPABILITY_FILE);
	assert_int_equal(tu_read_file(p, buf, len), 0);
	free(p);
}

static bool stored(const char *dir)
{
	struct stat st;
	char *p = tu_path(dir, BOOT_CAPABILITY_FILE);
	bool ok = stat(p, &st) == 0;
	free(p);
	return ok;
}

static void test_install_and_mask(void **state)
{
	(void)state;
	char *dir = new_device(true);
	struct boot_device *d = NULL;
	struct img_capability got;
	uint8_t id[IMG_CAP_DEVICE_ID_LEN], *buf = NULL, *st = NULL;
	size_t len = 0, st_len = 0;
	uint32_t mask = 99;
	char why[256];

	assert_int_equal(boot_open(dir, NULL, &d), 0);
	assert_int_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 0); /* production: no file */
	device_id(d, id);
	cap_file(id, 1u << IMG_CAP_APP_DEVELOPMENT, &fx.csigner, 86400, &buf, &len);
	assert_int_equal(boot_capability_install(d, buf, len, &got, why, sizeof(why)), 0);
	assert_int_equal(got.caps, 1u << IMG_CAP_APP_DEVELOPMENT);
	assert_int_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 1u << IMG_CAP_APP_DEVELOPMENT);
	read_stored(dir, &st, &st_len);
	assert_int_equal(st_len, len);
	assert_memory_equal(st, buf, len);
	free(st);
	boot_close(d);

	/* the stored file is re-verified every time: altered on disk, it counts for nothing */
	{
		char *p = tu_path(dir, BOOT_CAPABILITY_FILE);
		FILE *f;
		buf[len / 2] ^= 0x01;
		f = fopen(p, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(buf, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
		free(p);
	}
	assert_int_equal(boot_open(dir, NULL, &d), 0);
	mask = 99;
	assert_int_not_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 0);
	assert_int_not_equal(boot_capability_get(d, &got, why, sizeof(why)), 0);
	boot_close(d);
	free(buf);
	free(dir);
}

/* Every refusal leaves the stored file (or its absence) exactly as it was. */
static void test_refusals_change_nothing(void **state)
{
	(void)state;
	char *dir = new_device(true);
	struct boot_device *d = NULL;
	uint8_t id[IMG_CAP_DEVICE_ID_LEN], other[IMG_CAP_DEVICE_ID_LEN];
	uint8_t *good = NULL, *bad = NULL, *st = NULL;
	size_t good_len = 0, bad_len = 0, st_len = 0;
	uint32_t mask = 0;
	char why[256];
	struct {
		const char *what;
		int want;
	} cases[] = {
	        {"another device", SPH_ERR_PERMISSION}, {"developer signer", SPH_ERR_PERMISSION},
	        {"another tenant", SPH_ERR_AUTH},       {"expired", SPH_ERR_AUTH},
	        {"bit flip", SPH_ERR_BAD_SIGNATURE},    {"truncated", SPH_ERR_TRUNCATED},
	};

	assert_int_equal(boot_open(dir, NULL, &d), 0);
	device_id(d, id);
	memcpy(other, id, sizeof(other));
	other[0] ^= 0x80;
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: nothing installed yet; pass 1: a good file installed */
		if (pass == 1) {
			cap_file(id, IMG_CAP_MASK_ALL, &fx.csigner, 86400, &good, &good_len);
			assert_int_equal(boot_capability_install(d, good, good_len, NULL, NULL, 0),
			                 0);
		}
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			switch (i) {
			case 0:
				cap_file(other, 2, &fx.csigner, 86400, &bad, &bad_len);
				break;
			case 1:
				cap_file(id, 2, &fx.dsigner, 86400, &bad, &bad_len);
				break;
			case 2:
				cap_file(id, 2, &fx.osigner, 86400, &bad, &bad_len);
				break;
			case 3:
				cap_file(id, 2, &fx.csigner, 0, &bad, &bad_len);
				break;
			case 4:
				cap_file(id, 2, &fx.csigner, 86400, &bad, &bad_len);
				bad[bad_len - 1] ^= 0x40; /* in the signature */
				break;
			default:
				cap_file(id, 2, &fx.csigner, 86400, &bad, &bad_len);
				bad_len -= 1;
				break;
			}
			int rc = boot_capability_install(d, bad, bad_len, NULL, why, sizeof(why));
			if (rc != cases[i].want)
				fail_msg("%s: got %d want %d (%s)", cases[i].what, rc,
				         cases[i].want, why);
			free(bad);
			bad = NULL;
			if (pass == 0) {
				assert_false(stored(dir));
				assert_int_equal(boot_capabilities(d, &mask), 0);
				assert_int_equal(mask, 0);
			} else {
				read_stored(dir, &st, &st_len);
				assert_int_equal(st_len, good_len);
				assert_memory_equal(st, good, good_len);
				free(st);
				assert_int_equal(boot_capabilities(d, &mask), 0);
				assert_int_equal(mask, IMG_CAP_MASK_ALL);
			}
		}
	}
	free(good);
	boot_close(d);
	free(dir);
}

static void test_no_tenant_root(void **state)
{
	(void)state;
	char *dir = new_device(false);
	struct boot_device *d = NULL;
	uint8_t id[IMG_CAP_DEVICE_ID_LEN], *buf = NULL;
	size_t len = 0;
	uint32_t mask = 5;
	char why[256];

	assert_int_equal(boot_open(dir, NULL, &d), 0);
	device_id(d, id);
	cap_file(id, 2, &fx.csigner, 86400, &buf, &len);
	assert_int_equal(boot_capability_install(d, buf, len, NULL, why, sizeof(why)),
	                 SPH_ERR_STATE);
	assert_non_null(strstr(why, "tenant root"));
	assert_false(stored(dir));
	assert_int_equal(boot_capabilities(d, &mask), 0);
	assert_int_equal(mask, 0);
	boot_close(d);
	free(buf);
	free(dir);
}

static void test_tenant_root_rules(void **state)
{
	(void)state;
	char *dir = new_device(false);
	char *p = tu_path(dir, BOOT_TENANT_ROOT_FILE);
	struct stat st;

	/* a platform root cannot certify capability signers; a signer is no root */
	assert_int_equal(boot_set_tenant_root(dir, fx.proot.cert), SPH_ERR_PERMISSION);
	assert_int_equal(boot_set_tenant_root(dir, fx.csigner.cert), SPH_ERR_AUTH);
	assert_int_not_equal(stat(p, &st), 0);
	assert_int_equal(boot_set_tenant_root(dir, fx.troot.cert), 0);
	assert_int_equal(stat(p, &st), 0);
	/* never replaced */
	assert_int_equal(boot_set_tenant_root(dir, fx.oroot.cert), SPH_ERR_STATE);
	assert_int_equal(boot_tenant_root_check(fx.troot.cert), 0);
	assert_int_equal(boot_tenant_root_check(NULL), SPH_ERR_INVALID_ARG);
	free(p);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_install_and_mask),
	        cmocka_unit_test(test_refusals_change_nothing),
	        cmocka_unit_test(test_no_tenant_root),
	        cmocka_unit_test(test_tenant_root_rules),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
