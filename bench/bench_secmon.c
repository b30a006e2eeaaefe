/*
 * bench_secmon: the security monitor store's throughput, as ratios to the I/O
 * and coding it cannot avoid, measured in the same run on the same disk.
 * Every figure is the median of REPS runs (the disk's timing varies a lot).
 *
 *  - write: secmon_put of a 1 MiB and a 4 MiB object then chip_flash_sync,
 *    against the raw reference: pwrite of the same bytes at offset 0 of a
 *    preallocated file of the flash's size, in the same directory, then
 *    fdatasync (durable to durable). Two store cases: a fresh store (blocks
 *    erased by format) and a replace (copy-on-write into other free blocks,
 *    least-worn first, while the old version stays until the commit). Also
 *    as a ratio to ISA-L's bare ec_encode_data rate for k = 8, m = 2;
 *  - read: secmon_get against pread of the same bytes, cold to cold
 *    (posix_fadvise POSIX_FADV_DONTNEED on the flash image and on the raw
 *    file before each timed read), and warm to warm for information;
 *  - scrub: object bytes verified per second (every shard read, CRC-checked,
 *    parity recomputed and compared, SHA-256), warm;
 *  - self-heal: secmon_get of a 1 MiB object with m = 2 shards lost in every
 *    stripe (rebuild, rewrite to fresh blocks, commit), then sync.
 * The store writes k + m shards per k of data (25 % more bytes) plus a
 * 32-byte header per 4 KiB shard; it keeps up with raw I/O by overlapping:
 * the SHA-256 runs on a second thread, large programs start their writeback
 * at once, and reads prefetch the shards they will use.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/erasure_code.h>

#include "chip/chip.h"
#include "common/common.h"
#include "secmon/secmon.h"
#include "secmon/secmon_internal.h"

#define BS   4096u
#define NB   4096u /* 16 MiB of flash */
#define REPS 15
#define MB   (1024.0 * 1024.0)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
	char dir[64];
	char flash_path[128], raw_path[128];
	struct chip *c;
	struct secmon *s;
	struct secmon_region r;
	int raw_fd;
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_secmon: %s: %s\n", what, sph_strerror(rc));
	exit(1);
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open for fadvise", SPH_ERR_IO);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static void fresh_store(struct bench *b)
{
	int rc;

	secmon_unmount(b->s);
	b->s = NULL;
	rc = secmon_format(b->c, &b->r, NULL);
	if (rc == 0)
		rc = secmon_mount(b->c, CHIP_COMP_SECMON, &b->r, &b->s);
	if (rc == 0)
		rc = chip_flash_sync(chip_flash(b->c));
	if (rc != 0)
		die("format", rc);
}

static double raw_write(struct bench *b, const uint8_t *d, size_t len)
{
	double t0 = now();

	if (pwrite(b->raw_fd, d, len, 0) != (ssize_t)len || fdatasync(b->raw_fd) != 0)
		die("raw write", SPH_ERR_IO);
	return now() - t0;
}

static double raw_read(struct bench *b, uint8_t *d, size_t len, bool cold)
{
	double t0;

	if (cold)
		drop_cache(b->raw_path);
	t0 = now();
	if (pread(b->raw_fd, d, len, 0) != (ssize_t)len)
		die("raw read", SPH_ERR_IO);
	return now() - t0;
}

static double store_write(struct bench *b, const uint8_t *d, size_t len)
{
	double t0 = now();
	int rc = secmon_put(b->s, "obj", d, len);

	if (rc == 0)
		rc = chip_flash_sync(chip_flash(b->c));
	if (rc != 0)
		die("secmon_put", rc);
	return now() - t0;
}

static double store_read(struct bench *b, const uint8_t *want, size_t len, bool cold)
{
	uint8_t *got = NULL;
	size_t glen = 0;
	double t0, t;
	int rc;

	if (cold)
		drop_cache(b->flash_path);
	t0 = now();
	rc = secmon_get(b->s, "obj", &got, &glen, NULL, 0);
	t = now() - t0;
	if (rc != 0 || glen != len || memcmp(got, want, len) != 0)
		die("secmon_get", rc ? rc : SPH_ERR_CORRUPT);
	free(got);
	return t;
}

