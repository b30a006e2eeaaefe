/*
 * image: the certificate path shared by image packages and capability files
 * (docs/formats.md §5.5, §8): x5chain decoding, the trust anchor (a root
 * certificate, or the x5chain's self-signed top whose SPKI hash is trusted),
 * OpenSSL's strict path validation, and EKU role chaining.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image_internal.h"

/* At most this many CA certificates between the leaf and the root. */
#define MAX_INTERMEDIATES 3
/* OpenSSL security level 2: keys and signatures of at least 112 bits. */
#define AUTH_LEVEL 2

void img_chain_free(struct img_chain *c)
{
	X509_STORE_CTX_free(c->ctx);
	X509_STORE_free(c->store);
	X509_free(c->anchor);
	sk_X509_free(c->untrusted);
	for (size_t i = 0; i < c->n; i++)
		X509_free(c->certs[i]);
	memset(c, 0, sizeof(*c));
}

int img_chain_load(struct img_chain *c, const struct cose_x5 *x5, size_t n)
{
	if (n == 0 || n > IMG_MAX_CHAIN)
		return SPH_ERR_MALFORMED;
	c->untrusted = sk_X509_new_null();
	if (!c->untrusted)
		return SPH_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = x5[i].der;
		c->certs[i] = d2i_X509(NULL, &p, (long)x5[i].len);
		if (!c->certs[i])
			return SPH_ERR_MALFORMED;
		c->n++;
		if (p != x5[i].der + x5[i].len)
			return SPH_ERR_MALFORMED; /* exactly one certificate per entry */
		if (i > 0 && !sk_X509_push(c->untrusted, c->certs[i]))
			return SPH_ERR_NOMEM;
	}
	return 0;
}

/* Picks the trust anchor: the given root, or the x5chain's top certificate
 * when it is self-signed and its SPKI hash is the given root hash. */
int img_chain_anchor(struct img_chain *c, const struct img_trust *t, char *why, size_t cap)
{
	uint8_t hash[IMG_DIGEST_LEN];
	X509 *top = c->certs[c->n - 1];

	if (t->root_cert) {
		if (X509_up_ref(t->root_cert) != 1)
			return SPH_ERR_CRYPTO;
		c->anchor = t->root_cert;
		return 0;
	}
	if (c->n < 2) {
		img_why(why, cap, "x5chain must end with the root when trusting a root hash");
		return SPH_ERR_AUTH;
	}
	/* Names only here: X509_V_FLAG_CHECK_SS_SIGNATURE verifies the anchor's
	 * self-signature once, in img_chain_verify. */
	if (X509_self_signed(top, 0) != 1) {
		img_why(why, cap, "the x5chain's last certificate is not a self-signed root");
		return SPH_ERR_AUTH;
	}
	if (img_root_hash(top, hash) != 0 ||
	    CRYPTO_memcmp(hash, t->root_hash, IMG_DIGEST_LEN) != 0) {
		img_why(why, cap, "the x5chain's root is not the trusted root (root hash differs)");
		return SPH_ERR_AUTH;
	}
	if (X509_up_ref(top) != 1)
		return SPH_ERR_CRYPTO;
	c->anchor = top;
	return 0;
}

/* X509_verify_cert with a store holding only the anchor, then: the x5chain is
 * exactly the verified path (leaf first; the root optional when trusting a
 * certificate) and the path is longer than the leaf alone. */
