#!/usr/bin/env bash
# A private PostgreSQL server for the tests, the demo and the benchmarks.
#   scripts/pg.sh start   initdb (once) and start it; prints the libpq environment
#   scripts/pg.sh env     prints the environment of the running server (export lines)
#   scripts/pg.sh stop    stops it and removes its directory
# The server lives in $LB_PG_DIR (default /tmp/luabyte-pg-<uid>), listens on
# 127.0.0.1 and on a socket in that directory, on a free port, and runs as
# the `postgres` user when this script runs as root (PostgreSQL refuses to
# run as root). Role "luabyte" (a superuser) has a password: TCP connections
# authenticate with scram-sha-256, so wrong-password paths are real.
# Exit codes: 0 ok, 3 cannot run a server here (no PostgreSQL installed, or
# no unprivileged user to run it as): callers report a skip; 1 other failure.
set -uo pipefail

DIR=${LB_PG_DIR:-/tmp/luabyte-pg-$(id -u)}
USER_NAME=luabyte
PASSWORD=${LB_PG_PASSWORD:-luabyte-test-pw}
DB=luabyte

say() { echo "pg.sh: $*" >&2; }

bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

as_owner() {   # run a command as the server's user
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_env() {
  [ -f "$DIR/env" ] || { say "no server in $DIR (run: scripts/pg.sh start)"; return 1; }
  cat "$DIR/env"
}

start() {
  local bin port
  bin=$(bindir) || { say "SKIP: PostgreSQL is not installed (apt-get install postgresql)"; return 3; }
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    say "SKIP: running as root and there is no 'postgres' user to run the server as"; return 3
  fi
  if [ -f "$DIR/env" ] && as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    print_env; return 0
  fi
  mkdir -p "$DIR" || return 1
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$DIR"
    runuser -u postgres -- test -w "$DIR" ||
      { say "the postgres user cannot write to $DIR (a parent directory shuts it out): choose LB_PG_DIR elsewhere"; return 1; }
  fi
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    printf '%s\n' "$PASSWORD" >"$DIR/pw"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR/pw"
    as_owner "$bin/initdb" -D "$DIR/data" -U "$USER_NAME" --pwfile="$DIR/pw" -E UTF8 \
      --locale=C --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 ||
      { cat "$DIR/initdb.log" >&2; say "initdb failed"; return 1; }
    rm -f "$DIR/pw"
  fi
  port=$(free_port) || return 1
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR -c fsync=off -c max_connections=60" start >/dev/null ||
    { tail -n 20 "$DIR/server.log" >&2; say "the server did not start"; return 1; }
  as_owner "$bin/psql" -h "$DIR" -p "$port" -U "$USER_NAME" -d postgres -qAtc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
    as_owner "$bin/createdb" -h "$DIR" -p "$port" -U "$USER_NAME" "$DB" || { say "createdb failed"; return 1; }
  cat >"$DIR/env" <<ENV
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=$USER_NAME
export PGPASSWORD=$PASSWORD
export PGDATABASE=$DB
export LB_PG_SOCKET_DIR=$DIR
ENV
  print_env
}

stop() {
  local bin
  bin=$(bindir) || return 0
  if [ -d "$DIR/data" ]; then as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  *) echo "usage: scripts/pg.sh start|env|stop" >&2; exit 2 ;;
esac
