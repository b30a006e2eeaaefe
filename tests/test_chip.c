/* chip: NOR flash semantics, the fault injector, firewalls, the chip directory. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chip/chip.h"
#include "common/common.h"
#include "testutil.h"

/* A small flash keeps the tests fast: 16 blocks of 512 bytes. */
#define BS    512u
#define NB    16u
#define FSIZE (BS * NB)

static const struct chip_flash_geometry small = {BS, NB};

struct fx {
	char *dir;
	char *path;
	struct chip_flash *f;
};

static int fx_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->dir = tu_mkdtemp();
	x->path = tu_path(x->dir, "flash.bin");
	assert_int_equal(chip_flash_open(x->path, &small, &x->f), 0);
	*state = x;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *x = *state;

	chip_flash_close(x->f);
	tu_rmtree(x->dir);
	free(x->dir);
	free(x->path);
	free(x);
	return 0;
}

static void fx_reopen(struct fx *x)
{
	chip_flash_close(x->f);
	x->f = NULL;
	assert_int_equal(chip_flash_open(x->path, NULL, &x->f), 0);
}

static void read_all(struct chip_flash *f, uint8_t *buf)
{
	assert_int_equal(chip_flash_read(f, 0, buf, FSIZE), 0);
}

static bool all_ff(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != 0xff)
			return false;
	}
	return true;
}

/* ---- NOR semantics ------------------------------------------------------- */

static void test_fresh_flash_is_erased(void **state)
{
	struct fx *x = *state;
	static uint8_t buf[FSIZE];
	struct chip_flash_geometry g;
	struct stat st;
	uint32_t n = 99;

	assert_int_equal(chip_flash_geometry(x->f, &g), 0);
	assert_int_equal(g.block_size, BS);
	assert_int_equal(g.block_count, NB);
	assert_int_equal(chip_flash_size(x->f), FSIZE);
	read_all(x->f, buf);
	assert_true(all_ff(buf, FSIZE));
	assert_int_equal(chip_flash_erase_count(x->f, NB - 1, &n), 0);
	assert_int_equal(n, 0);
	/* The image is the flash byte for byte; the metadata sits beside it. */
	assert_int_equal(stat(x->path, &st), 0);
	assert_int_equal(st.st_size, FSIZE);
	char *meta = tu_path(x->dir, "flash.bin.meta");
	assert_int_equal(stat(meta, &st), 0);
	assert_int_equal(st.st_size, 40 + 8 * NB);
	free(meta);
}

static void test_erase_sets_block_to_ff(void **state)
{
	struct fx *x = *state;
	uint8_t zeros[BS], buf[3 * BS];

	memset(zeros, 0, sizeof(zeros));
	for (uint32_t b = 0; b < 3; b++)
		assert_int_equal(chip_flash_program(x->f, b * BS, zeros, BS), 0);
	assert_int_equal(chip_flash_erase(x->f, 1), 0);
	assert_int_equal(chip_flash_read(x->f, 0, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < BS; i++) {
		assert_int_equal(buf[i], 0x00);          /* block 0 untouched */
		assert_int_equal(buf[BS + i], 0xff);     /* block 1 erased */
		assert_int_equal(buf[2 * BS + i], 0x00); /* block 2 untouched */
	}
}

static void test_program_only_clears_bits(void **state)
{
	struct fx *x = *state;
	uint8_t a[4] = {0xf0, 0x0f, 0xa5, 0xff}, b[4] = {0x30, 0x0f, 0x01, 0x00}, got[4];

	assert_int_equal(chip_flash_program(x->f, 100, a, 4), 0);
	assert_int_equal(chip_flash_read(x->f, 100, got, 4), 0);
	assert_memory_equal(got, a, 4);
	/* b clears more bits of a and sets none: allowed, result is b. */
	assert_int_equal(chip_flash_program(x->f, 100, b, 4), 0);
	assert_int_equal(chip_flash_read(x->f, 100, got, 4), 0);
	assert_memory_equal(got, b, 4);
	/* Programming the same bytes again is allowed (no 0 -> 1). */
	assert_int_equal(chip_flash_program(x->f, 100, b, 4), 0);
}

static void test_program_zero_to_one_changes_nothing(void **state)
{
	struct fx *x = *state;
	static uint8_t before[FSIZE], after[FSIZE];
	uint8_t data[BS + 8];
	struct chip_flash_stats st0, st1;

	memset(data, 0x00, 8);
	assert_int_equal(chip_flash_program(x->f, BS - 4, data, 8), 0); /* spans blocks 0-1 */
	read_all(x->f, before);
	assert_int_equal(chip_flash_stats(x->f, &st0), 0);
	/* Valid everywhere except one byte in the middle, which would need a
	 * 0 -> 1: the whole range is refused and not a single byte is written. */
	memset(data, 0x00, sizeof(data));
	data[5] = 0x01; /* offset BS+1 was programmed to 0 */
	assert_int_equal(chip_flash_program(x->f, BS - 4, data, sizeof(data)), SPH_ERR_STATE);
	read_all(x->f, after);
	assert_memory_equal(before, after, FSIZE);
	assert_int_equal(chip_flash_stats(x->f, &st1), 0);
	assert_int_equal(st1.ops, st0.ops); /* a refused program is not an operation */
	assert_int_equal(st1.programs, st0.programs);
	/* After an erase the same program works. */
	assert_int_equal(chip_flash_erase(x->f, 0), 0);
	assert_int_equal(chip_flash_erase(x->f, 1), 0);
	assert_int_equal(chip_flash_program(x->f, BS - 4, data, sizeof(data)), 0);
}

static void test_out_of_bounds_refused(void **state)
{
	struct fx *x = *state;
	uint8_t buf[4] = {0, 0, 0, 0};

	assert_int_equal(chip_flash_read(x->f, FSIZE, buf, 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_read(x->f, FSIZE - 1, buf, 2), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_read(x->f, UINT64_MAX, buf, 2), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_read(x->f, FSIZE - 1, buf, 1), 0);
	assert_int_equal(chip_flash_read(x->f, FSIZE, buf, 0), 0); /* empty, at the end */
	assert_int_equal(chip_flash_program(x->f, FSIZE - 2, buf, 4), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_program(x->f, UINT64_MAX - 1, buf, 4), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_erase(x->f, NB), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_erase(x->f, UINT32_MAX), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_ops(x->f), 0);
	assert_int_equal(chip_flash_read(NULL, 0, buf, 1), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_program(x->f, 0, NULL, 1), SPH_ERR_INVALID_ARG);
}

static void test_erase_counts_persist(void **state)
{
	struct fx *x = *state;
	struct chip_flash_stats st;
	uint8_t z = 0;
	uint32_t n;

	for (int i = 0; i < 3; i++)
		assert_int_equal(chip_flash_erase(x->f, 3), 0);
	assert_int_equal(chip_flash_erase(x->f, 5), 0);
	assert_int_equal(chip_flash_program(x->f, 7, &z, 1), 0);
	assert_int_equal(chip_flash_program(x->f, 9, &z, 1), 0);
	fx_reopen(x);
	assert_int_equal(chip_flash_erase_count(x->f, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(chip_flash_erase_count(x->f, 5, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(chip_flash_erase_count(x->f, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(chip_flash_erase_count(x->f, NB, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_stats(x->f, &st), 0);
	assert_int_equal(st.erases, 4);
	assert_int_equal(st.programs, 2);
	assert_int_equal(st.ops, 0); /* since this open */
	assert_int_equal(st.erase_min, 0);
	assert_int_equal(st.erase_max, 3);
	assert_true(st.erase_mean > 0.2499 && st.erase_mean < 0.2501); /* 4 / 16 */
	/* And the contents persisted too. */
	uint8_t got;
	assert_int_equal(chip_flash_read(x->f, 9, &got, 1), 0);
	assert_int_equal(got, 0);
}

static void test_open_rules(void **state)
{
	struct fx *x = *state;
	struct chip_flash *g2 = NULL;
	struct chip_flash_geometry bad[] = {{0, 16},      {511, 16},       {768, 16},
	                                    {256, 16},    {2u << 20, 1},   {512, 0},
	                                    {512, 65537}, {1u << 20, 2048}};
	struct chip_flash_geometry other = {1024, 8};
	char *p = tu_path(x->dir, "other.bin");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chip_flash_open(p, &bad[i], &g2), SPH_ERR_INVALID_ARG);
		assert_null(g2);
	}
	assert_int_equal(chip_flash_open(p, NULL, &g2), SPH_ERR_NOT_FOUND);
	assert_null(g2);
	/* Another geometry than the existing flash's. */
	chip_flash_close(x->f);
	x->f = NULL;
	assert_int_equal(chip_flash_open(x->path, &other, &g2), SPH_ERR_STATE);
	assert_int_equal(chip_flash_open(x->path, &small, &x->f), 0);
	/* One owner at a time. */
	assert_int_equal(chip_flash_open(x->path, NULL, &g2), SPH_ERR_STATE);
	assert_null(g2);
	free(p);
}

/* Overwrites bytes of a file. */
static void poke(const char *path, off_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, off), (ssize_t)len);
	close(fd);
}

static void test_damaged_metadata_refused(void **state)
{
	struct fx *x = *state;
	char *meta = tu_path(x->dir, "flash.bin.meta");
	struct chip_flash *f2 = NULL;
	uint8_t v;

	chip_flash_close(x->f);
	x->f = NULL;
	poke(meta, 0, "X", 1); /* magic */
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_MALFORMED);
	poke(meta, 0, "S", 1);
	v = 2; /* version */
	poke(meta, 8, &v, 1);
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_UNSUPPORTED);
	v = 1;
	poke(meta, 8, &v, 1);
	v = 2; /* an undefined flag bit in block 3's record */
	poke(meta, 40 + 8 * 3 + 4, &v, 1);
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_MALFORMED);
	v = 0;
	poke(meta, 40 + 8 * 3 + 4, &v, 1);
	assert_int_equal(chip_flash_open(x->path, NULL, &x->f), 0);
	chip_flash_close(x->f);
	x->f = NULL;
	assert_int_equal(truncate(x->path, FSIZE - 1), 0); /* image size */
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_MALFORMED);
	assert_int_equal(truncate(x->path, FSIZE), 0);
	assert_int_equal(truncate(meta, 40 + 8 * NB + 1), 0); /* metadata size */
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_MALFORMED);
	assert_int_equal(unlink(meta), 0); /* an image without metadata */
	assert_int_equal(chip_flash_open(x->path, NULL, &f2), SPH_ERR_MALFORMED);
	assert_null(f2);
	free(meta);
	/* Leave a working flash for the teardown. */
	assert_int_equal(unlink(x->path), 0);
	assert_int_equal(chip_flash_open(x->path, &small, &x->f), 0);
}

