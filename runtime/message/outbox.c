/* outbox.c - deep copies of warren_publish. */
#include "message/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dup_bytes(amqp_bytes_t *out, const void *p, size_t len)
{
	*out = amqp_bytes_malloc(len ? len : 1);
	if (!out->bytes)
		return -1;
	out->len = len;
	if (len)
		memcpy(out->bytes, p, len);
	return 0;
}

static int dup_str(amqp_bytes_t *out, const char *s)
{
	return dup_bytes(out, s ? s : "", s ? strlen(s) : 0);
}

static void free_followup(struct wd_followup *f)
{
	amqp_basic_properties_t *p = &f->props;

	amqp_bytes_free(f->exchange);
	amqp_bytes_free(f->routing_key);
	amqp_bytes_free(f->body);
	if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
		amqp_bytes_free(p->content_type);
	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		amqp_bytes_free(p->message_id);
	if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
		amqp_bytes_free(p->correlation_id);
	if (p->_flags & AMQP_BASIC_TYPE_FLAG)
		amqp_bytes_free(p->type);
	for (int i = 0; i < p->headers.num_entries; i++) {
		amqp_bytes_free(p->headers.entries[i].key);
		amqp_bytes_free(p->headers.entries[i].value.value.bytes);
	}
	free(p->headers.entries);
	free(f);
}

/* An optional string property: set the flag only if given. */
static int opt_prop(amqp_basic_properties_t *p, amqp_flags_t flag,
                    amqp_bytes_t *field, const char *s)
{
	if (!s)
		return 0;
	if (strlen(s) > 255 || dup_str(field, s) < 0)
		return -1;
	p->_flags |= flag;
	return 0;
}

int wd_outbox_add(struct wd_outbox *o, const warren_publish *p, char *why,
                  size_t whylen)
{
	struct wd_followup *f;
	amqp_basic_properties_t *pr;

	if (!p || p->size < offsetof(warren_publish, nheaders) +
	                        sizeof(p->nheaders)) {
		snprintf(why, whylen,
		         "publish: NULL or short warren_publish "
		         "(set .size = sizeof(warren_publish))");
		return -1;
	}
	if (p->body.len && !p->body.ptr) {
		snprintf(why, whylen, "publish: body.ptr is NULL");
		return -1;
	}
	if ((p->exchange && strlen(p->exchange) > 255) ||
	    (p->routing_key && strlen(p->routing_key) > 255)) {
		snprintf(why, whylen,
		         "publish: exchange or routing key longer "
		         "than 255 bytes");
		return -1;
	}
	if (p->nheaders > 64 || (p->nheaders && !p->headers)) {
		snprintf(why, whylen,
		         "publish: at most 64 headers, and "
		         "headers must not be NULL when nheaders > 0");
		return -1;
	}
	if (o->n >= WD_OUTBOX_MAX_MESSAGES ||
	    o->bytes + p->body.len > WD_OUTBOX_MAX_BYTES) {
		snprintf(why, whylen,
		         "publish: over %d messages or %u MiB in "
		         "one handler call",
		         WD_OUTBOX_MAX_MESSAGES, WD_OUTBOX_MAX_BYTES >> 20);
		return -1;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto oom;
	pr = &f->props;
	if (dup_str(&f->exchange, p->exchange) < 0 ||
	    dup_str(&f->routing_key, p->routing_key) < 0 ||
	    dup_bytes(&f->body, p->body.ptr, p->body.len) < 0)
		goto oom;
	pr->_flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	pr->delivery_mode = p->transient ? 1 : 2;
	if (opt_prop(pr, AMQP_BASIC_CONTENT_TYPE_FLAG, &pr->content_type,
	             p->content_type) < 0 ||
	    opt_prop(pr, AMQP_BASIC_MESSAGE_ID_FLAG, &pr->message_id,
	             p->message_id) < 0 ||
	    opt_prop(pr, AMQP_BASIC_CORRELATION_ID_FLAG, &pr->correlation_id,
	             p->correlation_id) < 0 ||
	    opt_prop(pr, AMQP_BASIC_TYPE_FLAG, &pr->type, p->type) < 0)
		goto bad_prop;
	if (p->nheaders) {
		pr->headers.entries =
		    calloc(p->nheaders, sizeof(amqp_table_entry_t));
		if (!pr->headers.entries)
			goto oom;
		pr->_flags |= AMQP_BASIC_HEADERS_FLAG;
		for (size_t i = 0; i < p->nheaders; i++) {
			amqp_table_entry_t *e = &pr->headers.entries[i];
			const warren_header *h = &p->headers[i];
			if (!h->key || !*h->key || strlen(h->key) > 255 ||
			    !h->value)
				goto bad_prop;
			if (dup_str(&e->key, h->key) < 0)
				goto oom;
			e->value.kind = AMQP_FIELD_KIND_UTF8;
			pr->headers.num_entries++;
			if (dup_str(&e->value.value.bytes, h->value) < 0)
				goto oom;
		}
	}
	if (o->tail)
		o->tail->next = f;
	else
		o->head = f;
	o->tail = f;
	o->n++;
	o->bytes += p->body.len;
	return 0;
bad_prop:
	free_followup(f);
	snprintf(why, whylen,
	         "publish: a property is longer than 255 bytes, "
	         "or a header has no key or no value");
	return -1;
oom:
	if (f)
		free_followup(f);
	snprintf(why, whylen, "publish: out of memory");
	return -1;
}

void wd_outbox_clear(struct wd_outbox *o)
{
	struct wd_followup *f, *next;

	for (f = o->head; f; f = next) {
		next = f->next;
		free_followup(f);
	}
	memset(o, 0, sizeof(*o));
}
