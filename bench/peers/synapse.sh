#!/usr/bin/env bash
# Message ingest: careline against Synapse (the Matrix reference homeserver),
# same message size (~200 bytes), same concurrency levels, same duration.
#
# Usage (from anywhere; paths are relative to this script):
#   bench/peers/synapse.sh
# Environment:
#   DURATION=10          seconds per level (the fixed-rate levels run 2x)
#   LEVELS="1 16 64"     fixed-concurrency levels
#   RATE=1000            fixed-rate level (careline's p99 latency target), at RATE_CONC
#   RATE_CONC=64         concurrency for the fixed-rate levels
#   SIZE=200             message size in bytes
#   PYTHON=python3       interpreter used to create the venv (3.11+)
#   SYNAPSE_SPEC         pip requirement for Synapse (default: matrix-synapse)
#   CARGO_TARGET_DIR     honoured if set; default: the workspace target/
#   CARELINE_BIN         use this careline binary instead of building one
#
# Needs: python3.11+ with venv and pip, a Rust toolchain, PyPI on the first run
# (the venv bench/.venv-synapse is reused afterwards; a fresh install took
# about 70 s here). All load goes to 127.0.0.1.
#
# Synapse setup: generated config, client listener only on 127.0.0.1 (no
# federation listener, empty federation whitelist), SQLite (Synapse's default;
# Synapse recommends PostgreSQL in production), presence off, every rc_* rate
# limit raised to 1e6/s, logging at WARNING, registration by shared secret.
# Two users (alice, bob) log in; alice creates a room, bob joins; senders
# alternate between the two users, all into that one room.
# careline: `careline bench ingest` with its own server on a temporary data
# directory and the demo organization (20 members).
#
# Besides the configured levels, both systems also run at a fixed rate of half
# Synapse's best measured throughput (a rate Synapse can keep up with), so
# latencies are compared where neither is saturated.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"

DURATION="${DURATION:-10}"
LEVELS="${LEVELS:-1 16 64}"
RATE="${RATE:-1000}"
RATE_CONC="${RATE_CONC:-64}"
SIZE="${SIZE:-200}"
PYTHON="${PYTHON:-python3}"
SYNAPSE_SPEC="${SYNAPSE_SPEC:-matrix-synapse}"
VENV="$BENCH/.venv-synapse"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${CARELINE_BIN:-$TARGET_DIR/release/careline}"
HELPER="$HERE/synapse_load.py"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/synapse-bench.XXXXXX")"
SYN_PID=""
cleanup() {
    if [[ -n "$SYN_PID" ]] && kill -0 "$SYN_PID" 2>/dev/null; then
        kill "$SYN_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SYN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SYN_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s; }

# --- 1. venv + Synapse ------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV and installing $SYNAPSE_SPEC (first run only)"
    t0=$(now)
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "$SYNAPSE_SPEC" aiohttp pyyaml
    say "pip install took $(( $(now) - t0 )) s"
fi
PY="$VENV/bin/python"
SYN_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))')"
say "Synapse $SYN_VERSION ($("$PY" --version))"

# --- 5 (first, so a build failure stops us early). careline release build ---
if [[ -z "${CARELINE_BIN:-}" ]]; then
    say "building careline (release)"
    (cd "$ROOT" && cargo build --release -q -p careline)
fi
[[ -x "$BIN" ]] || { echo "no careline binary at $BIN" >&2; exit 1; }

# --- 2. Synapse config and start ----------------------------------------------
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
BASE="http://127.0.0.1:$PORT"
say "generating Synapse config in $WORK (port $PORT)"
(cd "$WORK" && "$PY" -m synapse.app.homeserver --server-name localhost \
    --config-path "$WORK/homeserver.yaml" --data-directory "$WORK" \
    --generate-config --report-stats=no >/dev/null)
"$PY" "$HELPER" configure --config "$WORK/homeserver.yaml" --port "$PORT" --data-dir "$WORK" --secret "$SECRET"

say "starting Synapse"
(cd "$WORK" && exec "$PY" -m synapse.app.homeserver --config-path "$WORK/homeserver.yaml" >"$WORK/stdout.log" 2>&1) &
SYN_PID=$!
for i in $(seq 120); do
    if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/_matrix/client/versions", timeout=1)' "$BASE" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SYN_PID" 2>/dev/null; then
        echo "Synapse exited during startup:" >&2; tail -30 "$WORK/stdout.log" "$WORK"/*.log >&2 || true; exit 1
    fi
    [[ $i == 120 ]] && { echo "Synapse not ready after 60 s" >&2; exit 1; }
    sleep 0.5
done
say "Synapse ready at $BASE"

# --- 3. users and room --------------------------------------------------------
"$PY" "$HELPER" setup --base "$BASE" --secret "$SECRET" >"$WORK/setup.json"

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
record() { # system level json
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[3]); d["system"]=sys.argv[1]; d["level"]=sys.argv[2]; print(json.dumps(d))' "$1" "$2" "$3" >>"$RESULTS"
}

# --- 4. Synapse load -------------------------------------------------------------
syn() { "$PY" "$HELPER" load --base "$BASE" --setup "$WORK/setup.json" --size "$SIZE" "$@"; }
say "Synapse warm-up (3 s)"
syn --concurrency 4 --duration 3 >/dev/null
BEST=0
for c in $LEVELS; do
    say "Synapse c=$c, ${DURATION}s"
    r="$(syn --concurrency "$c" --duration "$DURATION")"; echo "$r" >&2
    record synapse "c=$c" "$r"
    BEST="$("$PY" -c 'import json,sys; print(max(float(sys.argv[1]), json.loads(sys.argv[2])["msgs_per_sec"]))' "$BEST" "$r")"
done
EASY="$("$PY" -c 'import sys; print(max(1, int(float(sys.argv[1]) / 2)))' "$BEST")"
for rate in "$RATE" "$EASY"; do
    say "Synapse rate=$rate c=$RATE_CONC, $((DURATION * 2))s"
    r="$(syn --concurrency "$RATE_CONC" --rate "$rate" --duration $((DURATION * 2)))"; echo "$r" >&2
    record synapse "rate=$rate c=$RATE_CONC" "$r"
done

# --- 7 (early: free the cores). Stop Synapse ---------------------------------
kill "$SYN_PID" 2>/dev/null || true
wait "$SYN_PID" 2>/dev/null || true
SYN_PID=""

# --- 5. careline load ------------------------------------------------------------
for c in $LEVELS; do
    say "careline c=$c, ${DURATION}s"
    r="$("$BIN" bench ingest --concurrency "$c" --duration "$DURATION" --size "$SIZE" --json)"; echo "$r" >&2
    record careline "c=$c" "$r"
done
for rate in "$RATE" "$EASY"; do
    say "careline rate=$rate c=$RATE_CONC, $((DURATION * 2))s"
    r="$("$BIN" bench ingest --concurrency "$RATE_CONC" --rate "$rate" --duration $((DURATION * 2)) --size "$SIZE" --json)"; echo "$r" >&2
    record careline "rate=$rate c=$RATE_CONC" "$r"
done

# --- 6. table --------------------------------------------------------------------
echo
echo "careline vs Synapse $SYN_VERSION (SQLite), ${SIZE}-byte messages, ${DURATION}s per level (fixed rate ${DURATION}x2 s)"
echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
"$PY" "$HELPER" table --results "$RESULTS"
