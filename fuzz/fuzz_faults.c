/*
 * libFuzzer target: every input is one fault spec (docs/formats.md §6.3),
 * as it would arrive in $SPHERE_FAULTS or --faults. The parser must
 *  - on refusal: return MALFORMED, TOO_LARGE or DUPLICATE, leave the plan all
 *    zero and write a terminated "fault spec: ..." message;
 *  - on success: leave an empty message and a plan within every limit, whose
 *    canonical form (chip_faults_format) parses back to the same plan and
 *    formats to the same text.
 * Anything else aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "chip/chip.h"
#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fz_plan_equal(const struct chip_faults *a, const struct chip_faults *b)
{
	if (a->powercut != b->powercut || a->seed != b->seed || a->has_seed != b->has_seed ||
	    a->random_flips != b->random_flips || a->nflips != b->nflips || a->nlost != b->nlost)
		return false;
	for (uint32_t i = 0; i < a->nflips; i++) {
		if (a->flips[i].offset != b->flips[i].offset || a->flips[i].bit != b->flips[i].bit)
			return false;
	}
	return memcmp(a->lost, b->lost, a->nlost * sizeof(a->lost[0])) == 0;
}

static bool fz_plan_zero(const struct chip_faults *p)
{
	static const struct chip_faults zero;
	return fz_plan_equal(p, &zero) && p->flips[0].offset == 0 && p->lost[0] == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct chip_faults p, q;
	static char canon[2 * CHIP_FAULTS_SPEC_MAX], again[2 * CHIP_FAULTS_SPEC_MAX];
	char err[CHIP_FAULTS_ERR_MAX];
	char *spec;
	int rc;

	if (size > 2 * CHIP_FAULTS_SPEC_MAX)
		return 0; /* past the length check nothing new happens */
	spec = malloc(size + 1);
	if (!spec)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';

	memset(err, 'z', sizeof(err));
	memset(&p, 0x5a, sizeof(p));
	rc = chip_faults_parse(spec, &p, err, sizeof(err));
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort(); /* the message is always terminated */
	if (rc != 0) {
		if (rc != SPH_ERR_MALFORMED && rc != SPH_ERR_TOO_LARGE && rc != SPH_ERR_DUPLICATE)
			abort();
		if (strncmp(err, "fault spec: ", 12) != 0 || !fz_plan_zero(&p))
			abort();
		goto out;
	}
	if (err[0] != '\0')
		abort();
	if (p.nflips > CHIP_FAULTS_MAX_FLIPS || p.nlost > CHIP_FAULTS_MAX_LOST ||
	    p.random_flips > CHIP_FAULTS_MAX_RANDOM)
		abort();
	for (uint32_t i = 0; i < p.nflips; i++) {
		if (p.flips[i].bit > 7)
			abort();
	}
	for (uint32_t i = 0; i < p.nlost; i++) {
		if (p.lost[i] >= CHIP_FLASH_MAX_BLOCKS)
			abort();
	}
	if (chip_faults_format(&p, canon, sizeof(canon)) != 0)
		abort();
	if (strlen(canon) > CHIP_FAULTS_SPEC_MAX)
		abort(); /* the canonical form must itself be a valid spec */
	if (chip_faults_parse(canon, &q, err, sizeof(err)) != 0 || !fz_plan_equal(&p, &q))
		abort();
	if (chip_faults_format(&q, again, sizeof(again)) != 0 || strcmp(canon, again) != 0)
		abort();
out:
	free(spec);
	return 0;
}
