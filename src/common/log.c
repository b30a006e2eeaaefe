#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* -1: not yet read from $SPHERE_LOG. Atomic: threads may log concurrently;
 * racing first readers compute the same value. */
static atomic_int log_threshold = -1;

void sph_log_set_level(enum sph_log_level level)
{
	log_threshold = (int)level;
}

static int threshold(void)
{
	int t = atomic_load(&log_threshold);

	if (t < 0) {
		const char *env = getenv("SPHERE_LOG");
		t = SPH_LOG_INFO;
		for (int i = 0; env && i <= SPH_LOG_DEBUG; i++)
			if (strcmp(env, level_names[i]) == 0)
				t = i;
		atomic_store(&log_threshold, t);
	}
	return t;
}

bool sph_log_enabled(enum sph_log_level level)
{
	return (int)level <= threshold();
}

void sph_log(enum sph_log_level level, const char *mod, const char *event, const char *fields, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n;

	if ((unsigned)level > SPH_LOG_DEBUG || !sph_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s event=%s",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000, level_names[level], mod, event);
	if (n < 0)
		return;
	if (fields && (size_t)n < sizeof(line) - 1) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fields);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fields, ap);
		va_end(ap);
		if (m < 0)
			line[--n] = '\0';
	}
	/* One write per event so lines from several processes do not interleave. */
	fprintf(stderr, "%s\n", line);
}
