# Shared by bench.sh, scale.sh and soak.sh (sourced, not run). The caller sets LOG_TAG before sourcing,
# and ROOT, BUILD, WORK and PIDS (an array) before starting anything; its own cleanup trap stops PIDS.
#   log / die                 messages on stderr, "[LOG_TAG hh:mm:ss] ..."
#   install_packages PKG...   apt-get install (with sudo when not root); nothing when no PKG is given
#   build_tools               configure BUILD if needed, build idemgate, the mock upstream and the load tool
#   pid_alive / stop_pid PID  liveness (zombies count as gone); TERM, 10 s, then KILL, and reap
#   free_port / wait_port     a free loopback port; wait until PORT listens or PID exits
#   start NAME PORT CMD...    CMD in the background, output in WORK/NAME.log, waits for PORT; sets LAST_PID
#   nginx_conf DIR PORT BODY [HTTP-EXTRA]   a private nginx config in DIR (tested with nginx -t)

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

install_packages() {
  (($#)) || return 0
  log "installing $*"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

build_tools() {
  local blog=${TMPDIR:-/tmp}/idemgate-$LOG_TAG-build.log b
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    log "configuring $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  log "building idemgate, idemgate-mock-upstream, idemgate-loadtest in $BUILD"
  if ! cmake --build "$BUILD" -j"$(nproc)" --target idemgate idemgate-mock-upstream idemgate-loadtest >"$blog" 2>&1; then
    for b in idemgate idemgate-mock-upstream idemgate-loadtest; do
      [[ -x $BUILD/$b ]] || die "the build failed and $BUILD/$b is missing: see $blog"
    done
    log "warning: the build failed ($blog); running the binaries already in $BUILD"
  fi
}

pid_alive() {
  local state
  [[ -r /proc/$1/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]]
}
stop_pid() {
  local pid=$1
  pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {  # PORT PID NAME
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    pid_alive "$2" || die "$3 exited at start (see $WORK/$3.log): $(tail -5 "$WORK/$3.log" 2>/dev/null)"
    sleep 0.05
  done
  die "$3 did not listen on port $1 (see $WORK/$3.log)"
}
LAST_PID=""
start() {  # NAME PORT CMD...
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  wait_port "$port" "$LAST_PID" "$name"
}

nginx_conf() {  # DIR PORT SERVER-BLOCK-BODY [HTTP-EXTRA]
  local dir=$1 port=$2 body=$3 extra=${4:-} user=""
  [[ $(id -u) -eq 0 ]] && user="user root root;"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<NGINX
$user
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  $extra
  server {
    listen 127.0.0.1:$port;
    $body
  }
}
NGINX
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" || die "nginx rejected $dir/nginx.conf"
}
