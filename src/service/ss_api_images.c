/*
 * ss_api_images: the image catalogue, OS feeds and deployments
 * (docs/api-images.md).
 *
 * A tenant uploads an application package signed with any key of its own; the
 * service checks its structure and signature, then re-signs the same manifest
 * and payload with the tenant's production signer (made on first need under
 * the tenant's image root, keys wrapped under the KEK) and stores that. The
 * platform operator uploads OS packages, which must verify against the
 * service's platform root, and publishes them to the Retail and RetailEval
 * feeds. A deployment targets a set of the tenant's images at a device
 * group; the group's target is what its devices should run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image/image.h"
#include "ss_internal.h"

_Static_assert(SS_IMAGE_NAME_MAX == IMG_NAME_MAX, "image name bounds differ");
_Static_assert(SS_IMAGE_VERSION_MAX == IMG_VERSION_MAX, "image version bounds differ");
_Static_assert(SS_IMAGE_PACKAGE_MAX >= IMG_MAX_PACKAGE, "stored package bound too small");

#define SS_IMG_WHY_MAX 160
#define SS_RANGE_MAX   96

/* ---- helpers ------------------------------------------------------------------- */

static X509 *ss_img_x509(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = len <= (size_t)INT32_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;

	if (x && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

/* i2d into a fresh buffer of at most SS_CA_CERT_MAX bytes. */
static int ss_img_der(X509 *x, uint8_t *out, size_t cap, size_t *len)
{
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	int rc = SPH_ERR_CRYPTO;

	*len = 0;
	if (n <= 0)
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if ((size_t)n > cap)
		goto out;
	memcpy(out, der, (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	OPENSSL_free(der);
	return rc;
}

/* Copies a wrapped key blob into a record field. */
static int ss_img_wrap_into(EVP_PKEY *key, const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                            uint8_t *out, size_t cap, size_t *len)
{
	uint8_t *blob = NULL;
	size_t n = 0;
	int rc = ss_key_wrap(key, kek, SS_KEY_IMAGE, tenant_id, &blob, &n);

	*len = 0;
	if (rc == 0 && n > cap)
		rc = SPH_ERR_TOO_LARGE;
	if (rc == 0) {
		memcpy(out, blob, n);
		*len = n;
	}
	free(blob);
	return rc;
}

/* Makes a tenant's image root and production signer into rec. */
static int ss_img_signer_make(const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                              struct ss_signer_record *rec)
{
	struct img_cert_params p;
	EVP_PKEY *rk = NULL, *sk = NULL;
	X509 *rc_ = NULL, *sc = NULL;
	char cn[IMG_CN_MAX + 1];
	int rc;

	memset(&p, 0, sizeof(p));
	snprintf(cn, sizeof(cn), "Sphere tenant %s images", tenant_id);
	p.kind = IMG_CERT_TENANT_ROOT;
	p.cn = cn;
	rc = img_cert_make(&p, &rk, &rc_);
	if (rc)
		goto out;
	memset(&p, 0, sizeof(p));
	snprintf(cn, sizeof(cn), "Sphere tenant %s production", tenant_id);
	p.kind = IMG_CERT_TENANT_SIGNER;
	p.cn = cn;
	p.issuer_key = rk;
	p.issuer_cert = rc_;
	rc = img_cert_make(&p, &sk, &sc);
	if (rc)
		goto out;
	memcpy(rec->tenant_id, tenant_id, SS_UUID_LEN + 1);
	rc = ss_img_der(rc_, rec->root_der, sizeof(rec->root_der), &rec->root_der_len);
	if (!rc)
		rc = ss_img_der(sc, rec->signer_der, sizeof(rec->signer_der), &rec->signer_der_len);
	if (!rc)
		rc = ss_img_wrap_into(rk, kek, tenant_id, rec->root_key, sizeof(rec->root_key),
		                      &rec->root_key_len);
	if (!rc)
		rc = ss_img_wrap_into(sk, kek, tenant_id, rec->signer_key, sizeof(rec->signer_key),
		                      &rec->signer_key_len);
out:
	EVP_PKEY_free(rk);
	EVP_PKEY_free(sk);
	X509_free(rc_);
	X509_free(sc);
	return rc;
}

static int ss_img_hex(const uint8_t *b, size_t len, char *out, size_t cap)
{
	return sph_hex_encode(b, len, out, cap);
}

/* The manifest's component id as a lowercase UUID. */
static void ss_img_uuid(const uint8_t id[16], char out[SS_UUID_LEN + 1])
{
	char hex[33];
	size_t o = 0;

	out[0] = '\0';
	if (ss_img_hex(id, 16, hex, sizeof(hex)) != 0)
		return;
	for (size_t i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[o++] = '-';
		out[o++] = hex[i];
	}
	out[o] = '\0';
}

static void ss_img_uuid_bytes(const char *s, uint8_t out[16])
{
	char hex[33];
	size_t o = 0;

	memset(out, 0, 16);
	for (size_t i = 0; s[i] && o < 32; i++)
		if (s[i] != '-')
			hex[o++] = s[i];
	hex[o] = '\0';
	if (o != 32 || sph_hex_decode(hex, out, 16) != 0)
		memset(out, 0, 16);
}

/* True for a lowercase UUID (as the store makes them). */
static bool ss_img_uuid_ok(const char *s)
{
	if (!s || strlen(s) != SS_UUID_LEN)
		return false;
	for (size_t i = 0; i < SS_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

static json_t *ss_image_json(const struct ss_image *i)
{
	char ph[65] = "", kh[65] = "";
	const char *type = img_type_name(i->type);

	(void)ss_img_hex(i->payload_sha256, 32, ph, sizeof(ph));
	(void)ss_img_hex(i->package_sha256, 32, kh, sizeof(kh));
	return json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:I}", "id",
	                 i->id, "tenant_id", i->tenant_id[0] ? i->tenant_id : NULL, "component_id",
	                 i->component_id, "type", type ? type : "unknown", "name", i->name,
	                 "version", i->version, "security_version", (json_int_t)i->security_version,
	                 "payload_size", (json_int_t)i->payload_size, "payload_sha256", ph,
	                 "package_size", (json_int_t)i->package_size, "package_sha256", kh,
	                 "created", (json_int_t)i->created);
}

static json_t *ss_release_json(const struct ss_os_release *r, const struct ss_image *img)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "id", r->id, "feed", ss_os_feed_name(r->feed),
	                      "image_id", r->image_id, "published", (json_int_t)r->published);

	if (j && img)
		json_object_set_new(j, "image", ss_image_json(img));
	return j;
}

static json_t *ss_deployment_json(const struct ss_deployment *d)
{
	json_t *ids = json_array();
	json_t *j;

	for (size_t i = 0; ids && i < d->n_images; i++)
		json_array_append_new(ids, json_string(d->image_ids[i]));
	j = json_pack("{s:s, s:s, s:s, s:I, s:o}", "id", d->id, "tenant_id", d->tenant_id,
	              "group_id", d->group_id, "created", (json_int_t)d->created, "image_ids",
	              ids ? ids : json_array());
	return j;
}

/* A store status for a path id: a malformed id is "not found". */
static int ss_img_path_rc(int rc)
{
	return rc == SPH_ERR_INVALID_ARG ? SPH_ERR_NOT_FOUND : rc;
}

/* ---- internal API ------------------------------------------------------------------- */

int ss_platform_root_load(struct ss_service *s)
{
	char path[SS_PATH_MAX + 32];
	bool dflt = !s->cfg.platform_root[0];
	struct stat sb;
	BIO *b = NULL;
	X509 *x = NULL;
	int rc = SPH_ERR_TOO_LARGE;

	s->platform_root = NULL;
	if (dflt) {
		if (snprintf(path, sizeof(path), "%s/platform-root.pem", s->cfg.data_dir) >=
		    (int)sizeof(path))
			goto out;
		rc = 0;
		if (stat(path, &sb) != 0)
			goto out; /* none: OS images are refused until one is configured */
	} else {
		snprintf(path, sizeof(path), "%s", s->cfg.platform_root);
	}
	rc = SPH_ERR_NOT_FOUND;
	b = BIO_new_file(path, "r");
	if (!b)
		goto out;
	rc = SPH_ERR_MALFORMED;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!x || X509_check_ca(x) < 1 || X509_check_issued(x, x) != X509_V_OK)
		goto out;
	s->platform_root = x;
	x = NULL;
	rc = 0;
	sph_log(SPH_LOG_INFO, "ss", "platform_root", "path=\"%s\"", path);
out:
	if (rc)
		sph_log(SPH_LOG_ERROR, "ss", "platform_root_unusable", "path=\"%s\" status=%d",
		        dflt ? "(default)" : s->cfg.platform_root, rc);
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

int ss_tenant_signer(struct ss_service *s, const char *tenant_id, X509 **root_cert,
                     X509 **signer_cert, EVP_PKEY **signer_key)
{
	struct ss_signer_record *rec = calloc(1, sizeof(*rec));
	X509 *root = NULL, *leaf = NULL;
	EVP_PKEY *key = NULL;
	int rc = SPH_ERR_NOMEM;

	if (root_cert)
		*root_cert = NULL;
	if (signer_cert)
		*signer_cert = NULL;
	if (signer_key)
		*signer_key = NULL;
	if (!rec)
		goto out;
	/* Made once, never changed: cached for good (ss_cache.c). */
	if (ss_cache_signer_get(&s->cache, tenant_id, &root, &leaf, &key)) {
		rc = 0;
		goto give;
	}
	rc = ss_store_signer_get(s->st, tenant_id, rec);
	if (rc == SPH_ERR_NOT_FOUND) {
		rc = ss_img_signer_make(s->kek, tenant_id, rec);
		if (rc == 0)
			rc = ss_store_signer_add(s->st, rec, "");
		/* Another request made it meanwhile: use that one. */
		if (rc == 0 || rc == SPH_ERR_DUPLICATE)
			rc = ss_store_signer_get(s->st, tenant_id, rec);
		if (rc == 0)
			sph_log(SPH_LOG_INFO, "ss", "tenant_signer_ready", "tenant=%s", tenant_id);
	}
	if (rc)
		goto out;
	rc = SPH_ERR_CORRUPT;
	root = ss_img_x509(rec->root_der, rec->root_der_len);
	leaf = ss_img_x509(rec->signer_der, rec->signer_der_len);
	if (!root || !leaf)
		goto out;
	rc = ss_key_unwrap(rec->signer_key, rec->signer_key_len, s->kek, SS_KEY_IMAGE, tenant_id,
	                   &key);
	if (rc)
		goto out;
	ss_cache_signer_put(&s->cache, tenant_id, root, leaf, key);
give:
	rc = 0;
	if (root_cert) {
		*root_cert = root;
		root = NULL;
	}
	if (signer_cert) {
		*signer_cert = leaf;
		leaf = NULL;
	}
	if (signer_key) {
		*signer_key = key;
		key = NULL;
	}
out:
	X509_free(root);
	X509_free(leaf);
	EVP_PKEY_free(key);
	if (rec)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return rc;
}

/* Makes tenant_id's capability signer under the root whose wrapped key and
 * certificate are in sig. */
static int ss_img_cap_signer_make(const uint8_t kek[SS_KEK_LEN], const char *tenant_id,
                                  const struct ss_signer_record *sig,
                                  struct ss_cap_signer_record *rec)
{
	struct img_cert_params p;
	EVP_PKEY *rk = NULL, *ck = NULL;
	X509 *root = NULL, *cc = NULL;
	char cn[IMG_CN_MAX + 1];
	int rc = SPH_ERR_CORRUPT;

	root = ss_img_x509(sig->root_der, sig->root_der_len);
	if (!root)
		goto out;
	rc = ss_key_unwrap(sig->root_key, sig->root_key_len, kek, SS_KEY_IMAGE, tenant_id, &rk);
	if (rc)
		goto out;
	memset(&p, 0, sizeof(p));
	snprintf(cn, sizeof(cn), "Sphere tenant %s capabilities", tenant_id);
	p.kind = IMG_CERT_CAPABILITY_SIGNER;
	p.cn = cn;
	p.issuer_key = rk;
	p.issuer_cert = root;
	rc = img_cert_make(&p, &ck, &cc);
	if (rc)
		goto out;
	memcpy(rec->tenant_id, tenant_id, SS_UUID_LEN + 1);
	rc = ss_img_der(cc, rec->signer_der, sizeof(rec->signer_der), &rec->signer_der_len);
	if (!rc)
		rc = ss_img_wrap_into(ck, kek, tenant_id, rec->signer_key, sizeof(rec->signer_key),
		                      &rec->signer_key_len);
out:
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ck);
	X509_free(root);
	X509_free(cc);
	return rc;
}

int ss_tenant_cap_signer(struct ss_service *s, const char *tenant_id, X509 **root_cert,
                         X509 **cap_cert, EVP_PKEY **cap_key)
{
	struct ss_signer_record *sig = calloc(1, sizeof(*sig));
	struct ss_cap_signer_record *rec = calloc(1, sizeof(*rec));
	X509 *root = NULL, *leaf = NULL;
	EVP_PKEY *key = NULL;
	int rc = SPH_ERR_NOMEM;

	if (root_cert)
		*root_cert = NULL;
	if (cap_cert)
		*cap_cert = NULL;
	if (cap_key)
		*cap_key = NULL;
	if (!sig || !rec)
		goto out;
	/* The tenant image root (made on first need) issues it. */
	rc = ss_tenant_signer(s, tenant_id, &root, NULL, NULL);
	if (!rc)
		rc = ss_store_signer_get(s->st, tenant_id, sig);
	if (rc)
		goto out;
	rc = ss_store_cap_signer_get(s->st, tenant_id, rec);
	if (rc == SPH_ERR_NOT_FOUND) {
		rc = ss_img_cap_signer_make(s->kek, tenant_id, sig, rec);
		if (rc == 0)
			rc = ss_store_cap_signer_add(s->st, rec, "");
		/* Another request made it meanwhile: use that one. */
		if (rc == 0 || rc == SPH_ERR_DUPLICATE)
			rc = ss_store_cap_signer_get(s->st, tenant_id, rec);
		if (rc == 0)
			sph_log(SPH_LOG_INFO, "ss", "tenant_cap_signer_ready", "tenant=%s",
			        tenant_id);
	}
	if (rc)
		goto out;
	rc = SPH_ERR_CORRUPT;
	leaf = ss_img_x509(rec->signer_der, rec->signer_der_len);
	if (!leaf)
		goto out;
	if (cap_key) {
		rc = ss_key_unwrap(rec->signer_key, rec->signer_key_len, s->kek, SS_KEY_IMAGE,
		                   tenant_id, &key);
		if (rc)
			goto out;
	}
	rc = 0;
	if (root_cert) {
		*root_cert = root;
		root = NULL;
	}
	if (cap_cert) {
		*cap_cert = leaf;
		leaf = NULL;
	}
	if (cap_key) {
		*cap_key = key;
		key = NULL;
	}
out:
	X509_free(root);
	X509_free(leaf);
	EVP_PKEY_free(key);
	if (sig)
		OPENSSL_cleanse(sig, sizeof(*sig));
	if (rec)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(sig);
	free(rec);
	return rc;
}

/* Fills a target entry from an image. */
static void ss_target_set(struct ss_target_image *e, const struct ss_image *img, bool is_os)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->image_id, img->id, sizeof(e->image_id));
	ss_img_uuid_bytes(img->component_id, e->component_id);
	e->type = img->type;
	memcpy(e->version, img->version, sizeof(e->version));
	e->security_version = img->security_version;
	memcpy(e->payload_sha256, img->payload_sha256, 32);
	e->package_size = img->package_size;
	memcpy(e->package_sha256, img->package_sha256, 32);
	e->is_os = is_os;
}

