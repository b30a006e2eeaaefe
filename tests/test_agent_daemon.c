/*
 * The agent's daemon (agent_daemon_run; docs/agent.md "The daemon") against a
 * REAL service (agent_fx: sphere-ss in this process, SQLite) and REAL devices.
 *
 * What is proved:
 *  - a service without the notification route (this tree's: POST
 *    /v1/checkin/wait answers 404) is detected once, and the daemon falls
 *    back to the period alone: periodic check-ins, the certificate and chain
 *    kept in the device directory;
 *  - renewal at 80% of the certificate's lifetime, and recovery from a
 *    certificate that expired during an outage: the service is stopped, the
 *    daemon's check-ins fail and back off, the service comes back and the
 *    next retry (the RoT identity never expires) brings a new certificate.
 *    The service's clock cannot be moved, so time passes on the DEVICE's
 *    clock (a test clock); the verified signed time then corrects it;
 *  - the service stopped in the middle of a download (through a pacing TCP
 *    relay, so the transfer is really in flight; its connections die with
 *    the service, bytes in flight are lost) and restarted on the same
 *    data directory and port: the download resumes with a Range request
 *    (fetched bytes == the package size, one resumed transfer at least), the
 *    update installs, boots, confirms, and the daemon ends up to date.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "agent_fx.h"
#include "boot/boot.h"
#include "common/common.h"
#include "ss_fixture.h"
#include "testutil.h"

#define OS2_PAYLOAD (160u * 1024u)

static struct afx_dev fb, ren, dl;

static int setup(void **state)
{
	afx_setup(state);
	afx_dev_make(&fb, true, NULL);
	afx_dev_make(&ren, true, ax.image_root);
	afx_dev_make(&dl, true, NULL);
	return 0;
}

static int teardown(void **state)
{
	afx_dev_free(&fb);
	afx_dev_free(&ren);
	afx_dev_free(&dl);
	return afx_teardown(state);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- a daemon in a thread, watched through its events --------------------------------- */

struct watch {
	pthread_mutex_t mu;
	struct agent_daemon_status last; /* at the last event */
	unsigned fallbacks, failed;
};

struct runner {
	struct afx_dev *d;
	struct agent_daemon_config cfg;
	struct agent_daemon_status st;
	volatile sig_atomic_t stop;
	struct watch w;
	pthread_t t;
	int rc;
};

static void on_event(void *ctx, const char *event, const struct agent_daemon_status *st,
                     const char *text)
{
	struct watch *w = ctx;

	(void)text;
	pthread_mutex_lock(&w->mu);
	w->last = *st;
	w->fallbacks += strcmp(event, "fallback") == 0;
	w->failed += strcmp(event, "failed") == 0;
	pthread_mutex_unlock(&w->mu);
}

static void *run_thread(void *arg)
{
	struct runner *r = arg;

	r->rc = agent_daemon_run(r->d->bd, &r->cfg, &r->st);
	return NULL;
}

static void runner_init(struct runner *r, struct afx_dev *d)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->w.mu, NULL);
	r->d = d;
	r->cfg.agent = afx_config();
	r->cfg.stop = &r->stop;
	r->cfg.event = on_event;
	r->cfg.event_ctx = &r->w;
}

static void runner_start(struct runner *r)
{
	assert_int_equal(pthread_create(&r->t, NULL, run_thread, r), 0);
}

static void runner_join(struct runner *r)
{
	r->stop = 1;
	assert_int_equal(pthread_join(r->t, NULL), 0);
	pthread_mutex_destroy(&r->w.mu);
}

static struct agent_daemon_status snap(struct runner *r)
{
	struct agent_daemon_status s;

	pthread_mutex_lock(&r->w.mu);
	s = r->w.last;
	pthread_mutex_unlock(&r->w.mu);
	return s;
}

/* Waits (at most secs) until cond holds for the status at the last event. */
#define WAIT_FOR(r, secs, cond)                                                                    \
	do {                                                                                       \
		struct agent_daemon_status s_;                                                     \
		int i_;                                                                            \
		for (i_ = 0; i_ < (int)((secs)*20); i_++) {                                        \
			s_ = snap(r);                                                              \
			if (cond)                                                                  \
				break;                                                             \
			sleep_ms(50);                                                              \
		}                                                                                  \
		s_ = snap(r);                                                                      \
		if (!(cond))                                                                       \
			fail_msg("timed out waiting for %s (checkins %u, failures %u: %s)", #cond, \
			         s_.checkins, s_.failures, s_.last_error);                         \
	} while (0)

static void expect_cert_files(const struct afx_dev *d)
{
	char path[700], cn[200];
	X509 *x;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", d->dir, AGENT_CHAIN_FILE);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_non_null(x);
	X509_free(x);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s", d->dir, AGENT_CERT_FILE);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_non_null(x);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                                      sizeof(cn)) > 0);
	assert_string_equal(cn, d->id);
	X509_free(x);
	fclose(f);
}

