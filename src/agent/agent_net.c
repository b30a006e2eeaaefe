/*
 * agent_net: the agent's HTTPS client (agent_internal.h). libcurl with the
 * RoT-held key installed through CURLOPT_SSL_CTX_FUNCTION (the private key
 * never enters this process's memory: agent_key.c), HTTPS only, TLS 1.2 or
 * later, the service's CA only, no redirects; every reply is read into a
 * buffer with a hard maximum. Plus the retry policy: exponential backoff with
 * equal jitter on network errors and 5xx replies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "agent/agent_internal.h"
#include "boot/boot.h"
#include "common/common.h"

#define AGENT_ATTEMPTS_DEFAULT 5u
#define AGENT_BASE_MS_DEFAULT  500u
#define AGENT_MAX_MS_DEFAULT   60000u
#define AGENT_HEADER_MAX       256 /* a header line we keep, at most */

/* ---- buffers -------------------------------------------------------------------- */

void agent_buf_free(struct agent_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->over = 0;
}

static size_t agent_buf_write(char *p, size_t sz, size_t n, void *arg)
{
	struct agent_buf *b = arg;
	size_t add = sz * n;
	char *q;

	if (n && add / n != sz)
		return 0;
	if (add > b->max - b->len) {
		b->over = 1;
		return 0; /* past the hard maximum: curl fails the transfer */
	}
	q = realloc(b->data, b->len + add + 1);
	if (!q)
		return 0;
	memcpy(q + b->len, p, add);
	b->len += add;
	q[b->len] = '\0';
	b->data = q;
	return add;
}

/* ---- the connection ----------------------------------------------------------------- */

static CURLcode agent_ssl_ctx(CURL *c, void *sslctx, void *arg)
{
	struct agent_conn *conn = arg;

	(void)c;
	if (SSL_CTX_set_min_proto_version(sslctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate(sslctx, conn->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(sslctx, conn->key) != 1 ||
	    SSL_CTX_check_private_key(sslctx) != 1)
		return CURLE_SSL_CERTPROBLEM;
	return CURLE_OK;
}

int agent_conn_open(struct boot_device *d, const struct agent_config *cfg, struct agent_conn *conn)
{
	struct rot *rot = boot_rot(d);
	size_t n;
	int rc = SPH_ERR_INVALID_ARG;

	if (conn)
		memset(conn, 0, sizeof(*conn));
	if (!rot || !cfg || !conn || !cfg->service_url || !cfg->ca_file)
		goto out;
	n = strlen(cfg->service_url);
	if (strncmp(cfg->service_url, "https://", 8) != 0 || n <= 8 || n > AGENT_BASE_URL_MAX ||
	    cfg->service_url[n - 1] == '/' || cfg->timeout_s < 0)
		goto out;
	memcpy(conn->base, cfg->service_url, n + 1);
	conn->timeout_s = cfg->timeout_s ? cfg->timeout_s : AGENT_TIMEOUT_S;
	if ((rc = agent_rot_key(rot, &conn->key)) != 0 ||
	    (rc = agent_device_cert(rot, conn->key, AGENT_CERT_DAYS, &conn->cert)) != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(conn->c = curl_easy_init()))
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	if (curl_easy_setopt(conn->c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) !=
	            CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_SSL_CTX_FUNCTION, agent_ssl_ctx) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_SSL_CTX_DATA, conn) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    /* CURLOPT_NOSIGNAL stays off: then libcurl ignores SIGPIPE while it
	     * works, so a peer that closes mid-write cannot kill the device */
	    curl_easy_setopt(conn->c, CURLOPT_CONNECTTIMEOUT, conn->timeout_s) != CURLE_OK)
		goto out;
	rc = 0;
out:
	if (rc)
		agent_conn_close(conn);
	return rc;
}

void agent_conn_close(struct agent_conn *conn)
{
	if (!conn)
		return;
	curl_easy_cleanup(conn->c);
	X509_free(conn->cert);
	EVP_PKEY_free(conn->key);
	memset(conn, 0, sizeof(*conn));
}

