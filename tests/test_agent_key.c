/*
 * The device's TLS key in the RoT (agent_rot_key, agent_device_cert): the
 * self-signed device certificate verifies with the RoT identity key; a real
 * TLS 1.2 and 1.3 connection (libcurl, CURLOPT_SSL_CTX_FUNCTION) to an
 * ss_http server in device_keys mode proves that key; the same with the RoT in
 * its own process (mailbox), so the private key was never in this one; and
 * what is refused: digests other than SHA-256, exporting the private key, a
 * RoT whose process is gone.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/proverr.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "common/common.h"
#include "rot/rot.h"
#include "service/service.h"
#include "service/ss_http.h"
#include "testutil.h"

struct transport {
	const char *name;
	int (*open)(const char *otp_path, struct rot **out);
	bool mailbox;
};

static const struct transport t_inproc = {"inproc", rot_open_inproc, false};
static const struct transport t_mailbox = {"mailbox", rot_open_mailbox, true};

static const uint8_t secret_a[ROT_SECRET_LEN] = {0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                                 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                                 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                                 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

struct fx {
	const struct transport *t;
	char *dir, *otp;
	struct rot *r;
	EVP_PKEY *key;
	X509 *cert;
};

/* The server, shared by all tests. */
static char *srv_dir;
static struct ss_http *srv;
static char srv_ca[700];

static int fx_setup(void **state)
{
	const struct transport *t = *state;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->t = t;
	f->dir = tu_mkdtemp();
	f->otp = tu_path(f->dir, "otp");
	assert_int_equal(rot_otp_fuse(f->otp, secret_a, ROT_LC_DEVELOPMENT), 0);
	assert_int_equal(t->open(f->otp, &f->r), 0);
	if (t->mailbox) {
		assert_true(rot_pid(f->r) > 0);
		assert_true(rot_pid(f->r) != (int)getpid());
	} else {
		assert_int_equal(rot_pid(f->r), 0);
	}
	assert_int_equal(agent_rot_key(f->r, &f->key), 0);
	assert_int_equal(agent_device_cert(f->r, f->key, 1, &f->cert), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	X509_free(f->cert);
	EVP_PKEY_free(f->key);
	rot_close(f->r);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->otp);
	free(f);
	return 0;
}

/* The RoT's identity key as an ordinary (public, default-provider) key. */
static EVP_PKEY *rot_public(struct rot *r, uint8_t pub[ROT_PUB_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", "provider=default");
	EVP_PKEY *pk = NULL;
	OSSL_PARAM p[3];

	assert_int_equal(rot_pubkey(r, ROT_KEY_IDENTITY, pub), 0);
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1",
	                                        0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, ROT_PUB_LEN);
	p[2] = OSSL_PARAM_construct_end();
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, p), 1);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

/* Whether the error queue holds (lib, reason); empties the queue. */
static bool err_has(int lib, int reason)
{
	unsigned long e;
	bool found = false;

	while ((e = ERR_get_error()) != 0)
		found = found || (ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) == reason);
	return found;
}

/* ---- (1) the certificate ------------------------------------------------- */

static void test_cert(void **state)
{
	struct fx *f = *state;
	uint8_t pub[ROT_PUB_LEN], kpub[ROT_PUB_LEN];
	char id[ROT_DEVICE_ID_LEN + 1], cn[ROT_DEVICE_ID_LEN + 8];
	EVP_PKEY *rp = rot_public(f->r, pub), *other = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	size_t n = 0;
	int crit = 0;
	EXTENDED_KEY_USAGE *eku;

	/* The key: P-256, public half = the RoT's, matching the certificate. */
	assert_true(EVP_PKEY_is_a(f->key, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(f->key), 256);
	assert_int_equal(EVP_PKEY_get_security_bits(f->key), 128);
	assert_int_equal(EVP_PKEY_get_size(f->key), 72);
	assert_int_equal(EVP_PKEY_get_octet_string_param(f->key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
	                                                 kpub, sizeof(kpub), &n),
	                 1);
	assert_int_equal(n, sizeof(kpub));
	assert_memory_equal(kpub, pub, sizeof(pub));
	assert_int_equal(EVP_PKEY_eq(f->key, rp), 1);
	assert_int_equal(X509_check_private_key(f->cert, f->key), 1);

	/* The provider does not shadow OpenSSL's own EC implementation. */
	{
		EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(NULL, "EC", NULL);

		assert_non_null(km);
		assert_string_equal(OSSL_PROVIDER_get0_name(EVP_KEYMGMT_get0_provider(km)),
		                    "default");
		EVP_KEYMGMT_free(km);
	}

	/* The certificate: signed through the RoT, verifies with its public key. */
	assert_int_equal(X509_verify(f->cert, rp), 1);
	assert_int_equal(X509_verify(f->cert, other), 0);
	assert_int_equal(X509_get_version(f->cert), 2);
	assert_int_equal(X509_get_signature_nid(f->cert), NID_ecdsa_with_SHA256);
	assert_int_equal(rot_device_id(f->r, id), 0);
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(f->cert), NID_commonName,
	                                           cn, sizeof(cn)),
	                 ROT_DEVICE_ID_LEN);
	assert_string_equal(cn, id);
	assert_int_equal(
	        X509_NAME_cmp(X509_get_subject_name(f->cert), X509_get_issuer_name(f->cert)), 0);
	eku = X509_get_ext_d2i(f->cert, NID_ext_key_usage, &crit, NULL);
	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	assert_true(X509_check_purpose(f->cert, X509_PURPOSE_SSL_CLIENT, 0) == 1);

	/* A CSR signed the same way. */
	assert_non_null(req);
	assert_int_equal(X509_REQ_set_pubkey(req, rp), 1);
	assert_true(X509_REQ_sign(req, f->key, EVP_sha256()) > 0);
	assert_int_equal(X509_REQ_verify(req, rp), 1);

	/* Another key's certificate does not match, and is not certified. */
	assert_int_equal(X509_check_private_key(f->cert, other), 0);
	assert_int_equal(EVP_PKEY_eq(f->key, other), 0);
	ERR_clear_error();
	X509_REQ_free(req);
	EVP_PKEY_free(other);
	EVP_PKEY_free(rp);
}

