#!/usr/bin/env bash
# Quickstart: installs what is needed (Debian 12, as root), builds, and runs both services plus a
# demo warehouse receiver on etc/local.yaml, with the database in ./var/. Then prints the curl
# commands to submit an allocation, list requests and confirm one. Ctrl-C stops all three.
#
# ALLOCATION_RELAY_BIN=<dir with api/ and daemon/> skips installing and building, and
# ALLOCATION_RELAY_CONFIG=<file> replaces etc/local.yaml (the quickstart test uses both).
#
# --postgresql: the same on PostgreSQL (SPEC section 10), scaled out: a throwaway local cluster
# (tests/pg_cluster.sh, in var/pg beside the config's directory, or in /tmp when the postgres
# user cannot reach that, e.g. in /root; fsync is off there, which is fine only because the
# cluster is thrown away), two allocation-api (8080 and 8081) and two allocation-dispatcherd
# (status on 9101 and 9102) sharing its database, and the demo warehouse.
# The configs are written to var/: local-postgresql.yaml is the config with its store switched
# to the cluster (the SQLite keys removed), local-postgresql-2.yaml the same but for the second
# API's and dispatcher's listen ports. Ctrl-C stops all five, then stops and removes the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

postgresql=false
case "$#:${1:-}" in
  0:) ;;
  1:--postgresql) postgresql=true ;;
  *)
    echo "usage: $0 [--postgresql]" >&2
    exit 2
    ;;
esac

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

