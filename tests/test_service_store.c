/*
 * ss_store contract tests, through the public API only so every backend runs
 * them: $SPHERE_TEST_STORE_URL names the store (default: a fresh SQLite file
 * per test). Names and ids are random, so a shared database works too; the
 * tests that edit the database file directly run only on a fresh SQLite file.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "common/common.h"
#include "service/ss_store.h"
#include "testutil.h"

struct fx {
	char *dir;  /* temporary directory, NULL with $SPHERE_TEST_STORE_URL */
	char *url;  /* the store */
	char *path; /* the SQLite file when the test owns it, else NULL */
	struct ss_store *st;
};

static int fx_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	const char *env = getenv("SPHERE_TEST_STORE_URL");

	assert_non_null(x);
	if (env && env[0]) {
		x->url = strdup(env);
	} else {
		x->dir = tu_mkdtemp();
		x->path = tu_path(x->dir, "store.db");
		assert_true(asprintf(&x->url, "sqlite:%s", x->path) > 0);
	}
	assert_non_null(x->url);
	assert_int_equal(ss_store_open(x->url, &x->st), 0);
	*state = x;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *x = *state;

	ss_store_close(x->st);
	if (x->dir)
		tu_rmtree(x->dir);
	free(x->dir);
	free(x->path);
	free(x->url);
	free(x);
	return 0;
}

static void fx_reopen(struct fx *x)
{
	ss_store_close(x->st);
	x->st = NULL;
	assert_int_equal(ss_store_open(x->url, &x->st), 0);
}

static void fx_hex(size_t bytes, char *out, size_t cap)
{
	uint8_t b[64];

	assert_true(bytes <= sizeof(b));
	assert_int_equal(RAND_bytes(b, (int)bytes), 1);
	assert_int_equal(sph_hex_encode(b, bytes, out, cap), 0);
}

/* "base-<16 hex>", unique per call. */
static void fx_name(const char *base, char *out, size_t cap)
{
	char r[17];

	fx_hex(8, r, sizeof(r));
	assert_true((size_t)snprintf(out, cap, "%s-%s", base, r) < cap);
}

static void fx_device(char out[SS_DEVICE_ID_LEN + 1])
{
	fx_hex(SS_DEVICE_ID_LEN / 2, out, SS_DEVICE_ID_LEN + 1);
}

static struct ss_tenant fx_tenant(struct ss_store *st, const char *base)
{
	struct ss_tenant t;
	char name[SS_NAME_MAX + 1];

	fx_name(base, name, sizeof(name));
	assert_int_equal(ss_store_tenant_create(st, name, "", &t), 0);
	return t;
}

static struct ss_user fx_user(struct ss_store *st, const char *base)
{
	struct ss_user u;
	char name[SS_NAME_MAX + 1];

	fx_name(base, name, sizeof(name));
	assert_int_equal(ss_store_user_create(st, name, false, &u), 0);
	return u;
}

static bool fx_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* The tenant's audit rows (at most 64), oldest first. */
static size_t fx_audit(struct ss_store *st, const char *tenant_id, struct ss_audit out[64])
{
	size_t n = 99;

	assert_int_equal(ss_store_audit_list(st, tenant_id, 0, out, 64, &n), 0);
	return n;
}

static size_t fx_count_action(const struct ss_audit *a, size_t n, const char *action)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += strcmp(a[i].action, action) == 0;
	return k;
}

static void fx_uuid_shape(const char *id)
{
	assert_int_equal(strlen(id), SS_UUID_LEN);
	for (size_t i = 0; i < SS_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(id[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", id[i]));
	}
	assert_int_equal(id[14], '4');           /* version 4 */
	assert_non_null(strchr("89ab", id[19])); /* RFC 4122 variant */
}

/* ---- open, migrations ---------------------------------------------------------- */

static void test_open_args(void **state)
{
	struct ss_store *st = (struct ss_store *)1;
	int v = -1;

	(void)state;
	assert_int_equal(ss_store_open(NULL, &st), SPH_ERR_INVALID_ARG);
	assert_null(st);
	assert_int_equal(ss_store_open("sqlite:/tmp/x.db", NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_open("", &st), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_open("sqlite:", &st), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_open("sqlite::memory:", &st), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_open("nosuch://host/db", &st), SPH_ERR_UNSUPPORTED);
	assert_null(st);
	assert_int_equal(ss_store_open("sqlite:/nonexistent-dir/x/store.db", &st), SPH_ERR_IO);
	assert_null(st);
	ss_store_close(NULL);
	assert_int_equal(ss_store_schema_version(NULL, &v), SPH_ERR_INVALID_ARG);
	assert_int_equal(v, 0);
}

static void test_plain_path_and_version(void **state)
{
	struct fx *x = *state;
	struct ss_store *st = NULL;
	int v = 0, v2 = 0;

	assert_int_equal(ss_store_schema_version(x->st, &v), 0);
	assert_true(v >= 1);
	assert_int_equal(ss_store_schema_version(x->st, NULL), SPH_ERR_INVALID_ARG);
	if (!x->path)
		return;
	/* A plain path is SQLite too, and sees the same database. */
	assert_int_equal(ss_store_open(x->path, &st), 0);
	assert_int_equal(ss_store_schema_version(st, &v2), 0);
	assert_int_equal(v2, v);
	ss_store_close(st);
}

static void test_reopen_keeps_data(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "keep"), got;
	int v = 0, v2 = 0;

	assert_int_equal(ss_store_schema_version(x->st, &v), 0);
	for (int i = 0; i < 3; i++) {
		fx_reopen(x);
		assert_int_equal(ss_store_schema_version(x->st, &v2), 0);
		assert_int_equal(v2, v);
		assert_int_equal(ss_store_tenant_get(x->st, t.id, &got), 0);
		assert_string_equal(got.name, t.name);
	}
	if (!x->path)
		return;
	/* SQLite: one schema_version row per applied step, and WAL on disk. */
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_open_v2(x->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(version) FROM schema_version",
	                                    -1, &s, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), v);
	assert_int_equal(sqlite3_column_int(s, 1), v);
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void test_future_schema_refused(void **state)
{
	struct fx *x = *state;
	struct ss_store *st = (struct ss_store *)1;
	sqlite3 *db = NULL;

	if (!x->path)
		skip();
	ss_store_close(x->st);
	x->st = NULL;
	assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_exec(db, "INSERT INTO schema_version VALUES (9999, 0)", NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(ss_store_open(x->url, &st), SPH_ERR_UNSUPPORTED);
	assert_null(st);
	/* Refused again, not half-migrated. */
	assert_int_equal(ss_store_open(x->url, &st), SPH_ERR_UNSUPPORTED);
}

/* ---- tenants and users ------------------------------------------------------------ */

static void test_tenants(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t, t2, got;
	struct ss_user u = fx_user(x->st, "actor");
	char name64[SS_NAME_MAX + 2];
	int64_t now = time(NULL);

	assert_int_equal(ss_store_tenant_create(x->st, "Contoso", u.id, &t), 0);
	fx_uuid_shape(t.id);
	assert_string_equal(t.name, "Contoso");
	assert_true(t.created >= now - 5 && t.created <= now + 5);
	assert_int_equal(ss_store_tenant_create(x->st, "Contoso", "", &t2), 0); /* names repeat */
	assert_string_not_equal(t.id, t2.id);
	assert_int_equal(ss_store_tenant_get(x->st, t.id, &got), 0);
	assert_memory_equal(&got, &t, sizeof(got));

	memset(name64, 'n', SS_NAME_MAX);
	name64[SS_NAME_MAX] = '\0';
	assert_int_equal(ss_store_tenant_create(x->st, name64, "", &got), 0);
	assert_string_equal(got.name, name64);
	name64[SS_NAME_MAX] = 'n';
	name64[SS_NAME_MAX + 1] = '\0';
	const char *bad_names[] = {NULL, "", name64, "tab\there", "bell\a", "caf\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		memset(&got, 0xa5, sizeof(got));
		assert_int_equal(ss_store_tenant_create(x->st, bad_names[i], "", &got),
		                 SPH_ERR_INVALID_ARG);
		assert_true(fx_zero(&got, sizeof(got)));
	}
	const char *bad_actors[] = {NULL, "x", "ABCDEF01-2345-4678-9abc-def012345678",
	                            "abcdef01-2345-4678-9abc-def01234567g",
	                            "abcdef012-345-4678-9abc-def012345678"};
	for (size_t i = 0; i < sizeof(bad_actors) / sizeof(bad_actors[0]); i++)
		assert_int_equal(ss_store_tenant_create(x->st, "ok", bad_actors[i], &got),
		                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_tenant_create(NULL, "ok", "", &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_tenant_create(x->st, "ok", "", NULL), SPH_ERR_INVALID_ARG);

	/* get: unknown, malformed */
	memset(&got, 0xa5, sizeof(got));
	assert_int_equal(ss_store_tenant_get(x->st, "00000000-0000-4000-8000-000000000000", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	assert_int_equal(ss_store_tenant_get(x->st, "", &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_tenant_get(x->st, NULL, &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_tenant_get(x->st, t.id, NULL), SPH_ERR_INVALID_ARG);

	/* audited as tenant.create by the actor, in the tenant itself */
	struct ss_audit a[64];
	size_t n = fx_audit(x->st, t.id, a);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].action, "tenant.create");
	assert_string_equal(a[0].tenant_id, t.id);
	assert_string_equal(a[0].actor, u.id);
	assert_string_equal(a[0].target, t.id);
	assert_true(a[0].at >= now - 5 && a[0].at <= now + 5);
	n = fx_audit(x->st, t2.id, a);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].actor, "");
}

static void test_users(void **state)
{
	struct fx *x = *state;
	struct ss_user u, op, got;
	char name[SS_NAME_MAX + 1];

	fx_name("alice", name, sizeof(name));
	assert_int_equal(ss_store_user_create(x->st, name, false, &u), 0);
	fx_uuid_shape(u.id);
	assert_string_equal(u.name, name);
	assert_false(u.is_operator);
	memset(&got, 0xa5, sizeof(got));
	assert_int_equal(ss_store_user_create(x->st, name, true, &got), SPH_ERR_DUPLICATE);
	assert_true(fx_zero(&got, sizeof(got)));

	fx_name("operator", name, sizeof(name));
	assert_int_equal(ss_store_user_create(x->st, name, true, &op), 0);
	assert_true(op.is_operator);

	assert_int_equal(ss_store_user_get(x->st, u.id, &got), 0);
	assert_memory_equal(&got, &u, sizeof(got));
	assert_int_equal(ss_store_user_by_name(x->st, op.name, &got), 0);
	assert_memory_equal(&got, &op, sizeof(got));
	assert_true(got.is_operator);

	assert_int_equal(ss_store_user_get(x->st, "00000000-0000-4000-8000-000000000000", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	fx_name("nobody", name, sizeof(name));
	assert_int_equal(ss_store_user_by_name(x->st, name, &got), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_user_by_name(x->st, "", &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_by_name(x->st, NULL, &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_get(x->st, "zz", &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_create(x->st, "", false, &got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_create(x->st, "new\nline", false, &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_create(x->st, "fine", false, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_user_create(NULL, "fine", false, &got), SPH_ERR_INVALID_ARG);
}

/* ---- roles ------------------------------------------------------------------------- */

static void test_roles(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "roles");
	struct ss_user a = fx_user(x->st, "a"), b = fx_user(x->st, "b"), c = fx_user(x->st, "c");
	const char *unknown = "00000000-0000-4000-8000-000000000000";
	struct ss_role_entry e[8];
	struct ss_audit au[64];
	enum ss_role r = SS_ROLE_ADMIN;
	size_t n = 0, n0;

	assert_int_equal(ss_store_role_get(x->st, t.id, a.id, &r), 0);
	assert_int_equal(r, SS_ROLE_NONE);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_ADMIN, ""), 0);
	assert_int_equal(ss_store_role_set(x->st, t.id, c.id, SS_ROLE_READER, a.id), 0);
	assert_int_equal(ss_store_role_set(x->st, t.id, b.id, SS_ROLE_READER, a.id), 0);
	assert_int_equal(ss_store_role_set(x->st, t.id, b.id, SS_ROLE_CONTRIBUTOR, a.id), 0);
	assert_int_equal(ss_store_role_get(x->st, t.id, b.id, &r), 0);
	assert_int_equal(r, SS_ROLE_CONTRIBUTOR);

	/* list: by user name, bounded by cap */
	assert_int_equal(ss_store_role_list(x->st, t.id, e, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(e[0].user_id, a.id);
	assert_string_equal(e[0].user_name, a.name);
	assert_int_equal(e[0].role, SS_ROLE_ADMIN);
	assert_string_equal(e[1].user_id, b.id);
	assert_int_equal(e[1].role, SS_ROLE_CONTRIBUTOR);
	assert_string_equal(e[2].user_id, c.id);
	assert_int_equal(e[2].role, SS_ROLE_READER);
	memset(e, 0xa5, sizeof(e));
	assert_int_equal(ss_store_role_list(x->st, t.id, e, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[2].user_id[0], (char)0xa5); /* beyond cap: untouched */
	assert_int_equal(ss_store_role_list(x->st, t.id, NULL, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_role_list(x->st, t.id, NULL, 1, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_list(x->st, t.id, e, 8, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_list(x->st, unknown, e, 8, &n), 0);
	assert_int_equal(n, 0);

	/* the last Administrator stays */
	n0 = fx_audit(x->st, t.id, au);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_NONE, a.id), SPH_ERR_STATE);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_READER, a.id), SPH_ERR_STATE);
	assert_int_equal(ss_store_role_get(x->st, t.id, a.id, &r), 0);
	assert_int_equal(r, SS_ROLE_ADMIN);
	assert_int_equal(fx_audit(x->st, t.id, au), n0); /* nothing changed, nothing audited */
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_ADMIN, a.id), 0);
	/* with a second one, either may go */
	assert_int_equal(ss_store_role_set(x->st, t.id, b.id, SS_ROLE_ADMIN, a.id), 0);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_NONE, b.id), 0);
	assert_int_equal(ss_store_role_get(x->st, t.id, a.id, &r), 0);
	assert_int_equal(r, SS_ROLE_NONE);
	assert_int_equal(ss_store_role_set(x->st, t.id, b.id, SS_ROLE_READER, b.id), SPH_ERR_STATE);
	/* removing what is not there; unknown tenant or user */
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_NONE, b.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_role_set(x->st, unknown, a.id, SS_ROLE_READER, b.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_role_set(x->st, t.id, unknown, SS_ROLE_READER, b.id),
	                 SPH_ERR_NOT_FOUND);
	/* bad arguments */
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, (enum ss_role)4, b.id),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, (enum ss_role) - 1, b.id),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_set(x->st, t.id, a.id, SS_ROLE_READER, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_set(x->st, "", a.id, SS_ROLE_READER, ""),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_role_get(x->st, t.id, a.id, NULL), SPH_ERR_INVALID_ARG);
	r = SS_ROLE_ADMIN;
	assert_int_equal(ss_store_role_get(x->st, t.id, "nope", &r), SPH_ERR_INVALID_ARG);
	assert_int_equal(r, SS_ROLE_NONE);

	/* audit: role.set with the role's name, target the user */
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "role.set"), 7);
	assert_string_equal(au[1].action, "role.set");
	assert_string_equal(au[1].actor, "");
	assert_string_equal(au[1].target, a.id);
	assert_string_equal(au[1].detail, "Administrator");
	assert_string_equal(au[2].detail, "Reader");
	assert_string_equal(au[2].actor, a.id);
	assert_string_equal(au[4].detail, "Contributor");
	assert_string_equal(au[n - 1].detail, "None");
}

static void test_tenant_list_for_user(void **state)
{
	struct fx *x = *state;
	struct ss_tenant tc = fx_tenant(x->st, "c"), ta = fx_tenant(x->st, "a"),
	                 tb = fx_tenant(x->st, "b"), other = fx_tenant(x->st, "0");
	struct ss_user u = fx_user(x->st, "u"), v = fx_user(x->st, "v");
	struct ss_tenant out[4];
	size_t n = 9;

	(void)other;
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, out, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_role_set(x->st, tc.id, u.id, SS_ROLE_READER, ""), 0);
	assert_int_equal(ss_store_role_set(x->st, ta.id, u.id, SS_ROLE_ADMIN, ""), 0);
	assert_int_equal(ss_store_role_set(x->st, tb.id, u.id, SS_ROLE_CONTRIBUTOR, ""), 0);
	assert_int_equal(ss_store_role_set(x->st, other.id, v.id, SS_ROLE_ADMIN, ""), 0);
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, out, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(&out[0], &ta, sizeof(ta));
	assert_memory_equal(&out[1], &tb, sizeof(tb));
	assert_memory_equal(&out[2], &tc, sizeof(tc));
	assert_true(fx_zero(&out[3], sizeof(out[3])));
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[1].id, tb.id);
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, NULL, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_tenant_list_for_user(x->st, "bad", out, 4, &n),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, NULL, 4, &n),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_tenant_list_for_user(x->st, u.id, out, 4, NULL),
	                 SPH_ERR_INVALID_ARG);
}

