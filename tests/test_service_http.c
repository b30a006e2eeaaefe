/* service/http: the HTTPS core over real TLS with libcurl: routing, limits,
 * JSON input, TLS versions, client certificates, metrics, concurrency and a
 * clean stop. The PKI (two CAs, a server and two client certificates) is made
 * with OpenSSL in a temporary directory. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "service/ss_http.h"
#include "testutil.h"

#define MAX_BODY (64u * 1024)

static char *g_dir, *g_ca, *g_srv_cert, *g_srv_key, *g_cli_cert, *g_cli_key, *g_evil_cert,
        *g_evil_key, *g_evil_ca;

/* ---- PKI ------------------------------------------------------------------- */

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	if (cert)
		assert_int_equal(PEM_write_X509(f, cert), 1);
	if (key)
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

enum kind { CA, SERVER, CLIENT };

/* A P-256 certificate for cn signed by issuer (self-signed when NULL). */
static X509 *make_cert(const char *cn, enum kind kind, X509 *issuer, EVP_PKEY *issuer_key,
                       EVP_PKEY **key_out)
{
	static long serial = 1;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();

	assert_non_null(key);
	assert_non_null(c);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509_NAME_free(name);
	X509_set_pubkey(c, key);
	add_ext(c, issuer, NID_subject_key_identifier, "hash");
	add_ext(c, issuer, NID_authority_key_identifier, "keyid:always");
	if (kind == CA) {
		add_ext(c, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(c, issuer, NID_key_usage, "critical,digitalSignature");
		add_ext(c, issuer, NID_ext_key_usage, kind == SERVER ? "serverAuth" : "clientAuth");
		if (kind == SERVER)
			add_ext(c, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	}
	assert_true(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	*key_out = key;
	return c;
}

static int group_setup(void **state)
{
	EVP_PKEY *ca_key, *k, *evil_key;
	X509 *ca, *evil, *c;

	(void)state;
	sph_log_set_level(SPH_LOG_WARN);
	assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	g_dir = tu_mkdtemp();
	g_ca = tu_path(g_dir, "ca.pem");
	g_srv_cert = tu_path(g_dir, "server.pem");
	g_srv_key = tu_path(g_dir, "server.key");
	g_cli_cert = tu_path(g_dir, "client.pem");
	g_cli_key = tu_path(g_dir, "client.key");
	g_evil_ca = tu_path(g_dir, "evil-ca.pem");
	g_evil_cert = tu_path(g_dir, "evil.pem");
	g_evil_key = tu_path(g_dir, "evil.key");

	ca = make_cert("Sphere Test CA", CA, NULL, NULL, &ca_key);
	write_pem(g_ca, ca, NULL);
	c = make_cert("localhost", SERVER, ca, ca_key, &k);
	write_pem(g_srv_cert, c, NULL);
	write_pem(g_srv_key, NULL, k);
	X509_free(c);
	EVP_PKEY_free(k);
	c = make_cert("device-0001", CLIENT, ca, ca_key, &k);
	write_pem(g_cli_cert, c, NULL);
	write_pem(g_cli_key, NULL, k);
	X509_free(c);
	EVP_PKEY_free(k);
	evil = make_cert("Evil CA", CA, NULL, NULL, &evil_key);
	write_pem(g_evil_ca, evil, NULL);
	c = make_cert("device-0001", CLIENT, evil, evil_key, &k);
	write_pem(g_evil_cert, c, NULL);
	write_pem(g_evil_key, NULL, k);
	X509_free(c);
	EVP_PKEY_free(k);
	X509_free(evil);
	EVP_PKEY_free(evil_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tu_rmtree(g_dir);
	free(g_dir);
	free(g_ca);
	free(g_srv_cert);
	free(g_srv_key);
	free(g_cli_cert);
	free(g_cli_key);
	free(g_evil_ca);
	free(g_evil_cert);
	free(g_evil_key);
	curl_global_cleanup();
	return 0;
}

/* ---- handlers ---------------------------------------------------------------- */

static void h_part(struct ss_req *r, void *arg)
{
	const char *q = ss_req_query(r, "q");

	(void)arg;
	ss_reply_json(r, 200,
	              json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "id", ss_req_param(r, "id"), "part",
	                        ss_req_param(r, "part"), "path", ss_req_path(r), "q", q, "missing",
	                        ss_req_param(r, "nope")));
}

static void h_thing(struct ss_req *r, void *arg)
{
	(void)arg;
	ss_reply_json(
	        r, 200,
	        json_pack("{s:s, s:s}", "method", ss_req_method(r), "id", ss_req_param(r, "id")));
}

static void h_echo(struct ss_req *r, void *arg)
{
	char why[256];
	json_t *j = ss_req_json(r, why, sizeof(why));

	(void)arg;
	if (!j) {
		ss_metric_inc(ss_req_server(r), "sphere_test_echo_total", "result=\"bad\"");
		ss_reply_error(r, 400, "bad_request", "%s", why);
		return;
	}
	ss_metric_inc(ss_req_server(r), "sphere_test_echo_total", "result=\"ok\"");
	ss_reply_json(r, 200, j);
}

static void h_whoami(struct ss_req *r, void *arg)
{
	X509 *peer = ss_req_peer_cert(r);
	char cn[128] = "";

	(void)arg;
	if (peer)
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
		                          sizeof(cn));
	ss_reply_json(r, 200, json_pack("{s:s?}", "cn", peer ? cn : NULL));
}

static void h_forgetful(struct ss_req *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void h_raw(struct ss_req *r, void *arg)
{
	const uint8_t *b;
	size_t n;

	(void)arg;
	ss_req_body(r, &b, &n);
	ss_metric_inc(ss_req_server(r), "sphere_test_plain_total", "");
	ss_metric_inc(ss_req_server(r), "sphere_test_odd_total", "path=\"a\\b\"");
	ss_reply_raw(r, 201, "application/octet-stream", b, n);
}

static struct ss_http *server_new(int workers, const char *client_ca)
{
	struct ss_http_config cfg = {.workers = workers,
	                             .cert_file = g_srv_cert,
	                             .key_file = g_srv_key,
	                             .client_ca_file = client_ca,
	                             .max_body = MAX_BODY};
	struct ss_http *h = NULL;

	assert_int_equal(ss_http_new(&cfg, &h), 0);
	assert_int_equal(ss_http_route(h, "GET", "/v1/things/{id}/parts/{part}", h_part, NULL), 0);
	assert_int_equal(ss_http_route(h, "GET", "/v1/things/{id}", h_thing, NULL), 0);
	assert_int_equal(ss_http_route(h, "DELETE", "/v1/things/{id}", h_thing, NULL), 0);
	assert_int_equal(ss_http_route(h, "POST", "/v1/echo", h_echo, NULL), 0);
	assert_int_equal(ss_http_route(h, "GET", "/v1/whoami", h_whoami, NULL), 0);
	assert_int_equal(ss_http_route(h, "GET", "/v1/forgetful", h_forgetful, NULL), 0);
	assert_int_equal(ss_http_route(h, "PUT", "/v1/raw", h_raw, NULL), 0);
	return h;
}

static struct ss_http *server_start(int workers, const char *client_ca)
{
	struct ss_http *h = server_new(workers, client_ca);

	assert_int_equal(ss_http_start(h), 0);
	assert_true(ss_http_port(h) > 0);
	return h;
}

/* ---- client ------------------------------------------------------------------ */

struct resp {
	CURLcode rc;
	long status;
	char *body;
	size_t len;
	char headers[4096];
	size_t hlen;
	char tls_version[32];
};

struct opts {
	const char *cert, *key; /* client certificate */
	bool tls11;             /* offer TLS 1.0-1.1 only */
	bool tls12;             /* offer TLS 1.2 only */
	bool no_expect;         /* no "Expect: 100-continue" */
	const char *extra_header;
	const char *ctype;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	assert_non_null(nb);
	memcpy(nb + r->len, p, sz * n);
	r->body = nb;
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

/* Notes the negotiated protocol from curl's verbose text. */
static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	static const char tag[] = "SSL connection using ";
	struct resp *r = arg;

	(void)c;
	if (type == CURLINFO_TEXT && size > sizeof(tag) - 1 &&
	    memcmp(data, tag, sizeof(tag) - 1) == 0) {
		size_t n = 0;

		data += sizeof(tag) - 1;
		size -= sizeof(tag) - 1;
		while (n < size && n < sizeof(r->tls_version) - 1 && data[n] != ' ')
			n++;
		memcpy(r->tls_version, data, n);
		r->tls_version[n] = '\0';
	}
	return 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;

	if (r->hlen + len < sizeof(r->headers)) {
		memcpy(r->headers + r->hlen, p, len);
		r->hlen += len;
		r->headers[r->hlen] = '\0';
	}
	return len;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* One request on an easy handle (reused by the caller when it likes). */
static void do_req_on(CURL *c, uint16_t port, const char *method, const char *path,
                      const void *body, size_t len, const struct opts *o, struct resp *r)
{
	struct curl_slist *hdrs = NULL;
	char url[512];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", (unsigned)port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, g_ca);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	if (o && o->cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
	}
	if (o && o->tls11) {
		curl_easy_setopt(c, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_1));
		/* Let the client offer old versions, so the refusal is the server's. */
		curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, "DEFAULT:@SECLEVEL=0");
	}
	if (o && o->tls12)
		curl_easy_setopt(c, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	hdrs = curl_slist_append(hdrs, o && o->ctype ? o->ctype : "Content-Type: application/json");
	if (o && o->no_expect)
		hdrs = curl_slist_append(hdrs, "Expect:");
	if (o && o->extra_header)
		hdrs = curl_slist_append(hdrs, o->extra_header);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, r);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
}

static void do_req(uint16_t port, const char *method, const char *path, const void *body,
                   size_t len, const struct opts *o, struct resp *r)
{
	CURL *c = curl_easy_init();

	assert_non_null(c);
	do_req_on(c, port, method, path, body, len, o, r);
	curl_easy_cleanup(c);
}

static json_t *resp_json(const struct resp *r)
{
	json_error_t err;
	json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &err);

	if (!j)
		fail_msg("not JSON (%s): %.200s", err.text, r->body ? r->body : "");
	return j;
}

