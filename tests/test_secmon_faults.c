/* secmon under faults: seeded corruption campaigns (bit flips, erased and lost
 * blocks) within and beyond m per stripe, and exhaustive power-loss loops
 * (a cut at every flash operation of put, replace, delete and scrub-repair). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "secmon_fx.h"

#define BS 512u
#define P  (BS - SECMON_SHARD_HDR)

/* ---- a set of objects and what they must read back as ----------------------- */

#define NOBJ 7
static const size_t obj_len[NOBJ] = {0, 1, 300, 4 * P, 9 * P + 5, 13 * P, 2 * P + 7};

struct corpus {
	char name[NOBJ][16];
	uint8_t *data[NOBJ];
};

static void corpus_put(struct fx *x, struct corpus *c, uint64_t seed)
{
	for (int i = 0; i < NOBJ; i++) {
		snprintf(c->name[i], sizeof(c->name[i]), "obj%d", i);
		c->data[i] = fx_bytes(obj_len[i], seed + (uint64_t)i);
		assert_int_equal(secmon_put(x->s, c->name[i], c->data[i], obj_len[i]), 0);
	}
}

static void corpus_free(struct corpus *c)
{
	for (int i = 0; i < NOBJ; i++)
		free(c->data[i]);
}

static void corpus_expect_all(struct fx *x, const struct corpus *c)
{
	for (int i = 0; i < NOBJ; i++)
		fx_expect(x->s, c->name[i], c->data[i], obj_len[i]);
}

/* ---- damage ------------------------------------------------------------------- */

struct damage {
	struct chip_faults plan; /* flips and lost blocks, applied in batches */
	uint32_t shards;         /* shards damaged */
	uint64_t rng;
};

static void damage_flush(struct fx *x, struct damage *d)
{
	if (d->plan.nflips || d->plan.nlost)
		assert_int_equal(chip_faults_set(fx_flash(x), &d->plan), 0);
	memset(&d->plan, 0, sizeof(d->plan));
}

/* Damages the shard in block blk one of three ways. */
static void damage_block(struct fx *x, struct damage *d, uint16_t blk)
{
	uint32_t how = (uint32_t)(fx_rand(&d->rng) % 3);

	if (d->plan.nflips + 3 > CHIP_FAULTS_MAX_FLIPS || d->plan.nlost + 1 > CHIP_FAULTS_MAX_LOST)
		damage_flush(x, d);
	if (how == 0) {
		uint32_t n = 1 + (uint32_t)(fx_rand(&d->rng) % 3);
		for (uint32_t i = 0; i < n; i++) {
			struct chip_flip *f = &d->plan.flips[d->plan.nflips];
			bool dup = false;
			f->offset = (uint64_t)blk * BS + fx_rand(&d->rng) % BS;
			f->bit = (uint8_t)(fx_rand(&d->rng) % 8);
			for (uint32_t j = 0; j < d->plan.nflips; j++)
				dup |= d->plan.flips[j].offset == f->offset &&
				       d->plan.flips[j].bit == f->bit;
			if (!dup)
				d->plan.nflips++;
		}
	} else if (how == 1) {
		assert_int_equal(chip_flash_erase(fx_flash(x), blk), 0);
	} else {
		d->plan.lost[d->plan.nlost++] = blk;
	}
	d->shards++;
}

/* In every stripe of every object, damages `lo + rand % (hi - lo + 1)`
 * distinct shards. */
