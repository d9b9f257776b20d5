#!/usr/bin/env bash
# Quickstart: installs what is needed (Debian 12, as root), builds, and runs both services plus a
# demo warehouse receiver on etc/local.yaml, with the database in ./var/. Then prints the curl
# commands to submit an allocation, list requests and confirm one. Ctrl-C stops all three.
#
# ALLOCATION_RELAY_BIN=<dir with api/ and daemon/> skips installing and building, and
# ALLOCATION_RELAY_CONFIG=<file> replaces etc/local.yaml (the quickstart test uses both).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${ALLOCATION_RELAY_BIN:-}"
if [ -z "$bin" ]; then
  bash packaging/install-deps.sh
  cmake --preset default >/dev/null
  # Only the two services: the tests and benchmarks are the test command's (tests/run.sh).
  cmake --build --preset default -j2 --target allocation-api allocation-dispatcherd
  bin=build/default
fi
api="$bin/api/allocation-api"
dispatcher="$bin/daemon/allocation-dispatcherd"
config="${ALLOCATION_RELAY_CONFIG:-etc/local.yaml}"
mkdir -p "$(dirname "$config")/../var"  # store.path in local.yaml is ../var/allocation.db
"$api" --check-config --config "$config"

pids=()
stop() {
  trap - INT TERM
  echo "stopping the demo warehouse, allocation-api and allocation-dispatcherd..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  echo "stopped (exit status $status)"
  exit "$status"
}
trap stop INT TERM

node tests/tools/demo-warehouse.mjs --port 8090 --secret demo-secret \
  --api http://127.0.0.1:8080 --token demo-warehouse-token &
pids+=($!)
"$dispatcher" --config "$config" &
pids+=($!)
"$api" --config "$config" &
pids+=($!)

# Ready when both services answer /health (the API's port, the dispatcher's status port).
for _ in $(seq 100); do
  if curl -sf http://127.0.0.1:8080/health >/dev/null && curl -sf http://127.0.0.1:9101/health >/dev/null; then
    break
  fi
  sleep 0.1
done

cat <<'TEXT'

allocation-relay is running: allocation-api on 127.0.0.1:8080, allocation-dispatcherd (status on
127.0.0.1:9101), a demo warehouse (id 3, Amsterdam) receiving webhooks on 127.0.0.1:8090.
Database: var/allocation.db. Config: etc/local.yaml. Ctrl-C stops all three.

1. Submit an allocation (rule "default": Amsterdam and Tokyo first, then Central):
   curl -s -X POST http://127.0.0.1:8080/allocations -H 'API-Authorization: demo-oms-token' -H 'Content-Type: application/json' -d '{"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":'"$(date +%s)"'},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"rule":"default"}'

   The demo warehouse prints the webhook it received, with the curl that confirms it.

2. List the pending allocation requests, as a warehouse that missed the webhook would:
   curl -s http://127.0.0.1:8080/allocation-requests -H 'API-Authorization: demo-warehouse-token'

3. Confirm one (put its id in place of ID):
   curl -s -X PUT http://127.0.0.1:8080/allocation-request -H 'API-Authorization: demo-warehouse-token' -H 'Content-Type: application/json' -d '{"id": ID, "status": "confirmed"}'

TEXT
wait -n "${pids[@]}" || true
stop
