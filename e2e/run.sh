#!/usr/bin/env bash
# End-to-end tests of the staff console and member portal in a real browser.
#
# Installs what is missing (Debian's chromium, playwright-core from the
# committed lock file), builds the careline binary, and runs the node:test
# suite, which starts careline with the demo organization on a free port in
# a fresh data directory and stops it at the end. Exits non-zero on failure.
#
#   e2e/run.sh                  # debug build (default: shares the test build's artifacts)
#   E2E_PROFILE=release e2e/run.sh
#   CARELINE_BIN=/path/to/careline e2e/run.sh   # use an existing binary
#
# Screenshots land in e2e/artifacts/ (git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt)…"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"

if ! command -v node >/dev/null 2>&1; then
  echo "node is required (Node 20 or newer)" >&2
  exit 1
fi

if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "installing playwright-core (npm ci)…"
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

if [ -z "${CARELINE_BIN:-}" ]; then
  profile="${E2E_PROFILE:-debug}"
  target="${CARGO_TARGET_DIR:-$root/target}"
  if [ "$profile" = "release" ]; then
    (cd "$root" && cargo build --release -p careline)
  else
    (cd "$root" && cargo build -p careline)
  fi
  export CARELINE_BIN="$target/$profile/careline"
fi

cd "$here"
node --test --test-concurrency=1 tests/
