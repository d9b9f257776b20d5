#!/usr/bin/env bash
# Builds the Debian package (Release, no tests) into build/package/: one command.
#   packaging/build-deb.sh  ->  build/package/allocation-relay_<version>_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install-deps.sh
cmake --workflow --preset package
ls -l build/package/*.deb
