#!/usr/bin/env bash
# The README's first command: install what is missing, build, then run idemgate with
# config/idemgate.yaml (127.0.0.1:8080, embedded memory store) in front of the bundled mock payment
# API (127.0.0.1:9090). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/setup.sh

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./build/idemgate-mock-upstream --port 9090 --quiet &
pids+=($!)
./build/idemgate --config config/idemgate.yaml &
pids+=($!)

cat <<'MSG'

idemgate is starting on http://127.0.0.1:8080 in front of the mock payment API on 127.0.0.1:9090.
Try, in another terminal:

  curl -i -X POST http://127.0.0.1:8080/v1/payments -H 'Idempotency-Key: demo-1' \
       -H 'Content-Type: application/json' -d '{"amount":1000,"currency":"usd"}'

(run it twice: the second answer is the same payment, with Idempotent-Replayed: true)
Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
