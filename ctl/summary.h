/* summary.h - warrenctl summary: the final report of a run, as the
 * tutorial's app prints one at SIGINT: totals since warrend started,
 * handled by route and outcome with handler latencies, dead-letters by
 * queue and reason, and the plugins' own counters. */
#ifndef WC_SUMMARY_H
#define WC_SUMMARY_H

#include <stdio.h>

void wc_summary_usage(FILE *f);

/* Print the report of the warrend at `url` (its HTTP endpoint). With
 * settle_s > 0, first wait (at most settle_s seconds) until nothing is in
 * flight and the totals stood still for 2 s, so a report taken right after
 * the load stopped counts the last messages too. Returns 0, or 1 if the
 * daemon cannot be read. */
int wc_summary(const char *url, int settle_s);

#endif
