/* install.h - where an installed warrend finds its files.
 *
 * The configure-time paths (the conf, the plugin dir) hold for an install
 * where CMake put it. An install that was moved -- `cmake --install --prefix
 * P` of a build configured for another prefix, a package staged in a
 * directory -- has the same layout under another root, so each path is also
 * known relative to the directory of the warrend binary, and used when it
 * exists there. */
#ifndef WD_INSTALL_H
#define WD_INSTALL_H

#include <stddef.h>

/* The path `rel` names relative to the running binary's directory, if it
 * exists (resolved into buf), else `configured`. */
const char *wd_install_path(const char *rel, const char *configured, char *buf,
                            size_t len);

#endif
