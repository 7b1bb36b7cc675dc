#!/usr/bin/env bash
# Redis service fixtures for the tests (CTest fixtures `redis` and `cluster`, see tests/support/CMakeLists.txt).
#
#   redis-services.sh start DIR standalone   one redis-server on a free loopback port; writes DIR/env:
#                                              IDEM_REDIS=127.0.0.1:PORT
#   redis-services.sh start DIR cluster      three masters (--cluster-enabled yes) joined with
#                                            `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`,
#                                            waited for until every node reports cluster_state:ok; writes DIR/env:
#                                              IDEM_REDIS_CLUSTER=127.0.0.1:A,127.0.0.1:B,127.0.0.1:C
#   redis-services.sh stop DIR               stop every server started in DIR by its PID (TERM, then KILL after
#                                            a bound), wait for it to exit, and remove DIR.
#
# Servers run in the foreground of their own session (`--daemonize no`, setsid), with stdio on log files so
# CTest does not wait on them; their PIDs are kept in DIR/pids. Nothing is persisted (--save '',
# --appendonly no). The settings are the ones the README recommends for idemgate: noeviction, and
# hash-max-listpack-value 8192 so that typical records stay compactly encoded (STORE-DESIGN.md §1).
# A leftover DIR from an aborted run is stopped and replaced. Missing binaries fail loudly.
set -euo pipefail

die() { echo "redis-services: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: $0 start DIR standalone|cluster | stop DIR"
cmd=$1
dir=$(realpath -m -- "$2")
mode=${3:-standalone}
[[ -n $dir && $dir != / ]] || die "refusing to use '$2' as the service directory"

pid_alive() {
    # /proc/PID/stat rather than kill -0: a zombie still answers kill -0.
    local pid=$1 state
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

stop_pid() {
    local pid=$1
    pid_alive "$pid" || return 0
    # A PID saved by an old, crashed run may belong to another process by now: only ever signal redis-server.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'redis-server' || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do pid_alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do pid_alive "$pid" || return 0; sleep 0.1; done
    die "redis-server $pid in $dir does not exit"
}

stop_service() {
    [[ -e $dir ]] || return 0
    if [[ -r $dir/pids ]]; then
        local pid
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] && stop_pid "$pid"
        done <"$dir/pids"
    fi
    rm -rf -- "$dir"
}

# A free loopback port P such that P+10000 (the cluster bus port) is free too: both are bound once to test.
free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 55000)
    socks = []
    try:
        for q in (p, p + 10000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", q))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
else:
    raise SystemExit("no free port pair found")
EOF
}

redis_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

# start_one NAME [extra redis-server args...]: starts a server on a free port, retrying when another process
# wins the race for the port. Prints the port.
start_one() {
    local name=$1
    shift
    local attempt port pid
    for attempt in $(seq 5); do
        port=$(free_port) || die "no free port found"
        setsid redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
            --daemonize no --maxmemory-policy noeviction --hash-max-listpack-value 8192 \
            --logfile "$dir/$name.log" "$@" </dev/null >>"$dir/$name.out" 2>&1 &
        pid=$!
        echo "$pid" >>"$dir/pids"
        for _ in $(seq 100); do
            if redis_ping "$port"; then
                echo "$port"
                return 0
            fi
            pid_alive "$pid" || break
            sleep 0.1
        done
        stop_pid "$pid"
        if ! grep -qi "address already in use" "$dir/$name.log" "$dir/$name.out" 2>/dev/null; then
            cat "$dir/$name.log" "$dir/$name.out" >&2 2>/dev/null || true
            die "redis-server $name did not start (attempt $attempt)"
        fi
    done
    die "redis-server $name: no usable port after 5 attempts"
}

cluster_ok() {
    local port
    for port in "$@"; do
        redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
        # Every node must also see all three masters with their slots.
        [[ $(redis-cli -h 127.0.0.1 -p "$port" cluster slots 2>/dev/null | grep -c '^127.0.0.1$') -ge 3 ]] || return 1
    done
}

start_service() {
    command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli is not installed (apt-get install redis-tools)"
    command -v python3 >/dev/null || die "python3 is needed to pick free ports"

    stop_service
    mkdir -p -- "$dir"
    : >"$dir/pids"

    case $mode in
    standalone)
        local port
        port=$(start_one redis)
        echo "IDEM_REDIS=127.0.0.1:$port" >"$dir/env.tmp"
        mv "$dir/env.tmp" "$dir/env"
        echo "redis-services: redis-server on 127.0.0.1:$port ($dir)"
        ;;
    cluster)
        local ports=() i
        for i in 1 2 3; do
            ports+=("$(start_one "node$i" --cluster-enabled yes --cluster-config-file "$dir/nodes-$i.conf" \
                --cluster-node-timeout 5000)")
        done
        local addrs=()
        for i in "${ports[@]}"; do addrs+=("127.0.0.1:$i"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
            || { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
        local ok=0
        for _ in $(seq 300); do
            if cluster_ok "${ports[@]}"; then ok=1; break; fi
            sleep 0.1
        done
        [[ $ok -eq 1 ]] || { cat "$dir/create.log" >&2; die "cluster did not reach cluster_state:ok"; }
        local joined
        joined=$(IFS=,; echo "${addrs[*]}")
        echo "IDEM_REDIS_CLUSTER=$joined" >"$dir/env.tmp"
        mv "$dir/env.tmp" "$dir/env"
        echo "redis-services: Redis Cluster on $joined ($dir)"
        ;;
    *) die "unknown mode '$mode' (standalone|cluster)" ;;
    esac
}

case $cmd in
start) start_service ;;
stop) stop_service ;;
*) die "unknown command '$cmd' (start|stop)" ;;
esac
