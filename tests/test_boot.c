/* Tests for the boot chain: slots, verification, rollback, trials, recovery,
 * firewall, and power loss at every flash operation of an install. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "boot/boot.h"
#include "boot/boot_internal.h"
#include "common/common.h"
#include "image/image.h"
#include "testutil.h"

struct party {
	EVP_PKEY *key;
	X509 *cert;
};

static struct {
	struct party proot, psigner;       /* platform root -> OS signer */
	struct party pinter, tsigner;      /* platform root -> intermediate -> tenant signer */
	struct party oroot, osigner;       /* another platform */
	uint8_t root_hash[IMG_DIGEST_LEN]; /* fused in every test device */
	char *dir;                         /* per test */
	char *tmpl;                        /* a device with v1 of everything confirmed */
} fx;

static const struct chip_flash_geometry test_geo = {.block_size = 4096, .block_count = 390};

static void make(struct party *out, enum img_cert_kind kind, struct party *issuer, unsigned roles)
{
	struct img_cert_params p = {.kind = kind, .roles = roles};
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

static void party_free(struct party *p)
{
	EVP_PKEY_free(p->key);
	X509_free(p->cert);
}

/* The payload of a component at a version: plen bytes derived from both. */
static uint8_t *payload_for(unsigned comp, unsigned ver, size_t plen)
{
	uint8_t *p = malloc(plen);
	assert_non_null(p);
	for (size_t i = 0; i < plen; i++)
		p[i] = (uint8_t)(i * 31u + comp * 7u + ver * 101u);
	return p;
}

/* Rewrites slot (comp, slot) through the security monitor's store with one
 * bit flipped at byte at: the store's checksums then cover the altered bytes,
 * as if whoever wrote the image meant it. Only the signature can tell. */
static void tamper_slot(struct boot_device *d, unsigned comp, unsigned slot, size_t at,
                        unsigned bit)
{
	struct secmon *sm;
	char name[16];
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(boot_slot_name(comp, slot, name, sizeof(name)), 0);
	assert_int_equal(boot_store(d, CHIP_COMP_SECMON, &sm), 0);
	assert_int_equal(secmon_get(sm, name, &buf, &len, NULL, 0), 0);
	assert_true(at < len);
	buf[at] ^= (uint8_t)(1u << bit);
	assert_int_equal(secmon_put(sm, name, buf, len), 0);
	free(buf);
}

/* Packs component comp (its type is comp + 1) at version "<ver>.0.0". */
static uint8_t *pack_as(unsigned comp, uint32_t type, unsigned ver, uint32_t svn, size_t plen,
                        struct party *s, X509 *extra1, X509 *extra2, size_t *len)
{
	struct img_manifest m;
	STACK_OF(X509) *chain = sk_X509_new_null();
	uint8_t *pkg = NULL, *payload = payload_for(comp, ver, plen);

	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < IMG_COMPONENT_ID_LEN; i++)
		m.component_id[i] = (uint8_t)(0x10 * (comp + 1) + i);
	m.type = type;
	snprintf(m.name, sizeof(m.name), "%s", boot_comp_name(comp));
	snprintf(m.version, sizeof(m.version), "%u.0.0", ver);
	m.security_version = svn;
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	assert_non_null(chain);
	if (extra1)
		assert_true(sk_X509_push(chain, extra1) > 0);
	if (extra2)
		assert_true(sk_X509_push(chain, extra2) > 0);
	assert_int_equal(img_pack(&m, payload, plen, s->key, s->cert, chain, &pkg, len), 0);
	sk_X509_free(chain);
	free(payload);
	return pkg;
}

static uint8_t *pack(unsigned comp, unsigned ver, uint32_t svn, size_t plen, size_t *len)
{
	return pack_as(comp, comp + 1, ver, svn, plen, &fx.psigner, fx.proot.cert, NULL, len);
}

static void install(struct boot_device *d, unsigned comp, unsigned ver, uint32_t svn, size_t plen)
{
	size_t len;
	uint8_t *pkg = pack(comp, ver, svn, plen, &len);
	char why[BOOT_REASON_MAX];

	assert_int_equal(boot_install(d, comp, pkg, len, why, sizeof(why)), 0);
	free(pkg);
}

static struct boot_device *dev_open(const char *dir)
{
	struct boot_device *d = NULL;
	assert_int_equal(boot_open(dir, NULL, &d), 0);
	return d;
}

/* Checks a successful boot: versions per stage and the accumulator equals the
 * replay of what booted. */
static void assert_booted(const struct boot_report *r, unsigned bl, unsigned sm, unsigned os)
{
	const unsigned ver[BOOT_COMPONENTS] = {bl, sm, os};
	struct eat_component c[BOOT_COMPONENTS];
	uint8_t acc[32], digest[32];
	char v[16];

	assert_int_equal(r->result, BOOT_RESULT_BOOTED);
	for (unsigned i = 0; i < BOOT_COMPONENTS; i++) {
		uint8_t *p = payload_for(i, ver[i], i == BOOT_OS && ver[i] == 2 ? 6000 : 64);
		assert_true(r->stage[i].booted);
		snprintf(v, sizeof(v), "%u.0.0", ver[i]);
		assert_string_equal(r->stage[i].measured.version, v);
		assert_string_equal(r->stage[i].measured.type, boot_comp_name(i));
		assert_int_equal(EVP_Digest(p, i == BOOT_OS && ver[i] == 2 ? 6000 : 64, digest,
		                            NULL, EVP_sha256(), NULL),
		                 1);
		assert_memory_equal(r->stage[i].measured.digest, digest, 32);
		free(p);
		c[i] = r->stage[i].measured;
	}
	assert_int_equal(eat_accumulator_replay(c, BOOT_COMPONENTS, acc), 0);
	assert_memory_equal(acc, r->accumulator, 32);
}

#define ANY_REFUSAL INT32_MIN

/* True when the chip's boot log has an entry with status (ANY_REFUSAL: any
 * non-zero) whose event contains needle. */
