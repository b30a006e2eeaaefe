/*
 * agent_checkin: one check-in (docs/api.md §4.12-§4.13). Over one mTLS
 * connection: POST /v1/checkin/nonce, rot_attest over the nonce, POST
 * /v1/checkin {"nonce", "evidence", "failures"?}. The reply is parsed
 * strictly: exactly the members the API defines for its status, each checked
 * for type, length and form; anything else is SPH_ERR_MALFORMED. Network
 * errors and 5xx replies are retried (agent_net.c); refusals are not.
 *
 * Also the device's queue of failure reports (AGENT_FAILURES_FILE in the
 * device directory), sent with the next check-in and removed once the
 * service accepted it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent_internal.h"
#include "boot/boot.h"
#include "common/common.h"
#include "cose/cose.h"

#define AGENT_TIME_MAX      (4u * COSE_MAX_CERT + 1024u)
#define AGENT_QUEUE_MAX     (64u * 1024u) /* bytes of the failure queue file */
#define AGENT_PATH_MAX      4096
#define AGENT_UPDATE_FIELDS 8

/* ---- small helpers -------------------------------------------------------------- */

static bool agent_printable(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (n >= max || s[n] < 0x20 || s[n] > 0x7e)
			return false;
	return true;
}

/* An id or path segment: 1..max of [A-Za-z0-9._~-], not "." or "..". */
static bool agent_segment_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || (len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '~' || c == '-'))
			return false;
	}
	return true;
}

static int agent_join(const char *dir, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

void agent_checkin_result_free(struct agent_checkin_result *r)
{
	if (!r)
		return;
	free(r->certificate);
	free(r->chain);
	free(r->time_cose);
	memset(r, 0, sizeof(*r));
}

/* ---- the failure queue ------------------------------------------------------------ */

static bool agent_kind_ok(const char *k)
{
	static const char *const kinds[] = {"crash", "exit", "signal", "refused-image",
	                                    "failed-boot"};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(k, kinds[i]) == 0)
			return true;
	return false;
}

/* One report as the API takes it (§4.13 "failures"). */
static bool agent_report_ok(json_t *o)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o) || !json_is_string(json_object_get(o, "kind")) ||
	    !agent_kind_ok(json_string_value(json_object_get(o, "kind"))))
		return false;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "kind") == 0)
			continue;
		if (strcmp(key, "code") == 0) {
			if (!json_is_integer(v))
				return false;
		} else if (strcmp(key, "component") == 0 || strcmp(key, "text") == 0) {
			size_t max = key[0] == 'c' ? AGENT_FAILURE_COMP : AGENT_FAILURE_TEXT;
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    !agent_printable(json_string_value(v), max))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* The queue of dir: a JSON array of valid reports (a new empty array when
 * there is no file). A damaged file is SPH_ERR_MALFORMED. */
static int agent_queue_load(const char *dir, json_t **out)
{
	char path[AGENT_PATH_MAX];
	uint8_t *buf = NULL;
	json_t *a = NULL;
	FILE *f = NULL;
	size_t n;
	int rc;

	*out = NULL;
	if ((rc = agent_join(dir, AGENT_FAILURES_FILE, path, sizeof(path))) != 0)
		goto out;
	if (!(f = fopen(path, "rb"))) {
		rc = errno == ENOENT ? 0 : SPH_ERR_IO;
		if (rc == 0 && !(a = json_array()))
			rc = SPH_ERR_NOMEM;
		goto done;
	}
	rc = SPH_ERR_NOMEM;
	if (!(buf = malloc(AGENT_QUEUE_MAX + 1)))
		goto out;
	n = fread(buf, 1, AGENT_QUEUE_MAX + 1, f);
	rc = SPH_ERR_IO;
	if (ferror(f))
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (n > AGENT_QUEUE_MAX ||
	    !(a = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL)) ||
	    !json_is_array(a) || json_array_size(a) > AGENT_FAILURES_MAX)
		goto out;
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!agent_report_ok(json_array_get(a, i)))
			goto out;
	rc = 0;
done:
	*out = a;
	a = NULL; /* transferred */
out:
	if (f)
		fclose(f);
	free(buf);
	json_decref(a);
	return rc;
}

/* Writes the queue a (an empty one removes the file), through a temporary
 * file and a rename. */
