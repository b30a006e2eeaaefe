/* sphere-device: runs the binary ($SPHERE_DEVICE_BIN) as a developer would:
 * provision -> install -> boot -> confirm -> update -> status, with packages
 * made by `sphere image-package` ($SPHERE_BIN); exit codes and messages. */
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"

static char *dir;

#define SPHERE(...) tu_run("SPHERE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})
#define DEVICE(...) tu_run("SPHERE_DEVICE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})

/* Checks status and that stderr mentions what (or is empty when what is NULL). */
static void expect(struct tu_result *r, int status, const char *what)
{
	if (r->status != status || (what && !strstr(r->err, what)))
		fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant in stderr: %s", r->status,
		         status, r->out, r->err, what ? what : "(nothing)");
	tu_result_free(r);
}

static int setup(void **state)
{
	(void)state;
	dir = tu_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(dir);
	free(dir);
	return 0;
}

/* Checks status and that stdout mentions what (may be NULL). */
static void expect_out(struct tu_result *r, int status, const char *what)
{
	if (r->status != status || (what && !strstr(r->out, what)))
		fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant in stdout: %s", r->status,
		         status, r->out, r->err, what ? what : "(nothing)");
	tu_result_free(r);
}

static void write_payload(const char *name, size_t len, unsigned seed)
{
	char *p = tu_path(dir, name);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(fputc((int)((i * 13u + seed) & 0xff), f),
		                 (int)((i * 13u + seed) & 0xff));
	assert_int_equal(fclose(f), 0);
	free(p);
}

static void pack(const char *type, const char *version, const char *svn, const char *payload,
                 const char *out)
{
	struct tu_result r =
	        SPHERE("image-package", "pack-os", "--type", type, "--name", type, "--version",
	               version, "--security-version", svn, "--payload", payload, "--key", "os.key",
	               "--cert", "os.pem", "--chain", "root.pem", "--out", out);
	expect(&r, 0, NULL);
}

static void test_help_and_usage(void **state)
{
	struct tu_result r;

	(void)state;
	r = DEVICE("--help");
	expect_out(&r, 0, "provision");
	r = DEVICE("boot", "--help");
	expect_out(&r, 0, "exit status");
	r = DEVICE("boot");
	expect(&r, 2, "--dir is required");
	r = DEVICE("frobnicate", "--dir", "x");
	expect(&r, 2, "unknown command");
	r = DEVICE("provision", "--dir", "x");
	expect(&r, 2, "exactly one of");
	r = DEVICE("provision", "--dir", "x", "--root-hash", "abcd");
	expect(&r, 2, "64 hex digits");
	r = DEVICE("provision", "--dir", "x", "--root-hash",
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	           "--lifecycle", "weird");
	expect(&r, 2, "--lifecycle");
	r = DEVICE("install", "--dir", "x");
	expect(&r, 2, "exactly one package");
	r = DEVICE("boot", "--dir", "x", "extra");
	expect(&r, 2, "unexpected argument");
	r = DEVICE("boot", "--dir", "nodev");
	expect(&r, 1, "open device");
}

static void test_device_flow(void **state)
{
	struct tu_result r;
	json_error_t jerr;
	json_t *st, *os;

	(void)state;
	r = SPHERE("image-package", "keygen", "--role", "platform-root", "--out-key", "root.key",
	           "--out-cert", "root.pem");
	expect(&r, 0, NULL);
	r = SPHERE("image-package", "keygen", "--role", "platform-signer", "--issuer-key",
	           "root.key", "--issuer-cert", "root.pem", "--out-key", "os.key", "--out-cert",
	           "os.pem");
	expect(&r, 0, NULL);
	write_payload("bl.bin", 3000, 1);
	write_payload("sm.bin", 5000, 2);
	write_payload("os.bin", 7000, 3);
	pack("bootloader", "1.0.0", "1", "bl.bin", "bl.pkg");
	pack("security-monitor", "1.0.0", "1", "sm.bin", "sm.pkg");
	pack("os", "1.0.0", "1", "os.bin", "os1.pkg");
	pack("os", "2.0.0", "2", "os.bin", "os2.pkg");

	r = DEVICE("provision", "--dir", "dev", "--lifecycle", "production", "--root-cert",
	           "root.pem");
	expect_out(&r, 0, "provisioned");
	r = DEVICE("provision", "--dir", "dev", "--root-cert", "root.pem");
	expect(&r, 1, "provision");
	/* Nothing installed: RECOVERY, exit 1. */
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 1, "RECOVERY");
	r = DEVICE("install", "--dir", "dev", "bl.pkg");
	expect_out(&r, 0, "installed BL 1.0.0");
	r = DEVICE("install", "--dir", "dev", "sm.pkg");
	expect(&r, 0, NULL);
	r = DEVICE("install", "--dir", "dev", "os1.pkg");
	expect(&r, 0, NULL);
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "OS     slot A (trial): verified 1.0.0");
	r = DEVICE("confirm", "--dir", "dev");
	expect_out(&r, 0, "confirmed 3");
	r = DEVICE("install", "--dir", "dev", "os2.pkg");
	expect(&r, 0, NULL);
	/* A power cut while the boot counts the trial down: that boot fails. */
	r = DEVICE("boot", "--dir", "dev", "--faults", "powercut=1");
	expect(&r, 1, "power");
	r = DEVICE("boot", "--dir", "dev", "--faults", "bogus");
	expect(&r, 2, "--faults");
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "OS     slot B (trial): verified 2.0.0");
	r = DEVICE("confirm", "--dir", "dev");
	expect_out(&r, 0, "confirmed 1");
	r = DEVICE("install", "--dir", "dev", "os1.pkg");
	expect(&r, 1, "security version 1 below");
	r = DEVICE("install", "--dir", "dev", "root.pem");
	expect(&r, 1, "package");

	r = DEVICE("status", "--dir", "dev", "--boot", "--json");
	assert_int_equal(r.status, 0);
	st = json_loads(r.out, 0, &jerr);
	assert_non_null(st);
	assert_string_equal(json_string_value(json_object_get(st, "boot_result")), "booted");
	assert_string_equal(json_string_value(json_object_get(st, "lifecycle")), "production");
	assert_true(json_is_true(json_object_get(st, "firewall_locked")));
	os = json_array_get(json_object_get(st, "components"), 2);
	assert_string_equal(json_string_value(json_object_get(os, "confirmed_slot")), "B");
	assert_int_equal(json_integer_value(json_object_get(os, "rollback_counter")), 2);
	assert_int_equal(json_array_size(json_object_get(st, "measurements")), 3);
	assert_string_equal(
	        json_string_value(json_object_get(
	                json_array_get(json_object_get(st, "measurements"), 2), "version")),
	        "2.0.0");
	json_decref(st);
	tu_result_free(&r);
	r = DEVICE("status", "--dir", "dev");
	expect_out(&r, 0, "OS     confirmed B");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_device_flow, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
