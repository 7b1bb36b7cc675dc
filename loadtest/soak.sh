#!/usr/bin/env bash
# Memory soak, one command, on this machine (loadtest/README.md):
#
#   bash loadtest/soak.sh [--minutes M] [--rate R] [--connections C] [--ttl T] [--segment S]
#                         [--interval S] [--bound PCT] [--build-dir DIR] [--out FILE] [--keep]
#
# idemgate (memory store) in front of idemgate-mock-upstream, forward_key: client, with a short record
# retention (route ttl, --ttl, default 60s) so that records expire and are swept throughout the soak.
# Load: idemgate-loadtest, open loop at --rate (3000) requests/s over --connections (64), with duplicates
# (0.3), bursts of 4 (10% of new keys), conflicting payloads (2% of duplicates), 8 tenants and --verify,
# for --minutes (10). The load runs as consecutive verified segments of --segment seconds (30; at most
# half the ttl): the load tool picks duplicates among every key of its run, so a run longer than the ttl
# would retry keys whose record has expired (forwarded again, rightly) and the verification would count
# them as double executions. Each segment uses fresh keys and resets the mock's counts.
#
# Every --interval (10) seconds it samples idemgate's RSS (VmRSS of /proc/PID/status), its threads and its
# counters from GET /__idemgate/metrics into a CSV; stored records = forwarded - released - swept (the
# memory store exposes no gauge; exact here, where every key is new). At the end it prints the first,
# peak and last RSS and the growth over the second half (last sample against the one at half time);
# memory is "flat" (PASS) when that growth is at most --bound percent (10) and records did expire during
# the soak. Then the verification of every segment. Exit status 0 only when both pass.
#
# Everything runs on 127.0.0.1, free ports, a private temp dir, started here and stopped by PID at the end
# (also on Ctrl-C). Writes loadtest/results/soak-<date>.csv and .json (or --out FILE.json + FILE.csv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
MINUTES=10
RATE=3000
CONNECTIONS=64
TTL=60
SEGMENT=30
INTERVAL=10
BOUND=10
OUT=""
KEEP=0
COMMAND="bash loadtest/soak.sh $*"

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
seconds_of() {  # 90, 90s, 2m, 1h -> seconds
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
while (($#)); do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --ttl) TTL=$(seconds_of "$2"); shift 2 ;;
    --segment) SEGMENT=$(seconds_of "$2"); shift 2 ;;
    --interval) INTERVAL=$(seconds_of "$2"); shift 2 ;;
    --bound) BOUND=$2; shift 2 ;;
    --build-dir) BUILD=$(realpath -m -- "$2"); shift 2 ;;
    --out) OUT=$(realpath -m -- "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in MINUTES RATE CONNECTIONS TTL SEGMENT INTERVAL BOUND; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "soak: --${v,,} must be a positive integer (got '${!v}')" >&2; exit 2; }
done
((SEGMENT * 2 <= TTL)) || { echo "soak: --segment ($SEGMENT s) must be at most half the --ttl ($TTL s)" >&2; exit 2; }
((SEGMENT >= 5)) || { echo "soak: --segment must be at least 5 s" >&2; exit 2; }

LOG_TAG=soak
source "$ROOT/loadtest/lib.sh"

# ------------------------------------------------------------------------------------------- setup
need=()
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
install_packages "${need[@]}"
build_tools

# The sources the binaries are built from (--build-dir may point at another checkout).
SRC_DIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
WORK=$(mktemp -d /tmp/idemgate-soak.XXXXXX)
mkdir -p "$WORK/segments"
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if ((KEEP)); then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


DATE=$(date -u +%Y%m%d-%H%M%S)
[[ -n $OUT ]] || OUT=$ROOT/loadtest/results/soak-$DATE.json
CSV=${OUT%.json}.csv
mkdir -p "$(dirname "$OUT")"

# ------------------------------------------------------------------------------------ the systems
P_MOCK=$(free_port)
start upstream-mock "$P_MOCK" "$BUILD/idemgate-mock-upstream" --port "$P_MOCK" --quiet --threads 512 --max-keys 5000000

P_GW=$(free_port)
cat >"$WORK/idemgate.yaml" <<EOF
server:
  listen: 127.0.0.1:$P_GW
log:
  level: warning
  access_log: false
store:
  type: memory
  memory:
    max_records: 1000000
    sweep_interval: 1s
upstreams:
  up:
    url: http://127.0.0.1:$P_MOCK
    timeout: 10s
route_defaults:
  tenant_header: Authorization
  forward_key: client
  ttl: ${TTL}s
routes:
  payments:
    methods: [POST]
    path: /v1/payments
    upstream: up
    fingerprint: {body: json}
EOF
"$BUILD/idemgate" --check-config "$WORK/idemgate.yaml" >"$WORK/idemgate.check" 2>&1 ||
  die "idemgate rejected its config: $(cat "$WORK/idemgate.check")"
start idemgate "$P_GW" "$BUILD/idemgate" --config "$WORK/idemgate.yaml"
GW_PID=$LAST_PID
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_GW/__idemgate/health") || true
[[ $code == 200 ]] || die "idemgate answered $code to GET /__idemgate/health (see $WORK/idemgate.log)"

# ------------------------------------------------------------------------------------ the sampler
cat >"$WORK/sampler.py" <<'EOF'
# Every INTERVAL seconds: idemgate's RSS, threads and counters, one CSV row (flushed); TERM ends it.
import sys, time, urllib.request
pid, port, interval, csv_path, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
names = ["requests_total", "forwarded_total", "replayed_total", "released_total", "rejected_total",
         "in_flight_conflicts_total", "fingerprint_mismatches_total", "store_errors_total",
         "store_reaped_records_total"]
with open(csv_path, "w") as out:
    out.write("elapsed_s,time_utc,rss_kb,hwm_kb,threads,records," + ",".join(names) + "\n")
    out.flush()
    tick = 0
    while True:
        status = {}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    status[k] = v.split()[0] if v.split() else ""
        except OSError:
            break
        metrics = {}
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/__idemgate/metrics", timeout=5).read().decode()
            for line in text.splitlines():
                if line.startswith("idemgate_"):
                    k, _, v = line.partition(" ")
                    metrics[k[len("idemgate_"):]] = int(float(v))
        except Exception:
            pass
        values = [metrics.get(n, "") for n in names]
        records = ""
        if metrics:
            records = metrics.get("forwarded_total", 0) - metrics.get("released_total", 0) - metrics.get("store_reaped_records_total", 0)
        out.write(f"{time.time() - t0:.1f},{time.strftime('%H:%M:%S', time.gmtime())},{status.get('VmRSS', '')},"
                  f"{status.get('VmHWM', '')},{status.get('Threads', '')},{records}," + ",".join(map(str, values)) + "\n")
        out.flush()
        tick += 1
        time.sleep(max(0.0, t0 + tick * interval - time.time()))
EOF
T0=$(date +%s.%N)
python3 "$WORK/sampler.py" "$GW_PID" "$P_GW" "$INTERVAL" "$CSV" "$T0" &
SAMPLER_PID=$!
PIDS+=("$SAMPLER_PID")

# ------------------------------------------------------------------------------------ the load
TOTAL=$((MINUTES * 60))
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "soak: $MINUTES min at $RATE req/s (open loop, $CONNECTIONS connections) in ${SEGMENT}s verified segments; ttl ${TTL}s; sampling every ${INTERVAL}s into $CSV"
seg=0
while :; do
  now=$(date +%s.%N)
  left=$(python3 -c "print(int(round($T0 + $TOTAL - $now)))")
  ((left >= 3)) || break
  ((seg += 1))
  d=$((left < SEGMENT ? left : SEGMENT))
  rc=0
  "$BUILD/idemgate-loadtest" --target "127.0.0.1:$P_GW" --upstream "127.0.0.1:$P_MOCK" --verify --reset-upstream \
    --rate "$RATE" -c "$CONNECTIONS" -d "$d" --duplicate-ratio 0.3 --burst 4 --burst-ratio 0.1 --conflict-ratio 0.02 \
    --tenants 8 --quiet --label "soak segment $seg" --json "$WORK/segments/$seg.json" >"$WORK/segments/$seg.txt" 2>&1 || rc=$?
  echo "$rc" >"$WORK/segments/$seg.rc"
  pid_alive "$GW_PID" || die "idemgate exited during the soak (see $WORK/idemgate.log)"
  log "segment $seg (${d}s, exit $rc): $(sed -n 's/^  requests *//p' "$WORK/segments/$seg.txt" | cut -c1-60); RSS $(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$GW_PID/status") MiB; $(sed -n 's/^  verify *//p' "$WORK/segments/$seg.txt" | cut -c1-40)"