static void damage_store(struct fx *x, struct damage *d, uint32_t lo, uint32_t hi)
{
	const struct secmon_table *t = &x->s->st.t;

	for (uint32_t i = 0; i < t->nobj; i++) {
		const struct secmon_entry *e = &t->obj[i];
		for (uint32_t st = 0; st < e->lay.stripes; st++) {
			uint32_t base = secmon_stripe_base(&x->s->st.g, &e->lay, st);
			uint32_t n = secmon_stripe_k(&e->lay, st) + e->m;
			uint32_t want = lo + (uint32_t)(fx_rand(&d->rng) % (hi - lo + 1));
			bool hit[SECMON_MAX_K + SECMON_MAX_M] = {false};
			for (uint32_t k = 0; k < want && k < n; k++) {
				uint32_t j;
				do
					j = (uint32_t)(fx_rand(&d->rng) % n);
				while (hit[j]);
				hit[j] = true;
				damage_block(x, d, e->blocks[base + j]);
			}
		}
	}
	damage_flush(x, d);
}

static const struct secmon_params camp = {.k = 4, .m = 2, .meta_blocks = 4};

/* Up to m shards lost per stripe: every read is right, everything is repaired,
 * by get and by scrub, and a second scrub finds nothing. */
static void test_campaign_within_m(void **state)
{
	struct fx *x = fx_new(BS, 256, &camp);
	struct corpus c;
	struct secmon_scrub_report rep;

	(void)state;
	corpus_put(x, &c, 1000);
	for (uint64_t round = 1; round <= 8; round++) {
		struct damage d = {.rng = round * 0x1234567};
		damage_store(x, &d, 0, camp.m);
		assert_true(d.shards > 0);
		if (round & 1) {
			/* Reads repair what they touch; scrub does the rest. */
			corpus_expect_all(x, &c);
			assert_int_equal(secmon_scrub(x->s, &rep), 0);
			assert_true(rep.repaired <= d.shards);
		} else {
			assert_int_equal(secmon_scrub(x->s, &rep), 0);
			assert_int_equal(rep.repaired, d.shards);
		}
		assert_int_equal(rep.unrecoverable, 0);
		assert_int_equal(rep.unrepaired, 0);
		assert_string_equal(rep.first_bad, "");
		assert_int_equal(secmon_scrub(x->s, &rep), 0);
		assert_int_equal(rep.repaired, 0);
		assert_int_equal(rep.unrepaired, 0);
		fx_remount(x);
		corpus_expect_all(x, &c);
	}
	corpus_free(&c);
	fx_free(x);
}

/* More than m shards lost in some stripes: those objects fail with
 * SPH_ERR_CORRUPT naming them and the stripe, every read that succeeds returns
 * exactly what was written, and the rest is still repaired. */
static void test_campaign_beyond_m(void **state)
{
	struct fx *x = fx_new(BS, 256, &camp);
	struct corpus c;
	struct secmon_scrub_report rep;
	uint64_t ok_reads = 0, corrupt_reads = 0;

	(void)state;
	corpus_put(x, &c, 2000);
	for (uint64_t round = 1; round <= 4; round++) {
		struct damage d = {.rng = round * 0x9876543};
		const struct secmon_table *t = &x->s->st.t;
		bool broken[NOBJ] = {false};
		/* Objects 2, 4 (and 5 in odd rounds): one stripe gets m + 1..k + m hits. */
		for (uint32_t i = 0; i < t->nobj; i++) {
			const struct secmon_entry *e = &t->obj[i];
			int idx = e->name[3] - '0';
			uint32_t st, base, n, want;
			if (!(idx == 2 || idx == 4 || (idx == 5 && (round & 1))))
				continue;
			st = (uint32_t)(fx_rand(&d.rng) % e->lay.stripes);
			base = secmon_stripe_base(&x->s->st.g, &e->lay, st);
			n = secmon_stripe_k(&e->lay, st) + e->m;
			want = e->m + 1 + (uint32_t)(fx_rand(&d.rng) % (n - e->m));
			for (uint32_t j = 0; j < want; j++)
				damage_block(x, &d,
				             e->blocks[base + (j * 7 + (uint32_t)round) % n]);
			broken[idx] = true;
		}
		damage_flush(x, &d);
		for (int i = 0; i < NOBJ; i++) {
			uint8_t *got = NULL;
			size_t len = 0;
			char why[SECMON_REASON_MAX];
			int rc = secmon_get(x->s, c.name[i], &got, &len, why, sizeof(why));
			if (rc == 0) {
				/* Never wrong data. */
				assert_int_equal(len, obj_len[i]);
				if (len)
					assert_memory_equal(got, c.data[i], len);
				ok_reads++;
				assert_false(broken[i]);
			} else {
				assert_int_equal(rc, SPH_ERR_CORRUPT);
				assert_null(got);
				assert_non_null(strstr(why, c.name[i]));
				assert_non_null(strstr(why, "stripe"));
				assert_true(broken[i]);
				corrupt_reads++;
			}
			free(got);
		}
		assert_int_equal(secmon_scrub(x->s, &rep), SPH_ERR_CORRUPT);
		assert_true(rep.unrecoverable >= 2);
		assert_string_equal(rep.first_bad, "obj2");
		assert_int_equal(secmon_scrub(x->s, &rep), SPH_ERR_CORRUPT);
		assert_int_equal(rep.repaired, 0);
		/* Rewrite the broken ones: the store is whole again. */
		for (int i = 0; i < NOBJ; i++) {
			if (broken[i])
				assert_int_equal(secmon_put(x->s, c.name[i], c.data[i], obj_len[i]),
				                 0);
		}
		assert_int_equal(secmon_scrub(x->s, &rep), 0);
		corpus_expect_all(x, &c);
	}
	assert_true(ok_reads > 0 && corrupt_reads > 0);
	corpus_free(&c);
	fx_free(x);
}

