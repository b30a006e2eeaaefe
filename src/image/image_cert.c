/*
 * image certificates: the role OIDs, the certificate profile of the key
 * hierarchy (docs/formats.md §5.4), key and certificate generation with
 * OpenSSL's X.509 API, and loading keys and certificates from PEM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image_internal.h"

#define PEM_MAX     65536 /* largest key or certificate file read */
#define SERIAL_LEN  16
#define EKU_VAL_MAX 256

static const char *const role_oids[IMG_ROLE_COUNT + 1] = {
        NULL, IMG_OID_ARC ".1", IMG_OID_ARC ".2", IMG_OID_ARC ".3", IMG_OID_ARC ".4",
};

static const char *const role_names[IMG_ROLE_COUNT + 1] = {
        "none", "platform-os", "tenant-app", "developer-app", "capability",
};

static const char *const type_names[] = {
        NULL, "bootloader", "security-monitor", "os", "application", "realtime-application",
};
#define N_TYPE_NAMES (sizeof(type_names) / sizeof(type_names[0]))

const char *img_role_oid(enum img_role role)
{
	return role >= IMG_ROLE_PLATFORM_OS && role <= IMG_ROLE_CAPABILITY ? role_oids[role] : NULL;
}

const char *img_role_name(enum img_role role)
{
	return role >= IMG_ROLE_PLATFORM_OS && role <= IMG_ROLE_CAPABILITY ? role_names[role]
	                                                                   : role_names[0];
}

const char *img_type_name(uint32_t type)
{
	return type >= 1 && type < N_TYPE_NAMES ? type_names[type] : NULL;
}

int img_type_from_name(const char *name, uint32_t *type)
{
	if (!name || !type)
		return SPH_ERR_INVALID_ARG;
	for (uint32_t t = 1; t < N_TYPE_NAMES; t++) {
		if (strcmp(name, type_names[t]) == 0) {
			*type = t;
			return 0;
		}
	}
	return SPH_ERR_INVALID_ARG;
}

bool img_role_may_sign(enum img_role role, uint32_t type, bool allow_developer)
{
	bool os = type == IMG_TYPE_BOOTLOADER || type == IMG_TYPE_SECMON || type == IMG_TYPE_OS;
	bool app = type == IMG_TYPE_APP || type == IMG_TYPE_RTAPP;

	switch (role) {
	case IMG_ROLE_PLATFORM_OS:
		return os;
	case IMG_ROLE_TENANT_APP:
		return app;
	case IMG_ROLE_DEVELOPER_APP:
		return app && allow_developer;
	case IMG_ROLE_CAPABILITY: /* signs capability files, never images */
	case IMG_ROLE_NONE:
		break;
	}
	return false;
}

ASN1_OBJECT *img_role_obj(enum img_role role)
{
	const char *oid = img_role_oid(role);
	return oid ? OBJ_txt2obj(oid, 1) : NULL;
}

/* The certificate's EKU OIDs (caller frees), or NULL if it has none or it is
 * unreadable (a duplicated extension included). */
static EXTENDED_KEY_USAGE *get_eku(X509 *cert)
{
	int crit = 0;
	return X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, NULL);
}

static bool eku_has(EXTENDED_KEY_USAGE *eku, const ASN1_OBJECT *obj)
{
	for (int i = 0; eku && obj && i < sk_ASN1_OBJECT_num(eku); i++)
		if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), obj) == 0)
			return true;
	return false;
}

bool img_cert_has_role(X509 *cert, enum img_role role)
{
	ASN1_OBJECT *obj = img_role_obj(role);
	EXTENDED_KEY_USAGE *eku = cert ? get_eku(cert) : NULL;
	bool has = eku_has(eku, obj);

	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	ASN1_OBJECT_free(obj);
	return has;
}

