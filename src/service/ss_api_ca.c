/*
 * ss_api_ca: the tenant CA, stored and served (docs/api-ca.md): a tenant's
 * first CA at its creation, the list, chain downloads (PEM or PKCS#7), the
 * trust bundle relying services install, and rollover (a successor created
 * Inactive and published beside the Active CA, then activated; the old one
 * revoked when no valid certificate chains to it any more). Device
 * certificates are issued only by the Active CA.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "ss_internal.h"

_Static_assert(SS_CA_CERT_MAX == SS_CA_DER_MAX, "store and CA certificate bounds differ");
_Static_assert(SS_CA_KEY_MAX == SS_CA_KEYBLOB_MAX, "store and CA key blob bounds differ");

#define SS_SUBJECT_MAX 256

/* ---- helpers ------------------------------------------------------------------- */

/* A read-only ss_ca_pair over a record's bytes (nothing to free). */
static void ss_ca_view(const struct ss_ca_record *r, struct ss_ca_pair *p)
{
	p->root.cert_der = (uint8_t *)r->root_der;
	p->root.cert_len = r->root_der_len;
	p->root.key_blob = (uint8_t *)r->root_key;
	p->root.key_blob_len = r->root_key_len;
	p->device.cert_der = (uint8_t *)r->device_der;
	p->device.cert_len = r->device_der_len;
	p->device.key_blob = (uint8_t *)r->device_key;
	p->device.key_blob_len = r->device_key_len;
}

/* Frees n records from calloc (accepts NULL), wiping the wrapped keys. */
static void ss_ca_records_free(struct ss_ca_record *rs, size_t n)
{
	if (!rs)
		return;
	OPENSSL_cleanse(rs, n * sizeof(*rs));
	free(rs);
}

