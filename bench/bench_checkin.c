/*
 * bench_checkin: the service under a load of emulated devices doing full
 * check-ins (docs/api.md §4.12-§4.13), as a ratio to the cryptography a
 * check-in cannot avoid, measured in the same run (issue 5).
 *
 * Set-up (not timed): the fleet (src/fleet, docs/fleet.md — sphere-fleet's
 * load generator): a service in this process (SQLite in a temporary
 * directory, workers = cores) trusting a fresh platform root, the three OS
 * packages (BL, SECMON, OS 1.0.0) uploaded and published in the Retail feed;
 * N booted fleet devices, each a real one (boot_provision with its own fresh
 * device secret, so its own identity and attestation keys; the packages
 * installed; boot_run measuring them into its RoT; a self-signed TLS
 * certificate from the RoT), registered by the operator and claimed by the
 * tenant (in no group: an empty target, so every check-in is up to date and
 * gets a certificate).
 *
 * The load: T client threads, thread k cycling over devices k, k+T, ...; a
 * check-in is a NEW TLS connection (a new curl handle, session cache off: no
 * resumption; key share P-256, the curve the floor counts) authenticated with
 * the device's RoT key, POST /v1/checkin/nonce, rot_attest over the nonce,
 * POST /v1/checkin on the same connection, the reply's certificate parsed.
 * Latency is per check-in, wall clock; the window is --seconds after a
 * warm-up (check-ins that end inside it count).
 *
 * The floor (single core, OpenSSL EVP on this machine, now): as issue 5
 * defines it, one check-in = 1 ECDH P-256 (an ephemeral key generated and one
 * derive: a TLS 1.3 key share, one side) + 2 P-256 ECDSA signs + 2 verifies.
 * These are the service's own unavoidable operations as the issue counted
 * them: its ECDHE share, its TLS CertificateVerify and the device
 * certificate's signature, and the verifies of the device's TLS
 * CertificateVerify and of the EAT. It is a lower bound on the real cost:
 * the service now also signs the signed time (§4.13 step 3: a third sign),
 * and the devices, emulated in this same process on the same cores, do their
 * own ECDHE, 2 signs (CertificateVerify, EAT) and 1 verify (the server's
 * CertificateVerify). So the whole check-in, both ends, is printed too:
 * 2 ECDH + 5 signs + 3 verifies.
 *
 * "Per core" is per core the service used: the devices share the machine,
 * so the service's CPU time in the window is measured (the process's CPU
 * clock less the client threads' own clocks; the main thread sleeps) and
 * ratio = (check-ins / service core-seconds) / issue floor. The target
 * (issue 5) is >= 0.6 of it, and p99 < 50 ms at 1,000 devices (assessed only
 * when --devices >= 1000). The machine-wide figure, both ends on the same
 * cores, is printed against the both-ends floor.
 *
 * Before the load, a reference phase: the same clients doing only the TLS
 * handshake and the nonce request, so the service CPU that OpenSSL's
 * handshake alone costs is printed next to a whole check-in's.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "fleet/fleet.h"

#define MAX_DEVICES    100000
#define MAX_THREADS    256
#define LATENCIES_MAX  (1u << 24) /* per thread */
#define TARGET_RATIO   0.6
#define TARGET_P99_MS  50.0
#define TARGET_DEVICES 1000u

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
	char tmp[64];
	struct fleet_service fs;
	struct fleet_device *devs;
	unsigned ndevs;
	unsigned nthreads;
	double t_start, t_end; /* the measured window */
	int handshake_only;    /* the reference phase: TLS handshake + nonce, no more */
};

/* ---- set-up ----------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void rmtree(const char *path)
{
	if (path && *path)
		(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the load --------------------------------------------------------------------- */

