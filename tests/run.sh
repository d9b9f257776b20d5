#!/usr/bin/env bash
# The test command: installs what is needed, builds with warnings as errors, runs every test.
#   tests/run.sh            Release-with-debug-info build in build/ci
#   tests/run.sh asan       the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   tests/run.sh tsan       the same under ThreadSanitizer
# The default run also builds the libraries with Clang's -Wthread-safety (preset clang-threads).
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:-ci}"
bash packaging/install-deps.sh
# The reference standardwebhooks library (npm, pinned by its lock file) for the signature test.
npm ci --prefix tests/tools/standardwebhooks --no-audit --no-fund --loglevel=error
# puppeteer-core (pinned) for the console's browser test (tests/browser, Debian's chromium).
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
cmake --preset "$preset"
cmake --build --preset "$preset" -j2
ctest --preset "$preset" -j2
if [ "$preset" = ci ]; then
  # Clang's thread-safety analysis of the libraries (GUARDED_BY / REQUIRES annotations).
  cmake --preset clang-threads >/dev/null
  cmake --build --preset clang-threads -j2
fi
