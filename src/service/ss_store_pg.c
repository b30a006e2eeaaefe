/*
 * ss_store_pg: the PostgreSQL backend (docs/api-postgres.md, docs/api.md
 * "Storage"), through libpq.
 *
 * A pool of SS_PG_CONNS connections, each guarded by its own mutex; a call
 * takes a free one (round-robin trylock, then blocks on one). A connection
 * found broken is reset (PQreset) at the start of its next call; the call
 * that lost it fails with SPH_ERR_IO (a write's outcome is then unknown, so
 * it is never replayed blindly).
 *
 * A change is one BEGIN ... COMMIT (READ COMMITTED) with its audit row. The
 * rules that read before they write take row locks first, so the check and
 * the write see one state:
 *  - role changes and tenant CA changes lock the tenant's row
 *    (SELECT ... FOR NO KEY UPDATE: it serialises them per tenant without
 *    blocking the foreign-key checks of inserts that name the tenant);
 *  - a claim locks the device's row (SELECT ... FOR UPDATE); two first claims
 *    of one device meet at its primary key (23505: SPH_ERR_DUPLICATE);
 *  - a deployment locks its group's row (FOR NO KEY UPDATE): a group's
 *    deployment seq is read and written under it;
 *  - an OS release takes an advisory transaction lock (SS_PG_LOCK_RELEASE):
 *    the global release seq and "once per feed" are decided under it;
 *  - a device registration takes one too (SS_PG_LOCK_REGISTER): "once per
 *    device" and "one key, one device" are decided under it;
 *  - a signer, or an image of a component and version, is checked by an
 *    explicit read; two concurrent adds meet at a unique index (23505);
 *  - an audit row is inserted under a per-tenant advisory transaction lock,
 *    so a tenant's audit ids commit in increasing order (a reader paging
 *    with after_id never skips a row that commits later with a lower id).
 * A serialization failure or deadlock (40001, 40P01) rolls back and retries
 * the whole transaction, for at most SS_PG_RETRY_MS.
 *
 * SQL is fixed text with $n parameters, prepared once per connection, every
 * parameter and result in binary format (BYTEA as raw bytes); no value is
 * ever formatted into SQL. Logs carry SQLSTATEs and identifiers (table,
 * column, constraint), never a server message text (which can quote values)
 * nor a connection URL (which can hold a password).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/common.h"
#include "ss_store_internal.h"

#define SS_PG_CONNS      4
#define SS_PG_RETRY_MS   5000
#define SS_PG_MAX_PARAMS 16
#define SS_PG_TIMEOUT_S  "10" /* connect_timeout unless the URL says otherwise */

/* Built-in type OIDs (fixed in PostgreSQL's catalog; pg_type_d.h is a server header). */
#define SS_PG_BYTEA 17
#define SS_PG_INT8  20
#define SS_PG_INT2  21
#define SS_PG_INT4  23
#define SS_PG_TEXT  25

/* Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)). */
#define SS_PG_LOCK_MIGRATE  0x53530000 /* "SS" 0: schema migrations */
#define SS_PG_LOCK_AUDIT    0x53530001 /* "SS" 1: a tenant's audit ids */
#define SS_PG_LOCK_RELEASE  0x53530002 /* "SS" 2: OS releases (their global seq) */
#define SS_PG_LOCK_REGISTER 0x53530003 /* "SS" 3: device registrations */

/* ---- schema ------------------------------------------------------------------
 * The same tables, columns, names and rules as the SQLite migrations 1..4, in
 * PostgreSQL's types: BIGINT times and counters, SMALLINT flags and roles,
 * BYTEA blobs, an identity column for audit.id, and TEXT COLLATE "C" so that
 * ids and names order bytewise (as in SQLite) whatever the database locale.
 * Migration i takes the database from version i to i + 1; applied ones are
 * never edited, a change is a new step at the end.
 */
static const char *const ss_pg_migrations[] = {
        /* 1 */
        "CREATE TABLE tenants ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " name TEXT COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " created BIGINT NOT NULL);"
        "CREATE TABLE users ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " name TEXT COLLATE \"C\" NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
        " is_operator SMALLINT NOT NULL CHECK (is_operator IN (0, 1)),"
        " created BIGINT NOT NULL);"
        "CREATE TABLE roles ("
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " user_id TEXT COLLATE \"C\" NOT NULL REFERENCES users (id),"
        " role SMALLINT NOT NULL CHECK (role BETWEEN 1 AND 3),"
        " PRIMARY KEY (tenant_id, user_id));"
        "CREATE INDEX roles_user ON roles (user_id);"
        "CREATE TABLE tokens ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " user_id TEXT COLLATE \"C\" NOT NULL REFERENCES users (id),"
        " hash BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),"
        " created BIGINT NOT NULL,"
        " revoked SMALLINT NOT NULL CHECK (revoked IN (0, 1)));"
        "CREATE INDEX tokens_user ON tokens (user_id);"
        "CREATE TABLE devices ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 128),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " released_to TEXT COLLATE \"C\" REFERENCES tenants (id),"
        " claimed BIGINT NOT NULL);"
        "CREATE INDEX devices_tenant ON devices (tenant_id, id);"
        "CREATE TABLE audit ("
        " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " at BIGINT NOT NULL,"
        " tenant_id TEXT COLLATE \"C\" NOT NULL,"
        " actor TEXT COLLATE \"C\" NOT NULL,"
        " action TEXT COLLATE \"C\" NOT NULL,"
        " target TEXT COLLATE \"C\" NOT NULL,"
        " detail TEXT COLLATE \"C\" NOT NULL);"
        "CREATE INDEX audit_tenant ON audit (tenant_id, id);",
        /* 2: products and device groups. A group's (product, tenant) must
         * be its product's own pair, so a group never crosses tenants. */
        "CREATE TABLE products ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " name TEXT COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " description TEXT COLLATE \"C\" NOT NULL CHECK (length(description) <= 256),"
        " created BIGINT NOT NULL,"
        " UNIQUE (tenant_id, name),"
        " UNIQUE (id, tenant_id));"
        "CREATE TABLE device_groups ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " product_id TEXT COLLATE \"C\" NOT NULL,"
        " name TEXT COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " description TEXT COLLATE \"C\" NOT NULL CHECK (length(description) <= 256),"
        " os_feed TEXT NOT NULL CHECK (os_feed IN ('Retail', 'RetailEval')),"
        " update_policy TEXT NOT NULL"
        "  CHECK (update_policy IN ('UpdateAll', 'No3rdPartyAppUpdates', 'NoUpdates')),"
        " created BIGINT NOT NULL,"
        " UNIQUE (product_id, name),"
        " FOREIGN KEY (product_id, tenant_id) REFERENCES products (id, tenant_id));"
        "CREATE INDEX device_groups_tenant ON device_groups (tenant_id, id);"
        "ALTER TABLE devices ADD COLUMN group_id TEXT COLLATE \"C\""
        " REFERENCES device_groups (id);"
        "CREATE INDEX devices_group ON devices (group_id);",
        /* 3: tenant CAs (docs/api.md §5). seq orders a tenant's CAs (newest
         * first) where created ties within one second; the partial unique
         * index keeps one Active CA per tenant whatever the code does. */
        "CREATE TABLE tenant_cas ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " seq BIGINT NOT NULL,"
        " state TEXT NOT NULL CHECK (state IN ('Active', 'Inactive', 'Revoked')),"
        " created BIGINT NOT NULL,"
        " not_after BIGINT NOT NULL,"
        " root_der BYTEA NOT NULL CHECK (length(root_der) BETWEEN 1 AND 4096),"
        " device_der BYTEA NOT NULL CHECK (length(device_der) BETWEEN 1 AND 4096),"
        " root_key BYTEA NOT NULL CHECK (length(root_key) BETWEEN 1 AND 512),"
        " device_key BYTEA NOT NULL CHECK (length(device_key) BETWEEN 1 AND 512),"
        " UNIQUE (tenant_id, seq));"
        "CREATE UNIQUE INDEX tenant_cas_active ON tenant_cas (tenant_id) WHERE state = 'Active';",
        /* 4: the image catalogue, OS feeds and deployments (docs/api-images.md).
         * tenant_id NULL marks a platform-wide OS image. NULLs are distinct
         * in a unique index, so images_component holds for tenant images
         * and the partial images_component_os for OS images (SQLite decides
         * those by its explicit read alone). */
        "CREATE TABLE tenant_signers ("
        " tenant_id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES tenants (id),"
        " created BIGINT NOT NULL,"
        " root_der BYTEA NOT NULL CHECK (length(root_der) BETWEEN 1 AND 4096),"
        " signer_der BYTEA NOT NULL CHECK (length(signer_der) BETWEEN 1 AND 4096),"
        " root_key BYTEA NOT NULL CHECK (length(root_key) BETWEEN 1 AND 512),"
        " signer_key BYTEA NOT NULL CHECK (length(signer_key) BETWEEN 1 AND 512));"
        "CREATE TABLE images ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT COLLATE \"C\" REFERENCES tenants (id),"
        " component_id TEXT COLLATE \"C\" NOT NULL CHECK (length(component_id) = 36),"
        " type SMALLINT NOT NULL CHECK (type BETWEEN 1 AND 5),"
        " name TEXT COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " version TEXT COLLATE \"C\" NOT NULL CHECK (length(version) BETWEEN 1 AND 32),"
        " security_version SMALLINT NOT NULL CHECK (security_version BETWEEN 0 AND 255),"
        " payload_size BIGINT NOT NULL CHECK (payload_size >= 0),"
        " payload_sha256 BYTEA NOT NULL CHECK (length(payload_sha256) = 32),"
        " package_size BIGINT NOT NULL CHECK (package_size BETWEEN 1 AND 71303168),"
        " package_sha256 BYTEA NOT NULL CHECK (length(package_sha256) = 32),"
        " created BIGINT NOT NULL,"
        " package BYTEA NOT NULL CHECK (length(package) = package_size),"
        " CHECK ((tenant_id IS NULL AND type BETWEEN 1 AND 3) OR"
        "        (tenant_id IS NOT NULL AND type BETWEEN 4 AND 5)));"
        "CREATE UNIQUE INDEX images_component ON images (tenant_id, component_id, version);"
        "CREATE UNIQUE INDEX images_component_os ON images (component_id, version)"
        " WHERE tenant_id IS NULL;"
        "CREATE INDEX images_tenant ON images (tenant_id, id);"
        "CREATE TABLE os_releases ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " seq BIGINT NOT NULL UNIQUE,"
        " feed TEXT NOT NULL CHECK (feed IN ('Retail', 'RetailEval')),"
        " image_id TEXT COLLATE \"C\" NOT NULL REFERENCES images (id),"
        " published BIGINT NOT NULL,"
        " UNIQUE (feed, image_id));"
        "CREATE TABLE deployments ("
        " id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " group_id TEXT COLLATE \"C\" NOT NULL REFERENCES device_groups (id),"
        " seq BIGINT NOT NULL,"
        " created BIGINT NOT NULL,"
        " UNIQUE (group_id, seq));"
        "CREATE TABLE deployment_images ("
        " deployment_id TEXT COLLATE \"C\" NOT NULL REFERENCES deployments (id),"
        " pos SMALLINT NOT NULL CHECK (pos BETWEEN 0 AND 15),"
        " image_id TEXT COLLATE \"C\" NOT NULL REFERENCES images (id),"
        " PRIMARY KEY (deployment_id, pos),"
        " UNIQUE (deployment_id, image_id));",
        /* 4 -> 5: device registrations (docs/api.md §4.13). */
        "CREATE TABLE device_registrations ("
        " device_id TEXT COLLATE \"C\" PRIMARY KEY CHECK (length(device_id) = 128),"
        " attestation_key BYTEA NOT NULL UNIQUE CHECK (length(attestation_key) = 64),"
        " registered BIGINT NOT NULL,"
        " registered_by TEXT COLLATE \"C\" NOT NULL CHECK (length(registered_by) IN (0, 36)));",
        /* 5 -> 6: device check-ins and failure reports (docs/api.md §4.13). */
        "CREATE TABLE device_checkins ("
        " device_id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES devices (id),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " last_checkin BIGINT NOT NULL,"
        " nonce_ms BIGINT NOT NULL,"
        " up_to_date SMALLINT NOT NULL CHECK (up_to_date IN (0, 1)),"
        " cert_expires BIGINT NOT NULL,"
        " measured TEXT COLLATE \"C\" NOT NULL CHECK (length(measured) <= 2048));"
        "CREATE TABLE device_failures ("
        " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " device_id TEXT COLLATE \"C\" NOT NULL CHECK (length(device_id) = 128),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " at BIGINT NOT NULL,"
        " component TEXT COLLATE \"C\" NOT NULL CHECK (length(component) <= 64),"
        " kind SMALLINT NOT NULL CHECK (kind BETWEEN 1 AND 5),"
        " code BIGINT NOT NULL,"
        " text TEXT COLLATE \"C\" NOT NULL CHECK (length(text) <= 256));"
        "CREATE INDEX device_failures_device ON device_failures (device_id, id);"
        "CREATE INDEX device_failures_tenant ON device_failures (tenant_id, id);",
        /* 6 -> 7: device capabilities (docs/api.md §4.14): each tenant's
         * capability signer and the mode a tenant set for a device. */
        "CREATE TABLE tenant_cap_signers ("
        " tenant_id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES tenants (id),"
        " created BIGINT NOT NULL,"
        " signer_der BYTEA NOT NULL CHECK (length(signer_der) BETWEEN 1 AND 4096),"
        " signer_key BYTEA NOT NULL CHECK (length(signer_key) BETWEEN 1 AND 512));"
        "CREATE TABLE device_modes ("
        " device_id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES devices (id),"
        " tenant_id TEXT COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
        " mode TEXT COLLATE \"C\" NOT NULL CHECK (mode IN ('development', 'cloud-test')),"
        " updated BIGINT NOT NULL);",
        /* 7 -> 8: target generations (see ss_store_sqlite.c): bumped by
         * triggers in the writing transaction. */
        "ALTER TABLE tenants ADD COLUMN target_gen BIGINT NOT NULL DEFAULT 0;"
        "CREATE TABLE service_gen ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " os_gen BIGINT NOT NULL);"
        "INSERT INTO service_gen (id, os_gen) VALUES (1, 0);"
        "CREATE FUNCTION sphere_tenant_gen() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  IF TG_OP <> 'INSERT' THEN"
        "   UPDATE tenants SET target_gen = target_gen + 1 WHERE id = OLD.tenant_id;"
        "  END IF;"
        "  IF TG_OP <> 'DELETE' THEN"
        "   UPDATE tenants SET target_gen = target_gen + 1 WHERE id = NEW.tenant_id;"
        "  END IF;"
        "  RETURN NULL;"
        " END $$;"
        "CREATE FUNCTION sphere_deployment_images_gen() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  IF TG_OP <> 'INSERT' THEN"
        "   UPDATE tenants SET target_gen = target_gen + 1 WHERE id = (SELECT tenant_id FROM"
        "    deployments WHERE id = OLD.deployment_id);"
        "  END IF;"
        "  IF TG_OP <> 'DELETE' THEN"
        "   UPDATE tenants SET target_gen = target_gen + 1 WHERE id = (SELECT tenant_id FROM"
        "    deployments WHERE id = NEW.deployment_id);"
        "  END IF;"
        "  RETURN NULL;"
        " END $$;"
        "CREATE FUNCTION sphere_os_gen() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN UPDATE service_gen SET os_gen = os_gen + 1; RETURN NULL; END $$;"
        "CREATE TRIGGER groups_gen AFTER INSERT OR UPDATE OR DELETE ON device_groups"
        " FOR EACH ROW EXECUTE FUNCTION sphere_tenant_gen();"
        "CREATE TRIGGER deployments_gen AFTER INSERT OR UPDATE OR DELETE ON deployments"
        " FOR EACH ROW EXECUTE FUNCTION sphere_tenant_gen();"
        "CREATE TRIGGER deployment_images_gen AFTER INSERT OR UPDATE OR DELETE ON"
        " deployment_images FOR EACH ROW EXECUTE FUNCTION sphere_deployment_images_gen();"
        "CREATE TRIGGER os_releases_gen AFTER INSERT OR UPDATE OR DELETE ON os_releases"
        " FOR EACH ROW EXECUTE FUNCTION sphere_os_gen();",
};

