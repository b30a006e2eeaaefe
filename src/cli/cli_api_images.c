/*
 * cli api images: the image catalogue in the security service
 * (docs/api-images.md): `sphere image add|list|show|download`, `sphere
 * deployment create|list`, `sphere os-image add|list`, `sphere os-feed
 * publish|list` and `sphere device-group target`. Ids are checked locally
 * before they go into a URL; downloads are written through a temporary file
 * and a rename.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_api.h"
#include "image/image.h"

#define CLI_DEPLOY_MAX 16 /* images in one deployment */

struct cli_img_opts {
	const char *tenant, *file, *out, *group, *feed;
	const char *images[CLI_DEPLOY_MAX];
	size_t n_images;
	bool json;
};

static const char img_usage[] =
        "usage: sphere image add --file PKG\n"
        "       sphere image list | show --image ID\n"
        "       sphere image download --image ID --out FILE\n"
        "       sphere image root --out FILE  (the tenant image root devices install)\n"
        "       sphere deployment create --device-group ID --image ID [--image ID ...]\n"
        "       sphere deployment list --device-group ID\n"
        "       sphere device-group target --device-group ID\n"
        "       sphere os-image add --file PKG          (platform operator)\n"
        "       sphere os-image list\n"
        "       sphere os-feed publish --feed Retail|RetailEval --image ID  (operator)\n"
        "       sphere os-feed list --feed Retail|RetailEval\n"
        "\n"
        "The image catalogue (docs/api-images.md). 'image add' uploads an application\n"
        "package signed with your own (development or production) key; the service\n"
        "checks it and re-signs it with the tenant's production key, whose root\n"
        "certificate GET .../image-root serves (devices install it as their tenant\n"
        "root). A deployment targets 1..16 of the tenant's images, one per component,\n"
        "at a device group; the newest is the group's target, together with the\n"
        "newest OS release of the group's feed, as its update policy allows.\n"
        "\n"
        "options:\n"
        "  -t, --tenant ID        the tenant (default: the selected one)\n"
        "  -f, --file PKG         an image package to upload\n"
        "  -i, --image ID         an image id (repeat for a deployment)\n"
        "  -g, --device-group ID  a device group id\n"
        "      --feed FEED        Retail or RetailEval\n"
        "      --out FILE         where to write a download\n"
        "  -o, --output FMT       table (default) or json\n"
        "  -h, --help             show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

/* Parses the options after the subcommand (argv[0]). Returns 0, -1 after
 * --help, or CLI_EXIT_USAGE. */
static int cli_img_opts(const char *cmd, int argc, char **argv, struct cli_img_opts *o)
{
	enum { O_FEED = 256, O_OUT };
	static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
	                                     {"file", required_argument, NULL, 'f'},
	                                     {"image", required_argument, NULL, 'i'},
	                                     {"device-group", required_argument, NULL, 'g'},
	                                     {"feed", required_argument, NULL, O_FEED},
	                                     {"out", required_argument, NULL, O_OUT},
	                                     {"output", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	uint8_t uuid[16];
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "t:f:i:g:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tenant = optarg;
			break;
		case 'f':
			o->file = optarg;
			break;
		case 'i':
			if (o->n_images >= CLI_DEPLOY_MAX)
				return cli_usage(cmd, "--image: at most %d", CLI_DEPLOY_MAX);
			if (cli_parse_uuid(optarg, uuid) != 0)
				return cli_usage(cmd, "--image: an image id (UUID)");
			o->images[o->n_images++] = optarg;
			break;
		case 'g':
			o->group = optarg;
			break;
		case O_FEED:
			o->feed = optarg;
			break;
		case O_OUT:
			o->out = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, cmd, img_usage, argv, &o->json);
			if (rc != 0)
				return rc;
			break;
		}
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (o->tenant && cli_parse_uuid(o->tenant, uuid) != 0)
		return cli_usage(cmd, "--tenant: a tenant id (UUID)");
	if (o->group && cli_parse_uuid(o->group, uuid) != 0)
		return cli_usage(cmd, "--device-group: a device group id (UUID)");
	if (o->feed && strcmp(o->feed, "Retail") != 0 && strcmp(o->feed, "RetailEval") != 0)
		return cli_usage(cmd, "--feed: Retail or RetailEval");
	return 0;
}

