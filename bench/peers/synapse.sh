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
#   BACKEND=sqlite       sqlite: both on their embedded/default SQLite;
#                        postgres: both on one private PostgreSQL 15 cluster
#                        (bench/lib/pg.sh; durable: fsync and
#                        synchronous_commit on), a database each
#   PG_BIN               PostgreSQL 15 server binaries (BACKEND=postgres)
#
# Needs: python3.11+ with venv and pip, a Rust toolchain, PyPI on the first run
# (the venv bench/.venv-synapse is reused afterwards; a fresh install took
# about 70 s here); for BACKEND=postgres Debian's postgresql-15 and
# psycopg2-binary from PyPI (added to the venv when missing). All load goes
# to 127.0.0.1.
#
# Synapse setup: generated config, client listener only on 127.0.0.1 (no
# federation listener, empty federation whitelist), SQLite (Synapse's default;
# Synapse recommends PostgreSQL in production) or with BACKEND=postgres the
# psycopg2 engine on a database created with encoding UTF8 and the C locale
# (template0), as Synapse's docs ask, presence off, every rc_* rate
# limit raised to 1e6/s, logging at WARNING, registration by shared secret.
# Two users (alice, bob) log in; alice creates a room, bob joins; senders
# alternate between the two users, all into that one room.
# careline: `careline bench ingest` with its own server on a temporary data
# directory and the demo organization (20 members). With BACKEND=postgres:
# `careline migrate` and `careline demo` into its own database in the same
# cluster, one `careline serve` node on it, and `careline bench ingest
# --target` against that node (one database for all levels, as Synapse's).
#
# Besides the configured levels, both systems also run at a fixed rate of half
# Synapse's best measured throughput (a rate Synapse can keep up with), so
# latencies are compared where neither is saturated.
# At a rate a system cannot sustain the two generators differ: Synapse's
# helper stops 5 s after the end and counts what was never sent, while
# `careline bench ingest` sends every due message, so that level runs longer
# (with careline on PostgreSQL at RATE=1000, minutes).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
# shellcheck source=../lib/pg.sh
source "$BENCH/lib/pg.sh"
# shellcheck source=../lib/proc.sh
source "$BENCH/lib/proc.sh"

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
BACKEND="${BACKEND:-sqlite}"
case "$BACKEND" in
    sqlite) BACKEND_NAME=SQLite ;;
    postgres) BACKEND_NAME="PostgreSQL" ;;
    *) echo "BACKEND must be sqlite or postgres, not '$BACKEND'" >&2; exit 2 ;;
esac
unset CARELINE_DATABASE_URL CARELINE_DATA_DIR CARELINE_MASTER_KEY CARELINE_MASTER_KEY_FILE

WORK="$(mktemp -d "${TMPDIR:-/tmp}/synapse-bench.XXXXXX")"
SYN_PID=""
CL_PID=""
cleanup() {
    stop_pids "$SYN_PID" "$CL_PID"
    pg_stop
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
if [[ "$BACKEND" == postgres ]] && ! "$PY" -c 'import psycopg2' 2>/dev/null; then
    say "installing psycopg2-binary into $VENV"
    "$VENV/bin/pip" install -q psycopg2-binary
fi
SYN_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))')"
say "Synapse $SYN_VERSION ($("$PY" --version))"
START_UPTIME="$(uptime)"

# --- 5 (first, so a build failure stops us early). careline release build ---
if [[ -z "${CARELINE_BIN:-}" ]]; then
    say "building careline (release)"
    (cd "$ROOT" && cargo build --release -q -p careline)
fi
[[ -x "$BIN" ]] || { echo "no careline binary at $BIN" >&2; exit 1; }

# --- 2. Synapse config and start ----------------------------------------------
SYN_DB_ARGS=()
if [[ "$BACKEND" == postgres ]]; then
    say "starting a private PostgreSQL cluster"
    pg_start
    pg_createdb synapse --encoding=UTF8 --locale=C --template=template0
    pg_createdb careline
    say "PostgreSQL $(pg_sql synapse 'SHOW server_version') on port $PG_PORT: fsync=$(pg_sql synapse 'SHOW fsync'), synchronous_commit=$(pg_sql synapse 'SHOW synchronous_commit')"
    SYN_DB_ARGS=(--pg-port "$PG_PORT" --pg-database synapse)
