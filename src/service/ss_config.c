/*
 * ss_config: sphere-ss options from defaults, a `key = value` file and flags
 * (docs/api.md §1.1).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "service.h"

#define SS_CONFIG_LINE_MAX 1024
#define SS_MAX_BODY_LIMIT  (64u << 20)

enum ss_opt_kind { SS_OPT_STR, SS_OPT_PORT, SS_OPT_WORKERS, SS_OPT_SIZE, SS_OPT_LOGLEVEL };

struct ss_opt {
	const char *key;
	enum ss_opt_kind kind;
	size_t off;  /* offset of the field in struct ss_config */
	size_t size; /* for strings: the field's size */
};

#define SS_STR(k, f)                                                                               \
	{                                                                                          \
		k, SS_OPT_STR, offsetof(struct ss_config, f), sizeof(((struct ss_config *)0)->f)   \
	}

static const struct ss_opt ss_opts[] = {
        SS_STR("data-dir", data_dir),
        SS_STR("listen", listen),
        {"port", SS_OPT_PORT, offsetof(struct ss_config, port), 0},
        {"workers", SS_OPT_WORKERS, offsetof(struct ss_config, workers), 0},
        SS_STR("db", db),
        SS_STR("cert", cert),
        SS_STR("key", key),
        {"max-body", SS_OPT_SIZE, offsetof(struct ss_config, max_body), 0},
        {"log-level", SS_OPT_LOGLEVEL, offsetof(struct ss_config, log_level),
         sizeof(((struct ss_config *)0)->log_level)},
        SS_STR("platform-root", platform_root),
};
_Static_assert(sizeof(ss_opts) / sizeof(ss_opts[0]) <= 32, "set_mask has 32 bits");

static void ss_why(char *why, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void ss_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!why || cap == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

void ss_config_defaults(struct ss_config *c)
{
	if (!c)
		return;
	memset(c, 0, sizeof(*c));
	snprintf(c->data_dir, sizeof(c->data_dir), "./sphere-ss-data");
	snprintf(c->listen, sizeof(c->listen), "127.0.0.1");
	c->port = 8443;
	c->max_body = 1u << 20;
	snprintf(c->log_level, sizeof(c->log_level), "info");
}

/* A decimal integer in [lo, hi], nothing else. */
static int ss_parse_uint(const char *s, unsigned long long lo, unsigned long long hi,
                         unsigned long long *v)
{
	char *end;

	if (!s[0] || s[0] == '-' || s[0] == '+' || s[0] == ' ')
		return SPH_ERR_INVALID_ARG;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno || *end || *v < lo || *v > hi)
		return SPH_ERR_INVALID_ARG;
	return 0;
}

static int ss_opt_find(const char *key)
{
	for (size_t i = 0; i < sizeof(ss_opts) / sizeof(ss_opts[0]); i++)
		if (strcmp(ss_opts[i].key, key) == 0)
			return (int)i;
	return -1;
}

int ss_config_set(struct ss_config *c, const char *key, const char *value, char *why,
                  size_t why_cap)
{
	unsigned long long v;
	const struct ss_opt *o;
	char *field;
	int i;

	if (!c || !key || !value)
		return SPH_ERR_INVALID_ARG;
	i = ss_opt_find(key);
	if (i < 0) {
		ss_why(why, why_cap, "unknown option '%s'", key);
		return SPH_ERR_NOT_FOUND;
	}
	o = &ss_opts[i];
	field = (char *)c + o->off;
	switch (o->kind) {
	case SS_OPT_STR:
		if (!value[0] || strlen(value) >= o->size) {
			ss_why(why, why_cap, "%s: empty or longer than %zu bytes", key,
			       o->size - 1);
			return SPH_ERR_INVALID_ARG;
		}
		memcpy(field, value, strlen(value) + 1);
		break;
	case SS_OPT_PORT:
		if (ss_parse_uint(value, 0, 65535, &v) != 0) {
			ss_why(why, why_cap, "port: expected 0..65535, got '%s'", value);
			return SPH_ERR_INVALID_ARG;
		}
		c->port = (uint16_t)v;
		break;
	case SS_OPT_WORKERS:
		if (ss_parse_uint(value, 0, 64, &v) != 0) {
			ss_why(why, why_cap, "workers: expected 0..64, got '%s'", value);
			return SPH_ERR_INVALID_ARG;
		}
		c->workers = (int)v;
		break;
	case SS_OPT_SIZE:
		if (ss_parse_uint(value, 1, SS_MAX_BODY_LIMIT, &v) != 0) {
			ss_why(why, why_cap, "max-body: expected 1..%u bytes, got '%s'",
			       SS_MAX_BODY_LIMIT, value);
			return SPH_ERR_INVALID_ARG;
		}
		c->max_body = (size_t)v;
		break;
	case SS_OPT_LOGLEVEL:
		if (strcmp(value, "error") && strcmp(value, "warn") && strcmp(value, "info") &&
		    strcmp(value, "debug")) {
			ss_why(why, why_cap, "log-level: error, warn, info or debug, got '%s'",
			       value);
			return SPH_ERR_INVALID_ARG;
		}
		snprintf(c->log_level, sizeof(c->log_level), "%s", value);
		break;
	}
	c->set_mask |= 1u << i;
	return 0;
}