int img_cert_role(X509 *leaf, enum img_role *role)
{
	EXTENDED_KEY_USAGE *eku = NULL;
	ASN1_OBJECT *obj = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (role)
		*role = IMG_ROLE_NONE;
	if (!leaf || !role)
		goto out;
	rc = SPH_ERR_PERMISSION;
	/* A signer is an end entity: any CA-ness (basicConstraints CA, keyCertSign,
	 * a v1 self-signed certificate) disqualifies it. */
	if (X509_check_ca(leaf) != 0)
		goto out;
	if (!(X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
		goto out;
	eku = get_eku(leaf);
	if (!eku || sk_ASN1_OBJECT_num(eku) != 1)
		goto out;
	for (int r = IMG_ROLE_PLATFORM_OS; r <= IMG_ROLE_CAPABILITY; r++) {
		obj = img_role_obj((enum img_role)r);
		if (!obj) {
			rc = SPH_ERR_CRYPTO;
			goto out;
		}
		if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, 0), obj) == 0) {
			*role = (enum img_role)r;
			rc = 0;
			goto out;
		}
		ASN1_OBJECT_free(obj);
		obj = NULL;
	}
out:
	ASN1_OBJECT_free(obj);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return rc;
}

int img_root_hash(X509 *cert, uint8_t hash[IMG_DIGEST_LEN])
{
	unsigned char *der = NULL;
	int n, rc = SPH_ERR_INVALID_ARG;

	if (hash)
		memset(hash, 0, IMG_DIGEST_LEN);
	if (!cert || !hash)
		goto out;
	rc = SPH_ERR_CRYPTO;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (n <= 0)
		goto out;
	rc = img_sha256(der, (size_t)n, hash);
out:
	OPENSSL_free(der);
	return rc;
}

int img_signer_id(X509 *leaf, uint8_t id[IMG_DIGEST_LEN])
{
	uint8_t pub[COSE_P256_PUB_LEN];
	int rc = SPH_ERR_INVALID_ARG;

	if (id)
		memset(id, 0, IMG_DIGEST_LEN);
	if (!leaf || !id)
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (cose_p256_export(X509_get0_pubkey(leaf), pub) != 0)
		goto out;
	rc = img_sha256(pub + 1, COSE_P256_PUB_LEN - 1, id);
out:
	return rc;
}

/* ---- generation -------------------------------------------------------------- */

static bool is_root(enum img_cert_kind k)
{
	return k == IMG_CERT_PLATFORM_ROOT || k == IMG_CERT_TENANT_ROOT;
}

static bool is_ca(enum img_cert_kind k)
{
	return is_root(k) || k == IMG_CERT_INTERMEDIATE;
}

/* The roles (bit 1u << role) a certificate of this kind carries in its EKU. */
static unsigned kind_roles(const struct img_cert_params *p)
{
	switch (p->kind) {
	case IMG_CERT_PLATFORM_ROOT:
	case IMG_CERT_PLATFORM_SIGNER:
		return 1u << IMG_ROLE_PLATFORM_OS;
	case IMG_CERT_TENANT_ROOT:
		return 1u << IMG_ROLE_TENANT_APP | 1u << IMG_ROLE_DEVELOPER_APP |
		       1u << IMG_ROLE_CAPABILITY;
	case IMG_CERT_TENANT_SIGNER:
		return 1u << IMG_ROLE_TENANT_APP;
	case IMG_CERT_DEVELOPER_SIGNER:
		return 1u << IMG_ROLE_DEVELOPER_APP;
	case IMG_CERT_CAPABILITY_SIGNER:
		return 1u << IMG_ROLE_CAPABILITY;
	case IMG_CERT_INTERMEDIATE:
		return p->roles;
	}
	return 0;
}