/* ---- tokens ------------------------------------------------------------------------ */

static void test_tokens(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "tok");
	struct ss_user u = fx_user(x->st, "u"), v = fx_user(x->st, "v"), gu;
	struct ss_token tk, tk2, g;
	struct ss_audit au[64];
	uint8_t h[32], h2[32];
	size_t n;

	assert_int_equal(RAND_bytes(h, sizeof(h)), 1);
	assert_int_equal(RAND_bytes(h2, sizeof(h2)), 1);
	assert_int_equal(ss_store_token_add(x->st, u.id, h, &tk), 0);
	fx_uuid_shape(tk.id);
	assert_string_equal(tk.user_id, u.id);
	assert_false(tk.revoked);
	assert_int_equal(ss_store_token_add(x->st, u.id, h2, &tk2), 0);
	assert_int_equal(ss_store_token_add(x->st, v.id, h, &g), SPH_ERR_DUPLICATE);
	assert_true(fx_zero(&g, sizeof(g)));
	assert_int_equal(ss_store_token_add(x->st, "00000000-0000-4000-8000-000000000000", h2, &g),
	                 SPH_ERR_NOT_FOUND);

	assert_int_equal(ss_store_token_find(x->st, h, &g, &gu), 0);
	assert_memory_equal(&g, &tk, sizeof(g));
	assert_memory_equal(&gu, &u, sizeof(gu));

	/* only the owner revokes; then it is gone; twice is not found */
	assert_int_equal(ss_store_token_revoke(x->st, v.id, tk.id, t.id, v.id), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_token_revoke(x->st, u.id, tk.id, t.id, u.id), 0);
	memset(&g, 0xa5, sizeof(g));
	memset(&gu, 0xa5, sizeof(gu));
	assert_int_equal(ss_store_token_find(x->st, h, &g, &gu), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&g, sizeof(g)));
	assert_true(fx_zero(&gu, sizeof(gu)));
	assert_int_equal(ss_store_token_revoke(x->st, u.id, tk.id, t.id, u.id), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_token_find(x->st, h2, &g, &gu), 0); /* the other one lives */
	assert_string_equal(g.id, tk2.id);
	assert_int_equal(ss_store_token_revoke(x->st, u.id, tk2.id, "", ""), 0);
	/* a revoked token's hash is still taken */
	assert_int_equal(ss_store_token_add(x->st, u.id, h, &g), SPH_ERR_DUPLICATE);

	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "token.revoke"), 1);
	assert_string_equal(au[n - 1].target, tk.id);
	assert_string_equal(au[n - 1].actor, u.id);

	/* bad arguments */
	assert_int_equal(ss_store_token_add(x->st, u.id, NULL, &g), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_add(x->st, u.id, h, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_add(x->st, "", h, &g), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_find(x->st, NULL, &g, &gu), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_find(x->st, h, NULL, &gu), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_find(x->st, h, &g, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_revoke(x->st, u.id, "x", "", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_revoke(x->st, u.id, tk.id, NULL, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_token_revoke(x->st, u.id, tk.id, "", NULL), SPH_ERR_INVALID_ARG);
}

/* ---- devices ----------------------------------------------------------------------- */

static void test_device_claim(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	struct ss_user u = fx_user(x->st, "u");
	char dev[SS_DEVICE_ID_LEN + 1], bad[SS_DEVICE_ID_LEN + 2];
	struct ss_device d;
	struct ss_audit au[64];
	int64_t now = time(NULL);
	size_t n;

	fx_device(dev);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, u.id), 0);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.id, dev);
	assert_string_equal(d.tenant_id, a.id);
	assert_string_equal(d.released_to, "");
	assert_true(d.claimed >= now - 5 && d.claimed <= now + 5);
	/* once: by the same tenant or another */
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, u.id), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_device_claim(x->st, b.id, dev, ""), SPH_ERR_DUPLICATE);
	/* another tenant's device is indistinguishable from none */
	memset(&d, 0xa5, sizeof(d));
	assert_int_equal(ss_store_device_get(x->st, b.id, dev, &d), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&d, sizeof(d)));
	/* unknown tenant */
	fx_device(bad);
	assert_int_equal(
	        ss_store_device_claim(x->st, "00000000-0000-4000-8000-000000000000", bad, ""),
	        SPH_ERR_NOT_FOUND);

	n = fx_audit(x->st, a.id, au);
	assert_int_equal(fx_count_action(au, n, "device.claim"), 1);
	assert_string_equal(au[n - 1].target, dev);
	assert_string_equal(au[n - 1].actor, u.id);
	n = fx_audit(x->st, b.id, au);
	assert_int_equal(fx_count_action(au, n, "device.claim"), 0);

	/* malformed device ids */
	memcpy(bad, dev, sizeof(dev));
	bad[SS_DEVICE_ID_LEN - 1] = '\0'; /* 127 */
	assert_int_equal(ss_store_device_claim(x->st, a.id, bad, ""), SPH_ERR_INVALID_ARG);
	memcpy(bad, dev, sizeof(dev));
	bad[SS_DEVICE_ID_LEN] = 'a'; /* 129 */
	bad[SS_DEVICE_ID_LEN + 1] = '\0';
	assert_int_equal(ss_store_device_claim(x->st, a.id, bad, ""), SPH_ERR_INVALID_ARG);
	memcpy(bad, dev, sizeof(dev));
	bad[0] = 'A';
	assert_int_equal(ss_store_device_claim(x->st, a.id, bad, ""), SPH_ERR_INVALID_ARG);
	bad[0] = 'g';
	assert_int_equal(ss_store_device_get(x->st, a.id, bad, &d), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_claim(x->st, a.id, NULL, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_claim(x->st, NULL, dev, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, "me"), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, NULL), SPH_ERR_INVALID_ARG);
}

static void test_device_release(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b"),
	                 c = fx_tenant(x->st, "c");
	const char *unknown = "00000000-0000-4000-8000-000000000000";
	char dev[SS_DEVICE_ID_LEN + 1], other[SS_DEVICE_ID_LEN + 1];
	struct ss_device d;
	struct ss_audit au[64];
	size_t n;

	fx_device(dev);
	fx_device(other);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, c.id, other, ""), 0);
	/* refusals */
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, unknown, ""), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_release(x->st, a.id, other, b.id, ""), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_release(x->st, b.id, dev, c.id, ""), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, a.id, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, NULL, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.released_to, "");

	/* released to b: a still holds it; c may not take it; a cannot re-claim */
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, b.id, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.released_to, b.id);
	assert_int_equal(ss_store_device_claim(x->st, c.id, dev, ""), SPH_ERR_PERMISSION);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, ""), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_device_get(x->st, b.id, dev, &d), SPH_ERR_NOT_FOUND);

	/* b claims: it moves, released_to clears, the history stays with a */
	assert_int_equal(ss_store_device_claim(x->st, b.id, dev, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, b.id, dev, &d), 0);
	assert_string_equal(d.tenant_id, b.id);
	assert_string_equal(d.released_to, "");
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_claim(x->st, b.id, dev, ""), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, ""), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, c.id, ""), SPH_ERR_NOT_FOUND);

	n = fx_audit(x->st, a.id, au);
	assert_int_equal(n, 3); /* tenant.create, device.claim, device.release */
	assert_string_equal(au[2].action, "device.release");
	assert_string_equal(au[2].target, dev);
	assert_string_equal(au[2].detail, b.id);
	n = fx_audit(x->st, b.id, au);
	assert_int_equal(n, 2);
	assert_string_equal(au[1].action, "device.claim");
	assert_string_equal(au[1].target, dev);
}

static void test_device_list(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	enum { N = 25 };
	char devs[N][SS_DEVICE_ID_LEN + 1], after[SS_DEVICE_ID_LEN + 1] = "";
	struct ss_device out[10];
	size_t n = 0, total = 0;

	for (int i = 0; i < N; i++) {
		fx_device(devs[i]);
		assert_int_equal(ss_store_device_claim(x->st, i % 5 ? a.id : b.id, devs[i], ""), 0);
	}
	/* pages of 10, by id, only a's */
	do {
		assert_int_equal(ss_store_device_list(x->st, a.id, after, out, 10, &n), 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(out[i].tenant_id, a.id);
			assert_true(strcmp(out[i].id, after) > 0);
			memcpy(after, out[i].id, sizeof(after));
		}
		total += n;
	} while (n == 10);
	assert_int_equal(total, N - N / 5);
	assert_int_equal(ss_store_device_list(x->st, a.id, after, out, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_device_list(x->st, b.id, "", out, 10, &n), 0);
	assert_int_equal(n, N / 5);
	assert_int_equal(ss_store_device_list(x->st, b.id, "", NULL, 0, &n), 0);
	assert_int_equal(n, 0);
	/* bad arguments */
	n = 7;
	assert_int_equal(ss_store_device_list(x->st, a.id, NULL, out, 10, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_device_list(x->st, a.id, "abc", out, 10, &n),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_list(x->st, a.id, "", NULL, 10, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_list(x->st, a.id, "", out, 10, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_list(x->st, "", "", out, 10, &n), SPH_ERR_INVALID_ARG);
}

/* ---- audit -------------------------------------------------------------------------- */

static void test_audit(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "audit");
	struct ss_user u = fx_user(x->st, "u");
	char big[SS_DETAIL_MAX + 2];
	struct ss_audit out[8];
	size_t n = 0;

	assert_int_equal(ss_store_audit_add(x->st, t.id, u.id, "attestation.refused", "dev1", ""),
	                 0);
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "x.y", "dev2", "why not"), 0);
	assert_int_equal(ss_store_audit_add(x->st, "", "", "service.start", "ss", ""), 0);
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, out, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(out[0].action, "tenant.create");
	assert_string_equal(out[1].action, "attestation.refused");
	assert_string_equal(out[1].actor, u.id);
	assert_string_equal(out[1].target, "dev1");
	assert_string_equal(out[1].detail, "");
	assert_string_equal(out[2].detail, "why not");
	assert_true(out[0].id < out[1].id && out[1].id < out[2].id);
	/* after_id, cap */
	int64_t mid = out[1].id;
	assert_int_equal(ss_store_audit_list(x->st, t.id, mid, out, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].target, "dev2");
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[1].id, mid);
	assert_int_equal(ss_store_audit_list(x->st, t.id, INT64_MAX, out, 8, &n), 0);
	assert_int_equal(n, 0);

	/* sizes: the maximum fits, one more does not */
	memset(big, 'd', sizeof(big));
	big[SS_DETAIL_MAX] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", "t", big), 0);
	big[SS_DETAIL_MAX] = 'd';
	big[SS_DETAIL_MAX + 1] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", "t", big), SPH_ERR_INVALID_ARG);
	big[SS_TARGET_MAX] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", big, ""), 0);
	big[SS_TARGET_MAX] = 'd';
	big[SS_TARGET_MAX + 1] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", big, ""), SPH_ERR_INVALID_ARG);
	big[SS_ACTION_MAX] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", big, "t", ""), 0);
	big[SS_ACTION_MAX] = 'd';
	big[SS_ACTION_MAX + 1] = '\0';
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", big, "t", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_list(x->st, t.id, mid, out, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(strlen(out[1].detail), SS_DETAIL_MAX);
	assert_int_equal(strlen(out[2].target), SS_TARGET_MAX);
	assert_int_equal(strlen(out[3].action), SS_ACTION_MAX);

	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "", "t", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", "", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", "t", NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_add(x->st, t.id, "", "a", "t", "line\n"),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_add(x->st, "t", "", "a", "t", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_add(x->st, t.id, "u", "a", "t", ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_list(x->st, t.id, -1, out, 8, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, NULL, 8, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, out, 8, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_audit_list(NULL, t.id, 0, out, 8, &n), SPH_ERR_INVALID_ARG);
}

/* A list never returns more than SS_LIST_MAX rows, whatever cap says. */
static void test_list_max(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "many");
	const size_t cap = SS_LIST_MAX + 10;
	struct ss_audit *out = calloc(cap, sizeof(*out));
	size_t n = 0;

	assert_non_null(out);
	for (size_t i = 0; i < SS_LIST_MAX + 5; i++)
		assert_int_equal(ss_store_audit_add(x->st, t.id, "", "bulk", "t", ""), 0);
	out[SS_LIST_MAX].id = 12345; /* beyond the bound: untouched */
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, out, cap, &n), 0);
	assert_int_equal(n, SS_LIST_MAX);
	assert_int_equal(out[SS_LIST_MAX].id, 12345);
	assert_string_equal(out[0].action, "tenant.create");
	assert_int_equal(ss_store_audit_list(x->st, t.id, out[SS_LIST_MAX - 1].id, out, cap, &n),
	                 0);
	assert_int_equal(n, 6);
	free(out);
}

