#!/usr/bin/env bash
# Scale and fairness, one command, on this machine (loadtest/README.md):
#
#   bash loadtest/scale.sh [--only scale|fairness] [--store memory|redis] [--keys N] [--duration S]
#                          [--rounds N] [--connections C] [--fairness-connections C]
#                          [--fairness-duration S] [--build-dir DIR] [--out FILE] [--keep]
#
# Scale: does the cost of a request grow with the number of stored keys? Two idemgate instances on the same
# store type, both forwarding to nginx answering 201 by itself (the upstream-nginx of bench.sh):
#   empty   restarted (store emptied) before each of its runs: measured on an empty store
#   full    filled first with --keys (1,000,000) records by idemgate-loadtest --miss, then measured
# The runs are interleaved (per round and path: empty, then full), so that a drift of the machine's load
# hits both alike. Paths: miss (every key new) and replay (10000 keys sent once first, then only replayed),
# closed loop, --connections (32), --duration (5 s) each, --rounds (2). Prints a markdown table (stored keys,
# from the start to the end of the runs, path, req/s, p50, p99, idemgate RSS) and the ratios full / empty.
#
# Fairness: 512 keep-alive connections (--fairness-connections), closed loop, --fairness-duration (10 s),
# against idemgate (memory store) in front of idemgate-mock-upstream, with duplicates, bursts, conflicts and
# --verify. Prints the latency (p50/p99/p99.9/max: "every connection served within max ms"), answers per
# connection (min / median / max, never answered), connect failures, request errors and the verification.
#
# Everything runs on 127.0.0.1, free ports, a private temp dir; every process is started by this script and
# stopped by PID at the end (also on Ctrl-C or failure). Results (with the command, load average and every
# run's idemgate-loadtest JSON summary) go to loadtest/results/scale-<date>.json (or --out). Exit status 1
# when the fairness run fails (a connection refused or never answered, an error, an answer after 1 s).
# About 3 minutes on the memory store (the fill takes most of it), about 5 with --store redis.
# Two cores are shared by the load generator and the servers: quote the ratios of one run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
ONLY=all
STORE=memory
KEYS=1000000
DURATION=5
ROUNDS=2
CONNECTIONS=32
REPLAY_KEYS=10000
FAIR_CONNECTIONS=512
FAIR_DURATION=10
OUT=""
KEEP=0
COMMAND="bash loadtest/scale.sh $*"

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --only) ONLY=$2; shift 2 ;;
    --store) STORE=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --fairness-connections) FAIR_CONNECTIONS=$2; shift 2 ;;
    --fairness-duration) FAIR_DURATION=$2; shift 2 ;;
    --build-dir) BUILD=$(realpath -m -- "$2"); shift 2 ;;
    --out) OUT=$(realpath -m -- "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "scale: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $ONLY == all || $ONLY == scale || $ONLY == fairness ]] || { echo "scale: --only scale|fairness" >&2; exit 2; }
[[ $STORE == memory || $STORE == redis ]] || { echo "scale: --store memory|redis" >&2; exit 2; }
for v in KEYS DURATION ROUNDS CONNECTIONS FAIR_CONNECTIONS FAIR_DURATION; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "scale: ${v,,} must be a positive integer (got '${!v}')" >&2; exit 2; }
done
DO_SCALE=0; DO_FAIR=0
[[ $ONLY == all || $ONLY == scale ]] && DO_SCALE=1
[[ $ONLY == all || $ONLY == fairness ]] && DO_FAIR=1

LOG_TAG=scale
source "$ROOT/loadtest/lib.sh"

# ------------------------------------------------------------------------------------------- setup
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if [[ $STORE == redis && $DO_SCALE == 1 ]]; then command -v redis-server >/dev/null || need+=(redis-server redis-tools); fi
install_packages "${need[@]}"
build_tools
LOADTEST=$BUILD/idemgate-loadtest

# The sources the binaries are built from (--build-dir may point at another checkout).
SRC_DIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
WORK=$(mktemp -d /tmp/idemgate-scale.XXXXXX)
mkdir -p "$WORK/results"
PIDS=()
REDIS_DIRS=()

forget_pid() {  # PID: stopped by us, no longer to be stopped at the end
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  for d in "${REDIS_DIRS[@]}"; do bash "$ROOT/tests/support/redis-services.sh" stop "$d" >/dev/null 2>&1 || true; done
  if ((KEEP)); then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
metric() {  # PORT NAME: a counter from GET /__idemgate/metrics (0 when absent)
  curl -s --max-time 5 "http://127.0.0.1:$1/__idemgate/metrics" |
    awk -v n="$2" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }'
}