/* The newest release of each OS type (1..3) over the feeds the group sees:
 * the highest security version wins, then the later publish time, then the
 * later release. */
static int ss_target_os(struct ss_service *s, enum ss_os_feed feed, struct ss_target *out)
{
	struct ss_os_release *rs = calloc(SS_LIST_MAX, sizeof(*rs));
	struct ss_image best[3], img;
	int64_t best_pub[3] = {0}, best_seq[3] = {0};
	bool have[3] = {false, false, false};
	int rc = rs ? 0 : SPH_ERR_NOMEM;

	memset(best, 0, sizeof(best));
	for (int f = SS_FEED_RETAIL; rc == 0 && f <= SS_FEED_RETAIL_EVAL; f++) {
		size_t n = 0;
		/* Retail devices see Retail only; RetailEval sees both. */
		if (f == SS_FEED_RETAIL_EVAL && feed != SS_FEED_RETAIL_EVAL)
			break;
		rc = ss_store_os_release_list(s->st, (enum ss_os_feed)f, rs, SS_LIST_MAX, &n);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			size_t t;
			rc = ss_store_image_get(s->st, "", rs[i].image_id, &img);
			if (rc)
				break;
			if (img.type < 1 || img.type > 3) {
				rc = SPH_ERR_CORRUPT;
				break;
			}
			t = img.type - 1;
			if (have[t] &&
			    (img.security_version < best[t].security_version ||
			     (img.security_version == best[t].security_version &&
			      (rs[i].published < best_pub[t] ||
			       (rs[i].published == best_pub[t] && rs[i].seq <= best_seq[t])))))
				continue;
			best[t] = img;
			best_pub[t] = rs[i].published;
			best_seq[t] = rs[i].seq;
			have[t] = true;
		}
	}
	for (size_t t = 0; rc == 0 && t < 3; t++)
		if (have[t])
			ss_target_set(&out->images[out->n++], &best[t], true);
	free(rs);
	return rc;
}

