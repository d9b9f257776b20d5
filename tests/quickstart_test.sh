#!/usr/bin/env bash
# The README's quickstart, as a user runs it: packaging/quickstart.sh brings up both services
# and the demo warehouse; the allocation curl copied from its output makes a webhook arrive at
# the demo warehouse (signature verified there); the confirm curl the demo warehouse prints
# succeeds; Ctrl-C (SIGINT to the process group) stops all three with status 0.
#   tests/quickstart_test.sh <source dir> <build dir> [--postgresql]
# Uses the fixed ports of etc/local.yaml (8080, 8090, 9101) and a copy of it in a temp dir.
# --postgresql runs `packaging/quickstart.sh --postgresql` instead (needs the PostgreSQL server
# binaries, as tests/pg_cluster.sh): its throwaway cluster in <temp dir>/var/pg, two APIs (8080,
# 8081) and two dispatchers (9101, 9102); also checked: every one answers /health, the
# allocation and its confirm made through the first API are seen through the second, and after
# Ctrl-C all five have stopped and the cluster is stopped and its directory gone.
set -euo pipefail
src="$1"
build="$(cd "$2" && pwd)"
mode="${3:-}"
case "$mode" in
  "" | --postgresql) ;;
  *) echo "usage: $0 <source dir> <build dir> [--postgresql]" >&2; exit 2 ;;
