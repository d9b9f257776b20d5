#!/usr/bin/env bash
# Installs every Debian 12 package allocation-relay needs to build, test and run.
# Run as root. Skips apt-get entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libcpp-httplib-dev libcurl4-openssl-dev nlohmann-json3-dev libsqlitecpp-dev libsqlite3-dev
  libyaml-cpp-dev libssl-dev libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev
  libgtest-dev libgmock-dev libsystemd-dev tzdata sqlite3 curl clang-format clang-16
  dpkg-dev file systemd
  # PostgreSQL backend: libpq to build against (its runtime, libpq5, comes with it) and the
  # server for the tests' throwaway cluster (tests/pg_cluster.sh).
  libpq-dev postgresql
  # Operator console: the charting library built into allocation-api, and the headless browsers
  # its tests drive.
  libjs-chart.js chromium firefox-esr
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js runs the demo warehouse (quickstart) and, with npm, the reference Standard Webhooks
# verifier in the tests. Any node >= 18 will do (Debian 12's, or one already on the machine), so
# look for the commands, not a package.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (sudo $0)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
