/* delivery.c - what a delivery's log lines name. */
#include "exec/delivery.h"

#include "exec/generation.h"

void wd_delivery_subject(const struct wd_delivery *d, int slot,
                         struct wd_log_subject *s)
{
	const amqp_basic_properties_t *p = &d->env.message.properties;
	bool has_id = p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG;

	/* Pointers only: this runs three times per message. */
	*s = (struct wd_log_subject){
	    .queue =
	        d->gen ? d->gen->routes->conf->queues[d->queue].name : NULL,
	    .route = d->verdict.route ? d->verdict.route->type : NULL,
	    .slot = slot,
	    .tag = (unsigned long long)d->env.delivery_tag,
	    .message_id = has_id ? (const char *)p->message_id.bytes : NULL,
	    .message_id_len = has_id ? (int)p->message_id.len : 0,
	};
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