# --postgresql: writes <config> with its top-level store: replaced by the cluster's (every line
# of the old block goes, so none of SQLite's keys is left) and, when given, the port of
# api.listen and dispatcher.listen replaced. Everything else is kept as it is.
derive_config() {  # derive_config <from> <to> <url> <api port or ""> <dispatcher port or "">
  awk -v url="$3" -v api_port="$4" -v dispatcher_port="$5" -v from="$1" '
    function store_block() {
      print "store:"
      print "  backend: postgresql"
      print "  url: \"" url "\"   # the throwaway cluster of the quickstart"
      print "  pool: 8"
      stored = 1
    }
    NR == 1 {
      print "# Written by packaging/quickstart.sh --postgresql at each start: " from
      print "# with the store switched to its throwaway PostgreSQL cluster" \
        (api_port != "" ? " and the ports of api.listen and dispatcher.listen to" : ".")
      if (api_port != "") print "# the second API'"'"'s and dispatcher'"'"'s."
      print "# The comments below are " from "'"'"'s."
    }
    /^[^ \t#]/ {  # a top-level key starts a section
      section = $0
      sub(/[ \t]*:.*/, "", section)
      if (in_store) printf "%s", held
      held = ""
      in_store = 0
      if (section == "store") {
        store_block()
        in_store = 1
        next
      }
    }
    in_store {  # the old store block: dropped; blank lines and comments after it kept
      if ($0 ~ /^(#.*)?$/) held = held $0 "\n"
      else held = ""
      next
    }
    (section == "api" && api_port != "" || section == "dispatcher" && dispatcher_port != "") &&
    /^[ \t]+listen[ \t]*:/ {
      if (match($0, /:[0-9]+["'"'"']?[ \t]*(#.*)?$/)) {
        tail = substr($0, RSTART + 1)
        sub(/^[0-9]+/, section == "api" ? api_port : dispatcher_port, tail)
        $0 = substr($0, 1, RSTART) tail
        changed[section] = 1
      }
    }
    { print }
    END {
      if (in_store) printf "%s", held
      if (!stored) store_block()
      if (api_port != "" && !changed["api"] || dispatcher_port != "" && !changed["dispatcher"]) {
        print "quickstart: no api.listen and dispatcher.listen (block style, host:port) in " \
          from " to give the second API and dispatcher their own ports" > "/dev/stderr"
        exit 1
      }
    }' "$1" >"$2.tmp" || { rm -f "$2.tmp"; return 1; }
  mv "$2.tmp" "$2"
}

stop_cluster() {  # idempotent; also the EXIT trap, for a start that fails half-way
  if [ -n "${pgdir:-}" ]; then bash tests/pg_cluster.sh stop "$pgdir"; fi
}

if $postgresql; then
  var="$(cd "$(dirname "$config")/../var" && pwd)"
  pgdir="$var/pg"
  # As root the cluster belongs to the postgres user, who must be able to reach it (a clone in
  # /root, mode 700, is not reachable), and the server's socket path must stay under 108 bytes.
  if { [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$var" 2>/dev/null; } ||
    [ "${#pgdir}" -gt 90 ]; then
    pgdir="$(mktemp -d /tmp/allocation-relay-pg.XXXXXX)"
    chmod 755 "$pgdir"
    echo "quickstart: $var is not reachable for the PostgreSQL server (user postgres) or too" \
      "long a path for its socket; the cluster goes in $pgdir instead"
  fi
  trap stop_cluster EXIT
  bash tests/pg_cluster.sh start "$pgdir"
  url="$(cat "$pgdir/url")"
  config1="$var/local-postgresql.yaml"
  config2="$var/local-postgresql-2.yaml"
  derive_config "$config" "$config1" "$url" "" ""
  derive_config "$config" "$config2" "$url" 8081 9102
  "$api" --check-config --config "$config1"
  "$api" --check-config --config "$config2"
fi

pids=()
stop() {
  trap - INT TERM
  if $postgresql; then
    # Nothing interrupts the clean-up: a second Ctrl-C would leave the cluster behind.
    trap '' INT TERM HUP
    echo "stopping the demo warehouse, both allocation-api and both allocation-dispatcherd..."
  else
    echo "stopping the demo warehouse, allocation-api and allocation-dispatcherd..."
  fi
  kill -TERM "${pids[@]}" 2>/dev/null || true
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  if $postgresql; then
    echo "stopping and removing the PostgreSQL cluster in ${pgdir#"$PWD"/}..."
    stop_cluster || status=$?
    trap - EXIT
  fi
  echo "stopped (exit status $status)"
  exit "$status"
}
trap stop INT TERM
if $postgresql; then trap stop HUP; fi

node tests/tools/demo-warehouse.mjs --port 8090 --secret demo-secret \
  --api http://127.0.0.1:8080 --token demo-warehouse-token &
pids+=($!)
if $postgresql; then
  "$dispatcher" --config "$config1" &
  pids+=($!)
  "$dispatcher" --config "$config2" &
  pids+=($!)
  "$api" --config "$config1" &
  pids+=($!)
  "$api" --config "$config2" &
  pids+=($!)
  ports=(8080 9101 8081 9102)
else
  "$dispatcher" --config "$config" &
  pids+=($!)
  "$api" --config "$config" &
  pids+=($!)
  ports=(8080 9101)
fi

# Ready when both services answer /health (the API's port, the dispatcher's status port).
tries=100
if $postgresql; then tries=300; fi
for _ in $(seq "$tries"); do
  ready=true
  for port in "${ports[@]}"; do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null || { ready=false; break; }
  done
  if $ready; then
    break
  fi
  sleep 0.1
done

if $postgresql; then
  cat <<TEXT

allocation-relay is running on PostgreSQL: two allocation-api on 127.0.0.1:8080 and
127.0.0.1:8081, two allocation-dispatcherd (status on 127.0.0.1:9101 and 127.0.0.1:9102), sharing
one database; a demo warehouse (id 3, Amsterdam) receiving webhooks on 127.0.0.1:8090.
Database: $url, a throwaway cluster in ${pgdir#"$PWD"/} (fsync off).
Config: ${config1#"$PWD"/}; the second API and dispatcher: ${config2#"$PWD"/}.
Ctrl-C stops all five, then stops and removes the cluster.
TEXT
else
  cat <<'TEXT'

allocation-relay is running: allocation-api on 127.0.0.1:8080, allocation-dispatcherd (status on
127.0.0.1:9101), a demo warehouse (id 3, Amsterdam) receiving webhooks on 127.0.0.1:8090.
Database: var/allocation.db. Config: etc/local.yaml. Ctrl-C stops all three.
TEXT
fi
cat <<'TEXT'

1. Submit an allocation (rule "default": Amsterdam and Tokyo first, then Central):
   curl -s -X POST http://127.0.0.1:8080/allocations -H 'API-Authorization: demo-oms-token' -H 'Content-Type: application/json' -d '{"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":'"$(date +%s)"'},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"rule":"default"}'

   The demo warehouse prints the webhook it received, with the curl that confirms it.

2. List the pending allocation requests, as a warehouse that missed the webhook would:
   curl -s http://127.0.0.1:8080/allocation-requests -H 'API-Authorization: demo-warehouse-token'

3. Confirm one (put its id in place of ID):
   curl -s -X PUT http://127.0.0.1:8080/allocation-request -H 'API-Authorization: demo-warehouse-token' -H 'Content-Type: application/json' -d '{"id": ID, "status": "confirmed"}'

4. "Buy online, ship from store" (rule "ship-from-store"): the store (11, check-first) is asked
   first; the demo warehouse prints the curl that accepts the check. Unanswered for 5 minutes (or
   rejected: "accepted": false), the order goes on to Amsterdam and Tokyo:
   curl -s -X POST http://127.0.0.1:8080/allocations -H 'API-Authorization: demo-oms-token' -H 'Content-Type: application/json' -d '{"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":'"$(date +%s)1"'},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"rule":"ship-from-store"}'

5. Watch it all in the operator console: open http://127.0.0.1:8080/console/ in a browser and
   sign in with the key demo-operator-token.

TEXT
if $postgresql; then
  echo "The second allocation-api, on 127.0.0.1:8081, answers the same curls (8081 for 8080)."
  echo
fi
wait -n "${pids[@]}" || true
stop