int ss_group_target(struct ss_service *s, const char *tenant_id, const char *group_id,
                    struct ss_target *out)
{
	struct ss_deployment *d = NULL;
	struct ss_group g;
	struct ss_image img;
	size_t n = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!s || !tenant_id || !group_id || !out)
		goto out;
	rc = ss_store_group_get(s->st, tenant_id, group_id, &g);
	if (rc)
		goto out;
	memcpy(out->group_id, g.id, sizeof(out->group_id));
	out->os_feed = g.os_feed;
	out->update_policy = g.update_policy;
	if (g.update_policy == SS_POLICY_NO_UPDATES)
		goto out; /* nothing: rc is 0 */
	rc = ss_target_os(s, g.os_feed, out);
	if (rc || g.update_policy != SS_POLICY_UPDATE_ALL)
		goto out;
	rc = SPH_ERR_NOMEM;
	d = calloc(1, sizeof(*d));
	if (!d)
		goto out;
	rc = ss_store_deployment_list(s->st, tenant_id, group_id, d, 1, &n);
	if (rc || n == 0)
		goto out;
	memcpy(out->deployment_id, d->id, sizeof(out->deployment_id));
	for (size_t i = 0; i < d->n_images && out->n < SS_TARGET_IMAGES_MAX; i++) {
		rc = ss_store_image_get(s->st, tenant_id, d->image_ids[i], &img);
		if (rc)
			goto out;
		ss_target_set(&out->images[out->n++], &img, false);
	}
