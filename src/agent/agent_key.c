/*
 * agent_key: the device's TLS key, held by the RoT (agent.h).
 *
 * A minimal OpenSSL 3 provider, "sphere-rot", built into this module and
 * loaded into the default library context (where libssl and libcurl look):
 *  - a key manager named like OpenSSL's own EC one ("EC", id-ecPublicKey), so
 *    libssl files the key as an ECDSA P-256 certificate key and
 *    X509_check_private_key can compare it with a certificate's key (the
 *    comparison crosses providers through import/export of the public half);
 *    its key data is a struct rot pointer and the identity public key, nothing
 *    secret;
 *  - a signature method under a name only this provider offers
 *    ("SPHERE-ROT-ECDSA", what the key manager reports for signing), so every
 *    EVP_DigestSign with such a key is routed here and nowhere else: SHA-256
 *    of the data, rot_sign(ROT_KEY_IDENTITY), r||s re-encoded as a DER
 *    ECDSA-Sig-Value.
 * Why a provider rather than an EC_KEY_METHOD: the latter is deprecated in
 * OpenSSL 3 and would need this file built with deprecated APIs; the provider
 * is the supported way for a key that lives in hardware (as pkcs11-provider
 * and tpm2-openssl do).
 *
 * The algorithms carry "provider=sphere-rot". An unqualified fetch of "EC"
 * takes the first implementation registered, which is the default
 * provider's (loaded, or activated as the fallback, before ours); the loader
 * checks that and refuses to go on if ours would shadow it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/proverr.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "common/common.h"

#define AGENT_PROV_NAME  "sphere-rot"
#define AGENT_PROV_PROPS "provider=" AGENT_PROV_NAME
#define AGENT_SIG_NAME   "SPHERE-ROT-ECDSA"
#define AGENT_PARAM_ROT  "sphere-rot-handle" /* octet ptr: the struct rot */
#define AGENT_GROUP      "prime256v1"
#define AGENT_SIG_MAX    72  /* DER ECDSA-Sig-Value for P-256, at most */
#define AGENT_CERT_SKEW  300 /* notBefore this many seconds in the past */

/* ---- key data ------------------------------------------------------------ */

struct agent_pk {
	struct rot *rot; /* NULL: a public key only (imported for a comparison) */
	uint8_t pub[ROT_PUB_LEN];
	int has_pub;
};

static void *agent_km_new(void *provctx)
{
	(void)provctx;
	return OPENSSL_zalloc(sizeof(struct agent_pk));
}

static void agent_km_free(void *keydata)
{
	OPENSSL_clear_free(keydata, sizeof(struct agent_pk));
}

static void *agent_km_dup(const void *from, int selection)
{
	const struct agent_pk *k = from;
	struct agent_pk *d = OPENSSL_zalloc(sizeof(*d));

	if (!d)
		return NULL;
	if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) {
		memcpy(d->pub, k->pub, sizeof(d->pub));
		d->has_pub = k->has_pub;
		if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
			d->rot = k->rot;
	}
	return d;
}

static int agent_km_has(const void *keydata, int selection)
{
	const struct agent_pk *k = keydata;

	if (!k)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) && !k->has_pub)
		return 0;
	/* The private key exists, in the RoT, when a RoT is bound. */
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !k->rot)
		return 0;
	return 1;
}

static int agent_km_match(const void *a, const void *b, int selection)
{
	const struct agent_pk *x = a, *y = b;

	if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) {
		if (!x->has_pub || !y->has_pub)
			return 0;
		if (CRYPTO_memcmp(x->pub, y->pub, sizeof(x->pub)) != 0)
			return 0;
	}
	return 1; /* domain parameters: always P-256 */
}

static int agent_group_ok(const char *name)
{
	return strcasecmp(name, AGENT_GROUP) == 0 || strcasecmp(name, "P-256") == 0 ||
	       strcasecmp(name, "secp256r1") == 0;
}

