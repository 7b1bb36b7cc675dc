#!/usr/bin/env bash
# Sanitizer builds, separate from the -O2 build: AddressSanitizer + UndefinedBehaviorSanitizer, and
# ThreadSanitizer, over the pure core (unit tests) and the concurrent memory store (its conformance
# suite, which races many threads on one key). Part of tests/run.sh.
#   bash tests/sanitize.sh [address|thread]   (default: both)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kinds=("${@:-address thread}")
[[ $# -eq 0 ]] && kinds=(address thread)
for kind in "${kinds[@]}"; do
  case "$kind" in
    address) dir=build-asan; san="address;undefined" ;;
    thread)  dir=build-tsan; san="thread" ;;
    *) echo "sanitize: unknown kind '$kind' (address | thread)" >&2; exit 2 ;;
  esac
  if [[ ! -f $dir/CMakeCache.txt ]]; then
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DIDEM_SANITIZE=$san" >/dev/null
  fi
  cmake --build "$dir" -j"$(nproc)" --target unit_tests conformance_memory >/dev/null
  echo "sanitize ($san): unit_tests"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    TSAN_OPTIONS=halt_on_error=1 IDEM_SOURCE_DIR="$PWD" "$dir/tests/unit/unit_tests" --log_level=error
  echo "sanitize ($san): conformance_memory"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    TSAN_OPTIONS=halt_on_error=1 "$dir/tests/conformance/conformance_memory" --log_level=error
done
echo "sanitize: clean"
