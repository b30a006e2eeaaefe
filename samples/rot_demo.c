/*
 * sphere-demo: the root of trust end to end, narrated (`make demo`).
 *
 * A virtual device is fused, its RoT started as its own process, a boot chain
 * measured, and a verifier's challenge answered with a signed attestation
 * token that is then checked as the security service checks it. Then the
 * attacks that must fail: a replayed token, a tampered token, a token forged
 * with the identity key, a rolled-back counter and data unsealed on another
 * device. Every step uses the real components; nothing is simulated but the
 * silicon.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/common.h"
#include "cose/cose.h"
#include "eat/eat.h"
#include "rot/rot.h"

static int step_no;
static int failures;

static void step(const char *what)
{
	printf("\n[%d] %s\n", ++step_no, what);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	printf("    ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Reports an outcome that must hold; counts it as a failure otherwise. */
static void expect(int rc, int want, const char *what)
{
	if (rc == want) {
		say("%-50s -> %s", what, rc == 0 ? "ok" : sph_strerror(rc));
	} else {
		say("%-50s -> UNEXPECTED: %s (wanted: %s)", what, sph_strerror(rc),
		    want == 0 ? "success" : sph_strerror(want));
		failures++;
	}
}

static void hex_short(const uint8_t *b, size_t n, char *out, size_t cap)
{
	char full[2 * 64 + 1];
	if (n > 64)
		n = 64;
	sph_hex_encode(b, n, full, sizeof(full));
	snprintf(out, cap, "%.16s…", full);
}

static void make_component(struct eat_component *c, const char *type, const char *version,
                           uint32_t svn, const char *image)
{
	uint8_t md[32];
	unsigned int len = 0;

	memset(c, 0, sizeof(*c));
	snprintf(c->type, sizeof(c->type), "%s", type);
	snprintf(c->version, sizeof(c->version), "%s", version);
	c->security_version = svn;
	/* Stand-ins until the boot chain lands: the image is its name's bytes. */
	EVP_Digest(image, strlen(image), c->digest, &len, EVP_sha256(), NULL);
	EVP_Digest(type, strlen(type), md, &len, EVP_sha256(), NULL);
	memcpy(c->component_id, md, sizeof(c->component_id));
	EVP_Digest("sphere platform root", 20, c->signer_id, &len, EVP_sha256(), NULL);
}

/* A signer that asks the RoT to sign with its identity key: what an attacker
 * holding the OS could do. */
static int identity_signer(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
	return rot_sign(ctx, ROT_KEY_IDENTITY, digest, sig);
}

