/*
 * ss_cache: what a check-in reads, kept (docs/api.md §4.13 "What a check-in
 * caches"): per-tenant keys, unwrapped once, and the Active CA's chain as
 * PEM, encoded once; device attestation keys (registrations never change);
 * group targets, valid while the generations they were made at are current. A tenant's image signer
 * is made once and never changes, so its entry never goes stale. A device CA entry is keyed by the
 * Active CA's id, which every check-in reads from the store: a rollover made on any instance takes
 * effect at the next check-in. Bounded: SS_CACHE_TENANTS entries, replaced in turn. The keys stay
 * in this process's memory as they would between the unwrap and the signature anyway; they are
 * freed at shutdown.
 */
#include <stdlib.h>
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
	c->regs = calloc(SS_CACHE_REGS, sizeof(*c->regs));
	c->targets = calloc(SS_CACHE_TARGETS, sizeof(*c->targets));
	if (!c->regs || !c->targets || pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c->regs);
		free(c->targets);
		memset(c, 0, sizeof(*c));
		return SPH_ERR_NOMEM;
	}
	return 0;
}

void ss_cache_free(struct ss_cache *c)
{
	for (size_t i = 0; i < SS_CACHE_TENANTS; i++)
		ss_cache_entry_clear(&c->e[i]);
	free(c->regs);
	free(c->targets);
	pthread_mutex_destroy(&c->mu);
	memset(c, 0, sizeof(*c));
}

/* FNV-1a of the NUL-terminated strings a and b: a slot index below n. */
static size_t ss_cache_hash(const char *a, const char *b, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (const char *p = a; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3u;
	for (const char *p = b; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3u;
	return (size_t)(h % n);
}

bool ss_cache_reg_get(struct ss_cache *c, const char *device_id, uint8_t key[SS_ATTEST_KEY_LEN])
{
	struct ss_cache_reg *r = &c->regs[ss_cache_hash(device_id, "", SS_CACHE_REGS)];
	bool hit;

	pthread_mutex_lock(&c->mu);
	hit = strcmp(r->device_id, device_id) == 0;
	if (hit) {
		memcpy(key, r->key, SS_ATTEST_KEY_LEN);
		c->reg_hits++;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void ss_cache_reg_put(struct ss_cache *c, const char *device_id,
                      const uint8_t key[SS_ATTEST_KEY_LEN])
{
	struct ss_cache_reg *r = &c->regs[ss_cache_hash(device_id, "", SS_CACHE_REGS)];

	if (strlen(device_id) >= sizeof(r->device_id))
		return;
	pthread_mutex_lock(&c->mu);
	memcpy(r->device_id, device_id, strlen(device_id) + 1);
	memcpy(r->key, key, SS_ATTEST_KEY_LEN);
	pthread_mutex_unlock(&c->mu);
}

bool ss_cache_target_get(struct ss_cache *c, const char *tenant, const char *group,
                         int64_t target_gen, int64_t os_gen, struct ss_target *out)
{
	struct ss_cache_target *e = &c->targets[ss_cache_hash(tenant, group, SS_CACHE_TARGETS)];
	bool hit;

	pthread_mutex_lock(&c->mu);
	hit = strcmp(e->tenant, tenant) == 0 && strcmp(e->group, group) == 0 &&
	      e->target_gen == target_gen && e->os_gen == os_gen;
	if (hit) {
		*out = e->t;
		c->target_hits++;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void ss_cache_target_put(struct ss_cache *c, const char *tenant, const char *group,
                         int64_t target_gen, int64_t os_gen, const struct ss_target *t)
{
	struct ss_cache_target *e = &c->targets[ss_cache_hash(tenant, group, SS_CACHE_TARGETS)];

	if (strlen(tenant) >= sizeof(e->tenant) || strlen(group) >= sizeof(e->group))
		return;
	pthread_mutex_lock(&c->mu);
	memcpy(e->tenant, tenant, strlen(tenant) + 1);
	memcpy(e->group, group, strlen(group) + 1);
	e->target_gen = target_gen;
	e->os_gen = os_gen;
	e->t = *t;
	pthread_mutex_unlock(&c->mu);
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
