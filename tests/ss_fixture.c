/* The API tests' service fixture (ss_fixture.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ss_fixture.h"
#include "testutil.h"

struct ssfx fx;

int ssfx_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fx.tmp = tu_mkdtemp();
	snprintf(fx.data, sizeof(fx.data), "%s/ss", fx.tmp);
	ss_config_defaults(&fx.cfg);
	assert_int_equal(ss_config_set(&fx.cfg, "data-dir", fx.data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "workers", "2", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "max-body", "4096", NULL, 0), 0);
	assert_int_equal(ss_init(&fx.cfg, "acme", "alice", &fx.init), 0);
	snprintf(fx.ca, sizeof(fx.ca), "%s/tls/server.pem", fx.data);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	assert_true(fx.port != 0);
	return 0;
}

int ssfx_teardown(void **state)
{
	(void)state;
	ss_service_free(fx.svc);
	tu_rmtree(fx.tmp);
	free(fx.tmp);
	curl_global_cleanup();
	memset(&fx, 0, sizeof(fx));
	return 0;
}

static size_t ssfx_on_data(char *d, size_t sz, size_t n, void *arg)
{
	struct ssfx_reply *r = arg;
	char *q = realloc(r->body, r->len + sz * n + 1);

	assert_non_null(q);
	memcpy(q + r->len, d, sz * n);
	r->len += sz * n;
	q[r->len] = '\0';
	r->body = q;
	return sz * n;
}

void ssfx_call(uint16_t port, const char *method, const char *path, const char *token,
               const void *body, size_t body_len, const char *content_type, struct ssfx_reply *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], auth[128], ct[160];
	char *got_ct = NULL;

	memset(out, 0, sizeof(*out));
	assert_non_null(c);
	snprintf(url, sizeof(url), "https://localhost:%u%s", (unsigned)(port ? port : fx.port),
	         path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, fx.ca);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ssfx_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		snprintf(ct, sizeof(ct), "Content-Type: %s",
		         content_type ? content_type : "application/json");
		h = curl_slist_append(h, ct);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
		if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &got_ct) == CURLE_OK && got_ct)
			snprintf(out->ctype, sizeof(out->ctype), "%s", got_ct);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

void ssfx_reply_free(struct ssfx_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

long ssfx_req_raw(uint16_t port, const char *method, const char *path, const char *token,
                  const char *body, size_t body_len, json_t **out)
{
	struct ssfx_reply r;
	long st;

	ssfx_call(port, method, path, token, body, body_len, NULL, &r);
	if (out)
		*out = r.body && r.len ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	st = r.status;
	ssfx_reply_free(&r);
	return st;
}

long ssfx_req(const char *method, const char *path, const char *token, const char *body,
              json_t **out)
{
	return ssfx_req_raw(0, method, path, token, body, body ? strlen(body) : 0, out);
}

void ssfx_expect(long status, const char *want_err, const char *method, const char *path,
                 const char *token, const char *body)
{
	json_t *j = NULL;
	long got = ssfx_req(method, path, token, body, &j);

	if (got != status)
		fail_msg("%s %s: status %ld, want %ld (%s)", method, path, got, status,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	if (want_err)
		assert_string_equal(json_string_value(json_object_get(j, "error")), want_err);
	json_decref(j);
}

const char *ssfx_jstr(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	assert_non_null(v);
	return v;
}

void ssfx_device_id(char out[129], unsigned seed)
{
	for (int i = 0; i < 128; i++)
		out[i] = "0123456789abcdef"[(seed * 7u + (unsigned)i * 13u) % 16u];
	out[128] = '\0';
}
