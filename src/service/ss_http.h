/*
 * ss_http: the security service's HTTPS server core (docs/api.md
 * "Transport"): libevent's evhttp over OpenSSL bufferevents, TLS 1.2 minimum
 * (1.3 preferred), one event loop per worker thread, a router with path
 * parameters, bounded request bodies, JSON replies and errors, a structured
 * access log, and the metrics registry served at GET /metrics (Prometheus
 * text format).
 *
 * Handlers run on a worker thread; a handler MUST reply exactly once (one of
 * the ss_reply_* calls) before it returns. Unless a comment says otherwise a
 * function returns 0 or a negative SPH_ERR_*.
 */
#ifndef SPHERE_SS_HTTP_H
#define SPHERE_SS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include <sphere/status.h>

#define SS_HTTP_MAX_ROUTES  128
#define SS_HTTP_MAX_PARAMS  4
#define SS_HTTP_BODY_MAX    (1u << 20) /* default request body limit */
#define SS_HTTP_WORKERS_MAX 64

struct ss_http_config {
	const char *addr;           /* listen address; NULL = "127.0.0.1" */
	uint16_t port;              /* 0 = an ephemeral port (ss_http_port tells it) */
	int workers;                /* 1..SS_HTTP_WORKERS_MAX; 0 = the number of cores */
	const char *cert_file;      /* PEM server certificate (chain) */
	const char *key_file;       /* PEM private key */
	const char *client_ca_file; /* NULL: no client certificates asked for; else
	                             * requested (not required) and verified against
	                             * these CAs; the handler sees the verified one */
	size_t max_body;            /* 0 = SS_HTTP_BODY_MAX; larger bodies get 413 */
	/* Devices: ask for a client certificate and accept any P-256 one, even
	 * self-signed by the device's own key. The handshake proves the client
	 * holds that key, whatever signed the certificate; ss_req_peer_key gives
	 * the key, ss_req_peer_cert still only a certificate that verified
	 * against client_ca_file. */
	bool device_keys;
};

struct ss_http;
struct ss_req;
typedef void (*ss_handler)(struct ss_req *r, void *arg);

/* Creates the server (TLS context loaded and checked, nothing listening yet).
 * Returns 0 and *out (free with ss_http_free), SPH_ERR_INVALID_ARG or
 * SPH_ERR_CRYPTO (certificate or key unusable). */
int ss_http_new(const struct ss_http_config *cfg, struct ss_http **out);
/* Adds a route before ss_http_start. method: "GET", "POST", "PUT", "PATCH",
 * "DELETE". pattern: a path whose segments are literal or "{name}" (one
 * segment, 1..128 bytes of [A-Za-z0-9._~-]). Exact match only; first added
 * wins. A path that matches no route: 404; a route with another method: 405.
 * Full table: SPH_ERR_EXHAUSTED. */
int ss_http_route(struct ss_http *h, const char *method, const char *pattern, ss_handler fn,
                  void *arg);
/* Binds and starts the worker threads; returns once the server accepts
 * connections. SPH_ERR_IO: cannot bind. */
int ss_http_start(struct ss_http *h);
/* The bound port (after start). */
uint16_t ss_http_port(const struct ss_http *h);
/* Stops accepting, lets in-flight requests finish, joins the workers. */
void ss_http_stop(struct ss_http *h);
/* Stops if needed and frees. Accepts NULL. */
void ss_http_free(struct ss_http *h);

/* ---- the request -------------------------------------------------------- */

const char *ss_req_method(const struct ss_req *r);
const char *ss_req_path(const struct ss_req *r); /* decoded path, no query */
/* A "{name}" segment of the matched pattern, or NULL. */
const char *ss_req_param(const struct ss_req *r, const char *name);
/* A query parameter (decoded), or NULL. */
const char *ss_req_query(const struct ss_req *r, const char *name);
/* A request header, or NULL. */
const char *ss_req_header(const struct ss_req *r, const char *name);
/* The body (bounded by max_body; not NUL-terminated). */
void ss_req_body(const struct ss_req *r, const uint8_t **body, size_t *len);
/* The body as a JSON object: NULL (and a reason in why) when it is not one
 * well-formed object with nothing after it. Caller json_decref()s. */
json_t *ss_req_json(const struct ss_req *r, char *why, size_t why_cap);
/* The client certificate TLS verified (against client_ca_file), or NULL.
 * Owned by the connection: valid during the handler. */
X509 *ss_req_peer_cert(const struct ss_req *r);
/* With device_keys: the P-256 public key (X || Y) of the client certificate
 * whose private key the TLS handshake proved the client holds. Returns 0,
 * SPH_ERR_NOT_FOUND (no certificate, or not a P-256 key) or
 * SPH_ERR_INVALID_ARG. */
int ss_req_peer_key(const struct ss_req *r, uint8_t pub[64]);

/* ---- replies (exactly one per request) ------------------------------------ */

/* Sends body (stolen; NULL sends {}) as application/json. */
void ss_reply_json(struct ss_req *r, int status, json_t *body);
/* Sends {"error": code, "reason": "<printf text>"} with status. code is a
 * short machine word ("unauthorized", "forbidden", "not_found",
 * "bad_request", "conflict", "too_large", ...). */
void ss_reply_error(struct ss_req *r, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Sends raw bytes with a content type (e.g. PEM, CBOR, an image). */
void ss_reply_raw(struct ss_req *r, int status, const char *content_type, const void *data,
                  size_t len);

/* Adds a reply header (e.g. Content-Range, Accept-Ranges) before the reply.
 * The core's own headers (Content-Type, Content-Length, Cache-Control,
 * X-Content-Type-Options, Connection) and values with CR or LF are refused
 * (SPH_ERR_INVALID_ARG). */
int ss_reply_header(struct ss_req *r, const char *name, const char *value);

/* ---- metrics (Prometheus text at GET /metrics) ---------------------------- */

/* The core counts every request (sphere_http_requests_total{route,method,
 * status}) and its latency (sphere_http_request_seconds histogram{route}).
 * Handlers add their own counters: name is a Prometheus metric name; label
 * is "" or one key="value" pair such as reason="nonce". Up to 256 series;
 * beyond, the increment is dropped and counted in
 * sphere_metrics_dropped_total. Thread-safe. */
void ss_metric_inc(struct ss_http *h, const char *name, const char *label);
/* The whole exposition text (caller frees). */
int ss_metrics_text(struct ss_http *h, char **out);

/* The server a request belongs to (for ss_metric_inc in a handler). */
struct ss_http *ss_req_server(const struct ss_req *r);

#endif