#define SS_PG_SCHEMA ((int)(sizeof(ss_pg_migrations) / sizeof(ss_pg_migrations[0])))

/* Fixed commands without parameters (simple query protocol). */
static const char ss_pg_version_table[] = "CREATE TABLE IF NOT EXISTS schema_version ("
                                          "version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)";
/* Per session: the isolation the locking relies on, PostgreSQL's durable
 * commit (whatever the database's defaults say), and no NOTICE chatter. */
static const char ss_pg_session[] = "SET default_transaction_isolation = 'read committed';"
                                    "SET synchronous_commit = on;"
                                    "SET client_min_messages = warning";

/* ---- statements ------------------------------------------------------------
 * Each with its parameter types: t text, n text or NULL for "", i int8,
 * b a 32-byte bytea, B a bytea and its size_t length.
 */
enum ss_pg_q {
	SS_Q_LOCK,
	SS_Q_VERSION,
	SS_Q_VERSION_ADD,
	SS_Q_AUDIT_LOCK,
	SS_Q_AUDIT_ADD,
	SS_Q_AUDIT_LIST,
	SS_Q_TENANT_ADD,
	SS_Q_TENANT_GET,
	SS_Q_TENANT_LOCK,
	SS_Q_TENANTS_OF_USER,
	SS_Q_USER_ADD,
	SS_Q_USER_GET,
	SS_Q_USER_BY_NAME,
	SS_Q_ROLE_GET,
	SS_Q_ROLE_ADD,
	SS_Q_ROLE_UPDATE,
	SS_Q_ROLE_DELETE,
	SS_Q_ROLE_ADMINS,
	SS_Q_ROLE_LIST,
	SS_Q_TOKEN_ADD,
	SS_Q_TOKEN_FIND,
	SS_Q_TOKEN_REVOKE,
	SS_Q_DEVICE_STATE,
	SS_Q_DEVICE_ADD,
	SS_Q_DEVICE_MOVE,
	SS_Q_DEVICE_RELEASE,
	SS_Q_DEVICE_GET,
	SS_Q_DEVICE_LIST,
	SS_Q_PRODUCT_ADD,
	SS_Q_PRODUCT_GET,
	SS_Q_PRODUCT_LIST,
	SS_Q_GROUP_ADD,
	SS_Q_GROUP_GET,
	SS_Q_GROUP_GET_LOCK,
	SS_Q_GROUP_UPDATE,
	SS_Q_GROUP_LIST,
	SS_Q_GROUP_LIST_PRODUCT,
	SS_Q_DEVICE_GROUP_GET,
	SS_Q_DEVICE_GROUP_SET,
	SS_Q_CA_COUNT,
	SS_Q_CA_ADD,
	SS_Q_CA_LIST,
	SS_Q_CA_GET,
	SS_Q_CA_ACTIVE,
	SS_Q_CA_STATE,
	SS_Q_CA_ACTIVE_ID,
	SS_Q_CA_SET_STATE,
	SS_Q_SIGNER_ADD,
	SS_Q_SIGNER_GET,
	SS_Q_SIGNER_HAS,
	SS_Q_IMAGE_ADD,
	SS_Q_IMAGE_GET,
	SS_Q_IMAGE_GET_OS,
	SS_Q_IMAGE_DUP,
	SS_Q_IMAGE_DUP_OS,
	SS_Q_IMAGE_LIST,
	SS_Q_IMAGE_LIST_OS,
	SS_Q_IMAGE_FIND,
	SS_Q_IMAGE_FIND_OS,
	SS_Q_IMAGE_PKG,
	SS_Q_IMAGE_PKG_OS,
	SS_Q_RELEASE_SEQ,
	SS_Q_RELEASE_DUP,
	SS_Q_RELEASE_ADD,
	SS_Q_RELEASE_LIST,
	SS_Q_GROUP_LOCK,
	SS_Q_DEPLOY_SEQ,
	SS_Q_DEPLOY_ADD,
	SS_Q_DEPLOY_IMAGE_ADD,
	SS_Q_DEPLOY_LIST,
	SS_Q_REG_ADD,
	SS_Q_REG_GET,
	SS_Q_REG_KEY,
	SS_Q_DEVICE_FIND,
	SS_Q_CHECKIN_HELD,
	SS_Q_CHECKIN_CAS,
	SS_Q_CHECKIN_GET,
	SS_Q_FAILURE_ADD,
	SS_Q_FAILURE_TRIM,
	SS_Q_FAILURE_LIST,
	SS_Q_FAILURE_LIST_DEV,
	SS_Q_FAILURE_LIST_GROUP,
	SS_Q_FAILURE_LIST_COMP,
	SS_Q_CAP_SIGNER_ADD,
	SS_Q_CAP_SIGNER_GET,
	SS_Q_CAP_SIGNER_HAS,
	SS_Q_MODE_SET,
	SS_Q_MODE_GET,
	SS_Q_COUNT
};

