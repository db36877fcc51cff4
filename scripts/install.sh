#!/usr/bin/env bash
# `make install` / `make uninstall` (README, "Install"). SPEC §8's layout under
# DESTDIR+PREFIX: bin/tollgate, lib/tollgate/libTollgatePolicy.so, lib/tollgate/plugins/libtollgate-*.so,
# lib/systemd/system/tollgate.service (paths substituted), share/man/man8/tollgate.8,
# and under DESTDIR+SYSCONFDIR tollgate/tollgate.yaml and tollgate/policies/*.yaml.
# The configuration files are installed only where there is none (an upgrade keeps
# yours), and uninstalled only when they are still the example, unchanged.
# Environment: PREFIX (/usr/local), DESTDIR (empty), SYSCONFDIR (PREFIX/etc),
# BINDIR (.build/CONFIG: where the built products are).
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?install or uninstall}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-$PREFIX/etc}
CONFIG=${CONFIG:-release}
BINDIR=${BINDIR:-.build/$CONFIG}
DESTDIR=${DESTDIR:-}
# The group the service runs as (the unit's Group=): it must read the configuration.
GROUP=${TOLLGATE_GROUP:-tollgate}
root=$DESTDIR$PREFIX
etc=$DESTDIR$SYSCONFDIR/tollgate
# The bundled plugins: the products between the markers in Package.swift.
plugins=$(sed -n '/BEGIN plugin products/,/END plugin products/s/.*name: "\(tollgate-[a-z0-9-]*\)".*/lib\1.so/p' Package.swift)
policies=$(cd policies && ls *.yaml)

unit() {
    sed -e "s|/usr/local/bin/tollgate|$PREFIX/bin/tollgate|g" \
        -e "s|/etc/tollgate/|$SYSCONFDIR/tollgate/|g" \
        -e "s|assume PREFIX=/usr/local and the|were made for PREFIX=$PREFIX, with the|" \
        -e "s|configuration in /etc/tollgate\.|configuration in $SYSCONFDIR/tollgate.|" \
        dist/systemd/tollgate.service
}

# Installs $1 as $2 (mode $3) unless $2 exists: configuration the operator may have edited.
installed_config=()
keep_or_install() {
    if [ -e "$2" ]; then
        echo "kept $2 (exists)"
    else
        install -m "$3" "$1" "$2"
        installed_config+=("$2")
    fi
}

# Removes $2 if it is the same as $1 (the example as installed).
remove_if_unchanged() {
    if [ -e "$2" ]; then
        if cmp -s "$1" "$2"; then rm -f "$2"; else echo "kept $2 (changed)"; fi
    fi
}

case $action in
install)
    [ -x "$BINDIR/tollgate" ] || { echo "no $BINDIR/tollgate: build first (swift build -c $CONFIG)" >&2; exit 1; }
    install -d "$root/bin" "$root/lib/tollgate/plugins" "$root/lib/systemd/system" "$root/share/man/man8" "$etc/policies"
    install -m 0755 "$BINDIR/tollgate" "$root/bin/tollgate"
    # The plugin API library the relay and every plugin share (the binary's RUNPATH
    # has $ORIGIN/../lib/tollgate; a plugin finds it already loaded).
    install -m 0755 "$BINDIR/libTollgatePolicy.so" "$root/lib/tollgate/libTollgatePolicy.so"
    for p in $plugins; do
        [ -f "$BINDIR/$p" ] || { echo "no $BINDIR/$p: build first" >&2; exit 1; }
        install -m 0755 "$BINDIR/$p" "$root/lib/tollgate/plugins/$p"
    done
    unit > "$root/lib/systemd/system/tollgate.service"
    chmod 0644 "$root/lib/systemd/system/tollgate.service"
    install -m 0644 dist/man/tollgate.8 "$root/share/man/man8/tollgate.8"
    keep_or_install dist/tollgate.yaml "$etc/tollgate.yaml" 0640
    for f in $policies; do keep_or_install "policies/$f" "$etc/policies/$f" 0640; done
    # The service (User=tollgate, Group=tollgate) reads the configuration through its
    # group: the folders are 0750 and the files installed now 0640, group $GROUP. Files
    # kept from before keep their owner and mode.
    if getent group "$GROUP" >/dev/null; then
        # Not root (a packager's DESTDIR): say so and go on; the package sets the group.
        if chgrp "$GROUP" "$etc" "$etc/policies" ${installed_config[@]+"${installed_config[@]}"} 2>/dev/null; then
            chmod 0750 "$etc" "$etc/policies"
        else
            echo "cannot give $etc to the group $GROUP here (not root?): chgrp -R $GROUP $SYSCONFDIR/tollgate when installing"
        fi
    else
        echo "no group $GROUP here: create the service's user, then give it the configuration:"
        echo "  useradd --system --user-group --home-dir /var/lib/tollgate --shell /usr/sbin/nologin $GROUP"
        echo "  chgrp -R $GROUP $SYSCONFDIR/tollgate && chmod 0750 $SYSCONFDIR/tollgate $SYSCONFDIR/tollgate/policies"
    fi
    echo "installed tollgate in $root (configuration in $etc)"
    ;;
uninstall)
    rm -f "$root/bin/tollgate" "$root/share/man/man8/tollgate.8" "$root/lib/tollgate/libTollgatePolicy.so"
    for p in $plugins; do rm -f "$root/lib/tollgate/plugins/$p"; done
    if [ -e "$root/lib/systemd/system/tollgate.service" ]; then
        if unit | cmp -s - "$root/lib/systemd/system/tollgate.service"; then
            rm -f "$root/lib/systemd/system/tollgate.service"
        else
            echo "kept $root/lib/systemd/system/tollgate.service (changed)"
        fi
    fi
    remove_if_unchanged dist/tollgate.yaml "$etc/tollgate.yaml"
    for f in $policies; do remove_if_unchanged "policies/$f" "$etc/policies/$f"; done
    # Only Tollgate's own folders, and only when empty.
    rmdir "$root/lib/tollgate/plugins" "$root/lib/tollgate" "$etc/policies" "$etc" 2>/dev/null || true
    echo "uninstalled tollgate from $root"
    ;;
*)
    echo "usage: $0 install|uninstall" >&2
    exit 2
    ;;
esac
