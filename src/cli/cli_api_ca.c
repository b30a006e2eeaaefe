/*
 * cli api ca: `sphere ca-certificate ...`, the tenant CA in the security
 * service (docs/api-ca.md): list the CAs, download one CA's chain (PEM or
 * PKCS#7) or the trust bundle relying services install, create a successor
 * and move CAs between states (rollover). Downloads are written through a
 * temporary file and a rename, so a failure leaves nothing behind.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cli_api.h"

struct cli_ca_opts {
	const char *tenant, *ca, *out, *format, *state;
	bool json;
};

static const char ca_usage[] =
        "usage: sphere ca-certificate list\n"
        "       sphere ca-certificate download --ca ID --out FILE [--format pem|p7]\n"
        "       sphere ca-certificate download-chain --out FILE\n"
        "       sphere ca-certificate create\n"
        "       sphere ca-certificate set-state --ca ID --state Active|Revoked\n"
        "\n"
        "The tenant's certificate authorities (docs/api-ca.md). 'download' writes one\n"
        "CA's chain (device CA then root); 'download-chain' writes the trust bundle an\n"
        "online service installs to validate the tenant's devices: every CA that is\n"
        "not Revoked. Rollover: 'create' a successor (Inactive, already in the\n"
        "bundle), let relying services fetch the bundle, 'set-state --state Active'\n"
        "it (the old CA becomes Inactive), and revoke the old one once no valid\n"
        "device certificate chains to it. Create and set-state need Administrator.\n"
        "\n"
        "options:\n"
        "  -t, --tenant ID      the tenant (default: the selected one)\n"
        "      --ca ID          a CA id (from 'list')\n"
        "      --out FILE       where to write a download\n"
        "      --format FMT     pem (default) or p7 (certificates-only PKCS#7, DER)\n"
        "      --state STATE    Active or Revoked\n"
        "  -o, --output FMT     table (default) or json\n"
        "  -h, --help           show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

/* Parses the options after the subcommand (argv[0]). Returns 0, -1 after
 * --help, or CLI_EXIT_USAGE. */
static int cli_ca_opts(int argc, char **argv, struct cli_ca_opts *o)
{
	enum { O_CA = 256, O_OUT, O_FORMAT, O_STATE };
	static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
	                                     {"ca", required_argument, NULL, O_CA},
	                                     {"out", required_argument, NULL, O_OUT},
	                                     {"format", required_argument, NULL, O_FORMAT},
	                                     {"state", required_argument, NULL, O_STATE},
	                                     {"output", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	uint8_t uuid[16];
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tenant = optarg;
			break;
		case O_CA:
			o->ca = optarg;
			break;
		case O_OUT:
			o->out = optarg;
			break;
		case O_FORMAT:
			o->format = optarg;
			break;
		case O_STATE:
			o->state = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, "sphere ca-certificate", ca_usage, argv,
			                        &o->json);
			if (rc != 0)
				return rc;
			break;
		}
		}
	}
	if (optind < argc)
		return cli_usage("sphere ca-certificate", "unexpected argument '%s'", argv[optind]);
	/* Ids go into the request path: only a UUID may. */
	if (o->ca && cli_parse_uuid(o->ca, uuid) != 0)
		return cli_usage("sphere ca-certificate", "--ca: a CA id (UUID)");
	if (o->tenant && cli_parse_uuid(o->tenant, uuid) != 0)
		return cli_usage("sphere ca-certificate", "--tenant: a tenant id (UUID)");
	if (o->format && strcmp(o->format, "pem") != 0 && strcmp(o->format, "p7") != 0)
		return cli_usage("sphere ca-certificate", "--format: pem or p7");
	if (o->state && strcmp(o->state, "Active") != 0 && strcmp(o->state, "Revoked") != 0)
		return cli_usage("sphere ca-certificate", "--state: Active or Revoked");
	return 0;
}

