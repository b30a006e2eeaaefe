/* secmon: round trips, replace, delete, list, stats, remount, app storage,
 * firewall, read-only mounts, superblock copies, wear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "secmon_fx.h"

/* ---- round trips ------------------------------------------------------------ */

static void check_roundtrip(struct fx *x, const char *name, size_t len, uint64_t seed)
{
	uint8_t *d = fx_bytes(len, seed);
	struct secmon_object_info info;
	struct secmon_layout l;
	uint8_t md[32];

	assert_int_equal(secmon_put(x->s, name, d, len), 0);
	fx_expect(x->s, name, d, len);
	assert_int_equal(secmon_stat(x->s, name, &info), 0);
	assert_string_equal(info.name, name);
	assert_int_equal(info.len, len);
	assert_int_equal(secmon_sha256(d, len, NULL, 0, md), 0);
	assert_memory_equal(info.sha256, md, 32);
	secmon_layout_of(&x->s->st.g, len, &l);
	assert_int_equal(info.k, l.k_eff);
	assert_int_equal(info.m, x->s->st.g.m);
	assert_int_equal(info.stripes, l.stripes);
	fx_remount(x);
	fx_expect(x->s, name, d, len);
	free(d);
}

static void test_roundtrip_sizes(void **state)
{
	struct secmon_params p = {.k = 4, .m = 2, .meta_blocks = 8};
	struct fx *x = fx_new(512, 256, &p);
	uint32_t P = 512 - SECMON_SHARD_HDR;
	const size_t sizes[] = {0, 1, P - 1, P, P + 1, 3 * P, 4 * P, 4 * P + 1, 9 * P + 17};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "obj-%zu", i);
		check_roundtrip(x, name, sizes[i], 100 + i);
	}
	/* Everything still there, and the zero-length object uses no block. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[32];
		uint8_t *d = fx_bytes(sizes[i], 100 + i);
		snprintf(name, sizeof(name), "obj-%zu", i);
		fx_expect(x->s, name, d, sizes[i]);
		free(d);
	}
	assert_int_equal(fx_entry(x->s, "obj-0")->lay.nblocks, 0);
	assert_int_equal(fx_entry(x->s, "obj-1")->lay.nblocks, 3); /* k_eff 1: m + 1 copies */
	fx_free(x);
}

static void test_roundtrip_1mib(void **state)
{
	struct fx *x = fx_new(4096, 512, NULL);
	struct secmon_stats st;

	(void)state;
	check_roundtrip(x, "os/slot-a", 1u << 20, 7);
	assert_int_equal(secmon_stats(x->s, &st), 0);
	assert_int_equal(st.params.k, 8);
	assert_int_equal(st.params.m, 2);
	assert_int_equal(st.params.meta_blocks, 10);
	/* 1 MiB = 259 data shards: 32 stripes of 8 + 1 of 3, each + 2 parity. */
	assert_int_equal(st.blocks - 20 - st.free_blocks, 259 + 33 * 2);
	fx_free(x);
}

