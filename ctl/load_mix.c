/* load_mix.c - warren-load's realistic mixes (see load_mix.h). The shapes
 * are the tutorial's, as its clients publish them (README "The order
 * processing application", "The notification application"). */
#include "load_mix.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Kinds, in the order of the thresholds below. */
static const char *const order_kinds[] = {"valid order", "out-of-stock order",
                                          "declined payment", "malformed order",
                                          NULL};
static const char *const notification_kinds[] = {
    "email",           "sms", "push", "websocket", "malformed notification",
    "unknown channel", NULL};

/* The products of conf/examples/orders.conf's stock (p-5 has only 10). */
static const struct product {
	const char *id, *name;
	double price;
} products[] = {
    {"p-1", "Laptop", 999.99},
    {"p-2", "Mouse", 25.50},
    {"p-3", "Keyboard", 79.00},
    {"p-4", "Monitor", 249.00},
};

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int load_mix_parse(const char *name, enum load_mix *out)
{
	if (strcmp(name, "orders") == 0)
		*out = LOAD_MIX_ORDERS;
	else if (strcmp(name, "notifications") == 0)
		*out = LOAD_MIX_NOTIFICATIONS;
	else
		return -1;
	return 0;
}

const char *const *load_mix_kinds(enum load_mix mix)
{
	return mix == LOAD_MIX_ORDERS ? order_kinds : notification_kinds;
}

/* The tutorial's timestamp: new Date().toISOString(). */
static void iso_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(buf + n, len - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* 75 % valid, 10 % out of stock, 10 % declined, 5 % malformed. */
static int order(long n, uint64_t h, char *buf, size_t cap, struct load_msg *m)
{
	unsigned roll = (unsigned)(h % 100);
	char items[512], when[32];
	size_t used = 0;
	double total = 0;
	int nitems = 1 + (int)((h >> 8) % 3);

	m->exchange = "";
	snprintf(m->routing_key, sizeof(m->routing_key), "order.created");
	m->kind = roll < 75 ? 0 : roll < 85 ? 1 : roll < 95 ? 2 : 3;
	iso_now(when, sizeof(when));
	used += (size_t)snprintf(items, sizeof(items), "[");
	for (int i = 0; i < nitems; i++) {
		const struct product *p = &products[(h >> (12 + 2 * i)) % 4];
		int qty = 1 + (int)((h >> (20 + 3 * i)) % 3);

		if (m->kind == 2 && i == 0)
			qty = 20; /* 20 laptops or so: over decline_above */
		total += p->price * qty;
		used += (size_t)snprintf(
		    items + used, sizeof(items) - used,
		    "%s{\"productId\":\"%s\",\"productName\":\"%s\","
		    "\"quantity\":%d,\"price\":%.2f}",
		    i ? "," : "", p->id, p->name, qty, p->price);
	}
	if (m->kind == 1) /* more of p-5 than the 10 in stock */
		used += (size_t)snprintf(
		    items + used, sizeof(items) - used,
		    ",{\"productId\":\"p-5\",\"productName\":\"Limited "
		    "edition\",\"quantity\":50,\"price\":10.00}");
	snprintf(items + used, sizeof(items) - used, "]");
	if (m->kind == 2 && total <= 10000)
		total = 10000.5 + (double)(h % 5000);
	if (m->kind == 3) {
		/* The common client bugs: no userId, no items, or not JSON. */
		switch ((h >> 40) % 3) {
		case 0:
			return snprintf(
			    buf, cap,
			    "{\"type\":\"order.created\",\"orderId\":"
			    "\"ord-%ld\",\"items\":%s,\"totalAmount\":"
			    "%.2f,\"timestamp\":\"%s\"}",
			    n, items, total, when);
		case 1:
			return snprintf(
			    buf, cap,
			    "{\"type\":\"order.created\",\"orderId\":"
			    "\"ord-%ld\",\"userId\":\"user-%ld\","
			    "\"items\":[],\"totalAmount\":0,"
			    "\"timestamp\":\"%s\"}",
			    n, n % 500, when);
		default:
			return snprintf(buf, cap, "order %ld, not JSON", n);
		}
	}
	return snprintf(buf, cap,
	                "{\"type\":\"order.created\",\"orderId\":\"ord-%ld\","
	                "\"userId\":\"user-%ld\",\"items\":%s,\"totalAmount\":"
	                "%.2f,\"timestamp\":\"%s\"}",
	                n, n % 500, items, total, when);
}

/* 95 % valid on the four channels (30 % of them high), 3 % malformed,
 * 2 % on a channel no queue is bound for. */
static int notification(long n, uint64_t h, char *buf, size_t cap,
                        struct load_msg *m)
{
	static const char *const channels[] = {"email", "sms", "push",
	                                       "websocket"};
	unsigned roll = (unsigned)(h % 100);
	int ch = (int)((h >> 8) % 4);
	const char *channel = channels[ch];
	const char *prio = (h >> 16) % 10 < 3 ? "high" : "normal";
	const char *bad_prio = NULL;
	char when[32], to[64];

	m->exchange = "notifications";
	m->kind = ch;
	if (roll >= 95 && roll < 98) {
		m->kind = 4;
		bad_prio = "urgent"; /* not high or normal */
	} else if (roll >= 98) {
		m->kind = 5;
		channel = "fax";
	}
	iso_now(when, sizeof(when));
	if (strcmp(channel, "email") == 0)
		snprintf(to, sizeof(to), "user%ld@example.com", n % 500);
	else
		snprintf(to, sizeof(to), "user-%ld", n % 500);
	snprintf(m->routing_key, sizeof(m->routing_key), "notification.%s.%s",
	         channel, prio);
	m->priority = strcmp(prio, "high") == 0 ? 10 : 1;
	return snprintf(buf, cap,
	                "{\"id\":\"notif-%ld\",\"type\":\"%s\",\"recipient\":"
	                "\"%s\",\"message\":\"Your order ord-%ld has "
	                "shipped\",\"priority\":\"%s\",\"timestamp\":\"%s\","
	                "\"attempts\":0,\"maxAttempts\":3}",
	                n, channel, to, n, bad_prio ? bad_prio : prio, when);
}

int load_mix_next(enum load_mix mix, long n, char *buf, size_t cap,
                  struct load_msg *m)
{
	uint64_t h = mix64((uint64_t)n);
	int len;

	memset(m, 0, sizeof(*m));
	len = mix == LOAD_MIX_ORDERS ? order(n, h, buf, cap, m)
	                             : notification(n, h, buf, cap, m);
	/* Bodies fit in 1 KiB; a cut one would be a malformed message. */
	return len < (int)cap ? len : (int)cap - 1;
}