static bool log_has(struct boot_device *d, int32_t status, const char *needle)
{
	struct chip_bootlog_entry e;

	for (size_t i = 0; chip_bootlog_get(boot_chip(d), i, &e) == 0; i++)
		if ((status == ANY_REFUSAL ? e.status != 0 : e.status == status) &&
		    strstr(e.event, needle))
			return true;
	return false;
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	char *a = tu_path(from_dir, name), *b = tu_path(to_dir, name);
	uint8_t *buf = NULL;
	size_t len = 0;
	FILE *fp;

	assert_int_equal(tu_read_file(a, &buf, &len), 0);
	fp = fopen(b, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	free(buf);
	free(a);
	free(b);
}

/* A fresh copy of the template device (v1 everywhere, confirmed) at path. */
static void clone_template(const char *path)
{
	tu_rmtree(path);
	assert_int_equal(mkdir(path, 0700), 0);
	copy_file(fx.tmpl, path, "flash.bin");
	copy_file(fx.tmpl, path, "flash.bin.meta");
	copy_file(fx.tmpl, path, "otp");
}

static int group_setup(void **state)
{
	struct boot_device *d;
	struct boot_report r;
	char *base = tu_mkdtemp();

	(void)state;
	make(&fx.proot, IMG_CERT_PLATFORM_ROOT, NULL, 0);
	make(&fx.psigner, IMG_CERT_PLATFORM_SIGNER, &fx.proot, 0);
	make(&fx.pinter, IMG_CERT_INTERMEDIATE, &fx.proot,
	     (1u << IMG_ROLE_PLATFORM_OS) | (1u << IMG_ROLE_TENANT_APP));
	make(&fx.tsigner, IMG_CERT_TENANT_SIGNER, &fx.pinter, 0);
	make(&fx.oroot, IMG_CERT_PLATFORM_ROOT, NULL, 0);
	make(&fx.osigner, IMG_CERT_PLATFORM_SIGNER, &fx.oroot, 0);
	assert_int_equal(img_root_hash(fx.proot.cert, fx.root_hash), 0);
	fx.tmpl = tu_path(base, "template");
	assert_int_equal(boot_provision(fx.tmpl, &test_geo, ROT_LC_PRODUCTION, NULL, fx.root_hash),
	                 0);
	d = dev_open(fx.tmpl);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++)
		install(d, c, 1, 1, 64);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	assert_int_equal(boot_confirm(d), 3);
	boot_close(d);
	free(base);
	return 0;
}

static int group_teardown(void **state)
{
	char *base;

	(void)state;
	base = strdup(fx.tmpl);
	assert_non_null(base);
	*strrchr(base, '/') = '\0';
	tu_rmtree(base);
	free(base);
	free(fx.tmpl);
	party_free(&fx.proot);
	party_free(&fx.psigner);
	party_free(&fx.pinter);
	party_free(&fx.tsigner);
	party_free(&fx.oroot);
	party_free(&fx.osigner);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	fx.dir = tu_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(fx.dir);
	free(fx.dir);
	fx.dir = NULL;
	return 0;
}

/* A device with v1 of everything confirmed, opened. */
static struct boot_device *good_device(void)
{
	char *p = tu_path(fx.dir, "dev");
	struct boot_device *d;

	clone_template(p);
	d = dev_open(p);
	free(p);
	return d;
}

/* ---- the slot-state record ---------------------------------------------------- */

static void test_state_record(void **state)
{
	struct boot_state s = {.seq = 7,
	                       .component = BOOT_OS,
	                       .confirmed = 0,
	                       .trial = 1,
	                       .trials_left = 2,
	                       .confirmed_svn = 4,
	                       .len = {100, 200}};
	struct boot_state out;
	uint8_t rec[BOOT_RECORD_LEN], bad[BOOT_RECORD_LEN + 1];

	(void)state;
	assert_int_equal(boot_state_encode(&s, rec), 0);
	assert_int_equal(boot_state_decode(rec, sizeof(rec), BOOT_OS, &out), 0);
	assert_memory_equal(&out, &s, sizeof(s));
	assert_int_equal(boot_state_decode(rec, sizeof(rec), BOOT_BL, &out), SPH_ERR_CLAIM);
	assert_int_equal(boot_state_decode(rec, sizeof(rec) - 1, BOOT_OS, &out), SPH_ERR_TRUNCATED);
	memcpy(bad, rec, sizeof(rec));
	bad[BOOT_RECORD_LEN] = 0;
	assert_int_equal(boot_state_decode(bad, sizeof(bad), BOOT_OS, &out), SPH_ERR_TRAILING);
	/* Every single bit flip is refused. */
	for (size_t i = 0; i < 8 * sizeof(rec); i++) {
		memcpy(bad, rec, sizeof(rec));
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(boot_state_decode(bad, sizeof(rec), BOOT_OS, &out), 0);
		assert_int_equal(out.seq, 0);
	}
	/* The encoder refuses what the decoder would. */
	s.trial = 0;
	assert_int_equal(boot_state_encode(&s, rec), SPH_ERR_INVALID_ARG);
	s.trial = 1;
	s.trials_left = 4;
	assert_int_equal(boot_state_encode(&s, rec), SPH_ERR_INVALID_ARG);
	s.trials_left = 1;
	s.len[1] = 0;
	assert_int_equal(boot_state_encode(&s, rec), SPH_ERR_INVALID_ARG);
	s.len[1] = BOOT_SLOT_SIZE + 1;
	assert_int_equal(boot_state_encode(&s, rec), SPH_ERR_INVALID_ARG);
	s.len[1] = 5;
	s.seq = 0;
	assert_int_equal(boot_state_encode(&s, rec), SPH_ERR_INVALID_ARG);
	/* Erased flash is no record. */
	memset(rec, 0xff, sizeof(rec));
	assert_int_equal(boot_state_decode(rec, sizeof(rec), BOOT_OS, &out), SPH_ERR_MALFORMED);
}

