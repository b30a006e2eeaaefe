/*
 * ss_store_sqlite: the SQLite backend (docs/api.md "Storage").
 *
 * A pool of SS_SQ_CONNS connections, each opened NOMUTEX and guarded by its
 * own mutex; a call takes a free one (round-robin trylock, then blocks on
 * one). Every connection runs WAL, foreign_keys=ON, synchronous=FULL and a
 * 5 s busy timeout. A change is one BEGIN IMMEDIATE ... COMMIT with its audit
 * row; any error rolls it back, and a busy database is retried until the
 * busy timeout. SQL is fixed text with ? parameters, prepared once per
 * connection (sqlite3_prepare_v3, persistent).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "ss_store_internal.h"

#define SS_SQ_CONNS   4
#define SS_SQ_BUSY_MS 5000

/* ---- schema ------------------------------------------------------------------
 * Migration i takes the database from version i to i + 1; applied ones are
 * never edited, a change is a new step at the end.
 */
static const char *const ss_sq_migrations[] = {
        /* 1 */
        "CREATE TABLE tenants ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " created INTEGER NOT NULL);"
        "CREATE TABLE users ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
        " is_operator INTEGER NOT NULL CHECK (is_operator IN (0, 1)),"
        " created INTEGER NOT NULL);"
        "CREATE TABLE roles ("
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " user_id TEXT NOT NULL REFERENCES users (id),"
        " role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 3),"
        " PRIMARY KEY (tenant_id, user_id));"
        "CREATE INDEX roles_user ON roles (user_id);"
        "CREATE TABLE tokens ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " user_id TEXT NOT NULL REFERENCES users (id),"
        " hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
        " created INTEGER NOT NULL,"
        " revoked INTEGER NOT NULL CHECK (revoked IN (0, 1)));"
        "CREATE INDEX tokens_user ON tokens (user_id);"
        "CREATE TABLE devices ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 128),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " released_to TEXT REFERENCES tenants (id),"
        " claimed INTEGER NOT NULL);"
        "CREATE INDEX devices_tenant ON devices (tenant_id, id);"
        "CREATE TABLE audit ("
        " id INTEGER PRIMARY KEY,"
        " at INTEGER NOT NULL,"
        " tenant_id TEXT NOT NULL,"
        " actor TEXT NOT NULL,"
        " action TEXT NOT NULL,"
        " target TEXT NOT NULL,"
        " detail TEXT NOT NULL);"
        "CREATE INDEX audit_tenant ON audit (tenant_id, id);",
        /* 2: products and device groups. A group's (product, tenant) must
         * be its product's own pair, so a group never crosses tenants. */
        "CREATE TABLE products ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " description TEXT NOT NULL CHECK (length(description) <= 256),"
        " created INTEGER NOT NULL,"
        " UNIQUE (tenant_id, name),"
        " UNIQUE (id, tenant_id));"
        "CREATE TABLE device_groups ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " product_id TEXT NOT NULL,"
        " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " description TEXT NOT NULL CHECK (length(description) <= 256),"
        " os_feed TEXT NOT NULL CHECK (os_feed IN ('Retail', 'RetailEval')),"
        " update_policy TEXT NOT NULL"
        "  CHECK (update_policy IN ('UpdateAll', 'No3rdPartyAppUpdates', 'NoUpdates')),"
        " created INTEGER NOT NULL,"
        " UNIQUE (product_id, name),"
        " FOREIGN KEY (product_id, tenant_id) REFERENCES products (id, tenant_id));"
        "CREATE INDEX device_groups_tenant ON device_groups (tenant_id, id);"
        "ALTER TABLE devices ADD COLUMN group_id TEXT REFERENCES device_groups (id);"
        "CREATE INDEX devices_group ON devices (group_id);",
        /* 3: tenant CAs (docs/api.md §5). seq orders a tenant's CAs (newest
         * first) where created ties within one second. */
        "CREATE TABLE tenant_cas ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " seq INTEGER NOT NULL,"
        " state TEXT NOT NULL CHECK (state IN ('Active', 'Inactive', 'Revoked')),"
        " created INTEGER NOT NULL,"
        " not_after INTEGER NOT NULL,"
        " root_der BLOB NOT NULL CHECK (length(root_der) BETWEEN 1 AND 4096),"
        " device_der BLOB NOT NULL CHECK (length(device_der) BETWEEN 1 AND 4096),"
        " root_key BLOB NOT NULL CHECK (length(root_key) BETWEEN 1 AND 512),"
        " device_key BLOB NOT NULL CHECK (length(device_key) BETWEEN 1 AND 512),"
        " UNIQUE (tenant_id, seq));"
        "CREATE UNIQUE INDEX tenant_cas_active ON tenant_cas (tenant_id) WHERE state = 'Active';",
        /* 4: the image catalogue, OS feeds and deployments (docs/api-images.md).
         * tenant_id NULL marks a platform-wide OS image. */
        "CREATE TABLE tenant_signers ("
        " tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),"
        " created INTEGER NOT NULL,"
        " root_der BLOB NOT NULL CHECK (length(root_der) BETWEEN 1 AND 4096),"
        " signer_der BLOB NOT NULL CHECK (length(signer_der) BETWEEN 1 AND 4096),"
        " root_key BLOB NOT NULL CHECK (length(root_key) BETWEEN 1 AND 512),"
        " signer_key BLOB NOT NULL CHECK (length(signer_key) BETWEEN 1 AND 512));"
        "CREATE TABLE images ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT REFERENCES tenants (id),"
        " component_id TEXT NOT NULL CHECK (length(component_id) = 36),"
        " type INTEGER NOT NULL CHECK (type BETWEEN 1 AND 5),"
        " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
        " version TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 32),"
        " security_version INTEGER NOT NULL CHECK (security_version BETWEEN 0 AND 255),"
        " payload_size INTEGER NOT NULL CHECK (payload_size >= 0),"
        " payload_sha256 BLOB NOT NULL CHECK (length(payload_sha256) = 32),"
        " package_size INTEGER NOT NULL CHECK (package_size BETWEEN 1 AND 71303168),"
        " package_sha256 BLOB NOT NULL CHECK (length(package_sha256) = 32),"
        " created INTEGER NOT NULL,"
        " package BLOB NOT NULL CHECK (length(package) = package_size),"
        " CHECK ((tenant_id IS NULL AND type BETWEEN 1 AND 3) OR"
        "        (tenant_id IS NOT NULL AND type BETWEEN 4 AND 5)));"
        "CREATE UNIQUE INDEX images_component ON images (tenant_id, component_id, version);"
        "CREATE INDEX images_tenant ON images (tenant_id, id);"
        "CREATE TABLE os_releases ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " seq INTEGER NOT NULL UNIQUE,"
        " feed TEXT NOT NULL CHECK (feed IN ('Retail', 'RetailEval')),"
        " image_id TEXT NOT NULL REFERENCES images (id),"
        " published INTEGER NOT NULL,"
        " UNIQUE (feed, image_id));"
        "CREATE TABLE deployments ("
        " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " group_id TEXT NOT NULL REFERENCES device_groups (id),"
        " seq INTEGER NOT NULL,"
        " created INTEGER NOT NULL,"
        " UNIQUE (group_id, seq));"
        "CREATE TABLE deployment_images ("
        " deployment_id TEXT NOT NULL REFERENCES deployments (id),"
        " pos INTEGER NOT NULL CHECK (pos BETWEEN 0 AND 15),"
        " image_id TEXT NOT NULL REFERENCES images (id),"
        " PRIMARY KEY (deployment_id, pos),"
        " UNIQUE (deployment_id, image_id));",
        /* 4 -> 5: device registrations (the operator's {device id, RoT
         * attestation key} records, docs/api.md §4.13). */
        "CREATE TABLE device_registrations ("
        " device_id TEXT PRIMARY KEY CHECK (length(device_id) = 128),"
        " attestation_key BLOB NOT NULL UNIQUE CHECK (length(attestation_key) = 64),"
        " registered INTEGER NOT NULL,"
        " registered_by TEXT NOT NULL CHECK (length(registered_by) IN (0, 36)));",
        /* 5 -> 6: device check-ins (one row per device: its last accepted
         * check-in) and the failure reports devices send with them
         * (docs/api.md §4.13). */
        "CREATE TABLE device_checkins ("
        " device_id TEXT PRIMARY KEY REFERENCES devices (id),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " last_checkin INTEGER NOT NULL,"
        " nonce_ms INTEGER NOT NULL,"
        " up_to_date INTEGER NOT NULL CHECK (up_to_date IN (0, 1)),"
        " cert_expires INTEGER NOT NULL,"
        " measured TEXT NOT NULL CHECK (length(measured) <= 2048));"
        "CREATE TABLE device_failures ("
        " id INTEGER PRIMARY KEY,"
        " device_id TEXT NOT NULL CHECK (length(device_id) = 128),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " at INTEGER NOT NULL,"
        " component TEXT NOT NULL CHECK (length(component) <= 64),"
        " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 5),"
        " code INTEGER NOT NULL,"
        " text TEXT NOT NULL CHECK (length(text) <= 256));"
        "CREATE INDEX device_failures_device ON device_failures (device_id, id);"
        "CREATE INDEX device_failures_tenant ON device_failures (tenant_id, id);",
        /* 6 -> 7: device capabilities (docs/api.md §4.14): each tenant's
         * capability signer (issued by its tenant image root) and the mode a
         * tenant set for a device (no row: production). */
        "CREATE TABLE tenant_cap_signers ("
        " tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),"
        " created INTEGER NOT NULL,"
        " signer_der BLOB NOT NULL CHECK (length(signer_der) BETWEEN 1 AND 4096),"
        " signer_key BLOB NOT NULL CHECK (length(signer_key) BETWEEN 1 AND 512));"
        "CREATE TABLE device_modes ("
        " device_id TEXT PRIMARY KEY REFERENCES devices (id),"
        " tenant_id TEXT NOT NULL REFERENCES tenants (id),"
        " mode TEXT NOT NULL CHECK (mode IN ('development', 'cloud-test')),"
        " updated INTEGER NOT NULL);",
        /* 7 -> 8: target generations (docs/api.md §4.13, "What a check-in
         * caches"): a tenant's moves whenever one of its groups or
         * deployments changes, the service's whenever an OS release does,
         * in the same transaction (triggers), so a cached group target is
         * known stale on every instance by the next device read. */
        "ALTER TABLE tenants ADD COLUMN target_gen INTEGER NOT NULL DEFAULT 0;"
        "CREATE TABLE service_gen ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " os_gen INTEGER NOT NULL);"
        "INSERT INTO service_gen (id, os_gen) VALUES (1, 0);"
        "CREATE TRIGGER groups_gen_i AFTER INSERT ON device_groups BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = NEW.tenant_id; END;"
        "CREATE TRIGGER groups_gen_u AFTER UPDATE ON device_groups BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id IN (OLD.tenant_id, "
        "NEW.tenant_id); END;"
        "CREATE TRIGGER groups_gen_d AFTER DELETE ON device_groups BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = OLD.tenant_id; END;"
        "CREATE TRIGGER deployments_gen_i AFTER INSERT ON deployments BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = NEW.tenant_id; END;"
        "CREATE TRIGGER deployments_gen_u AFTER UPDATE ON deployments BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id IN (OLD.tenant_id, "
        "NEW.tenant_id); END;"
        "CREATE TRIGGER deployments_gen_d AFTER DELETE ON deployments BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = OLD.tenant_id; END;"
        "CREATE TRIGGER deployment_images_gen_i AFTER INSERT ON deployment_images BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = (SELECT tenant_id FROM "
        "deployments WHERE id = NEW.deployment_id); END;"
        "CREATE TRIGGER deployment_images_gen_u AFTER UPDATE ON deployment_images BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id IN (SELECT tenant_id FROM "
        "deployments WHERE id IN (OLD.deployment_id, NEW.deployment_id)); END;"
        "CREATE TRIGGER deployment_images_gen_d AFTER DELETE ON deployment_images BEGIN"
        " UPDATE tenants SET target_gen = target_gen + 1 WHERE id = (SELECT tenant_id FROM "
        "deployments WHERE id = OLD.deployment_id); END;"
        "CREATE TRIGGER os_releases_gen_i AFTER INSERT ON os_releases BEGIN"
        " UPDATE service_gen SET os_gen = os_gen + 1; END;"
        "CREATE TRIGGER os_releases_gen_u AFTER UPDATE ON os_releases BEGIN"
        " UPDATE service_gen SET os_gen = os_gen + 1; END;"
        "CREATE TRIGGER os_releases_gen_d AFTER DELETE ON os_releases BEGIN"
        " UPDATE service_gen SET os_gen = os_gen + 1; END;",
};

#define SS_SQ_SCHEMA ((int)(sizeof(ss_sq_migrations) / sizeof(ss_sq_migrations[0])))

/* ---- statements ------------------------------------------------------------ */

enum ss_sq_q {
	SS_Q_BEGIN,
	SS_Q_COMMIT,
	SS_Q_ROLLBACK,
	SS_Q_VERSION_TABLE,
	SS_Q_VERSION,
	SS_Q_VERSION_ADD,
	SS_Q_AUDIT_ADD,
	SS_Q_AUDIT_LIST,
	SS_Q_TENANT_ADD,
	SS_Q_TENANT_GET,
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
	SS_Q_DEPLOY_SEQ,
	SS_Q_DEPLOY_ADD,
	SS_Q_DEPLOY_IMAGE_ADD,
	SS_Q_DEPLOY_LIST,
	SS_Q_DEPLOY_IMAGES,
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
	SS_Q_MODE_SET,
	SS_Q_MODE_GET,
	SS_Q_COUNT
};

