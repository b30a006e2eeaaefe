/*
 * agent_update: resumable downloads of the updates a check-in asks for, and
 * the update cycle (agent.h agent_run_once; docs/agent.md "Check-in and
 * updates").
 *
 * A download goes to <device dir>/agent-downloads/<image id>.pkg. It resumes
 * from the bytes already there with "Range: bytes=N-"; a 206 must start at N
 * and name the size the check-in promised, a 200 starts the file over, a 416
 * means the file already holds every byte (or more: start over). The package
 * is used only once its size and SHA-256 match the check-in's; then
 * boot_install verifies its signature, type and security version before it
 * reaches the inactive slot.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agent/agent_internal.h"
#include "boot/boot.h"
#include "common/common.h"

#define AGENT_PATH_MAX 4096

_Static_assert(AGENT_DOWNLOAD_MAX == BOOT_SLOT_SIZE, "a download is one slot's package at most");
_Static_assert(AGENT_VERSION_MAX == IMG_VERSION_MAX, "versions as the manifest bounds them");

/* ---- downloads ---------------------------------------------------------------------- */

static int agent_dl_path(struct boot_device *d, const struct agent_update *u, char *path,
                         size_t cap)
{
	const char *dir = chip_dir(boot_chip(d));
	int n;

	if (!dir)
		return SPH_ERR_INVALID_ARG;
	n = snprintf(path, cap, "%s/%s", dir, AGENT_DOWNLOAD_DIR);
	if (n <= 0 || (size_t)n >= cap)
		return SPH_ERR_TOO_LARGE;
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return SPH_ERR_IO;
	n = snprintf(path, cap, "%s/%s/%s.pkg", dir, AGENT_DOWNLOAD_DIR, u->image_id);
	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

/* The size of the open file f (its position moves to the end). */
static int agent_file_size(FILE *f, uint64_t *size)
{
	long n;

	if (fflush(f) != 0 || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
		return SPH_ERR_IO;
	*size = (uint64_t)n;
	return 0;
}

static int agent_file_reset(FILE *f)
{
	if (fflush(f) != 0 || ftruncate(fileno(f), 0) != 0 || fseek(f, 0, SEEK_SET) != 0)
		return SPH_ERR_IO;
	return 0;
}

/* Reads f (size bytes) and checks its digest. Returns 0 with *pkg, or
 * SPH_ERR_CORRUPT, SPH_ERR_IO, SPH_ERR_NOMEM. */
static int agent_dl_verify(FILE *f, const struct agent_update *u, uint8_t **pkg, size_t *len)
{
	uint8_t md[32], *buf = NULL;
	uint64_t size = 0;
	unsigned mdlen = 0;
	int rc;

	*pkg = NULL;
	*len = 0;
	if ((rc = agent_file_size(f, &size)) != 0)
		goto out;
	rc = SPH_ERR_CORRUPT;
	if (size != u->size)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(buf = malloc((size_t)size)))
		goto out;
	rc = SPH_ERR_IO;
	if (fseek(f, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)size, f) != (size_t)size)
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (EVP_Digest(buf, (size_t)size, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		goto out;
	rc = SPH_ERR_CORRUPT;
	if (CRYPTO_memcmp(md, u->sha256, sizeof(md)) != 0)
		goto out;
	*pkg = buf;
	*len = (size_t)size;
	buf = NULL; /* transferred */
	rc = 0;
out:
	free(buf);
	return rc;
}

/* One transfer into f from its current size. Returns 0 when f should now be
 * complete, or a status; *again is set when another try may help. */
static int agent_dl_transfer(struct agent_conn *conn, const struct agent_config *cfg,
                             const struct agent_update *u, FILE *f, struct agent_dl_stats *st,
                             long *status, struct agent_error *err)
{
	struct agent_buf eb = {.max = 4096};
	int64_t start = -1, total = -1;
	uint64_t have = 0, got = 0;
	int rc;

	*status = 0;
	if ((rc = agent_file_size(f, &have)) != 0)
		goto out;
	if (have > u->size) {
		if ((rc = agent_file_reset(f)) != 0)
			goto out;
		have = 0;
	}
	if (st->transfers == 0)
		st->resumed_from = have;
	if (have == u->size)
		goto out; /* complete already (an interrupted install, say) */
	st->transfers++;
	if (have > 0)
		st->resumes++;
	rc = agent_get_range(conn, u->url, have, u->size, f, status, &start, &total, &got, &eb, u,
	                     cfg->progress, cfg->progress_ctx);
	st->fetched += got;
	if (rc == SPH_ERR_TRANSPORT || rc == SPH_ERR_STATE) {
		agent_err_set(err, "download %s: %s after %llu bytes", u->image_id,
		              rc == SPH_ERR_STATE ? "cancelled" : "the transfer broke",
		              (unsigned long long)got);
		goto out;
	}
	if (rc == SPH_ERR_TOO_LARGE) {
		rc = SPH_ERR_CORRUPT; /* longer than the check-in said */
		agent_err_set(err, "download %s: more than %llu bytes", u->image_id,
		              (unsigned long long)u->size);
		goto out;
	}
	if (rc)
		goto out;
	if (*status == 206) {
		rc = SPH_ERR_MALFORMED;
		if (start != (int64_t)have || total != (int64_t)u->size) {
			agent_err_set(err, "download %s: a 206 for another range or size",
			              u->image_id);
			(void)agent_file_reset(f);
			goto out;
		}
		rc = 0;
	} else if (*status == 416) {
		/* nothing after `have`: whole only if the service says so */
		rc = 0;
		if (total != (int64_t)u->size || have != u->size) {
			rc = SPH_ERR_CORRUPT;
			agent_err_set(err, "download %s: the service holds %lld bytes, not %llu",
			              u->image_id, (long long)total, (unsigned long long)u->size);
			(void)agent_file_reset(f);
		}
	} else if (*status != 200) {
		rc = agent_refusal(*status, eb.data, eb.len, "download", err);
	}
out:
	agent_buf_free(&eb);
	return rc;
}

int agent_download(struct boot_device *d, const struct agent_config *cfg,
                   const struct agent_update *u, uint8_t **pkg, size_t *len,
                   struct agent_dl_stats *st, struct agent_error *err)
{
	struct agent_dl_stats local;
	struct agent_retry policy;
	struct agent_conn conn;
	char path[AGENT_PATH_MAX];
	FILE *f = NULL;
	long status = 0;
	unsigned n = 0;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&conn, 0, sizeof(conn));
	if (pkg)
		*pkg = NULL;
	if (len)
		*len = 0;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (err)
		memset(err, 0, sizeof(*err));
	if (!d || !cfg || !u || !pkg || !len || u->size == 0 || u->size > AGENT_DOWNLOAD_MAX)
		goto out;
	if ((rc = agent_dl_path(d, u, path, sizeof(path))) != 0)
		goto out;
	rc = SPH_ERR_IO;
	if (!(f = fopen(path, "ab+")))
		goto out;
	agent_retry_policy(cfg, &policy);
	if ((rc = agent_conn_open(d, cfg, &conn)) != 0) {
		agent_err_set(err, "the TLS key: %s", sph_strerror(rc));
		goto out;
	}
	for (;;) {
		uint64_t before = st->fetched, size = 0;

		rc = agent_dl_transfer(&conn, cfg, u, f, st, &status, err);
		/* a reply may carry less than asked (a short 206): while each one
		 * brings bytes, ask for the rest; that is bounded by u->size */
		if (rc == 0 && st->fetched > before && (rc = agent_file_size(f, &size)) == 0 &&
		    size < u->size)
			continue;
		n++;
		if (err) {
			err->attempts = n;
			if (!err->http_status)
				err->http_status = status;
		}
		if (rc == 0 || !agent_transient(rc, status) || n >= policy.attempts)
			break;
		sph_log(SPH_LOG_INFO, "agent", "download_retry", "image=%s attempt=%u status=%ld",
		        u->image_id, n, status);
		agent_backoff_sleep(&policy, n);
		if (err)
			memset(err, 0, sizeof(*err));
	}
	if (rc)
		goto out;
	rc = agent_dl_verify(f, u, pkg, len);
	if (rc == SPH_ERR_CORRUPT) {
		agent_err_set(err, "download %s: the size or SHA-256 is not the check-in's",
		              u->image_id);
		sph_log(SPH_LOG_WARN, "agent", "download_refused", "image=%s reason=digest",
		        u->image_id);
	}
out:
	if (f)
		fclose(f);
	/* a package that does not verify is not kept (nor resumed from) */
	if (rc == SPH_ERR_CORRUPT || rc == SPH_ERR_MALFORMED)
		(void)unlink(path);
	agent_conn_close(&conn);
	return rc;
}

/* ---- the cycle -------------------------------------------------------------------------- */

static void agent_report(struct boot_device *d, const char *kind, const char *component, int code,
                         const char *text)
{
	struct agent_failure f = {
	        .kind = kind, .component = component, .has_code = true, .code = code, .text = text};
	char clean[AGENT_FAILURE_TEXT + 1];
	size_t i = 0;
	int rc;

	for (; text && text[i] && i < AGENT_FAILURE_TEXT; i++)
		clean[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
	clean[i] = '\0';
	f.text = clean;
	rc = agent_failure_queue(chip_dir(boot_chip(d)), &f);
	if (rc)
		sph_log(SPH_LOG_WARN, "agent", "failure_queue", "kind=%s rc=%d", kind, rc);
}

/* The boot component an update's type names; -1 for an application. */
static int agent_comp(const char *type)
{
	if (strcmp(type, "BL") == 0)
		return BOOT_BL;
	if (strcmp(type, "SECMON") == 0)
		return BOOT_SECMON;
	if (strcmp(type, "OS") == 0)
		return BOOT_OS;
	return -1;
}

static void agent_count_dl(struct agent_cycle *cycle, const struct agent_dl_stats *st)
{
	cycle->fetched += st->fetched;
	cycle->transfers += st->transfers;
	cycle->resumes += st->resumes;
}

/* Downloads and verifies u into *pkg (NULL when only_fetch: the file stays
 * for the install), once more whole if a resumed file does not verify. */
static int agent_fetch_one(struct boot_device *d, const struct agent_config *cfg,
                           const struct agent_update *u, bool only_fetch, uint8_t **pkg,
                           size_t *len, struct agent_cycle *cycle, struct agent_error *err)
{
	struct agent_dl_stats st;
	int rc;

	rc = agent_download(d, cfg, u, pkg, len, &st, err);
	agent_count_dl(cycle, &st);
	if (rc == SPH_ERR_CORRUPT && st.resumed_from > 0) {
		/* the bytes kept from before may be what was damaged: once more, whole */
		sph_log(SPH_LOG_INFO, "agent", "download_restart", "image=%s", u->image_id);
		rc = agent_download(d, cfg, u, pkg, len, &st, err);
		agent_count_dl(cycle, &st);
	}
	if (rc == SPH_ERR_CORRUPT)
		agent_report(d, "refused-image", u->component_id, rc,
		             "the download does not match the check-in's size and SHA-256");
	if (rc == 0 && only_fetch) {
		free(*pkg);
		*pkg = NULL;
		*len = 0;
	}
	return rc;
}

/* Downloads, verifies and installs u (a trial in its inactive slot). */
static int agent_install_one(struct boot_device *d, const struct agent_config *cfg,
                             const struct agent_update *u, struct agent_cycle *cycle,
                             struct agent_error *err)
{
	char path[AGENT_PATH_MAX], why[BOOT_REASON_MAX] = "";
	uint8_t *pkg = NULL;
	size_t len = 0;
	int comp = agent_comp(u->type), rc;

	if ((rc = agent_fetch_one(d, cfg, u, false, &pkg, &len, cycle, err)) != 0)
		goto out;
	rc = boot_install(d, (unsigned)comp, pkg, len, why, sizeof(why));
	if (rc) {
		agent_err_set(err, "install %s %s: %s%s%s", u->type, u->version, sph_strerror(rc),
		              why[0] ? ": " : "", why);
		agent_report(d, "refused-image", u->component_id, rc, err ? err->reason : why);
		if (agent_dl_path(d, u, path, sizeof(path)) == 0)
			(void)unlink(path); /* refused for good: not kept */
		goto out;
	}
	if (agent_dl_path(d, u, path, sizeof(path)) == 0)
		(void)unlink(path);
	sph_log(SPH_LOG_INFO, "agent", "installed", "type=%s version=%s image=%s", u->type,
	        u->version, u->image_id);
out:
	free(pkg);
	return rc;
}

static int64_t agent_now(const struct agent_config *cfg)
{
	return cfg->clock ? cfg->clock(cfg->clock_ctx) : (int64_t)time(NULL);
}

/* Installs every update of res, boots the trials and confirms them; outside
 * res's update window only downloads them (cycle->deferred). */
static void agent_note(const struct agent_config *cfg, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void agent_note(const struct agent_config *cfg, const char *fmt, ...)
{
	char line[AGENT_REASON_MAX];
	va_list ap;

	if (!cfg->note)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cfg->note(cfg->note_ctx, line);
}

static int agent_apply(struct boot_device *d, const struct agent_config *cfg,
                       const struct agent_checkin_result *res, struct agent_cycle *cycle,
                       struct agent_error *err)
{
	int64_t wait = 0;
	struct boot_report rep;
	bool trial[BOOT_COMPONENTS] = {false};
	const struct agent_update *want[BOOT_COMPONENTS] = {NULL};
	int rc = SPH_ERR_UNSUPPORTED;

	/* every update must be installable before any is touched */
	for (size_t i = 0; i < res->n_updates; i++) {
		int comp = agent_comp(res->updates[i].type);
		if (comp < 0) {
			agent_err_set(err, "update %s: %s images cannot be installed by this agent",
			              res->updates[i].image_id, res->updates[i].type);
			goto out;
		}
		rc = SPH_ERR_MALFORMED;
		if (want[comp]) {
			agent_err_set(err, "two updates for %s", res->updates[i].type);
			goto out;
		}
		want[comp] = &res->updates[i];
		rc = SPH_ERR_UNSUPPORTED;
	}
	if (res->has_window &&
	    (wait = agent_window_wait(res->window_start, res->window_end, agent_now(cfg))) > 0) {
		/* download any time; install only inside the window */
		for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
			uint8_t *pkg = NULL;
			size_t len = 0;
			if (want[c] && (rc = agent_fetch_one(d, cfg, want[c], true, &pkg, &len,
			                                     cycle, err)) != 0)
				goto out;
		}
		cycle->deferred = true;
		cycle->window_wait = wait;
		sph_log(SPH_LOG_INFO, "agent", "install_deferred", "window_opens_in=%lld",
		        (long long)wait);
		rc = 0;
		goto out;
	}
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++) {
		if (!want[c])
			continue;
		if ((rc = agent_install_one(d, cfg, want[c], cycle, err)) != 0)
			goto out;
		trial[c] = true;
		cycle->installed++;
		agent_note(cfg, "verified and installed %s %s in the inactive slot, as a trial",
		           want[c]->type, want[c]->version);
	}
	agent_note(cfg, "rebooting into the trial");
	/* the reset into the trials */
	rc = boot_run(d, CHIP_RESET_SOFTWARE, &rep);
	if (rc == 0 && rep.result != BOOT_RESULT_BOOTED)
		rc = SPH_ERR_STATE;
	for (unsigned c = 0; rc == 0 && c < BOOT_COMPONENTS; c++) {
		if (trial[c] && (!rep.stage[c].booted || !rep.stage[c].was_trial ||
		                 strcmp(rep.stage[c].measured.version, want[c]->version) != 0)) {
			rc = SPH_ERR_STATE;
			agent_err_set(err, "the trial of %s %s did not boot: %s", want[c]->type,
			              want[c]->version,
			              rep.stage[c].reason[0] ? rep.stage[c].reason
			                                     : "another slot ran");
			agent_report(d, "failed-boot", want[c]->component_id, rc,
			             err ? err->reason : "");
		}
	}
	if (rc) {
		if (err && !err->reason[0])
			agent_err_set(err, "the trial boot failed: %s", sph_strerror(rc));
		goto out;
	}
	rc = boot_confirm(d);
	if (rc < 0) {
		agent_err_set(err, "boot_confirm: %s", sph_strerror(rc));
		goto out;
	}
	cycle->confirmed += (unsigned)rc;
	agent_note(cfg, "the trial booted (verified, measured): confirmed, anti-rollback counters "
	                "raised");
	rc = 0;
out:
	return rc;
}

int agent_cycle_run(struct boot_device *d, const struct agent_config *cfg,
                    struct agent_checkin_result *res, struct agent_cycle *cycle,
                    struct agent_error *err)
{
	unsigned rounds = cfg->max_rounds ? cfg->max_rounds : AGENT_ROUNDS_DEFAULT;
	int rc;

	for (unsigned round = 1;; round++) {
		rc = agent_checkin(d, cfg, res, err);
		cycle->rounds++;
		if (rc == 0 && res->status == AGENT_STATUS_UPDATE_REQUIRED) {
			char list[AGENT_REASON_MAX] = "";
			size_t k = 0;
			for (size_t i = 0; i < res->n_updates && k < sizeof(list); i++)
				k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%s %s",
				                      i ? ", " : "", res->updates[i].type,
				                      res->updates[i].version);
			agent_note(cfg, "check-in %u: no certificate; update required: %s", round,
			           list);
		} else if (rc == 0) {
			agent_note(cfg, "check-in %u: up to date: certificate issued", round);
		}
		if (rc || res->status == AGENT_STATUS_UP_TO_DATE)
			goto out;
		if (round >= rounds) {
			rc = SPH_ERR_EXHAUSTED;
			agent_err_set(err, "still not up to date after %u check-ins", round);
			goto out;
		}
		rc = agent_apply(d, cfg, res, cycle, err);
		if (rc == 0 && cycle->deferred)
			goto out; /* res keeps the updates and their window */
		agent_checkin_result_free(res);
		if (rc)
			goto out;
	}
out:
	if (rc)
		agent_checkin_result_free(res);
	return rc;
}

