/*
 * boot: a device (chip + RoT), provisioning, the firewall set-up and the
 * power-fail-safe slot-state writes (docs/formats.md §7.2).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "boot_internal.h"
#include "common/common.h"

void boot_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!why || cap == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* Formats the store over its region, as the security monitor (the factory
 * grants it the region on the fresh chip's firewall for this). */
static int boot_format_store(struct chip *c, const struct chip_flash_geometry *g)
{
	struct secmon_region r;
	struct chip_res res;
	int rc = boot_store_region(g, &r);

	if (rc != 0)
		return rc;
	res = chip_res_region(CHIP_RES_FLASH, (uint64_t)r.first_block * g->block_size,
	                      (uint64_t)g->block_count * g->block_size);
	rc = chip_fw_grant(chip_fw(c), CHIP_COMP_SECMON, &res, CHIP_FW_R | CHIP_FW_W);
	if (rc == 0)
		rc = secmon_format(c, &r, NULL);
	chip_fw_reset(chip_fw(c));
	return rc == SPH_ERR_NO_SPACE ? SPH_ERR_UNSUPPORTED : rc;
}

int boot_store(struct boot_device *d, uint32_t comp_as, struct secmon **sm)
{
	struct secmon **slot;
	int rc;

	if (sm)
		*sm = NULL;
	if (!d || !sm)
		return SPH_ERR_INVALID_ARG;
	if (comp_as == CHIP_COMP_SECMON)
		slot = &d->store_rw;
	else if (comp_as == CHIP_COMP_BOOTLOADER)
		slot = &d->store_bl;
	else
		return SPH_ERR_INVALID_ARG;
	if (!*slot) {
		rc = secmon_mount(d->chip, comp_as, &d->region, slot);
		if (rc != 0)
			return rc;
	}
	*sm = *slot;
	return 0;
}

void boot_store_drop(struct boot_device *d)
{
	secmon_unmount(d->store_rw);
	secmon_unmount(d->store_bl);
	d->store_rw = NULL;
	d->store_bl = NULL;
}

int boot_storage_check(struct boot_device *d, struct secmon_scrub_report *rep)
{
	struct secmon *sm;
	int rc;

	if (rep)
		memset(rep, 0, sizeof(*rep));
	if (!d || !rep)
		return SPH_ERR_INVALID_ARG;
	rc = boot_store(d, CHIP_COMP_SECMON, &sm);
	if (rc != 0)
		return rc;
	rc = secmon_scrub(sm, rep);
	if (rc != 0 && rc != SPH_ERR_CORRUPT)
		boot_store_drop(d); /* a write failed half-way: remount from flash */
	return rc;
}

int boot_storage_stats(struct boot_device *d, struct secmon_stats *st)
{
	struct secmon *sm;
	int rc;

	if (st)
		memset(st, 0, sizeof(*st));
	if (!d || !st)
		return SPH_ERR_INVALID_ARG;
	rc = boot_store(d, CHIP_COMP_SECMON, &sm);
	return rc == 0 ? secmon_stats(sm, st) : rc;
}

int boot_provision(const char *dir, const struct chip_flash_geometry *g,
                   enum rot_lifecycle lifecycle, const uint8_t *secret, const uint8_t root_hash[32])
{
	struct chip_config cfg = {.create = true};
	struct chip_flash_geometry geo;
	struct chip *c = NULL;
	struct stat st;
	int rc = SPH_ERR_INVALID_ARG;

	if (!dir || !root_hash)
		goto out;
	rc = SPH_ERR_STATE;
	if (stat(dir, &st) == 0)
		goto out; /* never provision over an existing device */
	if (g)
		cfg.geometry = *g;
	rc = chip_open(dir, &cfg, &c);
	if (rc != 0)
		goto out;
	rc = chip_flash_geometry(chip_flash(c), &geo);
	if (rc == 0)
		rc = boot_layout_check(&geo);
	if (rc == 0)
		rc = boot_format_store(c, &geo);
	if (rc == 0)
		rc = rot_otp_fuse(chip_otp_path(c), secret, lifecycle);
	if (rc == 0)
		rc = rot_otp_fuse_root_hash(chip_otp_path(c), root_hash);
	if (rc == 0)
		sph_log(SPH_LOG_INFO, "boot", "provisioned", "blocks=%u block_size=%u",
		        geo.block_count, geo.block_size);
out:
	chip_close(c);
	return rc;
}

