/*
 * boot: a device (chip + RoT), provisioning, the firewall set-up and the
 * power-fail-safe slot-state writes (docs/formats.md §7.2).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	uint64_t state_end = boot_record_offset(&d->geo, BOOT_COMPONENTS, 0);
	uint64_t end = boot_slot_offset(&d->geo, BOOT_COMPONENTS, 0);
	struct chip_res all = chip_res_region(CHIP_RES_FLASH, 0, end);
	struct chip_res state = chip_res_region(CHIP_RES_FLASH, 0, state_end);
	struct chip_res os = chip_res_region(CHIP_RES_FLASH, boot_slot_offset(&d->geo, BOOT_OS, 0),
	                                     boot_slot_offset(&d->geo, BOOT_OS + 1, 0));
	int rc;

	rc = chip_fw_grant(fw, CHIP_COMP_BOOTLOADER, &all, CHIP_FW_R);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_BOOTLOADER, &state, CHIP_FW_W);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_SECMON, &all, CHIP_FW_R | CHIP_FW_W);
	if (rc == 0)
		rc = chip_fw_grant(fw, CHIP_COMP_OS, &os, CHIP_FW_R);
	return rc;
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
		rc = boot_layout_check(&d->geo);
	if (rc == 0)
		rc = rot_open_inproc(chip_otp_path(d->chip), &d->rot);
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
	return rot_otp_read_root_hash(chip_otp_path(d->chip), hash);
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
 * is UINT32_MAX) and picks the valid one with the higher sequence. */
static int boot_state_load(struct boot_device *d, uint32_t comp_as, unsigned comp,
                           struct boot_state *s)
{
	uint8_t rec[BOOT_RECORD_LEN];
	struct boot_state cand;
	int rc = 0;

	boot_state_empty(s);
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
		if (cand.seq == s->seq) {
			boot_state_empty(s); /* equal sequences: neither is trusted */
			continue;
		}
		if (cand.seq > s->seq)
			*s = cand;
	}
	rc = 0;
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
	return boot_state_load(d, UINT32_MAX, comp, s);
}

int boot_state_get(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s)
{
	return boot_state_load(d, comp_as, comp, s);
}

int boot_state_put(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s)
{
	struct boot_state cur;
	uint8_t rec[BOOT_RECORD_LEN];
	uint64_t off;
	unsigned which;
	int rc;

	rc = boot_state_load(d, comp_as, comp, &cur);
	if (rc != 0)
		return rc;
	if (cur.seq >= BOOT_SEQ_MAX)
		return SPH_ERR_EXHAUSTED;
	s->seq = cur.seq + 1;
	s->component = (uint8_t)comp;
	rc = boot_state_encode(s, rec);
	if (rc != 0)
		return rc;
	which = s->seq % 2;
	off = boot_record_offset(&d->geo, comp, which);
	rc = chip_erase(d->chip, comp_as, (uint32_t)(off / d->geo.block_size));
	if (rc == 0)
		rc = chip_program(d->chip, comp_as, off, rec, sizeof(rec));
	return rc;
}

int boot_state_write(struct boot_device *d, unsigned comp, struct boot_state *s)
{
	if (!d || !s || comp >= BOOT_COMPONENTS)
		return SPH_ERR_INVALID_ARG;
	return boot_state_put(d, CHIP_COMP_SECMON, comp, s);
}