int agent_boot(struct boot_device *d, enum chip_reset_reason why, struct agent_error *err)
{
	struct boot_report rep;
	int rc = boot_run(d, why, &rep);

	if (rc == 0 && rep.result != BOOT_RESULT_BOOTED)
		rc = SPH_ERR_STATE;
	if (rc) {
		agent_err_set(err, "boot: %s", sph_strerror(rc));
		agent_report(d, "failed-boot", NULL, rc, "the device did not boot");
	}
	return rc;
}

int agent_run_once(struct boot_device *d, const struct agent_config *cfg,
                   struct agent_checkin_result *res, struct agent_cycle *cycle,
                   struct agent_error *err)
{
	struct agent_cycle local;
	int rc = SPH_ERR_INVALID_ARG;

	if (res)
		memset(res, 0, sizeof(*res));
	if (err)
		memset(err, 0, sizeof(*err));
	if (!cycle)
		cycle = &local;
	memset(cycle, 0, sizeof(*cycle));
	if (!d || !cfg || !res)
		goto out;
	if ((rc = agent_boot(d, CHIP_RESET_SOFTWARE, err)) != 0)
		goto out;
	rc = agent_cycle_run(d, cfg, res, cycle, err);
out:
	if (rc && res)
		agent_checkin_result_free(res);
	return rc;
}
