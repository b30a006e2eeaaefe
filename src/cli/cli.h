/*
 * cli: the `sphere` operator and developer tool (the azsphere of Sphere).
 * Each command group is one file; main.c only calls cli_main().
 *
 * Exit status of every command: 0 success, 1 failure, 2 usage error.
 * Commands write their outputs through a temporary file and a rename, so a
 * failed command leaves nothing behind.
 */
#ifndef SPHERE_CLI_H
#define SPHERE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

/* Runs `sphere ARGS...`. Returns the exit status. */
int cli_main(int argc, char **argv);

/* `sphere image-package ...`; argv[0] is "image-package". Returns the exit status. */
int cli_image_package(int argc, char **argv);

/* `sphere device ...`; argv[0] is "device". Returns the exit status. */
int cli_device(int argc, char **argv);

/* The security service's commands (cli_api.c); argv[0] is the command
 * ("login", "tenant", "role"), or for devices the subcommand ("claim",
 * "list", "show", "release"). Return the exit status. */
int cli_login(int argc, char **argv);
int cli_tenant(int argc, char **argv);
int cli_role(int argc, char **argv);
int cli_device_api(int argc, char **argv);
/* `sphere ca-certificate ...` (cli_api_ca.c); argv[0] is "ca-certificate". */
int cli_ca_certificate(int argc, char **argv);

/* ---- helpers shared by the command files ---------------------------------- */

/* Prints "sphere: <message>" to stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "sphere: <message>" and a hint to run `<cmd> --help` to stderr;
 * returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a decimal integer 0..max with nothing around it. Returns 0 or -1. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *v);
/* Parses a UUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case). Returns 0 or -1. */
int cli_parse_uuid(const char *s, uint8_t uuid[16]);
/* Formats a UUID as 36 lowercase characters and a NUL (out holds >= 37). */
void cli_format_uuid(const uint8_t uuid[16], char out[37]);
/* Makes a random (version 4) UUID. Returns 0 or -1. */
int cli_random_uuid(uint8_t uuid[16]);

#endif
