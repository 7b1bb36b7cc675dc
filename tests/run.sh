#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test with CTest
# (unit, store conformance on memory / Redis / Redis Cluster / PostgreSQL, end to end), plus an
# AddressSanitizer/UBSan build of the unit and memory-store tests. The service
# fixtures start redis-server, a Redis Cluster and PostgreSQL on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh --tests
# AddressSanitizer + UBSan over the pure core and the concurrent memory store, in build-asan/.
# (ThreadSanitizer: bash tests/sanitize.sh thread.)
bash tests/sanitize.sh address
ctest --test-dir build --output-on-failure -j2 "$@"
