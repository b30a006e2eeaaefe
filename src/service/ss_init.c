/*
 * ss_init: `sphere-ss init` (docs/api.md §1): the data directory, the TLS key
 * and self-signed certificate, the configuration file, the database, the
 * first tenant with its Administrator, and the platform operator.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "ss_internal.h"

#define SS_TLS_DAYS 825

/* Opens path for writing, created with mode (never over an existing file). */
static FILE *ss_create(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	if (!f)
		close(fd);
	return f;
}

static int ss_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return SPH_ERR_CRYPTO;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : SPH_ERR_CRYPTO;
}

/* A P-256 key and a self-signed server certificate for localhost. */
static int ss_tls_make(const char *key_path, const char *cert_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	BIGNUM *bn = BN_new();
	X509_NAME *name;
	FILE *f = NULL;
	int rc = SPH_ERR_CRYPTO;

	if (!key || !x || !serial || !bn)
		goto out;
	if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    !BN_to_ASN1_INTEGER(bn, serial) || X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)SS_TLS_DAYS * 86400) ||
	    X509_set_pubkey(x, key) != 1)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
	                               -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                               (const unsigned char *)"Sphere security service", -1, -1,
	                               0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto out;
	if (ss_add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") ||
	    ss_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    ss_add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    ss_add_ext(x, NID_ext_key_usage, "serverAuth") || X509_sign(x, key, EVP_sha256()) <= 0)
		goto out;
	rc = SPH_ERR_IO;
	f = ss_create(key_path, 0600);
	if (!f || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = ss_create(cert_path, 0644);
	if (!f || PEM_write_X509(f, x) != 1 || fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

static int ss_write_config(const struct ss_config *c, const char *path)
{
	FILE *f = ss_create(path, 0600);
	int ok;

	if (!f)
		return SPH_ERR_IO;
	ok = fprintf(f,
	             "# sphere-ss configuration (docs/api.md section 1.1); flags override it.\n"
	             "data-dir = %s\nlisten = %s\nport = %u\nworkers = %d\ndb = %s\n"
	             "cert = %s\nkey = %s\nmax-body = %zu\nlog-level = %s\n",
	             c->data_dir, c->listen, (unsigned)c->port, c->workers, c->db, c->cert, c->key,
	             c->max_body, c->log_level) > 0;
	return fclose(f) == 0 && ok ? 0 : SPH_ERR_IO;
}

/* A user with one token. */
static int ss_user_with_token(struct ss_store *st, const char *name, bool op, struct ss_user *u,
                              char token[SS_TOKEN_LEN + 1])
{
	struct ss_token tok;
	uint8_t hash[32];
	int rc = ss_store_user_create(st, name, op, u);

	if (rc == 0)
		rc = ss_token_new(token, hash);
	if (rc == 0)
		rc = ss_store_token_add(st, u->id, hash, &tok);
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

int ss_init(const struct ss_config *cin, const char *tenant_name, const char *admin_name,
            struct ss_init_result *res)
{
	struct ss_config c;
	struct ss_store *st = NULL;
	char tls[SS_PATH_MAX], conf[SS_PATH_MAX];
	int rc = SPH_ERR_INVALID_ARG;

	if (res)
		memset(res, 0, sizeof(*res));
	if (!cin || !res)
		return rc;
	c = *cin;
	rc = ss_config_finish(&c);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (snprintf(tls, sizeof(tls), "%s/tls", c.data_dir) >= (int)sizeof(tls) ||
	    snprintf(conf, sizeof(conf), "%s/sphere-ss.conf", c.data_dir) >= (int)sizeof(conf))
		goto out;
	if (mkdir(c.data_dir, 0700) != 0) {
		rc = errno == EEXIST ? SPH_ERR_STATE : SPH_ERR_IO;
		goto out;
	}
	rc = SPH_ERR_IO;
	if (mkdir(tls, 0700) != 0)
		goto out;
	rc = ss_tls_make(c.key, c.cert);
	if (rc == 0)
		rc = ss_kek_create(c.data_dir);
	if (rc == 0)
		rc = ss_write_config(&c, conf);
	if (rc == 0)
		rc = ss_store_open(c.db, &st);
	if (rc == 0)
		rc = ss_user_with_token(st, admin_name ? admin_name : "admin", false, &res->admin,
		                        res->admin_token);
	if (rc == 0)
		rc = ss_store_tenant_create(st, tenant_name ? tenant_name : "default",
		                            res->admin.id, &res->tenant);
	if (rc == 0)
		rc = ss_store_role_set(st, res->tenant.id, res->admin.id, SS_ROLE_ADMIN,
		                       res->admin.id);
	if (rc == 0)
		rc = ss_tenant_ca_ensure_dir(st, c.data_dir, res->tenant.id, res->admin.id);
	if (rc == 0)
		rc = ss_user_with_token(st, "operator", true, &res->operator_user,
		                        res->operator_token);
	if (rc == 0)
		sph_log(SPH_LOG_INFO, "ss", "initialised", "dir=%s tenant=%s", c.data_dir,
		        res->tenant.id);
out:
	ss_store_close(st);
	if (rc != 0)
		OPENSSL_cleanse(res, sizeof(*res));
	return rc;
}
