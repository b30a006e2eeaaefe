/*
 * boot: the verified, measured A/B boot chain on the virtual chip
 * (docs/formats.md §7).
 *
 * Three components (bootloader, security monitor, OS), each in two flash
 * slots with a power-fail-safe slot-state area. boot_run is the ROM: it reads
 * the platform-root key hash from OTP, sets up the firewall, then for each
 * stage picks a slot (a pending trial first, counting the trial down durably
 * before it is used; else the confirmed slot), reads it through the chip as
 * the right compartment, verifies it (img_verify against the fused hash, the
 * component type, the security version against the RoT's anti-rollback
 * counter), measures it into the RoT and passes on. No valid image for a
 * stage: RECOVERY. The firewall is locked at the end.
 *
 * boot_install writes a verified package into the inactive slot and marks it
 * trial (3 boots); boot_confirm makes a booted trial the confirmed slot and
 * only then advances the RoT counter to its security version.
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_* status, and SPH_ERR_INVALID_ARG for a NULL handle or output.
 */
#ifndef SPHERE_BOOT_H
#define SPHERE_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#include "chip/chip.h"
#include "eat/eat.h"
#include "image/image.h"
#include "rot/rot.h"
#include "secmon/secmon.h"

#define BOOT_COMPONENTS       3
#define BOOT_SLOTS            2
#define BOOT_SLOT_SIZE        (256u * 1024u) /* bytes of a package in a slot, at most */
#define BOOT_STORE_MIN_BLOCKS 64u            /* blocks the store needs beyond the records */
#define BOOT_TRIALS           3              /* boots a new image gets before it reverts */
#define BOOT_STATE_BLOCKS     (2u * BOOT_COMPONENTS)
#define BOOT_RECORD_LEN       64
#define BOOT_RECORD_MAGIC     "SPHBST01"
#define BOOT_NO_SLOT          0xffu
#define BOOT_SEQ_MAX          0xfffffffeu
#define BOOT_REASON_MAX       96 /* a refusal reason, including the NUL */
#define BOOT_MAX_SVN          255u

/* Components in boot order; the value is also the RoT counter index. */
enum boot_comp {
	BOOT_BL = 0,
	BOOT_SECMON = 1,
	BOOT_OS = 2,
};

/* The decoded slot-state record of one component (§7.2). */
struct boot_state {
	uint32_t seq;             /* 0: no valid record (component empty) */
	uint8_t component;        /* enum boot_comp */
	uint8_t confirmed;        /* 0, 1 or BOOT_NO_SLOT */
	uint8_t trial;            /* 0, 1 or BOOT_NO_SLOT */
	uint8_t trials_left;      /* 0..BOOT_TRIALS */
	uint32_t confirmed_svn;   /* 0..BOOT_MAX_SVN */
	uint32_t len[BOOT_SLOTS]; /* package bytes per slot; 0 = empty */
};

/* Encodes s (seq 1..BOOT_SEQ_MAX) as a record. Returns 0 or SPH_ERR_INVALID_ARG
 * when s breaks a rule of §7.2 (nothing written then). */
int boot_state_encode(const struct boot_state *s, uint8_t rec[BOOT_RECORD_LEN]);
/* Decodes untrusted flash bytes: exactly BOOT_RECORD_LEN bytes, magic, check,
 * component == want, every field in range. Returns 0 and *s, or
 * SPH_ERR_TRUNCATED / SPH_ERR_TRAILING (length), SPH_ERR_MALFORMED (magic,
 * check, a field out of range) or SPH_ERR_CLAIM (another component); *s is
 * zeroed on failure. */
int boot_state_decode(const uint8_t *rec, size_t len, unsigned want, struct boot_state *s);

/* Layout (§7.1): the state-record blocks, then the security monitor's store
 * (src/secmon) over every other block; slot s of component c is the store
 * object boot_slot_name(c, s). boot_layout_check returns 0, or
 * SPH_ERR_UNSUPPORTED when the flash cannot hold the layout;
 * boot_record_offset returns the first byte of a record block and
 * boot_store_region the store's blocks, for a geometry that passed the check. */