int boot_fw_setup(struct boot_device *d)
{
	struct chip_fw *fw = chip_fw(d->chip);
	uint64_t bs = d->geo.block_size;
	struct chip_res state = chip_res_region(CHIP_RES_FLASH, 0, d->region.first_block * bs);
	struct chip_res store = chip_res_region(CHIP_RES_FLASH, d->region.first_block * bs,
	                                        (uint64_t)d->geo.block_count * bs);
	int rc;

	/* BL reads the store and counts trials in the records; the security
	 * monitor owns all of it. Nothing else touches flash: the OS and apps ask
	 * the security monitor. */
	rc = chip_fw_grant(fw, CHIP_COMP_BOOTLOADER, &state, CHIP_FW_R | CHIP_FW_W);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_BOOTLOADER, &store, CHIP_FW_R);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_SECMON, &state, CHIP_FW_R | CHIP_FW_W);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_SECMON, &store, CHIP_FW_R | CHIP_FW_W);
	if (rc != 0)
		(void)chip_fw_lock(fw); /* a partial table is never left open to grants */
	return rc;
}

/* The RoT on the chip's reset line. */
static int boot_rot_reset(void *rot)
{
	return rot_reset(rot);
}

int boot_open(const char *dir, const struct chip_faults *faults, struct boot_device **out)
{
	struct chip_config cfg = {.faults = faults};
	struct boot_device *d = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!dir || !out)
		goto out;
	rc = SPH_ERR_NOMEM;
	d = calloc(1, sizeof(*d));
	if (!d)
		goto out;
	rc = chip_open(dir, &cfg, &d->chip);
	if (rc != 0)
		goto out;
	rc = chip_flash_geometry(chip_flash(d->chip), &d->geo);
	if (rc == 0)
		rc = boot_store_region(&d->geo, &d->region);
	if (rc == 0)
		rc = rot_open_inproc(chip_otp_path(d->chip), &d->rot);
	if (rc == 0)
		rc = chip_on_reset(d->chip, boot_rot_reset, d->rot);
	if (rc == 0) {
		/* Latch the root key hash the RoT read at power-up (none is fine). */
		d->root_rc = rot_root_hash(d->rot, d->root_hash);
		if (d->root_rc != 0 && d->root_rc != SPH_ERR_NOT_FOUND)
			rc = d->root_rc;
	}
	if (rc == 0)
		rc = boot_fw_setup(d);
	if (rc != 0)
		goto out;
	*out = d;
	d = NULL;
out:
	boot_close(d);
	return rc;
}

void boot_close(struct boot_device *d)
{
	if (!d)
		return;
	img_cache_clear(&d->certs);
	boot_store_drop(d);
	rot_close(d->rot);
	chip_close(d->chip);
	free(d);
}

struct chip *boot_chip(struct boot_device *d)
{
	return d ? d->chip : NULL;
}

struct rot *boot_rot(struct boot_device *d)
{
	return d ? d->rot : NULL;
}

int boot_root_hash(struct boot_device *d, uint8_t hash[32])
{
	int rc;

	/* Through the RoT: the hash it latched at start, after its fuse tamper
	 * check (the file may have been rewritten since; then this fails closed),
	 * and the same one the RoT latched when the device opened (a RoT that
	 * boot_run restarted re-read the file). */
	rc = rot_root_hash(d->rot, hash);
	if ((rc == 0 || rc == SPH_ERR_NOT_FOUND) &&
	    (rc != d->root_rc || CRYPTO_memcmp(hash, d->root_hash, sizeof(d->root_hash)) != 0)) {
		sph_log(SPH_LOG_ERROR, "boot", "root_hash_changed",
		        "reason=\"OTP root key hash differs from the one latched at open\"");
		memset(hash, 0, sizeof(d->root_hash));
		rc = SPH_ERR_STATE;
	}
	return rc;
}

int boot_last_report(struct boot_device *d, struct boot_report *rep)
{
	if (!d || !rep)
		return SPH_ERR_INVALID_ARG;
	*rep = d->last;
	return 0;
}

/* The state of a component with no valid record: nothing to boot. */
static void boot_state_empty(struct boot_state *s)
{
	memset(s, 0, sizeof(*s));
	s->confirmed = BOOT_NO_SLOT;
	s->trial = BOOT_NO_SLOT;
}

