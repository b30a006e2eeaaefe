/*
 * The image catalogue, OS feeds and deployments (docs/api-images.md) end to
 * end: a real sphere-ss over real TLS, driven with libcurl, fed real packages
 * built here with img_cert_make and img_pack. Uploads are checked and
 * re-signed with the tenant's production key (the result verifies against the
 * tenant image root the service publishes, not against the uploader's root);
 * tampered, foreign and wrongly-typed packages are refused; OS images must
 * chain to the platform root and only the operator publishes them; packages
 * download in resumable ranges; and the group's target follows the feed and
 * the update policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "image/image.h"
#include "service/ss_internal.h"
#include "testutil.h"

struct keypair {
	EVP_PKEY *key;
	X509 *cert;
};

static struct {
	char *tmp;
	char data[600];
	struct ss_config cfg;
	struct ss_init_result init;
	struct ss_service *svc;
	uint16_t port;
	char ca[700];
	struct keypair proot, psigner;  /* the platform root the service trusts, its OS signer */
	struct keypair rogue, rsigner;  /* another "platform" root and its signer */
	struct keypair droot, dsigner;  /* the uploader's own tenant root and signer */
	char ta[64];                    /* tenant A (acme) */
	char contrib[SS_TOKEN_LEN + 1]; /* a Contributor of A */
	char reader[SS_TOKEN_LEN + 1];  /* a Reader of A */
	char tb[64], bob[SS_TOKEN_LEN + 1]; /* tenant B and its Administrator */
} fx;

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	char *q = realloc(b->p, b->n + sz * n + 1);
	assert_non_null(q);
	memcpy(q + b->n, d, sz * n);
	b->n += sz * n;
	q[b->n] = '\0';
	b->p = q;
	return sz * n;
}

/* One request. body/body_len with ctype (NULL: JSON); range: a Range value or
 * NULL. Returns the status; *out the reply bytes (caller frees); crange the
 * Content-Range header ("" if none). */