static void test_layout(void **state)
{
	struct chip_flash_geometry g = {.block_size = 4096, .block_count = BOOT_STATE_BLOCKS + 63};
	struct secmon_region r;
	char name[16];

	(void)state;
	assert_int_equal(boot_layout_check(&test_geo), 0);
	assert_int_equal(boot_layout_check(&g), SPH_ERR_UNSUPPORTED);
	assert_int_equal(boot_store_region(&g, &r), SPH_ERR_UNSUPPORTED);
	g.block_count++;
	assert_int_equal(boot_layout_check(&g), 0);
	g = (struct chip_flash_geometry){.block_size = 4096, .block_count = 1024};
	assert_int_equal(boot_store_region(&g, &r), 0);
	assert_int_equal(r.first_block, BOOT_STATE_BLOCKS);
	assert_int_equal(r.block_count, 1024 - BOOT_STATE_BLOCKS);
	assert_int_equal(boot_record_offset(&g, BOOT_OS, 1), 5u * 4096u);
	g.block_size = 512u * 1024u;
	assert_int_equal(boot_layout_check(&g), SPH_ERR_UNSUPPORTED);
	assert_int_equal(boot_slot_name(BOOT_OS, 1, name, sizeof(name)), 0);
	assert_string_equal(name, "boot/os/b");
	assert_int_equal(boot_slot_name(BOOT_BL, 0, name, sizeof(name)), 0);
	assert_string_equal(name, "boot/bl/a");
	assert_int_equal(boot_slot_name(BOOT_OS, 2, name, sizeof(name)), SPH_ERR_INVALID_ARG);
	assert_int_equal(boot_slot_name(BOOT_OS, 0, name, 5), SPH_ERR_BUFFER_TOO_SMALL);
}

/* ---- booting -------------------------------------------------------------------- */

static void test_boot_verified(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct chip_ram_info ri;
	uint8_t acc[32];
	uint32_t v;

	(void)state;
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		assert_false(r.stage[c].was_trial);
		assert_int_equal(r.stage[c].slot, 0);
		assert_int_equal(rot_counter_read(boot_rot(d), c, &v), 0);
		assert_int_equal(v, 1);
	}
	assert_int_equal(rot_accumulator(boot_rot(d), acc), 0);
	assert_memory_equal(acc, r.accumulator, 32);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	assert_true(log_has(d, 0, "OS A booted 1.0.0"));
	assert_int_equal(chip_ram_info(boot_chip(d), &ri), 0);
	assert_int_equal(ri.log_count, 3);
	/* A chip reset alone resets the RoT too: the measurements are gone. */
	assert_int_equal(chip_reset(boot_chip(d), CHIP_RESET_WATCHDOG), 0);
	assert_int_equal(rot_accumulator(boot_rot(d), acc), 0);
	{
		static const uint8_t zero[32];
		assert_memory_equal(acc, zero, 32);
	}
	boot_close(d);
}

static void test_firewall_after_boot(void **state)
{
	struct boot_device *d = good_device();
	struct chip_flash_geometry g;
	struct boot_report r;
	struct chip_res res;
	uint8_t zero[16] = {0}, buf[16];

	(void)state;
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_int_equal(chip_flash_geometry(chip_flash(boot_chip(d)), &g), 0);
	/* Only the security monitor touches the store: the OS and apps ask it.
	 * The bootloader reads it and writes only the state records. */
	{
		uint64_t store = (uint64_t)BOOT_STATE_BLOCKS * g.block_size;
		struct secmon *sm;
		assert_int_equal(chip_read(boot_chip(d), CHIP_COMP_OS, store, buf, sizeof(buf)),
		                 SPH_ERR_PERMISSION);
		assert_int_equal(
		        chip_program(boot_chip(d), CHIP_COMP_OS, store + 4096, zero, sizeof(zero)),
		        SPH_ERR_PERMISSION);
		assert_int_equal(chip_program(boot_chip(d), CHIP_COMP_OS,
		                              boot_record_offset(&g, BOOT_OS, 0), zero,
		                              sizeof(zero)),
		                 SPH_ERR_PERMISSION);
		assert_int_equal(chip_erase(boot_chip(d), CHIP_COMP_OS, 0), SPH_ERR_PERMISSION);
		assert_int_equal(chip_erase(boot_chip(d), CHIP_COMP_OS, BOOT_STATE_BLOCKS),
		                 SPH_ERR_PERMISSION);
		assert_int_equal(chip_read(boot_chip(d), CHIP_COMP_APP0, store, buf, sizeof(buf)),
		                 SPH_ERR_PERMISSION);
		assert_int_equal(
		        chip_read(boot_chip(d), CHIP_COMP_BOOTLOADER, store, buf, sizeof(buf)), 0);
		assert_int_equal(chip_erase(boot_chip(d), CHIP_COMP_BOOTLOADER, BOOT_STATE_BLOCKS),
		                 SPH_ERR_PERMISSION);
		assert_int_equal(boot_store(d, CHIP_COMP_OS, &sm), SPH_ERR_INVALID_ARG);
		assert_int_equal(secmon_mount(boot_chip(d), CHIP_COMP_OS, &d->region, &sm),
		                 SPH_ERR_PERMISSION);
	}
	/* Grants after the lock are refused. */
	res = chip_res_region(CHIP_RES_FLASH, 0, g.block_size);
	assert_int_equal(chip_fw_grant(chip_fw(boot_chip(d)), CHIP_COMP_OS, &res, CHIP_FW_W),
	                 SPH_ERR_STATE);
	/* The security monitor still installs (its grant was made before the lock). */
	install(d, BOOT_OS, 2, 2, 6000);
	boot_close(d);
}

static void test_recovery_when_empty(void **state)
{
	char *p = tu_path(fx.dir, "blank");
	struct boot_device *d = NULL;
	struct boot_report r;
	uint8_t zero[32] = {0};

	(void)state;
	assert_int_equal(boot_provision(p, &test_geo, ROT_LC_DEVELOPMENT, NULL, fx.root_hash), 0);
	assert_int_equal(boot_provision(p, &test_geo, ROT_LC_DEVELOPMENT, NULL, fx.root_hash),
	                 SPH_ERR_STATE);
	d = dev_open(p);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_STATE);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_BL].booted);
	assert_false(r.stage[BOOT_SECMON].booted);
	assert_memory_equal(r.accumulator, zero, 32); /* nothing was measured */
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	assert_true(log_has(d, SPH_ERR_NOT_FOUND, "RECOVERY"));
	/* Only the bootloader installed: the chain stops at SECMON. */
	boot_close(d);
	d = dev_open(p);
	install(d, BOOT_BL, 1, 1, 64);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_STATE);
	assert_true(r.stage[BOOT_BL].booted);
	assert_false(r.stage[BOOT_SECMON].booted);
	assert_false(r.stage[BOOT_OS].booted);
	boot_close(d);
	free(p);
}

