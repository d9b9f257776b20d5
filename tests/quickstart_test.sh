#!/usr/bin/env bash
# The README's quickstart, as a user runs it: packaging/quickstart.sh brings up both services
# and the demo warehouse; the allocation curl copied from its output makes a webhook arrive at
# the demo warehouse (signature verified there); the confirm curl the demo warehouse prints
# succeeds; Ctrl-C (SIGINT to the process group) stops all three with status 0.
#   tests/quickstart_test.sh <source dir> <build dir>
# Uses the fixed ports of etc/local.yaml (8080, 8090, 9101) and a copy of it in a temp dir.
set -euo pipefail
src="$1"
build="$(cd "$2" && pwd)"
work="$(mktemp -d /tmp/allocation-relay-quickstart.XXXXXX)"
pgid=""
cleanup() {
  [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
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
cd "$src"
ALLOCATION_RELAY_BIN="$build" ALLOCATION_RELAY_CONFIG="$work/etc/local.yaml" \
  setsid bash packaging/quickstart.sh >"$work/out" 2>&1 &
pgid=$!
wait_for "3. Confirm one" "$work/out" || fail "the quickstart did not print its curl commands"
echo "== quickstart is up; its output names the commands"

post="$(grep -m1 -- '^   curl -s -X POST' "$work/out")"
[ -n "$post" ] || fail "no POST /allocations curl in the output"
answer="$(bash -c "$post")"
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

kill -INT -- "-$pgid"  # what Ctrl-C does: SIGINT to the whole foreground group
status=0
wait "$pgid" || status=$?
pgid=""
[ "$status" = 0 ] || fail "the quickstart exited with $status after Ctrl-C"
grep -q "stopped (exit status 0)" "$work/out" || fail "not all three stopped cleanly"
grep -q "api stopped" "$work/out" || fail "the API did not stop gracefully"
grep -q "dispatcher stopped" "$work/out" || fail "the dispatcher did not stop gracefully"
echo "== Ctrl-C stopped all three with status 0"
echo "PASS"
