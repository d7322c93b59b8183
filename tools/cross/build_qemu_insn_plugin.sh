#!/usr/bin/env bash
# Build QEMU's instruction-counting TCG plugin (tests/plugin/bb.c, inline mode) for the installed
# qemu-user. Debian's qemu-user supports -plugin but ships no plugins, so this takes the plugin
# source and its header from the Debian source package of the *same* qemu version (the plugin API
# version must match) and compiles it against glib. Nothing of QEMU is kept in this repository:
# the source goes to DIR (default /opt/lfm-tools/qemu-src) and the plugin to DIR/libbb.so.
#   build_qemu_insn_plugin.sh [DIR]      -> prints the path of libbb.so
# Needs: qemu-user, dpkg-dev, libglib2.0-dev, a deb-src entry for Debian (this script adds one for
# the suites of the configured deb entries if apt has none).
set -euo pipefail
DIR=${1:-/opt/lfm-tools/qemu-src}
OUT="$DIR/libbb.so"
if [ -f "$OUT" ]; then echo "$OUT"; exit 0; fi
command -v qemu-aarch64 >/dev/null || { echo "build_qemu_insn_plugin.sh: no qemu-aarch64 (apt-get install qemu-user)" >&2; exit 1; }
# the source version of the installed binary package ("1:7.2+dfsg-7+deb12u18+b3" is a binNMU of "...u18")
VER=$(dpkg-query -W -f='${source:Version}' qemu-user)
pkg-config --exists glib-2.0 || apt-get install -y -q libglib2.0-dev >/dev/null
command -v dpkg-source >/dev/null || apt-get install -y -q dpkg-dev >/dev/null
mkdir -p "$DIR"
cd "$DIR"
SRC=$(ls -d qemu-*/ 2>/dev/null | head -1 || true)
if [ -z "$SRC" ]; then
    if ! apt-cache showsrc qemu 2>/dev/null | grep -q "^Version: $VER\$"; then
        # no matching deb-src yet: mirror the deb822 "deb" entries as "deb-src" ones
        if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' \
                > /etc/apt/sources.list.d/lfm-debian-src.sources
        fi
        apt-get update -q >/dev/null
    fi
    apt-get source -q --download-only "qemu=$VER" >/dev/null 2>&1
    # apt checked the files against the signed archive index; dpkg-source's own check of the .dsc
    # signature needs the uploader's key, which is not installed, and only warns
    dpkg-source -x --skip-patches qemu_*.dsc >/dev/null 2>&1 || { echo "build_qemu_insn_plugin.sh: dpkg-source -x failed in $DIR" >&2; exit 1; }
    SRC=$(ls -d qemu-*/ | head -1)
fi
SRC=${SRC%/}
cc -O2 -shared -fPIC -Wall -I"$SRC/include/qemu" $(pkg-config --cflags glib-2.0) \
    "$SRC/tests/plugin/bb.c" -o "$OUT" $(pkg-config --libs glib-2.0)
echo "$OUT"
