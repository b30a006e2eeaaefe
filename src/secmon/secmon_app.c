/*
 * secmon: application mutable storage (docs/formats.md §9.5). An app's keys
 * live in namespace 1 under its app id, so no key an app can name reaches
 * another app's data; quotas are app records in the committed table.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "secmon_internal.h"

/* Index of app's record, or napps when it has none. */
static uint32_t secmon_app_find(const struct secmon_table *t, const uint8_t *app)
{
	for (uint32_t a = 0; a < t->napps; a++) {
		if (memcmp(t->apps[a].id, app, SECMON_APP_ID_LEN) == 0)
			return a;
	}
	return t->napps;
}

static uint64_t secmon_app_used(const struct secmon_table *t, const uint8_t *app)
{
	uint64_t used = 0;

	for (uint32_t i = 0; i < t->nobj; i++) {
		if (t->obj[i].ns == SECMON_NS_APP &&
		    memcmp(t->obj[i].app, app, SECMON_APP_ID_LEN) == 0)
			used += t->obj[i].len;
	}
	return used;
}

int secmon_commit_apps(struct secmon *s, struct secmon_app *apps, uint32_t napps)
{
	struct secmon_table nt;
	int rc;

	rc = secmon_table_copy(&s->st.t, &nt);
	if (rc != 0) {
		free(apps);
		return rc;
	}
	free(nt.apps);
	nt.apps = apps;
	nt.napps = napps;
	return secmon_install(s, &nt, NULL, 0, NULL);
}

int secmon_app_set_quota(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], uint64_t bytes)
{
	const struct secmon_table *t;
	struct secmon_app *apps = NULL;
	uint32_t a, n;
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || !app)
		return rc;
	rc = secmon_enter(s, true);
	if (rc != 0)
		goto out;
	t = &s->st.t;
	a = secmon_app_find(t, app);
	rc = 0;
	if (a == t->napps && bytes == 0)
		goto out; /* nothing to remove */
	if (a < t->napps && t->apps[a].quota == bytes)
		goto out;
	rc = SPH_ERR_NO_SPACE;
	n = t->napps + (a == t->napps);
	if (n > SECMON_MAX_APPS)
		goto out;
	rc = SPH_ERR_NOMEM;
	apps = malloc((size_t)n * sizeof(*apps));
	if (!apps)
		goto out;
	if (a < t->napps) {
		memcpy(apps, t->apps, (size_t)n * sizeof(*apps));
		apps[a].quota = bytes;
	} else {
		/* Insert in id order. */
		uint32_t w = 0;
		bool placed = false;
		for (uint32_t r = 0; r < t->napps; r++) {
			if (!placed && memcmp(app, t->apps[r].id, SECMON_APP_ID_LEN) < 0) {
				memcpy(apps[w].id, app, SECMON_APP_ID_LEN);
				apps[w++].quota = bytes;
				placed = true;
			}
			apps[w++] = t->apps[r];
		}
		if (!placed) {
			memcpy(apps[w].id, app, SECMON_APP_ID_LEN);
			apps[w].quota = bytes;
		}
	}
	rc = secmon_commit_apps(s, apps, n);
	apps = NULL; /* taken */
out:
	free(apps);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_app_put(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key,
                   const void *data, size_t len)
{
	const struct secmon_table *t;
	size_t klen, i;
	uint64_t used, old = 0;
	uint32_t a;
	bool found;
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || !app || !secmon_name_ok(key, SECMON_KEY_MAX, &klen) || (!data && len) ||
	    len > SECMON_OBJECT_MAX)
		return rc;
	rc = secmon_enter(s, true);
	if (rc != 0)
		goto out;
	t = &s->st.t;
	a = secmon_app_find(t, app);
	rc = SPH_ERR_PERMISSION; /* no storage right */
	if (a == t->napps || t->apps[a].quota == 0)
		goto out;
	used = secmon_app_used(t, app);
	i = secmon_table_find(t, SECMON_NS_APP, app, key, klen, &found);
	if (found)
		old = t->obj[i].len;
	rc = SPH_ERR_NO_SPACE;
	if (used - old + len > t->apps[a].quota)
		goto out;
	rc = secmon_put_locked(s, SECMON_NS_APP, app, key, klen, data, len);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_app_get(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key,
                   uint8_t **data, size_t *len, char *why, size_t why_cap)
{
	return secmon_get_ns(s, SECMON_NS_APP, app, key, SECMON_KEY_MAX, data, len, why, why_cap);
}

int secmon_app_delete(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], const char *key)
{
	return secmon_delete_ns(s, SECMON_NS_APP, app, key, SECMON_KEY_MAX);
}

int secmon_app_usage(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN], uint64_t *used,
                     uint64_t *quota)
{
	uint32_t a;
	int rc = SPH_ERR_INVALID_ARG;

	if (used)
		*used = 0;
	if (quota)
		*quota = 0;
	if (!s || !app || !used || !quota)
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	a = secmon_app_find(&s->st.t, app);
	*used = secmon_app_used(&s->st.t, app);
	*quota = a < s->st.t.napps ? s->st.t.apps[a].quota : 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_app_erase(struct secmon *s, const uint8_t app[SECMON_APP_ID_LEN])
{
	const struct secmon_table *t;
	struct secmon_table nt;
	uint16_t **gone = NULL;
	size_t ngone = 0;
	uint32_t w = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || !app)
		return rc;
	rc = secmon_enter(s, true);
	if (rc != 0)
		goto out;
	t = &s->st.t;
	rc = secmon_table_copy(t, &nt);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (t->nobj && !(gone = calloc(t->nobj, sizeof(*gone)))) {
		secmon_table_free_shallow(&nt);
		goto out;
	}
	for (uint32_t i = 0; i < t->nobj; i++) {
		if (t->obj[i].ns == SECMON_NS_APP &&
		    memcmp(t->obj[i].app, app, SECMON_APP_ID_LEN) == 0)
			gone[ngone++] = t->obj[i].blocks;
		else
			nt.obj[w++] = t->obj[i];
	}
	nt.nobj = w;
	rc = 0;
	if (ngone == 0) {
		secmon_table_free_shallow(&nt);
		goto out;
	}
	rc = secmon_install(s, &nt, gone, ngone, NULL);
out:
	free(gone);
	pthread_mutex_unlock(&s->mu);
	return rc;
}
