#!/usr/bin/env bash
# Side-by-side benchmark, one command, on this machine, in one run (loadtest/README.md):
#
#   bash loadtest/bench.sh [--duration S] [--rounds N] [--latency-duration S] [--upstream nginx|mock]
#                          [--build-dir DIR] [--out FILE] [--keep]
#
# Systems, all on 127.0.0.1, free ports, private temp dirs, started by this script and stopped by PID:
#   upstream-nginx    nginx answering 201 with a small JSON body itself (the fast "upstream")
#   upstream-mock     idemgate-mock-upstream (the tests' payment API), directly
#   nginx-proxy       nginx as a plain reverse proxy (keep-alive to the upstream): the raw proxying limit
#   node-peer         Node.js express 4 + express-idempotency (npm, installed into the temp dir): an
#                     idempotent POST route that FORWARDS to the same upstream over a keep-alive agent.
#                     The middleware's bundled in-memory adapter scans an array (O(keys) per request), so the
#                     peer gets a Map-backed adapter through the library's documented dataAdapter option.
#                     One process: the in-memory store cannot be shared by a cluster.
#   idemgate-memory / idemgate-redis / idemgate-postgres
#                     idemgate with each store (private redis-server / PostgreSQL 15 from
#                     tests/support/redis-services.sh / pg-service.sh), forward_key: client, access log off
# Proxies (nginx, node, idemgate) all forward to the same upstream: nginx (default) or the mock.
#
# Load: idemgate-loadtest, closed loop, 32 connections, `--rounds` x `--duration` seconds per system and
# path, interleaved (round 1 over every system, then round 2, ...), then one 4-connection run each for
# latency. Paths: miss (every key new) and replay (10000 keys sent once first, then only replayed); the
# upstreams and nginx get the miss load (keys mean nothing to them). Prints a table (markdown) with
# requests/s, p50, p99, ratios to nginx-proxy and to the Node peer, the 4-connection p50/p99, and whether
# each target of issue 7 is met; writes it all to loadtest/results/bench-<date>.json (or --out).
# Absolute numbers swing with whatever else runs on the machine; compare ratios within one run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
DURATION=5
ROUNDS=2
LAT_DURATION=5
UPSTREAM_KIND=nginx
OUT=""
KEEP=0
REPLAY_KEYS=10000
COMMAND="bash loadtest/bench.sh $*"

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --latency-duration) LAT_DURATION=$2; shift 2 ;;
    --upstream) UPSTREAM_KIND=$2; shift 2 ;;
    --build-dir) BUILD=$(realpath -m -- "$2"); shift 2 ;;
    --out) OUT=$(realpath -m -- "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $UPSTREAM_KIND == nginx || $UPSTREAM_KIND == mock ]] || { echo "bench: --upstream nginx|mock" >&2; exit 2; }

LOG_TAG=bench
source "$ROOT/loadtest/lib.sh"

# ------------------------------------------------------------------------------------------- setup
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v redis-server >/dev/null || need+=(redis-server redis-tools)
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || need+=(postgresql)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
install_packages "${need[@]}"
build_tools
LOADTEST=$BUILD/idemgate-loadtest

WORK=$(mktemp -d /tmp/idemgate-bench.XXXXXX)
chmod 755 "$WORK"   # PostgreSQL runs as the postgres user and must reach its data dir below
mkdir -p "$WORK/results"
PIDS=()
REDIS_DIR=""
PG_DIR=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  [[ -n $REDIS_DIR ]] && bash "$ROOT/tests/support/redis-services.sh" stop "$REDIS_DIR" >/dev/null 2>&1 || true
  [[ -n $PG_DIR ]] && bash "$ROOT/tests/support/pg-service.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  if ((KEEP)); then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ------------------------------------------------------------------------------------ the systems
log "work dir $WORK; upstream for the proxies: $UPSTREAM_KIND"

P_UPNGINX=$(free_port)
nginx_conf "$WORK/upstream-nginx" "$P_UPNGINX" \
  "location / { default_type application/json; return 201 '{\"id\":\"pay_\$request_id\",\"object\":\"payment\",\"idempotency_key\":\"\$http_idempotency_key\"}'; }"
start upstream-nginx "$P_UPNGINX" nginx -p "$WORK/upstream-nginx" -c "$WORK/upstream-nginx/nginx.conf" -g 'daemon off;'

P_MOCK=$(free_port)
start upstream-mock "$P_MOCK" "$BUILD/idemgate-mock-upstream" --port "$P_MOCK" --quiet --threads 512 --max-keys 5000000

if [[ $UPSTREAM_KIND == nginx ]]; then P_UP=$P_UPNGINX; else P_UP=$P_MOCK; fi

P_NGINX=$(free_port)
nginx_conf "$WORK/nginx-proxy" "$P_NGINX" \
  "location / { proxy_pass http://bench_upstream; proxy_http_version 1.1; proxy_set_header Connection \"\"; }" \
  "upstream bench_upstream { server 127.0.0.1:$P_UP; keepalive 64; }"
start nginx-proxy "$P_NGINX" nginx -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" -g 'daemon off;'

# Node peer: express 4 + express-idempotency, from npm into the temp dir.
log "installing express@4 and express-idempotency from npm into $WORK/node"
mkdir -p "$WORK/node"
(cd "$WORK/node" && npm init -y >/dev/null 2>&1 &&
  timeout 300 npm install --no-audit --no-fund --loglevel=error express@4 express-idempotency@1 >"$WORK/npm.log" 2>&1) ||
  die "npm install failed: $(tail -5 "$WORK/npm.log")"
cat >"$WORK/node/peer.js" <<'EOF'
// The Node.js peer: an idempotent POST /v1/payments (express-idempotency) that forwards to the upstream.
'use strict';
const http = require('http');
const express = require('express');
const { idempotency, getSharedIdempotencyService } = require('express-idempotency');

const [port, upstreamPort] = process.argv.slice(2).map(Number);

// A Map-backed adapter (the library's IIdempotencyDataAdapter): the bundled in-memory adapter scans an
// array on every request, which no one would benchmark.
class MapDataAdapter {
  constructor() { this.resources = new Map(); }
  async findByIdempotencyKey(key) { return this.resources.get(key) || null; }
  async create(resource) {
    if (this.resources.has(resource.idempotencyKey)) throw new Error('Duplicate');
    this.resources.set(resource.idempotencyKey, resource);
  }
  async update(resource) { this.resources.set(resource.idempotencyKey, resource); }
  async delete(key) { this.resources.delete(key); }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(express.json({ verify: (req, res, buf) => { req.rawBody = buf; } }));
app.post('/v1/payments', idempotency({ dataAdapter: new MapDataAdapter() }));
app.post('/v1/payments', (req, res) => {
  const service = getSharedIdempotencyService();
  if (service.isHit(req)) return;
  const body = req.rawBody || Buffer.alloc(0);
  const upstream = http.request({
    host: '127.0.0.1', port: upstreamPort, path: req.originalUrl, method: 'POST', agent,
    headers: {
      'content-type': 'application/json',
      'content-length': body.length,
      'idempotency-key': req.get('idempotency-key') || '',
    },
  }, (answer) => {
    const chunks = [];
    answer.on('data', (c) => chunks.push(c));
    answer.on('end', () => {
      res.status(answer.statusCode).type('application/json').send(Buffer.concat(chunks));
    });
  });
  upstream.on('error', () => {
    service.reportError(req);
    res.status(502).json({ error: 'upstream unreachable' });
  });
  upstream.end(body);
});
// express-idempotency reports 409 / 417 through next(err).
app.use((err, req, res, next) => {
  res.status(res.statusCode >= 400 ? res.statusCode : 500).json({ error: err.message });
});
app.listen(port, '127.0.0.1');
EOF
P_NODE=$(free_port)
(cd "$WORK/node" && exec node peer.js "$P_NODE" "$P_UP") >"$WORK/node-peer.log" 2>&1 &
PIDS+=($!)
wait_port "$P_NODE" "$!" node-peer

# Stores.
REDIS_DIR=$WORK/redis
bash "$ROOT/tests/support/redis-services.sh" start "$REDIS_DIR" standalone >"$WORK/redis-start.log" 2>&1 ||
  die "redis-server did not start: $(tail -5 "$WORK/redis-start.log")"
REDIS_ADDR=$(sed -n 's/^IDEM_REDIS=//p' "$REDIS_DIR/env")
PG_DIR=$WORK/pg
bash "$ROOT/tests/support/pg-service.sh" start "$PG_DIR" >"$WORK/pg-start.log" 2>&1 ||
  die "PostgreSQL did not start: $(tail -5 "$WORK/pg-start.log")"
PG_URL=$(sed -n 's/^IDEM_PG_URL=//p' "$PG_DIR/env")

idemgate_config() {  # PORT STORE-YAML
  cat <<EOF
server:
  listen: 127.0.0.1:$1
log:
  level: warning
  access_log: false
$2
upstreams:
  up:
    url: http://127.0.0.1:$P_UP
    timeout: 10s
route_defaults:
  tenant_header: Authorization
  forward_key: client
routes:
  payments:
    methods: [POST]
    path: /v1/payments
    upstream: up
EOF
}
declare -A PORT
PORT[upstream-nginx]=$P_UPNGINX
PORT[upstream-mock]=$P_MOCK
PORT[nginx-proxy]=$P_NGINX
PORT[node-peer]=$P_NODE
for store in memory redis postgres; do
  case $store in
    memory) yaml=$'store:\n  type: memory\n  memory:\n    max_records: 10000000' ;;
    redis) yaml=$'store:\n  type: redis\n  redis:\n    address: '"$REDIS_ADDR"$'\n    key_prefix: "bench:"' ;;
    postgres) yaml=$'store:\n  type: postgres\n  postgres:\n    url: "'"$PG_URL"$'"\n    table: bench_idempotency' ;;
  esac
  port=$(free_port)
  idemgate_config "$port" "$yaml" >"$WORK/idemgate-$store.yaml"
  "$BUILD/idemgate" --check-config "$WORK/idemgate-$store.yaml" >"$WORK/idemgate-$store.check" 2>&1 ||
    die "idemgate rejected its $store config: $(cat "$WORK/idemgate-$store.check")"
  start "idemgate-$store" "$port" "$BUILD/idemgate" --config "$WORK/idemgate-$store.yaml"
  PORT[idemgate-$store]=$port