static const char *default_cn(enum img_cert_kind k)
{
	switch (k) {
	case IMG_CERT_PLATFORM_ROOT:
		return "Sphere platform root";
	case IMG_CERT_TENANT_ROOT:
		return "Sphere tenant root";
	case IMG_CERT_PLATFORM_SIGNER:
		return "Sphere platform OS signer";
	case IMG_CERT_TENANT_SIGNER:
		return "Sphere tenant production signer";
	case IMG_CERT_DEVELOPER_SIGNER:
		return "Sphere developer signer";
	case IMG_CERT_INTERMEDIATE:
		return "Sphere intermediate CA";
	case IMG_CERT_CAPABILITY_SIGNER:
		return "Sphere tenant capability signer";
	}
	return NULL;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = ext && X509_add_ext(x, ext, -1) == 1;

	X509_EXTENSION_free(ext);
	return ok ? 0 : SPH_ERR_CRYPTO;
}

/* "critical,<oid>[,<oid>...]" for the roles in mask. */
static int eku_value(unsigned mask, char *buf, size_t cap)
{
	size_t off = 0;
	int n = snprintf(buf, cap, "critical");

	if (n < 0 || (size_t)n >= cap)
		return SPH_ERR_INVALID_ARG;
	off = (size_t)n;
	for (int r = IMG_ROLE_PLATFORM_OS; r <= IMG_ROLE_CAPABILITY; r++) {
		if (!(mask & (1u << r)))
			continue;
		n = snprintf(buf + off, cap - off, ",%s", img_role_oid((enum img_role)r));
		if (n < 0 || (size_t)n >= cap - off)
			return SPH_ERR_INVALID_ARG;
		off += (size_t)n;
	}
	return 0;
}