static void test_recovery_corrupt_bootloader(void **state)
{
	struct boot_device *d = good_device();
	struct chip_flash_geometry g;
	struct chip_faults plan = {0};
	struct boot_report r;

	(void)state;
	assert_int_equal(chip_flash_geometry(chip_flash(boot_chip(d)), &g), 0);
	(void)plan;
	tamper_slot(d, BOOT_BL, 0, 60, 3);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_STATE);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_BL].booted);
	assert_false(r.stage[BOOT_SECMON].booted);
	assert_true(strlen(r.stage[BOOT_BL].reason) > 0);
	assert_true(log_has(d, r.stage[BOOT_BL].status, "BL A refused"));
	boot_close(d);
}

static void test_recovery_without_root_hash(void **state)
{
	char *p = tu_path(fx.dir, "nohash");
	struct chip_config cfg = {.create = true, .geometry = test_geo};
	struct chip *c = NULL;
	struct boot_device *d;
	struct boot_report r;
	size_t len;
	uint8_t *pkg = pack(BOOT_BL, 1, 1, 64, &len);
	char why[BOOT_REASON_MAX];

	(void)state;
	assert_int_equal(chip_open(p, &cfg, &c), 0);
	assert_int_equal(rot_otp_fuse(chip_otp_path(c), NULL, ROT_LC_DEVELOPMENT), 0);
	chip_close(c);
	d = dev_open(p);
	assert_int_equal(boot_install(d, BOOT_BL, pkg, len, why, sizeof(why)), SPH_ERR_NOT_FOUND);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_STATE);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_BL].booted);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	boot_close(d);
	free(pkg);
	free(p);
}

/* ---- attacks: each refused, the good image still boots ----------------------- */

/* Installs OS v2 as a trial, flips one bit of it at package offset at, boots:
 * the trial is refused with want and the confirmed v1 boots. */
static void flip_and_boot(size_t at_from_pkg_start, int want)
{
	struct boot_device *d = good_device();
	struct chip_flash_geometry g;
	struct chip_faults plan = {0};
	struct boot_report r;
	struct boot_state s;

	install(d, BOOT_OS, 2, 2, 6000);
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	assert_int_equal(s.trial, 1);
	assert_int_equal(chip_flash_geometry(chip_flash(boot_chip(d)), &g), 0);
	(void)plan;
	tamper_slot(d, BOOT_OS, 1, at_from_pkg_start, 5);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	assert_int_equal(r.stage[BOOT_OS].slot, 0);
	assert_int_equal(r.stage[BOOT_OS].status, 0);
	assert_true(log_has(d, want, "OS B refused"));
	/* A confirm now does not confirm the refused trial. */
	assert_int_equal(boot_confirm(d), 0);
	boot_close(d);
}

static void test_attack_bit_flips(void **state)
{
	size_t len;
	uint8_t *pkg = pack(BOOT_OS, 2, 2, 6000, &len);
	struct img_package p;

	(void)state;
	assert_int_equal(img_parse(pkg, len, &p), 0);
	/* Payload: the digest no longer matches. */
	flip_and_boot(len - 100, SPH_ERR_BAD_SIGNATURE);
	/* Manifest: it no longer decodes, or its signature no longer verifies. */
	flip_and_boot((size_t)(p.manifest_cbor - pkg) + p.manifest_cbor_len - 3, ANY_REFUSAL);
	flip_and_boot((size_t)(p.manifest_cbor - pkg) + 2, ANY_REFUSAL);
	/* Signature: the last bytes of the COSE_Sign1. */
	flip_and_boot(IMG_HEADER_LEN + p.cose_len - 10, SPH_ERR_BAD_SIGNATURE);
	free(pkg);
}

/* Writes pkg (len bytes, recorded as rec_len) into slot B of comp through the
 * store and makes it a trial, bypassing boot_install's checks: an attacker
 * who can get any bytes into a slot. */
static void stage_raw(struct boot_device *d, unsigned comp, const uint8_t *pkg, size_t len,
                      uint32_t rec_len, unsigned slot)
{
	struct boot_state s;
	struct secmon *sm;
	char name[16];

	if (pkg) {
		assert_int_equal(boot_slot_name(comp, slot, name, sizeof(name)), 0);
		assert_int_equal(boot_store(d, CHIP_COMP_SECMON, &sm), 0);
		assert_int_equal(secmon_put(sm, name, pkg, len), 0);
	}
	assert_int_equal(boot_state_read(d, comp, &s), 0);
	s.trial = (uint8_t)slot;
	s.trials_left = BOOT_TRIALS;
	s.len[slot] = rec_len;
	assert_int_equal(boot_state_write(d, comp, &s), 0);
}

static void attack_staged(uint8_t *pkg, size_t len, uint32_t rec_len, int want_install,
                          int want_boot)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	char why[BOOT_REASON_MAX];

	assert_int_equal(boot_install(d, BOOT_OS, pkg, len, why, sizeof(why)), want_install);
	assert_true(strlen(why) > 0);
	stage_raw(d, BOOT_OS, pkg, len, rec_len, 1);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	assert_true(log_has(d, want_boot, "OS B refused"));
	boot_close(d);
	free(pkg);
}

static void test_attack_unknown_signer(void **state)
{
	size_t len;
	uint8_t *pkg =
	        pack_as(BOOT_OS, IMG_TYPE_OS, 2, 2, 64, &fx.osigner, fx.oroot.cert, NULL, &len);

	(void)state;
	attack_staged(pkg, len, (uint32_t)len, SPH_ERR_AUTH, SPH_ERR_AUTH);
}

static void test_attack_tenant_signer_for_os(void **state)
{
	size_t len;
	uint8_t *pkg = pack_as(BOOT_OS, IMG_TYPE_OS, 2, 2, 64, &fx.tsigner, fx.pinter.cert,
	                       fx.proot.cert, &len);

	(void)state;
	attack_staged(pkg, len, (uint32_t)len, SPH_ERR_PERMISSION, SPH_ERR_PERMISSION);
}

static void test_attack_wrong_component_type(void **state)
{
	size_t len;
	uint8_t *pkg =
	        pack_as(BOOT_OS, IMG_TYPE_SECMON, 2, 2, 64, &fx.psigner, fx.proot.cert, NULL, &len);

	(void)state;
	attack_staged(pkg, len, (uint32_t)len, SPH_ERR_CLAIM, SPH_ERR_CLAIM);
}

static void test_attack_truncated(void **state)
{
	size_t len;
	uint8_t *pkg = pack(BOOT_OS, 2, 2, 64, &len);

	(void)state;
	/* Truncated by one byte: at install and as recorded on flash. */
	attack_staged(pkg, len - 1, (uint32_t)(len - 1), SPH_ERR_TRUNCATED, SPH_ERR_TRUNCATED);
}

