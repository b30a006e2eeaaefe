/*
 * sphere-device: an emulated device (virtual chip + RoT + boot chain).
 * provision, install, boot, confirm, status, registration, and run (the
 * device agent's daemon: docs/agent.md). One RoT per invocation: each
 * command opens the device (a power-up) and closes it at the end.
 *
 * Exit codes: 0 success, 1 failure (a refused image, RECOVERY), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"

#define DEV_EXIT_USAGE 2

static const char dev_usage[] =
        "usage: sphere-device COMMAND --dir DIR [OPTIONS]\n"
        "\n"
        "An emulated Sphere device: virtual chip (flash, firewall), RoT, and the\n"
        "verified A/B boot chain ROM -> bootloader -> security monitor -> OS.\n"
        "\n"
        "commands:\n"
        "  provision --dir DIR [--lifecycle development|production]\n"
        "            (--root-hash HEX | --root-cert PEM) [--tenant-root-cert PEM]\n"
        "      Create the device directory: an erased flash and the OTP fused with a\n"
        "      fresh device secret, the lifecycle and the platform-root key hash\n"
        "      (SHA-256 of the root certificate's SubjectPublicKeyInfo). With\n"
        "      --tenant-root-cert, the tenant root that signs capability files is\n"
        "      stored as DIR/tenant-root.pem (device configuration).\n"
        "  install --dir DIR PKG\n"
        "      Verify an image package (bootloader, security monitor or OS, by its\n"
        "      manifest) and write it into that component's inactive slot as a\n"
        "      trial (3 boots until it is confirmed or reverted).\n"
        "  boot --dir DIR [--faults SPEC]\n"
        "      Reset the chip and run the boot chain; print every stage. Exits 1\n"
        "      in RECOVERY (no valid image for a stage). SPEC: docs/formats.md §6.3\n"
        "      (or $SPHERE_FAULTS).\n"
        "  confirm --dir DIR\n"
        "      Confirm the booted trial images and advance the anti-rollback\n"
        "      counters to their security versions.\n"
        "  storage check --dir DIR [--json] [--faults SPEC]\n"
        "      The security monitor's health check (scrub): read every shard of\n"
        "      every object in the erasure-coded store, rebuild and rewrite damaged\n"
        "      ones, and report counts and wear (--json: every block's erase\n"
        "      count too). Exits 1 if an object is beyond repair. `boot` runs\n"
        "      the same check after a successful boot.\n"
        "  capability install --dir DIR FILE\n"
        "      Verify a capability file (signed by a capability signer of the tenant\n"
        "      root, for this device's id) and store it as DIR/capability.\n"
        "  capability show --dir DIR\n"
        "      Re-verify the stored capability file and print what it grants.\n"
        "  status --dir DIR [--boot] [--json]\n"
        "      Slots (versions, trial state), security versions, counters, firewall\n"
        "      and boot log. The RoT's accumulator lives in its RAM: a new process\n"
        "      starts from zero, so --boot boots first and reports what it measured.\n"
        "      Also the mode: development (a valid appDevelopment capability) or\n"
        "      production (only production-signed images), and why.\n"
        "      The device id and the RoT's attestation public key too.\n"
        "  registration --dir DIR\n"
        "      Print the device's registration record, {\"device_id\",\n"
        "      \"attestation_key\"} (X||Y as 128 hex digits each), as JSON: the\n"
        "      platform operator uploads it as is (sphere device register --file).\n"
        "  run --dir DIR --service URL --ca FILE [--period SECONDS]\n"
        "      [--wait-seconds S] [--max-checkins N] [--once]\n"
        "      The device agent: boot (verified, measured), check in over mutual TLS\n"
        "      with the RoT key, install what the service requires (inside its\n"
        "      update window), keep the certificate in DIR/agent-cert.pem and\n"
        "      DIR/agent-chain.pem; then check in again when the service asks (a\n"
        "      long-poll of S seconds, default 55), every period (default 72000 s =\n"
        "      20 h), when the certificate reaches 80%% of its lifetime, and on a\n"
        "      local request (development devices). SIGINT/SIGTERM stop it cleanly.\n"
        "      --once: one cycle (until up to date); --max-checkins N: stop after\n"
        "      N check-ins. Exits 0 when the last cycle succeeded.\n"
        "  publish --dir DIR --broker HOST:PORT --broker-ca FILE --topic SUB\n"
        "      --message TEXT\n"
        "      Publish TEXT (QoS 1) to devices/<device id>/SUB on an MQTT broker that\n"
        "      trusts the tenant's CA, over mutual TLS with the certificate the agent\n"
        "      keeps (DIR/agent-cert.pem, its chain) and the RoT-held key.\n"
        "  check-for-updates --dir DIR\n"
        "      Ask the agent running on this device to check in now. Development\n"
        "      devices only (a valid appDevelopment capability); otherwise says why.\n"
        "\n"
        "options:\n"
        "  -d, --dir DIR           the device directory\n"
        "  -l, --lifecycle STATE   development (default) or production (provision)\n"
        "  -r, --root-hash HEX     the 64-hex-digit platform-root key hash (provision)\n"
        "  -c, --root-cert PEM     the platform root certificate (provision)\n"
        "      --tenant-root-cert PEM  the tenant root certificate (provision)\n"
        "  -f, --faults SPEC       a fault plan for the flash (boot, storage check)\n"
        "  -b, --boot              boot before reporting (status)\n"
        "  -j, --json              JSON output (status, storage check)\n"
        "      --service URL       the security service, https://host:port (run)\n"
        "      --ca FILE           the service's TLS CA certificate (run)\n"
        "      --period SECONDS    check-in period, 1..604800 (run; default 72000)\n"
        "      --wait-seconds S    the notification long-poll, 1..300 (run; default 55)\n"
        "      --max-checkins N    stop after N check-ins (run)\n"
        "      --once              one cycle, then exit (run)\n"
        "      --broker HOST:PORT  the MQTT broker (publish)\n"
        "      --broker-ca FILE    the broker's TLS CA certificate (publish)\n"
        "      --topic SUB         the topic under devices/<device id>/ (publish)\n"
        "      --message TEXT      the message (publish)\n"
        "  -h, --help              show this help\n"
        "\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

struct dev_opts {
	const char *dir, *root_hash, *root_cert, *tenant_root, *faults, *pkg;
	const char *service, *ca;
	const char *broker, *broker_ca, *topic, *message;
	enum rot_lifecycle lifecycle;
	bool boot, json, once;
	unsigned period, wait, max_checkins;
};

static int dev_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int dev_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sphere-device: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see sphere-device --help)\n", stderr);
	return DEV_EXIT_USAGE;
}

static int dev_fail(const char *what, int rc, const char *why)
{
	fprintf(stderr, "sphere-device: %s: %s%s%s\n", what, sph_strerror(rc),
	        why && *why ? ": " : "", why && *why ? why : "");
	return 1;
}

/* Loads and checks the tenant root before anything is provisioned. */
static int dev_load_tenant_root(const char *path, X509 **root)
{
	STACK_OF(X509) *certs = NULL;
	int rc;

	*root = NULL;
	rc = img_load_certs(path, &certs);
	if (rc == 0 && sk_X509_num(certs) != 1)
		rc = SPH_ERR_MALFORMED;
	if (rc == 0)
		rc = boot_tenant_root_check(sk_X509_value(certs, 0));
	if (rc == 0)
		*root = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (rc != 0)
		return dev_fail("tenant root certificate", rc,
		                rc == SPH_ERR_PERMISSION ? "it may not certify capability signers"
		                : rc == SPH_ERR_AUTH     ? "not a self-signed CA"
		                                         : path);
	return 0;
}