static const char *const ss_sq_sql[SS_Q_COUNT] = {
        [SS_Q_BEGIN] = "BEGIN IMMEDIATE",
        [SS_Q_COMMIT] = "COMMIT",
        [SS_Q_ROLLBACK] = "ROLLBACK",
        [SS_Q_VERSION_TABLE] = "CREATE TABLE IF NOT EXISTS schema_version ("
                               "version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
        [SS_Q_VERSION] = "SELECT MAX(version) FROM schema_version",
        [SS_Q_VERSION_ADD] = "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
        [SS_Q_AUDIT_ADD] = "INSERT INTO audit (at, tenant_id, actor, action, target, detail) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
        [SS_Q_AUDIT_LIST] = "SELECT id, at, tenant_id, actor, action, target, detail FROM audit "
                            "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        [SS_Q_TENANT_ADD] = "INSERT INTO tenants (id, name, created) VALUES (?, ?, ?)",
        [SS_Q_TENANT_GET] = "SELECT id, name, created FROM tenants WHERE id = ?",
        [SS_Q_TENANTS_OF_USER] = "SELECT t.id, t.name, t.created FROM tenants t "
                                 "JOIN roles r ON r.tenant_id = t.id WHERE r.user_id = ? "
                                 "ORDER BY t.name, t.id LIMIT ?",
        [SS_Q_USER_ADD] = "INSERT INTO users (id, name, is_operator, created) VALUES (?, ?, ?, ?)",
        [SS_Q_USER_GET] = "SELECT id, name, is_operator FROM users WHERE id = ?",
        [SS_Q_USER_BY_NAME] = "SELECT id, name, is_operator FROM users WHERE name = ?",
        [SS_Q_ROLE_GET] = "SELECT role FROM roles WHERE tenant_id = ? AND user_id = ?",
        [SS_Q_ROLE_ADD] = "INSERT INTO roles (tenant_id, user_id, role) VALUES (?, ?, ?)",
        [SS_Q_ROLE_UPDATE] = "UPDATE roles SET role = ? WHERE tenant_id = ? AND user_id = ?",
        [SS_Q_ROLE_DELETE] = "DELETE FROM roles WHERE tenant_id = ? AND user_id = ?",
        [SS_Q_ROLE_ADMINS] = "SELECT COUNT(*) FROM roles WHERE tenant_id = ? AND role = 3",
        [SS_Q_ROLE_LIST] = "SELECT r.user_id, u.name, r.role FROM roles r "
                           "JOIN users u ON u.id = r.user_id WHERE r.tenant_id = ? "
                           "ORDER BY u.name LIMIT ?",
        [SS_Q_TOKEN_ADD] = "INSERT INTO tokens (id, user_id, hash, created, revoked) "
                           "VALUES (?, ?, ?, ?, 0)",
        [SS_Q_TOKEN_FIND] = "SELECT t.id, t.created, u.id, u.name, u.is_operator "
                            "FROM tokens t JOIN users u ON u.id = t.user_id "
                            "WHERE t.hash = ? AND t.revoked = 0",
        [SS_Q_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 "
                              "WHERE id = ? AND user_id = ? AND revoked = 0",
        [SS_Q_DEVICE_STATE] = "SELECT tenant_id, released_to FROM devices WHERE id = ?",
        [SS_Q_DEVICE_ADD] = "INSERT INTO devices (id, tenant_id, released_to, claimed) "
                            "VALUES (?, ?, NULL, ?)",
        [SS_Q_DEVICE_MOVE] = "UPDATE devices SET tenant_id = ?, released_to = NULL, claimed = ?, "
                             "group_id = NULL WHERE id = ? AND released_to = ?",
        [SS_Q_DEVICE_RELEASE] = "UPDATE devices SET released_to = ? "
                                "WHERE id = ? AND tenant_id = ?",
#define SS_DEV_COLS                                                                                \
	"SELECT id, tenant_id, released_to, claimed, group_id, CASE WHEN EXISTS (SELECT 1 FROM "   \
	"device_registrations r WHERE r.device_id = devices.id) THEN 1 ELSE 0 END, (SELECT "       \
	"target_gen FROM tenants t WHERE t.id = devices.tenant_id), (SELECT os_gen FROM "          \
	"service_gen) FROM devices "
        [SS_Q_DEVICE_GET] = SS_DEV_COLS "WHERE id = ? AND tenant_id = ?",
        [SS_Q_DEVICE_LIST] = SS_DEV_COLS "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        [SS_Q_DEVICE_FIND] = SS_DEV_COLS "WHERE id = ?",
#undef SS_DEV_COLS
        [SS_Q_PRODUCT_ADD] = "INSERT INTO products (id, tenant_id, name, description, created) "
                             "VALUES (?, ?, ?, ?, ?)",
        [SS_Q_PRODUCT_GET] = "SELECT id, tenant_id, name, description, created FROM products "
                             "WHERE id = ? AND tenant_id = ?",
        [SS_Q_PRODUCT_LIST] = "SELECT id, tenant_id, name, description, created FROM products "
                              "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        [SS_Q_GROUP_ADD] = "INSERT INTO device_groups (id, tenant_id, product_id, name, "
                           "description, os_feed, update_policy, created) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [SS_Q_GROUP_GET] = "SELECT id, tenant_id, product_id, name, description, os_feed, "
                           "update_policy, created FROM device_groups "
                           "WHERE id = ? AND tenant_id = ?",
        [SS_Q_GROUP_UPDATE] = "UPDATE device_groups SET name = ?, description = ?, os_feed = ?, "
                              "update_policy = ? WHERE id = ? AND tenant_id = ?",
        [SS_Q_GROUP_LIST] = "SELECT id, tenant_id, product_id, name, description, os_feed, "
                            "update_policy, created FROM device_groups "
                            "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        [SS_Q_GROUP_LIST_PRODUCT] = "SELECT id, tenant_id, product_id, name, description, "
                                    "os_feed, update_policy, created FROM device_groups "
                                    "WHERE tenant_id = ? AND product_id = ? AND id > ? "
                                    "ORDER BY id LIMIT ?",
        [SS_Q_DEVICE_GROUP_GET] = "SELECT group_id FROM devices WHERE id = ? AND tenant_id = ?",
        [SS_Q_DEVICE_GROUP_SET] = "UPDATE devices SET group_id = ? WHERE id = ? AND tenant_id = ?",
#define SS_CA_COLS                                                                                 \
	"SELECT id, tenant_id, state, created, not_after, root_der, device_der, root_key, "        \
	"device_key FROM tenant_cas "
        [SS_Q_CA_COUNT] = "SELECT COUNT(*), COALESCE(MAX(seq), 0), "
                          "COALESCE(SUM(CASE WHEN state = 'Active' THEN 1 ELSE 0 END), 0) "
                          "FROM tenant_cas WHERE tenant_id = ?",
        [SS_Q_CA_ADD] = "INSERT INTO tenant_cas (id, tenant_id, seq, state, created, not_after, "
                        "root_der, device_der, root_key, device_key) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [SS_Q_CA_LIST] = SS_CA_COLS "WHERE tenant_id = ? ORDER BY seq DESC LIMIT ?",
        [SS_Q_CA_GET] = SS_CA_COLS "WHERE tenant_id = ? AND id = ?",
        [SS_Q_CA_ACTIVE] = SS_CA_COLS "WHERE tenant_id = ? AND state = 'Active'",
        [SS_Q_CA_STATE] = "SELECT state FROM tenant_cas WHERE tenant_id = ? AND id = ?",
        [SS_Q_CA_ACTIVE_ID] = "SELECT id FROM tenant_cas WHERE tenant_id = ? AND state = 'Active'",
        [SS_Q_CA_SET_STATE] = "UPDATE tenant_cas SET state = ? WHERE tenant_id = ? AND id = ?",
#undef SS_CA_COLS
#define SS_IMG_COLS                                                                                \
	"SELECT id, tenant_id, component_id, type, name, version, security_version, "              \
	"payload_size, payload_sha256, package_size, package_sha256, created FROM images "
        [SS_Q_SIGNER_ADD] = "INSERT INTO tenant_signers (tenant_id, created, root_der, "
                            "signer_der, root_key, signer_key) VALUES (?, ?, ?, ?, ?, ?)",
        [SS_Q_SIGNER_GET] = "SELECT tenant_id, created, root_der, signer_der, root_key, "
                            "signer_key FROM tenant_signers WHERE tenant_id = ?",
        [SS_Q_IMAGE_ADD] = "INSERT INTO images (id, tenant_id, component_id, type, name, "
                           "version, security_version, payload_size, payload_sha256, "
                           "package_size, package_sha256, created, package) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [SS_Q_IMAGE_GET] = SS_IMG_COLS "WHERE id = ? AND tenant_id = ?",
        [SS_Q_IMAGE_GET_OS] = SS_IMG_COLS "WHERE id = ? AND tenant_id IS NULL",
        [SS_Q_IMAGE_DUP] = "SELECT id FROM images WHERE tenant_id = ? AND component_id = ? "
                           "AND version = ?",
        [SS_Q_IMAGE_DUP_OS] = "SELECT id FROM images WHERE tenant_id IS NULL AND "
                              "component_id = ? AND version = ?",
        [SS_Q_IMAGE_LIST] = SS_IMG_COLS "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        [SS_Q_IMAGE_LIST_OS] = SS_IMG_COLS "WHERE tenant_id IS NULL AND id > ? "
                                           "ORDER BY id LIMIT ?",
        [SS_Q_IMAGE_FIND] = SS_IMG_COLS "WHERE tenant_id = ? AND component_id = ? AND version = ?",
        [SS_Q_IMAGE_FIND_OS] = SS_IMG_COLS "WHERE tenant_id IS NULL AND component_id = ? AND "
                                           "version = ?",
        [SS_Q_IMAGE_PKG] = "SELECT package FROM images WHERE id = ? AND tenant_id = ?",
        [SS_Q_IMAGE_PKG_OS] = "SELECT package FROM images WHERE id = ? AND tenant_id IS NULL",
        [SS_Q_RELEASE_SEQ] = "SELECT COALESCE(MAX(seq), 0) FROM os_releases",
        [SS_Q_RELEASE_DUP] = "SELECT id FROM os_releases WHERE feed = ? AND image_id = ?",
        [SS_Q_RELEASE_ADD] = "INSERT INTO os_releases (id, seq, feed, image_id, published) "
                             "VALUES (?, ?, ?, ?, ?)",
        [SS_Q_RELEASE_LIST] = "SELECT id, feed, image_id, published, seq FROM os_releases "
                              "WHERE feed = ? ORDER BY seq DESC LIMIT ?",
        [SS_Q_DEPLOY_SEQ] = "SELECT COALESCE(MAX(seq), 0) FROM deployments WHERE group_id = ?",
        [SS_Q_DEPLOY_ADD] = "INSERT INTO deployments (id, tenant_id, group_id, seq, created) "
                            "VALUES (?, ?, ?, ?, ?)",
        [SS_Q_DEPLOY_IMAGE_ADD] = "INSERT INTO deployment_images (deployment_id, pos, image_id) "
                                  "VALUES (?, ?, ?)",
        [SS_Q_DEPLOY_LIST] = "SELECT id, tenant_id, group_id, seq, created FROM deployments "
                             "WHERE tenant_id = ? AND group_id = ? ORDER BY seq DESC LIMIT ?",
        [SS_Q_DEPLOY_IMAGES] = "SELECT image_id FROM deployment_images WHERE deployment_id = ? "
                               "ORDER BY pos",
        [SS_Q_REG_ADD] = "INSERT INTO device_registrations (device_id, attestation_key, "
                         "registered, registered_by) VALUES (?, ?, ?, ?)",
        [SS_Q_REG_GET] = "SELECT device_id, attestation_key, registered, registered_by "
                         "FROM device_registrations WHERE device_id = ?",
        [SS_Q_REG_KEY] = "SELECT device_id FROM device_registrations WHERE attestation_key = ?",
        [SS_Q_CHECKIN_HELD] = "SELECT 1 FROM devices WHERE id = ? AND tenant_id = ?",
        /* The compare-and-set: a row changes only for a later nonce. */
        [SS_Q_CHECKIN_CAS] =
                "INSERT INTO device_checkins (device_id, tenant_id, last_checkin, nonce_ms, "
                "up_to_date, cert_expires, measured) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET tenant_id = excluded.tenant_id, "
                "last_checkin = excluded.last_checkin, nonce_ms = excluded.nonce_ms, "
                "up_to_date = excluded.up_to_date, cert_expires = CASE WHEN "
                "excluded.cert_expires > 0 THEN excluded.cert_expires WHEN "
                "device_checkins.tenant_id = excluded.tenant_id THEN "
                "device_checkins.cert_expires ELSE 0 END, measured = excluded.measured "
                "WHERE device_checkins.nonce_ms < excluded.nonce_ms",
        [SS_Q_CHECKIN_GET] = "SELECT device_id, tenant_id, last_checkin, nonce_ms, up_to_date, "
                             "cert_expires, measured FROM device_checkins WHERE device_id = ?",
        [SS_Q_FAILURE_ADD] = "INSERT INTO device_failures (device_id, tenant_id, at, component, "
                             "kind, code, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [SS_Q_FAILURE_TRIM] = "DELETE FROM device_failures WHERE device_id = ? AND (at < ? OR "
                              "id NOT IN (SELECT id FROM device_failures WHERE device_id = ? "
                              "ORDER BY id DESC LIMIT ?))",
#define SS_FAIL_COLS                                                                               \
	"SELECT id, device_id, tenant_id, at, component, kind, code, text FROM device_failures "
        [SS_Q_FAILURE_LIST] =
                SS_FAIL_COLS "WHERE tenant_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        [SS_Q_FAILURE_LIST_DEV] = SS_FAIL_COLS "WHERE tenant_id = ? AND device_id = ? AND id < ? "
                                               "ORDER BY id DESC LIMIT ?",
        [SS_Q_FAILURE_LIST_GROUP] = SS_FAIL_COLS "WHERE tenant_id = ?1 AND device_id IN (SELECT id "
                                                 "FROM devices WHERE tenant_id = ?1 AND "
                                                 "group_id = ?2) AND id < ?3 ORDER BY id DESC "
                                                 "LIMIT ?4",
        [SS_Q_FAILURE_LIST_COMP] = SS_FAIL_COLS "WHERE tenant_id = ? AND component = ? AND id < ? "
                                                "ORDER BY id DESC LIMIT ?",
#undef SS_FAIL_COLS
#undef SS_IMG_COLS
        [SS_Q_CAP_SIGNER_ADD] = "INSERT INTO tenant_cap_signers (tenant_id, created, signer_der, "
                                "signer_key) VALUES (?, ?, ?, ?)",
        [SS_Q_CAP_SIGNER_GET] = "SELECT tenant_id, created, signer_der, signer_key "
                                "FROM tenant_cap_signers WHERE tenant_id = ?",
        [SS_Q_MODE_SET] = "INSERT INTO device_modes (device_id, tenant_id, mode, updated) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
                          "tenant_id = excluded.tenant_id, mode = excluded.mode, "
                          "updated = excluded.updated",
        [SS_Q_MODE_GET] = "SELECT mode FROM device_modes WHERE device_id = ? AND tenant_id = ?",
};

struct ss_sq_conn {
	pthread_mutex_t mu;
	sqlite3 *db;
	sqlite3_stmt *stmt[SS_Q_COUNT];
	const char *op; /* the running operation, for logs */
	bool busy;      /* the last failure was SQLITE_BUSY / SQLITE_LOCKED */
};

struct ss_sq {
	struct ss_sq_conn conn[SS_SQ_CONNS];
	size_t nconn; /* connections whose mutex is initialised */
	atomic_uint next;
};

/* Everything one operation needs; each callback reads its own fields. */
struct ss_sq_args {
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
	const char *product_id, *group_id; /* products and device groups */
	const void *in2;
	size_t ngroups;
};

typedef int (*ss_sq_fn)(struct ss_sq_conn *c, struct ss_sq_args *a);

/* ---- low-level helpers -------------------------------------------------------- */

/* Maps an SQLite result code to a status. Expected refusals are not logged;
 * messages name tables and columns, never bound values. */
static int ss_sq_err(struct ss_sq_conn *c, int src)
{
	int prim = src & 0xff;

	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
		c->busy = true;
		return SPH_ERR_IO;
	}
	if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY)
		return SPH_ERR_DUPLICATE;
	if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
		return SPH_ERR_NOT_FOUND;
	sph_log(SPH_LOG_ERROR, "ss_store", "db_error", "backend=sqlite op=%s code=%d msg=\"%s\"",
	        c->op, src, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(src));
	return SPH_ERR_IO;
}

static int ss_sq_corrupt(struct ss_sq_conn *c, const char *what)
{
	sph_log(SPH_LOG_ERROR, "ss_store", "db_corrupt", "backend=sqlite op=%s column=%s", c->op,
	        what);
	return SPH_ERR_CORRUPT;
}

/* Gets statement q (prepared once) and binds types: t text, n text or NULL
 * for "", i int64_t, b a 32-byte blob, B a blob and its size_t length.
 * Returns 0 and *out. */
static int ss_sq_vprep(struct ss_sq_conn *c, enum ss_sq_q q, sqlite3_stmt **out, const char *types,
                       va_list ap)
{
	sqlite3_stmt *s;
	int src = SQLITE_OK;

	*out = NULL;
	if (!c->stmt[q]) {
		src = sqlite3_prepare_v3(c->db, ss_sq_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
		                         &c->stmt[q], NULL);
		if (src != SQLITE_OK)
			return ss_sq_err(c, src);
	}
	s = c->stmt[q];
	for (int i = 0; types[i] && src == SQLITE_OK; i++) {
		const char *v;
		switch (types[i]) {
		case 't':
			v = va_arg(ap, const char *);
			src = sqlite3_bind_text(s, i + 1, v, -1, SQLITE_STATIC);
			break;
		case 'n':
			v = va_arg(ap, const char *);
			src = v[0] ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_STATIC)
			           : sqlite3_bind_null(s, i + 1);
			break;
		case 'i':
			src = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			src = sqlite3_bind_blob(s, i + 1, va_arg(ap, const uint8_t *), 32,
			                        SQLITE_STATIC);
			break;
		case 'B': {
			const uint8_t *p = va_arg(ap, const uint8_t *);
			size_t len = va_arg(ap, size_t);
			src = len > (size_t)INT32_MAX
			              ? SQLITE_TOOBIG
			              : sqlite3_bind_blob(s, i + 1, p, (int)len, SQLITE_STATIC);
			break;
		}
		default:
			src = SQLITE_MISUSE;
		}
	}
	if (src != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return ss_sq_err(c, src);
	}
	*out = s;
	return 0;
}

