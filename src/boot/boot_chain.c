/*
 * boot: the ROM -> bootloader -> security monitor -> OS chain (docs/formats.md
 * §7.3). Every stage is read through the firewall, verified against the
 * fused root hash, checked against its anti-rollback counter and measured
 * into the RoT before the next one runs; nothing unverified is ever used.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "boot_internal.h"
#include "common/common.h"
#include "image/image.h"

int boot_slot_try(struct boot_device *d, uint32_t comp_as, unsigned comp, unsigned slot,
                  uint32_t len, const uint8_t root_hash[32], struct eat_component *m, char *why,
                  size_t why_cap)
{
	struct img_trust trust = {
	        .root_hash = root_hash, .time_policy = IMG_TIME_NONE, .cache = &d->certs};
	struct img_package pkg;
	struct eat_component c;
	struct secmon *sm = NULL;
	char name[16], store_why[SECMON_REASON_MAX];
	size_t got = 0;
	uint8_t *buf = NULL;
	uint32_t counter = 0;
	int rc;

	if (m)
		memset(m, 0, sizeof(*m));
	boot_why(why, why_cap, "%s", "");
	rc = SPH_ERR_NOT_FOUND;
	if (len == 0) {
		boot_why(why, why_cap, "empty slot");
		goto out;
	}
	rc = SPH_ERR_TOO_LARGE;
	if (len > BOOT_SLOT_SIZE) {
		boot_why(why, why_cap, "longer than a slot");
		goto out;
	}
	rc = boot_slot_name(comp, slot, name, sizeof(name));
	if (rc == 0)
		rc = boot_store(d, comp_as, &sm);
	if (rc != 0) {
		boot_why(why, why_cap, "store: %s", sph_strerror(rc));
		goto out;
	}
	/* The store verifies every shard and the object's SHA-256, and rebuilds
	 * what it can: a damaged slot is SPH_ERR_CORRUPT, never altered bytes. */
	rc = secmon_get(sm, name, &buf, &got, store_why, sizeof(store_why));
	if (rc != 0) {
		boot_why(why, why_cap, "slot %s: %s", name,
		         rc == SPH_ERR_CORRUPT ? store_why : sph_strerror(rc));
		goto out;
	}
	rc = SPH_ERR_MALFORMED;
	if (got != len) {
		boot_why(why, why_cap, "slot %s holds %zu bytes, its record says %u", name, got,
		         (unsigned)len);
		goto out;
	}
	rc = img_verify(buf, len, &trust, &pkg, why, why_cap);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_CLAIM;
	if (pkg.manifest.type != comp + 1) {
		boot_why(why, why_cap, "a %s image in the %s slot",
		         img_type_name(pkg.manifest.type) ? img_type_name(pkg.manifest.type) : "?",
		         boot_comp_name(comp));
		goto out;
	}
	rc = rot_counter_read(d->rot, comp, &counter);
	if (rc != 0) {
		boot_why(why, why_cap, "anti-rollback counter: %s", sph_strerror(rc));
		goto out;
	}
	rc = SPH_ERR_ROLLBACK;
	if (pkg.manifest.security_version < counter) {
		boot_why(why, why_cap, "security version %u below the counter %u",
		         (unsigned)pkg.manifest.security_version, (unsigned)counter);
		goto out;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.type, sizeof(c.type), "%s", boot_comp_name(comp));
	memcpy(c.component_id, pkg.manifest.component_id, sizeof(c.component_id));
	snprintf(c.version, sizeof(c.version), "%s", pkg.manifest.version);
	c.security_version = pkg.manifest.security_version;
	memcpy(c.digest, pkg.manifest.payload_sha256, sizeof(c.digest));
	memcpy(c.signer_id, pkg.signer_id, sizeof(c.signer_id));
	if (m)
		*m = c;
	rc = 0;
out:
	free(buf);
	return rc;
}

int boot_slot_check(struct boot_device *d, unsigned comp, unsigned slot, uint32_t len,
                    struct eat_component *m, char *why, size_t why_cap)
{
	uint8_t hash[32];
	int rc;

	if (m)
		memset(m, 0, sizeof(*m));
	if (!d || comp >= BOOT_COMPONENTS || slot >= BOOT_SLOTS)
		return SPH_ERR_INVALID_ARG;
	rc = boot_root_hash(d, hash);
	if (rc != 0) {
		boot_why(why, why_cap, "no platform-root key hash fused");
		return rc;
	}
	return boot_slot_try(d, CHIP_COMP_SECMON, comp, slot, len, hash, m, why, why_cap);
}