static const struct {
	const char *sql;
	const char *types;
} ss_pg_sql[SS_Q_COUNT] = {
        [SS_Q_LOCK] = {"SELECT pg_advisory_xact_lock($1::int4, 0)", "i"},
        [SS_Q_VERSION] = {"SELECT COALESCE(MAX(version), 0) FROM schema_version", ""},
        [SS_Q_VERSION_ADD] = {"INSERT INTO schema_version (version, applied) VALUES ($1, $2)",
                              "ii"},
        [SS_Q_AUDIT_LOCK] = {"SELECT pg_advisory_xact_lock($1::int4, hashtext($2))", "it"},
        [SS_Q_AUDIT_ADD] = {"INSERT INTO audit (at, tenant_id, actor, action, target, detail) "
                            "VALUES ($1, $2, $3, $4, $5, $6)",
                            "ittttt"},
        [SS_Q_AUDIT_LIST] = {"SELECT id, at, tenant_id, actor, action, target, detail FROM audit "
                             "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                             "tii"},
        [SS_Q_TENANT_ADD] = {"INSERT INTO tenants (id, name, created) VALUES ($1, $2, $3)", "tti"},
        [SS_Q_TENANT_GET] = {"SELECT id, name, created FROM tenants WHERE id = $1", "t"},
        [SS_Q_TENANT_LOCK] = {"SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE", "t"},
        [SS_Q_TENANTS_OF_USER] = {"SELECT t.id, t.name, t.created FROM tenants t "
                                  "JOIN roles r ON r.tenant_id = t.id WHERE r.user_id = $1 "
                                  "ORDER BY t.name, t.id LIMIT $2",
                                  "ti"},
        [SS_Q_USER_ADD] = {"INSERT INTO users (id, name, is_operator, created) "
                           "VALUES ($1, $2, $3, $4)",
                           "ttii"},
        [SS_Q_USER_GET] = {"SELECT id, name, is_operator FROM users WHERE id = $1", "t"},
        [SS_Q_USER_BY_NAME] = {"SELECT id, name, is_operator FROM users WHERE name = $1", "t"},
        [SS_Q_ROLE_GET] = {"SELECT role FROM roles WHERE tenant_id = $1 AND user_id = $2", "tt"},
        [SS_Q_ROLE_ADD] = {"INSERT INTO roles (tenant_id, user_id, role) VALUES ($1, $2, $3)",
                           "tti"},
        [SS_Q_ROLE_UPDATE] = {"UPDATE roles SET role = $1 WHERE tenant_id = $2 AND user_id = $3",
                              "itt"},
        [SS_Q_ROLE_DELETE] = {"DELETE FROM roles WHERE tenant_id = $1 AND user_id = $2", "tt"},
        [SS_Q_ROLE_ADMINS] = {"SELECT COUNT(*) FROM roles WHERE tenant_id = $1 AND role = 3", "t"},
        [SS_Q_ROLE_LIST] = {"SELECT r.user_id, u.name, r.role FROM roles r "
                            "JOIN users u ON u.id = r.user_id WHERE r.tenant_id = $1 "
                            "ORDER BY u.name LIMIT $2",
                            "ti"},
        [SS_Q_TOKEN_ADD] = {"INSERT INTO tokens (id, user_id, hash, created, revoked) "
                            "VALUES ($1, $2, $3, $4, 0)",
                            "ttbi"},
        [SS_Q_TOKEN_FIND] = {"SELECT t.id, t.created, u.id, u.name, u.is_operator "
                             "FROM tokens t JOIN users u ON u.id = t.user_id "
                             "WHERE t.hash = $1 AND t.revoked = 0",
                             "b"},
        [SS_Q_TOKEN_REVOKE] = {"UPDATE tokens SET revoked = 1 "
                               "WHERE id = $1 AND user_id = $2 AND revoked = 0",
                               "tt"},
        [SS_Q_DEVICE_STATE] = {"SELECT tenant_id, released_to FROM devices WHERE id = $1 "
                               "FOR UPDATE",
                               "t"},
        [SS_Q_DEVICE_ADD] = {"INSERT INTO devices (id, tenant_id, released_to, claimed) "
                             "VALUES ($1, $2, NULL, $3)",
                             "tti"},
        [SS_Q_DEVICE_MOVE] = {"UPDATE devices SET tenant_id = $1, released_to = NULL, "
                              "claimed = $2, group_id = NULL WHERE id = $3 AND released_to = $4",
                              "titt"},
        [SS_Q_DEVICE_RELEASE] = {"UPDATE devices SET released_to = $1 "
                                 "WHERE id = $2 AND tenant_id = $3",
                                 "ttt"},
#define SS_DEV_COLS                                                                                \
	"SELECT id, tenant_id, released_to, claimed, group_id, CASE WHEN EXISTS (SELECT 1 FROM "   \
	"device_registrations r WHERE r.device_id = devices.id) THEN 1 ELSE 0 END, (SELECT "       \
	"target_gen FROM tenants t WHERE t.id = devices.tenant_id), (SELECT os_gen FROM "          \
	"service_gen) FROM devices "
        [SS_Q_DEVICE_GET] = {SS_DEV_COLS "WHERE id = $1 AND tenant_id = $2", "tt"},
        [SS_Q_DEVICE_LIST] = {SS_DEV_COLS "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                              "tti"},
        [SS_Q_DEVICE_FIND] = {SS_DEV_COLS "WHERE id = $1", "t"},
#undef SS_DEV_COLS
        [SS_Q_PRODUCT_ADD] = {"INSERT INTO products (id, tenant_id, name, description, created) "
                              "VALUES ($1, $2, $3, $4, $5)",
                              "tttti"},
        [SS_Q_PRODUCT_GET] = {"SELECT id, tenant_id, name, description, created FROM products "
                              "WHERE id = $1 AND tenant_id = $2",
                              "tt"},
        [SS_Q_PRODUCT_LIST] = {"SELECT id, tenant_id, name, description, created FROM products "
                               "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                               "tti"},
        [SS_Q_GROUP_ADD] = {"INSERT INTO device_groups (id, tenant_id, product_id, name, "
                            "description, os_feed, update_policy, created) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            "ttttttti"},
#define SS_GROUP_COLS                                                                              \
	"SELECT id, tenant_id, product_id, name, description, os_feed, update_policy, created "    \
	"FROM device_groups "
        [SS_Q_GROUP_GET] = {SS_GROUP_COLS "WHERE id = $1 AND tenant_id = $2", "tt"},
        [SS_Q_GROUP_GET_LOCK] = {SS_GROUP_COLS "WHERE id = $1 AND tenant_id = $2 FOR UPDATE", "tt"},
        [SS_Q_GROUP_UPDATE] = {"UPDATE device_groups SET name = $1, description = $2, "
                               "os_feed = $3, update_policy = $4 WHERE id = $5 AND tenant_id = $6",
                               "tttttt"},
        [SS_Q_GROUP_LIST] = {SS_GROUP_COLS "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                             "tti"},
        [SS_Q_GROUP_LIST_PRODUCT] = {SS_GROUP_COLS "WHERE tenant_id = $1 AND product_id = $2 "
                                                   "AND id > $3 ORDER BY id LIMIT $4",
                                     "ttti"},
#undef SS_GROUP_COLS
        [SS_Q_DEVICE_GROUP_GET] = {"SELECT group_id FROM devices WHERE id = $1 AND tenant_id = $2 "
                                   "FOR UPDATE",
                                   "tt"},
        [SS_Q_DEVICE_GROUP_SET] = {"UPDATE devices SET group_id = $1 "
                                   "WHERE id = $2 AND tenant_id = $3",
                                   "ntt"},
#define SS_CA_COLS                                                                                 \
	"SELECT id, tenant_id, state, created, not_after, root_der, device_der, root_key, "        \
	"device_key FROM tenant_cas "
        [SS_Q_CA_COUNT] = {"SELECT COUNT(*), COALESCE(MAX(seq), 0), "
                           "COUNT(*) FILTER (WHERE state = 'Active') "
                           "FROM tenant_cas WHERE tenant_id = $1",
                           "t"},
        [SS_Q_CA_ADD] = {"INSERT INTO tenant_cas (id, tenant_id, seq, state, created, not_after, "
                         "root_der, device_der, root_key, device_key) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                         "ttitiiBBBB"},
        [SS_Q_CA_LIST] = {SS_CA_COLS "WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2", "ti"},
        [SS_Q_CA_GET] = {SS_CA_COLS "WHERE tenant_id = $1 AND id = $2", "tt"},
        [SS_Q_CA_ACTIVE] = {SS_CA_COLS "WHERE tenant_id = $1 AND state = 'Active'", "t"},
#undef SS_CA_COLS
        [SS_Q_CA_STATE] = {"SELECT state FROM tenant_cas WHERE tenant_id = $1 AND id = $2", "tt"},
        [SS_Q_CA_ACTIVE_ID] = {"SELECT id FROM tenant_cas WHERE tenant_id = $1 "
                               "AND state = 'Active'",
                               "t"},
        [SS_Q_CA_SET_STATE] = {"UPDATE tenant_cas SET state = $1 WHERE tenant_id = $2 AND id = $3",
                               "ttt"},
        [SS_Q_SIGNER_ADD] = {"INSERT INTO tenant_signers (tenant_id, created, root_der, "
                             "signer_der, root_key, signer_key) VALUES ($1, $2, $3, $4, $5, $6)",
                             "tiBBBB"},
        [SS_Q_SIGNER_GET] = {"SELECT tenant_id, created, root_der, signer_der, root_key, "
                             "signer_key FROM tenant_signers WHERE tenant_id = $1",
                             "t"},
        [SS_Q_SIGNER_HAS] = {"SELECT tenant_id FROM tenant_signers WHERE tenant_id = $1", "t"},
#define SS_IMG_COLS                                                                                \
	"SELECT id, tenant_id, component_id, type, name, version, security_version, "              \
	"payload_size, payload_sha256, package_size, package_sha256, created FROM images "
        [SS_Q_IMAGE_ADD] = {"INSERT INTO images (id, tenant_id, component_id, type, name, "
                            "version, security_version, payload_size, payload_sha256, "
                            "package_size, package_sha256, created, package) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                            "tntittiibibiB"},
        [SS_Q_IMAGE_GET] = {SS_IMG_COLS "WHERE id = $1 AND tenant_id = $2", "tt"},
        [SS_Q_IMAGE_GET_OS] = {SS_IMG_COLS "WHERE id = $1 AND tenant_id IS NULL", "t"},
        [SS_Q_IMAGE_DUP] = {"SELECT id FROM images WHERE tenant_id = $1 AND component_id = $2 "
                            "AND version = $3",
                            "ttt"},
        [SS_Q_IMAGE_DUP_OS] = {"SELECT id FROM images WHERE tenant_id IS NULL AND "
                               "component_id = $1 AND version = $2",
                               "tt"},
        [SS_Q_IMAGE_LIST] = {SS_IMG_COLS "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                             "tti"},
        [SS_Q_IMAGE_LIST_OS] = {SS_IMG_COLS "WHERE tenant_id IS NULL AND id > $1 "
                                            "ORDER BY id LIMIT $2",
                                "ti"},
        [SS_Q_IMAGE_FIND] = {SS_IMG_COLS "WHERE tenant_id = $1 AND component_id = $2 AND "
                                         "version = $3",
                             "ttt"},
        [SS_Q_IMAGE_FIND_OS] = {SS_IMG_COLS "WHERE tenant_id IS NULL AND component_id = $1 AND "
                                            "version = $2",
                                "tt"},
#undef SS_IMG_COLS
        [SS_Q_IMAGE_PKG] = {"SELECT package FROM images WHERE id = $1 AND tenant_id = $2", "tt"},
        [SS_Q_IMAGE_PKG_OS] = {"SELECT package FROM images WHERE id = $1 AND tenant_id IS NULL",
                               "t"},
        [SS_Q_RELEASE_SEQ] = {"SELECT COALESCE(MAX(seq), 0) FROM os_releases", ""},
        [SS_Q_RELEASE_DUP] = {"SELECT id FROM os_releases WHERE feed = $1 AND image_id = $2", "tt"},
        [SS_Q_RELEASE_ADD] = {"INSERT INTO os_releases (id, seq, feed, image_id, published) "
                              "VALUES ($1, $2, $3, $4, $5)",
                              "titti"},
        [SS_Q_RELEASE_LIST] = {"SELECT id, feed, image_id, published, seq FROM os_releases "
                               "WHERE feed = $1 ORDER BY seq DESC LIMIT $2",
                               "ti"},
        [SS_Q_GROUP_LOCK] = {"SELECT id FROM device_groups WHERE id = $1 AND tenant_id = $2 "
                             "FOR NO KEY UPDATE",
                             "tt"},
        [SS_Q_DEPLOY_SEQ] = {"SELECT COALESCE(MAX(seq), 0) FROM deployments WHERE group_id = $1",
                             "t"},
        [SS_Q_DEPLOY_ADD] = {"INSERT INTO deployments (id, tenant_id, group_id, seq, created) "
                             "VALUES ($1, $2, $3, $4, $5)",
                             "tttii"},
        [SS_Q_DEPLOY_IMAGE_ADD] = {"INSERT INTO deployment_images (deployment_id, pos, image_id) "
                                   "VALUES ($1, $2, $3)",
                                   "tit"},
        /* One row per image of the newest $3 deployments (LEFT JOIN: a
         * deployment without images shows as a NULL image, refused). */
        [SS_Q_DEPLOY_LIST] = {"SELECT d.id, d.tenant_id, d.group_id, d.seq, d.created, "
                              "di.image_id FROM (SELECT id, tenant_id, group_id, seq, created "
                              "FROM deployments WHERE tenant_id = $1 AND group_id = $2 "
                              "ORDER BY seq DESC LIMIT $3) d "
                              "LEFT JOIN deployment_images di ON di.deployment_id = d.id "
                              "ORDER BY d.seq DESC, di.pos",
                              "tti"},
        [SS_Q_REG_ADD] = {"INSERT INTO device_registrations (device_id, attestation_key, "
                          "registered, registered_by) VALUES ($1, $2, $3, $4)",
                          "tBit"},
        [SS_Q_REG_GET] = {"SELECT device_id, attestation_key, registered, registered_by "
                          "FROM device_registrations WHERE device_id = $1",
                          "t"},
        [SS_Q_REG_KEY] = {"SELECT device_id FROM device_registrations WHERE attestation_key = $1",
                          "B"},
        /* The device stays with the tenant until COMMIT (a release or move waits). */
        [SS_Q_CHECKIN_HELD] = {"SELECT 1 FROM devices WHERE id = $1 AND tenant_id = $2 FOR SHARE",
                               "tt"},
        /* The compare-and-set: a row changes only for a later nonce. A
         * concurrent check-in of the same device waits on the row (or the
         * key) and then re-evaluates the WHERE against the committed row. */
        [SS_Q_CHECKIN_CAS] = {"INSERT INTO device_checkins (device_id, tenant_id, last_checkin, "
                              "nonce_ms, up_to_date, cert_expires, measured) "
                              "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                              "ON CONFLICT (device_id) DO UPDATE SET tenant_id = "
                              "EXCLUDED.tenant_id, last_checkin = EXCLUDED.last_checkin, "
                              "nonce_ms = EXCLUDED.nonce_ms, up_to_date = EXCLUDED.up_to_date, "
                              "cert_expires = CASE WHEN EXCLUDED.cert_expires > 0 THEN "
                              "EXCLUDED.cert_expires WHEN device_checkins.tenant_id = "
                              "EXCLUDED.tenant_id THEN device_checkins.cert_expires ELSE 0 END, "
                              "measured = EXCLUDED.measured "
                              "WHERE device_checkins.nonce_ms < EXCLUDED.nonce_ms",
                              "ttiiiit"},
        [SS_Q_CHECKIN_GET] = {"SELECT device_id, tenant_id, last_checkin, nonce_ms, up_to_date, "
                              "cert_expires, measured FROM device_checkins WHERE device_id = $1",
                              "t"},
        [SS_Q_FAILURE_ADD] = {"INSERT INTO device_failures (device_id, tenant_id, at, component, "
                              "kind, code, text) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                              "ttitiit"},
        [SS_Q_FAILURE_TRIM] = {"DELETE FROM device_failures WHERE device_id = $1 AND (at < $2 OR "
                               "id NOT IN (SELECT id FROM device_failures WHERE device_id = $3 "
                               "ORDER BY id DESC LIMIT $4))",
                               "titi"},
#define SS_FAIL_COLS                                                                               \
	"SELECT id, device_id, tenant_id, at, component, kind, code, text FROM device_failures "
        [SS_Q_FAILURE_LIST] = {SS_FAIL_COLS "WHERE tenant_id = $1 AND id < $2 "
                                            "ORDER BY id DESC LIMIT $3",
                               "tii"},
        [SS_Q_FAILURE_LIST_DEV] = {SS_FAIL_COLS "WHERE tenant_id = $1 AND device_id = $2 AND "
                                                "id < $3 ORDER BY id DESC LIMIT $4",
                                   "ttii"},
        [SS_Q_FAILURE_LIST_GROUP] = {SS_FAIL_COLS "WHERE tenant_id = $1 AND device_id IN (SELECT "
                                                  "id FROM devices WHERE tenant_id = $1 AND "
                                                  "group_id = $2) AND id < $3 ORDER BY id DESC "
                                                  "LIMIT $4",
                                     "ttii"},
        [SS_Q_FAILURE_LIST_COMP] = {SS_FAIL_COLS "WHERE tenant_id = $1 AND component = $2 AND "
                                                 "id < $3 ORDER BY id DESC LIMIT $4",
                                    "ttii"},
#undef SS_FAIL_COLS
        [SS_Q_CAP_SIGNER_ADD] = {"INSERT INTO tenant_cap_signers (tenant_id, created, "
                                 "signer_der, signer_key) VALUES ($1, $2, $3, $4)",
                                 "tiBB"},
        [SS_Q_CAP_SIGNER_GET] = {"SELECT tenant_id, created, signer_der, signer_key "
                                 "FROM tenant_cap_signers WHERE tenant_id = $1",
                                 "t"},
        [SS_Q_CAP_SIGNER_HAS] = {"SELECT tenant_id FROM tenant_cap_signers WHERE tenant_id = $1",
                                 "t"},
        [SS_Q_MODE_SET] = {"INSERT INTO device_modes (device_id, tenant_id, mode, updated) "
                           "VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET "
                           "tenant_id = EXCLUDED.tenant_id, mode = EXCLUDED.mode, "
                           "updated = EXCLUDED.updated",
                           "ttti"},
        [SS_Q_MODE_GET] = {"SELECT mode FROM device_modes WHERE device_id = $1 AND tenant_id = $2",
                           "tt"},
};

struct ss_pg_conn {
	pthread_mutex_t mu;
	PGconn *conn;
	bool prepared[SS_Q_COUNT];
	bool broken;        /* reset it before the next use */
	const char *op;     /* the running operation, for logs */
	bool retry;         /* the last failure was 40001 / 40P01: run the transaction again */
	int64_t changes;    /* rows the last command changed */
	const char *secret; /* the URL's password ("" if none): never logged */
};

struct ss_pg {
	struct ss_pg_conn conn[SS_PG_CONNS];
	size_t nconn; /* connections whose mutex is initialised */
	atomic_uint next;
	char *password; /* a copy, to keep it out of logs; wiped on close */
};

/* Everything one operation needs; each callback reads its own fields. */
struct ss_pg_args {
	const char *tenant_id, *user_id, *device_id, *to_tenant, *token_id, *actor, *after;
	const char *name;
	const uint8_t *hash;
	enum ss_role role;
	int64_t after_id;
	int64_t when;
	const void *in;
	void *out, *out2;
	size_t cap;
	size_t *n;
	int version;
	bool more;
	const char *product_id, *group_id;
	const void *in2;
	size_t ngroups;
};

typedef int (*ss_pg_fn)(struct ss_pg_conn *c, struct ss_pg_args *a);

/* ---- low-level helpers -------------------------------------------------------- */

static const char *ss_pg_s(const char *s)
{
	return s ? s : "";
}

/* Logs a libpq connection message on one line, unless it could hold the
 * password (libpq may echo a malformed URL). */
static void ss_pg_log_conn(struct ss_pg_conn *c, const char *event)
{
	char msg[256];
	const char *m = c->conn ? PQerrorMessage(c->conn) : "out of memory";
	size_t i;

	if (c->secret[0] && strstr(m, c->secret))
		m = "(withheld: it quotes the URL)";
	for (i = 0; m[i] && i < sizeof(msg) - 1; i++)
		msg[i] = (m[i] == '\n' || m[i] == '\r' || m[i] == '\t' || m[i] == '"') ? ' ' : m[i];
	while (i && msg[i - 1] == ' ')
		i--;
	msg[i] = '\0';
	sph_log(SPH_LOG_ERROR, "ss_store", event, "backend=postgresql op=%s msg=\"%s\"",
	        ss_pg_s(c->op), msg);
}

/* Maps a failed result (or NULL: no result at all) to a status. Expected
 * refusals are not logged; what is logged names the SQLSTATE and the
 * objects, never a value. */
static int ss_pg_err(struct ss_pg_conn *c, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		c->broken = true;
		ss_pg_log_conn(c, "db_connection_lost");
		return SPH_ERR_IO;
	}
	if (!state) {
		ss_pg_log_conn(c, "db_error");
		return SPH_ERR_IO;
	}
	if (strcmp(state, "23505") == 0) /* unique_violation */
		return SPH_ERR_DUPLICATE;
	if (strcmp(state, "23503") == 0) /* foreign_key_violation */
		return SPH_ERR_NOT_FOUND;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		c->retry = true; /* serialization_failure, deadlock_detected */
		return SPH_ERR_IO;
	}
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		c->broken = true; /* connection exception, operator intervention */
	sph_log(SPH_LOG_ERROR, "ss_store", "db_error",
	        "backend=postgresql op=%s sqlstate=%s table=%s column=%s constraint=%s",
	        ss_pg_s(c->op), state, ss_pg_s(PQresultErrorField(r, PG_DIAG_TABLE_NAME)),
	        ss_pg_s(PQresultErrorField(r, PG_DIAG_COLUMN_NAME)),
	        ss_pg_s(PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME)));
	return SPH_ERR_IO;
}

static int ss_pg_corrupt(struct ss_pg_conn *c, const char *what)
{
	sph_log(SPH_LOG_ERROR, "ss_store", "db_corrupt", "backend=postgresql op=%s column=%s",
	        ss_pg_s(c->op), what);
	return SPH_ERR_CORRUPT;
}

/* Runs a fixed command without parameters (one or more statements). */
static int ss_pg_cmd(struct ss_pg_conn *c, const char *sql)
{
	PGresult *r = PQexec(c->conn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = ss_pg_err(c, r);
	PQclear(r);
	return rc;
}

/* Reads the row count of a command tag ("UPDATE 1" -> 1; none -> 0). */
static int64_t ss_pg_count(const PGresult *r)
{
	const char *s = PQcmdTuples((PGresult *)r);
	int64_t v = 0;

	for (; s && *s >= '0' && *s <= '9' && v < INT64_MAX / 10 - 10; s++)
		v = v * 10 + (*s - '0');
	return v;
}

/* Runs statement q with its parameters (binary in, binary out). Returns 0
 * and *out (PQclear it), or a negative status. */
static int ss_pg_vquery(struct ss_pg_conn *c, enum ss_pg_q q, PGresult **out, va_list ap)
{
	const char *types = ss_pg_sql[q].types;
	const char *vals[SS_PG_MAX_PARAMS];
	int lens[SS_PG_MAX_PARAMS], fmts[SS_PG_MAX_PARAMS];
	uint8_t ints[SS_PG_MAX_PARAMS][8];
	char name[16];
	PGresult *r = NULL;
	int np = (int)strlen(types);
	int rc = SPH_ERR_INVALID_ARG;

	*out = NULL;
	if (np > SS_PG_MAX_PARAMS)
		goto out;
	snprintf(name, sizeof(name), "ss_q%d", (int)q);
	if (!c->prepared[q]) {
		Oid oids[SS_PG_MAX_PARAMS];
		for (int i = 0; i < np; i++)
			oids[i] = types[i] == 'i'                      ? SS_PG_INT8
			          : types[i] == 'b' || types[i] == 'B' ? SS_PG_BYTEA
			                                               : SS_PG_TEXT;
		r = PQprepare(c->conn, name, ss_pg_sql[q].sql, np, oids);
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
			rc = ss_pg_err(c, r);
			goto out;
		}
		PQclear(r);
		r = NULL;
		c->prepared[q] = true;
	}
	for (int i = 0; i < np; i++) {
		fmts[i] = 1;
		switch (types[i]) {
		case 't':
		case 'n':
			vals[i] = va_arg(ap, const char *);
			lens[i] = (int)strlen(vals[i]);
			if (types[i] == 'n' && !vals[i][0])
				vals[i] = NULL;
			break;
		case 'i': {
			uint64_t v = (uint64_t)va_arg(ap, int64_t);
			for (int k = 7; k >= 0; k--, v >>= 8)
				ints[i][k] = (uint8_t)v;
			vals[i] = (const char *)ints[i];
			lens[i] = 8;
			break;
		}
		case 'b':
			vals[i] = (const char *)va_arg(ap, const uint8_t *);
			lens[i] = 32;
			break;
		case 'B': {
			vals[i] = (const char *)va_arg(ap, const uint8_t *);
			size_t len = va_arg(ap, size_t);
			if (len > (size_t)INT32_MAX)
				goto out;
			lens[i] = (int)len;
			break;
		}
		default:
			goto out;
		}
	}
	r = PQexecPrepared(c->conn, name, np, vals, lens, fmts, 1);
	if (!r || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)) {
		rc = ss_pg_err(c, r);
		goto out;
	}
	c->changes = ss_pg_count(r);
	*out = r;
	r = NULL; /* transferred */
	rc = 0;
out:
	PQclear(r);
	return rc;
}

static int ss_pg_query(struct ss_pg_conn *c, enum ss_pg_q q, PGresult **out, ...)
{
	va_list ap;
	int rc;

	va_start(ap, out);
	rc = ss_pg_vquery(c, q, out, ap);
	va_end(ap);
	return rc;
}

/* Runs statement q for its effect (c->changes: the rows it changed). */
static int ss_pg_exec(struct ss_pg_conn *c, enum ss_pg_q q, ...)
{
	PGresult *r = NULL;
	va_list ap;
	int rc;

	va_start(ap, q);
	rc = ss_pg_vquery(c, q, &r, ap);
	va_end(ap);
	PQclear(r);
	return rc;
}

/* Copies text column col of row into dst[cap]: 1..cap-1 bytes without NUL;
 * NULL or "" gives "" only when empty_ok. */
static int ss_pg_text(struct ss_pg_conn *c, const PGresult *r, int row, int col, char *dst,
                      size_t cap, bool empty_ok)
{
	const char *v;
	int len;

	dst[0] = '\0';
	if (PQgetisnull(r, row, col))
		return empty_ok ? 0 : ss_pg_corrupt(c, PQfname(r, col));
	v = PQgetvalue(r, row, col);
	len = PQgetlength(r, row, col);
	if (PQftype(r, col) != SS_PG_TEXT || len < 0 || (size_t)len >= cap ||
	    memchr(v, '\0', (size_t)len) || (len == 0 && !empty_ok))
		return ss_pg_corrupt(c, PQfname(r, col));
	memcpy(dst, v, (size_t)len);
	dst[len] = '\0';
	return 0;
}

/* Reads an integer column (int2, int4 or int8; never NULL). */
static int ss_pg_int(struct ss_pg_conn *c, const PGresult *r, int row, int col, int64_t *out)
{
	const uint8_t *v = (const uint8_t *)PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	Oid t = PQftype(r, col);
	uint64_t u = 0;

	*out = 0;
	if (PQgetisnull(r, row, col) ||
	    !((t == SS_PG_INT2 && len == 2) || (t == SS_PG_INT4 && len == 4) ||
	      (t == SS_PG_INT8 && len == 8)))
		return ss_pg_corrupt(c, PQfname(r, col));
	for (int i = 0; i < len; i++)
		u = u << 8 | v[i];
	if (len < 8 && (v[0] & 0x80)) /* sign-extend */
		u |= ~(uint64_t)0 << (len * 8);
	*out = (int64_t)u;
	return 0;
}

/* Reads a bytea column into dst[cap] (1..cap bytes). */
static int ss_pg_blob(struct ss_pg_conn *c, const PGresult *r, int row, int col, uint8_t *dst,
                      size_t cap, size_t *len)
{
	int n = PQgetlength(r, row, col);

	*len = 0;
	if (PQgetisnull(r, row, col) || PQftype(r, col) != SS_PG_BYTEA || n <= 0 || (size_t)n > cap)
		return ss_pg_corrupt(c, PQfname(r, col));
	memcpy(dst, PQgetvalue(r, row, col), (size_t)n);
	*len = (size_t)n;
	return 0;
}

/* ---- connections and transactions ------------------------------------------- */

static int64_t ss_pg_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ss_pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* notices may quote values: dropped */
}

/* Sets up a fresh (or reset) session: prepared statements are gone. */
static int ss_pg_session_init(struct ss_pg_conn *c)
{
	memset(c->prepared, 0, sizeof(c->prepared));
	PQsetNoticeProcessor(c->conn, ss_pg_notice, NULL);
	return ss_pg_cmd(c, ss_pg_session);
}

/* Makes the connection usable: resets it if it was found broken. */
static int ss_pg_ready(struct ss_pg_conn *c)
{
	if (!c->broken && PQstatus(c->conn) == CONNECTION_OK)
		return 0;
	PQreset(c->conn);
	if (PQstatus(c->conn) != CONNECTION_OK) {
		ss_pg_log_conn(c, "db_connect");
		return SPH_ERR_IO;
	}
	c->broken = false;
	sph_log(SPH_LOG_WARN, "ss_store", "db_reconnected", "backend=postgresql op=%s",
	        ss_pg_s(c->op));
	return ss_pg_session_init(c);
}

static struct ss_pg_conn *ss_pg_acquire(struct ss_pg *p)
{
	unsigned start = atomic_fetch_add(&p->next, 1u);
	struct ss_pg_conn *c;

	for (unsigned i = 0; i < SS_PG_CONNS; i++) {
		c = &p->conn[(start + i) % SS_PG_CONNS];
		if (pthread_mutex_trylock(&c->mu) == 0)
			return c;
	}
	c = &p->conn[start % SS_PG_CONNS];
	pthread_mutex_lock(&c->mu);
	return c;
}

static void ss_pg_release(struct ss_pg_conn *c)
{
	c->op = NULL;
	pthread_mutex_unlock(&c->mu);
}

/* Runs fn on a pooled connection: inside BEGIN ... COMMIT when write (rolled
 * back on any failure), and again after a serialization failure or deadlock,
 * for at most SS_PG_RETRY_MS. A connection found dead (a restarted server)
 * is reset and the call replayed once when that is safe: a read, or a write
 * whose BEGIN never went through. A write lost later fails (SPH_ERR_IO): it
 * may or may not have committed. */
static int ss_pg_run(struct ss_pg *p, const char *op, bool write, ss_pg_fn fn, struct ss_pg_args *a)
{
	struct ss_pg_conn *c = ss_pg_acquire(p);
	int64_t start = ss_pg_ms();
	bool replayed = false;
	int rc;

	for (unsigned attempt = 0;; attempt++) {
		bool replay_ok = !write;
		c->op = op;
		c->retry = false;
		rc = ss_pg_ready(c);
		if (rc)
			break; /* cannot reconnect now: logged */
		if (write) {
			rc = ss_pg_cmd(c, "BEGIN");
			replay_ok = rc != 0;
		}
		if (rc == 0)
			rc = fn(c, a);
		if (rc == 0 && write) {
			PGresult *r = PQexec(c->conn, "COMMIT");
			if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
				rc = ss_pg_err(c, r);
			else if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
				rc = ss_pg_corrupt(c, "commit"); /* rolled back: cannot happen */
			PQclear(r);
		}
		if (!c->broken && PQtransactionStatus(c->conn) != PQTRANS_IDLE) {
			bool retry = c->retry;
			ss_pg_cmd(c, "ROLLBACK");
			c->retry = retry;
		}
		if (rc && c->broken && replay_ok && !replayed) {
			replayed = true;
			continue;
		}
		if (rc == 0 || !c->retry || c->broken || ss_pg_ms() - start >= SS_PG_RETRY_MS)
			break;
		struct timespec ts = {0, (long)(1 + (attempt < 20 ? attempt : 20)) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (rc && c->retry)
		sph_log(SPH_LOG_ERROR, "ss_store", "db_busy", "backend=postgresql op=%s ms=%lld",
		        op, (long long)(ss_pg_ms() - start));
	ss_pg_release(c);
	return rc;
}

static void ss_pg_close(void *be)
{
	struct ss_pg *p = be;

	if (!p)
		return;
	for (size_t i = 0; i < p->nconn; i++) {
		PQfinish(p->conn[i].conn);
		pthread_mutex_destroy(&p->conn[i].mu);
	}
	if (p->password) {
		OPENSSL_cleanse(p->password, strlen(p->password));
		free(p->password);
	}
	free(p);
}

/* One migration step: brings the schema one version forward (a->more). The
 * advisory lock makes two services opening one database take turns. */
static int ss_pg_migrate_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int64_t v = 0;
	int rc;

	a->more = false;
	rc = ss_pg_exec(c, SS_Q_LOCK, (int64_t)SS_PG_LOCK_MIGRATE);
	if (!rc)
		rc = ss_pg_cmd(c, ss_pg_version_table);
	if (!rc)
		rc = ss_pg_query(c, SS_Q_VERSION, &r);
	if (!rc)
		rc = PQntuples(r) == 1 ? ss_pg_int(c, r, 0, 0, &v) : ss_pg_corrupt(c, "version");
	PQclear(r);
	if (rc)
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (v < 0 || v > SS_PG_SCHEMA) {
		sph_log(SPH_LOG_ERROR, "ss_store", "db_schema_unknown",
		        "backend=postgresql version=%lld known=%d", (long long)v, SS_PG_SCHEMA);
		goto out;
	}
	rc = 0;
	if (v == SS_PG_SCHEMA)
		goto out;
	rc = ss_pg_cmd(c, ss_pg_migrations[v]);
	if (!rc)
		rc = ss_pg_exec(c, SS_Q_VERSION_ADD, (int64_t)(v + 1), ss_store_now());
	if (rc)
		goto out;
	sph_log(SPH_LOG_INFO, "ss_store", "db_migrated", "backend=postgresql version=%lld",
	        (long long)(v + 1));
	a->more = true;
out:
	return rc;
}

/* Connects one pooled connection. The URL's own settings win over the
 * defaults put before it (libpq: the last value of a keyword is used). */
static int ss_pg_conn_open(struct ss_pg_conn *c, const char *url)
{
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {SS_PG_TIMEOUT_S, "sphere-ss", url, NULL};
	int rc = SPH_ERR_IO;

	c->op = "open";
	c->conn = PQconnectdbParams(keys, vals, 1);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		ss_pg_log_conn(c, "db_connect");
		goto out;
	}
	rc = ss_pg_session_init(c);
out:
	c->op = NULL;
	return rc;
}

/* The URL's password ("" if none) in *out (free it), so logs can avoid it.
 * A URL libpq cannot parse: SPH_ERR_INVALID_ARG. */
static int ss_pg_password(const char *url, char **out)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	const char *pw = "";
	int rc = SPH_ERR_INVALID_ARG;

	*out = NULL;
	if (!opts)
		goto out; /* the error text could quote the URL: not logged */
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val)
			pw = o->val;
	rc = SPH_ERR_NOMEM;
	*out = strdup(pw);
	if (*out)
		rc = 0;
out:
	if (opts) {
		for (PQconninfoOption *o = opts; o->keyword; o++)
			if (o->val)
				OPENSSL_cleanse(o->val, strlen(o->val));
		PQconninfoFree(opts);
	}
	return rc;
}

static int ss_pg_open(const char *url, void **be)
{
	struct ss_pg *p = NULL;
	struct ss_pg_args a = {0};
	int rc = SPH_ERR_UNSUPPORTED;

	*be = NULL;
	if (!PQisthreadsafe())
		goto out;
	rc = SPH_ERR_NOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out;
	rc = ss_pg_password(url, &p->password);
	if (rc) {
		if (rc == SPH_ERR_INVALID_ARG)
			sph_log(SPH_LOG_ERROR, "ss_store", "db_url",
			        "backend=postgresql msg=\"%s\"", "libpq cannot parse the URL");
		goto out;
	}
	for (size_t i = 0; i < SS_PG_CONNS; i++) {
		rc = SPH_ERR_IO;
		p->conn[i].secret = p->password;
		if (pthread_mutex_init(&p->conn[i].mu, NULL) != 0)
			goto out;
		p->nconn++;
		rc = ss_pg_conn_open(&p->conn[i], url);
		if (rc)
			goto out;
	}
	do
		rc = ss_pg_run(p, "migrate", true, ss_pg_migrate_fn, &a);
	while (rc == 0 && a.more);
	if (rc)
		goto out;
	*be = p;
	p = NULL; /* transferred */
out:
	ss_pg_close(p);
	return rc;
}

/* ---- rows --------------------------------------------------------------------- */

static int ss_pg_tenant_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_tenant *t = out;
	int rc = ss_pg_text(c, r, row, 0, t->id, sizeof(t->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, t->name, sizeof(t->name), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 2, &t->created);
	return rc;
}

static int ss_pg_user_at(struct ss_pg_conn *c, const PGresult *r, int row, int col,
                         struct ss_user *u)
{
	int64_t op = 0;
	int rc = ss_pg_text(c, r, row, col, u->id, sizeof(u->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, col + 1, u->name, sizeof(u->name), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, col + 2, &op);
	u->is_operator = op != 0;
	return rc;
}

static int ss_pg_user_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	return ss_pg_user_at(c, r, row, 0, out);
}

static int ss_pg_device_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_device *d = out;
	int64_t reg = 0;
	int rc = ss_pg_text(c, r, row, 0, d->id, sizeof(d->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, d->tenant_id, sizeof(d->tenant_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, d->released_to, sizeof(d->released_to), true);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &d->claimed);
	if (!rc)
		rc = ss_pg_text(c, r, row, 4, d->group_id, sizeof(d->group_id), true);
	if (!rc)
		rc = ss_pg_int(c, r, row, 5, &reg);
	d->registered = reg != 0;
	if (!rc)
		rc = ss_pg_int(c, r, row, 6, &d->target_gen);
	if (!rc)
		rc = ss_pg_int(c, r, row, 7, &d->os_gen);
	return rc;
}

static int ss_pg_audit_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_audit *e = out;
	int rc = ss_pg_int(c, r, row, 0, &e->id);

	if (!rc)
		rc = ss_pg_int(c, r, row, 1, &e->at);
	/* tenant_id, actor and detail may be "". */
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, e->tenant_id, sizeof(e->tenant_id), true);
	if (!rc)
		rc = ss_pg_text(c, r, row, 3, e->actor, sizeof(e->actor), true);
	if (!rc)
		rc = ss_pg_text(c, r, row, 4, e->action, sizeof(e->action), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 5, e->target, sizeof(e->target), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 6, e->detail, sizeof(e->detail), true);
	return rc;
}

