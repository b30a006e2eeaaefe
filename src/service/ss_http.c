/*
 * ss_http: the HTTPS server core (see ss_http.h and docs/api-transport.md).
 *
 * Threads: one listening socket, bound once; every worker thread has its own
 * event_base and evhttp and accepts on its own dup() of that socket (the
 * kernel hands each connection to one of them). We chose a shared fd over
 * SO_REUSEPORT so no other process of the same user can bind the port next
 * to us and receive a share of the connections. Handlers run on the worker
 * that accepted the connection; the route table is frozen once started.
 *
 * Stopping: each worker owns a "stop" event that ss_http_stop activates from
 * its own thread (libevent bases are thread-safe once evthread is set up).
 * The worker then closes its listener, waits up to SS_HTTP_DRAIN_MS for the
 * replies it queued to be written, and leaves its loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common/common.h"
#include "ss_http.h"
#include "ss_http_internal.h"

#define SS_HTTP_HEADERS_MAX (16u * 1024) /* request line + headers */
#define SS_HTTP_TIMEOUT_S   30           /* idle / slow client timeout */
#define SS_HTTP_DRAIN_MS    1000         /* stop: wait for queued replies */
#define SS_HTTP_SEGS_MAX    16           /* path segments */
#define SS_HTTP_PATTERN_MAX 256
#define SS_HTTP_PARAM_MAX   128 /* bytes of a {name} segment value */
#define SS_HTTP_PNAME_MAX   32  /* bytes of a {name} */
#define SS_HTTP_REASON_MAX  512
#define SS_HTTP_CIPHERS12   "ECDHE+AESGCM:ECDHE+CHACHA20" /* TLS 1.2: AEAD with PFS */
#define SS_HTTP_METHODS                                                                            \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE)

struct ss_route {
	char method[8];
	char *pattern;                     /* as given: the metrics and log label */
	char *split;                       /* pattern copy cut into segments */
	const char *seg[SS_HTTP_SEGS_MAX]; /* literal, or a parameter name */
	bool param[SS_HTTP_SEGS_MAX];
	size_t nseg;
	ss_handler fn;
	void *arg;
};

struct ss_worker {
	struct ss_http *h;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *stop_ev, *drain_ev;
	struct timespec drain_end;
	pthread_t thread;
	bool started;
	unsigned pending; /* replies queued and not yet written; worker thread only */
};

struct ss_http {
	SSL_CTX *tls;
	char *addr;
	uint16_t port_cfg, port;
	int nworkers;
	size_t max_body;
	bool client_certs;
	bool device_keys;
	struct ss_route routes[SS_HTTP_MAX_ROUTES + 1]; /* +1: GET /metrics */
	size_t nroutes;
	struct ss_worker *workers;
	int fd;
	bool running;
	struct ss_metrics *metrics;
};

struct ss_req {
	struct ss_http *h;
	struct ss_worker *w;
	struct evhttp_request *ev;
	const struct ss_route *route;
	const char *label; /* route pattern, or "unmatched" */
	const char *method;
	char *path;  /* decoded */
	char *split; /* decoded path cut into segments */
	const char *pname[SS_HTTP_MAX_PARAMS], *pval[SS_HTTP_MAX_PARAMS];
	size_t nparams;
	struct evkeyvalq query;
	const uint8_t *body;
	size_t body_len;
	X509 *peer;
	uint8_t peer_key[64]; /* device_keys: the proven client key */
	bool has_peer_key;
	char peer_addr[64];
	struct timespec t0;
	bool replied;
};

static pthread_once_t ss_once = PTHREAD_ONCE_INIT;
static int ss_once_rc;

static void ss_libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		sph_log(SPH_LOG_WARN, "ss_http", "libevent", "msg=\"%s\"", msg);
}

static void ss_global_init(void)
{
	ss_once_rc = evthread_use_pthreads();
	event_set_log_callback(ss_libevent_log);
}

/* Logs the first queued OpenSSL error (a reason string: no key material). */
static void ss_log_tls(const char *event, const char *file)
{
	char reason[256] = "unknown";
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	sph_log(SPH_LOG_ERROR, "ss_http", event, "file=%s reason=\"%s\"", file ? file : "-",
	        reason);
}

/* Accepts any client certificate chain; the verification result stays in
 * the connection (SSL_get_verify_result) for ss_req_peer_cert. */
