/* main.c - warrend's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "warren.h"

#ifndef WARREN_CONF_PATH
#define WARREN_CONF_PATH "/usr/local/etc/warren/warren.conf"
#endif

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: warrend [-t] [-c FILE]\n"
	        "       warrend -h | -V\n"
	        "\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -t       check the configuration and load every plugin, "
	        "then exit\n"
	        "  -h       this help\n"
	        "  -V       version and plugin ABI\n"
	        "\n"
	        "Environment: WARREN_AMQP_URL overrides broker.url, "
	        "WARREN_AMQP_PASSWORD the\npassword, WARREN_PLUGIN_DIR "
	        "plugin_dir, WARREN_HTTP_LISTEN http.listen.\n",
	        WARREN_CONF_PATH);
}

int main(int argc, char **argv)
{
	const char *conf = WARREN_CONF_PATH;
	int check = 0, opt;

	while ((opt = getopt(argc, argv, "c:thV")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("warrend %s (plugin ABI %d.%d)\n",
			       WARREN_VERSION, WARREN_ABI_MAJOR,
			       WARREN_ABI_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return check ? wd_daemon_check(conf) : wd_daemon_run(conf);
}
