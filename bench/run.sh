#!/usr/bin/env bash
# The gateway against nginx and HAProxy, side by side in one run on this machine: throughput,
# p99 latency, non-2xx answers, the ratio to nginx's plain TLS proxy, and Redis commands per
# request. One command; installs what is missing (wrk, nginx, haproxy, redis-server).
#
#   bash bench/run.sh                          # wrk -t1 -c64 -d10s --latency, median of 3
#   DURATION=3s RUNS=1 bash bench/run.sh       # a quick pass
#   ROWS="nginx-tls gw-eddsa" bash bench/run.sh   # only some rows (names as printed)
#
# Placement (2 cores): the proxy under test on CPU $PROXY_CPU (0); wrk, the upstream (nginx
# `return 200`) and Redis on CPU $LOAD_CPU (1). Keep-alive, loopback only. Every process
# started here is stopped by its PID on exit. Other knobs: CONNS (64), WARMUP (2s),
# TOKEN_POOL (150000 distinct tokens for the token-cache-miss rows; 0 skips those rows),
# SKIP_BUILD=1, KEEP_WORK=1 (keep the temp dir with configs and logs), GW_BEFORE=<binary>
# (adds before-gw-* rows: the same rows with an earlier build, in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2s}
TOKEN_POOL=${TOKEN_POOL:-150000}
ROWS=${ROWS:-}

install_missing
build
ulimit -n "$(ulimit -Hn)"

UP=$(free_port); REDIS=$(free_port); NGX=$(free_port)
HAP=$(free_port); HAP_HS=$(free_port); HAP_RS=$(free_port)
make_keys
start_redis "$REDIS"
start_upstream "$UP"
start_nginx_tls "$NGX" "$UP"
start_haproxy haproxy "$HAP" "$UP" plain
HAPROXY_JWT=1
if ! start_haproxy haproxy-hs256 "$HAP_HS" "$UP" hs256 || ! start_haproxy haproxy-rs256 "$HAP_RS" "$UP" rs256; then
  log "HAProxy with jwt_verify did not start; its rows are skipped"; HAPROXY_JWT=0
fi

cat > "$WORK/tokens.lua" <<'LUA'
-- Sends each token of the file named after `--` once, in order (wrapping around at the end).
local tokens, i, path = {}, 0, "/x"
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  if args[2] then path = args[2] end
end
request = function()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA

redis_stats() { # "command calls" lines, INFO itself left out
  redis-cli -p "$REDIS" INFO commandstats |
    awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" { sub(/^cmdstat_/, "", $1); print $1, $3 }'
}
redis_calls() { redis_stats | awk '{ n += $2 } END { print n + 0 }'; }
redis_delta() { # BEFORE AFTER (files of redis_stats) -> "cmd=+n ..." for the commands that moved
  awk 'NR == FNR { b[$1] = $2; next } $2 - b[$1] > 0 { printf "%s=+%d ", $1, $2 - b[$1] }' "$1" "$2"
}

to_ms() { # wrk latency ("850.00us", "3.45ms", "1.01s") -> ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
    else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
    else print "nan" }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

wrk_once() { # DURATION URL [wrk options...] [-- script args...] -> raw wrk output
  local d=$1 url=$2; shift 2
  local secs=${d%s} opts=() rest=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then rest=("$@"); break; fi
    opts+=("$1"); shift
  done
  timeout $(( ${secs%.*} + 60 )) taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNS" -d"$d" --latency "${opts[@]}" "$url" "${rest[@]}"
}

TABLE=()
want() { [ -z "$ROWS" ] || [[ " $ROWS " == *" $1 "* ]]; }

