#!/bin/sh
# check_install.sh BUILD_DIR CC
# `cmake --install` into staging folders and check what a service install
# needs: the programs and the launcher, the systemd units naming the
# installed paths (and passing systemd-analyze verify when it is there), the
# environment file (kept on a second install), the sysusers entry, the man
# pages of the five programs, the plugin header and farm-plugin.pc, and the
# client library with its headers and farm-client.pc, which must build and
# link a program from the staging folder alone. Then once more with DESTDIR
# and the prefix /usr, as a package build does.
set -eu
build=$1
cc=$2
tmp=$(mktemp -d /tmp/farm-dist-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

p=$tmp/prefix
cmake --install "$build" --prefix "$p" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }

for f in bin/farm bin/farm-ventilator bin/farm-sink bin/farm-worker bin/farm-tui bin/farm-workers; do
    test -x "$p/$f" || fail "$f is not installed (or not executable)"
done
units="farm-ventilator.service farm-sink.service farm-worker@.service farm-metrics.service farm-metrics.timer"
for u in $units; do
    test -f "$p/lib/systemd/system/$u" || fail "unit $u is not installed"
done
for f in etc/farm/farm.env lib/sysusers.d/farm.conf \
    share/man/man1/farm.1 share/man/man1/farm-ventilator.1 share/man/man1/farm-sink.1 \
    share/man/man1/farm-worker.1 share/man/man1/farm-tui.1 \
    include/farm/farm_plugin.h lib/pkgconfig/farm-plugin.pc \
    include/farm/farm_client.h include/farm/farm_msg.h include/farm/farm_err.h \
    lib/libfarm.a lib/pkgconfig/farm-client.pc; do
    test -f "$p/$f" || fail "$f is not installed"
done
for m in "$p"/share/man/man1/*.1; do
    head -1 "$m" | grep -q '^\.TH ' || fail "$m is not a man page"
done

# The units run the installed programs with the installed environment file.
grep -q "^ExecStart=$p/bin/farm-ventilator --db \${FARM_DB} " "$p/lib/systemd/system/farm-ventilator.service" ||
    fail "farm-ventilator.service does not run $p/bin/farm-ventilator"
grep -q "^ExecStart=$p/bin/farm-sink " "$p/lib/systemd/system/farm-sink.service" || fail "farm-sink.service"
grep -q "^ExecStart=$p/bin/farm-worker --connect \${FARM_HEAD} --name %H-%i " "$p/lib/systemd/system/farm-worker@.service" ||
    fail "farm-worker@.service"
grep -q "^KillMode=mixed" "$p/lib/systemd/system/farm-worker@.service" || fail "workers must drain on stop"
for u in farm-ventilator.service farm-sink.service farm-worker@.service farm-metrics.service; do
    grep -q "^EnvironmentFile=-$p/etc/farm/farm.env\$" "$p/lib/systemd/system/$u" || fail "$u does not read farm.env"
    ! grep -q '@[A-Z_]*@' "$p/lib/systemd/system/$u" || fail "$u has an unconfigured @VAR@"
done
grep -q '^#FARM_DB=' "$p/etc/farm/farm.env" || fail "farm.env does not document FARM_DB"
if command -v systemd-analyze >/dev/null 2>&1 && systemd-analyze --version >/dev/null 2>&1; then
    cp "$p/lib/systemd/system/farm-worker@.service" "$tmp/farm-worker@1.service"
    (cd "$p/lib/systemd/system" && systemd-analyze verify --man=no ./farm-ventilator.service ./farm-sink.service \
        ./farm-metrics.service ./farm-metrics.timer "$tmp/farm-worker@1.service") >"$tmp/verify.log" 2>&1 ||
        { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
    ! grep -v 'man' "$tmp/verify.log" | grep -q . || { cat "$tmp/verify.log"; fail "systemd-analyze complained"; }
fi

# A second install keeps the operator's farm.env and puts the new one beside it.
echo "FARM_HEAD=head.example" >>"$p/etc/farm/farm.env"
cmake --install "$build" --prefix "$p" >"$tmp/install2.log" 2>&1 || { cat "$tmp/install2.log"; fail "second install"; }
grep -q '^FARM_HEAD=head.example$' "$p/etc/farm/farm.env" || fail "a second install overwrote farm.env"
test -f "$p/etc/farm/farm.env.new" || fail "no farm.env.new beside the kept farm.env"

# The launcher and the CLI run from the install.
"$p/bin/farm-workers" --help | grep -q -- '--via' || fail "farm-workers --help"
"$p/bin/farm" map --help | grep -q 'GNU parallel' || fail "farm map --help"

# The client library: build and link a program with nothing but the staging folder.
PKG_CONFIG_PATH=$p/lib/pkgconfig
export PKG_CONFIG_PATH
pkg-config --exists farm-client || fail "pkg-config farm-client"
cat >"$tmp/client.c" <<'C'
#include <farm_client.h>
#include <farm_err.h>
#include <stdio.h>
int main(void) {
    /* Nothing listens on port 1: the call must time out cleanly. */
    farm_client_t *c = farm_client_new("tcp://127.0.0.1:1", 100, 0);
    if (!c)
        return 1;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    farm_pack_kv_str(&pk, "op", "health");
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object r;
    farm_error_t e;
    int rc = farm_client_callv(c, &b, &z, &r, &e);
    printf("%s\n", farm_err_name(rc));
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    farm_client_destroy(&c);
    return rc == FARM_ETIMEOUT ? 0 : 2;
}
C
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/client" "$tmp/client.c" $(pkg-config --cflags --libs farm-client) ||
    fail "a client does not build against the installed library"
out=$("$tmp/client") || fail "the installed client library: $out"
[ "$out" = timeout ] || fail "the client said '$out'"

# A package build: DESTDIR and the prefix /usr, whose settings go to /etc.
DESTDIR=$tmp/dest cmake --install "$build" --prefix /usr >"$tmp/install3.log" 2>&1 ||
    { cat "$tmp/install3.log"; fail "DESTDIR install"; }
test -x "$tmp/dest/usr/bin/farm" || fail "DESTDIR: /usr/bin/farm"
test -f "$tmp/dest/etc/farm/farm.env" || fail "DESTDIR: /etc/farm/farm.env"
grep -q '^ExecStart=/usr/bin/farm-ventilator ' "$tmp/dest/usr/lib/systemd/system/farm-ventilator.service" ||
    fail "DESTDIR: the unit must name /usr/bin, not the staging folder"
grep -q '^EnvironmentFile=-/etc/farm/farm.env$' "$tmp/dest/usr/lib/systemd/system/farm-sink.service" ||
    fail "DESTDIR: the unit must read /etc/farm/farm.env"
echo "ok: installed and checked under $p and $tmp/dest"
