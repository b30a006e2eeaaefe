/*
 * boot: installing an image into the inactive slot and confirming a trial
 * (docs/formats.md §7.4), both as the security monitor. The slot (a store
 * object, written copy-on-write) is written before the state record that
 * points at it, so a power cut at any operation leaves either the old state
 * or the new one.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "boot_internal.h"
#include "common/common.h"
#include "image/image.h"

/* Verifies pkg for comp as a boot would, plus the confirmed security version. */
static int boot_install_check(struct boot_device *d, unsigned comp, const uint8_t *pkg, size_t len,
                              const uint8_t hash[32], const struct boot_state *s, char *why,
                              size_t why_cap)
{
	struct img_trust trust = {.root_hash = hash, .time_policy = IMG_TIME_NONE};
	struct img_package p;
	uint32_t counter = 0;
	int rc;

	rc = img_verify(pkg, len, &trust, &p, why, why_cap);
	if (rc != 0)
		return rc;
	if (p.manifest.type != comp + 1) {
		boot_why(why, why_cap, "a %s image is not a %s",
		         img_type_name(p.manifest.type) ? img_type_name(p.manifest.type) : "?",
		         boot_comp_name(comp));
		return SPH_ERR_CLAIM;
	}
	rc = rot_counter_read(d->rot, comp, &counter);
	if (rc != 0) {
		boot_why(why, why_cap, "anti-rollback counter: %s", sph_strerror(rc));
		return rc;
	}
	if (p.manifest.security_version < counter ||
	    (s->confirmed != BOOT_NO_SLOT && p.manifest.security_version < s->confirmed_svn)) {
		boot_why(why, why_cap, "security version %u below the device's %u",
		         (unsigned)p.manifest.security_version,
		         (unsigned)(counter > s->confirmed_svn ? counter : s->confirmed_svn));
		return SPH_ERR_ROLLBACK;
	}
	return 0;
}

int boot_install(struct boot_device *d, unsigned comp, const uint8_t *pkg, size_t len, char *why,
                 size_t why_cap)
{
	struct boot_state s;
	struct secmon *sm = NULL;
	char name[16];
	uint8_t hash[32];
	unsigned slot;
	int rc = SPH_ERR_INVALID_ARG;

	boot_why(why, why_cap, "%s", "");
	if (!d || comp >= BOOT_COMPONENTS || !pkg || len == 0)
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (len > BOOT_SLOT_SIZE) {
		boot_why(why, why_cap, "package of %zu bytes exceeds a slot (%u)", len,
		         BOOT_SLOT_SIZE);
		goto out;
	}
	rc = boot_root_hash(d, hash);
	if (rc != 0) {
		boot_why(why, why_cap, "no platform-root key hash fused");
		goto out;
	}
	rc = boot_state_get(d, CHIP_COMP_SECMON, comp, &s);
	if (rc != 0)
		goto out;
	rc = boot_install_check(d, comp, pkg, len, hash, &s, why, why_cap);
	if (rc != 0)
		goto out;
	if (s.seq == 0) {
		s.confirmed = BOOT_NO_SLOT;
		s.trial = BOOT_NO_SLOT;
	}
	slot = s.confirmed == BOOT_NO_SLOT ? 0u : 1u - s.confirmed;
	/* First, durably forget whatever the record says about the slot about to
	 * be overwritten: otherwise a power cut after programming would leave the
	 * old record (a pending trial, or a length) naming bytes it never saw. */
	if (s.seq != 0 && (s.trial == slot || s.len[slot] != 0)) {
		if (s.trial == slot) {
			s.trial = BOOT_NO_SLOT;
			s.trials_left = 0;
		}
		s.len[slot] = 0;
		rc = boot_state_put(d, CHIP_COMP_SECMON, comp, &s);
		if (rc != 0)
			goto out;
	}
	/* Copy-on-write in the store: a power cut leaves the old object or the
	 * new one, and no record names this slot until the new one is whole. */
	rc = boot_slot_name(comp, slot, name, sizeof(name));
	if (rc == 0)
		rc = boot_store(d, CHIP_COMP_SECMON, &sm);
	if (rc == 0) {
		rc = secmon_put(sm, name, pkg, len);
		if (rc != 0)
			boot_store_drop(d); /* remount from flash next time */
	}
	if (rc != 0) {
		boot_why(why, why_cap, "store: %s", sph_strerror(rc));
		goto out;
	}
	/* Last: the record that makes the new slot a trial. */
	if (s.trial != BOOT_NO_SLOT && s.trial != slot)
		s.len[s.trial] = 0;
	s.trial = (uint8_t)slot;
	s.trials_left = BOOT_TRIALS;
	s.len[slot] = (uint32_t)len;
	rc = boot_state_put(d, CHIP_COMP_SECMON, comp, &s);
	if (rc != 0)
		goto out;
	sph_log(SPH_LOG_INFO, "boot", "installed", "component=%s slot=%c len=%zu",
	        boot_comp_name(comp), 'A' + slot, len);
out:
	return rc;
}