/* Imports a P-256 public key (group name, uncompressed point) and, with
 * AGENT_PARAM_ROT, the RoT that holds its private half. */
static int agent_km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	struct agent_pk *k = keydata;
	const OSSL_PARAM *p;
	const void *v = NULL;
	const char *group = NULL;
	size_t len = 0;

	if (!k)
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
	if (p && (!OSSL_PARAM_get_utf8_string_ptr(p, &group) || !agent_group_ok(group)))
		return 0;
	if (!(selection & OSSL_KEYMGMT_SELECT_KEYPAIR))
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PUB_KEY);
	if (!p || !OSSL_PARAM_get_octet_string_ptr(p, &v, &len) || len != ROT_PUB_LEN ||
	    ((const uint8_t *)v)[0] != 0x04)
		return 0;
	memcpy(k->pub, v, ROT_PUB_LEN);
	k->has_pub = 1;
	p = OSSL_PARAM_locate_const(params, AGENT_PARAM_ROT);
	if (p && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
		if (!OSSL_PARAM_get_octet_ptr(p, &v, &len) || !v)
			return 0;
		k->rot = (struct rot *)(uintptr_t)v;
	}
	return 1;
}

static const OSSL_PARAM agent_km_types[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
        OSSL_PARAM_END,
};

static const OSSL_PARAM *agent_km_io_types(int selection)
{
	(void)selection;
	return agent_km_types;
}

/* Exports the group and the public key: there is no private key to export. */
static int agent_km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	struct agent_pk *k = keydata;
	OSSL_PARAM params[3], *p = params;

	if (!k)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
		return 0;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)AGENT_GROUP, 0);
	if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) {
		if (!k->has_pub)
			return 0;
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, k->pub,
		                                         sizeof(k->pub));
	}
	*p = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

static int agent_km_get_params(void *keydata, OSSL_PARAM params[])
{
	struct agent_pk *k = keydata;
	OSSL_PARAM *p;

	if (!k)
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) && !OSSL_PARAM_set_int(p, 256))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) &&
	    !OSSL_PARAM_set_int(p, 128))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) &&
	    !OSSL_PARAM_set_int(p, AGENT_SIG_MAX))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_GROUP_NAME)) &&
	    !OSSL_PARAM_set_utf8_string(p, AGENT_GROUP))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT)) &&
	    !OSSL_PARAM_set_utf8_string(p, "uncompressed"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_EC_ENCODING)) &&
	    !OSSL_PARAM_set_utf8_string(p, "named_curve"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST)) &&
	    !OSSL_PARAM_set_utf8_string(p, "SHA256"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MANDATORY_DIGEST)) &&
	    !OSSL_PARAM_set_utf8_string(p, "SHA256"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY)) &&
	    (!k->has_pub || !OSSL_PARAM_set_octet_string(p, k->pub, sizeof(k->pub))))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PUB_KEY)) &&
	    (!k->has_pub || !OSSL_PARAM_set_octet_string(p, k->pub, sizeof(k->pub))))
		return 0;
	return 1;
}

static const OSSL_PARAM *agent_km_gettable(void *provctx)
{
	static const OSSL_PARAM t[] = {
	        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
	        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
	        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
	        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
	        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	        OSSL_PARAM_END,
	};
	(void)provctx;
	return t;
}

static const char *agent_km_op_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? AGENT_SIG_NAME : NULL;
}

#define AGENT_FN(id, fn)                                                                           \
	{                                                                                          \
		id, (void (*)(void))(fn)                                                           \
	}

