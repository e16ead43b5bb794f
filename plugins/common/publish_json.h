/*
 * publish_json.h - queue a JSON follow-up through the SDK (api->publish):
 * persistent, content type application/json, the AMQP type property set.
 *
 * Shared by the example plugins that publish follow-ups (order_created,
 * orders). Needs a runtime with SDK ABI 1.1 or later (publish).
 */
#ifndef PUBLISH_JSON_H
#define PUBLISH_JSON_H

#include <warren.h>

/*
 * publish_json - serialise `body` and queue it to exchange (NULL or "":
 * the default exchange) with routing key `rk`; `type` is the AMQP type
 * property (NULL: unset). `body` stays the caller's. Returns 0 if queued,
 * -1 if it could not be serialised or api->publish refused it.
 */
int publish_json(const warren_api *api, warren_ctx *ctx, const char *exchange,
                 const char *rk, const json_t *body, const char *type);

#endif /* PUBLISH_JSON_H */
