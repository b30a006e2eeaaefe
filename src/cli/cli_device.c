/*
 * cli device: device capability files (docs/formats.md §8): create (sign one
 * for a device id) and show.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "cli.h"
#include "cli_api.h"
#include "common/common.h"
#include "image/image.h"

#define CAP_DAYS_DEFAULT 90
#define CAP_DAYS_MAX     3650
#define DEVICE_ID_HEX    (2 * IMG_CAP_DEVICE_ID_LEN)

static const char device_usage[] =
        "usage: sphere device COMMAND [OPTIONS]\n"
        "\n"
        "Device-specific objects. A capability file is a COSE_Sign1 by a tenant\n"
        "capability signer, bound to one device id, that unlocks development\n"
        "features on that device only. Format: docs/formats.md section 8.\n"
        "\n"
        "commands:\n"
        "  claim | list | show | release   the tenant's devices in the security\n"
        "                      service (see 'sphere device claim --help')\n"
        "  update              move a device into a device group:\n"
        "                      --device-id HEX --device-group ID\n"
        "  register            register a device's RoT attestation key (platform\n"
        "                      operator): --device-id HEX --attestation-key HEX,\n"
        "                      or --file REG.json (what 'sphere-device\n"
        "                      registration' prints)\n"
        "  registration show   a device's registration: --device-id HEX (operator)\n"
        "  capability create   sign a capability file for one device\n"
        "  capability show     print what a capability file says (not verified)\n"
        "  capability download a capability file from the security service\n"
        "  enable-development  development mode (sideloading; see --help)\n"
        "  enable-cloud-test   cloud-test mode (applications from deployments)\n"
        "\n"
        "Run 'sphere device capability COMMAND --help' for a command's options.\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

static const char create_usage[] =
        "usage: sphere device capability create --device-id HEX --capability LIST\n"
        "           --key KEY.pem --cert CERT.pem [--chain CA.pem] [--days N | --no-expiry]\n"
        "           [--tenant NAME] --out FILE\n"
        "\n"
        "Signs a capability file for the device whose id (128 hex digits: its\n"
        "identity public key X || Y, as 'sphere-device status' prints it) is given.\n"
        "LIST is appDevelopment, fieldServicing or both, comma-separated:\n"
        "  appDevelopment    accept developer-signed applications, sideloading and\n"
        "                    debugging\n"
        "  fieldServicing    field servicing\n"
        "The signer must be a capability signer ('sphere image-package keygen\n"
        "--role capability-signer') issued by the tenant root the device trusts.\n"
        "\n"
        "options:\n"
        "  -i, --device-id HEX     the device id (required)\n"
        "  -C, --capability LIST   the capabilities (required)\n"
        "  -k, --key FILE          the capability signer's private key (required)\n"
        "  -c, --cert FILE         its certificate (required; more certificates in\n"
        "                          the file are its chain)\n"
        "  -a, --chain FILE        certificates above it (e.g. the tenant root, which a\n"
        "                          device trusting only the root hash needs)\n"
        "  -d, --days N            valid from now for N days (1..3650, default 90)\n"
        "  -N, --no-expiry         never expires\n"
        "  -t, --tenant NAME       the tenant name recorded (1..64 printable ASCII;\n"
        "                          default: the issuer's common name)\n"
        "  -o, --out FILE          where to write the file (required)\n"
        "  -h, --help              show this help\n";

static const char show_usage[] =
        "usage: sphere device capability show FILE [--json]\n"
        "\n"
        "Prints what a capability file says: device id, capabilities, validity,\n"
        "tenant, signer. It checks the file's structure but NOT the signature or\n"
        "who signed it: a device verifies it on 'sphere-device capability install'.\n"
        "\n"
        "options:\n"
        "  -j, --json   print JSON instead of text\n"
        "  -h, --help   show this help\n";

static void getopt_reset(void)
{
	opterr = 0;
	optind = 0;
}

static int bad_option(const char *cmd, char **argv)
{
	return cli_usage(cmd, "unknown option or missing argument '%s'", argv[optind - 1]);
}

static const char *file_error(int rc)
{
	switch (rc) {
	case SPH_ERR_NOT_FOUND:
		return "no such file";
	case SPH_ERR_TOO_LARGE:
		return "file too large";
	case SPH_ERR_IO:
		return "cannot read it (not a regular file, or an I/O error)";
	case SPH_ERR_MALFORMED:
		return "not valid PEM of the expected kind";
	case SPH_ERR_UNSUPPORTED:
		return "not an ECDSA P-256 key";
	}
	return sph_strerror(rc);
}

/* The issuer's common name if it is valid tenant text; else "tenant". */
static void default_tenant(X509 *leaf, char out[IMG_CAP_TENANT_MAX + 1])
{
	char cn[IMG_CAP_TENANT_MAX + 2];
	int n = X509_NAME_get_text_by_NID(X509_get_issuer_name(leaf), NID_commonName, cn,
	                                  (int)sizeof(cn));

	if (n > 0 && (size_t)n <= IMG_CAP_TENANT_MAX &&
	    sph_text_ok((const uint8_t *)cn, (size_t)n, IMG_CAP_TENANT_MAX))
		memcpy(out, cn, (size_t)n + 1);
	else
		snprintf(out, IMG_CAP_TENANT_MAX + 1, "tenant");
}