/* ---- (2), (3) TLS ----------------------------------------------------------- */

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

static size_t sink(char *d, size_t sz, size_t n, void *arg)
{
	strncat(arg, d, sz * n < 600 ? sz * n : 600);
	return sz * n;
}

/* The TLS version of the last completed client handshake. */
static int tls_done;

static void on_info(const SSL *ssl, int where, int ret)
{
	(void)ret;
	if (where & SSL_CB_HANDSHAKE_DONE)
		tls_done = SSL_version(ssl);
}

/* CURLOPT_SSL_CTX_FUNCTION: the device certificate and the RoT key. */
static CURLcode install_key(CURL *c, void *sslctx, void *arg)
{
	struct fx *f = arg;
	SSL_CTX *ctx = sslctx;

	(void)c;
	if (SSL_CTX_use_certificate(ctx, f->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, f->key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		return CURLE_SSL_CERTPROBLEM;
	SSL_CTX_set_info_callback(ctx, on_info);
	return CURLE_OK;
}

/* GET /whoami over TLS version (CURL_SSLVERSION_TLSv1_x); *tls is what was
 * negotiated. Returns the HTTP status, or 0 if the transfer failed. */
static long call(struct fx *f, long version, int *tls, char *body)
{
	CURL *c = curl_easy_init();
	char url[64];
	long status = 0;

	assert_non_null(c);
	body[0] = '\0';
	*tls = 0;
	snprintf(url, sizeof(url), "https://localhost:%u/whoami", (unsigned)ss_http_port(srv));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, srv_ca);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, version | (version << 16));
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, install_key);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, f);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	tls_done = 0;
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		*tls = tls_done;
	}
	curl_easy_cleanup(c);
	return status;
}

static void test_tls(void **state)
{
	struct fx *f = *state;
	uint8_t pub[ROT_PUB_LEN];
	char hex[129], body[700];
	EVP_PKEY *rp = rot_public(f->r, pub);
	int tls = 0;

	sph_hex_encode(pub + 1, 64, hex, sizeof(hex));
	assert_int_equal(call(f, CURL_SSLVERSION_TLSv1_2, &tls, body), 200);
	assert_int_equal(tls, TLS1_2_VERSION);
	assert_non_null(strstr(body, hex));
	assert_int_equal(call(f, CURL_SSLVERSION_TLSv1_3, &tls, body), 200);
	assert_int_equal(tls, TLS1_3_VERSION);
	assert_non_null(strstr(body, hex));
	EVP_PKEY_free(rp);
}

/* ---- (4) refusals ----------------------------------------------------------- */