static int dev_cmd_provision(const struct dev_opts *o)
{
	uint8_t hash[32];
	STACK_OF(X509) *certs = NULL;
	X509 *troot = NULL;
	int rc;

	if (!!o->root_hash == !!o->root_cert)
		return dev_usage_error(
		        "provision needs exactly one of --root-hash and --root-cert");
	if (o->root_hash) {
		if (strlen(o->root_hash) != 64 ||
		    sph_hex_decode(o->root_hash, hash, sizeof(hash)) != 0)
			return dev_usage_error("--root-hash must be 64 hex digits");
	} else {
		rc = img_load_certs(o->root_cert, &certs);
		if (rc == 0)
			rc = img_root_hash(sk_X509_value(certs, 0), hash);
		sk_X509_pop_free(certs, X509_free);
		if (rc != 0)
			return dev_fail("root certificate", rc, o->root_cert);
	}
	if (o->tenant_root && dev_load_tenant_root(o->tenant_root, &troot) != 0)
		return 1;
	rc = boot_provision(o->dir, NULL, o->lifecycle, NULL, hash);
	if (rc == 0 && troot)
		rc = boot_set_tenant_root(o->dir, troot);
	X509_free(troot);
	if (rc != 0)
		return dev_fail("provision", rc, o->dir);
	if (o->tenant_root)
		printf("tenant root: %s/%s\n", o->dir, BOOT_TENANT_ROOT_FILE);
	printf("provisioned %s (lifecycle %s)\n", o->dir,
	       o->lifecycle == ROT_LC_PRODUCTION ? "production" : "development");
	return 0;
}

static int dev_cmd_install(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	struct img_package p;
	uint8_t *pkg = NULL;
	size_t len = 0;
	char why[BOOT_REASON_MAX] = "";
	int rc, ret = 1;

	rc = img_read_file(o->pkg, BOOT_SLOT_SIZE, &pkg, &len);
	if (rc != 0) {
		ret = dev_fail("read package", rc, o->pkg);
		goto out;
	}
	rc = img_parse(pkg, len, &p);
	if (rc != 0) {
		ret = dev_fail("package", rc, o->pkg);
		goto out;
	}
	if (p.manifest.type < 1 || p.manifest.type > BOOT_COMPONENTS) {
		ret = dev_fail("package", SPH_ERR_CLAIM,
		               "not a bootloader, security monitor or OS");
		goto out;
	}
	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	rc = boot_install(d, p.manifest.type - 1, pkg, len, why, sizeof(why));
	if (rc != 0) {
		ret = dev_fail("install refused", rc, why);
		goto out;
	}
	printf("installed %s %s (security version %u) as a trial\n",
	       boot_comp_name(p.manifest.type - 1), p.manifest.version,
	       (unsigned)p.manifest.security_version);
	ret = 0;
out:
	boot_close(d);
	free(pkg);
	return ret;
}

static void dev_print_report(const struct boot_report *r)
{
	char hex[65];

	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		const struct boot_stage *st = &r->stage[c];
		if (st->booted)
			printf("%-6s slot %c%s: verified %s security version %u\n",
			       boot_comp_name(c), 'A' + st->slot, st->was_trial ? " (trial)" : "",
			       st->measured.version, (unsigned)st->measured.security_version);
		else
			printf("%-6s: not booted: %s\n", boot_comp_name(c),
			       st->reason[0] ? st->reason : "an earlier stage failed");
	}
	(void)sph_hex_encode(r->accumulator, sizeof(r->accumulator), hex, sizeof(hex));
	printf("result: %s\naccumulator: %s\n",
	       r->result == BOOT_RESULT_BOOTED ? "booted" : "RECOVERY", hex);
}

