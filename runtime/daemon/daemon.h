/* daemon.h - warrend's life cycle: load, check, run, stop. */
#ifndef WD_DAEMON_H
#define WD_DAEMON_H

/* `warrend -t`: load the conf and every plugin (with init and fini), print
 * the result. Returns the process exit code. */
int wd_daemon_check(const char *conf_path);

/* Run until SIGTERM or SIGINT, with the pid in pidfile (if not NULL: held
 * from start to exit, refused if a live warrend holds it). Tells systemd
 * (daemon/notify.h) when it is ready, reloading and stopping. Returns the
 * process exit code. */
int wd_daemon_run(const char *conf_path, const char *pidfile);

#endif