/* ---- durability ------------------------------------------------------------------------ */

static bool fx_read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = read(fd, p, len);
		if (r <= 0)
			return false;
		p += r;
		len -= (size_t)r;
	}
	return true;
}

/* One acknowledged write, then kill -9: it is there after reopening. */
static void test_kill9_after_write(void **state)
{
	struct fx *x = *state;
	char dev[SS_DEVICE_ID_LEN + 1];
	struct ss_tenant t;
	struct ss_device d;
	int p[2], status = 0;
	pid_t pid;

	fx_device(dev);
	ss_store_close(x->st);
	x->st = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ss_store *st = NULL;
		struct ss_tenant ct;
		close(p[0]);
		if (ss_store_open(x->url, &st) || ss_store_tenant_create(st, "kill9", "", &ct) ||
		    ss_store_device_claim(st, ct.id, dev, ""))
			_exit(2);
		if (write(p[1], &ct, sizeof(ct)) != (ssize_t)sizeof(ct))
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_true(fx_read_all(p[0], &t, sizeof(t)));
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(p[0]);

	assert_int_equal(ss_store_open(x->url, &x->st), 0);
	assert_int_equal(ss_store_device_get(x->st, t.id, dev, &d), 0);
	assert_string_equal(d.tenant_id, t.id);
	struct ss_audit au[64];
	size_t n = fx_audit(x->st, t.id, au);
	assert_int_equal(n, 2);
	assert_string_equal(au[1].action, "device.claim");
}

/* A writer killed mid-stream: every acknowledged claim survives, and each
 * claim that is there has its audit row (one transaction). */
static void test_kill9_mid_stream(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "stream");
	char base[SS_DEVICE_ID_LEN + 1], dev[SS_DEVICE_ID_LEN + 1];
	struct ss_device *list = calloc(SS_LIST_MAX, sizeof(*list));
	struct ss_audit *au = calloc(SS_LIST_MAX, sizeof(*au));
	uint32_t acked = 0, i;
	int p[2], status = 0;
	size_t n = 0, na = 0;
	pid_t pid;

	assert_non_null(list);
	assert_non_null(au);
	fx_device(base);
	ss_store_close(x->st);
	x->st = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ss_store *st = NULL;
		close(p[0]);
		if (ss_store_open(x->url, &st))
			_exit(2);
		for (i = 0; i < 900; i++) {
			snprintf(base + SS_DEVICE_ID_LEN - 8, 9, "%08x", i);
			if (ss_store_device_claim(st, t.id, base, ""))
				_exit(3);
			if (write(p[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
				_exit(4);
		}
		for (;;)
			pause();
	}
	close(p[1]);
	while (acked < 40) {
		assert_true(fx_read_all(p[0], &i, sizeof(i)));
		assert_int_equal(i, acked);
		acked++;
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	while (fx_read_all(p[0], &i, sizeof(i))) /* acks sent before the kill */
		acked++;
	close(p[0]);

	assert_int_equal(ss_store_open(x->url, &x->st), 0);
	memcpy(dev, base, sizeof(dev));
	for (i = 0; i < acked; i++) {
		struct ss_device d;
		snprintf(dev + SS_DEVICE_ID_LEN - 8, 9, "%08x", i);
		assert_int_equal(ss_store_device_get(x->st, t.id, dev, &d), 0);
	}
	assert_int_equal(ss_store_device_list(x->st, t.id, "", list, SS_LIST_MAX, &n), 0);
	assert_true(n >= acked && n <= acked + 1);
	assert_int_equal(ss_store_audit_list(x->st, t.id, 0, au, SS_LIST_MAX, &na), 0);
	assert_int_equal(fx_count_action(au, na, "device.claim"), n);
	free(list);
	free(au);
}

/* ---- concurrency ----------------------------------------------------------------------- */

#define CT_THREADS 8
#define CT_EACH    10

struct ct_arg {
	struct ss_store *st;
	struct ss_tenant tenant;
	char devs[CT_EACH][SS_DEVICE_ID_LEN + 1];
	const char *shared, *shared2, *tenant2;
	pthread_barrier_t *bar;
	int rc_each[CT_EACH];
	int rc_reads;
	int rc_shared, rc_shared2;
};

static void *ct_thread(void *p)
{
	struct ct_arg *a = p;
	struct ss_device d[CT_EACH + 1];
	size_t n;

	for (int i = 0; i < CT_EACH; i++) {
		a->rc_each[i] = ss_store_device_claim(a->st, a->tenant.id, a->devs[i], "");
		int rc = ss_store_device_list(a->st, a->tenant.id, "", d, CT_EACH + 1, &n);
		if (rc || n != (size_t)i + 1)
			a->rc_reads = rc ? rc : -1000;
	}
	pthread_barrier_wait(a->bar);
	/* every thread, each for its own tenant, claims the same device */
	a->rc_shared = ss_store_device_claim(a->st, a->tenant.id, a->shared, "");
	pthread_barrier_wait(a->bar);
	/* and, all for one tenant, another */
	a->rc_shared2 = ss_store_device_claim(a->st, a->tenant2, a->shared2, "");
	return NULL;
}

static void test_concurrent_claims(void **state)
{
	struct fx *x = *state;
	struct ss_store *st2 = NULL;
	struct ct_arg args[CT_THREADS];
	pthread_t th[CT_THREADS];
	pthread_barrier_t bar;
	char shared[SS_DEVICE_ID_LEN + 1], shared2[SS_DEVICE_ID_LEN + 1];
	struct ss_tenant common = fx_tenant(x->st, "common");
	int wins = 0, wins2 = 0, winner = -1;
	struct ss_device d[CT_EACH + 2];
	size_t n;

	/* a second handle on the same database: like a second process */
	assert_int_equal(ss_store_open(x->url, &st2), 0);
	fx_device(shared);
	fx_device(shared2);
	assert_int_equal(pthread_barrier_init(&bar, NULL, CT_THREADS), 0);
	memset(args, 0, sizeof(args));
	for (int t = 0; t < CT_THREADS; t++) {
		args[t].st = t % 2 ? st2 : x->st;
		args[t].tenant = fx_tenant(x->st, "ct");
		for (int i = 0; i < CT_EACH; i++)
			fx_device(args[t].devs[i]);
		args[t].shared = shared;
		args[t].shared2 = shared2;
		args[t].tenant2 = common.id;
		args[t].bar = &bar;
	}
	for (int t = 0; t < CT_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, ct_thread, &args[t]), 0);
	for (int t = 0; t < CT_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	pthread_barrier_destroy(&bar);

	for (int t = 0; t < CT_THREADS; t++) {
		for (int i = 0; i < CT_EACH; i++)
			assert_int_equal(args[t].rc_each[i], 0);
		assert_int_equal(args[t].rc_reads, 0);
		if (args[t].rc_shared == 0) {
			wins++;
			winner = t;
		} else {
			assert_int_equal(args[t].rc_shared, SPH_ERR_DUPLICATE);
		}
		if (args[t].rc_shared2 == 0)
			wins2++;
		else
			assert_int_equal(args[t].rc_shared2, SPH_ERR_DUPLICATE);
	}
	assert_int_equal(wins, 1);
	assert_int_equal(wins2, 1);
	for (int t = 0; t < CT_THREADS; t++) {
		assert_int_equal(
		        ss_store_device_list(x->st, args[t].tenant.id, "", d, CT_EACH + 2, &n), 0);
		assert_int_equal(n, CT_EACH + (t == winner));
		struct ss_audit au[64];
		n = fx_audit(x->st, args[t].tenant.id, au);
		assert_int_equal(fx_count_action(au, n, "device.claim"), CT_EACH + (t == winner));
	}
	assert_int_equal(ss_store_device_get(x->st, args[winner].tenant.id, shared, d), 0);
	assert_int_equal(ss_store_device_get(st2, common.id, shared2, d), 0);
	ss_store_close(st2);
}

struct rt_arg {
	struct ss_store *st;
	const char *tenant, *user, *actor;
	pthread_barrier_t *bar;
	int rc;
};

static void *rt_thread(void *p)
{
	struct rt_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->rc = ss_store_role_set(a->st, a->tenant, a->user, SS_ROLE_READER, a->actor);
	return NULL;
}

/* Two Administrators demote each other at once: exactly one succeeds. */
static void test_concurrent_last_admin(void **state)
{
	struct fx *x = *state;
	struct ss_user u = fx_user(x->st, "u"), v = fx_user(x->st, "v");
	pthread_barrier_t bar;
	pthread_t th[2];

	assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
	for (int round = 0; round < 10; round++) {
		struct ss_tenant t = fx_tenant(x->st, "admins");
		struct rt_arg a[2] = {{x->st, t.id, u.id, v.id, &bar, 1},
		                      {x->st, t.id, v.id, u.id, &bar, 1}};
		enum ss_role ru, rv;
		assert_int_equal(ss_store_role_set(x->st, t.id, u.id, SS_ROLE_ADMIN, ""), 0);
		assert_int_equal(ss_store_role_set(x->st, t.id, v.id, SS_ROLE_ADMIN, ""), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, rt_thread, &a[i]), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true((a[0].rc == 0 && a[1].rc == SPH_ERR_STATE) ||
		            (a[1].rc == 0 && a[0].rc == SPH_ERR_STATE));
		assert_int_equal(ss_store_role_get(x->st, t.id, u.id, &ru), 0);
		assert_int_equal(ss_store_role_get(x->st, t.id, v.id, &rv), 0);
		assert_int_equal((ru == SS_ROLE_ADMIN) + (rv == SS_ROLE_ADMIN), 1);
	}
	pthread_barrier_destroy(&bar);
}

/* ---- products and device groups ------------------------------------------------------ */

static const char *const fx_unknown = "00000000-0000-4000-8000-000000000000";

/* A product of t with a random name; default groups as asked. */
static struct ss_product fx_product(struct ss_store *st, const struct ss_tenant *t, bool defaults)
{
	struct ss_product p;
	char name[SS_NAME_MAX + 1];

	fx_name("prod", name, sizeof(name));
	assert_int_equal(ss_store_product_create(st, t->id, name, "", defaults, "", &p), 0);
	return p;
}

static void test_product_create_defaults(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "p");
	struct ss_user u = fx_user(x->st, "u");
	struct ss_product p, got;
	struct ss_group gs[16];
	struct ss_audit au[64];
	int64_t now = time(NULL);
	size_t n = 99;
	static const struct {
		const char *name;
		enum ss_os_feed feed;
		enum ss_update_policy policy;
	} want[SS_DEFAULT_GROUPS] = {
	        {"Development", SS_FEED_RETAIL, SS_POLICY_NO_3RD_PARTY},
	        {"Field Test", SS_FEED_RETAIL, SS_POLICY_UPDATE_ALL},
	        {"Production", SS_FEED_RETAIL, SS_POLICY_UPDATE_ALL},
	        {"Field Test OS Evaluation", SS_FEED_RETAIL_EVAL, SS_POLICY_UPDATE_ALL},
	        {"Production OS Evaluation", SS_FEED_RETAIL_EVAL, SS_POLICY_UPDATE_ALL},
	};

	assert_int_equal(ss_store_product_create(x->st, t.id, "Coffee Maker", "the 2025 model",
	                                         true, u.id, &p),
	                 0);
	fx_uuid_shape(p.id);
	assert_string_equal(p.tenant_id, t.id);
	assert_string_equal(p.name, "Coffee Maker");
	assert_string_equal(p.description, "the 2025 model");
	assert_true(p.created >= now - 5 && p.created <= now + 5);
	assert_int_equal(ss_store_product_get(x->st, t.id, p.id, &got), 0);
	assert_memory_equal(&got, &p, sizeof(p));

	assert_int_equal(ss_store_group_list(x->st, t.id, p.id, "", gs, 16, &n), 0);
	assert_int_equal(n, SS_DEFAULT_GROUPS);
	for (size_t w = 0; w < SS_DEFAULT_GROUPS; w++) {
		bool found = false;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(gs[i].name, want[w].name) != 0)
				continue;
			found = true;
			assert_int_equal(gs[i].os_feed, want[w].feed);
			assert_int_equal(gs[i].update_policy, want[w].policy);
			assert_string_equal(gs[i].product_id, p.id);
			assert_string_equal(gs[i].tenant_id, t.id);
			assert_true(gs[i].description[0] != '\0');
			fx_uuid_shape(gs[i].id);
		}
		assert_true(found);
	}
	/* audited: product.create by u, one group.create per group, same transaction */
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "product.create"), 1);
	assert_int_equal(fx_count_action(au, n, "group.create"), SS_DEFAULT_GROUPS);
	for (size_t i = 0; i < n; i++)
		if (strcmp(au[i].action, "product.create") == 0) {
			assert_string_equal(au[i].target, p.id);
			assert_string_equal(au[i].actor, u.id);
			assert_string_equal(au[i].detail, "Coffee Maker");
		}

	/* told not to: no groups, and only product.create audited */
	assert_int_equal(ss_store_product_create(x->st, t.id, "Bare", "", false, u.id, &p), 0);
	assert_int_equal(ss_store_group_list(x->st, t.id, p.id, "", gs, 16, &n), 0);
	assert_int_equal(n, 0);
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "product.create"), 2);
	assert_int_equal(fx_count_action(au, n, "group.create"), SS_DEFAULT_GROUPS);
	/* the tenant's groups: the first product's five */
	assert_int_equal(ss_store_group_list(x->st, t.id, "", "", gs, 16, &n), 0);
	assert_int_equal(n, SS_DEFAULT_GROUPS);
}