static void test_sync(void **state)
{
	struct fx *x = *state;
	uint8_t z = 0x12, got = 0;

	assert_int_equal(chip_flash_sync(x->f), 0);
	chip_flash_set_sync_every_op(x->f, true);
	assert_int_equal(chip_flash_program(x->f, 0, &z, 1), 0);
	assert_int_equal(chip_flash_erase(x->f, 1), 0);
	chip_flash_set_sync_every_op(x->f, false);
	assert_int_equal(chip_flash_sync(x->f), 0);
	assert_int_equal(chip_flash_read(x->f, 0, &got, 1), 0);
	assert_int_equal(got, 0x12);
}

/* ---- power cuts ------------------------------------------------------------ */

enum step_kind { ERASE, PROG };
struct step {
	enum step_kind kind;
	uint32_t block; /* ERASE */
	uint64_t off;   /* PROG */
	size_t len;     /* PROG */
};

/* A scripted job over blocks 0..3, which start programmed with a pattern, so
 * that a torn erase is visible. Programs write a pattern ANDed with what the
 * model holds, so they never need a 0 -> 1. */
static const struct step script[] = {
        {ERASE, 0, 0, 0}, {PROG, 0, 0, 100},       {PROG, 0, 100, 300},
        {ERASE, 1, 0, 0}, {PROG, 0, BS - 50, 200}, {PROG, 0, 3 * BS + 10, 77},
        {ERASE, 2, 0, 0}, {PROG, 0, 2 * BS, BS},   {ERASE, 0, 0, 0},
        {PROG, 0, 0, 1},  {PROG, 0, 3 * BS, 3},    {PROG, 0, 2 * BS + 5, 2},
};
#define NSTEPS         (sizeof(script) / sizeof(script[0]))
#define PREFILL_BLOCKS 4

static void step_data(size_t i, const uint8_t *model, const struct step *s, uint8_t *data)
{
	for (size_t k = 0; k < s->len; k++)
		data[k] = (uint8_t)(k * 31 + i * 17 + 3) & model[s->off + k];
}

static void prefill(struct chip_flash *f, uint8_t *model)
{
	memset(model, 0xff, FSIZE);
	for (size_t i = 0; i < PREFILL_BLOCKS * BS; i++)
		model[i] = (uint8_t)(i * 7 + 1) & 0xee;
	assert_int_equal(chip_flash_program(f, 0, model, PREFILL_BLOCKS * BS), 0);
}

/* Runs the script. cut = 0: cleanly; else the script's cut-th operation is
 * torn. Checks each step's status, updates model with what must be on flash. */
static void run_script(struct chip_flash *f, uint8_t *model, size_t cut, uint64_t base_ops,
                       struct chip_cut *got_cut)
{
	uint8_t data[BS];