done
# The sampler's tick at the end time (t = minutes x 60) is the last sample; then it stops.
for _ in $(seq $((INTERVAL * 10 + 50))); do
  awk -F, -v end="$TOTAL" 'NR > 1 && $1 + 0.5 >= end { found = 1 } END { exit !found }' "$CSV" && break
  sleep 0.1
done
stop_pid "$SAMPLER_PID"
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------ the verdict
set +e
python3 - "$CSV" "$WORK/segments" "$OUT" <<PYEOF
import csv, glob, json, os, platform, subprocess, sys

csv_path, seg_dir, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
bound = float(${BOUND})
rows = [r for r in csv.DictReader(open(csv_path)) if r["rss_kb"]]
for r in rows:
    r["t"] = float(r["elapsed_s"])
    r["rss"] = int(r["rss_kb"])
    r["rec"] = int(r["records"]) if r["records"] else None
segments = []
for path in sorted(glob.glob(os.path.join(seg_dir, "*.json")), key=lambda p: int(os.path.basename(p).split(".")[0])):
    n = int(os.path.basename(path).split(".")[0])
    rc = int(open(os.path.join(seg_dir, f"{n}.rc")).read().strip() or -1)
    try:
        j = json.load(open(path))
    except (OSError, ValueError):
        j = {}
    v = j.get("verify") or {}
    segments.append({"segment": n, "exit": rc, "seconds": j.get("seconds"), "answered": j.get("answered"),
                     "rps": j.get("throughput_rps"), "p99_ms": (j.get("latency_us") or {}).get("p99", 0) / 1000,
                     "max_ms": (j.get("latency_us") or {}).get("max", 0) / 1000,
                     "status": j.get("status"), "errors": j.get("errors"), "per_connection": j.get("per_connection"),
                     "verify_ok": v.get("ok"), "keys": v.get("keys"), "executions": v.get("executions"),
                     "violations": v.get("violations"), "by_kind": {k: c for k, c in (v.get("by_kind") or {}).items() if c}})

