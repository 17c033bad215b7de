#!/usr/bin/env bash
# Revocation lag across two gateway instances on one Redis (bench/revocation_lag.rs):
# starts Redis, an upstream and gateways A and B (same keys, same Redis), then measures
# COUNT (1000) revocations in each mode: `delete` (DEL -> first 401 from B), `grant`
# (roles user -> user,admin -> first 200 on an admin route), `revoke` (user,admin -> user ->
# first 403). Prints p50/p90/p99/max per mode. Stops every process it started, by PID.
#
#   bash bench/revocation_lag.sh
#   COUNT=200 MODES=delete bash bench/revocation_lag.sh
#   REDIS_MODE=sentinel bash bench/revocation_lag.sh   # a master, a replica and a sentinel
#   REDIS_MODE=cluster bash bench/revocation_lag.sh    # three masters
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

COUNT=${COUNT:-1000}
MODES=${MODES:-delete grant revoke}
MAX_TIME=${MAX_TIME:-5m}
REDIS_MODE=${REDIS_MODE:-node}

install_missing
build
UP=$(free_port); REDIS=$(free_port); A=$(free_port); B=$(free_port)
make_keys
start_redis_deployment "$REDIS_MODE" "$REDIS" "$(free_port)" "$(free_port)"
start_upstream "$UP"
gateway_config "$WORK/a.toml" "$A" "$UP" "$REDIS" EdDSA 1 true
gateway_config "$WORK/b.toml" "$B" "$UP" "$REDIS" EdDSA 1 true
# Both instances on the proxy CPU; the tool, Redis and the upstream on the other.
start_gateway gw-a "$WORK/a.toml" "$A"
start_gateway gw-b "$WORK/b.toml" "$B"
sleep 1 # the invalidation links come up

echo "## Revocation lag, $(date -u +%Y-%m-%dT%H:%MZ): Redis $REDIS_MODE, $COUNT rounds per mode, instances A and B on CPU $PROXY_CPU"
versions
status=0
for mode in $MODES; do
  echo
  echo "### $mode"
  timeout 600 taskset -c "$LOAD_CPU" "$EX/revocation_lag" --config "$WORK/a.toml" \
    --a "127.0.0.1:$A" --b "127.0.0.1:$B" --cert "$WORK/certs/gateway.crt" \
    --mode "$mode" --count "$COUNT" --max-time "$MAX_TIME" || status=$?
done
exit "$status"
