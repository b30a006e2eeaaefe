/*
 * chip: the virtual chip (docs/formats.md §6).
 *
 * A device is a directory. The chip holds
 *  - NOR flash with real semantics over a file (flash.c): fixed erase blocks,
 *    erase sets a block to 0xFF, program only clears bits, per-block erase
 *    counts kept persistently for wear reporting;
 *  - a fault injector (faults.c): power cut at the Nth program/erase (the
 *    operation is torn, every later flash operation fails until the chip
 *    power-cycles), bit flips at given or seeded random places, lost blocks;
 *  - the resource firewalls (firewall.c): every peripheral, flash region, RAM
 *    region and the network has grants per compartment; an ungranted access is
 *    refused and counted; once locked the table is sticky until chip reset;
 *  - a small RAM-state area (chip.c): reset reason and boot log, cleared by a
 *    chip reset.
 * The OTP fuses are the file `<dir>/otp` of the same directory; the RoT owns
 * their format and is the only reader and writer (src/rot: rot_otp_fuse,
 * rot_open_*; chip_otp_path() names the file). The RoT sits on the chip's
 * reset line: chip_on_reset() connects it, and chip_reset() resets it.
 *
 * Every function returns 0 or a negative SPH_ERR_* unless said otherwise.
 * Handles are safe to share between threads (each object has its own lock).
 */
#ifndef SPHERE_CHIP_H
#define SPHERE_CHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

/* ==== NOR flash ============================================================= */

#define CHIP_FLASH_MIN_BLOCK_SIZE      512u
#define CHIP_FLASH_MAX_BLOCK_SIZE      (1u << 20)
#define CHIP_FLASH_MAX_BLOCKS          65536u
#define CHIP_FLASH_MAX_SIZE            (1ull << 30) /* block_size * block_count */
#define CHIP_FLASH_DEFAULT_BLOCK_SIZE  4096u
#define CHIP_FLASH_DEFAULT_BLOCK_COUNT 1024u /* 4 MiB */

struct chip_flash_geometry {
	uint32_t block_size;  /* erase-block bytes: a power of two, 512..1 MiB */
	uint32_t block_count; /* 1..65536, and block_size * block_count <= 1 GiB */
};

struct chip_flash_stats {
	/* Lifetime totals, persistent in the metadata file. */
	uint64_t programs; /* accepted program operations (torn ones included) */
	uint64_t erases;   /* accepted erase operations (torn ones included) */
	/* Since open. */
	uint64_t ops;   /* accepted program + erase operations (what powercut counts) */
	uint64_t reads; /* successful reads */
	/* Wear: per-block erase counts. */
	uint32_t erase_min;
	uint32_t erase_max;
	double erase_mean;
};

struct chip_flash;

/* Opens the flash image at path and its metadata at "<path>.meta"
 * (docs/formats.md §6.2), taking an exclusive flock (a flash open elsewhere is
 * SPH_ERR_STATE). g NULL: the existing flash's geometry (missing file:
 * SPH_ERR_NOT_FOUND). g given: a missing flash is created erased (all 0xFF,
 * erase counts 0); an existing one MUST have that geometry (else
 * SPH_ERR_STATE). An invalid g is SPH_ERR_INVALID_ARG; a damaged image or
 * metadata SPH_ERR_MALFORMED. Returns 0 and *out (free with chip_flash_close). */
int chip_flash_open(const char *path, const struct chip_flash_geometry *g, struct chip_flash **out);

/* Syncs what was written since the last sync (fdatasync of image and
 * metadata), closes and frees. Accepts NULL. */
void chip_flash_close(struct chip_flash *f);

/* Copies the geometry into *g. Returns 0 or SPH_ERR_INVALID_ARG. */
int chip_flash_geometry(const struct chip_flash *f, struct chip_flash_geometry *g);
/* Size in bytes (block_size * block_count); 0 for NULL. */
uint64_t chip_flash_size(const struct chip_flash *f);

/* Reads len bytes at off. Out of bounds: SPH_ERR_INVALID_ARG. A range that
 * touches a lost block: SPH_ERR_IO (uncorrectable). After a power cut:
 * SPH_ERR_POWER_LOSS. On any error buf is zeroed. len 0 is a no-op. */