static void test_replace_delete(void **state)
{
	struct secmon_params p = {.k = 4, .m = 2, .meta_blocks = 4};
	struct fx *x = fx_new(512, 128, &p);
	struct secmon_stats st0, st1;
	uint8_t *a = fx_bytes(2000, 1), *b = fx_bytes(700, 2);
	uint8_t *got = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(secmon_stats(x->s, &st0), 0);
	assert_int_equal(secmon_put(x->s, "cfg", a, 2000), 0);
	assert_int_equal(secmon_put(x->s, "cfg", b, 700), 0);
	fx_expect(x->s, "cfg", b, 700);
	assert_int_equal(secmon_stats(x->s, &st1), 0);
	/* 700 bytes = 2 data shards, one stripe: 4 blocks; the old 10 are free. */
	assert_int_equal(st0.free_blocks - st1.free_blocks, 4);
	assert_int_equal(st1.objects, 1);
	assert_int_equal(st1.bytes_stored, 700);
	assert_true(st1.seq > st0.seq);
	fx_remount(x);
	fx_expect(x->s, "cfg", b, 700);
	assert_int_equal(secmon_delete(x->s, "cfg"), 0);
	assert_int_equal(secmon_delete(x->s, "cfg"), SPH_ERR_NOT_FOUND);
	assert_int_equal(secmon_get(x->s, "cfg", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	assert_null(got);
	fx_remount(x);
	assert_int_equal(secmon_get(x->s, "cfg", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	assert_int_equal(secmon_stats(x->s, &st1), 0);
	assert_int_equal(st1.free_blocks, st0.free_blocks);
	assert_int_equal(st1.objects, 0);
	free(a);
	free(b);
	fx_free(x);
}

static void test_list_and_args(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 64, &p);
	struct secmon_object_info info;
	const uint8_t app[SECMON_APP_ID_LEN] = {9};
	char long_name[SECMON_NAME_MAX + 2];
	uint8_t *got = (uint8_t *)1;
	size_t len = 1;

	(void)state;
	assert_int_equal(secmon_put(x->s, "b", "2", 1), 0);
	assert_int_equal(secmon_put(x->s, "a", "1", 1), 0);
	assert_int_equal(secmon_put(x->s, "c", "3", 1), 0);
	assert_int_equal(secmon_app_set_quota(x->s, app, 100), 0);
	assert_int_equal(secmon_app_put(x->s, app, "a", "x", 1), 0);
	assert_int_equal(secmon_object_at(x->s, 0, &info), 0);
	assert_string_equal(info.name, "a");
	assert_int_equal(secmon_object_at(x->s, 1, &info), 0);
	assert_string_equal(info.name, "b");
	assert_int_equal(secmon_object_at(x->s, 2, &info), 0);
	assert_string_equal(info.name, "c");
	assert_int_equal(secmon_object_at(x->s, 3, &info), SPH_ERR_NOT_FOUND); /* app keys hidden */

	memset(long_name, 'n', sizeof(long_name));
	long_name[SECMON_NAME_MAX + 1] = '\0';
	assert_int_equal(secmon_put(x->s, long_name, "x", 1), SPH_ERR_INVALID_ARG);
	long_name[SECMON_NAME_MAX] = '\0';
	assert_int_equal(secmon_put(x->s, long_name, "x", 1), 0);
	assert_int_equal(secmon_put(x->s, "", "x", 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(x->s, "tab\there", "x", 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(x->s, NULL, "x", 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(NULL, "a", "x", 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(x->s, "a", NULL, 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(x->s, "a", "x", SECMON_OBJECT_MAX + 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_put(x->s, "z", NULL, 0), 0);
	assert_int_equal(secmon_get(x->s, "nope", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	assert_null(got);
	assert_int_equal(len, 0);
	assert_int_equal(secmon_get(x->s, "a", NULL, &len, NULL, 0), SPH_ERR_INVALID_ARG);
	assert_int_equal(secmon_stat(x->s, "nope", &info), SPH_ERR_NOT_FOUND);
	secmon_unmount(NULL);
	fx_free(x);
}

static void test_no_space_changes_nothing(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 64, &p); /* 63 - 8 = 55 data blocks */
	struct secmon_stats st0, st1;
	uint32_t P = 512 - SECMON_SHARD_HDR;
	uint8_t *big = fx_bytes(40 * P, 3), *d = fx_bytes(10 * P, 4);
	int rc;

	(void)state;
	assert_int_equal(secmon_put(x->s, "big", big, 20 * P), 0); /* 30 blocks */
	assert_int_equal(secmon_stats(x->s, &st0), 0);
	/* A replace needs room for the new copy before the old one goes. */
	rc = secmon_put(x->s, "big", big, 40 * P);
	assert_int_equal(rc, SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_stats(x->s, &st1), 0);
	assert_int_equal(st1.seq, st0.seq);
	assert_int_equal(st1.free_blocks, st0.free_blocks);
	fx_expect(x->s, "big", big, 20 * P);
	assert_int_equal(secmon_put(x->s, "d", d, 10 * P), 0); /* 15 blocks */
	assert_int_equal(secmon_put(x->s, "e", d, 10 * P), SPH_ERR_NO_SPACE);
	fx_remount(x);
	fx_expect(x->s, "big", big, 20 * P);
	fx_expect(x->s, "d", d, 10 * P);
	free(big);
	free(d);
	fx_free(x);
}

static void test_format_and_mount_errors(void **state)
{
	struct fx *x = fx_new(512, 64, &(struct secmon_params){.k = 2, .m = 1, .meta_blocks = 4});
	struct secmon *s = NULL;
	struct secmon_region small = {1, 8}, outside = {60, 10}, other = {1, 40};
	struct secmon_params bad;

	(void)state;
	assert_int_equal(secmon_format(x->c, &small,
	                               &(struct secmon_params){.k = 4, .m = 2, .meta_blocks = 2}),
	                 SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_format(x->c, &outside, NULL), SPH_ERR_INVALID_ARG);
	bad = (struct secmon_params){.k = 17};
	assert_int_equal(secmon_format(x->c, &x->r, &bad), SPH_ERR_INVALID_ARG);
	bad = (struct secmon_params){.m = 5};
	assert_int_equal(secmon_format(x->c, &x->r, &bad), SPH_ERR_INVALID_ARG);
	bad = (struct secmon_params){.meta_blocks = 3};
	assert_int_equal(secmon_format(x->c, &x->r, &bad), SPH_ERR_INVALID_ARG);
	/* The store records its region: another region is not this store. */
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_SECMON, &other, &s), SPH_ERR_MALFORMED);
	assert_null(s);
	/* Block 0 is outside the store; an unformatted region is not found. */
	secmon_unmount(x->s);
	x->s = NULL;
	for (uint32_t b = 1; b < 5; b++)
		assert_int_equal(chip_erase(x->c, CHIP_COMP_SECMON, b), 0);
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_SECMON, &x->r, &s), SPH_ERR_NOT_FOUND);
	fx_free(x);
}

/* ---- app storage ------------------------------------------------------------ */

static void test_app_storage(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 128, &p);
	uint8_t a[SECMON_APP_ID_LEN], b[SECMON_APP_ID_LEN];
	uint8_t *got = NULL, *big = fx_bytes(3000, 5);
	uint64_t used, quota;
	size_t len;

	(void)state;
	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	/* No quota, no storage. */
	assert_int_equal(secmon_app_put(x->s, a, "k", "v", 1), SPH_ERR_PERMISSION);
	assert_int_equal(secmon_app_set_quota(x->s, a, 1000), 0);
	assert_int_equal(secmon_app_set_quota(x->s, b, 5000), 0);
	assert_int_equal(secmon_app_put(x->s, a, "k", "alpha", 5), 0);
	assert_int_equal(secmon_app_put(x->s, b, "k", "bravo!", 6), 0);
	/* Same key, two apps, two values: each app sees only its own. */
	assert_int_equal(secmon_app_get(x->s, a, "k", &got, &len, NULL, 0), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(got, "alpha", 5);
	free(got);
	assert_int_equal(secmon_app_get(x->s, b, "k", &got, &len, NULL, 0), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(got, "bravo!", 6);
	free(got);
	assert_int_equal(secmon_app_put(x->s, b, "only-b", "x", 1), 0);
	assert_int_equal(secmon_app_get(x->s, a, "only-b", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	assert_int_equal(secmon_app_delete(x->s, a, "only-b"), SPH_ERR_NOT_FOUND);
	/* An app key is not a system object and the reverse. */
	assert_int_equal(secmon_get(x->s, "k", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	/* Quota: the sum of the app's values. */
	assert_int_equal(secmon_app_put(x->s, a, "big", big, 996), SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_app_put(x->s, a, "big", big, 995), 0);
	assert_int_equal(secmon_app_usage(x->s, a, &used, &quota), 0);
	assert_int_equal(used, 1000);
	assert_int_equal(quota, 1000);
	assert_int_equal(secmon_app_put(x->s, a, "z", "v", 1), SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_app_usage(x->s, b, &used, &quota), 0);
	assert_int_equal(used, 7);
	assert_int_equal(quota, 5000);
	fx_remount(x);
	assert_int_equal(secmon_app_get(x->s, a, "big", &got, &len, NULL, 0), 0);
	assert_int_equal(len, 995);
	assert_memory_equal(got, big, 995);
	free(got);
	fx_free(x);
	free(big);
}

static void test_app_quota_rules(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 128, &p);
	uint8_t a[SECMON_APP_ID_LEN] = {1, 2, 3};
	uint8_t *big = fx_bytes(3000, 6), *got = NULL;
	uint64_t used, quota;
	size_t len;
	char key[40];

	(void)state;
	assert_int_equal(secmon_app_set_quota(x->s, a, 1000), 0);
	assert_int_equal(secmon_app_put(x->s, a, "x", big, 600), 0);
	assert_int_equal(secmon_app_put(x->s, a, "y", big, 401), SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_app_put(x->s, a, "y", big, 400), 0);
	/* Replacing counts the new length instead of the old. */
	assert_int_equal(secmon_app_put(x->s, a, "x", big, 601), SPH_ERR_NO_SPACE);
	assert_int_equal(secmon_app_put(x->s, a, "x", big, 100), 0);
	assert_int_equal(secmon_app_usage(x->s, a, &used, &quota), 0);
	assert_int_equal(used, 500);
	assert_int_equal(quota, 1000);
	/* Keys: 1..32 printable. */
	memset(key, 'k', sizeof(key));
	key[33] = '\0';
	assert_int_equal(secmon_app_put(x->s, a, key, "v", 1), SPH_ERR_INVALID_ARG);
	key[32] = '\0';
	assert_int_equal(secmon_app_put(x->s, a, key, "v", 1), 0);
	/* Quota and data persist. */
	fx_remount(x);
	assert_int_equal(secmon_app_usage(x->s, a, &used, &quota), 0);
	assert_int_equal(used, 501);
	assert_int_equal(quota, 1000);
	/* Quota 0: no more writes, data kept until erase. */
	assert_int_equal(secmon_app_set_quota(x->s, a, 0), 0);
	assert_int_equal(secmon_app_put(x->s, a, "z", "v", 1), SPH_ERR_PERMISSION);
	assert_int_equal(secmon_app_get(x->s, a, "y", &got, &len, NULL, 0), 0);
	assert_int_equal(len, 400);
	assert_memory_equal(got, big, 400);
	free(got);
	fx_remount(x);
	assert_int_equal(secmon_app_erase(x->s, a), 0);
	assert_int_equal(secmon_app_get(x->s, a, "y", &got, &len, NULL, 0), SPH_ERR_NOT_FOUND);
	assert_int_equal(secmon_app_usage(x->s, a, &used, &quota), 0);
	assert_int_equal(used, 0);
	assert_int_equal(quota, 0);
	assert_int_equal(x->s->st.t.napps, 0); /* the record went with the last key */
	assert_int_equal(secmon_app_delete(x->s, a, "y"), SPH_ERR_NOT_FOUND);
	free(big);
	fx_free(x);
}

/* ---- firewall and read-only mounts ------------------------------------------ */

static void test_firewall(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 64, &p);
	struct secmon *ro = NULL, *app = NULL;
	struct secmon_stats st;
	uint8_t id[SECMON_APP_ID_LEN] = {7};
	uint8_t blk[512];

	(void)state;
	memset(blk, 0, sizeof(blk));
	assert_int_equal(secmon_put(x->s, "a", "1", 1), 0);
	/* Only the security monitor may write the store's flash. */
	assert_int_equal(chip_program(x->c, CHIP_COMP_OS, 20 * 512, blk, 512), SPH_ERR_PERMISSION);
	assert_int_equal(chip_erase(x->c, CHIP_COMP_OS, 20), SPH_ERR_PERMISSION);
	assert_true(chip_fw_refusals(chip_fw(x->c), CHIP_COMP_OS) >= 2);
	/* The OS mounts read-only. */
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_OS, &x->r, &ro), 0);
	assert_int_equal(secmon_stats(ro, &st), 0);
	assert_true(st.read_only);
	assert_int_equal(secmon_put(ro, "b", "2", 1), SPH_ERR_PERMISSION);
	assert_int_equal(secmon_delete(ro, "a"), SPH_ERR_PERMISSION);
	assert_int_equal(secmon_app_set_quota(ro, id, 10), SPH_ERR_PERMISSION);
	assert_int_equal(secmon_app_erase(ro, id), SPH_ERR_PERMISSION);
	fx_expect(ro, "a", (const uint8_t *)"1", 1);
	secmon_unmount(ro);
	/* An app without a grant cannot even read it. */
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_APP0, &x->r, &app), SPH_ERR_PERMISSION);
	assert_null(app);
	fx_free(x);
}

static void test_readonly_never_writes(void **state)
{
	struct secmon_params p = {.k = 3, .m = 2, .meta_blocks = 4};
	struct fx *x = fx_new(512, 128, &p);
	uint32_t P = 512 - SECMON_SHARD_HDR;
	uint8_t *d = fx_bytes(5 * P, 9);
	struct secmon *ro = NULL;
	struct secmon_scrub_report rep;
	struct chip_faults f;
	uint64_t ops;

	(void)state;
	assert_int_equal(secmon_put(x->s, "img", d, 5 * P), 0);
	/* Damage two shards of stripe 0: a flipped bit, a lost block. */
	memset(&f, 0, sizeof(f));
	f.nflips = 1;
	f.flips[0].offset = (uint64_t)fx_entry(x->s, "img")->blocks[0] * 512 + 100;
	f.flips[0].bit = 3;
	f.nlost = 1;
	f.lost[0] = fx_entry(x->s, "img")->blocks[1];
	assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);

	ops = chip_flash_ops(fx_flash(x));
	assert_int_equal(secmon_mount(x->c, CHIP_COMP_OS, &x->r, &ro), 0);
	fx_expect(ro, "img", d, 5 * P); /* rebuilt in memory */
	assert_int_equal(secmon_scrub(ro, &rep), 0);
	assert_int_equal(rep.repaired, 0);
	assert_int_equal(rep.unrepaired, 2);
	assert_int_equal(rep.unrecoverable, 0);
	assert_int_equal(chip_flash_ops(fx_flash(x)), ops);
	secmon_unmount(ro);
	/* Mounting writes nothing either. */
	fx_remount(x);
	assert_int_equal(chip_flash_ops(fx_flash(x)), ops);
	/* The read-write mount heals on read. */
	fx_expect(x->s, "img", d, 5 * P);
	assert_true(chip_flash_ops(fx_flash(x)) > ops);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.repaired, 0);
	assert_int_equal(rep.unrepaired, 0);
	free(d);
	fx_free(x);
}

/* ---- superblocks ------------------------------------------------------------ */

static void test_superblock_copy_damage(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 4};
	struct fx *x = fx_new(512, 64, &p);
	struct secmon_scrub_report rep;
	struct chip_faults f;
	uint64_t seq;
	uint32_t j;

	(void)state;
	assert_int_equal(secmon_put(x->s, "a", "1", 1), 0);
	seq = x->s->st.seq;
	/* Flip a bit in copy 0 of the current table. */
	j = 2 * (uint32_t)(seq & 1);
	memset(&f, 0, sizeof(f));
	f.nflips = 1;
	f.flips[0].offset = (uint64_t)(x->r.first_block + j) * 512 + 90;
	assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
	fx_remount(x);
	assert_int_equal(x->s->st.seq, seq); /* no rollback: the sibling copy holds */
	assert_true(x->s->st.degraded);
	fx_expect(x->s, "a", (const uint8_t *)"1", 1);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.repaired, 1);
	fx_remount(x);
	assert_false(x->s->st.degraded);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.repaired, 0);
	fx_expect(x->s, "a", (const uint8_t *)"1", 1);
	fx_free(x);
}