/* Reads a role column (1..3). */
static int ss_pg_role_col(struct ss_pg_conn *c, const PGresult *r, int row, int col,
                          enum ss_role *role)
{
	int64_t v = 0;
	int rc = ss_pg_int(c, r, row, col, &v);

	if (!rc && (v < SS_ROLE_READER || v > SS_ROLE_ADMIN))
		rc = ss_pg_corrupt(c, "role");
	if (!rc)
		*role = (enum ss_role)v;
	return rc;
}

static int ss_pg_product_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_product *p = out;
	int rc = ss_pg_text(c, r, row, 0, p->id, sizeof(p->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, p->tenant_id, sizeof(p->tenant_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, p->name, sizeof(p->name), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 3, p->description, sizeof(p->description), true);
	if (!rc)
		rc = ss_pg_int(c, r, row, 4, &p->created);
	return rc;
}

static int ss_pg_group_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_group *g = out;
	char feed[16], policy[32];
	int rc = ss_pg_text(c, r, row, 0, g->id, sizeof(g->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, g->tenant_id, sizeof(g->tenant_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, g->product_id, sizeof(g->product_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 3, g->name, sizeof(g->name), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 4, g->description, sizeof(g->description), true);
	if (!rc)
		rc = ss_pg_text(c, r, row, 5, feed, sizeof(feed), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 6, policy, sizeof(policy), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 7, &g->created);
	if (rc)
		return rc;
	g->os_feed = ss_os_feed_from_name(feed);
	g->update_policy = ss_update_policy_from_name(policy);
	if (g->os_feed == SS_FEED_NONE)
		return ss_pg_corrupt(c, "os_feed");
	if (g->update_policy == SS_POLICY_NONE)
		return ss_pg_corrupt(c, "update_policy");
	return 0;
}

static int ss_pg_ca_state_col(struct ss_pg_conn *c, const PGresult *r, int row, int col,
                              enum ss_ca_state *state)
{
	char v[16];
	int rc = ss_pg_text(c, r, row, col, v, sizeof(v), false);

	*state = rc ? (enum ss_ca_state)0 : ss_ca_state_from_name(v);
	return rc ? rc : *state ? 0 : ss_pg_corrupt(c, "state");
}

static int ss_pg_ca_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_ca_record *e = out;
	int rc = ss_pg_text(c, r, row, 0, e->id, sizeof(e->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, e->tenant_id, sizeof(e->tenant_id), false);
	if (!rc)
		rc = ss_pg_ca_state_col(c, r, row, 2, &e->state);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &e->created);
	if (!rc)
		rc = ss_pg_int(c, r, row, 4, &e->not_after);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 5, e->root_der, sizeof(e->root_der), &e->root_der_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 6, e->device_der, sizeof(e->device_der),
		                &e->device_der_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 7, e->root_key, sizeof(e->root_key), &e->root_key_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 8, e->device_key, sizeof(e->device_key),
		                &e->device_key_len);
	return rc;
}

typedef int (*ss_pg_row_fn)(struct ss_pg_conn *c, const PGresult *r, int row, void *out);

/* A one-row lookup: statement q with one or two text parameters (p2 NULL for
 * one), the row read by row(); no row: SPH_ERR_NOT_FOUND. */
static int ss_pg_get1(struct ss_pg_conn *c, enum ss_pg_q q, const char *p1, const char *p2,
                      ss_pg_row_fn row, void *out)
{
	PGresult *r = NULL;
	int rc = p2 ? ss_pg_query(c, q, &r, p1, p2) : ss_pg_query(c, q, &r, p1);

	if (!rc)
		rc = PQntuples(r) < 1 ? SPH_ERR_NOT_FOUND : row(c, r, 0, out);
	PQclear(r);
	return rc;
}

/* Reads every row of r (at most cap) into out[] of elem-byte records. */
static int ss_pg_rows(struct ss_pg_conn *c, const PGresult *r, ss_pg_row_fn row, void *out,
                      size_t elem, size_t cap, size_t *n)
{
	int rows = PQntuples(r);
	int rc = 0;

	*n = 0;
	for (int i = 0; !rc && i < rows && *n < cap; i++) {
		rc = row(c, r, i, (uint8_t *)out + *n * elem);
		if (!rc)
			(*n)++;
	}
	return rc;
}

/* 0 if statement q (one id parameter) finds a row, else SPH_ERR_NOT_FOUND. */
static int ss_pg_exists(struct ss_pg_conn *c, enum ss_pg_q q, const char *id)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, q, &r, id);

	if (!rc && PQntuples(r) < 1)
		rc = SPH_ERR_NOT_FOUND;
	PQclear(r);
	return rc;
}

