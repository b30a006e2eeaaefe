/*
 * The development device's local "check for updates now" and the
 * `sphere-device run` / `check-for-updates` commands (docs/agent.md "Local
 * check for updates"), against a REAL service (agent_fx) and REAL devices;
 * the commands are the real sphere-device binary ($SPHERE_DEVICE_BIN).
 *
 * What is proved:
 *  - a device with a valid appDevelopment capability (issued by the service,
 *    verified against its tenant root): the running daemon listens on
 *    DIR/agent.sock, a socket of mode 0600; `sphere-device check-for-updates`
 *    makes it check in at once (a "local" cycle); once the daemon stopped,
 *    the socket is gone and the command says no agent is running;
 *  - a device without the capability: no socket; the command fails and says
 *    why (appDevelopment), and no check-in happens;
 *  - `sphere-device run --once` boots, checks in and keeps the certificate;
 *    `sphere-device run` stops cleanly on SIGTERM (exit 0, socket removed).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent_fx.h"
#include "boot/boot.h"
#include "ss_fixture.h"
#include "testutil.h"

extern char **environ;

static struct afx_dev devd, prod;

static int setup(void **state)
{
	afx_setup(state);
	afx_dev_make(&devd, true, ax.image_root);
	afx_dev_capability(&devd);
	afx_dev_make(&prod, true, ax.image_root);
	return 0;
}

static int teardown(void **state)
{
	afx_dev_free(&devd);
	afx_dev_free(&prod);
	return afx_teardown(state);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

struct runner {
	struct afx_dev *d;
	struct agent_daemon_config cfg;
	struct agent_daemon_status st, last;
	volatile sig_atomic_t stop;
	pthread_mutex_t mu;
	pthread_t t;
	int rc;
};

static void on_event(void *ctx, const char *event, const struct agent_daemon_status *st,
                     const char *text)
{
	struct runner *r = ctx;

	(void)event;
	(void)text;
	pthread_mutex_lock(&r->mu);
	r->last = *st;
	pthread_mutex_unlock(&r->mu);
}

static struct agent_daemon_status snap(struct runner *r)
{
	struct agent_daemon_status s;

	pthread_mutex_lock(&r->mu);
	s = r->last;
	pthread_mutex_unlock(&r->mu);
	return s;
}

static void *run_thread(void *arg)
{
	struct runner *r = arg;

	r->rc = agent_daemon_run(r->d->bd, &r->cfg, &r->st);
	return NULL;
}

static void start(struct runner *r, struct afx_dev *d)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->d = d;
	r->cfg.agent = afx_config();
	r->cfg.period_s = 3600;
	r->cfg.wait_s = 1;
	r->cfg.stop = &r->stop;
	r->cfg.event = on_event;
	r->cfg.event_ctx = r;
	assert_int_equal(pthread_create(&r->t, NULL, run_thread, r), 0);
	for (int i = 0; i < 200 && !(snap(r).up_to_date && snap(r).checkins == 1); i++)
		sleep_ms(50);
	assert_true(snap(r).up_to_date);
}

static void stop(struct runner *r)
{
	r->stop = 1;
	assert_int_equal(pthread_join(r->t, NULL), 0);
	pthread_mutex_destroy(&r->mu);
	assert_int_equal(r->rc, 0);
}

static char *dev_file(const struct afx_dev *d, const char *name)
{
	return tu_path(d->dir, name);
}

static struct tu_result check_cli(struct afx_dev *d)
{
	const char *args[] = {"check-for-updates", "--dir", d->dir, NULL};

	return tu_run("SPHERE_DEVICE_BIN", d->base, args);
}

static void test_development_device_takes_local_requests(void **state)
{
	struct runner r;
	struct tu_result res;
	struct stat st;
	char *sock = dev_file(&devd, AGENT_SOCKET_FILE), reply[256];
	int i;

	(void)state;
	start(&r, &devd);
	assert_true(snap(&r).local_listening);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* the command: the daemon checks in at once */
	res = check_cli(&devd);
	if (res.status != 0)
		fail_msg("check-for-updates: %s", res.err);
	assert_non_null(strstr(res.out, "ok"));
	tu_result_free(&res);
	for (i = 0; i < 100 && snap(&r).local < 1; i++)
		sleep_ms(50);
	assert_int_equal(snap(&r).local, 1);
	for (i = 0; i < 100 && snap(&r).checkins < 2; i++)
		sleep_ms(50);
	assert_int_equal(snap(&r).checkins, 2);
	/* the API too */
	assert_int_equal(agent_local_request(devd.dir, reply, sizeof(reply)), 0);
	for (i = 0; i < 100 && snap(&r).local < 2; i++)
		sleep_ms(50);
	assert_int_equal(snap(&r).local, 2);
	stop(&r);
	assert_int_equal(r.st.periodic, 0);
	/* gone with the daemon */
	assert_int_equal(stat(sock, &st), -1);
	res = check_cli(&devd);
	tu_expect(&res, 1, "no agent is running");
	assert_int_equal(agent_local_request(devd.dir, reply, sizeof(reply)), SPH_ERR_NOT_FOUND);
	free(sock);
}