/* Runs one JSON call and prints its reply (body is consumed). */
static int cli_img_run(const struct cli_session *s, const struct cli_img_opts *o,
                       const char *method, const char *path, json_t *body, const char *key,
                       const char *const *cols)
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

/* Uploads o->file to path and prints the new image. */
static int cli_img_upload(const struct cli_session *s, const struct cli_img_opts *o,
                          const char *path, const char *const *cols)
{
	uint8_t *pkg = NULL;
	size_t len = 0;
	json_t *reply = NULL;
	long st;
	int rc = img_read_file(o->file, IMG_MAX_PACKAGE, &pkg, &len);

	if (rc != 0) {
		free(pkg);
		return cli_fail("%s: cannot read the package (%d)", o->file, rc);
	}
	st = cli_call_upload(s, "POST", path, pkg, len, &reply);
	rc = st >= 200 && st < 300 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (rc == CLI_EXIT_OK && reply)
		cli_print(reply, o->json, NULL, cols);
	json_decref(reply);
	free(pkg);
	return rc;
}

static int cli_img_download(const struct cli_session *s, const char *path, const char *out)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	long st = cli_call_raw(s, "GET", path, &raw, &len);
	int rc = CLI_EXIT_FAIL;

	if (st >= 200 && st < 300 && raw) {
		if (img_write_file(out, raw, len, 0644, true) == 0) {
			printf("wrote %s (%zu bytes)\n", out, len);
			rc = CLI_EXIT_OK;
		} else {
			cli_fail("cannot write %s", out);
		}
	} else if (st >= 200 && st < 300) {
		cli_fail("the service sent an empty reply");
	}
	free(raw);
	return rc;
}

/* Loads the session and the tenant; CLI_EXIT_OK or CLI_EXIT_FAIL (printed). */
static int cli_img_session(struct cli_session *s, const struct cli_img_opts *o, bool tenant,
                           const char **t)
{
	if (cli_session_load(s) != 0)
		return CLI_EXIT_FAIL;
	*t = o->tenant ? o->tenant : s->tenant;
	if (tenant && !(*t)[0]) {
		cli_session_wipe(s);
		return cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
	}
	return CLI_EXIT_OK;
}

static const char *const img_cols[] = {"id",           "component_id",   "type",
                                       "name",         "version",        "security_version",
                                       "package_size", "package_sha256", NULL};
static const char *const img_list_cols[] = {"id", "type", "name", "version", "security_version",
                                            NULL};

/* The subcommand (argv[1]) or a usage error / help. */
static int cli_img_sub(const char *cmd, int argc, char **argv, const char *choices,
                       const char **sub)
{
	*sub = argc > 1 ? argv[1] : NULL;
	if (!*sub || (*sub)[0] == '-') {
		if (*sub && (!strcmp(*sub, "--help") || !strcmp(*sub, "-h"))) {
			fputs(img_usage, stdout);
			return -1;
		}
		return cli_usage(cmd, "%s", choices);
	}
	return 0;
}

int cli_image_api(int argc, char **argv)
{
	struct cli_session s;
	struct cli_img_opts o;
	char path[512];
	const char *sub, *t;
	int rc = cli_img_sub("sphere image", argc, argv, "add, list, show or download", &sub);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_img_opts("sphere image", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "add") == 0 && !o.file)
		return cli_usage("sphere image add", "--file is required");
	if ((strcmp(sub, "show") == 0 || strcmp(sub, "download") == 0) && o.n_images != 1)
		return cli_usage("sphere image", "one --image is required");
	if ((strcmp(sub, "download") == 0 || strcmp(sub, "root") == 0) && !o.out)
		return cli_usage("sphere image", "--out is required");
	if (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 &&
	    strcmp(sub, "download") != 0 && strcmp(sub, "root") != 0)
		return cli_usage("sphere image", "unknown command '%s'", sub);
	if (cli_img_session(&s, &o, true, &t) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	if (strcmp(sub, "add") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/images", t);
		rc = cli_img_upload(&s, &o, path, img_cols);
	} else if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/images?limit=1000", t);
		rc = cli_img_run(&s, &o, "GET", path, NULL, "images", img_list_cols);
	} else if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/images/%s", t, o.images[0]);
		rc = cli_img_run(&s, &o, "GET", path, NULL, NULL, img_cols);
	} else if (strcmp(sub, "root") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/image-root", t);
		rc = cli_img_download(&s, path, o.out);
	} else {
		snprintf(path, sizeof(path), "/v1/tenants/%s/images/%s/package", t, o.images[0]);
		rc = cli_img_download(&s, path, o.out);
	}
	cli_session_wipe(&s);
	return rc;
}

