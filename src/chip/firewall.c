/*
 * chip: the resource firewalls (docs/formats.md §6.4).
 *
 * A table of grants (compartment, resource, R/W/X flags). A check is refused
 * unless grants cover the whole request: for a peripheral a grant on that
 * instance; for a flash or RAM range, for each requested flag, every byte by
 * some grant carrying it (adjoining grants combine). Refusals are counted per
 * compartment. Once locked, the table cannot change until chip_fw_reset (a
 * chip reset); attempts are refused and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "chip_internal.h"

struct chip_fw_rec {
	uint32_t comp;
	struct chip_res res;
	uint32_t access;
};

struct chip_fw {
	pthread_mutex_t mu;
	uint64_t flash_size;
	uint64_t ram_size;
	bool locked;
	size_t n;
	struct chip_fw_rec g[CHIP_FW_MAX_GRANTS];
	uint64_t refused_total;
	uint64_t refused_by_comp[CHIP_COMP_COUNT];
	uint64_t refused_changes;
};

static const char *const chip_res_kind_names[] = {
        [CHIP_RES_GPIO] = "gpio",       [CHIP_RES_UART] = "uart",   [CHIP_RES_I2C] = "i2c",
        [CHIP_RES_SPI] = "spi",         [CHIP_RES_ADC] = "adc",     [CHIP_RES_PWM] = "pwm",
        [CHIP_RES_NETWORK] = "network", [CHIP_RES_FLASH] = "flash", [CHIP_RES_RAM] = "ram",
};

/* Instances of a peripheral kind; 0 for ranges and unknown kinds. */
static uint32_t chip_periph_count(enum chip_res_kind kind)
{
	switch (kind) {
	case CHIP_RES_GPIO:
		return CHIP_GPIO_COUNT;
	case CHIP_RES_UART:
		return CHIP_UART_COUNT;
	case CHIP_RES_I2C:
		return CHIP_I2C_COUNT;
	case CHIP_RES_SPI:
		return CHIP_SPI_COUNT;
	case CHIP_RES_ADC:
		return CHIP_ADC_COUNT;
	case CHIP_RES_PWM:
		return CHIP_PWM_COUNT;
	case CHIP_RES_NETWORK:
		return 1;
	default:
		return 0;
	}
}

static bool chip_res_is_range(const struct chip_res *r)
{
	return r->kind == CHIP_RES_FLASH || r->kind == CHIP_RES_RAM;
}

static bool chip_res_valid(const struct chip_fw *fw, const struct chip_res *r)
{
	uint64_t limit;

	if (chip_res_is_range(r)) {
		limit = r->kind == CHIP_RES_FLASH ? fw->flash_size : fw->ram_size;
		return r->index == 0 && r->start < r->end && r->end <= limit;
	}
	return r->index < chip_periph_count(r->kind) && r->start == 0 && r->end == 0;
}

static bool chip_access_valid(const struct chip_res *r, uint32_t access)
{
	uint32_t allowed = chip_res_is_range(r) ? (CHIP_FW_R | CHIP_FW_W | CHIP_FW_X)
	                                        : (CHIP_FW_R | CHIP_FW_W);
	return access != 0 && (access & ~allowed) == 0;
}

static bool chip_res_equal(const struct chip_res *a, const struct chip_res *b)
{
	return a->kind == b->kind && a->index == b->index && a->start == b->start &&
	       a->end == b->end;
}

int chip_fw_new(uint64_t flash_size, uint64_t ram_size, struct chip_fw **out)
{
	struct chip_fw *fw = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!out)
		goto out;
	rc = SPH_ERR_NOMEM;
	fw = calloc(1, sizeof(*fw));
	if (!fw)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (pthread_mutex_init(&fw->mu, NULL) != 0)
		goto out;
	fw->flash_size = flash_size;
	fw->ram_size = ram_size;
	*out = fw;
	fw = NULL; /* transferred */
	rc = 0;
out:
	free(fw);
	return rc;
}

void chip_fw_free(struct chip_fw *fw)
{
	if (!fw)
		return;
	pthread_mutex_destroy(&fw->mu);
	free(fw);
}

static int chip_fw_change_refused(struct chip_fw *fw, const char *what, uint32_t comp)
{
	fw->refused_changes++;
	sph_log(SPH_LOG_INFO, "chip", "fw_change_refused", "op=%s comp=%u locked=1", what,
	        (unsigned)comp);
	return SPH_ERR_STATE;
}