/* ---- the channel's fallback and the period ----------------------------------------------- */

static void test_fallback_to_the_period(void **state)
{
	struct runner r;

	(void)state;
	runner_init(&r, &fb);
	r.cfg.period_s = 1;
	r.cfg.wait_s = 5;
	r.cfg.max_checkins = 3;
	/* it stops itself after 3 check-ins: boot, then two periods */
	run_thread(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.st.checkins, 3);
	assert_int_equal(r.st.cycles, 3);
	assert_int_equal(r.st.periodic, 2);
	assert_int_equal(r.st.woken, 0);
	assert_false(r.st.channel);
	assert_int_equal(r.w.fallbacks, 1); /* the 404 is seen once */
	assert_int_equal(r.st.channel_errors, 0);
	assert_true(r.st.up_to_date);
	assert_true(r.st.have_cert);
	assert_true(r.st.cert_not_after - r.st.cert_not_before >= 23 * 3600);
	expect_cert_files(&fb);
	/* the channel switched off: period only, never a wait */
	runner_init(&r, &fb);
	r.cfg.period_s = 1;
	r.cfg.no_channel = true;
	r.cfg.max_checkins = 2;
	run_thread(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.st.checkins, 2);
	assert_int_equal(r.w.fallbacks, 0);
	pthread_mutex_destroy(&r.w.mu);
}

/* ---- renewal, and an expired certificate after an outage ---------------------------------- */

static _Atomic int64_t shift; /* the device's clock: now + shift */

static int64_t shifted_clock(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL) + atomic_load(&shift);
}

static void test_renewal_and_expired_recovery(void **state)
{
	struct runner r;
	struct agent_daemon_status s;
	int64_t h = 3600, first_not_after;

	(void)state;
	atomic_store(&shift, 0);
	runner_init(&r, &ren);
	r.cfg.agent.clock = shifted_clock;
	r.cfg.period_s = 3600;
	r.cfg.wait_s = 1;
	runner_start(&r);
	WAIT_FOR(&r, 10, s_.up_to_date && s_.checkins == 1);
	s = snap(&r);
	assert_int_equal(s.renew_at - s.cert_not_before,
	                 (s.cert_not_after - s.cert_not_before) * 80 / 100);
	first_not_after = s.cert_not_after;

	/* 19.5 h later on the device: past 80% of 24 h, a renewal */
	atomic_store(&shift, 19 * h + h / 2);
	WAIT_FOR(&r, 10, s_.renewals == 1 && s_.checkins == 2 && s_.up_to_date);
	s = snap(&r);
	assert_int_equal(s.expired, 0);
	assert_true(s.time_verified);
	assert_true(s.clock_offset <= -(19 * h + h / 2) + 10);

	/* an outage, during which the certificate expires (25 h more) */
	afx_service_stop();
	atomic_store(&shift, 44 * h + h / 2);
	WAIT_FOR(&r, 15, s_.expired >= 1 && s_.failures >= 2);
	s = snap(&r);
	assert_false(s.up_to_date);
	assert_true(s.failed_in_a_row >= 2);
	assert_int_equal(s.recovered, 0);
	/* the service is back: the next retry checks in with the RoT identity */
	afx_service_restart();
	WAIT_FOR(&r, 15, s_.recovered == 1 && s_.up_to_date);
	s = snap(&r);
	assert_int_equal(s.failed_in_a_row, 0);
	assert_true(s.cert_not_after >= first_not_after);
	assert_true(shifted_clock(NULL) + s.clock_offset < s.cert_not_after);
	assert_true(s.time_verified);
	runner_join(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.st.renewals, 1);
	assert_true(r.st.expired >= 1);
	assert_int_equal(r.st.recovered, 1);
	assert_true(r.st.checkins >= 3);
	expect_cert_files(&ren);
	atomic_store(&shift, 0);
}

/* ---- the service restarts in the middle of a download ---------------------------------------- */

/* A TCP relay that paces the service's bytes (4 KiB every 20 ms), so a
 * download is still in flight when the service stops. */
static struct {
	int lfd;
	uint16_t port;
	atomic_int quit, active, gen;
	pthread_t t;
} relay;

static void *relay_pair(void *arg)
{
	int c = (int)(intptr_t)arg, s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(fx.port)};
	char buf[4096];
	int gen = atomic_load(&relay.gen);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	while (!atomic_load(&relay.quit) && atomic_load(&relay.gen) == gen) {
		struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = s, .events = POLLIN}};
		ssize_t n;
		if (poll(p, 2, 100) < 0)
			break;
		if (p[0].revents) {
			n = read(c, buf, sizeof(buf));
			if (n <= 0 || write(s, buf, (size_t)n) != n)
				break;
		}
		if (p[1].revents) {
			n = read(s, buf, sizeof(buf));
			if (n <= 0 || write(c, buf, (size_t)n) != n)
				break;
			sleep_ms(20);
		}
	}