	for (size_t i = 0; i < NSTEPS; i++) {
		const struct step *s = &script[i];
		int rc;

		if (s->kind == ERASE)
			rc = chip_flash_erase(f, s->block);
		else {
			step_data(i, model, s, data);
			rc = chip_flash_program(f, s->off, data, s->len);
		}
		if (cut == 0 || i + 1 < cut) {
			assert_int_equal(rc, 0);
			if (s->kind == ERASE)
				memset(model + (size_t)s->block * BS, 0xff, BS);
			else
				memcpy(model + s->off, data, s->len);
		} else if (i + 1 == cut) {
			assert_int_equal(rc, SPH_ERR_POWER_LOSS);
			assert_int_equal(chip_faults_last_cut(f, got_cut), 0);
			assert_int_equal(got_cut->op, base_ops + cut);
			assert_int_equal(got_cut->kind,
			                 s->kind == ERASE ? CHIP_OP_ERASE : CHIP_OP_PROGRAM);
			assert_int_equal(got_cut->offset,
			                 s->kind == ERASE ? (uint64_t)s->block * BS : s->off);
			assert_int_equal(got_cut->len, s->kind == ERASE ? BS : s->len);
			assert_true(got_cut->landed <= got_cut->len);
			/* The torn op landed exactly a prefix of itself. */
			if (s->kind == ERASE)
				memset(model + (size_t)s->block * BS, 0xff, got_cut->landed);
			else
				memcpy(model + s->off, data, got_cut->landed);
		} else {
			assert_int_equal(rc, SPH_ERR_POWER_LOSS); /* the chip is off */
		}
	}
}

static void test_powercut_at_every_position(void **state)
{
	struct fx *x = *state;
	static uint8_t model[FSIZE], got[FSIZE];
	struct chip_faults plan;
	struct chip_cut cut;
	uint64_t base, clean_ops;
	size_t partial = 0, nothing = 0, whole = 0;
	uint32_t ec_before, ec_after;

	/* Clean run first: how many flash operations does the job take? */
	prefill(x->f, model);
	base = chip_flash_ops(x->f);
	run_script(x->f, model, 0, base, &cut);
	clean_ops = chip_flash_ops(x->f) - base;
	assert_int_equal(clean_ops, NSTEPS);
	read_all(x->f, got);
	assert_memory_equal(got, model, FSIZE);
	assert_int_equal(chip_faults_last_cut(x->f, &cut), SPH_ERR_NOT_FOUND);

	for (size_t n = 1; n <= clean_ops; n++) {
		/* A fresh device for every position. */
		chip_flash_close(x->f);
		x->f = NULL;
		assert_int_equal(unlink(x->path), 0);
		assert_int_equal(chip_flash_open(x->path, &small, &x->f), 0);
		prefill(x->f, model);
		base = chip_flash_ops(x->f);
		memset(&plan, 0, sizeof(plan));
		plan.powercut = n;
		plan.seed = 0x5eed;
		assert_int_equal(chip_faults_set(x->f, &plan), 0);
		uint32_t blk = script[n - 1].kind == ERASE ? script[n - 1].block : 0;
		assert_int_equal(chip_flash_erase_count(x->f, blk, &ec_before), 0);

		run_script(x->f, model, n, base, &cut);
		if (cut.landed == 0)
			nothing++;
		else if (cut.landed == cut.len)
			whole++;
		else
			partial++;
		/* Everything is refused while the power is off, except reporting. */
		assert_true(chip_flash_power_lost(x->f));
		assert_int_equal(chip_flash_read(x->f, 0, got, 1), SPH_ERR_POWER_LOSS);
		assert_int_equal(chip_flash_sync(x->f), SPH_ERR_POWER_LOSS);
		assert_int_equal(chip_flash_ops(x->f), base + n);
		if (script[n - 1].kind == ERASE) {
			/* A torn erase still counts as an erase cycle: every erase of
			 * blk in steps 1..n, the torn one included. */
			uint32_t want = ec_before;
			for (size_t i = 0; i < n; i++)
				want += script[i].kind == ERASE && script[i].block == blk;
			assert_int_equal(chip_flash_erase_count(x->f, blk, &ec_after), 0);
			assert_int_equal(ec_after, want);
		}

		/* Power-cycle: reopen. Exactly ops 1..n-1 and a prefix of op n landed. */
		fx_reopen(x);
		assert_false(chip_flash_power_lost(x->f));
		read_all(x->f, got);
		assert_memory_equal(got, model, FSIZE);
		/* And the flash works again (the cut was for that run only). */
		assert_int_equal(chip_flash_erase(x->f, 0), 0);
		uint8_t z[4] = {1, 2, 3, 4};
		assert_int_equal(chip_flash_program(x->f, 0, z, 4), 0);
		assert_int_equal(chip_flash_read(x->f, 0, got, 4), 0);
		assert_memory_equal(got, z, 4);
	}
	/* With this seed the torn lengths are spread out: some cuts landed part of
	 * the operation. (Nothing and everything are legal boundary outcomes.) */
	assert_true(partial >= clean_ops / 2);
	print_message("power cut at %zu positions: %zu partial, %zu nothing, %zu whole\n",
	              (size_t)clean_ops, partial, nothing, whole);
}

static void test_powercut_is_deterministic_and_power_cycle(void **state)
{
	struct fx *x = *state;
	struct chip_faults plan;
	struct chip_cut c1, c2;
	uint8_t data[BS];

	memset(data, 0, sizeof(data));
	memset(&plan, 0, sizeof(plan));
	plan.powercut = 2;
	plan.seed = 99;
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_flash_program(x->f, 0, data, BS), 0);
	assert_int_equal(chip_flash_program(x->f, BS, data, BS), SPH_ERR_POWER_LOSS);
	assert_int_equal(chip_faults_last_cut(x->f, &c1), 0);
	/* chip_flash_power_cycle is a reopen without closing: power is back and
	 * the spent cut does not fire again. */
	chip_flash_power_cycle(x->f);
	assert_int_equal(chip_flash_erase(x->f, 0), 0);
	assert_int_equal(chip_flash_erase(x->f, 1), 0);
	assert_int_equal(chip_flash_erase(x->f, 2), 0);

	/* Same seed, same op number, same length: same torn length. */
	fx_reopen(x);
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_flash_program(x->f, 0, data, BS), 0);
	assert_int_equal(chip_flash_program(x->f, BS, data, BS), SPH_ERR_POWER_LOSS);
	assert_int_equal(chip_faults_last_cut(x->f, &c2), 0);
	assert_memory_equal(&c1, &c2, sizeof(c1));

	/* A refused program does not count, so it cannot be the one torn. */
	fx_reopen(x);
	plan.powercut = 1;
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	data[0] = 0xff; /* block 0 is programmed to 0: needs 0 -> 1 */
	assert_int_equal(chip_flash_program(x->f, 0, data, 1), SPH_ERR_STATE);
	assert_int_equal(chip_flash_erase(x->f, 5), SPH_ERR_POWER_LOSS);
	/* chip_faults_set(NULL) disarms a pending cut. */
	fx_reopen(x);
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_faults_set(x->f, NULL), 0);
	assert_int_equal(chip_flash_erase(x->f, 5), 0);
}

/* ---- flips and lost blocks --------------------------------------------------- */