static void test_product_rules(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	struct ss_product p, q;
	struct ss_group gs[8];
	struct ss_audit au[64];
	char long_name[SS_NAME_MAX + 2], long_desc[SS_DESC_MAX + 2];
	size_t n, before;

	assert_int_equal(ss_store_product_create(x->st, a.id, "Widget", "", true, "", &p), 0);
	before = fx_audit(x->st, a.id, au);
	/* unique per tenant; nothing of a refused create stays (no groups, no audit) */
	assert_int_equal(ss_store_product_create(x->st, a.id, "Widget", "x", true, "", &q),
	                 SPH_ERR_DUPLICATE);
	assert_true(fx_zero(&q, sizeof(q)));
	assert_int_equal(fx_audit(x->st, a.id, au), before);
	assert_int_equal(ss_store_group_list(x->st, a.id, "", "", gs, 8, &n), 0);
	assert_int_equal(n, SS_DEFAULT_GROUPS);
	/* another tenant may use the name */
	assert_int_equal(ss_store_product_create(x->st, b.id, "Widget", "", false, "", &q), 0);
	/* another tenant's product is indistinguishable from none */
	memset(&q, 0xa5, sizeof(q));
	assert_int_equal(ss_store_product_get(x->st, b.id, p.id, &q), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&q, sizeof(q)));
	assert_int_equal(ss_store_product_get(x->st, a.id, fx_unknown, &q), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_product_create(x->st, fx_unknown, "W", "", true, "", &q),
	                 SPH_ERR_NOT_FOUND);

	/* input rules */
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(long_desc, 'd', sizeof(long_desc) - 1);
	long_desc[sizeof(long_desc) - 1] = '\0';
	assert_int_equal(ss_store_product_create(x->st, a.id, long_name, "", true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	long_name[SS_NAME_MAX] = '\0'; /* exactly 64 is fine */
	assert_int_equal(ss_store_product_create(x->st, a.id, long_name, "", false, "", &q), 0);
	assert_int_equal(ss_store_product_create(x->st, a.id, "D", long_desc, true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, a.id, "", "", true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, a.id, "tab\there", "", true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, a.id, "N", NULL, true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, a.id, "N", "", true, "me", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, "", "N", "", true, "", &q),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_create(x->st, a.id, "N", "", true, "", NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_get(x->st, a.id, "nope", &q), SPH_ERR_INVALID_ARG);
}

static void test_product_list(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	enum { N = 13 };
	struct ss_product out[5];
	char after[SS_UUID_LEN + 1] = "";
	size_t n = 0, total = 0;

	for (int i = 0; i < N; i++)
		(void)fx_product(x->st, i % 4 ? &a : &b, false);
	do {
		assert_int_equal(ss_store_product_list(x->st, a.id, after, out, 5, &n), 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(out[i].tenant_id, a.id);
			assert_true(strcmp(out[i].id, after) > 0);
			memcpy(after, out[i].id, sizeof(after));
		}
		total += n;
	} while (n == 5);
	assert_int_equal(total, N - (N + 3) / 4);
	assert_int_equal(ss_store_product_list(x->st, b.id, "", out, 5, &n), 0);
	assert_int_equal(n, (N + 3) / 4);
	assert_int_equal(ss_store_product_list(x->st, fx_unknown, "", out, 5, &n), 0);
	assert_int_equal(n, 0);
	n = 7;
	assert_int_equal(ss_store_product_list(x->st, a.id, "abc", out, 5, &n),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_product_list(x->st, a.id, NULL, out, 5, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_list(x->st, a.id, "", NULL, 5, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_product_list(x->st, a.id, "", out, 5, NULL), SPH_ERR_INVALID_ARG);
}

static void test_group_create_and_update(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	struct ss_product p = fx_product(x->st, &a, false), p2 = fx_product(x->st, &a, false),
	                  pb = fx_product(x->st, &b, false);
	struct ss_group g, g2, got, gs[8];
	struct ss_group_change chg = {0};
	struct ss_audit au[64];
	size_t n;

	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Lab", "bench units",
	                                       SS_FEED_RETAIL_EVAL, SS_POLICY_NO_UPDATES, "", &g),
	                 0);
	fx_uuid_shape(g.id);
	assert_string_equal(g.product_id, p.id);
	assert_string_equal(g.tenant_id, a.id);
	assert_int_equal(g.os_feed, SS_FEED_RETAIL_EVAL);
	assert_int_equal(g.update_policy, SS_POLICY_NO_UPDATES);
	assert_int_equal(ss_store_group_get(x->st, a.id, g.id, &got), 0);
	assert_memory_equal(&got, &g, sizeof(g));
	/* unique per product, not per tenant */
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Lab", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g2),
	                 SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_group_create(x->st, a.id, p2.id, "Lab", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g2),
	                 0);
	/* cross-tenant: b's product through a, a's product through b */
	assert_int_equal(ss_store_group_create(x->st, a.id, pb.id, "X", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_group_create(x->st, b.id, p.id, "X", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_group_get(x->st, b.id, g.id, &got), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	/* bad enums */
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Y", "", SS_FEED_NONE,
	                                       SS_POLICY_UPDATE_ALL, "", &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Y", "", (enum ss_os_feed)7,
	                                       SS_POLICY_UPDATE_ALL, "", &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Y", "", SS_FEED_RETAIL,
	                                       (enum ss_update_policy)4, "", &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &got),
	                 SPH_ERR_INVALID_ARG);

	/* update: feed and policy, then name and description */
	chg.os_feed = SS_FEED_RETAIL;
	chg.update_policy = SS_POLICY_NO_3RD_PARTY;
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got), 0);
	assert_int_equal(got.os_feed, SS_FEED_RETAIL);
	assert_int_equal(got.update_policy, SS_POLICY_NO_3RD_PARTY);
	assert_string_equal(got.name, "Lab");
	assert_string_equal(got.description, "bench units");
	memset(&chg, 0, sizeof(chg));
	chg.name = "Lab 2";
	chg.description = "";
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got), 0);
	assert_int_equal(ss_store_group_get(x->st, a.id, g.id, &got), 0);
	assert_string_equal(got.name, "Lab 2");
	assert_string_equal(got.description, "");
	assert_int_equal(got.os_feed, SS_FEED_RETAIL);
	n = fx_audit(x->st, a.id, au);
	assert_string_equal(au[n - 1].action, "group.update");
	assert_string_equal(au[n - 1].target, g.id);
	assert_string_equal(au[n - 1].detail, "name description");
	assert_string_equal(au[n - 2].detail, "os_feed=Retail update_policy=No3rdPartyAppUpdates");
	/* refusals: taken name, another tenant, nothing to change, bad values */
	assert_int_equal(ss_store_group_create(x->st, a.id, p.id, "Other", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g2),
	                 0);
	chg.name = "Other";
	chg.description = NULL;
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got),
	                 SPH_ERR_DUPLICATE);
	assert_true(fx_zero(&got, sizeof(got)));
	chg.name = "Fine";
	assert_int_equal(ss_store_group_update(x->st, b.id, g.id, &chg, "", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_group_update(x->st, a.id, fx_unknown, &chg, "", &got),
	                 SPH_ERR_NOT_FOUND);
	memset(&chg, 0, sizeof(chg));
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got),
	                 SPH_ERR_INVALID_ARG);
	chg.os_feed = (enum ss_os_feed)3;
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got),
	                 SPH_ERR_INVALID_ARG);
	chg.os_feed = SS_FEED_NONE;
	chg.name = "";
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, &chg, "", &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_group_update(x->st, a.id, g.id, NULL, "", &got),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_group_get(x->st, a.id, g.id, &got), 0);
	assert_string_equal(got.name, "Lab 2");

	/* lists: by product, by tenant; nothing of b's */
	assert_int_equal(ss_store_group_list(x->st, a.id, p.id, "", gs, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ss_store_group_list(x->st, a.id, "", "", gs, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ss_store_group_list(x->st, b.id, p.id, "", gs, 8, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_group_list(x->st, a.id, "x", "", gs, 8, &n), SPH_ERR_INVALID_ARG);
}

static void test_device_set_group(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	struct ss_user u = fx_user(x->st, "u");
	struct ss_product p = fx_product(x->st, &a, true), pb = fx_product(x->st, &b, true);
	struct ss_group ga[8], gb[8];
	char dev[SS_DEVICE_ID_LEN + 1], devb[SS_DEVICE_ID_LEN + 1], want[SS_DETAIL_MAX + 1];
	struct ss_device d, ds[4];
	struct ss_audit au[64];
	size_t n, na, nb;

	assert_int_equal(ss_store_group_list(x->st, a.id, p.id, "", ga, 8, &na), 0);
	assert_int_equal(ss_store_group_list(x->st, b.id, pb.id, "", gb, 8, &nb), 0);
	assert_int_equal(na, SS_DEFAULT_GROUPS);
	assert_int_equal(nb, SS_DEFAULT_GROUPS);
	fx_device(dev);
	fx_device(devb);
	assert_int_equal(ss_store_device_claim(x->st, a.id, dev, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, b.id, devb, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.group_id, "");

	/* into a group, then another, then out: each audited */
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, ga[0].id, u.id), 0);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.group_id, ga[0].id);
	n = fx_audit(x->st, a.id, au);
	assert_string_equal(au[n - 1].action, "device.move");
	assert_string_equal(au[n - 1].target, dev);
	assert_string_equal(au[n - 1].actor, u.id);
	snprintf(want, sizeof(want), "none -> %s", ga[0].id);
	assert_string_equal(au[n - 1].detail, want);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, ga[1].id, u.id), 0);
	n = fx_audit(x->st, a.id, au);
	snprintf(want, sizeof(want), "%s -> %s", ga[0].id, ga[1].id);
	assert_string_equal(au[n - 1].detail, want);
	assert_int_equal(ss_store_device_list(x->st, a.id, "", ds, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ds[0].group_id, ga[1].id);

	/* cross-tenant: b's group for a's device, a's group for b's device, a's
	 * group through b, b's device through a; nothing changes, nothing audited */
	n = fx_audit(x->st, a.id, au);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, gb[0].id, u.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_set_group(x->st, b.id, devb, ga[0].id, u.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_set_group(x->st, b.id, dev, gb[0].id, u.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, devb, ga[0].id, u.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, fx_unknown, u.id),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(fx_audit(x->st, a.id, au), n);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.group_id, ga[1].id);
	assert_int_equal(ss_store_device_get(x->st, b.id, devb, &d), 0);
	assert_string_equal(d.group_id, "");

	/* bad arguments */
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, "g", u.id),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, NULL, u.id),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_set_group(x->st, a.id, "ab", ga[0].id, u.id),
	                 SPH_ERR_INVALID_ARG);

	/* out of any group */
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, "", u.id), 0);
	n = fx_audit(x->st, a.id, au);
	snprintf(want, sizeof(want), "%s -> none", ga[1].id);
	assert_string_equal(au[n - 1].detail, want);
	assert_int_equal(ss_store_device_get(x->st, a.id, dev, &d), 0);
	assert_string_equal(d.group_id, "");

	/* a device released to b and claimed there leaves a's group behind */
	assert_int_equal(ss_store_device_set_group(x->st, a.id, dev, ga[2].id, u.id), 0);
	assert_int_equal(ss_store_device_release(x->st, a.id, dev, b.id, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, b.id, dev, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, b.id, dev, &d), 0);
	assert_string_equal(d.group_id, "");
	assert_int_equal(ss_store_device_set_group(x->st, b.id, dev, gb[3].id, u.id), 0);
	assert_int_equal(ss_store_device_get(x->st, b.id, dev, &d), 0);
	assert_string_equal(d.group_id, gb[3].id);
}

/* A group row that names another tenant's product is refused by the schema
 * itself, not only by the store's checks (SQLite file only). */