# idemgate instances: NAME -> port, pid
declare -A GW_PORT GW_PID
idemgate_config() {  # PORT UPSTREAM-PORT STORE-YAML
  cat <<EOF
server:
  listen: 127.0.0.1:$1
log:
  level: warning
  access_log: false
$3
upstreams:
  up:
    url: http://127.0.0.1:$2
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
start_idemgate() {  # NAME UPSTREAM-PORT STORE-YAML: (re)starts it on a fresh port
  local name=$1 up=$2 yaml=$3 port
  if [[ -n ${GW_PID[$name]:-} ]]; then stop_pid "${GW_PID[$name]}"; forget_pid "${GW_PID[$name]}"; fi
  port=$(free_port)
  idemgate_config "$port" "$up" "$yaml" >"$WORK/idemgate-$name.yaml"
  "$BUILD/idemgate" --check-config "$WORK/idemgate-$name.yaml" >"$WORK/idemgate-$name.check" 2>&1 ||
    die "idemgate rejected its $name config: $(cat "$WORK/idemgate-$name.check")"
  start "idemgate-$name" "$port" "$BUILD/idemgate" --config "$WORK/idemgate-$name.yaml"
  GW_PORT[$name]=$port
  GW_PID[$name]=$LAST_PID
  # A health probe, not a payment: the store stays empty until the load starts.
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/__idemgate/health") || true
  [[ $code == 200 ]] || die "idemgate-$name answered $code to GET /__idemgate/health (see $WORK/idemgate-$name.log)"
}

DATE=$(date -u +%Y%m%d-%H%M%S)
[[ -n $OUT ]] || OUT=$ROOT/loadtest/results/scale-$DATE.json
LOAD_START=$(date -u +%FT%TZ)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
RUNS_TSV=$WORK/runs.tsv   # tag kind name path round stored_before stored_after rss_kb store_rss_kb json
: >"$RUNS_TSV"
log "work dir $WORK"

# ------------------------------------------------------------------------------------------ scale
declare -A REDIS_PORT
store_yaml() {  # NAME
  case $STORE in
    memory) printf 'store:\n  type: memory\n  memory:\n    max_records: %d\n' $((2 * KEYS + 2000000)) ;;
    redis) printf 'store:\n  type: redis\n  redis:\n    address: 127.0.0.1:%s\n    key_prefix: "scale:"\n' "${REDIS_PORT[$1]}" ;;
  esac
}
stored_records() {  # NAME: records held by that instance's store
  if [[ $STORE == redis ]]; then
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT[$1]}" dbsize 2>/dev/null || echo 0
  else
    # The memory store has no gauge: records begun, less those released, less those swept after expiry
    # (exact here: every key is new, nothing expires within the 24h ttl).
    local port=${GW_PORT[$1]} f r s
    f=$(metric "$port" idemgate_forwarded_total)
    r=$(metric "$port" idemgate_released_total)
    s=$(metric "$port" idemgate_store_reaped_records_total)
    echo $((f - r - s))
  fi
}
store_rss_kb() {  # NAME: redis-server's RSS in kB (0 for the memory store)
  if [[ $STORE == redis ]]; then
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT[$1]}" info memory 2>/dev/null |
      awk -F: '/^used_memory_rss:/ { printf "%d\n", $2 / 1024 }'
  else
    echo 0
  fi
}
run_load() {  # TAG KIND NAME PATH ROUND ARGS...: one idemgate-loadtest run against instance NAME
  local tag=$1 kind=$2 name=$3 path=$4 round=$5
  shift 5
  local before after rc=0
  before=$(stored_records "$name")
  "$LOADTEST" --target "127.0.0.1:${GW_PORT[$name]}" --quiet --tenants 4 --label "$name $path" \
    --json "$WORK/results/$tag.json" "$@" >"$WORK/results/$tag.txt" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || log "warning: $tag exited $rc: $(tail -3 "$WORK/results/$tag.txt")"
  after=$(stored_records "$name")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$kind" "$name" "$path" "$round" "$before" "$after" \
    "$(rss_kb "${GW_PID[$name]}")" "$(store_rss_kb "$name")" "$WORK/results/$tag.json" >>"$RUNS_TSV"
  log "$(printf '%-24s stored %9s -> %9s  RSS %6s MiB ' "$tag" "$before" "$after" "$(($(rss_kb "${GW_PID[$name]}") / 1024))")$(sed -n 's/^  requests *//p' "$WORK/results/$tag.txt" | cut -c1-60)"
}
if ((DO_SCALE)); then
  P_UP=$(free_port)
  nginx_conf "$WORK/upstream-nginx" "$P_UP" \
    "location / { default_type application/json; return 201 '{\"id\":\"pay_\$request_id\",\"object\":\"payment\",\"idempotency_key\":\"\$http_idempotency_key\"}'; }"
  start upstream-nginx "$P_UP" nginx -p "$WORK/upstream-nginx" -c "$WORK/upstream-nginx/nginx.conf" -g 'daemon off;'
  if [[ $STORE == redis ]]; then
    for name in empty full; do
      REDIS_DIRS+=("$WORK/redis-$name")
      bash "$ROOT/tests/support/redis-services.sh" start "$WORK/redis-$name" standalone >"$WORK/redis-$name-start.log" 2>&1 ||
        die "redis-server ($name) did not start: $(tail -5 "$WORK/redis-$name-start.log")"
      REDIS_PORT[$name]=$(sed -n 's/^IDEM_REDIS=127.0.0.1://p' "$WORK/redis-$name/env")
    done
  fi
  start_idemgate full "$P_UP" "$(store_yaml full)"

  # Fill: as many new keys as are missing to reach KEYS, through the gateway (the miss path, 64 connections).
  have=$(stored_records full)
  fill=$((KEYS - have))
  log "filling the full instance's $STORE store with $fill new keys (idemgate-loadtest --miss -n $fill)"
  fill_start=$(date +%s.%N)
  run_load fill fill full miss 0 --miss -n "$fill" -d 900 -c 64 --timeout 30s
  fill_seconds=$(python3 -c "import time; print(round(time.time() - $fill_start, 1))")
  have=$(stored_records full)
  log "the full instance holds $have records (RSS $(($(rss_kb "${GW_PID[full]}") / 1024)) MiB) after ${fill_seconds}s"
  ((have >= KEYS)) || die "the fill stopped at $have records, below $KEYS (see $WORK/results/fill.txt)"

  total=$((ROUNDS * 4 * DURATION))
  log "measuring: $ROUNDS rounds x (miss, replay) x (empty, full) x ${DURATION}s at $CONNECTIONS connections (about $((total / 60 + 1)) min)"
  for ((round = 1; round <= ROUNDS; round++)); do
    for path in miss replay; do
      if [[ $path == miss ]]; then args=(--miss); else args=(--replay --keys "$REPLAY_KEYS"); fi
      for name in empty full; do
        if [[ $name == empty ]]; then
          [[ $STORE == redis ]] && redis-cli -h 127.0.0.1 -p "${REDIS_PORT[empty]}" flushall >/dev/null
          start_idemgate empty "$P_UP" "$(store_yaml empty)"
        fi
        run_load "$name.$path.r$round" measure "$name" "$path" "$round" "${args[@]}" -c "$CONNECTIONS" -d "$DURATION"
      done
    done
  done
