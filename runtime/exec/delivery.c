/* delivery.c - what a delivery's log lines name. */
#include "exec/delivery.h"

#include "exec/generation.h"

#include <stdio.h>
#include <string.h>

void wd_delivery_subject(const struct wd_delivery *d, int slot,
                         struct wd_log_subject *s)
{
	const amqp_basic_properties_t *p = &d->env.message.properties;
	size_t id =
	    p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG ? p->message_id.len : 0;

	if (id > sizeof(s->message_id) - 1)
		id = sizeof(s->message_id) - 1;
	snprintf(s->queue, sizeof(s->queue), "%s",
	         d->gen ? d->gen->routes->conf->queues[d->queue].name : "?");
	snprintf(s->route, sizeof(s->route), "%s",
	         d->verdict.route ? d->verdict.route->type : "");
	s->slot = slot;
	s->tag = (unsigned long long)d->env.delivery_tag;
	if (id)
		memcpy(s->message_id, p->message_id.bytes, id);
	s->message_id[id] = '\0';
	s->message_id_len = (int)id;
}

static _Atomic int64_t *gauge(const struct wd_delivery *d,
                              enum wd_inflight stage)
{
	return &d->gen->routes->queue_series[d->queue]->inflight[stage];
}

void wd_delivery_enter(const struct wd_delivery *d, enum wd_inflight stage)
{
	atomic_fetch_add_explicit(gauge(d, stage), 1, memory_order_relaxed);
}

void wd_delivery_leave(const struct wd_delivery *d, enum wd_inflight stage)
{
	atomic_fetch_sub_explicit(gauge(d, stage), 1, memory_order_relaxed);
}