static void test_group_schema_cross_tenant(void **state)
{
	struct fx *x = *state;
	struct ss_tenant a = fx_tenant(x->st, "a"), b = fx_tenant(x->st, "b");
	struct ss_product pb = fx_product(x->st, &b, false);
	sqlite3 *db = NULL;
	char sql[512];

	if (!x->path)
		skip();
	assert_int_equal(sqlite3_open(x->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO device_groups VALUES ('%s', '%s', '%s', 'x', '', 'Retail', "
	         "'UpdateAll', 0)",
	         fx_unknown, a.id, pb.id);
	assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO device_groups VALUES ('%s', '%s', '%s', 'x', '', 'Beta', "
	         "'UpdateAll', 0)",
	         fx_unknown, b.id, pb.id);
	assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* ---- tenant CAs ------------------------------------------------------------------- */

/* A CA record for tenant_id with random bytes of plausible sizes (the store
 * does not parse them). */
static struct ss_ca_record *fx_ca(const char *tenant_id, enum ss_ca_state state)
{
	struct ss_ca_record *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	memcpy(r->tenant_id, tenant_id, SS_UUID_LEN + 1);
	r->state = state;
	r->not_after = time(NULL) + 730 * 86400;
	r->root_der_len = 480;
	r->device_der_len = 500;
	r->root_key_len = 166;
	r->device_key_len = SS_CA_KEY_MAX;
	assert_int_equal(RAND_bytes(r->root_der, (int)r->root_der_len), 1);
	assert_int_equal(RAND_bytes(r->device_der, (int)r->device_der_len), 1);
	assert_int_equal(RAND_bytes(r->root_key, (int)r->root_key_len), 1);
	assert_int_equal(RAND_bytes(r->device_key, (int)r->device_key_len), 1);
	return r;
}

static size_t fx_count_active(struct ss_store *st, const char *tenant_id)
{
	struct ss_ca_record *cs = calloc(SS_CA_PER_TENANT, sizeof(*cs));
	size_t n = 0, k = 0;

	assert_non_null(cs);
	assert_int_equal(ss_store_ca_list(st, tenant_id, cs, SS_CA_PER_TENANT, &n), 0);
	for (size_t i = 0; i < n; i++)
		k += cs[i].state == SS_CA_ACTIVE;
	free(cs);
	return k;
}

static void test_ca_args(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ca-args");
	struct ss_ca_record *r = fx_ca(t.id, SS_CA_ACTIVE), *got = calloc(1, sizeof(*got));
	char id[SS_UUID_LEN + 1] = "x";
	size_t n = 7;

	assert_non_null(got);
	assert_int_equal(ss_store_ca_add(NULL, r, "", id), SPH_ERR_INVALID_ARG);
	assert_string_equal(id, "");
	assert_int_equal(ss_store_ca_add(x->st, NULL, "", id), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_add(x->st, r, "bad", id), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_add(x->st, r, "", NULL), SPH_ERR_INVALID_ARG);
	r->state = SS_CA_REVOKED; /* a CA is born Active or Inactive */
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->state = (enum ss_ca_state)9;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->state = SS_CA_ACTIVE;
	r->root_der_len = 0;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->root_der_len = SS_CA_CERT_MAX + 1;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->root_der_len = 10;
	r->device_key_len = SS_CA_KEY_MAX + 1;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->device_key_len = 10;
	r->not_after = 0;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	r->not_after = 1;
	memcpy(r->tenant_id, "00000000-0000-4000-8000-00000000000X", SS_UUID_LEN + 1);
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_INVALID_ARG);
	/* Unknown tenant. */
	memcpy(r->tenant_id, "00000000-0000-4000-8000-000000000000", SS_UUID_LEN + 1);
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_NOT_FOUND);
	assert_string_equal(id, "");
	/* Nothing was stored by any refusal. */
	assert_int_equal(ss_store_ca_list(x->st, t.id, got, 1, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_ca_list(x->st, t.id, NULL, 1, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_list(x->st, "nope", got, 1, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_get(x->st, t.id, "nope", got), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_active(x->st, t.id, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_active(x->st, t.id, got), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(got, sizeof(*got)));
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, t.id, (enum ss_ca_state)0, ""),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, t.id, SS_CA_ACTIVE, ""),
	                 SPH_ERR_NOT_FOUND);
	assert_string_equal(ss_ca_state_name(SS_CA_INACTIVE), "Inactive");
	assert_null(ss_ca_state_name((enum ss_ca_state)0));
	assert_int_equal(ss_ca_state_from_name("Revoked"), SS_CA_REVOKED);
	assert_int_equal(ss_ca_state_from_name("revoked"), 0);
	free(r);
	free(got);
}

static void test_ca_add_get_list(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ca"), other = fx_tenant(x->st, "ca-other");
	struct ss_user u = fx_user(x->st, "ca-admin");
	struct ss_ca_record *a = fx_ca(t.id, SS_CA_ACTIVE), *b = fx_ca(t.id, SS_CA_INACTIVE);
	struct ss_ca_record *got = calloc(4, sizeof(*got));
	struct ss_audit au[64];
	char ida[SS_UUID_LEN + 1], idb[SS_UUID_LEN + 1];
	size_t n = 0, na;

	assert_non_null(got);
	assert_int_equal(ss_store_ca_add(x->st, a, u.id, ida), 0);
	assert_int_equal(strlen(ida), SS_UUID_LEN);
	/* A second Active one is refused; an Inactive successor is not. */
	assert_int_equal(ss_store_ca_add(x->st, b, u.id, idb), 0);
	b->state = SS_CA_ACTIVE;
	{
		char idc[SS_UUID_LEN + 1];
		assert_int_equal(ss_store_ca_add(x->st, b, u.id, idc), SPH_ERR_STATE);
	}
	assert_int_equal(ss_store_ca_get(x->st, t.id, ida, &got[0]), 0);
	assert_string_equal(got[0].id, ida);
	assert_string_equal(got[0].tenant_id, t.id);
	assert_int_equal(got[0].state, SS_CA_ACTIVE);
	assert_true(got[0].created >= time(NULL) - 60 && got[0].created <= time(NULL) + 1);
	assert_int_equal(got[0].not_after, a->not_after);
	assert_int_equal(got[0].root_der_len, a->root_der_len);
	assert_memory_equal(got[0].root_der, a->root_der, a->root_der_len);
	assert_memory_equal(got[0].device_der, a->device_der, a->device_der_len);
	assert_int_equal(got[0].root_key_len, a->root_key_len);
	assert_memory_equal(got[0].root_key, a->root_key, a->root_key_len);
	assert_int_equal(got[0].device_key_len, SS_CA_KEY_MAX);
	assert_memory_equal(got[0].device_key, a->device_key, SS_CA_KEY_MAX);
	/* Another tenant's CA is not found through this tenant. */
	assert_int_equal(ss_store_ca_get(x->st, other.id, ida, &got[1]), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got[1], sizeof(got[1])));
	/* Newest first, even within one second. */
	assert_int_equal(ss_store_ca_list(x->st, t.id, got, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].id, idb);
	assert_int_equal(got[0].state, SS_CA_INACTIVE);
	assert_string_equal(got[1].id, ida);
	assert_int_equal(ss_store_ca_list(x->st, t.id, got, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ss_store_ca_list(x->st, other.id, got, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_ca_active(x->st, t.id, &got[0]), 0);
	assert_string_equal(got[0].id, ida);
	/* Audited once per CA, by the actor. */
	na = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, na, "ca.create"), 2);
	for (size_t i = 0; i < na; i++)
		if (strcmp(au[i].action, "ca.create") == 0)
			assert_string_equal(au[i].actor, u.id);
	/* Survives a reopen. */
	fx_reopen(x);
	assert_int_equal(ss_store_ca_get(x->st, t.id, idb, &got[0]), 0);
	assert_memory_equal(got[0].device_key, b->device_key, b->device_key_len);
	free(a);
	free(b);
	free(got);
}

static void test_ca_one_active(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ca-roll");
	struct ss_ca_record *r = fx_ca(t.id, SS_CA_ACTIVE), *got = calloc(1, sizeof(*got));
	char id1[SS_UUID_LEN + 1], id2[SS_UUID_LEN + 1], id3[SS_UUID_LEN + 1];
	struct ss_audit au[64];
	size_t na, before;

	assert_non_null(got);
	assert_int_equal(ss_store_ca_add(x->st, r, "", id1), 0);
	r->state = SS_CA_INACTIVE;
	assert_int_equal(ss_store_ca_add(x->st, r, "", id2), 0);
	assert_int_equal(ss_store_ca_add(x->st, r, "", id3), 0);
	assert_int_equal(fx_count_active(x->st, t.id), 1);
	/* The Active one cannot step down or be revoked by itself. */
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_INACTIVE, ""),
	                 SPH_ERR_STATE);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_REVOKED, ""), SPH_ERR_STATE);
	/* Setting the state it has is a no-op, not audited. */
	before = fx_count_action(au, fx_audit(x->st, t.id, au), "ca.state");
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_ACTIVE, ""), 0);
	assert_int_equal(fx_count_action(au, fx_audit(x->st, t.id, au), "ca.state"), before);
	/* Activating the successor demotes the old one in the same change. */
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id2, SS_CA_ACTIVE, ""), 0);
	assert_int_equal(fx_count_active(x->st, t.id), 1);
	assert_int_equal(ss_store_ca_active(x->st, t.id, got), 0);
	assert_string_equal(got->id, id2);
	assert_int_equal(ss_store_ca_get(x->st, t.id, id1, got), 0);
	assert_int_equal(got->state, SS_CA_INACTIVE);
	na = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, na, "ca.state"), before + 2);
	/* Revoke the old one: final. */
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_REVOKED, ""), 0);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_REVOKED, ""), 0);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_ACTIVE, ""), SPH_ERR_STATE);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id1, SS_CA_INACTIVE, ""),
	                 SPH_ERR_STATE);
	assert_int_equal(ss_store_ca_get(x->st, t.id, id1, got), 0);
	assert_int_equal(got->state, SS_CA_REVOKED);
	/* The refusals changed nothing: id2 is still the one Active CA. */
	assert_int_equal(ss_store_ca_active(x->st, t.id, got), 0);
	assert_string_equal(got->id, id2);
	/* A predecessor that is only Inactive may come back. */
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id3, SS_CA_ACTIVE, ""), 0);
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id2, SS_CA_ACTIVE, ""), 0);
	assert_int_equal(fx_count_active(x->st, t.id), 1);
	/* Inactive -> Revoked. */
	assert_int_equal(ss_store_ca_set_state(x->st, t.id, id3, SS_CA_REVOKED, ""), 0);
	assert_int_equal(fx_count_active(x->st, t.id), 1);
	free(r);
	free(got);
}

struct ca_thread_arg {
	struct ss_store *st;
	const char *tenant_id, *ca_id;
	pthread_barrier_t *bar;
	int rc;
};

static void *ca_thread(void *p)
{
	struct ca_thread_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->rc = ss_store_ca_set_state(a->st, a->tenant_id, a->ca_id, SS_CA_ACTIVE, "");
	return NULL;
}

static void test_ca_concurrent_activation(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ca-race");
	struct ss_ca_record *r = fx_ca(t.id, SS_CA_ACTIVE);
	char ids[4][SS_UUID_LEN + 1];
	struct ca_thread_arg a[3];
	pthread_t th[3];
	pthread_barrier_t bar;

	assert_int_equal(ss_store_ca_add(x->st, r, "", ids[0]), 0);
	r->state = SS_CA_INACTIVE;
	for (int i = 1; i < 4; i++)
		assert_int_equal(ss_store_ca_add(x->st, r, "", ids[i]), 0);
	assert_int_equal(pthread_barrier_init(&bar, NULL, 3), 0);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct ca_thread_arg){x->st, t.id, ids[i + 1], &bar, -1};
		assert_int_equal(pthread_create(&th[i], NULL, ca_thread, &a[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(a[i].rc, 0);
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(fx_count_active(x->st, t.id), 1);
	/* Two concurrent first CAs: exactly one becomes Active. */
	{
		struct ss_tenant t2 = fx_tenant(x->st, "ca-race2");
		char i1[SS_UUID_LEN + 1], i2[SS_UUID_LEN + 1];
		memcpy(r->tenant_id, t2.id, sizeof(t2.id));
		r->state = SS_CA_ACTIVE;
		assert_int_equal(ss_store_ca_add(x->st, r, "", i1), 0);
		assert_int_equal(ss_store_ca_add(x->st, r, "", i2), SPH_ERR_STATE);
		assert_int_equal(fx_count_active(x->st, t2.id), 1);
	}
	free(r);
}

static void test_ca_limit(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ca-limit");
	struct ss_ca_record *r = fx_ca(t.id, SS_CA_INACTIVE);
	char id[SS_UUID_LEN + 1];

	for (int i = 0; i < SS_CA_PER_TENANT; i++)
		assert_int_equal(ss_store_ca_add(x->st, r, "", id), 0);
	assert_int_equal(ss_store_ca_add(x->st, r, "", id), SPH_ERR_EXHAUSTED);
	free(r);
}

/* ---- image catalogue, OS feeds and deployments ------------------------------------ */

/* An image record of tenant_id ("" : OS) of type with a random component id. */
static struct ss_image fx_image(const char *tenant_id, uint32_t type, const char *version)
{
	struct ss_image i;
	char hex[33];

	memset(&i, 0, sizeof(i));
	snprintf(i.tenant_id, sizeof(i.tenant_id), "%s", tenant_id);
	fx_hex(16, hex, sizeof(hex));
	snprintf(i.component_id, sizeof(i.component_id), "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex,
	         hex + 8, hex + 12, hex + 15, hex + 18);
	i.type = type;
	snprintf(i.name, sizeof(i.name), "comp");
	snprintf(i.version, sizeof(i.version), "%s", version);
	i.security_version = 3;
	i.payload_size = 10;
	i.package_size = 64;
	assert_int_equal(RAND_bytes(i.payload_sha256, 32), 1);
	assert_int_equal(RAND_bytes(i.package_sha256, 32), 1);
	return i;
}

static void test_signer_add_get(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "sig"), t2 = fx_tenant(x->st, "sig2");
	struct ss_signer_record *r = calloc(1, sizeof(*r)), *got = calloc(1, sizeof(*got));
	struct ss_audit a[64];
	size_t n;

	assert_non_null(r);
	assert_non_null(got);
	memcpy(r->tenant_id, t.id, SS_UUID_LEN + 1);
	r->root_der_len = 400;
	r->signer_der_len = 420;
	r->root_key_len = 150;
	r->signer_key_len = SS_CA_KEY_MAX;
	assert_int_equal(RAND_bytes(r->root_der, 400), 1);
	assert_int_equal(RAND_bytes(r->signer_key, SS_CA_KEY_MAX), 1);
	/* Arguments. */
	assert_int_equal(ss_store_signer_add(NULL, r, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_signer_add(x->st, NULL, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_signer_add(x->st, r, "nope"), SPH_ERR_INVALID_ARG);
	r->root_key_len = 0;
	assert_int_equal(ss_store_signer_add(x->st, r, ""), SPH_ERR_INVALID_ARG);
	r->root_key_len = SS_CA_KEY_MAX + 1;
	assert_int_equal(ss_store_signer_add(x->st, r, ""), SPH_ERR_INVALID_ARG);
	r->root_key_len = 150;
	assert_int_equal(ss_store_signer_get(x->st, "bad", got), SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(got, sizeof(*got)));
	/* None yet; then one; a second is a duplicate and changes nothing. */
	assert_int_equal(ss_store_signer_get(x->st, t.id, got), SPH_ERR_NOT_FOUND);
	memcpy(r->tenant_id, fx_unknown, SS_UUID_LEN + 1);
	assert_int_equal(ss_store_signer_add(x->st, r, ""), SPH_ERR_NOT_FOUND);
	memcpy(r->tenant_id, t.id, SS_UUID_LEN + 1);
	assert_int_equal(ss_store_signer_add(x->st, r, ""), 0);
	assert_int_equal(ss_store_signer_get(x->st, t.id, got), 0);
	assert_string_equal(got->tenant_id, t.id);
	assert_true(got->created > 0);
	assert_int_equal(got->root_der_len, 400);
	assert_memory_equal(got->root_der, r->root_der, 400);
	assert_int_equal(got->signer_key_len, SS_CA_KEY_MAX);
	assert_memory_equal(got->signer_key, r->signer_key, SS_CA_KEY_MAX);
	r->root_der[0] ^= 1;
	assert_int_equal(ss_store_signer_add(x->st, r, ""), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_signer_get(x->st, t.id, got), 0);
	assert_int_not_equal(got->root_der[0], r->root_der[0]);
	/* Per tenant. */
	assert_int_equal(ss_store_signer_get(x->st, t2.id, got), SPH_ERR_NOT_FOUND);
	n = fx_audit(x->st, t.id, a);
	assert_int_equal(fx_count_action(a, n, "image.signer"), 1);
	free(r);
	free(got);
}

static void test_cap_signer_add_get(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "cap"), t2 = fx_tenant(x->st, "cap2");
	struct ss_cap_signer_record *r = calloc(1, sizeof(*r)), *got = calloc(1, sizeof(*got));
	struct ss_audit a[64];
	size_t n;

	assert_non_null(r);
	assert_non_null(got);
	memcpy(r->tenant_id, t.id, SS_UUID_LEN + 1);
	r->signer_der_len = 420;
	r->signer_key_len = SS_CA_KEY_MAX;
	assert_int_equal(RAND_bytes(r->signer_der, 420), 1);
	assert_int_equal(RAND_bytes(r->signer_key, SS_CA_KEY_MAX), 1);
	/* Arguments. */
	assert_int_equal(ss_store_cap_signer_add(NULL, r, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_cap_signer_add(x->st, NULL, ""), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_cap_signer_add(x->st, r, "nope"), SPH_ERR_INVALID_ARG);
	r->signer_key_len = 0;
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), SPH_ERR_INVALID_ARG);
	r->signer_key_len = SS_CA_KEY_MAX + 1;
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), SPH_ERR_INVALID_ARG);
	r->signer_key_len = SS_CA_KEY_MAX;
	r->signer_der_len = SS_CA_CERT_MAX + 1;
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), SPH_ERR_INVALID_ARG);
	r->signer_der_len = 420;
	assert_int_equal(ss_store_cap_signer_get(x->st, "bad", got), SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(got, sizeof(*got)));
	/* None yet; then one; a second is a duplicate and changes nothing. */
	assert_int_equal(ss_store_cap_signer_get(x->st, t.id, got), SPH_ERR_NOT_FOUND);
	memcpy(r->tenant_id, fx_unknown, SS_UUID_LEN + 1);
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), SPH_ERR_NOT_FOUND);
	memcpy(r->tenant_id, t.id, SS_UUID_LEN + 1);
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), 0);
	assert_int_equal(ss_store_cap_signer_get(x->st, t.id, got), 0);
	assert_string_equal(got->tenant_id, t.id);
	assert_true(got->created > 0);
	assert_int_equal(got->signer_der_len, 420);
	assert_memory_equal(got->signer_der, r->signer_der, 420);
	assert_int_equal(got->signer_key_len, SS_CA_KEY_MAX);
	assert_memory_equal(got->signer_key, r->signer_key, SS_CA_KEY_MAX);
	r->signer_der[0] ^= 1;
	assert_int_equal(ss_store_cap_signer_add(x->st, r, ""), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_cap_signer_get(x->st, t.id, got), 0);
	assert_int_not_equal(got->signer_der[0], r->signer_der[0]);
	/* Per tenant. */
	assert_int_equal(ss_store_cap_signer_get(x->st, t2.id, got), SPH_ERR_NOT_FOUND);
	n = fx_audit(x->st, t.id, a);
	assert_int_equal(fx_count_action(a, n, "capability.signer"), 1);
	free(r);
	free(got);
}