static int agent_queue_store(const char *dir, json_t *a)
{
	char path[AGENT_PATH_MAX], tmp[AGENT_PATH_MAX + 8];
	char *text = NULL;
	FILE *f = NULL;
	int fd, rc;

	if ((rc = agent_join(dir, AGENT_FAILURES_FILE, path, sizeof(path))) != 0)
		goto out;
	if (json_array_size(a) == 0) {
		rc = unlink(path) == 0 || errno == ENOENT ? 0 : SPH_ERR_IO;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rc = SPH_ERR_NOMEM;
	if (!(text = json_dumps(a, JSON_COMPACT)))
		goto out;
	rc = SPH_ERR_IO;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if (!(f = fdopen(fd, "wb"))) {
		close(fd);
		goto out;
	}
	if (fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto out;
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		goto out;
	rc = 0;
out:
	if (f)
		fclose(f);
	if (rc && text)
		(void)unlink(tmp);
	free(text);
	return rc;
}

int agent_failure_queue(const char *dir, const struct agent_failure *f)
{
	json_t *a = NULL, *o = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (!dir || !f || !f->kind || !agent_kind_ok(f->kind) ||
	    (f->component && !agent_printable(f->component, AGENT_FAILURE_COMP)) ||
	    (f->text && !agent_printable(f->text, AGENT_FAILURE_TEXT)))
		goto out;
	rc = agent_queue_load(dir, &a);
	if (rc == SPH_ERR_MALFORMED) {
		/* a damaged queue is dropped rather than blocking every report after it */
		sph_log(SPH_LOG_WARN, "agent", "failure_queue_damaged", "action=replaced");
		rc = (a = json_array()) ? 0 : SPH_ERR_NOMEM;
	}
	if (rc)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(o = json_pack("{s:s}", "kind", f->kind)))
		goto out;
	if ((f->component && f->component[0] &&
	     json_object_set_new(o, "component", json_string(f->component)) != 0) ||
	    (f->has_code && json_object_set_new(o, "code", json_integer(f->code)) != 0) ||
	    (f->text && f->text[0] && json_object_set_new(o, "text", json_string(f->text)) != 0))
		goto out;
	while (json_array_size(a) >= AGENT_FAILURES_MAX)
		if (json_array_remove(a, 0) != 0)
			goto out;
	if (json_array_append(a, o) != 0)
		goto out;
	rc = agent_queue_store(dir, a);
out:
	json_decref(o);
	json_decref(a);
	return rc;
}

int agent_failure_count(const char *dir)
{
	json_t *a = NULL;
	int rc;

	if (!dir)
		return SPH_ERR_INVALID_ARG;
	rc = agent_queue_load(dir, &a);
	if (rc == 0)
		rc = (int)json_array_size(a);
	json_decref(a);
	return rc;
}

/* ---- the reply ----------------------------------------------------------------------- */

/* Only the named members, each at most once (jansson rejects duplicates). */
static bool agent_only_keys(json_t *o, const char *const *keys, size_t n)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		bool known = false;
		(void)v;
		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(key, keys[i]) == 0;
		if (!known)
			return false;
	}
	return true;
}

/* A string member of 1..max bytes, copied to dst (max + 1 bytes). */
static bool agent_str(json_t *o, const char *key, char *dst, size_t max)
{
	json_t *v = json_object_get(o, key);
	size_t n;

	if (!json_is_string(v))
		return false;
	n = json_string_length(v);
	if (n == 0 || n > max || strlen(json_string_value(v)) != n)
		return false;
	memcpy(dst, json_string_value(v), n + 1);
	return true;
}