static int ss_verify_any(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

/* The P-256 public key X || Y of cert. Returns 0 or SPH_ERR_NOT_FOUND. */
static int ss_cert_p256(X509 *cert, uint8_t pub[64])
{
	EVP_PKEY *k = X509_get0_pubkey(cert);
	uint8_t pt[65];
	char group[32];
	size_t n = 0;

	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   NULL) != 1 ||
	    strcmp(group, "prime256v1") != 0 ||
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n) != 1 ||
	    n != sizeof(pt) || pt[0] != 0x04) {
		ERR_clear_error();
		return SPH_ERR_NOT_FOUND;
	}
	memcpy(pub, pt + 1, 64);
	return 0;
}

static int ss_tls_new(const struct ss_http_config *cfg, SSL_CTX **out)
{
	static const unsigned char sid_ctx[] = "sphere-ss";
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = NULL;
	int rc = SPH_ERR_CRYPTO;

	*out = NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, SS_HTTP_CIPHERS12) ||
	    !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1)) {
		ss_log_tls("tls_setup_failed", NULL);
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	/* No resumption: a device checks in every few hours and each check-in
	 * authenticates afresh, a CLI call is one process. Tickets and a session
	 * cache would cost every handshake (and the cache memory) for nothing. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1) {
		ss_log_tls("tls_setup_failed", NULL);
		goto out;
	}
	if (SSL_CTX_get_security_level(ctx) < 2)
		SSL_CTX_set_security_level(ctx, 2);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
		ss_log_tls("tls_cert_unusable", cfg->cert_file);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ss_log_tls("tls_key_unusable", cfg->key_file);
		goto out;
	}
	if (cfg->client_ca_file) {
		/* Asked for, not required; one that is sent must verify. */
		names = SSL_load_client_CA_file(cfg->client_ca_file);
		if (!names || SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1) {
			ss_log_tls("tls_client_ca_unusable", cfg->client_ca_file);
			goto out;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		names = NULL; /* transferred */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_verify_depth(ctx, 4);
	}
	if (cfg->device_keys) {
		/* Any certificate: the chain is judged later (ss_req_peer_cert),
		 * the key's possession by the handshake itself. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, ss_verify_any);
		SSL_CTX_set_verify_depth(ctx, 4);
	}
	*out = ctx;
	ctx = NULL; /* transferred */
	rc = 0;
out:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	SSL_CTX_free(ctx);
	return rc;
}

static void ss_metrics_handler(struct ss_req *r, void *arg);

int ss_http_new(const struct ss_http_config *cfg, struct ss_http **out)
{
	struct ss_http *h = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!cfg || !out || !cfg->cert_file || !cfg->key_file || cfg->workers < 0 ||
	    cfg->workers > SS_HTTP_WORKERS_MAX || cfg->max_body > INT32_MAX)
		goto out;
	pthread_once(&ss_once, ss_global_init);
	rc = SPH_ERR_NOMEM;
	if (ss_once_rc != 0)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h)
		goto out;
	h->fd = -1;
	h->addr = strdup(cfg->addr ? cfg->addr : "127.0.0.1");
	if (!h->addr || ss_metrics_new(&h->metrics) != 0)
		goto out;
	h->port_cfg = cfg->port;
	h->nworkers = cfg->workers;
	if (h->nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		h->nworkers = n < 1 ? 1 : n > SS_HTTP_WORKERS_MAX ? SS_HTTP_WORKERS_MAX : (int)n;
	}
	h->max_body = cfg->max_body ? cfg->max_body : SS_HTTP_BODY_MAX;
	h->client_certs = cfg->client_ca_file != NULL;
	h->device_keys = cfg->device_keys;
	rc = ss_tls_new(cfg, &h->tls);
	if (rc != 0)
		goto out;
	rc = ss_http_route(h, "GET", "/metrics", ss_metrics_handler, NULL);
	if (rc != 0)
		goto out;
	*out = h;
	h = NULL; /* transferred */
	rc = 0;
out:
	ss_http_free(h);
	return rc;
}

/* ---- routes ---------------------------------------------------------------- */

static bool ss_seg_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == '-';
}

