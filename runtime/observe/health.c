/* health.c - liveness and readiness from the slots' published states. */
#include "observe/health.h"

#include <stdbool.h>

#include "base/clock.h"
#include "base/series.h"
#include "base/strbuf.h"

struct verdict {
	bool ready; /* the question asked: ready (else live) */
	int code;
	struct wd_strbuf b;
};

static void live(const struct wd_series_view *v, void *arg)
{
	struct verdict *r = arg;
	int64_t now = wd_now_ms();

	if (wd_series_main_alive() < now) {
		r->code = 503;
		wd_strbuf_printf(&r->b, "{\"status\":\"stuck\",\"thread\":"
		                        "\"main\"}\n");
		return;
	}
	for (int i = 0; i < v->nslots; i++) {
		int state = atomic_load(&v->slots[i].state);
		/* A stopped thread turns no more; a stopping or blocked one
		 * may wait on the broker for good reason. */
		if (state == WD_SLOT_STOPPED || state == WD_SLOT_STOPPING ||
		    state == WD_SLOT_BLOCKED ||
		    atomic_load(&v->slots[i].alive_until_ms) >= now)
			continue;
		r->code = 503;
		wd_strbuf_printf(
		    &r->b,
		    "{\"status\":\"stuck\",\"slot\":%d,\"state\":"
		    "\"%s\"}\n",
		    i, wd_slot_state_names[atomic_load(&v->slots[i].state)]);
		return;
	}
	r->code = 200;
	wd_strbuf_printf(&r->b, "{\"status\":\"ok\"}\n");
}

static void ready(const struct wd_series_view *v, void *arg)
{
	struct verdict *r = arg;

	if (v->nslots == 0) {
		r->code = 503;
		wd_strbuf_printf(&r->b, "{\"status\":\"starting\"}\n");
		return;
	}
	for (int i = 0; i < v->nslots; i++) {
		int state = atomic_load(&v->slots[i].state);
		if (state == WD_SLOT_CONSUMING)
			continue;
		r->code = 503;
		wd_strbuf_printf(&r->b,
		                 "{\"status\":\"not ready\",\"slot\":%d,"
		                 "\"state\":\"%s\"",
		                 i, wd_slot_state_names[state]);
		if (state == WD_SLOT_RECONNECTING) {
			int64_t in =
			    atomic_load(&v->slots[i].retry_at_ms) - wd_now_ms();
			wd_strbuf_printf(&r->b, ",\"retry_in_s\":%.1f",
			                 in > 0 ? (double)in / 1000 : 0.0);
		}
		wd_strbuf_printf(&r->b, "}\n");
		return;
	}
	r->code = 200;
	wd_strbuf_printf(&r->b, "{\"status\":\"ok\",\"slots\":%d}\n",
	                 v->nslots);
}

static int answer(bool want_ready, char **body, size_t *len)
{
	struct verdict r = {.ready = want_ready};

	wd_series_visit(want_ready ? ready : live, &r);
	*body = wd_strbuf_take(&r.b, len);
	return r.code;
}

int wd_health_live(char **body, size_t *len)
{
	return answer(false, body, len);
}

int wd_health_ready(char **body, size_t *len)
{
	return answer(true, body, len);
}