static size_t count_bit_diffs(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t d = 0;
	for (size_t i = 0; i < n; i++)
		d += (size_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return d;
}

static void test_given_flips(void **state)
{
	struct fx *x = *state;
	static uint8_t got[FSIZE];
	struct chip_faults plan;
	char err[CHIP_FAULTS_ERR_MAX];
	uint8_t b = 0xff;

	assert_int_equal(
	        chip_faults_parse("flip=0x10:3,flip=100:0,flip=8191:7", &plan, err, sizeof(err)),
	        0);
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	fx_reopen(x); /* flips are in the medium: they persist */
	read_all(x->f, got);
	assert_int_equal(got[0x10], 0xf7);
	assert_int_equal(got[100], 0xfe);
	assert_int_equal(got[8191], 0x7f);
	memset(got + 0x10, 0xff, 1);
	got[100] = got[8191] = 0xff;
	assert_true(all_ff(got, FSIZE));
	/* A flipped-to-0 bit is a real 0: programming a 1 over it is refused. */
	assert_int_equal(chip_flash_program(x->f, 0x10, &b, 1), SPH_ERR_STATE);
	/* Flips can also set bits: on a programmed byte they go 0 -> 1. */
	b = 0x00;
	assert_int_equal(chip_flash_program(x->f, 200, &b, 1), 0);
	assert_int_equal(chip_faults_parse("flip=200:6", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_flash_read(x->f, 200, &b, 1), 0);
	assert_int_equal(b, 0x40);
	/* Out of range: refused, and nothing applied (not even the valid one). */
	assert_int_equal(chip_faults_parse("flip=300:1,flip=8192:0", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_faults_set(x->f, &plan), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_flash_read(x->f, 300, &b, 1), 0);
	assert_int_equal(b, 0xff);
	assert_int_equal(chip_faults_parse("lose=16", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_faults_set(x->f, &plan), SPH_ERR_INVALID_ARG);
}

static void seeded_image(const char *dir, const char *name, const char *spec, uint8_t *img)
{
	char *p = tu_path(dir, name);
	struct chip_flash *f = NULL;
	struct chip_faults plan;
	char err[CHIP_FAULTS_ERR_MAX];

	assert_int_equal(chip_flash_open(p, &small, &f), 0);
	assert_int_equal(chip_faults_parse(spec, &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_faults_set(f, &plan), 0);
	read_all(f, img);
	chip_flash_close(f);
	free(p);
}

static void test_seeded_flips_reproducible(void **state)
{
	struct fx *x = *state;
	static uint8_t a[FSIZE], b[FSIZE], c[FSIZE], d[FSIZE], ff[FSIZE];

	memset(ff, 0xff, sizeof(ff));
	seeded_image(x->dir, "a.bin", "flips=16,seed=42", a);
	seeded_image(x->dir, "b.bin", "seed=42,flips=16", b);
	seeded_image(x->dir, "c.bin", "flips=16,seed=43", c);
	seeded_image(x->dir, "d.bin", "flips=16,seed=42,flip=0:0", d);
	assert_memory_equal(a, b, FSIZE);                    /* same seed, same flips */
	assert_int_equal(count_bit_diffs(a, ff, FSIZE), 16); /* N distinct bits */
	assert_int_equal(count_bit_diffs(c, ff, FSIZE), 16);
	assert_memory_not_equal(a, c, FSIZE); /* another seed, other flips */
	/* Given flips come on top and never cancel a random one. */
	assert_int_equal(count_bit_diffs(d, ff, FSIZE), 17);
}

static void test_lost_block(void **state)
{
	struct fx *x = *state;
	struct chip_faults plan;
	char err[CHIP_FAULTS_ERR_MAX];
	uint8_t buf[BS], z = 0;

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(chip_faults_parse("lose=2", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_flash_read(x->f, 2 * BS, buf, BS), SPH_ERR_IO);
	assert_int_equal(buf[0], 0); /* never stale or partial data */
	assert_int_equal(chip_flash_read(x->f, 2 * BS - 1, buf, 2), SPH_ERR_IO); /* overlaps */
	assert_int_equal(chip_flash_read(x->f, 3 * BS - 1, buf, 1), SPH_ERR_IO);
	assert_int_equal(chip_flash_read(x->f, BS, buf, BS), 0);     /* block 1 fine */
	assert_int_equal(chip_flash_read(x->f, 3 * BS, buf, BS), 0); /* block 3 fine */
	assert_int_equal(chip_flash_program(x->f, 2 * BS, &z, 1), SPH_ERR_IO);
	/* Lost is a property of the medium: it persists across power cycles. */
	fx_reopen(x);
	assert_int_equal(chip_flash_read(x->f, 2 * BS, buf, BS), SPH_ERR_IO);
	/* A torn erase does not repair it; a complete one does. */
	memset(&plan, 0, sizeof(plan));
	plan.powercut = 1;
	assert_int_equal(chip_faults_set(x->f, &plan), 0);
	assert_int_equal(chip_flash_erase(x->f, 2), SPH_ERR_POWER_LOSS);
	fx_reopen(x);
	assert_int_equal(chip_flash_read(x->f, 2 * BS, buf, BS), SPH_ERR_IO);
	assert_int_equal(chip_flash_erase(x->f, 2), 0);
	assert_int_equal(chip_flash_read(x->f, 2 * BS, buf, BS), 0);
	assert_true(all_ff(buf, BS));
	assert_int_equal(chip_flash_program(x->f, 2 * BS, &z, 1), 0);
}

/* ---- fault spec parser --------------------------------------------------------- */

static void test_faults_parse_valid(void **state)
{
	(void)state;
	struct chip_faults p, q;
	char err[CHIP_FAULTS_ERR_MAX], buf[512];

	assert_int_equal(chip_faults_parse("", &p, err, sizeof(err)), 0);
	assert_int_equal(p.powercut, 0);
	assert_int_equal(p.nflips + p.nlost + p.random_flips, 0);
	assert_int_equal(chip_faults_parse("powercut=17", &p, err, sizeof(err)), 0);
	assert_int_equal(p.powercut, 17);
	assert_int_equal(chip_faults_parse("powercut=18446744073709551615,seed=0xFFFFffffFFFFffff",
	                                   &p, err, sizeof(err)),
	                 0);
	assert_int_equal(p.powercut, UINT64_MAX);
	assert_int_equal(p.seed, UINT64_MAX);
	assert_int_equal(chip_faults_parse("flip=0x10:7,flip=5:0,flips=3,seed=0,lose=4,lose=65535,"
	                                   "flip=16:6",
	                                   &p, err, sizeof(err)),
	                 0);
	assert_int_equal(p.nflips, 3);
	assert_int_equal(p.flips[0].offset, 16);
	assert_int_equal(p.flips[0].bit, 7);
	assert_int_equal(p.flips[1].offset, 5);
	assert_int_equal(p.flips[2].bit, 6);
	assert_int_equal(p.random_flips, 3);
	assert_true(p.has_seed);
	assert_int_equal(p.nlost, 2);
	assert_int_equal(p.lost[1], 65535);
	/* Canonical form, and it parses back to the same plan. */
	assert_int_equal(chip_faults_format(&p, buf, sizeof(buf)), 0);
	assert_string_equal(buf,
	                    "seed=0,flips=3,flip=0x10:7,flip=0x5:0,flip=0x10:6,lose=4,lose=65535");
	assert_int_equal(chip_faults_parse(buf, &q, err, sizeof(err)), 0);
	assert_memory_equal(&p, &q, sizeof(p));
	assert_int_equal(chip_faults_format(&p, buf, 10), SPH_ERR_BUFFER_TOO_SMALL);
	assert_string_equal(buf, "");
	/* The maximum number of items. */
	char big[CHIP_FAULTS_SPEC_MAX + 2];
	size_t pos = 0;
	for (int i = 0; i < CHIP_FAULTS_MAX_FLIPS; i++)
		pos += (size_t)snprintf(big + pos, sizeof(big) - pos, "flip=%d:1,", i);
	big[pos - 1] = '\0';
	assert_int_equal(chip_faults_parse(big, &p, err, sizeof(err)), 0);
	assert_int_equal(p.nflips, CHIP_FAULTS_MAX_FLIPS);
}

static void test_faults_parse_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		int rc;
		const char *mention; /* the message must contain this */
	} bad[] = {
	        {"bogus=1", SPH_ERR_MALFORMED, "unknown key"},
	        {"PowerCut=1", SPH_ERR_MALFORMED, "\"PowerCut=1\""},
	        {"powercut=abc", SPH_ERR_MALFORMED, "not a number"},
	        {"powercut=12x", SPH_ERR_MALFORMED, "\"powercut=12x\""},
	        {"powercut=18446744073709551616", SPH_ERR_TOO_LARGE, "overflow"},
	        {"seed=0x10000000000000000", SPH_ERR_TOO_LARGE, "overflow"},
	        {"powercut=1,,seed=2", SPH_ERR_MALFORMED, "empty token in token 2"},
	        {"powercut=1,", SPH_ERR_MALFORMED, "trailing comma"},
	        {",powercut=1", SPH_ERR_MALFORMED, "empty token"},
	        {",", SPH_ERR_MALFORMED, "empty token"},
	        {"powercut=1,powercut=2", SPH_ERR_DUPLICATE, "powercut given twice"},
	        {"seed=1,seed=1", SPH_ERR_DUPLICATE, "seed given twice"},
	        {"flips=1,flips=2", SPH_ERR_DUPLICATE, "flips given twice"},
	        {"lose=3,lose=3", SPH_ERR_DUPLICATE, "lost twice"},
	        {"flip=1:1,flip=0x1:1", SPH_ERR_DUPLICATE, "same flip twice"},
	        {"powercut=0", SPH_ERR_MALFORMED, "counts from 1"},
	        {"powercut", SPH_ERR_MALFORMED, "key=value"},
	        {"powercut=", SPH_ERR_MALFORMED, "missing number"},
	        {"=5", SPH_ERR_MALFORMED, "missing key"},
	        {" powercut=1", SPH_ERR_MALFORMED, "unknown key"},
	        {"powercut=1 ", SPH_ERR_MALFORMED, "not a number"},
	        {"powercut=-1", SPH_ERR_MALFORMED, "not a number"},
	        {"powercut=+1", SPH_ERR_MALFORMED, "not a number"},
	        {"powercut=01", SPH_ERR_MALFORMED, "leading zero"},
	        {"seed=0x", SPH_ERR_MALFORMED, "not a number"},
	        {"seed=0xg", SPH_ERR_MALFORMED, "not a number"},
	        {"flip=1", SPH_ERR_MALFORMED, "OFFSET:BIT"},
	        {"flip=1:8", SPH_ERR_TOO_LARGE, "bit must be 0..7"},
	        {"flip=1:2:3", SPH_ERR_MALFORMED, "not a number"},
	        {"flip=:2", SPH_ERR_MALFORMED, "missing number"},
	        {"flips=0", SPH_ERR_MALFORMED, "at least 1"},
	        {"flips=1025", SPH_ERR_TOO_LARGE, "above 1024"},
	        {"lose=65536", SPH_ERR_TOO_LARGE, "above 65535"},
	        {"lose=1;lose=2", SPH_ERR_MALFORMED, "not a number"},
	        {"powercut=1,seed=2,lose", SPH_ERR_MALFORMED, "in token 3 \"lose\""},
	        {"powercut=\x01", SPH_ERR_MALFORMED, "\"powercut=?\""},
	};
	struct chip_faults p;
	char err[CHIP_FAULTS_ERR_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0xa5, sizeof(p));
		int rc = chip_faults_parse(bad[i].spec, &p, err, sizeof(err));
		if (rc != bad[i].rc || !strstr(err, bad[i].mention))
			fail_msg("spec \"%s\": rc %d (want %d), message \"%s\" (want \"%s\")",
			         bad[i].spec, rc, bad[i].rc, err, bad[i].mention);
		assert_true(strncmp(err, "fault spec: ", 12) == 0);
		struct chip_faults zero;
		memset(&zero, 0, sizeof(zero));
		assert_memory_equal(&p, &zero, sizeof(p)); /* nothing half-parsed survives */
	}
	/* Limits on counts and length. */
	char big[CHIP_FAULTS_SPEC_MAX + 64];
	size_t pos = 0;
	for (int i = 0; i <= CHIP_FAULTS_MAX_LOST; i++)
		pos += (size_t)snprintf(big + pos, sizeof(big) - pos, "lose=%d,", i);
	big[pos - 1] = '\0';
	assert_int_equal(chip_faults_parse(big, &p, err, sizeof(err)), SPH_ERR_TOO_LARGE);
	assert_non_null(strstr(err, "more than 64 lose items"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(chip_faults_parse(big, &p, err, sizeof(err)), SPH_ERR_TOO_LARGE);
	assert_non_null(strstr(err, "longer than"));
	/* A long bad token is shown shortened; a tiny buffer is still terminated. */
	memcpy(big, "seed=", 5);
	big[200] = '\0';
	assert_int_equal(chip_faults_parse(big, &p, err, sizeof(err)), SPH_ERR_MALFORMED);
	assert_non_null(strstr(err, "...\""));
	assert_int_equal(chip_faults_parse("x=1", &p, err, 5), SPH_ERR_MALFORMED);
	assert_int_equal(strlen(err), 4);
	assert_int_equal(chip_faults_parse("x=1", &p, NULL, 0), SPH_ERR_MALFORMED);
	assert_int_equal(chip_faults_parse(NULL, &p, err, sizeof(err)), SPH_ERR_INVALID_ARG);
}

static void test_faults_flag_or_env(void **state)
{
	(void)state;
	struct chip_faults p;
	char err[CHIP_FAULTS_ERR_MAX];

	assert_int_equal(setenv(CHIP_FAULTS_ENV, "powercut=3,seed=9", 1), 0);
	assert_int_equal(chip_faults_from_flag_or_env(NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.powercut, 3);
	assert_int_equal(p.seed, 9);
	/* The flag wins over the environment. */
	assert_int_equal(chip_faults_from_flag_or_env("lose=1", &p, err, sizeof(err)), 0);
	assert_int_equal(p.powercut, 0);
	assert_int_equal(p.nlost, 1);
	assert_int_equal(setenv(CHIP_FAULTS_ENV, "powercut=3,", 1), 0);
	assert_int_equal(chip_faults_from_flag_or_env(NULL, &p, err, sizeof(err)),
	                 SPH_ERR_MALFORMED);
	assert_non_null(strstr(err, "trailing comma"));
	assert_int_equal(unsetenv(CHIP_FAULTS_ENV), 0);
	assert_int_equal(chip_faults_from_flag_or_env(NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.powercut, 0);
}

/* ---- firewall ----------------------------------------------------------------- */

static void test_fw_grants_and_refusals(void **state)
{
	(void)state;
	struct chip_fw *fw = NULL;
	struct chip_fw_stats st;
	struct chip_res uart1 = chip_res_periph(CHIP_RES_UART, 1);
	struct chip_res uart2 = chip_res_periph(CHIP_RES_UART, 2);
	struct chip_res net = chip_res_periph(CHIP_RES_NETWORK, 0);
	struct chip_res lo = chip_res_region(CHIP_RES_FLASH, 0, 0x1000);
	struct chip_res hi = chip_res_region(CHIP_RES_FLASH, 0x1000, 0x2000);
	struct chip_res span = chip_res_region(CHIP_RES_FLASH, 0xf00, 0x1100);
	struct chip_res wide = chip_res_region(CHIP_RES_FLASH, 0xf00, 0x2001);
	struct chip_res ram = chip_res_region(CHIP_RES_RAM, 0x100, 0x200);
	const uint32_t app3 = CHIP_COMP_APP0 + 3;

	assert_int_equal(chip_fw_new(0x4000, CHIP_RAM_SIZE, &fw), 0);
	/* Nothing granted: refused, counted per compartment and in total. */
	assert_int_equal(chip_fw_check(fw, app3, &uart1, CHIP_FW_R), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &net, CHIP_FW_W), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_refusals(fw, app3), 1);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_OS), 1);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_SECMON), 0);

	assert_int_equal(chip_fw_grant(fw, app3, &uart1, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_check(fw, app3, &uart1, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_check(fw, app3, &uart2, CHIP_FW_R), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_check(fw, app3 + 1, &uart1, CHIP_FW_R), SPH_ERR_PERMISSION);
	/* Flash: R and W granted separately, on adjoining regions. */
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &lo, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &hi, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &span, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &wide, CHIP_FW_R), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &span, CHIP_FW_R | CHIP_FW_W),
	                 SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &lo, CHIP_FW_W), 0); /* adds W */
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &lo, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &span, CHIP_FW_W), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &lo, CHIP_FW_X), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_RTCORE0, &ram, CHIP_FW_X), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_RTCORE0, &ram, CHIP_FW_X), 0);
	/* Revoke. */
	assert_int_equal(chip_fw_revoke(fw, CHIP_COMP_OS, &hi), 0);
	assert_int_equal(chip_fw_revoke(fw, CHIP_COMP_OS, &hi), SPH_ERR_NOT_FOUND);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &span, CHIP_FW_R), SPH_ERR_PERMISSION);

	/* Invalid requests are refused too. */
	struct chip_res bad_idx = chip_res_periph(CHIP_RES_GPIO, CHIP_GPIO_COUNT);
	struct chip_res empty = chip_res_region(CHIP_RES_FLASH, 0x10, 0x10);
	struct chip_res beyond = chip_res_region(CHIP_RES_FLASH, 0, 0x4001);
	assert_int_equal(chip_fw_grant(fw, app3, &bad_idx, CHIP_FW_R), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_grant(fw, app3, &empty, CHIP_FW_R), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_grant(fw, app3, &beyond, CHIP_FW_R), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_grant(fw, app3, &uart1, 0), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_grant(fw, app3, &uart1, CHIP_FW_X), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_COUNT, &uart1, CHIP_FW_R),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_COUNT, &uart1, CHIP_FW_R),
	                 SPH_ERR_INVALID_ARG);

	assert_int_equal(chip_fw_stats(fw, &st), 0);
	assert_false(st.locked);
	assert_int_equal(st.grants, 3);
	assert_int_equal(st.refused_by_comp[CHIP_COMP_OS], 6);
	assert_int_equal(st.refused_by_comp[app3], 2);
	assert_int_equal(st.refused_total, 2 + 6 + 1 + 1); /* + the invalid check */
	uint32_t comp, access;
	struct chip_res r;
	char name[64];
	assert_int_equal(chip_fw_grant_at(fw, 0, &comp, &r, &access), 0);
	assert_int_equal(comp, app3);
	assert_int_equal(chip_res_name(&r, name, sizeof(name)), 0);
	assert_string_equal(name, "uart1");
	assert_int_equal(chip_fw_grant_at(fw, 3, &comp, &r, &access), SPH_ERR_NOT_FOUND);
	assert_int_equal(chip_res_name(&span, name, sizeof(name)), 0);
	assert_string_equal(name, "flash[0xf00,0x1100)");
	assert_int_equal(chip_res_name(&net, name, sizeof(name)), 0);
	assert_string_equal(name, "network");
	assert_int_equal(chip_res_name(&span, name, 8), SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(chip_comp_name(app3, name, sizeof(name)), 0);
	assert_string_equal(name, "app3");
	assert_int_equal(chip_comp_name(CHIP_COMP_RTCORE0 + 1, name, sizeof(name)), 0);
	assert_string_equal(name, "rtcore1");
	assert_int_equal(chip_comp_name(CHIP_COMP_SECMON, name, sizeof(name)), 0);
	assert_string_equal(name, "secmon");
	assert_int_equal(chip_comp_name(CHIP_COMP_COUNT, name, sizeof(name)), SPH_ERR_INVALID_ARG);
	chip_fw_free(fw);
}