/* A path parameter value: 1..128 bytes of [A-Za-z0-9._~-], not "." or "..". */
static bool ss_param_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (n == SS_HTTP_PARAM_MAX || !ss_seg_char_ok(s[n]))
			return false;
	return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool ss_pname_ok(const char *s, size_t n)
{
	if (n == 0 || n > SS_HTTP_PNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		      (i > 0 && s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* Cuts "/a/b/c" (in place) into segments; "/" has none. Returns the count, or
 * -1 when there are more than SS_HTTP_SEGS_MAX. */
static int ss_split(char *p, const char **seg)
{
	int n = 0;

	if (*p == '/')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		if (n == SS_HTTP_SEGS_MAX)
			return -1;
		seg[n++] = p;
		p = strchr(p, '/');
		if (!p)
			return n;
		*p++ = '\0';
	}
}

static void ss_route_clear(struct ss_route *rt)
{
	free(rt->pattern);
	free(rt->split);
	memset(rt, 0, sizeof(*rt));
}

int ss_http_route(struct ss_http *h, const char *method, const char *pattern, ss_handler fn,
                  void *arg)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
	struct ss_route rt = {0};
	size_t nparams = 0, mi;
	int n, rc = SPH_ERR_INVALID_ARG;

	if (!h || !method || !pattern || !fn || pattern[0] != '/' ||
	    strlen(pattern) > SS_HTTP_PATTERN_MAX)
		goto out;
	for (mi = 0; mi < sizeof(methods) / sizeof(methods[0]); mi++)
		if (strcmp(method, methods[mi]) == 0)
			break;
	if (mi == sizeof(methods) / sizeof(methods[0]))
		goto out;
	rc = SPH_ERR_STATE;
	if (h->running)
		goto out;
	rc = SPH_ERR_EXHAUSTED;
	if (h->nroutes == sizeof(h->routes) / sizeof(h->routes[0]))
		goto out;
	rc = SPH_ERR_NOMEM;
	rt.pattern = strdup(pattern);
	rt.split = strdup(pattern);
	if (!rt.pattern || !rt.split)
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	n = ss_split(rt.split, rt.seg);
	if (n < 0)
		goto out;
	rt.nseg = (size_t)n;
	for (size_t i = 0; i < rt.nseg; i++) {
		char *s = (char *)rt.seg[i];
		size_t len = strlen(s);

		if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
			s[len - 1] = '\0';
			rt.seg[i] = s + 1;
			rt.param[i] = true;
			if (!ss_pname_ok(s + 1, len - 2) || ++nparams > SS_HTTP_MAX_PARAMS)
				goto out;
			for (size_t j = 0; j < i; j++)
				if (rt.param[j] && strcmp(rt.seg[j], rt.seg[i]) == 0)
					goto out;
		} else if (!ss_param_ok(s)) {
			goto out;
		}
	}
	snprintf(rt.method, sizeof(rt.method), "%s", methods[mi]);
	rt.fn = fn;
	rt.arg = arg;
	h->routes[h->nroutes++] = rt;
	memset(&rt, 0, sizeof(rt)); /* transferred */
	rc = 0;
out:
	ss_route_clear(&rt);
	return rc;
}

/* True when the path's segments fit the route's pattern (params valid). */
static bool ss_route_fits(const struct ss_route *rt, const char *const *seg, size_t nseg)
{
	if (rt->nseg != nseg)
		return false;
	for (size_t i = 0; i < nseg; i++)
		if (rt->param[i] ? !ss_param_ok(seg[i]) : strcmp(rt->seg[i], seg[i]) != 0)
			return false;
	return true;
}

/* ---- replies ----------------------------------------------------------------- */

static double ss_elapsed(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void ss_on_complete(struct evhttp_request *ev, void *arg)
{
	struct ss_worker *w = arg;

	(void)ev;
	if (w->pending > 0)
		w->pending--;
}

/* Queues the one reply of a request, then counts and logs it. */
static void ss_send(struct ss_req *r, int status, const char *ctype, const void *data, size_t len)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(r->ev);
	double secs;

	if (r->replied) {
		sph_log(SPH_LOG_ERROR, "ss_http", "double_reply", "route=%s", r->label);
		return;
	}
	r->replied = true;
	if (status < 200 || status > 599) {
		sph_log(SPH_LOG_ERROR, "ss_http", "bad_status", "route=%s status=%d", r->label,
		        status);
		status = 500;
	}
	if (evhttp_add_header(hdr, "Content-Type", ctype) != 0 ||
	    evhttp_add_header(hdr, "Cache-Control", "no-store") != 0 ||
	    evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff") != 0 ||
	    evbuffer_add(evhttp_request_get_output_buffer(r->ev), data, len) != 0) {
		sph_log(SPH_LOG_ERROR, "ss_http", "reply_failed", "route=%s", r->label);
		evhttp_remove_header(hdr, "Content-Type");
		evhttp_add_header(hdr, "Content-Type", "text/plain");
		evbuffer_drain(evhttp_request_get_output_buffer(r->ev), (size_t)-1);
		status = 500;
		len = 0;
	}
	r->w->pending++;
	evhttp_request_set_on_complete_cb(r->ev, ss_on_complete, r->w);
	evhttp_send_reply(r->ev, status, NULL, NULL);
	secs = ss_elapsed(&r->t0);
	ss_metrics_observe(r->h->metrics, r->label, r->method, status, secs);
	sph_log(SPH_LOG_INFO, "ss_http", "request",
	        "method=%s route=%s status=%d ms=%.3f bytes=%zu peer=%s", r->method, r->label,
	        status, secs * 1e3, len, r->peer_addr);
}

