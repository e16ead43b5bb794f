#!/usr/bin/env bash
# build.sh - build warren's Debian packages: a build of their own, configured
# for /usr with Debian's build flags (dpkg-buildflags, all hardening: the
# flags a Debian package is built with), then `cpack -G DEB`.
#
#   packaging/debian/build.sh [BUILD_DIR]    default: build-deb/ in the tree
#
# Prints the paths of the .debs it made (warren_*.deb, warren-dev_*.deb),
# one a line, on stdout. Needs dpkg-dev (dpkg-shlibdeps, dpkg-buildflags)
# and file(1) (CPack finds the ELF files with it).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(realpath -m "${1:-$SRC/build-deb}")

# Run from the source dir: -ffile-prefix-map maps it to "." in the debug
# info (dpkg-buildflags takes the current dir).
cd "$SRC"
flag() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
# Given as -D, so that they hold on every configure (CMake reads CFLAGS and
# LDFLAGS from the environment at the first one only); CPPFLAGS
# (_FORTIFY_SOURCE) CMake never reads: it goes into CFLAGS.
CFLAGS="$(flag CFLAGS) $(flag CPPFLAGS)"
LDFLAGS=$(flag LDFLAGS)

cmake -S "$SRC" -B "$BUILD" -DCMAKE_INSTALL_PREFIX=/usr -DWARREN_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS=$CFLAGS" "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS" \
    "-DCMAKE_MODULE_LINKER_FLAGS=$LDFLAGS" >&2
cmake --build "$BUILD" -j2 >&2
# A fresh staging tree and no .deb of an earlier run.
rm -rf "$BUILD/_CPack_Packages"
rm -f "$BUILD"/*.deb
(cd "$BUILD" && cpack -G DEB) >&2
ls "$BUILD"/*.deb
