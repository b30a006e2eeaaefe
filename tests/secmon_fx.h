/* A chip with a formatted secmon store, shared by the secmon tests. */
#ifndef SPHERE_SECMON_FX_H
#define SPHERE_SECMON_FX_H

#include <stdlib.h>
#include <string.h>

#include "chip/chip.h"
#include "secmon/secmon.h"
#include "secmon/secmon_internal.h"
#include "testutil.h"

struct fx {
	char *dir;
	struct chip *c;
	struct secmon_region r;
	struct secmon_params p;
	uint32_t bs, nb;
	struct secmon *s;
};

/* secmon R|W and the OS R on the region; nothing else. */
static inline void fx_grant(struct fx *x)
{
	struct chip_res res =
	        chip_res_region(CHIP_RES_FLASH, (uint64_t)x->r.first_block * x->bs,
	                        (uint64_t)(x->r.first_block + x->r.block_count) * x->bs);
	assert_int_equal(
	        chip_fw_grant(chip_fw(x->c), CHIP_COMP_SECMON, &res, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_grant(chip_fw(x->c), CHIP_COMP_OS, &res, CHIP_FW_R), 0);
}

/* Opens a fresh chip of nb blocks of bs bytes, formats the whole flash but
 * the first block with p (NULL: defaults) and mounts it read-write. */
static inline struct fx *fx_new(uint32_t bs, uint32_t nb, const struct secmon_params *p)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct chip_config cfg = {.geometry = {bs, nb}, .create = true};

	assert_non_null(x);
	x->dir = tu_mkdtemp();
	x->bs = bs;
	x->nb = nb;
	x->r.first_block = 1;
	x->r.block_count = nb - 1;
	if (p)
		x->p = *p;
	assert_int_equal(chip_open(x->dir, &cfg, &x->c), 0);
	fx_grant(x);
	assert_int_equal(secmon_format(x->c, &x->r, p), 0);
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_SECMON, &x->r, &x->s), 0);
	return x;
}

static inline void fx_remount(struct fx *x)
{
	secmon_unmount(x->s);
	x->s = NULL;
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_SECMON, &x->r, &x->s), 0);
}

static inline void fx_free(struct fx *x)
{
	if (!x)
		return;
	secmon_unmount(x->s);
	chip_close(x->c);
	tu_rmtree(x->dir);
	free(x->dir);
	free(x);
}

/* Deterministic test data. */
static inline uint64_t fx_rand(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint8_t *fx_bytes(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len ? len : 1);
	uint64_t st = seed;

	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)fx_rand(&st);
	return b;
}

static inline void fx_expect(struct secmon *s, const char *name, const uint8_t *want, size_t len)
{
	uint8_t *got = NULL;
	size_t glen = 99;
	char why[SECMON_REASON_MAX];

	int rc = secmon_get(s, name, &got, &glen, why, sizeof(why));
	if (rc != 0)
		fail_msg("get %s: %d (%s)", name, rc, why);
	assert_non_null(got);
	assert_int_equal(glen, len);
	if (len)
		assert_memory_equal(got, want, len);
	free(got);
}

/* The block list of system object name (white-box: the mounted table). */
static inline const struct secmon_entry *fx_entry(struct secmon *s, const char *name)
{
	bool found;
	size_t i = secmon_table_find(&s->st.t, SECMON_NS_SYSTEM, NULL, name, strlen(name), &found);

	assert_true(found);
	return &s->st.t.obj[i];
}

static inline struct chip_flash *fx_flash(struct fx *x)
{
	return chip_flash(x->c);
}

#endif