void ss_reply_raw(struct ss_req *r, int status, const char *content_type, const void *data,
                  size_t len)
{
	ss_send(r, status, content_type ? content_type : "application/octet-stream",
	        data ? data : "", data ? len : 0);
}

int ss_reply_header(struct ss_req *r, const char *name, const char *value)
{
	static const char *const core[] = {"Content-Type",  "Content-Length",
	                                   "Cache-Control", "X-Content-Type-Options",
	                                   "Connection",    NULL};

	if (!r || !name || !value || r->replied || !name[0] || strpbrk(name, ":\r\n ") ||
	    strpbrk(value, "\r\n") || strlen(name) > 64 || strlen(value) > 512)
		return SPH_ERR_INVALID_ARG;
	for (size_t i = 0; core[i]; i++)
		if (strcasecmp(name, core[i]) == 0)
			return SPH_ERR_INVALID_ARG;
	return evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value) == 0
	               ? 0
	               : SPH_ERR_NOMEM;
}

void ss_reply_json(struct ss_req *r, int status, json_t *body)
{
	char *text;

	if (!body)
		body = json_object();
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		static const char oom[] = "{\"error\":\"internal\",\"reason\":\"reply failed\"}";
		ss_send(r, 500, "application/json; charset=utf-8", oom, sizeof(oom) - 1);
		return;
	}
	ss_send(r, status, "application/json; charset=utf-8", text, strlen(text));
	free(text);
}

