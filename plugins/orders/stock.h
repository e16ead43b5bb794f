/*
 * stock.h - the order application's simulated inventory: a table of
 * product ids and quantities from the plugin's `stock` param, checked by
 * order.created and decremented by inventory.reserve.
 *
 * Thread-safe (handlers of one plugin run on several workers at once): a
 * mutex guards the quantities. The table lives in the plugin instance, so
 * a reload starts again from the param.
 */
#ifndef STOCK_H
#define STOCK_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define STOCK_MAX_PRODUCTS 256
#define STOCK_ID_MAX       64

struct stock_item {
	char id[STOCK_ID_MAX + 1];
	int64_t qty;
};

struct stock {
	pthread_mutex_t lock;
	size_t n;
	struct stock_item items[STOCK_MAX_PRODUCTS];
};

/*
 * stock_init - parse `spec`, "productId:quantity" pairs separated by
 * commas (e.g. "p-1:100,p-2:5"; NULL or "": no product is in stock).
 * Returns 0, or -1 with a reason in err.
 */
int stock_init(struct stock *s, const char *spec, char *err, size_t errlen);
void stock_fini(struct stock *s);

/*
 * stock_check - whether every entry of `items` (the order's array of
 * {productId, quantity, ...}) is in stock. Returns 0 if so. Returns -1 if
 * some are not, with why = "out of stock: p-9 (want 5, have 0), ..."
 * naming each one; -2 if an item is malformed (productId not a non-empty
 * string or an integer, quantity not a positive integer), with why naming
 * it. `type` prefixes the reason.
 */
int stock_check(struct stock *s, const char *type, const json_t *items,
                char *why, size_t whylen);

/*
 * stock_reserve - stock_check, then take the quantities, atomically: all
 * of them or none. Same returns.
 */
int stock_reserve(struct stock *s, const char *type, const json_t *items,
                  char *why, size_t whylen);

#endif /* STOCK_H */