# measure NAME URL NOTE [wrk args...]: warm-up, then RUNS runs; the row holds the medians.
# BEFORE_RUN (a function name) runs before each run; MEASURE_ARGS replaces the wrk args of the
# measured runs (the warm-up keeps the plain ones).
measure() {
  local name=$1 url=$2 note=$3; shift 3
  want "$name" || return 0
  log "$name: warm-up $WARMUP, then $RUNS x $DURATION"
  wrk_once "$WARMUP" "$url" "$@" >/dev/null
  local calls0 rps=() p99=() non2xx=0 errors=0 requests=0 out r n most=0
  calls0=$(redis_calls); redis_stats > "$WORK/redis.$name.before"
  for r in $(seq "$RUNS"); do
    if [ -n "${BEFORE_RUN:-}" ]; then "$BEFORE_RUN"; fi
    if [ -n "${MEASURE_ARGS+x}" ]; then
      out=$(wrk_once "$DURATION" "$url" "${MEASURE_ARGS[@]}")
    else
      out=$(wrk_once "$DURATION" "$url" "$@")
    fi
    echo "$out" > "$WORK/wrk.$name.$r.txt"
    rps+=("$(awk '/Requests\/sec/ { print $2 }' <<<"$out")")
    p99+=("$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")")
    non2xx=$(( non2xx + $(awk '/Non-2xx/ { print $NF }' <<<"$out" | grep . || echo 0) ))
    errors=$(( errors + $(awk -F'[ ,]+' '/Socket errors/ { print $4 + $6 + $8 + $10 }' <<<"$out" | grep . || echo 0) ))
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    requests=$(( requests + n )); [ "$n" -gt "$most" ] && most=$n
  done
  local calls1 per_req m_rps m_p99
  calls1=$(redis_calls); redis_stats > "$WORK/redis.$name.after"
  log "$name: Redis commands during the runs: $(redis_delta "$WORK/redis.$name.before" "$WORK/redis.$name.after")"
  per_req=$(awk -v c=$(( calls1 - calls0 )) -v n="$requests" 'BEGIN { printf "%.4f", n ? c / n : 0 }')
  if [ -n "${POOL_SIZE:-}" ] && [ "$most" -gt "$POOL_SIZE" ]; then
    note="$note; WRAPPED: one run sent $most requests, the pool has $POOL_SIZE, so some hit the cache"
  fi
  m_rps=$(printf '%s\n' "${rps[@]}" | median)
  m_p99=$(printf '%s\n' "${p99[@]}" | median)
  echo "$m_rps" > "$WORK/rps.$name"; echo "$m_p99" > "$WORK/p99.$name"
  TABLE+=("$name|$m_rps|$m_p99|$non2xx|$errors|$per_req|$requests|$note")
  log "$name: $m_rps req/s, p99 $m_p99 ms, non-2xx $non2xx, errors $errors (runs: ${rps[*]})"
}

# Gateway rows: GW_NAME ALG WORKERS CACHE CPUS, started for its rows and stopped after.
GW_PORT=$(free_port)
gw_up() { # NAME ALG WORKERS CACHE [CPUS]
  gateway_config "$WORK/$1.toml" "$GW_PORT" "$UP" "$REDIS" "$2" "$3" "$4"
  start_gateway "$1" "$WORK/$1.toml" "$GW_PORT" "${5:-$PROXY_CPU}"
  CUR_GW=$1
}
gw_down() { stop "$CUR_GW"; }
gw_restart() { stop "$CUR_GW"; start_gateway "$CUR_GW" "$WORK/$CUR_GW.toml" "$GW_PORT" "$CUR_CPUS"; }
token_for() { # CONFIG: mints a token and (re)creates its session bench-1 in Redis
  "$GW" token --config "$1" --sub bench --role user --sid bench-1 --ttl 1h 2>/dev/null
}
any_gw_row() { local n; for n in "$@"; do want "$n" && return 0; done; return 1; }

echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ)"
versions
echo "- wrk -t1 -c$CONNS -d$DURATION --latency, median of $RUNS runs after a $WARMUP warm-up;" \
  "proxy on CPU $PROXY_CPU, wrk + upstream + Redis on CPU $LOAD_CPU"

measure upstream-direct "http://127.0.0.1:$UP/" "no proxy: the load generator's ceiling"
measure nginx-tls "https://127.0.0.1:$NGX/" "nginx 1 worker, plain TLS proxy"
measure haproxy-tls "https://127.0.0.1:$HAP/" "HAProxy 1 thread, plain TLS proxy"