static const OSSL_DISPATCH agent_keymgmt[] = {
        AGENT_FN(OSSL_FUNC_KEYMGMT_NEW, agent_km_new),
        AGENT_FN(OSSL_FUNC_KEYMGMT_FREE, agent_km_free),
        AGENT_FN(OSSL_FUNC_KEYMGMT_DUP, agent_km_dup),
        AGENT_FN(OSSL_FUNC_KEYMGMT_HAS, agent_km_has),
        AGENT_FN(OSSL_FUNC_KEYMGMT_MATCH, agent_km_match),
        AGENT_FN(OSSL_FUNC_KEYMGMT_IMPORT, agent_km_import),
        AGENT_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, agent_km_io_types),
        AGENT_FN(OSSL_FUNC_KEYMGMT_EXPORT, agent_km_export),
        AGENT_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, agent_km_io_types),
        AGENT_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, agent_km_get_params),
        AGENT_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, agent_km_gettable),
        AGENT_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, agent_km_op_name),
        {0, NULL},
};

/* ---- signature ------------------------------------------------------------- */

struct agent_sig {
	struct agent_pk *key;
	EVP_MD_CTX *md; /* digest-sign: the SHA-256 in progress */
};

/* The RoT signs SHA-256 digests only (ES256). NULL or "": the default, SHA-256. */
static int agent_md_ok(const char *name)
{
	static const char *const ok[] = {"SHA256", "SHA2-256", "SHA-256", "2.16.840.1.101.3.4.2.1"};

	if (!name || !*name)
		return 1;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strcasecmp(name, ok[i]) == 0)
			return 1;
	}
	ERR_raise_data(ERR_LIB_PROV, PROV_R_DIGEST_NOT_ALLOWED,
	               "the RoT identity key signs SHA-256 digests only, not %s", name);
	return 0;
}

static void *agent_sig_newctx(void *provctx, const char *propq)
{
	(void)provctx;
	(void)propq;
	return OPENSSL_zalloc(sizeof(struct agent_sig));
}

static void agent_sig_freectx(void *ctx)
{
	struct agent_sig *s = ctx;

	if (!s)
		return;
	EVP_MD_CTX_free(s->md);
	OPENSSL_free(s);
}

static void *agent_sig_dupctx(void *ctx)
{
	const struct agent_sig *s = ctx;
	struct agent_sig *d = OPENSSL_zalloc(sizeof(*d));

	if (!d)
		return NULL;
	d->key = s->key;
	if (s->md && (!(d->md = EVP_MD_CTX_new()) || EVP_MD_CTX_copy_ex(d->md, s->md) != 1)) {
		agent_sig_freectx(d);
		return NULL;
	}
	return d;
}

static int agent_sig_bind(struct agent_sig *s, void *provkey)
{
	struct agent_pk *k = provkey;

	if (!s || !k || !k->rot || !k->has_pub) {
		ERR_raise_data(ERR_LIB_PROV, PROV_R_NOT_A_PRIVATE_KEY, "not a key held by the RoT");
		return 0;
	}
	s->key = k;
	return 1;
}

static int agent_sig_set_params(void *ctx, const OSSL_PARAM params[]);

static int agent_sig_sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	struct agent_sig *s = ctx;

	if (!agent_sig_bind(s, provkey))
		return 0;
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
	return agent_sig_set_params(s, params);
}

/* digest (32 bytes) -> rot_sign -> DER ECDSA-Sig-Value in sig. */
static int agent_sign_digest(const struct agent_pk *k, const uint8_t digest[ROT_DIGEST_LEN],
                             unsigned char *sig, size_t *siglen, size_t sigsize)
{
	uint8_t rs[ROT_SIG_LEN];
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *p = sig;
	int n, rc, ok = 0;

	if ((rc = rot_sign(k->rot, ROT_KEY_IDENTITY, digest, rs)) != 0) {
		ERR_raise_data(ERR_LIB_PROV, PROV_R_FAILED_TO_SIGN, "RoT: %s", sph_strerror(rc));
		goto out;
	}
	es = ECDSA_SIG_new();
	r = BN_bin2bn(rs, ROT_SIG_LEN / 2, NULL);
	sv = BN_bin2bn(rs + ROT_SIG_LEN / 2, ROT_SIG_LEN / 2, NULL);
	if (!es || !r || !sv || ECDSA_SIG_set0(es, r, sv) != 1)
		goto out;
	r = sv = NULL; /* transferred */
	n = i2d_ECDSA_SIG(es, NULL);
	if (n <= 0 || (size_t)n > sigsize) {
		ERR_raise(ERR_LIB_PROV, PROV_R_OUTPUT_BUFFER_TOO_SMALL);
		goto out;
	}
	if (i2d_ECDSA_SIG(es, &p) != n)
		goto out;
	*siglen = (size_t)n;
	ok = 1;
out:
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(es);
	return ok;
}