mib = lambda kb: kb / 1024
first, last = rows[0], rows[-1]
peak = max(rows, key=lambda r: r["rss"])
duration = last["t"]
half = duration / 2
mid = min(rows, key=lambda r: abs(r["t"] - half))
growth = (last["rss"] - mid["rss"]) / mid["rss"] * 100
second = [r for r in rows if r["t"] >= mid["t"]]
peak2 = max(second, key=lambda r: r["rss"])
# least-squares slope over the second half, as percent of the half-time RSS per half
n = len(second)
if n >= 2:
    mt = sum(r["t"] for r in second) / n
    mr = sum(r["rss"] for r in second) / n
    den = sum((r["t"] - mt) ** 2 for r in second)
    slope = sum((r["t"] - mt) * (r["rss"] - mr) for r in second) / den if den else 0.0
    fitted = slope * (last["t"] - mid["t"]) / mid["rss"] * 100
else:
    fitted = None
reaped = int(last.get("store_reaped_records_total") or 0)
recs = [r["rec"] for r in rows if r["rec"] is not None]
flat = growth <= bound and reaped > 0

answered = sum(s["answered"] or 0 for s in segments)
violations = sum(s["violations"] or 0 for s in segments)
errors = sum((s["errors"] or {}).get("request_errors", 0) for s in segments)
unsent = sum((s["errors"] or {}).get("unsent", 0) for s in segments)
verified = bool(segments) and all(s["verify_ok"] is True and s["exit"] == 0 for s in segments)
statuses = {}
for s in segments:
    for k, c in (s["status"] or {}).items():
        statuses[k] = statuses.get(k, 0) + c

