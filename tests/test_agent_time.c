/*
 * The signed time of a check-in (docs/formats.md §10; docs/agent.md "Signed
 * time") against a REAL service (agent_fx: sphere-ss in this process) and
 * REAL devices.
 *
 * What is proved, and what is attacked:
 *  - a device with the tenant's image root installed verifies the service's
 *    signed time (time_verified) and the time is the service's clock;
 *  - with another tenant's root, or none, the check-in still works but the
 *    time stays unverified;
 *  - a tampered time is refused: every single-byte change of the real
 *    COSE_Sign1, another nonce, and a payload re-signed by a key that is not
 *    the x5chain leaf's; a time signed by another tenant's production signer
 *    verifies only against that tenant's root;
 *  - the daemon uses a VERIFIED signed time when the device's clock is unset
 *    or off by more than 5 minutes (clock_offset), and then for its renewal
 *    decision: a device clock 23 h ahead triggers a renewal storm only when
 *    the time could not be verified.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "agent_fx.h"
#include "boot/boot.h"
#include "common/common.h"
#include "cose/cose.h"
#include "image/image.h"
#include "ss_fixture.h"
#include "testutil.h"

static struct {
	struct afx_dev rooted, other, bare;
	EVP_PKEY *oroot_key, *osigner_key;
	X509 *oroot, *osigner; /* another tenant's image root and production signer */
	uint8_t *cose;         /* a real signed time, verified */
	size_t cose_len;
	uint8_t nonce[AGENT_NONCE_LEN];
} tx;

static int setup(void **state)
{
	struct img_cert_params p = {.kind = IMG_CERT_TENANT_ROOT};

	afx_setup(state);
	assert_int_equal(img_cert_make(&p, &tx.oroot_key, &tx.oroot), 0);
	p.kind = IMG_CERT_TENANT_SIGNER;
	p.issuer_key = tx.oroot_key;
	p.issuer_cert = tx.oroot;
	assert_int_equal(img_cert_make(&p, &tx.osigner_key, &tx.osigner), 0);
	afx_dev_make(&tx.rooted, true, ax.image_root);
	afx_dev_make(&tx.other, true, tx.oroot);
	afx_dev_make(&tx.bare, true, NULL);
	return 0;
}

static int teardown(void **state)
{
	afx_dev_free(&tx.rooted);
	afx_dev_free(&tx.other);
	afx_dev_free(&tx.bare);
	EVP_PKEY_free(tx.oroot_key);
	EVP_PKEY_free(tx.osigner_key);
	X509_free(tx.oroot);
	X509_free(tx.osigner);
	free(tx.cose);
	return afx_teardown(state);
}

static void checkin(struct afx_dev *d, struct agent_checkin_result *res)
{
	struct agent_config cfg = afx_config();
	struct agent_error err;
	struct boot_report rep;

	assert_int_equal(boot_run(d->bd, CHIP_RESET_SOFTWARE, &rep), 0);
	if (agent_checkin(d->bd, &cfg, res, &err) != 0)
		fail_msg("checkin: %s", err.reason);
	assert_int_equal(res->status, AGENT_STATUS_UP_TO_DATE);
}

static void test_verified_with_the_tenant_root(void **state)
{
	struct agent_checkin_result res;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	checkin(&tx.rooted, &res);
	assert_true(res.time_verified);
	assert_true(res.time >= now - 5 && res.time <= now + 5);
	assert_non_null(res.time_cose);
	tx.cose = malloc(res.time_cose_len);
	assert_non_null(tx.cose);
	memcpy(tx.cose, res.time_cose, res.time_cose_len);
	tx.cose_len = res.time_cose_len;
	memcpy(tx.nonce, res.nonce, sizeof(tx.nonce));
	agent_checkin_result_free(&res);
}