void ss_reply_error(struct ss_req *r, int status, const char *code, const char *fmt, ...)
{
	char reason[SS_HTTP_REASON_MAX] = "";
	json_t *body;
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	/* Reasons may quote client input: keep them printable ASCII (valid UTF-8). */
	for (char *p = reason; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	body = json_pack("{s:s, s:s}", "error", code ? code : "error", "reason", reason);
	ss_reply_json(r, status, body);
}

/* ---- the request ------------------------------------------------------------- */

const char *ss_req_method(const struct ss_req *r)
{
	return r->method;
}

const char *ss_req_path(const struct ss_req *r)
{
	return r->path;
}

const char *ss_req_param(const struct ss_req *r, const char *name)
{
	for (size_t i = 0; name && i < r->nparams; i++)
		if (strcmp(r->pname[i], name) == 0)
			return r->pval[i];
	return NULL;
}

const char *ss_req_query(const struct ss_req *r, const char *name)
{
	return name ? evhttp_find_header(&r->query, name) : NULL;
}

const char *ss_req_header(const struct ss_req *r, const char *name)
{
	return name ? evhttp_find_header(evhttp_request_get_input_headers(r->ev), name) : NULL;
}

void ss_req_body(const struct ss_req *r, const uint8_t **body, size_t *len)
{
	*body = r->body;
	*len = r->body_len;
}

json_t *ss_req_json(const struct ss_req *r, char *why, size_t why_cap)
{
	json_error_t err;
	json_t *j;

	if (why && why_cap)
		why[0] = '\0';
	if (r->body_len == 0) {
		if (why && why_cap)
			snprintf(why, why_cap, "empty body");
		return NULL;
	}
	/* jansson refuses trailing data, NUL in strings and invalid UTF-8 by
	 * default and bounds nesting depth; duplicates need asking. */
	j = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		if (why && why_cap)
			snprintf(why, why_cap, "invalid JSON at line %d column %d: %s", err.line,
			         err.column, err.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		if (why && why_cap)
			snprintf(why, why_cap, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

int ss_req_peer_key(const struct ss_req *r, uint8_t pub[64])
{
	if (!r || !pub)
		return SPH_ERR_INVALID_ARG;
	if (!r->has_peer_key)
		return SPH_ERR_NOT_FOUND;
	memcpy(pub, r->peer_key, 64);
	return 0;
}

X509 *ss_req_peer_cert(const struct ss_req *r)
{
	return r->peer;
}

struct ss_http *ss_req_server(const struct ss_req *r)
{
	return r->h;
}

static const char *ss_method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return NULL;
	}
}

/* Finds the route; else replies 404 or 405 (with Allow). Returns true when
 * r->route is set. */
static bool ss_dispatch(struct ss_req *r, const char *const *seg, size_t nseg)
{
	char allow[64] = "";
	struct ss_http *h = r->h;

	for (size_t i = 0; i < h->nroutes; i++) {
		const struct ss_route *rt = &h->routes[i];

		if (!ss_route_fits(rt, seg, nseg))
			continue;
		if (strcmp(rt->method, r->method) == 0) {
			r->route = rt;
			r->label = rt->pattern;
			for (size_t s = 0; s < nseg; s++)
				if (rt->param[s]) {
					r->pname[r->nparams] = rt->seg[s];
					r->pval[r->nparams++] = seg[s];
				}
			return true;
		}
		if (allow[0] == '\0')
			r->label = rt->pattern;
		if (!strstr(allow, rt->method)) /* method names are not substrings of each other */
			snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
			         allow[0] ? ", " : "", rt->method);
	}
	if (allow[0]) {
		evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Allow", allow);
		ss_reply_error(r, 405, "method_not_allowed", "allowed: %s", allow);
	} else {
		ss_reply_error(r, 404, "not_found", "no such resource");
	}
	return false;
}

/* Parses the query string: decoded, no NUL, no repeated key. */
static bool ss_parse_query(struct ss_req *r, const char *q)
{
	const struct evkeyval *a, *b;

	if (!q || !*q)
		return true;
	if (strstr(q, "%00") || evhttp_parse_query_str(q, &r->query) != 0)
		return false;
	for (a = TAILQ_FIRST(&r->query); a; a = TAILQ_NEXT(a, next))
		for (b = TAILQ_NEXT(a, next); b; b = TAILQ_NEXT(b, next))
			if (strcmp(a->key, b->key) == 0)
				return false;
	return true;
}

static void ss_on_request(struct evhttp_request *ev, void *arg)
{
	struct ss_worker *w = arg;
	struct evhttp_connection *conn = evhttp_request_get_connection(ev);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *seg[SS_HTTP_SEGS_MAX];
	struct evbuffer *in;
	struct ss_req r;
	size_t len;
	int nseg;

	memset(&r, 0, sizeof(r));
	TAILQ_INIT(&r.query);
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	r.h = w->h;
	r.w = w;
	r.ev = ev;
	r.label = "unmatched";
	r.method = ss_method_name(evhttp_request_get_command(ev));
	snprintf(r.peer_addr, sizeof(r.peer_addr), "-");
	if (!ssl || !r.method) {
		/* No TLS (SSL_new failed and evhttp fell back to plain TCP): never
		 * run a handler. Unknown methods are refused by evhttp already. */
		sph_log(SPH_LOG_ERROR, "ss_http", "refused", "reason=%s",
		        ssl ? "method" : "no_tls");
		evhttp_send_error(ev, 500, NULL);
		return;
	}
	if (conn) {
		char *a = NULL;
		ev_uint16_t port = 0;

		evhttp_connection_get_peer(conn, &a, &port);
		if (a)
			snprintf(r.peer_addr, sizeof(r.peer_addr), "%s", a);
	}
	if (w->h->device_keys) {
		X509 *any = SSL_get0_peer_certificate(ssl);
		r.has_peer_key = any && ss_cert_p256(any, r.peer_key) == 0;
	}
	if (w->h->client_certs && SSL_get_verify_result(ssl) == X509_V_OK) {
		/* Our own reference: valid for the whole handler, even if the
		 * connection goes away once the reply is queued. */
		r.peer = SSL_get0_peer_certificate(ssl);
		if (r.peer && X509_up_ref(r.peer) != 1)
			r.peer = NULL;
	}
	if (!raw || raw[0] != '/') {
		ss_reply_error(&r, 400, "bad_request", "malformed request target");
		goto out;
	}
	r.path = evhttp_uridecode(raw, 0, &len);
	r.split = r.path ? strdup(r.path) : NULL;
	if (!r.split) {
		ss_reply_error(&r, 500, "internal", "out of memory");
		goto out;
	}
	if (strlen(r.path) != len) {
		ss_reply_error(&r, 400, "bad_request", "malformed path");
		goto out;
	}
	nseg = ss_split(r.split, seg);
	if (nseg < 0) {
		ss_reply_error(&r, 404, "not_found", "no such resource");
		goto out;
	}
	if (!ss_dispatch(&r, seg, (size_t)nseg))
		goto out;
	if (!ss_parse_query(&r, evhttp_uri_get_query(uri))) {
		ss_reply_error(&r, 400, "bad_request", "malformed query string");
		goto out;
	}
	in = evhttp_request_get_input_buffer(ev);
	r.body_len = evbuffer_get_length(in);
	if (r.body_len > w->h->max_body) { /* evhttp enforces it first; belt and braces */
		ss_reply_error(&r, 413, "too_large", "request body over %zu bytes", w->h->max_body);
		goto out;
	}
	r.body = r.body_len ? evbuffer_pullup(in, -1) : NULL;
	if (r.body_len && !r.body) {
		ss_reply_error(&r, 500, "internal", "out of memory");
		goto out;
	}
	r.route->fn(&r, r.route->arg);
	if (!r.replied) {
		sph_log(SPH_LOG_ERROR, "ss_http", "no_reply", "method=%s route=%s", r.method,
		        r.label);
		ss_reply_error(&r, 500, "internal", "the handler did not reply");
	}
out:
	X509_free(r.peer);
	evhttp_clear_headers(&r.query);
	free(r.split);
	free(r.path);
}

static void ss_metrics_handler(struct ss_req *r, void *arg)
{
	char *text = NULL;

	(void)arg;
	if (ss_metrics_text(r->h, &text) != 0) {
		ss_reply_error(r, 500, "internal", "metrics unavailable");
		return;
	}
	ss_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
	free(text);
}

void ss_metric_inc(struct ss_http *h, const char *name, const char *label)
{
	if (h)
		ss_metrics_inc(h->metrics, name, label);
}

int ss_metrics_text(struct ss_http *h, char **out)
{
	if (!out)
		return SPH_ERR_INVALID_ARG;
	*out = NULL;
	if (!h)
		return SPH_ERR_INVALID_ARG;
	return ss_metrics_render(h->metrics, out);
}

/* ---- workers ----------------------------------------------------------------- */

static struct bufferevent *ss_bevcb(struct event_base *base, void *arg)
{
	struct ss_http *h = arg;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(h->tls);

	if (!ssl) {
		ss_log_tls("tls_new_failed", NULL);
		return NULL; /* evhttp goes plain TCP; ss_on_request refuses it */
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		SSL_free(ssl);
	return bev;
}

static void ss_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ss_worker *w = arg;
	struct timespec now;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (w->pending == 0 || now.tv_sec > w->drain_end.tv_sec ||
	    (now.tv_sec == w->drain_end.tv_sec && now.tv_nsec >= w->drain_end.tv_nsec))
		event_base_loopbreak(w->base);
}

static void ss_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval tick = {0, 5000};
	struct ss_worker *w = arg;

	(void)fd;
	(void)what;
	if (w->bound) {
		evhttp_del_accept_socket(w->http, w->bound); /* closes our dup */
		w->bound = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &w->drain_end);
	w->drain_end.tv_sec += SS_HTTP_DRAIN_MS / 1000;
	w->drain_end.tv_nsec += (long)(SS_HTTP_DRAIN_MS % 1000) * 1000000L;
	if (w->drain_end.tv_nsec >= 1000000000L) {
		w->drain_end.tv_sec++;
		w->drain_end.tv_nsec -= 1000000000L;
	}
	if (w->pending == 0 || event_add(w->drain_ev, &tick) != 0)
		event_base_loopbreak(w->base);
}

