#!/usr/bin/env bash
# CPU work per request, the gateway against nginx, without hardware performance counters (this
# machine has none: `perf stat -e instructions` is "not supported"). Two measures in one run:
#
# 1. Instructions per request, counted by valgrind's callgrind: user space only (the kernel's
#    TCP and syscall work is not in it), and repeatable run to run (within ~0.5 % here). Each target
#    runs under `valgrind --tool=callgrind`, one process on CPU $PROXY_CPU (nginx with
#    `master_process off`, so its one process is the worker). bench/fixed_requests.py opens
#    CONNS (8) keep-alive TLS connections (HTTP/1.1, one request in flight on each), sends fixed
#    counts, checks every answer is 200, and between phases has callgrind dump its counters
#    (`callgrind_control --dump`, which also zeroes them):
#      warm-up  WARMUP_REQS (200) requests: start-up, key loading, the handshakes, first fills
#      idle     IDLE (3) seconds, no request: background work (timers, heartbeats) per second
#      n1       N1 (500) requests: a check, should match n2
#      n2       N (2000) requests: the measure
#    Ir per request = Ir of the n2 dump / N = (Ir after warm-up+n1+n2 - Ir after warm-up+n1) / N:
#    start-up, key loading and handshakes are not in it. valgrind runs the server ~20-50x
#    slower, so wall-clock background work (e.g. the gateway's Redis heartbeat) weighs more per
#    request than natively: the "minus background" column takes the idle rate times the n2
#    phase's duration out. Also: Redis commands per request (the session cache keeps gw-eddsa
#    near 0), the top TOP functions of the n2 phase by self cost for the gateway rows with the
#    callers of the first one (bench/callgrind_top.py), and the AES-GCM code that ran.
#    Caveat: valgrind answers CPUID itself (no SHA-NI, AVX-512, VAES, ADX here), so crypto code
#    takes other paths than natively (the sha2 crate's portable SHA-256, for one), and a
#    `rep movsb` counts one instruction per byte-step: Ir is not time.
# 2. CPU time per request natively: wrk -t1 -c$WRK_CONNS for PERF_SECS + 4 s, and
#    `perf stat -e task-clock -p <server pids> -- sleep $PERF_SECS` in its middle (a software
#    counter: it works here); CPU µs/request = task-clock ms * 1000 / (wrk req/s * PERF_SECS),
#    kernel time included, split into user and kernel from /proc/PID/stat.
#
# Targets (names as in bench/run.sh): nginx-tls (nginx 1 worker, plain TLS proxy), gw-public
# (gateway, public route /public/x, no auth), gw-eddsa (gateway TLS + EdDSA JWT + Redis session,
# cached, `Authorization: Bearer` on /x); one worker each. Server on CPU $PROXY_CPU (0); client,
# upstream (nginx `return 200`) and Redis on CPU $LOAD_CPU (1). The gateway binary is copied
# first (src/ may be rebuilt meanwhile). Every process started here is stopped by its PID on
# exit. Takes about 2 minutes after the build.
#
#   bash bench/instructions.sh
#   N=5000 CONNS=1 bash bench/instructions.sh          # more requests, one connection
#   TARGETS="nginx-tls gw-eddsa" NATIVE=0 bash bench/instructions.sh   # callgrind part only
#
# Knobs: N (2000), N1 (500), WARMUP_REQS (200), CONNS (8), IDLE (3 s), TOP (15 functions;
# TOP_NGINX=1 lists them for nginx too, whose binary is stripped), TARGETS, START_TIMEOUT (180 s
# for a server to listen under valgrind), CALLGRIND=0 (skips part 1), NATIVE=0 (skips part 2),
# WRK_CONNS (64), PERF_SECS (8), GW_LOG (the gateway's RUST_LOG, warn as in lib.sh), SKIP_BUILD=1, KEEP_WORK=1 (keeps $WORK: the n2 dumps are
# cg.NAME.n2, e.g. `python3 bench/callgrind_top.py $WORK/cg.gw-eddsa.n2 --per 2000 --callers memcpy`).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