/* The same with two text parameters. */
static int ss_pg_exists2(struct ss_pg_conn *c, enum ss_pg_q q, const char *p1, const char *p2)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, q, &r, p1, p2);

	if (!rc && PQntuples(r) < 1)
		rc = SPH_ERR_NOT_FOUND;
	PQclear(r);
	return rc;
}

/* Appends an audit row under the tenant's audit lock (held to COMMIT). */
static int ss_pg_audit(struct ss_pg_conn *c, const char *tenant_id, const char *actor,
                       const char *action, const char *target, const char *detail)
{
	int rc = ss_pg_exec(c, SS_Q_AUDIT_LOCK, (int64_t)SS_PG_LOCK_AUDIT, tenant_id);

	if (!rc)
		rc = ss_pg_exec(c, SS_Q_AUDIT_ADD, ss_store_now(), tenant_id, actor, action, target,
		                detail);
	return rc;
}

/* Runs a list query and reads its rows; on failure the output is zeroed. */
static int ss_pg_list_done(int rc, void *out, size_t elem, size_t cap, size_t *n)
{
	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * elem);
	}
	return rc;
}

/* ---- operations ----------------------------------------------------------------- */

static int ss_pg_version_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int64_t v = 0;
	int rc = ss_pg_query(c, SS_Q_VERSION, &r);

	if (!rc)
		rc = PQntuples(r) == 1 ? ss_pg_int(c, r, 0, 0, &v) : ss_pg_corrupt(c, "version");
	if (!rc)
		a->version = (int)v;
	PQclear(r);
	return rc;
}

static int ss_pg_schema_version(void *be, int *version)
{
	struct ss_pg_args a = {0};
	int rc = ss_pg_run(be, "schema_version", false, ss_pg_version_fn, &a);

	if (!rc)
		*version = a.version;
	return rc;
}

static int ss_pg_tenant_create_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_tenant *t = a->in;
	int rc = ss_pg_exec(c, SS_Q_TENANT_ADD, t->id, t->name, t->created);

	if (!rc)
		rc = ss_pg_audit(c, t->id, a->actor, "tenant.create", t->id, t->name);
	return rc;
}

static int ss_pg_tenant_create(void *be, const struct ss_tenant *t, const char *actor)
{
	struct ss_pg_args a = {.in = t, .actor = actor};

	return ss_pg_run(be, "tenant_create", true, ss_pg_tenant_create_fn, &a);
}

static int ss_pg_tenant_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_TENANT_GET, a->tenant_id, NULL, ss_pg_tenant_row, a->out);
}

static int ss_pg_tenant_get(void *be, const char *id, struct ss_tenant *out)
{
	struct ss_pg_args a = {.tenant_id = id, .out = out};
	int rc = ss_pg_run(be, "tenant_get", false, ss_pg_tenant_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_tenants_of_user_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_TENANTS_OF_USER, &r, a->user_id, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_tenant_row, a->out, sizeof(struct ss_tenant), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_tenant_list_for_user(void *be, const char *user_id, struct ss_tenant *out,
                                      size_t cap, size_t *n)
{
	struct ss_pg_args a = {.user_id = user_id, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "tenant_list_for_user", false, ss_pg_tenants_of_user_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_user_create_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_user *u = a->in;

	return ss_pg_exec(c, SS_Q_USER_ADD, u->id, u->name, (int64_t)u->is_operator, a->when);
}

static int ss_pg_user_create(void *be, const struct ss_user *u, int64_t created)
{
	struct ss_pg_args a = {.in = u, .when = created};

	return ss_pg_run(be, "user_create", true, ss_pg_user_create_fn, &a);
}

static int ss_pg_user_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, a->name ? SS_Q_USER_BY_NAME : SS_Q_USER_GET,
	                  a->name ? a->name : a->user_id, NULL, ss_pg_user_row, a->out);
}

static int ss_pg_user_get(void *be, const char *id, struct ss_user *out)
{
	struct ss_pg_args a = {.user_id = id, .out = out};
	int rc = ss_pg_run(be, "user_get", false, ss_pg_user_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_user_by_name(void *be, const char *name, struct ss_user *out)
{
	struct ss_pg_args a = {.name = name, .out = out};
	int rc = ss_pg_run(be, "user_by_name", false, ss_pg_user_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* The user's role in the tenant, SS_ROLE_NONE if none. */
static int ss_pg_role_of(struct ss_pg_conn *c, const char *tenant_id, const char *user_id,
                         enum ss_role *role)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_ROLE_GET, &r, tenant_id, user_id);

	*role = SS_ROLE_NONE;
	if (!rc && PQntuples(r) > 0)
		rc = ss_pg_role_col(c, r, 0, 0, role);
	PQclear(r);
	return rc;
}

static int ss_pg_role_set_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const char *detail = a->role == SS_ROLE_NONE ? "None" : ss_role_name(a->role);
	PGresult *r = NULL;
	enum ss_role cur = SS_ROLE_NONE;
	int64_t admins = 0;
	int rc;

	/* The tenant's row lock orders every role change of the tenant, so
	 * "is this the last Administrator?" is answered on current rows. */
	rc = ss_pg_exists(c, SS_Q_TENANT_LOCK, a->tenant_id);
	if (!rc)
		rc = ss_pg_exists(c, SS_Q_USER_GET, a->user_id);
	if (!rc)
		rc = ss_pg_role_of(c, a->tenant_id, a->user_id, &cur);
	if (rc)
		goto out;
	if (cur == SS_ROLE_ADMIN && a->role != SS_ROLE_ADMIN) {
		rc = ss_pg_query(c, SS_Q_ROLE_ADMINS, &r, a->tenant_id);
		if (!rc)
			rc = PQntuples(r) == 1 ? ss_pg_int(c, r, 0, 0, &admins)
			                       : ss_pg_corrupt(c, "role");
		PQclear(r);
		if (!rc && admins <= 1)
			rc = SPH_ERR_STATE;
		if (rc)
			goto out;
	}
	if (a->role == SS_ROLE_NONE)
		rc = cur == SS_ROLE_NONE
		             ? SPH_ERR_NOT_FOUND
		             : ss_pg_exec(c, SS_Q_ROLE_DELETE, a->tenant_id, a->user_id);
	else if (cur == SS_ROLE_NONE)
		rc = ss_pg_exec(c, SS_Q_ROLE_ADD, a->tenant_id, a->user_id, (int64_t)a->role);
	else
		rc = ss_pg_exec(c, SS_Q_ROLE_UPDATE, (int64_t)a->role, a->tenant_id, a->user_id);
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "role.set", a->user_id, detail);
out:
	return rc;
}

static int ss_pg_role_set(void *be, const char *tenant_id, const char *user_id, enum ss_role role,
                          const char *actor)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .user_id = user_id, .role = role, .actor = actor};

	return ss_pg_run(be, "role_set", true, ss_pg_role_set_fn, &a);
}

static int ss_pg_role_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_role_of(c, a->tenant_id, a->user_id, a->out);
}

static int ss_pg_role_get(void *be, const char *tenant_id, const char *user_id, enum ss_role *role)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .user_id = user_id, .out = role};
	int rc = ss_pg_run(be, "role_get", false, ss_pg_role_get_fn, &a);

	if (rc)
		*role = SS_ROLE_NONE;
	return rc;
}

static int ss_pg_role_entry_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_role_entry *e = out;
	int rc = ss_pg_text(c, r, row, 0, e->user_id, sizeof(e->user_id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, e->user_name, sizeof(e->user_name), false);
	if (!rc)
		rc = ss_pg_role_col(c, r, row, 2, &e->role);
	return rc;
}

static int ss_pg_role_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_ROLE_LIST, &r, a->tenant_id, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_role_entry_row, a->out, sizeof(struct ss_role_entry),
		                a->cap, a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_role_list(void *be, const char *tenant_id, struct ss_role_entry *out, size_t cap,
                           size_t *n)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "role_list", false, ss_pg_role_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_token_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_token *t = a->in;
	int rc = ss_pg_exists(c, SS_Q_USER_GET, t->user_id);

	if (!rc)
		rc = ss_pg_exec(c, SS_Q_TOKEN_ADD, t->id, t->user_id, a->hash, t->created);
	return rc;
}

static int ss_pg_token_add(void *be, const struct ss_token *tok, const uint8_t hash[32])
{
	struct ss_pg_args a = {.in = tok, .hash = hash};

	return ss_pg_run(be, "token_add", true, ss_pg_token_add_fn, &a);
}

static int ss_pg_token_find_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	struct ss_token *t = a->out;
	struct ss_user *u = a->out2;
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_TOKEN_FIND, &r, a->hash);

	if (rc)
		goto out;
	rc = SPH_ERR_NOT_FOUND;
	if (PQntuples(r) < 1)
		goto out;
	rc = ss_pg_text(c, r, 0, 0, t->id, sizeof(t->id), false);
	if (!rc)
		rc = ss_pg_int(c, r, 0, 1, &t->created);
	t->revoked = false;
	if (!rc)
		rc = ss_pg_user_at(c, r, 0, 2, u);
	if (!rc)
		memcpy(t->user_id, u->id, sizeof(t->user_id));
out:
	PQclear(r);
	return rc;
}

static int ss_pg_token_find(void *be, const uint8_t hash[32], struct ss_token *tok,
                            struct ss_user *user)
{
	struct ss_pg_args a = {.hash = hash, .out = tok, .out2 = user};
	int rc = ss_pg_run(be, "token_find", false, ss_pg_token_find_fn, &a);

	if (rc) {
		memset(tok, 0, sizeof(*tok));
		memset(user, 0, sizeof(*user));
	}
	return rc;
}

static int ss_pg_token_revoke_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	int rc = ss_pg_exec(c, SS_Q_TOKEN_REVOKE, a->token_id, a->user_id);

	if (!rc && c->changes != 1)
		rc = SPH_ERR_NOT_FOUND;
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "token.revoke", a->token_id, "");
	return rc;
}

static int ss_pg_token_revoke(void *be, const char *user_id, const char *token_id,
                              const char *tenant_id, const char *actor)
{
	struct ss_pg_args a = {
	        .user_id = user_id, .token_id = token_id, .tenant_id = tenant_id, .actor = actor};

	return ss_pg_run(be, "token_revoke", true, ss_pg_token_revoke_fn, &a);
}

static int ss_pg_device_claim_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	char holder[SS_UUID_LEN + 1] = "", released[SS_UUID_LEN + 1] = "";
	PGresult *r = NULL;
	bool transfer = false;
	int rc;

	/* The device's row is locked: a concurrent claim or release waits. A
	 * device not there yet is decided by its primary key (23505). */
	rc = ss_pg_exists(c, SS_Q_TENANT_GET, a->tenant_id);
	if (!rc)
		rc = ss_pg_query(c, SS_Q_DEVICE_STATE, &r, a->device_id);
	if (!rc && PQntuples(r) > 0) {
		rc = ss_pg_text(c, r, 0, 0, holder, sizeof(holder), false);
		if (!rc)
			rc = ss_pg_text(c, r, 0, 1, released, sizeof(released), true);
		if (!rc)
			transfer = true;
	}
	PQclear(r);
	if (rc)
		goto out;
	if (!transfer) {
		rc = ss_pg_exec(c, SS_Q_DEVICE_ADD, a->device_id, a->tenant_id, ss_store_now());
	} else if (strcmp(released, a->tenant_id) == 0) {
		rc = ss_pg_exec(c, SS_Q_DEVICE_MOVE, a->tenant_id, ss_store_now(), a->device_id,
		                a->tenant_id);
		if (!rc && c->changes != 1)
			rc = ss_pg_corrupt(c, "devices");
	} else {
		/* Held by someone (this tenant included): claimed once. Released
		 * to a third tenant: not this one's to take. */
		rc = released[0] && strcmp(holder, a->tenant_id) != 0 ? SPH_ERR_PERMISSION
		                                                      : SPH_ERR_DUPLICATE;
	}
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "device.claim", a->device_id,
		                 transfer ? "transfer" : "");
out:
	return rc;
}

static int ss_pg_device_claim(void *be, const char *tenant_id, const char *device_id,
                              const char *actor)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .device_id = device_id, .actor = actor};

	return ss_pg_run(be, "device_claim", true, ss_pg_device_claim_fn, &a);
}

static int ss_pg_device_release_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	int rc = ss_pg_exists(c, SS_Q_TENANT_GET, a->to_tenant);

	if (!rc)
		rc = ss_pg_exec(c, SS_Q_DEVICE_RELEASE, a->to_tenant, a->device_id, a->tenant_id);
	if (!rc && c->changes != 1)
		rc = SPH_ERR_NOT_FOUND;
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "device.release", a->device_id,
		                 a->to_tenant);
	return rc;
}

static int ss_pg_device_release(void *be, const char *tenant_id, const char *device_id,
                                const char *to_tenant, const char *actor)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .to_tenant = to_tenant,
	                       .actor = actor};

	return ss_pg_run(be, "device_release", true, ss_pg_device_release_fn, &a);
}

static int ss_pg_device_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_DEVICE_GET, a->device_id, a->tenant_id, ss_pg_device_row, a->out);
}

