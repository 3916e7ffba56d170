#!/usr/bin/env bash
# Runs careline's whole test suite on a fresh machine: installs what the tests
# need, then formatting, lints and every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

# The crash and shutdown tests signal the real binary with kill(1).
command -v kill >/dev/null || apt_install procps
# The TLS test talks to the server with curl.
command -v curl >/dev/null || apt_install curl ca-certificates
# The attachment tests run a real clamd, with a signature database they write
# themselves (no freshclam download).
[ -x /usr/sbin/clamd ] || apt_install clamav-daemon clamav clamdscan
# ... and an S3-compatible server (moto) for the blob store, in a private venv.
MOTO=target/test-tools/moto
if [ ! -x "$MOTO/bin/moto_server" ]; then
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  python3 -m venv "$MOTO"
  "$MOTO/bin/pip" install -q 'moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5'
fi
# The PostgreSQL backend's tests start a private server from Debian's packages.
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_install postgresql-15
command -v cargo >/dev/null || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== the API integration tests again, on PostgreSQL (and the two-node failover test)"
CARELINE_TEST_BACKEND=postgres cargo test -p careline --test app --locked
echo "== simulation: a month of contact-centre load on a virtual clock"
cargo test -p careline --test app --locked -- --ignored --nocapture simulation
echo "== the running API against its OpenAPI document (Schemathesis, as a member, a guide, a nurse and an admin)"
scripts/schemathesis.sh
echo "== end-to-end: the console and the portal in Chromium"
e2e/run.sh