N=${N:-2000}
N1=${N1:-500}
WARMUP_REQS=${WARMUP_REQS:-200}
CONNS=${CONNS:-8}
IDLE=${IDLE:-3}
TOP=${TOP:-15}
TOP_NGINX=${TOP_NGINX:-0}
TARGETS=${TARGETS:-nginx-tls gw-public gw-eddsa}
START_TIMEOUT=${START_TIMEOUT:-180}
NATIVE=${NATIVE:-1}
CALLGRIND=${CALLGRIND:-1}
WRK_CONNS=${WRK_CONNS:-64}
PERF_SECS=${PERF_SECS:-8}

T0=$(date +%s)
install_missing
missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The build may meet another engineer's half-done edit of src/: one retry a minute later, then
# the binary already in target/release (said in the output) rather than nothing.
BUILD_NOTE=""
if ! build; then
  log "build failed; retrying in 60 s"
  sleep 60
  if ! build; then
    [ -x "$GW" ] || { log "build failed and there is no $GW"; exit 1; }
    BUILD_NOTE="BUILD FAILED: measured the existing $GW of $(date -u -r "$GW" +%Y-%m-%dT%H:%MZ)"
    log "$BUILD_NOTE"
  fi
fi
ulimit -n "$(ulimit -Hn)"
# A copy: src/ may be rebuilt while this runs, and every row must measure the same binary.
cp "$GW" "$WORK/gateway"
GW_BUILT=$(date -u -r "$GW" +%Y-%m-%dT%H:%MZ)
GW=$WORK/gateway

want() { [[ " $TARGETS " == *" $1 "* ]]; }

UP=$(free_port); REDIS=$(free_port); PORT=$(free_port)
make_keys
start_redis "$REDIS"
start_upstream "$UP"
# Set here, not left to gateway_config's default: older copies of lib.sh wrote that default
# inside a here-document, where bash 5.2 drops its double quotes (not TOML any more).
SESSION_REDIS="redis_url = \"redis://127.0.0.1:$REDIS/0\""
gateway_config "$WORK/gw.toml" "$PORT" "$UP" "$REDIS" EdDSA 1 true
TOKEN=$("$GW" token --config "$WORK/gw.toml" --sub bench --role user --sid bench-1 --ttl 1h 2>/dev/null)


wait_listen() { # NAME PORT: wait_port with the server's log on failure
  wait_port "$2" "$START_TIMEOUT" || { tail -20 "$WORK/$1.log" >&2; return 1; }
}

# Totals of a callgrind dump (the Ir of that part only: a dump zeroes the counters).
ir_of() { awk '/^totals:/ { print $2; exit }' "$1"; }
# The dump file whose trigger is `dump PHASE`.
dump_file() { # NAME PHASE
  local f
  for f in "$WORK/cg.$1.out".*; do
    grep -q "^desc: Trigger: .*dump $2\$" "$f" && { echo "$f"; return 0; }
  done
  log "no callgrind dump for $1 $2"; return 1
}
phase_field() { # JSONL PHASE KEY
  python3 -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["phase"] == sys.argv[2]: print(o.get(sys.argv[3], "")); break' "$@"
}