# HS256 and RS256 tokens (HAProxy checks them without a session).
gateway_config "$WORK/mint-hs.toml" "$GW_PORT" "$UP" "$REDIS" HS256 1 true
gateway_config "$WORK/mint-rs.toml" "$GW_PORT" "$UP" "$REDIS" RS256 1 true
if [ "$HAPROXY_JWT" = 1 ]; then
  HS_TOKEN=$("$GW" token --config "$WORK/mint-hs.toml" --sub bench --sid bench-1 --ttl 1h --no-session)
  RS_TOKEN=$("$GW" token --config "$WORK/mint-rs.toml" --sub bench --sid bench-1 --ttl 1h --no-session)
  measure haproxy-hs256 "https://127.0.0.1:$HAP_HS/x" "HAProxy jwt_verify HS256 + iss/aud/exp + identity headers, no session" \
    -H "Authorization: Bearer $HS_TOKEN"
  measure haproxy-rs256 "https://127.0.0.1:$HAP_RS/x" "HAProxy jwt_verify RS256 + iss/aud/exp + identity headers, no session" \
    -H "Authorization: Bearer $RS_TOKEN"
fi

CUR_CPUS=$PROXY_CPU
# gw_rows PREFIX: the rows of the gateway binary in $GW, named PREFIX + row (PREFIX is
# "before-" for the binary in $GW_BEFORE, so both are measured in one run).
gw_rows() {
  local p=$1
  if any_gw_row "${p}gw-public" "${p}gw-eddsa" "${p}gw-eddsa-badsig"; then
    gw_up "${p}gw-eddsa" EdDSA 1 true
    TOKEN=$(token_for "$WORK/${p}gw-eddsa.toml")
    measure "${p}gw-public" "https://127.0.0.1:$GW_PORT/public/x" "gateway, public route (TLS + proxy, no auth)"
    measure "${p}gw-eddsa" "https://127.0.0.1:$GW_PORT/x" "gateway TLS + EdDSA JWT + Redis session (cached)" \
      -H "Authorization: Bearer $TOKEN"
    # The same token with one character of its signature changed (the 10th from the end:
    # the last one carries padding bits, and a change there is refused as malformed, before
    # any signature check): every answer is a 401 "signature".
    local c=${TOKEN: -10:1} r=A
    if [ "$c" = A ]; then r=B; fi
    BAD="${TOKEN:0:${#TOKEN}-10}$r${TOKEN: -9}"
    measure "${p}gw-eddsa-badsig" "https://127.0.0.1:$GW_PORT/x" "one token with a bad signature, sent again and again (all 401)" \
      -H "Authorization: Bearer $BAD"
    gw_down
  fi
  if any_gw_row "${p}gw-eddsa-log"; then
    GW_LOG=info gw_up "${p}gw-eddsa-log" EdDSA 1 true
    TOKEN=$(token_for "$WORK/${p}gw-eddsa-log.toml")
    measure "${p}gw-eddsa-log" "https://127.0.0.1:$GW_PORT/x" "gw-eddsa with the access log on, as shipped (RUST_LOG=info, stderr to a file)" \
      -H "Authorization: Bearer $TOKEN"
    log "${p}gw-eddsa-log: $(wc -l < "$WORK/${p}gw-eddsa-log.log") log lines written"
    gw_down
  fi
}
if [ -n "${GW_BEFORE:-}" ]; then
  GW_AFTER=$GW; GW=$GW_BEFORE
  gw_rows before-
  GW=$GW_AFTER
fi
gw_rows ""
if any_gw_row gw-eddsa-assertion; then
  GW_EXTRA_TABLES='[headers]
assertion = "X-Gateway-Assertion"' gw_up gw-eddsa-assertion EdDSA 1 true
  TOKEN=$(token_for "$WORK/gw-eddsa-assertion.toml")
  measure gw-eddsa-assertion "https://127.0.0.1:$GW_PORT/x" "gw-eddsa + a signed identity assertion on every request (reused per identity and route for 60 s)" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
fi
if any_gw_row gw-rs256; then
  gw_up gw-rs256 RS256 1 true
  TOKEN=$(token_for "$WORK/gw-rs256.toml")
  measure gw-rs256 "https://127.0.0.1:$GW_PORT/x" "gateway TLS + RS256 JWT + Redis session (cached)" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
fi
if any_gw_row gw-hs256; then
  gw_up gw-hs256 HS256 1 true
  TOKEN=$(token_for "$WORK/gw-hs256.toml")
  measure gw-hs256 "https://127.0.0.1:$GW_PORT/x" "gateway TLS + HS256 JWT + Redis session (cached)" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
fi
if any_gw_row gw-eddsa-nocache; then
  gw_up gw-eddsa-nocache EdDSA 1 false
  TOKEN=$(token_for "$WORK/gw-eddsa-nocache.toml")
  measure gw-eddsa-nocache "https://127.0.0.1:$GW_PORT/x" "session.cache = false: one HGETALL per request" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
