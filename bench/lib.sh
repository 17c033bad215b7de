# bench/lib.sh: helpers shared by bench/run.sh, bench/connections.sh and
# bench/revocation_lag.sh (sourced, not run). Installs what is missing, builds, makes keys,
# writes configs, starts processes and stops every one of them by its PID on exit.
# Loopback only: every address here is 127.0.0.1.

PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
GW=${GW:-$PWD/target/release/gateway}
EX=${EX:-$PWD/target/release/examples}

WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench] $*" >&2; }

# Installs the Debian packages whose commands are missing (wrk, nginx, haproxy, redis-server).
install_missing() {
  local missing=() cmd pkg
  for pair in wrk:wrk nginx:nginx haproxy:haproxy redis-server:redis-server redis-cli:redis-tools \
    openssl:openssl taskset:util-linux python3:python3; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build() {
  if [ -z "${SKIP_BUILD:-}" ]; then
    log "cargo build --release --bins --examples"
    cargo build --release --bins --examples --quiet
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
  local port=$1 tries=$(( ${2:-10} * 10 ))
  for _ in $(seq "$tries"); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on 127.0.0.1:$port"; return 1
}

# start NAME CPU CMD...: runs CMD pinned on CPU in the background, output to $WORK/NAME.log;
# records its PID in PIDS and in $WORK/NAME.pid.
start() {
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  echo "$pid" > "$WORK/$name.pid"
}

# stop NAME: stops a process started with `start`, by its PID.
stop() {
  local pid
  pid=$(cat "$WORK/$1.pid")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Keys: the gateway's dev TLS pair and Ed25519 signing pair, an RSA pair for RS256, an HS256
# secret (ASCII, so HAProxy and the gateway read the same bytes), and a PEM bundle for HAProxy.
make_keys() {
  "$GW" keygen --dir "$WORK/certs" >/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/certs/rsa.pem" 2>/dev/null
  openssl pkey -in "$WORK/certs/rsa.pem" -pubout -out "$WORK/certs/rsa.pub.pem"
  cat "$WORK/certs/gateway.crt" "$WORK/certs/gateway.key" > "$WORK/certs/haproxy.pem"
  BENCH_HS_SECRET=$(openssl rand -hex 32)
  export BENCH_HS_SECRET
}

start_redis() { # PORT [NAME [EXTRA ARGS...]]
  local port=$1 name=${2:-redis}
  shift; shift || true
  mkdir -p "$WORK/$name"
  start "$name" "$LOAD_CPU" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK/$name" "$@"
  wait_port "$port"
}

# start_redis_deployment MODE PORT...: `node` (one Redis on the first port), `sentinel` (a
# master, a replica and a sentinel on the three ports) or `cluster` (three masters). Sets
# SESSION_REDIS, the [session] line that names it.
start_redis_deployment() {
  local mode=$1; shift
  case $mode in
    node)
      start_redis "$1"
      SESSION_REDIS="redis_url = \"redis://127.0.0.1:$1/0\"" ;;
    sentinel)
      start_redis "$1" redis-master
      start_redis "$2" redis-replica --replicaof 127.0.0.1 "$1"
      printf 'sentinel monitor gwmaster 127.0.0.1 %s 1\nsentinel down-after-milliseconds gwmaster 1000\n' \
        "$1" > "$WORK/sentinel.conf"
      start sentinel "$LOAD_CPU" redis-server "$WORK/sentinel.conf" --sentinel --port "$3" \
        --bind 127.0.0.1
      wait_port "$3"
      SESSION_REDIS="redis_sentinel = { master = \"gwmaster\", nodes = [\"redis://127.0.0.1:$3\"] }" ;;
    cluster)
      local p nodes=() urls=()
      for p in "$@"; do
        start_redis "$p" "redis-$p" --cluster-enabled yes --cluster-config-file "$WORK/redis-$p/nodes.conf"
        nodes+=("127.0.0.1:$p"); urls+=("\"redis://127.0.0.1:$p\"")
      done
      redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
      for p in "$@"; do
        until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
      done
      SESSION_REDIS="redis_cluster = [$(IFS=,; echo "${urls[*]}")]" ;;
    *) log "unknown Redis deployment $mode"; return 1 ;;
  esac
  export SESSION_REDIS
}

start_upstream() { # PORT: nginx answering 200 "ok"
  cat > "$WORK/upstream.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/upstream.nginx.pid;
error_log $WORK/upstream.err;
worker_rlimit_nofile 19000;
events { worker_connections 4000; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$1 backlog=4096; location / { return 200 "ok"; } }
}
NGX
  start upstream "$LOAD_CPU" nginx -c "$WORK/upstream.conf" -p "$WORK"
  wait_port "$1"
}

# nginx_tls_conf FILE NAME PORT UPSTREAM_PORT [FIRST_LINE]: the config of nginx as a plain TLS
# reverse proxy, one worker (FIRST_LINE: e.g. `master_process off;` to run it under valgrind).
nginx_tls_conf() {
  cat > "$1" <<NGX
${5:-}
worker_processes 1;
daemon off;
pid $WORK/$2.nginx.pid;
error_log $WORK/$2.err;
worker_rlimit_nofile 19000;
events { worker_connections 15000; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$4; keepalive 128; }
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  ssl_protocols TLSv1.2 TLSv1.3;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$3 ssl http2 backlog=4096;
    ssl_certificate $WORK/certs/gateway.crt;
    ssl_certificate_key $WORK/certs/gateway.key;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
}

