/*
 * The security service's API end to end (docs/api.md §2, §4): a real
 * sphere-ss over real TLS, driven with libcurl. Every refusal is attacked:
 * no token, a bad or revoked token, a Reader writing, one tenant reaching
 * into another, a second claim, malformed and oversize bodies — and an
 * acknowledged write survives kill -9 of the server process.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "service/service.h"
#include "ss_fixture.h"
#include "testutil.h"

static void test_authentication(void **state)
{
	char bad[SS_TOKEN_LEN + 1];
	json_t *j = NULL;

	(void)state;
	/* A second init over the same directory is refused. */
	{
		struct ss_init_result again;
		assert_int_equal(ss_init(&fx.cfg, NULL, NULL, &again), SPH_ERR_STATE);
	}
	ssfx_expect(200, NULL, "GET", "/v1/health", NULL, NULL);
	ssfx_expect(401, "unauthorized", "GET", "/v1/me", NULL, NULL);
	ssfx_expect(401, "unauthorized", "GET", "/v1/me", "not-a-token", NULL);
	/* Well-formed, unknown: one hex digit changed. */
	memcpy(bad, fx.init.admin_token, sizeof(bad));
	bad[10] = bad[10] == 'a' ? 'b' : 'a';
	ssfx_expect(401, "unauthorized", "GET", "/v1/me", bad, NULL);
	assert_int_equal(ssfx_req("GET", "/v1/me", fx.init.admin_token, NULL, &j), 200);
	assert_string_equal(ssfx_jstr(json_object_get(j, "user"), "name"), "alice");
	assert_string_equal(ssfx_jstr(json_array_get(json_object_get(j, "tenants"), 0), "role"),
	                    "Administrator");
	json_decref(j);
	/* The operator owns no tenant and may not create one. */
	ssfx_expect(403, "forbidden", "POST", "/v1/tenants", fx.init.operator_token,
	            "{\"name\":\"op-tenant\"}");
}

static void test_tokens_revocable(void **state)
{
	json_t *j = NULL;
	char path[128], token[SS_TOKEN_LEN + 1];

	(void)state;
	assert_int_equal(ssfx_req("POST", "/v1/tokens", fx.init.admin_token, "{}", &j), 201);
	snprintf(token, sizeof(token), "%s", ssfx_jstr(j, "token"));
	snprintf(path, sizeof(path), "/v1/tokens/%s", ssfx_jstr(j, "id"));
	json_decref(j);
	ssfx_expect(200, NULL, "GET", "/v1/me", token, NULL);
	ssfx_expect(204, NULL, "DELETE", path, token, NULL);
	ssfx_expect(401, "unauthorized", "GET", "/v1/me", token, NULL);
	/* Another user's token id is not ours to revoke. */
	ssfx_expect(404, "not_found", "DELETE", path, fx.init.admin_token, NULL);
}