static void test_rollback_after_confirmed_update(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct boot_state s;
	size_t len;
	uint8_t *old = pack(BOOT_OS, 1, 1, 64, &len);
	char why[BOOT_REASON_MAX];
	uint32_t v, len_a;

	(void)state;
	install(d, BOOT_OS, 2, 2, 6000);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 2);
	assert_true(r.stage[BOOT_OS].was_trial);
	/* Booted but not confirmed: the counter has not moved. */
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	len_a = s.len[0];
	assert_int_equal(boot_confirm(d), 1);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	assert_int_equal(s.confirmed, 1);
	assert_int_equal(s.trial, BOOT_NO_SLOT);
	assert_int_equal(s.confirmed_svn, 2);
	/* The replaced image is no longer referenced by the record. */
	assert_int_equal(s.len[0], 0);
	/* The old version is refused at install... */
	assert_int_equal(boot_install(d, BOOT_OS, old, len, why, sizeof(why)), SPH_ERR_ROLLBACK);
	/* ... and at boot, where slot A still holds it. */
	stage_raw(d, BOOT_OS, NULL, 0, len_a, 0);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 2);
	assert_int_equal(r.stage[BOOT_OS].slot, 1);
	assert_true(log_has(d, SPH_ERR_ROLLBACK, "OS A refused"));
	/* The counter survives a power cycle. */
	boot_close(d);
	{
		char *p = tu_path(fx.dir, "dev");
		d = dev_open(p);
		free(p);
	}
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 2);
	boot_close(d);
	free(old);
}

static void test_trial_reverts_after_three_boots(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct boot_state s;
	uint32_t v;

	(void)state;
	install(d, BOOT_OS, 2, 2, 6000);
	for (unsigned i = 0; i < BOOT_TRIALS; i++) {
		assert_int_equal(boot_run(d, CHIP_RESET_WATCHDOG, &r), 0);
		assert_booted(&r, 1, 1, 2);
		assert_true(r.stage[BOOT_OS].was_trial);
		assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
		assert_int_equal(s.trials_left, BOOT_TRIALS - 1 - i);
	}
	/* Reopened between boots, as a real power cycle. */
	boot_close(d);
	{
		char *p = tu_path(fx.dir, "dev");
		d = dev_open(p);
		free(p);
	}
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_booted(&r, 1, 1, 1);
	assert_false(r.stage[BOOT_OS].was_trial);
	assert_true(log_has(d, SPH_ERR_STATE, "OS B trial expired"));
	assert_int_equal(boot_confirm(d), 0);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	boot_close(d);
}

static void test_update_every_stage(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;

	(void)state;
	install(d, BOOT_BL, 2, 1, 64);
	install(d, BOOT_SECMON, 2, 3, 64);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 2, 2, 1);
	assert_int_equal(boot_confirm(d), 2);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 2, 2, 1);
	for (unsigned c = 0; c < 2; c++) {
		assert_false(r.stage[c].was_trial);
		assert_int_equal(r.stage[c].slot, 1);
	}
	boot_close(d);
}

/* ---- power loss at every flash operation of an install -------------------------- */

