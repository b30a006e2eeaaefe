/*
 * agent: the device agent (DESIGN.md §6, "on-chip cloud services"): the
 * device's TLS key, the check-in (docs/api.md §4.12-§4.13), the update
 * cycle (docs/agent.md "Check-in and updates") and a telemetry client for an
 * MQTT broker that trusts the tenant CA (docs/agent.md "Telemetry").
 *
 * The device's TLS key is the RoT identity key (ROT_KEY_IDENTITY). It never
 * enters the agent's memory: agent_rot_key() gives an EVP_PKEY whose public
 * half is the RoT's identity public key and whose every signature is made by
 * rot_sign(), through a small OpenSSL 3 provider ("sphere-rot", keymgmt +
 * signature) that this module loads into the default library context on first
 * use. Such a key works wherever libssl or libcrypto sign with EVP_DigestSign:
 * X509_sign / X509_REQ_sign, and as a TLS 1.2 or 1.3 client key
 * (SSL_CTX_use_PrivateKey, SSL_CTX_check_private_key, libcurl through
 * CURLOPT_SSL_CTX_FUNCTION). It signs SHA-256 digests only (ES256): any other
 * digest is refused. It cannot be written out (there is no private half to
 * write) and does no ECDH. See docs/rot.md "The device's TLS key".
 *
 * Unless a comment says otherwise a function returns 0 or a negative
 * SPH_ERR_*; outputs are NULL on failure.
 */
#ifndef SPHERE_AGENT_H
#define SPHERE_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <signal.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <sphere/status.h>

#include "rot/rot.h"

/* Lifetime of a device certificate made by agent_device_cert, at most. */
#define AGENT_CERT_MAX_DAYS 3650u

struct rot;
struct boot_device;

/* Makes *out, an EVP_PKEY for ROT_KEY_IDENTITY of rot (free with
 * EVP_PKEY_free). The key keeps rot: rot must outlive *out and every copy of it
 * (SSL_CTX, SSL, X509 signing contexts). A signature with it is a rot_sign()
 * call; if the RoT fails (e.g. its process is gone) the OpenSSL operation fails
 * and the error queue says why. Returns 0, SPH_ERR_INVALID_ARG, SPH_ERR_STATE
 * (the provider could not be loaded, or it would shadow OpenSSL's own EC
 * implementations), SPH_ERR_CRYPTO, or what rot_pubkey returns. */
int agent_rot_key(struct rot *rot, EVP_PKEY **out);

/* Makes *out, a self-signed X.509 v3 certificate for the device (free with
 * X509_free): subject and issuer CN = the device id (rot_device_id), public
 * key = the identity key, valid from now for days (1..AGENT_CERT_MAX_DAYS),
 * a random 128-bit serial, basicConstraints CA:FALSE, keyUsage
 * digitalSignature, extendedKeyUsage clientAuth, signed with ES256 through the
 * RoT. key must come from agent_rot_key(rot, ...): a key whose public half is
 * not the RoT's identity key is refused (SPH_ERR_INVALID_ARG). Returns 0,
 * SPH_ERR_INVALID_ARG, SPH_ERR_CRYPTO (includes a failed RoT signature), or
 * what rot_device_id / rot_pubkey return. */
int agent_device_cert(struct rot *rot, EVP_PKEY *key, unsigned days, X509 **out);

/* ---- check-in and updates ------------------------------------------------------
 * One check-in is one TLS connection (mTLS: agent_rot_key + a self-signed
 * agent_device_cert): POST /v1/checkin/nonce, rot_attest over the nonce, POST
 * /v1/checkin with the queued failure reports. Network errors and 5xx replies
 * are retried with exponential backoff and jitter; a 4xx refusal is final.
 */