static long req_full(const char *method, const char *path, const char *token, const void *body,
                     size_t body_len, const char *ctype, const char *range, struct buf *out,
                     char *crange, size_t crange_cap)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct curl_header *hd = NULL;
	char url[512], auth[128], hv[160];
	long status = 0;

	assert_non_null(c);
	out->p = NULL;
	out->n = 0;
	if (crange)
		crange[0] = '\0';
	snprintf(url, sizeof(url), "https://localhost:%u%s", (unsigned)fx.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, fx.ca);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (range) {
		snprintf(hv, sizeof(hv), "Range: %s", range);
		h = curl_slist_append(h, hv);
	}
	if (body) {
		snprintf(hv, sizeof(hv), "Content-Type: %s", ctype ? ctype : "application/json");
		h = curl_slist_append(h, hv);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (crange &&
		    curl_easy_header(c, "Content-Range", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK)
			snprintf(crange, crange_cap, "%s", hd->value);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static long req(const char *method, const char *path, const char *token, const char *body,
                json_t **out)
{
	struct buf b;
	long st = req_full(method, path, token, body, body ? strlen(body) : 0, NULL, NULL, &b, NULL,
	                   0);

	if (out)
		*out = b.p && b.n ? json_loadb(b.p, b.n, 0, NULL) : NULL;
	free(b.p);
	return st;
}

static void expect(long status, const char *method, const char *path, const char *token,
                   const char *body)
{
	json_t *j = NULL;
	long got = req(method, path, token, body, &j);

	if (got != status)
		fail_msg("%s %s: status %ld, want %ld (%s)", method, path, got, status,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	json_decref(j);
}

static const char *jstr(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	if (!v)
		fail_msg("no string \"%s\"", key);
	return v;
}

/* Uploads a package; returns the status, *out the reply. */
static long upload(const char *path, const char *token, const uint8_t *pkg, size_t len,
                   json_t **out)
{
	struct buf b;
	long st = req_full("POST", path, token, pkg, len, "application/octet-stream", NULL, &b,
	                   NULL, 0);

	if (out)
		*out = b.p && b.n ? json_loadb(b.p, b.n, 0, NULL) : NULL;
	free(b.p);
	return st;
}

/* Uploads and wants 201; the new image's id into id. */
static void upload_ok(const char *path, const char *token, const uint8_t *pkg, size_t len,
                      char id[64])
{
	json_t *j = NULL;
	long st = upload(path, token, pkg, len, &j);

	if (st != 201)
		fail_msg("upload %s: %ld (%s)", path, st,
		         j ? json_string_value(json_object_get(j, "reason")) : "");
	snprintf(id, 64, "%s", jstr(j, "id"));
	json_decref(j);
}

static void make_kp(enum img_cert_kind kind, const struct keypair *issuer, struct keypair *out)
{
	struct img_cert_params p;

	memset(&p, 0, sizeof(p));
	p.kind = kind;
	if (issuer) {
		p.issuer_key = issuer->key;
		p.issuer_cert = issuer->cert;
	}
	assert_int_equal(img_cert_make(&p, &out->key, &out->cert), 0);
}

static void free_kp(struct keypair *k)
{
	EVP_PKEY_free(k->key);
	X509_free(k->cert);
	memset(k, 0, sizeof(*k));
}

/* A package: component id from seed, type, version, security version,
 * signed by signer with its issuer (root) in the chain. Caller frees. */
static uint8_t *make_pkg(unsigned seed, uint32_t type, const char *version, uint32_t svn,
                         const struct keypair *signer, const struct keypair *root, size_t *len)
{
	static const char app_manifest[] = "{\"Name\":\"app\"}";
	struct img_manifest m;
	STACK_OF(X509) *extra = sk_X509_new_null();
	uint8_t payload[300], *out = NULL;

	assert_non_null(extra);
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < 16; i++)
		m.component_id[i] = (uint8_t)(seed * 31u + (unsigned)i + 1u);
	m.component_id[6] = (uint8_t)((m.component_id[6] & 0x0f) | 0x40);
	m.component_id[8] = (uint8_t)((m.component_id[8] & 0x3f) | 0x80);
	m.type = type;
	snprintf(m.name, sizeof(m.name), "component-%u", seed);
	snprintf(m.version, sizeof(m.version), "%s", version);
	m.security_version = svn;
	snprintf(m.target, sizeof(m.target), "%s", IMG_TARGET_DEFAULT);
	if (type == IMG_TYPE_APP || type == IMG_TYPE_RTAPP) {
		m.app_manifest = app_manifest;
		m.app_manifest_len = strlen(app_manifest);
	}
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(seed + i * 7u + svn);
	if (root)
		assert_true(sk_X509_push(extra, root->cert) > 0);
	assert_int_equal(
	        img_pack(&m, payload, sizeof(payload), signer->key, signer->cert, extra, &out, len),
	        0);
	sk_X509_free(extra);
	return out;
}

static int setup(void **state)
{
	char path[800];
	FILE *f;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fx.tmp = tu_mkdtemp();
	snprintf(fx.data, sizeof(fx.data), "%s/ss", fx.tmp);
	ss_config_defaults(&fx.cfg);
	assert_int_equal(ss_config_set(&fx.cfg, "data-dir", fx.data, NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "port", "0", NULL, 0), 0);
	assert_int_equal(ss_config_set(&fx.cfg, "workers", "2", NULL, 0), 0);
	assert_int_equal(ss_init(&fx.cfg, "acme", "alice", &fx.init), 0);
	snprintf(fx.ca, sizeof(fx.ca), "%s/tls/server.pem", fx.data);
	make_kp(IMG_CERT_PLATFORM_ROOT, NULL, &fx.proot);
	make_kp(IMG_CERT_PLATFORM_SIGNER, &fx.proot, &fx.psigner);
	make_kp(IMG_CERT_PLATFORM_ROOT, NULL, &fx.rogue);
	make_kp(IMG_CERT_PLATFORM_SIGNER, &fx.rogue, &fx.rsigner);
	make_kp(IMG_CERT_TENANT_ROOT, NULL, &fx.droot);
	make_kp(IMG_CERT_TENANT_SIGNER, &fx.droot, &fx.dsigner);
	/* The default platform root: <data-dir>/platform-root.pem. */
	snprintf(path, sizeof(path), "%s/platform-root.pem", fx.data);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, fx.proot.cert), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ss_service_start(&fx.cfg, &fx.svc), 0);
	fx.port = ss_service_port(fx.svc);
	snprintf(fx.ta, sizeof(fx.ta), "%s", fx.init.tenant.id);
	{
		char p[200];
		json_t *j = NULL;
		snprintf(p, sizeof(p), "/v1/tenants/%s/users", fx.ta);
		assert_int_equal(req("POST", p, fx.init.admin_token,
		                     "{\"name\":\"cora\",\"role\":\"Contributor\"}", &j),
		                 201);
		snprintf(fx.contrib, sizeof(fx.contrib), "%s", jstr(j, "token"));
		json_decref(j);
		assert_int_equal(req("POST", p, fx.init.admin_token,
		                     "{\"name\":\"ravi\",\"role\":\"Reader\"}", &j),
		                 201);
		snprintf(fx.reader, sizeof(fx.reader), "%s", jstr(j, "token"));
		json_decref(j);
		assert_int_equal(
		        req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
		        201);
		snprintf(fx.tb, sizeof(fx.tb), "%s", jstr(j, "id"));
		json_decref(j);
		snprintf(p, sizeof(p), "/v1/tenants/%s/users", fx.tb);
		assert_int_equal(req("POST", p, fx.init.admin_token,
		                     "{\"name\":\"bob\",\"role\":\"Administrator\"}", &j),
		                 201);
		snprintf(fx.bob, sizeof(fx.bob), "%s", jstr(j, "token"));
		json_decref(j);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ss_service_free(fx.svc);
	free_kp(&fx.proot);
	free_kp(&fx.psigner);
	free_kp(&fx.rogue);
	free_kp(&fx.rsigner);
	free_kp(&fx.droot);
	free_kp(&fx.dsigner);
	tu_rmtree(fx.tmp);
	free(fx.tmp);
	curl_global_cleanup();
	return 0;
}

/* GET path fully (status 200), into *out (caller frees). */
static void get_all(const char *path, const char *token, struct buf *out)
{
	long st = req_full("GET", path, token, NULL, 0, NULL, NULL, out, NULL, 0);

	if (st != 200)
		fail_msg("GET %s: %ld", path, st);
}

/* The tenant's image root, from GET image-root. */
static X509 *tenant_root(const char *tenant, const char *token)
{
	char path[200];
	struct buf b;
	BIO *bio;
	X509 *x;

	snprintf(path, sizeof(path), "/v1/tenants/%s/image-root", tenant);
	get_all(path, token, &b);
	bio = BIO_new_mem_buf(b.p, (int)b.n);
	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	BIO_free(bio);
	free(b.p);
	return x;
}

static void test_upload_resign_download(void **state)
{
	char path[300], pkgpath[400], id[64], crange[128];
	uint8_t *pkg, *bad;
	size_t len = 0;
	struct buf full, a, b;
	struct img_trust trust;
	struct img_package *vp = calloc(1, sizeof(*vp));
	X509 *root;
	json_t *j = NULL;
	long st;

	(void)state;
	assert_non_null(vp);
	snprintf(path, sizeof(path), "/v1/tenants/%s/images", fx.ta);
	pkg = make_pkg(1, IMG_TYPE_APP, "1.0.0", 1, &fx.dsigner, &fx.droot, &len);

	/* A Reader may not upload; no token is 401; a JSON body is refused. */
	assert_int_equal(upload(path, fx.reader, pkg, len, NULL), 403);
	assert_int_equal(upload(path, NULL, pkg, len, NULL), 401);
	expect(400, "POST", path, fx.contrib, "{}");

	/* A tampered payload byte, a tampered signature byte, a truncation: 400. */
	bad = malloc(len);
	assert_non_null(bad);
	memcpy(bad, pkg, len);
	bad[len - 1] ^= 0x01;
	assert_int_equal(upload(path, fx.contrib, bad, len, NULL), 400);
	memcpy(bad, pkg, len);
	{
		uint32_t cose_len = (uint32_t)pkg[8] | (uint32_t)pkg[9] << 8 |
		                    (uint32_t)pkg[10] << 16 | (uint32_t)pkg[11] << 24;
		bad[IMG_HEADER_LEN + cose_len - 5] ^= 0x40; /* inside r || s */
	}
	assert_int_equal(upload(path, fx.contrib, bad, len, NULL), 400);
	assert_int_equal(upload(path, fx.contrib, pkg, len - 1, NULL), 400);
	free(bad);

	/* An OS package is no tenant image. */
	{
		size_t olen = 0;
		uint8_t *os = make_pkg(2, IMG_TYPE_OS, "22.1", 1, &fx.psigner, &fx.proot, &olen);
		assert_int_equal(upload(path, fx.contrib, os, olen, &j), 400);
		assert_non_null(strstr(jstr(j, "reason"), "os"));
		json_decref(j);
		free(os);
	}

	/* The Contributor uploads; the same component and version again is 409. */
	assert_int_equal(upload(path, fx.contrib, pkg, len, &j), 201);
	snprintf(id, sizeof(id), "%s", jstr(j, "id"));
	assert_string_equal(jstr(j, "type"), "application");
	assert_string_equal(jstr(j, "version"), "1.0.0");
	assert_int_equal(json_integer_value(json_object_get(j, "security_version")), 1);
	assert_string_equal(jstr(j, "tenant_id"), fx.ta);
	json_decref(j);
	assert_int_equal(upload(path, fx.contrib, pkg, len, NULL), 409);

	/* Listed and shown to a Reader. */
	assert_int_equal(req("GET", path, fx.reader, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "images")), 1);
	json_decref(j);
	snprintf(pkgpath, sizeof(pkgpath), "%s/%s", path, id);
	assert_int_equal(req("GET", pkgpath, fx.reader, NULL, &j), 200);
	assert_string_equal(jstr(j, "name"), "component-1");
	json_decref(j);

	/* The stored package is re-signed: it verifies against the tenant image root
	 * the service publishes, and not against the uploader's own root. */
	snprintf(pkgpath, sizeof(pkgpath), "%s/%s/package", path, id);
	get_all(pkgpath, fx.reader, &full);
	assert_true(full.n > 0);
	assert_true(full.n != len || memcmp(full.p, pkg, len) != 0);
	root = tenant_root(fx.ta, fx.reader);
	memset(&trust, 0, sizeof(trust));
	trust.root_cert = root;
	assert_int_equal(img_verify((const uint8_t *)full.p, full.n, &trust, vp, NULL, 0), 0);
	assert_int_equal(vp->role, IMG_ROLE_TENANT_APP);
	assert_int_equal(vp->manifest.security_version, 1);
	assert_int_equal(memcmp(vp->payload, pkg + len - 300, 300), 0);
	trust.root_cert = fx.droot.cert;
	assert_int_equal(img_verify((const uint8_t *)full.p, full.n, &trust, NULL, NULL, 0),
	                 SPH_ERR_AUTH);
	/* A device holding only the root hash accepts it too. */
	{
		uint8_t h[IMG_DIGEST_LEN];
		assert_int_equal(img_root_hash(root, h), 0);
		memset(&trust, 0, sizeof(trust));
		trust.root_hash = h;
		trust.time_policy = IMG_TIME_NONE;
		assert_int_equal(img_verify((const uint8_t *)full.p, full.n, &trust, NULL, NULL, 0),
		                 0);
	}
	/* The root stays the same across requests. */
	{
		X509 *again = tenant_root(fx.ta, fx.contrib);
		assert_int_equal(X509_cmp(root, again), 0);
		X509_free(again);
	}
	X509_free(root);

	/* Range: two ranges resume into the whole package. */
	st = req_full("GET", pkgpath, fx.reader, NULL, 0, NULL, "bytes=0-99", &a, crange,
	              sizeof(crange));
	assert_int_equal(st, 206);
	assert_int_equal(a.n, 100);
	{
		char want[128];
		snprintf(want, sizeof(want), "bytes 0-99/%zu", full.n);
		assert_string_equal(crange, want);
	}
	st = req_full("GET", pkgpath, fx.reader, NULL, 0, NULL, "bytes=100-", &b, crange,
	              sizeof(crange));
	assert_int_equal(st, 206);
	assert_int_equal(a.n + b.n, full.n);
	assert_memory_equal(a.p, full.p, 100);
	assert_memory_equal(b.p, full.p + 100, b.n);
	free(a.p);
	free(b.p);
	/* A suffix range; an unsatisfiable one; an unsupported multi-range (all). */
	st = req_full("GET", pkgpath, fx.reader, NULL, 0, NULL, "bytes=-10", &a, NULL, 0);
	assert_int_equal(st, 206);
	assert_int_equal(a.n, 10);
	assert_memory_equal(a.p, full.p + full.n - 10, 10);
	free(a.p);
	{
		char r[64];
		snprintf(r, sizeof(r), "bytes=%zu-", full.n);
		st = req_full("GET", pkgpath, fx.reader, NULL, 0, NULL, r, &a, crange,
		              sizeof(crange));
		assert_int_equal(st, 416);
		free(a.p);
	}
	st = req_full("GET", pkgpath, fx.reader, NULL, 0, NULL, "bytes=0-1,5-6", &a, NULL, 0);
	assert_int_equal(st, 200);
	assert_int_equal(a.n, full.n);
	free(a.p);
	free(full.p);

	/* A real-time application is accepted too, under its own component. */
	{
		size_t rlen = 0;
		uint8_t *rt = make_pkg(3, IMG_TYPE_RTAPP, "0.1", 0, &fx.dsigner, &fx.droot, &rlen);
		upload_ok(path, fx.contrib, rt, rlen, id);
		free(rt);
	}
	free(pkg);
	free(vp);
}