int chip_flash_read(struct chip_flash *f, uint64_t off, void *buf, size_t len);

/* Hints that [off, off + len) will be read soon, so its reads stream (a
 * flash controller's sequential prefetch; the emulation asks the host to read
 * ahead). Changes nothing and counts as no operation. Out of bounds:
 * SPH_ERR_INVALID_ARG; after a power cut: SPH_ERR_POWER_LOSS. */
int chip_flash_prefetch(struct chip_flash *f, uint64_t off, size_t len);

/* Programs len bytes at off (any range within the flash; it may span blocks).
 * Programming can only clear bits: if any bit would go 0 -> 1 the call fails
 * with SPH_ERR_STATE and changes nothing (the whole range is checked before a
 * byte is written). Out of bounds: SPH_ERR_INVALID_ARG; touching a lost block:
 * SPH_ERR_IO; after a power cut: SPH_ERR_POWER_LOSS. Only an accepted program
 * counts as an operation (and can be torn by a power cut, which returns
 * SPH_ERR_POWER_LOSS with a prefix written). len 0 is a no-op, not counted. */
int chip_flash_program(struct chip_flash *f, uint64_t off, const void *data, size_t len);

/* Erases one block to 0xFF, adds one to its erase count and clears its "lost"
 * mark. block >= block_count: SPH_ERR_INVALID_ARG; after a power cut:
 * SPH_ERR_POWER_LOSS. Counts as an operation (and can be torn). */
int chip_flash_erase(struct chip_flash *f, uint32_t block);

/* fdatasync of the image and metadata. After a power cut: SPH_ERR_POWER_LOSS.
 * Durability policy (docs/formats.md §6.2): every program/erase reaches the
 * file with pwrite before it returns (it survives the process dying); it
 * survives the host losing power only after chip_flash_sync, chip_flash_close,
 * or with chip_flash_set_sync_every_op(f, true). */
int chip_flash_sync(struct chip_flash *f);
/* When on, every program/erase is followed by fdatasync of image and metadata. */
void chip_flash_set_sync_every_op(struct chip_flash *f, bool on);

/* Erase count of one block (wear reporting; allowed after a power cut). */
int chip_flash_erase_count(struct chip_flash *f, uint32_t block, uint32_t *n);
/* Fills *st (allowed after a power cut). */
int chip_flash_stats(struct chip_flash *f, struct chip_flash_stats *st);
/* Accepted program + erase operations since open (0 for NULL). */
uint64_t chip_flash_ops(struct chip_flash *f);
/* True when a power cut happened and the flash has not power-cycled since. */
bool chip_flash_power_lost(struct chip_flash *f);
/* The flash powers up again: clears the power-loss state, as a reopen does.
 * The operation counter keeps counting; a power cut that fired is spent. */
void chip_flash_power_cycle(struct chip_flash *f);

/* ==== Fault injector ======================================================== */

#define CHIP_FAULTS_ENV        "SPHERE_FAULTS"
#define CHIP_FAULTS_SPEC_MAX   4096 /* characters in a spec */
#define CHIP_FAULTS_MAX_FLIPS  64   /* flip=OFF:BIT items */
#define CHIP_FAULTS_MAX_LOST   64   /* lose=BLOCK items */
#define CHIP_FAULTS_MAX_RANDOM 1024 /* flips=N */
#define CHIP_FAULTS_ERR_MAX    160  /* a good size for parse error messages */

struct chip_flip {
	uint64_t offset;
	uint8_t bit; /* 0..7, 0 = least significant */
};

/* A fault plan (docs/formats.md §6.3). Zero-initialised = no faults. */
struct chip_faults {
	uint64_t powercut;     /* 0 = none; n = tear the n-th program/erase (1-based) */
	uint64_t seed;         /* seeds the torn lengths and the random flips */
	bool has_seed;         /* seed= was given (only matters for formatting) */
	uint32_t random_flips; /* flips=N: N distinct random bits, from seed */
	uint32_t nflips;
	struct chip_flip flips[CHIP_FAULTS_MAX_FLIPS];
	uint32_t nlost;
	uint32_t lost[CHIP_FAULTS_MAX_LOST];
};

