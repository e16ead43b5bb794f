# package.cmake - `cpack -G DEB`: the Debian packages, one per install
# COMPONENT: daemon -> warren (warrend, warrenctl, warren-load, the example
# plugins, the unit, the conf, man pages but warren-plugin(3)), dev ->
# warren-dev (warren.h, warren.pc, warren-plugin(3)).
#
# Meant for a build configured with -DCMAKE_INSTALL_PREFIX=/usr (the paths
# compiled into warrend are the package's); tests/package/check_deb.sh
# builds the packages and checks them. Included last by CMakeLists.txt,
# after every install() rule.

set(WARREN_DEB_MAINTAINER
  "warren maintainers <maintainers@users.noreply.b-seed-f0ebb37a.example>"
  CACHE STRING "the Maintainer field of the Debian packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME warren)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${WARREN_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${WARREN_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # NAME_VERSION-RELEASE_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

# Every component is its own package; a rule without COMPONENT would land
# in "Unspecified", which is not listed here, so it is left out of both
# packages and the file-list check reports it missing.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL daemon dev)
set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME warren)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME warren-dev)

# Stage with DESTDIR at the configured prefix: the rules with absolute
# destinations (/etc/warren, /lib/systemd/system) then land in the staging
# tree, never on this machine, and the package's paths are the ones
# compiled into warrend.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")

# Debian ships stripped binaries (lintian: unstripped-binary-or-object);
# the debug info stays in the build tree's warrend.
set(CPACK_STRIP_FILES ON)

# Depends: from dpkg-shlibdeps on the ELF files (warrend's librabbitmq4,
# libconfuse2, ...), after the ones listed here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

# Staged files Debian wants that a plain `cmake --install` does not
# (CPACK_* variables reach the script through CPackConfig.cmake):
# man pages gzip -9n, copyright and changelog.Debian.gz in each package's
# /usr/share/doc/PACKAGE.
set(CPACK_WARREN_DEB_DIR "${PROJECT_SOURCE_DIR}/packaging/debian")
set(CPACK_WARREN_DEB_PACKAGES "daemon=warren;dev=warren-dev")
set(CPACK_PRE_BUILD_SCRIPTS "${CPACK_WARREN_DEB_DIR}/stage.cmake")

# warren: the daemon. adduser: the postinst creates the warren system user
# (the unit's User=); deb-systemd-helper is init-system-helpers (essential).
set(CPACK_DEBIAN_DAEMON_PACKAGE_SECTION net)
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_DAEMON_DESCRIPTION "RabbitMQ consumer daemon with C handler plugins
warrend consumes from RabbitMQ and hands each message to a handler in a
plugin (a shared object written against one SDK header), routed by message
type. It owns the broker side: a pool of connections, prefetch, JSON
parsing, acknowledgements, delayed retries, dead-lettering with reasons,
reconnects, hot reload of plugins and routes on SIGHUP and a bounded
graceful stop. It serves Prometheus metrics and health checks over HTTP.

This package holds warrend, warrenctl (status and reports from a running
warrend), warren-load (a publisher load), three example plugins, the
reference configuration and a systemd unit (not enabled at install).")

# The maintainer scripts and conffiles of warren, with this build's paths.
# conffiles is listed by hand: CPack (3.25, Debian 12) marks no file as a
# conffile by itself, not even those under /etc (dh_installdeb would);
# without it an upgrade would overwrite an edited warren.conf.
set(WARREN_DEB_CONTROL_DIR "${PROJECT_BINARY_DIR}/debian/warren")
foreach(f conffiles postinst prerm postrm)
  configure_file("${CPACK_WARREN_DEB_DIR}/warren.${f}"
    "${WARREN_DEB_CONTROL_DIR}/${f}" @ONLY)
  list(APPEND CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
    "${WARREN_DEB_CONTROL_DIR}/${f}")
endforeach()
# 0755 for the scripts, 0644 for conffiles, whatever the checkout's modes.
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

# warren-dev: what a plugin is built with. Depends on warren of the same
# version (the header's ABI is that daemon's; warren.pc's plugindir is its
# directory) and on libjansson-dev (warren.pc: Requires: jansson; plugins
# read the parsed message as a json_t) and pkg-config.
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_COMPONENT_DEV_DEPENDS daemon)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjansson-dev, pkg-config")
set(CPACK_DEBIAN_DEV_DESCRIPTION "SDK for warren handler plugins
The header warren.h and the pkg-config file warren.pc to build handler
plugins for warrend, the RabbitMQ consumer daemon of the warren package:
cc -shared -fPIC $(pkg-config --cflags warren) my.c
$(pkg-config --libs warren) -o my.so.
warren-plugin(3) documents the plugin API.")

include(CPack)
