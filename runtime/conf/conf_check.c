/* conf_check.c - what only the whole model can tell, checked once every
 * section is loaded: whether anything is consumed, and what a consumed
 * queue needs (a dead-letter exchange, and names for its retry queues). */
#include "conf/conf_parse.h"

#include <string.h>

#include "message/policy.h"

#define MAX_RETRY_QUEUES 32 /* distinct retry delays per queue */

/* A declared queue must not be one of the generated ones: the two would
 * be declared under one name with different arguments. */
static int check_retry_names(const struct wd_conf *c,
                             const struct wd_conf_queue *q)
{
	char name[300];

	for (size_t j = 0; j < q->nretry_delays; j++) {
		long other;

		/* Cannot fail: the name's length was checked first. */
		if (wd_policy_retry_queue(name, sizeof(name), q->name,
		                          q->retry_delays[j]) < 0)
			continue;
		other = wd_conf_queue_index(c, name);
		if (other >= 0) {
			wd_conf_set_err(c->file, c->queues[other].line,
			                "queue \"%s\": the name is taken by a "
			                "retry queue of queue \"%s\"",
			                name, q->name);
			return -1;
		}
	}
	return 0;
}

/* Every consumed queue needs somewhere to dead-letter to, and room in
 * its name for its retry queues' suffix. */
static int check_consumed_queue(const struct wd_conf *c,
                                const struct wd_conf_queue *q)
{
	if (!q->dead_letter_exchange) {
		wd_conf_set_err(c->file, q->line,
		                "queue \"%s\": a consumed queue needs a "
		                "dead_letter_exchange (rejected and failing "
		                "messages are dead-lettered there)",
		                q->name);
		return -1;
	}
	if (!*q->dead_letter_exchange) {
		wd_conf_set_err(c->file, q->line,
		                "queue \"%s\": dead_letter_exchange must name "
		                "an exchange (the default exchange \"\" cannot "
		                "be one)",
		                q->name);
		return -1;
	}
	if (q->nretry_delays && strlen(q->name) > 255 - 20) {
		wd_conf_set_err(c->file, q->line,
		                "queue \"%s\": the name is too long for its "
		                "retry queues (\"%s.retry.<ms>\"): at most "
		                "235 bytes",
		                q->name, q->name);
		return -1;
	}
	if (q->nretry_delays > MAX_RETRY_QUEUES) {
		wd_conf_set_err(c->file, q->line,
		                "queue \"%s\": its routes' retry policies "
		                "need %zu distinct delays (one retry queue "
		                "each); at most %d: lower max_attempts or "
		                "raise retry_multiplier",
		                q->name, q->nretry_delays, MAX_RETRY_QUEUES);
		return -1;
	}
	return check_retry_names(c, q);
}

int wd_conf_check(const struct wd_conf *c, int root_line)
{
	if (c->nroutes == 0) {
		wd_conf_set_err(c->file, root_line,
		                "no route: nothing would be consumed");
		return -1;
	}
	for (size_t i = 0; i < c->nqueues; i++)
		if (c->queues[i].consumed &&
		    check_consumed_queue(c, &c->queues[i]) < 0)
			return -1;
	return 0;
}