out:
	free(d);
	if (rc && out)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- serving packages ---------------------------------------------------------------- */

/* Parses a Range header "bytes=a-b", "bytes=a-" or "bytes=-n" against len.
 * Returns 1 (a satisfiable range in *first..*last), 0 (no usable Range: serve
 * everything, as RFC 9110 allows for a syntax it does not support, e.g.
 * several ranges) or -1 (unsatisfiable: 416). */
static int ss_range_parse(const char *h, size_t len, size_t *first, size_t *last)
{
	const char *p, *dash;
	uint64_t a = 0, b = 0;
	bool has_a, has_b;

	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	p = h + 6;
	dash = strchr(p, '-');
	if (!dash)
		return 0;
	has_a = dash > p;
	has_b = dash[1] != '\0';
	for (const char *q = p; q < dash; q++) {
		if (*q < '0' || *q > '9' || a > (UINT64_MAX - 9) / 10)
			return 0;
		a = a * 10 + (uint64_t)(*q - '0');
	}
	for (const char *q = dash + 1; *q; q++) {
		if (*q < '0' || *q > '9' || b > (UINT64_MAX - 9) / 10)
			return 0;
		b = b * 10 + (uint64_t)(*q - '0');
	}
	if (!has_a && !has_b)
		return 0;
	if (!has_a) { /* the last b bytes */
		if (b == 0 || len == 0)
			return -1;
		*first = b >= len ? 0 : len - (size_t)b;
		*last = len - 1;
		return 1;
	}
	if (has_b && b < a)
		return 0;
	if (a >= len)
		return -1;
	*first = (size_t)a;
	*last = !has_b || b >= len ? len - 1 : (size_t)b;
	return 1;
}

/* Replies with a package, honouring a single-range Range request. */
static void ss_reply_package(struct ss_req *r, const uint8_t *pkg, size_t len)
{
	char cr[SS_RANGE_MAX];
	size_t first = 0, last = 0;
	int k = ss_range_parse(ss_req_header(r, "Range"), len, &first, &last);

	(void)ss_reply_header(r, "Accept-Ranges", "bytes");
	if (k < 0) {
		snprintf(cr, sizeof(cr), "bytes */%zu", len);
		(void)ss_reply_header(r, "Content-Range", cr);
		ss_reply_error(r, 416, "range_not_satisfiable", "the package is %zu bytes", len);
		return;
	}
	if (k == 0) {
		ss_reply_raw(r, 200, "application/octet-stream", pkg, len);
		return;
	}
	snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", first, last, len);
	(void)ss_reply_header(r, "Content-Range", cr);
	ss_reply_raw(r, 206, "application/octet-stream", pkg + first, last - first + 1);
}

/* ---- tenant images ---------------------------------------------------------------------- */