/* May the pending trial of component c be confirmed? In the process whose
 * boot ran it: only if the whole chain booted and this stage booted the trial.
 * From a fresh process (sphere-device confirm after sphere-device boot): only
 * if it has been tried at least once and has tries left — an expired trial
 * reverts at the next boot and is never confirmed. */
static bool boot_trial_confirmable(const struct boot_device *d, unsigned c,
                                   const struct boot_state *s)
{
	const struct boot_stage *st = &d->last.stage[c];

	if (s->trial == BOOT_NO_SLOT || s->trials_left >= BOOT_TRIALS)
		return false;
	if (d->last.result == BOOT_RESULT_NONE)
		return s->trials_left > 0;
	return d->last.result == BOOT_RESULT_BOOTED && st->booted && st->slot == s->trial;
}

int boot_confirm(struct boot_device *d)
{
	struct eat_component m;
	struct boot_state s;
	char why[BOOT_REASON_MAX];
	int rc = SPH_ERR_INVALID_ARG, n = 0;

	if (!d)
		goto out;
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		rc = boot_state_get(d, CHIP_COMP_SECMON, c, &s);
		if (rc != 0)
			goto out;
		if (boot_trial_confirmable(d, c, &s)) {
			rc = boot_slot_check(d, c, s.trial, s.len[s.trial], &m, why, sizeof(why));
			if (rc != 0) {
				sph_log(SPH_LOG_WARN, "boot", "confirm_refused",
				        "component=%s reason=\"%s\"", boot_comp_name(c), why);
			} else {
				/* The old image is no longer referenced by anything. */
				if (s.confirmed != BOOT_NO_SLOT)
					s.len[s.confirmed] = 0;
				s.confirmed = s.trial;
				s.trial = BOOT_NO_SLOT;
				s.trials_left = 0;
				s.confirmed_svn = m.security_version;
				rc = boot_state_put(d, CHIP_COMP_SECMON, c, &s);
				if (rc != 0)
					goto out;
				n++;
				sph_log(SPH_LOG_INFO, "boot", "confirmed",
				        "component=%s slot=%c svn=%u", boot_comp_name(c),
				        'A' + s.confirmed, (unsigned)s.confirmed_svn);
			}
		}
		/* Only after the record: the counter follows the confirmed image, as
		 * its verified manifest says — never a number read from the record,
		 * which anyone able to write flash could forge (one-way fuses). */
		if (s.confirmed != BOOT_NO_SLOT) {
			rc = boot_slot_check(d, c, s.confirmed, s.len[s.confirmed], &m, why,
			                     sizeof(why));
			if (rc != 0) {
				sph_log(SPH_LOG_WARN, "boot", "counter_not_advanced",
				        "component=%s reason=\"%s\"", boot_comp_name(c), why);
				continue;
			}
			rc = rot_counter_advance(d->rot, c, m.security_version);
			if (rc != 0 && rc != SPH_ERR_ROLLBACK)
				goto out;
		}
	}
	rc = n;
out:
	return rc;
}