static void test_device_mode(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "mode"), t2 = fx_tenant(x->st, "mode2");
	char dev[SS_DEVICE_ID_LEN + 1], other[SS_DEVICE_ID_LEN + 1];
	enum ss_device_mode m = SS_MODE_CLOUD_TEST;
	struct ss_audit a[64];
	size_t n;

	fx_device(dev);
	fx_device(other);
	assert_string_equal(ss_device_mode_name(SS_MODE_PRODUCTION), "production");
	assert_string_equal(ss_device_mode_name(SS_MODE_DEVELOPMENT), "development");
	assert_string_equal(ss_device_mode_name(SS_MODE_CLOUD_TEST), "cloud-test");
	assert_null(ss_device_mode_name((enum ss_device_mode)9));
	assert_int_equal(ss_store_device_claim(x->st, t.id, dev, ""), 0);
	/* Arguments. */
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, dev, SS_MODE_PRODUCTION, ""),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, "xyz", SS_MODE_DEVELOPMENT, ""),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, dev, SS_MODE_DEVELOPMENT, "nope"),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_device_mode_get(x->st, "bad", dev, &m), SPH_ERR_INVALID_ARG);
	assert_int_equal(m, SS_MODE_PRODUCTION);
	assert_int_equal(ss_store_device_mode_get(x->st, t.id, dev, NULL), SPH_ERR_INVALID_ARG);
	/* Never set: production. Not held: not found. */
	m = SS_MODE_CLOUD_TEST;
	assert_int_equal(ss_store_device_mode_get(x->st, t.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_PRODUCTION);
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, other, SS_MODE_DEVELOPMENT, ""),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_mode_set(x->st, t2.id, dev, SS_MODE_DEVELOPMENT, ""),
	                 SPH_ERR_NOT_FOUND);
	/* Set, switch. */
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, dev, SS_MODE_DEVELOPMENT, ""), 0);
	assert_int_equal(ss_store_device_mode_get(x->st, t.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_DEVELOPMENT);
	assert_int_equal(ss_store_device_mode_get(x->st, t2.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_PRODUCTION); /* another tenant's view */
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, dev, SS_MODE_CLOUD_TEST, ""), 0);
	assert_int_equal(ss_store_device_mode_get(x->st, t.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_CLOUD_TEST);
	/* Released to t2: t's mode no longer counts for t2. */
	assert_int_equal(ss_store_device_release(x->st, t.id, dev, t2.id, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, t2.id, dev, ""), 0);
	assert_int_equal(ss_store_device_mode_get(x->st, t2.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_PRODUCTION);
	assert_int_equal(ss_store_device_mode_set(x->st, t.id, dev, SS_MODE_DEVELOPMENT, ""),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_mode_set(x->st, t2.id, dev, SS_MODE_DEVELOPMENT, ""), 0);
	assert_int_equal(ss_store_device_mode_get(x->st, t2.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_DEVELOPMENT);
	assert_int_equal(ss_store_device_mode_get(x->st, t.id, dev, &m), 0);
	assert_int_equal(m, SS_MODE_PRODUCTION);
	n = fx_audit(x->st, t.id, a);
	assert_int_equal(fx_count_action(a, n, "device.mode"), 2);
	n = fx_audit(x->st, t2.id, a);
	assert_int_equal(fx_count_action(a, n, "device.mode"), 1);
}

static void test_image_add_get_list(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "img"), t2 = fx_tenant(x->st, "img2");
	struct ss_image in = fx_image(t.id, 4, "1.0"), out, got, list[8];
	uint8_t pkg[64], *p = NULL;
	struct ss_audit a[64];
	size_t len = 0, n = 0;

	assert_int_equal(RAND_bytes(pkg, sizeof(pkg)), 1);
	/* Arguments: types per owner, lengths, texts, the package's size. */
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 63, "", &out), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_image_add(x->st, &in, NULL, 64, "", &out), SPH_ERR_INVALID_ARG);
	in.type = 3;
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), SPH_ERR_INVALID_ARG);
	in.type = 4;
	in.security_version = 256;
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), SPH_ERR_INVALID_ARG);
	in.security_version = 3;
	in.version[0] = '\0';
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), SPH_ERR_INVALID_ARG);
	snprintf(in.version, sizeof(in.version), "1.0");
	snprintf(in.component_id, sizeof(in.component_id), "not-a-uuid");
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(&out, sizeof(out)));
	in = fx_image(t.id, 4, "1.0");
	{
		struct ss_image os = fx_image("", 4, "1"); /* an OS image must be 1..3 */
		assert_int_equal(ss_store_image_add(x->st, &os, pkg, 64, "", &out),
		                 SPH_ERR_INVALID_ARG);
	}
	memcpy(in.tenant_id, fx_unknown, SS_UUID_LEN + 1);
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), SPH_ERR_NOT_FOUND);
	memcpy(in.tenant_id, t.id, SS_UUID_LEN + 1);

	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &out), 0);
	fx_uuid_shape(out.id);
	assert_true(out.created > 0);
	assert_string_equal(out.component_id, in.component_id);
	/* The same component and version: 409; another version is fine; another
	 * tenant may hold the same component and version. */
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &got), SPH_ERR_DUPLICATE);
	snprintf(in.version, sizeof(in.version), "1.1");
	assert_int_equal(ss_store_image_add(x->st, &in, pkg, 64, "", &got), 0);
	{
		struct ss_image other = in;
		memcpy(other.tenant_id, t2.id, SS_UUID_LEN + 1);
		snprintf(other.version, sizeof(other.version), "1.0");
		assert_int_equal(ss_store_image_add(x->st, &other, pkg, 64, "", &list[0]), 0);
	}

	/* Get, per owner. */
	assert_int_equal(ss_store_image_get(x->st, t.id, out.id, &got), 0);
	assert_string_equal(got.id, out.id);
	assert_string_equal(got.tenant_id, t.id);
	assert_int_equal(got.type, 4);
	assert_int_equal(got.security_version, 3);
	assert_int_equal(got.payload_size, 10);
	assert_int_equal(got.package_size, 64);
	assert_memory_equal(got.payload_sha256, out.payload_sha256, 32);
	assert_memory_equal(got.package_sha256, out.package_sha256, 32);
	assert_int_equal(ss_store_image_get(x->st, t2.id, out.id, &got), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	assert_int_equal(ss_store_image_get(x->st, "", out.id, &got), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_image_get(x->st, t.id, "x", &got), SPH_ERR_INVALID_ARG);

	/* The package, per owner. */
	assert_int_equal(ss_store_image_package(x->st, t.id, out.id, &p, &len), 0);
	assert_int_equal(len, 64);
	assert_memory_equal(p, pkg, 64);
	free(p);
	assert_int_equal(ss_store_image_package(x->st, t2.id, out.id, &p, &len), SPH_ERR_NOT_FOUND);
	assert_null(p);
	assert_int_equal(len, 0);
	assert_int_equal(ss_store_image_package(x->st, "", out.id, &p, &len), SPH_ERR_NOT_FOUND);

	/* List: the tenant's two, by id, paged. */
	assert_int_equal(ss_store_image_list(x->st, t.id, "", list, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_true(strcmp(list[0].id, list[1].id) < 0);
	{
		char after[SS_UUID_LEN + 1], last[SS_UUID_LEN + 1];
		memcpy(after, list[0].id, sizeof(after));
		memcpy(last, list[1].id, sizeof(last));
		assert_int_equal(ss_store_image_list(x->st, t.id, after, list, 8, &n), 0);
		assert_int_equal(n, 1);
		assert_string_equal(list[0].id, last);
	}
	assert_int_equal(ss_store_image_list(x->st, t.id, "bad", list, 8, &n), SPH_ERR_INVALID_ARG);
	assert_int_equal(n, 0);

	/* Find by component and version, per owner (a check-in's lookup). */
	assert_int_equal(ss_store_image_find(x->st, t.id, in.component_id, "1.0", &got), 0);
	assert_string_equal(got.id, out.id);
	assert_memory_equal(got.payload_sha256, out.payload_sha256, 32);
	assert_int_equal(ss_store_image_find(x->st, t.id, in.component_id, "1.1", &got), 0);
	assert_string_equal(got.version, "1.1");
	assert_int_equal(ss_store_image_find(x->st, t.id, in.component_id, "1.2", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	assert_int_equal(ss_store_image_find(x->st, "", in.component_id, "1.0", &got),
	                 SPH_ERR_NOT_FOUND); /* not an OS image */
	assert_int_equal(ss_store_image_find(x->st, t2.id, in.component_id, "1.0", &got), 0);
	assert_string_equal(got.tenant_id, t2.id); /* t2's own */
	assert_int_equal(ss_store_image_find(x->st, t.id, "not-a-uuid", "1.0", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_image_find(x->st, t.id, in.component_id, "", &got),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_image_find(x->st, "bad", in.component_id, "1.0", &got),
	                 SPH_ERR_INVALID_ARG);
	n = fx_audit(x->st, t.id, a);
	assert_int_equal(fx_count_action(a, n, "image.add"), 2);
}

static void test_os_images_and_releases(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "osr");
	struct ss_image os1 = fx_image("", 3, "22.1"), os2 = fx_image("", 1, "bl"), app, o1, o2, oa,
	                got;
	struct ss_os_release rel, rel2, list[4];
	uint8_t pkg[64] = {1};
	size_t n = 0;

	assert_int_equal(ss_store_image_add(x->st, &os1, pkg, 64, "", &o1), 0);
	assert_int_equal(ss_store_image_add(x->st, &os1, pkg, 64, "", &got), SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_image_add(x->st, &os2, pkg, 64, "", &o2), 0);
	assert_string_equal(o1.tenant_id, "");
	assert_int_equal(ss_store_image_get(x->st, "", o1.id, &got), 0);
	assert_string_equal(got.tenant_id, "");
	assert_int_equal(got.type, 3);
	assert_int_equal(ss_store_image_get(x->st, t.id, o1.id, &got), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_image_find(x->st, "", os1.component_id, "22.1", &got), 0);
	assert_string_equal(got.id, o1.id);
	assert_int_equal(ss_store_image_find(x->st, t.id, os1.component_id, "22.1", &got),
	                 SPH_ERR_NOT_FOUND); /* OS images are not a tenant's */
	app = fx_image(t.id, 5, "1");
	assert_int_equal(ss_store_image_add(x->st, &app, pkg, 64, "", &oa), 0);

	/* Arguments. */
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_NONE, o1.id, "", &rel),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_os_release_add(x->st, (enum ss_os_feed)9, o1.id, "", &rel),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, "x", "", &rel),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_os_release_list(x->st, SS_FEED_NONE, list, 4, &n),
	                 SPH_ERR_INVALID_ARG);
	/* Only an OS image is published; unknown ids are not found. */
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, oa.id, "", &rel),
	                 SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, fx_unknown, "", &rel),
	                 SPH_ERR_NOT_FOUND);
	/* RetailEval first, then Retail; each feed once. */
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL_EVAL, o1.id, "", &rel), 0);
	fx_uuid_shape(rel.id);
	assert_int_equal(rel.feed, SS_FEED_RETAIL_EVAL);
	assert_string_equal(rel.image_id, o1.id);
	assert_true(rel.published > 0 && rel.seq > 0);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL_EVAL, o1.id, "", &rel2),
	                 SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, o1.id, "", &rel2), 0);
	assert_true(rel2.seq > rel.seq);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, o2.id, "", &rel2), 0);
	/* Newest first. */
	assert_int_equal(ss_store_os_release_list(x->st, SS_FEED_RETAIL, list, 4, &n), 0);
	assert_true(n >= 2);
	assert_string_equal(list[0].image_id, o2.id);
	assert_string_equal(list[1].image_id, o1.id);
	assert_int_equal(list[0].feed, SS_FEED_RETAIL);
	assert_true(list[0].seq > list[1].seq);
	assert_int_equal(ss_store_os_release_list(x->st, SS_FEED_RETAIL_EVAL, list, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].image_id, o1.id);
	/* The OS list holds them; audited service-wide. */
	{
		struct ss_audit a[64];
		size_t na = 0, k = 0;
		int64_t after = 0;
		/* Service-wide rows: walk them all for ours. */
		do {
			assert_int_equal(ss_store_audit_list(x->st, "", after, a, 64, &na), 0);
			for (size_t i = 0; i < na; i++)
				k += (strcmp(a[i].action, "os.publish") == 0 &&
				      strcmp(a[i].target, o1.id) == 0) ||
				     (strcmp(a[i].action, "os_image.add") == 0 &&
				      strcmp(a[i].target, o1.id) == 0);
			if (na)
				after = a[na - 1].id;
		} while (na == 64);
		assert_int_equal(k, 3);
	}
}