lines = []
lines.append(f"| soak: {duration / 60:.1f} min, ${RATE} req/s open loop, ttl ${TTL}s, memory store | value |")
lines.append("|---|---:|")
lines.append(f"| idemgate RSS first (t={first['t']:.0f} s) / peak (t={peak['t']:.0f} s) / last (t={last['t']:.0f} s) | "
             f"{mib(first['rss']):.1f} / {mib(peak['rss']):.1f} / {mib(last['rss']):.1f} MiB |")
lines.append(f"| RSS at half time (t={mid['t']:.0f} s) / peak of the second half | {mib(mid['rss']):.1f} / {mib(peak2['rss']):.1f} MiB |")
lines.append(f"| growth over the second half (last vs half time; least-squares fit) | {growth:+.1f}% ; "
             f"{'-' if fitted is None else f'{fitted:+.1f}%'} |")
count = lambda v: "-" if v is None else f"{v:,}"
lines.append(f"| stored records at half time / peak / last | {count(mid['rec'])} / "
             f"{count(max(recs) if recs else None)} / {count(last['rec'])} |")
lines.append(f"| records expired and swept during the soak | {reaped:,} |")
lines.append(f"| requests answered / request errors / unsent | {answered:,} / {errors:,} / {unsent:,} |")
lines.append(f"| statuses | {', '.join(f'{k}: {v:,}' for k, v in sorted(statuses.items()))} |")
lines.append(f"| worst segment p99 / max latency | {max(s['p99_ms'] for s in segments):.1f} / {max(s['max_ms'] for s in segments):.1f} ms |")
lines.append(f"| memory flat (second-half growth <= {bound:g}%, records expired) | {'PASS' if flat else 'FAIL'} |")
lines.append(f"| verification ({len(segments)} segments, {sum(s['keys'] or 0 for s in segments):,} keys) | "
             f"{'PASS' if verified else 'FAIL'} ({violations} violations) |")
table = "\n".join(lines)

document = {
    "command": """${COMMAND}""".strip(),
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_start": "${LOADAVG_START}",
                "loadavg_end": "${LOADAVG_END}", "note": "other processes may have been running"},
    "build_dir": "${BUILD}", "source_dir": "${SRC_DIR}",
    "idemgate_commit": subprocess.run(["git", "-C", "${SRC_DIR}", "describe", "--always", "--dirty"],
                                      capture_output=True, text=True).stdout.strip() or "(not a git checkout)",
    "settings": {"minutes": ${MINUTES}, "rate": ${RATE}, "connections": ${CONNECTIONS}, "ttl_s": ${TTL},
                 "segment_s": ${SEGMENT}, "interval_s": ${INTERVAL}, "bound_percent": bound,
                 "load": "--duplicate-ratio 0.3 --burst 4 --burst-ratio 0.1 --conflict-ratio 0.02 --tenants 8 --verify"},
    "csv": csv_path,
    "rss_mib": {"first": mib(first["rss"]), "first_t": first["t"], "peak": mib(peak["rss"]), "peak_t": peak["t"],
                "half": mib(mid["rss"]), "half_t": mid["t"], "last": mib(last["rss"]), "last_t": last["t"],
                "peak_second_half": mib(peak2["rss"])},
    "second_half_growth_percent": growth, "second_half_fitted_growth_percent": fitted,
    "records": {"half": mid["rec"], "peak": max(recs) if recs else None, "last": last["rec"], "swept": reaped},
    "memory_flat": flat, "verified": verified, "answered": answered, "violations": violations,
    "request_errors": errors, "unsent": unsent, "statuses": statuses, "segments": segments,
    "table_markdown": table,
}
with open(out_path, "w") as f:
    json.dump(document, f, indent=2)
print(table)
sys.exit(0 if flat and verified else 1)
PYEOF
rc=$?
set -e
log "written $OUT and $CSV (load average $LOADAVG_START at the start, $LOADAVG_END at the end)"
exit "$rc"
