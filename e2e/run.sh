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

# A real clamd for the attachment flow, with a test signature database
# written here (the EICAR test file) rather than downloaded.
if [ -z "${CARELINE_CLAMD:-}" ]; then
  if [ ! -x /usr/sbin/clamd ]; then
    echo "installing clamav-daemon (apt)…"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon clamav >/dev/null
  fi
  clam="$(mktemp -d)"
  eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
  printf '%s:68:Careline-E2E-EICAR\n' "$(printf '%s' "$eicar" | md5sum | cut -d' ' -f1)" > "$clam/test.hdb"
  cat > "$clam/clamd.conf" <<CONF
DatabaseDirectory $clam
LocalSocket $clam/clamd.sock
Foreground yes
StreamMaxLength 30M
SelfCheck 0
LogFile $clam/clamd.log
CONF
  if [ "$(id -u)" -eq 0 ]; then echo "User root" >> "$clam/clamd.conf"; fi
  /usr/sbin/clamd -c "$clam/clamd.conf" &
  clamd_pid=$!
  trap 'kill $clamd_pid 2>/dev/null || true; rm -rf "$clam"' EXIT
  for _ in $(seq 1 100); do [ -S "$clam/clamd.sock" ] && break; sleep 0.1; done
  export CARELINE_CLAMD="unix:$clam/clamd.sock"
fi

cd "$here"
node --test --test-concurrency=1 tests/
