#!/usr/bin/env bash
# Fuzzes the gateway's parsers (README "Fuzzing"; the targets are fuzz/fuzz_targets/*.rs):
# builds fuzz/ with nightly cargo-fuzz, then runs each target in turn, nice'd, and prints the
# inputs each one ran. Exits non-zero when a target crashes (the input is in
# fuzz/artifacts/<target>/) or cannot run. Not part of scripts/test.sh or CI's long runs.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default: 60 s, every wired target
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0 path_normalise  a count of inputs instead of a time
#
# New inputs that reach new code go to fuzz/work/<target>/ (not committed); the committed
# seeds in fuzz/corpus/<target>/ are only read. Logs: fuzz/work/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
# fuzz/ is its own workspace, built by nightly with sanitizer flags: never share the gateway's
# target directory.
unset CARGO_TARGET_DIR

SECONDS_PER_TARGET="${1:-60}"
[ $# -gt 0 ] && shift
TARGETS=(path_normalise bearer_extract jwt_decode config_load host_parse proxy_header)
[ $# -gt 0 ] && TARGETS=("$@")

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked --version 0.13.2)" >&2
  exit 2
fi

# No sanitizer: the gateway forbids unsafe code and allocates through mimalloc, which ASan does
# not see; panics (with debug assertions and overflow checks on) are what a crash means here.
BUILD_FLAGS=(--sanitizer none --debug-assertions)
nice -n 10 cargo +nightly fuzz build "${BUILD_FLAGS[@]}"

if [ -n "${FUZZ_RUNS:-}" ]; then
  LIMIT=(-runs="$FUZZ_RUNS")
else
  LIMIT=(-max_total_time="$SECONDS_PER_TARGET")
fi

failed=0
summary=()
mkdir -p work
for t in "${TARGETS[@]}"; do
  mkdir -p "work/$t" "corpus/$t"
  dict=()
  [ -f "dictionaries/$t.dict" ] && dict=(-dict="dictionaries/$t.dict")
  log="work/$t.log"
  echo "== $t (${LIMIT[*]}) log: fuzz/$log"
  rc=0
  nice -n 10 cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$t" "work/$t" "corpus/$t" -- \
    "${LIMIT[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "   CRASH or error (exit $rc):"
    { grep -m 1 -A 6 -E 'panicked at|ERROR: libFuzzer|==ERROR' "$log" || tail -n 15 "$log"; } |
      sed 's/^/   | /'
    ls -1 "artifacts/$t" 2>/dev/null | sed 's/^/   artifact: fuzz\/artifacts\/'"$t"'\//' || true
    summary+=("$t: FAILED after ${execs:-?} inputs")
  else
    summary+=("$t: ${execs:-?} inputs in ${secs:-?} s, no crash")
  fi
  echo "   ${summary[-1]}"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