#define AGENT_UPDATES_MAX    16             /* updates in one reply, at most */
#define AGENT_REPLY_MAX      (256u * 1024u) /* bytes of a JSON reply, at most */
#define AGENT_PEM_MAX        (32u * 1024u)  /* bytes of the certificate or chain PEM */
#define AGENT_IMAGE_ID_MAX   64             /* characters of an image id */
#define AGENT_URL_PATH_MAX   256            /* characters of an update's url (a path) */
#define AGENT_VERSION_MAX    32             /* characters of a version (IMG_VERSION_MAX) */
#define AGENT_UUID_LEN       36
#define AGENT_ERROR_MAX      32             /* the service's error word */
#define AGENT_REASON_MAX     512            /* the service's reason, or ours */
#define AGENT_DOWNLOAD_MAX   (256u * 1024u) /* bytes of one package (BOOT_SLOT_SIZE) */
#define AGENT_FAILURES_MAX   16             /* queued failure reports (the API's bound) */
#define AGENT_FAILURE_TEXT   256
#define AGENT_FAILURE_COMP   64
#define AGENT_FAILURES_FILE  "agent-failures.json" /* in the device directory */
#define AGENT_DOWNLOAD_DIR   "agent-downloads"     /* in the device directory */
#define AGENT_ROUNDS_DEFAULT 3
#define AGENT_ATTEMPTS_MAX   32
#define AGENT_BACKOFF_MAX_MS (3600u * 1000u)

/* Retries of one network operation: attempts in all (1..AGENT_ATTEMPTS_MAX;
 * 0 = 5), the first delay (0 = 500 ms) doubling up to max_ms (0 = 60 s; at
 * most AGENT_BACKOFF_MAX_MS); each wait is drawn uniformly from
 * [delay / 2, delay] ("equal jitter"). */
struct agent_retry {
	unsigned attempts;
	unsigned base_ms;
	unsigned max_ms;
};

struct agent_update;
/* Download progress: have of total bytes of u are on the device. Returns 0
 * to go on; anything else cancels the download (agent_download returns
 * SPH_ERR_STATE and keeps the bytes so far, for a later resume). */
typedef int (*agent_progress_fn)(void *ctx, const struct agent_update *u, uint64_t have,
                                 uint64_t total);
/* The device's clock: Unix seconds (may be wrong, or unset: near 0). */
typedef int64_t (*agent_clock_fn)(void *ctx);

struct agent_config {
	const char *service_url; /* "https://host:port", no path */
	const char *ca_file;     /* PEM: the service's TLS CA */
	struct agent_retry retry;
	unsigned max_rounds;        /* check-ins in agent_run_once (0 = AGENT_ROUNDS_DEFAULT) */
	long timeout_s;             /* per request (0 = 30) */
	agent_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	agent_clock_fn clock; /* for update windows; NULL: time(NULL) */
	void *clock_ctx;
	/* Called with one line per step of a cycle (the service's answer, each
	 * install, the reboot, the confirmation), for people; may be NULL. */
	void (*note)(void *ctx, const char *line);
	void *note_ctx;
};

/* Why the last operation failed, for people and tests. http_status is 0 when
 * no reply came; error is the service's JSON error word ("forbidden", ...),
 * "" when there was none; attempts counts the tries of the last operation. */
struct agent_error {
	long http_status;
	char error[AGENT_ERROR_MAX];
	char reason[AGENT_REASON_MAX];
	unsigned attempts;
};

enum agent_status {
	AGENT_STATUS_NONE = 0,
	AGENT_STATUS_UP_TO_DATE = 1,
	AGENT_STATUS_UPDATE_REQUIRED = 2,
};

/* One entry of an update_required reply, checked field by field. */
struct agent_update {
	char image_id[AGENT_IMAGE_ID_MAX + 1];
	char type[8]; /* "BL", "SECMON", "OS", "APP" or "RTAPP" */
	char component_id[AGENT_UUID_LEN + 1];
	char version[AGENT_VERSION_MAX + 1];
	uint32_t security_version;
	uint64_t size; /* of the package: 1..AGENT_DOWNLOAD_MAX */
	uint8_t sha256[32];
	char url[AGENT_URL_PATH_MAX + 1]; /* a path under /v1/ on the service */
};

#define AGENT_NONCE_LEN 40 /* bytes of a check-in nonce (docs/api.md §4.12) */

/* A check-in's answer. certificate and chain (PEM, NUL-terminated, with their
 * lengths) are set only when up to date, updates (and the optional update
 * window) only when not. time is the signed time's Unix seconds
 * (agent_signed_time: decoded strictly, our nonce, a valid signature);
 * time_verified says whether its x5chain also verified to the device's
 * tenant image root. time_cose (time_cose_len bytes) and nonce are what was
 * checked, kept for audits and tests. */