static void *ss_worker_main(void *arg)
{
	struct ss_worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void ss_worker_free(struct ss_worker *w)
{
	if (w->http)
		evhttp_free(w->http); /* with its listener and connections */
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->base)
		event_base_free(w->base);
	memset(w, 0, sizeof(*w));
}

static int ss_worker_init(struct ss_http *h, struct ss_worker *w)
{
	int fd = -1, rc = SPH_ERR_NOMEM;

	w->h = h;
	w->base = event_base_new();
	w->http = w->base ? evhttp_new(w->base) : NULL;
	w->stop_ev = w->base ? event_new(w->base, -1, 0, ss_stop_cb, w) : NULL;
	w->drain_ev = w->base ? event_new(w->base, -1, EV_PERSIST, ss_drain_cb, w) : NULL;
	if (!w->http || !w->stop_ev || !w->drain_ev)
		goto out;
	evhttp_set_allowed_methods(w->http, SS_HTTP_METHODS);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)h->max_body);
	evhttp_set_max_headers_size(w->http, SS_HTTP_HEADERS_MAX);
	evhttp_set_timeout(w->http, SS_HTTP_TIMEOUT_S);
	evhttp_set_bevcb(w->http, ss_bevcb, h);
	evhttp_set_gencb(w->http, ss_on_request, w);
	rc = SPH_ERR_IO;
	fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	w->bound = evhttp_accept_socket_with_handle(w->http, fd);
	if (!w->bound)
		goto out;
	fd = -1; /* transferred */
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Binds and listens on addr:port (non-blocking); sets h->fd and h->port. */
static int ss_listen(struct ss_http *h)
{
	struct addrinfo hints = {0}, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int fd = -1, one = 1, rc = SPH_ERR_IO;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned)h->port_cfg);
	if (getaddrinfo(h->addr, port, &hints, &ai) != 0 || !ai)
		goto out;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Accepted sockets inherit TCP_NODELAY: a reply goes out as several TLS
	 * records, and Nagle would hold the last one for the client's ACK. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		goto out;
	if (ss.ss_family == AF_INET)
		h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		goto out;
	h->fd = fd;
	fd = -1; /* transferred */
	rc = 0;
