/* fuzz_conf.c - the config text, as an operator may write it, through the
 * whole load (conf/: the text checks, libconfuse's parse with warren's
 * validators, the model and its cross-checks): wd_conf_load_text. Every
 * error path must free what it made (LeakSanitizer says if not) and name
 * the place, "fuzz.conf:LINE: ...". A conf that loads loads again the
 * same, and the diff a reload runs (conf_diff.c) finds nothing changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "conf/conf.h"
#include "conf/conf_diff.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	wd_log_set_level(WD_LOG_ERROR);
	/* The loader's environment overrides, fixed: no URL or listen
	 * address from outside, and a plugin_dir that is not looked up
	 * from /proc/self/exe. */
	unsetenv("WARREN_AMQP_URL");
	unsetenv("WARREN_HTTP_LISTEN");
	setenv("WARREN_PLUGIN_DIR", "/nonexistent/warren-fuzz", 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	struct wd_conf *c = wd_conf_load_text("fuzz.conf", (const char *)data,
	                                      size, err, sizeof(err));

	if (!c) {
		if (strncmp(err, "fuzz.conf:", 10) != 0)
			__builtin_trap(); /* an error names the file */
		return 0;
	}
	if (err[0] != '\0' || c->broker.nurls == 0)
		__builtin_trap();
	struct wd_conf *again = wd_conf_load_text(
	    "fuzz.conf", (const char *)data, size, err, sizeof(err));
	if (!again)
		__builtin_trap(); /* the same text loads the same way */
	/* And a reload to it would change nothing. */
	struct wd_conf_diff d;
	wd_conf_diff(c, again, &d);
	if (!wd_conf_same_pool(c, again) || !wd_conf_same_topology(c, again) ||
	    d.routes_added || d.routes_removed || d.routes_changed ||
	    d.queues_added || d.queues_removed)
		__builtin_trap();
	for (size_t q = 0; q < c->nqueues; q++)
		if (!wd_conf_same_consumer(c, q, again, q))
			__builtin_trap();
	wd_conf_free(again);
	wd_conf_free(c);
	return 0;
}