static void test_roles_and_tenant_isolation(void **state)
{
	char a[128], b[128], path[400], body[300], reader[SS_TOKEN_LEN + 1], bob[SS_TOKEN_LEN + 1],
	        dev[129];
	json_t *j = NULL;

	(void)state;
	snprintf(a, sizeof(a), "/v1/tenants/%s", fx.init.tenant.id);
	/* Alice makes a second tenant, B, with Bob as its Administrator. */
	assert_int_equal(
	        ssfx_req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"beta\"}", &j),
	        201);
	snprintf(b, sizeof(b), "/v1/tenants/%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/users", b);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"bob\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(bob, sizeof(bob), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	/* And a Reader in A. */
	snprintf(path, sizeof(path), "%s/users", a);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"rita\",\"role\":\"Reader\"}", &j),
	                 201);
	snprintf(reader, sizeof(reader), "%s", ssfx_jstr(j, "token"));
	json_decref(j);
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token,
	            "{\"name\":\"x\",\"role\":\"Owner\"}");

	/* The Reader reads but never writes. */
	ssfx_expect(200, NULL, "GET", a, reader, NULL);
	snprintf(path, sizeof(path), "%s/roles", a);
	ssfx_expect(200, NULL, "GET", path, reader, NULL);
	ssfx_device_id(dev, 1);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	snprintf(path, sizeof(path), "%s/devices", a);
	ssfx_expect(403, "forbidden", "POST", path, reader, body);
	snprintf(path, sizeof(path), "%s/users", a);
	ssfx_expect(403, "forbidden", "POST", path, reader,
	            "{\"name\":\"eve\",\"role\":\"Administrator\"}");
	snprintf(path, sizeof(path), "%s/audit", a);
	ssfx_expect(403, "forbidden", "GET", path, reader, NULL);

	/* Bob (B's Administrator) cannot see or touch anything of A's: 404, as
	 * for a tenant that does not exist. */
	ssfx_expect(404, "not_found", "GET", a, bob, NULL);
	snprintf(path, sizeof(path), "%s/devices", a);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	ssfx_expect(404, "not_found", "POST", path, bob, body);
	snprintf(path, sizeof(path), "%s/audit", a);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/users", a);
	ssfx_expect(404, "not_found", "POST", path, bob,
	            "{\"name\":\"bob\",\"role\":\"Administrator\"}");
	ssfx_expect(404, "not_found", "GET", "/v1/tenants/00000000-0000-4000-8000-000000000000",
	            fx.init.admin_token, NULL);

	/* The last Administrator stays. */
	snprintf(path, sizeof(path), "%s/roles/%s", a, fx.init.admin.id);
	ssfx_expect(409, "conflict", "DELETE", path, fx.init.admin_token, NULL);
}

static void test_claim_once_and_release(void **state)
{
	char a[128], b[128], path[400], body[300], bob[SS_TOKEN_LEN + 1], dev[129], dev2[129];
	json_t *j = NULL;

	(void)state;
	snprintf(a, sizeof(a), "/v1/tenants/%s", fx.init.tenant.id);
	assert_int_equal(
	        ssfx_req("POST", "/v1/tenants", fx.init.admin_token, "{\"name\":\"gamma\"}", &j),
	        201);
	snprintf(b, sizeof(b), "/v1/tenants/%s", ssfx_jstr(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/users", b);
	assert_int_equal(ssfx_req("POST", path, fx.init.admin_token,
	                          "{\"name\":\"gus\",\"role\":\"Administrator\"}", &j),
	                 201);
	snprintf(bob, sizeof(bob), "%s", ssfx_jstr(j, "token"));
	json_decref(j);

	ssfx_device_id(dev, 2);
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	snprintf(path, sizeof(path), "%s/devices", a);
	ssfx_expect(201, NULL, "POST", path, fx.init.admin_token, body);
	ssfx_expect(409, "conflict", "POST", path, fx.init.admin_token, body); /* again */
	snprintf(path, sizeof(path), "%s/devices", b);
	ssfx_expect(409, "conflict", "POST", path, bob, body); /* another tenant */
	snprintf(path, sizeof(path), "%s/devices/%s", b, dev);
	ssfx_expect(404, "not_found", "GET", path, bob, NULL);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	ssfx_expect(200, NULL, "GET", path, fx.init.admin_token, NULL);

	/* Bad claims: malformed JSON, not an object, trailing bytes, a missing
	 * field, a bad device id, an oversize body. */
	snprintf(path, sizeof(path), "%s/devices", a);
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token, "{\"device_id\":");
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token, "[1,2]");
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token, "{} {}");
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token, "{\"id\":\"x\"}");
	ssfx_expect(400, "bad_request", "POST", path, fx.init.admin_token,
	            "{\"device_id\":\"ABCDEF\"}");
	{
		size_t n = 8192;
		char *big = malloc(n);
		assert_non_null(big);
		memset(big, ' ', n);
		big[0] = '{';
		big[n - 1] = '}';
		assert_int_equal(ssfx_req_raw(0, "POST", path, fx.init.admin_token, big, n, NULL),
		                 413);
		free(big);
	}

	/* Release to B: only B may claim it now, and it moves there. */
	ssfx_device_id(dev2, 3);
	snprintf(path, sizeof(path), "%s/devices/%s/release", a, dev);
	snprintf(body, sizeof(body), "{\"to_tenant\":\"%s\"}", b + strlen("/v1/tenants/"));
	ssfx_expect(200, NULL, "POST", path, fx.init.admin_token, body);
	snprintf(path, sizeof(path), "%s/devices/%s/release", a, dev2);
	ssfx_expect(404, "not_found", "POST", path, fx.init.admin_token, body); /* not held */
	snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
	snprintf(path, sizeof(path), "%s/devices", b);
	ssfx_expect(201, NULL, "POST", path, bob, body);
	snprintf(path, sizeof(path), "%s/devices/%s", a, dev);
	ssfx_expect(404, "not_found", "GET", path, fx.init.admin_token, NULL);
	snprintf(path, sizeof(path), "%s/devices/%s", b, dev);
	ssfx_expect(200, NULL, "GET", path, bob, NULL);

	/* A's audit keeps the history: claim then release. */
	snprintf(path, sizeof(path), "%s/audit", a);
	assert_int_equal(ssfx_req("GET", path, fx.init.admin_token, NULL, &j), 200);
	{
		json_t *ev = json_object_get(j, "events");
		bool claim = false, release = false;
		for (size_t i = 0; i < json_array_size(ev); i++) {
			const char *act = ssfx_jstr(json_array_get(ev, i), "action");
			claim |= strcmp(act, "device.claim") == 0;
			release |= strcmp(act, "device.release") == 0 && claim;
		}
		assert_true(claim && release);
	}
	json_decref(j);
}

