/*
 * stock.c - the order application's simulated inventory.
 */
#include "stock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stock_init(struct stock *s, const char *spec, char *err, size_t errlen)
{
	const char *p = spec ? spec : "";

	memset(s, 0, sizeof(*s));
	while (*p != '\0') {
		const char *colon = strchr(p, ':');
		const char *comma = strchr(p, ',');
		size_t idlen;
		char *end;
		long long q;

		if (comma == NULL)
			comma = p + strlen(p);
		if (colon == NULL || colon > comma || colon == p) {
			snprintf(err, errlen,
			         "stock: \"%.*s\" is not productId:quantity",
			         (int)(comma - p), p);
			return -1;
		}
		idlen = (size_t)(colon - p);
		if (idlen > STOCK_ID_MAX || s->n == STOCK_MAX_PRODUCTS) {
			snprintf(err, errlen,
			         "stock: at most %d products of at most %d "
			         "bytes each",
			         STOCK_MAX_PRODUCTS, STOCK_ID_MAX);
			return -1;
		}
		errno = 0;
		q = strtoll(colon + 1, &end, 10);
		if (errno != 0 || end == colon + 1 || end != comma || q < 0) {
			snprintf(err, errlen,
			         "stock: the quantity of \"%.*s\" is not a "
			         "whole number >= 0",
			         (int)idlen, p);
			return -1;
		}
		memcpy(s->items[s->n].id, p, idlen);
		s->items[s->n].id[idlen] = '\0';
		s->items[s->n].qty = q;
		s->n++;
		p = *comma ? comma + 1 : comma;
	}
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		snprintf(err, errlen, "stock: cannot make a mutex");
		return -1;
	}
	return 0;
}

void stock_fini(struct stock *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* The item's product id as text (an integer id as its digits), or -1 if
 * it has none usable. */
static int item_id(const json_t *item, char *buf, size_t len)
{
	const json_t *id = json_object_get(item, "productId");

	if (json_is_integer(id)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
		         json_integer_value(id));
		return 0;
	}
	if (!json_is_string(id) || json_string_length(id) == 0)
		return -1;
	/* Longer than any id of the table, or holding a NUL: in no table. */
	if (json_string_length(id) > STOCK_ID_MAX ||
	    strlen(json_string_value(id)) != json_string_length(id))
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%s", json_string_value(id));
	return 0;
}

static struct stock_item *find(struct stock *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->items[i].id, id) == 0)
			return &s->items[i];
	return NULL;
}

/* Whether an item before items[i] names product `id`. */
static int same_product_before(const json_t *items, size_t i, const char *id)
{
	char other[STOCK_ID_MAX + 1];

	for (size_t j = 0; j < i; j++)
		if (item_id(json_array_get(items, j), other, sizeof(other)) ==
		        0 &&
		    strcmp(other, id) == 0)
			return 1;
	return 0;
}

/* Call with the lock held. */
static int check_locked(struct stock *s, const char *type, const json_t *items,
                        char *why, size_t whylen)
{
	size_t i, used = 0;
	const json_t *item;
	int missing = 0;

	json_array_foreach(items, i, item)
	{
		const json_t *q = json_object_get(item, "quantity");
		char id[STOCK_ID_MAX + 1];
		struct stock_item *si;

		if (!json_is_object(item) ||
		    item_id(item, id, sizeof(id)) < 0) {
			snprintf(why, whylen,
			         "%s: items[%zu].productId must be a non-empty "
			         "string or an integer",
			         type, i);
			return -2;
		}
		if (!json_is_integer(q) || json_integer_value(q) <= 0) {
			snprintf(why, whylen,
			         "%s: items[%zu].quantity must be a positive "
			         "integer",
			         type, i);
			return -2;
		}
		/* A product listed twice wants the sum: counted at its first
		 * entry, so that a reservation never goes below zero. */
		json_int_t want = 0;
		if (same_product_before(items, i, id))
			continue;
		for (size_t j = i; j < json_array_size(items); j++) {
			const json_t *o = json_array_get(items, j);
			const json_t *oq = json_object_get(o, "quantity");
			char oid[STOCK_ID_MAX + 1];

			json_int_t q = json_integer_value(oq);
			/* Saturated: quantities near the integer's limit must
			 * not wrap into a sum the stock would satisfy. */
			if (item_id(o, oid, sizeof(oid)) == 0 &&
			    strcmp(oid, id) == 0 && json_is_integer(oq) &&
			    q > 0)
				want =
				    q > LLONG_MAX - want ? LLONG_MAX : want + q;
		}
		si = find(s, id);
		if (si != NULL && si->qty >= want)
			continue;
		if (missing++ == 0)
			used = (size_t)snprintf(why, whylen,
			                        "%s: out of stock:", type);
		if (used < whylen)
			used += (size_t)snprintf(
			    why + used, whylen - used,
			    "%s %s (want %" JSON_INTEGER_FORMAT ", have %lld)",
			    missing > 1 ? "," : "", id, want,
			    si ? (long long)si->qty : 0LL);
	}
	return missing ? -1 : 0;
}

int stock_check(struct stock *s, const char *type, const json_t *items,
                char *why, size_t whylen)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = check_locked(s, type, items, why, whylen);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int stock_reserve(struct stock *s, const char *type, const json_t *items,
                  char *why, size_t whylen)
{
	size_t i;
	const json_t *item;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = check_locked(s, type, items, why, whylen);
	if (rc == 0)
		json_array_foreach(items, i, item)
		{
			char id[STOCK_ID_MAX + 1];

			item_id(item, id, sizeof(id));
			find(s, id)->qty -= json_integer_value(
			    json_object_get(item, "quantity"));
		}
	pthread_mutex_unlock(&s->lock);
	return rc;
}