fi

# --------------------------------------------------------------------------------------- fairness
if ((DO_FAIR)); then
  P_MOCK=$(free_port)
  start upstream-mock "$P_MOCK" "$BUILD/idemgate-mock-upstream" --port "$P_MOCK" --quiet --threads 1024 --max-keys 5000000
  start_idemgate fair "$P_MOCK" $'store:\n  type: memory'
  log "fairness: $FAIR_CONNECTIONS keep-alive connections, closed loop, ${FAIR_DURATION}s, duplicates, bursts, conflicts, --verify"
  run_load fairness fairness fair mixed 1 -c "$FAIR_CONNECTIONS" -d "$FAIR_DURATION" --upstream "127.0.0.1:$P_MOCK" \
    --verify --reset-upstream --duplicate-ratio 0.3 --burst 4 --burst-ratio 0.1 --conflict-ratio 0.05 --timeout 10s
  # Threads of the gateway at the end of the run (the native engine serves a connection per thread).
  FAIR_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/${GW_PID[fair]}/status" 2>/dev/null || echo 0)
  sed -n '/^  requests/,$p' "$WORK/results/fairness.txt" >&2
fi
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------------ report
mkdir -p "$(dirname "$OUT")"
set +e
python3 - "$RUNS_TSV" "$OUT" <<PYEOF
import json, os, platform, statistics, subprocess, sys

runs_path, out_path = sys.argv[1], sys.argv[2]
runs = []
with open(runs_path) as f:
    for line in f:
        tag, kind, name, path, rnd, before, after, rss, store_rss, jpath = line.rstrip("\n").split("\t")
        try:
            with open(jpath) as jf:
                result = json.load(jf)
        except (OSError, ValueError):
            result = None
        runs.append({"tag": tag, "kind": kind, "instance": name, "path": path, "round": int(rnd),
                     "stored_before": int(before or 0), "stored_after": int(after or 0),
                     "idemgate_rss_kb": int(rss or 0), "store_rss_kb": int(store_rss or 0), "result": result})