/* Random flips anywhere on the flash (superblocks included): whatever mounts
 * and reads, reads right. */
static void test_random_flips_never_wrong(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 6; seed++) {
		struct fx *x = fx_new(BS, 128, &camp);
		struct chip_faults f = {.seed = seed, .has_seed = true, .random_flips = 40};
		struct secmon_scrub_report rep;
		struct corpus c;
		corpus_put(x, &c, 3000 + seed);
		assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
		secmon_unmount(x->s);
		x->s = NULL;
		if (secmon_mount(x->c, CHIP_COMP_SECMON, &x->r, &x->s) == 0) {
			for (int i = 0; i < NOBJ; i++) {
				uint8_t *got = NULL;
				size_t len = 0;
				if (secmon_get(x->s, c.name[i], &got, &len, NULL, 0) == 0) {
					assert_int_equal(len, obj_len[i]);
					if (len)
						assert_memory_equal(got, c.data[i], len);
				}
				free(got);
			}
			(void)secmon_scrub(x->s, &rep);
		}
		corpus_free(&c);
		fx_free(x);
	}
}

/* ---- power loss ------------------------------------------------------------------ */

#define PL_NB 64u
static const struct secmon_params plp = {.k = 3, .m = 2, .meta_blocks = 2};

struct pl {
	uint8_t *a, *b, *bnew, *n;
	size_t alen, blen, bnewlen, nlen;
};

static void pl_data(struct pl *d)
{
	d->alen = 1;
	d->blen = 1500;
	d->bnewlen = 1100;
	d->nlen = 2000;
	d->a = fx_bytes(d->alen, 1);
	d->b = fx_bytes(d->blen, 2);
	d->bnew = fx_bytes(d->bnewlen, 3);
	d->n = fx_bytes(d->nlen, 4);
}

static void pl_free(struct pl *d)
{
	free(d->a);
	free(d->b);
	free(d->bnew);
	free(d->n);
}

enum pl_op { PL_PUT_NEW, PL_REPLACE, PL_DELETE, PL_SCRUB_REPAIR, PL_APP_PUT };

/* The state before the operation: a, b, an app key, and dirty free blocks
 * (so the operation has erases as well as programs to be cut). */
static struct fx *pl_setup(const struct pl *d, enum pl_op op)
{
	struct fx *x = fx_new(BS, PL_NB, &plp);
	const uint8_t app[SECMON_APP_ID_LEN] = {5};
	uint8_t *junk = fx_bytes(1500, 9);