static bool agent_uuid_ok(const char *s)
{
	if (strlen(s) != AGENT_UUID_LEN)
		return false;
	for (size_t i = 0; i < AGENT_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-'
		         : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* The update's url: the package path the API names for its type and id. */
static bool agent_url_ok(const struct agent_update *u)
{
	static const char os_pre[] = "/v1/os-images/", t_pre[] = "/v1/tenants/";
	static const char suffix[] = "/package";
	bool os = strcmp(u->type, "BL") == 0 || strcmp(u->type, "SECMON") == 0 ||
	          strcmp(u->type, "OS") == 0;
	const char *p = u->url, *slash;
	size_t n = strlen(u->image_id), sl = strlen(suffix);

	if (os) {
		if (strncmp(p, os_pre, sizeof(os_pre) - 1) != 0)
			return false;
		p += sizeof(os_pre) - 1;
	} else {
		if (strncmp(p, t_pre, sizeof(t_pre) - 1) != 0)
			return false;
		p += sizeof(t_pre) - 1;
		slash = strchr(p, '/');
		if (!slash || !agent_segment_ok(p, (size_t)(slash - p), 128) ||
		    strncmp(slash, "/images/", 8) != 0)
			return false;
		p = slash + 8;
	}
	return strncmp(p, u->image_id, n) == 0 && strcmp(p + n, suffix) == 0 && strlen(p + n) == sl;
}

static int agent_parse_update(json_t *o, struct agent_update *u)
{
	static const char *const keys[AGENT_UPDATE_FIELDS] = {
	        "image_id",         "type", "component_id", "version",
	        "security_version", "size", "sha256",       "url"};
	static const char *const types[] = {"BL", "SECMON", "OS", "APP", "RTAPP"};
	char hex[65];
	json_t *svn, *size;
	bool type_ok = false;

	memset(u, 0, sizeof(*u));
	if (!json_is_object(o) || json_object_size(o) != AGENT_UPDATE_FIELDS ||
	    !agent_only_keys(o, keys, AGENT_UPDATE_FIELDS))
		return SPH_ERR_MALFORMED;
	svn = json_object_get(o, "security_version");
	size = json_object_get(o, "size");
	if (!agent_str(o, "image_id", u->image_id, AGENT_IMAGE_ID_MAX) ||
	    !agent_segment_ok(u->image_id, strlen(u->image_id), AGENT_IMAGE_ID_MAX) ||
	    !agent_str(o, "type", u->type, sizeof(u->type) - 1) ||
	    !agent_str(o, "component_id", u->component_id, AGENT_UUID_LEN) ||
	    !agent_uuid_ok(u->component_id) ||
	    !agent_str(o, "version", u->version, AGENT_VERSION_MAX) ||
	    !agent_printable(u->version, AGENT_VERSION_MAX) || !json_is_integer(svn) ||
	    json_integer_value(svn) < 0 || json_integer_value(svn) > IMG_SVN_MAX ||
	    !json_is_integer(size) || json_integer_value(size) < 1 ||
	    !agent_str(o, "sha256", hex, 64) || strlen(hex) != 64 ||
	    sph_hex_decode(hex, u->sha256, sizeof(u->sha256)) != 0 ||
	    !agent_str(o, "url", u->url, AGENT_URL_PATH_MAX))
		return SPH_ERR_MALFORMED;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		type_ok = type_ok || strcmp(u->type, types[i]) == 0;
	if (!type_ok || !agent_url_ok(u))
		return SPH_ERR_MALFORMED;
	u->security_version = (uint32_t)json_integer_value(svn);
	if (json_integer_value(size) > (json_int_t)AGENT_DOWNLOAD_MAX)
		return SPH_ERR_TOO_LARGE;
	u->size = (uint64_t)json_integer_value(size);
	return 0;
}

/* The signed time: base64url into res->time_cose, then agent_signed_time
 * against the device's tenant root (none: kept unverified). */
static int agent_parse_time(const char *b64, const uint8_t *nonce, X509 *root,
                            struct agent_checkin_result *res)
{
	uint8_t *msg = malloc(AGENT_TIME_MAX);
	size_t len = 0;
	int rc = SPH_ERR_NOMEM;

	if (!msg)
		goto out;
	if ((rc = sph_b64url_decode(b64, msg, AGENT_TIME_MAX, &len)) != 0 ||
	    (rc = agent_signed_time(msg, len, nonce, AGENT_NONCE_LEN, root, &res->time,
	                            &res->time_verified)) != 0)
		goto out;
	memcpy(res->nonce, nonce, AGENT_NONCE_LEN);
	res->time_cose = msg;
	res->time_cose_len = len;
	msg = NULL; /* transferred */
	rc = 0;
out:
	free(msg);
	return rc;
}

/* "HH:MM" (00..23, 00..59) into minutes after midnight. */
static bool agent_hhmm(json_t *v, unsigned *min)
{
	const char *t = json_string_value(v);

	if (!t || json_string_length(v) != 5 || t[2] != ':')
		return false;
	for (int i = 0; i < 5; i++)
		if (i != 2 && (t[i] < '0' || t[i] > '9'))
			return false;
	if ((t[0] - '0') * 10 + (t[1] - '0') > 23 || t[3] > '5')
		return false;
	*min = (unsigned)(((t[0] - '0') * 10 + (t[1] - '0')) * 60 + (t[3] - '0') * 10 +
	                  (t[4] - '0'));
	return true;
}

/* "update_window": exactly {"start": "HH:MM", "end": "HH:MM"} (UTC). */
static int agent_parse_window(json_t *w, struct agent_checkin_result *res)
{
	static const char *const keys[] = {"start", "end"};

	if (!json_is_object(w) || json_object_size(w) != 2 || !agent_only_keys(w, keys, 2) ||
	    !agent_hhmm(json_object_get(w, "start"), &res->window_start) ||
	    !agent_hhmm(json_object_get(w, "end"), &res->window_end))
		return SPH_ERR_MALFORMED;
	res->has_window = true;
	return 0;
}

/* A PEM string member of at most AGENT_PEM_MAX bytes, copied. */
static int agent_pem(json_t *o, const char *key, char **out, size_t *len)
{
	json_t *v = json_object_get(o, key);
	size_t n;

	*out = NULL;
	*len = 0;
	if (!json_is_string(v))
		return SPH_ERR_MALFORMED;
	n = json_string_length(v);
	if (n == 0 || strlen(json_string_value(v)) != n)
		return SPH_ERR_MALFORMED;
	if (n > AGENT_PEM_MAX)
		return SPH_ERR_TOO_LARGE;
	if (!(*out = malloc(n + 1)))
		return SPH_ERR_NOMEM;
	memcpy(*out, json_string_value(v), n + 1);
	*len = n;
	return 0;
}

/* The certificate is for this device: one X.509 certificate (nothing after
 * it) whose key is the RoT identity key; the chain is one or more
 * certificates and nothing else. */
static int agent_check_certs(struct rot *rot, const struct agent_checkin_result *res)
{
	uint8_t pub[ROT_PUB_LEN], cpub[ROT_PUB_LEN];
	size_t clen = 0;
	BIO *b = NULL;
	X509 *x = NULL;
	int rc, k = 0;

	if ((rc = rot_pubkey(rot, ROT_KEY_IDENTITY, pub)) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (!(b = BIO_new_mem_buf(res->certificate, (int)res->certificate_len)) ||
	    !(x = PEM_read_bio_X509(b, NULL, NULL, NULL)) || BIO_pending(b) > 2 ||
	    EVP_PKEY_get_octet_string_param(X509_get0_pubkey(x), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
	                                    cpub, sizeof(cpub), &clen) != 1 ||
	    clen != sizeof(cpub) || CRYPTO_memcmp(pub, cpub, sizeof(pub)) != 0)
		goto out;
	BIO_free(b);
	X509_free(x);
	x = NULL;
	if (!(b = BIO_new_mem_buf(res->chain, (int)res->chain_len)))
		goto out;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		X509_free(x);
		x = NULL;
		k++;
	}
	if (k == 0 || BIO_pending(b) > 2)
		goto out;
	rc = 0;
out:
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

static int agent_parse_reply(struct rot *rot, X509 *root, const struct agent_buf *body,
                             const uint8_t *nonce, struct agent_checkin_result *res,
                             struct agent_error *err)
{
	static const char *const up_keys[] = {"status", "certificate", "chain", "time",
	                                      "applications"};
	static const char *const upd_keys[] = {"status", "updates", "time", "applications",
	                                       "update_window"};
	json_t *j = NULL, *a, *apps;
	const char *status, *t;
	int rc = SPH_ERR_MALFORMED;

	if (!(j = json_loadb(body->data, body->len, JSON_REJECT_DUPLICATES, NULL)) ||
	    !json_is_object(j) || !(status = json_string_value(json_object_get(j, "status"))) ||
	    !(t = json_string_value(json_object_get(j, "time")))) {
		agent_err_set(err, "checkin: the reply is not a check-in answer");
		goto out;
	}
	apps = json_object_get(j, "applications");
	if (apps &&
	    !(json_is_string(apps) && strcmp(json_string_value(apps), "sideloading") == 0)) {
		agent_err_set(err, "checkin: \"applications\" is not \"sideloading\"");
		goto out;
	}
	res->sideloading = apps != NULL;
	if (strcmp(status, "up_to_date") == 0) {
		if (!agent_only_keys(j, up_keys, sizeof(up_keys) / sizeof(up_keys[0]))) {
			agent_err_set(err, "checkin: unknown members in the reply");
			goto out;
		}
		if ((rc = agent_pem(j, "certificate", &res->certificate, &res->certificate_len)) !=
		            0 ||
		    (rc = agent_pem(j, "chain", &res->chain, &res->chain_len)) != 0 ||
		    (rc = agent_check_certs(rot, res)) != 0) {
			agent_err_set(err, "checkin: the certificate or chain: %s",
			              sph_strerror(rc));
			goto out;
		}
		res->status = AGENT_STATUS_UP_TO_DATE;
	} else if (strcmp(status, "update_required") == 0) {
		a = json_object_get(j, "updates");
		if (!agent_only_keys(j, upd_keys, sizeof(upd_keys) / sizeof(upd_keys[0])) ||
		    !json_is_array(a) || json_array_size(a) == 0) {
			agent_err_set(err, "checkin: update_required without updates");
			goto out;
		}
		if (json_array_size(a) > AGENT_UPDATES_MAX) {
			rc = SPH_ERR_TOO_LARGE;
			agent_err_set(err, "checkin: more than %d updates", AGENT_UPDATES_MAX);
			goto out;
		}
		for (size_t i = 0; i < json_array_size(a); i++) {
			if ((rc = agent_parse_update(json_array_get(a, i), &res->updates[i])) !=
			    0) {
				agent_err_set(err, "checkin: updates[%zu]: %s", i,
				              sph_strerror(rc));
				goto out;
			}
		}
		res->n_updates = json_array_size(a);
		if (json_object_get(j, "update_window") &&
		    (rc = agent_parse_window(json_object_get(j, "update_window"), res)) != 0) {
			agent_err_set(err, "checkin: update_window is not {\"start\", \"end\"} "
			                   "as HH:MM");
			goto out;
		}
		res->status = AGENT_STATUS_UPDATE_REQUIRED;
	} else {
		agent_err_set(err, "checkin: unknown status");
		goto out;
	}
	if ((rc = agent_parse_time(t, nonce, root, res)) != 0) {
		agent_err_set(err, "checkin: the signed time: %s", sph_strerror(rc));
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* ---- one attempt ------------------------------------------------------------------------ */

/* The check-in body: nonce, evidence over it, the queued failures (may be an
 * empty array: then no member). Returns a new string or NULL. */
static char *agent_body(const char *nonce_hex, const uint8_t *tok, size_t tok_len, json_t *failures)
{
	char *ev = sph_b64url_encode(tok, tok_len), *out = NULL;
	json_t *o = ev ? json_pack("{s:s, s:s}", "nonce", nonce_hex, "evidence", ev) : NULL;

	if (o && json_array_size(failures) > 0 && json_object_set(o, "failures", failures) != 0)
		goto out;
	if (o)
		out = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	free(ev);
	return out;
}

/* One try: *status is the last HTTP status (0: none). */
static int agent_checkin_try(struct boot_device *d, const struct agent_config *cfg,
                             json_t *failures, struct agent_checkin_result *res, long *status,
                             struct agent_error *err)
{
	struct agent_conn conn;
	struct agent_buf reply = {.max = AGENT_REPLY_MAX};
	uint8_t nonce[AGENT_NONCE_LEN], *tok = NULL;
	char hex[2 * AGENT_NONCE_LEN + 1], *body = NULL;
	const char *nh;
	json_t *j = NULL;
	X509 *root = NULL;
	size_t tok_len = 0;
	int rc;

	*status = 0;
	if ((rc = agent_conn_open(d, cfg, &conn)) != 0) {
		agent_err_set(err, "the TLS key: %s", sph_strerror(rc));
		goto out;
	}
	if ((rc = agent_post_json(&conn, "/v1/checkin/nonce", "{}", &reply, status)) != 0) {
		agent_err_set(err, "nonce: %s", sph_strerror(rc));
		goto out;
	}
	if (*status != 200) {
		rc = agent_refusal(*status, reply.data, reply.len, "nonce", err);
		goto out;
	}
	rc = SPH_ERR_MALFORMED;
	if (!(j = json_loadb(reply.data, reply.len, JSON_REJECT_DUPLICATES, NULL)) ||
	    !json_is_object(j) || json_object_size(j) != 1 ||
	    !(nh = json_string_value(json_object_get(j, "nonce"))) ||
	    strlen(nh) != 2 * AGENT_NONCE_LEN || sph_hex_decode(nh, nonce, sizeof(nonce)) != 0) {
		agent_err_set(err, "nonce: the reply is not {\"nonce\": 80 hex digits}");
		goto out;
	}
	memcpy(hex, nh, sizeof(hex));
	rc = SPH_ERR_NOMEM;
	if (!(tok = malloc(EAT_MAX_TOKEN)))
		goto out;
	if ((rc = rot_attest(boot_rot(d), nonce, sizeof(nonce), tok, EAT_MAX_TOKEN, &tok_len)) !=
	    0) {
		agent_err_set(err, "rot_attest: %s", sph_strerror(rc));
		goto out;
	}
	rc = SPH_ERR_NOMEM;
	if (!(body = agent_body(hex, tok, tok_len, failures)))
		goto out;
	if ((rc = agent_post_json(&conn, "/v1/checkin", body, &reply, status)) != 0) {
		agent_err_set(err, "checkin: %s", sph_strerror(rc));
		goto out;
	}
	if (*status != 200) {
		rc = agent_refusal(*status, reply.data, reply.len, "checkin", err);
		goto out;
	}
	res->tls_connections = conn.connects;
	/* the tenant root, if the device has one, makes the signed time trusted */
	rc = agent_tenant_root(chip_dir(boot_chip(d)), &root);
	if (rc != 0 && rc != SPH_ERR_NOT_FOUND)
		sph_log(SPH_LOG_WARN, "agent", "tenant_root_unusable", "rc=%d", rc);
	if ((rc = agent_parse_reply(boot_rot(d), root, &reply, nonce, res, err)) != 0)
		goto out;
	rc = 0;
out:
	if (rc)
		agent_checkin_result_free(res);
	json_decref(j);
	X509_free(root);
	free(body);
	free(tok);
	agent_buf_free(&reply);
	agent_conn_close(&conn);
	return rc;
}

int agent_checkin(struct boot_device *d, const struct agent_config *cfg,
                  struct agent_checkin_result *res, struct agent_error *err)
{
	struct agent_retry policy;
	struct chip *chip = boot_chip(d);
	json_t *failures = NULL;
	long status = 0;
	unsigned n = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (res)
		memset(res, 0, sizeof(*res));
	if (err)
		memset(err, 0, sizeof(*err));
	if (!d || !chip || !cfg || !res)
		goto out;
	agent_retry_policy(cfg, &policy);
	rc = agent_queue_load(chip_dir(chip), &failures);
	if (rc == SPH_ERR_MALFORMED) {
		sph_log(SPH_LOG_WARN, "agent", "failure_queue_damaged", "action=skipped");
		rc = (failures = json_array()) ? 0 : SPH_ERR_NOMEM;
	}
	if (rc)
		goto out;
	for (;;) {
		if (err)
			memset(err, 0, sizeof(*err));
		rc = agent_checkin_try(d, cfg, failures, res, &status, err);
		n++;
		if (err) {
			err->attempts = n;
			if (!err->http_status)
				err->http_status = status;
		}
		if (rc == 0 || !agent_transient(rc, status) || n >= policy.attempts)
			break;
		sph_log(SPH_LOG_INFO, "agent", "checkin_retry", "attempt=%u status=%ld rc=%d", n,
		        status, rc);
		agent_backoff_sleep(&policy, n);
	}
	if (rc)
		goto out;
	/* accepted: the reports are recorded; the queue starts over */
	res->failures_sent = json_array_size(failures);
	if (res->failures_sent) {
		json_t *empty = json_array();
		int qrc = empty ? agent_queue_store(chip_dir(chip), empty) : SPH_ERR_NOMEM;
		json_decref(empty);
		if (qrc)
			sph_log(SPH_LOG_WARN, "agent", "failure_queue_clear", "rc=%d", qrc);
	}
	sph_log(SPH_LOG_INFO, "agent", "checkin",
	        "status=%s updates=%zu failures_sent=%zu attempts=%u time_verified=%d",
	        res->status == AGENT_STATUS_UP_TO_DATE ? "up_to_date" : "update_required",
	        res->n_updates, res->failures_sent, n, res->time_verified);
out:
	json_decref(failures);
	return rc;
}