static int agent_url(const struct agent_conn *conn, const char *path, char *url, size_t cap)
{
	int n = snprintf(url, cap, "%s%s", conn->base, path);

	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

static void agent_count_connects(struct agent_conn *conn)
{
	long k = 0;

	if (curl_easy_getinfo(conn->c, CURLINFO_NUM_CONNECTS, &k) == CURLE_OK && k > 0)
		conn->connects += k;
}

static int agent_xferinfo(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct agent_conn *conn = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return conn->abort_fn && conn->abort_fn(conn->abort_ctx) ? 1 : 0;
}

int agent_post_json(struct agent_conn *conn, const char *path, const char *body,
                    struct agent_buf *reply, long *status)
{
	struct curl_slist *h = NULL;
	char url[AGENT_BASE_URL_MAX + AGENT_URL_PATH_MAX + 2];
	curl_off_t ra = 0;
	CURLcode cc;
	int rc;

	*status = 0;
	conn->retry_after = 0;
	agent_buf_free(reply);
	if ((rc = agent_url(conn, path, url, sizeof(url))) != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(h = curl_slist_append(NULL, "Content-Type: application/json")))
		goto out;
	rc = SPH_ERR_TRANSPORT;
	if (curl_easy_setopt(conn->c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HTTPGET, 0L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HTTPHEADER, h) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_RANGE, NULL) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HEADERFUNCTION, NULL) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_WRITEFUNCTION, agent_buf_write) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_WRITEDATA, reply) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_TIMEOUT,
	                     conn->req_timeout_s ? conn->req_timeout_s : conn->timeout_s) !=
	            CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_NOPROGRESS, conn->abort_fn ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_XFERINFOFUNCTION, agent_xferinfo) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_XFERINFODATA, conn) != CURLE_OK)
		goto out;
	cc = curl_easy_perform(conn->c);
	agent_count_connects(conn);
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		rc = SPH_ERR_STATE;
		goto out;
	}
	if (reply->over) {
		rc = SPH_ERR_TOO_LARGE;
		goto out;
	}
	if (curl_easy_getinfo(conn->c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		conn->retry_after = ra > 86400 ? 86400 : (long)ra;
	if (cc != CURLE_OK ||
	    curl_easy_getinfo(conn->c, CURLINFO_RESPONSE_CODE, status) != CURLE_OK ||
	    *status < 100) {
		*status = 0;
		goto out;
	}
	rc = 0;
out:
	/* the handle must not keep pointers to this call's locals */
	curl_easy_setopt(conn->c, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(conn->c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(conn->c, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(h);
	return rc;
}

/* ---- ranged downloads -------------------------------------------------------------------- */

struct agent_get {
	FILE *out;
	uint64_t from, max, got;
	long status; /* of the reply being read: set by the header callback */
	int64_t range_start, total;
	struct agent_buf *err_body;
	int over, io, cancelled;
	const struct agent_update *u;
	agent_progress_fn progress;
	void *progress_ctx;
};

/* Parses "a" of a decimal field (no sign, no overflow) ending at stop. */
static int agent_dec(const char **p, char stop, int64_t *v)
{
	const char *s = *p;
	int64_t x = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (x > (INT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (*s - '0');
	}
	if (*s != stop)
		return -1;
	*v = x;
	*p = s;
	return 0;
}

/* "Content-Range: bytes a-b/total"; a 416 has an asterisk for a-b. */
static void agent_content_range(struct agent_get *g, const char *v)
{
	const char *p = v;
	int64_t a = -1, b = -1, t = -1;

	while (*p == ' ')
		p++;
	if (strncmp(p, "bytes ", 6) != 0)
		return;
	p += 6;
	if (*p == '*') {
		p++;
	} else {
		if (agent_dec(&p, '-', &a) != 0)
			return;
		p++;
		if (agent_dec(&p, '/', &b) != 0 || b < a)
			return;
	}
	if (*p++ != '/')
		return;
	if (*p != '*' && agent_dec(&p, '\r', &t) != 0 && agent_dec(&p, '\n', &t) != 0 &&
	    agent_dec(&p, '\0', &t) != 0)
		return;
	g->range_start = a;
	g->total = t;
}

static size_t agent_get_header(char *p, size_t sz, size_t n, void *arg)
{
	struct agent_get *g = arg;
	size_t len = sz * n;
	char line[AGENT_HEADER_MAX + 1];

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new reply (after a 100 Continue, say): forget the last one's;
		 * "HTTP/x y NNN": the status decides where the body goes */
		const char *sp = memchr(p, ' ', len);

		g->range_start = -1;
		g->total = -1;
		g->status = 0;
		if (sp && (size_t)(sp - p) + 4 <= len && sp[1] >= '1' && sp[1] <= '5' &&
		    sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
			g->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		return len;
	}
	if (len > AGENT_HEADER_MAX || len < 14)
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	if (strncasecmp(line, "Content-Range:", 14) == 0)
		agent_content_range(g, line + 14);
	return len;
}

static size_t agent_get_write(char *p, size_t sz, size_t n, void *arg)
{
	struct agent_get *g = arg;
	size_t len = sz * n;

	if (n && len / n != sz)
		return 0;
	/* only a 200 or 206 body is package bytes; another goes to err_body */
	if (g->status != 200 && g->status != 206)
		return g->err_body ? agent_buf_write(p, sz, n, g->err_body) : 0;
	if (g->status == 200 && g->from > 0 && g->got == 0) {
		/* the whole package instead of the range: start the file over */
		if (fflush(g->out) != 0 || ftruncate(fileno(g->out), 0) != 0 ||
		    fseek(g->out, 0, SEEK_SET) != 0) {
			g->io = 1;
			return 0;
		}
		g->from = 0;
	}
	if (len > g->max - g->from - g->got) {
		g->over = 1;
		return 0;
	}
	if (fwrite(p, 1, len, g->out) != len) {
		g->io = 1;
		return 0;
	}
	g->got += len;
	if (g->progress && g->u &&
	    g->progress(g->progress_ctx, g->u, g->from + g->got, g->u->size)) {
		g->cancelled = 1;
		return 0;
	}
	return len;
}

int agent_get_range(struct agent_conn *conn, const char *path, uint64_t from, uint64_t max,
                    FILE *out, long *status, int64_t *range_start, int64_t *total, uint64_t *got,
                    struct agent_buf *err_body, const struct agent_update *u,
                    agent_progress_fn progress, void *progress_ctx)
{
	char url[AGENT_BASE_URL_MAX + AGENT_URL_PATH_MAX + 2], range[48];
	struct agent_get g;
	CURLcode cc;
	int rc;

	*status = 0;
	*range_start = -1;
	*total = -1;
	*got = 0;
	agent_buf_free(err_body);
	memset(&g, 0, sizeof(g));
	g.out = out;
	g.from = from;
	g.max = max;
	g.range_start = -1;
	g.total = -1;
	g.err_body = err_body;
	g.u = u;
	g.progress = progress;
	g.progress_ctx = progress_ctx;
	if ((rc = agent_url(conn, path, url, sizeof(url))) != 0)
		goto out;
	snprintf(range, sizeof(range), "%llu-", (unsigned long long)from);
	rc = SPH_ERR_TRANSPORT;
	if (curl_easy_setopt(conn->c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_RANGE, from ? range : NULL) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HEADERFUNCTION, agent_get_header) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_HEADERDATA, &g) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_WRITEFUNCTION, agent_get_write) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_WRITEDATA, &g) != CURLE_OK ||
	    /* a stalled transfer, not a slow one, is an error: no total timeout */
	    curl_easy_setopt(conn->c, CURLOPT_TIMEOUT, 0L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
	    curl_easy_setopt(conn->c, CURLOPT_LOW_SPEED_TIME, conn->timeout_s) != CURLE_OK)
		goto out;
	g.status = 0;
	cc = curl_easy_perform(conn->c);
	agent_count_connects(conn);
	*got = g.got;
	*range_start = g.range_start;
	*total = g.total;
	curl_easy_getinfo(conn->c, CURLINFO_RESPONSE_CODE, status);
	if (g.io) {
		rc = SPH_ERR_IO;
		goto out;
	}
	if (g.cancelled) {
		rc = SPH_ERR_STATE;
		goto out;
	}
	if (g.over || (err_body && err_body->over)) {
		rc = SPH_ERR_TOO_LARGE;
		goto out;
	}
	if (cc != CURLE_OK || *status < 100) {
		rc = SPH_ERR_TRANSPORT;
		goto out;
	}
	rc = 0;
out:
	curl_easy_setopt(conn->c, CURLOPT_RANGE, NULL);
	curl_easy_setopt(conn->c, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(conn->c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(conn->c, CURLOPT_LOW_SPEED_LIMIT, 0L);
	curl_easy_setopt(conn->c, CURLOPT_LOW_SPEED_TIME, 0L);
	return rc;
}

/* ---- retries and refusals ----------------------------------------------------------------- */

void agent_retry_policy(const struct agent_config *cfg, struct agent_retry *out)
{
	struct agent_retry r = cfg ? cfg->retry : (struct agent_retry){0};

	if (r.attempts == 0)
		r.attempts = AGENT_ATTEMPTS_DEFAULT;
	if (r.attempts > AGENT_ATTEMPTS_MAX)
		r.attempts = AGENT_ATTEMPTS_MAX;
	if (r.base_ms == 0)
		r.base_ms = AGENT_BASE_MS_DEFAULT;
	if (r.max_ms == 0)
		r.max_ms = AGENT_MAX_MS_DEFAULT;
	if (r.max_ms > AGENT_BACKOFF_MAX_MS)
		r.max_ms = AGENT_BACKOFF_MAX_MS;
	if (r.base_ms > r.max_ms)
		r.base_ms = r.max_ms;
	*out = r;
}

uint64_t agent_backoff_ms(const struct agent_retry *r, unsigned n)
{
	uint64_t delay = r->base_ms, j = 0;
	uint32_t rnd = 0;

	for (unsigned i = 1; i < n && delay < r->max_ms; i++)
		delay *= 2;
	if (delay > r->max_ms)
		delay = r->max_ms;
	/* equal jitter: half fixed, half uniform; without randomness, the whole delay */
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) == 1)
		j = (delay / 2 + 1) * (uint64_t)rnd / ((uint64_t)UINT32_MAX + 1);
	else
		j = delay / 2;
	return delay - delay / 2 + j;
}

void agent_backoff_sleep(const struct agent_retry *r, unsigned n)
{
	uint64_t delay = agent_backoff_ms(r, n);
	struct timespec ts;

	ts.tv_sec = (time_t)(delay / 1000);
	ts.tv_nsec = (long)(delay % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool agent_transient(int rc, long status)
{
	return rc == SPH_ERR_TRANSPORT || (rc == 0 && status >= 500 && status <= 599);
}

void agent_err_set(struct agent_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
}

/* Copies printable ASCII of s (at most cap - 1 bytes), '?' for anything else. */
static void agent_copy_text(char *dst, size_t cap, const char *s)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < cap; i++)
		dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	dst[i] = '\0';
}

int agent_refusal(long status, const char *body, size_t len, const char *what,
                  struct agent_error *err)
{
	json_t *j = body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	const char *word = json_string_value(json_object_get(j, "error"));
	const char *reason = json_string_value(json_object_get(j, "reason"));
	int rc;

	if (status == 401)
		rc = SPH_ERR_AUTH;
	else if (status == 403)
		rc = SPH_ERR_PERMISSION;
	else if (status == 404)
		rc = SPH_ERR_NOT_FOUND;
	else if (status == 413)
		rc = SPH_ERR_TOO_LARGE;
	else if (status >= 500)
		rc = SPH_ERR_TRANSPORT;
	else
		rc = SPH_ERR_MALFORMED;
	if (err) {
		err->http_status = status;
		agent_copy_text(err->error, sizeof(err->error), json_is_object(j) ? word : NULL);
		if (err->error[0])
			snprintf(err->reason, sizeof(err->reason), "%s: %ld %s: ", what, status,
			         err->error);
		else
			snprintf(err->reason, sizeof(err->reason), "%s: HTTP %ld", what, status);
		if (reason) {
			size_t k = strlen(err->reason);
			agent_copy_text(err->reason + k, sizeof(err->reason) - k, reason);
		}
	}
	json_decref(j);
	return rc;
}