static int set_serial(X509 *x)
{
	uint8_t raw[SERIAL_LEN];
	BIGNUM *bn = NULL;
	int rc = SPH_ERR_RANDOM;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	raw[0] = (uint8_t)((raw[0] & 0x7f) | 0x40); /* positive, 16 bytes, never zero */
	rc = SPH_ERR_CRYPTO;
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

static bool is_p256_key(EVP_PKEY *k)
{
	uint8_t pub[COSE_P256_PUB_LEN];
	return k && cose_p256_export(k, pub) == 0;
}

static int check_params(const struct img_cert_params *p, unsigned *roles, const char **cn,
                        unsigned *days)
{
	size_t cn_len;

	if (p->kind < IMG_CERT_PLATFORM_ROOT || p->kind > IMG_CERT_CAPABILITY_SIGNER)
		return SPH_ERR_INVALID_ARG;
	*roles = kind_roles(p);
	if (*roles == 0 || (*roles & ~(1u << IMG_ROLE_PLATFORM_OS | 1u << IMG_ROLE_TENANT_APP |
	                               1u << IMG_ROLE_DEVELOPER_APP | 1u << IMG_ROLE_CAPABILITY)))
		return SPH_ERR_INVALID_ARG;
	*cn = p->cn ? p->cn : default_cn(p->kind);
	cn_len = strnlen(*cn, IMG_CN_MAX + 1);
	if (!sph_text_ok((const uint8_t *)*cn, cn_len, IMG_CN_MAX))
		return SPH_ERR_INVALID_ARG;
	*days = p->days            ? p->days
	        : is_root(p->kind) ? IMG_ROOT_DAYS_DEFAULT
	                           : IMG_SIGNER_DAYS_DEFAULT;
	if (*days > IMG_DAYS_MAX)
		return SPH_ERR_INVALID_ARG;
	if (is_root(p->kind))
		return p->issuer_key || p->issuer_cert ? SPH_ERR_INVALID_ARG : 0;
	/* Issued certificates need a CA issuer and that CA's own key. */
	if (!p->issuer_key || !p->issuer_cert || X509_check_ca(p->issuer_cert) != 1 ||
	    EVP_PKEY_eq(X509_get0_pubkey(p->issuer_cert), p->issuer_key) != 1)
		return SPH_ERR_INVALID_ARG;
	return 0;
}

int img_cert_make(const struct img_cert_params *p, EVP_PKEY **key_out, X509 **cert_out)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509V3_CTX ctx;
	char eku[EKU_VAL_MAX];
	const char *cn = NULL;
	unsigned roles = 0, days = 0;
	time_t nb;
	bool ca;
	int rc = SPH_ERR_INVALID_ARG;

	if (key_out)
		*key_out = NULL;
	if (cert_out)
		*cert_out = NULL;
	if (!p || !key_out || !cert_out)
		goto out;
	if ((rc = check_params(p, &roles, &cn, &days)))
		goto out;
	if ((rc = eku_value(roles, eku, sizeof(eku))))
		goto out;
	ca = is_ca(p->kind);
	nb = p->not_before ? p->not_before : time(NULL);

	rc = SPH_ERR_CRYPTO;
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	x = X509_new();
	name = X509_NAME_new();
	if (!key || !x || !name)
		goto out;
	if (X509_set_version(x, X509_VERSION_3) != 1)
		goto out;
	if ((rc = set_serial(x)))
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Sphere", -1,
	                               -1, 0) != 1)
		goto out;
	if (X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, is_root(p->kind) ? name
	                                             : X509_get_subject_name(p->issuer_cert)) != 1)
		goto out;
	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &nb))
		goto out;
	if (X509_set_pubkey(x, key) != 1)
		goto out;

	X509V3_set_ctx(&ctx, is_root(p->kind) ? x : p->issuer_cert, x, NULL, NULL, 0);
	if ((rc = add_ext(x, &ctx, NID_basic_constraints,
	                  ca ? "critical,CA:TRUE" : "critical,CA:FALSE")))
		goto out;
	if ((rc = add_ext(x, &ctx, NID_key_usage,
	                  is_root(p->kind) ? "critical,keyCertSign,cRLSign"
	                  : ca             ? "critical,keyCertSign"
	                                   : "critical,digitalSignature")))
		goto out;
	if ((rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash")))
		goto out;
	if ((rc = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")))
		goto out;
	if ((rc = add_ext(x, &ctx, NID_ext_key_usage, eku)))
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (X509_sign(x, is_root(p->kind) ? key : p->issuer_key, EVP_sha256()) <= 0)
		goto out;
	*key_out = key;
	*cert_out = x;
	key = NULL; /* transferred */
	x = NULL;
	rc = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- PEM files ------------------------------------------------------------------- */

/* Never prompts: an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

int img_load_key(const char *path, EVP_PKEY **key)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *k = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (key)
		*key = NULL;
	if (!path || !key)
		goto out;
	if ((rc = img_read_file(path, PEM_MAX, &buf, &len)))
		goto out;
	rc = SPH_ERR_NOMEM;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio)
		goto out;
	rc = SPH_ERR_MALFORMED;
	k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!k)
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (!is_p256_key(k))
		goto out;
	*key = k;
	k = NULL; /* transferred */
	rc = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	EVP_PKEY_free(k);
	if (buf)
		OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

int img_load_certs(const char *path, STACK_OF(X509) * *certs)
{
	STACK_OF(X509) *sk = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	unsigned long err;
	int rc = SPH_ERR_INVALID_ARG;

	if (certs)
		*certs = NULL;
	if (!path || !certs)
		goto out;
	if ((rc = img_read_file(path, PEM_MAX, &buf, &len)))
		goto out;
	rc = SPH_ERR_NOMEM;
	bio = BIO_new_mem_buf(buf, (int)len);
	sk = sk_X509_new_null();
	if (!bio || !sk)
		goto out;
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
		rc = SPH_ERR_TOO_LARGE;
		if (sk_X509_num(sk) == IMG_MAX_CHAIN)
			goto out;
		rc = SPH_ERR_NOMEM;
		if (!sk_X509_push(sk, x))
			goto out;
		x = NULL;
	}
	/* The loop ends at the end of the file (no further PEM block) or at a
	 * block that does not parse; only the first is fine. */
	err = ERR_peek_last_error();
	rc = SPH_ERR_MALFORMED;
	if (sk_X509_num(sk) == 0 || ERR_GET_LIB(err) != ERR_LIB_PEM ||
	    ERR_GET_REASON(err) != PEM_R_NO_START_LINE)
		goto out;
	*certs = sk;
	sk = NULL; /* transferred */
	rc = 0;
out:
	ERR_clear_error();
	X509_free(x);
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	free(buf);
	return rc;
}

/* PEM text of a private key (in a secure-memory BIO, wiped on free) or a
 * certificate, written to path without replacing anything. */
static int write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
	BIO *bio = BIO_new(key ? BIO_s_secmem() : BIO_s_mem());
	char *data = NULL;
	long n;
	int rc = SPH_ERR_NOMEM;

	if (!bio)
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (key && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	if (!key && PEM_write_bio_X509(bio, cert) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || !data)
		goto out;
	rc = img_write_file(path, (const uint8_t *)data, (size_t)n, key ? 0600 : 0644, false);
	if (key)
		OPENSSL_cleanse(data, (size_t)n);
out:
	BIO_free(bio);
	return rc;
}

/* Writes the key, then the certificate; neither file may exist, and a
 * failure leaves neither behind. */
static int write_pair(EVP_PKEY *key, X509 *cert, const char *key_path, const char *cert_path)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!key_path || !cert_path || strcmp(key_path, cert_path) == 0)
		goto out;
	rc = SPH_ERR_STATE;
	if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0)
		goto out;
	if ((rc = write_pem(key_path, key, NULL)))
		goto out;
	if ((rc = write_pem(cert_path, NULL, cert)))
		unlink(key_path);
out:
	return rc;
}

