#!/usr/bin/env bash
# Where the gateway's CPU goes under load: the gw-eddsa row of run.sh (TLS + EdDSA JWT + Redis
# session, session cache on, one worker on CPU $PROXY_CPU) under wrk on CPU $LOAD_CPU, sampled
# with `perf record -g` for DURATION. Prints the hottest symbols and the split by library
# (the gateway binary, the kernel, libc). Installs what is missing (wrk, nginx, redis, perf).
#
#   bash bench/profile.sh                 # 10 s of samples at 999 Hz
#   ALG=RS256 CACHE=false bash bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
ALG=${ALG:-EdDSA}
CACHE=${CACHE:-true}
CONNS=${CONNS:-64}

install_missing
command -v perf >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq linux-perf >/dev/null; }
build
ulimit -n "$(ulimit -Hn)"

UP=$(free_port); REDIS=$(free_port); PORT=$(free_port)
make_keys
start_redis "$REDIS"
start_upstream "$UP"
gateway_config "$WORK/gw.toml" "$PORT" "$UP" "$REDIS" "$ALG" 1 "$CACHE"
start_gateway gw "$WORK/gw.toml" "$PORT"
TOKEN=$("$GW" token --config "$WORK/gw.toml" --sub bench --role user --sid bench-1 --ttl 1h 2>/dev/null)
GW_PID=$(cat "$WORK/gw.pid")

log "warm-up, then perf record for ${DURATION}s on pid $GW_PID ($ALG, session.cache = $CACHE)"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" \
  "https://127.0.0.1:$PORT/x" >/dev/null
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$((DURATION + 2))s" -H "Authorization: Bearer $TOKEN" \
  "https://127.0.0.1:$PORT/x" > "$WORK/wrk.txt" &
WRK=$!
PIDS+=("$WRK")
sleep 1
perf record -F 999 -g -p "$GW_PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>"$WORK/perf.err"
wait "$WRK" || true

echo "## Profile of $(date -u +%Y-%m-%dT%H:%MZ): $ALG, session.cache = $CACHE, 1 worker"
versions
echo
grep -E "Requests/sec|Non-2xx" "$WORK/wrk.txt" | sed 's/^/    /'
echo
echo "### By library (self time)"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -8
echo
echo "### Hottest symbols (self time, >= 1%)"
perf report -i "$WORK/perf.data" --no-children --sort sym --percent-limit 1 --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | head -40
