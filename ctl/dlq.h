/* dlq.h - `warrenctl dlq`: inspect, redrive and purge a dead-letter queue
 * (README: warrenctl dlq). */
#ifndef WC_DLQ_H
#define WC_DLQ_H

#include <stdio.h>

/* argv[0] is "dlq". Returns the exit code: 0 ok, 1 error, 2 usage. */
int wc_dlq_main(int argc, char **argv);

/* The usage text of the dlq commands, for warrenctl's. */
void wc_dlq_usage(FILE *f);

#endif