static void test_unverified_with_another_root_or_none(void **state)
{
	struct agent_checkin_result res;
	int64_t when = 0;
	bool ok = true;

	(void)state;
	checkin(&tx.other, &res);
	assert_false(res.time_verified);
	assert_true(res.time > 0);
	assert_non_null(res.certificate); /* the check-in itself is fine */
	agent_checkin_result_free(&res);
	checkin(&tx.bare, &res);
	assert_false(res.time_verified);
	agent_checkin_result_free(&res);
	/* the same bytes: verified with our root, not with theirs */
	assert_int_equal(agent_signed_time(tx.cose, tx.cose_len, tx.nonce, sizeof(tx.nonce),
	                                   ax.image_root, &when, &ok),
	                 0);
	assert_true(ok);
	assert_int_equal(agent_signed_time(tx.cose, tx.cose_len, tx.nonce, sizeof(tx.nonce),
	                                   tx.oroot, &when, &ok),
	                 0);
	assert_false(ok);
	assert_int_equal(agent_signed_time(tx.cose, tx.cose_len, tx.nonce, sizeof(tx.nonce), NULL,
	                                   &when, &ok),
	                 0);
	assert_false(ok);
}

/* A signed time over {1: secs, 2: nonce} with key, x5chain leaf + top. */
static uint8_t *sign_time(EVP_PKEY *key, const struct cose_x5 *x5, uint64_t secs,
                          const uint8_t *nonce, size_t *len)
{
	struct cose_sign1_params p;
	struct sph_cbw w;
	uint8_t payload[128], *out = malloc(8192);
	size_t plen = 0;

	assert_non_null(out);
	sph_cbw_init(&w, payload, sizeof(payload));
	sph_cbw_map(&w, 2);
	sph_cbw_uint(&w, 1);
	sph_cbw_uint(&w, secs);
	sph_cbw_uint(&w, 2);
	sph_cbw_bstr(&w, nonce, AGENT_NONCE_LEN);
	assert_int_equal(sph_cbw_finish(&w, &plen), 0);
	memset(&p, 0, sizeof(p));
	p.payload = payload;
	p.payload_len = plen;
	p.content_type = 65052;
	p.x5chain = x5;
	p.x5chain_count = 2;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, key, out, 8192, len), 0);
	return out;
}

static void der_of(X509 *x, struct cose_x5 *out)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	out->der = der;
	out->len = (size_t)n;
}

