/*
 * chip: the device directory, chip reset, RAM state and firewalled flash
 * access (docs/formats.md §6.1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "chip_internal.h"

/* What a chip reset clears. */
struct chip_ram {
	enum chip_reset_reason reset_reason;
	size_t log_count;
	uint32_t log_dropped;
	struct chip_bootlog_entry log[CHIP_BOOTLOG_MAX];
};

struct chip {
	pthread_mutex_t mu; /* RAM state */
	char *dir;
	char *otp_path;
	struct chip_flash *flash;
	struct chip_fw *fw;
	struct chip_ram ram;
	uint64_t resets;
	int (*reset_hook)(void *arg); /* the RoT's reset line (chip_on_reset) */
	void *reset_arg;
};

static char *chip_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + 1 + b + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static bool chip_geometry_zero(const struct chip_flash_geometry *g)
{
	return g->block_size == 0 && g->block_count == 0;
}

/* Makes sure dir is a directory, creating it (0700) when allowed. */
static int chip_ensure_dir(const char *dir, bool create)
{
	struct stat st;

	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : SPH_ERR_INVALID_ARG;
	if (errno != ENOENT)
		return SPH_ERR_IO;
	if (!create)
		return SPH_ERR_NOT_FOUND;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return SPH_ERR_IO;
	return 0;
}

/* Opens <dir>/flash.bin per cfg (see chip_open). */
static int chip_open_flash(const char *path, const struct chip_config *cfg, struct chip_flash **out)
{
	static const struct chip_flash_geometry defaults = {CHIP_FLASH_DEFAULT_BLOCK_SIZE,
	                                                    CHIP_FLASH_DEFAULT_BLOCK_COUNT};
	const struct chip_flash_geometry *g = NULL;
	int rc;

	if (cfg && !chip_geometry_zero(&cfg->geometry))
		g = &cfg->geometry;
	if (!cfg || !cfg->create || g)
		return chip_flash_open(path, g, out);
	/* Creating with no geometry given: whatever exists, else the defaults. */
	rc = chip_flash_open(path, NULL, out);
	if (rc == SPH_ERR_NOT_FOUND)
		rc = chip_flash_open(path, &defaults, out);
	return rc;
}

int chip_open(const char *dir, const struct chip_config *cfg, struct chip **out)
{
	struct chip *c = NULL;
	char *flash_path = NULL;
	bool mu_init = false;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!dir || !*dir || !out)
		goto out;
	if (cfg && cfg->geometry.block_size == 0 && cfg->geometry.block_count != 0)
		goto out;
	rc = chip_ensure_dir(dir, cfg && cfg->create);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->dir = strdup(dir);
	c->otp_path = chip_join(dir, CHIP_OTP_FILE);
	flash_path = chip_join(dir, CHIP_FLASH_FILE);
	if (!c->dir || !c->otp_path || !flash_path)
		goto out;
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		goto out;
	mu_init = true;
	rc = chip_open_flash(flash_path, cfg, &c->flash);
	if (rc != 0)
		goto out;
	rc = chip_fw_new(chip_flash_size(c->flash), CHIP_RAM_SIZE, &c->fw);
	if (rc != 0)
		goto out;
	if (cfg && cfg->faults) {
		rc = chip_faults_set(c->flash, cfg->faults);
		if (rc != 0)
			goto out;
	}
	c->ram.reset_reason = CHIP_RESET_POWER_ON;
	*out = c;
	c = NULL; /* transferred */
	rc = 0;
out:
	if (c) {
		chip_fw_free(c->fw);
		chip_flash_close(c->flash);
		if (mu_init)
			pthread_mutex_destroy(&c->mu);
		free(c->dir);
		free(c->otp_path);
		free(c);
	}
	free(flash_path);
	return rc;
}

void chip_close(struct chip *c)
{
	if (!c)
		return;
	chip_fw_free(c->fw);
	chip_flash_close(c->flash);
	pthread_mutex_destroy(&c->mu);
	free(c->dir);
	free(c->otp_path);
	free(c);
}

int chip_on_reset(struct chip *c, int (*fn)(void *arg), void *arg)
{
	if (!c)
		return SPH_ERR_INVALID_ARG;
	if (fn && c->reset_hook)
		return SPH_ERR_STATE;
	c->reset_hook = fn;
	c->reset_arg = fn ? arg : NULL;
	return 0;
}

int chip_reset(struct chip *c, enum chip_reset_reason reason)
{
	if (!c || (unsigned)reason > CHIP_RESET_POWER_LOSS)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&c->mu);
	memset(&c->ram, 0, sizeof(c->ram));
	c->ram.reset_reason = reason;
	c->resets++;
	pthread_mutex_unlock(&c->mu);
	chip_fw_reset(c->fw);
	chip_flash_power_cycle(c->flash);
	sph_log(SPH_LOG_DEBUG, "chip", "reset", "reason=%d", (int)reason);
	return c->reset_hook ? c->reset_hook(c->reset_arg) : 0;
}