/* ISA-L's bare encode of len bytes as k = 8, m = 2 stripes of 4064-byte shards. */
static double ec_rate(const uint8_t *d, size_t len)
{
	unsigned char a[10 * 8], tbls[32 * 8 * 2];
	size_t P = BS - SECMON_SHARD_HDR, stripe = 8 * P;
	uint8_t *par = malloc(2 * P), *pp[2], *dp[8];
	double t0, t = 0;
	int reps = 0;

	gf_gen_cauchy1_matrix(a, 10, 8);
	ec_init_tables(8, 2, a + 64, tbls);
	pp[0] = par;
	pp[1] = par + P;
	t0 = now();
	do {
		for (size_t off = 0; off + stripe <= len; off += stripe) {
			for (int i = 0; i < 8; i++)
				dp[i] = (uint8_t *)d + off + (size_t)i * P;
			ec_encode_data((int)P, 8, 2, tbls, dp, pp);
		}
		reps++;
		t = now() - t0;
	} while (t < 0.5);
	free(par);
	return (double)(len / stripe * stripe) * reps / t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of n timings (sorts them). */
static double median(double *t, size_t n)
{
	qsort(t, n, sizeof(*t), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void bench_size(struct bench *b, size_t len, double ec)
{
	uint8_t *d = malloc(len), *rb = malloc(len);
	double rw[REPS], sw[REPS], sr[REPS], rr[REPS], swr[REPS], srw[REPS], rrw[REPS];

	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 2654435761u >> 13);
	for (int i = 0; i < REPS; i++) {
		fresh_store(b);
		rw[i] = raw_write(b, d, len);
		sw[i] = store_write(b, d, len);
		swr[i] = store_write(b, d, len); /* replace: copy-on-write */
		rr[i] = raw_read(b, rb, len, true);
		sr[i] = store_read(b, d, len, true);
		rrw[i] = raw_read(b, rb, len, false);
		srw[i] = store_read(b, d, len, false);
	}
	{
		double mrw = median(rw, REPS), msw = median(sw, REPS), mswr = median(swr, REPS);
		double mrr = median(rr, REPS), msr = median(sr, REPS), mrrw = median(rrw, REPS);
		double msrw = median(srw, REPS);
		printf("%4zu KiB object (medians of %d runs)\n", len / 1024, REPS);
		printf("  write (fresh store)     %7.1f MB/s, raw pwrite+fdatasync %7.1f MB/s: "
		       "ratio %.2f (to ec_encode_data %.3f)\n",
		       len / msw / MB, len / mrw / MB, mrw / msw, len / msw / ec);
		printf("  write (replace, COW)    %7.1f MB/s: ratio %.2f\n", len / mswr / MB,
		       mrw / mswr);
		printf("  read cold               %7.1f MB/s, raw pread %7.1f MB/s: ratio %.2f\n",
		       len / msr / MB, len / mrr / MB, mrr / msr);
		printf("  read warm (info)        %7.1f MB/s, raw pread %7.1f MB/s: ratio %.2f\n",
		       len / msrw / MB, len / mrrw / MB, mrrw / msrw);
	}
	free(d);
	free(rb);
}

static void bench_scrub_heal(struct bench *b)
{
	size_t len = 1u << 20;
	uint8_t *d = malloc(len), *got = NULL;
	struct secmon_scrub_report rep;
	struct chip_faults f;
	size_t glen;
	double t0, ts, th = 0;
	int rc;

	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 40503u >> 7);
	fresh_store(b);
	if (secmon_put(b->s, "obj", d, len) != 0 || secmon_put(b->s, "obj4", d, len) != 0)
		die("put", SPH_ERR_IO);
	t0 = now();
	for (int i = 0; i < REPS; i++) {
		rc = secmon_scrub(b->s, &rep);
		if (rc != 0)
			die("scrub", rc);
	}
	ts = now() - t0;
	printf("scrub                     %7.1f MB/s of objects (%llu shards per pass)\n",
	       2.0 * len * REPS / ts / MB, (unsigned long long)rep.shards);
	for (int i = 0; i < REPS; i++) {
		/* Lose m = 2 shards of every stripe of obj (rows 0 and k_s: data and parity). */
		const struct secmon_entry *e;
		bool found;
		size_t idx =
		        secmon_table_find(&b->s->st.t, SECMON_NS_SYSTEM, NULL, "obj", 3, &found);
		e = &b->s->st.t.obj[idx];
		memset(&f, 0, sizeof(f));
		for (uint32_t st = 0; st < e->lay.stripes; st++) {
			uint32_t base = secmon_stripe_base(&b->s->st.g, &e->lay, st);
			uint16_t two[2] = {e->blocks[base],
			                   e->blocks[base + secmon_stripe_k(&e->lay, st)]};
			for (int j = 0; j < 2; j++) {
				if (f.nlost == CHIP_FAULTS_MAX_LOST) {
					if (chip_faults_set(chip_flash(b->c), &f) != 0)
						die("faults", SPH_ERR_IO);
					memset(&f, 0, sizeof(f));
				}
				f.lost[f.nlost++] = two[j];
			}
		}
		if (chip_faults_set(chip_flash(b->c), &f) != 0)
			die("faults", SPH_ERR_IO);
		t0 = now();
		rc = secmon_get(b->s, "obj", &got, &glen, NULL, 0);
		if (rc == 0)
			rc = chip_flash_sync(chip_flash(b->c));
		th += now() - t0;
		if (rc != 0 || glen != len || memcmp(got, d, len) != 0)
			die("self-heal", rc ? rc : SPH_ERR_CORRUPT);
		free(got);
		got = NULL;
	}
	rc = secmon_scrub(b->s, &rep);
	if (rc != 0 || rep.repaired != 0)
		die("scrub after heal", rc ? rc : SPH_ERR_CORRUPT);
	printf("self-heal 1 MiB, 2 shards lost per stripe: %.2f ms (get + rebuild + rewrite + "
	       "commit + sync)\n",
	       th / REPS * 1e3);
	free(d);
}

int main(int argc, char **argv)
{
	struct bench b;
	struct chip_config cfg = {.geometry = {BS, NB}, .create = true};
	struct chip_res res = chip_res_region(CHIP_RES_FLASH, 0, (uint64_t)BS * NB);
	const char *base = getenv("TMPDIR");
	uint8_t *zero;
	double ec;
	int opt;

	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		fprintf(opt == 'h' ? stdout : stderr,
		        "usage: bench_secmon [--help]\n"
		        "  Store write/read/scrub/self-heal throughput as ratios to raw file I/O\n"
		        "  and ISA-L encode, in $TMPDIR (default /tmp).\n");
		return opt == 'h' ? 0 : 2;
	}
	if (optind != argc) {
		fprintf(stderr, "bench_secmon: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	setenv("SPHERE_LOG", "warn", 0); /* the results, not every repair */
	memset(&b, 0, sizeof(b));
	snprintf(b.dir, sizeof(b.dir), "%s/bench-secmon-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(b.dir))
		die("mkdtemp", SPH_ERR_IO);
	if (chip_open(b.dir, &cfg, &b.c) != 0)
		die("chip_open", SPH_ERR_IO);
	if (chip_fw_grant(chip_fw(b.c), CHIP_COMP_SECMON, &res, CHIP_FW_R | CHIP_FW_W) != 0)
		die("grant", SPH_ERR_STATE);
	b.r.first_block = 0;
	b.r.block_count = NB;
	snprintf(b.flash_path, sizeof(b.flash_path), "%s/%s", b.dir, CHIP_FLASH_FILE);
	snprintf(b.raw_path, sizeof(b.raw_path), "%s/raw.bin", b.dir);
	b.raw_fd = open(b.raw_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	zero = calloc(1, (size_t)BS * NB);
	if (b.raw_fd < 0 || !zero || pwrite(b.raw_fd, zero, (size_t)BS * NB, 0) != BS * NB ||
	    fsync(b.raw_fd) != 0)
		die("raw file", SPH_ERR_IO);

	ec = ec_rate(zero, 4u << 20);
	printf("bench_secmon: %u x %u B flash in %s; k = 8, m = 2 (defaults)\n", NB, BS, b.dir);
	printf("ISA-L ec_encode_data k=8 m=2: %.0f MB/s of data\n", ec / MB);
	bench_size(&b, 1u << 20, ec);
	bench_size(&b, 4u << 20, ec);
	bench_scrub_heal(&b);

	free(zero);
	secmon_unmount(b.s);
	chip_close(b.c);
	close(b.raw_fd);
	unlink(b.raw_path);
	unlink(b.flash_path);
	snprintf(b.raw_path, sizeof(b.raw_path), "%s/%s%s", b.dir, CHIP_FLASH_FILE,
	         CHIP_FLASH_META_SUFFIX);
	unlink(b.raw_path);
	rmdir(b.dir);
	return 0;
}
