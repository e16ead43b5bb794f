/* prometheus.h - every metric in the Prometheus text exposition format
 * 0.0.4: base units (seconds, bytes), _total counters, histograms as
 * _bucket{le=...} / _sum / _count, # HELP and # TYPE for each family,
 * label values escaped. Read from the series registry and the process
 * counters; nothing on the message path waits for it. */
#ifndef WD_PROMETHEUS_H
#define WD_PROMETHEUS_H

#include <stddef.h>

#define WD_PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The exposition, malloc'd (the caller frees it), with *len set; NULL if
 * out of memory. */
char *wd_prometheus_text(size_t *len);

#endif