static int ss_pg_device_get(void *be, const char *tenant_id, const char *device_id,
                            struct ss_device *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .device_id = device_id, .out = out};
	int rc = ss_pg_run(be, "device_get", false, ss_pg_device_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_device_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_DEVICE_LIST, &r, a->tenant_id, a->after, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_device_row, a->out, sizeof(struct ss_device), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_device_list(void *be, const char *tenant_id, const char *after,
                             struct ss_device *out, size_t cap, size_t *n)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "device_list", false, ss_pg_device_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_audit_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_audit *e = a->in;

	return ss_pg_audit(c, e->tenant_id, e->actor, e->action, e->target, e->detail);
}

static int ss_pg_audit_add(void *be, const struct ss_audit *e)
{
	struct ss_pg_args a = {.in = e};

	return ss_pg_run(be, "audit_add", true, ss_pg_audit_add_fn, &a);
}

static int ss_pg_audit_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_AUDIT_LIST, &r, a->tenant_id, a->after_id, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_audit_row, a->out, sizeof(struct ss_audit), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_audit_list(void *be, const char *tenant_id, int64_t after_id, struct ss_audit *out,
                            size_t cap, size_t *n)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .after_id = after_id, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "audit_list", false, ss_pg_audit_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

/* ---- products and device groups ------------------------------------------------ */

/* Inserts a complete group record and its "group.create" audit row. */
static int ss_pg_group_add(struct ss_pg_conn *c, const struct ss_group *g, const char *actor)
{
	int rc = ss_pg_exec(c, SS_Q_GROUP_ADD, g->id, g->tenant_id, g->product_id, g->name,
	                    g->description, ss_os_feed_name(g->os_feed),
	                    ss_update_policy_name(g->update_policy), g->created);

	if (!rc)
		rc = ss_pg_audit(c, g->tenant_id, actor, "group.create", g->id, g->name);
	return rc;
}

static int ss_pg_product_create_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_product *p = a->in;
	const struct ss_group *gs = a->in2;
	int rc = ss_pg_exists(c, SS_Q_TENANT_GET, p->tenant_id);

	if (!rc)
		rc = ss_pg_exec(c, SS_Q_PRODUCT_ADD, p->id, p->tenant_id, p->name, p->description,
		                p->created);
	if (!rc)
		rc = ss_pg_audit(c, p->tenant_id, a->actor, "product.create", p->id, p->name);
	for (size_t i = 0; !rc && i < a->ngroups; i++)
		rc = ss_pg_group_add(c, &gs[i], a->actor);
	return rc;
}

static int ss_pg_product_create(void *be, const struct ss_product *p, const struct ss_group *groups,
                                size_t ngroups, const char *actor)
{
	struct ss_pg_args a = {.in = p, .in2 = groups, .ngroups = ngroups, .actor = actor};

	return ss_pg_run(be, "product_create", true, ss_pg_product_create_fn, &a);
}

static int ss_pg_product_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_PRODUCT_GET, a->product_id, a->tenant_id, ss_pg_product_row,
	                  a->out);
}

static int ss_pg_product_get(void *be, const char *tenant_id, const char *product_id,
                             struct ss_product *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .product_id = product_id, .out = out};
	int rc = ss_pg_run(be, "product_get", false, ss_pg_product_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_product_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_PRODUCT_LIST, &r, a->tenant_id, a->after, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_product_row, a->out, sizeof(struct ss_product), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_product_list(void *be, const char *tenant_id, const char *after,
                              struct ss_product *out, size_t cap, size_t *n)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "product_list", false, ss_pg_product_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_group_create_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_group *g = a->in;
	struct ss_product p;
	int rc;

	/* The product must be the tenant's: another tenant's is "not found". */
	rc = ss_pg_get1(c, SS_Q_PRODUCT_GET, g->product_id, g->tenant_id, ss_pg_product_row, &p);
	if (!rc)
		rc = ss_pg_group_add(c, g, a->actor);
	return rc;
}

static int ss_pg_group_create(void *be, const struct ss_group *g, const char *actor)
{
	struct ss_pg_args a = {.in = g, .actor = actor};

	return ss_pg_run(be, "group_create", true, ss_pg_group_create_fn, &a);
}

static int ss_pg_group_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_GROUP_GET, a->group_id, a->tenant_id, ss_pg_group_row, a->out);
}

static int ss_pg_group_get(void *be, const char *tenant_id, const char *group_id,
                           struct ss_group *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .group_id = group_id, .out = out};
	int rc = ss_pg_run(be, "group_get", false, ss_pg_group_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* Appends " <what>[=<value>]" to the audit detail d (bounded: it always fits). */
static void ss_pg_detail_add(char *d, size_t cap, const char *what, const char *value)
{
	size_t len = strlen(d);

	snprintf(d + len, cap - len, "%s%s%s%s", len ? " " : "", what, value ? "=" : "",
	         value ? value : "");
}

static int ss_pg_group_update_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_group_change *chg = a->in;
	struct ss_group *g = a->out;
	char detail[SS_DETAIL_MAX + 1] = "";
	int rc;

	/* Locked: two updates of one group apply one after the other. */
	rc = ss_pg_get1(c, SS_Q_GROUP_GET_LOCK, a->group_id, a->tenant_id, ss_pg_group_row, g);
	if (rc)
		goto out;
	if (chg->name) {
		snprintf(g->name, sizeof(g->name), "%s", chg->name);
		ss_pg_detail_add(detail, sizeof(detail), "name", NULL);
	}
	if (chg->description) {
		snprintf(g->description, sizeof(g->description), "%s", chg->description);
		ss_pg_detail_add(detail, sizeof(detail), "description", NULL);
	}
	if (chg->os_feed != SS_FEED_NONE) {
		g->os_feed = chg->os_feed;
		ss_pg_detail_add(detail, sizeof(detail), "os_feed", ss_os_feed_name(g->os_feed));
	}
	if (chg->update_policy != SS_POLICY_NONE) {
		g->update_policy = chg->update_policy;
		ss_pg_detail_add(detail, sizeof(detail), "update_policy",
		                 ss_update_policy_name(g->update_policy));
	}
	rc = ss_pg_exec(c, SS_Q_GROUP_UPDATE, g->name, g->description, ss_os_feed_name(g->os_feed),
	                ss_update_policy_name(g->update_policy), a->group_id, a->tenant_id);
	if (!rc && c->changes != 1)
		rc = ss_pg_corrupt(c, "device_groups");
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "group.update", a->group_id, detail);
out:
	return rc;
}

static int ss_pg_group_update(void *be, const char *tenant_id, const char *group_id,
                              const struct ss_group_change *chg, const char *actor,
                              struct ss_group *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .group_id = group_id,
	                       .in = chg,
	                       .actor = actor,
	                       .out = out};
	int rc = ss_pg_run(be, "group_update", true, ss_pg_group_update_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_group_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc;

	*a->n = 0;
	if (a->product_id[0])
		rc = ss_pg_query(c, SS_Q_GROUP_LIST_PRODUCT, &r, a->tenant_id, a->product_id,
		                 a->after, (int64_t)a->cap);
	else
		rc = ss_pg_query(c, SS_Q_GROUP_LIST, &r, a->tenant_id, a->after, (int64_t)a->cap);
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_group_row, a->out, sizeof(struct ss_group), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_group_list(void *be, const char *tenant_id, const char *product_id,
                            const char *after, struct ss_group *out, size_t cap, size_t *n)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .product_id = product_id,
	                       .after = after,
	                       .out = out,
	                       .cap = cap,
	                       .n = n};
	int rc = ss_pg_run(be, "group_list", false, ss_pg_group_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_device_set_group_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	char old[SS_UUID_LEN + 1] = "", detail[SS_DETAIL_MAX + 1];
	struct ss_group g;
	PGresult *r = NULL;
	int rc;

	/* The device must be held by the tenant (its row locked) ... */
	rc = ss_pg_query(c, SS_Q_DEVICE_GROUP_GET, &r, a->device_id, a->tenant_id);
	if (!rc)
		rc = PQntuples(r) < 1 ? SPH_ERR_NOT_FOUND
		                      : ss_pg_text(c, r, 0, 0, old, sizeof(old), true);
	PQclear(r);
	if (rc)
		goto out;
	/* ... and the group be the same tenant's. */
	if (a->group_id[0]) {
		rc = ss_pg_get1(c, SS_Q_GROUP_GET, a->group_id, a->tenant_id, ss_pg_group_row, &g);
		if (rc)
			goto out;
	}
	rc = ss_pg_exec(c, SS_Q_DEVICE_GROUP_SET, a->group_id, a->device_id, a->tenant_id);
	if (!rc && c->changes != 1)
		rc = ss_pg_corrupt(c, "devices");
	if (rc)
		goto out;
	snprintf(detail, sizeof(detail), "%s -> %s", old[0] ? old : "none",
	         a->group_id[0] ? a->group_id : "none");
	rc = ss_pg_audit(c, a->tenant_id, a->actor, "device.move", a->device_id, detail);
out:
	return rc;
}

static int ss_pg_device_set_group(void *be, const char *tenant_id, const char *device_id,
                                  const char *group_id, const char *actor)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .group_id = group_id,
	                       .actor = actor};

	return ss_pg_run(be, "device_set_group", true, ss_pg_device_set_group_fn, &a);
}

/* ---- tenant CAs -------------------------------------------------------------------- */

static int ss_pg_ca_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_ca_record *e = a->in;
	PGresult *r = NULL;
	int64_t count = 0, seq = 0, active = 0;
	int rc;

	/* The tenant's row lock orders its CA changes: the count, the next seq
	 * and "has it an Active CA?" are read on current rows. */
	rc = ss_pg_exists(c, SS_Q_TENANT_LOCK, e->tenant_id);
	if (!rc)
		rc = ss_pg_query(c, SS_Q_CA_COUNT, &r, e->tenant_id);
	if (!rc && PQntuples(r) != 1)
		rc = ss_pg_corrupt(c, "tenant_cas");
	if (!rc)
		rc = ss_pg_int(c, r, 0, 0, &count);
	if (!rc)
		rc = ss_pg_int(c, r, 0, 1, &seq);
	if (!rc)
		rc = ss_pg_int(c, r, 0, 2, &active);
	PQclear(r);
	if (rc)
		goto out;
	rc = SPH_ERR_EXHAUSTED;
	if (count >= SS_CA_PER_TENANT)
		goto out;
	/* One Active CA per tenant: a second one is a state error, not a race. */
	rc = SPH_ERR_STATE;
	if (e->state == SS_CA_ACTIVE && active != 0)
		goto out;
	rc = ss_pg_exec(c, SS_Q_CA_ADD, e->id, e->tenant_id, seq + 1, ss_ca_state_name(e->state),
	                e->created, e->not_after, e->root_der, e->root_der_len, e->device_der,
	                e->device_der_len, e->root_key, e->root_key_len, e->device_key,
	                e->device_key_len);
	if (!rc)
		rc = ss_pg_audit(c, e->tenant_id, a->actor, "ca.create", e->id,
		                 ss_ca_state_name(e->state));
out:
	return rc;
}

static int ss_pg_ca_add(void *be, const struct ss_ca_record *ca, const char *actor)
{
	struct ss_pg_args a = {.in = ca, .actor = actor};

	return ss_pg_run(be, "ca_add", true, ss_pg_ca_add_fn, &a);
}

static int ss_pg_ca_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_CA_LIST, &r, a->tenant_id, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_ca_row, a->out, sizeof(struct ss_ca_record), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_ca_list(void *be, const char *tenant_id, struct ss_ca_record *out, size_t cap,
                         size_t *n)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "ca_list", false, ss_pg_ca_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_ca_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	if (a->name)
		return ss_pg_get1(c, SS_Q_CA_GET, a->tenant_id, a->name, ss_pg_ca_row, a->out);
	return ss_pg_get1(c, SS_Q_CA_ACTIVE, a->tenant_id, NULL, ss_pg_ca_row, a->out);
}

static int ss_pg_ca_get(void *be, const char *tenant_id, const char *ca_id,
                        struct ss_ca_record *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .name = ca_id, .out = out};
	int rc = ss_pg_run(be, "ca_get", false, ss_pg_ca_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

static int ss_pg_ca_active(void *be, const char *tenant_id, struct ss_ca_record *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_pg_run(be, "ca_active", false, ss_pg_ca_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

/* Moves one CA to state, with its audit row. */
static int ss_pg_ca_move(struct ss_pg_conn *c, const char *tenant_id, const char *id,
                         enum ss_ca_state state, const char *actor)
{
	int rc = ss_pg_exec(c, SS_Q_CA_SET_STATE, ss_ca_state_name(state), tenant_id, id);

	if (!rc && c->changes != 1)
		rc = ss_pg_corrupt(c, "tenant_cas");
	if (!rc)
		rc = ss_pg_audit(c, tenant_id, actor, "ca.state", id, ss_ca_state_name(state));
	return rc;
}

static int ss_pg_ca_set_state_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const enum ss_ca_state want = (enum ss_ca_state)a->version;
	char active[SS_UUID_LEN + 1] = "";
	enum ss_ca_state cur = (enum ss_ca_state)0;
	PGresult *r = NULL;
	int rc;

	/* The tenant's row lock first: concurrent activations take turns, and
	 * each sees the Active CA its predecessor left. */
	rc = ss_pg_exists(c, SS_Q_TENANT_LOCK, a->tenant_id);
	if (!rc)
		rc = ss_pg_query(c, SS_Q_CA_STATE, &r, a->tenant_id, a->name);
	if (!rc)
		rc = PQntuples(r) < 1 ? SPH_ERR_NOT_FOUND : ss_pg_ca_state_col(c, r, 0, 0, &cur);
	PQclear(r);
	r = NULL;
	if (rc || cur == want)
		goto out; /* already there: nothing to do */
	/* Revoked is final; the Active CA leaves only when a successor takes over. */
	rc = SPH_ERR_STATE;
	if (cur == SS_CA_REVOKED || cur == SS_CA_ACTIVE)
		goto out;
	rc = 0;
	if (want == SS_CA_ACTIVE) {
		rc = ss_pg_query(c, SS_Q_CA_ACTIVE_ID, &r, a->tenant_id);
		if (!rc && PQntuples(r) > 0)
			rc = ss_pg_text(c, r, 0, 0, active, sizeof(active), false);
		PQclear(r);
		/* The old one first: the index allows one Active row at a time. */
		if (!rc && active[0])
			rc = ss_pg_ca_move(c, a->tenant_id, active, SS_CA_INACTIVE, a->actor);
	}
	if (!rc)
		rc = ss_pg_ca_move(c, a->tenant_id, a->name, want, a->actor);
out:
	return rc;
}

static int ss_pg_ca_set_state(void *be, const char *tenant_id, const char *ca_id,
                              enum ss_ca_state state, const char *actor)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .name = ca_id, .version = (int)state, .actor = actor};

	return ss_pg_run(be, "ca_set_state", true, ss_pg_ca_set_state_fn, &a);
}

/* ---- image catalogue, OS feeds and deployments ------------------------------------ */

/* ---- device capabilities ------------------------------------------------------------ */

static int ss_pg_cap_signer_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_cap_signer_record *e = out;
	int rc = ss_pg_text(c, r, row, 0, e->tenant_id, sizeof(e->tenant_id), false);

	if (!rc)
		rc = ss_pg_int(c, r, row, 1, &e->created);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 2, e->signer_der, sizeof(e->signer_der),
		                &e->signer_der_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 3, e->signer_key, sizeof(e->signer_key),
		                &e->signer_key_len);
	return rc;
}

static int ss_pg_cap_signer_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_cap_signer_record *e = a->in;
	int rc = ss_pg_exists(c, SS_Q_TENANT_GET, e->tenant_id);

	if (rc)
		goto out;
	/* One per tenant: the explicit read decides; two concurrent first adds
	 * meet at the primary key (23505). */
	rc = ss_pg_exists(c, SS_Q_CAP_SIGNER_HAS, e->tenant_id);
	if (rc == 0)
		rc = SPH_ERR_DUPLICATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	rc = ss_pg_exec(c, SS_Q_CAP_SIGNER_ADD, e->tenant_id, e->created, e->signer_der,
	                e->signer_der_len, e->signer_key, e->signer_key_len);
	if (!rc)
		rc = ss_pg_audit(c, e->tenant_id, a->actor, "capability.signer", e->tenant_id, "");
