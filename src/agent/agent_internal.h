/*
 * agent_internal: what the agent's files share (not the module's API): one
 * mTLS connection to the service (libcurl, the RoT key) and the retry policy.
 */
#ifndef SPHERE_AGENT_INTERNAL_H
#define SPHERE_AGENT_INTERNAL_H

#include <stdio.h>

#include <curl/curl.h>

#include "agent/agent.h"
#include "chip/chip.h"

#define AGENT_BASE_URL_MAX 200
#define AGENT_TIMEOUT_S    30L
#define AGENT_CERT_DAYS    1u /* the self-signed TLS certificate's lifetime */

/* A connection to the service: a curl handle that presents the device's
 * self-signed certificate and signs with the RoT key. Requests made through
 * one agent_conn reuse its TLS connection. */
struct agent_conn {
	CURL *c;
	EVP_PKEY *key;
	X509 *cert;
	char base[AGENT_BASE_URL_MAX + 1];
	long timeout_s;
	long connects; /* connections opened, over every request */
	/* For agent_post_json (the long-poll): a total timeout other than
	 * timeout_s (0: timeout_s), and a function polled while it waits
	 * (about once a second or sooner): non-zero aborts (SPH_ERR_STATE). */
	long req_timeout_s;
	int (*abort_fn)(void *ctx);
	void *abort_ctx;
	long retry_after; /* the last reply's Retry-After in seconds; 0: none */
};

/* A growable reply buffer with a hard maximum (NUL-terminated). */
struct agent_buf {
	char *data;
	size_t len;
	size_t max;
	int over; /* the reply went past max */
};

/* Opens conn for d's RoT and cfg's service (*conn zeroed first). Returns 0,
 * SPH_ERR_INVALID_ARG (no https:// URL, no CA file), SPH_ERR_NOMEM, or what
 * agent_rot_key / agent_device_cert return. Close with agent_conn_close. */
int agent_conn_open(struct boot_device *d, const struct agent_config *cfg, struct agent_conn *conn);
/* Frees what conn holds. Accepts NULL and a zeroed conn. */
void agent_conn_close(struct agent_conn *conn);

/* POSTs body (JSON) to path; reply gets the body (freed by agent_buf_free).
 * Returns 0 with *status (any HTTP status), SPH_ERR_TRANSPORT (no reply),
 * SPH_ERR_TOO_LARGE (reply past reply->max), SPH_ERR_STATE (conn->abort_fn
 * aborted it) or SPH_ERR_NOMEM. */
int agent_post_json(struct agent_conn *conn, const char *path, const char *body,
                    struct agent_buf *reply, long *status);

/* GETs path into out, whose first `from` bytes are there already (a Range
 * request "bytes=from-" when from > 0; a 200 reply instead starts out over),
 * so that out holds at most max bytes. *status gets the HTTP status,
 * *range_start the Content-Range's first byte (-1 without one), *total its
 * complete length (-1 when absent or "*"), *got the bytes written. Returns 0,
 * SPH_ERR_TRANSPORT (the transfer broke: what came is in out, *got counts it),
 * SPH_ERR_TOO_LARGE (past max), SPH_ERR_IO (the file), SPH_ERR_STATE (progress
 * cancelled it). Only a 200/206 body goes to out; another goes to err_body
 * (bounded). */
int agent_get_range(struct agent_conn *conn, const char *path, uint64_t from, uint64_t max,
                    FILE *out, long *status, int64_t *range_start, int64_t *total, uint64_t *got,
                    struct agent_buf *err_body, const struct agent_update *u,
                    agent_progress_fn progress, void *progress_ctx);

void agent_buf_free(struct agent_buf *b);

/* agent_run_once without the boot: check-ins, downloads, installs, trial
 * boot and confirm, as agent_run_once says (res and cycle zeroed by the
 * caller). */
int agent_cycle_run(struct boot_device *d, const struct agent_config *cfg,
                    struct agent_checkin_result *res, struct agent_cycle *cycle,
                    struct agent_error *err);
/* boot_run d (reset why); a device that does not boot gets a failed-boot
 * report queued. Returns 0, SPH_ERR_STATE (RECOVERY) or boot_run's status. */
int agent_boot(struct boot_device *d, enum chip_reset_reason why, struct agent_error *err);

/* ---- the local request socket (agent_local.c) ---- */
/* Binds dir/AGENT_SOCKET_FILE (mode 0600, then listening, non-blocking) into
 * *fd (-1 on failure). A stale socket file is replaced; one a live daemon
 * answers on is SPH_ERR_STATE. Returns 0, SPH_ERR_TOO_LARGE (path too long
 * for a unix socket), SPH_ERR_STATE or SPH_ERR_IO. */
int agent_local_open(const char *dir, int *fd);
/* Serves the requests waiting on fd without blocking; returns how many asked
 * for a check-in (>= 0). */
int agent_local_serve(int fd);
/* Closes fd (if >= 0) and removes the socket and the "off" note of dir. */
void agent_local_close(const char *dir, int fd);
/* Writes why there is no socket into dir/AGENT_SOCKET_OFF_FILE (and removes
 * a stale socket). Returns 0 or SPH_ERR_IO. */
int agent_local_off(const char *dir, const char *why);

/* cfg's retry policy with the defaults filled in and the bounds applied. */
void agent_retry_policy(const struct agent_config *cfg, struct agent_retry *out);
/* The wait before attempt n + 1 (n >= 1 attempts made), in milliseconds:
 * min(max, base * 2^(n-1)) with equal jitter (uniform in [d/2, d]). */
uint64_t agent_backoff_ms(const struct agent_retry *r, unsigned n);
/* Sleeps before attempt n + 1 (n >= 1 attempts made): min(max, base * 2^(n-1))
 * with equal jitter. */
void agent_backoff_sleep(const struct agent_retry *r, unsigned n);
/* Whether an outcome is worth another attempt: no reply, or a 5xx. */
bool agent_transient(int rc, long status);
/* The status for an HTTP refusal (4xx/5xx), and err filled from its JSON body
 * ({"error", "reason"}) or with the status alone. */
int agent_refusal(long status, const char *body, size_t len, const char *what,
                  struct agent_error *err);
/* Sets err's reason (printf-style); keeps its status and error word. */
void agent_err_set(struct agent_error *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#endif