/* Opens the device with the --faults (or $SPHERE_FAULTS) plan. Returns 0 and
 * *d, or the exit status (usage error, or failure already reported). */
static int dev_open_faulty(const struct dev_opts *o, struct boot_device **d)
{
	struct chip_faults plan;
	char err[CHIP_FAULTS_ERR_MAX];
	int rc = chip_faults_from_flag_or_env(o->faults, &plan, err, sizeof(err));

	*d = NULL;
	if (rc != 0)
		return dev_usage_error("--faults: %s", err);
	rc = boot_open(o->dir, &plan, d);
	return rc == 0 ? 0 : dev_fail("open device", rc, o->dir);
}

static json_t *dev_scrub_json(const struct secmon_scrub_report *rep, const struct secmon_stats *st)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:s?, s:{s:i, s:i, s:i, s:i, s:I, s:i, s:i, "
	                 "s:f, s:i}}",
	                 "objects", (json_int_t)rep->objects, "shards_checked",
	                 (json_int_t)rep->shards, "repaired", (json_int_t)rep->repaired,
	                 "unrecoverable", (json_int_t)rep->unrecoverable, "unrepaired",
	                 (json_int_t)rep->unrepaired, "first_unrecoverable",
	                 rep->first_bad[0] ? rep->first_bad : NULL, "store", "k", (int)st->params.k,
	                 "m", (int)st->params.m, "blocks", (int)st->blocks, "free_blocks",
	                 (int)st->free_blocks, "bytes_stored", (json_int_t)st->bytes_stored,
	                 "erase_min", (int)st->erase_min, "erase_max", (int)st->erase_max,
	                 "erase_mean", st->erase_mean, "worn_blocks", (int)st->worn_blocks);
}

/* Every erase block's erase count, block 0 first (wear, per block). */
static json_t *dev_erase_counts_json(struct boot_device *d)
{
	struct chip_flash *f = chip_flash(boot_chip(d));
	struct chip_flash_geometry g;
	json_t *a = json_array();

	if (!a || chip_flash_geometry(f, &g) != 0)
		return a ? a : json_null();
	for (uint32_t b = 0; b < g.block_count; b++) {
		uint32_t n = 0;
		if (chip_flash_erase_count(f, b, &n) != 0 ||
		    json_array_append_new(a, json_integer((json_int_t)n)) != 0)
			break;
	}
	return a;
}

static void dev_print_scrub(const struct secmon_scrub_report *rep)
{
	printf("storage: %llu object(s), %llu shard(s) checked, %llu repaired, %llu "
	       "unrecoverable%s%s\n",
	       (unsigned long long)rep->objects, (unsigned long long)rep->shards,
	       (unsigned long long)rep->repaired, (unsigned long long)rep->unrecoverable,
	       rep->first_bad[0] ? " (first: " : "", rep->first_bad[0] ? rep->first_bad : "");
	if (rep->first_bad[0])
		printf(")\n");
}