static int ss_sq_prep(struct ss_sq_conn *c, enum ss_sq_q q, sqlite3_stmt **out, const char *types,
                      ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = ss_sq_vprep(c, q, out, types, ap);
	va_end(ap);
	return rc;
}

/* Resets a statement for its next use (accepts NULL). */
static void ss_sq_done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

/* Returns 1 for a row, 0 when done, or a negative status. */
static int ss_sq_step(struct ss_sq_conn *c, sqlite3_stmt *s)
{
	int src = sqlite3_step(s);

	if (src == SQLITE_ROW)
		return 1;
	if (src == SQLITE_DONE)
		return 0;
	return ss_sq_err(c, src);
}

/* Runs statement q to completion. Returns 0 or a negative status. */
static int ss_sq_exec(struct ss_sq_conn *c, enum ss_sq_q q, const char *types, ...)
{
	sqlite3_stmt *s = NULL;
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = ss_sq_vprep(c, q, &s, types, ap);
	va_end(ap);
	if (rc)
		goto out;
	do
		rc = ss_sq_step(c, s);
	while (rc == 1);
out:
	ss_sq_done(s);
	return rc;
}

/* Copies text column col into dst[cap]; NULL gives "" only when nullable. */
static int ss_sq_text(struct ss_sq_conn *c, sqlite3_stmt *s, int col, char *dst, size_t cap,
                      bool nullable)
{
	const unsigned char *v;
	int len;

	dst[0] = '\0';
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return nullable ? 0 : ss_sq_corrupt(c, sqlite3_column_name(s, col));
	v = sqlite3_column_text(s, col);
	len = sqlite3_column_bytes(s, col);
	if (!v)
		return ss_sq_err(c, SQLITE_NOMEM);
	if (len <= 0 || (size_t)len >= cap || strlen((const char *)v) != (size_t)len)
		return ss_sq_corrupt(c, sqlite3_column_name(s, col));
	memcpy(dst, v, (size_t)len + 1);
	return 0;
}

/* Runs every statement of a fixed SQL script (no parameters). If expect is
 * set, the first statement's first column must read exactly that. */
static int ss_sq_script(struct ss_sq_conn *c, const char *sql, const char *expect)
{
	const char *tail = sql;
	int rc = 0;

	while (rc == 0 && tail && *tail) {
		sqlite3_stmt *s = NULL;
		int src = sqlite3_prepare_v3(c->db, tail, -1, 0, &s, &tail);
		if (src != SQLITE_OK) {
			rc = ss_sq_err(c, src);
			break;
		}
		if (!s)
			break; /* only whitespace or comments left */
		rc = ss_sq_step(c, s);
		if (rc == 1 && expect) {
			const unsigned char *v = sqlite3_column_text(s, 0);
			if (!v || strcmp((const char *)v, expect) != 0) {
				sph_log(SPH_LOG_ERROR, "ss_store", "db_setting",
				        "backend=sqlite sql=\"%s\" got=%s want=%s", sql,
				        v ? (const char *)v : "NULL", expect);
				rc = SPH_ERR_IO;
			}
			expect = NULL;
		}
		while (rc == 1)
			rc = ss_sq_step(c, s);
		sqlite3_finalize(s);
	}
	return rc;
}

/* ---- connections and transactions ------------------------------------------- */

static int64_t ss_sq_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct ss_sq_conn *ss_sq_acquire(struct ss_sq *s)
{
	unsigned start = atomic_fetch_add(&s->next, 1u);
	struct ss_sq_conn *c;

	for (unsigned i = 0; i < SS_SQ_CONNS; i++) {
		c = &s->conn[(start + i) % SS_SQ_CONNS];
		if (pthread_mutex_trylock(&c->mu) == 0)
			return c;
	}
	c = &s->conn[start % SS_SQ_CONNS];
	pthread_mutex_lock(&c->mu);
	return c;
}

static void ss_sq_release(struct ss_sq_conn *c)
{
	c->op = NULL;
	pthread_mutex_unlock(&c->mu);
}

/* Runs fn on a pooled connection: inside BEGIN IMMEDIATE ... COMMIT when
 * write (rolled back on any failure), and again while the database is busy,
 * for at most SS_SQ_BUSY_MS. */
static int ss_sq_run(struct ss_sq *s, const char *op, bool write, ss_sq_fn fn, struct ss_sq_args *a)
{
	struct ss_sq_conn *c = ss_sq_acquire(s);
	int64_t start = ss_sq_ms();
	int rc;

	for (unsigned attempt = 0;; attempt++) {
		c->op = op;
		c->busy = false;
		rc = write ? ss_sq_exec(c, SS_Q_BEGIN, "") : 0;
		if (rc == 0)
			rc = fn(c, a);
		if (rc == 0 && write)
			rc = ss_sq_exec(c, SS_Q_COMMIT, "");
		if (!sqlite3_get_autocommit(c->db)) {
			bool busy = c->busy;
			ss_sq_exec(c, SS_Q_ROLLBACK, "");
			c->busy = busy;
		}
		if (rc == 0 || !c->busy || ss_sq_ms() - start >= SS_SQ_BUSY_MS)
			break;
		struct timespec ts = {0, (long)(1 + (attempt < 20 ? attempt : 20)) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (rc && c->busy)
		sph_log(SPH_LOG_ERROR, "ss_store", "db_busy", "backend=sqlite op=%s ms=%lld", op,
		        (long long)(ss_sq_ms() - start));
	ss_sq_release(c);
	return rc;
}

static int ss_sq_conn_open(struct ss_sq_conn *c, const char *path, bool first)
{
	const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	                  SQLITE_OPEN_EXRESCODE;
	int src;
	int rc;

	c->op = "open";
	src = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (src != SQLITE_OK) {
		rc = ss_sq_err(c, src);
		goto out;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SS_SQ_BUSY_MS);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	rc = first ? ss_sq_script(c, "PRAGMA journal_mode = WAL", "wal") : 0;
	if (rc)
		goto out;
	rc = ss_sq_script(c, "PRAGMA foreign_keys = ON", NULL);
	if (!rc)
		rc = ss_sq_script(c, "PRAGMA foreign_keys", "1");
	if (!rc)
		rc = ss_sq_script(c, "PRAGMA synchronous = FULL", NULL);
	if (!rc)
		rc = ss_sq_script(c, "PRAGMA synchronous", "2");
out:
	c->op = NULL;
	return rc;
}

static void ss_sq_close(void *be)
{
	struct ss_sq *s = be;

	if (!s)
		return;
	for (size_t i = 0; i < s->nconn; i++) {
		struct ss_sq_conn *c = &s->conn[i];
		for (int q = 0; q < SS_Q_COUNT; q++)
			sqlite3_finalize(c->stmt[q]);
		if (sqlite3_close(c->db) != SQLITE_OK)
			sph_log(SPH_LOG_ERROR, "ss_store", "db_close", "backend=sqlite msg=\"%s\"",
			        sqlite3_errmsg(c->db));
		pthread_mutex_destroy(&c->mu);
	}
	free(s);
}

/* One migration step: brings the schema one version forward (a->more). */
static int ss_sq_migrate_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	sqlite3_stmt *s = NULL;
	int64_t v = 0;
	int rc;

	a->more = false;
	rc = ss_sq_exec(c, SS_Q_VERSION_TABLE, "");
	if (!rc)
		rc = ss_sq_prep(c, SS_Q_VERSION, &s, "");
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1) {
		v = sqlite3_column_int64(s, 0);
		rc = 0;
	}
	ss_sq_done(s);
	if (rc)
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (v < 0 || v > SS_SQ_SCHEMA) {
		sph_log(SPH_LOG_ERROR, "ss_store", "db_schema_unknown",
		        "backend=sqlite version=%lld known=%d", (long long)v, SS_SQ_SCHEMA);
		goto out;
	}
	rc = 0;
	if (v == SS_SQ_SCHEMA)
		goto out;
	rc = ss_sq_script(c, ss_sq_migrations[v], NULL);
	if (!rc)
		rc = ss_sq_exec(c, SS_Q_VERSION_ADD, "ii", v + 1, ss_store_now());
	if (rc)
		goto out;
	sph_log(SPH_LOG_INFO, "ss_store", "db_migrated", "backend=sqlite version=%lld",
	        (long long)(v + 1));
	a->more = true;
out:
	return rc;
}

static int ss_sq_open(const char *path, void **be)
{
	struct ss_sq *s = NULL;
	struct ss_sq_args a = {0};
	int rc = SPH_ERR_INVALID_ARG;
	int fd;

	*be = NULL;
	/* A file only: ":memory:" would give each pooled connection its own database. */
	if (!path[0] || path[0] == ':')
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (!sqlite3_threadsafe())
		goto out;
	/* Created owner-only; SQLite gives -wal and -shm the same mode. */
	rc = SPH_ERR_IO;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		sph_log(SPH_LOG_ERROR, "ss_store", "db_open", "backend=sqlite path=\"%s\" errno=%d",
		        path, errno);
		goto out;
	}
	close(fd);
	rc = SPH_ERR_NOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	for (size_t i = 0; i < SS_SQ_CONNS; i++) {
		rc = SPH_ERR_IO;
		if (pthread_mutex_init(&s->conn[i].mu, NULL) != 0)
			goto out;
		s->nconn++;
		rc = ss_sq_conn_open(&s->conn[i], path, i == 0);
		if (rc)
			goto out;
	}
	do
		rc = ss_sq_run(s, "migrate", true, ss_sq_migrate_fn, &a);
	while (rc == 0 && a.more);
	if (rc)
		goto out;
	*be = s;
	s = NULL; /* transferred */
