#!/usr/bin/env bash
# Throughput and latency of the gateway against nginx on this machine, side by side in one run.
#
#   bash bench/proxy.sh            # 10 s per target, 64 connections
#   DURATION=5s CONNS=64 bash bench/proxy.sh
#
# Placement (2 cores): the proxy under test on CPU 0; wrk, the upstream (nginx `return 200`)
# and Redis on CPU 1. Keep-alive, loopback only. Every process started here is stopped by its
# PID on exit. Installs wrk, nginx and redis-server from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need redis-server; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx redis-server >/dev/null
fi
cargo build --release --quiet
GW=$PWD/target/release/gateway

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP_PORT=$(free_port); NGX_TLS_PORT=$(free_port); GW_PORT=$(free_port); REDIS_PORT=$(free_port)

"$GW" keygen --dir "$WORK/certs" >/dev/null

# Upstream: nginx answering 200 on CPU 1.
cat > "$WORK/upstream.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$UP_PORT; keepalive_requests 100000000; location / { return 200 "ok"; } }
}
NGX
taskset -c "$LOAD_CPU" nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)

# Peer: nginx as a plain TLS reverse proxy, one worker on CPU 0.
cat > "$WORK/nginx-tls.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/nginx-tls.pid;
error_log $WORK/nginx-tls.err;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX_TLS_PORT ssl http2;
    ssl_certificate $WORK/certs/gateway.crt;
    ssl_certificate_key $WORK/certs/gateway.key;
    keepalive_requests 100000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx-tls.conf" -p "$WORK" & PIDS+=($!)

taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" & PIDS+=($!)

cat > "$WORK/gateway.toml" <<TOML
[listen]
https = "127.0.0.1:$GW_PORT"
[runtime]
workers = 1
[tls]
cert = "certs/gateway.crt"
key = "certs/gateway.key"
[jwt]
algorithms = ["EdDSA"]
issuer = "gateway"
audience = "api"
keys = [{ kid = "k1", public_key = "certs/signing.pub.pem" }]
[session]
store = "redis"
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
[auth]
signing_key = "certs/signing.pem"
signing_kid = "k1"
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "public"
[[route]]
path = "/"
upstream = "http://127.0.0.1:$UP_PORT"
TOML
RUST_LOG=warn taskset -c "$PROXY_CPU" "$GW" serve --config "$WORK/gateway.toml" 2>"$WORK/gateway.log" & PIDS+=($!)

for _ in $(seq 50); do
  (echo > /dev/tcp/127.0.0.1/$GW_PORT) 2>/dev/null && (echo > /dev/tcp/127.0.0.1/$REDIS_PORT) 2>/dev/null && break
  sleep 0.1
done
TOKEN=$("$GW" token --config "$WORK/gateway.toml" --sub bench --role user --sid bench-1 --ttl 1h 2>/dev/null)

run() { # name url [header]
  local name=$1 url=$2; shift 2
  local out
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" "$url")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf "| %-44s | %10s | %8s | %6s |\n" "$name" "$rps" "$p99" "${non2xx:-0}"
  echo "$rps" > "$WORK/rps.$name"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t1 -c$CONNS -d$DURATION, proxy on CPU $PROXY_CPU, load+upstream+redis on CPU $LOAD_CPU"
echo
printf "| %-44s | %10s | %8s | %6s |\n" target req/s p99 non2xx
printf "|%s|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..46})" "-----------:" "--------:" "------:"
run upstream-direct "http://127.0.0.1:$UP_PORT/"
run nginx-tls-proxy "https://127.0.0.1:$NGX_TLS_PORT/"
run gateway-public-route "https://127.0.0.1:$GW_PORT/public/x"
run gateway-eddsa+redis-session "https://127.0.0.1:$GW_PORT/x" -H "Authorization: Bearer $TOKEN"
echo
awk -v a="$(cat "$WORK/rps.gateway-eddsa+redis-session")" -v b="$(cat "$WORK/rps.nginx-tls-proxy")" \
  'BEGIN { printf "gateway (TLS + EdDSA + Redis session) / nginx TLS proxy: %.2fx\n", a / b }'