/* ---- wear ------------------------------------------------------------------- */

static void test_wear_levelling_and_worn(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 2};
	struct fx *x = fx_new(512, 40, &p);
	struct secmon_stats st;
	struct secmon_scrub_report rep;
	uint32_t lo = UINT32_MAX, hi = 0;
	uint8_t *d = fx_bytes(900, 11);

	(void)state;
	for (int i = 0; i < 300; i++) {
		d[0] = (uint8_t)i;
		assert_int_equal(secmon_put(x->s, "hot", d, 900), 0);
	}
	fx_expect(x->s, "hot", d, 900);
	/* Data blocks: least-worn first spreads 300 x 3 erases over 35 blocks. */
	for (uint32_t b = x->r.first_block + 4; b < x->nb; b++) {
		uint32_t n = 0;
		assert_int_equal(chip_flash_erase_count(fx_flash(x), b, &n), 0);
		lo = n < lo ? n : lo;
		hi = n > hi ? n : hi;
	}
	assert_true(hi - lo <= 2);
	assert_int_equal(secmon_stats(x->s, &st), 0);
	assert_int_equal(st.worn_blocks, 0);
	/* Wear one block out (raw erases, as a test may). */
	for (uint32_t i = 0; i < SECMON_WORN_ERASES; i++)
		assert_int_equal(chip_flash_erase(fx_flash(x), x->nb - 1), 0);
	assert_int_equal(secmon_stats(x->s, &st), 0);
	assert_int_equal(st.worn_blocks, 1);
	assert_true(st.erase_max >= SECMON_WORN_ERASES);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.worn_blocks, 1);
	free(d);
	fx_free(x);
}

