/*
 * sphere-ss: the security service (docs/api.md).
 *
 *   sphere-ss init  [OPTIONS] [--tenant NAME] [--admin NAME]
 *   sphere-ss serve [OPTIONS]
 *
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "service/service.h"

static const char ss_usage[] =
        "usage: sphere-ss COMMAND [OPTIONS]\n"
        "\n"
        "The Sphere security service: tenants, users and roles, device registration\n"
        "and claiming, products and device groups, the image catalogue, OS feeds\n"
        "and deployments, device check-in (attestation, updates, short-lived\n"
        "certificates from each tenant's CA), failure reports and the audit log,\n"
        "as a JSON API over HTTPS (docs/api.md).\n"
        "\n"
        "commands:\n"
        "  init  [--tenant NAME] [--admin NAME]\n"
        "      Create the data directory (refused if it exists): a TLS key and\n"
        "      self-signed certificate for localhost, the configuration file, the\n"
        "      database, the first tenant (default \"default\"), its Administrator\n"
        "      (default \"admin\") and the platform operator. Prints both API tokens\n"
        "      once; only their hashes are stored.\n"
        "  serve\n"
        "      Serve the API until SIGINT or SIGTERM.\n"
        "\n"
        "options (each also a `key = value` line of the configuration file):\n"
        "  -d, --data-dir DIR   the data directory (default ./sphere-ss-data)\n"
        "  -c, --config FILE    configuration file (default DIR/sphere-ss.conf if present)\n"
        "      --listen ADDR    address to listen on (default 127.0.0.1)\n"
        "  -p, --port N         TCP port, 0 = any free one (default 8443)\n"
        "  -w, --workers N      event-loop threads, 1..64 (default: the number of cores)\n"
        "      --db URL         store: sqlite:PATH or postgresql://... (default\n"
        "                       sqlite:DIR/sphere.db)\n"
        "      --cert FILE      TLS certificate chain, PEM (default DIR/tls/server.pem)\n"
        "      --key FILE       TLS private key, PEM (default DIR/tls/server.key)\n"
        "      --max-body N     request body limit in bytes (default 1048576)\n"
        "      --log-level L    error, warn, info or debug (default info)\n"
        "      --platform-root FILE  the platform root certificate (PEM) OS images must\n"
        "                       chain to (default DIR/platform-root.pem if present)\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

static int ss_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ss_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sphere-ss: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see sphere-ss --help)\n", stderr);
	return 2;
}

static int ss_fail(const char *what, int rc, const char *why)
{
	fprintf(stderr, "sphere-ss: %s: %s%s%s\n", what, sph_strerror(rc), why && *why ? ": " : "",
	        why && *why ? why : "");
	return 1;
}

static int ss_cmd_init(const struct ss_config *c, const char *tenant, const char *admin)
{
	struct ss_init_result res;
	int rc = ss_init(c, tenant, admin, &res);

	if (rc == SPH_ERR_STATE)
		return ss_fail("init", rc, "the data directory exists already");
	if (rc != 0)
		return ss_fail("init", rc, c->data_dir);
	printf("initialised %s\n"
	       "tenant        %s (%s)\n"
	       "administrator %s (%s)\n"
	       "admin token    %s\n"
	       "operator token %s\n"
	       "Store the tokens now: they are not shown again.\n",
	       c->data_dir, res.tenant.name, res.tenant.id, res.admin.name, res.admin.id,
	       res.admin_token, res.operator_token);
	fflush(stdout);
	OPENSSL_cleanse(&res, sizeof(res));
	return 0;
}

static int ss_cmd_serve(const struct ss_config *c)
{
	struct ss_service *s = NULL;
	sigset_t set;
	int sig = 0, rc;

	/* Workers inherit the mask: only this thread takes the signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = ss_service_start(c, &s);
	if (rc != 0)
		return ss_fail("serve", rc, "cannot start (the log says why)");
	printf("sphere-ss listening on %s:%u\n", c->listen, (unsigned)ss_service_port(s));
	fflush(stdout);
	sigwait(&set, &sig);
	sph_log(SPH_LOG_INFO, "ss", "stopping", "signal=%d", sig);
	ss_service_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 256,
		OPT_DB,
		OPT_CERT,
		OPT_KEY,
		OPT_MAX_BODY,
		OPT_LOG,
		OPT_TENANT,
		OPT_ADMIN,
		OPT_PLATFORM_ROOT
	};
	static const struct option opts[] = {
	        {"data-dir", required_argument, NULL, 'd'},
	        {"config", required_argument, NULL, 'c'},
	        {"listen", required_argument, NULL, OPT_LISTEN},
	        {"port", required_argument, NULL, 'p'},
	        {"workers", required_argument, NULL, 'w'},
	        {"db", required_argument, NULL, OPT_DB},
	        {"cert", required_argument, NULL, OPT_CERT},
	        {"key", required_argument, NULL, OPT_KEY},
	        {"max-body", required_argument, NULL, OPT_MAX_BODY},
	        {"log-level", required_argument, NULL, OPT_LOG},
	        {"tenant", required_argument, NULL, OPT_TENANT},
	        {"admin", required_argument, NULL, OPT_ADMIN},
	        {"help", no_argument, NULL, 'h'},
	        {"platform-root", required_argument, NULL, OPT_PLATFORM_ROOT},
	        {NULL, 0, NULL, 0}};
	struct ss_config c;
	const char *cmd, *config = NULL, *tenant = NULL, *admin = NULL;
	char why[SS_REASON_MAX], path[SS_PATH_MAX + 32];
	int ch, rc;

	ss_config_defaults(&c);
	if (argc < 2)
		return ss_usage_error("a command is required");
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(ss_usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "init") != 0 && strcmp(cmd, "serve") != 0)
		return ss_usage_error("unknown command '%s'", cmd);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "d:c:p:w:h", opts, NULL)) != -1) {
		const char *key = NULL;
		switch (ch) {
		case 'h':
			fputs(ss_usage, stdout);
			return 0;
		case 'c':
			config = optarg;
			continue;
		case OPT_TENANT:
			tenant = optarg;
			continue;
		case OPT_ADMIN:
			admin = optarg;
			continue;
		case 'd':
			key = "data-dir";
			break;
		case 'p':
			key = "port";
			break;
		case 'w':
			key = "workers";
			break;
		case OPT_LISTEN:
			key = "listen";
			break;
		case OPT_DB:
			key = "db";
			break;
		case OPT_CERT:
			key = "cert";
			break;
		case OPT_KEY:
			key = "key";
			break;
		case OPT_MAX_BODY:
			key = "max-body";
			break;
		case OPT_LOG:
			key = "log-level";
			break;
		case OPT_PLATFORM_ROOT:
			key = "platform-root";
			break;
		default:
			return ss_usage_error("bad option");
		}
		if (ss_config_set(&c, key, optarg, why, sizeof(why)) != 0)
			return ss_usage_error("--%s", why);
	}
	if (optind != argc)
		return ss_usage_error("unexpected argument '%s'", argv[optind]);
	if ((tenant || admin) && strcmp(cmd, "init") != 0)
		return ss_usage_error("--tenant and --admin are for init");
	/* The file: given, or the data directory's when it exists (serve). */
	if (!config && strcmp(cmd, "serve") == 0) {
		if (snprintf(path, sizeof(path), "%s/sphere-ss.conf", c.data_dir) >=
		    (int)sizeof(path))
			return ss_usage_error("--data-dir: path too long");
		config = path;
		rc = ss_config_load(&c, config, why, sizeof(why));
		if (rc == SPH_ERR_NOT_FOUND)
			rc = 0;
	} else {
		rc = config ? ss_config_load(&c, config, why, sizeof(why)) : 0;
	}
	if (rc != 0)
		return ss_fail("configuration", rc, why);
	setenv("SPHERE_LOG", c.log_level, 0);
	if (strcmp(cmd, "init") == 0)
		return ss_cmd_init(&c, tenant, admin);
	return ss_cmd_serve(&c);
}
