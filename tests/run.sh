#!/usr/bin/env bash
# The test command: installs what is needed, builds with warnings as errors, runs every test.
#   tests/run.sh            Release-with-debug-info build in build/ci
#   tests/run.sh asan       the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   tests/run.sh tsan       the same under ThreadSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:-ci}"
bash packaging/install-deps.sh
# The reference standardwebhooks library (npm, pinned by its lock file) for the signature test.
npm ci --prefix tests/tools/standardwebhooks --no-audit --no-fund --loglevel=error
cmake --preset "$preset"
cmake --build --preset "$preset" -j2
ctest --preset "$preset" -j2