CG_TABLE=()
# callgrind_row NAME PORT PATH [curl-style header]
callgrind_row() {
  local name=$1 port=$2 path=$3 header=${4:-} vgpid
  local vg=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$name.out")
  log "$name: starting under callgrind on CPU $PROXY_CPU"
  if [ "$name" = nginx-tls ]; then
    # lib.sh's nginx-tls with `master_process off`: one process, the worker, so that
    # valgrind measures the process that does the work.
    nginx_tls_conf "$WORK/nginx-cg.conf" nginx-cg "$port" "$UP" "master_process off;"
    start "$name" "$PROXY_CPU" "${vg[@]}" nginx -c "$WORK/nginx-cg.conf" -p "$WORK"
  else
    start "$name" "$PROXY_CPU" env RUST_LOG="${GW_LOG:-warn}" "${vg[@]}" "$GW" serve --config "$WORK/gw.toml"
  fi
  vgpid=$(cat "$WORK/$name.pid")
  wait_listen "$name" "$port"
  log "$name: listening after $(( $(date +%s) - START )) s; $WARMUP_REQS + idle ${IDLE}s + $N1 + $N requests on $CONNS connections"
  cat > "$WORK/hook.$name.sh" <<HOOK
#!/usr/bin/env bash
set -euo pipefail
redis-cli -p $REDIS INFO commandstats |
  awk -F'[:=,]' '/^cmdstat_/ && \$1 != "cmdstat_info" { n += \$3 } END { print n + 0 }' \
  > "$WORK/redis.$name.\$1"
callgrind_control --dump="\$1" $vgpid > "$WORK/cgctl.$name.\$1" 2>&1
HOOK
  local hdr=()
  [ -n "$header" ] && hdr=(-H "$header")
  timeout 900 taskset -c "$LOAD_CPU" python3 bench/fixed_requests.py --port "$port" --path "$path" \
    "${hdr[@]}" --conns "$CONNS" --phase "warmup:$WARMUP_REQS" --phase "idle:sleep:$IDLE" \
    --phase "n1:$N1" --phase "n2:$N" --hook "bash $WORK/hook.$name.sh {phase}" \
    > "$WORK/client.$name.jsonl" 2> "$WORK/client.$name.err" \
    || { cat "$WORK/client.$name.err" >&2; return 1; }
  stop "$name"
  local tls f_idle f_n1 f_n2 ir_idle ir_n1 ir_n2 ok bad secs redis_n
  tls=$(grep -m1 '^fixed_requests: TLS' "$WORK/client.$name.err" | cut -d' ' -f2-3)
  f_idle=$(dump_file "$name" idle); f_n1=$(dump_file "$name" n1); f_n2=$(dump_file "$name" n2)
  cp "$f_n2" "$WORK/cg.$name.n2"
  ir_idle=$(ir_of "$f_idle"); ir_n1=$(ir_of "$f_n1"); ir_n2=$(ir_of "$f_n2")
  ok=$(phase_field "$WORK/client.$name.jsonl" n2 ok)
  bad=$(( $(phase_field "$WORK/client.$name.jsonl" n1 non200) + $(phase_field "$WORK/client.$name.jsonl" n2 non200) ))
  bad=$(( bad + $(phase_field "$WORK/client.$name.jsonl" warmup non200) ))
  secs=$(phase_field "$WORK/client.$name.jsonl" n2 seconds)
  redis_n=$(( $(cat "$WORK/redis.$name.n2") - $(cat "$WORK/redis.$name.n1") ))
  echo "$ir_n2" > "$WORK/ir.$name"
  CG_TABLE+=("$name|$ir_n2|$ir_n1|$ir_idle|$secs|$ok|$bad|$redis_n|$tls")
  log "$name: $(( ir_n2 / N )) Ir/request (n1 check: $(( ir_n1 / N1 ))), n2 took ${secs}s, non-200 $bad, TLS $tls"
}

NATIVE_TABLE=()
cpu_ticks() { # PID,PID...: "utime stime" summed over the processes (all their threads), in ticks
  local pid u=0 k=0 f
  for pid in ${1//,/ }; do
    f=$(sed 's/.*) //' "/proc/$pid/stat")
    u=$(( u + $(cut -d' ' -f12 <<<"$f") )); k=$(( k + $(cut -d' ' -f13 <<<"$f") ))
  done
  echo "$u $k"
}
# native_row NAME URL PIDS [wrk args...]
native_row() {
  local name=$1 url=$2 pids=$3; shift 3
  local total=$(( PERF_SECS + 4 )) out rps ms non2xx t0 t1
  log "$name: wrk -t1 -c$WRK_CONNS 2 s warm-up, then ${total}s with perf stat -e task-clock for ${PERF_SECS}s on pids $pids"
  timeout 60 taskset -c "$LOAD_CPU" wrk -t1 -c"$WRK_CONNS" -d2s "$@" "$url" >/dev/null
  taskset -c "$LOAD_CPU" wrk -t1 -c"$WRK_CONNS" -d"${total}s" --latency "$@" "$url" > "$WORK/wrk.$name.txt" &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  sleep 2
  t0=$(cpu_ticks "$pids")
  taskset -c "$LOAD_CPU" perf stat -e task-clock -x, -p "$pids" -o "$WORK/perf.$name.csv" -- sleep "$PERF_SECS"
  t1=$(cpu_ticks "$pids")
  wait "$wrk_pid"
  out=$(cat "$WORK/wrk.$name.txt")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out" | grep . || echo 0)
  ms=$(awk -F, '$3 ~ /task-clock/ { print $1 }' "$WORK/perf.$name.csv")
  # user and kernel shares of the same window, from /proc/PID/stat (CLK_TCK ticks)
  local split
  split=$(awk -v a="$t0" -v b="$t1" 'BEGIN { split(a, x, " "); split(b, y, " ");
    u = y[1] - x[1]; k = y[2] - x[2]; f = (u + k) > 0 ? u / (u + k) : 0; printf "%.3f", f }')
  NATIVE_TABLE+=("$name|$rps|$ms|$non2xx|$split")
  awk -v n="$name" -v r="$rps" -v m="$ms" -v s="$PERF_SECS" -v f="$split" 'BEGIN {
    printf "[bench] %s: %.0f req/s, task-clock %.0f ms in %d s (%.2f CPUs, %.0f%% user), %.2f CPU us/request\n",
      n, r, m, s, m / 1000 / s, 100 * f, m * 1000 / (r * s) }' >&2
}

