#!/usr/bin/env bash
# The Debian package, built by CPack from this build tree and checked without touching the host:
# its file list, control files (conffile, scripts, Depends with systemd and libpq5), an install
# into a throwaway root (dpkg --root, scripts run chrootless with DPKG_ROOT), the installed
# binaries and sample config, and `systemd-analyze verify` of both units.
#   tests/package_test.sh <build dir>
set -euo pipefail
build="$1"
work="$(mktemp -d /tmp/allocation-relay-package.XXXXXX)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== building the package with cpack from $build"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack"; }
deb="$(ls "$work"/allocation-relay_*_amd64.deb)"
echo "   $deb"

echo "== dpkg-deb -c: binaries, units, sysusers, conffile"
dpkg-deb -c "$deb" >"$work/contents"
for path in ./usr/bin/allocation-api ./usr/bin/allocation-dispatcherd \
  ./usr/lib/systemd/system/allocation-api.service \
  ./usr/lib/systemd/system/allocation-dispatcherd.service \
  ./usr/lib/sysusers.d/allocation-relay.conf ./etc/allocation-relay/allocation-relay.yaml; do
  grep -q " $path\$" "$work/contents" || fail "$path is not in the package"
  echo "   has $path"
done

echo "== control files: the sample config is a conffile; scripts are executable"
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/allocation-relay/allocation-relay.yaml "$work/control/conffiles" ||
  fail "conffiles does not list the sample config"
for s in postinst prerm postrm; do
  [ -x "$work/control/$s" ] || fail "$s missing or not executable"
  sh -n "$work/control/$s" || fail "$s has a syntax error"
done
grep -q '^Depends:.*systemd' "$work/control/control" || fail "Depends lacks systemd"
# libpq5: the PostgreSQL backend's client library, found by dpkg-shlibdeps in the binaries.
grep -q '^Depends:\(.*[ ,]\)\?libpq5\( \|,\|$\)' "$work/control/control" ||
  fail "Depends lacks libpq5"
echo "   $(grep '^Depends:' "$work/control/control")"
echo "   conffiles: $(cat "$work/control/conffiles")"

echo "== dpkg --root: install into a throwaway root"
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status"
echo 'root:x:0:0:root:/root:/bin/bash' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
host_users_before="$(md5sum /etc/passwd)"
dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb" \
  >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
grep -q '^allocation-relay:x:[0-9]*:[0-9]*:.*:/var/lib/allocation-relay:' "$root/etc/passwd" ||
  fail "postinst did not create the allocation-relay user"
[ "$host_users_before" = "$(md5sum /etc/passwd)" ] || fail "the host's /etc/passwd changed"
grep -A1 '^Conffiles:' "$root/var/lib/dpkg/status" | grep -q '/etc/allocation-relay/allocation-relay.yaml' ||
  fail "dpkg did not register the conffile"
mode="$(stat -c %a "$root/etc/allocation-relay/allocation-relay.yaml")"
[ "$mode" = 640 ] || fail "config mode is $mode, want 640 (it holds secrets)"
echo "   user created, conffile registered, config mode $mode"

echo "== installed binaries"
"$root/usr/bin/allocation-api" --version
"$root/usr/bin/allocation-dispatcherd" --version
"$root/usr/bin/allocation-api" --check-config --config "$root/etc/allocation-relay/allocation-relay.yaml"

echo "== systemd-analyze verify (ExecStart pointed at the installed binaries)"
mkdir "$work/units"
for u in allocation-api allocation-dispatcherd; do
  sed "s|/usr/bin/|$root/usr/bin/|" "$root/usr/lib/systemd/system/$u.service" >"$work/units/$u.service"
  grep -q '^Type=notify$' "$work/units/$u.service" || fail "$u is not Type=notify"
  grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$work/units/$u.service" || fail "$u ExecReload"
done
out="$(systemd-analyze verify "$work/units/allocation-api.service" \
  "$work/units/allocation-dispatcherd.service" 2>&1)" || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
echo "   both units verify cleanly"
echo "PASS"
