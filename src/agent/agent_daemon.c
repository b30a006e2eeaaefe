/*
 * agent_daemon: the device agent as a long-running process (agent.h
 * agent_daemon_run; docs/agent.md "The daemon").
 *
 * One thread, one loop. After the boot, a cycle (agent_cycle_run) brings the
 * device up to date and fetches its certificate, which is kept in the device
 * directory. Then the loop waits for the first of:
 *  - the notification channel: POST /v1/checkin/wait?timeout=S, a long-poll
 *    over the device's mTLS, answered {"check": true, "reason"} when the
 *    device should check in now, {"check": false} at the timeout; errors
 *    back off with jitter, a 404 (a service without the route) turns the
 *    channel off for good: the period alone is left;
 *  - the period (monotonic clock);
 *  - the certificate reaching AGENT_RENEW_PERCENT of its lifetime, or having
 *    expired (the corrected clock: the device's plus an offset learnt from a
 *    VERIFIED signed time when the device's clock is unset or off by more
 *    than AGENT_CLOCK_SKEW_S);
 *  - an update window opening (updates were downloaded, not installed);
 *  - a local request (development devices, agent_local.c);
 *  - after a failed cycle, the next retry (backoff with equal jitter, at
 *    most the period).
 * Waiting is interruptible: the long-poll's progress function and the sleep
 * slices watch the stop flag, the local socket and the clock-based
 * deadlines. A stop during a download cancels it (the bytes stay for the
 * resume); installs, the trial boot and the confirm always finish.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent_internal.h"
#include "boot/boot.h"
#include "common/common.h"
#include "image/image.h"

#define AGENT_PATH_MAX   4096
#define AGENT_SLICE_MS   250  /* a sleep re-checks its conditions this often */
#define AGENT_WAIT_SLACK 15L  /* seconds the long-poll may take beyond timeout= */
#define AGENT_WAIT_REPLY 1024 /* bytes of a wait reply, at most */
#define AGENT_TEXT_MAX   320

enum agent_why {
	AGENT_WHY_BOOT,
	AGENT_WHY_RETRY,
	AGENT_WHY_PERIOD,
	AGENT_WHY_RENEW,
	AGENT_WHY_EXPIRED,
	AGENT_WHY_WINDOW,
	AGENT_WHY_WOKEN,
	AGENT_WHY_LOCAL,
};

struct agent_daemon {
	struct boot_device *d;
	const struct agent_daemon_config *cfg;
	struct agent_config acfg; /* cfg->agent with our clock and progress */
	struct agent_retry policy;
	struct agent_daemon_status st;
	const char *dir;
	unsigned period_s, wait_s;
	int listen_fd;
	unsigned pokes; /* local requests not yet acted on */
	struct agent_conn chan;
	bool chan_open;
	unsigned chan_fails;
	double chan_retry_at; /* monotonic */
	double next_period;   /* monotonic */
	double retry_at;      /* monotonic; 0: the last cycle did not fail */
	double renew_hold;    /* monotonic: no renewal before (a cert already past 80%) */
	unsigned past_renew;  /* certificates in a row that came already past 80% */
	int64_t window_at;    /* corrected clock; 0: no window pending */
};

/* ---- clocks ----------------------------------------------------------------------- */

static double agent_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t agent_device_clock(const struct agent_daemon *ds)
{
	const struct agent_config *a = &ds->cfg->agent;

	return a->clock ? a->clock(a->clock_ctx) : (int64_t)time(NULL);
}

/* The corrected clock: the device's plus what a verified signed time taught. */
static int64_t agent_daemon_clock(void *ctx)
{
	const struct agent_daemon *ds = ctx;

	return agent_device_clock(ds) + ds->st.clock_offset;
}

/* After a check-in: a verified signed time corrects a clock that is unset or
 * off by more than AGENT_CLOCK_SKEW_S; an unverified one changes nothing. */
static void agent_daemon_learn_time(struct agent_daemon *ds, const struct agent_checkin_result *r)
{
	int64_t local = agent_device_clock(ds), off = r->time - local;

	ds->st.time_verified = r->time_verified;
	ds->st.signed_time = r->time;
	if (!r->time_verified)
		return;
	if (local < AGENT_CLOCK_MIN || off > AGENT_CLOCK_SKEW_S || off < -AGENT_CLOCK_SKEW_S) {
		if (ds->st.clock_offset != off)
			sph_log(SPH_LOG_INFO, "agent", "clock_corrected",
			        "device=%lld signed=%lld offset=%lld", (long long)local,
			        (long long)r->time, (long long)off);
		ds->st.clock_offset = off;
	} else {
		ds->st.clock_offset = 0;
	}
}