/* Signs a SHA-256 digest (EVP_PKEY_sign). */
static int agent_sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                          const unsigned char *tbs, size_t tbslen)
{
	struct agent_sig *s = ctx;

	if (!s || !s->key)
		return 0;
	if (!sig) {
		*siglen = AGENT_SIG_MAX;
		return 1;
	}
	if (tbslen != ROT_DIGEST_LEN) {
		ERR_raise_data(ERR_LIB_PROV, PROV_R_INVALID_DIGEST_LENGTH,
		               "the RoT signs 32-byte SHA-256 digests only");
		return 0;
	}
	return agent_sign_digest(s->key, tbs, sig, siglen, sigsize);
}

static int agent_sig_digest_init(void *ctx, const char *mdname, void *provkey,
                                 const OSSL_PARAM params[])
{
	struct agent_sig *s = ctx;

	if (!agent_sig_bind(s, provkey) || !agent_md_ok(mdname))
		return 0;
	EVP_MD_CTX_free(s->md);
	s->md = EVP_MD_CTX_new();
	if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1)
		return 0;
	return agent_sig_set_params(s, params);
}

static int agent_sig_digest_update(void *ctx, const unsigned char *data, size_t len)
{
	struct agent_sig *s = ctx;

	return s && s->md && EVP_DigestUpdate(s->md, data, len) == 1;
}

static int agent_sig_digest_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
	struct agent_sig *s = ctx;
	uint8_t digest[ROT_DIGEST_LEN];
	unsigned int dlen = 0;

	if (!s || !s->md || !s->key)
		return 0;
	if (!sig) {
		*siglen = AGENT_SIG_MAX;
		return 1;
	}
	if (EVP_DigestFinal_ex(s->md, digest, &dlen) != 1 || dlen != sizeof(digest))
		return 0;
	return agent_sign_digest(s->key, digest, sig, siglen, sigsize);
}

static int agent_sig_get_params(void *ctx, OSSL_PARAM params[])
{
	/* AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758: no parameters). */
	static const uint8_t aid[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
	                              0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
	OSSL_PARAM *p;

	(void)ctx;
	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) &&
	    !OSSL_PARAM_set_octet_string(p, aid, sizeof(aid)))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) &&
	    !OSSL_PARAM_set_utf8_string(p, "SHA2-256"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST_SIZE)) &&
	    !OSSL_PARAM_set_size_t(p, ROT_DIGEST_LEN))
		return 0;
	return 1;
}

static const OSSL_PARAM *agent_sig_gettable(void *ctx, void *provctx)
{
	static const OSSL_PARAM t[] = {
	        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
	        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	        OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
	        OSSL_PARAM_END,
	};
	(void)ctx;
	(void)provctx;
	return t;
}

/* The only setting is the digest, and only SHA-256 is accepted. */
static int agent_sig_set_params(void *ctx, const OSSL_PARAM params[])
{
	const OSSL_PARAM *p;
	const char *name = NULL;

	(void)ctx;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p && (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !agent_md_ok(name)))
		return 0;
	return 1;
}

static const OSSL_PARAM *agent_sig_settable(void *ctx, void *provctx)
{
	static const OSSL_PARAM t[] = {
	        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	        OSSL_PARAM_END,
	};
	(void)ctx;
	(void)provctx;
	return t;
}

