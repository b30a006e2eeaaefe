/*
 * sphere-fleet: thousands of emulated devices in one process checking in
 * concurrently against a sphere-ss (docs/fleet.md). It starts its own
 * service (SQLite, a temporary directory), makes N devices (each its own
 * identity and in-process RoT), registers and claims them, then has them
 * check in from T threads and reports check-ins/s, latency percentiles,
 * errors and memory, with a live progress line.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "fleet.h"

#define FLEET_MAX_DEVICES 100000
#define FLEET_MAX_THREADS 256
#define FLEET_WHY         320

struct run {
	struct fleet_service fs;
	struct fleet_device *devs;
	unsigned n, threads, rounds;
	enum fleet_kind kind;
	char dir[FLEET_PATH_MAX];
	_Atomic unsigned next, done, errors;
	double *lat;              /* rounds * n seconds, one per check-in */
	char why[FLEET_WHY + 32]; /* the first error */
	pthread_mutex_t mu;
	int phase; /* 0 make, 1 enrol, 2 check in */
};

static double fleet_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fputs("usage: sphere-fleet [-n N] [--threads T] [--rounds R] [--booted] [--dir DIR]\n"
	      "                    [--keep]\n"
	      "\n"
	      "Starts a security service (SQLite, in DIR), makes N emulated devices, each\n"
	      "with its own identity and in-process root of trust measuring the published\n"
	      "OS, registers and claims them all, then has every device check in R times\n"
	      "(new TLS connection, nonce, attestation, certificate) from T threads, and\n"
	      "reports check-ins/s, latency percentiles, errors and memory.\n"
	      "\n"
	      "options:\n"
	      "  -n, --devices N   devices (default 1000, at most 100000)\n"
	      "  -t, --threads T   client threads (default 2 x cores)\n"
	      "  -r, --rounds R    check-ins per device (default 1)\n"
	      "      --booted      whole virtual devices (flash, boot chain; ~1.6 MB of\n"
	      "                    flash file each) instead of light ones (OTP + RoT)\n"
	      "  -d, --dir DIR     where the service and devices live (default: a new\n"
	      "                    directory under $TMPDIR or /tmp, removed at the end)\n"
	      "      --keep        keep DIR\n"
	      "  -h, --help        show this help\n"
	      "exit status: 0 every check-in succeeded, 1 failures, 2 usage\n",
	      f);
}