int boot_layout_check(const struct chip_flash_geometry *g);
uint64_t boot_record_offset(const struct chip_flash_geometry *g, unsigned comp, unsigned rec);
int boot_store_region(const struct chip_flash_geometry *g, struct secmon_region *r);
/* "boot/bl/a", "boot/secmon/b", "boot/os/a"... into buf (cap bytes; 16 is
 * enough). Returns 0, SPH_ERR_INVALID_ARG or SPH_ERR_BUFFER_TOO_SMALL. */
int boot_slot_name(unsigned comp, unsigned slot, char *buf, size_t cap);

/* Returns "BL", "SECMON", "OS" (the EAT measurement type), or "?". Never NULL. */
const char *boot_comp_name(unsigned comp);
/* Parses "bl"/"bootloader", "secmon"/"security-monitor", "os". Returns 0 or
 * SPH_ERR_INVALID_ARG. */
int boot_comp_from_name(const char *name, unsigned *comp);

struct boot_device;

/* Creates a device directory: the flash (geometry g, NULL = default), and the
 * OTP fused with a fresh secret (or secret, for tests), the lifecycle and the
 * platform-root key hash. Returns 0, SPH_ERR_STATE (it exists),
 * SPH_ERR_UNSUPPORTED (geometry too small for §7.1) or a status of
 * chip_open / rot_otp_fuse / rot_otp_fuse_root_hash. */
int boot_provision(const char *dir, const struct chip_flash_geometry *g,
                   enum rot_lifecycle lifecycle, const uint8_t *secret /* 32 or NULL */,
                   const uint8_t root_hash[32]);

/* Opens a provisioned device: the chip (faults: NULL for none) and an
 * in-process RoT over its OTP (one per device; closed by boot_close), and
 * sets up the boot firewall grants (not locked until boot_run). Returns 0 and
 * *out (free with boot_close), or a status of chip_open / rot_open_inproc, or
 * SPH_ERR_UNSUPPORTED (flash too small). */
int boot_open(const char *dir, const struct chip_faults *faults, struct boot_device **out);
/* Closes the RoT and the chip. Accepts NULL. */
void boot_close(struct boot_device *d);
/* The device's chip and RoT, owned by d (NULL for a NULL d). */
struct chip *boot_chip(struct boot_device *d);
struct rot *boot_rot(struct boot_device *d);

enum boot_result {
	BOOT_RESULT_NONE = 0,     /* not booted since open */
	BOOT_RESULT_BOOTED = 1,   /* every stage verified, measured and run */
	BOOT_RESULT_RECOVERY = 2, /* a stage had no valid image: nothing after it ran */
};

struct boot_stage {
	bool booted;
	uint8_t slot;                  /* the slot that booted (valid if booted) */
	bool was_trial;                /* it was a trial boot */
	struct eat_component measured; /* what was measured (valid if booted) */
	int32_t status;                /* 0 if booted, else the last refusal */
	char reason[BOOT_REASON_MAX];  /* the last refusal, "" if none */
};

struct boot_report {
	enum boot_result result;
	struct boot_stage stage[BOOT_COMPONENTS];
	uint8_t accumulator[ROT_DIGEST_LEN]; /* the RoT's after the boot */
};

/* Power-cycles and boots: chip_reset(reason) (which resets the RoT), then the chain
 * of §7.3. rep (may be NULL) receives the report. Returns 0 (booted),
 * SPH_ERR_STATE (RECOVERY: rep says which stage failed and why), or a status
 * of the chip / RoT / flash (e.g. SPH_ERR_POWER_LOSS) when the boot could not
 * run; the firewall is locked in every case where the chain ran. */
int boot_run(struct boot_device *d, enum chip_reset_reason reason, struct boot_report *rep);
/* Copies the report of the last boot_run (result NONE before one). Returns 0
 * or SPH_ERR_INVALID_ARG. */
int boot_last_report(struct boot_device *d, struct boot_report *rep);

/* Installs a package into the inactive slot of comp (§7.4), as the security
 * monitor. why (may be NULL) receives a reason on refusal. Returns 0,
 * SPH_ERR_TOO_LARGE (beyond a slot), img_verify's statuses, SPH_ERR_CLAIM
 * (another component type), SPH_ERR_ROLLBACK (security version below the
 * RoT counter or the confirmed one), SPH_ERR_NOT_FOUND (no root hash fused),
 * SPH_ERR_PERMISSION (the firewall refused), or a flash status
 * (SPH_ERR_POWER_LOSS). */
