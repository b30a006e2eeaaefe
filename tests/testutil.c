#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "testutil.h"

extern char **environ;

char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = NULL;

	if (asprintf(&tmpl, "%s/sphere-test-XXXXXX", base ? base : "/tmp") < 0)
		fail_msg("asprintf");
	if (!mkdtemp(tmpl))
		fail_msg("mkdtemp %s", tmpl);
	return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		fail_msg("asprintf");
	return p;
}

char *tu_data_path(const char *rel)
{
	const char *base = getenv("SPHERE_TEST_DATA");
	if (!base)
		fail_msg("SPHERE_TEST_DATA is not set (run the tests through ctest)");
	return tu_path(base, rel);
}

int tu_read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	long n;

	*buf = NULL;
	*len = 0;
	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	b = malloc((size_t)n + 1);
	if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	b[n] = 0;
	fclose(f);
	*buf = b;
	*len = (size_t)n;
	return 0;
fail:
	free(b);
	fclose(f);
	return -1;
}

int tu_unhex(const char *hex, uint8_t **buf, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *b;

	*buf = NULL;
	*len = 0;
	if (n % 2)
		return -1;
	b = malloc(n / 2 + 1);
	if (!b)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		char two[3] = {hex[2 * i], hex[2 * i + 1], 0};
		char *end;
		v = (unsigned)strtoul(two, &end, 16);
		if (*end) {
			free(b);
			return -1;
		}
		b[i] = (uint8_t)v;
	}
	*buf = b;
	*len = n / 2;
	return 0;
}

int tu_b64url(const char *in, uint8_t *out, size_t cap)
{
	size_t n = strlen(in);
	char *std = calloc(1, n + 4);
	unsigned char *tmp = calloc(1, n + 4);
	int len = -1;

	if (!std || !tmp)
		goto out;
	for (size_t i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	size_t pad = (4 - n % 4) % 4;
	memset(std + n, '=', pad);
	len = EVP_DecodeBlock(tmp, (unsigned char *)std, (int)(n + pad));
	if (len < 0)
		goto out;
	len -= (int)pad;
	if ((size_t)len > cap) {
		len = -1;
		goto out;
	}
	memcpy(out, tmp, (size_t)len);
out:
	free(std);
	free(tmp);
	return len;
}

void tu_result_free(struct tu_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

struct tu_result tu_run(const char *env, const char *dir, const char *const *args)
{
	const char *bin = getenv(env);
	char *argv[40];
	char *out_path = tu_path(dir, "stdout.txt"), *err_path = tu_path(dir, "stderr.txt");
	posix_spawn_file_actions_t fa;
	struct tu_result r = {-1, NULL, NULL};
	size_t n = 0, len;
	pid_t pid;
	int ws;

	if (!bin)
		fail_msg("%s is not set (run the tests through ctest)", env);
	argv[n++] = (char *)"sphere";
	while (args[n - 1]) {
		assert_true(n < 39);
		argv[n] = (char *)args[n - 1];
		n++;
	}
	argv[n] = NULL;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out_path,
	                                                  O_WRONLY | O_CREAT | O_TRUNC, 0600),
	                 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, err_path,
	                                                  O_WRONLY | O_CREAT | O_TRUNC, 0600),
	                 0);
	assert_int_equal(posix_spawn_file_actions_addchdir_np(&fa, dir), 0);
	assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	if (WIFEXITED(ws))
		r.status = WEXITSTATUS(ws);
	assert_int_equal(tu_read_file(out_path, (uint8_t **)&r.out, &len), 0);
	assert_int_equal(tu_read_file(err_path, (uint8_t **)&r.err, &len), 0);
	free(out_path);
	free(err_path);
	return r;
}

void tu_expect(struct tu_result *r, int status, const char *what)
{
	if (r->status != status || (what && !strstr(r->err, what)))
		fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant in stderr: %s", r->status,
		         status, r->out, r->err, what ? what : "(nothing)");
	tu_result_free(r);
}