static void ss_h_image_root(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	X509 *root = NULL;
	BIO *b = NULL;
	char *pem = NULL;
	long n;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	rc = ss_tenant_signer(s, t.id, &root, NULL, NULL);
	if (rc == 0) {
		rc = SPH_ERR_CRYPTO;
		b = BIO_new(BIO_s_mem());
		if (b && PEM_write_bio_X509(b, root) == 1) {
			n = BIO_get_mem_data(b, &pem);
			if (n > 0) {
				ss_reply_raw(r, 200, "application/x-pem-file", pem, (size_t)n);
				rc = 0;
			}
		}
	}
	if (rc)
		ss_api_reply_store(r, rc, "tenant image root");
	BIO_free(b);
	X509_free(root);
	ERR_clear_error();
}

/* The body must be a package upload. */
static bool ss_img_body(struct ss_req *r, const uint8_t **body, size_t *len)
{
	const char *ct = ss_req_header(r, "Content-Type");

	ss_req_body(r, body, len);
	if (!ct || strncmp(ct, "application/octet-stream", 24) != 0 ||
	    (ct[24] != '\0' && ct[24] != ';')) {
		ss_reply_error(r, 400, "bad_request",
		               "Content-Type: application/octet-stream (an image package)");
		return false;
	}
	if (*len == 0) {
		ss_reply_error(r, 400, "bad_request", "body: an image package is required");
		return false;
	}
	return true;
}

/* The manifest fields of a verified package into a store record. */
static void ss_img_record(const struct img_package *p, const uint8_t *pkg, size_t len,
                          const char *tenant_id, struct ss_image *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->tenant_id, sizeof(out->tenant_id), "%s", tenant_id);
	ss_img_uuid(p->manifest.component_id, out->component_id);
	out->type = p->manifest.type;
	snprintf(out->name, sizeof(out->name), "%s", p->manifest.name);
	snprintf(out->version, sizeof(out->version), "%s", p->manifest.version);
	out->security_version = p->manifest.security_version;
	out->payload_size = p->manifest.payload_size;
	memcpy(out->payload_sha256, p->manifest.payload_sha256, 32);
	out->package_size = len;
	SHA256(pkg, len, out->package_sha256);
}

/* Checks the uploaded package's COSE signature with its own leaf key. */
static int ss_img_self_signed_ok(const struct img_package *p)
{
	X509 *leaf = p->n_certs ? ss_img_x509(p->certs[0].der, p->certs[0].len) : NULL;
	EVP_PKEY *pub = leaf ? X509_get0_pubkey(leaf) : NULL;
	int rc = SPH_ERR_MALFORMED;

	if (pub)
		rc = cose_sign1_verify(p->cose, p->cose_len, NULL, 0, pub, NULL);
	X509_free(leaf);
	ERR_clear_error();
	return rc;
}

static void ss_h_images_add(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	struct img_package *in = NULL, *chk = NULL;
	struct img_trust trust;
	struct ss_image rec, img;
	STACK_OF(X509) *extra = NULL;
	X509 *root = NULL, *leaf = NULL;
	EVP_PKEY *key = NULL;
	const uint8_t *body;
	uint8_t *signed_pkg = NULL;
	size_t len = 0, signed_len = 0;
	char why[SS_IMG_WHY_MAX] = "";
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role) || !ss_img_body(r, &body, &len))
		return;
	in = calloc(1, sizeof(*in));
	chk = calloc(1, sizeof(*chk));
	if (!in || !chk) {
		ss_api_reply_store(r, SPH_ERR_NOMEM, "image");
		goto out;
	}
	rc = img_parse(body, len, in);
	if (rc == 0)
		rc = ss_img_self_signed_ok(in);
	if (rc) {
		ss_reply_error(r, 400, "bad_request", "package: %s", sph_strerror(rc));
		goto out;
	}
	if (in->manifest.type != IMG_TYPE_APP && in->manifest.type != IMG_TYPE_RTAPP) {
		const char *tn = img_type_name(in->manifest.type);
		ss_reply_error(r, 400, "bad_request",
		               "component type %s: a tenant uploads application or "
		               "realtime-application images only",
		               tn ? tn : "unknown");
		goto out;
	}
	/* Re-sign the same manifest and payload with the tenant's production key. */
	rc = ss_tenant_signer(s, t.id, &root, &leaf, &key);
	if (rc) {
		ss_api_reply_store(r, rc, "tenant image signer");
		goto out;
	}
	rc = SPH_ERR_NOMEM;
	extra = sk_X509_new_null();
	if (extra && sk_X509_push(extra, root) > 0)
		rc = img_pack(&in->manifest, in->payload, in->payload_len, key, leaf, extra,
		              &signed_pkg, &signed_len);
	if (rc) {
		/* The uploaded manifest was accepted by img_parse, so this is ours. */
		ss_api_reply_store(r, rc, "image signing");
		goto out;
	}
	memset(&trust, 0, sizeof(trust));
	trust.root_cert = root;
	trust.time_policy = IMG_TIME_NOW;
	trust.target = in->manifest.target;
	rc = img_verify(signed_pkg, signed_len, &trust, chk, why, sizeof(why));
	if (rc == 0 && chk->role != IMG_ROLE_TENANT_APP)
		rc = SPH_ERR_PERMISSION;
	if (rc) {
		sph_log(SPH_LOG_ERROR, "ss", "image_resign_unverified", "tenant=%s status=%d", t.id,
		        rc);
		ss_api_reply_store(r, rc, "image signing");
		goto out;
	}
	ss_img_record(chk, signed_pkg, signed_len, t.id, &rec);
	rc = ss_store_image_add(s->st, &rec, signed_pkg, signed_len, u.id, &img);
	if (rc == 0)
		ss_reply_json(r, 201, ss_image_json(&img));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict", "the tenant has component %s version %s already",
		               rec.component_id, rec.version);
	else
		ss_api_reply_store(r, rc, "image");
