/*
 * bench_rot: RoT sign and verify throughput through both transports, each as
 * a ratio to OpenSSL's own P-256 rate measured in the same run.
 *
 * Reference: `openssl speed -seconds N ecdsap256` (OpenSSL's benchmark of the
 * same library), falling back to a raw EVP_PKEY_sign/verify loop in this
 * process if the openssl program is missing. Targets (issue #2): in-process
 * signing >= 0.9, mailbox signing >= 0.7.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/common.h"
#include "cose/cose.h"
#include "rot/rot.h"

static double seconds = 3.0;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs op until `seconds` elapse; returns operations per second, or -1 on error. */
typedef int (*bench_op)(void *ctx, unsigned i);

static double rate(bench_op op, void *ctx)
{
	double start = now(), end = start + seconds, t;
	unsigned long n = 0;

	do {
		for (int k = 0; k < 64; k++)
			if (op(ctx, (unsigned)n++) != 0)
				return -1;
		t = now();
	} while (t < end);
	return (double)n / (t - start);
}

/* ---- reference ------------------------------------------------------------- */

static int openssl_speed(double *sign, double *verify)
{
	char cmd[128], line[512];
	FILE *p;
	int found = 0;

	snprintf(cmd, sizeof(cmd), "openssl speed -seconds %d ecdsap256 2>/dev/null",
	         seconds < 1.5 ? 1 : (int)(seconds + 0.5)); /* whole seconds, at least one */
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		/* " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  50850.5  15885.0" */
		char *tag = strstr(line, "(nistp256)");
		if (!tag)
			continue;
		char *end;
		double v[4];
		char *s = tag + strlen("(nistp256)");
		for (int i = 0; i < 4; i++) {
			while (*s == ' ' || *s == '\t')
				s++;
			v[i] = strtod(s, &end);
			if (end == s)
				break;
			s = end;
			if (*s == 's')
				s++;
			if (i == 3) {
				*sign = v[2];
				*verify = v[3];
				found = 1;
			}
		}
	}
	pclose(p);
	return found ? 0 : -1;
}

struct raw_ctx {
	EVP_PKEY_CTX *sign, *verify;
	uint8_t der[80];
	size_t der_len;
	uint8_t digest[32];
};

static int raw_sign(void *c, unsigned i)
{
	struct raw_ctx *r = c;
	size_t len = sizeof(r->der);
	r->digest[0] = (uint8_t)i;
	return EVP_PKEY_sign(r->sign, r->der, &len, r->digest, 32) == 1 ? 0 : -1;
}

static int raw_verify(void *c, unsigned i)
{
	struct raw_ctx *r = c;
	(void)i;
	return EVP_PKEY_verify(r->verify, r->der, r->der_len, r->digest, 32) == 1 ? 0 : -1;
}

static int raw_rates(double *sign, double *verify)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct raw_ctx r = {0};
	int rc = -1;

	if (!k)
		return -1;
	r.sign = EVP_PKEY_CTX_new(k, NULL);
	r.verify = EVP_PKEY_CTX_new(k, NULL);
	if (!r.sign || !r.verify || EVP_PKEY_sign_init(r.sign) != 1 ||
	    EVP_PKEY_verify_init(r.verify) != 1)
		goto out;
	*sign = rate(raw_sign, &r);
	r.der_len = sizeof(r.der);
	if (EVP_PKEY_sign(r.sign, r.der, &r.der_len, r.digest, 32) != 1)
		goto out;
	*verify = rate(raw_verify, &r);
	rc = *sign > 0 && *verify > 0 ? 0 : -1;
out:
	EVP_PKEY_CTX_free(r.sign);
	EVP_PKEY_CTX_free(r.verify);
	EVP_PKEY_free(k);
	return rc;
}

/* ---- the RoT --------------------------------------------------------------- */

struct rot_ctx {
	struct rot *rot;
	uint8_t pub[ROT_PUB_LEN];
	uint8_t digest[ROT_DIGEST_LEN];
	uint8_t sig[ROT_SIG_LEN];
};

static int rot_sign_op(void *c, unsigned i)
{
	struct rot_ctx *r = c;
	r->digest[0] = (uint8_t)i;
	return rot_sign(r->rot, ROT_KEY_IDENTITY, r->digest, r->sig);
}

static int rot_verify_op(void *c, unsigned i)
{
	struct rot_ctx *r = c;
	(void)i;
	return rot_verify(r->rot, r->pub, r->digest, r->sig);
}

