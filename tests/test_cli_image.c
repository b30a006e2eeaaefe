/* cli image-package: runs the `sphere` binary ($SPHERE_BIN) as an operator
 * would: keygen -> pack -> show --json -> verify, then tampering, role
 * mistakes and usage errors, checking exit codes, messages and that a
 * failed command writes nothing. */
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
#include <openssl/evp.h>

#include "testutil.h"

static char *dir;

#define RUN(...) tu_run("SPHERE_BIN", dir, (const char *const[]){__VA_ARGS__, NULL})

static bool exists(const char *name)
{
	char *p = tu_path(dir, name);
	struct stat st;
	bool e = stat(p, &st) == 0;
	free(p);
	return e;
}

static void write_file(const char *name, const void *data, size_t len)
{
	char *p = tu_path(dir, name);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(p);
}

static uint8_t *read_file(const char *name, size_t *len)
{
	char *p = tu_path(dir, name);
	uint8_t *b = NULL;
	assert_int_equal(tu_read_file(p, &b, len), 0);
	free(p);
	return b;
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

static void test_help_and_usage(void **state)
{
	(void)state;
	struct tu_result r;

	r = RUN("--help");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "image-package"));
	tu_result_free(&r);
	r = RUN("image-package", "--help");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "pack-application"));
	tu_result_free(&r);
	const char *subs[] = {"keygen", "pack-os", "pack-application", "show", "verify"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		r = RUN("image-package", subs[i], "--help");
		assert_int_equal(r.status, 0);
		assert_non_null(strstr(r.out, subs[i]));
		tu_result_free(&r);
	}
	r = RUN("--version");
	assert_int_equal(r.status, 0);
	tu_result_free(&r);

	r = RUN("--bogus");
	tu_expect(&r, 2, "unknown option");
	r = tu_run("SPHERE_BIN", dir, (const char *const[]){NULL});
	tu_expect(&r, 2, "missing command");
	r = RUN("frobnicate");
	tu_expect(&r, 2, "unknown command");
	r = RUN("image-package");
	tu_expect(&r, 2, "missing command");
	r = RUN("image-package", "unpack");
	tu_expect(&r, 2, "unknown command");
	r = RUN("image-package", "keygen", "--role", "emperor", "--out-key", "k", "--out-cert",
	        "c");
	tu_expect(&r, 2, "unknown role");
	r = RUN("image-package", "keygen", "--role", "platform-root", "--out-key", "k");
	tu_expect(&r, 2, "required");
	r = RUN("image-package", "keygen", "--role", "platform-signer", "--out-key", "k",
	        "--out-cert", "c");
	tu_expect(&r, 2, "--issuer-key");
	r = RUN("image-package", "keygen", "--role", "platform-root", "--out-key", "k",
	        "--out-cert", "c", "--days", "12x");
	tu_expect(&r, 2, "--days");
	r = RUN("image-package", "verify", "x.pkg");
	tu_expect(&r, 2, "--root-cert");
	r = RUN("image-package", "verify", "x.pkg", "--root-hash", "abcd");
	tu_expect(&r, 2, "--root-hash");
	r = RUN("image-package", "show");
	tu_expect(&r, 2, "PACKAGE");
	r = RUN("image-package", "pack-os", "--type", "kernel", "--name", "n", "--version", "1",
	        "--security-version", "0", "--payload", "p", "--key", "k", "--cert", "c", "--out",
	        "o");
	tu_expect(&r, 2, "--type");
	r = RUN("image-package", "pack-os", "--type", "os", "--name", "n", "--version", "1",
	        "--security-version", "256", "--payload", "p", "--key", "k", "--cert", "c", "--out",
	        "o");
	tu_expect(&r, 2, "--security-version");
	assert_false(exists("k"));
	assert_false(exists("c"));
	assert_false(exists("o"));
}

static void sha256_hex(const uint8_t *d, size_t n, char out[65])
{
	static const char hx[] = "0123456789abcdef";
	uint8_t md[32];
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(d, n, md, &len, EVP_sha256(), NULL), 1);
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = 0;
}