echo "## CPU work per request, $(date -u +%Y-%m-%dT%H:%MZ)"
versions
echo "- $(valgrind --version), $(perf --version 2>/dev/null | head -1), $(python3 --version), $(openssl version)"
echo "- host CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
  grep -xE 'aes|pclmulqdq|avx|avx2|movbe|sha_ni|avx512f|avx512vl|vaes|vpclmulqdq' | xargs)"
echo "- load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- gateway binary built $GW_BUILT; uncommitted changes under src/ at the start: $(git status --porcelain -- src 2>/dev/null | wc -l) files"
[ -z "$BUILD_NOTE" ] || echo "- $BUILD_NOTE"

if [ "$CALLGRIND" = 1 ]; then
  for t in nginx-tls gw-public gw-eddsa; do
    want "$t" || continue
    START=$(date +%s)
    case $t in
      nginx-tls) callgrind_row nginx-tls "$(free_port)" / ;;
      gw-public) callgrind_row gw-public "$PORT" /public/x ;;
      gw-eddsa) callgrind_row gw-eddsa "$PORT" /x "Authorization: Bearer $TOKEN" ;;
    esac
  done

  echo
  echo "### Instructions per request (callgrind, user space)"
  echo
  echo "Warm-up $WARMUP_REQS requests, idle ${IDLE}s, n1 $N1, n2 $N requests on $CONNS keep-alive TLS" \
    "connections (HTTP/1.1, one request in flight each); server under valgrind on CPU $PROXY_CPU."
  echo
  BASE=$(cat "$WORK/ir.nginx-tls" 2>/dev/null || echo 0)
  echo "| target | instructions per request (Ir, user space) | vs nginx-tls | requests measured | non-200 | n1 check (Ir/req) | idle Ir/s (background) | Ir/req minus background | Redis cmds/req | TLS |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for row in "${CG_TABLE[@]}"; do
    IFS='|' read -r name ir2 ir1 iridle secs ok bad redis_n tls <<<"$row"
    awk -v name="$name" -v ir2="$ir2" -v ir1="$ir1" -v iridle="$iridle" -v secs="$secs" -v ok="$ok" \
      -v bad="$bad" -v rn="$redis_n" -v tls="$tls" -v n="$N" -v n1="$N1" -v idle="$IDLE" -v base="$BASE" 'BEGIN {
        per = ir2 / n; bg = iridle / idle
        ratio = base > 0 ? sprintf("%.2fx", ir2 / base) : "-"
        redis = name ~ /^gw-/ ? sprintf("%.3f", rn / n) : "-"
        printf "| %s | %.0f | %s | %d | %d | %.0f | %.0f | %.0f | %s | %s |\n",
          name, per, ratio, n, bad, ir1 / n1, bg, (ir2 - bg * secs) / n, redis, tls
      }'
  done
  echo
  echo "(non-200 counts every phase; the n2 phase took, under valgrind: $(for row in "${CG_TABLE[@]}"; do
  IFS='|' read -r name _ _ _ secs _ <<<"$row"; printf '%s %ss, ' "$name" "$secs"; done | sed 's/, $//'))"

  # The hottest functions of the n2 phase, self cost (bench/callgrind_top.py reads the dump
  # itself: valgrind 3.19's callgrind_annotate --inclusive=no counts the calls still on the
  # stack at a mid-run dump, main's included, as self cost).
  for row in "${CG_TABLE[@]}"; do
    name=${row%%|*}
    [[ $name == gw-* ]] || [ "$TOP_NGINX" = 1 ] || continue
    echo
    echo "### $name: top $TOP functions by Ir, n2 phase ($N requests), self cost"
    echo
    echo '```'
    python3 bench/callgrind_top.py "$WORK/cg.$name.n2" --per "$N" --top "$TOP"
    echo
    echo "callers of the first one (inclusive cost of their calls to it):"
    python3 bench/callgrind_top.py "$WORK/cg.$name.n2" --per "$N" --top 5 --callers-of-top
    echo '```'
  done

  echo
  echo "### AES-GCM / GHASH code that ran in the n2 phase, under valgrind"
  echo
  echo "(valgrind 3.19 answers CPUID itself: a GenuineIntel CPU with AES-NI, PCLMULQDQ, AVX, AVX2, MOVBE"
  echo "and BMI2 but no SHA-NI, ADX, AVX-512, VAES or VPCLMULQDQ, whatever the host has; so OpenSSL and"
  echo "aws-lc pick their AES-NI + AVX code here, and the sha2 crate its portable SHA-256)"
  echo
  for row in "${CG_TABLE[@]}"; do
    name=${row%%|*}
    echo "- $name:"
    python3 bench/callgrind_top.py "$WORK/cg.$name.n2" --per "$N" --crypto --top 12 | sed 's/^  /    - /'
  done