def fmt(v, d=1, suffix=""):
    return "-" if v is None else f"{v:,.{d}f}{suffix}"

def summary(r):
    j = r["result"] or {}
    lat = j.get("latency_us", {})
    return {"rps": j.get("throughput_rps"), "p50_ms": lat.get("p50", 0) / 1000 if lat else None,
            "p99_ms": lat.get("p99", 0) / 1000 if lat else None, "max_ms": lat.get("max", 0) / 1000 if lat else None,
            "errors": j.get("errors", {}).get("request_errors"),
            "non_2xx": sum(n for s, n in j.get("status", {}).items() if not s.startswith("2")) if j else None}

document = {
    "command": """${COMMAND}""".strip(),
    "started": "${LOAD_START}",
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                "loadavg_start": "${LOADAVG_START}", "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
                "note": "other processes may have been running; compare ratios within one run"},
    "build_dir": "${BUILD}", "source_dir": "${SRC_DIR}",
    "idemgate_commit": subprocess.run(["git", "-C", "${SRC_DIR}", "describe", "--always", "--dirty"],
                                      capture_output=True, text=True).stdout.strip() or "(not a git checkout)",
    "settings": {"store": "${STORE}", "keys": ${KEYS}, "connections": ${CONNECTIONS}, "duration_s": ${DURATION},
                 "rounds": ${ROUNDS}, "replay_keys": ${REPLAY_KEYS}, "upstream": "nginx answering 201 itself",
                 "fairness_connections": ${FAIR_CONNECTIONS}, "fairness_duration_s": ${FAIR_DURATION},
                 "load_generator": "idemgate-loadtest (closed loop, 2 threads)"},
    "runs": [{k: v for k, v in r.items() if k != "result"} | {"summary": summary(r)} for r in runs],
}
out = []

measured = [r for r in runs if r["kind"] == "measure"]
if measured:
    rows, ratios = [], []
    for path in ("miss", "replay"):
        per = {}
        for name in ("empty", "full"):
            rs = [r for r in measured if r["instance"] == name and r["path"] == path and r["result"]]
            ss = [summary(r) for r in rs]
            if not rs:
                continue
            per[name] = {
                "instance": name, "path": path,
                "stored_keys": min(r["stored_before"] for r in rs),
                "stored_keys_max": max(r["stored_after"] for r in rs),
                "rps": statistics.mean(s["rps"] for s in ss),
                "rps_rounds": [s["rps"] for s in ss],
                "p50_ms": statistics.mean(s["p50_ms"] for s in ss),
                "p99_ms": statistics.mean(s["p99_ms"] for s in ss),
                "errors": sum(s["errors"] or 0 for s in ss),
                "non_2xx": sum(s["non_2xx"] or 0 for s in ss),
                "idemgate_rss_mib": max(r["idemgate_rss_kb"] for r in rs) / 1024,
                "store_rss_mib": max(r["store_rss_kb"] for r in rs) / 1024,
            }
            rows.append(per[name])
        if "empty" in per and "full" in per:
            e, f = per["empty"], per["full"]
            # Paired per round (empty and full ran back to back): the drift of the machine's load cancels.
            pairs = [fr / er for er, fr in zip(e["rps_rounds"], f["rps_rounds"]) if er]
            ratios.append({"path": path, "rps_full_over_empty": f["rps"] / e["rps"],
                           "rps_ratio_rounds": pairs, "rps_ratio_median": statistics.median(pairs) if pairs else None,
                           "p99_full_over_empty": f["p99_ms"] / e["p99_ms"] if e["p99_ms"] else None})
    store_col = "${STORE}" == "redis"
    out.append("| stored keys (start - end of the runs) | path | req/s | p50 ms | p99 ms | idemgate RSS MiB |" + (" redis RSS MiB |" if store_col else ""))
    out.append("|---:|---|---:|---:|---:|---:|" + ("---:|" if store_col else ""))
    for r in rows:
        keys = f"{r['stored_keys']:,} - {r['stored_keys_max']:,}"
        line = (f"| {keys} | {r['path']} | {fmt(r['rps'], 0)} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} | "
                f"{fmt(r['idemgate_rss_mib'], 0)} |")
        if store_col:
            line += f" {fmt(r['store_rss_mib'], 0)} |"
        out.append(line)
    out.append("")
    out.append("| path | req/s full / empty (means) | median of the rounds | per round (back to back) | p99 full / empty |")
    out.append("|---|---:|---:|---|---:|")
    for x in ratios:
        out.append(f"| {x['path']} | {fmt(x['rps_full_over_empty'], 2, 'x')} | {fmt(x['rps_ratio_median'], 2, 'x')} | "
                   f"{', '.join(fmt(p, 2, 'x') for p in x['rps_ratio_rounds'])} | {fmt(x['p99_full_over_empty'], 2, 'x')} |")
    fill = next((r for r in runs if r["kind"] == "fill"), None)
    document["scale"] = {"rows": rows, "ratios": ratios}
    if fill and fill["result"]:
        s = summary(fill)
        document["scale"]["fill"] = {"keys": fill["result"].get("answered"), "seconds": fill["result"].get("seconds"),
                                     "rps": s["rps"], "errors": s["errors"], "non_2xx": s["non_2xx"],
                                     "stored_after": fill["stored_after"], "idemgate_rss_mib": fill["idemgate_rss_kb"] / 1024}
        out.append("")
        out.append(f"fill: {fill['result'].get('answered'):,} new keys in {fill['result'].get('seconds', 0):.1f} s "
                   f"({fmt(s['rps'], 0)} req/s, {s['errors']} errors, {s['non_2xx']} non-2xx); "
                   f"{fill['stored_after']:,} records held, idemgate RSS {fill['idemgate_rss_kb'] / 1024:,.0f} MiB")

