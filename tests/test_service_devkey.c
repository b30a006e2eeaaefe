/*
 * Device keys over TLS (ss_http device_keys): a device authenticates with a
 * certificate self-signed by its own P-256 key (its RoT identity key); the
 * handler learns that key, whose possession the handshake proved. No
 * certificate, or a key of another kind, gives no key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "service/service.h"
#include "service/ss_http.h"
#include "testutil.h"

static char *dir;
static struct ss_http *h;
static char ca[700];

static void whoami(struct ss_req *r, void *arg)
{
	uint8_t pub[64];
	char hex[129];

	(void)arg;
	if (ss_req_peer_key(r, pub) != 0) {
		ss_reply_error(r, 404, "not_found", "no device key");
		return;
	}
	sph_hex_encode(pub, sizeof(pub), hex, sizeof(hex));
	ss_reply_json(r, 200, json_pack("{s:s}", "key", hex));
}

/* A self-signed certificate for key, in dir/<name>.pem and .key. */
static void write_cert(EVP_PKEY *key, const char *name)
{
	X509 *x = X509_new();
	char path[800];
	FILE *f;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"device", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
}

static size_t sink(char *d, size_t sz, size_t n, void *arg)
{
	strncat(arg, d, sz * n < 600 ? sz * n : 600);
	return sz * n;
}

/* GET /whoami with the named client certificate (NULL: none). */
static long call(const char *name, char *body)
{
	CURL *c = curl_easy_init();
	char url[64], cert[800], key[800];
	long status = 0;

	body[0] = '\0';
	snprintf(url, sizeof(url), "https://localhost:%u/whoami", (unsigned)ss_http_port(h));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	if (name) {
		snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
		snprintf(key, sizeof(key), "%s/%s.key", dir, name);
		curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, key);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static void test_device_key(void **state)
{
	EVP_PKEY *dev = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(2048);
	uint8_t pt[65];
	char hex[129], body[700];
	size_t n = 0;

	(void)state;
	assert_non_null(dev);
	assert_non_null(rsa);
	write_cert(dev, "dev");
	write_cert(rsa, "rsa");
	assert_int_equal(
	        EVP_PKEY_get_octet_string_param(dev, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n),
	        1);
	sph_hex_encode(pt + 1, 64, hex, sizeof(hex));
	assert_int_equal(call("dev", body), 200);
	assert_non_null(strstr(body, hex));
	assert_int_equal(call(NULL, body), 404);
	assert_int_equal(call("rsa", body), 404);
	EVP_PKEY_free(dev);
	EVP_PKEY_free(rsa);
}

static int setup(void **state)
{
	struct ss_config c;
	struct ss_init_result res;
	struct ss_http_config hc;
	char data[600], cert[700], key[700];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dir = tu_mkdtemp();
	snprintf(data, sizeof(data), "%s/ss", dir);
	ss_config_defaults(&c);
	assert_int_equal(ss_config_set(&c, "data-dir", data, NULL, 0), 0);
	assert_int_equal(ss_init(&c, NULL, NULL, &res), 0); /* for its TLS files */
	snprintf(cert, sizeof(cert), "%s/tls/server.pem", data);
	snprintf(key, sizeof(key), "%s/tls/server.key", data);
	snprintf(ca, sizeof(ca), "%s", cert);
	memset(&hc, 0, sizeof(hc));
	hc.workers = 1;
	hc.cert_file = cert;
	hc.key_file = key;
	hc.device_keys = true;
	assert_int_equal(ss_http_new(&hc, &h), 0);
	assert_int_equal(ss_http_route(h, "GET", "/whoami", whoami, NULL), 0);
	assert_int_equal(ss_http_start(h), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ss_http_free(h);
	tu_rmtree(dir);
	free(dir);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_device_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
