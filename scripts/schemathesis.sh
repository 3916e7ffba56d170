#!/usr/bin/env bash
# Checks the running API against its own OpenAPI document with Schemathesis.
#
# Installs Schemathesis in a private venv (target/test-tools/schemathesis),
# builds the careline binary, starts `careline serve --demo` on a free port
# in a fresh data directory, logs in a member, a care guide, a nurse and an
# administrator of the demo organization, writes a red-flag and a routine
# message so real ids exist, and runs Schemathesis once per user. Any 5xx,
# any undocumented status, content type or response shape fails the run.
# Exits non-zero on failure; the server and the data directory are removed.
#
#   scripts/schemathesis.sh
#   ST_MAX_EXAMPLES=100 ST_SEED=7 scripts/schemathesis.sh   # a longer or different run
#   CARELINE_BIN=/path/to/careline scripts/schemathesis.sh  # use an existing binary
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

max_examples="${ST_MAX_EXAMPLES:-25}"
seed="${ST_SEED:-20261207}"

venv="$root/target/test-tools/schemathesis"
if [ ! -x "$venv/bin/st" ]; then
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
if ! command -v curl >/dev/null; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates >/dev/null
fi

if [ -z "${CARELINE_BIN:-}" ]; then
  cargo build -q --locked -p careline
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$root/$target" ;; esac
  CARELINE_BIN="$target/debug/careline"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
CARELINE_LOG=warn "$CARELINE_BIN" serve --demo --listen 127.0.0.1:0 --data-dir "$work/data" \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
base=""
for _ in $(seq 1 300); do
  base="$(sed -nE 's#^careline listening on (http://[0-9.:]+).*#\1#p' "$work/server.out" | head -n1)"
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "schemathesis.sh: careline did not start" >&2; cat "$work/server.err" >&2; exit 1; }
api="$base/api/v1"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
login() {
  curl -sf -X POST "$api/sessions" -H 'content-type: application/json' \
    -d "{\"username\":\"$1@demo.careline\",\"password\":\"${CARELINE_DEMO_PASSWORD:-careline-demo}\"}" |
    json 'd["token"]'
}
# Every session is opened before any run: a run may change settings that
# apply to later logins (such as which roles need a second factor).
users=(member01 guide.north1 nurse.north admin)
declare -A token
for u in "${users[@]}"; do token[$u]="$(login "$u")"; done

# Real ids, so that operations on a ticket, a thread, a member, a page or a
# team reach their rules instead of stopping at 404.
send() {
  curl -sf -X POST "$api/messages" -H "authorization: Bearer ${token[member01]}" \
    -H 'content-type: application/json' -d "{\"text\":\"$1\"}"
}
red="$(send 'crushing chest pain going down my left arm and I am sweating')"
send 'Could you send a refill of my blood pressure pills to my pharmacy?' >/dev/null
export CL_TICKET="$(echo "$red" | json 'd["ticket"]["id"]')"
export CL_THREAD="$(echo "$red" | json 'd["message"]["thread_id"]')"
export CL_MESSAGE="$(echo "$red" | json 'd["message"]["id"]')"
export CL_MEMBER="$(echo "$red" | json 'd["ticket"]["member_id"]')"
export CL_TEAM="$(echo "$red" | json 'd["ticket"]["team_id"]')"
export CL_PAGE="$(echo "$red" | json 'd["page"]["id"]')"
# Ending sessions is tried on a bystander, not on the users of this run.
export CL_BYSTANDER="$(curl -sf "$api/admin/users" -H "authorization: Bearer ${token[admin]}" |
  json '[u["id"] for u in d if u["username"].startswith("guide.north2@")][0]')"

cat >"$work/schemathesis.toml" <<'TOML'
[[operations]]
include-path-regex = "^/api/v1/tickets/\\{id\\}"
parameters = { "path.id" = "${CL_TICKET}" }

[[operations]]
include-path-regex = "^/api/v1/threads/\\{id\\}"
parameters = { "path.id" = "${CL_THREAD}" }

[[operations]]
include-path-regex = "^/api/v1/members/\\{id\\}"
parameters = { "path.id" = "${CL_MEMBER}" }

[[operations]]
include-path-regex = "^/api/v1/teams/\\{id\\}"
parameters = { "path.id" = "${CL_TEAM}" }

[[operations]]
include-path-regex = "^/api/v1/pages/\\{id\\}"
parameters = { "path.id" = "${CL_PAGE}" }

[[operations]]
include-path-regex = "^/api/v1/messages/\\{id\\}"
parameters = { "path.id" = "${CL_MESSAGE}" }

[[operations]]
include-path-regex = "^/api/v1/admin/users/\\{id\\}"
parameters = { "path.id" = "${CL_BYSTANDER}" }
TOML

# Not run: the event stream never ends, and logging out would end the
# session the rest of the run uses (both have their own tests).
# One worker: with two threads, Hypothesis parsing source concurrently hits a
# CPython 3.11 race in AST construction (python/cpython#106905) that fails
# a random operation with "AST constructor recursion depth mismatch".
status=0
cd "$work" # Schemathesis keeps its cache in the working directory.
for u in "${users[@]}"; do
  echo "== schemathesis as $u ($max_examples examples per operation)"
  if ! "$venv/bin/st" --config-file "$work/schemathesis.toml" run "$api/openapi.json" \
    -H "Authorization: Bearer ${token[$u]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" --seed "$seed" --workers 1 \
    --exclude-path /api/v1/events --exclude-path /api/v1/sessions/current \
    --request-timeout 30 --no-color >"$work/st-$u.log" 2>&1; then
    status=1
    cat "$work/st-$u.log"
  else
    grep -E '^ *[0-9]+ generated' "$work/st-$u.log"
  fi
done
if grep -q 'panicked' "$work/server.err"; then
  echo "schemathesis.sh: the server panicked" >&2
  grep -A3 'panicked' "$work/server.err" >&2
  status=1
fi
exit $status
