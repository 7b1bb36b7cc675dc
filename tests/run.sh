#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test with CTest
# (unit, store conformance on memory / Redis / Redis Cluster / PostgreSQL, end to end). The service
# fixtures start redis-server, a Redis Cluster and PostgreSQL on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh --tests
ctest --test-dir build --output-on-failure -j2 "$@"
