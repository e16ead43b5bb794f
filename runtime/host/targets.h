/* targets.h - the exchanges a plugin said in init it publishes follow-ups
 * to (warren_api.publishes_to), and their checks before any message runs:
 * against the conf (warrend -t, offline) and on the broker (the start and
 * every reload), so a misnamed follow-up exchange fails the start, not
 * every message that reaches the handler. */
#ifndef WD_TARGETS_H
#define WD_TARGETS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/amqp_compat.h"

struct wd_routes;

/* One plugin instance's named exchanges, each once, in call order. */
struct wd_targets {
	char **names;
	size_t n, cap;
};

/* Record `exchange` (copied; a repeat is kept once). 0, or -1 on out of
 * memory. */
int wd_targets_add(struct wd_targets *t, const char *exchange);
void wd_targets_free(struct wd_targets *t);

/* warrend -t: log a warning line for each named exchange the conf does
 * not declare and that is none of the broker's standard ones (amq.direct,
 * ...): those are checked on the broker at start. Returns how many. */
size_t wd_targets_check_conf(const struct wd_routes *r);

/* Whether some named exchange is not declared by r's conf (so only the
 * broker can tell whether it exists). */
bool wd_targets_need_broker(const struct wd_routes *r);

/* Check on the broker, with a passive declare on the open channel ch,
 * every named exchange r's conf does not declare: 0, or -1 with err naming
 * the first missing one's plugin, the exchange and what to do. Call it
 * after the conf's topology is declared. */
int wd_targets_check_broker(const struct wd_routes *r,
                            amqp_connection_state_t conn, amqp_channel_t ch,
                            char *err, size_t errlen);

#endif
