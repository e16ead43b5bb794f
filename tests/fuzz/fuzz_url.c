/* fuzz_url.c - the broker's addresses and credentials (broker/broker.c:
 * wd_broker_init, over rabbitmq-c's amqp_parse_url) and a listen address
 * (base/listen.c: wd_listen_parse), from text an operator or the
 * environment (WARREN_AMQP_URL) gives. The oracle beyond memory safety:
 * the redacted form warrend logs never holds the password, nor does an
 * error.
 *
 * Input: up to 4 URLs, one per line; the first line is also a listen
 * address. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/listen.h"
#include "base/log.h"
#include "broker/broker.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	wd_log_set_level(WD_LOG_ERROR);
	unsetenv("WARREN_AMQP_PASSWORD");
	return 0;
}

/* Whether the password shows where it should not: in what is logged.
 * Only a password that could not be there by chance counts: 6 bytes or
 * more (past any port's digits and "amqps"), none of the separators the
 * redacted form puts between its parts (so not spanning two of them),
 * and not inside the user, host or vhost (logged on purpose). */
static bool leaks(const struct wd_broker_addr *a)
{
	const char *pw = a->password;

	if (!pw || strlen(pw) < 6 || strpbrk(pw, ":@/[]"))
		return false;
	if (strstr(a->info.user, pw) || strstr(a->info.host, pw) ||
	    strstr(a->info.vhost, pw))
		return false;
	return strstr(a->redacted, pw) || strstr(a->node, pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *urls[4], *save = NULL, *line;
	struct wd_conf_broker conf = {.heartbeat = 30, .connect_timeout = 5};
	struct wd_broker b;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char err[512];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (line = strtok_r(text, "\n", &save); line && conf.nurls < 4;
	     line = strtok_r(NULL, "\n", &save)) {
		if (conf.nurls == 0)
			(void)wd_listen_parse(line, &ss, &sslen);
		urls[conf.nurls++] = line;
	}
	conf.urls = urls;
	err[0] = '\0';
	if (wd_broker_init(&b, &conf, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < b.naddrs; i++)
			if (leaks(&b.addrs[i]))
				__builtin_trap();
		wd_broker_free(&b);
	} else if (err[0] == '\0') {
		__builtin_trap(); /* a refusal says why */
	}
	free(text);
	return 0;
}