	assert_int_equal(secmon_put(x->s, "tmp", junk, 1500), 0);
	assert_int_equal(secmon_put(x->s, "a", d->a, d->alen), 0);
	assert_int_equal(secmon_put(x->s, "b", d->b, d->blen), 0);
	assert_int_equal(secmon_app_set_quota(x->s, app, 100), 0);
	assert_int_equal(secmon_app_put(x->s, app, "k", "v", 1), 0);
	assert_int_equal(secmon_delete(x->s, "tmp"), 0);
	free(junk);
	if (op == PL_SCRUB_REPAIR) {
		const struct secmon_entry *e = fx_entry(x->s, "b");
		struct chip_faults f = {0};
		f.nflips = 1;
		f.flips[0].offset = (uint64_t)e->blocks[1] * BS + 200;
		f.nlost = 1;
		f.lost[0] = e->blocks[e->lay.nblocks - 1];
		assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
		/* And a second stripe's data shard erased. */
		assert_int_equal(chip_flash_erase(fx_flash(x), e->blocks[5]), 0);
	}
	return x;
}

static int pl_run(struct fx *x, const struct pl *d, enum pl_op op)
{
	struct secmon_scrub_report rep;

	switch (op) {
	case PL_PUT_NEW:
		return secmon_put(x->s, "n", d->n, d->nlen);
	case PL_REPLACE:
		return secmon_put(x->s, "b", d->bnew, d->bnewlen);
	case PL_DELETE:
		return secmon_delete(x->s, "b");
	case PL_SCRUB_REPAIR:
		return secmon_scrub(x->s, &rep);
	case PL_APP_PUT: {
		const uint8_t app[SECMON_APP_ID_LEN] = {5};
		return secmon_app_put(x->s, app, "k", "ww", 2);
	}
	}
	return -1;
}

/* 0: absent; 1: old; 2: new. Fails on anything else. */
static int pl_which(struct secmon *s, const char *name, const uint8_t *old, size_t oldlen,
                    const uint8_t *nw, size_t nwlen)
{
	uint8_t *got = NULL;
	size_t len = 0;
	char why[SECMON_REASON_MAX];
	int rc = secmon_get(s, name, &got, &len, why, sizeof(why)), r = -1;

	if (rc == SPH_ERR_NOT_FOUND)
		return 0;
	if (rc != 0)
		fail_msg("get %s after power loss: %d (%s)", name, rc, why);
	if (old && len == oldlen && memcmp(got, old, len) == 0)
		r = 1;
	else if (nw && len == nwlen && memcmp(got, nw, len) == 0)
		r = 2;
	free(got);
	if (r < 0)
		fail_msg("%s is neither the old nor the new version", name);
	return r;
}

static void pl_verify(struct fx *x, const struct pl *d, enum pl_op op, int *seen)
{
	const uint8_t app[SECMON_APP_ID_LEN] = {5};
	struct secmon_scrub_report rep;
	uint8_t *got = NULL;
	size_t len;
	int w;

	assert_int_equal(pl_which(x->s, "a", d->a, d->alen, NULL, 0), 1);
	assert_int_equal(secmon_app_get(x->s, app, "k", &got, &len, NULL, 0), 0);
	if (op == PL_APP_PUT) {
		assert_true((len == 1 && got[0] == 'v') || (len == 2 && memcmp(got, "ww", 2) == 0));
		w = len == 2;
	} else {
		assert_int_equal(len, 1);
	}
	free(got);
	assert_int_equal(pl_which(x->s, "tmp", NULL, 0, NULL, 0), 0);
	switch (op) {
	case PL_PUT_NEW:
		assert_int_equal(pl_which(x->s, "b", d->b, d->blen, NULL, 0), 1);
		w = pl_which(x->s, "n", NULL, 0, d->n, d->nlen);
		break;
	case PL_REPLACE:
		w = pl_which(x->s, "b", d->b, d->blen, d->bnew, d->bnewlen);
		w = w == 1 ? 0 : 2;
		break;
	case PL_DELETE:
		w = pl_which(x->s, "b", d->b, d->blen, NULL, 0);
		w = w == 1 ? 0 : 2;
		break;
	case PL_APP_PUT:
		assert_int_equal(pl_which(x->s, "b", d->b, d->blen, NULL, 0), 1);
		break;
	default:
		assert_int_equal(pl_which(x->s, "b", d->b, d->blen, NULL, 0), 1);
		w = 0;
		break;
	}
	seen[w ? 1 : 0]++;
	/* Usable: a put, a get, and a clean scrub. */
	assert_int_equal(secmon_put(x->s, "probe", "probe", 5), 0);
	fx_expect(x->s, "probe", (const uint8_t *)"probe", 5);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.unrecoverable, 0);
	assert_int_equal(secmon_scrub(x->s, &rep), 0);
	assert_int_equal(rep.repaired, 0);
}

