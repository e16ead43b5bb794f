/*
 * publish_json.c - queue a JSON follow-up through the SDK.
 */
#include "publish_json.h"

#include <stdlib.h>
#include <string.h>

int publish_json(const warren_api *api, warren_ctx *ctx, const char *exchange,
                 const char *rk, const json_t *body, const char *type)
{
	char *text = json_dumps(body, JSON_COMPACT);
	int rc;

	if (text == NULL)
		return -1;
	warren_publish p = {
	    .size = sizeof(p),
	    .exchange = exchange,
	    .routing_key = rk,
	    .body = {text, strlen(text)},
	    .content_type = "application/json",
	    .type = type,
	};
	rc = api->publish(ctx, &p);
	free(text);
	return rc;
}