/* A product and one group in tenant via token; the group's id into gid. */
static void make_group(const char *tenant, const char *token, const char *pname, const char *gbody,
                       char gid[64])
{
	char path[300], body[200], pid[64];
	json_t *j = NULL;

	snprintf(path, sizeof(path), "/v1/tenants/%s/products", tenant);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"default_groups\":false}", pname);
	if (req("POST", path, token, body, &j) != 201)
		fail_msg("product %s", pname);
	snprintf(pid, sizeof(pid), "%s", jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/tenants/%s/products/%s/device-groups", tenant, pid);
	if (req("POST", path, token, gbody, &j) != 201)
		fail_msg("group %s", gbody);
	snprintf(gid, 64, "%s", jstr(j, "id"));
	json_decref(j);
}

static void test_isolation(void **state)
{
	char pa[300], pb[300], p[400], ida[64], idb[64], ga[64], gb[64], body[200];
	uint8_t *pkg;
	size_t len = 0;

	(void)state;
	snprintf(pa, sizeof(pa), "/v1/tenants/%s/images", fx.ta);
	snprintf(pb, sizeof(pb), "/v1/tenants/%s/images", fx.tb);
	pkg = make_pkg(10, IMG_TYPE_APP, "1", 0, &fx.dsigner, &fx.droot, &len);
	upload_ok(pa, fx.contrib, pkg, len, ida);
	/* Tenant B may upload the same component: ids and signers are its own. */
	upload_ok(pb, fx.bob, pkg, len, idb);
	free(pkg);
	make_group(fx.ta, fx.init.admin_token, "Iso A", "{\"name\":\"ga\"}", ga);
	make_group(fx.tb, fx.bob, "Iso B", "{\"name\":\"gb\"}", gb);

	/* Bob through A's path: the tenant is not his (404) ... */
	snprintf(p, sizeof(p), "%s/%s", pa, ida);
	expect(404, "GET", p, fx.bob, NULL);
	expect(404, "GET", pa, fx.bob, NULL);
	snprintf(p, sizeof(p), "%s/%s/package", pa, ida);
	expect(404, "GET", p, fx.bob, NULL);
	/* ... and A's image id through his own path is none of his. */
	snprintf(p, sizeof(p), "%s/%s", pb, ida);
	expect(404, "GET", p, fx.bob, NULL);
	snprintf(p, sizeof(p), "%s/%s/package", pb, ida);
	expect(404, "GET", p, fx.bob, NULL);
	snprintf(p, sizeof(p), "%s/not-a-uuid/package", pb);
	expect(404, "GET", p, fx.bob, NULL);
	/* Deploying A's image to B's group is 404, and so is B's group from A. */
	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/deployments", fx.tb, gb);
	snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\"]}", ida);
	expect(404, "POST", p, fx.bob, body);
	snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\"]}", idb);
	expect(201, "POST", p, fx.bob, body);
	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/deployments", fx.ta, gb);
	expect(404, "POST", p, fx.init.admin_token, body);
	expect(404, "GET", p, fx.init.admin_token, NULL);
	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/target", fx.ta, gb);
	expect(404, "GET", p, fx.init.admin_token, NULL);
	/* Two tenants, two image roots. */
	{
		X509 *ra = tenant_root(fx.ta, fx.reader), *rb = tenant_root(fx.tb, fx.bob);
		assert_int_not_equal(X509_cmp(ra, rb), 0);
		X509_free(ra);
		X509_free(rb);
	}
	(void)ga;
}