out:
	if (s >= 0)
		close(s);
	close(c);
	atomic_fetch_sub(&relay.active, 1);
	return NULL;
}

static void *relay_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&relay.quit)) {
		struct pollfd p = {.fd = relay.lfd, .events = POLLIN};
		pthread_t t;
		int c;
		if (poll(&p, 1, 100) != 1)
			continue;
		if ((c = accept(relay.lfd, NULL, NULL)) < 0)
			continue;
		atomic_fetch_add(&relay.active, 1);
		if (pthread_create(&t, NULL, relay_pair, (void *)(intptr_t)c) != 0) {
			close(c);
			atomic_fetch_sub(&relay.active, 1);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static void relay_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);

	relay.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(relay.lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(relay.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(relay.lfd, 16), 0);
	assert_int_equal(getsockname(relay.lfd, (struct sockaddr *)&sa, &sl), 0);
	relay.port = ntohs(sa.sin_port);
	atomic_store(&relay.quit, 0);
	assert_int_equal(pthread_create(&relay.t, NULL, relay_main, NULL), 0);
}

/* The connections in flight die (what the service had sent but the relay had
 * not passed on yet is lost, as on a host that went away). */
static void relay_cut(void)
{
	atomic_fetch_add(&relay.gen, 1);
}

static void relay_stop(void)
{
	atomic_store(&relay.quit, 1);
	pthread_join(relay.t, NULL);
	for (int i = 0; i < 100 && atomic_load(&relay.active) > 0; i++)
		sleep_ms(20);
	close(relay.lfd);
}

static _Atomic uint64_t dl_have, dl_drops;

static int on_progress(void *ctx, const struct agent_update *u, uint64_t have, uint64_t total)
{
	uint64_t last = atomic_load(&dl_have);

	(void)ctx;
	(void)u;
	(void)total;
	if (have < last)
		atomic_fetch_add(&dl_drops, 1); /* the download started over */
	atomic_store(&dl_have, have);
	return 0;
}

static void test_service_restarts_mid_download(void **state)
{
	struct runner r;
	struct boot_report rep;
	char id[64], url[64], path[700];
	size_t len = 0;
	uint8_t *pkg;
	int i;

	(void)state;
	pkg = afx_pack(BOOT_OS, 2, 2, OS2_PAYLOAD, &len);
	afx_upload_os(pkg, len, id);
	free(pkg);
	relay_start();
	snprintf(url, sizeof(url), "https://localhost:%u", (unsigned)relay.port);
	atomic_store(&dl_have, 0);
	atomic_store(&dl_drops, 0);
	runner_init(&r, &dl);
	r.cfg.agent.service_url = url;
	r.cfg.agent.retry.attempts = 8;
	r.cfg.agent.retry.base_ms = 100;
	r.cfg.agent.retry.max_ms = 400;
	r.cfg.agent.progress = on_progress;
	r.cfg.once = true;
	r.cfg.no_channel = true;
	runner_start(&r);
	/* a quarter is on the device: the service goes away, then comes back */
	for (i = 0; i < 400 && atomic_load(&dl_have) < len / 4; i++)
		sleep_ms(25);
	assert_true(atomic_load(&dl_have) >= len / 4);
	afx_service_stop();
	relay_cut();
	assert_true(atomic_load(&dl_have) < len); /* really cut in the middle */
	sleep_ms(300);
	afx_service_restart();
	assert_int_equal(pthread_join(r.t, NULL), 0);
	pthread_mutex_destroy(&r.w.mu);
	relay_stop();
	if (r.rc != 0)
		fail_msg("daemon: %s", r.st.last_error);
	assert_true(r.st.up_to_date);
	assert_int_equal(r.st.installed, 1);
	assert_int_equal(r.st.confirmed, 1);
	assert_true(r.st.transfers >= 2);
	assert_true(r.st.resumes >= 1);                /* a Range request from the bytes kept */
	assert_int_equal(r.st.fetched, (uint64_t)len); /* no byte fetched twice */
	assert_int_equal(atomic_load(&dl_drops), 0);
	assert_int_equal(atomic_load(&dl_have), (uint64_t)len);
	assert_int_equal(r.st.checkins, 2);
	assert_int_equal(boot_last_report(dl.bd, &rep), 0);
	assert_string_equal(rep.stage[BOOT_OS].measured.version, "2.0.0");
	snprintf(path, sizeof(path), "%s/%s/%s.pkg", dl.dir, AGENT_DOWNLOAD_DIR, id);
	assert_int_equal(access(path, F_OK), -1); /* installed: not kept */
	expect_cert_files(&dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fallback_to_the_period),
	        cmocka_unit_test(test_renewal_and_expired_recovery),
	        cmocka_unit_test(test_service_restarts_mid_download),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
