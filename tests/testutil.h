/* Helpers shared by the cmocka tests. */
#ifndef SPHERE_TESTUTIL_H
#define SPHERE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Creates a fresh temporary directory; returns a malloc'd path (caller frees
 * after tu_rmtree). Aborts the test on failure. */
char *tu_mkdtemp(void);
/* Removes a directory tree (best effort). */
void tu_rmtree(const char *path);
/* Joins dir and name into a malloc'd path. */
char *tu_path(const char *dir, const char *name);
/* Path of a file under tests/data ($SPHERE_TEST_DATA), malloc'd. */
char *tu_data_path(const char *rel);
/* Reads a whole file into a malloc'd buffer. Returns 0 or -1. */
int tu_read_file(const char *path, uint8_t **buf, size_t *len);
/* Decodes a hex string (either case) into a malloc'd buffer. Returns 0 or -1. */
int tu_unhex(const char *hex, uint8_t **buf, size_t *len);
/* Decodes base64url (no padding) into out (cap bytes). Returns the length or -1. */
int tu_b64url(const char *in, uint8_t *out, size_t cap);

/* What a program run by tu_run did. */
struct tu_result {
	int status; /* exit status, or -1 if it did not exit normally */
	char *out, *err;
};
/* Runs the binary named by $env (argv[0] "sphere") with the NULL-terminated
 * args in dir, capturing stdout and stderr. Aborts the test if it cannot run. */
struct tu_result tu_run(const char *env, const char *dir, const char *const *args);
/* Fails the test unless r exited with status and its stderr contains what
 * (what NULL: anything); then frees r. */
void tu_expect(struct tu_result *r, int status, const char *what);
/* Frees what tu_run captured and zeroes r. */
void tu_result_free(struct tu_result *r);

#endif
