/*
 * ss_cache: per-tenant keys a check-in needs, unwrapped once, and the
 * Active CA's chain as PEM, encoded once (docs/api.md §4.13). A tenant's image signer is made once
 * and never changes, so its entry never goes stale. A device CA entry is keyed by the Active CA's
 * id, which every check-in reads from the store: a rollover made on any instance takes effect at
 * the next check-in. Bounded: SS_CACHE_TENANTS entries, replaced in turn. The keys stay in this
 * process's memory as they would between the unwrap and the signature anyway; they are freed at
 * shutdown.
 */
#include <string.h>

#include "ss_internal.h"

static struct ss_cache_entry *ss_cache_find(struct ss_cache *c, const char *tenant)
{
	for (size_t i = 0; i < SS_CACHE_TENANTS; i++)
		if (c->e[i].tenant[0] && strcmp(c->e[i].tenant, tenant) == 0)
			return &c->e[i];
	return NULL;
}

static void ss_cache_entry_clear(struct ss_cache_entry *e)
{
	X509_free(e->root);
	X509_free(e->signer);
	EVP_PKEY_free(e->signer_key);
	X509_free(e->ca_cert);
	EVP_PKEY_free(e->ca_key);
	free(e->ca_chain);
	memset(e, 0, sizeof(*e));
}

/* The tenant's entry, made (replacing one in turn) when missing. Lock held. */
static struct ss_cache_entry *ss_cache_slot(struct ss_cache *c, const char *tenant)
{
	struct ss_cache_entry *e = ss_cache_find(c, tenant);

	if (e || strlen(tenant) >= sizeof(e->tenant))
		return e;
	e = &c->e[c->next];
	c->next = (c->next + 1) % SS_CACHE_TENANTS;
	ss_cache_entry_clear(e);
	memcpy(e->tenant, tenant, strlen(tenant) + 1);
	return e;
}

int ss_cache_init(struct ss_cache *c)
{
	memset(c, 0, sizeof(*c));
	return pthread_mutex_init(&c->mu, NULL) == 0 ? 0 : SPH_ERR_NOMEM;
}

void ss_cache_free(struct ss_cache *c)
{
	for (size_t i = 0; i < SS_CACHE_TENANTS; i++)
		ss_cache_entry_clear(&c->e[i]);
	pthread_mutex_destroy(&c->mu);
}

/* One more reference to each of up to three objects, or none. */
static bool ss_cache_ref(X509 *a, X509 *b, EVP_PKEY *k)
{
	if (a && X509_up_ref(a) != 1)
		return false;
	if (b && X509_up_ref(b) != 1) {
		X509_free(a);
		return false;
	}
	if (k && EVP_PKEY_up_ref(k) != 1) {
		X509_free(a);
		X509_free(b);
		return false;
	}
	return true;
}

bool ss_cache_signer_get(struct ss_cache *c, const char *tenant, X509 **root, X509 **signer,
                         EVP_PKEY **key)
{
	struct ss_cache_entry *e;
	bool hit = false;

	pthread_mutex_lock(&c->mu);
	e = ss_cache_find(c, tenant);
	if (e && e->signer_key && ss_cache_ref(e->root, e->signer, e->signer_key)) {
		*root = e->root;
		*signer = e->signer;
		*key = e->signer_key;
		hit = true;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void ss_cache_signer_put(struct ss_cache *c, const char *tenant, X509 *root, X509 *signer,
                         EVP_PKEY *key)
{
	struct ss_cache_entry *e;

	pthread_mutex_lock(&c->mu);
	e = ss_cache_slot(c, tenant);
	if (e && !e->signer_key && ss_cache_ref(root, signer, key)) {
		e->root = root;
		e->signer = signer;
		e->signer_key = key;
	}
	pthread_mutex_unlock(&c->mu);
}

bool ss_cache_ca_get(struct ss_cache *c, const char *tenant, const char *ca_id, X509 **cert,
                     EVP_PKEY **key, char **chain)
{
	struct ss_cache_entry *e;
	char *copy = NULL;
	bool hit = false;

	pthread_mutex_lock(&c->mu);
	e = ss_cache_find(c, tenant);
	if (e && e->ca_key && strcmp(e->ca_id, ca_id) == 0 && (copy = strdup(e->ca_chain)) &&
	    ss_cache_ref(e->ca_cert, NULL, e->ca_key)) {
		*cert = e->ca_cert;
		*key = e->ca_key;
		*chain = copy;
		copy = NULL;
		hit = true;
	}
	pthread_mutex_unlock(&c->mu);
	free(copy);
	return hit;
}

void ss_cache_ca_put(struct ss_cache *c, const char *tenant, const char *ca_id, X509 *cert,
                     EVP_PKEY *key, const char *chain)
{
	struct ss_cache_entry *e;
	char *copy = strdup(chain);

	pthread_mutex_lock(&c->mu);
	e = ss_cache_slot(c, tenant);
	if (e && copy && strlen(ca_id) < sizeof(e->ca_id) && ss_cache_ref(cert, NULL, key)) {
		X509_free(e->ca_cert);
		EVP_PKEY_free(e->ca_key);
		free(e->ca_chain);
		e->ca_cert = cert;
		e->ca_key = key;
		e->ca_chain = copy;
		copy = NULL;
		memcpy(e->ca_id, ca_id, strlen(ca_id) + 1);
	}
	pthread_mutex_unlock(&c->mu);
	free(copy);
}
