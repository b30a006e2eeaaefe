/*
 * cli api registration: device registrations in the security service
 * (docs/api.md §4.13), for the platform operator: `sphere device register`
 * (from two hex values, or the JSON record `sphere-device registration`
 * prints, uploaded as is) and `sphere device registration show`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_api.h"

#define CLI_REG_HEX      128       /* hex digits of a device id or an attestation key */
#define CLI_REG_FILE_MAX (1 << 16) /* bytes of a registration record file */

struct cli_reg_opts {
	const char *device, *key, *file;
	bool json;
};

static const char reg_usage[] =
        "usage: sphere device register --device-id HEX --attestation-key HEX\n"
        "       sphere device register --file REG.json\n"
        "       sphere device registration show --device-id HEX\n"
        "\n"
        "The platform operator's records of which RoT attestation key belongs to\n"
        "which device (docs/api.md §4.13), made at provisioning. REG.json is what\n"
        "'sphere-device registration' prints: {\"device_id\", \"attestation_key\"},\n"
        "uploaded as is. A device is registered once. Needs the operator's token.\n"
        "\n"
        "options:\n"
        "  -i, --device-id HEX        the device id (128 hex digits: identity X||Y)\n"
        "  -a, --attestation-key HEX  the RoT attestation public key (128 hex digits)\n"
        "  -f, --file REG.json        a registration record\n"
        "  -o, --output FMT           table (default) or json\n"
        "  -h, --help                 show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

/* Parses the options after the subcommand (argv[0]). Returns 0, -1 after
 * --help, or a usage exit status. */
static int cli_reg_opts(const char *cmd, int argc, char **argv, struct cli_reg_opts *o)
{
	static const struct option opts[] = {{"device-id", required_argument, NULL, 'i'},
	                                     {"attestation-key", required_argument, NULL, 'a'},
	                                     {"file", required_argument, NULL, 'f'},
	                                     {"output", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "i:a:f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->device = optarg;
			break;
		case 'a':
			o->key = optarg;
			break;
		case 'f':
			o->file = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, cmd, reg_usage, argv, &o->json);
			if (rc != 0)
				return rc;
			break;
		}
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* 128 lowercase hex digits (checked before an id goes into a URL). */
static bool cli_reg_hex_ok(const char *s)
{
	return s && strlen(s) == CLI_REG_HEX && strspn(s, "0123456789abcdef") == CLI_REG_HEX;
}

/* The request body: the record file as is, or the two values. NULL after
 * printing why. */
static json_t *cli_reg_body(const struct cli_reg_opts *o)
{
	json_error_t err;
	json_t *j;

	if (!o->file)
		return json_pack("{s:s, s:s}", "device_id", o->device, "attestation_key", o->key);
	j = json_load_file(o->file, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		cli_fail("%s: not JSON (%s, line %d)", o->file, err.text, err.line);
		return NULL;
	}
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "device_id")) ||
	    !json_is_string(json_object_get(j, "attestation_key"))) {
		cli_fail("%s: not a registration record {\"device_id\", \"attestation_key\"}",
		         o->file);
		json_decref(j);
		return NULL;
	}
	return j;
}

static int cli_reg_run(const struct cli_reg_opts *o, const char *method, const char *path,
                       json_t *body)
{
	static const char *const cols[] = {"device_id", "attestation_key", "registered",
	                                   "registered_by", NULL};
	struct cli_session s;
	json_t *reply = NULL;
	long st;
	int rc = CLI_EXIT_FAIL;

	if (cli_session_load(&s) != 0)
		goto out;
	st = cli_call(&s, method, path, body, &reply);
	if (st >= 200 && st < 300 && reply) {
		cli_print(reply, o->json, NULL, cols);
		rc = CLI_EXIT_OK;
	}
	cli_session_wipe(&s);
out:
	json_decref(reply);
	json_decref(body);
	return rc;
}

int cli_device_register(int argc, char **argv)
{
	static const char cmd[] = "sphere device register";
	struct cli_reg_opts o;
	json_t *body;
	int rc = cli_reg_opts(cmd, argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (o.file ? o.device || o.key : !o.device || !o.key)
		return cli_usage(cmd, "--file, or --device-id and --attestation-key");
	if (!o.file && !cli_reg_hex_ok(o.device))
		return cli_usage(cmd, "--device-id: 128 lowercase hex digits");
	body = cli_reg_body(&o);
	if (!body)
		return CLI_EXIT_FAIL;
	return cli_reg_run(&o, "POST", "/v1/device-registrations", body);
}

int cli_device_registration(int argc, char **argv)
{
	static const char cmd[] = "sphere device registration";
	char path[256];
	struct cli_reg_opts o;
	const char *sub = argc > 1 ? argv[1] : NULL;
	int rc;

	if (!sub || sub[0] == '-') {
		if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h")))
			return fputs(reg_usage, stdout), CLI_EXIT_OK;
		return cli_usage(cmd, "show");
	}
	if (strcmp(sub, "show") != 0)
		return cli_usage(cmd, "unknown command '%s'", sub);
	rc = cli_reg_opts("sphere device registration show", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (o.file || o.key || !cli_reg_hex_ok(o.device))
		return cli_usage(cmd, "show --device-id HEX (128 lowercase hex digits)");
	snprintf(path, sizeof(path), "/v1/device-registrations/%s", o.device);
	return cli_reg_run(&o, "GET", path, NULL);
}