static void test_refusals(void **state)
{
	struct fx *f = *state;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, f->key, NULL);
	uint8_t dig[32] = {1}, sig[80];
	size_t siglen = sizeof(sig);
	BIO *b = BIO_new(BIO_s_mem());
	BIGNUM *priv = NULL;
	EVP_PKEY *k2 = NULL;
	X509 *x2 = NULL;

	assert_non_null(md);
	assert_non_null(pc);
	assert_non_null(b);
	/* SHA-1 (and any other digest but SHA-256) is refused, with a reason. */
	ERR_clear_error();
	assert_true(EVP_DigestSignInit(md, NULL, EVP_sha1(), NULL, f->key) <= 0);
	assert_true(err_has(ERR_LIB_PROV, PROV_R_DIGEST_NOT_ALLOWED));
	assert_true(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, f->key) <= 0);
	assert_true(err_has(ERR_LIB_PROV, PROV_R_DIGEST_NOT_ALLOWED));
	assert_int_equal(EVP_PKEY_sign_init(pc), 1);
	assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_sha1()) <= 0);
	assert_true(err_has(ERR_LIB_PROV, PROV_R_DIGEST_NOT_ALLOWED));
	/* A bare digest: 32 bytes only, and it verifies. */
	assert_true(EVP_PKEY_sign(pc, sig, &siglen, dig, 20) <= 0);
	ERR_clear_error();
	siglen = sizeof(sig);
	assert_int_equal(EVP_PKEY_sign(pc, sig, &siglen, dig, sizeof(dig)), 1);
	{
		uint8_t pub[ROT_PUB_LEN];
		EVP_PKEY *rp = rot_public(f->r, pub);
		EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(rp, NULL);

		assert_int_equal(EVP_PKEY_verify_init(vc), 1);
		assert_int_equal(EVP_PKEY_verify(vc, sig, siglen, dig, sizeof(dig)), 1);
		EVP_PKEY_CTX_free(vc);
		EVP_PKEY_free(rp);
	}
	/* There is no private key here to read or write. */
	assert_int_equal(EVP_PKEY_get_bn_param(f->key, OSSL_PKEY_PARAM_PRIV_KEY, &priv), 0);
	assert_null(priv);
	assert_int_equal(PEM_write_bio_PrivateKey(b, f->key, NULL, NULL, 0, NULL, NULL), 0);
	ERR_clear_error();
	/* Bad arguments. */
	assert_int_equal(agent_rot_key(NULL, &k2), SPH_ERR_INVALID_ARG);
	assert_null(k2);
	assert_int_equal(agent_rot_key(f->r, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(agent_device_cert(f->r, f->key, 0, &x2), SPH_ERR_INVALID_ARG);
	assert_int_equal(agent_device_cert(f->r, f->key, AGENT_CERT_MAX_DAYS + 1, &x2),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(agent_device_cert(NULL, f->key, 1, &x2), SPH_ERR_INVALID_ARG);
	{
		EVP_PKEY *other = EVP_EC_gen("P-256");

		assert_int_equal(agent_device_cert(f->r, other, 1, &x2), SPH_ERR_INVALID_ARG);
		EVP_PKEY_free(other);
	}
	assert_null(x2);

	if (f->t->mailbox) {
		char body[700];
		int tls;

		/* The RoT process is gone: every signature fails, nothing crashes. */
		assert_int_equal(kill(rot_pid(f->r), SIGKILL), 0);
		ERR_clear_error();
		assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, f->key), 1);
		siglen = sizeof(sig);
		assert_true(EVP_DigestSign(md, sig, &siglen, dig, sizeof(dig)) <= 0);
		assert_true(err_has(ERR_LIB_PROV, PROV_R_FAILED_TO_SIGN));
		assert_int_equal(agent_device_cert(f->r, f->key, 1, &x2), SPH_ERR_TRANSPORT);
		assert_null(x2);
		assert_int_equal(call(f, CURL_SSLVERSION_TLSv1_3, &tls, body), 0);
		assert_int_equal(call(f, CURL_SSLVERSION_TLSv1_2, &tls, body), 0);
		assert_int_equal(agent_rot_key(f->r, &k2), SPH_ERR_TRANSPORT);
		assert_null(k2);
		ERR_clear_error();
	}
	BIO_free(b);
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(md);
}

/* ---- the server ---------------------------------------------------------- */

static int srv_setup(void **state)
{
	struct ss_config c;
	struct ss_init_result res;
	struct ss_http_config hc;
	char data[600], cert[700], key[700];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv_dir = tu_mkdtemp();
	snprintf(data, sizeof(data), "%s/ss", srv_dir);
	ss_config_defaults(&c);
	assert_int_equal(ss_config_set(&c, "data-dir", data, NULL, 0), 0);
	assert_int_equal(ss_init(&c, NULL, NULL, &res), 0); /* for its TLS files */
	snprintf(cert, sizeof(cert), "%s/tls/server.pem", data);
	snprintf(key, sizeof(key), "%s/tls/server.key", data);
	snprintf(srv_ca, sizeof(srv_ca), "%s", cert);
	memset(&hc, 0, sizeof(hc));
	hc.workers = 1;
	hc.cert_file = cert;
	hc.key_file = key;
	hc.device_keys = true;
	assert_int_equal(ss_http_new(&hc, &srv), 0);
	assert_int_equal(ss_http_route(srv, "GET", "/whoami", whoami, NULL), 0);
	assert_int_equal(ss_http_start(srv), 0);
	return 0;
}

static int srv_teardown(void **state)
{
	(void)state;
	ss_http_free(srv);
	tu_rmtree(srv_dir);
	free(srv_dir);
	curl_global_cleanup();
	return 0;
}

#define BOTH(fn)                                                                                   \
	cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, (void *)&t_inproc),    \
	        cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown,                \
	                                                 (void *)&t_mailbox)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        BOTH(test_cert),
	        BOTH(test_tls),
	        BOTH(test_refusals),
	};
	return cmocka_run_group_tests(tests, srv_setup, srv_teardown);
}