out:
	if (rc != 0)
		sph_log(SPH_LOG_ERROR, "ss_http", "bind_failed", "addr=%s port=%s errno=%d",
		        h->addr, port, errno);
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

int ss_http_start(struct ss_http *h)
{
	struct sigaction sa;
	int rc = SPH_ERR_INVALID_ARG;

	if (!h)
		return rc;
	if (h->running)
		return SPH_ERR_STATE;
	/* A peer that goes away mid-write must not kill the process. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	rc = ss_listen(h);
	if (rc != 0)
		return rc;
	rc = SPH_ERR_NOMEM;
	h->workers = calloc((size_t)h->nworkers, sizeof(*h->workers));
	if (!h->workers)
		goto out;
	h->running = true; /* from here ss_http_stop cleans up */
	for (int i = 0; i < h->nworkers; i++) {
		rc = ss_worker_init(h, &h->workers[i]);
		if (rc != 0)
			goto out;
	}
	for (int i = 0; i < h->nworkers; i++) {
		rc = SPH_ERR_NOMEM;
		if (pthread_create(&h->workers[i].thread, NULL, ss_worker_main, &h->workers[i]) !=
		    0)
			goto out;
		h->workers[i].started = true;
	}
	sph_log(SPH_LOG_INFO, "ss_http", "listening", "addr=%s port=%u workers=%d", h->addr,
	        (unsigned)h->port, h->nworkers);
	rc = 0;
out:
	if (rc != 0)
		ss_http_stop(h);
	return rc;
}

uint16_t ss_http_port(const struct ss_http *h)
{
	return h ? h->port : 0;
}

void ss_http_stop(struct ss_http *h)
{
	if (!h || !h->running)
		return;
	for (int i = 0; h->workers && i < h->nworkers; i++)
		if (h->workers[i].started)
			event_active(h->workers[i].stop_ev, 0, 0);
	for (int i = 0; h->workers && i < h->nworkers; i++) {
		if (h->workers[i].started)
			pthread_join(h->workers[i].thread, NULL);
		ss_worker_free(&h->workers[i]);
	}
	free(h->workers);
	h->workers = NULL;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->running = false;
	sph_log(SPH_LOG_INFO, "ss_http", "stopped", "port=%u", (unsigned)h->port);
}

void ss_http_free(struct ss_http *h)
{
	if (!h)
		return;
	ss_http_stop(h);
	for (size_t i = 0; i < h->nroutes; i++)
		ss_route_clear(&h->routes[i]);
	SSL_CTX_free(h->tls);
	ss_metrics_free(h->metrics);
	free(h->addr);
	free(h);
}
