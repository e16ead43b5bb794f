/* it_apps.h - what the tests of the example applications share
 * (the confs of conf/examples run as shipped): a vhost of the test's own, since
 * the examples' queue names are fixed, and the example conf with the
 * build's plugin dir and some params overridden. */
#ifndef IT_APPS_H
#define IT_APPS_H

#include <stddef.h>

#include "harness.h"

/* Make a vhost of this test's own (rabbitmqctl add_vhost,
 * set_permissions for guest) and point WARREN_TEST_AMQP_URL at it, so the
 * harness's helpers and warrend use it. Skips the test if the broker is
 * not the harness's (WARREN_TEST_BROKER_DIR unset: no rabbitmqctl). */
/* Returns the vhost's name. */
const char *it_apps_vhost(void);

/* The broker's `rabbitmqctl list_queues -p VHOST name arguments` output
 * (malloc'd), for checking what a conf declared. */
char *it_apps_queue_arguments(const char *vhost);

/* conf/examples/<file> with plugin_dir set to the build's plugins and
 * `params` ("key = \"value\"" lines, may be NULL) added at the end of its
 * plugin's params block, where they win over the file's (malloc'd). */
char *it_apps_conf(const char *file, const char *params);

/* The same for two example files, concatenated as ./dev.sh demo does,
 * each with its params. */
char *it_apps_conf2(const char *file0, const char *params0, const char *file1,
                    const char *params1);

/* Publish body to exchange/rk as the tutorial's clients do: persistent,
 * content type application/json, message id `id`, timestamp now, and
 * AMQP priority `priority` if > 0. */
void it_apps_publish(amqp_connection_state_t c, const char *exchange,
                     const char *rk, const char *id, int priority,
                     const char *body);

/* Take every message of a dead-letter queue (basic.get, acked) and return
 * one line per message, "<x-warren-reason>: <x-warren-reason-text>\n"
 * (malloc'd): workers run side by side, so the order of dead-letters is
 * not the order of publishing; tests look for lines in it. */
char *it_apps_drain_dead(const char *queue);

/* Fails the test unless `dead` (from it_apps_drain_dead) has a line that
 * starts with "<reason>: " and holds `text`. */
void it_apps_expect_dead(const char *dead, const char *reason,
                         const char *text);

#endif
