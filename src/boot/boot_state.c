/*
 * boot: the flash layout and the slot-state record (docs/formats.md §7.1, §7.2).
 * The record decoder reads untrusted flash bytes: fixed length, checked.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "boot.h"
#include "common/common.h"

#define BOOT_OFF_MAGIC     0
#define BOOT_OFF_SEQ       8
#define BOOT_OFF_COMP      12
#define BOOT_OFF_CONFIRMED 13
#define BOOT_OFF_TRIAL     14
#define BOOT_OFF_TRIALS    15
#define BOOT_OFF_SVN       16
#define BOOT_OFF_LEN_A     20
#define BOOT_OFF_LEN_B     24
#define BOOT_OFF_RESERVED  28
#define BOOT_OFF_CHECK     32
#define BOOT_CHECKED_LEN   32

_Static_assert(BOOT_OFF_CHECK + 32 == BOOT_RECORD_LEN, "record is 64 bytes");
_Static_assert(sizeof(BOOT_RECORD_MAGIC) - 1 == 8, "magic is 8 bytes");

static int boot_check_digest(const uint8_t *rec, uint8_t out[32])
{
	return EVP_Digest(rec, BOOT_CHECKED_LEN, out, NULL, EVP_sha256(), NULL) == 1
	               ? 0
	               : SPH_ERR_CRYPTO;
}

/* The §7.2 rules on decoded fields. */
static bool boot_state_valid(const struct boot_state *s)
{
	if (s->seq == 0 || s->seq > BOOT_SEQ_MAX || s->component >= BOOT_COMPONENTS)
		return false;
	if (s->confirmed != 0 && s->confirmed != 1 && s->confirmed != BOOT_NO_SLOT)
		return false;
	if (s->trial != 0 && s->trial != 1 && s->trial != BOOT_NO_SLOT)
		return false;
	if (s->trial != BOOT_NO_SLOT && s->trial == s->confirmed)
		return false;
	if (s->trials_left > BOOT_TRIALS || (s->trial == BOOT_NO_SLOT && s->trials_left != 0))
		return false;
	if (s->confirmed_svn > BOOT_MAX_SVN)
		return false;
	for (unsigned i = 0; i < BOOT_SLOTS; i++)
		if (s->len[i] > BOOT_SLOT_SIZE)
			return false;
	if (s->confirmed != BOOT_NO_SLOT && s->len[s->confirmed] == 0)
		return false;
	if (s->trial != BOOT_NO_SLOT && s->len[s->trial] == 0)
		return false;
	return true;
}

int boot_state_encode(const struct boot_state *s, uint8_t rec[BOOT_RECORD_LEN])
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || !rec || !boot_state_valid(s))
		goto out;
	memset(rec, 0, BOOT_RECORD_LEN);
	memcpy(rec + BOOT_OFF_MAGIC, BOOT_RECORD_MAGIC, 8);
	sph_put_le32(rec + BOOT_OFF_SEQ, s->seq);
	rec[BOOT_OFF_COMP] = s->component;
	rec[BOOT_OFF_CONFIRMED] = s->confirmed;
	rec[BOOT_OFF_TRIAL] = s->trial;
	rec[BOOT_OFF_TRIALS] = s->trials_left;
	sph_put_le32(rec + BOOT_OFF_SVN, s->confirmed_svn);
	sph_put_le32(rec + BOOT_OFF_LEN_A, s->len[0]);
	sph_put_le32(rec + BOOT_OFF_LEN_B, s->len[1]);
	rc = boot_check_digest(rec, rec + BOOT_OFF_CHECK);
out:
	return rc;
}

