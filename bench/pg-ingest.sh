#!/usr/bin/env bash
# Message ingest on PostgreSQL: one and two `careline serve` nodes sharing one
# database, against the embedded SQLite store in the same minutes.
#
# Usage (from anywhere; paths are relative to this script):
#   bench/pg-ingest.sh
# Environment:
#   DURATION=10       seconds per run
#   CONC=64           requests in flight in total (two nodes: CONC/2 each)
#   SIZE=200          message size in bytes
#   TWO_ORGS=1        also run two nodes each driving its own organization
#                     (0 skips it; the second organization is seeded with
#                     `careline admin`, which takes a few seconds)
#   INPROC=1          also run `careline bench ingest` with its own in-process
#                     SQLite server (the "one process" figure of RESULTS.md)
#   CARELINE_BIN      careline binary to measure; unset, a release build of
#                     this checkout is made (honouring CARGO_TARGET_DIR)
#   PG_BIN            PostgreSQL 15 server binaries (default: Debian's)
#
# Needs: Debian's postgresql-15 (apt-get install -y postgresql-15), python3, curl.
# Everything runs on 127.0.0.1 in temporary directories removed on exit.
#
# Setup: a private PostgreSQL 15 cluster (bench/lib/pg.sh: fsync,
# synchronous_commit and full_page_writes on, i.e. durable commits), one
# database; `careline migrate` and `careline demo` seed the demo organization
# into it. Every node is a separate `careline serve` process with
# CARELINE_DATABASE_URL set and the same --data-dir (where the master key
# file lives, so all nodes encrypt with the same key). The load generator is
# `careline bench ingest --target HOST:PORT` in its own process: 20 demo
# members log in, then post ~SIZE-byte messages over keep-alive connections
# as fast as they are acknowledged (each acknowledged only once durable).
# With two nodes, one generator per node runs at the same time with half the
# concurrency each; the table sums their throughputs and shows both nodes'
# latency percentiles. The SQLite rows run the same way (`careline serve` on a
# fresh data directory with the demo organization) just before the
# PostgreSQL ones. Every row gets fresh nodes (a node allows 30 logins per
# client address per minute). Afterwards `careline audit verify` recomputes
# every hash chain in the PostgreSQL database.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib/pg.sh
source "$HERE/lib/pg.sh"
# shellcheck source=lib/proc.sh
source "$HERE/lib/proc.sh"

