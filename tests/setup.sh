#!/usr/bin/env bash
# Installs what idemgate needs on Debian 12 (only what is missing), then configures and builds it in
# ./build with -O2. Fast when everything is already installed and built.
#   bash tests/setup.sh            packages for building and running
#   bash tests/setup.sh --tests    also the servers the tests start (redis-server, PostgreSQL)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(build-essential cmake pkg-config libpoco-dev libhiredis-dev libpq-dev libboost-test-dev libboost-context-dev
          libyaml-cpp-dev libssl-dev curl)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(redis-server redis-tools postgresql python3)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start their own daemons on install; the tests start private ones on free ports.
fi

if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build -j"$(nproc)"