static void test_deployments(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "dep"), t2 = fx_tenant(x->st, "dep2");
	struct ss_product p = fx_product(x->st, &t, false), p2 = fx_product(x->st, &t2, false);
	struct ss_group g, g2;
	struct ss_image a1 = fx_image(t.id, 4, "1"), a2, b1 = fx_image(t.id, 5, "1"),
	                f1 = fx_image(t2.id, 4, "1"), os = fx_image("", 3, "1"), ia1, ia2, ib1, if1,
	                ios;
	struct ss_deployment d, d2, list[4];
	const char *ids[SS_DEPLOY_IMAGES_MAX + 1];
	uint8_t pkg[64] = {2};
	struct ss_audit au[64];
	size_t n = 0;

	a2 = a1;
	snprintf(a2.version, sizeof(a2.version), "2");
	assert_int_equal(ss_store_group_create(x->st, t.id, p.id, "g", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g),
	                 0);
	assert_int_equal(ss_store_group_create(x->st, t2.id, p2.id, "g", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g2),
	                 0);
	assert_int_equal(ss_store_image_add(x->st, &a1, pkg, 64, "", &ia1), 0);
	assert_int_equal(ss_store_image_add(x->st, &a2, pkg, 64, "", &ia2), 0);
	assert_int_equal(ss_store_image_add(x->st, &b1, pkg, 64, "", &ib1), 0);
	assert_int_equal(ss_store_image_add(x->st, &f1, pkg, 64, "", &if1), 0);
	assert_int_equal(ss_store_image_add(x->st, &os, pkg, 64, "", &ios), 0);

	/* Arguments: 1..16 ids, UUIDs. */
	ids[0] = ia1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 0, "", &d),
	                 SPH_ERR_INVALID_ARG);
	for (size_t i = 0; i <= SS_DEPLOY_IMAGES_MAX; i++)
		ids[i] = ia1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids,
	                                            SS_DEPLOY_IMAGES_MAX + 1, "", &d),
	                 SPH_ERR_INVALID_ARG);
	ids[0] = "bad";
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 1, "", &d),
	                 SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(&d, sizeof(d)));
	/* Another tenant's group or image, an OS image: not found. */
	ids[0] = ia1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g2.id, ids, 1, "", &d),
	                 SPH_ERR_NOT_FOUND);
	ids[0] = if1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 1, "", &d),
	                 SPH_ERR_NOT_FOUND);
	ids[0] = ios.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 1, "", &d),
	                 SPH_ERR_NOT_FOUND);
	/* Two of one component, or one image twice: duplicate. */
	ids[0] = ia1.id;
	ids[1] = ia2.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 2, "", &d),
	                 SPH_ERR_DUPLICATE);
	ids[1] = ia1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 2, "", &d),
	                 SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_deployment_list(x->st, t.id, g.id, list, 4, &n), 0);
	assert_int_equal(n, 0);

	/* Two deployments: history kept, newest first. */
	ids[1] = ib1.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 2, "", &d), 0);
	fx_uuid_shape(d.id);
	assert_int_equal(d.n_images, 2);
	assert_int_equal(d.seq, 1);
	ids[0] = ia2.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 1, "", &d2), 0);
	assert_int_equal(d2.seq, 2);
	assert_int_equal(ss_store_deployment_list(x->st, t.id, g.id, list, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, d2.id);
	assert_int_equal(list[0].n_images, 1);
	assert_string_equal(list[0].image_ids[0], ia2.id);
	assert_string_equal(list[1].id, d.id);
	assert_int_equal(list[1].n_images, 2);
	assert_string_equal(list[1].image_ids[0], ia1.id);
	assert_string_equal(list[1].image_ids[1], ib1.id);
	assert_string_equal(list[1].group_id, g.id);
	assert_int_equal(ss_store_deployment_list(x->st, t.id, g.id, list, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, d2.id);
	/* Per tenant. */
	assert_int_equal(ss_store_deployment_list(x->st, t2.id, g.id, list, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ss_store_deployment_list(x->st, t.id, "x", list, 4, &n),
	                 SPH_ERR_INVALID_ARG);
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "deployment.create"), 2);
}

/* ---- device registrations ------------------------------------------------------------ */

/* Service-wide audit rows with action and target (every page of them: the
 * database may be shared with other tests). */
static size_t fx_count_service(struct ss_store *st, const char *action, const char *target,
                               struct ss_audit *last)
{
	struct ss_audit *a = calloc(SS_LIST_MAX, sizeof(*a));
	int64_t after = 0;
	size_t n = 0, k = 0;

	assert_non_null(a);
	do {
		assert_int_equal(ss_store_audit_list(st, "", after, a, SS_LIST_MAX, &n), 0);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(a[i].action, action) == 0 && strcmp(a[i].target, target) == 0) {
				k++;
				if (last)
					*last = a[i];
			}
			after = a[i].id;
		}
	} while (n == SS_LIST_MAX);
	free(a);
	return k;
}

static void fx_key(uint8_t key[SS_ATTEST_KEY_LEN])
{
	assert_int_equal(RAND_bytes(key, SS_ATTEST_KEY_LEN), 1);
}

/* The target generations a device read carries: its tenant's moves with
 * each change to the tenant's groups and deployments, in that change's
 * transaction; the service's with each OS release. Another tenant's
 * changes leave a tenant's alone (docs/api.md §4.13, what a check-in
 * caches). */
static void test_target_generations(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "gen"), t2 = fx_tenant(x->st, "gen2");
	struct ss_product p = fx_product(x->st, &t, false);
	struct ss_group g, got;
	struct ss_group_change chg;
	struct ss_image app = fx_image(t.id, 4, "1"), os = fx_image("", 3, "1"), ia, ios;
	struct ss_deployment d;
	struct ss_os_release rel;
	struct ss_device d0, d1, e0, e1;
	char dev[SS_DEVICE_ID_LEN + 1], dev2[SS_DEVICE_ID_LEN + 1];
	const char *ids[1];
	uint8_t pkg[64] = {3};

	fx_device(dev);
	fx_device(dev2);
	assert_int_equal(ss_store_device_claim(x->st, t.id, dev, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, t2.id, dev2, ""), 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d0), 0);
	assert_int_equal(ss_store_device_find(x->st, dev2, &e0), 0);
	/* a group made, then changed */
	assert_int_equal(ss_store_group_create(x->st, t.id, p.id, "g", "", SS_FEED_RETAIL,
	                                       SS_POLICY_UPDATE_ALL, "", &g),
	                 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d1), 0);
	assert_true(d1.target_gen > d0.target_gen);
	d0 = d1;
	memset(&chg, 0, sizeof(chg));
	chg.update_policy = SS_POLICY_NO_UPDATES;
	assert_int_equal(ss_store_group_update(x->st, t.id, g.id, &chg, "", &got), 0);
	assert_int_equal(ss_store_device_get(x->st, t.id, dev, &d1), 0);
	assert_true(d1.target_gen > d0.target_gen);
	assert_int_equal(d1.os_gen, d0.os_gen);
	d0 = d1;
	/* a deployment */
	assert_int_equal(ss_store_image_add(x->st, &app, pkg, 64, "", &ia), 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d1), 0);
	assert_int_equal(d1.target_gen, d0.target_gen); /* an image alone targets nothing */
	ids[0] = ia.id;
	assert_int_equal(ss_store_deployment_create(x->st, t.id, g.id, ids, 1, "", &d), 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d1), 0);
	assert_true(d1.target_gen > d0.target_gen);
	d0 = d1;
	/* an OS release: the service's generation, every tenant's devices */
	assert_int_equal(ss_store_image_add(x->st, &os, pkg, 64, "", &ios), 0);
	assert_int_equal(ss_store_os_release_add(x->st, SS_FEED_RETAIL, ios.id, "", &rel), 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d1), 0);
	assert_true(d1.os_gen > d0.os_gen);
	assert_int_equal(d1.target_gen, d0.target_gen);
	/* t's changes left t2's generation alone */
	assert_int_equal(ss_store_device_find(x->st, dev2, &e1), 0);
	assert_int_equal(e1.target_gen, e0.target_gen);
	assert_true(e1.os_gen > e0.os_gen);
}

static void test_registration_add_get(void **state)
{
	struct fx *x = *state;
	struct ss_user u = fx_user(x->st, "operator");
	struct ss_registration got, out;
	struct ss_audit au;
	char dev[SS_DEVICE_ID_LEN + 1], dev2[SS_DEVICE_ID_LEN + 1], bad[SS_DEVICE_ID_LEN + 1];
	uint8_t key[SS_ATTEST_KEY_LEN], key2[SS_ATTEST_KEY_LEN], idkey[SS_ATTEST_KEY_LEN];
	int64_t now = (int64_t)time(NULL);
	int v = 0;

	assert_int_equal(ss_store_schema_version(x->st, &v), 0);
	assert_true(v >= 5);
	fx_device(dev);
	fx_device(dev2);
	fx_key(key);
	fx_key(key2);

	/* argument checks: nothing is read or written */
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(ss_store_registration_add(NULL, dev, key, u.id, &out),
	                 SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(&out, sizeof(out)));
	assert_int_equal(ss_store_registration_add(x->st, NULL, key, u.id, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_registration_add(x->st, dev, NULL, u.id, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_registration_add(x->st, dev, key, NULL, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_registration_add(x->st, dev, key, "not-a-user", NULL),
	                 SPH_ERR_INVALID_ARG);
	memcpy(bad, dev, sizeof(bad));
	bad[0] = 'A'; /* uppercase */
	assert_int_equal(ss_store_registration_add(x->st, bad, key, u.id, NULL),
	                 SPH_ERR_INVALID_ARG);
	bad[0] = 'a';
	bad[SS_DEVICE_ID_LEN - 1] = '\0'; /* short */
	assert_int_equal(ss_store_registration_add(x->st, bad, key, u.id, NULL),
	                 SPH_ERR_INVALID_ARG);
	/* the identity key (the device id itself) is not an attestation key */
	assert_int_equal(sph_hex_decode(dev, idkey, sizeof(idkey)), 0);
	assert_int_equal(ss_store_registration_add(x->st, dev, idkey, u.id, NULL),
	                 SPH_ERR_INVALID_ARG);
	memset(&got, 0xa5, sizeof(got));
	assert_int_equal(ss_store_registration_get(x->st, bad, &got), SPH_ERR_INVALID_ARG);
	assert_true(fx_zero(&got, sizeof(got)));
	assert_int_equal(ss_store_registration_get(x->st, dev, NULL), SPH_ERR_INVALID_ARG);
	assert_int_equal(ss_store_registration_get(NULL, dev, &got), SPH_ERR_INVALID_ARG);
	memset(&got, 0xa5, sizeof(got));
	assert_int_equal(ss_store_registration_get(x->st, dev, &got), SPH_ERR_NOT_FOUND);
	assert_true(fx_zero(&got, sizeof(got)));
	assert_int_equal(fx_count_service(x->st, "device.register", dev, NULL), 0);

	/* registered once */
	assert_int_equal(ss_store_registration_add(x->st, dev, key, u.id, &out), 0);
	assert_string_equal(out.device_id, dev);
	assert_memory_equal(out.attestation_key, key, SS_ATTEST_KEY_LEN);
	assert_string_equal(out.registered_by, u.id);
	assert_true(out.registered >= now - 5 && out.registered <= now + 5);
	assert_int_equal(ss_store_registration_get(x->st, dev, &got), 0);
	assert_memory_equal(&got, &out, sizeof(got));

	/* again with the same key: a duplicate; with another key: never changes */
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(ss_store_registration_add(x->st, dev, key, u.id, &out), SPH_ERR_DUPLICATE);
	assert_true(fx_zero(&out, sizeof(out)));
	assert_int_equal(ss_store_registration_add(x->st, dev, key2, u.id, NULL), SPH_ERR_STATE);
	assert_int_equal(ss_store_registration_add(x->st, dev, key2, "", NULL), SPH_ERR_STATE);
	/* one key, one device */
	assert_int_equal(ss_store_registration_add(x->st, dev2, key, u.id, NULL),
	                 SPH_ERR_DUPLICATE);
	assert_int_equal(ss_store_registration_get(x->st, dev2, &got), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_registration_get(x->st, dev, &got), 0);
	assert_memory_equal(got.attestation_key, key, SS_ATTEST_KEY_LEN);

	/* by the service itself ("") */
	assert_int_equal(ss_store_registration_add(x->st, dev2, key2, "", &out), 0);
	assert_string_equal(out.registered_by, "");

	/* audited once each, service-wide, by the actor; refusals left no row */
	assert_int_equal(fx_count_service(x->st, "device.register", dev, &au), 1);
	assert_string_equal(au.tenant_id, "");
	assert_string_equal(au.actor, u.id);
	assert_string_equal(au.detail, "");
	assert_int_equal(fx_count_service(x->st, "device.register", dev2, &au), 1);
	assert_string_equal(au.actor, "");

	/* durable */
	fx_reopen(x);
	assert_int_equal(ss_store_registration_get(x->st, dev, &got), 0);
	assert_memory_equal(got.attestation_key, key, SS_ATTEST_KEY_LEN);
	assert_string_equal(got.registered_by, u.id);
	assert_int_equal(ss_store_registration_get(x->st, dev2, &got), 0);
	assert_memory_equal(got.attestation_key, key2, SS_ATTEST_KEY_LEN);
	assert_string_equal(got.registered_by, "");
}

static void test_registration_device_flag(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "reg"), t2 = fx_tenant(x->st, "reg2");
	char a[SS_DEVICE_ID_LEN + 1], b[SS_DEVICE_ID_LEN + 1];
	uint8_t key[SS_ATTEST_KEY_LEN];
	struct ss_device d, list[4];
	size_t n = 0;

	fx_device(a);
	fx_device(b);
	fx_key(key);
	/* unregistered devices are still claimed (registration is not required yet) */
	assert_int_equal(ss_store_device_claim(x->st, t.id, a, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, t.id, b, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, t.id, a, &d), 0);
	assert_false(d.registered);
	/* registering a claimed device shows at once, wherever it is held */
	assert_int_equal(ss_store_registration_add(x->st, a, key, "", NULL), 0);
	assert_int_equal(ss_store_device_get(x->st, t.id, a, &d), 0);
	assert_true(d.registered);
	assert_int_equal(ss_store_device_get(x->st, t.id, b, &d), 0);
	assert_false(d.registered);
	assert_int_equal(ss_store_device_list(x->st, t.id, "", list, 4, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(list[i].registered, strcmp(list[i].id, a) == 0);
	/* and it moves with the device */
	assert_int_equal(ss_store_device_release(x->st, t.id, a, t2.id, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, t2.id, a, ""), 0);
	assert_int_equal(ss_store_device_get(x->st, t2.id, a, &d), 0);
	assert_true(d.registered);
	/* another tenant's device stays invisible, registered or not */
	assert_int_equal(ss_store_device_get(x->st, t.id, a, &d), SPH_ERR_NOT_FOUND);
}

#define RG_THREADS 8

struct rg_arg {
	struct ss_store *st;
	const char *dev;
	const uint8_t *key;
	pthread_barrier_t *bar;
	int rc;
};

static void *rg_thread(void *p)
{
	struct rg_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->rc = ss_store_registration_add(a->st, a->dev, a->key, "", NULL);
	return NULL;
}

/* Registrations of one device with two keys race, from two handles: exactly
 * one wins; the others see a duplicate (its key) or a refusal (the other). */
static void test_registration_concurrent(void **state)
{
	struct fx *x = *state;
	struct ss_store *st2 = NULL;
	struct rg_arg args[RG_THREADS];
	pthread_t th[RG_THREADS];
	pthread_barrier_t bar;
	struct ss_registration got;
	char dev[SS_DEVICE_ID_LEN + 1];
	uint8_t keys[2][SS_ATTEST_KEY_LEN];
	int wins = 0, winner = -1;

	assert_int_equal(ss_store_open(x->url, &st2), 0);
	fx_device(dev);
	fx_key(keys[0]);
	fx_key(keys[1]);
	assert_int_equal(pthread_barrier_init(&bar, NULL, RG_THREADS), 0);
	for (int t = 0; t < RG_THREADS; t++) {
		args[t] = (struct rg_arg){.st = t % 2 ? st2 : x->st,
		                          .dev = dev,
		                          .key = keys[(t / 2) % 2],
		                          .bar = &bar};
		assert_int_equal(pthread_create(&th[t], NULL, rg_thread, &args[t]), 0);
	}
	for (int t = 0; t < RG_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	pthread_barrier_destroy(&bar);
	for (int t = 0; t < RG_THREADS; t++)
		if (args[t].rc == 0) {
			wins++;
			winner = t;
		}
	assert_int_equal(wins, 1);
	for (int t = 0; t < RG_THREADS; t++)
		if (t != winner)
			assert_int_equal(args[t].rc, args[t].key == args[winner].key
			                                     ? SPH_ERR_DUPLICATE
			                                     : SPH_ERR_STATE);
	assert_int_equal(ss_store_registration_get(st2, dev, &got), 0);
	assert_memory_equal(got.attestation_key, args[winner].key, SS_ATTEST_KEY_LEN);
	assert_int_equal(fx_count_service(x->st, "device.register", dev, NULL), 1);
	ss_store_close(st2);
}

/* ---- device check-ins and failure reports ------------------------------------------ */

static struct ss_checkin ck_base(const char *tenant_id, const char *dev, int64_t nonce_ms)
{
	return (struct ss_checkin){.tenant_id = tenant_id,
	                           .device_id = dev,
	                           .nonce_ms = nonce_ms,
	                           .measured = "{\"OS\":\"1.0.0\"}"};
}

static void test_checkin_record_and_replay(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "ck"), t2 = fx_tenant(x->st, "ck2");
	char dev[SS_DEVICE_ID_LEN + 1], other[SS_DEVICE_ID_LEN + 1];
	struct ss_checkin ci;
	struct ss_checkin_state k;
	struct ss_device d;
	struct ss_audit au[64];
	size_t n;

	fx_device(dev);
	fx_device(other);
	assert_int_equal(ss_store_device_find(x->st, dev, &d), SPH_ERR_NOT_FOUND);
	assert_int_equal(ss_store_device_claim(x->st, t.id, dev, ""), 0);
	assert_int_equal(ss_store_device_find(x->st, dev, &d), 0);
	assert_string_equal(d.tenant_id, t.id);
	assert_int_equal(ss_store_device_checkin_get(x->st, dev, &k), SPH_ERR_NOT_FOUND);
	/* arguments */
	ci = ck_base(t.id, dev, 0);
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_INVALID_ARG);
	ci = ck_base(t.id, dev, 1000);
	ci.cert_expires = 5; /* a certificate without its serial */
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_INVALID_ARG);
	ci = ck_base(t.id, dev, 1000);
	ci.measured = "bad\n";
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_INVALID_ARG);
	/* a device the tenant does not hold */
	ci = ck_base(t.id, other, 1000);
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_NOT_FOUND);
	ci = ck_base(t2.id, dev, 1000);
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_NOT_FOUND);
	/* the first check-in, with a certificate */
	ci = ck_base(t.id, dev, 1000);
	ci.up_to_date = true;
	ci.cert_expires = 2000000000;
	ci.cert_serial = "0a0b";
	assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
	assert_int_equal(ss_store_device_checkin_get(x->st, dev, &k), 0);
	assert_string_equal(k.device_id, dev);
	assert_string_equal(k.tenant_id, t.id);
	assert_int_equal(k.nonce_ms, 1000);
	assert_true(k.up_to_date);
	assert_int_equal(k.cert_expires, 2000000000);
	assert_string_equal(k.measured, "{\"OS\":\"1.0.0\"}");
	assert_true(k.last_checkin > 0);
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "certificate.issue"), 1);
	/* the same nonce time again, and an older one: refused, nothing changes */
	ci = ck_base(t.id, dev, 1000);
	ci.measured = "";
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_ROLLBACK);
	ci.nonce_ms = 999;
	ci.cert_expires = 2100000000;
	ci.cert_serial = "0c";
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_ROLLBACK);
	assert_int_equal(ss_store_device_checkin_get(x->st, dev, &k), 0);
	assert_true(k.up_to_date);
	assert_int_equal(k.cert_expires, 2000000000);
	assert_string_equal(k.measured, "{\"OS\":\"1.0.0\"}");
	n = fx_audit(x->st, t.id, au);
	assert_int_equal(fx_count_action(au, n, "certificate.issue"), 1);
	/* a later one without a certificate keeps the last expiry */
	ci = ck_base(t.id, dev, 1001);
	ci.measured = "";
	assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
	assert_int_equal(ss_store_device_checkin_get(x->st, dev, &k), 0);
	assert_false(k.up_to_date);
	assert_int_equal(k.cert_expires, 2000000000);
	assert_string_equal(k.measured, "");
	assert_int_equal(k.nonce_ms, 1001);
}

