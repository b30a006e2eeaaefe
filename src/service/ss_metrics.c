/*
 * ss_metrics: the registry behind GET /metrics (Prometheus text exposition
 * format 0.0.4). Request counters and latency histograms are keyed by route
 * pattern, never by raw path, so cardinality is bounded by the route table;
 * custom counters are capped at SS_METRICS_CUSTOM_MAX series. Every table is
 * fixed-size; what does not fit is counted in sphere_metrics_dropped_total.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ss_http.h"
#include "ss_http_internal.h"

/* Upper bounds of the latency buckets, in seconds (+Inf is implicit). */
static const double ss_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10};
static const char *const ss_bucket_names[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                              "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                              "2.5",   "5",      "10"};
#define SS_NBUCKETS (sizeof(ss_buckets) / sizeof(ss_buckets[0]))
_Static_assert(SS_NBUCKETS == sizeof(ss_bucket_names) / sizeof(ss_bucket_names[0]), "bucket names");

struct ss_hist {
	char route[SS_METRICS_NAME_MAX * 4 + 1];
	uint64_t bucket[SS_NBUCKETS]; /* non-cumulative; summed when rendered */
	uint64_t count;
	double sum;
};

struct ss_reqs {
	uint16_t hist; /* index of the route's histogram (its label) */
	char method[8];
	int status;
	uint64_t count;
};

struct ss_custom {
	char name[SS_METRICS_NAME_MAX + 1];
	char key[SS_METRICS_NAME_MAX + 1]; /* "" when the series has no label */
	char value[SS_METRICS_LABEL_MAX + 1];
	uint64_t count;
};

struct ss_metrics {
	pthread_mutex_t lock;
	struct ss_hist hist[SS_METRICS_ROUTES_MAX];
	size_t nhist;
	struct ss_reqs reqs[SS_METRICS_REQUESTS_MAX];
	size_t nreqs;
	struct ss_custom custom[SS_METRICS_CUSTOM_MAX];
	size_t ncustom;
	uint64_t dropped;
};

int ss_metrics_new(struct ss_metrics **out)
{
	struct ss_metrics *m;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return SPH_ERR_NOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return SPH_ERR_NOMEM;
	}
	*out = m;
	return 0;
}