static void test_power_loss_every_op(void **state)
{
	char *p = tu_path(fx.dir, "dev");
	struct boot_device *d;
	struct boot_report r;
	struct chip_faults plan;
	size_t len;
	uint8_t *pkg = pack(BOOT_OS, 2, 2, 6000, &len);
	char why[BOOT_REASON_MAX];
	uint64_t n_ops, before;
	unsigned saw_old = 0, saw_new = 0;
	struct timespec t0, t1;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Count the install's operations on a clean run. */
	clone_template(p);
	d = dev_open(p);
	before = chip_flash_ops(chip_flash(boot_chip(d)));
	assert_int_equal(boot_install(d, BOOT_OS, pkg, len, why, sizeof(why)), 0);
	n_ops = chip_flash_ops(chip_flash(boot_chip(d))) - before;
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 2);
	boot_close(d);
	assert_true(n_ops >= 4);
	/* Every operation, each torn three ways (the seed picks how much landed). */
	for (uint64_t i = 0; i < 3 * n_ops; i++) {
		uint64_t n = i % n_ops + 1;
		clone_template(p);
		d = dev_open(p);
		memset(&plan, 0, sizeof(plan));
		plan.powercut = n;
		plan.seed = i;
		plan.has_seed = true;
		assert_int_equal(chip_faults_set(chip_flash(boot_chip(d)), &plan), 0);
		assert_int_equal(boot_install(d, BOOT_OS, pkg, len, why, sizeof(why)),
		                 SPH_ERR_POWER_LOSS);
		/* Power comes back: the boot must run a whole verified OS. */
		assert_int_equal(boot_run(d, CHIP_RESET_POWER_LOSS, &r), 0);
		assert_int_equal(r.result, BOOT_RESULT_BOOTED);
		if (strcmp(r.stage[BOOT_OS].measured.version, "2.0.0") == 0) {
			assert_booted(&r, 1, 1, 2);
			saw_new++;
		} else {
			assert_booted(&r, 1, 1, 1);
			saw_old++;
		}
		/* And after a full reopen, again. */
		boot_close(d);
		d = dev_open(p);
		assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
		assert_int_equal(r.result, BOOT_RESULT_BOOTED);
		boot_close(d);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("power loss (install): N=%llu operations x 3 tears, %u booted old, %u booted "
	              "new, %.2f s\n",
	              (unsigned long long)n_ops, saw_old, saw_new,
	              (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	assert_true(saw_old > 0);
	free(pkg);
	free(p);
}

/* Power lost while the boot counts a trial down, and while confirming. */
static void test_power_loss_boot_and_confirm(void **state)
{
	char *p = tu_path(fx.dir, "dev");
	struct boot_device *d;
	struct boot_report r;
	struct boot_state s;
	struct chip_faults plan;
	uint64_t n_boot, n_confirm, before;
	uint32_t v;

	(void)state;
	/* Clean runs count the operations. */
	clone_template(p);
	d = dev_open(p);
	install(d, BOOT_OS, 2, 2, 6000);
	before = chip_flash_ops(chip_flash(boot_chip(d)));
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	n_boot = chip_flash_ops(chip_flash(boot_chip(d))) - before;
	before = chip_flash_ops(chip_flash(boot_chip(d)));
	assert_int_equal(boot_confirm(d), 1);
	n_confirm = chip_flash_ops(chip_flash(boot_chip(d))) - before;
	boot_close(d);
	assert_true(n_boot >= 2 && n_confirm >= 2);
	for (uint64_t i = 0; i < 3 * n_boot; i++) {
		clone_template(p);
		d = dev_open(p);
		install(d, BOOT_OS, 2, 2, 6000);
		memset(&plan, 0, sizeof(plan));
		plan.powercut = i % n_boot + 1;
		plan.seed = i;
		assert_int_equal(chip_faults_set(chip_flash(boot_chip(d)), &plan), 0);
		assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_POWER_LOSS);
		assert_int_not_equal(r.result, BOOT_RESULT_BOOTED);
		assert_int_equal(boot_run(d, CHIP_RESET_POWER_LOSS, &r), 0);
		if (strcmp(r.stage[BOOT_OS].measured.version, "2.0.0") == 0)
			assert_booted(&r, 1, 1, 2);
		else
			assert_booted(&r, 1, 1, 1);
		boot_close(d);
	}
	for (uint64_t i = 0; i < 3 * n_confirm; i++) {
		clone_template(p);
		d = dev_open(p);
		install(d, BOOT_OS, 2, 2, 6000);
		assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
		memset(&plan, 0, sizeof(plan));
		plan.powercut = i % n_confirm + 1;
		plan.seed = i;
		assert_int_equal(chip_faults_set(chip_flash(boot_chip(d)), &plan), 0);
		assert_int_equal(boot_confirm(d), SPH_ERR_POWER_LOSS);
		/* The counter never ran ahead of the confirmed image. */
		assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
		assert_int_equal(v, 1);
		assert_int_equal(boot_run(d, CHIP_RESET_POWER_LOSS, &r), 0);
		assert_booted(&r, 1, 1, 2); /* confirmed, or still a trial */
		assert_int_equal(boot_confirm(d) >= 0, 1);
		assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
		assert_int_equal(s.confirmed, 1);
		assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
		assert_int_equal(v, 2);
		boot_close(d);
	}
	print_message("power loss (boot): N=%llu, (confirm): N=%llu, each torn 3 ways\n",
	              (unsigned long long)n_boot, (unsigned long long)n_confirm);
	free(p);
}

/* ---- install and confirm under attack (review findings) ------------------ */

static struct boot_device *upd_reopen(struct boot_device *d)
{
	char *p = tu_path(fx.dir, "dev");
	boot_close(d);
	d = dev_open(p);
	free(p);
	return d;
}

/* A power cut anywhere in an install over a booted, unconfirmed trial never
 * lets the new bytes inherit the old trial: nothing unbooted gets confirmed,
 * and the device boots the confirmed image or the new one as a fresh trial. */
static void test_install_over_trial_power_cut(void **state)
{
	size_t len;
	uint8_t *pkg = pack(BOOT_OS, 3, 3, 6000, &len);
	bool completed = false;

	(void)state;
	for (uint64_t n = 1; n < 64 && !completed; n++) {
		struct boot_device *d = good_device();
		struct boot_report r;
		struct chip_faults plan;
		char why[BOOT_REASON_MAX];
		uint32_t v;
		int rc, conf;

		install(d, BOOT_OS, 2, 2, 6000);
		assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
		assert_int_equal(r.stage[BOOT_OS].measured.security_version, 2);
		d = upd_reopen(d);
		memset(&plan, 0, sizeof(plan));
		plan.powercut = n;
		plan.seed = n;
		plan.has_seed = true;
		assert_int_equal(chip_faults_set(chip_flash(boot_chip(d)), &plan), 0);
		rc = boot_install(d, BOOT_OS, pkg, len, why, sizeof(why));
		if (rc == 0) {
			completed = true; /* n is past the last operation */
			boot_close(d);
			break;
		}
		assert_int_equal(rc, SPH_ERR_POWER_LOSS);
		d = upd_reopen(d);
		/* Only an image that booted may be confirmed: v2 (one trial boot), if
		 * the cut left its record and bytes intact; never v3. */
		conf = boot_confirm(d);
		assert_true(conf == 0 || conf == 1);
		assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
		assert_int_equal(v, conf == 1 ? 2u : 1u);
		assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
		if (conf == 1)
			assert_int_equal(r.stage[BOOT_OS].measured.security_version, 2);
		else if (r.stage[BOOT_OS].measured.security_version == 3)
			assert_true(r.stage[BOOT_OS].was_trial); /* v3 only as a fresh trial */
		else
			assert_int_not_equal(r.stage[BOOT_OS].measured.security_version, 3);
		boot_close(d);
	}
	assert_true(completed);
	free(pkg);
}

/* A trial that used up its three boots is never confirmed by a later process. */
static void test_expired_trial_not_confirmed(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	uint32_t v;

	(void)state;
	install(d, BOOT_OS, 2, 2, 6000);
	for (unsigned i = 0; i < BOOT_TRIALS; i++)
		assert_int_equal(boot_run(d, CHIP_RESET_WATCHDOG, &r), 0);
	d = upd_reopen(d);
	assert_int_equal(boot_confirm(d), 0);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1);
	boot_close(d);
}

/* A boot that ended in RECOVERY confirms nothing, even a stage that booted. */
static void test_no_confirm_after_recovery(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct chip_faults plan;
	struct chip_flash_geometry g;
	uint32_t v;

	(void)state;
	install(d, BOOT_BL, 2, 2, 64);
	assert_int_equal(chip_flash_geometry(chip_flash(boot_chip(d)), &g), 0);
	memset(&plan, 0, sizeof(plan));
	tamper_slot(d, BOOT_SECMON, 0, 200, 3);
	assert_int_not_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_true(r.stage[BOOT_BL].booted);
	assert_int_equal(boot_confirm(d), 0);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_BL, &v), 0);
	assert_int_equal(v, 1);
	boot_close(d);
}

/* The counter follows the confirmed image's signed manifest, never a number
 * in the (unkeyed) state record: a forged record cannot burn the fuses. */