out:
	ss_sq_close(s);
	return rc;
}

/* ---- rows --------------------------------------------------------------------- */

static int ss_sq_tenant_row(struct ss_sq_conn *c, sqlite3_stmt *s, struct ss_tenant *t)
{
	int rc = ss_sq_text(c, s, 0, t->id, sizeof(t->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, t->name, sizeof(t->name), false);
	t->created = sqlite3_column_int64(s, 2);
	return rc;
}

static int ss_sq_user_row(struct ss_sq_conn *c, sqlite3_stmt *s, int col, struct ss_user *u)
{
	int rc = ss_sq_text(c, s, col, u->id, sizeof(u->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, col + 1, u->name, sizeof(u->name), false);
	u->is_operator = sqlite3_column_int64(s, col + 2) != 0;
	return rc;
}

static int ss_sq_device_row(struct ss_sq_conn *c, sqlite3_stmt *s, struct ss_device *d)
{
	int rc = ss_sq_text(c, s, 0, d->id, sizeof(d->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, d->tenant_id, sizeof(d->tenant_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 2, d->released_to, sizeof(d->released_to), true);
	d->claimed = sqlite3_column_int64(s, 3);
	if (!rc)
		rc = ss_sq_text(c, s, 4, d->group_id, sizeof(d->group_id), true);
	d->registered = sqlite3_column_int64(s, 5) != 0;
	d->target_gen = sqlite3_column_int64(s, 6);
	d->os_gen = sqlite3_column_int64(s, 7);
	return rc;
}

static int ss_sq_audit_row(struct ss_sq_conn *c, sqlite3_stmt *s, struct ss_audit *e)
{
	int rc = 0;

	e->id = sqlite3_column_int64(s, 0);
	e->at = sqlite3_column_int64(s, 1);
	/* tenant_id and actor may be "" (stored as empty text). */
	if (sqlite3_column_bytes(s, 2) > 0)
		rc = ss_sq_text(c, s, 2, e->tenant_id, sizeof(e->tenant_id), false);
	if (!rc && sqlite3_column_bytes(s, 3) > 0)
		rc = ss_sq_text(c, s, 3, e->actor, sizeof(e->actor), false);
	if (!rc)
		rc = ss_sq_text(c, s, 4, e->action, sizeof(e->action), false);
	if (!rc)
		rc = ss_sq_text(c, s, 5, e->target, sizeof(e->target), false);
	if (!rc && sqlite3_column_bytes(s, 6) > 0)
		rc = ss_sq_text(c, s, 6, e->detail, sizeof(e->detail), false);
	return rc;
}

/* Reads a role column (1..3). */
static int ss_sq_role_col(struct ss_sq_conn *c, sqlite3_stmt *s, int col, enum ss_role *role)
{
	int64_t v = sqlite3_column_int64(s, col);

	if (v < SS_ROLE_READER || v > SS_ROLE_ADMIN)
		return ss_sq_corrupt(c, "role");
	*role = (enum ss_role)v;
	return 0;
}

/* 0 if statement q (one id parameter) finds a row, else SPH_ERR_NOT_FOUND. */
static int ss_sq_exists(struct ss_sq_conn *c, enum ss_sq_q q, const char *id)
{
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, q, &s, "t", id);

	if (!rc)
		rc = ss_sq_step(c, s);
	ss_sq_done(s);
	return rc == 1 ? 0 : rc == 0 ? SPH_ERR_NOT_FOUND : rc;
}

/* 0 if tenant_id holds device_id, else SPH_ERR_NOT_FOUND. */
static int ss_sq_exists2(struct ss_sq_conn *c, const char *tenant_id, const char *device_id)
{
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, SS_Q_CHECKIN_HELD, &s, "tt", device_id, tenant_id);

	if (!rc)
		rc = ss_sq_step(c, s);
	ss_sq_done(s);
	return rc == 1 ? 0 : rc == 0 ? SPH_ERR_NOT_FOUND : rc;
}

static int ss_sq_audit(struct ss_sq_conn *c, const char *tenant_id, const char *actor,
                       const char *action, const char *target, const char *detail)
{
	return ss_sq_exec(c, SS_Q_AUDIT_ADD, "ittttt", ss_store_now(), tenant_id, actor, action,
	                  target, detail);
}

/* ---- operations ----------------------------------------------------------------- */

static int ss_sq_version_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, SS_Q_VERSION, &s, "");

	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1) {
		a->version = (int)sqlite3_column_int64(s, 0);
		rc = 0;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_schema_version(void *be, int *version)
{
	struct ss_sq_args a = {0};
	int rc = ss_sq_run(be, "schema_version", false, ss_sq_version_fn, &a);

	if (!rc)
		*version = a.version;
	return rc;
}

/* A one-row lookup: statement q with one or two text parameters (types), the
 * row read by row(); no row: SPH_ERR_NOT_FOUND. */
static int ss_sq_get1(struct ss_sq_conn *c, enum ss_sq_q q, const char *types, const char *p1,
                      const char *p2, int (*row)(struct ss_sq_conn *, sqlite3_stmt *, void *),
                      void *out)
{
	sqlite3_stmt *s = NULL;
	int rc = types[1] ? ss_sq_prep(c, q, &s, types, p1, p2) : ss_sq_prep(c, q, &s, types, p1);

	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1)
		rc = row(c, s, out);
	else if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	ss_sq_done(s);
	return rc;
}

static int ss_sq_tenant_row_v(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	return ss_sq_tenant_row(c, s, out);
}

static int ss_sq_user_row_v(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	return ss_sq_user_row(c, s, 0, out);
}

static int ss_sq_device_row_v(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	return ss_sq_device_row(c, s, out);
}

static int ss_sq_tenant_create_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_tenant *t = a->in;
	int rc = ss_sq_exec(c, SS_Q_TENANT_ADD, "tti", t->id, t->name, t->created);

	if (!rc)
		rc = ss_sq_audit(c, t->id, a->actor, "tenant.create", t->id, t->name);
	return rc;
}

static int ss_sq_tenant_create(void *be, const struct ss_tenant *t, const char *actor)
{
	struct ss_sq_args a = {.in = t, .actor = actor};

	return ss_sq_run(be, "tenant_create", true, ss_sq_tenant_create_fn, &a);
}

static int ss_sq_tenant_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_TENANT_GET, "t", a->tenant_id, NULL, ss_sq_tenant_row_v, a->out);
}

static int ss_sq_tenant_get(void *be, const char *id, struct ss_tenant *out)
{
	struct ss_sq_args a = {.tenant_id = id, .out = out};

	return ss_sq_run(be, "tenant_get", false, ss_sq_tenant_get_fn, &a);
}

static int ss_sq_tenants_of_user_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_tenant *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_TENANTS_OF_USER, &s, "ti", a->user_id, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_tenant_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_tenant_list_for_user(void *be, const char *user_id, struct ss_tenant *out,
                                      size_t cap, size_t *n)
{
	struct ss_sq_args a = {.user_id = user_id, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "tenant_list_for_user", false, ss_sq_tenants_of_user_fn, &a);

	if (rc)
		*n = 0;
	return rc;
}

static int ss_sq_user_create_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_user *u = a->in;

	return ss_sq_exec(c, SS_Q_USER_ADD, "ttii", u->id, u->name, (int64_t)u->is_operator,
	                  a->when);
}

static int ss_sq_user_create(void *be, const struct ss_user *u, int64_t created)
{
	struct ss_sq_args a = {.in = u, .when = created};

	return ss_sq_run(be, "user_create", true, ss_sq_user_create_fn, &a);
}

static int ss_sq_user_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, a->name ? SS_Q_USER_BY_NAME : SS_Q_USER_GET, "t",
	                  a->name ? a->name : a->user_id, NULL, ss_sq_user_row_v, a->out);
}

static int ss_sq_user_get(void *be, const char *id, struct ss_user *out)
{
	struct ss_sq_args a = {.user_id = id, .out = out};

	return ss_sq_run(be, "user_get", false, ss_sq_user_get_fn, &a);
}

static int ss_sq_user_by_name(void *be, const char *name, struct ss_user *out)
{
	struct ss_sq_args a = {.name = name, .out = out};

	return ss_sq_run(be, "user_by_name", false, ss_sq_user_get_fn, &a);
}

/* The user's role in the tenant, SS_ROLE_NONE if none. */
static int ss_sq_role_of(struct ss_sq_conn *c, const char *tenant_id, const char *user_id,
                         enum ss_role *role)
{
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, SS_Q_ROLE_GET, &s, "tt", tenant_id, user_id);

	*role = SS_ROLE_NONE;
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1)
		rc = ss_sq_role_col(c, s, 0, role);
	ss_sq_done(s);
	return rc;
}

static int ss_sq_role_set_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const char *detail = a->role == SS_ROLE_NONE ? "None" : ss_role_name(a->role);
	sqlite3_stmt *s = NULL;
	enum ss_role cur;
	int rc;

	rc = ss_sq_exists(c, SS_Q_TENANT_GET, a->tenant_id);
	if (!rc)
		rc = ss_sq_exists(c, SS_Q_USER_GET, a->user_id);
	if (!rc)
		rc = ss_sq_role_of(c, a->tenant_id, a->user_id, &cur);
	if (rc)
		goto out;
	if (cur == SS_ROLE_ADMIN && a->role != SS_ROLE_ADMIN) {
		rc = ss_sq_prep(c, SS_Q_ROLE_ADMINS, &s, "t", a->tenant_id);
		if (!rc)
			rc = ss_sq_step(c, s);
		if (rc == 1)
			rc = sqlite3_column_int64(s, 0) > 1 ? 0 : SPH_ERR_STATE;
		else if (rc == 0)
			rc = ss_sq_corrupt(c, "role");
		ss_sq_done(s);
		if (rc)
			goto out;
	}
	if (a->role == SS_ROLE_NONE)
		rc = cur == SS_ROLE_NONE
		             ? SPH_ERR_NOT_FOUND
		             : ss_sq_exec(c, SS_Q_ROLE_DELETE, "tt", a->tenant_id, a->user_id);
	else if (cur == SS_ROLE_NONE)
		rc = ss_sq_exec(c, SS_Q_ROLE_ADD, "tti", a->tenant_id, a->user_id,
		                (int64_t)a->role);
	else
		rc = ss_sq_exec(c, SS_Q_ROLE_UPDATE, "itt", (int64_t)a->role, a->tenant_id,
		                a->user_id);
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "role.set", a->user_id, detail);
out:
	return rc;
}

static int ss_sq_role_set(void *be, const char *tenant_id, const char *user_id, enum ss_role role,
                          const char *actor)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .user_id = user_id, .role = role, .actor = actor};

	return ss_sq_run(be, "role_set", true, ss_sq_role_set_fn, &a);
}

static int ss_sq_role_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_role_of(c, a->tenant_id, a->user_id, a->out);
}

static int ss_sq_role_get(void *be, const char *tenant_id, const char *user_id, enum ss_role *role)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .user_id = user_id, .out = role};
	int rc = ss_sq_run(be, "role_get", false, ss_sq_role_get_fn, &a);

	if (rc)
		*role = SS_ROLE_NONE;
	return rc;
}

static int ss_sq_role_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_role_entry *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_ROLE_LIST, &s, "ti", a->tenant_id, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		struct ss_role_entry *e = &out[*a->n];
		rc = ss_sq_text(c, s, 0, e->user_id, sizeof(e->user_id), false);
		if (!rc)
			rc = ss_sq_text(c, s, 1, e->user_name, sizeof(e->user_name), false);
		if (!rc)
			rc = ss_sq_role_col(c, s, 2, &e->role);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_role_list(void *be, const char *tenant_id, struct ss_role_entry *out, size_t cap,
                           size_t *n)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "role_list", false, ss_sq_role_list_fn, &a);

	if (rc)
		*n = 0;
	return rc;
}

static int ss_sq_token_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_token *t = a->in;
	int rc = ss_sq_exists(c, SS_Q_USER_GET, t->user_id);

	if (!rc)
		rc = ss_sq_exec(c, SS_Q_TOKEN_ADD, "ttbi", t->id, t->user_id, a->hash, t->created);
	return rc;
}

static int ss_sq_token_add(void *be, const struct ss_token *tok, const uint8_t hash[32])
{
	struct ss_sq_args a = {.in = tok, .hash = hash};

	return ss_sq_run(be, "token_add", true, ss_sq_token_add_fn, &a);
}

static int ss_sq_token_find_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_token *t = a->out;
	struct ss_user *u = a->out2;
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, SS_Q_TOKEN_FIND, &s, "b", a->hash);

	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	if (rc != 1)
		goto out;
	rc = ss_sq_text(c, s, 0, t->id, sizeof(t->id), false);
	t->created = sqlite3_column_int64(s, 1);
	t->revoked = false;
	if (!rc)
		rc = ss_sq_user_row(c, s, 2, u);
	if (!rc)
		memcpy(t->user_id, u->id, sizeof(t->user_id));
out:
	ss_sq_done(s);
	return rc;
}

static int ss_sq_token_find(void *be, const uint8_t hash[32], struct ss_token *tok,
                            struct ss_user *user)
{
	struct ss_sq_args a = {.hash = hash, .out = tok, .out2 = user};
	int rc = ss_sq_run(be, "token_find", false, ss_sq_token_find_fn, &a);

	if (rc) {
		memset(tok, 0, sizeof(*tok));
		memset(user, 0, sizeof(*user));
	}
	return rc;
}

static int ss_sq_token_revoke_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	int rc = ss_sq_exec(c, SS_Q_TOKEN_REVOKE, "tt", a->token_id, a->user_id);

	if (!rc && sqlite3_changes(c->db) != 1)
		rc = SPH_ERR_NOT_FOUND;
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "token.revoke", a->token_id, "");
	return rc;
}

