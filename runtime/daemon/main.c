/* main.c - warrend's command line. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/install.h"
#include "daemon/daemon.h"
#include "warren.h"

#ifndef WARREN_CONF_PATH
#define WARREN_CONF_PATH "/usr/local/etc/warren/warren.conf"
#endif
/* Where it lies from the installed warrend, for a moved install. */
#ifndef WARREN_REL_CONF_PATH
#define WARREN_REL_CONF_PATH ""
#endif

static void usage(FILE *f, const char *conf)
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
	        conf);
}

int main(int argc, char **argv)
{
	char installed[PATH_MAX];
	const char *def =
	    wd_install_path(WARREN_REL_CONF_PATH, WARREN_CONF_PATH, installed,
	                    sizeof(installed));
	const char *conf = def;
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
			usage(stdout, def);
			return 0;
		case 'V':
			printf("warrend %s (plugin ABI %d.%d)\n",
			       WARREN_VERSION, WARREN_ABI_MAJOR,
			       WARREN_ABI_MINOR);
			return 0;
		default:
			usage(stderr, def);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, def);
		return 2;
	}
	return check ? wd_daemon_check(conf) : wd_daemon_run(conf);
}