/* Trims spaces and tabs at both ends, in place. */
static char *ss_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int ss_config_load(struct ss_config *c, const char *path, char *why, size_t why_cap)
{
	char line[SS_CONFIG_LINE_MAX + 2];
	uint32_t seen = 0;
	unsigned lineno = 0;
	FILE *f;
	int rc = 0;

	if (!c || !path)
		return SPH_ERR_INVALID_ARG;
	f = fopen(path, "r");
	if (!f) {
		ss_why(why, why_cap, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? SPH_ERR_NOT_FOUND : SPH_ERR_IO;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		char *eq, *key, *val;
		int i;

		lineno++;
		rc = SPH_ERR_MALFORMED;
		if (n > SS_CONFIG_LINE_MAX || (n && line[n - 1] != '\n' && !feof(f))) {
			ss_why(why, why_cap, "%s:%u: line longer than %d bytes", path, lineno,
			       SS_CONFIG_LINE_MAX);
			goto out;
		}
		if (n && line[n - 1] == '\n')
			line[n - 1] = '\0';
		key = ss_trim(line);
		rc = 0;
		if (!key[0] || key[0] == '#')
			continue;
		rc = SPH_ERR_MALFORMED;
		eq = strchr(key, '=');
		if (!eq) {
			ss_why(why, why_cap, "%s:%u: expected key = value", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = ss_trim(key);
		val = ss_trim(eq + 1);
		i = ss_opt_find(key);
		if (i >= 0 && (seen & (1u << i))) {
			ss_why(why, why_cap, "%s:%u: '%s' set twice", path, lineno, key);
			rc = SPH_ERR_DUPLICATE;
			goto out;
		}
		/* A flag given already wins over the file. */
		if (i >= 0 && (c->set_mask & (1u << i))) {
			seen |= 1u << i;
			continue;
		}
		rc = ss_config_set(c, key, val, why, why_cap);
		if (rc != 0) {
			char inner[SS_REASON_MAX];
			snprintf(inner, sizeof(inner), "%s", why ? why : "");
			ss_why(why, why_cap, "%s:%u: %s", path, lineno, inner);
			rc = SPH_ERR_MALFORMED;
			goto out;
		}
		seen |= 1u << i;
	}
	if (ferror(f))
		rc = SPH_ERR_IO;
out:
	fclose(f);
	return rc;
}

int ss_config_finish(struct ss_config *c)
{
	int n = 0;

	if (!c)
		return SPH_ERR_INVALID_ARG;
	if (!c->db[0])
		n = snprintf(c->db, sizeof(c->db), "sqlite:%s/sphere.db", c->data_dir);
	if (n >= 0 && (size_t)n < sizeof(c->db) && !c->cert[0])
		n = snprintf(c->cert, sizeof(c->cert), "%s/tls/server.pem", c->data_dir);
	if (n >= 0 && (size_t)n < sizeof(c->cert) && !c->key[0])
		n = snprintf(c->key, sizeof(c->key), "%s/tls/server.key", c->data_dir);
	return n >= 0 && (size_t)n < sizeof(c->key) ? 0 : SPH_ERR_TOO_LARGE;
}
