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
	tu_expect(&r, 0, NULL);
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
	tu_expect(&r, 2, "--dir is required");
	r = DEVICE("frobnicate", "--dir", "x");
	tu_expect(&r, 2, "unknown command");
	r = DEVICE("provision", "--dir", "x");
	tu_expect(&r, 2, "exactly one of");
	r = DEVICE("provision", "--dir", "x", "--root-hash", "abcd");
	tu_expect(&r, 2, "64 hex digits");
	r = DEVICE("provision", "--dir", "x", "--root-hash",
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	           "--lifecycle", "weird");
	tu_expect(&r, 2, "--lifecycle");
	r = DEVICE("install", "--dir", "x");
	tu_expect(&r, 2, "exactly one package");
	r = DEVICE("boot", "--dir", "x", "extra");
	tu_expect(&r, 2, "unexpected argument");
	r = DEVICE("boot", "--dir", "nodev");
	tu_expect(&r, 1, "open device");
}

static void test_device_flow(void **state)
{
	struct tu_result r;
	json_error_t jerr;
	json_t *st, *os;

	(void)state;
	r = SPHERE("image-package", "keygen", "--role", "platform-root", "--out-key", "root.key",
	           "--out-cert", "root.pem");
	tu_expect(&r, 0, NULL);
	r = SPHERE("image-package", "keygen", "--role", "platform-signer", "--issuer-key",
	           "root.key", "--issuer-cert", "root.pem", "--out-key", "os.key", "--out-cert",
	           "os.pem");
	tu_expect(&r, 0, NULL);
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
	tu_expect(&r, 1, "provision");
	/* Nothing installed: RECOVERY, exit 1. */
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 1, "RECOVERY");
	r = DEVICE("install", "--dir", "dev", "bl.pkg");
	expect_out(&r, 0, "installed BL 1.0.0");
	r = DEVICE("install", "--dir", "dev", "sm.pkg");
	tu_expect(&r, 0, NULL);
	r = DEVICE("install", "--dir", "dev", "os1.pkg");
	tu_expect(&r, 0, NULL);
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "OS     slot A (trial): verified 1.0.0");
	r = DEVICE("confirm", "--dir", "dev");
	expect_out(&r, 0, "confirmed 3");
	r = DEVICE("install", "--dir", "dev", "os2.pkg");
	tu_expect(&r, 0, NULL);
	/* A power cut while the boot counts the trial down: that boot fails. */
	r = DEVICE("boot", "--dir", "dev", "--faults", "powercut=1");
	tu_expect(&r, 1, "power");
	r = DEVICE("boot", "--dir", "dev", "--faults", "bogus");
	tu_expect(&r, 2, "--faults");
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "OS     slot B (trial): verified 2.0.0");
	r = DEVICE("confirm", "--dir", "dev");
	expect_out(&r, 0, "confirmed 1");
	r = DEVICE("install", "--dir", "dev", "os1.pkg");
	tu_expect(&r, 1, "security version 1 below");
	r = DEVICE("install", "--dir", "dev", "root.pem");
	tu_expect(&r, 1, "package");

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

	/* The store's health check: after every boot, and on demand. Two lost
	 * blocks where the first shards went (data blocks start after 6 record
	 * blocks and 20 superblock blocks) are rebuilt elsewhere. */
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "storage: 4 object(s)"); /* OS A and B both stored */
	r = DEVICE("storage", "check", "--dir", "dev", "--faults", "lose=26,lose=27", "--json");
	assert_int_equal(r.status, 0);
	st = json_loads(r.out, 0, &jerr);
	assert_non_null(st);
	assert_int_equal(json_integer_value(json_object_get(st, "objects")), 4);
	assert_true(json_integer_value(json_object_get(st, "repaired")) >= 1);
	assert_int_equal(json_integer_value(json_object_get(st, "unrecoverable")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "store"), "m")), 2);
	/* Wear per block: every block of the default 1024-block flash, and
	 * format erased the store's blocks at least once. */
	assert_int_equal(json_array_size(json_object_get(st, "erase_counts")), 1024);
	assert_true(json_integer_value(json_array_get(json_object_get(st, "erase_counts"), 100)) >=
	            1);
	json_decref(st);
	tu_result_free(&r);
	r = DEVICE("storage", "check", "--dir", "dev");
	expect_out(&r, 0, "0 repaired, 0 unrecoverable");
	r = DEVICE("storage", "--dir", "dev");
	tu_expect(&r, 2, "storage: check");
	r = DEVICE("boot", "--dir", "dev");
	expect_out(&r, 0, "OS     slot B: verified 2.0.0");
}