static int ss_sq_token_revoke(void *be, const char *user_id, const char *token_id,
                              const char *tenant_id, const char *actor)
{
	struct ss_sq_args a = {
	        .user_id = user_id, .token_id = token_id, .tenant_id = tenant_id, .actor = actor};

	return ss_sq_run(be, "token_revoke", true, ss_sq_token_revoke_fn, &a);
}

static int ss_sq_device_claim_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	char holder[SS_UUID_LEN + 1], released[SS_UUID_LEN + 1];
	sqlite3_stmt *s = NULL;
	bool transfer = false;
	int rc;

	rc = ss_sq_exists(c, SS_Q_TENANT_GET, a->tenant_id);
	if (!rc)
		rc = ss_sq_prep(c, SS_Q_DEVICE_STATE, &s, "t", a->device_id);
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1) {
		rc = ss_sq_text(c, s, 0, holder, sizeof(holder), false);
		if (!rc)
			rc = ss_sq_text(c, s, 1, released, sizeof(released), true);
		if (!rc)
			transfer = true;
	}
	ss_sq_done(s);
	if (rc)
		goto out;
	if (!transfer) {
		rc = ss_sq_exec(c, SS_Q_DEVICE_ADD, "tti", a->device_id, a->tenant_id,
		                ss_store_now());
	} else if (strcmp(released, a->tenant_id) == 0) {
		rc = ss_sq_exec(c, SS_Q_DEVICE_MOVE, "titt", a->tenant_id, ss_store_now(),
		                a->device_id, a->tenant_id);
		if (!rc && sqlite3_changes(c->db) != 1)
			rc = ss_sq_corrupt(c, "devices");
	} else {
		/* Held by someone (this tenant included): claimed once. Released
		 * to a third tenant: not this one's to take. */
		rc = released[0] && strcmp(holder, a->tenant_id) != 0 ? SPH_ERR_PERMISSION
		                                                      : SPH_ERR_DUPLICATE;
	}
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "device.claim", a->device_id,
		                 transfer ? "transfer" : "");
out:
	return rc;
}

static int ss_sq_device_claim(void *be, const char *tenant_id, const char *device_id,
                              const char *actor)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .device_id = device_id, .actor = actor};

	return ss_sq_run(be, "device_claim", true, ss_sq_device_claim_fn, &a);
}

static int ss_sq_device_release_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	int rc = ss_sq_exists(c, SS_Q_TENANT_GET, a->to_tenant);

	if (!rc)
		rc = ss_sq_exec(c, SS_Q_DEVICE_RELEASE, "ttt", a->to_tenant, a->device_id,
		                a->tenant_id);
	if (!rc && sqlite3_changes(c->db) != 1)
		rc = SPH_ERR_NOT_FOUND;
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "device.release", a->device_id,
		                 a->to_tenant);
	return rc;
}

static int ss_sq_device_release(void *be, const char *tenant_id, const char *device_id,
                                const char *to_tenant, const char *actor)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .to_tenant = to_tenant,
	                       .actor = actor};

	return ss_sq_run(be, "device_release", true, ss_sq_device_release_fn, &a);
}

static int ss_sq_device_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_DEVICE_GET, "tt", a->device_id, a->tenant_id, ss_sq_device_row_v,
	                  a->out);
}

static int ss_sq_device_get(void *be, const char *tenant_id, const char *device_id,
                            struct ss_device *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .device_id = device_id, .out = out};
	int rc = ss_sq_run(be, "device_get", false, ss_sq_device_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_device_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_device *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_DEVICE_LIST, &s, "tti", a->tenant_id, a->after, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_device_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_device_list(void *be, const char *tenant_id, const char *after,
                             struct ss_device *out, size_t cap, size_t *n)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "device_list", false, ss_sq_device_list_fn, &a);

	if (rc)
		*n = 0;
	return rc;
}

static int ss_sq_audit_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_audit *e = a->in;

	return ss_sq_audit(c, e->tenant_id, e->actor, e->action, e->target, e->detail);
}

static int ss_sq_audit_add(void *be, const struct ss_audit *e)
{
	struct ss_sq_args a = {.in = e};

	return ss_sq_run(be, "audit_add", true, ss_sq_audit_add_fn, &a);
}

static int ss_sq_audit_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_audit *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_AUDIT_LIST, &s, "tii", a->tenant_id, a->after_id, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		memset(&out[*a->n], 0, sizeof(out[*a->n]));
		rc = ss_sq_audit_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_audit_list(void *be, const char *tenant_id, int64_t after_id, struct ss_audit *out,
                            size_t cap, size_t *n)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .after_id = after_id, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "audit_list", false, ss_sq_audit_list_fn, &a);

	if (rc)
		*n = 0;
	return rc;
}

/* ---- products and device groups ------------------------------------------------ */

/* Like ss_sq_text for a NOT NULL column that may hold "". */
static int ss_sq_text0(struct ss_sq_conn *c, sqlite3_stmt *s, int col, char *dst, size_t cap)
{
	dst[0] = '\0';
	if (sqlite3_column_type(s, col) == SQLITE_TEXT && sqlite3_column_bytes(s, col) == 0)
		return 0;
	return ss_sq_text(c, s, col, dst, cap, false);
}

static int ss_sq_product_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_product *p = out;
	int rc = ss_sq_text(c, s, 0, p->id, sizeof(p->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, p->tenant_id, sizeof(p->tenant_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 2, p->name, sizeof(p->name), false);
	if (!rc)
		rc = ss_sq_text0(c, s, 3, p->description, sizeof(p->description));
	p->created = sqlite3_column_int64(s, 4);
	return rc;
}

static int ss_sq_group_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_group *g = out;
	char feed[16], policy[32];
	int rc = ss_sq_text(c, s, 0, g->id, sizeof(g->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, g->tenant_id, sizeof(g->tenant_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 2, g->product_id, sizeof(g->product_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 3, g->name, sizeof(g->name), false);
	if (!rc)
		rc = ss_sq_text0(c, s, 4, g->description, sizeof(g->description));
	if (!rc)
		rc = ss_sq_text(c, s, 5, feed, sizeof(feed), false);
	if (!rc)
		rc = ss_sq_text(c, s, 6, policy, sizeof(policy), false);
	if (rc)
		return rc;
	g->os_feed = ss_os_feed_from_name(feed);
	g->update_policy = ss_update_policy_from_name(policy);
	g->created = sqlite3_column_int64(s, 7);
	if (g->os_feed == SS_FEED_NONE)
		return ss_sq_corrupt(c, "os_feed");
	if (g->update_policy == SS_POLICY_NONE)
		return ss_sq_corrupt(c, "update_policy");
	return 0;
}

/* Inserts a complete group record and its "group.create" audit row. */
static int ss_sq_group_add(struct ss_sq_conn *c, const struct ss_group *g, const char *actor)
{
	int rc = ss_sq_exec(c, SS_Q_GROUP_ADD, "ttttttti", g->id, g->tenant_id, g->product_id,
	                    g->name, g->description, ss_os_feed_name(g->os_feed),
	                    ss_update_policy_name(g->update_policy), g->created);

	if (!rc)
		rc = ss_sq_audit(c, g->tenant_id, actor, "group.create", g->id, g->name);
	return rc;
}

static int ss_sq_product_create_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_product *p = a->in;
	const struct ss_group *gs = a->in2;
	int rc = ss_sq_exists(c, SS_Q_TENANT_GET, p->tenant_id);

	if (!rc)
		rc = ss_sq_exec(c, SS_Q_PRODUCT_ADD, "tttti", p->id, p->tenant_id, p->name,
		                p->description, p->created);
	if (!rc)
		rc = ss_sq_audit(c, p->tenant_id, a->actor, "product.create", p->id, p->name);
	for (size_t i = 0; !rc && i < a->ngroups; i++)
		rc = ss_sq_group_add(c, &gs[i], a->actor);
	return rc;
}

static int ss_sq_product_create(void *be, const struct ss_product *p, const struct ss_group *groups,
                                size_t ngroups, const char *actor)
{
	struct ss_sq_args a = {.in = p, .in2 = groups, .ngroups = ngroups, .actor = actor};

	return ss_sq_run(be, "product_create", true, ss_sq_product_create_fn, &a);
}

static int ss_sq_product_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_PRODUCT_GET, "tt", a->product_id, a->tenant_id, ss_sq_product_row,
	                  a->out);
}

static int ss_sq_product_get(void *be, const char *tenant_id, const char *product_id,
                             struct ss_product *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .product_id = product_id, .out = out};
	int rc = ss_sq_run(be, "product_get", false, ss_sq_product_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_product_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_product *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_PRODUCT_LIST, &s, "tti", a->tenant_id, a->after, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_product_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_product_list(void *be, const char *tenant_id, const char *after,
                              struct ss_product *out, size_t cap, size_t *n)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "product_list", false, ss_sq_product_list_fn, &a);

	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

static int ss_sq_group_create_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_group *g = a->in;
	struct ss_product p;
	int rc;

	/* The product must be the tenant's: another tenant's is "not found". */
	rc = ss_sq_get1(c, SS_Q_PRODUCT_GET, "tt", g->product_id, g->tenant_id, ss_sq_product_row,
	                &p);
	if (!rc)
		rc = ss_sq_group_add(c, g, a->actor);
	return rc;
}

static int ss_sq_group_create(void *be, const struct ss_group *g, const char *actor)
{
	struct ss_sq_args a = {.in = g, .actor = actor};

	return ss_sq_run(be, "group_create", true, ss_sq_group_create_fn, &a);
}

static int ss_sq_group_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_GROUP_GET, "tt", a->group_id, a->tenant_id, ss_sq_group_row,
	                  a->out);
}

static int ss_sq_group_get(void *be, const char *tenant_id, const char *group_id,
                           struct ss_group *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .group_id = group_id, .out = out};
	int rc = ss_sq_run(be, "group_get", false, ss_sq_group_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* Appends " <text>" to the audit detail d (bounded: it always fits). */
static void ss_sq_detail_add(char *d, size_t cap, const char *what, const char *value)
{
	size_t len = strlen(d);

	snprintf(d + len, cap - len, "%s%s%s%s", len ? " " : "", what, value ? "=" : "",
	         value ? value : "");
}

static int ss_sq_group_update_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_group_change *chg = a->in;
	struct ss_group *g = a->out;
	char detail[SS_DETAIL_MAX + 1] = "";
	int rc;

	rc = ss_sq_get1(c, SS_Q_GROUP_GET, "tt", a->group_id, a->tenant_id, ss_sq_group_row, g);
	if (rc)
		goto out;
	if (chg->name) {
		snprintf(g->name, sizeof(g->name), "%s", chg->name);
		ss_sq_detail_add(detail, sizeof(detail), "name", NULL);
	}
	if (chg->description) {
		snprintf(g->description, sizeof(g->description), "%s", chg->description);
		ss_sq_detail_add(detail, sizeof(detail), "description", NULL);
	}
	if (chg->os_feed != SS_FEED_NONE) {
		g->os_feed = chg->os_feed;
		ss_sq_detail_add(detail, sizeof(detail), "os_feed", ss_os_feed_name(g->os_feed));
	}
	if (chg->update_policy != SS_POLICY_NONE) {
		g->update_policy = chg->update_policy;
		ss_sq_detail_add(detail, sizeof(detail), "update_policy",
		                 ss_update_policy_name(g->update_policy));
	}
	rc = ss_sq_exec(c, SS_Q_GROUP_UPDATE, "tttttt", g->name, g->description,
	                ss_os_feed_name(g->os_feed), ss_update_policy_name(g->update_policy),
	                a->group_id, a->tenant_id);
	if (!rc && sqlite3_changes(c->db) != 1)
		rc = ss_sq_corrupt(c, "device_groups");
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "group.update", a->group_id, detail);
out:
	return rc;
}

static int ss_sq_group_update(void *be, const char *tenant_id, const char *group_id,
                              const struct ss_group_change *chg, const char *actor,
                              struct ss_group *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .group_id = group_id,
	                       .in = chg,
	                       .actor = actor,
	                       .out = out};
	int rc = ss_sq_run(be, "group_update", true, ss_sq_group_update_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_group_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_group *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	if (a->product_id[0])
		rc = ss_sq_prep(c, SS_Q_GROUP_LIST_PRODUCT, &s, "ttti", a->tenant_id, a->product_id,
		                a->after, (int64_t)a->cap);
	else
		rc = ss_sq_prep(c, SS_Q_GROUP_LIST, &s, "tti", a->tenant_id, a->after,
		                (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_group_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_group_list(void *be, const char *tenant_id, const char *product_id,
                            const char *after, struct ss_group *out, size_t cap, size_t *n)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .product_id = product_id,
	                       .after = after,
	                       .out = out,
	                       .cap = cap,
	                       .n = n};
	int rc = ss_sq_run(be, "group_list", false, ss_sq_group_list_fn, &a);

	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

static int ss_sq_device_set_group_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	char old[SS_UUID_LEN + 1] = "", detail[SS_DETAIL_MAX + 1];
	struct ss_group g;
	sqlite3_stmt *s = NULL;
	int rc;

	/* The device must be held by the tenant ... */
	rc = ss_sq_prep(c, SS_Q_DEVICE_GROUP_GET, &s, "tt", a->device_id, a->tenant_id);
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1)
		rc = ss_sq_text(c, s, 0, old, sizeof(old), true);
	else if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	ss_sq_done(s);
	if (rc)
		goto out;
	/* ... and the group be the same tenant's. */
	if (a->group_id[0]) {
		rc = ss_sq_get1(c, SS_Q_GROUP_GET, "tt", a->group_id, a->tenant_id, ss_sq_group_row,
		                &g);
		if (rc)
			goto out;
	}
	rc = ss_sq_exec(c, SS_Q_DEVICE_GROUP_SET, "ntt", a->group_id, a->device_id, a->tenant_id);
	if (!rc && sqlite3_changes(c->db) != 1)
		rc = ss_sq_corrupt(c, "devices");
	if (rc)
		goto out;
	snprintf(detail, sizeof(detail), "%s -> %s", old[0] ? old : "none",
	         a->group_id[0] ? a->group_id : "none");
	rc = ss_sq_audit(c, a->tenant_id, a->actor, "device.move", a->device_id, detail);
out:
	return rc;
}

