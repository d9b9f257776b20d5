#!/usr/bin/env bash
# The main job on a local machine: installs what is needed, builds, and runs both services on
# etc/local.yaml with the database in ./var/. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j2

mkdir -p var
config=etc/local.yaml
build/default/api/allocation-api --check-config --config "$config"

pids=()
stop() {
  trap - INT TERM
  echo "stopping..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

build/default/daemon/allocation-dispatcherd --config "$config" &
pids+=($!)
build/default/api/allocation-api --config "$config" &
pids+=($!)

echo "allocation-dispatcherd (pid ${pids[0]}) and allocation-api (pid ${pids[1]}) are running"
echo "on $config, database var/allocation.db. Ctrl-C stops both."
wait -n "${pids[@]}" || true
stop
