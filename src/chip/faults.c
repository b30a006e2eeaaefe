/*
 * chip: the fault injector (docs/formats.md §6.3).
 *
 * A plan comes from a strict spec string (a --faults flag or $SPHERE_FAULTS)
 * or is built by a test. Applying it to a flash flips bits and marks lost
 * blocks in the medium at once, and arms a power cut that flash.c fires at
 * the Nth accepted program/erase. Everything random is derived from the plan's
 * seed with SplitMix64, so a run is reproduced by its spec.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "chip_internal.h"

/* SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, seedable stream. */
static uint64_t chip_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Stream separation: the torn lengths and the random flips never share values. */
#define CHIP_STREAM_TORN  0x746f726e00000000ull /* "torn" */
#define CHIP_STREAM_FLIPS 0x666c697000000000ull /* "flip" */

uint64_t chip_faults_torn_len(uint64_t seed, uint64_t op, uint64_t len)
{
	uint64_t s = seed ^ CHIP_STREAM_TORN ^ (op * 0xd1342543de82ef95ull);

	if (len == UINT64_MAX)
		return chip_splitmix64(&s);
	return chip_splitmix64(&s) % (len + 1);
}

/* ---- parsing --------------------------------------------------------------- */

struct chip_tok {
	const char *p;
	size_t len;
};

