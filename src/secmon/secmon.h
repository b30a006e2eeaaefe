/*
 * secmon: the security monitor's store, erasure-coded, self-healing and
 * power-safe, on the chip's NOR flash (docs/formats.md §9).
 *
 * The store owns a range of erase blocks. An object (an image slot, an app's
 * mutable storage, device configuration) is written copy-on-write as stripes
 * of k data + m parity shards (Reed-Solomon, ISA-L); each shard lives in its
 * own erase block and carries a CRC32C, each object a SHA-256. Small objects
 * use fewer data shards (k = 1 is m + 1 copies) so they do not cost k + m
 * blocks of padding. The object table is committed through two alternating
 * superblock areas with sequence numbers: a power cut at any instant leaves
 * the old or the new table, never a mix.
 *
 * Reads verify every shard they use and the object's SHA-256; a bad or
 * missing shard is rebuilt from the others and (when mounted read-write)
 * rewritten to a fresh block. Beyond m bad shards in a stripe a read fails
 * with SPH_ERR_CORRUPT and a reason naming the object; it never returns data
 * other than what was written. Free blocks are chosen least-worn first.
 *
 * Only CHIP_COMP_SECMON programs or erases flash (the chip firewall enforces
 * it); another compartment may mount read-only (the bootloader reads image
 * slots this way) and then repairs nothing.
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_*, and SPH_ERR_INVALID_ARG for a NULL handle, name or output.
 * A handle is safe to share between threads (one lock per store).
 */
#ifndef SPHERE_SECMON_H
#define SPHERE_SECMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sphere/status.h>

#include "chip/chip.h"

#define SECMON_MAX_K       16
#define SECMON_MAX_M       4
#define SECMON_NAME_MAX    64          /* bytes of a name, without the NUL */
#define SECMON_OBJECT_MAX  (16u << 20) /* bytes of one object */
#define SECMON_APP_ID_LEN  16          /* an app's component id (a UUID) */
#define SECMON_REASON_MAX  160         /* a failure reason, with the NUL */
#define SECMON_WORN_ERASES 100000u     /* a block erased this often is worn (§9.6) */

/* The blocks [first_block, first_block + block_count) of the chip's flash. */
struct secmon_region {
	uint32_t first_block;
	uint32_t block_count;
};

/* Zeros mean the defaults of §9 (k, m, superblock-area size). */
struct secmon_params {
	uint8_t k;
	uint8_t m;
	uint32_t meta_blocks; /* blocks per superblock area (two areas) */
};

struct secmon;

/* Writes an empty store over region (as CHIP_COMP_SECMON), erasing what was
 * there. Returns 0, SPH_ERR_INVALID_ARG (bad params or region), SPH_ERR_NO_SPACE
 * (the region cannot hold the superblocks and one full stripe) or a chip
 * status (SPH_ERR_PERMISSION, SPH_ERR_POWER_LOSS...). */
int secmon_format(struct chip *c, const struct secmon_region *r, const struct secmon_params *p);

/* Mounts the store in region as compartment comp: CHIP_COMP_SECMON is
 * read-write, any other compartment read-only. Picks the valid superblock with
 * the higher sequence; mounting never writes. Returns 0 and *out (free with
 * secmon_unmount), SPH_ERR_NOT_FOUND (no valid superblock: not formatted),
 * SPH_ERR_MALFORMED (a superblock that checks out but breaks a rule of §9),
 * or a chip status. */
int secmon_mount(struct chip *c, uint32_t comp, const struct secmon_region *r, struct secmon **out);
/* Frees the handle (flash is already consistent). Accepts NULL. */
void secmon_unmount(struct secmon *s);

/* Atomically creates or replaces object name (1..SECMON_NAME_MAX printable
 * ASCII) with len bytes (0..SECMON_OBJECT_MAX): after a power cut the object
 * is wholly the old or wholly the new. Read-only mount: SPH_ERR_PERMISSION.
 * Full store: SPH_ERR_NO_SPACE (nothing changed). */
