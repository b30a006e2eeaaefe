/*
 * cli image-package: keygen, pack-os, pack-application, show, verify
 * (docs/formats.md §5).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "cli.h"
#include "common/common.h"
#include "image/image.h"

static const char ip_usage[] =
        "usage: sphere image-package COMMAND [OPTIONS]\n"
        "\n"
        "Signed image packages: a manifest (component id, type, name, version,\n"
        "security version, payload size and SHA-256, target, debug flag, app\n"
        "manifest for applications) signed as a COSE_Sign1 with ES256, the signer's\n"
        "certificate chain in its protected header, then the payload. Format:\n"
        "docs/formats.md section 5.\n"
        "\n"
        "commands:\n"
        "  keygen            make a root or signing key and its certificate\n"
        "  pack-os           package a bootloader, security monitor or OS\n"
        "  pack-application  package a (real-time) application\n"
        "  show              print what a package says (does not verify it)\n"
        "  verify            verify a package against a trusted root\n"
        "\n"
        "Run 'sphere image-package COMMAND --help' for a command's options.\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

static const char keygen_usage[] =
        "usage: sphere image-package keygen --role ROLE --out-key KEY.pem --out-cert CERT.pem\n"
        "           [--issuer-key IKEY.pem --issuer-cert ICERT.pem] [--days N] [--subject CN]\n"
        "\n"
        "Makes a P-256 key and an X.509 certificate for one role of the image\n"
        "signing hierarchy:\n"
        "  platform-root     self-signed CA whose root hash is fused into devices;\n"
        "                    certifies platform signers\n"
        "  tenant-root       self-signed CA of a tenant; certifies tenant,\n"
        "                    developer and capability signers\n"
        "  platform-signer   signs bootloader, security monitor and OS images\n"
        "                    (issuer: the platform root)\n"
        "  tenant-signer     signs production applications (issuer: the tenant root)\n"
        "  developer         signs applications that only development devices accept\n"
        "                    (issuer: the tenant root)\n"
        "  capability-signer signs device capability files ('sphere device\n"
        "                    capability create'; issuer: the tenant root)\n"
        "The private key is written unencrypted with mode 0600; neither output may\n"
        "exist already. For a root, the root hash (SHA-256 of its public key info)\n"
        "is printed.\n"
        "\n"
        "options:\n"
        "  -r, --role ROLE          one of the roles above (required)\n"
        "  -k, --out-key FILE       where to write the private key (required)\n"
        "  -c, --out-cert FILE      where to write the certificate (required)\n"
        "  -K, --issuer-key FILE    the issuing CA's private key (signers only)\n"
        "  -C, --issuer-cert FILE   the issuing CA's certificate (signers only)\n"
        "  -d, --days N             validity in days (default 7300 for roots, 1095\n"
        "                           for signers; at most 36500)\n"
        "  -s, --subject CN         the subject common name (printable ASCII, 1..64)\n"
        "  -h, --help               show this help\n";

static const char pack_os_usage[] =
        "usage: sphere image-package pack-os --type TYPE --name NAME --version VERSION\n"
        "           --security-version N --payload FILE --key KEY.pem --cert CERT.pem\n"
        "           --out PACKAGE [--chain CHAIN.pem] [--component-id UUID] [--debug]\n"
        "           [--target TARGET]\n"
        "\n"
        "Packages a bootloader, security monitor or OS image, signed with a\n"
        "platform signer's key. Devices verify OS images with only the platform\n"
        "root's hash, so --chain should hold the certificates above the signer up to\n"
        "and including the platform root.\n"
        "\n"
        "options:\n"
        "  -t, --type TYPE              bootloader, security-monitor or os (required)\n"
        "  -n, --name NAME              component name, printable ASCII 1..64 (required)\n"
        "  -v, --version VERSION        version string, printable ASCII 1..32 (required)\n"
        "  -S, --security-version N     anti-rollback level 0..255 (required)\n"
        "  -p, --payload FILE           the image bytes, at most 64 MiB (required)\n"
        "  -k, --key FILE               the signer's private key (required)\n"
        "  -c, --cert FILE              the signer's certificate; further certificates\n"
        "                               in the file are taken as its chain (required)\n"
        "  -a, --chain FILE             issuer certificates, each followed by its own\n"
        "                               issuer, up to the root (at most 4 in all)\n"
        "  -o, --out FILE               the package to write (required)\n"
        "  -i, --component-id UUID      the component id (default: a random UUID)\n"
        "  -D, --debug                  mark the image as a debug build\n"
        "  -T, --target TARGET          the hardware target (default sphere-virtual-mt3620)\n"
        "  -h, --help                   show this help\n";

static const char pack_app_usage[] =
        "usage: sphere image-package pack-application --payload FILE --app-manifest FILE\n"
        "           --version VERSION --security-version N --key KEY.pem --cert CERT.pem\n"
        "           --out PACKAGE [--realtime] [--name NAME] [--component-id UUID]\n"
        "           [--chain CHAIN.pem] [--debug] [--target TARGET]\n"
        "\n"
        "Packages an application (or, with --realtime, a real-time application)\n"
        "signed with a tenant production or developer key. The app manifest is a\n"
        "JSON object (app_manifest.json, at most 16 KiB) carried in the signed\n"
        "manifest; its \"Name\" and \"ComponentId\" are the defaults for --name and\n"
        "--component-id.\n"
        "\n"
        "options:\n"
        "  -p, --payload FILE           the application bytes, at most 64 MiB (required)\n"
        "  -m, --app-manifest FILE      the app_manifest.json (required)\n"
        "  -v, --version VERSION        version string, printable ASCII 1..32 (required)\n"
        "  -S, --security-version N     anti-rollback level 0..255 (required)\n"
        "  -k, --key FILE               the signer's private key (required)\n"
        "  -c, --cert FILE              the signer's certificate; further certificates\n"
        "                               in the file are taken as its chain (required)\n"
        "  -o, --out FILE               the package to write (required)\n"
        "  -R, --realtime               a real-time application\n"
        "  -n, --name NAME              component name (default: the manifest's Name)\n"
        "  -i, --component-id UUID      (default: the manifest's ComponentId, else random)\n"
        "  -a, --chain FILE             issuer certificates up to the root\n"
        "  -D, --debug                  mark the image as a debug build\n"
        "  -T, --target TARGET          the hardware target (default sphere-virtual-mt3620)\n"
        "  -h, --help                   show this help\n";

static const char show_usage[] =
        "usage: sphere image-package show PACKAGE [--json]\n"
        "\n"
        "Prints what a package says: its manifest, its signer's certificate and\n"
        "chain, its payload size and SHA-256. It checks the package's structure and\n"
        "that the payload matches the manifest, but NOT the signature or who signed\n"
        "it: use 'sphere image-package verify' for that.\n"
        "\n"
        "options:\n"
        "  -j, --json   print JSON instead of text\n"
        "  -h, --help   show this help\n";

static const char verify_usage[] =
        "usage: sphere image-package verify PACKAGE (--root-cert ROOT.pem | --root-hash HEX)\n"
        "           [--allow-developer] [--at UNIXTIME | --no-time-check] [--target TARGET]\n"
        "\n"
        "Verifies a package as a device would: the signature with the signer's\n"
        "certificate, that certificate's path to the trusted root, the signer's\n"
        "role against the component type, the target and the payload digest.\n"
        "Prints \"verified\" and exits 0, or prints the reason and exits 1.\n"
        "\n"
        "options:\n"
        "  -r, --root-cert FILE     trust this root certificate\n"
        "  -H, --root-hash HEX      trust the root whose root hash (SHA-256 of its\n"
        "                           public key info, 64 hex digits) this is; the\n"
        "                           package must then carry the root itself\n"
        "  -d, --allow-developer    accept developer-signed applications\n"
        "  -t, --at UNIXTIME        check certificate validity at this time (default: now)\n"
        "  -N, --no-time-check      do not check certificate validity (a device without a\n"
        "                           trustworthy clock)\n"
        "  -T, --target TARGET      this device's target (default sphere-virtual-mt3620)\n"
        "  -h, --help               show this help\n";

/* Resets getopt for a (sub)command's own argument vector. */
static void getopt_reset(void)
{
	opterr = 0;
	optind = 0;
}