static void test_forged_record_svn_ignored(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct boot_state s;
	uint32_t v;

	(void)state;
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	s.confirmed_svn = 255;
	assert_int_equal(boot_state_write(d, BOOT_OS, &s), 0);
	assert_int_equal(boot_confirm(d), 0);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_int_equal(r.result, BOOT_RESULT_BOOTED);
	boot_close(d);
}

/* ---- boot-chain review fixes (A-D) ---------------------------------------------- */

static struct boot_device *bfix_reopen(struct boot_device *d)
{
	char *p = tu_path(fx.dir, "dev");

	boot_close(d);
	d = dev_open(p);
	free(p);
	return d;
}

/* Overwrites len bytes of the device's OTP file at off, behind the RoT's back. */
static void bfix_otp_poke(struct boot_device *d, long off, const void *data, size_t len)
{
	FILE *fp = fopen(chip_otp_path(boot_chip(d)), "r+b");

	assert_non_null(fp);
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* A: another root's hash written over the fused one while the device runs
 * (OTP offset 48), and images signed by that root installed: the RoT's tamper
 * check refuses the hash, so nothing of that root installs or boots. */
static void test_root_hash_swap_refused(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	uint8_t oh[IMG_DIGEST_LEN];
	char why[BOOT_REASON_MAX];

	(void)state;
	assert_int_equal(img_root_hash(fx.oroot.cert, oh), 0);
	bfix_otp_poke(d, 48, oh, sizeof(oh));
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack_as(c, c + 1, 7, 1, 64, &fx.osigner, fx.oroot.cert, NULL, &len);
		assert_int_not_equal(boot_install(d, c, pkg, len, why, sizeof(why)), 0);
		free(pkg);
	}
	assert_int_not_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_int_not_equal(r.result, BOOT_RESULT_BOOTED);
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++)
		assert_false(r.stage[c].booted);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	assert_true(log_has(d, SPH_ERR_STATE, "root key hash"));
	/* The refused boot restarted the RoT over the rewritten file: that RoT's
	 * hash is still not the one latched at open, so installs and boots stay
	 * refused. */
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		size_t len;
		uint8_t *pkg = pack_as(c, c + 1, 7, 1, 64, &fx.osigner, fx.oroot.cert, NULL, &len);
		assert_int_not_equal(boot_install(d, c, pkg, len, why, sizeof(why)), 0);
		free(pkg);
	}
	assert_int_not_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_int_not_equal(r.result, BOOT_RESULT_BOOTED);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	/* The right hash back, and a power cycle: the device boots v1 again. */
	bfix_otp_poke(d, 48, fx.root_hash, sizeof(fx.root_hash));
	d = bfix_reopen(d);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	boot_close(d);
}

/* B: confirm's record landed but power died before the counter advance: the
 * next boot of the confirmed image catches the counter up, so the old image
 * can no longer be made to boot by flipping the record back. */
static void test_counter_lag_healed(void **state)
{
	struct boot_device *d = good_device();
	struct boot_report r;
	struct boot_state s;
	uint32_t v;

	(void)state;
	install(d, BOOT_OS, 2, 2, 6000);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_true(r.stage[BOOT_OS].was_trial);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1); /* a trial never moves the counter */
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	s.confirmed = s.trial;
	s.trial = BOOT_NO_SLOT;
	s.trials_left = 0;
	s.confirmed_svn = 2;
	assert_int_equal(boot_state_write(d, BOOT_OS, &s), 0);
	d = bfix_reopen(d);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_booted(&r, 1, 1, 2);
	assert_false(r.stage[BOOT_OS].was_trial);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 2);
	assert_true(log_has(d, 0, "OS counter 1 -> 2"));
	for (unsigned c = 0; c < BOOT_OS; c++) {
		assert_int_equal(rot_counter_read(boot_rot(d), c, &v), 0);
		assert_int_equal(v, 1);
	}
	/* The record flipped back to the old image: refused as a rollback. */
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	s.confirmed = 0;
	s.confirmed_svn = 1;
	assert_int_equal(boot_state_write(d, BOOT_OS, &s), 0);
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), SPH_ERR_STATE);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_OS].booted);
	assert_int_equal(r.stage[BOOT_OS].status, SPH_ERR_ROLLBACK);
	assert_int_equal(rot_counter_read(boot_rot(d), BOOT_OS, &v), 0);
	assert_int_equal(v, 2);
	boot_close(d);
}

/* C: two valid records of equal sequence. The same record twice is that state,
 * and the next write goes above it and lands; different content fails closed. */
static void test_state_equal_sequences(void **state)
{
	struct boot_device *d = good_device();
	struct chip_flash *f = chip_flash(boot_chip(d));
	struct chip_flash_geometry g;
	struct boot_report r;
	struct boot_state s, t;
	uint8_t rec[BOOT_RECORD_LEN];
	char why[BOOT_REASON_MAX];
	unsigned cur;
	uint32_t seq;
	size_t len;
	uint8_t *pkg = pack(BOOT_OS, 2, 2, 6000, &len);

	(void)state;
	assert_int_equal(chip_flash_geometry(f, &g), 0);
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	seq = s.seq;
	cur = seq % 2;
	assert_int_equal(chip_flash_read(f, boot_record_offset(&g, BOOT_OS, cur), rec, sizeof(rec)),
	                 0);
	assert_int_equal(chip_flash_erase(f, (uint32_t)(boot_record_offset(&g, BOOT_OS, 1 - cur) /
	                                                g.block_size)),
	                 0);
	assert_int_equal(
	        chip_flash_program(f, boot_record_offset(&g, BOOT_OS, 1 - cur), rec, sizeof(rec)),
	        0);
	/* Identical: that state; it boots, and an install's record lands above it. */
	assert_int_equal(boot_state_read(d, BOOT_OS, &t), 0);
	assert_memory_equal(&t, &s, sizeof(s));
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_booted(&r, 1, 1, 1);
	assert_int_equal(boot_install(d, BOOT_OS, pkg, len, why, sizeof(why)), 0);
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	assert_int_equal(s.seq, seq + 1);
	assert_int_equal(s.trial, 1);
	d = bfix_reopen(d);
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), 0);
	assert_booted(&r, 1, 1, 2);
	assert_true(r.stage[BOOT_OS].was_trial);
	/* Equal sequences, different content: corruption, fail closed. */
	f = chip_flash(boot_chip(d));
	assert_int_equal(boot_state_read(d, BOOT_OS, &s), 0);
	t = s;
	t.trials_left = (uint8_t)(s.trials_left == 1 ? 2 : 1);
	for (unsigned b = 0; b < 2; b++) {
		uint64_t off = boot_record_offset(&g, BOOT_OS, b);
		assert_int_equal(boot_state_encode(b == 0 ? &s : &t, rec), 0);
		assert_int_equal(chip_flash_erase(f, (uint32_t)(off / g.block_size)), 0);
		assert_int_equal(chip_flash_program(f, off, rec, sizeof(rec)), 0);
	}
	assert_int_equal(boot_state_read(d, BOOT_OS, &t), SPH_ERR_MALFORMED);
	assert_int_equal(t.seq, 0);
	assert_int_equal(boot_run(d, CHIP_RESET_POWER_ON, &r), SPH_ERR_MALFORMED);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_OS].booted);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	assert_int_not_equal(boot_install(d, BOOT_OS, pkg, len, why, sizeof(why)), 0);
	assert_int_equal(boot_state_write(d, BOOT_OS, &s), SPH_ERR_MALFORMED);
	free(pkg);
	boot_close(d);
}