int chip_fw_grant(struct chip_fw *fw, uint32_t comp, const struct chip_res *res, uint32_t access)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!fw)
		return rc;
	pthread_mutex_lock(&fw->mu);
	if (fw->locked) {
		rc = chip_fw_change_refused(fw, "grant", comp);
		goto out;
	}
	if (comp >= CHIP_COMP_COUNT || !res || !chip_res_valid(fw, res) ||
	    !chip_access_valid(res, access))
		goto out;
	for (size_t i = 0; i < fw->n; i++) {
		if (fw->g[i].comp == comp && chip_res_equal(&fw->g[i].res, res)) {
			fw->g[i].access |= access;
			rc = 0;
			goto out;
		}
	}
	rc = SPH_ERR_EXHAUSTED;
	if (fw->n >= CHIP_FW_MAX_GRANTS)
		goto out;
	fw->g[fw->n].comp = comp;
	fw->g[fw->n].res = *res;
	fw->g[fw->n].access = access;
	fw->n++;
	rc = 0;
out:
	pthread_mutex_unlock(&fw->mu);
	return rc;
}

int chip_fw_revoke(struct chip_fw *fw, uint32_t comp, const struct chip_res *res)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!fw)
		return rc;
	pthread_mutex_lock(&fw->mu);
	if (fw->locked) {
		rc = chip_fw_change_refused(fw, "revoke", comp);
		goto out;
	}
	if (comp >= CHIP_COMP_COUNT || !res)
		goto out;
	rc = SPH_ERR_NOT_FOUND;
	for (size_t i = 0; i < fw->n; i++) {
		if (fw->g[i].comp == comp && chip_res_equal(&fw->g[i].res, res)) {
			memmove(&fw->g[i], &fw->g[i + 1], (fw->n - i - 1) * sizeof(fw->g[0]));
			fw->n--;
			rc = 0;
			break;
		}
	}
out:
	pthread_mutex_unlock(&fw->mu);
	return rc;
}

int chip_fw_lock(struct chip_fw *fw)
{
	if (!fw)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&fw->mu);
	fw->locked = true;
	pthread_mutex_unlock(&fw->mu);
	return 0;
}

bool chip_fw_locked(struct chip_fw *fw)
{
	bool locked;

	if (!fw)
		return false;
	pthread_mutex_lock(&fw->mu);
	locked = fw->locked;
	pthread_mutex_unlock(&fw->mu);
	return locked;
}

/* True when the grants of comp carrying flag cover [start, end) of kind.
 * Each pass jumps to the furthest end of a grant containing pos, so at most
 * n passes are needed. */
static bool chip_range_covered(const struct chip_fw *fw, uint32_t comp, enum chip_res_kind kind,
                               uint64_t start, uint64_t end, uint32_t flag)
{
	uint64_t pos = start;

	while (pos < end) {
		uint64_t next = pos;
		for (size_t i = 0; i < fw->n; i++) {
			const struct chip_fw_rec *g = &fw->g[i];
			if (g->comp == comp && g->res.kind == kind && (g->access & flag) &&
			    g->res.start <= pos && g->res.end > next)
				next = g->res.end;
		}
		if (next == pos)
			return false;
		pos = next;
	}
	return true;
}

static bool chip_periph_granted(const struct chip_fw *fw, uint32_t comp, const struct chip_res *r,
                                uint32_t flag)
{
	for (size_t i = 0; i < fw->n; i++) {
		const struct chip_fw_rec *g = &fw->g[i];
		if (g->comp == comp && g->res.kind == r->kind && g->res.index == r->index &&
		    (g->access & flag))
			return true;
	}
	return false;
}

int chip_fw_check(struct chip_fw *fw, uint32_t comp, const struct chip_res *res, uint32_t access)
{
	char cname[16], rname[64];
	bool allowed = false; /* refuse unless every flag is proven granted */
	int rc = SPH_ERR_INVALID_ARG;

	if (!fw)
		return rc;
	pthread_mutex_lock(&fw->mu);
	if (comp >= CHIP_COMP_COUNT || !res || !chip_res_valid(fw, res) ||
	    !chip_access_valid(res, access)) {
		fw->refused_total++;
		goto out;
	}
	for (uint32_t flag = 1; flag <= CHIP_FW_X; flag <<= 1) {
		bool ok;
		if (!(access & flag))
			continue;
		ok = chip_res_is_range(res)
		             ? chip_range_covered(fw, comp, res->kind, res->start, res->end, flag)
		             : chip_periph_granted(fw, comp, res, flag);
		if (!ok) {
			allowed = false;
			break;
		}
		allowed = true;
	}
	if (allowed) {
		rc = 0;
		goto out;
	}
	rc = SPH_ERR_PERMISSION;
	fw->refused_total++;
	fw->refused_by_comp[comp]++;
	if (sph_log_enabled(SPH_LOG_INFO) && chip_comp_name(comp, cname, sizeof(cname)) == 0 &&
	    chip_res_name(res, rname, sizeof(rname)) == 0)
		sph_log(SPH_LOG_INFO, "chip", "fw_refused", "comp=%s res=%s access=%s%s%s", cname,
		        rname, (access & CHIP_FW_R) ? "r" : "", (access & CHIP_FW_W) ? "w" : "",
		        (access & CHIP_FW_X) ? "x" : "");
out:
	pthread_mutex_unlock(&fw->mu);
	return rc;
}