int img_chain_verify(struct img_chain *c, const struct img_trust *t, char *why, size_t cap)
{
	X509_VERIFY_PARAM *param;
	STACK_OF(X509) * path;
	unsigned long flags = X509_V_FLAG_X509_STRICT | X509_V_FLAG_CHECK_SS_SIGNATURE;
	size_t n_path;

	c->store = X509_STORE_new();
	c->ctx = X509_STORE_CTX_new();
	if (!c->store || !c->ctx)
		return SPH_ERR_NOMEM;
	if (X509_STORE_add_cert(c->store, c->anchor) != 1)
		return SPH_ERR_CRYPTO;
	if (X509_STORE_CTX_init(c->ctx, c->store, c->certs[0], c->untrusted) != 1)
		return SPH_ERR_CRYPTO;
	param = X509_STORE_CTX_get0_param(c->ctx);
	if (t->time_policy == IMG_TIME_NONE)
		flags |= X509_V_FLAG_NO_CHECK_TIME;
	else if (t->time_policy == IMG_TIME_AT)
		X509_VERIFY_PARAM_set_time(param, t->at);
	if (X509_VERIFY_PARAM_set_flags(param, flags) != 1)
		return SPH_ERR_CRYPTO;
	X509_VERIFY_PARAM_set_depth(param, MAX_INTERMEDIATES);
	X509_VERIFY_PARAM_set_auth_level(param, AUTH_LEVEL);

	if (X509_verify_cert(c->ctx) != 1) {
		int err = X509_STORE_CTX_get_error(c->ctx);
		img_why(why, cap, "signer certificate not trusted: %s (at depth %d)",
		        X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(c->ctx));
		return SPH_ERR_AUTH;
	}
	path = X509_STORE_CTX_get0_chain(c->ctx);
	n_path = path ? (size_t)sk_X509_num(path) : 0;
	if (n_path < 2) {
		img_why(why, cap, "the signer certificate is itself the trusted root");
		return SPH_ERR_AUTH;
	}
	if (c->n != n_path && !(t->root_cert && c->n == n_path - 1)) {
		img_why(why, cap, "x5chain is not exactly the certificate path to the root");
		return SPH_ERR_AUTH;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (X509_cmp(sk_X509_value(path, (int)i), c->certs[i]) != 0) {
			img_why(why, cap,
			        "x5chain is not exactly the certificate path to the root");
			return SPH_ERR_AUTH;
		}
	}
	return 0;
}

int img_chain_role(struct img_chain *c, enum img_role *role, char *why, size_t cap)
{
	STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(c->ctx);

	*role = IMG_ROLE_NONE;
	if (img_cert_role(c->certs[0], role) != 0) {
		*role = IMG_ROLE_NONE;
		img_why(why, cap, "the signer certificate carries no single Sphere signing role");
		return SPH_ERR_PERMISSION;
	}
	for (int i = 1; i < sk_X509_num(path); i++) {
		if (!img_cert_has_role(sk_X509_value(path, i), *role)) {
			img_why(why, cap, "CA at depth %d may not certify the %s role", i,
			        img_role_name(*role));
			return SPH_ERR_PERMISSION;
		}
	}
	return 0;
}

int img_cert_der(X509 *cert, uint8_t **der, size_t *len)
{
	unsigned char *buf = NULL;
	int n = i2d_X509(cert, &buf);

	*der = NULL;
	*len = 0;
	if (n <= 0)
		return SPH_ERR_CRYPTO;
	if ((size_t)n > IMG_MAX_CERT) {
		OPENSSL_free(buf);
		return SPH_ERR_TOO_LARGE;
	}
	*der = buf;
	*len = (size_t)n;
	return 0;
}

int img_sign_with_chain(const uint8_t *payload, size_t len, int64_t content_type, EVP_PKEY *signer,
                        X509 *leaf, STACK_OF(X509) * chain_extra, uint8_t *cose, size_t cap,
                        size_t *cose_len)
{
	struct cose_x5 x5[IMG_MAX_CHAIN];
	struct cose_sign1_params p;
	size_t n_extra, n_certs = 0;
	int rc = SPH_ERR_TOO_LARGE;

	memset(x5, 0, sizeof(x5));
	*cose_len = 0;
	n_extra = chain_extra ? (size_t)sk_X509_num(chain_extra) : 0;
	if (n_extra >= IMG_MAX_CHAIN)
		goto out;
	for (size_t i = 0; i <= n_extra; i++) {
		X509 *x = i == 0 ? leaf : sk_X509_value(chain_extra, (int)(i - 1));
		uint8_t *der = NULL;
		rc = x ? img_cert_der(x, &der, &x5[i].len) : SPH_ERR_INVALID_ARG;
		if (rc)
			goto out;
		x5[i].der = der;
		n_certs++;
	}
	memset(&p, 0, sizeof(p));
	p.payload = payload;
	p.payload_len = len;
	p.content_type = content_type;
	p.x5chain = x5;
	p.x5chain_count = n_certs;
	rc = cose_sign1_create(&p, cose_pkey_signer, signer, cose, cap, cose_len);
	if (rc == SPH_ERR_BUFFER_TOO_SMALL)
		rc = SPH_ERR_TOO_LARGE;
out:
	for (size_t i = 0; i < n_certs; i++)
		OPENSSL_free((void *)x5[i].der);
	return rc;
}