static void test_production_device_refuses(void **state)
{
	struct runner r;
	struct tu_result res;
	struct stat st;
	char *sock = dev_file(&prod, AGENT_SOCKET_FILE),
	     *off = dev_file(&prod, AGENT_SOCKET_OFF_FILE);
	char reply[256];

	(void)state;
	start(&r, &prod);
	assert_false(snap(&r).local_listening);
	assert_int_equal(stat(sock, &st), -1);
	assert_int_equal(stat(off, &st), 0);
	res = check_cli(&prod);
	tu_expect(&res, 1, "appDevelopment");
	assert_int_equal(agent_local_request(prod.dir, reply, sizeof(reply)), SPH_ERR_PERMISSION);
	assert_non_null(strstr(reply, "development devices"));
	sleep_ms(400);
	assert_int_equal(snap(&r).checkins, 1);
	stop(&r);
	assert_int_equal(r.st.local, 0);
	assert_int_equal(stat(off, &st), -1);
	free(sock);
	free(off);
}

static void test_run_command(void **state)
{
	const char *once[] = {"run",  "--dir", devd.dir, "--service", ax.url,
	                      "--ca", fx.ca,   "--once", NULL};
	const char *bad[] = {"run", "--dir", devd.dir, "--period", "0", NULL};
	char *out = tu_path(devd.base, "run.txt"), *sock = dev_file(&devd, AGENT_SOCKET_FILE);
	char *argv[] = {(char *)"sphere-device",
	                (char *)"run",
	                (char *)"--dir",
	                devd.dir,
	                (char *)"--service",
	                ax.url,
	                (char *)"--ca",
	                fx.ca,
	                (char *)"--period",
	                (char *)"3600",
	                (char *)"--wait-seconds",
	                (char *)"1",
	                NULL};
	posix_spawn_file_actions_t fa;
	struct tu_result res;
	struct stat st;
	pid_t pid;
	int ws = 0, i;

	(void)state;
	afx_dev_close(&devd); /* one process per device */
	res = tu_run("SPHERE_DEVICE_BIN", devd.base, bad);
	tu_expect(&res, 2, "--period");
	res = tu_run("SPHERE_DEVICE_BIN", devd.base, once);
	if (res.status != 0)
		fail_msg("run --once: %s%s", res.out, res.err);
	assert_non_null(strstr(res.out, "agent: boot:"));
	assert_non_null(strstr(res.out, "agent: up_to_date:"));
	assert_non_null(strstr(res.out, "1 check-in(s), 0 installed, up to date"));
	tu_result_free(&res);

	/* the daemon until SIGTERM */
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(
	        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600),
	        0);
	assert_int_equal(posix_spawn(&pid, getenv("SPHERE_DEVICE_BIN"), &fa, NULL, argv, environ),
	                 0);
	posix_spawn_file_actions_destroy(&fa);
	for (i = 0; i < 200 && stat(sock, &st) != 0; i++)
		sleep_ms(50);
	assert_int_equal(stat(sock, &st), 0);
	res = check_cli(&devd);
	tu_expect(&res, 0, NULL);
	sleep_ms(500);
	assert_int_equal(kill(pid, SIGTERM), 0);
	for (i = 0; i < 100 && waitpid(pid, &ws, WNOHANG) == 0; i++)
		sleep_ms(50);
	if (i == 100) {
		kill(pid, SIGKILL);
		waitpid(pid, &ws, 0);
		fail_msg("sphere-device run did not stop on SIGTERM");
	}
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	assert_int_equal(stat(sock, &st), -1);
	{
		uint8_t *text = NULL;
		size_t len = 0;
		assert_int_equal(tu_read_file(out, &text, &len), 0);
		assert_non_null(strstr((char *)text, "checking in (local)"));
		assert_non_null(strstr((char *)text, "agent: stopping:"));
		free(text);
	}
	afx_dev_open(&devd);
	free(out);
	free(sock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_development_device_takes_local_requests),
	        cmocka_unit_test(test_production_device_refuses),
	        cmocka_unit_test(test_run_command),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