/* The documented development-device flow (README "Development devices"). */
static void test_capability_flow(void **state)
{
	struct tu_result r;
	json_error_t jerr;
	json_t *st;
	char id[129], other[129];

	(void)state;
	r = SPHERE("image-package", "keygen", "--role", "platform-root", "--out-key", "root.key",
	           "--out-cert", "root.pem");
	tu_expect(&r, 0, NULL);
	r = SPHERE("image-package", "keygen", "--role", "tenant-root", "--out-key", "t.key",
	           "--out-cert", "t.pem");
	tu_expect(&r, 0, NULL);
	r = SPHERE("image-package", "keygen", "--role", "capability-signer", "--issuer-key",
	           "t.key", "--issuer-cert", "t.pem", "--out-key", "cap.key", "--out-cert",
	           "cap.pem");
	tu_expect(&r, 0, NULL);
	r = SPHERE("image-package", "keygen", "--role", "developer", "--issuer-key", "t.key",
	           "--issuer-cert", "t.pem", "--out-key", "dev.key", "--out-cert", "dev.pem");
	tu_expect(&r, 0, NULL);
	r = SPHERE("device", "--help");
	expect_out(&r, 0, "capability create");

	/* a platform root is no tenant root: nothing is provisioned */
	r = DEVICE("provision", "--dir", "dev", "--root-cert", "root.pem", "--tenant-root-cert",
	           "root.pem");
	tu_expect(&r, 1, "tenant root");
	r = DEVICE("provision", "--dir", "dev", "--lifecycle", "production", "--root-cert",
	           "root.pem", "--tenant-root-cert", "t.pem");
	expect_out(&r, 0, "tenant-root.pem");
	r = DEVICE("provision", "--dir", "bare", "--root-cert", "root.pem");
	tu_expect(&r, 0, NULL);
	r = DEVICE("status", "--dir", "dev");
	expect_out(&r, 0, "production: no capability, only production-signed images");

	r = DEVICE("status", "--dir", "dev", "--json");
	assert_int_equal(r.status, 0);
	st = json_loads(r.out, 0, &jerr);
	assert_non_null(st);
	assert_int_equal(strlen(json_string_value(json_object_get(st, "device_id"))), 128);
	memcpy(id, json_string_value(json_object_get(st, "device_id")), 129);
	assert_string_equal(json_string_value(json_object_get(st, "mode")), "production");
	json_decref(st);
	tu_result_free(&r);
	memcpy(other, id, sizeof(other));
	other[0] = other[0] == '0' ? '1' : '0';

	r = SPHERE("device", "capability", "create", "--device-id", id, "--capability",
	           "appDevelopment", "--key", "dev.key", "--cert", "dev.pem", "--out", "x.cap");
	tu_expect(&r, 1, "not a capability signer");
	r = SPHERE("device", "capability", "create", "--device-id", id, "--capability", "debug",
	           "--key", "cap.key", "--cert", "cap.pem", "--out", "x.cap");
	tu_expect(&r, 2, "--capability");
	r = SPHERE("device", "capability", "create", "--device-id", "abcd", "--capability",
	           "appDevelopment", "--key", "cap.key", "--cert", "cap.pem", "--out", "x.cap");
	tu_expect(&r, 2, "--device-id");
	r = SPHERE("device", "capability", "create", "--device-id", other, "--capability",
	           "appDevelopment", "--key", "cap.key", "--cert", "cap.pem", "--out", "other.cap");
	tu_expect(&r, 0, NULL);
	r = SPHERE("device", "capability", "create", "--device-id", id, "--capability",
	           "appDevelopment,fieldServicing", "--key", "cap.key", "--cert", "cap.pem",
	           "--days", "30", "--out", "dev.cap");
	tu_expect(&r, 0, NULL);
	r = SPHERE("device", "capability", "show", "dev.cap");
	expect_out(&r, 0, "appDevelopment,fieldServicing");
	r = SPHERE("device", "capability", "show", "dev.cap", "--json");
	expect_out(&r, 0, "\"fieldServicing\"");

	r = DEVICE("capability", "install", "--dir", "dev", "other.cap");
	tu_expect(&r, 1, "another device");
	r = DEVICE("capability", "install", "--dir", "bare", "dev.cap");
	tu_expect(&r, 1, "no tenant root");
	r = DEVICE("capability", "show", "--dir", "dev");
	tu_expect(&r, 1, "no capability file");
	r = DEVICE("capability", "install", "--dir", "dev", "dev.cap");
	expect_out(&r, 0, "installed capability file");
	r = DEVICE("capability", "show", "--dir", "dev");
	expect_out(&r, 0, "verified");
	r = DEVICE("status", "--dir", "dev");
	expect_out(&r, 0, "development: appDevelopment capability present");
	r = DEVICE("capability", "frob", "--dir", "dev");
	tu_expect(&r, 2, "install or show");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_device_flow, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_capability_flow, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