static int dev_cmd_storage(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	struct secmon_scrub_report rep;
	struct secmon_stats st;
	int rc, ret = dev_open_faulty(o, &d);

	if (ret != 0)
		return ret;
	ret = 1;
	rc = boot_storage_check(d, &rep);
	if (rc != 0 && rc != SPH_ERR_CORRUPT) {
		ret = dev_fail("storage check", rc, NULL);
		goto out;
	}
	if (boot_storage_stats(d, &st) != 0)
		memset(&st, 0, sizeof(st));
	if (o->json) {
		json_t *j = dev_scrub_json(&rep, &st);
		char *text;
		if (j)
			json_object_set_new(j, "erase_counts", dev_erase_counts_json(d));
		text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		json_decref(j);
		if (!text) {
			ret = dev_fail("storage check", SPH_ERR_NOMEM, NULL);
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		dev_print_scrub(&rep);
		printf("store: k=%u m=%u, %u of %u blocks free, erase counts %u..%u (mean %.1f), "
		       "%u worn\n",
		       (unsigned)st.params.k, (unsigned)st.params.m, st.free_blocks, st.blocks,
		       st.erase_min, st.erase_max, st.erase_mean, st.worn_blocks);
	}
	ret = rc == 0 ? 0 : 1;
out:
	boot_close(d);
	return ret;
}

static int dev_cmd_boot(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	struct boot_report r;
	int rc, ret = dev_open_faulty(o, &d);

	if (ret != 0)
		return ret;
	ret = 1;
	rc = boot_run(d, CHIP_RESET_POWER_ON, &r);
	dev_print_report(&r);
	if (rc != 0 && rc != SPH_ERR_STATE) {
		ret = dev_fail("boot", rc, NULL);
		goto out;
	}
	ret = rc == 0 ? 0 : 1;
	if (rc == 0) {
		/* The security monitor is up: its health check at boot. */
		struct secmon_scrub_report rep;
		rc = boot_storage_check(d, &rep);
		if (rc == 0 || rc == SPH_ERR_CORRUPT)
			dev_print_scrub(&rep);
		else
			ret = dev_fail("storage check", rc, NULL);
	}
out:
	boot_close(d);
	return ret;
}

static int dev_cmd_confirm(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	int rc, ret = 1;

	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	rc = boot_confirm(d);
	if (rc < 0) {
		ret = dev_fail("confirm", rc, NULL);
		goto out;
	}
	printf("confirmed %d component(s)\n", rc);
	ret = 0;
out:
	boot_close(d);
	return ret;
}

static json_t *dev_hex_json(const uint8_t *b, size_t len)
{
	char hex[65];

	if (len > 32 || sph_hex_encode(b, len, hex, sizeof(hex)) != 0)
		return json_null();
	return json_string(hex);
}

static const char *dev_slot_name(uint8_t s)
{
	return s == 0 ? "A" : s == 1 ? "B" : "none";
}

/* Builds the status document; NULL on failure. */
static json_t *dev_status_json(struct boot_device *d, const struct boot_report *r)
{
	json_t *root = json_object(), *comps = json_array(), *log = json_array();
	struct chip_bootlog_entry e;
	struct chip_fw_stats fw;
	enum rot_lifecycle lc = ROT_LC_BLANK;
	uint64_t boots = 0;
	uint8_t acc[32];

	if (!root || !comps || !log)
		goto fail;
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		struct boot_state s;
		json_t *jc = json_object(), *slots = json_array();
		uint32_t counter = 0;
		if (!jc || !slots || json_array_append_new(comps, jc) != 0) {
			json_decref(jc);
			json_decref(slots);
			goto fail;
		}
		(void)boot_state_read(d, c, &s);
		(void)rot_counter_read(boot_rot(d), c, &counter);
		json_object_set_new(jc, "component", json_string(boot_comp_name(c)));
		json_object_set_new(jc, "confirmed_slot", json_string(dev_slot_name(s.confirmed)));
		json_object_set_new(jc, "trial_slot", json_string(dev_slot_name(s.trial)));
		json_object_set_new(jc, "trials_left", json_integer(s.trials_left));
		json_object_set_new(jc, "confirmed_security_version",
		                    json_integer(s.confirmed_svn));
		json_object_set_new(jc, "rollback_counter", json_integer(counter));
		json_object_set_new(jc, "record_sequence", json_integer(s.seq));
		json_object_set_new(jc, "slots", slots);
		for (unsigned sl = 0; sl < BOOT_SLOTS; sl++) {
			struct eat_component m;
			char why[BOOT_REASON_MAX] = "";
			json_t *js = json_object();
			int rc;
			if (!js || json_array_append_new(slots, js) != 0)
				goto fail;
			json_object_set_new(js, "slot", json_string(dev_slot_name((uint8_t)sl)));
			json_object_set_new(js, "length", json_integer(s.len[sl]));
			if (s.len[sl] == 0) {
				json_object_set_new(js, "state", json_string("empty"));
				continue;
			}
			rc = boot_slot_check(d, c, sl, s.len[sl], &m, why, sizeof(why));
			json_object_set_new(js, "state",
			                    json_string(rc == 0 ? "valid" : "refused"));
			if (rc == 0) {
				json_object_set_new(js, "version", json_string(m.version));
				json_object_set_new(js, "security_version",
				                    json_integer(m.security_version));
				json_object_set_new(js, "digest", dev_hex_json(m.digest, 32));
			} else {
				json_object_set_new(js, "reason", json_string(why));
			}
		}
	}
	json_object_set_new(root, "components", comps);
	comps = NULL;
	(void)rot_lifecycle(boot_rot(d), &lc);
	(void)rot_boot_count(boot_rot(d), &boots);
	json_object_set_new(root, "lifecycle",
	                    json_string(lc == ROT_LC_PRODUCTION    ? "production"
	                                : lc == ROT_LC_DEVELOPMENT ? "development"
	                                                           : "other"));
	json_object_set_new(root, "boot_count", json_integer((json_int_t)boots));
	if (rot_accumulator(boot_rot(d), acc) == 0)
		json_object_set_new(root, "accumulator", dev_hex_json(acc, 32));
	if (r->result != BOOT_RESULT_NONE) {
		json_t *ms = json_array();
		json_object_set_new(
		        root, "boot_result",
		        json_string(r->result == BOOT_RESULT_BOOTED ? "booted" : "recovery"));
		for (unsigned c = 0; ms && c < BOOT_COMPONENTS; c++) {
			json_t *jm;
			if (!r->stage[c].booted)
				continue;
			jm = json_object();
			if (!jm || json_array_append_new(ms, jm) != 0)
				break;
			json_object_set_new(jm, "type", json_string(r->stage[c].measured.type));
			json_object_set_new(jm, "version",
			                    json_string(r->stage[c].measured.version));
			json_object_set_new(jm, "security_version",
			                    json_integer(r->stage[c].measured.security_version));
			json_object_set_new(jm, "slot",
			                    json_string(dev_slot_name(r->stage[c].slot)));
			json_object_set_new(jm, "digest",
			                    dev_hex_json(r->stage[c].measured.digest, 32));
			json_object_set_new(jm, "signer_id",
			                    dev_hex_json(r->stage[c].measured.signer_id, 32));
		}
		json_object_set_new(root, "measurements", ms ? ms : json_null());
	}
	if (chip_fw_stats(chip_fw(boot_chip(d)), &fw) == 0) {
		json_object_set_new(root, "firewall_locked", json_boolean(fw.locked));
		json_object_set_new(root, "firewall_grants", json_integer((json_int_t)fw.grants));
		json_object_set_new(root, "firewall_refusals",
		                    json_integer((json_int_t)fw.refused_total));
	}
	for (size_t i = 0; chip_bootlog_get(boot_chip(d), i, &e) == 0; i++) {
		json_t *je = json_pack("{s:i, s:s}", "status", (int)e.status, "event", e.event);
		if (!je || json_array_append_new(log, je) != 0)
			break;
	}
	json_object_set_new(root, "boot_log", log);
	{
		struct secmon_stats st;
		if (boot_storage_stats(d, &st) == 0)
			json_object_set_new(
			        root, "storage",
			        json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:i, s:i, s:f, s:i}", "k",
			                  (int)st.params.k, "m", (int)st.params.m, "blocks",
			                  (int)st.blocks, "free_blocks", (int)st.free_blocks,
			                  "objects", (int)st.objects, "bytes_stored",
			                  (json_int_t)st.bytes_stored, "erase_min",
			                  (int)st.erase_min, "erase_max", (int)st.erase_max,
			                  "erase_mean", st.erase_mean, "worn_blocks",
			                  (int)st.worn_blocks));
	}
	return root;