static X509 *ss_ca_x509(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* The certificate's notAfter as Unix seconds (0 if unreadable). */
static int64_t ss_ca_not_after(const uint8_t *der, size_t len)
{
	X509 *x = ss_ca_x509(der, len);
	struct tm tm;
	int64_t t = 0;

	if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = (int64_t)timegm(&tm);
	X509_free(x);
	return t;
}

/* The subject as RFC 2253 text ("CN=...,O=..."), "" if unreadable. */
static void ss_ca_subject(const uint8_t *der, size_t len, char out[SS_SUBJECT_MAX])
{
	X509 *x = ss_ca_x509(der, len);
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	out[0] = '\0';
	if (x && b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_read(b, out, SS_SUBJECT_MAX - 1);
		out[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	X509_free(x);
	ERR_clear_error();
}

/* Makes a new CA pair for the tenant and stores it in state; *id its id. */
static int ss_ca_make(struct ss_store *st, const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                      enum ss_ca_state state, const char *actor, char id[SS_UUID_LEN + 1])
{
	struct ss_ca_pair p;
	struct ss_ca_record *rec = calloc(1, sizeof(*rec));
	int rc = SPH_ERR_NOMEM;

	memset(&p, 0, sizeof(p));
	id[0] = '\0';
	if (!rec)
		goto out;
	rc = ss_ca_create(tenant_id, kek, 0, &p);
	if (rc)
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (p.root.cert_len > sizeof(rec->root_der) ||
	    p.device.cert_len > sizeof(rec->device_der) ||
	    p.root.key_blob_len > sizeof(rec->root_key) ||
	    p.device.key_blob_len > sizeof(rec->device_key))
		goto out;
	memcpy(rec->tenant_id, tenant_id, strlen(tenant_id) + 1);
	rec->state = state;
	memcpy(rec->root_der, p.root.cert_der, p.root.cert_len);
	rec->root_der_len = p.root.cert_len;
	memcpy(rec->device_der, p.device.cert_der, p.device.cert_len);
	rec->device_der_len = p.device.cert_len;
	memcpy(rec->root_key, p.root.key_blob, p.root.key_blob_len);
	rec->root_key_len = p.root.key_blob_len;
	memcpy(rec->device_key, p.device.key_blob, p.device.key_blob_len);
	rec->device_key_len = p.device.key_blob_len;
	rec->not_after = ss_ca_not_after(rec->device_der, rec->device_der_len);
	rc = SPH_ERR_CRYPTO;
	if (rec->not_after <= 0)
		goto out;
	rc = ss_store_ca_add(st, rec, actor, id);
out:
	ss_ca_pair_free(&p);
	ss_ca_records_free(rec, 1);
	return rc;
}

/* ---- internal API ----------------------------------------------------------------- */

int ss_tenant_ca_ensure_st(struct ss_store *st, const uint8_t kek[SS_KEK_LEN],
                           const char *tenant_id, const char *actor)
{
	struct ss_ca_record *one = calloc(1, sizeof(*one));
	char id[SS_UUID_LEN + 1];
	size_t n = 0;
	int rc = one ? ss_store_ca_list(st, tenant_id, one, 1, &n) : SPH_ERR_NOMEM;

	if (rc == 0 && n == 0) {
		rc = ss_ca_make(st, kek, tenant_id, SS_CA_ACTIVE, actor, id);
		/* Another caller made the first one meanwhile: it is there. */
		if (rc == SPH_ERR_STATE)
			rc = 0;
		if (rc == 0)
			sph_log(SPH_LOG_INFO, "ss", "tenant_ca_created", "tenant=%s ca=%s",
			        tenant_id, id[0] ? id : "(concurrent)");
	}
	ss_ca_records_free(one, 1);
	return rc;
}

int ss_tenant_ca_ensure(struct ss_service *s, const char *tenant_id, const char *actor)
{
	if (!s || !tenant_id || !actor)
		return SPH_ERR_INVALID_ARG;
	return ss_tenant_ca_ensure_st(s->st, s->kek, tenant_id, actor);
}

int ss_tenant_ca_ensure_dir(struct ss_store *st, const char *data_dir, const char *tenant_id,
                            const char *actor)
{
	uint8_t kek[SS_KEK_LEN];
	int rc = ss_kek_load(data_dir, kek);

	if (rc == 0)
		rc = ss_tenant_ca_ensure_st(st, kek, tenant_id, actor);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

int ss_tenant_issue(struct ss_service *s, const char *tenant_id, const uint8_t pub[64],
                    unsigned hours, X509 **cert, char **chain)
{
	struct ss_ca_record *ca = calloc(1, sizeof(*ca));
	struct ss_ca_pair view;
	X509 *cax = NULL, *root = NULL;
	EVP_PKEY *ck = NULL;
	char *pem = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (cert)
		*cert = NULL;
	if (chain)
		*chain = NULL;
	if (!s || !tenant_id || !pub || !cert || !chain)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!ca)
		goto out;
	rc = ss_store_ca_active(s->st, tenant_id, ca);
	if (rc == SPH_ERR_NOT_FOUND) {
		/* A tenant whose creation stopped before its CA: make it now. */
		rc = ss_tenant_ca_ensure(s, tenant_id, "");
		if (rc == 0)
			rc = ss_store_ca_active(s->st, tenant_id, ca);
	}
	if (rc)
		goto out;
	/* The Active CA's key and chain, made once per CA (ss_cache.c); all from
	 * this one record. */
	if (!ss_cache_ca_get(&s->cache, tenant_id, ca->id, &cax, &ck, &pem)) {
		ss_ca_view(ca, &view);
		rc = ss_ca_device_key(&view, s->kek, tenant_id, &cax, &ck);
		if (rc)
			goto out;
		{
			const uint8_t *p = ca->root_der;
			root = d2i_X509(NULL, &p, (long)ca->root_der_len);
			rc = root && p == ca->root_der + ca->root_der_len
			             ? ss_ca_pem((X509 *const[]){cax, root}, 2, &pem)
			             : SPH_ERR_MALFORMED;
		}
		if (rc)
			goto out;
		ss_cache_ca_put(&s->cache, tenant_id, ca->id, cax, ck, pem);
	}
	rc = ss_ca_issue_x509(cax, ck, tenant_id, pub, time(NULL), hours ? hours : SS_CERT_HOURS,
	                      cert);
	if (rc == 0) {
		*chain = pem;
		pem = NULL;
	}
out:
	free(pem);
	X509_free(root);
	X509_free(cax);
	EVP_PKEY_free(ck);
	ss_ca_records_free(ca, 1);
	return rc;
}

int ss_tenant_issue_device_cert(struct ss_service *s, const char *tenant_id, const uint8_t pub[64],
                                unsigned hours, uint8_t **der, size_t *len)
{
	X509 *x = NULL;
	char *chain = NULL;
	uint8_t *p = NULL;
	int n, rc = SPH_ERR_INVALID_ARG;

	if (der)
		*der = NULL;
	if (len)
		*len = 0;
	if (!der || !len)
		return rc;
	rc = ss_tenant_issue(s, tenant_id, pub, hours, &x, &chain);
	if (rc == 0) {
		n = i2d_X509(x, &p);
		rc = SPH_ERR_CRYPTO;
		if (n > 0 && (*der = malloc((size_t)n))) {
			memcpy(*der, p, (size_t)n);
			*len = (size_t)n;
			rc = 0;
		}
	}
	OPENSSL_free(p);
	X509_free(x);
	free(chain);
	return rc;
}

/* ---- handlers -------------------------------------------------------------------- */

static json_t *ss_ca_json(const struct ss_ca_record *r)
{
	char root[SS_SUBJECT_MAX], dev[SS_SUBJECT_MAX];

	ss_ca_subject(r->root_der, r->root_der_len, root);
	ss_ca_subject(r->device_der, r->device_der_len, dev);
	return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "id", r->id, "state",
	                 ss_ca_state_name(r->state), "created", (json_int_t)r->created, "not_after",
	                 (json_int_t)r->not_after, "root_subject", root, "device_subject", dev);
}

static void ss_h_ca_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_ca_record *cs = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	json_t *a = NULL;
	size_t n = 0;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	cs = calloc(SS_CA_PER_TENANT, sizeof(*cs));
	a = json_array();
	rc = cs && a ? ss_store_ca_list(s->st, t.id, cs, SS_CA_PER_TENANT, &n) : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_append_new(a, ss_ca_json(&cs[i]));
	if (rc == 0) {
		ss_reply_json(r, 200, json_pack("{s:o}", "ca_certificates", a));
	} else {
		json_decref(a);
		ss_api_reply_store(r, rc, "CA certificates");
	}
	ss_ca_records_free(cs, SS_CA_PER_TENANT);
}

static void ss_h_ca_chain(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_ca_record *ca = NULL;
	struct ss_ca_pair view;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	const char *fmt = ss_req_query(r, "format");
	char *pem = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	bool p7;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	if (fmt && strcmp(fmt, "pem") != 0 && strcmp(fmt, "p7") != 0) {
		ss_reply_error(r, 400, "bad_request", "format: pem or p7");
		return;
	}
	p7 = fmt && strcmp(fmt, "p7") == 0;
	ca = calloc(1, sizeof(*ca));
	rc = ca ? ss_store_ca_get(s->st, t.id, ss_req_param(r, "ca"), ca) : SPH_ERR_NOMEM;
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0) {
		ss_ca_view(ca, &view);
		rc = p7 ? ss_ca_chain_p7(&view, &der, &len) : ss_ca_chain_pem(&view, &pem);
	}
	if (rc != 0)
		ss_api_reply_store(r, rc, "CA certificate");
	else if (p7)
		ss_reply_raw(r, 200, "application/pkcs7-mime", der, len);
	else
		ss_reply_raw(r, 200, "application/x-pem-file", pem, strlen(pem));
	free(pem);
	free(der);
	ss_ca_records_free(ca, 1);
}