static void test_tampered_time_refused(void **state)
{
	struct cose_sign1 s;
	struct cose_x5 x5[2];
	uint8_t *bad = malloc(tx.cose_len), other_nonce[AGENT_NONCE_LEN], *forged;
	EVP_PKEY *mallory = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	int64_t when = 0, secs = (int64_t)time(NULL) + 86400;
	size_t flen = 0;
	bool ok = false;
	int rc;

	(void)state;
	assert_non_null(bad);
	assert_non_null(mallory);
	assert_non_null(tx.cose);
	/* every single-byte change of the real time is refused */
	for (size_t i = 0; i < tx.cose_len; i++) {
		memcpy(bad, tx.cose, tx.cose_len);
		bad[i] ^= 0x01;
		rc = agent_signed_time(bad, tx.cose_len, tx.nonce, sizeof(tx.nonce), ax.image_root,
		                       &when, &ok);
		if (rc == 0)
			fail_msg("byte %zu changed, still accepted (verified %d)", i, ok);
		assert_false(ok);
		assert_int_equal(when, 0);
	}
	/* and truncated */
	assert_true(agent_signed_time(tx.cose, tx.cose_len - 1, tx.nonce, sizeof(tx.nonce),
	                              ax.image_root, &when, &ok) < 0);
	/* another check-in's nonce */
	memcpy(other_nonce, tx.nonce, sizeof(other_nonce));
	other_nonce[0] ^= 0x80;
	assert_int_equal(agent_signed_time(tx.cose, tx.cose_len, other_nonce, sizeof(other_nonce),
	                                   ax.image_root, &when, &ok),
	                 SPH_ERR_NONCE_MISMATCH);
	/* a later time with the real x5chain, signed by a key that is not its leaf's */
	assert_int_equal(cose_sign1_decode(tx.cose, tx.cose_len, &s), 0);
	assert_int_equal(s.x5_count, 2);
	forged = sign_time(mallory, s.x5, (uint64_t)secs, tx.nonce, &flen);
	assert_int_equal(agent_signed_time(forged, flen, tx.nonce, sizeof(tx.nonce), ax.image_root,
	                                   &when, &ok),
	                 SPH_ERR_BAD_SIGNATURE);
	assert_false(ok);
	free(forged);
	/* another tenant's production signer: its own root verifies it, ours does not */
	der_of(tx.osigner, &x5[0]);
	der_of(tx.oroot, &x5[1]);
	forged = sign_time(tx.osigner_key, x5, (uint64_t)secs, tx.nonce, &flen);
	assert_int_equal(
	        agent_signed_time(forged, flen, tx.nonce, sizeof(tx.nonce), tx.oroot, &when, &ok),
	        0);
	assert_true(ok);
	assert_int_equal(when, secs);
	assert_int_equal(agent_signed_time(forged, flen, tx.nonce, sizeof(tx.nonce), ax.image_root,
	                                   &when, &ok),
	                 0);
	assert_false(ok);
	free(forged);
	/* ... nor when its x5chain claims our root */
	OPENSSL_free((void *)x5[1].der);
	der_of(ax.image_root, &x5[1]);
	forged = sign_time(tx.osigner_key, x5, (uint64_t)secs, tx.nonce, &flen);
	assert_int_equal(agent_signed_time(forged, flen, tx.nonce, sizeof(tx.nonce), ax.image_root,
	                                   &when, &ok),
	                 0);
	assert_false(ok);
	free(forged);
	OPENSSL_free((void *)x5[0].der);
	OPENSSL_free((void *)x5[1].der);
	EVP_PKEY_free(mallory);
	free(bad);
}

/* ---- the daemon's clock ---------------------------------------------------------------- */

static int64_t fixed_shift; /* the device's clock: now + fixed_shift, or 0 when unset */
static bool clock_unset;

static int64_t dev_clock(void *ctx)
{
	(void)ctx;
	return clock_unset ? 0 : (int64_t)time(NULL) + fixed_shift;
}

struct runner {
	struct afx_dev *d;
	struct agent_daemon_config cfg;
	struct agent_daemon_status st;
	volatile sig_atomic_t stop;
	int rc;
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;

	r->rc = agent_daemon_run(r->d->bd, &r->cfg, &r->st);
	return NULL;
}

/* Runs the daemon on d for at most secs seconds (it may stop itself). */
static void run_daemon(struct runner *r, struct afx_dev *d, double secs)
{
	pthread_t t;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};

	r->d = d;
	r->cfg.stop = &r->stop;
	assert_int_equal(pthread_create(&t, NULL, run_thread, r), 0);
	for (double w = 0; w < secs; w += 0.05)
		nanosleep(&ts, NULL);
	r->stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void daemon_once(struct afx_dev *d, struct agent_daemon_status *st)
{
	struct agent_daemon_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.agent = afx_config();
	cfg.agent.clock = dev_clock;
	cfg.once = true;
	cfg.no_channel = true;
	assert_int_equal(agent_daemon_run(d->bd, &cfg, st), 0);
	assert_true(st->up_to_date);
	assert_int_equal(st->checkins, 1);
}