/* Writes "fault spec: <what> in token N \"<token>\"" with the token made printable. */
static void chip_spec_error(char *err, size_t errcap, size_t index, struct chip_tok tok,
                            const char *what)
{
	char shown[48];
	size_t n = 0, max = sizeof(shown) - 4;

	if (!err || errcap == 0)
		return;
	for (size_t i = 0; i < tok.len && n < max; i++) {
		unsigned char c = (unsigned char)tok.p[i];
		shown[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
	}
	if (tok.len > max) {
		memcpy(shown + n, "...", 3);
		n += 3;
	}
	shown[n] = '\0';
	snprintf(err, errcap, "fault spec: %s in token %zu \"%s\"", what, index + 1, shown);
}

static bool chip_tok_is(struct chip_tok t, const char *word)
{
	size_t n = strlen(word);
	return t.len == n && memcmp(t.p, word, n) == 0;
}

static int chip_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses an unsigned number: "0", a decimal without leading zeros, or "0x"
 * followed by 1..16 hex digits. Returns 0, SPH_ERR_MALFORMED or
 * SPH_ERR_TOO_LARGE (beyond 2^64-1); *what says why. */
static int chip_parse_u64(struct chip_tok t, uint64_t *v, const char **what)
{
	uint64_t acc = 0;

	*v = 0;
	*what = "not a number";
	if (t.len == 0) {
		*what = "missing number";
		return SPH_ERR_MALFORMED;
	}
	if (t.len >= 2 && t.p[0] == '0' && t.p[1] == 'x') {
		if (t.len == 2)
			return SPH_ERR_MALFORMED; /* "0x" without digits */
		for (size_t i = 2; i < t.len; i++) {
			int d = chip_hexval(t.p[i]);
			if (d < 0)
				return SPH_ERR_MALFORMED;
			if (acc > (UINT64_MAX >> 4)) {
				*what = "number overflows 64 bits";
				return SPH_ERR_TOO_LARGE;
			}
			acc = acc << 4 | (uint64_t)d;
		}
		*v = acc;
		return 0;
	}
	if (t.p[0] == '0' && t.len > 1) {
		*what = "leading zero (write hex as 0x...)";
		return SPH_ERR_MALFORMED;
	}
	for (size_t i = 0; i < t.len; i++) {
		unsigned d;
		if (t.p[i] < '0' || t.p[i] > '9')
			return SPH_ERR_MALFORMED;
		d = (unsigned)(t.p[i] - '0');
		if (acc > (UINT64_MAX - d) / 10) {
			*what = "number overflows 64 bits";
			return SPH_ERR_TOO_LARGE;
		}
		acc = acc * 10 + d;
	}
	*v = acc;
	return 0;
}

/* Parses one "key=value" token into plan; *seen tracks the once-only keys. */
enum { CHIP_SEEN_POWERCUT = 1, CHIP_SEEN_SEED = 2, CHIP_SEEN_FLIPS = 4 };

static int chip_parse_item(struct chip_tok tok, struct chip_faults *plan, unsigned *seen,
                           const char **what)
{
	const char *eq = memchr(tok.p, '=', tok.len);
	struct chip_tok key, val, offtok, bittok;
	const char *colon;
	uint64_t v, bit;
	int rc;

	*what = "expected key=value";
	if (!eq)
		return SPH_ERR_MALFORMED;
	key.p = tok.p;
	key.len = (size_t)(eq - tok.p);
	val.p = eq + 1;
	val.len = tok.len - key.len - 1;
	if (key.len == 0) {
		*what = "missing key";
		return SPH_ERR_MALFORMED;
	}

	if (chip_tok_is(key, "powercut")) {
		*what = "powercut given twice";
		if (*seen & CHIP_SEEN_POWERCUT)
			return SPH_ERR_DUPLICATE;
		rc = chip_parse_u64(val, &v, what);
		if (rc != 0)
			return rc;
		*what = "powercut counts from 1";
		if (v == 0)
			return SPH_ERR_MALFORMED;
		plan->powercut = v;
		*seen |= CHIP_SEEN_POWERCUT;
		return 0;
	}
	if (chip_tok_is(key, "seed")) {
		*what = "seed given twice";
		if (*seen & CHIP_SEEN_SEED)
			return SPH_ERR_DUPLICATE;
		rc = chip_parse_u64(val, &v, what);
		if (rc != 0)
			return rc;
		plan->seed = v;
		plan->has_seed = true;
		*seen |= CHIP_SEEN_SEED;
		return 0;
	}
	if (chip_tok_is(key, "flips")) {
		*what = "flips given twice";
		if (*seen & CHIP_SEEN_FLIPS)
			return SPH_ERR_DUPLICATE;
		rc = chip_parse_u64(val, &v, what);
		if (rc != 0)
			return rc;
		*what = "flips must be at least 1";
		if (v == 0)
			return SPH_ERR_MALFORMED;
		*what = "flips above 1024";
		if (v > CHIP_FAULTS_MAX_RANDOM)
			return SPH_ERR_TOO_LARGE;
		plan->random_flips = (uint32_t)v;
		*seen |= CHIP_SEEN_FLIPS;
		return 0;
	}
	if (chip_tok_is(key, "flip")) {
		*what = "expected flip=OFFSET:BIT";
		colon = memchr(val.p, ':', val.len);
		if (!colon)
			return SPH_ERR_MALFORMED;
		offtok.p = val.p;
		offtok.len = (size_t)(colon - val.p);
		bittok.p = colon + 1;
		bittok.len = val.len - offtok.len - 1;
		rc = chip_parse_u64(offtok, &v, what);
		if (rc != 0)
			return rc;
		rc = chip_parse_u64(bittok, &bit, what);
		if (rc != 0)
			return rc; /* a second ':' lands here: not a number */
		*what = "bit must be 0..7";
		if (bit > 7)
			return SPH_ERR_TOO_LARGE;
		*what = "more than 64 flip items";
		if (plan->nflips >= CHIP_FAULTS_MAX_FLIPS)
			return SPH_ERR_TOO_LARGE;
		*what = "the same flip twice";
		for (uint32_t i = 0; i < plan->nflips; i++) {
			if (plan->flips[i].offset == v && plan->flips[i].bit == bit)
				return SPH_ERR_DUPLICATE;
		}
		plan->flips[plan->nflips].offset = v;
		plan->flips[plan->nflips].bit = (uint8_t)bit;
		plan->nflips++;
		return 0;
	}
	if (chip_tok_is(key, "lose")) {
		rc = chip_parse_u64(val, &v, what);
		if (rc != 0)
			return rc;
		*what = "block number above 65535";
		if (v >= CHIP_FLASH_MAX_BLOCKS)
			return SPH_ERR_TOO_LARGE;
		*what = "more than 64 lose items";
		if (plan->nlost >= CHIP_FAULTS_MAX_LOST)
			return SPH_ERR_TOO_LARGE;
		*what = "the same block lost twice";
		for (uint32_t i = 0; i < plan->nlost; i++) {
			if (plan->lost[i] == v)
				return SPH_ERR_DUPLICATE;
		}
		plan->lost[plan->nlost++] = (uint32_t)v;
		return 0;
	}
	*what = "unknown key (powercut, seed, flip, flips, lose)";
	return SPH_ERR_MALFORMED;
}

int chip_faults_parse(const char *spec, struct chip_faults *plan, char *err, size_t errcap)
{
	struct chip_tok tok = {NULL, 0};
	const char *what = "";
	size_t len, index = 0;
	unsigned seen = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (err && errcap)
		err[0] = '\0';
	if (plan)
		memset(plan, 0, sizeof(*plan));
	if (!spec || !plan)
		goto out;
	len = strnlen(spec, CHIP_FAULTS_SPEC_MAX + 1);
	rc = SPH_ERR_TOO_LARGE;
	if (len > CHIP_FAULTS_SPEC_MAX) {
		if (err && errcap)
			snprintf(err, errcap, "fault spec: longer than %d characters",
			         CHIP_FAULTS_SPEC_MAX);
		goto out;
	}
	rc = 0;
	if (len == 0)
		goto out; /* the empty plan */
	for (const char *p = spec, *end = spec + len;; index++) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		tok.p = p;
		tok.len = comma ? (size_t)(comma - p) : (size_t)(end - p);
		if (tok.len == 0) {
			rc = SPH_ERR_MALFORMED;
			what = comma ? "empty token" : "empty token (trailing comma)";
			goto out;
		}
		rc = chip_parse_item(tok, plan, &seen, &what);
		if (rc != 0)
			goto out;
		if (!comma)
			break;
		p = comma + 1;
	}
	rc = 0;
out:
	if (rc != 0 && plan) {
		memset(plan, 0, sizeof(*plan));
		if (tok.p)
			chip_spec_error(err, errcap, index, tok, what);
	}
	return rc;
}