static void pl_exhaustive(enum pl_op op, uint64_t seed)
{
	struct pl d;
	struct fx *x;
	uint64_t before, total;
	int seen[2] = {0, 0};

	pl_data(&d);
	/* Dry run: how many flash operations the operation performs. */
	x = pl_setup(&d, op);
	before = chip_flash_ops(fx_flash(x));
	assert_int_equal(pl_run(x, &d, op), 0);
	total = chip_flash_ops(fx_flash(x)) - before;
	assert_true(total > 0);
	fx_remount(x);
	pl_verify(x, &d, op, seen);
	fx_free(x);

	for (uint64_t n = 1; n <= total; n++) {
		struct chip_faults f = {.powercut = n, .seed = seed ^ n, .has_seed = true};
		int rc;
		x = pl_setup(&d, op);
		assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
		rc = pl_run(x, &d, op);
		assert_int_equal(rc, SPH_ERR_POWER_LOSS);
		assert_true(chip_flash_power_lost(fx_flash(x)));
		/* Power comes back: a chip reset (grants cleared: the boot grants again). */
		assert_int_equal(chip_reset(x->c, CHIP_RESET_POWER_LOSS), 0);
		fx_grant(x);
		fx_remount(x);
		pl_verify(x, &d, op, seen);
		fx_free(x);
	}
	/* Both outcomes occur: the cut points straddle the commit. */
	if (op != PL_SCRUB_REPAIR)
		assert_true(seen[0] > 0 && seen[1] > 0);
	print_message("  op %d: %llu flash operations, each cut: old %d, new %d\n", (int)op,
	              (unsigned long long)total, seen[0], seen[1]);
	pl_free(&d);
}

static void test_powerloss_put_new(void **state)
{
	(void)state;
	pl_exhaustive(PL_PUT_NEW, 1);
	pl_exhaustive(PL_PUT_NEW, 0xfeed);
}

static void test_powerloss_replace(void **state)
{
	(void)state;
	pl_exhaustive(PL_REPLACE, 2);
	pl_exhaustive(PL_REPLACE, 0xbeef);
}

static void test_powerloss_delete(void **state)
{
	(void)state;
	pl_exhaustive(PL_DELETE, 3);
	pl_exhaustive(PL_DELETE, 0xcafe);
}

static void test_powerloss_scrub_repair(void **state)
{
	(void)state;
	pl_exhaustive(PL_SCRUB_REPAIR, 4);
	pl_exhaustive(PL_SCRUB_REPAIR, 0xf00d);
}

static void test_powerloss_app_put(void **state)
{
	(void)state;
	pl_exhaustive(PL_APP_PUT, 5);
	pl_exhaustive(PL_APP_PUT, 0xabba);
}

/* A format cut at any operation leaves the old store whole, no store
 * (SPH_ERR_NOT_FOUND), or the new empty one: never old objects half erased. */