DURATION="${DURATION:-10}"
CONC="${CONC:-64}"
SIZE="${SIZE:-200}"
TWO_ORGS="${TWO_ORGS:-1}"
INPROC="${INPROC:-1}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${CARELINE_BIN:-$TARGET_DIR/release/careline}"
HALF=$(( CONC / 2 > 0 ? CONC / 2 : 1 ))
ORG_B="Bench Clinic B"
DOMAIN_B="b.bench.careline"
PASSWORD="${CARELINE_DEMO_PASSWORD:-careline-demo}"
unset CARELINE_DATABASE_URL CARELINE_DATA_DIR CARELINE_MASTER_KEY CARELINE_MASTER_KEY_FILE

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pg-ingest.XXXXXX")"
PIDS=()
cleanup() {
    stop_pids "${PIDS[@]}"
    pg_stop
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [[ -z "${CARELINE_BIN:-}" ]]; then
    say "building careline (release)"
    (cd "$ROOT" && cargo build --release -q -p careline)
fi
[[ -x "$BIN" ]] || { echo "no careline binary at $BIN" >&2; exit 1; }

# start_node NAME DATA_DIR [DATABASE_URL]: a `careline serve` in the
# background; sets NODE (host:port) and NODE_PID.
start_node() {
    local name="$1" dir="$2" url="${3:-}" port i
    port="$(_pg_free_port)"
    NODE="127.0.0.1:$port"
    env ${url:+"CARELINE_DATABASE_URL=$url"} "$BIN" serve --listen "$NODE" --data-dir "$dir" \
        >"$WORK/$name.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for i in $(seq 100); do
        if curl -fs -o /dev/null "http://$NODE/readyz"; then
            return 0
        fi
        if ! kill -0 "$NODE_PID" 2>/dev/null; then
            echo "careline serve ($name) exited during startup:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
        fi
        [[ $i == 100 ]] && { echo "careline serve ($name) not ready after 20 s" >&2; exit 1; }
        sleep 0.2
    done
}

stop_node() {
    local pid keep=()
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do [[ "$pid" == "$1" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

# ingest OUT ADDR CONCURRENCY [bench options...]: one JSON line into OUT.
ingest() {
    local out="$1" addr="$2" c="$3"
    shift 3
    "$BIN" bench ingest --target "$addr" --concurrency "$c" --duration "$DURATION" \
        --size "$SIZE" --json "$@" >"$out"
}

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# record SETUP FILE...: one results line per setup, with one report per node.
record() {
    local setup="$1" load
    shift
    load="$(loadavg)"
    python3 - "$setup" "$load" "$@" >>"$RESULTS" <<'PY'
import json, sys
setup, load, files = sys.argv[1], sys.argv[2], sys.argv[3:]
nodes = [json.loads(open(f).read()) for f in files]
for n in nodes:
    print(f"  {n['msgs_per_sec']:.0f} msgs/s, p50 {n['p50_ms']:.2f} ms, p99 {n['p99_ms']:.2f} ms, errors {n['errors']}", file=sys.stderr)
print(json.dumps({"setup": setup, "load": load, "nodes": nodes}))
PY
}

say "careline $("$BIN" --version | awk '{print $2}') ($BIN); load average $(loadavg)"
START_UPTIME="$(uptime)"

# --- PostgreSQL cluster and databases ---------------------------------------
say "starting a private PostgreSQL cluster"
pg_start
pg_createdb careline
URL="$(pg_url careline)"
say "PostgreSQL $(pg_sql careline 'SHOW server_version') on port $PG_PORT: fsync=$(pg_sql careline 'SHOW fsync'), synchronous_commit=$(pg_sql careline 'SHOW synchronous_commit')"
PG_DATA_DIR="$WORK/pg-nodes"   # shared by every PostgreSQL node: the master key file
CARELINE_DATABASE_URL="$URL" "$BIN" migrate --data-dir "$PG_DATA_DIR" >&2
CARELINE_DATABASE_URL="$URL" "$BIN" demo --data-dir "$PG_DATA_DIR" >"$WORK/demo.txt"
head -1 "$WORK/demo.txt" >&2

if [[ "$TWO_ORGS" == 1 ]]; then
    say "seeding a second organization ($ORG_B, members member01…member20@$DOMAIN_B)"
    adm() {
        CARELINE_DATABASE_URL="$URL" CARELINE_NEW_PASSWORD="$PASSWORD" "$BIN" admin "$@" \
            --data-dir "$PG_DATA_DIR" >>"$WORK/admin.log" 2>&1 \
            || { echo "careline admin $1 failed:" >&2; tail -5 "$WORK/admin.log" >&2; exit 1; }
    }
    adm org-create "$ORG_B"
    for team in North South; do adm team-create --org "$ORG_B" "$team"; done
    adm staff-create --org "$ORG_B" --username "nurse.north@$DOMAIN_B" --name "Nurse North" --role nurse --team North
    adm staff-create --org "$ORG_B" --username "nurse.south@$DOMAIN_B" --name "Nurse South" --role nurse --team South
    adm staff-create --org "$ORG_B" --username "doctor@$DOMAIN_B" --name "Doctor" --role physician --team North --team South
    adm staff-create --org "$ORG_B" --username "supervisor@$DOMAIN_B" --name "Supervisor" --role supervisor --team North --team South
    for team in North South; do
        if [[ $team == North ]]; then p=north b=south; else p=south b=north; fi
        adm rota-set --org "$ORG_B" --team "$team" --primary "nurse.$p@$DOMAIN_B" --backup "nurse.$b@$DOMAIN_B" \
            --physician "doctor@$DOMAIN_B" --supervisor "supervisor@$DOMAIN_B"
    done
    {
        echo "name,team,language,username,password"
        for n in $(seq 1 20); do
            team=North; (( n > 10 )) && team=South
            printf 'Bench Member %02d,%s,en,member%02d@%s,%s\n' "$n" "$team" "$n" "$DOMAIN_B" "$PASSWORD"
        done
    } >"$WORK/members-b.csv"
    adm import-members --org "$ORG_B" "$WORK/members-b.csv"
fi

# --- SQLite, in the same minutes ------------------------------------------------
if [[ "$INPROC" == 1 ]]; then
    say "SQLite, bench's own in-process server, c=$CONC, ${DURATION}s"
    "$BIN" bench ingest --concurrency "$CONC" --duration "$DURATION" --size "$SIZE" --json >"$WORK/inproc.json"
    record "SQLite, in-process server, c=$CONC" "$WORK/inproc.json"
fi

say "SQLite, one serve node, c=$CONC, ${DURATION}s"
"$BIN" demo --data-dir "$WORK/sqlite" >/dev/null
start_node sqlite "$WORK/sqlite"
SQ_PID=$NODE_PID
ingest "$WORK/sqlite.json" "$NODE" "$CONC"
record "SQLite, one node, c=$CONC" "$WORK/sqlite.json"
stop_node "$SQ_PID"

# --- PostgreSQL ---------------------------------------------------------------------
# Fresh nodes for every setup: a node allows 30 logins per client address per
# minute, and each generator logs in its 20 members.
say "PostgreSQL, one node, c=$CONC, ${DURATION}s"
start_node pg-a "$PG_DATA_DIR" "$URL"; A=$NODE A_PID=$NODE_PID
ingest "$WORK/pg1.json" "$A" "$CONC"
record "PostgreSQL, one node, c=$CONC" "$WORK/pg1.json"
stop_node "$A_PID"

# two_nodes NAME SETUP [bench options for node B...]
two_nodes() {
    local name="$1" setup="$2" la lb
    shift 2
    start_node "$name-a" "$PG_DATA_DIR" "$URL"; A=$NODE A_PID=$NODE_PID
    start_node "$name-b" "$PG_DATA_DIR" "$URL"; B=$NODE B_PID=$NODE_PID
    ingest "$WORK/$name-a.json" "$A" "$HALF" & la=$!
    ingest "$WORK/$name-b.json" "$B" "$HALF" "$@" & lb=$!
    wait "$la"
    wait "$lb"
    record "$setup" "$WORK/$name-a.json" "$WORK/$name-b.json"
    stop_node "$A_PID"
    stop_node "$B_PID"
}

say "PostgreSQL, two nodes, c=$HALF each, one organization, ${DURATION}s"
two_nodes pg2 "PostgreSQL, two nodes, c=$HALF each, one org"

if [[ "$TWO_ORGS" == 1 ]]; then
    say "PostgreSQL, two nodes, c=$HALF each, one organization per node, ${DURATION}s"
    two_nodes pg2o "PostgreSQL, two nodes, c=$HALF each, an org each" --member-domain "$DOMAIN_B"
fi
END_UPTIME="$(uptime)"
NODE_ERRORS="$(cat "$WORK"/sqlite.log "$WORK"/pg*.log | grep -c 'ERROR' || true)"
if [[ "$NODE_ERRORS" != 0 ]]; then
    say "the nodes logged $NODE_ERRORS error line(s); the first ones:"
    cat "$WORK"/sqlite.log "$WORK"/pg*.log | grep 'ERROR' | head -5 >&2
fi

# --- chains ---------------------------------------------------------------------------
say "careline audit verify (PostgreSQL)"
VERIFY_OK=1
CARELINE_DATABASE_URL="$URL" "$BIN" audit verify --data-dir "$PG_DATA_DIR" >"$WORK/verify.txt" 2>&1 || VERIFY_OK=0
cat "$WORK/verify.txt"

# --- table -------------------------------------------------------------------------------
echo
echo "careline ingest, SQLite vs PostgreSQL 15 (durable), ${SIZE}-byte messages, ${DURATION}s per run"
echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "uptime at start: $START_UPTIME"
echo "uptime at end:   $END_UPTIME"
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def total(r):
    return sum(n["msgs_per_sec"] for n in r["nodes"])

def span(r, key):
    v = sorted(n[key] for n in r["nodes"])
    return f"{v[0]:.1f}" if len(v) == 1 else f"{v[0]:.1f}–{v[-1]:.1f}"

sqlite = next((total(r) for r in rows if r["setup"].startswith("SQLite, one node")), 0)
pg1 = next((total(r) for r in rows if r["setup"].startswith("PostgreSQL, one node")), 0)
hdr = f"| {'setup':<46} | {'msgs/s':>20} | {'p50 ms':>11} | {'p99 ms':>13} | {'errors':>6} | {'÷ SQLite node':>13} | {'÷ PG one node':>13} | {'load avg':>14} |"
print(hdr)
print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
for r in rows:
    t = total(r)
    per = " + ".join(f"{n['msgs_per_sec']:.0f}" for n in r["nodes"])
    mps = f"{t:,.0f}" if len(r["nodes"]) == 1 else f"{per} = {t:,.0f}"
    errors = sum(n["errors"] for n in r["nodes"])
    rs = f"{t / sqlite:.2f}" if sqlite else "-"
    rp = f"{t / pg1:.2f}" if pg1 else "-"
    print(f"| {r['setup']:<46} | {mps:>20} | {span(r, 'p50_ms'):>11} | {span(r, 'p99_ms'):>13} | {errors:>6} | {rs:>13} | {rp:>13} | {r['load']:>14} |")
print("msgs/s: acknowledged messages per second (two nodes: node A + node B); p50/p99: both nodes' values.")
print("÷ columns: total msgs/s over the SQLite serve node's and over PostgreSQL one node's; load avg after each run.")
PY
echo
echo "audit verify on PostgreSQL: $(tail -1 "$WORK/verify.txt")"
echo "error lines in the nodes' logs: $NODE_ERRORS"
[[ "$VERIFY_OK" == 1 ]] || { echo "the PostgreSQL event record does not verify" >&2; exit 1; }