const char *chip_dir(const struct chip *c)
{
	return c ? c->dir : NULL;
}

const char *chip_otp_path(const struct chip *c)
{
	return c ? c->otp_path : NULL;
}

struct chip_flash *chip_flash(struct chip *c)
{
	return c ? c->flash : NULL;
}

struct chip_fw *chip_fw(struct chip *c)
{
	return c ? c->fw : NULL;
}

/* Checks comp's access to [off, off+len) of flash. Out-of-bounds ranges are
 * left to the flash (SPH_ERR_INVALID_ARG), not counted as refusals. */
static int chip_flash_allowed(struct chip *c, uint32_t comp, uint64_t off, uint64_t len,
                              uint32_t access)
{
	uint64_t size = chip_flash_size(c->flash);
	struct chip_res r;

	if (off > size || len > size - off)
		return SPH_ERR_INVALID_ARG;
	r = chip_res_region(CHIP_RES_FLASH, off, off + len);
	return chip_fw_check(c->fw, comp, &r, access);
}

int chip_read(struct chip *c, uint32_t comp, uint64_t off, void *buf, size_t len)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!c || (!buf && len))
		goto out;
	rc = 0;
	if (len == 0)
		goto out;
	rc = chip_flash_allowed(c, comp, off, len, CHIP_FW_R);
	if (rc != 0)
		goto out;
	rc = chip_flash_read(c->flash, off, buf, len);
out:
	if (rc != 0 && buf && len)
		memset(buf, 0, len);
	return rc;
}

int chip_prefetch(struct chip *c, uint32_t comp, uint64_t off, size_t len)
{
	int rc;

	if (!c)
		return SPH_ERR_INVALID_ARG;
	if (len == 0)
		return 0;
	rc = chip_flash_allowed(c, comp, off, len, CHIP_FW_R);
	return rc ? rc : chip_flash_prefetch(c->flash, off, len);
}

int chip_program(struct chip *c, uint32_t comp, uint64_t off, const void *data, size_t len)
{
	int rc;

	if (!c || (!data && len))
		return SPH_ERR_INVALID_ARG;
	if (len == 0)
		return 0;
	rc = chip_flash_allowed(c, comp, off, len, CHIP_FW_W);
	if (rc != 0)
		return rc;
	return chip_flash_program(c->flash, off, data, len);
}

int chip_erase(struct chip *c, uint32_t comp, uint32_t block)
{
	struct chip_flash_geometry g;
	int rc;

	if (!c)
		return SPH_ERR_INVALID_ARG;
	rc = chip_flash_geometry(c->flash, &g);
	if (rc != 0)
		return rc;
	if (block >= g.block_count)
		return SPH_ERR_INVALID_ARG;
	rc = chip_flash_allowed(c, comp, (uint64_t)block * g.block_size, g.block_size, CHIP_FW_W);
	if (rc != 0)
		return rc;
	return chip_flash_erase(c->flash, block);
}

int chip_bootlog_add(struct chip *c, uint32_t comp, int32_t status, const char *event)
{
	size_t len;
	int rc = SPH_ERR_INVALID_ARG;

	if (!c || !event || comp >= CHIP_COMP_COUNT || status > 0)
		return rc;
	len = strnlen(event, CHIP_BOOTLOG_EVENT_MAX);
	if (len == 0)
		return rc;
	if (len >= CHIP_BOOTLOG_EVENT_MAX)
		return SPH_ERR_TOO_LARGE;
	for (size_t i = 0; i < len; i++) {
		if (event[i] < 0x20 || event[i] > 0x7e)
			return rc;
	}
	pthread_mutex_lock(&c->mu);
	if (c->ram.log_count >= CHIP_BOOTLOG_MAX) {
		c->ram.log_dropped++;
		rc = SPH_ERR_EXHAUSTED;
	} else {
		struct chip_bootlog_entry *e = &c->ram.log[c->ram.log_count++];
		memset(e, 0, sizeof(*e));
		e->comp = comp;
		e->status = status;
		memcpy(e->event, event, len);
		rc = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int chip_bootlog_get(struct chip *c, size_t i, struct chip_bootlog_entry *e)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (e)
		memset(e, 0, sizeof(*e));
	if (!c || !e)
		return rc;
	pthread_mutex_lock(&c->mu);
	rc = SPH_ERR_NOT_FOUND;
	if (i < c->ram.log_count) {
		*e = c->ram.log[i];
		rc = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int chip_ram_info(struct chip *c, struct chip_ram_info *info)
{
	if (info)
		memset(info, 0, sizeof(*info));
	if (!c || !info)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&c->mu);
	info->reset_reason = c->ram.reset_reason;
	info->resets = c->resets;
	info->log_count = c->ram.log_count;
	info->log_dropped = c->ram.log_dropped;
	pthread_mutex_unlock(&c->mu);
	return 0;
}
