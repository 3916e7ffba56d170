# A private, throw-away PostgreSQL 15 cluster for the benchmark scripts.
# Source it (bash), then:
#   pg_start            initdb in a new temporary directory and start the server
#                       on a free 127.0.0.1 port; sets PG_PORT, PG_DIR
#   pg_createdb NAME [createdb options...]
#   pg_url NAME         print postgres://postgres@127.0.0.1:PORT/NAME
#   pg_sql NAME SQL     run SQL in database NAME, print unaligned tuples
#   pg_stop             stop the server and remove its directory (idempotent;
#                       call it from the caller's EXIT trap)
#
# The cluster is durable on purpose (fsync, synchronous_commit and
# full_page_writes at their defaults, i.e. on): the figures are meant to be
# those of a real deployment on this disk, not of a RAM-only database.
# Authentication is "trust" and the server listens on 127.0.0.1 only.
#
# Needs Debian's postgresql-15 (apt-get install -y postgresql-15); PG_BIN
# names another directory of server binaries. initdb refuses to run as root,
# so as root every server command runs as the postgres user (runuser) in a
# directory handed over to it.
#
# Settings (environment): PG_BIN, PG_MAX_CONNECTIONS (default 200),
# PG_EXTRA_OPTS (more "-c name=value" server options).

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR=""
PG_PORT=""

# Run one of the server's programs, as postgres when we are root.
_pg() {
    local prog="$PG_BIN/$1"
    shift
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$prog" "$@"
    else
        "$prog" "$@"
    fi
}

_pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_start() {
    if [[ ! -x "$PG_BIN/initdb" ]]; then
        echo "no initdb in $PG_BIN: apt-get install -y postgresql-15, or set PG_BIN" >&2
        return 1
    fi
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/bench-pg.XXXXXX")"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$PG_DIR"
    fi
    _pg initdb -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    local opts try
    # A port found free may be taken before the server binds it: try a few.
    for try in 1 2 3 4 5; do
        PG_PORT="$(_pg_free_port)"
        opts="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1"
        opts+=" -c max_connections=${PG_MAX_CONNECTIONS:-200}"
        opts+=" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        opts+=" ${PG_EXTRA_OPTS:-}"
        if _pg pg_ctl -w -D "$PG_DIR/data" -l "$PG_DIR/server.log" -o "$opts" start >/dev/null; then
            return 0
        fi
    done
    echo "PostgreSQL did not start:" >&2
    tail -20 "$PG_DIR/server.log" >&2 || true
    return 1
}

pg_createdb() {
    local name="$1"
    shift
    _pg createdb -h "$PG_DIR" -p "$PG_PORT" -U postgres "$@" "$name"
}

pg_url() {
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

pg_sql() {
    _pg psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" -At -c "$2"
}

pg_stop() {
    [[ -n "$PG_DIR" ]] || return 0
    if [[ -f "$PG_DIR/data/postmaster.pid" ]]; then
        _pg pg_ctl -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || _pg pg_ctl -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    PG_DIR=""
}