fi
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
BASE="http://127.0.0.1:$PORT"
say "generating Synapse config in $WORK (port $PORT)"
(cd "$WORK" && "$PY" -m synapse.app.homeserver --server-name localhost \
    --config-path "$WORK/homeserver.yaml" --data-directory "$WORK" \
    --generate-config --report-stats=no >/dev/null)
"$PY" "$HELPER" configure --config "$WORK/homeserver.yaml" --port "$PORT" --data-dir "$WORK" --secret "$SECRET" "${SYN_DB_ARGS[@]}"

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
# SQLite: the bench starts its own server on a fresh data directory per level.
# PostgreSQL: one `careline serve` node on the careline database, started
# afresh for every level (a node allows 30 logins per client address per
# minute and every level logs in the 20 demo members).
if [[ "$BACKEND" == postgres ]]; then
    CL_URL="$(pg_url careline)"
    CL_DATA="$WORK/careline-data"   # the master key file
    CARELINE_DATABASE_URL="$CL_URL" "$BIN" migrate --data-dir "$CL_DATA" >/dev/null
    CARELINE_DATABASE_URL="$CL_URL" "$BIN" demo --data-dir "$CL_DATA" >/dev/null
fi
# careline_bench OPTIONS...: one JSON line into $WORK/careline.json (not run
# in a subshell, so that the cleanup trap knows the node's pid).
careline_bench() {
    if [[ "$BACKEND" != postgres ]]; then
        "$BIN" bench ingest --size "$SIZE" --json "$@" >"$WORK/careline.json"
        return
    fi
    local addr i
    addr="127.0.0.1:$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    CARELINE_DATABASE_URL="$CL_URL" "$BIN" serve --listen "$addr" --data-dir "$CL_DATA" >>"$WORK/careline.log" 2>&1 &
    CL_PID=$!
    for i in $(seq 100); do
        if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "http://$addr/readyz" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$CL_PID" 2>/dev/null; then
            echo "careline serve exited during startup:" >&2; tail -30 "$WORK/careline.log" >&2 || true; exit 1
        fi
        [[ $i == 100 ]] && { echo "careline serve not ready after 20 s" >&2; exit 1; }
        sleep 0.2
    done
    "$BIN" bench ingest --target "$addr" --size "$SIZE" --json "$@" >"$WORK/careline.json"
    kill "$CL_PID" 2>/dev/null || true
    wait "$CL_PID" 2>/dev/null || true
    CL_PID=""
}
for c in $LEVELS; do
    say "careline c=$c, ${DURATION}s"
    careline_bench --concurrency "$c" --duration "$DURATION"
    r="$(cat "$WORK/careline.json")"; echo "$r" >&2
    record careline "c=$c" "$r"
done
for rate in "$RATE" "$EASY"; do
    say "careline rate=$rate c=$RATE_CONC, $((DURATION * 2))s"
    careline_bench --concurrency "$RATE_CONC" --rate "$rate" --duration $((DURATION * 2))
    r="$(cat "$WORK/careline.json")"; echo "$r" >&2
    record careline "rate=$rate c=$RATE_CONC" "$r"
done
if [[ "$BACKEND" == postgres ]]; then
    say "careline audit verify (PostgreSQL)"
    CARELINE_DATABASE_URL="$CL_URL" "$BIN" audit verify --data-dir "$CL_DATA" >"$WORK/verify.txt" 2>&1 \
        || echo "careline audit verify FAILED:" >&2
    tail -1 "$WORK/verify.txt" >&2
fi

# --- 6. table --------------------------------------------------------------------
echo
echo "careline vs Synapse $SYN_VERSION (both on $BACKEND_NAME), ${SIZE}-byte messages, ${DURATION}s per level (fixed rate ${DURATION}x2 s)"
echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "uptime at start: $START_UPTIME"
echo "uptime at end:   $(uptime)"
"$PY" "$HELPER" table --results "$RESULTS"