/* Parses a spec such as "powercut=17,seed=3,flip=0x100:7,flips=4,lose=12".
 * Strict (§6.3): on error *plan is zeroed and, when err is non-NULL, err gets a
 * NUL-terminated message naming the bad token (truncated to errcap).
 * Returns 0, SPH_ERR_MALFORMED (syntax, unknown key, bad number),
 * SPH_ERR_TOO_LARGE (a number or a count beyond its limit, a spec longer than
 * CHIP_FAULTS_SPEC_MAX) or SPH_ERR_DUPLICATE (a key that may appear once, or
 * the same flip or lost block twice). "" is the empty plan. */
int chip_faults_parse(const char *spec, struct chip_faults *plan, char *err, size_t errcap);

/* Writes the canonical spec of plan (parses back to the same plan) into buf.
 * Returns 0 or SPH_ERR_BUFFER_TOO_SMALL / SPH_ERR_INVALID_ARG. */
int chip_faults_format(const struct chip_faults *plan, char *buf, size_t cap);

/* The plan for this run: flag when non-NULL (a --faults option), else
 * $SPHERE_FAULTS when set, else the empty plan. Same errors as parse. */
int chip_faults_from_flag_or_env(const char *flag, struct chip_faults *plan, char *err,
                                 size_t errcap);

/* Applies a plan to an open flash (the programmatic control for tests):
 *  - flips (given and random) are XORed into the image now (they persist,
 *    like any corruption of the medium);
 *  - lost blocks are marked in the metadata now (they persist until erased);
 *  - powercut n arms a cut at the n-th accepted program/erase from now
 *    (replacing any armed cut; the seed is the plan's).
 * plan NULL disarms a pending cut. Everything is checked first: a flip offset
 * or lost block beyond the flash is SPH_ERR_INVALID_ARG and nothing applies. */
int chip_faults_set(struct chip_flash *f, const struct chip_faults *plan);

enum chip_flash_op { CHIP_OP_PROGRAM = 1, CHIP_OP_ERASE = 2 };

/* What the last power cut tore. */
struct chip_cut {
	uint64_t op; /* its number among accepted ops since open, 1-based */
	enum chip_flash_op kind;
	uint64_t offset; /* program: off; erase: block * block_size */
	uint64_t len;    /* program: len; erase: block_size */
	uint64_t landed; /* bytes that reached flash: a prefix, 0..len */
};
/* Returns 0 and *cut, or SPH_ERR_NOT_FOUND if no cut happened since open. */
int chip_faults_last_cut(struct chip_flash *f, struct chip_cut *cut);

/* ==== Firewalls ============================================================= */

/* Compartments: who is asking. */
#define CHIP_MAX_APPS    16
#define CHIP_MAX_RTCORES 2
enum chip_comp {
	CHIP_COMP_BOOTLOADER = 0,
	CHIP_COMP_SECMON = 1,
	CHIP_COMP_OS = 2,
	CHIP_COMP_APP0 = 3,                                 /* app i = CHIP_COMP_APP0 + i */
	CHIP_COMP_RTCORE0 = CHIP_COMP_APP0 + CHIP_MAX_APPS, /* rt core i = RTCORE0 + i */
	CHIP_COMP_COUNT = CHIP_COMP_RTCORE0 + CHIP_MAX_RTCORES,
};

/* Resources: what is touched. Peripherals are numbered instances; flash and RAM
 * are byte ranges [start, end). */
enum chip_res_kind {
	CHIP_RES_GPIO = 1,
	CHIP_RES_UART,
	CHIP_RES_I2C,
	CHIP_RES_SPI,
	CHIP_RES_ADC, /* an ADC channel */
	CHIP_RES_PWM, /* a PWM channel */
	CHIP_RES_NETWORK,
	CHIP_RES_FLASH,
	CHIP_RES_RAM,
};
#define CHIP_GPIO_COUNT 32
#define CHIP_UART_COUNT 5
#define CHIP_I2C_COUNT  5
#define CHIP_SPI_COUNT  5
#define CHIP_ADC_COUNT  8
#define CHIP_PWM_COUNT  12
#define CHIP_RAM_SIZE   (4u << 20) /* RAM regions lie in [0, 4 MiB) */