static void test_os_images_and_feeds(void **state)
{
	char id[64], p[300], body[200], id2[64];
	uint8_t *pkg;
	size_t len = 0;
	json_t *j = NULL;

	(void)state;
	pkg = make_pkg(20, IMG_TYPE_OS, "23.1", 4, &fx.psigner, &fx.proot, &len);
	/* Tenant users may not upload or publish OS images. */
	assert_int_equal(upload("/v1/os-images", fx.init.admin_token, pkg, len, NULL), 403);
	assert_int_equal(upload("/v1/os-images", fx.contrib, pkg, len, NULL), 403);
	/* Not signed by the platform root: 400. An application: 400. */
	{
		size_t l2 = 0;
		uint8_t *rogue = make_pkg(21, IMG_TYPE_OS, "1", 0, &fx.rsigner, &fx.rogue, &l2);
		assert_int_equal(upload("/v1/os-images", fx.init.operator_token, rogue, l2, NULL),
		                 400);
		free(rogue);
		rogue = make_pkg(22, IMG_TYPE_APP, "1", 0, &fx.dsigner, &fx.droot, &l2);
		assert_int_equal(upload("/v1/os-images", fx.init.operator_token, rogue, l2, NULL),
		                 400);
		free(rogue);
	}
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, id);
	assert_int_equal(upload("/v1/os-images", fx.init.operator_token, pkg, len, NULL), 409);

	/* Publishing: the operator only; RetailEval first, later Retail. */
	snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
	expect(403, "POST", "/v1/os-feeds/RetailEval/releases", fx.init.admin_token, body);
	expect(403, "POST", "/v1/os-feeds/RetailEval/releases", fx.contrib, body);
	expect(404, "POST", "/v1/os-feeds/retail/releases", fx.init.operator_token, body);
	expect(400, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token,
	       "{\"image_id\":\"x\"}");
	expect(400, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token,
	       "{\"image_id\":\"00000000-0000-4000-8000-000000000000\",\"x\":1}");
	expect(404, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token,
	       "{\"image_id\":\"00000000-0000-4000-8000-000000000000\"}");
	expect(201, "POST", "/v1/os-feeds/RetailEval/releases", fx.init.operator_token, body);
	expect(409, "POST", "/v1/os-feeds/RetailEval/releases", fx.init.operator_token, body);
	assert_int_equal(req("GET", "/v1/os-feeds/Retail/releases", fx.reader, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "releases")), 0);
	json_decref(j);
	expect(201, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token, body);
	assert_int_equal(req("GET", "/v1/os-feeds/Retail/releases", fx.bob, NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "releases")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(j, "releases"), 0), "image_id"),
	                    id);
	json_decref(j);
	/* A tenant image is not an OS image. */
	{
		size_t l2 = 0;
		uint8_t *app = make_pkg(23, IMG_TYPE_APP, "1", 0, &fx.dsigner, &fx.droot, &l2);
		snprintf(p, sizeof(p), "/v1/tenants/%s/images", fx.ta);
		upload_ok(p, fx.contrib, app, l2, id2);
		free(app);
		snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id2);
		expect(404, "POST", "/v1/os-feeds/Retail/releases", fx.init.operator_token, body);
		snprintf(p, sizeof(p), "/v1/os-images/%s", id2);
		expect(404, "GET", p, fx.reader, NULL);
	}
	/* Any authenticated user downloads an OS package, in ranges too; unchanged. */
	{
		struct buf b;
		char cr[128];
		snprintf(p, sizeof(p), "/v1/os-images/%s/package", id);
		get_all(p, fx.bob, &b);
		assert_int_equal(b.n, len);
		assert_memory_equal(b.p, pkg, len);
		free(b.p);
		assert_int_equal(req_full("GET", p, fx.reader, NULL, 0, NULL, "bytes=5-9", &b, cr,
		                          sizeof(cr)),
		                 206);
		assert_int_equal(b.n, 5);
		assert_memory_equal(b.p, pkg + 5, 5);
		free(b.p);
		expect(401, "GET", p, NULL, NULL);
	}
	free(pkg);
}