/* Appends formatted text at *pos; false when it does not fit. */
static bool chip_append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static bool chip_append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *pos)
		return false;
	*pos += (size_t)n;
	return true;
}

int chip_faults_format(const struct chip_faults *plan, char *buf, size_t cap)
{
	size_t pos = 0;
	const char *sep = "";
	int rc = SPH_ERR_INVALID_ARG;

	if (buf && cap)
		buf[0] = '\0';
	if (!plan || !buf || cap == 0 || plan->nflips > CHIP_FAULTS_MAX_FLIPS ||
	    plan->nlost > CHIP_FAULTS_MAX_LOST || plan->random_flips > CHIP_FAULTS_MAX_RANDOM)
		goto out;
	rc = SPH_ERR_BUFFER_TOO_SMALL;
	if (plan->powercut) {
		if (!chip_append(buf, cap, &pos, "%spowercut=%llu", sep,
		                 (unsigned long long)plan->powercut))
			goto out;
		sep = ",";
	}
	if (plan->has_seed || plan->seed) {
		if (!chip_append(buf, cap, &pos, "%sseed=%llu", sep,
		                 (unsigned long long)plan->seed))
			goto out;
		sep = ",";
	}
	if (plan->random_flips) {
		if (!chip_append(buf, cap, &pos, "%sflips=%u", sep, (unsigned)plan->random_flips))
			goto out;
		sep = ",";
	}
	for (uint32_t i = 0; i < plan->nflips; i++) {
		if (!chip_append(buf, cap, &pos, "%sflip=0x%llx:%u", sep,
		                 (unsigned long long)plan->flips[i].offset,
		                 (unsigned)plan->flips[i].bit))
			goto out;
		sep = ",";
	}
	for (uint32_t i = 0; i < plan->nlost; i++) {
		if (!chip_append(buf, cap, &pos, "%slose=%u", sep, (unsigned)plan->lost[i]))
			goto out;
		sep = ",";
	}
	rc = 0;
out:
	if (rc != 0 && buf && cap)
		buf[0] = '\0';
	return rc;
}

