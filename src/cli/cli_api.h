/*
 * cli api: the session and call helpers of cli_api.c, shared by every file
 * whose commands talk to the security service (cli_api_groups.c,
 * cli_api_ca.c), and those files' entry points.
 */
#ifndef SPHERE_CLI_API_H
#define SPHERE_CLI_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The saved session: service URL, API token, CA file and selected tenant.
 * Holds the token: wipe it with cli_session_wipe. */
struct cli_session {
	char url[256];
	char token[96];
	char ca[512];
	char tenant[40];
};

/* Loads the session from $SPHERE_CONFIG (else ~/.config/sphere/config.json).
 * Returns 0, or CLI_EXIT_FAIL after printing why (s is then wiped). */
int cli_session_load(struct cli_session *s);
/* Wipes s (it holds the token). */
void cli_session_wipe(struct cli_session *s);
/* Calls the service: method and path (from "/v1"), body JSON or NULL (not
 * stolen). Returns the HTTP status (*reply: its JSON or NULL, caller
 * json_decref()s), or -1 after printing why it could not. A status >= 400
 * prints the service's error and reason. */
long cli_call(const struct cli_session *s, const char *method, const char *path, json_t *body,
              json_t **reply);
/* The same for a reply that is not JSON (a PEM or DER download): on a 2xx
 * status *raw holds the body (*len bytes plus a NUL; free with free()). */
long cli_call_raw(const struct cli_session *s, const char *method, const char *path, uint8_t **raw,
                  size_t *len);
/* cli_call_raw with a JSON request body (NULL: none; not stolen). */
long cli_call_raw_body(const struct cli_session *s, const char *method, const char *path,
                       json_t *body, uint8_t **raw, size_t *len);
/* The same with a raw request body (data, len bytes) sent as
 * application/octet-stream (an image package upload); the reply as cli_call. */
long cli_call_upload(const struct cli_session *s, const char *method, const char *path,
                     const uint8_t *data, size_t len, json_t **reply);
/* Prints a reply as JSON (as_json), else the rows of its array member key as
 * a table of cols, or (key NULL) one "name value" line per column. */
void cli_print(json_t *reply, bool as_json, const char *key, const char *const *cols);

/* The options every service command shares, for the default branch of its
 * getopt switch: -o/--output table|json (sets *json, returns 0), -h/--help
 * (prints usage, returns -1), anything else (a usage error naming argv's
 * offending option: returns its exit status). */
int cli_opt_common(int c, const char *cmd, const char *usage, char **argv, bool *json);

/* `sphere product ...` and `sphere device-group ...` (argv[0] is the
 * command), and `sphere device update ...` (argv[0] is "update"). Return the
 * exit status. */
int cli_product(int argc, char **argv);
int cli_device_group(int argc, char **argv);
int cli_device_update(int argc, char **argv);

/* The image catalogue (cli_api_images.c): `sphere image ...`,
 * `sphere deployment ...`, `sphere os-feed ...`, `sphere os-image ...` (argv[0]
 * is the command) and `sphere device-group target ...` (argv[0] is
 * "target"). Return the exit status. */
int cli_image_api(int argc, char **argv);
int cli_deployment(int argc, char **argv);
int cli_os_feed(int argc, char **argv);
int cli_os_image(int argc, char **argv);
int cli_group_target(int argc, char **argv);

/* Device registrations (cli_api_registration.c): `sphere device register`
 * (argv[0] is "register") and `sphere device registration show` (argv[0]
 * is "registration"). Return the exit status. */
int cli_device_register(int argc, char **argv);
int cli_device_registration(int argc, char **argv);

/* Device capabilities from the service and modes (cli_api_capabilities.c):
 * `sphere device capability download` (argv[0] is "download") and
 * `sphere device enable-development | enable-cloud-test` (argv[0] is the
 * command). Return the exit status. */
int cli_device_capability_download(int argc, char **argv);
int cli_device_mode(int argc, char **argv);

#endif