static void test_os_flow(void **state)
{
	(void)state;
	struct tu_result r;
	char root_hash[65], payload_sha[65];
	uint8_t payload[5000], *pkg, *before, *after;
	size_t len, blen, alen;
	json_error_t jerr;
	json_t *j;
	const char *p;

	/* keygen: platform root (prints its hash) and an OS signer */
	r = RUN("image-package", "keygen", "--role", "platform-root", "--out-key", "root.key",
	        "--out-cert", "root.pem", "--subject", "Test platform root");
	assert_int_equal(r.status, 0);
	p = strstr(r.out, "root hash: ");
	assert_non_null(p);
	memcpy(root_hash, p + 11, 64);
	root_hash[64] = 0;
	assert_int_equal(strspn(root_hash, "0123456789abcdef"), 64);
	tu_result_free(&r);
	r = RUN("image-package", "keygen", "--role", "platform-signer", "--issuer-key", "root.key",
	        "--issuer-cert", "root.pem", "--out-key", "os.key", "--out-cert", "os.pem",
	        "--days", "30");
	tu_expect(&r, 0, NULL);
	/* keygen never overwrites, and leaves the existing key as it was */
	before = read_file("os.key", &blen);
	r = RUN("image-package", "keygen", "--role", "platform-root", "--out-key", "os.key",
	        "--out-cert", "other.pem");
	tu_expect(&r, 1, "already exists");
	assert_false(exists("other.pem"));
	after = read_file("os.key", &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(before);
	free(after);

	/* pack-os */
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 13);
	write_file("os.bin", payload, sizeof(payload));
	sha256_hex(payload, sizeof(payload), payload_sha);
	r = RUN("image-package", "pack-os", "--type", "os", "--name", "Sphere OS", "--version",
	        "22.11.1", "--security-version", "4", "--component-id",
	        "9a1b2c3d-0000-4000-8000-00000000abcd", "--payload", "os.bin", "--key", "os.key",
	        "--cert", "os.pem", "--chain", "root.pem", "--out", "os.pkg");
	tu_expect(&r, 0, NULL);

	/* show --json */
	r = RUN("image-package", "show", "os.pkg", "--json");
	assert_int_equal(r.status, 0);
	j = json_loads(r.out, 0, &jerr);
	if (!j)
		fail_msg("show --json: %s\n%s", jerr.text, r.out);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "manifest"), "type")), "os");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "manifest"), "name")),
	        "Sphere OS");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "manifest"), "version")),
	        "22.11.1");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "manifest"), "component_id")),
	        "9a1b2c3d-0000-4000-8000-00000000abcd");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "manifest"),
	                                                    "security_version")),
	                 4);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(j, "manifest"), "payload_size")),
	        sizeof(payload));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "manifest"),
	                                                      "payload_sha256")),
	                    payload_sha);
	assert_true(json_is_false(json_object_get(json_object_get(j, "manifest"), "debug")));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "signer"), "role")),
	        "platform-os");
	assert_non_null(
	        strstr(json_string_value(json_object_get(json_object_get(j, "signer"), "issuer")),
	               "CN=Test platform root"));
	assert_int_equal(json_integer_value(json_object_get(j, "chain_length")), 2);
	assert_true(json_is_false(json_object_get(j, "verified")));
	json_decref(j);
	tu_result_free(&r);
	r = RUN("image-package", "show", "os.pkg");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "security version: 4"));
	tu_result_free(&r);

	/* verify: by root certificate and by root hash */
	r = RUN("image-package", "verify", "os.pkg", "--root-cert", "root.pem");
	assert_int_equal(r.status, 0);
	assert_int_equal(strncmp(r.out, "verified", 8), 0);
	tu_result_free(&r);
	r = RUN("image-package", "verify", "os.pkg", "--root-hash", root_hash);
	assert_int_equal(r.status, 0);
	assert_int_equal(strncmp(r.out, "verified", 8), 0);
	tu_result_free(&r);
	/* a time outside the signer's validity; none at all */
	r = RUN("image-package", "verify", "os.pkg", "--root-hash", root_hash, "--at", "100");
	tu_expect(&r, 1, "not yet valid");
	r = RUN("image-package", "verify", "os.pkg", "--root-hash", root_hash, "--at",
	        "4102444800"); /* 2100 */
	tu_expect(&r, 1, "expired");
	r = RUN("image-package", "verify", "os.pkg", "--root-hash", root_hash, "--no-time-check");
	tu_expect(&r, 0, NULL);
	/* the wrong root hash */
	{
		char saved = root_hash[10];
		root_hash[10] = saved == '0' ? '1' : '0';
		r = RUN("image-package", "verify", "os.pkg", "--root-hash", root_hash);
		tu_expect(&r, 1, "authentication failed");
		root_hash[10] = saved;
	}

	/* tamper: a payload byte, then a manifest byte */
	pkg = read_file("os.pkg", &len);
	pkg[len - 100] ^= 0x01;
	write_file("tampered.pkg", pkg, len);
	r = RUN("image-package", "verify", "tampered.pkg", "--root-hash", root_hash);
	tu_expect(&r, 1, "signature verification failed");
	r = RUN("image-package", "show", "tampered.pkg");
	tu_expect(&r, 1, "not a valid image package");
	pkg[len - 100] ^= 0x01;
	pkg[len - sizeof(payload) - 64 - 20] ^= 0x40; /* inside the manifest */
	write_file("tampered.pkg", pkg, len);
	r = RUN("image-package", "verify", "tampered.pkg", "--root-hash", root_hash);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "NOT verified"));
	tu_result_free(&r);
	write_file("tampered.pkg", pkg, len - 1);
	r = RUN("image-package", "verify", "tampered.pkg", "--root-cert", "root.pem");
	tu_expect(&r, 1, "truncated");
	free(pkg);
	r = RUN("image-package", "verify", "missing.pkg", "--root-cert", "root.pem");
	tu_expect(&r, 1, "no such file");
}

