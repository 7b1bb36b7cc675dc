#!/usr/bin/env bash
# PostgreSQL 15 service fixture for the tests (CTest fixture `postgres`, see tests/CMakeLists.txt).
#
#   pg-service.sh start DIR   initdb into DIR/data, start a postmaster on a free loopback port with its socket
#                             in DIR, create role and database `idem`, and write DIR/env:
#                               IDEM_PG_URL=postgresql://idem@127.0.0.1:PORT/idem
#                               IDEM_PG_PORT=PORT  IDEM_PG_PID=<postmaster pid>
#                               IDEM_PG_DATA=DIR/data  IDEM_PG_BIN=/usr/lib/postgresql/15/bin  IDEM_PG_SOCKET_DIR=DIR
#   pg-service.sh stop DIR    stop that postmaster (pg_ctl -m fast, then SIGKILL by PID) and remove DIR.
#
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as `postgres` through runuser and DIR is
# chowned to it. The data is throwaway (fsync off). A leftover DIR from an aborted run is stopped and replaced.
set -euo pipefail

PG_BIN=${IDEM_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=postgres

die() { echo "pg-service: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$(realpath -m -- "$2")
[[ -n $dir && $dir != / ]] || die "refusing to use '$2' as the service directory"

# Runs a command as the postgres user when we are root, directly otherwise.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pid_alive() {
    # /proc/PID/stat rather than kill -0: a zombie still answers kill -0.
    local pid=$1 state
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

# The postmaster PID of DIR: from env, else from the data directory's postmaster.pid.
postmaster_pid() {
    local pid=""
    if [[ -r $dir/env ]]; then pid=$(sed -n 's/^IDEM_PG_PID=//p' "$dir/env"); fi
    if [[ -z $pid && -r $dir/data/postmaster.pid ]]; then pid=$(head -n1 "$dir/data/postmaster.pid"); fi
    echo "$pid"
}

stop_service() {
    [[ -e $dir ]] || return 0
    local pid
    pid=$(postmaster_pid)
    if [[ -d $dir/data && -x $PG_BIN/pg_ctl ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [[ -n $pid ]] && pid_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
        pid_alive "$pid" && die "postmaster $pid in $dir does not exit"
    fi
    rm -rf -- "$dir"
}

port_free() {
    [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

start_service() {
    for b in initdb pg_ctl psql postgres; do
        [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b is missing: install postgresql-15 (apt-get install postgresql)"
    done
    if [[ $(id -u) -eq 0 ]]; then
        id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' is missing (it comes with the postgresql package)"
    fi

    stop_service
    mkdir -p -- "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$PG_USER": "$dir"
        # Every parent must be traversable by the postgres user.
        as_pg test -x "$dir" || die "user '$PG_USER' cannot reach $dir: make its parents world-executable"
    fi
    chmod 700 "$dir"

    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    as_pg tee "$dir/data/pg_hba.conf" >/dev/null <<'EOF'
# Throwaway test cluster: trust on the socket and on loopback only.
local   all all              trust
host    all all 127.0.0.1/32 trust
EOF

    local port="" started=0
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        port_free "$port" || continue
        if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
        # Lost a race for the port (or another failure): show the log only if it was not the port.
        if ! grep -q "could not bind" "$dir/postgres.log" 2>/dev/null; then
            cat "$dir/postgres.log" >&2 || true
            die "pg_ctl start failed"
        fi
    done
    [[ $started -eq 1 ]] || die "no free port found for PostgreSQL"

    local pid
    pid=$(head -n1 "$dir/data/postmaster.pid")
    local psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
    as_pg "${psql[@]}" -c "CREATE ROLE idem LOGIN" -c "CREATE DATABASE idem OWNER idem" \
        || die "could not create role and database idem"

    cat >"$dir/env.tmp" <<EOF
IDEM_PG_URL=postgresql://idem@127.0.0.1:$port/idem
IDEM_PG_PORT=$port
IDEM_PG_PID=$pid
IDEM_PG_DATA=$dir/data
IDEM_PG_BIN=$PG_BIN
IDEM_PG_SOCKET_DIR=$dir
EOF
    mv "$dir/env.tmp" "$dir/env"
    chmod 755 "$dir"
    echo "pg-service: PostgreSQL on 127.0.0.1:$port (pid $pid, data $dir/data)"
}

case $cmd in
start) start_service ;;
stop) stop_service ;;
*) die "unknown command '$cmd' (start|stop)" ;;
esac