struct create_opts {
	const char *device_id, *caps, *key, *cert, *chain, *tenant, *out;
	uint64_t days;
	bool no_expiry;
};

static int create(const struct create_opts *o, struct img_capability *c)
{
	STACK_OF(X509) *certs = NULL, *extra = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	enum img_role role = IMG_ROLE_NONE;
	uint8_t *buf = NULL;
	size_t len = 0;
	time_t now = time(NULL);
	int rc = CLI_EXIT_FAIL, st;

	if ((st = img_load_key(o->key, &key))) {
		cli_fail("%s: %s", o->key, file_error(st));
		goto out;
	}
	if ((st = img_load_certs(o->cert, &certs))) {
		cli_fail("%s: %s", o->cert, file_error(st));
		goto out;
	}
	leaf = sk_X509_shift(certs);
	if (o->chain) {
		if ((st = img_load_certs(o->chain, &extra))) {
			cli_fail("%s: %s", o->chain, file_error(st));
			goto out;
		}
		while (sk_X509_num(extra) > 0) {
			X509 *x = sk_X509_shift(extra);
			if (!sk_X509_push(certs, x)) {
				X509_free(x);
				cli_fail("out of memory");
				goto out;
			}
		}
	}
	if (sk_X509_num(certs) + 1 > IMG_MAX_CHAIN) {
		cli_fail("the signer's chain has more than %d certificates", IMG_MAX_CHAIN);
		goto out;
	}
	if (img_cert_role(leaf, &role) != 0 || role != IMG_ROLE_CAPABILITY) {
		cli_fail("%s: not a capability signer certificate (its role is %s)", o->cert,
		         img_role_name(role));
		goto out;
	}
	if (now < 0) {
		cli_fail("no current time");
		goto out;
	}
	c->issued_at = (uint64_t)now;
	c->expires = o->no_expiry ? 0 : c->issued_at + o->days * 86400u;
	if (!o->tenant)
		default_tenant(leaf, c->tenant);
	st = img_cap_pack(c, key, leaf, sk_X509_num(certs) ? certs : NULL, &buf, &len);
	if (st) {
		cli_fail("create: %s", st == SPH_ERR_INVALID_ARG
		                               ? "the key is not the certificate's key"
		                               : sph_strerror(st));
		goto out;
	}
	if ((st = img_write_file(o->out, buf, len, 0644, true))) {
		cli_fail("%s: cannot write it: %s", o->out, sph_strerror(st));
		goto out;
	}
	printf("capability file: %s (%zu bytes)\n", o->out, len);
	rc = CLI_EXIT_OK;
out:
	free(buf);
	EVP_PKEY_free(key);
	X509_free(leaf);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(extra, X509_free);
	return rc;
}

