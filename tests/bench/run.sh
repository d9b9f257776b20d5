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
#   tests/bench/run.sh prune [--allocations N] [--step-allocations M] [--pending P] [--seconds S]
#                            [--clients C] [--confirm-rate R] [--step-target-us T]
#                            [--step-pause-us P]  (retention: a prune of millions of old rows
#                            beside the API's confirms; not part of "both")
#   tests/bench/run.sh            (both, with their defaults)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target api_bench dispatch_bench round_bench send_bench \
  connections_bench prune_bench allocation-api allocation-dispatcherd
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
if [ "$which" = connections ]; then
  build/default/tests/connections_bench --api build/default/api/allocation-api "$@"
fi
if [ "$which" = prune ]; then
  build/default/tests/prune_bench --api build/default/api/allocation-api \
    --dispatcher build/default/daemon/allocation-dispatcherd "$@"
fi