out:
	return rc;
}

static int ss_pg_cap_signer_add(void *be, const struct ss_cap_signer_record *rec, const char *actor)
{
	struct ss_pg_args a = {.in = rec, .actor = actor};

	return ss_pg_run(be, "cap_signer_add", true, ss_pg_cap_signer_add_fn, &a);
}

static int ss_pg_cap_signer_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_CAP_SIGNER_GET, a->tenant_id, NULL, ss_pg_cap_signer_row, a->out);
}

static int ss_pg_cap_signer_get(void *be, const char *tenant_id, struct ss_cap_signer_record *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_pg_run(be, "cap_signer_get", false, ss_pg_cap_signer_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

static int ss_pg_device_mode_set_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const char *name = ss_device_mode_name((enum ss_device_mode)a->version);
	int rc = ss_pg_exists2(c, SS_Q_CHECKIN_HELD, a->device_id, a->tenant_id);

	if (rc)
		goto out;
	rc = ss_pg_exec(c, SS_Q_MODE_SET, a->device_id, a->tenant_id, name, ss_store_now());
	if (!rc)
		rc = ss_pg_audit(c, a->tenant_id, a->actor, "device.mode", a->device_id, name);
out:
	return rc;
}

static int ss_pg_device_mode_set(void *be, const char *tenant_id, const char *device_id,
                                 enum ss_device_mode mode, const char *actor)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .version = (int)mode,
	                       .actor = actor};

	return ss_pg_run(be, "device_mode_set", true, ss_pg_device_mode_set_fn, &a);
}

static int ss_pg_mode_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	enum ss_device_mode *m = out;
	char name[16];
	int rc = ss_pg_text(c, r, row, 0, name, sizeof(name), false);

	if (rc)
		return rc;
	if (strcmp(name, "development") == 0)
		*m = SS_MODE_DEVELOPMENT;
	else if (strcmp(name, "cloud-test") == 0)
		*m = SS_MODE_CLOUD_TEST;
	else
		return ss_pg_corrupt(c, "device_modes");
	return 0;
}

static int ss_pg_device_mode_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	int rc = ss_pg_get1(c, SS_Q_MODE_GET, a->device_id, a->tenant_id, ss_pg_mode_row, a->out);

	return rc == SPH_ERR_NOT_FOUND ? 0 : rc; /* no row: production */
}

static int ss_pg_device_mode_get(void *be, const char *tenant_id, const char *device_id,
                                 enum ss_device_mode *mode)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .device_id = device_id, .out = mode};
	int rc = ss_pg_run(be, "device_mode_get", false, ss_pg_device_mode_get_fn, &a);

	if (rc)
		*mode = SS_MODE_PRODUCTION;
	return rc;
}

static int ss_pg_signer_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_signer_record *e = out;
	int rc = ss_pg_text(c, r, row, 0, e->tenant_id, sizeof(e->tenant_id), false);

	if (!rc)
		rc = ss_pg_int(c, r, row, 1, &e->created);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 2, e->root_der, sizeof(e->root_der), &e->root_der_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 3, e->signer_der, sizeof(e->signer_der),
		                &e->signer_der_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 4, e->root_key, sizeof(e->root_key), &e->root_key_len);
	if (!rc)
		rc = ss_pg_blob(c, r, row, 5, e->signer_key, sizeof(e->signer_key),
		                &e->signer_key_len);
	return rc;
}

static int ss_pg_signer_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_signer_record *e = a->in;
	int rc = ss_pg_exists(c, SS_Q_TENANT_GET, e->tenant_id);

	if (rc)
		goto out;
	/* One per tenant: the explicit read decides (as in SQLite); two
	 * concurrent first adds meet at the primary key (23505). */
	rc = ss_pg_exists(c, SS_Q_SIGNER_HAS, e->tenant_id);
	if (rc == 0)
		rc = SPH_ERR_DUPLICATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	rc = ss_pg_exec(c, SS_Q_SIGNER_ADD, e->tenant_id, e->created, e->root_der, e->root_der_len,
	                e->signer_der, e->signer_der_len, e->root_key, e->root_key_len,
	                e->signer_key, e->signer_key_len);
	if (!rc)
		rc = ss_pg_audit(c, e->tenant_id, a->actor, "image.signer", e->tenant_id, "");
out:
	return rc;
}

static int ss_pg_signer_add(void *be, const struct ss_signer_record *rec, const char *actor)
{
	struct ss_pg_args a = {.in = rec, .actor = actor};

	return ss_pg_run(be, "signer_add", true, ss_pg_signer_add_fn, &a);
}

static int ss_pg_signer_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_SIGNER_GET, a->tenant_id, NULL, ss_pg_signer_row, a->out);
}

static int ss_pg_signer_get(void *be, const char *tenant_id, struct ss_signer_record *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_pg_run(be, "signer_get", false, ss_pg_signer_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

/* Reads a 32-byte bytea column. */
static int ss_pg_digest(struct ss_pg_conn *c, const PGresult *r, int row, int col, uint8_t out[32])
{
	size_t len = 0;
	int rc = ss_pg_blob(c, r, row, col, out, 32, &len);

	return rc ? rc : len == 32 ? 0 : ss_pg_corrupt(c, PQfname(r, col));
}

static int ss_pg_image_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_image *i = out;
	int64_t type = 0, svn = 0, psize = 0, ksize = 0;
	int rc = ss_pg_text(c, r, row, 0, i->id, sizeof(i->id), false);

	/* tenant_id: NULL for an OS image. */
	if (!rc)
		rc = ss_pg_text(c, r, row, 1, i->tenant_id, sizeof(i->tenant_id), true);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, i->component_id, sizeof(i->component_id), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &type);
	if (!rc)
		rc = ss_pg_text(c, r, row, 4, i->name, sizeof(i->name), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 5, i->version, sizeof(i->version), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 6, &svn);
	if (!rc)
		rc = ss_pg_int(c, r, row, 7, &psize);
	if (!rc)
		rc = ss_pg_digest(c, r, row, 8, i->payload_sha256);
	if (!rc)
		rc = ss_pg_int(c, r, row, 9, &ksize);
	if (!rc)
		rc = ss_pg_digest(c, r, row, 10, i->package_sha256);
	if (!rc)
		rc = ss_pg_int(c, r, row, 11, &i->created);
	if (!rc && (type < 1 || type > 5 || svn < 0 || svn > 255 || psize < 0 || ksize < 1 ||
	            (uint64_t)ksize > SS_IMAGE_PACKAGE_MAX))
		rc = ss_pg_corrupt(c, "images");
	i->type = (uint32_t)type;
	i->security_version = (uint32_t)svn;
	i->payload_size = (uint64_t)psize;
	i->package_size = (uint64_t)ksize;
	return rc;
}

static int ss_pg_image_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_image *i = a->in;
	const bool os = i->tenant_id[0] == '\0';
	char detail[SS_UUID_LEN + 1 + SS_IMAGE_VERSION_MAX + 1];
	PGresult *r = NULL;
	int rc = os ? 0 : ss_pg_exists(c, SS_Q_TENANT_GET, i->tenant_id);

	if (rc)
		goto out;
	/* The same component and version once per owner: the explicit read
	 * decides (as in SQLite); two concurrent adds meet at images_component
	 * or images_component_os (23505). */
	if (os)
		rc = ss_pg_query(c, SS_Q_IMAGE_DUP_OS, &r, i->component_id, i->version);
	else
		rc = ss_pg_query(c, SS_Q_IMAGE_DUP, &r, i->tenant_id, i->component_id, i->version);
	if (!rc && PQntuples(r) > 0)
		rc = SPH_ERR_DUPLICATE;
	PQclear(r);
	if (rc)
		goto out;
	rc = ss_pg_exec(c, SS_Q_IMAGE_ADD, i->id, i->tenant_id, i->component_id, (int64_t)i->type,
	                i->name, i->version, (int64_t)i->security_version, (int64_t)i->payload_size,
	                i->payload_sha256, (int64_t)i->package_size, i->package_sha256, i->created,
	                (const uint8_t *)a->in2, a->cap);
	if (rc)
		goto out;
	snprintf(detail, sizeof(detail), "%s %s", i->component_id, i->version);
	rc = ss_pg_audit(c, i->tenant_id, a->actor, os ? "os_image.add" : "image.add", i->id,
	                 detail);
out:
	return rc;
}

static int ss_pg_image_add(void *be, const struct ss_image *img, const uint8_t *pkg, size_t pkg_len,
                           const char *actor)
{
	struct ss_pg_args a = {.in = img, .in2 = pkg, .cap = pkg_len, .actor = actor};

	return ss_pg_run(be, "image_add", true, ss_pg_image_add_fn, &a);
}

static int ss_pg_image_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	if (a->tenant_id[0])
		return ss_pg_get1(c, SS_Q_IMAGE_GET, a->name, a->tenant_id, ss_pg_image_row,
		                  a->out);
	return ss_pg_get1(c, SS_Q_IMAGE_GET_OS, a->name, NULL, ss_pg_image_row, a->out);
}

static int ss_pg_image_get(void *be, const char *tenant_id, const char *image_id,
                           struct ss_image *out)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .name = image_id, .out = out};
	int rc = ss_pg_run(be, "image_get", false, ss_pg_image_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_image_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc;

	*a->n = 0;
	if (a->tenant_id[0])
		rc = ss_pg_query(c, SS_Q_IMAGE_LIST, &r, a->tenant_id, a->after, (int64_t)a->cap);
	else
		rc = ss_pg_query(c, SS_Q_IMAGE_LIST_OS, &r, a->after, (int64_t)a->cap);
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_image_row, a->out, sizeof(struct ss_image), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_image_find_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const char *const *kv = a->in;
	PGresult *r = NULL;
	int rc;

	if (a->tenant_id[0])
		rc = ss_pg_query(c, SS_Q_IMAGE_FIND, &r, a->tenant_id, kv[0], kv[1]);
	else
		rc = ss_pg_query(c, SS_Q_IMAGE_FIND_OS, &r, kv[0], kv[1]);
	if (!rc)
		rc = PQntuples(r) < 1 ? SPH_ERR_NOT_FOUND : ss_pg_image_row(c, r, 0, a->out);
	PQclear(r);
	return rc;
}