/* ---- events ------------------------------------------------------------------------- */

/* t as "YYYY-MM-DD HH:MM:SS UTC" (or its number if it cannot be shown). */
static void agent_utc(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "%lld", (long long)t);
}

static void agent_event(struct agent_daemon *ds, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void agent_event(struct agent_daemon *ds, const char *event, const char *fmt, ...)
{
	char text[AGENT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sph_log(SPH_LOG_INFO, "agent", event, "text=\"%s\"", text);
	if (ds->cfg->event)
		ds->cfg->event(ds->cfg->event_ctx, event, &ds->st, text);
}

static bool agent_stopping(const struct agent_daemon *ds)
{
	return ds->cfg->stop && *ds->cfg->stop;
}

/* ---- the certificate on disk ----------------------------------------------------------- */

static int agent_asn1_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	time_t v;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return SPH_ERR_MALFORMED;
	v = timegm(&tm);
	if (v == (time_t)-1)
		return SPH_ERR_MALFORMED;
	*out = (int64_t)v;
	return 0;
}

/* The validity of a PEM certificate, and the renewal point. */
static int agent_cert_times(struct agent_daemon *ds, const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int64_t nb = 0, na = 0;
	int rc = SPH_ERR_MALFORMED;

	if (!x || agent_asn1_unix(X509_get0_notBefore(x), &nb) != 0 ||
	    agent_asn1_unix(X509_get0_notAfter(x), &na) != 0 || na <= nb)
		goto out;
	ds->st.have_cert = true;
	ds->st.cert_not_before = nb;
	ds->st.cert_not_after = na;
	ds->st.renew_at = nb + (na - nb) * AGENT_RENEW_PERCENT / 100;
	rc = 0;
out:
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

static int agent_dir_file(const char *dir, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

/* The certificate kept from an earlier run, if any. */
static void agent_cert_load(struct agent_daemon *ds)
{
	char path[AGENT_PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;

	if (agent_dir_file(ds->dir, AGENT_CERT_FILE, path, sizeof(path)) != 0 ||
	    img_read_file(path, AGENT_PEM_MAX, &buf, &len) != 0)
		return;
	if (agent_cert_times(ds, (const char *)buf, len) != 0)
		sph_log(SPH_LOG_WARN, "agent", "stored_cert_unusable", "file=%s", AGENT_CERT_FILE);
	free(buf);
}

/* Keeps the chain, then the certificate (each through a temporary file). */
static int agent_cert_store(struct agent_daemon *ds, const struct agent_checkin_result *r)
{
	char path[AGENT_PATH_MAX];
	int rc;

	if ((rc = agent_dir_file(ds->dir, AGENT_CHAIN_FILE, path, sizeof(path))) != 0 ||
	    (rc = img_write_file(path, (const uint8_t *)r->chain, r->chain_len, 0644, true)) != 0 ||
	    (rc = agent_dir_file(ds->dir, AGENT_CERT_FILE, path, sizeof(path))) != 0 ||
	    (rc = img_write_file(path, (const uint8_t *)r->certificate, r->certificate_len, 0644,
	                         true)) != 0)
		return rc;
	return agent_cert_times(ds, r->certificate, r->certificate_len);
}

/* ---- interruptions --------------------------------------------------------------------- */

/* Takes the local requests waiting on the socket. */
static void agent_daemon_local(struct agent_daemon *ds)
{
	int n = agent_local_serve(ds->listen_fd);

	if (n > 0)
		ds->pokes += (unsigned)n;
}

/* What is due now, without side effects: true and *why when a cycle should
 * start. After a failed cycle only its retry (and requests) start one. */
static bool agent_daemon_due(const struct agent_daemon *ds, enum agent_why *why)
{
	double m = agent_mono();
	int64_t now = agent_daemon_clock((void *)ds);

	if (ds->pokes) {
		*why = AGENT_WHY_LOCAL;
		return true;
	}
	if (ds->retry_at > 0) {
		*why = AGENT_WHY_RETRY;
		return m >= ds->retry_at;
	}
	if (ds->window_at > 0 && now >= ds->window_at) {
		*why = AGENT_WHY_WINDOW;
		return true;
	}
	if (ds->st.have_cert && m >= ds->renew_hold && now >= ds->st.renew_at) {
		*why = now >= ds->st.cert_not_after ? AGENT_WHY_EXPIRED : AGENT_WHY_RENEW;
		return true;
	}
	*why = AGENT_WHY_PERIOD;
	return m >= ds->next_period;
}

/* Seconds until the next scheduled cycle (>= 0). */
static double agent_daemon_left(const struct agent_daemon *ds)
{
	double m = agent_mono(), left;
	int64_t now = agent_daemon_clock((void *)ds);

	if (ds->retry_at > 0)
		return ds->retry_at > m ? ds->retry_at - m : 0;
	left = ds->next_period - m;
	if (ds->window_at > 0 && (double)(ds->window_at - now) < left)
		left = (double)(ds->window_at - now);
	if (ds->st.have_cert) {
		double r = (double)(ds->st.renew_at - now);
		if (ds->renew_hold > m && r < ds->renew_hold - m)
			r = ds->renew_hold - m;
		if (r < left)
			left = r;
	}
	return left > 0 ? left : 0;
}

/* Polled during a long-poll and while sleeping: non-zero stops the wait. */
static int agent_daemon_interrupt(void *ctx)
{
	struct agent_daemon *ds = ctx;
	enum agent_why why;

	if (agent_stopping(ds))
		return 1;
	agent_daemon_local(ds);
	return agent_daemon_due(ds, &why) ? 1 : 0;
}

/* Sleeps up to secs in slices, until agent_daemon_interrupt or stop. */
static void agent_daemon_sleep(struct agent_daemon *ds, double secs)
{
	double end = agent_mono() + secs;

	for (;;) {
		double left = end - agent_mono();
		struct pollfd p = {.fd = ds->listen_fd, .events = POLLIN};
		int ms;

		if (left <= 0 || agent_daemon_interrupt(ds))
			return;
		ms = left * 1000 < AGENT_SLICE_MS ? (int)(left * 1000) + 1 : AGENT_SLICE_MS;
		if (ds->listen_fd >= 0) {
			if (poll(&p, 1, ms) < 0 && errno != EINTR)
				return;
		} else {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
			(void)nanosleep(&ts, NULL);
		}
	}
}

/* Downloads: the caller's progress, and a stop cancels (bytes kept). */
static int agent_daemon_progress(void *ctx, const struct agent_update *u, uint64_t have,
                                 uint64_t total)
{
	struct agent_daemon *ds = ctx;

	agent_daemon_local(ds);
	if (ds->cfg->agent.progress &&
	    ds->cfg->agent.progress(ds->cfg->agent.progress_ctx, u, have, total) != 0)
		return 1;
	return agent_stopping(ds) ? 1 : 0;
}

/* ---- the notification channel ---------------------------------------------------------------- */

static void agent_chan_close(struct agent_daemon *ds)
{
	if (ds->chan_open)
		agent_conn_close(&ds->chan);
	ds->chan_open = false;
}

/* {"check": false} or {"check": true, "reason": "requested" | "target"}. */
static int agent_wait_reply(const struct agent_buf *b, bool *check, char *reason, size_t cap)
{
	json_t *j = json_loadb(b->data ? b->data : "", b->len, JSON_REJECT_DUPLICATES, NULL);
	json_t *c = json_object_get(j, "check"), *r = json_object_get(j, "reason");
	const char *rs = json_string_value(r);
	int rc = SPH_ERR_MALFORMED;

	if (!json_is_object(j) || !json_is_boolean(c))
		goto out;
	*check = json_is_true(c);
	if (*check ? json_object_size(j) != 2 || !rs ||
	                     (strcmp(rs, "requested") != 0 && strcmp(rs, "target") != 0)
	           : json_object_size(j) != 1)
		goto out;
	snprintf(reason, cap, "%s", *check ? rs : "");
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* One long-poll of at most t seconds. Returns 0 with *check, SPH_ERR_STATE
 * (interrupted: a stop, a request or a deadline), SPH_ERR_NOT_FOUND (the
 * service has no channel), or an error (the connection is dropped). */
static int agent_chan_wait(struct agent_daemon *ds, unsigned t, bool *check, char *reason,
                           size_t cap, long *retry_after)
{
	struct agent_buf reply = {.max = AGENT_WAIT_REPLY};
	char path[64];
	long status = 0;
	int rc;

	*check = false;
	*retry_after = 0;
	if (!ds->chan_open) {
		if ((rc = agent_conn_open(ds->d, &ds->acfg, &ds->chan)) != 0)
			goto out;
		ds->chan_open = true;
	}
	ds->chan.req_timeout_s = (long)t + AGENT_WAIT_SLACK;
	ds->chan.abort_fn = agent_daemon_interrupt;
	ds->chan.abort_ctx = ds;
	snprintf(path, sizeof(path), "/v1/checkin/wait?timeout=%u", t);
	rc = agent_post_json(&ds->chan, path, "{}", &reply, &status);
	*retry_after = ds->chan.retry_after;
	if (rc)
		goto out;
	if (status == 200) {
		rc = agent_wait_reply(&reply, check, reason, cap);
	} else if (status == 404) {
		rc = SPH_ERR_NOT_FOUND;
	} else {
		rc = agent_refusal(status, reply.data, reply.len, "wait", NULL);
		if (rc == 0)
			rc = SPH_ERR_MALFORMED;
	}
out:
	if (rc && rc != SPH_ERR_STATE && rc != SPH_ERR_NOT_FOUND)
		agent_chan_close(ds);
	agent_buf_free(&reply);
	return rc;
}

/* Waits on the channel (or sleeps, without one) until something is due.
 * Sets ds->pokes-like state through *woken when the service asks. */
static void agent_daemon_wait(struct agent_daemon *ds, bool *woken)
{
	double left = agent_daemon_left(ds), m = agent_mono();
	char reason[16] = "";
	long retry_after = 0;
	bool check = false;
	unsigned t;
	int rc;

	*woken = false;
	if (!ds->st.channel || m < ds->chan_retry_at) {
		double until = ds->st.channel && ds->chan_retry_at - m < left
		                       ? ds->chan_retry_at - m
		                       : left;
		agent_daemon_sleep(ds, until);
		return;
	}
	t = left < 1 ? 1 : left > ds->wait_s ? ds->wait_s : (unsigned)left;
	rc = agent_chan_wait(ds, t, &check, reason, sizeof(reason), &retry_after);
	if (rc == 0) {
		ds->chan_fails = 0;
		if (check) {
			*woken = true;
			agent_event(ds, "woken", "the service asks for a check-in (%s)", reason);
		}
		return;
	}
	if (rc == SPH_ERR_STATE)
		return;
	if (rc == SPH_ERR_NOT_FOUND) {
		ds->st.channel = false;
		agent_chan_close(ds);
		agent_event(ds, "fallback",
		            "the service has no notification channel: checking in every %u s",
		            ds->period_s);
		return;
	}
	ds->chan_fails++;
	ds->st.channel_errors++;
	{
		double back = (double)agent_backoff_ms(&ds->policy, ds->chan_fails) / 1000.0;
		if ((double)retry_after > back)
			back = (double)retry_after;
		ds->chan_retry_at = agent_mono() + back;
		agent_event(ds, "channel_error", "the notification channel: %s; again in %.1f s",
		            sph_strerror(rc), back);
	}
}

/* ---- a cycle --------------------------------------------------------------------------------- */

static const char *agent_why_name(enum agent_why w)
{
	static const char *const names[] = {"boot",    "retry",  "period", "renewal",
	                                    "expired", "window", "woken",  "local"};

	return names[w];
}

static void agent_daemon_cycle(struct agent_daemon *ds, enum agent_why why)
{
	struct agent_checkin_result res;
	struct agent_cycle cyc;
	struct agent_error err;
	int64_t now = agent_daemon_clock(ds);
	bool expired = ds->st.have_cert && now >= ds->st.cert_not_after;
	double back;
	int rc;

	memset(&res, 0, sizeof(res));
	memset(&cyc, 0, sizeof(cyc));
	memset(&err, 0, sizeof(err));
	switch (why) {
	case AGENT_WHY_PERIOD:
		ds->st.periodic++;
		break;
	case AGENT_WHY_RENEW:
		ds->st.renewals++;
		break;
	case AGENT_WHY_WINDOW:
		ds->st.window++;
		break;
	case AGENT_WHY_WOKEN:
		ds->st.woken++;
		break;
	case AGENT_WHY_LOCAL:
		ds->st.local++;
		ds->pokes = 0;
		break;
	default:
		break;
	}
	if (expired) {
		ds->st.expired++;
		agent_event(ds, "expired",
		            "the certificate expired; checking in (the RoT identity does not)");
	}
	agent_event(ds, "checkin", "checking in (%s)", agent_why_name(why));
	rc = agent_cycle_run(ds->d, &ds->acfg, &res, &cyc, &err);
	ds->st.cycles++;
	ds->st.checkins += cyc.rounds;
	ds->st.installed += cyc.installed;
	ds->st.confirmed += cyc.confirmed;
	ds->st.fetched += cyc.fetched;
	ds->st.transfers += cyc.transfers;
	ds->st.resumes += cyc.resumes;
	ds->st.last_rc = rc;
	ds->next_period = agent_mono() + ds->period_s;
	if (rc == 0) {
		ds->retry_at = 0;
		ds->st.failed_in_a_row = 0;
		ds->st.last_error[0] = '\0';
		agent_daemon_learn_time(ds, &res);
	}
	if (rc == 0 && res.status == AGENT_STATUS_UP_TO_DATE) {
		ds->window_at = 0;
		ds->st.up_to_date = true;
		if ((rc = agent_cert_store(ds, &res)) != 0) {
			ds->st.last_rc = rc;
			agent_event(ds, "failed", "cannot keep the certificate: %s",
			            sph_strerror(rc));
		} else {
			now = agent_daemon_clock(ds);
			if (expired && now < ds->st.cert_not_after)
				ds->st.recovered++;
			/* a certificate already past its renewal point (a clock
			 * that is wrong and could not be corrected): no renewal
			 * storm, the next one backs off up to the period */
			ds->past_renew = now >= ds->st.renew_at ? ds->past_renew + 1 : 0;
			if (ds->past_renew) {
				struct agent_retry hold = ds->policy;
				hold.max_ms = ds->period_s * 1000u;
				ds->renew_hold =
				        agent_mono() +
				        (double)agent_backoff_ms(&hold, ds->past_renew) / 1000.0;
			}
			char until[32], renew[32];
			agent_utc(ds->st.cert_not_after, until, sizeof(until));
			agent_utc(ds->st.renew_at, renew, sizeof(renew));
			agent_event(ds, "up_to_date",
			            "up to date; certificate valid until %s, renewal at %s; "
			            "signed time %s",
			            until, renew, res.time_verified ? "verified" : "not verified");
		}
	} else if (rc == 0) {
		ds->st.deferred++;
		ds->st.up_to_date = false;
		ds->window_at = agent_daemon_clock(ds) + cyc.window_wait;
		agent_event(
		        ds, "deferred",
		        "%zu update(s) downloaded; installing when the window %02u:%02u-%02u:%02u "
		        "UTC opens, in %lld s",
		        res.n_updates, res.window_start / 60, res.window_start % 60,
		        res.window_end / 60, res.window_end % 60, (long long)cyc.window_wait);
	} else {
		ds->st.failures++;
		ds->st.failed_in_a_row++;
		ds->st.up_to_date = false;
		{
			int k = snprintf(ds->st.last_error, sizeof(ds->st.last_error), "%s",
			                 sph_strerror(rc));
			size_t used = k > 0 ? (size_t)k : 0;
			if (err.reason[0] && used + 3 < sizeof(ds->st.last_error))
				snprintf(ds->st.last_error + used, sizeof(ds->st.last_error) - used,
				         ": %.*s", (int)(sizeof(ds->st.last_error) - used - 3),
				         err.reason);
		}
		back = (double)agent_backoff_ms(&ds->policy, ds->st.failed_in_a_row) / 1000.0;
		if (back > ds->period_s)
			back = ds->period_s;
		ds->retry_at = agent_mono() + back;
		agent_event(ds, "failed", "%s; again in %.1f s", ds->st.last_error, back);
	}
	agent_checkin_result_free(&res);
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* A trial that booted but was never confirmed (a stop or a power cut
 * between the trial boot and the confirm) is confirmed now. */
static void agent_daemon_confirm_trials(struct agent_daemon *ds)
{
	struct boot_report rep;
	bool trial = false;
	int rc;

	if (boot_last_report(ds->d, &rep) != 0)
		return;
	for (unsigned c = 0; c < BOOT_COMPONENTS; c++)
		trial = trial || (rep.stage[c].booted && rep.stage[c].was_trial);
	if (!trial)
		return;
	rc = boot_confirm(ds->d);
	sph_log(rc < 0 ? SPH_LOG_WARN : SPH_LOG_INFO, "agent", "trial_confirmed_at_start", "rc=%d",
	        rc);
}

/* Opens the local socket on a development device; else says why not. */
static void agent_daemon_local_open(struct agent_daemon *ds)
{
	struct img_capability c;
	char why[256] = "", text[AGENT_REASON_MAX];
	int rc = boot_capability_get(ds->d, &c, why, sizeof(why));

	if (rc == 0 && (c.caps & (1u << IMG_CAP_APP_DEVELOPMENT))) {
		rc = agent_local_open(ds->dir, &ds->listen_fd);
		if (rc == 0) {
			ds->st.local_listening = true;
			agent_event(ds, "local", "local requests on %s/%s", ds->dir,
			            AGENT_SOCKET_FILE);
			return;
		}
		snprintf(text, sizeof(text), "the local socket could not be opened: %s",
		         sph_strerror(rc));
	} else if (rc == 0) {
		snprintf(text, sizeof(text),
		         "local check-for-updates is for development devices; this device's "
		         "capability file has no appDevelopment");
	} else {
		snprintf(text, sizeof(text),
		         "local check-for-updates is for development devices; this device has no "
		         "valid appDevelopment capability (%s)",
		         why);
	}
	if (agent_local_off(ds->dir, text) != 0)
		sph_log(SPH_LOG_WARN, "agent", "local_off_note", "rc=%d", SPH_ERR_IO);
	agent_event(ds, "local", "%s", text);
}

int agent_daemon_run(struct boot_device *d, const struct agent_daemon_config *cfg,
                     struct agent_daemon_status *out)
{
	struct agent_daemon *ds = NULL;
	struct agent_error err;
	enum agent_why why = AGENT_WHY_BOOT;
	bool need = true, woken = false;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!d || !cfg || !chip_dir(boot_chip(d)) || cfg->period_s > AGENT_PERIOD_MAX_S ||
	    cfg->wait_s > AGENT_WAIT_MAX_S)
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(ds = calloc(1, sizeof(*ds))))
		goto out;
	ds->d = d;
	ds->cfg = cfg;
	ds->dir = chip_dir(boot_chip(d));
	ds->listen_fd = -1;
	ds->period_s = cfg->period_s ? cfg->period_s : AGENT_PERIOD_DEFAULT_S;
	ds->wait_s = cfg->wait_s ? cfg->wait_s : AGENT_WAIT_DEFAULT_S;
	ds->acfg = cfg->agent;
	ds->acfg.clock = agent_daemon_clock;
	ds->acfg.clock_ctx = ds;
	ds->acfg.progress = agent_daemon_progress;
	ds->acfg.progress_ctx = ds;
	agent_retry_policy(&cfg->agent, &ds->policy);
	ds->st.channel = !cfg->no_channel;
	memset(&err, 0, sizeof(err));
	if ((rc = agent_boot(d, CHIP_RESET_POWER_ON, &err)) != 0) {
		ds->st.last_rc = rc;
		agent_event(ds, "failed", "%s", err.reason);
		goto out;
	}
	agent_daemon_confirm_trials(ds);
	agent_event(ds, "boot", "booted (verified, measured)");
	agent_cert_load(ds);
	agent_daemon_local_open(ds);
	ds->next_period = agent_mono() + ds->period_s;
	while (!agent_stopping(ds)) {
		if (need) {
			if (cfg->max_checkins && ds->st.checkins >= cfg->max_checkins)
				break;
			agent_daemon_cycle(ds, why);
			need = false;
			if (cfg->once)
				break;
			continue;
		}
		agent_daemon_local(ds);
		if (agent_daemon_due(ds, &why)) {
			need = true;
			continue;
		}
		agent_daemon_wait(ds, &woken);
		if (woken) {
			why = AGENT_WHY_WOKEN;
			need = true;
		}
	}
	if (agent_stopping(ds))
		agent_event(ds, "stopping", "stopped");
	rc = ds->st.last_rc;
out:
	if (ds) {
		agent_chan_close(ds);
		agent_local_close(ds->dir, ds->listen_fd);
		if (out)
			*out = ds->st;
		free(ds);
	}
	return rc;
}