struct agent_checkin_result {
	enum agent_status status;
	char *certificate;
	size_t certificate_len;
	char *chain;
	size_t chain_len;
	struct agent_update updates[AGENT_UPDATES_MAX];
	size_t n_updates;
	bool has_window;       /* install only inside [window_start, window_end) */
	unsigned window_start; /* minutes after 00:00 UTC, 0..1439 */
	unsigned window_end;
	int64_t time;
	bool time_verified;
	uint8_t *time_cose;
	size_t time_cose_len;
	uint8_t nonce[AGENT_NONCE_LEN];
	bool sideloading;     /* "applications": "sideloading" (development mode) */
	long tls_connections; /* connections opened for nonce + check-in (1 normally) */
	size_t failures_sent; /* queued reports the service accepted */
};

/* Frees what r holds and zeroes it. Accepts NULL. */
void agent_checkin_result_free(struct agent_checkin_result *r);

/* Checks in device d (booted: its RoT holds the measurements) with cfg. The
 * queued failure reports of d's directory go along and are removed once the
 * service accepted the check-in. *res (zeroed on entry; free with
 * agent_checkin_result_free, also after a failure) and err (may be NULL;
 * zeroed on entry) receive the answer and why it failed. Returns 0 (res->status
 * says which), SPH_ERR_INVALID_ARG, SPH_ERR_PERMISSION (403), SPH_ERR_AUTH
 * (401), SPH_ERR_NOT_FOUND (404), SPH_ERR_MALFORMED (another 4xx, or a reply
 * that breaks the protocol), SPH_ERR_TRANSPORT (network or 5xx after the last
 * attempt), SPH_ERR_TOO_LARGE (a reply past its bound), or a RoT status. */
int agent_checkin(struct boot_device *d, const struct agent_config *cfg,
                  struct agent_checkin_result *res, struct agent_error *err);

/* Statistics of one agent_download: where the transfer started (the bytes
 * already on the device), and how many bytes came over the network. */
struct agent_dl_stats {
	uint64_t resumed_from;
	uint64_t fetched;
	unsigned transfers;
	unsigned resumes; /* transfers that asked for a Range from bytes already there */
};

/* Downloads u into <dir>/AGENT_DOWNLOAD_DIR/<image id>.pkg, resuming with a
 * Range request from the bytes already there, and checks its size and SHA-256.
 * *pkg (NULL on entry; free with free()) and *len receive the verified bytes.
 * A file that does not verify is removed. st (may be NULL) is zeroed, then
 * filled. Returns 0, SPH_ERR_CORRUPT (the digest or size does not match: the
 * package is refused), SPH_ERR_TOO_LARGE, SPH_ERR_STATE (cfg->progress
 * cancelled it), SPH_ERR_IO (the file), or agent_checkin's statuses. */
int agent_download(struct boot_device *d, const struct agent_config *cfg,
                   const struct agent_update *u, uint8_t **pkg, size_t *len,
                   struct agent_dl_stats *st, struct agent_error *err);

/* The signed time (docs/formats.md §10) of a check-in that sent nonce: a
 * strictly decoded COSE_Sign1, content type 65052, payload {1: seconds, 2:
 * nonce}. With the device's tenant image root (root: may be NULL) the
 * x5chain [production signer, root] must verify to it (img_sign1_verify_chain:
 * the path, certificate validity at the signed time itself, the signer's
 * tenant-app role): then *verified is true. Without a root, or when the path
 * leads elsewhere (another tenant's root), the signature is checked with the
 * leaf's own key and *verified stays false: the time is kept, not trusted.
 * Returns 0 with *when and *verified, or SPH_ERR_MALFORMED (shape),
 * SPH_ERR_NONCE_MISMATCH, SPH_ERR_BAD_SIGNATURE (tampered), SPH_ERR_NOMEM;
 * *when 0 and *verified false on failure. */
int agent_signed_time(const uint8_t *cose, size_t len, const uint8_t *nonce, size_t nonce_len,
                      X509 *root, int64_t *when, bool *verified);

/* The device's tenant image root (<dir>/BOOT_TENANT_ROOT_FILE, which
 * boot_tenant_root_check accepts) into *root (NULL on entry; X509_free).
 * Returns 0, SPH_ERR_NOT_FOUND (none installed) or another status. */
int agent_tenant_root(const char *dir, X509 **root);

/* Seconds from now (Unix seconds, UTC) until the window [start, end) opens
 * (minutes after midnight UTC, 0..1439; end < start wraps midnight; start ==
 * end is the whole day): 0 when it is open now. */
int64_t agent_window_wait(unsigned start, unsigned end, int64_t now);

