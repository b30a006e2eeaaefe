/*
 * libFuzzer target: every input is a sphere-ss configuration file
 * (docs/api.md §1.1), and its first line also a presented API token. The
 * loader must return 0 or one of its documented statuses with a terminated
 * reason, never read past a line, and leave every option within its limits;
 * the token check must accept only "sph_" + 64 lowercase hex digits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "service/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ss_config c;
	char why[SS_REASON_MAX], token[SS_TOKEN_LEN + 8];
	uint8_t hash[32];
	size_t n;
	FILE *f;
	int rc;

	if (!fz_path[0]) {
		snprintf(fz_path, sizeof(fz_path), "/tmp/fuzz-ssconfig-%d", (int)getpid());
	}
	f = fopen(fz_path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	ss_config_defaults(&c);
	memset(why, 'x', sizeof(why));
	why[sizeof(why) - 1] = '\0';
	rc = ss_config_load(&c, fz_path, why, sizeof(why));
	if (rc != 0 && rc != SPH_ERR_MALFORMED && rc != SPH_ERR_DUPLICATE && rc != SPH_ERR_IO)
		abort();
	if (memchr(why, '\0', sizeof(why)) == NULL)
		abort();
	if (c.workers < 0 || c.workers > 64 || c.max_body < 1 || c.max_body > (64u << 20) ||
	    !memchr(c.data_dir, '\0', sizeof(c.data_dir)) || !memchr(c.db, '\0', sizeof(c.db)))
		abort();

	/* The first line as a token. */
	n = 0;
	while (n < size && n < sizeof(token) - 1 && data[n] != '\n')
		n++;
	memcpy(token, data, n);
	token[n] = '\0';
	rc = ss_token_hash(token, hash);
	if (rc == 0) {
		if (strlen(token) != SS_TOKEN_LEN || strncmp(token, "sph_", 4) != 0)
			abort();
		for (size_t i = 4; i < SS_TOKEN_LEN; i++)
			if (!strchr("0123456789abcdef", token[i]))
				abort();
	} else if (rc != SPH_ERR_MALFORMED) {
		abort();
	}
	return 0;
}