static void test_metrics(void **state)
{
	struct ssfx_reply r;

	(void)state;
	ssfx_expect(401, NULL, "GET", "/v1/me", NULL, NULL);
	ssfx_call(0, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.body);
	assert_non_null(strstr(r.body, "sphere_http_requests_total"));
	assert_non_null(strstr(r.body, "sphere_auth_failures_total{reason=\"missing\"}"));
	ssfx_reply_free(&r);
}

/* The real binary: a claim it acknowledged survives kill -9. */
static void test_kill9_durability(void **state)
{
	const char *bin = getenv("SPHERE_SS_BIN");
	char dir[600], port_s[16], dev[129], path[400], body[300];
	pid_t pid;
	int fds[2];
	uint16_t port = 0;

	(void)state;
	if (!bin)
		skip();
	snprintf(dir, sizeof(dir), "%s", fx.data);
	for (int round = 0; round < 2; round++) {
		FILE *f;
		char line[256];
		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			dup2(fds[1], 1);
			close(fds[0]);
			execl(bin, bin, "serve", "--data-dir", dir, "--port", "0", "--workers", "1",
			      (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		f = fdopen(fds[0], "r");
		assert_non_null(f);
		assert_non_null(fgets(line, sizeof(line), f)); /* "... listening on ADDR:PORT" */
		assert_int_equal(sscanf(strrchr(line, ':') + 1, "%hu", &port), 1);
		snprintf(port_s, sizeof(port_s), "%u", (unsigned)port);
		ssfx_device_id(dev, 9);
		if (round == 0) {
			snprintf(body, sizeof(body), "{\"device_id\":\"%s\"}", dev);
			snprintf(path, sizeof(path), "/v1/tenants/%s/devices", fx.init.tenant.id);
			assert_int_equal(ssfx_req_raw(port, "POST", path, fx.init.admin_token, body,
			                              strlen(body), NULL),
			                 201);
			kill(pid, SIGKILL); /* right after the acknowledgement */
		} else {
			snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", fx.init.tenant.id,
			         dev);
			assert_int_equal(
			        ssfx_req_raw(port, "GET", path, fx.init.admin_token, NULL, 0, NULL),
			        200);
			kill(pid, SIGTERM);
		}
		waitpid(pid, NULL, 0);
		fclose(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_authentication),
	        cmocka_unit_test(test_tokens_revocable),
	        cmocka_unit_test(test_roles_and_tenant_isolation),
	        cmocka_unit_test(test_claim_once_and_release),
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_kill9_durability),
	};
	return cmocka_run_group_tests(tests, ssfx_setup, ssfx_teardown);
}
