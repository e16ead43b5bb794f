/* main.c - warrend's command line. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/install.h"
#include "base/log.h"
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
	        "usage: warrend [-t] [-c FILE] [-p FILE]\n"
	        "       warrend -h | -V\n"
	        "\n"
	        "  -c, --config FILE   configuration file (default %s)\n"
	        "  -p, --pidfile FILE  write the pid to FILE (locked; "
	        "refused if a running\n"
	        "                      warrend holds it; removed at exit)\n"
	        "  -t, --test          check the configuration and load "
	        "every plugin, then exit\n"
	        "  -h, --help          this help\n"
	        "  -V, --version       version and plugin ABI\n"
	        "\n"
	        "Environment: WARREN_AMQP_URL overrides broker.url, "
	        "WARREN_AMQP_PASSWORD the\npassword, WARREN_PLUGIN_DIR "
	        "plugin_dir, WARREN_HTTP_LISTEN http.listen.\n"
	        "Under systemd (Type=notify) it reports through "
	        "NOTIFY_SOCKET, and logs with\nsyslog priorities when "
	        "stderr is the journal (JOURNAL_STREAM).\n",
	        conf);
}

int main(int argc, char **argv)
{
	char installed[PATH_MAX];
	const char *def =
	    wd_install_path(WARREN_REL_CONF_PATH, WARREN_CONF_PATH, installed,
	                    sizeof(installed));
	const char *conf = def, *pidfile = NULL;
	int check = 0, opt;
	static const struct option longs[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"pidfile", required_argument, NULL, 'p'},
	    {"test", no_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};

	while ((opt = getopt_long(argc, argv, "c:p:thV", longs, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'p':
			pidfile = optarg;
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
	/* Before any line is logged and any thread starts (-t runs as
	 * ExecStartPre= and ExecReload= too). */
	wd_log_detect_journal();
	if (check)
		return wd_daemon_check(conf);
	return wd_daemon_run(conf, pidfile);
}