static void test_fw_lock_is_sticky(void **state)
{
	(void)state;
	struct chip_fw *fw = NULL;
	struct chip_fw_stats st;
	struct chip_res gpio = chip_res_periph(CHIP_RES_GPIO, 4);
	struct chip_res i2c = chip_res_periph(CHIP_RES_I2C, 0);

	assert_int_equal(chip_fw_new(0x4000, CHIP_RAM_SIZE, &fw), 0);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_APP0, &gpio, CHIP_FW_W), 0);
	assert_int_equal(chip_fw_lock(fw), 0);
	assert_true(chip_fw_locked(fw));
	assert_int_equal(chip_fw_lock(fw), 0);
	/* No change after lock, in either direction; each attempt is counted. */
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_APP0, &i2c, CHIP_FW_R), SPH_ERR_STATE);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_APP0, &gpio, CHIP_FW_R), SPH_ERR_STATE);
	assert_int_equal(chip_fw_revoke(fw, CHIP_COMP_APP0, &gpio), SPH_ERR_STATE);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_APP0, &gpio, CHIP_FW_W), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_APP0, &gpio, CHIP_FW_R), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_APP0, &i2c, CHIP_FW_R), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_stats(fw, &st), 0);
	assert_true(st.locked);
	assert_int_equal(st.refused_changes, 3);
	assert_int_equal(st.refused_by_comp[CHIP_COMP_APP0], 2);
	/* Reset: grants and lock gone, counters kept. */
	chip_fw_reset(fw);
	assert_false(chip_fw_locked(fw));
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_APP0, &gpio, CHIP_FW_W), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_APP0, &i2c, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_APP0, &i2c, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_APP0), 3);
	/* A full table. */
	chip_fw_reset(fw);
	for (uint32_t i = 0; i < CHIP_FW_MAX_GRANTS; i++) {
		struct chip_res r = chip_res_region(CHIP_RES_RAM, i * 16, i * 16 + 16);
		assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &r, CHIP_FW_R), 0);
	}
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &i2c, CHIP_FW_R), SPH_ERR_EXHAUSTED);
	/* 128 adjoining grants still cover a range across all of them. */
	struct chip_res all = chip_res_region(CHIP_RES_RAM, 8, CHIP_FW_MAX_GRANTS * 16);
	assert_int_equal(chip_fw_check(fw, CHIP_COMP_OS, &all, CHIP_FW_R), 0);
	chip_fw_free(fw);
}