static int bench_transport(const char *name, struct rot *rot, double ref_sign, double ref_verify,
                           double sign_target, int *missed)
{
	struct rot_ctx c = {.rot = rot};
	double s, v;

	if (rot_pubkey(rot, ROT_KEY_IDENTITY, c.pub) != 0)
		return -1;
	s = rate(rot_sign_op, &c);
	if (s < 0 || rot_sign(rot, ROT_KEY_IDENTITY, c.digest, c.sig) != 0)
		return -1;
	v = rate(rot_verify_op, &c);
	if (v < 0)
		return -1;
	printf("rot sign   %-8s %9.0f ops/s  ratio %.2f  (target >= %.2f) %s\n", name, s,
	       s / ref_sign, sign_target, s / ref_sign >= sign_target ? "ok" : "MISSED");
	printf("rot verify %-8s %9.0f ops/s  ratio %.2f\n", name, v, v / ref_verify);
	if (s / ref_sign < sign_target)
		(*missed)++;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_rot [--seconds N] [--check]\n"
	           "  Measures RoT ES256 sign/verify ops/s in-process and over the mailbox,\n"
	           "  as ratios to `openssl speed ecdsap256` run now on this machine.\n"
	           "  --seconds N  time per measurement (default 3)\n"
	           "  --check      exit 1 if a target ratio is missed\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
	                                     {"check", no_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	char dir[] = "/tmp/sphere-bench-XXXXXX";
	char otp[sizeof(dir) + 8], otp2[sizeof(dir) + 8];
	struct rot *inproc = NULL, *mailbox = NULL;
	double ref_sign, ref_verify, raw_sign_rate, raw_verify_rate;
	int opt, check = 0, missed = 0, rc = 1;

	while ((opt = getopt_long(argc, argv, "s:ch", opts, NULL)) != -1) {
		switch (opt) {
		case 's': {
			char *end;
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0 || seconds > 600) {
				fprintf(stderr, "bench_rot: --seconds wants 0 < N <= 600\n");
				return 2;
			}
			break;
		}
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
	setenv("SPHERE_LOG", "warn", 0); /* keep the RoT process quiet unless asked */

	if (raw_rates(&raw_sign_rate, &raw_verify_rate) != 0) {
		fprintf(stderr, "bench_rot: raw OpenSSL loop failed\n");
		return 1;
	}
	if (openssl_speed(&ref_sign, &ref_verify) == 0) {
		printf("reference  openssl speed ecdsap256: sign %.0f/s verify %.0f/s\n", ref_sign,
		       ref_verify);
	} else {
		ref_sign = raw_sign_rate;
		ref_verify = raw_verify_rate;
		printf("reference  (openssl program missing) raw EVP loop\n");
	}
	printf("raw EVP    in this process: sign %.0f/s (%.2f) verify %.0f/s (%.2f)\n",
	       raw_sign_rate, raw_sign_rate / ref_sign, raw_verify_rate,
	       raw_verify_rate / ref_verify);

	if (!mkdtemp(dir)) {
		perror("bench_rot: mkdtemp");
		return 1;
	}
	/* One RoT per OTP file (the RoT holds its lock): a device for each transport. */
	snprintf(otp, sizeof(otp), "%s/otp", dir);
	snprintf(otp2, sizeof(otp2), "%s/otp2", dir);
	if ((rc = rot_otp_fuse(otp, NULL, ROT_LC_DEVELOPMENT)) != 0 ||
	    (rc = rot_otp_fuse(otp2, NULL, ROT_LC_DEVELOPMENT)) != 0 ||
	    (rc = rot_open_inproc(otp, &inproc)) != 0 ||
	    (rc = rot_open_mailbox(otp2, &mailbox)) != 0) {
		fprintf(stderr, "bench_rot: cannot start the RoT: %s\n", sph_strerror(rc));
		rc = 1;
		goto out;
	}
	rc = 1;
	if (bench_transport("inproc", inproc, ref_sign, ref_verify, 0.9, &missed) != 0 ||
	    bench_transport("mailbox", mailbox, ref_sign, ref_verify, 0.7, &missed) != 0) {
		fprintf(stderr, "bench_rot: a RoT operation failed\n");
		goto out;
	}
	rc = check && missed ? 1 : 0;
out:
	rot_close(inproc);
	rot_close(mailbox);
	unlink(otp);
	unlink(otp2);
	rmdir(dir);
	return rc;
}