uint64_t chip_fw_refusals(struct chip_fw *fw, uint32_t comp)
{
	uint64_t n = 0;

	if (!fw || comp >= CHIP_COMP_COUNT)
		return 0;
	pthread_mutex_lock(&fw->mu);
	n = fw->refused_by_comp[comp];
	pthread_mutex_unlock(&fw->mu);
	return n;
}

int chip_fw_stats(struct chip_fw *fw, struct chip_fw_stats *st)
{
	if (st)
		memset(st, 0, sizeof(*st));
	if (!fw || !st)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&fw->mu);
	st->locked = fw->locked;
	st->grants = fw->n;
	st->refused_total = fw->refused_total;
	memcpy(st->refused_by_comp, fw->refused_by_comp, sizeof(st->refused_by_comp));
	st->refused_changes = fw->refused_changes;
	pthread_mutex_unlock(&fw->mu);
	return 0;
}

int chip_fw_grant_at(struct chip_fw *fw, size_t i, uint32_t *comp, struct chip_res *res,
                     uint32_t *access)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (comp)
		*comp = 0;
	if (res)
		memset(res, 0, sizeof(*res));
	if (access)
		*access = 0;
	if (!fw || !comp || !res || !access)
		return rc;
	pthread_mutex_lock(&fw->mu);
	rc = SPH_ERR_NOT_FOUND;
	if (i < fw->n) {
		*comp = fw->g[i].comp;
		*res = fw->g[i].res;
		*access = fw->g[i].access;
		rc = 0;
	}
	pthread_mutex_unlock(&fw->mu);
	return rc;
}

void chip_fw_reset(struct chip_fw *fw)
{
	if (!fw)
		return;
	pthread_mutex_lock(&fw->mu);
	fw->locked = false;
	fw->n = 0;
	memset(fw->g, 0, sizeof(fw->g));
	pthread_mutex_unlock(&fw->mu);
}

int chip_comp_name(uint32_t comp, char *buf, size_t cap)
{
	int n;

	if (!buf || cap == 0)
		return SPH_ERR_INVALID_ARG;
	buf[0] = '\0';
	if (comp == CHIP_COMP_BOOTLOADER)
		n = snprintf(buf, cap, "bootloader");
	else if (comp == CHIP_COMP_SECMON)
		n = snprintf(buf, cap, "secmon");
	else if (comp == CHIP_COMP_OS)
		n = snprintf(buf, cap, "os");
	else if (comp >= CHIP_COMP_APP0 && comp < CHIP_COMP_RTCORE0)
		n = snprintf(buf, cap, "app%u", (unsigned)(comp - CHIP_COMP_APP0));
	else if (comp >= CHIP_COMP_RTCORE0 && comp < CHIP_COMP_COUNT)
		n = snprintf(buf, cap, "rtcore%u", (unsigned)(comp - CHIP_COMP_RTCORE0));
	else
		return SPH_ERR_INVALID_ARG;
	if (n < 0 || (size_t)n >= cap) {
		buf[0] = '\0';
		return SPH_ERR_BUFFER_TOO_SMALL;
	}
	return 0;
}

int chip_res_name(const struct chip_res *res, char *buf, size_t cap)
{
	const char *kind;
	int n;

	if (!buf || cap == 0)
		return SPH_ERR_INVALID_ARG;
	buf[0] = '\0';
	if (!res || (unsigned)res->kind == 0 ||
	    (size_t)res->kind >= sizeof(chip_res_kind_names) / sizeof(chip_res_kind_names[0]))
		return SPH_ERR_INVALID_ARG;
	kind = chip_res_kind_names[res->kind];
	if (chip_res_is_range(res))
		n = snprintf(buf, cap, "%s[0x%llx,0x%llx)", kind, (unsigned long long)res->start,
		             (unsigned long long)res->end);
	else if (res->kind == CHIP_RES_NETWORK)
		n = snprintf(buf, cap, "%s", kind);
	else
		n = snprintf(buf, cap, "%s%u", kind, (unsigned)res->index);
	if (n < 0 || (size_t)n >= cap) {
		buf[0] = '\0';
		return SPH_ERR_BUFFER_TOO_SMALL;
	}
	return 0;
}