static int bad_option(const char *cmd, char **argv)
{
	return cli_usage(cmd, "unknown option or missing argument '%s'", argv[optind - 1]);
}

static bool text_ok(const char *s, size_t max)
{
	size_t len = s ? strnlen(s, max + 1) : 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Copies printable text of at most max bytes into dst (max+1 bytes). */
static bool copy_text(char *dst, const char *src, size_t max)
{
	if (!text_ok(src, max))
		return false;
	memcpy(dst, src, strlen(src) + 1);
	return true;
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

/* ---- keygen ------------------------------------------------------------------ */

static const struct {
	const char *name;
	enum img_cert_kind kind;
} keygen_roles[] = {
        {"platform-root", IMG_CERT_PLATFORM_ROOT},
        {"tenant-root", IMG_CERT_TENANT_ROOT},
        {"platform-signer", IMG_CERT_PLATFORM_SIGNER},
        {"tenant-signer", IMG_CERT_TENANT_SIGNER},
        {"developer", IMG_CERT_DEVELOPER_SIGNER},
        {"capability-signer", IMG_CERT_CAPABILITY_SIGNER},
};

static int cmd_keygen(int argc, char **argv)
{
	static const char cmd[] = "sphere image-package keygen";
	static const struct option opts[] = {
	        {"role", required_argument, NULL, 'r'},
	        {"out-key", required_argument, NULL, 'k'},
	        {"out-cert", required_argument, NULL, 'c'},
	        {"issuer-key", required_argument, NULL, 'K'},
	        {"issuer-cert", required_argument, NULL, 'C'},
	        {"days", required_argument, NULL, 'd'},
	        {"subject", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *out_key = NULL, *out_cert = NULL, *issuer_key = NULL,
	           *issuer_cert = NULL, *subject = NULL;
	uint8_t hash[IMG_DIGEST_LEN];
	char hex[2 * IMG_DIGEST_LEN + 1];
	uint64_t days = 0;
	enum img_cert_kind kind = 0;
	bool root;
	int c, rc;

	getopt_reset();
	while ((c = getopt_long(argc, argv, "r:k:c:K:C:d:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'k':
			out_key = optarg;
			break;
		case 'c':
			out_cert = optarg;
			break;
		case 'K':
			issuer_key = optarg;
			break;
		case 'C':
			issuer_cert = optarg;
			break;
		case 'd':
			if (cli_parse_u64(optarg, IMG_DAYS_MAX, &days) != 0 || days == 0)
				return cli_usage(cmd, "--days must be 1..%d", IMG_DAYS_MAX);
			break;
		case 's':
			subject = optarg;
			break;
		case 'h':
			fputs(keygen_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return bad_option(cmd, argv);
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!role || !out_key || !out_cert)
		return cli_usage(cmd, "--role, --out-key and --out-cert are required");
	for (size_t i = 0; i < sizeof(keygen_roles) / sizeof(keygen_roles[0]); i++)
		if (strcmp(role, keygen_roles[i].name) == 0)
			kind = keygen_roles[i].kind;
	if (!kind)
		return cli_usage(cmd, "unknown role '%s'", role);
	if (subject && !text_ok(subject, IMG_CN_MAX))
		return cli_usage(cmd, "--subject must be 1..%d printable ASCII characters",
		                 IMG_CN_MAX);
	root = kind == IMG_CERT_PLATFORM_ROOT || kind == IMG_CERT_TENANT_ROOT;
	if (root && (issuer_key || issuer_cert))
		return cli_usage(cmd, "a root is self-signed: no --issuer-key or --issuer-cert");
	if (!root && (!issuer_key || !issuer_cert))
		return cli_usage(cmd, "a signer needs --issuer-key and --issuer-cert");
	if (strcmp(out_key, out_cert) == 0)
		return cli_usage(cmd, "--out-key and --out-cert must differ");

	if (root)
		rc = img_keygen_root(kind, subject, (unsigned)days, out_key, out_cert, hash);
	else
		rc = img_keygen_signer(kind, subject, (unsigned)days, issuer_key, issuer_cert,
		                       out_key, out_cert);
	switch (rc) {
	case 0:
		break;
	case SPH_ERR_STATE:
		return cli_fail("keygen: %s or %s already exists; refusing to overwrite", out_key,
		                out_cert);
	case SPH_ERR_PERMISSION:
		return cli_fail("keygen: the issuer %s may not certify a %s (its extended key "
		                "usage lacks the role)",
		                issuer_cert, role);
	case SPH_ERR_INVALID_ARG:
		return cli_fail("keygen: %s", root ? "invalid parameters"
		                                   : "the issuer is not a CA, or the issuer key "
		                                     "is not the issuer certificate's key");
	default:
		return cli_fail("keygen: %s", sph_strerror(rc));
	}
	printf("role: %s\nkey: %s (mode 0600, unencrypted)\ncertificate: %s\n", role, out_key,
	       out_cert);
	if (root) {
		if (sph_hex_encode(hash, sizeof(hash), hex, sizeof(hex)) != 0)
			return cli_fail("keygen: hex");
		printf("root hash: %s\n", hex);
	}
	return CLI_EXIT_OK;
}

/* ---- pack ---------------------------------------------------------------------- */

struct pack_opts {
	bool app, realtime, debug;
	const char *type, *name, *version, *svn, *component_id, *payload, *app_manifest, *key,
	        *cert, *chain, *target, *out;
};

/* Loads the signer's key, its certificate (first in cert_path, the rest its
 * chain) and the extra chain; the leaf is taken out of *chain. */
static int load_signer(const struct pack_opts *o, EVP_PKEY **key, X509 **leaf,
                       STACK_OF(X509) * *chain)
{
	STACK_OF(X509) *extra = NULL;
	int rc;

	if ((rc = img_load_key(o->key, key)))
		return cli_fail("%s: %s", o->key, file_error(rc));
	if ((rc = img_load_certs(o->cert, chain)))
		return cli_fail("%s: %s", o->cert, file_error(rc));
	*leaf = sk_X509_shift(*chain);
	if (o->chain) {
		if ((rc = img_load_certs(o->chain, &extra)))
			return cli_fail("%s: %s", o->chain, file_error(rc));
		while (sk_X509_num(extra) > 0) {
			X509 *x = sk_X509_shift(extra);
			if (!sk_X509_push(*chain, x)) {
				X509_free(x);
				sk_X509_pop_free(extra, X509_free);
				return cli_fail("out of memory");
			}
		}
		sk_X509_free(extra);
	}
	if (sk_X509_num(*chain) + 1 > IMG_MAX_CHAIN)
		return cli_fail("the signer's chain has more than %d certificates", IMG_MAX_CHAIN);
	return 0;
}

/* Fills name and component id from the app manifest where not given. */
static int app_defaults(const struct pack_opts *o, const char *text, size_t len,
                        struct img_manifest *m, bool *have_id)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	const char *s;
	int rc = CLI_EXIT_FAIL;

	if (!root || !json_is_object(root)) {
		cli_fail("%s: not a JSON object (line %d: %s)", o->app_manifest, err.line,
		         root ? "top level" : err.text);
		goto out;
	}
	if (!o->name) {
		s = json_string_value(json_object_get(root, "Name"));
		if (!s || !copy_text(m->name, s, IMG_NAME_MAX)) {
			cli_fail("%s: no usable \"Name\" (1..%d printable ASCII); give --name",
			         o->app_manifest, IMG_NAME_MAX);
			goto out;
		}
	}
	if (!o->component_id) {
		s = json_string_value(json_object_get(root, "ComponentId"));
		if (s && cli_parse_uuid(s, m->component_id) != 0) {
			cli_fail("%s: \"ComponentId\" is not a UUID", o->app_manifest);
			goto out;
		}
		*have_id = s != NULL;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static int pack(const struct pack_opts *o)
{
	struct img_package pk;
	struct img_manifest m;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	uint8_t *payload = NULL, *appm = NULL, *pkg = NULL;
	size_t payload_len = 0, appm_len = 0, pkg_len = 0;
	uint64_t svn = 0;
	enum img_role role = IMG_ROLE_NONE;
	bool have_id = false;
	char uuid[37], hex[2 * IMG_DIGEST_LEN + 1];
	int rc = CLI_EXIT_FAIL, st;

	memset(&m, 0, sizeof(m));
	if (o->app) {
		m.type = o->realtime ? IMG_TYPE_RTAPP : IMG_TYPE_APP;
	} else if (img_type_from_name(o->type, &m.type) != 0 || m.type > IMG_TYPE_OS) {
		rc = cli_usage("sphere image-package pack-os",
		               "--type must be bootloader, security-monitor or os");
		goto out;
	}
	rc = CLI_EXIT_USAGE;
	if (o->name && !copy_text(m.name, o->name, IMG_NAME_MAX)) {
		cli_usage("sphere image-package", "--name must be 1..%d printable ASCII characters",
		          IMG_NAME_MAX);
		goto out;
	}
	if (!copy_text(m.version, o->version, IMG_VERSION_MAX)) {
		cli_usage("sphere image-package",
		          "--version must be 1..%d printable ASCII characters", IMG_VERSION_MAX);
		goto out;
	}
	if (cli_parse_u64(o->svn, IMG_SVN_MAX, &svn) != 0) {
		cli_usage("sphere image-package", "--security-version must be 0..%d", IMG_SVN_MAX);
		goto out;
	}
	m.security_version = (uint32_t)svn;
	if (!copy_text(m.target, o->target ? o->target : IMG_TARGET_DEFAULT, IMG_TARGET_MAX)) {
		cli_usage("sphere image-package", "--target must be 1..%d printable ASCII",
		          IMG_TARGET_MAX);
		goto out;
	}
	if (o->component_id) {
		if (cli_parse_uuid(o->component_id, m.component_id) != 0) {
			cli_usage("sphere image-package", "--component-id is not a UUID");
			goto out;
		}
		have_id = true;
	}
	m.debug = o->debug;

	rc = CLI_EXIT_FAIL;
	if ((st = img_read_file(o->payload, IMG_MAX_PAYLOAD, &payload, &payload_len))) {
		cli_fail("%s: %s", o->payload, file_error(st));
		goto out;
	}
	if (o->app) {
		if ((st = img_read_file(o->app_manifest, IMG_APP_MANIFEST_MAX, &appm, &appm_len))) {
			cli_fail("%s: %s", o->app_manifest, file_error(st));
			goto out;
		}
		if (app_defaults(o, (const char *)appm, appm_len, &m, &have_id))
			goto out;
		m.app_manifest = (const char *)appm;
		m.app_manifest_len = appm_len;
	}
	if (!have_id && cli_random_uuid(m.component_id) != 0) {
		cli_fail("random source failed");
		goto out;
	}
	if (load_signer(o, &key, &leaf, &chain))
		goto out;
	if (img_cert_role(leaf, &role) != 0) {
		cli_fail("%s: not a Sphere signing certificate (no single Sphere role)", o->cert);
		goto out;
	}
	if (!img_role_may_sign(role, m.type, true)) {
		cli_fail("a %s key may not sign %s images", img_role_name(role),
		         img_type_name(m.type));
		goto out;
	}

	st = img_pack(&m, payload, payload_len, key, leaf, chain, &pkg, &pkg_len);
	if (st == SPH_ERR_INVALID_ARG) {
		cli_fail("the key in %s is not the key of the certificate in %s", o->key, o->cert);
		goto out;
	} else if (st == SPH_ERR_CLAIM) {
		cli_fail("invalid manifest%s", o->app ? " (is the app manifest a JSON object of at "
		                                        "most 16 KiB?)"
		                                      : "");
		goto out;
	} else if (st) {
		cli_fail("cannot build the package: %s", sph_strerror(st));
		goto out;
	}
	/* What we wrote must read back. */
	if (img_parse(pkg, pkg_len, &pk) != 0 ||
	    sph_hex_encode(pk.manifest.payload_sha256, IMG_DIGEST_LEN, hex, sizeof(hex)) != 0) {
		cli_fail("internal error: the package does not parse");
		goto out;
	}
	if ((st = img_write_file(o->out, pkg, pkg_len, 0644, true))) {
		cli_fail("%s: cannot write: %s", o->out, sph_strerror(st));
		goto out;
	}
	cli_format_uuid(m.component_id, uuid);
	printf("wrote %s (%zu bytes): %s \"%s\" %s, security version %u, component id %s, "
	       "payload %zu bytes sha256 %s, signed by a %s key\n",
	       o->out, pkg_len, img_type_name(m.type), m.name, m.version, m.security_version, uuid,
	       payload_len, hex, img_role_name(role));
	rc = CLI_EXIT_OK;
out:
	EVP_PKEY_free(key);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	free(payload);
	free(appm);
	free(pkg);
	return rc;
}

static int cmd_pack(int argc, char **argv, bool app)
{
	const char *cmd =
	        app ? "sphere image-package pack-application" : "sphere image-package pack-os";
	static const struct option opts[] = {
	        {"type", required_argument, NULL, 't'},
	        {"name", required_argument, NULL, 'n'},
	        {"version", required_argument, NULL, 'v'},
	        {"security-version", required_argument, NULL, 'S'},
	        {"component-id", required_argument, NULL, 'i'},
	        {"payload", required_argument, NULL, 'p'},
	        {"app-manifest", required_argument, NULL, 'm'},
	        {"realtime", no_argument, NULL, 'R'},
	        {"key", required_argument, NULL, 'k'},
	        {"cert", required_argument, NULL, 'c'},
	        {"chain", required_argument, NULL, 'a'},
	        {"debug", no_argument, NULL, 'D'},
	        {"target", required_argument, NULL, 'T'},
	        {"out", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct pack_opts o;
	int c;

	memset(&o, 0, sizeof(o));
	o.app = app;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "t:n:v:S:i:p:m:Rk:c:a:DT:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.type = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'v':
			o.version = optarg;
			break;
		case 'S':
			o.svn = optarg;
			break;
		case 'i':
			o.component_id = optarg;
			break;
		case 'p':
			o.payload = optarg;
			break;
		case 'm':
			o.app_manifest = optarg;
			break;
		case 'R':
			o.realtime = true;
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
		case 'D':
			o.debug = true;
			break;
		case 'T':
			o.target = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'h':
			fputs(app ? pack_app_usage : pack_os_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return bad_option(cmd, argv);
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (app && (o.type))
		return cli_usage(cmd, "--type is for pack-os; use --realtime for a real-time app");
	if (!app && (o.app_manifest || o.realtime))
		return cli_usage(cmd, "--app-manifest and --realtime are for pack-application");
	if (!o.version || !o.svn || !o.payload || !o.key || !o.cert || !o.out)
		return cli_usage(cmd, "--version, --security-version, --payload, --key, --cert "
		                      "and --out are required");
	if (!app && (!o.type || !o.name))
		return cli_usage(cmd, "--type and --name are required");
	if (app && !o.app_manifest)
		return cli_usage(cmd, "--app-manifest is required");
	return pack(&o);
}

/* ---- show -------------------------------------------------------------------- */

/* An RFC 2253 rendering of a name, control and non-ASCII bytes escaped.
 * Returns a malloc'd string or NULL. */
static char *name_text(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *s = NULL;
	long n;

	if (!bio)
		return NULL;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(bio, &data)) >= 0 && (s = malloc((size_t)n + 1)) != NULL) {
		memcpy(s, data, (size_t)n);
		s[n] = '\0';
	}
	BIO_free(bio);
	return s;
}

/* ISO 8601 UTC, or "?" */
static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "?");
}

struct show_info {
	char uuid[37];
	char sha[2 * IMG_DIGEST_LEN + 1];
	char signer_id[2 * IMG_DIGEST_LEN + 1];
	char *subject, *issuer;
	char not_before[32], not_after[32];
	const char *role;
	json_t *app; /* the app manifest re-read, or NULL */
};

static int show_json(const char *path, size_t size, const struct img_package *pk,
                     const struct show_info *si)
{
	const struct img_manifest *m = &pk->manifest;
	json_t *root = NULL;
	char *text = NULL;
	int rc = CLI_EXIT_FAIL;

	root = json_pack("{s:s, s:I, s:{s:s, s:s, s:i, s:s, s:s, s:i, s:I, s:s, s:b, s:s, s:O?}, "
	                 "s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:i, s:b}",
	                 "file", path, "size", (json_int_t)size, "manifest", "component_id",
	                 si->uuid, "type", img_type_name(m->type), "type_id", (int)m->type, "name",
	                 m->name, "version", m->version, "security_version",
	                 (int)m->security_version, "payload_size", (json_int_t)m->payload_size,
	                 "payload_sha256", si->sha, "debug", (int)m->debug, "target", m->target,
	                 "app_manifest", si->app, "signer", "subject", si->subject, "issuer",
	                 si->issuer, "role", si->role, "signer_id", si->signer_id, "not_before",
	                 si->not_before, "not_after", si->not_after, "chain_length",
	                 (int)pk->n_certs, "verified", 0);
	if (!root)
		return cli_fail("cannot build JSON");
	text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	if (text) {
		puts(text);
		rc = CLI_EXIT_OK;
	}
	free(text);
	json_decref(root);
	return rc;
}

static void show_text(const char *path, size_t size, const struct img_package *pk,
                      const struct show_info *si)
{
	const struct img_manifest *m = &pk->manifest;

	printf("package:          %s (%zu bytes)\n", path, size);
	printf("component id:     %s\n", si->uuid);
	printf("type:             %s\n", img_type_name(m->type));
	printf("name:             %s\n", m->name);
	printf("version:          %s\n", m->version);
	printf("security version: %u\n", m->security_version);
	printf("target:           %s\n", m->target);
	printf("debug:            %s\n", m->debug ? "yes" : "no");
	printf("payload:          %llu bytes, sha256 %s\n", (unsigned long long)m->payload_size,
	       si->sha);
	printf("signer:           %s\n", si->subject);
	printf("issuer:           %s\n", si->issuer);
	printf("signer role:      %s\n", si->role);
	printf("signer id:        %s\n", si->signer_id);
	printf("valid:            %s to %s\n", si->not_before, si->not_after);
	printf("chain length:     %zu certificate%s\n", pk->n_certs, pk->n_certs == 1 ? "" : "s");
	if (si->app) {
		char *text = json_dumps(si->app, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("app manifest:     %zu bytes\n%s\n", m->app_manifest_len, text ? text : "");
		free(text);
	}
	printf("signature:        not checked (use 'sphere image-package verify')\n");
}

static int show(const char *path, bool as_json)
{
	struct img_package pk;
	struct show_info si;
	uint8_t *buf = NULL, id[IMG_DIGEST_LEN];
	const unsigned char *p;
	size_t len = 0;
	X509 *leaf = NULL;
	enum img_role role = IMG_ROLE_NONE;
	json_error_t err;
	int rc = CLI_EXIT_FAIL, st;

	memset(&si, 0, sizeof(si));
	if ((st = img_read_file(path, IMG_MAX_PACKAGE, &buf, &len))) {
		cli_fail("%s: %s", path, file_error(st));
		goto out;
	}
	if ((st = img_parse(buf, len, &pk))) {
		cli_fail("%s: not a valid image package: %s", path, sph_strerror(st));
		goto out;
	}
	p = pk.certs[0].der;
	leaf = d2i_X509(NULL, &p, (long)pk.certs[0].len);
	if (!leaf) {
		cli_fail("%s: cannot decode the signer certificate", path);
		goto out;
	}
	cli_format_uuid(pk.manifest.component_id, si.uuid);
	if (sph_hex_encode(pk.manifest.payload_sha256, IMG_DIGEST_LEN, si.sha, sizeof(si.sha)))
		goto out;
	if (img_signer_id(leaf, id) == 0)
		(void)sph_hex_encode(id, sizeof(id), si.signer_id, sizeof(si.signer_id));
	else
		snprintf(si.signer_id, sizeof(si.signer_id), "(not a P-256 key)");
	si.role = img_cert_role(leaf, &role) == 0 ? img_role_name(role) : "none (not a signer)";
	si.subject = name_text(X509_get_subject_name(leaf));
	si.issuer = name_text(X509_get_issuer_name(leaf));
	if (!si.subject || !si.issuer) {
		cli_fail("out of memory");
		goto out;
	}
	time_text(X509_get0_notBefore(leaf), si.not_before, sizeof(si.not_before));
	time_text(X509_get0_notAfter(leaf), si.not_after, sizeof(si.not_after));
	if (pk.manifest.app_manifest) {
		si.app = json_loadb(pk.manifest.app_manifest, pk.manifest.app_manifest_len,
		                    JSON_REJECT_DUPLICATES, &err);
		if (!si.app) {
			cli_fail("%s: app manifest: %s", path, err.text);
			goto out;
		}
	}
	if (as_json) {
		rc = show_json(path, len, &pk, &si);
	} else {
		show_text(path, len, &pk, &si);
		rc = CLI_EXIT_OK;
	}
out:
	json_decref(si.app);
	free(si.subject);
	free(si.issuer);
	X509_free(leaf);
	free(buf);
	return rc;
}

static int cmd_show(int argc, char **argv)
{
	static const char cmd[] = "sphere image-package show";
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	bool as_json = false;
	int c;

	getopt_reset();
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
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
		return cli_usage(cmd, "expected exactly one PACKAGE");
	return show(argv[optind], as_json);
}

/* ---- verify -------------------------------------------------------------------- */

static int verify(const char *path, const char *root_cert, const uint8_t *root_hash,
                  struct img_trust *t)
{
	STACK_OF(X509) *roots = NULL;
	struct img_package pk;
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[256];
	int rc = CLI_EXIT_FAIL, st;

	if (root_cert) {
		if ((st = img_load_certs(root_cert, &roots))) {
			cli_fail("%s: %s", root_cert, file_error(st));
			goto out;
		}
		if (sk_X509_num(roots) != 1) {
			cli_fail("%s: expected exactly one root certificate", root_cert);
			goto out;
		}
		t->root_cert = sk_X509_value(roots, 0);
	} else {
		t->root_hash = root_hash;
	}
	if ((st = img_read_file(path, IMG_MAX_PACKAGE, &buf, &len))) {
		cli_fail("%s: %s", path, file_error(st));
		goto out;
	}
	st = img_verify(buf, len, t, &pk, why, sizeof(why));
	if (st) {
		cli_fail("%s: NOT verified: %s: %s", path, sph_strerror(st), why);
		goto out;
	}
	printf("verified: %s \"%s\" %s, security version %u, signed by a %s key, %zu-certificate "
	       "path to the trusted root\n",
	       img_type_name(pk.manifest.type), pk.manifest.name, pk.manifest.version,
	       pk.manifest.security_version, img_role_name(pk.role), pk.path_len);
	rc = CLI_EXIT_OK;
out:
	sk_X509_pop_free(roots, X509_free);
	free(buf);
	return rc;
}

static int cmd_verify(int argc, char **argv)
{
	static const char cmd[] = "sphere image-package verify";
	static const struct option opts[] = {
	        {"root-cert", required_argument, NULL, 'r'},
	        {"root-hash", required_argument, NULL, 'H'},
	        {"allow-developer", no_argument, NULL, 'd'},
	        {"at", required_argument, NULL, 't'},
	        {"no-time-check", no_argument, NULL, 'N'},
	        {"target", required_argument, NULL, 'T'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct img_trust t;
	const char *root_cert = NULL, *root_hash_hex = NULL;
	uint8_t root_hash[IMG_DIGEST_LEN];
	uint64_t at = 0;
	bool have_at = false, no_time = false;
	int c;

	memset(&t, 0, sizeof(t));
	getopt_reset();
	while ((c = getopt_long(argc, argv, "r:H:dt:NT:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root_cert = optarg;
			break;
		case 'H':
			root_hash_hex = optarg;
			break;
		case 'd':
			t.allow_developer = true;
			break;
		case 't':
			/* up to the end of year 9999 */
			if (cli_parse_u64(optarg, 253402300799ull, &at) != 0)
				return cli_usage(cmd, "--at must be a Unix time in seconds");
			have_at = true;
			break;
		case 'N':
			no_time = true;
			break;
		case 'T':
			t.target = optarg;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return bad_option(cmd, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cmd, "expected exactly one PACKAGE");
	if (!root_cert == !root_hash_hex)
		return cli_usage(cmd, "give exactly one of --root-cert and --root-hash");
	if (root_hash_hex && (strlen(root_hash_hex) != 2 * IMG_DIGEST_LEN ||
	                      sph_hex_decode(root_hash_hex, root_hash, sizeof(root_hash)) != 0))
		return cli_usage(cmd, "--root-hash must be %d hex digits", 2 * IMG_DIGEST_LEN);
	if (have_at && no_time)
		return cli_usage(cmd, "--at and --no-time-check exclude each other");
	if (t.target && !text_ok(t.target, IMG_TARGET_MAX))
		return cli_usage(cmd, "--target must be 1..%d printable ASCII", IMG_TARGET_MAX);
	t.time_policy = no_time ? IMG_TIME_NONE : have_at ? IMG_TIME_AT : IMG_TIME_NOW;
	t.at = (time_t)at;
	return verify(argv[optind], root_cert, root_hash_hex ? root_hash : NULL, &t);
}

/* ---- dispatch ------------------------------------------------------------------- */

int cli_image_package(int argc, char **argv)
{
	static const char cmd[] = "sphere image-package";
	static const struct option opts[] = {
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *sub;
	int c;

	getopt_reset();
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(ip_usage, stdout);
			return CLI_EXIT_OK;
		}
		return bad_option(cmd, argv);
	}
	if (optind >= argc)
		return cli_usage(cmd, "missing command");
	sub = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(sub, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(sub, "pack-os") == 0)
		return cmd_pack(argc, argv, false);
	if (strcmp(sub, "pack-application") == 0)
		return cmd_pack(argc, argv, true);
	if (strcmp(sub, "show") == 0)
		return cmd_show(argc, argv);
	if (strcmp(sub, "verify") == 0)
		return cmd_verify(argc, argv);
	return cli_usage(cmd, "unknown command '%s'", sub);
}