static const OSSL_DISPATCH agent_signature[] = {
        AGENT_FN(OSSL_FUNC_SIGNATURE_NEWCTX, agent_sig_newctx),
        AGENT_FN(OSSL_FUNC_SIGNATURE_FREECTX, agent_sig_freectx),
        AGENT_FN(OSSL_FUNC_SIGNATURE_DUPCTX, agent_sig_dupctx),
        AGENT_FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, agent_sig_sign_init),
        AGENT_FN(OSSL_FUNC_SIGNATURE_SIGN, agent_sig_sign),
        AGENT_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, agent_sig_digest_init),
        AGENT_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, agent_sig_digest_update),
        AGENT_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, agent_sig_digest_final),
        AGENT_FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, agent_sig_get_params),
        AGENT_FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, agent_sig_gettable),
        AGENT_FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, agent_sig_set_params),
        AGENT_FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, agent_sig_settable),
        {0, NULL},
};

/* ---- the provider ---------------------------------------------------------- */

static const OSSL_ALGORITHM agent_keymgmts[] = {
        {"EC:id-ecPublicKey:1.2.840.10045.2.1", AGENT_PROV_PROPS, agent_keymgmt,
         "P-256 keys held by the Sphere RoT"},
        {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM agent_signatures[] = {
        {AGENT_SIG_NAME, AGENT_PROV_PROPS, agent_signature, "ES256 through the Sphere RoT"},
        {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *agent_prov_query(void *provctx, int operation_id, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (operation_id) {
	case OSSL_OP_KEYMGMT:
		return agent_keymgmts;
	case OSSL_OP_SIGNATURE:
		return agent_signatures;
	default:
		return NULL;
	}
}

static const OSSL_DISPATCH agent_prov_dispatch[] = {
        AGENT_FN(OSSL_FUNC_PROVIDER_QUERY_OPERATION, agent_prov_query),
        {0, NULL},
};

static int agent_prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                           const OSSL_DISPATCH **out, void **provctx)
{
	(void)in;
	*out = agent_prov_dispatch;
	*provctx = (void *)(uintptr_t)handle;
	return 1;
}

static pthread_once_t agent_prov_once = PTHREAD_ONCE_INIT;
static int agent_prov_status = SPH_ERR_STATE;
static OSSL_PROVIDER *agent_prov;

/* At exit, before OpenSSL's own cleanup (registered earlier, so run later):
 * drops the reference the loader took. */
static void agent_prov_unload(void)
{
	OSSL_PROVIDER_unload(agent_prov);
	agent_prov = NULL;
}

/* Loads the provider into the default library context, once per process;
 * it stays loaded. */
static void agent_prov_load(void)
{
	OSSL_PROVIDER *prov = NULL;
	EVP_MD *md = NULL;
	EVP_KEYMGMT *km = NULL;
	const char *who;

	/* Activate the configured providers (or the fallback default) before ours,
	 * so that they stay active and come first for unqualified fetches. */
	md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	if (!md || !OSSL_PROVIDER_add_builtin(NULL, AGENT_PROV_NAME, agent_prov_init) ||
	    !(prov = OSSL_PROVIDER_try_load(NULL, AGENT_PROV_NAME, 1)))
		goto out;
	km = EVP_KEYMGMT_fetch(NULL, "EC", NULL);
	who = km ? OSSL_PROVIDER_get0_name(EVP_KEYMGMT_get0_provider(km)) : NULL;
	if (!who || strcmp(who, AGENT_PROV_NAME) == 0) {
		sph_log(SPH_LOG_ERROR, "agent", "provider_refused", "reason=%s",
		        "it would shadow the EC key manager");
		OSSL_PROVIDER_unload(prov);
		goto out;
	}
	if (atexit(agent_prov_unload) != 0) {
		OSSL_PROVIDER_unload(prov);
		goto out;
	}
	agent_prov = prov;
	agent_prov_status = 0;
out:
	EVP_KEYMGMT_free(km);
	EVP_MD_free(md);
	ERR_clear_error();
}

/* ---- the API ----------------------------------------------------------------- */

int agent_rot_key(struct rot *rot, EVP_PKEY **out)
{
	uint8_t pub[ROT_PUB_LEN];
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	OSSL_PARAM params[4];
	void *handle = rot;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!rot || !out)
		goto out;
	rc = SPH_ERR_STATE;
	if (pthread_once(&agent_prov_once, agent_prov_load) != 0 || agent_prov_status != 0)
		goto out;
	if ((rc = rot_pubkey(rot, ROT_KEY_IDENTITY, pub)) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	                                             (char *)AGENT_GROUP, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	params[2] = OSSL_PARAM_construct_octet_ptr(AGENT_PARAM_ROT, &handle, 0);
	params[3] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", AGENT_PROV_PROPS);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	*out = pk;
	pk = NULL; /* transferred */
	rc = 0;
out:
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/* A public P-256 key from the default implementations, for the certificate
 * (the certificate must not hold a reference to the RoT). */
static int agent_pub_pkey(const uint8_t pub[ROT_PUB_LEN], EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM params[3];
	int rc = SPH_ERR_CRYPTO;

	*out = NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	                                             (char *)AGENT_GROUP, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub,
	                                              ROT_PUB_LEN);
	params[2] = OSSL_PARAM_construct_end();
	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

static int agent_serial(X509 *x)
{
	uint8_t r[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int rc = SPH_ERR_RANDOM;

	if (RAND_bytes(r, sizeof(r)) != 1)
		goto out;
	r[0] &= 0x7f;
	r[0] |= 0x40; /* positive, 127 significant bits */
	rc = SPH_ERR_CRYPTO;
	if ((bn = BN_bin2bn(r, sizeof(r), NULL)) && (ai = BN_to_ASN1_INTEGER(bn, NULL)) &&
	    X509_set_serialNumber(x, ai) == 1)
		rc = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

static int agent_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ok = e && X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok ? 0 : SPH_ERR_CRYPTO;
}

int agent_device_cert(struct rot *rot, EVP_PKEY *key, unsigned days, X509 **out)
{
	static const int nids[] = {NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
	                           NID_subject_key_identifier};
	static const char *const vals[] = {"critical,CA:FALSE", "critical,digitalSignature",
	                                   "clientAuth", "hash"};
	char id[ROT_DEVICE_ID_LEN + 1];
	uint8_t pub[ROT_PUB_LEN], kpub[ROT_PUB_LEN];
	size_t klen = 0;
	EVP_PKEY *pubkey = NULL;
	X509 *x = NULL;
	X509_NAME *name = NULL;
	time_t now = time(NULL);
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!rot || !key || !out || days == 0 || days > AGENT_CERT_MAX_DAYS)
		goto out;
	if ((rc = rot_device_id(rot, id)) != 0 ||
	    (rc = rot_pubkey(rot, ROT_KEY_IDENTITY, pub)) != 0)
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, kpub,
	                                    sizeof(kpub), &klen) != 1 ||
	    klen != sizeof(kpub) || CRYPTO_memcmp(kpub, pub, sizeof(pub)) != 0)
		goto out;
	if ((rc = agent_pub_pkey(pub, &pubkey)) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (!(x = X509_new()) || X509_set_version(x, 2) != 1 || (rc = agent_serial(x)) != 0)
		goto out;
	rc = SPH_ERR_CRYPTO;
	name = X509_NAME_new();
	if (!name ||
	    /* UTF8String set directly: the device id is 128 characters, past
	     * X.520's 64-character bound that the MBSTRING path enforces. */
	    X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
	                               (const unsigned char *)id, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -AGENT_CERT_SKEW, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) ||
	    X509_set_pubkey(x, pubkey) != 1)
		goto out;
	for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
		if ((rc = agent_ext(x, nids[i], vals[i])) != 0)
			goto out;
	}
	rc = SPH_ERR_CRYPTO;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto out;
	*out = x;
	x = NULL; /* transferred */
	rc = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(pubkey);
	return rc;
}