struct chip_res {
	enum chip_res_kind kind;
	uint32_t index;      /* peripherals: instance (< its count); network, flash, RAM: 0 */
	uint64_t start, end; /* flash, RAM: [start, end), start < end; others: 0, 0 */
};

static inline struct chip_res chip_res_periph(enum chip_res_kind kind, uint32_t index)
{
	struct chip_res r = {.kind = kind, .index = index};
	return r;
}

static inline struct chip_res chip_res_region(enum chip_res_kind kind, uint64_t start, uint64_t end)
{
	struct chip_res r = {.kind = kind, .start = start, .end = end};
	return r;
}

#define CHIP_FW_R          1u
#define CHIP_FW_W          2u
#define CHIP_FW_X          4u /* flash and RAM only */
#define CHIP_FW_MAX_GRANTS 128

struct chip_fw_stats {
	bool locked;
	size_t grants;
	uint64_t refused_total;                    /* refused accesses (chip_fw_check) */
	uint64_t refused_by_comp[CHIP_COMP_COUNT]; /* the same, per compartment */
	uint64_t refused_changes;                  /* grant/revoke refused after lock */
};

struct chip_fw;

/* A firewall for a chip whose flash is flash_size bytes and RAM ram_size bytes
 * (region grants must lie inside). Returns 0 and *out (free with chip_fw_free). */
int chip_fw_new(uint64_t flash_size, uint64_t ram_size, struct chip_fw **out);
/* Accepts NULL. */
void chip_fw_free(struct chip_fw *fw);

/* Grants access (CHIP_FW_R/W/X, non-empty) on res to comp; granting what comp
 * already has on exactly res adds the flags. After lock: SPH_ERR_STATE
 * (counted). Invalid comp, res or access: SPH_ERR_INVALID_ARG; a full table:
 * SPH_ERR_EXHAUSTED. */
int chip_fw_grant(struct chip_fw *fw, uint32_t comp, const struct chip_res *res, uint32_t access);
/* Removes comp's grant on exactly res (same kind, index, range). After lock:
 * SPH_ERR_STATE (counted); no such grant: SPH_ERR_NOT_FOUND. */
int chip_fw_revoke(struct chip_fw *fw, uint32_t comp, const struct chip_res *res);
/* Makes the table sticky until chip_fw_reset. Locking twice is fine. */
int chip_fw_lock(struct chip_fw *fw);
bool chip_fw_locked(struct chip_fw *fw);

/* Returns 0 only if every flag in access is granted to comp on all of res
 * (for a range: every byte is covered by grants carrying the flag; grants may
 * adjoin). Else SPH_ERR_PERMISSION, counted for comp and in the total; an
 * invalid comp, res or access is SPH_ERR_INVALID_ARG (counted in the total). */
int chip_fw_check(struct chip_fw *fw, uint32_t comp, const struct chip_res *res, uint32_t access);

/* Refusals counted for comp since chip_fw_new (0 for an invalid comp). */
uint64_t chip_fw_refusals(struct chip_fw *fw, uint32_t comp);
int chip_fw_stats(struct chip_fw *fw, struct chip_fw_stats *st);
/* The i-th grant (0-based), for status reports. SPH_ERR_NOT_FOUND past the end. */
int chip_fw_grant_at(struct chip_fw *fw, size_t i, uint32_t *comp, struct chip_res *res,
                     uint32_t *access);
/* Clears every grant and the lock (what a chip reset does). Refusal counters
 * are kept: they are the chip's failure report across resets. */
void chip_fw_reset(struct chip_fw *fw);

/* Names for reports: "bootloader", "secmon", "os", "app3", "rtcore1";
 * "gpio4", "uart0", "network", "flash[0x0,0x10000)". Return 0, or
 * SPH_ERR_INVALID_ARG / SPH_ERR_BUFFER_TOO_SMALL. */
int chip_comp_name(uint32_t comp, char *buf, size_t cap);
int chip_res_name(const struct chip_res *res, char *buf, size_t cap);

/* ==== The chip ============================================================== */