static int ss_pg_image_find(void *be, const char *tenant_id, const char *component_id,
                            const char *version, struct ss_image *out)
{
	const char *kv[2] = {component_id, version};
	struct ss_pg_args a = {.tenant_id = tenant_id, .in = kv, .out = out};
	int rc = ss_pg_run(be, "image_find", false, ss_pg_image_find_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_image_list(void *be, const char *tenant_id, const char *after,
                            struct ss_image *out, size_t cap, size_t *n)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "image_list", false, ss_pg_image_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_image_package_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	uint8_t **pkg = a->out;
	size_t *len = a->out2;
	PGresult *r = NULL;
	int n, rc;

	if (a->tenant_id[0])
		rc = ss_pg_query(c, SS_Q_IMAGE_PKG, &r, a->name, a->tenant_id);
	else
		rc = ss_pg_query(c, SS_Q_IMAGE_PKG_OS, &r, a->name);
	if (rc)
		goto out;
	rc = SPH_ERR_NOT_FOUND;
	if (PQntuples(r) < 1)
		goto out;
	n = PQgetlength(r, 0, 0);
	if (PQgetisnull(r, 0, 0) || PQftype(r, 0) != SS_PG_BYTEA || n <= 0 ||
	    (size_t)n > SS_IMAGE_PACKAGE_MAX) {
		rc = ss_pg_corrupt(c, "package");
		goto out;
	}
	free(*pkg); /* a replayed attempt */
	*len = 0;
	rc = SPH_ERR_NOMEM;
	*pkg = malloc((size_t)n);
	if (!*pkg)
		goto out;
	memcpy(*pkg, PQgetvalue(r, 0, 0), (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	PQclear(r);
	return rc;
}

static int ss_pg_image_package(void *be, const char *tenant_id, const char *image_id, uint8_t **pkg,
                               size_t *len)
{
	struct ss_pg_args a = {.tenant_id = tenant_id, .name = image_id, .out = pkg, .out2 = len};
	int rc = ss_pg_run(be, "image_package", false, ss_pg_image_package_fn, &a);

	if (rc) {
		free(*pkg);
		*pkg = NULL;
		*len = 0;
	}
	return rc;
}

/* Runs a one-row, one-integer query (q with one text parameter, or none
 * when p1 is NULL). */
static int ss_pg_int1(struct ss_pg_conn *c, enum ss_pg_q q, const char *p1, int64_t *v)
{
	PGresult *r = NULL;
	int rc = p1 ? ss_pg_query(c, q, &r, p1) : ss_pg_query(c, q, &r);

	*v = 0;
	if (!rc)
		rc = PQntuples(r) == 1 ? ss_pg_int(c, r, 0, 0, v) : ss_pg_corrupt(c, "count");
	PQclear(r);
	return rc;
}

static int ss_pg_release_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	struct ss_os_release *e = a->out;
	const char *feed = ss_os_feed_name(e->feed);
	int64_t seq = 0;
	int rc;

	/* Releases take turns (an advisory lock held to COMMIT): seq is read
	 * and written under it, so it increases in commit order, and the
	 * once-per-feed read sees every committed release. */
	rc = ss_pg_exec(c, SS_Q_LOCK, (int64_t)SS_PG_LOCK_RELEASE);
	/* Only an OS image (images are never deleted: no row lock needed). */
	if (!rc)
		rc = ss_pg_exists(c, SS_Q_IMAGE_GET_OS, e->image_id);
	if (rc)
		goto out;
	rc = ss_pg_exists2(c, SS_Q_RELEASE_DUP, feed, e->image_id);
	if (rc == 0)
		rc = SPH_ERR_DUPLICATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	rc = ss_pg_int1(c, SS_Q_RELEASE_SEQ, NULL, &seq);
	if (rc)
		goto out;
	e->seq = seq + 1;
	rc = ss_pg_exec(c, SS_Q_RELEASE_ADD, e->id, e->seq, feed, e->image_id, e->published);
	if (!rc)
		rc = ss_pg_audit(c, "", a->actor, "os.publish", e->image_id, feed);
out:
	return rc;
}

static int ss_pg_os_release_add(void *be, struct ss_os_release *r, const char *actor)
{
	struct ss_pg_args a = {.out = r, .actor = actor};

	return ss_pg_run(be, "os_release_add", true, ss_pg_release_add_fn, &a);
}

static int ss_pg_release_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_os_release *e = out;
	char feed[16];
	int rc = ss_pg_text(c, r, row, 0, e->id, sizeof(e->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, feed, sizeof(feed), false);
	if (!rc) {
		e->feed = ss_os_feed_from_name(feed);
		if (e->feed == SS_FEED_NONE)
			rc = ss_pg_corrupt(c, "feed");
	}
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, e->image_id, sizeof(e->image_id), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &e->published);
	if (!rc)
		rc = ss_pg_int(c, r, row, 4, &e->seq);
	return rc;
}

static int ss_pg_release_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_RELEASE_LIST, &r, a->name, (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_release_row, a->out, sizeof(struct ss_os_release),
		                a->cap, a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_os_release_list(void *be, enum ss_os_feed feed, struct ss_os_release *out,
                                 size_t cap, size_t *n)
{
	struct ss_pg_args a = {.name = ss_os_feed_name(feed), .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "os_release_list", false, ss_pg_release_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

static int ss_pg_deploy_create_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	struct ss_deployment *d = a->out;
	struct ss_image imgs[SS_DEPLOY_IMAGES_MAX];
	int64_t seq = 0;
	int rc;

	/* The group's row lock (FOR NO KEY UPDATE) orders the group's
	 * deployments: seq is read after it, on committed rows. */
	rc = ss_pg_exists2(c, SS_Q_GROUP_LOCK, d->group_id, d->tenant_id);
	for (size_t i = 0; !rc && i < d->n_images; i++) {
		/* Only the tenant's own images (never an OS image) ... */
		rc = ss_pg_get1(c, SS_Q_IMAGE_GET, d->image_ids[i], d->tenant_id, ss_pg_image_row,
		                &imgs[i]);
		/* ... each once, and one per component. */
		for (size_t j = 0; !rc && j < i; j++)
			if (strcmp(imgs[i].id, imgs[j].id) == 0 ||
			    strcmp(imgs[i].component_id, imgs[j].component_id) == 0)
				rc = SPH_ERR_DUPLICATE;
	}
	if (!rc)
		rc = ss_pg_int1(c, SS_Q_DEPLOY_SEQ, d->group_id, &seq);
	if (rc)
		goto out;
	d->seq = seq + 1;
	rc = ss_pg_exec(c, SS_Q_DEPLOY_ADD, d->id, d->tenant_id, d->group_id, d->seq, d->created);
	for (size_t i = 0; !rc && i < d->n_images; i++)
		rc = ss_pg_exec(c, SS_Q_DEPLOY_IMAGE_ADD, d->id, (int64_t)i, d->image_ids[i]);
	if (!rc)
		rc = ss_pg_audit(c, d->tenant_id, a->actor, "deployment.create", d->id,
		                 d->group_id);
out:
	return rc;
}

static int ss_pg_deployment_create(void *be, struct ss_deployment *d, const char *actor)
{
	struct ss_pg_args a = {.out = d, .actor = actor};

	return ss_pg_run(be, "deployment_create", true, ss_pg_deploy_create_fn, &a);
}

/* Reads deployment columns 0..4 of row into d (its images follow). */
static int ss_pg_deploy_row(struct ss_pg_conn *c, const PGresult *r, int row,
                            struct ss_deployment *d)
{
	int rc = ss_pg_text(c, r, row, 0, d->id, sizeof(d->id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, d->tenant_id, sizeof(d->tenant_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, d->group_id, sizeof(d->group_id), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &d->seq);
	if (!rc)
		rc = ss_pg_int(c, r, row, 4, &d->created);
	return rc;
}

static int ss_pg_deploy_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	struct ss_deployment *out = a->out, *d = NULL;
	char id[SS_UUID_LEN + 1];
	PGresult *r = NULL;
	int rc = ss_pg_query(c, SS_Q_DEPLOY_LIST, &r, a->tenant_id, a->group_id, (int64_t)a->cap);
	int rows = rc ? 0 : PQntuples(r);

	*a->n = 0;
	/* One row per image, a deployment's rows together (by seq, then pos). */
	for (int i = 0; !rc && i < rows; i++) {
		rc = ss_pg_text(c, r, i, 0, id, sizeof(id), false);
		if (!rc && (!d || strcmp(id, d->id) != 0)) {
			if (*a->n >= a->cap)
				break;
			d = &out[(*a->n)++];
			rc = ss_pg_deploy_row(c, r, i, d);
		}
		if (!rc && d->n_images >= SS_DEPLOY_IMAGES_MAX)
			rc = ss_pg_corrupt(c, "deployment_images");
		/* NULL: a deployment without images (LEFT JOIN): refused. */
		if (!rc)
			rc = ss_pg_text(c, r, i, 5, d->image_ids[d->n_images],
			                sizeof(d->image_ids[0]), false);
		if (!rc)
			d->n_images++;
	}
	PQclear(r);
	return rc;
}

static int ss_pg_deployment_list(void *be, const char *tenant_id, const char *group_id,
                                 struct ss_deployment *out, size_t cap, size_t *n)
{
	struct ss_pg_args a = {
	        .tenant_id = tenant_id, .group_id = group_id, .out = out, .cap = cap, .n = n};
	int rc = ss_pg_run(be, "deployment_list", false, ss_pg_deploy_list_fn, &a);

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

/* ---- device registrations --------------------------------------------------------- */

static int ss_pg_reg_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_registration *g = out;
	size_t len = 0;
	int rc = ss_pg_text(c, r, row, 0, g->device_id, sizeof(g->device_id), false);

	if (!rc)
		rc = ss_pg_blob(c, r, row, 1, g->attestation_key, sizeof(g->attestation_key), &len);
	if (!rc && len != SS_ATTEST_KEY_LEN)
		rc = ss_pg_corrupt(c, "attestation_key");
	if (!rc)
		rc = ss_pg_int(c, r, row, 2, &g->registered);
	/* registered_by may be "" (the service itself). */
	if (!rc)
		rc = ss_pg_text(c, r, row, 3, g->registered_by, sizeof(g->registered_by), true);
	return rc;
}

static int ss_pg_reg_add_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_registration *g = a->in;
	struct ss_registration cur = {0};
	PGresult *r = NULL;
	int rc;

	/* Registrations are decided one at a time, so the reads below and the
	 * insert see one state (a concurrent one commits before them). */
	rc = ss_pg_exec(c, SS_Q_LOCK, (int64_t)SS_PG_LOCK_REGISTER);
	if (rc)
		goto out;
	rc = ss_pg_get1(c, SS_Q_REG_GET, g->device_id, NULL, ss_pg_reg_row, &cur);
	if (rc == 0)
		rc = memcmp(cur.attestation_key, g->attestation_key, SS_ATTEST_KEY_LEN) == 0
		             ? SPH_ERR_DUPLICATE
		             : SPH_ERR_STATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	/* One key, one device. */
	rc = ss_pg_query(c, SS_Q_REG_KEY, &r, g->attestation_key, (size_t)SS_ATTEST_KEY_LEN);
	if (!rc && PQntuples(r) > 0)
		rc = SPH_ERR_DUPLICATE;
	PQclear(r);
	if (rc)
		goto out;
	rc = ss_pg_exec(c, SS_Q_REG_ADD, g->device_id, g->attestation_key,
	                (size_t)SS_ATTEST_KEY_LEN, g->registered, g->registered_by);
	if (!rc)
		rc = ss_pg_audit(c, "", a->actor, "device.register", g->device_id, "");
out:
	return rc;
}

static int ss_pg_registration_add(void *be, const struct ss_registration *reg, const char *actor)
{
	struct ss_pg_args a = {.in = reg, .actor = actor};

	return ss_pg_run(be, "registration_add", true, ss_pg_reg_add_fn, &a);
}

static int ss_pg_reg_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_REG_GET, a->device_id, NULL, ss_pg_reg_row, a->out);
}

static int ss_pg_registration_get(void *be, const char *device_id, struct ss_registration *out)
{
	struct ss_pg_args a = {.device_id = device_id, .out = out};
	int rc = ss_pg_run(be, "registration_get", false, ss_pg_reg_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- device check-ins and failure reports ------------------------------------------ */

static int ss_pg_checkin_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	const struct ss_checkin *ci = a->in;
	int rc = ss_pg_exists2(c, SS_Q_CHECKIN_HELD, ci->device_id, ci->tenant_id);

	if (rc)
		goto out;
	rc = ss_pg_exec(c, SS_Q_CHECKIN_CAS, ci->device_id, ci->tenant_id, a->when, ci->nonce_ms,
	                (int64_t)(ci->up_to_date ? 1 : 0), ci->cert_expires, ci->measured);
	if (!rc && c->changes != 1)
		rc = SPH_ERR_ROLLBACK; /* the nonce is not later than the last accepted one */
	for (size_t i = 0; !rc && i < ci->n_failures; i++) {
		const struct ss_failure *f = &ci->failures[i];
		rc = ss_pg_exec(c, SS_Q_FAILURE_ADD, ci->device_id, ci->tenant_id, a->when,
		                f->component, (int64_t)f->kind, f->code, f->text);
	}
	if (!rc && ci->n_failures)
		rc = ss_pg_exec(c, SS_Q_FAILURE_TRIM, ci->device_id, a->when - ci->max_age,
		                ci->device_id, (int64_t)ci->keep);
	if (!rc && ci->cert_expires)
		rc = ss_pg_audit(c, ci->tenant_id, "", "certificate.issue", ci->device_id,
		                 ci->cert_serial);
out:
	return rc;
}

static int ss_pg_checkin_record(void *be, const struct ss_checkin *ci, int64_t at)
{
	struct ss_pg_args a = {.in = ci, .when = at};

	return ss_pg_run(be, "checkin_record", true, ss_pg_checkin_fn, &a);
}

static int ss_pg_checkin_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_checkin_state *k = out;
	int64_t up = 0;
	int rc = ss_pg_text(c, r, row, 0, k->device_id, sizeof(k->device_id), false);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, k->tenant_id, sizeof(k->tenant_id), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 2, &k->last_checkin);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &k->nonce_ms);
	if (!rc)
		rc = ss_pg_int(c, r, row, 4, &up);
	k->up_to_date = up != 0;
	if (!rc)
		rc = ss_pg_int(c, r, row, 5, &k->cert_expires);
	if (!rc)
		rc = ss_pg_text(c, r, row, 6, k->measured, sizeof(k->measured), true);
	return rc;
}

static int ss_pg_checkin_get_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_CHECKIN_GET, a->device_id, NULL, ss_pg_checkin_row, a->out);
}

static int ss_pg_checkin_get(void *be, const char *device_id, struct ss_checkin_state *out)
{
	struct ss_pg_args a = {.device_id = device_id, .out = out};
	int rc = ss_pg_run(be, "checkin_get", false, ss_pg_checkin_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_device_find_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	return ss_pg_get1(c, SS_Q_DEVICE_FIND, a->device_id, NULL, ss_pg_device_row, a->out);
}

static int ss_pg_device_find(void *be, const char *device_id, struct ss_device *out)
{
	struct ss_pg_args a = {.device_id = device_id, .out = out};
	int rc = ss_pg_run(be, "device_find", false, ss_pg_device_find_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_pg_failure_row(struct ss_pg_conn *c, const PGresult *r, int row, void *out)
{
	struct ss_failure *f = out;
	int64_t kind = 0;
	int rc = ss_pg_int(c, r, row, 0, &f->id);

	if (!rc)
		rc = ss_pg_text(c, r, row, 1, f->device_id, sizeof(f->device_id), false);
	if (!rc)
		rc = ss_pg_text(c, r, row, 2, f->tenant_id, sizeof(f->tenant_id), false);
	if (!rc)
		rc = ss_pg_int(c, r, row, 3, &f->at);
	if (!rc)
		rc = ss_pg_text(c, r, row, 4, f->component, sizeof(f->component), true);
	if (!rc)
		rc = ss_pg_int(c, r, row, 5, &kind);
	if (!rc && !ss_failure_kind_name((enum ss_failure_kind)kind))
		rc = ss_pg_corrupt(c, "kind");
	f->kind = (enum ss_failure_kind)kind;
	if (!rc)
		rc = ss_pg_int(c, r, row, 6, &f->code);
	if (!rc)
		rc = ss_pg_text(c, r, row, 7, f->text, sizeof(f->text), true);
	return rc;
}

static int ss_pg_failure_list_fn(struct ss_pg_conn *c, struct ss_pg_args *a)
{
	PGresult *r = NULL;
	static const enum ss_pg_q qs[] = {
	        [SS_FAILURES_TENANT] = SS_Q_FAILURE_LIST,
	        [SS_FAILURES_DEVICE] = SS_Q_FAILURE_LIST_DEV,
	        [SS_FAILURES_GROUP] = SS_Q_FAILURE_LIST_GROUP,
	        [SS_FAILURES_COMPONENT] = SS_Q_FAILURE_LIST_COMP,
	};
	int rc = a->version == SS_FAILURES_TENANT
	                 ? ss_pg_query(c, SS_Q_FAILURE_LIST, &r, a->tenant_id, a->after_id,
	                               (int64_t)a->cap)
	                 : ss_pg_query(c, qs[a->version], &r, a->tenant_id, a->name, a->after_id,
	                               (int64_t)a->cap);

	*a->n = 0;
	if (!rc)
		rc = ss_pg_rows(c, r, ss_pg_failure_row, a->out, sizeof(struct ss_failure), a->cap,
		                a->n);
	PQclear(r);
	return rc;
}

static int ss_pg_failure_list(void *be, const char *tenant_id, enum ss_failure_scope scope,
                              const char *key, int64_t before_id, struct ss_failure *out,
                              size_t cap, size_t *n)
{
	struct ss_pg_args a = {.tenant_id = tenant_id,
	                       .version = (int)scope, /* the scope */
	                       .name = key,
	                       .after_id = before_id,
	                       .out = out,
	                       .cap = cap,
	                       .n = n};
	int rc = cap ? ss_pg_run(be, "failure_list", false, ss_pg_failure_list_fn, &a) : 0;

	return ss_pg_list_done(rc, out, sizeof(*out), cap, n);
}

const struct ss_store_ops ss_pg_ops = {
        .name = "postgresql",
        .open = ss_pg_open,
        .close = ss_pg_close,
        .schema_version = ss_pg_schema_version,
        .tenant_create = ss_pg_tenant_create,
        .tenant_get = ss_pg_tenant_get,
        .tenant_list_for_user = ss_pg_tenant_list_for_user,
        .user_create = ss_pg_user_create,
        .user_get = ss_pg_user_get,
        .user_by_name = ss_pg_user_by_name,
        .role_set = ss_pg_role_set,
        .role_get = ss_pg_role_get,
        .role_list = ss_pg_role_list,
        .token_add = ss_pg_token_add,
        .token_find = ss_pg_token_find,
        .token_revoke = ss_pg_token_revoke,
        .device_claim = ss_pg_device_claim,
        .device_release = ss_pg_device_release,
        .device_get = ss_pg_device_get,
        .device_list = ss_pg_device_list,
        .audit_add = ss_pg_audit_add,
        .audit_list = ss_pg_audit_list,
        .product_create = ss_pg_product_create,
        .product_get = ss_pg_product_get,
        .product_list = ss_pg_product_list,
        .group_create = ss_pg_group_create,
        .group_update = ss_pg_group_update,
        .group_get = ss_pg_group_get,
        .group_list = ss_pg_group_list,
        .device_set_group = ss_pg_device_set_group,
        .ca_add = ss_pg_ca_add,
        .ca_list = ss_pg_ca_list,
        .ca_get = ss_pg_ca_get,
        .ca_set_state = ss_pg_ca_set_state,
        .ca_active = ss_pg_ca_active,
        .signer_add = ss_pg_signer_add,
        .signer_get = ss_pg_signer_get,
        .cap_signer_add = ss_pg_cap_signer_add,
        .cap_signer_get = ss_pg_cap_signer_get,
        .device_mode_set = ss_pg_device_mode_set,
        .device_mode_get = ss_pg_device_mode_get,
        .image_add = ss_pg_image_add,
        .image_get = ss_pg_image_get,
        .image_list = ss_pg_image_list,
        .image_find = ss_pg_image_find,
        .image_package = ss_pg_image_package,
        .os_release_add = ss_pg_os_release_add,
        .os_release_list = ss_pg_os_release_list,
        .deployment_create = ss_pg_deployment_create,
        .deployment_list = ss_pg_deployment_list,
        .registration_add = ss_pg_registration_add,
        .registration_get = ss_pg_registration_get,
        .checkin_record = ss_pg_checkin_record,
        .checkin_get = ss_pg_checkin_get,
        .device_find = ss_pg_device_find,
        .failure_list = ss_pg_failure_list,
};