static void test_app_flow_and_roles(void **state)
{
	(void)state;
	static const char manifest[] =
	        "{\"SchemaVersion\": 1, \"Name\": \"Blink\", "
	        "\"ComponentId\": \"1689d8b2-c835-2e27-27ad-e894d6d15fa9\", "
	        "\"EntryPoint\": \"/bin/app\", \"Capabilities\": {\"Gpio\": [9]}}";
	struct tu_result r;
	json_error_t jerr;
	json_t *j, *m;

	r = RUN("image-package", "keygen", "--role", "tenant-root", "--out-key", "t.key",
	        "--out-cert", "t.pem");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "keygen", "--role", "developer", "--issuer-key", "t.key",
	        "--issuer-cert", "t.pem", "--out-key", "dev.key", "--out-cert", "dev.pem");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "keygen", "--role", "tenant-signer", "--issuer-key", "t.key",
	        "--issuer-cert", "t.pem", "--out-key", "prod.key", "--out-cert", "prod.pem");
	tu_expect(&r, 0, NULL);
	/* the tenant root may not certify a platform signer */
	r = RUN("image-package", "keygen", "--role", "platform-signer", "--issuer-key", "t.key",
	        "--issuer-cert", "t.pem", "--out-key", "x.key", "--out-cert", "x.pem");
	tu_expect(&r, 1, "may not certify");
	assert_false(exists("x.key"));
	assert_false(exists("x.pem"));

	write_file("app_manifest.json", manifest, strlen(manifest));
	write_file("app.elf", "\177ELF....", 8);
	r = RUN("image-package", "pack-application", "--payload", "app.elf", "--app-manifest",
	        "app_manifest.json", "--version", "1.0.0", "--security-version", "1", "--key",
	        "dev.key", "--cert", "dev.pem", "--chain", "t.pem", "--out", "dev.pkg");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "show", "dev.pkg", "--json");
	assert_int_equal(r.status, 0);
	j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	m = json_object_get(j, "manifest");
	assert_string_equal(json_string_value(json_object_get(m, "type")), "application");
	assert_string_equal(json_string_value(json_object_get(m, "name")), "Blink");
	assert_string_equal(json_string_value(json_object_get(m, "component_id")),
	                    "1689d8b2-c835-2e27-27ad-e894d6d15fa9");
	assert_string_equal(json_string_value(json_object_get(json_object_get(m, "app_manifest"),
	                                                      "EntryPoint")),
	                    "/bin/app");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "signer"), "role")),
	        "developer-app");
	json_decref(j);
	tu_result_free(&r);

	/* developer images only where allowed */
	r = RUN("image-package", "verify", "dev.pkg", "--root-cert", "t.pem");
	tu_expect(&r, 1, "permission denied");
	r = RUN("image-package", "verify", "dev.pkg", "--root-cert", "t.pem", "--allow-developer");
	tu_expect(&r, 0, NULL);
	/* another root does not vouch for it */
	r = RUN("image-package", "keygen", "--role", "platform-root", "--out-key", "p.key",
	        "--out-cert", "p.pem");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "verify", "dev.pkg", "--root-cert", "p.pem", "--allow-developer");
	tu_expect(&r, 1, "authentication failed");

	/* a real-time app with the production key */
	r = RUN("image-package", "pack-application", "--realtime", "--payload", "app.elf",
	        "--app-manifest", "app_manifest.json", "--name", "RT", "--version", "2",
	        "--security-version", "0", "--key", "prod.key", "--cert", "prod.pem", "--out",
	        "rt.pkg");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "verify", "rt.pkg", "--root-cert", "t.pem");
	tu_expect(&r, 0, NULL);
	r = RUN("image-package", "verify", "rt.pkg", "--root-cert", "t.pem", "--target", "other");
	tu_expect(&r, 1, "target");

	/* the tenant key may not sign an OS; nothing is written */
	r = RUN("image-package", "pack-os", "--type", "os", "--name", "evil", "--version", "1",
	        "--security-version", "0", "--payload", "app.elf", "--key", "prod.key", "--cert",
	        "prod.pem", "--out", "evil.pkg");
	tu_expect(&r, 1, "may not sign");
	assert_false(exists("evil.pkg"));
	/* a key that is not the certificate's */
	r = RUN("image-package", "pack-application", "--payload", "app.elf", "--app-manifest",
	        "app_manifest.json", "--version", "1", "--security-version", "0", "--key",
	        "dev.key", "--cert", "prod.pem", "--out", "mismatch.pkg");
	tu_expect(&r, 1, "is not the key of the certificate");
	assert_false(exists("mismatch.pkg"));
	/* an app manifest that is not a JSON object */
	write_file("bad.json", "[1, 2]", 6);
	r = RUN("image-package", "pack-application", "--payload", "app.elf", "--app-manifest",
	        "bad.json", "--name", "x", "--version", "1", "--security-version", "0", "--key",
	        "prod.key", "--cert", "prod.pem", "--out", "bad.pkg");
	tu_expect(&r, 1, "not a JSON object");
	assert_false(exists("bad.pkg"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_help_and_usage),
	        cmocka_unit_test(test_os_flow),
	        cmocka_unit_test(test_app_flow_and_roles),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
