/*
 * cli api: the commands that talk to the security service (docs/api.md):
 * login, tenant, role, and device claim | list | show | release.
 *
 * The session (service URL, API token, CA file, selected tenant) lives in
 * $SPHERE_CONFIG, else ~/.config/sphere/config.json, written mode 0600
 * through a temporary file and a rename. Errors print the service's reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "cli_api.h"

#define CLI_REPLY_MAX (8u << 20)  /* bytes of a JSON service reply we accept */
#define CLI_RAW_MAX   (72u << 20) /* bytes of a download (an image package) we accept */

struct cli_opts {
	const char *url, *token, *ca, *tenant, *name, *role, *user, *user_id, *device, *to, *out;
	const char *group, *image; /* download-error-report's scope */
	bool json;
};

void cli_session_wipe(struct cli_session *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

static int cli_config_path(char *out, size_t cap)
{
	const char *p = getenv("SPHERE_CONFIG"), *home = getenv("HOME");
	int n;

	if (p && p[0])
		n = snprintf(out, cap, "%s", p);
	else if (home && home[0])
		n = snprintf(out, cap, "%s/.config/sphere/config.json", home);
	else
		return -1;
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int cli_copy(char *dst, size_t cap, const char *src)
{
	if (!src || strlen(src) >= cap)
		return -1;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int cli_session_load(struct cli_session *s)
{
	char path[600];
	json_t *j;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (cli_config_path(path, sizeof(path)) != 0)
		return cli_fail("no configuration path: set $SPHERE_CONFIG or $HOME");
	j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	if (!j)
		return cli_fail("not logged in (no %s): run 'sphere login'", path);
	if (cli_copy(s->url, sizeof(s->url), json_string_value(json_object_get(j, "url"))) ||
	    cli_copy(s->token, sizeof(s->token), json_string_value(json_object_get(j, "token"))))
		goto out;
	(void)cli_copy(s->ca, sizeof(s->ca), json_string_value(json_object_get(j, "ca")));
	(void)cli_copy(s->tenant, sizeof(s->tenant),
	               json_string_value(json_object_get(j, "tenant")));
	rc = 0;
out:
	json_decref(j);
	if (rc != 0) {
		cli_session_wipe(s);
		return cli_fail("%s is damaged: run 'sphere login' again", path);
	}
	return 0;
}

/* mkdir -p of path's parent, mode 0700. */
static void cli_mkdir_parent(const char *path)
{
	char tmp[600];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(tmp, 0700);
		*p = '/';
	}
}

static int cli_session_save(const struct cli_session *s)
{
	char path[600], tmp[620];
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "url", s->url, "token", s->token, "ca", s->ca,
	                      "tenant", s->tenant);
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	int fd = -1, rc = CLI_EXIT_FAIL;
	size_t len;

	json_decref(j);
	if (!text || cli_config_path(path, sizeof(path)) != 0)
		goto out;
	cli_mkdir_parent(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		cli_fail("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	rc = CLI_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	return rc;
}

struct cli_buf {
	char *p;
	size_t n;
	size_t max; /* the reply's bound */
};

static size_t cli_on_data(char *d, size_t sz, size_t n, void *arg)
{
	struct cli_buf *b = arg;
	char *q;

	if (sz * n > b->max - b->n)
		return 0; /* too large: curl fails the transfer */
	q = realloc(b->p, b->n + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, d, sz * n);
	b->n += sz * n;
	q[b->n] = '\0';
	b->p = q;
	return sz * n;
}

/* Calls the service (cli_call, cli_call_raw, cli_call_upload): with raw
 * set, a 2xx reply's bytes are handed over there instead of parsed as JSON
 * into *reply; with up set, up_len bytes are the request body (an
 * application/octet-stream upload) instead of body. */
static long cli_call_any(const struct cli_session *s, const char *method, const char *path,
                         json_t *body, json_t **reply, uint8_t **raw, size_t *raw_len,
                         const uint8_t *up, size_t up_len)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct cli_buf b = {NULL, 0, raw ? CLI_RAW_MAX : CLI_REPLY_MAX};
	char url[1024], auth[128], *text = NULL;
	long status = -1;
	CURLcode cc;

	*reply = NULL;
	if (!c)
		return cli_fail("out of memory"), -1;
	snprintf(url, sizeof(url), "%s%s", s->url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->token);
	h = curl_slist_append(h, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	if (s->ca[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, s->ca);
	if (up) {
		h = curl_slist_append(h, "Content-Type: application/octet-stream");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, up);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up_len);
	} else if (body) {
		text = json_dumps(body, JSON_COMPACT);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "{}");
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		cli_fail("%s: %s", s->url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (raw && status >= 200 && status < 300) {
		*raw = (uint8_t *)b.p;
		*raw_len = b.n;
		b.p = NULL; /* transferred */
		goto out;
	}
	if (b.n)
		*reply = json_loadb(b.p, b.n, JSON_REJECT_DUPLICATES, NULL);
	if (status >= 400) {
		const char *err = json_string_value(json_object_get(*reply, "error"));
		const char *why = json_string_value(json_object_get(*reply, "reason"));
		cli_fail("%ld %s: %s", status, err ? err : "error",
		         why ? why : "(no reason given)");
	}
out:
	free(text);
	free(b.p);
	curl_slist_free_all(h);
	OPENSSL_cleanse(auth, sizeof(auth));
	curl_easy_cleanup(c);
	return status;
}

long cli_call(const struct cli_session *s, const char *method, const char *path, json_t *body,
              json_t **reply)
{
	return cli_call_any(s, method, path, body, reply, NULL, NULL, NULL, 0);
}

long cli_call_upload(const struct cli_session *s, const char *method, const char *path,
                     const uint8_t *data, size_t len, json_t **reply)
{
	if (!data)
		return cli_fail("nothing to upload"), -1;
	return cli_call_any(s, method, path, NULL, reply, NULL, NULL, data, len);
}

long cli_call_raw_body(const struct cli_session *s, const char *method, const char *path,
                       json_t *body, uint8_t **raw, size_t *len)
{
	json_t *reply = NULL;
	long st;

	*raw = NULL;
	*len = 0;
	st = cli_call_any(s, method, path, body, &reply, raw, len, NULL, 0);
	json_decref(reply);
	return st;
}

long cli_call_raw(const struct cli_session *s, const char *method, const char *path, uint8_t **raw,
                  size_t *len)
{
	json_t *reply = NULL;
	long st;

	*raw = NULL;
	*len = 0;
	st = cli_call_any(s, method, path, NULL, &reply, raw, len, NULL, 0);
	json_decref(reply);
	return st;
}

void cli_print(json_t *reply, bool as_json, const char *key, const char *const *cols)
{
	json_t *rows = key ? json_object_get(reply, key) : NULL;

	if (as_json || (key && !json_is_array(rows))) {
		char *t = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (t)
			printf("%s\n", t);
		free(t);
		return;
	}
	if (!key) { /* one object: a "name value" line per column */
		for (size_t i = 0; cols[i]; i++) {
			json_t *v = json_object_get(reply, cols[i]);
			if (json_is_integer(v))
				printf("%-12s %lld\n", cols[i], (long long)json_integer_value(v));
			else if (json_is_boolean(v))
				printf("%-12s %s\n", cols[i], json_is_true(v) ? "true" : "false");
			else
				printf("%-12s %s\n", cols[i],
				       json_is_string(v) ? json_string_value(v) : "-");
		}
		return;
	}
	for (size_t i = 0; cols[i]; i++)
		printf(i ? "  %s" : "%s", cols[i]);
	printf("\n");
	for (size_t r = 0; r < json_array_size(rows); r++) {
		json_t *row = json_array_get(rows, r);
		for (size_t i = 0; cols[i]; i++) {
			json_t *v = json_object_get(row, cols[i]);
			if (json_is_integer(v))
				printf(i ? "  %lld" : "%lld", (long long)json_integer_value(v));
			else if (json_is_boolean(v))
				printf(i ? "  %s" : "%s", json_is_true(v) ? "true" : "false");
			else
				printf(i ? "  %s" : "%s",
				       json_is_string(v) ? json_string_value(v) : "-");
		}
		printf("\n");
	}
}

static const char api_usage[] =
        "usage: sphere login --url URL --token TOKEN [--ca FILE]\n"
        "       sphere tenant list | create --name NAME | show | select --tenant ID\n"
        "       sphere tenant download-error-report [--device-group ID | --image ID]\n"
        "              [--out FILE]\n"
        "       sphere role list | add --user NAME --role ROLE | remove --user-id ID\n"
        "       sphere device claim | show --device-id HEX\n"
        "       sphere device list\n"
        "       sphere device release --device-id HEX --to-tenant ID\n"
        "       sphere device update --device-id HEX --device-group ID  (see\n"
        "              'sphere device-group --help')\n"
        "       sphere device register | registration show  (platform operator; see\n"
        "              'sphere device register --help')\n"
        "\n"
        "Talk to the security service (docs/api.md). 'login' checks the token and\n"
        "stores the session in $SPHERE_CONFIG (default ~/.config/sphere/config.json,\n"
        "mode 0600) and selects your first tenant; other commands use it.\n"
        "ROLE: Reader, Contributor or Administrator. 'role add' prints a new\n"
        "user's first token once.\n"
        "\n"
        "options:\n"
        "  -u, --url URL        the service, e.g. https://localhost:8443\n"
        "  -k, --token TOKEN    an API token (sph_...)\n"
        "      --ca FILE        the CA (or self-signed certificate) to trust for it\n"
        "  -t, --tenant ID      the tenant (default: the selected one)\n"
        "  -n, --name NAME      a tenant name\n"
        "      --user NAME      a user name\n"
        "      --user-id ID     a user id\n"
        "  -r, --role ROLE      a role\n"
        "  -i, --device-id HEX  a device id (128 hex digits)\n"
        "      --to-tenant ID   the tenant a device is released to\n"
        "      --out FILE       where download-error-report writes (default: stdout)\n"
        "      --device-group ID  download-error-report: only the devices now in it\n"
        "      --image ID       download-error-report: only reports naming its component\n"
        "                       (a tenant or an OS image)\n"
        "  -o, --output FMT     table (default) or json\n"
        "  -h, --help           show this help\n"
        "exit status: 0 success, 1 failure (the service's reason is printed), 2 usage\n";

int cli_opt_common(int c, const char *cmd, const char *usage, char **argv, bool *json)
{
	switch (c) {
	case 'o':
		if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
			return cli_usage(cmd, "--output: table or json");
		*json = strcmp(optarg, "json") == 0;
		return 0;
	case 'h':
		fputs(usage, stdout);
		return -1;
	default:
		return cli_usage(cmd, "unknown option or missing argument '%s'", argv[optind - 1]);
	}
}

/* Parses the options after the subcommand (argv[0] is the subcommand). */
static int cli_api_opts(const char *cmd, int argc, char **argv, struct cli_opts *o)
{
	enum { O_CA = 256, O_USER, O_USER_ID, O_TO, O_OUT, O_GROUP, O_IMAGE };
	static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
	                                     {"token", required_argument, NULL, 'k'},
	                                     {"ca", required_argument, NULL, O_CA},
	                                     {"tenant", required_argument, NULL, 't'},
	                                     {"name", required_argument, NULL, 'n'},
	                                     {"user", required_argument, NULL, O_USER},
	                                     {"user-id", required_argument, NULL, O_USER_ID},
	                                     {"role", required_argument, NULL, 'r'},
	                                     {"device-id", required_argument, NULL, 'i'},
	                                     {"to-tenant", required_argument, NULL, O_TO},
	                                     {"out", required_argument, NULL, O_OUT},
	                                     {"device-group", required_argument, NULL, O_GROUP},
	                                     {"image", required_argument, NULL, O_IMAGE},
	                                     {"output", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "u:k:t:n:r:i:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'k':
			o->token = optarg;
			break;
		case O_OUT:
			o->out = optarg;
			break;
		case O_GROUP:
			o->group = optarg;
			break;
		case O_IMAGE:
			o->image = optarg;
			break;
		case O_CA:
			o->ca = optarg;
			break;
		case 't':
			o->tenant = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case O_USER:
			o->user = optarg;
			break;
		case O_USER_ID:
			o->user_id = optarg;
			break;
		case 'r':
			o->role = optarg;
			break;
		case 'i':
			o->device = optarg;
			break;
		case O_TO:
			o->to = optarg;
			break;
		default: {
			int rc = cli_opt_common(c, cmd, api_usage, argv, &o->json);
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

/* Runs one call and prints its reply; the exit status. */
static int cli_run(const struct cli_session *s, const struct cli_opts *o, const char *method,
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

static const char *cli_selected_tenant(const struct cli_session *s, const struct cli_opts *o)
{
	const char *t = o->tenant ? o->tenant : s->tenant;

	if (!t || !t[0]) {
		cli_fail("no tenant selected: use --tenant ID or 'sphere tenant select'");
		return NULL;
	}
	return t;
}

int cli_login(int argc, char **argv)
{
	static const char *const me_cols[] = {"id", "name", "role", NULL};
	struct cli_session s;
	struct cli_opts o;
	json_t *reply = NULL, *ts;
	int rc = cli_api_opts("sphere login", argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (!o.url || !o.token)
		return cli_usage("sphere login", "--url and --token are required");
	memset(&s, 0, sizeof(s));
	if (strncmp(o.url, "https://", 8) != 0 || cli_copy(s.url, sizeof(s.url), o.url) ||
	    cli_copy(s.token, sizeof(s.token), o.token) ||
	    (o.ca && cli_copy(s.ca, sizeof(s.ca), o.ca)))
		return cli_usage("sphere login", "--url must be https://...; values too long");
	rc = CLI_EXIT_FAIL;
	if (cli_call(&s, "GET", "/v1/me", NULL, &reply) != 200)
		goto out;
	ts = json_object_get(reply, "tenants");
	if (json_array_size(ts) > 0)
		(void)cli_copy(s.tenant, sizeof(s.tenant),
		               json_string_value(json_object_get(json_array_get(ts, 0), "id")));
	rc = cli_session_save(&s);
	if (rc == CLI_EXIT_OK) {
		printf("logged in as %s\n",
		       json_string_value(json_object_get(json_object_get(reply, "user"), "name")));
		cli_print(reply, o.json, "tenants", me_cols);
	}
out:
	json_decref(reply);
	cli_session_wipe(&s);
	return rc;
}

/* The tenant's failure reports (crashes, exit codes, refused images...),
 * newest first, every page, as one JSON array: to out (through a temporary
 * file and a rename) or to stdout. */
static int cli_error_report(const struct cli_session *s, const char *tenant,
                            const struct cli_opts *o)
{
	json_t *all = json_array(), *reply = NULL;
	const char *out = o->out;
	char path[512], tmp[600], scope[160] = "", *esc = NULL;
	long long before = 0;
	char *text = NULL;
	int rc = CLI_EXIT_FAIL;
	FILE *f = NULL;

	if (o->group && o->image) {
		rc = cli_usage("sphere tenant download-error-report",
		               "--device-group or --image, not both");
		goto out;
	}
	if (!all)
		goto out;
	if (o->group || o->image) {
		esc = curl_easy_escape(NULL, o->group ? o->group : o->image, 0);
		if (!esc || strlen(esc) > 100) {
			cli_fail("%s: not an id", o->group ? "--device-group" : "--image");
			goto out;
		}
		snprintf(scope, sizeof(scope), "&%s=%s", o->group ? "device_group" : "image", esc);
	}
	for (;;) {
		json_t *page;
		size_t n;
		if (before > 0)
			snprintf(path, sizeof(path),
			         "/v1/tenants/%s/failures?limit=1000&before=%lld%s", tenant, before,
			         scope);
		else
			snprintf(path, sizeof(path), "/v1/tenants/%s/failures?limit=1000%s", tenant,
			         scope);
		if (cli_call(s, "GET", path, NULL, &reply) != 200)
			goto out;
		page = json_object_get(reply, "failures");
		n = json_array_size(page);
		for (size_t i = 0; i < n; i++)
			json_array_append(all, json_array_get(page, i));
		if (n < 1000)
			break;
		before = (long long)json_integer_value(
		        json_object_get(json_array_get(page, n - 1), "id"));
		json_decref(reply);
		reply = NULL;
		if (before <= 1)
			break;
	}
	text = json_dumps(all, JSON_INDENT(2));
	if (!text)
		goto out;
	if (!out) {
		printf("%s\n", text);
		rc = CLI_EXIT_OK;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0 || rename(tmp, out) != 0) {
		f = NULL;
		(void)remove(tmp);
		cli_fail("cannot write %s: %s", out, strerror(errno));
		goto out;
	}
	f = NULL;
	printf("%zu failure report(s) written to %s\n", json_array_size(all), out);
	rc = CLI_EXIT_OK;
out:
	curl_free(esc);
	free(text);
	json_decref(reply);
	json_decref(all);
	return rc;
}

int cli_tenant(int argc, char **argv)
{
	static const char *const cols[] = {"id", "name", "role", NULL};
	static const char *const one[] = {"id", "name", "role", "created", NULL};
	struct cli_session s;
	struct cli_opts o;
	char path[256];
	const char *sub = argc > 1 ? argv[1] : NULL, *t;
	int rc;

	if (!sub || sub[0] == '-') {
		if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h")))
			return fputs(api_usage, stdout), CLI_EXIT_OK;
		return cli_usage("sphere tenant",
		                 "list, create, show, select or download-error-report");
	}
	rc = cli_api_opts("sphere tenant", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	if (strcmp(sub, "list") == 0) {
		rc = cli_run(&s, &o, "GET", "/v1/tenants", NULL, "tenants", cols);
	} else if (strcmp(sub, "create") == 0) {
		rc = o.name ? cli_run(&s, &o, "POST", "/v1/tenants",
		                      json_pack("{s:s}", "name", o.name), NULL, one)
		            : cli_usage("sphere tenant create", "--name is required");
	} else if (strcmp(sub, "show") == 0) {
		rc = CLI_EXIT_FAIL;
		if ((t = cli_selected_tenant(&s, &o))) {
			snprintf(path, sizeof(path), "/v1/tenants/%s", t);
			rc = cli_run(&s, &o, "GET", path, NULL, NULL, one);
		}
	} else if (strcmp(sub, "download-error-report") == 0) {
		rc = CLI_EXIT_FAIL;
		if ((t = cli_selected_tenant(&s, &o)))
			rc = cli_error_report(&s, t, &o);
	} else if (strcmp(sub, "select") == 0) {
		json_t *reply = NULL;
		rc = CLI_EXIT_FAIL;
		if (!o.tenant) {
			rc = cli_usage("sphere tenant select", "--tenant is required");
		} else if (snprintf(path, sizeof(path), "/v1/tenants/%s", o.tenant) > 0 &&
		           cli_call(&s, "GET", path, NULL, &reply) == 200 &&
		           cli_copy(s.tenant, sizeof(s.tenant), o.tenant) == 0) {
			rc = cli_session_save(&s);
			if (rc == CLI_EXIT_OK)
				printf("selected tenant %s\n", o.tenant);
		}
		json_decref(reply);
	} else {
		rc = cli_usage("sphere tenant", "unknown command '%s'", sub);
	}
	cli_session_wipe(&s);
	return rc;
}

int cli_role(int argc, char **argv)
{
	static const char *const cols[] = {"user_id", "user", "role", NULL};
	static const char *const added[] = {"user_id", "user", "role", "token", NULL};
	struct cli_session s;
	struct cli_opts o;
	char path[256];
	const char *sub = argc > 1 ? argv[1] : NULL, *t;
	int rc;

	if (!sub || sub[0] == '-') {
		if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h")))
			return fputs(api_usage, stdout), CLI_EXIT_OK;
		return cli_usage("sphere role", "list, add or remove");
	}
	rc = cli_api_opts("sphere role", argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (!(t = cli_selected_tenant(&s, &o)))
		goto out;
	if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t);
		rc = cli_run(&s, &o, "GET", path, NULL, "roles", cols);
	} else if (strcmp(sub, "add") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/users", t);
		rc = o.user && o.role
		             ? cli_run(&s, &o, "POST", path,
		                       json_pack("{s:s, s:s}", "name", o.user, "role", o.role),
		                       NULL, added)
		             : cli_usage("sphere role add", "--user and --role are required");
	} else if (strcmp(sub, "remove") == 0) {
		if (!o.user_id) {
			rc = cli_usage("sphere role remove", "--user-id is required");
		} else {
			snprintf(path, sizeof(path), "/v1/tenants/%s/roles/%s", t, o.user_id);
			rc = cli_run(&s, &o, "DELETE", path, NULL, NULL, cols);
			if (rc == CLI_EXIT_OK)
				printf("removed\n");
		}
	} else {
		rc = cli_usage("sphere role", "unknown command '%s'", sub);
	}
out:
	cli_session_wipe(&s);
	return rc;
}

int cli_device_api(int argc, char **argv)
{
	static const char *const cols[] = {"id",       "claimed",    "released_to",
	                                   "group_id", "registered", NULL};
	static const char *const one[] = {"id",          "tenant_id",     "claimed",
	                                  "released_to", "group_id",      "registered",
	                                  "mode",        "update_status", NULL};
	struct cli_session s;
	struct cli_opts o;
	char path[512];
	const char *sub = argv[0], *t;
	int rc = cli_api_opts("sphere device", argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (strcmp(sub, "list") != 0 && !o.device)
		return cli_usage("sphere device", "--device-id is required");
	if (strcmp(sub, "release") == 0 && !o.to)
		return cli_usage("sphere device release", "--to-tenant is required");
	if (cli_session_load(&s) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (!(t = cli_selected_tenant(&s, &o)))
		goto out;
	if (strcmp(sub, "claim") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/devices", t);
		rc = cli_run(&s, &o, "POST", path, json_pack("{s:s}", "device_id", o.device), NULL,
		             one);
	} else if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/devices?limit=1000", t);
		rc = cli_run(&s, &o, "GET", path, NULL, "devices", cols);
	} else if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", t, o.device);
		rc = cli_run(&s, &o, "GET", path, NULL, NULL, one);
	} else {
		snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s/release", t, o.device);
		rc = cli_run(&s, &o, "POST", path, json_pack("{s:s}", "to_tenant", o.to), NULL,
		             one);
	}
out:
	cli_session_wipe(&s);
	return rc;
}
