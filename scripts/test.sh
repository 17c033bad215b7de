#!/usr/bin/env bash
# The project's one test command (README "Tests"; .ci/run calls it too): installs what a fresh
# machine lacks (redis-server, which the integration tests start on free ports of their own, and
# openssl, which reads the keys keygen writes),
# then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# tests/cli.rs reads the keys `gateway keygen` writes with the openssl binary.
if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets 2>&1