/* The trust bundle: every CA that is not Revoked, newest first, as PEM. */
static void ss_h_ca_bundle(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_ca_record *cs = NULL;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	char *bundle = NULL;
	size_t n = 0, len = 0;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	cs = calloc(SS_CA_PER_TENANT, sizeof(*cs));
	rc = cs ? ss_store_ca_list(s->st, t.id, cs, SS_CA_PER_TENANT, &n) : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct ss_ca_pair view;
		char *pem = NULL, *grown;
		size_t plen;

		if (cs[i].state == SS_CA_REVOKED)
			continue;
		ss_ca_view(&cs[i], &view);
		rc = ss_ca_chain_pem(&view, &pem);
		if (rc)
			break;
		plen = strlen(pem);
		grown = realloc(bundle, len + plen + 1);
		if (!grown) {
			free(pem);
			rc = SPH_ERR_NOMEM;
			break;
		}
		bundle = grown;
		memcpy(bundle + len, pem, plen + 1);
		len += plen;
		free(pem);
	}
	if (rc == 0 && len == 0)
		rc = SPH_ERR_NOT_FOUND; /* no CA published (none made yet) */
	if (rc == 0)
		ss_reply_raw(r, 200, "application/x-pem-file", bundle, len);
	else
		ss_api_reply_store(r, rc, "CA certificates");
	free(bundle);
	ss_ca_records_free(cs, SS_CA_PER_TENANT);
}

