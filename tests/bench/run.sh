#!/usr/bin/env bash
# Builds (Release with debug info) and runs the benchmarks; each prints its baseline beside it.
#   tests/bench/run.sh [--requests N] [--seconds S] [--connections C]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target api_bench allocation-api
build/default/tests/api_bench --api build/default/api/allocation-api "$@"