/* ---- the chip --------------------------------------------------------------------- */

struct chipfx {
	char *dir;
	char *devdir;
	struct chip *c;
};

static int chip_setup(void **state)
{
	struct chipfx *x = calloc(1, sizeof(*x));
	struct chip_config cfg = {.geometry = {BS, NB}, .create = true};

	assert_non_null(x);
	x->dir = tu_mkdtemp();
	x->devdir = tu_path(x->dir, "dev0");
	assert_int_equal(chip_open(x->devdir, &cfg, &x->c), 0);
	*state = x;
	return 0;
}

static int chip_teardown(void **state)
{
	struct chipfx *x = *state;

	chip_close(x->c);
	tu_rmtree(x->dir);
	free(x->devdir);
	free(x->dir);
	free(x);
	return 0;
}

static void test_chip_directory(void **state)
{
	struct chipfx *x = *state;
	struct chip *c2 = NULL;
	struct chip_config cfg = {.create = true};
	struct stat st;
	char *p;

	assert_string_equal(chip_dir(x->c), x->devdir);
	p = tu_path(x->devdir, "otp");
	assert_string_equal(chip_otp_path(x->c), p);
	free(p);
	p = tu_path(x->devdir, "flash.bin");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, FSIZE);
	free(p);
	assert_int_equal(stat(x->devdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(chip_flash_size(chip_flash(x->c)), FSIZE);
	/* Reopening keeps the geometry it was created with. */
	chip_close(x->c);
	x->c = NULL;
	assert_int_equal(chip_open(x->devdir, &cfg, &x->c), 0);
	assert_int_equal(chip_flash_size(chip_flash(x->c)), FSIZE);
	/* No such device. */
	p = tu_path(x->dir, "nope");
	assert_int_equal(chip_open(p, NULL, &c2), SPH_ERR_NOT_FOUND);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chip_open(p, NULL, &c2), SPH_ERR_NOT_FOUND); /* no flash in it */
	assert_null(c2);
	/* Created with defaults when no geometry is given. */
	cfg.create = true;
	assert_int_equal(chip_open(p, &cfg, &c2), 0);
	assert_int_equal(chip_flash_size(chip_flash(c2)),
	                 (uint64_t)CHIP_FLASH_DEFAULT_BLOCK_SIZE * CHIP_FLASH_DEFAULT_BLOCK_COUNT);
	chip_close(c2);
	free(p);
}

