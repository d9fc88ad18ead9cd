#!/usr/bin/env bash
# Installs (Debian packages) and starts the PostgreSQL and Redis servers the durable and
# multi-node suites use, on loopback. Idempotent: running services are left alone.
#
# Prints the environment the suites read:
#   THREADLINE_TEST_POSTGRES=postgres://threadline:threadline@127.0.0.1:5432/postgres
#   THREADLINE_TEST_REDIS=redis://127.0.0.1:6379
set -euo pipefail

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  $sudo pg_ctlcluster "$version" main start >&2 || $sudo service postgresql start >&2
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
as_postgres psql -q -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'threadline'" | grep -q 1 \
  || as_postgres psql -q -c "CREATE ROLE threadline LOGIN SUPERUSER PASSWORD 'threadline'" >&2

url=postgres://threadline:threadline@127.0.0.1:5432/postgres
# The API suite runs in one process, two tests at a time, each server with its own pool:
# more connections than PostgreSQL's default 100 can be open at a moment.
if [ "$(psql "$url" -Atc 'SHOW max_connections')" -lt 400 ]; then
  psql "$url" -qc "ALTER SYSTEM SET max_connections = 400" >&2
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  $sudo pg_ctlcluster "$version" main restart >&2 || $sudo service postgresql restart >&2
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi

# The suites make a database per server they start; drop what earlier runs left behind.
psql "$url" -qAt -c "SELECT datname FROM pg_database WHERE datname ~ '^threadline_(test|js)_'" \
  | while read -r db; do psql "$url" -q -c "DROP DATABASE IF EXISTS \"$db\"" >&2 || true; done

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >&2
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

echo "THREADLINE_TEST_POSTGRES=$url"
echo "THREADLINE_TEST_REDIS=redis://127.0.0.1:6379"