void ss_metrics_free(struct ss_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void ss_metrics_observe(struct ss_metrics *m, const char *route, const char *method, int status,
                        double seconds)
{
	struct ss_hist *hs = NULL;
	struct ss_reqs *rq = NULL;
	size_t i, hi;

	pthread_mutex_lock(&m->lock);
	for (hi = 0; hi < m->nhist; hi++)
		if (strcmp(m->hist[hi].route, route) == 0)
			break;
	if (hi == m->nhist) {
		if (m->nhist == SS_METRICS_ROUTES_MAX || strlen(route) >= sizeof(hs->route))
			goto drop;
		snprintf(m->hist[hi].route, sizeof(m->hist[hi].route), "%s", route);
		m->nhist++;
	}
	hs = &m->hist[hi];
	for (i = 0; i < m->nreqs; i++)
		if (m->reqs[i].hist == hi && m->reqs[i].status == status &&
		    strcmp(m->reqs[i].method, method) == 0)
			break;
	if (i == m->nreqs) {
		if (m->nreqs == SS_METRICS_REQUESTS_MAX || strlen(method) >= sizeof(rq->method))
			goto drop;
		m->reqs[i].hist = (uint16_t)hi;
		snprintf(m->reqs[i].method, sizeof(m->reqs[i].method), "%s", method);
		m->reqs[i].status = status;
		m->nreqs++;
	}
	rq = &m->reqs[i];
	rq->count++;
	hs->count++;
	hs->sum += seconds;
	for (i = 0; i < SS_NBUCKETS; i++)
		if (seconds <= ss_buckets[i]) {
			hs->bucket[i]++;
			break;
		}
	pthread_mutex_unlock(&m->lock);
	return;
drop:
	m->dropped++;
	pthread_mutex_unlock(&m->lock);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (colon only when metric is true), 1..max bytes. */
static bool ss_metric_name_ok(const char *s, size_t len, size_t max, bool metric)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		          (metric && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Splits key="value" into key and value: printable ASCII without '"'. */
static bool ss_label_parse(const char *label, char *key, size_t kcap, char *value, size_t vcap)
{
	const char *eq = strchr(label, '=');
	size_t klen, vlen;

	if (!eq || eq[1] != '"')
		return false;
	klen = (size_t)(eq - label);
	if (!ss_metric_name_ok(label, klen, kcap - 1, false) || strncmp(label, "__", 2) == 0)
		return false;
	vlen = strlen(eq + 2);
	if (vlen == 0 || vlen > vcap || eq[2 + vlen - 1] != '"')
		return false;
	vlen--; /* the closing quote */
	for (size_t i = 0; i < vlen; i++)
		if (eq[2 + i] < 0x20 || eq[2 + i] > 0x7e || eq[2 + i] == '"')
			return false;
	memcpy(key, label, klen);
	key[klen] = '\0';
	memcpy(value, eq + 2, vlen);
	value[vlen] = '\0';
	return true;
}

void ss_metrics_inc(struct ss_metrics *m, const char *name, const char *label)
{
	char key[SS_METRICS_NAME_MAX + 1] = "", value[SS_METRICS_LABEL_MAX + 1] = "";
	size_t i;
	bool ok;

	if (!label)
		label = "";
	/* The core's own names are reserved: a second TYPE line would be invalid. */
	ok = name && ss_metric_name_ok(name, strlen(name), SS_METRICS_NAME_MAX, true) &&
	     strncmp(name, "sphere_http_", 12) != 0 &&
	     strcmp(name, "sphere_metrics_dropped_total") != 0 &&
	     (label[0] == '\0' || ss_label_parse(label, key, sizeof(key), value, sizeof(value)));
	pthread_mutex_lock(&m->lock);
	if (!ok)
		goto drop;
	for (i = 0; i < m->ncustom; i++)
		if (strcmp(m->custom[i].name, name) == 0 && strcmp(m->custom[i].key, key) == 0 &&
		    strcmp(m->custom[i].value, value) == 0)
			break;
	if (i == m->ncustom) {
		if (m->ncustom == SS_METRICS_CUSTOM_MAX)
			goto drop;
		snprintf(m->custom[i].name, sizeof(m->custom[i].name), "%s", name);
		snprintf(m->custom[i].key, sizeof(m->custom[i].key), "%s", key);
		snprintf(m->custom[i].value, sizeof(m->custom[i].value), "%s", value);
		m->ncustom++;
	}
	m->custom[i].count++;
	pthread_mutex_unlock(&m->lock);
	return;
drop:
	m->dropped++;
	pthread_mutex_unlock(&m->lock);
}

/* ---- rendering --------------------------------------------------------------
 * A bounded growable buffer with a sticky error (SS_METRICS_TEXT_MAX). */
struct ss_text {
	char *buf;
	size_t len, cap;
	int err;
};

static void ss_text_add(struct ss_text *t, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void ss_text_add(struct ss_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt,
		              ap);
		va_end(ap);
		if (n < 0) {
			t->err = SPH_ERR_INVALID_ARG;
			return;
		}
		if (t->buf && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t want = t->len + (size_t)n + 1, ncap = t->cap ? t->cap : 4096;
		while (ncap < want)
			ncap *= 2;
		if (ncap > SS_METRICS_TEXT_MAX) {
			t->err = SPH_ERR_TOO_LARGE;
			return;
		}
		char *nb = realloc(t->buf, ncap);
		if (!nb) {
			t->err = SPH_ERR_NOMEM;
			return;
		}
		t->buf = nb;
		t->cap = ncap;
	}
}

/* Escapes a label value: backslash, double quote and newline. */
static void ss_text_label(struct ss_text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			ss_text_add(t, "\\\\");
		else if (*v == '"')
			ss_text_add(t, "\\\"");
		else if (*v == '\n')
			ss_text_add(t, "\\n");
		else
			ss_text_add(t, "%c", *v);
	}
}

static void ss_render_requests(struct ss_metrics *m, struct ss_text *t)
{
	ss_text_add(t, "# HELP sphere_http_requests_total HTTP requests answered, by route "
	               "pattern, method and status.\n"
	               "# TYPE sphere_http_requests_total counter\n");
	for (size_t i = 0; i < m->nreqs; i++) {
		ss_text_add(t, "sphere_http_requests_total{route=\"");
		ss_text_label(t, m->hist[m->reqs[i].hist].route);
		ss_text_add(t, "\",method=\"");
		ss_text_label(t, m->reqs[i].method);
		ss_text_add(t, "\",status=\"%d\"} %llu\n", m->reqs[i].status,
		            (unsigned long long)m->reqs[i].count);
	}
	ss_text_add(t, "# HELP sphere_http_request_seconds Time from a complete request to its "
	               "reply, by route pattern.\n"
	               "# TYPE sphere_http_request_seconds histogram\n");
	for (size_t i = 0; i < m->nhist; i++) {
		const struct ss_hist *hs = &m->hist[i];
		uint64_t cum = 0;

		for (size_t b = 0; b < SS_NBUCKETS; b++) {
			cum += hs->bucket[b];
			ss_text_add(t, "sphere_http_request_seconds_bucket{route=\"");
			ss_text_label(t, hs->route);
			ss_text_add(t, "\",le=\"%s\"} %llu\n", ss_bucket_names[b],
			            (unsigned long long)cum);
		}
		ss_text_add(t, "sphere_http_request_seconds_bucket{route=\"");
		ss_text_label(t, hs->route);
		ss_text_add(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)hs->count);
		ss_text_add(t, "sphere_http_request_seconds_sum{route=\"");
		ss_text_label(t, hs->route);
		ss_text_add(t, "\"} %.9g\n", hs->sum);
		ss_text_add(t, "sphere_http_request_seconds_count{route=\"");
		ss_text_label(t, hs->route);
		ss_text_add(t, "\"} %llu\n", (unsigned long long)hs->count);
	}
}

static void ss_render_custom(struct ss_metrics *m, struct ss_text *t)
{
	/* Series of one name are grouped under one HELP/TYPE pair. */
	for (size_t i = 0; i < m->ncustom; i++) {
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(m->custom[j].name, m->custom[i].name) == 0;
		if (seen)
			continue;
		ss_text_add(t, "# HELP %s Sphere counter.\n# TYPE %s counter\n", m->custom[i].name,
		            m->custom[i].name);
		for (size_t j = i; j < m->ncustom; j++) {
			const struct ss_custom *c = &m->custom[j];

			if (strcmp(c->name, m->custom[i].name) != 0)
				continue;
			ss_text_add(t, "%s", c->name);
			if (c->key[0]) {
				ss_text_add(t, "{%s=\"", c->key);
				ss_text_label(t, c->value);
				ss_text_add(t, "\"}");
			}
			ss_text_add(t, " %llu\n", (unsigned long long)c->count);
		}
	}
}

int ss_metrics_render(struct ss_metrics *m, char **out)
{
	struct ss_text t = {0};

	*out = NULL;
	pthread_mutex_lock(&m->lock);
	ss_render_requests(m, &t);
	ss_text_add(&t,
	            "# HELP sphere_metrics_dropped_total Observations dropped because a "
	            "series table was full or a name invalid.\n"
	            "# TYPE sphere_metrics_dropped_total counter\n"
	            "sphere_metrics_dropped_total %llu\n",
	            (unsigned long long)m->dropped);
	ss_render_custom(m, &t);
	pthread_mutex_unlock(&m->lock);
	if (t.err) {
		free(t.buf);
		return t.err;
	}
	*out = t.buf;
	return 0;
}