/* What agent_run_once did. */
struct agent_cycle {
	unsigned rounds;     /* check-ins made */
	unsigned installed;  /* packages installed */
	unsigned confirmed;  /* components confirmed after a trial boot */
	bool deferred;       /* updates downloaded, install waits for the window */
	int64_t window_wait; /* then: seconds until it opens */
	uint64_t fetched;    /* bytes that came over the network */
	unsigned transfers;  /* download requests */
	unsigned resumes;    /* of which Range requests from bytes already there */
};

/* The cycle: boot_run d, check in; while an update is required (at most
 * cfg->max_rounds check-ins) download and verify every update, install each
 * into its inactive slot (boot_install, a trial), boot again, confirm the
 * trial (boot_confirm) once it booted, and check in again. An update_required
 * reply with an update window that is closed (by cfg->clock) is downloaded
 * and verified but not installed: 0 with res->status
 * AGENT_STATUS_UPDATE_REQUIRED and cycle->deferred (cycle->window_wait says
 * when it opens). Otherwise 0 means up to date: *res (as for agent_checkin)
 * holds the certificate. A
 * package that does not verify or install, or a trial that does not boot, is
 * queued as a failure report (sent at the next check-in). cycle and err may be
 * NULL. Returns 0, SPH_ERR_EXHAUSTED (still not up to date after max_rounds),
 * SPH_ERR_UNSUPPORTED (an application update: not installable yet),
 * SPH_ERR_STATE (a boot or trial boot failed), SPH_ERR_CORRUPT, boot_install's
 * statuses, or agent_checkin's. */
int agent_run_once(struct boot_device *d, const struct agent_config *cfg,
                   struct agent_checkin_result *res, struct agent_cycle *cycle,
                   struct agent_error *err);

/* A failure report (docs/api.md §4.13): kind "crash", "exit", "signal",
 * "refused-image" or "failed-boot"; component and text printable ASCII (may
 * be NULL or ""), has_code with code. */
struct agent_failure {
	const char *kind;
	const char *component;
	bool has_code;
	long long code;
	const char *text;
};

/* Appends f to the queue in dir (AGENT_FAILURES_FILE, written through a
 * temporary file and a rename, so it survives a reset); past
 * AGENT_FAILURES_MAX reports the oldest is dropped. Returns 0,
 * SPH_ERR_INVALID_ARG (a kind the API does not know, text not printable or
 * too long), SPH_ERR_IO or SPH_ERR_NOMEM. A damaged queue file is replaced by
 * one holding f alone (logged). */
int agent_failure_queue(const char *dir, const struct agent_failure *f);
/* The number of queued reports (>= 0), or a negative status (SPH_ERR_MALFORMED:
 * the queue file is damaged). */
int agent_failure_count(const char *dir);
/* ---- telemetry to an MQTT broker (agent_mqtt.c) ----------------------------
 * A minimal MQTT v5 client on libmosquitto: mutual TLS (1.2 or later) with the
 * device certificate the service issued and the RoT identity key (the private
 * key stays in the RoT: libmosquitto gets an SSL_CTX built here, through
 * MOSQ_OPT_SSL_CTX), QoS 1 publishes under devices/<device id>/ that wait for
 * the broker's PUBACK, and a clean disconnect. The broker decides who may do
 * what (docs/agent.md "Telemetry to an MQTT broker that trusts the tenant
 * CA"): it refuses a certificate its tenant chain does not vouch for, and its
 * ACL keeps each device under its own id. One connection is used by one
 * thread at a time and nothing runs in the background: a connection left idle
 * for more than 1.5 x AGENT_MQTT_KEEPALIVE_S is dropped by the broker, and the
 * next publish says so (SPH_ERR_TRANSPORT): connect again. libmosquitto sets
 * SIGPIPE to be ignored in the whole process.
 */
#define AGENT_MQTT_TIMEOUT_MS   10000u /* default bound of one connect or publish */
#define AGENT_MQTT_TIMEOUT_MAX  600000u
#define AGENT_MQTT_KEEPALIVE_S  60
#define AGENT_MQTT_SUBTOPIC_MAX 128u   /* bytes of the part after devices/<id>/ */
#define AGENT_MQTT_PAYLOAD_MAX  65536u /* bytes of one message */