static int ss_sq_device_set_group(void *be, const char *tenant_id, const char *device_id,
                                  const char *group_id, const char *actor)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .group_id = group_id,
	                       .actor = actor};

	return ss_sq_run(be, "device_set_group", true, ss_sq_device_set_group_fn, &a);
}

/* ---- tenant CAs -------------------------------------------------------------------- */

/* Reads blob column col into dst[cap] (1..cap bytes). */
static int ss_sq_blob(struct ss_sq_conn *c, sqlite3_stmt *s, int col, uint8_t *dst, size_t cap,
                      size_t *len)
{
	const void *v = sqlite3_column_blob(s, col);
	int n = sqlite3_column_bytes(s, col);

	*len = 0;
	if (sqlite3_column_type(s, col) != SQLITE_BLOB || n <= 0 || (size_t)n > cap)
		return ss_sq_corrupt(c, sqlite3_column_name(s, col));
	if (!v)
		return ss_sq_err(c, SQLITE_NOMEM);
	memcpy(dst, v, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static int ss_sq_ca_state_col(struct ss_sq_conn *c, sqlite3_stmt *s, int col,
                              enum ss_ca_state *state)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	*state = v ? ss_ca_state_from_name((const char *)v) : (enum ss_ca_state)0;
	return *state ? 0 : ss_sq_corrupt(c, "state");
}

static int ss_sq_ca_row(struct ss_sq_conn *c, sqlite3_stmt *s, struct ss_ca_record *r)
{
	int rc = ss_sq_text(c, s, 0, r->id, sizeof(r->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, r->tenant_id, sizeof(r->tenant_id), false);
	if (!rc)
		rc = ss_sq_ca_state_col(c, s, 2, &r->state);
	r->created = sqlite3_column_int64(s, 3);
	r->not_after = sqlite3_column_int64(s, 4);
	if (!rc)
		rc = ss_sq_blob(c, s, 5, r->root_der, sizeof(r->root_der), &r->root_der_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 6, r->device_der, sizeof(r->device_der), &r->device_der_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 7, r->root_key, sizeof(r->root_key), &r->root_key_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 8, r->device_key, sizeof(r->device_key), &r->device_key_len);
	return rc;
}

static int ss_sq_ca_row_v(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	return ss_sq_ca_row(c, s, out);
}

static int ss_sq_ca_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_ca_record *r = a->in;
	sqlite3_stmt *s = NULL;
	int64_t count = 0, seq = 0, active = 0;
	int rc = ss_sq_exists(c, SS_Q_TENANT_GET, r->tenant_id);

	if (!rc)
		rc = ss_sq_prep(c, SS_Q_CA_COUNT, &s, "t", r->tenant_id);
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1) {
		count = sqlite3_column_int64(s, 0);
		seq = sqlite3_column_int64(s, 1);
		active = sqlite3_column_int64(s, 2);
		rc = 0;
	} else if (rc == 0) {
		rc = ss_sq_corrupt(c, "tenant_cas");
	}
	ss_sq_done(s);
	if (rc)
		goto out;
	rc = SPH_ERR_EXHAUSTED;
	if (count >= SS_CA_PER_TENANT)
		goto out;
	/* One Active CA per tenant: a second one is a state error, not a race. */
	rc = SPH_ERR_STATE;
	if (r->state == SS_CA_ACTIVE && active != 0)
		goto out;
	rc = ss_sq_exec(c, SS_Q_CA_ADD, "ttitiiBBBB", r->id, r->tenant_id, seq + 1,
	                ss_ca_state_name(r->state), r->created, r->not_after, r->root_der,
	                r->root_der_len, r->device_der, r->device_der_len, r->root_key,
	                r->root_key_len, r->device_key, r->device_key_len);
	if (!rc)
		rc = ss_sq_audit(c, r->tenant_id, a->actor, "ca.create", r->id,
		                 ss_ca_state_name(r->state));
out:
	return rc;
}

static int ss_sq_ca_add(void *be, const struct ss_ca_record *ca, const char *actor)
{
	struct ss_sq_args a = {.in = ca, .actor = actor};

	return ss_sq_run(be, "ca_add", true, ss_sq_ca_add_fn, &a);
}

static int ss_sq_ca_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_ca_record *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_CA_LIST, &s, "ti", a->tenant_id, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_ca_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_ca_list(void *be, const char *tenant_id, struct ss_ca_record *out, size_t cap,
                         size_t *n)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "ca_list", false, ss_sq_ca_list_fn, &a);

	if (rc) {
		if (cap)
			memset(out, 0, cap * sizeof(*out));
		*n = 0;
	}
	return rc;
}

static int ss_sq_ca_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	if (a->name)
		return ss_sq_get1(c, SS_Q_CA_GET, "tt", a->tenant_id, a->name, ss_sq_ca_row_v,
		                  a->out);
	return ss_sq_get1(c, SS_Q_CA_ACTIVE, "t", a->tenant_id, NULL, ss_sq_ca_row_v, a->out);
}

static int ss_sq_ca_get(void *be, const char *tenant_id, const char *ca_id,
                        struct ss_ca_record *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .name = ca_id, .out = out};
	int rc = ss_sq_run(be, "ca_get", false, ss_sq_ca_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_ca_active(void *be, const char *tenant_id, struct ss_ca_record *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_sq_run(be, "ca_active", false, ss_sq_ca_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* Moves one CA to state, with its audit row. */
static int ss_sq_ca_move(struct ss_sq_conn *c, const char *tenant_id, const char *id,
                         enum ss_ca_state state, const char *actor)
{
	int rc = ss_sq_exec(c, SS_Q_CA_SET_STATE, "ttt", ss_ca_state_name(state), tenant_id, id);

	if (!rc && sqlite3_changes(c->db) != 1)
		rc = ss_sq_corrupt(c, "tenant_cas");
	if (!rc)
		rc = ss_sq_audit(c, tenant_id, actor, "ca.state", id, ss_ca_state_name(state));
	return rc;
}

static int ss_sq_ca_set_state_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const enum ss_ca_state want = (enum ss_ca_state)a->version;
	char active[SS_UUID_LEN + 1] = "";
	enum ss_ca_state cur = (enum ss_ca_state)0;
	sqlite3_stmt *s = NULL;
	int rc = ss_sq_prep(c, SS_Q_CA_STATE, &s, "tt", a->tenant_id, a->name);

	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1)
		rc = ss_sq_ca_state_col(c, s, 0, &cur);
	else if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	ss_sq_done(s);
	if (rc || cur == want)
		goto out; /* already there: nothing to do */
	/* Revoked is final; the Active CA leaves only when a successor takes over. */
	rc = SPH_ERR_STATE;
	if (cur == SS_CA_REVOKED || cur == SS_CA_ACTIVE)
		goto out;
	rc = 0;
	if (want == SS_CA_ACTIVE) {
		rc = ss_sq_prep(c, SS_Q_CA_ACTIVE_ID, &s, "t", a->tenant_id);
		if (!rc)
			rc = ss_sq_step(c, s);
		if (rc == 1)
			rc = ss_sq_text(c, s, 0, active, sizeof(active), false);
		ss_sq_done(s);
		/* The old one first: the index allows one Active row at a time. */
		if (!rc && active[0])
			rc = ss_sq_ca_move(c, a->tenant_id, active, SS_CA_INACTIVE, a->actor);
	}
	if (!rc)
		rc = ss_sq_ca_move(c, a->tenant_id, a->name, want, a->actor);
out:
	return rc;
}

static int ss_sq_ca_set_state(void *be, const char *tenant_id, const char *ca_id,
                              enum ss_ca_state state, const char *actor)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .name = ca_id, .version = (int)state, .actor = actor};

	return ss_sq_run(be, "ca_set_state", true, ss_sq_ca_set_state_fn, &a);
}

/* ---- image catalogue, OS feeds and deployments ------------------------------------ */

static int ss_sq_signer_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_signer_record *r = out;
	int rc = ss_sq_text(c, s, 0, r->tenant_id, sizeof(r->tenant_id), false);

	r->created = sqlite3_column_int64(s, 1);
	if (!rc)
		rc = ss_sq_blob(c, s, 2, r->root_der, sizeof(r->root_der), &r->root_der_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 3, r->signer_der, sizeof(r->signer_der), &r->signer_der_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 4, r->root_key, sizeof(r->root_key), &r->root_key_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 5, r->signer_key, sizeof(r->signer_key), &r->signer_key_len);
	return rc;
}

static int ss_sq_signer_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_signer_record *r = a->in;
	struct ss_signer_record *cur = a->out;
	int rc = ss_sq_exists(c, SS_Q_TENANT_GET, r->tenant_id);

	if (rc)
		goto out;
	/* One per tenant: an explicit read decides, not the key's violation. */
	rc = ss_sq_get1(c, SS_Q_SIGNER_GET, "t", r->tenant_id, NULL, ss_sq_signer_row, cur);
	if (rc == 0)
		rc = SPH_ERR_DUPLICATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	rc = ss_sq_exec(c, SS_Q_SIGNER_ADD, "tiBBBB", r->tenant_id, r->created, r->root_der,
	                r->root_der_len, r->signer_der, r->signer_der_len, r->root_key,
	                r->root_key_len, r->signer_key, r->signer_key_len);
	if (!rc)
		rc = ss_sq_audit(c, r->tenant_id, a->actor, "image.signer", r->tenant_id, "");
out:
	return rc;
}

static int ss_sq_signer_add(void *be, const struct ss_signer_record *rec, const char *actor)
{
	struct ss_signer_record *cur = calloc(1, sizeof(*cur));
	struct ss_sq_args a = {.in = rec, .out = cur, .actor = actor};
	int rc = cur ? ss_sq_run(be, "signer_add", true, ss_sq_signer_add_fn, &a) : SPH_ERR_NOMEM;

	if (cur)
		OPENSSL_cleanse(cur, sizeof(*cur));
	free(cur);
	return rc;
}

static int ss_sq_signer_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_SIGNER_GET, "t", a->tenant_id, NULL, ss_sq_signer_row, a->out);
}

static int ss_sq_signer_get(void *be, const char *tenant_id, struct ss_signer_record *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_sq_run(be, "signer_get", false, ss_sq_signer_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

/* ---- device capabilities ------------------------------------------------------------ */

static int ss_sq_cap_signer_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_cap_signer_record *r = out;
	int rc = ss_sq_text(c, s, 0, r->tenant_id, sizeof(r->tenant_id), false);

	r->created = sqlite3_column_int64(s, 1);
	if (!rc)
		rc = ss_sq_blob(c, s, 2, r->signer_der, sizeof(r->signer_der), &r->signer_der_len);
	if (!rc)
		rc = ss_sq_blob(c, s, 3, r->signer_key, sizeof(r->signer_key), &r->signer_key_len);
	return rc;
}

static int ss_sq_cap_signer_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_cap_signer_record *r = a->in;
	int rc = ss_sq_exists(c, SS_Q_TENANT_GET, r->tenant_id);

	if (rc)
		goto out;
	/* One per tenant: an explicit read decides, not the key's violation. */
	rc = ss_sq_get1(c, SS_Q_CAP_SIGNER_GET, "t", r->tenant_id, NULL, ss_sq_cap_signer_row,
	                a->out);
	if (rc == 0)
		rc = SPH_ERR_DUPLICATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	rc = ss_sq_exec(c, SS_Q_CAP_SIGNER_ADD, "tiBB", r->tenant_id, r->created, r->signer_der,
	                r->signer_der_len, r->signer_key, r->signer_key_len);
	if (!rc)
		rc = ss_sq_audit(c, r->tenant_id, a->actor, "capability.signer", r->tenant_id, "");
out:
	return rc;
}

static int ss_sq_cap_signer_add(void *be, const struct ss_cap_signer_record *rec, const char *actor)
{
	struct ss_cap_signer_record *cur = calloc(1, sizeof(*cur));
	struct ss_sq_args a = {.in = rec, .out = cur, .actor = actor};
	int rc = cur ? ss_sq_run(be, "cap_signer_add", true, ss_sq_cap_signer_add_fn, &a)
	             : SPH_ERR_NOMEM;

	if (cur)
		OPENSSL_cleanse(cur, sizeof(*cur));
	free(cur);
	return rc;
}

static int ss_sq_cap_signer_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_CAP_SIGNER_GET, "t", a->tenant_id, NULL, ss_sq_cap_signer_row,
	                  a->out);
}

static int ss_sq_cap_signer_get(void *be, const char *tenant_id, struct ss_cap_signer_record *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .out = out};
	int rc = ss_sq_run(be, "cap_signer_get", false, ss_sq_cap_signer_get_fn, &a);

	if (rc)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

static int ss_sq_device_mode_set_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const char *name = ss_device_mode_name((enum ss_device_mode)a->version);
	int rc = ss_sq_exists2(c, a->tenant_id, a->device_id);

	if (rc)
		goto out;
	rc = ss_sq_exec(c, SS_Q_MODE_SET, "ttti", a->device_id, a->tenant_id, name, ss_store_now());
	if (!rc)
		rc = ss_sq_audit(c, a->tenant_id, a->actor, "device.mode", a->device_id, name);
out:
	return rc;
}

static int ss_sq_device_mode_set(void *be, const char *tenant_id, const char *device_id,
                                 enum ss_device_mode mode, const char *actor)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .device_id = device_id,
	                       .version = (int)mode,
	                       .actor = actor};

	return ss_sq_run(be, "device_mode_set", true, ss_sq_device_mode_set_fn, &a);
}