#define CHIP_FLASH_FILE        "flash.bin"
#define CHIP_FLASH_META_SUFFIX ".meta"
#define CHIP_OTP_FILE          "otp"

enum chip_reset_reason {
	CHIP_RESET_POWER_ON = 0, /* chip_open */
	CHIP_RESET_SOFTWARE = 1,
	CHIP_RESET_WATCHDOG = 2,
	CHIP_RESET_POWER_LOSS = 3,
};

#define CHIP_BOOTLOG_MAX       32
#define CHIP_BOOTLOG_EVENT_MAX 48 /* including the NUL */

struct chip_bootlog_entry {
	uint32_t comp;  /* the compartment that logged it */
	int32_t status; /* 0 or a SPH_ERR_* */
	char event[CHIP_BOOTLOG_EVENT_MAX];
};

struct chip_ram_info {
	enum chip_reset_reason reset_reason;
	uint64_t resets;      /* chip_reset calls since chip_open */
	size_t log_count;     /* entries in the boot log */
	uint32_t log_dropped; /* entries refused because the log was full */
};

struct chip_config {
	/* Zeros: the existing flash's geometry, or the defaults when creating. */
	struct chip_flash_geometry geometry;
	/* Applied to the flash right after it is opened; NULL: no faults. */
	const struct chip_faults *faults;
	/* Create the directory (mode 0700) and the flash when missing. */
	bool create;
};

struct chip;

/* Opens the device directory dir (§6.1). cfg NULL: an existing device, no
 * faults. A missing directory or flash without cfg->create: SPH_ERR_NOT_FOUND.
 * Returns 0 and *out (free with chip_close); RAM state starts with reset reason
 * CHIP_RESET_POWER_ON. */
int chip_open(const char *dir, const struct chip_config *cfg, struct chip **out);
/* Closes the flash (syncing it) and frees. Accepts NULL. */
void chip_close(struct chip *c);

/* Chip reset: clears the RAM state (boot log) and records reason, clears the
 * firewall grants and lock, power-cycles the flash (a pending power-loss
 * state ends), then resets what is on the reset line (the RoT: its
 * accumulator and RAM). Flash contents and OTP persist. Returns 0,
 * SPH_ERR_INVALID_ARG, or the reset line's failure (the chip part is done). */
int chip_reset(struct chip *c, enum chip_reset_reason reason);

/* Connects fn(arg) to the reset line: chip_reset calls it last, and returns
 * its status. One connection; fn NULL disconnects. A second connection:
 * SPH_ERR_STATE. Not thread-safe against a concurrent chip_reset. */
int chip_on_reset(struct chip *c, int (*fn)(void *arg), void *arg);

/* The device directory and its OTP file path ("<dir>/otp"), owned by c. */
const char *chip_dir(const struct chip *c);
const char *chip_otp_path(const struct chip *c);
/* The chip's flash and firewall, owned by c. Raw flash access bypasses the
 * firewall: it is for tests and for the fault injector, never device code. */
struct chip_flash *chip_flash(struct chip *c);
struct chip_fw *chip_fw(struct chip *c);

/* Flash access as a compartment: checked against the firewall's flash-region
 * grants first (R for read, W for program and erase of the whole block);
 * refused: SPH_ERR_PERMISSION and nothing touched. Then as chip_flash_*. */
int chip_read(struct chip *c, uint32_t comp, uint64_t off, void *buf, size_t len);
/* chip_flash_prefetch as a compartment (R needed, as for a read). */
int chip_prefetch(struct chip *c, uint32_t comp, uint64_t off, size_t len);
int chip_program(struct chip *c, uint32_t comp, uint64_t off, const void *data, size_t len);
int chip_erase(struct chip *c, uint32_t comp, uint32_t block);

/* Appends to the boot log: event is 1..47 printable ASCII characters.
 * Full log: SPH_ERR_EXHAUSTED (counted as dropped). */
int chip_bootlog_add(struct chip *c, uint32_t comp, int32_t status, const char *event);
/* Copies the i-th entry. SPH_ERR_NOT_FOUND past the end. */
int chip_bootlog_get(struct chip *c, size_t i, struct chip_bootlog_entry *e);
int chip_ram_info(struct chip *c, struct chip_ram_info *info);

#endif