struct agent_mqtt_config {
	const char *host; /* broker name or IP literal; its certificate must name it */
	uint16_t port;    /* 1..65535 */
	/* The broker's trust anchors: a PEM file, or (ca_file NULL) certificates.
	 * Exactly one of the two. */
	const char *ca_file;
	STACK_OF(X509) * ca;
	struct rot *rot;        /* the device; must outlive the connection */
	X509 *cert;             /* the device certificate (its key = the RoT identity key) */
	STACK_OF(X509) * chain; /* sent after cert (e.g. the device CA); may be NULL */
	unsigned timeout_ms;    /* per operation, 1..AGENT_MQTT_TIMEOUT_MAX; 0: the default */
	/* 0 or TLS1_3_VERSION: TLS 1.3 when the broker has it, else 1.2;
	 * TLS1_2_VERSION: 1.2 only. Never below 1.2. */
	int tls_max_version;
};

struct agent_mqtt;

/* Connects to the broker and waits (at most timeout_ms after the TCP connect)
 * for its CONNACK; the MQTT client id is the device id (rot_device_id). The
 * connection takes its own references to cfg's certificates: the caller keeps
 * ownership of cfg and what it points to, and may free it after the call.
 * Returns 0 and *out (close with agent_mqtt_close), or:
 *  SPH_ERR_INVALID_ARG   a bad config, or cert is not for the RoT identity key;
 *  SPH_ERR_IO            ca_file unreadable;
 *  SPH_ERR_CRYPTO        building the TLS context failed;
 *  SPH_ERR_BAD_SIGNATURE the broker's certificate does not verify against the
 *                        trust anchors, or does not name host;
 *  SPH_ERR_PERMISSION    the broker refused the device: a TLS alert about its
 *                        certificate, or a CONNACK "not authorized";
 *  SPH_ERR_TRANSPORT     no connection, the broker closed it, it spoke out of
 *                        protocol, or the timeout passed;
 *  SPH_ERR_NOMEM, SPH_ERR_STATE (libmosquitto refused an option), or what
 *  agent_rot_key / rot_device_id return. *out is NULL on failure.
 * With TLS 1.3 the client's handshake ends before the broker has checked the
 * client certificate; a broker that refuses it may close the connection before
 * its alert can be read, and the refusal then shows as SPH_ERR_TRANSPORT (the
 * log line says so). With TLS 1.2 it is always SPH_ERR_PERMISSION. */
int agent_mqtt_connect(const struct agent_mqtt_config *cfg, struct agent_mqtt **out);

/* Publishes len bytes of payload (NULL if len is 0) to
 * devices/<device id>/<subtopic> with QoS 1, not retained, and waits for the
 * PUBACK. subtopic: 1..AGENT_MQTT_SUBTOPIC_MAX bytes of UTF-8, no control
 * character, no wildcard ('+', '#'). The payload is not kept. Returns 0 (the
 * broker took it) or:
 *  SPH_ERR_INVALID_ARG a bad argument;
 *  SPH_ERR_TOO_LARGE   len > AGENT_MQTT_PAYLOAD_MAX, or the broker refused the size;
 *  SPH_ERR_STATE       the connection is closed: connect again;
 *  SPH_ERR_PERMISSION  PUBACK "not authorized": the broker's ACL refused the topic;
 *  SPH_ERR_TRANSPORT   the connection was lost, another refusal, or no PUBACK
 *                      within the timeout (the connection is then closed);
 *  SPH_ERR_NOMEM. */
int agent_mqtt_publish(struct agent_mqtt *m, const char *subtopic, const void *payload, size_t len);

/* Sends DISCONNECT (if still connected), closes the connection and frees m.
 * Accepts NULL. */
void agent_mqtt_close(struct agent_mqtt *m);

/* ---- the daemon: sphere-device run (docs/agent.md "The daemon") ----------------
 * Boots the device, runs the cycle until up to date, keeps the certificate
 * in the device directory, then checks in again when the service asks
 * through the notification channel (POST /v1/checkin/wait, a long-poll), at
 * the period, when the certificate reaches 80% of its lifetime, when an
 * update window opens, and (development devices) on a local request.
 */
