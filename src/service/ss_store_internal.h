/*
 * ss_store internals: the backend vtable. ss_store.c validates every
 * argument, zeroes outputs, makes ids and times, then calls the backend, so a
 * backend sees only well-formed input (UUIDs, device ids, bounded printable
 * text, roles in range, cap <= SS_LIST_MAX, out != NULL when cap > 0).
 * Backends return the same codes as the public functions. Every member but
 * name, open and close may be NULL while a backend is incomplete: the public
 * function then returns SPH_ERR_UNSUPPORTED.
 */
#ifndef SPHERE_SS_STORE_INTERNAL_H
#define SPHERE_SS_STORE_INTERNAL_H

#include "ss_store.h"

struct ss_store_ops {
	const char *name; /* for logs: "sqlite" */
	/* location: what follows "sqlite:" (a path) for SQLite; the whole
	 * "postgresql://..." URL for PostgreSQL (handed to libpq as is). */
	int (*open)(const char *location, void **be);
	void (*close)(void *be);
	int (*schema_version)(void *be, int *version);

	/* t, u, tok: complete records (id, name or hash, created) made by ss_store.c. */
	int (*tenant_create)(void *be, const struct ss_tenant *t, const char *actor);
	int (*tenant_get)(void *be, const char *id, struct ss_tenant *out);
	int (*tenant_list_for_user)(void *be, const char *user_id, struct ss_tenant *out,
	                            size_t cap, size_t *n);
	int (*user_create)(void *be, const struct ss_user *u, int64_t created);
	int (*user_get)(void *be, const char *id, struct ss_user *out);
	int (*user_by_name)(void *be, const char *name, struct ss_user *out);
	int (*role_set)(void *be, const char *tenant_id, const char *user_id, enum ss_role role,
	                const char *actor);
	int (*role_get)(void *be, const char *tenant_id, const char *user_id, enum ss_role *role);
	int (*role_list)(void *be, const char *tenant_id, struct ss_role_entry *out, size_t cap,
	                 size_t *n);
	int (*token_add)(void *be, const struct ss_token *tok, const uint8_t hash[32]);
	int (*token_find)(void *be, const uint8_t hash[32], struct ss_token *tok,
	                  struct ss_user *user);
	int (*token_revoke)(void *be, const char *user_id, const char *token_id,
	                    const char *tenant_id, const char *actor);
	int (*device_claim)(void *be, const char *tenant_id, const char *device_id,
	                    const char *actor);
	int (*device_release)(void *be, const char *tenant_id, const char *device_id,
	                      const char *to_tenant, const char *actor);
	int (*device_get)(void *be, const char *tenant_id, const char *device_id,
	                  struct ss_device *out);
	int (*device_list)(void *be, const char *tenant_id, const char *after,
	                   struct ss_device *out, size_t cap, size_t *n);
	/* a: tenant_id, actor, action, target, detail (id and at are the backend's). */
	int (*audit_add)(void *be, const struct ss_audit *a);
	int (*audit_list)(void *be, const char *tenant_id, int64_t after_id, struct ss_audit *out,
	                  size_t cap, size_t *n);