static void test_powerloss_format(void **state)
{
	struct pl d;
	struct fx *x;
	uint64_t before, total;
	int seen[3] = {0, 0, 0};

	(void)state;
	pl_data(&d);
	x = pl_setup(&d, PL_PUT_NEW);
	before = chip_flash_ops(fx_flash(x));
	assert_int_equal(secmon_format(x->c, &x->r, &plp), 0);
	total = chip_flash_ops(fx_flash(x)) - before;
	fx_free(x);
	for (uint64_t n = 1; n <= total; n++) {
		struct chip_faults f = {.powercut = n, .seed = n, .has_seed = true};
		struct secmon_stats st;
		int rc;
		x = pl_setup(&d, PL_PUT_NEW);
		assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
		assert_int_equal(secmon_format(x->c, &x->r, &plp), SPH_ERR_POWER_LOSS);
		assert_int_equal(chip_reset(x->c, CHIP_RESET_POWER_LOSS), 0);
		fx_grant(x);
		secmon_unmount(x->s);
		x->s = NULL;
		rc = secmon_mount(x->c, CHIP_COMP_SECMON, &x->r, &x->s);
		if (rc == SPH_ERR_NOT_FOUND) {
			seen[1]++;
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(secmon_stats(x->s, &st), 0);
			if (st.objects == 0) {
				seen[2]++;
			} else {
				assert_int_equal(pl_which(x->s, "a", d.a, d.alen, NULL, 0), 1);
				assert_int_equal(pl_which(x->s, "b", d.b, d.blen, NULL, 0), 1);
				seen[0]++;
			}
		}
		fx_free(x);
	}
	assert_true(seen[0] > 0 && seen[1] > 0);
	print_message("  format: %llu flash operations, each cut: old %d, none %d, new %d\n",
	              (unsigned long long)total, seen[0], seen[1], seen[2]);
	pl_free(&d);
}

/* The same handle keeps working after a cut and a power cycle: it re-reads the
 * table before its next change. */
static void test_powerloss_same_handle(void **state)
{
	struct pl d;
	struct fx *x;

	(void)state;
	pl_data(&d);
	for (uint64_t n = 1; n <= 12; n++) {
		struct chip_faults f = {.powercut = n};
		int rc;
		x = pl_setup(&d, PL_REPLACE);
		assert_int_equal(chip_faults_set(fx_flash(x), &f), 0);
		rc = secmon_put(x->s, "b", d.bnew, d.bnewlen);
		assert_true(rc == SPH_ERR_POWER_LOSS || rc == 0);
		assert_int_equal(chip_faults_set(fx_flash(x), NULL), 0); /* disarm */
		assert_int_equal(secmon_put(x->s, "c", "c", 1), rc == 0 ? 0 : SPH_ERR_POWER_LOSS);
		chip_flash_power_cycle(fx_flash(x));
		assert_int_equal(secmon_put(x->s, "c", "c2", 2), 0);
		assert_int_equal(pl_which(x->s, "b", d.b, d.blen, d.bnew, d.bnewlen) > 0, 1);
		fx_expect(x->s, "c", (const uint8_t *)"c2", 2);
		fx_remount(x);
		fx_expect(x->s, "c", (const uint8_t *)"c2", 2);
		assert_int_equal(pl_which(x->s, "a", d.a, d.alen, NULL, 0), 1);
		fx_free(x);
	}
	pl_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_campaign_within_m),
	        cmocka_unit_test(test_campaign_beyond_m),
	        cmocka_unit_test(test_random_flips_never_wrong),
	        cmocka_unit_test(test_powerloss_put_new),
	        cmocka_unit_test(test_powerloss_replace),
	        cmocka_unit_test(test_powerloss_delete),
	        cmocka_unit_test(test_powerloss_scrub_repair),
	        cmocka_unit_test(test_powerloss_app_put),
	        cmocka_unit_test(test_powerloss_format),
	        cmocka_unit_test(test_powerloss_same_handle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
