#!/usr/bin/env bash
# check_deb.sh - build the Debian packages (packaging/debian/build.sh) and
# check them, without installing them on this machine:
#   - each package's file list, exactly (a stray or a missing file fails);
#   - the control fields: Depends from dpkg-shlibdeps (librabbitmq4, ...),
#     warren-dev's on warren (= version); conffiles; the maintainer
#     scripts parse (sh -n); binaries stripped;
#   - lintian: no error (its warnings are printed);
#   - the contents work: both packages extracted (dpkg-deb -x) into a temp
#     dir, its warrend -t finds its conf and plugins relative to itself,
#     and a plugin built with the extracted warren.h / warren.pc loads.
#
#   tests/package/check_deb.sh [BUILD_DIR]   default: build-deb/ in the tree
#
# Run once by ./dev.sh test (skipped when dpkg-deb is missing). Exit 0 when
# every check passed.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(realpath -m "${1:-$SRC/build-deb}")

# The man pages CMake installs to ${CMAKE_INSTALL_MANDIR}/manN: section 3
# belongs to warren-dev, the others to warren; each is checked as .gz.
MAN_PAGES=(warrend.8 warren.conf.5 warrenctl.1 warren-load.1 warren-plugin.3)

FAILS=0
fail() {
    printf 'check_deb: FAIL: %s\n' "$*" >&2
    FAILS=$((FAILS + 1))
}
ok() { printf 'check_deb: ok: %s\n' "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check_deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# lintian leaves temp files in TMPDIR: in WORK, they go with it.
export TMPDIR=$WORK

MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ARCH=$(dpkg --print-architecture)
VERSION=$(sed -n 's/^project(warren VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")-1

"$SRC/packaging/debian/build.sh" "$BUILD" >"$WORK/debs" 2>"$WORK/build.log" || {
    cat "$WORK/build.log" >&2
    fail "packaging/debian/build.sh failed (log above)"
    exit 1
}
DEB=$BUILD/warren_${VERSION}_${ARCH}.deb
DEV=$BUILD/warren-dev_${VERSION}_${ARCH}.deb
for f in "$DEB" "$DEV"; do
    [[ -f $f ]] || fail "no $f (made: $(tr '\n' ' ' <"$WORK/debs"))"
done
((FAILS == 0)) || exit 1

# ------------------------------------------------------------ file lists

expect_warren=(
    /etc/warren/warren.conf
    /lib/systemd/system/warrend.service
    /usr/bin/warrend
    /usr/bin/warrenctl
    /usr/bin/warren-load
    "/usr/lib/$MA/warren/plugins/user_signup.so"
    "/usr/lib/$MA/warren/plugins/order_created.so"
    "/usr/lib/$MA/warren/plugins/email_send.so"
    "/usr/lib/$MA/warren/plugins/orders.so"
    "/usr/lib/$MA/warren/plugins/notifications.so"
    /usr/share/doc/warren/examples/orders.conf
    /usr/share/doc/warren/examples/notifications.conf
    /usr/share/doc/warren/copyright
    /usr/share/doc/warren/changelog.Debian.gz
)
expect_dev=(
    /usr/include/warren.h
    "/usr/lib/$MA/pkgconfig/warren.pc"
    /usr/share/doc/warren-dev/copyright
    /usr/share/doc/warren-dev/changelog.Debian.gz
)
for page in "${MAN_PAGES[@]}"; do
    section=${page##*.}
    if [[ $section == 3 ]]; then
        expect_dev+=("/usr/share/man/man$section/$page.gz")
    else
        expect_warren+=("/usr/share/man/man$section/$page.gz")
    fi
done

# check_files DEB EXPECTED...: the package's files and links (not its
# directories) are exactly EXPECTED.
check_files() {
    local deb=$1 name
    shift
    name=$(basename "$deb")
    printf '%s\n' "$@" | sort >"$WORK/want"
    dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|' | grep -v '/$' |
        sort >"$WORK/got"
    if diff -u "$WORK/want" "$WORK/got" >"$WORK/diff"; then
        ok "$name: the $# expected files"
    else
        fail "$name: files differ from the expected list (- missing, + stray):"
        sed -n '3,$p' "$WORK/diff" | grep '^[-+]' >&2
    fi
}
check_files "$DEB" "${expect_warren[@]}"
check_files "$DEV" "${expect_dev[@]}"

# ------------------------------------------------------------ control

field() { dpkg-deb -f "$1" "$2"; }
# depends DEB: the package names of its Depends, one a line.
depends() { field "$1" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//'; }

check_field() { # DEB FIELD VALUE
    local got
    got=$(field "$1" "$2")
    if [[ $got == "$3" ]]; then
        ok "$(basename "$1"): $2: $3"
    else
        fail "$(basename "$1"): $2 is '$got', not '$3'"
    fi
}
check_field "$DEB" Package warren
check_field "$DEV" Package warren-dev
check_field "$DEB" Section net
check_field "$DEV" Section libdevel
for d in "$DEB" "$DEV"; do
    check_field "$d" Version "$VERSION"
    check_field "$d" Architecture "$ARCH"
    check_field "$d" Priority optional
    [[ -n $(field "$d" Maintainer) ]] || fail "$(basename "$d"): no Maintainer"
    # A summary line and a long description.
    (($(field "$d" Description | wc -l) >= 3)) ||
        fail "$(basename "$d"): no long Description"
done

# From dpkg-shlibdeps: the libraries warrend and the plugins link; adduser
# for the postinst.
for p in adduser libc6 librabbitmq4 libconfuse2 libjansson4 libmicrohttpd12 \
    libsystemd0 libssl3; do
    depends "$DEB" | grep -qx "$p" || fail "warren: Depends lacks $p: $(field "$DEB" Depends)"
done
field "$DEV" Depends | tr ',' '\n' | sed 's/^ *//' | grep -qxF "warren (= $VERSION)" ||
    fail "warren-dev: Depends lacks 'warren (= $VERSION)': $(field "$DEV" Depends)"
for p in libjansson-dev pkg-config; do
    depends "$DEV" | grep -qx "$p" || fail "warren-dev: Depends lacks $p"
done
ok "Depends: $(field "$DEB" Depends) | $(field "$DEV" Depends)"

mkdir "$WORK/ctl" "$WORK/ctl-dev"
dpkg-deb -e "$DEB" "$WORK/ctl"
dpkg-deb -e "$DEV" "$WORK/ctl-dev"
if [[ $(cat "$WORK/ctl/conffiles" 2>/dev/null) == /etc/warren/warren.conf ]]; then
    ok "warren: conffiles: /etc/warren/warren.conf"
else
    fail "warren: conffiles is not /etc/warren/warren.conf alone"
fi
[[ ! -e $WORK/ctl-dev/conffiles ]] || fail "warren-dev has conffiles"
for s in postinst prerm postrm; do
    f=$WORK/ctl/$s
    if [[ ! -f $f ]]; then
        fail "warren: no $s"
    elif ! sh -n "$f"; then
        fail "warren: $s does not parse (sh -n)"
    elif [[ $(stat -c %a "$f") != 755 ]]; then
        fail "warren: $s is mode $(stat -c %a "$f"), not 755"
    else
        ok "warren: $s parses, mode 755"
    fi
done
# The adduser call, its continuation lines joined.
sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$WORK/ctl/postinst" |
    grep -q 'adduser .*--system .*--group .* warren$' ||
    fail "warren: the postinst does not create the warren system user"

# ------------------------------------------------------------ lintian

if lintian --pedantic --info --fail-on error "$DEB" "$DEV" >"$WORK/lintian" 2>&1; then
    ok "lintian: no error ($(grep -c '^W:' "$WORK/lintian" || true) warnings)"
else
    fail "lintian reports errors"
fi
grep -E '^[EW]:' "$WORK/lintian" | sed 's/^/check_deb:   lintian /' >&2 || true

# ------------------------------------------------------------ contents

ROOTFS=$WORK/root
dpkg-deb -x "$DEB" "$ROOTFS"
dpkg-deb -x "$DEV" "$ROOTFS"
for b in warrend warrenctl warren-load "lib/$MA/warren/plugins/user_signup.so"; do
    f=$ROOTFS/usr/bin/$b
    [[ $b == lib/* ]] && f=$ROOTFS/usr/$b
    file -b "$f" | grep -q ', stripped' || fail "$b is not stripped"
done
grep -qx 'ExecStart=/usr/bin/warrend -c /etc/warren/warren.conf' \
    "$ROOTFS/lib/systemd/system/warrend.service" ||
    fail "warrend.service: ExecStart is not /usr/bin/warrend -c /etc/warren/warren.conf"

# The extracted warrend with its defaults: the conf and plugin dir relative
# to itself (the paths compiled in, /etc and /usr/lib, are not there).
wd=$ROOTFS/usr/bin/warrend
if (cd / && env -u WARREN_PLUGIN_DIR -u WARREN_AMQP_URL "$wd" -t) >"$WORK/t.out" 2>&1 &&
    grep -qF "configuration $ROOTFS/etc/warren/warren.conf is ok: 3 plugin(s)" "$WORK/t.out"; then
    ok "the extracted warrend -t: its conf, its 3 plugins"
else
    fail "the extracted warrend -t failed:"
    cat "$WORK/t.out" >&2
fi

# A plugin built with the extracted SDK only (warren.pc finds its prefix
# from where it lies), loaded by the extracted warrend.
pcdir=$ROOTFS/usr/lib/$MA/pkgconfig
if PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir:/usr/lib/$MA/pkgconfig:/usr/share/pkgconfig \
    sh -c 'cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -Wl,--no-undefined \
        $(pkg-config --cflags warren) "$1" $(pkg-config --libs warren) -o "$2"' sh \
    "$SRC/tests/integration/outside/greeter.c" "$WORK/greeter.so" >"$WORK/cc.out" 2>&1; then
    cat >"$WORK/greeter.conf" <<CONF
broker { url = "amqp://guest:guest@127.0.0.1:5672" }
exchange "greet.x" { type = "topic" }
exchange "greet.dlx" { type = "fanout" }
queue "greet.q" { dead_letter_exchange = "greet.dlx" }
binding { exchange = "greet.x" queue = "greet.q" key = "#" }
plugin "greeter" { path = "$WORK/greeter.so" }
route "greet" { queue = "greet.q" plugin = "greeter" handler = "greet" }
CONF
    if (cd / && env -u WARREN_PLUGIN_DIR -u WARREN_AMQP_URL "$wd" -t -c "$WORK/greeter.conf") \
        >"$WORK/g.out" 2>&1 && grep -q 'is ok: 1 plugin(s)' "$WORK/g.out"; then
        ok "a plugin built with the extracted warren-dev loads in the extracted warrend"
    else
        fail "the plugin built with the extracted warren-dev does not load:"
        cat "$WORK/g.out" >&2
    fi
else
    fail "building a plugin with the extracted warren-dev failed:"
    cat "$WORK/cc.out" >&2
fi
incdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=includedir warren)
[[ $(realpath -m "$incdir") == "$ROOTFS/usr/include" ]] ||
    fail "the extracted warren.pc's includedir is $incdir, not $ROOTFS/usr/include"
plugindir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=plugindir warren)
[[ -f $plugindir/email_send.so ]] ||
    fail "the extracted warren.pc's plugindir $plugindir holds no email_send.so"

if ((FAILS)); then
    echo "check_deb: $FAILS check(s) failed" >&2
    exit 1
fi
echo "check_deb: all checks passed ($(basename "$DEB"), $(basename "$DEV"))" >&2