#define AGENT_PERIOD_DEFAULT_S 72000u /* 20 h, like Azure Sphere */
#define AGENT_PERIOD_MAX_S     (7u * 86400u)
#define AGENT_WAIT_DEFAULT_S   55u /* the long-poll's timeout= */
#define AGENT_WAIT_MAX_S       300u
#define AGENT_RENEW_PERCENT    80                /* of the certificate's lifetime */
#define AGENT_CLOCK_SKEW_S     300               /* beyond this, a verified signed time wins */
#define AGENT_CLOCK_MIN        1577836800        /* 2020-01-01: an earlier clock is unset */
#define AGENT_CERT_FILE        "agent-cert.pem"  /* in the device directory */
#define AGENT_CHAIN_FILE       "agent-chain.pem" /* in the device directory */
#define AGENT_SOCKET_FILE      "agent.sock"      /* local requests (development) */
#define AGENT_SOCKET_OFF_FILE  "agent.sock.off"  /* why there is no socket */

struct agent_daemon_status;
/* Called by the daemon on each event ("boot", "checkin", "up_to_date",
 * "deferred", "failed", "wait", "woken", "fallback", "renew", "expired",
 * "local", "stopping"...) with a snapshot of its status and a one-line
 * text. For progress lines and tests; runs on the daemon's thread. */
typedef void (*agent_event_fn)(void *ctx, const char *event, const struct agent_daemon_status *st,
                               const char *text);

struct agent_daemon_config {
	struct agent_config agent; /* the service, retries (also the daemon's backoff), progress,
	                            * clock (the device's: NULL = time(NULL)) */
	unsigned period_s;         /* 1..AGENT_PERIOD_MAX_S; 0 = AGENT_PERIOD_DEFAULT_S */
	unsigned wait_s;           /* 1..AGENT_WAIT_MAX_S; 0 = AGENT_WAIT_DEFAULT_S */
	unsigned max_checkins;     /* stop before a cycle once this many were made (0: no limit) */
	bool once;                 /* stop after the first cycle */
	bool no_channel;           /* never use the notification channel (period only) */
	volatile sig_atomic_t *stop; /* non-zero: stop (a signal handler sets it); may be NULL */
	agent_event_fn event;        /* may be NULL */
	void *event_ctx;
};

/* What the daemon did and knows. Times are Unix seconds on the corrected
 * clock (the device's clock plus clock_offset). */
struct agent_daemon_status {
	unsigned checkins; /* check-ins made (every round of every cycle) */
	unsigned cycles;   /* cycles run */
	unsigned failures; /* cycles that failed */
	unsigned failed_in_a_row;
	unsigned installed, confirmed;
	unsigned deferred;  /* cycles that left updates for the window */
	unsigned renewals;  /* cycles started because the certificate reached 80% */
	unsigned expired;   /* cycles started with an expired certificate */
	unsigned recovered; /* of which ended with a new, valid certificate */
	unsigned periodic;  /* cycles started by the period */
	unsigned woken;     /* cycles the channel asked for */
	unsigned local;     /* cycles a local request asked for */
	unsigned window;    /* cycles started because an update window opened */
	unsigned channel_errors;
	bool channel;         /* the service has the channel (false after a 404) */
	bool local_listening; /* the local socket is open */
	bool up_to_date;      /* the last cycle ended up to date */
	bool have_cert;
	int64_t cert_not_before, cert_not_after, renew_at;
	bool time_verified;   /* the last check-in's signed time verified */
	int64_t signed_time;  /* that time */
	int64_t clock_offset; /* seconds added to the device's clock */
	uint64_t fetched;     /* download bytes over the network */
	unsigned transfers, resumes;
	int last_rc;
	char last_error[AGENT_REASON_MAX];
};

/* Runs the daemon on d (opened, not yet booted) until cfg->stop, cfg->once
 * or cfg->max_checkins ends it. st (may be NULL) receives the final status.
 * Returns 0 when it stopped as asked with the last cycle up to date (or
 * deferred to a window), the last cycle's status otherwise (after --once or
 * max_checkins), SPH_ERR_STATE (the device did not boot; a failed-boot report
 * is queued), or SPH_ERR_INVALID_ARG. */
int agent_daemon_run(struct boot_device *d, const struct agent_daemon_config *cfg,
                     struct agent_daemon_status *st);

/* Asks the daemon running on the device in dir to check in now (a
 * development device's local request, over AGENT_SOCKET_FILE). reply (cap
 * bytes) gets its answer, or why it cannot be asked. Returns 0,
 * SPH_ERR_PERMISSION (the daemon takes no local requests: reply says why),
 * SPH_ERR_NOT_FOUND (no daemon is running), SPH_ERR_TRANSPORT or
 * SPH_ERR_INVALID_ARG. */
int agent_local_request(const char *dir, char *reply, size_t cap);

#endif
