/*
 * cli api: the session and call helpers shared by the commands that talk to
 * the security service (cli_api.c defines them; cli_api_ca.c uses them).
 */
#ifndef SPHERE_CLI_API_H
#define SPHERE_CLI_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The saved session: service URL, API token, CA file, selected tenant. */
struct cli_session {
	char url[256];
	char token[96];
	char ca[512];
	char tenant[40];
};

/* Loads the session from $SPHERE_CONFIG (else ~/.config/sphere/config.json).
 * Returns 0, or CLI_EXIT_FAIL after printing why. Wipe with cli_session_wipe. */
int cli_session_load(struct cli_session *s);
/* Wipes the session (the token included). */
void cli_session_wipe(struct cli_session *s);
/* Calls the service. Returns the HTTP status (*reply: its JSON, or NULL), or
 * -1 after printing why it could not. A status >= 400 prints the service's
 * error and reason. body is not consumed. */
long cli_call(const struct cli_session *s, const char *method, const char *path, json_t *body,
              json_t **reply);
/* The same for a reply that is not JSON (a PEM or DER download): on a 2xx
 * status *raw holds the body (*len bytes plus a NUL; free with free()). */
long cli_call_raw(const struct cli_session *s, const char *method, const char *path, uint8_t **raw,
                  size_t *len);
/* Prints a reply as JSON, or the rows of its array member `key` as a table
 * of the given columns (key NULL: one object, a line per column). */
void cli_print(json_t *reply, bool as_json, const char *key, const char *const *cols);

#endif