fair = next((r for r in runs if r["kind"] == "fairness"), None)
if fair:
    j = fair["result"] or {}
    lat = j.get("latency_us", {})
    pc = j.get("per_connection", {})
    err = j.get("errors", {})
    ver = j.get("verify") or {}
    f = {"connections": j.get("connections"), "seconds": j.get("seconds"), "answered": j.get("answered"),
         "rps": j.get("throughput_rps"),
         "latency_ms": {k: v / 1000 for k, v in lat.items()},
         "per_connection": pc, "status": j.get("status"), "errors": err,
         "verify_ok": ver.get("ok"), "verify_violations": ver.get("violations"),
         "gateway_threads": int("${FAIR_THREADS:-0}" or 0)}
    f["passed"] = bool(j) and pc.get("never_answered") == 0 and pc.get("min", 0) >= 1 and \
        pc.get("connections") == j.get("connections") and err.get("connect_failures") == 0 and \
        err.get("request_errors") == 0 and err.get("reconnects") == 0 and ver.get("ok") is True and \
        lat.get("max", 10**9) < 1_000_000
    document["fairness"] = f
    out.append("")
    out.append(f"| fairness: {j.get('connections')} keep-alive connections, {j.get('seconds', 0):.1f} s | value |")
    out.append("|---|---:|")
    out.append(f"| answered (req/s) | {j.get('answered', 0):,} ({fmt(j.get('throughput_rps'), 0)}) |")
    out.append(f"| latency p50 / p99 / p99.9 / max ms | {fmt(lat.get('p50', 0) / 1000, 1)} / {fmt(lat.get('p99', 0) / 1000, 1)} / "
               f"{fmt(lat.get('p99_9', 0) / 1000, 1)} / {fmt(lat.get('max', 0) / 1000, 1)} |")
    out.append(f"| answers per connection min / median / max | {pc.get('min')} / {pc.get('median')} / {pc.get('max')} |")
    out.append(f"| connections never answered | {pc.get('never_answered')} of {pc.get('connections')} |")
    out.append(f"| connect failures / request errors / reconnects | {err.get('connect_failures')} / {err.get('request_errors')} / {err.get('reconnects')} |")
    out.append(f"| statuses | {', '.join(f'{k}: {v:,}' for k, v in (j.get('status') or {}).items())} |")
    out.append(f"| verification | {'OK' if ver.get('ok') else 'FAILED'} ({ver.get('keys', 0):,} keys, {ver.get('violations')} violations) |")
    out.append(f"| every connection answered, none refused, all within 1 s | {'yes' if f['passed'] else 'NO'} |")

table = "\n".join(out)
document["table_markdown"] = table
with open(out_path, "w") as f:
    json.dump(document, f, indent=2)
print(table)
sys.exit(1 if "fairness" in document and not document["fairness"]["passed"] else 0)
PYEOF
rc=$?
set -e
log "written $OUT (load average $LOADAVG_START at the start, $LOADAVG_END at the end)"
((rc == 0)) || log "fairness FAILED: a connection was refused, starved, answered in error or after 1 s, or the verification failed"
exit "$rc"