int img_keygen_root(enum img_cert_kind kind, const char *cn, unsigned days, const char *key_path,
                    const char *cert_path, uint8_t root_hash[IMG_DIGEST_LEN])
{
	struct img_cert_params p = {.kind = kind, .cn = cn, .days = days};
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (root_hash)
		memset(root_hash, 0, IMG_DIGEST_LEN);
	if (!is_root(kind))
		goto out;
	if ((rc = img_cert_make(&p, &key, &cert)))
		goto out;
	if (root_hash && (rc = img_root_hash(cert, root_hash)))
		goto out;
	rc = write_pair(key, cert, key_path, cert_path);
out:
	if (rc && root_hash)
		memset(root_hash, 0, IMG_DIGEST_LEN);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

int img_keygen_signer(enum img_cert_kind kind, const char *cn, unsigned days,
                      const char *issuer_key_path, const char *issuer_cert_path,
                      const char *key_path, const char *cert_path)
{
	struct img_cert_params p = {.kind = kind, .cn = cn, .days = days};
	STACK_OF(X509) *issuer = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	enum img_role role;
	int rc = SPH_ERR_INVALID_ARG;

	if (kind == IMG_CERT_PLATFORM_SIGNER)
		role = IMG_ROLE_PLATFORM_OS;
	else if (kind == IMG_CERT_TENANT_SIGNER)
		role = IMG_ROLE_TENANT_APP;
	else if (kind == IMG_CERT_DEVELOPER_SIGNER)
		role = IMG_ROLE_DEVELOPER_APP;
	else if (kind == IMG_CERT_CAPABILITY_SIGNER)
		role = IMG_ROLE_CAPABILITY;
	else
		goto out;
	if ((rc = img_load_key(issuer_key_path, &p.issuer_key)))
		goto out;
	if ((rc = img_load_certs(issuer_cert_path, &issuer)))
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	if (sk_X509_num(issuer) != 1)
		goto out;
	p.issuer_cert = sk_X509_value(issuer, 0);
	/* EKU chaining: an issuer that may not certify the role would make a
	 * certificate every verifier refuses. */
	rc = SPH_ERR_PERMISSION;
	if (!img_cert_has_role(p.issuer_cert, role))
		goto out;
	if ((rc = img_cert_make(&p, &key, &cert)))
		goto out;
	rc = write_pair(key, cert, key_path, cert_path);
out:
	EVP_PKEY_free(p.issuer_key);
	sk_X509_pop_free(issuer, X509_free);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}
