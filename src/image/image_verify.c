/*
 * image verification (docs/formats.md §5.5): signature with the leaf's key,
 * certificate path to exactly one trusted root (OpenSSL's X509_verify_cert,
 * strict), the signer's role against the component type, the target, the
 * payload digest. The result starts as a refusal and becomes 0 only at the
 * end of a fully successful run.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "image_internal.h"

/* The signer's role may sign this component type under the policy. */
static int role_allowed(enum img_role role, const struct img_trust *t, uint32_t type, char *why,
                        size_t cap)
{
	if (img_role_may_sign(role, type, t->allow_developer))
		return 0;
	if (role == IMG_ROLE_DEVELOPER_APP && img_role_may_sign(role, type, true))
		img_why(why, cap, "developer-signed images are not allowed here");
	else
		img_why(why, cap, "a %s key may not sign %s images", img_role_name(role),
		        img_type_name(type));
	return SPH_ERR_PERMISSION;
}

void img_cache_clear(struct img_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n; i++)
		X509_free(c->e[i].leaf);
	memset(c, 0, sizeof(*c));
}

static bool cache_usable(const struct img_trust *t)
{
	return t->cache && t->root_hash &&
	       (t->time_policy == IMG_TIME_NONE || t->time_policy == IMG_TIME_AT);
}

/* SHA-256 over a domain label, the root hash, the time policy (and time), and
 * every x5chain entry with its length. */
