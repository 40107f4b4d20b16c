#!/bin/sh
# install_test.sh BUILD_DIR EXAMPLE_SOURCE CC
# Install the build into a temporary prefix, build the example plugin there
# with nothing but the installed header and `pkg-config farm-plugin`, and
# have the installed farm-worker load it and list its type.
set -eu
build=$1
src=$2
cc=$3
tmp=$(mktemp -d /tmp/farm-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
test -f "$tmp/prefix/include/farm/farm_plugin.h"
test -f "$tmp/prefix/lib/pkgconfig/farm-plugin.pc"
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
export PKG_CONFIG_PATH
pkg-config --exists farm-plugin
cflags=$(pkg-config --cflags farm-plugin)
case "$cflags" in *"$tmp/prefix"*) ;; *) echo "cflags '$cflags' do not point into the prefix"; exit 1 ;; esac
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror -shared -fPIC -o "$tmp/example.so" "$src" $cflags
types=$("$tmp/prefix/bin/farm-worker" --plugin "$tmp/example.so" --list-types)
echo "$types" | grep -qx 'example.reverse' || { echo "example.reverse not offered: $types"; exit 1; }
echo "$types" | grep -qx 'ingest' || { echo "built-ins missing: $types"; exit 1; }
echo "ok: built and loaded $src against $tmp/prefix"