/* D: a boot that fails after the chip reset still locks the firewall: the RoT
 * cannot restart (OTP header damaged), and no root hash fused. */
static void test_firewall_locked_on_failure(void **state)
{
	struct boot_device *d = good_device();
	struct chip_res res = chip_res_region(CHIP_RES_FLASH, 0, 4096);
	struct boot_report r;
	uint8_t bad = 'X';

	(void)state;
	bfix_otp_poke(d, 0, &bad, 1);
	assert_int_not_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_int_not_equal(r.result, BOOT_RESULT_BOOTED);
	assert_true(chip_fw_locked(chip_fw(boot_chip(d))));
	assert_int_equal(chip_fw_grant(chip_fw(boot_chip(d)), CHIP_COMP_OS, &res, CHIP_FW_W),
	                 SPH_ERR_STATE);
	boot_close(d);
}

/* ---- the store under the slots ------------------------------------------------ */

/* Data blocks of the store: after the state records and the superblock areas
 * (§9.1). */
static uint32_t first_data_block(struct boot_device *d)
{
	struct secmon_stats st;
	assert_int_equal(boot_storage_stats(d, &st), 0);
	return BOOT_STATE_BLOCKS + 2u * st.params.meta_blocks;
}

/* A bit flip in any one data block, one block at a time, is rebuilt: the
 * health check repairs it, nothing is ever unrecoverable, and the device
 * still boots every confirmed image. */
static void test_store_heals_every_block(void **state)
{
	struct boot_device *d = good_device();
	struct chip_flash *f = chip_flash(boot_chip(d));
	struct chip_flash_geometry g;
	struct secmon_scrub_report rep;
	struct boot_report r;
	uint64_t repaired = 0;

	(void)state;
	assert_int_equal(chip_flash_geometry(f, &g), 0);
	assert_int_equal(boot_storage_check(d, &rep), 0);
	assert_int_equal(rep.objects, 3);
	assert_int_equal(rep.repaired, 0);
	for (uint32_t b = first_data_block(d); b < g.block_count; b++) {
		struct chip_faults plan = {0};
		plan.nflips = 1;
		plan.flips[0].offset = (uint64_t)b * g.block_size + 100 + b % 64;
		plan.flips[0].bit = (uint8_t)(b % 8);
		assert_int_equal(chip_faults_set(f, &plan), 0);
		assert_int_equal(boot_storage_check(d, &rep), 0);
		assert_int_equal(rep.unrecoverable, 0);
		assert_true(rep.repaired <= 1);
		repaired += rep.repaired;
	}
	assert_true(repaired >= 3); /* every object had shards to damage */
	assert_int_equal(boot_storage_check(d, &rep), 0);
	assert_int_equal(rep.repaired, 0);
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), 0);
	assert_booted(&r, 1, 1, 1);
	boot_close(d);
}

/* Damage beyond what the code can rebuild: the bootloader's slot is refused
 * as corrupt (naming the object), the device stays in RECOVERY, and no stage
 * ever runs altered bytes. */
static void test_store_beyond_repair_is_recovery(void **state)
{
	struct boot_device *d = good_device();
	struct chip_flash *f = chip_flash(boot_chip(d));
	struct chip_flash_geometry g;
	struct secmon_scrub_report rep;
	struct boot_report r;
	uint32_t b;

	(void)state;
	assert_int_equal(chip_flash_geometry(f, &g), 0);
	b = first_data_block(d);
	while (b < g.block_count) {
		struct chip_faults plan = {0};
		while (b < g.block_count && plan.nlost < CHIP_FAULTS_MAX_LOST)
			plan.lost[plan.nlost++] = b++;
		assert_int_equal(chip_faults_set(f, &plan), 0);
	}
	assert_int_equal(boot_run(d, CHIP_RESET_SOFTWARE, &r), SPH_ERR_STATE);
	assert_int_equal(r.result, BOOT_RESULT_RECOVERY);
	assert_false(r.stage[BOOT_BL].booted);
	assert_int_equal(r.stage[BOOT_BL].status, SPH_ERR_CORRUPT);
	assert_non_null(strstr(r.stage[BOOT_BL].reason, "boot/bl/a"));
	assert_int_equal(boot_storage_check(d, &rep), SPH_ERR_CORRUPT);
	assert_int_equal(rep.unrecoverable > 0, 1);
	assert_true(strncmp(rep.first_bad, "boot/", 5) == 0);
	boot_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_state_record),
	        cmocka_unit_test(test_layout),
	        cmocka_unit_test_setup_teardown(test_boot_verified, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_firewall_after_boot, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recovery_when_empty, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recovery_corrupt_bootloader, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recovery_without_root_hash, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attack_bit_flips, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attack_unknown_signer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attack_tenant_signer_for_os, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attack_wrong_component_type, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attack_truncated, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rollback_after_confirmed_update, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_trial_reverts_after_three_boots, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_update_every_stage, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_power_loss_every_op, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_power_loss_boot_and_confirm, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_install_over_trial_power_cut, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_expired_trial_not_confirmed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_confirm_after_recovery, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_forged_record_svn_ignored, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_root_hash_swap_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_counter_lag_healed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_state_equal_sequences, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_firewall_locked_on_failure, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_store_heals_every_block, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_store_beyond_repair_is_recovery, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
