/*
 * cli api groups: products and device groups in the security service
 * (docs/api-groups.md): `sphere product create | list | show`, `sphere
 * device-group create | update | list | show` and `sphere device update
 * --device-group`. Ids are checked here before they go into a URL path.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_api.h"

#define CLI_DEVICE_ID_HEX 128

struct cli_gopts {
	const char *tenant, *name, *description, *product, *group, *feed, *policy, *device;
	bool json, no_defaults;
};

static const char groups_usage[] =
        "usage: sphere product create --name NAME [--description TEXT] [--no-default-groups]\n"
        "       sphere product list | show --product ID\n"
        "       sphere device-group create --product ID --name NAME [--description TEXT]\n"
        "              [--os-feed FEED] [--update-policy POLICY]\n"
        "       sphere device-group update --device-group ID [--name NAME]\n"
        "              [--description TEXT] [--os-feed FEED] [--update-policy POLICY]\n"
        "       sphere device-group list [--product ID] | show --device-group ID\n"
        "       sphere device update --device-id HEX --device-group ID|none\n"
        "\n"
        "Products and their device groups in the security service. A new product\n"
        "gets five groups unless --no-default-groups: Development (Retail,\n"
        "No3rdPartyAppUpdates), Field Test and Production (Retail, UpdateAll), Field\n"
        "Test OS Evaluation and Production OS Evaluation (RetailEval, UpdateAll).\n"
        "FEED: Retail or RetailEval (receives each OS release earlier); default Retail.\n"
        "POLICY: UpdateAll, No3rdPartyAppUpdates or NoUpdates; default UpdateAll.\n"
        "Creating and changing needs the Contributor role; 'device update' with\n"
        "'none' takes the device out of its group.\n"
        "\n"
        "options:\n"
        "  -t, --tenant ID          the tenant (default: the selected one)\n"
        "  -n, --name NAME          a product or group name\n"
        "  -d, --description TEXT   its description\n"
        "  -p, --product ID         a product id\n"
        "  -g, --device-group ID    a device group id\n"
        "      --os-feed FEED       the group's OS feed\n"
        "      --update-policy POL  the group's update policy\n"
        "      --no-default-groups  create the product without groups\n"
        "  -i, --device-id HEX      a device id (128 lowercase hex digits)\n"
        "  -o, --output FMT         table (default) or json\n"
        "  -h, --help               show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

/* Parses the options after the subcommand (argv[0]). Returns 0, -1 after
 * --help, or CLI_EXIT_USAGE. */