/* The target's images as "type:version" words, in order, into out. */
static void target_words(const char *tenant, const char *gid, const char *token, char *out,
                         size_t cap)
{
	char p[300];
	json_t *j = NULL, *imgs;

	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/target", tenant, gid);
	assert_int_equal(req("GET", p, token, NULL, &j), 200);
	imgs = json_object_get(j, "images");
	out[0] = '\0';
	for (size_t i = 0; i < json_array_size(imgs); i++) {
		json_t *e = json_array_get(imgs, i);
		size_t n = strlen(out);
		snprintf(out + n, cap - n, "%s%s:%s", i ? " " : "", jstr(e, "type"),
		         jstr(e, "version"));
	}
	json_decref(j);
}

static void publish(const char *feed, const char *id)
{
	char p[100], body[100];

	snprintf(p, sizeof(p), "/v1/os-feeds/%s/releases", feed);
	snprintf(body, sizeof(body), "{\"image_id\":\"%s\"}", id);
	expect(201, "POST", p, fx.init.operator_token, body);
}

static void test_deployments_and_target(void **state)
{
	char ip[200], osa[64], osb[64], osc[64], bl[64], app1[64], app2[64], app1b[64], rt[64],
	        g_ret_all[64], g_eval_all[64], g_ret_no3[64], g_eval_no3[64], g_none[64], p[300],
	        body[400], words[512];
	uint8_t *pkg;
	size_t len = 0;
	json_t *j = NULL;

	(void)state;
	/* OS images: A (svn 6) then B (svn 5, later) in Retail; C (svn 7) in RetailEval;
	 * a bootloader in Retail. Component 30 is the OS, 31 the bootloader. */
	pkg = make_pkg(30, IMG_TYPE_OS, "os-A", 6, &fx.psigner, &fx.proot, &len);
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, osa);
	free(pkg);
	pkg = make_pkg(30, IMG_TYPE_OS, "os-B", 5, &fx.psigner, &fx.proot, &len);
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, osb);
	free(pkg);
	pkg = make_pkg(30, IMG_TYPE_OS, "os-C", 7, &fx.psigner, &fx.proot, &len);
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, osc);
	free(pkg);
	pkg = make_pkg(31, IMG_TYPE_BOOTLOADER, "bl-1", 1, &fx.psigner, &fx.proot, &len);
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, bl);
	free(pkg);

	/* Groups: every feed and policy. */
	make_group(fx.ta, fx.init.admin_token, "T1", "{\"name\":\"r-all\"}", g_ret_all);
	make_group(fx.ta, fx.init.admin_token, "T2",
	           "{\"name\":\"e-all\",\"os_feed\":\"RetailEval\"}", g_eval_all);
	make_group(fx.ta, fx.init.admin_token, "T3",
	           "{\"name\":\"r-no3\",\"update_policy\":\"No3rdPartyAppUpdates\"}", g_ret_no3);
	make_group(fx.ta, fx.init.admin_token, "T4",
	           "{\"name\":\"e-no3\",\"os_feed\":\"RetailEval\",\"update_policy\":"
	           "\"No3rdPartyAppUpdates\"}",
	           g_eval_no3);
	make_group(fx.ta, fx.init.admin_token, "T5",
	           "{\"name\":\"none\",\"os_feed\":\"RetailEval\",\"update_policy\":"
	           "\"NoUpdates\"}",
	           g_none);

	/* Nothing deployed yet: only the OS release test_os_images_and_feeds
	 * published (svn 4) to both feeds; NoUpdates sees nothing. */
	target_words(fx.ta, g_ret_all, fx.reader, words, sizeof(words));
	assert_string_equal(words, "os:23.1");
	target_words(fx.ta, g_eval_all, fx.reader, words, sizeof(words));
	assert_string_equal(words, "os:23.1");
	target_words(fx.ta, g_none, fx.reader, words, sizeof(words));
	assert_string_equal(words, "");

	publish("Retail", osa);
	publish("Retail", bl);
	publish("Retail", osb); /* later, but a lower security version: A stays */
	publish("RetailEval", osc);

	/* Applications. */
	snprintf(ip, sizeof(ip), "/v1/tenants/%s/images", fx.ta);
	pkg = make_pkg(40, IMG_TYPE_APP, "app-1", 1, &fx.dsigner, &fx.droot, &len);
	upload_ok(ip, fx.contrib, pkg, len, app1);
	free(pkg);
	pkg = make_pkg(40, IMG_TYPE_APP, "app-2", 2, &fx.dsigner, &fx.droot, &len);
	upload_ok(ip, fx.contrib, pkg, len, app2);
	free(pkg);
	pkg = make_pkg(41, IMG_TYPE_APP, "other-1", 0, &fx.dsigner, &fx.droot, &len);
	upload_ok(ip, fx.contrib, pkg, len, app1b);
	free(pkg);
	pkg = make_pkg(42, IMG_TYPE_RTAPP, "rt-1", 0, &fx.dsigner, &fx.droot, &len);
	upload_ok(ip, fx.contrib, pkg, len, rt);
	free(pkg);

	/* Deployment rules. */
	for (size_t gi = 0; gi < 5; gi++) {
		const char *g =
		        (const char *[]){g_ret_all, g_eval_all, g_ret_no3, g_eval_no3, g_none}[gi];
		snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/deployments", fx.ta, g);
		snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\",\"%s\"]}", app1, app1b);
		if (gi == 0) {
			expect(403, "POST", p, fx.reader, body);
			expect(400, "POST", p, fx.contrib, "{\"image_ids\":[]}");
			expect(400, "POST", p, fx.contrib, "{\"image_ids\":\"x\"}");
			expect(400, "POST", p, fx.contrib, "{\"images\":[]}");
			expect(400, "POST", p, fx.contrib, "{\"image_ids\":[1]}");
			/* One per component, each once. */
			snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\",\"%s\"]}", app1, app2);
			expect(400, "POST", p, fx.contrib, body);
			snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\",\"%s\"]}", app1, app1);
			expect(400, "POST", p, fx.contrib, body);
			/* An OS image is not the tenant's to deploy. */
			snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\"]}", osa);
			expect(404, "POST", p, fx.contrib, body);
			/* 17 images is too many. */
			{
				json_t *arr = json_array(), *o;
				char *t;
				for (int k = 0; k < 17; k++)
					json_array_append_new(arr, json_string(app1));
				o = json_pack("{s:o}", "image_ids", arr);
				t = json_dumps(o, JSON_COMPACT);
				expect(400, "POST", p, fx.contrib, t);
				free(t);
				json_decref(o);
			}
			snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\",\"%s\"]}", app1,
			         app1b);
		}
		expect(201, "POST", p, fx.contrib, body);
		/* A newer deployment replaces the target's applications. */
		snprintf(body, sizeof(body), "{\"image_ids\":[\"%s\",\"%s\"]}", app2, rt);
		expect(201, "POST", p, fx.contrib, body);
	}

	/* History, newest first. */
	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s/deployments", fx.ta, g_ret_all);
	assert_int_equal(req("GET", p, fx.reader, NULL, &j), 200);
	{
		json_t *ds = json_object_get(j, "deployments");
		assert_int_equal(json_array_size(ds), 2);
		assert_string_equal(
		        json_string_value(json_array_get(
		                json_object_get(json_array_get(ds, 0), "image_ids"), 0)),
		        app2);
		assert_string_equal(
		        json_string_value(json_array_get(
		                json_object_get(json_array_get(ds, 1), "image_ids"), 0)),
		        app1);
	}
	json_decref(j);

	/* The targets, per feed and policy. */
	target_words(fx.ta, g_ret_all, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-A application:app-2 "
	                           "realtime-application:rt-1");
	target_words(fx.ta, g_eval_all, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C application:app-2 "
	                           "realtime-application:rt-1");
	target_words(fx.ta, g_ret_no3, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-A");
	target_words(fx.ta, g_eval_no3, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C");
	target_words(fx.ta, g_none, fx.reader, words, sizeof(words));
	assert_string_equal(words, "");

	/* The same through ss_group_target, with the fields the check-in uses. */
	{
		struct ss_target *tg = calloc(1, sizeof(*tg));
		struct ss_image img;
		assert_non_null(tg);
		assert_int_equal(ss_group_target(fx.svc, fx.ta, g_eval_all, tg), 0);
		assert_int_equal(tg->n, 4);
		assert_int_equal(tg->os_feed, SS_FEED_RETAIL_EVAL);
		assert_true(tg->images[0].is_os && tg->images[1].is_os);
		assert_false(tg->images[2].is_os || tg->images[3].is_os);
		assert_string_equal(tg->images[1].image_id, osc);
		assert_int_equal(tg->images[1].security_version, 7);
		assert_int_equal(ss_store_image_get(fx.svc->st, "", osc, &img), 0);
		assert_memory_equal(tg->images[1].package_sha256, img.package_sha256, 32);
		assert_memory_equal(tg->images[1].payload_sha256, img.payload_sha256, 32);
		assert_int_equal(tg->images[1].package_size, img.package_size);
		assert_int_equal(tg->images[2].component_id[0], (uint8_t)(40 * 31 + 1));
		assert_string_equal(tg->images[2].image_id, app2);
		assert_true(tg->deployment_id[0] != '\0');
		assert_int_equal(ss_group_target(fx.svc, fx.ta, g_none, tg), 0);
		assert_int_equal(tg->n, 0);
		assert_int_equal(tg->update_policy, SS_POLICY_NO_UPDATES);
		/* Another tenant's group, an unknown one: not found, output zeroed. */
		assert_int_equal(ss_group_target(fx.svc, fx.tb, g_eval_all, tg), SPH_ERR_NOT_FOUND);
		assert_int_equal(tg->n, 0);
		free(tg);
	}

	/* Equal security versions: the later publish wins (C2, svn 7, into Eval). */
	pkg = make_pkg(30, IMG_TYPE_OS, "os-C2", 7, &fx.psigner, &fx.proot, &len);
	upload_ok("/v1/os-images", fx.init.operator_token, pkg, len, osb);
	free(pkg);
	publish("RetailEval", osb);
	target_words(fx.ta, g_eval_no3, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C2");
	/* Retail reaching C later: RetailEval still prefers C2 (later publish). */
	publish("Retail", osc);
	target_words(fx.ta, g_ret_no3, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C");
	target_words(fx.ta, g_eval_no3, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C");

	/* Changing the group's policy changes its target at once. */
	snprintf(p, sizeof(p), "/v1/tenants/%s/device-groups/%s", fx.ta, g_none);
	expect(200, "PATCH", p, fx.contrib, "{\"update_policy\":\"UpdateAll\"}");
	target_words(fx.ta, g_none, fx.reader, words, sizeof(words));
	assert_string_equal(words, "bootloader:bl-1 os:os-C application:app-2 "
	                           "realtime-application:rt-1");

	/* Audited. */
	{
		char ap[200];
		bool img_add = false, dep = false;
		json_t *ev;
		snprintf(ap, sizeof(ap), "/v1/tenants/%s/audit?limit=1000", fx.ta);
		assert_int_equal(req("GET", ap, fx.init.admin_token, NULL, &j), 200);
		ev = json_object_get(j, "events");
		for (size_t i = 0; i < json_array_size(ev); i++) {
			const char *a = jstr(json_array_get(ev, i), "action");
			img_add |= strcmp(a, "image.add") == 0;
			dep |= strcmp(a, "deployment.create") == 0;
		}
		assert_true(img_add && dep);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_upload_resign_download),
	        cmocka_unit_test(test_isolation),
	        cmocka_unit_test(test_os_images_and_feeds),
	        cmocka_unit_test(test_deployments_and_target),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
