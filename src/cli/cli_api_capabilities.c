/*
 * cli api capabilities: device capability files from the security service
 * and device modes (docs/api.md §4.14): `sphere device capability download`,
 * `sphere device enable-development`, `sphere device enable-cloud-test`.
 * (`sphere device capability create` signs locally: cli_device.c.)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_api.h"
#include "image/image.h"

#define CLI_CAP_HEX 128 /* hex digits of a device id */

struct cli_cap_opts {
	const char *device, *caps, *out, *tenant;
	bool json;
};

static const char cap_usage[] =
        "usage: sphere device capability download --device-id HEX --capability LIST --out FILE\n"
        "       sphere device enable-development --device-id HEX [--out FILE]\n"
        "       sphere device enable-cloud-test --device-id HEX\n"
        "\n"
        "The security service signs capability files with the tenant's capability\n"
        "signer (under the tenant image root devices install as their tenant root;\n"
        "docs/api.md §4.14). Install one on the device with 'sphere-device\n"
        "capability install FILE'. Needs a Contributor or Administrator.\n"
        "\n"
        "  capability download  an appDevelopment and/or fieldServicing file\n"
        "  enable-development   development mode: the device sideloads applications\n"
        "                       (an appDevelopment file, written to --out), the\n"
        "                       service sends it OS updates only\n"
        "  enable-cloud-test    cloud-test mode: applications from deployments again;\n"
        "                       remove the device's capability file\n"
        "\n"
        "options:\n"
        "  -i, --device-id HEX   the device id (128 hex digits)\n"
        "  -C, --capability LIST appDevelopment,fieldServicing (download)\n"
        "  -O, --out FILE        where the capability file goes (never over a file)\n"
        "  -t, --tenant ID       the tenant (default: the selected one)\n"
        "  -o, --output FMT      table (default) or json\n"
        "  -h, --help            show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

/* Parses the options after the subcommand. Returns 0, -1 after --help, or a
 * usage exit status. */
static int cli_cap_opts(const char *cmd, int argc, char **argv, struct cli_cap_opts *o)
{
	static const struct option opts[] = {{"device-id", required_argument, NULL, 'i'},
	                                     {"capability", required_argument, NULL, 'C'},
	                                     {"out", required_argument, NULL, 'O'},
	                                     {"tenant", required_argument, NULL, 't'},
	                                     {"output", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "i:C:O:t:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->device = optarg;
			break;
		case 'C':
			o->caps = optarg;
			break;
		case 'O':
			o->out = optarg;
			break;
		case 't':
			o->tenant = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, cmd, cap_usage, argv, &o->json);
			if (rc != 0)
				return rc;
			break;
		}
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->device || strlen(o->device) != CLI_CAP_HEX ||
	    strspn(o->device, "0123456789abcdef") != CLI_CAP_HEX)
		return cli_usage(cmd, "--device-id: 128 lowercase hex digits is required");
	return 0;
}

/* The capabilities as a JSON array of names, or NULL after a usage error. */
static json_t *cli_cap_names(const char *list)
{
	uint32_t mask = 0;
	json_t *a;

	if (img_cap_parse_names(list, &mask) != 0)
		return NULL;
	a = json_array();
	for (uint32_t c = IMG_CAP_APP_DEVELOPMENT; a && c <= IMG_CAP_FIELD_SERVICING; c++)
		if (mask & (1u << c))
			json_array_append_new(a, json_string(img_cap_name(c)));
	return a;
}

/* POSTs body to path and writes the capability file the service returns. */
static int cli_cap_fetch(const struct cli_session *s, const char *path, json_t *body,
                         const char *out)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	long st = cli_call_raw_body(s, "POST", path, body, &raw, &len);
	int rc = CLI_EXIT_FAIL, wrc;

	if (st < 200 || st >= 300)
		goto out;
	if (!raw || len == 0) {
		cli_fail("the service sent an empty reply");
		goto out;
	}
	wrc = img_write_file(out, raw, len, 0644, false);
	if (wrc) {
		cli_fail("%s: %s", out,
		         wrc == SPH_ERR_STATE ? "exists (not replaced)" : sph_strerror(wrc));
		goto out;
	}
	printf("capability file: %s (%zu bytes)\n", out, len);
	printf("install it on the device: sphere-device capability install %s\n", out);
	rc = CLI_EXIT_OK;
out:
	free(raw);
	return rc;
}

int cli_device_capability_download(int argc, char **argv)
{
	static const char cmd[] = "sphere device capability download";
	struct cli_session s;
	struct cli_cap_opts o;
	json_t *names = NULL;
	char path[512];
	const char *t;
	int rc = cli_cap_opts(cmd, argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (!o.caps || !o.out)
		return cli_usage(cmd, "--capability and --out are required");
	names = cli_cap_names(o.caps);
	if (!names)
		return cli_usage(cmd, "--capability: a comma-separated list of appDevelopment "
		                      "and fieldServicing");
	if (cli_session_load(&s) != 0) {
		json_decref(names);
		return CLI_EXIT_FAIL;
	}
	rc = CLI_EXIT_FAIL;
	t = o.tenant ? o.tenant : s.tenant;
	if (!t[0]) {
		cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/capabilities", t, o.device);
	{
		json_t *body = json_pack("{s:O}", "capabilities", names);
		rc = body ? cli_cap_fetch(&s, path, body, o.out) : cli_fail("out of memory");
		json_decref(body);
	}
out:
	json_decref(names);
	cli_session_wipe(&s);
	return rc;
}

int cli_device_mode(int argc, char **argv)
{
	static const char *const cols[] = {"device_id", "mode", "message", NULL};
	const char *sub = argv[0];
	bool dev = strcmp(sub, "enable-development") == 0;
	char cmd[64], path[512];
	struct cli_session s;
	struct cli_cap_opts o;
	json_t *reply = NULL;
	const char *t;
	long st;
	int rc;

	snprintf(cmd, sizeof(cmd), "sphere device %s", sub);
	rc = cli_cap_opts(cmd, argc, argv, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (!dev && o.out)
		return cli_usage(cmd, "--out is for enable-development only");
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	t = o.tenant ? o.tenant : s.tenant;
	if (!t[0]) {
		cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/%s", t, o.device, sub);
	if (dev) {
		char def[160];
		if (!o.out) {
			snprintf(def, sizeof(def), "%.16s.capability", o.device);
			o.out = def;
		}
		rc = cli_cap_fetch(&s, path, NULL, o.out);
		if (rc == CLI_EXIT_OK)
			printf("device %s: development mode (applications are sideloaded; the "
			       "service sends OS updates only)\n",
			       o.device);
		goto out;
	}
	st = cli_call(&s, "POST", path, NULL, &reply);
	if (st >= 200 && st < 300) {
		rc = CLI_EXIT_OK;
		if (reply)
			cli_print(reply, o.json, NULL, cols);
	}
	json_decref(reply);
out:
	cli_session_wipe(&s);
	return rc;
}