/* Reads both records of comp as compartment comp_as (raw flash when comp_as
 * is UINT32_MAX) and picks the valid one with the higher sequence; *hi (may
 * be NULL) is the block holding it (BOOT_NO_SLOT: none). Two valid records of
 * equal sequence are that state when identical, else corruption. Returns 0,
 * SPH_ERR_MALFORMED (equal sequences, different content) or a flash status
 * other than SPH_ERR_IO; s is empty and *hi BOOT_NO_SLOT on failure. */
static int boot_state_load(struct boot_device *d, uint32_t comp_as, unsigned comp,
                           struct boot_state *s, unsigned *hi)
{
	uint8_t rec[BOOT_RECORD_LEN], best[BOOT_RECORD_LEN];
	struct boot_state cand;
	unsigned which = BOOT_NO_SLOT;
	int rc = 0;

	boot_state_empty(s);
	if (hi)
		*hi = BOOT_NO_SLOT;
	for (unsigned r = 0; r < 2; r++) {
		uint64_t off = boot_record_offset(&d->geo, comp, r);
		if (comp_as == UINT32_MAX)
			rc = chip_flash_read(chip_flash(d->chip), off, rec, sizeof(rec));
		else
			rc = chip_read(d->chip, comp_as, off, rec, sizeof(rec));
		if (rc == SPH_ERR_IO)
			continue; /* a lost block holds no record */
		if (rc != 0)
			goto out;
		if (boot_state_decode(rec, sizeof(rec), comp, &cand) != 0)
			continue;
		if (which != BOOT_NO_SLOT && cand.seq == s->seq) {
			/* Equal sequences: the same record twice is that state;
			 * two different ones cannot be ordered (fail closed). */
			rc = SPH_ERR_MALFORMED;
			if (memcmp(rec, best, sizeof(rec)) != 0)
				goto out;
			continue;
		}
		if (cand.seq > s->seq) {
			*s = cand;
			which = r;
			memcpy(best, rec, sizeof(rec));
		}
	}
	rc = 0;
	if (hi)
		*hi = which;
out:
	if (rc != 0)
		boot_state_empty(s);
	return rc;
}

int boot_state_read(struct boot_device *d, unsigned comp, struct boot_state *s)
{
	if (s)
		boot_state_empty(s);
	if (!d || !s || comp >= BOOT_COMPONENTS)
		return SPH_ERR_INVALID_ARG;
	return boot_state_load(d, UINT32_MAX, comp, s, NULL);
}

int boot_state_get(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s)
{
	return boot_state_load(d, comp_as, comp, s, NULL);
}

int boot_state_put(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s)
{
	struct boot_state cur;
	uint8_t rec[BOOT_RECORD_LEN], back[BOOT_RECORD_LEN];
	uint64_t off;
	unsigned hi, which;
	int rc;

	rc = boot_state_load(d, comp_as, comp, &cur, &hi);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_EXHAUSTED;
	if (cur.seq >= BOOT_SEQ_MAX)
		goto out;
	/* One above the highest valid sequence of either block, written to the
	 * block that does not hold it. */
	s->seq = cur.seq + 1;
	s->component = (uint8_t)comp;
	rc = boot_state_encode(s, rec);
	if (rc != 0)
		goto out;
	which = hi == BOOT_NO_SLOT ? s->seq % 2 : 1 - hi;
	off = boot_record_offset(&d->geo, comp, which);
	rc = chip_erase(d->chip, comp_as, (uint32_t)(off / d->geo.block_size));
	if (rc == 0)
		rc = chip_program(d->chip, comp_as, off, rec, sizeof(rec));
	if (rc != 0)
		goto out;
	/* Read back: the state now loaded must be the one just written. */
	rc = boot_state_load(d, comp_as, comp, &cur, NULL);
	if (rc == 0)
		rc = cur.seq == s->seq ? boot_state_encode(&cur, back) : SPH_ERR_IO;
	if (rc == 0 && memcmp(back, rec, sizeof(rec)) != 0)
		rc = SPH_ERR_IO;
	if (rc == SPH_ERR_MALFORMED || rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_IO;
out:
	return rc;
}

int boot_state_write(struct boot_device *d, unsigned comp, struct boot_state *s)
{
	if (!d || !s || comp >= BOOT_COMPONENTS)
		return SPH_ERR_INVALID_ARG;
	return boot_state_put(d, CHIP_COMP_SECMON, comp, s);
}