	/* products and device groups. p, g: complete records made by
	 * ss_store.c (groups[0..ngroups): the product's default groups). */
	int (*product_create)(void *be, const struct ss_product *p, const struct ss_group *groups,
	                      size_t ngroups, const char *actor);
	int (*product_get)(void *be, const char *tenant_id, const char *product_id,
	                   struct ss_product *out);
	int (*product_list)(void *be, const char *tenant_id, const char *after,
	                    struct ss_product *out, size_t cap, size_t *n);
	int (*group_create)(void *be, const struct ss_group *g, const char *actor);
	/* chg changes at least one thing; its strings are checked. */
	int (*group_update)(void *be, const char *tenant_id, const char *group_id,
	                    const struct ss_group_change *chg, const char *actor,
	                    struct ss_group *out);
	int (*group_get)(void *be, const char *tenant_id, const char *group_id,
	                 struct ss_group *out);
	/* product_id: "" for all the tenant's groups. */
	int (*group_list)(void *be, const char *tenant_id, const char *product_id,
	                  const char *after, struct ss_group *out, size_t cap, size_t *n);
	/* group_id: "" for none. */
	int (*device_set_group)(void *be, const char *tenant_id, const char *device_id,
	                        const char *group_id, const char *actor);
	/* Tenant CAs. ca: complete (id and created made by ss_store.c). */
	int (*ca_add)(void *be, const struct ss_ca_record *ca, const char *actor);
	int (*ca_list)(void *be, const char *tenant_id, struct ss_ca_record *out, size_t cap,
	               size_t *n);
	int (*ca_get)(void *be, const char *tenant_id, const char *ca_id, struct ss_ca_record *out);
	int (*ca_set_state)(void *be, const char *tenant_id, const char *ca_id,
	                    enum ss_ca_state state, const char *actor);
	int (*ca_active)(void *be, const char *tenant_id, struct ss_ca_record *out);
	/* Image catalogue, OS feeds, deployments. rec, img, d: complete records
	 * made by ss_store.c (ids, times). */
	int (*signer_add)(void *be, const struct ss_signer_record *rec, const char *actor);
	int (*signer_get)(void *be, const char *tenant_id, struct ss_signer_record *out);
	int (*cap_signer_add)(void *be, const struct ss_cap_signer_record *rec, const char *actor);
	int (*cap_signer_get)(void *be, const char *tenant_id, struct ss_cap_signer_record *out);
	int (*device_mode_set)(void *be, const char *tenant_id, const char *device_id,
	                       enum ss_device_mode mode, const char *actor);
	int (*device_mode_get)(void *be, const char *tenant_id, const char *device_id,
	                       enum ss_device_mode *mode);
	int (*image_add)(void *be, const struct ss_image *img, const uint8_t *pkg, size_t pkg_len,
	                 const char *actor);
	int (*image_get)(void *be, const char *tenant_id, const char *image_id,
	                 struct ss_image *out);
	int (*image_list)(void *be, const char *tenant_id, const char *after, struct ss_image *out,
	                  size_t cap, size_t *n);
	int (*image_find)(void *be, const char *tenant_id, const char *component_id,
	                  const char *version, struct ss_image *out);
	int (*image_package)(void *be, const char *tenant_id, const char *image_id, uint8_t **pkg,
	                     size_t *len);
	/* r: id, feed, image_id, published made; the backend sets r->seq. */
	int (*os_release_add)(void *be, struct ss_os_release *r, const char *actor);
	int (*os_release_list)(void *be, enum ss_os_feed feed, struct ss_os_release *out,
	                       size_t cap, size_t *n);
	/* d: id, tenant, group, created, images made; the backend sets d->seq. */
	int (*deployment_create)(void *be, struct ss_deployment *d, const char *actor);
	int (*deployment_list)(void *be, const char *tenant_id, const char *group_id,
	                       struct ss_deployment *out, size_t cap, size_t *n);
	/* Device registrations. reg: complete (registered made by ss_store.c). */
	int (*registration_add)(void *be, const struct ss_registration *reg, const char *actor);
	int (*registration_get)(void *be, const char *device_id, struct ss_registration *out);
	/* Check-ins. ci: checked, keep and max_age filled; at: Unix seconds now. */
	int (*checkin_record)(void *be, const struct ss_checkin *ci, int64_t at);
	int (*checkin_get)(void *be, const char *device_id, struct ss_checkin_state *out);
	int (*device_find)(void *be, const char *device_id, struct ss_device *out);
	int (*failure_list)(void *be, const char *tenant_id, enum ss_failure_scope scope,
	                    const char *key, int64_t before_id, struct ss_failure *out, size_t cap,
	                    size_t *n);
};

extern const struct ss_store_ops ss_sqlite_ops;
extern const struct ss_store_ops ss_pg_ops;

/* Unix seconds now (CLOCK_REALTIME). */
int64_t ss_store_now(void);

#endif