start_nginx_tls() { # PORT UPSTREAM_PORT: nginx as a plain TLS reverse proxy, one worker
  nginx_tls_conf "$WORK/nginx-tls.conf" nginx-tls "$1" "$2"
  start nginx-tls "$PROXY_CPU" nginx -c "$WORK/nginx-tls.conf" -p "$WORK"
  wait_port "$1"
}

# start_haproxy NAME PORT UPSTREAM_PORT [plain|hs256|rs256]: HAProxy 2.6, one thread, TLS;
# with hs256/rs256 it checks the bearer token with jwt_verify, iss, aud and exp, and sets
# identity headers from the claims (what the gateway does, minus the session check).
start_haproxy() {
  local name=$1 port=$2 up=$3 mode=${4:-plain} jwt=""
  case $mode in
    hs256) jwt=$(haproxy_jwt HS256 "\"$BENCH_HS_SECRET\"") ;;
    rs256) jwt=$(haproxy_jwt RS256 "\"$WORK/certs/rsa.pub.pem\"") ;;
  esac
  cat > "$WORK/$name.cfg" <<CFG
global
  nbthread 1
  maxconn 4000
  tune.ssl.cachesize 20000
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
  http-reuse always
frontend fe
  bind 127.0.0.1:$port ssl crt $WORK/certs/haproxy.pem alpn h2,http/1.1
$jwt
  default_backend be
backend be
  server up 127.0.0.1:$up maxconn 1000
CFG
  haproxy -c -q -f "$WORK/$name.cfg"
  start "$name" "$PROXY_CPU" haproxy -db -f "$WORK/$name.cfg"
  wait_port "$port"
}

haproxy_jwt() { # ALG KEY
  cat <<CFG
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.jwt_alg) -m str $1 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,$2) -m int 1 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str gateway }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str api }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request del-header X-User-Id
  http-request del-header X-Session-Id
  http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('\$.sub')]
  http-request set-header X-Session-Id %[var(txn.bearer),jwt_payload_query('\$.sid')]
  http-request del-header Authorization
CFG
}

# gateway_config FILE PORT UPSTREAM_PORT REDIS_PORT ALG WORKERS CACHE [EXTRA_LIMITS]
# ALG: EdDSA, RS256 or HS256. Routes: /public/ (public), /admin/ (role admin), / (required).
# GW_EXTRA_TABLES: more tables, as TOML (e.g. `[headers]` with the assertion).
gateway_config() {
  local file=$1 port=$2 up=$3 redis=$4 alg=$5 workers=$6 cache=$7 limits=${8:-}
  local keys auth
  case $alg in
    EdDSA) keys='[{ kid = "k1", public_key = "certs/signing.pub.pem" }]'
           auth='signing_key = "certs/signing.pem"
signing_kid = "k1"' ;;
    RS256) keys='[{ kid = "r1", public_key = "certs/rsa.pub.pem" }]'
           auth='signing_key = "certs/rsa.pem"
signing_kid = "r1"' ;;
    HS256) keys='[{ kid = "h1", secret_env = "BENCH_HS_SECRET" }]'
           auth='signing_secret_env = "BENCH_HS_SECRET"
signing_kid = "h1"' ;;
    *) log "unknown algorithm $alg"; return 1 ;;
  esac
  # Outside the here-document: bash removes the quotes of a default written inside one.
  local session_redis="redis_url = \"redis://127.0.0.1:$redis/0\""
  session_redis=${SESSION_REDIS:-$session_redis}
  cat > "$file" <<TOML
[listen]
https = "127.0.0.1:$port"
[runtime]
workers = $workers
[tls]
cert = "certs/gateway.crt"
key = "certs/gateway.key"
[jwt]
algorithms = ["$alg"]
issuer = "gateway"
audience = "api"
keys = $keys
[session]
store = "redis"
$session_redis
cache = $cache
[auth]
$auth
${GW_EXTRA_TABLES:-}
[limits]
$limits
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:$up"
auth = "public"
[[route]]
path = "/admin/"
upstream = "http://127.0.0.1:$up"
roles = ["admin"]
[[route]]
path = "/"
upstream = "http://127.0.0.1:$up"
TOML
  "$GW" check --config "$file" >/dev/null
}

# start_gateway NAME CONFIG PORT [CPUS]: RUST_LOG=$GW_LOG (warn: no access log; info: the
# access log, as shipped, to $WORK/NAME.log)
start_gateway() {
  # shellcheck disable=SC2086
  start "$1" "${4:-$PROXY_CPU}" env RUST_LOG="${GW_LOG:-warn}" ${GW_ENV:-} "$GW" serve --config "$2"
  wait_port "$3" 20
}

# pids_of NAME: the PID started as NAME and its direct children (nginx's worker).
pids_of() {
  local pid
  pid=$(cat "$WORK/$1.pid")
  echo "$pid"
  pgrep -P "$pid" || true
}

versions() {
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo "- $(nginx -v 2>&1), $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3), $(redis-server --version | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(rustc --version)"
  echo "- gateway $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(git log -1 --format=%s 2>/dev/null | cut -c1-60))"
}