int boot_state_decode(const uint8_t *rec, size_t len, unsigned want, struct boot_state *s)
{
	struct boot_state tmp;
	uint8_t check[32];
	int rc = SPH_ERR_INVALID_ARG;

	if (s)
		memset(s, 0, sizeof(*s));
	if (!rec || !s)
		goto out;
	rc = len < BOOT_RECORD_LEN ? SPH_ERR_TRUNCATED : SPH_ERR_TRAILING;
	if (len != BOOT_RECORD_LEN)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (memcmp(rec + BOOT_OFF_MAGIC, BOOT_RECORD_MAGIC, 8) != 0)
		goto out;
	rc = boot_check_digest(rec, check);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (CRYPTO_memcmp(check, rec + BOOT_OFF_CHECK, sizeof(check)) != 0)
		goto out;
	if (sph_get_le32(rec + BOOT_OFF_RESERVED) != 0)
		goto out;
	memset(&tmp, 0, sizeof(tmp));
	tmp.seq = sph_get_le32(rec + BOOT_OFF_SEQ);
	tmp.component = rec[BOOT_OFF_COMP];
	tmp.confirmed = rec[BOOT_OFF_CONFIRMED];
	tmp.trial = rec[BOOT_OFF_TRIAL];
	tmp.trials_left = rec[BOOT_OFF_TRIALS];
	tmp.confirmed_svn = sph_get_le32(rec + BOOT_OFF_SVN);
	tmp.len[0] = sph_get_le32(rec + BOOT_OFF_LEN_A);
	tmp.len[1] = sph_get_le32(rec + BOOT_OFF_LEN_B);
	if (!boot_state_valid(&tmp))
		goto out;
	rc = SPH_ERR_CLAIM;
	if (tmp.component != want)
		goto out;
	*s = tmp;
	rc = 0;
out:
	return rc;
}

int boot_layout_check(const struct chip_flash_geometry *g)
{
	if (!g || g->block_size == 0 || g->block_size > BOOT_SLOT_SIZE ||
	    BOOT_SLOT_SIZE % g->block_size != 0)
		return SPH_ERR_UNSUPPORTED;
	return (uint64_t)BOOT_STATE_BLOCKS + BOOT_STORE_MIN_BLOCKS <= g->block_count
	               ? 0
	               : SPH_ERR_UNSUPPORTED;
}

int boot_store_region(const struct chip_flash_geometry *g, struct secmon_region *r)
{
	if (!r)
		return SPH_ERR_INVALID_ARG;
	memset(r, 0, sizeof(*r));
	if (boot_layout_check(g) != 0)
		return SPH_ERR_UNSUPPORTED;
	r->first_block = BOOT_STATE_BLOCKS;
	r->block_count = g->block_count - BOOT_STATE_BLOCKS;
	return 0;
}

int boot_slot_name(unsigned comp, unsigned slot, char *buf, size_t cap)
{
	static const char *const names[BOOT_COMPONENTS] = {"bl", "secmon", "os"};
	int n;

	if (comp >= BOOT_COMPONENTS || slot >= BOOT_SLOTS || !buf)
		return SPH_ERR_INVALID_ARG;
	n = snprintf(buf, cap, "boot/%s/%c", names[comp], 'a' + (int)slot);
	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_BUFFER_TOO_SMALL;
}

uint64_t boot_record_offset(const struct chip_flash_geometry *g, unsigned comp, unsigned rec)
{
	return (uint64_t)(2u * comp + rec) * g->block_size;
}

const char *boot_comp_name(unsigned comp)
{
	static const char *const names[BOOT_COMPONENTS] = {"BL", "SECMON", "OS"};
	return comp < BOOT_COMPONENTS ? names[comp] : "?";
}

int boot_comp_from_name(const char *name, unsigned *comp)
{
	static const struct {
		const char *name;
		unsigned comp;
	} map[] = {{"bl", BOOT_BL},
	           {"bootloader", BOOT_BL},
	           {"secmon", BOOT_SECMON},
	           {"security-monitor", BOOT_SECMON},
	           {"os", BOOT_OS}};

	if (!name || !comp)
		return SPH_ERR_INVALID_ARG;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(name, map[i].name) == 0) {
			*comp = map[i].comp;
			return 0;
		}
	}
	return SPH_ERR_INVALID_ARG;
}