static void test_chip_flash_goes_through_firewall(void **state)
{
	struct chipfx *x = *state;
	struct chip_fw *fw = chip_fw(x->c);
	struct chip_res all = chip_res_region(CHIP_RES_FLASH, 0, FSIZE);
	struct chip_res os_ro = chip_res_region(CHIP_RES_FLASH, 4 * BS, 8 * BS);
	static uint8_t before[FSIZE], after[FSIZE];
	uint8_t z[16], buf[16];

	memset(z, 0, sizeof(z));
	/* The security monitor is the one compartment with write access to flash. */
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_SECMON, &all, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &os_ro, CHIP_FW_R), 0);
	assert_int_equal(chip_fw_lock(fw), 0);

	read_all(chip_flash(x->c), before);
	assert_int_equal(chip_program(x->c, CHIP_COMP_OS, 4 * BS, z, 16), SPH_ERR_PERMISSION);
	assert_int_equal(chip_erase(x->c, CHIP_COMP_OS, 4), SPH_ERR_PERMISSION);
	assert_int_equal(chip_program(x->c, CHIP_COMP_BOOTLOADER, 0, z, 16), SPH_ERR_PERMISSION);
	assert_int_equal(chip_program(x->c, CHIP_COMP_APP0, 0, z, 16), SPH_ERR_PERMISSION);
	read_all(chip_flash(x->c), after);
	assert_memory_equal(before, after, FSIZE); /* refused: nothing touched */
	assert_int_equal(chip_flash_ops(chip_flash(x->c)), 0);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_OS), 2);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_BOOTLOADER), 1);

	assert_int_equal(chip_program(x->c, CHIP_COMP_SECMON, 4 * BS, z, 16), 0);
	assert_int_equal(chip_read(x->c, CHIP_COMP_OS, 4 * BS, buf, 16), 0);
	assert_memory_equal(buf, z, 16);
	memset(buf, 0x77, sizeof(buf));
	assert_int_equal(chip_read(x->c, CHIP_COMP_OS, 4 * BS - 8, buf, 16), SPH_ERR_PERMISSION);
	assert_int_equal(buf[0], 0); /* zeroed on refusal */
	assert_int_equal(chip_read(x->c, CHIP_COMP_OS, 0, buf, 16), SPH_ERR_PERMISSION);
	assert_int_equal(chip_erase(x->c, CHIP_COMP_SECMON, 4), 0);
	/* Bounds are the flash's error, not a refusal. */
	assert_int_equal(chip_read(x->c, CHIP_COMP_SECMON, FSIZE - 8, buf, 16),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_erase(x->c, CHIP_COMP_SECMON, NB), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_fw_refusals(fw, CHIP_COMP_OS), 4);
	/* Still locked: the OS cannot grant itself write access. */
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_OS, &all, CHIP_FW_W), SPH_ERR_STATE);
}