static void test_failures_cap(void **state)
{
	struct fx *x = *state;
	struct ss_tenant t = fx_tenant(x->st, "fl"), t2 = fx_tenant(x->st, "fl2");
	char dev[SS_DEVICE_ID_LEN + 1], dev2[SS_DEVICE_ID_LEN + 1];
	struct ss_failure f[3], *got = calloc(64, sizeof(*got));
	struct ss_checkin ci;
	size_t n = 0;

	assert_non_null(got);
	fx_device(dev);
	fx_device(dev2);
	assert_int_equal(ss_store_device_claim(x->st, t.id, dev, ""), 0);
	assert_int_equal(ss_store_device_claim(x->st, t.id, dev2, ""), 0);
	memset(f, 0, sizeof(f));
	for (int i = 0; i < 3; i++) {
		f[i].kind = (enum ss_failure_kind)(SS_FAIL_CRASH + i);
		f[i].code = 10 + i;
		snprintf(f[i].component, sizeof(f[i].component), "comp-%d", i);
		snprintf(f[i].text, sizeof(f[i].text), "failure %d", i);
	}
	/* a bad kind refuses the whole check-in */
	ci = ck_base(t.id, dev, 10);
	ci.failures = f;
	ci.n_failures = 3;
	f[1].kind = SS_FAIL_NONE;
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_INVALID_ARG);
	f[1].kind = SS_FAIL_EXIT;
	/* keep 5: four check-ins of 3 reports leave the newest 5 */
	for (int i = 0; i < 4; i++) {
		ci = ck_base(t.id, dev, 100 + i);
		ci.failures = f;
		ci.n_failures = 3;
		ci.keep = 5;
		assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
	}
	/* a replayed check-in appends nothing */
	ci = ck_base(t.id, dev, 103);
	ci.failures = f;
	ci.n_failures = 3;
	assert_int_equal(ss_store_checkin_record(x->st, &ci), SPH_ERR_ROLLBACK);
	ci = ck_base(t.id, dev2, 5);
	ci.failures = f;
	ci.n_failures = 1;
	assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
	assert_int_equal(
	        ss_store_failure_list(x->st, t.id, SS_FAILURES_DEVICE, dev, 0, got, 64, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(got[i].device_id, dev);
		assert_string_equal(got[i].tenant_id, t.id);
		if (i)
			assert_true(got[i].id < got[i - 1].id);
	}
	assert_int_equal(got[0].kind, SS_FAIL_SIGNAL); /* the newest */
	assert_int_equal(got[0].code, 12);
	assert_string_equal(got[0].text, "failure 2");
	assert_string_equal(got[0].component, "comp-2");
	/* paging */
	assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_DEVICE, dev, got[1].id,
	                                       got + 10, 10, &n),
	                 0);
	assert_int_equal(n, 3);
	/* the tenant's whole list, and another tenant sees none */
	assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_TENANT, "", 0, got, 64, &n),
	                 0);
	assert_int_equal(n, 6);
	assert_int_equal(
	        ss_store_failure_list(x->st, t2.id, SS_FAILURES_TENANT, "", 0, got, 64, &n), 0);
	assert_int_equal(n, 0);
	/* per component: every report naming it (here one of dev2's) */
	{
		static const char cid[] = "11111111-2222-4333-8444-555555555555";
		struct ss_failure g = f[0];
		snprintf(g.component, sizeof(g.component), "%s", cid);
		ci = ck_base(t.id, dev2, 6);
		ci.failures = &g;
		ci.n_failures = 1;
		assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
		assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_COMPONENT, cid, 0,
		                                       got, 64, &n),
		                 0);
		assert_int_equal(n, 1);
		assert_string_equal(got[0].device_id, dev2);
		assert_string_equal(got[0].component, cid);
		assert_int_equal(ss_store_failure_list(x->st, t2.id, SS_FAILURES_COMPONENT, cid, 0,
		                                       got, 64, &n),
		                 0);
		assert_int_equal(n, 0);
		assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_COMPONENT, "comp-1",
		                                       0, got, 64, &n),
		                 SPH_ERR_INVALID_ARG);
	}
	/* per device group: the reports of the devices now in it */
	{
		struct ss_product p = fx_product(x->st, &t, true);
		struct ss_group gs[8];
		size_t ng = 0;
		assert_int_equal(ss_store_group_list(x->st, t.id, p.id, "", gs, 8, &ng), 0);
		assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_GROUP, gs[0].id, 0,
		                                       got, 64, &n),
		                 0);
		assert_int_equal(n, 0);
		assert_int_equal(ss_store_device_set_group(x->st, t.id, dev2, gs[0].id, ""), 0);
		assert_int_equal(ss_store_failure_list(x->st, t.id, SS_FAILURES_GROUP, gs[0].id, 0,
		                                       got, 64, &n),
		                 0);
		assert_int_equal(n, 2);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(got[i].device_id, dev2);
		assert_int_equal(ss_store_failure_list(x->st, t2.id, SS_FAILURES_GROUP, gs[0].id, 0,
		                                       got, 64, &n),
		                 0);
		assert_int_equal(n, 0); /* another tenant's group: nothing */
		assert_int_equal(
		        ss_store_failure_list(x->st, t.id, SS_FAILURES_GROUP, "x", 0, got, 64, &n),
		        SPH_ERR_INVALID_ARG);
	}
	/* age: a max_age in the past drops everything older than now - max_age */
	ci = ck_base(t.id, dev, 200);
	ci.failures = f;
	ci.n_failures = 1;
	ci.max_age = 1;
	sleep(2);
	assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
	assert_int_equal(
	        ss_store_failure_list(x->st, t.id, SS_FAILURES_DEVICE, dev, 0, got, 64, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
	        ss_store_failure_list(x->st, t.id, SS_FAILURES_DEVICE, dev2, 0, got, 64, &n), 0);
	assert_int_equal(n, 2); /* another device's are its own */
	free(got);
}

#define CK_THREADS 2

struct ck_arg {
	struct ss_store *st;
	const char *tenant, *dev;
	pthread_barrier_t *bar;
	int rc;
};

static void *ck_thread(void *p)
{
	struct ck_arg *a = p;
	struct ss_checkin ci = ck_base(a->tenant, a->dev, 5000);

	ci.cert_expires = 2000000000;
	ci.cert_serial = "01";
	pthread_barrier_wait(a->bar);
	a->rc = ss_store_checkin_record(a->st, &ci);
	return NULL;
}

/* Two check-ins with the same nonce time race from two handles: exactly one
 * wins, the other is a replay; one certificate.issue row. Rounds cover both
 * the first check-in (an insert) and a later one (an update). */
static void test_checkin_replay_concurrent(void **state)
{
	struct fx *x = *state;
	struct ss_store *st2 = NULL;
	struct ss_tenant t = fx_tenant(x->st, "ckc");
	struct ss_audit au[64];

	assert_int_equal(ss_store_open(x->url, &st2), 0);
	for (int round = 0; round < 6; round++) {
		char dev[SS_DEVICE_ID_LEN + 1];
		struct ck_arg args[CK_THREADS];
		pthread_t th[CK_THREADS];
		pthread_barrier_t bar;
		int wins = 0;

		fx_device(dev);
		assert_int_equal(ss_store_device_claim(x->st, t.id, dev, ""), 0);
		if (round % 2) {
			struct ss_checkin ci = ck_base(t.id, dev, 10);
			assert_int_equal(ss_store_checkin_record(x->st, &ci), 0);
		}
		assert_int_equal(pthread_barrier_init(&bar, NULL, CK_THREADS), 0);
		for (int i = 0; i < CK_THREADS; i++) {
			args[i] = (struct ck_arg){
			        .st = i ? st2 : x->st, .tenant = t.id, .dev = dev, .bar = &bar};
			assert_int_equal(pthread_create(&th[i], NULL, ck_thread, &args[i]), 0);
		}
		for (int i = 0; i < CK_THREADS; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		pthread_barrier_destroy(&bar);
		for (int i = 0; i < CK_THREADS; i++) {
			if (args[i].rc == 0)
				wins++;
			else
				assert_int_equal(args[i].rc, SPH_ERR_ROLLBACK);
		}
		assert_int_equal(wins, 1);
	}
	assert_int_equal(fx_count_action(au, fx_audit(x->st, t.id, au), "certificate.issue"), 6);
	ss_store_close(st2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_args),
	        T(test_plain_path_and_version),
	        T(test_reopen_keeps_data),
	        T(test_future_schema_refused),
	        T(test_tenants),
	        T(test_users),
	        T(test_roles),
	        T(test_tenant_list_for_user),
	        T(test_tokens),
	        T(test_device_claim),
	        T(test_device_release),
	        T(test_device_list),
	        T(test_audit),
	        T(test_list_max),
	        T(test_kill9_after_write),
	        T(test_kill9_mid_stream),
	        T(test_concurrent_claims),
	        T(test_concurrent_last_admin),
	        T(test_product_create_defaults),
	        T(test_product_rules),
	        T(test_product_list),
	        T(test_group_create_and_update),
	        T(test_device_set_group),
	        T(test_group_schema_cross_tenant),
	        T(test_ca_args),
	        T(test_ca_add_get_list),
	        T(test_ca_one_active),
	        T(test_ca_concurrent_activation),
	        T(test_ca_limit),
	        T(test_signer_add_get),
	        T(test_cap_signer_add_get),
	        T(test_device_mode),
	        T(test_image_add_get_list),
	        T(test_os_images_and_releases),
	        T(test_deployments),
	        T(test_target_generations),
	        T(test_registration_add_get),
	        T(test_registration_device_flag),
	        T(test_registration_concurrent),
	        T(test_checkin_record_and_replay),
	        T(test_failures_cap),
	        T(test_checkin_replay_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