static int cache_key(const struct img_trust *t, const struct img_package *pk,
                     uint8_t key[IMG_DIGEST_LEN])
{
	static const char label[] = "sphere img cache v1";
	uint8_t hdr[13];
	uint64_t at = t->time_policy == IMG_TIME_AT ? (uint64_t)t->at : 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = SPH_ERR_CRYPTO;

	hdr[0] = (uint8_t)t->time_policy;
	for (int i = 0; i < 8; i++)
		hdr[1 + i] = (uint8_t)(at >> (8 * i));
	sph_put_le32(hdr + 9, (uint32_t)pk->n_certs);
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, label, sizeof(label)) != 1 ||
	    EVP_DigestUpdate(md, t->root_hash, IMG_DIGEST_LEN) != 1 ||
	    EVP_DigestUpdate(md, hdr, sizeof(hdr)) != 1)
		goto out;
	for (size_t i = 0; i < pk->n_certs; i++) {
		uint8_t n[4];
		sph_put_le32(n, (uint32_t)pk->certs[i].len);
		if (EVP_DigestUpdate(md, n, sizeof(n)) != 1 ||
		    EVP_DigestUpdate(md, pk->certs[i].der, pk->certs[i].len) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(md, key, NULL) != 1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static const struct img_cache_entry *cache_find(struct img_cache *c,
                                                const uint8_t key[IMG_DIGEST_LEN])
{
	for (unsigned i = 0; i < c->n; i++)
		if (CRYPTO_memcmp(c->e[i].key, key, IMG_DIGEST_LEN) == 0)
			return &c->e[i];
	return NULL;
}

/* Remembers a validated path; replaces the oldest entry when full. */
static void cache_put(struct img_cache *c, const uint8_t key[IMG_DIGEST_LEN], X509 *leaf,
                      enum img_role role, size_t path_len)
{
	struct img_cache_entry *e;

	if (X509_up_ref(leaf) != 1)
		return;
	if (c->n < IMG_CACHE_SLOTS) {
		e = &c->e[c->n++];
	} else {
		e = &c->e[c->next];
		c->next = (c->next + 1) % IMG_CACHE_SLOTS;
		X509_free(e->leaf);
	}
	memcpy(e->key, key, IMG_DIGEST_LEN);
	e->leaf = leaf;
	e->role = role;
	e->path_len = path_len;
}

int img_verify(const uint8_t *pkg, size_t len, const struct img_trust *trust,
               struct img_package *out, char *why, size_t why_cap)
{
	struct img_package pk;
	struct img_chain c;
	enum img_role role = IMG_ROLE_NONE;
	uint8_t digest[IMG_DIGEST_LEN], key[IMG_DIGEST_LEN];
	const struct img_cache_entry *hit = NULL;
	const char *target;
	EVP_PKEY *leaf_key;
	X509 *leaf;
	bool use_cache;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&c, 0, sizeof(c));
	memset(&pk, 0, sizeof(pk));
	if (out)
		memset(out, 0, sizeof(*out));
	img_why(why, why_cap, "invalid argument");
	if (!trust || !trust->root_cert == !trust->root_hash || trust->time_policy > IMG_TIME_NONE)
		goto out;
	target = trust->target ? trust->target : IMG_TARGET_DEFAULT;
	use_cache = cache_usable(trust);

	/* 1..5: structure; step 3 (the certificates) by img_chain_load below */
	if ((rc = img_parse_structure(pkg, len, false, &pk, why, why_cap)))
		goto out;
	img_why(why, why_cap, "out of memory, or the crypto library failed");
	if (use_cache) {
		if ((rc = cache_key(trust, &pk, key)))
			goto out;
		hit = cache_find(trust->cache, key);
		if (hit)
			trust->cache->hits++;
		else
			trust->cache->misses++;
	}
	if (hit) {
		leaf = hit->leaf;
	} else {
		rc = img_chain_load(&c, pk.certs, pk.n_certs);
		if (rc == SPH_ERR_MALFORMED)
			img_why(why, why_cap,
			        "x5chain holds something that is not one DER certificate");
		if (rc)
			goto out;
		leaf = c.certs[0];
	}

	/* 6: the signature, with the leaf's key */
	leaf_key = X509_get0_pubkey(leaf);
	rc = SPH_ERR_UNSUPPORTED;
	if (img_signer_id(leaf, pk.signer_id) != 0) {
		img_why(why, why_cap, "the signer key is not ECDSA P-256");
		goto out;
	}
	rc = cose_sign1_verify(pk.cose, pk.cose_len, NULL, 0, leaf_key, NULL);
	if (rc) {
		img_why(why, why_cap, "the COSE signature does not verify with the signer's key");
		goto out;
	}

	/* 7: certificate path to the trusted root, and the signer's role (every CA
	 * on the path allowed to certify it: EKU chaining) */
	if (hit) {
		role = hit->role;
		pk.path_len = hit->path_len;
	} else {
		if ((rc = img_chain_anchor(&c, trust, why, why_cap)))
			goto out;
		if ((rc = img_chain_verify(&c, trust, why, why_cap)))
			goto out;
		pk.path_len = (size_t)sk_X509_num(X509_STORE_CTX_get0_chain(c.ctx));
		if ((rc = img_chain_role(&c, &role, why, why_cap)))
			goto out;
	}

	/* 8: role against the component type */
	if ((rc = role_allowed(role, trust, pk.manifest.type, why, why_cap)))
		goto out;

	/* 9: target */
	rc = SPH_ERR_CLAIM;
	if (strcmp(pk.manifest.target, target) != 0) {
		img_why(why, why_cap, "the image is for target \"%s\", not \"%s\"",
		        pk.manifest.target, target);
		goto out;
	}

	/* 10: payload digest */
	if ((rc = img_sha256(pk.payload, pk.payload_len, digest)))
		goto out;
	rc = SPH_ERR_BAD_SIGNATURE;
	if (CRYPTO_memcmp(digest, pk.manifest.payload_sha256, sizeof(digest)) != 0) {
		img_why(why, why_cap, "the payload does not match its signed SHA-256");
		goto out;
	}

	if (use_cache && !hit)
		cache_put(trust->cache, key, leaf, role, pk.path_len);
	pk.role = role;
	if (out)
		*out = pk;
	img_why(why, why_cap, "verified");
	rc = 0;
out:
	img_chain_free(&c);
	ERR_clear_error();
	return rc;
}