esac
work="$(mktemp -d /tmp/allocation-relay-quickstart.XXXXXX)"
pgid=""
pgdir=""
cleanup() {
  [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
  # The cluster's server is in a session of its own: a killed quickstart leaves it running.
  if [ -n "$pgdir" ] && [ -e "$pgdir" ]; then bash "$src/tests/pg_cluster.sh" stop "$pgdir" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- quickstart output:" >&2
  cat "$work/out" >&2 || true
  exit 1
}
wait_for() {  # wait_for <pattern> <file>: up to 20 s
  for _ in $(seq 200); do grep -q -- "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

mkdir -p "$work/etc"
cp "$src/etc/local.yaml" "$work/etc/local.yaml"
if [ -n "$mode" ]; then
  # As root the cluster belongs to the postgres user, who must reach <temp dir>/var/pg.
  chmod 755 "$work"
fi
cd "$src"
ALLOCATION_RELAY_BIN="$build" ALLOCATION_RELAY_CONFIG="$work/etc/local.yaml" \
  setsid bash packaging/quickstart.sh ${mode:+"$mode"} >"$work/out" 2>&1 &
pgid=$!
if [ -n "$mode" ]; then
  wait_for "^pg_cluster: PostgreSQL .* in .* on 127.0.0.1:" "$work/out" ||
    fail "the quickstart started no PostgreSQL cluster"
  pgdir="$(sed -n 's/^pg_cluster: PostgreSQL [^ ]* in \(.*\) on 127\.0\.0\.1:.*/\1/p' "$work/out")"
  [ "$pgdir" = "$work/var/pg" ] || fail "the cluster is in $pgdir, not in var/pg ($work/var/pg)"
fi
wait_for "3. Confirm one" "$work/out" || fail "the quickstart did not print its curl commands"
echo "== quickstart is up; its output names the commands"

if [ -n "$mode" ]; then
  postmaster="$(head -n 1 "$pgdir/data/postmaster.pid")"
  for port in 8080 8081 9101 9102; do
    answer="$(curl -sf "http://127.0.0.1:$port/health")" || fail "nothing answers /health on $port"
    [ "$answer" = '{"status":"ok"}' ] || fail "/health on $port: $answer"
  done
  echo "== both APIs (8080, 8081) and both dispatchers (9101, 9102) answer /health"
  grep -q "^The second allocation-api, on 127.0.0.1:8081" "$work/out" ||
    fail "the output does not name the second API"
  for f in local-postgresql.yaml local-postgresql-2.yaml; do
    grep -q '^  backend: postgresql$' "$work/var/$f" || fail "$f: store is not PostgreSQL"
    ! grep -q '^  \(path\|synchronous\|busy_timeout\|max_size\):' "$work/var/$f" ||
      fail "$f keeps a SQLite key"
  done
fi

post="$(grep -m1 -- '^   curl -s -X POST' "$work/out")"
[ -n "$post" ] || fail "no POST /allocations curl in the output"
answer="$(bash -c "$post")"
posted="$answer"
echo "== pasted: POST /allocations -> $answer"
echo "$answer" | grep -q '"status":"ok"' || fail "the allocation was not accepted: $answer"

wait_for "confirm it: curl" "$work/out" || fail "the demo warehouse printed no webhook"
grep -q "signature verified" "$work/out" || fail "the demo warehouse did not verify a signature"
confirm="$(grep -m1 'confirm it: curl' "$work/out" | sed 's/.*confirm it: //')"
answer="$(bash -c "$confirm")"
echo "== pasted from the demo warehouse: PUT /allocation-request -> $answer"
[ "$answer" = '{"success":true,"errorMessages":[]}' ] || fail "the confirm failed: $answer"

list="$(grep -m1 -- '^   curl -s http://127.0.0.1:8080/allocation-requests' "$work/out")"
answer="$(bash -c "$list")"
echo "$answer" | grep -q '"status":"ok"' || fail "listing failed: $answer"
echo "== pasted: GET /allocation-requests -> ok"

store_post="$(grep -m1 -- '^   curl -s -X POST .*ship-from-store' "$work/out")"
[ -n "$store_post" ] || fail "no ship-from-store POST /allocations curl in the output"
answer="$(bash -c "$store_post")"
echo "$answer" | grep -q '"checks":\[{"warehouseId":11,"status":"asked"' ||
  fail "the ship-from-store allocation did not ask the store: $answer"
wait_for "accept it: curl" "$work/out" || fail "the demo warehouse printed no check to accept"
accept="$(grep -m1 'accept it: curl' "$work/out" | sed 's/.*accept it: //')"
answer="$(bash -c "$accept")"
echo "== pasted from the demo warehouse: POST /check-first -> $answer"
[ "$answer" = '{"status":"ok"}' ] || fail "the check was not accepted: $answer"

if [ -n "$mode" ]; then
  number="$(echo "$posted" | grep -o '"number":[0-9]*' | head -n 1 | cut -d: -f2)"
  [ -n "$number" ] || fail "no order number in the pasted POST"
  answer="$(curl -s "http://127.0.0.1:8081/allocations/$number" \
    -H 'API-Authorization: demo-oms-token')"
  echo "$answer" | grep -q '"status":"ok"' ||
    fail "the second API does not see order $number: $answer"
  echo "$answer" | grep -q '"confirmedWarehouseId":3' ||
    fail "the second API does not see order $number confirmed by warehouse 3: $answer"
  answer="$(bash -c "${list/8080/8081}")"
  echo "$answer" | grep -q '"status":"ok"' || fail "listing through the second API failed: $answer"
  echo "== the second API (8081) sees order $number, confirmed by warehouse 3"
fi

kill -INT -- "-$pgid"  # what Ctrl-C does: SIGINT to the whole foreground group
status=0
wait "$pgid" || status=$?
pgid=""
[ "$status" = 0 ] || fail "the quickstart exited with $status after Ctrl-C"
grep -q "stopped (exit status 0)" "$work/out" || fail "not all processes stopped cleanly"
if [ -z "$mode" ]; then
  grep -q "api stopped" "$work/out" || fail "the API did not stop gracefully"
  grep -q "dispatcher stopped" "$work/out" || fail "the dispatcher did not stop gracefully"
  echo "== Ctrl-C stopped all three with status 0"
else
  [ "$(grep -c "api stopped" "$work/out")" = 2 ] || fail "not both APIs stopped gracefully"
  [ "$(grep -c "dispatcher stopped" "$work/out")" = 2 ] ||
    fail "not both dispatchers stopped gracefully"
  # Gone, or a zombie that init has not reaped yet.
  case "$(ps -o stat= -p "$postmaster" 2>/dev/null || true)" in
    "" | Z*) ;;
    *) fail "the PostgreSQL server ($postmaster) still runs" ;;
  esac
  [ ! -e "$pgdir" ] || fail "the cluster directory $pgdir is still there"
  echo "== Ctrl-C stopped all five with status 0, then stopped and removed the cluster"
fi
echo "PASS"
