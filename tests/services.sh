#!/usr/bin/env bash
# Installs (Debian packages) and starts the PostgreSQL and Redis servers the durable and
# multi-node suites use, on loopback. They are the suites' own: a PostgreSQL cluster named
# `threadline-test` on port 55432 (made with pg_createcluster, started on demand, never at boot)
# and a Redis on port 56379, so a PostgreSQL or Redis already on this machine is never touched.
# In that cluster the script creates the superuser role `threadline` and drops the databases
# earlier runs left (`threadline_test_*`, `threadline_js_*`). Idempotent: running services are
# left alone.
#
# Prints the environment the suites read:
#   THREADLINE_TEST_POSTGRES=postgres://threadline:threadline@127.0.0.1:55432/postgres
#   THREADLINE_TEST_REDIS=redis://127.0.0.1:56379
set -euo pipefail

PG_PORT=55432
REDIS_PORT=56379
CLUSTER=threadline-test

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
missing=()
command -v pg_createcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1 "/" $2}' | grep -qx "$version/$CLUSTER"; then
  # The API suite runs in one process, two tests at a time, each server with its own pool:
  # more connections than PostgreSQL's default 100 can be open at a moment.
  $sudo pg_createcluster "$version" "$CLUSTER" -p "$PG_PORT" --start-conf=manual \
    -o max_connections=400 >&2
fi
if ! pg_isready -h 127.0.0.1 -p "$PG_PORT" -q; then
  $sudo pg_ctlcluster "$version" "$CLUSTER" start >&2
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p "$PG_PORT" -q && break; sleep 0.2; done
fi
as_postgres psql -p "$PG_PORT" -q -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'threadline'" \
  | grep -q 1 \
  || as_postgres psql -p "$PG_PORT" -q \
    -c "CREATE ROLE threadline LOGIN SUPERUSER PASSWORD 'threadline'" >&2

url=postgres://threadline:threadline@127.0.0.1:$PG_PORT/postgres
# Every database a suite creates copies template1: with `unaccent` there already, a server's
# search set-up finds it instead of creating it (seconds each when tests start servers at once).
psql "${url%/*}/template1" -q -c "CREATE EXTENSION IF NOT EXISTS unaccent" >&2
# The suites make a database per server they start; drop what earlier runs left behind.
psql "$url" -qAt -c "SELECT datname FROM pg_database WHERE datname ~ '^threadline_(test|js)_'" \
  | while read -r db; do psql "$url" -q -c "DROP DATABASE IF EXISTS \"$db\"" >&2 || true; done

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
    --appendonly no >&2
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

echo "THREADLINE_TEST_POSTGRES=$url"
echo "THREADLINE_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT"
