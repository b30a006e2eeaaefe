/* ss_service: the running security service: store + HTTPS server + API. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "ss_internal.h"

int ss_service_start(const struct ss_config *c, struct ss_service **out)
{
	struct ss_http_config hc;
	struct ss_service *s = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!c || !out)
		goto out;
	rc = SPH_ERR_NOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	if (ss_cache_init(&s->cache) != 0) {
		free(s);
		s = NULL;
		goto out;
	}
	if (pthread_mutex_init(&s->refuse_audit.mu, NULL) != 0) {
		ss_cache_free(&s->cache);
		free(s);
		s = NULL;
		goto out;
	}
	s->refuse_audit.tokens = SS_AUDIT_REFUSE_BURST;
	s->cfg = *c;
	rc = ss_config_finish(&s->cfg);
	if (rc == 0)
		rc = ss_kek_load(s->cfg.data_dir, s->kek);
	if (rc == 0)
		rc = ss_nonce_key_derive(s->kek, &s->nonce_key);
	if (rc == 0)
		rc = ss_platform_root_load(s);
	if (rc == 0)
		rc = ss_store_open(s->cfg.db, &s->st);
	if (rc != 0)
		goto out;
	memset(&hc, 0, sizeof(hc));
	hc.addr = s->cfg.listen;
	hc.port = s->cfg.port;
	hc.workers = s->cfg.workers;
	hc.cert_file = s->cfg.cert;
	hc.key_file = s->cfg.key;
	hc.max_body = s->cfg.max_body;
	hc.device_keys = true; /* devices check in with their RoT key (§4.13) */
	rc = ss_http_new(&hc, &s->http);
	if (rc == 0)
		rc = ss_api_routes(s);
	if (rc == 0)
		rc = ss_http_start(s->http);
	if (rc != 0)
		goto out;
	sph_log(SPH_LOG_INFO, "ss", "listening", "addr=%s port=%u", s->cfg.listen,
	        (unsigned)ss_http_port(s->http));
	*out = s;
	s = NULL;
out:
	ss_service_free(s);
	return rc;
}

uint16_t ss_service_port(const struct ss_service *s)
{
	return s ? ss_http_port(s->http) : 0;
}

void ss_service_free(struct ss_service *s)
{
	if (!s)
		return;
	ss_http_free(s->http);
	ss_store_close(s->st);
	ss_cache_free(&s->cache);
	pthread_mutex_destroy(&s->refuse_audit.mu);
	X509_free(s->platform_root);
	OPENSSL_cleanse(s->kek, sizeof(s->kek));
	OPENSSL_cleanse(&s->nonce_key, sizeof(s->nonce_key));
	free(s);
}