int cli_deployment(int argc, char **argv)
{
	static const char *const cols[] = {"id", "group_id", "created", NULL};
	struct cli_session s;
	struct cli_img_opts o;
	char path[512];
	const char *sub, *t;
	int rc = cli_img_sub("sphere deployment", argc, argv, "create or list", &sub);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_img_opts("sphere deployment", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0)
		return cli_usage("sphere deployment", "unknown command '%s'", sub);
	if (!o.group)
		return cli_usage("sphere deployment", "--device-group is required");
	if (strcmp(sub, "create") == 0 && o.n_images == 0)
		return cli_usage("sphere deployment create", "at least one --image is required");
	if (cli_img_session(&s, &o, true, &t) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s/deployments", t, o.group);
	if (strcmp(sub, "create") == 0) {
		json_t *ids = json_array();
		for (size_t i = 0; ids && i < o.n_images; i++)
			json_array_append_new(ids, json_string(o.images[i]));
		rc = ids ? cli_img_run(&s, &o, "POST", path, json_pack("{s:o}", "image_ids", ids),
		                       NULL, cols)
		         : cli_fail("out of memory");
	} else {
		rc = cli_img_run(&s, &o, "GET", path, NULL, "deployments", cols);
	}
	cli_session_wipe(&s);
	return rc;
}

int cli_group_target(int argc, char **argv)
{
	static const char *const cols[] = {"type", "version",  "security_version",
	                                   "os",   "image_id", NULL};
	struct cli_session s;
	struct cli_img_opts o;
	char path[512];
	const char *t;
	int rc = cli_img_opts("sphere device-group target", argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (!o.group)
		return cli_usage("sphere device-group target", "--device-group is required");
	if (cli_img_session(&s, &o, true, &t) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups/%s/target", t, o.group);
	rc = cli_img_run(&s, &o, "GET", path, NULL, "images", cols);
	cli_session_wipe(&s);
	return rc;
}

int cli_os_image(int argc, char **argv)
{
	struct cli_session s;
	struct cli_img_opts o;
	const char *sub, *t;
	int rc = cli_img_sub("sphere os-image", argc, argv, "add or list", &sub);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_img_opts("sphere os-image", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0)
		return cli_usage("sphere os-image", "unknown command '%s'", sub);
	if (strcmp(sub, "add") == 0 && !o.file)
		return cli_usage("sphere os-image add", "--file is required");
	if (cli_img_session(&s, &o, false, &t) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	if (strcmp(sub, "add") == 0)
		rc = cli_img_upload(&s, &o, "/v1/os-images", img_cols);
	else
		rc = cli_img_run(&s, &o, "GET", "/v1/os-images?limit=1000", NULL, "images",
		                 img_list_cols);
	cli_session_wipe(&s);
	return rc;
}

int cli_os_feed(int argc, char **argv)
{
	static const char *const cols[] = {"id", "feed", "image_id", "published", NULL};
	struct cli_session s;
	struct cli_img_opts o;
	char path[256];
	const char *sub, *t;
	int rc = cli_img_sub("sphere os-feed", argc, argv, "publish or list", &sub);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_img_opts("sphere os-feed", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "publish") != 0 && strcmp(sub, "list") != 0)
		return cli_usage("sphere os-feed", "unknown command '%s'", sub);
	if (!o.feed)
		return cli_usage("sphere os-feed", "--feed is required");
	if (strcmp(sub, "publish") == 0 && o.n_images != 1)
		return cli_usage("sphere os-feed publish", "one --image is required");
	if (cli_img_session(&s, &o, false, &t) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/v1/os-feeds/%s/releases", o.feed);
	if (strcmp(sub, "publish") == 0)
		rc = cli_img_run(&s, &o, "POST", path, json_pack("{s:s}", "image_id", o.images[0]),
		                 NULL, cols);
	else
		rc = cli_img_run(&s, &o, "GET", path, NULL, "releases", cols);
	cli_session_wipe(&s);
	return rc;
}
