/*
 * ss_http_internal: what ss_http.c and ss_metrics.c share, and no one else.
 * The metrics registry: fixed-size tables behind one mutex, so the number of
 * series (and the memory they take) is bounded whatever the clients send.
 */
#ifndef SPHERE_SS_HTTP_INTERNAL_H
#define SPHERE_SS_HTTP_INTERNAL_H

#include <stddef.h>

#define SS_METRICS_CUSTOM_MAX   256  /* ss_metric_inc series */
#define SS_METRICS_REQUESTS_MAX 1024 /* {route, method, status} series */
#define SS_METRICS_ROUTES_MAX   160  /* latency histograms (one per route label) */
#define SS_METRICS_NAME_MAX     64   /* metric and route label bytes */
#define SS_METRICS_LABEL_MAX    128  /* custom label value bytes */
#define SS_METRICS_TEXT_MAX     (4u << 20)

struct ss_metrics;

/* Returns 0 and *out (free with ss_metrics_free), or SPH_ERR_NOMEM. */
int ss_metrics_new(struct ss_metrics **out);
/* Accepts NULL. */
void ss_metrics_free(struct ss_metrics *m);
/* Counts one request: route is a pattern (bounded set), method a fixed name.
 * A full table drops it into sphere_metrics_dropped_total. Thread-safe. */
void ss_metrics_observe(struct ss_metrics *m, const char *route, const char *method, int status,
                        double seconds);
/* See ss_metric_inc. Thread-safe. */
void ss_metrics_inc(struct ss_metrics *m, const char *name, const char *label);
/* The exposition text (caller frees). Returns 0, SPH_ERR_NOMEM or
 * SPH_ERR_TOO_LARGE. Thread-safe. */
int ss_metrics_render(struct ss_metrics *m, char **out);

#endif