static const char *jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static void expect_error(struct resp *r, long status, const char *code)
{
	json_t *j;

	assert_int_equal(r->rc, CURLE_OK);
	assert_int_equal(r->status, status);
	j = resp_json(r);
	assert_string_equal(jstr(j, "error"), code);
	assert_non_null(jstr(j, "reason"));
	json_decref(j);
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_params_and_query(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct resp r;
	json_t *j;

	(void)state;
	do_req(ss_http_port(h), "GET", "/v1/things/abc-1.2_~x/parts/p9?q=hello%20world&z=1", NULL,
	       0, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: application/json; charset=utf-8"));
	assert_non_null(strstr(r.headers, "Cache-Control: no-store"));
	assert_non_null(strstr(r.headers, "X-Content-Type-Options: nosniff"));
	j = resp_json(&r);
	assert_string_equal(jstr(j, "id"), "abc-1.2_~x");
	assert_string_equal(jstr(j, "part"), "p9");
	assert_string_equal(jstr(j, "q"), "hello world");
	assert_string_equal(jstr(j, "path"), "/v1/things/abc-1.2_~x/parts/p9");
	assert_true(json_is_null(json_object_get(j, "missing")));
	json_decref(j);
	resp_free(&r);

	/* In a query string '+' is a space (form encoding); %2B is a plus. */
	do_req(ss_http_port(h), "GET", "/v1/things/a/parts/b?q=a+b%2Bc", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	assert_string_equal(jstr(j, "q"), "a b+c");
	json_decref(j);
	resp_free(&r);

	/* A parameter is decoded before it is checked. */
	do_req(ss_http_port(h), "GET", "/v1/things/%61bc", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	assert_string_equal(jstr(j, "id"), "abc");
	json_decref(j);
	resp_free(&r);

	/* Bad query strings: a key without "=", a repeated key, an encoded NUL. */
	do_req(ss_http_port(h), "GET", "/v1/things/a/parts/b?flag", NULL, 0, NULL, &r);
	expect_error(&r, 400, "bad_request");
	resp_free(&r);
	do_req(ss_http_port(h), "GET", "/v1/things/a/parts/b?q=1&q=2", NULL, 0, NULL, &r);
	expect_error(&r, 400, "bad_request");
	resp_free(&r);
	do_req(ss_http_port(h), "GET", "/v1/things/a/parts/b?q=a%00b", NULL, 0, NULL, &r);
	expect_error(&r, 400, "bad_request");
	resp_free(&r);
	ss_http_free(h);
}

static void test_not_found_and_method(void **state)
{
	static const char *const not_found[] = {
	        "/",
	        "/v1",
	        "/v1/things",
	        "/v1/things/",
	        "/v1/things/a/",
	        "/v1/things/a/parts",
	        "/v1/things/a%2Fb",
	        "/v1/things/..",
	        "/v1/things/.",
	        "/v1/things/a%24",
	        "/V1/things/a",
	        "/v1/things/%00",
	        "/v1/things/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
	};
	struct ss_http *h = server_start(2, NULL);
	char longid[200];
	struct resp r;

	(void)state;
	for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
		do_req(ss_http_port(h), "GET", not_found[i], NULL, 0, NULL, &r);
		if (r.status != 404 && r.status != 400)
			fail_msg("%s: %ld", not_found[i], r.status);
		resp_free(&r);
	}
	do_req(ss_http_port(h), "GET", "/v1/things/a%2Fb", NULL, 0, NULL, &r);
	expect_error(&r, 404, "not_found");
	resp_free(&r);

	/* Parameter length: 128 bytes fit, 129 do not. */
	memcpy(longid, "/v1/things/", 11);
	memset(longid + 11, 'x', 128);
	longid[11 + 128] = '\0';
	do_req(ss_http_port(h), "GET", longid, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	longid[11 + 128] = 'x';
	longid[11 + 129] = '\0';
	do_req(ss_http_port(h), "GET", longid, NULL, 0, NULL, &r);
	expect_error(&r, 404, "not_found");
	resp_free(&r);

	/* Known path, other method: 405 and the allowed ones. */
	do_req(ss_http_port(h), "POST", "/v1/things/a", "{}", 2, NULL, &r);
	expect_error(&r, 405, "method_not_allowed");
	assert_non_null(strstr(r.headers, "Allow: GET, DELETE"));
	resp_free(&r);
	do_req(ss_http_port(h), "DELETE", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* A method evhttp does not allow at all. */
	do_req(ss_http_port(h), "OPTIONS", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 501);
	resp_free(&r);
	ss_http_free(h);
}

static void test_body_limits(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct opts o = {.ctype = "Content-Type: application/octet-stream"};
	size_t big = 4 * MAX_BODY;
	uint8_t *buf = malloc(big);
	struct resp r;
	char *hdr;

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', big);
	/* Exactly the limit: accepted and echoed. */
	do_req(ss_http_port(h), "PUT", "/v1/raw", buf, MAX_BODY, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.len, MAX_BODY);
	resp_free(&r);
	/* Over it, announced by Content-Length: 413 before the body is read,
	 * with and without "Expect: 100-continue". */
	do_req(ss_http_port(h), "PUT", "/v1/raw", buf, MAX_BODY + 1, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 413);
	resp_free(&r);
	o.no_expect = true;
	do_req(ss_http_port(h), "PUT", "/v1/raw", buf, big, &o, &r);
	if (r.rc == CURLE_OK)
		assert_int_equal(r.status, 413);
	else /* libevent may close before the whole body is sent (documented) */
		assert_true(r.rc == CURLE_SEND_ERROR || r.rc == CURLE_RECV_ERROR);
	resp_free(&r);
	o.extra_header = "Expect: 100-continue";
	o.no_expect = false;
	do_req(ss_http_port(h), "PUT", "/v1/raw", buf, big, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 413);
	resp_free(&r);

	/* Headers are bounded too (evhttp answers 400 and closes). */
	hdr = malloc(20000);
	assert_non_null(hdr);
	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'h', 20000 - 8);
	hdr[20000 - 1] = '\0';
	o.extra_header = hdr;
	do_req(ss_http_port(h), "GET", "/v1/things/a", NULL, 0, &o, &r);
	assert_true(r.rc != CURLE_OK || r.status == 400);
	resp_free(&r);
	free(hdr);
	free(buf);
	ss_http_free(h);
}

static void test_json_input(void **state)
{
	static const char *const bad[] = {
	        "",                    /* empty */
	        "{\"a\":",             /* truncated */
	        "[1,2,3]",             /* not an object */
	        "\"text\"",            /* not an object */
	        "{\"a\":1,\"a\":2}",   /* duplicate key */
	        "{\"a\":1} x",         /* trailing garbage */
	        "{\"a\":1}{}",         /* two documents */
	        "{\"a\":\"\\u0000\"}", /* NUL in a string */
	        "{\"a\":\"\xff\"}",    /* not UTF-8 */
	        "{'a':1}",             /* not JSON */
	};
	struct ss_http *h = server_start(2, NULL);
	struct resp r;
	json_t *j;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		do_req(ss_http_port(h), "POST", "/v1/echo", bad[i], strlen(bad[i]), NULL, &r);
		expect_error(&r, 400, "bad_request");
		resp_free(&r);
	}
	do_req(ss_http_port(h), "POST", "/v1/echo", "{\"a\": [1, {\"b\": null}]}", 23, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"a\":[1,{\"b\":null}]}"); /* compact */
	j = resp_json(&r);
	json_decref(j);
	resp_free(&r);
	ss_http_free(h);
}

static void test_tls_versions(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct opts o = {.tls11 = true};
	struct resp r;

	(void)state;
	do_req(ss_http_port(h), "GET", "/v1/things/a", NULL, 0, &o, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 0);
	resp_free(&r);
	do_req(ss_http_port(h), "GET", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_string_equal(r.tls_version, "TLSv1.3");
	resp_free(&r);
	/* TLS 1.2 still works, with an ECDHE AEAD suite. */
	o = (struct opts){.tls12 = true};
	do_req(ss_http_port(h), "GET", "/v1/things/a", NULL, 0, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.tls_version, "TLSv1.2");
	resp_free(&r);
	ss_http_free(h);
}

static void test_client_certs(void **state)
{
	struct ss_http *h = server_start(2, g_ca);
	struct opts mine = {.cert = g_cli_cert, .key = g_cli_key};
	struct opts evil = {.cert = g_evil_cert, .key = g_evil_key};
	struct resp r;
	json_t *j;

	(void)state;
	do_req(ss_http_port(h), "GET", "/v1/whoami", NULL, 0, &mine, &r);
	assert_int_equal(r.rc, CURLE_OK);
	j = resp_json(&r);
	assert_string_equal(jstr(j, "cn"), "device-0001");
	json_decref(j);
	resp_free(&r);

	do_req(ss_http_port(h), "GET", "/v1/whoami", NULL, 0, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	j = resp_json(&r);
	assert_true(json_is_null(json_object_get(j, "cn")));
	json_decref(j);
	resp_free(&r);

	/* Same CN, another CA: the handshake fails, no handler runs. */
	do_req(ss_http_port(h), "GET", "/v1/whoami", NULL, 0, &evil, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	assert_int_not_equal(r.status, 200);
	resp_free(&r);
	ss_http_free(h);

	/* Without client_ca_file a presented certificate is not asked for. */
	h = server_start(1, NULL);
	do_req(ss_http_port(h), "GET", "/v1/whoami", NULL, 0, &mine, &r);
	assert_int_equal(r.rc, CURLE_OK);
	j = resp_json(&r);
	assert_true(json_is_null(json_object_get(j, "cn")));
	json_decref(j);
	resp_free(&r);
	ss_http_free(h);
}

static void test_forgotten_reply(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct resp r;

	(void)state;
	do_req(ss_http_port(h), "GET", "/v1/forgetful", NULL, 0, NULL, &r);
	expect_error(&r, 500, "internal");
	resp_free(&r);
	/* The server is still fine. */
	do_req(ss_http_port(h), "GET", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	ss_http_free(h);
}

static void test_metrics(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct resp r;
	char *text = NULL;

	(void)state;
	for (int i = 0; i < 3; i++) {
		do_req(ss_http_port(h), "GET", "/v1/things/x/parts/y", NULL, 0, NULL, &r);
		resp_free(&r);
	}
	do_req(ss_http_port(h), "GET", "/nope/at/all", NULL, 0, NULL, &r);
	resp_free(&r);
	do_req(ss_http_port(h), "POST", "/v1/echo", "[]", 2, NULL, &r);
	resp_free(&r);
	do_req(ss_http_port(h), "PUT", "/v1/raw", "x", 1, NULL, &r);
	resp_free(&r);
	ss_metric_inc(h, "bad name", "");                   /* dropped */
	ss_metric_inc(h, "sphere_ok_total", "k=v");         /* dropped: value not quoted */
	ss_metric_inc(h, "sphere_http_requests_total", ""); /* dropped: reserved */

	do_req(ss_http_port(h), "GET", "/metrics", NULL, 0, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
	text = r.body;
	assert_non_null(strstr(text, "# TYPE sphere_http_requests_total counter\n"));
	assert_non_null(strstr(text, "sphere_http_requests_total{route=\"/v1/things/{id}/parts/"
	                             "{part}\",method=\"GET\",status=\"200\"} 3\n"));
	assert_non_null(strstr(text, "sphere_http_requests_total{route=\"unmatched\",method="
	                             "\"GET\",status=\"404\"} 1\n"));
	assert_non_null(strstr(text, "sphere_http_requests_total{route=\"/v1/"
	                             "echo\",method=\"POST\",status=\"400\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE sphere_http_request_seconds histogram\n"));
	assert_non_null(strstr(text, "sphere_http_request_seconds_bucket{route=\"/v1/things/{id}/"
	                             "parts/{part}\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "sphere_http_request_seconds_count{route=\"/v1/things/{id}/"
	                             "parts/{part}\"} 3\n"));
	assert_non_null(strstr(text, "le=\"0.001\""));
	assert_non_null(strstr(text, "le=\"10\""));
	assert_non_null(strstr(text, "sphere_metrics_dropped_total 3\n"));
	assert_non_null(strstr(text, "# TYPE sphere_test_echo_total counter\n"
	                             "sphere_test_echo_total{result=\"bad\"} 1\n"));
	assert_non_null(strstr(text, "sphere_test_plain_total 1\n"));
	assert_non_null(strstr(text, "sphere_test_odd_total{path=\"a\\\\b\"} 1\n")); /* escaped */
	/* No raw paths as labels. */
	assert_null(strstr(text, "/v1/things/x"));
	assert_null(strstr(text, "/nope"));
	resp_free(&r);

	assert_int_equal(ss_metrics_text(h, &text), 0);
	assert_non_null(strstr(text, "route=\"/metrics\",method=\"GET\",status=\"200\"} 1\n"));
	free(text);
	ss_http_free(h);
}

static void test_metric_series_cap(void **state)
{
	struct ss_http *h = server_new(1, NULL);
	char label[64], *text = NULL;

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(label, sizeof(label), "n=\"%d\"", i);
		ss_metric_inc(h, "sphere_many_total", label);
	}
	ss_metric_inc(h, "sphere_many_total", "n=\"0\""); /* existing series still counts */
	assert_int_equal(ss_metrics_text(h, &text), 0);
	assert_non_null(strstr(text, "sphere_metrics_dropped_total 44\n"));
	assert_non_null(strstr(text, "sphere_many_total{n=\"0\"} 2\n"));
	assert_non_null(strstr(text, "sphere_many_total{n=\"255\"} 1\n"));
	assert_null(strstr(text, "sphere_many_total{n=\"256\"}"));
	free(text);
	ss_http_free(h);
}

struct worker_arg {
	uint16_t port;
	int ok;
};

static void *client_thread(void *p)
{
	struct worker_arg *a = p;
	CURL *c = curl_easy_init();
	char path[64];
	struct resp r;

	for (int i = 0; c && i < 50; i++) {
		/* A fresh connection (handshake) every tenth request. */
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, (long)(i % 10 == 0));
		snprintf(path, sizeof(path), "/v1/things/t%d/parts/p%d", i, i % 7);
		do_req_on(c, a->port, "GET", path, NULL, 0, NULL, &r);
		if (r.rc == CURLE_OK && r.status == 200 && r.body && strstr(r.body, path))
			a->ok++;
		resp_free(&r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void test_concurrency(void **state)
{
	struct ss_http *h = server_start(2, NULL);
	struct worker_arg args[8];
	pthread_t t[8];
	char *text = NULL;

	(void)state;
	for (int i = 0; i < 8; i++) {
		args[i] = (struct worker_arg){.port = ss_http_port(h)};
		assert_int_equal(pthread_create(&t[i], NULL, client_thread, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].ok, 50);
	}
	assert_int_equal(ss_metrics_text(h, &text), 0);
	assert_non_null(strstr(text, "parts/{part}\",method=\"GET\",status=\"200\"} 400\n"));
	free(text);
	ss_http_free(h);
}

static void test_start_stop(void **state)
{
	int before = count_threads();
	struct ss_http *h = server_new(3, NULL);
	struct resp r;
	uint16_t port;

	(void)state;
	assert_int_equal(ss_http_start(h), 0);
	assert_int_equal(ss_http_start(h), SPH_ERR_STATE);
	assert_int_equal(count_threads(), before + 3);
	assert_int_equal(ss_http_route(h, "GET", "/late", h_thing, NULL), SPH_ERR_STATE);
	port = ss_http_port(h);
	do_req(port, "GET", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	ss_http_stop(h);
	ss_http_stop(h); /* idempotent */
	assert_int_equal(count_threads(), before);
	do_req(port, "GET", "/v1/things/a", NULL, 0, NULL, &r);
	assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
	resp_free(&r);
	/* Starts again (a new ephemeral port), with an idle keep-alive client. */
	assert_int_equal(ss_http_start(h), 0);
	CURL *c = curl_easy_init();
	do_req_on(c, ss_http_port(h), "GET", "/v1/things/b", NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	ss_http_free(h); /* stops with the connection still open */
	curl_easy_cleanup(c);
	assert_int_equal(count_threads(), before);

	/* Stopping right after starting. */
	h = server_start(0, NULL);
	ss_http_free(h);
	assert_int_equal(count_threads(), before);
	ss_http_free(NULL);
}

static void test_config_and_routes(void **state)
{
	struct ss_http_config cfg = {.cert_file = g_srv_cert, .key_file = g_srv_key};
	struct ss_http *h = NULL;
	static const char *const bad_patterns[] = {
	        "",         "v1",
	        "/v1//x",   "/v1/{}",
	        "/v1/{Id}", "/v1/{a}/{a}",
	        "/v1/a b",  "/v1/{a",
	        "/v1/../x", "/v1/{a}/{b}/{c}/{d}/{e}",
	        "/v1/x/",   "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17",
	};
	char pat[32];

	(void)state;
	assert_int_equal(ss_http_new(NULL, &h), SPH_ERR_INVALID_ARG);
	cfg.workers = SS_HTTP_WORKERS_MAX + 1;
	assert_int_equal(ss_http_new(&cfg, &h), SPH_ERR_INVALID_ARG);
	assert_null(h);
	cfg.workers = 1;
	cfg.key_file = g_cli_key; /* not the certificate's key */
	assert_int_equal(ss_http_new(&cfg, &h), SPH_ERR_CRYPTO);
	cfg.key_file = g_srv_key;
	cfg.cert_file = "/nonexistent.pem";
	assert_int_equal(ss_http_new(&cfg, &h), SPH_ERR_CRYPTO);
	cfg.cert_file = g_srv_cert;
	cfg.client_ca_file = "/nonexistent-ca.pem";
	assert_int_equal(ss_http_new(&cfg, &h), SPH_ERR_CRYPTO);
	cfg.client_ca_file = NULL;
	cfg.addr = "192.0.2.1"; /* not ours: bind fails */
	assert_int_equal(ss_http_new(&cfg, &h), 0);
	assert_int_equal(ss_http_start(h), SPH_ERR_IO);
	ss_http_free(h);
	cfg.addr = NULL;

	assert_int_equal(ss_http_new(&cfg, &h), 0);
	assert_int_equal(ss_http_route(h, "HEAD", "/x", h_thing, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_http_route(h, "GET", "/x", NULL, NULL), SPH_ERR_INVALID_ARG);
	for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++)
		if (ss_http_route(h, "GET", bad_patterns[i], h_thing, NULL) != SPH_ERR_INVALID_ARG)
			fail_msg("pattern accepted: %s", bad_patterns[i]);
	assert_int_equal(ss_http_route(h, "GET", "/", h_thing, NULL), 0);
	for (int i = 1; i < SS_HTTP_MAX_ROUTES; i++) {
		snprintf(pat, sizeof(pat), "/r%d/{id}", i);
		assert_int_equal(ss_http_route(h, "POST", pat, h_thing, NULL), 0);
	}
	assert_int_equal(ss_http_route(h, "GET", "/one/more", h_thing, NULL), SPH_ERR_EXHAUSTED);
	ss_http_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_params_and_query),
	        cmocka_unit_test(test_not_found_and_method),
	        cmocka_unit_test(test_body_limits),
	        cmocka_unit_test(test_json_input),
	        cmocka_unit_test(test_tls_versions),
	        cmocka_unit_test(test_client_certs),
	        cmocka_unit_test(test_forgotten_reply),
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_metric_series_cap),
	        cmocka_unit_test(test_concurrency),
	        cmocka_unit_test(test_start_stop),
	        cmocka_unit_test(test_config_and_routes),
	};

	if (getenv("SPHERE_TEST_FILTER")) /* e.g. SPHERE_TEST_FILTER=test_metrics */
		cmocka_set_test_filter(getenv("SPHERE_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