/* Commits append to their superblock slot: 300 commits of a small table
 * erase each superblock block a few times, not 150 times, and every commit
 * is still found (remount after each batch). */
static void test_superblock_appends(void **state)
{
	struct secmon_params p = {.k = 2, .m = 1, .meta_blocks = 8};
	struct fx *x = fx_new(512, 64, &p);
	uint32_t hi = 0;
	uint8_t d[8] = {0};

	(void)state;
	for (int i = 0; i < 300; i++) {
		d[0] = (uint8_t)i;
		assert_int_equal(secmon_put(x->s, "counter", d, sizeof(d)), 0);
		if (i % 50 == 49) {
			fx_remount(x);
			fx_expect(x->s, "counter", d, sizeof(d));
		}
	}
	for (uint32_t b = 0; b < 2 * p.meta_blocks; b++) {
		uint32_t n = 0;
		assert_int_equal(chip_flash_erase_count(fx_flash(x), x->r.first_block + b, &n), 0);
		hi = n > hi ? n : hi;
	}
	/* 150 commits per area into slots of 4 x 512 bytes, records of about 190
	 * bytes: about 15 erases per block (16 measured), where erasing before
	 * every commit made it 150. */
	assert_true(hi <= 30);
	fx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip_sizes),
	        cmocka_unit_test(test_roundtrip_1mib),
	        cmocka_unit_test(test_replace_delete),
	        cmocka_unit_test(test_list_and_args),
	        cmocka_unit_test(test_no_space_changes_nothing),
	        cmocka_unit_test(test_format_and_mount_errors),
	        cmocka_unit_test(test_app_storage),
	        cmocka_unit_test(test_app_quota_rules),
	        cmocka_unit_test(test_firewall),
	        cmocka_unit_test(test_readonly_never_writes),
	        cmocka_unit_test(test_superblock_copy_damage),
	        cmocka_unit_test(test_wear_levelling_and_worn),
	        cmocka_unit_test(test_superblock_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