fail:
	json_decref(root);
	json_decref(comps);
	json_decref(log);
	return NULL;
}

/* The RoT's attestation public key X||Y as 128 lowercase hex digits. */
static int dev_attest_key_hex(struct boot_device *d, char hex[ROT_DEVICE_ID_LEN + 1])
{
	uint8_t pub[ROT_PUB_LEN];
	int rc;

	hex[0] = '\0';
	rc = rot_pubkey(boot_rot(d), ROT_KEY_ATTEST, pub);
	if (rc == 0 && pub[0] != 0x04)
		rc = SPH_ERR_MALFORMED;
	if (rc == 0)
		rc = sph_hex_encode(pub + 1, ROT_PUB_LEN - 1, hex, ROT_DEVICE_ID_LEN + 1);
	return rc;
}

/* {"device_id", "attestation_key"} added to j: the device's identity. */
static int dev_add_identity(struct boot_device *d, json_t *j)
{
	char id[ROT_DEVICE_ID_LEN + 1], ak[ROT_DEVICE_ID_LEN + 1];
	int rc = rot_device_id(boot_rot(d), id);

	if (rc == 0)
		rc = dev_attest_key_hex(d, ak);
	if (rc == 0 && (json_object_set_new(j, "device_id", json_string(id)) ||
	                json_object_set_new(j, "attestation_key", json_string(ak))))
		rc = SPH_ERR_NOMEM;
	return rc;
}

/* The mode from a fresh verification of the stored capability file. */
static int dev_add_mode(struct boot_device *d, json_t *st)
{
	struct img_capability c;
	char why[256], reason[448];
	bool dev;
	int rc = boot_capability_get(d, &c, why, sizeof(why));

	if (dev_add_identity(d, st) != 0)
		return SPH_ERR_NOMEM;

	dev = rc == 0 && (c.caps & (1u << IMG_CAP_APP_DEVELOPMENT));
	if (dev)
		snprintf(reason, sizeof(reason), "appDevelopment capability present (tenant %s)",
		         c.tenant);
	else if (rc == SPH_ERR_NOT_FOUND)
		snprintf(reason, sizeof(reason), "no capability, only production-signed images");
	else if (rc == 0)
		snprintf(reason, sizeof(reason),
		         "capability file without appDevelopment, only production-signed images");
	else
		snprintf(reason, sizeof(reason),
		         "stored capability file refused (%s: %s), only production-signed images",
		         sph_strerror(rc), why);
	if (json_object_set_new(st, "mode", json_string(dev ? "development" : "production")) ||
	    json_object_set_new(st, "mode_reason", json_string(reason)) ||
	    json_object_set_new(st, "capabilities", json_integer(rc == 0 ? (json_int_t)c.caps : 0)))
		return SPH_ERR_NOMEM;
	return 0;
}

static void dev_print_status_text(json_t *st)
{
	size_t i, j;
	json_t *c, *s, *e;

	printf("lifecycle: %s, boot count: %" JSON_INTEGER_FORMAT "\n",
	       json_string_value(json_object_get(st, "lifecycle")),
	       json_integer_value(json_object_get(st, "boot_count")));
	printf("device id: %s\n", json_string_value(json_object_get(st, "device_id")));
	printf("attestation key: %s\n", json_string_value(json_object_get(st, "attestation_key")));
	printf("mode: %s: %s\n", json_string_value(json_object_get(st, "mode")),
	       json_string_value(json_object_get(st, "mode_reason")));
	json_array_foreach(json_object_get(st, "components"), i, c)
	{
		printf("%-6s confirmed %s, trial %s (%" JSON_INTEGER_FORMAT
		       " left), security version %" JSON_INTEGER_FORMAT
		       ", counter %" JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(c, "component")),
		       json_string_value(json_object_get(c, "confirmed_slot")),
		       json_string_value(json_object_get(c, "trial_slot")),
		       json_integer_value(json_object_get(c, "trials_left")),
		       json_integer_value(json_object_get(c, "confirmed_security_version")),
		       json_integer_value(json_object_get(c, "rollback_counter")));
		json_array_foreach(json_object_get(c, "slots"), j, s)
		{
			const char *v = json_string_value(json_object_get(s, "version"));
			const char *why = json_string_value(json_object_get(s, "reason"));
			printf("       slot %s: %s%s%s\n",
			       json_string_value(json_object_get(s, "slot")),
			       json_string_value(json_object_get(s, "state")),
			       v     ? " "
			       : why ? ": "
			             : "",
			       v     ? v
			       : why ? why
			             : "");
		}
	}
	if (json_object_get(st, "boot_result"))
		printf("boot: %s\n", json_string_value(json_object_get(st, "boot_result")));
	json_array_foreach(json_object_get(st, "measurements"), i, e) printf(
	        "measured: %s %s security version %" JSON_INTEGER_FORMAT " slot %s digest %s\n",
	        json_string_value(json_object_get(e, "type")),
	        json_string_value(json_object_get(e, "version")),
	        json_integer_value(json_object_get(e, "security_version")),
	        json_string_value(json_object_get(e, "slot")),
	        json_string_value(json_object_get(e, "digest")));
	printf("accumulator: %s\nfirewall: %s\n",
	       json_string_value(json_object_get(st, "accumulator")),
	       json_is_true(json_object_get(st, "firewall_locked")) ? "locked" : "unlocked");
	json_array_foreach(json_object_get(st, "boot_log"), i, e)
	        printf("log: [%" JSON_INTEGER_FORMAT "] %s\n",
	               json_integer_value(json_object_get(e, "status")),
	               json_string_value(json_object_get(e, "event")));
}