static int ss_sq_mode_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	enum ss_device_mode *m = out;
	char name[16];
	int rc = ss_sq_text(c, s, 0, name, sizeof(name), false);

	if (rc)
		return rc;
	if (strcmp(name, "development") == 0)
		*m = SS_MODE_DEVELOPMENT;
	else if (strcmp(name, "cloud-test") == 0)
		*m = SS_MODE_CLOUD_TEST;
	else
		return ss_sq_corrupt(c, "device_modes");
	return 0;
}

static int ss_sq_device_mode_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	int rc = ss_sq_get1(c, SS_Q_MODE_GET, "tt", a->device_id, a->tenant_id, ss_sq_mode_row,
	                    a->out);

	return rc == SPH_ERR_NOT_FOUND ? 0 : rc; /* no row: production */
}

static int ss_sq_device_mode_get(void *be, const char *tenant_id, const char *device_id,
                                 enum ss_device_mode *mode)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .device_id = device_id, .out = mode};
	int rc = ss_sq_run(be, "device_mode_get", false, ss_sq_device_mode_get_fn, &a);

	if (rc)
		*mode = SS_MODE_PRODUCTION;
	return rc;
}

/* Reads a 32-byte blob column. */
static int ss_sq_digest(struct ss_sq_conn *c, sqlite3_stmt *s, int col, uint8_t out[32])
{
	size_t len = 0;
	int rc = ss_sq_blob(c, s, col, out, 32, &len);

	return rc ? rc : len == 32 ? 0 : ss_sq_corrupt(c, sqlite3_column_name(s, col));
}

static int ss_sq_image_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_image *i = out;
	int64_t type = sqlite3_column_int64(s, 3), svn = sqlite3_column_int64(s, 6);
	int64_t psize = sqlite3_column_int64(s, 7), ksize = sqlite3_column_int64(s, 9);
	int rc = ss_sq_text(c, s, 0, i->id, sizeof(i->id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, i->tenant_id, sizeof(i->tenant_id), true);
	if (!rc)
		rc = ss_sq_text(c, s, 2, i->component_id, sizeof(i->component_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 4, i->name, sizeof(i->name), false);
	if (!rc)
		rc = ss_sq_text(c, s, 5, i->version, sizeof(i->version), false);
	if (!rc)
		rc = ss_sq_digest(c, s, 8, i->payload_sha256);
	if (!rc)
		rc = ss_sq_digest(c, s, 10, i->package_sha256);
	if (!rc && (type < 1 || type > 5 || svn < 0 || svn > 255 || psize < 0 || ksize < 1))
		rc = ss_sq_corrupt(c, "images");
	i->type = (uint32_t)type;
	i->security_version = (uint32_t)svn;
	i->payload_size = (uint64_t)psize;
	i->package_size = (uint64_t)ksize;
	i->created = sqlite3_column_int64(s, 11);
	return rc;
}

static int ss_sq_image_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_image *i = a->in;
	bool os = i->tenant_id[0] == '\0';
	sqlite3_stmt *s = NULL;
	int rc = os ? 0 : ss_sq_exists(c, SS_Q_TENANT_GET, i->tenant_id);

	if (rc)
		goto out;
	/* The same component and version once per owner. */
	if (os)
		rc = ss_sq_prep(c, SS_Q_IMAGE_DUP_OS, &s, "tt", i->component_id, i->version);
	else
		rc = ss_sq_prep(c, SS_Q_IMAGE_DUP, &s, "ttt", i->tenant_id, i->component_id,
		                i->version);
	if (!rc)
		rc = ss_sq_step(c, s);
	ss_sq_done(s);
	if (rc == 1)
		rc = SPH_ERR_DUPLICATE;
	if (rc)
		goto out;
	rc = ss_sq_exec(c, SS_Q_IMAGE_ADD, "tntittiiBiBiB", i->id, i->tenant_id, i->component_id,
	                (int64_t)i->type, i->name, i->version, (int64_t)i->security_version,
	                (int64_t)i->payload_size, i->payload_sha256, (size_t)32,
	                (int64_t)i->package_size, i->package_sha256, (size_t)32, i->created, a->in2,
	                a->cap);
	if (rc)
		goto out;
	{
		char detail[SS_UUID_LEN + 1 + SS_IMAGE_VERSION_MAX + 1];
		snprintf(detail, sizeof(detail), "%s %s", i->component_id, i->version);
		rc = ss_sq_audit(c, i->tenant_id, a->actor, os ? "os_image.add" : "image.add",
		                 i->id, detail);
	}
out:
	return rc;
}

static int ss_sq_image_add(void *be, const struct ss_image *img, const uint8_t *pkg, size_t pkg_len,
                           const char *actor)
{
	struct ss_sq_args a = {.in = img, .in2 = pkg, .cap = pkg_len, .actor = actor};

	return ss_sq_run(be, "image_add", true, ss_sq_image_add_fn, &a);
}

static int ss_sq_image_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	if (a->tenant_id[0])
		return ss_sq_get1(c, SS_Q_IMAGE_GET, "tt", a->name, a->tenant_id, ss_sq_image_row,
		                  a->out);
	return ss_sq_get1(c, SS_Q_IMAGE_GET_OS, "t", a->name, NULL, ss_sq_image_row, a->out);
}

static int ss_sq_image_get(void *be, const char *tenant_id, const char *image_id,
                           struct ss_image *out)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .name = image_id, .out = out};
	int rc = ss_sq_run(be, "image_get", false, ss_sq_image_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_image_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_image *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	if (a->tenant_id[0])
		rc = ss_sq_prep(c, SS_Q_IMAGE_LIST, &s, "tti", a->tenant_id, a->after,
		                (int64_t)a->cap);
	else
		rc = ss_sq_prep(c, SS_Q_IMAGE_LIST_OS, &s, "ti", a->after, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		rc = ss_sq_image_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_image_find_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const char *const *kv = a->in;
	sqlite3_stmt *s = NULL;
	int rc;

	if (a->tenant_id[0])
		rc = ss_sq_prep(c, SS_Q_IMAGE_FIND, &s, "ttt", a->tenant_id, kv[0], kv[1]);
	else
		rc = ss_sq_prep(c, SS_Q_IMAGE_FIND_OS, &s, "tt", kv[0], kv[1]);
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1)
		rc = ss_sq_image_row(c, s, a->out);
	else if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	ss_sq_done(s);
	return rc;
}

static int ss_sq_image_find(void *be, const char *tenant_id, const char *component_id,
                            const char *version, struct ss_image *out)
{
	const char *kv[2] = {component_id, version};
	struct ss_sq_args a = {.tenant_id = tenant_id, .in = kv, .out = out};
	int rc = ss_sq_run(be, "image_find", false, ss_sq_image_find_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_image_list(void *be, const char *tenant_id, const char *after,
                            struct ss_image *out, size_t cap, size_t *n)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .after = after, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "image_list", false, ss_sq_image_list_fn, &a);

	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

static int ss_sq_image_package_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	uint8_t **pkg = a->out;
	size_t *len = a->out2;
	sqlite3_stmt *s = NULL;
	const void *v;
	int n, rc;

	if (a->tenant_id[0])
		rc = ss_sq_prep(c, SS_Q_IMAGE_PKG, &s, "tt", a->name, a->tenant_id);
	else
		rc = ss_sq_prep(c, SS_Q_IMAGE_PKG_OS, &s, "t", a->name);
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 0)
		rc = SPH_ERR_NOT_FOUND;
	if (rc != 1)
		goto out;
	v = sqlite3_column_blob(s, 0);
	n = sqlite3_column_bytes(s, 0);
	if (sqlite3_column_type(s, 0) != SQLITE_BLOB || n <= 0 ||
	    (size_t)n > SS_IMAGE_PACKAGE_MAX) {
		rc = ss_sq_corrupt(c, "package");
		goto out;
	}
	rc = SPH_ERR_NOMEM;
	if (!v)
		goto out;
	free(*pkg); /* a retried attempt */
	*pkg = malloc((size_t)n);
	if (!*pkg)
		goto out;
	memcpy(*pkg, v, (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	ss_sq_done(s);
	return rc;
}

static int ss_sq_image_package(void *be, const char *tenant_id, const char *image_id, uint8_t **pkg,
                               size_t *len)
{
	struct ss_sq_args a = {.tenant_id = tenant_id, .name = image_id, .out = pkg, .out2 = len};
	int rc = ss_sq_run(be, "image_package", false, ss_sq_image_package_fn, &a);

	if (rc) {
		free(*pkg);
		*pkg = NULL;
		*len = 0;
	}
	return rc;
}

/* Runs a one-row, one-integer query (q with one text parameter or none). */
static int ss_sq_int1(struct ss_sq_conn *c, enum ss_sq_q q, const char *p1, int64_t *v)
{
	sqlite3_stmt *s = NULL;
	int rc = p1 ? ss_sq_prep(c, q, &s, "t", p1) : ss_sq_prep(c, q, &s, "");

	*v = 0;
	if (!rc)
		rc = ss_sq_step(c, s);
	if (rc == 1) {
		*v = sqlite3_column_int64(s, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = ss_sq_corrupt(c, "count");
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_release_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_os_release *r = a->out;
	struct ss_image img;
	sqlite3_stmt *s = NULL;
	int64_t seq = 0;
	int rc = ss_sq_get1(c, SS_Q_IMAGE_GET_OS, "t", r->image_id, NULL, ss_sq_image_row, &img);

	if (rc)
		goto out;
	rc = ss_sq_prep(c, SS_Q_RELEASE_DUP, &s, "tt", ss_os_feed_name(r->feed), r->image_id);
	if (!rc)
		rc = ss_sq_step(c, s);
	ss_sq_done(s);
	if (rc == 1)
		rc = SPH_ERR_DUPLICATE;
	if (!rc)
		rc = ss_sq_int1(c, SS_Q_RELEASE_SEQ, NULL, &seq);
	if (rc)
		goto out;
	r->seq = seq + 1;
	rc = ss_sq_exec(c, SS_Q_RELEASE_ADD, "titti", r->id, r->seq, ss_os_feed_name(r->feed),
	                r->image_id, r->published);
	if (!rc)
		rc = ss_sq_audit(c, "", a->actor, "os.publish", r->image_id,
		                 ss_os_feed_name(r->feed));
out:
	return rc;
}

static int ss_sq_os_release_add(void *be, struct ss_os_release *r, const char *actor)
{
	struct ss_sq_args a = {.out = r, .actor = actor};

	return ss_sq_run(be, "os_release_add", true, ss_sq_release_add_fn, &a);
}

static int ss_sq_release_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_os_release *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_RELEASE_LIST, &s, "ti", a->name, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		struct ss_os_release *r = &out[*a->n];
		const unsigned char *feed = sqlite3_column_text(s, 1);
		rc = ss_sq_text(c, s, 0, r->id, sizeof(r->id), false);
		r->feed = feed ? ss_os_feed_from_name((const char *)feed) : SS_FEED_NONE;
		if (!rc && r->feed == SS_FEED_NONE)
			rc = ss_sq_corrupt(c, "feed");
		if (!rc)
			rc = ss_sq_text(c, s, 2, r->image_id, sizeof(r->image_id), false);
		r->published = sqlite3_column_int64(s, 3);
		r->seq = sqlite3_column_int64(s, 4);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_os_release_list(void *be, enum ss_os_feed feed, struct ss_os_release *out,
                                 size_t cap, size_t *n)
{
	struct ss_sq_args a = {.name = ss_os_feed_name(feed), .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "os_release_list", false, ss_sq_release_list_fn, &a);

	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

static int ss_sq_deploy_create_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_deployment *d = a->out;
	struct ss_image imgs[SS_DEPLOY_IMAGES_MAX];
	struct ss_group g;
	int64_t seq = 0;
	int rc =
	        ss_sq_get1(c, SS_Q_GROUP_GET, "tt", d->group_id, d->tenant_id, ss_sq_group_row, &g);

	for (size_t i = 0; !rc && i < d->n_images; i++) {
		/* Only the tenant's own images (never an OS image) ... */
		rc = ss_sq_get1(c, SS_Q_IMAGE_GET, "tt", d->image_ids[i], d->tenant_id,
		                ss_sq_image_row, &imgs[i]);
		/* ... each once, and one per component. */
		for (size_t j = 0; !rc && j < i; j++)
			if (strcmp(imgs[i].id, imgs[j].id) == 0 ||
			    strcmp(imgs[i].component_id, imgs[j].component_id) == 0)
				rc = SPH_ERR_DUPLICATE;
	}
	if (!rc)
		rc = ss_sq_int1(c, SS_Q_DEPLOY_SEQ, d->group_id, &seq);
	if (rc)
		goto out;
	d->seq = seq + 1;
	rc = ss_sq_exec(c, SS_Q_DEPLOY_ADD, "tttii", d->id, d->tenant_id, d->group_id, d->seq,
	                d->created);
	for (size_t i = 0; !rc && i < d->n_images; i++)
		rc = ss_sq_exec(c, SS_Q_DEPLOY_IMAGE_ADD, "tit", d->id, (int64_t)i,
		                d->image_ids[i]);
	if (!rc)
		rc = ss_sq_audit(c, d->tenant_id, a->actor, "deployment.create", d->id,
		                 d->group_id);
out:
	return rc;
}

static int ss_sq_deployment_create(void *be, struct ss_deployment *d, const char *actor)
{
	struct ss_sq_args a = {.out = d, .actor = actor};

	return ss_sq_run(be, "deployment_create", true, ss_sq_deploy_create_fn, &a);
}

static int ss_sq_deploy_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_deployment *out = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	*a->n = 0;
	rc = ss_sq_prep(c, SS_Q_DEPLOY_LIST, &s, "tti", a->tenant_id, a->group_id, (int64_t)a->cap);
	while (!rc && *a->n < a->cap && (rc = ss_sq_step(c, s)) == 1) {
		struct ss_deployment *d = &out[*a->n];
		sqlite3_stmt *q = NULL;
		rc = ss_sq_text(c, s, 0, d->id, sizeof(d->id), false);
		if (!rc)
			rc = ss_sq_text(c, s, 1, d->tenant_id, sizeof(d->tenant_id), false);
		if (!rc)
			rc = ss_sq_text(c, s, 2, d->group_id, sizeof(d->group_id), false);
		d->seq = sqlite3_column_int64(s, 3);
		d->created = sqlite3_column_int64(s, 4);
		if (!rc)
			rc = ss_sq_prep(c, SS_Q_DEPLOY_IMAGES, &q, "t", d->id);
		while (!rc && (rc = ss_sq_step(c, q)) == 1) {
			if (d->n_images >= SS_DEPLOY_IMAGES_MAX) {
				rc = ss_sq_corrupt(c, "deployment_images");
				break;
			}
			rc = ss_sq_text(c, q, 0, d->image_ids[d->n_images], sizeof(d->image_ids[0]),
			                false);
			if (!rc)
				d->n_images++;
		}
		ss_sq_done(q);
		if (!rc && d->n_images == 0)
			rc = ss_sq_corrupt(c, "deployment_images");
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc;
}

static int ss_sq_deployment_list(void *be, const char *tenant_id, const char *group_id,
                                 struct ss_deployment *out, size_t cap, size_t *n)
{
	struct ss_sq_args a = {
	        .tenant_id = tenant_id, .group_id = group_id, .out = out, .cap = cap, .n = n};
	int rc = ss_sq_run(be, "deployment_list", false, ss_sq_deploy_list_fn, &a);

	if (rc) {
		*n = 0;
		if (cap)
			memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

/* ---- device registrations --------------------------------------------------------- */

static int ss_sq_reg_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_registration *g = out;
	size_t len = 0;
	int rc = ss_sq_text(c, s, 0, g->device_id, sizeof(g->device_id), false);

	if (!rc)
		rc = ss_sq_blob(c, s, 1, g->attestation_key, sizeof(g->attestation_key), &len);
	if (!rc && len != SS_ATTEST_KEY_LEN)
		rc = ss_sq_corrupt(c, "attestation_key");
	g->registered = sqlite3_column_int64(s, 2);
	/* registered_by may be "" (the service itself). */
	if (!rc && sqlite3_column_bytes(s, 3) > 0)
		rc = ss_sq_text(c, s, 3, g->registered_by, sizeof(g->registered_by), false);
	return rc;
}

static int ss_sq_reg_add_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_registration *g = a->in;
	struct ss_registration *cur = a->out;
	sqlite3_stmt *s = NULL;
	int rc;

	/* Once per device: an explicit read decides (same key: a duplicate;
	 * another key: a registration never changes). */
	rc = ss_sq_get1(c, SS_Q_REG_GET, "t", g->device_id, NULL, ss_sq_reg_row, cur);
	if (rc == 0)
		rc = memcmp(cur->attestation_key, g->attestation_key, SS_ATTEST_KEY_LEN) == 0
		             ? SPH_ERR_DUPLICATE
		             : SPH_ERR_STATE;
	if (rc != SPH_ERR_NOT_FOUND)
		goto out;
	/* One key, one device. */
	rc = ss_sq_prep(c, SS_Q_REG_KEY, &s, "B", g->attestation_key, (size_t)SS_ATTEST_KEY_LEN);
	if (!rc)
		rc = ss_sq_step(c, s);
	ss_sq_done(s);
	if (rc == 1)
		rc = SPH_ERR_DUPLICATE;
	if (rc)
		goto out;
	rc = ss_sq_exec(c, SS_Q_REG_ADD, "tBit", g->device_id, g->attestation_key,
	                (size_t)SS_ATTEST_KEY_LEN, g->registered, g->registered_by);
	if (!rc)
		rc = ss_sq_audit(c, "", a->actor, "device.register", g->device_id, "");
out:
	return rc;
}

static int ss_sq_registration_add(void *be, const struct ss_registration *reg, const char *actor)
{
	struct ss_registration cur = {0};
	struct ss_sq_args a = {.in = reg, .out = &cur, .actor = actor};

	return ss_sq_run(be, "registration_add", true, ss_sq_reg_add_fn, &a);
}

static int ss_sq_reg_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_REG_GET, "t", a->device_id, NULL, ss_sq_reg_row, a->out);
}

static int ss_sq_registration_get(void *be, const char *device_id, struct ss_registration *out)
{
	struct ss_sq_args a = {.device_id = device_id, .out = out};
	int rc = ss_sq_run(be, "registration_get", false, ss_sq_reg_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- device check-ins and failure reports ------------------------------------------ */

/* A text column that may be "" (0..cap-1 bytes). */
static int ss_sq_text_e(struct ss_sq_conn *c, sqlite3_stmt *s, int col, char *dst, size_t cap)
{
	dst[0] = '\0';
	if (sqlite3_column_type(s, col) != SQLITE_NULL && sqlite3_column_bytes(s, col) == 0)
		return 0;
	return ss_sq_text(c, s, col, dst, cap, false);
}

static int ss_sq_checkin_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	const struct ss_checkin *ci = a->in;
	int rc = ss_sq_exists2(c, ci->tenant_id, ci->device_id);

	if (rc)
		goto out;
	rc = ss_sq_exec(c, SS_Q_CHECKIN_CAS, "ttiiiit", ci->device_id, ci->tenant_id, a->when,
	                ci->nonce_ms, (int64_t)(ci->up_to_date ? 1 : 0), ci->cert_expires,
	                ci->measured);
	if (!rc && sqlite3_changes(c->db) != 1)
		rc = SPH_ERR_ROLLBACK; /* the nonce is not later than the last accepted one */
	for (size_t i = 0; !rc && i < ci->n_failures; i++) {
		const struct ss_failure *f = &ci->failures[i];
		rc = ss_sq_exec(c, SS_Q_FAILURE_ADD, "ttitiit", ci->device_id, ci->tenant_id,
		                a->when, f->component, (int64_t)f->kind, f->code, f->text);
	}
	if (!rc && ci->n_failures)
		rc = ss_sq_exec(c, SS_Q_FAILURE_TRIM, "titi", ci->device_id, a->when - ci->max_age,
		                ci->device_id, (int64_t)ci->keep);
	if (!rc && ci->cert_expires)
		rc = ss_sq_audit(c, ci->tenant_id, "", "certificate.issue", ci->device_id,
		                 ci->cert_serial);
out:
	return rc;
}

static int ss_sq_checkin_record(void *be, const struct ss_checkin *ci, int64_t at)
{
	struct ss_sq_args a = {.in = ci, .when = at};

	return ss_sq_run(be, "checkin_record", true, ss_sq_checkin_fn, &a);
}

static int ss_sq_checkin_row(struct ss_sq_conn *c, sqlite3_stmt *s, void *out)
{
	struct ss_checkin_state *k = out;
	int rc = ss_sq_text(c, s, 0, k->device_id, sizeof(k->device_id), false);

	if (!rc)
		rc = ss_sq_text(c, s, 1, k->tenant_id, sizeof(k->tenant_id), false);
	k->last_checkin = sqlite3_column_int64(s, 2);
	k->nonce_ms = sqlite3_column_int64(s, 3);
	k->up_to_date = sqlite3_column_int64(s, 4) != 0;
	k->cert_expires = sqlite3_column_int64(s, 5);
	if (!rc)
		rc = ss_sq_text_e(c, s, 6, k->measured, sizeof(k->measured));
	return rc;
}

static int ss_sq_checkin_get_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_CHECKIN_GET, "t", a->device_id, NULL, ss_sq_checkin_row, a->out);
}