static int parse_uint(const char *opt, const char *s, unsigned long lo, unsigned long hi,
                      unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "sphere-fleet: %s wants %lu..%lu\n", opt, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static void note_error(struct run *r, const char *what, const char *why)
{
	pthread_mutex_lock(&r->mu);
	if (!r->why[0])
		snprintf(r->why, sizeof(r->why), "%.16s: %s", what, why);
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_add(&r->errors, 1);
}

/* One thread of a phase: takes the next item until none is left. */
static void *worker(void *arg)
{
	struct run *r = arg;
	CURL *c = r->phase == 1 ? curl_easy_init() : NULL;
	char why[FLEET_WHY], dir[FLEET_PATH_MAX + 32];
	unsigned total = r->phase == 2 ? r->n * r->rounds : r->n;

	for (;;) {
		unsigned i = atomic_fetch_add(&r->next, 1);
		int rc = 0;
		double t0;

		if (i >= total)
			break;
		switch (r->phase) {
		case 0:
			snprintf(dir, sizeof(dir), "%s/dev%u", r->dir, i);
			rc = fleet_device_make(&r->fs, r->kind, dir, &r->devs[i]);
			if (rc)
				note_error(r, "make", sph_strerror(rc));
			break;
		case 1:
			if (!c) {
				note_error(r, "enrol", "out of memory");
				break;
			}
			if (fleet_device_enrol(&r->fs, c, &r->devs[i], why, sizeof(why)) != 0)
				note_error(r, "enrol", why);
			break;
		default:
			/* round-major: every device once, then again */
			t0 = fleet_now();
			if (fleet_checkin(&r->fs, &r->devs[i % r->n], FLEET_CHECKIN, why,
			                  sizeof(why)) != 0)
				note_error(r, "check-in", why);
			else
				r->lat[i] = fleet_now() - t0;
			break;
		}
		atomic_fetch_add(&r->done, 1);
	}
	curl_easy_cleanup(c);
	return NULL;
}

/* Runs phase over its items with a progress line on stderr. Returns the
 * seconds it took, or -1 if a thread could not start. */
static double run_phase(struct run *r, int phase, const char *label)
{
	pthread_t th[FLEET_MAX_THREADS];
	unsigned started = 0, total = phase == 2 ? r->n * r->rounds : r->n;
	bool tty = isatty(STDERR_FILENO);
	double t0 = fleet_now(), last = 0;
	int pct_shown = -1;

	r->phase = phase;
	atomic_store(&r->next, 0);
	atomic_store(&r->done, 0);
	for (unsigned k = 0; k < r->threads; k++) {
		if (pthread_create(&th[k], NULL, worker, r) != 0)
			break;
		started++;
	}
	if (started == 0)
		return -1;
	for (;;) {
		unsigned d = atomic_load(&r->done);
		double t = fleet_now() - t0;
		int pct = total ? (int)(100.0 * d / total) : 100;

		if (tty && (t - last >= 0.2 || d == total)) {
			fprintf(stderr, "\r%-12s %6u/%u  %3d%%  %7.0f/s  errors %u   ", label, d,
			        total, pct, t > 0 ? d / t : 0.0, atomic_load(&r->errors));
			last = t;
		} else if (!tty && pct / 10 != pct_shown / 10) {
			fprintf(stderr, "%-12s %6u/%u  %3d%%\n", label, d, total, pct);
			pct_shown = pct;
		}
		if (d >= total)
			break;
		usleep(50000);
	}
	for (unsigned k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	if (tty)
		fputc('\n', stderr);
	return started == r->threads ? fleet_now() - t0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The process's peak resident set (VmHWM) in KiB, or 0. */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"devices", required_argument, NULL, 'n'},
	                                     {"threads", required_argument, NULL, 't'},
	                                     {"rounds", required_argument, NULL, 'r'},
	                                     {"booted", no_argument, NULL, 'b'},
	                                     {"dir", required_argument, NULL, 'd'},
	                                     {"keep", no_argument, NULL, 'k'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	static struct run r; /* large; zeroed */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long n = 1000, threads = 0, rounds = 1;
	const char *dir = NULL;
	char why[FLEET_WHY], made_dir[FLEET_PATH_MAX] = "";
	double t_make, t_enrol, t_run;
	size_t ok = 0, total;
	bool keep = false, curl_up = false;
	int opt, rc = 1, err;
	struct rlimit rl;

	if (cores < 1)
		cores = 1;
	while ((opt = getopt_long(argc, argv, "n:t:r:d:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_uint("--devices", optarg, 1, FLEET_MAX_DEVICES, &n) != 0)
				return 2;
			break;
		case 't':
			if (parse_uint("--threads", optarg, 1, FLEET_MAX_THREADS, &threads) != 0)
				return 2;
			break;
		case 'r':
			if (parse_uint("--rounds", optarg, 1, 1000, &rounds) != 0)
				return 2;
			break;
		case 'b':
			r.kind = FLEET_BOOTED;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'k':
			keep = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (n * rounds > 10000000ul) {
		fprintf(stderr, "sphere-fleet: --devices x --rounds is at most 10000000\n");
		return 2;
	}
	if (!threads)
		threads = (unsigned long)(2 * cores);
	if (threads > n)
		threads = n;
	r.n = (unsigned)n;
	r.threads = (unsigned)threads;
	r.rounds = (unsigned)rounds;
	pthread_mutex_init(&r.mu, NULL);
	setenv("SPHERE_LOG", "warn", 0);

	/* every light device's RoT holds its OTP file open */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)n + 256) {
		fprintf(stderr,
		        "sphere-fleet: %lu devices need about %lu open files; the limit is %lu"
		        " (raise it with ulimit -n)\n",
		        n, n + 256, (unsigned long)rl.rlim_cur);
		return 1;
	}
	if (dir) {
		if (strlen(dir) + 16 >= sizeof(r.dir) || mkdir(dir, 0700) != 0) {
			fprintf(stderr, "sphere-fleet: %s: %s\n", dir,
			        strlen(dir) + 16 >= sizeof(r.dir) ? "path too long"
			                                          : strerror(errno));
			return 1;
		}
		snprintf(r.dir, sizeof(r.dir), "%s", dir);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(r.dir, sizeof(r.dir), "%s/sphere-fleet-XXXXXX",
		         tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(r.dir)) {
			fprintf(stderr, "sphere-fleet: mkdtemp: %s\n", strerror(errno));
			return 1;
		}
	}
	snprintf(made_dir, sizeof(made_dir), "%s", r.dir);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "sphere-fleet: curl_global_init failed\n");
		goto out;
	}
	curl_up = true;
	r.devs = calloc(n, sizeof(*r.devs));
	r.lat = calloc(n * rounds, sizeof(*r.lat));
	if (!r.devs || !r.lat) {
		fprintf(stderr, "sphere-fleet: out of memory\n");
		goto out;
	}
	{
		char sdir[FLEET_PATH_MAX + 8];
		snprintf(sdir, sizeof(sdir), "%s/ss", r.dir);
		fprintf(stderr, "service      starting sphere-ss in %s (%ld workers)\n", sdir,
		        cores);
		if ((err = fleet_service_start(sdir, (unsigned)cores, &r.fs, why, sizeof(why))) !=
		    0) {
			fprintf(stderr, "sphere-fleet: the service: %s\n", why);
			goto out;
		}
	}
	t_make = run_phase(&r, 0, "devices");
	if (t_make < 0 || atomic_load(&r.errors)) {
		fprintf(stderr, "sphere-fleet: making devices: %s\n", r.why);
		goto out;
	}
	t_enrol = run_phase(&r, 1, "enrol");
	if (t_enrol < 0 || atomic_load(&r.errors)) {
		fprintf(stderr, "sphere-fleet: enrolling devices: %s\n", r.why);
		goto out;
	}
	t_run = run_phase(&r, 2, "check-ins");
	if (t_run <= 0)
		goto out;

	total = (size_t)n * rounds;
	for (size_t i = 0; i < total; i++)
		if (r.lat[i] > 0)
			r.lat[ok++] = r.lat[i];
	qsort(r.lat, ok, sizeof(*r.lat), cmp_double);
	printf("devices      %lu %s: made in %.1f s, registered and claimed in %.1f s\n", n,
	       r.kind == FLEET_BOOTED ? "booted" : "light", t_make, t_enrol);
	printf("check-ins    %zu ok, %u failed, in %.2f s: %.0f check-ins/s from %u threads\n", ok,
	       atomic_load(&r.errors), t_run, (double)ok / t_run, r.threads);
	if (ok)
		printf("latency      p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
		       r.lat[(ok - 1) / 2] * 1e3, r.lat[(size_t)((double)(ok - 1) * 0.90)] * 1e3,
		       r.lat[(size_t)((double)(ok - 1) * 0.99)] * 1e3, r.lat[ok - 1] * 1e3);
	if (atomic_load(&r.errors))
		printf("first error  %s\n", r.why);
	printf("memory       peak RSS %.1f MiB for the service and %lu devices (%.1f KiB per "
	       "device)\n",
	       (double)peak_rss_kib() / 1024.0, n, (double)peak_rss_kib() / (double)n);
	printf("state        %s%s\n", r.dir, keep || dir ? "" : " (removed)");
	rc = atomic_load(&r.errors) ? 1 : 0;
out:
	if (r.devs)
		for (unsigned i = 0; i < r.n; i++)
			fleet_device_free(&r.devs[i]);
	free(r.devs);
	free(r.lat);
	fleet_service_stop(&r.fs);
	if (curl_up)
		curl_global_cleanup();
	if (!keep && !dir && made_dir[0])
		(void)nftw(made_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_destroy(&r.mu);
	return rc;
}