static int run(const char *dir)
{
	char otp[512], otp2[512], id[ROT_DEVICE_ID_LEN + 1], hex[40];
	struct rot *rot = NULL, *other = NULL;
	uint8_t attest_pub[ROT_PUB_LEN], identity_pub[ROT_PUB_LEN], acc[32], nonce[32];
	uint8_t token[EAT_MAX_TOKEN], forged[EAT_MAX_TOKEN];
	uint8_t sealed[256], plain[256];
	size_t token_len, forged_len, sealed_len, plain_len;
	struct eat_claims claims;
	uint64_t boots;
	uint32_t ctr;
	int rc;

	snprintf(otp, sizeof(otp), "%s/device.otp", dir);
	snprintf(otp2, sizeof(otp2), "%s/other-device.otp", dir);

	step("Fuse a new development device (OTP: a random 256-bit device secret)");
	if ((rc = rot_otp_fuse(otp, NULL, ROT_LC_DEVELOPMENT)) != 0)
		goto fail;
	say("OTP file: %s", otp);

	step("Power on: the RoT starts as its own process, reached only by mailbox");
	if ((rc = rot_open_mailbox(otp, &rot)) != 0)
		goto fail;
	say("RoT pid %d (this program is pid %d); keys live only in the RoT", rot_pid(rot),
	    (int)getpid());
	if ((rc = rot_device_id(rot, id)) != 0 ||
	    (rc = rot_pubkey(rot, ROT_KEY_IDENTITY, identity_pub)) != 0 ||
	    (rc = rot_pubkey(rot, ROT_KEY_ATTEST, attest_pub)) != 0)
		goto fail;
	say("device id: %.32s…%s", id, id + ROT_DEVICE_ID_LEN - 8);

	step("Measured boot: each stage is extended into the digest accumulator");
	{
		static const char *const stages[][3] = {{"BL", "1.0.0", "bootloader image"},
		                                        {"SECMON", "1.0.0", "security monitor"},
		                                        {"OS", "22.11.1", "operating system"}};
		for (size_t i = 0; i < 3; i++) {
			struct eat_component c;
			make_component(&c, stages[i][0], stages[i][1], 1, stages[i][2]);
			if ((rc = rot_measure(rot, &c, acc)) != 0)
				goto fail;
			hex_short(acc, sizeof(acc), hex, sizeof(hex));
			say("%-7s %-8s accumulator %s", stages[i][0], stages[i][1], hex);
		}
	}

	step("The security service challenges the device with a fresh nonce");
	if ((rc = rot_random(rot, nonce, sizeof(nonce))) != 0)
		goto fail;
	if ((rc = rot_attest(rot, nonce, sizeof(nonce), token, sizeof(token), &token_len)) != 0)
		goto fail;
	say("the RoT answers with an EAT (COSE_Sign1/ES256): %zu bytes", token_len);
	rc = eat_verify(token, token_len, nonce, sizeof(nonce), attest_pub, identity_pub, &claims);
	expect(rc, 0, "service verifies signature, nonce, log, UEID");
	if (rc != 0)
		goto fail;
	say("claims: lifecycle 0x%04x, boot %llu, %zu components", claims.lifecycle,
	    (unsigned long long)claims.boot_count, claims.n_components);

	step("Attacks that must fail");
	{
		uint8_t fresh[32];
		if ((rc = rot_random(rot, fresh, sizeof(fresh))) != 0)
			goto fail;
		expect(eat_verify(token, token_len, fresh, sizeof(fresh), attest_pub, identity_pub,
		                  NULL),
		       SPH_ERR_NONCE_MISMATCH, "replay the token to a new challenge");
	}
	token[token_len / 2] ^= 0x01;
	expect(eat_verify(token, token_len, nonce, sizeof(nonce), attest_pub, identity_pub, NULL),
	       SPH_ERR_BAD_SIGNATURE, "flip one bit of the token");
	token[token_len / 2] ^= 0x01;

	/* A compromised OS edits the measurement and signs with the identity key. */
	snprintf(claims.components[2].version, sizeof(claims.components[2].version), "99.0.0");
	if ((rc = eat_accumulator_replay(claims.components, claims.n_components,
	                                 claims.accumulator)) != 0)
		goto fail;
	{
		uint8_t kid[EAT_KID_LEN];
		if ((rc = eat_kid_from_pub(attest_pub, kid)) != 0 ||
		    (rc = eat_sign(&claims, identity_signer, rot, kid, sizeof(kid), forged,
		                   sizeof(forged), &forged_len)) != 0)
			goto fail;
	}
	expect(eat_verify(forged, forged_len, nonce, sizeof(nonce), attest_pub, identity_pub, NULL),
	       SPH_ERR_BAD_SIGNATURE, "forge a token with the identity key");
	{
		uint8_t d[32] = {0}, sig[64];
		expect(rot_sign(rot, ROT_KEY_ATTEST, d, sig), SPH_ERR_PERMISSION,
		       "ask the RoT to sign a digest with the attest key");
	}

	if ((rc = rot_counter_advance(rot, 0, 3)) != 0)
		goto fail;
	expect(rot_counter_advance(rot, 0, 2), SPH_ERR_ROLLBACK,
	       "roll anti-rollback counter 3 -> 2");
	if ((rc = rot_counter_read(rot, 0, &ctr)) != 0)
		goto fail;
	say("%-50s    (counter still %u)", "", ctr);

	if ((rc = rot_seal(rot, (const uint8_t *)"wifi", 4, (const uint8_t *)"hunter2", 7, sealed,
	                   sizeof(sealed), &sealed_len)) != 0)
		goto fail;
	if ((rc = rot_otp_fuse(otp2, NULL, ROT_LC_DEVELOPMENT)) != 0 ||
	    (rc = rot_open_inproc(otp2, &other)) != 0)
		goto fail;
	expect(rot_unseal(other, (const uint8_t *)"wifi", 4, sealed, sealed_len, plain,
	                  sizeof(plain), &plain_len),
	       SPH_ERR_AUTH, "unseal this device's data on another device");
	expect(rot_unseal(rot, (const uint8_t *)"wifi", 4, sealed, sealed_len, plain, sizeof(plain),
	                  &plain_len),
	       0, "unseal it on this device");

	step("Chip reset: the accumulator clears, the boot count moves on");
	if ((rc = rot_reset(rot)) != 0 || (rc = rot_accumulator(rot, acc)) != 0 ||
	    (rc = rot_boot_count(rot, &boots)) != 0)
		goto fail;
	hex_short(acc, sizeof(acc), hex, sizeof(hex));
	say("accumulator %s, boot count %llu", hex, (unsigned long long)boots);

	step("Power off: the RoT wipes its keys and exits");
	rot_close(rot);
	rot = NULL;
	rot_close(other);
	other = NULL;
	say("done");
	return failures ? 1 : 0;
fail:
	fprintf(stderr, "sphere-demo: %s\n", sph_strerror(rc));
	rot_close(rot);
	rot_close(other);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"keep", no_argument, NULL, 'k'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	char dir[] = "/tmp/sphere-demo-XXXXXX";
	int opt, keep = 0, rc;

	while ((opt = getopt_long(argc, argv, "kh", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			keep = 1;
			break;
		case 'h':
			printf("usage: sphere-demo [--keep]\n"
			       "  Runs Sphere's root of trust end to end with narration.\n"
			       "  --keep  leave the temporary device directory in place\n");
			return 0;
		default:
			fprintf(stderr, "usage: sphere-demo [--keep]\n");
			return 2;
		}
	}
	/* Quiet the RoT process's own event lines unless asked for. */
	setenv("SPHERE_LOG", "warn", 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(dir)) {
		perror("sphere-demo: mkdtemp");
		return 1;
	}
	printf("Sphere root-of-trust demo (device directory %s)\n", dir);
	rc = run(dir);
	if (!keep) {
		char p[sizeof(dir) + 32];
		snprintf(p, sizeof(p), "%s/device.otp", dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/other-device.otp", dir);
		unlink(p);
		rmdir(dir);
	}
	printf("\n%s\n", rc == 0 ? "demo: every step behaved as it must" : "demo: FAILED");
	return rc;
}