int secmon_put(struct secmon *s, const char *name, const void *data, size_t len);

/* Reads object name, verified, into a new buffer (free with free(); a 0-byte
 * object gives a non-NULL buffer and *len 0). Repairs what it can (read-write
 * mount). Returns 0, SPH_ERR_NOT_FOUND, SPH_ERR_CORRUPT (beyond repair; why,
 * when non-NULL, names the object and the stripe) or a chip status; on error
 * *data is NULL and *len 0. */
int secmon_get(struct secmon *s, const char *name, uint8_t **data, size_t *len, char *why,
               size_t why_cap);

/* Removes object name. SPH_ERR_NOT_FOUND if absent. */
int secmon_delete(struct secmon *s, const char *name);

struct secmon_object_info {
	char name[SECMON_NAME_MAX + 1];
	uint64_t len;
	uint8_t sha256[32];
	uint8_t k, m; /* data and parity shards per stripe for this object */
	uint32_t stripes;
};
/* Information on object name (SPH_ERR_NOT_FOUND if absent). */
int secmon_stat(struct secmon *s, const char *name, struct secmon_object_info *info);
/* The i-th system object (those secmon_put names) in name order, 0-based;
 * SPH_ERR_NOT_FOUND past the end. Apps' keys are listed per app only through
 * the app calls (secmon_stats' objects counts both). */
int secmon_object_at(struct secmon *s, size_t i, struct secmon_object_info *info);

struct secmon_scrub_report {
	uint64_t objects;       /* objects walked */
	uint64_t shards;        /* shards checked */
	uint64_t repaired;      /* shards rebuilt and rewritten */
	uint64_t unrecoverable; /* stripes beyond repair */
	uint64_t unrepaired;    /* bad shards found but not rewritten (read-only mount) */
	uint32_t worn_blocks;   /* blocks at or above the worn threshold (§9) */
	/* The first object beyond repair, "" if none. */
	char first_bad[SECMON_NAME_MAX + 1];
};
/* Health check: reads every shard of every object, rebuilds and rewrites bad
 * ones (read-write mount), counts what it found. Returns 0 when everything is
 * readable, SPH_ERR_CORRUPT when some stripe is beyond repair (rep says which),
 * or a chip status. rep is filled in every case it returns. */
int secmon_scrub(struct secmon *s, struct secmon_scrub_report *rep);

struct secmon_stats {
	struct secmon_params params; /* the store's k, m and area size */
	uint32_t blocks;             /* blocks in the region */
	uint32_t free_blocks;        /* blocks holding nothing live */
	uint32_t objects;
	uint64_t seq;                  /* the mounted superblock's sequence */
	uint64_t bytes_stored;         /* sum of object lengths */
	uint32_t erase_min, erase_max; /* wear over the region */
	double erase_mean;
	uint32_t worn_blocks;
	bool read_only;
};
int secmon_stats(struct secmon *s, struct secmon_stats *st);

/* ==== Application mutable storage ========================================== */

/* Sets app's quota in bytes (its manifest's MutableStorage size; 0 removes the
 * app's storage right but keeps data until secmon_app_erase). */
int secmon_app_set_quota(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], uint64_t bytes);
/* Writes app's key (1..32 printable ASCII) atomically. An app without a quota:
 * SPH_ERR_PERMISSION; the write would take the app past its quota (sum of its
 * values' lengths): SPH_ERR_NO_SPACE. An app can only ever name its own keys. */
int secmon_app_put(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key,
                   const void *data, size_t len);
/* As secmon_get, within app's storage. */
int secmon_app_get(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key,
                   uint8_t **data, size_t *len, char *why, size_t why_cap);
int secmon_app_delete(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key);
/* Bytes app uses and may use. */
int secmon_app_usage(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], uint64_t *used,
                     uint64_t *quota);
/* Deletes all of app's keys (uninstall). */
int secmon_app_erase(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN]);

#endif
