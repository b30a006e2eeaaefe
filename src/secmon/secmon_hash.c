/*
 * secmon: an object's SHA-256 on a second thread, so hashing overlaps the
 * flash I/O of the same put or get (docs/formats.md §9.2: shards carry the
 * object's random id, not its hash, so nothing waits for the hash until the
 * commit, or until the get returns).
 */
#include <string.h>

#include <openssl/evp.h>

#include "secmon_internal.h"

/* Below this, a thread costs more than it saves: hash inline at join. */
#define SECMON_BGHASH_MIN (128u * 1024u)

static int secmon_bghash_run(struct secmon_bghash *h, EVP_MD_CTX *ctx)
{
	size_t done = 0;

	for (;;) {
		size_t upto;
		pthread_mutex_lock(&h->mu);
		while (h->ready == done && !h->abort && done < h->len)
			pthread_cond_wait(&h->cv, &h->mu);
		upto = h->ready;
		pthread_mutex_unlock(&h->mu);
		if (h->abort)
			return SPH_ERR_STATE;
		if (upto > done && EVP_DigestUpdate(ctx, h->data + done, upto - done) != 1)
			return SPH_ERR_CRYPTO;
		done = upto;
		if (done == h->len)
			return EVP_DigestFinal_ex(ctx, h->md, NULL) == 1 ? 0 : SPH_ERR_CRYPTO;
	}
}

static void *secmon_bghash_main(void *arg)
{
	struct secmon_bghash *h = arg;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	h->rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? secmon_bghash_run(h, ctx)
	                                                               : SPH_ERR_CRYPTO;
	EVP_MD_CTX_free(ctx);
	return NULL;
}

int secmon_bghash_start(struct secmon_bghash *h, const uint8_t *data, size_t len, size_t ready)
{
	memset(h, 0, sizeof(*h));
	h->data = data;
	h->len = len;
	h->ready = ready;
	if (len < SECMON_BGHASH_MIN)
		return 0;
	if (pthread_mutex_init(&h->mu, NULL) != 0)
		return SPH_ERR_NOMEM;
	if (pthread_cond_init(&h->cv, NULL) != 0) {
		pthread_mutex_destroy(&h->mu);
		return SPH_ERR_NOMEM;
	}
	if (pthread_create(&h->th, NULL, secmon_bghash_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return 0; /* no thread: join hashes inline */
	}
	h->threaded = true;
	return 0;
}

void secmon_bghash_ready(struct secmon_bghash *h, size_t ready)
{
	if (!h->threaded) {
		h->ready = ready;
		return;
	}
	pthread_mutex_lock(&h->mu);
	h->ready = ready;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void secmon_bghash_stop(struct secmon_bghash *h, bool abort)
{
	if (!h->threaded)
		return;
	if (abort) {
		pthread_mutex_lock(&h->mu);
		h->abort = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
	}
	pthread_join(h->th, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	h->threaded = false;
}

int secmon_bghash_join(struct secmon_bghash *h, uint8_t md[32])
{
	int rc;

	if (!h->threaded)
		return secmon_sha256(h->data, h->len, NULL, 0, md);
	secmon_bghash_ready(h, h->len);
	secmon_bghash_stop(h, false);
	rc = h->rc;
	if (rc == 0)
		memcpy(md, h->md, 32);
	return rc;
}

void secmon_bghash_abort(struct secmon_bghash *h)
{
	secmon_bghash_stop(h, true);
}