static int dev_cmd_status(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	struct boot_report r;
	json_t *st = NULL;
	char *txt = NULL;
	int rc, ret = 1;

	memset(&r, 0, sizeof(r));
	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	if (o->boot) {
		rc = boot_run(d, CHIP_RESET_POWER_ON, &r);
		if (rc != 0 && rc != SPH_ERR_STATE) {
			ret = dev_fail("boot", rc, NULL);
			goto out;
		}
	}
	st = dev_status_json(d, &r);
	if (!st || dev_add_mode(d, st) != 0) {
		ret = dev_fail("status", SPH_ERR_NOMEM, NULL);
		goto out;
	}
	if (o->json) {
		txt = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (!txt) {
			ret = dev_fail("status", SPH_ERR_NOMEM, NULL);
			goto out;
		}
		printf("%s\n", txt);
	} else {
		dev_print_status_text(st);
	}
	ret = 0;
out:
	free(txt);
	json_decref(st);
	boot_close(d);
	return ret;
}

/* The registration record the platform operator uploads
 * (POST /v1/device-registrations, docs/api.md §4.13). */
static int dev_cmd_registration(const struct dev_opts *o)
{
	struct boot_device *d = NULL;
	json_t *j = json_object();
	char *txt = NULL;
	int rc, ret = 1;

	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	rc = j ? dev_add_identity(d, j) : SPH_ERR_NOMEM;
	txt = rc == 0 ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (!txt) {
		ret = dev_fail("registration", rc ? rc : SPH_ERR_NOMEM, NULL);
		goto out;
	}
	printf("%s\n", txt);
	ret = 0;
out:
	free(txt);
	json_decref(j);
	boot_close(d);
	return ret;
}

static void dev_print_capability(const struct img_capability *c)
{
	char id[2 * IMG_CAP_DEVICE_ID_LEN + 1];

	if (sph_hex_encode(c->device_id, sizeof(c->device_id), id, sizeof(id)) != 0)
		id[0] = '\0';
	printf("device id:    %s\ncapabilities:", id);
	for (uint32_t v = IMG_CAP_APP_DEVELOPMENT; v <= IMG_CAP_FIELD_SERVICING; v++)
		if (c->caps & (1u << v))
			printf(" %s", img_cap_name(v));
	printf("\ntenant:       %s\nissued at:    %llu\nexpires:      ", c->tenant,
	       (unsigned long long)c->issued_at);
	if (c->expires)
		printf("%llu\n", (unsigned long long)c->expires);
	else
		printf("never\n");
}

static int dev_cmd_capability(const struct dev_opts *o, const char *sub)
{
	struct boot_device *d = NULL;
	struct img_capability c;
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[256] = "";
	int rc, ret = 1;

	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	if (strcmp(sub, "install") == 0) {
		rc = img_read_file(o->pkg, IMG_CAP_MAX_FILE, &buf, &len);
		if (rc != 0) {
			ret = dev_fail("capability install", rc, o->pkg);
			goto out;
		}
		rc = boot_capability_install(d, buf, len, &c, why, sizeof(why));
		if (rc != 0) {
			ret = dev_fail("capability install: refused", rc, why);
			goto out;
		}
		printf("installed capability file %s/%s\n", o->dir, BOOT_CAPABILITY_FILE);
	} else {
		rc = boot_capability_get(d, &c, why, sizeof(why));
		if (rc != 0) {
			ret = dev_fail("capability", rc, why);
			goto out;
		}
		printf("capability file %s/%s: verified\n", o->dir, BOOT_CAPABILITY_FILE);
	}
	dev_print_capability(&c);
	ret = 0;
out:
	free(buf);
	boot_close(d);
	return ret;
}

/* ---- run: the agent's daemon -------------------------------------------------------- */

static volatile sig_atomic_t dev_stop;

static void dev_on_signal(int sig)
{
	(void)sig;
	dev_stop = 1;
}

/* Progress lines: at the start, every quarter and the end of a download. */
struct dev_progress {
	char image[AGENT_IMAGE_ID_MAX + 1];
	int last; /* quarter printed last, -1: none */
};

static int dev_progress(void *ctx, const struct agent_update *u, uint64_t have, uint64_t total)
{
	struct dev_progress *p = ctx;
	int q = total ? (int)(have * 4 / total) : 4;

	if (strcmp(p->image, u->image_id) != 0) {
		snprintf(p->image, sizeof(p->image), "%s", u->image_id);
		p->last = -1;
	}
	if (q != p->last) {
		p->last = q;
		printf("download %s %s %s: %llu of %llu bytes (%d%%)\n", u->type, u->version,
		       u->image_id, (unsigned long long)have, (unsigned long long)total,
		       total ? (int)(have * 100 / total) : 100);
		fflush(stdout);
	}
	return 0;
}

static void dev_note(void *ctx, const char *line)
{
	(void)ctx;
	printf("agent: %s\n", line);
	fflush(stdout);
}

static void dev_event(void *ctx, const char *event, const struct agent_daemon_status *st,
                      const char *text)
{
	(void)ctx;
	(void)st;
	printf("agent: %s: %s\n", event, text);
	fflush(stdout);
}

/* A decimal number in [lo, hi]. */
static int dev_number(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return SPH_ERR_INVALID_ARG;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return SPH_ERR_INVALID_ARG;
	*out = (unsigned)v;
	return 0;
}