out:
	sk_X509_free(extra); /* root is freed below, not by the stack */
	X509_free(root);
	X509_free(leaf);
	EVP_PKEY_free(key);
	free(signed_pkg);
	free(in);
	free(chk);
}

/* Lists tenant_id's ("" : OS) images as {"images": [...], "next"}. */
static void ss_img_list_reply(struct ss_service *s, struct ss_req *r, const char *tenant_id)
{
	const char *after = ss_req_query(r, "after");
	struct ss_image *is = NULL;
	size_t limit, n = 0;
	json_t *a;
	int rc;

	if (!ss_api_limit(r, &limit))
		return;
	is = calloc(limit, sizeof(*is));
	a = json_array();
	rc = is && a ? ss_store_image_list(s->st, tenant_id, after ? after : "", is, limit, &n)
	             : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (json_array_append_new(a, ss_image_json(&is[i])) != 0)
			rc = SPH_ERR_NOMEM;
	if (rc == 0) {
		ss_reply_json(r, 200,
		              json_pack("{s:o, s:s?}", "images", a, "next",
		                        n == limit && n > 0 ? is[n - 1].id : NULL));
	} else {
		json_decref(a);
		if (rc == SPH_ERR_INVALID_ARG)
			ss_reply_error(r, 400, "bad_request", "after: an image id");
		else
			ss_api_reply_store(r, rc, "images");
	}
	free(is);
}

static void ss_h_images_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;

	if (ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		ss_img_list_reply(s, r, t.id);
}

static void ss_h_image_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_image img;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	rc = ss_img_path_rc(ss_store_image_get(s->st, t.id, ss_req_param(r, "image"), &img));
	if (rc == 0)
		ss_reply_json(r, 200, ss_image_json(&img));
	else
		ss_api_reply_store(r, rc, "image");
}

/* A device fetching its update (docs/api.md §4.13 "Downloads by devices"): a
 * request with no Authorization header whose TLS client key is a device
 * that is registered and held by a tenant. *is_device says whether the
 * request takes this path at all (else the token path decides). For a
 * tenant's image (tenant_id non-NULL: the path's tenant) the device must be
 * that tenant's; another's is 404, as for a user without a role there.
 * Replies (403, 404, 500) and returns false on refusal. */
static bool ss_img_device(struct ss_service *s, struct ss_req *r, const char *tenant_id,
                          bool *is_device)
{
	uint8_t pub[64];
	char id[SS_DEVICE_ID_LEN + 1];
	struct ss_registration reg;
	struct ss_device dev;
	int rc;

	*is_device = !ss_req_header(r, "Authorization") && ss_req_peer_key(r, pub) == 0 &&
	             sph_hex_encode(pub, sizeof(pub), id, sizeof(id)) == 0;
	if (!*is_device)
		return false;
	rc = ss_store_registration_get(s->st, id, &reg);
	if (rc == 0)
		rc = ss_store_device_find(s->st, id, &dev);
	if (rc == SPH_ERR_NOT_FOUND) {
		ss_reply_error(r, 403, "forbidden", "the device is not registered and claimed");
		return false;
	}
	if (rc) {
		ss_api_reply_store(r, rc, "device");
		return false;
	}
	if (tenant_id && strcmp(tenant_id, dev.tenant_id) != 0) {
		ss_reply_error(r, 404, "not_found", "image not found");
		return false;
	}
	return true;
}

static void ss_img_package_reply(struct ss_service *s, struct ss_req *r, const char *tenant_id)
{
	uint8_t *pkg = NULL;
	size_t len = 0;
	int rc = ss_img_path_rc(
	        ss_store_image_package(s->st, tenant_id, ss_req_param(r, "image"), &pkg, &len));

	if (rc == 0)
		ss_reply_package(r, pkg, len);
	else
		ss_api_reply_store(r, rc, "image");
	free(pkg);
}

static void ss_h_image_package(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	enum ss_role role;
	const char *tenant = ss_req_param(r, "tenant");
	bool device = false;

	if (ss_img_device(s, r, tenant ? tenant : "", &device))
		ss_img_package_reply(s, r, tenant);
	else if (!device && ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		ss_img_package_reply(s, r, t.id);
}

/* ---- OS images and feeds ------------------------------------------------------------------ */

static bool ss_img_operator(struct ss_req *r, const struct ss_user *u)
{
	if (!u->is_operator) {
		ss_reply_error(r, 403, "forbidden", "the platform operator's token is required");
		return false;
	}
	return true;
}

static void ss_h_os_images_add(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct img_package *p = NULL;
	struct img_trust trust;
	struct ss_image rec, img;
	const uint8_t *body;
	size_t len = 0;
	char why[SS_IMG_WHY_MAX] = "", target[IMG_TARGET_MAX + 1] = "";
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL) || !ss_img_operator(r, &u) ||
	    !ss_img_body(r, &body, &len))
		return;
	if (!s->platform_root) {
		ss_reply_error(r, 409, "conflict",
		               "no platform root is configured (platform-root option)");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		ss_api_reply_store(r, SPH_ERR_NOMEM, "OS image");
		return;
	}
	memset(&trust, 0, sizeof(trust));
	trust.root_cert = s->platform_root;
	trust.time_policy = IMG_TIME_NOW;
	/* Any target the platform signed for (img_verify zeroes p first). */
	rc = img_parse(body, len, p);
	if (rc == 0) {
		snprintf(target, sizeof(target), "%s", p->manifest.target);
		trust.target = target;
	}
	if (rc == 0)
		rc = img_verify(body, len, &trust, p, why, sizeof(why));
	if (rc == 0 && (p->role != IMG_ROLE_PLATFORM_OS || p->manifest.type < IMG_TYPE_BOOTLOADER ||
	                p->manifest.type > IMG_TYPE_OS)) {
		rc = SPH_ERR_PERMISSION;
		snprintf(why, sizeof(why), "not a platform-signed OS component");
	}
	if (rc) {
		ss_reply_error(r, 400, "bad_request", "package: %s%s%s", sph_strerror(rc),
		               why[0] ? ": " : "", why);
		goto out;
	}
	ss_img_record(p, body, len, "", &rec);
	rc = ss_store_image_add(s->st, &rec, body, len, u.id, &img);
	if (rc == 0)
		ss_reply_json(r, 201, ss_image_json(&img));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict", "OS component %s version %s exists already",
		               rec.component_id, rec.version);
	else
		ss_api_reply_store(r, rc, "OS image");
