/*
 * fuzz_secmon: a crafted flash image under the security monitor's store
 * (docs/formats.md §9). Input: one mode byte, then the raw bytes of a small
 * flash (32 blocks of 512 bytes; shorter input is padded with 0xff).
 *  - mode bit 0: the fuzzer re-hashes every superblock slot that has a magic,
 *    so mutated tables reach the table parser instead of stopping at the hash;
 *  - mode bit 1: it also re-seals the CRC of every block that looks like a
 *    shard, so crafted shards reach Reed-Solomon and the SHA-256 check.
 * Then mount (read-write and read-only), stat, list, get every object (system
 * and app), scrub, put and delete must never crash, hang or leak. The same
 * bytes are also given to secmon_table_parse directly. The chip lives in a
 * temporary directory created once per process; each input is pwritten over
 * its flash file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chip/chip.h"
#include "secmon/secmon.h"
#include "secmon/secmon_internal.h"

#define FZ_BS   512u
#define FZ_NB   32u
#define FZ_SIZE (FZ_BS * FZ_NB)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct chip *fz_chip;
static int fz_fd = -1;
static const struct secmon_region fz_region = {0, FZ_NB};

static void fz_init(void)
{
	char tmpl[] = "/tmp/fuzz-secmon-XXXXXX";
	struct chip_config cfg = {.geometry = {FZ_BS, FZ_NB}, .create = true};
	struct chip_res res = chip_res_region(CHIP_RES_FLASH, 0, FZ_SIZE);
	char path[sizeof(tmpl) + 16];

	if (!mkdtemp(tmpl) || chip_open(tmpl, &cfg, &fz_chip) != 0)
		abort();
	if (chip_fw_grant(chip_fw(fz_chip), CHIP_COMP_SECMON, &res, CHIP_FW_R | CHIP_FW_W) != 0 ||
	    chip_fw_grant(chip_fw(fz_chip), CHIP_COMP_OS, &res, CHIP_FW_R) != 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s", tmpl, CHIP_FLASH_FILE);
	fz_fd = open(path, O_RDWR | O_CLOEXEC);
	if (fz_fd < 0)
		abort();
	/* The directory goes away with the process's files; unlink now. */
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s%s", tmpl, CHIP_FLASH_FILE, CHIP_FLASH_META_SUFFIX);
	unlink(path);
	rmdir(tmpl);
}

/* Re-hashes slot j of img if its header has a magic and a plausible size. */
static void fz_rehash(uint8_t *img, uint32_t j)
{
	uint8_t *h = img + (size_t)j * FZ_BS;
	uint32_t meta = secmon_get_le32(h + 40), tlen = secmon_get_le32(h + 12);
	uint8_t *table;
	size_t cap;

	if (memcmp(h, SECMON_SB_MAGIC, SECMON_SB_MAGIC_LEN) != 0 || meta < 2 || (meta & 1) ||
	    meta > FZ_NB / 2)
		return;
	cap = (size_t)(meta / 2) * FZ_BS - SECMON_SB_HDR;
	if (tlen < SECMON_TABLE_MIN || tlen > cap)
		return;
	table = malloc(tlen);
	if (!table)
		abort();
	for (size_t o = 0; o < tlen; o++) {
		size_t so = SECMON_SB_HDR + o;
		table[o] = img[(j + SECMON_SLOTS * (so / FZ_BS)) * FZ_BS + so % FZ_BS];
	}
	if (secmon_sha256(h, SECMON_SB_OFF_HASH, table, tlen, h + SECMON_SB_OFF_HASH) != 0)
		abort();
	free(table);
}

/* Re-seals every block with a shard magic, with its own header's fields. */
static void fz_reseal(uint8_t *img)
{
	struct secmon_geom g;

	if (secmon_geom_init(&g, 0, FZ_NB, FZ_BS, 3, 2, 2) != 0)
		abort();
	for (uint32_t b = 0; b < FZ_NB; b++) {
		uint8_t *blk = img + (size_t)b * FZ_BS;
		if (memcmp(blk, SECMON_SHARD_MAGIC, 4) == 0)
			secmon_shard_seal(&g, blk, blk[4], blk[5], blk[6], secmon_get_le32(blk + 8),
			                  blk + 12);
	}
}

static void fz_exercise(uint32_t comp)
{
	struct secmon *s = NULL;
	struct secmon_stats st;
	struct secmon_scrub_report rep;
	struct secmon_object_info info;
	char why[SECMON_REASON_MAX];

	if (secmon_mount(fz_chip, comp, &fz_region, &s) != 0)
		return;
	(void)secmon_stats(s, &st);
	for (size_t i = 0; secmon_object_at(s, i, &info) == 0; i++) {
		uint8_t *d = NULL;
		size_t len = 0;
		(void)secmon_stat(s, info.name, &info);
		if (secmon_get(s, info.name, &d, &len, why, sizeof(why)) == 0 && len != info.len)
			abort();
		free(d);
	}
	for (uint32_t i = 0; i < s->st.t.nobj; i++) {
		const struct secmon_entry *e = &s->st.t.obj[i];
		uint8_t *d = NULL;
		size_t len = 0;
		char key[SECMON_NAME_MAX + 1];
		uint8_t app[SECMON_APP_ID_LEN];
		if (e->ns != SECMON_NS_APP)
			continue;
		memcpy(key, e->name, sizeof(key));
		memcpy(app, e->app, sizeof(app));
		(void)secmon_app_get(s, app, key, &d, &len, why, sizeof(why));
		free(d);
	}
	(void)secmon_scrub(s, &rep);
	if (secmon_put(s, "fuzz", "x", 1) == 0 && secmon_delete(s, "fuzz") != 0)
		abort();
	secmon_unmount(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[FZ_SIZE];
	struct secmon_geom g;
	struct secmon_table t;
	uint8_t mode;
	size_t n;

	if (!fz_chip)
		fz_init();
	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	/* The table parser alone, on the same bytes. */
	if (secmon_geom_init(&g, 0, FZ_NB, FZ_BS, 3, 2, 2) != 0)
		abort();
	if (secmon_table_parse(data, size, &g, &t) == 0)
		secmon_table_free(&t);

	n = size < FZ_SIZE ? size : FZ_SIZE;
	memcpy(img, data, n);
	memset(img + n, 0xff, FZ_SIZE - n);
	if (mode & 2)
		fz_reseal(img);
	if (mode & 1) {
		for (uint32_t j = 0; j < SECMON_SLOTS; j++)
			fz_rehash(img, j);
	}
	if (pwrite(fz_fd, img, FZ_SIZE, 0) != (ssize_t)FZ_SIZE)
		abort();
	fz_exercise(CHIP_COMP_OS);
	fz_exercise(CHIP_COMP_SECMON);
	return 0;
}
