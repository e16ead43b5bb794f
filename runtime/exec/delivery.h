/* delivery.h - one delivery on its way from a connection thread through a
 * handler and back: what the connection read, its one parse, the verdict,
 * and the connection's bookkeeping while its publishes are confirmed.
 *
 * Allocated, settled and freed on the thread of the connection that read
 * it (slot/); a worker or the batch thread only runs its task and hands it
 * back. Handlers may run on a worker, or on the connection's own thread
 * when their route is non-blocking. */
#ifndef WD_DELIVERY_H
#define WD_DELIVERY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "base/log.h"
#include "base/series.h"
#include "exec/dispatch.h"
#include "exec/gate.h"
#include "exec/workers.h"
#include "message/envelope.h"

struct wd_gen;
struct wd_conn; /* the slot that read it: opaque below slot/ */

/* Where a delivery waits for its publishes' confirms. */
enum wd_stage {
	WD_STAGE_NONE = 0,
	WD_STAGE_FOLLOWUPS, /* the handler's follow-ups, before the ack */
	WD_STAGE_REPUBLISH, /* its copy to a retry queue or dead-letter */
};

struct wd_delivery {
	struct wd_task task; /* first: workers see only this */
	struct wd_conn *conn;
	/* Its connection's epoch counter: bumped when the connection goes,
	 * which voids every delivery tag it gave. */
	const _Atomic uint64_t *conn_epoch;
	/* A reference to the generation it is parsed and handled under:
	 * its code stays loaded until the delivery is settled. */
	struct wd_gen *gen;
	uint64_t epoch; /* *conn_epoch when it was read */
	size_t queue;   /* index into gen's conf queues */
	/* The gate of its route's concurrency limit it holds (or waits for)
	 * a place in; NULL: its route has none (exec/gate.h). */
	struct wd_gate *gate;
	amqp_envelope_t env;
	struct wd_envelope parsed; /* points into env */
	struct wd_verdict verdict;

	/* Owned by the connection thread once the handler is done. */
	enum wd_stage stage;
	int unconfirmed;     /* publishes of this stage not confirmed yet */
	bool publish_failed; /* one of them was refused */
	char publish_why[256];
	struct wd_delivery *next_ready;
	size_t waiting_at; /* index in the settler's waiting list */
	int64_t due_ms;    /* for a held requeue: when */
	int64_t done_ms;   /* when its handler returned (0: not yet) */
	int64_t read_us;   /* when it was read (the loop's turn, wd_now_us) */
	/* The handler call's age at which wd_delivery_watch warns next (0:
	 * at handler_timeout_warn). Its connection's thread only. */
	int64_t warn_due_ms;
};

/* The log subject of d (base/log.h): its queue, slot, tag, message id. */
void wd_delivery_subject(const struct wd_delivery *d, int slot,
                         struct wd_log_subject *s);

/* d enters or leaves a stage of its queue's in-flight gauges. */
void wd_delivery_enter(const struct wd_delivery *d, enum wd_inflight stage);
void wd_delivery_leave(const struct wd_delivery *d, enum wd_inflight stage);

/*
 * Warn about the handler calls of owner's deliveries (owner: their
 * struct wd_conn) that have run past their route's handler_timeout_warn,
 * as workers' busy marks show them (wd_workers_busy(d->conn, d, n) around
 * the call; a batch marks its first delivery): one warning line naming the
 * route, the message and the time so far, repeated each time that time
 * doubles; counted once per call. Called by owner's own thread (the only
 * one that frees its deliveries) about once a second; `slot` names it.
 */
void wd_delivery_watch(struct wd_workers *w, const void *owner, int slot,
                       int64_t now_ms);

/* Whether the delivery's connection is still the one it came on (else the
 * broker redelivers it, and its handler must not run). Thread-safe. */
static inline bool wd_delivery_live(const struct wd_delivery *d)
{
	return d->epoch == atomic_load(d->conn_epoch);
}

#endif