int boot_install(struct boot_device *d, unsigned comp, const uint8_t *pkg, size_t len, char *why,
                 size_t why_cap);

/* The security monitor's health check of the store (§9): secmon_scrub on its
 * read-write mount, which rebuilds and rewrites damaged shards. rep is filled
 * whenever the scrub ran. Returns 0, SPH_ERR_CORRUPT (some object is beyond
 * repair: rep names the first), or a mount / flash status. */
int boot_storage_check(struct boot_device *d, struct secmon_scrub_report *rep);
/* The store's statistics (objects, free blocks, wear). */
int boot_storage_stats(struct boot_device *d, struct secmon_stats *st);

/* Confirms every component whose trial slot has booted (§7.4), and raises
 * every RoT counter to its confirmed security version. Returns the number of
 * components newly confirmed (>= 0), or a negative status. */
int boot_confirm(struct boot_device *d);

/* Reads the slot state of comp from flash (no firewall: a debug view).
 * Returns 0 (when no record is valid: seq 0, no confirmed or trial slot) or
 * a flash status. */
int boot_state_read(struct boot_device *d, unsigned comp, struct boot_state *s);

/* Writes a state record for comp as the security monitor (§7.2): seq is set
 * to the current + 1. For install/confirm and for tests that stage a slot.
 * Returns 0, SPH_ERR_INVALID_ARG, SPH_ERR_EXHAUSTED (sequence used up) or a
 * flash status. */
int boot_state_write(struct boot_device *d, unsigned comp, struct boot_state *s);

/* Reads slot (comp, slot) of length len and verifies it as a boot would,
 * without measuring. m (may be NULL) receives the manifest's measurement
 * (component fields). Returns 0 or the refusal status with why. */
int boot_slot_check(struct boot_device *d, unsigned comp, unsigned slot, uint32_t len,
                    struct eat_component *m, char *why, size_t why_cap);

/* ---- device capability files (docs/formats.md §8) ---------------------------
 * The tenant root certificate is device configuration kept in the device
 * directory (<dir>/tenant-root.pem; on a real chip, the security monitor's
 * protected storage). An installed capability file is <dir>/capability. It is
 * re-verified (signature, path to the tenant root, role, this device's id
 * from its RoT, expiry against the current time) every time it is used.
 */
#define BOOT_TENANT_ROOT_FILE "tenant-root.pem"
#define BOOT_CAPABILITY_FILE  "capability"

/* Checks that root is a tenant root a device can trust for capability files:
 * a self-signed CA whose EKU lists the capability role. Returns 0,
 * SPH_ERR_PERMISSION (no capability role) or SPH_ERR_AUTH (not a self-signed CA). */
int boot_tenant_root_check(X509 *root);

/* Stores root (boot_tenant_root_check must pass) as the device's tenant root
 * in dir, through a temporary file. Refuses to replace one (SPH_ERR_STATE).
 * Returns 0 or a negative status; nothing is written on failure. */
int boot_set_tenant_root(const char *dir, X509 *root);

/* Verifies a capability file for this device against its tenant root and
 * stores it (replacing the previous one atomically). out (may be NULL)
 * receives what it says, why (may be NULL) a reason on refusal. Returns 0,
 * SPH_ERR_STATE (no tenant root configured), img_cap_verify's statuses
 * (SPH_ERR_PERMISSION: for another device) or a file status. On refusal
 * nothing changes. */
int boot_capability_install(struct boot_device *d, const uint8_t *buf, size_t len,
                            struct img_capability *out, char *why, size_t why_cap);

/* Re-verifies the stored capability file now. Returns 0 and *out (zeroed
 * and SPH_ERR_NOT_FOUND when there is no file), or the refusal status with
 * why (*out zeroed). */
int boot_capability_get(struct boot_device *d, struct img_capability *out, char *why,
                        size_t why_cap);

/* The capabilities this device holds now: *mask gets bit (1u << enum img_cap)
 * per capability of a stored file that verifies at this moment (never a
 * cached result); 0 without a file, or when the file no longer verifies.
 * Returns 0 (also without a file) or the stored file's refusal status
 * (*mask 0 then). */
int boot_capabilities(struct boot_device *d, uint32_t *mask);

#endif