fi
if any_gw_row gw-eddsa-w2-cpu0; then
  gw_up gw-eddsa-w2-cpu0 EdDSA 2 true
  TOKEN=$(token_for "$WORK/gw-eddsa-w2-cpu0.toml")
  measure gw-eddsa-w2-cpu0 "https://127.0.0.1:$GW_PORT/x" "workers = 2, both on CPU $PROXY_CPU" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
fi
if any_gw_row gw-eddsa-w2-cpu01; then
  CUR_CPUS="$PROXY_CPU,$LOAD_CPU"
  gw_up gw-eddsa-w2-cpu01 EdDSA 2 true "$CUR_CPUS"
  TOKEN=$(token_for "$WORK/gw-eddsa-w2-cpu01.toml")
  measure gw-eddsa-w2-cpu01 "https://127.0.0.1:$GW_PORT/x" "workers = 2 on CPUs $PROXY_CPU,$LOAD_CPU (shared with wrk, upstream, Redis)" \
    -H "Authorization: Bearer $TOKEN"
  gw_down
  CUR_CPUS=$PROXY_CPU
fi

# The verified-token cache: the same wrk Lua script with one token (every request a cache
# hit) and with TOKEN_POOL distinct tokens (each sent once; a fresh gateway per run, so every
# request misses until the pool wraps around).
token_cache_rows() { # ALG LABEL
  local alg=$1 label=$2 cfg
  any_gw_row "gw-$label-lua-1token" "gw-$label-lua-distinct" || return 0
  gw_up "gw-$label-tc" "$alg" 1 true
  cfg="$WORK/gw-$label-tc.toml"
  TOKEN=$(token_for "$cfg")
  echo "$TOKEN" > "$WORK/one-$label.txt"
  MEASURE_ARGS=(-s "$WORK/tokens.lua" -- "$WORK/one-$label.txt")
  measure "gw-$label-lua-1token" "https://127.0.0.1:$GW_PORT/x" "token-cache hits: wrk Lua, one token" \
    -H "Authorization: Bearer $TOKEN"
  if [ "$TOKEN_POOL" -gt 0 ] && want "gw-$label-lua-distinct"; then
    log "minting $TOKEN_POOL $alg tokens"
    "$EX/mint_tokens" --config "$cfg" --count "$TOKEN_POOL" --sub bench --sid bench-1 \
      --role user --ttl 1h --out "$WORK/pool-$label.txt"
    MEASURE_ARGS=(-s "$WORK/tokens.lua" -- "$WORK/pool-$label.txt")
    BEFORE_RUN=gw_restart POOL_SIZE=$TOKEN_POOL
    measure "gw-$label-lua-distinct" "https://127.0.0.1:$GW_PORT/x" \
      "token-cache misses: wrk Lua, $TOKEN_POOL distinct tokens, fresh gateway per run" \
      -H "Authorization: Bearer $TOKEN"
    unset BEFORE_RUN POOL_SIZE
  fi
  unset MEASURE_ARGS
  gw_down
}
token_cache_rows EdDSA eddsa
token_cache_rows RS256 rs256

# The table.
BASE=$(cat "$WORK/rps.nginx-tls" 2>/dev/null || echo 0)
BASE_P99=$(cat "$WORK/p99.nginx-tls" 2>/dev/null || echo 0)
echo
echo "| target | req/s | p99 ms | non-2xx | socket errors | req/s vs nginx-tls | p99 vs nginx-tls | Redis cmds/req | requests | what |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for row in "${TABLE[@]}"; do
  IFS='|' read -r name rps p99 non2xx errors per_req requests note <<<"$row"
  awk -v n="$name" -v r="$rps" -v p="$p99" -v x="$non2xx" -v e="$errors" -v c="$per_req" \
    -v q="$requests" -v w="$note" -v b="$BASE" -v bp="$BASE_P99" 'BEGIN {
      ratio = (b > 0) ? sprintf("%.2fx", r / b) : "-"
      pratio = (bp > 0) ? sprintf("%.2fx", p / bp) : "-"
      if (n == "upstream-direct" || n ~ /^haproxy/ || n == "nginx-tls") c = "-"
      printf "| %s | %.0f | %.2f | %d | %d | %s | %s | %s | %d | %s |\n", n, r, p, x, e, ratio, pratio, c, q, w
    }'
done