int chip_faults_from_flag_or_env(const char *flag, struct chip_faults *plan, char *err,
                                 size_t errcap)
{
	const char *spec = flag ? flag : secure_getenv(CHIP_FAULTS_ENV);

	return chip_faults_parse(spec ? spec : "", plan, err, errcap);
}

/* ---- applying -------------------------------------------------------------- */

static bool chip_bitpos_seen(const uint64_t *pos, size_t n, uint64_t p)
{
	for (size_t i = 0; i < n; i++) {
		if (pos[i] == p)
			return true;
	}
	return false;
}

int chip_faults_set(struct chip_flash *f, const struct chip_faults *plan)
{
	uint64_t *pos = NULL, bits, state;
	size_t npos = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (!f)
		return rc;
	pthread_mutex_lock(&f->mu);
	if (!plan) {
		f->cut_at = 0;
		rc = 0;
		goto out;
	}
	if (plan->nflips > CHIP_FAULTS_MAX_FLIPS || plan->nlost > CHIP_FAULTS_MAX_LOST ||
	    plan->random_flips > CHIP_FAULTS_MAX_RANDOM)
		goto out;
	/* Check everything before touching the medium. */
	bits = f->size * 8;
	rc = SPH_ERR_NOMEM;
	pos = calloc((size_t)plan->nflips + plan->random_flips + 1, sizeof(*pos));
	if (!pos)
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	for (uint32_t i = 0; i < plan->nflips; i++) {
		const struct chip_flip *fl = &plan->flips[i];
		if (fl->bit > 7 || fl->offset >= f->size) {
			sph_log(SPH_LOG_WARN, "chip", "fault_refused",
			        "flip_offset=%llu bit=%u flash_size=%llu",
			        (unsigned long long)fl->offset, (unsigned)fl->bit,
			        (unsigned long long)f->size);
			goto out;
		}
		if (chip_bitpos_seen(pos, npos, fl->offset * 8 + fl->bit))
			goto out;
		pos[npos++] = fl->offset * 8 + fl->bit;
	}
	for (uint32_t i = 0; i < plan->nlost; i++) {
		if (plan->lost[i] >= f->geo.block_count) {
			sph_log(SPH_LOG_WARN, "chip", "fault_refused", "lose=%u blocks=%u",
			        (unsigned)plan->lost[i], (unsigned)f->geo.block_count);
			goto out;
		}
	}
	/* Random flips: distinct bits, distinct from the given ones, from the seed.
	 * At most 1088 of at least 4096 bits, so the rejection loop ends quickly. */
	state = plan->seed ^ CHIP_STREAM_FLIPS;
	for (uint32_t i = 0; i < plan->random_flips; i++) {
		uint64_t p;
		do {
			p = chip_splitmix64(&state) % bits;
		} while (chip_bitpos_seen(pos, npos, p));
		pos[npos++] = p;
	}

	for (size_t i = 0; i < npos; i++) {
		rc = chip_flash_xor_locked(f, pos[i] / 8, (uint8_t)(1u << (pos[i] % 8)));
		if (rc != 0)
			goto out;
	}
	for (uint32_t i = 0; i < plan->nlost; i++) {
		rc = chip_flash_mark_lost_locked(f, plan->lost[i]);
		if (rc != 0)
			goto out;
	}
	if (plan->powercut && plan->powercut <= UINT64_MAX - f->ops)
		f->cut_at = f->ops + plan->powercut;
	else
		f->cut_at = 0; /* none, or beyond any reachable op */
	f->cut_seed = plan->seed;
	if (npos || plan->nlost || plan->powercut)
		sph_log(SPH_LOG_INFO, "chip", "faults_set", "flips=%zu lost=%u powercut_at=%llu",
		        npos, (unsigned)plan->nlost, (unsigned long long)f->cut_at);
	rc = 0;
out:
	pthread_mutex_unlock(&f->mu);
	free(pos);
	return rc;
}

int chip_faults_last_cut(struct chip_flash *f, struct chip_cut *cut)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (cut)
		memset(cut, 0, sizeof(*cut));
	if (!f || !cut)
		return rc;
	pthread_mutex_lock(&f->mu);
	rc = SPH_ERR_NOT_FOUND;
	if (f->has_cut) {
		*cut = f->last_cut;
		rc = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}
