#!/usr/bin/env bash
# Builds (Release with debug info) and runs the benchmarks; each prints its baseline beside it.
#   tests/bench/run.sh api [--requests N] [--seconds S] [--connections C] [--only get,all,put]
#   tests/bench/run.sh dispatch [--events N] [--warehouses W]
#   tests/bench/run.sh round [--events N] [--warehouses W] [--per-round K]  (the dispatcher's
#                            database work alone; not part of "both")
#   tests/bench/run.sh send [--calls N] [--concurrency C]  (its send path alone; not in "both")
#   tests/bench/run.sh connections [--seconds S] [--clients C] [--idle N] [--rss-idle N]
#                            (the API beside many idle connections: throughput ratio, peak RSS,
#                            SIGTERM exit time; not part of "both")
#   tests/bench/run.sh tls [--requests N] [--seconds S] [--connections C] [--threads T]
#                            (the default page over HTTPS beside plain HTTP and static servers,
#                            libcurl keep-alive clients; not part of "both")
#   tests/bench/run.sh prune [--allocations N] [--step-allocations M] [--pending P] [--seconds S]
#                            [--clients C] [--confirm-rate R] [--step-target-us T]
#                            [--step-pause-us P]  (retention: a prune of millions of old rows
#                            beside the API's confirms; not part of "both")
#   tests/bench/run.sh console [--requests N] [--calls C] [--backend sqlite|postgresql --pg-url U]
#                            (the console's overview on a million requests beside the Order
#                            API's default page, in-process; not part of "both")
#   tests/bench/run.sh postgresql [api|dispatch] [flags]
#                            (the PostgreSQL figures beside the SQLite ones, each beside its own
#                            baseline, in one run: a throwaway cluster from tests/pg_cluster.sh
#                            with PG_CLUSTER_DURABLE=1 (fsync, full_page_writes on), then api_bench
#                            (default page, write path at 16 clients) and dispatch_bench (one and
#                            two dispatchers) with --backend sqlite,postgresql; api or dispatch
#                            runs only that one, with the flags passed on. PG_CLUSTER_STATEMENTS=1
#                            adds statements per call from pg_stat_statements. Not part of "both")
#   tests/bench/run.sh            (both, with their defaults)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target api_bench dispatch_bench round_bench send_bench \
  connections_bench prune_bench console_bench tls_bench allocation-api allocation-dispatcherd
which="${1:-both}"
[ $# -gt 0 ] && shift
if [ "$which" = api ] || [ "$which" = both ]; then
  build/default/tests/api_bench --api build/default/api/allocation-api "$@"
fi
if [ "$which" = dispatch ] || [ "$which" = both ]; then
  build/default/tests/dispatch_bench --dispatcher build/default/daemon/allocation-dispatcherd "$@"
fi
if [ "$which" = round ]; then
  build/default/tests/round_bench "$@"
fi
if [ "$which" = send ]; then
  build/default/tests/send_bench "$@"
fi
if [ "$which" = console ]; then
  build/default/tests/console_bench "$@"
fi
if [ "$which" = tls ]; then
  build/default/tests/tls_bench --api build/default/api/allocation-api "$@"
fi
if [ "$which" = connections ]; then
  build/default/tests/connections_bench --api build/default/api/allocation-api "$@"
fi
if [ "$which" = postgresql ]; then
  part=both
  if [ "${1:-}" = api ] || [ "${1:-}" = dispatch ]; then
    part="$1"
    shift
  elif [ $# -gt 0 ]; then
    echo "run.sh postgresql: flags go to one benchmark: run.sh postgresql api|dispatch FLAGS" >&2
    exit 2
  fi
  cluster="$(mktemp -d /tmp/relay-bench-pg.XXXXXX)"
  trap 'tests/pg_cluster.sh stop "$cluster"' EXIT
  PG_CLUSTER_DURABLE=1 tests/pg_cluster.sh start "$cluster"
  url="$(cat "$cluster/url")"
  if [ "$part" = api ] || [ "$part" = both ]; then
    build/default/tests/api_bench --api build/default/api/allocation-api \
      --backend sqlite,postgresql --pg-url "$url" --pool 16 --requests 1000000 --only get,write \
      --clients 16 --seconds 4 --write-seconds 3 "$@"
  fi
  if [ "$part" = dispatch ] || [ "$part" = both ]; then
    build/default/tests/dispatch_bench --dispatcher build/default/daemon/allocation-dispatcherd \
      --backend sqlite,postgresql --pg-url "$url" --events 50000 --latency-seconds 5 "$@"
  fi
fi
if [ "$which" = prune ]; then
  build/default/tests/prune_bench --api build/default/api/allocation-api \
    --dispatcher build/default/daemon/allocation-dispatcherd "$@"
fi
