/* new_plugin.h - `warrenctl new-plugin`: write a ready-to-build plugin. */
#ifndef WC_NEW_PLUGIN_H
#define WC_NEW_PLUGIN_H

#include <stdio.h>

/* The usage lines of the command, for warrenctl's usage. */
void wc_new_plugin_usage(FILE *f);

/* warrenctl new-plugin [--force] NAME [DIR]: argv holds what follows
 * "new-plugin". Writes DIR/NAME.c, DIR/Makefile and DIR/NAME.conf (DIR
 * defaults to ./NAME, made if missing). Returns the exit code: 0 written,
 * 1 not written (a file exists, a write failed), 2 bad usage or NAME. */
int wc_new_plugin(int argc, char **argv);

#endif