static int cmd_create(int argc, char **argv)
{
	static const char cmd[] = "sphere device capability create";
	static const struct option opts[] = {
	        {"device-id", required_argument, NULL, 'i'},
	        {"capability", required_argument, NULL, 'C'},
	        {"key", required_argument, NULL, 'k'},
	        {"cert", required_argument, NULL, 'c'},
	        {"chain", required_argument, NULL, 'a'},
	        {"days", required_argument, NULL, 'd'},
	        {"no-expiry", no_argument, NULL, 'N'},
	        {"tenant", required_argument, NULL, 't'},
	        {"out", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct create_opts o = {.days = CAP_DAYS_DEFAULT};
	struct img_capability c;
	bool have_days = false;
	int ch;

	memset(&c, 0, sizeof(c));
	getopt_reset();
	while ((ch = getopt_long(argc, argv, "i:C:k:c:a:d:Nt:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o.device_id = optarg;
			break;
		case 'C':
			o.caps = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'c':
			o.cert = optarg;
			break;
		case 'a':
			o.chain = optarg;
			break;
		case 'd':
			if (cli_parse_u64(optarg, CAP_DAYS_MAX, &o.days) != 0 || o.days == 0)
				return cli_usage(cmd, "--days must be 1..%d", CAP_DAYS_MAX);
			have_days = true;
			break;
		case 'N':
			o.no_expiry = true;
			break;
		case 't':
			o.tenant = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'h':
			fputs(create_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return bad_option(cmd, argv);
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o.device_id || !o.caps || !o.key || !o.cert || !o.out)
		return cli_usage(cmd, "--device-id, --capability, --key, --cert and --out are "
		                      "required");
	if (strlen(o.device_id) != DEVICE_ID_HEX ||
	    sph_hex_decode(o.device_id, c.device_id, sizeof(c.device_id)) != 0)
		return cli_usage(cmd, "--device-id must be %d hex digits", DEVICE_ID_HEX);
	if (img_cap_parse_names(o.caps, &c.caps) != 0)
		return cli_usage(cmd, "--capability: a comma-separated list of appDevelopment "
		                      "and fieldServicing, each at most once");
	if (have_days && o.no_expiry)
		return cli_usage(cmd, "--days and --no-expiry exclude each other");
	if (o.tenant) {
		size_t n = strnlen(o.tenant, IMG_CAP_TENANT_MAX + 1);
		if (!sph_text_ok((const uint8_t *)o.tenant, n, IMG_CAP_TENANT_MAX))
			return cli_usage(cmd, "--tenant must be 1..%d printable ASCII",
			                 IMG_CAP_TENANT_MAX);
		memcpy(c.tenant, o.tenant, n + 1);
	}
	return create(&o, &c);
}

/* ---- show ---------------------------------------------------------------------- */

static void time_text(uint64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > 253402300799ull || !gmtime_r(&tt, &tm) ||
	    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "?");
}

static void caps_text(uint32_t mask, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (uint32_t v = IMG_CAP_APP_DEVELOPMENT; v <= IMG_CAP_FIELD_SERVICING; v++) {
		int n;
		if (!(mask & (1u << v)))
			continue;
		n = snprintf(out + off, cap - off, "%s%s", off ? "," : "", img_cap_name(v));
		if (n < 0 || (size_t)n >= cap - off)
			return;
		off += (size_t)n;
	}
}

static int show(const char *path, bool as_json)
{
	struct img_capability c;
	char why[256], id[DEVICE_ID_HEX + 1], caps[64], issued[32], expires[32];
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *root = NULL, *arr = NULL;
	char *text = NULL;
	int rc = CLI_EXIT_FAIL, st;

	if ((st = img_read_file(path, IMG_CAP_MAX_FILE, &buf, &len))) {
		cli_fail("%s: %s", path, file_error(st));
		goto out;
	}
	if ((st = img_cap_parse(buf, len, &c, why, sizeof(why)))) {
		cli_fail("%s: not a valid capability file: %s: %s", path, sph_strerror(st), why);
		goto out;
	}
	if (sph_hex_encode(c.device_id, sizeof(c.device_id), id, sizeof(id)) != 0)
		goto out;
	caps_text(c.caps, caps, sizeof(caps));
	time_text(c.issued_at, issued, sizeof(issued));
	if (c.expires)
		time_text(c.expires, expires, sizeof(expires));
	else
		snprintf(expires, sizeof(expires), "never");
	if (!as_json) {
		printf("capability file: %s (%zu bytes)\n", path, len);
		printf("device id:       %s\n", id);
		printf("capabilities:    %s\n", caps);
		printf("issued at:       %s\n", issued);
		printf("expires:         %s\n", expires);
		printf("tenant:          %s\n", c.tenant);
		printf("signature:       not checked (a device verifies it on install)\n");
		rc = CLI_EXIT_OK;
		goto out;
	}
	arr = json_array();
	if (!arr)
		goto out;
	for (uint32_t v = IMG_CAP_APP_DEVELOPMENT; v <= IMG_CAP_FIELD_SERVICING; v++)
		if ((c.caps & (1u << v)) &&
		    json_array_append_new(arr, json_string(img_cap_name(v))))
			goto out;
	root = json_pack("{s:s, s:I, s:s, s:O, s:I, s:s, s:o?, s:s?, s:s, s:b}", "file", path,
	                 "size", (json_int_t)len, "device_id", id, "capabilities", arr, "issued_at",
	                 (json_int_t)c.issued_at, "issued_at_utc", issued, "expires",
	                 c.expires ? json_integer((json_int_t)c.expires) : NULL, "expires_utc",
	                 c.expires ? expires : NULL, "tenant", c.tenant, "verified", 0);
	if (!root || !(text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII))) {
		cli_fail("cannot build JSON");
		goto out;
	}
	puts(text);
	rc = CLI_EXIT_OK;
out:
	free(text);
	json_decref(root);
	json_decref(arr);
	free(buf);
	return rc;
}

static int cmd_show(int argc, char **argv)
{
	static const char cmd[] = "sphere device capability show";
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	bool as_json = false;
	int ch;

	getopt_reset();
	while ((ch = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			as_json = true;
			break;
		case 'h':
			fputs(show_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return bad_option(cmd, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cmd, "expected exactly one FILE");
	return show(argv[optind], as_json);
}

/* ---- dispatch ------------------------------------------------------------------- */

int cli_device(int argc, char **argv)
{
	static const char cmd[] = "sphere device";
	static const struct option opts[] = {
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	getopt_reset();
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(device_usage, stdout);
			return CLI_EXIT_OK;
		}
		return bad_option(cmd, argv);
	}
	if (optind >= argc)
		return cli_usage(cmd, "missing command");
	if (strcmp(argv[optind], "claim") == 0 || strcmp(argv[optind], "list") == 0 ||
	    strcmp(argv[optind], "show") == 0 || strcmp(argv[optind], "release") == 0)
		return cli_device_api(argc - optind, argv + optind);
	if (strcmp(argv[optind], "update") == 0)
		return cli_device_update(argc - optind, argv + optind);
	if (strcmp(argv[optind], "register") == 0)
		return cli_device_register(argc - optind, argv + optind);
	if (strcmp(argv[optind], "registration") == 0)
		return cli_device_registration(argc - optind, argv + optind);
	if (strcmp(argv[optind], "enable-development") == 0 ||
	    strcmp(argv[optind], "enable-cloud-test") == 0)
		return cli_device_mode(argc - optind, argv + optind);
	if (strcmp(argv[optind], "capability") != 0)
		return cli_usage(cmd, "unknown command '%s'", argv[optind]);
	if (optind + 1 >= argc)
		return cli_usage(cmd, "missing capability command (create, show or download)");
	argc -= optind + 1;
	argv += optind + 1;
	if (strcmp(argv[0], "create") == 0)
		return cmd_create(argc, argv);
	if (strcmp(argv[0], "show") == 0)
		return cmd_show(argc, argv);
	if (strcmp(argv[0], "download") == 0)
		return cli_device_capability_download(argc, argv);
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		fputs(device_usage, stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage(cmd, "unknown capability command '%s'", argv[0]);
}