/* Logs into the chip's boot log (best effort: a full log drops the entry). */
static void boot_log(struct boot_device *d, int32_t status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void boot_log(struct boot_device *d, int32_t status, const char *fmt, ...)
{
	char ev[CHIP_BOOTLOG_EVENT_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(ev, sizeof(ev), fmt, ap);
	va_end(ap);
	for (char *p = ev; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	(void)chip_bootlog_add(d->chip, CHIP_COMP_BOOTLOADER, status, ev);
	sph_log(status == 0 ? SPH_LOG_INFO : SPH_LOG_WARN, "boot", "stage", "what=\"%s\" status=%d",
	        ev, status);
}

/* Raises the anti-rollback counter of comp to svn when it lags (never lowers
 * it). Returns 0 or a RoT status. */
static int boot_counter_catch_up(struct boot_device *d, unsigned comp, uint32_t svn)
{
	uint32_t counter = 0;
	int rc;

	rc = rot_counter_read(d->rot, comp, &counter);
	if (rc != 0 || svn <= counter)
		goto out;
	rc = rot_counter_advance(d->rot, comp, svn);
	if (rc == 0)
		boot_log(d, 0, "%s counter %u -> %u (confirmed svn)", boot_comp_name(comp),
		         (unsigned)counter, (unsigned)svn);
out:
	return rc;
}

/* Boots one component: picks and tries its slots. Returns 0 (booted and
 * measured), SPH_ERR_STATE (no valid image) or a fatal status (flash, RoT). */
static int boot_stage_run(struct boot_device *d, unsigned comp, const uint8_t root_hash[32],
                          struct boot_stage *st)
{
	struct boot_state s, upd;
	uint8_t order[2];
	bool trial[2] = {false, false};
	size_t n = 0;
	int rc;

	rc = boot_state_get(d, CHIP_COMP_BOOTLOADER, comp, &s);
	if (rc != 0)
		return rc;
	if (s.trial != BOOT_NO_SLOT && s.trials_left == 0) {
		/* Three trial boots without a confirm: revert to the confirmed slot. */
		upd = s;
		upd.trial = BOOT_NO_SLOT;
		upd.len[s.trial] = 0;
		rc = boot_state_put(d, CHIP_COMP_BOOTLOADER, comp, &upd);
		if (rc != 0)
			return rc;
		boot_log(d, SPH_ERR_STATE, "%s %c trial expired: reverted", boot_comp_name(comp),
		         'A' + s.trial);
		s = upd;
	}
	if (s.trial != BOOT_NO_SLOT) {
		/* Count the trial down durably before a byte of it is used. */
		upd = s;
		upd.trials_left--;
		rc = boot_state_put(d, CHIP_COMP_BOOTLOADER, comp, &upd);
		if (rc != 0)
			return rc;
		trial[n] = true;
		order[n++] = s.trial;
	}
	if (s.confirmed != BOOT_NO_SLOT)
		order[n++] = s.confirmed;
	st->status = SPH_ERR_NOT_FOUND;
	snprintf(st->reason, sizeof(st->reason), "no image installed");
	for (size_t i = 0; i < n; i++) {
		unsigned slot = order[i];
		rc = boot_slot_try(d, CHIP_COMP_BOOTLOADER, comp, slot, s.len[slot], root_hash,
		                   &st->measured, st->reason, sizeof(st->reason));
		if (rc == SPH_ERR_POWER_LOSS || rc == SPH_ERR_NOMEM)
			return rc;
		if (rc != 0) {
			st->status = rc;
			boot_log(d, rc, "%s %c refused: %s", boot_comp_name(comp), 'A' + slot,
			         st->reason);
			continue;
		}
		if (!trial[i]) {
			/* A confirmed image above the counter: a confirm lost power
			 * between its record and the counter. Catch the counter up. */
			rc = boot_counter_catch_up(d, comp, st->measured.security_version);
			if (rc != 0)
				return rc;
		}
		rc = rot_measure(d->rot, &st->measured, NULL);
		if (rc != 0)
			return rc;
		st->booted = true;
		st->slot = (uint8_t)slot;
		st->was_trial = trial[i];
		st->status = 0;
		boot_log(d, 0, "%s %c%s booted %s svn %u", boot_comp_name(comp), 'A' + slot,
		         trial[i] ? " trial" : "", st->measured.version,
		         (unsigned)st->measured.security_version);
		return 0;
	}
	memset(&st->measured, 0, sizeof(st->measured));
	boot_log(d, st->status, "%s: no valid image: RECOVERY", boot_comp_name(comp));
	return SPH_ERR_STATE;
}

int boot_run(struct boot_device *d, enum chip_reset_reason reason, struct boot_report *rep)
{
	struct boot_report r;
	uint8_t hash[32];
	bool reset_done = false, chain_ran = false;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&r, 0, sizeof(r));
	if (rep)
		memset(rep, 0, sizeof(*rep));
	if (!d)
		goto out;
	memset(&d->last, 0, sizeof(d->last));
	img_cache_clear(&d->certs); /* RAM does not survive the reset */
	boot_store_drop(d);
	rc = chip_reset(d->chip, reason); /* and the RoT, on its reset line */
	/* From here on, every exit locks the firewall: the chip part of a reset
	 * happened even when the RoT's failed. */
	reset_done = rc != SPH_ERR_INVALID_ARG;
	if (rc == 0)
		rc = boot_fw_setup(d);
	if (rc != 0)
		goto out;
	chain_ran = true;
	r.result = BOOT_RESULT_RECOVERY;
	/* ROM: the trust anchor is the fused key hash as the RoT latched it, never
	 * the OTP file as it reads now (boot_root_hash fails closed on a change). */
	rc = boot_root_hash(d, hash);
	if (rc != 0) {
		boot_log(d, rc, "ROM: no trusted root key hash fused: RECOVERY");
		for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
			r.stage[c].status = rc;
			snprintf(r.stage[c].reason, sizeof(r.stage[c].reason), "%s",
			         rc == SPH_ERR_NOT_FOUND
			                 ? "no platform-root key hash fused"
			                 : "platform-root key hash tampered with (OTP)");
		}
		rc = SPH_ERR_STATE;
		goto out;
	}
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		rc = boot_stage_run(d, c, hash, &r.stage[c]);
		if (rc != 0)
			goto out;
	}
	r.result = BOOT_RESULT_BOOTED;
	rc = 0;
out:
	if (reset_done) {
		int lrc = chip_fw_lock(chip_fw(d->chip));
		if (rc == 0 && lrc != 0)
			rc = lrc;
	}
	if (chain_ran) {
		int arc = rot_accumulator(d->rot, r.accumulator);
		if (rc == 0 && arc != 0)
			rc = arc;
		if (rc != 0 && rc != SPH_ERR_STATE)
			r.result = BOOT_RESULT_RECOVERY; /* the chain did not finish */
		d->last = r;
	}
	if (rep)
		*rep = r;
	return rc;
}
