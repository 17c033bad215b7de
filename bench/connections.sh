#!/usr/bin/env bash
# TLS connection costs, the gateway against nginx in one run (bench/tls_conns.rs):
# 1. resident memory (VmRSS) with CONNS (10000) idle keep-alive TLS connections, each having
#    carried one HTTP/1.1 request; nginx counts master + worker;
# 2. new TLS connections per second for DURATION (10s): full handshakes (no resumption), then
#    with resumption (tickets). One request with `Connection: close` on each.
# Server on CPU $PROXY_CPU (0), client and upstream on CPU $LOAD_CPU (1). Stops every process
# it started, by PID.
#
#   bash bench/connections.sh
#   CONNS=2000 DURATION=3s bash bench/connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

CONNS=${CONNS:-10000}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}

install_missing
build
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $(( CONNS + 1000 )) ]; then
  log "open-file limit $(ulimit -n) is below CONNS + 1000; lower CONNS"; exit 1
fi
UP=$(free_port); REDIS=$(free_port); NGX=$(free_port); GWP=$(free_port)
make_keys
start_redis "$REDIS"
start_upstream "$UP"
start_nginx_tls "$NGX" "$UP"
# Idle HTTP/1 keep-alive connections are closed after header_timeout: 30 s is its maximum.
gateway_config "$WORK/gw.toml" "$GWP" "$UP" "$REDIS" EdDSA 1 true \
  "max_connections = $(( CONNS + 1000 ))
header_timeout = \"30s\""
start_gateway gw "$WORK/gw.toml" "$GWP"

echo "## TLS connections, $(date -u +%Y-%m-%dT%H:%MZ)"
versions
echo
echo "### Memory with $CONNS idle keep-alive TLS connections (HTTP/1.1, one request each)"
for target in "nginx-tls $NGX /" "gateway $GWP /public/x"; do
  read -r name port path <<<"$target"
  pname=$name; [ "$name" = gateway ] && pname=gw
  # shellcheck disable=SC2046
  printf '%-10s ' "$name"
  timeout 120 taskset -c "$LOAD_CPU" "$EX/tls_conns" hold --addr "127.0.0.1:$port" --path "$path" \
    --count "$CONNS" --idle 2s --max-time 25s $(pids_of "$pname" | sed 's/^/--pid /')
done
echo
echo "### New TLS connections per second ($DURATION, $CONCURRENCY in flight)"
for target in "nginx-tls $NGX /" "gateway $GWP /public/x"; do
  read -r name port path <<<"$target"
  for resume in "" "--resume"; do
    printf '%-10s ' "$name"
    timeout 120 taskset -c "$LOAD_CPU" "$EX/tls_conns" handshakes --addr "127.0.0.1:$port" \
      --path "$path" --duration "$DURATION" --concurrency "$CONCURRENCY" $resume
  done
done