/* Writes data to path through a temporary file beside it and a rename. */
static int cli_ca_write(const char *path, const uint8_t *data, size_t len)
{
	char tmp[4096];
	int fd = -1, rc = CLI_EXIT_FAIL;
	size_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return cli_fail("%s: path too long", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return cli_fail("cannot create a file beside %s: %s", path, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	/* Certificates are public: readable like any other. */
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
		goto out;
	if (close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto out;
	rc = CLI_EXIT_OK;
out:
	if (rc != CLI_EXIT_OK) {
		cli_fail("cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	return rc;
}

/* GETs path and writes the reply's bytes to out. */
static int cli_ca_download(const struct cli_session *s, const char *path, const char *out)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	long st = cli_call_raw(s, "GET", path, &raw, &len);
	int rc = CLI_EXIT_FAIL;

	if (st >= 200 && st < 300 && raw) {
		rc = cli_ca_write(out, raw, len);
		if (rc == CLI_EXIT_OK)
			printf("wrote %s (%zu bytes)\n", out, len);
	} else if (st >= 200 && st < 300) {
		cli_fail("the service sent an empty reply");
	}
	free(raw);
	return rc;
}

/* Runs one JSON call and prints its reply (body is consumed). */
static int cli_ca_run(const struct cli_session *s, const struct cli_ca_opts *o, const char *method,
                      const char *path, json_t *body, const char *key, const char *const *cols)
{
	json_t *reply = NULL;
	long st = cli_call(s, method, path, body, &reply);
	int rc = st >= 200 && st < 300 ? CLI_EXIT_OK : CLI_EXIT_FAIL;

	if (rc == CLI_EXIT_OK && reply)
		cli_print(reply, o->json, key, cols);
	json_decref(reply);
	json_decref(body);
	return rc;
}

int cli_ca_certificate(int argc, char **argv)
{
	static const char *const cols[] = {"id", "state", "created", "not_after", NULL};
	static const char *const one[] = {"id",           "state",          "created", "not_after",
	                                  "root_subject", "device_subject", NULL};
	struct cli_session s;
	struct cli_ca_opts o;
	char path[512];
	const char *sub = argc > 1 ? argv[1] : NULL, *t;
	int rc;

	if (!sub || sub[0] == '-') {
		if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h")))
			return fputs(ca_usage, stdout), CLI_EXIT_OK;
		return cli_usage("sphere ca-certificate",
		                 "list, download, download-chain, create or set-state");
	}
	rc = cli_ca_opts(argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "download") == 0 && (!o.ca || !o.out))
		return cli_usage("sphere ca-certificate download", "--ca and --out are required");
	if (strcmp(sub, "download-chain") == 0 && !o.out)
		return cli_usage("sphere ca-certificate download-chain", "--out is required");
	if (strcmp(sub, "set-state") == 0 && (!o.ca || !o.state))
		return cli_usage("sphere ca-certificate set-state",
		                 "--ca and --state are required");
	if (strcmp(sub, "list") != 0 && strcmp(sub, "download") != 0 &&
	    strcmp(sub, "download-chain") != 0 && strcmp(sub, "create") != 0 &&
	    strcmp(sub, "set-state") != 0)
		return cli_usage("sphere ca-certificate", "unknown command '%s'", sub);
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	t = o.tenant ? o.tenant : s.tenant;
	if (!t[0]) {
		cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
		goto out;
	}
	if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", t);
		rc = cli_ca_run(&s, &o, "GET", path, NULL, "ca_certificates", cols);
	} else if (strcmp(sub, "download") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/chain?format=%s", t,
		         o.ca, o.format ? o.format : "pem");
		rc = cli_ca_download(&s, path, o.out);
	} else if (strcmp(sub, "download-chain") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/chain", t);
		rc = cli_ca_download(&s, path, o.out);
	} else if (strcmp(sub, "create") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates", t);
		rc = cli_ca_run(&s, &o, "POST", path, json_object(), NULL, one);
	} else {
		snprintf(path, sizeof(path), "/v1/tenants/%s/ca-certificates/%s/state", t, o.ca);
		rc = cli_ca_run(&s, &o, "POST", path, json_pack("{s:s}", "state", o.state), NULL,
		                one);
	}
out:
	cli_session_wipe(&s);
	return rc;
}