static int cli_groups_opts(const char *cmd, int argc, char **argv, struct cli_gopts *o)
{
	enum { O_FEED = 256, O_POLICY, O_NO_DEFAULTS };
	static const struct option opts[] = {
	        {"tenant", required_argument, NULL, 't'},
	        {"name", required_argument, NULL, 'n'},
	        {"description", required_argument, NULL, 'd'},
	        {"product", required_argument, NULL, 'p'},
	        {"device-group", required_argument, NULL, 'g'},
	        {"os-feed", required_argument, NULL, O_FEED},
	        {"update-policy", required_argument, NULL, O_POLICY},
	        {"no-default-groups", no_argument, NULL, O_NO_DEFAULTS},
	        {"device-id", required_argument, NULL, 'i'},
	        {"output", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "t:n:d:p:g:i:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tenant = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'd':
			o->description = optarg;
			break;
		case 'p':
			o->product = optarg;
			break;
		case 'g':
			o->group = optarg;
			break;
		case O_FEED:
			o->feed = optarg;
			break;
		case O_POLICY:
			o->policy = optarg;
			break;
		case O_NO_DEFAULTS:
			o->no_defaults = true;
			break;
		case 'i':
			o->device = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, cmd, groups_usage, argv, &o->json);
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

/* An id that may go into a URL path: a UUID, or 128 hex digits for a device. */
static bool cli_groups_uuid_ok(const char *s)
{
	uint8_t u[16];

	return s && cli_parse_uuid(s, u) == 0;
}

static bool cli_groups_device_ok(const char *s)
{
	if (!s || strlen(s) != CLI_DEVICE_ID_HEX)
		return false;
	for (size_t i = 0; i < CLI_DEVICE_ID_HEX; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

/* The tenant to act in: --tenant, else the session's; NULL after a message. */
static const char *cli_groups_tenant(const struct cli_session *s, const struct cli_gopts *o)
{
	const char *t = o->tenant ? o->tenant : s->tenant;

	if (!t || !t[0]) {
		cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
		return NULL;
	}
	if (!cli_groups_uuid_ok(t)) {
		cli_fail("--tenant: not a tenant id");
		return NULL;
	}
	return t;
}

/* Adds the optional string members to body. Returns 0 or -1 (out of memory). */
static int cli_groups_members(json_t *body, const struct cli_gopts *o)
{
	const struct {
		const char *key, *value;
	} m[] = {{"name", o->name},
	         {"description", o->description},
	         {"os_feed", o->feed},
	         {"update_policy", o->policy}};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (m[i].value && json_object_set_new(body, m[i].key, json_string(m[i].value)) != 0)
			return -1;
	return 0;
}

/* Runs one call (body stolen) and prints its reply; the exit status. */
static int cli_groups_run(const struct cli_session *s, bool as_json, const char *method,
                          const char *path, json_t *body, const char *key, const char *const *cols)
{
	json_t *reply = NULL;
	long st = cli_call(s, method, path, body, &reply);
	int rc = st >= 200 && st < 300 ? CLI_EXIT_OK : CLI_EXIT_FAIL;

	if (rc == CLI_EXIT_OK && reply)
		cli_print(reply, as_json, key, cols);
	json_decref(reply);
	json_decref(body);
	return rc;
}

static const char *const cli_product_one[] = {"id",        "name",    "description",
                                              "tenant_id", "created", NULL};
static const char *const cli_product_cols[] = {"id", "name", "description", NULL};
static const char *const cli_group_one[] = {
        "id", "name", "description", "os_feed", "update_policy", "product_id", "created", NULL};
static const char *const cli_group_cols[] = {"id",         "name", "os_feed", "update_policy",
                                             "product_id", NULL};

/* `sphere <cmd> SUB [OPTIONS]`: checks the subcommand and parses options.
 * Returns 0 (and *sub), or the exit status to return (*done set). */
static int cli_groups_begin(const char *cmd, int argc, char **argv, const char **sub,
                            struct cli_gopts *o, bool *done)
{
	int rc;

	*done = true;
	*sub = argc > 1 ? argv[1] : NULL;
	if (!*sub || (*sub)[0] == '-') {
		if (*sub && (!strcmp(*sub, "--help") || !strcmp(*sub, "-h")))
			return fputs(groups_usage, stdout), CLI_EXIT_OK;
		return cli_usage(cmd, "missing command");
	}
	rc = cli_groups_opts(cmd, argc - 1, argv + 1, o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	*done = false;
	return 0;
}

int cli_product(int argc, char **argv)
{
	static const char cmd[] = "sphere product";
	struct cli_session s;
	struct cli_gopts o;
	char path[512];
	const char *sub, *t;
	json_t *reply = NULL, *body = NULL;
	bool done;
	int rc = cli_groups_begin(cmd, argc, argv, &sub, &o, &done);

	if (done)
		return rc;
	if (strcmp(sub, "create") == 0 && !o.name)
		return cli_usage("sphere product create", "--name is required");
	if (strcmp(sub, "show") == 0 && !cli_groups_uuid_ok(o.product))
		return cli_usage("sphere product show", "--product ID is required (a product id)");
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0)
		return cli_usage(cmd, "unknown command '%s' (create, list or show)", sub);
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (!(t = cli_groups_tenant(&s, &o)))
		goto out;
	if (strcmp(sub, "create") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/products", t);
		body = json_pack("{s:s, s:b}", "name", o.name, "default_groups", !o.no_defaults);
		if (!body ||
		    (o.description &&
		     json_object_set_new(body, "description", json_string(o.description)) != 0))
			goto out;
		if (cli_call(&s, "POST", path, body, &reply) != 201)
			goto out;
		cli_print(reply, o.json, NULL, cli_product_one);
		if (!o.json) {
			printf("\n");
			cli_print(reply, false, "device_groups", cli_group_cols);
		}
		rc = CLI_EXIT_OK;
	} else if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/products?limit=1000", t);
		rc = cli_groups_run(&s, o.json, "GET", path, NULL, "products", cli_product_cols);
	} else {
		snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s", t, o.product);
		rc = cli_groups_run(&s, o.json, "GET", path, NULL, NULL, cli_product_one);
	}
out:
	json_decref(body);
	json_decref(reply);
	cli_session_wipe(&s);
	return rc;
}

int cli_device_group(int argc, char **argv)
{
	static const char cmd[] = "sphere device-group";
	struct cli_session s;
	struct cli_gopts o;
	char path[512];
	const char *sub, *t;
	json_t *body = NULL;
	bool done;
	int rc = cli_groups_begin(cmd, argc, argv, &sub, &o, &done);

	if (done)
		return rc;
	if (strcmp(sub, "create") == 0) {
		if (!cli_groups_uuid_ok(o.product) || !o.name)
			return cli_usage("sphere device-group create",
			                 "--product ID and --name are required");
	} else if (strcmp(sub, "update") == 0) {
		if (!cli_groups_uuid_ok(o.group))
			return cli_usage("sphere device-group update",
			                 "--device-group ID is required (a device group id)");
		if (!o.name && !o.description && !o.feed && !o.policy)
			return cli_usage("sphere device-group update",
			                 "nothing to change: --name, --description, --os-feed or "
			                 "--update-policy");
	} else if (strcmp(sub, "show") == 0) {
		if (!cli_groups_uuid_ok(o.group))
			return cli_usage("sphere device-group show",
			                 "--device-group ID is required (a device group id)");
	} else if (strcmp(sub, "list") == 0) {
		if (o.product && !cli_groups_uuid_ok(o.product))
			return cli_usage("sphere device-group list", "--product: not a product id");
	} else {
		return cli_usage(cmd, "unknown command '%s' (create, update, list or show)", sub);
	}
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (!(t = cli_groups_tenant(&s, &o)))
		goto out;
	if (strcmp(sub, "create") == 0 || strcmp(sub, "update") == 0) {
		bool create = strcmp(sub, "create") == 0;
		body = json_object();
		if (!body || cli_groups_members(body, &o) != 0) {
			rc = cli_fail("out of memory");
			goto out;
		}
		if (create)
			snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", t,
			         o.product);
		else
			snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s", t, o.group);
		rc = cli_groups_run(&s, o.json, create ? "POST" : "PATCH", path, body, NULL,
		                    cli_group_one);
		body = NULL; /* stolen */
	} else if (strcmp(sub, "list") == 0) {
		if (o.product)
			snprintf(path, sizeof(path),
			         "/v1/tenants/%s/products/%s/device-groups?limit=1000", t,
			         o.product);
		else
			snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups?limit=1000", t);
		rc = cli_groups_run(&s, o.json, "GET", path, NULL, "device_groups", cli_group_cols);
	} else {
		snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s", t, o.group);
		rc = cli_groups_run(&s, o.json, "GET", path, NULL, NULL, cli_group_one);
	}
out:
	json_decref(body);
	cli_session_wipe(&s);
	return rc;
}

int cli_device_update(int argc, char **argv)
{
	static const char *const one[] = {"id", "tenant_id", "group_id", NULL};
	static const char cmd[] = "sphere device update";
	struct cli_session s;
	struct cli_gopts o;
	char path[512];
	const char *t;
	json_t *body;
	bool none;
	int rc = cli_groups_opts(cmd, argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (!cli_groups_device_ok(o.device))
		return cli_usage(cmd, "--device-id HEX is required (128 hex digits)");
	if (!o.group)
		return cli_usage(cmd, "--device-group ID (or none) is required");
	none = strcmp(o.group, "none") == 0;
	if (!none && !cli_groups_uuid_ok(o.group))
		return cli_usage(cmd, "--device-group: not a device group id");
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (!(t = cli_groups_tenant(&s, &o)))
		goto out;
	body = none ? json_pack("{s:n}", "group_id") : json_pack("{s:s}", "group_id", o.group);
	if (!body) {
		rc = cli_fail("out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/device-group", t, o.device);
	rc = cli_groups_run(&s, o.json, "PUT", path, body, NULL, one);
out:
	cli_session_wipe(&s);
	return rc;
}