static void test_daemon_takes_a_verified_time(void **state)
{
	struct agent_daemon_status st;
	int64_t now;

	(void)state;
	/* an unset clock (0): the verified time replaces it */
	clock_unset = true;
	daemon_once(&tx.rooted, &st);
	now = (int64_t)time(NULL);
	assert_true(st.time_verified);
	assert_true(st.clock_offset >= now - 5 && st.clock_offset <= now + 5);
	assert_true(st.cert_not_before <= now + 5 && st.renew_at > now);
	/* unverified: the device keeps its own (wrong) clock */
	daemon_once(&tx.other, &st);
	assert_false(st.time_verified);
	assert_int_equal(st.clock_offset, 0);
	/* within 5 minutes: its own clock is good enough */
	clock_unset = false;
	fixed_shift = 120;
	daemon_once(&tx.rooted, &st);
	assert_true(st.time_verified);
	assert_int_equal(st.clock_offset, 0);
	/* 6 minutes behind: corrected */
	fixed_shift = -360;
	daemon_once(&tx.rooted, &st);
	assert_true(st.clock_offset >= 355 && st.clock_offset <= 365);
	fixed_shift = 0;
}

/* A device clock 23 h ahead: past 80% of a fresh 24 h certificate. Trusting
 * the verified time, the daemon sees a fresh certificate and waits; without a
 * verified time it believes its clock and renews (bounded by its hold). */
static void test_renewal_decision_uses_the_signed_time(void **state)
{
	struct runner r;

	(void)state;
	fixed_shift = 23 * 3600;
	memset(&r, 0, sizeof(r));
	r.cfg.agent = afx_config();
	r.cfg.agent.clock = dev_clock;
	r.cfg.period_s = 3600;
	r.cfg.no_channel = true;
	r.cfg.max_checkins = 4;
	run_daemon(&r, &tx.rooted, 2.5);
	assert_int_equal(r.rc, 0);
	assert_true(r.st.time_verified);
	assert_int_equal(r.st.checkins, 1);
	assert_int_equal(r.st.renewals, 0);
	assert_true(r.st.clock_offset < -23 * 3600 + 10 && r.st.clock_offset > -23 * 3600 - 10);

	memset(&r, 0, sizeof(r));
	r.cfg.agent = afx_config();
	r.cfg.agent.clock = dev_clock;
	r.cfg.period_s = 3600;
	r.cfg.no_channel = true;
	r.cfg.max_checkins = 3;
	run_daemon(&r, &tx.bare, 4.0);
	assert_int_equal(r.rc, 0);
	assert_false(r.st.time_verified);
	assert_int_equal(r.st.checkins, 3);
	assert_int_equal(r.st.renewals, 2);
	fixed_shift = 0;
}

/* Update windows (UTC minutes; end < start wraps midnight). */
static void test_window_wait(void **state)
{
	int64_t day0 = 1767225600; /* 2026-01-01 00:00 UTC */

	(void)state;
	/* 02:00-04:00 */
	assert_int_equal(agent_window_wait(120, 240, day0 + 3 * 3600), 0);
	assert_int_equal(agent_window_wait(120, 240, day0 + 7200), 0);
	assert_int_equal(agent_window_wait(120, 240, day0 + 4 * 3600), 22 * 3600);
	assert_int_equal(agent_window_wait(120, 240, day0 + 3600), 3600);
	/* 22:30-01:00, across midnight */
	assert_int_equal(agent_window_wait(1350, 60, day0 + 23 * 3600), 0);
	assert_int_equal(agent_window_wait(1350, 60, day0 + 1800), 0);
	assert_int_equal(agent_window_wait(1350, 60, day0 + 3600), 21 * 3600 + 1800);
	/* start == end: the whole day */
	assert_int_equal(agent_window_wait(300, 300, day0 + 17), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_window_wait),
	        cmocka_unit_test(test_verified_with_the_tenant_root),
	        cmocka_unit_test(test_unverified_with_another_root_or_none),
	        cmocka_unit_test(test_tampered_time_refused),
	        cmocka_unit_test(test_daemon_takes_a_verified_time),
	        cmocka_unit_test(test_renewal_decision_uses_the_signed_time),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