/* Replies with a CA of t as JSON (status), or the store's error. */
static void ss_ca_reply(struct ss_service *s, struct ss_req *r, const struct ss_tenant *t,
                        const char *id, int status)
{
	struct ss_ca_record *ca = calloc(1, sizeof(*ca));
	int rc = ca ? ss_store_ca_get(s->st, t->id, id, ca) : SPH_ERR_NOMEM;

	if (rc == 0)
		ss_reply_json(r, status, ss_ca_json(ca));
	else
		ss_api_reply_store(r, rc, "CA certificate");
	ss_ca_records_free(ca, 1);
}

static void ss_h_ca_create(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	struct ss_ca_record *one = NULL;
	char id[SS_UUID_LEN + 1];
	size_t n = 0;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	/* A tenant without any CA gets an Active one; otherwise a successor. */
	one = calloc(1, sizeof(*one));
	rc = one ? ss_store_ca_list(s->st, t.id, one, 1, &n) : SPH_ERR_NOMEM;
	ss_ca_records_free(one, 1);
	if (rc == 0)
		rc = ss_ca_make(s->st, s->kek, t.id, n ? SS_CA_INACTIVE : SS_CA_ACTIVE, u.id, id);
	if (rc == 0)
		ss_ca_reply(s, r, &t, id, 201);
	else if (rc == SPH_ERR_EXHAUSTED)
		ss_reply_error(r, 409, "conflict", "a tenant holds at most %d CAs",
		               SS_CA_PER_TENANT);
	else
		ss_api_reply_store(r, rc, "CA certificate");
}

static void ss_h_ca_state(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	enum ss_ca_state want;
	const char *id = ss_req_param(r, "ca"), *name;
	json_t *body;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_ADMIN, &u, &t, &role))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	name = ss_api_body_str(r, body, "state");
	if (!name)
		goto out;
	want = ss_ca_state_from_name(name);
	if (want != SS_CA_ACTIVE && want != SS_CA_REVOKED) {
		ss_reply_error(r, 400, "bad_request", "\"state\": Active or Revoked");
		goto out;
	}
	rc = ss_store_ca_set_state(s->st, t.id, id, want, u.id);
	if (rc == SPH_ERR_INVALID_ARG)
		rc = SPH_ERR_NOT_FOUND;
	if (rc == 0)
		ss_ca_reply(s, r, &t, id, 200);
	else if (rc == SPH_ERR_STATE)
		ss_reply_error(
		        r, 409, "conflict",
		        want == SS_CA_ACTIVE
		                ? "a Revoked CA never becomes Active again"
		                : "the Active CA cannot be revoked: activate a successor first");
	else
		ss_api_reply_store(r, rc, "CA certificate");
out:
	json_decref(body);
}

int ss_api_ca_routes(struct ss_service *s)
{
	static const struct {
		const char *method, *pattern;
		ss_handler fn;
	} routes[] = {
	        {"GET", "/v1/tenants/{tenant}/ca-certificates", ss_h_ca_list},
	        {"POST", "/v1/tenants/{tenant}/ca-certificates", ss_h_ca_create},
	        {"GET", "/v1/tenants/{tenant}/ca-certificates/chain", ss_h_ca_bundle},
	        {"GET", "/v1/tenants/{tenant}/ca-certificates/{ca}/chain", ss_h_ca_chain},
	        {"POST", "/v1/tenants/{tenant}/ca-certificates/{ca}/state", ss_h_ca_state},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn,
		                       s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