/* A "Name: N kB" line of a /proc/self file, in KiB (0 if absent). */
static long dev_proc_kib(const char *file, const char *name)
{
	FILE *f = fopen(file, "r");
	char line[256];
	size_t n = strlen(name);
	long kib = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			kib += strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static int dev_cmd_run(const struct dev_opts *o)
{
	struct agent_daemon_config cfg;
	struct agent_daemon_status st;
	struct dev_progress prog = {.last = -1};
	struct sigaction sa;
	struct boot_device *d = NULL;
	int rc, ret = 1;

	if (!o->service || !o->ca)
		return dev_usage_error("run needs --service URL and --ca FILE");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dev_on_signal; /* no SA_RESTART: waits end at once */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		return dev_fail("run", SPH_ERR_IO, "signal handlers");
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return dev_fail("run", SPH_ERR_NOMEM, "libcurl");
	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.agent.service_url = o->service;
	cfg.agent.ca_file = o->ca;
	cfg.agent.progress = dev_progress;
	cfg.agent.progress_ctx = &prog;
	cfg.agent.note = dev_note;
	cfg.period_s = o->period;
	cfg.wait_s = o->wait;
	cfg.max_checkins = o->max_checkins;
	cfg.once = o->once;
	cfg.stop = &dev_stop;
	cfg.event = dev_event;
	rc = agent_daemon_run(d, &cfg, &st);
	printf("agent: %u check-in(s), %u installed, %s%s%s\n", st.checkins, st.installed,
	       st.up_to_date ? "up to date" : "not up to date", st.last_error[0] ? ": " : "",
	       st.last_error);
	/* memory: the peak resident set counts the shared libraries' pages; a
	 * device process's own cost is its private memory */
	printf("agent: memory: peak RSS %.1f MiB, private %.1f MiB (shared library pages "
	       "excluded)\n",
	       (double)dev_proc_kib("/proc/self/status", "VmHWM") / 1024.0,
	       (double)(dev_proc_kib("/proc/self/smaps_rollup", "Private_Clean") +
	                dev_proc_kib("/proc/self/smaps_rollup", "Private_Dirty")) /
	               1024.0);
	if (rc != 0) {
		ret = dev_fail("run", rc, NULL);
		goto out;
	}
	ret = 0;
out:
	boot_close(d);
	curl_global_cleanup();
	return ret;
}

/* The certificate the agent keeps, and its chain's first certificate (the
 * device CA), or a reason. Returns 0 or a status. */
static int dev_load_agent_cert(const char *dir, X509 **cert, STACK_OF(X509) * *chain, char *why,
                               size_t cap)
{
	char path[4096];
	FILE *f = NULL;
	X509 *x = NULL;
	int rc = SPH_ERR_NOT_FOUND;

	*cert = NULL;
	*chain = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_CERT_FILE);
	if (!(f = fopen(path, "r")) || !(*cert = PEM_read_X509(f, NULL, NULL, NULL))) {
		snprintf(why, cap,
		         "%.400s: no certificate (run the agent first: sphere-device run)", path);
		goto out;
	}
	fclose(f);
	f = NULL;
	rc = SPH_ERR_STATE;
	if (X509_cmp_current_time(X509_get0_notAfter(*cert)) <= 0) {
		snprintf(why, cap, "%.400s: the certificate has expired (the agent renews it)",
		         path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_CHAIN_FILE);
	rc = SPH_ERR_NOMEM;
	if (!(*chain = sk_X509_new_null()))
		goto out;
	if ((f = fopen(path, "r")) && (x = PEM_read_X509(f, NULL, NULL, NULL))) {
		if (sk_X509_push(*chain, x) <= 0)
			goto out;
		x = NULL;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	X509_free(x);
	if (rc) {
		X509_free(*cert);
		*cert = NULL;
		sk_X509_pop_free(*chain, X509_free);
		*chain = NULL;
	}
	return rc;
}

static int dev_cmd_publish(const struct dev_opts *o)
{
	struct agent_mqtt_config cfg;
	struct agent_mqtt *m = NULL;
	struct boot_device *d = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *cert = NULL;
	char host[256], why[600], id[ROT_DEVICE_ID_LEN + 1];
	const char *colon;
	unsigned port = 0;
	int rc, ret = 1;

	if (!o->broker || !o->broker_ca || !o->topic || !o->message)
		return dev_usage_error(
		        "publish needs --broker, --broker-ca, --topic and --message");
	colon = strrchr(o->broker, ':');
	if (!colon || colon == o->broker || (size_t)(colon - o->broker) >= sizeof(host) ||
	    dev_number(colon + 1, 1, 65535, &port) != 0)
		return dev_usage_error("--broker: HOST:PORT");
	memcpy(host, o->broker, (size_t)(colon - o->broker));
	host[colon - o->broker] = '\0';
	rc = dev_load_agent_cert(o->dir, &cert, &chain, why, sizeof(why));
	if (rc != 0)
		return dev_fail("publish", rc, why);
	rc = boot_open(o->dir, NULL, &d);
	if (rc != 0) {
		ret = dev_fail("open device", rc, o->dir);
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.host = host;
	cfg.port = (uint16_t)port;
	cfg.ca_file = o->broker_ca;
	cfg.rot = boot_rot(d);
	cfg.cert = cert;
	cfg.chain = chain;
	rc = agent_mqtt_connect(&cfg, &m);
	if (rc != 0) {
		ret = dev_fail("publish: connect", rc, o->broker);
		goto out;
	}
	rc = agent_mqtt_publish(m, o->topic, o->message, strlen(o->message));
	if (rc != 0) {
		ret = dev_fail("publish", rc, o->topic);
		goto out;
	}
	if (rot_device_id(boot_rot(d), id) == 0)
		printf("published %zu bytes to devices/%.16s.../%s\n", strlen(o->message), id,
		       o->topic);
	ret = 0;
out:
	agent_mqtt_close(m);
	boot_close(d);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	return ret;
}

static int dev_cmd_check(const struct dev_opts *o)
{
	char reply[AGENT_REASON_MAX];
	int rc = agent_local_request(o->dir, reply, sizeof(reply));

	if (rc != 0)
		return dev_fail("check-for-updates", rc, reply);
	printf("%s\n", reply);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {"lifecycle", required_argument, NULL, 'l'},
	                                     {"root-hash", required_argument, NULL, 'r'},
	                                     {"root-cert", required_argument, NULL, 'c'},
	                                     {"tenant-root-cert", required_argument, NULL, 'T'},
	                                     {"faults", required_argument, NULL, 'f'},
	                                     {"boot", no_argument, NULL, 'b'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"service", required_argument, NULL, 'S'},
	                                     {"ca", required_argument, NULL, 'A'},
	                                     {"period", required_argument, NULL, 'P'},
	                                     {"wait-seconds", required_argument, NULL, 'W'},
	                                     {"max-checkins", required_argument, NULL, 'M'},
	                                     {"once", no_argument, NULL, 'O'},
	                                     {"broker", required_argument, NULL, 'B'},
	                                     {"broker-ca", required_argument, NULL, 'K'},
	                                     {"topic", required_argument, NULL, 'Q'},
	                                     {"message", required_argument, NULL, 'm'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct dev_opts o = {.lifecycle = ROT_LC_DEVELOPMENT};
	const char *cmd, *sub = NULL;
	int ch;

	if (argc < 2)
		return dev_usage_error("a command is required");
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(dev_usage, stdout);
		return 0;
	}
	optind = 2;
	if (strcmp(cmd, "capability") == 0) {
		if (argc < 3 || (strcmp(argv[2], "install") != 0 && strcmp(argv[2], "show") != 0))
			return dev_usage_error("capability: install or show");
		sub = argv[2];
		optind = 3;
	}
	if (strcmp(cmd, "storage") == 0) {
		if (argc < 3 || strcmp(argv[2], "check") != 0)
			return dev_usage_error("storage: check");
		sub = argv[2];
		optind = 3;
	}
	while ((ch = getopt_long(argc, argv, "d:l:r:c:f:bjh", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o.dir = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "development") == 0)
				o.lifecycle = ROT_LC_DEVELOPMENT;
			else if (strcmp(optarg, "production") == 0)
				o.lifecycle = ROT_LC_PRODUCTION;
			else
				return dev_usage_error("--lifecycle: development or production");
			break;
		case 'r':
			o.root_hash = optarg;
			break;
		case 'c':
			o.root_cert = optarg;
			break;
		case 'T':
			o.tenant_root = optarg;
			break;
		case 'f':
			o.faults = optarg;
			break;
		case 'b':
			o.boot = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'S':
			o.service = optarg;
			break;
		case 'A':
			o.ca = optarg;
			break;
		case 'P':
			if (dev_number(optarg, 1, AGENT_PERIOD_MAX_S, &o.period) != 0)
				return dev_usage_error("--period: 1..%u seconds",
				                       AGENT_PERIOD_MAX_S);
			break;
		case 'W':
			if (dev_number(optarg, 1, AGENT_WAIT_MAX_S, &o.wait) != 0)
				return dev_usage_error("--wait-seconds: 1..%u", AGENT_WAIT_MAX_S);
			break;
		case 'M':
			if (dev_number(optarg, 1, 1000000, &o.max_checkins) != 0)
				return dev_usage_error("--max-checkins: a positive number");
			break;
		case 'O':
			o.once = true;
			break;
		case 'B':
			o.broker = optarg;
			break;
		case 'K':
			o.broker_ca = optarg;
			break;
		case 'Q':
			o.topic = optarg;
			break;
		case 'm':
			o.message = optarg;
			break;
		case 'h':
			fputs(dev_usage, stdout);
			return 0;
		default:
			return dev_usage_error("bad option");
		}
	}
	if (!o.dir)
		return dev_usage_error("--dir is required");
	if (sub && strcmp(sub, "install") == 0) {
		if (optind != argc - 1)
			return dev_usage_error("capability install takes exactly one file");
		o.pkg = argv[optind];
		return dev_cmd_capability(&o, sub);
	}
	if (strcmp(cmd, "install") == 0) {
		if (optind != argc - 1)
			return dev_usage_error("install takes exactly one package");
		o.pkg = argv[optind];
		return dev_cmd_install(&o);
	}
	if (optind != argc)
		return dev_usage_error("unexpected argument '%s'", argv[optind]);
	if (strcmp(cmd, "provision") == 0)
		return dev_cmd_provision(&o);
	if (strcmp(cmd, "boot") == 0)
		return dev_cmd_boot(&o);
	if (strcmp(cmd, "confirm") == 0)
		return dev_cmd_confirm(&o);
	if (strcmp(cmd, "status") == 0)
		return dev_cmd_status(&o);
	if (strcmp(cmd, "storage") == 0)
		return dev_cmd_storage(&o);
	if (strcmp(cmd, "registration") == 0)
		return dev_cmd_registration(&o);
	if (strcmp(cmd, "run") == 0)
		return dev_cmd_run(&o);
	if (strcmp(cmd, "check-for-updates") == 0)
		return dev_cmd_check(&o);
	if (strcmp(cmd, "publish") == 0)
		return dev_cmd_publish(&o);
	if (sub)
		return dev_cmd_capability(&o, sub);
	return dev_usage_error("unknown command '%s'", cmd);
}
