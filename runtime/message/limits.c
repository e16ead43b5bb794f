/* limits.c - the header walk and the JSON scan of limits.h. */
#include "message/limits.h"

#include <stdio.h>

/* The walk of one value: a table or an array goes one level deeper. */
static int walk_value(const struct wd_input_limits *l,
                      const amqp_field_value_t *v, int depth, long *n,
                      char *why, size_t whylen);

static int too_deep(const struct wd_input_limits *l, char *why, size_t whylen)
{
	snprintf(why, whylen,
	         "headers nested deeper than max_header_depth (%d)",
	         l->header_depth);
	return -1;
}

static int one_more(const struct wd_input_limits *l, long *n, char *why,
                    size_t whylen)
{
	if (++*n <= l->headers)
		return 0;
	snprintf(why, whylen,
	         "headers have more than %ld entries (max_headers)",
	         l->headers);
	return -1;
}

/* Recursion is bounded by l->header_depth (at most 64, conf_schema.c):
 * rabbitmq-c has decoded the whole table already, within frame_max. */
static int walk_table(const struct wd_input_limits *l, const amqp_table_t *t,
                      int depth, long *n, char *why, size_t whylen)
{
	if (depth > l->header_depth)
		return too_deep(l, why, whylen);
	for (int i = 0; i < t->num_entries; i++)
		if (one_more(l, n, why, whylen) < 0 ||
		    walk_value(l, &t->entries[i].value, depth, n, why, whylen) <
		        0)
			return -1;
	return 0;
}

static int walk_value(const struct wd_input_limits *l,
                      const amqp_field_value_t *v, int depth, long *n,
                      char *why, size_t whylen)
{
	if (v->kind == AMQP_FIELD_KIND_TABLE)
		return walk_table(l, &v->value.table, depth + 1, n, why,
		                  whylen);
	if (v->kind != AMQP_FIELD_KIND_ARRAY)
		return 0;
	if (depth + 1 > l->header_depth)
		return too_deep(l, why, whylen);
	for (int i = 0; i < v->value.array.num_entries; i++)
		if (one_more(l, n, why, whylen) < 0 ||
		    walk_value(l, &v->value.array.entries[i], depth + 1, n, why,
		               whylen) < 0)
			return -1;
	return 0;
}

int wd_limits_headers(const struct wd_input_limits *l, const amqp_table_t *t,
                      char *why, size_t whylen)
{
	long n = 0;

	return t ? walk_table(l, t, 1, &n, why, whylen) : 0;
}

int wd_limits_json(const struct wd_input_limits *l, const char *text,
                   size_t len, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	long values = 1;
	int depth = 0;
	bool opened = false; /* just after '[' or '{': a value, or the end */

	while (p < end) {
		unsigned char c = *p++;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		if (opened) {
			opened = false;
			if (c != ']' && c != '}')
				values++;
		}
		switch (c) {
		case '"':
			/* A string, escapes skipped; an unterminated one is
			 * the parse's to name. */
			while (p < end) {
				c = *p++;
				if (c == '\\')
					p += p < end;
				else if (c == '"')
					break;
			}
			break;
		case '[':
		case '{':
			if (++depth > l->json_depth) {
				snprintf(why, whylen,
				         "body nested deeper than "
				         "max_json_depth (%d)",
				         l->json_depth);
				return -1;
			}
			opened = true;
			break;
		case ']':
		case '}':
			depth -= depth > 0;
			break;
		case ',':
			values++;
			break;
		default:
			break;
		}
		if (values > l->json_values) {
			snprintf(why, whylen,
			         "body has more than %ld JSON values "
			         "(max_json_values)",
			         l->json_values);
			return -1;
		}
	}
	return 0;
}
