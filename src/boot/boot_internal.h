/* boot: private state shared by the module's files. */
#ifndef SPHERE_BOOT_INTERNAL_H
#define SPHERE_BOOT_INTERNAL_H

#include "boot.h"

struct boot_device {
	struct chip *chip;
	struct rot *rot;
	struct chip_flash_geometry geo;
	struct boot_report last; /* the last boot_run's report */
	/* RAM of this boot: signer paths already validated by an earlier stage
	 * (struct img_cache); cleared at every chip reset. */
	struct img_cache certs;
	/* The store (§7.1), mounted when first needed and dropped at every chip
	 * reset (the mounts are RAM): the security monitor's read-write mount and
	 * the bootloader's read-only one. */
	struct secmon_region region;
	struct secmon *store_rw;
	struct secmon *store_bl;
	/* The root key hash the RoT latched when the device opened, and how that
	 * read ended (0 or SPH_ERR_NOT_FOUND): a RoT restarted by boot_run
	 * re-reads the OTP file and must find the same (boot_root_hash). */
	int root_rc;
	uint8_t root_hash[32];
};

/* The store as compartment comp_as: CHIP_COMP_SECMON gets the read-write
 * mount, CHIP_COMP_BOOTLOADER the read-only one (mounted on first use).
 * Returns 0 and *sm (owned by d), SPH_ERR_INVALID_ARG for another
 * compartment, or secmon_mount's status. */
int boot_store(struct boot_device *d, uint32_t comp_as, struct secmon **sm);
/* Unmounts both (a chip reset, or a write that failed half-way). */
void boot_store_drop(struct boot_device *d);

/* Sets up the boot firewall grants (§7.3 step 2); on failure the table is
 * locked with what was granted. Returns 0 or a chip status. */
int boot_fw_setup(struct boot_device *d);
/* The fused platform-root key hash as the RoT latched it at start, after its
 * OTP tamper check (rot_root_hash), and only when it is what the RoT latched
 * when the device opened (d->root_hash). Returns 0, SPH_ERR_NOT_FOUND (none
 * fused), SPH_ERR_STATE (the OTP fuses were tampered with, or the hash changed
 * since open) or a status; hash is zeroed on failure. */
int boot_root_hash(struct boot_device *d, uint8_t hash[32]);
/* Formats a reason into why (may be NULL). */
void boot_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The state of comp as compartment comp_as reads it through the firewall:
 * the valid record with the higher sequence (seq 0: none); two valid records
 * of equal sequence are that state when identical. Returns 0, SPH_ERR_MALFORMED
 * (equal sequences, different content: fail closed) or a flash status other
 * than SPH_ERR_IO (an unreadable block holds no record). */
int boot_state_get(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s);
/* Writes s as the next record of comp (s->seq and s->component are set here:
 * seq is 1 + the highest valid sequence of either block), as compartment
 * comp_as: erase the block not holding the highest record, program, read back.
 * Returns 0, SPH_ERR_IO (the state read back is not the one written),
 * SPH_ERR_EXHAUSTED, SPH_ERR_MALFORMED (see boot_state_get) or a status. */
int boot_state_put(struct boot_device *d, uint32_t comp_as, unsigned comp, struct boot_state *s);
/* Reads and verifies a slot as compartment comp_as (§7.3 "trying"). Returns 0
 * and m (may be NULL), or the refusal status and why. */
int boot_slot_try(struct boot_device *d, uint32_t comp_as, unsigned comp, unsigned slot,
                  uint32_t len, const uint8_t root_hash[32], struct eat_component *m, char *why,
                  size_t why_cap);

#endif