out:
	free(p);
}

static void ss_h_os_images_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;

	if (ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		ss_img_list_reply(s, r, "");
}

static void ss_h_os_image_get(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_image img;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		return;
	rc = ss_img_path_rc(ss_store_image_get(s->st, "", ss_req_param(r, "image"), &img));
	if (rc == 0)
		ss_reply_json(r, 200, ss_image_json(&img));
	else
		ss_api_reply_store(r, rc, "OS image");
}

static void ss_h_os_image_package(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	bool device = false;

	if (ss_img_device(s, r, NULL, &device))
		ss_img_package_reply(s, r, "");
	else if (!device && ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL))
		ss_img_package_reply(s, r, "");
}

/* The path's {feed}: Retail or RetailEval, else a 404. */
static bool ss_img_feed(struct ss_req *r, enum ss_os_feed *feed)
{
	*feed = ss_os_feed_from_name(ss_req_param(r, "feed"));
	if (*feed == SS_FEED_NONE) {
		ss_reply_error(r, 404, "not_found", "OS feed not found (Retail or RetailEval)");
		return false;
	}
	return true;
}

static void ss_h_release_add(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_os_release rel;
	struct ss_image img;
	enum ss_os_feed feed;
	const char *key, *id;
	json_t *body, *v;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL) || !ss_img_operator(r, &u) ||
	    !ss_img_feed(r, &feed))
		return;
	body = ss_api_body(r);
	if (!body)
		return;
	json_object_foreach(body, key, v)
	{
		if (strcmp(key, "image_id") != 0) {
			ss_reply_error(r, 400, "bad_request", "\"%.64s\": unknown field", key);
			goto out;
		}
	}
	id = ss_api_body_str(r, body, "image_id");
	if (!id)
		goto out;
	if (!ss_img_uuid_ok(id)) {
		ss_reply_error(r, 400, "bad_request", "\"image_id\": an OS image id");
		goto out;
	}
	rc = ss_store_os_release_add(s->st, feed, id, u.id, &rel);
	if (rc == 0)
		rc = ss_store_image_get(s->st, "", id, &img);
	if (rc == 0)
		ss_reply_json(r, 201, ss_release_json(&rel, &img));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 409, "conflict", "the image is in the %s feed already",
		               ss_os_feed_name(feed));
	else
		ss_api_reply_store(r, rc, "OS image");
out:
	json_decref(body);
}

static void ss_h_release_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_os_release *rs = NULL;
	struct ss_image img;
	enum ss_os_feed feed;
	size_t limit, n = 0;
	json_t *a;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_NONE, &u, NULL, NULL) || !ss_img_feed(r, &feed) ||
	    !ss_api_limit(r, &limit))
		return;
	rs = calloc(limit, sizeof(*rs));
	a = json_array();
	rc = rs && a ? ss_store_os_release_list(s->st, feed, rs, limit, &n) : SPH_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = ss_store_image_get(s->st, "", rs[i].image_id, &img);
		if (rc == 0 && json_array_append_new(a, ss_release_json(&rs[i], &img)) != 0)
			rc = SPH_ERR_NOMEM;
	}
	if (rc == 0) {
		ss_reply_json(
		        r, 200,
		        json_pack("{s:s, s:o}", "feed", ss_os_feed_name(feed), "releases", a));
	} else {
		json_decref(a);
		ss_api_reply_store(r, rc, "OS releases");
	}
	free(rs);
}

/* ---- deployments and the group's target ----------------------------------------------------- */

static void ss_h_deploy_create(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_group g;
	struct ss_deployment d;
	enum ss_role role;
	const char *ids[SS_DEPLOY_IMAGES_MAX];
	const char *key;
	json_t *body, *v, *arr;
	size_t n;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_CONTRIBUTOR, &u, &t, &role))
		return;
	/* The group first: a foreign or malformed one is 404 whatever the body. */
	rc = ss_img_path_rc(ss_store_group_get(s->st, t.id, ss_req_param(r, "group"), &g));
	if (rc) {
		ss_api_reply_store(r, rc, "device group");
		return;
	}
	body = ss_api_body(r);
	if (!body)
		return;
	json_object_foreach(body, key, v)
	{
		if (strcmp(key, "image_ids") != 0) {
			ss_reply_error(r, 400, "bad_request", "\"%.64s\": unknown field", key);
			goto out;
		}
	}
	arr = json_object_get(body, "image_ids");
	n = json_array_size(arr);
	if (!json_is_array(arr) || n < 1 || n > SS_DEPLOY_IMAGES_MAX) {
		ss_reply_error(r, 400, "bad_request", "\"image_ids\": an array of 1..%d image ids",
		               SS_DEPLOY_IMAGES_MAX);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = json_string_value(json_array_get(arr, i));
		if (!ss_img_uuid_ok(ids[i])) {
			ss_reply_error(r, 400, "bad_request", "\"image_ids\"[%zu]: an image id", i);
			goto out;
		}
	}
	rc = ss_store_deployment_create(s->st, t.id, g.id, ids, n, u.id, &d);
	if (rc == 0)
		ss_reply_json(r, 201, ss_deployment_json(&d));
	else if (rc == SPH_ERR_DUPLICATE)
		ss_reply_error(r, 400, "bad_request",
		               "\"image_ids\": at most one image per component, each once");
	else
		ss_api_reply_store(r, rc, "device group or image");