static void test_chip_reset(void **state)
{
	struct chipfx *x = *state;
	struct chip_fw *fw = chip_fw(x->c);
	struct chip_res all = chip_res_region(CHIP_RES_FLASH, 0, FSIZE);
	struct chip_ram_info info;
	struct chip_bootlog_entry e;
	struct chip_faults plan;
	uint8_t z = 0x42, got;
	char ev[CHIP_BOOTLOG_EVENT_MAX + 1];

	assert_int_equal(chip_ram_info(x->c, &info), 0);
	assert_int_equal(info.reset_reason, CHIP_RESET_POWER_ON);
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_BOOTLOADER, 0, "rom: bootloader ok"), 0);
	assert_int_equal(
	        chip_bootlog_add(x->c, CHIP_COMP_SECMON, SPH_ERR_BAD_SIGNATURE, "slot a refused"),
	        0);
	assert_int_equal(chip_bootlog_get(x->c, 1, &e), 0);
	assert_int_equal(e.comp, CHIP_COMP_SECMON);
	assert_int_equal(e.status, SPH_ERR_BAD_SIGNATURE);
	assert_string_equal(e.event, "slot a refused");
	assert_int_equal(chip_bootlog_get(x->c, 2, &e), SPH_ERR_NOT_FOUND);
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, "tab\there"), SPH_ERR_INVALID_ARG);
	memset(ev, 'e', CHIP_BOOTLOG_EVENT_MAX);
	ev[CHIP_BOOTLOG_EVENT_MAX] = '\0';
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, ev), SPH_ERR_TOO_LARGE);
	ev[CHIP_BOOTLOG_EVENT_MAX - 1] = '\0';
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, ev), 0);
	for (int i = 3; i < CHIP_BOOTLOG_MAX; i++)
		assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, "x"), 0);
	assert_int_equal(chip_bootlog_add(x->c, CHIP_COMP_OS, 0, "x"), SPH_ERR_EXHAUSTED);
	assert_int_equal(chip_ram_info(x->c, &info), 0);
	assert_int_equal(info.log_count, CHIP_BOOTLOG_MAX);
	assert_int_equal(info.log_dropped, 1);

	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_SECMON, &all, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_fw_lock(fw), 0);
	assert_int_equal(chip_program(x->c, CHIP_COMP_SECMON, 10, &z, 1), 0);
	/* A power cut: the flash is off until the chip resets. */
	memset(&plan, 0, sizeof(plan));
	plan.powercut = 1;
	assert_int_equal(chip_faults_set(chip_flash(x->c), &plan), 0);
	assert_int_equal(chip_erase(x->c, CHIP_COMP_SECMON, 9), SPH_ERR_POWER_LOSS);
	assert_int_equal(chip_read(x->c, CHIP_COMP_SECMON, 10, &got, 1), SPH_ERR_POWER_LOSS);

	assert_int_equal(chip_reset(x->c, CHIP_RESET_POWER_LOSS), 0);
	assert_int_equal(chip_ram_info(x->c, &info), 0);
	assert_int_equal(info.reset_reason, CHIP_RESET_POWER_LOSS);
	assert_int_equal(info.resets, 1);
	assert_int_equal(info.log_count, 0);
	assert_int_equal(info.log_dropped, 0);
	assert_false(chip_fw_locked(fw));
	/* Grants are gone with the lock: a fresh boot must grant again. */
	assert_int_equal(chip_read(x->c, CHIP_COMP_SECMON, 10, &got, 1), SPH_ERR_PERMISSION);
	assert_int_equal(chip_fw_grant(fw, CHIP_COMP_SECMON, &all, CHIP_FW_R), 0);
	assert_int_equal(chip_read(x->c, CHIP_COMP_SECMON, 10, &got, 1), 0);
	assert_int_equal(got, 0x42); /* flash persists */
	assert_int_equal(chip_reset(x->c, (enum chip_reset_reason)7), SPH_ERR_INVALID_ARG);
}

struct reset_line {
	int calls;
	int status;
};

static int on_reset(void *arg)
{
	struct reset_line *l = arg;
	l->calls++;
	return l->status;
}

/* What sits on the reset line (the RoT) is reset by every chip reset. */
static void test_chip_reset_line(void **state)
{
	struct chipfx *x = *state;
	struct reset_line l = {0, 0}, other = {0, 0};
	struct chip_ram_info info;

	assert_int_equal(chip_on_reset(NULL, on_reset, &l), SPH_ERR_INVALID_ARG);
	assert_int_equal(chip_on_reset(x->c, on_reset, &l), 0);
	assert_int_equal(chip_on_reset(x->c, on_reset, &other), SPH_ERR_STATE);
	assert_int_equal(chip_reset(x->c, CHIP_RESET_SOFTWARE), 0);
	assert_int_equal(chip_reset(x->c, CHIP_RESET_WATCHDOG), 0);
	assert_int_equal(l.calls, 2);
	assert_int_equal(other.calls, 0);
	/* Its failure is the reset's; the chip part happened all the same. */
	l.status = SPH_ERR_IO;
	assert_int_equal(chip_reset(x->c, CHIP_RESET_POWER_LOSS), SPH_ERR_IO);
	assert_int_equal(chip_ram_info(x->c, &info), 0);
	assert_int_equal(info.reset_reason, CHIP_RESET_POWER_LOSS);
	/* A bad reason resets nothing. */
	assert_int_equal(chip_reset(x->c, (enum chip_reset_reason)7), SPH_ERR_INVALID_ARG);
	assert_int_equal(l.calls, 3);
	assert_int_equal(chip_on_reset(x->c, NULL, NULL), 0);
	assert_int_equal(chip_reset(x->c, CHIP_RESET_SOFTWARE), 0);
	assert_int_equal(l.calls, 3);
}

static void test_chip_open_with_faults(void **state)
{
	struct chipfx *x = *state;
	struct chip_faults plan;
	struct chip_config cfg = {.faults = &plan};
	struct chip_res all = chip_res_region(CHIP_RES_FLASH, 0, FSIZE);
	char err[CHIP_FAULTS_ERR_MAX];
	uint8_t z[8] = {0};

	chip_close(x->c);
	x->c = NULL;
	assert_int_equal(chip_faults_parse("powercut=2,seed=1,lose=3", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_open(x->devdir, &cfg, &x->c), 0);
	assert_int_equal(
	        chip_fw_grant(chip_fw(x->c), CHIP_COMP_SECMON, &all, CHIP_FW_R | CHIP_FW_W), 0);
	assert_int_equal(chip_read(x->c, CHIP_COMP_SECMON, 3 * BS, z, 8), SPH_ERR_IO);
	assert_int_equal(chip_program(x->c, CHIP_COMP_SECMON, 0, z, 8), 0);
	assert_int_equal(chip_program(x->c, CHIP_COMP_SECMON, 8, z, 8), SPH_ERR_POWER_LOSS);
	/* A plan that does not fit the flash keeps the chip closed. */
	chip_close(x->c);
	x->c = NULL;
	assert_int_equal(chip_faults_parse("lose=16", &plan, err, sizeof(err)), 0);
	assert_int_equal(chip_open(x->devdir, &cfg, &x->c), SPH_ERR_INVALID_ARG);
	assert_null(x->c);
	assert_int_equal(chip_open(x->devdir, NULL, &x->c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_fresh_flash_is_erased, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_erase_sets_block_to_ff, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_program_only_clears_bits, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_program_zero_to_one_changes_nothing, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_out_of_bounds_refused, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_erase_counts_persist, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_open_rules, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_metadata_refused, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_sync, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_powercut_at_every_position, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_powercut_is_deterministic_and_power_cycle,
	                                        fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_given_flips, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_seeded_flips_reproducible, fx_setup,
	                                        fx_teardown),
	        cmocka_unit_test_setup_teardown(test_lost_block, fx_setup, fx_teardown),
	        cmocka_unit_test(test_faults_parse_valid),
	        cmocka_unit_test(test_faults_parse_invalid),
	        cmocka_unit_test(test_faults_flag_or_env),
	        cmocka_unit_test(test_fw_grants_and_refusals),
	        cmocka_unit_test(test_fw_lock_is_sticky),
	        cmocka_unit_test_setup_teardown(test_chip_directory, chip_setup, chip_teardown),
	        cmocka_unit_test_setup_teardown(test_chip_flash_goes_through_firewall, chip_setup,
	                                        chip_teardown),
	        cmocka_unit_test_setup_teardown(test_chip_reset, chip_setup, chip_teardown),
	        cmocka_unit_test_setup_teardown(test_chip_reset_line, chip_setup, chip_teardown),
	        cmocka_unit_test_setup_teardown(test_chip_open_with_faults, chip_setup,
	                                        chip_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
