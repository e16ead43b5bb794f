/* amqp_compat.h - include rabbitmq-c whether its headers are <amqp.h>
 * (0.11, Debian 12) or <rabbitmq-c/amqp.h> (0.12 and later). */
#ifndef WD_AMQP_COMPAT_H
#define WD_AMQP_COMPAT_H

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#define WD_RABBITMQ_C_DIR 1
#endif
#endif

#ifdef WD_RABBITMQ_C_DIR
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#endif

#endif