fi

if [ "$NATIVE" = 1 ]; then
  NGX=$(free_port)
  if want nginx-tls; then
    start_nginx_tls "$NGX" "$UP"
    native_row nginx-tls "https://127.0.0.1:$NGX/" "$(pids_of nginx-tls | paste -sd,)"
    stop nginx-tls
  fi
  if want gw-public || want gw-eddsa; then
    start_gateway gw "$WORK/gw.toml" "$PORT"
    want gw-public && native_row gw-public "https://127.0.0.1:$PORT/public/x" "$(cat "$WORK/gw.pid")"
    want gw-eddsa && native_row gw-eddsa "https://127.0.0.1:$PORT/x" "$(cat "$WORK/gw.pid")" \
      -H "Authorization: Bearer $TOKEN"
    stop gw
  fi
  echo
  echo "### CPU time per request, natively (perf stat -e task-clock, user + kernel)"
  echo
  echo "wrk -t1 -c$WRK_CONNS on CPU $LOAD_CPU, server on CPU $PROXY_CPU; task-clock of the server's" \
    "process(es) (nginx: master + worker) over ${PERF_SECS}s in the middle of a $(( PERF_SECS + 4 ))s run;" \
    "requests in the window = wrk's req/s x ${PERF_SECS}s."
  echo
  BASE_US=""
  echo "| target | req/s | CPU µs/request | vs nginx | user µs/req | kernel µs/req | CPUs busy | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${NATIVE_TABLE[@]}"; do
    IFS='|' read -r name rps ms non2xx split <<<"$row"
    us=$(awk -v r="$rps" -v m="$ms" -v s="$PERF_SECS" 'BEGIN { printf "%.2f", m * 1000 / (r * s) }')
    [ "$name" = nginx-tls ] && BASE_US=$us
    awk -v n="$name" -v r="$rps" -v us="$us" -v b="${BASE_US:-0}" -v m="$ms" -v s="$PERF_SECS" -v x="$non2xx" \
      -v f="$split" 'BEGIN {
      ratio = b > 0 ? sprintf("%.2fx", us / b) : "-"
      printf "| %s | %.0f | %.2f | %s | %.2f | %.2f | %.2f | %d |\n", n, r, us, ratio, us * f, us * (1 - f), m / 1000 / s, x }'
  done
  echo
  echo "(user/kernel split: utime/stime of /proc/PID/stat over the same window, $(getconf CLK_TCK) Hz ticks)"
  for row in "${NATIVE_TABLE[@]}"; do
    IFS='|' read -r name _ ms _ <<<"$row"
    if awk -v m="$ms" -v s="$PERF_SECS" 'BEGIN { exit !(m / 1000 / s < 0.9) }'; then
      echo "WARNING: $name kept its CPU busy only $(awk -v m="$ms" -v s="$PERF_SECS" 'BEGIN { printf "%.2f", m / 1000 / s }') of the time:" \
        "something else competes for CPU $PROXY_CPU or $LOAD_CPU (load average: $(cut -d' ' -f1-3 /proc/loadavg)); these figures are not clean"
    fi
  done
fi
echo
echo "(whole run: $(( $(date +%s) - T0 )) s)"
