#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL cluster on 127.0.0.1 for the store tests.
#
#   eval "$(bash scripts/postgres.sh)"    # start; exports FRAUDLINE_TEST_POSTGRES_URL
#   bash scripts/postgres.sh stop         # stop it and delete its files
#
# Installs Debian's postgresql when no server is found. The cluster lives in
# $FRAUDLINE_PG_DIR (default /tmp/fraudline-pg), listens only on 127.0.0.1 at
# $FRAUDLINE_PG_PORT (default 55432) and trusts local connections: it holds test
# data only. Running it again while the cluster is up just prints the URL.
# Progress goes to stderr; stdout carries only the export line.
set -euo pipefail

PG_DIR="${FRAUDLINE_PG_DIR:-/tmp/fraudline-pg}"
PG_PORT="${FRAUDLINE_PG_PORT:-55432}"
PG_DB="${FRAUDLINE_PG_DB:-fraudline_test}"
DATA="$PG_DIR/data"

say() { echo "postgres.sh: $*" >&2; }

find_bin() {
    # The newest server version installed, e.g. /usr/lib/postgresql/15/bin.
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# The server refuses to run as root, so root runs it as the postgres user.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install_server() {
    if [ -n "$(find_bin)" ] && [ -x "$(find_bin)/initdb" ]; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        say "no PostgreSQL server found; install it: apt-get install -y postgresql"
        exit 1
    fi
    say "installing Debian's postgresql"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

start() {
    install_server
    local bin
    bin="$(find_bin)"

    if [ ! -s "$DATA/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
        say "creating a cluster in $DATA"
        as_owner "$bin/initdb" -D "$DATA" -U postgres -A trust -E UTF8 \
            --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
            cat "$PG_DIR/initdb.log" >&2
            exit 1
        }
    fi

    if ! as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        say "starting on 127.0.0.1:$PG_PORT"
        # Durability is pointless for test data; without it the tests run faster.
        as_owner "$bin/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 start -o \
            "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >&2 || {
            cat "$PG_DIR/server.log" >&2
            exit 1
        }
    fi

    local psql=("$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAt)
    if [ -z "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" ]
    then
        as_owner "${psql[@]}" -c "CREATE DATABASE $PG_DB" >&2
    fi

    echo "export FRAUDLINE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB"
}

stop() {
    local bin
    bin="$(find_bin)"
    if [ -n "$bin" ] && [ -s "$DATA/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    fi
    rm -rf "$PG_DIR"
    say "stopped; $PG_DIR removed"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *)
        say "unknown command ${1}; use start (default) or stop"
        exit 2
        ;;
esac
