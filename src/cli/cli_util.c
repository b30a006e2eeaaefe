/*
 * cli: the top-level command dispatch and the helpers every command uses.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cli.h"
#include "cli_api.h"
#include "common/common.h"

#ifndef SPHERE_VERSION
#define SPHERE_VERSION "unknown"
#endif

static const char cli_usage_text[] =
        "usage: sphere [--help] [--version] COMMAND [ARGS]\n"
        "\n"
        "The Sphere operator and developer tool.\n"
        "\n"
        "commands:\n"
        "  image-package   create, inspect and verify signed image packages, and\n"
        "                  make the keys and certificates that sign them\n"
        "  device          devices in the security service (claim, list, show,\n"
        "                  release, update) and device capability files (unlock\n"
        "                  development features on one device)\n"
        "  login           connect to a security service with an API token\n"
        "  tenant          list, create, show and select tenants\n"
        "  role            list, add and remove users' roles in a tenant\n"
        "  product         create, list and show products (each with its device\n"
        "                  groups)\n"
        "  device-group    create, update, list and show device groups (OS feed\n"
        "                  and update policy)\n"
        "  ca-certificate  the tenant CA: list, download a chain or the trust\n"
        "                  bundle, create a successor, activate or revoke (rollover)\n"
        "  image           upload (re-signed by the service), list, show and\n"
        "                  download the tenant's application images\n"
        "  deployment      target images at a device group; list its history\n"
        "                  ('device-group target' shows what its devices should run)\n"
        "  os-image        upload a platform-signed OS image (operator)\n"
        "  os-feed         publish OS images to Retail or RetailEval (operator); list\n"
        "\n"
        "Run 'sphere COMMAND --help' for a command's options.\n"
        "\n"
        "options:\n"
        "  -h, --help      show this help\n"
        "  -V, --version   show the version\n"
        "\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("sphere: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("sphere: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end = NULL;
	unsigned long long x;

	if (!s || s[0] < '0' || s[0] > '9')
		return -1; /* no sign, no white space */
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || x > max)
		return -1;
	*v = x;
	return 0;
}

int cli_parse_uuid(const char *s, uint8_t uuid[16])
{
	/* hex digits per group, and where each group's bytes go */
	static const size_t groups[5] = {8, 4, 4, 4, 12};
	size_t off = 0, out = 0;

	if (!s || strlen(s) != 36)
		return -1;
	for (size_t g = 0; g < 5; g++) {
		char hex[13];
		memcpy(hex, s + off, groups[g]);
		hex[groups[g]] = '\0';
		if (sph_hex_decode(hex, uuid + out, groups[g] / 2) != 0)
			return -1;
		off += groups[g];
		out += groups[g] / 2;
		if (g < 4 && s[off++] != '-')
			return -1;
	}
	return 0;
}

void cli_format_uuid(const uint8_t uuid[16], char out[37])
{
	char hex[33];
	size_t o = 0;

	if (sph_hex_encode(uuid, 16, hex, sizeof(hex)) != 0) {
		out[0] = '\0';
		return;
	}
	for (size_t i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[o++] = '-';
		out[o++] = hex[i];
	}
	out[o] = '\0';
}

int cli_random_uuid(uint8_t uuid[16])
{
	if (RAND_bytes(uuid, 16) != 1)
		return -1;
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	return 0;
}

int cli_main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	optind = 0; /* glibc: full reinitialisation */
	/* '+': stop at the command, whose options are its own. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(cli_usage_text, stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("sphere %s\n", SPHERE_VERSION);
			return CLI_EXIT_OK;
		default:
			return cli_usage("sphere", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage("sphere", "missing command");
	if (strcmp(argv[optind], "image-package") == 0)
		return cli_image_package(argc - optind, argv + optind);
	if (strcmp(argv[optind], "device") == 0)
		return cli_device(argc - optind, argv + optind);
	if (strcmp(argv[optind], "login") == 0)
		return cli_login(argc - optind, argv + optind);
	if (strcmp(argv[optind], "tenant") == 0)
		return cli_tenant(argc - optind, argv + optind);
	if (strcmp(argv[optind], "role") == 0)
		return cli_role(argc - optind, argv + optind);
	if (strcmp(argv[optind], "product") == 0)
		return cli_product(argc - optind, argv + optind);
	if (strcmp(argv[optind], "device-group") == 0 && optind + 1 < argc &&
	    strcmp(argv[optind + 1], "target") == 0)
		return cli_group_target(argc - optind - 1, argv + optind + 1);
	if (strcmp(argv[optind], "device-group") == 0)
		return cli_device_group(argc - optind, argv + optind);
	if (strcmp(argv[optind], "ca-certificate") == 0)
		return cli_ca_certificate(argc - optind, argv + optind);
	if (strcmp(argv[optind], "image") == 0)
		return cli_image_api(argc - optind, argv + optind);
	if (strcmp(argv[optind], "deployment") == 0)
		return cli_deployment(argc - optind, argv + optind);
	if (strcmp(argv[optind], "os-feed") == 0)
		return cli_os_feed(argc - optind, argv + optind);
	if (strcmp(argv[optind], "os-image") == 0)
		return cli_os_image(argc - optind, argv + optind);
	return cli_usage("sphere", "unknown command '%s'", argv[optind]);
}