static double cpu_clock(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu(pthread_t th)
{
	clockid_t id;

	return pthread_getcpuclockid(th, &id) == 0 ? cpu_clock(id) : 0;
}

static void sleep_until(double t)
{
	double d = t - now();

	if (d > 0) {
		struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

struct worker {
	pthread_t th;
	struct bench *b;
	unsigned idx;
	double *lat; /* seconds, check-ins that ended inside the window */
	size_t nlat, cap;
	unsigned long errors;
	int failed; /* out of memory for latencies */
	char why[320];
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	unsigned i = w->idx;
	char why[320];
	double t0, t1;

	while ((t0 = now()) < b->t_end) {
		int rc = fleet_checkin(&b->fs, &b->devs[i],
		                       b->handshake_only ? FLEET_HANDSHAKE : FLEET_CHECKIN, why,
		                       sizeof(why));

		t1 = now();
		if (rc != 0) {
			if (!w->errors++)
				snprintf(w->why, sizeof(w->why), "%s", why);
		} else if (t1 >= b->t_start && t1 <= b->t_end) {
			if (w->nlat == w->cap) {
				size_t ncap = w->cap ? 2 * w->cap : 4096;
				double *q;

				if (ncap > LATENCIES_MAX ||
				    !(q = realloc(w->lat, ncap * sizeof(*q)))) {
					w->failed = 1;
					break;
				}
				w->lat = q;
				w->cap = ncap;
			}
			w->lat[w->nlat++] = t1 - t0;
		}
		i += b->nthreads;
		if (i >= b->ndevs)
			i = w->idx;
	}
	return NULL;
}

/* One phase: T client threads check in (or only shake hands) through a
 * warm-up and a window of secs. Fills the service's CPU seconds in the
 * window, the clients' (when client_cpu), the count of operations that ended
 * in it and the failures. Returns 0, or -1 (threads, memory). */
static int load(struct bench *b, struct worker *w, double warmup, double secs, double *service_cpu,
                double *client_cpu, size_t *total, unsigned long *errors)
{
	unsigned long started = 0;
	double p0, p1, c0 = 0, c1 = 0;

	*total = 0;
	*errors = 0;
	for (unsigned k = 0; k < b->nthreads; k++) {
		w[k].nlat = 0;
		w[k].errors = 0;
	}
	b->t_start = now() + warmup;
	b->t_end = b->t_start + secs;
	for (unsigned k = 0; k < b->nthreads; k++) {
		w[k].b = b;
		w[k].idx = k;
		if (pthread_create(&w[k].th, NULL, worker_run, &w[k]) != 0) {
			fprintf(stderr, "bench_checkin: pthread_create failed\n");
			b->t_end = 0; /* the started ones stop */
			break;
		}
		started++;
	}
	/* CPU the service spent in the window: the process's, less the client
	 * threads' (this thread sleeps) */
	if (started == b->nthreads) {
		sleep_until(b->t_start);
		p0 = cpu_clock(CLOCK_PROCESS_CPUTIME_ID);
		for (unsigned k = 0; k < started; k++)
			c0 += thread_cpu(w[k].th);
		sleep_until(b->t_end);
		p1 = cpu_clock(CLOCK_PROCESS_CPUTIME_ID);
		for (unsigned k = 0; k < started; k++)
			c1 += thread_cpu(w[k].th);
		*service_cpu = (p1 - p0) - (c1 - c0);
		if (client_cpu)
			*client_cpu = c1 - c0;
	}
	for (unsigned k = 0; k < started; k++)
		pthread_join(w[k].th, NULL);
	if (started != b->nthreads)
		return -1;
	for (unsigned k = 0; k < b->nthreads; k++) {
		if (w[k].failed) {
			fprintf(stderr, "bench_checkin: out of memory for latencies\n");
			return -1;
		}
		if (w[k].errors && !*errors)
			fprintf(stderr, "bench_checkin: %s failed: %s\n",
			        b->handshake_only ? "handshake" : "check-in", w[k].why);
		*errors += w[k].errors;
		*total += w[k].nlat;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ---- the floor -------------------------------------------------------------------- */

struct floor_ctx {
	EVP_PKEY_CTX *gen, *sign, *verify;
	EVP_PKEY *peer;
	uint8_t digest[32], der[80];
	size_t der_len;
};

typedef int (*floor_op)(struct floor_ctx *f, unsigned i);

static int op_ecdh(struct floor_ctx *f, unsigned i)
{
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *dc = NULL;
	uint8_t secret[32];
	size_t len = sizeof(secret);
	int rc = -1;

	(void)i;
	if (EVP_PKEY_keygen(f->gen, &eph) != 1 || !(dc = EVP_PKEY_CTX_new(eph, NULL)) ||
	    EVP_PKEY_derive_init(dc) != 1 || EVP_PKEY_derive_set_peer(dc, f->peer) != 1 ||
	    EVP_PKEY_derive(dc, secret, &len) != 1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_free(eph);
	return rc;
}

static int op_sign(struct floor_ctx *f, unsigned i)
{
	size_t len = sizeof(f->der);

	f->digest[0] = (uint8_t)i;
	return EVP_PKEY_sign(f->sign, f->der, &len, f->digest, sizeof(f->digest)) == 1 ? 0 : -1;
}

static int op_verify(struct floor_ctx *f, unsigned i)
{
	(void)i;
	return EVP_PKEY_verify(f->verify, f->der, f->der_len, f->digest, sizeof(f->digest)) == 1
	               ? 0
	               : -1;
}

/* Operations per second of op on this thread over `secs`, or -1. */
static double op_rate(floor_op op, struct floor_ctx *f, double secs)
{
	double start = now(), end = start + secs, t;
	unsigned long n = 0;

	do {
		for (int k = 0; k < 16; k++)
			if (op(f, (unsigned)n++) != 0)
				return -1;
		t = now();
	} while (t < end);
	return (double)n / (t - start);
}

/* OpenSSL's single-core P-256 rates: ECDHE (keygen + derive), sign, verify. */
static int floor_rates(double secs, double *ecdh, double *sign, double *verify)
{
	struct floor_ctx f = {0};
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	int rc = -1;

	f.peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!k || !f.peer || !(f.gen = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    EVP_PKEY_keygen_init(f.gen) != 1 || EVP_PKEY_CTX_set_group_name(f.gen, "P-256") != 1 ||
	    !(f.sign = EVP_PKEY_CTX_new(k, NULL)) || !(f.verify = EVP_PKEY_CTX_new(k, NULL)) ||
	    EVP_PKEY_sign_init(f.sign) != 1 || EVP_PKEY_verify_init(f.verify) != 1)
		goto out;
	if ((*ecdh = op_rate(op_ecdh, &f, secs)) <= 0 || (*sign = op_rate(op_sign, &f, secs)) <= 0)
		goto out;
	f.der_len = sizeof(f.der);
	if (EVP_PKEY_sign(f.sign, f.der, &f.der_len, f.digest, sizeof(f.digest)) != 1 ||
	    (*verify = op_rate(op_verify, &f, secs)) <= 0)
		goto out;
	rc = 0;
out:
	EVP_PKEY_CTX_free(f.gen);
	EVP_PKEY_CTX_free(f.sign);
	EVP_PKEY_CTX_free(f.verify);
	EVP_PKEY_free(f.peer);
	EVP_PKEY_free(k);
	return rc;
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_checkin [--devices N] [--threads T] [--seconds S] [--check]\n"
	           "  N emulated devices (real boot + RoT each) check in to a service started in\n"
	           "  this process: each check-in a new TLS connection with the RoT key, nonce,\n"
	           "  EAT, certificate. Prints check-ins/s, p50/p99 latency and the ratio to the\n"
	           "  crypto floor (1 ECDH + 2 signs + 2 verifies, P-256, OpenSSL, one core)\n"
	           "  measured in the same run.\n"
	           "  --devices N  devices provisioned up front (default 100; the p99 target\n"
	           "               is for 1000)\n"
	           "  --threads T  client threads (default 2 x cores)\n"
	           "  --seconds S  measured window after a 1 s warm-up (default 5)\n"
	           "  --check      exit 1 if a target is missed\n");
}

static int parse_uint(const char *opt, const char *s, unsigned long lo, unsigned long hi,
                      unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "bench_checkin: %s wants %lu..%lu\n", opt, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"devices", required_argument, NULL, 'n'},
	                                     {"threads", required_argument, NULL, 't'},
	                                     {"seconds", required_argument, NULL, 's'},
	                                     {"check", no_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct bench b;
	struct worker *w = NULL;
	CURL *setup = NULL;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long ndevs = 100, nthreads = 0, v;
	double secs = 5.0, warmup = 1.0, t0, f_ecdh, f_sign, f_verify;
	double *all = NULL, floor_issue, floor_both, rate, per_core, p50, p99, ratio;
	double service_cpu = 0, client_cpu = 0, per_service_core, hs_cpu = 0;
	size_t hs_total = 0;
	size_t total = 0;
	unsigned long errors = 0;
	int opt, check = 0, missed = 0, rc = 1, err, curl_up = 0;

	memset(&b, 0, sizeof(b));
	if (cores < 1)
		cores = 1;
	while ((opt = getopt_long(argc, argv, "n:t:s:ch", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_uint("--devices", optarg, 1, MAX_DEVICES, &ndevs) != 0)
				return 2;
			break;
		case 't':
			if (parse_uint("--threads", optarg, 1, MAX_THREADS, &nthreads) != 0)
				return 2;
			break;
		case 's':
			if (parse_uint("--seconds", optarg, 1, 600, &v) != 0)
				return 2;
			secs = (double)v;
			break;
		case 'c':
			check = 1;
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
	if (!nthreads)
		nthreads = (unsigned long)(2 * cores) < MAX_THREADS ? (unsigned long)(2 * cores)
		                                                    : MAX_THREADS;
	if (nthreads > ndevs)
		nthreads = ndevs; /* a device checks in from one thread at a time */
	b.ndevs = (unsigned)ndevs;
	b.nthreads = (unsigned)nthreads;
	setenv("SPHERE_LOG", "warn", 0);

	/* the floor first, with nothing else running */
	if (floor_rates(1.0, &f_ecdh, &f_sign, &f_verify) != 0) {
		fprintf(stderr, "bench_checkin: the OpenSSL floor loop failed\n");
		goto out;
	}
	floor_issue = 1.0 / (1.0 / f_ecdh + 2.0 / f_sign + 2.0 / f_verify);
	floor_both = 1.0 / (2.0 / f_ecdh + 5.0 / f_sign + 3.0 / f_verify);

	snprintf(b.tmp, sizeof(b.tmp), "/tmp/sphere-bench-checkin-XXXXXX");
	if (!mkdtemp(b.tmp)) {
		perror("bench_checkin: mkdtemp");
		b.tmp[0] = '\0';
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto out;
	curl_up = 1;
	if (!(setup = curl_easy_init()) || !(b.devs = calloc(ndevs, sizeof(*b.devs))) ||
	    !(w = calloc(nthreads, sizeof(*w)))) {
		fprintf(stderr, "bench_checkin: out of memory\n");
		goto out;
	}
	t0 = now();
	{
		char sdir[sizeof(b.tmp) + 24], why[320];
		snprintf(sdir, sizeof(sdir), "%s/ss", b.tmp);
		if ((err = fleet_service_start(sdir, (unsigned)cores, &b.fs, why, sizeof(why))) !=
		    0) {
			fprintf(stderr, "bench_checkin: service set-up: %s\n", why);
			goto out;
		}
		for (unsigned i = 0; i < b.ndevs; i++) {
			snprintf(sdir, sizeof(sdir), "%s/dev%u", b.tmp, i);
			if ((err = fleet_device_make(&b.fs, FLEET_BOOTED, sdir, &b.devs[i])) != 0) {
				fprintf(stderr, "bench_checkin: device %u: %s\n", i,
				        sph_strerror(err));
				goto out;
			}
			if (fleet_device_enrol(&b.fs, setup, &b.devs[i], why, sizeof(why)) != 0) {
				fprintf(stderr, "bench_checkin: device %u: %s\n", i, why);
				goto out;
			}
		}
	}
	printf("setup      service (workers %ld) + %u devices provisioned, booted, registered,"
	       " claimed in %.1f s\n",
	       cores, b.ndevs, now() - t0);

	/* the reference: the same connections doing only the TLS handshake and
	 * the nonce request, so what OpenSSL's handshake alone costs the
	 * service is printed next to the check-in */
	b.handshake_only = 1;
	if (load(&b, w, warmup, secs < 3 ? secs : 3, &hs_cpu, NULL, &hs_total, &errors) != 0)
		goto out;
	b.handshake_only = 0;
	if (errors || !hs_total) {
		fprintf(stderr, "bench_checkin: %lu failed handshakes, %zu done\n", errors,
		        hs_total);
		goto out;
	}
	/* the load: warm-up, then the window */
	if (load(&b, w, warmup, secs, &service_cpu, &client_cpu, &total, &errors) != 0)
		goto out;
	if (errors || !total) {
		fprintf(stderr, "bench_checkin: %lu failed check-ins, %zu done\n", errors, total);
		goto out;
	}
	if (!(all = malloc(total * sizeof(*all))))
		goto out;
	total = 0;
	for (unsigned k = 0; k < b.nthreads; k++) {
		memcpy(all + total, w[k].lat, w[k].nlat * sizeof(*all));
		total += w[k].nlat;
	}
	qsort(all, total, sizeof(*all), cmp_double);
	p50 = all[(total - 1) / 2] * 1e3;
	p99 = all[(size_t)((double)(total - 1) * 0.99)] * 1e3;
	rate = (double)total / secs;
	per_core = rate / (double)cores;
	/* check-ins per second of one core running the service */
	per_service_core = service_cpu > 0 ? (double)total / service_cpu : 0;
	ratio = per_service_core / floor_issue;

	printf("floor      OpenSSL P-256, one core: ECDHE %.0f/s  sign %.0f/s  verify %.0f/s\n",
	       f_ecdh, f_sign, f_verify);
	printf("floor      issue 5 (1 ECDH + 2 sign + 2 verify): %.0f check-ins/s per core\n",
	       floor_issue);
	printf("floor      both ends (2 ECDH + 5 sign + 3 verify): %.0f check-ins/s per core\n",
	       floor_both);
	printf("load       %u devices, %u client threads, %ld cores, %.0f s window\n", b.ndevs,
	       b.nthreads, cores, secs);
	printf("checkin    %.0f check-ins/s (%zu), %.1f per core  p50 %.2f ms  p99 %.2f ms\n", rate,
	       total, per_core, p50, p99);
	printf("cpu        service %.2f core-s (%.0f us per check-in), emulated devices %.2f"
	       " core-s, in the window\n",
	       service_cpu, service_cpu / (double)total * 1e6, client_cpu);
	printf("reference  TLS 1.3 mutual-auth handshake + nonce request alone: %.0f us of service"
	       " CPU (%.0f%% of a check-in's)\n",
	       hs_cpu / (double)hs_total * 1e6,
	       100.0 * (hs_cpu / (double)hs_total) / (service_cpu / (double)total));
	printf("ratio      %.2f of the issue floor per service core: %.0f check-ins per"
	       " core-second (target >= %.2f) %s\n",
	       ratio, per_service_core, TARGET_RATIO, ratio >= TARGET_RATIO ? "met" : "NOT MET");
	printf("ratio      %.2f of the both-ends floor per machine core (devices and service"
	       " sharing %ld cores)\n",
	       per_core / floor_both, cores);
	if (ratio < TARGET_RATIO)
		missed++;
	if (b.ndevs >= TARGET_DEVICES) {
		printf("p99        %.2f ms at %u devices (target < %.0f ms at %u) %s\n", p99,
		       b.ndevs, TARGET_P99_MS, TARGET_DEVICES,
		       p99 < TARGET_P99_MS ? "met" : "NOT MET");
		if (p99 >= TARGET_P99_MS)
			missed++;
	} else {
		printf("p99        %.2f ms at %u devices (target < %.0f ms is for %u devices:"
		       " not assessed; --devices %u)\n",
		       p99, b.ndevs, TARGET_P99_MS, TARGET_DEVICES, TARGET_DEVICES);
	}
	rc = check && missed ? 1 : 0;
out:
	free(all);
	if (w)
		for (unsigned k = 0; k < b.nthreads; k++)
			free(w[k].lat);
	free(w);
	curl_easy_cleanup(setup);
	if (b.devs)
		for (unsigned i = 0; i < b.ndevs; i++)
			fleet_device_free(&b.devs[i]);
	free(b.devs);
	fleet_service_stop(&b.fs);
	if (curl_up)
		curl_global_cleanup();
	rmtree(b.tmp);
	return rc;
}
