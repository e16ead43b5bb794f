/* sdk_api.h - the runtime's side of the SDK: warren_ctx and the api table
 * handed to plugins. */
#ifndef WD_SDK_API_H
#define WD_SDK_API_H

#include <stddef.h>

#include "warren.h"

struct wd_conf_plugin;
struct wd_outbox;
struct wd_targets;

/* See warren.h. A plugin-level ctx has reason == NULL and outbox == NULL;
 * a handler call's ctx points them at its delivery's buffers, and has
 * targets == NULL. */
struct warren_ctx {
	const struct wd_conf_plugin *plugin; /* its name and params */
	char *reason;
	size_t reason_len;
	struct wd_outbox *outbox; /* follow-ups of this call */
	/* Only while init runs: where publishes_to records (host/targets.h). */
	struct wd_targets *targets;
};

#define WD_REASON_MAX 1024

extern const warren_api wd_sdk_api;

#endif