out:
	json_decref(body);
}

static void ss_h_deploy_list(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_group g;
	struct ss_deployment *ds = NULL;
	enum ss_role role;
	size_t limit, n = 0;
	json_t *a = NULL;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role) || !ss_api_limit(r, &limit))
		return;
	rc = ss_img_path_rc(ss_store_group_get(s->st, t.id, ss_req_param(r, "group"), &g));
	if (rc == 0) {
		ds = calloc(limit, sizeof(*ds));
		a = json_array();
		rc = ds && a ? ss_store_deployment_list(s->st, t.id, g.id, ds, limit, &n)
		             : SPH_ERR_NOMEM;
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (json_array_append_new(a, ss_deployment_json(&ds[i])) != 0)
			rc = SPH_ERR_NOMEM;
	if (rc == 0) {
		ss_reply_json(r, 200, json_pack("{s:o}", "deployments", a));
		a = NULL;
	} else {
		ss_api_reply_store(r, rc, "device group");
	}
	json_decref(a);
	free(ds);
}

static json_t *ss_target_json(const struct ss_target *tg)
{
	json_t *a = json_array(), *j;

	for (size_t i = 0; a && i < tg->n; i++) {
		const struct ss_target_image *e = &tg->images[i];
		char cid[SS_UUID_LEN + 1], ph[65] = "", kh[65] = "";
		const char *type = img_type_name(e->type);
		ss_img_uuid(e->component_id, cid);
		(void)ss_img_hex(e->payload_sha256, 32, ph, sizeof(ph));
		(void)ss_img_hex(e->package_sha256, 32, kh, sizeof(kh));
		json_array_append_new(a,
		                      json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:b}",
		                                "image_id", e->image_id, "component_id", cid,
		                                "type", type ? type : "unknown", "version",
		                                e->version, "security_version",
		                                (json_int_t)e->security_version, "payload_sha256",
		                                ph, "package_size", (json_int_t)e->package_size,
		                                "package_sha256", kh, "os", e->is_os));
	}
	j = json_pack("{s:s, s:s, s:s, s:s?, s:o}", "group_id", tg->group_id, "os_feed",
	              ss_os_feed_name(tg->os_feed), "update_policy",
	              ss_update_policy_name(tg->update_policy), "deployment_id",
	              tg->deployment_id[0] ? tg->deployment_id : NULL, "images",
	              a ? a : json_array());
	return j;
}

static void ss_h_target(struct ss_req *r, void *arg)
{
	struct ss_service *s = arg;
	struct ss_user u;
	struct ss_tenant t;
	struct ss_target *tg = NULL;
	enum ss_role role;
	int rc;

	if (!ss_api_enter(s, r, SS_ROLE_READER, &u, &t, &role))
		return;
	tg = calloc(1, sizeof(*tg));
	rc = tg ? ss_img_path_rc(ss_group_target(s, t.id, ss_req_param(r, "group"), tg))
	        : SPH_ERR_NOMEM;
	if (rc == 0)
		ss_reply_json(r, 200, ss_target_json(tg));
	else
		ss_api_reply_store(r, rc, "device group");
	free(tg);
}

int ss_api_images_routes(struct ss_service *s)
{
	static const struct {
		const char *method, *pattern;
		ss_handler fn;
	} routes[] = {
	        {"GET", "/v1/tenants/{tenant}/image-root", ss_h_image_root},
	        {"POST", "/v1/tenants/{tenant}/images", ss_h_images_add},
	        {"GET", "/v1/tenants/{tenant}/images", ss_h_images_list},
	        {"GET", "/v1/tenants/{tenant}/images/{image}", ss_h_image_get},
	        {"GET", "/v1/tenants/{tenant}/images/{image}/package", ss_h_image_package},
	        {"POST", "/v1/os-images", ss_h_os_images_add},
	        {"GET", "/v1/os-images", ss_h_os_images_list},
	        {"GET", "/v1/os-images/{image}", ss_h_os_image_get},
	        {"GET", "/v1/os-images/{image}/package", ss_h_os_image_package},
	        {"POST", "/v1/os-feeds/{feed}/releases", ss_h_release_add},
	        {"GET", "/v1/os-feeds/{feed}/releases", ss_h_release_list},
	        {"POST", "/v1/tenants/{tenant}/device-groups/{group}/deployments",
	         ss_h_deploy_create},
	        {"GET", "/v1/tenants/{tenant}/device-groups/{group}/deployments", ss_h_deploy_list},
	        {"GET", "/v1/tenants/{tenant}/device-groups/{group}/target", ss_h_target},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = ss_http_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn,
		                       s);
		if (rc != 0)
			return rc;
	}
	return 0;
}