done

# Every proxy answers before the clock starts.
for name in nginx-proxy node-peer idemgate-memory idemgate-redis idemgate-postgres; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${PORT[$name]}/v1/payments" \
    -H 'Authorization: Bearer tenant-0' -H 'Content-Type: application/json' -H "Idempotency-Key: bench-probe-$name" \
    -d '{"amount":1,"currency":"usd"}') || true
  [[ $code == 2* ]] || die "$name answered $code to a probe request (see $WORK/$name.log)"
done

# ------------------------------------------------------------------------------------ the load
# name path: the measured cases, in the interleaving order.
CASES=(
  "upstream-nginx plain" "upstream-mock plain" "nginx-proxy plain"
  "node-peer miss" "node-peer replay"
  "idemgate-memory miss" "idemgate-memory replay"
  "idemgate-redis miss" "idemgate-redis replay"
  "idemgate-postgres miss" "idemgate-postgres replay"
)
LOAD_START=$(date -u +%FT%TZ)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
run_case() {  # NAME PATH CONNECTIONS SECONDS TAG
  local name=$1 path=$2 conns=$3 secs=$4 tag=$5
  local args=(--target "127.0.0.1:${PORT[$name]}" -c "$conns" -d "$secs" --quiet --tenants 4
              --label "$name $path" --json "$WORK/results/$name.$path.$tag.json")
  case $path in
    plain|miss) args+=(--miss) ;;
    replay) args+=(--replay --keys "$REPLAY_KEYS") ;;
  esac
  local rc=0
  "$LOADTEST" "${args[@]}" >"$WORK/results/$name.$path.$tag.txt" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || log "warning: $name $path ($tag) exited $rc: $(tail -3 "$WORK/results/$name.$path.$tag.txt")"
  log "$(printf '%-18s %-7s %-4s' "$name" "$path" "$tag") $(sed -n 's/^  requests *//p' "$WORK/results/$name.$path.$tag.txt" | cut -c1-70)"
}
total=$(( ${#CASES[@]} * (ROUNDS * DURATION + LAT_DURATION) ))
log "measuring ${#CASES[@]} cases: $ROUNDS x ${DURATION}s at 32 connections, then ${LAT_DURATION}s at 4 (about $((total / 60 + 1)) min)"
for ((round = 1; round <= ROUNDS; round++)); do
  for c in "${CASES[@]}"; do
    read -r name path <<<"$c"
    [[ $path == miss || $path == plain ]] && curl -s -o /dev/null -X POST "http://127.0.0.1:$P_MOCK/__reset" || true
    run_case "$name" "$path" 32 "$DURATION" "r$round"
  done
done
for c in "${CASES[@]}"; do
  read -r name path <<<"$c"
  run_case "$name" "$path" 4 "$LAT_DURATION" "lat"
done
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------ the table
DATE=$(date -u +%Y%m%d-%H%M%S)
[[ -n $OUT ]] || OUT=$ROOT/loadtest/results/bench-$DATE.json
mkdir -p "$(dirname "$OUT")"
python3 - "$WORK/results" "$OUT" "$ROUNDS" <<PYEOF
import json, os, platform, subprocess, sys

results_dir, out_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = """${CASES[*]}""".split()
cases = [(cases[i], cases[i + 1]) for i in range(0, len(cases), 2)]

def load(name, path, tag):
    p = os.path.join(results_dir, f"{name}.{path}.{tag}.json")
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

rows = []
for name, path in cases:
    runs = [r for r in (load(name, path, f"r{i}") for i in range(1, rounds + 1)) if r]
    lat = load(name, path, "lat")
    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None
    rows.append({
        "system": name, "path": path,
        "rps": mean([r["throughput_rps"] for r in runs]),
        "rps_rounds": [r["throughput_rps"] for r in runs],
        "p50_ms": mean([r["latency_us"]["p50"] / 1000 for r in runs]),
        "p99_ms": mean([r["latency_us"]["p99"] / 1000 for r in runs]),
        "errors": sum(r["errors"]["request_errors"] for r in runs),
        "non_2xx": sum(n for r in runs for s, n in r["status"].items() if not s.startswith("2")),
        "lat4_rps": lat["throughput_rps"] if lat else None,
        "lat4_p50_ms": lat["latency_us"]["p50"] / 1000 if lat else None,
        "lat4_p99_ms": lat["latency_us"]["p99"] / 1000 if lat else None,
    })

def row(name, path):
    for r in rows:
        if r["system"] == name and r["path"] == path:
            return r
    return None

nginx = row("nginx-proxy", "plain")
upstream = row("upstream-${UPSTREAM_KIND}", "plain")
for r in rows:
    node = row("node-peer", "replay" if r["path"] == "replay" else "miss")
    r["x_nginx"] = r["rps"] / nginx["rps"] if r["rps"] and nginx and nginx["rps"] else None
    r["x_node"] = r["rps"] / node["rps"] if r["rps"] and node and node["rps"] else None
    r["lat4_p99_over_upstream_ms"] = (r["lat4_p99_ms"] - upstream["lat4_p99_ms"]
                                      if r["lat4_p99_ms"] is not None and upstream and upstream["lat4_p99_ms"] is not None else None)

targets = []
def target(text, value, ok):
    targets.append({"target": text, "value": value, "met": bool(ok) if value is not None else None})
for store, path, want in [("memory", "replay", 1.2), ("redis", "replay", 1.0), ("memory", "miss", 0.8),
                          ("redis", "miss", 0.6), ("postgres", "miss", 0.3)]:
    r = row(f"idemgate-{store}", path)
    v = r["x_nginx"] if r else None
    target(f"{store} {path} >= {want}x nginx-proxy", v, v is not None and v >= want)
for store in ("memory", "redis", "postgres"):
    for path in ("miss", "replay"):
        r = row(f"idemgate-{store}", path)
        v = r["x_node"] if r else None
        target(f"{store} {path} >= 3x node-peer", v, v is not None and v >= 3)
for store, limit in (("memory", 0.3), ("redis", 0.6)):
    for path in ("miss", "replay"):
        r = row(f"idemgate-{store}", path)
        v = r["lat4_p99_over_upstream_ms"] if r else None
        target(f"{store} {path}: p99 at 4 connections <= upstream + {limit} ms", v, v is not None and v <= limit)

def fmt(v, d=1, suffix=""):
    return "-" if v is None else f"{v:.{d}f}{suffix}"

lines = []
lines.append("| system | path | req/s (32 conn) | p50 ms | p99 ms | x nginx-proxy | x node-peer | p50 ms (4 conn) | p99 ms (4 conn) |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    lines.append(f"| {r['system']} | {r['path']} | {fmt(r['rps'], 0)} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} | "
                 f"{fmt(r['x_nginx'], 2, 'x')} | {fmt(r['x_node'], 2, 'x')} | {fmt(r['lat4_p50_ms'], 3)} | {fmt(r['lat4_p99_ms'], 3)} |")
lines.append("")
lines.append("| target (issue 7) | value | met |")
lines.append("|---|---:|---|")
for t in targets:
    met = "-" if t["met"] is None else ("yes" if t["met"] else "no")
    lines.append(f"| {t['target']} | {fmt(t['value'], 2)} | {met} |")
table = "\n".join(lines)

def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception:
        return None

document = {
    "command": """${COMMAND}""".strip(),
    "started": "${LOAD_START}",
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                "loadavg_start": "${LOADAVG_START}", "loadavg_end": "${LOADAVG_END}",
                "note": "other processes may have been running; compare ratios within one run"},
    "versions": {"nginx": version(["nginx", "-v"]), "node": version(["node", "--version"]),
                 "idemgate_commit": version(["git", "-C", "${ROOT}", "describe", "--always", "--dirty"])},
    "settings": {"connections": 32, "rounds": rounds, "duration_s": ${DURATION}, "latency_connections": 4,
                 "latency_duration_s": ${LAT_DURATION}, "replay_keys": ${REPLAY_KEYS},
                 "proxies_upstream": "${UPSTREAM_KIND}", "load_generator": "idemgate-loadtest (closed loop, 2 threads)",
                 "node_peer": "express 4 + express-idempotency 1 (Map data adapter), forwards to the upstream"},
    "rows": rows, "targets": targets, "table_markdown": table,
}
with open(out_path, "w") as f:
    json.dump(document, f, indent=2)
print(table)
PYEOF
log "written $OUT (load average ${LOADAVG_START} at the start, ${LOADAVG_END} at the end)"
