/*
 * The fleet (src/fleet, docs/fleet.md): a real service, light and booted
 * emulated devices, their check-ins; and sphere-fleet end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet/fleet.h"
#include "testutil.h"

static char *tmp;
static struct fleet_service fs;

static int setup(void **state)
{
	char dir[600], why[320];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	tmp = tu_mkdtemp();
	snprintf(dir, sizeof(dir), "%s/ss", tmp);
	if (fleet_service_start(dir, 2, &fs, why, sizeof(why)) != 0) {
		fprintf(stderr, "fleet service: %s\n", why);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fleet_service_stop(&fs);
	tu_rmtree(tmp);
	free(tmp);
	curl_global_cleanup();
	return 0;
}

/* Light and booted devices alike: their own identities, enrolled, a check-in
 * that ends with a certificate, and the handshake-only op. */
static void test_devices_check_in(void **state)
{
	struct fleet_device d[4];
	char dir[700], why[320];
	CURL *c = curl_easy_init();

	(void)state;
	assert_non_null(c);
	for (unsigned i = 0; i < 4; i++) {
		snprintf(dir, sizeof(dir), "%s/d%u", tmp, i);
		assert_int_equal(
		        fleet_device_make(&fs, i < 3 ? FLEET_LIGHT : FLEET_BOOTED, dir, &d[i]), 0);
		for (unsigned k = 0; k < i; k++)
			assert_string_not_equal(d[i].id, d[k].id);
	}
	/* not yet registered: refused, and said so */
	assert_int_equal(fleet_checkin(&fs, &d[0], FLEET_CHECKIN, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "unregistered"));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(fleet_device_enrol(&fs, c, &d[i], why, sizeof(why)), 0);
		assert_int_equal(fleet_checkin(&fs, &d[i], FLEET_CHECKIN, why, sizeof(why)), 0);
		assert_int_equal(fleet_checkin(&fs, &d[i], FLEET_HANDSHAKE, why, sizeof(why)), 0);
	}
	/* enrolled twice: the registration is a conflict */
	assert_int_equal(fleet_device_enrol(&fs, c, &d[0], why, sizeof(why)), -1);
	assert_non_null(strstr(why, "register"));
	for (unsigned i = 0; i < 4; i++)
		fleet_device_free(&d[i]);
	curl_easy_cleanup(c);
}

/* Bad arguments change nothing. */
static void test_args(void **state)
{
	struct fleet_device d;
	char dir[700];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/bad", tmp);
	assert_int_equal(fleet_device_make(&fs, (enum fleet_kind)7, dir, &d), SPH_ERR_INVALID_ARG);
	assert_null(d.dir);
	assert_int_equal(fleet_device_make(NULL, FLEET_LIGHT, dir, &d), SPH_ERR_INVALID_ARG);
	fleet_device_free(&d);
}

/* sphere-fleet itself: 20 devices, 2 rounds, every check-in good; usage
 * errors exit 2. */
static void test_sphere_fleet(void **state)
{
	const char *ok[] = {"-n", "20", "--rounds", "2", "--threads", "3", NULL};
	const char *bad[] = {"-n", "0", NULL};
	const char *extra[] = {"-n", "5", "junk", NULL};
	struct tu_result r;

	(void)state;
	r = tu_run("SPHERE_FLEET_BIN", tmp, ok);
	if (r.status != 0)
		fail_msg("sphere-fleet: %s %s", r.out, r.err);
	assert_non_null(strstr(r.out, "40 ok, 0 failed"));
	assert_non_null(strstr(r.out, "p99"));
	assert_non_null(strstr(r.out, "peak RSS"));
	tu_result_free(&r);
	r = tu_run("SPHERE_FLEET_BIN", tmp, bad);
	tu_expect(&r, 2, "--devices");
	r = tu_run("SPHERE_FLEET_BIN", tmp, extra);
	tu_expect(&r, 2, "usage");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_devices_check_in),
	        cmocka_unit_test(test_args),
	        cmocka_unit_test(test_sphere_fleet),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
