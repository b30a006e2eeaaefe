/*
 * Private to src/chip: the flash object shared by flash.c (the medium) and
 * faults.c (the injector), and the metadata layout (docs/formats.md §6.2;
 * keep the two in step).
 */
#ifndef SPHERE_CHIP_INTERNAL_H
#define SPHERE_CHIP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "chip.h"

/* Metadata file: a 40-byte header, then one 8-byte record per block. */
#define CHIP_META_MAGIC           "SPHFLMT1"
#define CHIP_META_MAGIC_LEN       8
#define CHIP_META_VERSION         1u
#define CHIP_META_HDR_LEN         40
#define CHIP_META_OFF_MAGIC       0
#define CHIP_META_OFF_VERSION     8
#define CHIP_META_OFF_BLOCK_SIZE  12
#define CHIP_META_OFF_BLOCK_COUNT 16
#define CHIP_META_OFF_RESERVED    20
#define CHIP_META_OFF_PROGRAMS    24
#define CHIP_META_OFF_ERASES      32
#define CHIP_META_REC_LEN         8 /* erase_count u32, flags u32 */
#define CHIP_META_FLAG_LOST       0x1u
#define CHIP_META_FLAGS_KNOWN     CHIP_META_FLAG_LOST

_Static_assert(CHIP_META_OFF_ERASES + 8 == CHIP_META_HDR_LEN, "metadata header is pinned by §6.2");
_Static_assert(sizeof(CHIP_META_MAGIC) - 1 == CHIP_META_MAGIC_LEN, "magic is 8 bytes");

/* Bytes a program checks per read of the current contents. */
#define CHIP_SCRATCH_MIN (64u * 1024u)
/* Programs at least this long start their writeback at once (flash.c). */
#define CHIP_EARLY_WRITEBACK (64u * 1024u)

struct chip_flash {
	pthread_mutex_t mu;
	int fd;  /* image */
	int mfd; /* metadata */
	struct chip_flash_geometry geo;
	uint64_t size;
	uint32_t *erase_counts; /* block_count entries, mirrors the metadata */
	uint32_t *flags;        /* block_count entries, CHIP_META_FLAG_* */
	/* RAM only, per block: 1 = all 0xff since a complete erase by this handle
	 * (a program of it then needs no read-back check); 0 = unknown. */
	uint8_t *erased;
	uint8_t *scratch;                      /* scratch_len bytes */
	size_t scratch_len;                    /* max(block_size, CHIP_SCRATCH_MIN) */
	uint64_t total_programs, total_erases; /* lifetime, mirrors the metadata */
	uint64_t ops;                          /* accepted program/erase since open */
	uint64_t reads;                        /* successful reads since open */
	bool sync_every_op;
	bool dirty;        /* image written since the last fdatasync */
	bool mdirty;       /* metadata records written since the last fdatasync */
	bool totals_dirty; /* programs counted since the totals were last written */
	/* Fault injector state (faults.c). */
	uint64_t cut_at; /* tear op number cut_at; 0 = none armed */
	uint64_t cut_seed;
	bool power_lost;
	bool has_cut;
	struct chip_cut last_cut;
};

static inline void chip_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void chip_put_le64(uint8_t *p, uint64_t v)
{
	chip_put_le32(p, (uint32_t)v);
	chip_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t chip_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t chip_get_le64(const uint8_t *p)
{
	return (uint64_t)chip_get_le32(p) | (uint64_t)chip_get_le32(p + 4) << 32;
}

/* ---- flash.c, for faults.c (f->mu held by the caller) ---------------------- */

/* pread/pwrite of exactly len bytes; SPH_ERR_IO otherwise. */
int chip_pread_all(int fd, void *buf, size_t len, uint64_t off);
int chip_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* XORs mask into the image byte at off (a bit flip of the medium). */
int chip_flash_xor_locked(struct chip_flash *f, uint64_t off, uint8_t mask);
/* Marks a block lost in memory and in the metadata. */
int chip_flash_mark_lost_locked(struct chip_flash *f, uint32_t block);

/* ---- faults.c, for flash.c -------------------------------------------------- */

/* How many of len bytes a torn operation number op lands: a deterministic
 * function of (seed, op, len), uniform in 0..len inclusive (§6.3). */
uint64_t chip_faults_torn_len(uint64_t seed, uint64_t op, uint64_t len);

#endif