static int ss_sq_checkin_get(void *be, const char *device_id, struct ss_checkin_state *out)
{
	struct ss_sq_args a = {.device_id = device_id, .out = out};
	int rc = ss_sq_run(be, "checkin_get", false, ss_sq_checkin_get_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_device_find_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	return ss_sq_get1(c, SS_Q_DEVICE_FIND, "t", a->device_id, NULL, ss_sq_device_row_v, a->out);
}

static int ss_sq_device_find(void *be, const char *device_id, struct ss_device *out)
{
	struct ss_sq_args a = {.device_id = device_id, .out = out};
	int rc = ss_sq_run(be, "device_find", false, ss_sq_device_find_fn, &a);

	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int ss_sq_failure_row(struct ss_sq_conn *c, sqlite3_stmt *s, struct ss_failure *f)
{
	int64_t kind;
	int rc;

	f->id = sqlite3_column_int64(s, 0);
	rc = ss_sq_text(c, s, 1, f->device_id, sizeof(f->device_id), false);
	if (!rc)
		rc = ss_sq_text(c, s, 2, f->tenant_id, sizeof(f->tenant_id), false);
	f->at = sqlite3_column_int64(s, 3);
	if (!rc)
		rc = ss_sq_text_e(c, s, 4, f->component, sizeof(f->component));
	kind = sqlite3_column_int64(s, 5);
	if (!rc && !ss_failure_kind_name((enum ss_failure_kind)kind))
		rc = ss_sq_corrupt(c, "kind");
	f->kind = (enum ss_failure_kind)kind;
	f->code = sqlite3_column_int64(s, 6);
	if (!rc)
		rc = ss_sq_text_e(c, s, 7, f->text, sizeof(f->text));
	return rc;
}

static int ss_sq_failure_list_fn(struct ss_sq_conn *c, struct ss_sq_args *a)
{
	struct ss_failure *out = a->out;
	sqlite3_stmt *s = NULL;
	static const enum ss_sq_q qs[] = {
	        [SS_FAILURES_TENANT] = SS_Q_FAILURE_LIST,
	        [SS_FAILURES_DEVICE] = SS_Q_FAILURE_LIST_DEV,
	        [SS_FAILURES_GROUP] = SS_Q_FAILURE_LIST_GROUP,
	        [SS_FAILURES_COMPONENT] = SS_Q_FAILURE_LIST_COMP,
	};
	int rc = a->version == SS_FAILURES_TENANT
	                 ? ss_sq_prep(c, SS_Q_FAILURE_LIST, &s, "tii", a->tenant_id, a->after_id,
	                              (int64_t)a->cap)
	                 : ss_sq_prep(c, qs[a->version], &s, "ttii", a->tenant_id, a->name,
	                              a->after_id, (int64_t)a->cap);

	while (!rc && *a->n < a->cap) {
		rc = ss_sq_step(c, s);
		if (rc != 1)
			break;
		rc = ss_sq_failure_row(c, s, &out[*a->n]);
		if (!rc)
			(*a->n)++;
	}
	ss_sq_done(s);
	return rc < 0 ? rc : 0;
}

static int ss_sq_failure_list(void *be, const char *tenant_id, enum ss_failure_scope scope,
                              const char *key, int64_t before_id, struct ss_failure *out,
                              size_t cap, size_t *n)
{
	struct ss_sq_args a = {.tenant_id = tenant_id,
	                       .version = (int)scope, /* the scope */
	                       .name = key,
	                       .after_id = before_id,
	                       .out = out,
	                       .cap = cap,
	                       .n = n};
	int rc = cap ? ss_sq_run(be, "failure_list", false, ss_sq_failure_list_fn, &a) : 0;

	if (rc) {
		*n = 0;
		memset(out, 0, cap * sizeof(*out));
	}
	return rc;
}

const struct ss_store_ops ss_sqlite_ops = {
        .name = "sqlite",
        .open = ss_sq_open,
        .close = ss_sq_close,
        .schema_version = ss_sq_schema_version,
        .tenant_create = ss_sq_tenant_create,
        .tenant_get = ss_sq_tenant_get,
        .tenant_list_for_user = ss_sq_tenant_list_for_user,
        .user_create = ss_sq_user_create,
        .user_get = ss_sq_user_get,
        .user_by_name = ss_sq_user_by_name,
        .role_set = ss_sq_role_set,
        .role_get = ss_sq_role_get,
        .role_list = ss_sq_role_list,
        .token_add = ss_sq_token_add,
        .token_find = ss_sq_token_find,
        .token_revoke = ss_sq_token_revoke,
        .device_claim = ss_sq_device_claim,
        .device_release = ss_sq_device_release,
        .device_get = ss_sq_device_get,
        .device_list = ss_sq_device_list,
        .audit_add = ss_sq_audit_add,
        .audit_list = ss_sq_audit_list,
        .product_create = ss_sq_product_create,
        .product_get = ss_sq_product_get,
        .product_list = ss_sq_product_list,
        .group_create = ss_sq_group_create,
        .group_update = ss_sq_group_update,
        .group_get = ss_sq_group_get,
        .group_list = ss_sq_group_list,
        .device_set_group = ss_sq_device_set_group,
        .ca_add = ss_sq_ca_add,
        .ca_list = ss_sq_ca_list,
        .ca_get = ss_sq_ca_get,
        .ca_set_state = ss_sq_ca_set_state,
        .ca_active = ss_sq_ca_active,
        .signer_add = ss_sq_signer_add,
        .signer_get = ss_sq_signer_get,
        .cap_signer_add = ss_sq_cap_signer_add,
        .cap_signer_get = ss_sq_cap_signer_get,
        .device_mode_set = ss_sq_device_mode_set,
        .device_mode_get = ss_sq_device_mode_get,
        .image_add = ss_sq_image_add,
        .image_get = ss_sq_image_get,
        .image_list = ss_sq_image_list,
        .image_find = ss_sq_image_find,
        .image_package = ss_sq_image_package,
        .os_release_add = ss_sq_os_release_add,
        .os_release_list = ss_sq_os_release_list,
        .deployment_create = ss_sq_deployment_create,
        .deployment_list = ss_sq_deployment_list,
        .registration_add = ss_sq_registration_add,
        .registration_get = ss_sq_registration_get,
        .checkin_record = ss_sq_checkin_record,
        .checkin_get = ss_sq_checkin_get,
        .device_find = ss_sq_device_find,
        .failure_list = ss_sq_failure_list,
};
